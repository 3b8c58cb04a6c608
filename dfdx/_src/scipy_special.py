"""The functions of `dfdx.scipy.special`: logsumexp, softmax, log_softmax, expit, logit.

They are written with `dfdx.numpy`, so with no traced argument they run on NumPy alone and
give SciPy's results (SciPy is never imported), and with traced arguments they differentiate
and batch. All use the stable forms: logits are shifted by their maximum, so nothing
overflows, and every division or logarithm that a `where` discards sees a safe argument, so
its derivative is finite too ("double where"). The shift carries a derivative, but the
results do not depend on it, so its contributions cancel exactly, ties included.

This module holds no derivative rules and imports no SciPy.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

import dfdx.numpy as dnp
from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.numpy.util import contains_tracer, dtype as dtype_of, shape as shape_of

__all__ = ["logsumexp", "softmax", "log_softmax", "expit", "logit"]

_QUIET = dict(divide="ignore", invalid="ignore", over="ignore")


def _traced(*xs) -> bool:
  return any(contains_tracer(x) for x in xs)


def _float_dtype(*dtypes):
  dtype = np.result_type(*dtypes)
  if dtype.kind == "c":
    raise TypeError(f"dfdx.scipy.special: complex inputs ({dtype}) are not supported; pass "
                    "real arrays.")
  return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _ufunc_dtype(x):
  """The result dtype of SciPy's ufuncs (loops float32, float64, longdouble)."""
  dtype = dtype_of(x)
  return dtype if dtype in (np.float32, np.longdouble) else np.dtype(np.float64)


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


def _logsumexp(a, b, axes):
  """log|sum(b * exp(a))| and its sign over `axes` (kept), for a nonempty `a`."""
  kept = dict(axis=axes, keepdims=True)
  ignored = None if b is None else b == 0
  a_seen = a if b is None else dnp.where(ignored, -np.inf, a)
  a_max = dnp.max(a_seen, **kept)
  shift = dnp.where(dnp.isfinite(a_max), a_max, 0)
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
