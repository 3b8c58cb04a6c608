"""Control flow: `scan` (a loop carrying state, stacking per-step outputs) and `fori_loop`.

Outside `jit` (and `make_expr`), `scan` is an ordinary Python loop over the steps: every
transformation sees the steps one by one, exactly as if the user had written the loop. Under
staging the loop would be unrolled into the program, one copy of the body per step (a
1024-step LSTM: 150,000 equations, tens of seconds to optimize and compile), so there the
body is traced once to a `Program` and the loop is one equation of the primitive `scan`:

  scan(*carry, *xs, *consts; body, num_carry, num_xs, length, reverse, linear)
      -> (*final_carry, *ys)

`body` maps (*carry, *x, *consts) to (*carry, *y): x is one step's slice of the stacked
inputs xs (leading axis `length`), ys stack the per-step outputs the same way; consts are
the values the body closes over, including tracers of enclosing transformations (closure
conversion, see staging.make_program). With `reverse` the steps run from the last to the
first (ys[i] still belongs to xs[i]).

Its rules are scans again, so every composition works to any order:
  * JVP: one scan of the body's JVP over (carry, carry tangent). Under linearization (reverse
    mode) it is split instead (partial evaluation of the body's JVP): a scan of the body
    that also stacks the values its derivative needs (residuals), and a scan linear in the
    tangents (`linear` marks those inputs) that reads them.
  * Transpose (of such a linear scan): a scan in the opposite direction whose body is the
    transpose of the linear body; cotangents of the constants are summed in its carry.
  * Batching: the body under vmap; carries that the batch reaches are batched from the start.
Which carries have tangents (or a batch axis) is found by propagating through the body until
the set stops growing. The impl loops in Python over the body compiled to NumPy code.
"""
from __future__ import annotations

import math

import numpy as np

from dfdx._src import ad, batching, core, errors, staging, state
from dfdx._src.core import ShapedArray
from dfdx._src.ir import Lit, Program, eval_program, typecheck_program
from dfdx._src.numpy.util import is_weak, python_kind, weakly_typed
from dfdx._src.staging import make_program
from dfdx._src.ops import shape as shape_ops
from dfdx._src.tree import tree_flatten, tree_map, tree_unflatten

__all__ = ["scan", "fori_loop"]


def _dnp():
  import dfdx.numpy as dnp
  return dnp


def _under(kind):
  """Whether a trace of `kind` is among the current transformations."""
  trace = core.current_trace()
  while trace is not None:
    if trace.kind == kind:
      return True
    trace = trace.parent
  return False


def _staging():
  """Whether a program is being traced (jit, make_expr)."""
  return _under("jit")


def _pick(values, flags):
  return [v for v, f in zip(values, flags) if f]


def _keep(values, flags):
  return [v for v, f in zip(values, flags) if not f]


def _merge(flags, flagged, others):
  """`flagged` at the flagged positions, `others` at the rest, in order."""
  flagged, others = iter(flagged), iter(others)
  return [next(flagged) if f else next(others) for f in flags]


def _rule_program(fn, avals):
  """The program of a rule's function of its inputs alone (it closes over no tracer)."""
  program, lifted = make_program(fn, avals, record_source=False)
  assert not lifted, lifted
  return program


# A Python number in a loop's init may come out of the body as another kind of number (0 ->
# 0.5, or a NumPy value: 0.0 -> float32). Where the new kind holds every value of the old one
# (bool -> int -> float -> complex, or a Python float -> a NumPy float), the loop starts from
# init cast to it: the steps compute what the Python loop computes. Where it does not (0.5
# -> an int count, 2 -> a bool, -2 -> a uint8), the cast would change the value the first
# step reads, so scan runs that step alone first, with init as it is, and loops from its
# result (_peeled); while_loop, whose steps are not known to run, refuses under jit.
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_MAX_RETYPES = 3  # (then a carry whose type changes at every step: a clear error)


def _narrowing(old, new):
  """Whether a carry going from aval `old` to `new` loses values: a lower kind, or a Python
  int made a NumPy integer that holds fewer (unsigned, or narrower than int64)."""
  if old.dtype.kind == "i" and new.dtype.kind in "iu" and new.dtype != old.dtype:
    return True
  return _KIND_RANK.get(new.dtype.kind, 9) < _KIND_RANK.get(old.dtype.kind, 9)


def _trace_carrying(trace, avals, who, init_name="init"):
  """`trace(avals) -> (program, consts, changed)` for a loop body whose first outputs are
  carries: where a Python number among the inputs (weak-typed) came out of the body with
  another dtype (`changed`, their indices) that holds its values, the body is traced again
  with that dtype. Returns (program, consts, the avals traced, the indices of the carries
  that came out as a narrower kind, for which the program was traced as the inputs are)."""
  for _ in range(_MAX_RETYPES):
    program, consts, changed = trace(avals)
    if not changed:
      return program, consts, avals, []
    new = [ShapedArray(a.shape, program.outs[i].aval.dtype, program.outs[i].aval.weak_type)
           if i in changed else a for i, a in enumerate(avals)]
    narrowed = [i for i in changed if _narrowing(avals[i], new[i])]
    if narrowed:
      return program, consts, avals, narrowed
    avals = new  # (a Python number stays one if the body keeps it one: 2 -> 2 * 0.5)
  raise _retyping(who, init_name, str([a.str_short() for a in avals]))


def _retyping(who, init_name, carry):
  return TypeError(f"{who} changes the type of the carry at every step ({init_name} {carry}); "
                   f"give {init_name} the type it returns (e.g. np.float64(0.0), not 0).")


# ---- the user's functions -------------------------------------------------------------------


def scan(f, init, xs=None, length=None, reverse=False, unroll=1, *, checkpoint=None):
  """Loop `f` over the leading axis of `xs`, carrying state: `jax.lax.scan`'s semantics.

  `f(carry, x) -> (carry, y)`. Returns `(final_carry, ys)`, where ys stacks every step's y
  along a new leading axis. In Python terms::

      def scan(f, init, xs, length=None, reverse=False):
        carry, ys = init, []
        for x in (reversed(xs) if reverse else xs):
          carry, y = f(carry, x)
          ys.append(y)
        return carry, np.stack(ys[::-1] if reverse else ys)

  Every transformation differentiates, batches and compiles it. Outside `jit` it runs as that
  loop; under `jit` the body is traced once and compiled once, however many steps it takes.

  Args:
    f: the step, `f(carry, x) -> (carry, y)`. The carry it returns must have the structure,
      shapes and dtypes of `init`, but a Python number in `init` may come out as another
      type: where that type holds its values (0 -> 0.5, 0.0 -> float32), the loop starts
      from init cast to it; where it does not (0.5 -> an int count), the first step reads
      init as it is. `y` may be any pytree of arrays (or None).
    init: the initial carry, a pytree of arrays or numbers.
    xs: a pytree of arrays sharing a leading axis, sliced one entry per step, or None.
    length: the number of steps; needed when xs is None, else checked against xs.
    reverse: run from the last entry of xs to the first.
    unroll: accepted for code written for JAX (a positive integer or a bool); the values do
      not depend on it, and dfdx's compiled loop calls the body once per step whatever it is.
    checkpoint: for reverse mode's memory. None: every step's intermediates are kept for the
      backward pass. An integer k: the loop runs as a scan of `dfdx.checkpoint`ed scans of k
      steps, so the backward pass keeps one carry per k steps and the intermediates of k
      steps at a time, running every step forward twice. True: k = sqrt(length), memory in
      sqrt(length) steps' worth. Values and derivatives do not depend on it.
  Returns:
    (final carry, ys).

  >>> import dfdx, dfdx.numpy as dnp, numpy as np
  >>> cumulative = lambda xs: dfdx.scan(lambda c, x: (c + x, c + x), 0.0, xs)[1]
  >>> dfdx.jit(cumulative)(np.array([1.0, 2.0, 3.0]))
  array([1., 3., 6.])
  """
  _check_unroll(unroll, "scan")
  if checkpoint is not None and checkpoint is not False:
    return _checkpointed_scan(f, init, xs, length, reverse, checkpoint)
  return _scan(f, init, xs, length, reverse, staged=False)


def _checkpointed_scan(f, init, xs, length, reverse, checkpoint):
  """scan as a scan of checkpointed scans of k steps (then the few steps left over)."""
  from dfdx._src.custom import checkpoint as remat
  xs_leaves, xs_tree = tree_flatten(xs)
  xs_leaves = [_as_array(x, "scan: xs") for x in xs_leaves]
  length = _scan_length(xs_leaves, length)
  if isinstance(checkpoint, (bool, np.bool_)):
    per = max(1, int(round(math.sqrt(length))))
  elif isinstance(checkpoint, (int, np.integer)) and checkpoint >= 1:
    per = int(checkpoint)
  else:
    raise TypeError(f"scan: checkpoint must be None, True or a positive number of steps, got "
                    f"{checkpoint!r}.")
  blocks, left = divmod(length, per)
  if blocks == 0 or (blocks == 1 and left == 0):
    return _scan(f, init, xs, length, reverse, staged=False)
  # The blocks cover steps [0, blocks * per) and the rest runs after them; reversed, they
  # cover the last blocks * per steps, run first, and the first `left` steps run after.
  start = left if reverse else 0
  main = [shape_ops.reshape(x[start:start + blocks * per], (blocks, per) + x.shape[1:])
          for x in xs_leaves]
  rest = [x[:left] if reverse else x[blocks * per:] for x in xs_leaves]
  inner = remat(lambda c, block: _scan(f, c, block, per, reverse, staged=False))
  carry, ys = _scan(lambda c, block: inner(c, block), init,
                    tree_unflatten(xs_tree, main) if xs_leaves else None, blocks, reverse,
                    staged=False)
  ys = tree_map(lambda y: shape_ops.reshape(y, (blocks * per,) + core.shape_of(y)[2:]), ys)
  if left == 0:
    return carry, ys
  carry, ys_left = _scan(f, carry, tree_unflatten(xs_tree, rest) if xs_leaves else None, left,
                         reverse, staged=False)
  from dfdx._src.numpy.manipulation import concatenate
  pieces = (ys_left, ys) if reverse else (ys, ys_left)
  return carry, tree_map(lambda a, b: concatenate([a, b]), *pieces)


def _check_unroll(unroll, who):
  if isinstance(unroll, (bool, np.bool_)):
    return
  if isinstance(unroll, core.Tracer) or not isinstance(unroll, (int, np.integer)) \
          or unroll < 1:
    raise TypeError(f"{who}: unroll must be a positive integer or a bool, got {unroll!r}.")


def _scan(f, init, xs, length, reverse, staged):
  """scan; with `staged`, as one equation of scan_p even outside jit (the tests' way to run
  the primitive's rules under every transformation)."""
  if not callable(f):
    raise TypeError(f"scan: f must be a function f(carry, x) -> (carry, y), got "
                    f"{type(f).__name__}.")
  init_leaves, init_tree = tree_flatten(init)
  xs_leaves, xs_tree = tree_flatten(xs)
  xs_leaves = [_as_array(x, "scan: xs") for x in xs_leaves]
  length = _scan_length(xs_leaves, length)
  init_leaves = [_as_array(c, "scan: init") for c in init_leaves]
  if not isinstance(reverse, (bool, np.bool_)):
    raise TypeError(f"scan: reverse must be True or False, got {reverse!r}.")
  if not (staged or _staging()) and length > 0:
    return _python_loop(f, init_leaves, init_tree, xs_leaves, xs_tree, length, bool(reverse))
  return _scan_primitive(f, init_leaves, init_tree, xs_leaves, xs_tree, length, bool(reverse),
                         staged=staged)


def _scan_primitive(f, init_leaves, init_tree, xs_leaves, xs_tree, length, reverse, peeled=0,
                    staged=False):
  """scan as one equation of `scan_p` (what jit compiles); a step that turns a carry into a
  narrower kind runs alone first (see _narrowing)."""
  body, consts, y_tree, narrowed = _trace_body(f, init_leaves, init_tree, xs_leaves, xs_tree)
  n = len(init_leaves)
  if not length and (narrowed or not staged):  # no step runs: init as it is (as the Python
    # loop does), ys as the body makes them (`staged`: the primitive, for its tests)
    ys = [np.zeros((0,) + a.shape, a.dtype) for a in body.out_avals[n:]]
    return tree_unflatten(init_tree, init_leaves), tree_unflatten(y_tree, ys)
  init_leaves = [_cast(c, v.aval) for c, v in zip(init_leaves, body.in_vars)]
  if narrowed:
    return _peeled(f, init_leaves, init_tree, xs_leaves, xs_tree, length, reverse, peeled)
  args = [*init_leaves, *xs_leaves, *consts]
  outs = scan_p.bind(*args, body=body, num_carry=n, num_xs=len(xs_leaves),
                     length=length, reverse=reverse, linear=(False,) * len(args))
  return tree_unflatten(init_tree, outs[:n]), tree_unflatten(y_tree, outs[n:])


def _peeled(f, init_leaves, init_tree, xs_leaves, xs_tree, length, reverse, peeled):
  """scan whose first step runs alone, with init as it is, then the rest from its carry."""
  if peeled == _MAX_RETYPES:
    raise _retyping("scan: f", "init", _describe(init_leaves, init_tree))
  dnp = _dnp()
  i = length - 1 if reverse else 0
  carry, y = _split_output(f(tree_unflatten(init_tree, init_leaves),
                             tree_unflatten(xs_tree, [a[i] for a in xs_leaves])), f"at step {i}")
  out_leaves, out_tree = tree_flatten(carry)
  _check_carry(init_leaves, init_tree, out_leaves, out_tree)
  rest = [a[:-1] if reverse else a[1:] for a in xs_leaves]
  carry, ys = _scan_primitive(f, [_carried(o) for o in out_leaves], init_tree, rest, xs_tree,
                              length - 1, reverse, peeled + 1)
  first, y_tree = tree_flatten(y)
  ys, ys_tree = tree_flatten(ys)
  if y_tree != ys_tree:
    raise TypeError(f"scan: f returned y of structure {ys_tree} after step {i}, but {y_tree} "
                    "at it; every step must return the same structure.")
  if length == 1:
    return carry, tree_unflatten(y_tree, [dnp.asarray(a)[None] for a in first])
  parts = [(dnp.asarray(a)[None], b) for a, b in zip(first, ys)]
  return carry, tree_unflatten(y_tree, [dnp.concatenate(p[::-1] if reverse else p)
                                        for p in parts])


def fori_loop(lower, upper, body_fun, init_val, *, unroll=None, checkpoint=None):
  """`val = body_fun(i, val)` for i in range(lower, upper): `jax.lax.fori_loop`.

  The bounds must be Python or NumPy integers (not traced values): the loop is a `scan` over
  `range(lower, upper)`, so it is differentiable in both modes and compiled once under jit.
  `unroll` is accepted as `scan` accepts it; `checkpoint` (True, or a number of steps) saves
  reverse mode's memory as `scan`'s does.

  >>> import dfdx
  >>> dfdx.grad(lambda x: dfdx.fori_loop(0, 3, lambda i, v: v * x, 1.0))(2.0)  # d x^3 / dx
  np.float64(12.0)
  """
  if unroll is not None:
    _check_unroll(unroll, "fori_loop")
  bounds = []
  for name, b in (("lower", lower), ("upper", upper)):
    if isinstance(b, core.Tracer):
      raise errors.ConcretizationError(
          f"fori_loop: {name} is a traced value ({b!r}); the number of steps must be known "
          "when the loop is traced. Pass a Python integer, or use dfdx.scan with a fixed "
          "length and mask the steps you do not want.")
    if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, np.integer)):
      raise TypeError(f"fori_loop: {name} must be an integer, got {b!r}.")
    bounds.append(int(b))
  lower, upper = bounds
  if upper <= lower:
    return init_val
  # the plain loop (what scan does outside jit), without the index array
  if checkpoint is None and not _staging():
    leaves, tree = tree_flatten(init_val)
    val = init_val
    for i in range(lower, upper):
      leaves, val, _ = carried_step(lambda v: (body_fun(i, v), None), leaves, tree,
                                    "fori_loop: body_fun", "init_val", val)
    return val
  final, _ = scan(lambda val, i: (body_fun(python_number_p.bind(i), val), None), init_val,
                  np.arange(lower, upper), checkpoint=checkpoint)
  return final


# The index fori_loop's body gets under jit stands for the Python int that the Python loop
# (outside jit) gives it, so that `i * dt` is a Python float and `y32 + i * dt` stays float32
# as it does eagerly (an int64 would make it float64): a 0-d value made a Python number,
# weakly typed. Its impl and compiled code give a Python number (`int(i)`); batched (loops
# hoist what reads the index alone), it is the array of the indices.
python_number_p = core.primitive("python_number")
python_number_p.def_impl(lambda x: x.item() if isinstance(x, (np.ndarray, np.generic)) else x)
python_number_p.def_abstract_eval(lambda x: ShapedArray((), x.dtype, weak_type=True))
core.keeps_weak_types.add(python_number_p)
ad.defjvp_zero(python_number_p)  # (an index: nothing to differentiate)
batching.primitive_batchers[python_number_p] = lambda axis_size, vals, dims: (vals[0], dims[0])


def _as_array(x, where):
  """A leaf of an input pytree: an array, a number, or what NumPy makes an array of."""
  if isinstance(x, (core.Tracer, np.ndarray, bool, int, float, complex, np.generic)):
    return x
  try:
    return np.asarray(x)
  except Exception as e:
    raise TypeError(f"{where}: every leaf must be an array or number, got "
                    f"{type(x).__name__}.") from e


def _scan_length(xs_leaves, length):
  lengths = set()
  for x in xs_leaves:
    shape = core.shape_of(x)
    if not shape:
      raise ValueError(f"scan: every leaf of xs needs a leading axis to scan over, got a "
                       f"scalar ({core.get_aval(x).str_short()}). Stack the inputs along a "
                       "new first axis, or close over values that are the same every step.")
    lengths.add(shape[0])
  if length is not None:
    if isinstance(length, core.Tracer) or not isinstance(length, (int, np.integer)) \
            or isinstance(length, (bool, np.bool_)) or length < 0:
      raise TypeError(f"scan: length must be a non-negative Python integer, got {length!r}.")
    lengths.add(int(length))
  if not lengths:
    raise ValueError("scan: with xs=None (or no arrays in xs), pass length= (the number of "
                     "steps).")
  if len(lengths) > 1:
    raise ValueError(f"scan: the leading axes of xs (and length=) must agree; got lengths "
                     f"{sorted(lengths)} ({[core.shape_of(x) for x in xs_leaves]}).")
  return lengths.pop()


def _carried(x):
  """A carry leaf a body returned, as a value of its program: a Python number stays one (it
  is one in the Python loop), anything else an array."""
  return x if weakly_typed(x) else _dnp().asarray(x)


def _cast(x, aval):
  """An init leaf as the dtype its carry has (a Python number takes the carry's dtype, and
  becomes a NumPy value if the carry is one)."""
  x_aval = core.get_aval(x)
  if x_aval.dtype == aval.dtype and (aval.weak_type or not x_aval.weak_type):
    return x
  if aval.weak_type:  # a Python number as another kind of Python number (2 -> 2.0)
    return python_kind(x, aval.dtype.kind)
  return _dnp().asarray(x, aval.dtype)


def _describe(leaves, tree):
  return str(tree_unflatten(tree, [core.get_aval(x).str_short() for x in leaves]))


def _check_carry(init_leaves, init_tree, out_leaves, out_tree, who="scan: f",
                 init_name="init"):
  """The carry f returned against init: the same structure, shapes and dtypes (a weak-typed
  init leaf, a Python number, may change dtype). Returns the indices that changed dtype, or
  that were Python numbers and are NumPy values now."""
  if out_tree != init_tree:
    raise TypeError(f"{who} must return a carry with the structure of {init_name}; "
                    f"{init_name} is {_describe(init_leaves, init_tree)}, {who.split(': ')[-1]} "
                    f"returned {_describe(out_leaves, out_tree)}.")
  changed = []
  for i, (a, b) in enumerate(zip(init_leaves, out_leaves)):
    pa, pb = core.get_aval(a), core.get_aval(b)
    if pa.shape != pb.shape or (pa.dtype != pb.dtype and not pa.weak_type):
      raise TypeError(
          f"{who}: the carry it returns must keep {init_name}'s shapes and dtypes; leaf {i} of "
          f"{init_name} is {pa.str_short()}, it returned {pb.str_short()} ({init_name} "
          f"{_describe(init_leaves, init_tree)}). Give {init_name} the dtype and shape of the "
          f"carry (e.g. np.zeros({pb.shape}, np.{pb.dtype.name})).")
    if pa.dtype != pb.dtype or (pa.weak_type and not pb.weak_type):
      changed.append(i)  # (a Python number that the body makes a NumPy value: one from then)
  return changed


def _split_output(out, where):
  if not (isinstance(out, (tuple, list)) and len(out) == 2):
    raise TypeError(f"scan: f must return a pair (carry, y), got {type(out).__name__}"
                    f"{'' if not isinstance(out, (tuple, list)) else f' of {len(out)}'} "
                    f"{where}.")
  return out


def same_array(new, old):
  """Whether a loop's new carry is an array (or tracer) of the old one's type, shape and
  dtype: the common case, checked fast."""
  return (type(new) is type(old) and not is_weak(new)
          and new.shape == old.shape and new.dtype == old.dtype)


def carried_step(step, leaves, tree, who="scan: f", init_name="init", carry=None):
  """One step of a loop outside jit: `step(carry) -> (carry, extra)`, the carry it returns
  checked against `leaves` (flat, of structure `tree`; `carry`, if given, the pytree they
  make). A Python number in the carry that the step turns into a kind that holds its values
  is cast to it and the step run again, as jit does (see _narrowing), its assignments to
  Variables undone first. Returns (the new carry's leaves, the new carry, extra)."""
  if carry is None:
    carry = tree_unflatten(tree, leaves)
  for _ in range(_MAX_RETYPES):
    assigned = None
    if state.in_use:  # (the Variables a step assigns, to undo if it is run again)
      with state.journal() as j:
        new, extra = step(carry)
      assigned = j.frame
    else:
      new, extra = step(carry)
    if len(leaves) == 1 and carry is leaves[0] and same_array(new, carry):
      return [new], new, extra
    out_leaves, out_tree = tree_flatten(new)
    changed = _check_carry(leaves, tree, out_leaves, out_tree, who, init_name)
    if not changed or any(_narrowing(core.get_aval(leaves[j]), core.get_aval(out_leaves[j]))
                          for j in changed):
      return out_leaves, new, extra
    state.restore(assigned)  # (run again: its assignments once, not twice)
    leaves = [_cast(c, core.get_aval(o)) if j in changed else c
              for j, (c, o) in enumerate(zip(leaves, out_leaves))]
    carry = tree_unflatten(tree, leaves)
  raise _retyping(who, init_name, _describe(leaves, tree))


def _python_loop(f, init_leaves, init_tree, xs_leaves, xs_tree, length, reverse):
  """scan outside jit: the Python loop (see carried_step)."""
  dnp = _dnp()
  leaves, ys, y_tree = init_leaves, [], None
  carry = tree_unflatten(init_tree, leaves)
  for i in (range(length - 1, -1, -1) if reverse else range(length)):
    x = tree_unflatten(xs_tree, [a[i] for a in xs_leaves])
    leaves, carry, y = carried_step(
        lambda c: _split_output(f(c, x), f"at step {i}"), leaves, init_tree, carry=carry)
    y_leaves, tree = tree_flatten(y)
    if y_tree is None:
      y_tree = tree
    elif tree != y_tree:
      raise TypeError(f"scan: f returned y of structure {tree} at step {i}, but {y_tree} "
                      "before; every step must return the same structure.")
    ys.append(y_leaves)
  if reverse:
    ys.reverse()
  stacked = [dnp.stack([dnp.asarray(y[k]) for y in ys]) for k in range(len(ys[0]))]
  return carry, tree_unflatten(y_tree, stacked)


def _trace_body(f, init_leaves, init_tree, xs_leaves, xs_tree):
  """f as a program (*carry, *x, *consts) -> (*carry, *y). Returns (program, consts, y_tree,
  the carries f turns into a narrower kind: see _trace_carrying)."""
  n = len(init_leaves)
  x_avals = [ShapedArray(core.shape_of(x)[1:], core.get_aval(x).dtype) for x in xs_leaves]
  store = {}

  def trace(avals):
    def flat_fun(*ins):
      carry = tree_unflatten(init_tree, ins[:n])
      x = tree_unflatten(xs_tree, ins[n:])
      new_carry, y = _split_output(f(carry, x), "when traced")
      out_leaves, out_tree = tree_flatten(new_carry)
      store["changed"] = _check_carry(ins[:n], init_tree, out_leaves, out_tree)
      y_leaves, store["y_tree"] = tree_flatten(y)
      dnp = _dnp()
      return [_carried(o) for o in out_leaves] + [dnp.asarray(y) for y in y_leaves]
    body, consts = make_program(flat_fun, avals)
    return body, consts, store["changed"]
  body, consts, _, narrowed = _trace_carrying(
      trace, [core.get_aval(c) for c in init_leaves] + x_avals, "scan: f")
  return body, consts, store["y_tree"], narrowed


# ---- the primitive ----------------------------------------------------------------------------
scan_p = core.primitive("scan", multiple_results=True)
# Primitives holding programs, whose outputs depend on their inputs as those programs say
# (see _reaches): prim -> rule(reached, **params) -> a flag per output.
dependence_rules: dict = {}
ad.complex_rules.add(scan_p)  # its rules apply those of the body's equations

def _compiled(program, loop=None):
  from dfdx._src.codegen import program_function  # (codegen imports the ops)
  return program_function(program, loop)


def _scan_impl(*args, body, num_carry, num_xs, length, reverse, linear):
  outs = _compiled(body, (num_carry, num_xs, length, reverse))(*args)  # (what jit runs)
  return _with_dtypes(outs, body.out_avals[:num_carry])


def _with_dtypes(outs, avals):
  """Results as the dtypes of avals (a body may return a Python number for a float32)."""
  outs = list(outs)
  for i, a in enumerate(avals):
    if core.get_aval(outs[i]).dtype != a.dtype:
      outs[i] = np.asarray(outs[i], a.dtype)
  return outs


def _scan_abstract_eval(*avals, body, num_carry, num_xs, length, reverse, linear):
  expected = ([v.aval for v in body.in_vars[:num_carry]]
              + [ShapedArray((length,) + v.aval.shape, v.aval.dtype)
                 for v in body.in_vars[num_carry:num_carry + num_xs]]
              + [v.aval for v in body.in_vars[num_carry + num_xs:]])
  if len(avals) != len(expected) or len(linear) != len(avals):
    raise TypeError(f"scan: {len(avals)} inputs for a body of {len(body.in_vars)}")
  for i, (a, e) in enumerate(zip(avals, expected)):
    if a.shape != e.shape or a.dtype != e.dtype:
      raise TypeError(f"scan: input {i} is {a.str_short()}, the body expects {e.str_short()}")
  outs = body.out_avals
  return outs[:num_carry] + [ShapedArray((length,) + a.shape, a.dtype)
                             for a in outs[num_carry:]]


scan_p.def_impl(_scan_impl)
scan_p.def_abstract_eval(_scan_abstract_eval)
core.keeps_weak_types.add(scan_p)  # (a carry its body keeps a Python number stays one)


def _scan_dependence(reached, *, body, num_carry, **params):
  c_out, y_out = _carry_fixed_point(body, num_carry, reached[:num_carry], reached[num_carry:])
  return c_out + y_out


dependence_rules[scan_p] = _scan_dependence


def _reaches(body, flags):
  """Which outputs of `body` depend on the inputs flagged: through a scan, as its body's
  dependences say (the JVP of a nested scan is one equation with primal and tangent
  outputs, and its primal outputs must stay unreached by the tangents); through any other
  equation, every output depends on every input."""
  marked = {id(v) for v, flag in zip(body.in_vars, flags) if flag}
  for eqn in body.eqns:
    reached = [type(a) is not Lit and id(a) in marked for a in eqn.inputs]
    if not any(reached):
      continue
    rule = dependence_rules.get(eqn.prim)
    out = rule(reached, **eqn.params) if rule else [True] * len(eqn.outputs)
    marked.update(id(o) for o, r in zip(eqn.outputs, out) if r)
  return [type(o) is not Lit and id(o) in marked for o in body.outs]



def linearizing(tangents):
  """Whether a JVP rule of control flow should give its primal and tangent parts as separate
  equations (the tangent one linear): under reverse mode (tangents on a tape), and while a
  scan's body is traced for partial evaluation, so that a nested loop or branch splits
  too instead of being one equation with primal and tangent outputs."""
  return core.context.splitting or any(isinstance(t, ad.TapeTracer) for t in tangents)


def _carry_fixed_point(body, num_carry, carry_flags, other_flags):
  """The carries reached by the flagged inputs, over any number of steps."""
  carry_flags = list(carry_flags)
  while True:
    out = _reaches(body, carry_flags + list(other_flags))
    new = [c or o for c, o in zip(carry_flags, out[:num_carry])]
    if new == carry_flags:
      return carry_flags, out[num_carry:]
    carry_flags = new


def _differentiable(aval):
  return aval.dtype.kind in "fc"


def _zeros(aval):
  return np.zeros(aval.shape, aval.dtype)


def _split_args(args, num_carry, num_xs):
  return (list(args[:num_carry]), list(args[num_carry:num_carry + num_xs]),
          list(args[num_carry + num_xs:]))


# ---- forward mode -------------------------------------------------------------------------------


def _scan_jvp(primals, tangents, *, body, num_carry, num_xs, length, reverse, linear):
  params = dict(num_carry=num_carry, length=length, reverse=reverse)
  in_avals = body.in_avals
  nonzero = [t is not None and _differentiable(a) for t, a in zip(tangents, in_avals)]
  carry_nz, y_nz = _carry_fixed_point(body, num_carry, nonzero[:num_carry],
                                      nonzero[num_carry:])
  out_avals = body.out_avals
  carry_nz = [nz and _differentiable(a) for nz, a in zip(carry_nz, out_avals)]
  y_nz = [nz and _differentiable(a) for nz, a in zip(y_nz, out_avals[num_carry:])]
  if not any(carry_nz) and not any(y_nz):
    outs = scan_p.bind(*primals, body=body, num_xs=num_xs, linear=linear, **params)
    return outs, [None] * len(outs)
  # A tangent input reached by no flagged input stays zero; carries reached get zeros to start.
  nonzero[:num_carry] = carry_nz
  tangents = [(_zeros(a) if t is None else t) if nz else None
              for t, nz, a in zip(tangents, nonzero, in_avals)]
  if linearizing(tangents):
    return _linearized_scan(primals, tangents, nonzero, carry_nz, y_nz, body, num_carry,
                            num_xs, length, reverse)
  carry, xs, consts = _split_args(primals, num_carry, num_xs)
  carry_t, xs_t, consts_t = _split_args(tangents, num_carry, num_xs)
  nz_c, nz_x, nz_k = _split_args(nonzero, num_carry, num_xs)

  def jvp_body(*ins):
    (c, ct, x, xt, k, kt) = _unflatten(ins, [num_carry, sum(nz_c), num_xs, sum(nz_x),
                                             len(consts), sum(nz_k)])
    outs, t_out = _body_jvp(body, c + x + k, _fill(nz_c, ct) + _fill(nz_x, xt) + _fill(nz_k, kt),
                            carry_nz + y_nz)
    n_ct = sum(carry_nz)
    return outs[:num_carry] + t_out[:n_ct] + outs[num_carry:] + t_out[n_ct:]
  c_avals, x_avals, k_avals = _split_args(in_avals, num_carry, num_xs)
  new_body = _rule_program(jvp_body, c_avals + _pick(c_avals, nz_c) + x_avals
                           + _pick(x_avals, nz_x) + k_avals + _pick(k_avals, nz_k))
  args = (carry + _pick(carry_t, nz_c) + xs + _pick(xs_t, nz_x) + consts + _pick(consts_t, nz_k))
  outs = scan_p.bind(*args, body=new_body, num_carry=num_carry + sum(nz_c),
                     num_xs=num_xs + sum(nz_x), length=length, reverse=reverse,
                     linear=(False,) * len(args))
  n_nz = sum(carry_nz)
  c_out, ct_out = outs[:num_carry], outs[num_carry:num_carry + n_nz]
  rest = outs[num_carry + n_nz:]
  y_out, yt_out = rest[:len(y_nz)], rest[len(y_nz):]
  return c_out + y_out, _fill(carry_nz, ct_out) + _fill(y_nz, yt_out)


def _unflatten(values, sizes):
  parts, i = [], 0
  for n in sizes:
    parts.append(list(values[i:i + n]))
    i += n
  return parts


def _body_jvp(body, primals, tangents, out_flags):
  """The body's outputs under jvp, and the tangents of the flagged outputs (zeros where the
  JVP gives none: a tangent the fixed point says may be nonzero is always an array)."""
  outs, out_t = ad.jvp_flat(lambda *a: eval_program(body, *a), primals, tangents)
  return outs, [_zeros(v.aval) if t is None else t
                for t, v in zip(_pick(out_t, out_flags), _pick(body.outs, out_flags))]


def _transpose(linear_fn, avals, cts):
  """The transpose of `linear_fn` (linear in its inputs, of avals) applied to `cts`: the
  inputs' cotangents, zeros where none reach them."""
  _, lin = ad.linearize_flat(linear_fn, [_zeros(a) for a in avals])
  return [_zeros(a) if c is None else c for c, a in zip(lin.transpose(list(cts)), avals)]


def _fill(flags, values):
  """values placed at the flagged positions, None elsewhere."""
  values = iter(values)
  return [next(values) if f else None for f in flags]


def _linearized_scan(primals, tangents, nonzero, carry_nz, y_nz, body, num_carry, num_xs,
                     length, reverse):
  """Reverse mode's JVP, split in two scans (partial evaluation). The body's JVP is traced
  once; its equations that read no tangent form the primal scan's body, which also stacks
  the values the others read (residuals); the others form the body of a scan linear in the
  tangents, which takes the stacked residuals as inputs. Nothing is computed twice."""
  carry, xs, consts = _split_args(primals, num_carry, num_xs)
  nz_c, nz_x, nz_k = _split_args(nonzero, num_carry, num_xs)
  carry_t, xs_t, consts_t = _split_args(tangents, num_carry, num_xs)
  in_avals = body.in_avals
  c_avals, x_avals, k_avals = _split_args(in_avals, num_carry, num_xs)
  sizes = [num_carry, num_xs, len(consts), sum(nz_c), sum(nz_x), sum(nz_k)]
  out_avals = body.out_avals

  def jvp_body(*ins):
    c, x, k, ct, xt, kt = _unflatten(ins, sizes)
    outs, t_out = _body_jvp(body, c + x + k, _fill(nz_c, ct) + _fill(nz_x, xt) + _fill(nz_k, kt),
                            carry_nz + y_nz)
    return outs + t_out
  ctx = core.context
  prev, ctx.splitting = ctx.splitting, True  # (nested loops split too: see linearizing)
  try:
    jvp_prog = _rule_program(jvp_body, in_avals + _pick(c_avals, nz_c) + _pick(x_avals, nz_x)
                             + _pick(k_avals, nz_k))
  finally:
    ctx.splitting = prev
  n_in, n_out = len(in_avals), len(out_avals)
  split = _partial_eval(jvp_prog, n_in, n_out)
  if split is None:
    return _recomputing_scan(primals, tangents, nonzero, carry_nz, y_nz, body, num_carry,
                             num_xs, length, reverse)
  known_eqns, linear_eqns, residuals = split
  primal_in = jvp_prog.in_vars[:n_in]
  position = {id(v): i for i, v in enumerate(primal_in)}
  # Residuals that are a step's x or a const are passed as they are; the others (incoming
  # carries and computed values) are stacked by the primal scan.
  res_x = [r for r in residuals if num_carry <= position.get(id(r), -1) < num_carry + num_xs]
  res_k = [r for r in residuals if position.get(id(r), -1) >= num_carry + num_xs]
  stacked = [r for r in residuals if id(r) not in {id(v) for v in res_x + res_k}]
  consts_of = (jvp_prog.const_vars, jvp_prog.const_vals)
  known = Program(primal_in, *consts_of, known_eqns, jvp_prog.outs[:n_out] + stacked)
  outs = scan_p.bind(*primals, body=_checked(known), num_carry=num_carry, num_xs=num_xs,
                     length=length, reverse=reverse, linear=(False,) * len(primals))
  primal_out, stacked_vals = outs[:n_out], outs[n_out:]

  ct_in, xt_in, kt_in = _unflatten(jvp_prog.in_vars[n_in:], sizes[3:])
  linear_prog = Program(ct_in + stacked + res_x + xt_in + res_k + kt_in, *consts_of,
                        linear_eqns, jvp_prog.outs[n_out:])
  lin_args = (_pick(carry_t, nz_c) + stacked_vals + [xs[position[id(r)] - num_carry]
                                                     for r in res_x]
              + _pick(xs_t, nz_x) + [consts[position[id(r)] - num_carry - num_xs] for r in res_k]
              + _pick(consts_t, nz_k))
  flags = ([True] * sizes[3] + [False] * (len(stacked) + len(res_x)) + [True] * sizes[4]
           + [False] * len(res_k) + [True] * sizes[5])
  # carry_nz has the entries of nz_c (the fixed point), so the linear scan's carries are
  # exactly the nonzero carry tangents.
  tan_out = scan_p.bind(*lin_args, body=_checked(linear_prog), num_carry=sizes[3],
                        num_xs=len(stacked) + len(res_x) + sizes[4], length=length,
                        reverse=reverse, linear=tuple(flags))
  ct_out, yt_out = tan_out[:sizes[3]], tan_out[sizes[3]:]
  return primal_out, _fill(carry_nz, ct_out) + _fill(y_nz, yt_out)


def _recomputing_scan(primals, tangents, nonzero, carry_nz, y_nz, body, num_carry, num_xs,
                     length, reverse):
  """Reverse mode's JVP where the body's JVP does not split (an equation that reads a
  tangent also gives a primal output: a primitive whose JVP rule is one such equation; the
  loops and branches here split, see `linearizing`). The primal scan stacks each step's
  incoming carry; the linear scan computes the step's primal values again from them."""
  carry, xs, consts = _split_args(primals, num_carry, num_xs)
  in_avals = body.in_avals
  c_avals = in_avals[:num_carry]

  def stacking_body(*ins):
    outs = eval_program(body, *ins)
    return outs + list(ins[:num_carry])
  res_body = _rule_program(stacking_body, in_avals)
  outs = scan_p.bind(*primals, body=res_body, num_carry=num_carry, num_xs=num_xs,
                     length=length, reverse=reverse, linear=(False,) * len(primals))
  n_y = len(body.outs) - num_carry
  primal_out = outs[:num_carry + n_y]
  carries = outs[num_carry + n_y:]

  nz_c, nz_x, nz_k = _split_args(nonzero, num_carry, num_xs)
  carry_t, xs_t, consts_t = _split_args(tangents, num_carry, num_xs)
  sizes = [sum(nz_c), num_carry, num_xs, sum(nz_x), len(consts), sum(nz_k)]

  def tangent_body(*ins):
    ct, c, x, xt, k, kt = _unflatten(ins, sizes)
    return _body_jvp(body, c + x + k, _fill(nz_c, ct) + _fill(nz_x, xt) + _fill(nz_k, kt),
                     carry_nz + y_nz)[1]
  avals = (_pick(c_avals, nz_c) + c_avals + in_avals[num_carry:num_carry + num_xs]
           + _pick(in_avals[num_carry:num_carry + num_xs], nz_x)
           + in_avals[num_carry + num_xs:] + _pick(in_avals[num_carry + num_xs:], nz_k))
  lin_body = _rule_program(tangent_body, avals)
  lin_args = (_pick(carry_t, nz_c) + carries + xs + _pick(xs_t, nz_x) + consts
              + _pick(consts_t, nz_k))
  flags = ([True] * sizes[0] + [False] * (num_carry + num_xs) + [True] * sizes[3]
           + [False] * len(consts) + [True] * sizes[5])
  # carry_nz has the entries of nz_c (the fixed point), so the linear scan's carries are
  # exactly the nonzero carry tangents.
  tan_out = scan_p.bind(*lin_args, body=lin_body, num_carry=sizes[0],
                        num_xs=num_carry + num_xs + sizes[3], length=length, reverse=reverse,
                        linear=tuple(flags))
  ct_out, yt_out = tan_out[:sizes[0]], tan_out[sizes[0]:]
  return primal_out, _fill(carry_nz, ct_out) + _fill(y_nz, yt_out)


def _partial_eval(program, n_primal_in, n_primal_out):
  """Split a JVP's program (primal inputs first, then tangents; primal outputs first) into
  the equations that read no tangent, those that do, and the residuals: variables of the
  first kind (inputs included, constants not) that the second kind or a tangent output
  reads, in order of first use. None where a primal output is computed by an equation that
  also reads a tangent."""
  unknown = {id(v) for v in program.in_vars[n_primal_in:]}
  known_eqns, linear_eqns = [], []
  for eqn in program.eqns:
    if any(type(a) is not Lit and id(a) in unknown for a in eqn.inputs):
      linear_eqns.append(eqn)
      unknown.update(id(o) for o in eqn.outputs)
    else:
      known_eqns.append(eqn)
  if any(type(a) is not Lit and id(a) in unknown for a in program.outs[:n_primal_out]):
    return None  # (see _recomputing_scan)
  skip = unknown | {id(v) for v in program.const_vars}
  residuals = []
  for a in [a for eqn in linear_eqns for a in eqn.inputs] + program.outs[n_primal_out:]:
    if type(a) is not Lit and id(a) not in skip:
      skip.add(id(a))
      residuals.append(a)
  return known_eqns, linear_eqns, residuals


def _checked(program):
  if staging.check_programs:
    typecheck_program(program)
  return program


# ---- reverse mode: the transpose of a linear scan ----------------------------------------------


def _scan_transpose(cts, *args, body, num_carry, num_xs, length, reverse, linear):
  carry, xs, consts = _split_args(args, num_carry, num_xs)
  lin_c, lin_x, lin_k = _split_args(linear, num_carry, num_xs)
  if not all(lin_c):
    raise errors.MissingRuleError(
        "scan: only a scan whose carries are all linear can be transposed (reverse mode "
        "transposes the linear scans that its JVP makes).")
  in_avals = body.in_avals
  c_avals, x_avals, k_avals = _split_args(in_avals, num_carry, num_xs)
  n_y = len(body.outs) - num_carry
  lin_k_avals = _pick(k_avals, lin_k)
  sizes = [num_carry, len(lin_k_avals), len(_keep(x_avals, lin_x)), n_y,
           len(_keep(k_avals, lin_k))]

  def transposed_body(*ins):
    ct_c, acc, x_nl, ct_y, k_nl = _unflatten(ins, sizes)

    def linear_fn(*lin):
      lc, lx, lk = _unflatten(lin, [num_carry, sum(lin_x), len(lin_k_avals)])
      xs_full = _merge(lin_x, lx, x_nl)
      k_full = _merge(lin_k, lk, k_nl)
      return eval_program(body, *lc, *xs_full, *k_full)
    in_cts = _transpose(linear_fn, c_avals + _pick(x_avals, lin_x) + lin_k_avals,
                        list(ct_c) + list(ct_y))
    ct_carry, ct_x, ct_k = _unflatten(in_cts, [num_carry, sum(lin_x), len(lin_k_avals)])
    return ct_carry + [a + c for a, c in zip(acc, ct_k)] + ct_x
  y_avals = body.out_avals[num_carry:]
  avals = (body.out_avals[:num_carry] + lin_k_avals + _keep(x_avals, lin_x) + y_avals
           + _keep(k_avals, lin_k))
  t_body = _rule_program(transposed_body, avals)
  ct_carry_in = [_zeros(a) if c is None else c for c, a in zip(cts[:num_carry], c_avals)]
  ct_ys = [_zeros(ShapedArray((length,) + a.shape, a.dtype)) if c is None else c
           for c, a in zip(cts[num_carry:], y_avals)]
  t_args = (ct_carry_in + [_zeros(a) for a in lin_k_avals] + _keep(xs, lin_x) + ct_ys
            + _keep(consts, lin_k))
  outs = scan_p.bind(*t_args, body=t_body, num_carry=num_carry + len(lin_k_avals),
                     num_xs=sizes[2] + n_y, length=length, reverse=not reverse,
                     linear=(False,) * len(t_args))
  ct_init = outs[:num_carry]
  ct_consts = outs[num_carry:num_carry + len(lin_k_avals)]
  ct_xs = outs[num_carry + len(lin_k_avals):]
  result = [c if ad.is_linear(a) else None for c, a in zip(ct_init, carry)]
  result += [c if ad.is_linear(a) else None for c, a in zip(_fill(lin_x, ct_xs), xs)]
  result += [c if ad.is_linear(a) else None for c, a in zip(_fill(lin_k, ct_consts), consts)]
  return result




ad.primitive_jvps[scan_p] = _scan_jvp
ad.primitive_transposes[scan_p] = _scan_transpose


# ---- batching -----------------------------------------------------------------------------------


def _scan_batch(axis_size, vals, dims, *, body, num_carry, num_xs, length, reverse, linear):
  dnp = _dnp()
  not_mapped = batching.NOT_MAPPED
  batched = [d is not not_mapped for d in dims]
  carry_b, y_b = _carry_fixed_point(body, num_carry, batched[:num_carry], batched[num_carry:])
  moved = []
  for i, (v, d) in enumerate(zip(vals, dims)):
    in_x = num_carry <= i < num_carry + num_xs
    if d is not_mapped:
      if i < num_carry and carry_b[i]:
        aval = core.get_aval(v)
        v = dnp.broadcast_to(v, (axis_size,) + aval.shape)
    else:
      v = batching.moveaxis(v, d, 1 if in_x else 0)
    moved.append(v)
  in_b = carry_b + batched[num_carry:]
  in_dims = [0 if b else not_mapped for b in in_b]
  body_avals = [ShapedArray((axis_size,) + a.shape, a.dtype) if b else a
                for a, b in zip(body.in_avals, in_b)]
  out_b = carry_b + y_b

  def batched_body(*ins):
    outs, out_dims = batching.vmap_flat(lambda *a: eval_program(body, *a), axis_size,
                                        list(ins), in_dims)
    fixed = []
    for o, d, b in zip(outs, out_dims, out_b):
      if b:
        o = (dnp.broadcast_to(o, (axis_size,) + core.shape_of(o)) if d is not_mapped
             else batching.moveaxis(o, d, 0))
      fixed.append(o)
    return fixed
  new_body = _rule_program(batched_body, body_avals)
  outs = scan_p.bind(*moved, body=new_body, num_carry=num_carry, num_xs=num_xs, length=length,
                     reverse=reverse, linear=linear)
  out_dims = [0 if b else not_mapped for b in carry_b] + [1 if b else not_mapped for b in y_b]
  return outs, out_dims


batching.primitive_batchers[scan_p] = _scan_batch
