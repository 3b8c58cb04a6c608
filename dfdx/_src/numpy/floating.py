"""Floating-point functions of `dfdx.numpy`: copysign, signbit, heaviside, fmod, modf, frexp,
ldexp, spacing, nextafter, sinc, i0, nan_to_num, unwrap, angle, isposinf, isneginf, the
real/complex predicates, allclose, array_equal, array_equiv, and NumPy 2's aliases of the
elementwise functions (acos, atan2, pow, ...).

A traced call casts its operands to the dtypes of the loop NumPy runs (as `ufuncs` does),
then composes primitives; results have NumPy's values and dtypes. Derivatives:
copysign(x1, x2) is |x1| with the sign of x2 (derivative sign(x1) sign(x2) in x1, zero in x2);
heaviside has a zero derivative in x1 and the derivative of x2 where x1 == 0; fmod and modf
are x minus a piecewise constant; ldexp is linear in x1; frexp's mantissa is x scaled by a
power of two; spacing, signbit and the predicates have zero derivatives; nextafter(x, y)
has derivative 1 in x. This module holds no derivative rules.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import sorting as so
from dfdx._src.numpy import manipulation as mp
from dfdx._src.numpy import reductions as rd
from dfdx._src.numpy import ufuncs as uf
from dfdx._src.numpy.sorting import traced
from dfdx._src.numpy.util import arg, dtype as dtype_of, result_type, shape as shape_of

__all__ = ["copysign", "signbit", "heaviside", "fmod", "modf", "frexp", "ldexp", "spacing",
           "nextafter", "sinc", "i0", "nan_to_num", "real_if_close", "isreal", "iscomplex",
           "isrealobj", "iscomplexobj", "angle", "unwrap", "isposinf", "isneginf", "allclose",
           "array_equal", "array_equiv", "acos", "acosh", "asin", "asinh", "atan", "atanh",
           "atan2", "pow", "bitwise_invert"]


def _const(value, like):
  return np.array(value, dtype_of(like))


def _ufunc(name, np_fun, op):
  """`np_fun` (a NumPy ufunc) on traced operands: cast to NumPy's loop, then `op`."""
  def fn(*args, **kwargs):
    if not traced(*args):
      return np_fun(*args, **kwargs)
    if len(args) != np_fun.nin:
      raise TypeError(f"{name}() takes from {np_fun.nin} to {np_fun.nargs} positional "
                      f"arguments but {len(args)} were given")
    return uf._apply(name, np_fun, op, [arg(a) for a in args], kwargs)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  if np_fun.nin == 2 and np_fun.nout == 1:
    uf.give_ufunc_methods(fn, np_fun)
  return fn


def _heaviside(x1, x2):
  # 0 where x1 < 0, 1 where x1 > 0, x2 where x1 == 0 and NaN where x1 is NaN.
  dtype = result_type(x1, x2)
  at_zero = ew.select(ew.eq(x1, 0), x2, np.array(np.nan, dtype))
  return ew.select(ew.lt(x1, 0), np.zeros((), dtype),
                   ew.select(ew.gt(x1, 0), np.ones((), dtype), at_zero))


def _copysign(x1, x2):
  magnitude = ew.abs(x1)
  return ew.select(so.signbit(x2), ew.neg(magnitude), magnitude)


signbit = _ufunc("signbit", np.signbit, so.signbit)
copysign = _ufunc("copysign", np.copysign, _copysign)
heaviside = _ufunc("heaviside", np.heaviside, _heaviside)
fmod = _ufunc("fmod", np.fmod, so.fmod)
ldexp = _ufunc("ldexp", np.ldexp, so.ldexp)
spacing = _ufunc("spacing", np.spacing, so.spacing)
nextafter = _ufunc("nextafter", np.nextafter, so.nextafter)


def _float_operand(name, np_fun, x):
  """`x` cast to the floating dtype NumPy's loop of `np_fun` uses for it."""
  x = arg(x)
  if dtype_of(x).kind == "c":
    raise TypeError(f"dfdx.numpy.{name}: complex traced values are not supported yet.")
  dtype = np_fun(np.zeros(1, dtype_of(x)))[0].dtype
  return uf.astype(x, dtype)


def _signed_zero(x):
  """0.0 with the sign of x, in x's dtype."""
  return ew.select(so.signbit(x), _const(-0.0, x), _const(0.0, x))


def modf(x, /, *args, **kwargs):
  """Differentiable `numpy.modf`: (fractional part, integral part); the fractional part has
  derivative 1 between integers, the integral part 0."""
  if not traced(x):
    return np.modf(x, *args, **kwargs)
  if args or kwargs:
    raise TypeError("dfdx.numpy.modf: out= and the other ufunc arguments are not "
                    "supported on traced values; use the returned values.")
  x = _float_operand("modf", np.modf, x)
  whole = ew.trunc(x)
  frac = ew.sub(x, whole)  # exact in floating point
  frac = ew.select(ew.logical_or_p.bind(ew.isinf_p.bind(x), ew.eq(frac, 0)), _signed_zero(x),
                   frac)
  return frac, whole


def frexp(x, /, *args, **kwargs):
  """Differentiable `numpy.frexp`: (mantissa, exponent) with x = mantissa * 2**exponent; the
  mantissa's derivative is 2**-exponent, the exponent's is zero."""
  if not traced(x):
    return np.frexp(x, *args, **kwargs)
  if args or kwargs:
    raise TypeError("dfdx.numpy.frexp: out= and the other ufunc arguments are not "
                    "supported on traced values; use the returned values.")
  x = _float_operand("frexp", np.frexp, x)
  exponent = so.frexp_exponent(x)
  return so.ldexp(x, ew.neg(exponent)), exponent


def sinc(x):
  """Differentiable `numpy.sinc`: sin(pi x) / (pi x), 1 at 0 (where its derivatives are those
  of the series 1 - (pi x)^2 / 6)."""
  if not traced(x):
    return np.sinc(x)
  y = uf.multiply(np.pi, arg(x))
  zero = ew.eq(y, 0)
  safe = ew.select(zero, _const(1, y), y)
  series = ew.sub(_const(1, y), ew.div(ew.mul(y, y), _const(6, y)))
  return ew.select(zero, series, ew.div(ew.sin(safe), safe))


_I0A = np.lib._function_base_impl._i0A
_I0B = np.lib._function_base_impl._i0B


def _chbevl(x, vals):
  b0, b1, b2 = vals[0], 0.0, 0.0
  for v in vals[1:]:
    b2, b1 = b1, b0
    b0 = uf.add(uf.subtract(uf.multiply(x, b1), b2), v)
  return uf.multiply(0.5, uf.subtract(b0, b2))


def i0(x):
  """Differentiable `numpy.i0` (the modified Bessel function of order 0), with NumPy's
  Chebyshev expansions; each branch is evaluated at a safe point where it is not selected."""
  if not traced(x):
    return np.i0(x)
  x = arg(x)
  if dtype_of(x).kind == "c":
    raise TypeError("i0 not supported for complex values")
  x = uf.absolute(uf.astype(x, np.float64) if dtype_of(x).kind != "f" else x)
  dtype = dtype_of(x)
  small = uf.less_equal(x, 8.0)
  xs, xl = uf.where(small, x, 0.0), uf.where(small, 9.0, x)
  inner = uf.multiply(uf.exp(xs), _chbevl(uf.subtract(uf.divide(xs, 2.0), 2), _I0A))
  outer = uf.divide(uf.multiply(uf.exp(xl), _chbevl(uf.subtract(uf.divide(32.0, xl), 2.0),
                                                    _I0B)), uf.sqrt(xl))
  return uf.astype(uf.where(small, inner, outer), dtype)


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
  """Differentiable `numpy.nan_to_num`: replaced entries have zero derivative."""
  if not traced(x, nan, posinf, neginf):
    return np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
  x = arg(x)
  if dtype_of(x).kind == "c":  # (NumPy replaces in the real and imaginary parts apart)
    parts = [nan_to_num(part(x), copy, nan, posinf, neginf) for part in (uf.real, uf.imag)]
    return ew.complex(*parts)
  if dtype_of(x).kind != "f":
    return x
  info = np.finfo(dtype_of(x))
  fills = [(ew.isnan_p.bind, nan), (isposinf, info.max if posinf is None else posinf),
           (isneginf, info.min if neginf is None else neginf)]
  out = x
  for test, value in reversed(fills):
    out = uf.where(test(x), uf.astype(arg(value), dtype_of(x)), out)
  return out


def real_if_close(a, tol=100):
  """`numpy.real_if_close`: the identity on real traced values; a complex one whose imaginary
  parts are all within `tol` machine epsilons of zero becomes its real part. Which one it is
  decides the result's dtype, so a complex value must be concrete (under grad; under jit or
  vmap, ConcretizationError)."""
  if not traced(a):
    return np.real_if_close(a, tol)
  a = arg(a)
  if dtype_of(a).kind != "c":
    return a
  values = a.concrete_value("real_if_close of a complex value (the result's dtype depends on "
                            "whether its imaginary parts are close to zero)")
  return uf.real(a) if np.real_if_close(values, tol).dtype.kind != "c" else a


def iscomplexobj(x):
  """`numpy.iscomplexobj` (a traced value is complex when its dtype is)."""
  return dtype_of(arg(x)).kind == "c" if traced(x) else np.iscomplexobj(x)


def isrealobj(x):
  """`numpy.isrealobj`."""
  return not iscomplexobj(x)


def _real_predicate(name, np_fun, value):
  def fn(x):
    if not traced(x):
      return np_fun(x)
    x = arg(x)
    if dtype_of(x).kind == "c":
      return (uf.equal if value else uf.not_equal)(uf.imag(x), 0)
    return np.full(shape_of(x), value)[()]
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"`numpy.{name}`: whether the imaginary part is {'' if value else 'not '}zero "
                f"(of a real traced value a constant, {value} everywhere).")
  return fn


isreal = _real_predicate("isreal", np.isreal, True)
iscomplex = _real_predicate("iscomplex", np.iscomplex, False)


def angle(z, deg=False):
  """Differentiable `numpy.angle`: arctan2(imag(z), real(z)); for real z, 0 or pi (zero
  derivative)."""
  if not traced(z):
    return np.angle(z, deg)
  z = arg(z)
  a = uf.arctan2(uf.imag(z), uf.real(z)) if dtype_of(z).kind == "c" else uf.arctan2(0, z)
  return uf.multiply(a, 180 / np.pi) if deg else a


def _signed_inf(name, np_fun, negative):
  def fn(x, out=None):
    if not traced(x):
      return np_fun(x, out)
    x = arg(x)
    if dtype_of(x).kind == "c":
      raise TypeError("This operation is not supported for complex values because it would "
                      "be ambiguous.")
    sign = signbit(x)
    return uf.logical_and(uf.isinf(x), sign if negative else uf.logical_not(sign))
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"`numpy.{name}` on traced values (a boolean result)."
  return fn


isposinf = _signed_inf("isposinf", np.isposinf, False)
isneginf = _signed_inf("isneginf", np.isneginf, True)


def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
  """Differentiable `numpy.unwrap` (its derivative is the identity: the corrections are
  piecewise constant)."""
  if not traced(p, discont, period):
    return np.unwrap(p, discont, axis, period=period)
  p = arg(p)
  dd = mp.diff(p, axis=axis)
  discont = period / 2 if discont is None else discont
  dtype = np.result_type(np.empty(0, dtype_of(dd)), period)
  if np.issubdtype(dtype, np.integer):
    high, rem = divmod(period, 2)
    ambiguous = rem == 0
  else:
    high, ambiguous = period / 2, True
  low = -high
  ddmod = uf.add(uf.mod(uf.subtract(dd, low), period), low)
  if ambiguous:
    ddmod = uf.where(uf.logical_and(uf.equal(ddmod, low), uf.greater(dd, 0)),
                     uf.astype(np.asarray(high), dtype_of(ddmod)), ddmod)
  correct = uf.subtract(ddmod, dd)
  correct = uf.where(uf.less(uf.absolute(dd), discont), _const(0, correct), correct)
  axis = axis % len(shape_of(p))
  before = (slice(None),) * axis
  head = uf.astype(p[before + (slice(None, 1),)], dtype)
  tail = uf.add(p[before + (slice(1, None),)], rd.cumsum(correct, axis=axis))
  return mp.concatenate([head, uf.astype(tail, dtype)], axis=axis)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
  """`numpy.allclose` on traced values: a bool where the values are concrete, else a traced
  0-d boolean."""
  if not traced(a, b, rtol, atol):
    return np.allclose(a, b, rtol, atol, equal_nan)
  return _python_bool(rd.all(uf.isclose(a, b, rtol, atol, equal_nan)))


def _python_bool(x):
  return bool(x) if not isinstance(x, Tracer) else x


def array_equal(a1, a2, equal_nan=False):
  """`numpy.array_equal` on traced values (see allclose)."""
  if not traced(a1, a2):
    return np.array_equal(a1, a2, equal_nan)
  a1, a2 = arg(a1), arg(a2)
  if shape_of(a1) != shape_of(a2):
    return False
  same = uf.equal(a1, a2)
  if equal_nan and dtype_of(a1).kind in "fc" and dtype_of(a2).kind in "fc":
    same = uf.logical_or(same, uf.logical_and(uf.isnan(a1), uf.isnan(a2)))
  return _python_bool(rd.all(same))


def array_equiv(a1, a2):
  """`numpy.array_equiv` on traced values: broadcastable and equal everywhere."""
  if not traced(a1, a2):
    return np.array_equiv(a1, a2)
  a1, a2 = arg(a1), arg(a2)
  try:
    np.broadcast_shapes(shape_of(a1), shape_of(a2))
  except ValueError:
    return False
  return _python_bool(rd.all(uf.equal(a1, a2)))


# NumPy 2's names for the same functions.
acos, acosh, asin, asinh = uf.arccos, uf.arccosh, uf.arcsin, uf.arcsinh
atan, atanh, atan2, pow = uf.arctan, uf.arctanh, uf.arctan2, uf.power  # noqa: A001
bitwise_invert = uf.invert
