"""Sparse Jacobians: the pattern of a derivative's nonzeros, read from its program, and the
Jacobian in as many passes as a coloring of that pattern needs.

`jacobian(f, sparse=True)` linearizes f once, as the dense Jacobian does, and traces the
linear map to a program (the tangent program: linear equations of the tangents, with the
forward pass's values as constants). Walking that program, the dependence of a value on the
N input entries is a sparse 0/1 matrix with one row per entry of the value. A linear
equation mixes its operands' rows by matrices its structure gives (`_RULES`):

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
arrowhead Jacobian in 3 passes). A Hessian is symmetric: a star coloring (star_coloring) reads each entry from either side,
so that a row coupled to every other (an arrowhead) costs 2 passes, not one per column.

The pattern is that of the derivative at the point: where the constants' values decide the
structure (a gather's indices, a select's mask, a zero factor) they are read, so it can be
sparser than at another point. It is found again at every call, unless a pattern is given
(`sparse=P`), which is then trusted: it must hold every nonzero (a nonzero outside it would
be added into the entries that share its pass).
"""
from __future__ import annotations

import math

import numpy as np

from dfdx._src import batching, core, dtypes
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
  sizes = [_size(a.shape) for a in avals]
  n = sum(sizes)
  deps, start = [], 0
  for size in sizes:
    deps.append(sp.csr_array((np.ones(size), (np.arange(size), np.arange(start, start + size))),
                             shape=(size, n)))
    start += size
  walker = _Walker(sp, n, who)
  outs = walker.walk(program, deps, [None] * len(deps))
  rows = [walker.rows(d, _size(o.aval.shape)) for (d, _), o in zip(outs, program.outs)]
  pattern = sp.vstack(rows, format="csr") if rows else sp.csr_array((0, n))
  pattern.sum_duplicates()
  pattern.sort_indices()
  pattern.data[:] = 1.0
  return pattern


def _size(shape):
  return math.prod(shape)


class _Walker:
  """Walks a linear program with each value's dependence rows (None: a constant, whose value
  is kept where a rule may read it)."""

  def __init__(self, sp, n, who):
    self.sp, self.n, self.who = sp, n, who

  def empty(self, size):
    return self.sp.csr_array((size, self.n))

  def rows(self, dep, size):
    return self.empty(size) if dep is None else dep

  def mix(self, size, parts):
    """sum_k M_k @ D_k for parts [(M_k as (rows, cols, shape), D_k)], values set to 1."""
    out = None
    for (r, c, shape), d in parts:
      if d is None or not len(r):
        continue
      m = self.sp.csr_array((np.ones(len(r)), (r, c)), shape=shape)
      term = m @ d
      out = term if out is None else out + term
    if out is None:
      return self.empty(size)
    out = out.tocsr()
    self.check(out.nnz)
    out.data[:] = 1.0
    return out

  def take(self, d, ids):
    """Rows `ids` of `d` (-1: an empty row), without a product."""
    if len(ids) == d.shape[0] and np.array_equal(ids, np.arange(len(ids))):
      return d
    if not d.shape[0]:  # (an empty value: every row taken is empty)
      return self.empty(len(ids))
    counts = np.diff(d.indptr)
    safe = np.maximum(ids, 0)
    per_row = np.where(ids >= 0, counts[safe], 0)
    indptr = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(per_row, out=indptr[1:])
    total = int(indptr[-1])
    self.check(total)
    where = np.repeat(d.indptr[safe] - indptr[:-1], per_row) + np.arange(total)
    return self.sp.csr_array((np.ones(total), d.indices[where], indptr),
                             shape=(len(ids), self.n))

  def union(self, size, terms):
    """The union of the rows of `terms` (matrices of `size` rows, or None)."""
    terms = [t for t in terms if t is not None]
    if not terms:
      return self.empty(size)
    out, added = terms[0], False
    for t in terms[1:]:
      if t is out or (np.array_equal(t.indptr, out.indptr) and
                      np.array_equal(t.indices, out.indices)):
        continue  # (operands that depend on the same entries, as a * f(a) does: no sum)
      out, added = out + t, True
    if added:
      out = out.tocsr()
      self.check(out.nnz)
      out.data[:] = 1.0
    return out

  def check(self, entries):
    if entries > MAX_ENTRIES:
      raise NotSparseError(
          f"{self.who}(sparse=True): the derivative's pattern has more than {MAX_ENTRIES:,} "
          "nonzeros; it is not sparse. Use the dense Jacobian (sparse=False).")

  def walk(self, program: Program, in_deps, in_vals):
    """[(dependence, value)] of the program's outputs, given its inputs'."""
    env = {}
    for v, d, x in zip(program.in_vars, in_deps, in_vals):
      env[id(v)] = (d, x)
    for v, x in zip(program.const_vars, program.const_vals):
      env[id(v)] = (None, x)

    def read(a):
      return (None, a.val) if type(a) is Lit else env[id(a)]
    for eqn in program.eqns:
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
    return [read(a) for a in program.outs]


# ---- the rules: (walker, eqn, [(dep, value)]) -> [(dep, value)] per output ----------------------


def _out_shape(eqn, i=0):
  return eqn.outputs[i].aval.shape


def _everything(w, eqn, ins):
  """Every output entry depends on everything any operand depends on."""
  cols = set()
  for d, _ in ins:
    if d is not None:
      cols.update(np.unique(d.indices).tolist())
  cols = np.array(sorted(cols), np.int64)
  outs = []
  for v in eqn.outputs:
    size = _size(v.aval.shape)
    w.check(size * len(cols))
    indptr = np.arange(size + 1, dtype=np.int64) * len(cols)
    outs.append((w.sp.csr_array((np.ones(size * len(cols)), np.tile(cols, size), indptr),
                                shape=(size, w.n)), None))
  return outs


def _move(w, eqn, ins):
  """An output entry is one operand entry (or none): the impl on arrays of entry numbers
  (1-based, 0 for none), with index and mask operands as they are."""
  args, parts, start = [], [], 1
  for (d, x), a in zip(ins, eqn.inputs):
    shape = a.aval.shape
    if d is not None and a.aval.dtype.kind in "fc":
      args.append(np.arange(start, start + _size(shape), dtype=np.int64).reshape(shape))
      parts.append((start, d))
      start += _size(shape)
    elif a.aval.dtype.kind in "iub":  # (indices, masks: their values say the moves)
      if x is None:
        return _everything(w, eqn, ins)
      args.append(x)
    else:
      args.append(np.zeros(shape, np.int64))  # (a floating constant: no dependence)
  ids = np.asarray(eqn.prim.impl(*args, **eqn.params)).ravel()
  terms = []
  for k, (first, d) in enumerate(parts):
    last = parts[k + 1][0] if k + 1 < len(parts) else start
    terms.append(w.take(d, np.where((ids >= first) & (ids < last), ids - first, -1)))
  return [(w.union(ids.size, terms), None)]


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
  return [(w.union(size, terms), None)]


def _reduce_sum(w, eqn, ins):
  (d, _), = ins
  in_shape, out_shape = eqn.inputs[0].aval.shape, _out_shape(eqn)
  axes = tuple(eqn.params["axes"])
  kept = [1 if i in axes else n for i, n in enumerate(in_shape)]
  group = np.broadcast_to(np.arange(_size(out_shape)).reshape(kept), in_shape).ravel()
  cols = np.arange(group.size)
  return [(w.mix(_size(out_shape), [((group, cols, (_size(out_shape), d.shape[0])), d)]),
           None)]


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
  rows, cols = lines[:, later].ravel(), lines[:, earlier].ravel()
  return [(w.mix(size, [((rows, cols, (size, d.shape[0])), d)]), None)]


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
  parts = [((np.arange(size), np.arange(size), (size, size)), dx)]
  if du is not None:
    parts.append(((targets, np.arange(targets.size), (size, du.shape[0])), du))
  return [(w.mix(size, parts), None)]


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
  size = out.size
  return [(w.mix(size, [((rows.ravel(), cols.ravel(), (size, d.shape[0])), d)]), None)]


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
    step = [(None if d is None else d[i * s:(i + 1) * s], None if x is None else x[i])
            for (d, x), s in zip(xs, x_sizes)]
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
      stacked.append((w.sp.vstack([w.rows(d, size) for d, _ in steps], format="csr"), None))
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
  in order. Returns (colors, number of colors); every column its own color where a row is so
  full that comparing columns would cost more than the dense Jacobian."""
  m, n = pattern.shape
  per_row = np.diff(pattern.indptr)
  if n == 0:
    return np.zeros(0, np.int64), 0
  if int(np.sum(per_row.astype(np.int64) ** 2)) > MAX_ENTRIES:
    return np.arange(n), n
  if per_row.max(initial=0) <= 1:  # (no row has two columns: nothing conflicts)
    return np.zeros(n, np.int64), 1
  conflicts = (pattern.T @ pattern).tocsr()
  ptr, nbrs = conflicts.indptr.tolist(), conflicts.indices.tolist()
  colors = [-1] * n  # (Python lists: a column's few neighbours cost less than NumPy calls)
  used = 0
  for j in range(n):
    taken = {colors[k] for k in nbrs[ptr[j]:ptr[j + 1]]}
    c = 0
    while c in taken:
      c += 1
    colors[j] = c
    if c >= used:
      used = c + 1
  return np.array(colors, np.int64), used


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
                    symmetric=False):
  """The Jacobian of the linear map `lin` as a scipy CSR array (outputs' entries, in order,
  by inputs' entries): its pattern (found, or `pattern` given), colored, then one pass per
  color of the mode chosen ("fwd", "rev" or "auto"). `cache`, a dict, keeps the colorings
  of the patterns seen (a function called again at another point usually has the same).
  `symmetric` (a Hessian): a star coloring instead, whose passes read each entry from
  either side (see star_coloring)."""
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
    data = _star_values(_pushed(lin, leaves, out_leaves, *star), pattern, rows, star[0])
  elif both is not None:  # (some rows pulled back, the other entries pushed forward: fewer)
    pulled_rows, row_colors, col_colors = both
    pulled = _pulled(lin, leaves, out_leaves, *row_colors)
    pushed = _pushed(lin, leaves, out_leaves, *col_colors)
    data = np.where(pulled_rows[rows], pulled[row_colors[0][rows], pattern.indices],
                    pushed[col_colors[0][pattern.indices], rows])
  elif fwd is not None and (rev is None or fwd[1] <= rev[1]):  # (ties: forward)
    data = _pushed(lin, leaves, out_leaves, *fwd)[fwd[0][pattern.indices], rows]
  else:
    data = _pulled(lin, leaves, out_leaves, *rev)[rev[0][rows], pattern.indices]
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


def _passes(apply, seeded, results, colors, count):
  """`apply` (the linear map or its transpose) of every color's seed at once (vmap): a
  (count, entries of `results`) array."""
  seeds = _seeds(colors, count, seeded)
  outs, dims = batching.vmap_flat(lambda *s: apply(list(s)), count, seeds, [0] * len(seeds))
  return _flat_rows(outs, dims, count, results)


def _pushed(lin, leaves, out_leaves, colors, count):
  return _passes(lin.forward, leaves, out_leaves, colors, count)


def _pulled(lin, leaves, out_leaves, colors, count):
  return _passes(lin.transpose, out_leaves, leaves, colors, count)


def check_untraced(leaves, who):
  if any(isinstance(x, core.Tracer) for x in leaves):
    raise TypeError(f"{who}(sparse=True) returns a scipy.sparse matrix, which cannot be "
                    "traced: call it outside jit, vmap and other derivatives.")
