"""Compiled programs specialized to a uniform condition: where every entry of a `where`'s
condition holds (or none does), the branch it does not select is not computed.

Code that guards a formula against a singular point computes both branches and selects
(`where(theta != 0, rodrigues(theta), small_angle(theta))`, the "double where" that keeps
derivatives finite). Its reverse pass does the same: the cotangent is split by the condition
into one per branch, and the branch that was not selected is pulled back with a cotangent of
zeros. On almost every call the condition is uniform over the batch: no angle is zero. A
program jit compiles is then also compiled specialized to each uniform value of the
condition (of the `MAX_CONDITIONS` with the most selects, the one that leaves out the most
equations; each variant compiled when first tried). The specialized program:

- takes the selected operand for the select (`where(c, a, b)` is `a` where `c` holds
  everywhere: the same values);
- follows the zeros a select gives where it selects a literal 0 (the split cotangent) through
  the equations that keep a zero a zero: products, quotients of a zero, negation, sums, views,
  padding; a sum with such a zero is its other operand;
- drops every equation only the branch that was not selected needed.

A product 0 * x is 0 only where x is finite (0 * inf is NaN), and a quotient 0 / x where x is
finite and not 0. The specialized program checks each such factor (as the array it is a view
of, or gathers from) when it is computed, and the condition right after it is computed (the
condition's equations run first); a check that fails raises `Unspecialized`, and the call
runs the general program instead. Compiled in chunks (tiling.py), each chunk picks its own program. So the results are
the general program's values; only the sign of a zero can differ (x + 0 where x is -0).
After `MAX_MISSES` calls in a row that could not use a specialized program, a compiled
function runs the general one for `RETRY_AFTER` calls before trying again, and twice as
many after each further miss (up to 1024 times as many): a condition that stays mixed costs
a failed try at most that rarely, and one that becomes uniform again is specialized again.
`DFDX_JIT_SPECIALIZE=0` in the environment compiles general programs only.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from dfdx._src.ir import Eqn, Lit, Program, Var

# A specialized program is kept only if it leaves out at least this many equations, and
# this fraction of them (hand tracking's usual case leaves out 4 of 357: not worth a check).
MIN_SAVED = 4
MIN_SAVED_FRACTION = 0.05
MAX_CONDITIONS = 2  # conditions considered per program
MAX_MISSES = 3
RETRY_AFTER = 16
enabled = os.environ.get("DFDX_JIT_SPECIALIZE", "1") != "0"  # (0: general programs only)


logger = logging.getLogger("dfdx.jit")
SPECIALIZED = "specialized to a condition"  # (how a compiled function's source says so)


class Unspecialized(Exception):
  """Raised by a specialized program whose assumption does not hold for its arguments:
  `condition` is the condition's value when that is what failed, else None."""

  def __init__(self, condition=None):
    super().__init__()
    self.condition = condition


_ZERO = object()  # a variable known to be all zeros (of its own aval)
_VIEWS = {"reshape", "transpose", "broadcast_to", "slice", "rev"}
_KEEPS_ZERO = _VIEWS | {"neg", "reduce_sum", "pad", "convert_element_type"}


def source_of(x, producer, prims, resolve=lambda a: a):
  """The variable `x` is computed from by a chain of `prims` (each from its first input,
  as `resolve` maps it), or `x` itself."""
  while id(x) in producer and producer[id(x)].prim.name in prims:
    base = resolve(producer[id(x)].inputs[0])
    if not isinstance(base, Var):
      break
    x = base
  return x


def _is_zero_literal(a):
  return isinstance(a, Lit) and np.ndim(a.val) == 0 and a.val == 0


def _finite_literal(a, nonzero=False):
  v = np.asarray(a.val)
  return bool(np.isfinite(v).all()) and (not nonzero or bool(np.all(v != 0)))


class _Specializer:
  """One specialization of a program: the condition `root` assumed to be `value` everywhere."""

  def __init__(self, program, producer, root, value):
    self.program, self.producer, self.root, self.value = program, producer, root, value
    self.sub = {}      # id(var) -> its replacement: an atom, or _ZERO
    self.checks = {}   # id(var) -> (var, kind), kind "finite" or "finite nonzero"
    self.eqns = []

  def resolve(self, a):
    return self.sub.get(id(a), a) if isinstance(a, Var) else a

  def check(self, x, nonzero):
    """Check `x` before its zero products are dropped: as the array it is a view of, or
    gathers entries from (all of whose entries then pass, a stronger test)."""
    x = source_of(x, self.producer, _VIEWS | {"gather"}, self.resolve)
    kind = "finite nonzero" if nonzero or self.checks.get(id(x), (0, ""))[1] == \
        "finite nonzero" else "finite"
    self.checks[id(x)] = (x, kind)

  def fold(self, eqn, ins):
    """The replacement of `eqn`'s output given inputs some of which are _ZERO: _ZERO, an
    atom, or None when the zero cannot be followed through `eqn`."""
    name, out = eqn.prim.name, eqn.outputs[0]
    zero = [a is _ZERO for a in ins]
    if name in _KEEPS_ZERO and zero[0] and len(ins) == 1:
      return _ZERO
    if name in ("zmul",) or (name == "zdiv" and zero[0]):
      return _ZERO
    if name in ("mul", "dot_general", "div") and (name != "div" or (zero[0] and not zero[1])):
      for a, z in zip(ins, zero):
        if z:
          continue
        if isinstance(a, Lit):
          if not _finite_literal(a, nonzero=name == "div"):
            return None
        else:
          self.check(a, nonzero=name == "div")
      return _ZERO
    if name in ("add", "sub"):
      if all(zero):
        return _ZERO
      other = ins[1] if zero[0] else ins[0]
      if not (isinstance(other, Var) and other.aval.shape == out.aval.shape
              and other.aval.dtype == out.aval.dtype
              and other.aval.weak_type == out.aval.weak_type):
        return None
      if name == "sub" and zero[0]:
        from dfdx._src.ops.elementwise import neg_p
        self.eqns.append(Eqn(neg_p, [other], {}, [out], eqn.source))
        return out
      return other
    if name == "concatenate" and all(zero):
      return _ZERO
    if name == "select" and zero[1] and zero[2]:
      return _ZERO
    return None

  def run(self):
    """The specialized program and its checks, or None."""
    program, views = self.program, {id(self.root)}
    for eqn in program.eqns:
      ins = [self.resolve(a) for a in eqn.inputs]
      name, outs = eqn.prim.name, eqn.outputs
      if name in _VIEWS and isinstance(eqn.inputs[0], Var) and id(eqn.inputs[0]) in views:
        views.add(id(outs[0]))
      if name == "select" and isinstance(eqn.inputs[0], Var) and id(eqn.inputs[0]) in views:
        chosen, out = (ins[1] if self.value else ins[2]), outs[0]
        if out.aval.dtype.kind == "f" and (chosen is _ZERO or _is_zero_literal(chosen)):
          self.sub[id(out)] = _ZERO
          continue
        if isinstance(chosen, Var) and chosen.aval.shape == out.aval.shape and \
            chosen.aval.dtype == out.aval.dtype and \
            chosen.aval.weak_type == out.aval.weak_type:  # (a Python number is not a select's)
          self.sub[id(out)] = chosen
          continue
      if any(a is _ZERO for a in ins):
        if len(outs) != 1 or outs[0].aval.dtype.kind != "f":
          return None
        folded = self.fold(eqn, ins)
        if folded is None:
          return None
        if folded is not outs[0]:
          self.sub[id(outs[0])] = folded
        continue
      self.eqns.append(Eqn(eqn.prim, ins, eqn.params, outs, eqn.source) if any(
          a is not b for a, b in zip(ins, eqn.inputs)) else eqn)
    outs = [self.resolve(o) for o in program.outs]
    given = {id(v) for v in program.in_vars + program.const_vars}
    if any(o is _ZERO or (o is not p and id(o) in given) for o, p in zip(outs, program.outs)):
      return None  # (an output would be an argument itself, not an array of its own)
    return self._finish(outs)

  def _finish(self, outs):
    from dfdx._src.passes import dce
    checked = [self.root] + [x for x, _ in self.checks.values()]
    kept = dce(Program(self.program.in_vars, self.program.const_vars,
                       self.program.const_vals, self.eqns, outs + checked))
    saved = len(self.program.eqns) - len(kept.eqns)
    if saved < max(MIN_SAVED, MIN_SAVED_FRACTION * len(self.program.eqns)):
      return None
    # The condition's equations first: a call it does not fit wastes only those.
    producer = {id(v): e for e in kept.eqns for v in e.outputs}
    cone, stack = set(), [self.root]
    while stack:
      e = producer.get(id(stack.pop()))
      if e is not None and id(e) not in cone:
        cone.add(id(e))
        stack += [a for a in e.inputs if isinstance(a, Var)]
    eqns = [e for e in kept.eqns if id(e) in cone] + [e for e in kept.eqns if id(e) not in cone]
    checks = {id(self.root): (self.root, "all" if self.value else "none"), **self.checks}
    spec = Program(kept.in_vars, kept.const_vars, kept.const_vals, eqns, outs)
    return spec, checks


def specializations(program: Program):
  """{value: (program, checks)} for the condition whose uniform values leave out the most
  equations, or {} (see the module docstring). `checks` maps id(var) to (var, kind) for
  codegen: kind "all", "none", "finite" or "finite nonzero"."""
  if not enabled:
    return {}
  producer = {id(v): e for e in program.eqns for v in e.outputs}
  roots, selects = {}, {}
  for eqn in program.eqns:
    if eqn.prim.name != "select" or not isinstance(eqn.inputs[0], Var):
      continue
    c = source_of(eqn.inputs[0], producer, _VIEWS)
    if c.aval.dtype == np.bool_:
      roots[id(c)] = c
      selects[id(c)] = selects.get(id(c), 0) + 1
  # Each candidate costs two passes over the program: the conditions with the most selects
  # (then the largest) only, so that a loop unrolled with a condition per step compiles in
  # the time it did.
  candidates = sorted(roots.values(), key=lambda c: (selects[id(c)], c.aval.size),
                      reverse=True)[:MAX_CONDITIONS]
  best, best_saved = {}, 0
  for root in candidates:
    found = {}
    for value in (True, False):
      made = _Specializer(program, producer, root, value).run()
      if made is not None:
        found[value] = made
    saved = max((len(program.eqns) - len(p.eqns) for p, _ in found.values()), default=0)
    if saved > best_saved:
      best, best_saved = found, saved
  return best


def check_lines(name, kind):
  """The statements of one check in generated code, on the variable called `name`."""
  if kind == "all":
    return [f"if not np.all({name}): raise _Unspecialized({name})"]
  if kind == "none":
    return [f"if np.any({name}): raise _Unspecialized({name})"]
  test = f"np.isfinite({name}).all()" + (f" and np.all({name})" if kind == "finite nonzero"
                                         else "")
  return [f"if not ({test}): raise _Unspecialized()"]


def compile_specialized(program, compile_fn, name="f"):
  """`compile_fn(program, checks=None)` compiled for the general program and for each
  uniform condition (`specializations`), as one function that runs a specialized program
  where its assumption holds, else the general one; or just the general function when no
  specialization pays."""
  general = compile_fn(program, None)
  found = specializations(program)
  if not found:
    return general
  variants = {}  # compiled when first tried
  # misses: calls in a row that could not use one; wait: calls left before trying again
  # (after MAX_MISSES, RETRY_AFTER calls, doubled at each miss after that)
  state = {"next": next(iter(found)), "misses": 0, "wait": 0}

  def variant(value):
    fn = variants.get(value)
    if fn is None:
      fn = variants[value] = compile_fn(*found[value])
    return fn

  def run(*args):
    if state["wait"]:
      state["wait"] -= 1
      return general(*args)
    tried = state["next"]
    while True:
      try:
        out = variant(tried)(*args)
      except Unspecialized as miss:
        value = None
        if miss.condition is not None:  # which uniform value fits, if any
          c = miss.condition
          value = True if np.all(c) else False if not np.any(c) else None
        if value is None or value == tried or value not in found:
          state["misses"] += 1
          if state["misses"] >= MAX_MISSES:
            state["wait"] = RETRY_AFTER << min(state["misses"] - MAX_MISSES, 10)
            logger.info("%s: %d calls in a row did not fit a program specialized to a "
                        "uniform condition; the next %d run the general one", name,
                        state["misses"], state["wait"])
          return general(*args)
        tried = value
        continue
      state["next"], state["misses"] = tried, 0
      return out

  run.__dfdx_source__ = general.__dfdx_source__ + "".join(
      f"# {SPECIALIZED} {'all true' if v else 'all false'} (compiled when first tried)\n"
      for v in found)
  run.values, run.specialized, run.general = tuple(found), variants, general
  return run
