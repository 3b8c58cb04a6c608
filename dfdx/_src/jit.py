"""jit and make_expr: trace a function once per input signature, optimize the program, and
run it as a flat sequence of NumPy calls.

Owns `jit`, `make_expr` (the printable program of any composition), the `jit_call`
primitive through which an enclosing transformation sees a jitted call, and the cache with
its retrace explanations. The passes live in `passes.py`, code generation in `codegen.py`.

Signature of a call (the cache key): the pytree structure of the dynamic arguments, each
leaf's shape, dtype and weak type (Python scalars), and the values of the static arguments.
"""
from __future__ import annotations

import functools
import gc
import inspect
import logging

import numpy as np

from dfdx._src import ad, batching, core, errors, state
from dfdx._src.core import Tracer
from dfdx._src.ir import Program, eval_program, pp_program
from dfdx._src.staging import make_program
from dfdx._src.tree import tree_flatten, tree_unflatten

logger = logging.getLogger("dfdx.jit")
# None, or while dfdx.debug_nans is on, nan_check(entry, leaves, outs), which raises NaNError
# when a compiled call produced a NaN (see dfdx/_src/debug.py).
nan_check = None

# ---- the jit_call primitive ---------------------------------------------------------------
jit_call_p = core.primitive("jit_call", multiple_results=True)
core.keeps_weak_types.add(jit_call_p)  # (it gives what the function gives)
ad.complex_rules.add(jit_call_p)  # its rules apply those of its equations


def _jit_call_impl(*args, program, compiled, name):
  return compiled(*args)


def _jit_call_abstract_eval(*avals, program, compiled, name):
  return program.out_avals


def _jit_call_jvp(primals, tangents, *, program, compiled, name):
  # The program is run under the differentiation, equation by equation.
  return ad.jvp_flat(lambda *xs: _evaluated(program, xs), primals, tangents)


def _jit_call_batch(axis_size, vals, dims, *, program, compiled, name):
  return batching.vmap_flat(lambda *xs: _evaluated(program, xs), axis_size, vals, dims)


def _evaluated(program, xs):
  """The program's outputs on `xs`, equation by equation; an output that is a constant of
  the program, or a view of one, is a copy: the caller owns what it gets (writing into a
  returned gradient changed what every later call of the jitted function returned)."""
  consts = [c for c in program.const_vals if isinstance(c, np.ndarray)]

  def owned(o):
    if type(o) is not np.ndarray or (o.base is None and not any(o is c for c in consts)):
      return o  # (a fresh array: nothing to look for)
    return o.copy() if any(np.shares_memory(o, c) for c in consts) else o
  return [owned(o) for o in eval_program(program, *xs)]


jit_call_p.def_impl(_jit_call_impl)
jit_call_p.def_abstract_eval(_jit_call_abstract_eval)
ad.primitive_jvps[jit_call_p] = _jit_call_jvp
batching.primitive_batchers[jit_call_p] = _jit_call_batch


# ---- signatures -----------------------------------------------------------------------------


def _leaf_aval(x, path, fun_name):
  if isinstance(x, Tracer):
    return x.aval
  if isinstance(x, (bool, int, float, complex, np.ndarray, np.generic)):
    return core.get_aval(x)
  raise errors.InvalidInputError(
      f"jit({fun_name}): the argument at {path} is a {type(x).__name__} ({x!r:.60}), not an "
      "array. Mark it static with static_argnums or static_argnames.")


def _static_key(value, where, fun_name):
  if isinstance(value, Tracer):
    raise TypeError(
        f"jit({fun_name}): the static argument {where} is traced ({core.short_value(value)}) "
        "by an enclosing transformation, but a static argument must be a concrete Python "
        "value. Mark it static there too (make_expr(..., static_argnums=...), "
        "to_source(..., static_argnums=...)), or leave it out of the transformed arguments.")
  try:
    hash(value)
  except TypeError:
    raise TypeError(f"jit({fun_name}): the static argument {where} ({type(value).__name__}) "
                    "is not hashable, so it cannot be part of the cache key. Pass a hashable "
                    "value (a tuple instead of a list, for example).") from None
  return value


class _Signature:
  """The cache key of a call, with what is needed to explain a retrace."""
  __slots__ = ("tree", "avals", "statics", "key")

  def __init__(self, tree, avals, statics):
    self.tree, self.avals, self.statics = tree, avals, statics
    self.key = (tree, tuple((a.shape, a.dtype, a.weak_type) for a in avals), statics)

  def explain_difference(self, other: "_Signature") -> str:
    if self.tree != other.tree:
      return f"the structure of the arguments changed: {other.tree} -> {self.tree}"
    reasons = []
    for path, old, new in zip(self.tree.leaf_paths(), other.avals, self.avals):
      if old.shape != new.shape:
        reasons.append(f"{_describe_path(path)}: shape {old.shape} -> {new.shape}")
      if old.dtype != new.dtype or old.weak_type != new.weak_type:
        reasons.append(f"{_describe_path(path)}: dtype {_dtype_str(old)} -> {_dtype_str(new)}")
    for (name, old), (_, new) in zip(other.statics, self.statics):
      if old != new:
        reasons.append(f"static argument {name}: {old!r} -> {new!r}")
    return "; ".join(reasons) or "the signature changed"


def _dtype_str(aval):
  return f"{aval.dtype.name}{' (Python scalar)' if aval.weak_type else ''}"


def _describe_path(path):
  # Paths of ((args...), {kwargs}): "[0][1]..." is positional argument 1, "[1]['k']" keyword.
  if path.startswith("[0]"):
    rest = path[3:]
    return f"argument {rest[1:rest.index(']')]}{rest[rest.index(']') + 1:]}"
  return f"keyword argument {path[4:]}"


# ---- compiled entries ---------------------------------------------------------------------


class _Entry:
  """One compiled specialization: the optimized program, its NumPy function, the output
  structure and the non-array outputs baked in at trace time."""
  __slots__ = ("program", "run", "out_tree", "out_statics", "name", "single_output",
               "differentiates", "notes_ties", "proved_run", "variables", "var_avals",
               "writes")

  def __init__(self, program, run, out_tree, out_statics, name, proved_run=None):
    self.program, self.run, self.out_tree = program, run, out_tree
    self.out_statics, self.name = out_statics, name
    # None, or run(leaves) that also proves outputs free of NaN (ad.nan_free) by checking
    # their factors (reverse_cache._nan_certificates), for the NaN check of a direct call.
    self.proved_run = proved_run
    self.single_output = out_tree.kind is None and not out_statics
    # Whether tracing differentiated anything: a NaN output is then computed again with the
    # zero-absorbing chain rule (a second program, see `ad.recompute_if_nan`).
    self.differentiates = False
    # Whether its reverse pass divides by the gaps of a spectrum (see `run_noting_ties`).
    self.notes_ties = "_gap_div_noted(" in getattr(run, "__dfdx_source__", "")
    # The Variables the function reads: the program's last inputs, their values read at
    # every call (`_with_variables`), and the shapes and dtypes it was traced for.
    self.variables, self.var_avals = (), ()
    # The Variables the function assigns: their new values are the program's last outputs,
    # assigned after every call (`_write`).
    self.writes = ()


class _paused_gc:
  """Tracing and compiling make many objects and no garbage cycles; Python's cyclic collector
  would scan the growing program again and again (time superlinear in its length: 2.3x for
  an unrolled loop of 256 steps), so it waits until they are done."""
  __slots__ = ("was_enabled",)

  def __enter__(self):
    self.was_enabled = gc.isenabled()
    gc.disable()

  def __exit__(self, *exc):
    if self.was_enabled:
      gc.enable()


def _trace_to_program(f, args, kwargs, dynamic, statics_of, avals, name, variables=(),
                      writes=None):
  """Stage f on abstract versions of its dynamic arguments (and of the values of
  `variables`, which it reads: the program's last inputs). The Variables f assigns get back
  their values (tracing has no effect on them); with `writes` (a list), their final values
  are the program's last outputs, and `writes` lists them, for each call to assign."""
  store = {}
  leaves_tree = dynamic
  n = len(avals)
  avals = list(avals) + [_variable_aval(v) for v in variables]

  def flat_fun(*leaves):
    dyn_args, dyn_kwargs = tree_unflatten(leaves_tree, leaves[:n])
    call_args, call_kwargs = statics_of(dyn_args, dyn_kwargs)
    held = {id(v): state.held(v) for v in variables}
    for v, traced in zip(variables, leaves[n:]):
      state.hold(v, traced)
    frames = core.context.frames
    frame = frames[-1] if frames else {}
    try:
      out = f(*call_args, **call_kwargs)
      assigned = [(var, state.held(var)) for var, _ in frame.values()]
    finally:
      for key, (var, previous) in list(frame.items()):  # (what f assigned, as it was)
        if previous is not state.CREATED:  # (one f made gets its value at each call)
          state.hold(var, held.get(key, previous))
        del frame[key]
      for v in variables:
        state.hold(v, held[id(v)])
    if assigned and writes is None:
      raise TypeError(f"make_expr({name}): the function assigns Variables; trace it as "
                      "jit does (dfdx.jit), which assigns them at every call.")
    out_leaves, store["out_tree"] = tree_flatten(out)
    arrays, statics = [], {}
    for i, o in enumerate(out_leaves):
      if isinstance(o, (Tracer, np.ndarray, np.generic, bool, int, float, complex)):
        arrays.append(o)
      else:
        statics[i] = o
    store["out_statics"] = statics
    if writes is not None:
      writes[:] = [var for var, _ in assigned]
      arrays += [value for _, value in assigned]
    return arrays
  program, lifted = make_program(flat_fun, avals)
  return program, lifted, store["out_tree"], store["out_statics"]


def _variable_aval(var):
  value = state.held(var)
  return core.shaped_array(value.shape, value.dtype) if type(value) is np.ndarray \
      else value.aval


def _traced_with_variables(trace):
  """`trace(variables)` -> (program, lifted, ...), with the Variables the function reads made
  inputs: traced once noting them, and again with them as inputs where it read any (the
  first program had their values baked in). Returns the result and the Variables."""
  ctx = core.context
  outer = ctx.reads
  ctx.reads = {}
  try:
    with state.journal():  # (the Variables f assigns are tracked while it is traced)
      result = trace(())
    read = tuple(ctx.reads.values())
    if read:
      with state.journal():
        result = trace(read)
  finally:
    noted, ctx.reads = ctx.reads, outer
    if outer is not None:  # (an enclosing jit reads them too, through this call)
      outer.update(noted)
  return result, read


def _write(entry, outs):
  """Assign the Variables the entry's function assigns, from its call's last outputs."""
  k = len(entry.writes)
  for var, value in zip(entry.writes, outs[len(outs) - k:]):
    var.value = value if isinstance(value, Tracer) else _output(value)


def _with_variables(entry, leaves):
  """`leaves` and the current values of the Variables the entry reads; None where one no
  longer has the shape and dtype the entry was traced for."""
  values = [v._value for v in entry.variables]
  for value, (shape, dtype) in zip(values, entry.var_avals):
    if getattr(value, "shape", None) != shape or getattr(value, "dtype", None) != dtype:
      return None
  return [*leaves, *values]


def _rebuild(entry, outs):
  outs = list(outs)
  leaves = []
  it = iter(outs)
  for i in range(entry.out_tree.num_leaves):
    leaves.append(entry.out_statics[i] if i in entry.out_statics else next(it))
  return tree_unflatten(entry.out_tree, leaves)


def _output(x):
  """Outputs of a compiled call: 0-d arrays become NumPy scalars, as NumPy's own results."""
  if type(x) is np.ndarray and x.ndim == 0:
    return x[()]
  return x


# ---- jit ------------------------------------------------------------------------------------


def jit(f, static_argnums=(), static_argnames=(), *, explain=False, optimize=True):
  """Compile `f`: trace it once per input signature, optimize the program and run it as a
  flat sequence of NumPy calls.

  Args:
    f: the function (of arrays, pytrees of arrays, and static arguments).
    static_argnums / static_argnames: arguments that are settings rather than data: their
      values (hashable) are part of the cache key, and Python control flow may use them.
      They are checked against f's signature here: a position past its positional
      parameters (unless it takes *args) or a name it has no parameter for (unless it takes
      **kwargs) is an ArgnumsError.
    explain: log why each retrace happened (which argument's shape, dtype, structure or
      static value changed), on the "dfdx.jit" logger at WARNING level. Setting that
      logger to INFO explains retraces of every jitted function.
    optimize: run the optimizing passes (dead code, common subexpressions, constant folding,
      simplifications) before code generation.

  The jitted function's `compile(*args, **kwargs)` does the tracing and code generation for
  those arguments' signature ahead of time, without running.

  `dfdx.Variable`s the function reads are inputs of the compiled program, read at every
  call (a change of their shape or dtype traces again), and those it assigns are assigned
  after every call, as eager code does; Python control flow on their values needs them
  read before the call and passed as static arguments.

  >>> import dfdx.numpy as dnp
  >>> f = jit(lambda x: dnp.sum(dnp.sin(x) ** 2))
  >>> float(f(np.zeros(3)))
  0.0
  """
  name = getattr(f, "__name__", type(f).__name__)
  static_nums, static_names = _resolve_statics(f, static_argnums, static_argnames)
  cache: dict = {}
  last = []

  def split(args, kwargs):
    nums = {a % len(args) for a in static_nums if -len(args) <= a < len(args)}
    statics = tuple((f"argument {i}", _static_key(args[i], f"at position {i}", name))
                    for i in sorted(nums))
    statics += tuple((repr(k), _static_key(kwargs[k], repr(k), name))
                     for k in sorted(kwargs) if k in static_names)
    dyn_args = tuple(a for i, a in enumerate(args) if i not in nums)
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in static_names}

    def merge(dyn_args_, dyn_kwargs_):
      it = iter(dyn_args_)
      full = [args[i] if i in nums else next(it) for i in range(len(args))]
      return full, {**dyn_kwargs_, **{k: kwargs[k] for k in kwargs if k in static_names}}
    return dyn_args, dyn_kwargs, statics, merge

  fast_cache: dict = {}  # (structure, statics, shapes and dtypes) -> entry, for plain calls
  positions_by_count: dict = {}  # number of arguments -> the static positions among them

  def static_positions(n):
    """(set, sorted tuple) of the static positions among n positional arguments."""
    pos = positions_by_count.get(n)
    if pos is None:
      nums = frozenset(a % n for a in static_nums if -n <= a < n)
      pos = positions_by_count[n] = (nums, tuple(sorted(nums)))
    return pos

  @functools.wraps(f)
  def jitted(*args, **kwargs):
    if not kwargs and core.current_trace() is None and not core.context.zero_absorbing:
      if static_nums:  # the static values are part of the key, the others are the leaves
        pos, ordered = static_positions(len(args))
        statics = tuple([args[i] for i in ordered])
        dyn = tuple([a for i, a in enumerate(args) if i not in pos])
      else:
        statics, dyn = (), args
      try:  # arguments that are all arrays need no flattening: their structure is their number
        key = (len(args), statics,
               *[(x.shape, x.dtype) for x in dyn if type(x) is np.ndarray or _fail()])
        leaves = dyn
      except _NotFast:
        leaves, tree = tree_flatten(dyn)
        try:
          key = (tree, len(args), statics, tuple([(x.shape, x.dtype) for x in leaves
                                                  if type(x) is np.ndarray or _fail()]))
        except _NotFast:
          key = None
      try:
        entry = fast_cache.get(key) if key is not None else None
      except TypeError:  # an unhashable static value: the slow path explains it
        entry = key = None
      if entry is not None and entry.variables:
        leaves = _with_variables(entry, leaves)
        if leaves is None:  # (a Variable's shape or dtype changed: traced again)
          entry = fast_cache[key] = None
      if entry is not None:
        if entry.notes_ties:
          return run_noting_ties(entry, leaves, args, kwargs)
        outs = entry.run(*leaves) if entry.proved_run is None else entry.proved_run(leaves)
        try:
          if entry.differentiates and ad.holds_nan(outs) or nan_check is not None:
            return checked_outputs(entry, leaves, outs, args, kwargs)
        finally:
          if ad.nan_free:  # (proofs are for this call only)
            ad.nan_free.clear()
        if entry.writes:
          _write(entry, outs)
        if entry.single_output:
          return _output(outs[0])
        return _rebuild(entry, [_output(o) for o in outs])
      entry = slow_call_entry(args, kwargs)
      if key is not None and entry is not None:
        fast_cache[key] = entry
    return slow_call(args, kwargs)

  def checked_outputs(entry, leaves, outs, args, kwargs):
    """The results of a direct run: a derivative holding a NaN is computed again with the
    zero-absorbing chain rule (its own program); debug_nans looks at the rest."""
    if entry.differentiates and not core.context.zero_absorbing and ad.holds_nan(outs):
      return ad.run_zero_absorbing(lambda: slow_call(args, kwargs))
    if nan_check is not None:
      nan_check(entry, leaves, outs)
    if entry.writes:
      _write(entry, outs)
    return _rebuild(entry, [_output(o) for o in outs])

  def run_noting_ties(entry, leaves, args, kwargs):
    """A direct run of a program whose reverse pass divides by the gaps of a spectrum. One
    that met a tie is computed again without jit: eager reverse passes take the limit there
    (see ops/gaps.py)."""
    ties = core.context.ties_met
    outs = entry.run(*leaves)
    if core.context.ties_met != ties:
      return f(*args, **kwargs)
    return checked_outputs(entry, leaves, outs, args, kwargs)

  def slow_call_entry(args, kwargs):
    """The cached entry a call would use (compiling it if needed), or None."""
    result = slow_call(args, kwargs, entry_only=True)
    return result if isinstance(result, _Entry) else None

  def slow_call(args, kwargs, entry_only=False):
    dyn_args, dyn_kwargs, statics, merge = split(args, kwargs)
    leaves, tree = tree_flatten((dyn_args, dyn_kwargs))
    paths = None
    avals = []
    for i, x in enumerate(leaves):
      if isinstance(x, (np.ndarray, Tracer)):
        avals.append(core.shaped_array(x.shape, x.dtype) if type(x) is np.ndarray else x.aval)
      else:
        paths = paths or tree.leaf_paths()
        avals.append(_leaf_aval(x, _describe_path(paths[i]), name))
    sig = _Signature(tree, avals, statics)
    entry = cache.get((sig.key, core.context.zero_absorbing))
    with_variables = None
    if entry is not None and entry.variables:
      with_variables = _with_variables(entry, leaves)
      if with_variables is None:  # (a Variable's shape or dtype changed)
        entry = None
    if entry is None:
      if last and (explain or logger.isEnabledFor(logging.INFO)):
        level = logging.WARNING if explain else logging.INFO
        logger.log(level, "jit(%s): retracing because %s", name,
                   sig.explain_difference(last[-1]))
      made = core.context.jvp_traces
      with _paused_gc():
        writes = []
        (program, lifted, out_tree, out_statics), variables = _traced_with_variables(
            lambda variables: _trace_to_program(f, args, kwargs, tree, merge, avals, name,
                                                variables, writes))
        entry = _compile(program, out_tree, out_statics, name, optimize)
      entry.writes = tuple(writes)
      entry.differentiates = core.context.jvp_traces != made
      entry.variables = variables
      entry.var_avals = tuple((state.held(v).shape, state.held(v).dtype) for v in variables)
      with_variables = _with_variables(entry, leaves) if variables else None
      if lifted:  # closes over values of an enclosing transformation: not reusable
        leaves = with_variables if variables else leaves
        outs = jit_call_p.bind(*leaves, *lifted, program=entry.program, compiled=entry.run,
                               name=name)
        _write(entry, outs)
        return _rebuild(entry, outs)
      cache[sig.key, core.context.zero_absorbing] = entry
      last[:] = [sig]
    if entry_only:
      return entry
    if entry.variables:
      leaves = with_variables
    if core.current_trace() is None and not any(isinstance(x, Tracer) for x in leaves):
      if entry.notes_ties:
        return run_noting_ties(entry, leaves, args, kwargs)
      return checked_outputs(entry, leaves, entry.run(*leaves), args, kwargs)
    outs = jit_call_p.bind(*leaves, program=entry.program, compiled=entry.run, name=name)
    _write(entry, outs)
    # (a concrete result, untraced arguments under a transformation: as at top level)
    return _rebuild(entry, [o if isinstance(o, Tracer) else _output(o) for o in outs])

  def compile(*args, **kwargs):
    """Trace, optimize and generate code for the signature of these arguments (shapes,
    dtypes, structure and static values) without running it: a later call with that
    signature runs the compiled code at once. Returns the jitted function, so a definition
    can compile ahead of time: `step = dfdx.jit(step).compile(x0)`."""
    if core.current_trace() is not None or any(
        isinstance(x, Tracer) for x in tree_flatten((args, kwargs))[0]):
      raise errors.InvalidInputError(
          f"jit({name}).compile: called inside a transformation or on traced values. "
          "compile takes concrete arguments (arrays of the shapes and dtypes to compile "
          "for), outside grad, vmap and jit; call the jitted function itself there.")
    slow_call_entry(args, kwargs)
    return jitted
  jitted.compile = compile

  jitted.cache_size = lambda: len(cache)

  def clear_cache():
    cache.clear()
    fast_cache.clear()
  jitted.clear_cache = clear_cache
  return jitted


class _NotFast(Exception):
  pass


def _fail():
  raise _NotFast


def _resolve_statics(f, static_argnums, static_argnames, transform="jit"):
  """Static arguments by position and by name, each completed from the signature, so that a
  static argument is static however it is passed.

  Both are checked against the signature where it can be read (as JAX does): a position past
  the positional parameters, or a name that is no parameter, would otherwise be ignored in
  silence and the argument traced, to fail later with an unrelated error. A function taking
  `*args` accepts any position, one taking `**kwargs` any name but a positional-only one."""
  name = getattr(f, "__name__", type(f).__name__)
  nums = _static_argnums_tuple(static_argnums, name, transform)
  names = _static_argnames_tuple(static_argnames, name, transform)
  try:
    params = list(inspect.signature(f).parameters.values())
  except (TypeError, ValueError):  # (some builtins have none: nothing to check against)
    return set(nums), set(names)
  _check_statics(params, nums, names, name, transform)
  nums, names = set(nums), set(names)
  positional = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                inspect.Parameter.POSITIONAL_OR_KEYWORD)]
  for i, p in enumerate(positional):
    if p.name in names:
      nums.add(i)
    if i in nums and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
      names.add(p.name)
  return nums, names


def _static_argnums_tuple(static_argnums, name, transform):
  """static_argnums as a tuple of ints, or an error saying what was given."""
  def is_index(a):
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool)
  if is_index(static_argnums):
    return (int(static_argnums),)
  if not isinstance(static_argnums, (str, bytes)):
    try:
      nums = tuple(static_argnums)
    except TypeError:
      nums = None
    if nums is not None and all(is_index(a) for a in nums):
      return tuple(int(a) for a in nums)
    if nums is not None:
      bad = next(a for a in nums if not is_index(a))
      raise errors.InvalidInputError(
          f"{transform}({name}): static_argnums must be an int or a sequence of ints "
          f"(positions of {name}'s arguments), but got {static_argnums!r}, which holds "
          f"{bad!r} of type {type(bad).__name__}. Give positions as ints, and names in "
          "static_argnames.")
  hint = (f" static_argnums takes positions; to choose a parameter by name use "
          f"static_argnames={static_argnums!r}." if isinstance(static_argnums, str) else "")
  raise errors.InvalidInputError(
      f"{transform}({name}): static_argnums must be an int or a sequence of ints (positions "
      f"of {name}'s arguments), but got {static_argnums!r} of type "
      f"{type(static_argnums).__name__}.{hint}")


def _static_argnames_tuple(static_argnames, name, transform):
  """static_argnames as a tuple of strings, or an error saying what was given."""
  if isinstance(static_argnames, str):
    return (static_argnames,)
  try:
    names = tuple(static_argnames)
  except TypeError:
    names = None
  if names is not None and all(isinstance(n, str) for n in names):
    return names
  if names is not None:
    bad = next(n for n in names if not isinstance(n, str))
    raise errors.InvalidInputError(
        f"{transform}({name}): static_argnames must be a string or a sequence of strings "
        f"(names of {name}'s parameters), but got {static_argnames!r}, which holds {bad!r} "
        f"of type {type(bad).__name__}. Give names as strings, and positions in "
        "static_argnums.")
  hint = (f" static_argnames takes parameter names; to choose an argument by position use "
          f"static_argnums={static_argnames!r}."
          if isinstance(static_argnames, (int, np.integer)) else "")
  raise errors.InvalidInputError(
      f"{transform}({name}): static_argnames must be a string or a sequence of strings "
      f"(names of {name}'s parameters), but got {static_argnames!r} of type "
      f"{type(static_argnames).__name__}.{hint}")


def _check_statics(params, nums, names, name, transform):
  """Raise ArgnumsError for a static position or name the signature `params` cannot take."""
  P = inspect.Parameter
  shown = name + str(inspect.Signature(  # (without defaults, which may be large arrays)
      [p.replace(default=P.empty, annotation=P.empty) for p in params]))
  n_pos = sum(p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD) for p in params)
  if not any(p.kind is P.VAR_POSITIONAL for p in params):
    bad = [a for a in nums if not -n_pos <= a < n_pos]
    if bad:
      valid = (f"positions 0 to {n_pos - 1} (or -{n_pos} to -1)" if n_pos else
               "no position")
      raise errors.ArgnumsError(
          f"{transform}({name}): static_argnums={bad[0]} is out of range: {shown} takes "
          f"{n_pos} positional argument{'s' if n_pos != 1 else ''}, so static_argnums can "
          f"name {valid}. Give the position of a parameter of {name}, or name it with "
          "static_argnames='...'.")
  by_name = {p.name: p for p in params}
  for n in names:
    p = by_name.get(n)
    if p is not None and p.kind is P.POSITIONAL_ONLY:
      raise errors.ArgnumsError(
          f"{transform}({name}): static_argnames={n!r} names a positional-only parameter of "
          f"{shown}, which cannot be passed by name. Choose it by position with "
          f"static_argnums={params.index(p)}.")
    if (p is None or p.kind is P.VAR_POSITIONAL or p.kind is P.VAR_KEYWORD) and not any(
        q.kind is P.VAR_KEYWORD for q in params):
      choices = [q.name for q in params if q.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)]
      raise errors.ArgnumsError(
          f"{transform}({name}): static_argnames={n!r} is not a parameter of {shown}. Name "
          "parameters of the function"
          + (f" ({', '.join(map(repr, choices))})" if choices else "")
          + ", or choose arguments by position with static_argnums.")


def _compile(program, out_tree, out_statics, name, optimize):
  from dfdx._src import (codegen, codegen_rules, passes, reverse_cache, tiling,  # noqa: F401
                         uniform)  # (codegen_rules registers the rules)
  # The entry's program is what enclosing transformations differentiate: nested calls (and
  # so custom derivative rules) stay in it; the compiled code inlines them.
  transformable = passes.optimize(program, inline=False) if optimize else program
  compiled = passes.optimize(transformable, evaluate_only=True) if optimize else program
  certificates, extended = (reverse_cache._nan_certificates(compiled) if optimize
                            else (None, compiled))
  run = (optimize and tiling.compile_tiled(extended, name, specialize=True)) or (
      uniform.compile_specialized(
          extended, lambda p, checks: codegen.compile_program(p, name, checks=checks), name)
      if optimize else codegen.compile_program(compiled, name))
  if certificates is None:
    return _Entry(transformable, run, out_tree, out_statics, name)
  n, run_all = len(compiled.outs), run

  def run(*leaves):  # (the outputs alone, for every other caller)
    return run_all(*leaves)[:n]
  run.__dict__.update(run_all.__dict__)  # (its source, its tiles)
  proved_run = lambda leaves: reverse_cache._certify(  # noqa: E731
      run_all(*leaves), leaves, certificates, n)
  return _Entry(transformable, run, out_tree, out_statics, name, proved_run)


# ---- make_expr ------------------------------------------------------------------------------


class Expr:
  """The program of a traced function: printable (`str`, and the same `repr` in a
  notebook), checkable, evaluable, and drawable."""

  def __init__(self, program: Program, in_tree, out_tree, out_statics, name):
    self.program, self.in_tree, self.out_tree = program, in_tree, out_tree
    self.out_statics, self.name = out_statics, name

  def __str__(self):
    return pp_program(self.program)

  __repr__ = __str__

  def _repr_pretty_(self, p, cycle):
    p.text(str(self))

  @property
  def eqns(self):
    return self.program.eqns

  def typecheck(self):
    from dfdx._src.ir import typecheck_program
    typecheck_program(self.program)
    return self

  def __call__(self, *args, **kwargs):
    """Evaluate the program (with bind: differentiable again) on new arguments of the same
    signature."""
    leaves, tree = tree_flatten((args, kwargs))
    if tree != self.in_tree:
      raise errors.PytreeError(f"make_expr({self.name}): the program was traced for arguments "
                               f"{self.in_tree}, got {tree}.")
    outs = eval_program(self.program, *leaves)
    entry = _Entry(self.program, None, self.out_tree, self.out_statics, self.name)
    return _rebuild(entry, outs)

  def to_source(self, name=None):
    from dfdx._src import codegen
    return codegen.program_source(self.program, name or self.name)

  def to_dot(self):
    from dfdx._src import pictures
    return pictures.to_dot(self.program, self.name)

  def to_svg(self, path=None):
    from dfdx._src import pictures
    svg = pictures.to_svg(self.program, self.name)
    if path is not None:
      with open(path, "w") as fh:
        fh.write(svg)
    return svg


def make_expr(f, optimize=False, static_argnums=(), static_argnames=()):
  """Return a function that traces `f` (any composition: `make_expr(grad(f))`,
  `make_expr(hessian(f))`, `make_expr(vmap(grad(f)))`) on its arguments and returns the
  program as an `Expr`, printable like `jax.make_jaxpr` or Nx's `debug_expr`. With
  `optimize=True` the program is shown after jit's passes.

  >>> import dfdx, dfdx.numpy as dnp
  >>> print(make_expr(dnp.sin)(1.0))
  { lambda a:float64[]. let
      b:float64[] = sin a
    in (b,) }
  """
  name = getattr(f, "__name__", type(f).__name__)
  static_nums, names = _resolve_statics(f, static_argnums, static_argnames, "make_expr")

  @functools.wraps(f)
  def traced(*args, **kwargs):
    nums = {a % len(args) for a in static_nums if -len(args) <= a < len(args)}
    dyn_args = tuple(a for i, a in enumerate(args) if i not in nums)
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in names}
    leaves, tree = tree_flatten((dyn_args, dyn_kwargs))
    avals = [_leaf_aval(x, "?", name) if not isinstance(x, np.ndarray) else
             core.shaped_array(x.shape, x.dtype) for x in leaves]

    def merge(dyn_args_, dyn_kwargs_):
      it = iter(dyn_args_)
      return ([args[i] if i in nums else next(it) for i in range(len(args))],
              {**dyn_kwargs_, **{k: kwargs[k] for k in names if k in kwargs}})
    with _paused_gc():
      program, lifted, out_tree, out_statics = _trace_to_program(f, args, kwargs, tree, merge,
                                                                 avals, name)
    if lifted:
      raise errors.InvalidInputError(
          f"make_expr({name}) closes over values traced by an enclosing transformation; "
          "call make_expr outside other transformations.")
    if optimize:
      from dfdx._src import passes
      program = passes.optimize(program)
    return Expr(program, tree, out_tree, out_statics, name)
  return traced

