"""Vectorization (vmap): run a function on a batch of inputs as if on one.

Owns `BatchTrace` / `BatchTracer`, the table `primitive_batchers` and its builders
(`defvectorized`, `defbroadcasting`, `defreducer`), and `vmap_flat`.

A batching rule has the signature `rule(axis_size, vals, dims, **params) -> (out, out_dim)`,
where each dim is the position of the batch axis in the value, or `NOT_MAPPED` (None) for a
value that is the same for every batch element. Rules run in the parent trace, written with
dfdx ops, so vmap composes with every other transformation.
"""
from __future__ import annotations

import numpy as np

from dfdx._src import core, errors, state
from dfdx._src.core import Trace, Tracer, ShapedArray, bind_in, swap_trace

NOT_MAPPED = None
primitive_batchers: dict = {}


class BatchTracer(Tracer):
  __slots__ = ("val", "bdim")

  def __init__(self, trace, val, bdim):
    self._trace, self.val, self.bdim = trace, val, bdim

  @property
  def shape(self):
    s, d = self.val.shape, self.bdim
    return s[:d] + s[d + 1:]

  dtype = property(lambda self: self.val.dtype)

  @property
  def aval(self):
    return ShapedArray(self.shape, self.val.dtype)

  def concrete_value(self, purpose):
    self.check_alive()
    raise errors.ConcretizationError(
        f"{purpose} needs one concrete value, but under vmap this value ({self._describe()}) "
        f"differs across the {self._trace.axis_size} batch elements. Use dfdx.numpy.where "
        "(or other array operations) instead of Python control flow on batched values.")


class BatchTrace(Trace):
  """vmap. Values it owns are `BatchTracer(val, bdim)` with `val` holding the whole batch."""
  __slots__ = ("axis_size",)
  kind = "vmap"

  def __init__(self, axis_size):
    super().__init__()
    self.axis_size = axis_size

  def process_primitive(self, prim, args, params):
    for a in args:
      if type(a) is BatchTracer and a._trace is self:
        break
    else:  # nothing batched (the primal side of vmap-of-jvp): straight to the parent
      return bind_in(self.parent, prim, args, params)
    vals = list(args)
    dims = [NOT_MAPPED] * len(args)
    for i, a in enumerate(args):
      if type(a) is BatchTracer and a._trace is self:
        vals[i], dims[i] = a.val, a.bdim
    prev = swap_trace(self.parent)
    try:
      rule = primitive_batchers.get(prim)
      if rule is None:
        raise errors.MissingRuleError(
            f"No batching rule for primitive '{prim.name}' (needed by vmap). Register one next "
            f"to its definition in dfdx/_src/ops/, e.g. batching.defvectorized.")
      out, out_dim = rule(self.axis_size, vals, dims, **params)
    finally:
      swap_trace(prev)
    if prim.multiple_results:
      return [self.wrap(o, d) for o, d in zip(out, out_dim, strict=True)]
    return out if out_dim is NOT_MAPPED else BatchTracer(self, out, out_dim)  # (self.wrap)

  def wrap(self, val, bdim):
    return val if bdim is NOT_MAPPED else BatchTracer(self, val, bdim)


def vmap_flat(fun, axis_size, vals, in_dims):
  """Run `fun` (flat list -> flat list) over a batch. Returns (outs, out_dims)."""
  trace = BatchTrace(axis_size)
  ins = [v if d is NOT_MAPPED else BatchTracer(trace, v, d) for v, d in zip(vals, in_dims)]
  outs = state.run_in_trace(trace, fun, ins, _batched_variable)
  return ([o.val if type(o) is BatchTracer and o._trace is trace else o for o in outs],
          [o.bdim if type(o) is BatchTracer and o._trace is trace else NOT_MAPPED for o in outs])


def vmap_chunked(fun, axis_size, vals, in_dims, chunk_size=None):
  """`vmap_flat` over chunks of `chunk_size` examples (None: the whole batch at once), so
  that the batch's intermediates are held for one chunk at a time. Outputs mapped in a chunk
  are concatenated with the batch axis first; unmapped ones (which no mapped input reaches)
  are the first chunk's."""
  if chunk_size is None or chunk_size >= axis_size:
    return vmap_flat(fun, axis_size, vals, in_dims)
  from dfdx._src.ops.control_flow import _staging
  if _staging() and axis_size // chunk_size > 2:
    scanned = _scanned_chunks(fun, axis_size, vals, in_dims, chunk_size)
    if scanned is not None:
      return scanned
  pieces = []
  for start in range(0, axis_size, chunk_size):
    n = min(chunk_size, axis_size - start)
    part = [v if d is NOT_MAPPED else _shape.slice_in_dim(v, start, start + n, d)
            for v, d in zip(vals, in_dims)]
    pieces.append((n, *vmap_flat(fun, n, part, in_dims)))
  outs, dims = [], []
  for i, (first, first_dim) in enumerate(zip(pieces[0][1], pieces[0][2])):
    if first is None or all(p[2][i] is NOT_MAPPED for p in pieces):
      outs.append(first)
      dims.append(first_dim)
    else:
      outs.append(_shape.concatenate([bdim_at_front(out[i], out_dims[i], n)
                                      for n, out, out_dims in pieces], 0))
      dims.append(0)
  return outs, dims


def _scanned_chunks(fun, axis_size, vals, in_dims, chunk_size):
  """vmap_chunked as compiled code runs it: the first chunk, then one loop (a scan) over the
  other whole chunks, then the examples left over, so that the program holds the function
  three times however many chunks there are. None where an output's batching differs
  between the first chunk and the loop's (then the chunks are written out one by one)."""
  from dfdx._src.ops.control_flow import scan
  blocks, left = divmod(axis_size, chunk_size)
  mapped = [i for i, d in enumerate(in_dims) if d is not NOT_MAPPED]
  front = [bdim_at_front(v, d, axis_size) if d is not NOT_MAPPED else v
           for v, d in zip(vals, in_dims)]
  dims = [NOT_MAPPED if d is NOT_MAPPED else 0 for d in in_dims]

  def run(start, n, chunk=None):
    part = list(front)
    for k, i in enumerate(mapped):
      part[i] = chunk[k] if chunk is not None else _shape.slice_in_dim(front[i], start,
                                                                       start + n, 0)
    return vmap_flat(fun, n, part, dims)
  first, first_dims = run(0, chunk_size)
  keep = [o is not None and d is not NOT_MAPPED for o, d in zip(first, first_dims)]
  consistent = []

  def step(carry, chunk):
    outs, out_dims = run(None, chunk_size, chunk)
    consistent.append(all(k or o is None or d is NOT_MAPPED
                          for k, o, d in zip(keep, outs, out_dims)))
    return carry, [bdim_at_front(o, d, chunk_size)
                   for o, d, k in zip(outs, out_dims, keep) if k]
  stacks = [_shape.reshape(_shape.slice_in_dim(front[i], chunk_size, blocks * chunk_size, 0),
                           (blocks - 1, chunk_size) + core.shape_of(front[i])[1:])
            for i in mapped]
  _, ys = scan(step, (), stacks, length=blocks - 1)
  if not all(consistent):
    return None
  last = run(blocks * chunk_size, left) if left else None
  outs, ys = [], iter(ys)
  for i, (o, d, k) in enumerate(zip(first, first_dims, keep)):
    if not k:
      outs.append(o)
      continue
    y = next(ys)
    pieces = [bdim_at_front(o, d, chunk_size),
              _shape.reshape(y, ((blocks - 1) * chunk_size,) + core.shape_of(y)[2:])]
    if last is not None:
      pieces.append(bdim_at_front(last[0][i], last[1][i], left))
    outs.append(_shape.concatenate(pieces, 0))
  return outs, [0 if k else d for d, k in zip(first_dims, keep)]


def check_chunk_size(chunk_size, transform):
  """`chunk_size` (None or a positive int), or a ValueError naming `transform`."""
  if chunk_size is None:
    return None
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or \
      chunk_size < 1:
    raise ValueError(f"{transform}: chunk_size must be None or a positive integer, got "
                     f"{chunk_size!r}")
  return int(chunk_size)


def _batched_variable(tracer):
  raise errors.ConcretizationError(
      f"A Variable was assigned a value that varies over the vmap's batch ({tracer!r}); a "
      "Variable holds one value. Return the batched value from the vmapped function instead.")


# ---- helpers for rules --------------------------------------------------------------------


# Batching rules keep the batch axis first, except where a concrete operand is at least this
# many elements: there a rule may place it where the operand's memory layout makes the NumPy
# call cheaper (the values are the same either way). Below it, the extra transposes that a
# batch axis elsewhere costs later rules outweigh the memory traffic saved.
LAYOUT_MIN_SIZE = 1 << 14


def moveaxis(x, src: int, dst: int):
  """Move axis `src` of `x` to position `dst` (non-negative positions)."""
  if src == dst:
    return x
  perm = [i for i in range(core.ndim_of(x)) if i != src]
  perm.insert(dst, src)
  return _shape.transpose(x, tuple(perm))


def bdim_at_front(x, bdim, axis_size):
  """`x` with its batch axis first; an unbatched `x` is broadcast along a new first axis."""
  if bdim is NOT_MAPPED:
    shape = core.shape_of(x)
    return _shape.broadcast_to(x, (axis_size,) + shape)
  return moveaxis(x, bdim, 0)


def logical_axis(axis: int, bdim) -> int:
  """The physical position of logical axis `axis` (counted without the batch axis)."""
  return axis + (axis >= bdim)


# ---- rule builders ------------------------------------------------------------------------


# The primitives registered below: elementwise (each output entry from the entries of the
# operands at its position, NumPy broadcasting). The passes move gathers through them.
elementwise_prims: set = set()


def defone_by_one(prim):
  """A primitive whose examples cannot share one call (a solver's own steps): bound once per
  example, the results stacked along axis 0."""
  def rule(axis_size, vals, dims, **params):
    import dfdx.numpy as dnp
    if axis_size == 0:
      avals = [core.get_aval(v) if d is NOT_MAPPED else
               ShapedArray(core.shape_of(v)[:d] + core.shape_of(v)[d + 1:], core.get_aval(v).dtype)
               for v, d in zip(vals, dims)]
      out = prim.abstract_eval(*avals, **params)
      empty = lambda a: np.zeros((0,) + a.shape, a.dtype)  # noqa: E731
      return ([empty(a) for a in out], [0] * len(out)) if prim.multiple_results else \
          (empty(out), 0)
    rows = [prim.bind(*[v if d is NOT_MAPPED else dnp.take(v, i, axis=d)
                        for v, d in zip(vals, dims)], **params) for i in range(axis_size)]
    if not prim.multiple_results:
      return dnp.stack(rows), 0
    return [dnp.stack([row[k] for row in rows]) for k in range(len(rows[0]))], \
        [0] * len(rows[0])
  primitive_batchers[prim] = rule
  return rule


def defvectorized(prim):
  """Unary elementwise (or any per-element) primitive: batch axis passes through."""
  def rule(axis_size, vals, dims, **params):
    return prim.bind(*vals, **params), dims[0]
  primitive_batchers[prim] = rule
  elementwise_prims.add(prim)


def defbroadcasting(prim):
  """N-ary primitive with NumPy broadcasting: batched operands get their batch axis first and
  enough unit axes to line up with the unbatched ones; the output's batch axis is first."""
  elementwise_prims.add(prim)
  def rule(axis_size, vals, dims, **params):
    d0 = dims[0]
    if len(vals) == 2:  # the common arity, unrolled: the same tests as below
      x, y = vals
      d1 = dims[1]
      if d1 == d0 and core.ndim_of(x) == core.ndim_of(y):
        return prim.bind(x, y, **params), d0
      # one operand batched at the front and the other unbatched of no higher rank than an
      # example: already aligned (what _align below would leave as it is)
      if d0 == 0 and d1 is NOT_MAPPED and core.ndim_of(y) < core.ndim_of(x):
        return prim.bind(x, y, **params), 0
      if d1 == 0 and d0 is NOT_MAPPED and core.ndim_of(x) < core.ndim_of(y):
        return prim.bind(x, y, **params), 0
    elif all(d == d0 for d in dims) and len({core.ndim_of(v) for v in vals}) == 1:
      return prim.bind(*vals, **params), d0
    rank = max(core.ndim_of(v) - (d is not NOT_MAPPED) for v, d in zip(vals, dims))
    return prim.bind(*[_align(v, d, rank) for v, d in zip(vals, dims)], **params), 0
  primitive_batchers[prim] = rule


def _align(x, d, rank):
  if d is NOT_MAPPED:
    return x
  x = moveaxis(x, d, 0)
  shape = x.shape
  missing = rank - (len(shape) - 1)
  return _shape.reshape(x, shape[:1] + (1,) * missing + shape[1:]) if missing else x


def defreducer(prim):
  """Primitive with an `axes` parameter that removes those axes (reductions)."""
  def rule(axis_size, vals, dims, *, axes, **params):
    (x,), (d,) = vals, dims
    out = prim.bind(x, axes=tuple(logical_axis(a, d) for a in axes), **params)
    return out, d - sum(a < d for a in axes)
  primitive_batchers[prim] = rule


# The shape primitives are defined with batching rules of their own, so they are imported
# last; the helpers above look them up when called.
from dfdx._src.ops import shape as _shape  # noqa: E402
