"""Staging: trace a function to a `Program` instead of running it.

Owns `StagingTrace` / `StagingTracer` and `make_program`. A staging trace records every
primitive applied to its tracers as an equation, with the user's source line. Arrays the
function closes over become constants of the program; Python scalars become literals;
operations on constants alone are evaluated right away (constant folding at trace time).
Tracers of other, enclosing transformations that the function closes over are lifted to
extra inputs of the program (closure conversion), so that those transformations still see
them flow through.

A staged value has no concrete value: Python control flow on it raises
`ConcretizationError` naming the user's line and the fixes.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from dfdx._src import core, errors, state
from dfdx._src.core import Trace, Tracer, swap_trace
from dfdx._src.ir import Eqn, Lit, Program, QuietSource, Var, typecheck_program

# With DFDX_CHECK_PROGRAMS=1 (the test suite sets it) every program built is type checked.
check_programs = os.environ.get("DFDX_CHECK_PROGRAMS", "") == "1"

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# dfdx.debug_nans turns this on while it is on: every program then records its equations'
# source lines (even those staged with record_source=False: a checkpointed block, a loop's
# body, a derivative's program), so that a NaN made inside one is reported at the user's line.
record_all_sources = False


def user_source_line(skip_numpy=True):
  """'file:line (function)' of the innermost frame outside dfdx (and NumPy's dispatch)."""
  frame = sys._getframe(1)
  while frame is not None:
    code = frame.f_code
    place = _places.get(code.co_filename)
    if place is None:
      filename = code.co_filename
      place = _places[filename] = (
          2 if filename.startswith(_PACKAGE_DIR) else
          1 if (os.sep + "numpy" + os.sep) in filename else 0)
    if place == 0 or (place == 1 and not skip_numpy):
      return f"{code.co_filename}:{frame.f_lineno} ({code.co_name})"
    frame = frame.f_back
  return None


# the source of an equation staged in a derivative pass where no line is recorded
_QUIET_NO_SOURCE = QuietSource("")
# file name -> 2 inside dfdx, 1 inside NumPy, 0 elsewhere (tracing asks for every equation)
_places: dict = {}


class StagingTracer(Tracer):
  __slots__ = ("ir_var",)  # the program variable it stands for (`var` would hide `x.var()`)

  def __init__(self, trace, var):
    self._trace, self.ir_var = trace, var

  aval = property(lambda self: self.ir_var.aval)
  shape = property(lambda self: self.ir_var.aval.shape)
  dtype = property(lambda self: self.ir_var.aval.dtype)

  def concrete_value(self, purpose):
    self.check_alive()
    where = user_source_line()
    raise errors.ConcretizationError(
        f"{purpose} needs a concrete value, but under jit this value ({self._describe()}) is "
        f"abstract: only its shape and dtype are known while the function is traced"
        f"{f', at {where}' if where else ''}. Use dfdx.numpy.where for choices that depend on "
        "values, or mark the argument static (jit(f, static_argnums=...) or "
        "static_argnames=...) if it is a setting rather than data (a Variable's value is "
        "an input of the compiled program too: read it before the call and pass it as a "
        "static argument).")


class StagingTrace(Trace):
  """Records equations. Values it owns are `StagingTracer(var)`."""
  __slots__ = ("eqns", "consts", "lifted", "record_source")
  kind = "jit"

  def __init__(self, record_source=True):
    super().__init__()
    self.eqns = []
    self.consts = {}   # id(array) -> (Var, array)
    self.lifted = {}   # id(foreign tracer) -> (Var, tracer)
    self.record_source = record_source

  def to_atom(self, x):
    if type(x) is StagingTracer and x._trace is self:
      return x.ir_var
    if isinstance(x, Tracer):
      x.check_alive()
      entry = self.lifted.get(id(x))
      if entry is None:
        entry = self.lifted[id(x)] = (Var(x.aval), x)
      return entry[0]
    if isinstance(x, (bool, int, float, complex)) or (
        isinstance(x, (np.generic, np.ndarray)) and np.ndim(x) == 0):
      return Lit(x)
    x = np.asarray(x)
    entry = self.consts.get(id(x))
    if entry is None:
      entry = self.consts[id(x)] = (Var(core.get_aval(x)), x)
    return entry[0]

  def process_primitive(self, prim, args, params):
    for a in args:
      if isinstance(a, Tracer):
        break
    else:  # constants only: fold now (with core.bind_in, which debug_nans checks)
      return core.bind_in(None, prim, args, params)
    inputs = [self.to_atom(a) for a in args]
    out_avals = core.abstract_eval_avals(prim, [a.aval for a in inputs], params)
    if prim.multiple_results:
      outs = [Var(aval) for aval in out_avals]
    else:
      outs = [Var(out_avals)]
    source = user_source_line() if self.record_source else None
    if core.context.reverse_depth:
      source = QuietSource(source) if source else _QUIET_NO_SOURCE
    if core.context.weak_results or not (outs[0].aval.weak_type if len(outs) == 1 else any(
            v.aval.weak_type for v in outs)) or prim in core.keeps_weak_types:
      self.eqns.append(Eqn(prim, inputs, params, outs, source))
    elif not prim.multiple_results and core.ufunc_valued(prim):
      # A NumPy function of Python scalars gives a NumPy value (see core.context.weak_results);
      # a ufunc's result is one as it is.
      outs = [Var(core.ShapedArray(outs[0].aval.shape, outs[0].aval.dtype))]
      self.eqns.append(Eqn(prim, inputs, params, outs, source))
    else:  # (and any other result is cast to one)
      self.eqns.append(Eqn(prim, inputs, params, outs, source))
      outs = [self._strong(v, source) for v in outs]
    tracers = [StagingTracer(self, v) for v in outs]
    return tracers if prim.multiple_results else tracers[0]

  def _strong(self, v, source):
    """`v` cast to its own dtype if it is weakly typed."""
    if not v.aval.weak_type:
      return v
    from dfdx._src.ops.shape import convert_element_type_p
    out = Var(core.ShapedArray(v.aval.shape, v.aval.dtype))
    self.eqns.append(Eqn(convert_element_type_p, [v], {"new_dtype": v.aval.dtype}, [out],
                         source))
    return out


def _staged_variable(tracer):
  raise errors.InvalidInputError(
      "A Variable was assigned a traced value inside a body that dfdx stages as a program of "
      "its own: a loop or branch body (scan, fori_loop, while_loop, cond, switch) under jit, "
      "a dfdx.checkpoint block, a custom_jvp or custom_vjp function, or a chunked vmap under "
      "jit. Such a program cannot assign Variables (jit's own function can: it assigns them "
      "at every call). Return the new value from the body (in a loop, as part of its carry) "
      "and assign it outside.")


def make_program(flat_fun, in_avals, record_source=True):
  """Trace `flat_fun` (flat list of arrays -> flat list of arrays) on abstract inputs.

  Returns (program, lifted): `lifted` lists the enclosing transformations' tracers the
  function closed over; they are the program's last inputs and must be passed to it.
  """
  trace = StagingTrace(record_source or record_all_sources)
  in_vars = [Var(aval) for aval in in_avals]

  def run():
    prev = swap_trace(trace)
    try:
      outs = flat_fun(*[StagingTracer(trace, v) for v in in_vars])
      return [trace.to_atom(o) for o in outs]
    finally:
      swap_trace(prev)
      trace.alive = False
  out_atoms = state.run_journaled(trace, run, _staged_variable)
  lifted = list(trace.lifted.values())
  const_vars = [v for v, _ in trace.consts.values()]
  const_vals = [c for _, c in trace.consts.values()]
  program = Program(in_vars + [v for v, _ in lifted], const_vars, const_vals, trace.eqns,
                    out_atoms)
  if check_programs:
    typecheck_program(program)
  return program, [t for _, t in lifted]


def make_program_of_call(f, leaves, in_tree, dynamic, avals, record_source=False):
  """Trace `f(*args, **kwargs)`, (args, kwargs) being `in_tree` of `leaves`: the leaves marked
  `dynamic` are abstract (of `avals`, in order), the others passed as they are. Returns
  (program, lifted, the output's tree structure)."""
  from dfdx._src.tree import tree_flatten, tree_unflatten
  store = {}

  def flat_fun(*xs):
    it = iter(xs)
    args, kwargs = tree_unflatten(in_tree, [next(it) if d else x for x, d in zip(leaves, dynamic)])
    out_leaves, store["out_tree"] = tree_flatten(f(*args, **kwargs))
    return out_leaves
  program, lifted = make_program(flat_fun, avals, record_source)
  return program, lifted, store["out_tree"]
