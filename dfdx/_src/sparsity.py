"""Sparse Jacobians: the pattern of a derivative's nonzeros, read from its program, and the
Jacobian in as many passes as a coloring of that pattern needs.

`jacobian(f, sparse=True)` linearizes f once, as the dense Jacobian does, and traces the
linear map to a program (the tangent program: linear equations of the tangents, with the
forward pass's values as constants). Walking that program, the dependence of a value on the
N input entries is a sparse 0/1 matrix with one row per entry of the value (`_Rows`: the
columns of each row, as a 2-D array where rows are equally long, as the entries of an
array computed alike are). A linear equation mixes its operands' rows by matrices its
structure gives (`_RULES`):

  * moves (slice, reshape, transpose, broadcast, concatenate, pad, rev, gather, scatter,
    select): each output entry is one operand entry or none; found by running the
    primitive's own impl on arrays of entry numbers;
  * elementwise arithmetic: the broadcast entries (a product with a constant drops the
    entries where the constant is 0);
  * reduce_sum, cumsum, scatter_add: the entries summed;
  * dot_general with a constant: the entries the constant's nonzeros multiply;
  * programs held by an equation (jit, checkpoint, scan's body and a while loop's tangent
    step, step by step, the branch a cond takes): walked;
  * anything else: every output entry depends on everything its operands depend on.

The outputs' rows form the pattern P (M x N). Columns of P that share no row can be pushed
forward together: a greedy coloring groups them, and one JVP per color (vmapped, as jacfwd
does) gives every entry, J[i, j] = (J s_color(j))[i]. Reverse mode colors the rows and pulls
one cotangent back per color. The mode with fewer colors is used (ties: forward); where
both need many (a row coupled to every column beside a column coupled to every row), the
densest rows are pulled back and the other rows' entries pushed forward (_both_ways: an
arrowhead Jacobian in 3 passes). A Hessian is symmetric: a star coloring (star_coloring)
reads each entry from either side, so that a row coupled to every other (an arrowhead)
costs 2 passes, not one per column.

Both are vector operations over the whole pattern, not loops over its entries: the rows of
an equation's result are gathered, set side by side and sorted (rows computed alike sort
in one order, found once), and the greedy coloring colors at once every column whose
earlier neighbours all have theirs (_Greedy).

The pattern is that of the derivative at the point: where the constants' values decide the
structure (a gather's indices, a select's mask, a zero factor) they are read, so it can be
sparser than at another point. It is found again at every call, unless a pattern is given
(`sparse=P`), which is then trusted: it must hold every nonzero (a nonzero outside it would
be added into the entries that share its pass).
"""
from __future__ import annotations

import math

import numpy as np

from dfdx._src import ad, batching, core, dtypes
from dfdx._src.core import ShapedArray
from dfdx._src.ir import Lit, Program
from dfdx._src.staging import make_program

# Patterns larger than this many entries are refused: such a Jacobian is not sparse.
MAX_ENTRIES = 50_000_000


def scipy_sparse(who):
  try:
    import scipy.sparse as sp
  except ImportError as e:  # (SciPy is optional: only sparse=True needs it)
    raise ImportError(f"{who}: sparse=True returns a scipy.sparse matrix, and SciPy is not "
                      "installed. Install it (pip install scipy, or dfdx[scipy]).") from e
  return sp


class NotSparseError(ValueError):
  """The derivative's pattern is too dense to hold as a sparse matrix."""


# ---- the pattern ------------------------------------------------------------------------------


def jacobian_pattern(lin, leaves, out_leaves, who="jacobian"):
  """The pattern of the Jacobian of the linear map `lin` (its forward application) from
  inputs shaped like `leaves` to outputs like `out_leaves`: a scipy CSR array (outputs'
  entries x inputs' entries), every stored value 1."""
  sp = scipy_sparse(who)
  avals = [ShapedArray(np.shape(x), dtypes.differentiable_dtype(np.asarray(x).dtype))
           for x in leaves]

  def tangents(*t):  # (an output that no input reaches has no tangent: zeros)
    return [np.zeros(np.shape(o), dtypes.differentiable_dtype(np.asarray(o).dtype))
            if d is None else d for d, o in zip(lin.forward(list(t)), out_leaves)]
  program, lifted = make_program(tangents, avals, record_source=False)
  if lifted:  # (callers check for traced inputs first: this is a bug, not user error)
    raise AssertionError("sparse jacobian: the tangent program closes over tracers")
  bounds = np.cumsum([0] + [_size(a.shape) for a in avals])
  walker = _Walker(int(bounds[-1]), who)
  deps = [walker.identity(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
  outs = walker.walk(program, deps, [None] * len(deps))
  rows = walker.stack([walker.rows(d, _size(o.aval.shape))
                       for (d, _), o in zip(outs, program.outs)])
  indptr, indices = rows.without_placeholders()
  walker.check(len(indices))
  pattern = sp.csr_array((np.ones(len(indices)), indices, indptr), shape=(rows.size, walker.n))
  pattern.sort_indices()
  return pattern


def _size(shape):
  return math.prod(shape)


class _Rows:
  """The dependence of a value on the N input entries: a row per entry of the value, holding
  the input entries (columns) it depends on, each at most once, in increasing order, after
  any number of -1s (placeholders for none). Rows of equal length (the common case: the
  entries of an array computed alike) are a 2-D array `cols` (entries x slots, `ptr` None),
  so that moving, broadcasting and combining them is plain array indexing; other rows are
  CSR arrays, row e being cols[ptr[e]:ptr[e + 1]]."""
  __slots__ = ("cols", "ptr")

  def __init__(self, cols, ptr=None):
    if ptr is not None:  # (rows that turn out equally long: 2-D)
      counts = np.diff(ptr)
      if not counts.size or np.all(counts == counts[0]):
        cols, ptr = cols.reshape(counts.size, int(counts[0]) if counts.size else 0), None
    self.cols, self.ptr = cols, ptr

  @property
  def size(self):
    return self.cols.shape[0] if self.ptr is None else len(self.ptr) - 1

  @property
  def stored(self):
    return self.cols.size

  def counts(self):
    """Slots per row."""
    if self.ptr is None:
      return np.full(self.size, self.cols.shape[1], np.int64)
    return np.diff(self.ptr)

  def offsets(self):
    """Where each row starts in `flat()`, and the end (CSR's indptr)."""
    if self.ptr is None:
      return np.arange(self.size + 1, dtype=np.int64) * self.cols.shape[1]
    return self.ptr

  def flat(self):
    return self.cols.reshape(-1)

  def same(self, other):
    """Whether both hold the same slots (operands that depend on the same entries, as a and
    f(a) in a * f(a) do, need no merge)."""
    if other is self:
      return True
    if (self.ptr is None) != (other.ptr is None) or self.cols.shape != other.cols.shape:
      return False
    return ((self.ptr is None or np.array_equal(self.ptr, other.ptr)) and
            np.array_equal(self.cols, other.cols))

  def no_placeholders(self):
    """Whether no row holds a placeholder (then a row's first slot is its least column)."""
    return not self.cols.size or int(self.cols[:, 0].min()) >= 0

  def rows_between(self, lo, hi):
    """Rows lo..hi-1."""
    if self.ptr is None:
      return _Rows(self.cols[lo:hi])
    start = self.ptr[lo]
    return _Rows(self.cols[start:self.ptr[hi]], self.ptr[lo:hi + 1] - start)

  def without_placeholders(self):
    """(indptr, indices) of the rows, placeholders dropped."""
    cols, ptr = self.flat(), self.offsets()
    real = cols >= 0
    if real.all():
      return ptr, cols
    kept = np.concatenate([[0], np.cumsum(real)])
    return kept[ptr], cols[real]


def _sort_rows(a, period=1, tries=4):
  """Rows of 2-D `a` sorted, each column once: a repeat becomes a placeholder (-1), placed
  first. Rows computed alike sort alike (an array's entries along its first axis, `period`
  rows apart), so the orders that sort some rows (from the middle: rows at the edges of an
  array tend to differ) are tried on all the rows (vector operations, where sorting costs
  per row), then other orders on the rows they do not sort, `tries` times in all while
  many rows are left; the rows left are sorted one by one."""
  if len(a) < _ALIKE_MIN_ROWS or not tries:
    rows = np.sort(a, axis=1)
    repeat = np.zeros(rows.shape, bool)
    np.equal(rows[:, 1:], rows[:, :-1], out=repeat[:, 1:])
    if repeat.any():
      np.putmask(rows, repeat, -1)
      rows.sort(axis=1)
    return rows
  done, bad = _sorted_like(a, period if len(a) % period == 0 and period <= 64 else 1)
  if bad.any():
    done[bad] = _sort_rows(a[bad], 1, tries - 1)
  return done


# Fewer rows than this are sorted one by one (a tried order costs more).
_ALIKE_MIN_ROWS = 1024


def _sorted_like(rows, period):
  """Rows (2-D) in the orders that sort `period` rows in their middle (row r in the order of
  the one that is as many rows apart as r is from a multiple of `period`), repeats as
  placeholders first, and which rows these orders do not sort."""
  size, width = rows.shape
  tiles = (size // period, period * width)  # (a tile: `period` rows side by side)
  middle = tiles[0] // 2
  shift = np.arange(period)[:, None] * width
  order = np.argsort(rows[middle * period:(middle + 1) * period], axis=1, kind="stable")
  z = np.take(rows.reshape(tiles), (shift + order).ravel(), axis=1)
  step = np.diff(z.reshape(size, width), axis=1).reshape(tiles[0], -1)
  repeat = step[middle] == 0  # (slot j + 1 of a middle row repeats slot j)
  bad = np.zeros(size, bool)
  if int(step.min()) < 0 or not np.array_equal(step == 0, np.broadcast_to(repeat, step.shape)):
    bad[np.flatnonzero(np.where(repeat, step != 0, step <= 0)) // (width - 1)] = True
  repeat = repeat.reshape(period, width - 1)
  if not repeat.any():
    return z.reshape(size, width), bad
  drop = np.concatenate([np.zeros((period, 1), bool), repeat], axis=1)
  again = np.argsort(~drop, axis=1, kind="stable")  # (repeats first, the rest in order)
  z = np.take(z, (shift + again).ravel(), axis=1)
  z[:, (np.arange(width) < np.count_nonzero(drop, axis=1)[:, None]).ravel()] = -1
  return z.reshape(size, width), bad


class _Walker:
  """Walks a linear program with each value's dependence rows (None: a constant, whose value
  is kept where a rule may read it)."""

  def __init__(self, n, who):
    self.n, self.who = n, who
    self.dtype = np.int32 if n < 2 ** 31 - 1 else np.int64
    self.last_uses = {}

  # -- building rows -------------------------------------------------------------------------

  def empty(self, size):
    return _Rows(np.empty((size, 0), self.dtype))

  def identity(self, lo, hi):
    """The rows of an input whose entries are the columns lo..hi-1."""
    return _Rows(np.arange(lo, hi, dtype=self.dtype)[:, None])

  def rows(self, dep, size):
    return self.empty(size) if dep is None else dep

  def take(self, d, ids):
    """Rows `ids` of `d` (-1: an empty row)."""
    if len(ids) == d.size and np.array_equal(ids, np.arange(len(ids))):
      return d
    if not d.size:  # (an empty value: every row taken is empty)
      return self.empty(len(ids))
    none = ids < 0
    count = int(np.count_nonzero(none))
    safe = np.where(none, 0, ids) if count else ids
    if d.ptr is None and 2 * count <= len(ids):  # (few empty rows: placeholders)
      self.check(len(ids) * d.cols.shape[1], slack=2)
      out = d.cols[safe]
      if count:
        out[none] = -1
      return _Rows(out)
    per_row = np.where(none, 0, d.counts()[safe])
    ptr = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(per_row, out=ptr[1:])
    total = int(ptr[-1])
    self.check(total, slack=2)
    where = np.repeat(d.offsets()[safe] - ptr[:-1], per_row) + np.arange(total)
    return _Rows(d.flat()[where], ptr)

  def stack(self, terms):
    """The rows of `terms`, one after another."""
    if len(terms) == 1:
      return terms[0]
    if not terms:
      return self.empty(0)
    sizes = [t.size for t in terms]
    if all(t.ptr is None for t in terms):
      width = max(t.cols.shape[1] for t in terms)
      if sum(sizes) * width <= 2 * sum(t.stored for t in terms) + sum(sizes):
        return _Rows(np.concatenate([t.cols if t.cols.shape[1] == width else np.concatenate(
            [np.full((t.size, width - t.cols.shape[1]), -1, self.dtype), t.cols], axis=1)
            for t in terms]))
    starts = np.cumsum([0] + [t.stored for t in terms[:-1]])
    ptr = np.concatenate([[0]] + [t.offsets()[1:] + s for t, s in zip(terms, starts)])
    return _Rows(np.concatenate([t.flat() for t in terms]), ptr)

  def collect(self, d, groups, period=1):
    """Row o: the union of the rows groups[o, :] of `d` (-1: none)."""
    size, r = groups.shape
    if r == 1:
      return self.take(d, groups[:, 0])
    if not d.size or not r:
      return self.empty(size)
    if d.ptr is None:
      self.check(size * r * d.cols.shape[1], slack=2)
      none = groups < 0
      out = d.cols[np.where(none, 0, groups)]
      if none.any():
        out[none] = -1
      return self.dedupe(_Rows(out.reshape(size, -1)), period)
    some = groups >= 0
    return self.mix(size, d, np.repeat(np.arange(size), some.sum(axis=1)), groups[some])

  def mix(self, size, d, out_ids, in_ids):
    """Row o: the union of the rows in_ids[k] of `d` for which out_ids[k] is o."""
    if len(out_ids) > 1 and np.any(out_ids[1:] < out_ids[:-1]):
      order = np.argsort(out_ids, kind="stable")
      out_ids, in_ids = out_ids[order], in_ids[order]
    groups = np.zeros(size + 1, np.int64)
    np.cumsum(np.bincount(out_ids, minlength=size), out=groups[1:])
    per_pair = d.counts()[in_ids]
    starts = np.zeros(len(in_ids) + 1, np.int64)
    np.cumsum(per_pair, out=starts[1:])
    total = int(starts[-1])
    self.check(total, slack=2)
    where = np.repeat(d.offsets()[in_ids] - starts[:-1], per_pair) + np.arange(total)
    return self.dedupe(_Rows(d.flat()[where], starts[groups]))

  def union(self, size, terms, period=1):
    """Row e: the union of the rows e of `terms` (each of `size` rows, or None)."""
    kept = []
    for t in terms:
      if t is not None and not any(t.same(k) for k in kept):
        kept.append(t)
    if len(kept) <= 1:
      return kept[0] if kept else self.empty(size)
    if all(t.ptr is None for t in kept):
      out = kept[0]
      for t in kept[1:]:
        out = self.join(out, t, period)
      return out
    groups = np.arange(size)[:, None] + size * np.arange(len(kept))
    return self.collect(self.stack(kept), groups, period)

  def join(self, a, b, period=1):
    """The union of rows of equal length `a` and `b`, row by row. Where every row of one
    ends below the start of the other's (columns of different inputs, or of different
    parts of one), the rows are put side by side, with no sort."""
    x, y = a.cols, b.cols
    if not x.shape[1] or not y.shape[1]:
      return b if not x.shape[1] else a
    self.check(x.size + y.size, slack=2)
    if b.no_placeholders() and np.all(x[:, -1] < y[:, 0]):
      return _Rows(np.concatenate([x, y], axis=1))
    if a.no_placeholders():
      if np.all(y[:, -1] < x[:, 0]):
        return _Rows(np.concatenate([y, x], axis=1))
      if b.no_placeholders():
        x_first = x[:, -1] < y[:, 0]
        if np.all(x_first | (y[:, -1] < x[:, 0])):  # (disjoint, in either order)
          return _Rows(np.where(x_first[:, None], np.concatenate([x, y], axis=1),
                                np.concatenate([y, x], axis=1)))
    return self.dedupe(_Rows(np.concatenate([x, y], axis=1)), period)

  def dedupe(self, rows, period=1):
    """`rows` with each column once in a row, sorted: rows of equal length as _sort_rows
    does (`period`: how many rows apart rows are alike), CSR rows in groups of lengths
    within a factor 2, padded to equal lengths and sorted; repeats made placeholders, then
    placeholders dropped where they are many."""
    if rows.ptr is None:
      if rows.cols.shape[1] <= 1:
        return rows
      return self.compact(_sort_rows(rows.cols, period))
    counts = rows.counts()
    most = int(counts.max(initial=0))
    if most <= 1:
      return rows
    cols, ptr = rows.cols, rows.ptr
    rising = cols[1:] > cols[:-1]
    starts = ptr[1:-1]
    rising[starts[(starts > 0) & (starts < len(cols))] - 1] = True
    if rising.all():  # (every row increasing already, as a cumulative sum's are)
      return rows
    cols = cols.copy()
    beyond = np.iinfo(cols.dtype).max  # (fills the short rows of a group: sorts last)
    lo, width = 1, 2
    while lo < most:
      pick = np.flatnonzero((counts > lo) & (counts <= width))
      if pick.size:
        slots = np.arange(width)
        where = ptr[pick, None] + slots
        valid = slots < counts[pick, None]
        a = np.where(valid, cols[np.minimum(where, len(cols) - 1)], beyond)
        a.sort(axis=1)
        repeat = np.zeros(a.shape, bool)
        np.equal(a[:, 1:], a[:, :-1], out=repeat[:, 1:])
        np.putmask(a, repeat, -1)
        cols[where[valid]] = a[valid]
      lo, width = width, 2 * width
    indptr, indices = _Rows(cols, ptr).without_placeholders()
    return _Rows(indices, indptr)

  def compact(self, a):
    """Rows of equal length `a`, placeholders first, with fewer placeholders: the slots that
    are placeholders in every row dropped, and the rest kept where few (else the rows made
    CSR rows, as some are much longer than others)."""
    if not a.size or int(a[:, 0].min()) >= 0:
      return _Rows(a)
    lead = 0
    while lead < a.shape[1] and int(a[:, lead].max()) < 0:
      lead += 1
    a = a[:, lead:]
    pad = a < 0
    total = a.size - int(np.count_nonzero(pad))
    if 2 * (a.size - total) <= total:
      return _Rows(a)
    ptr = np.zeros(a.shape[0] + 1, np.int64)
    np.cumsum(a.shape[1] - np.count_nonzero(pad, axis=1), out=ptr[1:])
    return _Rows(a[~pad], ptr)

  def check(self, entries, slack=1):
    """Refuse a pattern of more than MAX_ENTRIES nonzeros (`slack` times as many for rows
    with repeats or placeholders, not yet removed)."""
    if entries > slack * MAX_ENTRIES:
      raise NotSparseError(
          f"{self.who}(sparse=True): the derivative's pattern has more than {MAX_ENTRIES:,} "
          "nonzeros; it is not sparse. Use the dense Jacobian (sparse=False).")

  # -- walking -------------------------------------------------------------------------------

  def walk(self, program: Program, in_deps, in_vals):
    """[(dependence, value)] of the program's outputs, given its inputs'."""
    env = {}
    for v, d, x in zip(program.in_vars, in_deps, in_vals):
      env[id(v)] = (d, x)
    for v, x in zip(program.const_vars, program.const_vals):
      env[id(v)] = (None, x)

    def read(a):
      return (None, a.val) if type(a) is Lit else env[id(a)]
    for eqn, done in zip(program.eqns, self.read_last(program)):
      ins = [read(a) for a in eqn.inputs]
      if all(d is None for d, _ in ins):
        if any(x is None for _, x in ins):  # (a constant whose value was not kept)
          outs = [(None, None)] * len(eqn.outputs)
        else:
          vals = eqn.prim.impl(*[x for _, x in ins], **eqn.params)
          vals = vals if eqn.prim.multiple_results else [vals]
          outs = [(None, x) for x in vals]
      else:
        rule = _RULES.get(eqn.prim.name)
        if rule is None and isinstance(eqn.params.get("program"), Program):
          rule = _nested
        outs = (rule or _everything)(self, eqn, ins)
        # (integers and booleans carry no derivative: a loop's counter, an index; an index
        # whose value is not known makes the moves it drives depend on everything)
        outs = [(None, x) if v.aval.dtype.kind not in "fc" else (d, x)
                for v, (d, x) in zip(eqn.outputs, outs)]
      for v, o in zip(eqn.outputs, outs):
        env[id(v)] = o
      for key in done:  # (values read for the last time: their memory is reused)
        env.pop(key, None)
    return [read(a) for a in program.outs]

  def read_last(self, program):
    """Per equation, the ids of the variables it is the last to read (not the outputs)."""
    key = id(program)
    if key not in self.last_uses:
      last = {}
      for k, eqn in enumerate(program.eqns):
        for a in eqn.inputs:
          if type(a) is not Lit:
            last[id(a)] = k
      for a in program.outs:
        if type(a) is not Lit:
          last.pop(id(a), None)
      done = [[] for _ in program.eqns]
      for v, k in last.items():
        done[k].append(v)
      self.last_uses[key] = (program, done)  # (the program kept: its id stays its own)
    return self.last_uses[key][1]


# ---- the rules: (walker, eqn, [(dep, value)]) -> [(dep, value)] per output ----------------------


def _out_shape(eqn, i=0):
  return eqn.outputs[i].aval.shape


def _period(shape):
  """How many rows apart an array's rows are usually alike: those of its entries along its
  first axis (the entries of a batch, computed alike)."""
  return _size(shape[1:]) if len(shape) > 1 else 1


def _everything(w, eqn, ins):
  """Every output entry depends on everything any operand depends on."""
  cols = [d.flat() for d, _ in ins if d is not None]
  cols = np.unique(np.concatenate(cols)) if cols else np.zeros(0, w.dtype)
  cols = cols[cols >= 0]
  outs = []
  for v in eqn.outputs:
    size = _size(v.aval.shape)
    w.check(size * len(cols))
    outs.append((_Rows(np.broadcast_to(cols, (size, len(cols)))), None))
  return outs


def _move(w, eqn, ins):
  """An output entry is one operand entry (or none): the impl on arrays of entry numbers
  (1-based, 0 for none), with index and mask operands as they are; the output's rows are
  those rows of the operands' rows, stacked."""
  if eqn.prim.name == "reshape":  # (the entries, in order, unchanged)
    return [(ins[0][0], None)]
  args, parts, start = [], [], 1
  for (d, x), a in zip(ins, eqn.inputs):
    shape = a.aval.shape
    if d is not None and a.aval.dtype.kind in "fc":
      args.append(np.arange(start, start + _size(shape), dtype=np.int64).reshape(shape))
      parts.append(d)
      start += _size(shape)
    elif a.aval.dtype.kind in "iub":  # (indices, masks: their values say the moves)
      if x is None:
        return _everything(w, eqn, ins)
      args.append(x)
    else:
      args.append(np.zeros(shape, np.int64))  # (a floating constant: no dependence)
  ids = np.asarray(eqn.prim.impl(*args, **eqn.params)).ravel() - 1
  return [(w.take(w.stack(parts), ids), None)]


def _elementwise(w, eqn, ins):
  """The operands' entries broadcast to the output's (a product with a constant: only where
  the constant is nonzero)."""
  shape = _out_shape(eqn)
  size = _size(shape)
  keep = None
  if eqn.prim.name in ("mul", "zmul"):
    for (d, x), a in zip(ins, eqn.inputs):
      if d is None and x is not None and not np.all(x):
        zero = np.broadcast_to(np.asarray(x), shape) == 0
        keep = ~zero if keep is None else keep & ~zero
  terms = []
  for (d, _), a in zip(ins, eqn.inputs):
    if d is not None:
      if a.aval.shape == shape and keep is None:
        terms.append(d)
        continue
      ids = np.broadcast_to(np.arange(_size(a.aval.shape)).reshape(a.aval.shape), shape)
      terms.append(w.take(d, np.where(keep, ids, -1).ravel() if keep is not None
                          else ids.ravel()))
  return [(w.union(size, terms, _period(shape)), None)]


def _reduce_sum(w, eqn, ins):
  """An output entry: the union of the rows of the entries it sums."""
  (d, _), = ins
  in_shape, out_size = eqn.inputs[0].aval.shape, _size(_out_shape(eqn))
  axes = tuple(eqn.params["axes"])
  kept = [i for i in range(len(in_shape)) if i not in axes]
  groups = np.arange(_size(in_shape)).reshape(in_shape).transpose(kept + list(axes))
  return [(w.collect(d, groups.reshape(out_size, _size([in_shape[i] for i in axes])),
                     _period(_out_shape(eqn))), None)]


def _cumsum(w, eqn, ins):
  (d, _), = ins
  shape = eqn.inputs[0].aval.shape
  axis, size = eqn.params["axis"], _size(shape)
  if not size:
    return [(w.empty(0), None)]
  lines = np.moveaxis(np.arange(size).reshape(shape), axis, -1).reshape(-1, shape[axis])
  later, earlier = np.tril_indices(shape[axis])  # (entry i sums entries j <= i)
  if eqn.params.get("reverse"):
    later, earlier = earlier, later
  return [(w.mix(size, d, lines[:, later].ravel(), lines[:, earlier].ravel()), None)]


def _scatter_add(w, eqn, ins):
  """x plus the updates, each added to the entry its index names (the gather of the output's
  entry numbers by the same index says which)."""
  from dfdx._src.ops import indexing
  (dx, _), (du, _) = ins[:2]
  if any(d is not None for d, _ in ins[2:]) or any(x is None for _, x in ins[2:]):
    return _everything(w, eqn, ins)
  shape = _out_shape(eqn)
  size = _size(shape)
  targets = np.asarray(indexing.gather_p.impl(np.arange(size).reshape(shape),
                                              *[x for _, x in ins[2:]],
                                              spec=eqn.params["spec"])).ravel()
  parts, out_ids, in_ids, start = [], [], [], 0
  for d, to in ((dx, np.arange(size)), (du, targets)):
    if d is not None:  # (rows of [dx; du], and the output entry each goes to)
      parts.append(d)
      out_ids.append(to)
      in_ids.append(start + np.arange(d.size))
      start += d.size
  return [(w.mix(size, w.stack(parts), np.concatenate(out_ids), np.concatenate(in_ids)),
           None)]


def _dot_general(w, eqn, ins):
  """One operand a constant: an output entry depends on the entries of the other that a
  nonzero of the constant multiplies."""
  (da, xa), (db, xb) = ins
  if (da is None) == (db is None) or (xa if da is None else xb) is None:
    return _everything(w, eqn, ins)
  (ca, cb), (ba, bb) = eqn.params["dimension_numbers"]
  sa, sb = eqn.inputs[0].aval.shape, eqn.inputs[1].aval.shape
  fa = [i for i in range(len(sa)) if i not in ca and i not in ba]
  fb = [i for i in range(len(sb)) if i not in cb and i not in bb]
  nb = _size([sa[i] for i in ba])
  nc = _size([sa[i] for i in ca])
  nfa, nfb = _size([sa[i] for i in fa]), _size([sb[i] for i in fb])
  out = np.arange(nb * nfa * nfb).reshape(nb, nfa, nfb)  # (output: batch, a free, b free)
  if da is not None:  # a traced: b's nonzeros (batch, contract, b free)
    var = np.arange(_size(sa)).reshape(sa).transpose(list(ba) + fa + list(ca))
    var = var.reshape(nb, nfa, nc)
    mask = (np.asarray(xb) != 0).transpose(list(bb) + list(cb) + fb).reshape(nb, nc, nfb)
    k, c, f = np.nonzero(mask)
    w.check(len(k) * nfa)
    rows, cols, d = out[k, :, f], var[k, :, c], da
  else:  # b traced: a's nonzeros (batch, a free, contract)
    var = np.arange(_size(sb)).reshape(sb).transpose(list(bb) + list(cb) + fb)
    var = var.reshape(nb, nc, nfb)
    mask = (np.asarray(xa) != 0).transpose(list(ba) + fa + list(ca)).reshape(nb, nfa, nc)
    k, f, c = np.nonzero(mask)
    w.check(len(k) * nfb)
    rows, cols, d = out[k, f, :], var[k, c, :], db
  return [(w.mix(out.size, d, rows.ravel(), cols.ravel()), None)]


def _nested(w, eqn, ins):
  """An equation holding a program of its inputs (jit, checkpoint): the program walked."""
  program = eqn.params["program"]
  if len(program.in_vars) != len(ins):
    return _everything(w, eqn, ins)
  return w.walk(program, [d for d, _ in ins], [x for _, x in ins])


def _scan(w, eqn, ins):
  """scan: its body walked once per step, the carries' rows carried."""
  body, nc, nx = eqn.params["body"], eqn.params["num_carry"], eqn.params["num_xs"]
  length, reverse = eqn.params["length"], eqn.params["reverse"]
  carry, xs, consts = ins[:nc], ins[nc:nc + nx], ins[nc + nx:]
  x_sizes = [_size(a.aval.shape[1:]) for a in eqn.inputs[nc:nc + nx]]
  ny = len(body.outs) - nc
  ys = [[None] * length for _ in range(ny)]
  for i in (range(length - 1, -1, -1) if reverse else range(length)):
    step = [(None if d is None else d.rows_between(i * s, (i + 1) * s),
             None if x is None else x[i]) for (d, x), s in zip(xs, x_sizes)]
    outs = w.walk(body, [d for d, _ in carry + step + consts],
                  [x for _, x in carry + step + consts])
    carry = outs[:nc]
    for k in range(ny):
      ys[k][i] = outs[nc + k]
  stacked = []
  for k, steps in enumerate(ys):
    size = _size(body.outs[nc + k].aval.shape)
    if all(d is None for d, _ in steps):
      vals = [x for _, x in steps]
      stacked.append((None, None if any(x is None for x in vals) else np.stack(vals)))
    else:
      stacked.append((w.stack([w.rows(d, size) for d, _ in steps]), None))
  return list(carry) + stacked


def _cond(w, eqn, ins):
  """cond with a constant index: the branch it picks, walked."""
  from dfdx._src.ops.branches import _branch_args, _pick_branch
  (d, index), args = ins[0], ins[1:]
  if d is not None or index is None:
    return _everything(w, eqn, ins)
  branches, num_consts = eqn.params["branches"], eqn.params["num_consts"]
  k = _pick_branch(index, len(branches))
  picked = _branch_args(args, branches, num_consts, k)
  return w.walk(branches[k], [d for d, _ in picked], [x for _, x in picked])


def _while_tangent(w, eqn, ins):
  """The tangents of a while loop (reverse mode's linear part): its step walked as many
  times as the loop ran (a constant)."""
  (d, n) = ins[0]
  if d is not None or n is None:
    return _everything(w, eqn, ins)
  nv, nc, nt = eqn.params["num_vals"], eqn.params["num_consts"], len(eqn.outputs)
  vals, consts = ins[1:1 + nv], ins[1 + nv:1 + nv + nc]
  tangents, const_tangents = ins[1 + nv + nc:1 + nv + nc + nt], ins[1 + nv + nc + nt:]
  for _ in range(int(n)):
    step = vals + consts + tangents + const_tangents
    outs = w.walk(eqn.params["step"], [d for d, _ in step], [x for _, x in step])
    vals, tangents = outs[:nv], outs[nv:]
  return tangents


_MOVES = ("slice", "reshape", "transpose", "broadcast_to", "concatenate", "pad", "rev",
          "gather", "scatter", "select")
_ELEMENTWISE = ("add", "sub", "neg", "mul", "div", "zmul", "zdiv", "convert_element_type",
                "real", "imag", "conj", "complex")
_RULES = {**{name: _move for name in _MOVES}, **{name: _elementwise for name in _ELEMENTWISE},
          "reduce_sum": _reduce_sum, "cumsum": _cumsum, "scatter_add": _scatter_add,
          "dot_general": _dot_general, "scan": _scan, "cond": _cond,
          "while_tangent": _while_tangent}


# ---- coloring ---------------------------------------------------------------------------------


def column_coloring(pattern):
  """Colors of the columns of `pattern` (CSR) such that columns sharing a row differ: greedy,
  in order (column j takes the least color that no earlier column sharing a row with it
  has). Returns (colors, number of colors); every column its own color where a row is so
  full that comparing columns would cost more than the dense Jacobian."""
  m, n = pattern.shape
  if n == 0:
    return np.zeros(0, np.int64), 0
  indptr, indices = _sorted_rows(pattern)
  per_row = np.diff(indptr)
  if int(np.sum(per_row.astype(np.int64) ** 2)) > MAX_ENTRIES:
    return np.arange(n), n
  if per_row.max(initial=0) <= 1:  # (no row has two columns: nothing conflicts)
    return np.zeros(n, np.int64), 1
  colors = _Greedy(indptr, indices, n).colors()
  return colors, int(colors.max()) + 1


def _sorted_rows(pattern):
  """(indptr, indices) of a CSR pattern, each row's columns increasing and distinct."""
  indptr = np.asarray(pattern.indptr, np.int64)
  indices = np.asarray(pattern.indices)
  rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
  if np.all((indices[1:] > indices[:-1]) | (rows[1:] != rows[:-1])):
    return indptr, indices
  order = np.lexsort((indices, rows))
  rows, indices = rows[order], indices[order]
  first = np.ones(len(rows), bool)
  first[1:] = (rows[1:] != rows[:-1]) | (indices[1:] != indices[:-1])
  indptr = np.zeros(len(indptr), np.int64)
  np.cumsum(np.bincount(rows[first], minlength=len(indptr) - 1), out=indptr[1:])
  return indptr, indices[first]


class _Greedy:
  """The greedy column coloring (see column_coloring), computed in rounds: a column whose
  earlier neighbours all have their colors takes its own, whatever the order among such
  columns, so each round colors every column that is then the first uncolored one in each
  of its rows, at once (in a row, the columns take their colors in order). A row keeps the
  colors its columns took as bits, and a column's least free color is the least bit unset
  in its rows together. Rounds that color too few entries to pay for themselves (a band:
  one column a round) give way to one Python loop over the rest, in order."""

  # A round must reach this many entries, besides 1/64 of the rows waiting, to be worth it.
  MIN_ROUND = 128

  def __init__(self, indptr, indices, n):
    self.indptr, self.indices, self.n = indptr, indices, n
    self.degree = np.bincount(indices, minlength=n)  # (rows of each column)
    # Each waiting row (one with uncolored columns) is at its first uncolored column, found
    # at pos[row] in indices; `reached` counts the rows at each column.
    self.pos = indptr[:-1].copy()
    self.rows = np.flatnonzero(np.diff(indptr))
    self.at = indices[self.pos[self.rows]]
    self.reached = np.bincount(self.at, minlength=n)
    # The colors that each row's columns took: bit c % 64 of word c // 64.
    self.words = [np.zeros(len(indptr) - 1, np.uint64)]
    self.slot = np.full(n, -1, np.int64)  # (a ready column's place among a round's)

  def colors(self):
    colors = np.full(self.n, -1, np.int64)
    colors[self.degree == 0] = 0
    ready = np.flatnonzero((self.reached == self.degree) & (self.degree > 0))
    while ready.size:
      if int(self.degree[ready].sum()) * 64 < 64 * self.MIN_ROUND + len(self.rows):
        break
      ready = self.round(ready, colors)
    self.rest(colors)
    return colors

  def round(self, ready, colors):
    """Colors the `ready` columns (each the first uncolored one in all its rows); returns
    the columns ready next."""
    self.slot[ready] = np.arange(len(ready))
    slot = self.slot[self.at]
    self.slot[ready] = -1
    now = slot >= 0
    rows, slot, later = self.rows[now], slot[now], ~now
    self.rows, self.at = self.rows[later], self.at[later]
    taken = np.zeros((len(ready), len(self.words)), np.uint64)
    for k, word in enumerate(self.words):
      np.bitwise_or.at(taken[:, k], slot, word[rows])
    c = self.least_free(taken)
    colors[ready] = c
    c = c[slot]
    bit = np.left_shift(np.uint64(1), (c % 64).astype(np.uint64))
    for k, word in enumerate(self.words):
      word[rows] |= bit if len(self.words) == 1 else np.where(c // 64 == k, bit, 0)
    pos = self.pos[rows] + 1
    self.pos[rows] = pos
    more = pos < self.indptr[rows + 1]
    rows, nxt = rows[more], self.indices[pos[more]]
    self.rows, self.at = np.concatenate([self.rows, rows]), np.concatenate([self.at, nxt])
    np.add.at(self.reached, nxt, 1)
    return np.unique(nxt[self.reached[nxt] == self.degree[nxt]])

  def least_free(self, taken):
    """Per row of `taken` (color bits, words of 64), the least color not set, widening the
    rows' words where every bit is set."""
    full = taken == np.iinfo(np.uint64).max
    if full.all(axis=1).any():
      self.words.append(np.zeros(len(self.words[0]), np.uint64))
      taken = np.concatenate([taken, np.zeros((len(taken), 1), np.uint64)], axis=1)
      full = np.concatenate([full, np.zeros((len(full), 1), bool)], axis=1)
    word = np.argmin(full, axis=1)  # (the first word with a bit unset)
    bits = taken[np.arange(len(taken)), word]
    lowest = ~bits & (bits + np.uint64(1))  # (its least unset bit, alone)
    return 64 * word + np.frexp(lowest.astype(np.float64))[1] - 1

  def rest(self, colors):
    """The columns not colored yet, one at a time in order (all earlier ones have their
    colors by then)."""
    todo = np.flatnonzero(colors < 0)
    if not todo.size:
      return
    used = self.words[0].tolist()
    for k, word in enumerate(self.words[1:], 1):
      used = [u | (v << 64 * k) for u, v in zip(used, word.tolist())]
    rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
    rows = rows[np.argsort(self.indices, kind="stable")].tolist()  # (by column)
    starts = np.concatenate([[0], np.cumsum(self.degree)]).tolist()
    found = []
    for j in todo.tolist():
      held = rows[starts[j]:starts[j + 1]]
      taken = 0
      for r in held:
        taken |= used[r]
      c = (~taken & (taken + 1)).bit_length() - 1
      found.append(c)
      bit = 1 << c
      for r in held:
        used[r] |= bit
    colors[todo] = found


def star_coloring(pattern):
  """A star coloring of the symmetric pattern's graph (vertices: the columns; edges: the
  nonzeros off the diagonal): neighbours differ in color, and no path of four vertices has
  two colors only. Then every entry h_ij is found in one pass per color from either side:
  (H s_c)[i] is h_ij where j is the only column of color c = color(j) in row i, else the
  entry is h_ji in row j (see _star_values). A hub row that a column coloring must give a
  color per column (an arrowhead Hessian) costs two colors here. Greedy, in order; returns
  (colors, number of colors)."""
  n = pattern.shape[0]
  indptr, indices = pattern.indptr, pattern.indices
  colors = np.full(n, -1, np.int64)
  count = np.zeros((n, 8), np.int64)  # count[x, c]: neighbours of x of color c
  used = 0
  for v in range(n):
    around = indices[indptr[v]:indptr[v + 1]]
    around = around[around != v]
    nb = around[colors[around] >= 0]
    forbidden = set(colors[nb].tolist())
    for w in nb:  # paths v - w - x - y with color(y) = color(w): not color(x)
      xs = indices[indptr[w]:indptr[w + 1]]
      xs = xs[(xs != v) & (xs != w) & (colors[xs] >= 0)]
      forbidden.update(colors[xs[count[xs, colors[w]] >= 2]].tolist())
    taken, seen = np.unique(colors[nb], return_counts=True)
    for c in taken[seen > 1]:  # paths w - v - x - y with color(w) = color(x): not color(y)
      for x in nb[colors[nb] == c]:
        ys = indices[indptr[x]:indptr[x + 1]]
        ys = ys[(ys != v) & (ys != x) & (colors[ys] >= 0)]
        forbidden.update(colors[ys].tolist())
    c = 0
    while c in forbidden:
      c += 1
    colors[v] = c
    used = max(used, c + 1)
    if used > count.shape[1]:
      count = np.concatenate([count, np.zeros_like(count)], axis=1)
    count[around, c] += 1
  return colors, used


def _star_values(compressed, pattern, rows, colors):
  """The entries of a symmetric pattern from the compressed rows H S of a star coloring:
  h_ij from row i where j's color is once in row i, else from row j (by symmetry)."""
  cols = pattern.indices
  once = np.zeros((pattern.shape[0], compressed.shape[0]), np.int64)
  np.add.at(once, (rows, colors[cols]), 1)
  direct = once[rows, colors[cols]] == 1
  return np.where(direct, compressed[colors[cols], rows], compressed[colors[rows], cols])


# ---- the Jacobian -----------------------------------------------------------------------------


def sparse_jacobian(lin, leaves, out_leaves, mode, pattern=None, who="jacobian", cache=None,
                    symmetric=False, chunk_size=None):
  """The Jacobian of the linear map `lin` as a scipy CSR array (outputs' entries, in order,
  by inputs' entries): its pattern (found, or `pattern` given), colored, then one pass per
  color of the mode chosen ("fwd", "rev" or "auto"). `cache`, a dict, keeps the colorings
  of the patterns seen (a function called again at another point usually has the same).
  `symmetric` (a Hessian): a star coloring instead, whose passes read each entry from
  either side (see star_coloring). `chunk_size`: at most that many colors' passes at a
  time."""
  sp = scipy_sparse(who)
  m = sum(_size(np.shape(o)) for o in out_leaves)
  n = sum(_size(np.shape(x)) for x in leaves)
  if pattern is None:
    pattern = jacobian_pattern(lin, leaves, out_leaves, who)
  else:
    pattern = given_pattern(sp, pattern, (m, n), who)
  if symmetric:  # (a pattern found at a point may miss one side of a pair: both are kept)
    pattern = (pattern + pattern.T).tocsr()
    pattern.sort_indices()
    pattern.data[:] = 1.0
  key = (mode, symmetric, pattern.shape, hash(pattern.indptr.tobytes()),
         hash(pattern.indices.tobytes()))
  if cache is not None and key in cache:
    fwd, rev, star, both = cache[key]
  else:
    fwd = rev = star = both = None
    if symmetric:  # (a column coloring is a star coloring too, one that asks more)
      star = star_coloring(pattern)
    elif mode != "auto":
      fwd = column_coloring(pattern) if mode == "fwd" else None
      rev = column_coloring(pattern.T.tocsr()) if mode == "rev" else None
    else:  # (each mode needs at least as many colors as a row, or column, has entries)
      fewest_fwd, fewest_rev = _most_per_row(pattern), _most_per_column(pattern)
      best = n + m
      if min(fewest_fwd, fewest_rev) > _BOTH_WAYS_MIN and _few_dense_rows(pattern):
        both = _both_ways(pattern, best)
        best = both[1][1] + both[2][1] if both is not None else best
      if fewest_fwd < best:
        fwd = column_coloring(pattern)
        best = min(best, fwd[1])
      if fewest_rev < best:
        rev = column_coloring(pattern.T.tocsr())
        best = min(best, rev[1])
      if both is not None and both[1][1] + both[2][1] > best:
        both = None
    if cache is not None:
      if len(cache) >= 8:
        cache.clear()
      cache[key] = fwd, rev, star, both
  rows = np.repeat(np.arange(m), np.diff(pattern.indptr))
  if not pattern.nnz:  # (nothing to compute: no pass at all)
    data = np.zeros(0)
  elif star is not None:
    data = _star_values(_pushed(lin, leaves, out_leaves, *star, chunk_size), pattern, rows, star[0])
  elif both is not None:  # (some rows pulled back, the other entries pushed forward: fewer)
    pulled_rows, row_colors, col_colors = both
    pulled = _pulled(lin, leaves, out_leaves, *row_colors, chunk_size)
    pushed = _pushed(lin, leaves, out_leaves, *col_colors, chunk_size)
    data = np.where(pulled_rows[rows], pulled[row_colors[0][rows], pattern.indices],
                    pushed[col_colors[0][pattern.indices], rows])
  elif fwd is not None and (rev is None or fwd[1] <= rev[1]):  # (ties: forward)
    data = _pushed(lin, leaves, out_leaves, *fwd, chunk_size)[fwd[0][pattern.indices], rows]
  else:
    data = _pulled(lin, leaves, out_leaves, *rev, chunk_size)[rev[0][rows], pattern.indices]
  dtype = np.result_type(*[dtypes.differentiable_dtype(np.asarray(o).dtype)
                           for o in out_leaves], *[dtypes.differentiable_dtype(
                               np.asarray(x).dtype) for x in leaves]) if m and n else float
  return sp.csr_array((np.asarray(data, dtype), pattern.indices.copy(), pattern.indptr.copy()),
                      shape=(m, n))


# Where both modes need more colors than this, the densest rows are tried in reverse mode and
# the rest of the pattern forward (`_both_ways`).
_BOTH_WAYS_MIN = 8


def _both_ways(pattern, best):
  """A split of the pattern that needs fewer passes than `best`: its densest rows pulled back
  (colored among themselves), every other row's entries pushed forward (the columns colored
  without those rows), or the same with columns and rows exchanged. A row coupled to every
  column, beside a column coupled to every row, makes both modes take a pass per entry;
  split, they take a few (an arrowhead Jacobian: 3). Returns (whether each row is pulled
  back, its rows' coloring, the columns' coloring) with colors -1 for none, or None."""
  m, n = pattern.shape
  counts = np.diff(pattern.indptr)
  order = np.argsort(-counts, kind="stable")
  found = None
  k = 1
  while k < min(m, 64) and counts[order[k - 1]] > 1:
    pulled = np.zeros(m, bool)
    pulled[order[:k]] = True
    rows, rows_count = column_coloring(pattern[pulled].T.tocsr())
    cols, cols_count = column_coloring(pattern[~pulled].tocsr())
    if rows_count + cols_count < best:
      best = rows_count + cols_count
      row_colors = np.full(m, -1, np.int64)
      row_colors[pulled] = rows
      found = pulled, (row_colors, rows_count), (cols, cols_count)
    k *= 2
  return found


def _few_dense_rows(pattern):
  """Whether some rows (at most 64) hold at least twice the entries of all the others."""
  counts = np.sort(np.diff(pattern.indptr))[::-1]
  return len(counts) > 1 and 2 * counts[min(len(counts) - 1, 64)] < counts[0]


def _most_per_column(pattern):
  counts = np.bincount(pattern.indices, minlength=pattern.shape[1])
  return int(counts.max()) if counts.size else 0


def _most_per_row(pattern):
  return int(np.diff(pattern.indptr).max(initial=0))


def given_pattern(sp, pattern, shape, who):
  """A user's pattern (a scipy sparse matrix or a 0/1 array) as a sorted CSR array."""
  if not sp.issparse(pattern):
    pattern = np.asarray(pattern)
    if pattern.ndim != 2:
      raise ValueError(f"{who}: sparse= takes True or a 2-D pattern (outputs' entries x "
                       f"inputs' entries); got an array of shape {pattern.shape}.")
  if tuple(pattern.shape) != shape:
    raise ValueError(f"{who}: the pattern given has shape {tuple(pattern.shape)}, but the "
                     f"Jacobian has {shape} (outputs' entries x inputs' entries, each raveled "
                     "and concatenated in order).")
  pattern = sp.csr_array(pattern, dtype=np.float64)
  pattern.eliminate_zeros()
  pattern.sort_indices()
  pattern.data[:] = 1.0
  return pattern


def _seeds(colors, count, leaves):
  """One stacked tangent (or cotangent) per leaf: seed c is 1 at the entries of color c (an
  entry of color -1 is in none)."""
  basis = np.zeros((count, len(colors)))
  some = colors >= 0
  basis[colors[some], np.flatnonzero(some)] = 1.0
  out, start = [], 0
  for x in leaves:
    size = _size(np.shape(x))
    out.append(basis[:, start:start + size].reshape((count,) + np.shape(x))
               .astype(dtypes.differentiable_dtype(np.asarray(x).dtype)))
    start += size
  return out


def _flat_rows(values, dims, count, like):
  """Batched results (one per leaf) as a (count, total entries) array."""
  rows = []
  for v, d, x in zip(values, dims, like):
    dtype = dtypes.differentiable_dtype(np.asarray(x).dtype)
    if v is None:
      rows.append(np.zeros((count, _size(np.shape(x))), dtype))
    else:
      rows.append(np.asarray(batching.bdim_at_front(v, d, count)).reshape(count, -1))
  return np.concatenate(rows, axis=1) if rows else np.zeros((count, 0))


# A batch of passes (vmap) holds about this many entries, its colors times the entries of the
# map's inputs and outputs: more colors than that are pushed in chunks. A batch's values
# (each that many entries) then stay small enough to be computed fast and to take little
# fresh memory on a first call (at ADBench's BA size, one color a chunk: its 14 passes take
# a third of the time they take as one batch).
_PASS_ENTRIES = 1 << 18


def _passes(apply, seeded, results, colors, count, chunk_size=None):
  """`apply` (the linear map or its transpose) of every color's seed (vmap, in chunks of
  colors, see _PASS_ENTRIES, and of at most `chunk_size`): a (count, entries of `results`)
  array."""
  seeds = _seeds(colors, count, seeded)
  entries = sum(_size(np.shape(x)) for x in list(seeded) + list(results))
  chunk = max(1, _PASS_ENTRIES // max(1, entries))
  with ad.derivative_pass():
    outs, dims = batching.vmap_chunked(lambda *s: apply(list(s)), count, seeds,
                                       [0] * len(seeds), min(chunk, chunk_size or chunk))
  return _flat_rows(outs, dims, count, results)


def _pushed(lin, leaves, out_leaves, colors, count, chunk_size=None):
  return _passes(lin.forward, leaves, out_leaves, colors, count, chunk_size)


def _pulled(lin, leaves, out_leaves, colors, count, chunk_size=None):
  return _passes(lin.transpose, out_leaves, leaves, colors, count, chunk_size)


def check_untraced(leaves, who):
  if any(isinstance(x, core.Tracer) for x in leaves):
    raise TypeError(f"{who}(sparse=True) returns a scipy.sparse matrix, which cannot be "
                    "traced: call it outside jit, vmap and other derivatives.")
