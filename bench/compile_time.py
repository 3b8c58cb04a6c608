"""First-call time of a jitted gradient of a Python loop, which jit unrolls: dfdx against JAX.

The function is a small recurrent network written as a plain Python loop of `n` steps,
    h <- tanh(A h + x),  then sum(h),  with h and x of 40 entries and A a fixed 40 x 40,
and the time measured is the first call of `jit(grad(f))` (with respect to x): tracing, the
optimizing passes and code generation (dfdx), or tracing, lowering and XLA's compilation
(JAX), with one evaluation; then the median of later calls. Each sample runs in a fresh
interpreter, one thread and one core for every library; a first call still running after
`--timeout` seconds is reported as such. The same loop written with the library's scan
(`dfdx.scan`, `jax.lax.scan`) is compiled once whatever `n` is; its rows are for reference.

Run: python bench/compile_time.py [--steps 10 100 300 1000] [--samples 3] [--timeout 300]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import table  # noqa: E402

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

_CHILD = r'''
import os, sys, time
sys.path.insert(0, {bench!r})
from timing import single_threaded
single_threaded()
import numpy as np
tool, n, scanned = {tool!r}, {steps}, {scanned}
x = np.linspace(0.1, 0.9, 40)
if tool == "dfdx":
    import dfdx, dfdx.numpy as xp
    jit, grad = dfdx.jit, dfdx.grad
    scan = dfdx.scan
    block = lambda r: r
else:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as xp
    jit, grad, scan = jax.jit, jax.grad, jax.lax.scan
    block = lambda r: r.block_until_ready()

A = np.random.default_rng(0).standard_normal((40, 40)) / 8

def unrolled(x):
    h = x
    for _ in range(n):
        h = xp.tanh(A @ h + x)
    return xp.sum(h)

def rolled(x):
    h, _ = scan(lambda h, _: (xp.tanh(A @ h + x), None), x, None, length=n)
    return xp.sum(h)

g = jit(grad(rolled if scanned else unrolled))
start = time.perf_counter()
first = block(g(x))
seconds = time.perf_counter() - start
later = []
for _ in range(5):
    start = time.perf_counter()
    block(g(x))
    later.append(time.perf_counter() - start)
print(seconds, sorted(later)[2], *np.asarray(first, dtype=float).tolist())
'''


def first_call(tool, steps, scanned, timeout):
  """(seconds of the first call, of a later call, the gradient) in a fresh interpreter, or
  Nones past `timeout` seconds."""
  code = _CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), tool=tool,
                       steps=steps, scanned=scanned)
  try:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, check=True).stdout.split()
  except subprocess.TimeoutExpired:
    return None, None, None
  return float(out[0]), float(out[1]), np.array([float(v) for v in out[2:]])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 300, 1000])
  parser.add_argument("--samples", type=int, default=3)
  parser.add_argument("--timeout", type=float, default=300.0,
                      help="seconds one first call may take before it is given up")
  args = parser.parse_args()
  tools = ["dfdx", "jax"] if importlib.util.find_spec("jax") else ["dfdx"]
  print("First call of jit(grad(f)), f a Python loop of n steps (unrolled by jit), in fresh "
        f"interpreters, one thread and one core each; medians of {args.samples} samples; "
        f"a JAX compilation is given up after {args.timeout:.0f} s.")
  rows = []
  for scanned in (False, True):
    gave_up = set()  # tools past the timeout at a smaller n (a larger one only takes longer)
    for n in args.steps:
      first, later, gradients = {}, {}, {}
      for tool in tools:
        samples = []
        for _ in range(args.samples if tool not in gave_up else 0):
          seconds, call, gradient = first_call(tool, n, scanned, args.timeout)
          if seconds is None:
            gave_up.add(tool)
            break
          samples.append((seconds, call))
          gradients[tool] = gradient
        if tool not in gave_up:
          first[tool] = statistics.median(s for s, _ in samples)
          later[tool] = statistics.median(c for _, c in samples)
      if len(gradients) == 2:  # (ADBench's metric, entry by entry)
        a, b = gradients["dfdx"], gradients["jax"]
        error = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a) + np.abs(b)))
        if not error < 1e-8:
          raise SystemExit(f"n = {n}: the gradients of dfdx and JAX differ by {error:.1e}")
      cells = ["scan" if scanned else "unrolled", n]
      for tool in tools:
        cells.append(f"{first[tool]:.3f}" if tool in first else f"> {args.timeout:.0f}")
      if len(tools) == 2:
        cells.append("-" if "dfdx" not in first else f"{first['dfdx'] / first['jax']:.3f}"
                     if "jax" in first else f"< {first['dfdx'] / args.timeout:.3f}")
      for tool in tools:
        cells.append(f"{later[tool] * 1e3:.3f}" if tool in later else "-")
      rows.append(cells)
  headers = (["loop", "n"] + [f"{t} first s" for t in tools] + ["first: dfdx / jax"] * (
      len(tools) == 2) + [f"{t} call ms" for t in tools])
  print(table(rows, headers))
  print("Rerun: python bench/compile_time.py " + " ".join(
      ["--steps"] + [str(n) for n in args.steps] + [f"--samples {args.samples}",
                                                    f"--timeout {args.timeout:.0f}"]))


if __name__ == "__main__":
  main()
