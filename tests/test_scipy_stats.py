"""dfdx.scipy.stats: every method against scipy.stats (values, dtypes, scalar results,
invalid parameters, points outside the support), derivatives in every parameter with
check_grads to order 2, the far left tail of norm.logcdf, vmap and jit.
"""
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.stats as dst
from dfdx._src import errors
from dfdx.testing import check_grads

ss = pytest.importorskip("scipy.stats")

X = np.array([-3.0, -0.5, 0.0, 0.2, 0.5, 1.0, 2.5, np.nan, 40.0, -40.0])
CONTINUOUS = [
    ("norm", (), {}), ("norm", (), dict(loc=0.3, scale=2.0)), ("norm", (), dict(scale=-1.0)),
    ("t", (3.0,), {}), ("t", (0.5,), dict(loc=1.0, scale=0.5)), ("t", (-1.0,), {}),
    ("beta", (2.0, 3.0), {}), ("beta", (0.5, 0.7), {}),
    ("beta", (1.0, 1.0), dict(loc=-1.0, scale=3.0)), ("beta", (2.0, -1.0), {}),
    ("gamma", (2.0,), {}), ("gamma", (0.5,), dict(scale=2.0)), ("gamma", (1.0,), {}),
    ("chi2", (3.0,), {}), ("chi2", (2.0,), dict(loc=0.1)), ("chi2", (0.0,), {}),
]
METHODS = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def assert_like_scipy(got, expected, rtol=1e-10):
  assert type(got) is type(expected), (type(got), type(expected))
  assert np.shape(got) == np.shape(expected)
  assert np.asarray(got).dtype == np.asarray(expected).dtype
  np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-300, equal_nan=True)


@pytest.fixture(autouse=True)
def _quiet():
  with warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore", RuntimeWarning)
    yield


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,args,kwargs", CONTINUOUS)
def test_continuous_matches_scipy(name, args, kwargs, method):
  ours, theirs = getattr(getattr(dst, name), method), getattr(getattr(ss, name), method)
  assert_like_scipy(ours(X, *args, **kwargs), theirs(X, *args, **kwargs))
  assert_like_scipy(ours(0.5, *args, **kwargs), theirs(0.5, *args, **kwargs))
  assert_like_scipy(ours(np.float32(X), *args, **kwargs), theirs(np.float32(X), *args, **kwargs))
  positional = args + tuple(kwargs.values())  # loc and scale positionally too
  if "loc" in kwargs or not kwargs:
    assert_like_scipy(ours(X[:3], *positional), theirs(X[:3], *positional))


def test_broadcasting_parameters():
  x, loc, scale = np.linspace(-1, 1, 3), np.array([[0.0], [0.5]]), np.array([1.0, 2.0, 3.0])
  assert_like_scipy(dst.norm.logpdf(x, loc, scale), ss.norm.logpdf(x, loc, scale))
  df = np.array([[1.0], [4.0]])
  assert_like_scipy(dst.t.cdf(x, df, loc=0.1), ss.t.cdf(x, df, loc=0.1))


@pytest.mark.parametrize("method", ["ppf", "isf"])
def test_norm_quantiles(method):
  q = np.array([0.0, 1e-300, 0.1, 0.5, 0.9, 1.0, 1.5])
  assert_like_scipy(getattr(dst.norm, method)(q, 1.0, 2.0), getattr(ss.norm, method)(q, 1, 2))
  assert_like_scipy(getattr(dst.norm, method)(0.3), getattr(ss.norm, method)(0.3))


@pytest.mark.parametrize("method", ["logpmf", "pmf", "cdf", "logcdf", "sf", "logsf"])
@pytest.mark.parametrize("mu", [0.0, 0.5, 3.0, -1.0])
def test_poisson_matches_scipy(method, mu):
  k = np.array([-1.0, 0.0, 1.0, 2.5, 3.0, 10.0, np.nan] + ([np.inf] if mu >= 0 else []))
  ours, theirs = getattr(dst.poisson, method), getattr(ss.poisson, method)
  assert_like_scipy(ours(k, mu), theirs(k, mu))
  assert_like_scipy(ours(k, mu, loc=1), theirs(k, mu, loc=1))
  assert_like_scipy(ours(2, mu), theirs(2, mu))


ALPHA = np.array([0.5, 2.0, 3.0])
XD = np.array([0.2, 0.3, 0.5])
XD2 = np.array([[0.2, 0.1], [0.3, 0.6], [0.5, 0.3]])


@pytest.mark.parametrize("method", ["logpdf", "pdf"])
@pytest.mark.parametrize("x", [XD, XD2, XD[:2], XD2[:2]], ids=["K", "KxN", "K-1", "K-1xN"])
def test_dirichlet_matches_scipy(x, method):
  assert_like_scipy(getattr(dst.dirichlet, method)(x, ALPHA),
                    getattr(ss.dirichlet, method)(x, ALPHA), 1e-12)


@pytest.mark.parametrize("x,alpha,match", [
    (XD, -ALPHA, "greater than 0"), (XD + 0.1, ALPHA, "simplex"), (XD[:1], ALPHA, "entries"),
    (np.array([0.0, 0.5, 0.5]), ALPHA, "greater than zero")])
def test_dirichlet_errors_like_scipy(x, alpha, match):
  with pytest.raises(ValueError, match=match):
    ss.dirichlet.logpdf(x, alpha)
  with pytest.raises(ValueError, match=match):
    dst.dirichlet.logpdf(x, alpha)


RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 3))
COV = A @ A.T + np.eye(3)
MEAN = RNG.standard_normal(3)
MVN = [(RNG.standard_normal(3), MEAN, COV), (RNG.standard_normal((4, 3)), MEAN, COV),
       (0.3, None, 2.0), (np.array([0.1, 0.2]), 1.0, 2.0),
       (RNG.standard_normal(3), np.zeros(3), np.array([1.0, 2.0, 3.0])),
       (RNG.standard_normal((2, 5, 3)), MEAN, 2.0), (RNG.standard_normal(3), None, COV)]


@pytest.mark.parametrize("method", ["logpdf", "pdf"])
@pytest.mark.parametrize("x,mean,cov", MVN)
def test_multivariate_normal_matches_scipy(x, mean, cov, method):
  assert_like_scipy(getattr(dst.multivariate_normal, method)(x, mean, cov),
                    getattr(ss.multivariate_normal, method)(x, mean, cov), 1e-12)


def test_multivariate_normal_parameter_errors():
  with pytest.raises(ValueError, match="Dimension mismatch"):
    dst.multivariate_normal.logpdf(np.zeros(3), np.zeros(3), np.eye(2))
  with pytest.raises(ValueError, match="must be a vector of length"):
    dst.multivariate_normal.logpdf(np.zeros(3), np.zeros((3, 1)), np.eye(3))


# ---- derivatives -------------------------------------------------------------------------------

GRADS = [
    ("norm.logpdf", lambda x, l, s: dst.norm.logpdf(x, l, s), (0.3, 0.1, 1.5)),
    ("norm.pdf", lambda x, l, s: dst.norm.pdf(x, l, s), (0.3, 0.1, 1.5)),
    ("norm.cdf", lambda x, l, s: dst.norm.cdf(x, l, s), (0.3, 0.1, 1.5)),
    ("norm.logcdf-tail", lambda x, l, s: dst.norm.logcdf(x, l, s), (-30.0, 0.1, 1.5)),
    ("norm.logsf", lambda x, l, s: dst.norm.logsf(x, l, s), (2.0, 0.1, 1.5)),
    ("norm.ppf", lambda q, l, s: dst.norm.ppf(q, l, s), (0.3, 0.1, 1.5)),
    ("t.logpdf", lambda x, df, l, s: dst.t.logpdf(x, df, l, s), (0.3, 3.0, 0.1, 1.5)),
    ("t.cdf", lambda x, l, s: dst.t.cdf(x, 3.0, l, s), (0.3, 0.1, 1.5)),
    ("t.logcdf", lambda x: dst.t.logcdf(x, 2.5), (np.array([-4.0, 0.5, 3.0]),)),
    ("beta.logpdf", lambda x, a, b: dst.beta.logpdf(x, a, b), (0.3, 2.0, 3.0)),
    ("beta.pdf-scaled", lambda x, l, s: dst.beta.pdf(x, 2.0, 3.0, l, s), (0.3, -0.2, 1.5)),
    ("beta.cdf", lambda x: dst.beta.cdf(x, 2.0, 3.0), (np.array([0.1, 0.5, 0.9]),)),
    ("beta.logsf", lambda x: dst.beta.logsf(x, 2.0, 3.0), (np.array([0.1, 0.5, 0.9]),)),
    ("gamma.logpdf", lambda x, a, s: dst.gamma.logpdf(x, a, scale=s), (0.3, 2.0, 1.5)),
    ("gamma.cdf", lambda x, s: dst.gamma.cdf(x, 2.0, scale=s), (0.7, 1.5)),
    ("chi2.logpdf", lambda x, df: dst.chi2.logpdf(x, df), (0.3, 2.5)),
    ("chi2.logcdf", lambda x: dst.chi2.logcdf(x, 2.5), (np.array([0.3, 2.0, 8.0]),)),
    ("poisson.logpmf", lambda mu: dst.poisson.logpmf(np.array([0.0, 1.0, 3.0]), mu), (1.5,)),
    ("poisson.cdf", lambda mu: dst.poisson.cdf(np.array([0.0, 1.0, 3.0]), mu), (1.5,)),
    ("dirichlet.logpdf", lambda x, a: dst.dirichlet.logpdf(x, a), (XD[:2], ALPHA)),
    ("dirichlet.logpdf-N", lambda a: dst.dirichlet.logpdf(XD2, a), (ALPHA,)),
    ("multivariate_normal.logpdf", lambda x, m, c: dst.multivariate_normal.logpdf(x, m, c),
     (RNG.standard_normal((4, 3)), MEAN, COV)),
    ("multivariate_normal.pdf-diag", lambda x, c: dst.multivariate_normal.pdf(x, np.zeros(3), c),
     (RNG.standard_normal(3) / 2, np.array([1.0, 2.0, 3.0]))),
]


@pytest.mark.parametrize("fun,args", [pytest.param(f, a, id=n) for n, f, a in GRADS])
def test_check_grads(fun, args):
  check_grads(fun, args, order=2, rtol=1e-5, atol=1e-6)


def test_norm_logpdf_derivatives_in_closed_form():
  x, loc, scale = 1.3, 0.2, 1.7
  z = (x - loc) / scale
  grads = dfdx.grad(dst.norm.logpdf, (0, 1, 2))(x, loc, scale)
  np.testing.assert_allclose(grads, [-z / scale, z / scale, (z * z - 1) / scale], rtol=1e-14)


def test_norm_logcdf_far_left_tail():
  x = np.array([-1e5, -1000.0, -200.0, -40.0, -10.0, 0.0, 5.0])
  np.testing.assert_allclose(dst.norm.logcdf(x), ss.norm.logcdf(x), rtol=1e-14)
  grad = dfdx.vmap(dfdx.grad(dst.norm.logcdf))(x)
  # d log Phi(x) = phi(x) / Phi(x), about -x (Mills ratio) in the left tail
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad[:3], -x[:3], rtol=1e-4)
  special = pytest.importorskip("scipy.special")
  expected = np.where(x < 0, np.sqrt(2 / np.pi) / special.erfcx(-x / np.sqrt(2)),
                      np.exp(ss.norm.logpdf(x) - ss.norm.logcdf(x)))
  np.testing.assert_allclose(grad, expected, rtol=1e-13)
  hess = dfdx.vmap(dfdx.grad(dfdx.grad(dst.norm.logcdf)))(x[2:])
  assert np.all(np.isfinite(hess)) and np.all(hess < 0)


def test_finite_gradients_outside_support_and_for_invalid_parameters():
  fun = lambda x, a: dnp.sum(dnp.where(dnp.isfinite(v := dst.gamma.logpdf(x, a)), v, 0.0))  # noqa
  gx, ga = dfdx.grad(fun, (0, 1))(np.array([-1.0, 0.5, 2.0]), 2.0)
  assert np.all(np.isfinite(gx)) and np.isfinite(ga) and gx[0] == 0.0
  g = dfdx.grad(lambda s: dnp.sum(dnp.nan_to_num(dst.norm.logpdf(X[:3], 0.0, s))))(-1.0)
  assert g == 0.0


def test_shape_parameter_derivatives_of_distribution_functions():
  check_grads(lambda a, x: dst.gamma.cdf(x, a), (np.array([0.7, 2.0, 5.0]), 1.5), order=1)
  check_grads(lambda df: dst.chi2.logsf(np.array([0.5, 3.0, 9.0]), df), (3.0,), order=1)
  with pytest.raises(errors.MissingRuleError, match="gammainc_grad_a"):
    dfdx.grad(dfdx.grad(lambda a: dst.gamma.cdf(1.0, a)))(2.0)
  check_grads(lambda a, b: dst.beta.cdf(np.array([0.1, 0.3, 0.8]), a, b), (2.0, 3.0),
              order=1)
  check_grads(lambda a, b: dst.beta.logsf(0.6, a, b), (0.7, 1.5), order=1)
  check_grads(lambda df: dst.t.cdf(np.array([-2.0, -0.3, 0.0, 0.5, 4.0]), df), (2.5,),
              order=1)
  check_grads(lambda df: dst.t.logcdf(1.5, df), (np.array([0.9, 4.0, 30.0]),), order=1)
  with pytest.raises(errors.MissingRuleError, match="betainc_grad"):
    dfdx.grad(dfdx.grad(lambda a: dst.beta.cdf(0.3, a, 2.0)))(2.0)


def test_vmap_and_jit():
  x = np.linspace(-2.0, 2.0, 5)
  scales = np.array([0.5, 1.0, 2.0])
  batched = dfdx.vmap(lambda s: dst.norm.logcdf(x, 0.1, s))(scales)
  np.testing.assert_allclose(batched, [ss.norm.logcdf(x, 0.1, s) for s in scales], rtol=1e-14)
  loss = lambda m, c: dnp.sum(dst.multivariate_normal.logpdf(XD2.T, m, c))  # noqa: E731
  np.testing.assert_allclose(dfdx.jit(loss)(MEAN, COV), loss(MEAN, COV), rtol=1e-14)
  g = dfdx.jit(dfdx.grad(loss, (0, 1)))(MEAN, COV)
  for a, b in zip(g, dfdx.grad(loss, (0, 1))(MEAN, COV)):
    np.testing.assert_allclose(a, b, rtol=1e-12)
  f = lambda a, b: dnp.sum(dst.beta.logpdf(x / 3 + 0.5, a, b) + dst.t.cdf(x, 3.0))  # noqa
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(2.0, 3.0), dfdx.grad(f)(2.0, 3.0),
                             rtol=1e-13)


def test_norm_logpdf_needs_no_scipy():
  import subprocess
  import sys
  code = ("import sys; sys.modules['scipy'] = None\n"
          "import dfdx, dfdx.scipy.stats as s\n"
          "print(float(s.norm.logpdf(0.0)), float(s.multivariate_normal.logpdf([0.0], 0.0, 1.0)))"
          "\ntry:\n  s.norm.cdf(0.0)\nexcept ImportError as e:\n  print(e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  lines = out.stdout.strip().splitlines()
  assert lines[0] == f"{-0.5 * np.log(2 * np.pi)} {-0.5 * np.log(2 * np.pi)}"
  assert "pip install dfdx[scipy]" in lines[1]
