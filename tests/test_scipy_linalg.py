"""dfdx.scipy.linalg: values against scipy.linalg, check_grads (order 2 on small matrices),
closed-form derivatives (Frechet derivatives, the Sylvester equation of sqrtm), vmap
against stacked calls, jit, and the errors.
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.linalg as dsl
from dfdx.testing import check_grads

sl = pytest.importorskip("scipy.linalg")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 3)) * 0.5
B = RNG.standard_normal((3, 2))
SPD = A @ A.T + 2 * np.eye(3)  # symmetric positive definite, eigenvalues away from 0
TRI = np.tril(A) + 2 * np.eye(3)  # well-conditioned triangles either way
STACK = RNG.standard_normal((2, 3, 3)) * 0.4


def _close(a, b, rtol=1e-12, atol=1e-13):
  np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---- values --------------------------------------------------------------------------------

@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T"])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_solve_triangular_matches_scipy(trans, lower, unit_diagonal):
  a = TRI + TRI.T
  for b in (B, B[:, 0]):
    kw = dict(trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    got = dsl.solve_triangular(a, b, **kw)
    assert got.shape == b.shape and got.dtype == np.float64
    _close(got, sl.solve_triangular(a, b, **kw))
  got32 = dsl.solve_triangular(np.float32(a), np.float32(B), lower=lower)
  assert got32.dtype == sl.solve_triangular(np.float32(a), np.float32(B), lower=lower).dtype


@pytest.mark.parametrize("trans", [0, 1, 2, "C"])
@pytest.mark.parametrize("lower", [False, True])
def test_solve_triangular_of_complex_matrices_matches_scipy(trans, lower):
  a = TRI + 1j * A + 1j * np.eye(3)
  for b in (B, B[:, 0] + 1j, np.float32(B)):
    got = dsl.solve_triangular(a, b, trans=trans, lower=lower)
    expected = sl.solve_triangular(a, b, trans=trans, lower=lower)
    assert got.dtype == expected.dtype == np.complex128
    _close(got, expected)
  got = dsl.solve_triangular(np.complex64(a), np.complex64(B), trans=trans, lower=lower)
  assert got.dtype == np.complex64
  _close(got, sl.solve_triangular(np.complex64(a), np.complex64(B), trans=trans, lower=lower),
         rtol=1e-5, atol=1e-6)


def test_solve_triangular_of_stacks_broadcasts_as_numpy():
  a = STACK[:, None] + 2 * np.eye(3)  # (2, 1, 3, 3)
  bs = RNG.standard_normal((4, 3, 2))
  got = dsl.solve_triangular(a, bs, lower=True, trans=1)
  assert got.shape == (2, 4, 3, 2)
  for i, j in np.ndindex(2, 4):
    _close(got[i, j], sl.solve_triangular(a[i, 0], bs[j], lower=True, trans=1))
  got = dsl.solve_triangular(a[:, 0], B[:, 0], unit_diagonal=True)  # a vector b: NumPy 2's solve
  for i in range(2):
    _close(got[i], sl.solve_triangular(a[i, 0], B[:, 0], unit_diagonal=True))
  assert dsl.solve_triangular(np.eye(3, dtype=int), np.arange(3)).dtype == np.float64


def test_solve_triangular_of_a_singular_triangle_raises_as_scipy():
  a = np.triu(TRI.T)
  a[1, 1] = 0.0
  with pytest.raises(np.linalg.LinAlgError, match="[Ss]ingular matrix"):
    sl.solve_triangular(a, B)
  with pytest.raises(np.linalg.LinAlgError, match="Singular matrix.*entry 1"):
    dsl.solve_triangular(a, B)
  with pytest.raises(np.linalg.LinAlgError, match="Singular matrix.*entry 1"):
    dfdx.grad(lambda a: dnp.sum(dsl.solve_triangular(a, B)))(a)
  with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
    dfdx.jit(lambda a: dsl.solve_triangular(a, B, trans=1))(a)
  _close(dsl.solve_triangular(a, B, unit_diagonal=True),  # (its diagonal is not read)
         sl.solve_triangular(a, B, unit_diagonal=True))


@pytest.mark.parametrize("lower", [False, True])
def test_cho_factor_and_cho_solve_match_scipy(lower):
  c, low = dsl.cho_factor(SPD, lower=lower)
  c_ref, low_ref = sl.cho_factor(SPD, lower=lower)
  assert low == low_ref
  triangle = np.tril if lower else np.triu
  _close(c, triangle(c_ref))
  assert np.all((np.triu(c, 1) if lower else np.tril(c, -1)) == 0)  # the rest is zero
  for b in (B, B[:, 0]):
    _close(dsl.cho_solve((c, low), b), sl.cho_solve((c_ref, low_ref), b))
    _close(dsl.cho_solve((c_ref, low_ref), b), sl.cho_solve((c_ref, low_ref), b))  # SciPy's


@pytest.mark.parametrize("lower", [False, True])
def test_cho_solve_and_lu_solve_of_complex_matrices_match_scipy(lower):
  c = np.linalg.cholesky(SPD + 1j * (A - A.T))  # lower: a = c c^H
  c = c if lower else c.conj().T  # upper: a = c^H c
  b = B + 1j * B[::-1]
  _close(dsl.cho_solve((c, lower), b), sl.cho_solve((c, lower), b))
  lu, piv = sl.lu_factor(A + 1j * A.T)
  for trans in (0, 1, 2):
    _close(dsl.lu_solve((lu, piv), b, trans=trans), sl.lu_solve((lu, piv), b, trans=trans))


@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_factor_and_lu_solve_match_scipy(trans):
  lu, piv = dsl.lu_factor(A)
  lu_ref, piv_ref = sl.lu_factor(A)
  _close(lu, lu_ref)
  np.testing.assert_array_equal(piv, piv_ref)
  assert piv.dtype == piv_ref.dtype
  for b in (B, B[:, 0]):
    _close(dsl.lu_solve((lu, piv), b, trans=trans), sl.lu_solve((lu_ref, piv_ref), b, trans))


def test_factors_work_with_scipys_solves():
  np.testing.assert_allclose(sl.cho_solve(dsl.cho_factor(SPD), B), np.linalg.solve(SPD, B),
                             rtol=1e-12)
  np.testing.assert_allclose(sl.cho_solve(dsl.cho_factor(SPD, lower=True), B),
                             np.linalg.solve(SPD, B), rtol=1e-12)
  np.testing.assert_allclose(sl.lu_solve(dsl.lu_factor(A), B), np.linalg.solve(A, B),
                             rtol=1e-12)


def test_lu_factor_of_a_stack():
  lu, piv = dsl.lu_factor(STACK)
  for i in range(2):
    _close(lu[i], sl.lu_factor(STACK[i])[0])
    np.testing.assert_array_equal(piv[i], sl.lu_factor(STACK[i])[1])
  traced = dfdx.jvp(lambda a: dsl.lu_factor(a)[0], (STACK,), (STACK,))[0]
  _close(traced, lu)


@pytest.mark.filterwarnings("ignore:logm result may be inaccurate")
@pytest.mark.parametrize("name", ["expm", "logm", "sqrtm"])
def test_matrix_functions_match_scipy(name):
  a = SPD if name != "expm" else A
  for x in (a, np.float32(a), STACK + 2 * np.eye(3)):
    expected = getattr(sl, name)(x)
    traced = dfdx.jvp(getattr(dsl, name), (x,), (np.ones_like(x),))[0]
    assert traced.dtype == expected.dtype and traced.shape == expected.shape
    _close(traced, expected, rtol=1e-5 if x.dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(getattr(dsl, name)(x), expected)  # untraced: SciPy itself


def test_solve_sylvester_and_banded_match_scipy():
  q = RNG.standard_normal((3, 2))
  b = SPD[:2, :2]
  _close(dsl.solve_sylvester(SPD, b, q), sl.solve_sylvester(SPD, b, q))
  traced = dfdx.jvp(lambda q: dsl.solve_sylvester(SPD, b, q), (q,), (q,))[0]
  _close(traced, sl.solve_sylvester(SPD, b, q))
  for l_and_u in ((1, 1), (0, 2), (2, 0), (1, 2)):
    ab = RNG.standard_normal((sum(l_and_u) + 1, 5))
    ab[l_and_u[1]] += 4.0  # a dominant diagonal
    for rhs in (RNG.standard_normal(5), RNG.standard_normal((5, 2))):
      _close(dsl.solve_banded(l_and_u, ab, rhs), sl.solve_banded(l_and_u, ab, rhs))


# ---- derivatives -----------------------------------------------------------------------------

GRADS = [
    ("solve_triangular", lambda a, b: dsl.solve_triangular(a, b, lower=True), (TRI, B)),
    ("solve_triangular-trans-unit",
     lambda a, b: dsl.solve_triangular(a, b, trans=1, unit_diagonal=True), (TRI.T, B[:, 0])),
    ("solve_triangular-upper-trans", lambda a, b: dsl.solve_triangular(a, b, trans="T"),
     (TRI.T, B)),
    ("solve_triangular-lower-C-unit",
     lambda a, b: dsl.solve_triangular(a, b, trans="C", lower=True, unit_diagonal=True),
     (TRI, B)),
    ("solve_triangular-stack", lambda a, b: dsl.solve_triangular(a, b, lower=True),
     (STACK[:, None] + 2 * np.eye(3), RNG.standard_normal((3, 3, 1)))),
    ("solve_triangular-vector-stack", lambda a, b: dsl.solve_triangular(a, b, trans=1),
     (STACK + 2 * np.eye(3), B[:, 1])),
    ("cho_factor", lambda a: dsl.cho_factor(a)[0], (SPD,)),
    ("cho_solve-lower", lambda a, b: dsl.cho_solve(dsl.cho_factor(a, lower=True), b), (SPD, B)),
    ("cho_solve-factor", lambda c, b: dsl.cho_solve((c, False), b),
     (np.linalg.cholesky(SPD).T, B)),
    ("lu_factor", lambda a: dsl.lu_factor(a)[0], (A,)),
    ("lu_solve", lambda a, b: dsl.lu_solve(dsl.lu_factor(a), b), (A + np.eye(3), B)),
    ("lu_solve-trans", lambda a, b: dsl.lu_solve(dsl.lu_factor(a), b, trans=1),
     (A + np.eye(3), B[:, 0])),
    ("expm", dsl.expm, (A,)),
    ("expm-stack", dsl.expm, (STACK,)),
    ("logm", dsl.logm, (SPD,)),
    ("sqrtm", dsl.sqrtm, (SPD,)),
    ("sqrtm-nonsymmetric", dsl.sqrtm, (A + 2 * np.eye(3),)),
    ("solve_sylvester", dsl.solve_sylvester, (SPD, SPD[:2, :2], RNG.standard_normal((3, 2)))),
    ("solve_banded", lambda ab, b: dsl.solve_banded((1, 1), ab, b),
     (np.array([[0.0, 1.0, 0.5, 0.3], [3.0, 3.5, 4.0, 3.2], [0.7, 0.2, 0.4, 0.0]]),
      RNG.standard_normal(4))),
]


@pytest.mark.parametrize("fun,args", [pytest.param(f, a, id=n) for n, f, a in GRADS])
def test_check_grads_order_2(fun, args):
  check_grads(fun, args, order=2, rtol=1e-5, atol=1e-6)


def test_expm_derivative_is_the_frechet_derivative():
  e = RNG.standard_normal((3, 3))
  _close(dfdx.jvp(dsl.expm, (A,), (e,))[1], sl.expm_frechet(A, e, compute_expm=False))
  # reverse mode: <L(A, E), G> = <E, L(A^T, G)>
  g = RNG.standard_normal((3, 3))
  grad = dfdx.grad(lambda a: dnp.sum(dsl.expm(a) * g))(A)
  _close(grad, sl.expm_frechet(A.T, g, compute_expm=False))


def test_sqrtm_and_logm_derivatives_invert_those_of_square_and_expm():
  e = RNG.standard_normal((3, 3))
  x, x_dot = dfdx.jvp(dsl.sqrtm, (SPD,), (e,))
  _close(x @ x_dot + x_dot @ x, e, atol=1e-12)  # the Sylvester equation
  log, log_dot = dfdx.jvp(dsl.logm, (SPD,), (e,))
  _close(sl.expm_frechet(log, log_dot, compute_expm=False), e, rtol=1e-9, atol=1e-10)


def test_solve_triangular_reads_one_triangle():
  grad = dfdx.grad(lambda a: dnp.sum(dsl.solve_triangular(a, B, lower=True)))(TRI + TRI.T)
  assert np.all(np.triu(grad, 1) == 0)
  grad = dfdx.grad(lambda a: dnp.sum(dsl.solve_triangular(a, B, unit_diagonal=True)))(TRI.T)
  assert np.all(np.tril(grad) == 0)


def test_vmap_matches_stacked_calls():
  bs = RNG.standard_normal((2, 3, 2))
  for fun, args in (
      (dsl.expm, (STACK,)), (dsl.sqrtm, (STACK + 2 * np.eye(3),)),
      (dsl.logm, (STACK + 2 * np.eye(3),)),
      (lambda a, b: dsl.solve_triangular(a, b, lower=True), (STACK + 2 * np.eye(3), bs)),
      (lambda a, b: dsl.lu_solve(dsl.lu_factor(a), b), (STACK + 2 * np.eye(3), bs)),
      (lambda a, b: dsl.cho_solve(dsl.cho_factor(a), b),
       (STACK @ np.swapaxes(STACK, 1, 2) + np.eye(3), bs)),
      (lambda q: dsl.solve_sylvester(SPD, SPD[:2, :2], q), (bs,))):
    out = dfdx.vmap(fun)(*args)
    expected = np.stack([fun(*[a[i] for a in args]) for i in range(2)])
    _close(out, expected, rtol=1e-10, atol=1e-12)
  grads = dfdx.vmap(dfdx.grad(lambda a: dnp.sum(dsl.expm(a))))(STACK)
  _close(grads, np.stack([dfdx.grad(lambda a: dnp.sum(dsl.expm(a)))(s) for s in STACK]))


@pytest.mark.parametrize("in_axes", [(None, 0), (0, None), (0, 2), (2, 1)], ids=str)
def test_vmap_of_solve_triangular_and_its_gradient(in_axes):
  a_stack = np.stack([TRI, TRI.T, TRI + np.eye(3)], axis=in_axes[0] or 0)
  b_stack = np.stack([B, B[::-1], 2 * B], axis=in_axes[1] or 0)
  def f(a, b):
    return dsl.solve_triangular(a, b, trans=1, lower=True)
  g = dfdx.grad(lambda a, b: dnp.sum(dnp.sin(f(a, b))), (0, 1))
  take = lambda x, ax, i: x if ax is None else np.take(x, i, axis=ax)  # noqa: E731
  args = [TRI if in_axes[0] is None else a_stack, B if in_axes[1] is None else b_stack]
  out = dfdx.vmap(f, in_axes)(*args)
  grads = dfdx.vmap(g, in_axes)(*args)
  for i in range(3):
    example = [take(x, ax, i) for x, ax in zip(args, in_axes)]
    _close(out[i], f(*example))
    for got, want in zip(grads, g(*example)):
      _close(got[i], want)


def test_jit():
  def f(a, b):
    c = dsl.cho_factor(a @ a.T + np.eye(3))
    return dnp.sum(dsl.cho_solve(c, b)) + dnp.sum(dsl.expm(a) * dsl.sqrtm(a @ a.T + np.eye(3)))
  _close(dfdx.jit(f)(A, B), f(A, B))
  for got, want in zip(dfdx.jit(dfdx.grad(f, (0, 1)))(A, B), dfdx.grad(f, (0, 1))(A, B)):
    _close(got, want)
  g = dfdx.jit(lambda a, b: dsl.lu_solve(dsl.lu_factor(a), b, trans=1))
  _close(g(A, B), np.linalg.solve(A.T, B))


def _gp_nll(k, y):
  """-log p(y) of a zero-mean Gaussian with covariance k (up to a constant): cholesky, a
  Cholesky solve and the log of the factor's diagonal (read from k's lower triangle)."""
  c, lower = dsl.cho_factor(k, lower=True)
  return 0.5 * dnp.dot(y, dsl.cho_solve((c, lower), y)) + dnp.sum(dnp.log(dnp.diagonal(c)))


def test_gaussian_likelihood_gradient_closed_form():
  # With G = (K^-1 - a a^T) / 2, a = K^-1 y, for a symmetric dK: d nll = <G, dK>. Reading
  # the lower triangle only, the gradient is 2 G below the diagonal, G on it, 0 above.
  k, y = SPD + 0.5 * np.eye(3), RNG.standard_normal(3)
  alpha = np.linalg.solve(k, y)
  g = 0.5 * (np.linalg.inv(k) - np.outer(alpha, alpha))
  expected = np.tril(2 * g, -1) + np.diag(np.diag(g))
  for grad in (dfdx.grad(_gp_nll), dfdx.jit(dfdx.grad(_gp_nll))):
    _close(grad(k + np.triu(A, 1), y), expected, rtol=1e-10, atol=1e-12)
  check_grads(_gp_nll, (k, y), order=2, rtol=1e-5, atol=1e-6)
  names = {e.prim.name for e in dfdx.make_expr(dfdx.grad(_gp_nll))(k, y).program.eqns}
  assert "triangular_solve" in names and "solve" not in names, names


def test_exported_gradient_runs_standalone_with_or_without_scipy(monkeypatch):
  import sys
  k, y = SPD + 0.5 * np.eye(3), RNG.standard_normal(3)
  source = dfdx.export.to_source(dfdx.grad(_gp_nll, (0, 1)), k, y, name="g")
  assert "_linalg_triangular_solve(" in source and "dfdx" not in source
  expected = dfdx.grad(_gp_nll, (0, 1))(k, y)
  for scipy_present in (True, False):
    if not scipy_present:
      monkeypatch.setitem(sys.modules, "scipy.linalg", None)  # (import scipy.linalg fails)
    namespace = {}
    exec(source, namespace)
    for got, want in zip(namespace["g"](k, y), expected):
      _close(got, want)


# ---- errors ---------------------------------------------------------------------------------

def test_errors():
  with pytest.raises(ValueError, match="square"):
    dsl.solve_triangular(np.ones((2, 3)), np.ones(2))
  with pytest.raises(ValueError, match="incompatible"):
    dsl.solve_triangular(np.eye(2), np.ones(3))
  with pytest.raises(ValueError, match="trans must be"):
    dsl.solve_triangular(np.eye(2), np.ones(2), trans=3)
  with pytest.raises(ValueError, match="l\\+u\\+1"):
    dsl.solve_banded((1, 1), np.ones((2, 3)), np.ones(3))
  with pytest.raises(ValueError, match="no real logm"):
    dfdx.jvp(dsl.logm, (-np.eye(2),), (np.eye(2),))
  with pytest.raises(TypeError, match="complex"):
    dfdx.jvp(lambda a: dsl.expm(a + 0j), (A,), (A,))
  with pytest.raises(ValueError, match="shapes"):
    dfdx.jvp(lambda q: dsl.solve_sylvester(SPD, SPD, q), (np.ones((2, 3)),), (np.ones((2, 3)),))


# ---- lu_solve of a singular factor: SciPy's infs and NaNs, no error --------------------------

SINGULAR = [np.array([[1.0, 2.0], [2.0, 4.0]]), np.zeros((2, 2)), np.diag([1.0, 0.0, 2.0]),
            np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]),
            np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])]


def _same_values(got, expected):
  """Equal up to rounding, with the same infs (and signs) and NaNs."""
  got, expected = np.asarray(got), np.asarray(expected)
  assert got.shape == expected.shape and got.dtype == expected.dtype
  np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
  np.testing.assert_array_equal(np.isinf(got) * np.sign(got),
                                np.isinf(expected) * np.sign(expected))
  finite = np.isfinite(expected)
  np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::scipy.linalg.LinAlgWarning")
@pytest.mark.parametrize("trans", [0, 1, 2])
@pytest.mark.parametrize("index", range(len(SINGULAR)))
def test_lu_solve_of_a_singular_factor_gives_scipys_infs_and_nans(index, trans):
  a = SINGULAR[index]
  n = len(a)
  lu, piv = sl.lu_factor(a)
  for b in (np.ones(n), np.zeros(n), np.arange(2.0 * n).reshape(n, 2)):
    with np.errstate(all="ignore"):
      expected = sl.lu_solve((lu, piv), b, trans=trans)
      _same_values(dsl.lu_solve((lu, piv), b, trans=trans), expected)
      solve = lambda lu, b: dsl.lu_solve((lu, piv), b, trans=trans)  # noqa: E731
      _same_values(dfdx.jit(solve)(lu, b), expected)
      _same_values(dfdx.vmap(solve)(lu[None], b[None])[0], expected)
      factored = lambda a, b: dsl.lu_solve(dsl.lu_factor(a), b, trans=trans)  # noqa: E731
      _same_values(dfdx.jit(factored)(a, b), expected)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_lu_solve_of_singular_and_regular_factors_together():
  a = np.stack([SINGULAR[0], np.array([[2.0, 1.0], [1.0, 3.0]])])
  b = np.array([1.0, 2.0])
  factors = [sl.lu_factor(m) for m in a]
  with np.errstate(all="ignore"):
    expected = np.stack([sl.lu_solve(f, b) for f in factors])
    solve = lambda a: dsl.lu_solve(dsl.lu_factor(a), b)  # noqa: E731
    _same_values(dfdx.vmap(solve)(a), expected)
    _same_values(dfdx.jit(dfdx.vmap(solve))(a), expected)
    # derivatives: in b, the transposed solve (infs and NaNs for the singular factor, no
    # error); for the regular factor, as before
    lus, pivs = np.stack([f[0] for f in factors]), np.stack([f[1] for f in factors])
    loss = lambda lu, piv, b: dnp.sum(dsl.lu_solve((lu, piv), b))  # noqa: E731
    grads = dfdx.vmap(dfdx.grad(loss, (0, 2)))(lus, pivs, np.stack([b, b]))
    assert not np.all(np.isfinite(grads[1][0]))
    inv = np.linalg.inv(a[1])
    np.testing.assert_allclose(grads[1][1], inv.T @ np.ones(2), rtol=1e-13)
    np.testing.assert_allclose(dfdx.jit(dfdx.grad(lambda a: dnp.sum(solve(a))))(a[1]),
                               -np.outer(inv.T @ np.ones(2), inv @ b), rtol=1e-13)


@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_solve_check_grads_after_the_singularity_branch(trans):
  check_grads(lambda a, b: dsl.lu_solve(dsl.lu_factor(a), b, trans=trans), (A, B[:, 0]), order=2)
  lu, piv = sl.lu_factor(A)
  check_grads(lambda lu, b: dsl.lu_solve((lu, piv), b, trans=trans), (lu, B), order=2)


def test_solve_triangular_still_raises_as_scipys_for_a_singular_triangle():
  a = np.triu(np.ones((3, 3)))
  a[2, 2] = 0.0
  with pytest.raises(np.linalg.LinAlgError):
    sl.solve_triangular(a, np.ones(3))
  for fun in (dsl.solve_triangular, dfdx.jit(dsl.solve_triangular)):
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
      fun(a, np.ones(3))
