"""dfdx.scipy.special: values against SciPy (when installed), closed-form derivatives,
check_grads to order 2, vmap, and extreme inputs (logits of 1000, -inf entries, ties), which
must give finite values and finite derivatives. SciPy is not needed at runtime.
"""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.special as dss
from dfdx.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
W = RNG.standard_normal((3, 4))

LOGSUMEXP = [
    (X, {}), (X, {"axis": 1}), (X, {"axis": (0, -1), "keepdims": True}), (X, {"axis": -2}),
    (np.array([1000.0, 1000.0, 1.0]), {}), (np.array([-np.inf, 0.0, 1.0]), {}),
    (np.array([-np.inf, -np.inf]), {"return_sign": True}), (np.array([np.inf, 1.0]), {}),
    (np.array([np.nan, 1.0]), {}), (np.array([1.0, 2.0]), {"b": [1, -1]}),
    (np.array([1.0, 2.0]), {"b": [1, -1], "return_sign": True}),
    (np.array([2.0, 2.0]), {"b": [1, -1], "return_sign": True}),
    (np.array([5.0, 1.0]), {"b": [0, 1]}), (np.array([np.inf, 1.0]), {"b": [0, 1]}),
    (X, {"axis": 0, "b": np.abs(W) + 0.1}), (X, {"axis": -1, "b": W, "return_sign": True}),
    (np.zeros((0, 3)), {"axis": 1}), (np.zeros((0, 3)), {"axis": 0}), (np.zeros(0), {}),
    (np.array(3.0), {}), (3, {}), ([1, 2, 3], {}), (np.float32([1, 2]), {}),
    (np.float32([1, 2]), {"b": np.float64(2)}), (np.array([1e-20, -40.0]), {}),
]
SOFTMAX = [(X, {}), (X, {"axis": 1}), (X, {"axis": (0, 1)}), (np.array([1000.0, 1.0]), {}),
           (np.array([-np.inf, 1.0]), {}), (np.array(2.0), {}), (np.array([1, 2]), {}),
           (np.float32([1, 2, 3]), {"axis": 0}), (np.array([-np.inf, -np.inf]), {})]
UNIT = [0.3, np.array([0.0, 1.0, 2.0, -1.0, 0.5, 0.31, 0.7, 1e-300]), np.float32([0.1, 0.4]),
        1, np.array(0.2), np.float16([0.3])]
REAL = [0.3, np.array([-800.0, -30.0, 0.0, 2.0, 40.0, 800.0]), np.float32([-3.0, 0.5]), 1,
        np.array(-2.0), np.int8([3])]


def assert_like_scipy(got, expected, rtol):
  got, expected = (got, expected) if isinstance(expected, tuple) else ((got,), (expected,))
  for g, e in zip(got, expected, strict=True):
    assert type(g) is type(e), (type(g), type(e))
    assert np.asarray(g).dtype == np.asarray(e).dtype
    assert np.shape(g) == np.shape(e)
    np.testing.assert_allclose(g, e, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.parametrize("a,kwargs", LOGSUMEXP)
def test_logsumexp_matches_scipy(a, kwargs):
  special = pytest.importorskip("scipy.special")
  with np.errstate(all="ignore"):
    assert_like_scipy(dss.logsumexp(a, **kwargs), special.logsumexp(a, **kwargs), 1e-14)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("x,kwargs", SOFTMAX)
def test_softmax_matches_scipy(name, x, kwargs):
  special = pytest.importorskip("scipy.special")
  with np.errstate(all="ignore"):
    assert_like_scipy(getattr(dss, name)(x, **kwargs), getattr(special, name)(x, **kwargs),
                      1e-14)


@pytest.mark.parametrize("name,x", [("expit", x) for x in REAL] + [("logit", x) for x in UNIT])
def test_expit_logit_match_scipy(name, x):
  special = pytest.importorskip("scipy.special")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    expected = getattr(special, name)(x)
  rtol = 1e-6 if np.asarray(expected).dtype == np.float32 else 1e-14
  assert_like_scipy(getattr(dss, name)(x), expected, rtol)


def test_traced_values_match_untraced():
  for a, kwargs in LOGSUMEXP:
    a = np.asarray(a, float)
    if a.size and "return_sign" not in kwargs:
      with np.errstate(all="ignore"):
        traced = dfdx.jvp(lambda a: dss.logsumexp(a, **kwargs), (a,), (np.zeros_like(a),))[0]
        np.testing.assert_allclose(traced, dss.logsumexp(a, **kwargs), rtol=1e-14)


# ---- derivatives in closed form ------------------------------------------------------------

EXTREME = [X, np.array([1000.0, 1000.0, 1.0]), np.array([1000.0, -1000.0, 0.0]),
           np.array([-np.inf, 0.0, 2.0]), np.array([3.0, 3.0, 3.0]), np.array([-50.0, 700.0])]


@pytest.mark.parametrize("x", EXTREME)
def test_grad_logsumexp_is_softmax(x):
  grad = dfdx.grad(dss.logsumexp)(x)
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, dss.softmax(x), rtol=1e-12, atol=1e-300)
  hess = dfdx.hessian(dss.logsumexp)(x)
  p = dss.softmax(x).reshape(-1)
  expected = (np.diag(p) - np.outer(p, p)).reshape(x.shape + x.shape)
  assert np.all(np.isfinite(hess))
  np.testing.assert_allclose(hess, expected, atol=1e-12)


@pytest.mark.parametrize("x", EXTREME)
def test_grad_log_softmax_and_softmax(x):
  w = np.linspace(-1.0, 2.0, x.size).reshape(x.shape)
  p = dss.softmax(x)
  grad = dfdx.grad(lambda x: dnp.sum(w * dnp.where(np.isinf(x), 0.0, dss.log_softmax(x))))(x)
  finite = ~np.isinf(x)
  expected = np.where(finite, w, 0.0) - p * np.sum(np.where(finite, w, 0.0))
  np.testing.assert_allclose(grad, expected, atol=1e-12)
  grad = dfdx.grad(lambda x: dnp.sum(w * dss.softmax(x)))(x)
  np.testing.assert_allclose(grad, p * (w - np.sum(w * p)), atol=1e-12)


def test_grad_along_axis_and_weights():
  grad = dfdx.grad(lambda x: dnp.sum(dss.logsumexp(x, axis=1)))(X)
  np.testing.assert_allclose(grad, dss.softmax(X, axis=1), rtol=1e-12)
  b = np.abs(W) + 0.1
  total = np.sum(b * np.exp(X), axis=0)
  grad_a, grad_b = dfdx.grad(lambda a, b: dnp.sum(dss.logsumexp(a, axis=0, b=b)), (0, 1))(X, b)
  np.testing.assert_allclose(grad_a, b * np.exp(X) / total, rtol=1e-12)
  np.testing.assert_allclose(grad_b, np.exp(X) / total, rtol=1e-12)
  # ties with unequal weights: each entry gets its own share, not an equal split
  weighted = lambda a: dss.logsumexp(a, b=np.array([1.0, 2.0, 0.0]))  # noqa: E731
  grad = dfdx.grad(weighted)(np.array([1.0, 1.0, 5.0]))
  np.testing.assert_allclose(grad, [1 / 3, 2 / 3, 0.0], rtol=1e-12)


def test_grad_expit_logit():
  x = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 40.0, 800.0])
  s = dss.expit(x)
  # s (1 - s) written as s(x) s(-x): the naive form rounds to 0 at x = 40.
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(dss.expit(x)))(x), s * dss.expit(-x),
                             rtol=1e-12, atol=1e-300)
  p = np.array([1e-8, 0.1, 0.3, 0.5, 0.65, 0.9, 1 - 1e-8])
  np.testing.assert_allclose(dfdx.grad(lambda p: dnp.sum(dss.logit(p)))(p), 1 / (p * (1 - p)),
                             rtol=1e-6)
  np.testing.assert_allclose(dss.logit(dss.expit(X)), X, rtol=1e-9)


# ---- check_grads, vmap ---------------------------------------------------------------------

FUNS = [
    ("logsumexp", lambda x: dss.logsumexp(x), X),
    ("logsumexp-axis", lambda x: dss.logsumexp(x, axis=-1, keepdims=True), X),
    ("logsumexp-b", lambda x, b: dss.logsumexp(x, axis=(0, 1), b=b), X, np.abs(W) + 0.1),
    ("logsumexp-sign", lambda x, b: dss.logsumexp(x, axis=0, b=b, return_sign=True)[0], X,
     W + np.sign(W)),
    ("logsumexp-inf", lambda x: dss.logsumexp(x), np.array([-np.inf, 1000.0, 999.0])),
    ("softmax", lambda x: dss.softmax(x, axis=0), X),
    ("softmax-large", lambda x: dss.softmax(x), np.array([1000.0, 999.0, -np.inf])),
    ("log_softmax", lambda x: dss.log_softmax(x, axis=1), X),
    ("log_softmax-large", lambda x: dss.log_softmax(x), np.array([1000.0, 999.5, 998.0])),
    ("expit", dss.expit, X), ("expit-tails", dss.expit, np.array([-700.0, 700.0])),
    ("logit", dss.logit, np.array([0.05, 0.3, 0.45, 0.65, 0.8])),
]


@pytest.mark.parametrize("fun,args", [pytest.param(f[1], f[2:], id=f[0]) for f in FUNS])
def test_check_grads(fun, args):
  check_grads(fun, args, order=2)


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("fun,args", [pytest.param(f[1], f[2:], id=f[0]) for f in FUNS])
def test_vmap_matches_stacked_calls(fun, args, axis):
  examples = [args, tuple(a[::-1] for a in args), tuple(0.5 * a for a in args)]
  batched = [np.stack([e[i] for e in examples], axis=axis) for i in range(len(args))]
  out = dfdx.vmap(fun, in_axes=axis)(*batched)
  np.testing.assert_allclose(out, np.stack([fun(*e) for e in examples]), rtol=1e-12)


def test_extreme_inputs_are_finite():
  x = np.array([1000.0, -np.inf, 0.0, 1000.0])
  for fun in (dss.logsumexp, lambda x: dnp.sum(dss.softmax(x) * np.arange(4.0)),
              lambda x: dss.log_softmax(x)[0], lambda x: dnp.sum(dss.expit(x))):
    value, grad = dfdx.value_and_grad(fun)(x)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (value, grad)
  assert dss.logsumexp(x) == 1000.0 + np.log(2.0)
  # all entries -inf: the value is -inf and the gradient zero, not NaN
  value, grad = dfdx.value_and_grad(dss.logsumexp)(np.array([-np.inf, -np.inf]))
  assert value == -np.inf and np.all(grad == 0.0)


def test_no_scipy_needed():
  code = ("import sys; sys.modules['scipy'] = None; import dfdx.scipy.special as s; "
          "import dfdx.scipy; print(dfdx.scipy.special.logsumexp([0.0, 0.0]))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == str(np.log(2.0))
