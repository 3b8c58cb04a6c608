"""Array manipulation in `dfdx.numpy`: reshaping and transposing, joining and splitting,
tiling, repeating, flipping, rotating and rolling, padding, differences and numerical
gradients, append, insert and delete.

With no traced argument every function calls NumPy and returns exactly what NumPy returns.
With traced arguments the result is built from the shape primitives of `dfdx._src.ops.shape`
(broadcast_to, reshape, transpose, concatenate, pad, slice, rev, convert_element_type),
elementwise arithmetic and, for pad's statistic modes, dfdx.numpy's reductions, so that it can
be differentiated and batched. This module holds no derivative rules.

Static arguments (shapes, axes, repeat counts, indices, pad widths) must be concrete. Many
are validated by running NumPy itself on `_probe(shape)`, a zero-stride stand-in of the
operand that takes no memory, so invalid arguments raise NumPy's own errors. Moving elements
by a concrete index map (repeat with per-element counts, insert, delete) is cut into runs of
strided slices by `_take`: no gather is needed.

>>> import dfdx, dfdx.numpy as dnp
>>> dfdx.grad(lambda x: dnp.sum(dnp.pad(x, 2, mode="reflect") ** 2) / 2)(np.array([1.0, 2.0, 3.0]))
array([2., 6., 6.])
"""
from __future__ import annotations

import math
import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from dfdx._src.core import Tracer
from dfdx._src.errors import ConcretizationError
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy import reductions as rd
from dfdx._src.numpy import ufuncs
from dfdx._src.numpy.util import arg, contains_tracer, dtype as dtype_of, reject_out, \
    shape as shape_of, strong

__all__ = ["reshape", "ravel", "transpose", "swapaxes", "moveaxis", "squeeze", "expand_dims",
           "broadcast_to", "broadcast_arrays", "concatenate", "stack", "hstack", "vstack",
           "dstack", "column_stack", "split", "array_split", "hsplit", "vsplit", "dsplit",
           "tile", "repeat", "flip", "fliplr", "flipud", "rot90", "roll", "pad", "diff",
           "gradient", "atleast_1d", "atleast_2d", "atleast_3d", "append", "insert", "delete"]

_NO_VALUE = np._NoValue


# ---- helpers ----------------------------------------------------------------------------


def _traced(*xs) -> bool:
  for x in xs:
    if contains_tracer(x):
      return True
  return False


def _operand(x):
  """A traced value as it is (one standing for a Python scalar as a NumPy value), anything
  else as a NumPy array: what NumPy's asarray makes of it."""
  x = arg(x)
  return strong(x) if isinstance(x, Tracer) else np.asarray(x)


def _sequence(arrays) -> list:
  """The operands of a join: a traced array is a sequence along its first axis."""
  return [_operand(x) for x in (list(arrays) if not isinstance(arrays, Tracer) else arrays)]


def _probe(shape):
  """An int8 array of `shape` with zero strides: NumPy's shape functions run on it to check
  arguments and compute result shapes, with NumPy's errors, without touching memory."""
  return np.broadcast_to(np.zeros((), np.int8), shape)


_result_shapes: dict = {}


def _result_shape(np_fun, shape, *args):
  """`np_fun(_probe(shape), *args).shape`, remembered for hashable arguments (a traced
  reshape or squeeze then costs a dict lookup instead of NumPy's argument handling)."""
  try:
    key = (np_fun, shape, args)
    out = _result_shapes.get(key)
  except TypeError:  # (a list of axes, say)
    return np_fun(_probe(shape), *args).shape
  if out is None:
    out = np_fun(_probe(shape), *args).shape
    if len(_result_shapes) >= 4096:
      _result_shapes.clear()
    _result_shapes[key] = out
  return out


def _static(x, what):
  """The concrete value of a static argument; a traced one is read off where it has a single
  value (under grad), and raises ConcretizationError where it has not (under vmap)."""
  if isinstance(x, Tracer):
    return np.asarray(x.concrete_value(what))
  if isinstance(x, (list, tuple)) and contains_tracer(x):
    return type(x)(_static(v, what) for v in x)
  return x


def _ndim(x) -> int:
  return len(shape_of(x))


def _size(x) -> int:
  return math.prod(shape_of(x))


def _reshape(x, shape):
  return shape_ops.reshape(x, shape) if isinstance(x, Tracer) else np.reshape(x, shape)


def _cast(x, dtype):
  dtype = np.dtype(dtype)
  if isinstance(x, Tracer):
    return shape_ops.convert_element_type(x, dtype)
  return x.astype(dtype, copy=False)


def _slice(x, start, stop, axis):
  """`x[..., start:stop, ...]` along `axis`, with Python's rules for negative and
  out-of-range bounds."""
  n = shape_of(x)[axis]
  start, stop, _ = slice(start, stop).indices(n)
  return shape_ops.slice_in_dim(x, start, max(start, stop), axis)


def _concat(xs, axis):
  return shape_ops.concatenate(xs, axis) if len(xs) > 1 else xs[0]


def _broadcast_along(x, axis, count):
  """Repeat `x`, of size 1 along `axis`, `count` times along it."""
  shape = list(shape_of(x))
  shape[axis] = count
  return shape_ops.broadcast_to(x, tuple(shape))


def _runs(idx):
  """Cut a 1-D index array into maximal arithmetic runs `(start, step, length)`."""
  n = len(idx)
  if n == 0:
    return []
  d = np.diff(idx)
  changes = np.flatnonzero(d[1:] != d[:-1])  # d[k] != d[k + 1]
  runs, i = [], 0
  while i < n:
    if i == n - 1:
      runs.append((int(idx[i]), 0, 1))
      break
    k = np.searchsorted(changes, i)
    last = int(changes[k]) + 1 if k < len(changes) else n - 1  # last element of the run
    runs.append((int(idx[i]), int(d[i]), last - i + 1))
    i = last + 1
  return runs


def _take(x, idx, axis):
  """`numpy.take(x, idx, axis)` for a concrete index array, as slices and broadcasts."""
  pieces = []
  for start, step, length in _runs(np.asarray(idx, np.intp)):
    if step == 0 or length == 1:
      piece = shape_ops.slice_in_dim(x, start, start + 1, axis)
      pieces.append(_broadcast_along(piece, axis, length) if length > 1 else piece)
    elif step > 0:
      pieces.append(shape_ops.slice_in_dim(x, start, start + step * (length - 1) + 1, axis,
                                           step))
    else:
      low = start + step * (length - 1)
      piece = shape_ops.slice_in_dim(x, low, start + 1, axis, -step)
      pieces.append(shape_ops.rev(piece, (axis,)))
  if not pieces:
    return shape_ops.slice_in_dim(x, 0, 0, axis)
  return _concat(pieces, axis)


# ---- shapes and axes --------------------------------------------------------------------


def reshape(a, /, shape, order="C", *, copy=None):
  """Differentiable `numpy.reshape` (-1 for one unknown dimension; order 'C' or 'F'; 'A' is
  'C' for traced values, which have no memory layout)."""
  if type(a) is np.ndarray and order == "C" and copy is None:  # (what np.reshape calls)
    return a.reshape(shape)
  if not _traced(a):
    return np.reshape(a, shape, order=order, copy=copy)
  a = _operand(a)
  out_shape = _result_shape(np.reshape, tuple(shape_of(a)), shape, order)
  if order == "F":
    return _reverse_axes(shape_ops.reshape(_reverse_axes(a), out_shape[::-1]))
  return shape_ops.reshape(a, out_shape)


def _reverse_axes(x):
  return shape_ops.transpose(x, tuple(reversed(range(_ndim(x)))))


def ravel(a, order="C"):
  """Differentiable `numpy.ravel` (order 'F' reads the elements column-first)."""
  if not _traced(a):
    return np.ravel(a, order)
  a = _operand(a)
  np.ravel(_probe(()), order)  # NumPy's error for an invalid order
  if order == "F":
    a = _reverse_axes(a)
  return shape_ops.reshape(a, (_size(a),))


def transpose(a, axes=None):
  """Differentiable `numpy.transpose` (axes None reverses them; negative axes allowed)."""
  if not _traced(a):
    return np.transpose(a, axes)
  a = _operand(a)
  ndim = _ndim(a)
  np.transpose(_probe(shape_of(a)), axes)  # NumPy's errors
  perm = range(ndim)[::-1] if axes is None else [operator.index(ax) % ndim for ax in axes]
  return shape_ops.transpose(a, tuple(perm))


def swapaxes(a, axis1, axis2):
  """Differentiable `numpy.swapaxes`."""
  if not _traced(a):
    return np.swapaxes(a, axis1, axis2)
  a = _operand(a)
  ndim = _ndim(a)
  i = normalize_axis_index(axis1, ndim, "axis1")
  j = normalize_axis_index(axis2, ndim, "axis2")
  perm = list(range(ndim))
  perm[i], perm[j] = j, i
  return shape_ops.transpose(a, tuple(perm))


def moveaxis(a, source, destination):
  """Differentiable `numpy.moveaxis` (ints or sequences of axes)."""
  if not _traced(a):
    return np.moveaxis(a, source, destination)
  a = _operand(a)
  ndim = _ndim(a)
  source = normalize_axis_tuple(source, ndim, "source")
  destination = normalize_axis_tuple(destination, ndim, "destination")
  if len(source) != len(destination):
    raise ValueError("`source` and `destination` arguments must have the same number of "
                     "elements")
  perm = [n for n in range(ndim) if n not in source]
  for dest, src in sorted(zip(destination, source)):
    perm.insert(dest, src)
  return shape_ops.transpose(a, tuple(perm))


def squeeze(a, axis=None):
  """Differentiable `numpy.squeeze`."""
  if not _traced(a):
    return np.squeeze(a, axis)
  a = _operand(a)
  return shape_ops.reshape(a, _result_shape(np.squeeze, tuple(shape_of(a)), axis))


def expand_dims(a, axis):
  """Differentiable `numpy.expand_dims` (an int or a tuple of axes, negative allowed)."""
  if not _traced(a):
    return np.expand_dims(a, axis)
  a = _operand(a)
  return shape_ops.reshape(a, _result_shape(np.expand_dims, tuple(shape_of(a)), axis))


def broadcast_to(array, shape, subok=False):
  """Differentiable `numpy.broadcast_to`."""
  if not _traced(array):
    return np.broadcast_to(array, shape, subok=subok)
  x = _operand(array)
  return shape_ops.broadcast_to(x, _result_shape(np.broadcast_to, tuple(shape_of(x)), shape))


def broadcast_arrays(*args, subok=False):
  """Differentiable `numpy.broadcast_arrays` (a tuple, like NumPy 2)."""
  if not _traced(*args):
    return np.broadcast_arrays(*args, subok=subok)
  xs = [_operand(x) for x in args]
  shape = np.broadcast_arrays(*[_probe(shape_of(x)) for x in xs])[0].shape
  return tuple(shape_ops.broadcast_to(x, shape) if isinstance(x, Tracer) else
               np.broadcast_to(x, shape) for x in xs)


# ---- joining ----------------------------------------------------------------------------


def _join_dtype(xs, dtype, casting):
  dtypes = [dtype_of(x) for x in xs]
  if dtype is None:
    return np.result_type(*dtypes)
  dtype = np.dtype(dtype)
  for dt in dtypes:
    if not np.can_cast(dt, dtype, casting):
      raise TypeError(f"Cannot cast array data from {dt!r} to {dtype!r} according to the rule "
                      f"'{casting}'")
  return dtype


def _join_axis(xs, axis):
  """Check that `xs` can be concatenated along `axis` (NumPy's errors); the axis, >= 0."""
  if not xs:
    raise ValueError("need at least one array to concatenate")
  shapes = [shape_of(x) for x in xs]
  ndim = len(shapes[0])
  if any(len(s) == 0 for s in shapes):
    raise ValueError("zero-dimensional arrays cannot be concatenated")
  axis = normalize_axis_index(axis, ndim)
  for i, s in enumerate(shapes[1:], 1):
    if len(s) != ndim:
      raise ValueError("all the input arrays must have same number of dimensions, but the "
                       f"array at index 0 has {ndim} dimension(s) and the array at index {i} "
                       f"has {len(s)} dimension(s)")
    for d in range(ndim):
      if d != axis and s[d] != shapes[0][d]:
        raise ValueError("all the input array dimensions except for the concatenation axis "
                         f"must match exactly, but along dimension {d}, the array at index 0 "
                         f"has size {shapes[0][d]} and the array at index {i} has size {s[d]}")
  return axis


def concatenate(arrays, /, axis=0, out=None, *, dtype=None, casting="same_kind"):
  """Differentiable `numpy.concatenate` (axis None flattens; traced and plain arrays mix,
  with NumPy's dtype promotion)."""
  if not _traced(arrays):
    if out is None and dtype is None and casting == "same_kind":
      return np.concatenate(arrays, axis)
    return np.concatenate(arrays, axis, out=out, dtype=dtype, casting=casting)
  reject_out("concatenate", out)
  xs = _sequence(arrays)
  if axis is None:
    xs = [_reshape(x, (_size(x),)) for x in xs]
    axis = 0
  axis = _join_axis(xs, axis)
  out_dtype = _join_dtype(xs, dtype, casting)
  return _concat([_cast(x, out_dtype) for x in xs], axis)


def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
  """Differentiable `numpy.stack`."""
  if not _traced(arrays):
    return np.stack(arrays, axis, out=out, dtype=dtype, casting=casting)
  reject_out("stack", out)
  xs = _sequence(arrays)
  if not xs:
    raise ValueError("need at least one array to stack")
  if len({shape_of(x) for x in xs}) != 1:
    raise ValueError("all input arrays must have the same shape")
  shape = shape_of(xs[0])
  axis = normalize_axis_index(axis, len(shape) + 1)
  new_shape = shape[:axis] + (1,) + shape[axis:]
  return concatenate([_reshape(x, new_shape) for x in xs], axis, dtype=dtype, casting=casting)


def hstack(tup, *, dtype=None, casting="same_kind"):
  """Differentiable `numpy.hstack`."""
  if not _traced(tup):
    return np.hstack(tup, dtype=dtype, casting=casting)
  xs = [atleast_1d(x) for x in _sequence(tup)]
  axis = 0 if xs and _ndim(xs[0]) == 1 else 1
  return concatenate(xs, axis, dtype=dtype, casting=casting)


def vstack(tup, *, dtype=None, casting="same_kind"):
  """Differentiable `numpy.vstack`."""
  if not _traced(tup):
    return np.vstack(tup, dtype=dtype, casting=casting)
  return concatenate([atleast_2d(x) for x in _sequence(tup)], 0, dtype=dtype, casting=casting)


def dstack(tup):
  """Differentiable `numpy.dstack`."""
  if not _traced(tup):
    return np.dstack(tup)
  return concatenate([atleast_3d(x) for x in _sequence(tup)], 2)


def column_stack(tup):
  """Differentiable `numpy.column_stack`: 1-D arrays become columns."""
  if not _traced(tup):
    return np.column_stack(tup)
  xs = []
  for x in _sequence(tup):
    if _ndim(x) < 2:
      x = _reshape(x, (_size(x), 1))
    xs.append(x)
  return concatenate(xs, 1)


def append(arr, values, axis=None):
  """Differentiable `numpy.append`."""
  if not _traced(arr, values):
    return np.append(arr, values, axis)
  arr, values = _operand(arr), _operand(values)
  if axis is None:
    arr, values = _reshape(arr, (_size(arr),)), _reshape(values, (_size(values),))
    axis = 0
  return concatenate((arr, values), axis)


# ---- splitting --------------------------------------------------------------------------


def array_split(ary, indices_or_sections, axis=0):
  """Differentiable `numpy.array_split`: a list of pieces, of nearly equal length for a number
  of sections."""
  indices_or_sections = _static(indices_or_sections, "array_split's indices_or_sections")
  if not _traced(ary):
    return np.array_split(ary, indices_or_sections, axis)
  ary = _operand(ary)
  total = shape_of(ary)[axis]
  axis = normalize_axis_index(axis, _ndim(ary))
  try:
    sections = len(indices_or_sections) + 1
    points = [0] + list(indices_or_sections) + [total]
  except TypeError:
    sections = int(indices_or_sections)
    if sections <= 0:
      raise ValueError("number sections must be larger than 0.") from None
    each, extras = divmod(total, sections)
    points = np.cumsum([0] + extras * [each + 1] + (sections - extras) * [each]).tolist()
  return [_slice(ary, points[i], points[i + 1], axis) for i in range(sections)]


def split(ary, indices_or_sections, axis=0):
  """Differentiable `numpy.split` (equal sections, or split points)."""
  indices_or_sections = _static(indices_or_sections, "split's indices_or_sections")
  if not _traced(ary):
    return np.split(ary, indices_or_sections, axis)
  ary = _operand(ary)
  try:
    len(indices_or_sections)
  except TypeError:
    if shape_of(ary)[axis] % indices_or_sections:
      raise ValueError("array split does not result in an equal division") from None
  return array_split(ary, indices_or_sections, axis)


def _split_along(name, min_ndim, axis_of):
  def fn(ary, indices_or_sections):
    if not _traced(ary):
      return getattr(np, name)(ary, _static(indices_or_sections, name))
    ary = _operand(ary)
    if _ndim(ary) < min_ndim:
      raise ValueError(f"{name} only works on arrays of {min_ndim} or more dimensions")
    return split(ary, indices_or_sections, axis_of(_ndim(ary)))
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}`."
  return fn


hsplit = _split_along("hsplit", 1, lambda ndim: 1 if ndim > 1 else 0)
vsplit = _split_along("vsplit", 2, lambda ndim: 0)
dsplit = _split_along("dsplit", 3, lambda ndim: 2)


# ---- tiling and repeating ---------------------------------------------------------------


def tile(A, reps):
  """Differentiable `numpy.tile`."""
  reps = _static(reps, "tile's reps")
  if not _traced(A):
    return np.tile(A, reps)
  A = _operand(A)
  try:
    tup = tuple(int(r) for r in reps)
  except TypeError:
    tup = (int(reps),)
  if any(r < 0 for r in tup):
    raise ValueError("negative dimensions are not allowed")
  shape = (1,) * (len(tup) - _ndim(A)) + shape_of(A)
  tup = (1,) * (len(shape) - len(tup)) + tup
  A = _reshape(A, shape)
  if all(r == 1 for r in tup):
    return A
  spread = tuple(v for s in shape for v in (1, s))
  tiled = tuple(v for s, r in zip(shape, tup) for v in (r, s))
  out = shape_ops.broadcast_to(_reshape(A, spread), tiled)
  return shape_ops.reshape(out, tuple(s * r for s, r in zip(shape, tup)))


def repeat(a, repeats, axis=None):
  """Differentiable `numpy.repeat` (one count, or one per element along the axis)."""
  repeats = _static(repeats, "repeat's repeats")
  if not _traced(a):
    return np.repeat(a, repeats, axis)
  a = _operand(a)
  if axis is None or not shape_of(a):  # (NumPy repeats a 0-d array as a 1-d one)
    if axis is not None:
      normalize_axis_index(axis, 1)
    a, axis = _reshape(a, (_size(a),)), 0
  shape = shape_of(a)
  axis = normalize_axis_index(axis, len(shape))
  idx = np.repeat(np.arange(shape[axis]), repeats)  # NumPy's checks and errors
  counts = np.asarray(repeats)
  if counts.size != 1:
    return _take(a, idx, axis)
  count = max(int(counts.reshape(-1)[0]), 0)  # (a negative count passes on an empty axis)
  spread = shape[:axis + 1] + (1,) + shape[axis + 1:]
  out = shape_ops.broadcast_to(_reshape(a, spread),
                               spread[:axis + 1] + (count,) + spread[axis + 2:])
  return shape_ops.reshape(out, shape[:axis] + (shape[axis] * count,) + shape[axis + 1:])


# ---- flipping, rotating, rolling --------------------------------------------------------


def flip(m, axis=None):
  """Differentiable `numpy.flip`."""
  if not _traced(m):
    return np.flip(m, axis)
  m = _operand(m)
  ndim = _ndim(m)
  axes = tuple(range(ndim)) if axis is None else normalize_axis_tuple(axis, ndim)
  return shape_ops.rev(m, axes)


def fliplr(m):
  """Differentiable `numpy.fliplr`."""
  if not _traced(m):
    return np.fliplr(m)
  m = _operand(m)
  if _ndim(m) < 2:
    raise ValueError("Input must be >= 2-d.")
  return shape_ops.rev(m, (1,))


def flipud(m):
  """Differentiable `numpy.flipud`."""
  if not _traced(m):
    return np.flipud(m)
  m = _operand(m)
  if _ndim(m) < 1:
    raise ValueError("Input must be >= 1-d.")
  return shape_ops.rev(m, (0,))


def rot90(m, k=1, axes=(0, 1)):
  """Differentiable `numpy.rot90`."""
  if not _traced(m):
    return np.rot90(m, k, axes)
  m = _operand(m)
  np.rot90(_probe(shape_of(m)), k, axes)  # NumPy's errors
  ndim = _ndim(m)
  ax0, ax1 = (operator.index(ax) % ndim for ax in axes)
  k %= 4
  if k == 0:
    return m
  if k == 2:
    return shape_ops.rev(m, (ax0, ax1))
  perm = list(range(ndim))
  perm[ax0], perm[ax1] = perm[ax1], perm[ax0]
  if k == 1:
    return shape_ops.transpose(shape_ops.rev(m, (ax1,)), tuple(perm))
  return shape_ops.rev(shape_ops.transpose(m, tuple(perm)), (ax1,))


def roll(a, shift, axis=None):
  """Differentiable `numpy.roll` (in `a`). A traced `shift` with one value (under grad) is
  read off; one whose value is unknown (under jit) or differs per example (under vmap) rolls
  by a gather of entries at positions computed from it, as the output's shape does not
  depend on it."""
  try:
    shift = _static(shift, "roll's shift")
  except ConcretizationError:
    return _roll_traced(_operand(a), _operand(shift), axis)
  if not _traced(a):
    return np.roll(a, shift, axis)
  a = _operand(a)
  if axis is None:
    return _reshape(roll(_reshape(a, (_size(a),)), shift, 0), shape_of(a))
  shape = shape_of(a)
  axes = normalize_axis_tuple(axis, len(shape), allow_duplicate=True)
  pairs = np.broadcast(shift, axes)
  if pairs.ndim > 1:
    raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
  shifts = dict.fromkeys(range(len(shape)), 0)
  for sh, ax in pairs:
    shifts[ax] += int(sh)
  for ax, sh in shifts.items():
    n = shape[ax]
    offset = sh % n if n else 0
    if offset:
      a = _concat([shape_ops.slice_in_dim(a, n - offset, n, ax),
                   shape_ops.slice_in_dim(a, 0, n - offset, ax)], ax)
  return a


def _roll_traced(a, shift, axis):
  """roll by a traced shift: entry i of each rolled axis is entry (i - shift) mod n."""
  from dfdx._src.numpy import indexing
  if axis is None:
    return _reshape(_roll_traced(_reshape(a, (_size(a),)), shift, 0), shape_of(a))
  if dtype_of(shift).kind not in "iub":  # (NumPy takes int() of each shift)
    shift = ufuncs.astype(shift, np.intp)
  shape = shape_of(a)
  axes = normalize_axis_tuple(axis, len(shape), allow_duplicate=True)
  positions = np.arange(_size(shift)).reshape(shape_of(shift))  # of the shifts, to pair
  pairs = np.broadcast(positions, axes)
  if pairs.ndim > 1:
    raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
  shifts = {}
  for k, ax in pairs:
    sh = shift[int(k)] if shape_of(shift) else shift
    shifts[ax] = ufuncs.add(shifts[ax], sh) if ax in shifts else sh
  for ax, sh in shifts.items():
    n = shape[ax]
    if n:
      a = indexing.take(a, ufuncs.subtract(np.arange(n), sh), axis=ax, mode="wrap")
  return a


# ---- pad --------------------------------------------------------------------------------

_PAD_STATS = ("maximum", "mean", "median", "minimum")
_PAD_KWARGS = {"constant": {"constant_values"}, "edge": set(), "wrap": set(), "empty": set(),
               "reflect": {"reflect_type"}, "symmetric": {"reflect_type"},
               "linear_ramp": {"end_values"}, **{m: {"stat_length"} for m in _PAD_STATS}}


def _as_pairs(x, ndim, as_index=False):
  """NumPy's pad argument (None, a scalar, a pair, or one pair per axis) as `ndim` pairs: of
  NumPy scalars for a scalar or a pair, of Python scalars (weakly typed) otherwise, as in
  NumPy."""
  if x is None:
    return ((None, None),) * ndim
  x = np.array(x)
  if as_index:
    x = np.round(x).astype(np.intp, copy=False)
  if x.ndim < 3 and (x.size == 1 or (x.size == 2 and x.shape != (2, 1))):
    x = x.ravel()
    pair = (x[0], x[0]) if x.size == 1 else (x[0], x[1])
    if as_index and min(pair) < 0:
      raise ValueError("index can't contain negative values")
    return (pair,) * ndim
  if as_index and x.size and x.min() < 0:
    raise ValueError("index can't contain negative values")
  return np.broadcast_to(x, (ndim, 2)).tolist()


def _pad_widths(pad_width, ndim):
  if isinstance(pad_width, dict):
    seq = [(0, 0)] * ndim
    for ax, width in pad_width.items():
      seq[ax] = (width, width) if isinstance(width, int) else tuple(width)
    pad_width = seq
  pad_width = np.asarray(pad_width)
  if pad_width.dtype.kind != "i":
    raise TypeError("`pad_width` must be of integral type.")
  return [(int(lo), int(hi)) for lo, hi in _as_pairs(pad_width, ndim, as_index=True)]


def _traced_pairs(values, ndim):
  """`_as_pairs` for a traced `constant_values`: pairs of 0-d traced values."""
  v = _operand(values)
  shape = shape_of(v)
  if len(shape) < 3 and (_size(v) == 1 or (_size(v) == 2 and shape != (2, 1))):
    flat = shape_ops.reshape(v, (_size(v),))
    lo, hi = (_element(flat, 0), _element(flat, _size(v) - 1))
    return ((lo, hi),) * ndim
  v = shape_ops.broadcast_to(v, np.broadcast_shapes(shape, (ndim, 2)))
  if shape_of(v) != (ndim, 2):
    raise ValueError(f"pad: constant_values of shape {shape} do not broadcast to ({ndim}, 2)")
  flat = shape_ops.reshape(v, (2 * ndim,))
  return [(_element(flat, 2 * i), _element(flat, 2 * i + 1)) for i in range(ndim)]


def _element(flat, i):
  return shape_ops.reshape(shape_ops.slice_in_dim(flat, i, i + 1, 0), ())


def _fill(value, shape, dtype):
  if isinstance(value, Tracer):
    return shape_ops.broadcast_to(shape_ops.convert_element_type(value, dtype), shape)
  return np.full(shape, np.asarray(value).astype(dtype))


def _pad_constant(x, widths, values):
  if not _traced(values):
    values = _as_pairs(values, _ndim(x))
    if all(v == 0 for pair in values for v in pair):
      return shape_ops.pad(x, [(lo, hi, 0) for lo, hi in widths])
  else:
    values = _traced_pairs(values, _ndim(x))
  dtype = dtype_of(x)
  for axis, ((lo, hi), (v_lo, v_hi)) in enumerate(zip(widths, values)):
    shape = list(shape_of(x))
    pieces = [x]
    if lo:
      pieces.insert(0, _fill(v_lo, tuple(shape[:axis] + [lo] + shape[axis + 1:]), dtype))
    if hi:
      pieces.append(_fill(v_hi, tuple(shape[:axis] + [hi] + shape[axis + 1:]), dtype))
    x = _concat(pieces, axis)
  return x


def _pad_edge(x, axis, lo, hi):
  n = shape_of(x)[axis]
  pieces = [x]
  if lo:
    pieces.insert(0, _broadcast_along(shape_ops.slice_in_dim(x, 0, 1, axis), axis, lo))
  if hi:
    pieces.append(_broadcast_along(shape_ops.slice_in_dim(x, n - 1, n, axis), axis, hi))
  return _concat(pieces, axis)


def _odd(chunk, edge, dtype):
  """NumPy's odd reflection: 2 * edge - chunk, cast back to the array's dtype."""
  return shape_ops.convert_element_type(ew.sub(ew.mul(2, edge), chunk), dtype)


def _pad_reflect(x, axis, lo, hi, odd, include_edge):
  # NumPy's iteration: each pass reflects at most the values present so far, so pads longer
  # than the axis reflect repeatedly (numpy/lib/_arraypad_impl.py, _set_reflect_both).
  n = shape_of(x)[axis]
  if n == 1:
    return _pad_edge(x, axis, lo, hi)
  dtype, offset = dtype_of(x), int(include_edge)
  while lo > 0 or hi > 0:
    size = shape_of(x)[axis]
    period = size // n * n if include_edge else (size - 1) // (n - 1) * (n - 1)
    pieces = [x]
    if lo > 0:
      k = min(period, lo)
      chunk = shape_ops.rev(shape_ops.slice_in_dim(x, 1 - offset, k + 1 - offset, axis), (axis,))
      if odd:
        chunk = _odd(chunk, shape_ops.slice_in_dim(x, 0, 1, axis), dtype)
      pieces.insert(0, chunk)
      lo -= k
    if hi > 0:
      k = min(period, hi)
      chunk = shape_ops.rev(shape_ops.slice_in_dim(x, size - k - 1 + offset, size - 1 + offset,
                                                   axis), (axis,))
      if odd:
        chunk = _odd(chunk, shape_ops.slice_in_dim(x, size - 1, size, axis), dtype)
      pieces.append(chunk)
      hi -= k
    x = _concat(pieces, axis)
  return x


def _pad_wrap(x, axis, lo, hi):
  # NumPy's iteration (_set_wrap_both): each pass copies at most whole periods seen so far.
  n = shape_of(x)[axis]
  while lo > 0 or hi > 0:
    size = shape_of(x)[axis]
    period = size // n * n
    pieces = [x]
    if lo > 0:
      k = min(period, lo)
      pieces.insert(0, shape_ops.slice_in_dim(x, period - k, period, axis))
      lo -= k
    if hi > 0:
      k = min(period, hi)
      pieces.append(shape_ops.slice_in_dim(x, size - period, size - period + k, axis))
      hi -= k
    x = _concat(pieces, axis)
  return x


def _pad_stat(x, axis, lo, hi, lengths, mode):
  # NumPy's _get_stats: a statistic of the first and of the last `lengths` entries (all of
  # them for None or a longer length), rounded for integer arrays, repeated into each pad.
  n, dtype = shape_of(x)[axis], dtype_of(x)
  stats = {}

  def stat(start, stop):
    if (start, stop) not in stats:
      chunk = shape_ops.slice_in_dim(x, start, stop, axis)
      if mode in ("maximum", "minimum"):
        s = (rd.max if mode == "maximum" else rd.min)(chunk, axis=axis, keepdims=True)
      else:
        from dfdx._src.numpy.statistics import median  # (it imports this module, via sorting)
        s = (rd.mean if mode == "mean" else median)(chunk, axis=axis, keepdims=True)
        if np.issubdtype(dtype, np.integer):
          s = ufuncs.round(s)
      stats[start, stop] = _cast(s, dtype)
    return stats[start, stop]
  left, right = (n if k is None or k > n else k for k in lengths)
  pieces = [x]
  if lo:
    pieces.insert(0, _broadcast_along(stat(0, left), axis, lo))
  if hi:
    pieces.append(_broadcast_along(stat(n - right, n), axis, hi))
  return _concat(pieces, axis)


def _ramp(end, edge, num, axis, dt, dtype):
  """`np.linspace(end, edge, num, endpoint=False, dtype=dtype, axis=axis)` for an `edge` of
  size 1 along `axis`, computed in linspace's dtype `dt` with its operations: k * step, or
  k / num * delta where some step is 0 (gh-5437), plus `end`; floored for integer dtypes."""
  end, edge = _cast(_operand(end), dt), _cast(edge, dt)
  delta = ufuncs.subtract(edge, end)
  step = ufuncs.true_divide(delta, np.asarray(num, dt))
  k = np.arange(num, dtype=dt).reshape([num if i == axis else 1 for i in range(_ndim(edge))])
  scaled = ufuncs.multiply(k / np.asarray(num, dt), delta)
  y = ufuncs.where(rd.any(ufuncs.equal(step, 0)), scaled, ufuncs.multiply(k, step))
  y = ufuncs.add(y, end)
  if np.issubdtype(dtype, np.integer):
    y = ufuncs.floor(y)
  return _cast(y, dtype)


def _pad_linear_ramp(x, axis, lo, hi, ends, probes):
  # NumPy's _get_linear_ramps: from each end value to the edge, edge excluded. linspace
  # computes in the result dtype of end value and array, so a NumPy-typed end value (`probes`
  # stand for traced ones) can promote float32 to float64, where a Python scalar would not.
  n, dtype = shape_of(x)[axis], dtype_of(x)

  def ramp(end, probe, width, at):
    edge = shape_ops.slice_in_dim(x, at, at + 1, axis)
    return _ramp(end, edge, width, axis, np.result_type(probe, dtype, 0.0), dtype)
  pieces = [x]
  if lo:
    pieces.insert(0, ramp(ends[0], probes[0], lo, 0))
  if hi:
    pieces.append(shape_ops.rev(ramp(ends[1], probes[1], hi, n - 1), (axis,)))
  return _concat(pieces, axis)


def pad(array, pad_width, mode="constant", **kwargs):
  """Differentiable `numpy.pad`, for every string mode: 'constant' (a traced `constant_values`
  is differentiable too), 'edge', 'reflect', 'symmetric' (both with `reflect_type`), 'wrap',
  'empty' (zeros), 'linear_ramp' (traced `end_values` too), and 'maximum', 'mean', 'median',
  'minimum' (with `stat_length`; max and min split the derivative among ties as dnp.max
  does). Axes are padded in order, so later axes see earlier pads, and integer arrays round
  as NumPy does. `pad_width` takes all of NumPy's forms; a callable mode is not traced."""
  ramp_ends = kwargs.get("end_values") if mode == "linear_ramp" else None
  if not _traced(array, kwargs.get("constant_values"), ramp_ends):
    return np.pad(array, pad_width, mode, **kwargs)
  x = _operand(array)
  ndim = _ndim(x)
  widths = _pad_widths(pad_width, ndim)
  if callable(mode):
    raise NotImplementedError(
        f"dfdx.numpy.pad: a callable mode ({getattr(mode, '__name__', mode)!r}) is not "
        "implemented for traced values: it writes into a NumPy array in place. Use one of "
        f"the modes {sorted(_PAD_KWARGS)}, or pad a value that is not traced.")
  if mode not in _PAD_KWARGS:
    raise ValueError(f"mode '{mode}' is not supported")
  unsupported = set(kwargs) - _PAD_KWARGS[mode]
  if unsupported:
    raise ValueError(f"unsupported keyword arguments for mode '{mode}': {unsupported}")
  if mode == "constant":
    return _pad_constant(x, widths, kwargs.get("constant_values", 0))
  zero_padded = [(lo, hi, 0) for lo, hi in widths]
  if mode == "empty":
    return shape_ops.pad(x, zero_padded)
  if _size(x) == 0:
    for axis, (n, (lo, hi)) in enumerate(zip(shape_of(x), widths)):
      if n == 0 and (lo or hi):
        raise ValueError(f"can't extend empty axis {axis} using modes other than 'constant' "
                         "or 'empty'")
    return shape_ops.pad(x, zero_padded)  # every padded axis is empty, so is the result
  if mode == "linear_ramp":
    ends = kwargs.get("end_values", 0)
    if _traced(ends):  # NumPy's pairs of a concrete array of the same shape give the dtypes
      probes = _as_pairs(np.zeros(shape_of(_operand(ends)), dtype_of(_operand(ends))), ndim)
      ends = _traced_pairs(ends, ndim)
    else:
      ends = probes = _as_pairs(ends, ndim)
    for axis, ((lo, hi), pair, probe) in enumerate(zip(widths, ends, probes)):
      if lo or hi:
        x = _pad_linear_ramp(x, axis, lo, hi, pair, probe)
    return x
  if mode in _PAD_STATS:
    lengths = _as_pairs(kwargs.get("stat_length"), ndim, as_index=True)
    if mode in ("maximum", "minimum") and any(k == 0 for pair in lengths for k in pair):
      raise ValueError("stat_length of 0 yields no value for padding")
    for axis, ((lo, hi), pair) in enumerate(zip(widths, lengths)):
      if lo or hi:
        x = _pad_stat(x, axis, lo, hi, pair, mode)
    return x
  odd = kwargs.get("reflect_type", "even") == "odd"
  for axis, (lo, hi) in enumerate(widths):
    if not (lo or hi):
      continue
    if mode == "edge":
      x = _pad_edge(x, axis, lo, hi)
    elif mode == "wrap":
      x = _pad_wrap(x, axis, lo, hi)
    else:
      x = _pad_reflect(x, axis, lo, hi, odd, include_edge=mode == "symmetric")
  return x


# ---- differences ------------------------------------------------------------------------


def diff(a, n=1, axis=-1, prepend=_NO_VALUE, append=_NO_VALUE):
  """Differentiable `numpy.diff` (with `prepend` and `append`)."""
  if not _traced(a, prepend, append):
    given = {k: v for k, v in (("prepend", prepend), ("append", append)) if v is not _NO_VALUE}
    return np.diff(a, n, axis, **given)
  if n == 0:
    return a
  if n < 0:
    raise ValueError("order must be non-negative but got " + repr(n))
  a = _operand(a)
  if _ndim(a) == 0:
    raise ValueError("diff requires input that is at least one dimensional")
  axis = normalize_axis_index(axis, _ndim(a))
  combined = []
  for edge in (prepend, None, append):
    if edge is None:
      combined.append(a)
    elif edge is not _NO_VALUE:
      edge = _operand(edge)
      if _ndim(edge) == 0:
        shape = list(shape_of(a))
        shape[axis] = 1
        edge = broadcast_to(edge, tuple(shape))
      combined.append(edge)
  if len(combined) > 1:
    a = concatenate(combined, axis)
  op = ufuncs.not_equal if dtype_of(a) == np.bool_ else ufuncs.subtract
  for _ in range(n):
    a = op(_slice(a, 1, None, axis), _slice(a, None, -1, axis))
  return a


def _item(x, i):
  """`x[i]` of a 1-D array, as a 0-d value."""
  if not isinstance(x, Tracer):
    return x[i]
  return shape_ops.reshape(_slice(x, i, i + 1 if i != -1 else None, 0), ())


def _spacings(varargs, axes, shape):
  """numpy.gradient's spacing per axis: a scalar step, or the 1-D differences of coordinates.
  Plain uniform coordinates become a scalar step, as in NumPy; traced ones never do."""
  n = len(varargs)
  if n == 0:
    return [1.0] * len(axes)
  if n == 1 and _ndim(varargs[0]) == 0:
    return list(varargs) * len(axes)
  if n != len(axes):
    raise TypeError("invalid number of arguments")
  out = []
  for ax, distances in zip(axes, varargs):
    distances = _operand(distances)
    if _ndim(distances) == 0:
      out.append(distances)
      continue
    if _ndim(distances) != 1:
      raise ValueError("distances must be either scalars or 1d")
    if shape_of(distances)[0] != shape[ax]:
      raise ValueError("when 1d, distances must match the length of the corresponding "
                       "dimension")
    if np.issubdtype(dtype_of(distances), np.integer):
      distances = _cast(distances, np.float64)
    dx = diff(distances)
    if not isinstance(dx, Tracer) and (dx == dx[0]).all():
      dx = dx[0]
    out.append(dx)
  return out


def _gradient_axis(f, axis, dx, edge_order):
  mul, add, sub, div = ufuncs.multiply, ufuncs.add, ufuncs.subtract, ufuncs.true_divide

  def at(start, stop):
    return _slice(f, start, stop, axis)

  def combine(a, b, c, fa, fb, fc):  # a * fa + b * fb + c * fc
    return add(add(mul(a, fa), mul(b, fb)), mul(c, fc))

  if shape_of(f)[axis] < edge_order + 1:
    raise ValueError("Shape of array too small to calculate a numerical gradient, at least "
                     "(edge_order + 1) elements are required.")
  if _ndim(dx) == 0:
    interior = div(sub(at(2, None), at(None, -2)), mul(2., dx))
  else:
    dx1, dx2 = _slice(dx, 0, -1, 0), _slice(dx, 1, None, 0)
    along = tuple(-1 if i == axis else 1 for i in range(_ndim(f)))
    a = _reshape(div(ufuncs.negative(dx2), mul(dx1, add(dx1, dx2))), along)
    b = _reshape(div(sub(dx2, dx1), mul(dx1, dx2)), along)
    c = _reshape(div(dx1, mul(dx2, add(dx1, dx2))), along)
    interior = combine(a, b, c, at(None, -2), at(1, -1), at(2, None))
  uniform = _ndim(dx) == 0
  if edge_order == 1:
    first = div(sub(at(1, 2), at(0, 1)), dx if uniform else _item(dx, 0))
    last = div(sub(at(-1, None), at(-2, -1)), dx if uniform else _item(dx, -1))
  else:
    if uniform:
      a, b, c = div(-1.5, dx), div(2., dx), div(-0.5, dx)
    else:
      dx1, dx2 = _item(dx, 0), _item(dx, 1)
      a = div(ufuncs.negative(add(mul(2., dx1), dx2)), mul(dx1, add(dx1, dx2)))
      b = div(add(dx1, dx2), mul(dx1, dx2))
      c = div(ufuncs.negative(dx1), mul(dx2, add(dx1, dx2)))
    first = combine(a, b, c, at(0, 1), at(1, 2), at(2, 3))
    if uniform:
      a, b, c = div(0.5, dx), div(-2., dx), div(1.5, dx)
    else:
      dx1, dx2 = _item(dx, -2), _item(dx, -1)
      a = div(dx2, mul(dx1, add(dx1, dx2)))
      b = div(ufuncs.negative(add(dx2, dx1)), mul(dx1, dx2))
      c = div(add(mul(2., dx2), dx1), mul(dx2, add(dx1, dx2)))
    last = combine(a, b, c, at(-3, -2), at(-2, -1), at(-1, None))
  return first, interior, last


def gradient(f, *varargs, axis=None, edge_order=1):
  """Differentiable `numpy.gradient`: central differences inside, one-sided differences of
  `edge_order` 1 or 2 at the ends. Spacings are scalars or coordinate arrays, and the result
  is differentiable in `f` and in traced spacings. Several axes give a tuple, as in NumPy."""
  if not _traced(f, varargs):
    return np.gradient(f, *varargs, axis=axis, edge_order=edge_order)
  f = _operand(f)
  ndim = _ndim(f)
  axes = tuple(range(ndim)) if axis is None else normalize_axis_tuple(axis, ndim)
  spacings = _spacings(varargs, axes, shape_of(f))
  if edge_order > 2:
    raise ValueError("'edge_order' greater than 2 not supported")
  otype = dtype_of(f)
  if not np.issubdtype(otype, np.inexact):
    if np.issubdtype(otype, np.integer):
      f = _cast(f, np.float64)
    otype = np.dtype(np.float64)
  outs = []
  for ax, dx in zip(axes, spacings):
    pieces = _gradient_axis(f, ax, dx, edge_order)
    outs.append(concatenate([_cast(_operand(p), otype) for p in pieces], ax))
  return outs[0] if len(outs) == 1 else tuple(outs)


# ---- atleast_nd -------------------------------------------------------------------------


def _atleast(name, np_fun, expand):
  def fn(*arys):
    if not _traced(*arys):
      return np_fun(*arys)
    out = tuple(expand(_operand(x)) if _traced(x) else np_fun(x) for x in arys)
    return out[0] if len(out) == 1 else out
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}` (a tuple for several arguments, as in NumPy)."
  return fn


def _at_least(ndim, place):
  def expand(x):
    shape = shape_of(x)
    return x if len(shape) >= ndim else shape_ops.reshape(x, place(shape))
  return expand


atleast_1d = _atleast("atleast_1d", np.atleast_1d, _at_least(1, lambda s: (1,)))
atleast_2d = _atleast("atleast_2d", np.atleast_2d, _at_least(2, lambda s: (1,) * (2 - len(s)) + s))
atleast_3d = _atleast("atleast_3d", np.atleast_3d, _at_least(
    3, lambda s: {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}[len(s)]))


# ---- insert and delete ------------------------------------------------------------------


def _flat_axis(a, axis):
  if axis is None:
    return _reshape(a, (_size(a),)), 0
  return a, normalize_axis_index(axis, _ndim(a))


def _assignable(values, slot, indexed=False):
  """`values` broadcast to the `slot` they are assigned to, with NumPy's assignment rules
  (leading size-1 axes may be dropped) and its errors (`indexed`: an index-array slot)."""
  shape, slot = shape_of(values), tuple(slot)
  while len(shape) > len(slot) and shape[0] == 1:
    shape = shape[1:]
  try:
    ok = np.broadcast_shapes(shape, slot) == slot
  except ValueError:
    ok = False
  if not ok:
    fmt = lambda s: "(" + ",".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"  # noqa: E731
    raise ValueError(
        f"shape mismatch: value array of shape {fmt(shape_of(values))} could not be broadcast "
        f"to indexing result of shape {fmt(slot)}" if indexed else
        f"could not broadcast input array from shape {fmt(shape_of(values))} into shape "
        f"{fmt(slot)}")
  return broadcast_to(_reshape(values, shape), slot)


def insert(arr, obj, values, axis=None):
  """Differentiable `numpy.insert`, in `arr` and in `values` (`obj`: an int, a slice, or ints
  or booleans)."""
  obj = _static(obj, "insert's obj")
  if not _traced(arr, values):
    return np.insert(arr, obj, values, axis)
  a, axis = _flat_axis(_operand(arr), axis)
  shape, n = list(shape_of(a)), shape_of(a)[axis]
  values = _cast(_operand(values), dtype_of(a))
  if isinstance(obj, slice):
    indices = np.arange(*obj.indices(n), dtype=np.intp)
  else:
    indices = np.array(obj)
    if indices.dtype == bool:
      if indices.ndim != 1:
        raise ValueError("boolean array argument obj to insert must be one dimensional")
      indices = np.flatnonzero(indices)
    elif indices.ndim > 1:
      raise ValueError("index array argument obj to insert must be one dimensional or scalar")
  if indices.size == 1:
    return _insert_block(a, axis, obj, int(indices.item()), indices.ndim, values)
  if indices.size == 0 and not isinstance(obj, np.ndarray):
    indices = indices.astype(np.intp)
  indices[indices < 0] += n
  numnew = len(indices)
  order = indices.argsort(kind="mergesort")
  indices[order] += np.arange(numnew)
  old = np.ones(n + numnew, dtype=bool)
  old[indices] = False
  source = np.empty(n + numnew, np.intp)
  source[old] = np.arange(n)
  source[indices] = n + np.arange(numnew)
  shape[axis] = numnew
  return _take(_concat([a, _assignable(values, shape, indexed=True)], axis), source, axis)


def _insert_block(a, axis, obj, index, index_ndim, values):
  """`numpy.insert` at a single position: `values` go in as one block."""
  shape, n = list(shape_of(a)), shape_of(a)[axis]
  if index < -n or index > n:
    raise IndexError(f"index {obj} is out of bounds for axis {axis} with size {n}")
  index += n if index < 0 else 0
  vshape = shape_of(values)
  values = _reshape(values, (1,) * (len(shape) - len(vshape)) + vshape)
  if index_ndim == 0:
    values = moveaxis(values, 0, axis)
  shape[axis] = shape_of(values)[axis]
  values = _assignable(values, shape)
  return _concat([_slice(a, None, index, axis), values, _slice(a, index, None, axis)], axis)


def delete(arr, obj, axis=None):
  """Differentiable `numpy.delete` (`obj`: an int, a slice, ints or a boolean mask)."""
  obj = _static(obj, "delete's obj")
  if not _traced(arr):
    return np.delete(arr, obj, axis)
  a, axis = _flat_axis(_operand(arr), axis)
  ndim, n = _ndim(a), shape_of(a)[axis]
  positions = np.arange(n).reshape((1,) * axis + (n,) + (1,) * (ndim - axis - 1))
  keep = np.delete(positions, obj, axis).reshape(-1)  # NumPy's checks and errors
  return _take(a, keep, axis)
