"""Control flow decided by values: `while_loop`, `cond` and `switch` (`jax.lax`'s semantics).

As with `scan` (ops/control_flow.py), outside `jit` and `vmap` these are the Python `while`
and `if` they stand for, so every transformation sees the operations that actually run. Under
staging (jit, make_expr), or under vmap where the decision may differ per example, the
functions are traced once to programs and the control flow is one equation:

  while(*vals, *cond_consts, *body_consts; cond, body, num_vals, num_cond_consts) -> vals
  cond(index, *operands, *consts_0, *consts_1, ...; branches, num_consts, linear) -> outs

* `while`: forward mode runs the loop on (value, tangent) pairs. In reverse mode the loop
  also counts its steps n, and the tangents are `while_tangent`, a loop of n steps linear in
  them. Its transpose, `while_reverse`, keeps each step's values in a Python list when it
  runs (the number of steps is not known when the loop is traced, so no array of static
  shape can hold them) and runs the transposed steps backwards: n steps of time, like a
  tape. Derivatives of that (second order and up) are loops of static shape that compute
  the values at step k again from the start: memory of one step, n^2/2 steps of time.
  Batched, the loop runs until every example's condition is false, and an example whose
  condition is false keeps its value.
* `cond`: the branch `index` picks runs (clipped to the branches, as JAX does). JVP and
  transpose are conds of the branches' JVPs and transposes, so it works in both modes to
  any order. Batched over the index, every branch runs and each example takes its own.
"""
from __future__ import annotations

import weakref

import numpy as np

from dfdx._src import ad, batching, core, errors
from dfdx._src.core import ShapedArray
from dfdx._src.ir import eval_program
from dfdx._src.numpy.util import _PYTHON_TYPES
from dfdx._src.ops.control_flow import (_as_array, _body_jvp, _carried, _carry_fixed_point,
                                        _cast, _check_carry, _compiled, _dnp, _fill, _keep,
                                        _merge, _pick, _reaches, _rule_program, _staging,
                                        _trace_carrying, _transpose, _under, _unflatten,
                                        _with_dtypes, _zeros, carried_step, dependence_rules,
                                        linearizing)
from dfdx._src.staging import make_program
from dfdx._src.tree import tree_flatten, tree_unflatten

__all__ = ["while_loop", "cond", "switch"]


_COUNT = ShapedArray((), np.dtype(np.int64))  # a loop's step counter


def _batching():
  """Whether vmap is among the current transformations (a decision may differ per example)."""
  return _under("vmap")


def _leaves(tree, where):
  leaves, treedef = tree_flatten(tree)
  return [_as_array(x, where) for x in leaves], treedef


def _predicate(p, where):
  """A traced or concrete boolean scalar, checked."""
  aval = core.get_aval(p)
  if aval.shape != () or aval.dtype != np.bool_:
    raise TypeError(f"{where} must return a boolean scalar, got {aval.str_short()}. Reduce "
                    "it (dnp.all, dnp.any) or compare (x > 0).")
  return p


# ---- while_loop ---------------------------------------------------------------------------------


def while_loop(cond_fun, body_fun, init_val):
  """`val = body_fun(val)` while `cond_fun(val)`: `jax.lax.while_loop`.

  Outside jit and vmap this is the Python loop. Under jit it is compiled once and
  differentiable in both modes to any order: the gradient runs the steps back in n steps of
  time, keeping every step's values up to REVERSE_LOOP_BYTES (256 MB), and beyond that every
  sqrt(n)-th step's, computing each stretch between again when it is reached (2n steps of
  time, memory of 2 sqrt(n) steps' values); second and higher derivatives in reverse mode
  compute the steps' values again (n^2 / 2 steps: for a long loop of known length, `scan` or
  `fori_loop` is faster there).
  Under vmap each example loops until its own condition is false.

  Args:
    cond_fun: val -> boolean scalar.
    body_fun: val -> val, keeping the structure, shapes and dtypes of init_val (a Python
      number in init_val may become a type that holds its values, 0 -> 0.5; under jit and
      vmap, not a narrower one, 0.5 -> an int: a loop that runs no step returns init_val).
    init_val: a pytree of arrays or numbers.

  >>> import dfdx
  >>> float(dfdx.jit(lambda x: dfdx.while_loop(lambda v: v < 10, lambda v: v * 2, x))(1.5))
  12.0
  """
  return _while(cond_fun, body_fun, init_val, staged=False)


def _while(cond_fun, body_fun, init_val, staged):
  """while_loop; with `staged`, an equation of while_p even outside jit and vmap (tests)."""
  leaves, tree = _leaves(init_val, "while_loop: init_val")
  if not (staged or _staging() or _batching()):
    val = init_val
    while bool(_predicate(_dnp().asarray(cond_fun(val)), "while_loop: cond_fun")):
      leaves, val, _ = carried_step(lambda v: (body_fun(v), None), leaves, tree,
                                    "while_loop: body_fun", "init_val", val)
    return val
  body, body_consts, leaves = _trace_body(body_fun, leaves, tree)
  avals = [v.aval for v in body.in_vars[:len(leaves)]]

  def flat_cond(*vals):
    return [_predicate(_dnp().asarray(cond_fun(tree_unflatten(tree, vals))),
                       "while_loop: cond_fun")]
  cond_prog, cond_consts = make_program(flat_cond, avals)
  outs = while_p.bind(*leaves, *cond_consts, *body_consts, cond=cond_prog, body=body,
                      num_vals=len(leaves), num_cond_consts=len(cond_consts))
  return tree_unflatten(tree, outs)


def _trace_body(body_fun, leaves, tree):
  """body_fun as a program (*vals, *consts) -> vals; a Python number in init_val takes the
  dtype body_fun gives it. Returns (program, consts, init leaves cast to the vals' dtypes)."""
  def trace(avals):
    store = {}

    def flat_body(*vals):
      out_leaves, out_tree = tree_flatten(body_fun(tree_unflatten(tree, vals)))
      store["changed"] = _check_carry(vals, tree, out_leaves, out_tree, "while_loop: body_fun",
                                      "init_val")
      return [_carried(o) for o in out_leaves]
    body, consts = make_program(flat_body, avals)
    return body, consts, store["changed"]
  body, consts, avals, narrowed = _trace_carrying(trace, [core.get_aval(x) for x in leaves],
                                                  "while_loop: body_fun", "init_val")
  if narrowed:
    changes = ", ".join(f"leaf {i}, {_kind_name(avals[i])} -> {_kind_name(body.outs[i].aval)}"
                        for i in narrowed)
    raise TypeError(
        f"while_loop: body_fun turns a Python number of init_val into a narrower kind "
        f"({changes}). Under jit and vmap the loop's value has one type, "
        "and a loop that runs no step would return init_val in it, changed. Give init_val "
        "the type body_fun returns (e.g. 0 for a count, not 0.5).")
  return body, consts, [_cast(x, a) for x, a in zip(leaves, avals)]


def _kind_name(aval):
  if aval.weak_type:
    return "a Python " + _PYTHON_TYPES[aval.dtype.kind].__name__
  return aval.str_short()


while_p = core.primitive("while", multiple_results=True)
ad.complex_rules.add(while_p)


def _split(args, num_vals, num_cond_consts):
  return (list(args[:num_vals]), list(args[num_vals:num_vals + num_cond_consts]),
          list(args[num_vals + num_cond_consts:]))


def _while_impl(*args, cond, body, num_vals, num_cond_consts):
  from dfdx._src.codegen import helper_function  # the loop the generated code runs
  outs = helper_function("_while_loop")(_compiled(cond), _compiled(body), num_vals,
                                        num_cond_consts, *args)
  return _with_dtypes(outs, body.out_avals)


def _while_abstract_eval(*avals, cond, body, num_vals, num_cond_consts):
  for i, (a, e) in enumerate(zip(avals, body.in_avals[:num_vals] + cond.in_avals[num_vals:]
                                 + body.in_avals[num_vals:])):
    if a.shape != e.shape or a.dtype != e.dtype:
      raise TypeError(f"while: input {i} is {a.str_short()}, the loop expects "
                      f"{e.str_short()}")
  return body.out_avals


while_p.def_impl(_while_impl)
while_p.def_abstract_eval(_while_abstract_eval)
core.keeps_weak_types.add(while_p)  # (a value its body keeps a Python number stays one)


def _while_dependence(reached, *, cond, body, num_vals, num_cond_consts):
  v, c, k = _split(reached, num_vals, num_cond_consts)
  v, _ = _carry_fixed_point(body, num_vals, v, k)
  if _reaches(cond, v + c)[0]:  # the number of steps depends on them: every value may
    return [True] * num_vals
  return v


def _while_jvp(primals, tangents, *, cond, body, num_vals, num_cond_consts):
  vals, cond_consts, body_consts = _split(primals, num_vals, num_cond_consts)
  vals_t, _, consts_t = _split(tangents, num_vals, num_cond_consts)
  nonzero = [t is not None and a.dtype.kind in "fc" for t, a in zip(tangents, [
      core.get_aval(p) for p in primals])]
  nz_v, _, nz_k = _split(nonzero, num_vals, num_cond_consts)
  nz_v, _ = _carry_fixed_point(body, num_vals, nz_v, nz_k)
  nz_v = [nz and a.dtype.kind in "fc" for nz, a in zip(nz_v, body.out_avals)]
  params = dict(cond=cond, body=body, num_vals=num_vals, num_cond_consts=num_cond_consts)
  if not any(nz_v):
    outs = while_p.bind(*primals, **params)
    return outs, [None] * len(outs)
  vals_t = [_zeros(core.get_aval(v)) if t is None else t for v, t in zip(vals, vals_t)]
  n_vt, n_kt = sum(nz_v), sum(nz_k)
  v_avals = body.in_avals[:num_vals]
  k_avals = body.in_avals[num_vals:]
  step = _tangent_step(body, num_vals, nz_v, nz_k)
  if linearizing(tangents):
    # Reverse mode: the primal loop also counts its steps; the tangents are a loop linear in
    # them, of that many steps (see while_tangent).
    outs = while_p.bind(*vals, np.int64(0), *cond_consts, *body_consts,
                        cond=_counted(cond, num_vals, "cond"),
                        body=_counted(body, num_vals, "body"),
                        num_vals=num_vals + 1, num_cond_consts=len(cond_consts))
    t_out = while_tangent_p.bind(outs[num_vals], *vals, *body_consts, *_pick(vals_t, nz_v),
                                 *_pick(consts_t, nz_k), step=step, num_vals=num_vals,
                                 num_consts=len(body_consts))
    return outs[:num_vals], _fill(nz_v, t_out)

  def jvp_body(*ins):
    v, vt, k, kt = _unflatten(ins, [num_vals, n_vt, len(body_consts), n_kt])
    return eval_program(step, *v, *k, *vt, *kt)
  new_body = _rule_program(jvp_body, v_avals + _pick(v_avals, nz_v) + k_avals
                           + _pick(k_avals, nz_k))

  def new_cond_fn(*ins):
    return eval_program(cond, *ins[:num_vals], *ins[num_vals + n_vt:])
  new_cond = _rule_program(new_cond_fn, v_avals + _pick(v_avals, nz_v)
                           + cond.in_avals[num_vals:])
  outs = while_p.bind(*vals, *_pick(vals_t, nz_v), *cond_consts, *body_consts,
                      *_pick(consts_t, nz_k), cond=new_cond, body=new_body,
                      num_vals=num_vals + n_vt, num_cond_consts=len(cond_consts))
  return outs[:num_vals], _fill(nz_v, outs[num_vals:])


def _tangent_step(body, num_vals, nz_v, nz_k):
  """One step with its tangents: (*vals, *consts, *val tangents, *const tangents) ->
  (*vals, *val tangents), the tangents those of the flagged values and constants."""
  v_avals, k_avals = body.in_avals[:num_vals], body.in_avals[num_vals:]

  def fn(*ins):
    v, k, vt, kt = _unflatten(ins, [num_vals, len(k_avals), sum(nz_v), sum(nz_k)])
    outs, t_out = _body_jvp(body, v + k, _fill(nz_v, vt) + _fill(nz_k, kt), nz_v)
    return outs + t_out
  step = _rule_program(fn, v_avals + k_avals + _pick(v_avals, nz_v)
                       + _pick(k_avals, nz_k))
  return step


def _counted(program, num_vals, kind):
  """The loop's condition or body with a step counter after the values: the body adds one
  to it, the condition ignores it."""
  avals = program.in_avals

  def fn(*ins):
    vals, count, consts = ins[:num_vals], ins[num_vals], ins[num_vals + 1:]
    outs = eval_program(program, *vals, *consts)
    return outs if kind == "cond" else outs + [count + 1]
  counted = _rule_program(fn, avals[:num_vals] + [_COUNT] + avals[num_vals:])
  return counted


# ---- while_tangent: a while loop's tangents, given its number of steps --------------------------
# while_tangent(n, *vals, *consts, *val_tangents, *const_tangents; step, num_vals, num_consts)
#   -> the val tangents after n steps of `step` (see _tangent_step), linear in the tangents.
# Its transpose is while_reverse (below), which runs the steps backwards.
while_tangent_p = core.primitive("while_tangent", multiple_results=True)
ad.complex_rules.add(while_tangent_p)


def _tangent_args(args, num_vals, num_consts):
  n, rest = args[0], list(args[1:])
  vals, consts = rest[:num_vals], rest[num_vals:num_vals + num_consts]
  return n, vals, consts, rest[num_vals + num_consts:]


def _while_tangent_impl(*args, step, num_vals, num_consts):
  from dfdx._src.codegen import helper_function  # the loop the generated code runs
  outs = helper_function("_tangent_loop")(_compiled(step), num_vals, num_consts,
                                          len(step.outs) - num_vals, *args)
  return _with_dtypes(outs, step.out_avals[num_vals:])


def _while_tangent_abstract_eval(n, *avals, step, num_vals, num_consts):
  if n.shape != () or n.dtype.kind not in "iu":
    raise TypeError(f"while_tangent: the step count is {n.str_short()}, an integer scalar "
                    "is expected")
  return step.out_avals[num_vals:]


def _as_while(*args, step, num_vals, num_consts):
  """while_tangent written as a while_p loop over (counter, values, tangents), for the rules
  that transform it (JVP, batching)."""
  n, vals, consts, tangents = _tangent_args(args, num_vals, num_consts)
  num_t = len(step.outs) - num_vals
  t_vals, t_consts = tangents[:num_t], tangents[num_t:]
  v_avals = step.in_avals[:num_vals]
  k_avals = step.in_avals[num_vals:num_vals + num_consts]
  vt_avals = step.in_avals[num_vals + num_consts:num_vals + num_consts + num_t]
  kt_avals = step.in_avals[num_vals + num_consts + num_t:]

  def cond_fn(i, *rest):
    return [i < rest[-1]]
  cond = _rule_program(cond_fn, [_COUNT] + v_avals + vt_avals + [_COUNT])

  def body_fn(i, *rest):
    v, vt, k, kt = _unflatten(rest, [num_vals, num_t, num_consts, len(kt_avals)])
    outs = eval_program(step, *v, *k, *vt, *kt)
    return [i + 1] + outs
  body = _rule_program(body_fn, [_COUNT] + v_avals + vt_avals + k_avals + kt_avals)
  outs = while_p.bind(np.int64(0), *vals, *t_vals, _dnp().asarray(n, np.int64), *consts,
                      *t_consts, cond=cond, body=body, num_vals=1 + num_vals + num_t,
                      num_cond_consts=1)
  return outs[1 + num_vals:]


def _while_tangent_jvp(primals, tangents, **params):
  return ad.jvp_flat(lambda *a: _as_while(*a, **params), list(primals), list(tangents))


def _while_tangent_batch(axis_size, vals, dims, **params):
  return batching.vmap_flat(lambda *a: _as_while(*a, **params), axis_size, list(vals),
                            list(dims))


def _while_tangent_transpose(cts, *args, step, num_vals, num_consts):
  n, vals, consts, tangents = _tangent_args(args, num_vals, num_consts)
  if ad.is_linear(n) or any(ad.is_linear(a) for a in vals + consts):
    raise errors.MissingRuleError("while_tangent is linear in its tangents only")
  vt_avals = step.out_avals[num_vals:]
  cts = [_zeros(a) if c is None else c for c, a in zip(cts, vt_avals)]
  outs = while_reverse_p.bind(n, *vals, *consts, *cts, step=step, num_vals=num_vals,
                              num_consts=num_consts)
  return ([None] * (1 + num_vals + num_consts)
          + [c if ad.is_linear(a) else None for c, a in zip(outs, tangents)])


# ---- while_reverse: while_tangent's transpose -----------------------------------------------
# while_reverse(n, *vals, *consts, *cts; step, num_vals, num_consts) -> the cotangents of
# while_tangent's tangent inputs (values', then constants') given those of its outputs.
# Its impl keeps each step's values (a Python list: the number of steps is known only when it
# runs) and runs the transposed steps backwards: n steps of time, memory of n steps' values,
# up to REVERSE_LOOP_BYTES; beyond, it keeps every k-th step's values (k about sqrt(n)) and
# computes each stretch of k steps again when the backward pass reaches it: 2n steps of
# time, memory of 2 sqrt(n) steps' values.
# Its derivatives and batching go through `_reverse_as_while`, the same computation as while
# loops of static shape, which computes step k's values again from the start (n^2/2 steps).
while_reverse_p = core.primitive("while_reverse", multiple_results=True)
REVERSE_LOOP_BYTES = 1 << 28  # (read when the loop is compiled or evaluated)
ad.complex_rules.add(while_reverse_p)


def _step_parts(step, num_vals, num_consts):
  """From while_tangent's step: the values' step (*vals, *consts) -> vals, and the transposed
  tangent step (*vals, *consts, *cts) -> (*cts of the value tangents, *cts of the constant
  tangents)."""
  num_t = len(step.outs) - num_vals
  v_avals = step.in_avals[:num_vals]
  k_avals = step.in_avals[num_vals:num_vals + num_consts]
  t_avals = step.in_avals[num_vals + num_consts:]
  vt_avals = t_avals[:num_t]

  def forward(*ins):
    return eval_program(step, *ins, *[_zeros(a) for a in t_avals])[:num_vals]

  def backward(*ins):
    v, c, ct = _unflatten(ins, [num_vals, num_consts, num_t])
    return _transpose(lambda *t: eval_program(step, *v, *c, *t)[num_vals:], t_avals, ct)
  fwd = _rule_program(forward, v_avals + k_avals)
  back = _rule_program(backward, v_avals + k_avals + vt_avals)
  return fwd, back


_parts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_parts(step, num_vals, num_consts):
  """_step_parts, once per step program (its params num_vals and num_consts go with it)."""
  parts = _parts.get(step)
  if parts is None:
    parts = _parts[step] = _step_parts(step, num_vals, num_consts)
  return parts


def _while_reverse_impl(*args, step, num_vals, num_consts):
  from dfdx._src.codegen import helper_function  # the loop the generated code runs
  fwd, back = _cached_parts(step, num_vals, num_consts)
  avals = step.in_avals[num_vals + num_consts:]
  num_t = len(step.outs) - num_vals
  acc_like = tuple((a.shape, a.dtype) for a in avals[num_t:])
  outs = helper_function("_reverse_loop")(_compiled(fwd), _compiled(back), num_vals,
                                          num_consts, acc_like, REVERSE_LOOP_BYTES, *args)
  return _with_dtypes(outs, avals)


def _while_reverse_abstract_eval(n, *avals, step, num_vals, num_consts):
  if n.shape != () or n.dtype.kind not in "iu":
    raise TypeError(f"while_reverse: the step count is {n.str_short()}, an integer scalar "
                    "is expected")
  return step.in_avals[num_vals + num_consts:]


def _reverse_as_while(*args, step, num_vals, num_consts):
  """while_reverse written with while_p loops of static shape: the values at step k are
  computed again from the start (for the rules that transform it)."""
  n, vals, consts, cts = _tangent_args(args, num_vals, num_consts)
  num_t = len(step.outs) - num_vals
  fwd, back = _cached_parts(step, num_vals, num_consts)
  v_avals = step.in_avals[:num_vals]
  k_avals = step.in_avals[num_vals:num_vals + num_consts]
  t_avals = step.in_avals[num_vals + num_consts:]
  kt_avals = t_avals[num_t:]

  def values_at(k, vals, consts):
    """The values after k steps of the loop, computed again from the start."""
    def cond_fn(j, *rest):
      return [j < rest[-1]]

    def body_fn(j, *rest):
      return [j + 1] + eval_program(fwd, *rest)
    cond = _rule_program(cond_fn, [_COUNT] + v_avals + [_COUNT])
    body = _rule_program(body_fn, [_COUNT] + v_avals + k_avals)
    return while_p.bind(np.int64(0), *vals, k, *consts, cond=cond, body=body,
                        num_vals=1 + num_vals, num_cond_consts=1)[1:]

  def back_cond(k, *rest):
    return [k >= 0]

  def back_body(k, *rest):
    ct, acc, v0, c = _unflatten(rest, [num_t, len(kt_avals), num_vals, num_consts])
    out = eval_program(back, *values_at(k, v0, c), *c, *ct)
    return [k - 1] + out[:num_t] + [a + b for a, b in zip(acc, out[num_t:])]
  cond = _rule_program(back_cond, [_COUNT] + t_avals)
  body = _rule_program(back_body, [_COUNT] + t_avals + v_avals + k_avals)
  outs = while_p.bind(_dnp().asarray(n, np.int64) - 1, *cts, *[_zeros(a) for a in kt_avals],
                      *vals, *consts, cond=cond, body=body, num_vals=1 + len(t_avals),
                      num_cond_consts=0)
  return outs[1:]


def _while_reverse_jvp(primals, tangents, **params):
  return ad.jvp_flat(lambda *a: _reverse_as_while(*a, **params), list(primals), list(tangents))


def _while_reverse_batch(axis_size, vals, dims, **params):
  return batching.vmap_flat(lambda *a: _reverse_as_while(*a, **params), axis_size, list(vals),
                            list(dims))


while_reverse_p.def_impl(_while_reverse_impl)
while_reverse_p.def_abstract_eval(_while_reverse_abstract_eval)
ad.primitive_jvps[while_reverse_p] = _while_reverse_jvp
batching.primitive_batchers[while_reverse_p] = _while_reverse_batch


while_tangent_p.def_impl(_while_tangent_impl)
while_tangent_p.def_abstract_eval(_while_tangent_abstract_eval)
ad.primitive_jvps[while_tangent_p] = _while_tangent_jvp
ad.primitive_transposes[while_tangent_p] = _while_tangent_transpose
batching.primitive_batchers[while_tangent_p] = _while_tangent_batch


def _while_batch(axis_size, vals, dims, *, cond, body, num_vals, num_cond_consts):
  dnp, not_mapped = _dnp(), batching.NOT_MAPPED
  batched = [d is not not_mapped for d in dims]
  v_b, c_b, k_b = _split(batched, num_vals, num_cond_consts)
  v_b, _ = _carry_fixed_point(body, num_vals, v_b, k_b)
  pred_b = _reaches(cond, v_b + c_b)[0]
  if pred_b:  # each example stops on its own: every value may differ per example
    v_b = [True] * num_vals
  moved = []
  for i, (v, d) in enumerate(zip(vals, dims)):
    if d is not_mapped:
      if i < num_vals and v_b[i]:
        v = dnp.broadcast_to(v, (axis_size,) + core.shape_of(v))
    else:
      v = batching.moveaxis(v, d, 0)
    moved.append(v)
  args_v, args_c, args_k = _split(moved, num_vals, num_cond_consts)
  in_dims = [0 if b else not_mapped for b in v_b + c_b + k_b]
  v_dims, c_dims, k_dims = _split(in_dims, num_vals, num_cond_consts)
  batch = lambda a, d: a if d is not_mapped else ShapedArray(  # noqa: E731
      (axis_size,) + a.shape, a.dtype)
  v_avals = [batch(a, d) for a, d in zip(body.in_avals[:num_vals], v_dims)]
  c_avals = [batch(a, d) for a, d in zip(cond.in_avals[num_vals:], c_dims)]
  k_avals = [batch(a, d) for a, d in zip(body.in_avals[num_vals:], k_dims)]

  def predicates(v, c):
    (p,), (d,) = batching.vmap_flat(lambda *a: eval_program(cond, *a), axis_size,
                                    list(v) + list(c), v_dims + c_dims)
    return dnp.broadcast_to(p, (axis_size,)) if d is not_mapped else p

  def new_body_fn(*ins):
    v, c, k = _split(ins, num_vals, len(args_c))
    outs, out_dims = batching.vmap_flat(lambda *a: eval_program(body, *a), axis_size,
                                        v + k, v_dims + k_dims)
    outs = [dnp.broadcast_to(o, (axis_size,) + core.shape_of(o)) if b and d is not_mapped
            else o for o, d, b in zip(outs, out_dims, v_b)]
    if not pred_b:
      return outs
    p = predicates(v, c)
    return [dnp.where(dnp.reshape(p, (axis_size,) + (1,) * (len(core.shape_of(o)) - 1)), o, x)
            for o, x in zip(outs, v)]
  new_body = _rule_program(new_body_fn, v_avals + c_avals + k_avals)

  def new_cond_fn(*ins):
    v, c = ins[:num_vals], ins[num_vals:]
    if pred_b:
      return [dnp.any(predicates(v, c))]
    (p,), _ = batching.vmap_flat(lambda *a: eval_program(cond, *a), axis_size,
                                 list(v) + list(c), v_dims + c_dims)
    return [p]  # (the condition does not depend on the batch)
  new_cond = _rule_program(new_cond_fn, v_avals + c_avals)
  outs = while_p.bind(*args_v, *args_c, *args_c, *args_k, cond=new_cond, body=new_body,
                      num_vals=num_vals, num_cond_consts=len(args_c))
  return outs, v_dims


ad.primitive_jvps[while_p] = _while_jvp
batching.primitive_batchers[while_p] = _while_batch


# ---- cond and switch ----------------------------------------------------------------------------


def cond(pred, true_fun, false_fun, *operands):
  """`true_fun(*operands)` if `pred` else `false_fun(*operands)`: `jax.lax.cond`.

  Outside jit and vmap this is the Python `if`. Under jit only the branch taken runs; under
  vmap with a batched `pred` both run and each example takes its own result (as
  `dnp.where` would). Both branches must return the same structure, shapes and dtypes. A
  Python number that every branch returns stays one under jit (the Python `if` leaves it
  one); where one branch returns a NumPy value, the result is one.

  >>> import dfdx
  >>> f = dfdx.jit(lambda x: dfdx.cond(x > 0, lambda x: x ** 2, lambda x: -x, x))
  >>> float(f(3.0)), float(dfdx.grad(f)(-3.0))
  (9.0, -1.0)
  """
  return _cond(pred, true_fun, false_fun, operands, staged=False)


def _cond(pred, true_fun, false_fun, operands, staged):
  """cond; with `staged`, an equation of cond_p even outside jit and vmap (tests)."""
  aval = core.get_aval(pred)
  if aval.shape != () or aval.dtype.kind not in "biu":
    raise TypeError(f"cond: pred must be a boolean (or integer) scalar, got "
                    f"{aval.str_short()}. Reduce it (dnp.all, dnp.any) or compare (x > 0).")
  if not (staged or _staging() or _batching()):
    return true_fun(*operands) if bool(pred) else false_fun(*operands)
  index = _dnp().asarray(pred if aval.dtype.kind == "b" else pred != 0, np.int64)
  return _switch(index, (false_fun, true_fun), operands, "cond")


def switch(index, branches, *operands):
  """`branches[index](*operands)`, with `index` clipped to the branches: `jax.lax.switch`.

  >>> import dfdx
  >>> float(dfdx.jit(lambda i, x: dfdx.switch(i, [lambda x: x, lambda x: 2 * x], x))(5, 1.5))
  3.0
  """
  return _switch_of(index, branches, operands, staged=False)


def _switch_of(index, branches, operands, staged):
  """switch; with `staged`, an equation of cond_p even outside jit and vmap (tests)."""
  branches = list(branches)
  if not branches or not all(callable(b) for b in branches):
    raise TypeError(f"switch: branches must be a non-empty sequence of functions, got "
                    f"{branches!r}.")
  aval = core.get_aval(index)
  if aval.shape != () or aval.dtype.kind not in "iu":
    raise TypeError(f"switch: index must be an integer scalar, got {aval.str_short()}.")
  if not (staged or _staging() or _batching()):
    return branches[min(max(int(index), 0), len(branches) - 1)](*operands)
  return _switch(_dnp().asarray(index, np.int64), branches, operands, "switch")


def _switch(index, branches, operands, who):
  leaves, tree = _leaves(operands, f"{who}: operands")
  avals = [core.get_aval(x) for x in leaves]

  def trace(strong):
    """Each branch's (program, lifted, out tree); an output that is a Python number stays
    one (as the Python `if` leaves it) unless `strong` says."""
    traced = []
    for branch in branches:
      store = {}

      def flat_branch(*ins, branch=branch, store=store):
        out_leaves, store["tree"] = tree_flatten(branch(*tree_unflatten(tree, ins)))
        return [_dnp().asarray(o) if strong is not None and strong[i] else _carried(o)
                for i, o in enumerate(out_leaves)]
      program, lifted = make_program(flat_branch, avals)
      traced.append((program, lifted, store["tree"]))
    return traced
  traced = trace(None)
  weak = [[a.weak_type for a in program.out_avals] for program, _, _ in traced]
  if len({len(w) for w in weak}) == 1 and any(map(any, weak)):
    mixed = [any(w) and not all(w) for w in zip(*weak)]  # a NumPy value in some branch
    if any(mixed):
      traced = trace(mixed)
  programs = [program for program, _, _ in traced]
  consts = [lifted for _, lifted, _ in traced]
  outs = [(out_tree, program.out_avals) for program, _, out_tree in traced]
  first_tree, first_avals = outs[0]
  for k, (out_tree, out_avals) in enumerate(outs[1:], 1):
    if out_tree != first_tree or [(a.shape, a.dtype) for a in out_avals] != [
            (a.shape, a.dtype) for a in first_avals]:
      names = ("false_fun", "true_fun") if who == "cond" else [f"branch {i}" for i in
                                                                 range(len(branches))]
      show = lambda t, a: str(tree_unflatten(t, [x.str_short() for x in a]))  # noqa: E731
      raise TypeError(f"{who}: every branch must return the same structure, shapes and "
                      f"dtypes; {names[0]} returned {show(first_tree, first_avals)}, "
                      f"{names[k]} returned {show(out_tree, out_avals)}.")
  flat_consts = [c for cs in consts for c in cs]
  outs = cond_p.bind(index, *leaves, *flat_consts,
                     branches=tuple(programs), num_consts=tuple(len(c) for c in consts),
                     linear=(False,) * (len(leaves) + len(flat_consts)))
  return tree_unflatten(first_tree, outs)


cond_p = core.primitive("cond", multiple_results=True)
ad.complex_rules.add(cond_p)


def _branch_args(args, branches, num_consts, k):
  """The inputs of branch k among the operands and every branch's constants."""
  n_ops = len(args) - sum(num_consts)
  start = n_ops + sum(num_consts[:k])
  return list(args[:n_ops]) + list(args[start:start + num_consts[k]])


def _pick_branch(index, n):
  return min(max(int(index), 0), n - 1)


def _cond_impl(index, *args, branches, num_consts, linear):
  k = _pick_branch(index, len(branches))
  return list(_compiled(branches[k])(*_branch_args(args, branches, num_consts, k)))


def _cond_abstract_eval(index, *avals, branches, num_consts, linear):
  if index.shape != () or index.dtype.kind not in "iu":
    raise TypeError(f"cond: the index is {index.str_short()}, an integer scalar is expected")
  for k, program in enumerate(branches):
    for a, e in zip(_branch_args(avals, branches, num_consts, k), program.in_avals,
                    strict=True):
      if a.shape != e.shape or a.dtype != e.dtype:
        raise TypeError(f"cond: branch {k} expects {e.str_short()}, got {a.str_short()}")
  return branches[0].out_avals


cond_p.def_impl(_cond_impl)
cond_p.def_abstract_eval(_cond_abstract_eval)
core.keeps_weak_types.add(cond_p)  # (a Python number every branch gives stays one)


def _cond_jvp(primals, tangents, *, branches, num_consts, linear):
  index, args = primals[0], list(primals[1:])
  arg_t = list(tangents[1:])
  nonzero = [t is not None and core.get_aval(a).dtype.kind in "fc"
             for a, t in zip(args, arg_t)]
  out_avals = branches[0].out_avals
  out_nz = [False] * len(out_avals)
  for k, program in enumerate(branches):
    reached = _reaches(program, _branch_args(nonzero, branches, num_consts, k))
    out_nz = [a or b for a, b in zip(out_nz, reached)]
  out_nz = [nz and a.dtype.kind in "fc" for nz, a in zip(out_nz, out_avals)]
  params = dict(branches=branches, num_consts=num_consts, linear=linear)
  if not any(out_nz):
    outs = cond_p.bind(*primals, **params)
    return outs, [None] * len(outs)
  n_args, n_t = len(args), sum(nonzero)
  arg_avals = [core.get_aval(a) for a in args]
  split = linearizing(arg_t)

  def tangent_branch(k):
    def fn(*ins):
      a, t = list(ins[:n_args]), list(ins[n_args:])
      outs, outs_t = ad.jvp_flat(
          lambda *x: eval_program(branches[k], *x), _branch_args(a, branches, num_consts, k),
          _branch_args(_fill(nonzero, t), branches, num_consts, k))
      t_out = [_zeros(core.get_aval(o)) if d is None else d
               for o, d in zip(_pick(outs, out_nz), _pick(outs_t, out_nz))]
      return t_out if split else outs + t_out
    program = _rule_program(fn, arg_avals + _pick(arg_avals, nonzero))
    return program
  new_branches = tuple(tangent_branch(k) for k in range(len(branches)))
  new_args = args + _pick(arg_t, nonzero)
  new_params = dict(branches=new_branches, num_consts=(0,) * len(branches))
  if split:  # the primal cond, and a cond linear in the tangents (see _cond_transpose)
    outs = cond_p.bind(*primals, **params)
    t_out = cond_p.bind(index, *new_args, linear=(False,) * n_args + (True,) * n_t,
                        **new_params)
    return outs, _fill(out_nz, t_out)
  outs = cond_p.bind(index, *new_args, linear=(False,) * len(new_args), **new_params)
  return outs[:len(out_avals)], _fill(out_nz, outs[len(out_avals):])


def _cond_transpose(cts, index, *args, branches, num_consts, linear):
  if ad.is_linear(index):
    raise errors.MissingRuleError("cond: the index of a cond cannot be linear")
  out_avals = branches[0].out_avals
  cts = [_zeros(a) if c is None else c for c, a in zip(cts, out_avals)]
  # The arguments that are linear here: those the JVP made so, and any other a derivative
  # feeds (a cond the user wrote in a custom JVP rule, applied to the tangents)
  linear = tuple(bool(lin) or ad.is_linear(a) for lin, a in zip(linear, args))
  arg_avals = [core.get_aval(a) for a in args]
  lin_avals = _pick(arg_avals, linear)

  def transposed(k):
    def fn(*ins):
      others, ct = ins[:len(ins) - len(out_avals)], ins[len(ins) - len(out_avals):]
      full = lambda lin: _merge(linear, lin, others)  # noqa: E731
      return _transpose(
          lambda *lin: eval_program(branches[k], *_branch_args(full(lin), branches,
                                                               num_consts, k)),
          lin_avals, ct)
    program = _rule_program(fn, _keep(arg_avals, linear) + out_avals)
    return program
  new_branches = tuple(transposed(k) for k in range(len(branches)))
  new_args = _keep(list(args), linear) + cts
  outs = cond_p.bind(index, *new_args, branches=new_branches,
                     num_consts=(0,) * len(branches), linear=(False,) * len(new_args))
  return [None] + [c if ad.is_linear(a) else None
                   for c, a in zip(_fill(linear, outs), args)]




def _cond_batch(axis_size, vals, dims, *, branches, num_consts, linear):
  dnp, not_mapped = _dnp(), batching.NOT_MAPPED
  index, args = vals[0], list(vals[1:])
  index_dim, arg_dims = dims[0], list(dims[1:])
  out_avals = branches[0].out_avals

  def run(k):
    return batching.vmap_flat(lambda *a: eval_program(branches[k], *a), axis_size,
                              _branch_args(args, branches, num_consts, k),
                              _branch_args(arg_dims, branches, num_consts, k))
  if index_dim is not not_mapped:  # every branch runs; each example takes its own result
    index = dnp.clip(batching.moveaxis(index, index_dim, 0), 0, len(branches) - 1)
    results = []
    for k in range(len(branches)):
      outs, out_dims = run(k)
      results.append([dnp.broadcast_to(o, (axis_size,) + a.shape) if d is not_mapped
                      else batching.moveaxis(o, d, 0)
                      for o, d, a in zip(outs, out_dims, out_avals)])
    chosen = results[-1]
    for k in range(len(branches) - 2, -1, -1):
      chosen = [dnp.where(dnp.reshape(index == k, (axis_size,) + (1,) * len(a.shape)), r, c)
                for r, c, a in zip(results[k], chosen, out_avals)]
    return chosen, [0] * len(out_avals)
  batched = [d is not not_mapped for d in arg_dims]
  out_b = [False] * len(out_avals)
  for k, program in enumerate(branches):
    reached = _reaches(program, _branch_args(batched, branches, num_consts, k))
    out_b = [a or b for a, b in zip(out_b, reached)]
  moved = [a if d is not_mapped else batching.moveaxis(a, d, 0)
           for a, d in zip(args, arg_dims)]
  in_dims = [not_mapped if d is not_mapped else 0 for d in arg_dims]

  def batched_branch(k):
    def fn(*ins):
      outs, out_dims = batching.vmap_flat(
          lambda *a: eval_program(branches[k], *a), axis_size,
          _branch_args(list(ins), branches, num_consts, k),
          _branch_args(in_dims, branches, num_consts, k))
      return [(dnp.broadcast_to(o, (axis_size,) + a.shape) if d is not_mapped
               else batching.moveaxis(o, d, 0)) if b else o
              for o, d, a, b in zip(outs, out_dims, out_avals, out_b)]
    avals = [core.get_aval(a) for a in moved]
    program = _rule_program(fn, avals)
    return program
  new_branches = tuple(batched_branch(k) for k in range(len(branches)))
  outs = cond_p.bind(index, *moved, branches=new_branches, num_consts=(0,) * len(branches),
                     linear=linear)
  return outs, [0 if b else not_mapped for b in out_b]


def _cond_dependence(reached, *, branches, num_consts, linear):
  if reached[0]:  # the branch taken depends on them
    return [True] * len(branches[0].outs)
  out = [False] * len(branches[0].outs)
  for k, program in enumerate(branches):
    out = [a or b for a, b in zip(out, _reaches(program, _branch_args(reached[1:], branches,
                                                                      num_consts, k)))]
  return out


dependence_rules.update({while_p: _while_dependence, cond_p: _cond_dependence})
ad.primitive_jvps[cond_p] = _cond_jvp
ad.primitive_transposes[cond_p] = _cond_transpose
batching.primitive_batchers[cond_p] = _cond_batch
