"""Compiled reverse passes for eager gradients called again and again.

An eager `grad` runs the user's Python forward (nothing about it is cached: branches, loops and
side effects behave as in NumPy) and records a tape of whole primitives; its reverse pass
interprets that tape node by node. A training loop records the same tape on every call: the
same primitives with the same parameters, shapes and dtypes, wired the same way, with
different values. For such a tape the reverse pass is a fixed program of its residuals (the
recorded inputs and outputs of its nodes) and cotangents, so it is staged and compiled once,
as jit compiles, and later calls run that code instead of the interpreter.

Each plain reverse pass (no transformation around it, no debug checks, a tape of at most
`MAX_NODES` nodes of the common kind, `ad._Node`) computes its tape's `signature`, one pass
over the nodes, and looks it up. A structure is compiled once its interpreted passes have
taken as long as compiling it is expected to take (so that a function called a few times
never pays for a compilation it would not repay), and the compiled pass is kept only if
it reproduces the interpreted pass that it runs next to, every cotangent bit for bit, and is
not slower (a slower one is tried again later, at most three times in all); otherwise that
structure stays interpreted. A pass whose result holds a NaN or meets a tie of a spectrum is
redone by `recompute_if_nan` as before, interpreted.

The compiled pass computes every value with the NumPy operations the interpreter would use:
of jit's passes it takes only the exact ones (`simplify`'s rewrites, common subexpressions
once, dead code dropped), not those that reorder sums (`push_sums`, the einsum of a sum of
products), whose rounding differs. Bit-for-bit agreement is checked once, on the values of
the call that compiles; on others it rests on the same operations running in the same order.

`enabled` turns this off (`dfdx._src.reverse_cache.enabled = False`, or the environment
variable DFDX_COMPILED_REVERSE=0), for comparisons.
"""
from __future__ import annotations

import os
import time

import numpy as np

from dfdx._src import core

enabled = os.environ.get("DFDX_COMPILED_REVERSE", "1") != "0"

# Tapes with more nodes are interpreted without a signature: compiling takes about half a
# millisecond a node, tens of seconds for a Python loop unrolled into tens of thousands of
# nodes (dfdx.scan records such a loop as one node).
MAX_NODES = 10_000
_TRIES = 3  # compilations of a structure whose compiled pass was slower, before giving up
_MAX_SEEN = 256  # structures remembered (when more are seen, those not compiled are dropped)
# Seconds that compiling takes per node: an estimate, updated by every compilation.
_compile_seconds_per_node = 5e-4


class Entry:
  """A tape structure seen before: `flat` (see `signature`), its number of nodes, how often
  its pass was interpreted and the seconds that took in all, and its compiled pass (None
  until compiled; `_INTERPRET` when it is not to be compiled)."""
  __slots__ = ("flat", "nodes", "seen", "spent", "fn", "tries")

  def __init__(self, flat, nodes):
    self.flat, self.nodes, self.seen, self.spent, self.fn = flat, nodes, 0, 0.0, None
    self.tries = 0


_INTERPRET = object()
# What became of the structures compiled (for tests and profiles): kept, or interpreted
# because the compiled pass differed, was slower, or could not be staged (the last such
# exception is in last_failure).
stats = {"compiled": 0, "differed": 0, "slower": 0, "not staged": 0}
last_failure: list = []
_SCALARS = (float, int, bool, complex)


def signature(eqns, in_vars, out_vars, cotangents, node_type):
  """(flat, residuals) of a tape: a list that describes everything its reverse pass depends
  on except values (two tapes with equal lists have the same reverse pass), and the values
  (the nodes' recorded inputs and outputs, then the cotangents). None where the tape is not
  of the kind compiled.

  Per node: its primitive, its parameters (a dict, compared by ==), then per input the
  position of the node that computed it (negative: an input of the tape), or for a constant
  its shape and dtype (its type, for a Python scalar). The primitive starts each node's part
  and nothing else in the list is a primitive, so the parts cannot run into one another."""
  flat = [len(in_vars)]
  for v in in_vars:
    flat.append(v.shape)
    flat.append(v.dtype)
  residuals = []
  append = flat.append
  i = 0
  for node in eqns:
    if type(node) is not node_type or node.index != i:
      return None
    i += 1
    append(node.prim)
    append(node.params)
    primals = node.primals
    if primals is None:
      for t in node.tangents:
        append(None if t is None else t.index)
    else:
      residuals += primals
      for t, p in zip(node.tangents, primals):
        if t is not None:
          append(t.index)
        elif type(p) is np.ndarray:
          append((p.shape, p.dtype))
        elif type(p) in _SCALARS:
          append(type(p))
        elif isinstance(p, np.generic):
          append((p.shape, p.dtype, "scalar"))
        else:
          return None
    if node.ans is not None:
      residuals.append(node.ans)
  for v in out_vars:
    append(None if v is None else ("out", v.index))
  for c in cotangents:
    if c is None:
      append(None)
    else:
      append(("ct", np.shape(c), np.result_type(c), type(c) in _SCALARS))
      residuals.append(c)
  return flat, residuals


_entries: dict = {}  # len(flat) -> [Entry]: the structures seen
_count = 0


def lookup(flat, nodes):
  """The compiled pass for the structure `flat`: a function, or its Entry while it is
  interpreted (pass it to `interpret`), or None (interpret, untimed)."""
  global _count
  bucket = _entries.get(len(flat))
  if bucket is not None:
    for entry in bucket:
      try:
        same = entry.flat == flat
      except (ValueError, TypeError):  # parameters that do not compare as values (arrays)
        return None
      if same:
        fn = entry.fn
        if fn is None:
          return entry
        return None if fn is _INTERPRET else fn
  if _count >= _MAX_SEEN:  # a program whose structures rarely repeat: forget those
    _forget_uncompiled()
  entry = Entry(flat, nodes)
  _entries.setdefault(len(flat), []).append(entry)
  _count += 1
  return entry


def _forget_uncompiled():
  """Forget the structures still undecided (all of them, if those compiled or given up on
  fill half the room): room for new ones, without compiling a program's hot loop again."""
  global _count
  kept = {n: [e for e in bucket if e.fn is not None] for n, bucket in _entries.items()}
  _count = sum(len(bucket) for bucket in kept.values())
  _entries.clear()
  if _count < _MAX_SEEN // 2:
    _entries.update((n, bucket) for n, bucket in kept.items() if bucket)
  else:
    _count = 0


def interpret(entry, lin, residuals, cotangents, plain):
  """`lin`'s interpreted reverse pass, timed; compiles the pass once the interpreted ones of
  this structure have taken as long as compiling it would."""
  start = time.perf_counter()
  in_cts = lin._interpret(cotangents, plain)
  elapsed = time.perf_counter() - start
  entry.seen += 1
  entry.spent += elapsed
  if entry.seen >= 2 and entry.spent >= _compile_seconds_per_node * entry.nodes:
    _compile_and_check(entry, lin, residuals, cotangents, in_cts, elapsed)
  return in_cts


def run(fn, residuals, n_in):
  """The input cotangents (None for zero) from the compiled pass `fn`."""
  outs = fn(*residuals)
  if len(outs) == n_in:
    return list(outs)
  it = iter(outs)
  return [next(it) if present else None for present in fn.pattern]


def _compile_and_check(entry, lin, residuals, cotangents, expected, interpreted_seconds):
  """Compile `lin`'s reverse pass for `entry`; keep it if it reproduces `expected` (the
  interpreted pass's result on these residuals) bit for bit and takes no longer."""
  global _compile_seconds_per_node
  entry.fn = _INTERPRET
  start = time.perf_counter()
  try:
    compiled = _compile(lin, residuals, cotangents)
    _compile_seconds_per_node = (time.perf_counter() - start) / entry.nodes
    start = time.perf_counter()
    got = run(compiled, residuals, len(lin.in_vars))
    seconds = time.perf_counter() - start
  except Exception as e:  # noqa: BLE001  (a rule that cannot be staged: interpret it)
    stats["not staged"] += 1
    last_failure[:] = [e]
    return
  if not _identical(got, expected):
    stats["differed"] += 1
    return
  if seconds > interpreted_seconds:  # a second run, in case the first met a busy moment
    start = time.perf_counter()
    run(compiled, residuals, len(lin.in_vars))
    seconds = min(seconds, time.perf_counter() - start)
  if seconds > interpreted_seconds:
    stats["slower"] += 1
    entry.tries += 1
    if entry.tries < _TRIES:  # timings on a shared machine: try again after as long
      entry.fn, entry.seen, entry.spent = None, 0, 0.0
  else:
    stats["compiled"] += 1
    entry.fn = compiled


def _identical(got, expected):
  """Whether two lists of cotangents (arrays or None) are the same, bit for bit (NaNs, whose
  payloads NumPy does not promise, count as equal)."""
  for g, e in zip(got, expected, strict=True):
    if g is None or e is None:
      if g is not e:
        return False
      continue
    g, e = np.asarray(g), np.asarray(e)
    if g.shape != e.shape or g.dtype != e.dtype or not np.array_equal(g, e, equal_nan=True):
      return False
    if g.dtype.kind in "fc" and not np.array_equal(np.signbit(g.real), np.signbit(e.real)):
      return False
  return True


def _compile(lin, residuals, cotangents):
  """`lin`'s reverse pass staged on abstract residuals (a copy of its tape whose nodes hold
  them) and compiled: a function of the residuals returning the nonzero input cotangents,
  with `pattern` saying which inputs have one."""
  from dfdx._src import ad, codegen, passes, staging
  eqns, in_vars, out_vars = lin.eqns, lin.in_vars, lin.out_vars
  pattern = []

  def reverse(*xs):
    it = iter(xs)
    mapping = {id(v): v for v in in_vars}
    shadow = []
    for node in eqns:
      copy = object.__new__(ad._Node)
      copy._trace, copy.shape, copy.dtype = node._trace, node.shape, node.dtype
      copy.prim, copy.params, copy.needs = node.prim, node.params, node.needs
      copy.index = node.index
      copy.primals = None if node.primals is None else [next(it) for _ in node.primals]
      copy.ans = None if node.ans is None else next(it)
      copy.tangents = [None if t is None else mapping[id(t)] for t in node.tangents]
      mapping[id(node)] = copy
      shadow.append(copy)
    outs = [None if v is None else mapping.get(id(v), v) for v in out_vars]
    cts = [None if c is None else next(it) for c in cotangents]
    in_cts = ad.Linearized(shadow, in_vars, outs).transpose(cts)
    pattern[:] = [c is not None for c in in_cts]
    return [c for c in in_cts if c is not None]

  program, lifted = staging.make_program(reverse, [core.get_aval(r) for r in residuals],
                                         record_source=False)
  if lifted:
    raise ValueError("the reverse pass closes over traced values")
  # only the exact passes (see the module docstring); simplify again where one rewrite
  # makes room for another (an explicit broadcast dropped, then a scalar factor moved to
  # the smaller operand)
  for _ in range(3):
    size = len(program.eqns)
    program = passes.dce(passes.cse(passes.simplify(program)))
    if len(program.eqns) == size:
      break
  fn = codegen.compile_program(program, "reverse_pass", fuse_reductions=False)
  fn.pattern = tuple(pattern)
  return fn
