"""Optimizing passes over programs: inlining of nested jit calls, constant folding,
simplification of the zeros and ones that differentiation introduces, common-subexpression
elimination and dead-code elimination.

Every pass returns a new, equivalent program (the input is not modified). `optimize` runs
them to a fixed point. The simplifications are exact rewrites only (they never change a
result, NaN and infinity included): `x * 1 -> x`, `x + 0 -> x`, `x - 0 -> x`, `x / 1 -> x`,
`-(-x) -> x`, transposes and reshapes of themselves, casts and broadcasts to the same type.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.ir import Eqn, Lit, Program, Var, typecheck_program
from dfdx._src import staging


def _rebuild(program, eqns, outs, const_vars=None, const_vals=None):
  out = Program(program.in_vars, program.const_vars if const_vars is None else const_vars,
                program.const_vals if const_vals is None else const_vals, eqns, outs)
  if staging.check_programs:
    typecheck_program(out)
  return out


class _Subst:
  """A substitution of atoms for variables, applied to equation inputs and outputs."""

  def __init__(self):
    self.map = {}

  def __call__(self, a):
    while isinstance(a, Var) and id(a) in self.map:
      a = self.map[id(a)]
    return a

  def set(self, var, atom):
    self.map[id(var)] = atom


def _same_type(atom, var):
  aval = atom.aval
  return aval.shape == var.aval.shape and aval.dtype == var.aval.dtype


# ---- dead code ------------------------------------------------------------------------------


def dce(program: Program) -> Program:
  """Remove equations whose outputs are not used (every primitive is pure)."""
  live = {id(o) for o in program.outs if isinstance(o, Var)}
  kept = []
  for eqn in reversed(program.eqns):
    if any(id(v) in live for v in eqn.outputs):
      kept.append(eqn)
      live.update(id(a) for a in eqn.inputs if isinstance(a, Var))
  kept.reverse()
  used = [(v, c) for v, c in zip(program.const_vars, program.const_vals) if id(v) in live]
  return _rebuild(program, kept, program.outs, [v for v, _ in used], [c for _, c in used])


# ---- common subexpressions --------------------------------------------------------------


def _hashable(value):
  if isinstance(value, np.ndarray):
    return ("array", value.shape, value.dtype.str, value.tobytes())
  if isinstance(value, (tuple, list)):
    return tuple(_hashable(v) for v in value)
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  hash(value)
  return value


def _atom_key(a):
  if type(a) is Lit:
    return ("lit", type(a.val).__name__, _hashable(np.asarray(a.val)), a.aval.dtype.str)
  return ("var", id(a))


def cse(program: Program) -> Program:
  """Reuse the result of an equation already computed with the same primitive, inputs and
  parameters."""
  seen, subst, eqns = {}, _Subst(), []
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    try:
      key = (eqn.prim, tuple(_atom_key(a) for a in inputs), _hashable(eqn.params))
    except TypeError:
      key = None
    if key is not None and key in seen:
      for v, prev in zip(eqn.outputs, seen[key]):
        subst.set(v, prev)
      continue
    if key is not None:
      seen[key] = eqn.outputs
    eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
  return _rebuild(program, eqns, [subst(o) for o in program.outs])


# ---- constant folding ---------------------------------------------------------------------


def fold_constants(program: Program) -> Program:
  """Evaluate equations whose inputs are all constants or literals, now."""
  values = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
  const_vars, const_vals = list(program.const_vars), list(program.const_vals)
  eqns, subst = [], _Subst()
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    if all(type(a) is Lit or id(a) in values for a in inputs) and eqn.prim.name != "jit_call":
      args = [a.val if type(a) is Lit else values[id(a)] for a in inputs]
      with np.errstate(all="ignore"):
        out = eqn.prim.impl(*args, **eqn.params)
      for v, o in zip(eqn.outputs, out if eqn.prim.multiple_results else [out]):
        o = np.asarray(o)
        if o.ndim == 0:
          subst.set(v, Lit(o.astype(v.aval.dtype)[()]))
        else:
          values[id(v)] = o
          const_vars.append(v)
          const_vals.append(o)
      continue
    eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
  return _rebuild(program, eqns, [subst(o) for o in program.outs], const_vars, const_vals)


# ---- algebraic simplification -------------------------------------------------------------


def _is_scalar_literal(a, value):
  return type(a) is Lit and np.ndim(a.val) == 0 and bool(np.asarray(a.val) == value)


class _Constants:
  """Which constant variables hold arrays of all zeros or all ones (cached per variable)."""

  def __init__(self, program):
    self.values = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
    self.cache = {}

  def is_all(self, a, value):
    if type(a) is Lit:
      return _is_scalar_literal(a, value)
    key = (id(a), value)
    if key not in self.cache:
      c = self.values.get(id(a))
      self.cache[key] = c is not None and c.size > 0 and bool(np.all(c == value))
    return self.cache[key]


def _simplify_eqn(eqn, inputs, producers, consts):
  """An atom equal to the equation's output, or None if no rewrite applies."""
  if eqn.prim.multiple_results:
    return None
  name, out = eqn.prim.name, eqn.outputs[0]
  if name == "mul":
    for a, b in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
      if consts.is_all(b, 1) and _same_type(a, out):
        return a
  if name in ("add", "sub"):
    x, y = inputs
    if consts.is_all(y, 0) and _same_type(x, out):
      return x
    if name == "add" and consts.is_all(x, 0) and _same_type(y, out):
      return y
  if name == "div" and consts.is_all(inputs[1], 1) and _same_type(inputs[0], out):
    return inputs[0]
  if name == "integer_pow" and eqn.params["y"] == 1:
    return inputs[0]
  if name in ("convert_element_type", "broadcast_to", "reshape") and _same_type(inputs[0], out):
    return inputs[0]
  producer = producers.get(id(inputs[0])) if isinstance(inputs[0], Var) else None
  if name == "neg" and producer is not None and producer.prim.name == "neg":
    return producer.inputs[0]
  if name == "transpose" and producer is not None and producer.prim.name == "transpose":
    perm = tuple(producer.params["perm"][p] for p in eqn.params["perm"])
    if perm == tuple(range(len(perm))):
      return producer.inputs[0]
  return None


def _fuse_eqn(eqn, inputs, producers):
  """A cheaper equation computing the same output (reshape of reshape, transpose of
  transpose), or None."""
  name = eqn.prim.name
  producer = producers.get(id(inputs[0])) if inputs and isinstance(inputs[0], Var) else None
  if producer is None:
    return None
  if name == "reshape" and producer.prim.name == "reshape":
    return Eqn(eqn.prim, [producer.inputs[0]], eqn.params, eqn.outputs, eqn.source)
  if name == "transpose" and producer.prim.name == "transpose":
    perm = tuple(producer.params["perm"][p] for p in eqn.params["perm"])
    return Eqn(eqn.prim, [producer.inputs[0]], {"perm": perm}, eqn.outputs, eqn.source)
  return None


def simplify(program: Program) -> Program:
  """Apply the exact algebraic rewrites listed in the module docstring."""
  subst, producers, eqns, consts = _Subst(), {}, [], _Constants(program)
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    replacement = _simplify_eqn(eqn, inputs, producers, consts)
    if replacement is not None:
      subst.set(eqn.outputs[0], replacement)
      continue
    new = _fuse_eqn(eqn, inputs, producers) or Eqn(eqn.prim, inputs, eqn.params, eqn.outputs,
                                                  eqn.source)
    for v in new.outputs:
      producers[id(v)] = new
    eqns.append(new)
  return _rebuild(program, eqns, [subst(o) for o in program.outs])


# ---- nested jit calls -------------------------------------------------------------------


def inline_jit_calls(program: Program) -> Program:
  """Replace each nested jit call by the equations of its program."""
  if not any(e.prim.name == "jit_call" for e in program.eqns):
    return program
  subst, eqns = _Subst(), []
  const_vars, const_vals = list(program.const_vars), list(program.const_vals)
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    if eqn.prim.name != "jit_call":
      eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
      continue
    inner = inline_jit_calls(eqn.params["program"])
    inner_subst = _Subst()
    for v, a in zip(inner.in_vars, inputs):
      inner_subst.set(v, a)
    const_vars += inner.const_vars
    const_vals += inner.const_vals
    for e in inner.eqns:
      fresh = [Var(v.aval) for v in e.outputs]
      for v, f in zip(e.outputs, fresh):
        inner_subst.set(v, f)
      eqns.append(Eqn(e.prim, [inner_subst(a) for a in e.inputs], e.params, fresh, e.source))
    for v, o in zip(eqn.outputs, inner.outs):
      subst.set(v, inner_subst(o))
  return _rebuild(program, eqns, [subst(o) for o in program.outs], const_vars, const_vals)


def optimize(program: Program, max_rounds: int = 4) -> Program:
  """Run the passes until the program stops changing (or `max_rounds`)."""
  program = dce(inline_jit_calls(program))
  for _ in range(max_rounds):
    before = len(program.eqns)
    program = dce(cse(simplify(fold_constants(program))))
    if len(program.eqns) == before:
      break
  return program

