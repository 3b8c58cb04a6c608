"""Elementwise functions of dfdx.numpy against NumPy, one table line per function (HIPS
autograd's test_systematic): values and dtypes on traced inputs (under vmap and jvp) for the
standard shapes and dtypes, NumPy's result with no traced input, derivatives by
`check_grads(order=2)` inside each function's domain, and zero derivatives for the piecewise
constant ones. Also where, clip, power, isclose and NumPy's keyword arguments.

The helpers at the top are shared with the other tests of dfdx.numpy.
"""
import warnings

import numpy as np
import pytest

import dfdx
from dfdx._src import ad
import dfdx.numpy as dnp
from dfdx._src.numpy import ufuncs
from dfdx.testing import check_grads

# ---- helpers (also used by test_numpy_reductions, test_numpy_creation, test_array_methods) --

_RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 2e-6}


def assert_same(actual, expected, rtol=None, atol=0.0):
  """Same shape, same dtype and (nearly) the same values, NaNs included."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
  if expected.dtype.kind in "fc":
    rtol = _RTOL.get(expected.dtype, 1e-12) if rtol is None else rtol
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
  else:
    np.testing.assert_array_equal(actual, expected)


def assert_same_tree(actual, expected, **kw):
  if isinstance(expected, (tuple, list)):
    assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), (actual, expected)
    for a, e in zip(actual, expected):
      assert_same_tree(a, e, **kw)
  else:
    assert_same(actual, expected, **kw)


def _is_array(x):
  return isinstance(x, np.ndarray)


def under_vmap(f, *args):
  """`f(*args)` on traced values: vmap over a batch of two rows per array argument, the
  argument and its reversal (so that the batching rules see distinct rows). Returns the
  per-row arguments and per-row results."""
  mapped = [_is_array(a) for a in args]
  rows = [args, tuple(np.flip(a) if m else a for a, m in zip(args, mapped))]
  batched = [np.stack([rows[0][i], rows[1][i]]) if m else a for i, (a, m) in enumerate(
      zip(args, mapped))]
  out = dfdx.vmap(f, in_axes=tuple(0 if m else None for m in mapped))(*batched)
  leaves = out if isinstance(out, (tuple, list)) else [out]
  per_row = [[leaf[r] for leaf in leaves] for r in range(2)]
  if not isinstance(out, (tuple, list)):
    per_row = [p[0] for p in per_row]
  return rows, per_row


def under_jvp(f, *args):
  """`f(*args)` with its floating array arguments traced by jvp; returns (primal, tangent)."""
  diff = [i for i, a in enumerate(args) if _is_array(a) and a.dtype.kind == "f"]

  def g(*xs):
    full = list(args)
    for i, x in zip(diff, xs):
      full[i] = x
    return f(*full)
  primals = tuple(args[i] for i in diff)
  tangents = tuple(np.ones_like(p) for p in primals)
  return dfdx.jvp(g, primals, tangents)


def check_traced(np_fun, dnp_fun, *args, rtol=None, errors=True):
  """dnp_fun on traced values equals np_fun row by row (values, shape, dtype, and NumPy's
  exception type when NumPy raises); under jvp the primal equals NumPy's result and the
  tangent matches the primal's shape."""
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
      expected = [np_fun(*args), None]
    except Exception as e:  # NumPy's error must be dfdx's error
      if not errors:
        raise
      with pytest.raises(type(e)):
        under_vmap(dnp_fun, *args)
      return
    rows, got = under_vmap(dnp_fun, *args)
    for row, out in zip(rows, got):
      assert_same_tree(out, np_fun(*row), rtol=rtol)
    if any(_is_array(a) and a.dtype.kind == "f" for a in args):
      primal, tangent = under_jvp(dnp_fun, *args)
      assert_same_tree(primal, expected[0], rtol=rtol)
      for p, t in zip(*(v if isinstance(v, (tuple, list)) else [v] for v in (primal, tangent))):
        assert np.shape(t) == np.shape(p)


def check_untraced(np_fun, dnp_fun, *args):
  """With no traced argument, dnp_fun is NumPy: same type, dtype and values (or error)."""
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
      expected = np_fun(*args)
    except Exception as e:
      with pytest.raises(type(e)):
        dnp_fun(*args)
      return
    got = dnp_fun(*args)
  for g, e in zip(*(v if isinstance(v, tuple) else (v,) for v in (got, expected))):
    assert type(g) is type(e), (type(g), type(e))
    assert_same(g, e, rtol=0)


def sample(shape, domain=(-2.0, 2.0), dtype=np.float64, seed=0):
  lo, hi = domain
  return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


# ---- the tables ---------------------------------------------------------------------------
# kind: "smooth" (check_grads inside the domain), "zero" (zero derivative everywhere),
# "none" (values only).
POS, UNIT, ALL = (0.5, 2.0), (-0.8, 0.8), (-2.0, 2.0)

UNARY = {
    "negative": (ALL, "smooth"), "positive": (ALL, "smooth"), "square": (ALL, "smooth"),
    "reciprocal": (POS, "smooth"), "sqrt": (POS, "smooth"), "cbrt": (POS, "smooth"),
    "absolute": ((-2.0, -0.5), "smooth"), "abs": (POS, "smooth"), "fabs": ((-2.0, -0.5), "smooth"),
    "exp": (ALL, "smooth"), "exp2": (ALL, "smooth"), "expm1": (ALL, "smooth"),
    "log": (POS, "smooth"), "log2": (POS, "smooth"), "log10": (POS, "smooth"),
    "log1p": ((-0.5, 2.0), "smooth"), "sin": (ALL, "smooth"), "cos": (ALL, "smooth"),
    "tan": ((-1.2, 1.2), "smooth"), "arcsin": (UNIT, "smooth"), "arccos": (UNIT, "smooth"),
    "arctan": (ALL, "smooth"), "sinh": (ALL, "smooth"), "cosh": (ALL, "smooth"),
    "tanh": (ALL, "smooth"), "arcsinh": (ALL, "smooth"), "arccosh": ((1.2, 3.0), "smooth"),
    "arctanh": (UNIT, "smooth"), "deg2rad": (ALL, "smooth"), "radians": (ALL, "smooth"),
    "rad2deg": (ALL, "smooth"), "degrees": (ALL, "smooth"), "conj": (ALL, "smooth"),
    "conjugate": (ALL, "smooth"), "real": (ALL, "smooth"), "imag": (ALL, "zero"),
    "sign": (ALL, "zero"), "floor": (ALL, "zero"), "ceil": (ALL, "zero"),
    "trunc": (ALL, "zero"), "fix": (ALL, "zero"), "rint": (ALL, "zero"),
    "round": (ALL, "zero"), "around": (ALL, "zero"), "logical_not": (ALL, "zero"),
    "isnan": (ALL, "zero"), "isfinite": (ALL, "zero"), "isinf": (ALL, "zero"),
}
BINARY = {
    "add": ((ALL, ALL), "smooth"), "subtract": ((ALL, ALL), "smooth"),
    "multiply": ((ALL, ALL), "smooth"), "divide": ((ALL, POS), "smooth"),
    "true_divide": ((ALL, POS), "smooth"), "power": ((POS, ALL), "smooth"),
    "float_power": ((POS, ALL), "smooth"), "logaddexp": ((ALL, ALL), "smooth"),
    "logaddexp2": ((ALL, ALL), "smooth"), "arctan2": ((POS, POS), "smooth"),
    "hypot": ((POS, POS), "smooth"), "maximum": ((ALL, ALL), "smooth"),
    "minimum": ((ALL, ALL), "smooth"), "fmax": ((ALL, ALL), "smooth"),
    "fmin": ((ALL, ALL), "smooth"), "remainder": (((0.1, 0.9), (1.1, 2.0)), "smooth"),
    "mod": (((0.1, 0.9), (1.1, 2.0)), "smooth"), "floor_divide": ((ALL, POS), "zero"),
    "equal": ((ALL, ALL), "zero"), "not_equal": ((ALL, ALL), "zero"),
    "less": ((ALL, ALL), "zero"), "less_equal": ((ALL, ALL), "zero"),
    "greater": ((ALL, ALL), "zero"), "greater_equal": ((ALL, ALL), "zero"),
    "logical_and": ((ALL, ALL), "zero"), "logical_or": ((ALL, ALL), "zero"),
    "logical_xor": ((ALL, ALL), "zero"),
}
OTHER = {"where", "clip", "isclose", "divmod", "bitwise_and", "bitwise_or", "bitwise_xor",
         "invert", "bitwise_not", "left_shift", "right_shift", "bitwise_left_shift",
         "bitwise_right_shift", "gcd", "lcm", "bitwise_count"}  # tested on their own below

UNARY_SHAPES = [(), (3,), (2, 3), (0, 3)]
BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((1, 3), (3, 1)), ((0, 3), (3,)),
                 ((), (2, 3))]


def _np(name):
  return getattr(np, name)


def test_every_function_is_in_a_table():
  assert set(ufuncs.__all__) == set(UNARY) | set(BINARY) | OTHER


# ---- values on traced inputs, and NumPy itself without tracing --------------------------


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values(name, shape):
  x = sample(shape, UNARY[name][0])
  check_traced(_np(name), getattr(dnp, name), x)
  check_untraced(_np(name), getattr(dnp, name), x)


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_values(name, shapes):
  (d1, d2), _ = BINARY[name]
  x, y = sample(shapes[0], d1, seed=1), sample(shapes[1], d2, seed=2)
  check_traced(_np(name), getattr(dnp, name), x, y)
  check_untraced(_np(name), getattr(dnp, name), x, y)


def test_nan_and_inf_propagate_as_in_numpy():
  x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0])
  for name in ["sin", "exp", "log", "sqrt", "sign", "floor", "isnan", "isinf", "isfinite",
               "reciprocal", "arctan", "tanh", "absolute"]:
    check_traced(_np(name), getattr(dnp, name), x)
  for name in ["maximum", "minimum", "fmax", "fmin", "add", "multiply", "divide", "power",
               "arctan2", "hypot", "logaddexp", "equal", "less"]:
    check_traced(_np(name), getattr(dnp, name), x, x[::-1].copy())


# ---- dtypes: NumPy 2 promotion, weak Python scalars (NEP 50), NumPy's errors ------------

ARRAYS = {
    "f32": np.array([0.5, 0.75, 1.5], np.float32), "f64": np.array([0.5, 0.75, 1.5]),
    "f16": np.array([0.5, 0.75, 1.5], np.float16), "i64": np.array([1, 2, 3]),
    "i8": np.array([1, 2, 3], np.int8), "u8": np.array([1, 2, 3], np.uint8),
    "bool": np.array([True, False, True]),
}
SCALARS = {"py_float": 2.0, "py_int": 2, "py_bool": True, "np_f64": np.float64(2.0),
           "np_f32": np.float32(2.0), "np_i32": np.int32(2)}
BINARY_DTYPE_PAIRS = [("f32", "f32"), ("f32", "f64"), ("i64", "f32"), ("bool", "i8"),
                      ("u8", "u8"), ("i8", "i64"), ("f16", "u8"), ("bool", "bool"),
                      ("f32", "py_float"), ("py_float", "f32"), ("i8", "py_int"),
                      ("py_int", "i8"), ("f32", "py_int"), ("bool", "py_bool"),
                      ("f32", "np_f64"), ("np_f64", "f32"), ("f16", "np_f32"),
                      ("i8", "np_i32"), ("u8", "py_float"), ("i64", "py_bool")]


def _value(key):
  return ARRAYS[key] if key in ARRAYS else SCALARS[key]


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_dtypes(name):
  for key, x in ARRAYS.items():
    check_traced(_np(name), getattr(dnp, name), x)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_dtypes(name):
  for k1, k2 in BINARY_DTYPE_PAIRS:
    check_traced(_np(name), getattr(dnp, name), _value(k1), _value(k2))


def test_integer_reciprocal_truncates_like_numpy():
  for x in [np.array([-3, -2, -1, 1, 2, 5]), np.array([1, 2, 255], np.uint8),
            np.array([True, True])]:
    check_traced(np.reciprocal, dnp.reciprocal, x)


def test_float32_times_python_float_stays_float32():
  x = np.ones(3, np.float32)
  for f in [lambda x: x * 2.0, lambda x: 2.0 * x, lambda x: dnp.multiply(x, 2.0),
            lambda x: x ** 2, lambda x: x ** 2.5, lambda x: 2 ** x, lambda x: x / 3,
            lambda x: dnp.exp(x) - 1, lambda x: dnp.logaddexp2(x, 1.0),
            lambda x: dnp.deg2rad(x), lambda x: dnp.where(x > 0, x, 0.0)]:
    assert dfdx.vmap(f)(x[None]).dtype == np.float32
    assert dfdx.grad(lambda x: dnp.sum(f(x)))(x).dtype == np.float32


def test_numpy_scalars_are_strong():
  x = np.ones(3, np.float32)
  for f in [lambda x: x * np.float64(2), lambda x: np.float64(2) * x,
            lambda x: x ** np.int64(2), lambda x: dnp.power(x, np.int32(3)),
            lambda x: dnp.add(x, np.float64(1))]:
    assert dfdx.vmap(f)(x[None]).dtype == np.float64


def test_integer_inputs_are_differentiated_as_float64():
  x = np.array([1, 2, 3])
  assert_same(dfdx.vector_grad(dnp.square)(x), np.array([2.0, 4.0, 6.0]))
  assert_same(dfdx.vector_grad(dnp.sin)(x), np.cos(x))
  assert_same(dfdx.grad(lambda x: dnp.sum(x * x))(x), np.array([2.0, 4.0, 6.0]))


# ---- derivatives ----------------------------------------------------------------------------

SMOOTH_UNARY = sorted(n for n, (_, kind) in UNARY.items() if kind == "smooth")
SMOOTH_BINARY = sorted(n for n, (_, kind) in BINARY.items() if kind == "smooth")
ZERO_UNARY = sorted(n for n, (_, kind) in UNARY.items() if kind == "zero")
ZERO_BINARY = sorted(n for n, (_, kind) in BINARY.items() if kind == "zero")


@pytest.mark.parametrize("name", SMOOTH_UNARY)
def test_unary_grads(name):
  check_grads(getattr(dnp, name), (sample((2, 3), UNARY[name][0]),), order=2)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((1, 3), (3, 1)), ((), (3,))], ids=str)
@pytest.mark.parametrize("name", SMOOTH_BINARY)
def test_binary_grads(name, shapes):
  (d1, d2), _ = BINARY[name]
  x, y = sample(shapes[0], d1, seed=3), sample(shapes[1], d2, seed=4)
  check_grads(getattr(dnp, name), (x, y), order=2)


def _assert_zero_derivatives(f, *args):
  tangents = tuple(np.ones_like(a) for a in args)
  _, t = dfdx.jvp(f, args, tangents)
  assert_same(t, np.zeros(np.shape(t)))
  grads = dfdx.grad(lambda *a: dnp.sum(dnp.multiply(f(*a), 1.0)),
                    argnums=tuple(range(len(args))))(*args)
  for g, a in zip(grads, args):
    assert_same(g, np.zeros(np.shape(a)))


@pytest.mark.parametrize("name", ZERO_UNARY)
def test_unary_zero_derivatives(name):
  _assert_zero_derivatives(getattr(dnp, name), sample((2, 3), (-2.0, 2.0)))


@pytest.mark.parametrize("name", ZERO_BINARY)
def test_binary_zero_derivatives(name):
  _assert_zero_derivatives(getattr(dnp, name), sample((1, 3), ALL, seed=5),
                           sample((3, 1), POS, seed=6))


def test_isclose_has_zero_derivative():
  _assert_zero_derivatives(lambda a, b: dnp.isclose(a, b), sample(3), sample(3, seed=1))


# ---- power -----------------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, -1, -2, 2.0, 0.5, -1.5, np.int64(2),
                                      np.float64(3.0), np.array(2), np.array([1.0, 2.0, 3.0])],
                         ids=repr)
def test_power_with_concrete_exponents(exponent):
  x = sample(3, POS)
  check_traced(np.power, dnp.power, x, exponent)
  check_grads(lambda x: dnp.power(x, exponent), (x,), order=2)
  check_grads(lambda x: x ** exponent, (x,), order=2)


def test_power_of_integers_follows_numpy():
  x = np.array([-2, 2, 3])
  check_traced(np.power, dnp.power, x, 2)
  check_traced(np.power, dnp.power, x, 0)
  check_traced(np.power, dnp.power, x, -1)  # NumPy's ValueError for negative int powers
  check_traced(np.power, dnp.power, x, 0.5)
  check_traced(np.power, dnp.power, np.array([True, False]), 2)


def test_power_with_a_traced_exponent():
  check_grads(lambda y: dnp.power(1.7, y), (sample(3),), order=2)
  check_grads(lambda y: 2 ** y, (sample(3),), order=2)
  check_grads(lambda x, y: x ** y, (sample(3, POS), sample(3)), order=2)
  assert_same(dfdx.grad(lambda y: 2.0 ** y)(3.0), np.float64(8 * np.log(2)))


def test_power_negative_base_integer_valued_exponent():
  x = -sample(3, POS)
  check_grads(lambda x: x ** 3.0, (x,), order=2)
  check_grads(lambda x: dnp.power(x, -2.0), (x,), order=2)


def test_zero_to_a_concrete_power_has_exact_derivatives():
  for exponent, expected in [(0, 0.0), (0.0, 0.0), (1, 1.0), (1.0, 1.0), (2, 0.0), (2.0, 0.0),
                             (3, 0.0)]:
    assert_same(dfdx.grad(lambda x: x ** exponent)(0.0), np.float64(expected))
    assert_same(dfdx.grad(lambda x: dnp.power(x, exponent))(0.0), np.float64(expected))
  assert_same(dfdx.grad(dfdx.grad(lambda x: x ** 2.0))(0.0), np.float64(2.0))


def test_zero_base_with_traced_exponent():
  # 0 ** y = 0 for y > 0: flat in y (d/dy x**y = x**y log x is taken as 0 at x = 0).
  assert_same(dfdx.grad(lambda y: dnp.power(0.0, y))(2.0), np.float64(0.0))
  assert_same(dfdx.grad(lambda x, y: dnp.power(x, y), argnums=0)(0.0, 2.0), np.float64(0.0))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_zero_to_the_zero_with_array_exponent():
  g = dfdx.grad(lambda x: dnp.sum(dnp.power(x, np.array([0.0, 1.0]))))(np.zeros(2))
  assert_same(g, np.array([0.0, 1.0]))
  with ad.use_vjp_rules(False):
    g = dfdx.grad(lambda x: dnp.sum(dnp.power(x, np.array([0.0, 1.0]))))(np.zeros(2))
  assert_same(g, np.array([0.0, 1.0]))
  _, t = dfdx.jvp(lambda x: dnp.power(x, np.array([0.0, 1.0])), (np.zeros(2),), (np.ones(2),))
  assert_same(t, np.array([0.0, 1.0]))


def test_integer_power_of_booleans_has_numpys_dtype():
  from dfdx._src.ops import elementwise as ew
  b = np.array([True, False])
  assert ew.integer_pow(b, 2).dtype == np.power(b, 2).dtype


# ---- where -------------------------------------------------------------------------------


def test_where_values_and_dtypes():
  c = np.array([True, False, True])
  x, y = sample(3), sample(3, seed=1)
  check_traced(lambda x, y: np.where(c, x, y), lambda x, y: dnp.where(c, x, y), x, y)
  check_traced(lambda x: np.where(x > 0, x, 0), lambda x: dnp.where(x > 0, x, 0), x)
  check_traced(lambda x: np.where(x > 0, 1.0, 0.0), lambda x: dnp.where(x > 0, 1.0, 0.0), x)
  x32 = x.astype(np.float32)
  check_traced(lambda x: np.where(x > 0, x, 0.0), lambda x: dnp.where(x > 0, x, 0.0), x32)
  check_traced(lambda x: np.where(x > 0, x, np.float64(0)),
               lambda x: dnp.where(x > 0, x, np.float64(0)), x32)
  check_traced(lambda x: np.where([1, 0, 2], x, [4, 5, 6]),
               lambda x: dnp.where([1, 0, 2], x, [4, 5, 6]), x)
  check_traced(lambda x: np.where(x, 1, 2), lambda x: dnp.where(x, 1, 2), np.array([0, 3, 0]))
  check_traced(lambda x, y: np.where(x > y, x, y), lambda x, y: dnp.where(x > y, x, y),
               sample((1, 3)), sample((2, 1), seed=1))


def test_where_gradient_flows_to_the_selected_branch_only():
  x = np.array([-1.0, 0.5, 2.0])
  g = dfdx.grad(lambda x: dnp.sum(dnp.where(x > 0, x ** 2, -3 * x)))(x)
  assert_same(g, np.array([-3.0, 1.0, 4.0]))
  gx, gy = dfdx.grad(lambda x, y: dnp.sum(dnp.where(x > 0, x, y)), argnums=(0, 1))(x, -x)
  assert_same(gx, np.array([0.0, 1.0, 1.0]))
  assert_same(gy, np.array([1.0, 0.0, 0.0]))
  # a broadcast branch gets the sum over the entries that selected it
  g = dfdx.grad(lambda s: dnp.sum(dnp.where(x > 0, s, x)))(1.5)
  assert_same(g, np.float64(2.0))
  check_grads(lambda x, y: dnp.where(x > 0, x * y, y ** 2), (x, sample(3)), order=2)


def test_where_condition_has_no_derivative():
  _, t = dfdx.jvp(lambda c: dnp.where(c > 0, 1.0, 2.0), (np.ones(3),), (np.ones(3),))
  assert_same(t, np.zeros(3))


def test_where_with_one_argument_is_nonzero():
  x = np.array([[0.0, 1.5], [2.0, 0.0]])
  check_untraced(np.where, dnp.where, x)
  out = []
  dfdx.grad(lambda x: (out.append(dnp.where(x > 1)), dnp.sum(x))[1])(x)
  assert_same_tree(out[0], np.where(x > 1))
  with pytest.raises(dfdx.ConcretizationError):
    dfdx.vmap(lambda x: dnp.where(x > 1))(x)
  with pytest.raises(ValueError, match="both or neither"):
    dnp.where(x > 1, x)


# ---- clip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(a_min=-0.5, a_max=0.5), dict(a_min=None, a_max=0.5), dict(a_min=-0.5, a_max=None),
    dict(a_min=None, a_max=None), dict(min=-0.5), dict(max=0.5), dict(min=-0.5, max=0.5),
    dict(), dict(a_min=np.array([-1.0, 0.0, -0.2]), a_max=np.array([0.1, 1.0, 0.3])),
    dict(a_min=0.5, a_max=-0.5), dict(a_min=np.float64(0), a_max=1),
    dict(a_min=-0.5, min=1.0), dict(a_min=-0.5), dict(a_max=0.5),
    dict(a_min=-0.5, a_max=0.5, min=0.0)], ids=str)
def test_clip_values(kwargs):
  for x in [sample(3, (-1.0, 1.0)), sample(3, (-1.0, 1.0)).astype(np.float32),
            np.array([-3, 0, 7])]:
    check_traced(lambda x: np.clip(x, **kwargs), lambda x: dnp.clip(x, **kwargs), x)
    check_untraced(lambda x: np.clip(x, **kwargs), lambda x: dnp.clip(x, **kwargs), x)


def test_clip_integer_bounds_out_of_range_are_dropped_as_in_numpy():
  x = np.array([1, 2, 3], np.int8)
  check_traced(lambda x: np.clip(x, 0, 300), lambda x: dnp.clip(x, 0, 300), x)
  check_traced(lambda x: np.clip(x, -1000, 2), lambda x: dnp.clip(x, -1000, 2), x)


def test_clip_gradients():
  x = np.array([-1.0, 0.25, 2.0])
  assert_same(dfdx.vector_grad(lambda x: dnp.clip(x, 0.0, 1.0))(x), np.array([0.0, 1.0, 0.0]))
  assert_same(dfdx.vector_grad(lambda x: dnp.clip(x, None, 1.0))(x), np.array([1.0, 1.0, 0.0]))
  assert_same(dfdx.vector_grad(lambda x: dnp.clip(x, max=1.0))(x), np.array([1.0, 1.0, 0.0]))
  # traced bounds receive the derivative where they bind
  glo, ghi = dfdx.grad(lambda lo, hi: dnp.sum(dnp.clip(x, lo, hi)), argnums=(0, 1))(0.0, 1.0)
  assert_same(glo, np.float64(1.0))
  assert_same(ghi, np.float64(1.0))
  check_grads(lambda x, lo, hi: dnp.clip(x, lo, hi),
              (x, np.array([-2.0, 0.0, 0.5]), np.array([0.0, 1.0, 1.5])), order=2)
  # at a bound the derivative is split equally between the value and the bound
  assert_same(dfdx.vector_grad(lambda x: dnp.clip(x, 0.0, 1.0))(np.array([0.0, 1.0])),
              np.array([0.5, 0.5]))


def test_clip_through_the_method_and_numpy():
  x = sample(3)
  check_traced(lambda x: np.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), x)
  check_traced(lambda x: x.clip(-0.5, 0.5), lambda x: x.clip(-0.5, 0.5), x)
  check_traced(lambda x: x.clip(max=0.5), lambda x: x.clip(max=0.5), x)


# ---- divmod, bitwise operations ------------------------------------------------------------


def test_divmod():
  for x, y in [(sample((2, 3), seed=1), sample(3, POS, seed=2)), (np.array([7, -7, 5]), 3),
               (sample(3, dtype=np.float32), 0.75), (-5.5, sample(3, POS))]:
    check_traced(np.divmod, dnp.divmod, x, y)
    check_untraced(np.divmod, dnp.divmod, x, y)
  q, r = dfdx.jacobian(lambda x: dnp.divmod(x, 0.75))(np.array([1.0, 2.0]))
  assert_same(q, np.zeros((2, 2)))
  assert_same(r, np.eye(2))


@pytest.mark.parametrize("name", ["bitwise_and", "bitwise_or", "bitwise_xor", "left_shift",
                                  "right_shift"])
def test_bitwise_operations(name):
  a, b = np.array([True, False, True, False]), np.array([True, True, False, False])
  i, j = np.array([[5, -3, 12], [0, 7, -8]]), np.array([1, 2, 3])
  if "shift" not in name:
    check_traced(_np(name), getattr(dnp, name), a, b)
    check_traced(_np(name), getattr(dnp, name), a, True)
  check_traced(_np(name), getattr(dnp, name), i, j)
  check_traced(_np(name), getattr(dnp, name), i.astype(np.uint8), 2)
  check_traced(_np(name), getattr(dnp, name), i.astype(np.int16), j.astype(np.int64))
  check_untraced(_np(name), getattr(dnp, name), np.array([3, 5]), 6)
  with pytest.raises(TypeError, match="not supported for the input types"):
    dfdx.jit(lambda x: getattr(dnp, name)(x, 1))(np.ones((2, 3)))  # (NumPy's error)
  # zero derivatives where an integer mask meets a float
  mask = lambda x: x * getattr(dnp, name)(dnp.arange(3) + 0 * x.astype(int), 1)  # noqa: E731
  np.testing.assert_array_equal(dfdx.jacobian(mask)(np.ones(3)),
                                np.diag(getattr(np, name)(np.arange(3), 1)).astype(float))


@pytest.mark.parametrize("name", ["gcd", "lcm"])
def test_gcd_and_lcm(name):
  i, j = np.array([[12, -18, 0], [7, 30, -8]]), np.array([8, 27, 0])
  check_traced(_np(name), getattr(dnp, name), i, j)
  check_traced(_np(name), getattr(dnp, name), i.astype(np.uint8), 6)
  check_traced(_np(name), getattr(dnp, name), i.astype(np.int16), j.astype(np.int32))
  check_untraced(_np(name), getattr(dnp, name), np.array([3, 5]), 6)
  with pytest.raises(TypeError, match="did not contain a loop"):  # (NumPy's error)
    dfdx.jit(lambda x: getattr(dnp, name)(x, 2))(np.ones((2, 3)))
  mask = lambda x: x * getattr(dnp, name)(dnp.arange(3) + 0 * x.astype(int), 2)  # noqa: E731
  np.testing.assert_array_equal(dfdx.jacobian(mask)(np.ones(3)),
                                np.diag(getattr(np, name)(np.arange(3), 2)).astype(float))


def test_bitwise_count():
  i = np.array([[5, -3, 255], [0, 7, -128]])
  for dtype in (np.int64, np.int8, np.uint16, np.bool_):
    check_traced(np.bitwise_count, dnp.bitwise_count, i.astype(dtype))
  check_untraced(np.bitwise_count, dnp.bitwise_count, np.array([3, 5]))
  with pytest.raises(TypeError, match="not supported for the input types"):
    dfdx.jit(dnp.bitwise_count)(np.ones(3))


def test_invert():
  for name in ["invert", "bitwise_not"]:
    check_traced(_np(name), getattr(dnp, name), np.array([True, False]))
    check_traced(_np(name), getattr(dnp, name), np.array([3, -5, 0]))
    check_traced(_np(name), getattr(dnp, name), np.array([3, 5, 0], np.uint8))
    check_untraced(_np(name), getattr(dnp, name), np.array([3, 5]))
    with pytest.raises(TypeError, match="not supported for the input types"):
      dfdx.vmap(getattr(dnp, name))(np.ones((2, 3)))


def test_bitwise_operators_of_traced_integers():
  x = np.array([5, 3, -2])
  f = lambda x: (~x & 6) | (x >> 1) ^ (1 << x % 3)  # noqa: E731
  for transform in (dfdx.jit, dfdx.vmap):
    np.testing.assert_array_equal(transform(f)(x[None] if transform is dfdx.vmap else x),
                                  f(x)[None] if transform is dfdx.vmap else f(x))


# ---- isclose -------------------------------------------------------------------------------


def test_isclose_matches_numpy():
  a = np.array([1.0, np.inf, -np.inf, np.nan, 1.0, 1.0, 1e-9, 1.0])
  b = np.array([np.inf, np.inf, np.inf, np.nan, 1 + 1e-9, 1.0, 0.0, 1.1])
  for kwargs in [{}, dict(equal_nan=True), dict(rtol=0.2), dict(atol=1e-12, rtol=0.0)]:
    check_traced(lambda a, b: np.isclose(a, b, **kwargs),
                 lambda a, b: dnp.isclose(a, b, **kwargs), a, b)
  ints = np.array([1, 2, np.iinfo(np.int64).min])
  check_traced(lambda a: np.isclose(a, 1), lambda a: dnp.isclose(a, 1), ints)
  check_traced(lambda a: np.isclose(1, a), lambda a: dnp.isclose(1, a), ints)
  check_traced(lambda a: np.isclose(a, a), lambda a: dnp.isclose(a, a), ints)
  f32 = np.array([1.00001, 1.0], np.float32)
  check_traced(lambda a: np.isclose(a, 1.0), lambda a: dnp.isclose(a, 1.0), f32)


# ---- NumPy's keyword arguments -------------------------------------------------------------


def test_dtype_keyword_computes_in_that_dtype():
  x = np.array([100, 100, 27], np.int8)
  check_traced(lambda x: np.add(x, x, dtype=np.int64), lambda x: dnp.add(x, x, dtype=np.int64), x)
  check_traced(lambda x: np.add(x, 2.5, dtype=np.float16),
               lambda x: dnp.add(x, 2.5, dtype=np.float16), x.astype(np.float32))
  f = sample(3)
  for name, dtype in [("sin", np.float32), ("sin", np.int64), ("add", np.int32),
                      ("multiply", np.float32), ("less", bool), ("less", np.float64)]:
    args = (f,) if name == "sin" else (f, 0.25)
    check_traced(lambda *a: _np(name)(*a, dtype=dtype),
                 lambda *a: getattr(dnp, name)(*a, dtype=dtype), *args)
  check_traced(lambda x: np.add(x, 1, dtype=np.int32, casting="unsafe"),
               lambda x: dnp.add(x, 1, dtype=np.int32, casting="unsafe"), f)
  check_grads(lambda x: dnp.multiply(x, 3.0, dtype=np.float64), (f,), order=2)


def test_out_and_where_keywords_are_refused_on_traced_values():
  x = sample(3)
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.grad(lambda x: dnp.sum(dnp.sin(x, out=np.empty(3))))(x)
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.vmap(lambda x: dnp.add(x, 1, out=np.empty(3)))(x[None])
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.vmap(lambda x: dnp.clip(x, 0, 1, out=np.empty(3)))(x[None])
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.vmap(lambda x: dnp.round(x, 0, np.empty(3)))(x[None])
  with pytest.raises(TypeError, match="where= is not supported"):
    dfdx.vmap(lambda x: dnp.add(x, 1, where=x > 0))(x[None])
  with pytest.raises(TypeError, match="unsupported keyword"):
    dfdx.vmap(lambda x: dnp.add(x, 1, signature="dd->d"))(x[None])
  out = np.empty(3)
  assert dnp.sin(x, out=out) is out  # NumPy's out= without tracing


def test_round_decimals():
  x = np.array([1.26, -2.35, 15.5])
  for decimals in [0, 1, -1]:
    check_traced(lambda x: np.round(x, decimals), lambda x: dnp.round(x, decimals), x)
    check_traced(lambda x: np.around(x, decimals), lambda x: dnp.around(x, decimals), x)
  check_traced(lambda x: np.round(x, -1), lambda x: dnp.round(x, -1), np.array([16, 24, -35]))


def test_complex_traced_values_have_numpy_results():
  z = np.array([[1 + 2j, -0.5j, 3.0]])
  check_traced(np.conj, dnp.conj, z)
  check_traced(np.real, dnp.real, z)
  check_traced(np.imag, dnp.imag, z)
  check_traced(np.abs, dnp.abs, z)
  check_traced(np.angle, dnp.angle, z)


def test_lists_are_arrays():
  x = sample(3)
  check_traced(lambda x: np.add(x, [1.0, 2.0, 3.0]), lambda x: dnp.add(x, [1.0, 2.0, 3.0]), x)
  check_traced(lambda x: np.add([1, 2, 3], x), lambda x: dnp.add([1, 2, 3], x), x)
  check_untraced(np.sin, dnp.sin, [0.5, 1.0])
  check_untraced(np.add, dnp.add, [1, 2], 3)
  check_untraced(np.add, dnp.add, 1, 2)
  check_untraced(np.add, dnp.add, 1.5, np.float32(2))


def test_arctan2_derivatives_with_an_integer_operand():
  # (the rule squared the integer operand in its own dtype: 94 ** 2 overflows int8)
  for y in (np.int8(94), np.int32(50000), np.array([94, -120], np.int8)):
    x = np.array([0.5, -2.0])
    want = -y / (y.astype(float) ** 2 + x ** 2)
    np.testing.assert_allclose(dfdx.vector_grad(lambda x: dnp.arctan2(y, x))(x), want,
                               rtol=1e-12)
    np.testing.assert_allclose(dfdx.vector_grad(lambda x: dnp.arctan2(x, y))(x),
                               y / (y.astype(float) ** 2 + x ** 2), rtol=1e-12)
    check_grads(lambda x: dnp.arctan2(y, x), (x,), order=2)


def test_power_with_an_infinite_exponent_has_the_derivative_zero_where_it_is_flat():
  # x ** inf is 0 for |x| < 1: its derivative there is 0, not inf * 0 = nan (warning-free)
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for transform in (lambda g: g, dfdx.jit):
      assert transform(dfdx.grad(lambda t: dnp.power(t, np.inf)))(0.8) == 0.0
      assert transform(dfdx.grad(lambda t: dnp.float_power(t, -np.inf)))(1.5) == 0.0
  check_grads(lambda t: dnp.power(t, 2.5), (np.array([0.8, 2.0]),), order=2)
