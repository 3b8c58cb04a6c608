"""Peak memory and time of batched derivatives with and without `chunk_size`.

jacrev pulls the whole output basis back at once (a vmap of the pullback), jacfwd pushes the
whole input basis, and vmap(grad) runs every example at once: each holds the batch's
intermediates together, n times one pass's. `chunk_size=k` maps k at a time instead, so the
peak is about k passes' intermediates (plus the result), for the same values.

The function: f(x) = sum over rows of tanh(x x^T)^2, x of n entries, whose every pass has
n x n intermediates. Peak memory by tracemalloc (NumPy reports its allocations to it);
times are medians of separate runs without it. The peers have no counterpart measured here:
JAX's jacrev has no chunking, and PyTorch's (torch.func.jacrev(chunk_size=)) allocates
outside tracemalloc's view.

Run: python bench/chunk_memory.py [--n 200] [--chunks 1 10 50] [--samples 5]
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


def rows(x):
  return dnp.sum(dnp.tanh(dnp.outer(x, x)) ** 2, axis=0)


def peak_mb(fn, *args):
  gc.collect()
  tracemalloc.start()
  tracemalloc.reset_peak()
  out = fn(*args)
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  return peak / 2 ** 20, out


def median_seconds(fn, args, samples):
  times = []
  for _ in range(samples):
    start = time.perf_counter()
    fn(*args)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description="peak memory of chunked batched derivatives")
  parser.add_argument("--n", type=int, default=200)
  parser.add_argument("--chunks", type=int, nargs="*", default=[1, 10, 50])
  parser.add_argument("--samples", type=int, default=5)
  args = parser.parse_args()
  n = args.n
  x = np.linspace(-1.0, 1.0, n)
  xs = np.stack([x * (1 + 0.01 * i) for i in range(n)])
  cases = [
      ("jacrev", lambda c: dfdx.jacrev(rows, chunk_size=c), (x,)),
      ("jacfwd", lambda c: dfdx.jacfwd(rows, chunk_size=c), (x,)),
      ("vmap(grad)", lambda c: dfdx.vmap(dfdx.grad(lambda v: dnp.sum(rows(v))), chunk_size=c),
       (xs,)),
      ("jit(jacrev)", lambda c: dfdx.jit(dfdx.jacrev(rows, chunk_size=c)), (x,)),
  ]
  print(f"batched derivatives of f(x) = sum_rows tanh(x x^T)^2, n = {n} (a pass's "
        f"intermediates: {n * n * 8 / 2 ** 20:.2f} MB each); NumPy {np.__version__}, Python "
        f"{sys.version.split()[0]}; peak MB, median seconds of {args.samples}")
  print(f"{'transform':>12} {'chunk_size':>10} {'peak MB':>8} {'ratio':>6} {'seconds':>8}")
  for name, make, fargs in cases:
    base = None
    for chunk in [None] + list(args.chunks):
      fn = make(chunk)
      out = fn(*fargs)  # (a first call: compilation for jit, tape caches)
      mb, again = peak_mb(fn, *fargs)
      if base is None:
        base, reference = mb, out
      else:
        assert np.allclose(again, reference, rtol=1e-12, atol=1e-14), "chunks changed the result"
      s = median_seconds(fn, fargs, args.samples)
      print(f"{name:>12} {str(chunk):>10} {mb:>8.1f} {base / mb:>6.1f} {s:>8.3f}")
  print("ratio: the peak without chunk_size over this one's. Rerun: python bench/chunk_memory.py "
        f"--n {n} --chunks {' '.join(map(str, args.chunks))} --samples {args.samples}")


if __name__ == "__main__":
  main()
