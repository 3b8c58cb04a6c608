"""Timing helpers shared by the benchmarks: per-call time of a fast function, medians of
interleaved samples, thread settings for every library, and an allocator that keeps memory."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import statistics
import time


def single_threaded():
  """One thread for NumPy's BLAS, XLA and PyTorch (set before they are imported), and the
  process held to one core where the system allows it.

  The flags alone do not keep every library on one core: XLA's runtime runs a computation
  on threads of its own (JAX jit's hand-tracking Jacobian at 12,800 points took 8.2 ms of
  CPU time in 4.9 ms on two cores, and 6.5 ms held to one), and a thread that waits for
  another by spinning takes a core from it (at 100 points, 1.2 ms on two cores, 0.75 ms
  on one). Held to one core, every tool's time is its own work on one core."""
  for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
  os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                        "intra_op_parallelism_threads=1")
  one_core()


def one_core():
  """Hold this process (and the threads it starts) to one of the cores it may use: the
  last, away from the first core, which takes most of a machine's interrupts. Returns
  the core, or None where the system has no affinity call."""
  if not hasattr(os, "sched_setaffinity"):
    return None
  core = max(os.sched_getaffinity(0))
  os.sched_setaffinity(0, {core})
  return core


def steady_allocator():
  """Let glibc's malloc keep freed memory for reuse instead of returning it to the system.

  By default every array above 32 MB is mmap-ed and unmapped again, so each call pays page
  faults for it again, at a cost that varies with the machine's memory state (3x swings for
  one call on a virtual machine). Reusing memory times every library's arithmetic, not the
  kernel's page zeroing, and makes repeated samples agree. A no-op without glibc."""
  name = ctypes.util.find_library("c")
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
  except (OSError, AttributeError, TypeError):
    return
  m_trim_threshold, m_mmap_threshold = -1, -3
  mallopt(m_mmap_threshold, 1 << 30)
  mallopt(m_trim_threshold, (1 << 31) - 1)


def seconds_per_call(fn, min_time=0.02):
  """Seconds per call of fn, from a loop long enough to be timed reliably."""
  n = 1
  while True:
    start = time.perf_counter()
    for _ in range(n):
      fn()
    elapsed = time.perf_counter() - start
    if elapsed >= min_time:
      return elapsed / n
    n *= 2


def interleaved_medians(candidates, samples, min_time=0.02):
  """Median seconds per call of each candidate, sampling them in turn so that machine noise
  hits every candidate alike."""
  times = {name: [] for name in candidates}
  for fn in candidates.values():
    fn()  # warm up
  for _ in range(samples):
    for name, fn in candidates.items():
      times[name].append(seconds_per_call(fn, min_time))
  return {name: statistics.median(t) for name, t in times.items()}


def table(rows, headers):
  """A plain-text table: the first column left-aligned, the others right-aligned."""
  widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
  line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                             for i, (c, w) in enumerate(zip(r, widths)))
  return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
