"""Peak memory of reverse mode through a chain of blocks, with and without dfdx.checkpoint.

Each block maps a vector of n entries to another, through n x n intermediates (an outer
product, tanh, cos): its internals are n times larger than its input. Without checkpointing
reverse mode keeps every block's intermediates until the backward pass, so the peak grows
with the number of blocks; with `checkpoint` it keeps only each block's input and recomputes
one block's internals at a time, so the peak stays near one block's memory.

A third section wraps the whole chain, with no block marked, in
`checkpoint(f, segments="auto")`, which places the cuts itself; a fourth does so for a
chain of elementwise steps, where what is alive between steps is as large as a step's
intermediates, so the best cuts are about sqrt(steps) apart.

Peak memory is measured with tracemalloc (NumPy reports its allocations to it); times are
medians of separate runs without it (tracemalloc slows allocation).

Run: python bench/checkpoint_memory.py [--n 300] [--blocks 1 10 30 100]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

import numpy as np

import dfdx
import dfdx.numpy as dnp


def make_block(n):
  def block(x):
    m = dnp.tanh(x[:, None] * x[None, :] / n)
    return x + 0.1 * dnp.sum(m * dnp.cos(m), axis=1) / n
  return block


def chain(block, depth):
  def f(x):
    for _ in range(depth):
      x = block(x)
    return dnp.sum(x)
  return f


def peak_mb(fn, x):
  gc.collect()
  tracemalloc.start()
  tracemalloc.reset_peak()
  start = time.perf_counter()
  g = fn(x)
  elapsed = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  return peak / 2 ** 20, elapsed, g


def scan_of_steps(block, steps, checkpoint=None):
  """sum(x_T) for x_{t+1} = block(x_t), as a dfdx.scan; with `checkpoint` (steps per
  checkpoint), as a scan of checkpointed scans of that many steps (the carries of the outer
  scan are all that reverse mode keeps, plus one inner scan's steps while it is recomputed)."""
  step = lambda c, _: (block(c), None)  # noqa: E731
  return lambda x: dnp.sum(dfdx.scan(step, x, None, length=steps, checkpoint=checkpoint)[0])


def elementwise_chain(steps):
  def f(x):
    for _ in range(steps):
      x = dnp.sin(x) * 0.99 + 0.1 * dnp.cos(x)
    return dnp.sum(x)
  return f


def median_seconds(fn, x, samples=5):
  times = []
  for _ in range(samples):
    start = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def measure_many(functions, x, mode):
  """Peak MB (tracemalloc) and median seconds (without it) of grad of each function, eager
  or jitted and compiled first, after checking that the gradients agree."""
  wrap = dfdx.jit if mode == "jit" else (lambda f: f)
  grads = [wrap(dfdx.grad(f)) for f in functions]
  first = [g(x) for g in grads]
  for g in first[1:]:
    assert np.allclose(g, first[0], rtol=1e-12, atol=1e-14), "checkpoint changed the gradient"
  return [(peak_mb(g, x)[0], median_seconds(g, x)) for g in grads]


def measure_pair(plain, checkpointed, x, mode):
  """Peak MB and seconds of grad of `plain` and of `checkpointed` (eager, or jitted and
  compiled before the measured call), after checking that their gradients agree."""
  wrap = dfdx.jit if mode == "jit" else (lambda f: f)
  plain, checkpointed = wrap(dfdx.grad(plain)), wrap(dfdx.grad(checkpointed))
  if mode == "jit":
    plain(x), checkpointed(x)
  plain_mb, plain_s, g1 = peak_mb(plain, x)
  remat_mb, remat_s, g2 = peak_mb(checkpointed, x)
  assert np.allclose(g1, g2, rtol=1e-12, atol=1e-14), "checkpoint changed the gradient"
  return plain_mb, remat_mb, plain_s, remat_s


def main():
  parser = argparse.ArgumentParser(description="peak memory of grad with checkpoint")
  parser.add_argument("--n", type=int, default=300)
  parser.add_argument("--blocks", type=int, nargs="*", default=[1, 10, 30, 100])
  parser.add_argument("--steps", type=int, default=400, help="steps of the scan section")
  args = parser.parse_args()
  n = args.n
  x = np.linspace(-1.0, 1.0, n)
  block = make_block(n)
  remat = dfdx.checkpoint(block)
  one_block = peak_mb(dfdx.grad(chain(block, 1)), x)[0]
  print(f"grad through a chain of blocks, n = {n} (block internals n x n = "
        f"{n * n * 8 / 2 ** 20:.2f} MB each); NumPy {np.__version__}, Python "
        f"{sys.version.split()[0]}")
  print(f"{'blocks':>7} {'mode':>6} {'plain MB':>10} {'checkpoint MB':>14} {'ratio':>7} "
        f"{'checkpoint / one block':>23} {'plain s':>8} {'checkpoint s':>13}")
  for depth in args.blocks:
    for mode in ("eager", "jit"):
      plain_mb, remat_mb, plain_s, remat_s = measure_pair(chain(block, depth),
                                                          chain(remat, depth), x, mode)
      print(f"{depth:>7} {mode:>6} {plain_mb:>10.1f} {remat_mb:>14.1f} {plain_mb / remat_mb:>7.1f} "
            f"{remat_mb / one_block:>23.2f} {plain_s:>8.3f} {remat_s:>13.3f}")
  print(f"\none block, plain grad: {one_block:.1f} MB peak. Target: with checkpoint the peak stays "
        "within a small constant of one block's; without, it grows linearly.")

  steps = args.steps
  per = max(1, int(round(steps ** 0.5)))  # (what checkpoint=True takes)
  print(f"\ngrad through a dfdx.scan of {steps} steps of the block: plain, and with "
        f"checkpoint=True (checkpoints of {per} steps: memory ~ sqrt(steps) blocks)")
  print(f"{'mode':>6} {'plain MB':>10} {'checkpoints MB':>15} {'ratio':>7} {'plain s':>8} "
        f"{'checkpoints s':>14}")
  for mode in ("eager", "jit"):
    plain_mb, remat_mb, plain_s, remat_s = measure_pair(
        scan_of_steps(block, steps), scan_of_steps(block, steps, True), x, mode)
    print(f"{mode:>6} {plain_mb:>10.1f} {remat_mb:>15.1f} {plain_mb / remat_mb:>7.1f} "
          f"{plain_s:>8.3f} {remat_s:>14.3f}")

  print("\nautomatic placement: grad of the chain with no block marked, wrapped whole in "
        "checkpoint(f, segments='auto'),\nagainst plain and every block checkpointed by hand "
        "(MB peak, seconds median)")
  print(f"{'blocks':>7} {'mode':>6} {'plain MB':>9} {'by hand MB':>11} {'auto MB':>8} "
        f"{'plain s':>8} {'by hand s':>10} {'auto s':>7}")
  for depth in args.blocks:
    for mode in ("eager", "jit"):
      (p_mb, p_s), (h_mb, h_s), (a_mb, a_s) = measure_many(
          [chain(block, depth), chain(remat, depth),
           dfdx.checkpoint(chain(block, depth), segments="auto")], x, mode)
      print(f"{depth:>7} {mode:>6} {p_mb:>9.1f} {h_mb:>11.1f} {a_mb:>8.1f} {p_s:>8.3f} "
            f"{h_s:>10.3f} {a_s:>7.3f}")

  m, steps = 10000, args.steps * 2
  xs = np.linspace(-1.0, 1.0, m)
  per = int(round(steps ** 0.5))
  print(f"\nautomatic placement on {steps} elementwise steps of {m} entries "
        f"(x = sin(x) * 0.99 + 0.1 * cos(x)): plain, segments='auto', segments={per}")
  print(f"{'mode':>6} {'plain MB':>9} {'auto MB':>8} {f'{per} pieces MB':>13} {'plain s':>8} "
        f"{'auto s':>7} {f'{per} pieces s':>12}")
  f = elementwise_chain(steps)
  for mode in ("eager", "jit"):
    (p_mb, p_s), (a_mb, a_s), (k_mb, k_s) = measure_many(
        [f, dfdx.checkpoint(f, segments="auto"), dfdx.checkpoint(f, segments=per)], xs, mode)
    print(f"{mode:>6} {p_mb:>9.1f} {a_mb:>8.1f} {k_mb:>13.1f} {p_s:>8.3f} {a_s:>7.3f} "
          f"{k_s:>12.3f}")
  while_loop_table(xs, steps)
  print("Rerun: python bench/checkpoint_memory.py --n 300 --blocks 1 10 30 100 --steps 400")


def while_loop_table(xs, steps):
  """jit(grad) of a while_loop of `steps` elementwise steps: every step's values kept (the
  budget above them), and past a budget below them every sqrt(steps)-th step's."""
  from dfdx._src.ops import branches

  def f(x):
    def body(c):
      return c[0] + 1, dnp.sin(c[1]) * 0.99 + 0.1 * dnp.cos(c[1])
    return dnp.sum(dfdx.while_loop(lambda c: c[0] < steps, body, (0, x))[1])
  print(f"\njit(grad) of a while_loop of {steps} elementwise steps of {xs.size} entries "
        "(the number of steps known only when it runs)")
  print(f"{'values kept':>22} {'peak MB':>8} {'median s':>9}")
  default = branches.REVERSE_LOOP_BYTES
  try:
    for label, budget in (("every step's", default), ("every sqrt(n)-th step's", 0)):
      branches.REVERSE_LOOP_BYTES = budget
      g = dfdx.jit(dfdx.grad(f))
      g(xs)
      mb, _, _ = peak_mb(g, xs)
      print(f"{label:>22} {mb:>8.1f} {median_seconds(g, xs):>9.3f}")
  finally:
    branches.REVERSE_LOOP_BYTES = default


if __name__ == "__main__":
  main()
