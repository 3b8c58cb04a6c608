"""dfdx.scipy.stats: every method against scipy.stats (values, dtypes, scalar results,
invalid parameters, points outside the support), derivatives in every parameter with
check_grads to order 2, the far left tail of norm.logcdf, vmap and jit.
"""
import math
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


# ---- expon, uniform, laplace, logistic, cauchy, lognorm, truncnorm, binom, bernoulli ----------

XI = np.concatenate([X, [np.inf, -np.inf, 1e-300, 700.0, -700.0]])
NEW_CONTINUOUS = [
    ("expon", (), {}), ("expon", (), dict(loc=0.3, scale=2.0)), ("expon", (), dict(scale=0.0)),
    ("uniform", (), {}), ("uniform", (), dict(loc=-1.0, scale=3.0)),
    ("uniform", (), dict(scale=-2.0)),
    ("laplace", (), {}), ("laplace", (), dict(loc=1.0, scale=0.5)),
    ("logistic", (), {}), ("logistic", (), dict(loc=-0.5, scale=3.0)),
    ("cauchy", (), {}), ("cauchy", (), dict(loc=2.0, scale=0.1)), ("cauchy", (), dict(scale=-1.0)),
    ("lognorm", (0.7,), {}), ("lognorm", (1.5,), dict(loc=-1.0, scale=2.0)),
    ("lognorm", (-1.0,), {}),
    ("truncnorm", (-1.0, 2.0), {}), ("truncnorm", (-np.inf, 0.5), {}),
    ("truncnorm", (0.5, np.inf), dict(loc=1.0)), ("truncnorm", (-np.inf, np.inf), {}),
    ("truncnorm", (2.0, 1.0), {}), ("truncnorm", (-0.5, 3.0), dict(loc=0.5, scale=2.0)),
]


@pytest.mark.parametrize("method", METHODS + ["ppf"])
@pytest.mark.parametrize("name,args,kwargs", NEW_CONTINUOUS)
def test_new_continuous_match_scipy(name, args, kwargs, method):
  ours, theirs = getattr(getattr(dst, name), method), getattr(getattr(ss, name), method)
  x = np.array([0.0, 1e-300, 1e-10, 0.1, 0.3, 0.5, 0.7, 1 - 1e-10, 1.0, 1.5, -0.2, np.nan]) \
      if method == "ppf" else XI
  if name == "laplace":  # SciPy's log-density underflows to -inf there (see below)
    x = x[np.abs(x) != 700]
  assert_like_scipy(ours(x, *args, **kwargs), theirs(x, *args, **kwargs))
  assert_like_scipy(ours(0.25, *args, **kwargs), theirs(0.25, *args, **kwargs))
  got, expected = ours(np.float32(x), *args, **kwargs), theirs(np.float32(x), *args, **kwargs)
  if method == "ppf":  # SciPy computes float32 quantiles in float32 (dfdx in float64)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, equal_nan=True)
  else:
    assert_like_scipy(got, expected)
  positional = args + tuple(kwargs.values())
  if "loc" in kwargs or not kwargs:
    assert_like_scipy(ours(x[:5], *positional), theirs(x[:5], *positional))


@pytest.mark.parametrize("method", METHODS + ["ppf"])
@pytest.mark.parametrize("a,b", [(-30.0, -20.0), (3.0, 8.0), (-40.0, 40.0), (-1e-3, 1e-3),
                                 (10.0, np.inf)])
def test_truncnorm_in_the_tails(a, b, method):
  if method == "ppf":
    x = np.array([1e-12, 0.01, 0.3, 0.5, 0.9, 1 - 1e-12])
  else:
    x = np.array([a - 1, a, a + 1e-6, (a + b) / 2 if np.isfinite(b) else a + 1, b - 1e-6, b,
                  b + 1])
  ours, theirs = getattr(dst.truncnorm, method), getattr(ss.truncnorm, method)
  assert_like_scipy(ours(x, a, b), theirs(x, a, b), rtol=1e-9)


def test_laplace_logs_are_exact_in_the_tails():
  x = np.array([-1000.0, -700.0, 700.0, 1000.0])
  np.testing.assert_allclose(dst.laplace.logpdf(x, 1.0, 0.5), -np.abs(x - 1) / 0.5 - np.log(1.0),
                             rtol=1e-15)
  np.testing.assert_allclose(dst.laplace.logcdf(x[:2]), x[:2] - np.log(2), rtol=1e-15)
  np.testing.assert_allclose(dst.laplace.logsf(-x[:2]), x[:2] - np.log(2), rtol=1e-15)
  assert np.all(np.isfinite(dfdx.vmap(dfdx.grad(dst.laplace.logcdf))(x)))


def test_broadcasting_new_parameters():
  x = np.linspace(0.1, 2.0, 4)
  s, loc = np.array([[0.5], [1.5]]), np.array([0.0, 0.05, -0.1, 0.0])
  assert_like_scipy(dst.lognorm.logcdf(x, s, loc), ss.lognorm.logcdf(x, s, loc))
  a, b = np.array([[-1.0], [0.2]]), np.array([0.5, 1.0, 2.0, np.inf])
  assert_like_scipy(dst.truncnorm.logpdf(0.3, a, b), ss.truncnorm.logpdf(0.3, a, b))
  assert_like_scipy(dst.truncnorm.ppf(0.4, a, b, scale=2.0), ss.truncnorm.ppf(0.4, a, b, scale=2.0))


K = np.array([-1.0, 0.0, 1.0, 2.5, 3.0, 5.0, 6.0, np.nan, np.inf, -np.inf])
DISCRETE = [("binom", (5, 0.3)), ("binom", (5, 0.0)), ("binom", (5, 1.0)), ("binom", (0, 0.3)),
            ("binom", (12, 0.81)), ("binom", (2.5, 0.3)), ("binom", (5, 1.3)),
            ("binom", (-1, 0.3)), ("bernoulli", (0.3,)), ("bernoulli", (1.0,)),
            ("bernoulli", (0.0,)), ("bernoulli", (-0.1,))]


@pytest.mark.parametrize("method", ["logpmf", "pmf", "cdf", "logcdf", "sf", "logsf"])
@pytest.mark.parametrize("name,args", DISCRETE)
def test_discrete_match_scipy(name, args, method):
  ours, theirs = getattr(getattr(dst, name), method), getattr(getattr(ss, name), method)
  if method == "logcdf" and np.isnan(getattr(ss, name).pmf(0, *args)):
    # SciPy's rv_discrete.logcdf gives 0 above the support even for invalid parameters (its
    # cdf gives NaN there); dfdx gives NaN for invalid parameters, as for every other method.
    assert np.all(np.isnan(ours(K, *args)))
    return
  for loc in (0, 1, 0.5):
    assert_like_scipy(ours(K, *args, loc=loc), theirs(K, *args, loc=loc), rtol=1e-12)
  assert_like_scipy(ours(2, *args), theirs(2, *args), rtol=1e-12)
  assert_like_scipy(ours(np.arange(7.0)[:, None], *args), theirs(np.arange(7.0)[:, None], *args),
                    rtol=1e-12)


NEW_GRADS = [
    ("expon.logpdf", lambda x, l, s: dst.expon.logpdf(x, l, s), (1.3, 0.1, 1.5)),
    ("expon.logcdf", lambda x, l, s: dst.expon.logcdf(x, l, s), (np.array([0.3, 2.0, 40.0]),
                                                                  0.1, 1.5)),
    ("expon.ppf", lambda q, l, s: dst.expon.ppf(q, l, s), (np.array([0.1, 0.5, 0.99]), 0.1, 1.5)),
    ("uniform.logpdf", lambda x, l, s: dst.uniform.logpdf(x, l, s), (0.3, -0.5, 2.0)),
    ("uniform.cdf", lambda x, l, s: dst.uniform.cdf(x, l, s), (0.3, -0.5, 2.0)),
    ("uniform.logsf", lambda x, l, s: dst.uniform.logsf(x, l, s), (0.3, -0.5, 2.0)),
    ("uniform.ppf", lambda q, l, s: dst.uniform.ppf(q, l, s), (0.3, -0.5, 2.0)),
    ("laplace.logpdf", lambda x, l, s: dst.laplace.logpdf(x, l, s),
     (np.array([-2.0, 0.7, 3.0]), 0.1, 1.5)),
    ("laplace.logcdf", lambda x, l, s: dst.laplace.logcdf(x, l, s),
     (np.array([-40.0, -0.7, 0.8, 30.0]), 0.1, 1.5)),
    ("laplace.sf", lambda x: dst.laplace.sf(x, 0.1, 1.5), (np.array([-2.0, 0.7, 3.0]),)),
    ("laplace.ppf", lambda q, s: dst.laplace.ppf(q, 0.1, s), (np.array([0.1, 0.4, 0.8]), 1.5)),
    ("logistic.logpdf", lambda x, l, s: dst.logistic.logpdf(x, l, s),
     (np.array([-30.0, 0.5, 20.0]), 0.1, 1.5)),
    ("logistic.logcdf", lambda x, s: dst.logistic.logcdf(x, scale=s),
     (np.array([-300.0, 0.5, 20.0]), 1.5)),
    ("logistic.logsf", lambda x: dst.logistic.logsf(x), (np.array([-20.0, 0.5, 300.0]),)),
    ("logistic.ppf", lambda q, l, s: dst.logistic.ppf(q, l, s), (np.array([0.1, 0.6]), 0.1, 1.5)),
    ("cauchy.logpdf", lambda x, l, s: dst.cauchy.logpdf(x, l, s),
     (np.array([-30.0, 0.5, 0.9, 3.0]), 0.1, 1.5)),
    ("cauchy.cdf", lambda x, l, s: dst.cauchy.cdf(x, l, s), (np.array([-3.0, 0.5]), 0.1, 1.5)),
    ("cauchy.logsf", lambda x: dst.cauchy.logsf(x), (np.array([-3.0, 0.5, 50.0]),)),
    ("cauchy.ppf", lambda q, l, s: dst.cauchy.ppf(q, l, s),
     (np.array([0.05, 0.3, 0.5, 0.8]), 0.1, 1.5)),
    ("lognorm.logpdf", lambda x, sh, l, s: dst.lognorm.logpdf(x, sh, l, s), (1.3, 0.8, 0.1, 1.5)),
    ("lognorm.logcdf", lambda x, sh: dst.lognorm.logcdf(x, sh), (np.array([0.01, 1.0, 9.0]), 0.8)),
    ("lognorm.sf", lambda x, sh, s: dst.lognorm.sf(x, sh, scale=s), (0.7, 0.8, 1.5)),
    ("lognorm.ppf", lambda q, sh, s: dst.lognorm.ppf(q, sh, scale=s), (0.3, 0.8, 1.5)),
    ("truncnorm.logpdf", lambda x, a, b, l, s: dst.truncnorm.logpdf(x, a, b, l, s),
     (0.3, -0.8, 1.2, 0.1, 1.5)),
    ("truncnorm.logpdf-tails", lambda a, b: dst.truncnorm.logpdf(-24.0, a, b),
     (-25.0, -20.0)),
    ("truncnorm.cdf", lambda x, a, b: dst.truncnorm.cdf(x, a, b),
     (np.array([-0.5, 0.2, 1.0]), -0.8, 1.2)),
    ("truncnorm.logcdf", lambda x, a, b: dst.truncnorm.logcdf(x, a, b),
     (np.array([0.55, 1.0, 3.0]), 0.5, 3.5)),
    ("truncnorm.logsf", lambda x, a, b: dst.truncnorm.logsf(x, a, b),
     (np.array([-2.0, -0.5, 0.3]), -2.5, 0.5)),
    ("truncnorm.ppf", lambda q, a, b, s: dst.truncnorm.ppf(q, a, b, scale=s),
     (np.array([0.1, 0.5, 0.9]), -0.8, 1.2, 1.5)),
    ("truncnorm.ppf-right", lambda q, a, b: dst.truncnorm.ppf(q, a, b),
     (np.array([0.1, 0.5, 0.9]), 0.5, 2.0)),
    ("binom.logpmf", lambda p: dst.binom.logpmf(np.array([0.0, 2.0, 5.0]), 5, p), (0.3,)),
    ("binom.pmf", lambda p: dst.binom.pmf(np.array([0.0, 2.0, 5.0]), 5, p), (0.3,)),
    ("binom.cdf", lambda p: dst.binom.cdf(np.array([0.0, 2.5, 4.0]), 5, p), (0.3,)),
    ("binom.logsf", lambda p: dst.binom.logsf(np.array([0.0, 2.5, 4.0]), 5, p), (0.3,)),
    ("bernoulli.logpmf", lambda p: dst.bernoulli.logpmf(np.array([0.0, 1.0]), p), (0.3,)),
    ("bernoulli.cdf", lambda p: dst.bernoulli.cdf(np.array([0.0, 0.5]), p), (0.3,)),
]


@pytest.mark.parametrize("fun,args", [pytest.param(f, a, id=n) for n, f, a in NEW_GRADS])
def test_new_check_grads(fun, args):
  check_grads(fun, args, order=2, rtol=1e-5, atol=1e-6)


def test_new_derivatives_in_closed_form():
  x, loc, scale = 1.3, 0.2, 1.7
  z = (x - loc) / scale
  np.testing.assert_allclose(dfdx.grad(dst.expon.logpdf, (0, 1, 2))(x, loc, scale),
                             [-1 / scale, 1 / scale, (z - 1) / scale], rtol=1e-14)
  np.testing.assert_allclose(dfdx.grad(dst.uniform.logpdf, (0, 1, 2))(x, loc, scale),
                             [0.0, 0.0, -1 / scale], atol=1e-15)
  np.testing.assert_allclose(dfdx.grad(dst.laplace.logpdf, (0, 2))(x, loc, scale),
                             [-1 / scale, (z - 1) / scale], rtol=1e-14)
  np.testing.assert_allclose(dfdx.grad(dst.cauchy.cdf)(x, loc, scale),
                             ss.cauchy.pdf(x, loc, scale), rtol=1e-14)
  np.testing.assert_allclose(dfdx.grad(dst.cauchy.ppf)(0.5), np.pi, rtol=1e-14)
  np.testing.assert_allclose(dfdx.grad(dst.logistic.cdf)(x, loc, scale),
                             ss.logistic.pdf(x, loc, scale), rtol=1e-14)
  s = 0.6
  np.testing.assert_allclose(dfdx.grad(dst.lognorm.cdf)(x, s), ss.lognorm.pdf(x, s), rtol=1e-14)
  a, b = -0.4, 1.1
  np.testing.assert_allclose(dfdx.grad(dst.truncnorm.cdf)(0.3, a, b),
                             ss.truncnorm.pdf(0.3, a, b), rtol=1e-13)
  q = 0.3  # d ppf / dq = 1 / pdf(ppf(q))
  np.testing.assert_allclose(dfdx.grad(dst.truncnorm.ppf)(q, a, b),
                             1 / ss.truncnorm.pdf(ss.truncnorm.ppf(q, a, b), a, b), rtol=1e-12)
  # d/dp of binom.cdf(k) is -n pmf(k; n - 1, p)
  n, k, p = 7, 3.0, 0.35
  np.testing.assert_allclose(dfdx.grad(dst.binom.cdf, 2)(k, n, p), -n * ss.binom.pmf(k, n - 1, p),
                             rtol=1e-12)
  np.testing.assert_allclose(dfdx.grad(dst.binom.logpmf, 2)(k, n, p), k / p - (n - k) / (1 - p),
                             rtol=1e-13)
  np.testing.assert_allclose(dfdx.grad(dst.bernoulli.pmf, 1)(np.array([0.0, 1.0]).sum(), p), 1.0,
                             rtol=1e-14)


def test_truncnorm_derivatives_are_finite_at_infinite_ends():
  # a standardized end at -inf (a one-sided truncation) whose value depends on loc: the
  # derivative of the normalizing mass there is 0, not 0 * inf
  def logpdf(mu):
    return dst.truncnorm.logpdf(0.4, (-np.inf - mu) / 0.8, (1.0 - mu) / 0.8, loc=mu, scale=0.8)
  g = dfdx.grad(logpdf)(0.1)
  h = 1e-6
  assert np.isfinite(g)
  np.testing.assert_allclose(g, (logpdf(0.1 + h) - logpdf(0.1 - h)) / (2 * h), rtol=1e-6)
  for method in ("logcdf", "logsf", "ppf"):
    value = 0.3 if method == "ppf" else 0.4
    grads = dfdx.grad(getattr(dst.truncnorm, method), (0, 1, 2))(value, -np.inf, 1.2)
    assert np.all(np.isfinite(grads)) and grads[1] == 0.0, (method, grads)
    grads = dfdx.grad(getattr(dst.truncnorm, method), (0, 1, 2))(value, -1.2, np.inf)
    assert np.all(np.isfinite(grads)) and grads[2] == 0.0, (method, grads)


def test_new_distributions_gradients_outside_the_support_are_finite():
  for dist, args in ((dst.expon, ()), (dst.uniform, ()), (dst.lognorm, (0.7,)),
                     (dst.truncnorm, (-1.0, 1.0))):
    def f(x, scale, dist=dist, args=args):
      v = dist.logpdf(x, *args, scale=scale)
      return dnp.sum(dnp.where(dnp.isfinite(v), v, 0.0))
    gx, gs = dfdx.grad(f, (0, 1))(np.array([-3.0, 0.5, 3.0]), 1.2)
    assert np.all(np.isfinite(gx)) and np.isfinite(gs), (dist, gx, gs)
  g = dfdx.grad(lambda p: dnp.sum(dnp.nan_to_num(dst.binom.logpmf(K[:7], 5, p))))(0.0)
  assert np.isfinite(g) or g == np.inf  # 0 log 0 terms are 0, k log p gives +inf at p = 0


def test_new_distributions_under_vmap_and_jit():
  x = np.linspace(0.1, 2.0, 5)
  scales = np.array([0.5, 1.0, 2.0])
  for dist, args in ((dst.lognorm, (0.7,)), (dst.truncnorm, (-0.5, 1.5)), (dst.cauchy, ()),
                     (dst.expon, ())):
    batched = dfdx.vmap(lambda s: dist.logcdf(x, *args, scale=s))(scales)
    ref = getattr(ss, dist.name).logcdf
    np.testing.assert_allclose(batched, [ref(x, *args, scale=s) for s in scales], rtol=1e-12)

  def loss(mu, s, p):
    return (dnp.sum(dst.truncnorm.logpdf(x, -1.0, 2.0, mu, s) + dst.laplace.logcdf(x, mu, s))
            + dnp.sum(dst.binom.logpmf(np.array([1.0, 3.0]), 4, p)) + dst.lognorm.ppf(0.3, s))
  args = (0.2, 1.3, 0.4)
  np.testing.assert_allclose(dfdx.jit(loss)(*args), loss(*args), rtol=1e-14)
  for a, b in zip(dfdx.jit(dfdx.grad(loss, (0, 1, 2)))(*args), dfdx.grad(loss, (0, 1, 2))(*args)):
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_new_distributions_need_no_scipy():
  import subprocess
  import sys
  code = ("import sys; sys.modules['scipy'] = None\n"
          "import dfdx, dfdx.scipy.stats as s\n"
          "print(float(s.expon.logcdf(1.0)), float(s.laplace.ppf(0.5)), "
          "float(s.logistic.cdf(0.0)), float(s.cauchy.sf(0.0)), float(s.uniform.pdf(0.5)), "
          "float(s.lognorm.logpdf(1.0, 1.0)))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == [str(np.log(1 - np.exp(-1.0))), "0.0", "0.5", "0.5", "1.0",
                                str(-0.5 * np.log(2 * np.pi))]


# ---- t at infinite and large df --------------------------------------------------------------


@pytest.mark.parametrize("method", ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"])
def test_t_with_infinite_df_is_the_normal_distribution(method):
  x = np.array([-3.0, -0.5, 0.0, 0.5, 2.0])
  expected = getattr(ss.t, method)(x, np.inf, 0.2, 1.5)
  np.testing.assert_allclose(expected, getattr(ss.norm, method)(x, 0.2, 1.5), rtol=1e-14)
  fun = lambda x, df: getattr(dst.t, method)(x, df, 0.2, 1.5)  # noqa: E731
  assert_like_scipy(fun(x, np.inf), expected, rtol=1e-14)
  np.testing.assert_allclose(dfdx.jit(fun)(x, np.inf), expected, rtol=1e-14)
  np.testing.assert_allclose(dfdx.vmap(fun, (0, None))(x, np.inf), expected, rtol=1e-14)
  # derivatives in x: those of the normal distribution's method
  grad = dfdx.vmap(dfdx.grad(fun), (0, None))(x, np.inf)
  normal = dfdx.vmap(dfdx.grad(lambda x: getattr(dst.norm, method)(x, 0.2, 1.5)))(x)
  np.testing.assert_allclose(grad, normal, rtol=1e-13, atol=1e-16)
  check_grads(lambda x: fun(x, np.inf), (x,), order=2)


def test_t_logpdf_derivative_in_df_at_infinity_is_zero():
  assert dfdx.grad(dst.t.logpdf, argnums=1)(0.5, np.inf) == 0
  assert dfdx.grad(dst.t.cdf, argnums=1)(0.5, np.inf) == 0


@pytest.mark.parametrize("df", [10.0, 15.9, 16.0, 16.1, 30.0, 1e3, 1e6, 1e10, 1e16, 1e300])
def test_t_logpdf_for_large_df_has_no_cancellation(df):
  # against mpmath's log density (the difference of log-gammas at 60 digits); SciPy's own
  # (log poch) is off by about 4e-13 at df = 1e3
  mp = pytest.importorskip("mpmath")
  x = np.array([0.0, 0.5, -2.0, 7.0])
  with mp.workdps(60 if df < 1e20 else 400):
    nu = mp.mpf(df)
    expected = [float(mp.loggamma((nu + 1) / 2) - mp.loggamma(nu / 2) - mp.log(nu * mp.pi) / 2
                      - (nu + 1) / 2 * mp.log1p(mp.mpf(v) ** 2 / nu)) for v in x]
  # (the series from df = 16 on; below, the difference of gammaln, within eps |gammaln|)
  rtol = 1e-15 if df >= 16 else 5e-15
  np.testing.assert_allclose(dst.t.logpdf(x, df), expected, rtol=rtol, atol=2e-16)
  np.testing.assert_allclose(dfdx.jit(dst.t.logpdf)(x, df), expected, rtol=rtol, atol=2e-16)
  np.testing.assert_allclose(dst.t.logpdf(x, df), ss.t.logpdf(x, df), rtol=1e-12)
  # the derivative in df, continuous across the switch to the series at df = 16
  h = 1e-4 * df
  got = dfdx.vmap(dfdx.grad(dst.t.logpdf, argnums=1), (0, None))(x, df)
  numeric = (ss.t.logpdf(x, df + h) - ss.t.logpdf(x, df - h)) / (2 * h)
  if df <= 1e3:
    np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-12)
  else:
    assert np.all(np.isfinite(got)) and np.all(np.abs(got) < 1e-5)


def test_t_logpdf_check_grads_across_the_series_switch():
  x = np.array([-1.5, 0.3, 2.0])
  for df in (12.0, 16.0, 20.0):
    check_grads(lambda x, df: dst.t.logpdf(x, df, 0.1, 1.3), (x, df), order=2)


# ---- pmfs at the ends of the parameter range ------------------------------------------------


def _binom_pmf_dp(k, n, p):
  """d/dp of C(n, k) p^k (1-p)^(n-k), with 0^0 = 1."""
  c = math.comb(n, k)
  up = k * p ** (k - 1) * (1 - p) ** (n - k) if k else 0.0
  down = (n - k) * p ** k * (1 - p) ** (n - k - 1) if n - k else 0.0
  return c * (up - down)


@pytest.mark.parametrize("p", [0.0, 1.0, 0.3])
def test_binom_and_bernoulli_pmf_derivatives_at_the_ends(p):
  ks = np.arange(6.0)
  expected = [_binom_pmf_dp(int(k), 5, p) for k in ks]
  grad = dfdx.grad(dst.binom.pmf, argnums=2)
  got = [grad(k, 5.0, p) for k in ks]
  np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(dfdx.vmap(grad, (0, None, None))(ks, 5.0, p), expected,
                             rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(dfdx.jit(grad)(1.0, 5.0, p), expected[1], rtol=1e-14, atol=1e-15)
  got = dfdx.vmap(dfdx.grad(dst.bernoulli.pmf, argnums=1), (0, None))(np.array([0.0, 1.0]), p)
  np.testing.assert_allclose(got, [-1.0, 1.0], rtol=1e-15)
  # the values stay SciPy's
  assert_like_scipy(dst.binom.pmf(ks, 5.0, p), ss.binom.pmf(ks, 5, p), rtol=1e-13)
  np.testing.assert_allclose(dfdx.jit(dst.binom.pmf)(ks, 5.0, p), ss.binom.pmf(ks, 5, p),
                             rtol=1e-13)


def test_binom_pmf_second_derivative_at_p_zero_and_check_grads_inside():
  # 5 p (1-p)^4: d2/dp2 = -40 at p = 0
  np.testing.assert_allclose(dfdx.grad(dfdx.grad(dst.binom.pmf, argnums=2), argnums=2)(
      1.0, 5.0, 0.0), -40.0, rtol=1e-14)
  check_grads(lambda p: dst.binom.pmf(np.arange(6.0), 5.0, p), (0.3,), order=2)
  check_grads(lambda p: dst.bernoulli.pmf(np.array([0.0, 1.0]), p), (0.6,), order=2)


def test_poisson_pmf_derivatives_at_mu_zero():
  # d/dmu mu^k e^-mu / k! = (k mu^(k-1) - mu^k) e^-mu / k!: -1, 1, 0, 0 at mu = 0
  ks = np.array([0.0, 1.0, 2.0, 3.0])
  grad = dfdx.grad(dst.poisson.pmf, argnums=1)
  np.testing.assert_allclose([grad(k, 0.0) for k in ks], [-1.0, 1.0, 0.0, 0.0], rtol=1e-15)
  np.testing.assert_allclose(dfdx.vmap(grad, (0, None))(ks, 0.0), [-1.0, 1.0, 0.0, 0.0],
                             rtol=1e-15)
  assert dfdx.jit(grad)(1.0, 0.0) == 1.0
  np.testing.assert_allclose(dfdx.grad(dfdx.grad(dst.poisson.pmf, argnums=1), argnums=1)(
      1.0, 0.0), -2.0, rtol=1e-15)  # mu e^-mu
  for mu in (0.0, 2.5):
    assert_like_scipy(dst.poisson.pmf(ks, mu), ss.poisson.pmf(ks, mu), rtol=1e-13)
  expected = [(k * 2.5 ** (k - 1) - 2.5 ** k) * np.exp(-2.5) / math.factorial(int(k))
              for k in ks]
  np.testing.assert_allclose(dfdx.vmap(grad, (0, None))(ks, 2.5), expected, rtol=1e-13)
  check_grads(lambda mu: dst.poisson.pmf(ks, mu), (2.5,), order=2)


@pytest.mark.parametrize("method", ["cdf", "sf", "logcdf", "logsf"])
def test_binom_distribution_functions_with_n_zero_have_zero_derivatives(method):
  # n = 0: the distribution sits at 0; every method is constant in p (no NaN from a
  # betainc(0, 1, .) that the result does not use)
  ks = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
  for p in (0.0, 0.4, 1.0):
    assert_like_scipy(getattr(dst.binom, method)(ks, 0.0, p), getattr(ss.binom, method)(ks, 0, p))
    grad = dfdx.grad(getattr(dst.binom, method), argnums=2)
    got = dfdx.vmap(grad, (0, None, None))(ks, 0.0, p)
    np.testing.assert_array_equal(got, np.zeros(5))
    assert dfdx.jit(grad)(0.0, 0.0, p) == 0
  # inside the support the derivative is kept: against central differences
  f = lambda p: getattr(ss.binom, method)(2.0, 5, p)  # noqa: E731
  np.testing.assert_allclose(dfdx.grad(getattr(dst.binom, method), argnums=2)(2.0, 5.0, 0.3),
                             (f(0.3 + 1e-6) - f(0.3 - 1e-6)) / 2e-6, rtol=1e-7)
