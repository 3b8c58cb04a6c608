"""Elementwise functions of `dfdx.numpy`: NumPy's ufuncs, differentiable.

A call with no traced operand goes straight to NumPy (with all of NumPy's keyword arguments).
A traced call binds the primitive of `dfdx._src.ops.elementwise`, which broadcasts and
promotes dtypes exactly as NumPy does. This module holds no derivative rules.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import arg, dtype as dtype_of, reject_out

__all__ = []


def _finish(name, out, kwargs):
  """Apply the keyword arguments NumPy's ufuncs accept that make sense without `out`."""
  dtype = kwargs.pop("dtype", None)
  reject_out(name, kwargs.pop("out", None))
  where = kwargs.pop("where", True)
  if where is not True:
    raise TypeError(f"dfdx.numpy.{name}: where= is not supported on traced values; use "
                    "dfdx.numpy.where(mask, result, other) instead.")
  if kwargs:
    raise TypeError(f"dfdx.numpy.{name}: unsupported keyword arguments {sorted(kwargs)} on "
                    "traced values.")
  return out if dtype is None else shape_ops.convert_element_type(out, dtype)


def _unary(name, np_fun, op):
  def fn(x, /, **kwargs):
    if not isinstance(x, Tracer):
      x = arg(x)
      if not isinstance(x, Tracer):
        return np_fun(x, **kwargs)
    out = op(x)
    return _finish(name, out, kwargs) if kwargs else out
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  __all__.append(name)
  return fn


def _binary(name, np_fun, op):
  def fn(x1, x2, /, **kwargs):
    if not isinstance(x1, Tracer) and not isinstance(x2, Tracer):
      x1, x2 = arg(x1), arg(x2)
      if not isinstance(x1, Tracer) and not isinstance(x2, Tracer):
        return np_fun(x1, x2, **kwargs)
    out = op(arg(x1), arg(x2))
    return _finish(name, out, kwargs) if kwargs else out
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  __all__.append(name)
  return fn


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
positive = _unary("positive", np.positive, lambda x: x)


def _power(x1, x2):
  if isinstance(x2, (int, np.integer)) and not isinstance(x2, (bool, np.bool_)):
    return ew.integer_pow(x1, int(x2))
  return ew.pow(x1, x2)


power = _binary("power", np.power, _power)


def _float_power(x1, x2):
  dtype = np.result_type(dtype_of(x1), dtype_of(x2), np.float64)
  return ew.pow(shape_ops.convert_element_type(x1, dtype), x2)


float_power = _binary("float_power", np.float_power, _float_power)
square = _unary("square", np.square, lambda x: ew.integer_pow(x, 2))


def _reciprocal(x):
  if dtype_of(x).kind in "iub":
    return ew.floor_divide(1, x)  # NumPy's integer reciprocal
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
  ln2 = np.log(2.0)
  return ew.div(ew.logaddexp(ew.mul(x1, ln2), ew.mul(x2, ln2)), ln2)


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
  return ew.round(a, decimals)


around = round
__all__ += ["round", "around"]

# ---- maximum and minimum ----------------------------------------------------------------
maximum = _binary("maximum", np.maximum, ew.maximum)
minimum = _binary("minimum", np.minimum, ew.minimum)
fmax = _binary("fmax", np.fmax, ew.fmax)
fmin = _binary("fmin", np.fmin, ew.fmin)

_NO_VALUE = object()


def clip(a, a_min=_NO_VALUE, a_max=_NO_VALUE, out=None, *, min=_NO_VALUE, max=_NO_VALUE):  # noqa: A002
  """Differentiable `numpy.clip`: minimum(maximum(a, a_min), a_max). At a bound the
  derivative is split equally between `a` and the bound, as for maximum and minimum."""
  lo = min if a_min is _NO_VALUE else a_min
  hi = max if a_max is _NO_VALUE else a_max
  lo = None if lo is _NO_VALUE else lo
  hi = None if hi is _NO_VALUE else hi
  if not (isinstance(a, Tracer) or isinstance(lo, Tracer) or isinstance(hi, Tracer)):
    return np.clip(a, lo, hi, out=out)
  reject_out("clip", out)
  out = arg(a)
  if lo is not None:
    out = ew.maximum(out, arg(lo))
  if hi is not None:
    out = ew.minimum(out, arg(hi))
  return out


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


def where(condition, x=_NO_VALUE, y=_NO_VALUE, /):
  """Differentiable `numpy.where(condition, x, y)`. With only `condition`, the indices of its
  nonzero entries (which must then be concrete), like numpy.nonzero."""
  if x is _NO_VALUE and y is _NO_VALUE:
    from dfdx._src.numpy.indexing import nonzero
    return nonzero(condition)
  if x is _NO_VALUE or y is _NO_VALUE:
    raise ValueError("either both or neither of x and y should be given")
  if not (isinstance(condition, Tracer) or isinstance(x, Tracer) or isinstance(y, Tracer)):
    condition, x, y = arg(condition), arg(x), arg(y)
    if not (isinstance(condition, Tracer) or isinstance(x, Tracer) or isinstance(y, Tracer)):
      return np.where(condition, x, y)
  return ew.select(arg(condition), arg(x), arg(y))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
  """Differentiable `numpy.isclose` (boolean result)."""
  if not isinstance(a, Tracer) and not isinstance(b, Tracer):
    return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
  a, b = arg(a), arg(b)
  close = ew.le(ew.abs(ew.sub(a, b)), ew.add(atol, ew.mul(rtol, ew.abs(b))))
  both_inf = ew.logical_and_p.bind(ew.eq(a, b), ew.isinf_p.bind(a))
  close = ew.logical_or_p.bind(close, both_inf)
  if equal_nan:
    close = ew.logical_or_p.bind(close, ew.logical_and_p.bind(ew.isnan_p.bind(a),
                                                              ew.isnan_p.bind(b)))
  return close


__all__ += ["where", "isclose"]


# ---- complex parts (dfdx differentiates real arrays: these are the identities on them) ----


def _real_only(name, np_fun, op):
  def fn(val, /):
    if not isinstance(val, Tracer):
      return np_fun(val)
    if dtype_of(val).kind == "c":
      raise TypeError(f"dfdx.numpy.{name}: complex traced values are not supported yet.")
    return op(val)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"`numpy.{name}` of a real traced value."
  __all__.append(name)
  return fn


conj = _real_only("conj", np.conj, lambda x: x)
conjugate = _real_only("conjugate", np.conjugate, lambda x: x)
real = _real_only("real", np.real, lambda x: x)
imag = _real_only("imag", np.imag, lambda x: np.zeros(x.shape, x.dtype))
