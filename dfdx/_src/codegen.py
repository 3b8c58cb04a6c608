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
code to the shapes; one marked `with_arrays` receives, besides, which inputs are certainly
NumPy arrays or NumPy scalars in the generated code (so that it may call their methods,
`x.reshape(s)`, a fifth of the cost of `np.reshape(x, s)`).

Scalar arithmetic (`+ - * /` and negation of 0-d floating values of which one is a NumPy
scalar) is written with Python's operators: the same IEEE operation, the same result type,
a tenth of a ufunc call's overhead. A broadcasting ufunc whose NumPy-chosen ("K") output
layout would leave it a short inner loop (a transposed operand broadcast against others:
`x.T[None] - m[:, :, None]`) gets that operand copied to C order first (see `_Layouts`).

Fewer calls where a pattern allows (each documented at its function): a sum of products is
one np.dot or np.einsum (`_fuse_reductions`), a vector built from 0-d values one np.array
(`_pack_scalars`), an entry of an array an index (`_scalar_entries`), a reshape that would
copy is made after the ufunc reading it (`_reshape_after_ufunc`), a constant that is zero
outside a small box is added on the box only (`_constant_box`), and a scan's stacked results
are computed into their rows (`_loop_rows`).
"""
from __future__ import annotations

import collections
import functools
import math
import re
import weakref

import numpy as np

from dfdx._src import layouts
from dfdx._src.ir import Lit, Program, QuietSource, Var


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
# Functions that code compiled in this process (jit) calls instead of a helper's standalone
# definition, where dfdx itself must hear of something (ties noted in reverse passes).
runtime_helpers: dict = {}
# prim name -> strides(in_avals, params, out_aval): the element strides of the result its
# rule's code gives, or None where it is C-ordered (the layout model reads them).
result_strides: dict = {}


def register(prim_name, rule):
  codegen_rules[prim_name] = rule


def with_avals(rule):
  """Mark a rule as `rule(ins, params, in_avals, out_avals) -> str`."""
  rule.with_avals = True
  return rule


def returns_inputs(rule):
  """Mark a rule whose code may give back an input itself or a view of it (a check passes
  its value on; an impl or a user's solver or callback may return what it was given): its
  result is never written into, and its inputs' buffers are kept for it."""
  rule.returns_inputs = True
  return rule


def with_constants(rule):
  """Mark a rule as `rule(ins, params, in_avals, out_avals, constants) -> str`, where
  `constants.value(i)` is the value of input i when it is a constant of the program (else
  None), and `constants.hoist(value)` names a value (a tuple of arrays, say) computed now,
  at code generation, that the generated code reads as a constant."""
  rule.with_avals = True
  rule.with_constants = True
  return rule


class _RuleConstants:
  __slots__ = ("em", "inputs")

  def __init__(self, em, inputs):
    self.em, self.inputs = em, inputs

  def value(self, i):
    a = self.inputs[i]
    return self.em.constant_values.get(id(a)) if isinstance(a, Var) else None

  def hoist(self, value):
    key = ("hoisted", len(self.em.hoisted))
    name = f"{self.em.prefix}k{len(self.em.hoisted)}"
    self.em.hoisted[key] = (name, value)
    return name


_CALLED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")  # the names an expression calls


def _helper_closure(names):
  """`names` and the helpers their sources call, and theirs."""
  names, todo = set(names), list(names)
  while todo:
    source = helpers[todo.pop()]
    for h in helpers:
      if h not in names and h + "(" in source:
        names.add(h)
        todo.append(h)
  return names


_helper_functions: dict = {}


def helper_function(name):
  """The helper `name` as a function of this process (what compiled code calls), for an
  impl that runs the same loop as the generated code."""
  fn = _helper_functions.get(name)
  if fn is None:
    namespace = {"np": np}
    for h in _helper_closure([name]):
      exec(compile(helpers[h], "<dfdx helpers>", "exec"), namespace)
    fn = _helper_functions[name] = namespace[name]
  return fn


def with_functions(rule):
  """Mark a rule as `rule(ins, params, in_avals, out_avals, functions) -> str`, where
  `functions.define(program)` names a function computing `program` (returning the tuple of
  its outputs) that the generated code calls: compiled now and read as a constant under
  jit, written out in full just before the call in a standalone source."""
  rule.with_avals = True
  rule.with_functions = True
  return rule


class _RuleFunctions:
  __slots__ = ("em",)

  def __init__(self, em):
    self.em = em

  def define(self, program, loop=None):
    """With `loop` (num_carry, num_xs, length, reverse), the function runs `program` as a
    scan's body, the loop written around its code (see program_source)."""
    em = self.em
    name = f"{em.prefix}fn{em.functions}"
    em.functions += 1
    if em.standalone:
      from dfdx._src.passes import optimize
      text, used = program_source(optimize(program, evaluate_only=True), name,
                                  prefix=name + "_", nested=True, loop=loop)
      em.pre_lines += text.splitlines()
      em.used_helpers |= used
    else:
      em.hoisted[("function", name)] = (name, program_function(program, loop))
    return name


_program_functions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def program_function(program, loop=None):
  """`program` as a NumPy function of this process (list of inputs -> tuple of outputs),
  optimized and compiled once; evaluated equation by equation where a primitive has no code
  generation rule. What the impls of primitives holding programs (loops, branches, odeint)
  run, and what compiled code calls for them. With `loop` (num_carry, num_xs, length,
  reverse): the scan of `program` as its body (carries and stacked xs and constants in,
  final carries and stacked ys out)."""
  functions = _program_functions.setdefault(program, {})
  fn = functions.get(loop)
  if fn is None:
    from dfdx._src.passes import optimize
    name = "body" if loop is None else "loop"
    try:
      if program in _exact_programs:
        fn = compile_program(program, name, fuse_reductions=False, loop=loop)
      else:
        fn = compile_program(optimize(program, evaluate_only=True), name, loop=loop)
    except MissingCodegenRuleError:
      fn = _interpreted(program, loop)
    functions[loop] = fn
  return fn


_exact_programs: weakref.WeakSet = weakref.WeakSet()


def compile_exactly(program):
  """Have `program_function` compile `program` as it is, without the passes that may round
  differently (a loop of an eager reverse pass, which must give the interpreter's bits)."""
  _exact_programs.add(program)


def _interpreted(program, loop):
  from dfdx._src.ir import eval_program
  step = lambda *xs: eval_program(program, *xs)  # noqa: E731
  if loop is None:
    return step
  num_carry = loop[0]
  ys_like = tuple((a.shape, a.dtype) for a in program.out_avals[num_carry:])
  return functools.partial(helper_function("_scan_loop"), step, *loop, ys_like)


def with_arrays(rule):
  """Mark a rule as `rule(ins, params, in_avals, out_avals, arrays) -> str`, where
  `arrays[i]` says whether input i is certainly a NumPy array or NumPy scalar when the code
  runs, with the array methods (not a Python number, nor a list passed to a standalone
  function)."""
  rule.with_avals = True
  rule.with_arrays = True
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
    if value.size == 0:  # (no entries to list, which would lose the shape)
      return f"np.zeros({literal(value.shape)}, dtype={value.dtype.name!r})"
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

  def __init__(self, program, const_names, prefix="", standalone=True):
    self.program, self.prefix, self.standalone = program, prefix, standalone
    # Functions that rules define (see with_functions): their count, and in a standalone
    # source the lines that define them before the equation that calls them.
    self.functions, self.pre_lines, self.used_helpers = 0, [], set()
    self.names = {}
    self.count = 0
    self.owner = {}  # id(var) -> id of the fresh buffer it lives in, or None (not ours)
    # id of a fresh buffer -> the last use of any variable that lives in it
    self.buffer_last_use = {}
    self.views = set()  # ids of variables that are views of a buffer (never written into)
    # key -> (name, value): NumPy scalar literals and values rules computed, built once
    self.hoisted = {}
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
    # Variables certainly held as NumPy arrays (results of rank >= 1 and constants; the
    # inputs too where the caller guarantees it), and 0-d ones certainly NumPy scalars or
    # 0-d arrays (results of ufuncs and reductions), never Python numbers.
    self.arrays = {id(v) for v in program.const_vars}
    self.constant_values = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
    self.constant_views = {id(v) for v in program.const_vars}  # (constants and their views)
    self.numpy_scalars = set()
    self.layouts = _Layouts()

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
                   arg_names=None, single_output=False, return_literals=False, prefix="",
                   nested=False, fuse_reductions=True, destinations=False, donated=(),
                   checks=None, loop=None):
  """The source of a Python function computing `program` with NumPy. A standalone source
  embeds the constants and helper functions and needs only `import numpy as np`. The
  function returns a tuple of the outputs, or the output itself with `single_output`.
  `prefix` starts the names of its constants (so that two sources can share a file).
  `nested`: a standalone source to be placed inside another function, without the import
  and the helpers; returns (source, names of the helpers it uses). `fuse_reductions=False`:
  sums of products stay a product and a sum (the rounding of NumPy's pairwise sums, which
  einsum's does not match). `destinations`: the function takes one more argument per output,
  an array of the output's shape and dtype, writes each output into it (computing it there
  where the output is a ufunc's or a concatenation's result, or a transpose of one) and
  returns None. `donated`: positions of inputs that are C-contiguous arrays the caller gives
  up (nothing else reads them during or after the call): once dead, their buffers take
  results as the function's own do. `checks`: id(var) -> (var, kind), a test of the
  variable right where it is defined, raising `_Unspecialized` when it fails (uniform.py).
  `loop` (num_carry, num_xs, length, reverse): `program` is a scan's body, and the function
  is the whole scan, its code inside the loop over the steps (no call per step); it takes
  the carries, the stacked xs and the constants, and returns the final carries and the
  stacked ys."""
  from dfdx._src.passes import inline_jit_calls
  program = inline_jit_calls(program)
  const_names = [f"{prefix}c{i}" for i in range(len(program.const_vars))]
  em = _Emitter(program, const_names, prefix, standalone)
  for k in donated:
    v = program.in_vars[k]
    em.set_owner(v, id(v))
    em.arrays.add(id(v))
  if arg_names is not None:
    for v, n in zip(program.in_vars, arg_names, strict=True):
      em.names[id(v)] = n
  args = ", ".join(em.name(v) for v in program.in_vars)
  if loop is not None:
    num_carry, num_xs = loop[:2]
    stacked_xs = [f"{prefix}xs{j}" for j in range(num_xs)]
    args = ", ".join([em.name(v) for v in program.in_vars[:num_carry]] + stacked_xs
                     + [em.name(v) for v in program.in_vars[num_carry + num_xs:]])
  dest_of = _destinations(program) if destinations else {}
  written, rows_written = set(), set()  # (outputs and scan rows computed in place)
  if loop is not None:
    dest_of.update(_loop_rows(program, loop[0]))
  if destinations:
    args = ", ".join([args] * bool(args) + [f"d{k}" for k in range(len(program.outs))])

  def destination(var):
    """The output array `var` is computed into, as source, or None."""
    if id(var) not in dest_of:
      return None
    k, perm = dest_of[id(var)]
    if k == "ys":  # (a scan's stacked output: its row of this step)
      rows_written.add(perm)
      return f"{prefix}ys{perm}[{prefix}step]"
    written.add(k)
    return f"d{k}" if perm is None else f"d{k}.transpose({perm})"
  body, used_helpers = [], set()
  if not standalone:  # compiled for jit: the inputs of rank >= 1 are NumPy arrays
    em.arrays.update(id(v) for v in program.in_vars if v.aval.ndim)
  checks = checks or {}
  rows_taken = _rows_taken(program)
  uses, producer = _uses_and_producers(program, checks)
  skipped, fused = set(), {}
  fusions = ((_fuse_reductions,) if fuse_reductions else ()) + (_pack_scalars,
                                                                _scalar_entries)
  for fuse in fusions:
    more_skipped, more = fuse(program, em, uses, producer)
    skipped |= more_skipped
    fused.update(more)
  dels_after = _dead_after(program, skipped, fused)
  body += _check_lines([v for v in program.in_vars + program.const_vars if id(v) in checks],
                       checks, em)
  reshaped_after = {}  # id(var) -> (x, shape): a reshape computed after the ufunc reading it
  quiet_lines = set()  # (lines of equations staged in a derivative pass: see _quiet_blocks)
  for i, eqn in enumerate(program.eqns):
    if i in skipped:
      continue
    first_line = len(body)
    j = _reshape_after_ufunc(program, i, skipped, em, uses, dest_of)
    if j is not None:
      x, r = eqn.inputs[0], eqn.outputs[0]
      reshaped_after[id(r)] = (x, r.aval.shape)
      dead = [v for v in dels_after.pop(i, []) + dels_after.pop(j, []) if v is not r]
      if dead:
        dels_after[j] = dead
      em.last_use[id(x)] = max(em.last_use.get(id(x), j), j)
      root = em.owner.get(id(x))
      if root is not None and em.buffer_last_use.get(root, -1) < j:
        em.buffer_last_use[root] = j
      continue
    rule = codegen_rules.get(eqn.prim.name)
    if rule is None:
      raise MissingCodegenRuleError(
          f"primitive '{eqn.prim.name}' has no NumPy code generation rule; register one in "
          "dfdx/_src/codegen_rules.py.")
    ins = [em.atom(a) for a in eqn.inputs]
    outs = [em.name(v) for v in eqn.outputs]
    if isinstance(rule, Ufunc):
      into = False
      ins = ins if rule.name == "ldexp" else _float_literals(eqn, ins)  # (an int exponent)
      expr = _scalar_operator(rule.name, eqn, ins, em)
      reshaped = next((reshaped_after[id(a)] for a in eqn.inputs if id(a) in reshaped_after),
                      None)
      if reshaped is not None:  # on the reshape's operand in C order, then a free reshape
        x, shape = reshaped
        ins = [em.atom(x) if id(a) in reshaped_after else text
               for a, text in zip(eqn.inputs, ins)]
        expr = f"np.{rule.name}({', '.join(ins)}, order='C').reshape({literal(shape)})"
        buffer = None
        em.layouts.after_ufunc(eqn, None, (), True)
      elif expr is None and _short_inner_loops(eqn):
        expr, buffer = f"_blocked_{eqn.prim.impl.ufunc.__name__}({', '.join(ins)})", None
      elif expr is None and id(eqn.outputs[0]) in dest_of:
        copied, _ = em.layouts.plan(eqn)
        for k in copied:
          ins[k] = f"np.ascontiguousarray({ins[k]})"
        expr = f"np.{rule.name}({', '.join(ins)}, out={destination(eqn.outputs[0])})"
        buffer, into = None, True
        em.layouts.after_ufunc(eqn, None, copied, False)
      elif expr is None and fuse_reductions and reuse_buffers and (
          boxed := _constant_box(eqn, i, em)) is not None:
        buffer, index, box = boxed  # (added where the constant is nonzero only)
        expr = (f"_ufunc_into(np.{rule.name}, {em.atom(buffer)}, "
                f"{_RuleConstants(em, eqn.inputs).hoist(box)}, np.s_[{index}])")
        em.layouts.after_ufunc(eqn, buffer, (), False)
      elif expr is None:
        buffer = em.reusable_buffer(eqn, i) if reuse_buffers else None
        extra = f", out={em.name(buffer)}" if buffer is not None else ""
        copied, c_order = em.layouts.plan(eqn) if buffer is None else ((), False)
        for k in copied:
          ins[k] = f"np.ascontiguousarray({ins[k]})"
        if (buffer is None and not c_order and id(eqn.outputs[0]) in rows_taken and
                em.layouts.after_copies(eqn, copied) is not None):
          c_order = True  # (np.take would copy the result to C order, more slowly)
        extra += ", order='C'" if c_order else ""
        expr = f"np.{rule.name}({', '.join(ins)}{extra})"
        em.layouts.after_ufunc(eqn, buffer, copied, c_order)
      else:
        buffer = None
      root = em.owner[id(buffer)] if buffer is not None else id(eqn.outputs[0])
      em.set_owner(eqn.outputs[0], None if into else root)  # (the caller's array: not ours)
      em.numpy_scalars.add(id(eqn.outputs[0]))
    elif i in fused:
      expr = fused[i][0]
      em.set_owner(eqn.outputs[0], id(eqn.outputs[0]))
      em.numpy_scalars.add(id(eqn.outputs[0]))
    else:
      fn = rule.rule if isinstance(rule, View) else rule
      if getattr(fn, "with_functions", False):
        expr = fn(ins, eqn.params, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outputs],
                  _RuleFunctions(em))
      elif getattr(fn, "with_constants", False):
        expr = fn(ins, eqn.params, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outputs],
                  _RuleConstants(em, eqn.inputs))
      elif getattr(fn, "with_arrays", False):
        expr = fn(ins, eqn.params, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outputs],
                  [isinstance(a, Var) and (id(a) in em.arrays or id(a) in em.numpy_scalars)
                   for a in eqn.inputs])
      elif getattr(fn, "with_avals", False):
        expr = fn(ins, eqn.params, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outputs])
      else:
        expr = fn(ins, eqn.params)
      into = eqn.prim.name in _RULES_INTO and id(eqn.outputs[0]) in dest_of
      if into:
        expr = f"{expr[:-1]}, out={destination(eqn.outputs[0])})"
      for v in eqn.outputs:
        first = eqn.inputs[0] if eqn.inputs else None
        if isinstance(rule, View) and isinstance(first, Var):
          em.set_owner(v, em.owner.get(id(first)))
          em.views.add(id(v))
          if id(first) in em.constant_views:
            em.constant_views.add(id(v))
        elif getattr(fn, "with_functions", False) or getattr(fn, "returns_inputs", False) \
            or into:
          em.set_owner(v, None)  # a function's result may be its input, or the caller's
                                 # output array: never written into
          if not into:  # (and an input it may be, or views of it, keep their buffers)
            for a in eqn.inputs:
              root = em.owner.get(id(a)) if isinstance(a, Var) else None
              if root is not None:
                em.buffer_last_use[root] = len(program.eqns) + 1
        else:
          em.set_owner(v, id(v))
      if eqn.prim.name in _NUMPY_SCALAR_RESULTS:
        em.numpy_scalars.update(id(v) for v in eqn.outputs)
      if isinstance(rule, View):
        em.layouts.after_view(eqn)
      elif eqn.prim.name in result_strides:
        em.layouts.after_rule(eqn, result_strides[eqn.prim.name](
            [a.aval for a in eqn.inputs], eqn.params, eqn.outputs[0].aval))
    em.arrays.update(id(v) for v in eqn.outputs if v.aval.ndim)
    used_helpers.update(h for h in _CALLED.findall(expr) if h in helpers)
    if em.pre_lines:  # functions the rule defined (standalone)
      body += ["    " + line if line else line for line in em.pre_lines]
      em.pre_lines = []
    if not eqn.prim.multiple_results and eqn.outputs[0].aval.weak_type:
      # A weakly typed value stands for a Python scalar, and is one (see core.context.weak_results)
      expr = f"{_PYTHON_SCALAR[eqn.outputs[0].aval.dtype.kind]}({expr})"
      em.numpy_scalars.discard(id(eqn.outputs[0]))
    lhs = ", ".join(outs) + ("," if len(outs) == 1 and eqn.prim.multiple_results else "")
    body.append(f"    {lhs} = {expr}")
    body += _check_lines([v for v in eqn.outputs if id(v) in checks], checks, em)
    if i in dels_after:
      body.append("    del " + ", ".join(em.name(v) for v in dels_after[i]))
    if type(eqn.source) is QuietSource:
      quiet_lines.update(range(first_line, len(body)))
  if loop is None and quiet_lines and not standalone:
    body = _quiet_blocks(body, quiet_lines)
  if loop is None and not nested:
    # a constant (or a view of one) is returned as a copy: the caller owns what it gets, and
    # writing into it must not change what the next call returns
    ret = ", ".join(f"{em.atom(o)}.copy()" if _holds_constant(o, em) else em.atom(o)
                    for o in program.outs)
  else:
    ret = ", ".join(em.atom(o) for o in program.outs)
  if loop is not None:
    body = _loop_lines(program, em, body, stacked_xs, loop, prefix, rows_written)
  elif destinations:
    body += [f"    d{k}[...] = {em.atom(o)}" for k, o in enumerate(program.outs)
             if k not in written]
    body.append("    return None")
  elif single_output and len(program.outs) == 1:
    body.append(f"    return {ret}")
  else:
    body.append(f"    return ({ret}{',' if len(program.outs) == 1 else ''})")
  header = [f"def {_identifier(name)}({args}):"]
  hoisted = list(em.hoisted.values())
  used_helpers |= em.used_helpers
  if nested:
    prelude = [f"{c} = {literal(np.asarray(v))}" for c, v in zip(const_names,
                                                                program.const_vals)]
    prelude += [f"{k} = {literal(v)}" for k, v in hoisted]
    return "\n".join(prelude + header + body) + "\n", used_helpers
  if standalone:
    prelude = ["import numpy as np", ""]
    prelude += [helpers[h] for h in sorted(_helper_closure(used_helpers))]
    prelude += [f"{c} = {literal(np.asarray(v))}" for c, v in zip(const_names,
                                                                  program.const_vals)]
    prelude += [f"{k} = {literal(v)}" for k, v in hoisted]
    return "\n".join(prelude + ([""] if len(prelude) > 2 else []) + header + body) + "\n"
  source = "\n".join(header + body) + "\n"
  return (source, dict(hoisted)) if return_literals else source


def _float_literals(eqn, ins):
  """A ufunc's Python-integer literals written as floats where its other operands are
  floating: NumPy resolves the loop for an int operand more slowly (about 1,000 more
  machine instructions a call, 15-20% of a call on a small array), and converts it to the
  same value (exact below 2**24 in every float type)."""
  arrays = [a for a in eqn.inputs if type(a) is not Lit]
  if (not arrays or len(arrays) == len(eqn.inputs)
          or not all(a.aval.dtype.kind in "fc" for a in arrays)):
    return ins
  return [literal(float(a.val)) if type(a) is Lit and type(a.val) is int
          and abs(a.val) < 2 ** 24 else text for a, text in zip(eqn.inputs, ins)]


# A constant added to (or subtracted from) an array whose buffer the result may take, with
# its nonzero entries inside a box of at most this part of the result, is added there only.
_BOX_PART, _BOX_MIN_SAVED = 0.25, 4096
helpers["_ufunc_into"] = '''def _ufunc_into(ufunc, x, c, index):
    part = x[index]
    ufunc(part, c, out=part)
    return x
'''


def _constant_box(eqn, i, em):
  """(x, the box as index source, the constant's entries in it) where equation `i` is x + C
  or x - C with C a constant whose nonzero entries fill at most _BOX_PART of the result
  (forward mode's constant tangents: one-hot rows of a Jacobian), and x's buffer can take
  the result: the sum is then made in place on the box only. Else None. (Outside the box
  x is left as it is, as `simplify` leaves x + 0: a -0.0 there stays -0.0.)"""
  if eqn.prim.name not in ("add", "sub") or len(eqn.inputs) != 2:
    return None
  out = eqn.outputs[0].aval
  pairs = [(0, 1), (1, 0)] if eqn.prim.name == "add" else [(0, 1)]
  for k, j in pairs:
    x, c = eqn.inputs[k], eqn.inputs[j]
    value = em.constant_values.get(id(c)) if isinstance(c, Var) else None
    if value is None or not isinstance(x, Var) or x.aval.shape != out.shape \
        or value.ndim > out.ndim or em.reusable_buffer(eqn, i) is not x:
      continue
    shape = (1,) * (out.ndim - value.ndim) + value.shape
    nonzero = np.nonzero(value.reshape(shape))
    if not nonzero[0].size:
      return None
    bounds = [(0, n) if m == 1 else (int(ix.min()), int(ix.max()) + 1)
              for n, m, ix in zip(out.shape, shape, nonzero)]
    kept = math.prod(hi - lo for lo, hi in bounds)
    if kept > _BOX_PART * out.size or out.size - kept < _BOX_MIN_SAVED:
      return None
    index = ", ".join(f"{lo}:{hi}" for lo, hi in bounds)
    own = tuple(slice(lo, hi) if m > 1 else slice(None) for (lo, hi), m in zip(bounds, shape))
    return x, index, np.ascontiguousarray(value.reshape(shape)[own])
  return None


def _reshape_after_ufunc(program, i, skipped, em, uses, dest_of):
  """The index of the next equation when equation `i` is a reshape that copies its operand
  (a transposed view, in the layout model) and that next equation is an elementwise ufunc
  reading it and nothing else of its size, the reshape's only use: the ufunc then runs on
  the operand with order='C' and its result is reshaped, a view (one pass over the data
  instead of two: forward mode's Jacobian, transposed to its output's layout). Else None."""
  eqn = program.eqns[i]
  if eqn.prim.name != "reshape" or not isinstance(eqn.inputs[0], Var):
    return None
  x, r = eqn.inputs[0], eqn.outputs[0]
  strides = em.layouts.strides.get(id(x))
  if (strides is None or uses[id(r)] != 1 or id(r) in dest_of
          or not layouts.reshape_copies(strides, x.aval.shape, r.aval.shape)):
    return None
  j = next((k for k in range(i + 1, len(program.eqns)) if k not in skipped), None)
  if j is None:
    return None
  nxt = program.eqns[j]
  if (not isinstance(codegen_rules.get(nxt.prim.name), Ufunc) or len(nxt.outputs) != 1
          or nxt.outputs[0].aval.shape != r.aval.shape or id(nxt.outputs[0]) in dest_of
          or _short_inner_loops(nxt) or not any(a is r for a in nxt.inputs)
          or any(a is not r and type(a) is not Lit and a.aval.ndim for a in nxt.inputs)):
    return None
  return j


def _rows_taken(program):
  """Variables gathered by np.take along their first axis (see codegen_rules' gather): a
  result NumPy lays out in another order than C's is copied to C order by np.take first,
  one strided row at a time, so the ufunc computing it is asked for C order instead (HAND's
  residuals: a transposed Jacobian negated, then the rows of 1,600 points taken)."""
  from dfdx._src.codegen_rules import take_along  # (the rules import this module)
  return {id(e.inputs[0]) for e in program.eqns
          if e.prim.name == "gather" and len(e.inputs) == 2 and isinstance(e.inputs[0], Var)
          and take_along([a.aval for a in e.inputs], e.params["spec"]) == 0}


def _loop_rows(program, num_carry):
  """id(var) -> ("ys", j) of the scan body's results that can be computed straight into
  their row of the stacked output j (`ys{j}[step]`, by out=): arrays made by an equation
  of the body, stacked once (one store less per step: 0.1 us of a 0.6 us step of a ufunc
  and its store on a small vector)."""
  made = {id(v) for e in program.eqns if len(e.outputs) == 1 for v in e.outputs}
  ys = program.outs[num_carry:]
  stacked = collections.Counter(id(y) for y in ys if isinstance(y, Var))
  return {id(y): ("ys", j) for j, y in enumerate(ys)
          if isinstance(y, Var) and y.aval.ndim and id(y) in made and stacked[id(y)] == 1}


def _loop_lines(program, em, body, stacked_xs, loop, prefix, rows_written=()):
  """A scan's body's lines (`body`) inside the loop over its steps, and the return; the
  stacked outputs `rows_written` were computed into their rows."""
  num_carry, num_xs, length, reverse = loop
  carries = [em.name(v) for v in program.in_vars[:num_carry]]
  ys = program.outs[num_carry:]
  stacked_ys = [f"{prefix}ys{j}" for j in range(len(ys))]
  step = f"{prefix}step"
  lines = [f"    {name} = np.empty({literal((length,) + y.aval.shape)}, "
           f"np.dtype('{y.aval.dtype.name}'))" for name, y in zip(stacked_ys, ys)]
  steps = f"range({length - 1}, -1, -1)" if reverse else f"range({length})"
  if num_xs:  # (iterating yields the rows: no indexing per step)
    rows = ", ".join(f"{x}[::-1]" if reverse else x for x in stacked_xs)
    xs = ", ".join(em.name(v) for v in program.in_vars[num_carry:num_carry + num_xs])
    lines.append(f"    for {step}, ({xs},) in zip({steps}, zip({rows})):")
    # A step's Python number that the loop split computed for every step at once (the
    # index of fori_loop, hoisted) is a row of an array: made a Python number again.
    lines += [f"        {em.name(v)} = {_PYTHON_SCALAR[v.aval.dtype.kind]}({em.name(v)})"
              for v in program.in_vars[num_carry:num_carry + num_xs] if v.aval.weak_type]
  else:
    lines.append(f"    for {step} in {steps}:")
  lines += ["    " + line if line else line for line in body]
  # The ys first (one may be an incoming carry), then the carries in one assignment (a
  # carry may take another's value).
  lines += [f"        {name}[{step}] = {em.atom(y)}"
            for j, (name, y) in enumerate(zip(stacked_ys, ys)) if j not in rows_written]
  if carries:
    lines.append(f"        {', '.join(carries)} = "
                 f"{', '.join(em.atom(o) for o in program.outs[:num_carry])}")
  if not carries and not ys:
    lines.append("        pass")
  ret = carries + stacked_ys
  return lines + [f"    return ({', '.join(ret)}{',' * (len(ret) == 1)})"]


def _check_lines(variables, checks, em):
  from dfdx._src.uniform import check_lines
  return ["    " + line for v in variables for line in check_lines(em.atom(v), checks[id(v)][1])]


# Primitives whose 0-d results are NumPy scalars (ufunc reductions).
_NUMPY_SCALAR_RESULTS = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod"}
# Rules whose expression is one call that takes `out=` last (the logistic's outer np.exp):
# their results are computed into an output array or a scan's row as ufuncs' are.
_RULES_INTO = {"concatenate", "logistic"}
_PYTHON_SCALAR = {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}
_OPERATORS = {"add": "+", "subtract": "-", "multiply": "*", "true_divide": "/"}


def _scalar_operator(ufunc, eqn, ins, em):
  """`a + b` for `np.add(a, b)` (and - * /, unary -) on 0-d floating values of one dtype, of
  which one at least is certainly a NumPy scalar, so that NumPy's scalar arithmetic runs
  (the same IEEE operation and result type as the ufunc, with its errstate handling), never
  Python's (which raises on division by zero). None when that does not apply."""
  out = eqn.outputs[0].aval
  if out.ndim or out.dtype.kind not in "fc" or (ufunc not in _OPERATORS and ufunc != "negative"):
    return None
  numpy_operand = False
  for a in eqn.inputs:
    if a.aval.ndim:
      return None
    if type(a) is Lit:
      if isinstance(a.val, np.generic):
        if a.val.dtype != out.dtype:
          return None
        numpy_operand = True
      elif not isinstance(a.val, (int, float, complex)) or isinstance(a.val, bool):
        return None
    else:
      if a.aval.dtype != out.dtype:
        return None
      numpy_operand = numpy_operand or id(a) in em.numpy_scalars
  if not numpy_operand:
    return None
  if ufunc == "negative":
    return f"-{ins[0]}"
  return f"{ins[0]} {_OPERATORS[ufunc]} {ins[1]}"


def _short_inner_loops(eqn):
  """Whether a binary ufunc's result is a large batch of short trailing axes, where NumPy
  can run a short inner loop inside two outer levels: compiled code then calls the
  primitive's impl, which loops over the few trailing positions instead when the operands'
  layouts make NumPy's loop slow (ops/elementwise.py, "short inner loops"); a standalone
  source calls the ufunc."""
  shape = eqn.outputs[0].aval.shape
  return (len(eqn.inputs) == 2 and len(shape) >= 3 and shape[-1] < layouts.SHORT
          and math.prod(shape) >= 1 << 14 and hasattr(eqn.prim.impl, "ufunc"))


class _Layouts:
  """A static model of the memory layout of the values that the generated code makes, for
  NumPy's K-order results (dfdx/_src/layouts.py: a transposed operand broadcast along a
  short axis makes every later operation on the result loop along that axis). It follows the
  strides (in elements) of transposes through views (reshapes adding or dropping axes of
  length 1, broadcasts, slices) and of ufunc results; where K order would leave a short
  inner loop and C order a much longer one, the broadcast operands laid out otherwise are
  copied to C order first (`np.ascontiguousarray`: a pass over the small operand instead of
  strided reads of it for every output element), and `order='C'` is asked of the ufunc if
  that is not enough. Everything else is taken to be C-contiguous (inputs, constants,
  results of other calls): the model only chooses layouts, never values, so a wrong guess
  costs time, not correctness."""

  def __init__(self):
    self.strides = {}  # id(var) -> element strides, for values known not to be C-ordered

  def of(self, a, c_ordered=()):
    s = self.strides.get(id(a)) if isinstance(a, Var) and id(a) not in c_ordered else None
    return s if s is not None else layouts.c_strides(a.aval.shape)

  def _operands(self, eqn, c_ordered):
    """The operands' strides broadcast to the result's shape, or None when every operand is
    C-ordered (and so is the result)."""
    if not any(isinstance(a, Var) and id(a) in self.strides and id(a) not in c_ordered
               for a in eqn.inputs):
      return None
    shape = eqn.outputs[0].aval.shape
    return [layouts.broadcast_strides(self.of(a, c_ordered), a.aval.shape, shape)
            for a in eqn.inputs if isinstance(a, Var) and a.aval.ndim]

  def _k_order(self, eqn, c_ordered=()):
    """The non-trivial axes fastest first in NumPy's K order, or None when the result is
    C-ordered."""
    operands = self._operands(eqn, c_ordered)
    return None if operands is None else layouts.k_order(eqn.outputs[0].aval.shape, operands)

  def _short_inner_loop(self, eqn, c_ordered=()):
    operands = self._operands(eqn, c_ordered)
    return operands is not None and layouts.short_inner_loop(eqn.outputs[0].aval.shape,
                                                             operands)

  def plan(self, eqn):
    """(indices of the operands to copy to C order first, whether to ask for order='C')."""
    if not self._short_inner_loop(eqn):
      return (), False
    size = eqn.outputs[0].aval.size
    copied = tuple(k for k, a in enumerate(eqn.inputs) if isinstance(a, Var) and a.aval.ndim
                   and id(a) in self.strides and 2 * a.aval.size <= size)
    c_ordered = {id(eqn.inputs[k]) for k in copied}
    return copied, self._short_inner_loop(eqn, c_ordered)

  def after_ufunc(self, eqn, buffer, copied, c_order):
    out = eqn.outputs[0]
    if buffer is not None:
      if id(buffer) in self.strides:
        self.strides[id(out)] = self.strides[id(buffer)]
      return
    order = None if c_order else self._k_order(eqn, {id(eqn.inputs[k]) for k in copied})
    if order is not None:
      self.strides[id(out)] = layouts.contiguous_in(order, out.aval.shape)

  def after_copies(self, eqn, copied):
    """The K order of a ufunc's result with the operands `copied` to C order first: None
    where it is C's."""
    return self._k_order(eqn, {id(eqn.inputs[k]) for k in copied})

  def after_rule(self, eqn, strides):
    if strides is not None:
      self.strides[id(eqn.outputs[0])] = strides

  def after_view(self, eqn):
    """The strides of a view's result (transpose, reshape adding or dropping axes of length
    1, broadcast, slice, stop_gradient)."""
    if not eqn.inputs or not isinstance(eqn.inputs[0], Var) or len(eqn.outputs) != 1:
      return
    x, out, name = eqn.inputs[0], eqn.outputs[0], eqn.prim.name
    if name == "transpose":
      s = self.of(x)
      self.strides[id(out)] = tuple(s[p] for p in eqn.params["perm"])
      return
    if id(x) not in self.strides:
      return
    s = self.strides[id(x)]
    if name in ("stop_gradient", "slice", "rev") and out.aval.ndim == x.aval.ndim:
      self.strides[id(out)] = s
    elif name == "broadcast_to":  # (a small one is written out in C order: codegen_rules)
      from dfdx._src.ops.shape import written_out
      if not written_out(out.aval.shape):
        self.strides[id(out)] = layouts.broadcast_strides(s, x.aval.shape, out.aval.shape)
    elif name == "reshape":
      kept = [st for st, n in zip(s, x.aval.shape) if n != 1]
      if [n for n in x.aval.shape if n != 1] == [n for n in out.aval.shape if n != 1]:
        it = iter(kept)
        self.strides[id(out)] = tuple(0 if n == 1 else next(it) for n in out.aval.shape)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _uses_and_producers(program, checks=()):
  """(id(var) -> how many times it is read, by equations, as an output or by a check;
  id(var) -> the index of the equation that makes it)."""
  uses = collections.Counter(id(a) for e in program.eqns for a in e.inputs
                             if isinstance(a, Var))
  uses.update(id(o) for o in program.outs if isinstance(o, Var))
  uses.update(list(checks))
  return uses, {id(v): i for i, e in enumerate(program.eqns) for v in e.outputs}


def _fuse_reductions(program, em, uses, producer):
  """Sums of products (`reduce_sum(mul(a, b))`, `reduce_sum(x ** 2)`) whose product is used
  nowhere else (nor checked) become one `np.einsum` call: one pass over the data and no
  temporary array. Returns the indices of the fused products (not emitted) and the
  reductions' expressions with the values they read."""
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
        isinstance(a, Var) and a.aval.dtype == product.aval.dtype for a in operands):
      continue
    letters = _LETTERS[:len(shape)]
    terms = [_einsum_operand(a, shape, letters, em) for a in operands]
    kept = "".join(c for k, c in enumerate(letters) if k not in eqn.params["axes"])
    if any(c not in terms[0][0] + terms[1][0] for c in kept):  # (an axis both broadcast)
      continue
    fused[i] = (_contraction_call(terms, letters, kept), operands)
    skipped.add(j)
    for a in operands:  # the einsum reads them at the reduction: no buffer reuse before it
      if em.last_use.get(id(a), -1) < i:
        em.last_use[id(a)] = i
  return skipped, fused


def _contraction_call(terms, letters, kept):
  """np.dot where the sum runs over the last axis of one operand, the other a vector along
  it (x . x, a matrix times a vector: 1.2 us against einsum's 2.6 on small operands, BLAS
  on large ones); np.einsum otherwise."""
  (xs, x), (ys, y) = terms
  if len(ys) > len(xs):
    (xs, x), (ys, y) = (ys, y), (xs, x)
  if xs == letters and ys == letters[-1:] and kept == letters[:-1]:
    return f"np.dot({x}, {y})"
  return f"np.einsum('{terms[0][0]},{terms[1][0]}->{kept}', {terms[0][1]}, {terms[1][1]})"


def _scalar_entries(program, em, uses, producer):
  """One entry of an array sliced out and reshaped to 0-d (`x[0]` traced), the slice used
  nowhere else (nor checked), becomes an index, `x[0]`: one operation instead of two, and a
  NumPy scalar, on which later scalar arithmetic runs as operators. Returns the indices of
  the slices (not emitted) and the reshapes' expressions with the values they read."""
  skipped, fused = set(), {}
  for i, eqn in enumerate(program.eqns):
    if eqn.prim.name != "reshape" or eqn.outputs[0].aval.ndim or not isinstance(
        eqn.inputs[0], Var) or uses[id(eqn.inputs[0])] != 1:
      continue
    j = producer.get(id(eqn.inputs[0]))
    source = program.eqns[j] if j is not None else None
    if source is None or source.prim.name != "slice":
      continue
    x = source.inputs[0]
    if not isinstance(x, Var) or not (id(x) in em.arrays or id(x) in producer):
      continue  # (an input of a standalone function may be a list)
    index = "".join(f"{start}, " for start in source.params["start"])
    fused[i] = (f"{em.atom(x)}[{index}]", [x])
    skipped.add(j)
    if em.last_use.get(id(x), -1) < i:
      em.last_use[id(x)] = i
  return skipped, fused


def _pack_scalars(program, em, uses, producer):
  """Concatenations of 0-d values, each reshaped to (1,) and used nowhere else (nor
  checked), become one `np.array((a, b, ...), dtype)` call: a vector or matrix built entry
  by entry from traced numbers (a rotation matrix's nine entries: 1 us where the reshapes
  and the concatenation took 13). Returns the indices of the reshapes (not emitted) and the
  concatenations' expressions with the values they read."""
  skipped, fused = set(), {}
  for i, eqn in enumerate(program.eqns):
    out = eqn.outputs[0].aval
    if eqn.prim.name != "concatenate" or out.ndim != 1 or out.dtype.kind not in "fc":
      continue
    sources = [producer.get(id(a)) if isinstance(a, Var) and uses[id(a)] == 1 else None
               for a in eqn.inputs]
    if None in sources or not all(
        program.eqns[j].prim.name == "reshape" and program.eqns[j].inputs[0].aval.ndim == 0
        and program.eqns[j].inputs[0].aval.dtype == out.dtype for j in sources):
      continue
    scalars = [program.eqns[j].inputs[0] for j in sources]
    entries = "".join(f"{em.atom(a)}, " for a in scalars)
    fused[i] = (f"np.array(({entries}), dtype={literal(out.dtype)})", scalars)
    skipped.update(sources)
    for a in scalars:
      if isinstance(a, Var) and em.last_use.get(id(a), -1) < i:
        em.last_use[id(a)] = i
  return skipped, fused


def _einsum_operand(a, shape, letters, em):
  """(subscripts, expression) of an operand of a product of `shape` in an einsum: its axes
  align with the product's last ones; those it broadcasts (length 1 against a longer one)
  are dropped, by a reshape, which is always a view."""
  offset = len(shape) - a.aval.ndim
  keep = [k for k, n in enumerate(a.aval.shape) if n == shape[offset + k] or n != 1]
  subscripts = "".join(letters[offset + k] for k in keep)
  if len(keep) == a.aval.ndim:
    return subscripts, em.atom(a)
  squeezed = "".join(f"{a.aval.shape[k]}, " for k in keep)
  return subscripts, f"{em.atom(a)}.reshape(({squeezed}))"


def _destinations(program):
  """id(var) -> (output position, permutation or None) of the variables whose values can be
  computed straight into an output array: an output, or the one operand of an output that
  transposes it (the output array transposed back)."""
  producer = {id(v): e for e in program.eqns for v in e.outputs}
  uses = collections.Counter(id(a) for e in program.eqns for a in e.inputs)
  outs = collections.Counter(id(o) for o in program.outs if isinstance(o, Var))
  found = {}
  for k, o in enumerate(program.outs):
    if not isinstance(o, Var) or outs[id(o)] > 1 or id(o) not in producer:
      continue
    eqn = producer[id(o)]
    if eqn.prim.name == "transpose":
      x = eqn.inputs[0]
      if isinstance(x, Var) and id(x) in producer and uses[id(x)] == 1 and id(x) not in outs:
        found[id(x)] = (k, tuple(int(d) for d in np.argsort(eqn.params["perm"])))
    elif len(eqn.outputs) == 1:
      found[id(o)] = (k, None)
  return found


def compile_program(program: Program, name="f", fuse_reductions=True, destinations=False,
                    donated=(), checks=None, loop=None):
  """A Python function (flat list of inputs -> list of outputs) computing `program`; with
  `destinations`, it writes them into arrays passed after the inputs; `donated` inputs'
  buffers may take results (see program_source)."""
  from dfdx._src.passes import inline_jit_calls
  program = inline_jit_calls(program)
  const_names = [f"c{i}" for i in range(len(program.const_vars))]
  source, literals = program_source(program, _identifier(name), standalone=False,
                                    return_literals=True, fuse_reductions=fuse_reductions,
                                    destinations=destinations, donated=donated,
                                    checks=checks, loop=loop)
  namespace = {"np": np, **dict(zip(const_names, program.const_vals)), **literals}
  if checks:
    from dfdx._src.uniform import Unspecialized
    namespace["_Unspecialized"] = Unspecialized
  for h in helpers.values():
    exec(_code(h, "<dfdx helpers>"), namespace)
  namespace.update(runtime_helpers)
  exec(_code(source, f"<dfdx jit of {name}>"), namespace)
  fn = namespace[_identifier(name)]
  fn.__dfdx_source__ = source
  return fn


@functools.lru_cache(maxsize=256)
def _code(source, filename):
  """`source` compiled by Python, once: the helpers go into every compiled program's
  namespace, and a program traced again (a checkpointed block, a loop's body at every call
  in eager code) gives the same source, with its constants in the namespace."""
  return compile(source, filename, "exec")


def _holds_constant(o, em):
  """Whether output `o` is an array the compiled function holds from call to call: a
  constant, a view of one, or an array literal."""
  if isinstance(o, Lit):
    return isinstance(o.val, np.ndarray) and o.val.ndim > 0
  return id(o) in em.constant_views and o.aval.ndim > 0


def _quiet_blocks(body, quiet_lines):
  """`body` with each run of the lines in `quiet_lines` (equations staged in a derivative
  pass) inside `with np.errstate(...)`: NumPy's floating-point warnings off there, as in the
  eager pass (a derivative's NaN or inf is in its result). A loop's body is left as it is: it
  runs in the state of the statement that calls it. Exported source (standalone) is left as
  NumPy code reads, without the blocks."""
  out, inside = [], False
  for k, line in enumerate(body):
    quiet = k in quiet_lines
    if quiet and not inside:
      out.append("    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):")
    inside = quiet
    out.append("    " + line if quiet and line else line)
  return out


def _dead_after(program, skipped, fused):
  """Statement index -> the intermediate variables last used there, which the generated code
  deletes right after it: a temporary is freed as soon as it is dead, not when the function
  returns (lower peak memory, and NumPy's allocator can hand its memory to the next one)."""
  last = {}
  for i, eqn in enumerate(program.eqns):
    if i in skipped:
      continue
    inputs = fused[i][1] if i in fused else eqn.inputs  # (what a fused statement reads)
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
