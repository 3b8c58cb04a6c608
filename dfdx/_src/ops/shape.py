"""Shape primitives: broadcast_to, reshape, transpose, concatenate, pad, slice, rev and
convert_element_type. All are linear in their array arguments.

Parameters are normalized by the wrappers (non-negative axes, tuples), so rules never see
negative axes. `dfdx.numpy` builds squeeze, expand_dims, stack, tile, repeat, roll, split,
flip, moveaxis and friends from these.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from dfdx._src import ad, batching, core, dtypes
from dfdx._src.batching import bdim_at_front, logical_axis, moveaxis
from dfdx._src.core import ShapedArray

# ---- broadcast_to -------------------------------------------------------------------------
broadcast_to_p = core.primitive("broadcast_to")


def broadcast_to(x, shape):
  """Broadcast `x` to `shape` with NumPy's rules (trailing axes aligned)."""
  shape = tuple(map(int, shape))
  if core.shape_of(x) == shape:
    return x
  return broadcast_to_p.bind(x, shape=shape)


_MATERIALIZE_BELOW = 1 << 16


def _broadcast_to_impl(x, *, shape):
  # Small results are written out (faster than a strided view, and writable); large ones
  # stay views, with no copy. (Compiled code does the same: codegen_rules.py.)
  if written_out(shape):
    return _broadcast_written(x, shape)
  return np.broadcast_to(np.asarray(x), shape)


def written_out(shape):
  """Whether broadcast_to's result of `shape` is written out (else it is a view)."""
  return math.prod(shape) < _MATERIALIZE_BELOW


def _broadcast_written(x, shape):
  """x broadcast to `shape`, written out in C order. Also the generated code's helper of
  that name (codegen_rules copies its source)."""
  out = np.empty(shape, np.asarray(x).dtype)
  out[...] = x
  return out


def _broadcast_to_abstract_eval(x, *, shape):
  if np.broadcast_shapes(x.shape, shape) != shape:  # raises NumPy's error if incompatible
    raise ValueError(f"broadcast_to: cannot broadcast an array of shape {x.shape} to {shape}")
  return ShapedArray(shape, x.dtype, x.weak_type)


def _broadcast_to_transpose(ct, x, *, shape):
  return [sum_to_shape(ct, x.shape)]


def _broadcast_to_batch(axis_size, vals, dims, *, shape):
  (x,), (d,) = vals, dims
  x = moveaxis(x, d, 0)
  missing = len(shape) - (x.ndim - 1)
  if missing:
    x = reshape(x, x.shape[:1] + (1,) * missing + x.shape[1:])
  return broadcast_to_p.bind(x, shape=(axis_size,) + shape), 0


broadcast_to_p.def_impl(_broadcast_to_impl)
broadcast_to_p.def_abstract_eval(_broadcast_to_abstract_eval)
ad.deflinear(broadcast_to_p, _broadcast_to_transpose)
ad.summing_transposes.add(broadcast_to_p)
batching.primitive_batchers[broadcast_to_p] = _broadcast_to_batch


def sum_to_shape(x, shape):
  """Sum `x` down to `shape`, undoing a NumPy broadcast (the transpose of broadcasting).
  `x` may be a pending cotangent with its own `sum_to_shape` (see ad.summing_transposes)."""
  if isinstance(x, ad.PendingCotangent):
    return x.sum_to_shape(shape)
  if x.shape == shape:
    return x
  axes = summed_axes(x.shape, shape)
  if axes:
    x = reduction.reduce_sum(x, axes)
  return reshape(x, shape) if core.shape_of(x) != shape else x


def sum_to_shape_eager(x, shape):
  """sum_to_shape of a NumPy array (or scalar) by the impls of the primitives it binds (see
  ad.eager_vjps)."""
  axes = summed_axes(x.shape, shape)
  if axes:
    x = reduction.reduce_sum_p.impl(x, axes=axes)
  return x.reshape(shape) if x.shape != shape else x


@functools.lru_cache(maxsize=1024)
def summed_axes(from_shape, to_shape):
  """The axes that sum_to_shape sums to take `from_shape` to `to_shape` (tuples): the
  leading ones and those of size 1 in `to_shape` only."""
  lead = len(from_shape) - len(to_shape)
  return tuple(range(lead)) + tuple(
      lead + i for i, d in enumerate(to_shape) if d == 1 and from_shape[lead + i] != 1)


# ---- reshape ------------------------------------------------------------------------------
reshape_p = core.primitive("reshape")


def reshape(x, shape):
  """Reshape to `shape` (fully specified, no -1)."""
  shape = tuple(map(int, shape))
  if core.shape_of(x) == shape:
    return x
  return reshape_p.bind(x, shape=shape)


def _reshape_abstract_eval(x, *, shape):
  if int(np.prod(shape, dtype=np.int64)) != x.size:
    raise ValueError(f"cannot reshape an array of shape {x.shape} (size {x.size}) into {shape}")
  return ShapedArray(shape, x.dtype, x.weak_type)


def _reshape_batch(axis_size, vals, dims, *, shape):
  (x,), (d,) = vals, dims
  if _batch_last_is_cheaper(x, d):
    return reshape_p.bind(moveaxis(x, d, x.ndim - 1), shape=shape + (axis_size,)), len(shape)
  return reshape_p.bind(moveaxis(x, d, 0), shape=(axis_size,) + shape), 0


def _batch_last_is_cheaper(x, d):
  """Whether a concrete `x` whose batch axis `d` is not its outermost one in memory is better
  reshaped with the batch axis last: the per-example reshape (C order) is then a view when
  the batch axis is innermost, and otherwise a copy that reads memory in nearby blocks
  instead of striding through all of it once per batch element. (The values are the same
  either way: only where the output's batch axis lies differs.)"""
  if (type(x) is not np.ndarray or x.ndim < 2 or x.size < batching.LAYOUT_MIN_SIZE
      or d == 0 and x.flags.c_contiguous):
    return False
  strides, shape = x.strides, x.shape
  outer = max((abs(s) for i, (s, n) in enumerate(zip(strides, shape)) if i != d and n > 1),
              default=0)
  return shape[d] > 1 and abs(strides[d]) < outer


reshape_p.def_impl(lambda x, *, shape: np.asarray(x).reshape(shape))
reshape_p.def_abstract_eval(_reshape_abstract_eval)
ad.deflinear(reshape_p, lambda ct, x, *, shape: [reshape(ct, x.shape)])
ad.deftranspose_eager(reshape_p, lambda ct, x, *, shape: [ct.reshape(x.shape)])
batching.primitive_batchers[reshape_p] = _reshape_batch

# ---- transpose ----------------------------------------------------------------------------
transpose_p = core.primitive("transpose")


def transpose(x, perm):
  """Permute the axes of `x`: output axis i is input axis perm[i]."""
  perm = tuple(map(int, perm))
  if perm == tuple(range(len(perm))):
    return x
  return transpose_p.bind(x, perm=perm)


def _transpose_abstract_eval(x, *, perm):
  if sorted(perm) != list(range(x.ndim)):
    raise ValueError(f"transpose: perm {perm} is not a permutation of the {x.ndim} axes of {x}")
  return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype, x.weak_type)


@functools.lru_cache(maxsize=1024)
def _inverse_permutation(perm):
  return tuple(int(i) for i in np.argsort(perm))


def _transpose_transpose(ct, x, *, perm):
  return [transpose(ct, _inverse_permutation(perm))]


def _transpose_batch(axis_size, vals, dims, *, perm):
  (x,), (d,) = vals, dims
  return transpose_p.bind(x, perm=(d,) + tuple(logical_axis(p, d) for p in perm)), 0


transpose_p.def_impl(lambda x, *, perm: np.asarray(x).transpose(perm))
transpose_p.def_abstract_eval(_transpose_abstract_eval)
ad.deflinear(transpose_p, _transpose_transpose)
batching.primitive_batchers[transpose_p] = _transpose_batch

# ---- concatenate --------------------------------------------------------------------------
concatenate_p = core.primitive("concatenate")


def concatenate(xs, axis):
  """Join arrays of equal rank along an existing axis (non-negative)."""
  xs = list(xs)
  if len(xs) == 1:
    return xs[0]
  return concatenate_p.bind(*xs, axis=int(axis))


def _concatenate_abstract_eval(*xs, axis):
  first = xs[0].shape
  for x in xs[1:]:
    if len(x.shape) != len(first) or any(
        a != b for i, (a, b) in enumerate(zip(x.shape, first)) if i != axis):
      raise ValueError(f"concatenate: shapes {[x.shape for x in xs]} do not agree except along "
                       f"axis {axis}")
  shape = first[:axis] + (sum(x.shape[axis] for x in xs),) + first[axis + 1:]
  return ShapedArray(shape, dtypes.result_type(*xs), dtypes.result_weak_type(*xs))


def _concatenate_jvp(primals, tangents, *, axis):
  ans = concatenate_p.bind(*primals, axis=axis)
  dtype = ans.dtype
  if dtype.kind not in "fc":
    return ans, None
  tangents = [ad.tangent_ops.zeros(ShapedArray(p.shape, dtype)) if t is None else t
              for p, t in zip(primals, tangents)]
  return ans, concatenate_p.bind(*tangents, axis=axis)


def _concatenate_transpose(ct, *xs, axis):
  cts, start = [], 0
  for x in xs:
    size = x.shape[axis]
    if ad.is_linear(x):
      cts.append(slice_in_dim(ct, start, start + size, axis))
    else:
      cts.append(None)
    start += size
  return cts


def _concatenate_batch(axis_size, vals, dims, *, axis):
  xs = [bdim_at_front(x, d, axis_size) for x, d in zip(vals, dims)]
  return concatenate_p.bind(*xs, axis=axis + 1), 0


concatenate_p.def_impl(lambda *xs, axis: np.concatenate(xs, axis=axis))
concatenate_p.def_abstract_eval(_concatenate_abstract_eval)
ad.deflinear_rules(concatenate_p, _concatenate_jvp, _concatenate_transpose)
batching.primitive_batchers[concatenate_p] = _concatenate_batch

# ---- pad (with zeros; lo, hi and interior padding per axis) -----------------------------
pad_p = core.primitive("pad")


def pad(x, config):
  """Pad `x` with zeros: `config` holds one (lo, hi, interior) triple per axis, all >= 0.
  Interior padding inserts that many zeros between neighbouring elements."""
  config = tuple((int(lo), int(hi), int(interior)) for lo, hi, interior in config)
  if all(c == (0, 0, 0) for c in config):
    return x
  return pad_p.bind(x, config=config)


def _padded_size(n, lo, hi, interior):
  return lo + hi + n + max(n - 1, 0) * interior


def _pad_impl(x, *, config):
  x = np.asarray(x)
  out = np.zeros(tuple(_padded_size(n, *c) for n, c in zip(x.shape, config)), x.dtype)
  out[tuple(slice(lo, lo + _padded_size(n, 0, 0, interior), interior + 1)
            for n, (lo, hi, interior) in zip(x.shape, config))] = x
  return out


def _pad_abstract_eval(x, *, config):
  if len(config) != x.ndim:
    raise ValueError(f"pad: got {len(config)} (lo, hi, interior) triples for an array of "
                     f"rank {x.ndim}")
  return ShapedArray(tuple(_padded_size(n, *c) for n, c in zip(x.shape, config)), x.dtype,
                     x.weak_type)


def _pad_transpose(ct, x, *, config):
  shape = core.shape_of(x)
  return [slice_p.bind(ct, start=tuple(lo for lo, _, _ in config),
                       limit=tuple(lo + _padded_size(n, 0, 0, i)
                                   for n, (lo, _, i) in zip(shape, config)),
                       strides=tuple(i + 1 for _, _, i in config))]


def _pad_batch(axis_size, vals, dims, *, config):
  (x,), (d,) = vals, dims
  config = config[:d] + ((0, 0, 0),) + config[d:]
  return pad_p.bind(x, config=config), d


pad_p.def_impl(_pad_impl)
pad_p.def_abstract_eval(_pad_abstract_eval)
ad.deflinear(pad_p, _pad_transpose)
batching.primitive_batchers[pad_p] = _pad_batch

# ---- slice (start, limit, positive strides per axis) -------------------------------------
slice_p = core.primitive("slice")


def slice_array(x, start, limit, strides=None):
  """`x[start[0]:limit[0]:strides[0], ...]` with non-negative, in-range bounds."""
  shape = core.shape_of(x)
  start, limit = tuple(map(int, start)), tuple(map(int, limit))
  strides = (1,) * len(start) if strides is None else tuple(map(int, strides))
  if start == (0,) * len(shape) and limit == shape and all(s == 1 for s in strides):
    return x
  return slice_p.bind(x, start=start, limit=limit, strides=strides)


def slice_in_dim(x, start, limit, axis, stride=1):
  """Slice along one axis."""
  shape = core.shape_of(x)
  starts, limits, strides = [0] * len(shape), list(shape), [1] * len(shape)
  starts[axis], limits[axis], strides[axis] = start, limit, stride
  return slice_array(x, starts, limits, strides)


def _slice_out_shape(start, limit, strides):
  return tuple(max(0, -(-(hi - lo) // st)) for lo, hi, st in zip(start, limit, strides))


def _slice_impl(x, *, start, limit, strides):
  if type(x) is not np.ndarray:
    x = np.asarray(x)
  return x[tuple(map(slice, start, limit, strides))]


def _slice_abstract_eval(x, *, start, limit, strides):
  if not (len(start) == len(limit) == len(strides) == x.ndim) or any(
      not 0 <= a <= b <= n or c < 1 for a, b, c, n in zip(start, limit, strides, x.shape)):
    raise ValueError(f"slice: start {start}, limit {limit} and strides {strides} do not fit "
                     f"an array of shape {x.shape}")
  return ShapedArray(_slice_out_shape(start, limit, strides), x.dtype, x.weak_type)


def _slice_pad_config(shape, start, limit, strides):
  """The pad config that puts a slice's values back where they came from in `shape`."""
  out = _slice_out_shape(start, limit, strides)
  return tuple((lo, n - lo - (_padded_size(m, 0, 0, st - 1) if m else 0), st - 1)
               for lo, n, m, st in zip(start, shape, out, strides))


def _slice_transpose(ct, x, *, start, limit, strides):
  return [SliceCotangents(x.aval, None, [(ct, start, limit, strides)])]


class SliceCotangents(ad.PendingCotangent):
  """The cotangent of an array from the cotangents of its slices, left unsummed while the
  reverse pass collects them (see ad.PendingCotangent): the sum of each slice's cotangent
  padded with zeros to the array's shape, after a dense `base` (or None). A vector of
  parameters split into pieces (x[..., 0:3], x[..., 3:6], x[..., 6:7], ...) gets one
  cotangent per piece; padding each to the whole and adding them up writes the whole array
  once per piece, where slices that do not overlap along one axis are joined by one
  concatenate (zeros in the gaps). Overlapping or strided slices are padded and added in the
  order they came, as before. Either way each entry sums the same terms in the same order
  (the joined form leaves out adding zeros, which changes at most the sign of a zero)."""
  __slots__ = ("aval", "base", "parts")

  def __init__(self, aval, base, parts):
    self.aval, self.base, self.parts = aval, base, parts  # parts: (ct, start, limit, strides)

  def add(self, ct):
    if isinstance(ct, SliceCotangents) and ct.base is None and ct.aval.shape == self.aval.shape:
      return SliceCotangents(self.aval, self.base, self.parts + ct.parts)
    if isinstance(ct, ad.PendingCotangent):
      ct = ct.materialize()
    return ad.tangent_ops.add(self.materialize(), ct)

  def radd(self, ct):
    if self.base is None:
      return SliceCotangents(self.aval, ct, self.parts)
    return ad.tangent_ops.add(ct, self.materialize())

  def materialize(self):
    shape, parts = self.aval.shape, self.parts
    joined = _join_slices(shape, parts) if len(parts) > 1 else None
    if joined is None:
      out = self.base
      for ct, start, limit, strides in parts:
        padded = pad(ct, _slice_pad_config(shape, start, limit, strides))
        out = padded if out is None else ad.tangent_ops.add(out, padded)
      return out
    return joined if self.base is None else ad.tangent_ops.add(self.base, joined)


def _join_slices(shape, parts):
  """The sum of the padded `parts` as one concatenate along the one axis they slice, when
  they are unit-stride slices of that axis only and do not overlap; else None."""
  axis = None
  for _, start, limit, strides in parts:
    for i, (lo, hi, st, n) in enumerate(zip(start, limit, strides, shape)):
      if (lo, hi, st) != (0, n, 1):
        if st != 1 or (axis is not None and axis != i):
          return None
        axis = i
  if axis is None:
    return None
  pieces, end = [], 0
  dtype = np.result_type(*[ct.dtype for ct, _, _, _ in parts])
  for ct, start, limit, _ in sorted(parts, key=lambda p: p[1][axis]):
    lo, hi = start[axis], limit[axis]
    if lo < end or hi <= lo:
      return None
    if lo > end:
      pieces.append(np.zeros(shape[:axis] + (lo - end,) + shape[axis + 1:], dtype))
    pieces.append(ct)
    end = hi
  if end < shape[axis]:
    pieces.append(np.zeros(shape[:axis] + (shape[axis] - end,) + shape[axis + 1:], dtype))
  return concatenate(pieces, axis)


def _slice_batch(axis_size, vals, dims, *, start, limit, strides):
  (x,), (d,) = vals, dims
  n = core.shape_of(x)[d]
  return slice_p.bind(x, start=start[:d] + (0,) + start[d:], limit=limit[:d] + (n,) + limit[d:],
                      strides=strides[:d] + (1,) + strides[d:]), d


slice_p.def_impl(_slice_impl)
slice_p.def_abstract_eval(_slice_abstract_eval)
ad.deflinear(slice_p, _slice_transpose)
batching.primitive_batchers[slice_p] = _slice_batch

# ---- rev (reverse the order of elements along axes) --------------------------------------
rev_p = core.primitive("rev")


def rev(x, axes):
  axes = tuple(map(int, axes))
  return x if not axes else rev_p.bind(x, axes=axes)


def _rev_batch(axis_size, vals, dims, *, axes):
  (x,), (d,) = vals, dims
  return rev_p.bind(x, axes=tuple(logical_axis(a, d) for a in axes)), d


rev_p.def_impl(lambda x, *, axes: np.flip(x, axes))
rev_p.def_abstract_eval(lambda x, *, axes: x)
ad.deflinear(rev_p, lambda ct, x, *, axes: [rev(ct, axes)])
batching.primitive_batchers[rev_p] = _rev_batch

# ---- convert_element_type -----------------------------------------------------------------
convert_element_type_p = core.primitive("convert_element_type")


def convert_element_type(x, dtype):
  """Cast to `dtype` (NumPy's `astype`). The derivative passes through casts between
  floating types; a cast to an integer or boolean type has a zero derivative."""
  dtype = np.dtype(dtype)
  aval = core.get_aval(x)
  if aval.dtype == dtype and not aval.weak_type:
    return x
  return convert_element_type_p.bind(x, new_dtype=dtype)


def _convert_impl(x, *, new_dtype):
  x = np.asarray(x)
  if x.dtype.kind == "c" and new_dtype.kind != "c":  # the real part (NumPy's cast, unwarned)
    x = x.real
  return x.astype(new_dtype)


def _convert_jvp(primals, tangents, *, new_dtype):
  (x,), (x_dot,) = primals, tangents
  ans = convert_element_type_p.bind(x, new_dtype=new_dtype)
  if new_dtype.kind not in "fc":
    return ans, None
  return ans, convert_element_type_p.bind(x_dot, new_dtype=new_dtype)


def _convert_transpose(ct, x, *, new_dtype):
  return [convert_element_type_p.bind(ct, new_dtype=x.aval.dtype)]


convert_element_type_p.def_impl(_convert_impl)
convert_element_type_p.def_abstract_eval(
    lambda x, *, new_dtype: ShapedArray(x.shape, new_dtype))
ad.deflinear_rules(convert_element_type_p, _convert_jvp, _convert_transpose)
batching.defvectorized(convert_element_type_p)

# ---- wiring ---------------------------------------------------------------------------------
ad.tangent_ops.broadcast_to = broadcast_to
ad.tangent_ops.convert = convert_element_type
ad.tangent_ops.zeros = lambda aval: np.zeros(aval.shape, aval.dtype)

from dfdx._src.ops import reduction  # noqa: E402  (sum_to_shape uses reduce_sum; see its module)
