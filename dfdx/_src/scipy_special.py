"""The functions of `dfdx.scipy.special`.

logsumexp, softmax, log_softmax, expit, log_expit, logit, xlogy, xlog1py, entr, rel_entr and
kl_div are written with `dfdx.numpy`, so with no traced argument they run on NumPy alone and
give SciPy's results and dtypes (SciPy is never imported for them), and with traced arguments
they differentiate and batch.
They use the stable forms: logits are shifted by their maximum, so nothing overflows, and
every division or logarithm that a `where` discards sees a safe argument, so its derivative is
finite too ("double where"). The shift carries a derivative, but the results do not depend on
it, so its contributions cancel exactly, ties included.

The other functions (erf, gamma, Bessel functions, zeta, exp1, ...) bind the primitives of
`dfdx._src.ops.special`, whose impls are SciPy's ufuncs: with no traced argument they call
SciPy directly (SciPy's values, dtypes, warnings and errors); traced, the operands are cast to
the dtype of the loop SciPy runs and the primitive is bound. They need SciPy at runtime (the
`scipy` extra); a missing SciPy raises an ImportError naming `pip install dfdx[scipy]`.

This module holds no derivative rules.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

import dfdx.numpy as dnp
from dfdx._src import core, dtypes, errors
from dfdx._src.core import Tracer
from dfdx._src.ops import checks
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import special as sp
from dfdx._src.numpy.util import contains_tracer, dtype as dtype_of, shape as shape_of

__all__ = [
    "logsumexp", "softmax", "log_softmax", "expit", "logit", "xlogy", "xlog1py",
    "erf", "erfc", "erfinv", "erfcinv", "erfcx", "ndtr", "log_ndtr", "ndtri",
    "gamma", "gammaln", "rgamma", "digamma", "psi", "polygamma", "beta", "betaln",
    "multigammaln", "gammainc", "gammaincc", "betainc", "stdtr",
    "j0", "j1", "jv", "jn", "y0", "y1", "yv", "yn", "i0", "i1", "i0e", "i1e", "iv", "ive",
    "k0", "k1", "k0e", "k1e", "kv", "kve",
    "log_expit", "entr", "rel_entr", "kl_div", "loggamma", "zeta", "exp1", "expi", "ndtri_exp",
    "binom", "factorial",
]

_QUIET = dict(divide="ignore", invalid="ignore", over="ignore")


def _traced(*xs) -> bool:
  return any(contains_tracer(x) for x in xs)


def _float_dtype(*dtypes):
  dtype = np.result_type(*dtypes)
  if dtype.kind == "c":
    raise TypeError(f"dfdx.scipy.special: complex inputs ({dtype}) are not supported; pass "
                    "real arrays.")
  return dtype if dtype.kind == "f" else np.dtype(np.float64)


_LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.longdouble))


def _ufunc_dtype(x):
  """The result dtype of SciPy's ufuncs (loops float32, float64, longdouble)."""
  dtype = dtype_of(x)
  return dtype if dtype in _LOOP_DTYPES else np.dtype(np.float64)


def _scalar(x):
  """NumPy's way with 0-d results: a scalar, unless traced."""
  return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


# ---- logsumexp ----------------------------------------------------------------------------


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
  """Differentiable `scipy.special.logsumexp`: log(sum(b * exp(a))) over `axis`, computed
  stably.

  Args:
    a: the exponents.
    axis: None (all axes), an int or a tuple of ints.
    b: optional weights, broadcast against `a`; they may be negative, and are differentiable.
      Entries with zero weight are ignored, even infinite or NaN ones (their derivative with
      respect to `b` is then zero where `a` is above the maximum of the other entries).
    keepdims: keep the reduced axes with size one.
    return_sign: return `(log(abs(sum)), sign(sum))` instead of NaN for a negative sum.

  Ties and -inf entries give finite derivatives (the gradient is `softmax`).

  >>> float(logsumexp(np.array([1000.0, 1000.0])))
  1000.6931471805599
  """
  a = dnp.asarray(a)
  dtype = _float_dtype(dtype_of(a), *([] if b is None else [dtype_of(dnp.asarray(b))]))
  a = dnp.atleast_1d(dnp.asarray(a, dtype))
  if b is not None:
    a, b = dnp.broadcast_arrays(a, dnp.atleast_1d(dnp.asarray(b, dtype)))
  axes = normalize_axis_tuple(tuple(range(a.ndim)) if axis is None else axis, a.ndim)
  if a.size == 0:
    shape = tuple(1 if i in axes else d for i, d in enumerate(shape_of(a)))
    out = np.full(shape, -np.inf, dtype)
    sign = np.sign(out)
  else:
    with np.errstate(**_QUIET):
      out, sign = _logsumexp(a, b, axes)
    if not return_sign:
      out = dnp.where(sign < 0, np.nan, out)
  if not keepdims:
    out, sign = dnp.squeeze(out, axes), dnp.squeeze(sign, axes)
  return (_scalar(out), _scalar(sign)) if return_sign else _scalar(out)


def _stop_gradient(x):
  return ew.stop_gradient(x) if isinstance(x, Tracer) else x


def _logsumexp(a, b, axes):
  """log|sum(b * exp(a))| and its sign over `axes` (kept), for a nonempty `a`."""
  kept = dict(axis=axes, keepdims=True)
  ignored = None if b is None else b == 0
  a_seen = a if b is None else dnp.where(ignored, -np.inf, a)
  a_max = dnp.max(a_seen, **kept)
  # The result does not depend on the shift, so its derivative is not taken (the gradient is
  # softmax either way; this leaves the maximum's tie-splitting rule out of the derivative).
  shift = _stop_gradient(dnp.where(dnp.isfinite(a_max), a_max, 0))
  if b is not None:
    # Ignored entries above the maximum would overflow: drop them (with SciPy); the others
    # stay, so that the derivative in b is exp(a - result) there too.
    a = dnp.where(ignored & ~(a <= a_max), -np.inf, a)
  terms = dnp.exp(a - shift) if b is None else b * dnp.exp(a - shift)
  at_max = a_seen == a_max
  # The largest terms are summed apart, so that log1p keeps the small rest exactly (SciPy).
  big = dnp.sum(dnp.where(at_max, terms, 0), **kept)
  rest = dnp.sum(dnp.where(at_max, 0, terms), **kept)
  total = big + rest
  split = big * total > 0  # big != 0 and 1 + rest / big > 0
  big_safe = dnp.where(split, big, 1)
  by_parts = dnp.log(dnp.abs(big_safe)) + dnp.log1p(dnp.where(split, rest, 0) / big_safe)
  nonzero = total != 0
  direct = dnp.where(nonzero, dnp.log(dnp.abs(dnp.where(nonzero, total, 1))), -np.inf)
  return shift + dnp.where(split, by_parts, direct), dnp.sign(total)


# ---- softmax ------------------------------------------------------------------------------


def softmax(x, axis=None):
  """Differentiable `scipy.special.softmax`: exp(x) / sum(exp(x)) over `axis`, shifted by the
  maximum (no overflow for logits of 1000).

  >>> softmax(np.array([0.0, np.log(3.0)]))
  array([0.25, 0.75])
  """
  x = dnp.asarray(x)
  with np.errstate(**_QUIET):
    e = dnp.exp(x - dnp.max(x, axis=axis, keepdims=True))
    return e / dnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=None):
  """Differentiable `scipy.special.log_softmax`: x - logsumexp(x) over `axis`, accurate where
  softmax underflows (log_softmax([1000, 1]) is [0, -999]).

  >>> log_softmax(np.array([1000.0, 1.0]))
  array([   0., -999.])
  """
  x = dnp.asarray(x)
  x_max = dnp.max(x, axis=axis, keepdims=True)
  shifted = x - dnp.where(dnp.isfinite(x_max), x_max, 0)
  with np.errstate(divide="ignore"):
    return shifted - dnp.log(dnp.sum(dnp.exp(shifted), axis=axis, keepdims=True))


# ---- expit and logit ---------------------------------------------------------------------


def expit(x):
  """Differentiable `scipy.special.expit`, the logistic sigmoid 1 / (1 + exp(-x)); its
  derivative is expit(x) * (1 - expit(x)), exact in both tails.

  >>> float(expit(0.0))
  0.5
  """
  if isinstance(x, Tracer) and x.dtype in _LOOP_DTYPES:  # the common case, as below
    return ew.logistic(x)
  if not _traced(x):
    x = np.asarray(x)
    with np.errstate(over="ignore"):
      return _scalar(1 / (1 + np.exp(-x.astype(_ufunc_dtype(x)))))
  x = dnp.asarray(x)
  return ew.logistic(dnp.asarray(x, _ufunc_dtype(x)))


def logit(x):
  """Differentiable `scipy.special.logit`, log(x / (1 - x)), the inverse of expit. As in
  SciPy, log1p(2x - 1) - log1p(1 - 2x) is used near x = 1/2, where it is more accurate.

  >>> float(logit(0.5))
  0.0
  """
  x = dnp.asarray(x)
  x = dnp.asarray(x, _ufunc_dtype(x))
  middle = (x >= 0.3) & (x <= 0.65)
  with np.errstate(divide="ignore", invalid="ignore"):
    outer = dnp.where(middle, 0.1, x)  # safe stand-ins where a branch is not taken
    s = 2 * (dnp.where(middle, x, 0.5) - 0.5)
    out = dnp.where(middle, dnp.log1p(s) - dnp.log1p(-s), dnp.log(outer / (1 - outer)))
  return _scalar(out) if not isinstance(out, Tracer) else out


# ---- xlogy and xlog1py (NumPy only) --------------------------------------------------------


def _xlog(name, op):
  def fn(x, y):
    # SciPy's loops are (double, float): a Python scalar counts as a float64 array there, so
    # xlogy(float32 array, 2.0) is float64 and only float32 with float32 stays float32.
    x, y = dnp.asarray(x), dnp.asarray(y)
    dtype = _ufunc_dtype(np.empty(0, _float_dtype(dtype_of(x), dtype_of(y))))
    x, y = _cast(x, dtype), _cast(y, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
      return _scalar(op(x, y)) if not _traced(x, y) else op(x, y)
  fn.__name__ = fn.__qualname__ = name
  return fn


xlogy = _xlog("xlogy", sp.xlogy)
xlogy.__doc__ = """Differentiable `scipy.special.xlogy`: x * log(y), and 0 where x == 0 whatever y
is (except NaN). The derivatives are finite there: log(y) with respect to x (0 where y <= 0),
0 with respect to y. Needs no SciPy.

>>> float(xlogy(0.0, 0.0)), float(xlogy(2.0, np.e))
(0.0, 2.0)
"""
xlog1py = _xlog("xlog1py", sp.xlog1py)
xlog1py.__doc__ = """Differentiable `scipy.special.xlog1py`: x * log1p(y), 0 where x == 0 (finite
derivatives there, as for `xlogy`). Needs no SciPy.

>>> float(xlog1py(0.0, -1.0))
0.0
"""


def _cast(x, dtype):
  return x if dtype_of(x) == dtype else dnp.asarray(x, dtype)


# ---- functions computed by SciPy --------------------------------------------------------------


def _loop_dtype(prim, args):
  """The dtype of SciPy's loop for these operands (Python scalars weak, as in NumPy 2)."""
  return dtypes.ufunc_result_dtype(prim.impl, *[core.get_aval(a) for a in args])


def _special(name, prim, doc, scipy_name=None):
  """`scipy.special.<name>` called directly when no argument is traced; otherwise the floating
  operands are cast to the dtype of SciPy's loop and `prim` is bound."""
  scipy_name = scipy_name or name

  def fn(*args):
    if not _traced(*args):
      return getattr(sp.scipy_special(scipy_name), scipy_name)(*args)
    args = [dnp.asarray(a) if isinstance(a, (list, tuple)) else a for a in args]
    for a in args:
      if dtype_of(a).kind == "c":
        raise TypeError(f"dfdx.scipy.special.{name}: complex inputs are not supported when "
                        "differentiating; pass real arrays.")
    dtype = _loop_dtype(prim, args)
    args = [a if isinstance(a, (int, float, bool)) or dtype_of(a).kind != "f"
            else _cast(a, dtype) for a in args]
    return prim.bind(*args)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = doc
  return fn


erf = _special("erf", sp.erf_p, """Differentiable `scipy.special.erf`, the error function
2/sqrt(pi) int_0^x exp(-t^2) dt; d erf = 2/sqrt(pi) exp(-x^2) dx (DLMF 7.2.1).

>>> round(float(erf(1.0)), 12)
0.842700792950""")
erfc = _special("erfc", sp.erfc_p, """Differentiable `scipy.special.erfc`, 1 - erf(x), accurate
for large x.""")
erfinv = _special("erfinv", sp.erfinv_p, """Differentiable `scipy.special.erfinv`, the inverse
of erf on (-1, 1).""")
erfcinv = _special("erfcinv", sp.erfcinv_p, """Differentiable `scipy.special.erfcinv`, the
inverse of erfc on (0, 2).""")
erfcx = _special("erfcx", sp.erfcx_p, """Differentiable `scipy.special.erfcx`, the scaled
complementary error function exp(x^2) erfc(x), which does not underflow for large x.""")
ndtr = _special("ndtr", sp.ndtr_p, """Differentiable `scipy.special.ndtr`, the standard normal
distribution function.""")
log_ndtr = _special("log_ndtr", sp.log_ndtr_p, """Differentiable `scipy.special.log_ndtr`,
log(ndtr(x)), accurate in the far left tail (log_ndtr(-40) is about -804.6), with a finite
derivative there (about -x).""")
ndtri = _special("ndtri", sp.ndtri_p, """Differentiable `scipy.special.ndtri`, the inverse of
ndtr (the standard normal quantile function).""")
gamma = _special("gamma", sp.gamma_p, """Differentiable `scipy.special.gamma`; d gamma =
gamma * digamma (DLMF 5.2.2).

>>> float(gamma(5.0))
24.0""")
gammaln = _special("gammaln", sp.gammaln_p, """Differentiable `scipy.special.gammaln`,
log|gamma(x)|; its derivative is digamma(x).""")
rgamma = _special("rgamma", sp.rgamma_p, """Differentiable `scipy.special.rgamma`, 1/gamma(x),
an entire function: its derivative at the poles of gamma (x = -n) is (-1)^n n!.""")
digamma = _special("digamma", sp.digamma_p, """Differentiable `scipy.special.digamma` (psi),
the derivative of gammaln; its derivative is polygamma(1, x).""", "psi")
psi = digamma
polygamma = _special("polygamma", sp.polygamma_p, """Differentiable
`scipy.special.polygamma(n, x)`, the n-th derivative of digamma; differentiable in x (its
derivative is polygamma(n + 1, x)); n is an integer order with no derivative.

>>> round(float(polygamma(1, 1.0)), 12)  # pi^2 / 6
1.644934066848""")
beta = _special("beta", sp.beta_p, """Differentiable `scipy.special.beta`, gamma(a) gamma(b) /
gamma(a + b).""")
betaln = _special("betaln", sp.betaln_p, """Differentiable `scipy.special.betaln`,
log|beta(a, b)|; d/da = digamma(a) - digamma(a + b).""")
gammainc = _special("gammainc", sp.gammainc_p, """Differentiable `scipy.special.gammainc(a, x)`,
the regularized lower incomplete gamma function P(a, x). Differentiable in x to any order; in
a to first order (computed by a series or a quadrature, accurate to about 1e-9 relative; a
second derivative in a raises MissingRuleError).""")
gammaincc = _special("gammaincc", sp.gammaincc_p, """Differentiable
`scipy.special.gammaincc(a, x)` = 1 - gammainc(a, x), differentiable as gammainc.""")
betainc = _special("betainc", sp.betainc_p, """Differentiable `scipy.special.betainc(a, b, x)`,
the regularized incomplete beta function, differentiable in x only.""")
stdtr = _special("stdtr", sp.stdtr_p, """Differentiable `scipy.special.stdtr(df, t)`, Student's t
distribution function, differentiable in t only.""")
j0 = _special("j0", sp.j0_p, """Differentiable `scipy.special.j0`; d j0 = -j1 (DLMF 10.6.2).""")
j1 = _special("j1", sp.j1_p, """Differentiable `scipy.special.j1`; d j1 = (j0 - jv(2, .)) / 2.""")
y0 = _special("y0", sp.y0_p, """Differentiable `scipy.special.y0`; d y0 = -y1.""")
y1 = _special("y1", sp.y1_p, """Differentiable `scipy.special.y1`; d y1 = (y0 - yn(2, .)) / 2.""")
jv = _special("jv", sp.jv_p, """Differentiable `scipy.special.jv(v, x)`, the Bessel function of
the first kind of real order v; differentiable in x: (jv(v-1, x) - jv(v+1, x)) / 2 (DLMF
10.6.1). The derivative in v is not implemented (MissingRuleError).""")
jn = _special("jn", sp.jv_p, """Differentiable `scipy.special.jn(n, x)` (SciPy's alias of jv);
d/dx jn = (j_{n-1} - j_{n+1}) / 2.""", "jv")
yv = _special("yv", sp.yv_p, """Differentiable `scipy.special.yv(v, x)`, the Bessel function of
the second kind of real order v; differentiable in x.""")
yn = _special("yn", sp.yn_p, """Differentiable `scipy.special.yn(n, x)`, integer order n;
d/dx yn = (y_{n-1} - y_{n+1}) / 2.""")
i0 = _special("i0", sp.i0_p, """Differentiable `scipy.special.i0`; d i0 = i1 (DLMF 10.29.3).""")
i1 = _special("i1", sp.i1_p, """Differentiable `scipy.special.i1`; d i1 = (i0 + iv(2, .)) / 2.""")
i0e = _special("i0e", sp.i0e_p, """Differentiable `scipy.special.i0e`, i0(x) exp(-|x|).""")
i1e = _special("i1e", sp.i1e_p, """Differentiable `scipy.special.i1e`, i1(x) exp(-|x|).""")
iv = _special("iv", sp.iv_p, """Differentiable `scipy.special.iv(v, x)`, the modified Bessel
function of the first kind; differentiable in x: (iv(v-1, x) + iv(v+1, x)) / 2 (DLMF
10.29.1). The derivative in v is not implemented (MissingRuleError).""")
ive = _special("ive", sp.ive_p, """Differentiable `scipy.special.ive(v, x)`, iv(v, x)
exp(-|x|); differentiable in x.""")
k0 = _special("k0", sp.k0_p, """Differentiable `scipy.special.k0`; d k0 = -k1.""")
k1 = _special("k1", sp.k1_p, """Differentiable `scipy.special.k1`; d k1 = -(k0 + kv(2, .)) / 2.""")
k0e = _special("k0e", sp.k0e_p, """Differentiable `scipy.special.k0e`, k0(x) exp(x).""")
k1e = _special("k1e", sp.k1e_p, """Differentiable `scipy.special.k1e`, k1(x) exp(x).""")
kv = _special("kv", sp.kv_p, """Differentiable `scipy.special.kv(v, x)`, the modified Bessel
function of the second kind; differentiable in x: -(kv(v-1, x) + kv(v+1, x)) / 2.""")
kve = _special("kve", sp.kve_p, """Differentiable `scipy.special.kve(v, x)`, kv(v, x) exp(x);
differentiable in x.""")


def multigammaln(a, d):
  """Differentiable `scipy.special.multigammaln(a, d)`, the log of the multivariate gamma
  function: d (d-1) / 4 log(pi) + sum_{j=1..d} gammaln(a - (j-1)/2) (DLMF 35.3.1).
  `d` is an integer (SciPy's check and message); `a` must exceed (d - 1) / 2, as in SciPy:
  a ValueError where `a` is known (untraced, or under grad), and under jit or vmap a
  ValueError when the compiled code or the batch computes an `a` that fails. For d <= 0 the
  sum is empty: a scalar, as SciPy's.

  >>> round(float(multigammaln(3.0, 1)), 12)  # gammaln(3) = log(2)
  0.69314718056
  """
  if not _traced(a):
    return sp.scipy_special("multigammaln").multigammaln(a, d)
  if _traced(d):
    raise ValueError("multigammaln: d (the dimension) must be a concrete integer, not a "
                     "traced value.")
  d = np.asarray(d)[()]
  if not np.isscalar(d) or np.floor(d) != d:
    raise ValueError("d should be a positive integer (dimension)")
  if not isinstance(d, (int, np.integer)):  # (SciPy's range(1, d + 1) refuses a float d)
    raise TypeError(f"'{type(d).__name__}' object cannot be interpreted as an integer")
  d = int(d)
  a = dnp.asarray(a)
  a = _cast(a, np.result_type(dtype_of(a), np.float64))
  bound = 0.5 * (d - 1)
  ok = a > bound
  known = _concrete_or_none(ok, "multigammaln")
  if known is not None and not np.all(known):
    raise ValueError(f"condition a ({_concrete_or_none(a, 'multigammaln')}) > 0.5 * (d-1) "
                     f"({bound}) not met")
  if known is None:
    # (under jit or vmap: checked where a is computed; the result depends on the check, so
    # that it is kept)
    ok = checks.check(ok, "nonzero", "ValueError",
                      f"condition a > 0.5 * (d-1) ({bound}) not met")
  constant = d * (d - 1) / 4 * np.log(np.pi)
  if d <= 0:
    return np.float64(constant) if known is not None else \
        dnp.where(dnp.all(ok), constant, np.nan)
  halves = np.arange(d, dtype=np.float64) / 2
  value = dnp.sum(gammaln(dnp.expand_dims(a, -1) - halves), axis=-1) + constant
  return value if known is not None else dnp.where(ok, value, np.nan)


def _concrete_or_none(x, purpose):
  """The concrete value of `x`, or None where a transformation (jit, vmap) hides it."""
  if not isinstance(x, Tracer):
    return np.asarray(x)
  try:
    return np.asarray(x.concrete_value(purpose))
  except errors.ConcretizationError:
    return None


# ---- log_expit, entr, rel_entr, kl_div (NumPy only) ------------------------------------------


def _emulated_loop_dtype(name, loops, *args):
  """The dtype of SciPy's ufunc `name`, whose loops take the types `loops` (in SciPy's order),
  for these operands, found as NumPy finds it (so that no SciPy is needed): the loop matching
  the operands' dtypes exactly, else the first they cast to safely. A Python scalar counts as
  the dtype NumPy promotes it to with the other operands."""
  avals = [core.get_aval(a) for a in args]
  strong = [dtypes.standin(a) for a in avals if not a.weak_type]
  operands = [np.result_type(*strong, dtypes.standin(a)) if a.weak_type else a.dtype
              for a in avals]
  for match in ("equiv", "safe"):
    for loop in loops:
      if all(np.can_cast(d, loop, match) for d in operands):
        return np.dtype(loop)
  raise TypeError(f"ufunc '{name}' not supported for the input types, and the inputs could "
                  "not be safely coerced to any supported types according to the casting "
                  "rule ''safe''")


def _real_operands(name, loops, *args):
  args = [dnp.asarray(a) if isinstance(a, (list, tuple)) else a for a in args]
  if any(dtype_of(a).kind == "c" for a in args):
    raise TypeError(f"dfdx.scipy.special.{name}: complex inputs are not supported; pass real "
                    "arrays.")
  dtype = _emulated_loop_dtype(name, loops, *args)
  return [_cast(dnp.asarray(a), dtype) for a in args]


def _finish(out, like):
  """`out` in the dtype of `like` (the loop's), as a scalar where NumPy gives one."""
  out = _cast(out, dtype_of(like))
  return out if isinstance(out, Tracer) else _scalar(np.asarray(out))


def log_expit(x):
  """Differentiable `scipy.special.log_expit`: log(expit(x)), as SciPy computes it (x -
  log1p(exp(x)) below 0, -log1p(exp(-x)) above), so accurate in both tails. Its derivative
  is expit(-x), finite everywhere. Needs no SciPy.

  >>> float(log_expit(-800.0)), float(log_expit(0.0))
  (-800.0, -0.6931471805599453)
  """
  (x,) = _real_operands("log_expit", "dfg", x)
  with np.errstate(over="ignore"):
    left = x < 0
    below, above = dnp.where(left, x, 0), dnp.where(left, 0, x)  # each branch sees safe values
    out = dnp.where(left, below - dnp.log1p(dnp.exp(below)), -dnp.log1p(dnp.exp(-above)))
  return _finish(out, x)


def entr(x):
  """Differentiable `scipy.special.entr`: -x log(x) for x > 0, 0 at x = 0, -inf below, NaN for
  NaN. Its derivative is -(log(x) + 1) for x > 0; at x = 0, where that is infinite, it is 0
  (as for xlogy), and 0 outside the domain. Needs no SciPy.

  >>> float(entr(0.5)), float(entr(0.0))
  (0.34657359027997264, 0.0)
  """
  (x,) = _real_operands("entr", "fd", x)
  positive = x > 0
  xs = dnp.where(positive, x, 1)
  out = dnp.where(positive, -xs * dnp.log(xs), dnp.where(x == 0, 0, -np.inf))
  return _finish(dnp.where(dnp.isnan(x), np.nan, out), x)


def _relative(name, x, y):
  """(x log(x / y) where x > 0 and y > 0, the arguments there (1 elsewhere), the mask)."""
  x, y = _real_operands(name, "fd", x, y)
  both = (x > 0) & (y > 0)
  xs, ys = dnp.where(both, x, 1), dnp.where(both, y, 1)
  return xs * dnp.log(xs / ys), x, y, xs, ys, both


def rel_entr(x, y):
  """Differentiable `scipy.special.rel_entr`: x log(x / y) for x > 0 and y > 0, 0 for x = 0
  and y >= 0, inf otherwise (NaN for NaN). Its derivatives there are log(x / y) + 1 and
  -x / y; on the edges, where x log(x / y) is not differentiable, they are 0. Needs no SciPy.

  >>> float(rel_entr(1.0, np.e))
  -1.0
  """
  with np.errstate(divide="ignore"):
    value, x, y, _, _, both = _relative("rel_entr", x, y)
    out = dnp.where(both, value, dnp.where((x == 0) & (y >= 0), 0, np.inf))
    return _finish(dnp.where(dnp.isnan(x) | dnp.isnan(y), np.nan, out), x)


def kl_div(x, y):
  """Differentiable `scipy.special.kl_div`: x log(x / y) - x + y for x > 0 and y > 0, y for
  x = 0 and y >= 0, inf otherwise (NaN for NaN). Its derivatives are log(x / y) and 1 - x / y
  (1 in y at x = 0). Needs no SciPy.

  >>> float(kl_div(1.0, 1.0)), float(kl_div(0.0, 2.0))
  (0.0, 2.0)
  """
  with np.errstate(divide="ignore", invalid="ignore"):
    value, x, y, xs, ys, both = _relative("kl_div", x, y)
    out = dnp.where(both, value - xs + ys, dnp.where((x == 0) & (y >= 0), y, np.inf))
    return _finish(dnp.where(dnp.isnan(x) | dnp.isnan(y), np.nan, out), x)


# ---- loggamma, zeta, exponential integrals, ndtri_exp, binom, factorial (SciPy) -------------


def loggamma(x):
  """Differentiable `scipy.special.loggamma` of real arguments: log(gamma(x)) for x >= 0 (inf
  at 0), NaN for x < 0 (where gamma is negative or has a pole); its derivative is digamma(x).
  Complex arguments are left to SciPy (not traced).

  >>> round(float(loggamma(5.0)), 12)  # log(24)
  3.178053830348
  """
  if not _traced(x):
    return sp.scipy_special("loggamma").loggamma(x)
  x = dnp.asarray(x)
  if dtype_of(x).kind == "c":
    raise TypeError("dfdx.scipy.special.loggamma: complex inputs are not supported when "
                    "differentiating; pass real arrays.")
  x = _cast(x, _loop_dtype(sp.gammaln_p, [x]))
  negative = x < 0
  return dnp.where(negative, np.nan, sp.gammaln(dnp.where(negative, 1, x)))


def _special_in(name, prim):
  return _special(name, prim, None)


_hurwitz_zeta = _special_in("zeta", sp.zeta_p)
_riemann_zeta = _special_in("zeta", sp.riemann_zeta_p)


def zeta(x, q=None, out=None):
  """Differentiable `scipy.special.zeta`: Riemann's zeta(x) (q=None), or Hurwitz's zeta(x, q) =
  sum_k (k + q)^-x. Differentiable in q: -x zeta(x + 1, q) (DLMF 25.11.17), to any order. The
  derivative in x is not implemented (MissingRuleError); hold x fixed. `out` is SciPy's, for
  values that are not traced.

  >>> round(float(zeta(2.0)), 12)  # pi^2 / 6
  1.644934066848
  """
  if not _traced(x, q):
    return sp.scipy_special("zeta").zeta(x, q, out)
  if out is not None:
    raise TypeError("dfdx.scipy.special.zeta: out= cannot hold traced values; use the result.")
  return _riemann_zeta(x) if q is None else _hurwitz_zeta(x, q)


exp1 = _special("exp1", sp.exp1_p, """Differentiable `scipy.special.exp1`, the exponential
integral E1(x) = int_1^inf e^(-x t) / t dt; d E1 = -e^-x / x dx (DLMF 6.2.1). Complex arguments
are left to SciPy (not traced).

>>> round(float(exp1(1.0)), 12)
0.219383934396""")
expi = _special("expi", sp.expi_p, """Differentiable `scipy.special.expi`, the exponential
integral Ei(x) (principal value for x > 0); d Ei = e^x / x dx (DLMF 6.2.5).

>>> round(float(expi(1.0)), 12)
1.895117816356""")
ndtri_exp = _special("ndtri_exp", sp.ndtri_exp_p, """Differentiable `scipy.special.ndtri_exp`,
ndtri(exp(y)), accurate for y far below 0 (where exp(y) underflows); its derivative is
sqrt(2 pi) exp(y + x^2 / 2) with x the result, finite there too.""")
binom = _special("binom", sp.binom_p, """Differentiable `scipy.special.binom(n, k)`, the
binomial coefficient Gamma(n + 1) / (Gamma(k + 1) Gamma(n - k + 1)) of real n and k. Its
derivatives are binom(n, k) times digamma(n + 1) - digamma(n - k + 1) in n and digamma(n - k +
1) - digamma(k + 1) in k: defined where none of those arguments is a pole of digamma (a
non-positive integer), NaN there.

>>> float(binom(5.0, 2.0))
10.0""")


def factorial(n, exact=False, extend="zero"):
  """Differentiable `scipy.special.factorial`: gamma(n + 1) (float64), 0 for n < 0 (SciPy's
  extend='zero'). Differentiable as gamma(n + 1) (0 for n < 0). Values that are not traced go
  to SciPy itself (exact=True, extend='complex' included); traced, exact=True (integers) and
  extend='complex' are refused.

  >>> float(factorial(4.0))
  24.0
  """
  if not _traced(n):
    return sp.scipy_special("factorial").factorial(n, exact=exact, extend=extend)
  if extend not in ("zero", "complex"):
    raise ValueError(f"argument `extend` must be either 'zero' or 'complex', received: {extend}")
  if exact or extend == "complex":
    what = "exact=True computes integers" if exact else "extend='complex' computes complex values"
    raise TypeError(f"dfdx.scipy.special.factorial: {what}, which dfdx does not trace; use "
                    "exact=False and extend='zero' (gamma(n + 1)) on traced values.")
  n = dnp.asarray(n)
  if dtype_of(n).kind not in "iuf":
    raise ValueError(f"Unsupported data type for `n` in factorial: {dtype_of(n)}")
  n = _cast(n, np.dtype(np.float64))
  with np.errstate(invalid="ignore"):
    value = sp.gamma(dnp.where(n >= 0, n, 0) + 1)
    return dnp.where(n >= 0, value, dnp.where(dnp.isnan(n), np.nan, 0.0))
