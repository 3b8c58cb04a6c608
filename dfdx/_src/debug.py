"""debug_nans: stop at the first NaN a computation produces, and say where it came from.

While it is on, an operation that makes a NaN from inputs that hold none raises `NaNError`,
naming the primitive (or `dfdx.numpy` function), whether it ran in the forward computation or
in a derivative rule (and whose), the user's line of the forward operation responsible, the
inputs, and how to fix it. A NaN that came in with the inputs, or with a constant that a
function, a checkpointed block or a loop's body closes over, is not reported.

Two detectors, both silent until a NaN appears:
  * NumPy's invalid-operation flag (the way IEEE arithmetic makes a NaN out of numbers: 0/0,
    inf - inf, log(-1)), through `np.seterrcall`: it covers primitives whose impl is one of
    NumPy's ufuncs, and `dfdx.numpy` calls on concrete values, which go straight to NumPy;
  * a scan of the outputs of every other primitive evaluated on concrete values, and of a
    jitted call's outputs. A jitted call, a loop (scan, while_loop and its derivatives) or
    a cond whose compiled code made a NaN is evaluated again one equation (and step) at a
    time, to find the equation responsible.

It costs nothing while off: switching it on swaps the eval path for a checking one
(`Primitive.bind` and `bind_in`; the plain ones are untouched) and fills hooks that are
`None` or plain defaults while off:
  * `ad.new_tape`: tapes also record the user's line of each operation (reverse mode runs
    after the forward line has left the stack);
  * `staging.user_source_line`: equations staged by a derivative rule say whose rule, and
    those that repeat an equation of a program being evaluated take its line;
  * `staging.record_all_sources`: every program records its equations' lines, also those
    staged without them while off (a checkpointed block, a loop's body, a derivative's
    program), so that a NaN made inside one is reported at the user's line of its operation;
  * `jit.nan_check`: a jitted call whose outputs hold a NaN evaluates its program again one
    equation at a time, with the checks, to find the equation responsible;
  * `ad.recompute_if_nan` (the zero-absorbing chain rule): a NaN made in a derivative rule
    is held back while the transformation may compute the derivative again without it, and
    raised only if the result keeps a NaN.

Where a NaN came from is worked out once one appears, from the Python stack: frames of dfdx's
interpreters (a JVP rule being applied, a tape node's backward rule, a program's equation
being evaluated) and the first frame outside dfdx. The switch is global, not per thread.
"""
from __future__ import annotations

import linecache
import os
import re
import sys
import threading
import warnings

import numpy as np

from dfdx._src import ad, core, ir, jit, staging
from dfdx._src.errors import NaNError

_enabled = False
_plain_bind = core.Primitive.bind
_plain_bind_in = core.bind_in
_plain_source_line = staging.user_source_line
_plain_recompute = getattr(ad, "recompute_if_nan", None)


class debug_nans:
  """Raise `dfdx.NaNError` at the first NaN that a forward or derivative computation produces.

  A context manager, and a switch:

  >>> import dfdx, dfdx.numpy as dnp
  >>> with dfdx.debug_nans():                   # on inside the block
  ...   dfdx.grad(lambda x: dnp.log(x - 2.0))(1.0)   # doctest: +ELLIPSIS
  Traceback (most recent call last):
  dfdx._src.errors.NaNError: debug_nans: `log` produced a NaN from inputs free of NaN, ...
  >>> _ = dfdx.debug_nans(True)                 # on from now on
  >>> _ = dfdx.debug_nans(False)                # and off again

  `with debug_nans(False):` turns it off inside a block. The environment variable
  `DFDX_DEBUG_NANS=1` turns it on when dfdx is imported. The switch is global (not per
  thread): blocks in several threads at once keep it on until the last one ends. A NaN
  already present in a function's inputs is not reported: only NaNs produced by an
  operation whose inputs hold none.
  """
  __slots__ = ("enabled", "prev")

  def __init__(self, enabled=None):
    self.enabled = enabled
    self.prev = None if enabled is None else _set(bool(enabled))  # a call switches at once

  def __enter__(self):
    global _blocks, _before_blocks
    if self.enabled is None:
      with _blocks_lock:
        if _blocks == 0:
          _before_blocks = _set(True)
        _blocks += 1
    return self

  def __exit__(self, *exc):
    global _blocks
    if self.enabled is None:
      with _blocks_lock:
        _blocks -= 1
        if _blocks == 0:
          _set(_before_blocks)
    elif self.prev is not None:
      _set(self.prev)

  @staticmethod
  def is_enabled() -> bool:
    """Whether the NaN checks are on now."""
    return _enabled

  def __repr__(self):
    return f"debug_nans({'' if self.enabled is None else self.enabled})"


# `with debug_nans():` blocks open now (in any thread), and whether the checks were on before
# the first of them: the last to end restores that.
_blocks = 0
_before_blocks = False
_blocks_lock = threading.RLock()


def _set(on: bool) -> bool:
  """Turn the checks on or off; returns whether they were on."""
  global _enabled
  prev = _enabled
  if on != prev:
    _install() if on else _uninstall()
    _enabled = on
  return prev


def _install():
  global _numpy_prev
  _numpy_prev = (np.seterr(invalid="call"), np.seterrcall(_numpy_invalid))
  core.context.numpy_reports = True
  ad.quiet_reverse_passes = False
  _complete_unscanned()
  core.Primitive.bind = _checked_bind
  _swap_bind_in(_plain_bind_in, _checked_bind_in)
  ad.new_tape = _SourcedTape
  staging.user_source_line = _staging_source_line
  jit.nan_check = _check_jitted_call
  staging.record_all_sources = True
  if _plain_recompute is not None:
    ad.recompute_if_nan = _recompute_if_nan


def _uninstall():
  if core.context.numpy_reports:  # (NumPy's settings are those of this thread)
    np.seterr(**_numpy_prev[0])
    np.seterrcall(_numpy_prev[1])
    core.context.numpy_reports = False
  ad.quiet_reverse_passes = True
  core.Primitive.bind = _plain_bind
  _swap_bind_in(_checked_bind_in, _plain_bind_in)
  ad.new_tape = list
  staging.user_source_line = _plain_source_line
  jit.nan_check = None
  staging.record_all_sources = False
  if _plain_recompute is not None:
    ad.recompute_if_nan = _plain_recompute


_bind_in_users = ([], 0)  # (dfdx modules that import bind_in by name, len(sys.modules) then)


def _swap_bind_in(old, new):
  """Rebind `bind_in` in every dfdx module that imported it by name (ad, batching, ...)."""
  global _bind_in_users
  users, seen = _bind_in_users
  if seen != len(sys.modules):
    users = [m for name, m in list(sys.modules.items())
             if (name == "dfdx" or name.startswith("dfdx.")) and hasattr(m, "bind_in")]
    _bind_in_users = users, len(sys.modules)
  for module in users:
    if module.bind_in is old:
      module.bind_in = new


# ---- the checking eval path ---------------------------------------------------------------


def _checked_bind(self, *args, **params):
  """`Primitive.bind` while debug_nans is on."""
  trace = core.context.trace
  if trace is None:
    out = self.impl(*args, **params)
    if _scanned(self) and _holds_nan(out):
      _produced_nan(self, args, params, out)
    return out
  return trace.process_primitive(self, args, params)


def _checked_bind_in(trace, prim, args, params):
  """`core.bind_in` while debug_nans is on."""
  if trace is None:
    out = prim.impl(*args, **params)
    if _scanned(prim) and _holds_nan(out):
      _produced_nan(prim, args, params, out)
    return out
  return _plain_bind_in(trace, prim, args, params)


def _scanned(prim):
  """Whether `prim`'s output is scanned for NaNs: always, in a thread where NumPy does not
  report invalid operations to `_numpy_invalid` (its error callback is per thread)."""
  return prim not in _unscanned or not core.context.numpy_reports


# Primitives whose outputs need no scan: those whose impl is one of NumPy's own ufuncs (NumPy
# reports every NaN they make from numbers as an invalid operation, IEEE's flag, which its
# loops set and check: `_numpy_invalid` reports them; SciPy's ufuncs signal domain errors
# otherwise, so theirs are scanned), and those that only move, select or cast values (a NaN
# in their output came in).
_unscanned: set = set()
_unscanned_from = 0  # how many primitives there were when `_unscanned` was last completed
_MOVE_VALUES = frozenset([
    "broadcast_to", "concatenate", "convert_element_type", "gather", "imag", "pad",
    "partition", "real", "reduce_max", "reduce_min", "reshape", "rev", "scatter", "select",
    "slice", "sort", "stop_gradient", "transpose"])


def _complete_unscanned():
  global _unscanned_from
  prims = core.all_primitives
  if _unscanned_from != len(prims):
    _unscanned_from = len(prims)
    _unscanned.update(p for p in prims.values() if p.name in _MOVE_VALUES or (
        type(p.impl) is np.ufunc and getattr(np, p.impl.__name__, None) is p.impl))


_min = np.minimum.reduce


def _holds_nan(x) -> bool:
  """Whether a concrete value (or a list of them) holds a NaN; tracers and non-floating
  values hold none. NaN propagates through a minimum, so one reduction screens an array."""
  if type(x) is np.ndarray:
    if x.dtype.kind not in "fc" or x.size == 0:
      return False
    m = _min(x, axis=None)
    return m != m
  if isinstance(x, (float, complex, np.generic)):
    return x != x
  if type(x) in (list, tuple):
    return any([_holds_nan(o) for o in x])
  return False


def _holds_nan_tree(tree) -> bool:
  from dfdx._src.tree import tree_leaves
  return any([_holds_nan(leaf) for leaf in tree_leaves(tree)])


def _produced_nan(prim, args, params, out, frame=None):
  """`prim` returned a NaN (evaluated in `frame`): report it if its inputs held none."""
  if _holds_nan(list(args)) or any([_holds_nan(v) for v in params.values()]):
    return  # not produced here: it came in
  if prim.name in _EVALUATED_CALLS:
    return  # its equations were checked as they were evaluated: the NaN came in
  rerun = _RERUNS.get(prim.name)
  if rerun is not None:
    rerun(args, **params)  # raises at the equation responsible
  if _constants_hold_nan(params.values(), set()):
    return  # it came in through a constant of its program (a value the function closed over)
  where = _locate(frame or sys._getframe(1), prim, args)
  _report(_nan_error(prim.name, where, args, out))


# Primitives whose impl evaluates their program with `bind`, each equation checked: a NaN in
# their outputs was reported where it was made, or came in (through a constant of the
# program), or is held back (a derivative rule's, see `_report`).
_EVALUATED_CALLS = frozenset(["checkpoint_call", "custom_jvp_call", "custom_vjp_call"])


def _constants_hold_nan(params, seen) -> bool:
  """Whether the programs among `params` (and those nested in their equations) hold a NaN
  in a constant or a literal: a value the function closed over, which came in."""
  for value in params:
    programs = value if type(value) in (tuple, list) else (value,)
    for program in programs:
      if not isinstance(program, ir.Program) or id(program) in seen:
        continue
      seen.add(id(program))
      if _holds_nan(program.const_vals) or _holds_nan(
          [o.val for o in program.outs if type(o) is ir.Lit]):
        return True
      for eqn in program.eqns:
        if _holds_nan([a.val for a in eqn.inputs if type(a) is ir.Lit]) or \
            _constants_hold_nan(eqn.params.values(), seen):
          return True
  return False


# ---- compiled loops and branches, evaluated again a step and an equation at a time ----------
#
# A compiled primitive whose outputs hold a NaN (its inputs holding none) runs again the
# loop its generated code runs, with each step's programs evaluated one equation at a time:
# the checks then raise at the equation responsible, at the user's line recorded for it.


def _eval_jit_call(args, *, program, **_):
  ir.eval_program(program, *args)


def _eval_scan(args, *, body, num_carry, num_xs, length, reverse, **_):
  """A scan, a step at a time."""
  carry, xs, consts = args[:num_carry], args[num_carry:num_carry + num_xs], \
      args[num_carry + num_xs:]
  for i in (reversed(range(length)) if reverse else range(length)):
    carry = ir.eval_program(body, *carry, *[x[i] for x in xs], *consts)[:num_carry]


def _evaluating(program):
  """`program` as the function the generated code calls for it, evaluated with bind."""
  return lambda *xs: ir.eval_program(program, *xs)


def _eval_while(args, *, cond, body, num_vals, num_cond_consts):
  """A while loop, a step at a time (the loop of its generated code)."""
  from dfdx._src.codegen import helper_function
  helper_function("_while_loop")(_evaluating(cond), _evaluating(body), num_vals,
                                 num_cond_consts, *args)


def _eval_while_tangent(args, *, step, num_vals, num_consts):
  """A while loop's tangents, a step at a time."""
  from dfdx._src.codegen import helper_function
  helper_function("_tangent_loop")(_evaluating(step), num_vals, num_consts,
                                   len(step.outs) - num_vals, *args)


def _eval_while_reverse(args, *, step, num_vals, num_consts):
  """A while loop's reverse pass, a step at a time."""
  from dfdx._src.codegen import helper_function
  from dfdx._src.ops import branches
  fwd, back = branches._cached_parts(step, num_vals, num_consts)
  num_t = len(step.outs) - num_vals
  acc_like = tuple((a.shape, a.dtype) for a in step.in_avals[num_vals + num_consts + num_t:])
  helper_function("_reverse_loop")(_evaluating(fwd), _evaluating(back), num_vals, num_consts,
                                   acc_like, branches.REVERSE_LOOP_BYTES, *args)


def _eval_cond(args, *, branches, num_consts, **_):
  """A cond, its branch evaluated one equation at a time."""
  from dfdx._src.ops.branches import _branch_args, _pick_branch
  k = _pick_branch(args[0], len(branches))
  ir.eval_program(branches[k], *_branch_args(args[1:], branches, num_consts, k))


_RERUNS = {"jit_call": _eval_jit_call, "scan": _eval_scan, "while": _eval_while,
           "while_tangent": _eval_while_tangent, "while_reverse": _eval_while_reverse,
           "cond": _eval_cond}


def _report(err):
  """Raise `err`, or hold it back while a transformation may compute its derivative again
  without NaNs (see `_recompute_if_nan`)."""
  held = core.context.held
  if held is not None and err.context in ("jvp", "vjp", "sum", "linear"):
    held.append(err)
    return
  raise err


# ---- NumPy's invalid-operation flag ------------------------------------------------------
#
# While debug_nans is on, NumPy reports invalid operations to `_numpy_invalid` (NaNs that an
# operation merely passes on are not invalid). It reports those of the primitives whose
# outputs are not scanned, and of `dfdx.numpy` calls on concrete values (which call NumPy
# directly: no primitive runs). Every other invalid operation (primitives whose outputs are
# scanned, jitted programs, the user's own NumPy calls) gets NumPy's previous setting.

_LAYER_DIRS = tuple(os.path.join(staging._PACKAGE_DIR, "_src", d) for d in ("numpy", "scipy_"))
_numpy_prev = None  # (np.seterr settings, np.seterrcall handler) from before debug_nans


def _numpy_invalid(kind, flag):
  """NumPy's handler of invalid operations while debug_nans is on (`np.seterrcall`)."""
  if not _enabled:  # (switched off in another thread, which cannot reset this one's NumPy)
    return _numpy_fallback(kind, flag)
  frame = sys._getframe(1)
  while frame is not None and _NUMPY_DIR in frame.f_code.co_filename and \
      not frame.f_code.co_filename.startswith(_LAYER_DIRS):
    frame = frame.f_back  # NumPy's own Python code (reductions)
  if frame is not None and frame.f_code in _EVAL_CODES:  # a primitive's impl
    loc = frame.f_locals
    prim = loc.get("self", loc.get("prim"))
    if prim not in _unscanned:
      return _numpy_fallback(kind, flag)  # its output is scanned when it returns
    args, params = loc["args"], loc["params"]
    with np.errstate(all="ignore"):
      out = prim.impl(*args, **params)
    if not _holds_nan(out):  # not a NaN: inf cast to int, say
      return _numpy_fallback(kind, flag)
    return _produced_nan(prim, args, params, out, frame)
  layer = frame
  if layer is None or not layer.f_code.co_filename.startswith(_LAYER_DIRS):
    return _numpy_fallback(kind, flag)
  f = layer
  while f is not None and _kind(f.f_code) != _USER:
    if f.f_code in _CHECKED_ELSEWHERE:
      return _numpy_fallback(kind, flag)
    f = f.f_back
  code, loc = layer.f_code, layer.f_locals
  inputs = [loc[n] for n in code.co_varnames[:code.co_argcount] if n in loc]
  if _holds_nan(inputs):
    return None
  np_fun = loc.get("np_fun")
  name = getattr(np_fun, "__name__", None) or code.co_name
  _report(_nan_error(f"dfdx.numpy.{name}", _locate(layer, None, ()), inputs, None))


def _numpy_fallback(kind, flag):
  """What NumPy would have done under the settings from before debug_nans."""
  mode = _numpy_prev[0].get("invalid", "warn")
  if mode == "warn":
    warnings.warn(f"{kind} encountered", RuntimeWarning, stacklevel=3)
  elif mode == "raise":
    raise FloatingPointError(f"{kind} encountered")
  elif mode == "call" and _numpy_prev[1] is not None:
    handler = _numpy_prev[1]
    return handler(kind, flag) if callable(handler) else handler.write(f"{kind} encountered\n")
  elif mode in ("print", "log"):
    print(f"Warning: {kind} encountered")
  return None


# ---- where a NaN came from ----------------------------------------------------------------

# Kinds of frames: code objects of dfdx's interpreters, and the verdict for every other code
# object seen (inside dfdx or NumPy, or the user's).
_USER, _INSIDE, _PROGRAM, _JVP, _BACKWARD, _SUM, _TANGENT, _TAPE = range(8)
_kinds: dict = {}


def _register(kind, *functions):
  for fn in functions:
    code = getattr(fn, "__code__", None)
    if code is not None:
      _kinds[code] = kind


_register(_PROGRAM, ir.eval_program)
_register(_JVP, getattr(ad.JVPTrace, "process_primitive", None))
_register(_BACKWARD, *[getattr(getattr(ad, cls, None), "backward", None)
                       for cls in ("_NodeRules", "_ResidualNode", "_Eqn")])
_register(_TANGENT, *[getattr(getattr(ad, cls, None), "forward", None)
                      for cls in ("_NodeRules", "_Eqn")])
_register(_SUM, getattr(ad, "_accumulate", None))
_register(_TAPE, ad.Linearized.transpose, ad.Linearized.forward)
_STAGING_PROCESS = staging.StagingTrace.process_primitive.__code__
_LINEAR_EQN = getattr(ad, "_Eqn", None)  # a linear operation a JVP rule recorded on a tape
_NUMPY_DIR = os.sep + "numpy" + os.sep
# Evaluations whose NaNs are checked elsewhere: primitives (their outputs), jitted calls.
_EVAL_CODES = {_checked_bind.__code__, _checked_bind_in.__code__}
_CHECKED_ELSEWHERE = _EVAL_CODES | {
    c for c in jit.jit.__code__.co_consts if getattr(c, "co_name", None) == "jitted"}


def _kind(code):
  kind = _kinds.get(code)
  if kind is None:
    filename = code.co_filename
    inside = (filename.startswith(staging._PACKAGE_DIR) or _NUMPY_DIR in filename
              or filename.startswith("<dfdx"))  # a jitted function's generated code
    kind = _kinds[code] = _INSIDE if inside else _USER
  return kind


def _user_site(frame):
  """The user's line that `frame` runs for: the first frame outside dfdx, as (code, line),
  or the recorded source of the program equation being evaluated on the way."""
  while frame is not None:
    code = frame.f_code
    kind = _kinds.get(code)
    if kind is None:
      kind = _kind(code)
    if kind == _USER:
      return code, frame.f_lineno
    if kind == _PROGRAM:
      eqn = frame.f_locals.get("eqn")
      if eqn is not None and eqn.source:
        return eqn.source
    frame = frame.f_back
  return None


class _SourcedTape(list):
  """A tape (`ad.TapeTrace.eqns`) that also records the user's line of each operation
  appended, and for a linear operation recorded by a JVP rule, whose rule it was."""
  __slots__ = ("sources",)

  def __init__(self):
    super().__init__()
    self.sources = {}

  def append(self, node):
    list.append(self, node)
    frame = sys._getframe(1)
    rule_of = None
    if type(node) is _LINEAR_EQN:
      f = frame
      while f is not None and _kinds.get(f.f_code) != _JVP:
        f = f.f_back
      rule_of = None if f is None else f.f_locals.get("prim")
    self.sources[id(node)] = (rule_of, _user_site(frame))


class _Where:
  """Where a NaN was produced. `context`: "forward", "jvp" (in a JVP rule), "vjp" (in a
  reverse-mode rule), "sum" (adding up the cotangents of one value in reverse mode) or
  "linear" (applying a linearized derivative); `rule_of`: the primitive whose rule it was;
  `site`: the user's line of the forward operation, as (code, line) or a program equation's
  source; `ran_from`: the user's line the derivative ran from."""
  __slots__ = ("context", "rule_of", "site", "ran_from")

  def __init__(self, context, rule_of, site, ran_from=None):
    self.context, self.rule_of, self.site, self.ran_from = context, rule_of, site, ran_from


class _RuleSource(str):
  """The source of an equation staged by a derivative rule (while debug_nans is on): reads
  as "file:line (function) [reverse-mode rule of `sqrt`]" and keeps the parts."""

  def __new__(cls, where):
    text = f"{_site_text(where.site)} [{_CONTEXT_TAGS[where.context]} `{where.rule_of}`]"
    self = super().__new__(cls, text)
    self.where = where
    return self


_CONTEXT_TAGS = {"jvp": "JVP rule of", "vjp": "reverse-mode rule of",
                 "linear": "linearized derivative of",
                 "sum": "reverse mode, adding up the cotangents of an input of"}


def _locate(frame, prim, args) -> _Where:
  """Where `prim(*args)`, evaluated under `frame`, runs for (see `_Where`)."""
  context, rule_of, node, tape, summing, site = "forward", None, None, None, False, None
  while frame is not None:
    code = frame.f_code
    kind = _kinds.get(code)
    if kind is None:
      kind = _kind(code)
    if kind == _USER:
      site = (code, frame.f_lineno)
      break
    if kind == _PROGRAM:
      source = frame.f_locals["eqn"].source if "eqn" in frame.f_locals else None
      if source:
        if context == "forward" and isinstance(source, _RuleSource):
          return source.where
        site = source
        break
    elif context == "forward":
      if kind == _JVP:
        # Its JVP rule runs once `rule` is assigned; before that the frame computes the
        # primal (a checkpointed block's equations, say) or passes the operation on.
        loc = frame.f_locals
        if "rule" in loc and not _is_primal_call(loc, prim, args):
          context, rule_of = "jvp", _name(loc.get("prim"))
      elif kind == _SUM:
        summing = True
      elif kind == _BACKWARD or kind == _TANGENT:
        loc = frame.f_locals
        node = loc.get("self")
        summing = summing or "arg_cts" in loc  # the rule has returned: adding up its results
        context = "linear" if kind == _TANGENT else "sum" if summing else "vjp"
    elif node is not None and tape is None and kind == _TAPE:
      tape = frame.f_locals["self"].eqns
    frame = frame.f_back
  if node is None:
    return _rule_of_rule(_Where(context, rule_of, site))
  recorded_rule, recorded_site = getattr(tape, "sources", {}).get(id(node), (None, None))
  return _rule_of_rule(_Where(context, _name(recorded_rule or getattr(node, "prim", None)),
                              recorded_site, site))


def _rule_of_rule(where):
  """`where`, a derivative of an operation that a derivative rule staged (a checkpointed
  block's or a loop body's derivative, differentiated again), said of that rule's primitive
  and forward line: the operation the user wrote."""
  if isinstance(where.site, _RuleSource):
    where.rule_of, where.site = where.site.where.rule_of, where.site.where.site
  return where


def _name(prim):
  return None if prim is None else prim.name


def _is_primal_call(loc, prim, args):
  """In a JVP frame: whether `prim(*args)` is the primal computation of the primitive being
  differentiated (the same primitive on the same primal objects), not part of its rule."""
  primals = loc.get("primals")
  return (prim is not None and loc.get("prim") is prim and primals is not None
          and len(primals) == len(args) and all(a is b for a, b in zip(args, primals)))


def _staging_source_line(skip_numpy=True):
  """`staging.user_source_line` while debug_nans is on: for an equation staged by a
  derivative rule, the forward operation's line and whose rule (a `_RuleSource`)."""
  frame = sys._getframe(1)
  if frame.f_code is _STAGING_PROCESS:
    loc = frame.f_locals
    where = _locate(frame, loc.get("prim"), loc.get("args", ()))
    if where.context != "forward" and where.rule_of is not None and where.site is not None:
      return _RuleSource(where)
    if where.context == "forward" and isinstance(where.site, str):
      return where.site  # (it repeats an equation of a program being evaluated: its line)
  return _plain_source_line(skip_numpy)


# ---- the message --------------------------------------------------------------------------


def _site_text(site):
  if site is None or isinstance(site, str):
    return site
  code, line = site
  return f"{code.co_filename}:{line} ({code.co_name})"


_SITE = re.compile(r"^(.*):(\d+) \(")


def _code_text(site):
  """The text of the user's line (None where the file cannot be read)."""
  if site is None:
    return None
  if isinstance(site, str):
    m = _SITE.match(site)
    if m is None:
      return None
    filename, line = m.group(1), int(m.group(2))
  else:
    filename, line = site[0].co_filename, site[1]
  return linecache.getline(filename, line).strip() or None


def _describe(x):
  try:
    aval = core.get_aval(x)
  except TypeError:
    return type(x).__name__
  text = aval.str_short() + (" (Python scalar)" if aval.weak_type else "")
  if aval.shape == ():
    text += f" = {np.asarray(x).item()!r}"
  return text


def _values_at_first_nan(args, out):
  """The index of the first NaN of `out`, and the inputs' values there (when they all
  broadcast to its shape)."""
  out = np.asarray(out)
  if out.ndim == 0:
    return None, []
  index = tuple(int(i) for i in np.argwhere(np.isnan(out))[0])
  try:
    return index, [repr(np.broadcast_to(np.asarray(a), out.shape)[index].item()) for a in args]
  except (ValueError, TypeError):
    return index, []


def _nan_error(name, where, args, out):
  """The NaNError for `name` (a primitive or a dfdx.numpy function) producing `out`."""
  site, ran_from = _site_text(where.site), _site_text(where.ran_from)
  rule = f"`{where.rule_of}`" if where.rule_of is not None else "an operation"
  for_site = (f", for the operation at {site}" if site else
              ", for an operation recorded while debug_nans was off (its line is unknown)")
  if where.context == "forward":
    what = f"in the forward computation at {site or 'an unknown line'}"
  elif where.context == "jvp":
    what = f"in the derivative (JVP) rule of {rule}{for_site}"
  elif where.context == "linear":
    what = f"applying the linearized derivative of {rule}{for_site}"
  elif where.context == "sum":
    what = (f"in reverse mode, adding up the cotangents that reach an input of {rule} "
            f"(infinite contributions of opposite signs: inf - inf){for_site}")
  else:
    what = f"in the reverse-mode (VJP) rule of {rule}{for_site}"
  if ran_from and ran_from != site:
    what += f"; the derivative ran from {ran_from}"
  lines = [f"debug_nans: `{name}` produced a NaN from inputs free of NaN, {what}."]
  code = _code_text(where.site)
  if code:
    lines.append(f"    {code}")
  lines.append(f"  inputs: {', '.join(_describe(a) for a in args) or 'none'}")
  if out is not None:
    first = next(o for o in out if _holds_nan(o)) if isinstance(out, (list, tuple)) else out
    nans = np.isnan(np.asarray(first))
    index, values = _values_at_first_nan(args, first)
    if index is not None:  # (a 0-d output is simply NaN)
      text = (f"  output: {core.get_aval(first).str_short()}, {int(nans.sum())} of {nans.size} "
              f"entries NaN, the first at index {index}")
      if values:
        text += f", where the inputs are {', '.join(values)}"
      lines.append(text)
  if where.context == "forward":
    lines.append(
        f"  Fix: keep the inputs of `{name}` inside its domain. Where some entries are invalid "
        f"by design, give `{name}` a safe input there and select its result afterwards (the "
        "double-where pattern: dnp.where(ok, f(dnp.where(ok, x, safe)), other)), which also "
        "keeps the derivative free of NaN.")
  else:
    lines.append(
        "  Fix: a derivative is infinite or undefined at these inputs (a square root or log at "
        "0, then 0 * inf or inf - inf). Keep the operation's input away from that point: "
        "guard it with dnp.where and a safe value (the double-where pattern: dnp.where(ok, "
        "f(dnp.where(ok, x, safe)), other)), or state the derivative you mean with "
        "dfdx.custom_jvp.")
  lines.append("  (dfdx.debug_nans is on; dfdx.debug_nans(False) turns the checks off.)")
  return NaNError("\n".join(lines), primitive=name, context=where.context,
                  derivative_of=where.rule_of, source=site, code=code)


# ---- jit and the zero-absorbing recomputation ---------------------------------------------


def _check_jitted_call(entry, leaves, outs):
  """`jit.nan_check`: a jitted call returned `outs`. If they hold a NaN that its inputs did
  not, evaluate its program one equation at a time with the checks, to find where (a NaN
  in a constant of the program came in, like one in the inputs)."""
  for o in outs:
    if _holds_nan(o):
      break
  else:
    return
  if _holds_nan(list(leaves)):
    return
  ctx = core.context
  held, ctx.held = ctx.held, None  # report at once
  try:
    ir.eval_program(entry.program, *leaves)
  except NaNError as e:
    found = str(e).removeprefix("debug_nans: ")
    raise NaNError(f"debug_nans: jit({entry.name}) returned a NaN; evaluating its program one "
                   f"equation at a time found where: {found}", primitive=e.primitive,
                   context=e.context, derivative_of=e.derivative_of, source=e.source,
                   code=e.code) from None
  finally:
    ctx.held = held
  if _constants_hold_nan([entry.program], set()):
    return  # it came in through a constant (a value the function closed over)
  raise NaNError(
      f"debug_nans: jit({entry.name}) returned a NaN from inputs free of NaN, but evaluating "
      "its program one equation at a time produced none: the NaN comes from a constant "
      "computed while the function was traced or optimized, or the compiled code rounds "
      f"differently. Call {entry.name} without jit under debug_nans to find the operation.",
      context="forward")


def _recompute_if_nan(run, *args, **kwargs):
  """`ad.recompute_if_nan` while debug_nans is on. A transformation whose derivative comes
  out NaN computes it again with the zero-absorbing chain rule, so NaNs that its derivative
  rules produce the first time may never reach the user: hold them back, and raise the first
  only if the result still holds a NaN. The second attempt checks as usual."""
  ctx = core.context
  if ctx.held is not None or ctx.trace is not None or ctx.zero_absorbing:
    return _plain_recompute(run, *args, **kwargs)
  held, again = [], []

  def attempt():
    if ctx.zero_absorbing:
      again.append(True)
      return run()
    ctx.held = held
    try:
      return run()
    finally:
      ctx.held = None
  out = _plain_recompute(attempt, *args, **kwargs)
  if held and not again and _holds_nan_tree(out):
    raise held[0]
  return out


if os.environ.get("DFDX_DEBUG_NANS", "").lower() in ("1", "true", "yes", "on"):
  _set(True)
