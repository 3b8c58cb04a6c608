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
