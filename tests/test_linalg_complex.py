"""dfdx.numpy.linalg's decompositions at complex matrices: slogdet, cholesky, qr, eigh,
eigvalsh, svd, svdvals, pinv and lstsq (complex64 and complex128).

Forward mode (jvp) and reverse mode (vjp, grad) are checked against central differences of
NumPy's own results, taken separately along real and imaginary directions, to second order;
eigenvectors and singular vectors only through functions invariant under their per-column
phase (the gauge). Also: the gauge and structure the rules promise, closed forms, NumPy's
dtypes on the traced path, stacked inputs, vmap, jit and wide/tall shapes."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad
from dfdx._src.ops import linalg as linalg_ops
from tests.checks import AbstractEvalChecker
from tests.test_complex import wirtinger_fd

la = dnp.linalg
leaves = dfdx.tree.tree_leaves


# ---- inputs -------------------------------------------------------------------------------
def _crandn(rng, shape, scale=1.0):
  return scale * (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape))


def _mh(x):
  return np.conj(np.swapaxes(x, -1, -2))


def _general(rng, shape):
  """Complex entries in the unit square plus 3 on the (rectangular) diagonal: full rank,
  well conditioned."""
  return _crandn(rng, shape) + 3 * np.eye(*shape[-2:])


def _hpd(rng, shape):
  a = _crandn(rng, shape)
  return a @ _mh(a) + 3 * np.eye(shape[-1])


def _spread(rng, shape):
  """Hermitian if square, with eigenvalues (or singular values) at least 1 apart."""
  a = _crandn(rng, shape, 0.25)
  if shape[-1] == shape[-2]:
    a = a + _mh(a)
  return a + np.eye(*shape[-2:]) * 5.0 * np.arange(1, shape[-1] + 1)


def _unread(make, lower=True):
  """`make`'s Hermitian matrix with junk in the triangle LAPACK does not read (the upper for
  `lower`) and on the imaginary parts of the diagonal: NumPy ignores both, and so must the
  derivatives (finite differences see no change there)."""
  def build(rng, shape):
    a = make(rng, shape)
    junk = _crandn(rng, shape)
    junk = np.triu(junk, 1) if lower else np.tril(junk, -1)
    return a + junk + 1j * np.eye(shape[-1]) * rng.uniform(-1, 1, shape[:-1])[..., None, :]
  return build


# ---- a complex-aware finite-difference checker ------------------------------------------
def _is_inexact(x):
  return np.asarray(x).dtype.kind in "fc"


def _direction(x, rng, imag):
  """A random direction like x: real, or (for complex x, with `imag`) purely imaginary; 0 for
  a real x along an imaginary direction."""
  x = np.asarray(x)
  d = rng.standard_normal(x.shape)
  if imag:
    return (1j * d).astype(x.dtype) if x.dtype.kind == "c" else np.zeros_like(x)
  return d.astype(x.dtype)


def _numerical(f, args, dirs, eps):
  plus = leaves(f(*[a + eps * d for a, d in zip(args, dirs)]))
  minus = leaves(f(*[a - eps * d for a, d in zip(args, dirs)]))
  return [(np.asarray(p) - np.asarray(m)) / (2 * eps) if _is_inexact(p) else None
          for p, m in zip(plus, minus)]


def _assert_close(analytic, numeric, what, rtol, atol):
  analytic, numeric = np.asarray(analytic), np.asarray(numeric)
  assert analytic.shape == numeric.shape, (what, analytic.shape, numeric.shape)
  scale = max(1.0, float(np.max(np.abs(numeric), initial=0.0)))
  np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol * scale, err_msg=what)


def _directions(args, rng):
  """Real directions, then imaginary ones if any argument is complex."""
  out = [[_direction(a, rng, False) for a in args]]
  if any(np.iscomplexobj(a) for a in args):
    out.append([_direction(a, rng, True) for a in args])
  return out


def _cotangent(out, rng):
  return dfdx.tree.tree_map(
      lambda o: (_direction(o, rng, False) + _direction(o, rng, True)) if _is_inexact(o)
      else None, out)


def check_complex_jvp(f, args, rng, eps=1e-5, rtol=1e-6, atol=1e-6, name="f"):
  for dirs in _directions(args, rng):
    out, tangent = dfdx.jvp(f, tuple(args), tuple(dirs))
    for i, (o, t, n) in enumerate(zip(leaves(out), leaves(tangent), _numerical(
        f, args, dirs, eps))):
      if n is not None:
        assert np.asarray(t).dtype == np.asarray(o).dtype, (name, i)
        _assert_close(t, n, f"jvp of {name}, output {i}", rtol, atol)


def check_complex_vjp(f, args, rng, eps=1e-5, rtol=1e-6, atol=1e-6, name="f"):
  """<vjp(u), v> = Re sum(conj(vjp(u)) v) against <u, J v> by finite differences."""
  out, pull = dfdx.vjp(f, *args)
  ct = _cotangent(out, rng)
  grads = pull(ct)
  for g, a in zip(grads, args):
    assert np.asarray(g).dtype == np.asarray(a).dtype and np.shape(g) == np.shape(a), name
  for dirs in _directions(args, rng):
    analytic = sum(np.real(np.vdot(g, d)) for g, d in zip(grads, dirs))
    numeric = sum(np.real(np.vdot(c, n)) for c, n in zip(leaves(ct), _numerical(
        f, args, dirs, eps)) if n is not None)
    _assert_close(analytic, numeric, f"vjp of {name}", rtol, atol)


def check_complex_grads(f, args, rng, order=2, name="f", **tol):
  """Forward and reverse mode of f against finite differences up to `order`: the derivative
  functions (jvp along a fixed direction; vjp of a fixed cotangent, as a function of the
  primals and the cotangent) are checked again."""
  args = [np.asarray(a) for a in args]
  check_complex_jvp(f, args, rng, name=name, **tol)
  check_complex_vjp(f, args, rng, name=name, **tol)
  if order < 2:
    return
  dirs = _directions(args, rng)[-1]

  def jvp_f(*primals):
    return dfdx.jvp(f, primals, tuple(dirs))[1]
  check_complex_grads(jvp_f, args, rng, order - 1, f"jvp of {name}", **tol)
  out = f(*args)
  ct_leaves, ct_tree = dfdx.tree.tree_flatten(_cotangent(out, rng))
  n = len(args)

  def vjp_f(*primals_and_ct):
    ct = dfdx.tree.tree_unflatten(ct_tree, list(primals_and_ct[n:]))
    return dfdx.vjp(f, *primals_and_ct[:n])[1](ct)
  vjp_args = args + [np.asarray(c) for c in ct_leaves]
  check_complex_jvp(vjp_f, vjp_args, rng, name=f"vjp of {name}", **tol)
  check_complex_vjp(vjp_f, vjp_args, rng, name=f"vjp of {name}", **tol)


def test_checker_catches_a_wrong_rule(rng):
  # conj is not complex-linear: a rule treating it as the identity must fail the check
  @dfdx.custom_jvp
  def wrong(z):
    return dnp.conj(z)
  wrong.defjvp(lambda primals, tangents: (wrong(primals[0]), tangents[0]))
  z = _crandn(rng, (3,))
  check_complex_jvp(dnp.conj, [z], rng)
  with pytest.raises(AssertionError):
    check_complex_jvp(wrong, [z], rng)
  with pytest.raises(AssertionError):
    check_complex_vjp(wrong, [z], rng)


# ---- gauge-invariant views of eigenvectors and singular vectors ---------------------------
def _eigh_invariants(w, v):
  """w, V diag(g(w)) V^H and |V|^2: unchanged by a phase on any column of V."""
  vh = dnp.conj(dnp.swapaxes(v, -1, -2))
  return w, v @ (dnp.exp(w / 8)[..., :, None] * vh), dnp.abs(v) ** 2


def _svd_invariants(u, s, vh):
  """s, U diag(g(s)) V^H, U diag(g(s)) U^H, V diag(g(s)) V^H, |U|^2 and |V|^2: unchanged by
  a common phase on u_i and v_i."""
  g = dnp.exp(s / 8)
  uh, v = dnp.conj(dnp.swapaxes(u, -1, -2)), dnp.conj(dnp.swapaxes(vh, -1, -2))
  return (s, (u * g[..., None, :]) @ vh, (u * g[..., None, :]) @ uh,
          (v * g[..., None, :]) @ vh, dnp.abs(u) ** 2, dnp.abs(vh) ** 2)


GRAD_CASES = [
    ("slogdet", la.slogdet, _general, (2, 3, 3)),
    ("slogdet_rotated", lambda a: la.slogdet(a * (0.3 - 2j)), _general, (3, 3)),
    ("cholesky", la.cholesky, _unread(_hpd), (2, 3, 3)),
    ("cholesky_upper", lambda a: la.cholesky(a, upper=True), _unread(_hpd, False), (3, 3)),
    ("qr_square", la.qr, _general, (3, 3)),
    ("qr_tall", la.qr, _general, (2, 4, 3)),
    ("qr_wide", la.qr, _general, (3, 5)),
    ("qr_wide_complete", lambda a: la.qr(a, "complete"), _general, (2, 3, 4)),
    ("qr_r", lambda a: la.qr(a, "r"), _general, (4, 3)),
    ("eigh", lambda a: _eigh_invariants(*la.eigh(a)), _unread(_spread), (2, 3, 3)),
    ("eigh_upper", lambda a: _eigh_invariants(*la.eigh(a, "U")), _unread(_spread, False),
     (3, 3)),
    ("eigvalsh", la.eigvalsh, _unread(_spread), (2, 3, 3)),
    ("svd_square", lambda a: _svd_invariants(*la.svd(a)), _spread, (3, 3)),
    ("svd_tall", lambda a: _svd_invariants(*la.svd(a, False)), _spread, (4, 3)),
    ("svd_wide", lambda a: _svd_invariants(*la.svd(a, False)), _spread, (2, 3, 4)),
    ("svd_general", lambda a: _svd_invariants(*la.svd(a, False)), _general, (2, 4, 3)),
    ("svd_values", lambda a: la.svd(a, compute_uv=False), _general, (2, 3, 4)),
    ("svdvals", la.svdvals, _general, (2, 4, 3)),
    ("svd_hermitian_values", lambda a: la.svd(a, hermitian=True, compute_uv=False),
     _unread(_spread), (3, 3)),
    ("pinv_square", la.pinv, _general, (3, 3)),
    ("pinv_tall", la.pinv, _general, (2, 4, 3)),
    ("pinv_wide", la.pinv, _general, (3, 5)),
    ("pinv_hermitian", lambda a: la.pinv(a, hermitian=True), _unread(_spread), (3, 3)),
]


@pytest.mark.parametrize("fun,make,shape", [pytest.param(f, m, s, id=n)
                                            for n, f, m, s in GRAD_CASES])
def test_derivatives_match_finite_differences_to_second_order(fun, make, shape, rng):
  check_complex_grads(fun, [make(rng, shape)], rng, order=2, name=getattr(fun, "__name__"))


def _lstsq(a, b):
  x, residuals, _, s = la.lstsq(a, b)
  return x, residuals, s


@pytest.mark.parametrize("a_shape,b_shape", [((4, 3), (4,)), ((4, 3), (4, 2)), ((3, 3), (3, 2)),
                                             ((3, 5), (3,)), ((3, 5), (3, 2))], ids=str)
def test_lstsq_derivatives_match_finite_differences(a_shape, b_shape, rng):
  a, b = _general(rng, a_shape), _crandn(rng, b_shape)
  check_complex_grads(_lstsq, [a, b], rng, order=2, name="lstsq")
  # a real matrix with a complex right-hand side, and the reverse
  check_complex_grads(_lstsq, [a.real, b], rng, order=1, name="lstsq_real_a")
  check_complex_grads(_lstsq, [a, b.real], rng, order=1, name="lstsq_real_b")


def test_batched_lstsq_through_vmap(rng):
  a, b = _general(rng, (2, 4, 3)), _crandn(rng, (2, 4, 2))
  batched = dfdx.vmap(_lstsq)
  check_complex_grads(batched, [a, b], rng, order=1, name="vmap_lstsq")
  for i in range(2):
    for got, want in zip(batched(a, b), _lstsq(a[i], b[i])):
      np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-12)


# ---- the rules' structure and gauge -------------------------------------------------------
def test_qr_tangents_keep_q_unitary_and_diag_r_real(rng):
  for shape in ((3, 3), (4, 3), (3, 5)):
    a, da = _general(rng, shape), _crandn(rng, shape)
    (q, r), (dq, dr) = dfdx.jvp(la.qr, (a,), (da,))
    omega = _mh(q) @ dq
    np.testing.assert_allclose(omega, -_mh(omega), atol=1e-12)  # skew-Hermitian
    np.testing.assert_allclose(np.imag(np.diagonal(dr)), 0, atol=1e-12)  # as LAPACK's R
    np.testing.assert_allclose(np.imag(np.diagonal(r)), 0, atol=1e-12)
    np.testing.assert_allclose(dq @ r + q @ dr, da, atol=1e-12)
    k = min(shape)  # the imaginary diagonal correction is not vacuous:
    assert np.abs(np.imag(np.diagonal(_mh(q) @ da[:, :k] @ np.linalg.inv(r[:, :k])))).min() \
        > 1e-3


def test_cholesky_tangent_keeps_the_diagonal_real(rng):
  a, da = _hpd(rng, (3, 3)), _crandn(rng, (3, 3))
  l, dl = dfdx.jvp(la.cholesky, (a,), (da,))
  np.testing.assert_allclose(np.imag(np.diagonal(dl)), 0, atol=1e-12)
  np.testing.assert_array_equal(np.triu(dl, 1), 0)
  dh = np.tril(da, -1) + _mh(np.tril(da, -1)) + np.diag(np.diagonal(da).real)
  np.testing.assert_allclose(dl @ _mh(l) + l @ _mh(dl), dh, atol=1e-12)


def test_eigh_gauge_is_zero_diagonal_of_vh_dv(rng):
  a, da = _spread(rng, (4, 4)), _crandn(rng, (4, 4))
  (w, v), (dw, dv) = dfdx.jvp(la.eigh, (a,), (da,))
  assert w.dtype == dw.dtype == np.float64 and dv.dtype == np.complex128
  omega = _mh(v) @ dv
  np.testing.assert_allclose(np.diagonal(omega), 0, atol=1e-12)
  np.testing.assert_allclose(omega, -_mh(omega), atol=1e-12)
  dh = np.tril(da, -1) + _mh(np.tril(da, -1)) + np.diag(np.diagonal(da).real)
  np.testing.assert_allclose(dw, np.real(np.diagonal(_mh(v) @ dh @ v)), atol=1e-12)
  h = np.tril(a, -1) + _mh(np.tril(a, -1)) + np.diag(np.diagonal(a).real)
  np.testing.assert_allclose(dh @ v + h @ dv, dv * w + v * dw, atol=1e-10)  # d(A V = V W)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4)], ids=str)
def test_svd_gauge_and_reconstruction(shape, rng):
  a, da = _spread(rng, shape), _crandn(rng, shape)
  (u, s, vh), (du, ds, dvh) = dfdx.jvp(lambda a: la.svd(a, False), (a,), (da,))
  assert s.dtype == ds.dtype == np.float64
  v, dv = _mh(vh), _mh(dvh)
  np.testing.assert_allclose(np.diagonal(_mh(v) @ dv), 0, atol=1e-12)  # JAX's gauge
  for q, dq in ((u, du), (v, dv)):
    omega = _mh(q) @ dq
    np.testing.assert_allclose(omega, -_mh(omega), atol=1e-12)
  np.testing.assert_allclose((du * s) @ vh + (u * ds) @ vh + (u * s) @ dvh, da, atol=1e-10)
  # the phase of the pair (u_i, v_i) moves: i Im(u_i^H dA v_i) / s_i on U's diagonal
  np.testing.assert_allclose(np.diagonal(_mh(u) @ du),
                             1j * np.imag(np.diagonal(_mh(u) @ da @ v)) / s, atol=1e-12)


# ---- closed forms -------------------------------------------------------------------------
def test_grad_of_logabsdet_is_inverse_conjugate_transpose(rng):
  for a in (_general(rng, (4, 4)), -1j * _general(rng, (3, 3))):
    np.testing.assert_allclose(dfdx.grad(lambda a: la.slogdet(a).logabsdet)(a),
                               _mh(np.linalg.inv(a)), rtol=1e-10)
    da = _crandn(rng, a.shape)
    (sign, logabsdet), (dsign, dlog) = dfdx.jvp(la.slogdet, (a,), (da,))
    t = np.trace(np.linalg.solve(a, da))  # d logabsdet = Re t, d sign = i Im(t) sign
    np.testing.assert_allclose(dlog, t.real, rtol=1e-10)
    np.testing.assert_allclose(dsign, 1j * t.imag * sign, rtol=1e-10)
    assert np.iscomplexobj(dsign) and np.isrealobj(dlog)


def test_grad_of_cholesky_logdet_reads_the_lower_triangle(rng):
  a = _unread(_hpd)(rng, (4, 4))
  h = np.tril(a, -1) + _mh(np.tril(a, -1)) + np.diag(np.diagonal(a).real)
  hinv = np.linalg.inv(h)
  g = dfdx.grad(lambda a: 2 * dnp.sum(dnp.log(dnp.real(dnp.diagonal(la.cholesky(a))))))(a)
  np.testing.assert_allclose(g, 2 * np.tril(hinv, -1) + np.diag(np.diagonal(hinv).real),
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(np.linalg.slogdet(h)[1],
                             2 * np.sum(np.log(np.diagonal(np.linalg.cholesky(a)).real)))


def test_grad_of_frobenius_norm_through_svd_and_eigvalsh(rng):
  # real(trace(A^H A)) = sum(s^2): gradient 2A
  for shape in ((3, 3), (4, 3), (2, 3, 5)):
    a = _general(rng, shape)
    np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(la.svdvals(a) ** 2))(a), 2 * a,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        dfdx.grad(lambda a: dnp.real(dnp.trace(dnp.conj(dnp.swapaxes(a, -1, -2)) @ a,
                                               axis1=-2, axis2=-1)).sum())(a), 2 * a)
  # sum(w^2) = |H|_F^2 of the Hermitian matrix read from the lower triangle
  a = _unread(_spread)(rng, (4, 4))
  g = dfdx.grad(lambda a: dnp.sum(la.eigvalsh(a) ** 2))(a)
  np.testing.assert_allclose(g, 4 * np.tril(a, -1) + 2 * np.diag(np.diagonal(a).real),
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(la.eigvalsh(a)))(a), np.eye(4),
                             atol=1e-12)


def test_grad_of_nuclear_norm_is_u_vh(rng):
  for shape in ((3, 3), (4, 3), (3, 5)):
    a = _general(rng, shape)
    u, _, vh = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(la.svdvals(a)))(a), u @ vh,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dfdx.grad(lambda a: la.norm(a, "nuc"))(a), u @ vh,
                               rtol=1e-10, atol=1e-12)


def test_gradients_match_wirtinger_finite_differences(rng):
  w = _crandn(np.random.default_rng(3), (4, 4))
  cases = [
      (lambda m, a: m.real(m.sum(m.conj(w[:3, :3]) * m.linalg.cholesky(a))), _hpd(rng, (3, 3))),
      (lambda m, a: m.sum(m.abs(m.linalg.qr(a)[0] * w[:, :3]) ** 2) + m.sum(m.imag(
          m.linalg.qr(a)[1] * w[:3, :3])), _general(rng, (4, 3))),
      (lambda m, a: m.imag(m.linalg.slogdet(a)[0]) + m.linalg.slogdet(a)[1],
       _general(rng, (3, 3))),
      (lambda m, a: m.sum(m.linalg.eigvalsh(a) * w[0].real), _spread(rng, (4, 4))),
      (lambda m, a: m.sum(m.linalg.svdvals(a) ** 3), _general(rng, (3, 4))),
      (lambda m, a: m.real(m.sum(m.linalg.pinv(a) * w[:, :3])), _general(rng, (3, 4))),
      (lambda m, a: m.sum(m.abs(m.linalg.lstsq(a, w[:, 0], rcond=None)[0]) ** 2),
       _general(rng, (4, 3))),
  ]
  for f, a in cases:
    np.testing.assert_allclose(dfdx.grad(lambda a: f(dnp, a))(a),
                               wirtinger_fd(lambda a: f(np, a), a), rtol=1e-6, atol=1e-8)


def test_pinv_and_lstsq_match_inverse_and_normal_equations(rng):
  a, da = _general(rng, (3, 3)), _crandn(rng, (3, 3))
  np.testing.assert_allclose(dfdx.jvp(la.pinv, (a,), (da,))[1],
                             dfdx.jvp(la.inv, (a,), (da,))[1], rtol=1e-9, atol=1e-12)
  a, b = _general(rng, (5, 3)), _crandn(rng, (5, 2))

  def normal(a, b):
    ah = dnp.conj(dnp.swapaxes(a, -1, -2))
    return la.solve(ah @ a, ah @ b)
  loss = lambda solver: lambda a, b: dnp.sum(dnp.abs(solver(a, b) - 1j) ** 2)  # noqa: E731
  for got, want in zip(dfdx.grad(loss(lambda a, b: la.lstsq(a, b)[0]), (0, 1))(a, b),
                       dfdx.grad(loss(normal), (0, 1))(a, b)):
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
  # pinv of a wide matrix: A^H (A A^H)^-1
  a = _general(rng, (3, 5))
  f = lambda a: dnp.real(dnp.sum(la.pinv(a) * np.arange(15).reshape(5, 3)))  # noqa: E731
  g = lambda a: dnp.real(dnp.sum(dnp.conj(a.T) @ la.inv(a @ dnp.conj(a.T))  # noqa: E731
                                 * np.arange(15).reshape(5, 3)))
  np.testing.assert_allclose(dfdx.grad(f)(a), dfdx.grad(g)(a), rtol=1e-9, atol=1e-12)


# ---- dtypes, complex64, stacks, vmap, jit -----------------------------------------------
FUNCTIONS = {
    "slogdet": (la.slogdet, _general, (3, 3)),
    "cholesky": (la.cholesky, _hpd, (3, 3)),
    "qr": (la.qr, _general, (4, 3)),
    "qr_wide": (la.qr, _general, (3, 4)),
    "eigh": (lambda a: _eigh_invariants(*la.eigh(a)), _spread, (3, 3)),
    "eigvalsh": (la.eigvalsh, _spread, (3, 3)),
    "svd": (lambda a: _svd_invariants(*la.svd(a, False)), _spread, (4, 3)),
    "svd_wide": (lambda a: _svd_invariants(*la.svd(a, False)), _spread, (3, 4)),
    "svdvals": (la.svdvals, _general, (3, 4)),
    "pinv": (la.pinv, _general, (4, 3)),
    "lstsq": (lambda a: _lstsq(a, np.arange(8.0).reshape(4, 2) * (1 - 1j)), _general, (4, 3)),
    "lstsq_wide": (lambda a: _lstsq(a, np.arange(3.0) * 1j), _general, (3, 4)),
}
FUNCTION_PARAMS = [pytest.param(*v, id=k) for k, v in FUNCTIONS.items()]


def _weights(shape, dtype):
  n = int(np.prod(shape))
  w = np.cos(1.3 * np.arange(n) + 0.2).reshape(shape)
  return (w + 1j * np.sin(0.7 * np.arange(n)).reshape(shape)).astype(dtype) \
      if np.dtype(dtype).kind == "c" else w.astype(dtype)


def _loss(fun):
  """A real scalar that weighs every output of fun (real and imaginary parts)."""
  def loss(a):
    total = 0.0
    for out in leaves(fun(a)):
      w = _weights(out.shape, out.dtype)
      total = total + dnp.sum(dnp.real(dnp.conj(w) * out))
    return total
  return loss


@pytest.mark.parametrize("fun,make,shape", FUNCTION_PARAMS)
def test_complex64_results_and_derivatives_keep_numpys_dtypes(fun, make, shape, rng):
  a128 = make(rng, shape)
  a64 = a128.astype(np.complex64)
  want = [np.asarray(x) for x in leaves(fun(a64))]  # NumPy's own (untraced) results
  got = [np.asarray(x) for x in leaves(AbstractEvalChecker().run(fun, (a64,)))]
  assert [x.dtype for x in got] == [x.dtype for x in want]
  out, tangent = dfdx.jvp(fun, (a64,), (np.ones_like(a64),))
  assert [np.asarray(x).dtype for x in leaves(out)] == [x.dtype for x in want]
  assert [np.asarray(x).dtype for x in leaves(tangent)] == [x.dtype for x in want]
  _, t128 = dfdx.jvp(fun, (a128,), (np.ones_like(a128),))
  for t, t_ref in zip(leaves(tangent), leaves(t128)):
    np.testing.assert_allclose(t, t_ref, rtol=2e-3, atol=2e-3)
  g = dfdx.grad(_loss(fun))(a64)
  assert g.dtype == np.complex64
  np.testing.assert_allclose(g, dfdx.grad(_loss(fun))(a128), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("fun,make,shape", FUNCTION_PARAMS)
def test_vmap_of_grad_matches_stacked_calls_and_jit(fun, make, shape, rng):
  stack = make(rng, (3,) + shape)
  grad = dfdx.grad(_loss(fun))
  want = np.stack([grad(a) for a in stack])
  np.testing.assert_allclose(dfdx.vmap(grad)(stack), want, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(dfdx.vmap(grad, in_axes=1)(np.moveaxis(stack, 0, 1)), want,
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(dfdx.jit(grad)(stack[0]), want[0], rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(grad))(stack), want, rtol=1e-10, atol=1e-12)
  out, tangent = dfdx.jvp(dfdx.vmap(fun), (stack,), (np.ones_like(stack),))
  for i, a in enumerate(stack):
    for t, t_ref in zip(leaves(tangent), leaves(dfdx.jvp(fun, (a,), (np.ones_like(a),))[1])):
      np.testing.assert_allclose(t[i], t_ref, rtol=1e-10, atol=1e-12)


def test_jit_of_grad_equals_grad_for_everything(rng):
  sq, hpd, herm, tall = (_general(rng, (3, 3)), _hpd(rng, (3, 3)), _spread(rng, (3, 3)),
                         _general(rng, (4, 3)))

  def everything(sq, hpd, herm, tall):
    loss = 0.0
    for fun, x in ((la.slogdet, sq), (la.cholesky, hpd), (la.qr, tall),
                   (lambda a: _eigh_invariants(*la.eigh(a)), herm), (la.eigvalsh, herm),
                   (lambda a: _svd_invariants(*la.svd(a, False)), tall), (la.svdvals, sq),
                   (la.pinv, tall), (lambda a: la.pinv(a, hermitian=True), herm),
                   (lambda a: _lstsq(a, tall[:, :2]), tall)):
      loss = loss + _loss(fun)(x)
    return loss
  grad = dfdx.grad(everything, argnums=(0, 1, 2, 3))
  want = grad(sq, hpd, herm, tall)
  for got, w in zip(dfdx.jit(grad)(sq, hpd, herm, tall), want):
    np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12)
    assert got.dtype == np.complex128 and np.abs(w).max() > 0.1
  h = dfdx.hessian(lambda x: dfdx.numpy.real(everything(sq * x, hpd, herm + x, tall)))
  np.testing.assert_allclose(dfdx.jit(h)(1.5), h(1.5), rtol=1e-10)


def test_complex_rules_cover_the_decompositions():
  names = {p.name for p in ad.complex_rules}
  assert {"slogdet", "cholesky", "qr", "eigh", "svd", "pinv", "lstsq"} <= names
  assert linalg_ops.eigh_p in ad.complex_rules and linalg_ops.svd_p in ad.complex_rules


def test_holomorphic_results_of_holomorphic_functions(rng):
  # pinv of an invertible matrix is its inverse: holomorphic, the derivative of inv
  a, da = _general(rng, (3, 3)), _crandn(rng, (3, 3))
  jac = dfdx.jacfwd(lambda z: la.pinv(a + z * da)[0, 1], holomorphic=True)(np.complex128(0.2))
  h = 1e-6
  fd = (np.linalg.inv(a + (0.2 + h) * da)[0, 1] - np.linalg.inv(a + (0.2 - h) * da)[0, 1]) / (
      2 * h)
  np.testing.assert_allclose(jac, fd, rtol=1e-7)
  fd_i = (np.linalg.inv(a + (0.2 + 1j * h) * da)[0, 1]
          - np.linalg.inv(a + (0.2 - 1j * h) * da)[0, 1]) / (2j * h)
  np.testing.assert_allclose(jac, fd_i, rtol=1e-7)


NORMS = [dict(), dict(ord="fro"), dict(ord=2), dict(ord=-2), dict(ord="nuc"), dict(ord=1),
         dict(ord=np.inf), dict(axis=1), dict(axis=0, ord=3), dict(axis=-1, ord=1),
         dict(axis=(0, 1), ord=2), dict(axis=1, keepdims=True)]


@pytest.mark.parametrize("kwargs", NORMS, ids=str)
def test_norm_of_complex_values(kwargs, rng):
  # vector and elementwise norms are those of the magnitudes; 2, -2 and 'nuc' of a matrix
  # take the complex SVD
  z = _crandn(rng, (3, 4))
  np.testing.assert_allclose(dfdx.jit(lambda z: dnp.linalg.norm(z, **kwargs))(z),
                             np.linalg.norm(z, **kwargs), rtol=1e-12)
  check_complex_grads(lambda z: dnp.linalg.norm(z, **kwargs), [z], rng, order=1)


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 3), (1, 1)], ids=str)
def test_adjugate_and_second_derivatives_of_det_at_complex_matrices(shape, rng):
  a = _general(rng, shape)
  np.testing.assert_allclose(
      dfdx.jit(linalg_ops.adjugate)(a),
      np.linalg.det(a)[..., None, None] * np.linalg.inv(a), rtol=1e-10, atol=1e-12)
  check_complex_grads(linalg_ops.adjugate, [a], rng, order=2)
  check_complex_grads(dnp.linalg.det, [a], rng, order=2)


def test_adjugate_derivative_at_a_singular_complex_matrix(rng):
  # rank 1: adj is not det * inv there; its derivative is still exact
  x, y = _crandn(rng, (3, 1)), _crandn(rng, (1, 3))
  check_complex_grads(linalg_ops.adjugate, [x @ y], rng, order=1)


@pytest.mark.parametrize("shape", [(4, 2), (2, 4)], ids=str)
def test_full_and_complete_bases_of_complex_matrices(shape, rng):
  a = _general(rng, shape)
  m, n = shape
  cm = _crandn(rng, (m, m))

  def svd_f(a):
    u, s, vh = dnp.linalg.svd(a)
    uc = u[:, min(m, n):]
    vc = dnp.conj(vh[min(m, n):, :]).T
    return (dnp.real(dnp.sum((uc @ dnp.conj(uc).T) * cm)) + dnp.sum(s ** 3) +
            dnp.real(dnp.sum(vc @ dnp.conj(vc).T)))

  check_complex_grads(svd_f, [a], rng, order=2)
  if m > n:
    def qr_f(a):
      q, r = dnp.linalg.qr(a, "complete")
      qc = q[:, n:]
      return dnp.real(dnp.sum((qc @ dnp.conj(qc).T) * cm)) + dnp.sum(dnp.abs(r) ** 2)
    check_complex_grads(qr_f, [a], rng, order=2)
