"""Order statistics and NaN-aware reductions of `dfdx.numpy`: median, quantile, percentile,
their nan* forms, nansum, nanprod, nanmean, nanvar, nanstd, nanmin, nanmax, nanargmin,
nanargmax, nancumsum, nancumprod.

With no traced argument every function calls NumPy. Traced calls follow NumPy's algorithms
(`numpy.lib._function_base_impl._quantile` and `numpy.lib._nanfunctions_impl`): the same
virtual indices and interpolation formula for all of NumPy's quantile methods, the same
dtypes, NaN results for slices holding NaN (or, in the nan* forms, holding nothing else), and
NumPy's RuntimeWarnings where the values are concrete (under grad; not under vmap or jit).

Derivatives are finite everywhere: NaN entries get zero derivatives, and results that are NaN
because a slice is empty or all-NaN are constants. Order statistics are gathers from sorted
slices, so their derivative goes to the entries they pick (and, for quantiles, to `q`
through the interpolation weight). This module holds no derivative rules.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from dfdx._src import errors
from dfdx._src.core import Tracer
from dfdx._src.ops import checks
from dfdx._src.ops import indexing as ix
from dfdx._src.ops import shape as shape_ops
from dfdx._src.ops import sorting as so
from dfdx._src.numpy import reductions as rd
from dfdx._src.numpy import ufuncs as uf
from dfdx._src.numpy.sorting import concrete, traced
from dfdx._src.numpy.util import arg, dtype as dtype_of, reject_out, shape as shape_of

__all__ = ["median", "quantile", "percentile", "nanmedian", "nanquantile", "nanpercentile",
           "nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmin", "nanmax",
           "nanargmin", "nanargmax", "nancumsum", "nancumprod"]

_NO_VALUE = np._NoValue


def _given(**kwargs):
  return {k: v for k, v in kwargs.items() if v is not _NO_VALUE}


def _warn(flags, message):
  """NumPy's RuntimeWarning where any of `flags` is set, if the flags are concrete; it points
  at the first caller outside dfdx."""
  if isinstance(flags, Tracer):
    try:
      flags = flags.concrete_value("a warning")
    except errors.ConcretizationError:
      return
  if np.any(flags):
    errors.warn_at_user(message)


def _inexact(a):
  return dtype_of(a).kind in "fc"


def _reshape(x, shape):
  return shape_ops.reshape(x, shape) if isinstance(x, Tracer) else np.reshape(x, shape)


# ---- the reduced axes, as NumPy's _ureduce arranges them ------------------------------------
def _merge_reduced(a, axis):
  """`a` with the reduced axes moved last and merged into one (NumPy's `_ureduce`), and the
  reduced axes (None: all of them)."""
  shape = shape_of(a)
  if axis is None:
    return _reshape(a, (math.prod(shape),)), None
  axes = normalize_axis_tuple(axis, len(shape))
  keep = [i for i in range(len(shape)) if i not in axes]
  moved = shape_ops.transpose(a, keep + list(axes)) if isinstance(a, Tracer) else \
      np.transpose(a, keep + list(axes))
  merged = math.prod(shape[i] for i in axes)
  return _reshape(moved, tuple(shape[i] for i in keep) + (merged,)), axes


def _restore_kept(result, a_shape, axes, keepdims, q_ndim=0):
  """NumPy's keepdims for a result of shape Q + kept axes."""
  if not keepdims:
    return result
  kept = tuple(1 if axes is None or i in axes else d for i, d in enumerate(a_shape))
  return _reshape(result, shape_of(result)[:q_ndim] + kept)


def _gather_last(s, idx):
  """out[q..., r...] = s[r..., idx[q..., r...]] for `s` of shape R + (m,) and `idx` of shape
  Q + R (concrete or traced)."""
  rest = shape_of(s)[:-1]
  nq = len(shape_of(idx)) - len(rest)
  grids = [np.arange(d).reshape((1,) * (nq + i) + (d,) + (1,) * (len(rest) - i - 1))
           for i, d in enumerate(rest)]
  spec = tuple(ix.ArrayIndex(i) for i in range(len(rest) + 1))
  return ix.gather(s, grids + [idx], spec)


# ---- quantile methods (NumPy's _QuantileMethods, written for concrete or traced n and q) ---
def _hyndman_fan(alpha, beta):
  return lambda n, q: n * q + (alpha + q * (1 - alpha - beta)) - 1


def _to_boundaries(index, condition):
  """NumPy's `_discrete_interpolation_to_boundaries`."""
  previous = uf.floor(index)
  nxt = previous + 1
  res = uf.astype(uf.where(condition(index - previous, index), previous, nxt), np.intp)
  return uf.maximum(res, 0)


def _closest_observation(n, q):
  return _to_boundaries(n * q - 1 - 0.5,
                        lambda g, i: uf.logical_and(g == 0, uf.floor(i) % 2 == 1))


_METHODS = {
    "inverted_cdf": (lambda n, q: _to_boundaries(n * q - 1, lambda g, _: g == 0), None),
    "averaged_inverted_cdf": (lambda n, q: n * q - 1,
                              lambda g, _: uf.where(g == 0, 0.5, 1.0)),
    "closest_observation": (_closest_observation, None),
    "interpolated_inverted_cdf": (_hyndman_fan(0, 1), lambda g, _: g),
    "hazen": (_hyndman_fan(0.5, 0.5), lambda g, _: g),
    "weibull": (_hyndman_fan(0, 0), lambda g, _: g),
    "linear": (lambda n, q: (n - 1) * q, lambda g, _: g),
    "median_unbiased": (_hyndman_fan(1 / 3.0, 1 / 3.0), lambda g, _: g),
    "normal_unbiased": (_hyndman_fan(3 / 8.0, 3 / 8.0), lambda g, _: g),
    "lower": (lambda n, q: uf.astype(uf.floor((n - 1) * q), np.intp), None),
    "higher": (lambda n, q: uf.astype(uf.ceil((n - 1) * q), np.intp), None),
    "midpoint": (lambda n, q: 0.5 * (uf.floor((n - 1) * q) + uf.ceil((n - 1) * q)),
                 lambda g, i: uf.where(i % 1 == 0, 0.0, 0.5)),
    "nearest": (lambda n, q: uf.astype(uf.round((n - 1) * q), np.intp), None),
}


def _lerp(a, b, t, weak_dtype=None):
  """NumPy's `_lerp`: a + (b - a) t, or b - (b - a)(1 - t) where t >= 0.5 (exact ends). With
  `weak_dtype`, t and 1 - t are cast to it, as NumPy casts a weak Python float."""
  if type(t) is float:
    one_minus = 1 - t
  else:
    one_minus = uf.subtract(1, t)
    if weak_dtype is not None:
      t, one_minus, at_high = uf.astype(t, weak_dtype), uf.astype(one_minus, weak_dtype), \
          uf.greater_equal(t, 0.5)
  diff = uf.subtract(b, a)
  low = uf.add(a, uf.multiply(diff, t))
  high = uf.subtract(b, uf.multiply(diff, one_minus))
  if type(t) is float:
    return high if t >= 0.5 else low
  if weak_dtype is None:
    at_high = uf.greater_equal(t, 0.5)
  return uf.where(at_high, high, uf.astype(low, dtype_of(high)))


def _quantile_sorted(s, n, q, method, weak_q):
  """Quantiles `q` (shape Q) of the sorted slices `s` (shape R + (m,), NaNs last), whose first
  `n` entries count (an int, or intp of shape R): shape Q + R."""
  rest, q_shape = shape_of(s)[:-1], shape_of(q)
  if isinstance(n, int):
    n_b, q_b = n, q
  else:
    n_b = _reshape(n, (1,) * len(q_shape) + rest)
    q_b = _reshape(q, q_shape + (1,) * len(rest))
  get_index, fix_gamma = _METHODS[method]
  vidx = get_index(n_b, q_b)
  if not isinstance(vidx, Tracer):
    vidx = np.asanyarray(vidx)
  out_shape = q_shape + rest
  last = n_b - 1 if isinstance(n, int) else uf.maximum(n_b - 1, 0)
  if fix_gamma is None or (method == "linear" and dtype_of(vidx).kind in "iu"):
    idx = vidx if isinstance(n, int) else uf.minimum(uf.maximum(vidx, 0), last)
    return _gather_last(s, _broadcast(idx, out_shape))
  previous = uf.floor(vidx)
  above, below = uf.greater_equal(vidx, n_b - 1), uf.less(vidx, 0)
  previous = uf.where(above, last, uf.where(below, 0, previous))
  nxt = uf.where(above, last, uf.where(below, 0, previous + 1))
  gamma = uf.astype(fix_gamma(vidx - previous, vidx), dtype_of(vidx))
  lo = _gather_last(s, _broadcast(uf.astype(previous, np.intp), out_shape))
  hi = _gather_last(s, _broadcast(uf.astype(nxt, np.intp), out_shape))
  weak_dtype = None
  if weak_q and not isinstance(gamma, Tracer) and not shape_of(gamma):
    gamma = float(gamma)
  elif weak_q:
    weak_dtype = np.result_type(dtype_of(s), 1.0)
  elif len(shape_of(gamma)) == len(q_shape):
    gamma = _reshape(gamma, q_shape + (1,) * len(rest))
  return _lerp(lo, hi, gamma, weak_dtype)


def _broadcast(x, shape):
  """`x` (shape Q, or Q + R) broadcast to `shape` (Q + R)."""
  missing = len(shape) - len(shape_of(x))
  if missing:
    x = _reshape(x, shape_of(x) + (1,) * missing)
  if isinstance(x, Tracer):
    return shape_ops.broadcast_to(x, shape)
  return np.broadcast_to(x, shape)


def _check_quantile_args(a, q, method, name, scale, weights):
  """NumPy's argument checks; returns (a, q, weak_q)."""
  a = arg(a)
  if dtype_of(a).kind == "c":
    raise TypeError("a must be an array of real numbers")
  weak_q = type(q) in (int, float)
  q = uf.true_divide(arg(q), 100) if scale else arg(q)
  if not isinstance(q, Tracer):
    q = np.asanyarray(q)
  if method not in _METHODS:
    raise ValueError(f"{method!r} is not a valid method. Use one of: {_METHODS.keys()}")
  try:
    qc = concrete(q, name)
  except errors.ConcretizationError:
    qc = None
  if qc is not None and not (qc.size == 0 or (qc.min() >= 0 and qc.max() <= 1)):
    what = "Percentiles must be in the range [0, 100]" if scale else \
        "Quantiles must be in the range [0, 1]"
    raise ValueError(what)
  if len(shape_of(q)) > 2:
    raise ValueError("q must be a scalar or 1d")
  if weights is not None and method != "inverted_cdf":
    raise ValueError(f"Only method 'inverted_cdf' supports weights. Got: {method}.")
  return a, q, weak_q


def _weights_like(weights, a, axis):
  """NumPy's `_weights_are_valid`: the weights broadcast to a's shape (negative ones are
  refused where the values are concrete)."""
  w = _broadcast(_valid_weights(weights, a, axis), shape_of(a))
  try:
    negative = np.any(concrete(w, "quantile's weights") < 0)
  except errors.ConcretizationError:
    negative = False
  if negative:
    raise ValueError("Weights must be non-negative.")
  return w


def _valid_weights(weights, a, axis):
  w = arg(weights)
  w = w if isinstance(w, Tracer) else np.asarray(w)
  a_shape, w_shape = shape_of(a), shape_of(w)
  if w_shape == a_shape:
    return w
  if axis is None:
    raise TypeError("Axis must be specified when shapes of a and weights differ.")
  axes = normalize_axis_tuple(axis, len(a_shape))
  if w_shape != tuple(a_shape[ax] for ax in axes):
    raise ValueError("Shape of weights must be consistent with shape of a along specified "
                     "axis.")
  w = shape_ops.transpose(w, tuple(np.argsort(axes))) if isinstance(w, Tracer) else \
      np.transpose(w, np.argsort(axes))
  return _reshape(w, tuple(d if i in axes else 1 for i, d in enumerate(a_shape)))


def _weighted_quantile(w, weights, q, nan_aware):
  """NumPy's weighted 'inverted_cdf' quantiles of the slices of `w` (shape R + (m,)): the
  first sorted entry whose cumulative weight reaches q. Shape Q + R."""
  last_axis, m = len(shape_of(w)) - 1, shape_of(w)[-1]
  order = so.argsort(w, last_axis) if isinstance(w, Tracer) else np.argsort(w, axis=-1)
  s, sw = so.take_along_axis(w, order, last_axis), so.take_along_axis(weights, order, last_axis)
  if nan_aware:
    sw = uf.where(uf.isnan(s), np.zeros((), dtype_of(sw)), sw)
  cdf = rd.cumsum(sw, axis=-1, dtype=np.float64)
  cdf = uf.true_divide(cdf, cdf[..., -1:])
  bad = rd.any(uf.isnan(cdf[..., -1]))
  if not nan_aware and (bad is True or (not isinstance(bad, Tracer) and bad)):
    raise ValueError("Weights included NaN, inf or were all zero.")
  if dtype_of(q).kind == "f":
    cdf = uf.astype(cdf, dtype_of(q))
  cdf = uf.where(uf.equal(cdf, 0), -1, cdf)
  rest, q_shape = shape_of(w)[:-1], shape_of(q)
  targets = _broadcast(_reshape(q, (1,) * len(rest) + q_shape), rest + q_shape)
  index = uf.minimum(so.searchsorted(cdf, targets, "left", len(rest)), m - 1)
  moved = _reshape(index, rest + (math.prod(q_shape),))
  moved = shape_ops.transpose(moved, (len(rest),) + tuple(range(len(rest)))) \
      if isinstance(moved, Tracer) else np.moveaxis(moved, -1, 0)
  return _gather_last(s, _reshape(moved, q_shape + rest))


def _quantile(name, a, q, axis, out, method, keepdims, weights, scale):
  a, q, weak_q = _check_quantile_args(a, q, method, name, scale, weights)
  reject_out(name, out)
  w, axes = _merge_reduced(a, axis)
  m = shape_of(w)[-1]
  if m == 0:
    raise IndexError("index -1 is out of bounds for axis 0 with size 0")
  s = so.sort(w, len(shape_of(w)) - 1) if isinstance(w, Tracer) else np.sort(w, axis=-1)
  if weights is None:
    result = _quantile_sorted(s, m, q, method, weak_q)
  else:
    result = _weighted_quantile(w, _merge_reduced(_weights_like(weights, a, axis), axis)[0],
                                q, False)
  if _inexact(a):
    last = s[..., -1]
    result = uf.where(uf.isnan(last), uf.astype(last, dtype_of(result)), result)
  return _restore_kept(result, shape_of(a), axes, keepdims, len(shape_of(q)))


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None):
  """Differentiable `numpy.quantile` (in `a`, and in `q` through the interpolation weight),
  with all of NumPy's methods, and weights for 'inverted_cdf' (no derivative in them).

  >>> float(dnp.quantile(np.array([1.0, 2.0, 4.0]), 0.75))
  3.0
  """
  if not traced(a, q, weights):
    return np.quantile(a, q, axis, out, overwrite_input, method, keepdims, weights=weights)
  return _quantile("quantile", a, q, axis, out, method, keepdims, weights, False)


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None):
  """Differentiable `numpy.percentile` (see quantile)."""
  if not traced(a, q, weights):
    return np.percentile(a, q, axis, out, overwrite_input, method, keepdims, weights=weights)
  return _quantile("percentile", a, q, axis, out, method, keepdims, weights, True)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
  """Differentiable `numpy.median`: the mean of the middle entries of the sorted slices (NaN
  for slices holding NaN)."""
  if not traced(a):
    return np.median(a, axis, out, overwrite_input, keepdims)
  reject_out("median", out)
  a = arg(a)
  w, axes = _merge_reduced(a, axis)
  last_axis, m = len(shape_of(w)) - 1, shape_of(w)[-1]
  if m == 0:
    result = rd.mean(w, axis=-1)
  else:
    s = so.sort(w, last_axis)
    lo = (m - 1) // 2
    result = rd.mean(shape_ops.slice_in_dim(s, lo, m // 2 + 1, last_axis), axis=-1)
    if _inexact(a):
      top = shape_ops.slice_in_dim(s, m - 1, m, last_axis)
      top = shape_ops.reshape(top, shape_of(top)[:-1])
      result = uf.where(uf.isnan(top), uf.astype(top, dtype_of(result)), result)
  return _restore_kept(result, shape_of(a), axes, keepdims)


# ---- the nan* forms of order statistics -----------------------------------------------------
def _valid_sorted(w):
  """The slices of `w` (shape R + (m,)) sorted with NaNs last and replaced by 0 (so no NaN
  reaches a derivative), and the number of non-NaN entries of each (intp, shape R)."""
  last_axis = len(shape_of(w)) - 1
  nan = uf.isnan(w)
  n = rd.sum(uf.logical_not(nan), axis=-1, dtype=np.intp)
  s = so.sort(w, last_axis) if isinstance(w, Tracer) else np.sort(w, axis=-1)
  valid = uf.less(np.arange(shape_of(w)[-1]), _reshape(n, shape_of(n) + (1,)))
  return uf.where(valid, s, np.zeros((), dtype_of(w))), n


def _all_nan_to_nan(result, n, dtype):
  _warn(uf.equal(n, 0), "All-NaN slice encountered")
  return uf.where(uf.equal(n, 0), np.array(np.nan, dtype), result)


def _nanquantile(name, a, q, axis, out, method, keepdims, weights, scale):
  if math.prod(shape_of(arg(a))) == 0:  # (NumPy's nanmean, integers too: NaN, warned)
    a, q, weak_q = _check_quantile_args(a, q, method, name, scale, weights)
    reject_out(name, out)
    return nanmean(a, axis, keepdims=keepdims)
  if not _inexact(arg(a)):
    return _quantile(name, a, q, axis, out, method, keepdims is True, weights, scale)
  a, q, weak_q = _check_quantile_args(a, q, method, name, scale, weights)
  reject_out(name, out)
  w, axes = _merge_reduced(a, axis)
  s, n = _valid_sorted(w)
  if weights is None:
    result = _quantile_sorted(s, n, q, method, weak_q)
  else:
    weights = _merge_reduced(_weights_like(weights, a, axis), axis)[0]
    result = _weighted_quantile(w, weights, q, True)
  result = _all_nan_to_nan(result, n, dtype_of(result))
  return _restore_kept(result, shape_of(a), axes, keepdims is True, len(shape_of(q)))


def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                keepdims=_NO_VALUE, *, weights=None):
  """Differentiable `numpy.nanquantile`: quantiles of the non-NaN entries (NaN, with NumPy's
  warning, for all-NaN slices); NaN entries get zero derivatives."""
  if not traced(a, q, weights):
    return np.nanquantile(a, q, axis, out, overwrite_input, method, keepdims, weights=weights)
  return _nanquantile("nanquantile", a, q, axis, out, method, keepdims, weights, False)


def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                  keepdims=_NO_VALUE, *, weights=None):
  """Differentiable `numpy.nanpercentile` (see nanquantile)."""
  if not traced(a, q, weights):
    return np.nanpercentile(a, q, axis, out, overwrite_input, method, keepdims,
                            weights=weights)
  return _nanquantile("nanpercentile", a, q, axis, out, method, keepdims, weights, True)


def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=_NO_VALUE):
  """Differentiable `numpy.nanmedian`: the median of the non-NaN entries of each slice."""
  if not traced(a):
    return np.nanmedian(a, axis, out, overwrite_input, keepdims)
  reject_out("nanmedian", out)
  a = arg(a)
  keepdims = keepdims is True
  if not _inexact(a):
    return median(a, axis, keepdims=keepdims)
  if math.prod(shape_of(a)) == 0:
    return nanmean(a, axis, keepdims=keepdims)
  w, axes = _merge_reduced(a, axis)
  s, n = _valid_sorted(w)
  lo = _gather_last(s, uf.maximum((n - 1) // 2, 0))
  hi = _gather_last(s, n // 2)
  pair = shape_ops.concatenate([shape_ops.reshape(v, shape_of(v) + (1,)) for v in (lo, hi)],
                               len(shape_of(lo)))
  mean = rd.mean(pair, axis=-1)
  result = uf.where(uf.equal(n % 2, 1), uf.astype(lo, dtype_of(mean)), mean)
  result = _all_nan_to_nan(result, n, dtype_of(result))
  return _restore_kept(result, shape_of(a), axes, keepdims)


# ---- nan* reductions --------------------------------------------------------------------------
def _replace_nan(a, value):
  """NumPy's `_replace_nan`: `a` with NaNs replaced by `value`, and the NaN mask (None for
  dtypes that hold no NaN)."""
  a = arg(a)
  if not _inexact(a):
    return a, None
  mask = uf.isnan(a)
  return uf.where(mask, np.array(value, dtype_of(a)), a), mask


def _nan_replaced(name, np_fun, reduce, value):
  def fn(a, axis=None, dtype=None, out=None, keepdims=_NO_VALUE, initial=_NO_VALUE,
         where=_NO_VALUE):
    if not traced(a, initial, where):
      return np_fun(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, initial=initial,
                    where=where)
    reject_out(name, out)
    a, _ = _replace_nan(a, value)
    return reduce(a, axis=axis, dtype=dtype, **_given(keepdims=keepdims, initial=initial,
                                                      where=where))
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}` (NaN entries count as {value}; their " \
               "derivative is zero)."
  return fn


nansum = _nan_replaced("nansum", np.nansum, rd.sum, 0)
nanprod = _nan_replaced("nanprod", np.nanprod, rd.prod, 1)


def _nan_cumulative(name, np_fun, cumulative, value):
  def fn(a, axis=None, dtype=None, out=None):
    if not traced(a):
      return np_fun(a, axis=axis, dtype=dtype, out=out)
    reject_out(name, out)
    return cumulative(_replace_nan(a, value)[0], axis=axis, dtype=dtype)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}` (NaN entries count as {value})."
  return fn


nancumsum = _nan_cumulative("nancumsum", np.nancumsum, rd.cumsum, 0)
nancumprod = _nan_cumulative("nancumprod", np.nancumprod, rd.cumprod, 1)


def _check_inexact(dtype):
  if dtype is not None and not issubclass(np.dtype(dtype).type, np.inexact):
    raise TypeError("If a is inexact, then dtype must be inexact")


def _safe_divide(total, count):
  """total / count cast to total's dtype (NumPy's `_divide_by_count`), with a constant NaN
  where count <= 0, so that no 0/0 reaches a derivative."""
  bad = uf.less_equal(count, 0)
  quotient = uf.astype(uf.true_divide(total, uf.where(bad, 1, count)), dtype_of(total))
  return uf.where(bad, np.array(np.nan, dtype_of(total)), quotient)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=_NO_VALUE, *, where=_NO_VALUE):
  """Differentiable `numpy.nanmean` (NaN, with NumPy's warning, for slices with no number)."""
  if not traced(a, where):
    return np.nanmean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=where)
  reject_out("nanmean", out)
  arr, mask = _replace_nan(a, 0)
  kw = _given(keepdims=keepdims, where=where)
  if mask is None:
    return rd.mean(arr, axis=axis, dtype=dtype, **kw)
  _check_inexact(dtype)
  cnt = rd.sum(uf.logical_not(mask), axis=axis, dtype=np.intp, **kw)
  tot = rd.sum(arr, axis=axis, dtype=dtype, **kw)
  _warn(uf.equal(cnt, 0), "Mean of empty slice")
  return _safe_divide(tot, cnt)


def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=_NO_VALUE, *,
           where=_NO_VALUE, mean=_NO_VALUE, correction=_NO_VALUE):
  """Differentiable `numpy.nanvar`, computed as NumPy computes it."""
  if not traced(a, where, mean):
    return np.nanvar(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                     where=where, mean=mean, correction=correction)
  reject_out("nanvar", out)
  arr, mask = _replace_nan(a, 0)
  if mask is None:
    return rd.var(arr, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims is True,
                  **_given(where=where, mean=mean, correction=correction))
  _check_inexact(dtype)
  if correction is not _NO_VALUE:
    if ddof != 0:
      raise ValueError("ddof and correction can't be provided simultaneously.")
    ddof = correction
  kw = _given(where=where)
  cnt = rd.sum(uf.logical_not(mask), axis=axis, dtype=np.intp, keepdims=True, **kw)
  avg = arg(mean) if mean is not _NO_VALUE else \
      _safe_divide(rd.sum(arr, axis=axis, dtype=dtype, keepdims=True, **kw), cnt)
  deviation = uf.astype(uf.subtract(arr, avg), dtype_of(arr))
  if where is not _NO_VALUE:
    deviation = uf.where(where, deviation, arr)
  deviation = uf.where(mask, np.zeros((), dtype_of(arr)), deviation)
  var = rd.sum(rd.abs2(deviation), axis=axis, dtype=dtype,
               keepdims=keepdims is True, **kw)
  if len(shape_of(var)) < len(shape_of(cnt)):
    cnt = _reshape(cnt, shape_of(var))
  dof = uf.subtract(cnt, ddof)
  _warn(uf.less_equal(dof, 0), "Degrees of freedom <= 0 for slice.")
  return _safe_divide(var, dof)


def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=_NO_VALUE, *,
           where=_NO_VALUE, mean=_NO_VALUE, correction=_NO_VALUE):
  """Differentiable `numpy.nanstd`: sqrt(nanvar), with a zero derivative where the variance
  is zero."""
  if not traced(a, where, mean):
    return np.nanstd(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                     where=where, mean=mean, correction=correction)
  reject_out("nanstd", out)
  var = nanvar(a, axis, dtype, None, ddof, keepdims, where=where, mean=mean,
               correction=correction)
  if not _inexact(var):
    return uf.sqrt(var)
  zero = uf.equal(var, 0)
  return uf.where(zero, np.zeros((), dtype_of(var)),
                  uf.sqrt(uf.where(zero, np.ones((), dtype_of(var)), var)))


def _nan_extremum(name, np_fun, reduce, fill):
  def fn(a, axis=None, out=None, keepdims=_NO_VALUE, initial=_NO_VALUE, where=_NO_VALUE):
    if not traced(a, initial, where):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims, initial=initial, where=where)
    reject_out(name, out)
    arr, mask = _replace_nan(a, fill)
    kw = _given(keepdims=keepdims, where=where)
    result = reduce(arr, axis=axis, **kw, **_given(initial=initial))
    if mask is None or initial is not _NO_VALUE:
      return result
    all_nan = rd.all(mask, axis=axis, **kw)
    _warn(all_nan, "All-NaN slice encountered")
    return uf.where(all_nan, np.array(np.nan, dtype_of(result)), result)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"Differentiable `numpy.{name}`: NaN entries are ignored (zero derivative); "
                "all-NaN slices give NaN with NumPy's warning.")
  return fn


nanmin = _nan_extremum("nanmin", np.nanmin, rd.min, np.inf)
nanmax = _nan_extremum("nanmax", np.nanmax, rd.max, -np.inf)


def _concrete_or_none(x, purpose):
  """The concrete value of `x`, or None where a transformation hides it."""
  if not isinstance(x, Tracer):
    return x
  try:
    return x.concrete_value(purpose)
  except errors.ConcretizationError:
    return None


def _nan_arg_extremum(name, np_fun, reduce, fill):
  def fn(a, axis=None, out=None, *, keepdims=_NO_VALUE):
    if not traced(a):
      return np_fun(a, axis=axis, out=out, keepdims=keepdims)
    reject_out(name, out)
    arr, mask = _replace_nan(a, fill)
    result = reduce(arr, axis=axis, keepdims=keepdims is True)
    if mask is None or not math.prod(shape_of(mask)):
      return result
    all_nan = rd.all(mask, axis=axis, keepdims=keepdims is True)
    concrete_all_nan = _concrete_or_none(all_nan, name)
    if concrete_all_nan is None:
      # (under jit or vmap: checked where the values are computed; the result depends on the
      # check, so that it is kept)
      numbers = checks.check(uf.logical_not(all_nan), "nonzero", "ValueError",
                             "All-NaN slice encountered")
      return uf.where(numbers, result, np.intp(-1))
    if np.any(concrete_all_nan):
      raise ValueError("All-NaN slice encountered")
    return result
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"`numpy.{name}` on traced values. An all-NaN slice raises NumPy's "
                "ValueError, under jit and vmap too (when the compiled code or the batch "
                "computes it).")
  return fn


nanargmin = _nan_arg_extremum("nanargmin", np.nanargmin, rd.argmin, np.inf)
nanargmax = _nan_arg_extremum("nanargmax", np.nanargmax, rd.argmax, -np.inf)
