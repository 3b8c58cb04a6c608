"""dfdx.numpy.linalg beyond det/inv/solve: slogdet, pinv, lstsq, cholesky, qr, eigh, eigvalsh,
svd, svdvals, matrix_power, multi_dot, matrix_rank, cond and the singular-value norms.

Values and dtypes against NumPy on the traced path (batched too), derivatives against finite
differences and closed forms, finite derivatives at degenerate and singular points, vmap
against stacked calls, jit against eager evaluation, and errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.checks import AbstractEvalChecker, assert_same_array

la = dnp.linalg


def traced(fun, *args):
  """fun(*args) on dfdx's traced path, with every abstract eval checked against its impl."""
  return AbstractEvalChecker().run(fun, args)


def _general(rng, shape):
  """Entries in (-1, 1), plus 3 on the (rectangular) diagonal: full rank, well conditioned."""
  return rng.uniform(-1, 1, shape) + 3 * np.eye(*shape[-2:])


def _spd(rng, shape):
  a = rng.uniform(-1, 1, shape)
  return a @ np.swapaxes(a, -1, -2) + 3 * np.eye(shape[-1])


def _spread(rng, shape):
  """Symmetric if square, with eigenvalues (or singular values) at least 1 apart."""
  a = rng.uniform(-0.25, 0.25, shape)
  if shape[-1] == shape[-2]:
    a = a + np.swapaxes(a, -1, -2)
  return a + np.eye(*shape[-2:]) * 5.0 * np.arange(1, shape[-1] + 1)


def _sign_fixed(v):
  """Eigen- or singular vectors (columns) with a non-negative diagonal entry each."""
  return v * np.sign(dnp.diagonal(v, 0, -2, -1))[..., None, :]


def _spectral(w, v):
  """v diag(exp(w)) v^T: invariant under rotations within eigenspaces."""
  return v @ (dnp.exp(w)[..., :, None] * dnp.swapaxes(v, -1, -2))


# ---- values and dtypes against NumPy ----------------------------------------------------------
SQUARE = [(3, 3), (2, 3, 3), (2, 1, 2, 2), (1, 1), (0, 0), (0, 2, 2)]
RECT = [(4, 3), (3, 4), (2, 4, 3), (2, 1, 3, 2), (3, 3), (0, 2)]
VALUE_CASES = [
    ("slogdet", la.slogdet, np.linalg.slogdet, _general, SQUARE),
    ("cholesky", la.cholesky, np.linalg.cholesky, _spd, SQUARE),
    ("cholesky_upper", lambda a: la.cholesky(a, upper=True),
     lambda a: np.linalg.cholesky(a, upper=True), _spd, SQUARE),
    ("qr", la.qr, np.linalg.qr, _general, RECT),
    ("qr_complete", lambda a: la.qr(a, "complete"), lambda a: np.linalg.qr(a, "complete"),
     _general, RECT),
    ("qr_r", lambda a: la.qr(a, "r"), lambda a: np.linalg.qr(a, "r"), _general, RECT),
    ("eigh", la.eigh, np.linalg.eigh, _general, SQUARE),
    ("eigh_upper", lambda a: la.eigh(a, "u"), lambda a: np.linalg.eigh(a, "U"), _general,
     SQUARE),
    ("eigvalsh", la.eigvalsh, np.linalg.eigvalsh, _general, SQUARE),
    ("svd", la.svd, np.linalg.svd, _general, RECT),
    ("svd_reduced", lambda a: la.svd(a, False), lambda a: np.linalg.svd(a, False), _general,
     RECT),
    ("svd_values", lambda a: la.svd(a, compute_uv=False),
     lambda a: np.linalg.svd(a, compute_uv=False), _general, RECT),
    ("svdvals", la.svdvals, np.linalg.svdvals, _general, RECT),
    ("svd_hermitian_values", lambda a: la.svd(a, hermitian=True, compute_uv=False),
     lambda a: np.linalg.svd(a, hermitian=True, compute_uv=False), _general, SQUARE),
    ("pinv", la.pinv, np.linalg.pinv, _general, RECT),
    ("pinv_rtol", lambda a: la.pinv(a, rtol=None), lambda a: np.linalg.pinv(a, rtol=None),
     _general, RECT[:3]),
    ("pinv_hermitian", lambda a: la.pinv(a, hermitian=True),
     lambda a: np.linalg.pinv(a, hermitian=True), _general, SQUARE[:3]),
    ("matrix_rank", la.matrix_rank, np.linalg.matrix_rank, _general, RECT[:4]),
    ("matrix_rank_hermitian", lambda a: la.matrix_rank(a, hermitian=True),
     lambda a: np.linalg.matrix_rank(a, hermitian=True), _general, SQUARE[:3]),
    ("matrix_rank_tol", lambda a: la.matrix_rank(a, tol=2.5),
     lambda a: np.linalg.matrix_rank(a, tol=2.5), _general, RECT[:4]),
    ("matrix_rank_rtol", lambda a: la.matrix_rank(a, rtol=0.5),
     lambda a: np.linalg.matrix_rank(a, rtol=0.5), _general, RECT[:4]),
    ("cond", la.cond, np.linalg.cond, _general, RECT[:4]),
    ("cond_-2", lambda a: la.cond(a, -2), lambda a: np.linalg.cond(a, -2), _general, RECT[:4]),
    ("cond_fro", lambda a: la.cond(a, "fro"), lambda a: np.linalg.cond(a, "fro"), _general,
     SQUARE[:3]),
    ("cond_inf", lambda a: la.cond(a, np.inf), lambda a: np.linalg.cond(a, np.inf), _general,
     SQUARE[:3]),
    ("matrix_norm", la.matrix_norm, np.linalg.matrix_norm, _general, RECT[:4]),
    ("matrix_norm_nuc", lambda a: la.matrix_norm(a, ord="nuc", keepdims=True),
     lambda a: np.linalg.matrix_norm(a, ord="nuc", keepdims=True), _general, RECT[:4]),
]
VALUE_PARAMS = [pytest.param(f, r, make, s, id=f"{name}-{s}")
                for name, f, r, make, shapes in VALUE_CASES for s in shapes]


@pytest.mark.parametrize("fun,ref,make,shape", VALUE_PARAMS)
def test_values_match_numpy(fun, ref, make, shape, rng):
  a = make(rng, shape)
  expected = ref(a)
  expected = list(expected) if isinstance(expected, tuple) else [expected]
  actual = traced(fun, a)
  assert len(actual) == len(expected)
  for x, e in zip(actual, expected):
    assert_same_array(x, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_], ids=str)
@pytest.mark.parametrize("name,fun,ref", [(n, f, r) for n, f, r, *_ in VALUE_CASES
                                          if not n.startswith("cond")])
def test_dtypes_match_numpy(name, fun, ref, dtype):
  if name == "pinv_rtol" and dtype is not np.float32:
    pytest.skip("NumPy's rtol=None takes finfo of the integer input's dtype and raises")
  a = np.eye(3, dtype=dtype) if dtype is np.bool_ else (
      np.eye(3) * 3 + np.eye(3, k=1) + np.eye(3, k=-1)).astype(dtype)
  expected = ref(a)
  expected = list(expected) if isinstance(expected, tuple) else [expected]
  for x, e in zip(traced(fun, a), expected):
    assert_same_array(x, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("a_shape,b_shape", [((4, 3), (4,)), ((4, 3), (4, 2)), ((3, 3), (3,)),
                                             ((3, 4), (3, 2)), ((4, 3), (4, 0)),
                                             ((0, 3), (0,))], ids=str)
def test_lstsq_matches_numpy(a_shape, b_shape, rng):
  a, b = _general(rng, a_shape), rng.uniform(-1, 1, b_shape)
  for rcond in (None, 1e-3):
    expected = np.linalg.lstsq(a, b, rcond)
    actual = traced(lambda a, b: la.lstsq(a, b, rcond), a, b)
    for x, e in zip(actual, expected):
      assert_same_array(x, e, rtol=1e-10, atol=1e-12)
  a32, b32 = a.astype(np.float32), b.astype(np.float32)
  for x, e in zip(traced(la.lstsq, a32, b32), np.linalg.lstsq(a32, b32)):
    assert_same_array(x, e, rtol=1e-4, atol=1e-5)


def test_lstsq_rank_deficient_residuals_follow_numpy():
  a, b = np.ones((3, 2)), np.array([1.0, 2.0, 4.0])
  expected = np.linalg.lstsq(a, b)
  for x, e in zip(traced(la.lstsq, a, b), expected):
    assert_same_array(x, e, rtol=1e-10, atol=1e-12)
  out = dfdx.jvp(lambda b: la.lstsq(a, b), (b,), (np.ones(3),))[0]
  assert out[1].shape == (0,) and out[2] == 1


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -2, -3])
def test_matrix_power_matches_numpy_and_grads(n, rng):
  for shape in ((3, 3), (2, 2, 2)):
    a = _general(rng, shape)
    assert_same_array(traced(lambda a: la.matrix_power(a, n), a)[0],
                      np.linalg.matrix_power(a, n), rtol=1e-10, atol=1e-13)
  check_grads(lambda a: la.matrix_power(a, n), (a,), order=2, rng=rng)
  ints = np.arange(4).reshape(2, 2)
  assert_same_array(traced(lambda a: la.matrix_power(a, 3), ints)[0],
                    np.linalg.matrix_power(ints, 3))


@pytest.mark.parametrize("shapes", [[(3, 4), (4, 5)], [(4,), (4, 3), (3, 2)],
                                    [(2, 5), (5, 1), (1, 4), (4,)],
                                    [(3,), (3, 6), (6, 2), (2, 5), (5,)],
                                    [(10, 2), (2, 8), (8, 3), (3, 9)]], ids=str)
def test_multi_dot_matches_numpy_and_grads(shapes, rng):
  arrays = [rng.uniform(-1, 1, s) for s in shapes]
  fun = lambda *xs: la.multi_dot(list(xs))  # noqa: E731
  assert_same_array(traced(fun, *arrays)[0], np.linalg.multi_dot(arrays), rtol=1e-12)
  check_grads(fun, tuple(arrays), order=2, rng=rng)


@pytest.mark.parametrize("shape,kw", [
    ((3, 4), dict(ord=2)), ((3, 4), dict(ord=-2)), ((3, 4), dict(ord="nuc")),
    ((2, 3, 4), dict(ord=2, axis=(2, 0))), ((2, 3, 4), dict(ord="nuc", axis=(1, 2),
                                                          keepdims=True)),
    ((2, 3, 4), dict(ord=-2, axis=(0, 1), keepdims=True))], ids=str)
def test_singular_value_norms(shape, kw, rng):
  x = rng.uniform(-1, 1, shape)
  fun = lambda x: la.norm(x, **kw)  # noqa: E731
  assert_same_array(traced(fun, x)[0], np.linalg.norm(x, **kw), rtol=1e-12)
  check_grads(fun, (x,), order=2, rng=rng)


@pytest.mark.parametrize("kw", [{}, dict(ord=1), dict(axis=1), dict(axis=(0, 2), ord=3),
                                dict(axis=(-1,), ord=np.inf, keepdims=True),
                                dict(keepdims=True, ord=0.5), dict(axis=(2, 0, 1))], ids=str)
def test_vector_norm(kw, rng):
  x = rng.uniform(0.3, 2.0, (2, 3, 4)) * rng.choice([-1, 1], (2, 3, 4))
  fun = lambda x: la.vector_norm(x, **kw)  # noqa: E731
  assert_same_array(traced(fun, x)[0], np.linalg.vector_norm(x, **kw), rtol=1e-12)
  check_grads(fun, (x,), order=2, rng=rng)


def test_svd_hermitian_decomposes_the_lower_triangle(rng):
  a = _general(rng, (2, 3, 3))
  u, s, vh = traced(lambda a: la.svd(a, hermitian=True), a)
  sym = np.tril(a) + np.swapaxes(np.tril(a, -1), -1, -2)
  np.testing.assert_allclose(s, np.linalg.svd(a, hermitian=True)[1], rtol=1e-12)
  np.testing.assert_allclose((u * s[..., None, :]) @ vh, sym, atol=1e-12)


_V, _T = np.arange(12.0).reshape(4, 3) / 7, (np.arange(36.0).reshape(6, 2, 3) % 5) / 3
_T = _T + 3 * np.eye(6).reshape(6, 2, 3)
ARRAY_API_CASES = [
    ("trace", lambda x: la.trace(x, offset=1), lambda x: np.linalg.trace(x, offset=1),
     (_T.reshape(3, 4, 3),)),
    ("diagonal", lambda x: la.diagonal(x, offset=-1), lambda x: np.linalg.diagonal(x, offset=-1),
     (_T.reshape(3, 4, 3),)),
    ("outer", la.outer, np.linalg.outer, (_V[0], _V[1])),
    ("cross", la.cross, np.linalg.cross, (_V, _V[::-1])),
    ("matrix_transpose", la.matrix_transpose, np.linalg.matrix_transpose, (_T,)),
    ("tensordot", lambda x, y: la.tensordot(x, y, axes=1),
     lambda x, y: np.linalg.tensordot(x, y, axes=1), (_T, _V.T)),
    ("vecdot", la.vecdot, np.linalg.vecdot, (_V, _V[0])),
    ("tensorinv", la.tensorinv, np.linalg.tensorinv, (_T.reshape(2, 3, 6),)),
    ("tensorinv_1", lambda a: la.tensorinv(a, 1), lambda a: np.linalg.tensorinv(a, 1),
     (_T.reshape(6, 6),)),
    ("tensorsolve", la.tensorsolve, np.linalg.tensorsolve, (_T, _V.ravel()[:6])),
    ("tensorsolve_axes", lambda a, b: la.tensorsolve(a, b, (0,)),
     lambda a, b: np.linalg.tensorsolve(a, b, (0,)), (_T.transpose(1, 0, 2), _V.ravel()[:6])),
]


@pytest.mark.parametrize("fun,ref,args", [pytest.param(f, r, a, id=n)
                                          for n, f, r, a in ARRAY_API_CASES])
def test_tensor_and_array_api_functions(fun, ref, args, rng):
  assert_same_array(traced(fun, *args)[0], ref(*args), rtol=1e-12)
  check_grads(fun, args, order=2, rng=rng)


# ---- derivatives --------------------------------------------------------------------------------
def _eigh_fixed(a):
  w, v = la.eigh(a)
  return w, _sign_fixed(v)


def _svd_fixed(a):
  u, s, vh = la.svd(a, full_matrices=False)
  signs = np.sign(dnp.diagonal(u, 0, -2, -1))
  return u * signs[..., None, :], s, vh * signs[..., :, None]


GRAD_CASES = [
    ("slogdet", lambda a: la.slogdet(a).logabsdet, _general, (2, 3, 3)),
    ("slogdet_negative", lambda a: la.slogdet(-a), _general, (3, 3)),
    ("cholesky", la.cholesky, _spd, (2, 3, 3)),
    ("cholesky_upper", lambda a: la.cholesky(a, upper=True), _spd, (3, 3)),
    ("qr", la.qr, _general, (2, 4, 3)),
    ("qr_wide", la.qr, _general, (3, 5)),
    ("qr_r", lambda a: la.qr(a, "r"), _general, (4, 3)),
    ("eigh", _eigh_fixed, _spread, (2, 3, 3)),
    ("eigh_spectral", lambda a: _spectral(*la.eigh(a, "U")), _general, (3, 3)),
    ("eigvalsh", la.eigvalsh, _general, (2, 3, 3)),
    ("svd", _svd_fixed, _spread, (3, 3)),
    ("svd_tall", _svd_fixed, _spread, (4, 3)),
    ("svd_wide", _svd_fixed, _spread, (2, 3, 4)),
    ("svd_reconstruct", lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ vh)(
        *la.svd(a, False)), _general, (2, 3, 4)),
    ("svdvals", la.svdvals, _general, (2, 4, 3)),
    ("svd_hermitian_values", lambda a: la.svd(a, hermitian=True, compute_uv=False), _spread,
     (3, 3)),
    ("pinv", la.pinv, _general, (2, 3, 4)),
    ("pinv_hermitian", lambda a: la.pinv(a, hermitian=True), _general, (3, 3)),
    ("cond", la.cond, _general, (2, 3, 3)),
    ("matrix_rank", lambda a: a * la.matrix_rank(a), _general, (3, 4)),
    ("det", la.det, _general, (2, 3, 3)),
]


@pytest.mark.parametrize("fun,make,shape", [pytest.param(f, m, s, id=n)
                                            for n, f, m, s in GRAD_CASES])
def test_check_grads_order_2(fun, make, shape, rng):
  check_grads(fun, (make(rng, shape),), order=2, rng=rng)


@pytest.mark.parametrize("a_shape,b_shape", [((4, 3), (4,)), ((4, 3), (4, 2)),
                                             ((3, 4), (3,))], ids=str)
def test_lstsq_grads(a_shape, b_shape, rng):
  a, b = _general(rng, a_shape), rng.uniform(-1, 1, b_shape)
  check_grads(lambda a, b: la.lstsq(a, b)[0], (a, b), order=2, rng=rng)
  check_grads(lambda a, b: la.lstsq(a, b)[1], (a, b), order=2, rng=rng)
  check_grads(lambda a: la.lstsq(a, b)[3], (a,), order=2, rng=rng)


# ---- closed forms ---------------------------------------------------------------------------
def test_grad_of_logabsdet_is_inverse_transpose(rng):
  for a in (_general(rng, (4, 4)), -_general(rng, (3, 3))):
    np.testing.assert_allclose(dfdx.grad(lambda a: la.slogdet(a)[1])(a), np.linalg.inv(a).T,
                               rtol=1e-10)


def _cofactors(a):
  n = a.shape[0]
  return np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1))
                    for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("a", [np.array([[1.0, 2.0], [2.0, 4.0]]),
                               np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1.0]]),
                               np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 2.0]), np.zeros((3, 3)),
                               np.diag([2.0, 3.0, 0.0, 5.0])], ids=["rank1", "rank2", "outer",
                                                                    "zero", "diag"])
def test_grad_det_at_singular_matrix_is_adjugate_transpose(a):
  assert np.linalg.det(a) == pytest.approx(0.0, abs=1e-12)
  g = dfdx.grad(la.det)(a)
  np.testing.assert_allclose(g, _cofactors(a), atol=1e-12)  # cofactor matrix = adj(A)^T
  np.testing.assert_allclose(dfdx.jacfwd(la.det)(a), g, atol=1e-12)
  # det is a polynomial: its Hessian at a singular matrix exists; central differences of
  # the exact gradient are exact up to rounding.
  h = dfdx.hessian(la.det)(a)
  assert np.all(np.isfinite(h))
  e = np.zeros_like(a)
  e[0, 1] = 1.0
  fd = (dfdx.grad(la.det)(a + 1e-3 * e) - dfdx.grad(la.det)(a - 1e-3 * e)) / 2e-3
  np.testing.assert_allclose(h[..., 0, 1], fd, atol=1e-8)
  check_grads(la.det, (a,), order=2)


def test_grad_of_cholesky_logdet_reads_the_lower_triangle(rng):
  a = _spd(rng, (4, 4))
  logdet = lambda a: 2 * dnp.sum(dnp.log(dnp.diagonal(la.cholesky(a))))  # noqa: E731
  a_inv = np.linalg.inv(a)
  expected = 2 * np.tril(a_inv) - np.diag(np.diag(a_inv))
  np.testing.assert_allclose(dfdx.grad(logdet)(a), expected, rtol=1e-10, atol=1e-13)
  upper = lambda a: 2 * dnp.sum(dnp.log(dnp.diagonal(la.cholesky(a, upper=True))))  # noqa
  np.testing.assert_allclose(dfdx.grad(upper)(a), expected.T, rtol=1e-10, atol=1e-13)


def test_grad_of_eigenvalue_is_outer_product_of_eigenvector(rng):
  a = _spread(rng, (3, 3))
  w, v = np.linalg.eigh(a)
  for k in range(3):
    outer = np.outer(v[:, k], v[:, k])
    expected = 2 * np.tril(outer) - np.diag(np.diag(outer))  # the lower triangle is read
    np.testing.assert_allclose(dfdx.grad(lambda a: la.eigvalsh(a)[k])(a), expected,
                               atol=1e-12)


def test_grad_of_singular_value_norms(rng):
  a = _general(rng, (4, 3))
  u, s, vh = np.linalg.svd(a, full_matrices=False)
  np.testing.assert_allclose(dfdx.grad(lambda a: la.norm(a, "nuc"))(a), u @ vh, atol=1e-12)
  np.testing.assert_allclose(dfdx.grad(lambda a: la.norm(a, 2))(a), np.outer(u[:, 0], vh[0]),
                             atol=1e-12)
  np.testing.assert_allclose(dfdx.grad(lambda a: la.norm(a, -2))(a),
                             np.outer(u[:, -1], vh[-1]), atol=1e-12)


def test_pinv_and_lstsq_derivatives_match_normal_equations(rng):
  a, b = _general(rng, (5, 3)), rng.uniform(-1, 1, 5)
  normal = lambda a: la.inv(a.T @ a) @ a.T  # noqa: E731
  for jac in (dfdx.jacfwd, dfdx.jacrev):
    np.testing.assert_allclose(jac(la.pinv)(a), jac(normal)(a), atol=1e-12)
    for x, e in zip(jac(lambda a, b: la.lstsq(a, b)[0], argnums=(0, 1))(a, b),
                    jac(lambda a, b: normal(a) @ b, argnums=(0, 1))(a, b)):
      np.testing.assert_allclose(x, e, atol=1e-12)
  residual = lambda a, b: dnp.sum((b - a @ (normal(a) @ b)) ** 2)  # noqa: E731
  for x, e in zip(dfdx.grad(lambda a, b: la.lstsq(a, b)[1][0], argnums=(0, 1))(a, b),
                  dfdx.grad(residual, argnums=(0, 1))(a, b)):
    np.testing.assert_allclose(x, e, atol=1e-12)


def test_wide_qr_matches_square_part(rng):
  a = _general(rng, (3, 5))
  q = lambda a: la.qr(a)[0]  # noqa: E731
  np.testing.assert_allclose(dfdx.jacfwd(q)(a)[..., 3:], 0.0, atol=1e-14)
  np.testing.assert_allclose(dfdx.jacfwd(q)(a)[..., :3], dfdx.jacfwd(q)(a[:, :3]), atol=1e-12)


# ---- finite at degenerate points --------------------------------------------------------------
def test_eigvalsh_derivatives_at_repeated_eigenvalues_are_exact():
  eye = np.eye(3)
  np.testing.assert_array_equal(dfdx.grad(lambda a: dnp.sum(la.eigvalsh(a)))(eye), eye)
  stack = np.stack([eye, 2 * eye])
  np.testing.assert_array_equal(dfdx.vmap(dfdx.grad(lambda a: dnp.sum(la.eigvalsh(a))))(stack),
                                np.stack([eye, eye]))
  # trace(A) = sum of eigenvalues: linear, so its Hessian is exactly 0.
  h = dfdx.hessian(lambda a: dnp.sum(la.eigvalsh(a)))(eye)
  np.testing.assert_array_equal(h, np.zeros((3, 3, 3, 3)))
  # exp of a matrix with a double eigenvalue: d tr(exp(A)) = exp(A)^T for symmetric A.
  a = np.diag([1.0, 1.0, 2.0])
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(dnp.exp(la.eigvalsh(a))))(a),
                             np.diag(np.exp([1.0, 1.0, 2.0])), rtol=1e-14)


@pytest.mark.parametrize("transform", [dfdx.jacfwd, dfdx.jacrev,
                                       lambda f: dfdx.hessian(lambda a: dnp.sum(f(a)))],
                         ids=["jacfwd", "jacrev", "hessian"])
def test_derivatives_at_the_identity_are_finite(transform):
  eye = np.eye(3)
  for f in (lambda a: _spectral(*la.eigh(a)), lambda a: la.eigh(a)[1],
            lambda a: la.eigvalsh(a) ** 3, lambda a: la.svd(a)[0], lambda a: la.svd(a)[2],
            lambda a: la.norm(a, 2), lambda a: la.pinv(a), lambda a: la.cholesky(a),
            lambda a: la.qr(a)[0]):
    out = transform(f)(eye)
    assert np.all(np.isfinite(out)), f
  assert np.all(np.isfinite(transform(lambda a: la.svd(a, False)[0])(np.eye(4, 3))))
  assert np.all(np.isfinite(transform(lambda a: la.svd(a, False)[2])(np.zeros((2, 3)))))


def test_spectral_function_first_derivative_at_the_identity():
  # f(A) = V diag(exp(w)) V^T = expm(A). At A = I, eigenvector contributions within the
  # degenerate space are dropped: the derivative is exp(1) diag-part of dA (symmetric dA).
  eye = np.eye(3)
  jac = dfdx.jacfwd(lambda a: _spectral(*la.eigh(a)))(eye)
  assert np.all(np.isfinite(jac))
  np.testing.assert_allclose(jac[0, 0, 0, 0], np.e, rtol=1e-14)


def test_singular_value_derivatives_at_repeated_singular_values(rng):
  q = 2 * np.linalg.qr(rng.standard_normal((3, 3)))[0]  # singular values 2, 2, 2
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(la.svdvals(a)))(q), q / 2, atol=1e-14)
  np.testing.assert_allclose(dfdx.grad(lambda a: la.norm(a, "nuc"))(q), q / 2, atol=1e-14)
  for f in (lambda a: la.svd(a)[0], la.pinv, lambda a: la.norm(a, "nuc")):
    assert np.all(np.isfinite(dfdx.jacfwd(f)(q)))
    assert np.all(np.isfinite(dfdx.hessian(lambda a: dnp.sum(f(a)))(q)))
  # The reconstruction u s vh = a: along a rotation of a (a shared rotation of u and v) its
  # derivative is exact even here; the symmetric part within the degenerate space is the one
  # that is dropped (the vectors are not differentiable there).
  rebuilt = lambda a: (lambda u, s, vh: (u * s) @ vh)(*la.svd(a))  # noqa: E731
  skew = rng.standard_normal((3, 3))
  direction = q @ (skew - skew.T)
  np.testing.assert_allclose(dfdx.jvp(rebuilt, (q,), (direction,))[1], direction, atol=1e-12)
  assert np.all(np.isfinite(dfdx.jacfwd(rebuilt)(q)))


# ---- vmap ---------------------------------------------------------------------------------------
VMAP_CASES = [
    ("slogdet", la.slogdet, _general, (3, 3)),
    ("cholesky", lambda a: la.cholesky(a, upper=True), _spd, (3, 3)),
    ("qr", la.qr, _general, (4, 3)),
    ("qr_complete", lambda a: la.qr(a, "complete"), _general, (3, 4)),
    ("eigh", lambda a: _spectral(*la.eigh(a)), _general, (3, 3)),
    ("eigvalsh", la.eigvalsh, _general, (2, 3, 3)),
    ("svd", lambda a: (lambda u, s, vh: (dnp.abs(u), s, dnp.abs(vh)))(*la.svd(a)), _spread,
     (3, 3)),
    ("svdvals", la.svdvals, _general, (2, 4, 3)),
    ("pinv", la.pinv, _general, (3, 4)),
    ("matrix_rank", la.matrix_rank, _general, (3, 4)),
    ("norm_nuc", lambda a: la.norm(a, "nuc"), _general, (3, 4)),
    ("matrix_power", lambda a: la.matrix_power(a, -2), _general, (3, 3)),
    ("det_grad", dfdx.grad(la.det), _general, (3, 3)),
]


@pytest.mark.parametrize("fun,make,shape", [pytest.param(f, m, s, id=n)
                                            for n, f, m, s in VMAP_CASES])
@pytest.mark.parametrize("axis", [0, -1])
def test_vmap_matches_stacked_calls(fun, make, shape, axis, rng):
  examples = [make(rng, shape) for _ in range(3)]
  expected = [fun(e) for e in examples]
  actual = dfdx.vmap(fun, in_axes=axis)(np.stack(examples, axis))
  expected = [list(e) if isinstance(e, tuple) else [e] for e in expected]
  actual = list(actual) if isinstance(actual, tuple) else [actual]
  for k, out in enumerate(actual):
    assert_same_array(out, np.stack([np.asarray(e[k]) for e in expected]), rtol=1e-10,
                      atol=1e-12)


def test_vmap_of_lstsq(rng):
  a, bs = _general(rng, (4, 3)), rng.uniform(-1, 1, (5, 4))
  for in_axes, args in (((None, 0), (a, bs)), ((0, None), (np.stack([a, 2 * a]), bs[0])),
                        ((0, 0), (np.stack([a, 2 * a]), bs[:2]))):
    out = dfdx.vmap(la.lstsq, in_axes=in_axes)(*args)
    size = len(out[0])
    for i in range(size):
      expected = np.linalg.lstsq(*[x if ax is None else x[i] for x, ax in zip(args, in_axes)])
      for o, e in zip(out, expected):
        np.testing.assert_allclose(o[i], e, rtol=1e-10, atol=1e-12)


# ---- jit ----------------------------------------------------------------------------------------
def _everything(a, sq, b):
  u, s, vh = la.svd(a, full_matrices=False)
  q, r = la.qr(a)
  w, v = la.eigh(sq)
  chol = la.cholesky(sq @ sq.T + np.eye(3), upper=True)
  x, residuals, rank, sv = la.lstsq(a, b)
  sign, logabsdet = la.slogdet(sq)
  return (dnp.sum((u * s) @ vh) + dnp.sum(dnp.abs(q)) + dnp.sum(r ** 2) + dnp.sum(_spectral(w, v))
          + dnp.sum(chol) + dnp.sum(x) + dnp.sum(residuals) + dnp.sum(sv) + sign * logabsdet
          + la.det(sq) + dnp.sum(la.pinv(a)) + la.norm(a, "nuc") + la.norm(sq, -2)
          + dnp.sum(la.matrix_power(sq, -3)) + dnp.sum(la.multi_dot([a.T, a, sq, sq]))
          + la.matrix_rank(a) + la.cond(sq) + dnp.sum(la.pinv(sq, hermitian=True))
          + dnp.sum(la.svdvals(a)) + dnp.sum(la.eigvalsh(sq, "U")))


def test_jit_of_grad_equals_grad(rng):
  a, sq, b = _general(rng, (4, 3)), _general(rng, (3, 3)), rng.uniform(-1, 1, 4)
  grad = dfdx.grad(_everything, argnums=(0, 1, 2))
  expected = grad(a, sq, b)
  for x, e in zip(dfdx.jit(grad)(a, sq, b), expected):
    np.testing.assert_allclose(x, e, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(dfdx.jit(_everything)(a, sq, b), _everything(a, sq, b),
                             rtol=1e-12)
  hess = dfdx.hessian(la.det)
  np.testing.assert_allclose(dfdx.jit(hess)(sq), hess(sq), rtol=1e-12, atol=1e-12)


def test_jit_of_decompositions_equals_numpy(rng):
  a, sq = _general(rng, (2, 4, 3)), _general(rng, (3, 3))
  for fun, x in ((lambda a: la.svd(a, compute_uv=False), a), (la.qr, a),
                 (lambda a: la.qr(a, "complete"), a), (la.slogdet, sq),
                 (lambda a: la.eigh(a, "U"), sq), (lambda a: la.pinv(a, 1e-3), a),
                 (lambda a: la.lstsq(a[0], a[1]), a), (dfdx.grad(la.det), np.ones((3, 3)))):
    expected = fun(x)
    actual = dfdx.jit(fun)(x)
    expected = expected if isinstance(expected, tuple) else [expected]
    actual = actual if isinstance(actual, tuple) else [actual]
    for o, e in zip(actual, expected):
      assert_same_array(o, e, rtol=1e-12, atol=1e-14)


# ---- errors -------------------------------------------------------------------------------------
def test_undefined_derivatives_raise_not_implemented(rng):
  tall = _general(rng, (4, 3))
  assert_same_array(traced(la.svd, tall)[0], np.linalg.svd(tall)[0])
  check_grads(lambda a: la.svd(a)[1], (_general(rng, (3, 3)),), order=1)
  with pytest.raises(np.linalg.LinAlgError, match="Singular"):
    dfdx.grad(lambda a: la.slogdet(a)[1])(np.ones((2, 2)))
  with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
    dfdx.grad(lambda a: dnp.sum(la.cholesky(a)))(-np.eye(2))


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: la.qr(a, "raw"), NotImplementedError, "raw"),
    (lambda a: la.qr(a, "bad"), ValueError, "Unrecognized mode 'bad'"),
    (lambda a: la.eigh(a, "X"), ValueError, "UPLO argument must be 'L' or 'U'"),
    (lambda a: la.pinv(a, np.ones(2)), NotImplementedError, "rcond must be one number"),
    (lambda a: la.pinv(a, 0.1, rtol=0.1), ValueError, "can't be both set"),
    (lambda a: la.matrix_power(a, 1.5), TypeError, "exponent must be an integer"),
    (lambda a: la.multi_dot([a]), ValueError, "Expecting at least two arrays"),
    (lambda a: la.multi_dot([a, a, a[None]]), np.linalg.LinAlgError, "two-dimensional"),
    (lambda a: la.lstsq(a[None], a), np.linalg.LinAlgError, "two-dimensional"),
    (lambda a: la.lstsq(a, a[:1]), np.linalg.LinAlgError, "Incompatible dimensions"),
    (lambda a: la.cholesky(a[:, :1]), np.linalg.LinAlgError, "must be square"),
    (lambda a: la.eigh(a[0]), np.linalg.LinAlgError, "at least two-dimensional"),
    (lambda a: la.svd(a[0]), np.linalg.LinAlgError, "at least two-dimensional"),
    (lambda a: la.slogdet(a[:, :1]), np.linalg.LinAlgError, "must be square"),
    (lambda a: la.matrix_power(a[:, :1], 2), np.linalg.LinAlgError, "must be square"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_errors(call, exc, match):
  a = np.eye(2) + 1.0
  with pytest.raises(exc, match=match):
    traced(call, a)


def test_numpy_linalg_dispatches_on_traced_values(rng):
  a = _spread(rng, (3, 3))
  np.testing.assert_allclose(dfdx.grad(lambda a: np.sum(np.linalg.eigvalsh(a)))(a),
                             np.eye(3), atol=1e-12)
  np.testing.assert_allclose(dfdx.grad(lambda a: np.linalg.slogdet(a)[1])(a),
                             np.linalg.inv(a).T, rtol=1e-10)
  np.testing.assert_allclose(dfdx.grad(lambda a: np.linalg.norm(a, "nuc"))(a),
                             dfdx.grad(lambda a: la.norm(a, "nuc"))(a))


# ---- the complement bases of full_matrices / mode='complete' ------------------------------
def _complement_functions(a_shape, rng):
  """Functions of svd(a) (full_matrices) and qr(a, 'complete') that do not depend on the
  basis chosen for a complement: projectors weighted by fixed matrices, plus s and r."""
  m, n = a_shape[-2:]
  cm, cn = rng.normal(size=(m, m)), rng.normal(size=(n, n))

  def svd_f(a):
    u, s, vh = la.svd(a)
    k = min(m, n)
    uc, vc = u[..., :, k:], dnp.swapaxes(vh[..., k:, :], -1, -2)
    return (dnp.sum((uc @ dnp.swapaxes(uc, -1, -2)) * cm) +
            dnp.sum((vc @ dnp.swapaxes(vc, -1, -2)) * cn) + dnp.sum(s ** 2))

  def qr_f(a):
    q, r = la.qr(a, "complete")
    qc = q[..., :, n:]
    return dnp.sum((qc @ dnp.swapaxes(qc, -1, -2)) * cm) + dnp.sum(r ** 2)
  return svd_f, qr_f


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 2), (4, 4)], ids=str)
def test_full_and_complete_bases_differentiate(shape, rng):
  a = _general(rng, shape)
  svd_f, qr_f = _complement_functions(shape, rng)
  check_grads(svd_f, (a,), order=2)
  if shape[-2] >= shape[-1]:  # qr's derivative needs full column rank (or a wide matrix)
    check_grads(qr_f, (a,), order=2)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(svd_f))(a), dfdx.grad(svd_f)(a), rtol=1e-12,
                             atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)], ids=str)
def test_full_and_complete_tangents_keep_the_bases_orthonormal(shape, rng):
  a, t = _general(rng, shape), rng.normal(size=shape)
  (u, s, vh), (du, ds, dvh) = dfdx.jvp(la.svd, (a,), (t,))
  np.testing.assert_allclose(u.T @ du, -(u.T @ du).T, atol=1e-13)
  np.testing.assert_allclose(vh @ dvh.T, -(vh @ dvh.T).T, atol=1e-13)
  (q, r), (dq, dr) = dfdx.jvp(lambda a: la.qr(a, "complete"), (a,), (t,))
  np.testing.assert_allclose(q.T @ dq, -(q.T @ dq).T, atol=1e-13)
  np.testing.assert_allclose(np.tril(dr, -1), 0, atol=1e-13)
  # and they reproduce da: d(u s vh) = da, d(q r) = da
  k = min(shape)
  recon = du[:, :k] * s @ vh[:k] + u[:, :k] * ds @ vh[:k] + u[:, :k] * s @ dvh[:k]
  np.testing.assert_allclose(recon, t, atol=1e-12)
  np.testing.assert_allclose(dq @ r + q @ dr, t, atol=1e-12)


def test_full_and_complete_bases_under_vmap(rng):
  a = _general(rng, (3, 5, 2))
  svd_f, qr_f = _complement_functions((5, 2), rng)
  for f in (svd_f, qr_f):
    np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(a),
                               np.stack([dfdx.grad(f)(x) for x in a]), rtol=1e-12, atol=1e-12)
