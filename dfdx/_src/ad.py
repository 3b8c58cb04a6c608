"""Automatic differentiation: forward mode (JVP), linearization, and reverse mode as the
transpose of the linearization.

Owns:
  * the rule tables `primitive_jvps` and `primitive_transposes`, and the rule builders
    (`defjvp`, `defjvp2`, `deflinear`, `defbilinear`, `defjvp_zero`);
  * `JVPTrace`: carries (primal, tangent) pairs. Its JVP rules run with `tangent_trace`
    current: the parent for plain forward mode, a `TapeTrace` for linearization;
  * `TapeTrace`: records the operations applied to tangents (which are linear in them) and
    forwards everything else to its parent. The recorded tape is the linearized function;
    `Linearized.transpose` runs it backwards with the transpose rules: that is reverse mode.

Direct VJP rules (`defvjp`) are an optimization of reverse mode only: when linearizing, a
primitive that has one (or is linear) is recorded as a single node whose output aval comes
from its primal result, instead of recording every operation of its JVP rule. Its forward
application still uses the JVP rule. `use_vjp_rules(False)` turns them off, so tests can check
that both paths agree.

Symbolic zeros: a tangent or cotangent of `None` is zero; rules skip it and a primitive
whose tangents are all zero runs in its parent with no derivative work at all.

Rules are written with dfdx ops, so they are traced again by outer transformations: every
transformation composes, to any order.
"""
from __future__ import annotations

import gc
import os
import weakref

import numpy as np

from dfdx._src import core, errors, reverse_cache, state
from dfdx._src.core import Trace, Tracer, ShapedArray, bind_in, get_aval, swap_trace

_plain_bind_in = bind_in

primitive_jvps: dict = {}
primitive_transposes: dict = {}
primitive_vjps: dict = {}
# Reverse-mode rules that keep residuals: prim -> (fwd, bwd), fwd(primals, **params) ->
# (outputs, residuals) at recording time, bwd(residuals, cts, primals, needs, **params) ->
# cotangents at backward time (custom_vjp: the user's own forward and backward).
primitive_residual_vjps: dict = {}
# The zero-absorbing chain rule (see ops/elementwise.py, `tmul`): on
# (`_ctx.zero_absorbing`) while a derivative that came out NaN is computed again.
# Linear equations recorded on a tape swap their primitive for its zero-absorbing version
# when applied then.
zero_absorbing_prims: dict = {}
_ctx = core.context  # (this thread's dynamic state: one object, its attributes per thread)


def applied(prim):
  """`prim`, or its zero-absorbing version while that chain rule is on."""
  return zero_absorbing_prims.get(prim, prim) if _ctx.zero_absorbing else prim
# Primitives whose derivative rules are right for complex values (adjoints for the real
# inner product: see ops/elementwise.py). Others refuse complex operands when differentiated.
complex_rules: set = set()
# Exact derivatives at ties of a spectrum (see ops/gaps.py): reverse passes that met a tie
# with a nonzero cotangent (`_ctx.ties_met`, a counter), the rules that a split
# spectrum uses instead of the JVP rules (prim -> rule(primals, tangents)), and the split's
# trace while a derivative is computed again with it (`run_split`: `_ctx.split_trace`).
# NumPy's floating-point warnings (divide by zero, invalid value, overflow) are silenced in
# reverse passes: a derivative's NaN or inf is in its result (and computed again when
# `recompute_if_nan` can remove it), so a warning from inside a rule only alarms. debug_nans
# turns this off, to see every NaN where it is made.
quiet_reverse_passes = True
_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}


class derivative_pass:
  """`with derivative_pass():` around a pass that computes derivatives only (a transposition,
  or a linearization applied forward to tangents): NumPy's warnings off (while
  `quiet_reverse_passes`), and equations staged meanwhile marked to run so when compiled."""
  __slots__ = ("errstate", "quiet")

  def __enter__(self):
    self.quiet = quiet_reverse_passes
    if self.quiet:
      self.errstate = np.errstate(**_QUIET)
      self.errstate.__enter__()
      _ctx.reverse_depth += 1
    return self

  def __exit__(self, *exc):
    if self.quiet:
      _ctx.reverse_depth -= 1
      self.errstate.__exit__(*exc)
    return False


split_rules: dict = {}


# Arrays known to hold no NaN without reading them: a compiled pass under vmap, or a jitted
# program, proves it of a result that is a product of finite arrays much smaller than it
# (per-example gradients of a dense layer, x (outer) dpre), checking only those
# (reverse_cache._certify). The outermost `recompute_if_nan` (and a jitted call, for its
# own) empties it before and after, so a proof is only used within the call that made it.
nan_free: dict = {}  # id(array) -> weakref.ref(array)


def note_nan_free(x):
  nan_free[id(x)] = weakref.ref(x)


def proved_nan_free(x) -> bool:
  """Whether `x`, or the array it views, is noted in `nan_free`."""
  base = x if type(x) is not np.ndarray or x.base is None else x.base
  ref = nan_free.get(id(base))
  return ref is not None and ref() is base


def holds_nan(tree) -> bool:
  """Whether any concrete floating leaf of `tree` holds a NaN."""
  if type(tree) is list or type(tree) is tuple:
    for t in tree:
      if holds_nan(t):
        return True
    return False
  if isinstance(tree, (np.ndarray, np.generic)):
    if tree.dtype.kind not in "fc":
      return False
    if nan_free and proved_nan_free(tree):
      return False
    if tree.ndim == 0:
      return tree != tree
    flat = tree.ravel(order="K")  # no copy for any dense layout (transposed outputs)
    norm = np.vdot(flat, flat)  # a sum of squared magnitudes: NaN when an entry is (no
    return norm != norm  # overflow warning, unlike dot)
  if isinstance(tree, float):
    return tree != tree
  if isinstance(tree, dict):
    return any(holds_nan(t) for t in tree.values())
  if isinstance(tree, (tuple, list)):  # namedtuples and other subclasses
    return any(holds_nan(t) for t in tree)
  if type(tree).__module__.startswith("scipy.sparse"):  # (a sparse Jacobian: its entries)
    return holds_nan(np.asarray(tree.data))
  from dfdx._src.tree import tree_leaves
  leaves = tree_leaves(tree)
  return not (len(leaves) == 1 and leaves[0] is tree) and holds_nan(leaves)


def recompute_if_nan(run, always=False, again=None):
  """`run()`, computed again when its first result cannot stand:
    * a reverse pass met a tie of a spectrum (eigenvalues, singular values) where the
      derivative is a limit: again with the spectrum split (`run_split`; `again`, if given,
      recomputes everything `run` depends on, such as the forward pass of a vjp);
    * the result holds a NaN and something was differentiated in it (or `always`): again
      with the zero-absorbing chain rule.
  Only the outermost call (no transformation current) checks: values inside
  transformations are not concrete."""
  ctx = _ctx
  if ctx.zero_absorbing or ctx.trace is not None:
    return run()
  if nan_free:
    nan_free.clear()
  try:
    return _recompute_if_nan(run, always, again)
  finally:
    if nan_free:
      nan_free.clear()


def _recompute_if_nan(run, always, again):
  if not state.in_use:
    return _runs(run, always, again, None)
  # One journal around every run: a second run starts from the Variables' values before the
  # first (given back in this thread only), and other threads see only the last run's.
  with state.journal() as j:
    return _runs(run, always, again, j.frame)


def _runs(run, always, again, frame):
  ctx = _ctx
  made, ties = ctx.jvp_traces, ctx.ties_met
  out = run()
  if ctx.ties_met != ties:  # from here on every run is split
    state.restore(frame)
    first, whole = out, again or run
    run = lambda: run_split(whole, first)  # noqa: E731
    out = run()
  if not ((always or ctx.jvp_traces != made) and holds_nan(out)):
    return out
  state.restore(frame)
  return run_zero_absorbing(run)


def run_zero_absorbing(run):
  """`run()` with the zero-absorbing chain rule."""
  ctx = _ctx
  prev, ctx.zero_absorbing = ctx.zero_absorbing, True
  try:
    return run()
  finally:
    ctx.zero_absorbing = prev


class use_vjp_rules:
  """Context manager: turn direct VJP rules on or off (reverse mode is then the transpose of
  the JVP rules alone)."""

  def __init__(self, enabled: bool):
    self.enabled = enabled

  def __enter__(self):
    ctx = _ctx
    self.prev, ctx.vjp_rules = ctx.vjp_rules, self.enabled

  def __exit__(self, *exc):
    _ctx.vjp_rules = self.prev

# Set by `dfdx._src.ops` when it is imported (ops import this module to register rules).
# add(x, y), broadcast_to(x, shape), convert(x, dtype) and zeros(aval) on tangents.
tangent_ops = type("TangentOps", (), {})()

# With DFDX_DEBUG_CHECKS=1 (set by the test suite), every tangent is checked against its
# primal's shape and dtype, so a wrong rule fails loudly where it is applied.
debug_checks = os.environ.get("DFDX_DEBUG_CHECKS", "") == "1"

# Makes each tape's list of recorded operations. `dfdx.debug_nans` swaps in a list that also
# records the user's line of each operation, for messages about NaNs in reverse mode.
new_tape = list


# ---- forward mode -------------------------------------------------------------------------

# Which inputs of a recorded node have tangents (whose cotangents its VJP rule is asked for),
# for the common arities.
_NEEDS_ONE, _NEEDS_BOTH, _NEEDS_FIRST, _NEEDS_SECOND = (True,), (True, True), (True, False), \
    (False, True)


def _needs_of(tangents):
  """Which inputs have tangents, for any arity."""
  return tuple([t is not None for t in tangents])


class JVPTracer(Tracer):
  __slots__ = ("primal", "tangent", "__weakref__")

  def __init__(self, trace, primal, tangent):
    self._trace, self.primal, self.tangent = trace, primal, tangent

  # (a primal may be a Python number: a jitted function's output that stands for one)
  shape = property(lambda self: getattr(self.primal, "shape", ()))

  @property
  def dtype(self):
    dtype = getattr(self.primal, "dtype", None)
    return core.get_aval(self.primal).dtype if dtype is None else dtype

  @property
  def aval(self):
    primal = self.primal
    if hasattr(primal, "shape"):
      return ShapedArray(primal.shape, primal.dtype)
    return core.get_aval(primal)

  def concrete_value(self, purpose):
    self.check_alive()
    primal = _primal(self)
    return primal.concrete_value(purpose) if isinstance(primal, Tracer) else primal

  def _repr_value(self):
    return f" primal={_primal(self)!r}"


# ---- the garbage collector --------------------------------------------------------------------
# Each of Python's full garbage collections traverses every object that can hold references,
# a tape's nodes and their lists too, and a growing tape triggers several per call: 114 ms of
# ADBench LSTM's 640 ms eager gradient (46,000 nodes). A tape holds no reference cycles (the
# values it keeps are freed by reference counting as soon as the pass is done with them), so
# the collector is paused while a tape is recorded and while it runs backward, and resumes
# after; cyclic garbage that the user's function makes meanwhile is collected then. The
# transformations of `dfdx.api` keep it paused for the whole call: between recording and the
# backward pass the tape is alive and young, and the first allocation there would start a
# collection of it (the LSTM's eager gradient about 6% faster, alternating in one process).


class paused_collector:
  """Python's cyclic garbage collector paused for the duration, if it was running."""
  __slots__ = ("paused",)

  def __enter__(self):
    self.paused = gc.isenabled()
    if self.paused:
      gc.disable()

  def __exit__(self, *exc):
    if self.paused:
      gc.enable()


# ---- deferred values ------------------------------------------------------------------------
# An eager gradient computes each value as its primitive is recorded, as NumPy would, with
# one exception where computing it later is cheaper: the square of a large array (`x ** 2`),
# or the product of two of one shape (`x * y`), that the next operation sums (`sum(x ** 2,
# axis)`: norms, least squares, log-densities) is summed in blocks of rows whose products
# stay in cache, never written out whole (see ops/reduction.py's sum_of_products: NumPy's
# values bit for bit; 2-2.5 ms of ADBench GMM's 20 ms at d = 20, K = 50). A rule in
# `deferred_impls` (see defdeferred) may return a `Deferred` in place of the value; it stands as its tracer's primal, and the next primitive
# bound either takes it whole (`fuse`: that primitive's value, in place of its impl) or, if
# the tracer is still alive (a variable holds it), has it computed (`materialize`) first. A
# fused tracer that stays alive is computed when the next primitive is bound; one that is
# gone (the temporary `x ** 2` in `sum(x ** 2, axis)`) never is. Every other reader of the
# primal (outputs, concrete values) and the end of the trace compute it too. At most one
# value is deferred at a time, only when recording a tape with no transformation around (the
# plain eager path), and never kept by a node: the nodes that keep their inputs see them
# computed.


class Deferred:
  """A value not computed yet: its `shape` and `dtype`, `materialize()` computing it, and
  `fuse(prim, params)`, the value of `prim` applied to it alone (None: not fused)."""
  __slots__ = ("shape", "dtype")

  def materialize(self):
    raise NotImplementedError

  def fuse(self, prim, params):
    return None


deferred_impls: dict = {}
DEFER_MIN_SIZE = 1 << 17  # entries of the first operand, below which no rule is asked
# (`_ctx.deferred`: a weak reference to the tracer whose primal is a Deferred, if any)


def defdeferred(prim, rule):
  """Let `rule(*primals, **params)` return a Deferred (or None: computed now) for prim's
  value when recorded on the plain eager path. prim's VJP must not read its output."""
  assert prim in _forgets_output, f"{prim.name}'s VJP reads its output: it cannot be deferred"
  deferred_impls[prim] = rule


def _primal(tracer):
  """tracer.primal, computed first if it is deferred."""
  if _ctx.deferred is not None:
    _materialize_deferred()
  return tracer.primal


def _materialize_deferred():
  """Compute the deferred value if its tracer is alive; forget it."""
  ctx = _ctx
  ref, ctx.deferred = ctx.deferred, None
  tracer = None if ref is None else ref()
  if tracer is not None:
    tracer.primal = tracer.primal.materialize()


_new = object.__new__


class JVPTrace(Trace):
  """Forward mode. Values it owns are `JVPTracer(primal, tangent)`. With a `tape`, tangents
  are variables of the tape: this is linearization."""
  __slots__ = ("tangent_trace", "tape")
  kind = "differentiation (jvp)"

  def __init__(self, tape=None):
    self.parent, self.alive, self.tape = core.current_trace(), True, tape
    self.tangent_trace = self.parent if tape is None else tape
    _ctx.jvp_traces += 1

  def process_primitive(self, prim, args, params):
    if _ctx.deferred is not None:
      fused = self._settle_deferred(prim, args, params)
      if fused is not None:
        return fused
    n = len(args)
    if n == 2:  # the common arities unrolled: the same lists as the loop below makes
      a, b = args
      if type(a) is JVPTracer and a._trace is self:
        if type(b) is JVPTracer and b._trace is self:
          primals, tangents, needs = [a.primal, b.primal], [a.tangent, b.tangent], _NEEDS_BOTH
        else:
          primals, tangents, needs = [a.primal, b], [a.tangent, None], _NEEDS_FIRST
      elif type(b) is JVPTracer and b._trace is self:
        primals, tangents, needs = [a, b.primal], [None, b.tangent], _NEEDS_SECOND
      else:
        return bind_in(self.parent, prim, args, params)
    elif n == 1:
      a = args[0]
      if type(a) is not JVPTracer or a._trace is not self:
        return bind_in(self.parent, prim, args, params)
      primals, tangents, needs = [a.primal], [a.tangent], _NEEDS_ONE
    else:
      primals, tangents, differentiated, needs = [], [], False, None
      for a in args:
        if type(a) is JVPTracer and a._trace is self:
          primals.append(a.primal)
          tangents.append(a.tangent)
          differentiated = True
        else:
          primals.append(a)
          tangents.append(None)
      if not differentiated:
        return bind_in(self.parent, prim, primals, params)
    if prim not in complex_rules:
      for p in primals:
        dtype = getattr(p, "dtype", None)
        if dtype is not None and dtype.kind == "c":
          raise errors.MissingRuleError(
              f"dfdx has no derivative of `{prim.name}` for complex values yet (its rules are "
              "written for real ones). Differentiate with respect to real and imaginary "
              "parts separately (dnp.real, dnp.imag), or file an issue.")
    tape = self.tape
    if tape is not None and _ctx.vjp_rules:
      if prim.linear or prim in primitive_vjps:
        if prim.multiple_results:
          return self._record_multi_node(prim, primals, tangents, params)
        parent = self.parent
        if parent is None and bind_in is _plain_bind_in:  # (debug_nans swaps bind_in)
          if prim in deferred_impls and type(primals[0]) is np.ndarray and \
              primals[0].size >= DEFER_MIN_SIZE:
            ans = deferred_impls[prim](*primals, **params)
            if ans is not None:
              return self._defer(prim, primals, tangents, params, ans, needs)
          ans = prim.impl(*primals, **params) if params else prim.impl(*primals)
        else:
          ans = bind_in(parent, prim, primals, params)
        dtype = ans.dtype
        if dtype.kind not in "fc":
          return ans
        # (the node and the tracer built here rather than by their __init__: the hot path)
        node = _new(_Node)
        eqns = tape.eqns
        node._trace, node.shape, node.dtype, node.prim = tape, ans.shape, dtype, prim
        node.tangents, node.params, node.needs = tangents, params, needs or _needs_of(tangents)
        node.index = len(eqns)
        if prim in _forgets_output:  # (see there)
          node.ans = None
          node.primals = None if prim in _forgets_inputs else primals
        else:
          node.ans, node.primals = ans, primals
        eqns.append(node)
        out = _new(JVPTracer)
        out._trace, out.primal, out.tangent = self, ans, node
        return out
      if prim in primitive_residual_vjps:
        return self._record_residual_node(prim, primals, tangents, params)
    rule = primitive_jvps.get(prim)
    if rule is None:
      raise errors.MissingRuleError(
          f"No JVP rule for primitive '{prim.name}' (needed by differentiation). Register one "
          f"next to its definition in dfdx/_src/ops/, e.g. with ad.defjvp.")
    prev = swap_trace(self.tangent_trace)
    try:
      out, out_tangent = rule(primals, tangents, **params)
    finally:
      swap_trace(prev)
    if prim.multiple_results:
      return [self.wrap(o, t) for o, t in zip(out, out_tangent, strict=True)]
    return self.wrap(out, out_tangent)

  def _defer(self, prim, primals, tangents, params, deferred, needs):
    """Record prim's node with its value `deferred` (see "deferred values")."""
    node = _Node(self.tape, prim, tangents, primals, params, deferred,
                 needs or _needs_of(tangents))
    node.ans = None  # (prim's VJP does not read it: see defdeferred)
    if prim in _forgets_inputs:
      node.primals = None
    self.tape.eqns.append(node)
    tracer = JVPTracer(self, deferred, node)
    _ctx.deferred = weakref.ref(tracer)
    return tracer

  def _settle_deferred(self, prim, args, params):
    """Before binding `prim`: the deferred value fused into it (its traced result), or None
    once the deferred value is computed (if its tracer is alive)."""
    tracer = _ctx.deferred()
    if tracer is not None and len(args) == 1 and args[0] is tracer and \
        tracer._trace is self and prim in _forgets_inputs and prim in _forgets_output and \
        _ctx.vjp_rules:
      ans = tracer.primal.fuse(prim, params)
      if ans is not None:  # (the tracer stays deferred: computed later only if still used)
        node = _Node(self.tape, prim, [tracer.tangent], None, params, ans, _NEEDS_ONE)
        node.ans = None
        self.tape.eqns.append(node)
        return JVPTracer(self, ans, node)
    del tracer
    _materialize_deferred()
    return None

  def _record_multi_node(self, prim, primals, tangents, params):
    ans = bind_in(self.parent, prim, primals, params)
    # (a Python number among the results, which the function computed from Python numbers
    # alone, has no derivative)
    outs = [TapeTracer(self.tape, a.shape, a.dtype)
            if type(a) not in _PYTHON_NUMBERS and a.dtype.kind in "fc" else None for a in ans]
    self.tape.eqns.append(_MultiNode(prim, tangents, primals, params, ans, outs))
    return [self.wrap(a, o) for a, o in zip(ans, outs)]

  def _record_residual_node(self, prim, primals, tangents, params):
    fwd = primitive_residual_vjps[prim][0]
    prev = swap_trace(self.parent)
    try:
      outs, residuals = fwd(primals, **params)
    finally:
      swap_trace(prev)
    vars_out = [TapeTracer(self.tape, o.shape, o.dtype)
                if type(o) not in _PYTHON_NUMBERS and o.dtype.kind in "fc" else None
                for o in outs]
    self.tape.eqns.append(_ResidualNode(prim, tangents, primals, params, residuals, vars_out))
    return [self.wrap(o, v) for o, v in zip(outs, vars_out)]

  def wrap(self, primal, tangent):
    if tangent is None:
      return primal
    if debug_checks:
      _check_tangent(primal, tangent)
    return JVPTracer(self, primal, tangent)


_PYTHON_NUMBERS = frozenset((bool, int, float, complex))


def _check_tangent(primal, tangent):
  p, t = get_aval(primal), get_aval(tangent)
  assert p.shape == t.shape and p.dtype == t.dtype, (
      f"tangent {t} does not match its primal {p}")


# ---- the linear tape ----------------------------------------------------------------------


class TapeTracer(Tracer):
  """A tangent under linearization: a variable of the linear program being recorded.
  `index`, where set: its place on the tape (a node's position; -1 - i for input i)."""
  __slots__ = ("shape", "dtype", "index")

  def __init__(self, trace, shape, dtype):
    self._trace, self.shape, self.dtype = trace, shape, dtype

  aval = property(lambda self: core.shaped_array(self.shape, self.dtype))


def is_linear(x) -> bool:
  """In a transpose rule: whether argument `x` is a linear input (whose cotangent is wanted)
  rather than a constant."""
  return isinstance(x, TapeTracer)


class TapeTrace(Trace):
  """Records operations on its own `TapeTracer`s; forwards all others to its parent."""
  __slots__ = ("eqns",)
  kind = "differentiation (linearize)"

  def __init__(self):
    self.parent, self.alive, self.eqns = core.current_trace(), True, new_tape()

  def process_primitive(self, prim, args, params):
    for a in args:
      if isinstance(a, TapeTracer) and a._trace is self:
        break
    else:
      return bind_in(self.parent, prim, args, params)
    if prim not in primitive_transposes:
      raise errors.MissingRuleError(
          f"No transpose rule for primitive '{prim.name}', which a JVP rule applied to a "
          f"tangent (reverse mode needs it). Register one with ad.deflinear or "
          f"ad.primitive_transposes in dfdx/_src/ops/.")
    out_aval = core.abstract_eval(prim, args, params)
    if prim.multiple_results:
      out = [TapeTracer(self, a.shape, a.dtype) for a in out_aval]
    else:
      out = TapeTracer(self, out_aval.shape, out_aval.dtype)
    self.eqns.append(_Eqn(prim, args, params, out))
    return out


class _Eqn:
  """A linear operation recorded from a JVP rule: `out = prim(*args)`, where the args that
  are this tape's variables are the linear inputs and the others are constants."""
  __slots__ = ("prim", "args", "params", "out")

  def __init__(self, prim, args, params, out):
    self.prim, self.args, self.params, self.out = prim, args, params, out

  def forward(self, env):
    vals = [env.get(id(a)) if isinstance(a, TapeTracer) else a for a in self.args]
    if any(v is None for v in vals):  # a zero input tangent
      vals = [_zeros_for(a) if v is None else v for a, v in zip(self.args, vals)]
    return applied(self.prim).bind(*vals, **self.params)

  def backward(self, ct, env):
    arg_cts = primitive_transposes[self.prim](ct, *self.args, **self.params)
    for a, c in zip(self.args, arg_cts, strict=True):
      if c is not None and isinstance(a, TapeTracer):
        _accumulate(env, a, c)


class _NodeRules:
  """Forward and backward application of a primitive recorded whole (see `_Node`)."""
  __slots__ = ()

  def forward(self, env):
    tangents = [None if t is None else env.get(id(t)) for t in self.tangents]
    if self.primals is None:  # linear in its one argument, its inputs forgotten: the JVP
      t = tangents[0]         # is the primitive itself (see deflinear)
      return _zeros_for(self) if t is None else self.prim.bind(t, **self.params)
    out_tangent = primitive_jvps[self.prim](self.primals, tangents, **self.params)[1]
    if self.prim.multiple_results:
      return [_zeros_for(o) if t is None and o is not None else t
              for o, t in zip(self.out, out_tangent)]
    return _zeros_for(self) if out_tangent is None else out_tangent

  def backward(self, ct, env, plain=False):
    """Add the cotangents of the inputs to `env`, given the output's `ct`. `plain`: no
    transformation is current and neither the zero-absorbing chain rule nor debug_nans is
    on, so the eager rules may run (see eager_vjps)."""
    prim, tangents, primals = self.prim, self.tangents, self.primals
    arg_cts = None
    if plain and (type(ct) is np.ndarray or type(ct) in _FLOAT_SCALARS) and ct.dtype.kind == "f":
      eager = eager_vjps.get(prim)
      if eager is not None:
        needs = self.needs
        if _plain_operands(ct, primals, needs, prim in eager_any_broadcast):
          arg_cts = eager(ct, self.ans, *primals, needs=needs, **self.params)
      elif prim.linear:
        eager = eager_transposes.get(prim)
        if eager is not None:
          arg_cts = eager(ct, *_linear_args(tangents, primals), **self.params)
    if arg_cts is None:
      if prim.linear:
        arg_cts = primitive_transposes[prim](ct, *_linear_args(tangents, primals), **self.params)
      else:
        arg_cts = primitive_vjps[prim](ct, self.ans, *primals, needs=self.needs,
                                       **self.params)
    for t, c in zip(tangents, arg_cts):
      if c is not None and t is not None:
        if debug_checks:
          _check_cotangent(t, c)
        if type(c) is not np.ndarray and isinstance(c, PendingCotangent) and not c.keep_for(t):
          c = c.materialize()
        key = id(t)
        prev = env.get(key)
        env[key] = c if prev is None else _add_cotangents(prev, c)


def _linear_args(tangents, primals):
  """A linear primitive's transpose arguments: its tangent (tape variable) where it has one,
  else its primal (a constant)."""
  if len(tangents) == 1:
    return tangents
  if len(tangents) == 2:
    t0, t1 = tangents
    p0, p1 = primals
    return (p0 if t0 is None else t0, p1 if t1 is None else t1)
  return [p if t is None else t for p, t in zip(primals, tangents)]


class _ResidualNode(_NodeRules):
  """A multiple-output primitive recorded with the residuals of its forward rule; backward
  runs its residual-VJP rule (see `primitive_residual_vjps`)."""
  __slots__ = ("prim", "tangents", "primals", "params", "ans", "out")

  def __init__(self, prim, tangents, primals, params, residuals, out):
    self.prim, self.tangents, self.primals = prim, tangents, primals
    self.params, self.ans, self.out = params, residuals, out

  def backward(self, ct, env):
    needs = _needs_of(self.tangents)
    bwd = primitive_residual_vjps[self.prim][1]
    arg_cts = bwd(self.ans, ct, self.primals, needs, **self.params)
    for t, c in zip(self.tangents, arg_cts):
      if c is not None and t is not None:
        _accumulate(env, t, c)


class _Node(_NodeRules, TapeTracer):
  """A whole primitive recorded for reverse mode, which is also its output's tape variable:
  its tangent inputs (tape variables or None), primal inputs and output (None where no rule
  reads them: see "what a recorded node keeps"). Backward uses its VJP rule (or, for a
  linear primitive, its transpose rule); forward uses its JVP rule."""
  __slots__ = ("prim", "tangents", "primals", "params", "ans", "needs")

  def __init__(self, trace, prim, tangents, primals, params, ans, needs):
    self._trace = trace
    self.shape = ans.shape
    self.dtype = ans.dtype
    self.prim = prim
    self.tangents = tangents
    self.primals = primals
    self.params = params
    self.ans = ans
    self.needs = needs
    self.index = len(trace.eqns)

  out = property(lambda self: self)


class _MultiNode(_NodeRules):
  """A primitive with several outputs recorded whole; `out` holds one tape variable per
  output (None for outputs that are not differentiable)."""
  __slots__ = ("prim", "tangents", "primals", "params", "ans", "out", "needs")

  def __init__(self, prim, tangents, primals, params, ans, out):
    self.prim, self.tangents, self.primals = prim, tangents, primals
    self.params, self.ans, self.out = params, ans, out
    self.needs = _needs_of(tangents)


EXAMPLES_ONE_BY_ONE = 8  # see Linearized._example_by_example


def rows_one_by_one(lin, rows):
  """Whether a pullback of `rows` rows through `lin`, at the top level, would run row by
  row rolled (see Linearized._example_by_example): `jacobian(mode="auto")` then pulls back
  rather than pushes forward, since the push through a tape that long runs interpreted
  through the batching rules (1,000 Euler steps of two pendulums, 3 parameters to 4
  outputs: 0.7 s pushed, 0.3 s pulled back). The answer counts as a sighting of the tape."""
  return (_ctx.trace is None and _rows_may_roll(lin, rows)
          and reverse_cache.rolled_ready(lin) is not None)


def _rows_may_roll(lin, rows):
  """Whether `rows` plain passes over `lin`'s tape may run rolled, one by one: a few rows
  of a tape too long to compile whole, with no debugging or zero-absorbing chain rule."""
  return (rows <= EXAMPLES_ONE_BY_ONE and len(lin.eqns) >= reverse_cache.ROLL_MIN_NODES
          and reverse_cache.enabled and not debug_checks and not _ctx.zero_absorbing
          and bind_in is _plain_bind_in)


class Linearized:
  """A linear function recorded on a tape: `forward` applies it, `transpose` its transpose.

  Both run with whatever trace is current when they are called, so they are differentiable
  and batchable themselves.
  """
  __slots__ = ("eqns", "in_vars", "out_vars")

  def __init__(self, eqns, in_vars, out_vars):
    self.eqns, self.in_vars, self.out_vars = eqns, in_vars, out_vars

  def forward(self, tangents):
    """Tangents of the outputs given tangents of the inputs (`None` = zero)."""
    traces = self._vmaps_around()
    if traces is not None:  # (jacfwd's pushforward: see reverse_cache, "under vmap")
      out = reverse_cache.batched(self, tangents, traces, _Node, forward=True)
      if out is not None:
        return out
    return self._forward(tangents)

  def _example_by_example(self, cotangents):
    """The reverse pass under a vmap that batches only `cotangents`, as one plain pass per
    example; None where that does not apply. A tape too long to compile whole (a Python
    loop's: jacrev of a simulation) then runs rolled (see reverse_cache), where under the
    vmap every node would run interpreted through its batching rule (a pendulum's 1,000
    Euler steps, 22,000 nodes: jacrev of its 4 outputs 0.79 to 0.46 s, once the blocks are
    compiled at the second call). Only for a few examples (`EXAMPLES_ONE_BY_ONE`: each
    costs a pass), and only for a tape recorded outside any transformation (its residuals
    are then the same for every example)."""
    from dfdx._src.batching import BatchTrace, BatchTracer
    trace = _ctx.trace
    if (type(trace) is not BatchTrace or trace.parent is not None
            or not _rows_may_roll(self, trace.axis_size)):
      return None
    tape = next((e._trace for e in self.eqns if type(e) is _Node), None)
    if tape is None or tape.parent is not None:
      return None
    if any(isinstance(c, Tracer) and (type(c) is not BatchTracer or c._trace is not trace)
           for c in cotangents):
      return None
    # (a plain pass interpreted costs about what the batched one does per row: only with
    # the blocks compiled, and a call that meets them first counts as their first sighting,
    # so that the next call compiles them, as for a gradient)
    found = reverse_cache.rolled_ready(self)
    if found is None:
      return None
    results = []
    prev = core.swap_trace(None)
    try:
      for i in range(trace.axis_size):
        example = [(c.val if c.bdim is None else np.take(c.val, i, axis=c.bdim))
                   if type(c) is BatchTracer else c for c in cotangents]
        in_cts = reverse_cache.rolled(self, example, found)
        results.append(self._interpret(example, True) if in_cts is None else in_cts)
    finally:
      core.swap_trace(prev)
    out = []
    for column in zip(*results):
      first = next((c for c in column if c is not None), None)
      if first is None:
        out.append(None)
        continue
      first = np.asarray(materialized(first))
      out.append(BatchTracer(trace, np.stack(
          [np.zeros_like(first) if c is None else materialized(c) for c in column]), 0))
    return out

  def _vmaps_around(self):
    """The vmaps around a pass over this tape that may run compiled (see reverse_cache,
    "reverse passes under vmap"): a list of traces, or None."""
    if reverse_cache.enabled and not debug_checks and not _ctx.zero_absorbing and \
        bind_in is _plain_bind_in and 0 < len(self.eqns) <= reverse_cache.MAX_NODES:
      return reverse_cache.vmaps_around(_ctx.trace)
    return None

  def _forward(self, tangents):
    env = {id(v): t for v, t in zip(self.in_vars, tangents, strict=True)}
    frees = self._last_reads()
    for eqn, free in zip(self.eqns, frees):
      result = eqn.forward(env)
      if eqn.prim.multiple_results:
        env.update((id(o), r) for o, r in zip(eqn.out, result, strict=True) if o is not None)
      else:
        env[id(eqn.out)] = result
      for key in free:  # (a tangent no later equation reads: its memory goes now)
        env.pop(key, None)
    return [env.get(id(v)) if isinstance(v, TapeTracer) else v for v in self.out_vars]

  def _last_reads(self):
    """For each equation, the tangents (ids in `_forward`'s env) that it reads last and that
    are no output."""
    last = {}
    for i, eqn in enumerate(self.eqns):
      reads = eqn.args if type(eqn) is _Eqn else eqn.tangents
      for a in reads:
        if isinstance(a, TapeTracer):
          last[id(a)] = i
    for v in self.out_vars:
      last.pop(id(v), None)
    frees = [[] for _ in self.eqns]
    for key, i in last.items():
      frees[i].append(key)
    return frees

  def transpose(self, cotangents, last=False):
    """Cotangents of the inputs given cotangents of the outputs (`None` = zero). `last`: the
    caller drops this tape after the pass, and nothing reads its values again (a compiled
    pass may then write into residuals no one else holds: see reverse_cache)."""
    with paused_collector():
      return self._transpose(cotangents, last)

  def _transpose(self, cotangents, last=False):
    if _ctx.trace is not None:
      in_cts = self._example_by_example(cotangents)
      if in_cts is not None:
        return in_cts
    plain = (_ctx.trace is None and not _ctx.zero_absorbing
             and bind_in is _plain_bind_in)
    if plain and reverse_cache.enabled and not debug_checks and \
        0 < len(self.eqns) <= reverse_cache.MAX_NODES:
      sig = reverse_cache.signature(self.eqns, self.in_vars, self.out_vars, cotangents, _Node)
      if sig is not None:  # a tape of the kind compiled (see reverse_cache)
        flat, residuals = sig
        found = reverse_cache.lookup(flat, len(self.eqns))
        if type(found) is reverse_cache.Entry:
          return reverse_cache.interpret(found, self, residuals, cotangents, plain)
        if found is not None:
          return reverse_cache.run(found, residuals, len(self.in_vars),
                                   self if last else None, cotangents)
    elif plain and reverse_cache.enabled and not debug_checks and \
        len(self.eqns) >= reverse_cache.ROLL_MIN_NODES:
      in_cts = reverse_cache.rolled(self, cotangents)
      if in_cts is not None:  # (a loop's tape: see reverse_cache, "rolled reverse passes")
        return in_cts
    elif not plain:
      traces = self._vmaps_around()
      if traces is not None:  # (see reverse_cache, "reverse passes under vmap")
        in_cts = reverse_cache.batched(self, cotangents, traces, _Node)
        if in_cts is not None:
          return in_cts
    return self._interpret(cotangents, plain)

  def _interpret(self, cotangents, plain):
    env = self.output_env(cotangents)
    self.interpret_nodes(env, len(self.eqns), 0, plain)
    return [materialized(env.get(id(v))) for v in self.in_vars]

  def output_env(self, cotangents):
    """The reverse pass's table of cotangents (id(var) -> cotangent) at its start."""
    env: dict = {}
    for v, ct in zip(self.out_vars, cotangents, strict=True):
      if ct is not None and isinstance(v, TapeTracer):
        _accumulate(env, v, ct)
    return env

  def interpret_nodes(self, env, stop, start, plain):
    """Run the nodes eqns[start:stop] backward, the last first, on the table `env`."""
    eqns = self.eqns
    for i in range(stop - 1, start - 1, -1):
      eqn = eqns[i]
      if type(eqn) is _Node:
        ct = env.pop(id(eqn), None)
        if ct is not None:
          if type(ct) is not np.ndarray and isinstance(ct, PendingCotangent) and not (
              eqn.prim in summing_transposes and hasattr(ct, "sum_to_shape")):
            ct = ct.materialize()
          eqn.backward(ct, env, plain)
        continue
      out = eqn.out
      if eqn.prim.multiple_results:
        cts = [None if o is None else materialized(env.pop(id(o), None)) for o in out]
        if all(c is None for c in cts):
          continue
        ct = [_zeros_for(o) if c is None and o is not None else c for o, c in zip(out, cts)]
      else:
        ct = materialized(env.pop(id(out), None))
        if ct is None:
          continue
      eqn.backward(ct, env)


def _zeros_for(x):
  return tangent_ops.zeros(x.aval)


class PendingCotangent:
  """A cotangent that a transpose rule returns in a form that is cheaper to sum than an array
  (ops/shape.py: the cotangent of an array from those of its slices; ops/contraction.py: a
  product not yet computed). The reverse pass sums contributions to one variable with
  `_add_cotangents` and materializes the sum (an array or tracer, made with primitives)
  before any rule or caller sees it, except the rules of `summing_transposes`. Subclasses
  define `aval`, `add(ct)` (self + ct), `radd(ct)` (ct + self, ct not pending) and
  `materialize()`; one that also defines `sum_to_shape(shape)` (see ops/shape.py's
  function of that name) reaches the rules of `summing_transposes` unmaterialized.
  `keep_for(var)` says whether it is worth keeping pending as `var`'s cotangent until var's
  turn comes (what it holds stays alive until then)."""
  __slots__ = ()

  def keep_for(self, var):
    return True


# Primitives whose transpose rules take a PendingCotangent with a `sum_to_shape` method: the
# transposes of broadcasting (add, sub, broadcast_to), which sum their cotangent to each
# operand's shape. A product summed over one of its factors' free axes is the product of
# that factor's sum, so `W @ (x - mu)` costs one small product for mu's cotangent instead
# of a large one and a sum. Registered by ops/ (a rule returns the cotangent unchanged or
# sums it with shape.sum_to_shape, which materializes what cannot be summed first).
summing_transposes: set = set()


def sums_its_cotangent(var):
  """Whether `var` is the output of a primitive whose transpose may sum its cotangent (see
  summing_transposes), so that a pending cotangent can be kept for it."""
  return type(var) is _Node and var.prim in summing_transposes


def _add_cotangents(prev, ct):
  """prev + ct, for contributions to one cotangent (in the order they arrive)."""
  if (type(prev) is np.ndarray and type(ct) is np.ndarray and _ctx.trace is None
          and bind_in is _plain_bind_in and prev.shape == ct.shape and prev.dtype == ct.dtype):
    return np.add(prev, ct)  # what tangent_ops.add computes (see eager_vjps)
  if isinstance(prev, PendingCotangent):
    return prev.add(ct)
  if isinstance(ct, PendingCotangent):
    return ct.radd(prev)
  return tangent_ops.add(prev, ct)


def materialized(ct):
  return ct.materialize() if isinstance(ct, PendingCotangent) else ct


def _check_cotangent(var, ct):
  got = ct.aval if isinstance(ct, PendingCotangent) else get_aval(ct)
  assert got.shape == var.shape, f"cotangent {got} does not match its variable {var.aval}"


def _accumulate(env, var, ct):
  if debug_checks:
    _check_cotangent(var, ct)
  key = id(var)
  prev = env.get(key)
  env[key] = ct if prev is None else _add_cotangents(prev, ct)


# ---- transformations on flat lists ----------------------------------------------------------


def jvp_flat(fun, primals, tangents):
  """Run `fun(*primals)` in forward mode. `fun` maps a flat list to a flat list; tangents of
  `None` are zero. Returns (primals_out, tangents_out), with `None` for zero tangents."""
  trace = JVPTrace()
  ins = [p if t is None else JVPTracer(trace, p, t) for p, t in zip(primals, tangents)]
  return _unzip_tracers(trace, state.run_in_trace(trace, fun, ins, _primal_of))


def _primal_of(tracer):
  return _primal(tracer)


def _unzip_tracers(trace, outs):
  primals_out, tangents_out = [], []
  for o in outs:
    if type(o) is JVPTracer and o._trace is trace:
      primals_out.append(_primal(o))
      tangents_out.append(o.tangent)
    else:
      primals_out.append(o)
      tangents_out.append(None)
  return primals_out, tangents_out


class SplitTrace(JVPTrace):
  """Forward mode in the split t of a spectrum (see ops/gaps.py): its tangents are rates in
  t at t = 0, and primitives with a rule in `split_rules` use it."""
  __slots__ = ()
  kind = "split"

  def process_primitive(self, prim, args, params):
    rule = split_rules.get(prim)
    if rule is None or not any(type(a) is JVPTracer and a._trace is self for a in args):
      return super().process_primitive(prim, args, params)
    primals = [a.primal if type(a) is JVPTracer and a._trace is self else a for a in args]
    tangents = [a.tangent if type(a) is JVPTracer and a._trace is self else None for a in args]
    prev = swap_trace(self.parent)
    try:
      out, tangent = rule(primals, tangents, **params)
    finally:
      swap_trace(prev)
    return self.wrap(out, tangent)


def split_value(x, rate):
  """In a JVP rule: `x` (a spectrum), moving at `rate()` (an array of x's shape) in the split
  t while a derivative is computed with the spectrum split; `x` itself otherwise. Only
  concrete values split, and batches of them (vmap of a derivative)."""
  split_trace = _ctx.split_trace
  if split_trace is None or not split_trace.alive:
    return x
  if type(x) is np.ndarray:
    return JVPTracer(split_trace, x, rate())
  from dfdx._src.batching import BatchTracer
  if type(x) is BatchTracer and type(x.val) is np.ndarray:
    val = x.val
    moving = np.moveaxis(np.broadcast_to(rate(), (val.shape[x.bdim],) + x.shape), 0, x.bdim)
    return BatchTracer(x._trace, JVPTracer(split_trace, val, moving), x.bdim)
  return x


def run_split(run, like):
  """`run()` with every spectrum split (see ops/gaps.py), and its result at t = 0: the
  leaves are shaped like those of `like` (the first run's result: NumPy scalars stay
  scalars)."""
  from dfdx._src.tree import tree_flatten, tree_leaves, tree_unflatten
  ctx = _ctx
  trace = ctx.split_trace = SplitTrace()
  try:
    out = state.run_in_trace(trace, run, (), _primal_of)
  finally:
    ctx.split_trace = None
  leaves, tree = tree_flatten(out)
  like_leaves = tree_leaves(like)
  if len(like_leaves) != len(leaves):
    like_leaves = [None] * len(leaves)
  values = []
  for leaf, like_leaf in zip(leaves, like_leaves):
    if type(leaf) is JVPTracer and leaf._trace is trace:
      leaf = leaf.primal
      if isinstance(like_leaf, np.generic) and isinstance(leaf, np.ndarray):
        leaf = leaf[()]
      elif isinstance(leaf, np.ndarray) and not leaf.flags.writeable:
        leaf = leaf.copy()
    values.append(leaf)
  return tree_unflatten(tree, values)


def linearize_flat(fun, primals):
  """Run `fun(*primals)` once, recording its linearization. Returns (primals_out, Linearized);
  a zero output tangent is `None` in `Linearized.out_vars`."""
  tape = TapeTrace()
  trace = JVPTrace(tape=tape)
  in_vars = [TapeTracer(tape, p.shape, p.dtype) for p in primals]
  for i, v in enumerate(in_vars):
    v.index = -1 - i
  ins = [JVPTracer(trace, p, v) for p, v in zip(primals, in_vars)]
  try:  # the trace ends; the tape stays alive: transpose rules read its variables' avals
    with paused_collector():
      outs = state.run_in_trace(trace, fun, ins, _primal_of)
  finally:
    _materialize_deferred()  # (a value the function kept somewhere: computed, as in NumPy)
    eqns, tape.eqns = tape.eqns, None  # no reference cycle tape -> nodes -> tape: memory is
  primals_out, tangents_out = _unzip_tracers(trace, outs)  # freed as soon as it is unused
  for t in tangents_out:
    assert t is None or isinstance(t, TapeTracer), t
  return primals_out, Linearized(eqns, in_vars, tangents_out)


def strip_tracers(trace, tree_leaves):
  """Primal values of `trace`'s tracers among `tree_leaves` (for auxiliary outputs)."""
  return [_primal(x) if type(x) is JVPTracer and x._trace is trace else x for x in tree_leaves]


# ---- rule builders ------------------------------------------------------------------------


def defjvp(prim, *rules):
  """JVP from one rule per positional argument: `rule(x_dot, *primals, **params)` returns that
  argument's contribution to the output tangent; `None` marks an argument it does not depend
  on. Contributions are summed and broadcast to the output's shape."""
  def jvp(primals, tangents, **params):
    ans = prim.bind(*primals, **params)
    return ans, _sum_contributions(rules, tangents, primals, params, ans, None)
  primitive_jvps[prim] = jvp
  jvp_contributions[prim] = (rules, False)


def defjvp2(prim, *rules):
  """Like `defjvp`, but each rule also receives the output: `rule(x_dot, ans, *primals)`."""
  def jvp(primals, tangents, **params):
    ans = prim.bind(*primals, **params)
    return ans, _sum_contributions(rules, tangents, primals, params, ans, ans)
  primitive_jvps[prim] = jvp
  jvp_contributions[prim] = (rules, True)


# prim -> (its defjvp or defjvp2 rules, whether they read the output): the per-argument
# contributions, from which ops/elementwise.py derives elementwise primitives' VJP rules.
jvp_contributions: dict = {}


def _sum_contributions(rules, tangents, primals, params, ans, ans_arg):
  if len(tangents) == 1 and ans_arg is None:  # unary ops, unrolled: the same as the loop
    t, rule = tangents[0], rules[0]
    if t is None or rule is None:
      return None
    out = rule(t, *primals, **params)
    return None if out is None else match_primal(out, ans)
  out = None
  for rule, t in zip(rules, tangents):
    if t is None or rule is None:
      continue
    term = rule(t, *primals, **params) if ans_arg is None else rule(t, ans_arg, *primals, **params)
    if term is not None:
      out = term if out is None else tangent_ops.add(out, term)
  if out is None:
    return None
  return match_primal(out, ans)


def match_primal(tangent, primal):
  """Broadcast and cast a tangent to its primal's shape and dtype (after broadcasting ops)."""
  shape = core.shape_of(primal)
  if tangent.shape != shape:
    tangent = tangent_ops.broadcast_to(tangent, shape)
  dtype = primal.dtype
  if tangent.dtype != dtype:
    if dtype.kind not in "fc":
      return None
    tangent = tangent_ops.convert(tangent, dtype)
  return tangent


# ---- what a recorded node keeps -------------------------------------------------------------
# A node of the tape keeps the arrays its reverse rule reads until the reverse pass reaches
# it. A linear primitive's transpose never reads its output, nor does a VJP rule registered
# with `vjp_ignores_output`; a primitive linear in its one argument (`deflinear`) needs
# neither its input (its transpose reads the shape of its tangent, and its JVP is itself) nor
# its output. Such nodes forget them, so that a temporary (the squares in `sum(x ** 2,
# axis)`) is freed once the next operation has used it, as it is without differentiation.
_forgets_output: set = set()
_forgets_inputs: set = set()


def vjp_ignores_output(prim):
  """Declare that prim's VJP rules (general and eager) do not read `ans`: its recorded nodes
  do not keep the output alive."""
  _forgets_output.add(prim)


def deflinear(prim, transpose_rule):
  """A primitive linear in its (single) array argument: its JVP applies it to the tangent.
  `transpose_rule(ct, x, **params)` returns `[x_ct]`, reading only x's shape and dtype."""
  def jvp(primals, tangents, **params):
    return prim.bind(*primals, **params), prim.bind(*tangents, **params)
  primitive_jvps[prim] = jvp
  primitive_transposes[prim] = transpose_rule
  prim.linear = True
  _forgets_output.add(prim)
  _forgets_inputs.add(prim)


def deflinear_rules(prim, jvp_rule, transpose_rule):
  """A primitive linear in its array arguments jointly (add, concatenate, select in its
  branches, scatters) whose JVP needs a rule of its own (to handle zero tangents, or a
  non-differentiable argument): registers both rules and marks the primitive linear."""
  primitive_jvps[prim] = jvp_rule
  primitive_transposes[prim] = transpose_rule
  prim.linear = True
  _forgets_output.add(prim)


def deftranspose(prim, transpose_rule):
  """Mark a primitive whose JVP is already registered as linear, with this transpose rule."""
  primitive_transposes[prim] = transpose_rule
  prim.linear = True
  _forgets_output.add(prim)


def defbilinear(prim, lhs_transpose, rhs_transpose):
  """A primitive linear in each of its two arguments separately (mul, dot): its JVP is
  `prim(x_dot, y) + prim(x, y_dot)`. `lhs_transpose(ct, x, y)` gives x's cotangent with y
  constant; `rhs_transpose(ct, x, y)` gives y's with x constant."""
  def product(x, y, **params):  # (the zero-absorbing chain rule's, while that is on)
    return applied(prim).bind(x, y, **params)
  defjvp(prim, lambda x_dot, x, y, **params: product(x_dot, y, **params),
         lambda y_dot, x, y, **params: product(x, y_dot, **params))

  def transpose(ct, x, y, **params):
    return [lhs_transpose(ct, x, y, **params) if is_linear(x) else None,
            rhs_transpose(ct, x, y, **params) if is_linear(y) else None]
  primitive_transposes[prim] = transpose


def defvjp(prim, rule):
  """A direct VJP rule, used by reverse mode instead of transposing the JVP rule (an
  optimization where measured). `rule(ct, ans, *primals, needs, **params)` returns one
  cotangent per argument; `needs[i]` says whether argument i's is wanted (else None)."""
  primitive_vjps[prim] = rule


# ---- the reverse pass of eager code --------------------------------------------------------
# Run on NumPy arrays (no transformation current; the zero-absorbing chain rule and
# debug_nans, whose checked binds would be skipped, off), a VJP rule's primitives each go
# through bind and their impl's checks: on small arrays that dispatch costs more than the
# arithmetic. For an operation whose operands are all float arrays (or NumPy scalars) of its
# cotangent's dtype, or Python numbers not differentiated (nothing to convert or conjugate),
# `eager_vjps[prim]` computes the cotangents with the NumPy calls those primitives' impls
# make: the same values without the dispatch (the LSTM gradient: 10% faster). Operands of
# other shapes than the cotangent's (broadcast ones) take them only below
# EAGER_BROADCAST_SIZE, where the impls' layout rules (ops/elementwise.py) do not apply; a
# rule sums such an operand's cotangent to its shape as the general rule does. The rules of
# add and sub compute nothing from their operands (their cotangents are the cotangent, summed
# where an operand is broadcast, by the impls the general rules bind), so they take
# broadcasts of any size (`eager_any_broadcast`). Linear
# primitives' transposes have the same kind of rule, `eager_transposes[prim]`, for a
# float cotangent. tests/test_eager_vjps.py checks every rule against the general one, bit
# for bit.
eager_vjps: dict = {}
eager_transposes: dict = {}
eager_any_broadcast: set = set()
EAGER_BROADCAST_SIZE = 1 << 12


def defvjp_eager(prim, rule, *, any_broadcast=False):
  """`rule(ct, ans, *primals, needs, **params)` (see above) returns what prim's VJP rule, or
  its transpose for a linear primitive, returns for them. `any_broadcast`: the rule computes
  no values from the operands, so broadcast operands of any size may take it."""
  eager_vjps[prim] = rule
  if any_broadcast:
    eager_any_broadcast.add(prim)


def deftranspose_eager(prim, rule):
  """`rule(ct, *args, **params)`, with a NumPy float cotangent (see above), returns what
  prim's transpose rule returns for it."""
  eager_transposes[prim] = rule


_FLOAT_SCALARS = (np.float64, np.float32)


def _plain_operands(ct, primals, needs, any_broadcast=False):
  """Whether every primal is a NumPy float array (or scalar) of the dtype of `ct` (a NumPy
  float array or scalar), of ct's shape or (below EAGER_BROADCAST_SIZE, or at any size with
  `any_broadcast`) broadcast to it; a primal whose cotangent is not needed may also be a
  Python number."""
  shape, dtype = ct.shape, ct.dtype
  large = not any_broadcast and ct.size >= EAGER_BROADCAST_SIZE
  for p, need in zip(primals, needs):
    kind = type(p)
    if kind is np.ndarray or kind in _FLOAT_SCALARS:
      if (p.dtype is not dtype and p.dtype != dtype) or (large and p.shape != shape):
        return False
    elif need or (kind is not float and kind is not int):
      return False
  return True


def defjvp_zero(prim):
  """A primitive whose output does not change to first order with its inputs (floor, sign,
  comparisons, argmax): its tangent is zero, which is not an error."""
  def jvp(primals, tangents, **params):
    out = prim.bind(*primals, **params)
    return out, ([None] * len(out) if prim.multiple_results else None)
  primitive_jvps[prim] = jvp
