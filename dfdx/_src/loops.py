"""Work moved out of compiled loops: what a scan's body computes without its carry runs once,
before or after the loop, batched over the steps.

A jitted scan calls its body once per step, and NumPy's cost of a call on a small array is
its overhead: the LSTM's body works on vectors of 14 entries, 144 equations a step forward
and backward, most of which do not depend on the carry. `hoist_loops` (run on programs that
are only compiled, see passes.optimize) splits each scan's body into:
  * invariant equations, which read only the body's constants: computed once before the
    loop; the loop reads their outputs as constants;
  * per-step equations, which read the step's inputs (xs) but not the carry: computed for
    all steps at once before the loop (the equations under vmap); the loop reads their
    outputs as new xs;
  * the loop itself: what the carry needs, and what cannot be batched (nested programs);
  * equations after the loop: the rest, which read the carry but feed only stacked outputs
    (a step's loss, the values a reverse pass keeps); the loop stacks the values they read
    and they run batched after it;
  * sums carried: a carry that only accumulates (c' = c + v, c read nowhere else) becomes a
    stacked output v summed after the loop (reverse mode's cotangents of the values a body
    closes over: the LSTM's weights, 19 additions a step).
A scan whose carries form recurrences that do not feed back into each other (a stacked
RNN's layers: layer 2 reads layer 1's state, never the reverse) runs first as one loop per
recurrence, each after those it reads (`_recurrences`, `_parts`): a later loop reads an
earlier one's values stacked along the steps, so what it computes from them alone becomes
work per step (layer 2's gates on layer 1's output), batched before it. It is done where
the loops, once split, cost a step less than the one loop split (`_LOOP_COST` for each
loop more; a loop that costs less than that joins its neighbour).
Two rewrites make more of the body leave: a product (c * a) * b of a carried value c and
step values a, b is regrouped as c * (a * b) (reverse mode multiplies a carried cotangent by
one stacked factor after another), and an incoming carry that is stacked along with its
outgoing value is not stacked twice: after the loop it is that value a step earlier.
Values are the loop's up to rounding: a carried sum is summed pairwise rather than step by
step, a regrouped product rounds differently, and a batched product may run another kernel,
as any jitted program reassociates.

`exact=True` keeps every value's bits (for eager reverse passes, which must give the
interpreter's, see reverse_cache): the body is taken as it is (no optimizing passes, no
regrouping), and a carried sum is summed after the loop in the loop's order, starting from
its initial value (NumPy sums the leading axis of a stack step by step where each step's
term has two entries or more; a carry of one entry stays in the loop), and only equations
that compute each entry on its own are batched over the steps (elementwise ones, and those
that move entries), with the same operations as the loop.

Stacking trades memory for calls: a loop is split only where the arrays it adds (the
batched equations' outputs, the values stacked for after the loop) hold at most
`MAX_STACKED_BYTES`; otherwise only its invariant equations move. A split that would not
save equations per step is not made.
"""
from __future__ import annotations

import collections
import functools

import numpy as np

from dfdx._src import batching, core, staging
from dfdx._src.core import ShapedArray
from dfdx._src.ir import Eqn, Lit, Program, Var, eval_program, typecheck_program

MAX_STACKED_BYTES = 64 << 20
# What a step pays, in units of one equation, for each input it slices from an xs and each
# output it writes into a stacked array (both are Python indexing on small arrays).
_SLICE_COST, _STACK_COST = 0.25, 0.5
# What one more loop costs a step (Python's iteration, the carries' assignment), in the same
# units: a loop is distributed where the loops it becomes cost less than it by one or more.
_LOOP_COST = 1.5

_INVARIANT, _STEP, _CARRY = 0, 1, 2


def hoist_loops(program: Program, exact: bool = False) -> Program:
  """`program` with the work that does not need its scans' loops moved out of them (with
  `exact`, only where every value keeps its bits: see the module docstring)."""
  if not any(e.prim.name == "scan" for e in program.eqns):
    return program
  rename = {}
  eqns, const_vars, const_vals = [], list(program.const_vars), list(program.const_vals)
  changed = False

  def atom(a):
    return a if type(a) is Lit else rename.get(id(a), a)
  for eqn in program.eqns:
    inputs = [atom(a) for a in eqn.inputs]
    split = _split(eqn, inputs, exact) if eqn.prim.name == "scan" else None
    if split is None:
      eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source)
                  if inputs != list(eqn.inputs) else eqn)
      continue
    changed = True
    new_eqns, new_consts, outs = split
    eqns += new_eqns
    for v, c in new_consts:
      const_vars.append(v)
      const_vals.append(c)
    outs = [_python_number(o, v, eqns) for v, o in zip(eqn.outputs, outs)]
    rename.update((id(v), o) for v, o in zip(eqn.outputs, outs))
  if not changed:
    return program
  out = Program(program.in_vars, const_vars, const_vals, eqns,
                [atom(o) for o in program.outs])
  if staging.check_programs:
    typecheck_program(out)
  return out


def _python_number(atom, var, eqns):
  """`atom` standing for the scan's output `var`: where `var` is a Python number (weakly
  typed) and `atom` is not, say a row of the values the split stacked, `atom` made one."""
  if not var.aval.weak_type or atom.aval.weak_type:
    return atom
  if type(atom) is Lit:
    return Lit(np.asarray(atom.val).item())
  from dfdx._src.ops.control_flow import python_number_p
  out = Var(var.aval)
  eqns.append(Eqn(python_number_p, [atom], {}, [out]))
  return out


def _holds_program(eqn):
  return any(isinstance(v, Program) for v in eqn.params.values())


def _batchable(eqn, exact=False):
  """Whether `eqn` may run batched over the steps; with `exact`, only where each entry is
  computed as in the loop: elementwise, or moved and picked (a sum or a product over an axis
  may add in another order batched, a matrix product run another kernel)."""
  if _holds_program(eqn) or eqn.prim not in batching.primitive_batchers:
    return False
  return not exact or eqn.prim in batching.elementwise_prims or eqn.prim.name in _MOVES


# Primitives that only move or pick entries: exact batched. (Not max and min over an axis:
# which of -0.0 and +0.0 they return depends on the order they compare in.)
_MOVES = frozenset(("reshape", "transpose", "slice", "concatenate", "pad", "broadcast_to",
                    "rev", "gather", "convert_element_type"))


def _stacked_bytes(aval, length):
  return length * int(np.prod(aval.shape, dtype=np.int64)) * aval.dtype.itemsize


class _Body:
  """A scan body's equations sorted by what they depend on (see the module docstring)."""

  def __init__(self, body, num_carry, num_xs, batch, exact=False):
    self.body, self.nc, self.nx, self.exact = body, num_carry, num_xs, exact
    ins = body.in_vars
    self.carry_in, self.xs_in = ins[:num_carry], ins[num_carry:num_carry + num_xs]
    self.consts_in = ins[num_carry + num_xs:]
    kind = {id(v): _INVARIANT for v in self.consts_in + body.const_vars}
    kind.update((id(v), _STEP) for v in self.xs_in)
    kind.update((id(v), _CARRY) for v in self.carry_in)
    self.kinds = []
    for e in body.eqns:
      k = max((kind[id(a)] for a in e.inputs if type(a) is not Lit), default=_INVARIANT)
      if k == _STEP and not (batch and _batchable(e, exact)):
        k = _CARRY  # stays in the loop
      self.kinds.append(k)
      kind.update((id(o), k) for o in e.outputs)
    self.kind = kind
    self.accumulators = self._accumulators() if batch else {}
    self.in_loop = self._in_loop(batch)

  def kind_of(self, a):
    return _INVARIANT if type(a) is Lit else self.kind[id(a)]

  def _accumulators(self):
    """{carry index: (index of its addition, the term added each step)}."""
    found = {}
    for i, (j, term) in _carried_sums(self.body, self.nc).items():
      c = self.carry_in[i]
      if (type(term) is Lit or term.aval.shape != c.aval.shape
              or term.aval.dtype != c.aval.dtype or c.aval.dtype.kind not in "iufc"
              or (self.exact and int(np.prod(c.aval.shape, dtype=np.int64)) < 2)):
        continue
      found[i] = (j, term)
    return found

  def _in_loop(self, batch):
    """Which equations stay in the loop: those of the carry that the carry's outputs need,
    and those that cannot be batched (with everything they need)."""
    removed = {j for j, _ in self.accumulators.values()}
    needed = {id(o) for i, o in enumerate(self.body.outs[:self.nc])
              if i not in self.accumulators and type(o) is not Lit}
    in_loop = [False] * len(self.body.eqns)
    for j in reversed(range(len(self.body.eqns))):
      e = self.body.eqns[j]
      if j in removed or self.kinds[j] != _CARRY:
        continue
      if not batch or not _batchable(e, self.exact) or any(id(o) in needed for o in e.outputs):
        in_loop[j] = True
        needed.update(id(a) for a in e.inputs if type(a) is not Lit)
    return in_loop


def _split(eqn, inputs, exact=False):
  """The equations replacing the scan `eqn` (with `inputs`), the constants they add, and
  the atoms of its outputs; None where nothing moves or moving saves nothing."""
  from dfdx._src.passes import optimize, strip_stop_gradients, weak_operands_cast
  p = eqn.params                                                # (passes runs this pass)
  nc, nx, length = p["num_carry"], p["num_xs"], p["length"]
  if length < 2:
    return None
  # (the layout passes wait for the loop's body: program_function compiles it)
  body = p["body"] if exact else _regrouped(
      optimize(weak_operands_cast(strip_stop_gradients(p["body"]))), nc)
  cost, plan = _loop_cost(body, nc, nx, length, exact)
  recurrences = _recurrences(body, nc)
  while recurrences is not None:
    parts = _parts(body, nc, nx, recurrences)
    if not exact:  # (what was carried in the whole body may be a step's input in a part)
      for part in parts:
        part.body = _regrouped(part.body, len(part.carries))
    costs = [_loop_cost(part.body, len(part.carries), len(part.xs) + len(part.cross_in),
                        length, exact) for part in parts]
    # A loop that costs less than a loop does joins the next one (or the one before).
    k = min(range(len(parts)), key=lambda k: costs[k][0])
    if costs[k][0] < _LOOP_COST:
      j = k + 1 if k + 1 < len(parts) else k - 1
      lo = min(j, k)
      recurrences = (recurrences[:lo] + [recurrences[lo] + recurrences[lo + 1]]
                     + recurrences[lo + 2:])
      if len(recurrences) < 2:
        break
      continue
    if sum(c for c, _ in costs) + _LOOP_COST * (len(parts) - 1) <= cost - 1:
      return _emit_parts(parts, [pl for _, pl in costs], inputs, nc, nx, length,
                         p["reverse"], exact)
    break
  return None if plan is None else plan.emit(inputs, p["reverse"])


def _loop_cost(body, nc, nx, length, exact):
  """(what a step of the loop costs once split, the plan of the split or None where
  splitting saves nothing)."""
  for batch in (True, False):
    plan = _Plan(_Body(body, nc, nx, batch, exact), length)
    if batch and plan.stacked_bytes > MAX_STACKED_BYTES:
      continue
    if plan.saves():
      return plan.cost_after(), plan
  return plan.cost_before(), None


class _Part:
  """One loop of a distributed scan: its body, which carries of the scan it computes, and
  where its inputs and stacked outputs come from and go (see `_parts`)."""
  __slots__ = ("body", "carries", "xs", "consts", "cross_in", "ys")

  def __init__(self, body, carries, xs, consts, cross_in, ys):
    self.body, self.carries, self.xs, self.consts = body, carries, xs, consts
    # cross_in: body values of earlier loops, read stacked; ys: per stacked output, the
    # scan's outputs it is (indices among the scan's ys) and whether later loops read it.
    self.cross_in, self.ys = cross_in, ys


def _recurrences(body, nc):
  """The recurrences of a scan's carries that do not feed back into each other (the layers
  of a stacked RNN: layer 2 reads layer 1's state, never the reverse), as lists of carries in
  an order that puts each after those it reads, carried sums left out (they go to the last
  loop); None for one. Run as one loop each (see `_parts`), a loop reads what it needs of
  an earlier one's values stacked along the steps, so the equations that read nothing else
  of its own carry become work per step that leaves the loop."""
  if nc < 2:
    return None
  carry_in = body.in_vars[:nc]
  # The carries each value reads within a step, as a bit mask, and what each carry reads.
  reads = {id(v): 1 << i for i, v in enumerate(carry_in)}
  for e in body.eqns:
    m = 0
    for a in e.inputs:
      if type(a) is not Lit:
        m |= reads.get(id(a), 0)
    reads.update((id(o), m) for o in e.outputs)
  direct = [0 if type(o) is Lit else reads.get(id(o), 0) for o in body.outs[:nc]]
  reads_of = [[j for j in range(nc) if m >> j & 1] for m in direct]
  # The recurrences (carries that read each other), each after those it reads; sums carried
  # (c' = c + term) go last, where the loop split sums them after the loop.
  sums = _carried_sums(body, nc)
  ordinary = [r for r in _components(reads_of) if not all(i in sums for i in r)]
  return ordinary if len(ordinary) > 1 else None


def _components(succ):
  """The strongly connected components of the graph with edges i -> succ[i] (Tarjan's
  algorithm, without recursion), each after every component it reaches."""
  index, low, on_stack, stack, found = {}, {}, set(), [], []
  for root in range(len(succ)):
    if root in index:
      continue
    index[root] = low[root] = len(index)
    stack.append(root)
    on_stack.add(root)
    work = [(root, iter(succ[root]))]
    while work:
      v, edges = work[-1]
      for w in edges:
        if w not in index:
          index[w] = low[w] = len(index)
          stack.append(w)
          on_stack.add(w)
          work.append((w, iter(succ[w])))
          break
        if w in on_stack:
          low[v] = min(low[v], index[w])
      else:
        work.pop()
        if work:
          u = work[-1][0]
          low[u] = min(low[u], low[v])
        if low[v] == index[v]:
          members = []
          while True:
            w = stack.pop()
            on_stack.discard(w)
            members.append(w)
            if w == v:
              break
          found.append(sorted(members))
  return found


def _parts(body, nc, nx, recurrences):
  """The loops of a scan's body, one per entry of `recurrences` (lists of carries, in an
  order that puts each after those it reads; the carries of none run in the last loop).
  Each equation runs in the last loop that may run it (the earliest of those that read it),
  and every value keeps its bits: the same equations run on the same values."""
  ins = body.in_vars
  carry_in, xs_in, consts_in = ins[:nc], ins[nc:nc + nx], ins[nc + nx:]
  last = len(recurrences) - 1
  part_of_carry = [last] * nc
  for k, members in enumerate(recurrences):
    for i in members:
      part_of_carry[i] = k
  # Each equation in the last loop that may run it: the earliest loop that reads its value.
  home = {id(v): part_of_carry[i] for i, v in enumerate(carry_in)}
  needed_by = {}

  def read_in(a, k):
    if type(a) is not Lit:
      needed_by[id(a)] = min(needed_by.get(id(a), k), k)
  for i, o in enumerate(body.outs[:nc]):
    read_in(o, part_of_carry[i])
  for o in body.outs[nc:]:
    read_in(o, last)
  part_of_eqn = [None] * len(body.eqns)
  for j in reversed(range(len(body.eqns))):
    e = body.eqns[j]
    k = min((needed_by[id(o)] for o in e.outputs if id(o) in needed_by), default=None)
    if k is None:
      continue  # (dead)
    part_of_eqn[j] = k
    home.update((id(o), k) for o in e.outputs)
    for a in e.inputs:
      read_in(a, k)
  # What each loop reads: its equations' inputs, its carries' outputs and the scan's
  # stacked outputs it makes (those that no loop makes, xs, constants and literals, go to
  # the last).
  ys_of = [[] for _ in recurrences]
  for m, o in enumerate(body.outs[nc:]):
    ys_of[home.get(id(o), last) if type(o) is not Lit else last].append(m)
  read = []
  for k in range(len(recurrences)):
    atoms = [a for j, e in enumerate(body.eqns) if part_of_eqn[j] == k for a in e.inputs]
    atoms += [o for i, o in enumerate(body.outs[:nc]) if part_of_carry[i] == k]
    atoms += [body.outs[nc + m] for m in ys_of[k]]
    read.append(_unique([a for a in atoms if type(a) is not Lit]))
  crossing = [{} for _ in recurrences]  # each loop's values that later loops read, by id
  cross_in = []
  for k, atoms in enumerate(read):
    mine = [a for a in atoms if home.get(id(a), k) < k]
    for a in mine:
      crossing[home[id(a)]].setdefault(id(a), a)
    cross_in.append(mine)
  xs_ids = {id(v): x for x, v in enumerate(xs_in)}
  const_ids = {id(v): c for c, v in enumerate(consts_in)}
  body_consts = {id(v): (v, c) for v, c in zip(body.const_vars, body.const_vals)}
  parts = []
  for k in range(len(recurrences)):
    carries = [i for i in range(nc) if part_of_carry[i] == k]
    xs = [xs_ids[id(a)] for a in read[k] if id(a) in xs_ids]
    consts = [const_ids[id(a)] for a in read[k] if id(a) in const_ids]
    own = [body_consts[id(a)] for a in read[k] if id(a) in body_consts]
    stacked = {}  # id -> (var, scan ys indices, read later)
    for m in ys_of[k]:
      o = body.outs[nc + m]
      key = id(o) if type(o) is not Lit else ("lit", m)
      stacked.setdefault(key, [o, [], False])[1].append(m)
    for key, v in crossing[k].items():
      stacked.setdefault(key, [v, [], False])[2] = True
    ys = [(scan_ys, later) for _, scan_ys, later in stacked.values()]
    sub = Program([carry_in[i] for i in carries] + [xs_in[x] for x in xs] + cross_in[k]
                  + [consts_in[c] for c in consts], [v for v, _ in own], [c for _, c in own],
                  [e for j, e in enumerate(body.eqns) if part_of_eqn[j] == k],
                  [body.outs[i] for i in carries] + [o for o, _, _ in stacked.values()])
    if staging.check_programs:
      typecheck_program(sub)
    parts.append(_Part(sub, carries, xs, consts, cross_in[k], ys))
  return parts


def _carried_sums(body, nc):
  """{carry index: (index of its addition, the term)} of the carries that only accumulate:
  c' = c + term, c and c' read nowhere else."""
  uses = collections.Counter(id(a) for e in body.eqns for a in e.inputs if type(a) is not Lit)
  uses.update(id(o) for o in body.outs if type(o) is not Lit)
  producer = {id(o): j for j, e in enumerate(body.eqns) for o in e.outputs}
  sums = {}
  for i, (c, o) in enumerate(zip(body.in_vars[:nc], body.outs[:nc])):
    if c.aval.weak_type:  # (a Python number: a sum after the loop would make a NumPy value)
      continue
    j = producer.get(id(o)) if type(o) is not Lit else None
    if j is None or body.eqns[j].prim.name != "add" or uses[id(o)] != 1 or uses[id(c)] != 1:
      continue
    a, b = body.eqns[j].inputs
    term = b if a is c else a if b is c else None
    if term is not None and term is not c:
      sums[i] = (j, term)
  return sums


def _emit_parts(parts, plans, inputs, nc, nx, length, reverse, exact):
  """The equations of a distributed scan's loops (each split by its `plans` entry where it
  has one), the constants they add, and the atoms of the scan's outputs."""
  eqns, new_consts = [], []
  carries_out, ys_out, stacked = [None] * nc, {}, {}
  scan_p = core.all_primitives["scan"]
  for part, plan in zip(parts, plans):
    args = ([inputs[i] for i in part.carries] + [inputs[nc + x] for x in part.xs]
            + [stacked[id(v)] for v in part.cross_in] + [inputs[nc + nx + c] for c in part.consts])
    if plan is not None:
      more_eqns, more_consts, outs = plan.emit(args, reverse)
      eqns += more_eqns
      new_consts += more_consts
    else:
      if exact:
        from dfdx._src import codegen
        codegen.compile_exactly(part.body)
      params = dict(body=part.body, num_carry=len(part.carries), num_xs=len(part.xs)
                    + len(part.cross_in), length=length, reverse=reverse,
                    linear=(False,) * len(args))
      outs = [Var(a) for a in core.abstract_eval_avals(scan_p, [a.aval for a in args],
                                                       params)]
      eqns.append(Eqn(scan_p, args, params, outs))
    for i, o in zip(part.carries, outs):
      carries_out[i] = o
    for (scan_ys, later), o, v in zip(part.ys, outs[len(part.carries):],
                                     part.body.outs[len(part.carries):]):
      ys_out.update((m, o) for m in scan_ys)
      if later:
        stacked[id(v)] = o
  return eqns, new_consts, carries_out + [ys_out[m] for m in range(len(ys_out))]


def _regrouped(body, num_carry):
  """`body` with products (c * a) * b of a value c of the carry and values a, b that are not,
  all of one type, regrouped as c * (a * b), so that a * b can leave the loop (reverse mode
  multiplies a carried cotangent by one stacked factor after another), and sums (c + a) + b
  as c + (a + b) (it adds the cotangents a value gets from each of its uses). The result is
  the same up to rounding; an intermediate c * a read elsewhere stays."""
  uses = collections.Counter(id(a) for e in body.eqns for a in e.inputs if type(a) is not Lit)
  uses.update(id(o) for o in body.outs if type(o) is not Lit)
  carried = {id(v) for v in body.in_vars[:num_carry]}
  products = {}  # id(c * a) -> (c, a), products (and sums) of a carried value and another
  eqns, changed = [], False
  associative = (core.all_primitives["mul"], core.all_primitives["add"])
  for e in body.eqns:
    if e.prim in associative and all(type(a) is not Lit for a in e.inputs):
      (x, b), (out,) = e.inputs, e.outputs
      if id(b) in products and id(x) not in products:
        x, b = b, x
      grouped = products.get(id(x))
      if (grouped is not None and grouped[2] is e.prim and id(b) not in carried
              and uses[id(x)] == 1 and b.aval == out.aval):
        c, a, _ = grouped
        ab = Var(out.aval)
        eqns.append(Eqn(e.prim, [a, b], {}, [ab], e.source))
        e = Eqn(e.prim, [c, ab], {}, [out], e.source)
        changed = True
      x, b = e.inputs
      if (id(x) in carried) != (id(b) in carried) and x.aval == b.aval == out.aval:
        products[id(out)] = ((x, b) if id(x) in carried else (b, x)) + (e.prim,)
    eqns.append(e)
    if any(id(a) in carried for a in e.inputs if type(a) is not Lit):
      carried.update(id(o) for o in e.outputs)
  if not changed:
    return body
  from dfdx._src.passes import dce
  return dce(Program(body.in_vars, body.const_vars, body.const_vals, eqns, body.outs))


class _Plan:
  """The parts of one scan once split: which values cross from one part to the next."""

  def __init__(self, b: _Body, length):
    self.b, self.length = b, length
    body = b.body
    loop_eqns = [e for e, keep in zip(body.eqns, b.in_loop) if keep]
    self.loop_eqns = loop_eqns
    self.invariant_eqns = [e for e, k in zip(body.eqns, b.kinds) if k == _INVARIANT]
    self.step_eqns = [e for e, k in zip(body.eqns, b.kinds) if k == _STEP]
    removed = {j for j, _ in b.accumulators.values()}
    self.after_eqns = [e for j, (e, k, keep) in enumerate(zip(body.eqns, b.kinds, b.in_loop))
                       if k == _CARRY and not keep and j not in removed]
    # What the parts after the loop read: their equations' inputs, the stacked outputs and
    # the carried sums' terms.
    after_outs = list(body.outs[b.nc:]) + [t for _, t in b.accumulators.values()]
    produced_after = {id(o) for e in self.after_eqns for o in e.outputs}
    read_after = _unique([a for e in self.after_eqns for a in e.inputs] + after_outs)
    read_after = [a for a in read_after if type(a) is not Lit and id(a) not in produced_after]
    self.after_outs = after_outs
    # Read in the loop: values of the carry it computes; the others cross into it.
    loop_reads = _unique([a for e in loop_eqns for a in e.inputs]
                         + [o for i, o in enumerate(body.outs[:b.nc])
                            if i not in b.accumulators])
    loop_reads = [a for a in loop_reads if type(a) is not Lit]
    self.loop_xs = [a for a in loop_reads if b.kind_of(a) == _STEP]
    self.loop_consts = [a for a in loop_reads if b.kind_of(a) == _INVARIANT]
    self.stacked = [a for a in read_after if b.kind_of(a) == _CARRY]
    # An incoming carry stacked with its outgoing value is that value a step earlier: taken
    # from it after the loop (reverse mode stacks both a state and the next).
    stacked, incoming = {id(a) for a in self.stacked}, {id(c) for c in b.carry_in}
    self.shifted = {id(c): i for i, (c, o) in enumerate(zip(b.carry_in, body.outs))
                    if id(c) in stacked and type(o) is not Lit and id(o) not in incoming
                    and id(o) in stacked}
    # An incoming carry stacked alone: its outgoing value, made by the loop, is stacked in
    # its place (computed into its row where its equation can write there; each step then
    # stores nothing of it), and shifted after the loop.
    made = {id(o) for e in loop_eqns if len(e.outputs) == 1 for o in e.outputs}
    outgoing = []
    for i, (c, o) in enumerate(zip(b.carry_in, body.outs)):
      if (id(c) in stacked and id(c) not in self.shifted and type(o) is not Lit
              and id(o) in made and i not in b.accumulators):
        self.shifted[id(c)] = i
        outgoing.append(o)
    self.loop_ys = [a for a in self.stacked if id(a) not in self.shifted] + outgoing
    self.after_step = [a for a in read_after if b.kind_of(a) == _STEP]
    self.after_consts = [a for a in read_after if b.kind_of(a) == _INVARIANT]
    step_reads = _unique([a for e in self.step_eqns for a in e.inputs])
    self.step_consts = [a for a in step_reads
                        if type(a) is not Lit and b.kind_of(a) == _INVARIANT]
    step_made = _unique([o for e in self.step_eqns for o in e.outputs])
    used = {id(a) for a in self.loop_xs + self.after_step}
    self.step_outs = [v for v in step_made if id(v) in used]
    self.stacked_bytes = sum(
        _stacked_bytes(v.aval, length) for v in
        step_made + self.stacked + [o for e in self.after_eqns for o in e.outputs])

  def cost_before(self):
    """What a step of the loop costs as it is, in units of one equation."""
    b = self.b
    return len(b.body.eqns) + _SLICE_COST * b.nx + _STACK_COST * (len(b.body.outs) - b.nc)

  def cost_after(self):
    """What a step of the loop that remains costs."""
    return (len(self.loop_eqns) + _SLICE_COST * len(self.loop_xs)
            + _STACK_COST * len(self.loop_ys))

  def saves(self):
    """Whether a step does less work in the loop that remains."""
    return self.cost_after() <= self.cost_before() - 1

  def emit(self, inputs, reverse):
    b, length = self.b, self.length
    eqns, new_consts = [], []
    # body variable -> outer atom (stacked along the steps for xs and step values)
    env = {id(v): a for v, a in zip(b.body.in_vars[b.nc:], inputs[b.nc:])}
    read = functools.partial(_read, env)
    # Invariant equations, once.
    _copy_into(env, b.body, self.invariant_eqns, eqns, new_consts)
    # Per-step equations, batched.
    if self.step_outs:
      step_ins = b.xs_in + self.step_consts
      sub = Program(step_ins, [], [], self.step_eqns, self.step_outs)
      outs = _inline_batched(sub, [True] * len(b.xs_in) + [False] * len(self.step_consts),
                             length, [read(a) for a in step_ins], eqns, new_consts)
      env.update((id(v), o) for v, o in zip(self.step_outs, outs))
    # The loop.
    kept = [i for i in range(b.nc) if i not in b.accumulators]
    carry_in = [b.carry_in[i] for i in kept]
    loop_body = Program(carry_in + self.loop_xs + self.loop_consts, [], [], self.loop_eqns,
                        [b.body.outs[i] for i in kept] + self.loop_ys)
    if staging.check_programs:
      typecheck_program(loop_body)
    if b.exact:
      from dfdx._src import codegen
      codegen.compile_exactly(loop_body)
    loop_args = ([inputs[i] for i in kept] + [read(a) for a in self.loop_xs]
                 + [read(a) for a in self.loop_consts])
    scan_p = core.all_primitives["scan"]
    params = dict(body=loop_body, num_carry=len(kept), num_xs=len(self.loop_xs),
                  length=length, reverse=reverse, linear=(False,) * len(loop_args))
    loop_outs = [Var(a) for a in core.abstract_eval_avals(
        scan_p, [a.aval for a in loop_args], params)]
    eqns.append(Eqn(scan_p, loop_args, params, loop_outs))
    env.update((id(v), o) for v, o in zip(self.loop_ys, loop_outs[len(kept):]))
    for v in self.stacked:
      if id(v) in self.shifted:
        i = self.shifted[id(v)]
        out = b.body.outs[i]
        (env[id(v)],) = _inline_traced(
            lambda init, later: [_shifted(init, later, reverse)],
            [v.aval, ShapedArray((length,) + out.aval.shape, out.aval.dtype)],
            [inputs[i], env[id(out)]], eqns, new_consts)
    # After the loop, batched: the stacked outputs and the carried sums' terms.
    after_ins = self.stacked + self.after_step + self.after_consts
    sub = Program(after_ins, [], [], self.after_eqns, self.after_outs)
    mapped = [True] * (len(self.stacked) + len(self.after_step)) + [False] * len(
        self.after_consts)
    after = _inline_batched(sub, mapped, length, [read(a) for a in after_ins], eqns,
                            new_consts) if self.after_outs else []
    ys = after[:len(b.body.outs) - b.nc]
    carries = iter(loop_outs[:len(kept)])
    from dfdx._src.passes import _emit
    add_p, sum_p = core.all_primitives["add"], core.all_primitives["reduce_sum"]
    final = []
    for i in range(b.nc):
      if i not in b.accumulators:
        final.append(next(carries))
        continue
      terms = after[len(ys) + list(b.accumulators).index(i)]
      if b.exact:  # (the loop's order: the initial value plus each step's term in turn)
        c = b.carry_in[i]
        final += _inline_traced(
            lambda init, terms: [_summed_in_order(init, terms, reverse)],
            [c.aval, ShapedArray((length,) + c.aval.shape, c.aval.dtype)],
            [inputs[i], terms], eqns, new_consts)
        continue
      total = _emit(eqns, sum_p, [terms], {"axes": (0,)})
      dtype = b.carry_in[i].aval.dtype
      if total.aval.dtype != dtype:  # (NumPy sums small integers as int64: the loop wraps)
        total = _emit(eqns, core.all_primitives["convert_element_type"], [total],
                      {"new_dtype": dtype})
      final.append(_emit(eqns, add_p, [inputs[i], total], {}))
    return eqns, new_consts, final + ys


def _unique(atoms):
  seen, out = set(), []
  for a in atoms:
    key = id(a)
    if key not in seen:
      seen.add(key)
      out.append(a)
  return out


def _shifted(init, later, reverse):
  """The values a carry comes into each step with, from those it leaves with (`later`)."""
  import dfdx.numpy as dnp
  first = dnp.expand_dims(init, 0)
  return (dnp.concatenate([later[1:], first]) if reverse
          else dnp.concatenate([first, later[:-1]]))


def _summed_in_order(init, terms, reverse):
  """init plus the stacked terms, added one step after another in the loop's order."""
  import dfdx.numpy as dnp
  first, rest = (terms[-1], dnp.flip(terms[:-1], 0)) if reverse else (terms[0], terms[1:])
  return dnp.sum(dnp.concatenate([dnp.expand_dims(init + first, 0), rest]), axis=0)


def _inline_batched(sub, mapped, length, args, eqns, new_consts):
  """Append the equations of `sub` under vmap over `length` steps (its inputs flagged in
  `mapped` stacked along a first axis, the others the same each step) applied to `args`;
  returns the atoms of its outputs, each stacked along a first axis."""
  from dfdx._src import api
  axes = tuple(0 if m else None for m in mapped)
  avals = [ShapedArray((length,) + v.aval.shape, v.aval.dtype) if m else v.aval
           for v, m in zip(sub.in_vars, mapped)]
  return _inline_traced(
      lambda *ins: api.vmap(lambda *a: eval_program(sub, *a), in_axes=axes,
                            axis_size=length)(*ins), avals, args, eqns, new_consts)


def _inline_traced(fn, avals, args, eqns, new_consts):
  """Append the equations of `fn` (a list of arrays from arrays of `avals`, written with
  dfdx) applied to `args`; returns the atoms of its outputs."""
  from dfdx._src.ops.control_flow import _rule_program
  batched = _rule_program(fn, avals)
  env = {id(v): a for v, a in zip(batched.in_vars, args)}
  _copy_into(env, batched, batched.eqns, eqns, new_consts)
  return [_read(env, o) for o in batched.outs]


def _read(env, a):
  return a if type(a) is Lit else env[id(a)]


def _copy_into(env, program, source_eqns, eqns, new_consts):
  """Append `source_eqns` (of `program`) with fresh outputs, reading their inputs through
  `env`, which gains them, and `program`'s constants as new constants of the outer one."""
  for v, c in zip(program.const_vars, program.const_vals):
    outer = Var(v.aval)
    new_consts.append((outer, c))
    env[id(v)] = outer
  for e in source_eqns:
    outs = [Var(o.aval) for o in e.outputs]
    eqns.append(Eqn(e.prim, [_read(env, a) for a in e.inputs], e.params, outs, e.source))
    env.update((id(o), n) for o, n in zip(e.outputs, outs))
