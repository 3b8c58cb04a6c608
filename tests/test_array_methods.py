"""Traced values behave like NumPy arrays: operators (reflected ones included) with arrays,
NumPy scalars, Python scalars and lists on either side; attributes; methods; NumPy's
dispatch (`np.sin(tracer)`, `np.add.reduce`, ...); and the conversions that would drop a
derivative (`float`, `.item()`) or need a concrete value (`bool`)."""
import functools
import operator
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.test_numpy_elementwise import assert_same, check_traced, sample

X = np.array([[0.5, 1.25, 2.0], [-1.5, 0.75, 3.0]])
POSITIVE = np.abs(X) + 0.5

ARITHMETIC = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "truediv": operator.truediv, "floordiv": operator.floordiv,
              "mod": operator.mod, "pow": operator.pow, "divmod": divmod}
COMPARISONS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
               "eq": operator.eq, "ne": operator.ne}
OTHERS = {"np_array": np.array([1.5, 2.0, 0.5]), "np_matrix": np.full((2, 3), 2.0),
          "py_float": 2.0, "py_int": 3, "np_float64": np.float64(3.0),
          "np_float32": np.float32(1.5), "np_int64": np.int64(2), "list": [1.0, 2.0, 3.0],
          "zero_d": np.array(2.5)}


def _cases(table):
  return [(name, other) for name in table for other in OTHERS]


@pytest.mark.parametrize("name,other", _cases(ARITHMETIC) + _cases(COMPARISONS))
def test_binary_operators_with_the_tracer_on_either_side(name, other):
  op, b = {**ARITHMETIC, **COMPARISONS}[name], OTHERS[other]
  for x in [POSITIVE, POSITIVE.astype(np.float32), np.array([[1, 2, 3], [4, 5, 6]])]:
    if name == "pow" and x.dtype.kind == "i" and other in ("np_array", "np_matrix", "list"):
      continue  # NumPy: floats ** ints and ints ** floats only
    check_traced(lambda x: op(x, b), lambda x: op(x, b), x)
    check_traced(lambda x: op(b, x), lambda x: op(b, x), x)


@pytest.mark.parametrize("name", sorted(ARITHMETIC) + sorted(COMPARISONS))
def test_binary_operators_between_tracers(name):
  op = {**ARITHMETIC, **COMPARISONS}[name]
  check_traced(op, op, POSITIVE, POSITIVE[::-1].copy())
  check_traced(op, op, POSITIVE[:1], POSITIVE[:, :1].copy())  # broadcasting (1,3) and (2,1)


@pytest.mark.parametrize("f", [
    lambda x, y: x * y, lambda x, y: x / y, lambda x, y: x ** y, lambda x, y: 2.0 - x * y,
    lambda x, y: np.array([1.0, 2.0, 3.0]) / x + y, lambda x, y: x ** 2 + 2 ** y,
    lambda x, y: np.float64(3) * x - y / 2, lambda x, y: -x + abs(y) + (+x),
    lambda x, y: [1.0, 2.0, 3.0] * x + (1, 2, 3) - y, lambda x, y: x % 1.5 + y // 0.7,
    lambda x, y: divmod(x, 0.8)[1] * y])
def test_derivatives_through_operators(f):
  check_grads(f, (sample((2, 3), (0.5, 2.0), seed=1), sample(3, (0.5, 2.0), seed=2)), order=2)


def test_reflected_operators_closed_forms():
  x = np.array([1.0, 2.0])
  assert_same(dfdx.vector_grad(lambda x: 2.0 - x)(x), -np.ones(2))
  assert_same(dfdx.vector_grad(lambda x: np.array([1.0, 4.0]) / x)(x), -np.array([1.0, 4.0]) / x**2)
  assert_same(dfdx.vector_grad(lambda x: x ** 2)(x), 2 * x)
  assert_same(dfdx.vector_grad(lambda x: 2 ** x)(x), 2 ** x * np.log(2))
  assert_same(dfdx.vector_grad(lambda x: np.float64(3) * x)(x), np.full(2, 3.0))
  assert_same(dfdx.vector_grad(lambda x: 5 % x)(x), -np.floor(5 / x))


def test_unary_operators():
  for f in [operator.neg, operator.pos, abs]:
    check_traced(f, f, X)
  # NumPy arrays have no __round__; traced values (which also stand for NumPy scalars) do
  check_traced(np.round, round, X)
  check_traced(lambda x: np.round(x, 1), lambda x: round(x, 1), X)
  check_traced(abs, abs, np.array([-1, 2, -3]))
  assert_same(dfdx.vector_grad(abs)(X), np.sign(X))


def test_boolean_operators():
  a, b = X > 0.6, X < 2.5
  for op in [operator.and_, operator.or_, operator.xor]:
    check_traced(op, op, a, b)
    check_traced(lambda a: op(a, True), lambda a: op(a, True), a)
    check_traced(lambda a: op(False, a), lambda a: op(False, a), a)
    check_traced(lambda a: op(a, b), lambda a: op(a, b), a)   # a NumPy array on the right
    check_traced(lambda a: op(b, a), lambda a: op(b, a), a)   # and on the left
  check_traced(operator.invert, operator.invert, a)
  check_traced(lambda x: (x > 0) & (x < 2), lambda x: (x > 0) & (x < 2), X)
  ints = np.array([1, 2, 3])  # (and integers, as NumPy)
  np.testing.assert_array_equal(dfdx.vmap(lambda x: x & 1)(ints[None]), [ints & 1])
  np.testing.assert_array_equal(dfdx.vmap(lambda x: ~x)(ints[None]), [~ints])
  with pytest.raises(TypeError, match="not supported for the input types"):
    dfdx.vmap(lambda x: x & 1)(X[None])
  _, t = dfdx.jvp(lambda x: ((x > 0) & (x < 2)) | ~(x > 1), (X,), (X,))
  assert_same(t, np.zeros_like(X))
  # NumPy's ** squares a bool array for the exponent 2 (int8), where power gives int64
  for f in [lambda a: a ** 2, lambda a: a ** 3, lambda a: a ** True, lambda a: 2 ** a]:
    check_traced(f, f, a)


def test_operators_refuse_other_types_as_python_does():
  for other in ["a", None, object()]:
    with pytest.raises(TypeError):
      dfdx.vmap(lambda x: x + other)(X)
    with pytest.raises(TypeError):
      dfdx.vmap(lambda x: other * x)(X)


# ---- attributes ---------------------------------------------------------------------------


def test_attributes():
  seen = {}

  def f(x):
    seen.update(shape=x.shape, ndim=x.ndim, size=x.size, dtype=x.dtype, len=len(x),
                itemsize=x.itemsize, nbytes=x.nbytes, np_shape=np.shape(x), np_ndim=np.ndim(x),
                np_size=np.size(x))
    return x
  for transform in [lambda f: dfdx.vmap(f)(np.stack([X, X])), lambda f: dfdx.grad(
      lambda x: dnp.sum(f(x)))(X), lambda f: dfdx.jvp(f, (X,), (X,))]:
    seen.clear()
    transform(f)
    assert seen == dict(shape=(2, 3), ndim=2, size=6, dtype=np.dtype(np.float64), len=2,
                        itemsize=8, nbytes=48, np_shape=(2, 3), np_ndim=2, np_size=6)


def test_transpose_attributes():
  x = sample((2, 3, 4))
  check_traced(lambda x: x.T, lambda x: x.T, x)
  check_traced(lambda x: x.mT, lambda x: x.mT, x)
  check_traced(lambda x: x.T, lambda x: x.T, sample(3))
  check_grads(lambda x: x.T * np.arange(24.0).reshape(4, 3, 2), (x,), order=2)
  with pytest.raises(ValueError, match="ndim < 2"):
    dfdx.vmap(lambda x: x.mT)(sample((2, 3)))


def test_len_and_iteration_over_the_first_axis():
  check_traced(lambda x: [r * 2 for r in x], lambda x: [r * 2 for r in x], X)
  check_grads(lambda x: dnp.asarray([r[0] * r[1] for r in x]), (X,), order=2)
  with pytest.raises(TypeError, match="0-d"):
    dfdx.grad(lambda x: len(x))(1.0)
  with pytest.raises(TypeError, match="0-d"):
    dfdx.grad(lambda x: sum(x))(1.0)


def test_real_imag_conj():
  check_traced(lambda x: x.real, lambda x: x.real, X)
  check_traced(lambda x: x.imag, lambda x: x.imag, X)
  check_traced(lambda x: x.conj(), lambda x: x.conj(), X)
  check_traced(lambda x: x.conjugate(), lambda x: x.conjugate(), X)


# ---- methods ------------------------------------------------------------------------------

METHODS = [
    ("sum", {}), ("sum", dict(axis=0)), ("mean", dict(axis=-1, keepdims=True)), ("max", {}),
    ("max", dict(axis=1)), ("min", dict(axis=(0, 1))), ("prod", {}), ("std", dict(ddof=1)),
    ("var", dict(axis=0)), ("cumsum", {}), ("cumsum", dict(axis=1)), ("cumprod", dict(axis=0)),
    ("argmax", {}), ("argmin", dict(axis=0)), ("any", {}), ("all", dict(axis=1)),
    ("clip", dict(min=0.0, max=2.2)), ("round", {}),
    ("round", dict(decimals=1)), ("conj", {}), ("copy", {}), ("astype", dict(dtype=np.float32)),
    ("astype", dict(dtype=int)), ("astype", dict(dtype=bool)),
]
SHAPE_METHODS = [  # built on the manipulation and contraction families
    ("reshape", (3, 2), {}), ("reshape", ((6,),), {}), ("reshape", (-1,), {}), ("ravel", (), {}),
    ("flatten", (), {}), ("transpose", (), {}), ("transpose", (1, 0), {}),
    ("transpose", ((1, 0),), {}), ("squeeze", (), {}), ("swapaxes", (0, 1), {}),
    ("dot", (np.ones(3),), {}), ("repeat", (2,), dict(axis=0)), ("take", ([0, 2],), dict(axis=1)),
    ("diagonal", (), {}), ("trace", (), {}),
]


@pytest.mark.parametrize("name,kwargs", METHODS, ids=str)
def test_methods(name, kwargs):
  f = lambda x: getattr(x, name)(**kwargs)  # noqa: E731
  check_traced(f, f, X)
  if name not in ("argmax", "argmin", "any", "all", "astype", "round"):
    check_grads(f, (X,), order=2)


@pytest.mark.parametrize("name,kwargs", METHODS + [("var", dict(axis=0, ddof=1))], ids=str)
def test_methods_under_jit(name, kwargs):
  # a staged value's own attributes (its program variable) must not hide a method
  f = lambda x: getattr(x, name)(**kwargs)  # noqa: E731
  assert_same(dfdx.jit(f)(X), f(X))


POSITIONAL_METHODS = [  # (name, args, kwargs, differentiable)
    ("clip", (0.6,), {}, True), ("clip", (None, 2.2), {}, True), ("clip", (), {}, True),
    ("clip", (), dict(max=1.0), True), ("argsort", (), {}, False),
    ("argsort", (), dict(axis=0), False), ("argpartition", (1,), {}, False),
    ("compress", ([True, False, True],), dict(axis=1), True),
    ("compress", ([False, True],), {}, True), ("view", (), {}, True),
    ("view", (np.float64,), {}, True), ("view", (np.ndarray,), {}, True),
]


@pytest.mark.parametrize("name,args,kwargs,differentiable", POSITIONAL_METHODS, ids=str)
def test_methods_with_positional_arguments(name, args, kwargs, differentiable):
  f = lambda x: getattr(x, name)(*args, **kwargs)  # noqa: E731
  check_traced(f, f, X)
  assert_same(dfdx.jit(f)(X), f(X))
  if differentiable:
    check_grads(f, (X,), order=2)


def test_searchsorted_choose_and_view_methods():
  edges = np.array([-1.0, 0.5, 1.0, 2.5])
  f = lambda e: e.searchsorted(X[0], side="right")  # noqa: E731
  assert_same(dfdx.jit(f)(edges), f(edges))
  assert_same(dfdx.vmap(f)(np.stack([edges, edges + 1])),
              np.stack([f(edges), f(edges + 1)]))
  which = np.array([[0, 1, 0], [1, 1, 0]])
  assert_same(dfdx.jit(lambda i, x: i.choose([x, -x]))(which, X), which.choose([X, -X]))
  assert_same(dfdx.vmap(lambda i: i.choose([X[0], -X[0]]))(which), which.choose([X[0], -X[0]]))
  with pytest.raises(TypeError, match="reinterprets its bytes.*astype"):
    dfdx.jit(lambda x: x.view(np.int64))(X)
  with pytest.raises(TypeError, match="reinterprets its bytes"):
    dfdx.grad(lambda x: x.view(np.float32).sum())(X)


def test_methods_numpy_2_removed_are_absent():
  with pytest.raises(AttributeError):
    dfdx.vmap(lambda x: x.ptp())(X)


@pytest.mark.parametrize("name,args,kwargs", SHAPE_METHODS, ids=str)
def test_shape_methods(name, args, kwargs):
  if not hasattr(dnp, {"flatten": "ravel"}.get(name, name)):
    pytest.skip(f"dfdx.numpy.{name} is not available yet")
  f = lambda x: getattr(x, name)(*args, **kwargs)  # noqa: E731
  check_traced(f, f, X[None] if name == "squeeze" else X)
  check_grads(f, (X,), order=2)


def test_astype_derivatives():
  x = sample(3)
  assert_same(dfdx.vector_grad(lambda x: x.astype(np.float32))(x), np.ones(3))
  assert_same(dfdx.vector_grad(lambda x: x.astype(int) * 1.0)(x), np.zeros(3))
  assert dfdx.vmap(lambda x: x.astype(np.float32) * 2.0)(x[None]).dtype == np.float32


# ---- NumPy's dispatch ---------------------------------------------------------------------

DISPATCH = [
    lambda x: np.sin(x), lambda x: np.exp(x) * np.cos(x), lambda x: np.sum(x, axis=0),
    lambda x: np.mean(x), lambda x: np.add.reduce(x), lambda x: np.add.reduce(x, axis=1),
    lambda x: np.add.reduce(x, axis=None), lambda x: np.multiply.reduce(x, axis=1),
    lambda x: np.maximum.reduce(x), lambda x: np.minimum.reduce(x, axis=1),
    lambda x: np.add.accumulate(x), lambda x: np.multiply.accumulate(x, axis=1),
    lambda x: np.maximum(x, 1.1), lambda x: np.where(x > 1.1, x, 0.0),
    lambda x: np.clip(x, 0, 2.2), lambda x: np.divmod(x, 0.3)[1], lambda x: divmod(x, 0.3)[1],
    lambda x: np.var(x, axis=1, ddof=1), lambda x: np.max(x, axis=0, keepdims=True),
    lambda x: np.power(x, 2), lambda x: np.square(x) + np.sqrt(x),
    lambda x: np.average(x, axis=0, weights=[1.0, 2.0]), lambda x: np.prod(x),
]


@pytest.mark.parametrize("f", DISPATCH)
def test_numpy_functions_dispatch_to_dfdx_numpy(f):
  check_traced(f, f, POSITIVE)
  check_grads(f, (POSITIVE,), order=2)


def test_numpy_functions_without_derivatives_dispatch_too():
  for f in [lambda x: np.isclose(x, 2.0), lambda x: np.argmax(x, axis=1),
            lambda x: np.logical_and.reduce(x > 1), lambda x: np.logical_or.reduce(x > 1, axis=1),
            lambda x: np.round(x, 1), lambda x: np.floor(x), lambda x: np.count_nonzero(x > 1)]:
    check_traced(f, f, POSITIVE)


def test_numpy_linalg_norm_dispatches():
  if not hasattr(dnp.linalg, "norm"):
    pytest.skip("dfdx.numpy.linalg.norm is not available yet")
  check_traced(np.linalg.norm, np.linalg.norm, POSITIVE)
  check_grads(lambda x: np.linalg.norm(x), (POSITIVE,), order=2)


def test_numpy_functions_dfdx_lacks_raise_a_clear_type_error():
  for f in [lambda x: np.frompyfunc(abs, 1, 1)(x)]:
    with pytest.raises(TypeError, match="does not support traced values"):
      dfdx.grad(lambda x: dnp.sum(f(x)))(X)


UFUNC_METHODS = [  # (f(m, x) for m in {np, dfdx.numpy}, differentiable)
    (lambda m, x: m.add.reduce(x, axis=1), True), (lambda m, x: m.add.reduce(x), True),
    (lambda m, x: m.add.reduce(x, axis=None), True),
    (lambda m, x: m.multiply.reduce(x, axis=0, keepdims=True), True),
    (lambda m, x: m.maximum.reduce(x, axis=1), True),
    (lambda m, x: m.minimum.reduce(x, initial=0.6), True),
    (lambda m, x: m.logaddexp.reduce(x, axis=0), True),
    (lambda m, x: m.logaddexp.reduce(x, axis=1, keepdims=True), True),
    (lambda m, x: m.logaddexp2.reduce(x, axis=None), True),
    (lambda m, x: m.logical_or.reduce(x > 1.0, axis=1), False),
    (lambda m, x: m.add.accumulate(x, axis=1), True),
    (lambda m, x: m.multiply.accumulate(x), True),
    (lambda m, x: m.maximum.accumulate(x, axis=1), True),
    (lambda m, x: m.minimum.accumulate(x, axis=0), True),
    (lambda m, x: m.maximum.accumulate(x[1] * [1.0, -1.0, 2.0]), True),
    (lambda m, x: m.logical_and.accumulate(x > 0.6, axis=1), False),
    (lambda m, x: m.multiply.outer(x[0], x[1]), True),
    (lambda m, x: m.add.outer(x, x[0]), True),
    (lambda m, x: m.power.outer(x[0], x[1]), True),
    (lambda m, x: m.maximum.outer(x[0], x[1]), True),
    (lambda m, x: m.greater.outer(x[0], x[1]), False),
    (lambda m, x: m.add.reduceat(x, [0, 2, 1], axis=1), True),
    (lambda m, x: m.maximum.reduceat(x[1], [0, 2]), True),
    (lambda m, x: m.multiply.reduceat(x, [1, 0]), True),
    # the other binary ufuncs: folded from the left, or in rounds where associative
    (lambda m, x: m.subtract.reduce(x, axis=1), True),
    (lambda m, x: m.subtract.reduce(x, axis=1, where=[True, False, True], initial=1.0), True),
    (lambda m, x: m.divide.accumulate(x, axis=1), True),
    (lambda m, x: m.hypot.reduce(x, axis=None), True),
    (lambda m, x: m.hypot.reduce(x, axis=1, where=[True, False, True]), True),  # (identity 0)
    (lambda m, x: m.hypot.reduceat(x[1], [0, 2]), True),
    (lambda m, x: m.arctan2.accumulate(x, axis=1), True),
    (lambda m, x: m.copysign.reduce(x - 1.1, axis=1), True),
    (lambda m, x: m.fmax.reduce(x, axis=1), True),
    (lambda m, x: m.fmin.reduce(x, axis=(0, 1), initial=0.9), True),
    (lambda m, x: m.fmin.accumulate(x, axis=1), True),
    (lambda m, x: m.logaddexp.accumulate(x, axis=1), True),
    (lambda m, x: m.logaddexp2.accumulate(x[1]), True),
    (lambda m, x: m.logical_xor.reduce(x > 1.0, axis=1), False),
    (lambda m, x: m.floor_divide.accumulate(x * 4.0, axis=1), False),
    (lambda m, x: m.divide.reduceat((x * 4.0).astype(int), [0, 2, 1], axis=1), False),
    (lambda m, x: m.add.reduceat(x, [], axis=1), False),
]


@pytest.mark.parametrize("f,differentiable", UFUNC_METHODS)
@pytest.mark.parametrize("through", ["dnp", "np"])
def test_ufunc_methods(f, differentiable, through):
  # dfdx.numpy's ufuncs have NumPy's methods; NumPy's own on traced values run them
  g = (lambda x: f(dnp, x)) if through == "dnp" else (lambda x: f(np, x))  # noqa: E731
  want = lambda x: f(np, x)  # noqa: E731
  check_traced(want, g, POSITIVE)
  assert_same(dfdx.jit(g)(POSITIVE), want(POSITIVE))
  if differentiable:
    check_grads(g, (POSITIVE,), order=2)


def test_cumulative_maximum_derivative_goes_to_the_running_maximum():
  x = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 0.5])
  for f in (lambda x: dnp.maximum.accumulate(x), lambda x: np.maximum.accumulate(x)):
    np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.sum(f(x)))(x), [1, 2, 0, 3, 0, 0])
    np.testing.assert_array_equal(dfdx.jit(dfdx.grad(lambda x: dnp.sum(f(x))))(-x),
                                  [5, 0, 0, 0, 0, 1])
  np.testing.assert_array_equal(
      dfdx.grad(lambda x: dnp.sum(dnp.minimum.accumulate(x)))(x), [5, 0, 0, 0, 0, 1])
  assert_same(dfdx.jit(lambda x: dnp.maximum.accumulate(x))(np.array([1, 0, 3, 2], np.int8)),
              np.maximum.accumulate(np.array([1, 0, 3, 2], np.int8)))


def test_reduce_folds_from_the_left_as_numpy_documents():
  # ((x0 ** x1) ** x2) ** x3, and the same for every ufunc without a reduction of its own
  # (NumPy 2.4's own reduce of power and arctan2 along a contiguous axis gives x0 op x_last)
  x = np.array([[2.0, 3.0, 2.0, 1.5], [1.5, 0.5, 2.5, 1.25]])
  for name in ["power", "arctan2", "subtract", "divide", "hypot", "copysign", "fmod"]:
    fold = functools.reduce(getattr(np, name), x.T)
    for f in (getattr(dnp, name).reduce, getattr(np, name).reduce):
      np.testing.assert_allclose(dfdx.jit(lambda a: f(a, axis=1))(x), fold, rtol=1e-15)
      np.testing.assert_allclose(dfdx.vmap(lambda a: f(a))(x), fold, rtol=1e-15)
  # the derivative of the fold: d/dx1 of (x0 ** x1) ** x2 = log(x0) x2 (x0 ** x1) ** x2
  g = dfdx.grad(lambda a: dnp.power.reduce(a))(x[0, :3])
  np.testing.assert_allclose(g[1], np.log(2.0) * 2.0 * 8.0 ** 2, rtol=1e-14)
  check_grads(lambda a: dnp.power.reduce(a, axis=0), (x.T,), order=2)  # (NumPy's own fold)
  # fmax skips NaN (its derivative goes to the entry kept); all NaN gives NaN, no warning
  y = np.array([[np.nan, 2.0, 1.0], [np.nan, np.nan, np.nan]])
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert_same(dfdx.jit(lambda a: dnp.fmax.reduce(a, axis=1))(y), np.fmax.reduce(y, axis=1))
  np.testing.assert_array_equal(dfdx.grad(lambda a: dnp.fmax.reduce(a[0]))(y), [[0, 1, 0],
                                                                                [0, 0, 0]])


@pytest.mark.parametrize("call", [
    lambda np_, x: np_.subtract.accumulate(x[0, 0]),             # 0-d: TypeError
    lambda np_, x: np_.hypot.accumulate(x, axis=(0,)),           # one axis as a tuple
    lambda np_, x: np_.hypot.accumulate(x, axis=(0, 1)),         # ValueError
    lambda np_, x: np_.hypot.reduceat(x, [0, 1], axis=None),     # ValueError
    lambda np_, x: np_.hypot.reduceat(x[0, 0], [0]),             # TypeError
    lambda np_, x: np_.less.reduceat(x, [0, 4], axis=1),         # IndexError first
    lambda np_, x: np_.subtract.reduce(x[0, 0], axis=0),         # a 0-d array: its value
    lambda np_, x: np_.logaddexp.reduce(x[0, 0], initial=1.0),
    lambda np_, x: np_.logaddexp.reduce(x.astype(complex)),      # no complex loop
    lambda np_, x: np_.logaddexp2.reduce(x, dtype=np.int64),     # no integer loop
    lambda np_, x: np_.logical_and.reduce(x, dtype=np.float64),  # no float loop
    lambda np_, x: np_.logical_or.reduce(x > 1, axis=1, initial=True),
    lambda np_, x: np_.logical_and.accumulate(x, dtype=np.int64)])
def test_ufunc_methods_follow_numpys_checks(call):
  # what NumPy raises, dfdx raises (NumPy's own call on zeros checks the arguments), and
  # what NumPy computes, dfdx computes
  check_traced(lambda x: call(np, x), lambda x: call(dnp, x), np.stack([POSITIVE, X]))


def test_ufunc_calls_with_a_traced_where_say_what_to_use():
  # (NumPy's ufunc called with where= traced dispatched back to dfdx.numpy without end)
  mask = np.array([True, False, True])
  for f in (lambda m: np.add(X[0], 1.0, where=m), lambda m: dnp.add(X[0], 1.0, where=m),
            lambda m: np.sin(X[0], where=m)):
    with pytest.raises(TypeError, match="where= is not supported on traced values.*where"):
      dfdx.vmap(f)(np.stack([mask, mask]))


def test_ufunc_methods_errors_and_untraced_calls():
  assert_same(dnp.add.reduce(X, axis=1), np.add.reduce(X, axis=1))
  assert_same(dnp.multiply.outer(X[0], X[1]), np.multiply.outer(X[0], X[1]))
  z = np.zeros(3)
  dnp.add.at(z, [0, 0], 1.0)  # a NumPy array is written in place, as by NumPy
  assert_same(z, np.array([2.0, 0.0, 0.0]))
  with pytest.raises(TypeError, match=r"numpy.add.at writes into an array in place.*"
                                      r"x.at\[indices\].add\(values\)"):
    dfdx.jit(lambda x: dnp.add.at(x, [0], 1.0))(X)
  # NumPy's errors: no identity, not reorderable, where= without initial=
  for f in [lambda x: dnp.fmax.reduce(x[:, :0], axis=1),
            lambda x: dnp.subtract.reduce(x, axis=(0, 1)),
            lambda x: dnp.arctan2.reduce(x, where=x > 1)]:
    with pytest.raises(ValueError):
      dfdx.jit(f)(X)
  with pytest.raises(ValueError, match="accumulate does not allow multiple axes"):
    dfdx.jit(lambda x: dnp.add.accumulate(x, axis=None))(X)
  with pytest.raises(IndexError, match="out-of-bounds"):
    dfdx.jit(lambda x: dnp.add.reduceat(x, [0, 3], axis=1))(X)
  with pytest.raises(dfdx.ConcretizationError, match="reduceat"):
    dfdx.jit(lambda x, i: dnp.add.reduceat(x, i, axis=1))(X, np.array([0, 1]))
  assert_same(dfdx.grad(lambda x: dnp.sum(dnp.add.reduceat(x, (x[0, :2] > 0).astype(int) * [0, 1],
                                                           axis=1)))(X), np.ones_like(X))


def test_ufunc_at_and_scipy_special_ufuncs_on_traced_values():
  # ufunc.at writes in place: the error names the functional update that does it
  z = np.zeros(3)
  with pytest.raises(TypeError, match=r"numpy.add.at writes into an array in place.*"
                                      r"x.at\[indices\].add\(values\)"):
    dfdx.grad(lambda x: (np.add.at(z, [0, 0], x[:2]), dnp.sum(z))[1])(X)
  with pytest.raises(TypeError, match=r"x.at\[indices\].max\(values\)"):
    dfdx.grad(lambda x: (np.maximum.at(z, [0], x[:1]), dnp.sum(z))[1])(X)
  # SciPy's special functions are ufuncs: on traced values, dfdx.scipy.special's
  special = pytest.importorskip("scipy.special")
  s = special.expit(X)
  np.testing.assert_allclose(dfdx.grad(lambda x: np.sum(special.expit(x)))(X), s * (1 - s),
                             rtol=1e-14)
  np.testing.assert_allclose(dfdx.jit(lambda x: special.gammaln(x))(np.abs(X) + 1),
                             special.gammaln(np.abs(X) + 1), rtol=1e-14)
  with pytest.raises(TypeError, match="the ufunc .* \(not NumPy's\) does not support"):
    dfdx.grad(lambda x: dnp.sum(np.frompyfunc(abs, 1, 1)(x)))(X)


def test_storing_a_traced_value_into_a_numpy_array_says_how_to_build_it():
  def f(x):
    a = np.zeros(3)
    a[0] = dnp.cos(x)
    return dnp.sum(a)
  with pytest.raises(ValueError) as caught:
    dfdx.grad(f)(1.0)
  assert r"dnp.at(a)[i].set(x)" in str(caught.value.__cause__)


def test_numpy_histogram_dispatches_to_dfdx_numpy():
  counts, edges = np.histogram(dfdx.numpy.asarray(X), bins=3)
  want_counts, want_edges = np.histogram(X, bins=3)
  np.testing.assert_array_equal(counts, want_counts)
  np.testing.assert_allclose(edges, want_edges)
  # Counts are piecewise constant in the data: their derivative is zero.
  np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.sum(np.histogram(x)[0] * 1.0))(X), 0 * X)


def test_numpy_out_argument_is_refused():
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.grad(lambda x: dnp.sum(np.sin(x, out=np.empty_like(X))))(X)
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.grad(lambda x: np.sum(x, out=np.empty(())))(X)


# ---- conversions ----------------------------------------------------------------------------


def test_float_item_and_complex_raise_concretization_error():
  for f in [float, complex, lambda x: x.item(), lambda x: x.tolist()]:
    with pytest.raises(dfdx.ConcretizationError, match="derivative"):
      dfdx.grad(lambda x: f(x) * x)(1.5)
    with pytest.raises(dfdx.ConcretizationError):
      dfdx.vmap(lambda x: f(x) * x)(np.ones(2))


def test_bool_is_concrete_under_grad_and_raises_under_vmap():
  f = lambda x: x * 2.0 if x > 0 else -x  # noqa: E731
  assert_same(dfdx.grad(f)(1.5), np.float64(2.0))
  assert_same(dfdx.grad(f)(-1.5), np.float64(-1.0))
  _, t = dfdx.jvp(f, (1.5,), (1.0,))
  assert_same(t, np.float64(2.0))
  with pytest.raises(dfdx.ConcretizationError, match="vmap"):
    dfdx.vmap(f)(np.ones(2))
  assert dfdx.grad(lambda x: x * int(x))(3.0) == 3.0  # int() of a concrete value is a constant
  assert dfdx.grad(lambda x: x * [1.0, 2.0, 5.0][dnp.argmax(x * np.ones(3))])(3.0) == 1.0


def test_numpy_conversion_raises():
  with pytest.raises(dfdx.TracerArrayConversionError):
    dfdx.grad(lambda x: np.asarray(x).sum())(X)
  with pytest.raises(TypeError, match="unhashable"):
    dfdx.grad(lambda x: hash(x))(1.0)
