"""Code generation: a program becomes the source of a Python function whose body is a flat
sequence of NumPy calls (no tracing and no dfdx dispatch when it runs).

Owns the table `codegen_rules` (one rule per primitive: the NumPy expression computing it),
`program_source`, `compile_program` and buffer reuse: a ufunc's result is written with
`out=` into a temporary that dies at that equation, has the same shape and dtype, and that no
live value views. Inputs, constants and views are never written into.

A rule is either `Ufunc("sin")` (a NumPy ufunc: `np.sin(x)`, eligible for `out=`), or a
function `rule(ins, params) -> str` returning an expression from the input expressions, or
`View(rule)` for an expression that may return a view of its first input. A function marked
`with_avals` (see `with_avals`) also receives the input and output avals, to specialize the
code to the shapes.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.ir import Lit, Program, Var


class Ufunc:
  __slots__ = ("name",)

  def __init__(self, name):
    self.name = name


class View:
  __slots__ = ("rule",)

  def __init__(self, rule):
    self.rule = rule


codegen_rules: dict = {}
# Higher-order primitives whose programs are inlined before code generation.
INLINED = {"jit_call"}
# Helper functions some rules call; emitted into standalone sources that use them.
helpers: dict[str, str] = {}


def register(prim_name, rule):
  codegen_rules[prim_name] = rule


def with_avals(rule):
  """Mark a rule as `rule(ins, params, in_avals, out_avals) -> str`."""
  rule.with_avals = True
  return rule


class MissingCodegenRuleError(NotImplementedError):
  """A primitive has no NumPy code generation rule."""


def literal(value) -> str:
  """Python source that evaluates to `value` (a static parameter or a literal)."""
  if isinstance(value, np.dtype):
    # The scalar type stands for the dtype in every NumPy call and is a plain attribute
    # lookup (no np.dtype(...) call each time the code runs).
    if value.isbuiltin and hasattr(np, value.name) and np.dtype(getattr(np, value.name)) == value:
      return f"np.{value.name}"
    return f"np.dtype({value.name!r})"
  if isinstance(value, type) and issubclass(value, np.generic):
    return f"np.{value.__name__}"
  if isinstance(value, np.generic):
    return f"np.{type(value).__name__}({literal(value.item())})"
  if isinstance(value, np.ndarray):
    if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
      return f"np.array({literal(value.tolist())}, dtype={value.dtype.name!r})"
    return f"np.array({value.tolist()!r}, dtype={value.dtype.name!r})"
  if isinstance(value, float):
    if np.isnan(value) or np.isinf(value):
      return f"float({str(value)!r})"
    return repr(value)
  if isinstance(value, complex):
    if not (np.isfinite(value.real) and np.isfinite(value.imag)):
      return f"complex({literal(value.real)}, {literal(value.imag)})"
    return repr(value)
  if isinstance(value, tuple):
    return "(" + "".join(literal(v) + ", " for v in value) + ")"
  if isinstance(value, list):
    return "[" + ", ".join(literal(v) for v in value) + "]"
  if isinstance(value, dict):
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
  if value is None or isinstance(value, (bool, int, str)):
    return repr(value)
  raise MissingCodegenRuleError(f"cannot write the parameter {value!r} as source")


class _Emitter:
  """Names, liveness and buffer ownership while writing one program."""

  def __init__(self, program, const_names, prefix=""):
    self.program, self.prefix = program, prefix
    self.names = {}
    self.count = 0
    self.owner = {}  # id(var) -> id of the fresh buffer it lives in, or None (not ours)
    # id of a fresh buffer -> the last use of any variable that lives in it
    self.buffer_last_use = {}
    self.views = set()  # ids of variables that are views of a buffer (never written into)
    self.hoisted = {}  # literal key -> (name, value): NumPy scalar literals, built once
    self.last_use = {}
    for i, eqn in enumerate(program.eqns):
      for a in eqn.inputs:
        if isinstance(a, Var):
          self.last_use[id(a)] = i
    for o in program.outs:
      if isinstance(o, Var):
        self.last_use[id(o)] = len(program.eqns)
    for v in program.in_vars:
      self.owner[id(v)] = None
    for v, name in zip(program.const_vars, const_names):
      self.owner[id(v)] = None
      self.names[id(v)] = name

  def name(self, v):
    if id(v) not in self.names:
      self.names[id(v)] = f"v{self.count}"
      self.count += 1
    return self.names[id(v)]

  def atom(self, a):
    if type(a) is not Lit:
      return self.name(a)
    if isinstance(a.val, (np.ndarray, np.generic)):  # hoisted: built once, not per call
      key = (type(a.val), a.aval.dtype.str, repr(np.asarray(a.val).item()))
      if key not in self.hoisted:
        self.hoisted[key] = (f"{self.prefix}k{len(self.hoisted)}", a.val)
      return self.hoisted[key][0]
    return literal(a.val)

  def reusable_buffer(self, eqn, index):
    """An input of equation `index` whose buffer can take its output, or None."""
    (out,) = eqn.outputs
    if not out.aval.shape:
      return None
    for a in eqn.inputs:
      if not isinstance(a, Var) or self.last_use.get(id(a)) != index:
        continue
      root = self.owner.get(id(a))
      # Only a variable that fills a fresh buffer may be written into: never a view of one.
      if root is None or id(a) in self.views or (a.aval.shape, a.aval.dtype) != (
          out.aval.shape, out.aval.dtype):
        continue
      if self.buffer_last_use.get(root, -1) <= index:
        return a
    return None

  def set_owner(self, var, root):
    self.owner[id(var)] = root
    if root is not None:
      last = self.last_use.get(id(var), -1)
      if last > self.buffer_last_use.get(root, -1):
        self.buffer_last_use[root] = last


def program_source(program: Program, name="f", *, standalone=True, reuse_buffers=True,
                   arg_names=None, single_output=False, return_literals=False, prefix=""):
  """The source of a Python function computing `program` with NumPy. A standalone source
  embeds the constants and helper functions and needs only `import numpy as np`. The
  function returns a tuple of the outputs, or the output itself with `single_output`.
  `prefix` starts the names of its constants (so that two sources can share a file)."""
  from dfdx._src.passes import inline_jit_calls
  program = inline_jit_calls(program)
  const_names = [f"{prefix}c{i}" for i in range(len(program.const_vars))]
  em = _Emitter(program, const_names, prefix)
  if arg_names is not None:
    for v, n in zip(program.in_vars, arg_names, strict=True):
      em.names[id(v)] = n
  args = ", ".join(em.name(v) for v in program.in_vars)
  body, used_helpers = [], set()
  skipped, fused_reductions = _fuse_reductions(program, em)
  dels_after = _dead_after(program, skipped, fused_reductions)
  for i, eqn in enumerate(program.eqns):
    if i in skipped:
      continue
    rule = codegen_rules.get(eqn.prim.name)
    if rule is None:
      raise MissingCodegenRuleError(
          f"primitive '{eqn.prim.name}' has no NumPy code generation rule; register one in "
          "dfdx/_src/codegen_rules.py.")
    ins = [em.atom(a) for a in eqn.inputs]
    outs = [em.name(v) for v in eqn.outputs]
    if isinstance(rule, Ufunc):
      buffer = em.reusable_buffer(eqn, i) if reuse_buffers else None
      extra = f", out={em.name(buffer)}" if buffer is not None else ""
      expr = f"np.{rule.name}({', '.join(ins)}{extra})"
      root = em.owner[id(buffer)] if buffer is not None else id(eqn.outputs[0])
      em.set_owner(eqn.outputs[0], root)
    elif i in fused_reductions:
      expr = fused_reductions[i]
      em.set_owner(eqn.outputs[0], id(eqn.outputs[0]))
    else:
      fn = rule.rule if isinstance(rule, View) else rule
      if getattr(fn, "with_avals", False):
        expr = fn(ins, eqn.params, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outputs])
      else:
        expr = fn(ins, eqn.params)
      for v in eqn.outputs:
        first = eqn.inputs[0] if eqn.inputs else None
        if isinstance(rule, View) and isinstance(first, Var):
          em.set_owner(v, em.owner.get(id(first)))
          em.views.add(id(v))
        else:
          em.set_owner(v, id(v))
    used_helpers.update(h for h in helpers if h + "(" in expr)
    lhs = ", ".join(outs) + ("," if len(outs) == 1 and eqn.prim.multiple_results else "")
    body.append(f"    {lhs} = {expr}")
    if i in dels_after:
      body.append("    del " + ", ".join(em.name(v) for v in dels_after[i]))
  ret = ", ".join(em.atom(o) for o in program.outs)
  if single_output and len(program.outs) == 1:
    body.append(f"    return {ret}")
  else:
    body.append(f"    return ({ret}{',' if len(program.outs) == 1 else ''})")
  header = [f"def {_identifier(name)}({args}):"]
  hoisted = list(em.hoisted.values())
  if standalone:
    prelude = ["import numpy as np", ""]
    prelude += [helpers[h] for h in sorted(used_helpers)]
    prelude += [f"{c} = {literal(np.asarray(v))}" for c, v in zip(const_names,
                                                                  program.const_vals)]
    prelude += [f"{k} = {literal(v)}" for k, v in hoisted]
    return "\n".join(prelude + ([""] if len(prelude) > 2 else []) + header + body) + "\n"
  source = "\n".join(header + body) + "\n"
  return (source, dict(hoisted)) if return_literals else source


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _fuse_reductions(program, em):
  """Sums of products (`reduce_sum(mul(a, b))`, `reduce_sum(x ** 2)`) whose product is used
  nowhere else become one `np.einsum` call: one pass over the data and no temporary array.
  Returns the indices of the fused products (not emitted) and the reductions' expressions."""
  uses, producer = {}, {}
  for i, eqn in enumerate(program.eqns):
    for a in eqn.inputs:
      if isinstance(a, Var):
        uses[id(a)] = uses.get(id(a), 0) + 1
    for v in eqn.outputs:
      producer[id(v)] = i
  for o in program.outs:
    if isinstance(o, Var):
      uses[id(o)] = uses.get(id(o), 0) + 1
  skipped, fused = set(), {}
  for i, eqn in enumerate(program.eqns):
    if eqn.prim.name != "reduce_sum" or not isinstance(eqn.inputs[0], Var):
      continue
    product = eqn.inputs[0]
    j = producer.get(id(product))
    if j is None or uses.get(id(product)) != 1 or product.aval.dtype.kind != "f":
      continue
    source = program.eqns[j]
    if source.prim.name == "mul":
      operands = source.inputs
    elif source.prim.name == "integer_pow" and source.params["y"] == 2:
      operands = (source.inputs[0], source.inputs[0])
    else:
      continue
    shape = product.aval.shape
    if len(shape) > len(_LETTERS) or not all(
        isinstance(a, Var) and a.aval.dtype == product.aval.dtype
        and a.aval.shape == shape[len(shape) - a.aval.ndim:] for a in operands):
      continue
    letters = _LETTERS[:len(shape)]
    subscripts = [letters[len(shape) - a.aval.ndim:] for a in operands]
    kept = "".join(c for k, c in enumerate(letters) if k not in eqn.params["axes"])
    fused[i] = (f"np.einsum('{subscripts[0]},{subscripts[1]}->{kept}', "
                f"{em.atom(operands[0])}, {em.atom(operands[1])})")
    skipped.add(j)
  return skipped, fused


def compile_program(program: Program, name="f"):
  """A Python function (flat list of inputs -> list of outputs) computing `program`."""
  from dfdx._src.passes import inline_jit_calls
  program = inline_jit_calls(program)
  const_names = [f"c{i}" for i in range(len(program.const_vars))]
  source, literals = program_source(program, _identifier(name), standalone=False,
                                    return_literals=True)
  namespace = {"np": np, **dict(zip(const_names, program.const_vals)), **literals}
  for h in helpers.values():
    exec(h, namespace)
  exec(compile(source, f"<dfdx jit of {name}>", "exec"), namespace)
  fn = namespace[_identifier(name)]
  fn.__dfdx_source__ = source
  return fn


def _dead_after(program, skipped, fused_reductions):
  """Statement index -> the intermediate variables last used there, which the generated code
  deletes right after it: a temporary is freed as soon as it is dead, not when the function
  returns (lower peak memory, and NumPy's allocator can hand its memory to the next one)."""
  producer = {id(v): k for k, e in enumerate(program.eqns) for v in e.outputs}
  last = {}
  for i, eqn in enumerate(program.eqns):
    if i in skipped:
      continue
    inputs = eqn.inputs
    if i in fused_reductions:  # the einsum reads the operands of the product it replaces
      inputs = program.eqns[producer[id(eqn.inputs[0])]].inputs
    for a in inputs:
      if isinstance(a, Var):
        last[id(a)] = i
  keep = {id(o) for o in program.outs if isinstance(o, Var)}
  dead: dict = {}
  for i, eqn in enumerate(program.eqns):
    if i in skipped:
      continue
    for v in eqn.outputs:
      if id(v) not in keep:
        dead.setdefault(last.get(id(v), i), []).append(v)
  return dead


def _identifier(name):
  cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
  return cleaned if cleaned and not cleaned[0].isdigit() else f"f_{cleaned}"



# The rules register themselves into the tables above.
from dfdx._src import codegen_rules as _codegen_rules  # noqa: E402,F401
