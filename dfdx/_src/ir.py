"""Programs: the traced form of a function, as a list of equations over typed variables.

Owns `Var`, `Lit`, `Eqn` and `Program`, the type checker (`typecheck_program`), the evaluator
(`eval_program`, written with `bind`, so a program can be traced and differentiated again)
and the pretty printer (`Program.__str__`). Imports no ops.

Invariants of a well-formed program (checked by `typecheck_program`): every variable is
defined once, before it is used; each equation's output avals are what its primitive's
abstract evaluation gives for its input avals; outputs are defined variables or literals.
"""
from __future__ import annotations

import itertools

import numpy as np

from dfdx._src import core
from dfdx._src.core import ShapedArray


class Var:
  """A variable of a program, with its abstract value."""
  __slots__ = ("aval", "count")
  _counter = itertools.count()

  def __init__(self, aval: ShapedArray):
    self.aval = aval
    self.count = next(Var._counter)

  def __repr__(self):
    return f"Var({self.count}:{self.aval.str_short()})"


class Lit:
  """A literal: a Python or 0-d NumPy scalar written into the program."""
  __slots__ = ("val", "aval")

  def __init__(self, val):
    self.val = val
    self.aval = core.get_aval(val)

  def __repr__(self):
    return f"Lit({self.val!r})"


class QuietSource(str):
  """The source line of an equation staged in a derivative pass (core.context.reverse_depth):
  compiled code runs it with NumPy's floating-point warnings off, as the eager pass runs."""
  __slots__ = ()


class Eqn:
  """`outputs = prim(*inputs, **params)`; `source` is the user's line that created it."""
  __slots__ = ("prim", "inputs", "params", "outputs", "source")

  def __init__(self, prim, inputs, params, outputs, source=None):
    self.prim, self.inputs, self.params = prim, tuple(inputs), dict(params)
    self.outputs, self.source = tuple(outputs), source


class Program:
  """A traced function: inputs, captured constants (arrays), equations and outputs."""
  __slots__ = ("in_vars", "const_vars", "const_vals", "eqns", "outs", "__weakref__")

  def __init__(self, in_vars, const_vars, const_vals, eqns, outs):
    self.in_vars, self.const_vars, self.const_vals = list(in_vars), list(const_vars), \
        list(const_vals)
    self.eqns, self.outs = list(eqns), list(outs)

  @property
  def in_avals(self):
    return [v.aval for v in self.in_vars]

  @property
  def out_avals(self):
    return [o.aval for o in self.outs]

  def __str__(self):
    return pp_program(self)

  __repr__ = __str__


# ---- type checking --------------------------------------------------------------------------


class ProgramTypeError(Exception):
  """A program is malformed (a bug in dfdx, never in user code)."""


def typecheck_program(program: Program) -> None:
  """Check the invariants of a well-formed program; raise ProgramTypeError naming the
  first equation that breaks one."""
  defined = set()

  def define(v, where):
    if not isinstance(v, Var):
      raise ProgramTypeError(f"{where}: {v!r} is not a variable")
    if id(v) in defined:
      raise ProgramTypeError(f"{where}: {v!r} is defined twice")
    defined.add(id(v))

  for v in program.in_vars:
    define(v, "input")
  for v, c in zip(program.const_vars, program.const_vals, strict=True):
    define(v, "constant")
    if core.get_aval(c).shape != v.aval.shape or np.asarray(c).dtype != v.aval.dtype:
      raise ProgramTypeError(f"constant {v!r} holds a value of type {core.get_aval(c)}")
  for i, eqn in enumerate(program.eqns):
    where = f"equation {i} ({eqn.prim.name})"
    for a in eqn.inputs:
      if isinstance(a, Var) and id(a) not in defined:
        raise ProgramTypeError(f"{where}: input {a!r} is used before it is defined")
    expected = core.abstract_eval_avals(eqn.prim, [a.aval for a in eqn.inputs], eqn.params)
    expected = expected if eqn.prim.multiple_results else [expected]
    if len(expected) != len(eqn.outputs):
      raise ProgramTypeError(f"{where}: {len(eqn.outputs)} outputs, expected {len(expected)}")
    for v, aval in zip(eqn.outputs, expected):
      if (v.aval.shape, v.aval.dtype) != (aval.shape, aval.dtype):
        raise ProgramTypeError(f"{where}: output {v!r} has type {v.aval.str_short()}, but "
                               f"{eqn.prim.name} gives {aval.str_short()}")
      if v.aval.weak_type and not aval.weak_type:  # (the converse is allowed: see passes)
        raise ProgramTypeError(f"{where}: output {v!r} is weakly typed (a Python scalar), "
                               f"but {eqn.prim.name} gives a NumPy value")
      define(v, where)
  for o in program.outs:
    if isinstance(o, Var) and id(o) not in defined:
      raise ProgramTypeError(f"output {o!r} is not defined")


# ---- evaluation ---------------------------------------------------------------------------


def eval_program(program: Program, *args):
  """Evaluate a program on `args` with `bind`, so that whatever transformation is active
  transforms it. Returns the list of outputs."""
  if len(args) != len(program.in_vars):
    raise TypeError(f"eval_program: the program takes {len(program.in_vars)} inputs, got "
                    f"{len(args)}")
  env = {id(v): x for v, x in zip(program.in_vars, args)}
  env.update((id(v), c) for v, c in zip(program.const_vars, program.const_vals))

  def read(a):
    return a.val if type(a) is Lit else env[id(a)]

  for eqn in program.eqns:
    if (eqn.outputs[0].aval.weak_type if not eqn.prim.multiple_results
            else any(v.aval.weak_type for v in eqn.outputs)):
      out = _weak_equation(eqn, [read(a) for a in eqn.inputs])
    else:
      out = eqn.prim.bind(*[read(a) for a in eqn.inputs], **eqn.params)
    if eqn.prim.multiple_results:
      env.update((id(v), o) for v, o in zip(eqn.outputs, out))
    else:
      env[id(eqn.outputs[0])] = out
  return [read(o) for o in program.outs]


def _weak_equation(eqn, args):
  """An equation with weakly typed outputs (Python scalars) evaluated again: its results stay
  weak when staged, and are Python scalars when computed (see core.context.weak_results)."""
  out = core.keeping_weak_types(lambda: eqn.prim.bind(*args, **eqn.params))
  outs = out if eqn.prim.multiple_results else [out]
  outs = [o.item() if v.aval.weak_type and isinstance(o, (np.generic, np.ndarray)) else o
          for v, o in zip(eqn.outputs, outs)]
  return outs if eqn.prim.multiple_results else outs[0]


# ---- comparison -------------------------------------------------------------------------------

def same_program(a: Program, b: Program, a_consts=None) -> bool:
  """Whether `a` and `b` are the same computation: the same primitives with equal params,
  wired the same way, over variables of the same types, with literals and constants equal
  to the bit (`a_consts`, if given, stands for `a`'s constants: a copy taken when `a` was
  made, which arrays changed in place since would not match). What lets a function staged
  again at every call (odeint's right-hand side) reuse what was built for the last call."""
  if a is b and a_consts is None:
    return True
  if (len(a.in_vars), len(a.const_vars), len(a.eqns), len(a.outs)) != (
      len(b.in_vars), len(b.const_vars), len(b.eqns), len(b.outs)):
    return False
  a_consts = a.const_vals if a_consts is None else a_consts
  if not all(_same_value(x, y) for x, y in zip(a_consts, b.const_vals)):
    return False
  pairs = {}

  def define(xs, ys):
    for x, y in zip(xs, ys):
      if x.aval != y.aval:
        return False
      pairs[id(x)] = y
    return True

  def same_atom(x, y):
    if isinstance(x, Var):
      return pairs.get(id(x)) is y
    return isinstance(y, Lit) and _same_value(x.val, y.val)

  if not (define(a.in_vars, b.in_vars) and define(a.const_vars, b.const_vars)):
    return False
  for x, y in zip(a.eqns, b.eqns):
    if (x.prim is not y.prim or len(x.inputs) != len(y.inputs)
        or len(x.outputs) != len(y.outputs) or x.params.keys() != y.params.keys()
        or not all(map(same_atom, x.inputs, y.inputs))
        or not all(_same_param(x.params[k], y.params[k]) for k in x.params)
        or not define(x.outputs, y.outputs)):
      return False
  return all(map(same_atom, a.outs, b.outs))


def _same_value(x, y):
  """Equal to the bit, of the same type (a Python or NumPy scalar or an array)."""
  if type(x) is not type(y):
    return False
  if isinstance(x, (np.ndarray, np.generic)):
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
  if isinstance(x, (float, complex)):
    return np.array(x).tobytes() == np.array(y).tobytes()
  return x == y


def _same_param(x, y):
  if isinstance(x, Program):
    return isinstance(y, Program) and same_program(x, y)
  if isinstance(x, (tuple, list)):
    return (type(x) is type(y) and len(x) == len(y)
            and all(map(_same_param, x, y)))
  if isinstance(x, dict):
    return (type(y) is dict and x.keys() == y.keys()
            and all(_same_param(x[k], y[k]) for k in x))
  if isinstance(x, (np.ndarray, np.generic, float, complex)):
    return _same_value(x, y)
  if callable(x) and not isinstance(x, type):
    return x is y
  try:
    return type(x) is type(y) and bool(x == y)
  except Exception:  # (a comparison that does not give one truth value)
    return x is y


# ---- pretty printing ------------------------------------------------------------------------


def _names():
  letters = "abcdefghijklmnopqrstuvwxyz"
  for n in itertools.count(1):
    for combo in itertools.product(letters, repeat=n):
      yield "".join(combo)


def pp_param(value) -> str:
  if isinstance(value, np.dtype):
    return value.name
  if isinstance(value, Program):
    return "\n" + "\n".join("      " + line for line in pp_program(value).splitlines())
  if isinstance(value, tuple) and value and all(isinstance(v, Program) for v in value):
    return "(" + ",".join(pp_param(v) for v in value) + ")"
  if isinstance(value, np.ndarray):
    return f"array({value.dtype.name}{list(value.shape)})"
  if callable(value) and hasattr(value, "__name__"):
    return value.__name__
  return repr(value)


def pp_program(program: Program) -> str:
  """A readable listing: typed inputs, one equation per line, the outputs."""
  names, gen = {}, _names()

  def name(v):
    if id(v) not in names:
      names[id(v)] = next(gen)
    return names[id(v)]

  def typed(v):
    return f"{name(v)}:{v.aval.str_short()}"

  def atom(a):
    return _pp_literal(a.val) if type(a) is Lit else name(a)

  consts = "".join(f"{typed(v)} " for v in program.const_vars)
  ins = ", ".join(typed(v) for v in program.in_vars)
  lines = [f"{{ lambda {consts.strip() + '; ' if consts else ''}{ins}. let"]
  for eqn in program.eqns:
    params = ", ".join(f"{k}={pp_param(v)}" for k, v in eqn.params.items())
    lhs = " ".join(typed(v) for v in eqn.outputs)
    rhs = " ".join([eqn.prim.name + (f"[{params}]" if params else "")]
                   + [atom(a) for a in eqn.inputs])
    lines.append(f"    {lhs} = {rhs}")
  outs = ", ".join(atom(o) for o in program.outs)
  lines.append(f"  in ({outs}{',' if len(program.outs) == 1 else ''}) }}")
  return "\n".join(lines)


def _pp_literal(val):
  if isinstance(val, np.ndarray):
    return f"{val.item()!r}:{val.dtype.name}"
  if isinstance(val, np.generic):
    return f"{val.item()!r}:{val.dtype.name}"
  return repr(val)
