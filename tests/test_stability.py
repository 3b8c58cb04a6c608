"""Built-in rules use numerically stable forms: derivatives stay finite and accurate where a
naive formula under- or overflows."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.special as special
from dfdx._src import ad


@pytest.fixture(params=[True, False], ids=["vjp-rules", "transposed-jvp"])
def vjp_rules(request):
  with ad.use_vjp_rules(request.param):
    yield


def test_ratio_derivative_in_the_denominator(vjp_rules):
  # d(a/b)/db = -(a/b)/b: b**2 would underflow to 0 (and give -inf).
  assert dfdx.grad(lambda b: -1e-200 / b)(1e-200) == pytest.approx(1e200)
  assert dfdx.grad(lambda b: 1e200 / b)(1e200) == pytest.approx(-1e-200)


def test_log1p_and_expm1_near_zero(vjp_rules):
  for x in (1e-20, -1e-20, 1e-10):
    assert dfdx.grad(dnp.log1p)(x) == pytest.approx(1 / (1 + x), rel=1e-15)
    assert dfdx.grad(dnp.expm1)(x) == pytest.approx(np.exp(x), rel=1e-15)
  assert dfdx.grad(dnp.log1p)(-1 + 1e-12) == pytest.approx(1e12, rel=1e-4)


def test_logaddexp_at_large_and_very_different_arguments(vjp_rules):
  gx, gy = dfdx.grad(dnp.logaddexp, (0, 1))(1000.0, 0.0)
  assert gx == 1.0 and 0.0 <= gy < 1e-300
  gx, gy = dfdx.grad(dnp.logaddexp, (0, 1))(-1000.0, -1000.0)
  assert gx == pytest.approx(0.5, rel=1e-12) and gy == pytest.approx(0.5, rel=1e-12)


def test_logsumexp_and_softmax_at_extreme_logits(vjp_rules):
  logits = np.array([1000.0, 0.0, -1000.0, -np.inf])
  g = dfdx.grad(special.logsumexp)(logits)
  assert np.all(np.isfinite(g))
  np.testing.assert_allclose(g, [1.0, 0.0, 0.0, 0.0], atol=1e-300)
  jac = dfdx.jacrev(special.softmax)(logits)
  assert np.all(np.isfinite(jac))
  g = dfdx.grad(lambda z: special.log_softmax(z)[1])(logits)
  assert np.all(np.isfinite(g))
  np.testing.assert_allclose(g, [-1.0, 1.0, 0.0, 0.0], atol=1e-300)


def test_expit_tails(vjp_rules):
  for x in (-745.0, -40.0, 40.0, 745.0):
    g = dfdx.grad(special.expit)(x)
    closed = np.exp(-abs(x)) / (1 + np.exp(-abs(x))) ** 2  # s (1 - s), written stably
    assert np.isfinite(g) and g == pytest.approx(closed, rel=1e-12, abs=1e-320)


def test_expit_accuracy_as_documented():
  # against extended precision (ops/elementwise.py's _logistic_impl): within 5 ulp outside
  # -40 < x < -5, within 33 inside, where exp's argument carries x's rounding
  if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
    pytest.skip("no extended precision here")
  for lo, hi, bound in ((-700, -40, 5), (-40, -5, 33), (-5, 40, 5), (40, 700, 5)):
    x = np.linspace(lo, hi, 20001)
    exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))
    got = special.expit(x)
    ulp = np.spacing(exact.astype(np.float64)).astype(np.longdouble)
    assert np.max(np.abs((got.astype(np.longdouble) - exact) / ulp)) <= bound, (lo, hi)
