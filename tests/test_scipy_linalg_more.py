"""dfdx.scipy.linalg's cholesky, solve, inv, det, eigh, svd, qr, lu, lstsq, norm, block_diag,
toeplitz and circulant: values, dtypes, result tuples and errors against SciPy; derivatives
with check_grads to order 2 (forward and reverse), in closed form, and 0 in the triangles that
are not read; vmap and jit.
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.linalg as dsl
from dfdx.testing import check_grads

sl = pytest.importorskip("scipy.linalg")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((4, 4))
SPD = A @ A.T + 4 * np.eye(4)
B = RNG.standard_normal((4, 2))
V = RNG.standard_normal(4)
TALL = RNG.standard_normal((5, 3))
WIDE = RNG.standard_normal((3, 5))
STACK = RNG.standard_normal((2, 3, 3)) + 3 * np.eye(3)
SPD2 = 3 * np.eye(4) + 0.1 * B @ B.T
# a matrix whose two triangles differ: the structured solvers read only one of them
LOPSIDED = SPD + np.triu(A, 1)


def assert_like(got, expected, rtol=1e-10):
  if isinstance(expected, (tuple, list)):
    assert isinstance(got, tuple) and len(got) == len(expected), (type(got), got)
    for g, e in zip(got, expected):
      assert_like(g, e, rtol)
    return
  if expected is None:
    assert got is None
    return
  assert np.shape(got) == np.shape(expected), (np.shape(got), np.shape(expected))
  assert np.asarray(got).dtype == np.asarray(expected).dtype, (np.asarray(got).dtype,
                                                               np.asarray(expected).dtype)
  np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-12)


# ---- values against SciPy -------------------------------------------------------------------


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("a", [SPD, np.float32(SPD), STACK @ np.swapaxes(STACK, -1, -2),
                               np.array([[4, 2], [2, 3]])], ids=["f64", "f32", "stack", "int"])
def test_cholesky(a, lower):
  assert_like(dsl.cholesky(a, lower=lower), sl.cholesky(a, lower=lower),
              1e-5 if a.dtype == np.float32 else 1e-10)


STRUCTURES = [None, "gen", "general", "sym", "symmetric", "her", "pos", "positive definite",
              "diagonal", "tridiagonal", "banded", "upper triangular", "lower triangular"]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("assume_a", STRUCTURES)
def test_solve(assume_a, lower, transposed):
  a = SPD if assume_a in (None, "gen", "general", "banded") else LOPSIDED
  for b in (B, V, B[:, :1]):
    kwargs = dict(assume_a=assume_a, lower=lower, transposed=transposed)
    assert_like(dsl.solve(a, b, **kwargs), sl.solve(a, b, **kwargs))


def test_solve_batches_and_dtypes():
  assert_like(dsl.solve(STACK, np.ones(3)), sl.solve(STACK, np.ones(3)))
  assert_like(dsl.solve(STACK, np.ones((2, 3, 2))), sl.solve(STACK, np.ones((2, 3, 2))))
  assert_like(dsl.solve(STACK, np.ones((3, 2)), assume_a="pos"),
              sl.solve(STACK, np.ones((3, 2)), assume_a="pos"))
  assert_like(dsl.solve(np.float32(SPD), np.float32(V)), sl.solve(np.float32(SPD), np.float32(V)),
              1e-5)
  assert_like(dsl.solve([[2, 1], [1, 3]], [3, 4]), sl.solve([[2, 1], [1, 3]], [3, 4]))


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("assume_a", [None, "gen", "sym", "her", "pos", "upper triangular",
                                      "lower triangular"])
def test_inv(assume_a, lower):
  assert_like(dsl.inv(LOPSIDED, assume_a=assume_a, lower=lower),
              sl.inv(LOPSIDED, assume_a=assume_a, lower=lower))
  assert_like(dsl.inv(STACK, assume_a=assume_a, lower=lower),
              sl.inv(STACK, assume_a=assume_a, lower=lower))


def test_inv_of_a_diagonal_matrix_is_diagonal():
  # (SciPy 1.17's inv(assume_a='diagonal') inverts the diagonal and keeps the other entries
  # as they were; dfdx returns the inverse of the diagonal matrix that is read, as solve does)
  got = dsl.inv(LOPSIDED, assume_a="diagonal")
  np.testing.assert_array_equal(got, np.diag(1 / np.diag(LOPSIDED)))
  assert_like(got, sl.solve(LOPSIDED, np.eye(4), assume_a="diagonal"))


def test_det():
  for a in (A, STACK, np.float32(A), np.array([[1, 2], [3, 4]]), np.zeros((0, 0))):
    assert_like(dsl.det(a), sl.det(a), 1e-5 if np.asarray(a).dtype == np.float32 else 1e-10)
  assert type(dsl.det(A)) is type(sl.det(A))


def _eigh_like(got, expected):
  """Eigenvalues equal, eigenvectors equal up to sign."""
  if isinstance(expected, tuple):
    (w, v), (w_ref, v_ref) = got, expected
    assert_like(w, w_ref)
    signs = np.sign(np.sum(v * v_ref, axis=-2, keepdims=True))
    assert_like(v * signs, v_ref)
  else:
    assert_like(got, expected)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("kwargs", [{}, dict(eigvals_only=True), dict(subset_by_index=[1, 2]),
                                    dict(subset_by_value=[4.5, 30.0]), dict(driver="evd")])
def test_eigh(kwargs, lower):
  _eigh_like(dsl.eigh(LOPSIDED, lower=lower, **kwargs), sl.eigh(LOPSIDED, lower=lower, **kwargs))


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("kind", [1, 2, 3])
def test_generalized_eigh(kind, lower):
  a = A + A.T + np.triu(A, 1) * (not lower) + np.tril(A, -1) * lower
  b = SPD + np.triu(A, 1) * lower + np.tril(A, -1) * (not lower)  # the other triangle: unread
  for kwargs in ({}, dict(eigvals_only=True), dict(subset_by_index=[0, 1])):
    _eigh_like(dsl.eigh(a, b, type=kind, lower=lower, **kwargs),
               sl.eigh(a, b, type=kind, lower=lower, **kwargs))


def test_eigh_of_stacks():
  sym = STACK + np.swapaxes(STACK, -1, -2)
  w, v = dsl.eigh(sym)
  np.testing.assert_allclose(w, np.linalg.eigvalsh(sym), rtol=1e-12)
  np.testing.assert_allclose(v * w[..., None, :], sym @ v, atol=1e-12)


@pytest.mark.parametrize("a", [A, TALL, WIDE, STACK, np.float32(TALL)], ids=["sq", "tall",
                                                                              "wide", "stack",
                                                                              "f32"])
@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd(a, full_matrices):
  rtol = 1e-5 if a.dtype == np.float32 else 1e-10
  u, s, vh = dsl.svd(a, full_matrices=full_matrices)
  u_ref, s_ref, vh_ref = sl.svd(a, full_matrices=full_matrices)
  assert_like(s, s_ref, rtol)
  k = s.shape[-1]
  signs = np.sign(np.sum(u[..., :k] * u_ref[..., :k], axis=-2))[..., None, :]
  assert_like(u[..., :k] * signs, u_ref[..., :k], rtol)
  assert_like(vh[..., :k, :] * np.swapaxes(signs, -1, -2), vh_ref[..., :k, :], rtol)
  assert u.shape == u_ref.shape and vh.shape == vh_ref.shape
  assert_like(dsl.svd(a, compute_uv=False), sl.svd(a, compute_uv=False), rtol)


@pytest.mark.parametrize("pivoting", [False, True])
@pytest.mark.parametrize("mode", ["full", "economic", "r"])
@pytest.mark.parametrize("a", [A, TALL, WIDE], ids=["sq", "tall", "wide"])
def test_qr(a, mode, pivoting):
  assert_like(dsl.qr(a, mode=mode, pivoting=pivoting), sl.qr(a, mode=mode, pivoting=pivoting))


def test_qr_raw_and_stacks():
  got, expected = dsl.qr(TALL, mode="raw"), sl.qr(TALL, mode="raw")
  assert_like(got[0], expected[0])
  assert_like(dsl.qr(STACK), sl.qr(STACK) if isinstance(sl.qr(STACK), tuple)
              else tuple(sl.qr(STACK)))


@pytest.mark.parametrize("a", [A, TALL, WIDE, STACK, np.float32(A), np.array([[1, 2], [3, 4]]),
                               np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]),
                               np.zeros((0, 3)), np.zeros((3, 0))],
                         ids=["sq", "tall", "wide", "stack", "f32", "int", "tall-pivots",
                              "empty-rows", "empty-cols"])
def test_lu(a):
  rtol = 1e-5 if a.dtype == np.float32 else 1e-10
  expected = sl.lu(a)
  assert_like(dsl.lu(a), tuple(expected), rtol)
  assert_like(dsl.lu(a, permute_l=True), tuple(sl.lu(a, permute_l=True)), rtol)
  assert_like(dsl.lu(a, p_indices=True), tuple(sl.lu(a, p_indices=True)), rtol)


@pytest.mark.parametrize("driver", [None, "gelsd", "gelsy", "gelss"])
@pytest.mark.parametrize("a", [A, TALL, WIDE, np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])],
                         ids=["sq", "tall", "wide", "rank-deficient"])
def test_lstsq(a, driver):
  for b in (np.arange(a.shape[0]) + 1.0, np.stack([np.arange(a.shape[0]) + 1.0,
                                                  np.ones(a.shape[0])], axis=1)):
    got, expected = dsl.lstsq(a, b, lapack_driver=driver), sl.lstsq(a, b, lapack_driver=driver)
    assert_like(got[:2], expected[:2])
    assert type(got[1]) is type(expected[1])
    assert got[2] == expected[2] and type(got[2]) is type(expected[2])
    assert_like(got[3], expected[3])
  assert_like(dsl.lstsq(TALL, V[:5] if V.size >= 5 else np.ones(5), cond=0.5)[:3],
              sl.lstsq(TALL, np.ones(5), cond=0.5)[:3])


@pytest.mark.parametrize("args", [(A,), (A, 2), (A, "fro"), (A, 1), (A, None, 0), (V,),
                                  (V, 1), (V, np.inf), (STACK, None, (1, 2)), (A, np.inf),
                                  (np.float32(V),)])
def test_norm(args):
  assert_like(dsl.norm(*args), sl.norm(*args), 1e-6)
  assert type(dsl.norm(*args)) is type(sl.norm(*args))
  assert_like(dsl.norm(*args, keepdims=True), sl.norm(*args, keepdims=True), 1e-6)


@pytest.mark.parametrize("arrs", [(), ([],), ([], 1, np.float32([[1, 2]]), np.ones((2, 2))),
                                  (A, TALL, 2.0), ([1, 2], [[3], [4]]), (np.ones((0, 2)), 1),
                                  (STACK, np.ones((1, 2))), (np.int8([[1, 2]]), 3)])
def test_block_diag(arrs):
  assert_like(dsl.block_diag(*arrs), sl.block_diag(*arrs))


@pytest.mark.parametrize("c,r", [([1.0, 2.0, 3.0], None), ([1, 2, 3], [9, 5]),
                                 (np.array([1.0, 2.0]), np.array([7.0, 8.0, 9.0, 10.0])),
                                 (3.0, None), (np.ones((2, 3)), RNG.standard_normal((4, 1, 2))),
                                 ([1 + 2j, 3j], None)])
def test_toeplitz(c, r):
  assert_like(dsl.toeplitz(c, r), sl.toeplitz(c, r))


@pytest.mark.parametrize("c", [[1.0, 2.0, 3.0, 4.0], [5], np.ones((2, 3)), [1, 2]])
def test_circulant(c):
  assert_like(dsl.circulant(c), sl.circulant(c))


# ---- errors, as SciPy's --------------------------------------------------------------------


@pytest.mark.parametrize("call,error,match", [
    (lambda m: m.cholesky(np.ones((2, 3))), ValueError, "square"),
    (lambda m: m.cholesky(-np.eye(2)), np.linalg.LinAlgError, ""),
    (lambda m: m.cholesky(np.array([[1.0, np.nan], [0.0, 1.0]])), ValueError, "infs or NaNs"),
    (lambda m: m.solve(np.ones((2, 3)), np.ones(2)), ValueError, "square"),
    (lambda m: m.solve(np.eye(3), np.ones(4)), ValueError, "incompatible shapes"),
    (lambda m: m.solve(np.eye(3), np.ones(3), assume_a="foo"), ValueError,
     "not a recognized matrix structure"),
    (lambda m: m.solve(np.ones((3, 3)), np.ones(3)), np.linalg.LinAlgError, "(?i)singular"),
    (lambda m: m.solve(np.diag([1.0, 0.0]), np.ones(2), assume_a="diagonal"),
     np.linalg.LinAlgError, "(?i)singular"),
    (lambda m: m.inv(np.ones((2, 3))), ValueError, "square"),
    (lambda m: m.inv(np.ones((2, 2))), np.linalg.LinAlgError, "(?i)singular"),
    (lambda m: m.det(np.ones((2, 3))), ValueError, "square"),
    (lambda m: m.eigh(np.eye(3), subset_by_index=[2, 1]), ValueError, "indices are not valid"),
    (lambda m: m.eigh(np.eye(3), driver="foo"), ValueError, "is unknown"),
    (lambda m: m.eigh(np.eye(3), subset_by_index=[0, 1], subset_by_value=[0, 1]), ValueError,
     "Either index or value"),
    (lambda m: m.svd(np.ones(3)), ValueError, "expected matrix"),
    (lambda m: m.svd(np.eye(2), lapack_driver="x"), ValueError, "lapack_driver"),
    (lambda m: m.qr(np.eye(2), mode="x"), ValueError, "Mode argument"),
    (lambda m: m.lu(np.ones(3)), ValueError, "at least two-dimensional"),
    (lambda m: m.lstsq(np.ones(3), np.ones(3)), ValueError, "should be 2D"),
    (lambda m: m.lstsq(np.ones((3, 2)), np.ones(4)), ValueError, "Shape mismatch"),
    (lambda m: m.lstsq(np.ones((3, 2)), np.ones(3), lapack_driver="foo"), ValueError,
     "is not found"),
])
def test_errors_like_scipy(call, error, match):
  with pytest.raises(error, match=match):
    call(sl)
  with pytest.raises(error, match=match):
    call(dsl)


def test_traced_errors():
  with pytest.raises(NotImplementedError, match="mode='raw'"):
    dfdx.grad(lambda a: dsl.qr(a, mode="raw")[0].sum())(A)
  with pytest.raises(dfdx.ConcretizationError if hasattr(dfdx, "ConcretizationError")
                     else Exception, match="subset_by_value"):
    dfdx.vmap(lambda a: dsl.eigh(a, subset_by_value=[0, 10], eigvals_only=True))(
        np.stack([SPD, SPD]))


# ---- derivatives ---------------------------------------------------------------------------

GRADS = [
    ("cholesky", dsl.cholesky, (SPD,)),
    ("cholesky-lower", lambda a: dsl.cholesky(a, lower=True), (SPD,)),
    ("solve", dsl.solve, (A + 3 * np.eye(4), B)),
    ("solve-vector-transposed", lambda a, b: dsl.solve(a, b, transposed=True),
     (A + 3 * np.eye(4), V)),
    ("solve-sym", lambda a, b: dsl.solve(a, b, assume_a="sym"), (LOPSIDED, B)),
    ("solve-pos-lower", lambda a, b: dsl.solve(a, b, assume_a="pos", lower=True),
     (LOPSIDED, B)),
    ("solve-diagonal", lambda a, b: dsl.solve(a, b, assume_a="diagonal"), (SPD, B)),
    ("solve-tridiagonal", lambda a, b: dsl.solve(a, b, assume_a="tridiagonal"), (SPD, B)),
    ("solve-lower-triangular", lambda a, b: dsl.solve(a, b, assume_a="lower triangular",
                                                      transposed=True), (SPD, B)),
    ("solve-stack", dsl.solve, (STACK, np.ones(3))),
    ("inv", dsl.inv, (A + 3 * np.eye(4),)),
    ("inv-pos", lambda a: dsl.inv(a, assume_a="pos"), (SPD,)),
    ("det", dsl.det, (A,)),
    ("det-stack", dsl.det, (STACK,)),
    ("eigh-values", lambda a: dsl.eigh(a, eigvals_only=True), (LOPSIDED,)),
    ("eigh-vectors", lambda a: (lambda w, v: v * v)(*dsl.eigh(a, lower=False)), (LOPSIDED,)),
    ("eigh-subset", lambda a: dsl.eigh(a, subset_by_index=[2, 3])[1] ** 2, (LOPSIDED,)),
    ("eigh-generalized", lambda a, b: dsl.eigh(a, b), (A + A.T, SPD)),
    ("eigh-type2", lambda a, b: (lambda w, v: v * w)(*dsl.eigh(a, b, type=2, lower=False)),
     (A + A.T, SPD)),
    ("eigh-type3", lambda a, b: (lambda w, v: v * w)(*dsl.eigh(a, b, type=3)), (A + A.T, SPD)),
    ("svd-values", lambda a: dsl.svd(a, compute_uv=False), (TALL,)),
    ("svd-reduced", lambda a: (lambda u, s, vh: (u * s) @ vh)(*dsl.svd(a, full_matrices=False)),
     (WIDE,)),
    ("qr-economic", lambda a: dsl.qr(a, mode="economic"), (TALL,)),
    ("qr-full", lambda a: dsl.qr(a)[1], (TALL,)),
    ("qr-r", lambda a: dsl.qr(a, mode="r")[0], (WIDE,)),
    ("qr-pivoting", lambda a: dsl.qr(a, mode="economic", pivoting=True)[:2], (TALL,)),
    ("lu", lambda a: dsl.lu(a)[1:], (A,)),
    ("lu-tall", lambda a: dsl.lu(a)[1:], (TALL,)),
    ("lu-wide-permute_l", lambda a: dsl.lu(a, permute_l=True), (WIDE,)),
    ("lu-stack", lambda a: dsl.lu(a)[1:], (STACK,)),
    ("lstsq", lambda a, b: dsl.lstsq(a, b)[:2], (TALL, np.arange(5.0))),
    ("lstsq-wide", lambda a, b: dsl.lstsq(a, b)[0], (WIDE, np.ones((3, 2)))),
    ("norm", dsl.norm, (TALL,)),
    ("norm-2", lambda a: dsl.norm(a, 2), (TALL,)),
    ("block_diag", lambda a, b: dsl.block_diag(a, b, 2.0), (A, TALL)),
    ("toeplitz", dsl.toeplitz, (TALL[:, 0], WIDE[0])),
    ("circulant", dsl.circulant, (TALL[:, 1],)),
]


@pytest.mark.parametrize("fun,args", [pytest.param(f, a, id=n) for n, f, a in GRADS])
def test_check_grads(fun, args):
  check_grads(fun, args, order=2, rtol=1e-5, atol=1e-6)


def _lower_weights(a_inv):
  """The gradient of f(a) = g(symmetric matrix of a's lower triangle) from the gradient
  a_inv of g (symmetric): doubled below the diagonal, 0 above."""
  return np.tril(2 * a_inv, -1) + np.diag(np.diag(a_inv))


def test_derivatives_in_closed_form():
  inv_spd = np.linalg.inv(SPD)
  # log det through the Cholesky factor of the lower triangle
  logdet = lambda a: 2 * dnp.sum(dnp.log(dnp.diagonal(dsl.cholesky(a, lower=True))))  # noqa
  np.testing.assert_allclose(dfdx.grad(logdet)(LOPSIDED), _lower_weights(inv_spd), rtol=1e-12)
  # upper triangle (SciPy's default) for cholesky and for solve('pos')
  logdet_u = lambda a: 2 * dnp.sum(dnp.log(dnp.diagonal(dsl.cholesky(a))))  # noqa: E731
  np.testing.assert_allclose(dfdx.grad(logdet_u)(LOPSIDED.T), _lower_weights(inv_spd).T,
                             rtol=1e-12)
  # d/db of sum(solve(a, b)) = solve(a^T, 1); d/da = -x^T-weighted
  x = np.linalg.solve(A + 3 * np.eye(4), V)
  ga, gb = dfdx.grad(lambda a, b: dnp.sum(dsl.solve(a, b)), (0, 1))(A + 3 * np.eye(4), V)
  lam = np.linalg.solve((A + 3 * np.eye(4)).T, np.ones(4))
  np.testing.assert_allclose(gb, lam, rtol=1e-12)
  np.testing.assert_allclose(ga, -np.outer(lam, x), rtol=1e-12)
  # eigenvalues: dw_k = v_k^T da v_k, read from the lower triangle
  w, v = np.linalg.eigh(SPD)
  g = dfdx.grad(lambda a: dsl.eigh(a, eigvals_only=True)[-1])(LOPSIDED)
  np.testing.assert_allclose(g, _lower_weights(np.outer(v[:, -1], v[:, -1])), rtol=1e-10,
                             atol=1e-12)
  # d det = det inv^T
  np.testing.assert_allclose(dfdx.grad(dsl.det)(A), np.linalg.det(A) * np.linalg.inv(A).T,
                             rtol=1e-12)


@pytest.mark.parametrize("fun", [
    lambda a: dsl.cholesky(a, lower=True), lambda a: dsl.solve(a, V, assume_a="sym", lower=True),
    lambda a: dsl.solve(a, V, assume_a="pos", lower=True),
    lambda a: dsl.inv(a, assume_a="pos", lower=True),
    lambda a: dsl.eigh(a, eigvals_only=True), lambda a: dsl.eigh(a, SPD2)[1],
    lambda a: dsl.solve(a, V, assume_a="lower triangular")],
    ids=["cholesky", "solve-sym", "solve-pos", "inv-pos", "eigh", "eigh-generalized",
         "solve-triangular"])
def test_unread_triangle_has_zero_derivative(fun):
  jac = dfdx.jacrev(fun)(LOPSIDED)
  above = np.triu(np.ones((4, 4)), 1).astype(bool)
  assert np.all(jac[..., above] == 0.0)
  assert np.any(jac[..., ~above] != 0.0)


def test_lu_factors_and_their_derivatives_reconstruct_a():
  for a in (A, TALL, WIDE):
    p, l, u = dsl.lu(a)
    np.testing.assert_allclose(p @ l @ u, a, atol=1e-12)
    rows, l2, u2 = dsl.lu(a, p_indices=True)
    np.testing.assert_allclose(l2[rows] @ u2, a, atol=1e-12)
    # d(P L U) = da along any direction (P is constant)
    direction = RNG.standard_normal(a.shape)
    _, (dl, du) = dfdx.jvp(lambda a: dsl.lu(a)[1:], (a,), (direction,))
    np.testing.assert_allclose(p @ (dl @ u + l @ du), direction, atol=1e-10)
    assert np.all(np.triu(dl) == 0) and np.all(np.tril(du, -1) == 0)


def test_vmap_and_jit():
  stack = np.stack([TALL, 2 * TALL + 1, TALL[::-1]])
  for fun in (lambda a: dsl.lu(a)[1], lambda a: dsl.qr(a, mode="economic", pivoting=True)[1],
              lambda a: dsl.lstsq(a, np.arange(5.0))[0], lambda a: dsl.norm(a, 2),
              lambda a: dsl.solve(a.T @ a, np.ones(3), assume_a="pos"),
              lambda a: dsl.eigh(a.T @ a, np.eye(3) * 2.0)[0], lambda a: dsl.toeplitz(a[:, 0])):
    expected = np.stack([fun(a) for a in stack])
    np.testing.assert_allclose(dfdx.vmap(fun)(stack), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dfdx.jit(fun)(TALL), fun(TALL), rtol=1e-12, atol=1e-12)
    g = dfdx.grad(lambda a: dnp.sum(fun(a) ** 2))
    np.testing.assert_allclose(dfdx.jit(g)(TALL), g(TALL), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dfdx.vmap(g)(stack), np.stack([g(a) for a in stack]), rtol=1e-10,
                               atol=1e-12)


def test_needs_no_scipy():
  import subprocess
  import sys
  code = ("import sys; sys.modules['scipy'] = None\n"
          "import numpy as np, dfdx, dfdx.scipy.linalg as s\n"
          "a = np.array([[4.0, 2.0], [2.0, 3.0]])\n"
          "print(*[round(float(v), 12) for v in (s.det(a), s.solve(a, [2.0, 1.0], "
          "assume_a='pos')[1], s.eigh(a, eigvals_only=True).sum(), s.cholesky(a)[0, 1], "
          "s.norm(a) ** 2, s.toeplitz([1.0, 2.0]).sum())])\n"
          "try:\n  s.lu(a)\nexcept ImportError as e:\n  print('ImportError')\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["8.0", "0.0", "7.0", "1.0", "33.0", "6.0", "ImportError"]
