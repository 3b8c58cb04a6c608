"""Spec lines of the special-function primitives and of the primitives behind dfdx.scipy
(see tests/op_specs.py). SciPy is the reference."""
import scipy.special as special

from dfdx._src.ops import special as sp
from tests.op_specs import BINARY_SHAPES, UNARY_SHAPES, Int, OpSpec

TERNARY_SHAPES = [((), (), ()), ((3,), (3,), (3,)), ((2, 3), (3,), (1, 3)), ((0, 3), (), (3,))]


def unary(name, domain, **kw):
  return OpSpec(name, getattr(sp, name + "_p"), getattr(sp, name), getattr(special, name),
                UNARY_SHAPES, domain=domain, **kw)


def binary(name, domain, diff_argnums=None, **kw):
  return OpSpec(name, getattr(sp, name + "_p"), getattr(sp, name), getattr(special, name),
                BINARY_SHAPES, domain=domain, diff_argnums=diff_argnums, **kw)


def order(name, orders, x_domain, **kw):
  """A Bessel-type function of (order, x), differentiated in x."""
  return binary(name, [orders, x_domain], diff_argnums=(1,), **kw)


SPECS = [
    unary("erf", (-2.0, 2.0)),
    unary("erfc", (-2.0, 2.0)),
    unary("erfinv", (-0.9, 0.9)),
    unary("erfcinv", (0.1, 1.9)),
    unary("erfcx", (-2.0, 3.0)),
    unary("ndtr", (-3.0, 3.0)),
    unary("log_ndtr", (-30.0, 3.0)),
    unary("ndtri", (0.05, 0.95)),
    unary("gamma", (0.5, 3.0)),
    unary("gammaln", (0.3, 3.0)),
    OpSpec("gammaln_negative", sp.gammaln_p, sp.gammaln, special.gammaln, UNARY_SHAPES,
           domain=(-1.8, -1.2)),
    unary("rgamma", (-2.5, 3.0)),
    unary("digamma", (0.3, 3.0)),
    order("polygamma", Int(0, 3), (0.5, 3.0)),
    binary("beta", (0.5, 3.0)),
    binary("betaln", (0.5, 3.0)),
    unary("j0", (-5.0, 5.0)),
    unary("j1", (-5.0, 5.0)),
    unary("y0", (0.5, 5.0)),
    unary("y1", (0.5, 5.0)),
    unary("i0", (-3.0, 3.0)),
    unary("i1", (-3.0, 3.0)),
    unary("i0e", (0.2, 3.0)),
    OpSpec("i0e_negative", sp.i0e_p, sp.i0e, special.i0e, UNARY_SHAPES, domain=(-3.0, -0.2)),
    unary("i1e", (-3.0, -0.2)),
    unary("k0", (0.3, 3.0)),
    unary("k1", (0.3, 3.0)),
    unary("k0e", (0.3, 3.0)),
    unary("k1e", (0.3, 3.0)),
    order("jv", (0.0, 2.5), (0.3, 5.0)),
    OpSpec("jv_integer_order", sp.jv_p, sp.jv, special.jv, BINARY_SHAPES,
           domain=[Int(-2, 3), (-4.0, 4.0)], diff_argnums=(1,)),
    order("yv", (0.0, 2.5), (0.5, 5.0)),
    order("yn", Int(0, 3), (0.5, 5.0)),
    order("iv", (0.0, 2.5), (0.3, 3.0)),
    order("ive", (0.0, 2.5), (0.3, 3.0)),
    OpSpec("ive_negative_x", sp.ive_p, sp.ive, special.ive, BINARY_SHAPES,
           domain=[Int(0, 3), (-3.0, -0.3)], diff_argnums=(1,)),
    order("kv", (0.0, 2.5), (0.3, 3.0)),
    order("kve", (0.0, 2.5), (0.3, 3.0)),
    order("gammainc", (0.5, 3.0), (0.2, 3.0)),
    order("gammaincc", (0.5, 3.0), (0.2, 3.0)),
    OpSpec("gammainc_in_a", sp.gammainc_p, sp.gammainc, special.gammainc, BINARY_SHAPES,
           domain=[(0.5, 3.0), (0.2, 3.0)], order=1),
    # SciPy has no d gammainc / da: its values are checked against finite differences in
    # tests/test_scipy_special.py; this line checks abstract eval, d/dx and vmap.
    OpSpec("gammainc_grad_a", sp.gammainc_grad_a_p, sp.gammainc_grad_a,
           sp.gammainc_grad_a_p.impl, BINARY_SHAPES,
           domain=[(0.5, 3.0), (0.2, 3.0)], diff_argnums=(1,)),
    order("stdtr", (1.0, 10.0), (-3.0, 3.0)),
    OpSpec("betainc", sp.betainc_p, sp.betainc, special.betainc, TERNARY_SHAPES,
           domain=[(0.5, 3.0), (0.5, 3.0), (0.1, 0.9)], diff_argnums=(2,)),
    OpSpec("betainc_in_a_and_b", sp.betainc_p, sp.betainc, special.betainc, TERNARY_SHAPES,
           domain=[(0.5, 3.0), (0.5, 3.0), (0.1, 0.9)], order=1),
    OpSpec("stdtr_in_df", sp.stdtr_p, sp.stdtr, special.stdtr, BINARY_SHAPES,
           domain=[(0.8, 10.0), (-3.0, 3.0)], order=1),
    # SciPy has no d betainc / da or / db: values are checked against finite differences
    # here (betainc_in_a_and_b) and mpmath (tests/test_scipy_special.py); these lines check
    # abstract eval, d/dx and vmap.
    OpSpec("betainc_grad", sp.betainc_grad_p, lambda a, b, x: sp.betainc_grad(a, b, x, "a"),
           lambda a, b, x: sp.betainc_grad_p.impl(a, b, x, wrt="a"), TERNARY_SHAPES,
           domain=[(0.5, 3.0), (0.5, 3.0), (0.1, 0.9)], diff_argnums=(2,)),
    OpSpec("betainc_grad_b", sp.betainc_grad_p, lambda a, b, x: sp.betainc_grad(a, b, x, "b"),
           lambda a, b, x: sp.betainc_grad_p.impl(a, b, x, wrt="b"), TERNARY_SHAPES,
           domain=[(0.5, 3.0), (0.5, 3.0), (0.1, 0.9)], diff_argnums=(2,)),
    unary("exp1", (0.3, 3.0)),
    unary("expi", (0.3, 3.0)),
    OpSpec("expi_negative", sp.expi_p, sp.expi, special.expi, UNARY_SHAPES, domain=(-3.0, -0.3)),
    # zeta(x, q) is differentiated in q only (its derivative in x is not implemented)
    order("zeta", (1.5, 4.0), (0.5, 3.0)),
    OpSpec("riemann_zeta", sp.riemann_zeta_p, sp.riemann_zeta, special.zeta, UNARY_SHAPES,
           domain=(1.5, 4.0), grad=False),
    OpSpec("riemann_zeta_negative", sp.riemann_zeta_p, sp.riemann_zeta, special.zeta,
           UNARY_SHAPES, domain=(-3.0, 0.5), grad=False),
    unary("ndtri_exp", (-20.0, -0.1)),
    binary("binom", [(3.0, 5.0), (0.5, 2.5)]),
]

# ---- the primitives of dfdx.scipy.linalg and dfdx.scipy.integrate ---------------------------
import numpy as np  # noqa: E402
import scipy.integrate  # noqa: E402
import scipy.linalg  # noqa: E402

import dfdx  # noqa: E402
from dfdx._src import scipy_integrate as si  # noqa: E402
from dfdx._src import scipy_linalg as sl  # noqa: E402

MATRIX_SHAPES = [((2, 2),), ((3, 3),), ((2, 3, 3),)]
PAIR_SHAPES = [((2, 2), (2, 2)), ((3, 3), (3, 3)), ((2, 3, 3), (2, 3, 3))]
SHIFT = 2.0  # logm and sqrtm of a + SHIFT I: eigenvalues near SHIFT, away from the branch cut


def _stacked(fun):
  """A 2-d SciPy function applied to each matrix of a stack."""
  def ref(*xs):
    if np.ndim(xs[0]) == 2:
      return fun(*xs)
    return np.stack([fun(*[x[i] for x in xs]) for i in range(np.shape(xs[0])[0])])
  return ref


def _shifted(a):
  return a + SHIFT * np.eye(np.shape(a)[-1])


def _block_frechet(fun):
  def ref(a, e):
    n = a.shape[-1]
    return fun(np.block([[a, e], [np.zeros_like(a), a]]))[:n, n:]
  return _stacked(ref)


def _permutation_ref(piv):
  piv = np.asarray(piv)
  out = np.empty(piv.shape, np.int64)
  for index in np.ndindex(piv.shape[:-1]):
    perm = list(range(piv.shape[-1]))
    for i, j in enumerate(piv[index]):
      perm[i], perm[j] = perm[j], perm[i]
    out[index] = perm
  return out


_TIMES = np.array([0.0, 0.4, 1.0])
_ODE = dict(rtol=1e-11, atol=1e-11)


def _decay(y0, k):
  """y' = -k y + sin(t) on two components (k broadcast), solved by dfdx's odeint."""
  return si.odeint(lambda y, t, k: -k * y + dfdx.numpy.sin(t), y0, _TIMES, (k,), **_ODE)


def _decay_ref(y0, k):
  return scipy.integrate.odeint(lambda y, t, k: -k * y + np.sin(t), y0, _TIMES, (k,), **_ODE)


def _decay_tangent(y0, y0_dot):
  return dfdx.jvp(lambda y: _decay(y, 1.3), (y0,), (y0_dot,))[1]


def _decay_tangent_ref(y0, y0_dot):
  # the forward sensitivity system (y, y_dot)' = (f, -k y_dot), solved by SciPy
  def rhs(z, t):
    return np.concatenate([-1.3 * z[:2] + np.sin(t), -1.3 * z[2:]])
  return scipy.integrate.odeint(rhs, np.concatenate([y0, y0_dot]), _TIMES, **_ODE)[:, 2:]


SPECS += [
    OpSpec("expm", sl.expm_p, sl.expm_p.bind, _stacked(scipy.linalg.expm), MATRIX_SHAPES,
           domain=(-0.5, 0.5)),
    OpSpec("expm_frechet", sl.expm_frechet_p, sl.expm_frechet_p.bind,
           _block_frechet(scipy.linalg.expm), PAIR_SHAPES, domain=(-0.5, 0.5)),
    OpSpec("logm", sl.logm_p, lambda a: sl.logm_p.bind(_shifted(a)),
           _stacked(lambda a: scipy.linalg.logm(_shifted(a))), MATRIX_SHAPES,
           domain=(-0.4, 0.4), rtol=1e-4),
    OpSpec("logm_frechet", sl.logm_frechet_p,
           lambda a, e: sl.logm_frechet_p.bind(_shifted(a), e),
           lambda a, e: _block_frechet(scipy.linalg.logm)(_shifted(a), e), PAIR_SHAPES,
           domain=(-0.4, 0.4), rtol=1e-4),
    OpSpec("sqrtm", sl.sqrtm_p, lambda a: sl.sqrtm_p.bind(_shifted(a)),
           _stacked(lambda a: scipy.linalg.sqrtm(_shifted(a))), MATRIX_SHAPES,
           domain=(-0.4, 0.4)),
    OpSpec("solve_sylvester", sl.solve_sylvester_p,
           lambda a, b, q: sl.solve_sylvester_p.bind(_shifted(a), _shifted(b), q),
           _stacked(lambda a, b, q: scipy.linalg.solve_sylvester(_shifted(a), _shifted(b), q)),
           [((2, 2), (3, 3), (2, 3)), ((3, 3), (3, 3), (3, 3)),
            ((2, 2, 2), (2, 3, 3), (2, 2, 3))], domain=(-0.5, 0.5)),
    OpSpec("lu_factor", sl.lu_factor_p, lambda a: sl.lu_factor_p.bind(a)[0],
           _stacked(lambda a: scipy.linalg.lu_factor(a)[0]), MATRIX_SHAPES, domain=(-2.0, 2.0),
           rtol=1e-4),
    OpSpec("lu_pivots_to_permutation", sl.lu_pivots_to_permutation_p,
           lambda piv: sl.lu_pivots_to_permutation_p.bind(piv, inverse=False), _permutation_ref,
           [((3,),), ((2, 4),), ((0, 3),)], domain=Int(0, 3), grad=False),
    OpSpec("odeint", si.odeint_p, _decay, _decay_ref, [((2,), ()), ((2,), (2,))],
           domain=[(0.5, 1.5), (0.5, 2.0)], rtol=1e-4, atol=1e-6),
    OpSpec("odeint_tangent", si.odeint_tangent_p, _decay_tangent, _decay_tangent_ref,
           [((2,), (2,))], domain=(0.5, 1.5), rtol=1e-4, atol=1e-6),
]
