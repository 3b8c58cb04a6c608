"""Machine instructions per eager dfdx value_and_grad call on ADBench's GMM or LSTM, counted by
valgrind's callgrind: a measure of the engine's work that this machine's load does not move
(timings here move by 30% between runs), and that counts the C the interpreter and NumPy
run, which bench/profile_dfdx.py's bytecode count does not.

Runs this script twice under callgrind, making `--calls` gradient calls after a warm-up and
then none, and prints the difference over `--calls`: the steady state of a loop, where the
reverse pass is compiled (dfdx/_src/reverse_cache.py) from the warm-up on. Compare two
versions of dfdx by running it in each checkout. Needs valgrind (not a Python package:
`apt install valgrind`); each count takes about 20 s.

Run: python bench/instructions.py [--gmm 2,5 | --lstm 2,64] [--calls 100]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_calls(problem, size, calls):
  """The worker: `calls` gradient calls of `problem` at `size`, after five to warm up."""
  sys.path[:0] = [HERE, os.path.dirname(HERE)]  # this checkout's dfdx
  from timing import single_threaded, steady_allocator
  single_threaded()
  steady_allocator()
  import dfdx
  from dfdx._src import reverse_cache
  # The steady state of a loop: a compiled reverse pass (when enabled) is compiled during
  # the warm-up, not at a point that depends on timings.
  reverse_cache._compile_seconds_per_node = 0.0
  if problem == "gmm":
    import gmm
    data = gmm.gmm_data(*size)
    vg = dfdx.value_and_grad(gmm.gmm_objective, (0, 1, 2))
  else:
    import lstm
    data = lstm.lstm_data(*size)
    vg = dfdx.value_and_grad(lstm.lstm_objective, (0, 1))
  for _ in range(5 + calls):
    vg(*data)


def instructions(problem, label, calls):
  """Instructions that callgrind counts in a worker making `calls` calls."""
  out = subprocess.run(
      ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
       os.path.abspath(__file__), "--worker", f"--{problem}", label, "--calls", str(calls)],
      capture_output=True, text=True, check=True).stderr
  return int(re.search(r"Collected : (\d+)", out).group(1))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--gmm", default=None, help="d,K (default 2,5)")
  group.add_argument("--lstm", default=None, help="l,c")
  parser.add_argument("--calls", type=int, default=100)
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  problem, label = ("lstm", args.lstm) if args.lstm else ("gmm", args.gmm or "2,5")
  if args.worker:
    run_calls(problem, tuple(int(v) for v in label.split(",")), args.calls)
    return
  if shutil.which("valgrind") is None:
    sys.exit("bench/instructions.py needs valgrind on the PATH (apt install valgrind)")
  per_call = (instructions(problem, label, args.calls) - instructions(problem, label, 0)) \
      / args.calls
  compiled = "off" if os.environ.get("DFDX_COMPILED_REVERSE") == "0" else "on"
  print(f"{problem} {label}: {per_call / 1e6:.3f}M instructions per eager value_and_grad "
        f"call ({args.calls} calls after the warm-up, callgrind; compiled reverse passes "
        f"{compiled}: DFDX_COMPILED_REVERSE=0 turns them off)")


if __name__ == "__main__":
  main()
