"""Custom derivative rules and rematerialization: `custom_jvp`, `custom_vjp`, `checkpoint`.

Owns the primitives `custom_jvp_call`, `custom_vjp_call` and `checkpoint_call`. Called under
a transformation, the wrapped function (and the user's rules) are staged to programs; values
of enclosing transformations that they close over become extra inputs of the primitive
(closure conversion, done here so users never need it). The custom rule gives the
derivative with respect to the arguments; the derivative with respect to closed-over values
comes from differentiating the function's program. With no transformation active, the
function is simply called.

The function is traced at every call under a transformation, never cached across calls: a
program kept from an earlier call would hold the values its function read then (a global,
a model's weights), and give derivatives at stale values.

Beyond JAX: a `custom_vjp` function also works in forward mode (jvp, jacfwd, hessian): its
backward rule is linear in the cotangent, so its transpose gives the forward derivative.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from dfdx._src import ad, batching, core, errors, jet
from dfdx._src.core import Tracer
from dfdx._src.core import describe_value as _describe
from dfdx._src.ir import eval_program, pp_param
from dfdx._src.numpy.util import weakly_typed
from dfdx._src.staging import make_program, make_program_of_call
from dfdx._src.tree import tree_flatten, tree_unflatten


# ---- shared plumbing ------------------------------------------------------------------------


def _leaf_aval(x):
  if isinstance(x, Tracer):
    return x.aval
  if isinstance(x, (np.ndarray, np.generic, bool, int, float, complex)):
    return core.get_aval(x)
  raise errors.InvalidInputError(
      f"custom derivative rules: an argument leaf is a {type(x).__name__} ({x!r:.60}), not an "
      "array. Pass non-array arguments through nondiff_argnums.")


def _split_static(args, nondiff_argnums):
  nums = {i % len(args) for i in nondiff_argnums} if args else set()
  static = tuple(args[i] for i in sorted(nums))
  dynamic = tuple(a for i, a in enumerate(args) if i not in nums)

  def merge(dyn):
    it = iter(dyn)
    return [args[i] if i in nums else next(it) for i in range(len(args))]
  return static, dynamic, merge


def _add(a, b):
  if a is None:
    return b
  return a if b is None else ad.tangent_ops.add(a, b)


def _zeros_like(x):
  return np.zeros(core.shape_of(x), core.get_aval(x).dtype)


def _instantiate(tangents, primals):
  return [_zeros_like(p) if t is None else t for p, t in zip(primals, tangents)]


# ---- what a rule returned, for error messages -------------------------------------------------
_ARRAY_TYPES = (Tracer, np.ndarray, np.generic)
_SCALAR_TYPES = (bool, int, float, complex)


def _is_array(x):
  return isinstance(x, _ARRAY_TYPES + _SCALAR_TYPES)


def _describe_avals(avals):
  """The function's outputs as expected of a rule: `float64[3]`, or `(float64[], int64[2])`."""
  shown = [a.str_short() for a in avals]
  return shown[0] if len(shown) == 1 else f"({', '.join(shown)})"


def _broadcasts_to(shape, target):
  """Whether an array of `shape` broadcasts to `target` (without growing it)."""
  try:
    return np.broadcast_shapes(shape, target) == target
  except ValueError:
    return False


def _rule_name(rule):
  name = getattr(rule, "__name__", None)
  return f"`{name}`" if name else f"(a {type(rule).__name__})"


def _check_output_like_function(where, what, out, out_leaves, fun_avals, example):
  """A rule's output (custom_jvp's rule's first element, custom_vjp's fwd's) must have the
  function's output leaves, shapes and dtypes aside (a weak Python number may stand for an
  array of the same shape). `where` names the rule, `what` the output in the message."""
  shapes = [core.shape_of(o) if _is_array(o) else None for o in out_leaves]
  if len(out_leaves) == len(fun_avals) and all(
      s is not None and tuple(s) == tuple(a.shape) for s, a in zip(shapes, fun_avals)):
    return
  raise errors.InvalidInputError(
      f"{where} returned as {what} {_describe(out)}, but the function returns "
      f"{_describe_avals(fun_avals)}. {what[0].upper() + what[1:]} must be the function's "
      f"output at the primals, with the same structure, shapes and dtypes (e.g. {example}).")


def _closure_jvp(program, args, lifted, lifted_tangents):
  """Outputs and their tangents from the closed-over values alone (args held fixed)."""
  if all(t is None for t in lifted_tangents):
    return None, None
  return ad.jvp_flat(lambda *ls: eval_program(program, *args, *ls), list(lifted),
                     list(lifted_tangents))


def _closure_vjp(program, args, lifted, cts, needs):
  """Cotangents of the closed-over values (args held fixed)."""
  if not any(needs):
    return [None] * len(lifted)
  _, lin = ad.linearize_flat(lambda *ls: eval_program(program, *args, *ls), list(lifted))
  return lin.transpose(list(cts))


def _front_aval(aval, bdim, axis_size):
  """The aval of a value batched along `bdim`, with the batch axis moved first."""
  if bdim is batching.NOT_MAPPED:
    return aval
  shape = aval.shape[:bdim] + aval.shape[bdim + 1:]
  return core.ShapedArray((axis_size,) + shape, aval.dtype)


def _move_to_front(vals, dims):
  return [v if d is batching.NOT_MAPPED else batching.moveaxis(v, d, 0)
          for v, d in zip(vals, dims)]


def _batched_program(program, axis_size, avals, dims, python_numbers=True):
  """A program computing `program` over a batch: inputs with a dim are batched along axis 0
  (`avals` are their batched avals), outputs are batched along axis 0, but, with
  `python_numbers`, for a Python number that no batched input reaches (it stays one, as it
  is in the function). Returns (program, the outputs' dims)."""
  in_dims = [batching.NOT_MAPPED if d is batching.NOT_MAPPED else 0 for d in dims]
  store = {}

  def flat(*xs):
    outs, out_dims = batching.vmap_flat(lambda *ys: eval_program(program, *ys), axis_size,
                                        list(xs), in_dims)
    store["dims"] = [d if python_numbers and d is batching.NOT_MAPPED and weakly_typed(o)
                     else 0 for o, d in zip(outs, out_dims)]
    return [o if d is batching.NOT_MAPPED else batching.bdim_at_front(o, od, axis_size)
            for o, od, d in zip(outs, out_dims, store["dims"])]
  batched, lifted = make_program(flat, list(avals), record_source=False)
  assert not lifted, lifted
  return batched, store["dims"]


def _batch_inputs(axis_size, vals, dims):
  moved = _move_to_front(vals, dims)
  return moved, [core.get_aval(v) for v in moved]


class _Call:
  """One call of a custom_jvp or custom_vjp function, split for staging: the static and
  dynamic arguments, the dynamic leaves with their avals, and `flat_fun`, the primal
  function on the leaves (it records the output tree in `store`)."""

  def __init__(self, custom, args):
    self.static, self.dynamic, self.merge = _split_static(args, custom.nondiff_argnums)
    self.leaves, self.in_tree = tree_flatten(self.dynamic)
    self.avals = [_leaf_aval(x) for x in self.leaves]
    self.store = {}

  def args_of(self, xs):
    return self.merge(tree_unflatten(self.in_tree, xs))

  def flat_fun(self, fun):
    def flat(*xs):
      out_leaves, self.store["out_tree"] = tree_flatten(fun(*self.args_of(xs)))
      return out_leaves
    return flat


def _start_call(custom, args, kwargs, has_rules, how_to_define):
  """The `_Call` of a custom function, or None when it just runs its primal function (no
  traced argument, or inside its own rules). Checks the call and that the rules exist."""
  kind = type(custom).__name__
  if kwargs:
    raise TypeError(f"{kind} function {custom.__name__} takes positional arguments only; "
                    "got keywords " + ", ".join(kwargs))
  if not has_rules:
    raise TypeError(f"{kind} function {custom.__name__} has no rule: {how_to_define}")
  if custom._staging_rules:
    return None
  if core.current_trace() is None and not any(
      isinstance(x, Tracer) for x in tree_flatten(args)[0]):
    return None
  return _Call(custom, args)


def _leaves_at_types(custom, args, static, in_tree, avals):
  """A call of `custom` met while its rules for a call at (`static`, `in_tree`, `avals`) are
  staged: its dynamic leaves where it is at those types (the same static arguments, tree,
  shapes and dtypes), None where it is at others, False where a leaf is not an array."""
  call_static, dynamic, _ = _split_static(args, custom.nondiff_argnums)
  leaves, tree = tree_flatten(dynamic)
  try:
    call_avals = [_leaf_aval(x) for x in leaves]
  except errors.DfdxError:
    return False
  if tree == in_tree and len(call_static) == len(static) and all(
      a is b for a, b in zip(call_static, static)) and [
      (a.shape, a.dtype) for a in call_avals] == [(a.shape, a.dtype) for a in avals]:
    return leaves
  return None


def _primal_inside(custom):
  """Decorator: while `fun` (a rule of `custom`) runs, calls to `custom` compute its primal
  (rules usually call the function itself: `return f(x), ...`)."""
  def decorate(fun):
    @functools.wraps(fun)
    def wrapped(*xs):
      prev, custom._staging_rules = custom._staging_rules, True
      try:
        return fun(*xs)
      finally:
        custom._staging_rules = prev
    return wrapped
  return decorate


# ---- custom_jvp -----------------------------------------------------------------------------
custom_jvp_call_p = core.primitive("custom_jvp_call", multiple_results=True)
core.keeps_weak_types.add(custom_jvp_call_p)  # (it gives what the function gives)
ad.complex_rules.add(custom_jvp_call_p)  # the user's rules, or those of its equations


def _custom_jvp_impl(*vals, fun, jvp, n_args, n_lifted):
  return eval_program(fun, *vals[:n_args + n_lifted])


def _custom_jvp_abstract_eval(*avals, fun, jvp, n_args, n_lifted):
  return fun.out_avals


_making = threading.RLock()


class _LazyProgram:
  """A custom call's rule program (custom_jvp's jvp, custom_vjp's fwd and bwd), known later
  or made on first use: the rule of a call staged inside its own rule is the program being
  staged (filled in when it is done), and a batched call's rule is batched only if the call
  is differentiated. So a rule that calls its function gets the rule again at the next
  order, one level at a time, as the call itself would."""
  __slots__ = ("program", "make", "used", "printing", "name")

  def __init__(self, make=None, name=None):
    self.program, self.make, self.used, self.printing = None, make, False, False
    self.name = name  # (the custom function and its rule, for error messages)

  def get(self):
    if self.program is None:
      with _making:  # (one thread makes it; another waits for it)
        if self.program is None:
          self.program, self.make = self.make(), None
    return self.program

  def __repr__(self):
    if self.program is None:
      return "<rule program>"
    if self.printing:  # (a call inside the rule, whose rule is this one)
      return "<the rule program above>"
    self.printing = True
    try:
      return pp_param(self.program)  # (as a program param is printed)
    finally:
      self.printing = False


def _program_of(p):
  return p.get() if isinstance(p, _LazyProgram) else p


def _custom_jvp_jvp(primals, tangents, *, fun, jvp, n_args, n_lifted):
  args, lifted = primals[:n_args], primals[n_args:n_args + n_lifted]
  jvp_lifted = primals[n_args + n_lifted:]
  n_out = len(fun.outs)
  outs, out_tangents = None, [None] * n_out
  if any(t is not None for t in tangents[:n_args]):
    result = eval_program(_program_of(jvp), *args, *_instantiate(tangents[:n_args], args),
                          *jvp_lifted)
    outs, out_tangents = result[:n_out], result[n_out:]
  closure_outs, closure_tangents = _closure_jvp(fun, args, lifted,
                                                tangents[n_args:n_args + n_lifted])
  if closure_tangents is not None:
    outs = closure_outs if outs is None else outs
    out_tangents = [_add(a, b) for a, b in zip(out_tangents, closure_tangents)]
  if outs is None:
    outs = eval_program(fun, *args, *lifted)
  if any(ad.is_linear(t) for t in tangents if t is not None):  # (reverse mode's tape)
    out_tangents = [_constant_tangent(t, getattr(jvp, "name", None)) for t in out_tangents]
  # (a Python number among the results comes from Python numbers alone: no derivative)
  return outs, [None if t is None or weakly_typed(o) else ad.match_primal(t, o)
                for o, t in zip(outs, out_tangents)]


def _constant_tangent(t, name=None):
  """A rule's tangent output that does not depend on the tangents (`np.zeros(...)`, where
  the output is locally constant): zero, as the rule is linear in the tangents; a concrete
  nonzero one is an error in the rule. `name` names the function and its rule."""
  if t is None or ad.is_linear(t):
    return t
  try:
    value = t.concrete_value("custom_jvp: a tangent output") if isinstance(t, Tracer) else t
  except errors.ConcretizationError:
    return None
  if np.any(np.asarray(value) != 0):
    raise errors.InvalidInputError(
        f"{name or 'custom_jvp: the rule'} returned a tangent ({_describe(t)}) that does not "
        "depend on the input tangents and is not zero; a JVP rule must be linear in the "
        "tangents. Compute the tangent from the tangents (e.g. x_dot * derivative), or "
        "return zeros (dnp.zeros_like(x)) where the output does not change.")
  return None


def _custom_jvp_batch(axis_size, vals, dims, *, fun, jvp, n_args, n_lifted):
  moved, avals = _batch_inputs(axis_size, vals, dims)
  k = n_args + n_lifted
  fun_b, out_dims = _batched_program(fun, axis_size, avals[:k], dims[:k])
  # jvp takes (args, tangents of args, its own closed-over values); batched when needed.
  jvp_b = _LazyProgram(lambda: _batched_program(
      _program_of(jvp), axis_size, avals[:n_args] * 2 + avals[k:],
      list(dims[:n_args]) * 2 + list(dims[k:]))[0], getattr(jvp, "name", None))
  outs = custom_jvp_call_p.bind(*moved, fun=fun_b, jvp=jvp_b, n_args=n_args,
                                n_lifted=n_lifted)
  return outs, out_dims


def _rule_jet(prim, jvp_rule):
  """Taylor mode of a custom call `prim` whose forward-mode rule is `jvp_rule`: y' = the
  rule's tangent output along x', so the rule run on the series of x and x' to order k - 1
  gives y's coefficients 1 .. k from its tangent output; its output gives y's value alone.
  (The generic rule takes coefficients 1 .. k - 1 from the output's series, which are the
  function's own derivatives where the rule computes its output otherwise than by calling
  the function: custom_jvp's rule, or custom_vjp's fwd.)"""
  def rule(series, k, **params):
    mine = [any(c is not None for c in s[1:]) and jet._floating(s[0]) for s in series]
    if k == 0 or not any(mine):
      return [[o] + [None] * k for o in prim.bind(*[s[0] for s in series], **params)]
    sub = jet.JetTrace(k - 1, {})
    primals, tangents = [], []
    for s, m in zip(series, mine):
      if not m:
        primals.append(s[0])
        tangents.append(None)
        continue
      primals.append(jet.JetTracer(sub, s[:k]))
      dots = [_zeros_like(s[0]) if s[j + 1] is None else s[j + 1] * float(j + 1)
              for j in range(k)]
      tangents.append(jet.JetTracer(sub, dots))
    prev = core.swap_trace(sub)
    try:
      outs, out_dots = jvp_rule(primals, tangents, **params)
    finally:
      core.swap_trace(prev)
      sub.alive = False
    result = []
    for o, d in zip(outs, out_dots):
      value = jet._coeffs(o, sub, k)[0]
      dots = [None] * k if d is None or not jet._floating(value) else jet._coeffs(d, sub, k)
      result.append([value] + [None if t is None else ad.match_primal(t * (1.0 / j), value)
                               for j, t in enumerate(dots, 1)])
    return result
  return rule


custom_jvp_call_p.def_impl(_custom_jvp_impl)
custom_jvp_call_p.def_abstract_eval(_custom_jvp_abstract_eval)
ad.primitive_jvps[custom_jvp_call_p] = _custom_jvp_jvp
batching.primitive_batchers[custom_jvp_call_p] = _custom_jvp_batch
jet.jet_rules[custom_jvp_call_p] = _rule_jet(custom_jvp_call_p, _custom_jvp_jvp)


class _rules_state:
  """`custom`'s rule-staging state (`_staging_rules`, `_own_call`) set for the duration."""
  __slots__ = ("custom", "state", "prev")

  def __init__(self, custom, staging_rules, own_call):
    self.custom, self.state = custom, (staging_rules, own_call)

  def __enter__(self):
    custom = self.custom
    self.prev = custom._staging_rules, custom._own_call
    custom._staging_rules, custom._own_call = self.state

  def __exit__(self, *exc):
    self.custom._staging_rules, self.custom._own_call = self.prev


def _same_values(a, b):
  return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _untraced_call(custom, args):
  """A call of a custom_jvp or custom_vjp function with nothing traced: inside its own
  rules as they are staged, a call of those rules (where it is at the staged call's types);
  else the function itself."""
  if custom._staging_rules and custom._own_call is not None:
    out = custom._call_as_staged(args)
    if out is not None:
      return out
  return custom.fun(*args)


class _RuleState:
  """A custom function's rule-staging state, per thread (two threads may stage its rules at
  once): `_staging_rules`, whether its own rules are running (where it is just its primal),
  and `_own_call`, the call of the rule being staged. Kept in `core.context.custom_rules`
  (id -> (staging_rules, own_call)), not on the object, which stays picklable."""
  __slots__ = ()

  def _state(self):
    return core.context.custom_rules.get(id(self), (False, None))

  def _set_state(self, staging_rules, own_call):
    states = core.context.custom_rules
    if staging_rules or own_call is not None:
      states[id(self)] = (staging_rules, own_call)
    else:
      states.pop(id(self), None)

  _staging_rules = property(lambda self: self._state()[0],
                            lambda self, v: self._set_state(v, self._state()[1]))
  _own_call = property(lambda self: self._state()[1],
                       lambda self, v: self._set_state(self._state()[0], v))


class custom_jvp(_RuleState):
  """A function with a custom forward-mode derivative (which reverse mode transposes).

  >>> import dfdx, dfdx.numpy as dnp
  >>> @custom_jvp
  ... def safe_log(x):
  ...   return dnp.log(x)
  >>> @safe_log.defjvp
  ... def _(primals, tangents):
  ...   (x,), (x_dot,) = primals, tangents
  ...   return safe_log(x), x_dot / dnp.maximum(x, 1e-12)
  >>> float(dfdx.grad(safe_log)(2.0))
  0.5

  `defjvp(rule)`: `rule(*nondiff_args, primals, tangents) -> (output, tangent_output)`, with
  primals and tangents tuples of the differentiated arguments (pytrees allowed); the output
  is the function's, each tangent has its output's shape and dtype (None, or zeros, where
  it does not change); the rule must be linear in the tangents and is written with
  dfdx.numpy, so it is differentiable.
  Where the rule calls the function (`return f(x), ...`), that call is differentiated by the
  rule too, so derivatives of every order (and Taylor series) follow the rule, as in JAX
  (and so do those through a custom_vjp function's fwd and bwd that call it).
  """

  def __init__(self, fun, nondiff_argnums=()):
    functools.update_wrapper(self, fun)
    self.fun, self.nondiff_argnums, self.jvp = fun, tuple(nondiff_argnums), None

  def defjvp(self, jvp):
    self.jvp = jvp
    return jvp

  def __call__(self, *args, **kwargs):
    call = _start_call(self, args, kwargs, self.jvp is not None,
                       f"decorate one with @{self.__name__}.defjvp before calling it.")
    if call is None:
      return _untraced_call(self, args)
    fun_program, lifted, out_tree = self._fun_program(call)
    rule, jvp_lifted = self._rule_program(call, fun_program, lifted, out_tree)
    outs = custom_jvp_call_p.bind(*call.leaves, *lifted, *jvp_lifted, fun=fun_program,
                                  jvp=rule, n_args=len(call.leaves), n_lifted=len(lifted))
    return tree_unflatten(out_tree, outs)

  def _fun_program(self, call):
    fun_program, lifted = make_program(call.flat_fun(self.fun), call.avals, record_source=False)
    return fun_program, lifted, call.store["out_tree"]

  def _rule_program(self, call, fun_program, lifted, out_tree):
    """The rule's program at the call's types (a `_LazyProgram`, filled in) and the values
    it closes over. Calls of this function inside the rule, at these types, are calls with
    this rule, so that derivatives of every order go through the rule."""
    static, leaves, in_tree, avals = call.static, call.leaves, call.in_tree, call.avals
    where = f"custom_jvp function {self.__name__}: its rule {_rule_name(self.jvp)}"

    @_primal_inside(self)
    def flat_jvp(*xs):
      n = len(leaves)
      primals = tree_unflatten(in_tree, xs[:n])
      tangents = tree_unflatten(in_tree, xs[n:])
      result = self.jvp(*static, tuple(primals), tuple(tangents))
      out_leaves, tangent_leaves = self._check_rule_result(where, result, fun_program.out_avals)
      return out_leaves + [ad.tangent_ops.convert(t, o.dtype) if core.get_aval(t).dtype !=
                           core.get_aval(o).dtype else t for o, t in zip(out_leaves,
                                                                        tangent_leaves)]
    # A call inside the rule passes the rule's own closed-over values (traced outside it) as
    # the rule's operands: known once the rule is staged, so it is staged again with them
    # until they come out the same (the order in which they are met may change once).
    rule, closed = _LazyProgram(name=where), []
    for _ in range(4):
      prev, self._own_call = self._own_call, (rule, fun_program, lifted, static, in_tree,
                                              avals, out_tree, closed)
      try:
        jvp_program, jvp_lifted = make_program(flat_jvp, avals * 2, record_source=False)
      finally:
        self._own_call = prev
      if not rule.used or _same_values(jvp_lifted, closed):
        break
      closed, rule.used = list(jvp_lifted), False
    else:  # (no fixed point: the calls inside are of the function's body)
      prev, self._own_call = self._own_call, None
      try:
        jvp_program, jvp_lifted = make_program(flat_jvp, avals * 2, record_source=False)
      finally:
        self._own_call = prev
    rule.program = jvp_program
    return rule, jvp_lifted

  def _check_rule_result(self, where, result, fun_avals):
    """The output and tangent leaves of what the rule returned, checked: a pair (output,
    tangent), the output like the function's, each tangent shaped like its output, or None
    (a zero). A constant (not computed from the tangents: a Python 0.0) may broadcast to
    it; it must be zero, which reverse mode checks. Messages say what came instead."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
      raise errors.InvalidInputError(
          f"{where} must return a pair (output, tangent), but it returned "
          f"{_describe(result)}. The output is the function's at the primals "
          f"({_describe_avals(fun_avals)}), the tangent its derivative along the tangents, "
          f"of the same shapes and dtypes: e.g. `return {self.__name__}(x), x_dot * ...`.")
    out, tangent_out = result
    out_leaves, tree = tree_flatten(out)
    _check_output_like_function(where, "its output (the pair's first element)", out,
                                out_leaves, fun_avals, f"{self.__name__}(x)")
    try:
      tangent_leaves = tree.flatten_up_to(tangent_out)
    except errors.PytreeError:  # (its message would name the class of a traced value)
      raise errors.PytreeError(
          f"{where} returned a tangent ({_describe(tangent_out)}) whose structure differs "
          f"from its output's ({_describe(out)}). Return one tangent per output, in the "
          "output's structure (None for a zero).") from None
    paths = tree.leaf_paths() if tree.kind is not None else None
    checked = []
    for i, (o, t) in enumerate(zip(out_leaves, tangent_leaves)):
      shape = tuple(core.shape_of(o))
      if t is None:  # (a zero tangent, as custom_vjp's None cotangent)
        t = _zeros_like(o)
      elif not _is_array(t) or not (
          tuple(core.shape_of(t)) == shape if isinstance(t, Tracer) else
          _broadcasts_to(tuple(core.shape_of(t)), shape)):
        at = f" at {paths[i]}" if paths else ""
        raise errors.InvalidInputError(
            f"{where} returned a tangent{at} that is {_describe(t)}, but the output{at} is "
            f"{core.get_aval(o).str_short()}: each tangent must have its output's shape and "
            "dtype (or be None for a zero). Compute it from the tangents, e.g. "
            "x_dot * derivative, broadcast (dnp.broadcast_to) or summed to the output's "
            "shape.")
      elif not isinstance(t, Tracer):  # (a constant, as an array of the output's shape)
        t = np.array(np.broadcast_to(np.asarray(t), shape))
        _constant_tangent(t, where)  # (in every mode: not linear in the tangents unless 0)
      checked.append(t)
    return out_leaves, checked

  def _call_as_staged(self, args):
    """Inside its rule's staging: a call of the function with its rule, the rule being
    staged at the staged call's types, else a rule staged at the call's types when the call
    is differentiated (a rule may call its function at other shapes, without end); None
    where the function closes over traced values at other types (the function's body is
    then used)."""
    rule, fun_program, lifted, static, in_tree, avals, out_tree, closed = self._own_call
    leaves = _leaves_at_types(self, args, static, in_tree, avals)
    if leaves is False:
      return None
    if leaves is not None:
      rule.used = True
      outs = custom_jvp_call_p.bind(*leaves, *lifted, *closed, fun=fun_program, jvp=rule,
                                    n_args=len(leaves), n_lifted=len(lifted))
      return tree_unflatten(out_tree, outs)
    call = _Call(self, args)
    with _rules_state(self, False, None):  # (its body as at any call)
      other_program, other_lifted, other_tree = self._fun_program(call)
    if other_lifted:
      return None
    rule.used = True

    def make():
      with _rules_state(self, False, None):
        other_rule, jvp_lifted = self._rule_program(call, other_program, [], other_tree)
      if jvp_lifted:  # (its operands were fixed when the call was staged)
        raise errors.MissingRuleError(
            f"custom_jvp function {self.__name__}: its rule calls it at other argument types "
            "and uses values traced outside it (a parameter being differentiated), so the "
            "rule cannot be formed at those types. Pass those values to the function as "
            "arguments (nondiff_argnums for static ones), or call it at the same types.")
      return other_rule.get()
    name = f"custom_jvp function {self.__name__}: its rule {_rule_name(self.jvp)}"
    outs = custom_jvp_call_p.bind(*call.leaves, fun=other_program, jvp=_LazyProgram(make, name),
                                  n_args=len(call.leaves), n_lifted=0)
    return tree_unflatten(other_tree, outs)


# ---- custom_vjp -----------------------------------------------------------------------------
custom_vjp_call_p = core.primitive("custom_vjp_call", multiple_results=True)
core.keeps_weak_types.add(custom_vjp_call_p)  # (it gives what the function gives)
ad.complex_rules.add(custom_vjp_call_p)  # the user's rules, or those of its equations


def _custom_vjp_impl(*vals, fun, fwd, bwd, n_args, n_lifted, n_fwd_lifted):
  return eval_program(fun, *vals[:n_args + n_lifted])


def _custom_vjp_abstract_eval(*avals, fun, fwd, bwd, n_args, n_lifted, n_fwd_lifted):
  return fun.out_avals


def _vjp_parts(primals, n_args, n_lifted, n_fwd_lifted):
  args = primals[:n_args]
  lifted = primals[n_args:n_args + n_lifted]
  fwd_lifted = primals[n_args + n_lifted:n_args + n_lifted + n_fwd_lifted]
  bwd_lifted = primals[n_args + n_lifted + n_fwd_lifted:]
  return args, lifted, fwd_lifted, bwd_lifted


def _custom_vjp_fwd(primals, *, fun, fwd, bwd, n_args, n_lifted, n_fwd_lifted):
  # (run in the enclosing trace: a call of the function inside fwd is a custom_vjp call
  # there, so an enclosing derivative of the outputs and residuals uses the rules again)
  args, _, fwd_lifted, _ = _vjp_parts(primals, n_args, n_lifted, n_fwd_lifted)
  result = eval_program(_program_of(fwd), *args, *fwd_lifted)
  n_out = len(fun.outs)
  return result[:n_out], result[n_out:]


def _custom_vjp_bwd(residuals, cts, primals, needs, *, fun, fwd, bwd, n_args, n_lifted,
                    n_fwd_lifted):
  args, lifted, _, bwd_lifted = _vjp_parts(primals, n_args, n_lifted, n_fwd_lifted)
  cts = [_zeros_proto(a) if c is None else c for a, c in zip(fun.out_avals, cts)]
  arg_cts = eval_program(_program_of(bwd), *residuals, *cts, *bwd_lifted) \
      if any(needs[:n_args]) else [None] * n_args
  closure_cts = _closure_vjp(fun, args, lifted, cts, needs[n_args:n_args + n_lifted])
  rest = [None] * (len(primals) - n_args - n_lifted)
  return list(arg_cts) + list(closure_cts) + rest


def _zeros_proto(aval):
  return np.zeros(aval.shape, aval.dtype)


def _custom_vjp_jvp(primals, tangents, *, fun, fwd, bwd, n_args, n_lifted, n_fwd_lifted):
  # Forward mode through the transpose of bwd, which is linear in the cotangent.
  args, lifted, fwd_lifted, bwd_lifted = _vjp_parts(primals, n_args, n_lifted, n_fwd_lifted)
  outs, residuals = _custom_vjp_fwd(primals, fun=fun, fwd=fwd, bwd=bwd, n_args=n_args,
                                    n_lifted=n_lifted, n_fwd_lifted=n_fwd_lifted)
  out_tangents = [None] * len(outs)
  if any(t is not None for t in tangents[:n_args]):
    zero_cts = [_zeros_proto(a) for a in fun.out_avals]
    bwd_program = _program_of(bwd)
    _, lin = ad.linearize_flat(
        lambda *cts: eval_program(bwd_program, *residuals, *cts, *bwd_lifted), zero_cts)
    out_tangents = lin.transpose(list(tangents[:n_args]))
  _, closure_tangents = _closure_jvp(fun, args, lifted, tangents[n_args:n_args + n_lifted])
  if closure_tangents is not None:
    out_tangents = [_add(a, b) for a, b in zip(out_tangents, closure_tangents)]
  # (a Python number among the results comes from Python numbers alone: no derivative)
  return outs, [None if t is None or weakly_typed(o) else ad.match_primal(t, o)
                for o, t in zip(outs, out_tangents)]


def _custom_vjp_batch(axis_size, vals, dims, *, fun, fwd, bwd, n_args, n_lifted, n_fwd_lifted):
  moved, avals = _batch_inputs(axis_size, vals, dims)
  k, f = n_args + n_lifted, n_args + n_lifted + n_fwd_lifted
  # (every output batched: bwd's cotangents are batched like fwd's outputs)
  fun_b, out_dims = _batched_program(fun, axis_size, avals[:k], dims[:k], False)
  # fwd and bwd are batched when the call is differentiated (a call of the function inside
  # them is this call again, batched then, one order at a time).
  fwd_b = _LazyProgram(lambda: _batched_program(
      _program_of(fwd), axis_size, avals[:n_args] + avals[k:f],
      list(dims[:n_args]) + list(dims[k:f]), False)[0])

  def batched_bwd():
    # bwd takes (residuals, cts, its closed-over values): the first two batched like fwd's
    # outputs, which the batched fwd puts on axis 0.
    n_out = len(fun.outs)
    batched_outs = list(fwd_b.get().out_avals)  # outputs then residuals
    bwd_avals = batched_outs[n_out:] + batched_outs[:n_out] + avals[f:]
    bwd_dims = [0] * len(batched_outs) + list(dims[f:])
    program = _batched_program(_program_of(bwd), axis_size, bwd_avals, bwd_dims, False)[0]
    unmapped = [d is batching.NOT_MAPPED for d in dims[:n_args]]
    if not any(unmapped):
      return program

    def summed(*xs):  # (an argument the same for every example: its cotangents summed)
      from dfdx._src.ops import reduction
      return [reduction.reduce_sum(o, (0,)) if u else o
              for o, u in zip(eval_program(program, *xs), unmapped)]
    return make_program(summed, list(program.in_avals), record_source=False)[0]
  outs = custom_vjp_call_p.bind(*moved, fun=fun_b, fwd=fwd_b, bwd=_LazyProgram(batched_bwd),
                                n_args=n_args, n_lifted=n_lifted, n_fwd_lifted=n_fwd_lifted)
  return outs, out_dims


custom_vjp_call_p.def_impl(_custom_vjp_impl)
custom_vjp_call_p.def_abstract_eval(_custom_vjp_abstract_eval)
ad.primitive_jvps[custom_vjp_call_p] = _custom_vjp_jvp
ad.primitive_residual_vjps[custom_vjp_call_p] = (_custom_vjp_fwd, _custom_vjp_bwd)
batching.primitive_batchers[custom_vjp_call_p] = _custom_vjp_batch
jet.jet_rules[custom_vjp_call_p] = _rule_jet(custom_vjp_call_p, _custom_vjp_jvp)


class _OwnVjpCall:
  """While a custom_vjp function's fwd and bwd are staged: what a call of the function at
  the staged call's types binds there, the rules being staged (`fwd`, `bwd`: filled in when
  done) and the values they will close over (`closed`: a guess, checked after), and whether
  such a call was met (`used`)."""
  __slots__ = ("fwd", "bwd", "fun", "lifted", "static", "in_tree", "avals", "out_tree",
               "closed", "used")

  def __init__(self, fwd, bwd, fun, lifted, call, out_tree, closed):
    self.fwd, self.bwd, self.fun, self.lifted = fwd, bwd, fun, lifted
    self.static, self.in_tree, self.avals = call.static, call.in_tree, call.avals
    self.out_tree, self.closed, self.used = out_tree, closed, False

  def bind(self, leaves):
    self.used = True
    fwd_closed, bwd_closed = self.closed
    outs = custom_vjp_call_p.bind(*leaves, *self.lifted, *fwd_closed, *bwd_closed,
                                  fun=self.fun, fwd=self.fwd, bwd=self.bwd,
                                  n_args=len(leaves), n_lifted=len(self.lifted),
                                  n_fwd_lifted=len(fwd_closed))
    return tree_unflatten(self.out_tree, outs)


class custom_vjp(_RuleState):
  """A function with a custom reverse-mode derivative.

  >>> import dfdx, dfdx.numpy as dnp
  >>> @custom_vjp
  ... def clip_gradient(x):
  ...   return x
  >>> def fwd(x):
  ...   return x, None
  >>> def bwd(residuals, ct):
  ...   return (dnp.clip(ct, -1.0, 1.0),)
  >>> clip_gradient.defvjp(fwd, bwd)
  >>> float(dfdx.grad(lambda x: 3.0 * clip_gradient(x))(2.0))
  1.0

  `defvjp(fwd, bwd)`: `fwd(*args) -> (output, residuals)` (residuals: any pytree of arrays),
  `bwd(*nondiff_args, residuals, ct) -> tuple of cotangents`, one per differentiated
  argument (pytrees like the arguments; None for a zero cotangent). bwd must be linear in
  `ct`: forward mode (jvp, jacfwd, hessian) transposes it.

  fwd and bwd are written with dfdx.numpy: derivatives of higher order differentiate them.
  Where they call the function (`return f(x), residuals`), that call is a call with these
  rules, as in JAX, so derivatives of every order (grad of grad, hessian, jacrev of jacrev,
  Taylor series) go through the rules, never through the function's body, which may be
  what the rules exist to avoid (a value that overflows, a derivative that is NaN where the
  value is not). Where fwd computes its output otherwise, that code is differentiated.
  """

  def __init__(self, fun, nondiff_argnums=()):
    functools.update_wrapper(self, fun)
    self.fun, self.nondiff_argnums = fun, tuple(nondiff_argnums)
    self.fwd = self.bwd = None

  def defvjp(self, fwd, bwd):
    self.fwd, self.bwd = fwd, bwd

  _fun_program = custom_jvp._fun_program

  def __call__(self, *args, **kwargs):
    call = _start_call(self, args, kwargs, self.fwd is not None,
                       f"call {self.__name__}.defvjp(fwd, bwd) before calling it.")
    if call is None:
      return _untraced_call(self, args)
    fun_program, lifted, out_tree = self._fun_program(call)
    fwd, bwd, fwd_lifted, bwd_lifted = self._rule_programs(call, fun_program, lifted, out_tree)
    outs = custom_vjp_call_p.bind(*call.leaves, *lifted, *fwd_lifted, *bwd_lifted,
                                  fun=fun_program, fwd=fwd, bwd=bwd, n_args=len(call.leaves),
                                  n_lifted=len(lifted), n_fwd_lifted=len(fwd_lifted))
    return tree_unflatten(out_tree, outs)

  def _flat_fwd(self, call, store, fun_avals, *xs):
    result = self.fwd(*call.args_of(xs))
    where = f"custom_vjp function {self.__name__}: its fwd {_rule_name(self.fwd)}"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
      raise errors.InvalidInputError(
          f"{where} must return a pair (output, residuals), but it returned "
          f"{_describe(result)}. The output is the function's at the arguments "
          f"({_describe_avals(fun_avals)}), the residuals any pytree of arrays bwd needs "
          f"(None if none): e.g. `return {self.__name__}(x), (x,)`.")
    out, residuals = result
    out_leaves, _ = tree_flatten(out)
    _check_output_like_function(where, "its output (the pair's first element)", out,
                                out_leaves, fun_avals, f"{self.__name__}(x)")
    res_leaves, store["res_tree"] = tree_flatten(residuals)
    return out_leaves + res_leaves

  def _flat_bwd(self, static, dynamic, res_tree, out_tree, n_res, *xs):
    residuals = tree_unflatten(res_tree, xs[:n_res])
    ct = tree_unflatten(out_tree, xs[n_res:])
    cts = self.bwd(*static, residuals, ct)
    where = f"custom_vjp function {self.__name__}: its bwd {_rule_name(self.bwd)}"
    if not isinstance(cts, (tuple, list)) or len(cts) != len(dynamic):
      raise errors.InvalidInputError(
          f"{where} must return a tuple with one cotangent per differentiated argument "
          f"({len(dynamic)}), got {_describe(cts)}. Return a tuple even for one argument: "
          "`return (ct * derivative,)`.")
    out = []
    for k, (arg, ct_arg) in enumerate(zip(dynamic, cts)):
      arg_leaves, arg_tree = tree_flatten(arg)
      try:
        ct_leaves = ([None] * len(arg_leaves) if ct_arg is None else
                     arg_tree.flatten_up_to(ct_arg))
      except errors.PytreeError:  # (its message would name the class of a traced value)
        raise errors.PytreeError(
            f"{where} returned as cotangent {k} {_describe(ct_arg)}, but argument {k} is "
            f"{_describe(arg)}: return cotangents structured like the arguments (None for "
            "a zero).") from None
      for a, c in zip(arg_leaves, ct_leaves):
        if c is not None and not _is_array(c):
          raise errors.InvalidInputError(
              f"{where} returned a cotangent {k} holding {_describe(c)} where argument {k} "
              f"holds {core.get_aval(a).str_short()}; a cotangent is an array shaped like "
              "its argument (or None for a zero).")
        if c is not None and tuple(core.shape_of(c)) != tuple(core.shape_of(a)):
          raise errors.InvalidInputError(
              f"{where} returned cotangent {k} of shape {tuple(core.shape_of(c))}, but its "
              f"argument has shape {tuple(core.shape_of(a))}; bwd must return cotangents "
              "shaped like the arguments (sum over broadcast axes).")
      out += [_zeros_like(a) if c is None else c for a, c in zip(arg_leaves, ct_leaves)]
    return out

  def _stage_rules(self, call, fun_program, out_tree, own):
    """fwd's and bwd's programs at the call's types, and the values each closes over; calls
    of the function inside them bind `own` (None: they run its body)."""
    store = {}
    with _rules_state(self, True, own):
      fwd_program, fwd_lifted = make_program(
          functools.partial(self._flat_fwd, call, store, fun_program.out_avals), call.avals,
          record_source=False)
      res_avals = fwd_program.out_avals[len(fun_program.outs):]
      flat_bwd = functools.partial(self._flat_bwd, call.static, call.dynamic, store["res_tree"],
                                   out_tree, len(res_avals))
      bwd_program, bwd_lifted = make_program(
          flat_bwd, list(res_avals) + list(fun_program.out_avals), record_source=False)
    return fwd_program, fwd_lifted, bwd_program, bwd_lifted

  def _rule_programs(self, call, fun_program, lifted, out_tree):
    """fwd's and bwd's programs at the call's types (`_LazyProgram`s, filled in) and the
    values each closes over. Calls of this function inside them, at these types, are calls
    with these rules, so that derivatives of every order go through the rules."""
    fwd, bwd = _LazyProgram(), _LazyProgram()
    # A call inside the rules passes the rules' own closed-over values (traced outside them)
    # as operands: known once the rules are staged, so they are staged again with them until
    # they come out the same (the order in which they are met may change once or twice).
    closed = ([], [])
    for _ in range(6):
      own = _OwnVjpCall(fwd, bwd, fun_program, lifted, call, out_tree, closed)
      staged = self._stage_rules(call, fun_program, out_tree, own)
      if not own.used or (_same_values(staged[1], closed[0]) and
                          _same_values(staged[3], closed[1])):
        break
      closed = (list(staged[1]), list(staged[3]))
    else:  # (no fixed point: the calls inside are of the function's body)
      staged = self._stage_rules(call, fun_program, out_tree, None)
    fwd.program, bwd.program = staged[0], staged[2]
    return fwd, bwd, staged[1], staged[3]

  def _call_as_staged(self, args):
    """Inside its rules' staging: a call of the function with its rules, those being staged
    where the call is at the staged call's types, else rules staged at the call's types
    when the call is differentiated; None where the function closes over traced values at
    other types (the function's body is then used)."""
    own = self._own_call
    leaves = _leaves_at_types(self, args, own.static, own.in_tree, own.avals)
    if leaves is False:
      return None
    if leaves is not None:
      return own.bind(leaves)
    call = _Call(self, args)
    with _rules_state(self, False, None):  # (its body as at any call)
      other_program, other_lifted, other_tree = self._fun_program(call)
    if other_lifted:
      return None
    made = []

    def rules():
      if not made:
        with _rules_state(self, False, None):
          fwd, bwd, fwd_lifted, bwd_lifted = self._rule_programs(call, other_program, [],
                                                                 other_tree)
        if fwd_lifted or bwd_lifted:  # (its operands were fixed when the call was staged)
          raise errors.MissingRuleError(
              f"custom_vjp function {self.__name__}: its fwd or bwd calls it at other "
              "argument types and uses values traced outside it (a parameter being "
              "differentiated), so the rules cannot be formed at those types. Pass those "
              "values to the function as arguments (nondiff_argnums for static ones), or "
              "call it at the same types.")
        made.extend((fwd.get(), bwd.get()))
      return made
    outs = custom_vjp_call_p.bind(*call.leaves, fun=other_program,
                                  fwd=_LazyProgram(lambda: rules()[0]),
                                  bwd=_LazyProgram(lambda: rules()[1]),
                                  n_args=len(call.leaves), n_lifted=0, n_fwd_lifted=0)
    return tree_unflatten(other_tree, outs)


# ---- checkpoint -----------------------------------------------------------------------------
checkpoint_call_p = core.primitive("checkpoint_call", multiple_results=True)
core.keeps_weak_types.add(checkpoint_call_p)  # (it gives what the function gives)
ad.complex_rules.add(checkpoint_call_p)  # the user's rules, or those of its equations


def _checkpoint_impl(*vals, program):
  return eval_program(program, *vals)


def _checkpoint_jvp(primals, tangents, *, program):
  if not any(isinstance(x, Tracer) for x in list(primals) + list(tangents)):
    # (concrete values: forward mode keeps nothing for later, so nothing to recompute)
    return ad.jvp_flat(lambda *xs: eval_program(program, *xs), list(primals), list(tangents))
  # Traced (a loop's body, jit): the tangents come from a checkpoint of the block's JVP,
  # which reads only the block's inputs. Reverse mode transposes it (below), recomputing the
  # block then, so a loop of checkpointed blocks stores one input per step.
  outs = checkpoint_call_p.bind(*primals, program=program)
  nonzero = tuple(t is not None for t in tangents)
  if not any(nonzero):
    return outs, [None] * len(outs)
  jvp_program = _jvp_program(program, nonzero)
  out_tangents = checkpoint_call_p.bind(
      *primals, *[_strong(t) for t in tangents if t is not None], program=jvp_program)
  return outs, [None if weakly_typed(o) or core.get_aval(o).dtype.kind not in "fc" else
                _strong(ad.match_primal(t, o)) for o, t in zip(outs, out_tangents)]


def _strong(t):
  """A tangent as a NumPy value (a staged Python number's tangent is not one)."""
  from dfdx._src.ops.shape import convert_element_type
  return convert_element_type(t, core.get_aval(t).dtype) if weakly_typed(t) else t


_jvp_programs: dict = {}


def _jvp_program(program, nonzero):
  """(inputs, their nonzero tangents) -> the outputs' tangents (zeros where none)."""
  key = (id(program), nonzero)
  cached = _jvp_programs.get(key)
  if cached is not None and cached[0] is program:
    return cached[1]
  avals = list(program.in_avals)
  n = len(avals)

  def flat(*xs):
    primals, it = xs[:n], iter(xs[n:])
    tangents = [next(it) if nz else None for nz in nonzero]
    _, out_tangents = ad.jvp_flat(lambda *ys: eval_program(program, *ys), list(primals),
                                  tangents)
    return [_zeros_proto(a) if t is None else _strong(t)
            for a, t in zip(program.out_avals, out_tangents)]
  jvp_program, lifted = make_program(
      flat, avals + [a for a, nz in zip(avals, nonzero) if nz], record_source=False)
  assert not lifted, lifted
  if len(_jvp_programs) >= 256:
    try:  # (the oldest; another thread may be evicting it too)
      _jvp_programs.pop(next(iter(_jvp_programs)), None)
    except (RuntimeError, StopIteration):
      pass
  _jvp_programs[key] = (program, jvp_program)
  return jvp_program


def _checkpoint_transpose(cts, *args, program):
  # Only the tangent inputs of a checkpointed JVP (above) are linear: the block is run again,
  # linearized in them at the inputs, and transposed.
  linear = [ad.is_linear(a) for a in args]
  consts = [None if lin else a for a, lin in zip(args, linear)]
  lin_avals = [a.aval for a, lin in zip(args, linear) if lin]

  def call(*lin_args):
    it = iter(lin_args)
    return eval_program(program, *[next(it) if lin else c for c, lin in zip(consts, linear)])
  _, lin = ad.linearize_flat(call, [_zeros_proto(a) for a in lin_avals])
  cts = [_zeros_proto(a) if c is None else c for a, c in zip(program.out_avals, cts)]
  lin_cts = iter(lin.transpose(list(cts)))
  return [next(lin_cts) if lin_flag else None for lin_flag in linear]


def _checkpoint_vjp(cts, ans, *primals, needs, program):
  # Rematerialization: only the inputs were kept; the block runs again, linearized, now, in
  # its floating inputs whose cotangents are needed (the others, a where's mask, an index or
  # a value not differentiated, are held fixed: their cotangents could hold a NaN that
  # nothing uses). (A Python number among them is linearized as the 0-d array of its dtype.)
  primals = [np.asarray(p, core.get_aval(p).dtype) if isinstance(p, (int, float, complex))
             else p for p in primals]
  floating = [need and core.get_aval(p).dtype.kind in "fc" for p, need in zip(primals, needs)]

  def call(*xs):
    it = iter(xs)
    return eval_program(program, *[next(it) if f else p for p, f in zip(primals, floating)])
  _, lin = ad.linearize_flat(call, [p for p, f in zip(primals, floating) if f])
  in_cts = iter(lin.transpose(list(cts)))
  return [next(in_cts) if f else None for f in floating]


def _checkpoint_batch(axis_size, vals, dims, *, program):
  moved, avals = _batch_inputs(axis_size, vals, dims)
  batched, out_dims = _batched_program(program, axis_size, avals, dims)
  return checkpoint_call_p.bind(*moved, program=batched), out_dims


checkpoint_call_p.def_impl(_checkpoint_impl)
checkpoint_call_p.def_abstract_eval(lambda *avals, program: program.out_avals)
ad.primitive_jvps[checkpoint_call_p] = _checkpoint_jvp
ad.defvjp(checkpoint_call_p, _checkpoint_vjp)
ad.primitive_transposes[checkpoint_call_p] = _checkpoint_transpose
batching.primitive_batchers[checkpoint_call_p] = _checkpoint_batch


def checkpoint(f=None, *, segments=None):
  """`f`, rematerialized in reverse mode: only its inputs are kept for the backward pass, and
  the computations inside it run again when the derivative needs them (less memory, more
  time), also under jit and in loops (see scan's `checkpoint=`). Values are unchanged.
  Arguments may be pytrees and keywords; leaves that are not arrays (a string choosing a
  mode, a Python number counting steps) are passed as they are.

  Recomputing all of `f` at once still holds all its intermediates at once, in the backward
  pass. `segments` cuts f into pieces, each checkpointed: the backward pass then holds the
  values alive at the cuts and one piece's intermediates. `segments="auto"` places the cuts
  where the estimated peak memory is least (for a chain of n similar blocks, about every
  sqrt(n) blocks, between blocks); an integer k gives k pieces of about equal size, each
  cut at the narrowest point near its place. Either costs one extra forward pass.

  >>> import dfdx, dfdx.numpy as dnp
  >>> block = checkpoint(lambda x: dnp.sin(dnp.sin(x)))
  >>> round(float(dfdx.grad(block)(0.5)), 6)
  0.778644
  >>> deep = checkpoint(lambda x: dnp.sin(dnp.sin(dnp.sin(x))), segments="auto")
  >>> round(float(dfdx.grad(deep)(0.5)), 6)
  0.697266
  """
  if segments is not None and not (
      segments == "auto" if isinstance(segments, str) else
      isinstance(segments, (int, np.integer)) and not isinstance(segments, bool)
      and segments >= 1):
    raise ValueError(f"checkpoint: segments must be None, 'auto' or a positive integer, got "
                     f"{segments!r}")
  if f is None:
    return lambda g: checkpoint(g, segments=segments)
  if not callable(f):
    raise TypeError(f"checkpoint: expected a function, got {type(f).__name__}")

  @functools.wraps(f)
  def remat(*args, **kwargs):
    leaves, in_tree = tree_flatten((args, kwargs))
    if core.current_trace() is None and not any(isinstance(x, Tracer) for x in leaves):
      return f(*args, **kwargs)
    # Leaves that are not arrays (a string choosing a mode, a function) are held as they are,
    # and so are Python numbers (a loop's count, a scale): f is traced at every call, so
    # they cost no retracing, and Python code may branch and loop on them.
    arrays = [isinstance(x, (Tracer, np.ndarray, np.generic)) for x in leaves]
    dynamic = [x for x, a in zip(leaves, arrays) if a]
    program, lifted, out_tree = make_program_of_call(f, leaves, in_tree, arrays,
                                                     [_leaf_aval(x) for x in dynamic])
    if segments is None or segments == 1:
      outs = checkpoint_call_p.bind(*dynamic, *lifted, program=program)
    else:
      outs = _checkpointed_pieces(program, [*dynamic, *lifted], segments)
    return tree_unflatten(out_tree, outs)
  return remat


def _checkpointed_pieces(program, args, segments):
  """`program` on `args`, cut into checkpointed pieces (remat.py chooses the cuts)."""
  from dfdx._src import remat
  from dfdx._src.ir import Lit
  sizes, alive, last = remat.cut_costs(program)
  cuts = remat.choose_cuts(sizes, alive, segments)
  if not cuts:
    return checkpoint_call_p.bind(*args, program=program)
  env = {id(v): x for v, x in zip(program.in_vars, args)}
  env.update((id(v), c) for v, c in zip(program.const_vars, program.const_vals))
  for piece, ins, outs in remat.split_program(program, cuts, last):
    env.update(zip(map(id, outs), checkpoint_call_p.bind(*[env[id(v)] for v in ins],
                                                         program=piece)))
  return [o.val if type(o) is Lit else env[id(o)] for o in program.outs]


def _register_inlining():
  # Inside jit these calls are inlined before code generation (their `fun`). A checkpoint
  # is not: it stays a function of its own, so that the passes cannot merge the block's
  # recomputation in the backward pass with its forward pass (common subexpressions), which
  # would keep the block's intermediates alive until then.
  from dfdx._src import codegen, passes
  for prim, param in ((custom_jvp_call_p, "fun"), (custom_vjp_call_p, "fun")):
    codegen.INLINED.add(prim.name)
    passes.INLINED_PROGRAMS[prim.name] = param

  @codegen.with_functions
  def checkpoint_rule(ins, p, in_avals, out_avals, functions):
    return f"{functions.define(p['program'])}({', '.join(ins)})"
  codegen.register("checkpoint_call", checkpoint_rule)


_register_inlining()
