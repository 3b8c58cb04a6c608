"""Reductions of `dfdx.numpy`: sum, mean, prod, max, min, var, std, average, cumsum, cumprod,
all, any, argmax, argmin, with NumPy's `axis` (None, int, negative, tuple), `keepdims`,
`dtype`, `initial` and `where` arguments.

With no traced operand every function calls NumPy itself. This module holds no derivative
rules: it composes the primitives of `dfdx._src.ops.reduction`.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import arg, dtype as dtype_of, normalize_axes, normalize_axis, \
    reject_out, shape as shape_of

__all__ = ["sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "average",
           "cumsum", "cumprod", "all", "any", "argmax", "argmin", "ptp", "count_nonzero"]

_NO_VALUE = np._NoValue


def _given(**kwargs):
  return {k: v for k, v in kwargs.items() if v is not _NO_VALUE}


def _traced(*xs):
  for x in xs:
    if isinstance(x, Tracer):
      return True
  return False


def _keep(out, in_shape, axes, keepdims):
  return shape_ops.reshape(out, red.keepdims_shape(in_shape, axes)) if keepdims else out


def _sum_dtype_cast(a, dtype):
  return a if dtype is None else shape_ops.convert_element_type(a, dtype)


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NO_VALUE,  # noqa: A001
        where=_NO_VALUE):
  """Differentiable `numpy.sum`."""
  if not _traced(a, initial, where):
    return np.sum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                  **_given(initial=initial, where=where))
  reject_out("sum", out)
  a = _sum_dtype_cast(arg(a), dtype)
  axes = normalize_axes(axis, len(shape_of(a)))
  if where is not _NO_VALUE:
    a = ew.select(arg(where), a, np.zeros((), dtype_of(a)))
  result = red.reduce_sum(a, axes)
  if initial is not _NO_VALUE:
    result = ew.add(result, initial)
  return _keep(result, shape_of(a), axes, keepdims)


def _count(a_shape, axes, where):
  if where is _NO_VALUE:
    return math.prod(a_shape[i] for i in axes)
  mask = shape_ops.broadcast_to(arg(where), a_shape)
  return red.reduce_sum(shape_ops.convert_element_type(mask, np.int64), axes)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=_NO_VALUE):
  """Differentiable `numpy.mean` (integers average as float64)."""
  if not _traced(a, where):
    return np.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **_given(where=where))
  reject_out("mean", out)
  a = arg(a)
  if dtype is None and dtype_of(a).kind in "iub":
    dtype = np.float64
  a = _sum_dtype_cast(a, dtype)
  axes = normalize_axes(axis, len(shape_of(a)))
  total = sum(a, axis=axes, where=where)
  count = _count(shape_of(a), axes, where)
  result = ew.div(total, count if isinstance(count, Tracer) else np.asarray(count, dtype_of(a)))
  return _keep(result, shape_of(a), axes, keepdims)


_mean = mean


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NO_VALUE,
         where=_NO_VALUE):
  """Differentiable `numpy.prod` (exact derivatives where entries are zero)."""
  if not _traced(a, initial, where):
    return np.prod(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                   **_given(initial=initial, where=where))
  reject_out("prod", out)
  a = _sum_dtype_cast(arg(a), dtype)
  axes = normalize_axes(axis, len(shape_of(a)))
  if where is not _NO_VALUE:
    a = ew.select(arg(where), a, np.ones((), dtype_of(a)))
  result = red.reduce_prod(a, axes)
  if initial is not _NO_VALUE:
    result = ew.mul(result, initial)
  return _keep(result, shape_of(a), axes, keepdims)


def _extremum(name, np_fun, reduce, combine):
  def fn(a, axis=None, out=None, keepdims=False, initial=_NO_VALUE, where=_NO_VALUE):
    if not _traced(a, initial, where):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims,
                    **_given(initial=initial, where=where))
    reject_out(name, out)
    a = arg(a)
    a_shape = shape_of(a)
    axes = normalize_axes(axis, len(a_shape))
    if where is not _NO_VALUE:
      if initial is _NO_VALUE:
        raise ValueError(f"reduction operation '{name}' does not have an identity, so to use a "
                         "where mask one has to specify 'initial'")
      a = ew.select(arg(where), a, initial)
    if initial is not _NO_VALUE and builtins.any(a_shape[i] == 0 for i in axes):
      out_shape = tuple(d for i, d in enumerate(a_shape) if i not in axes)
      result = shape_ops.broadcast_to(np.asarray(initial, dtype_of(a)), out_shape)
    else:
      result = reduce(a, axes)
      if initial is not _NO_VALUE:
        result = combine(result, initial)
    return _keep(result, a_shape, axes, keepdims)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"Differentiable `numpy.{name}`. Tied extreme entries share the derivative "
                "equally.")
  return fn


max = _extremum("max", np.max, red.reduce_max, ew.maximum)  # noqa: A001
min = _extremum("min", np.min, red.reduce_min, ew.minimum)  # noqa: A001
amax = _extremum("amax", np.amax, red.reduce_max, ew.maximum)
amin = _extremum("amin", np.amin, red.reduce_min, ew.minimum)


def ptp(a, axis=None, out=None, keepdims=False):
  """Differentiable `numpy.ptp`: max - min."""
  if not _traced(a):
    return np.ptp(a, axis=axis, out=out, keepdims=keepdims)
  return ew.sub(max(a, axis, keepdims=keepdims), min(a, axis, keepdims=keepdims))


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NO_VALUE,
        mean=_NO_VALUE, correction=_NO_VALUE):
  """Differentiable `numpy.var`."""
  if not _traced(a, where, mean):
    return np.var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                  **_given(where=where, mean=mean, correction=correction))
  reject_out("var", out)
  if correction is not _NO_VALUE:
    if ddof != 0:
      raise ValueError("ddof and correction can't be provided simultaneously.")
    ddof = correction
  a = arg(a)
  if dtype is None and dtype_of(a).kind in "iub":
    dtype = np.float64
  a = _sum_dtype_cast(a, dtype)
  axes = normalize_axes(axis, len(shape_of(a)))
  centre = _mean(a, axis=axes, keepdims=True, where=where) if mean is _NO_VALUE else mean
  deviation = ew.sub(a, centre)
  squares = sum(ew.mul(deviation, deviation), axis=axes, where=where)
  count = _count(shape_of(a), axes, where)
  denominator = ew.sub(count, ddof) if isinstance(count, Tracer) else np.asarray(
      builtins.max(count - ddof, 0), dtype_of(a))
  return _keep(ew.div(squares, denominator), shape_of(a), axes, keepdims)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NO_VALUE,
        mean=_NO_VALUE, correction=_NO_VALUE):
  """Differentiable `numpy.std`: sqrt(var)."""
  if not _traced(a, where, mean):
    return np.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                  **_given(where=where, mean=mean, correction=correction))
  return ew.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                     correction=correction))


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
  """Differentiable `numpy.average`, in the data and in the weights."""
  if not _traced(a, weights):
    return np.average(a, axis=axis, weights=weights, returned=returned, keepdims=keepdims)
  a = arg(a)
  if weights is None:
    result = mean(a, axis=axis, keepdims=keepdims)
    if not returned:
      return result
    count = math.prod(shape_of(a)) // math.prod(shape_of(result) or (1,)) if axis is not None \
        else math.prod(shape_of(a))
    return result, shape_ops.broadcast_to(np.asarray(count, dtype_of(result)), shape_of(result))
  weights = arg(weights)
  a_shape, w_shape = shape_of(a), shape_of(weights)
  axes = normalize_axes(axis, len(a_shape))
  if w_shape != a_shape:
    if axis is None or len(w_shape) != 1 or len(axes) != 1 or w_shape[0] != a_shape[axes[0]]:
      raise ValueError("Axis must be specified when shapes of a and weights differ." if axis is
                       None else "Shape of weights must be consistent with shape of a along "
                       "specified axis.")
    weights = shape_ops.reshape(weights, tuple(w_shape[0] if i == axes[0] else 1
                                               for i in range(len(a_shape))))
  weights = shape_ops.broadcast_to(weights, a_shape)
  if dtype_of(a).kind in "iub":
    a = shape_ops.convert_element_type(a, np.float64)
  total_weight = sum(weights, axis=axes, keepdims=keepdims)
  result = ew.div(sum(ew.mul(a, weights), axis=axes, keepdims=keepdims), total_weight)
  return (result, total_weight) if returned else result


def _cumulative(name, np_fun, op):
  def fn(a, axis=None, dtype=None, out=None):
    if not _traced(a):
      return np_fun(a, axis=axis, dtype=dtype, out=out)
    reject_out(name, out)
    a = _sum_dtype_cast(arg(a), dtype)
    if axis is None:
      a = shape_ops.reshape(a, (math.prod(shape_of(a)),))
      axis = 0
    return op(a, normalize_axis(axis, len(shape_of(a))))
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
    axes = normalize_axes(axis, len(shape_of(a)))
    hits = test(a)
    if where is not _NO_VALUE:
      hits = ew.logical_and_p.bind(hits, arg(where))
    count = red.reduce_sum(shape_ops.convert_element_type(hits, np.int64), axes)
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
  axes = normalize_axes(axis, len(shape_of(a)))
  count = red.reduce_sum(shape_ops.convert_element_type(ew.ne(a, 0), np.int64), axes)
  return _keep(count, shape_of(a), axes, keepdims)


def _arg_reduction(name, np_fun, prim):
  def fn(a, axis=None, out=None, *, keepdims=False):
    if not _traced(a):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims)
    reject_out(name, out)
    a = arg(a)
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
