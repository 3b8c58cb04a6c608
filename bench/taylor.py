"""Taylor mode: the first K derivatives of a function along a direction, by dfdx.jet, against
nested forward mode and the peers, in one run.

The function maps n points elementwise through a chain of sin, exp, tanh, log1p, powers and
quotients (ten operations, `f` below); the derivative asked for is every d^k f(x + t v) /
dt^k at t = 0 for k = 1..K. Tools: dfdx.jet eager and jitted; K nested dfdx.jvp (eager,
each level doubles the work: the K-th derivative alone costs 2^K evaluations); JAX's
jax.experimental.jet eager and jitted, and JAX's nested jvp jitted; PyTorch's nested
torch.func.jvp. Nested tools are run only up to order 8 (their cost doubles per order).
Every tool is first checked against dfdx.jet (relative error below 1e-8 on every
derivative); one that disagrees is reported, not timed. Medians of interleaved samples, one
thread for every library.

Run: python bench/taylor.py [--orders 2 4 8 12] [--n 1000] [--samples 5]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import interleaved_medians, single_threaded, table  # noqa: E402

single_threaded()

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402

MAX_NESTED = 8


def make_f(xp):
  def f(x):
    y = xp.sin(x) * xp.exp(-x / 3)
    for _ in range(2):
      y = xp.tanh(y) / (1 + y ** 2) + xp.log1p(y * y)
    return y
  return f


def path_series(v, order):
  return [v] + [np.zeros_like(v)] * (order - 1)


def tools(x, v, order):
  """{name: () -> list of the K derivatives (NumPy arrays)}."""
  f = make_f(dnp)
  out = {}
  out["dfdx jet"] = lambda: dfdx.jet(f, (x,), (path_series(v, order),))[1]
  jitted = dfdx.jit(lambda x, v: dfdx.jet(f, (x,), (path_series(v, order),))[1])
  out["dfdx jet jit"] = lambda: jitted(x, v)
  if order <= MAX_NESTED:
    def nested():
      derivs, g = [], f
      for _ in range(order):
        g = (lambda h: lambda y: dfdx.jvp(h, (y,), (v,))[1])(g)
        derivs.append(g(x))
      return derivs
    out["dfdx nested jvp"] = nested
  try:
    import jax
    import jax.numpy as jnp
    from jax.experimental import jet as jax_jet
    jax.config.update("jax_enable_x64", True)
    jf = make_f(jnp)
    xj, vj = jnp.asarray(x), jnp.asarray(v)
    run_jet = lambda x, v: jax_jet.jet(jf, (x,), ([v] + [jnp.zeros_like(v)] * (order - 1),))[1]  # noqa: E731
    out["jax jet"] = lambda: [np.asarray(s) for s in run_jet(xj, vj)]
    jet_jit = jax.jit(run_jet)
    out["jax jet jit"] = lambda: [np.asarray(s) for s in jet_jit(xj, vj)]
    if order <= MAX_NESTED:
      def jax_nested(x, v):
        derivs, g = [], jf
        for _ in range(order):
          g = (lambda h: lambda y: jax.jvp(h, (y,), (v,))[1])(g)
          derivs.append(g(x))
        return derivs
      nested_jit = jax.jit(jax_nested)
      out["jax nested jvp jit"] = lambda: [np.asarray(s) for s in nested_jit(xj, vj)]
  except ImportError:
    pass
  if order <= MAX_NESTED:
    try:
      import torch
      torch.set_num_threads(1)
      from torch.func import jvp as torch_jvp
      tf = make_f(torch)
      xt, vt = torch.as_tensor(x), torch.as_tensor(v)

      def torch_nested():
        derivs, g = [], tf
        for _ in range(order):
          g = (lambda h: lambda y: torch_jvp(h, (y,), (vt,))[1])(g)
          derivs.append(g(xt).numpy())
        return derivs
      out["pytorch nested jvp"] = torch_nested
    except ImportError:
      pass
  return out


def main():
  parser = argparse.ArgumentParser(description="Taylor mode against nested forward mode")
  parser.add_argument("--orders", type=int, nargs="*", default=[2, 4, 8, 12])
  parser.add_argument("--n", type=int, default=1000)
  parser.add_argument("--samples", type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x, v = rng.uniform(0.1, 1.0, args.n), rng.normal(size=args.n)
  rows = []
  for order in args.orders:
    candidates = tools(x, v, order)
    reference = candidates["dfdx jet"]()
    timed = {}
    for name, fn in candidates.items():
      got = fn()
      err = max(float(np.max(np.abs(a - b) / (1 + np.abs(b)))) for a, b in zip(got, reference))
      if err > 1e-8:
        rows.append([order, name, "disagrees", f"{err:.1e}", ""])
      else:
        timed[name] = fn
    medians = interleaved_medians(timed, args.samples)
    base = medians["dfdx jet"]
    for name, t in medians.items():
      rows.append([order, name, f"{t * 1e3:.2f}", "", f"{t / base:.2f}"])
  print(f"d^k/dt^k f(x + t v), k = 1..K, at n = {args.n} points; one thread; medians of "
        f"{args.samples} interleaved samples")
  print(table(rows, ["K", "tool", "ms", "error", "/ dfdx jet"]))
  print("Rerun: python bench/taylor.py --orders 2 4 8 12 --n 1000 --samples 5")


if __name__ == "__main__":
  main()
