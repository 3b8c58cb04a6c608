"""Optimizing passes over programs: inlining of nested jit calls, constant folding,
simplification of the zeros and ones that differentiation introduces, sums and gathers moved
toward their data, common-subexpression elimination and dead-code elimination.

Every pass returns a new, equivalent program (the input is not modified). `optimize` runs
them to a fixed point. The simplifications are exact rewrites only (they never change a
result, NaN and infinity included): `x * 1 -> x`, `x + 0 -> x`, `x - 0 -> x`, `x / 1 -> x`,
`-(-x) -> x`, transposes and reshapes of themselves, casts and broadcasts to the same type.
Rewrites that save an operation: explicit broadcasts (and reshapes adding leading axes of
length 1) dropped before broadcasting operations, scalar factors folded (`(y * c1) * c2`,
also through a reshape: `reshape(y * c) -> reshape(y) * c`), and `pad(a) + pad(b)` of
adjacent blocks joined into one concatenation (the gradients of slices of one input).
For programs that are only run (compiled code, `evaluate_only`), stop_gradient goes too.

`push_sums` moves sums toward the data they sum (`sum(-x) -> -sum(x)`, `sum(a + b) ->
sum(a) + sum(b)`, `sum(a * c) -> sum(a) * c` for c constant along the summed axes, sums
through transposes, `sum(sum(x, a1), a2) -> sum(x, a1 + a2)`, and `sum_n (A @ x_n) -> A @
sum_n x_n`). Reverse mode makes such sums everywhere (the transpose of broadcasting); pushed
down they sum small arrays instead of large ones. These rewrites are algebraically exact;
like any change of summation order they may change rounding in the last bits.

`pull_gathers` does the same for gathers that keep fewer entries than their axis holds
(`take(f(x), idx) -> f(take(x, idx))` through elementwise operations, transposes, reshapes,
sums and products): a model evaluated everywhere and then at a few points computes those
points only, and a gather that reaches a constant is folded into it.

On compiled programs only, `factoring.share_factors` computes a sum of products that share
a large factor as one product with it, `(dR A + R dA) W` for `dR (A W) + R (dA W)`, where
that costs fewer operations (reassociated sums: rounding may differ in the last bits). Two
layout passes run on compiled programs only too: `sink_into_gathers` moves a Jacobian's last
transpose into the gather before it (which then copies whole rows) and unary operations
before gathers that repeat entries; `batch_last` lays a batch of many small problems out
with the batch axis last, so that NumPy loops over the batch instead of over each problem's
few entries.
"""
from __future__ import annotations

import weakref

import numpy as np

from dfdx._src import core, dtypes
from dfdx._src.ir import Eqn, Lit, Program, Var, typecheck_program
from dfdx._src import staging


def _rebuild(program, eqns, outs, const_vars=None, const_vals=None):
  out = Program(program.in_vars, program.const_vars if const_vars is None else const_vars,
                program.const_vals if const_vals is None else const_vals, eqns, outs)
  if staging.check_programs:
    typecheck_program(out)
  return out


class _Subst:
  """A substitution of atoms for variables, applied to equation inputs and outputs."""

  def __init__(self):
    self.map = {}

  def __call__(self, a):
    while isinstance(a, Var) and id(a) in self.map:
      a = self.map[id(a)]
    return a

  def set(self, var, atom):
    self.map[id(var)] = atom


def _same_type(atom, var):
  """Whether `atom` can stand for `var`: the same shape and dtype, and both weakly typed (a
  Python scalar) or neither."""
  aval, other = atom.aval, var.aval
  return (aval.shape == other.shape and aval.dtype == other.dtype
          and aval.weak_type == other.weak_type)


def _rewrite_each(program, subst, rewrite):
  """`program` with each equation for which `rewrite(eqn, inputs)` gives (equations, atom)
  replaced by those equations and its output by the atom (`inputs`: the equation's, with
  `subst` applied, which the rewrite may read too); the same program where none is."""
  eqns, changed = [], False
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    found = rewrite(eqn, inputs)
    if found is None:
      eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
      continue
    new, result = found
    eqns.extend(new)
    subst.set(eqn.outputs[0], result)
    changed = True
  if not changed:
    return program
  return dce(_rebuild(program, eqns, [subst(o) for o in program.outs]))


# ---- dead code ------------------------------------------------------------------------------


def dce(program: Program) -> Program:
  """Remove equations whose outputs are not used (every primitive is pure)."""
  live = {id(o) for o in program.outs if isinstance(o, Var)}
  kept = []
  for eqn in reversed(program.eqns):
    if any(id(v) in live for v in eqn.outputs):
      kept.append(eqn)
      live.update(id(a) for a in eqn.inputs if isinstance(a, Var))
  kept.reverse()
  used = [(v, c) for v, c in zip(program.const_vars, program.const_vals) if id(v) in live]
  return _rebuild(program, kept, program.outs, [v for v, _ in used], [c for _, c in used])


# ---- common subexpressions --------------------------------------------------------------


def _hashable(value):
  if isinstance(value, np.ndarray):
    return ("array", value.shape, value.dtype.str, value.tobytes())
  if isinstance(value, (tuple, list)):
    return tuple(_hashable(v) for v in value)
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  hash(value)
  return value


def _atom_key(a):
  if type(a) is Lit:
    return ("lit", type(a.val).__name__, _hashable(np.asarray(a.val)), a.aval.dtype.str)
  return ("var", id(a))


def cse(program: Program) -> Program:
  """Reuse the result of an equation already computed with the same primitive, inputs and
  parameters."""
  seen, subst, eqns = {}, _Subst(), []
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    try:
      key = (eqn.prim, tuple(_atom_key(a) for a in inputs), _hashable(eqn.params),
             tuple(v.aval.weak_type for v in eqn.outputs))  # (`s * 2.0` is a Python float,
    except TypeError:                                       # np.multiply(s, 2.0) is not)
      key = None
    if key is not None and key in seen:
      for v, prev in zip(eqn.outputs, seen[key]):
        subst.set(v, prev)
      continue
    if key is not None:
      seen[key] = eqn.outputs
    eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
  return _rebuild(program, eqns, [subst(o) for o in program.outs])


# ---- constant folding ---------------------------------------------------------------------


def fold_constants(program: Program) -> Program:
  """Evaluate equations whose inputs are all constants or literals, now."""
  values = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
  const_vars, const_vals = list(program.const_vars), list(program.const_vals)
  eqns, subst = [], _Subst()
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    if all(type(a) is Lit or id(a) in values for a in inputs) and eqn.prim.name != "jit_call":
      args = [a.val if type(a) is Lit else values[id(a)] for a in inputs]
      with np.errstate(all="ignore"):
        out = eqn.prim.impl(*args, **eqn.params)
      for v, o in zip(eqn.outputs, out if eqn.prim.multiple_results else [out]):
        o = np.asarray(o)
        if o.ndim == 0:  # (a Python scalar where the variable stands for one)
          subst.set(v, Lit(o.astype(v.aval.dtype).item() if v.aval.weak_type
                           else o.astype(v.aval.dtype)[()]))
        else:
          values[id(v)] = o
          const_vars.append(v)
          const_vals.append(o)
      continue
    eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
  return _rebuild(program, eqns, [subst(o) for o in program.outs], const_vars, const_vals)


# ---- algebraic simplification -------------------------------------------------------------


def _is_scalar_literal(a, value):
  return type(a) is Lit and np.ndim(a.val) == 0 and bool(np.asarray(a.val) == value)


class _Constants:
  """Which constant variables hold arrays of all zeros or all ones (cached per variable)."""

  def __init__(self, program):
    self.values = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
    self.cache = {}

  def is_all(self, a, value):
    if type(a) is Lit:
      return _is_scalar_literal(a, value)
    key = (id(a), value)
    if key not in self.cache:
      c = self.values.get(id(a))
      self.cache[key] = c is not None and c.size > 0 and bool(np.all(c == value))
    return self.cache[key]


def _simplify_eqn(eqn, inputs, producers, consts):
  """An atom equal to the equation's output, or None if no rewrite applies."""
  if eqn.prim.multiple_results:
    return None
  name, out = eqn.prim.name, eqn.outputs[0]
  if name in ("mul", "zmul"):
    for a, b in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
      if consts.is_all(b, 1) and _same_type(a, out):
        return a
  if name in ("add", "sub"):
    x, y = inputs
    if consts.is_all(y, 0) and _same_type(x, out):
      return x
    if name == "add" and consts.is_all(x, 0) and _same_type(y, out):
      return y
  if name in ("div", "zdiv") and consts.is_all(inputs[1], 1) and _same_type(inputs[0], out):
    return inputs[0]
  if name == "integer_pow" and eqn.params["y"] == 1:
    return inputs[0]
  if name in ("convert_element_type", "broadcast_to", "reshape") and _same_type(inputs[0], out):
    return inputs[0]
  producer = producers.get(id(inputs[0])) if isinstance(inputs[0], Var) else None
  if name == "neg" and producer is not None and producer.prim.name == "neg":
    return producer.inputs[0]
  if name == "transpose" and producer is not None and producer.prim.name == "transpose":
    perm = tuple(producer.params["perm"][p] for p in eqn.params["perm"])
    if perm == tuple(range(len(perm))):
      return producer.inputs[0]
  return None


def _power_of_two(a):
  """Whether `a` is a scalar literal +-2**k (multiplying by it is exact in binary floats)."""
  if type(a) is not Lit or np.ndim(a.val) != 0 or a.aval.dtype.kind not in "fi":
    return False
  value = abs(float(np.asarray(a.val)))
  return value > 0 and np.isfinite(value) and np.frexp(value)[0] == 0.5


_BROADCASTING = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "select", "atan2",
                 "logaddexp", "eq", "ne", "lt", "le", "gt", "ge"}


def _unbroadcast_operands(eqn, inputs, producers):
  """The inputs with explicit broadcasts dropped where NumPy broadcasting of the other
  operands gives the same output shape (`broadcast_to(s, S) * b -> s * b`, and
  `reshape(s, (1,) + s.shape) * b -> s * b`)."""
  if eqn.prim.name not in _BROADCASTING:
    return None
  out_shape = eqn.outputs[0].aval.shape
  changed, new = False, list(inputs)
  for i, a in enumerate(inputs):
    p = producers.get(id(a)) if isinstance(a, Var) else None
    if p is None or p.prim.name not in ("broadcast_to", "reshape") or (
            p.inputs[0].aval.weak_type):  # (a Python scalar would not promote as `a` does)
      continue
    if p.prim.name == "reshape":  # only leading axes of length 1 added: broadcasting does it
      x_shape = p.inputs[0].aval.shape
      lead = a.aval.ndim - len(x_shape)
      if lead <= 0 or a.aval.shape != (1,) * lead + x_shape:
        continue
    trial = new[:i] + [p.inputs[0]] + new[i + 1:]
    if np.broadcast_shapes(*[t.aval.shape for t in trial]) == out_shape:
      new, changed = trial, True
  return Eqn(eqn.prim, new, eqn.params, eqn.outputs, eqn.source) if changed else None


def _fuse_eqn(eqn, inputs, producers, uses=None):
  """A cheaper equation computing the same output (reshape of reshape, transpose of
  transpose, explicit broadcasts dropped, power-of-two literals moved to the smaller
  operand), or None."""
  unbroadcast = _unbroadcast_operands(eqn, inputs, producers)
  if unbroadcast is not None:
    return unbroadcast
  name = eqn.prim.name
  if name == "mul" and uses is not None:
    folded = _fold_scalar_chain(eqn, inputs, producers, uses)
    if folded is not None:
      return folded
  if name == "neg" and uses is not None:  # -(y * c) -> y * (-c): exact
    inner = producers.get(id(inputs[0])) if isinstance(inputs[0], Var) else None
    if inner is not None and inner.prim.name == "mul" and uses.get(id(inputs[0])) == 1:
      for y, c in (inner.inputs, inner.inputs[::-1]):
        k = _scalar_factor(c)
        if k is not None and isinstance(y, Var) and y.aval == eqn.outputs[0].aval:
          # (in the result's dtype: a Python float factor is weak, -k as float64 is not)
          negated = np.asarray(-k, eqn.outputs[0].aval.dtype)[()]
          return Eqn(inner.prim, [y, Lit(negated)], {}, eqn.outputs, eqn.source)
  if name in ("zmul", "zdiv"):
    # A zero-absorbing product with a finite, nonzero literal factor (or divisor) is the
    # plain one: nothing can be absorbed.
    plain = _plain_product(eqn, inputs)
    if plain is not None:
      return plain
  if name == "mul" and uses is not None:
    # a * (k * b) -> (a * k) * b with k = +-2**j (exact) when a is smaller than b: the
    # multiplication by k then runs over the small operand only.
    for a, kb in (inputs, inputs[::-1]):
      inner = producers.get(id(kb)) if isinstance(kb, Var) else None
      if inner is None or inner.prim.name != "mul" or uses.get(id(kb)) != 1:
        continue
      k, b = inner.inputs if _power_of_two(inner.inputs[0]) else inner.inputs[::-1]
      if not _power_of_two(k) or not isinstance(a, Var) or a.aval.size >= b.aval.size:
        continue
      scaled = Var(core.abstract_eval_avals(eqn.prim, [a.aval, k.aval], {}))
      if scaled.aval.dtype != a.aval.dtype:
        continue
      return [Eqn(eqn.prim, [a, k], {}, [scaled], eqn.source),
              Eqn(eqn.prim, [scaled, b], {}, eqn.outputs, eqn.source)]
  if name == "add" and uses is not None:
    joined = _join_pads(eqn, inputs, producers, uses)
    if joined is not None:
      return joined
  producer = producers.get(id(inputs[0])) if inputs and isinstance(inputs[0], Var) else None
  if producer is None:
    return None
  if name == "reshape" and uses is not None and uses.get(id(inputs[0])) == 1:
    # reshape(y * c) -> reshape(y) * c, reshape(-y) -> -reshape(y): scalar factors move out
    # of reshapes, where the chain rules above fold them with the next ones.
    scaled = _scaled_operand(producer)
    if scaled is not None and scaled.aval.dtype == eqn.outputs[0].aval.dtype:
      moved = Var(eqn.outputs[0].aval)
      return [Eqn(eqn.prim, [scaled], eqn.params, [moved], eqn.source),
              Eqn(producer.prim, [moved if a is scaled else a for a in producer.inputs], {},
                  eqn.outputs, producer.source)]
  if name == "reshape" and producer.prim.name == "reshape":
    return Eqn(eqn.prim, [producer.inputs[0]], eqn.params, eqn.outputs, eqn.source)
  if name == "transpose" and producer.prim.name == "transpose":
    perm = tuple(producer.params["perm"][p] for p in eqn.params["perm"])
    return Eqn(eqn.prim, [producer.inputs[0]], {"perm": perm}, eqn.outputs, eqn.source)
  return None


def _scaled_operand(eqn):
  """y when `eqn` is `-y`, `y * c` or `c * y` with c a scalar floating literal, else None."""
  if eqn.prim.name == "neg" and isinstance(eqn.inputs[0], Var):
    return eqn.inputs[0]
  if eqn.prim.name == "mul":
    a, b = eqn.inputs
    if _scalar_factor(b) is not None and isinstance(a, Var):
      return a
    if _scalar_factor(a) is not None and isinstance(b, Var):
      return b
  return None


def _pad_extent(eqn, out):
  """(axis, lo, hi) of a pad with zeros along one axis only, with no interior padding and the
  shape of `out`, else None."""
  if eqn is None or eqn.prim.name != "pad" or eqn.outputs[0].aval.shape != out.aval.shape:
    return None
  padded = [(ax, lo, hi) for ax, (lo, hi, interior) in enumerate(eqn.params["config"])
            if lo or hi or interior]
  if len(padded) != 1 or eqn.params["config"][padded[0][0]][2]:
    return None
  return padded[0]


def _join_pads(eqn, inputs, producers, uses):
  """pad(a, lo=k) + pad(b, hi=m) with adjacent blocks -> concatenate([b, a]) (or a pad of the
  concatenation, if the two leave zeros at the ends): the gradients of slices of one input.
  Exact: each entry of the sum is an entry of a or b plus zero."""
  out = eqn.outputs[0]
  pads = [producers.get(id(a)) if isinstance(a, Var) and uses.get(id(a)) == 1 else None
          for a in inputs]
  extents = [_pad_extent(p, out) for p in pads]
  if None in extents or extents[0][0] != extents[1][0]:
    return None
  axis = extents[0][0]
  blocks = sorted(((lo, out.aval.shape[axis] - hi, p.inputs[0])
                  for (_, lo, hi), p in zip(extents, pads)), key=lambda b: b[:2])
  (lo, mid, first), (start, end, second) = blocks
  if mid != start or not all(isinstance(x, Var) and x.aval.dtype == out.aval.dtype
                             for x in (first, second)):
    return None
  from dfdx._src.ops import shape as shape_ops
  hi = out.aval.shape[axis] - end
  if not lo and not hi:
    return Eqn(shape_ops.concatenate_p, [first, second], {"axis": axis}, eqn.outputs,
               eqn.source)
  joined = Var(core.abstract_eval_avals(shape_ops.concatenate_p, [first.aval, second.aval],
                                        {"axis": axis}))
  config = tuple((lo, hi, 0) if ax == axis else (0, 0, 0) for ax in range(out.aval.ndim))
  return [Eqn(shape_ops.concatenate_p, [first, second], {"axis": axis}, [joined], eqn.source),
          Eqn(shape_ops.pad_p, [joined], {"config": config}, eqn.outputs, eqn.source)]


def _finite_nonzero_literal(a):
  if type(a) is not Lit:
    return False
  v = np.asarray(a.val)
  return v.dtype.kind in "biufc" and bool(np.all(np.isfinite(v)) and np.all(v != 0))


def _plain_product(eqn, inputs):
  from dfdx._src.ops import elementwise
  x, y = inputs
  if eqn.prim.name == "zmul" and (_finite_nonzero_literal(x) or _finite_nonzero_literal(y)):
    return Eqn(elementwise.mul_p, inputs, {}, eqn.outputs, eqn.source)
  if eqn.prim.name == "zdiv" and (_finite_nonzero_literal(x) or _finite_nonzero_literal(y)):
    return Eqn(elementwise.div_p, inputs, {}, eqn.outputs, eqn.source)
  return None


def _use_counts(program):
  uses = {}
  for eqn in program.eqns:
    for a in eqn.inputs:
      if isinstance(a, Var):
        uses[id(a)] = uses.get(id(a), 0) + 1
  for o in program.outs:
    if isinstance(o, Var):
      uses[id(o)] = uses.get(id(o), 0) + 2
  return uses


def _uniform_constants_as_scalars(eqn, inputs, consts):
  """In a broadcasting operation, a constant array holding one value everywhere (a broadcast
  cotangent, say) becomes a scalar literal when the other operands already give the output
  its shape: the same result, without reading the array (and open to the rewrites below)."""
  if eqn.prim.name not in _BROADCASTING or eqn.prim.name in ("eq", "ne", "lt", "le", "gt",
                                                            "ge", "select"):
    return inputs
  out_shape = eqn.outputs[0].aval.shape
  new = inputs
  for i, a in enumerate(inputs):
    c = consts.values.get(id(a)) if isinstance(a, Var) else None
    if c is None or c.size == 0 or c.dtype.kind not in "fc":
      continue
    first = c.flat[0]
    if not np.all(c == first):
      continue
    others = [b.aval.shape for j, b in enumerate(new) if j != i]
    if not others or np.broadcast_shapes(*others) != out_shape:
      continue
    new = new[:i] + [Lit(c.dtype.type(first))] + new[i + 1:]
  return new


def _scalar_factor(a):
  """The value of a scalar floating literal, or None."""
  if type(a) is Lit and np.ndim(a.val) == 0 and a.aval.dtype.kind == "f":
    return np.asarray(a.val)
  return None


def _fold_scalar_chain(eqn, inputs, producers, uses):
  """(y * c1) * c2 -> y * (c1 c2) and (-y) * c -> y * (-c), for scalar literals whose product
  is exact (one of them a power of two), when the inner result has no other use."""
  for x, c2 in (inputs, inputs[::-1]):
    k2 = _scalar_factor(c2)
    inner = producers.get(id(x)) if isinstance(x, Var) else None
    if k2 is None or inner is None or uses.get(id(x)) != 1:
      continue
    if inner.prim.name == "neg":
      y, k1 = inner.inputs[0], np.asarray(-1.0, k2.dtype)
    elif inner.prim.name == "mul":
      a, b = inner.inputs
      y, k1 = (a, _scalar_factor(b)) if _scalar_factor(b) is not None else (b, _scalar_factor(a))
      if k1 is None:
        continue
    else:
      continue
    if not (_power_of_two(Lit(k1[()])) or _power_of_two(Lit(k2[()]))):
      continue
    if not isinstance(y, Var) or y.aval.shape != eqn.outputs[0].aval.shape or \
        y.aval.dtype != eqn.outputs[0].aval.dtype:
      continue
    product = np.asarray(k1 * k2, eqn.outputs[0].aval.dtype)[()]
    return Eqn(eqn.prim, [y, Lit(product)], {}, eqn.outputs, eqn.source)
  return None


def _weak_casts_dropped(program):
  """The casts that make a staged Python scalar a NumPy value of its own dtype (what a NumPy
  function does to its operands) dropped where every equation reading one gives the same
  shape and dtype from the Python scalar: `sin(cast(s))` becomes `sin(s)` (still a NumPy
  value: only the equations recorded weakly typed make Python scalars), `x32 + cast(s)`
  keeps its cast (float64; float32 without it)."""
  casts = {id(e.outputs[0]): e.inputs[0] for e in program.eqns
           if e.prim.name == "convert_element_type" and isinstance(e.inputs[0], Var)
           and e.inputs[0].aval.weak_type and e.params["new_dtype"] == e.inputs[0].aval.dtype}
  if not casts:
    return program
  kept = {id(o) for o in program.outs if id(o) in casts}
  changed = True
  while changed:  # (a cast kept can change what another equation would give)
    changed = False
    for e in program.eqns:
      dropped = [k for k, a in enumerate(e.inputs) if id(a) in casts and id(a) not in kept]
      if not dropped:
        continue
      out = None
      if not e.prim.multiple_results:  # (a loop's body was traced on the NumPy value)
        ins = [casts[id(a)] if k in dropped else a for k, a in enumerate(e.inputs)]
        try:
          out = core.abstract_eval_avals(e.prim, [a.aval for a in ins], e.params)
          # (the operands must promote alike too: `s == x32[0]` compares in float64 with
          # the cast, in float32 without, and gives a bool either way)
          if dtypes.result_type(*[a.aval for a in ins]) != dtypes.result_type(
              *[a.aval for a in e.inputs]):
            out = None
        except Exception:  # noqa: BLE001  (then the casts stay)
          pass
      # (and the equation must still give a NumPy value at run time: a ufunc does, but
      # stop_gradient of a Python scalar would give the Python scalar)
      if out is None or (out.shape, out.dtype) != (e.outputs[0].aval.shape,
                                                   e.outputs[0].aval.dtype) or (
              out.weak_type and not core.ufunc_valued(e.prim)):
        kept.update(id(e.inputs[k]) for k in dropped)
        changed = True
  subst = _Subst()
  for v_id, x in casts.items():
    if v_id not in kept:
      subst.map[v_id] = x
  return dce(_rebuild(program, [Eqn(e.prim, [subst(a) for a in e.inputs], e.params, e.outputs,
                                    e.source) for e in program.eqns],
                      [subst(o) for o in program.outs]))


def weak_operands_cast(program):
  """A staged Python scalar that meets an array in an elementwise operation cast first to the
  dtype NumPy converts it to (`x32 + s` -> `x32 + float32(s)`: the same values). Then a
  Python scalar only ever meets other Python scalars: the loop passes, which stack a loop
  body's values along its steps (a float64 array of Python floats), cannot change what they
  promote to (loops.py casts its bodies so; elsewhere a Python scalar stays one at run
  time and needs no cast)."""
  from dfdx._src import batching
  from dfdx._src.ops.shape import convert_element_type_p
  if not any(type(a) is Var and a.aval.weak_type for e in program.eqns for a in e.inputs):
    return program
  eqns = []
  for e in program.eqns:
    weak = [k for k, a in enumerate(e.inputs) if type(a) is Var and a.aval.weak_type]
    if (not weak or len(e.inputs) < 2 or e.prim not in batching.elementwise_prims
            or e.prim.multiple_results or e.outputs[0].aval.weak_type):
      eqns.append(e)
      continue
    try:
      dtype = dtypes.result_type(*[a.aval for a in e.inputs])
      casts = {k: Var(core.ShapedArray((), dtype)) for k in weak}
      ins = [casts[k] if k in casts else a for k, a in enumerate(e.inputs)]
      out = core.abstract_eval_avals(e.prim, [a.aval for a in ins], e.params)
    except Exception:  # noqa: BLE001  (then it stays as it is)
      out = None
    if out is None or (out.shape, out.dtype) != (e.outputs[0].aval.shape,
                                                 e.outputs[0].aval.dtype):
      eqns.append(e)
      continue
    eqns += [Eqn(convert_element_type_p, [e.inputs[k]], {"new_dtype": dtype}, [v], e.source)
             for k, v in casts.items()]
    eqns.append(Eqn(e.prim, ins, e.params, e.outputs, e.source))
  return _rebuild(program, eqns, program.outs) if len(eqns) != len(program.eqns) else program


def _same_weakness(atom, eqn):
  """Whether `atom` may stand for the output of `eqn` as far as weak types go: a Python
  scalar for a Python scalar, a NumPy value for a NumPy value (`-(-s)` of a Python float s
  is np.negative's NumPy value, which s is not)."""
  return atom.aval.weak_type == eqn.outputs[0].aval.weak_type


def simplify(program: Program) -> Program:
  """Apply the exact algebraic rewrites listed in the module docstring."""
  program = _weak_casts_dropped(program)
  subst, producers, eqns, consts = _Subst(), {}, [], _Constants(program)
  uses = _use_counts(program)
  for eqn in program.eqns:
    inputs = _uniform_constants_as_scalars(eqn, [subst(a) for a in eqn.inputs], consts)
    replacement = _simplify_eqn(eqn, inputs, producers, consts)
    if replacement is not None and _same_weakness(replacement, eqn):
      subst.set(eqn.outputs[0], replacement)
      continue
    new = _fuse_eqn(eqn, inputs, producers, uses)
    if isinstance(new, Eqn):  # the fused equation may simplify away (reshape back and forth)
      replacement = _simplify_eqn(new, new.inputs, producers, consts)
      if replacement is not None and _same_weakness(replacement, eqn):
        subst.set(eqn.outputs[0], replacement)
        continue
    new = new or Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source)
    for e in (new if isinstance(new, list) else [new]):
      for v in e.outputs:
        producers[id(v)] = e
      eqns.append(e)
  return _rebuild(program, eqns, [subst(o) for o in program.outs])


# ---- nested jit calls -------------------------------------------------------------------


# Higher-order primitives inlined before code generation: name -> the param holding the
# program, whose inputs are the first inputs of the equation.
INLINED_PROGRAMS = {"jit_call": "program"}


def inline_jit_calls(program: Program) -> Program:
  """Replace each nested jit call (and custom-rule or checkpoint call) by the equations of
  its program."""
  if not any(e.prim.name in INLINED_PROGRAMS for e in program.eqns):
    return program
  subst, eqns = _Subst(), []
  const_vars, const_vals = list(program.const_vars), list(program.const_vals)
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    if eqn.prim.name not in INLINED_PROGRAMS:
      eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
      continue
    inner = inline_jit_calls(eqn.params[INLINED_PROGRAMS[eqn.prim.name]])
    inner_subst = _Subst()
    for v, a in zip(inner.in_vars, inputs):
      inner_subst.set(v, a)
    const_vars += inner.const_vars
    const_vals += inner.const_vals
    for e in inner.eqns:
      fresh = [Var(v.aval) for v in e.outputs]
      for v, f in zip(e.outputs, fresh):
        inner_subst.set(v, f)
      eqns.append(Eqn(e.prim, [inner_subst(a) for a in e.inputs], e.params, fresh, e.source))
    for v, o in zip(eqn.outputs, inner.outs):
      subst.set(v, inner_subst(o))
  return _rebuild(program, eqns, [subst(o) for o in program.outs], const_vars, const_vals)


# ---- pushing sums down ----------------------------------------------------------------------


def _emit(eqns, prim, inputs, params, source=None):
  """Append the equation `prim(*inputs, **params)` to `eqns`; its output variable."""
  var = Var(core.abstract_eval_avals(prim, [a.aval for a in inputs], params))
  eqns.append(Eqn(prim, inputs, params, [var], source))
  return var


def _take_axis(x, index, spec):
  """k where gather(x, index, spec) is a take of the integer vector `index` along axis k of
  x, else None."""
  from dfdx._src.ops import indexing
  if index.aval.ndim != 1 or index.aval.dtype.kind not in "iu":
    return None
  return indexing.take_axis(spec, x.aval.shape)


def _take_spec(axis):
  """The gather spec of a take along `axis` (its index array the gather's second operand)."""
  from dfdx._src.ops import indexing
  return (indexing._FULL,) * axis + (indexing.ArrayIndex(0),)


class _Mover:
  """What the passes that move an operation into the equations producing its operand share:
  each variable's producer and number of uses (outputs count twice: never consumed away),
  and the equations emitted (`out`)."""

  def __init__(self, program):
    self.uses, self.producer = _use_counts(program), {}
    for eqn in program.eqns:
      for v in eqn.outputs:
        self.producer[id(v)] = eqn
    self.out = []

  def emit_prim(self, prim, inputs, params, source=None):
    return _emit(self.out, prim, inputs, params, source)

  def sole_producer(self, v):
    """The equation producing `v` (one output) where v is used only once, else None."""
    eqn = self.producer.get(id(v)) if isinstance(v, Var) else None
    if eqn is None or self.uses.get(id(v)) != 1 or len(eqn.outputs) != 1:
      return None
    return eqn


class _SumPusher(_Mover):
  """Rewrites `reduce_sum(v, axes)` by pushing the sum into the equation that produced `v`
  when `v` is used only there (so the producer dies), recursively. `subst` maps the variables
  of equations already rewritten to what replaced them: those are read through it."""

  def __init__(self, program, subst):
    from dfdx._src.ops import contraction, elementwise, reduction, shape
    super().__init__(program)
    self.subst = subst
    self.ops = {"neg": elementwise.neg_p, "add": elementwise.add_p, "sub": elementwise.sub_p,
                "mul": elementwise.mul_p, "reduce_sum": reduction.reduce_sum_p,
                "transpose": shape.transpose_p, "reshape": shape.reshape_p,
                "dot_general": contraction.dot_general_p}

  def emit(self, name, inputs, params, source=None):
    return self.emit_prim(self.ops[name], inputs, params, source)

  def reduce(self, v, axes):
    return self.emit("reduce_sum", [v], {"axes": tuple(axes)}) if axes else v

  def push(self, v, axes):
    """An atom equal to reduce_sum(v, axes), computed as cheaply as the rules allow."""
    v = self.subst(v)  # (a variable rewritten earlier is read as what replaced it)
    eqn = self.producer.get(id(v)) if isinstance(v, Var) else None
    if eqn is None or self.uses.get(id(v)) != 1 or v.aval.dtype.kind != "f" or any(
        isinstance(a, Var) and a.aval.dtype != v.aval.dtype for a in eqn.inputs):
      # (an operand of another dtype, promoted by the equation, is summed after it: a
      # float32 operand summed first would round in float32)
      return self.reduce(v, axes)
    rule = getattr(self, "_push_" + eqn.prim.name, None)
    result = rule(eqn, v, axes) if rule is not None else None
    return self.reduce(v, axes) if result is None else result

  def _push_neg(self, eqn, v, axes):
    return self.emit("neg", [self.push(eqn.inputs[0], axes)], {})

  def _push_add(self, eqn, v, axes, name="add"):
    x, y = eqn.inputs
    if x.aval.shape != v.aval.shape or y.aval.shape != v.aval.shape:
      return None
    return self.emit(name, [self.push(x, axes), self.push(y, axes)], {})

  def _push_sub(self, eqn, v, axes):
    return self._push_add(eqn, v, axes, "sub")

  def _push_mul(self, eqn, v, axes):
    shape = v.aval.shape
    for full, other in (eqn.inputs, eqn.inputs[::-1]):
      if full.aval.shape != shape or not self._constant_along(other, shape, axes):
        continue
      other = self.subst(other)
      kept_other = _drop_axes(other.aval.shape, len(shape), axes)
      if kept_other != other.aval.shape:
        other = self.emit("reshape", [other], {"shape": kept_other})
      return self.emit("mul", [self.push(full, axes), other], {})
    return None

  @staticmethod
  def _constant_along(a, shape, axes):
    lead = len(shape) - a.aval.ndim
    return all(ax < lead or a.aval.shape[ax - lead] == 1 for ax in axes)

  def _push_reduce_sum(self, eqn, v, axes):
    # sum(sum(x, a1), a2) -> sum(x, a1 + a2): one pass over x, no intermediate array.
    (x,), inner = eqn.inputs, eqn.params["axes"]
    remaining = [i for i in range(x.aval.ndim) if i not in inner]
    return self.push(x, sorted(set(inner) | {remaining[ax] for ax in axes}))

  def _push_transpose(self, eqn, v, axes):
    perm = eqn.params["perm"]
    in_axes = sorted(perm[ax] for ax in axes)
    remaining_in = [i for i in range(len(perm)) if i not in in_axes]
    new_perm = tuple(remaining_in.index(perm[ax]) for ax in range(len(perm)) if ax not in axes)
    reduced = self.push(eqn.inputs[0], in_axes)
    if new_perm == tuple(range(len(new_perm))):
      return reduced
    return self.emit("transpose", [reduced], {"perm": new_perm})

  def _push_dot_general(self, eqn, v, axes):
    x, y = eqn.inputs
    (xc, yc), (xb, yb) = eqn.params["dimension_numbers"]
    xf = [i for i in range(x.aval.ndim) if i not in xc and i not in xb]
    yf = [i for i in range(y.aval.ndim) if i not in yc and i not in yb]
    nb = len(xb)
    if any(ax < nb for ax in axes):
      return None
    x_sum = sorted(xf[ax - nb] for ax in axes if ax < nb + len(xf))
    y_sum = sorted(yf[ax - nb - len(xf)] for ax in axes if ax >= nb + len(xf))
    renumber = lambda dims, gone: tuple(d - sum(g < d for g in gone) for d in dims)
    numbers = ((renumber(xc, x_sum), renumber(yc, y_sum)),
               (renumber(xb, x_sum), renumber(yb, y_sum)))
    return self.emit("dot_general", [self.push(x, x_sum), self.push(y, y_sum)],
                     {"dimension_numbers": numbers}, eqn.source)


def _drop_axes(shape, rank, axes):
  """`shape` (right-aligned in an array of `rank` axes) without the summed `axes`."""
  lead = rank - len(shape)
  return tuple(d for i, d in enumerate(shape) if i + lead not in axes)


def push_sums(program: Program) -> Program:
  """Move sums toward the data they sum (see the module docstring)."""
  if not any(e.prim.name == "reduce_sum" for e in program.eqns):
    return program
  subst = _Subst()
  pusher = _SumPusher(program, subst)

  def pushed(eqn, inputs):
    if eqn.prim.name != "reduce_sum" or not eqn.params["axes"] or not isinstance(inputs[0], Var):
      return None
    pusher.out = []
    result = pusher.push(inputs[0], eqn.params["axes"])
    if len(pusher.out) == 1 and pusher.out[0].prim.name == "reduce_sum" and \
        pusher.out[0].inputs[0] is inputs[0]:
      return None  # (the same sum)
    return pusher.out, result
  return _rewrite_each(program, subst, pushed)


# ---- pulling gathers up ----------------------------------------------------------------------


class _GatherPuller(_Mover):
  """Rewrites `take(v, idx, axis)` (a gather of fewer entries than the axis holds) by taking
  the entries from the operands of the equation that produced `v` when `v` is used only
  there, recursively: elementwise operations (broadcast operands of length 1 along the
  axis stay whole), transposes, reshapes that keep the axis, sums over other axes and
  products along a free or batch axis. What is left is computed at the points kept only;
  a gather that reaches a constant is folded."""

  def __init__(self, program, subst):
    from dfdx._src import batching
    from dfdx._src.ops import indexing
    super().__init__(program)
    self.elementwise, self.subst, self.indexing = batching.elementwise_prims, subst, indexing

  def take(self, v, index, axis):
    return self.emit_prim(self.indexing.gather_p, [v, index], {"spec": _take_spec(axis)})

  def pull(self, v, index, axis):
    """An atom equal to take(v, index, axis)."""
    eqn = self.sole_producer(v)
    if eqn is None:
      return self.take(v, index, axis)
    if eqn.prim in self.elementwise:
      rule = self._pull_elementwise
    else:
      rule = getattr(self, "_pull_" + eqn.prim.name, None)
    result = rule(eqn, v, index, axis) if rule is not None else None
    return self.take(v, index, axis) if result is None else result

  def _pull_elementwise(self, eqn, v, index, axis):
    rank, inputs = v.aval.ndim, []
    for a in map(self.subst, eqn.inputs):
      j = axis - (rank - a.aval.ndim)
      inputs.append(a if j < 0 or a.aval.shape[j] == 1 else self.pull(a, index, j))
    return self.emit_prim(eqn.prim, inputs, eqn.params, eqn.source)

  def _pull_transpose(self, eqn, v, index, axis):
    perm = eqn.params["perm"]
    return self.emit_prim(eqn.prim, [self.pull(self.subst(eqn.inputs[0]), index, perm[axis])],
                     eqn.params)

  def _pull_reshape(self, eqn, v, index, axis):
    x, out_shape = self.subst(eqn.inputs[0]), v.aval.shape
    before = int(np.prod(out_shape[:axis], dtype=np.int64))
    for j, d in enumerate(x.aval.shape):
      if d == out_shape[axis] and int(np.prod(x.aval.shape[:j], dtype=np.int64)) == before:
        shape = out_shape[:axis] + (index.aval.shape[0],) + out_shape[axis + 1:]
        return self.emit_prim(eqn.prim, [self.pull(x, index, j)], {"shape": shape})
    return None

  def _pull_reduce_sum(self, eqn, v, index, axis):
    x, axes = self.subst(eqn.inputs[0]), eqn.params["axes"]
    kept = [i for i in range(x.aval.ndim) if i not in axes]
    return self.emit_prim(eqn.prim, [self.pull(x, index, kept[axis])], eqn.params)

  def _pull_dot_general(self, eqn, v, index, axis):
    x, y = map(self.subst, eqn.inputs)
    (xc, yc), (xb, yb) = eqn.params["dimension_numbers"]
    xf = [i for i in range(x.aval.ndim) if i not in xc and i not in xb]
    nb = len(xb)
    if axis < nb:  # a batch axis: both operands
      x, y = self.pull(x, index, xb[axis]), self.pull(y, index, yb[axis])
    elif axis < nb + len(xf):
      x = self.pull(x, index, xf[axis - nb])
    else:
      yf = [i for i in range(y.aval.ndim) if i not in yc and i not in yb]
      y = self.pull(y, index, yf[axis - nb - len(xf)])
    return self.emit_prim(eqn.prim, [x, y], eqn.params, eqn.source)


def pull_gathers(program: Program) -> Program:
  """Move gathers that keep fewer entries than their axis holds toward the data they take
  from (see _GatherPuller): a jacobian or a model evaluated at a few of its points then
  computes those points only. Exact: each kept entry is computed as before (a product's
  entries by BLAS calls of another shape, which may round differently in the last bits)."""
  gathers = [e for e in program.eqns if e.prim.name == "gather"]
  if not gathers:
    return program
  subst = _Subst()
  puller = _GatherPuller(program, subst)

  def pulled(eqn, inputs):
    if eqn.prim is not puller.indexing.gather_p or len(inputs) != 2 or \
        not isinstance(inputs[0], Var):
      return None
    x, index = inputs
    axis = _take_axis(x, index, eqn.params["spec"])
    if (axis is None or index.aval.shape[0] >= x.aval.shape[axis]
            or puller.sole_producer(x) is None):
      return None
    puller.out = []
    result = puller.pull(x, index, axis)
    return (puller.out, result) if _same_type(result, eqn.outputs[0]) else None
  return _rewrite_each(program, subst, pulled)


def strip_stop_gradients(program: Program) -> Program:
  """Replace `stop_gradient(x)` by x: only for a program that is evaluated and never
  transformed again (code generation), where it is the identity. Without it the rewrites
  that look through reshapes and the like stop at it."""
  if not any(e.prim.name == "stop_gradient" for e in program.eqns):
    return program
  subst, eqns = _Subst(), []
  for eqn in program.eqns:
    inputs = [subst(a) for a in eqn.inputs]
    if eqn.prim.name == "stop_gradient" and _same_type(inputs[0], eqn.outputs[0]):
      subst.set(eqn.outputs[0], inputs[0])
      continue
    eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
  return _rebuild(program, eqns, [subst(o) for o in program.outs])


# Programs that `optimize` left at a fixed point of its rounds (a weak set: programs of
# jitted functions live as long as their cache entries).
_settled = weakref.WeakSet()


def optimize(program: Program, max_rounds: int = 4, inline: bool = True,
             evaluate_only: bool = False) -> Program:
  """Run the passes until the program stops changing (or `max_rounds`). With `inline=False`
  nested calls stay (a program that is differentiated later keeps custom rules). With
  `evaluate_only` the program is only run (compiled code), never transformed again: the
  markers of transformations (stop_gradient) go, and the layout passes run. A program that
  optimize already left at a fixed point gets no more rounds unless inlining or stripping
  changed it (jit optimizes each program twice: for transformations, then to compile)."""
  start = program
  program = inline_jit_calls(program) if inline else program
  if evaluate_only:
    from dfdx._src.loops import hoist_loops  # (loops optimizes the bodies it splits)
    program = hoist_loops(strip_stop_gradients(program))
  if not (program is start and start in _settled):
    program = dce(program)
    for _ in range(max_rounds):
      before = len(program.eqns)
      program = push_sums(simplify(fold_constants(program)))
      pulled = pull_gathers(program)  # (the same program where it moved nothing)
      moved, program = pulled is not program, dce(cse(pulled))
      if len(program.eqns) == before and not moved:
        _settled.add(program)
        break
  if evaluate_only:
    from dfdx._src.factoring import share_factors
    program = batch_last(sink_into_gathers(share_factors(program)))
  return program


# ---- transposes and unary operations moved to the data a gather repeats ---------------------
# Forward mode leaves its Jacobian's columns first, and `jacfwd` transposes them last, after
# the gathers that pick each residual's point: hand tracking's Jacobian is
# transpose(neg(reshape(take(transpose(x), idx, axis=1)))), where `take` copies 3 entries at
# a time (x has 544 vertices, idx 12,800 correspondences) and `neg` runs over the large
# result. `sink_into_gathers` moves the last transpose into the gather, which then takes
# whole rows (axis 0) of a transposed x, and the unary operations before a gather that
# repeats entries, which then apply to each entry once. Exact: the same entries are computed
# by the same operations.


def _blocks(shape, out_shape):
  """The axes of a reshape from `shape` to `out_shape` in matching blocks ([in axes], [out
  axes]) of equal sizes, each a single axis on at least one side, or None."""
  blocks, i, j = [], 0, 0
  while i < len(shape) or j < len(out_shape):
    a, b = [i], [j]
    if i >= len(shape) or j >= len(out_shape):
      return None
    na, nb = shape[i], out_shape[j]
    i, j = i + 1, j + 1
    while na != nb:
      if na < nb and i < len(shape):
        na, a = na * shape[i], a + [i]
        i += 1
      elif nb < na and j < len(out_shape):
        nb, b = nb * out_shape[j], b + [j]
        j += 1
      else:
        return None
    if len(a) > 1 and len(b) > 1:
      return None
    blocks.append((a, b))
  return blocks


class _GatherSinker(_Mover):
  """`transpose(v)` and `u(v)` (u unary elementwise) rewritten into the equations producing
  v, through single-use reshapes, transposes, unary operations (transposes only) and gathers
  of one index array (see above). `crossed` says whether a gather that repeats entries was
  reached with a gain: its axis moved forward (a transpose), or at all (a unary operation)."""

  def __init__(self, program, subst):
    from dfdx._src import batching
    from dfdx._src.ops import indexing, shape
    super().__init__(program)
    self.subst, self.elementwise = subst, batching.elementwise_prims
    self.indexing, self.transpose_p = indexing, shape.transpose_p
    self.crossed = False

  def record(self, eqns, result, replaced):
    """Enter the equations of a rewrite (`result` replacing `replaced`), so that the next
    rewrite can move through them (uses of the operands they share only grow: safe)."""
    for e in eqns:
      self.producer[id(e.outputs[0])] = e
      for a in e.inputs:
        if isinstance(a, Var):
          self.uses[id(a)] = self.uses.get(id(a), 0) + 1
    self.uses[id(result)] = self.uses.get(id(replaced), 0)

  def _take_axis(self, eqn):
    if eqn.prim is not self.indexing.gather_p or len(eqn.inputs) != 2:
      return None
    x, index = map(self.subst, eqn.inputs)
    return _take_axis(x, index, eqn.params["spec"])

  def take(self, x, index, axis, source):
    return self.emit_prim(self.indexing.gather_p, [x, index], {"spec": _take_spec(axis)},
                          source)

  def transpose(self, v, perm):
    """An atom equal to transpose(v, perm)."""
    if perm == tuple(range(len(perm))):
      return v
    eqn = self.sole_producer(v)
    name = eqn.prim.name if eqn is not None else None
    if name == "transpose":
      inner = eqn.params["perm"]
      return self.transpose(self.subst(eqn.inputs[0]), tuple(inner[i] for i in perm))
    if eqn is not None and eqn.prim in self.elementwise and [
        a.aval.ndim for a in eqn.inputs if a.aval.ndim] == [len(perm)]:  # unary, or scalars
      inputs = [self.transpose(self.subst(a), perm) if a.aval.ndim else self.subst(a)
                for a in eqn.inputs]
      return self.emit_prim(eqn.prim, inputs, eqn.params, eqn.source)
    if name == "reshape":
      x = self.subst(eqn.inputs[0])
      blocks = _blocks(x.aval.shape, v.aval.shape)
      where = {j: k for k, (_, b) in enumerate(blocks or ()) for j in b}
      order = []  # the blocks in their new order; each must stay whole and in order
      for j in perm:
        if order and where[j] == order[-1][0] and j == order[-1][1] + 1:
          order[-1] = (where[j], j)
        elif blocks and blocks[where[j]][1][0] == j:
          order.append((where[j], j))
        else:
          break
      else:
        in_perm = tuple(i for k, _ in order for i in blocks[k][0])
        shape = tuple(v.aval.shape[j] for j in perm)
        return self.emit_prim(eqn.prim, [self.transpose(x, in_perm)], {"shape": shape},
                              eqn.source)
    axis = self._take_axis(eqn) if eqn is not None else None
    if axis is not None:
      x, index = map(self.subst, eqn.inputs)
      new_axis = perm.index(axis)
      # a gain where the gather repeats entries: taking from a transposed operand copies it
      self.crossed |= new_axis < axis and index.aval.shape[0] >= x.aval.shape[axis]
      return self.take(self.transpose(x, perm), index, new_axis, eqn.source)
    return self.emit_prim(self.transpose_p, [v], {"perm": perm})

  def unary(self, v, prim, params, source):
    """An atom equal to prim(v, **params), prim elementwise with one operand."""
    eqn = self.sole_producer(v)
    if eqn is not None and eqn.prim.name in ("reshape", "transpose"):
      x = self.unary(self.subst(eqn.inputs[0]), prim, params, source)
      return self.emit_prim(eqn.prim, [x], eqn.params, eqn.source)
    axis = self._take_axis(eqn) if eqn is not None else None
    if axis is not None:
      x, index = map(self.subst, eqn.inputs)
      if index.aval.shape[0] >= x.aval.shape[axis]:
        self.crossed = True
        return self.take(self.unary(x, prim, params, source), index, axis, eqn.source)
    return self.emit_prim(prim, [v], params, source)


def sink_into_gathers(program: Program) -> Program:
  """Move transposes and unary elementwise operations into the gathers before them where
  that helps (see _GatherSinker)."""
  from dfdx._src.ops import indexing
  if not any(e.prim is indexing.gather_p for e in program.eqns):
    return program
  for kind in ("unary", "transpose"):
    subst, eqns, changed = _Subst(), [], False
    sinker = _GatherSinker(program, subst)
    for eqn in program.eqns:
      inputs = [subst(a) for a in eqn.inputs]
      if inputs and isinstance(inputs[0], Var) and len(eqn.outputs) == 1 and (
          (kind == "transpose" and eqn.prim is sinker.transpose_p)
          or (kind == "unary" and eqn.prim in sinker.elementwise and len(inputs) == 1)):
        sinker.out, sinker.crossed = [], False
        if kind == "transpose":
          result = sinker.transpose(inputs[0], eqn.params["perm"])
        else:
          result = sinker.unary(inputs[0], eqn.prim, eqn.params, eqn.source)
        if sinker.crossed and _same_type(result, eqn.outputs[0]):
          eqns.extend(sinker.out)
          subst.set(eqn.outputs[0], result)
          changed = True
          sinker.record(sinker.out, result, eqn.outputs[0])
          continue
      eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
    if changed:
      program = dce(_rebuild(program, eqns, [subst(o) for o in program.outs]))
  return program


# ---- the batch axis last ------------------------------------------------------------------
# vmap puts the batch axis first, so a batch of many small problems (bundle adjustment: 30,000
# observations of 2 x 3 blocks) becomes arrays of shape (B, 2, 3) whose every operation loops
# innermost over 2 or 3 entries, where NumPy is slowest. `batch_last` stores such arrays with
# the batch axis last, (2, 3, B), so that each operation loops over B contiguous entries.
# Values are those of the batch-first program: elementwise operations do not depend on the
# layout, sums of at most 7 entries are added one by one in either layout, and operations
# without a rule here read a copy in C order. Sums of 8 or more entries (NumPy adds them
# pairwise along the last axis, one by one along others), products of small matrices
# (written as broadcast products and sums) and the sums of products that code generation
# writes as np.einsum may round differently in the last bits, as push_sums' sums may.
# The rewrite is kept where it moves many equations for each operand it must copy.
_BATCH_MIN = 1 << 10  # batches at least this long
_BATCH_ROW_MAX = 128  # of problems at most this large (entries of an array per batch entry)
_BATCH_GAIN = 8  # equations moved per operand copied into or out of the moved layout


def _batch_size(program):
  """The leading length B shared by most of the data held in arrays with B rows and a short
  rest (at most _BATCH_ROW_MAX entries per row), or None."""
  totals = {}
  for v in _all_vars(program):
    shape = v.aval.shape
    if len(shape) >= 2 and shape[0] >= _BATCH_MIN and 1 < np.prod(shape[1:]) <= _BATCH_ROW_MAX:
      totals[shape[0]] = totals.get(shape[0], 0) + int(np.prod(shape))
  return max(totals, key=totals.get) if totals else None


def _all_vars(program):
  yield from program.in_vars
  for eqn in program.eqns:
    yield from eqn.outputs


class _BatchLast:
  """Rewrites a program with the batch axis of length B moved last in every variable that
  has B rows and a short rest (`_short_rows`), where the equation producing it has a rule
  here: elementwise operations; reshapes, slices, concatenations, transposes, broadcasts and
  pads that keep the batch axis first; sums, maxima and minima over the rest; gathers of
  whole rows; products batched over B. Each variable has a plain form
  (its own shape) and a moved one; a missing form is made where needed by a transpose (a
  view; a copy in C order for operations other than elementwise ones, whose rounding may
  depend on the layout), so every other equation reads plain operands and the program's
  outputs are plain (transposed views)."""

  def __init__(self, program, size):
    from dfdx._src import batching
    from dfdx._src.ops import shape
    self.size = size
    self.elementwise, self.shape_ops = batching.elementwise_prims, shape
    self.plain, self.moved, self.views, self.eqns = {}, {}, {}, []
    self.rewritten = self.converted = 0  # equations moved; operands copied to or from

  def emit(self, prim, inputs, params, source=None):
    return _emit(self.eqns, prim, inputs, params, source)

  def _short_rows(self, aval):
    shape = aval.shape
    return len(shape) >= 2 and shape[0] == self.size and np.prod(shape[1:]) <= _BATCH_ROW_MAX

  def get_plain(self, a, c_order=False):
    """`a` in its own shape: a transposed view of its moved form, or with `c_order` a copy
    in C order (NumPy's sums, products and the like round as on the batch-first array)."""
    if not isinstance(a, Var):
      return a
    plain = self.plain.get(id(a))
    if plain is not None:
      return plain
    key = (id(a), c_order)
    plain = self.views.get(key)
    if plain is None:
      moved = self.moved[id(a)]
      rank = moved.aval.ndim
      plain = self.emit(self.shape_ops.transpose_p, [moved],
                        {"perm": (rank - 1,) + tuple(range(rank - 1))})
      if c_order:  # flattening a transposed array copies it in C order
        self.converted += 1
        flat = self.emit(self.shape_ops.reshape_p, [plain], {"shape": (a.aval.size,)})
        plain = self.emit(self.shape_ops.reshape_p, [flat], {"shape": a.aval.shape})
      self.views[key] = plain
    return plain

  def get_moved(self, a):
    """`a` (B or 1 rows) with its first axis last."""
    moved = self.moved.get(id(a))
    if moved is None and a.aval.ndim == 1:
      return self.get_plain(a)
    if moved is None:
      plain, shape = self.get_plain(a), a.aval.shape
      if shape[0] == 1:
        moved = self.emit(self.shape_ops.reshape_p, [plain], {"shape": shape[1:] + (1,)})
      else:
        self.converted += 1
        moved = self.emit(self.shape_ops.transpose_p, [plain],
                          {"perm": tuple(range(1, len(shape))) + (0,)})
      if isinstance(a, Var):
        self.moved[id(a)] = moved
    return moved

  def set_moved(self, var, moved):
    self.moved[id(var)] = moved
    if moved.aval.ndim == 1:  # a vector of B entries: both forms
      self.plain[id(var)] = moved

  def run(self, program):
    for v in list(program.in_vars) + list(program.const_vars):
      self.plain[id(v)] = v
    for eqn in program.eqns:
      rule = None
      if len(eqn.outputs) == 1:
        rule = (self._elementwise if eqn.prim in self.elementwise
                else getattr(self, "_" + eqn.prim.name, None))
      moved = rule(eqn, eqn.outputs[0]) if rule is not None else None
      if moved is None:
        c_order = eqn.prim not in self.elementwise
        inputs = [self.get_plain(a, c_order) for a in eqn.inputs]
        self.eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs, eqn.source))
        for v in eqn.outputs:
          self.plain[id(v)] = v
      else:
        self.rewritten += 1
        self.set_moved(eqn.outputs[0], moved)
    outs = [self.get_plain(o) for o in program.outs]
    return dce(_rebuild(program, self.eqns, outs))

  # Each rule returns the moved form of the equation's output, or None where it does not
  # apply (the equation is then kept as it is, on plain operands).

  def _elementwise(self, eqn, out):
    if not self._short_rows(out.aval):
      return None
    rank, inputs = out.aval.ndim, []
    for a in eqn.inputs:
      r = a.aval.ndim
      if r == rank:
        inputs.append(self.get_moved(a))
      elif r == 0:
        inputs.append(self.get_plain(a))
      else:  # aligned with the trailing axes: one more, of length 1, for the batch axis
        inputs.append(self.emit(self.shape_ops.reshape_p, [self.get_plain(a)],
                                {"shape": a.aval.shape + (1,)}))
    return self.emit(eqn.prim, inputs, eqn.params, eqn.source)

  def _keeps_batch(self, x, out):
    return (isinstance(x, Var) and x.aval.ndim and x.aval.shape[0] == self.size
            and (self._short_rows(out.aval) or out.aval.shape == (self.size,)))

  def _reshape(self, eqn, out):
    x = eqn.inputs[0]
    if not (self._keeps_batch(x, out) and out.aval.shape[0] == self.size):
      return None
    shape = out.aval.shape[1:] + (self.size,)
    return self.emit(eqn.prim, [self.get_moved(x)], {"shape": shape}, eqn.source)

  def _slice(self, eqn, out):
    x, p = eqn.inputs[0], eqn.params
    if not (self._keeps_batch(x, out) and x.aval.ndim >= 2 and p["start"][0] == 0
            and p["limit"][0] == self.size and p["strides"][0] == 1):
      return None
    params = {"start": p["start"][1:] + (0,), "limit": p["limit"][1:] + (self.size,),
              "strides": p["strides"][1:] + (1,)}
    return self.emit(eqn.prim, [self.get_moved(x)], params, eqn.source)

  def _concatenate(self, eqn, out):
    axis = eqn.params["axis"]
    if axis == 0 or not self._short_rows(out.aval):
      return None
    inputs = [self.get_moved(a) for a in eqn.inputs]
    return self.emit(eqn.prim, inputs, {"axis": axis - 1}, eqn.source)

  def _reduce_sum(self, eqn, out):
    x, axes = eqn.inputs[0], eqn.params["axes"]
    if not self._keeps_batch(x, out) or x.aval.ndim < 2 or 0 in axes:
      return None
    return self.emit(eqn.prim, [self.get_moved(x)], {"axes": tuple(i - 1 for i in axes)},
                     eqn.source)

  _reduce_max = _reduce_min = _reduce_sum

  def _pad(self, eqn, out):
    x, config = eqn.inputs[0], eqn.params["config"]
    if config[0] != (0, 0, 0) or x.aval.ndim < 2 or not self._keeps_batch(x, out):
      return None
    return self.emit(eqn.prim, [self.get_moved(x)], {"config": config[1:] + ((0, 0, 0),)},
                     eqn.source)

  def _transpose(self, eqn, out):
    x, perm = eqn.inputs[0], eqn.params["perm"]
    if perm[0] != 0 or not self._keeps_batch(x, out):
      return None
    perm = tuple(i - 1 for i in perm[1:]) + (len(perm) - 1,)
    return self.emit(eqn.prim, [self.get_moved(x)], {"perm": perm}, eqn.source)

  def _broadcast_to(self, eqn, out):
    x, shape = eqn.inputs[0], eqn.params["shape"]
    if x.aval.ndim != len(shape) or len(shape) < 2 or not self._keeps_batch(x, out):
      return None
    return self.emit(eqn.prim, [self.get_moved(x)], {"shape": shape[1:] + (self.size,)},
                     eqn.source)

  def _dot_general(self, eqn, out):
    """A product batched over B of small factors, as a broadcast product and a sum over the
    few contracted entries."""
    from dfdx._src.ops import elementwise, reduction
    x, y = eqn.inputs
    (xc, yc), (xb, yb) = eqn.params["dimension_numbers"]
    if not (tuple(xb) == (0,) == tuple(yb) and self._short_rows(out.aval)
            and isinstance(x, Var) and isinstance(y, Var)
            and x.aval.shape[0] == y.aval.shape[0] == self.size
            and x.aval.dtype == y.aval.dtype and x.aval.dtype.kind == "f"
            and np.prod([x.aval.shape[i] for i in xc]) <= reduction._SUM_BY_SLICES_MAX):
      return None
    xf = [i for i in range(1, x.aval.ndim) if i not in xc]
    yf = [i for i in range(1, y.aval.ndim) if i not in yc]

    def factor(v, free, contracted, before, after):
      perm = tuple(i - 1 for i in free + list(contracted)) + (v.aval.ndim - 1,)
      moved = self.get_moved(v)
      if perm != tuple(range(len(perm))):
        moved = self.emit(self.shape_ops.transpose_p, [moved], {"perm": perm})
      shape = ((1,) * before + tuple(v.aval.shape[i] for i in free) + (1,) * after
               + tuple(v.aval.shape[i] for i in contracted) + (self.size,))
      return self.emit(self.shape_ops.reshape_p, [moved], {"shape": shape})
    product = self.emit(elementwise.mul_p, [factor(x, xf, xc, 0, len(yf)),
                                            factor(y, yf, yc, len(xf), 0)], {}, eqn.source)
    kept = len(xf) + len(yf)
    if not xc:
      return product
    return self.emit(reduction.reduce_sum_p, [product],
                     {"axes": tuple(range(kept, kept + len(xc)))}, eqn.source)

  def _gather(self, eqn, out):
    if len(eqn.inputs) != 2 or not self._short_rows(out.aval):
      return None
    x, index = eqn.inputs
    if (x.aval.ndim < 2 or index.aval.shape != (self.size,)
            or _take_axis(x, index, eqn.params["spec"]) != 0
            or x.aval.shape[0] > self.size):  # (the transposed table is copied whole)
      return None
    rank = x.aval.ndim
    columns = self.emit(self.shape_ops.transpose_p, [self.get_plain(x)],
                        {"perm": tuple(range(1, rank)) + (0,)})
    return self.emit(eqn.prim, [columns, self.get_plain(index)], {"spec": _take_spec(rank - 1)},
                     eqn.source)


def batch_last(program: Program, min_gain=None) -> Program:
  """The program with the batch axis last in the arrays of a batch of small problems (see
  _BatchLast): the same values, computed by operations that loop over the batch. Kept if
  it moves at least `min_gain` (default `_BATCH_GAIN`) equations per operand copied."""
  size = _batch_size(program)
  if size is None:
    return program
  mover = _BatchLast(program, size)
  moved = mover.run(program)
  gain = _BATCH_GAIN if min_gain is None else min_gain
  return moved if mover.rewritten >= gain * mover.converted else program
