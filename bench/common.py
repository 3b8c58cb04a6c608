"""The interface every ADBench problem module follows, and the measurement they share.

A problem module (gmm.py, lstm.py, ba.py, hand.py) defines
  NAME           the problem's name, e.g. "gmm";
  SIZES          ADBench's sizes for it (tuples of ints or strings);
  DEFAULT_SIZES  the subset that `python bench/run.py` runs by default;
  measure(size, tools, samples) -> list[dict], one row per tool (keys in ROW_KEYS),
and usually builds its rows with `measure_tools`, giving it one `Tool` per library.

Rules shared by every problem: each tool's derivative is checked against the reference
derivative with ADBench's metric first, and a tool that disagrees (error >= MAX_ERROR) is
reported, not timed; times are medians of interleaved samples (every tool, objective then
derivative, within each sample, so machine noise hits them alike); one thread for every
library, the process held to one core; glibc's malloc keeps freed memory
(timing.steady_allocator: no page faults timed); a library that is not installed is
skipped silently.
"""
from __future__ import annotations

import dataclasses
import gc
import threading
import time
import tracemalloc
from typing import Callable

import numpy as np

from timing import seconds_per_call, steady_allocator

TOOLS = ("numpy", "dfdx eager", "dfdx jit", "autograd", "jax eager", "jax jit", "pytorch")
ROW_KEYS = ("problem", "size", "tool", "n_params", "objective_s", "derivative_s",
            "first_call_s", "compile_s", "peak_mb", "error", "fd_error", "note",
            "derivative_samples")
MAX_ERROR = 1e-8
HEAP_ONLY = ("jax eager", "jax jit", "pytorch")  # their buffers are invisible to tracemalloc
TOOL_BUDGET_S = 30  # seconds of timed calls per tool and size, before it gets fewer samples
PEAK_LIMIT_S = 10  # longest traced call for a peak-memory figure (4x a steady call if longer)
# A derivative whose first call took less runs this long before it is timed: the steady
# state of a loop (eager dfdx compiles a repeated reverse pass once its interpreted passes
# have cost what compiling does: dfdx/_src/reverse_cache.py).
WARM_UP_S = 0.5


@dataclasses.dataclass
class Tool:
  """One library's version of a problem at one size, inputs already bound.

  objective: () -> the objective's value.
  derivative: () -> (value, tuple of derivative arrays, in the reference's order); the first
    call includes any tracing or compilation. None for a tool that only evaluates (the
    NumPy floor of a problem without a hand-written derivative).
  compile: () -> None, for a tool that can trace and compile its derivative without running
    it (dfdx jit): timed on its own before the first call, which then only runs.
  """
  objective: Callable[[], object]
  derivative: Callable[[], tuple] | None
  note: str = ""
  compile: Callable[[], object] | None = None


def torch_backward_tool(torch, objective, params, fixed):
  """The PyTorch tool of a gradient problem: `objective(*params, *fixed)` evaluated under
  no_grad, and its value and gradient with respect to `params` (NumPy arrays, made tensors
  that require grad on each call) by eager backward. `fixed` are tensors or constants."""
  def value():
    with torch.no_grad():
      return float(objective(*(torch.as_tensor(v) for v in params), *fixed))

  def derivative():
    leaves = [torch.tensor(v, requires_grad=True) for v in params]
    out = objective(*leaves, *fixed)
    out.backward()
    return float(out.detach()), tuple(p.grad.numpy() for p in leaves)
  return Tool(value, derivative, "eager backward")


def size_label(size):
  """The text form of a size: "2,5" for (2, 5), the string itself otherwise."""
  return ",".join(str(v) for v in size) if isinstance(size, tuple) else str(size)


def relative_error(a, b):
  """ADBench's per-entry metric |a - b| / max(1, |a| + |b|), maximized."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a) + np.abs(b)))) if a.size else 0.0


def derivative_error(result, reference):
  """Max ADBench metric over the value and every derivative array."""
  (value, grads), (ref_value, ref_grads) = result, reference
  if len(grads) != len(ref_grads):
    return float("inf")
  return max([relative_error(value, ref_value)]
             + [relative_error(g, r) for g, r in zip(grads, ref_grads)])


def fd_error(objective, args, argnums, grads, directions=3, step=1e-3, seed=0):
  """Relative error of the derivative `grads` (with respect to args[i] for i in argnums)
  against fourth-order central differences of `objective` along a few random unit
  directions."""
  rng = np.random.default_rng(seed)
  worst = 0.0
  for _ in range(directions):
    dirs = [rng.standard_normal(np.shape(args[i])) for i in argnums]
    norm = np.sqrt(sum(np.sum(v * v) for v in dirs))
    dirs = [v / norm for v in dirs]

    def at(sign):
      moved = list(args)
      for i, v in zip(argnums, dirs):
        moved[i] = args[i] + sign * step * v
      return float(objective(*moved))
    numeric = (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * step)
    exact = float(sum(np.sum(g * v) for g, v in zip(grads, dirs)))
    worst = max(worst, abs(numeric - exact) / max(abs(numeric), abs(exact), 1e-300))
  return worst


def peak_megabytes(fn, limit_s=None):
  """Peak memory that tracemalloc sees during one call of fn (NumPy reports its buffers to
  it; PyTorch's and XLA's allocators do not), or None if tracing was still running after
  limit_s seconds: it is then stopped and fn finishes untraced. (tracemalloc looks up the
  current line at every allocation, which costs time in proportion to the size of the
  function running: on the thousands-of-lines functions that unrolled loops compile to, a
  traced call can be 1000 times slower.)"""
  gc.collect()
  tracemalloc.start()
  watchdog = threading.Timer(limit_s, tracemalloc.stop) if limit_s else None
  try:
    start, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    if watchdog:
      watchdog.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    if not tracemalloc.is_tracing():
      return None
  finally:
    if watchdog:
      watchdog.cancel()
    tracemalloc.stop()
  return (peak - start) / 2 ** 20


def available_tools(makers, tools):
  """Build the requested tools, in TOOLS order, skipping libraries that are not installed."""
  built = {}
  for name in TOOLS:
    if name in makers and (tools is None or name in tools):
      try:
        built[name] = makers[name]()
      except ImportError:
        pass
  return built


def freeze_heap():
  """Move every live object out of the garbage collector's reach. The peers' modules hold
  ~10^5 objects that each full collection would walk, charging a tool for the libraries
  loaded beside it (0.1 s a collection with JAX and PyTorch loaded)."""
  gc.collect()
  gc.freeze()


def add_note(row, note):
  row["note"] = "; ".join(filter(None, [row["note"], note]))


def _passes_compiled():
  """How many passes over a tape (reverse, or forward under vmap) eager dfdx has compiled so
  far (see WARM_UP_S)."""
  from dfdx._src import reverse_cache
  return reverse_cache.stats["compiled"]


def measure_tools(problem, size, n_params, reference, makers, tools, samples,
                  fd=None, skip=None, budget_s=TOOL_BUDGET_S):
  """Rows for one problem at one size.

  Args:
    reference: (value, tuple of arrays), the derivative every tool is checked against.
    makers: {tool name: () -> Tool}; a maker may raise ImportError.
    tools: names to run (None: all).
    samples: interleaved samples per tool; a tool whose samples so far took budget_s
      seconds takes no more (it gets at least one), and its note says how many it got.
    fd: the reference's finite-difference error, reported on every row.
    skip: {tool name: reason} for tools left out at this size (reported, not run).
  """
  steady_allocator()
  skip = skip or {}
  wanted = [name for name in TOOLS if name in makers and (tools is None or name in tools)]
  built = available_tools({k: v for k, v in makers.items() if k not in skip}, tools)
  rows = {name: dict(problem=problem, size=size_label(size), tool=name,
                     n_params=int(n_params), objective_s=None, derivative_s=None,
                     first_call_s=None, compile_s=None, peak_mb=None, error=None, fd_error=fd,
                     derivative_samples=None,
                     note=built[name].note if name in built else skip.get(name, ""))
          for name in wanted if name in built or name in skip}
  freeze_heap()
  timed = {}
  for name, tool in built.items():
    row = rows[name]
    if tool.derivative is not None:
      start = time.perf_counter()
      if tool.compile is not None:
        tool.compile()
        row["compile_s"] = time.perf_counter() - start
      result = tool.derivative()
      row["first_call_s"] = time.perf_counter() - start
      row["error"] = derivative_error(result, reference)
      if row["error"] >= MAX_ERROR:
        add_note(row, "disagrees: not timed")
        continue
      if row["first_call_s"] < WARM_UP_S:
        compiled = _passes_compiled()
        seconds_per_call(tool.derivative, WARM_UP_S)
        if _passes_compiled() != compiled:
          add_note(row, "tape pass compiled in the warm-up")
    tool.objective()  # warm up (a jitted objective compiles here)
    timed[name] = tool
  freeze_heap()
  times = {name: ([], []) for name in timed}
  for _ in range(samples):
    for name, tool in timed.items():
      objective_times, derivative_times = times[name]
      if objective_times and sum(objective_times) + sum(derivative_times) >= budget_s:
        continue
      objective_times.append(seconds_per_call(tool.objective))
      if tool.derivative is not None:
        compiled = _passes_compiled()
        derivative_times.append(seconds_per_call(tool.derivative))
        if _passes_compiled() != compiled:  # (a long tape: rolled at its 2nd call)
          add_note(rows[name], "tape pass compiled in the first sample")
  for name, (objective_times, derivative_times) in times.items():
    row = rows[name]
    row["objective_s"] = float(np.median(objective_times))
    if len(objective_times) < samples:
      add_note(row, f"{len(objective_times)} sample{'s' * (len(objective_times) > 1)}")
    if derivative_times:
      row["derivative_s"] = float(np.median(derivative_times))
      row["derivative_samples"] = derivative_times  # sample i of every tool: round i
      limit = max(PEAK_LIMIT_S, 4 * row["derivative_s"] * (name not in HEAP_ONLY))
      row["peak_mb"] = peak_megabytes(timed[name].derivative, limit)
      if row["peak_mb"] is None:
        add_note(row, f"peak MB: tracemalloc slowed the call past {limit:.0f} s")
      elif name in HEAP_ONLY:
        add_note(row, "peak MB: Python heap only")
  return [rows[name] for name in TOOLS if name in rows]


# ---- peers: import with the settings every benchmark uses --------------------------------


def import_jax():
  """jax and jax.numpy in float64 (ADBench's precision)."""
  import jax
  import jax.numpy as jnp
  jax.config.update("jax_enable_x64", True)
  return jax, jnp


def import_torch():
  """torch, on one thread."""
  import torch
  torch.set_num_threads(1)
  return torch
