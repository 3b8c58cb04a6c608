"""Indexing primitives: gather (NumPy's `x[index]` with integer index arrays), scatter_add
(`numpy.add.at`), scatter (`x[index] = updates`), scatter_mul (`numpy.multiply.at`), and
scatter_min and scatter_max (`numpy.minimum.at`, `numpy.maximum.at`).

An index is described statically by `spec`, a tuple with one entry per index position:
  None                 a new unit axis (numpy.newaxis);
  Ellipsis             `...` (it separates index arrays, as in NumPy, even when it is empty);
  int                  an integer;
  (start, stop, step)  a slice (entries may be None);
  ArrayIndex(k)        the k-th index-array operand (integer dtype; negative entries count
                       from the end, as in NumPy).
Every primitive applies its index exactly as NumPy does, including where the axes of the
index arrays go (in place when the advanced indices are adjacent, first otherwise). Index
arrays are never differentiated. Basic indexing (no index arrays) is built by `dfdx.numpy`
from the shape primitives; these primitives are for advanced indexing and for updates.

The scatters take `updates` of exactly the indexed shape and x's dtype (the wrappers of
`dfdx.numpy` broadcast and cast them). Repeated positions: scatter_add, scatter_mul,
scatter_min and scatter_max combine every update; scatter keeps NumPy's write (the last), and its transpose sends the
cotangent to that update only, so its derivative is exact too.

Imports the shape, reduction and elementwise families; never `dfdx.numpy`.
"""
from __future__ import annotations

import math

import numpy as np

from dfdx._src import ad, batching, core, errors
from dfdx._src.batching import NOT_MAPPED, bdim_at_front, moveaxis
from dfdx._src.core import ShapedArray, Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops


class ArrayIndex:
  """In a `spec`: the index-array operand number `k`."""
  __slots__ = ("k",)

  def __init__(self, k: int):
    self.k = int(k)

  def __eq__(self, other):
    return type(other) is ArrayIndex and other.k == self.k

  def __hash__(self):
    return hash(("ArrayIndex", self.k))

  def __repr__(self):
    return f"ArrayIndex({self.k})"


_FULL = (None, None, None)


def _normalize_spec(spec, num_arrays: int) -> tuple:
  """`spec` as a hashable tuple (Python slices become (start, stop, step)), checked against
  the number of index arrays."""
  out = []
  for e in spec:
    if isinstance(e, slice):
      e = (e.start, e.stop, e.step)
    elif isinstance(e, (int, np.integer)) and not isinstance(e, (bool, np.bool_)):
      e = int(e)
    elif not (e is None or e is Ellipsis or type(e) is ArrayIndex
              or (type(e) is tuple and len(e) == 3)):
      raise TypeError(f"index spec entry {e!r} is not None, Ellipsis, an int, a slice or an "
                      "ArrayIndex")
    out.append(e)
  used = sorted(e.k for e in out if type(e) is ArrayIndex)
  if used != list(range(num_arrays)):
    raise ValueError(f"index spec {tuple(out)} must refer to each of its {num_arrays} index "
                     f"arrays exactly once")
  return tuple(out)


def _has_arrays(spec) -> bool:
  return any(type(e) is ArrayIndex for e in spec)


def _np_index(spec, arrays):
  """The NumPy index that `spec` describes, with the index arrays filled in."""
  out = []
  for e in spec:
    if type(e) is tuple:
      e = slice(*e)
    elif type(e) is ArrayIndex:
      e = arrays[e.k]
    out.append(e)
  return tuple(out)


def _layout(x_shape, spec, index_shapes):
  """Where the axes of `x[index]` come from: (before, block, after, leading), where `block` is
  the broadcast shape of the index arrays, `before`/`after` the basic axes on either side of
  it, and `leading` tells that NumPy put the block first because the advanced indices (index
  arrays, and integers when there are index arrays) are not adjacent. Raises NumPy's
  IndexError for an index that does not fit `x_shape`."""
  arrays = _has_arrays(spec)
  consumed = sum(e is not None and e is not Ellipsis for e in spec)
  if consumed > len(x_shape):
    raise IndexError(f"too many indices for array: array is {len(x_shape)}-dimensional, but "
                     f"{consumed} were indexed")
  rest, basic, advanced, first, dim = len(x_shape) - consumed, [], [], None, 0
  for pos, e in enumerate(spec if Ellipsis in spec else spec + (Ellipsis,)):
    if e is None:
      basic.append(1)
    elif e is Ellipsis:
      basic.extend(x_shape[dim:dim + rest])
      dim += rest
    else:
      n = x_shape[dim]
      if type(e) is tuple:
        basic.append(len(range(*slice(*e).indices(n))))
      else:
        if type(e) is int and not -n <= e < n:
          raise IndexError(f"index {e} is out of bounds for axis {dim} with size {n}")
        if arrays:
          advanced.append(pos)
          first = len(basic) if first is None else first
      dim += 1
  if not arrays:
    return tuple(basic), (), (), False
  block = _broadcast_index_shapes(index_shapes)
  leading = advanced != list(range(advanced[0], advanced[0] + len(advanced)))
  p = 0 if leading else first
  return tuple(basic[:p]), block, tuple(basic[p:]), leading


def _broadcast_index_shapes(shapes):
  try:
    return tuple(np.broadcast_shapes(*shapes))
  except ValueError:
    raise IndexError("shape mismatch: indexing arrays could not be broadcast together with "
                     f"shapes {' '.join(str(tuple(s)) for s in shapes)}") from None


def index_shape(x_shape, spec, index_shapes) -> tuple:
  """The shape of `x[index]` for an `x` of shape `x_shape`."""
  before, block, after, _ = _layout(tuple(x_shape), spec, [tuple(s) for s in index_shapes])
  return before + block + after


def _index_abstract_eval(x, indices, spec, name):
  for i, a in enumerate(indices):
    if a.dtype.kind not in "iu":
      raise IndexError(f"{name}: index array {i} has dtype {a.dtype}; index arrays must be "
                       "integers (boolean masks are converted with numpy.nonzero first)")
  return index_shape(x.shape, spec, [a.shape for a in indices])


# ---- batching helpers -------------------------------------------------------------------------


def _front(d, n):
  return [d] + [i for i in range(n) if i != d]


def _batch_index(x_shape, spec, indices, dims, axis_size, x_batched):
  """A spec and index arrays that index batched operands in one go (x's batch axis first
  when `x_batched`; index arrays' at `dims`), and `perm`: transposing the result by `perm`
  gives (batch axis, per-example result axes)."""
  shapes = [_unbatched_shape(a, d) for a, d in zip(indices, dims)]
  before, block, after, leading = _layout(x_shape, spec, shapes)
  nb, nk, n = len(before), len(block), 1 + len(before) + len(block) + len(after)
  if all(d is NOT_MAPPED for d in dims):  # a leading ':' for x's batch axis
    return (_FULL,) + spec, list(indices), _front(nk if leading else 0, n)
  new = [a if d is NOT_MAPPED else _expand(moveaxis(a, d, 0), nk) for a, d in
         zip(indices, dims)]
  if not x_batched:  # the batch axis joins the block of index axes, at its front
    return spec, new, _front(nb, n)
  arange = np.arange(axis_size).reshape((axis_size,) + (1,) * nk)
  perm = [0] + list(range(1 + nk, 1 + nk + nb)) + list(range(1, 1 + nk)) + list(
      range(1 + nk + nb, n))
  return (ArrayIndex(len(indices)),) + spec, new + [arange], perm


def _unbatched_shape(a, d):
  shape = core.shape_of(a)
  return shape if d is NOT_MAPPED else shape[:d] + shape[d + 1:]


def _expand(a, rank):
  """A batched index array (batch axis first) with unit axes after the batch axis, so that it
  broadcasts against the other index arrays to (batch,) + block."""
  shape = core.shape_of(a)
  return shape_ops.reshape(a, shape[:1] + (1,) * (rank - len(shape) + 1) + shape[1:])


def _batch_first(out, perm):
  rest = list(perm[1:])
  if rest == sorted(rest):
    return out, perm[0]
  return shape_ops.transpose(out, perm), 0


def _scatter_batch(prim):
  def rule(axis_size, vals, dims, *, spec):
    (x, updates, *indices), (x_dim, u_dim, *dims_i) = vals, dims
    x = bdim_at_front(x, x_dim, axis_size)
    updates = bdim_at_front(updates, u_dim, axis_size)
    new_spec, new_indices, perm = _batch_index(core.shape_of(x)[1:], spec, indices, dims_i,
                                               axis_size, True)
    updates = shape_ops.transpose(updates, tuple(np.argsort(perm)))
    return prim.bind(x, updates, *new_indices, spec=new_spec), 0
  return rule


# ---- gather -----------------------------------------------------------------------------------
gather_p = core.primitive("gather")


def gather(x, indices, spec):
  """`x[index]` with NumPy's semantics, the index given by `spec` and the integer arrays
  `indices` (see the module docstring). Linear in x."""
  indices = [a if isinstance(a, Tracer) else np.asarray(a) for a in indices]
  return gather_p.bind(x, *indices, spec=_normalize_spec(spec, len(indices)))


def take_axis(spec, shape):
  """The axis k when `spec` is `[:, ..., :, idx]` (full slices, in any spelling, then one
  index array at axis k, then full slices), else None. NumPy's `take` along k computes it
  into a contiguous result, where fancy indexing past axis 0 gives a strided one that a later
  reshape copies."""
  axis = None
  for i, e in enumerate(spec):
    if type(e) is ArrayIndex and axis is None:
      axis = i
    elif not (type(e) is tuple and i < len(shape) and
              (e == _FULL or slice(*e).indices(shape[i]) == (0, shape[i], 1))):
      return None
  return axis


def _gather_impl(x, *indices, spec):
  x = np.asarray(x)
  if len(indices) == 1 and np.asarray(indices[0]).dtype.kind in "iu":
    axis = take_axis(spec, x.shape)
    if axis is not None:
      return np.take(x, indices[0], axis=axis)
  return x[_np_index(spec, indices)]


def _gather_abstract_eval(x, *indices, spec):
  return ShapedArray(_index_abstract_eval(x, indices, spec, "gather"), x.dtype, x.weak_type)


def _gather_jvp(primals, tangents, *, spec):
  (x, *indices), x_dot = primals, tangents[0]
  ans = gather_p.bind(x, *indices, spec=spec)
  return ans, None if x_dot is None else gather_p.bind(x_dot, *indices, spec=spec)


def _gather_transpose(ct, x, *indices, spec):
  aval = core.get_aval(x)
  zeros = np.zeros(aval.shape, aval.dtype)
  return [scatter_add_p.bind(zeros, ct, *indices, spec=spec)] + [None] * len(indices)


def _gather_batch(axis_size, vals, dims, *, spec):
  (x, *indices), (x_dim, *dims_i) = vals, dims
  x_batched = x_dim is not NOT_MAPPED
  if (x_batched and len(indices) == 1 and dims_i[0] is NOT_MAPPED and type(x) is np.ndarray
      and type(indices[0]) is np.ndarray):
    # `x[..., idx, ...]` along one axis, of a concrete batched x by an unbatched index: with
    # the batch axis last, every index copies one block holding all the batch elements
    # (NumPy's take), where batch-first copies one small block per element and index. The
    # result keeps the batch axis last: a later reshape of it is then a view.
    shape = x.shape[:x_dim] + x.shape[x_dim + 1:]
    axis = take_axis(spec, shape)
    if (axis is not None and len(spec) <= len(shape) and indices[0].dtype.kind in "iu"
        and indices[0].size >= shape[axis]
        and x.size // max(shape[axis], 1) * indices[0].size >= batching.LAYOUT_MIN_SIZE):
      out = gather_p.bind(moveaxis(x, x_dim, x.ndim - 1), *indices, spec=spec)
      return out, out.ndim - 1
  x = moveaxis(x, x_dim, 0) if x_batched else x
  x_shape = core.shape_of(x)[1:] if x_batched else core.shape_of(x)
  new_spec, new_indices, perm = _batch_index(x_shape, spec, indices, dims_i, axis_size,
                                             x_batched)
  return _batch_first(gather_p.bind(x, *new_indices, spec=new_spec), perm)


gather_p.def_impl(_gather_impl)
gather_p.def_abstract_eval(_gather_abstract_eval)
ad.deflinear_rules(gather_p, _gather_jvp, _gather_transpose)
batching.primitive_batchers[gather_p] = _gather_batch


# ---- scatter_add (numpy.add.at: repeated positions accumulate) ------------------------------
scatter_add_p = core.primitive("scatter_add")


def scatter_add(x, updates, indices, spec):
  """A copy of `x` with `updates` added at `x[index]` (numpy.add.at). `updates` has the
  indexed shape and x's dtype. Linear in (x, updates) jointly."""
  indices = [a if isinstance(a, Tracer) else np.asarray(a) for a in indices]
  return scatter_add_p.bind(x, updates, *indices, spec=_normalize_spec(spec, len(indices)))


def _scatter_impl(ufunc):
  def impl(x, updates, *indices, spec):
    if ufunc is np.add and len(indices) == 1 and np.size(updates) >= _PLANNED_MIN_SIZE:
      out = _planned_scatter_add(x, updates, indices[0], spec)
      if out is not None:
        return out
    out = np.array(x, copy=True)
    index = _np_index(spec, indices)
    if ufunc is None:
      out[index] = updates
    else:
      ufunc.at(out, index, updates)
    return out
  return impl


# Below this many updates np.add.at is faster than planning (about 10 us; measured: 2500
# updates 20 us by np.add.at, 10 us planned; 20 updates 2.4 and 12.5 us).
_PLANNED_MIN_SIZE = 1024


def scatter_add_plan(index, n):
  """(once_dst, once_src, rep_dst, rep_src, rep_starts, fills) for adding updates at the
  1-d integer `index` of an axis of length n into zeros, or None if an index is out of
  bounds: positions updated once take their update (a gather), positions updated several
  times the sum of theirs (np.add.reduceat over the updates sorted stably by position);
  `fills` tells that every position is updated. 3-5x faster than np.add.at, which visits
  the updates one by one. The stable sort is NumPy's radix sort on 16-bit keys, in two
  passes past 65536 positions (8x faster than its merge sort of 64-bit ones). Shared by the
  impl and the generated code (codegen_rules)."""
  index = np.asarray(index).astype(np.intp)
  if index.ndim != 1 or not index.size or index.min() < -n or index.max() >= n:
    return None
  index = index % n
  if n <= 1 << 16:
    order = np.argsort(index.astype(np.uint16), kind="stable")
  elif n <= 1 << 32:
    order = np.argsort((index & 0xFFFF).astype(np.uint16), kind="stable")
    order = order[np.argsort((index[order] >> 16).astype(np.uint16), kind="stable")]
  else:
    order = np.argsort(index, kind="stable")
  ordered = index[order]
  starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
  counts = np.diff(np.r_[starts, ordered.size])
  once, rep = counts == 1, counts > 1
  rep_src = order[np.repeat(rep, counts)]  # the updates of repeated positions, by position
  rep_starts = np.r_[0, np.cumsum(counts[rep])[:-1]].astype(np.intp) if rep.any() else \
      np.zeros(0, np.intp)
  return (ordered[starts[once]], order[starts[once]], ordered[starts[rep]], rep_src, rep_starts,
          starts.size == n)


def _planned_scatter_add(x, updates, index, spec):
  """scatter_add into zeros (a gather's transpose) along one axis by `scatter_add_plan`, or
  None where it does not apply (another index form, a nonzero base: np.add.at then keeps
  its order of summation)."""
  x = np.asarray(x)
  axis = take_axis(spec, x.shape)
  if axis is None or index.dtype.kind not in "iu" or x.dtype.kind not in "iufc" or x.any():
    return None
  return _scatter_add_zeros(x.shape, np.asarray(updates, x.dtype), axis, index)


_scatter_plans = {}  # id(index) -> (a copy of the index, axis length, plan)


def _scatter_add_zeros(shape, updates, axis, index):
  """Zeros of `shape` with `updates` added at the 1-d integer `index` along `axis`, by
  scatter_add_plan; the plan is kept for the index array while its values last (the
  gradient of indexing by the same index array, call after call). An index out of bounds
  gets np.add.at's IndexError. Also the generated code's helper of that name (codegen_rules
  copies its source, with a table of plans of its own)."""
  n = shape[axis]
  cached = _scatter_plans.get(id(index))
  if cached is not None and cached[1] == n and np.array_equal(cached[0], index):
    plan = cached[2]
  else:
    plan = scatter_add_plan(index, n)
    if plan is None:
      out = np.zeros(shape, updates.dtype)
      np.add.at(out, (slice(None),) * axis + (index,), updates)
      return out
    if len(_scatter_plans) > 64:
      _scatter_plans.clear()
    _scatter_plans[id(index)] = (np.array(index, copy=True), n, plan)
  return _scatter_add_axis(shape, updates, axis, plan)


def _scatter_add_axis(shape, updates, axis, plan):
  """Zeros of `shape` with `updates` added along `axis` by `plan` (scatter_add_plan). Also
  the generated code's helper of that name (codegen_rules copies its source)."""
  once_dst, once_src, rep_dst, rep_src, rep_starts, fills = plan
  lead = (slice(None),) * axis
  out = (np.empty if fills else np.zeros)(shape, updates.dtype)
  if once_dst.size:
    out[lead + (once_dst,)] = np.take(updates, once_src, axis=axis)
  if rep_dst.size:
    out[lead + (rep_dst,)] = np.add.reduceat(np.take(updates, rep_src, axis=axis),
                                             rep_starts, axis=axis)
  return out


def _scatter_abstract_eval(name):
  def abstract_eval(x, updates, *indices, spec):
    shape = _index_abstract_eval(x, indices, spec, name)
    if updates.shape != shape or updates.dtype != x.dtype:
      raise ValueError(f"{name}: updates are {updates.str_short()}, but indexing "
                       f"{x.str_short()} gives {x.dtype.name}[{','.join(map(str, shape))}]; "
                       "broadcast and cast the updates first (dfdx.numpy's .at[] does)")
    return ShapedArray(x.shape, x.dtype, x.weak_type)
  return abstract_eval


def _zeros_if_none(t, like):
  if t is not None:
    return t
  aval = core.get_aval(like)
  return np.zeros(aval.shape, aval.dtype)


def _scatter_add_jvp(primals, tangents, *, spec):
  (x, updates, *indices), (x_dot, u_dot, *_) = primals, tangents
  ans = scatter_add_p.bind(x, updates, *indices, spec=spec)
  if u_dot is None:
    return ans, x_dot
  return ans, scatter_add_p.bind(_zeros_if_none(x_dot, x), u_dot, *indices, spec=spec)


def _scatter_add_transpose(ct, x, updates, *indices, spec):
  return [ct if ad.is_linear(x) else None,
          gather_p.bind(ct, *indices, spec=spec) if ad.is_linear(updates) else None
          ] + [None] * len(indices)


scatter_add_p.def_impl(_scatter_impl(np.add))
scatter_add_p.def_abstract_eval(_scatter_abstract_eval("scatter_add"))
ad.deflinear_rules(scatter_add_p, _scatter_add_jvp, _scatter_add_transpose)
batching.primitive_batchers[scatter_add_p] = _scatter_batch(scatter_add_p)


# ---- scatter (x[index] = updates; NumPy keeps the last write to a repeated position) ------
scatter_p = core.primitive("scatter")


def scatter(x, updates, indices, spec):
  """A copy of `x` with `x[index] = updates`. `updates` has the indexed shape and x's dtype.
  Where the index repeats a position, NumPy's write (the last) is kept, and the derivative
  with respect to `updates` flows to that update alone. Linear in (x, updates) jointly."""
  indices = [a if isinstance(a, Tracer) else np.asarray(a) for a in indices]
  return scatter_p.bind(x, updates, *indices, spec=_normalize_spec(spec, len(indices)))


def _kept_updates(x_shape, indices, spec):
  """Which entries of the updates a scatter keeps (a bool array of the indexed shape), or None
  when the index repeats no position (every update is kept). Traced index arrays give a
  traced answer."""
  if not _has_arrays(spec):
    return None
  shape = index_shape(x_shape, spec, [core.shape_of(a) for a in indices])
  ids = np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)
  written = scatter_p.bind(np.zeros(x_shape, np.int64), ids, *indices, spec=spec)
  kept = ew.eq(gather_p.bind(written, *indices, spec=spec), ids)
  return None if not isinstance(kept, Tracer) and kept.all() else kept


def _scatter_jvp(primals, tangents, *, spec):
  (x, updates, *indices), (x_dot, u_dot, *_) = primals, tangents
  ans = scatter_p.bind(x, updates, *indices, spec=spec)
  if x_dot is None and u_dot is None:
    return ans, None
  return ans, scatter_p.bind(_zeros_if_none(x_dot, x), _zeros_if_none(u_dot, updates),
                             *indices, spec=spec)


def _scatter_transpose(ct, x, updates, *indices, spec):
  ct_x = ct_u = None
  if ad.is_linear(x):
    ct_x = scatter_p.bind(ct, _zeros_if_none(None, updates), *indices, spec=spec)
  if ad.is_linear(updates):
    ct_u = gather_p.bind(ct, *indices, spec=spec)
    kept = _kept_updates(core.shape_of(ct), indices, spec)
    ct_u = ct_u if kept is None else ew.select(kept, ct_u, np.zeros((), ct_u.dtype))
  return [ct_x, ct_u] + [None] * len(indices)


scatter_p.def_impl(_scatter_impl(None))
scatter_p.def_abstract_eval(_scatter_abstract_eval("scatter"))
ad.deflinear_rules(scatter_p, _scatter_jvp, _scatter_transpose)
batching.primitive_batchers[scatter_p] = _scatter_batch(scatter_p)


# ---- scatter_mul (numpy.multiply.at: repeated positions multiply) ---------------------------
scatter_mul_p = core.primitive("scatter_mul")


def scatter_mul(x, updates, indices, spec):
  """A copy of `x` with `x[index]` multiplied by `updates` (numpy.multiply.at). `updates` has
  the indexed shape and x's dtype. Linear in x (not in updates); its derivative is exact where
  positions repeat and where updates are zero."""
  indices = [a if isinstance(a, Tracer) else np.asarray(a) for a in indices]
  return scatter_mul_p.bind(x, updates, *indices, spec=_normalize_spec(spec, len(indices)))


def _product_of_others(x_shape, updates, indices, spec):
  """For each update, the product of the other updates to its position (1 when it is alone
  there), written without division so that its derivatives of every order are exact, also
  where updates are zero."""
  dtype, shape = updates.dtype, core.shape_of(updates)
  if not _has_arrays(spec):  # basic indexes never repeat a position
    return np.ones((), dtype)
  k = math.prod(shape)
  positions = gather_p.bind(np.arange(math.prod(x_shape)).reshape(x_shape), *indices, spec=spec)
  flat = shape_ops.reshape(updates, (k,))
  if isinstance(positions, Tracer):
    return shape_ops.reshape(_pairwise_others(flat, shape_ops.reshape(positions, (k,))), shape)
  positions = np.ravel(positions)
  if len(np.unique(positions)) == k:
    return np.ones((), dtype)
  return shape_ops.reshape(_grouped_others(flat, positions), shape)


def _grouped_others(flat, positions):
  """Products of others for concrete positions: the updates are gathered into a table with
  one row per position (padded with ones), and each entry of a row gets the product of the
  entries before it times that of the entries after it (exclusive cumulative products)."""
  k, dtype = len(positions), flat.dtype
  order = np.argsort(positions, kind="stable")
  _, group, counts = np.unique(positions[order], return_inverse=True, return_counts=True)
  rank = np.arange(k) - np.repeat(np.cumsum(counts) - counts, counts)
  table = np.full((len(counts), counts.max()), k)
  table[group, rank] = order
  padded = shape_ops.concatenate([flat, np.ones((1,), dtype)], 0)
  rows = gather_p.bind(padded, table, spec=(ArrayIndex(0),))
  width, ones = counts.max(), np.ones((len(counts), 1), dtype)
  before = shape_ops.concatenate(
      [ones, red.cumprod(shape_ops.slice_in_dim(rows, 0, width - 1, 1), 1)], 1)
  after = shape_ops.concatenate(
      [red.cumprod(shape_ops.slice_in_dim(rows, 1, width, 1), 1, reverse=True), ones], 1)
  where = np.empty((2, k), np.intp)
  where[:, order] = group, rank
  return gather_p.bind(ew.mul(before, after), where[0], where[1],
                       spec=(ArrayIndex(0), ArrayIndex(1)))


_PAIRWISE_LIMIT = 4096


def _pairwise_others(flat, positions):
  """Products of others for traced positions (e.g. batched under vmap): a k x k table holds,
  in row i, the updates to the same position as update i (ones elsewhere and on the
  diagonal), and each row is multiplied out."""
  k, dtype = core.shape_of(flat)[0], flat.dtype
  if k > _PAIRWISE_LIMIT:
    raise errors.MissingRuleError(
        f"scatter_mul: the derivative with respect to the updates, with traced index arrays "
        f"(e.g. batched under vmap), compares all {k} updates pairwise, which is limited to "
        f"{_PAIRWISE_LIMIT}. Index with concrete (NumPy) arrays, or use fewer updates.")
  same = ew.eq(shape_ops.reshape(positions, (k, 1)), shape_ops.reshape(positions, (1, k)))
  same = ew.logical_and_p.bind(same, ~np.eye(k, dtype=bool))
  table = ew.select(same, shape_ops.reshape(flat, (1, k)), np.ones((), dtype))
  return red.reduce_prod(table, (1,))


def _scatter_mul_jvp(primals, tangents, *, spec):
  # out = x * P with P[p] = prod of the updates at p: d out = dx * P + x * dP, where
  # dP[p] = sum over updates k at p of du_k * (product of the other updates at p).
  (x, updates, *indices), (x_dot, u_dot, *_) = primals, tangents
  ans = scatter_mul_p.bind(x, updates, *indices, spec=spec)
  out = None if x_dot is None else scatter_mul_p.bind(x_dot, updates, *indices, spec=spec)
  if u_dot is not None:
    shape = core.shape_of(x)
    others = _product_of_others(shape, updates, indices, spec)
    d_p = scatter_add_p.bind(np.zeros(shape, ans.dtype), ew.mul(u_dot, others), *indices,
                             spec=spec)
    out = ew.mul(x, d_p) if out is None else ew.add(out, ew.mul(x, d_p))
  return ans, out


def _scatter_mul_transpose(ct, x, updates, *indices, spec):
  assert not ad.is_linear(updates), "scatter_mul is linear in x only"
  return [scatter_mul_p.bind(ct, updates, *indices, spec=spec), None] + [None] * len(indices)


scatter_mul_p.def_impl(_scatter_impl(np.multiply))
scatter_mul_p.def_abstract_eval(_scatter_abstract_eval("scatter_mul"))
ad.primitive_jvps[scatter_mul_p] = _scatter_mul_jvp
ad.primitive_transposes[scatter_mul_p] = _scatter_mul_transpose
batching.primitive_batchers[scatter_mul_p] = _scatter_batch(scatter_mul_p)


# ---- scatter_min, scatter_max (numpy.minimum.at / numpy.maximum.at) --------------------------


def _scatter_chooser(name, ufunc):
  """A scatter that keeps, at each position, the least (greatest) of x and the updates there.
  Its derivative is the tangent of the value kept, split equally among ties (as minimum and
  maximum split theirs); where a NaN was kept it is 0, as for minimum and maximum (x's own
  entries that the index does not name keep x's tangent, NaN or not)."""
  prim = core.primitive(name)

  def jvp(primals, tangents, *, spec):
    (x, updates, *indices), (x_dot, u_dot, *_) = primals, tangents
    ans = prim.bind(x, updates, *indices, spec=spec)
    if x_dot is None and u_dot is None:
      return ans, None
    dtype, shape = ans.dtype, core.shape_of(x)
    one, zero = np.ones((), dtype), np.zeros((), dtype)
    # the entries the index names none of pass x through (a NaN there too)
    untouched = scatter_p.bind(np.ones(shape, bool), np.zeros(core.shape_of(updates), bool),
                               *indices, spec=spec)
    from_x = ew.logical_or_p.bind(ew.eq(x, ans), untouched)
    from_u = ew.eq(updates, gather_p.bind(ans, *indices, spec=spec))
    count = ew.add(ew.select(from_x, one, zero),
                   scatter_add_p.bind(np.zeros(shape, dtype), ew.select(from_u, one, zero),
                                      *indices, spec=spec))
    out = None if x_dot is None else ew.select(from_x, x_dot, zero)
    if u_dot is not None:
      kept = scatter_add_p.bind(np.zeros(shape, dtype), ew.select(from_u, u_dot, zero),
                                *indices, spec=spec)
      out = kept if out is None else ew.add(out, kept)
    return ans, ew.div(out, ew.maximum(count, one))

  prim.def_impl(_scatter_impl(ufunc))
  prim.def_abstract_eval(_scatter_abstract_eval(name))
  ad.primitive_jvps[prim] = jvp
  batching.primitive_batchers[prim] = _scatter_batch(prim)
  return prim


scatter_min_p = _scatter_chooser("scatter_min", np.minimum)
scatter_max_p = _scatter_chooser("scatter_max", np.maximum)


def scatter_min(x, updates, indices, spec):
  """A copy of `x` with `x[index]` replaced by its minimum with `updates` (numpy.minimum.at:
  repeated positions keep the least). `updates` has the indexed shape and x's dtype."""
  indices = [a if isinstance(a, Tracer) else np.asarray(a) for a in indices]
  return scatter_min_p.bind(x, updates, *indices, spec=_normalize_spec(spec, len(indices)))


def scatter_max(x, updates, indices, spec):
  """A copy of `x` with `x[index]` replaced by its maximum with `updates` (numpy.maximum.at:
  repeated positions keep the greatest). `updates` has the indexed shape and x's dtype."""
  indices = [a if isinstance(a, Tracer) else np.asarray(a) for a in indices]
  return scatter_max_p.bind(x, updates, *indices, spec=_normalize_spec(spec, len(indices)))
