"""Where dfdx spends its time on ADBench's GMM and LSTM: one eager value_and_grad call, and
the first call of the jitted one.

Prints, per problem: the call's time next to the hand-written NumPy floor; the time spent
inside primitive implementations (the NumPy work, forward and backward), by primitive, and
what is left (the engine's own Python: tracing, the tape, rule dispatch); the bytecodes and
function calls of Python that one call executes (the same in every run, unlike times on a
shared machine: compare versions of the engine by them); then cProfile's
functions with the most own time (a NumPy ufunc's time shows as its caller's own time).
For jit: the first call's time split into tracing, the optimizing passes and code generation.

Run: python bench/profile_dfdx.py [--gmm 20,50] [--lstm 2,256] [--top 25]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import seconds_per_call, single_threaded, steady_allocator  # noqa: E402

single_threaded()
steady_allocator()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402


import dfdx  # noqa: E402
from dfdx._src import codegen, core, jit, passes  # noqa: E402

import gmm  # noqa: E402
import lstm  # noqa: E402


def impl_times(fn):
  """{primitive name: [calls, seconds]} spent in primitive implementations during fn()."""
  totals = {}
  originals = {}
  for prim in core.all_primitives.values():
    if prim.impl is None:
      continue
    originals[prim] = impl = prim.impl

    def timed(*args, _impl=impl, _entry=totals.setdefault(prim.name, [0, 0.0]), **params):
      start = time.perf_counter()
      try:
        return _impl(*args, **params)
      finally:
        _entry[0] += 1
        _entry[1] += time.perf_counter() - start
    prim.impl = timed
  try:
    fn()
  finally:
    for prim, impl in originals.items():
      prim.impl = impl
  return {name: entry for name, entry in totals.items() if entry[0]}


def python_executed(fn):
  """(bytecodes, calls) of Python that fn() executes: a measure of the engine's own work that
  does not move with the machine's load, for comparing two versions of it."""
  counts = [0, 0]

  def tracer(frame, event, arg):
    if event == "call":
      counts[1] += 1
      frame.f_trace_opcodes, frame.f_trace_lines = True, False
    elif event == "opcode":
      counts[0] += 1
    return tracer
  sys.settrace(tracer)
  try:
    fn()
  finally:
    sys.settrace(None)
  return tuple(counts)


def report(title, derivative, floor, top):
  gc.collect()
  gc.freeze()
  seconds = min(seconds_per_call(derivative, 0.2) for _ in range(3))
  floor_seconds = min(seconds_per_call(floor, 0.2) for _ in range(3))
  binds = sum(core.count_binds(derivative).values())
  impls = min((impl_times(derivative) for _ in range(3)),
              key=lambda t: sum(v[1] for v in t.values()))
  numpy_seconds = sum(v[1] for v in impls.values())
  print(f"\n==== {title}")
  print(f"dfdx eager value_and_grad: {seconds * 1e3:.2f} ms; hand-written NumPy: "
        f"{floor_seconds * 1e3:.2f} ms; {binds} primitive binds")
  print(f"inside primitive impls (NumPy work): {numpy_seconds * 1e3:.2f} ms in "
        f"{sum(v[0] for v in impls.values())} calls; the rest (engine): "
        f"{(seconds - numpy_seconds) * 1e3:.2f} ms, "
        f"{(seconds - numpy_seconds) / max(binds, 1) * 1e6:.1f} us per bind")
  bytecodes, calls = python_executed(derivative)
  print(f"Python executed by one call: {bytecodes} bytecodes, {calls} function calls")
  print("impl time by primitive (calls, ms):")
  for name, (calls, secs) in sorted(impls.items(), key=lambda kv: -kv[1][1])[:12]:
    print(f"  {name:<20} {calls:>7} {secs * 1e3:>9.3f}")
  profiler = cProfile.Profile()
  profiler.enable()
  derivative()
  profiler.disable()
  stats = pstats.Stats(profiler)
  stats.sort_stats("tottime").print_stats(top)
  stats.sort_stats("cumulative").print_stats(top)


def jit_phases(title, f, args):
  """Seconds of the first call of dfdx.jit(f)(*args) in tracing, passes and codegen."""
  spent = {"trace": 0.0, "optimize passes": 0.0, "codegen": 0.0}
  patched = [(jit, "_trace_to_program", "trace"), (passes, "optimize", "optimize passes"),
             (codegen, "compile_program", "codegen")]
  originals = [(module, attr, getattr(module, attr)) for module, attr, _ in patched]

  def timing(fn, phase):
    def timed(*a, **k):
      start = time.perf_counter()
      try:
        return fn(*a, **k)
      finally:
        spent[phase] += time.perf_counter() - start
    return timed
  for (module, attr, phase), (_, _, fn) in zip(patched, originals):
    setattr(module, attr, timing(fn, phase))
  try:
    jitted = dfdx.jit(f)
    start = time.perf_counter()
    jitted(*args)
    first = time.perf_counter() - start
  finally:
    for module, attr, fn in originals:
      setattr(module, attr, fn)
  steady = seconds_per_call(lambda: jitted(*args), 0.2)
  print(f"\n==== {title}: first call of dfdx.jit(value_and_grad) {first:.2f} s (steady call "
        f"{steady * 1e3:.2f} ms): " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))


def main():
  parser = argparse.ArgumentParser(description="cProfile of eager dfdx on GMM and LSTM")
  parser.add_argument("--gmm", default="20,50")
  parser.add_argument("--lstm", default="2,256")
  parser.add_argument("--top", type=int, default=25)
  args = parser.parse_args()
  d, k = (int(v) for v in args.gmm.split(","))
  data = gmm.gmm_data(d, k)
  rows, cols = gmm.lower_triangle_indices(d)
  vg = dfdx.value_and_grad(gmm.gmm_objective, (0, 1, 2))
  report(f"GMM d={d}, K={k}, n={gmm.N_POINTS}", lambda: vg(*data),
         lambda: gmm.gmm_value_and_grad_numpy(*data, rows, cols), args.top)
  layers, chars = (int(v) for v in args.lstm.split(","))
  data = lstm.lstm_data(layers, chars)
  vg = dfdx.value_and_grad(lstm.lstm_objective, (0, 1))
  report(f"LSTM l={layers}, c={chars}", lambda: vg(*data),
         lambda: lstm.lstm_value_and_grad_numpy(*data), args.top)
  jit_phases(f"LSTM l={layers}, c={chars}", dfdx.value_and_grad(lstm.lstm_objective, (0, 1)),
             data)


if __name__ == "__main__":
  main()
