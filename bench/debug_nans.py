"""What `dfdx.debug_nans()` costs: the same calls with the NaN checks off and on.

Measures (medians of interleaved samples, one thread):
  * the eager gradient of a tiny function, f(x) = sum(sin(x) * x) on 10 elements (Python
    overhead dominates: the worst case for per-operation checks);
  * the eager gradient of a small MLP's loss on 100 x 100 arrays (NumPy work dominates);
  * the same two gradients jitted (one output check per call);
  * one `with dfdx.debug_nans():` block around nothing (switching on and off).

Off, the eval path is exactly the one without debug_nans (the checks are swapped in, not
tested for), so "off" is also the cost of the library without the feature.

Run: python bench/debug_nans.py [--samples 15]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import seconds_per_call, single_threaded, table  # noqa: E402

single_threaded()

import argparse  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402


def tiny(x):
  return dnp.sum(dnp.sin(x) * x)


def mlp_loss(params, x, y):
  w1, b1, w2, b2 = params
  h = dnp.tanh(x @ w1 + b1)
  out = h @ w2 + b2
  return dnp.mean((out - y) ** 2) + 1e-4 * (dnp.sum(w1 * w1) + dnp.sum(w2 * w2))


def cases():
  rng = np.random.default_rng(0)
  x10 = np.linspace(0.1, 1.0, 10)
  n = 100
  params = [rng.normal(size=(n, n)) / 10, np.zeros(n), rng.normal(size=(n, n)) / 10, np.zeros(n)]
  x, y = rng.normal(size=(n, n)), rng.normal(size=(n, n))
  tiny_grad, mlp_grad = dfdx.grad(tiny), dfdx.grad(mlp_loss)
  tiny_jit, mlp_jit = dfdx.jit(tiny_grad), dfdx.jit(mlp_grad)
  return {
      "eager grad, tiny (10 elements)": lambda: tiny_grad(x10),
      "eager grad, MLP loss (100 x 100)": lambda: mlp_grad(params, x, y),
      "jit(grad), tiny (10 elements)": lambda: tiny_jit(x10),
      "jit(grad), MLP loss (100 x 100)": lambda: mlp_jit(params, x, y),
  }


def switch():
  with dfdx.debug_nans():
    pass


def off_on_medians(fn, samples, min_time):
  """Median seconds per call of fn with debug_nans off and on, sampled in turn."""
  off, on = [], []
  fn()
  with dfdx.debug_nans():
    fn()
  for _ in range(samples):
    off.append(seconds_per_call(fn, min_time))
    with dfdx.debug_nans():
      on.append(seconds_per_call(fn, min_time))
  return statistics.median(off), statistics.median(on)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--samples", type=int, default=15, help="samples per measurement")
  parser.add_argument("--min-time", type=float, default=0.05, help="seconds per sample")
  args = parser.parse_args()
  print(f"dfdx.debug_nans cost; one thread; medians of {args.samples} interleaved samples; "
        f"NumPy {np.__version__}, Python {sys.version.split()[0]}\n")
  rows = []
  for name, fn in cases().items():
    off, on = off_on_medians(fn, args.samples, args.min_time)
    rows.append([name, f"{off * 1e6:.1f}", f"{on * 1e6:.1f}", f"{on / off:.2f}"])
  print(table(rows, ["call", "off us", "on us", "on / off"]))
  t = statistics.median(seconds_per_call(switch, args.min_time) for _ in range(args.samples))
  print(f"\n`with dfdx.debug_nans(): pass` (switching on and off): {t * 1e6:.1f} us")
  print("\nRerun: python bench/debug_nans.py --samples 15")


if __name__ == "__main__":
  main()
