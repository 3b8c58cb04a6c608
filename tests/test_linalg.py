"""dfdx.numpy.linalg (norm, det, inv, solve) against NumPy on its traced path, derivatives
against finite differences and closed forms, vmap against stacked calls, and errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.checks import AbstractEvalChecker, assert_same_array

la = dnp.linalg


def traced(fun, *args):
  """fun(*args) on dfdx's traced path, with every abstract eval checked against its impl."""
  return AbstractEvalChecker().run(fun, args)[0]


def _matrices(rng, shape, dtype=np.float64):
  """Well-conditioned matrices: uniform entries in (-1, 1) plus 3 I."""
  a = rng.uniform(-1, 1, shape)
  if len(shape) >= 2 and shape[-1] == shape[-2]:
    a = a + 3 * np.eye(shape[-1])
  return a.astype(dtype)


def _away_from_zero(rng, shape):
  return rng.uniform(0.3, 2.0, shape) * rng.choice([-1, 1], shape)


# ---- det, inv, solve --------------------------------------------------------------------------
SQUARE = [(3, 3), (1, 1), (2, 3, 3), (2, 1, 2, 2), (0, 0), (2, 0, 0), (0, 2, 2)]


@pytest.mark.parametrize("shape", SQUARE, ids=str)
@pytest.mark.parametrize("name", ["det", "inv"])
def test_det_inv_match_numpy_and_grads(name, shape, rng):
  a = _matrices(rng, shape)
  fun = getattr(la, name)
  assert_same_array(traced(fun, a), getattr(np.linalg, name)(a), rtol=1e-12)
  check_grads(fun, (a,), order=2, rng=rng)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float32, np.bool_], ids=str)
@pytest.mark.parametrize("name", ["det", "inv"])
def test_det_inv_dtypes(name, dtype):
  a = (np.eye(3) * 2 + np.eye(3, k=1)).astype(dtype)
  expected = getattr(np.linalg, name)(a)
  assert_same_array(traced(getattr(la, name), a), expected, rtol=1e-6)


SOLVE = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 1)),
         ((2, 3, 3), (3, 2)), ((3, 3), (2, 3, 2)), ((2, 1, 3, 3), (4, 3, 2)), ((0, 0), (0,)),
         ((0, 0), (0, 2)), ((0, 2, 2), (2, 1)), ((1, 1), (1,))]


@pytest.mark.parametrize("a_shape,b_shape", SOLVE, ids=str)
def test_solve_matches_numpy_and_grads(a_shape, b_shape, rng):
  a, b = _matrices(rng, a_shape), rng.uniform(-1, 1, b_shape)
  assert_same_array(traced(la.solve, a, b), np.linalg.solve(a, b), rtol=1e-12)
  check_grads(la.solve, (a, b), order=2, rng=rng)


@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64),
                                    (np.int64, np.int64), (np.float32, np.int32)], ids=str)
def test_solve_dtypes(dtypes):
  a = (np.eye(3) * 2 + np.eye(3, k=1)).astype(dtypes[0])
  b = np.arange(3).astype(dtypes[1])
  assert_same_array(traced(la.solve, a, b), np.linalg.solve(a, b), rtol=1e-6)
  assert_same_array(traced(la.solve, a, b[:, None]), np.linalg.solve(a, b[:, None]), rtol=1e-6)


# ---- closed forms ---------------------------------------------------------------------------
def test_grad_det_is_det_times_inverse_transpose(rng):
  a = _matrices(rng, (4, 4))
  expected = np.linalg.det(a) * np.linalg.inv(a).T
  np.testing.assert_allclose(dfdx.grad(la.det)(a), expected, rtol=1e-10)
  stack = _matrices(rng, (3, 4, 4))
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(la.det))(stack),
                             np.linalg.det(stack)[:, None, None] *
                             np.linalg.inv(stack).transpose(0, 2, 1), rtol=1e-10)
  # d log|det A| / dA = A^-T
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.log(dnp.abs(la.det(a))))(a),
                             np.linalg.inv(a).T, rtol=1e-10)


def test_grad_of_sum_of_inverse(rng):
  a = _matrices(rng, (3, 3))
  a_inv_t = np.linalg.inv(a).T
  expected = -a_inv_t @ np.ones((3, 3)) @ a_inv_t  # d sum(A^-1) = -sum(A^-1 dA A^-1)
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(la.inv(a)))(a), expected, rtol=1e-10)


def test_jacobian_of_solve(rng):
  a, b = _matrices(rng, (3, 3)), rng.uniform(-1, 1, 3)
  x, a_inv = np.linalg.solve(a, b), np.linalg.inv(a)
  for jac in (dfdx.jacfwd, dfdx.jacrev):
    np.testing.assert_allclose(jac(la.solve, argnums=1)(a, b), a_inv, rtol=1e-10, atol=1e-14)
    # dx_i / dA_jk = -(A^-1)_ij x_k
    np.testing.assert_allclose(jac(la.solve, argnums=0)(a, b),
                               -np.einsum("ij,k->ijk", a_inv, x), rtol=1e-10, atol=1e-14)


def test_hessian_of_log_det_is_symmetric_and_closed_form(rng):
  a = _matrices(rng, (3, 3))
  h = dfdx.hessian(lambda a: dnp.log(la.det(a)))(a)
  a_inv = np.linalg.inv(a)
  # d2 log det = -tr(A^-1 dA A^-1 dB):  H[i,j,k,l] = -(A^-1)[j,k] (A^-1)[l,i]
  np.testing.assert_allclose(h, -np.einsum("jk,li->ijkl", a_inv, a_inv), rtol=1e-10,
                             atol=1e-14)


def test_derivative_of_det_at_a_singular_matrix_is_the_adjugate():
  singular = np.array([[1.0, 2.0], [2.0, 4.0]])
  assert float(la.det(singular)) == 0.0
  np.testing.assert_allclose(dfdx.grad(la.det)(singular), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-14)
  # inv has no derivative there (it has no value): an error, not a wrong number.
  with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
    dfdx.grad(lambda a: dnp.sum(la.inv(a)))(singular)


# ---- vmap -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,shapes,in_axes", [
    ("det", [(3, 3)], (0,)), ("det", [(3, 3)], (2,)), ("inv", [(2, 3, 3)], (1,)),
    ("solve", [(3, 3), (3,)], (0, 0)), ("solve", [(3, 3), (3,)], (None, 0)),
    ("solve", [(3, 3), (3,)], (0, None)), ("solve", [(3, 3), (3, 2)], (None, 2)),
    ("solve", [(2, 3, 3), (3, 2)], (None, 0)), ("solve", [(3, 3), (2, 3, 2)], (0, None)),
    ("solve", [(2, 3, 3), (4, 1, 3, 2)], (3, 1)), ("solve", [(2, 3, 3), (3,)], (None, 0)),
])
def test_vmap_matches_stacked_calls(name, shapes, in_axes, rng):
  fun = getattr(la, name)
  examples = [[_matrices(rng, s) for s in shapes] for _ in range(3)]
  batched = [examples[0][i] if ax is None else np.stack([e[i] for e in examples], ax)
             for i, ax in enumerate(in_axes)]
  expected = np.stack([fun(*[e[i] if ax is not None else examples[0][i]
                             for i, ax in enumerate(in_axes)]) for e in examples])
  assert_same_array(dfdx.vmap(fun, in_axes=in_axes)(*batched), expected, rtol=1e-10)


def test_vmap_of_solve_over_right_hand_sides_factorizes_once(rng, monkeypatch):
  from dfdx._src.ops import linalg as linalg_ops
  calls = []
  impl = linalg_ops.solve_p.impl
  monkeypatch.setattr(linalg_ops.solve_p, "impl", lambda a, b: calls.append(b.shape) or impl(a, b))
  a, bs = _matrices(rng, (3, 3)), rng.uniform(-1, 1, (5, 3))
  np.testing.assert_allclose(dfdx.vmap(la.solve, in_axes=(None, 0))(a, bs),
                             np.linalg.solve(a, bs.T).T, rtol=1e-12)
  assert calls == [(3, 5)]


# ---- norm -------------------------------------------------------------------------------------
VECTOR_ORDS = [None, 2, 1, np.inf, -np.inf, 0, 3, 0.5, 2.5, -1, -2.5]
NORMS = ([((4,), dict(ord=o)) for o in VECTOR_ORDS]
         + [((2, 3), dict(ord=o, axis=ax)) for o in (None, 1, np.inf, 3) for ax in (0, -1)]
         + [((2, 3), dict(ord=2, axis=1, keepdims=True)), ((2, 3, 4), dict(ord=-np.inf, axis=1))]
         + [((3, 4), dict(ord=o)) for o in (None, "fro", 1, -1, np.inf, -np.inf)]
         + [((2, 3, 4), dict(ord=o, axis=(2, 0))) for o in ("fro", 1, -1, np.inf, -np.inf)]
         + [((2, 3, 4), dict(ord=o, axis=(1, 2), keepdims=True)) for o in (1, np.inf, None)]
         + [((), {}), ((2, 3, 4), {}), ((2, 3), dict(keepdims=True)), ((2, 3), dict(axis=(0, 1)))]
         + [((0,), {}), ((0, 3), dict(ord=np.inf, axis=0)), ((0, 3), dict(ord=1)),
            ((3, 0), dict(ord=np.inf)), ((0, 3), dict(ord=2, axis=1))])
NORM_IDS = [f"{s}-{kw}" for s, kw in NORMS]


@pytest.mark.parametrize("shape,kw", NORMS, ids=NORM_IDS)
def test_norm_matches_numpy_and_grads(shape, kw, rng):
  x = _away_from_zero(rng, shape)
  fun = lambda x: la.norm(x, **kw)  # noqa: E731
  with np.errstate(divide="ignore"):
    assert_same_array(traced(fun, x), np.linalg.norm(x, **kw), rtol=1e-12)
  check_grads(fun, (x,), order=2, rng=rng)


@pytest.mark.parametrize("kw", [{}, dict(ord=1, axis=0), dict(ord=np.inf), dict(ord=3, axis=1)],
                         ids=str)
def test_norm_dtypes(kw):
  for x in (np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(6).reshape(2, 3) - 2):
    assert_same_array(traced(lambda x: la.norm(x, **kw), x), np.linalg.norm(x, **kw),
                      rtol=1e-6)


def test_norm_gradient_at_zero_is_the_zero_subgradient_not_nan():
  for kw in ({}, dict(ord=3), dict(ord="fro")):
    zeros = np.zeros((2, 2)) if kw.get("ord") == "fro" else np.zeros(3)
    g = dfdx.grad(lambda x: la.norm(x, **kw))(zeros)
    assert_same_array(g, np.zeros_like(zeros))
  np.testing.assert_allclose(dfdx.grad(la.norm)(np.array([3.0, 4.0])), [0.6, 0.8])


def test_vmap_norm(rng):
  x = _away_from_zero(rng, (4, 3, 2))
  for kw in ({}, dict(ord=1), dict(ord=np.inf, axis=0)):
    expected = np.stack([np.linalg.norm(x[:, i], **kw) for i in range(3)])
    assert_same_array(dfdx.vmap(lambda v: la.norm(v, **kw), in_axes=1)(x), expected, rtol=1e-12)


@pytest.mark.parametrize("ord", ["nuc", 2, -2])
def test_norms_from_singular_values(ord, rng):
  x = _away_from_zero(rng, (2, 3, 4))
  for kw in (dict(axis=(1, 2)), dict(axis=(2, 0), keepdims=True)):
    fun = lambda x: la.norm(x, ord, **kw)  # noqa: E731
    assert_same_array(traced(fun, x), np.linalg.norm(x, ord, **kw), rtol=1e-12)
    check_grads(fun, (x,), order=2, rng=rng)


@pytest.mark.parametrize("shape,kw,match", [
    ((3,), dict(ord="fro"), "Invalid norm order 'fro' for vectors"),
    ((2, 2), dict(ord=3), "Invalid norm order for matrices"),
    ((2, 2, 2), dict(ord=1), "Improper number of dimensions to norm"),
    ((2, 2, 2), dict(axis=(0, 1, 2)), "Improper number of dimensions to norm"),
    ((2, 2), dict(axis=(1, -1)), "Duplicate axes given"),
])
def test_norm_errors(shape, kw, match):
  with pytest.raises(ValueError, match=match):
    np.linalg.norm(np.ones(shape), **kw)
  with pytest.raises(ValueError, match=match):
    traced(lambda x: la.norm(x, **kw), np.ones(shape))


# ---- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fun,shapes", [
    ("det", [(2, 3)]), ("det", [(3,)]), ("inv", [(2, 3)]), ("inv", [(3,)]),
    ("solve", [(3, 3), (4,)]), ("solve", [(3, 3), (4, 2)]), ("solve", [(2, 3), (3,)]),
    ("solve", [(4, 3, 3), (2, 3, 2)]),
])
def test_errors_are_numpys(fun, shapes):
  args = [np.ones(s) + np.eye(*s[-2:]) if len(s) >= 2 else np.ones(s) for s in shapes]
  with pytest.raises((ValueError, np.linalg.LinAlgError)) as numpy_error:
    getattr(np.linalg, fun)(*args)
  with pytest.raises(type(numpy_error.value)) as info:
    traced(getattr(la, fun), *args)
  assert str(info.value).startswith(str(numpy_error.value).split(" (")[0][:40])


def test_dispatch_from_numpy_linalg_on_traced_values(rng):
  a = _matrices(rng, (3, 3))
  np.testing.assert_allclose(dfdx.grad(np.linalg.det)(a), np.linalg.det(a) * np.linalg.inv(a).T,
                             rtol=1e-10)
  assert_same_array(traced(lambda x: np.linalg.norm(x, 1), a), np.linalg.norm(a, 1))


# ---- triangular_solve (the primitive; dfdx.scipy.linalg.solve_triangular is tested in
# tests/test_scipy_linalg.py) ---------------------------------------------------------------
from dfdx._src.ops import linalg as linalg_ops  # noqa: E402


def _triangular_reference(a, b, lower, trans, unit_diagonal):
  """NumPy's solve on the masked triangle (op(T) with T^H for trans 2)."""
  n = a.shape[-1]
  t = np.tril(a, -1 if unit_diagonal else 0) if lower else np.triu(a, int(unit_diagonal))
  t = t + np.eye(n) if unit_diagonal else t
  t = np.swapaxes(t, -1, -2) if trans else t
  return np.linalg.solve(np.conj(t) if trans == 2 else t, b)


def _no_scipy(monkeypatch):
  """The impl as it runs where SciPy does not import."""
  monkeypatch.setitem(linalg_ops._triangular_namespace, "_linalg_trtrs_for", lambda dtype, check=True: None)


TRIANGULAR = [((4, 4), (4, 3)), ((4, 4), (4,)), ((2, 4, 4), (4, 1)), ((4, 4), (3, 4, 2)),
              ((2, 1, 4, 4), (3, 4, 2)), ((30, 3, 3), (30, 3, 2)), ((2, 20, 20), (2, 20, 3)),
              ((0, 0), (0, 2)), ((3, 3), (3, 0)), ((0, 3, 3), (3, 1))]


@pytest.mark.parametrize("scipy_present", [True, False], ids=["scipy", "numpy"])
@pytest.mark.parametrize("a_shape,b_shape", TRIANGULAR, ids=str)
def test_triangular_solve_matches_a_solve_of_the_triangle(a_shape, b_shape, scipy_present, rng,
                                                          monkeypatch):
  if not scipy_present:
    _no_scipy(monkeypatch)
  a = rng.uniform(-1, 1, a_shape) + 3 * np.eye(a_shape[-1])
  b = rng.uniform(-1, 1, b_shape)
  strided = np.concatenate([a, a], -1)[..., :a_shape[-1]]  # neither C nor F ordered
  for layout in (a, np.asfortranarray(a), strided):
    for lower in (True, False):
      for trans in (0, 1):
        for unit in (False, True):
          got = traced(lambda a, b: linalg_ops.triangular_solve(
              a, b, lower=lower, trans=trans, unit_diagonal=unit), layout, b)
          assert_same_array(got, _triangular_reference(a, b, lower, trans, unit), rtol=1e-11)
          assert got.flags.c_contiguous


@pytest.mark.parametrize("scipy_present", [True, False], ids=["scipy", "numpy"])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64),
                                    (np.int64, np.int64), (np.complex64, np.float32),
                                    (np.complex128, np.complex128), (np.float64, np.complex64)],
                         ids=str)
def test_triangular_solve_dtypes_and_complex(dtypes, scipy_present, rng, monkeypatch):
  if not scipy_present:
    _no_scipy(monkeypatch)
  a = rng.uniform(-1, 1, (2, 5, 5)) + 4 * np.eye(5)
  b = rng.uniform(-1, 1, (5, 2))
  if np.dtype(dtypes[0]).kind == "c":
    a = a + 1j * rng.uniform(-1, 1, a.shape)
  if np.dtype(dtypes[1]).kind == "c":
    b = b + 1j * rng.uniform(-1, 1, b.shape)
  a, b = a.astype(dtypes[0]), b.astype(dtypes[1])
  for lower in (True, False):
    for trans in (0, 1, 2):
      got = traced(lambda a, b: linalg_ops.triangular_solve(a, b, lower=lower, trans=trans),
                   a, b)
      expected = _triangular_reference(a, b, lower, trans, False)
      assert got.dtype == expected.dtype == np.linalg.solve(a, b).dtype
      np.testing.assert_allclose(got, expected, rtol=1e-5 if got.dtype.itemsize <= 8 else 1e-12)


@pytest.mark.parametrize("scipy_present", [True, False], ids=["scipy", "numpy"])
def test_triangular_solve_of_a_zero_diagonal_is_singular(scipy_present, monkeypatch):
  if not scipy_present:
    _no_scipy(monkeypatch)
  a = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 3.0]])
  solve = lambda a, b, lower=True, **kw: linalg_ops.triangular_solve(  # noqa: E731
      a, b, lower=lower, **kw)
  for args in ((a, np.ones(3)), (np.stack([np.eye(3), a]), np.ones((3, 2))),
               (a.T, np.ones(3), False)):
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix.*entry 1 of the triangle"):
      traced(solve, *args)
  # the other triangle and, with a unit diagonal, the diagonal are not read
  assert_same_array(traced(lambda a, b: solve(a, b, unit_diagonal=True), a, np.ones(3)),
                    _triangular_reference(a, np.ones(3), True, 0, True))
  with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
    dfdx.grad(lambda a: dnp.sum(solve(a, np.ones(3))))(a)


def test_triangular_solve_paths(rng, monkeypatch):
  # One LAPACK call per matrix (or one for a single matrix and a stack of right-hand sides);
  # NumPy's general solve only for stacks of tiny matrices or without SciPy.
  calls = []
  solve = np.linalg.solve
  monkeypatch.setattr(np.linalg, "solve", lambda a, b: calls.append(np.shape(a)) or solve(a, b))
  run = lambda a, b: linalg_ops.triangular_solve(a, b, lower=True)  # noqa: E731
  run(np.eye(3) * 2, np.ones((4, 3, 2)))
  run(np.eye(40) * 2 + np.ones((5, 40, 40)), np.ones((40, 1)))
  assert calls == []
  run(np.eye(3) * 2 + np.ones((5, 3, 3)), np.ones((3, 1)))
  assert calls == [(5, 3, 3)]
  _no_scipy(monkeypatch)
  run(np.eye(40) * 2, np.ones(40))
  assert calls[1:] == [(40, 40)]


def test_triangular_solve_derivatives_read_the_triangle(rng):
  a, b = rng.uniform(-1, 1, (4, 4)) + 3 * np.eye(4), rng.uniform(-1, 1, (4, 2))
  for lower, trans, unit in ((True, 0, False), (False, 1, True), (True, 1, True)):
    f = lambda a, b: linalg_ops.triangular_solve(  # noqa: E731
        a, b, lower=lower, trans=trans, unit_diagonal=unit)
    check_grads(f, (a, b), order=2, rng=rng)
    grad = dfdx.grad(lambda a: dnp.sum(f(a, b) ** 2))(a)
    unread = np.triu(np.ones((4, 4)), 1) if lower else np.tril(np.ones((4, 4)), -1)
    unread = unread + np.eye(4) if unit else unread
    assert np.all(grad[unread == 1] == 0) and np.all(grad[unread == 0] != 0)
    # closed form: x = op(T)^-1 b, d sum(x * g) / db = op(T)^-T g
    g = rng.uniform(-1, 1, (4, 2))
    t = _triangular_reference(a, np.eye(4), lower, trans, unit)  # op(T)^-1
    np.testing.assert_allclose(dfdx.grad(lambda b: dnp.sum(f(a, b) * g))(b), t.T @ g,
                               rtol=1e-12)


def test_triangular_solve_complex_derivatives(rng):
  from tests.test_complex import wirtinger_fd
  a = rng.uniform(-1, 1, (3, 3)) + 1j * rng.uniform(-1, 1, (3, 3)) + 3 * np.eye(3)
  b = rng.uniform(-1, 1, (3, 2)) + 1j * rng.uniform(-1, 1, (3, 2))
  w = rng.uniform(-1, 1, (3, 2)) + 1j * rng.uniform(-1, 1, (3, 2))
  for lower, trans in ((True, 0), (False, 1), (True, 2)):
    solve = lambda a, b, m: _triangular_reference(a, b, lower, trans, False) if m is np \
        else linalg_ops.triangular_solve(a, b, lower=lower, trans=trans)  # noqa: E731
    loss = lambda m, a, b: m.real(m.sum(w * solve(a, b, m) ** 2))  # noqa: E731
    for argnum, x in ((0, a), (1, b)):
      at = lambda z: loss(np, z, b) if argnum == 0 else loss(np, a, z)  # noqa: E731
      got = dfdx.grad(lambda z: loss(dnp, z, b) if argnum == 0 else loss(dnp, a, z))(x)
      np.testing.assert_allclose(got, wirtinger_fd(at, x), rtol=1e-6, atol=1e-8)
    # forward mode along a complex direction, to second order
    da = rng.uniform(-1, 1, (3, 3)) + 1j * rng.uniform(-1, 1, (3, 3))
    path = lambda t: solve(a + t * da, b, dnp)  # noqa: E731
    eps = 1e-4
    fd2 = (solve(a + eps * da, b, np) - 2 * solve(a, b, np) + solve(a - eps * da, b, np)) / eps**2
    second = dfdx.jvp(lambda t: dfdx.jvp(path, (t,), (1.0,))[1], (0.0,), (1.0,))[1]
    np.testing.assert_allclose(second, fd2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shapes,in_axes", [
    ([(3, 3), (3, 2)], (0, 0)), ([(3, 3), (3, 2)], (None, 0)), ([(3, 3), (3, 2)], (0, None)),
    ([(3, 3), (3, 2)], (None, 2)), ([(2, 3, 3), (3, 2)], (None, 0)),
    ([(2, 3, 3), (4, 1, 3, 2)], (3, 1)), ([(3, 3), (2, 3, 2)], (1, None))], ids=str)
def test_vmap_of_triangular_solve(shapes, in_axes, rng):
  fun = lambda a, b: linalg_ops.triangular_solve(a, b, lower=False, trans=1)  # noqa: E731
  examples = [[_matrices(rng, s) for s in shapes] for _ in range(3)]
  batched = [examples[0][i] if ax is None else np.stack([e[i] for e in examples], ax)
             for i, ax in enumerate(in_axes)]
  expected = np.stack([fun(*[e[i] if ax is not None else examples[0][i]
                             for i, ax in enumerate(in_axes)]) for e in examples])
  assert_same_array(dfdx.vmap(fun, in_axes=in_axes)(*batched), expected, rtol=1e-12)


def test_vmap_of_triangular_solve_over_right_hand_sides_is_one_call(rng, monkeypatch):
  calls = []
  impl = linalg_ops.triangular_solve_p.impl
  monkeypatch.setattr(linalg_ops.triangular_solve_p, "impl",
                      lambda a, b, **p: calls.append(b.shape) or impl(a, b, **p))
  a, bs = _matrices(rng, (3, 3)), rng.uniform(-1, 1, (5, 3))
  f = lambda b: linalg_ops.triangular_solve(a, b, lower=True)  # noqa: E731
  np.testing.assert_allclose(dfdx.vmap(f)(bs), np.linalg.solve(np.tril(a), bs.T).T, rtol=1e-12)
  assert calls == [(3, 5)]


def _primitive_names(f, *args):
  return {e.prim.name for e in dfdx.make_expr(f)(*args).program.eqns}


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_derivatives_use_triangular_solves(upper, rng):
  a = _matrices(rng, (4, 4))
  spd = a @ a.T
  f = lambda a: dnp.sum(dnp.sin(la.cholesky(a, upper=upper)))  # noqa: E731
  for transform in (dfdx.grad, lambda f: lambda a: dfdx.jvp(f, (a,), (a,))[1]):
    names = _primitive_names(transform(f), spd)
    assert "triangular_solve" in names and "solve" not in names, names
  check_grads(lambda a: la.cholesky(a, upper=upper), (spd,), order=2, rng=rng)
  # dL = L Phi(L^-1 dA L^-T): the forward tangent against the closed form
  da = rng.uniform(-1, 1, (4, 4))
  da = da + da.T
  l = np.linalg.cholesky(spd)
  x = np.linalg.solve(l, np.linalg.solve(l, da).T).T
  l_dot = l @ (np.tril(x, -1) + 0.5 * np.diag(np.diag(x)))
  got = dfdx.jvp(lambda a: la.cholesky(a, upper=upper), (spd,), (da,))[1]
  np.testing.assert_allclose(got, l_dot.T if upper else l_dot, rtol=1e-10, atol=1e-13)
  names = _primitive_names(dfdx.grad(lambda a: dnp.sum(la.qr(a)[1])), a)
  assert "triangular_solve" in names and "solve" not in names, names


def test_jet_of_triangular_solve_by_its_recurrence(rng):
  from dfdx._src import core
  a, b = _matrices(rng, (4, 4)), rng.normal(size=(4, 2))
  da, db = rng.normal(size=(4, 4)), rng.normal(size=(4, 2))
  f = lambda a, b: linalg_ops.triangular_solve(a, b, lower=False, trans=1)  # noqa: E731
  _, series = dfdx.jet(f, (a, b), ([da, da, 0 * da], [db, 0 * db, db]))
  d = lambda t: f(a + t * da + t ** 2 / 2 * da, b + t * db + t ** 3 / 6 * db)  # noqa: E731
  for k in range(3):
    d = dfdx.jacfwd(d)
    np.testing.assert_allclose(series[k], d(0.0), rtol=1e-11, atol=1e-12)
  counts = core.count_binds(lambda: dfdx.jet(f, (a, b), ([da] + [0 * da] * 11,
                                                         [db] + [0 * db] * 11)))
  assert counts["triangular_solve"] <= 14  # (a value and one per term)


def test_triangular_solve_under_jit_and_exported(rng, monkeypatch):
  import sys
  a, b = _matrices(rng, (2, 4, 4)), rng.uniform(-1, 1, (4, 3))
  def f(a, b):
    return dnp.sum(dnp.cos(linalg_ops.triangular_solve(a, b, lower=True, trans=1)))
  g = dfdx.grad(f, (0, 1))
  expected = g(a, b)
  for got, want in zip(dfdx.jit(g)(a, b), expected):
    np.testing.assert_allclose(got, want, rtol=1e-12)
  source = dfdx.export.to_source(g, a, b, name="g")
  assert "_linalg_triangular_solve(" in source and "import dfdx" not in source
  for scipy_present in (True, False):
    if not scipy_present:
      monkeypatch.setitem(sys.modules, "scipy.linalg", None)  # (import scipy.linalg fails)
    namespace = {}
    exec(source, namespace)
    for got, want in zip(namespace["g"](a, b), expected):
      np.testing.assert_allclose(got, want, rtol=1e-12)
    assert namespace["_linalg_trtrs_for"](np.dtype(np.float64)) is None or scipy_present


def test_triangular_solve_to_sympy():
  sp = pytest.importorskip("sympy")
  a = np.array([[2.0, 5.0], [1.0, 3.0]])
  x = dfdx.export.to_sympy(lambda a, b: linalg_ops.triangular_solve(a, b, lower=True), a,
                           np.ones(2))
  a0, a2, a3, b0, b1 = sp.symbols("a_0 a_2 a_3 b_0 b_1", real=True)
  assert sp.simplify(x[0] - b0 / a0) == 0
  assert sp.simplify(x[1] - (b1 - a2 * b0 / a0) / a3) == 0
  x = dfdx.export.to_sympy(lambda a, b: linalg_ops.triangular_solve(
      a, b, lower=False, trans=1, unit_diagonal=True), a, np.ones(2))
  a1 = sp.Symbol("a_1", real=True)
  assert sp.simplify(x[0] - b0) == 0 and sp.simplify(x[1] - (b1 - a1 * b0)) == 0


@pytest.mark.parametrize("scipy_present", [True, False], ids=["scipy", "numpy"])
def test_unchecked_triangular_solve_divides_by_a_zero_pivot(scipy_present, monkeypatch):
  # check=False is BLAS's trsm (what LAPACK's getrs and so SciPy's lu_solve run): a zero on
  # the diagonal is divided by, infs and NaNs follow, nothing raises; without SciPy, a
  # substitution a row at a time gives the same.
  if not scipy_present:
    _no_scipy(monkeypatch)
  a = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 3.0]])
  solve = lambda a, b, lower, trans: linalg_ops.triangular_solve(  # noqa: E731
      a, b, lower=lower, trans=trans, check=False)
  cases = [((True, 0), np.ones(3), [0.5, np.inf, -np.inf]),
           ((False, 1), np.ones(3), [0.5, np.inf, np.nan]),
           ((True, 0), np.array([2.0, 1.0, 0.0]), [1.0, np.nan, np.nan]),
           ((False, 1), np.array([2.0, 1.0, 0.0]), [1.0, np.inf, np.nan])]
  for (lower, trans), b, expected in cases:
    for run in (solve, dfdx.jit(solve, static_argnums=(2, 3))):
      with np.errstate(all="raise"):  # (and quietly)
        np.testing.assert_array_equal(run(a, b, lower, trans), expected)
    stacked = solve(np.stack([a, np.eye(3)]), np.stack([b, b])[..., None], lower, trans)
    np.testing.assert_array_equal(stacked[:, :, 0], [expected, b])
  # a regular triangle: the same as the checked solve
  regular = a + np.eye(3)
  np.testing.assert_allclose(solve(regular, np.ones(3), True, 0),
                             linalg_ops.triangular_solve(regular, np.ones(3), lower=True),
                             rtol=1e-15)
