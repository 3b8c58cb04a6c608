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
over the nodes, and looks it up; so does a pass with only vmaps around it (see "reverse
passes under vmap" below). A structure is compiled once its interpreted passes have
taken as long as compiling it is expected to take (so that a function called a few times
never pays for a compilation it would not repay), and the compiled pass is kept only if
it reproduces the interpreted pass that it runs next to, every cotangent bit for bit, and is
not slower: its first run, or else the fastest of its first three (on trial, it runs the
next calls; a first run of new code into memory not yet reused is often slow), against the
fastest interpreted pass. A slower one is compiled again later, at most three times in
all; otherwise that structure stays interpreted. A pass whose result holds a NaN or meets
a tie of a spectrum is redone by `recompute_if_nan` as before, interpreted.

The compiled pass computes every value with the NumPy operations the interpreter would use:
of jit's passes it takes only the exact ones (`simplify`'s rewrites, common subexpressions
once, dead code dropped), not those that reorder sums (`push_sums`, the einsum of a sum of
products), whose rounding differs. Bit-for-bit agreement is checked once, on the values of
the call that compiles; on others it rests on the same operations running in the same order.

A longer tape, a Python loop's, is not compiled whole but rolled: its periodic part runs
block by block, each block by one compiled function (see "rolled reverse passes" below), and
its middle blocks as one compiled loop where they fit one (rolled_loop.py).

`enabled` turns this off (`dfdx._src.reverse_cache.enabled = False`, or the environment
variable DFDX_COMPILED_REVERSE=0), for comparisons.
"""
from __future__ import annotations

import itertools
import operator
import os
import sys
import threading
import time

import numpy as np

from dfdx._src import core, uniform
from dfdx._src.ir import Program, Var

enabled = os.environ.get("DFDX_COMPILED_REVERSE", "1") != "0"

# Tapes with more nodes are not compiled whole: compiling takes about half a millisecond a
# node, tens of seconds for a Python loop unrolled into tens of thousands of nodes. Such a
# tape's periodic part is rolled instead (below); dfdx.scan records a loop as one node.
MAX_NODES = 10_000
_TRIES = 3  # compilations of a structure whose compiled pass was slower, before giving up
_MAX_SEEN = 256  # structures remembered (when more are seen, those not compiled are dropped)
_MAX_VARIANTS = 8  # sets of donated residuals compiled per compiled pass (others: none)
# Seconds that compiling takes per node: an estimate, updated by every compilation.
_compile_seconds_per_node = 5e-4


class Entry:
  """A tape structure seen before: `flat` (see `signature`), its number of nodes, how often
  its pass was interpreted, the seconds that took in all and at best, and its compiled pass
  (None until compiled; `_INTERPRET` when it is not to be compiled). `trial`: a compiled
  pass on trial (see `_on_trial`), with the seconds of its runs so far."""
  __slots__ = ("flat", "nodes", "seen", "spent", "best", "fn", "tries", "trial", "trial_times")

  def __init__(self, flat, nodes):
    self.flat, self.nodes, self.seen, self.spent, self.fn = flat, nodes, 0, 0.0, None
    self.best, self.tries, self.trial, self.trial_times = float("inf"), 0, None, []


_INTERPRET = object()
_TRIAL_RUNS = 3  # runs of a compiled pass on trial: the fastest is compared
# What became of the structures compiled (for tests and profiles): kept, or interpreted
# because the compiled pass differed, was slower, or could not be staged (the last such
# exception is in last_failure).
stats = {"compiled": 0, "differed": 0, "slower": 0, "not staged": 0}
# the same for the loops of rolled passes (see rolled_loop.py)
loop_stats = {"compiled": 0, "differed": 0, "slower": 0, "not staged": 0}
last_failure: list = []
_SCALARS = (float, int, bool, complex)


def signature(eqns, in_vars, out_vars, cotangents, node_type, traced=False):
  """(flat, residuals) of a tape: a list that describes everything its reverse pass depends
  on except values (two tapes with equal lists have the same reverse pass), and the values
  (the nodes' recorded inputs and outputs, then the cotangents). None where the tape is not
  of the kind compiled. With `traced`, constants may be tracers (the caller describes them:
  see "reverse passes under vmap").

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
        elif traced and isinstance(p, core.Tracer):
          append("traced")
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
_entries_lock = threading.Lock()


def lookup(flat, nodes):
  """The compiled pass for the structure `flat`: a function, or its Entry while it is
  interpreted (pass it to `interpret`), or None (interpret, untimed)."""
  entry = _entry(flat, nodes)
  if entry is None:
    return None
  fn = entry.fn
  if fn is None:
    return entry
  return None if fn is _INTERPRET else fn


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


def interpret(entry, lin, residuals, cotangents, plain, vmaps=None):
  """`lin`'s interpreted reverse pass, timed; compiles the pass once the interpreted ones of
  this structure have taken as long as compiling it would. (`vmaps`: see "reverse passes
  under vmap"; `residuals` and `cotangents` are then the arrays holding the batches.)"""
  trial = entry.trial  # (read once: another thread may end the trial meanwhile)
  if trial is not None:
    return _on_trial(entry, trial, lin, residuals, vmaps)
  start = time.perf_counter()
  in_cts = lin._interpret(cotangents, plain) if vmaps is None else vmaps.interpret(lin)
  elapsed = time.perf_counter() - start
  entry.seen += 1
  entry.spent += elapsed
  entry.best = min(entry.best, elapsed)
  if entry.seen >= 2 and entry.spent >= _compile_seconds_per_node * entry.nodes:
    _compile_and_check(entry, lin, residuals, cotangents, in_cts, elapsed, vmaps)
  return in_cts


def run(fn, residuals, n_in, lin=None, cotangents=None):
  """The input cotangents (None for zero) from the compiled pass `fn`. Given `lin` (whose
  tape the caller drops after this pass, see `Linearized.transpose`'s `last`), residuals
  that nothing else holds lend their buffers to the pass (see "donated residuals")."""
  if lin is not None and fn.large:
    donated = _donatable(residuals, fn.large)
    if donated:
      variant = fn.variants.get(donated)
      if variant is not None:
        fn = variant
      elif len(fn.variants) < _MAX_VARIANTS:
        return _first_donation(fn, donated, lin, residuals, cotangents, n_in)
  outs = fn(*residuals)
  if len(outs) == n_in:
    return list(outs)
  it = iter(outs)
  return [next(it) if present else None for present in fn.pattern]


def _compile_and_check(entry, lin, residuals, cotangents, expected, interpreted_seconds,
                       vmaps=None):
  """Compile `lin`'s reverse pass for `entry`; keep it if it reproduces `expected` (the
  interpreted pass's result on these residuals) bit for bit and takes no longer than
  `interpreted_seconds`, or put it on trial (see `_on_trial`) if it took longer."""
  global _compile_seconds_per_node
  entry.fn = _INTERPRET
  if vmaps is not None:
    expected = vmaps.canonical(expected)
  # (under vmaps, a pass whose batch axis moved last is compiled again without that if its
  # bits differ: the move may reorder sums; then without its specializations to a uniform
  # condition, which may change the sign of a zero)
  batch_last = specialize = True
  while True:
    start = time.perf_counter()
    try:
      compiled = _compile(lin, residuals, cotangents, vmaps=vmaps, batch_last=batch_last,
                          specialize=specialize)
      _compile_seconds_per_node = (time.perf_counter() - start) / entry.nodes
      start = time.perf_counter()
      got = _call(compiled, lin, residuals, vmaps)
      seconds = time.perf_counter() - start
      if vmaps is not None:
        got = vmaps.canonical(got)
    except Exception as e:  # noqa: BLE001  (a rule that cannot be staged: interpret it)
      stats["not staged"] += 1
      last_failure[:] = [e]
      return
    if _identical(got, expected):
      break
    stats["differed"] += 1
    if getattr(compiled, "batch_last", False):
      batch_last = False
    elif specialize and uniform.SPECIALIZED in getattr(compiled, "__dfdx_source__", ""):
      specialize = False
    else:
      return
  if seconds <= interpreted_seconds:
    stats["compiled"] += 1
    entry.fn = compiled
  else:  # (the first run of new code, into memory not yet reused, or a busy moment)
    entry.fn, entry.trial, entry.trial_times = None, compiled, [seconds]


def _on_trial(entry, fn, lin, residuals, vmaps):
  """The pass by `entry`'s compiled pass on trial, timed: after `_TRIAL_RUNS` runs it is kept
  if its fastest is no slower than the fastest interpreted pass; else the structure is
  interpreted again, and compiled again later (at most `_TRIES` times in all)."""
  start = time.perf_counter()
  out = _call(fn, lin, residuals, vmaps)
  entry.trial_times.append(time.perf_counter() - start)
  if len(entry.trial_times) >= _TRIAL_RUNS:
    entry.trial = None
    if min(entry.trial_times) <= entry.best:
      stats["compiled"] += 1
      entry.fn = fn
    else:
      stats["slower"] += 1
      entry.tries += 1
      # timings on a shared machine: try again after as long
      entry.fn = None if entry.tries < _TRIES else _INTERPRET
      entry.seen, entry.spent = 0, 0.0
  return out


def _call(fn, lin, residuals, vmaps):
  """The compiled pass `fn` run on `residuals`, donating nothing (under `vmaps`: batched)."""
  if vmaps is None:
    return run(fn, residuals, len(lin.in_vars))
  return run_batched(fn, residuals, vmaps.traces)


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


def _compile(lin, residuals, cotangents, donated=(), vmaps=None, batch_last=True,
             specialize=True):
  """`lin`'s reverse pass staged on abstract residuals (a copy of its tape whose nodes hold
  them) and compiled: a function of the residuals returning the nonzero input cotangents,
  with `pattern` saying which inputs have one, `large` the positions of residuals that
  may be donated, and `variants` the passes compiled with `donated` ones. Under `vmaps`,
  the pass batched by them, of the arrays holding the batches (see "reverse passes under
  vmap"), with `out_dims` the batch axes of its results, `batch_last` whether its batch
  axis moved last (asked for by `batch_last`) and `forward` whether it is the tape's forward
  application."""
  from dfdx._src import codegen, passes, staging, tiling, uniform
  pattern = []
  reverse = pass_function(lin, cotangents, pattern, vmaps is not None and vmaps.forward)
  avals = [core.get_aval(r) for r in residuals]
  if vmaps is None:
    program, lifted = staging.make_program(reverse, avals, record_source=False)
  else:
    staged, out_dims = vmaps.batched(reverse)
    prev = core.swap_trace(None)  # (the vmaps around the pass are not this program's)
    try:
      program, lifted = staging.make_program(staged, avals, record_source=False)
    finally:
      core.swap_trace(prev)
  if lifted:
    raise ValueError("the reverse pass closes over traced values")
  program = exactly_simplified(program)
  if vmaps is not None:  # (chunked along the batch where the program allows: tiling.py)
    program = passes.sink_into_gathers(program)
    moved = passes.batch_last(program, _BATCH_LAST_GAIN) if batch_last else program
    certificates, moved = _nan_certificates(moved)
    compile_whole = lambda p, checks: codegen.compile_program(  # noqa: E731
        p, "reverse_pass", fuse_reductions=False, checks=checks)
    fn = tiling.compile_tiled(moved, "reverse_pass", False, specialize=specialize) or (
        uniform.compile_specialized(moved, compile_whole, "reverse_pass") if specialize
        else compile_whole(moved, None))
    fn.pattern, fn.out_dims, fn.batch_last = tuple(pattern), out_dims, moved is not program
    fn.certificates = certificates
    fn.forward = vmaps.forward
    return fn
  fn = codegen.compile_program(program, "reverse_pass", fuse_reductions=False,
                               donated=donated)
  fn.pattern = tuple(pattern)
  n_cts = sum(c is not None for c in cotangents)  # (the caller's: never donated)
  read = {id(a) for eqn in program.eqns for a in eqn.inputs}  # (others: nothing to take)
  fn.large = tuple(k for k, r in enumerate(residuals[:len(residuals) - n_cts])
                   if type(r) is np.ndarray and r.nbytes >= DONATE_MIN_BYTES
                   and id(program.in_vars[k]) in read)
  fn.variants = {}
  return fn


def pass_function(lin, cotangents, pattern, forward=False):
  """`lin`'s reverse pass (with `forward`: its forward application) as a function of its
  residuals and its present cotangents (those of `cotangents` that are not None), run on a
  copy of its tape whose nodes hold them; it returns the nonzero input cotangents and sets
  `pattern` to which inputs have one."""
  from dfdx._src import ad
  eqns, in_vars, out_vars = lin.eqns, lin.in_vars, lin.out_vars

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
    if forward:  # (cts: the inputs' tangents)
      in_cts = ad.Linearized(shadow, in_vars, outs).forward(cts)
    else:
      in_cts = ad.Linearized(shadow, in_vars, outs).transpose(cts)
    pattern[:] = [c is not None for c in in_cts]
    return [c for c in in_cts if c is not None]
  return reverse


def exactly_simplified(program):
  """`program` after the exact passes only (see the module docstring); simplified again
  where one rewrite makes room for another (an explicit broadcast dropped, then a scalar
  factor moved to the smaller operand)."""
  from dfdx._src import passes
  for _ in range(3):
    size = len(program.eqns)
    program = passes.dce(passes.cse(passes.simplify(program)))
    if len(program.eqns) == size:
      break
  return program


# ---- reverse passes under vmap ------------------------------------------------------------
# A reverse pass inside vmap (vmap of grad: per-example gradients; jacrev, which pulls back
# every basis vector at once under a vmap; vmap of jacobian: ADBench's BA) runs each node's
# transpose rule through the batching rules of every vmap around it, and so does jacfwd's
# forward application of its tape to the input basis with the JVP rules (`forward`). Its tape is
# as fixed as a plain one, and so are the batch axes of its residuals and cotangents (tangents):
# the pass is staged once as the batched program (the pass under those vmaps, a function of the
# arrays that hold the batches) and compiled, in chunks along the batch where the program allows
# (tiling.py: the intermediates of a batch of observations then stay in cache). The key adds to
# the tape's signature the sizes of the vmaps and, per residual and cotangent, the shape and
# dtype of the array holding it and its batch axis at each vmap. Compiled when and kept as plain
# passes are (bit for bit the interpreted pass's cotangents, compared with every batch axis
# moved to the front, and not slower); nothing is donated. The traces around the pass must all
# be vmaps' (under jvp, linearize or grad the pass is interpreted).


# jit moves the batch axis last where that moves 8 equations per operand copied (passes.py,
# "the batch axis last"); a reverse pass reads most of its residuals once or twice, each an
# operand to copy, and its copies are made chunk by chunk in cache. BA's pass (208 equations
# moved, 35 residuals copied) then runs in 21 ms instead of 57.
_BATCH_LAST_GAIN = 2


_UNBATCHED = (None,)  # (the batch axes of a value that one vmap does not batch)


class _Vmaps:
  """The vmaps around a reverse pass (`traces`, outermost first), and the batch axes at each
  of them of the values that the pass reads (`dims`: one tuple per value). `forward`: the
  pass is the tape's forward application (tangents in, tangents out) instead."""
  __slots__ = ("traces", "dims", "cotangents", "forward")

  def __init__(self, traces, forward):
    self.traces, self.dims, self.cotangents, self.forward = traces, [], None, forward

  def interpret(self, lin):
    """The pass interpreted, on the (batched) `cotangents`."""
    return lin._forward(self.cotangents) if self.forward else lin._interpret(self.cotangents,
                                                                              False)

  def holder(self, x):
    """(the value holding `x`'s batches, its batch axis at each vmap: None where it is not
    batched); the value is a tracer if `x` belongs to another transformation."""
    dims = [None] * len(self.traces)  # (batching.NOT_MAPPED)
    for k in range(len(self.traces) - 1, -1, -1):
      if isinstance(x, core.Tracer) and x._trace is self.traces[k]:
        dims[k], x = x.bdim, x.val
    return x, dims

  def unbatched(self, x):
    """The array holding `x`, its batch axes recorded in `dims`; None for a tracer of
    another transformation."""
    x, dims = self.holder(x)
    if isinstance(x, core.Tracer):
      return None
    self.dims.append(tuple(dims))
    return x

  def read(self, xs, values, flat):
    """Append the arrays holding `xs` to `values` and their shapes and dtypes to `flat`
    (their batch axes to `dims`); False if one belongs to another transformation."""
    from dfdx._src.batching import BatchTracer
    dims, describe, put = self.dims, flat.append, values.append
    if len(self.traces) == 1:  # the common case, unrolled (the holder is then not a tracer)
      trace = self.traces[0]
      for x in xs:
        if type(x) is BatchTracer and x._trace is trace:
          dims.append((x.bdim,))
          x = x.val
        elif isinstance(x, core.Tracer):
          return False
        else:
          dims.append(_UNBATCHED)
        put(x)
        describe(_describe(x))
      return True
    for x in xs:
      x = self.unbatched(x)
      if x is None:
        return False
      put(x)
      describe(_describe(x))
    return True

  def batched(self, fun):
    """`fun` (on one example) as a function of the arrays holding the batches, and the list
    that gets, once it has been traced, the batch axes of its results (a tuple each)."""
    from dfdx._src import batching
    out_dims = []
    by_level = {}

    def at(k, xs):
      if k == len(self.traces):
        return fun(*xs)
      outs, dims = batching.vmap_flat(lambda *ys: at(k + 1, ys), self.traces[k].axis_size,
                                      xs, [d[k] for d in self.dims])
      by_level[k] = dims
      if k == 0:
        out_dims[:] = list(zip(*[by_level[j] for j in range(len(self.traces))]))
      return outs
    return (lambda *xs: at(0, xs)), out_dims

  def canonical(self, values):
    """`values` (results of the pass: batched tracers, arrays or None) as arrays with every
    batch axis in front, outermost first (a broadcast where a value is not batched)."""
    out = []
    for x in values:
      if x is None:
        out.append(None)
        continue
      x, dims = self.holder(x)
      x = np.asarray(x)
      for k, d in enumerate(dims):
        if d is None:
          x = np.broadcast_to(np.expand_dims(x, k),
                              x.shape[:k] + (self.traces[k].axis_size,) + x.shape[k:])
        else:
          x = np.moveaxis(x, k + d, k)
      out.append(x)
    return out


def vmaps_around(trace):
  """The traces from the outermost to `trace`, if there are some and all of them are vmaps';
  else None."""
  from dfdx._src.batching import BatchTrace
  if trace is None:
    return None
  traces = []
  while trace is not None:
    if type(trace) is not BatchTrace:
      return None
    traces.append(trace)
    trace = trace.parent
  traces.reverse()
  return traces


def batched(lin, cotangents, traces, node_type, forward=False):
  """`lin`'s input cotangents from its compiled pass under the vmaps `traces` (timed and
  compiled when due, as `interpret` does), or None: interpret it. With `forward`, its
  outputs' tangents given the inputs' (`cotangents`) from its compiled forward application."""
  sig = signature(lin.eqns, lin.in_vars, lin.out_vars, (), node_type, traced=True)
  if sig is None:
    return None
  flat, residuals = sig
  vmaps = _Vmaps(traces, forward)
  values = []
  append = flat.append
  append(("forward" if forward else "transpose", tuple(t.axis_size for t in traces)))
  if not vmaps.read(residuals, values, flat):
    return None
  physical_cts = []
  for c in cotangents:
    if c is None:
      append(None)
      physical_cts.append(None)
      continue
    v = vmaps.unbatched(c)
    if v is None:
      return None
    values.append(v)
    physical_cts.append(v)
    append(("ct", _describe(v)))
  flat.extend(vmaps.dims)
  found = lookup(flat, len(lin.eqns))
  if found is None:
    return None
  if type(found) is Entry:
    vmaps.cotangents = cotangents
    return interpret(found, lin, values, physical_cts, False, vmaps)
  return run_batched(found, values, traces)


def _describe(v):
  if type(v) is np.ndarray:
    return (v.shape, v.dtype)
  if isinstance(v, np.generic):
    return (v.shape, v.dtype, "scalar")
  return type(v)


def run_batched(fn, values, traces):
  """The input cotangents (batched tracers, None for zero) from the batched pass `fn`."""
  outs = fn(*values)
  if fn.certificates is not None:
    outs = _certify(outs, values, fn.certificates, len(fn.out_dims))
  outs = iter(zip(outs, fn.out_dims))
  in_cts = []
  for present in fn.pattern:
    if not present:
      in_cts.append(None)
      continue
    x, dims = next(outs)
    for t, d in zip(traces, dims):
      x = t.wrap(x, d)
    in_cts.append(x)
  return in_cts


# ---- results proved free of NaN --------------------------------------------------------------
# The outermost call of a transformation reads every result once more for a NaN (`ad.
# recompute_if_nan`). A per-example gradient of a dense layer is an outer product, x times
# the cotangent of its output, 8 MB at (512 examples, 32-64-10) where x and the cotangent
# are 48 KB: finite factors make a product with no NaN (at worst an overflow to inf), so
# checking them proves it of the result (`ad.nan_free`).
_CERTIFIED_VIEWS = {"reshape", "transpose", "broadcast_to", "neg", "convert_element_type"}


def _nan_certificates(program):
  """(certificates, program): for each output, None or the factors [("in", input position)
  or ("out", position among the outputs added)] whose finiteness proves it free of NaN (the
  operands of the product it is a view of, with a quarter of its entries at most); and the
  program returning those factors after its outputs (the program itself where there are
  none)."""
  producer = {id(v): e for e in program.eqns for v in e.outputs}
  inputs = {id(v): k for k, v in enumerate(program.in_vars)}
  added, certificates = [], []
  for o in program.outs:
    found = None
    x = uniform.source_of(o, producer, _CERTIFIED_VIEWS)
    eqn = producer.get(id(x)) if isinstance(x, Var) else None
    if eqn is not None and _one_product_each(eqn) and o.aval.dtype.kind == "f":
      factors = [a for a in eqn.inputs if isinstance(a, Var)]
      finite = all(bool(np.isfinite(np.asarray(a.val, complex if np.iscomplexobj(a.val)
                                               else float)).all())
                   for a in eqn.inputs if not isinstance(a, Var))
      # (as floats: a Python int may pass int64's range; a complex literal as complex)
      if finite and factors and 4 * sum(a.aval.size for a in factors) <= o.aval.size:
        found = []
        for a in factors:
          if id(a) in inputs:
            found.append(("in", inputs[id(a)]))
          elif id(a) in producer:
            found.append(("out", len(added)))
            added.append(a)
          else:  # (a constant of the program)
            found = None
            break
    certificates.append(found)
  if not any(c is not None for c in certificates):
    return None, program
  return certificates, Program(program.in_vars, program.const_vars, program.const_vals,
                               program.eqns, list(program.outs) + added)


def _one_product_each(eqn):
  """Whether each entry of `eqn`'s result is one product of an entry of each operand (an
  elementwise product, or a contraction summing nothing: the batched outer product)."""
  if eqn.prim.name == "mul":
    return True
  if eqn.prim.name != "dot_general":
    return False
  (xc, _), _ = eqn.params["dimension_numbers"]
  return all(eqn.inputs[0].aval.shape[d] == 1 for d in xc)


def _certify(outs, values, certificates, n):
  """The first `n` of a batched pass's results `outs`, after noting in `ad.nan_free` those
  whose factors (`certificates`, see `_nan_certificates`) are all finite."""
  from dfdx._src import ad
  outs, added = outs[:n], outs[n:]
  for out, found in zip(outs, certificates):
    if found is None or type(out) is not np.ndarray:
      continue
    for kind, k in found:
      x = values[k] if kind == "in" else added[k]
      if not np.isfinite(x).all():
        break
    else:  # (the proof covers the array out views, if out is all of it)
      whole = out if out.base is None else out.base
      if type(whole) is np.ndarray and whole.size == out.size:
        ad.note_nan_free(whole)
  return outs


# ---- donated residuals ----------------------------------------------------------------------
# grad and value_and_grad drop the tape once its reverse pass has run, and many residuals
# are the forward pass's intermediates that no one else can reach (the user's function has
# returned). A compiled pass may then write its results into their buffers once it has read
# them, as jit's code does with its own temporaries: a write into memory in cache instead of
# a fresh allocation (about half the time of a large elementwise product), and a lower peak.
# A residual is donated only if its reference count shows no holder but one place on the
# tape and its entry in the list of residuals (a user's variable, a global, a closure, a
# cache, a view of it, an output, a second place on the tape: any other reference keeps
# it), it is writeable and C-contiguous, and it owns its memory or is a view of an array
# that only it holds. The pass with a given set of donated residuals is compiled once, and
# kept only if it reproduces the pass without donations bit for bit (which it runs next to,
# on that first call). vjp's function, which may be called again, and jacobian never donate.
DONATE_MIN_BYTES = 1 << 16


def _reference_counts():
  """sys.getrefcount of an object held once, read as a list's entry and through a local
  variable (whether the call's and the local's references count depends on the
  interpreter: measured, not assumed)."""
  held = object()
  holder = [held]
  through_local = sys.getrefcount(held)
  del held
  return sys.getrefcount(holder[0]), through_local


_HELD_BY_A_LIST, _HELD_ONCE = _reference_counts()


def _donatable(residuals, large):
  """The positions among `large` of residuals that only the tape and `residuals` hold (each
  entry of `residuals` is one of the tape's references: an array held twice by the tape is
  in the list twice, and its count is higher)."""
  donated = []
  for k in large:
    # the tape's reference and the list's: one more than an object held by a list alone
    if sys.getrefcount(residuals[k]) != _HELD_BY_A_LIST + 1:
      continue
    r = residuals[k]
    flags = r.flags
    if not (flags.writeable and flags.c_contiguous):
      continue
    base = r.base
    if base is not None:
      # a view: of an array that owns its memory and that nothing but this view holds
      if type(base) is not np.ndarray or base.base is not None or \
          sys.getrefcount(base) != _HELD_ONCE or not base.flags.writeable:
        continue
    donated.append(k)
  return tuple(donated)


def _first_donation(fn, donated, lin, residuals, cotangents, n_in):
  """The input cotangents, by `fn` and by its variant that takes the buffers of residuals
  `donated`, compiled now and kept for later calls if the two agree bit for bit (else `fn`
  is kept for this set)."""
  expected = run(fn, residuals, n_in)  # (first: fn writes into no residual)
  variant = fn
  try:
    compiled = _compile(lin, residuals, cotangents, donated)
    got = run(compiled, residuals, n_in)
  except Exception as e:  # noqa: BLE001  (as in _compile_and_check)
    last_failure[:] = [e]
  else:
    if _identical(got, expected):
      variant = compiled
    else:
      stats["differed"] += 1
  fn.variants[donated] = variant
  return expected


# ---- rolled reverse passes --------------------------------------------------------------------
# A Python loop run eagerly records its body once per iteration: a tape too long to compile
# whole (ADBench's LSTM at 1024 characters: 46,000 nodes, 1,023 iterations of 45). Such a tape
# is periodic: past its first iterations, node i and node i + P (P, the period, found from the
# sequence of primitives, or a multiple of it where parameters repeat only every few periods)
# have the same primitive and parameters and read the same inputs: either the node at the
# same offset (inside the block of P nodes, or in an earlier block: the loop's carried
# values) or the very same variable (the loop's parameters, computed before it, and the
# tape's inputs); their constants have the same types, shapes and dtypes. Its reverse pass
# runs the nodes after the periodic part and those before it interpreted, and each block of
# the periodic part by one compiled function of the block: in, the block's residuals, the
# cotangents so far of its nodes that later nodes read (its exports) and of the earlier
# variables it reads (its imports); out, the imports' cotangents with the block's
# contributions added, in the order the interpreter adds them. Blocks differ only in which
# of those cotangents are still zero (the last block's, the first's), and each such pattern
# is compiled once. Every call verifies the period over the whole tape (the blocks around
# the middle that repeat it are the periodic part; a tape with fewer than `_ROLL_MIN_BLOCKS`
# is interpreted), and a structure is kept rolled only if, at its second sighting, its
# cotangents are the interpreted pass's bit for bit and it is not slower (as for compiled
# passes, above). Not rolled: loops whose body records equations from JVP rules rather than
# nodes (primitives with no VJP rule: `cumprod`, `sort`, ...), and structures whose rolled
# pass differs in any bit, such as the sign of a zero (a parameter's entry that every step
# masks: the interpreter sums its slices' cotangents last, onto +0.0; the blocks add them as
# they go). Once a structure is kept, its middle blocks are compiled as one loop and checked
# the same way (rolled_loop.py).

ROLL_MIN_NODES = MAX_NODES + 1  # shorter tapes are compiled whole
_NO_PLACE = -(1 << 61)  # in the tables of wiring, an input with no place on the tape (None, or
                        # a multiple output's variable, never in a block)
_ROLL_MAX_PERIOD = 2000  # nodes in a block at most: compiling takes about 0.5 ms a node
_ROLL_MIN_BLOCKS = 8
_rolled_refused: set = set()  # (nodes, a block's start, period) of tapes found not to roll


class _Rolled:
  """A rolled structure's compiled blocks: pattern of present cotangents -> function; and
  `loop`, its middle blocks as one loop (see rolled_loop.py): None before it is tried (and
  after a try that measured it slower, `_TRIES` times at most: timings on a shared machine),
  False where it does not fit or was not kept."""
  __slots__ = ("variants", "loop", "loop_tries")

  def __init__(self):
    self.variants, self.loop, self.loop_tries = {}, None, 0


def _rolled_entry(lin):
  """(plan, its Entry, key) of `lin`'s tape rolled, or None: it does not roll."""
  from dfdx._src import ad
  eqns = lin.eqns
  found = _find_period(eqns)
  if found is None:
    return None
  key = (len(eqns),) + found
  if key in _rolled_refused:
    return None
  rep, period = found
  for multiple in range(1, 9):  # (parameters may repeat only every few periods of primitives:
    if multiple * period > _ROLL_MAX_PERIOD:  # `p[t % 3]` indexes with a new constant)
      return None
    plan = _Plan(lin, rep, multiple * period, ad._Node)
    if plan.flat is not None:
      break
  else:
    return None
  entry = _entry(plan.flat, plan.period)
  if entry is None or entry.fn is _INTERPRET:
    return None
  return plan, entry, key


def rolled_ready(lin):
  """What `rolled` needs to run `lin`'s tape rolled (pass it as `found`) where its blocks
  are compiled, or are to be at its next pass (its second sighting); else None, and a first
  sighting is counted."""
  found = _rolled_entry(lin)
  if found is None:
    return None
  entry = found[1]
  if type(entry.fn) is _Rolled or entry.seen >= 1:
    return found
  entry.seen += 1
  return None


def rolled(lin, cotangents, found=None):
  """`lin`'s input cotangents from a rolled reverse pass, or None: interpret it. `found`:
  `rolled_ready`'s answer for this tape (else it is worked out here)."""
  found = _rolled_entry(lin) if found is None else found
  if found is None:
    return None
  plan, entry, key = found
  if type(entry.fn) is _Rolled:
    compiled = entry.fn
    try:
      if compiled.loop is None:  # (its loop measured slower once: tried again)
        probe = {}
        start = time.perf_counter()
        in_cts = plan.run(cotangents, compiled, None, probe)
        _try_loop(plan, compiled, cotangents, in_cts, time.perf_counter() - start, probe)
        return in_cts
      return plan.run(cotangents, compiled, None)
    except _NewVariant:  # cotangents present in a pattern not seen when it was checked
      return _check_rolled(entry, plan, cotangents, key, compiled)
  entry.seen += 1
  if entry.seen < 2:  # (compiled at the second sighting: the first call may be the only one)
    return None
  return _check_rolled(entry, plan, cotangents, key, _Rolled())


def _entry(flat, nodes):
  """The Entry of the structure `flat` (a new one the first time), or None where its
  parameters do not compare as values (arrays)."""
  global _count
  for entry in _entries.get(len(flat), ()):
    try:
      if entry.flat == flat:
        return entry
    except (ValueError, TypeError):
      return None
  with _entries_lock:  # (threads adding structures, and forgetting them, one at a time)
    if _count >= _MAX_SEEN:  # a program whose structures rarely repeat: forget those
      _forget_uncompiled()
    entry = Entry(flat, nodes)
    _entries.setdefault(len(flat), []).append(entry)
    _count += 1
  return entry


class _NewVariant(Exception):
  pass


def _check_rolled(entry, plan, cotangents, key, compiled):
  """Run `plan` rolled with `compiled` (compiling what it lacks) and interpreted; keep the
  rolled structure if it gives the interpreted pass's bits and is not slower (timed on a
  second run, once compiled)."""
  lin = plan.lin
  probe = {}
  try:
    got = plan.run(cotangents, compiled, _compile)
    start = time.perf_counter()
    plan.run(cotangents, compiled, None, probe)
    rolled_seconds = time.perf_counter() - start
  except Exception as e:  # noqa: BLE001  (a block that cannot be staged: interpret the tape)
    stats["not staged"] += 1
    last_failure[:] = [e]
    entry.fn = _INTERPRET
    _refuse(key)
    return None
  start = time.perf_counter()
  expected = lin._interpret(cotangents, True)
  interpreted_seconds = time.perf_counter() - start
  if not _identical(got, expected):
    stats["differed"] += 1
    entry.fn = _INTERPRET
    _refuse(key)
  elif _slower(rolled_seconds, interpreted_seconds):
    stats["slower"] += 1
    entry.tries += 1
    if entry.tries < _TRIES:  # (timings on a shared machine: tried again later)
      entry.fn, entry.seen = None, 0
    else:
      entry.fn = _INTERPRET
      _refuse(key)
  else:
    stats["compiled"] += 1
    if compiled.loop is None:  # (tried before other threads may run it)
      _try_loop(plan, compiled, cotangents, expected, rolled_seconds, probe)
    entry.fn = compiled
  return expected


def _try_loop(plan, compiled, cotangents, expected, rolled_seconds, probe):
  """Compile the middle blocks of `plan` as one loop (rolled_loop.py) and keep it in
  `compiled` if it gives `expected` bit for bit (the interpreted pass's, or the blocks',
  which are those) and is not slower than `rolled_seconds` (the blocks one by one); `probe`:
  what block `probe["hi"]` read in that run."""
  from dfdx._src import rolled_loop
  compiled.loop = False
  if "cts" not in probe:
    return
  try:
    loop = rolled_loop.compile_loop(plan, probe["lo"], probe["hi"], probe["where"],
                                    probe["cts"])
    if loop is None:
      return
    trial = _Rolled()  # (on trial in a copy: other threads may be running `compiled`)
    trial.variants, trial.loop = compiled.variants, loop
    got = plan.run(cotangents, trial, None)
    start = time.perf_counter()
    plan.run(cotangents, trial, None)
    seconds = time.perf_counter() - start
  except Exception as e:  # noqa: BLE001  (a block that cannot be staged as a loop)
    loop_stats["not staged"] += 1
    last_failure[:] = [e]
    return
  if not _identical(got, expected):
    loop_stats["differed"] += 1
  elif _slower(seconds, rolled_seconds):
    loop_stats["slower"] += 1
    compiled.loop_tries += 1
    compiled.loop = None if compiled.loop_tries < _TRIES else False
  else:
    loop_stats["compiled"] += 1
    compiled.loop = loop


def _refuse(key):
  if len(_rolled_refused) >= _MAX_SEEN:  # (a program whose tapes rarely repeat)
    _rolled_refused.clear()
  _rolled_refused.add(key)


def _slower(seconds, interpreted_seconds):
  return seconds > interpreted_seconds


def _find_period(eqns):
  """(start of a block, period), or None: the shortest period after which three periods of
  primitives repeat, around the middle of the tape, else three quarters or a quarter of the
  way along it (a loop after or before a long stretch of other work)."""
  prims = list(map(operator.attrgetter("prim"), eqns))
  n = len(prims)
  for m in (n // 2, 3 * n // 4, n // 4):
    first = prims[m]
    j = m
    while True:
      try:
        j = prims.index(first, j + 1, min(n, m + _ROLL_MAX_PERIOD + 1))
      except ValueError:
        break
      p = j - m
      if m + 4 * p <= n and prims[m:m + 3 * p] == prims[j:j + 3 * p]:
        return m, p
  return None


class _Plan:
  """The periodic part of a tape and how its blocks read and write cotangents."""
  __slots__ = ("lin", "period", "start", "end", "blocks", "spec", "exports", "imports",
               "reach", "tail_min", "flat")

  def __init__(self, lin, rep, period, node_type):
    self.lin, self.period, self.flat = lin, period, None
    eqns = lin.eqns
    spec = self._spec(eqns, rep, period, node_type)
    if spec is None:
      return
    self.spec = spec
    region = self._region(eqns, rep, period, spec, node_type)
    if region is None:
      return
    start, end = self.start, self.end = region
    self.blocks = (end - start) // period
    if self.blocks < _ROLL_MIN_BLOCKS:
      return
    exports, imports, flat, seen = set(), [], ["rolled", period], set()
    for p, (_, _, ks, _) in enumerate(spec):
      node = eqns[rep + p]
      flat += [node.prim, node.params, node.shape, node.dtype, node.ans is None]
      for k in ks:
        if type(k) is int:
          flat.append(k)
          if k < 0:
            exports.add(k % period)
            if k not in seen:
              seen.add(k)
              imports.append(k)
        elif k is None:
          flat.append(None)
        else:
          if k.index >= start:  # (a variable of the periodic part read by every block)
            return
          flat.append(("at", k.index))
          if id(k) not in seen:  # (ids are positive, offsets here negative; and tracers
            seen.add(id(k))      # are not compared with ==)
            imports.append(k)
      for x in node.primals or ():
        flat.append(type(x) if type(x) in _SCALARS else (x.shape, x.dtype))
    tail = [end]  # (the nodes of the periodic part read after it)
    for node in eqns[end:]:  # nodes (and linear equations) after the periodic part reading
      reads = getattr(node, "tangents", None)  # its last blocks
      for t in (node.args if reads is None else reads):
        if type(t) is node_type and start <= t.index < end:
          exports.add((t.index - start) % period)
          tail.append(t.index)
    for v in lin.out_vars:
      if isinstance(v, node_type) and start <= v.index < end:
        exports.add((v.index - start) % period)
        tail.append(v.index)
    self.tail_min = min(tail)
    self.exports, self.imports = sorted(exports), imports
    self.reach = min([k for k in imports if type(k) is int], default=0)
    flat += ["exports"] + self.exports + ["imports"]
    for k in imports:
      v = eqns[rep + k] if type(k) is int else k
      flat.append((v.shape, v.dtype))
    self.flat = flat

  @staticmethod
  def _spec(eqns, rep, period, node_type):
    """What every block must repeat of the block at `rep`, read against the next block, per
    node: (primitive, parameters (None when empty), per input what it reads, the constants'
    (position, type, shape, dtype)). An input reads None, the node at an offset from the
    block's start (an int), or the very variable the next block's node reads too. With the
    same primitives and parameters, wiring, constants and imported variables (checked by
    `run`), every other shape and dtype of a block is its representative's."""
    if rep + 2 * period > len(eqns):
      return None
    spec = []
    for a, b in zip(eqns[rep:rep + period], eqns[rep + period:rep + 2 * period]):
      if type(a) is not node_type or type(b) is not node_type or \
          len(a.tangents) != len(b.tangents):
        return None
      ks = []
      for ta, tb in zip(a.tangents, b.tangents):
        if ta is None or (ta is tb and type(getattr(ta, "index", None)) is int):
          ks.append(ta)
        elif type(ta) is node_type:
          ks.append(ta.index - rep)
        else:
          return None
      consts = None
      if a.primals is not None:
        consts = tuple((i, type(x), getattr(x, "shape", None), getattr(x, "dtype", None))
                       for i, (x, t) in enumerate(zip(a.primals, a.tangents)) if t is None)
        if any(c[1] is not np.ndarray and c[1] not in _SCALARS and
               not issubclass(c[1], np.generic) for c in consts):
          return None
      spec.append((a.prim, a.params or None, tuple(ks), consts or None))
    return spec  # (_region checks that the blocks repeat it, the next one too)

  @staticmethod
  def _region(eqns, rep, period, spec, node_type):
    """(start, end) of the run of blocks around the one at `rep` that repeat it (see
    _spec; the checks stand on their own), or None. Each test runs over the whole tape in
    comprehensions and NumPy, not node by node in Python (about 1 us a node here, half the
    time or less)."""
    n = len(eqns)
    # (map and getattr loop in C: a third of the time of comprehensions; a linear equation
    # recorded from a JVP rule, not a node, has no tangents: it cannot be in a block)
    tangents = list(map(getattr, eqns, itertools.repeat("tangents"), itertools.repeat(())))
    counts = np.fromiter(map(len, tangents), np.int64, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    refs = np.fromiter(map(getattr, itertools.chain.from_iterable(tangents),
                           itertools.repeat("index"), itertools.repeat(_NO_PLACE)),
                       np.int64, int(offsets[-1]))
    prims = list(map(operator.attrgetter("prim"), eqns))
    params = list(map(getattr, eqns, itertools.repeat("params"), itertools.repeat(None)))
    starts = np.arange(rep % period, n - period + 1, period)
    head = slice(rep, rep + period)
    rp, rq = prims[head], params[head]
    # (a primitive is recorded as one kind of node, or as an equation, with no tangents: the
    # counts tell them apart)
    good = (counts[starts[:, None] + np.arange(period)] == counts[head]).all(axis=1)
    for j, b in enumerate(starts.tolist()):
      if good[j]:
        block = slice(b, b + period)
        try:
          good[j] = prims[block] == rp and params[block] == rq
        except (ValueError, TypeError):  # (parameters that do not compare as values)
          good[j] = False
    good[(rep - int(starts[0])) // period] = True
    pattern, relative = [], []  # (an input that is None has no place either: checked below)
    for _, _, ks, _ in spec:
      for k in ks:
        pattern.append(_NO_PLACE if k is None else rep + k if type(k) is int else k.index)
        relative.append(type(k) is int)
    chosen = starts[good]
    at = offsets[chosen][:, None] + np.arange(len(pattern))
    want = np.array(pattern, np.int64) + np.outer(chosen - rep, relative)
    match = (refs[at] == want).all(axis=1)
    for p, (_, _, ks, _) in enumerate(spec):  # (the inputs that are None)
      for i in [i for i, k in enumerate(ks) if k is None] if match.any() else ():
        reads = map(operator.itemgetter(i), map(tangents.__getitem__,
                                                 (chosen[match] + p).tolist()))
        match[match] = np.fromiter(map(operator.is_, reads, itertools.repeat(None)), bool,
                                   int(match.sum()))
    good[good] = match
    for p, (_, _, _, consts) in enumerate(spec):  # each constant's type, shape and dtype
      if consts is None or not good.any():
        continue
      blocks = np.flatnonzero(good)
      nodes = list(map(eqns.__getitem__, (starts[blocks] + p).tolist()))
      primals = list(map(operator.attrgetter("primals"), nodes))
      ok = np.ones(len(nodes), bool)
      for i, kind, shape, dtype in consts:
        xs = list(map(operator.itemgetter(i), primals))
        ok &= np.fromiter(map(operator.is_, map(type, xs), itertools.repeat(kind)), bool,
                          len(xs))
        if shape is not None:
          for attr, value in (("shape", shape), ("dtype", dtype)):
            ok &= np.fromiter(map(operator.eq, map(getattr, xs, itertools.repeat(attr),
                                                   itertools.repeat(None)),
                                  itertools.repeat(value)), bool, len(xs))
      good[blocks] = ok
    first = last = (rep - int(starts[0])) // period
    while first > 0 and good[first - 1]:
      first -= 1
    while last + 1 < starts.size and good[last + 1]:
      last += 1
    return int(starts[first]), int(starts[last]) + period

  def run(self, cotangents, compiled, compile_fn, probe=None):
    """The input cotangents, each block by its compiled function (compiling a missing one
    with compile_fn, or raising _NewVariant without it), the middle blocks by
    `compiled.loop` where it is one. A `probe` dict gets what rolled_loop.compile_loop
    needs: the bounds of the blocks a loop may run and what the highest of them read."""
    from dfdx._src import ad, rolled_loop
    from dfdx._src.ad import Linearized, PendingCotangent
    lin, period, eqns, start = self.lin, self.period, self.lin.eqns, self.start
    exports, imports, variants = self.exports, self.imports, compiled.variants
    env = lin.output_env(cotangents)
    pop = env.pop
    lin.interpret_nodes(env, len(eqns), self.end, True)
    last = self.end - period
    first_ins = [(v.shape, v.dtype) for v in
                 (eqns[last + k] if type(k) is int else k for k in imports)]
    # where each block's residuals are: (position, index in its primals, or -1 for its output)
    where = []
    for p, node in enumerate(eqns[last:last + period]):
      where += [(p, i) for i in range(len(node.primals or ()))]
      if node.ans is not None:
        where.append((p, -1))
    loop = compiled.loop or None
    if probe is not None:
      probe["where"] = where
      bounds = rolled_loop.bounds(self)
      if bounds is not None:
        probe["lo"], probe["hi"] = bounds
    b = last + period
    while b > start:
      b -= period
      if loop is not None and b == loop.hi and rolled_loop.run(loop, self, env):
        b = loop.lo
        continue
      ins = [eqns[b + k] if type(k) is int else k for k in imports]
      if b + self.reach < start and (  # (imports before the periodic part: checked)
          [(v.shape, v.dtype) for v in ins] != first_ins or
          len({id(v) for v in ins}) < len(ins)):
        lin.interpret_nodes(env, b + period, b, True)
        continue
      cts = [pop(id(eqns[b + p]), None) for p in exports]
      cts += [pop(id(v), None) for v in ins]
      for i, c in enumerate(cts):
        if c is not None and type(c) is not np.ndarray and isinstance(c, PendingCotangent):
          cts[i] = c.materialize()
      pattern = tuple([c is not None for c in cts])
      if probe is not None and b == probe.get("hi"):
        probe["cts"] = list(cts)
      residuals = [eqns[b + p].primals[i] if i >= 0 else eqns[b + p].ans for p, i in where]
      residuals += [c for c in cts if c is not None]
      fn = variants.get(pattern)
      if fn is None:
        if compile_fn is None:
          raise _NewVariant
        outs = [eqns[b + p] for p in exports]
        block = Linearized(eqns[b:b + period], ins, outs + ins)
        fn = variants[pattern] = compile_fn(block, residuals, cts)
      it = iter(fn(*residuals))
      for v, present in zip(ins, fn.pattern):
        if present:
          env[id(v)] = next(it)
    lin.interpret_nodes(env, start, 0, True)
    return [ad.materialized(env.get(id(v))) for v in lin.in_vars]
