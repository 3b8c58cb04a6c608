"""Array creation in dfdx.numpy: array/asarray of lists holding traced values, the constant
constructors and their `_like` forms, full with a traced fill value, linspace, logspace and
meshgrid (differentiable in their endpoints), all against NumPy."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.test_numpy_elementwise import assert_same, assert_same_tree, check_traced, \
    check_untraced, sample

# ---- array / asarray --------------------------------------------------------------------


def test_asarray_of_traced_scalars_is_differentiable():
  x, y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])

  def f(x, y):
    return dnp.asarray([x[0] * y[0], 5 * x[2]])
  jx, jy = dfdx.jacobian(f, argnums=(0, 1))(x, y)
  assert_same(jx, np.array([[4.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))
  assert_same(jy, np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
  check_grads(f, (x, y), order=2)
  check_traced(lambda x: np.asarray([x[0] * 2, 5 * x[2]]),
               lambda x: dnp.asarray([x[0] * 2, 5 * x[2]]), x)


def test_nested_lists_and_mixed_constants():
  x = np.array([1.5, -2.0, 3.0])
  for build in [lambda m, x: m.asarray([[x[0], 1.0], [2, x[1]]]),
                lambda m, x: m.array([[x[0], x[1]], [x[2], x[0] * x[1]]]),
                lambda m, x: m.asarray((x[0], np.float64(2.0), x[2])),
                lambda m, x: m.asarray([x, 2 * x]),
                lambda m, x: m.asarray([[x], [x]]),
                lambda m, x: m.array([x[0], x[1]], ndmin=3),
                lambda m, x: m.asarray([x[0], 1.5], dtype=np.float32),
                lambda m, x: m.asarray([x[0], 1], dtype=int)]:
    check_traced(lambda x: build(np, x), lambda x: build(dnp, x), x)
  check_grads(lambda x: dnp.asarray([[x[0], 1.0], [2.0, x[1] * x[2]]]), (x,), order=2)


def test_asarray_dtype_of_nested_lists_follows_numpy():
  for x in [np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0], np.float32),
            np.array([True, False, True]), np.array([1, 2, 3], np.int8)]:
    for build in [lambda m, x: m.asarray([x[0], 1]), lambda m, x: m.asarray([x[0], 1.5]),
                  lambda m, x: m.asarray([x[0], True]), lambda m, x: m.asarray([[x[0]], [x[1]]]),
                  lambda m, x: m.asarray([x[0], x[1] > 1])]:
      check_traced(lambda x: build(np, x), lambda x: build(dnp, x), x)


def test_asarray_of_a_traced_value():
  x = sample(3)
  seen = []
  dfdx.grad(lambda x: (seen.append(dnp.asarray(x) is x and dnp.array(x) is x), dnp.sum(x))[1])(x)
  assert seen == [True]
  check_traced(lambda x: np.asarray(x, dtype=np.float32),
               lambda x: dnp.asarray(x, dtype=np.float32), x)
  check_traced(lambda x: np.array(x, ndmin=2), lambda x: dnp.array(x, ndmin=2), x)
  check_traced(np.copy, dnp.copy, x)
  check_grads(lambda x: dnp.asarray(x, dtype=np.float64) * 2, (x,), order=2)


def test_ragged_lists_raise_like_numpy():
  with pytest.raises(ValueError, match="inhomogeneous"):
    dfdx.vmap(lambda x: dnp.asarray([x, 1.5]))(np.ones((2, 3)))


def test_straight_to_numpy():
  for fun, args in [("asarray", ([1, 2],)), ("array", ([[1.0], [2.0]],)), ("zeros", (3,)),
                    ("ones", ((2, 3),)), ("full", ((2,), 7)), ("eye", (3,)), ("identity", (2,)),
                    ("arange", (5,)), ("linspace", (0.0, 1.0, 5)), ("logspace", (0.0, 2.0, 3)),
                    ("zeros_like", (np.ones(3),)), ("ones_like", ([1, 2],)),
                    ("full_like", (np.ones(3), 4.5)), ("meshgrid", (np.ones(2), np.ones(3)))]:
    check_untraced(getattr(np, fun), getattr(dnp, fun), *args)
  assert type(dnp.zeros(3)) is np.ndarray
  assert dnp.empty_like(np.ones((2, 3))).shape == (2, 3)


# ---- constants and the _like forms -------------------------------------------------------


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like"])
def test_like_forms_of_traced_arrays_are_constants(name):
  np_fun, dnp_fun = getattr(np, name), getattr(dnp, name)
  for x in [sample((2, 3), dtype=np.float32), np.array([1, 2, 3]), np.array(2.5)]:
    for kwargs in [{}, dict(dtype=int), dict(shape=(4,)), dict(dtype=np.float16, shape=(1, 2))]:
      got = dfdx.vmap(lambda x: dnp_fun(x, **kwargs))(np.stack([x, x]))
      expected = np_fun(x, **kwargs)
      assert got.shape == (2,) + expected.shape and got.dtype == expected.dtype
      if name != "empty_like":
        assert_same(got[0], expected)
  assert_same(dfdx.grad(lambda x: dnp.sum(dnp.zeros_like(x) + x * dnp.ones_like(x)))(sample(3)),
              np.ones(3))
  check_traced(lambda x: np.zeros_like([x[0], x[1]]), lambda x: dnp.zeros_like([x[0], x[1]]),
               sample(3))


def test_full_with_a_traced_fill_value():
  check_grads(lambda v: dnp.full((2, 3), v), (1.5,), order=2)
  check_grads(lambda v: dnp.full((2, 3), v), (sample(3),), order=2)
  check_grads(lambda v: dnp.full(4, v * v, dtype=np.float64), (0.7,), order=2)
  assert_same(dfdx.grad(lambda v: dnp.sum(dnp.full((2, 3), v)))(2.0), np.float64(6.0))
  for args in [((2, 3), None), (3, np.float32), ((2, 3), int)]:
    check_traced(lambda v: np.full(args[0], v, dtype=args[1]),
                 lambda v: dnp.full(args[0], v, dtype=args[1]), sample(3))
  check_traced(lambda v: np.full((2, 2), [v[0], 1.0]), lambda v: dnp.full((2, 2), [v[0], 1.0]),
               sample(3))


def test_full_like():
  x, i = sample((2, 3)), np.array([1, 2])
  check_grads(lambda v: dnp.full_like(x, v), (1.5,), order=2)
  assert_same(dfdx.grad(lambda v: dnp.sum(dnp.full_like(x, v)))(2.0), np.float64(6.0))
  # an integer `a` makes the result integer: the fill value is truncated, its derivative zero
  assert_same(dfdx.grad(lambda v: dnp.sum(dnp.full_like(i, v)))(2.5), np.float64(0.0))
  check_traced(lambda a: np.full_like(a, 7.5), lambda a: dnp.full_like(a, 7.5), i)
  check_traced(lambda a: np.full_like(a, 7.5, dtype=float, shape=(3,)),
               lambda a: dnp.full_like(a, 7.5, dtype=float, shape=(3,)), i)
  check_traced(lambda v: np.full_like(x, v), lambda v: dnp.full_like(x, v), sample(3))


def test_constructors_with_concrete_traced_sizes():
  # under grad, a traced integer-valued size is concrete: the result is a constant
  out = []
  dfdx.grad(lambda x: (out.append((dnp.zeros(int(x)), dnp.arange(x))), x)[1])(3.0)
  assert_same(out[0][0], np.zeros(3))
  assert_same(out[0][1], np.arange(3.0))
  with pytest.raises(dfdx.ConcretizationError):
    dfdx.vmap(lambda n: dnp.arange(n))(np.array([2.0, 3.0]))


def test_eye_identity_arange():
  check_untraced(lambda: np.eye(3, k=1, dtype=int), lambda: dnp.eye(3, k=1, dtype=int))
  check_untraced(lambda: np.identity(2, dtype=np.float32),
                 lambda: dnp.identity(2, dtype=np.float32))
  for args in [(5,), (1, 7, 2), (0.5, 3.0, 0.5), (5, None, None, np.float32)]:
    check_untraced(lambda: np.arange(*args), lambda: dnp.arange(*args))
  check_untraced(lambda: np.arange(start=2, stop=5), lambda: dnp.arange(start=2, stop=5))


@pytest.mark.parametrize("args,dtype", [
    ((0.5, 3.0), None), ((0.1, 2.05, 0.3), None), ((0.1, 2.05, 0.3), np.float32),
    ((np.float32(0.1), 2.0, np.float32(0.3)), None), ((-1.3, 4.0, 0.7), np.complex128),
    ((2.5, 0.0, -0.35), None), ((0.5, 1.2), None), ((0.5, 0.9), None), ((3.0, 1.0), None)])
def test_arange_is_differentiable_in_start_and_step(args, dtype):
  # its values are NumPy's to the bit, start + i * step; its length comes from the concrete
  # values that grad's tracing sees
  start, stop, step = args if len(args) == 3 else args + (1.0,)
  ref = np.arange(*args, dtype=dtype)
  f = lambda a, s: dnp.arange(a, stop, s, dtype=dtype)  # noqa: E731
  (g, value) = dfdx.grad(lambda a, s: (dnp.sum(dnp.real(f(a, s))), f(a, s)), argnums=(0, 1),
                         has_aux=True)(start, step)
  assert_same(np.asarray(value), ref)
  n = ref.size
  np.testing.assert_allclose(g, (n, n * (n - 1) / 2), rtol=1e-6)
  _, tangent = dfdx.jvp(lambda a: f(a, step), (start,), (np.ones((), np.asarray(start).dtype),))
  np.testing.assert_array_equal(tangent, np.ones(n))
  if np.dtype(ref.dtype) == np.float64 and n:
    check_grads(lambda a, s: dnp.sum(dnp.sin(f(a, s))), (start, step), order=2)


def test_arange_with_traced_bounds_under_jit_needs_concrete_values():
  with pytest.raises(dfdx.ConcretizationError, match="arange"):
    dfdx.jit(lambda a: dnp.arange(a, 3.0))(0.5)
  # a stop alone sets only the length: no derivative
  assert dfdx.grad(lambda b: dnp.sum(dnp.arange(0.0, b, 0.5)))(2.0) == 0.0
  assert dfdx.grad(lambda b: dnp.sum(dnp.arange(b)))(2.0) == 0.0


# ---- linspace, logspace -------------------------------------------------------------------

LINSPACE = [dict(num=5), dict(num=5, endpoint=False), dict(num=5, retstep=True),
            dict(num=1), dict(num=1, retstep=True), dict(num=1, endpoint=False, retstep=True),
            dict(num=0), dict(num=0, retstep=True), dict(num=2), dict(num=4, dtype=int),
            dict(num=4, dtype=np.float32), dict(num=3, axis=-1), dict(num=3, axis=1),
            dict(num=6, endpoint=False, retstep=True, axis=0)]


@pytest.mark.parametrize("kwargs", LINSPACE, ids=str)
def test_linspace_values(kwargs):
  for start, stop in [(sample(()), 3.0), (-10.0, sample(())), (sample(2), sample(2, seed=1)),
                      (sample((2, 1)), np.array([1.0, 2.0, 4.0])),
                      (sample((), dtype=np.float32), 1), (np.array([0, 3]), 10.5)]:
    if kwargs.get("axis") == 1 and np.ndim(start) + np.ndim(stop) == 0:
      continue
    check_traced(lambda a, b: np.linspace(a, b, **kwargs),
                 lambda a, b: dnp.linspace(a, b, **kwargs), start, stop)


def test_linspace_grads():
  for kwargs in [dict(num=5), dict(num=5, endpoint=False), dict(num=1), dict(num=3, axis=-1)]:
    check_grads(lambda a, b: dnp.linspace(a, b, **kwargs), (0.3, 1.7), order=2)
    check_grads(lambda a, b: dnp.linspace(a, b, **kwargs), (sample(2), sample(2, seed=1)),
                order=2)
  j_start, j_stop = dfdx.jacobian(lambda a, b: dnp.linspace(a, b, 5), argnums=(0, 1))(0.0, 1.0)
  assert_same(j_start, np.array([1.0, 0.75, 0.5, 0.25, 0.0]))
  assert_same(j_stop, np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
  check_grads(lambda a: dnp.linspace(a, 2.0, 4, retstep=True)[1], (0.5,), order=2)


def test_linspace_errors():
  with pytest.raises(ValueError, match="non-negative"):
    dfdx.grad(lambda a: dnp.sum(dnp.linspace(a, 1.0, -1)))(0.0)
  with pytest.raises(TypeError):
    dfdx.grad(lambda a: dnp.sum(dnp.linspace(a, 1.0, 2.5)))(0.0)


@pytest.mark.parametrize("kwargs", [dict(num=3), dict(num=4, base=2.0), dict(num=3, endpoint=False),
                                    dict(num=3, dtype=np.float32), dict(num=3, axis=-1)], ids=str)
def test_logspace(kwargs):
  for start, stop in [(sample(()), 2.0), (0.0, sample(2)), (sample(2), np.array([1.0, 3.0]))]:
    check_traced(lambda a, b: np.logspace(a, b, **kwargs),
                 lambda a, b: dnp.logspace(a, b, **kwargs), start, stop)
  check_grads(lambda a, b: dnp.logspace(a, b, **{**kwargs, "dtype": None}), (0.3, 1.2), order=2)


def test_logspace_traced_and_array_base():
  check_grads(lambda b: dnp.logspace(0.0, 2.0, 3, base=b), (3.0,), order=2)
  base = np.array([2.0, 3.0])
  for axis in [0, -1]:
    check_traced(lambda a: np.logspace(a, 2.0, 3, base=base, axis=axis),
                 lambda a: dnp.logspace(a, 2.0, 3, base=base, axis=axis), sample(()))
    check_traced(lambda b: np.logspace(0.0, 2.0, 3, base=b, axis=axis),
                 lambda b: dnp.logspace(0.0, 2.0, 3, base=b, axis=axis), base)
  check_grads(lambda b: dnp.logspace(0.0, 2.0, 3, base=b), (base,), order=2)


# ---- meshgrid ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, dict(indexing="ij"), dict(sparse=True),
                                    dict(sparse=True, indexing="ij"), dict(copy=False)], ids=str)
def test_meshgrid(kwargs):
  x, y, z = sample(3), sample(2, seed=1), sample(4, seed=2)
  check_traced(lambda x: np.meshgrid(x, y, **kwargs), lambda x: dnp.meshgrid(x, y, **kwargs), x)
  check_traced(lambda y: np.meshgrid(x, y, z, **kwargs),
               lambda y: dnp.meshgrid(x, y, z, **kwargs), y)
  check_traced(lambda x: np.meshgrid(x, **kwargs), lambda x: dnp.meshgrid(x, **kwargs), x)
  check_traced(lambda x: np.meshgrid(np.asarray([x]), y, **kwargs),  # 2-d inputs are flattened
               lambda x: dnp.meshgrid(dnp.asarray([x]), y, **kwargs), x)
  check_grads(lambda x, y: dnp.meshgrid(x, y, **kwargs), (x, y), order=2)


def test_meshgrid_returns_a_tuple_and_checks_indexing():
  out = dfdx.vmap(lambda x: dnp.meshgrid(x, np.ones(2)))(np.ones((2, 3)))
  assert isinstance(out, tuple) and len(out) == 2
  with pytest.raises(ValueError, match="indexing"):
    dfdx.vmap(lambda x: dnp.meshgrid(x, indexing="xz"))(np.ones((2, 3)))
  assert_same_tree(dfdx.grad(lambda x: dnp.sum(dnp.meshgrid(x, np.ones(2))[0]))(np.ones(3)),
                   np.full(3, 2.0))
  check_traced(lambda x: np.meshgrid([x[0], x[1]], x), lambda x: dnp.meshgrid([x[0], x[1]], x),
               sample(3))
