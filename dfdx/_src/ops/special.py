"""Special-function primitives: the error function, gamma and its relatives, Bessel
functions, the incomplete gamma and beta functions, the exponential integrals, Riemann's and
Hurwitz's zeta functions, ndtri_exp and binomial coefficients (`dfdx.scipy.special`).

Their impls are SciPy's ufuncs, imported lazily on first use: `import dfdx` needs NumPy alone,
and a missing SciPy raises an ImportError that names the `scipy` extra. Result dtypes are
SciPy's (found by running the ufunc on empty operands once), with NumPy's broadcasting.

Every derivative is written with the primitives of this module and of `elementwise`, so it
can be differentiated again: d erf = 2/sqrt(pi) exp(-x^2), d gammaln = digamma, d digamma =
polygamma(1, .), d polygamma(n, .) = polygamma(n + 1, .), d J_v = (J_{v-1} - J_{v+1}) / 2 and
so on, each with its DLMF section; d E1 = -e^-x / x, d Ei = e^x / x, d zeta(x, q) / dq =
-x zeta(x + 1, q). Integer orders (polygamma's n, yn's n) have a zero derivative; real orders
of Bessel functions, zeta's exponent x and second derivatives in the shape parameters of
gammainc, betainc and stdtr raise `MissingRuleError` (not implemented) when
differentiated. The first derivatives in those shape parameters are the primitives
`gammainc_grad_a` (a series or a quadrature) and `betainc_grad` (a quadrature, about 1e-8
relative accuracy); stdtr's in df is written with betainc_grad.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from dfdx._src import ad, batching, core, dtypes, errors
from dfdx._src.core import ShapedArray
from dfdx._src.ops import elementwise as ew

_scipy_special_module = None


def scipy_special(name=None):
  """The `scipy.special` module, imported on first use, with an ImportError naming the extra
  when SciPy is not installed (and the function `name` that needed it)."""
  global _scipy_special_module
  if _scipy_special_module is None:
    try:
      import scipy.special
    except ImportError as e:
      what = f"scipy.special.{name}" if name else "this function"
      raise ImportError(
          f"dfdx.scipy: {what} is computed with SciPy, which is not installed. Install it "
          "with `pip install dfdx[scipy]` (or `pip install scipy`).") from e
    _scipy_special_module = scipy.special
  return _scipy_special_module


class _LazyUfunc:
  """A `scipy.special` ufunc looked up when first called (so importing dfdx imports no SciPy)."""
  __slots__ = ("name",)

  def __init__(self, name):
    self.name = name

  def __call__(self, *args):
    return getattr(scipy_special(self.name), self.name)(*args)

  def __repr__(self):
    return f"scipy.special.{self.name}"


def _special_prim(name, nargs, scipy_name=None):
  fun = _LazyUfunc(scipy_name or name)
  prim = core.primitive(name)
  prim.def_impl(fun)

  def abstract_eval(*avals):
    assert len(avals) == nargs, (name, avals)
    return ShapedArray(ew.broadcast_shapes(*[a.shape for a in avals]),
                       dtypes.ufunc_result_dtype(fun, *avals), dtypes.result_weak_type(*avals))
  prim.def_abstract_eval(abstract_eval)
  if nargs == 1:
    batching.defvectorized(prim)
  else:
    batching.defbroadcasting(prim)
  return prim


def _c(value, like):
  """A 0-d constant in `like`'s floating dtype (float32 rules stay float32)."""
  return np.asarray(value, dtype=dtypes.differentiable_dtype(core.get_aval(like).dtype))


def _not_implemented(prim_name, arg_name, what):
  def rule(t, *primals, **params):
    raise errors.MissingRuleError(
        f"{prim_name}: the derivative with respect to {what} ({arg_name}) is not implemented; "
        f"only the derivative in the last argument is. Hold {arg_name} fixed: pass it as a "
        f"constant, or wrap it in dfdx.stop_gradient.")
  return rule


mul, add, sub, neg, exp, log = ew.mul, ew.add, ew.sub, ew.neg, ew.exp, ew.log
tmul = ew.tmul  # a tangent times its derivative factor (0 times a NaN factor is 0 where the
                # zero-absorbing rule is on: see ops/elementwise.py)
logical_and, logical_or, isinf = ew.logical_and_p.bind, ew.logical_or_p.bind, ew.isinf_p.bind


def _half(x):
  return mul(x, _c(0.5, x))


def xlogy(x, y):
  """x log(y), 0 where x == 0 (even where log(y) is infinite or NaN-producing); the
  derivatives there are finite: log(y) in x (0 if y <= 0 or infinite), 0 in y."""
  flat = logical_and(ew.eq(x, 0), logical_or(ew.le(y, 0), isinf(y)))
  return mul(x, log(ew.select(flat, _c(1, y), y)))


def xlog1py(x, y):
  """x log1p(y), 0 where x == 0, with the same finite derivatives there as `xlogy`."""
  flat = logical_and(ew.eq(x, 0), logical_or(ew.le(y, -1), isinf(y)))
  return mul(x, ew.log1p(ew.select(flat, _c(0, y), y)))


# ---- error function and the normal distribution function -----------------------------------
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)


def _gaussian(x, scale):
  """scale * exp(-x^2)."""
  return mul(_c(scale, x), exp(neg(mul(x, x))))


erf_p = _special_prim("erf", 1)
erfc_p = _special_prim("erfc", 1)
erfinv_p = _special_prim("erfinv", 1)
erfcinv_p = _special_prim("erfcinv", 1)
erfcx_p = _special_prim("erfcx", 1)
ndtr_p = _special_prim("ndtr", 1)
log_ndtr_p = _special_prim("log_ndtr", 1)
ndtri_p = _special_prim("ndtri", 1)


def erf(x):
  return erf_p.bind(x)


def erfc(x):
  return erfc_p.bind(x)


def erfinv(x):
  return erfinv_p.bind(x)


def erfcinv(x):
  return erfcinv_p.bind(x)


def erfcx(x):
  return erfcx_p.bind(x)


def ndtr(x):
  return ndtr_p.bind(x)


def log_ndtr(x):
  return log_ndtr_p.bind(x)


def ndtri(x):
  return ndtri_p.bind(x)


def _half_square(x):
  return mul(_c(0.5, x), mul(x, x))


# DLMF 7.10: erf' = 2/sqrt(pi) exp(-x^2), erfc' = -erf'.
ad.defjvp(erf_p, lambda t, x: tmul(t, _gaussian(x, _TWO_OVER_SQRT_PI)))
ad.defjvp(erfc_p, lambda t, x: tmul(t, _gaussian(x, -_TWO_OVER_SQRT_PI)))
# Inverse functions: 1 / erf'(erfinv(x)) = sqrt(pi)/2 exp(erfinv(x)^2).
ad.defjvp2(erfinv_p, lambda t, ans, x: tmul(t, mul(_c(_SQRT_PI_OVER_TWO, ans),
                                                  exp(mul(ans, ans)))))
ad.defjvp2(erfcinv_p, lambda t, ans, x: tmul(t, mul(_c(-_SQRT_PI_OVER_TWO, ans),
                                                   exp(mul(ans, ans)))))
# erfcx = exp(x^2) erfc(x): erfcx' = 2 x erfcx - 2/sqrt(pi) (DLMF 7.10 with the product rule).
ad.defjvp2(erfcx_p, lambda t, ans, x: tmul(t, sub(mul(_c(2, x), mul(x, ans)),
                                                 _c(_TWO_OVER_SQRT_PI, x))))
ad.defjvp(ndtr_p, lambda t, x: tmul(t, mul(_c(_INV_SQRT_2PI, x), exp(neg(_half_square(x))))))


def _log_ndtr_jvp(t, ans, x):
  # log_ndtr' = density / ndtr. For x < 0 as sqrt(2/pi) / erfcx(-x/sqrt(2)) (ndtr(x) =
  # erfcx(-x/sqrt 2) exp(-x^2/2) / 2, DLMF 7.2.3): no cancellation far in the left tail, where
  # it grows like -x; for x >= 0 as exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi).
  left = ew.lt(x, 0)
  x_left, x_right = ew.select(left, x, _c(0, x)), ew.select(left, _c(0, x), x)
  ans_right = ew.select(left, _c(0, ans), ans)
  tail = ew.div(_c(math.sqrt(2 / math.pi), x), erfcx(mul(_c(-1 / math.sqrt(2), x), x_left)))
  body = mul(_c(_INV_SQRT_2PI, x), exp(neg(add(_half_square(x_right), ans_right))))
  return tmul(t, ew.select(left, tail, body))


ad.defjvp2(log_ndtr_p, _log_ndtr_jvp)
ad.defjvp2(ndtri_p, lambda t, ans, x: tmul(t, mul(_c(_SQRT_2PI, ans), exp(_half_square(ans)))))

# ---- gamma, digamma, polygamma, beta --------------------------------------------------------
gamma_p = _special_prim("gamma", 1)
gammaln_p = _special_prim("gammaln", 1)
rgamma_p = _special_prim("rgamma", 1)
digamma_p = _special_prim("digamma", 1)
polygamma_p = _special_prim("polygamma", 2)
beta_p = _special_prim("beta", 2)
betaln_p = _special_prim("betaln", 2)


def gamma(x):
  return gamma_p.bind(x)


def gammaln(x):
  return gammaln_p.bind(x)


def rgamma(x):
  return rgamma_p.bind(x)


def digamma(x):
  return digamma_p.bind(x)


def polygamma(n, x):
  return polygamma_p.bind(n, x)


def beta(a, b):
  return beta_p.bind(a, b)


def betaln(a, b):
  return betaln_p.bind(a, b)


def _rgamma_jvp(t, ans, x):
  return tmul(t, _drgamma(x, ans))


def _drgamma(x, ans=None):
  """The derivative of rgamma at x (ans = rgamma(x), or None to compute it)."""
  # (1/Gamma)' = -digamma / Gamma (DLMF 5.2.2) for x >= 1/2. Below, through the reflection
  # formula 1/Gamma(x) = sin(pi x) Gamma(1 - x) / pi (DLMF 5.5.3), which has no poles there:
  # (cos(pi x) - sin(pi x) digamma(1 - x) / pi) Gamma(1 - x), finite at x = 0, -1, -2, ...
  reflect = ew.lt(x, 0.5)
  if ans is None:
    ans = rgamma(ew.select(reflect, _c(1, x), x))
  xr = ew.select(reflect, x, _c(0, x))
  xd = ew.select(reflect, _c(1, x), x)
  one_minus, pi_x = sub(_c(1, x), xr), mul(_c(math.pi, x), xr)
  reflected = mul(sub(ew.cos(pi_x), mul(ew.sin(pi_x), mul(_c(1 / math.pi, x),
                                                          digamma(one_minus)))),
                  gamma(one_minus))
  direct = neg(mul(ew.select(reflect, _c(1, x), ans), digamma(xd)))
  return ew.select(reflect, reflected, direct)


# DLMF 5.2.2 (psi = Gamma'/Gamma), 5.15.1 (psi^(n) is the n-th derivative of psi).
ad.defjvp2(gamma_p, lambda t, ans, x: tmul(t, mul(ans, digamma(x))))
ad.defjvp(gammaln_p, lambda t, x: tmul(t, digamma(x)))
ad.defjvp2(rgamma_p, _rgamma_jvp)
ad.defjvp(digamma_p, lambda t, x: tmul(t, polygamma(1, x)))
ad.defjvp(polygamma_p, None, lambda t, n, x: tmul(t, polygamma(add(n, 1), x)))


def _dbetaln(x, a, b):
  """d betaln(a, b) / da evaluated at x = a: digamma(a) - digamma(a + b) (DLMF 5.12.1)."""
  return sub(digamma(x), digamma(add(a, b)))


def _beta_jvp(wrt):
  """d beta(a, b) / da (wrt="a") or / db: beta (digamma(x) - digamma(a + b)), x the argument
  differentiated. Where a + b is a pole of Gamma (0, -1, -2, ...) beta is 0 and that form is
  0 * inf; there it is written with 1/Gamma, which has no poles: beta = Gamma(a) Gamma(b)
  rgamma(a + b), so d/da = Gamma(a) Gamma(b) (digamma(a) rgamma(a + b) + rgamma'(a + b)).
  Each form sees safe arguments where the other is taken, so both derivatives stay finite."""
  def rule(t, ans, a, b):
    s = add(a, b)
    pole = logical_and(ew.le(s, _c(0, s)), ew.eq(ew.floor(s), s))
    one = _c(1, s)
    a_n, b_n = ew.select(pole, one, a), ew.select(pole, one, b)
    a_p, b_p = ew.select(pole, a, one), ew.select(pole, b, one)
    x_n, x_p = (a_n, a_p) if wrt == "a" else (b_n, b_p)
    s_p = add(a_p, b_p)
    regular = mul(ans, _dbetaln(x_n, a_n, b_n))
    at_pole = mul(mul(gamma(a_p), gamma(b_p)),
                  add(mul(digamma(x_p), rgamma(s_p)), _drgamma(s_p)))
    return tmul(t, ew.select(pole, at_pole, regular))
  return rule


ad.defjvp2(beta_p, _beta_jvp("a"), _beta_jvp("b"))
ad.defjvp(betaln_p, lambda t, a, b: tmul(t, _dbetaln(a, a, b)),
          lambda t, a, b: tmul(t, _dbetaln(b, a, b)))

# ---- Bessel functions -----------------------------------------------------------------------
j0_p = _special_prim("j0", 1)
j1_p = _special_prim("j1", 1)
y0_p = _special_prim("y0", 1)
y1_p = _special_prim("y1", 1)
i0_p = _special_prim("i0", 1)
i1_p = _special_prim("i1", 1)
i0e_p = _special_prim("i0e", 1)
i1e_p = _special_prim("i1e", 1)
k0_p = _special_prim("k0", 1)
k1_p = _special_prim("k1", 1)
k0e_p = _special_prim("k0e", 1)
k1e_p = _special_prim("k1e", 1)
jv_p = _special_prim("jv", 2)
yv_p = _special_prim("yv", 2)
yn_p = _special_prim("yn", 2)
iv_p = _special_prim("iv", 2)
ive_p = _special_prim("ive", 2)
kv_p = _special_prim("kv", 2)
kve_p = _special_prim("kve", 2)


def j0(x):
  return j0_p.bind(x)


def j1(x):
  return j1_p.bind(x)


def y0(x):
  return y0_p.bind(x)


def y1(x):
  return y1_p.bind(x)


def i0(x):
  return i0_p.bind(x)


def i1(x):
  return i1_p.bind(x)


def i0e(x):
  return i0e_p.bind(x)


def i1e(x):
  return i1e_p.bind(x)


def k0(x):
  return k0_p.bind(x)


def k1(x):
  return k1_p.bind(x)


def k0e(x):
  return k0e_p.bind(x)


def k1e(x):
  return k1e_p.bind(x)


def jv(v, x):
  return jv_p.bind(v, x)


def yv(v, x):
  return yv_p.bind(v, x)


def yn(n, x):
  return yn_p.bind(n, x)


def iv(v, x):
  return iv_p.bind(v, x)


def ive(v, x):
  return ive_p.bind(v, x)


def kv(v, x):
  return kv_p.bind(v, x)


def kve(v, x):
  return kve_p.bind(v, x)


def _neighbours(fun, v, x, sign):
  """(C_{v-1}(x) + sign C_{v+1}(x)) / 2."""
  lower, upper = fun(sub(v, 1), x), fun(add(v, 1), x)
  return _half(add(lower, upper) if sign > 0 else sub(lower, upper))


def _exp_scaled(dx, ans, x, sign):
  """The derivative dx of C(x) turned into that of C(x) exp(sign |x|) (ans = the latter)."""
  return add(dx, mul(ans, ew.sign(x) if sign > 0 else neg(ew.sign(x)))) if sign else dx


# DLMF 10.6.1 (J, Y: C'_v = (C_{v-1} - C_{v+1}) / 2), 10.6.2 (J0' = -J1), 10.29.1
# (I'_v = (I_{v-1} + I_{v+1}) / 2, K'_v = -(K_{v-1} + K_{v+1}) / 2), 10.29.3 (I0' = I1,
# K0' = -K1); the exponentially scaled versions (ive = iv e^-|x|, kve = kv e^x) by the
# product rule.
ad.defjvp(j0_p, lambda t, x: tmul(t, neg(j1(x))))
ad.defjvp(j1_p, lambda t, x: tmul(t, _half(sub(j0(x), jv(2, x)))))
ad.defjvp(y0_p, lambda t, x: tmul(t, neg(y1(x))))
ad.defjvp(y1_p, lambda t, x: tmul(t, _half(sub(y0(x), yn(2, x)))))
ad.defjvp(i0_p, lambda t, x: tmul(t, i1(x)))
ad.defjvp(i1_p, lambda t, x: tmul(t, _half(add(i0(x), iv(2, x)))))
ad.defjvp2(i0e_p, lambda t, ans, x: tmul(t, _exp_scaled(i1e(x), ans, x, -1)))
ad.defjvp2(i1e_p, lambda t, ans, x: tmul(t, _exp_scaled(_half(add(i0e(x), ive(2, x))), ans,
                                                       x, -1)))
ad.defjvp(k0_p, lambda t, x: tmul(t, neg(k1(x))))
ad.defjvp(k1_p, lambda t, x: tmul(t, neg(_half(add(k0(x), kv(2, x))))))
ad.defjvp2(k0e_p, lambda t, ans, x: tmul(t, add(neg(k1e(x)), ans)))
ad.defjvp2(k1e_p, lambda t, ans, x: tmul(t, add(neg(_half(add(k0e(x), kve(2, x)))), ans)))
ad.defjvp(jv_p, _not_implemented("jv", "v", "the order"),
          lambda t, v, x: tmul(t, _neighbours(jv, v, x, -1)))
ad.defjvp(yv_p, _not_implemented("yv", "v", "the order"),
          lambda t, v, x: tmul(t, _neighbours(yv, v, x, -1)))
ad.defjvp(yn_p, None, lambda t, n, x: tmul(t, _neighbours(yn, n, x, -1)))
ad.defjvp(iv_p, _not_implemented("iv", "v", "the order"),
          lambda t, v, x: tmul(t, _neighbours(iv, v, x, 1)))
ad.defjvp2(ive_p, _not_implemented("ive", "v", "the order"),
           lambda t, ans, v, x: tmul(t, _exp_scaled(_neighbours(ive, v, x, 1), ans, x, -1)))
ad.defjvp(kv_p, _not_implemented("kv", "v", "the order"),
          lambda t, v, x: tmul(t, neg(_neighbours(kv, v, x, 1))))
ad.defjvp2(kve_p, _not_implemented("kve", "v", "the order"),
           lambda t, ans, v, x: tmul(t, add(neg(_neighbours(kve, v, x, 1)), ans)))

# ---- incomplete gamma and beta functions, Student's t distribution function ---------------
gammainc_p = _special_prim("gammainc", 2)
gammaincc_p = _special_prim("gammaincc", 2)
betainc_p = _special_prim("betainc", 3)
stdtr_p = _special_prim("stdtr", 2)


def gammainc(a, x):
  return gammainc_p.bind(a, x)


def gammaincc(a, x):
  return gammaincc_p.bind(a, x)


def betainc(a, b, x):
  return betainc_p.bind(a, b, x)


def stdtr(df, t):
  return stdtr_p.bind(df, t)


def _gamma_density(a, x):
  """x^(a-1) e^-x / Gamma(a), the x-derivative of gammainc (DLMF 8.2.4, 8.8.13); 0 at
  x = inf (where the exponent would be inf - inf)."""
  infinite = isinf(x)
  xs = ew.select(infinite, _c(1, x), x)
  density = exp(sub(sub(xlogy(sub(a, _c(1, a)), xs), xs), gammaln(a)))
  return ew.select(infinite, _c(0, density), density)


def _beta_density(a, b, x):
  """x^(a-1) (1-x)^(b-1) / B(a, b), the x-derivative of betainc (DLMF 8.17.2)."""
  return exp(sub(add(xlogy(sub(a, _c(1, a)), x), xlog1py(sub(b, _c(1, b)), neg(x))),
                 betaln(a, b)))


# log(Gamma(x + 1/2) / Gamma(x)) - log(x) / 2 for large x: its asymptotic series in 1/x
# (from Stirling's series, DLMF 5.11.1), coefficients of 1/x, 1/x^3, ..., 1/x^17. Used from
# x = 8 on, where it is within 2e-17 (measured against mpmath), while the difference of
# gammaln loses about eps |gammaln(x)| to cancellation (2e-15 at x = 8, 1e-14 at 25).
_HALF_RATIO_SERIES = (-1 / 8, 1 / 192, -1 / 640, 17 / 14336, -31 / 18432, 691 / 180224,
                      -5461 / 425984, 929569 / 15728640, -3202291 / 8912896)
_HALF_RATIO_SERIES_FROM = 8.0


def _log_half_ratio(x):
  """log(Gamma(x + 1/2) / Gamma(x)) - log(x) / 2, which tends to 0 as x grows (0 at inf):
  the difference of gammaln below x = 8, the asymptotic series from there."""
  big = ew.ge(x, _c(_HALF_RATIO_SERIES_FROM, x))
  xd = ew.select(big, _c(1, x), x)
  direct = sub(sub(gammaln(add(xd, _c(0.5, x))), gammaln(xd)), _half(log(xd)))
  y = ew.div(_c(1, x), ew.select(big, x, _c(_HALF_RATIO_SERIES_FROM, x)))
  y2 = mul(y, y)
  series = _c(_HALF_RATIO_SERIES[-1], x)
  for coefficient in _HALF_RATIO_SERIES[-2::-1]:
    series = add(mul(series, y2), _c(coefficient, x))
  return ew.select(big, mul(series, y), direct)


def t_logpdf(df, t):
  """log of Student's t density with df degrees of freedom: log(Gamma((df + 1) / 2) /
  Gamma(df / 2)) - log(df pi) / 2 - (df + 1) / 2 log1p(t^2 / df), written as
  _log_half_ratio(df / 2) - log(2 pi) / 2 - (df + 1) / 2 log1p(t^2 / df), with no
  cancellation for large df; at df = inf the normal log-density -t^2 / 2 - log(2 pi) / 2
  (the limit, as SciPy), whose derivative in df is 0."""
  infinite = isinf(df)
  df_s = ew.select(infinite, _c(1, df), df)
  t2 = mul(t, t)
  decay = ew.select(infinite, _half(t2),
                    mul(_half(add(df_s, _c(1, df))), ew.log1p(ew.div(t2, df_s))))
  return sub(_log_half_ratio(_half(df)), add(decay, _c(0.5 * math.log(2 * math.pi), df)))


def _t_density(df, t):
  """Student's t density with df degrees of freedom, the t-derivative of stdtr."""
  return exp(t_logpdf(df, t))


# d/da of gammainc and gammaincc: the primitive gammainc_grad_a (below).
ad.defjvp(gammainc_p, lambda t, a, x: tmul(t, gammainc_grad_a(a, x)),
          lambda t, a, x: tmul(t, _gamma_density(a, x)))
ad.defjvp(gammaincc_p, lambda t, a, x: tmul(t, neg(gammainc_grad_a(a, x))),
          lambda t, a, x: tmul(t, neg(_gamma_density(a, x))))
# d/da and d/db of betainc: the primitive betainc_grad (below).
ad.defjvp(betainc_p, lambda t, a, b, x: tmul(t, betainc_grad(a, b, x, "a")),
          lambda t, a, b, x: tmul(t, betainc_grad(a, b, x, "b")),
          lambda t, a, b, x: tmul(t, _beta_density(a, b, x)))


def _stdtr_grad_df(df, t):
  """d stdtr / d df. With z = df / (df + t^2), stdtr = 1 - I_z(df/2, 1/2) / 2 for t >= 0 and
  I_z(df/2, 1/2) / 2 below (DLMF 8.17.2's relation to Student's t), so the derivative is
  -+ (dI/da / 4 + dz/ddf x^(a-1) (1-z)^(-1/2) / B(a, 1/2) / 2), where the last product is
  written as z^(a-1) |t| (df + t^2)^(-3/2) / B(a, 1/2): finite, and 0 at t = 0. At t = +-inf
  (stdtr is 0 or 1) and df = inf (stdtr is ndtr) it is 0."""
  flat = logical_or(isinf(t), isinf(df))
  df, t = ew.select(flat, _c(1, df), df), ew.select(flat, _c(1, t), t)
  a, half = _half(df), _c(0.5, df)
  s = add(df, mul(t, t))
  z = ew.div(df, s)
  density_term = mul(exp(sub(xlogy(sub(a, _c(1, a)), z), betaln(a, half))),
                     mul(ew.abs(t), ew.pow(s, _c(-1.5, s))))
  inner = add(mul(betainc_grad(a, half, z, "a"), _c(0.25, df)), _half(density_term))
  grad = mul(inner, ew.select(ew.ge(t, _c(0, t)), _c(-1, df), _c(1, df)))
  return ew.select(flat, _c(0, grad), grad)


ad.defjvp(stdtr_p, lambda t, df, x: tmul(t, _stdtr_grad_df(df, x)),
          lambda t, df, x: tmul(t, _t_density(df, x)))


# ---- the derivatives of betainc in a and b ------------------------------------------------
betainc_grad_p = core.primitive("betainc_grad")


def betainc_grad(a, b, x, wrt):
  """d betainc(a, b, x) / da (wrt="a") or / db (wrt="b")."""
  return betainc_grad_p.bind(a, b, x, wrt=wrt)


@functools.cache
def _legendre():
  """Gauss-Legendre nodes and weights on (0, 1) (built on first use)."""
  nodes, weights = np.polynomial.legendre.leggauss(128)
  return (nodes + 1) / 2, weights / 2


def _betainc_grads_lower(p, q, y):
  # For y <= p / (p + q): with t = y s^(1/p), t^(p-1) dt = y^p / p ds, and s = u^4 smoothing
  # the logarithm at s = 0, d I_y(p, q) / dp = y^p / (p B(p, q)) int_0^1 (1 - t)^(q-1) log t
  # ds - I (digamma(p) - digamma(p + q)), and likewise with log(1 - t) and digamma(q) for q
  # (DLMF 8.17.2). 1 - t >= q / (p + q) there, so the integrand is smooth.
  sc = scipy_special("betainc")
  u, w = _legendre()
  s, ds = u ** 4, 4 * u ** 3 * w
  pc, qc, yc = p[:, None], q[:, None], y[:, None]
  t = yc * s ** (1 / pc)
  base = (1 - t) ** (qc - 1)
  pre = np.exp(p * np.log(y) - np.log(p) - sc.betaln(p, q))
  i, psi_pq = sc.betainc(p, q, y), sc.digamma(p + q)
  d_p = pre * ((base * (np.log(yc) + 4 * np.log(u) / pc)) @ ds) - i * (sc.digamma(p) - psi_pq)
  d_q = pre * ((base * np.log1p(-t)) @ ds) - i * (sc.digamma(q) - psi_pq)
  return d_p, d_q


def _betainc_grad_impl(a, b, x, *, wrt):
  # Gauss-Legendre quadrature (about 1e-8 relative accuracy, measured against mpmath); above
  # x = a / (a + b) through I_x(a, b) = 1 - I_(1-x)(b, a) (DLMF 8.17.4).
  dtype = dtypes.ufunc_result_dtype(betainc_p.impl, *[core.get_aval(v) for v in (a, b, x)])
  a, b, x = np.broadcast_arrays(*[np.asarray(v, np.float64) for v in (a, b, x)])
  out = np.full(a.shape, np.nan)
  with np.errstate(all="ignore"):
    ok = (a > 0) & (b > 0) & (x >= 0) & (x <= 1)
    out[ok & ((x == 0) | (x == 1))] = 0.0
    inner = ok & (x > 0) & (x < 1)
    low = inner & (x <= a / (a + b))
    high = inner & ~low
    if low.any():
      d_a, d_b = _betainc_grads_lower(a[low], b[low], x[low])
      out[low] = d_a if wrt == "a" else d_b
    if high.any():
      d_b, d_a = _betainc_grads_lower(b[high], a[high], 1 - x[high])
      out[high] = -(d_a if wrt == "a" else d_b)
  out = out.astype(dtype)
  return out[()] if out.ndim == 0 else out


def _betainc_grad_abstract_eval(a, b, x, *, wrt):
  if wrt not in ("a", "b"):
    raise ValueError(f"betainc_grad: wrt must be 'a' or 'b', got {wrt!r}")
  return ShapedArray(ew.broadcast_shapes(a.shape, b.shape, x.shape),
                     dtypes.ufunc_result_dtype(betainc_p.impl, a, b, x),
                     dtypes.result_weak_type(a, b, x))


def _betainc_grad_x(t, a, b, x, *, wrt):
  # d/dx dI/da = d/da of the density x^(a-1) (1-x)^(b-1) / B(a, b): the density times
  # log x - digamma(a) + digamma(a + b) (log(1 - x) and digamma(b) for b).
  log_part = log(x) if wrt == "a" else ew.log1p(neg(x))
  psi = digamma(a if wrt == "a" else b)
  return tmul(t, mul(_beta_density(a, b, x), add(sub(log_part, psi), digamma(add(a, b)))))


betainc_grad_p.def_impl(_betainc_grad_impl)
betainc_grad_p.def_abstract_eval(_betainc_grad_abstract_eval)
ad.defjvp(betainc_grad_p,
          _not_implemented("betainc_grad", "a", "a shape parameter, a second time"),
          _not_implemented("betainc_grad", "b", "a shape parameter, a second time"),
          _betainc_grad_x)
batching.defbroadcasting(betainc_grad_p)

# ---- the derivative of gammainc in a ----------------------------------------------------------
gammainc_grad_a_p = core.primitive("gammainc_grad_a")
@functools.cache
def _laguerre():
  """Gauss-Laguerre nodes and weights (built on first use: numpy.polynomial is slow to import)."""
  return np.polynomial.laguerre.laggauss(80)


def gammainc_grad_a(a, x):
  """d gammainc(a, x) / da."""
  return gammainc_grad_a_p.bind(a, x)


def _gammainc_grad_a_impl(a, x):
  # dP/da = sum_n w_n (log x - digamma(a+n+1)) with the Poisson weights
  # w_n = x^(a+n) e^-x / Gamma(a+n+1), whose sum is P (DLMF 8.7.1), over the window of n that
  # holds them, for x <= a + 5 sqrt(a) + 1. Beyond, where that sum cancels, as -dQ/da with
  # dQ/da = e^-x / Gamma(a) int_0^inf e^-u (x+u)^(a-1) (log(x+u) - digamma(a)) du (DLMF 8.2.2)
  # by Gauss-Laguerre quadrature, the exponential rescaled to the integrand's decay rate.
  sc = scipy_special("gammainc")
  dtype = dtypes.ufunc_result_dtype(gammainc_p.impl, core.get_aval(a), core.get_aval(x))
  a, x = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(x, np.float64))
  out = np.full(a.shape, np.nan)
  with np.errstate(all="ignore"):
    ok = (a > 0) & (x >= 0)
    out[ok & ((x == 0) | (x == np.inf))] = 0.0  # P(a, 0) = 0 and P(a, inf) = 1 for all a
    ok &= x < np.inf
    upper = ok & (x > a + 5 * np.sqrt(np.maximum(a, 1)) + 1)
    series = ok & (x > 0) & ~upper
    if upper.any():
      nodes, weights = _laguerre()
      aa, xx = a[upper][:, None], x[upper][:, None]
      rate = 1 - np.maximum(aa - 1, 0) / xx
      u, log_x = nodes / rate, np.log(xx)
      g = np.exp((aa - 1) * np.log1p(u / xx) + nodes - u) * (
          log_x + np.log1p(u / xx) - sc.digamma(aa))
      scale = np.exp(-xx[:, 0] + (aa[:, 0] - 1) * log_x[:, 0] - sc.gammaln(aa[:, 0]))
      out[upper] = -scale / rate[:, 0] * (g @ weights)
    if series.any():
      aa, xx = a[series], x[series]
      width = np.ceil(12 * np.sqrt(xx) + 50)
      z = aa + np.maximum(0.0, np.floor(xx - aa - width)) + 1
      psi, log_x = sc.digamma(z), np.log(xx)
      log_w = (z - 1) * log_x - xx - sc.gammaln(z)
      total = np.zeros_like(xx)
      for _ in range(int(np.max(2 * width + 1))):
        total += np.exp(log_w) * (log_x - psi)
        log_w += log_x - np.log(z)
        psi += 1 / z
        z += 1
      out[series] = total
  out = out.astype(dtype)
  return out[()] if out.ndim == 0 else out


def _gammainc_grad_a_abstract_eval(a, x):
  return ShapedArray(ew.broadcast_shapes(a.shape, x.shape),
                     dtypes.ufunc_result_dtype(gammainc_p.impl, a, x),
                     dtypes.result_weak_type(a, x))


def _gamma_density_times_log(a, x):
  """The gamma density times log x - digamma(a); 0 at x = inf, as the density."""
  infinite = isinf(x)
  xs = ew.select(infinite, _c(1, x), x)
  value = mul(_gamma_density(a, xs), sub(log(xs), digamma(a)))
  return ew.select(infinite, _c(0, value), value)


gammainc_grad_a_p.def_impl(_gammainc_grad_a_impl)
gammainc_grad_a_p.def_abstract_eval(_gammainc_grad_a_abstract_eval)
# d/dx dP/da = d/da x^(a-1) e^-x / Gamma(a) = that density times (log x - digamma(a)).
ad.defjvp(gammainc_grad_a_p, _not_implemented("gammainc_grad_a", "a",
                                              "the shape parameter, a second time"),
          lambda t, a, x: tmul(t, _gamma_density_times_log(a, x)))
batching.defbroadcasting(gammainc_grad_a_p)

# ---- exponential integrals, zeta functions, ndtri_exp, binomial coefficients ---------------
exp1_p = _special_prim("exp1", 1)
expi_p = _special_prim("expi", 1)
zeta_p = _special_prim("zeta", 2)  # Hurwitz's zeta(x, q): SciPy's zeta with q given
riemann_zeta_p = _special_prim("riemann_zeta", 1, "zeta")  # SciPy's zeta(x), q=None
ndtri_exp_p = _special_prim("ndtri_exp", 1)
binom_p = _special_prim("binom", 2)


def exp1(x):
  return exp1_p.bind(x)


def expi(x):
  return expi_p.bind(x)


def zeta(x, q):
  return zeta_p.bind(x, q)


def riemann_zeta(x):
  return riemann_zeta_p.bind(x)


def ndtri_exp(y):
  return ndtri_exp_p.bind(y)


def binom(n, k):
  return binom_p.bind(n, k)


def _zeta_in_x(what):
  def rule(t, *primals):
    raise errors.MissingRuleError(
        f"zeta: the derivative with respect to the exponent x of {what} is not implemented "
        "(it has no closed form in special functions); the derivative in q is "
        "-x zeta(x + 1, q). Hold x fixed: pass it as a constant, or wrap it in "
        "dfdx.stop_gradient.")
  return rule


def _ndtri_exp_jvp(t, ans, y):
  # x = ndtri(e^y): dx/dy = e^y / phi(x) = sqrt(2 pi) exp(y + x^2 / 2), which stays finite
  # far in the left tail (y -> -inf), where e^y and phi(x) both underflow.
  return tmul(t, mul(_c(_SQRT_2PI, ans), exp(add(y, _half_square(ans)))))


def _dlog_binom(n, k, wrt):
  """d log|binom(n, k)| / dn (wrt="n") or / dk: through binom = Gamma(n + 1) /
  (Gamma(k + 1) Gamma(n - k + 1)) (DLMF 26.3.1, 5.2.2)."""
  rest = digamma(add(sub(n, k), _c(1, n)))
  if wrt == "n":
    return sub(digamma(add(n, _c(1, n))), rest)
  return sub(rest, digamma(add(k, _c(1, k))))


# DLMF 6.2.1, 6.2.5: E1'(x) = -e^-x / x, Ei'(x) = e^x / x; 25.11.17: d zeta(x, q) / dq =
# -x zeta(x + 1, q).
ad.defjvp(exp1_p, lambda t, x: tmul(t, neg(ew.div(exp(neg(x)), x))))
ad.defjvp(expi_p, lambda t, x: tmul(t, ew.div(exp(x), x)))
ad.defjvp(zeta_p, _zeta_in_x("Hurwitz's zeta(x, q)"),
          lambda t, x, q: tmul(t, neg(mul(x, zeta(add(x, _c(1, x)), q)))))
ad.defjvp(riemann_zeta_p, _zeta_in_x("Riemann's zeta(x)"))
ad.defjvp2(ndtri_exp_p, _ndtri_exp_jvp)
ad.defjvp2(binom_p, lambda t, ans, n, k: tmul(t, mul(ans, _dlog_binom(n, k, "n"))),
           lambda t, ans, n, k: tmul(t, mul(ans, _dlog_binom(n, k, "k"))))
