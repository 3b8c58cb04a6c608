"""The distributions of `dfdx.scipy.stats`: norm, t, beta, gamma, chi2, expon, uniform, laplace,
logistic, cauchy, lognorm, truncnorm, poisson, binom, bernoulli, dirichlet and
multivariate_normal, with SciPy's method names, argument names and defaults.

Each method is a composition of `dfdx.scipy.special` and `dfdx.numpy`, so it differentiates
in every argument where the special functions do: x, loc, scale and the shape parameters of
the densities to any order; the distribution functions of gamma, chi2, t and beta in a, b
and df to first order (the derivatives of gammainc and betainc in their shape parameters).
SciPy's conventions are kept: results are float64; NaN for invalid parameters (scale <= 0,
a shape parameter out of range) or a NaN argument; -inf log-density outside the support; the
distribution function 0 below and 1 above it. Both sides of every such choice see valid
arguments ("double where"), so derivatives are finite wherever the result is.

norm.logpdf (and pdf), expon, uniform, laplace, logistic, cauchy, lognorm.logpdf (and pdf)
and multivariate_normal need NumPy alone; the others use special functions computed by SciPy.
"""
from __future__ import annotations

import math

import numpy as np

import dfdx.numpy as dnp
from dfdx._src import scipy_special as sps
from dfdx._src.ops import special as special_ops
from dfdx._src.numpy.util import contains_tracer, dtype as dtype_of, shape as shape_of

__all__ = ["norm", "t", "beta", "gamma", "chi2", "poisson", "dirichlet", "multivariate_normal",
           "expon", "uniform", "laplace", "logistic", "cauchy", "lognorm", "truncnorm",
           "bernoulli", "binom"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_QUIET = dict(divide="ignore", invalid="ignore", over="ignore", under="ignore")


class _Distribution:
  """A namespace of functions, like SciPy's distribution objects (not frozen)."""

  def __init__(self, name, doc, **methods):
    self.name, self.__doc__ = name, doc
    for key, fn in methods.items():
      fn.__name__ = fn.__qualname__ = f"{name}.{key}"
      setattr(self, key, fn)

  def __repr__(self):
    return f"<dfdx.scipy.stats.{self.name}>"


def _floats(*xs):
  """The arguments as float64 (or wider) arrays, SciPy's working precision."""
  xs = [dnp.asarray(x) for x in xs]
  dtype = np.result_type(np.float64, *[dtype_of(x) for x in xs])
  if dtype.kind == "c":
    raise TypeError("dfdx.scipy.stats: complex arguments are not supported.")
  return [x if dtype_of(x) == dtype else dnp.asarray(x, dtype) for x in xs]


def _finish(out):
  return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out


def _safe(cond, x, default):
  return dnp.where(cond, x, default)


# ---- location-scale families ----------------------------------------------------------------


class _Family:
  """A continuous location-scale family: the standardized log-density, distribution functions
  and quantile function of z = (x - loc) / scale, the shape parameters' validity, the support
  [lo, hi] and a point inside it (what excluded entries are evaluated at); the support and
  the point may be functions of the shape parameters."""

  def __init__(self, logpdf, cdf=None, logcdf=None, sf=None, logsf=None, ppf=None,
               argcheck=None, support=(-np.inf, np.inf), inside=0.0, defaults=()):
    self.logpdf, self.cdf, self.logcdf, self.sf, self.logsf = logpdf, cdf, logcdf, sf, logsf
    self.ppf, self.argcheck, self.defaults = ppf, argcheck, defaults
    self.support, self.inside = support, inside

  def bounds(self, args):
    return self.support(*args) if callable(self.support) else self.support

  def point_inside(self, args):
    return self.inside(*args) if callable(self.inside) else self.inside

  def parameters(self, args, loc, scale):
    """The parameters as float arrays, invalid ones replaced by valid defaults, and the mask
    of valid ones."""
    loc, scale, *args = _floats(loc, scale, *args)
    valid = scale > 0
    if self.argcheck is not None:
      valid = valid & self.argcheck(*args)
    args = [_safe(valid, a, d) for a, d in zip(args, self.defaults)]
    return args, loc, _safe(valid, scale, 1.0), valid

  def prepare(self, x, args, loc, scale):
    (x,) = _floats(x)
    args, loc, scale, valid = self.parameters(args, loc, scale)
    z = (x - loc) / scale
    bad = ~valid | dnp.isnan(z)
    return z, args, scale, bad

  def evaluate(self, kind, x, args, loc, scale):
    with np.errstate(**_QUIET):
      z, args, scale, bad = self.prepare(x, args, loc, scale)
      lo, hi = self.bounds(args)
      inside = self.point_inside(args)
      if kind in ("logpdf", "pdf"):
        keep = (z >= lo) & (z <= hi)
        value = self.logpdf(_safe(keep, z, inside), *args) - dnp.log(scale)
        out = dnp.where(keep, value, -np.inf)
        out = dnp.exp(out) if kind == "pdf" else out
      else:
        keep = (z > lo) & (z < hi)
        value = getattr(self, kind)(_safe(keep, z, inside), *args)
        below, above = {"cdf": (0.0, 1.0), "logcdf": (-np.inf, 0.0), "sf": (1.0, 0.0),
                        "logsf": (0.0, -np.inf)}[kind]
        out = dnp.where(keep, value, dnp.where(z >= hi, above, below))
      return _finish(dnp.where(bad, np.nan, out))

  def quantile(self, q, args, loc, scale):
    """SciPy's ppf: the support's ends at q = 0 and 1, NaN outside [0, 1]."""
    with np.errstate(**_QUIET):
      (q,) = _floats(q)
      args, loc, scale, valid = self.parameters(args, loc, scale)
      lo, hi = self.bounds(args)
      inner = (q > 0) & (q < 1)
      value = self.ppf(_safe(inner, q, 0.5), *args)
      out = dnp.where(inner, value, dnp.where(q == 0, lo, dnp.where(q == 1, hi, np.nan)))
      return _finish(dnp.where(valid & (loc == loc), out * scale + loc, np.nan))


def _log_distribution(cdf, sf, upper=False):
  """SciPy's generic logcdf (or, with `upper`, logsf): log of the smaller of cdf and sf, else
  log1p of minus the other, which keeps precision in both tails."""
  def fn(z, *args):
    p, q = (sf, cdf) if upper else (cdf, sf)
    p_val, q_val = p(z, *args), q(z, *args)
    small = p_val < 0.5
    return dnp.where(small, dnp.log(_safe(small, p_val, 0.5)),
                     dnp.log1p(-_safe(small, 0.5, q_val)))
  return fn


def _methods(family, nshape, kinds=("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")):
  """SciPy-signature methods f(x, *shape_args, loc=0, scale=1) of a family (and ppf, where
  the family has a quantile function)."""
  def method(kind):
    def fn(x, *args, loc=0, scale=1):
      if len(args) > nshape:  # loc and scale given positionally
        extra = args[nshape:]
        args = args[:nshape]
        loc = extra[0]
        scale = extra[1] if len(extra) > 1 else scale
      if len(args) != nshape:
        raise TypeError(f"missing {nshape - len(args)} required shape argument(s)")
      if kind == "ppf":
        return family.quantile(x, args, loc, scale)
      return family.evaluate(kind, x, args, loc, scale)
    return fn
  kinds = kinds + (("ppf",) if family.ppf is not None else ())
  return {kind: method(kind) for kind in kinds}


# norm: log_ndtr keeps logcdf accurate (and its gradient finite) far into the left tail.
_norm = _Family(lambda z: -0.5 * z * z - _LOG_SQRT_2PI, cdf=sps.ndtr, logcdf=sps.log_ndtr,
                sf=lambda z: sps.ndtr(-z), logsf=lambda z: sps.log_ndtr(-z))


def _norm_quantile(sign):
  def fn(q, loc=0, scale=1):
    q, loc, scale = _floats(q, loc, scale)
    with np.errstate(**_QUIET):
      valid = scale > 0
      out = loc + sign * _safe(valid, scale, 1.0) * sps.ndtri(q)  # isf(q) = -ppf(q), exactly
      return _finish(dnp.where(valid, out, np.nan))
  return fn


norm = _Distribution(
    "norm", """The normal distribution: logpdf, pdf, cdf, logcdf, sf, logsf, ppf, isf with
    arguments (x, loc=0, scale=1). logpdf and pdf need no SciPy; logcdf and logsf use log_ndtr,
    accurate (with finite derivatives) in the far tails.""",
    **_methods(_norm, 0), ppf=_norm_quantile(1), isf=_norm_quantile(-1))


def _t_logpdf(z, df):
  # SciPy's t._logpdf: log Gamma((df+1)/2) - log Gamma(df/2) - log(df pi)/2
  # - (df+1)/2 log1p(z^2/df), with the normal log-density at df = inf; computed with no
  # cancellation of the gammaln for large df (see special_ops.t_logpdf).
  return special_ops.t_logpdf(df, z)


def _t_cdf(z, df):
  return sps.stdtr(df, z)


def _t_sf(z, df):
  return sps.stdtr(df, -z)


_t = _Family(_t_logpdf, cdf=_t_cdf, logcdf=_log_distribution(_t_cdf, _t_sf), sf=_t_sf,
             logsf=_log_distribution(_t_cdf, _t_sf, upper=True), argcheck=lambda df: df > 0,
             defaults=(1.0,))
t = _Distribution("t", """Student's t distribution: logpdf, pdf, cdf, logcdf, sf, logsf with
arguments (x, df, loc=0, scale=1); df = inf is the normal distribution (as in SciPy). The
density is differentiable in every argument, accurate for large df too; the distribution
functions in x, loc and scale, and in df to first order.""", **_methods(_t, 1))


def _beta_logpdf(z, a, b):
  return sps.xlog1py(b - 1.0, -z) + sps.xlogy(a - 1.0, z) - sps.betaln(a, b)


def _beta_cdf(z, a, b):
  return sps.betainc(a, b, z)


def _beta_sf(z, a, b):
  return sps.betainc(b, a, 1 - z)  # betaincc(a, b, z) (DLMF 8.17.4)


_beta = _Family(_beta_logpdf, cdf=_beta_cdf, logcdf=_log_distribution(_beta_cdf, _beta_sf),
                sf=_beta_sf, logsf=_log_distribution(_beta_cdf, _beta_sf, upper=True),
                argcheck=lambda a, b: (a > 0) & (b > 0), support=(0.0, 1.0), inside=0.5,
                defaults=(1.0, 1.0))
beta = _Distribution("beta", """The beta distribution: logpdf, pdf, cdf, logcdf, sf, logsf
with arguments (x, a, b, loc=0, scale=1). The distribution functions are differentiable in x,
loc and scale (not in a, b).""", **_methods(_beta, 2))


def _gamma_logpdf(z, a):
  return sps.xlogy(a - 1.0, z) - z - sps.gammaln(a)


def _gamma_cdf(z, a):
  return sps.gammainc(a, z)


def _gamma_sf(z, a):
  return sps.gammaincc(a, z)


_gamma = _Family(_gamma_logpdf, cdf=_gamma_cdf, logcdf=_log_distribution(_gamma_cdf, _gamma_sf),
                 sf=_gamma_sf, logsf=_log_distribution(_gamma_cdf, _gamma_sf, upper=True),
                 argcheck=lambda a: a > 0, support=(0.0, np.inf), inside=1.0, defaults=(1.0,))
gamma = _Distribution("gamma", """The gamma distribution: logpdf, pdf, cdf, logcdf, sf, logsf
with arguments (x, a, loc=0, scale=1). The distribution functions are differentiable in a to
first order only.""", **_methods(_gamma, 1))


def _chi2_logpdf(z, df):
  return sps.xlogy(df / 2 - 1, z) - z / 2 - sps.gammaln(df / 2) - math.log(2) * df / 2


def _chi2_cdf(z, df):
  return sps.gammainc(df / 2, z / 2)


def _chi2_sf(z, df):
  return sps.gammaincc(df / 2, z / 2)


_chi2 = _Family(_chi2_logpdf, cdf=_chi2_cdf, logcdf=_log_distribution(_chi2_cdf, _chi2_sf),
                sf=_chi2_sf, logsf=_log_distribution(_chi2_cdf, _chi2_sf, upper=True),
                argcheck=lambda df: df > 0, support=(0.0, np.inf), inside=1.0, defaults=(1.0,))
chi2 = _Distribution("chi2", """The chi-squared distribution: logpdf, pdf, cdf, logcdf, sf,
logsf with arguments (x, df, loc=0, scale=1). The distribution functions are differentiable in
df to first order only.""", **_methods(_chi2, 1))


# ---- expon, uniform, laplace, logistic, cauchy, lognorm, truncnorm -----------------------------
_LOG_2 = math.log(2)
_LOG_PI = math.log(math.pi)


def _expon_logcdf(z):
  # log(1 - e^-z): log(-expm1(-z)) up to log 2, log1p(-e^-z) beyond (accurate for both)
  far = z > _LOG_2
  return dnp.where(far, dnp.log1p(-dnp.exp(-_safe(far, z, 1.0))),
                   dnp.log(-dnp.expm1(-_safe(far, 0.5, z))))


_expon = _Family(lambda z: -z, cdf=lambda z: -dnp.expm1(-z), logcdf=_expon_logcdf,
                 sf=lambda z: dnp.exp(-z), logsf=lambda z: -z, ppf=lambda q: -dnp.log1p(-q),
                 support=(0.0, np.inf), inside=1.0)
expon = _Distribution("expon", """The exponential distribution: logpdf, pdf, cdf, logcdf, sf,
logsf, ppf with arguments (x, loc=0, scale=1), scale the mean. Needs no SciPy.""",
                      **_methods(_expon, 0))

_uniform = _Family(lambda z: dnp.zeros_like(z), cdf=lambda z: z, logcdf=dnp.log,
                   sf=lambda z: 1 - z, logsf=lambda z: dnp.log1p(-z), ppf=lambda q: q,
                   support=(0.0, 1.0), inside=0.5)
uniform = _Distribution("uniform", """The uniform distribution on [loc, loc + scale]: logpdf,
pdf, cdf, logcdf, sf, logsf, ppf with arguments (x, loc=0, scale=1). The density is
differentiable in scale, the distribution functions in x, loc and scale inside the interval.
Needs no SciPy.""", **_methods(_uniform, 0))


def _laplace_logcdf(z):
  # log(1 - exp(-z) / 2) above 0, log(exp(z) / 2) = z - log 2 below (no underflow)
  right = z > 0
  zr = _safe(right, z, 1.0)
  return dnp.where(right, dnp.log1p(-0.5 * dnp.exp(-zr)), _safe(right, 0.0, z) - _LOG_2)


def _laplace_cdf(z):
  right = z > 0
  return dnp.where(right, 1.0 - 0.5 * dnp.exp(-_safe(right, z, 0.0)),
                   0.5 * dnp.exp(_safe(right, 0.0, z)))


_laplace = _Family(lambda z: -dnp.abs(z) - _LOG_2, cdf=_laplace_cdf, logcdf=_laplace_logcdf,
                   sf=lambda z: _laplace_cdf(-z), logsf=lambda z: _laplace_logcdf(-z),
                   ppf=lambda q: dnp.where(q > 0.5, -dnp.log(2 * (1 - q)), dnp.log(2 * q)))
laplace = _Distribution("laplace", """The Laplace (double exponential) distribution: logpdf,
pdf, cdf, logcdf, sf, logsf, ppf with arguments (x, loc=0, scale=1); logcdf and logsf are
exact in both tails. Needs no SciPy.""", **_methods(_laplace, 0))


def _logistic_logpdf(z):
  y = -dnp.abs(z)
  return y - 2.0 * dnp.log1p(dnp.exp(y))


_logistic = _Family(_logistic_logpdf, cdf=sps.expit, logcdf=sps.log_expit,
                    sf=lambda z: sps.expit(-z), logsf=lambda z: sps.log_expit(-z),
                    ppf=sps.logit)
logistic = _Distribution("logistic", """The logistic distribution: logpdf, pdf, cdf, logcdf,
sf, logsf, ppf with arguments (x, loc=0, scale=1), written with expit, log_expit and logit
(exact in both tails). Needs no SciPy.""", **_methods(_logistic, 0))


def _cauchy_logpdf(z):
  # SciPy's two forms: log1p(z^2) below |z| = 1, 2 log|z| + log1p(1 / z^2) above (no overflow)
  a = dnp.abs(z)
  small = a < 1
  a_small, a_large = _safe(small, a, 0.0), _safe(small, 1.0, a)
  return dnp.where(small, -_LOG_PI - dnp.log1p(a_small * a_small),
                   -_LOG_PI - (2 * dnp.log(a_large) + dnp.log1p((1 / a_large) ** 2)))


def _cauchy_ppf(q):
  # tan(pi (q - 1/2)) as -1 / tan(pi p) with p = q or q - 1 (whichever is within 1/2 of 0),
  # exact in both tails; at q = 1/2, 0 (written so that its derivative, pi, is kept).
  p = dnp.where(q > 0.5, q - 1, q)
  half = q == 0.5
  return dnp.where(half, np.pi * (q - 0.5), -1 / dnp.tan(np.pi * _safe(half, 0.25, p)))


def _cauchy_cdf(z):
  return dnp.arctan2(1.0, -z) / np.pi


def _cauchy_sf(z):
  return dnp.arctan2(1.0, z) / np.pi


_cauchy = _Family(_cauchy_logpdf, cdf=_cauchy_cdf, logcdf=lambda z: dnp.log(_cauchy_cdf(z)),
                  sf=_cauchy_sf, logsf=lambda z: dnp.log(_cauchy_sf(z)), ppf=_cauchy_ppf)
cauchy = _Distribution("cauchy", """The Cauchy distribution: logpdf, pdf, cdf, logcdf, sf,
logsf, ppf with arguments (x, loc=0, scale=1). Needs no SciPy.""", **_methods(_cauchy, 0))


def _lognorm_logpdf(z, s):
  positive = z > 0
  zs = _safe(positive, z, 1.0)
  value = -dnp.log(zs) ** 2 / (2 * s ** 2) - dnp.log(s * zs * math.sqrt(2 * math.pi))
  return dnp.where(positive, value, -np.inf)


_lognorm = _Family(_lognorm_logpdf, cdf=lambda z, s: sps.ndtr(dnp.log(z) / s),
                   logcdf=lambda z, s: sps.log_ndtr(dnp.log(z) / s),
                   sf=lambda z, s: sps.ndtr(-dnp.log(z) / s),
                   logsf=lambda z, s: sps.log_ndtr(-dnp.log(z) / s),
                   ppf=lambda q, s: dnp.exp(s * sps.ndtri(q)), argcheck=lambda s: s > 0,
                   support=(0.0, np.inf), inside=1.0, defaults=(1.0,))
lognorm = _Distribution("lognorm", """The log-normal distribution: logpdf, pdf, cdf, logcdf,
sf, logsf, ppf with arguments (x, s, loc=0, scale=1) (log(x - loc) is normal with mean
log(scale) and standard deviation s); differentiable in x, s, loc and scale. logpdf and pdf
need no SciPy.""", **_methods(_lognorm, 1))


def _log_ndtr_of(x):
  """log_ndtr(x), whose derivative at x = -inf is 0 rather than 0 * inf."""
  at_minus_inf = x == -np.inf
  return dnp.where(at_minus_inf, -np.inf, sps.log_ndtr(_safe(at_minus_inf, 0.0, x)))


def _log_mass_left(a, b):
  """log(Phi(b) - Phi(a)) for a < b <= 0, from the log-probabilities (no cancellation)."""
  log_b = _log_ndtr_of(b)
  return log_b + dnp.log1p(-dnp.exp(_log_ndtr_of(a) - log_b))


def _log_gauss_mass(a, b):
  """SciPy's log of the standard normal probability of [a, b], a < b: from the left tail
  where b <= 0, by symmetry where a > 0, as log1p(-Phi(a) - Phi(-b)) in between."""
  left, right = b <= 0, a > 0
  central = ~(left | right)
  out = dnp.where(left, _log_mass_left(_safe(left, a, -2.0), _safe(left, b, -1.0)),
                  _log_mass_left(-_safe(right, b, 2.0), -_safe(right, a, 1.0)))
  a_c, b_c = _safe(central, a, -1.0), _safe(central, b, 1.0)
  return dnp.where(central, dnp.log1p(-sps.ndtr(a_c) - sps.ndtr(-b_c)), out)


def _truncnorm_logcdf(z, a, b):
  log_mass = _log_gauss_mass(a, b)
  logcdf = _log_gauss_mass(a, z) - log_mass
  logsf = _log_gauss_mass(z, b) - log_mass
  # SciPy's switch to the complement where the result is near 0 (no cancellation)
  return dnp.where(logcdf > -0.1, dnp.log1p(-dnp.exp(logsf)), logcdf)


def _truncnorm_logsf(z, a, b):
  return _truncnorm_logcdf(-z, -b, -a)


def _truncnorm_ppf(q, a, b):
  # SciPy's: Phi(x) = Phi(a) + q mass (in logs) for a < 0, else 1 - Phi(x) = Phi(-b) +
  # (1 - q) mass, each inverted by ndtri_exp (accurate far in the tails)
  left = a < 0
  log_mass = _log_gauss_mass(a, b)
  x_left = sps.ndtri_exp(dnp.logaddexp(_log_ndtr_of(a), dnp.log(q) + log_mass))
  x_right = -sps.ndtri_exp(dnp.logaddexp(_log_ndtr_of(-b), dnp.log1p(-q) + log_mass))
  return dnp.where(left, x_left, x_right)


def _truncnorm_inside(a, b):
  """A point strictly inside [a, b] (the middle, or 1 from the finite end)."""
  fa, fb = dnp.isfinite(a), dnp.isfinite(b)
  middle = (_safe(fa, a, 0.0) + _safe(fb, b, 0.0)) / 2
  return dnp.where(fa & fb, middle, dnp.where(fa, _safe(fa, a, 0.0) + 1,
                                              dnp.where(fb, _safe(fb, b, 0.0) - 1, 0.0)))


_truncnorm = _Family(
    lambda z, a, b: -0.5 * z * z - _LOG_SQRT_2PI - _log_gauss_mass(a, b),
    cdf=lambda z, a, b: dnp.exp(_truncnorm_logcdf(z, a, b)), logcdf=_truncnorm_logcdf,
    sf=lambda z, a, b: dnp.exp(_truncnorm_logsf(z, a, b)), logsf=_truncnorm_logsf,
    ppf=_truncnorm_ppf, argcheck=lambda a, b: a < b, support=lambda a, b: (a, b),
    inside=_truncnorm_inside, defaults=(-1.0, 1.0))
truncnorm = _Distribution("truncnorm", """The truncated normal distribution: logpdf, pdf, cdf,
logcdf, sf, logsf, ppf with arguments (x, a, b, loc=0, scale=1), a and b the standardized
ends ((lower - loc) / scale, SciPy's convention), either of them infinite. Computed in logs as
SciPy does (accurate far in the tails); differentiable in x, a, b, loc and scale, with finite
derivatives at infinite ends.""", **_methods(_truncnorm, 2))


# ---- poisson ----------------------------------------------------------------------------------


def _poisson_prepare(k, mu, loc):
  k, mu, loc = _floats(k, mu, loc)
  k = k - loc
  valid = mu >= 0
  return k, _safe(valid, mu, 1.0), ~valid | dnp.isnan(k)


def _poisson_logpmf(k, mu, loc=0):
  with np.errstate(**_QUIET):
    k, mu, bad = _poisson_prepare(k, mu, loc)
    keep = (k >= 0) & (dnp.floor(k) == k)
    ks = _safe(keep, k, 0.0)
    out = dnp.where(keep, sps.xlogy(ks, mu) - sps.gammaln(ks + 1) - mu, -np.inf)
    return _finish(dnp.where(bad, np.nan, out))


def _poisson_pmf(k, mu, loc=0):
  # exp(logpmf), except at mu = 0, where the pmf of k >= 1 is 0 (log-pmf -inf) but its
  # derivative is not (1 for k = 1): there mu^k e^-mu / k! itself (pow's derivative is exact
  # at 0).
  with np.errstate(**_QUIET):
    k, mu, bad = _poisson_prepare(k, mu, loc)
    keep = (k >= 0) & (dnp.floor(k) == k)
    ks = _safe(keep, k, 0.0)
    edge = mu == 0
    mi, me = _safe(edge, 1.0, mu), _safe(edge, mu, 1.0)  # each form sees safe values
    log_factorial = sps.gammaln(ks + 1)
    value = dnp.where(edge, me ** ks * dnp.exp(-me - log_factorial),
                      dnp.exp(sps.xlogy(ks, mi) - log_factorial - mi))
    return _finish(dnp.where(bad, np.nan, dnp.where(keep, value, 0.0)))


def _poisson_distribution(kind):
  def fn(k, mu, loc=0):
    with np.errstate(**_QUIET):
      k, mu, bad = _poisson_prepare(k, mu, loc)
      k = dnp.floor(k)
      keep = (k >= 0) & (k < np.inf)
      ks = _safe(keep, k, 0.0)
      # P(K <= k) = Q(k + 1, mu) (DLMF 8.4.10)
      value = sps.gammaincc(ks + 1, mu) if kind in ("cdf", "logcdf") else sps.gammainc(ks + 1, mu)
      if kind.startswith("log"):
        value = dnp.log(value)
      below, above = {"cdf": (0.0, 1.0), "logcdf": (-np.inf, 0.0), "sf": (1.0, 0.0),
                      "logsf": (0.0, -np.inf)}[kind]
      out = dnp.where(keep, value, dnp.where(k >= np.inf, above, below))
      return _finish(dnp.where(bad, np.nan, out))
  return fn


poisson = _Distribution(
    "poisson", """The Poisson distribution: logpmf, pmf, cdf, logcdf, sf, logsf with arguments
    (k, mu, loc=0); differentiable in mu (and loc, where it moves no integer boundary).""",
    logpmf=_poisson_logpmf, pmf=_poisson_pmf, cdf=_poisson_distribution("cdf"),
    logcdf=_poisson_distribution("logcdf"), sf=_poisson_distribution("sf"),
    logsf=_poisson_distribution("logsf"))


# ---- binom and bernoulli -------------------------------------------------------------------


def _binom_prepare(k, n, p, loc):
  k, n, p, loc = _floats(k, n, p, loc)
  valid = (n >= 0) & (dnp.mod(n, 1) == 0) & (p >= 0) & (p <= 1)
  k = k - loc
  return k, _safe(valid, n, 1.0), _safe(valid, p, 0.5), ~valid | dnp.isnan(k)


def _binom_parts(k, n, p, loc):
  """(k in the support or 0, n, p, whether k is in the support, whether the result is NaN,
  log C(n, k))."""
  k, n, p, bad = _binom_prepare(k, n, p, loc)
  keep = (k >= 0) & (k <= n) & (dnp.floor(k) == k)
  ks = _safe(keep, k, 0.0)
  combiln = sps.gammaln(n + 1) - (sps.gammaln(ks + 1) + sps.gammaln(n - ks + 1))
  return ks, n, p, keep, bad, combiln


def _binom_logpmf(k, n, p, loc=0):
  with np.errstate(**_QUIET):
    ks, n, p, keep, bad, combiln = _binom_parts(k, n, p, loc)
    # SciPy's binom._logpmf: log C(n, k) + k log p + (n - k) log(1 - p)
    value = combiln + sps.xlogy(ks, p) + sps.xlog1py(n - ks, -p)
    return _finish(dnp.where(bad, np.nan, dnp.where(keep, value, -np.inf)))


def _binom_pmf(k, n, p, loc=0):
  # exp(logpmf), except at p = 0 and 1: there the pmf may be 0 (log-pmf -inf), and its
  # derivative, C(n, k) (k p^(k-1) (1-p)^(n-k) - (n-k) p^k (1-p)^(n-k-1)), is not (k = 1 at
  # p = 0: n), so it is C(n, k) p^k (1-p)^(n-k) itself (pow's derivative is exact at 0).
  with np.errstate(**_QUIET):
    ks, n, p, keep, bad, combiln = _binom_parts(k, n, p, loc)
    edge = (p == 0) | (p == 1)
    pi, pe = _safe(edge, 0.5, p), _safe(edge, p, 0.5)  # each form sees safe values
    value = dnp.where(edge, dnp.exp(combiln) * pe ** ks * (1 - pe) ** (n - ks),
                      dnp.exp(combiln + sps.xlogy(ks, pi) + sps.xlog1py(n - ks, -pi)))
    return _finish(dnp.where(bad, np.nan, dnp.where(keep, value, 0.0)))


def _binom_distribution(kind):
  def fn(k, n, p, loc=0):
    with np.errstate(**_QUIET):
      k, n, p, bad = _binom_prepare(k, n, p, loc)
      inside = (k >= 0) & (k < n)
      ks = dnp.floor(_safe(inside, k, 0.0))
      # outside (0 <= k < n), where the result is constant, betainc sees valid shape
      # parameters and p = 1/2: no NaN derivative (betainc(0, 1, .)) leaks into the result's
      ni, pi = _safe(inside, n, 1.0), _safe(inside, p, 0.5)
      # P(K <= k) = I_(1-p)(n - k, k + 1), P(K > k) = I_p(k + 1, n - k) (DLMF 8.17.5)
      if kind in ("cdf", "logcdf"):
        value = sps.betainc(ni - ks, ks + 1, 1 - pi)
      else:
        value = sps.betainc(ks + 1, ni - ks, pi)
      if kind.startswith("log"):
        value = dnp.log(value)
      below, above = {"cdf": (0.0, 1.0), "logcdf": (-np.inf, 0.0), "sf": (1.0, 0.0),
                      "logsf": (0.0, -np.inf)}[kind]
      out = dnp.where(inside, value, dnp.where(k >= n, above, below))
      return _finish(dnp.where(bad, np.nan, out))
  return fn


_BINOM_METHODS = dict(logpmf=_binom_logpmf, pmf=_binom_pmf, cdf=_binom_distribution("cdf"),
                      logcdf=_binom_distribution("logcdf"), sf=_binom_distribution("sf"),
                      logsf=_binom_distribution("logsf"))
binom = _Distribution(
    "binom", """The binomial distribution: logpmf, pmf, cdf, logcdf, sf, logsf with arguments
    (k, n, p, loc=0); n a non-negative integer (NaN otherwise, as in SciPy). Differentiable in
    p (the distribution functions through betainc's derivative in x).""", **_BINOM_METHODS)


def _bernoulli(method):
  def fn(k, p, loc=0):
    return method(k, 1.0, p, loc)
  return fn


bernoulli = _Distribution(
    "bernoulli", """The Bernoulli distribution: logpmf, pmf, cdf, logcdf, sf, logsf with
    arguments (k, p, loc=0) (binom with n = 1); differentiable in p.""",
    **{key: _bernoulli(method) for key, method in _BINOM_METHODS.items()})


# ---- dirichlet --------------------------------------------------------------------------------


def _squeeze(out):
  out = dnp.squeeze(out)
  return _finish(out)


def _dirichlet_logpdf(x, alpha):
  alpha, x = _floats(alpha, x)
  if len(shape_of(alpha)) != 1:
    raise ValueError("Parameter vector 'a' must be one dimensional, but a.shape = "
                     f"{shape_of(alpha)}.")
  concrete = not contains_tracer([x, alpha])
  if concrete and np.min(alpha) <= 0:
    raise ValueError("All parameters must be greater than 0")
  k = shape_of(alpha)[0]
  if shape_of(x)[0] not in (k, k - 1):
    raise ValueError("Vector 'x' must have either the same number of entries as, or one "
                     f"entry fewer than, parameter vector 'a', but alpha.shape = "
                     f"{shape_of(alpha)} and x.shape = {shape_of(x)}.")
  if shape_of(x)[0] == k - 1:
    x = dnp.concatenate([x, (1 - dnp.sum(x, 0))[None]], axis=0)
  if concrete:
    _dirichlet_check_values(np.asarray(x), np.asarray(alpha))
  a = dnp.reshape(alpha, (k,) + (1,) * (len(shape_of(x)) - 1))
  with np.errstate(**_QUIET):
    log_b = dnp.sum(sps.gammaln(alpha)) - sps.gammaln(dnp.sum(alpha))
    return _squeeze(dnp.sum(sps.xlogy(a - 1, x), 0) - log_b)


def _dirichlet_check_values(x, alpha):
  # SciPy's checks of the quantiles, with its messages.
  if np.min(x) < 0:
    raise ValueError("Each entry in 'x' must be greater than or equal to zero.")
  if np.max(x) > 1:
    raise ValueError("Each entry in 'x' must be smaller or equal one.")
  alpha_lt1 = np.reshape(alpha < 1, (-1,) + (1,) * (x.ndim - 1))
  if np.any((x == 0) & alpha_lt1):
    raise ValueError("Each entry in 'x' must be greater than zero if its alpha is less than "
                     "one.")
  if np.any(np.abs(np.sum(x, 0) - 1.0) > 10e-10):
    raise ValueError("The input vector 'x' must lie within the normal simplex. but "
                     f"np.sum(x, 0) = {np.sum(x, 0)}.")


def _dirichlet_pdf(x, alpha):
  return _finish(dnp.exp(_dirichlet_logpdf(x, alpha)))


dirichlet = _Distribution(
    "dirichlet", """The Dirichlet distribution: logpdf(x, alpha), pdf(x, alpha); x holds the
    components along its first axis (K or K - 1 of them, SciPy's convention); differentiable
    in x and alpha (SciPy's value checks run on concrete values only).""",
    logpdf=_dirichlet_logpdf, pdf=_dirichlet_pdf)


# ---- multivariate_normal ----------------------------------------------------------------------


def _mvn_parameters(mean, cov):
  """SciPy's processing of (mean, cov): dim, mean (dim,), cov (dim, dim)."""
  if mean is None:
    cov = _floats(1.0 if cov is None else cov)[0]
    dim = 1 if len(shape_of(cov)) < 2 else shape_of(cov)[0]
    mean = np.zeros(dim)
  mean, cov = _floats(mean, 1.0 if cov is None else cov)
  dim = int(np.prod(shape_of(mean)))
  if dim == 1:
    mean, cov = dnp.reshape(mean, (1,)), dnp.reshape(cov, (1, 1))
  if len(shape_of(mean)) != 1 or shape_of(mean)[0] != dim:
    raise ValueError(f"Array 'mean' must be a vector of length {dim}.")
  if len(shape_of(cov)) == 0:
    cov = cov * np.eye(dim)
  elif len(shape_of(cov)) == 1:
    cov = dnp.diag(cov)
  elif len(shape_of(cov)) == 2 and shape_of(cov) != (dim, dim):
    rows, cols = shape_of(cov)
    if rows != cols:
      raise ValueError("Array 'cov' must be square if it is two dimensional, but cov.shape = "
                       f"{shape_of(cov)}.")
    raise ValueError(f"Dimension mismatch: array 'cov' is of shape {shape_of(cov)}, but "
                     f"'mean' is a vector of length {dim}.")
  elif len(shape_of(cov)) > 2:
    raise ValueError(f"Array 'cov' must be at most two-dimensional, but cov.ndim = "
                     f"{len(shape_of(cov))}")
  return dim, mean, cov


def _mvn_logpdf(x, mean=None, cov=1, allow_singular=False):
  dim, mean, cov = _mvn_parameters(mean, cov)
  x = _floats(x)[0]
  if len(shape_of(x)) == 0:
    x = x[None]
  elif len(shape_of(x)) == 1:
    x = x[:, None] if dim == 1 else x[None, :]
  chol = dnp.linalg.cholesky(cov)
  # (x - mean) C^-1 (x - mean)^T = |L^-1 (x - mean)^T|^2 with C = L L^T; log det C = 2 sum log L_ii
  dev = dnp.reshape(x - mean, (-1, dim))
  from dfdx._src.scipy_linalg import solve_triangular
  white = solve_triangular(chol, dnp.swapaxes(dev, 0, 1), lower=True)
  maha = dnp.sum(white * white, axis=0)
  log_det = 2 * dnp.sum(dnp.log(dnp.diagonal(chol)))
  out = -0.5 * (dim * math.log(2 * math.pi) + log_det + maha)
  return _squeeze(dnp.reshape(out, shape_of(x)[:-1]))


def _mvn_pdf(x, mean=None, cov=1, allow_singular=False):
  return _finish(dnp.exp(_mvn_logpdf(x, mean, cov, allow_singular)))


multivariate_normal = _Distribution(
    "multivariate_normal", """The multivariate normal distribution: logpdf and pdf with
    arguments (x, mean=None, cov=1, allow_singular=False), SciPy's argument processing (x's
    last axis holds the components; cov a scalar, a diagonal or a matrix). Computed with the
    Cholesky factor of cov, so cov must be positive definite (allow_singular is accepted but a
    singular cov is not supported); differentiable in x, mean and cov. Needs no SciPy.""",
    logpdf=_mvn_logpdf, pdf=_mvn_pdf)
