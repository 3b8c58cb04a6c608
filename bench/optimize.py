"""SciPy's solvers with dfdx's derivatives: dfdx.scipy.optimize against SciPy with its own
finite differences and with the peers' gradients, in one run.

Two problems:
  * minimize the extended Rosenbrock function in n dimensions with BFGS (the gradient) and
    Newton-CG (the gradient and Hessian-vector products): SciPy with finite differences (its
    default without `jac`), SciPy given the gradient by dfdx, autograd, JAX (eager and jit)
    and PyTorch, when installed; each tool's time to solve, its objective and gradient
    evaluations, and the distance of its solution from the minimum (all ones);
  * the derivative of a minimizer with respect to a parameter, x*(c) = argmin_x
    0.5 |x - c|^2 + 0.25 sum(x^4) + 0.1 sum_i x_i x_(i+1): dfdx's implicit derivative
    (one solve with the Hessian) against central finite differences of the whole solve
    (2 n solves), both checked against the closed form dx*/dc = (I + 3 diag(x*^2) + T)^-1,
    T the coupling.

Medians of repeated samples, tools interleaved, one thread everywhere.

Run: python bench/optimize.py [--n 100] [--samples 5]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import interleaved_medians, single_threaded, table  # noqa: E402

single_threaded()

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
import dfdx.scipy.optimize as dso  # noqa: E402


def rosen(xp):
  def f(x):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
  return f


def peers():
  """(name, value_and_grad for SciPy) of the peers installed."""
  out = []
  try:
    import autograd
    import autograd.numpy as anp
    out.append(("autograd", autograd.value_and_grad(rosen(anp))))
  except ImportError:
    pass
  try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    vg = jax.value_and_grad(rosen(jnp))
    out.append(("JAX eager", lambda x: tuple(np.asarray(v) for v in vg(x))))
    vg_jit = jax.jit(vg)
    out.append(("JAX jit", lambda x: tuple(np.asarray(v) for v in vg_jit(x))))
  except ImportError:
    pass
  try:
    import torch
    torch.set_num_threads(1)

    def torch_vg(x):
      t = torch.tensor(x, requires_grad=True)
      value = rosen(torch)(t)
      value.backward()
      return value.item(), t.grad.numpy()
    out.append(("PyTorch", torch_vg))
  except ImportError:
    pass
  return out


def minimize_table(n, samples):
  x0 = np.linspace(-1.2, 1.0, n)
  f = rosen(dnp)
  calls = {}

  def solver(name, run):
    def go():
      result = run()
      calls[name] = (result.nfev, result.get("njev", 0), np.max(np.abs(result.x - 1.0)))
    return go
  jitted = dfdx.jit(dfdx.value_and_grad(f))
  tools = [
      ("SciPy BFGS, finite differences", solver("fd", lambda: scipy.optimize.minimize(
          lambda x: float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)), x0,
          method="BFGS"))),
      ("dfdx.scipy.optimize BFGS", solver("dfdx", lambda: dso.minimize(f, x0, method="BFGS"))),
      ("SciPy BFGS + dfdx jit gradient", solver("dfdx jit", lambda: scipy.optimize.minimize(
          jitted, x0, jac=True, method="BFGS"))),
      ("dfdx.scipy.optimize Newton-CG", solver("newton", lambda: dso.minimize(
          f, x0, method="Newton-CG"))),
  ]
  for name, vg in peers():
    tools.append((f"SciPy BFGS + {name} gradient", solver(name, lambda vg=vg: scipy.optimize
                                                            .minimize(vg, x0, jac=True,
                                                                      method="BFGS"))))
  medians = interleaved_medians(dict(tools), samples)
  keys = ["fd", "dfdx", "dfdx jit", "newton"] + [name for name, _ in peers()]
  base = medians[tools[1][0]]
  rows = []
  for (name, _), key in zip(tools, keys):
    nfev, njev, err = calls[key]
    t = medians[name]
    rows.append([name, f"{t * 1e3:.1f}", f"{t / base:.2f}", str(nfev), str(njev), f"{err:.1e}"])
  print(f"\nminimize the Rosenbrock function in {n} dimensions (x0 from -1.2 to 1)")
  print(table(rows, ["tool", "ms", "x dfdx's", "fun evals", "grad evals", "max |x - 1|"]))


def minimizer_derivative_table(n, samples):
  rng = np.random.default_rng(0)
  c = rng.uniform(-1.0, 1.0, n)

  def objective(x, c):
    return 0.5 * dnp.sum((x - c) ** 2) + 0.25 * dnp.sum(x ** 4) + 0.1 * dnp.sum(x[1:] * x[:-1])

  def argmin(c):
    return dso.minimize(objective, np.zeros(n), args=(c,), method="trust-exact",
                        tol=1e-12).x

  def finite_differences(c, h=1e-5):
    cols = []
    for i in range(n):
      e = np.zeros(n)
      e[i] = h
      cols.append((argmin(c + e) - argmin(c - e)) / (2 * h))
    return np.stack(cols, axis=1)
  x = argmin(c)
  coupling = 0.1 * (np.eye(n, k=1) + np.eye(n, k=-1))
  closed = np.linalg.inv(np.eye(n) + 3 * np.diag(x ** 2) + coupling)
  derivative_table(f"Jacobian of the minimizer x*(c), n = {n} (against the closed form)",
                   "implicit", lambda: dfdx.jacobian(argmin)(c), lambda: finite_differences(c),
                   closed, samples)


def derivative_table(title, label, exact, differences, closed, samples):
  """Print the times and errors of a solution's derivative by dfdx (`exact()`) and by
  central differences of the solve (`differences()`), against `closed`."""
  results = {}
  tools = [(f"dfdx.jacobian ({label})", lambda: results.__setitem__("dfdx", exact())),
           ("central differences of the solve",
            lambda: results.__setitem__("fd", differences()))]
  medians = interleaved_medians(dict(tools), samples)
  base = medians[tools[0][0]]
  rows = [[name, f"{medians[name] * 1e3:.1f}", f"{medians[name] / base:.1f}",
           f"{np.max(np.abs(results[key] - closed)):.1e}"]
          for (name, _), key in zip(tools, ["dfdx", "fd"])]
  print(f"\n{title}")
  print(table(rows, ["method", "ms", f"x {label}'s", "max |error|"]))


def constrained_derivative_table(n, samples):
  """The nearest point of the sphere |x| = r to c, by SLSQP: its Jacobian by the KKT
  conditions of the constraint, against differences of the solve and the closed form
  r (I - u u^T) / |c|, u = c / |c|."""
  rng = np.random.default_rng(1)
  c, r = rng.uniform(-1.0, 1.0, n), 0.5

  def nearest(c):
    sphere = {"type": "eq", "fun": lambda x: dnp.sum(x ** 2) - r ** 2}
    return dso.minimize(lambda x, c: 0.5 * dnp.sum((x - c) ** 2), np.full(n, 0.1), args=(c,),
                        constraints=sphere, tol=1e-12, options={"maxiter": 1000}).x

  def finite_differences(c, h=1e-5):
    return np.stack([(nearest(c + h * e) - nearest(c - h * e)) / (2 * h) for e in np.eye(n)],
                    axis=1)
  u = c / np.linalg.norm(c)
  closed = r * (np.eye(n) - np.outer(u, u)) / np.linalg.norm(c)
  derivative_table(f"Jacobian of the nearest point of a sphere, SLSQP, n = {n} (against the "
                   "closed form)", "KKT", lambda: dfdx.jacobian(nearest)(c),
                   lambda: finite_differences(c), closed, samples)


def main():
  parser = argparse.ArgumentParser(description="SciPy's solvers with dfdx's derivatives")
  parser.add_argument("--n", type=int, default=100)
  parser.add_argument("--samples", type=int, default=5)
  args = parser.parse_args()
  print(f"one thread; NumPy {np.__version__}, SciPy {scipy.__version__}; medians of "
        f"{args.samples} samples, tools interleaved")
  minimize_table(args.n, args.samples)
  minimizer_derivative_table(min(args.n, 40), args.samples)
  constrained_derivative_table(min(args.n, 40), args.samples)
  print(f"\nRerun: python bench/optimize.py --n {args.n} --samples {args.samples}")


if __name__ == "__main__":
  main()
