"""Reductions of `dfdx.numpy`: sum, mean, prod, max, min, amax, amin, var, std, average, ptp,
cumsum, cumprod, all, any, count_nonzero, argmax, argmin, with NumPy's `axis` (None, int,
negative, tuple), `keepdims`, `dtype`, `ddof`, `initial` and `where` arguments, NumPy's result
dtypes and NumPy's errors (for empty reductions, bad axes and masks).

With no traced operand every function calls NumPy itself. Traced calls follow NumPy's own
algorithms (`numpy._core._methods` for mean/var/std, `numpy.average`), so that dtypes and
values agree. This module holds no derivative rules: it composes the primitives of
`dfdx._src.ops.reduction`.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.errors import ConcretizationError
from dfdx._src.ops import checks
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import arg, contains_tracer, dtype as dtype_of, is_weak, \
    normalize_axes, normalize_axis, reject_out, shape as shape_of

__all__ = ["sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "average",
           "cumsum", "cumprod", "all", "any", "argmax", "argmin", "ptp", "count_nonzero"]

_NO_VALUE = np._NoValue


def _given(**kwargs):
  return {k: v for k, v in kwargs.items() if v is not _NO_VALUE}


def _traced(*xs):
  for x in xs:
    if isinstance(x, Tracer) or (isinstance(x, (list, tuple)) and contains_tracer(x)):
      return True
  return False


def _keep(out, in_shape, axes, keepdims):
  return shape_ops.reshape(out, red.keepdims_shape(in_shape, axes)) if keepdims else out


def _cast(a, dtype):
  return a if dtype is None else shape_ops.convert_element_type(a, dtype)


def _mask(where, a_shape):
  """The `where=` argument as a boolean mask of `a_shape`, with NumPy's errors: a non-boolean
  array is refused (NumPy's 'safe' casting) and the mask may not broadcast `a` to more
  entries."""
  mask = arg(where)
  if is_weak(mask):
    mask = np.asarray(mask, dtype=bool)
  elif dtype_of(mask) != np.bool_:
    raise TypeError(f"Cannot cast array data from {dtype_of(mask)!r} to dtype('bool') "
                    "according to the rule 'safe'")
  if np.broadcast_shapes(shape_of(mask), a_shape) != tuple(a_shape):
    raise ValueError(f"the where= mask of shape {shape_of(mask)} does not broadcast to the "
                     f"shape {tuple(a_shape)} of the reduced array")
  return shape_ops.broadcast_to(mask, a_shape)


def _initial(initial, dtype):
  """NumPy's `initial=`: a scalar, cast to the reduction's dtype."""
  if shape_of(initial):
    raise ValueError("setting an array element with a sequence. (initial= must be a scalar)")
  return _cast_to(initial, dtype)


def _cast_to(value, dtype):
  """`value` (a traced or concrete scalar or array) in `dtype`, as NumPy casts `initial`."""
  if isinstance(value, Tracer):
    return shape_ops.convert_element_type(value, dtype)
  if type(value) is int:  # (NumPy's OverflowError for a Python int out of dtype's range)
    return np.array(value, dtype)
  with np.errstate(invalid="ignore"):
    return np.asarray(value).astype(dtype)


def _ufunc_axes(axis, ndim):
  """`axis` of a ufunc reduction (sum, prod, max, min, all, any) as sorted non-negative axes.
  Like NumPy, a list is refused and a 0-d array accepts an integer axis 0 or -1."""
  if isinstance(axis, list):
    raise TypeError("'list' object cannot be interpreted as an integer")
  if ndim == 0 and axis is not None and not isinstance(axis, tuple):
    if normalize_axis(axis, 1) == 0:
      return ()
  return normalize_axes(axis, ndim)


def _method_axes(axis, ndim):
  """`axis` of the reductions NumPy writes in Python (mean, var, std)."""
  if isinstance(axis, list):
    raise TypeError("'list' object cannot be interpreted as an integer")
  return normalize_axes(axis, ndim)


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NO_VALUE,  # noqa: A001
        where=_NO_VALUE):
  """Differentiable `numpy.sum`."""
  if (type(axis) is not list and dtype is None and out is None and not keepdims
      and initial is _NO_VALUE and where is _NO_VALUE and isinstance(a, Tracer)):
    # The common case on a traced array: one primitive, no dtype or mask handling.
    return red.reduce_sum(a, _ufunc_axes(axis, len(a.shape)))
  if type(a) is np.ndarray and dtype is None and out is None and not keepdims and \
      initial is _NO_VALUE and where is _NO_VALUE:  # (what np.sum calls for an ndarray)
    return np.add.reduce(a, axis)
  if not _traced(a, initial, where):
    return np.sum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                  **_given(initial=initial, where=where))
  reject_out("sum", out)
  a = _cast(arg(a), dtype)
  axes = _ufunc_axes(axis, len(shape_of(a)))
  if where is not _NO_VALUE:
    a = ew.select(_mask(where, shape_of(a)), a, np.zeros((), dtype_of(a)))
  result = _cast(red.reduce_sum(a, axes), dtype)  # add.reduce(int8, dtype=int8) is int8
  if initial is not _NO_VALUE:
    result = ew.add(result, _initial(initial, dtype_of(result)))
  return _keep(result, shape_of(a), axes, keepdims)


def _count(a_shape, axes, keepdims, where):
  """The number of entries each reduction combines (NumPy's `_count_reduce_items`): an intp
  scalar, or an intp array shaped like the result when `where` is given."""
  if where is _NO_VALUE:
    return np.intp(math.prod(a_shape[i] for i in axes))
  mask = shape_ops.convert_element_type(_mask(where, a_shape), np.intp)
  return _keep(red.reduce_sum(mask, axes), a_shape, axes, keepdims)


def _divide(total, count):
  """`total / count` cast back to total's dtype, as NumPy's `true_divide(..., out=total,
  casting='unsafe')` does (so float32 stays float32 and an integer dtype truncates)."""
  return _cast_to(ew.div(total, count), dtype_of(total))


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=_NO_VALUE):
  """Differentiable `numpy.mean` (integers average as float64, float16 in float32)."""
  if not _traced(a, where):
    return np.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **_given(where=where))
  reject_out("mean", out)
  a = arg(a)
  a_dtype, a_shape = dtype_of(a), shape_of(a)
  axes = _method_axes(axis, len(a_shape))
  if dtype is None and a_dtype.kind in "iub":
    dtype = np.float64
  elif dtype is None and a_dtype == np.float16:
    dtype = np.float32
  total = sum(a, axis=axes, dtype=dtype, keepdims=keepdims, where=where)
  result = _divide(total, _count(a_shape, axes, keepdims, where))
  return _cast_to(result, a_dtype) if a_dtype == np.float16 and dtype == np.float32 else result


_mean = mean


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NO_VALUE,
         where=_NO_VALUE):
  """Differentiable `numpy.prod` (exact derivatives where entries are zero)."""
  if not _traced(a, initial, where):
    return np.prod(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                   **_given(initial=initial, where=where))
  reject_out("prod", out)
  a = _cast(arg(a), dtype)
  axes = _ufunc_axes(axis, len(shape_of(a)))
  if where is not _NO_VALUE:
    a = ew.select(_mask(where, shape_of(a)), a, np.ones((), dtype_of(a)))
  result = _cast(red.reduce_prod(a, axes), dtype)
  if initial is not _NO_VALUE:
    result = ew.mul(result, _initial(initial, dtype_of(result)))
  return _keep(result, shape_of(a), axes, keepdims)


def _extremum(name, np_fun, reduce, combine, ufunc_name):
  def fn(a, axis=None, out=None, keepdims=False, initial=_NO_VALUE, where=_NO_VALUE):
    if not _traced(a, initial, where):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims,
                    **_given(initial=initial, where=where))
    reject_out(name, out)
    a = arg(a)
    a_shape = shape_of(a)
    axes = _ufunc_axes(axis, len(a_shape))
    if initial is not _NO_VALUE:
      initial = _initial(initial, dtype_of(a))
    if where is not _NO_VALUE:
      if initial is _NO_VALUE:
        raise ValueError(f"reduction operation '{ufunc_name}' does not have an identity, so "
                         "to use a where mask one has to specify 'initial'")
      a = ew.select(_mask(where, a_shape), a, initial)
    if initial is not _NO_VALUE and builtins.any(a_shape[i] == 0 for i in axes):
      out_shape = tuple(d for i, d in enumerate(a_shape) if i not in axes)
      result = shape_ops.broadcast_to(initial, out_shape)
    else:
      result = reduce(a, axes)
      if initial is not _NO_VALUE:
        result = combine(result, initial)
    return _keep(result, a_shape, axes, keepdims)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"Differentiable `numpy.{name}`. Tied extreme entries share the derivative "
                "equally.")
  return fn


max = _extremum("max", np.max, red.reduce_max, ew.maximum, "maximum")  # noqa: A001
min = _extremum("min", np.min, red.reduce_min, ew.minimum, "minimum")  # noqa: A001
amax = _extremum("amax", np.amax, red.reduce_max, ew.maximum, "maximum")
amin = _extremum("amin", np.amin, red.reduce_min, ew.minimum, "minimum")


def ptp(a, axis=None, out=None, keepdims=False):
  """Differentiable `numpy.ptp`: max - min."""
  if not _traced(a):
    return np.ptp(a, axis=axis, out=out, keepdims=keepdims)
  reject_out("ptp", out)
  return ew.sub(max(a, axis, keepdims=keepdims), min(a, axis, keepdims=keepdims))


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NO_VALUE,
        mean=_NO_VALUE, correction=_NO_VALUE):
  """Differentiable `numpy.var`, computed as NumPy computes it (`numpy._core._methods._var`):
  the mean of |a - mean(a)|^2, real for complex `a`."""
  if not _traced(a, where, mean):
    return np.var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                  **_given(where=where, mean=mean, correction=correction))
  reject_out("var", out)
  if correction is not _NO_VALUE:
    if ddof != 0:
      raise ValueError("ddof and correction can't be provided simultaneously.")
    ddof = correction
  a = arg(a)
  a_shape = shape_of(a)
  axes = _method_axes(axis, len(a_shape))
  count = _count(a_shape, axes, keepdims, where)
  if dtype is None and dtype_of(a).kind in "iub":
    dtype = np.float64
  if mean is not _NO_VALUE:
    centre = arg(mean)
  else:
    centre = sum(a, axis=axes, dtype=dtype, keepdims=True, where=where)
    centre = _divide(centre, count if keepdims or np.ndim(count) == 0 else
                     shape_ops.reshape(count, shape_of(centre)))
  squares = sum(abs2(ew.sub(a, centre)), axis=axes, dtype=dtype, keepdims=keepdims,
                where=where)
  dof = ew.maximum(ew.sub(count, ddof), 0) if isinstance(count, Tracer) else \
      np.maximum(count - ddof, 0)
  return _divide(squares, dof)


def abs2(d):
  """|d|^2: d * d for real d; for complex d, real(d)^2 + imag(d)^2, a real array (NumPy's
  `_var` squares complex deviations so, and its variance of complex values is real)."""
  if dtype_of(d).kind != "c":
    return ew.mul(d, d)
  re, im = ew.real(d), ew.imag(d)
  return ew.add(ew.mul(re, re), ew.mul(im, im))


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NO_VALUE,
        mean=_NO_VALUE, correction=_NO_VALUE):
  """Differentiable `numpy.std`: sqrt(var). Where the variance is zero (a single entry, or
  equal entries) the derivative is taken as zero."""
  if not _traced(a, where, mean):
    return np.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                  **_given(where=where, mean=mean, correction=correction))
  reject_out("std", out)
  variance = var(a, axis, dtype, None, ddof, keepdims, where=where, mean=mean,
                 correction=correction)
  v_dtype = dtype_of(variance)
  if v_dtype.kind not in "fc":
    if keepdims or shape_of(variance):
      np.sqrt(np.zeros(1, v_dtype), out=np.zeros(1, v_dtype))  # NumPy's casting error
    return _cast_to(ew.sqrt(variance), v_dtype)
  # Where the variance is 0 (one entry, or equal entries) sqrt has an infinite slope; the
  # derivative there is taken as 0 (the symmetric subgradient, like abs at 0), not 0 * inf.
  zero = ew.eq(variance, 0)
  safe = ew.select(zero, np.ones((), v_dtype), variance)
  return ew.select(zero, np.zeros((), v_dtype), ew.sqrt(safe))


def _average_axes(axis, ndim):
  """NumPy's `normalize_axis_tuple`: axes in the order given, duplicates refused."""
  axes = axis if isinstance(axis, (tuple, list)) else (axis,)
  axes = tuple(normalize_axis(i, ndim) for i in axes)
  if len(set(axes)) != len(axes):
    raise ValueError("repeated axis in `axis` argument")
  return axes


def _nonzero_or_unknown(x):
  """Whether any entry of `x` is zero, or None where a transformation hides its values."""
  if isinstance(x, Tracer):
    try:
      x = x.concrete_value("average: checking that the weights do not sum to zero")
    except ConcretizationError:
      return None
  return bool(np.any(np.asarray(x) == 0))


def average(a, axis=None, weights=None, returned=False, *, keepdims=_NO_VALUE):
  """Differentiable `numpy.average`, in the data and in the weights."""
  if not _traced(a, weights):
    return np.average(a, axis=axis, weights=weights, returned=returned,
                      **_given(keepdims=keepdims))
  a = arg(a)
  a_shape, a_dtype = shape_of(a), dtype_of(a)
  axes = None if axis is None else _average_axes(axis, len(a_shape))
  kw = _given(keepdims=keepdims)
  if weights is None:
    avg = mean(a, axes, **kw)
    avg_size = math.prod(shape_of(avg))
    if avg_size == 0:
      raise ZeroDivisionError("division by zero")  # as numpy.average does
    scale = np.asarray(math.prod(a_shape) / avg_size, dtype_of(avg))
  else:
    weights = arg(weights)
    w_shape = shape_of(weights)
    if w_shape != a_shape:
      if axes is None:
        raise TypeError("Axis must be specified when shapes of a and weights differ.")
      if w_shape != tuple(a_shape[i] for i in axes):
        raise ValueError("Shape of weights must be consistent with shape of a along specified "
                         "axis.")
      weights = shape_ops.transpose(weights, tuple(int(i) for i in np.argsort(axes)))
      weights = shape_ops.reshape(weights, tuple(d if i in axes else 1
                                                 for i, d in enumerate(a_shape)))
    if a_dtype.kind in "iub":
      result_dtype = np.result_type(a_dtype, dtype_of(weights), "f8")
    else:
      result_dtype = np.result_type(a_dtype, dtype_of(weights))
    scale = sum(weights, axis=axes, dtype=result_dtype, **kw)
    zero = _nonzero_or_unknown(scale)
    if zero:
      raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    if zero is None:  # (under jit or vmap: checked when the sum is computed)
      scale = checks.check(scale, "nonzero", "ZeroDivisionError",
                           "Weights sum to zero, can't be normalized")
    weighted = ew.mul(_cast(a, result_dtype), _cast(weights, result_dtype))
    avg = ew.div(sum(weighted, axis=axes, **kw), scale)
  if not returned:
    return avg
  if shape_of(scale) != shape_of(avg):
    scale = shape_ops.broadcast_to(scale, shape_of(avg))
  return avg, scale


def _cumulative(name, np_fun, op):
  def fn(a, axis=None, dtype=None, out=None):
    if not _traced(a):
      return np_fun(a, axis=axis, dtype=dtype, out=out)
    reject_out(name, out)
    a = _cast(arg(a), dtype)
    if axis is None or not shape_of(a):  # NumPy flattens, and treats a 0-d array as 1-d
      a = shape_ops.reshape(a, (math.prod(shape_of(a)),))
      axis = 0 if axis is None else axis
    return _cast(op(a, normalize_axis(axis, len(shape_of(a)))), dtype)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  return fn


cumsum = _cumulative("cumsum", np.cumsum, red.cumsum)
cumprod = _cumulative("cumprod", np.cumprod, red.cumprod)


def _truth(name, np_fun, test, combine):
  def fn(a, axis=None, out=None, keepdims=False, *, where=_NO_VALUE):
    if not _traced(a, where):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims, **_given(where=where))
    reject_out(name, out)
    a = arg(a)
    axes = _ufunc_axes(axis, len(shape_of(a)))
    hits = test(a)
    if where is not _NO_VALUE:
      hits = ew.logical_and_p.bind(hits, _mask(where, shape_of(a)))
    count = red.reduce_sum(shape_ops.convert_element_type(hits, np.intp), axes)
    return _keep(combine(count), shape_of(a), axes, keepdims)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"`numpy.{name}` on traced values (a boolean result)."
  return fn


any = _truth("any", np.any, lambda a: ew.ne(a, 0), lambda n: ew.gt(n, 0))  # noqa: A001
all = _truth("all", np.all, lambda a: ew.eq(a, 0), lambda n: ew.eq(n, 0))  # noqa: A001


def count_nonzero(a, axis=None, *, keepdims=False):
  """`numpy.count_nonzero` on traced values."""
  if not _traced(a):
    return np.count_nonzero(a, axis=axis, keepdims=keepdims)
  a = arg(a)
  axes = _ufunc_axes(axis, len(shape_of(a)))
  count = red.reduce_sum(shape_ops.convert_element_type(ew.ne(a, 0), np.intp), axes)
  return _keep(count, shape_of(a), axes, keepdims)


def _arg_reduction(name, np_fun, prim):
  def fn(a, axis=None, out=None, *, keepdims=False):
    if not _traced(a):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims)
    reject_out(name, out)
    a = arg(a)
    if not shape_of(a):  # NumPy treats a 0-d array as 1-d, and the result stays 0-d
      a, keepdims = shape_ops.reshape(a, (1,)), False
    a_shape = shape_of(a)
    if axis is None:
      result = prim.bind(shape_ops.reshape(a, (math.prod(a_shape),)), axis=0)
      return shape_ops.reshape(result, (1,) * len(a_shape)) if keepdims else result
    axis = normalize_axis(axis, len(a_shape))
    return _keep(prim.bind(a, axis=axis), a_shape, (axis,), keepdims)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"`numpy.{name}` on traced values (an integer result with zero derivative)."
  return fn


argmax = _arg_reduction("argmax", np.argmax, red.argmax_p)
argmin = _arg_reduction("argmin", np.argmin, red.argmin_p)
