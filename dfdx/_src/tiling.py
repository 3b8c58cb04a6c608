"""Running a compiled program in chunks of one long axis, so that its intermediates stay in
the processor's cache.

A jitted program over a large batch (the Jacobian blocks of every observation, `vmap` of a
per-example function) is a few hundred NumPy calls, each of which writes an array as long as
the batch. Once those arrays are larger than the cache, every call streams its operands from
main memory, and the program runs at memory speed. When each entry along the batch axis is
computed only from the entries at the same position (elementwise operations, reductions and
contractions over other axes, gathers by a batch of indices), the program computes the same
values on any stretch of the axis as on all of it. `tile_plan` proves that, equation by
equation, and picks the axis (an axis of the inputs, or of constants the function closes
over, such as its data); `compile_tiled` then splits the program in two:

- a prologue: the equations that do not touch the batch axis (a transposed table of
  parameters, say), run once per call;
- a body: the rest, resized to a chunk of the axis (`TARGET_BYTES` for its largest
  intermediate), run once per chunk on that chunk of the tiled inputs and constants,
  writing into its stretch of the outputs.

The last chunk ends at the end of the axis and may overlap the one before it: its entries
are computed again, to the same values. Every entry goes through the same NumPy calls as
in the program run whole, so the values are the same. A program with an equation that mixes
entries along the axis (a sum over it, a sort, a scan), or with too short an axis, is not
tiled: `compile_tiled` returns None and the program is compiled whole. Eager passes over a
tape under vmap are compiled through here too (reverse_cache.py, "reverse passes under vmap").
"""
from __future__ import annotations

import math
import os

import numpy as np

from dfdx._src import batching, core
from dfdx._src.ir import Eqn, Lit, Program, Var, typecheck_program

# The widest intermediate of one chunk is at most about this many bytes, so that the arrays
# one equation reads and writes stay in a core's second-level cache (1-2 MB on current x86
# machines; measured on BA's Jacobian blocks, 2 MB chunks ran faster than 0.5 or 1 MB ones,
# whose extra chunks cost more NumPy calls).
TARGET_BYTES = 1 << 21
# No chunk is shorter than this: each chunk calls every NumPy function of the body once.
MIN_CHUNK = 4096
enabled = os.environ.get("DFDX_JIT_TILING", "1") != "0"


class _NotTiled(Exception):
  """An equation mixes entries along the candidate axis, or its rule is not known."""


# ---- where the tiled axis goes, equation by equation ------------------------------------------


def _elementwise_axis(eqn, axes, n):
  out_nd = len(eqn.outputs[0].aval.shape)
  found = None
  for a in eqn.inputs:
    nd = len(a.aval.shape)
    ax = axes.get(id(a)) if isinstance(a, Var) else None
    if ax is not None:
      b = ax + out_nd - nd
      if found is not None and b != found:
        raise _NotTiled
      found = b
  for a in eqn.inputs:  # untiled operands must broadcast along the axis
    nd = len(a.aval.shape)
    if (not isinstance(a, Var) or id(a) not in axes) and found - (out_nd - nd) >= 0 and \
        a.aval.shape[found - (out_nd - nd)] != 1:
      raise _NotTiled
  return found


def _reshape_axis(eqn, axes, n):
  (x,), shape = eqn.inputs, eqn.params["shape"]
  a = axes[id(x)]
  before, after = math.prod(x.aval.shape[:a]), math.prod(x.aval.shape[a + 1:])
  for b, size in enumerate(shape):
    if size == n and math.prod(shape[:b]) == before and math.prod(shape[b + 1:]) == after:
      return b
  raise _NotTiled  # the axis is merged with others or split


def _transpose_axis(eqn, axes, n):
  return list(eqn.params["perm"]).index(axes[id(eqn.inputs[0])])


def _slice_axis(eqn, axes, n):
  a, p = axes[id(eqn.inputs[0])], eqn.params
  if (p["start"][a], p["limit"][a], p["strides"][a]) != (0, n, 1):
    raise _NotTiled
  return a


def _reduce_axis(eqn, axes, n):
  a, reduced = axes[id(eqn.inputs[0])], eqn.params["axes"]
  if a in reduced:
    raise _NotTiled
  return a - sum(1 for r in reduced if r < a)


def _along_other_axis(eqn, axes, n):
  a = axes[id(eqn.inputs[0])]
  if eqn.params["axis"] == a:
    raise _NotTiled
  return a


def _pad_axis(eqn, axes, n):
  # (with zeros, a slice's transpose: padded along the tiled axis, the axis's length changes,
  # which _axes_for refuses)
  return axes[id(eqn.inputs[0])]


def _concatenate_axis(eqn, axes, n):
  found = {axes.get(id(x)) if isinstance(x, Var) else None for x in eqn.inputs}
  if len(found) != 1 or None in found or eqn.params["axis"] in found:
    raise _NotTiled
  return found.pop()


def _broadcast_to_axis(eqn, axes, n):
  (x,), shape = eqn.inputs, eqn.params["shape"]
  b = axes[id(x)] + len(shape) - len(x.aval.shape)
  if shape[b] != n:
    raise _NotTiled
  return b


_FULL = (None, None, None)


def _gather_axis(eqn, axes, n):
  """x[..., i, ...] with one index array i along the axis and x whole, or x sliced along
  other axes with basic indexing only."""
  from dfdx._src.ops.indexing import ArrayIndex
  x, *indices = eqn.inputs
  spec = eqn.params["spec"]
  if any(e is None or e is Ellipsis for e in spec):
    raise _NotTiled
  if id(x) not in axes and len(indices) == 1 and axes.get(id(indices[0])) == 0 and \
      len(indices[0].aval.shape) == 1 and all(e == _FULL or type(e) is ArrayIndex
                                                for e in spec):
    return next(k for k, e in enumerate(spec) if type(e) is ArrayIndex)
  a = axes.get(id(x))
  if a is None or indices or any(type(e) is ArrayIndex for e in spec) or \
      (a < len(spec) and spec[a] != _FULL):
    raise _NotTiled
  return a - sum(1 for e in spec[:a] if type(e) is int)


def _dot_general_axis(eqn, axes, n):
  x, y = eqn.inputs
  (xc, yc), (xb, yb) = eqn.params["dimension_numbers"]
  ax, ay = axes.get(id(x)), axes.get(id(y))
  x_free = [d for d in range(len(x.aval.shape)) if d not in xc and d not in xb]
  y_free = [d for d in range(len(y.aval.shape)) if d not in yc and d not in yb]
  if ax is not None and ax in xb:
    if ay is None or ay != yb[list(xb).index(ax)]:
      raise _NotTiled
    return list(xb).index(ax)
  if ax is not None and ax in x_free and ay is None:
    return len(xb) + x_free.index(ax)
  if ay is not None and ay in y_free and ax is None:
    return len(xb) + len(x_free) + y_free.index(ay)
  raise _NotTiled


_AXIS_RULES = {
    "reshape": _reshape_axis, "transpose": _transpose_axis, "slice": _slice_axis,
    "reduce_sum": _reduce_axis, "reduce_max": _reduce_axis, "reduce_min": _reduce_axis,
    "reduce_prod": _reduce_axis, "cumsum": _along_other_axis, "cumprod": _along_other_axis,
    "concatenate": _concatenate_axis, "pad": _pad_axis, "broadcast_to": _broadcast_to_axis,
    "gather": _gather_axis, "dot_general": _dot_general_axis,
}


# ---- resizing: the parameters that name the axis's length -------------------------------------


def _resized_params(eqn, axes, out_axis, chunk):
  name, params = eqn.prim.name, eqn.params
  if name in ("reshape", "broadcast_to"):
    shape = list(params["shape"])
    shape[out_axis] = chunk
    return {**params, "shape": tuple(shape)}
  if name == "slice":
    limit = list(params["limit"])
    limit[axes[id(eqn.inputs[0])]] = chunk
    return {**params, "limit": tuple(limit)}
  return params


# ---- the plan ---------------------------------------------------------------------------------


def _axes_for(program, n):
  """{id(var): axis} of the variables that carry axis length `n` as the tiled axis, or None
  where an equation mixes entries along it (or no output is tiled)."""
  axes = {}
  for v in program.in_vars + program.const_vars:
    where = [d for d, size in enumerate(v.aval.shape) if size == n]
    if len(where) > 1:
      return None
    if where:
      axes[id(v)] = where[0]
  try:
    for eqn in program.eqns:
      if not any(isinstance(a, Var) and id(a) in axes for a in eqn.inputs):
        continue
      if eqn.prim.multiple_results or len(eqn.outputs) != 1:
        raise _NotTiled
      if eqn.prim in batching.elementwise_prims:
        b = _elementwise_axis(eqn, axes, n)
      else:
        rule = _AXIS_RULES.get(eqn.prim.name)
        if rule is None:
          raise _NotTiled
        b = rule(eqn, axes, n)
      if eqn.outputs[0].aval.shape[b] != n:
        raise _NotTiled
      axes[id(eqn.outputs[0])] = b
  except _NotTiled:
    return None
  if not any(isinstance(o, Var) and id(o) in axes for o in program.outs):
    return None
  return axes


def tile_plan(program):
  """(axis length n, {id(var): axis}, chunk length) for a program worth running in chunks,
  or None. Candidate lengths are the input dimensions long enough for two chunks, longest
  first."""
  lengths = sorted({size for v in program.in_vars + program.const_vars
                    for size in v.aval.shape if size >= 2 * MIN_CHUNK}, reverse=True)
  for n in lengths[:2]:
    axes = _axes_for(program, n)
    if axes is None:
      continue
    tiled = [v for v in program.in_vars + program.const_vars if id(v) in axes] + [
        v for e in program.eqns for v in e.outputs if id(v) in axes]
    widest = max(v.aval.dtype.itemsize * math.prod(v.aval.shape) // n for v in tiled)
    chunk = max(MIN_CHUNK, 1 << int(math.log2(max(TARGET_BYTES // max(widest, 1), 1))))
    if n < 2 * chunk:
      continue
    pieces = -(-n // chunk)
    return n, axes, -(-n // pieces)
  return None


def split(program, axes, chunk):
  """(prologue, body, passed, prologue_outputs): the prologue computes, from the untiled
  inputs, the untiled values the body reads (`passed`) and the untiled outputs; the body
  takes the tiled inputs and then the tiled constants (one chunk each), then `passed`, and
  returns the tiled outputs."""
  resized = {}

  def new(v, b):
    shape = list(v.aval.shape)
    shape[b] = chunk
    w = Var(core.ShapedArray(tuple(shape), v.aval.dtype, v.aval.weak_type))
    resized[id(v)] = w
    return w

  consts = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
  pro_eqns, body_eqns, needed = [], [], {}
  body_in = [new(v, axes[id(v)]) for v in program.in_vars + program.const_vars
             if id(v) in axes]
  for eqn in program.eqns:
    out = eqn.outputs[0] if len(eqn.outputs) == 1 else None
    if out is None or id(out) not in axes:
      pro_eqns.append(eqn)
      continue
    inputs = []
    for a in eqn.inputs:
      if isinstance(a, Var) and id(a) in axes:
        inputs.append(resized[id(a)])
      else:
        if isinstance(a, Var):
          needed[id(a)] = a
        inputs.append(a)
    params = _resized_params(eqn, axes, axes[id(out)], chunk)
    body_eqns.append(Eqn(eqn.prim, inputs, params, [new(out, axes[id(out)])], eqn.source))
  # Values the body reads or the caller gets that are not tiled come from the prologue
  # (constants stay constants of the body).
  untiled_outs = [o for o in program.outs if isinstance(o, Var) and id(o) not in axes]
  passed = [v for v in needed.values() if id(v) not in consts]
  pro_outs = passed + untiled_outs
  pro_in = [v for v in program.in_vars if id(v) not in axes]
  prologue = Program(pro_in, program.const_vars, program.const_vals, pro_eqns, pro_outs)
  body_consts = [v for v in needed.values() if id(v) in consts]
  body_outs = [resized[id(o)] for o in program.outs if isinstance(o, Var) and id(o) in axes]
  body = Program(body_in + passed, body_consts, [consts[id(v)] for v in body_consts],
                 body_eqns, body_outs)
  return prologue, body, passed, pro_outs


def compile_tiled(program, name, fuse_reductions=True, specialize=False):
  """A function computing `program` chunk by chunk (see the module docstring), or None.
  (`fuse_reductions`: as for codegen.compile_program; `specialize`: each chunk may run a
  program specialized to a uniform condition, see uniform.py.)"""
  from dfdx._src import codegen, passes, uniform
  if not enabled:
    return None
  program = passes.inline_jit_calls(program)
  if any(isinstance(o, Lit) for o in program.outs):
    return None
  plan = tile_plan(program)
  if plan is None:
    return None
  n, axes, chunk = plan
  prologue, body, passed, pro_outs = split(program, axes, chunk)
  try:
    typecheck_program(body)
  except Exception:  # (ProgramTypeError, or an abstract evaluation's own error) a
    # resized parameter the rules above do not know: run it whole
    return None
  prologue_run = codegen.compile_program(passes.dce(prologue), f"{name}_prologue",
                                         fuse_reductions)
  compile_body = lambda p, checks: codegen.compile_program(  # noqa: E731
      p, f"{name}_chunk", fuse_reductions, destinations=True, checks=checks)
  body_run = (uniform.compile_specialized(body, compile_body, name) if specialize
              else compile_body(body, None))
  tiled_in = [(i, axes[id(v)]) for i, v in enumerate(program.in_vars) if id(v) in axes]
  tiled_consts = [(c, axes[id(v)]) for v, c in zip(program.const_vars, program.const_vals)
                  if id(v) in axes]
  untiled_in = [i for i, v in enumerate(program.in_vars) if id(v) not in axes]
  pro_index = {id(v): k for k, v in enumerate(pro_outs)}  # (`passed` come first)
  n_passed = len(passed)
  # Each output: (its tiled axis, its aval), or its position in the prologue's outputs.
  out_at = [(axes[id(o)], o.aval) if id(o) in axes else pro_index[id(o)] for o in program.outs]
  starts = list(range(0, n - chunk, chunk)) + [n - chunk]
  # An output that transposes the body's result is laid out as that result is (as the
  # program run whole returns it), so that each chunk is written along its rows.
  body_outs = [k for k, o in enumerate(program.outs) if id(o) in axes]
  perms = {body_outs[k]: perm for k, perm in codegen._destinations(body).values()
           if perm is not None}

  def run(*args):
    pro = prologue_run(*[args[i] for i in untiled_in])
    extra = pro[:n_passed]
    full = [_empty(at[1], perms.get(k)) if type(at) is tuple else pro[at]
            for k, at in enumerate(out_at)]
    tiled = [(x, at[0]) for x, at in zip(full, out_at) if type(at) is tuple]
    for start in starts:
      part = (slice(start, start + chunk),)
      body_run(*[args[i][(slice(None),) * a + part] for i, a in tiled_in],
               *[c[(slice(None),) * a + part] for c, a in tiled_consts], *extra,
               *[x[(slice(None),) * a + part] for x, a in tiled])
    return full

  run.__dfdx_source__ = (f"# {name}: {len(starts)} chunks of {chunk} along an axis of {n}\n"
                         + prologue_run.__dfdx_source__ + body_run.__dfdx_source__)
  run.tiles = (n, chunk, len(starts))
  return run


def _empty(aval, perm):
  """An uninitialized array for an output: C order, or (`perm`) a transpose of one."""
  if perm is None:
    return np.empty(aval.shape, aval.dtype)
  return np.empty([aval.shape[d] for d in perm], aval.dtype).transpose(np.argsort(perm))
