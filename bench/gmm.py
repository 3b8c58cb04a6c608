"""ADBench's GMM objective (Srajer et al. 2018): value and gradient, dfdx against a hand-written
NumPy gradient and the peers, in one run.

The objective is ADBench's log-likelihood of n points under a K-component Gaussian mixture
in d dimensions (computed here with the points along the last axis, the layout in which
Q (x - mu) is one batched matmul, for every tool alike), each component's inverse covariance given by
its Cholesky-like factor Q = diag(exp(icf[:, :d])) + L (L strictly lower triangular, from
icf[:, d:] in column-major order), plus a Wishart prior. Data as ADBench generates it
(seed 31337): alphas, icf and x standard normal, means uniform(0, 1), gamma = 1, m = 0.

Columns: dfdx jit(value_and_grad) (the issue-3 target: within 1.1x of the hand-written NumPy
gradient at every size, faster than JAX-jit at (64, 100)), dfdx eager value_and_grad, the
hand-written NumPy value-and-gradient, JAX jit, autograd and PyTorch (eager backward). Every
tool's gradient is checked against the hand-written one first (a tool that disagrees is
reported, not timed). First-call times are reported too, and "compile", the first call minus
a steady call: tracing, passes and code generation for dfdx jit, XLA compilation for JAX.

Run: python bench/gmm.py [--sizes 2,5 10,25 20,50 64,100] [--samples 7]
"""
from __future__ import annotations

import os

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import seconds_per_call, single_threaded  # noqa: E402

single_threaded()

import argparse  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402

N_POINTS = 1000
SIZES = [(2, 5), (10, 25), (20, 50), (64, 100)]


# ---- data -------------------------------------------------------------------------------------


def gmm_data(d, k, n=N_POINTS, seed=31337):
  """ADBench's generator: one uniform and one normal stream, consumed in ADBench's order."""
  rng = np.random.RandomState(seed)
  k_max, n_max = 200, 10000
  uniform = rng.uniform(0, 1, k_max * d)
  normal = rng.normal(0, 1, k_max * (1 + d + d * (d - 1) // 2) + n_max * d)
  p = d + d * (d - 1) // 2
  alphas = normal[:k]
  means = uniform[:k * d].reshape(k, d)
  icf = normal[k:k + k * p].reshape(k, p)
  x = normal[k + k * p:k + k * p + n * d].reshape(n, d)
  return alphas, means, icf, x, 1.0, 0


def lower_triangle_indices(d):
  """Row and column of each strictly-lower entry of L, in ADBench's (column-major) order."""
  rows, cols = [], []
  for j in range(d):
    for i in range(j + 1, d):
      rows.append(i)
      cols.append(j)
  return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)


@functools.lru_cache(maxsize=None)
def _gather_plan(d):
  """Index into [icf_offdiag, 0] giving L flattened row-major: the last slot is a zero."""
  rows, cols = lower_triangle_indices(d)
  plan = np.full(d * d, len(rows), dtype=np.intp)
  plan[rows * d + cols] = np.arange(len(rows))
  return plan


def log_gamma_distrib(a, p):
  return 0.25 * p * (p - 1) * math.log(math.pi) + sum(math.lgamma(a - 0.5 * j)
                                                      for j in range(p))


def wishart_constant(d, k, gamma, m):
  n = d + m + 1
  return k * (n * d * math.log(gamma / math.sqrt(2)) - log_gamma_distrib(0.5 * n, d))


# ---- the objective, written once --------------------------------------------------------
# `xp` is an array namespace with NumPy's API: dfdx.numpy, and for the peers jax.numpy or
# autograd.numpy; PyTorch, whose API differs, has its own transcription below.


def make_gmm_objective(xp):
  def logsumexp(a, axis=None):
    mx = xp.max(a, axis=axis, keepdims=True)
    return xp.log(xp.sum(xp.exp(a - mx), axis=axis)) + xp.squeeze(mx, axis=axis)

  def gmm_objective(alphas, means, icf, x, gamma, m):
    n, d = x.shape
    k = alphas.shape[0]
    plan = _gather_plan(d)
    log_q = icf[:, :d]
    q_diags = xp.exp(log_q)
    sum_qs = xp.sum(log_q, axis=1)
    offdiag = icf[:, d:]
    padded = xp.concatenate([offdiag, xp.zeros((k, 1))], axis=1)
    # Q = diag(exp(icf[:, :d])) + L, and points along the last axis, (K, d, n), so that
    # Q (x - mu) is one batched matmul.
    qs = xp.reshape(padded[:, plan], (k, d, d)) + q_diags[:, :, None] * np.eye(d)
    xcentered = xp.transpose(x)[None, :, :] - means[:, :, None]
    lxcentered = xp.matmul(qs, xcentered)
    inner = (alphas + sum_qs)[:, None] - 0.5 * xp.sum(lxcentered ** 2, axis=1)
    prior = xp.sum(0.5 * gamma ** 2 * (xp.sum(q_diags ** 2, axis=1)
                                       + xp.sum(offdiag ** 2, axis=1)) - m * sum_qs)
    constant = -n * d * 0.5 * math.log(2 * math.pi) - wishart_constant(d, k, gamma, m)
    return (constant + xp.sum(logsumexp(inner, axis=0)) - n * logsumexp(alphas)
            + prior)
  return gmm_objective


gmm_objective = make_gmm_objective(dnp)


# ---- the hand-written NumPy value and gradient (the floor) -------------------------------


def gmm_value_and_grad_numpy(alphas, means, icf, x, gamma, m, rows, cols):
  """Value and gradient derived by hand, written for speed: everything in a (K, d, n) layout
  so that every contraction is a batched BLAS matmul."""
  n, d = x.shape
  k = alphas.shape[0]
  log_q = icf[:, :d]
  q = np.exp(log_q)
  offdiag = icf[:, d:]
  big_q = np.zeros((k, d, d))
  big_q[:, rows, cols] = offdiag
  big_q[:, np.arange(d), np.arange(d)] = q
  z = x.T[None, :, :] - means[:, :, None]                        # k, d, n: x - mu
  y = big_q @ z                                                  # k, d, n: Q (x - mu)
  inner = (alphas + log_q.sum(1))[:, None] - 0.5 * np.einsum("kdn,kdn->kn", y, y)
  mx = inner.max(axis=0)
  e = np.exp(inner - mx)
  s = e.sum(axis=0)
  w = e / s                                                      # k, n: responsibilities
  amx = alphas.max()
  ea = np.exp(alphas - amx)
  prior = np.sum(0.5 * gamma ** 2 * ((q ** 2).sum(1) + (offdiag ** 2).sum(1)) - m * log_q.sum(1))
  constant = -n * d * 0.5 * math.log(2 * math.pi) - wishart_constant(d, k, gamma, m)
  value = constant + np.sum(np.log(s) + mx) - n * (np.log(ea.sum()) + amx) + prior
  wk = w.sum(axis=1)
  g_alphas = wk - n * ea / ea.sum()
  wy = y * w[:, None, :]                                         # k, d, n
  g_means = (big_q.transpose(0, 2, 1) @ wy.sum(axis=2)[:, :, None])[:, :, 0]
  g_q = -(wy @ z.transpose(0, 2, 1))                             # d inner / d Q, summed
  g_log_q = g_q[:, np.arange(d), np.arange(d)] * q + wk[:, None] + gamma ** 2 * q ** 2 - m
  g_offdiag = g_q[:, rows, cols] + gamma ** 2 * offdiag
  return value, (g_alphas, g_means, np.concatenate([g_log_q, g_offdiag], axis=1))


# ---- peers ------------------------------------------------------------------------------------


def jax_tool(d, plan):
  import jax
  import jax.numpy as jnp
  jax.config.update("jax_enable_x64", True)
  vg = jax.jit(jax.value_and_grad(make_gmm_objective(jnp), argnums=(0, 1, 2)),
               static_argnums=(4, 5))

  def run(alphas, means, icf, x, gamma, m):
    value, grads = vg(alphas, means, icf, x, gamma, m)
    return float(value), tuple(np.asarray(g) for g in grads)
  return run


def autograd_tool(d, plan):
  import autograd
  import autograd.numpy as anp
  return autograd.value_and_grad(make_gmm_objective(anp), (0, 1, 2))


def torch_tool(d, plan):
  import torch
  torch.set_num_threads(1)
  plan_t = torch.as_tensor(plan)

  def lse(a, dim=None):
    return torch.logsumexp(a, dim=dim) if dim is not None else torch.logsumexp(a, 0)

  def objective(alphas, means, icf, x, gamma, m):
    n, dd = x.shape
    k = alphas.shape[0]
    log_q = icf[:, :dd]
    q = torch.exp(log_q)
    offdiag = icf[:, dd:]
    ls = torch.cat([offdiag, torch.zeros((k, 1), dtype=icf.dtype)], 1)[:, plan_t].reshape(
        k, dd, dd)
    z = x.T[None, :, :] - means[:, :, None]
    lz = torch.matmul(ls + q[:, :, None] * torch.eye(dd, dtype=ls.dtype), z)
    inner = (alphas + log_q.sum(1))[:, None] - 0.5 * torch.sum(lz ** 2, 1)
    prior = torch.sum(0.5 * gamma ** 2 * ((q ** 2).sum(1) + (offdiag ** 2).sum(1))
                      - m * log_q.sum(1))
    constant = -n * dd * 0.5 * math.log(2 * math.pi) - wishart_constant(dd, k, gamma, m)
    return constant + torch.sum(lse(inner, 0)) - n * lse(alphas) + prior

  def run(alphas, means, icf, x, gamma, m):
    params = [torch.tensor(v, requires_grad=True) for v in (alphas, means, icf)]
    value = objective(*params, torch.as_tensor(x), gamma, m)
    value.backward()
    return float(value), tuple(p.grad.numpy() for p in params)
  return run


# ---- timing ---------------------------------------------------------------------------------


def relative_error(a, b):
  """ADBench's per-entry metric |a - b| / max(1, |a| + |b|), maximized."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a) + np.abs(b)))) if a.size else 0.0


def first_call_seconds(make):
  start = time.perf_counter()
  fn = make()
  fn()
  return time.perf_counter() - start, fn


def run_size(d, k, samples):
  data = gmm_data(d, k)
  rows, cols = lower_triangle_indices(d)
  plan = _gather_plan(d)
  reference = gmm_value_and_grad_numpy(*data, rows, cols)
  tools = {
      "numpy by hand": lambda: lambda: gmm_value_and_grad_numpy(*data, rows, cols),
      "dfdx jit": lambda: (lambda vg: lambda: vg(*data))(
          dfdx.jit(dfdx.value_and_grad(gmm_objective, (0, 1, 2)), static_argnums=(4, 5))),
      "dfdx eager": lambda: lambda: dfdx.value_and_grad(gmm_objective, (0, 1, 2))(*data),
  }
  for name, maker in (("jax jit", jax_tool), ("autograd", autograd_tool),
                      ("pytorch", torch_tool)):
    try:
      run = maker(d, plan)
      tools[name] = lambda run=run: lambda: run(*data)
    except ImportError:
      pass
  results = {}
  for name, make in tools.items():
    first, fn = first_call_seconds(make)
    value, grads = fn()
    error = max([relative_error(value, reference[0])]
                + [relative_error(g, r) for g, r in zip(grads, reference[1])])
    results[name] = {"first": first, "fn": fn, "error": error, "times": []}
  for _ in range(samples):
    for name, r in results.items():
      if r["error"] < 1e-8:
        r["times"].append(seconds_per_call(r["fn"]))
  for r in results.values():  # what the first call costs beyond a steady call: compilation
    r["compile"] = max(r["first"] - statistics.median(r["times"]), 0.0) if r["times"] else None
  return results


def main():
  parser = argparse.ArgumentParser(description="ADBench GMM: value and gradient")
  parser.add_argument("--sizes", nargs="*", default=[f"{d},{k}" for d, k in SIZES])
  parser.add_argument("--samples", type=int, default=7)
  args = parser.parse_args()
  sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
  print(f"ADBench GMM, n = {N_POINTS}: value_and_grad; medians of {args.samples} interleaved "
        f"samples; one thread for every library; NumPy {np.__version__}, Python "
        f"{sys.version.split()[0]}")
  header = (f"{'d,K':>8}  {'tool':<14} {'ms':>9} {'x numpy':>8} {'first call s':>12} "
            f"{'compile s':>9} {'max rel err':>11}")
  print(header)
  print("-" * len(header))
  for d, k in sizes:
    results = run_size(d, k, args.samples)
    base = statistics.median(results["numpy by hand"]["times"])
    for name, r in results.items():
      if not r["times"]:
        print(f"{d:>3},{k:<4}  {name:<14} {'disagrees: not timed':>30} {r['error']:>11.1e}")
        continue
      t = statistics.median(r["times"])
      print(f"{d:>3},{k:<4}  {name:<14} {t * 1e3:>9.3f} {t / base:>8.2f} {r['first']:>12.3f} "
            f"{r['compile']:>9.3f} {r['error']:>11.1e}")
    jit_t = statistics.median(results["dfdx jit"]["times"])
    verdicts = [f"dfdx jit / numpy = {jit_t / base:.2f} (target <= 1.10)"]
    if "jax jit" in results and results["jax jit"]["times"]:
      jax_t = statistics.median(results["jax jit"]["times"])
      verdicts.append(f"dfdx jit / jax jit = {jit_t / jax_t:.2f}")
      verdicts.append(f"compilation dfdx / jax = "
                      f"{results['dfdx jit']['compile'] / results['jax jit']['compile']:.2f} "
                      "(target <= 0.10)")
    print(" " * 10 + "; ".join(verdicts))
  print("\nRerun: python bench/gmm.py --sizes 2,5 10,25 20,50 64,100 --samples 7")


if __name__ == "__main__":
  main()
