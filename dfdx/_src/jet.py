"""Taylor mode: `dfdx.jet` propagates truncated Taylor series through a function.

A `JetTracer` holds the normalized Taylor coefficients c_0, ..., c_K of a value along a
path x(t) = sum_k c_k t^k (c_k = x^(k)(0) / k!; `None` for a coefficient known to be zero).
`JetTrace` computes the output's coefficients of every primitive from its inputs':

  * linear primitives (add, reshape, gather, ...) apply themselves to each coefficient;
  * products (mul, dot_general) take the Cauchy product, sum_j a_j b_(k-j);
  * quotients solve q b = a term by term: q_k = (a_k - sum_(j>=1) b_j q_(k-j)) / b_0;
  * prod and cumprod multiply series in a tree (pairs, then pairs of pairs: log2(n) rounds of
    Cauchy products);
  * every other primitive goes through its JVP rule, which is dfdx code: y' = J(x)[x'] along
    the path, so the coefficients of y' to order K - 1 (the JVP rule run on series of order
    K - 1, for x and for x') give y's to order K. That recursion is exact for any primitive
    and costs O(K^3) products for exp-like rules (the rule calls the primitive again, one
    order lower).

Nothing is differentiated K times over: a K-th derivative along one direction costs a
polynomial in K, where K nested jvps cost 2^K evaluations.
"""
from __future__ import annotations

import math

import numpy as np

from dfdx._src import ad, core, state
from dfdx._src.ir import eval_program
from dfdx._src.core import Trace, Tracer, bind_in, swap_trace


class JetTracer(Tracer):
  __slots__ = ("coeffs",)

  def __init__(self, trace, coeffs):
    self._trace, self.coeffs = trace, coeffs

  @property
  def aval(self):
    primal = self.coeffs[0]
    return primal.aval if isinstance(primal, Tracer) else core.get_aval(primal)

  shape = property(lambda self: core.shape_of(self.coeffs[0]))

  @property
  def dtype(self):
    return self.aval.dtype

  def concrete_value(self, purpose):
    self.check_alive()
    primal = self.coeffs[0]
    return primal.concrete_value(purpose) if isinstance(primal, Tracer) else primal

  def _repr_value(self):
    return f" primal={self.coeffs[0]!r}"


def _floating(x):
  return core.get_aval(x).dtype.kind in "fc"


def _constant_value(x):
  """Whether a constant argument of a linear primitive is a value (its coefficients beyond
  the first are zero), not an index or a mask: floating, or a Python number (`1 - x`)."""
  return _floating(x) or isinstance(x, (int, float, complex)) and not isinstance(x, bool)


def _zero_of(x):
  """A zero coefficient for constant `x`: a Python zero for a Python number (it promotes as
  one: float32 + 0.0 stays float32), else zeros of x's shape and dtype."""
  return type(x)(0) if type(x) in (int, float, complex) else _zeros_like(x)


def _zeros_like(x):
  aval = x.aval if isinstance(x, Tracer) else core.get_aval(x)
  return np.zeros(aval.shape, aval.dtype)


class JetTrace(Trace):
  """Taylor mode to order `order`: values it owns are JetTracers of order + 1 coefficients.
  `memo`, for the traces of lower order that one primitive's JVP rule runs on (None for
  the jet's own trace), holds each primitive's output series by its inputs' coefficients:
  a rule that calls another primitive whose rule calls the first would otherwise redo it at
  every order, 2^K times. It lives while that one primitive is computed, when no user code
  runs (so no array it keys on changes), and is dropped after."""
  __slots__ = ("order", "memo")
  kind = "jet"

  def __init__(self, order, memo=None):
    super().__init__()
    self.order, self.memo = order, memo

  def process_primitive(self, prim, args, params):
    mine = [type(a) is JetTracer and a._trace is self for a in args]
    if not any(mine):
      return bind_in(self.parent, prim, args, params)
    # (a value whose path is constant, as stop_gradient's, is a constant here)
    args = [a.coeffs[0] if m and all(c is None for c in a.coeffs[1:]) else a
            for a, m in zip(args, mine)]
    mine = [type(a) is JetTracer and a._trace is self for a in args]
    if not any(mine):
      return bind_in(self.parent, prim, args, params)
    k = self.order
    series = [a.coeffs if m else [a] + [None] * k for a, m in zip(args, mine)]
    if prim.name in _INLINED:  # (a program's equations, each by its own rule)
      return eval_program(params["program"], *args)
    key = None if self.memo is None else _memo_key(prim, k, series, mine, params)
    hit = None if key is None else self.memo.get(key)
    if hit is not None:
      outs = hit[0]
    else:
      prev = swap_trace(self.parent)
      try:
        rule = jet_rules.get(prim)
        if rule is not None:
          outs = rule(series, k, **params)
        elif prim.linear:
          outs = _linear(prim, series, mine, k, params)
        else:
          outs = _by_jvp(prim, series, mine, k, params, {} if self.memo is None else self.memo)
      finally:
        swap_trace(prev)
      if key is not None:
        self.memo[key] = (outs, series)  # (the series kept: their ids stay theirs)
    if prim.multiple_results:
      return [self._wrap(o) for o in outs]
    return self._wrap(outs)

  def _wrap(self, coeffs):
    return JetTracer(self, coeffs) if _floating(coeffs[0]) else coeffs[0]


jet_rules: dict = {}
# Linear primitives whose every operand is a value (an integer one too: `x + count`); the
# others (gather, scatter, select) take indices and masks, kept as they are in each term.
_VALUES_ONLY = frozenset({"add", "sub", "concatenate", "pad", "complex"})
_INLINED = ("jit_call", "checkpoint_call")  # (their JVP rules would nest a program per order)


def _memo_key(prim, order, series, mine, params):
  """The key of a primitive applied to these coefficients (by identity), or None where a
  param cannot be hashed."""
  try:
    key = (prim, order, tuple(sorted(params.items())),
           tuple(tuple(map(id, s)) if m else id(s[0]) for s, m in zip(series, mine)))
    hash(key)
  except TypeError:
    return None
  return key


def _linear(prim, series, mine, k, params):
  """A primitive linear in its floating arguments jointly: itself on each coefficient (a
  floating constant's are zero; integer and boolean arguments stay as they are)."""
  outs = [prim.bind(*[s[0] for s in series], **params)]
  for j in range(1, k + 1):
    if all(s[j] is None for s, m in zip(series, mine) if m):
      outs.append(None)
      continue
    args = [s[j] if m and s[j] is not None else
            (_zeros_like(s[0]) if m else _zero_of(s[0])
             if _constant_value(s[0]) or prim.name in _VALUES_ONLY else s[0])
            for s, m in zip(series, mine)]
    outs.append(prim.bind(*args, **params))
  if prim.multiple_results:
    return [[o if o is None else o[i] for o in outs] for i in range(len(outs[0]))]
  return outs


def _cauchy(prim):
  """A product, linear in each argument: sum_j prim(a_j, b_(k-j))."""
  def rule(series, k, **params):
    (a, b) = series
    outs = [prim.bind(a[0], b[0], **params)]
    times = ad.applied(prim)
    for n in range(1, k + 1):
      total = None
      for j in range(n + 1):
        if a[j] is None or b[n - j] is None:
          continue
        term = times.bind(a[j], b[n - j], **params)
        total = term if total is None else ad.tangent_ops.add(total, term)
      outs.append(None if total is None else ad.match_primal(total, outs[0]))
    return outs
  return rule


def _inverse_series(num, den, k, first, times, divide):
  """q with den q = num for series (a product `times` of coefficients): q_0 = `first`, then
  q_n = divide(num_n - sum_(j=1..n) times(den_j, q_(n-j))), `divide` applying den_0's
  inverse."""
  from dfdx._src.ops import elementwise as ew
  q = [first]
  for n in range(1, k + 1):
    acc = num[n]
    for j in range(1, n + 1):
      if den[j] is None or q[n - j] is None:
        continue
      term = times(den[j], q[n - j])
      acc = ew.neg(term) if acc is None else ew.sub(acc, term)
    q.append(None if acc is None else ad.match_primal(divide(acc), q[0]))
  return q


def _quotient(div):
  """q = a / b, by its recurrence."""
  def rule(series, k, **params):
    from dfdx._src.ops import elementwise as ew
    a, b = series
    return _inverse_series(a, b, k, div.bind(a[0], b[0]), ew.tmul,
                           lambda r: ew.tdiv(r, b[0]))
  return rule


def _by_jvp(prim, series, mine, k, params, memo):
  """Any primitive, through its JVP rule: y(t) = prim(x(t)) has y'(t) = J(x(t))[x'(t)], so the
  rule run on the series of x and x' to order k - 1 gives y's coefficients 0 .. k - 1 (its
  primal output) and y_k (its tangent's coefficient k - 1, divided by k)."""
  primals0 = [s[0] for s in series]
  if k == 0:
    out = prim.bind(*primals0, **params)
    return [[o] for o in out] if prim.multiple_results else [out]
  rule = ad.primitive_jvps.get(prim)
  if rule is None:
    from dfdx._src import errors
    raise errors.MissingRuleError(f"No JVP rule for primitive '{prim.name}' (jet needs it).")
  sub = JetTrace(k - 1, memo)
  primals, tangents = [], []
  for s, m in zip(series, mine):
    if not m or not _floating(s[0]):
      primals.append(s[0])
      tangents.append(None)
      continue
    primals.append(JetTracer(sub, s[:k]))
    dots = [None if s[j + 1] is None else s[j + 1] * float(j + 1) for j in range(k)]
    if all(d is None for d in dots):
      tangents.append(None)
    else:
      if dots[0] is None:
        dots[0] = _zeros_like(s[0])
      tangents.append(JetTracer(sub, dots))
  prev = swap_trace(sub)
  try:
    out, out_dot = rule(primals, tangents, **params)
  finally:
    swap_trace(prev)
    sub.alive = False
  if prim.multiple_results:
    return [_join(o, d, sub, k) for o, d in zip(out, out_dot)]
  return _join(out, out_dot, sub, k)


def _coeffs(x, trace, n):
  if type(x) is JetTracer and x._trace is trace:
    return list(x.coeffs)
  return [x] + [None] * (n - 1)


def _join(out, out_dot, sub, k):
  """y's coefficients 0 .. k: the rule's output to order k - 1, then its tangent's last."""
  coeffs = _coeffs(out, sub, k)
  if not _floating(coeffs[0]):
    return coeffs + [None]
  last = None if out_dot is None else _coeffs(out_dot, sub, k)[k - 1]
  if last is not None:
    last = ad.match_primal(last * (1.0 / k), coeffs[0])
  return coeffs + [last]


# ---- elementwise functions by their differential equations: O(K^2) products ----------------
# y = f(x) with y' = g(x, y) x' gives, for normalized coefficients, k y_k = sum_(j=1..k)
# j x_j g_(k-j): each term from lower ones. (The JVP-rule recursion gives the same, in
# O(K^3).)


def _terms(pairs):
  """sum of a * b over the pairs whose factors are both known (None: zero), or None (with
  the zero-absorbing chain rule, 0 * inf = 0, as derivatives take it)."""
  from dfdx._src.ops import elementwise as ew
  total = None
  for a, b in pairs:
    if a is None or b is None:
      continue
    term = ew.tmul(a, b)
    total = term if total is None else total + term
  return total


def _scaled(x, c):
  return None if x is None else x * c


def _ode_rule(first, derivative_series):
  """A rule for y = f(x) where y' = g x': `first(x0)` is y_0, and `derivative_series(x, y,
  g, n)` appends g_n, given x's coefficients and y's and g's up to n."""
  def rule(series, k):
    (x,) = series
    y, g = [first(x[0])], []
    for n in range(1, k + 1):
      derivative_series(x, y, g, n - 1)  # g_(n-1), from y up to n - 1
      total = _terms((_scaled(x[j], float(j)), g[n - j]) for j in range(1, n + 1))
      y.append(None if total is None else ad.match_primal(total * (1.0 / n), y[0]))
    return y
  return rule


def _exp_like(y, g, m, offset=0.0):
  g.append(y[m] if m or not offset else y[0] + offset)  # (g = y, or y + 1 for expm1)


def _register_odes(ew):
  jet_rules[ew.exp_p] = _ode_rule(ew.exp, lambda x, y, g, m: _exp_like(y, g, m))
  jet_rules[ew.expm1_p] = _ode_rule(ew.expm1, lambda x, y, g, m: _exp_like(y, g, m, 1.0))

  def tanh_g(x, y, g, m):  # g = 1 - y^2
    sq = _terms((y[i], y[m - i]) for i in range(m + 1))
    g.append((1.0 - sq) if m == 0 else (None if sq is None else -sq))
  jet_rules[ew.tanh_p] = _ode_rule(ew.tanh, tanh_g)

  def reciprocal_of(shift):
    def rule_g(x, y, g, m):  # g = 1 / (x + shift), from (x + shift) g = 1
      if m == 0:
        g.append(1.0 / (x[0] + shift))
        return
      total = _terms((x[j], g[m - j]) for j in range(1, m + 1))
      g.append(None if total is None else -ew.tdiv(total, x[0] + shift))
    return rule_g
  jet_rules[ew.log_p] = _ode_rule(ew.log, reciprocal_of(0.0))
  jet_rules[ew.log1p_p] = _ode_rule(ew.log1p, reciprocal_of(1.0))

  def sqrt_g(x, y, g, m):  # g = 1 / (2 y), from 2 y g = 1
    if m == 0:
      g.append(0.5 / y[0])
      return
    total = _terms((y[j], g[m - j]) for j in range(1, m + 1))
    g.append(None if total is None else -ew.tdiv(total, y[0]))
  jet_rules[ew.sqrt_p] = _ode_rule(ew.sqrt, sqrt_g)

  def logistic_g(x, y, g, m):  # g = y (1 - y) = y - y^2
    sq = _terms((y[i], y[m - i]) for i in range(m + 1))
    g.append(y[0] - sq if m == 0 else (y[m] if sq is None else
                                       -sq if y[m] is None else y[m] - sq))
  jet_rules[ew.logistic_p] = _ode_rule(ew.logistic, logistic_g)
  jet_rules[ew.pow_p] = _power

  def sin_cos(want_sin):
    def rule(series, k):  # s' = c x', c' = -s x'
      (x,) = series
      s, c = [ew.sin(x[0])], [ew.cos(x[0])]
      for n in range(1, k + 1):
        ds = _terms((_scaled(x[j], float(j)), c[n - j]) for j in range(1, n + 1))
        dc = _terms((_scaled(x[j], float(j)), s[n - j]) for j in range(1, n + 1))
        s.append(None if ds is None else ad.match_primal(ds * (1.0 / n), s[0]))
        c.append(None if dc is None else ad.match_primal(dc * (-1.0 / n), c[0]))
      return s if want_sin else c
    return rule
  jet_rules[ew.sin_p] = sin_cos(True)
  jet_rules[ew.cos_p] = sin_cos(False)


def _power(series, k):
  """x ** c for a constant c: y' = g x' with x g = c y (from y' = c y x' / x); with a
  moving exponent, or where x is 0 (the recurrence divides by it), its JVP rule (at the
  zeros only, where x is traced)."""
  from dfdx._src.ops import elementwise as ew
  x, c = series
  x0, c0 = x[0], c[0]

  def by_rule():
    return _by_jvp(ew.pow_p, series, [True, True], k, {}, {})
  if any(e is not None for e in c[1:]):
    return by_rule()
  if not isinstance(x0, Tracer):
    return by_rule() if np.any(np.asarray(x0) == 0) else _power_away_from_zero(x, c0, k)
  zero = ew.eq(x0, np.zeros((), np.result_type(x0)))
  at_zero = by_rule()
  with ad.derivative_pass():  # (quiet, compiled too: its 0 / 0 at the zeros is not used)
    away = _power_away_from_zero(x, c0, k)
  return [b if a is None else (a if b is None else ew.select(zero, a, b))
          for a, b in zip(at_zero, away)]


def _power_away_from_zero(x, c0, k):
  from dfdx._src.ops import elementwise as ew

  def g_of(x, y, g, m):
    cy = None if y[m] is None else ew.tmul(y[m], c0)
    total = _terms((x[j], g[m - j]) for j in range(1, m + 1))
    if m == 0:
      g.append(ew.tdiv(ew.tmul(y[0], c0), x[0]))
      return
    acc = cy if total is None else (-total if cy is None else cy - total)
    g.append(None if acc is None else ew.tdiv(acc, x[0]))
  return _ode_rule(lambda x0: ew.pow_p.bind(x0, c0), g_of)([x], k)


# ---- loops: the body's series, as a program over coefficients -------------------------------


def _jet_program(program, k, has, out_has=None):
  """`program` over Taylor coefficients to order k: each input with `has` set takes k + 1
  inputs (its coefficients), the others their value; each output gives its value, then its
  k coefficients where it has a series (or where `out_has` says, zeros if none). Returns
  (program, which outputs have series)."""
  from dfdx._src.staging import make_program
  avals, store = [], {}
  for v, h in zip(program.in_vars, has):
    avals += [v.aval] * (k + 1 if h else 1)

  def flat(*xs):
    trace, it = JetTrace(k), iter(xs)
    ins = [JetTracer(trace, [next(it) for _ in range(k + 1)]) if h else next(it) for h in has]
    outs = state.run_in_trace(trace, lambda *a: eval_program(program, *a), ins,
                              lambda t: t.coeffs[0])
    flat_outs, found = [], []
    for i, o in enumerate(outs):
      coeffs = _coeffs(o, trace, k + 1)
      h = _floating(coeffs[0]) and any(c is not None for c in coeffs[1:])
      if out_has is not None:
        h = out_has[i]
      found.append(h)
      flat_outs += [coeffs[0]] + ([_zeros_like(coeffs[0]) if c is None else c
                                   for c in coeffs[1:]] if h else [])
    store["has"] = found
    return flat_outs
  jet_program, lifted = make_program(flat, avals, record_source=False)
  assert not lifted, lifted
  return jet_program, store["has"]


def _expand(series, has, k):
  out = []
  for s, h in zip(series, has):
    out += [s[0]] + ([_zeros_like(s[0]) if c is None else c for c in s[1:]] if h else [])
  return out


def _regroup(outs, has, k):
  it, grouped = iter(outs), []
  for h in has:
    grouped.append([next(it)] + ([next(it) for _ in range(k)] if h else [None] * k))
  return grouped


def _scan_rule(series, k, *, body, num_carry, num_xs, length, reverse, linear):
  """scan over the coefficients of its carries, slices and constants: the body's series
  computed step by step (its JVP rule would nest one program per order)."""
  from dfdx._src.ops.control_flow import scan_p
  has = [_floating(s[0]) and any(c is not None for c in s[1:]) for s in series]
  while True:  # (a carry without a series gains one where the body gives it one)
    program, out_has = _jet_program(body, k, has)
    carry_has = [a or b for a, b in zip(has[:num_carry], out_has[:num_carry])]
    if carry_has == has[:num_carry]:
      break
    has = carry_has + has[num_carry:]
  args = _expand(series, has, k)
  sizes = [1 + k * h for h in has]
  outs = scan_p.bind(*args, body=program, num_carry=sum(sizes[:num_carry]),
                     num_xs=sum(sizes[num_carry:num_carry + num_xs]), length=length,
                     reverse=reverse, linear=(False,) * len(args))
  return _regroup(outs, out_has, k)


def _cond_rule(series, k, *, branches, num_consts, linear):
  """cond of the branches over coefficients (every branch gives the series any gives)."""
  from dfdx._src.ops.branches import _branch_args, cond_p
  index, rest = series[0][0], series[1:]
  has = [_floating(s[0]) and any(c is not None for c in s[1:]) for s in rest]
  n_ops = len(rest) - sum(num_consts)
  found = [_jet_program(b, k, _branch_args(has, branches, num_consts, i))[1]
           for i, b in enumerate(branches)]
  out_has = [any(h) for h in zip(*found)]
  programs = tuple(_jet_program(b, k, _branch_args(has, branches, num_consts, i), out_has)[0]
                   for i, b in enumerate(branches))
  sizes = [1 + k * h for h in has]
  counts, start = [], n_ops
  for c in num_consts:
    counts.append(sum(sizes[start:start + c]))
    start += c
  ops = _expand(rest[:n_ops], has[:n_ops], k)
  outs = cond_p.bind(index, *ops, *_expand(rest[n_ops:], has[n_ops:], k), branches=programs,
                     num_consts=tuple(counts), linear=(False,) * len(ops))
  return _regroup(outs, out_has, k)


def _while_rule(series, k, *, cond, body, num_vals, num_cond_consts):
  """while over the coefficients of its values: the test reads their values only, the body
  runs over coefficients (as scan's)."""
  from dfdx._src.ops.branches import while_p
  from dfdx._src.staging import make_program
  has = [_floating(s[0]) and any(c is not None for c in s[1:]) for s in series]
  body_has = lambda has: has[:num_vals] + has[num_vals + num_cond_consts:]  # noqa: E731
  while True:
    program, out_has = _jet_program(body, k, body_has(has))
    vals_has = [a or b for a, b in zip(has[:num_vals], out_has)]
    if vals_has == has[:num_vals]:
      break
    has = vals_has + has[num_vals:]
  test_has = has[:num_vals] + [False] * num_cond_consts  # (cond consts: values only)
  avals = []
  for v, h in zip(cond.in_vars, test_has):
    avals += [v.aval] * (1 + k * h)

  def test(*xs):
    it = iter(xs)
    values = []
    for h in test_has:
      values.append(next(it))
      for _ in range(k * h):
        next(it)
    return eval_program(cond, *values)
  test_program, lifted = make_program(test, avals, record_source=False)
  assert not lifted, lifted
  vals = _expand(series[:num_vals], has[:num_vals], k)
  cond_consts = [s[0] for s in series[num_vals:num_vals + num_cond_consts]]
  body_consts = _expand(series[num_vals + num_cond_consts:], has[num_vals + num_cond_consts:], k)
  outs = while_p.bind(*vals, *cond_consts, *body_consts, cond=test_program, body=program,
                      num_vals=len(vals), num_cond_consts=len(cond_consts))
  return _regroup(outs, has[:num_vals], k)


def _solve_rule(series, k):
  """x = A^-1 b: A_0 x_n = b_n - sum_(j=1..n) A_j x_(n-j), one solve with A_0 per term."""
  from dfdx._src.ops import contraction
  from dfdx._src.ops.linalg import solve_p
  a, b = series
  return _inverse_series(b, a, k, solve_p.bind(a[0], b[0]), contraction.matmul,
                         lambda r: solve_p.bind(a[0], r))


def _triangular_solve_rule(series, k, *, lower, trans, unit_diagonal, check):
  """op(T) x = b, as solve: op(T_0) x_n = b_n - sum_(j=1..n) op(T_j) x_(n-j), T_j the
  triangle of A_j that is read."""
  from dfdx._src.ops import contraction
  from dfdx._src.ops import linalg
  a, b = series
  params = dict(lower=lower, trans=trans, unit_diagonal=unit_diagonal, check=check)

  def times(a_j, x):
    return contraction.matmul(linalg._triangular_operand(a_j, lower, trans, unit_diagonal), x)
  return _inverse_series(b, a, k, linalg.triangular_solve_p.bind(a[0], b[0], **params), times,
                         lambda r: linalg.triangular_solve_p.bind(a[0], r, **params))


# ---- products along an axis: a tree of Cauchy products, O(K^2 log n) -----------------------
# (Their JVP rules call cumprod again, so going through them would double the cost per order.)


def _ones_series(like, k):
  """The series of a constant 1 shaped as `like` (no higher terms)."""
  return [np.ones(core.shape_of(like), core.get_aval(like).dtype)] + [None] * k


def _along(series, f):
  return [None if c is None else f(c) for c in series]


def _prod_rule(series, k, *, axes):
  """reduce_prod: the entries of each group multiplied in pairs, halving the axis each time
  (a one pads an odd length)."""
  from dfdx._src.ops import elementwise as ew
  from dfdx._src.ops import reduction as red
  from dfdx._src.ops import shape as shape_ops
  (x,) = series
  shape = core.shape_of(x[0])
  kept = [i for i in range(len(shape)) if i not in axes]
  out_shape, n, last = tuple(shape[i] for i in kept), math.prod(shape[a] for a in axes), len(kept)
  primal = red.reduce_prod_p.bind(x[0], axes=axes)
  if n == 0:
    return [primal] + [None] * k
  s = _along(x, lambda c: shape_ops.reshape(shape_ops.transpose(c, tuple(kept) + tuple(axes)),
                                            out_shape + (n,)))
  times = _cauchy(ew.mul_p)
  while n > 1:
    if n % 2:
      one = _ones_series(shape_ops.slice_in_dim(s[0], 0, 1, last), k)
      s = [a if a is None else shape_ops.concatenate(
          [a, np.zeros(out_shape + (1,), core.get_aval(a).dtype) if b is None else b], last)
          for a, b in zip(s, one)]
      n += 1
    s = times([_along(s, lambda c: shape_ops.slice_in_dim(c, 0, n // 2, last)),
               _along(s, lambda c: shape_ops.slice_in_dim(c, n // 2, n, last))], k)
    n //= 2
  return [primal] + [None if c is None else ad.match_primal(shape_ops.reshape(c, out_shape),
                                                            primal) for c in s[1:]]


def _cumprod_rule(series, k, *, axis, reverse):
  """cumprod: a prefix product in log2(n) steps, each multiplying the series by itself
  shifted along the axis by 1, 2, 4, ... (ones shifted in)."""
  from dfdx._src.ops import elementwise as ew
  from dfdx._src.ops import reduction as red
  from dfdx._src.ops import shape as shape_ops
  (x,) = series
  primal = red.cumprod_p.bind(x[0], axis=axis, reverse=reverse)
  flip = (lambda c: shape_ops.rev(c, (axis,))) if reverse else (lambda c: c)
  s, n, shift = _along(x, flip), core.shape_of(x[0])[axis], 1
  times = _cauchy(ew.mul_p)
  while shift < n:
    head = list(core.shape_of(x[0]))
    head[axis] = shift
    dtype = core.get_aval(x[0]).dtype
    shifted = [None if c is None else shape_ops.concatenate(
        [(np.ones if j == 0 else np.zeros)(head, dtype),
         shape_ops.slice_in_dim(c, 0, n - shift, axis)], axis) for j, c in enumerate(s)]
    s = times([s, shifted], k)
    shift *= 2
  return [primal] + [None if c is None else ad.match_primal(flip(c), primal) for c in s[1:]]


def _register():
  from dfdx._src.ops import contraction, elementwise as ew
  from dfdx._src.ops import reduction as red
  jet_rules[red.reduce_prod_p] = _prod_rule
  jet_rules[red.cumprod_p] = _cumprod_rule
  from dfdx._src.ops.linalg import solve_p, triangular_solve_p
  jet_rules[solve_p] = _solve_rule
  jet_rules[triangular_solve_p] = _triangular_solve_rule
  from dfdx._src.ops.branches import cond_p, while_p
  jet_rules[while_p] = _while_rule
  from dfdx._src.ops.control_flow import scan_p
  jet_rules[scan_p] = _scan_rule
  jet_rules[cond_p] = _cond_rule
  for prim in (ew.mul_p, ew.zmul_p, contraction.dot_general_p):
    jet_rules[prim] = _cauchy(prim)
  jet_rules[ew.div_p] = _quotient(ew.div_p)
  jet_rules[ew.zdiv_p] = _quotient(ew.zdiv_p)
  _register_odes(ew)


_register()


def _known_zero(d):
  """A concrete series term that is all zeros: no term (a path that does not move there
  must not meet 0 * inf)."""
  return not isinstance(d, Tracer) and not np.any(np.asarray(d))


def jet_flat(fun, primals, series):
  """`fun` (flat list -> flat list) along the paths x_i(t) = primals[i] + sum_k
  series[i][k-1] t^k / k!. Returns (outputs, their series: lists of K derivatives)."""
  import dfdx.numpy as dnp
  order = len(series[0]) if series else 0
  trace = JetTrace(order)
  ins = []
  for p, s in zip(primals, series):
    dtype = core.get_aval(p).dtype
    coeffs = [p] + [None if d is None or _known_zero(d) else
                    dnp.asarray(d, dtype) * (1.0 / math.factorial(j + 1))
                    for j, d in enumerate(s)]
    ins.append(JetTracer(trace, coeffs))
  outs = state.run_in_trace(trace, fun, ins, lambda t: t.coeffs[0])
  values, out_series = [], []
  for o in outs:
    coeffs = _coeffs(o, trace, order + 1)
    values.append(coeffs[0])
    out_series.append([None if c is None else c * float(math.factorial(j))
                       for j, c in enumerate(coeffs) if j > 0])
  return values, out_series


