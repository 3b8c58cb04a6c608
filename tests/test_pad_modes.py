"""dfdx.numpy.pad's modes 'linear_ramp', 'maximum', 'mean', 'median' and 'minimum' on traced
values, against np.pad.

One table of cases (mode, operand, pad_width, kwargs, dtype). Each case must give np.pad's
dtype and exactly its values traced eagerly (jvp, or vmap for integers), under jit, and under
vmap with the batch axis first and last; float64 cases also pass check_grads (order 2, forward
and reverse). Then traced end values, statistics of no entries, empty operands and NumPy's
errors.
"""
import re
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads

F64, F32, I64, I32 = np.float64, np.float32, np.int64, np.int32
HALVES = np.array([2, 3, 7, 0, -3, -2])  # means of 2.5 and -2.5: NumPy rounds half to even

# (mode, shape or explicit values, pad_width, kwargs, dtype)
CASES = [
    # maximum and minimum: every stat_length form, widths wider than the axis, zero widths
    ("maximum", (5,), 2, {}, F64),
    ("maximum", (5,), (1, 3), {"stat_length": 2}, F32),
    ("maximum", (4, 3), ((2, 1), (0, 3)), {"stat_length": (1, 3)}, I64),
    ("maximum", (3, 4, 2), 2, {"stat_length": ((1, 2), (3, 1), (2, 2))}, F64),
    ("maximum", (2, 3), ((0, 0), (0, 0)), {"stat_length": 1}, F32),
    ("minimum", (3,), (7, 9), {"stat_length": None}, F64),
    ("minimum", (4, 3), ((1,),), {"stat_length": ((2,),)}, I32),
    ("minimum", (2, 3, 4), ((0, 0), (2, 5), (1, 0)), {"stat_length": [[1], [2], [3]]}, F32),
    ("minimum", (4, 3), {1: (2, 1)}, {"stat_length": 10}, F64),
    ("minimum", (2, 3), ((3, 0), (4, 2)), {"stat_length": ((1, 1), (1, 1))}, F64),
    # mean: integer arrays round half to even; a fractional stat_length rounds (2.6 -> 3)
    ("mean", (5,), 3, {}, F64),
    ("mean", HALVES, (2, 4), {"stat_length": (2, 2)}, I64),
    ("mean", HALVES, 3, {}, I32),
    ("mean", (4, 5), ((1, 2), (3, 1)), {"stat_length": ((1, 3), (2, 4))}, F32),
    ("mean", (3, 2, 4), 1, {"stat_length": 2.6}, F64),
    ("mean", (3, 4), 0, {"stat_length": 2}, F64),
    ("mean", (2, 3), (0, 5), {"stat_length": 20}, I32),
    ("mean", (12,), (2, 1), {}, F32),
    ("mean", (3, 12), ((4, 1), (2, 9)), {"stat_length": (11, 3)}, F64),
    # median: even counts average two entries, rounded half to even for integers
    ("median", (5,), 2, {}, F64),
    ("median", HALVES, (3, 2), {"stat_length": (2, 4)}, I64),
    ("median", (4, 3), ((2, 0), (1, 2)), {"stat_length": ((4, 2), (1, 2))}, F32),
    ("median", (2, 3, 4), ((1, 1), (0, 2), (3, 0)), {"stat_length": 2}, F64),
    ("median", (3,), (8, 6), {"stat_length": [4]}, I32),
    ("median", (4, 2), ((0, 3), (5, 0)), {"stat_length": None}, F64),
    # linear_ramp: every end_values form. NumPy's linspace computes in the result dtype of end
    # value and array: a NumPy scalar (from a scalar or a pair) promotes float32 to float64,
    # Python scalars (from per-axis pairs) do not; integer arrays are floored.
    ("linear_ramp", (4,), (3, 5), {}, F64),
    ("linear_ramp", (4,), 6, {"end_values": 2}, I64),
    ("linear_ramp", HALVES, (7, 3), {"end_values": (-9, 11)}, I32),
    ("linear_ramp", (3,), (2, 3), {"end_values": (1.5, -2.5)}, F32),
    ("linear_ramp", (3, 4), ((2, 3), (4, 1)), {"end_values": ((1, 2), (3, 4))}, I32),
    ("linear_ramp", (3, 4), ((2, 3), (4, 1)), {"end_values": ((0.1, 2.7), (-3.3, 0.4))}, F32),
    ("linear_ramp", (3, 4), ((2, 3), (4, 1)), {"end_values": ((0.1, 2.7), (-3.3, 0.4))}, F64),
    ("linear_ramp", (2, 3, 2), 2, {"end_values": [[1], [2], [3]]}, F64),
    ("linear_ramp", (2, 3, 2), ((1, 0), (0, 0), (0, 3)), {"end_values": np.float32(0.3)}, F32),
    ("linear_ramp", (2, 3), ((0, 0), (0, 0)), {"end_values": 5}, F64),
    ("linear_ramp", (1, 2), {0: 3}, {"end_values": 0.7}, F64),
    # an edge equal to its end value makes a step 0: linspace then computes k / num * delta
    ("linear_ramp", np.array([[0.0, 1.3, 2.9], [0.25, 0.7, 0.0]]), 5, {}, F64),
    ("linear_ramp", np.array([[0, 7, 9], [3, 5, -7]]), ((0, 0), (7, 10)), {}, I64),
]


def _id(case):
  mode, spec, width, kwargs, dtype = case
  shape = spec.shape if isinstance(spec, np.ndarray) else spec
  return f"{mode}-{np.dtype(dtype)}-{shape}-{width}-{kwargs}".replace(" ", "")


def sample(case, seed=0):
  """The case's operand: distinct values (no ties for max, min and median), integers for an
  integer dtype, and explicit values varied per seed."""
  _, spec, _, _, dtype = case
  rng = np.random.default_rng(seed)
  if isinstance(spec, np.ndarray):
    return (spec * (1, -1, 3)[seed] + seed).astype(dtype)
  if np.issubdtype(dtype, np.integer):
    size = int(np.prod(spec))
    return (rng.permutation(4 * size)[:size].reshape(spec) - 2 * size).astype(dtype)
  return rng.uniform(-2.0, 2.0, spec).astype(dtype)


def pad_fn(case):
  mode, _, width, kwargs, _ = case
  return lambda x: dnp.pad(x, width, mode, **kwargs)


def expected(case, x):
  mode, _, width, kwargs, _ = case
  return np.pad(x, width, mode, **kwargs)


def assert_same(actual, expected):
  """np.pad's dtype and shape, and exactly its values."""
  actual = np.asarray(actual)
  assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), \
      ((actual.dtype, actual.shape), (expected.dtype, expected.shape))
  np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_eager(case):
  x = sample(case)
  if np.issubdtype(x.dtype, np.integer):  # (jvp takes integer inputs as floats)
    out = dfdx.vmap(pad_fn(case))(x[None])[0]
  else:
    out = dfdx.jvp(pad_fn(case), (x,), (np.ones_like(x),))[0]
  assert_same(out, expected(case, x))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_jit(case):
  f = dfdx.jit(pad_fn(case))
  for seed in (0, 1):
    x = sample(case, seed)
    assert_same(f(x), expected(case, x))


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_vmap(case, axis):
  xs = [sample(case, seed) for seed in range(3)]
  out = dfdx.vmap(pad_fn(case), in_axes=axis)(np.stack(xs, axis=axis))
  assert_same(out, np.stack([expected(case, x) for x in xs]))


@pytest.mark.parametrize("case", [c for c in CASES if c[-1] is F64], ids=_id)
def test_check_grads(case):
  check_grads(pad_fn(case), (sample(case),), order=2, modes=("fwd", "rev"))


# ---- traced end values ------------------------------------------------------------------


@pytest.mark.parametrize("ends", [np.array(0.7), np.array([0.5, -1.5]),
                                  np.arange(4.0).reshape(2, 2), np.array([[0.3], [-1.2]])])
def test_traced_end_values(ends):
  x, width = sample(CASES[0], 3).reshape(5, 1) * np.ones(2), ((2, 3), (1, 2))
  f = lambda x, e: dnp.pad(x, width, "linear_ramp", end_values=e)  # noqa: E731
  assert_same(dfdx.jvp(f, (x, ends), (x, ends))[0], np.pad(x, width, "linear_ramp",
                                                            end_values=ends))
  assert_same(dfdx.jit(f)(x, ends), np.pad(x, width, "linear_ramp", end_values=ends))
  check_grads(f, (x, ends), order=2, modes=("fwd", "rev"))
  batch = np.stack([ends, ends + 1, 2 * ends])
  assert_same(dfdx.vmap(lambda e: f(x, e))(batch),
              np.stack([np.pad(x, width, "linear_ramp", end_values=e) for e in batch]))


@pytest.mark.parametrize("ends", [np.array(0.3), np.array(0.3, np.float32),
                                  np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)])
def test_traced_end_values_set_linspace_dtype(ends):
  # as in NumPy, float64 end values ramp a float32 array in float64, float32 ones in float32
  x = sample(CASES[0]).astype(F32)[:4].reshape(2, 2)
  out = dfdx.vmap(lambda e: dnp.pad(x, 3, "linear_ramp", end_values=e))(ends[None])[0]
  assert_same(out, np.pad(x, 3, "linear_ramp", end_values=ends))


# ---- statistics of no entries, empty operands -------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("mode", ["mean", "median"])
@pytest.mark.parametrize("dtype", [F64, I64])
def test_stat_length_zero_is_nan(mode, dtype):
  # NumPy: the mean of no entries is NaN (with a warning), cast as NumPy casts NaN to integers
  x = np.arange(2.0, 8.0).reshape(2, 3).astype(dtype)
  width, kwargs = ((1, 2), (0, 1)), {"stat_length": ((0, 1), (2, 0))}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    want = np.pad(x, width, mode, **kwargs)
  assert_same(dfdx.jit(lambda x: dnp.pad(x, width, mode, **kwargs))(x), want)
  assert_same(dfdx.vmap(lambda x: dnp.pad(x, width, mode, **kwargs))(x[None])[0], want)


@pytest.mark.parametrize("mode,kwargs", [("maximum", {"stat_length": -1}), ("mean", {}),
                                         ("median", {"stat_length": 0}),
                                         ("linear_ramp", {"end_values": (1, 2)})])
def test_empty_operand(mode, kwargs):
  # NumPy returns before it reads stat_length, so even a negative one passes
  x = np.zeros((0, 3))
  out = dfdx.jvp(lambda x: dnp.pad(x, ((0, 0), (2, 1)), mode, **kwargs), (x,), (x,))[0]
  assert_same(out, np.pad(x, ((0, 0), (2, 1)), mode, **kwargs))


# ---- NumPy's errors ---------------------------------------------------------------------

ERRORS = [
    (lambda xp, x: xp.pad(x, 1, "mean", stat_length=-1)),
    (lambda xp, x: xp.pad(x, 1, "median", stat_length=((1, -1), (2, 2)))),
    (lambda xp, x: xp.pad(x, 1, "maximum", stat_length=0)),
    (lambda xp, x: xp.pad(x, 0, "minimum", stat_length=((1, 1), (0, 1)))),
    (lambda xp, x: xp.pad(x, 1, "mean", end_values=1)),
    (lambda xp, x: xp.pad(x, 1, "linear_ramp", stat_length=1)),
    (lambda xp, x: xp.pad(x, 1, "maximum", reflect_type="odd")),
    (lambda xp, x: xp.pad(x, 1, "lineal_ramp")),
    (lambda xp, x: xp.pad(x, 1, "median", stat_length=(1, 2, 3))),
    (lambda xp, x: xp.pad(x, 1, "linear_ramp", end_values=np.ones((3, 2)))),
    (lambda xp, x: xp.pad(x[:0], 1, "mean")),
    (lambda xp, x: xp.pad(x[:, :0], ((0, 0), (1, 0)), "linear_ramp")),
]


@pytest.mark.parametrize("fun", ERRORS)
def test_numpy_errors(fun):
  x = sample(CASES[3])[:, :, 0]
  with pytest.raises(Exception) as numpy_error:
    fun(np, x)
  message = re.escape(str(numpy_error.value))
  with pytest.raises(numpy_error.type, match=message):
    dfdx.jvp(lambda x: fun(dnp, x), (x,), (x,))
  with pytest.raises(numpy_error.type, match=message):
    dfdx.jit(lambda x: fun(dnp, x))(x)


def test_callable_mode_is_not_traced():
  def pad_with(vector, width, axis, kwargs):
    vector[:width[0]] = vector[-width[1]:] = 1.0
  x = sample(CASES[0])
  assert_same(dnp.pad(x, 2, pad_with), np.pad(x, 2, pad_with))  # untraced: NumPy itself
  with pytest.raises(NotImplementedError, match="callable mode .*'pad_with'.* not implemented"):
    dfdx.grad(lambda x: dnp.sum(dnp.pad(x, 2, pad_with)))(x)
