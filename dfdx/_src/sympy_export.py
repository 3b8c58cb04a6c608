"""SymPy expressions from programs: evaluate a program on arrays of SymPy symbols.

A value is either concrete (a NumPy array of numbers: constants, literals, and whatever is
computed from them alone) or symbolic (an object array of SymPy expressions). An equation
whose inputs are all concrete runs its primitive's impl, so integer index arrays, masks and
constant arithmetic stay NumPy values; one that meets a symbol takes its formula from the
table of rules (`_rules`), and a primitive with no rule is refused with a clear error rather
than run by NumPy on objects it was not written for. Shape and indexing primitives run their
NumPy impls on object arrays (they only move entries); elementwise ones map to SymPy
functions entry by entry; det, solve and adjugate are SymPy matrix formulas; triangular_solve
is forward (or back) substitution, entry by entry. SymPy is imported only here, and only when
this module is used (it is an optional dependency).
"""
from __future__ import annotations

import numpy as np

from dfdx._src.ir import Lit, Program


def _refuse(eqn, why):
  where = f" (from {eqn.source})" if eqn.source else ""
  raise NotImplementedError(f"to_sympy: the primitive `{eqn.prim.name}`{where} has no SymPy "
                            f"formula; {why}")


_TO_SOURCE = "export the function with dfdx.export.to_source instead."
_ORDERS = ("it picks positions by comparing values, so it has no single formula. Write the "
           "choice with dnp.where, dnp.maximum or dnp.max (which have formulas), or "
           + _TO_SOURCE)
_NUMERICAL = ("it is computed by a numerical algorithm, not a closed formula. Write the "
              "function with det, solve or inv (which have formulas), or " + _TO_SOURCE)
_BITS = "it works on the bits of integers or floats; " + _TO_SOURCE
# (the primitives with no rule, by the reason given; any other gets the generic one)
_REFUSALS = dict.fromkeys(["argmax", "argmin", "sort", "argsort", "partition", "argpartition",
                           "searchsorted"], _ORDERS)
_REFUSALS.update(dict.fromkeys(
    ["cholesky", "qr", "eigh", "eig", "svd", "pinv", "lstsq", "lu_factor",
     "lu_pivots_to_permutation", "expm", "expm_frechet", "logm", "logm_frechet", "sqrtm",
     "solve_sylvester", "fft"], _NUMERICAL))
_REFUSALS.update(dict.fromkeys(
    ["bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift", "gcd",
     "lcm", "bitwise_count", "spacing", "nextafter", "frexp_exponent", "signbit"], _BITS))
_REFUSALS["round"] = ("NumPy rounds halves to the even neighbour, which no SymPy function "
                      "does. Write dnp.floor(x + 0.5) if halves may round up, or " + _TO_SOURCE)


def _exact(sp, value):
  """A SymPy number: integers for integral floats (so 2.0*x prints as 2*x)."""
  value = np.asarray(value).item()
  if isinstance(value, float) and value.is_integer():
    return sp.Integer(int(value))
  return sp.sympify(value)


def _entry(sp, value):
  """One entry of a symbolic array as a SymPy object (not a 0-d array or a NumPy number)."""
  if isinstance(value, np.ndarray):
    value = value.item()
  return value if isinstance(value, sp.Basic) else _exact(sp, value)


def _symbolic(value):
  return isinstance(value, np.ndarray) and value.dtype == object


def _to_object(sp, value):
  """`value` as an object array of SymPy objects (entries that are 0-d arrays, as NumPy leaves
  them when an impl stores a 0-d object array into an object array, are unwrapped)."""
  value = value if _symbolic(value) else np.asarray(value)
  out = np.empty(value.shape, dtype=object)
  for index in np.ndindex(value.shape):
    out[index] = _entry(sp, value[index])
  return out


def _is_truth(sp, x):
  # (not isinstance(x, Boolean): a Symbol is a Boolean too, for SymPy's logic)
  return isinstance(x, (sp.logic.boolalg.BooleanAtom, sp.logic.boolalg.BooleanFunction,
                        sp.core.relational.Relational))


def _as_number(sp, b):
  """A SymPy truth value as NumPy counts it: 1 or 0."""
  if b is sp.true or b is sp.false:
    return sp.Integer(int(b is sp.true))
  return sp.Piecewise((1, b), (0, True)) if _is_truth(sp, b) else b


def _as_bool(sp, x):
  """A number as NumPy reads it for truth: x != 0."""
  return x if _is_truth(sp, x) else sp.Ne(x, 0)


def _trunc(sp, x):
  """Rounding toward zero (NumPy's trunc, and its float -> int cast)."""
  return sp.Piecewise((sp.floor(x), x >= 0), (sp.ceiling(x), True))


def _max(sp, *xs, skip_nan=False):
  """NumPy's maximum (a NaN wins), or fmax (a NaN loses) with skip_nan."""
  return _choose(sp, sp.Max, xs, skip_nan)


def _min(sp, *xs, skip_nan=False):
  return _choose(sp, sp.Min, xs, skip_nan)


def _choose(sp, fn, xs, skip_nan):
  if skip_nan:
    xs = [x for x in xs if x is not sp.nan] or [sp.nan]
  return sp.nan if any(x is sp.nan for x in xs) else fn(*xs)


def _decided(sp, eqn, x, answer):
  """isnan/isfinite/isinf of `x`, where SymPy's assumptions decide it (the arguments are real
  or complex symbols, so finite); refused where they do not."""
  if answer is None:
    _refuse(eqn, "SymPy cannot tell whether this value is finite. Drop the test, or "
            + _TO_SOURCE)
  return sp.true if answer else sp.false


def _rules(sp):
  """Rules by primitive name: rule(eqn, args) gives the equation's output (a list of them
  for a primitive with several), args being concrete or symbolic arrays."""
  unary = {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "arcsin": sp.asin, "arccos": sp.acos,
           "arctan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
           "arcsinh": sp.asinh, "arccosh": sp.acosh, "arctanh": sp.atanh, "exp": sp.exp,
           "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "sign": sp.sign,
           "floor": sp.floor, "ceil": sp.ceiling, "trunc": lambda x: _trunc(sp, x),
           "neg": lambda x: -x, "exp2": lambda x: 2 ** x, "expm1": lambda x: sp.exp(x) - 1,
           "log2": lambda x: sp.log(x, 2), "log10": lambda x: sp.log(x, 10),
           "log1p": lambda x: sp.log(1 + x), "logistic": lambda x: 1 / (1 + sp.exp(-x)),
           # np.cbrt is the real cube root; sp.cbrt the principal one (complex for x < 0)
           "cbrt": lambda x: sp.sign(x) * sp.Abs(x) ** sp.Rational(1, 3),
           "real": sp.re, "imag": sp.im, "conj": sp.conjugate,
           # (these only pass values on: a check raises, it computes nothing)
           "stop_gradient": lambda x: x, "python_number": lambda x: x,
           "check": lambda x, **_: x}
  binary = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
            "zmul": lambda a, b: a * b, "div": lambda a, b: a / b,
            "zdiv": lambda a, b: a / b, "pow": lambda a, b: a ** b,
            "arctan2": sp.atan2, "hypot": lambda a, b: sp.sqrt(a ** 2 + b ** 2),
            "complex": lambda a, b: a + sp.I * b,
            "maximum": lambda a, b: _max(sp, a, b), "minimum": lambda a, b: _min(sp, a, b),
            "fmax": lambda a, b: _max(sp, a, b, skip_nan=True),
            "fmin": lambda a, b: _min(sp, a, b, skip_nan=True),
            "floor_divide": lambda a, b: sp.floor(a / b),
            "rem": sp.Mod,  # (NumPy's remainder takes the divisor's sign, as Mod does)
            "fmod": lambda a, b: a - b * _trunc(sp, a / b),  # (the dividend's sign)
            "ldexp": lambda a, b: a * 2 ** b,
            "logaddexp": lambda a, b: sp.log(sp.exp(a) + sp.exp(b)),
            "integer_pow": lambda x, *, y: x ** y,
            "gap_div": lambda x, gap, tol, **_: sp.Piecewise((0, sp.Abs(gap) <= tol),
                                                             (x / gap, True))}
  sqrt2 = sp.sqrt(2)
  # (erfcinv as erfinv: SymPy's erfcinv does not evaluate to a number)
  special = {"erf": sp.erf, "erfc": sp.erfc, "erfinv": sp.erfinv,
             "erfcinv": lambda y: sp.erfinv(1 - y),
             "erfcx": lambda x: sp.exp(x ** 2) * sp.erfc(x),
             "ndtr": lambda x: sp.erfc(-x / sqrt2) / 2,
             "log_ndtr": lambda x: sp.log(sp.erfc(-x / sqrt2) / 2),
             "ndtri": lambda p: sqrt2 * sp.erfinv(2 * p - 1),
             "ndtri_exp": lambda y: sqrt2 * sp.erfinv(2 * sp.exp(y) - 1),
             "gamma": sp.gamma, "rgamma": lambda x: 1 / sp.gamma(x),
             # gammaln and betaln are log|.|: loggamma is complex for negative x
             "gammaln": lambda x: (sp.loggamma(x) if x.is_positive
                                   else sp.log(sp.Abs(sp.gamma(x)))),
             "digamma": sp.digamma, "polygamma": sp.polygamma, "beta": sp.beta,
             "betaln": lambda a, b: sp.log(sp.Abs(sp.beta(a, b))),
             "gammainc": lambda a, x: sp.lowergamma(a, x) / sp.gamma(a),
             "gammaincc": lambda a, x: sp.uppergamma(a, x) / sp.gamma(a),
             "betainc": lambda a, b, x: sp.betainc_regularized(a, b, 0, x),
             "exp1": lambda x: sp.expint(1, x), "expi": sp.Ei, "zeta": sp.zeta,
             "riemann_zeta": sp.zeta, "binom": sp.binomial,
             "j0": lambda x: sp.besselj(0, x), "j1": lambda x: sp.besselj(1, x),
             "y0": lambda x: sp.bessely(0, x), "y1": lambda x: sp.bessely(1, x),
             "i0": lambda x: sp.besseli(0, x), "i1": lambda x: sp.besseli(1, x),
             "k0": lambda x: sp.besselk(0, x), "k1": lambda x: sp.besselk(1, x),
             "i0e": lambda x: sp.exp(-sp.Abs(x)) * sp.besseli(0, x),
             "i1e": lambda x: sp.exp(-sp.Abs(x)) * sp.besseli(1, x),
             "k0e": lambda x: sp.exp(x) * sp.besselk(0, x),
             "k1e": lambda x: sp.exp(x) * sp.besselk(1, x),
             "jv": sp.besselj, "yv": sp.bessely, "yn": sp.bessely, "iv": sp.besseli,
             "kv": sp.besselk, "ive": lambda v, x: sp.exp(-sp.Abs(sp.re(x))) * sp.besseli(v, x),
             "kve": lambda v, x: sp.exp(x) * sp.besselk(v, x)}
  rules = {name: _elementwise(sp, fn) for d in (unary, binary, special)
           for name, fn in d.items()}
  for name, fn in {"lt": sp.Lt, "le": sp.Le, "gt": sp.Gt, "ge": sp.Ge, "eq": sp.Eq,
                   "ne": sp.Ne}.items():
    rules[name] = _elementwise(sp, fn)
  for name, fn in {"logical_and": sp.And, "logical_or": sp.Or, "logical_xor": sp.Xor,
                   "logical_not": sp.Not}.items():
    rules[name] = _elementwise(sp, fn, truth=True)
  for name, test in {"isfinite": lambda x: True if x.is_finite else (
                         False if x is sp.nan or x.is_infinite else None),
                     "isinf": lambda x: True if x.is_infinite else (
                         False if x is sp.nan or x.is_finite else None),
                     "isnan": lambda x: True if x is sp.nan else (
                         False if x.is_finite or x.is_infinite else None)}.items():
    rules[name] = (lambda test: lambda eqn, args: _elementwise(
        sp, lambda x: _decided(sp, eqn, x, test(x)))(eqn, args))(test)
  rules["select"] = lambda eqn, args: _select(sp, eqn, args)
  rules["convert_element_type"] = lambda eqn, args: _convert(sp, eqn, args[0])
  rules["reduce_max"] = lambda eqn, args: _reduce(sp, _max, eqn, args[0])
  rules["reduce_min"] = lambda eqn, args: _reduce(sp, _min, eqn, args[0])
  # Shape, indexing, sums and products: NumPy's impls only move entries, or apply + and *
  # to them, which SymPy objects have; index operands (past the first `data` ones) must be
  # concrete, since NumPy indexes only with integers and booleans.
  for name, data in {"broadcast_to": 1, "reshape": 1, "transpose": 1, "concatenate": None,
                     "pad": 1, "slice": 1, "rev": 1, "gather": 1, "scatter": 2,
                     "scatter_add": 2, "scatter_mul": 2, "reduce_sum": 1, "reduce_prod": 1,
                     "cumsum": 1, "cumprod": 1, "dot_general": 2, "zdot_general": 2}.items():
    rules[name] = (lambda data: lambda eqn, args: _by_impl(sp, eqn, args, data))(data)
  for name, fn in {"scatter_max": _max, "scatter_min": _min}.items():
    rules[name] = (lambda fn: lambda eqn, args: _by_impl(
        sp, eqn, args, 2, impl=_scatter_with(lambda a, b: fn(sp, a, b))))(fn)
  rules["triangular_solve"] = lambda eqn, args: _substitution(sp, *_operands(sp, eqn, args),
                                                              **eqn.params)
  rules["det"] = lambda eqn, args: _matrices(sp, lambda m: m.det(method="berkowitz"),
                                             _operands(sp, eqn, args)[0], ())
  rules["adjugate"] = lambda eqn, args: _matrices(sp, lambda m: m.adjugate(method="berkowitz"),
                                                  _operands(sp, eqn, args)[0], None)
  rules["slogdet"] = lambda eqn, args: _slogdet(sp, _operands(sp, eqn, args)[0])
  rules["solve"] = lambda eqn, args: _solve(sp, *_operands(sp, eqn, args))
  return rules


def _operands(sp, eqn, args):
  """The arguments as object arrays of SymPy objects, booleans counted as 1 and 0."""
  out = []
  for a, v in zip(args, eqn.inputs):
    a = _to_object(sp, a)
    if v.aval.dtype == bool:
      a = np.vectorize(lambda b: _as_number(sp, b), otypes=[object])(a)
    out.append(a)
  return out


def _elementwise(sp, fn, truth=False):
  """The rule of an elementwise primitive: `fn` on the entries (its arguments numbers, or
  truth values with `truth`), broadcast as NumPy does."""
  def rule(eqn, args):
    if truth:
      args = [np.vectorize(lambda x: _as_bool(sp, x), otypes=[object])(_to_object(sp, a))
              for a in args]
    else:
      args = _operands(sp, eqn, args)
    params = eqn.params
    return np.vectorize(lambda *xs: fn(*xs, **params), otypes=[object])(*args)
  return rule


def _select(sp, eqn, args):
  c, x, y = args
  x, y = _to_object(sp, x), _to_object(sp, y)
  if not _symbolic(c):
    return np.where(c, x, y)  # a concrete choice is made here
  c = np.vectorize(lambda b: _as_bool(sp, b), otypes=[object])(c)
  # (a choice of truth values is a truth value: ITE; Piecewise takes numbers)
  fn = (lambda c, x, y: sp.ITE(c, x, y)) if eqn.outputs[0].aval.dtype == bool else (
      lambda c, x, y: sp.Piecewise((x, c), (y, True)))
  return np.vectorize(fn, otypes=[object])(c, x, y)


def _convert(sp, eqn, x):
  """convert_element_type as NumPy's astype: truth values count 1 and 0, numbers are true
  where nonzero, a float becomes an integer by rounding toward zero, a complex a real by
  dropping its imaginary part, a narrower integer wraps around; float precision is not
  modelled (float32 is float64 here)."""
  src, dst = eqn.inputs[0].aval.dtype, eqn.params["new_dtype"]
  x = _to_object(sp, x)
  if src == bool and dst != bool:
    fn = lambda v: _as_number(sp, v)  # noqa: E731
  elif dst == bool:
    fn = lambda v: _as_bool(sp, v)  # noqa: E731
  elif dst.kind in "iu" and src.kind in "fc":
    fn = lambda v: _trunc(sp, sp.re(v) if src.kind == "c" else v)  # noqa: E731
  elif dst.kind in "iu" and src.kind in "iu" and (
      np.iinfo(dst).min > np.iinfo(src).min or np.iinfo(dst).max < np.iinfo(src).max):
    bits, low = 8 * dst.itemsize, np.iinfo(dst).min
    fn = lambda v: sp.Mod(v - low, 2 ** bits) + low  # noqa: E731
  elif dst.kind != "c" and src.kind == "c":
    fn = sp.re
  else:
    return x
  return np.vectorize(fn, otypes=[object])(x)


def _reduce(sp, fn, eqn, x):
  """reduce_max or reduce_min over `axes`: Max (or Min) of each group of entries."""
  (x,) = _operands(sp, eqn, [x])
  axes = tuple(eqn.params["axes"])
  keep = tuple(n for i, n in enumerate(x.shape) if i not in axes)
  rows = np.moveaxis(x, axes, tuple(range(-len(axes), 0))).reshape(keep + (-1,))
  out = np.empty(keep, dtype=object)
  for index in np.ndindex(keep):
    out[index] = fn(sp, *rows[index])
  return out


def _scatter_with(fn):
  from dfdx._src.ops import indexing
  return indexing._scatter_impl(np.frompyfunc(fn, 2, 1))


def _by_impl(sp, eqn, args, data, impl=None):
  """The primitive's NumPy impl on object arrays, its first `data` operands (all if None)
  made SymPy objects, the others (indices) concrete."""
  data = len(args) if data is None else data
  for a in args[data:]:
    if _symbolic(a):
      _refuse(eqn, "it indexes with positions computed from the arguments' values. Index "
              "with concrete (NumPy) arrays, write the choice with dnp.where, or "
              + _TO_SOURCE)
  operands = _operands(sp, eqn, args[:data]) + list(args[data:])
  return (impl or eqn.prim.impl)(*operands, **eqn.params)


def _matrices(sp, fn, a, out_core):
  """`fn` of each matrix of the stack `a` (a SymPy Matrix each): a scalar each if out_core is
  (), a matrix of a's shape if None."""
  batch = a.shape[:-2]
  out = np.empty(batch + (a.shape[-2:] if out_core is None else ()), dtype=object)
  for index in np.ndindex(batch):
    value = fn(sp.Matrix(a[index].tolist()) if a.shape[-1] else sp.zeros(0, 0))
    out[index] = (np.array(value.tolist(), dtype=object).reshape(a.shape[-2:])
                  if out_core is None else value)
  return out


def _slogdet(sp, a):
  det = _matrices(sp, lambda m: m.det(method="berkowitz"), a, ())
  return [np.vectorize(sp.sign, otypes=[object])(det),
          np.vectorize(lambda d: sp.log(sp.Abs(d)), otypes=[object])(det)]


def _solve(sp, a, b):
  """x = adj(A) b / det(A), each system of the stack (Cramer's rule: no pivots, so no
  division by an entry that may be zero where A is not singular)."""
  n, k = b.shape[-2:]
  batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  a, b = np.broadcast_to(a, batch + (n, n)), np.broadcast_to(b, batch + (n, k))
  x = np.empty(batch + (n, k), dtype=object)
  for index in np.ndindex(batch):
    m = sp.Matrix(a[index].tolist()) if n else sp.zeros(0, 0)
    rhs = sp.Matrix(b[index].tolist()) if n and k else sp.zeros(n, k)
    det = m.det(method="berkowitz")
    x[index] = np.array((m.adjugate(method="berkowitz") * rhs / det).tolist(),
                        dtype=object).reshape(n, k)
  return x


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


def sympy_eval(program: Program, inputs):
  """Evaluate `program` on SymPy inputs (symbols or object arrays of symbols)."""
  import sympy as sp
  results = []
  for value in _eval(sp, program, inputs):
    value = _to_object(sp, value)
    results.append(value.item() if value.ndim == 0 else sp.Array(value.tolist()))
  return results


def _value(sp, x):
  """An input as this module's values: an object array if it holds SymPy objects, else a
  concrete NumPy array."""
  if _symbolic(x) or isinstance(x, sp.Basic):
    return _to_object(sp, np.asarray(x, dtype=object))
  return np.asarray(x)


def _eval(sp, program, inputs):
  """The program's outputs, concrete or as object arrays."""
  rules = _rules(sp)
  # (one input per leaf of the arguments: a pytree argument gives several)
  assert len(inputs) == len(program.in_vars), (len(inputs), len(program.in_vars))
  env = {id(v): _value(sp, x) for v, x in zip(program.in_vars, inputs)}
  env.update((id(v), np.asarray(c)) for v, c in zip(program.const_vars, program.const_vals))

  def read(a):
    return a.val if type(a) is Lit else env[id(a)]

  for eqn in program.eqns:
    args = [read(a) for a in eqn.inputs]
    if not any(_symbolic(a) for a in args):
      # Numbers only (constants, indices, masks): NumPy computes the value itself.
      out = eqn.prim.impl(*args, **eqn.params)
      outs = out if eqn.prim.multiple_results else [out]
      outs = [np.asarray(o).astype(v.aval.dtype, copy=False)
              for v, o in zip(eqn.outputs, outs)]
    else:
      out = _symbolic_eqn(sp, rules, eqn, [np.asarray(a) for a in args])
      outs = out if eqn.prim.multiple_results else [out]
      outs = [_to_object(sp, np.asarray(o, dtype=object)) for o in outs]
    for v, o in zip(eqn.outputs, outs):
      env[id(v)] = o
  return [np.asarray(read(o)) for o in program.outs]


def _symbolic_eqn(sp, rules, eqn, args):
  """The output(s) of an equation that meets a symbol."""
  name = eqn.prim.name
  rule = rules.get(name)
  if rule is not None:
    return rule(eqn, args)
  if name == "scan":
    return _scan(sp, args, **eqn.params)
  if name == "checkpoint_call":
    return _eval(sp, eqn.params["program"], args)
  if name == "jit_call":
    return _eval(sp, eqn.params["program"], args)
  if name in ("custom_jvp_call", "custom_vjp_call"):
    n = eqn.params["n_args"] + eqn.params["n_lifted"]
    return _eval(sp, eqn.params["fun"], args[:n])
  if name in ("while", "while_reverse", "while_tangent", "cond"):
    raise NotImplementedError(
        f"to_sympy: a `{'cond' if name == 'cond' else 'while_loop'}` decides "
        "what to compute from values, so it has no single formula. Write the function "
        "with dnp.where (a formula of both branches), or export it with to_source.")
  if name in ("custom_root", "linear_solve", "minimize", "odeint", "odeint_tangent"):
    raise NotImplementedError(
        f"to_sympy: `{name}` takes its value from a numerical solver, so it has no "
        "formula. Export the residual (or the operator, or the objective) instead.")
  if name == "pure_callback":
    raise NotImplementedError(
        f"to_sympy: pure_callback({eqn.params['name']}) calls code dfdx does not trace, so "
        "it has no formula. Export the parts around it.")
  _refuse(eqn, _REFUSALS.get(name, "to_sympy has no rule for it. Write the function with "
                             "primitives that have SymPy equivalents, or " + _TO_SOURCE))


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
      s[i, ...] = _to_object(sp, y)  # (s[i] = a 0-d array would store the array itself)
  return carry + stacked
