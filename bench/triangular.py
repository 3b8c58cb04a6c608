"""Triangular solves, Cholesky solves and a Gaussian-process marginal likelihood: dfdx (eager
and jit) beside NumPy/SciPy, one thread, medians of repeated calls.

The likelihood is the usual one of GP regression with a squared-exponential kernel,
  -log p(y) = 1/2 y^T K^-1 y + sum(log diag L) + n/2 log(2 pi),   K = L L^T,
differentiated with respect to the kernel matrix's parameters (log lengthscale, log signal
variance, log noise variance): a Cholesky factorization, a Cholesky solve and their
derivatives.

Run: python bench/triangular.py [--n 400 2000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
import dfdx.scipy.linalg as dsl  # noqa: E402


def median_ms(f, *args, repeats=5):
  f(*args)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(*args)
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def gp_problem(n, rng):
  x = np.sort(rng.uniform(0, 10, n))
  y = np.sin(x) + 0.1 * rng.normal(size=n)
  return x, y, np.array([0.0, 0.0, np.log(0.1)])


def gp_nll(theta, x, y):
  """-log p(y | x, theta) of GP regression, theta = (log lengthscale, log variance, log noise
  variance)."""
  ell, var, noise = dnp.exp(theta[0]), dnp.exp(theta[1]), dnp.exp(theta[2])
  d = (x[:, None] - x[None, :]) / ell
  k = var * dnp.exp(-0.5 * d * d) + noise * np.eye(len(x))
  c, lower = dsl.cho_factor(k, lower=True)
  alpha = dsl.cho_solve((c, lower), y)
  return (0.5 * dnp.dot(y, alpha) + dnp.sum(dnp.log(dnp.diagonal(c)))
          + 0.5 * len(x) * np.log(2 * np.pi))


def scipy_gp_nll(theta, x, y):
  ell, var, noise = np.exp(theta)
  d = (x[:, None] - x[None, :]) / ell
  k = var * np.exp(-0.5 * d * d) + noise * np.eye(len(x))
  c, lower = scipy.linalg.cho_factor(k, lower=True)
  alpha = scipy.linalg.cho_solve((c, lower), y)
  return 0.5 * y @ alpha + np.sum(np.log(np.diag(c))) + 0.5 * len(x) * np.log(2 * np.pi)


def solves(n, repeats, rng):
  lower = np.tril(rng.normal(size=(n, n))) + n * np.eye(n)
  b = rng.normal(size=n)
  spd = lower @ lower.T
  lu_piv = scipy.linalg.lu_factor(lower @ lower.T + lower)
  rows = [
      ("scipy.linalg.solve_triangular", lambda: scipy.linalg.solve_triangular(lower, b, 0, True)),
      ("dfdx solve_triangular", lambda: dsl.solve_triangular(lower, b, lower=True)),
      ("scipy.linalg.cho_solve", lambda: scipy.linalg.cho_solve((lower, True), b)),
      ("dfdx cho_solve", lambda: dsl.cho_solve((lower, True), b)),
      ("scipy.linalg.lu_solve", lambda: scipy.linalg.lu_solve(lu_piv, b)),
      ("dfdx lu_solve", lambda: dsl.lu_solve(lu_piv, b)),
      ("dfdx grad wrt b of sum(lu_solve)", lambda: g_lu(b)),
      ("dfdx grad wrt b of sum(solve_triangular)", lambda: g_b(b)),
      ("numpy cholesky", lambda: np.linalg.cholesky(spd)),
      ("dfdx grad of sum(cholesky(A))", lambda: g_chol(spd)),
  ]
  g_b = dfdx.grad(lambda b: dnp.sum(dsl.solve_triangular(lower, b, lower=True)))
  g_chol = dfdx.grad(lambda a: dnp.sum(dnp.linalg.cholesky(a)))
  g_lu = dfdx.grad(lambda b: dnp.sum(dsl.lu_solve(lu_piv, b)))
  for name, f in rows:
    print(f"  {name:45s} {median_ms(f, repeats=repeats):9.2f} ms")


def gp(n, repeats, rng):
  x, y, theta = gp_problem(n, rng)
  grad = dfdx.grad(gp_nll)
  jitted = dfdx.jit(dfdx.value_and_grad(gp_nll))
  g, g_jit = grad(theta, x, y), jitted(theta, x, y)[1]
  np.testing.assert_allclose(g, g_jit, rtol=1e-8)
  np.testing.assert_allclose(float(gp_nll(theta, x, y)), scipy_gp_nll(theta, x, y), rtol=1e-10)
  for name, f in (("scipy value (no derivative)", scipy_gp_nll), ("dfdx grad, eager", grad),
                  ("dfdx value_and_grad, jit", jitted)):
    print(f"  {name:45s} {median_ms(f, theta, x, y, repeats=repeats):9.2f} ms")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, nargs="+", default=[400, 2000])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  for n in args.n:
    print(f"n = {n}: solves")
    solves(n, args.repeats, rng)
    print(f"n = {n}: Gaussian-process negative log marginal likelihood")
    gp(n, args.repeats, rng)


if __name__ == "__main__":
  main()
