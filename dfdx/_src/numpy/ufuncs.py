"""Elementwise functions of `dfdx.numpy`: NumPy's ufuncs, differentiable.

A call with no traced operand goes straight to NumPy (with all of NumPy's keyword arguments).
A traced call first casts its operands to the dtypes of the loop NumPy would run (NumPy 2
promotion, Python scalars weak, `dtype=` and `casting=` honoured, NumPy's own error where NumPy
has no loop), then composes the primitives of `dfdx._src.ops.elementwise`; its result has
NumPy's dtype. This module holds no derivative rules.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from dfdx._src import core
from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import arg, contains_tracer, dtype as dtype_of, is_weak, \
    numpy_result_dtype, python_kind, reject_out, result_type, standin, strong, weakly_typed

__all__ = []

_ACCEPTED = ("order", "subok")  # NumPy keywords that do not change a result's values
_loop_cache: dict = {}


def _check_kwargs(name, kwargs):
  """`dtype` and `casting` from NumPy's ufunc keywords; the others are checked: those that
  need in-place writes (out, where) are refused on traced values."""
  reject_out(name, kwargs.pop("out", None))
  if kwargs.pop("where", True) is not True:
    raise TypeError(f"dfdx.numpy.{name}: where= is not supported on traced values; use "
                    "dfdx.numpy.where(mask, result, other) instead.")
  for key in _ACCEPTED:
    kwargs.pop(key, None)
  dtype, casting = kwargs.pop("dtype", None), kwargs.pop("casting", None)
  if kwargs:
    raise TypeError(f"dfdx.numpy.{name}: unsupported keyword arguments {sorted(kwargs)} on "
                    "traced values.")
  return None if dtype is None else np.dtype(dtype), casting


def _operand_type(x):
  """What `ufunc.resolve_dtypes` takes: a dtype, or a Python scalar type (weak, NEP 50)."""
  t = type(x)
  if t is bool:
    return np.dtype(bool)
  if t in (int, float, complex):
    return t
  if weakly_typed(x):  # (a staged value standing for a Python scalar)
    return type(standin(x)) if x.dtype.kind != "b" else np.dtype(bool)
  return dtype_of(x)


def _loop(np_fun, args, dtype, casting):
  """(input dtypes, output dtype) of the loop NumPy runs for `np_fun(*args, dtype=dtype,
  casting=casting)`; an input dtype of None means "leave the operand as it is". Raises NumPy's
  own error where NumPy has no loop (positive of bool, sin with dtype=int)."""
  types = tuple(_operand_type(a) for a in args)
  key = (np_fun, types, dtype, casting)
  try:
    return _loop_cache[key]
  except KeyError:
    pass
  kwargs = {k: v for k, v in (("dtype", dtype), ("casting", casting)) if v is not None}
  with np.errstate(all="ignore"):
    out_dtype = np.asarray(np_fun(*[standin(a) for a in args], **kwargs)).dtype
  if isinstance(np_fun, np.ufunc) and np_fun.nout == 1:
    extra = {} if dtype is None else {"signature": (None,) * np_fun.nin + (dtype,)}
    in_dtypes = np_fun.resolve_dtypes(types + (None,), casting=casting or "same_kind",
                                      **extra)[:-1]
  else:
    in_dtypes = (out_dtype if out_dtype.kind in "fc" else None,) * len(args)
  result = _loop_cache[key] = (in_dtypes, out_dtype)
  return result


def _apply(name, np_fun, op, args, kwargs):
  """`op(*args)` as NumPy computes `np_fun(*args, **kwargs)`: the operands are cast to the
  dtypes of NumPy's loop first (ints to float64 for sin, uint8 to float16, both operands to
  int64 for `add(int8, int8, dtype=int64)`), so that composite ops compute in the dtype NumPy
  does, and the result has NumPy's dtype."""
  dtype, casting = _check_kwargs(name, kwargs) if kwargs else (None, None)
  in_dtypes, out_dtype = _loop(np_fun, args, dtype, casting)
  # (a Python scalar stays one, to promote weakly, of the kind of NumPy's loop: copysign(True,
  # x) computes in floats)
  args = [a if d is None or dtype_of(a) == d else
          (a if dtype_of(a).kind == d.kind else python_kind(a, d.kind)) if weakly_typed(a)
          else astype(a, d) for a, d in zip(args, in_dtypes)]
  out = op(*args)
  return out if dtype_of(out) == out_dtype else shape_ops.convert_element_type(out, out_dtype)


def _is_the_ufunc(np_fun, op):
  """Whether `op` binds a primitive whose impl is `np_fun` itself: then the primitive already
  computes in NumPy's dtypes and no cast is needed (the fast path of traced calls)."""
  prim = getattr(ew, getattr(op, "__name__", "") + "_p", None)
  return prim is not None and getattr(prim.impl, "ufunc", prim.impl) is np_fun


# Operand types that are NumPy's as they are (no tracer, Variable or sequence inside): a call
# on them goes to NumPy at once (dfdx.numpy on plain arrays: 0.6-1.5 us less a call).
_PLAIN = frozenset((np.ndarray, float, int, bool, complex, np.float64, np.float32, np.float16,
                    np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16,
                    np.uint8, np.bool_, np.complex128, np.complex64))


def _traced_keywords(kwargs):
  """Whether a keyword (where=, out=) holds a traced value: the call is then dfdx's, whose
  checks say what to do (NumPy's own would dispatch back here)."""
  return any(isinstance(v, Tracer) for v in kwargs.values())


def _unary(name, np_fun, op):
  direct = _is_the_ufunc(np_fun, op)

  def fn(x, /, **kwargs):
    plain = not kwargs or not _traced_keywords(kwargs)
    if type(x) in _PLAIN and plain:
      return np_fun(x, **kwargs)
    if not isinstance(x, Tracer):
      x = arg(x)
      if not isinstance(x, Tracer) and plain:
        return np_fun(x, **kwargs)
    if direct and not kwargs:
      return op(x)
    return _apply(name, np_fun, op, [x], kwargs)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  __all__.append(name)
  return fn


def _binary(name, np_fun, op):
  direct = _is_the_ufunc(np_fun, op)

  def fn(x1, x2, /, **kwargs):
    plain = not kwargs or not _traced_keywords(kwargs)
    if type(x1) in _PLAIN and type(x2) in _PLAIN and plain:
      return np_fun(x1, x2, **kwargs)
    if not isinstance(x1, Tracer) and not isinstance(x2, Tracer):
      x1, x2 = arg(x1), arg(x2)
      if not isinstance(x1, Tracer) and not isinstance(x2, Tracer) and plain:
        return np_fun(x1, x2, **kwargs)
    if direct and not kwargs:
      return op(arg(x1), arg(x2))
    return _apply(name, np_fun, op, [arg(x1), arg(x2)], kwargs)
  fn.direct_op = op if direct else None  # (the operators of traced values call it at once)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  __all__.append(name)
  give_ufunc_methods(fn, np_fun)
  return fn


def give_ufunc_methods(fn, np_fun):
  """`fn.reduce`, `.accumulate`, `.outer`, `.reduceat` and `.at`, as NumPy's ufuncs have
  (`dfdx._src.numpy.ufunc_methods`, imported on first use: it builds on this module)."""
  def method(name):
    def call(*args, **kwargs):
      from dfdx._src.numpy import ufunc_methods
      return ufunc_methods.call(fn, np_fun, name, args, kwargs)
    call.__name__ = call.__qualname__ = f"{fn.__name__}.{name}"
    call.__doc__ = f"Differentiable `numpy.{np_fun.__name__}.{name}`."
    return call
  for name in ("reduce", "accumulate", "outer", "reduceat", "at"):
    setattr(fn, name, method(name))


# ---- arithmetic -----------------------------------------------------------------------------
add = _binary("add", np.add, ew.add)
subtract = _binary("subtract", np.subtract, ew.sub)
multiply = _binary("multiply", np.multiply, ew.mul)
divide = _binary("divide", np.divide, ew.div)
true_divide = _binary("true_divide", np.true_divide, ew.div)
floor_divide = _binary("floor_divide", np.floor_divide, ew.floor_divide)
remainder = _binary("remainder", np.remainder, ew.rem)
mod = _binary("mod", np.mod, ew.rem)
negative = _unary("negative", np.negative, ew.neg)


def divmod(x1, x2, /, **kwargs):  # noqa: A001  (the NumPy name)
  """Differentiable `numpy.divmod`: (floor_divide(x1, x2), remainder(x1, x2))."""
  if not (isinstance(x1, Tracer) or isinstance(x2, Tracer) or contains_tracer(x1)
          or contains_tracer(x2)):
    return np.divmod(x1, x2, **kwargs)
  return floor_divide(x1, x2, **kwargs), remainder(x1, x2, **kwargs)


__all__.append("divmod")
positive = _unary("positive", np.positive,  # (+s of a Python number stays one)
                  lambda x: x if core.context.weak_results else strong(x))


def _integer_exponent(x2):
  """A concrete scalar exponent with an integer value, as an int (else None)."""
  if type(x2) is int and -(1 << 31) <= x2 <= 1 << 31:  # the common case, as below
    return x2
  if isinstance(x2, Tracer) or np.ndim(x2) != 0 or isinstance(x2, (bool, np.bool_)):
    return None
  y = x2.item() if isinstance(x2, (np.ndarray, np.generic)) else x2
  if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y) \
      and float(y).is_integer() and builtins.abs(y) <= 1 << 31:
    return int(y)
  return None


def _power(x1, x2):
  # A concrete integer exponent (2, 2.0, np.int64(3)) of a float base uses integer_pow, whose
  # derivatives are exact at x1 = 0 (x ** 0 has derivative 0, x ** 2 has 2x); pow's rule would
  # give 0 * 0 ** -1 = nan there.
  y = _integer_exponent(x2)
  if y is not None and dtype_of(x1).kind in "fc":  # (x ** 1 is x: a NumPy value all the same)
    return ew.integer_pow(x1, y) if y != 1 or core.context.weak_results else strong(x1)
  return ew.pow(x1, x2)


_power_general = _binary("power", np.power, _power)


def power(x1, x2, /, **kwargs):
  """Differentiable `numpy.power`."""
  if type(x2) is int and isinstance(x1, Tracer) and not kwargs and x1.dtype.kind in "fc" \
          and -(1 << 31) <= x2 <= 1 << 31:
    # The common `x ** 2` of a traced float: NumPy keeps the base's dtype for a Python int.
    return ew.integer_pow(x1, x2)
  return _power_general(x1, x2, **kwargs)


give_ufunc_methods(power, np.power)
float_power = _binary("float_power", np.float_power, _power)
square = _unary("square", np.square, lambda x: ew.integer_pow(x, 2))


def _reciprocal(x):
  if dtype_of(x).kind in "iub":
    # NumPy's integer reciprocal truncates 1 / x toward zero: x for x = +-1, else 0.
    return ew.select(ew.eq(ew.abs(x), 1), x, np.zeros((), dtype_of(x)))
  return ew.div(np.ones((), dtype_of(x)), x)


reciprocal = _unary("reciprocal", np.reciprocal, _reciprocal)
sqrt = _unary("sqrt", np.sqrt, ew.sqrt)
cbrt = _unary("cbrt", np.cbrt, ew.cbrt)
absolute = _unary("absolute", np.absolute, ew.abs)
abs = _unary("abs", np.abs, ew.abs)  # noqa: A001  (the NumPy name)
fabs = _unary("fabs", np.fabs, ew.abs)
sign = _unary("sign", np.sign, ew.sign)

# ---- exponentials and logarithms ----------------------------------------------------------
exp = _unary("exp", np.exp, ew.exp)
exp2 = _unary("exp2", np.exp2, ew.exp2)
expm1 = _unary("expm1", np.expm1, ew.expm1)
log = _unary("log", np.log, ew.log)
log2 = _unary("log2", np.log2, ew.log2)
log10 = _unary("log10", np.log10, ew.log10)
log1p = _unary("log1p", np.log1p, ew.log1p)
logaddexp = _binary("logaddexp", np.logaddexp, ew.logaddexp)


def _logaddexp2(x1, x2):
  dtype = result_type(x1, x2)
  if dtype == np.float16:  # NumPy computes float16 in float32 too
    x1, x2 = (x if is_weak(x) else
              shape_ops.convert_element_type(x, np.float32) for x in (x1, x2))
  ln2 = math.log(2.0)  # a Python float, so that float32 stays float32
  out = ew.div(ew.logaddexp(ew.mul(x1, ln2), ew.mul(x2, ln2)), ln2)
  return shape_ops.convert_element_type(out, dtype)


logaddexp2 = _binary("logaddexp2", np.logaddexp2, _logaddexp2)

# ---- trigonometric and hyperbolic -----------------------------------------------------------
sin = _unary("sin", np.sin, ew.sin)
cos = _unary("cos", np.cos, ew.cos)
tan = _unary("tan", np.tan, ew.tan)
arcsin = _unary("arcsin", np.arcsin, ew.arcsin)
arccos = _unary("arccos", np.arccos, ew.arccos)
arctan = _unary("arctan", np.arctan, ew.arctan)
arctan2 = _binary("arctan2", np.arctan2, ew.arctan2)
sinh = _unary("sinh", np.sinh, ew.sinh)
cosh = _unary("cosh", np.cosh, ew.cosh)
tanh = _unary("tanh", np.tanh, ew.tanh)
arcsinh = _unary("arcsinh", np.arcsinh, ew.arcsinh)
arccosh = _unary("arccosh", np.arccosh, ew.arccosh)
arctanh = _unary("arctanh", np.arctanh, ew.arctanh)
hypot = _binary("hypot", np.hypot, ew.hypot)
deg2rad = _unary("deg2rad", np.deg2rad, lambda x: ew.mul(x, np.pi / 180))
radians = _unary("radians", np.radians, lambda x: ew.mul(x, np.pi / 180))
rad2deg = _unary("rad2deg", np.rad2deg, lambda x: ew.mul(x, 180 / np.pi))
degrees = _unary("degrees", np.degrees, lambda x: ew.mul(x, 180 / np.pi))

# ---- rounding (zero derivatives) ----------------------------------------------------------
floor = _unary("floor", np.floor, ew.floor)
ceil = _unary("ceil", np.ceil, ew.ceil)
trunc = _unary("trunc", np.trunc, ew.trunc)
fix = _unary("fix", np.fix, ew.trunc)
rint = _unary("rint", np.rint, ew.round)


def round(a, decimals=0, out=None):  # noqa: A001  (the NumPy name)
  """Differentiable `numpy.round` (its derivative is zero)."""
  if not isinstance(a, Tracer):
    a = arg(a)
    if not isinstance(a, Tracer):
      return np.round(a, decimals, out)
  reject_out("round", out)
  numpy_result_dtype(np.round, a)  # NumPy's error for dtypes it cannot round
  return ew.round(a, decimals)


around = round
__all__ += ["round", "around"]

# ---- maximum and minimum ----------------------------------------------------------------
maximum = _binary("maximum", np.maximum, ew.maximum)
minimum = _binary("minimum", np.minimum, ew.minimum)
fmax = _binary("fmax", np.fmax, ew.fmax)
fmin = _binary("fmin", np.fmin, ew.fmin)

_NO_VALUE = object()


def _given(**kwargs):
  return {k: v for k, v in kwargs.items() if v is not _NO_VALUE}


def clip(a, a_min=_NO_VALUE, a_max=_NO_VALUE, out=None, *,
         min=_NO_VALUE, max=_NO_VALUE, **kwargs):  # noqa: A002  (NumPy's names)
  """Differentiable `numpy.clip`: minimum(maximum(a, a_min), a_max), with None for no bound.
  At a bound the derivative is split equally between `a` and the bound, as for maximum and
  minimum."""
  bounds = _given(a_min=a_min, a_max=a_max, min=min, max=max)
  if not (isinstance(a, Tracer) or contains_tracer(a)
          or any(isinstance(b, Tracer) or contains_tracer(b) for b in bounds.values())):
    return np.clip(a, out=out, **bounds, **kwargs)
  reject_out("clip", out)
  if a_min is _NO_VALUE and a_max is _NO_VALUE:
    lo, hi = (None if min is _NO_VALUE else min), (None if max is _NO_VALUE else max)
  elif a_min is _NO_VALUE or a_max is _NO_VALUE:
    missing = "a_min" if a_min is _NO_VALUE else "a_max"
    raise TypeError(f"clip() missing 1 required positional argument: '{missing}'")
  elif min is not _NO_VALUE or max is not _NO_VALUE:
    raise ValueError("Passing `min` or `max` keyword argument when `a_min` and `a_max` are "
                     "provided is forbidden.")
  else:
    lo, hi = a_min, a_max
  a = arg(a)  # (NumPy makes `a` an array: np.clip(0.5, x32, None) is float64; bounds are weak)
  a = strong(a) if isinstance(a, Tracer) else np.asarray(a) if is_weak(a) else a
  if dtype_of(a).kind in "iu":  # NumPy drops Python-int bounds beyond the integer type (NEP 50)
    info = np.iinfo(dtype_of(a))
    lo = None if type(lo) is int and lo <= info.min else lo
    hi = None if type(hi) is int and hi >= info.max else hi
  if lo is None and hi is None:
    return positive(a, **kwargs)
  if lo is None:
    return minimum(a, arg(hi), **kwargs)
  if hi is None:
    return maximum(a, arg(lo), **kwargs)
  return minimum(maximum(a, arg(lo), **kwargs), arg(hi), **kwargs)


__all__.append("clip")

# ---- comparisons, logic, predicates (boolean results) -----------------------------------
equal = _binary("equal", np.equal, ew.eq)
not_equal = _binary("not_equal", np.not_equal, ew.ne)
less = _binary("less", np.less, ew.lt)
less_equal = _binary("less_equal", np.less_equal, ew.le)
greater = _binary("greater", np.greater, ew.gt)
greater_equal = _binary("greater_equal", np.greater_equal, ew.ge)
logical_and = _binary("logical_and", np.logical_and, ew.logical_and_p.bind)
logical_or = _binary("logical_or", np.logical_or, ew.logical_or_p.bind)
logical_xor = _binary("logical_xor", np.logical_xor, ew.logical_xor_p.bind)
logical_not = _unary("logical_not", np.logical_not, ew.logical_not_p.bind)
isnan = _unary("isnan", np.isnan, ew.isnan_p.bind)
isfinite = _unary("isfinite", np.isfinite, ew.isfinite_p.bind)
isinf = _unary("isinf", np.isinf, ew.isinf_p.bind)


# Bitwise operations (also the &, |, ^, ~, <<, >> operators of traced values): integers and
# booleans, as NumPy (its TypeError for floats); zero derivatives.
bitwise_and = _binary("bitwise_and", np.bitwise_and, ew.bitwise_and_p.bind)
bitwise_or = _binary("bitwise_or", np.bitwise_or, ew.bitwise_or_p.bind)
bitwise_xor = _binary("bitwise_xor", np.bitwise_xor, ew.bitwise_xor_p.bind)
invert = _unary("invert", np.invert, ew.invert_p.bind)
bitwise_not = _unary("bitwise_not", np.bitwise_not, ew.invert_p.bind)
left_shift = _binary("left_shift", np.left_shift, ew.left_shift_p.bind)
right_shift = _binary("right_shift", np.right_shift, ew.right_shift_p.bind)
bitwise_left_shift, bitwise_right_shift = left_shift, right_shift
__all__ += ["bitwise_left_shift", "bitwise_right_shift"]
bitwise_count = _unary("bitwise_count", np.bitwise_count, ew.bitwise_count_p.bind)
gcd = _binary("gcd", np.gcd, ew.gcd_p.bind)
lcm = _binary("lcm", np.lcm, ew.lcm_p.bind)


def where(condition, x=_NO_VALUE, y=_NO_VALUE, /):
  """Differentiable `numpy.where(condition, x, y)`: the derivative flows to the selected branch
  only. With only `condition`, the indices of its nonzero entries (numpy.nonzero), which needs
  a concrete condition (under vmap it raises ConcretizationError)."""
  if x is _NO_VALUE and y is _NO_VALUE:
    condition = arg(condition)
    if isinstance(condition, Tracer):
      condition = condition.concrete_value("where(condition) (numpy.nonzero)")
    return np.where(condition)
  if x is _NO_VALUE or y is _NO_VALUE:
    raise ValueError("either both or neither of x and y should be given")
  if not (isinstance(condition, Tracer) or isinstance(x, Tracer) or isinstance(y, Tracer)):
    condition, x, y = arg(condition), arg(x), arg(y)
    if not (isinstance(condition, Tracer) or isinstance(x, Tracer) or isinstance(y, Tracer)):
      return np.where(condition, x, y)
  condition, x, y = arg(condition), arg(x), arg(y)
  if dtype_of(condition) != np.bool_:
    condition = ew.ne(condition, 0)
  return ew.select(condition, x, y)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
  """`numpy.isclose` on traced values (a boolean result, zero derivative), with NumPy's
  formula: |a - b| <= atol + rtol |b| where b is finite, or a == b."""
  if not any(isinstance(v, Tracer) or contains_tracer(v) for v in (a, b, rtol, atol)):
    return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
  x, y = arg(a), arg(b)
  if type(y) is int:
    y = float(y)
  elif not is_weak(y):
    y = astype(y, result_type(y, 1.0))  # inexact, so that abs(INT_MIN) is not negative
  with np.errstate(invalid="ignore"):
    close = less_equal(absolute(subtract(x, y)), add(atol, multiply(rtol, absolute(y))))
    result = logical_or(logical_and(close, isfinite(y)), equal(x, y))
    if equal_nan:
      result = logical_or(result, logical_and(isnan(x), isnan(y)))
  return result


def astype(x, dtype):
  """`x` cast to `dtype` (a traced value stays traced; the derivative passes through casts
  between floating types)."""
  if isinstance(x, Tracer):
    return shape_ops.convert_element_type(x, dtype)
  return np.asarray(x).astype(dtype)


__all__ += ["where", "isclose"]


# ---- complex parts ---------------------------------------------------------------------------


def _part(name, np_fun, op):
  def fn(val, /):
    if not isinstance(val, Tracer):
      val = arg(val)
      if not isinstance(val, Tracer):
        return np_fun(val)
    return op(val)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  __all__.append(name)
  return fn


def _conj(x):
  if dtype_of(x).kind == "c":
    return ew.conj(x)
  return shape_ops.convert_element_type(x, np.conjugate(np.zeros(0, dtype_of(x))).dtype)


conj = _unary("conj", np.conj, _conj)
conjugate = _unary("conjugate", np.conjugate, _conj)
real = _part("real", np.real, ew.real)
imag = _part("imag", np.imag, ew.imag)
