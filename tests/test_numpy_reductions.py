"""Reductions of dfdx.numpy against NumPy: values, shapes and dtypes on traced inputs for
every axis form (None, int, negative, tuple, empty tuple), keepdims, dtype, ddof, initial and
where; empty arrays (NumPy's results and NumPy's errors); derivatives by check_grads, ties in
max/min (split equally), exact products with zeros, zero derivatives of argmax/all/...
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.test_numpy_elementwise import assert_same, check_traced, check_untraced, sample

REDUCTIONS = ["sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "ptp",
              "all", "any", "count_nonzero", "average", "argmax", "argmin", "cumsum", "cumprod"]
SINGLE_AXIS = {"argmax", "argmin", "cumsum", "cumprod"}
NO_KEEPDIMS = {"cumsum", "cumprod"}

ARRAYS = {
    "f64": np.arange(24.0).reshape(2, 3, 4) % 5 - 1.5,
    "f32": (np.arange(24.0).reshape(2, 3, 4) % 7 - 2).astype(np.float32),
    "f16": (np.arange(6.0).reshape(2, 3) / 4).astype(np.float16),
    "i64": np.arange(24).reshape(2, 3, 4) % 5 - 2,
    "i8": (np.arange(12).reshape(3, 4) * 37).astype(np.int8),
    "bool": np.arange(12).reshape(4, 3) % 3 == 0,
    "0d": np.array(2.5), "1d": np.array([3.0, -1.0, 2.0]),
    "empty0": np.zeros((0, 3)), "empty1": np.zeros((2, 0), int),
}
AXES = [None, 0, -1, 1, (0, -1), (), (1,), 2, 5, (0, 0), [0]]


def _calls(name):
  """The (args, kwargs) variants of a reduction's axis and keepdims."""
  for axis in AXES:
    if name in SINGLE_AXIS and isinstance(axis, (tuple, list)):
      continue
    for keepdims in ([False] if name in NO_KEEPDIMS else [False, True]):
      kwargs = {"axis": axis}
      if name not in NO_KEEPDIMS:
        kwargs["keepdims"] = keepdims
      yield kwargs


@pytest.mark.parametrize("key", sorted(ARRAYS))
@pytest.mark.parametrize("name", REDUCTIONS)
def test_values_axes_keepdims(name, key):
  a = ARRAYS[key]
  np_fun, dnp_fun = getattr(np, name), getattr(dnp, name)
  for kwargs in _calls(name):
    check_traced(lambda a: np_fun(a, **kwargs), lambda a: dnp_fun(a, **kwargs), a)
    check_untraced(lambda a: np_fun(a, **kwargs), lambda a: dnp_fun(a, **kwargs), a)


def test_straight_to_numpy():
  x = np.ones((2, 3))
  assert type(dnp.sum(np.ones(3))) is np.float64
  assert type(dnp.mean(np.arange(3))) is np.float64
  assert type(dnp.max(x, axis=0)) is np.ndarray
  assert type(dnp.argmax(x)) is np.int64
  assert type(dnp.all(x)) is np.bool_
  assert type(dnp.sum([1, 2])) is np.int64
  assert dnp.sum is not np.sum


# ---- dtype, ddof, initial, where, correction, mean= ------------------------------------

A = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, -1.0]])
AI = np.array([[1, 3, 3], [0, 2, -1]])
W = np.array([[True, False, True], [True, True, False]])

OPTIONS = {
    "sum": [dict(dtype=np.float32), dict(dtype=np.int32), dict(dtype=np.int8, axis=0),
            dict(initial=5.0), dict(initial=5.5, axis=1), dict(where=W),
            dict(where=W[0], axis=1, keepdims=True), dict(initial=-5.0, axis=1, where=W)],
    "prod": [dict(dtype=np.float32), dict(dtype=np.int32), dict(initial=5.0),
             dict(initial=-2.0, axis=1, where=W), dict(where=W, axis=0)],
    "max": [dict(initial=5.0), dict(initial=2.5, axis=0), dict(initial=-5.0, axis=1, where=W),
            dict(where=W), dict(initial=np.float64(0.5), axis=1)],
    "min": [dict(initial=0.5), dict(initial=-5.0, axis=1, where=W), dict(where=W, initial=9)],
    "mean": [dict(dtype=np.float32), dict(dtype=np.int32), dict(where=W), dict(where=W, axis=0),
             dict(where=W[0], axis=1, keepdims=True), dict(dtype=np.float16, axis=1)],
    "var": [dict(ddof=1), dict(ddof=1, axis=0), dict(ddof=3, axis=1), dict(correction=1),
            dict(ddof=1, correction=1), dict(dtype=np.float32), dict(dtype=np.int32),
            dict(where=W), dict(where=W, axis=0), dict(where=W[0], axis=1, keepdims=True),
            dict(mean=np.full((1, 1), 1.0)), dict(ddof=0.5, axis=1)],
    "std": [dict(ddof=1), dict(ddof=1, axis=0, keepdims=True), dict(correction=1, axis=1),
            dict(dtype=np.float32), dict(dtype=np.int32), dict(dtype=np.int32, axis=0),
            dict(where=W, axis=1)],
    "all": [dict(where=W), dict(where=W, axis=1, keepdims=True)],
    "any": [dict(where=W), dict(where=W, axis=0)],
    "cumsum": [dict(dtype=np.float32), dict(axis=0, dtype=np.int8), dict(axis=-1)],
    "cumprod": [dict(dtype=np.float32), dict(axis=1, dtype=np.int8)],
    "average": [dict(axis=1, weights=np.array([1.0, 2.0, 3.0])),
                dict(weights=np.full((2, 3), 2.0)), dict(axis=0, weights=np.array([1, 3])),
                dict(axis=1, weights=np.array([1.0, 2.0, 3.0]), returned=True),
                dict(returned=True), dict(axis=0, returned=True),
                dict(axis=(0, 1), returned=True), dict(axis=1, keepdims=True, returned=True),
                dict(axis=-1, weights=np.array([1.0, 2.0, 3.0]), keepdims=True),
                dict(weights=np.array([1.0, 2.0, 3.0])), dict(axis=0, weights=np.ones(3)),
                dict(axis=(1, 0), weights=np.arange(6.0).reshape(3, 2).T),
                dict(axis=(0, 1), weights=np.arange(6.0).reshape(3, 2)),
                dict(axis=1, weights=np.array([1.0, -1.0, 0.0])),
                dict(axis=(0, 0))],
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_options(name):
  np_fun, dnp_fun = getattr(np, name), getattr(dnp, name)
  for kwargs in OPTIONS[name]:
    for a in [A, AI, A.astype(np.float32)]:
      check_traced(lambda a: np_fun(a, **kwargs), lambda a: dnp_fun(a, **kwargs), a)
      check_untraced(lambda a: np_fun(a, **kwargs), lambda a: dnp_fun(a, **kwargs), a)


def test_traced_where_mask():
  a = sample((2, 3))
  for name in ["sum", "mean", "var", "std", "any", "all"]:
    check_traced(lambda a: getattr(np, name)(a, axis=1, where=a > 0),
                 lambda a: getattr(dnp, name)(a, axis=1, where=a > 0), a)
  for name in ["max", "min", "prod"]:
    check_traced(lambda a: getattr(np, name)(a, axis=1, where=a > 0, initial=0.5),
                 lambda a: getattr(dnp, name)(a, axis=1, where=a > 0, initial=0.5), a)


def test_where_and_initial_errors_are_numpys():
  a = np.ones(3)
  for name, kwargs in [("sum", dict(where=np.ones((2, 3), bool))),
                       ("mean", dict(where=np.ones((2, 3), bool))),
                       ("max", dict(where=np.ones((1, 1, 3), bool), initial=0.0)),
                       ("any", dict(where=np.ones((2, 3), bool))),
                       ("sum", dict(where=np.array([1, 0, 1]))),
                       ("var", dict(where=np.array([1, 0, 1]))),
                       ("sum", dict(axis=0, initial=np.array([1.0, 2.0, 3.0]))),
                       ("prod", dict(initial=np.array([1.0]))),
                       ("sum", dict(where=1)), ("prod", dict(where=[True, False, True]))]:
    check_traced(lambda a: getattr(np, name)(a, **kwargs),
                 lambda a: getattr(dnp, name)(a, **kwargs), a)


def test_empty_arrays():
  e = np.zeros((0, 3))
  for name in ["sum", "prod", "max", "min", "mean", "var", "std", "argmax", "argmin", "ptp",
               "all", "any", "cumsum", "cumprod", "count_nonzero", "average"]:
    for kwargs in [{}, dict(axis=0), dict(axis=1), dict(axis=0, keepdims=True)]:
      if name in NO_KEEPDIMS and "keepdims" in kwargs:
        continue
      check_traced(lambda a: getattr(np, name)(a, **kwargs),
                   lambda a: getattr(dnp, name)(a, **kwargs), e)
  for name in ["sum", "prod", "max", "min"]:
    for kwargs in [dict(initial=1.0), dict(axis=0, initial=1.0), dict(axis=1, initial=1.0)]:
      check_traced(lambda a: getattr(np, name)(a, **kwargs),
                   lambda a: getattr(dnp, name)(a, **kwargs), e)


def test_empty_axis_errors_are_numpys():
  e = np.zeros((2, 0))
  for name in ["max", "min", "amax", "ptp"]:
    with pytest.raises(ValueError, match="zero-size array"):
      dfdx.vmap(lambda a: getattr(dnp, name)(a, axis=1))(e[None])
    with pytest.raises(ValueError, match="zero-size array"):
      dfdx.grad(lambda a: getattr(dnp, name)(a))(e)
  with pytest.raises(ValueError, match="empty sequence"):
    dfdx.vmap(lambda a: dnp.argmax(a, axis=1))(e[None])
  with pytest.raises(ValueError, match="does not have an identity"):
    dfdx.vmap(lambda a: dnp.max(a, where=a > 0))(np.ones((1, 3)))
  with pytest.raises(np.exceptions.AxisError):
    dfdx.vmap(lambda a: dnp.sum(a, axis=2))(np.ones((1, 2, 3)))
  with pytest.raises(ValueError, match="duplicate"):
    dfdx.vmap(lambda a: dnp.sum(a, axis=(0, -2)))(np.ones((1, 2, 3)))
  with pytest.raises(TypeError):
    dfdx.vmap(lambda a: dnp.sum(a, axis=1.0))(np.ones((1, 2, 3)))


def test_integer_and_bool_inputs():
  for name in ["mean", "var", "std", "average"]:
    check_traced(getattr(np, name), getattr(dnp, name), AI)
    assert dfdx.vmap(getattr(dnp, name))(AI).dtype == np.float64
  assert_same(dfdx.grad(dnp.mean)(np.array([1, 2, 3, 4])), np.full(4, 0.25))
  assert_same(dfdx.grad(lambda x: dnp.sum(x * x))(np.array([1, 2])), np.array([2.0, 4.0]))


def test_lists_holding_traced_values():
  check_grads(lambda x: dnp.sum([x, 2 * x]), (1.5,), order=2)
  check_grads(lambda x: dnp.max([x, 2.0 - x]), (0.3,), order=2)
  check_grads(lambda x: dnp.mean([[x, 1.0], [2.0, x * x]], axis=0), (0.7,), order=2)


# ---- derivatives -----------------------------------------------------------------------------

GRAD_KWARGS = [dict(), dict(axis=0), dict(axis=-1, keepdims=True), dict(axis=(0, 2)),
               dict(axis=())]


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min", "amax", "amin", "var",
                                  "std", "ptp", "average"])
def test_grads(name):
  x = sample((2, 3, 2), (0.5, 2.0), seed=7)  # distinct entries: no ties
  for kwargs in GRAD_KWARGS:
    if name == "average" and kwargs.get("axis") == ():
      continue  # numpy.average refuses axis=()
    check_grads(lambda x: getattr(dnp, name)(x, **kwargs), (x,), order=2)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumulative_grads(name):
  x = sample((2, 3), (0.5, 2.0), seed=8)
  for kwargs in [dict(), dict(axis=0), dict(axis=-1)]:
    check_grads(lambda x: getattr(dnp, name)(x, **kwargs), (x,), order=2)


def test_grads_with_options():
  x = sample((2, 3), (0.5, 2.0), seed=9)
  mask = np.array([True, False, True])
  for f in [lambda x: dnp.sum(x, where=mask, initial=1.5),
            lambda x: dnp.prod(x, axis=1, where=mask),
            lambda x: dnp.max(x, axis=1, where=mask, initial=0.0),
            lambda x: dnp.mean(x, axis=1, where=mask), lambda x: dnp.var(x, axis=1, where=mask),
            lambda x: dnp.var(x, ddof=1), lambda x: dnp.std(x, axis=0, ddof=1),
            lambda x: dnp.var(x, axis=1, correction=1.5),
            lambda x: dnp.mean(x, dtype=np.float64), lambda x: dnp.sum(x, dtype=np.float64)]:
    check_grads(f, (x,), order=2)


def test_grads_in_traced_options():
  x = sample((2, 3), (0.5, 2.0), seed=10)
  check_grads(lambda i: dnp.sum(x, initial=i), (1.5,), order=2)
  check_grads(lambda i: dnp.max(x, initial=i), (5.0,), order=2)
  check_grads(lambda i: dnp.prod(x, axis=0, initial=i), (1.5,), order=2)
  check_grads(lambda x, w: dnp.average(x, axis=1, weights=w), (x, np.array([1.0, 2.0, 3.0])),
              order=2)
  check_grads(lambda x, w: dnp.average(x, weights=w, returned=True), (x, x + 1.0), order=2)
  check_grads(lambda x, m: dnp.var(x, axis=1, keepdims=True, mean=m), (x, x[:, :1]), order=2)


def test_float32_gradients_stay_float32():
  x = sample((2, 3), dtype=np.float32)
  for name in ["sum", "mean", "prod", "max", "var", "std", "ptp", "average"]:
    assert dfdx.grad(getattr(dnp, name))(x).dtype == np.float32


def test_ties_in_max_and_min_share_the_derivative_equally():
  x = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, -1.0]])
  assert_same(dfdx.grad(dnp.max)(x), np.array([[0, 0.5, 0.5], [0, 0, 0]]))
  assert_same(dfdx.grad(lambda x: dnp.sum(dnp.max(x, axis=1)))(x),
              np.array([[0, 0.5, 0.5], [0, 1.0, 0]]))
  ones = np.ones((2, 2))
  assert_same(dfdx.grad(dnp.min)(ones), np.full((2, 2), 0.25))
  assert_same(dfdx.grad(lambda x: dnp.sum(dnp.amin(x, axis=0)))(ones), np.full((2, 2), 0.5))
  # forward mode agrees: the tangent of a tie is the mean of the tied tangents
  _, t = dfdx.jvp(dnp.max, (x,), (np.arange(6.0).reshape(2, 3),))
  assert_same(t, np.float64(1.5))
  # ptp = max - min, each with its own ties
  assert_same(dfdx.grad(dnp.ptp)(np.array([1.0, 5.0, 3.0, 5.0, 1.0])),
              np.array([-0.5, 0.5, 0.0, 0.5, -0.5]))



@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2)])
def test_max_and_min_vjp_rules_match_their_transposed_jvps(axis):
  """reduce_max/min have direct VJP rules: the same values, ties included, as reverse mode
  through the transposed JVP rule, and under a second derivative."""
  from dfdx._src import ad
  x = np.round(sample((3, 4, 2), (-2.0, 2.0), seed=3))  # many ties
  for reduce in (dnp.max, dnp.min):
    def f(x):
      return dnp.sum(reduce(x, axis=axis) ** 3 * 0.5)
    with ad.use_vjp_rules(False):
      expected, expected2 = dfdx.grad(f)(x), dfdx.grad(lambda x: dnp.sum(dfdx.grad(f)(x)))(x)
    assert_same(dfdx.grad(f)(x), expected)
    assert_same(dfdx.grad(lambda x: dnp.sum(dfdx.grad(f)(x)))(x), expected2)
  # a max under stop_gradient (the shift of a log-sum-exp) records no derivative work
  g = dfdx.grad(lambda x: dnp.sum(x - dfdx.stop_gradient(dnp.max(x, axis=0))))
  assert_same(g(x), np.ones_like(x))


def _product_of_others(x):
  return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


@pytest.mark.parametrize("x", [[2.0, 0.0, 3.0], [2.0, 0.0, 0.0], [0.0], [4.0, -1.5, 2.0, 0.5]],
                         ids=str)
def test_prod_with_zeros_has_exact_gradients(x):
  x = np.array(x)
  assert_same(dfdx.grad(dnp.prod)(x), _product_of_others(x))
  assert_same(dfdx.jacfwd(dnp.prod)(x), _product_of_others(x))
  check_grads(dnp.prod, (x,), order=2)


def test_prod_hessian_at_zero():
  x = np.array([2.0, 0.0, 3.0])
  expected = np.array([[0.0, 3.0, 0.0], [3.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
  assert_same(dfdx.hessian(dnp.prod)(x), expected)
  assert_same(dfdx.jacfwd(lambda x: dnp.prod(x, axis=1))(np.array([[0.0, 2.0], [3.0, 0.0]])),
              np.array([[[2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0]]]))


def test_cumprod_with_zeros_has_exact_derivatives():
  x = np.array([2.0, 0.0, 3.0])
  expected = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 6.0, 0.0]])
  assert_same(dfdx.jacfwd(dnp.cumprod)(x), expected)
  assert_same(dfdx.jacrev(dnp.cumprod)(x), expected)


@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_var_and_std_closed_form(ddof):
  x = np.array([1.0, 2.0, 4.0, 7.0])
  n = x.size
  assert_same(dfdx.grad(lambda x: dnp.var(x, ddof=ddof))(x), 2 * (x - x.mean()) / (n - ddof))
  std = np.std(x, ddof=ddof)
  assert_same(dfdx.grad(lambda x: dnp.std(x, ddof=ddof))(x), (x - x.mean()) / ((n - ddof) * std))


def test_std_of_single_or_equal_entries_has_zero_derivative():
  # sqrt's slope is infinite at 0; std takes the derivative there as 0, not 0 * inf = nan
  assert_same(dfdx.grad(lambda x: dnp.sum(dnp.std(x, axis=0)))(np.ones((1, 3))), np.zeros((1, 3)))
  assert_same(dfdx.grad(dnp.std)(np.full(3, 2.0)), np.zeros(3))
  assert_same(dfdx.hessian(dnp.std)(np.full(2, 2.0)), np.zeros((2, 2)))
  check_grads(lambda x: dnp.std(x, axis=1), (sample((3, 1)),), order=2)
  check_traced(np.std, dnp.std, np.array([np.nan, 1.0]))


def test_non_differentiable_reductions_have_zero_derivatives():
  x = sample((2, 3), seed=11)
  for f in [dnp.argmax, dnp.argmin, lambda x: dnp.argmax(x, axis=1), dnp.all, dnp.any,
            dnp.count_nonzero, lambda x: dnp.any(x > 0, axis=0)]:
    _, t = dfdx.jvp(f, (x,), (np.ones_like(x),))
    assert_same(t, np.zeros(np.shape(t)))
    assert_same(dfdx.grad(lambda x: dnp.sum(x) * 0 + dnp.sum(dnp.multiply(f(x), 1.0)))(x),
                np.zeros_like(x))


def test_reductions_compose_with_vmap_of_grad():
  x = sample((4, 3), (0.5, 2.0), seed=12)
  for name in ["sum", "mean", "prod", "max", "var", "std", "ptp"]:
    f = getattr(dnp, name)
    batched = dfdx.vmap(dfdx.grad(f))(x)
    stacked = np.stack([dfdx.grad(f)(row) for row in x])
    assert_same(batched, stacked)


def test_an_initial_python_int_out_of_the_dtype_range_raises_as_in_numpy():
  u = np.array([3, 7], np.uint8)
  for name, initial in (("max", -1), ("min", 300), ("sum", -1)):
    with pytest.raises(OverflowError, match="out of bounds"):
      getattr(np, name)(u, initial=initial)
    with pytest.raises(OverflowError, match="out of bounds"):
      dfdx.jit(lambda x: getattr(dnp, name)(x, initial=initial))(u)
  assert dfdx.jit(lambda x: dnp.max(x, initial=5))(u) == np.max(u, initial=5)


def test_average_with_weights_summing_to_zero_raises_as_numpy_does():
  # Eagerly the sum is checked when it is computed; under jit and vmap too (NumPy raises for
  # the example), where a NaN would otherwise come back; also in exported code.
  a, w = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, -1.0], [1.0, 1.0]])
  with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
    np.average(a, weights=w, axis=1)
  f = lambda a, w: dnp.average(a, weights=w, axis=1)  # noqa: E731
  for run in (lambda: f(a, w), lambda: dfdx.grad(lambda a: dnp.sum(f(a, w)))(a),
              lambda: dfdx.jit(f)(a, w), lambda: dfdx.vmap(f)(np.stack([a, a]), np.stack([w, w])),
              lambda: dfdx.jit(dfdx.grad(lambda a, w: dnp.sum(f(a, w))))(a, w)):
    with pytest.raises(ZeroDivisionError, match="Weights sum to zero, can't be normalized"):
      run()
  w_ok = np.array([[1.0, 3.0], [1.0, 1.0]])
  np.testing.assert_allclose(dfdx.jit(f)(a, w_ok), np.average(a, weights=w_ok, axis=1))
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(lambda a, w: dnp.sum(f(a, w))))(a, w_ok),
                             w_ok / w_ok.sum(axis=1, keepdims=True))
  source = dfdx.export.to_source(f, a, w, name="f")
  namespace = {}
  exec(source, namespace)
  with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
    namespace["f"](a, w)


@pytest.mark.parametrize("reverse", [False, True])
def test_cumprod_of_long_axes_by_its_recurrence(reverse):
  # Past 16 entries cumprod's tangent is the recurrence dc_i = x_i dc_(i-1) + c_(i-1) x_dot_i
  # (doubling steps): exact at zeros, as the matrix form, and every derivative order keeps
  # n log n entries where the matrix form's kept n^2, n^3, ...
  rng = np.random.default_rng(0)
  x = rng.uniform(-1.5, 1.5, (2, 40))
  x[0, [3, 17]] = 0.0
  x[1, 30] = 0.0
  f = (lambda x: dnp.flip(dnp.cumprod(dnp.flip(x, 1), axis=1), 1)) if reverse else \
      (lambda x: dnp.cumprod(x, axis=1))
  exact = np.zeros((2, 40, 2, 40))
  for r in range(2):
    row = x[r, ::-1] if reverse else x[r]
    for i in range(40):
      for j in range(i + 1):
        entry = np.prod(np.delete(row[:i + 1], j))
        ii, jj = (39 - i, 39 - j) if reverse else (i, j)
        exact[r, ii, r, jj] = entry
  np.testing.assert_allclose(dfdx.jacfwd(f)(x), exact, rtol=1e-12, atol=1e-300)
  np.testing.assert_allclose(dfdx.jacrev(f)(x), exact, rtol=1e-12, atol=1e-300)
  check_grads(lambda x: f(x)[:, ::7], (x,), order=2)
  # the third derivative of prod over 300 entries holds no n^2 intermediate
  n = 300
  y = rng.uniform(0.9, 1.1, n)
  third = lambda y: dfdx.jvp(lambda y: dfdx.hvp(dnp.prod, (y,), (np.ones(n),)),  # noqa: E731
                             (y,), (np.ones(n),))[1]
  program = dfdx.make_expr(third)(y).program
  largest = max(v.aval.size for e in program.eqns for v in e.outputs)
  assert largest < 20 * n, largest
  np.testing.assert_allclose(np.sum(third(y)), _third_of_prod(y), rtol=1e-10)


def _third_of_prod(y):
  """sum_ijk d^3 prod / dy_i dy_j dy_k: prod times the sum over distinct triples of
  1 / (y_i y_j y_k), times 3! orderings."""
  inv = 1 / y
  e1, e2, e3 = inv.sum(), (inv ** 2).sum(), (inv ** 3).sum()
  return np.prod(y) * (e1 ** 3 - 3 * e1 * e2 + 2 * e3)
