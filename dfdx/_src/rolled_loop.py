"""A rolled reverse pass's middle blocks run as one compiled loop.

A rolled reverse pass (reverse_cache, "rolled reverse passes") calls one compiled function
per block of its periodic part: ADBench's LSTM at 1,024 characters, 1,021 calls of a
function of 120 NumPy calls on vectors of 14 entries, each call preceded by Python gathering
its 90 residuals from the tape. Where the blocks in the middle are alike, they run as one
`scan` instead, over their residuals stacked along a first axis:
  * its carry is what one block passes to the next: the cotangents of the previous block's
    nodes, and those of the variables computed before the loop (the weights) that every
    block adds to;
  * a residual that is the very same object in every block (a weight) is passed once, and
    one that is the same object as another (a node's output that the next node reads) is
    gathered once;
  * Python numbers that change from block to block (`t + 1`) are stacked as float64 or
    int64 arrays, which NumPy does not cast down as it does Python numbers: they make no
    loop where the blocks hold arrays of other dtypes (float32);
  * jit's loop split (loops.hoist_loops, exact) takes out of the loop what does not need
    the carry: a block's elementwise work on its own residuals runs before the loop for all
    blocks at once, and the weights' cotangents are summed after it.
The blocks that run so are those from the second-to-last (the last one's cotangents are
often still zero) down to the first whose reads stay inside the periodic part, provided
that each reads cotangents from the block after it only, that no equation after the
periodic part reads them, and that the cotangents present in one block are present in the
next (the carry has one structure). The first and last blocks run one by one as before. A
loop is compiled for the blocks of the tape that it is checked on (its number of steps is
part of its code): on the tape of a longer Python loop, those same blocks run in it and
the others one by one; on a shorter one, all run one by one.

Values keep the per-block pass's bits: the loop's body is the block's pass after the exact
passes only, and the split keeps every value's bits (loops.py, `exact`). The loop is
compiled once the rolled structure is kept and checked once against the interpreted pass,
bit for bit, and for time against the blocks run one by one; it is kept only if it agrees
and is not slower (one measured slower is tried again on later calls, three times in
all). Stacking the residuals costs memory: at most `loops.MAX_STACKED_BYTES`.
"""
from __future__ import annotations

import itertools
import operator

import numpy as np

from dfdx._src import core
from dfdx._src.core import ShapedArray
from dfdx._src.ir import Eqn, Program, Var

_SCALARS = (float, int, bool, complex)
_WIDE = frozenset(map(np.dtype, (np.float64, np.complex128, np.int64, np.bool_)))
# A residual of the blocks is: the same object in every block (passed once), arrays stacked,
# Python numbers stacked, or the very objects of an earlier residual (the output of one node
# that the next one reads: passed once as that one).
_SAME, _STACKED, _NUMBERS, _DUP = 0, 1, 2, 3


class Loop:
  """A compiled loop over blocks `lo` to `hi` (tape indices of their first nodes), reading
  the residuals at `where` (those its pass reads) as `kinds` say, with `dtypes` (those
  stacked) and `dup_of` (the earlier residual a duplicate is, by position in `where`)."""
  __slots__ = ("fn", "lo", "hi", "pattern", "where", "kinds", "dtypes", "dup_of")

  def __init__(self, fn, lo, hi, pattern, where, kinds, dtypes, dup_of):
    self.fn, self.lo, self.hi, self.pattern, self.where = fn, lo, hi, pattern, where
    self.kinds, self.dtypes, self.dup_of = kinds, dtypes, dup_of


def bounds(plan):
  """(lo, hi): the first nodes of the lowest and highest block that may run in a loop, or
  None where fewer than two may."""
  period, start = plan.period, plan.start
  reads = [k for k in plan.imports if type(k) is int]
  if any(k < -period for k in reads):  # (a block reading two blocks back)
    return None
  lo = start + (period if reads else 0)
  top = min(plan.end - 2 * period, plan.tail_min)  # (below what equations after it read)
  hi = start + (top - start) // period * period
  return (lo, hi) if hi - lo >= period else None


_ANS, _PRIMALS = operator.attrgetter("ans"), operator.attrgetter("primals")


def _columns(eqns, lo, hi, period, where):
  """Each residual at `where` of the blocks lo..hi, a list from the lowest block to the
  highest."""
  primals = {}
  columns = []
  for p, i in where:
    if i < 0:
      columns.append(list(map(_ANS, eqns[lo + p:hi + p + 1:period])))
      continue
    lists = primals.get(p)
    if lists is None:
      lists = primals[p] = list(map(_PRIMALS, eqns[lo + p:hi + p + 1:period]))
    columns.append(list(map(operator.itemgetter(i), lists)))
  return columns


def _identical(a, b):
  return all(map(operator.is_, a, b))


def _kinds(columns):
  """Each column's kind, and for duplicates the column they repeat."""
  kinds, dup_of, seen = [], [None] * len(columns), {}
  for j, column in enumerate(columns):
    first = column[0]
    earlier = seen.get((id(first), id(column[-1])))
    if earlier is not None and _identical(column, columns[earlier]):
      kinds.append(_DUP)
      dup_of[j] = earlier
    elif _identical(column, itertools.repeat(first)):
      kinds.append(_SAME)
    else:
      kinds.append(_NUMBERS if type(first) in _SCALARS else _STACKED)
    seen.setdefault((id(first), id(column[-1])), j)
  return kinds, dup_of


def _stacked(column, kind):
  """The column's values stacked along a first axis (ValueError where their shapes
  differ)."""
  first = column[0]
  if kind == _STACKED and type(first) is np.ndarray and first.ndim:
    if not all(map(operator.eq, map(_SHAPE, column), itertools.repeat(first.shape))):
      raise ValueError("residuals of different shapes")
    return np.concatenate(column).reshape((len(column),) + first.shape)
  return np.array(column)


_SHAPE = operator.attrgetter("shape")


def _inputs(loop, columns):
  """The loop's residual inputs: (stacked, once), or None where the blocks' residuals are
  not of the kinds and dtypes the loop was compiled for."""
  stacked, once = [], []
  for kind, dtype, dup, column in zip(loop.kinds, loop.dtypes, loop.dup_of, columns):
    if kind == _DUP:
      if not _identical(column, columns[dup]):
        return None
    elif kind == _SAME:
      if not _identical(column, itertools.repeat(column[0])):
        return None
      once.append(column[0])
    else:
      try:
        array = _stacked(column, kind)
      except ValueError:  # (shapes that differ)
        return None
      if array.dtype != dtype:
        return None
      stacked.append(array)
  return stacked, once


def compile_loop(plan, lo, hi, where, cts):
  """The blocks lo..hi's pass as one loop (a Loop), given the cotangents `cts` that block
  hi read when run by itself (its exports', then its imports'); None where the blocks do
  not fit one (see the module docstring)."""
  from dfdx._src import codegen, loops, reverse_cache, staging
  from dfdx._src.ad import Linearized
  period, eqns, exports, imports = plan.period, plan.lin.eqns, plan.exports, plan.imports
  pattern = tuple(c is not None for c in cts)
  n_exports = len(exports)
  if any(pattern[n_exports + m] for m, k in enumerate(imports) if type(k) is int):
    return None  # (a cotangent of the previous block already present)
  # Where each present output of a block goes in the carry of the block before it: the
  # cotangent of an import that is a node of the previous block is that block's export's,
  # a variable's stays its own.
  previous = {k: m for m, k in enumerate(imports) if type(k) is int}
  slot = {}
  for j, present in enumerate(pattern):
    if present:
      m = previous.get(exports[j] - period) if j < n_exports else j - n_exports
      if m is None:  # (an export's cotangent that no import of the next block gives)
        return None
      slot[m] = len(slot)
  columns = _columns(eqns, lo, hi, period, where)
  kinds, dup_of = _kinds(columns)
  arrays = [c for c in cts if c is not None] + [c[0] for c in columns]
  if _NUMBERS in kinds and not all(np.result_type(x) in _WIDE for x in arrays
                                   if type(x) not in _SCALARS):
    return None  # (see the module docstring: Python numbers stacked)
  values = {j: (c[0] if k == _SAME else _stacked(c, k))
            for j, (c, k) in enumerate(zip(columns, kinds)) if k != _DUP}
  if sum(v.nbytes for j, v in values.items() if kinds[j] != _SAME) > loops.MAX_STACKED_BYTES:
    return None
  order = ([j for j, k in enumerate(kinds) if k in (_STACKED, _NUMBERS)]
           + [j for j, k in enumerate(kinds) if k == _SAME])
  ins = [eqns[hi + k] if type(k) is int else k for k in imports]
  block = Linearized(eqns[hi:hi + period], ins, [eqns[hi + p] for p in exports] + ins)
  out_pattern = []
  reverse = reverse_cache.pass_function(block, list(cts), out_pattern)
  carry = [c for c in cts if c is not None]

  def body(*xs):
    carry_in, residuals = xs[:len(carry)], [None] * len(kinds)
    for j, x in zip(order, xs[len(carry):]):
      residuals[j] = x
    for j, earlier in enumerate(dup_of):
      if earlier is not None:
        residuals[j] = residuals[earlier]
    outs = iter(reverse(*residuals, *carry_in))
    present = {m: next(outs) for m, flag in enumerate(out_pattern) if flag}
    if sorted(present) != sorted(slot):
      raise _NotALoop  # (the next block would read other cotangents than this one)
    new = [None] * len(slot)
    for m, ct in present.items():
      new[slot[m]] = ct
    return new

  avals = [core.get_aval(c) for c in carry] + [
      core.get_aval(values[j]) if kinds[j] == _SAME else
      ShapedArray(values[j].shape[1:], values[j].dtype) for j in order]
  try:
    program, lifted = staging.make_program(body, avals, record_source=False)
  except _NotALoop:
    return None
  if lifted:
    return None
  program = reverse_cache.exactly_simplified(program)
  # Residuals the pass does not read are not gathered: the loop's inputs drop them.
  read = {id(a) for e in program.eqns for a in e.inputs}
  read.update(id(o) for o in program.outs)
  body_ins = program.in_vars[len(carry):]
  unread = {j for j, v in zip(order, body_ins) if id(v) not in read}
  kept = [j for j in range(len(kinds)) if j not in unread and dup_of[j] not in unread]
  position = {j: i for i, j in enumerate(kept)}
  program = Program(program.in_vars[:len(carry)] + [v for v in body_ins if id(v) in read],
                    program.const_vars, program.const_vals, program.eqns, program.outs)
  codegen.compile_exactly(program)
  steps = [values[j] for j in order if j not in unread and kinds[j] != _SAME]
  once = [values[j] for j in order if j not in unread and kinds[j] == _SAME]
  outer_ins = [Var(core.get_aval(x)) for x in carry + steps + once]
  scan_p = core.all_primitives["scan"]
  params = dict(body=program, num_carry=len(carry), num_xs=len(steps),
                length=(hi - lo) // period + 1, reverse=True,
                linear=(False,) * len(outer_ins))
  outs = [Var(a) for a in core.abstract_eval_avals(scan_p, [v.aval for v in outer_ins],
                                                   params)]
  outer = Program(outer_ins, [], [], [Eqn(scan_p, outer_ins, params, outs)], outs)
  outer = loops.hoist_loops(outer, exact=True)
  fn = codegen.compile_program(outer, "rolled_loop", fuse_reductions=False)
  return Loop(fn, lo, hi, pattern, [where[j] for j in kept], [kinds[j] for j in kept],
              [values[j].dtype if kinds[j] in (_STACKED, _NUMBERS) else None for j in kept],
              [None if dup_of[j] is None else position[dup_of[j]] for j in kept])


class _NotALoop(Exception):
  pass


def run(loop, plan, env):
  """Run the blocks loop.lo..loop.hi by `loop`, with `env` holding the cotangents so far;
  False (and env untouched) where this tape's blocks do not fit it."""
  from dfdx._src.ad import PendingCotangent
  period, eqns, exports, imports = plan.period, plan.lin.eqns, plan.exports, plan.imports
  lo, hi = loop.lo, loop.hi
  here = bounds(plan)  # (the tape of a loop of another length: its blocks lo..hi must be
  if here is None or not here[0] <= lo <= hi <= here[1]:  # among those that may run so)
    return False
  keys = ([id(eqns[hi + p]) for p in exports]
          + [id(eqns[hi + k]) if type(k) is int else id(k) for k in imports])
  if tuple(env.get(key) is not None for key in keys) != loop.pattern:
    return False
  inputs = _inputs(loop, _columns(eqns, lo, hi, period, loop.where))
  if inputs is None:
    return False
  stacked, once = inputs
  carry = []
  for key, present in zip(keys, loop.pattern):
    if present:
      c = env.pop(key)
      if type(c) is not np.ndarray and isinstance(c, PendingCotangent):
        c = c.materialize()
      carry.append(c)
  outs = iter(loop.fn(*carry, *stacked, *once))
  n_exports = len(exports)
  for j, present in enumerate(loop.pattern):
    if present:
      ct = next(outs)
      if j < n_exports:  # (the cotangent of the node before block lo that it reads)
        env[id(eqns[lo - period + exports[j]])] = ct
      else:
        env[id(imports[j - n_exports])] = ct
  return True
