"""Numerical routines of `dfdx.numpy`: cross, convolve, correlate, interp, trapezoid, cov,
corrcoef, histogram (and histogram_bin_edges, histogram2d, histogramdd), bincount, digitize,
ediff1d, vander, the polynomial functions (polyval, polyfit, polyadd, polysub, polymul,
polydiv, polyder, polyint, poly), cumulative_sum, cumulative_prod, vecdot, matvec, vecmat.

With no traced argument every function calls NumPy. Traced calls follow NumPy's algorithms
with dfdx's functions, so values and dtypes are NumPy's and derivatives flow to every
floating argument, except where noted: bin edges, bin indices and the sample points `x` of
polyfit must be concrete (they decide shapes, or enter only through NumPy's least squares).
Arguments are checked by running NumPy on zero-stride stand-ins of the same shapes and
dtypes, so invalid ones raise NumPy's own errors. This module holds no derivative rules.
"""
from __future__ import annotations

import operator
import warnings

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from dfdx._src import errors
from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import indexing as ix
from dfdx._src.ops import sorting as so
from dfdx._src.numpy import contractions as ct
from dfdx._src.numpy import creation as cr
from dfdx._src.numpy import indexing as ixn
from dfdx._src.numpy import manipulation as mp
from dfdx._src.numpy import reductions as rd
from dfdx._src.numpy import ufuncs as uf
from dfdx._src.numpy.sorting import concrete, traced
from dfdx._src.numpy.util import arg, dtype as dtype_of, reject_out, shape as shape_of, \
    strong

__all__ = ["cross", "convolve", "correlate", "interp", "trapezoid", "cov", "corrcoef",
           "histogram", "histogram_bin_edges", "histogram2d", "histogramdd", "bincount",
           "digitize", "ediff1d", "vander", "polyval", "polyfit", "polyadd", "polysub",
           "polymul", "polydiv", "polyder", "polyint", "poly", "cumulative_sum",
           "cumulative_prod", "vecdot", "matvec", "vecmat"]


def _probe(x):
  """A zero-stride stand-in of `x` (same shape and dtype, no memory): NumPy runs on it to
  check arguments and give result shapes and dtypes."""
  x = arg(x)
  if isinstance(x, Tracer):
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)
  return x if type(x) in (bool, int, float, complex) else np.asarray(x)


def _operand(x):
  x = arg(x)
  return strong(x) if isinstance(x, Tracer) else np.asarray(x)  # (what asarray makes)


def _ndim(x):
  return len(shape_of(x))


def _real(x, name):
  if dtype_of(x).kind == "c":
    raise TypeError(f"dfdx.numpy.{name}: complex traced values are not supported yet.")
  return x


# ---- cross --------------------------------------------------------------------------------
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
  """Differentiable `numpy.cross` (of 3-vectors, or NumPy's deprecated 2-vectors)."""
  if not traced(a, b):
    return np.cross(a, b, axisa, axisb, axisc, axis)
  a, b = _real(_operand(a), "cross"), _real(_operand(b), "cross")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    np.cross(_probe(a), _probe(b), axisa, axisb, axisc, axis)  # NumPy's errors
  if axis is not None:
    axisa, axisb, axisc = (axis,) * 3
  a = mp.moveaxis(a, axisa, -1)
  b = mp.moveaxis(b, axisb, -1)
  na, nb = shape_of(a)[-1], shape_of(b)[-1]
  if na == 2 or nb == 2:
    warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                  "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                  DeprecationWarning, stacklevel=2)
  dtype = np.promote_types(dtype_of(a), dtype_of(b))
  a, b = uf.astype(a, dtype), uf.astype(b, dtype)
  a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
  cp2 = uf.subtract(uf.multiply(a0, b1), uf.multiply(a1, b0))
  if na == 2 and nb == 2:
    return cp2
  if na == 2:
    b2 = b[..., 2]
    cp0, cp1 = uf.multiply(a1, b2), uf.negative(uf.multiply(a0, b2))
  elif nb == 2:
    a2 = a[..., 2]
    cp0, cp1 = uf.negative(uf.multiply(a2, b1)), uf.multiply(a2, b0)
  else:
    a2, b2 = a[..., 2], b[..., 2]
    cp0 = uf.subtract(uf.multiply(a1, b2), uf.multiply(a2, b1))
    cp1 = uf.subtract(uf.multiply(a2, b0), uf.multiply(a0, b2))
  parts = mp.broadcast_arrays(cp0, cp1, cp2)
  return mp.moveaxis(mp.stack(parts, axis=-1), -1, axisc)


# ---- convolve, correlate ------------------------------------------------------------------
def _correlate_full(a, v):
  """c[i] = sum_n a[n + i - (len(v) - 1)] v[n] for i < len(a) + len(v) - 1 (a zero outside):
  a gather of the zero-padded `a` (an n x m Toeplitz matrix) times v."""
  n, m = shape_of(a)[0], shape_of(v)[0]
  padded = mp.pad(a, (m - 1, m - 1))
  windows = ixn.take(padded, np.arange(n + m - 1)[:, None] + np.arange(m)[None, :])
  return ct.dot(windows, v)


def _correlate(a, v, mode, name):
  a, v = _real(_operand(a), name), _real(_operand(v), name)
  getattr(np, name)(_probe(a), _probe(v), mode)  # NumPy's errors
  n, m = shape_of(a)[0], shape_of(v)[0]
  if name == "convolve":
    a, v = (v, a) if m > n else (a, v)
    v = mp.flip(v)
    n, m = shape_of(a)[0], shape_of(v)[0]
  dtype = np.result_type(dtype_of(a), dtype_of(v))
  full = _correlate_full(uf.astype(a, dtype), uf.astype(v, dtype))
  if mode == "full":
    return full
  if mode == "same":
    start, size = ((m - 1) // 2 if n >= m else n // 2), max(n, m)
  else:
    start, size = min(n, m) - 1, abs(n - m) + 1
  return full[start:start + size]


def convolve(a, v, mode="full"):
  """Differentiable `numpy.convolve` (1-D; modes 'full', 'same', 'valid')."""
  if not traced(a, v):
    return np.convolve(a, v, mode)
  return _correlate(mp.atleast_1d(_operand(a)), mp.atleast_1d(_operand(v)), mode, "convolve")


def correlate(a, v, mode="valid"):
  """Differentiable `numpy.correlate` (1-D; modes 'valid', 'same', 'full')."""
  if not traced(a, v):
    return np.correlate(a, v, mode)
  return _correlate(a, v, mode, "correlate")


# ---- interp -------------------------------------------------------------------------------
def _interp(x, xp, fp, left, right, reciprocal=False):
  """NumPy's compiled interp: linear between the sample points, left/right outside them.
  `reciprocal` computes slopes as NumPy's complex interp does, times 1 / (x1 - x0)."""
  n = shape_of(xp)[0]
  if n == 1:
    return uf.where(uf.less(x, xp[0]), left, uf.where(uf.greater(x, xp[0]), right, fp[0]))
  j = uf.subtract(so.searchsorted(xp, x, "right"), 1)
  jc = uf.minimum(uf.maximum(j, 0), n - 2)
  x0, x1 = ixn.take(xp, jc), ixn.take(xp, uf.add(jc, 1))
  y0, y1 = ixn.take(fp, jc), ixn.take(fp, uf.add(jc, 1))
  slope = uf.multiply(uf.subtract(y1, y0), uf.divide(1.0, uf.subtract(x1, x0))) if reciprocal \
      else uf.divide(uf.subtract(y1, y0), uf.subtract(x1, x0))
  value = uf.add(uf.multiply(slope, uf.subtract(x, x0)), y0)
  other = uf.add(uf.multiply(slope, uf.subtract(x, x1)), y1)  # NumPy's retry if NaN
  other = uf.where(uf.logical_and(uf.isnan(other), uf.equal(y0, y1)), y0, other)
  value = uf.where(uf.isnan(value), other, value)
  value = uf.where(uf.logical_and(uf.equal(x, x0), uf.logical_not(uf.isfinite(slope))), y0,
                   value)
  value = uf.where(uf.greater(x, xp[n - 1]), right, uf.where(uf.equal(j, n - 1), fp[n - 1],
                                                             value))
  value = uf.where(uf.less(j, 0), left, value)
  return uf.where(uf.isnan(x), x, value)


def interp(x, xp, fp, left=None, right=None, period=None):
  """Differentiable `numpy.interp` (in x, fp, left, right and the sample points xp, which
  must be increasing; at a sample point the derivative in x is the slope on its right).
  A complex `fp` (or `left`, `right`) gives a complex result: its real and imaginary parts
  are interpolated apart, as NumPy does."""
  if not traced(x, xp, fp, left, right, period):
    return np.interp(x, xp, fp, left, right, period)
  x, xp = (_real(uf.astype(_operand(v), np.float64), "interp") for v in (x, xp))
  fp = _operand(fp)
  dtype = np.complex128 if dtype_of(fp).kind == "c" else np.float64
  fp = uf.astype(fp, dtype)
  np.interp(np.zeros(()), _probe(xp), _probe(fp))  # NumPy's errors
  if period is not None:
    period = concrete(period, "interp's period")
    if period == 0:
      raise ValueError("period must be a non-zero value")
    period, left, right = abs(period), None, None
    x, xp = uf.mod(x, period), uf.mod(xp, period)
    order = so.argsort(xp, 0)
    xp, fp = ixn.take(xp, order), ixn.take(fp, order)
    xp = mp.concatenate((uf.subtract(xp[-1:], period), xp, uf.add(xp[0:1], period)))
    fp = mp.concatenate((fp[-1:], fp, fp[0:1]))
  left = fp[0] if left is None else uf.astype(_operand(left), dtype)
  right = fp[-1] if right is None else uf.astype(_operand(right), dtype)
  if dtype == np.float64:
    return _interp(x, xp, fp, left, right)
  parts = [_interp(x, xp, part(fp), part(left), part(right), reciprocal=True)
           for part in (uf.real, uf.imag)]
  return uf.add(parts[0], uf.multiply(parts[1], 1j))


# ---- trapezoid ----------------------------------------------------------------------------
def trapezoid(y, x=None, dx=1.0, axis=-1):
  """Differentiable `numpy.trapezoid` (in y, x and dx)."""
  if not traced(y, x, dx):
    return np.trapezoid(y, x, dx, axis)
  y = _operand(y)
  nd = _ndim(y)
  if x is None:
    d = _operand(dx) if traced(dx) else dx
  else:
    x = _operand(x)
    if _ndim(x) == 1:
      d = mp.diff(x)
      shape = [1] * nd
      shape[axis] = shape_of(d)[0]
      d = mp.reshape(d, shape)
    else:
      d = mp.diff(x, axis=axis)
  upper = [slice(None)] * nd
  lower = [slice(None)] * nd
  upper[axis], lower[axis] = slice(1, None), slice(None, -1)
  total = uf.add(y[tuple(upper)], y[tuple(lower)])
  return rd.sum(uf.true_divide(uf.multiply(d, total), 2.0), axis=axis)


# ---- cov, corrcoef ------------------------------------------------------------------------
def _concrete_or_none(x, purpose):
  try:
    return concrete(x, purpose)
  except errors.ConcretizationError:
    return None


def _weights(w, n, name, integer):
  """cov's fweights or aweights, with NumPy's checks (on concrete values where known)."""
  w = uf.astype(_operand(w), np.float64)
  wc = _concrete_or_none(w, f"cov's {name}")
  if integer and wc is not None and not np.all(wc == np.around(wc)):
    raise TypeError(f"{name} must be integer")
  if _ndim(w) > 1:
    raise RuntimeError(f"cannot handle multidimensional {name}")
  if shape_of(w)[0] != n:
    raise RuntimeError(f"incompatible numbers of samples and {name}")
  if wc is not None and np.any(wc < 0):
    raise ValueError(f"{name} cannot be negative")
  return w


def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
  """Differentiable `numpy.cov` (in the data and the weights; of complex data, Hermitian:
  X @ X^H)."""
  if not traced(m, y, fweights, aweights):
    return np.cov(m, y, rowvar, bias, ddof, fweights, aweights, dtype=dtype)
  if ddof is not None and ddof != int(ddof):
    raise ValueError("ddof must be integer")
  m = _operand(m)
  if _ndim(m) > 2:
    raise ValueError("m has more than 2 dimensions")
  if y is not None:
    y = _operand(y)
    if _ndim(y) > 2:
      raise ValueError("y has more than 2 dimensions")
  if dtype is None:
    dtype = np.result_type(*[dtype_of(v) for v in (m, y) if v is not None], np.float64)
  X = cr.array(m, ndmin=2, dtype=dtype)
  if not rowvar and _ndim(m) != 1:
    X = mp.transpose(X)
  if shape_of(X)[0] == 0:
    return np.array([]).reshape(0, 0)
  if y is not None:
    y = cr.array(y, ndmin=2, dtype=dtype)
    if not rowvar and shape_of(y)[0] != 1:
      y = mp.transpose(y)
    X = mp.concatenate((X, y), axis=0)
  if ddof is None:
    ddof = 1 if bias == 0 else 0
  n = shape_of(X)[1]
  w = None if fweights is None else _weights(fweights, n, "fweights", True)
  if aweights is not None:
    aweights = _weights(aweights, n, "aweights", False)
    w = aweights if w is None else uf.multiply(w, aweights)
  avg, w_sum = rd.average(X, axis=1, weights=w, returned=True)
  w_sum = w_sum[0]
  if w is None:
    fact = n - ddof
  elif ddof == 0:
    fact = w_sum
  elif aweights is None:
    fact = uf.subtract(w_sum, ddof)
  else:
    fact = uf.subtract(w_sum, uf.true_divide(uf.multiply(ddof, rd.sum(uf.multiply(w, aweights))),
                                             w_sum))
  fact = _degrees_of_freedom(fact)
  X = uf.subtract(X, avg[:, None])
  X_T = mp.transpose(X if w is None else uf.multiply(X, w))
  c = uf.multiply(ct.dot(X, uf.conjugate(X_T)), uf.true_divide(1, fact))
  return mp.squeeze(c)


def _degrees_of_freedom(fact):
  """cov's normalization, 0.0 with NumPy's warning where it is not positive."""
  fc = _concrete_or_none(fact, "cov")
  if fc is not None and fc <= 0:
    warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=3)
    return 0.0
  if isinstance(fact, Tracer):
    return uf.where(uf.less_equal(fact, 0), 0.0, fact)
  return fact


def corrcoef(x, y=None, rowvar=True, *, dtype=None):
  """Differentiable `numpy.corrcoef` (clipped to [-1, 1], as NumPy does; the real and
  imaginary parts of complex values apart)."""
  if not traced(x, y):
    return np.corrcoef(x, y, rowvar, dtype=dtype)
  c = cov(x, y, rowvar, dtype=dtype)
  if _ndim(c) != 2:
    return uf.divide(c, c)
  stddev = uf.sqrt(uf.real(ct.diagonal(c)))
  c = uf.divide(uf.divide(c, stddev[:, None]), stddev[None, :])
  if dtype_of(c).kind == "c":  # (NumPy clips the real and imaginary parts apart)
    return ew.complex(uf.clip(uf.real(c), -1, 1), uf.clip(uf.imag(c), -1, 1))
  return uf.clip(c, -1, 1)


# ---- histograms, bincount, digitize -------------------------------------------------------
_HIST_FIX = ("The number of bins is decided by the values here; pass an integer number of "
             "bins or explicit bin edges.")


def _scatter_sum(values, bins, n, dtype):
  """out[k] = sum of values[i] with bins[i] == k (bins concrete or traced)."""
  return ix.scatter_add(np.zeros((n,), dtype), uf.astype(values, dtype), [bins],
                        (ix.ArrayIndex(0),))


def _outer_edges(a, range):  # noqa: A002  (NumPy's name)
  """NumPy's `_get_outer_edges` for traced data (range checked on concrete values)."""
  if range is not None:
    first, last = range
    np.histogram_bin_edges(np.empty(0), 1, tuple(  # NumPy's errors
        float(concrete(r, "histogram's range")) for r in range))
    first, last = (r if traced(r) else r for r in (first, last))
  elif shape_of(a)[0] == 0:
    first, last = 0, 1
  else:
    first, last = rd.min(a), rd.max(a)
  same = uf.equal(first, last)
  if not traced(same):
    return (first - 0.5, last + 0.5) if same else (first, last)
  return uf.where(same, uf.subtract(first, 0.5), first), uf.where(same, uf.add(last, 0.5), last)


def _bin_edges(a, bins, range):  # noqa: A002
  """The bin edges: explicit ones (concrete or traced), or `bins` equal bins of the range."""
  if np.ndim(bins) == 1 or traced(bins):
    edges = _operand(bins)
    if _ndim(edges) != 1:
      raise ValueError("`bins` must be 1d, when an array")
    if not traced(edges) and np.any(edges[:-1] > edges[1:]):
      raise ValueError("`bins` must increase monotonically, when an array")
    return edges
  np.histogram_bin_edges(np.empty(0), bins)  # NumPy's errors for bins
  first, last = _outer_edges(a, range)
  dtype = np.result_type(*[v if type(v) in (int, float) else np.empty(0, dtype_of(v))
                           for v in (first, last, a)])
  if np.issubdtype(dtype, np.integer):
    dtype = np.result_type(dtype, float)
  return cr.linspace(first, last, operator.index(bins) + 1, endpoint=True, dtype=dtype)


def histogram(a, bins=10, range=None, density=None, weights=None):  # noqa: A002
  """`numpy.histogram` on traced values: the counts have zero derivative; traced weights give
  a histogram differentiable in the weights, and equal bins of the data's range have edges
  differentiable in the data. Bins chosen by name ('auto', ...) need concrete data."""
  if not traced(a, bins, range, weights):
    return np.histogram(a, bins, range, density, weights)
  a = mp.ravel(_real(_operand(a), "histogram"))
  if isinstance(bins, str):
    bins = np.histogram_bin_edges(concrete(a, "histogram", _HIST_FIX), bins, range)
  edges = _bin_edges(a, bins, range)
  n = shape_of(edges)[0] - 1
  if weights is None:
    values, dtype = np.ones((), np.intp), np.dtype(np.intp)
  else:
    values = mp.ravel(_operand(weights))
    if shape_of(values) != shape_of(a):
      raise ValueError("weights should have the same shape as a.")
    dtype = dtype_of(values)
  a = uf.astype(a, dtype_of(edges))
  index = uf.subtract(so.searchsorted(edges, a, "right"), 1)
  index = uf.where(uf.equal(a, edges[n]), n - 1, index)
  inside = uf.logical_and(uf.greater_equal(a, edges[0]), uf.less_equal(a, edges[n]))
  values = uf.where(inside, values, np.zeros((), dtype))
  hist = _scatter_sum(mp.broadcast_to(values, shape_of(a)), uf.clip(index, 0, n - 1), n, dtype)
  if density:
    widths = uf.astype(mp.diff(edges), float)
    return uf.true_divide(uf.true_divide(hist, widths), rd.sum(hist)), edges
  return hist, edges


def _concrete_only(name):
  np_fun = getattr(np, name)

  def fn(*args, **kwargs):
    args = [concrete(v, name, _HIST_FIX) if traced(v) else v for v in args]
    kwargs = {k: concrete(v, name, _HIST_FIX) if traced(v) else v for k, v in kwargs.items()}
    return np_fun(*args, **kwargs)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"`numpy.{name}` (values only: traced arguments must be concrete, and the "
                "result has no derivative).")
  return fn


histogram_bin_edges = _concrete_only("histogram_bin_edges")
histogram2d = _concrete_only("histogram2d")
histogramdd = _concrete_only("histogramdd")


def bincount(x, /, weights=None, minlength=0):
  """`numpy.bincount` (`x` must be concrete); traced weights give a result differentiable in
  the weights."""
  if not traced(x, weights):
    return np.bincount(x, weights, minlength)
  xc = concrete(x, "bincount", "The length of the result is decided by the values of x.")
  if not traced(weights):
    return np.bincount(xc, weights, minlength)
  w = _operand(weights)
  n = np.bincount(xc, _probe(w), minlength).shape[0]  # NumPy's errors
  return _scatter_sum(mp.ravel(w), np.ravel(xc), n, np.float64)


def digitize(x, bins, right=False):
  """`numpy.digitize` on traced values (an integer result, zero derivative). Traced bins may
  be increasing or decreasing (chosen by their values)."""
  if not traced(x, bins):
    return np.digitize(x, bins, right)
  x, bins = _operand(x), _operand(bins)
  if dtype_of(x).kind == "c":
    raise TypeError("x may not be complex")
  side = "left" if right else "right"
  n = shape_of(bins)[0] if _ndim(bins) else 0
  if not isinstance(bins, Tracer):
    np.digitize(np.zeros((), dtype_of(x)), bins, right)  # NumPy's monotonicity check
    if n > 1 and bins[-1] < bins[0]:
      return uf.subtract(n, so.searchsorted(bins[::-1], x, side))
    return so.searchsorted(bins, x, side)
  increasing = rd.all(uf.greater_equal(mp.diff(bins), 0))
  up = so.searchsorted(bins, x, side)
  down = uf.subtract(n, so.searchsorted(mp.flip(bins), x, side))
  return uf.where(increasing, up, down)


# ---- ediff1d, vander ----------------------------------------------------------------------
def ediff1d(ary, to_end=None, to_begin=None):
  """Differentiable `numpy.ediff1d` (also in to_begin and to_end)."""
  if not traced(ary, to_end, to_begin):
    return np.ediff1d(ary, to_end, to_begin)
  ary = mp.ravel(_operand(ary))
  dtype = dtype_of(ary)
  pieces = [uf.subtract(ary[1:], ary[:-1])]
  for name, edge, at_end in (("to_begin", to_begin, False), ("to_end", to_end, True)):
    if edge is None:
      continue
    edge = _operand(edge)
    if not np.can_cast(np.empty(0, dtype_of(edge)), dtype, casting="same_kind"):
      raise TypeError(f"dtype of `{name}` must be compatible with input `ary` under the "
                      "`same_kind` rule.")
    edge = uf.astype(mp.ravel(edge), dtype)
    pieces = pieces + [edge] if at_end else [edge] + pieces
  return mp.concatenate([uf.astype(p, dtype) for p in pieces])


def vander(x, N=None, increasing=False):
  """Differentiable `numpy.vander`: the powers are running products, as NumPy computes
  them."""
  if not traced(x):
    return np.vander(x, N, increasing)
  x = _operand(x)
  if _ndim(x) != 1:
    raise ValueError("x must be a one-dimensional array or sequence.")
  n = shape_of(x)[0]
  N = n if N is None else N
  dtype = np.promote_types(dtype_of(x), int)
  x = uf.astype(x, dtype)
  if N <= 0:
    return np.empty((n, max(N, 0)), dtype)
  ones = np.ones((n, 1), dtype)
  columns = [ones]
  if N > 1:
    columns.append(rd.cumprod(mp.broadcast_to(x[:, None], (n, N - 1)), axis=1))
  v = mp.concatenate(columns, axis=1)
  return v if increasing else mp.flip(v, axis=1)


# ---- polynomials --------------------------------------------------------------------------
def polyval(p, x):
  """Differentiable `numpy.polyval` (Horner's scheme, as NumPy)."""
  if not traced(p, x) or isinstance(x, np.poly1d) or isinstance(p, np.poly1d):
    return np.polyval(p, x)
  p, x = _operand(p), _operand(x)
  y = cr.zeros_like(x)
  for i in range(shape_of(p)[0] if _ndim(p) else 0):
    y = uf.add(uf.multiply(y, x), p[i])
  return y



def polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False):
  """`numpy.polyfit`, differentiable in y (the coefficients are a linear map of y, which
  NumPy's least squares gives); x and w must be concrete."""
  if not traced(x, y, w):
    return np.polyfit(x, y, deg, rcond, full, w, cov)
  fix = "polyfit differentiates with respect to y only."
  x = concrete(x, "polyfit's x", fix) + 0.0
  w = None if w is None else concrete(w, "polyfit's w", fix) + 0.0
  y = uf.add(_operand(y), 0.0)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", np.exceptions.RankWarning)
    np.polyfit(x, _probe(y), deg, rcond, False, w)  # NumPy's errors (on zeros)
  order = int(deg) + 1
  rcond = len(x) * np.finfo(x.dtype).eps if rcond is None else rcond
  lhs = np.vander(x, order)
  rhs = y
  if w is not None:
    lhs = lhs * w[:, None]
    rhs = uf.multiply(rhs, w[:, None] if _ndim(y) == 2 else w)
  scale = np.sqrt((lhs * lhs).sum(axis=0))
  lhs = lhs / scale
  solver, rank, s = _least_squares_operator(lhs, rcond)
  c = ct.dot(solver, rhs)
  c = mp.transpose(uf.true_divide(mp.transpose(c), scale))
  if rank != order and not full:
    warnings.warn("Polyfit may be poorly conditioned", np.exceptions.RankWarning, stacklevel=2)
  resids = _residuals(lhs, rhs, uf.multiply(c, scale if _ndim(y) == 1 else scale[:, None]))
  if rank != order or len(x) <= order:
    resids = np.array([])
  if full:
    return c, resids, rank, s, rcond
  if not cov:
    return c
  return c, _polyfit_cov(lhs, scale, resids, len(x), order, cov, _ndim(y))


def _least_squares_operator(lhs, rcond):
  """The matrix mapping b to NumPy's least-squares solution of lhs @ c = b (singular values
  below rcond times the largest are dropped, as lstsq does), the rank, the singular values."""
  u, s, vt = np.linalg.svd(lhs, full_matrices=False)
  kept = s > rcond * s[0]
  return (vt[kept].T / s[kept]) @ u[:, kept].T, int(kept.sum()), s


def _polyfit_cov(lhs, scale, resids, n, order, cov, y_ndim):
  base = np.linalg.inv(lhs.T @ lhs) / np.outer(scale, scale)
  if cov == "unscaled":
    fac = 1
  else:
    if n <= order:
      raise ValueError("the number of data points must exceed order to scale the covariance "
                       "matrix")
    fac = uf.true_divide(resids, n - order)
  return uf.multiply(base if y_ndim == 1 else base[:, :, None], fac)


def _residuals(lhs, rhs, c):
  """The sums of squared residuals that NumPy's least squares reports (one per column)."""
  residual = uf.subtract(rhs, ct.dot(lhs, c))
  sums = rd.sum(uf.multiply(residual, residual), axis=0)
  return mp.reshape(sums, (1,)) if _ndim(rhs) == 1 else sums


def _poly_operands(a1, a2):
  return mp.atleast_1d(_operand(a1)), mp.atleast_1d(_operand(a2))


def _padded_pair(a1, a2):
  diff = shape_of(a2)[0] - shape_of(a1)[0]
  if diff > 0:
    a1 = mp.concatenate((np.zeros(diff, dtype_of(a1)), a1))
  elif diff < 0:
    a2 = mp.concatenate((np.zeros(-diff, dtype_of(a2)), a2))
  return a1, a2


def polyadd(a1, a2):
  """Differentiable `numpy.polyadd`."""
  if not traced(a1, a2) or isinstance(a1, np.poly1d) or isinstance(a2, np.poly1d):
    return np.polyadd(a1, a2)
  return uf.add(*_padded_pair(*_poly_operands(a1, a2)))


def polysub(a1, a2):
  """Differentiable `numpy.polysub`."""
  if not traced(a1, a2) or isinstance(a1, np.poly1d) or isinstance(a2, np.poly1d):
    return np.polysub(a1, a2)
  return uf.subtract(*_padded_pair(*_poly_operands(a1, a2)))


def _trim_leading_zeros(p):
  """poly1d's coefficients: leading zeros dropped, [0] if all are. Where the values are not
  concrete (under vmap or jit) nothing is dropped."""
  p = mp.atleast_1d(_operand(p))
  if _ndim(p) != 1:
    raise ValueError("Polynomial must be 1d only.")
  values = _concrete_or_none(p, "polymul")
  if values is None:
    return p
  nonzero = np.flatnonzero(values)
  return p[int(nonzero[0]):] if len(nonzero) else p[:1] * 0


def polymul(a1, a2):
  """Differentiable `numpy.polymul`. Leading zero coefficients are dropped (as NumPy's
  poly1d does) where the values are concrete; under vmap or jit they are kept, and the
  product has as many leading zeros."""
  if not traced(a1, a2) or isinstance(a1, np.poly1d) or isinstance(a2, np.poly1d):
    return np.polymul(a1, a2)
  return convolve(_trim_leading_zeros(a1), _trim_leading_zeros(a2))


def polydiv(u, v):
  """Differentiable `numpy.polydiv`: (quotient, remainder), NumPy's long division. The
  remainder's leading (near-)zeros are dropped as NumPy drops them where the values are
  concrete; under vmap or jit only the entries that the division cancels are dropped."""
  if not traced(u, v) or isinstance(u, np.poly1d) or isinstance(v, np.poly1d):
    return np.polydiv(u, v)
  u, v = uf.add(mp.atleast_1d(_operand(u)), 0.0), uf.add(mp.atleast_1d(_operand(v)), 0.0)
  dtype = dtype_of(uf.add(u[0], v[0]))
  m, n = shape_of(u)[0] - 1, shape_of(v)[0] - 1
  scale = uf.true_divide(1.0, v[0])
  r = [uf.astype(u[i], dtype) for i in range(m + 1)]
  q = [np.zeros((), dtype)] * max(m - n + 1, 1)
  for k in range(m - n + 1):
    d = uf.multiply(scale, r[k])
    q[k] = d
    for i in range(n + 1):
      r[k + i] = uf.subtract(r[k + i], uf.multiply(d, v[i]))
  for _ in range(m - n + 1 if _concrete_or_none(r[0], "polydiv") is None else 0):
    r = r[1:] if len(r) > 1 else r
  while len(r) > 1 and (first := _concrete_or_none(r[0], "polydiv")) is not None and \
      np.allclose(first, 0, rtol=1e-14):
    r = r[1:]
  return cr.asarray(q, dtype), cr.asarray(r, dtype)


def polyder(p, m=1):
  """Differentiable `numpy.polyder`."""
  if not traced(p) or isinstance(p, np.poly1d):
    return np.polyder(p, m)
  m = int(m)
  if m < 0:
    raise ValueError("Order of derivative must be positive (see polyint)")
  p = _operand(p)
  for _ in range(m):
    n = shape_of(p)[0] - 1
    p = uf.multiply(p[:-1], np.arange(n, 0, -1))
  return p


def polyint(p, m=1, k=None):
  """Differentiable `numpy.polyint` (also in the integration constants k)."""
  if not traced(p, k) or isinstance(p, np.poly1d):
    return np.polyint(p, m, k)
  m = int(m)
  if m < 0:
    raise ValueError("Order of integral must be positive (see polyder)")
  k = np.zeros(m) if k is None else k
  k = mp.atleast_1d(_operand(k))
  if shape_of(k)[0] == 1 and m > 1:
    k = mp.broadcast_to(k, (m,))
  if shape_of(k)[0] < m:
    raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
  p = _operand(p)
  for i in range(m):
    p = mp.concatenate((uf.true_divide(p, np.arange(shape_of(p)[0], 0, -1)), k[i:i + 1]))
  return p


def poly(seq_of_zeros):
  """Differentiable `numpy.poly` of a 1-D sequence of real roots (square matrices, whose
  eigenvalues NumPy takes, are not supported on traced values)."""
  if not traced(seq_of_zeros):
    return np.poly(seq_of_zeros)
  z = mp.atleast_1d(_real(_operand(seq_of_zeros), "poly"))
  if _ndim(z) != 1:
    raise NotImplementedError("dfdx.numpy.poly: the characteristic polynomial of a traced "
                              "matrix is not supported; pass its eigenvalues.")
  z = uf.astype(z, np.dtype(np.mintypecode(dtype_of(z).char)))
  if shape_of(z)[0] == 0:
    return 1.0
  a = np.ones((1,), dtype_of(z))
  for i in range(shape_of(z)[0]):
    a = convolve(a, mp.stack([np.ones((), dtype_of(z)), uf.negative(z[i])]), mode="full")
  return a


# ---- cumulative_sum, cumulative_prod, vecdot, matvec, vecmat -------------------------------
def _cumulative(name, cumulative, identity):
  np_fun = getattr(np, name)

  def fn(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    if not traced(x):
      return np_fun(x, axis=axis, dtype=dtype, out=out, include_initial=include_initial)
    reject_out(name, out)
    x = _operand(x)
    np_fun(np.zeros((1,) * _ndim(x), dtype_of(x)), axis=axis, dtype=dtype)  # NumPy's errors
    if _ndim(x) == 0:
      x = mp.reshape(x, (1,))
    axis = normalize_axis_index(0 if axis is None else axis, _ndim(x))
    out = cumulative(x, axis=axis, dtype=dtype)
    if not include_initial:
      return out
    shape = list(shape_of(out))
    shape[axis] = 1
    return mp.concatenate((np.full(shape, identity, dtype_of(out)), out), axis=axis)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  return fn


cumulative_sum = _cumulative("cumulative_sum", rd.cumsum, 0)
cumulative_prod = _cumulative("cumulative_prod", rd.cumprod, 1)


def _gufunc(name, compute):
  np_fun = getattr(np, name)

  def fn(x1, x2, /, out=None, **kwargs):
    if not traced(x1, x2):
      return np_fun(x1, x2, out=out, **kwargs)
    reject_out(name, out)
    x1, x2 = _real(_operand(x1), name), _real(_operand(x2), name)
    expected = np_fun(_probe(x1), _probe(x2), **kwargs)  # NumPy's errors, shape and dtype
    extra = set(kwargs) - {"axis"} if name == "vecdot" else set(kwargs)
    if extra:
      raise TypeError(f"dfdx.numpy.{name}: keyword arguments {sorted(extra)} are not "
                      "supported on traced values.")
    if "axis" in kwargs:
      x1, x2 = mp.moveaxis(x1, kwargs["axis"], -1), mp.moveaxis(x2, kwargs["axis"], -1)
    return uf.astype(compute(x1, x2), np.asarray(expected).dtype)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}` (real values)."
  return fn


vecdot = _gufunc("vecdot", lambda a, b: rd.sum(uf.multiply(a, b), axis=-1))
matvec = _gufunc("matvec", lambda a, b: ct.matmul(a, b[..., None])[..., 0])
vecmat = _gufunc("vecmat", lambda a, b: ct.matmul(a[..., None, :], b)[..., 0, :])
