"""SymPy expressions from programs: evaluate a program on arrays of SymPy symbols.

Shape, indexing and linear-algebra-free primitives run their NumPy impls on object arrays
(NumPy applies `+`, `*` and friends elementwise to SymPy objects); transcendental and other
nonlinear primitives map to SymPy functions through `sympy_rules`; triangular_solve is
forward (or back) substitution, entry by entry. SymPy is imported only here, and only when
this module is used (it is an optional dependency).
"""
from __future__ import annotations

import numpy as np

from dfdx._src.ir import Lit, Program


def _rules(sp):
  unary = {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "arcsin": sp.asin, "arccos": sp.acos,
           "arctan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
           "arcsinh": sp.asinh, "arccosh": sp.acosh, "arctanh": sp.atanh, "exp": sp.exp,
           "log": sp.log, "sqrt": sp.sqrt, "cbrt": sp.cbrt, "abs": sp.Abs, "sign": sp.sign,
           "floor": sp.floor, "ceil": sp.ceiling, "neg": lambda x: -x,
           "exp2": lambda x: 2 ** x, "expm1": lambda x: sp.exp(x) - 1,
           "log2": lambda x: sp.log(x, 2), "log10": lambda x: sp.log(x, 10),
           "log1p": lambda x: sp.log(1 + x), "logistic": lambda x: 1 / (1 + sp.exp(-x))}
  binary = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "zmul": lambda a, b: a * b,
            "div": lambda a, b: a / b, "zdiv": lambda a, b: a / b, "pow": lambda a, b: a ** b,
            "arctan2": sp.atan2, "hypot": lambda a, b: sp.sqrt(a ** 2 + b ** 2),
            "maximum": sp.Max, "minimum": sp.Min, "fmax": sp.Max, "fmin": sp.Min,
            "logaddexp": lambda a, b: sp.log(sp.exp(a) + sp.exp(b))}
  rules = {name: np.vectorize(fn, otypes=[object]) for name, fn in unary.items()}
  rules.update({name: np.vectorize(fn, otypes=[object]) for name, fn in binary.items()})
  rules["integer_pow"] = lambda x, *, y: np.vectorize(lambda v: v ** y, otypes=[object])(x)
  rules["select"] = np.vectorize(lambda c, x, y: sp.Piecewise((x, c), (y, True)),
                                 otypes=[object])
  for cmp, fn in {"lt": sp.Lt, "le": sp.Le, "gt": sp.Gt, "ge": sp.Ge, "eq": sp.Eq,
                  "ne": sp.Ne}.items():
    rules[cmp] = np.vectorize(fn, otypes=[object])
  rules["triangular_solve"] = lambda a, b, **params: _substitution(sp, a, b, **params)
  return rules


def _substitution(sp, a, b, *, lower, trans, unit_diagonal, check=True):
  """triangular_solve by forward (or back) substitution on object arrays: the formula of
  each entry of x, op(T) x = b."""
  n, k = b.shape[-2:]
  batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  m = np.broadcast_to(np.swapaxes(a, -1, -2) if trans else a, batch + (n, n))
  if trans == 2:
    m = np.vectorize(sp.conjugate, otypes=[object])(m)
  b = np.broadcast_to(b, batch + (n, k))
  forward = lower != bool(trans)  # op(T) is lower triangular: the first row first
  x = np.empty(batch + (n, k), dtype=object)
  for i in (range(n) if forward else range(n - 1, -1, -1)):
    acc = b[..., i, :]
    for j in (range(i) if forward else range(i + 1, n)):
      acc = acc - m[..., i, j, None] * x[..., j, :]
    x[..., i, :] = acc if unit_diagonal else acc / m[..., i, i, None]
  return x


def _exact(sp, value):
  """A SymPy number: integers for integral floats (so 2.0*x prints as 2*x)."""
  value = np.asarray(value).item()
  if isinstance(value, float) and value.is_integer():
    return sp.Integer(int(value))
  return sp.sympify(value)


def _to_object(sp, value):
  value = np.asarray(value)
  out = np.empty(value.shape, dtype=object)
  for index in np.ndindex(value.shape):
    out[index] = _exact(sp, value[index])
  return out


def sympy_eval(program: Program, inputs):
  """Evaluate `program` on SymPy inputs (symbols or object arrays of symbols)."""
  import sympy as sp
  results = []
  for value in _eval(sp, program, inputs):
    results.append(value.item() if value.ndim == 0 else sp.Array(value.tolist()))
  return results


def _eval(sp, program, inputs):
  """The program's outputs as object arrays."""
  rules = _rules(sp)
  # (one input per leaf of the arguments: a pytree argument gives several)
  assert len(inputs) == len(program.in_vars), (len(inputs), len(program.in_vars))
  env = {id(v): x for v, x in zip(program.in_vars, inputs)}
  env.update((id(v), _to_object(sp, c)) for v, c in zip(program.const_vars,
                                                       program.const_vals))

  def read(a):
    return _exact(sp, a.val) if type(a) is Lit else env[id(a)]

  for eqn in program.eqns:
    args = [read(a) for a in eqn.inputs]
    rule = rules.get(eqn.prim.name)
    if rule is not None:
      out = rule(*[np.asarray(a, dtype=object) for a in args], **eqn.params)
    elif eqn.prim.name == "scan":
      out = _scan(sp, [np.asarray(a, dtype=object) for a in args], **eqn.params)
    elif eqn.prim.name in ("while", "cond"):
      raise NotImplementedError(
          f"to_sympy: a `{'while_loop' if eqn.prim.name == 'while' else 'cond'}` decides "
          "what to compute from values, so it has no single formula. Write the function "
          "with dnp.where (a formula of both branches), or export it with to_source.")
    elif eqn.prim.name in ("custom_root", "linear_solve", "minimize"):
      raise NotImplementedError(
          f"to_sympy: `{eqn.prim.name}` takes its value from a numerical solver, so it has no "
          "formula. Export the residual (or the operator, or the objective) instead.")
    elif eqn.prim.name == "pure_callback":
      raise NotImplementedError(
          f"to_sympy: pure_callback({eqn.params['name']}) calls code dfdx does not trace, so "
          "it has no formula. Export the parts around it.")
    else:
      if eqn.prim.name == "convert_element_type":
        out = args[0]
      else:
        out = eqn.prim.impl(*[np.asarray(a, dtype=object) for a in args], **eqn.params)
    outs = out if eqn.prim.multiple_results else [out]
    for v, o in zip(eqn.outputs, outs):
      env[id(v)] = np.asarray(o, dtype=object)
  return [np.asarray(read(o), dtype=object) for o in program.outs]


def _scan(sp, args, *, body, num_carry, num_xs, length, reverse, linear):
  """A scan's steps, one after another: the formula of the unrolled loop."""
  carry, xs = args[:num_carry], args[num_carry:num_carry + num_xs]
  consts = args[num_carry + num_xs:]
  ys = [None] * length
  for i in (range(length - 1, -1, -1) if reverse else range(length)):
    outs = _eval(sp, body, carry + [x[i] for x in xs] + consts)
    carry, ys[i] = outs[:num_carry], outs[num_carry:]
  stacked = [np.empty((length,) + a.shape, dtype=object) for a in body.out_avals[num_carry:]]
  for i, step in enumerate(ys):
    for s, y in zip(stacked, step):
      s[i] = y
  return carry + stacked
