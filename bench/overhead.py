"""Eager overhead of dfdx against NumPy and the peers, in one run.

Measures (medians of repeated samples, tools interleaved, one thread everywhere):
  * one `dnp` call against the same NumPy call (nothing traced: the fast path);
  * `grad` of a tiny function, f(x) = sum(sin(x) * x) on 10 elements, against HIPS autograd,
    PyTorch (`.backward()` and `torch.func.grad`) and JAX eager (no jit), when installed;
  * the time `import dfdx` adds to `import numpy` (fresh interpreters).

Also the call overhead of the jitted gradient of the same function against JAX's jitted call.

Targets (issue 2): dfdx's eager grad at most half of autograd's time; `import dfdx` adds at
most 0.1 s to `import numpy`. The row "dfdx, no VJP rules" is reverse mode as the transpose of
the JVP rules alone: the difference is what the direct VJP rules buy.

Run: python bench/overhead.py [--samples 30]      (peers: pip install -e '.[bench]')
"""
from __future__ import annotations

import os

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import interleaved_medians, single_threaded, table  # noqa: E402

single_threaded()

import argparse  # noqa: E402
import subprocess  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
from dfdx._src import ad  # noqa: E402


def tiny_grad_candidates(x):
  candidates = {}
  f = lambda x: dnp.sum(dnp.sin(x) * x)
  dfdx_grad = dfdx.grad(f)
  candidates["dfdx grad"] = lambda: dfdx_grad(x)

  def without_vjp_rules():  # reverse mode as the transpose of the JVP rules alone
    with ad.use_vjp_rules(False):
      return dfdx_grad(x)
  candidates["dfdx, no VJP rules"] = without_vjp_rules
  try:
    import autograd
    import autograd.numpy as anp
    ag = autograd.grad(lambda x: anp.sum(anp.sin(x) * x))
    candidates["autograd grad"] = lambda: ag(x)
  except ImportError:
    pass
  try:
    import torch
    torch.set_num_threads(1)
    xt = torch.tensor(x)

    def torch_backward():
      xr = xt.detach().requires_grad_(True)
      (torch.sin(xr) * xr).sum().backward()
      return xr.grad
    candidates["torch .backward()"] = torch_backward
    tf_grad = torch.func.grad(lambda x: (torch.sin(x) * x).sum())
    candidates["torch.func.grad"] = lambda: tf_grad(xt)
  except ImportError:
    pass
  try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    jg = jax.grad(lambda x: jnp.sum(jnp.sin(x) * x))
    xj = jnp.asarray(x)
    candidates["jax grad (eager)"] = lambda: jg(xj).block_until_ready()
  except ImportError:
    pass
  return candidates


def jitted_grad_candidates(x):
  f = lambda x: dnp.sum(dnp.sin(x) * x)
  jg = dfdx.jit(dfdx.grad(f))
  candidates = {"dfdx jit(grad)": lambda: jg(x)}
  try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    jjg = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(x) * x)))
    xj = jnp.asarray(x)
    candidates["jax jit(grad), jax array in"] = lambda: jjg(xj).block_until_ready()
    candidates["jax jit(grad), numpy in and out"] = lambda: np.asarray(jjg(x))
  except ImportError:
    pass
  return candidates


def import_time(statement, samples=7, bytecode=True):
  """Median wall time of a fresh interpreter running `statement`: with bytecode caching (the
  normal case; the cache is warmed first), or compiling every module from source."""
  env = dict(os.environ)
  env.pop("PYTHONDONTWRITEBYTECODE", None)
  if not bytecode:
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPYCACHEPREFIX"] = os.path.join(os.getcwd(), ".no-such-pycache-dir")
  else:
    subprocess.run([sys.executable, "-c", statement], check=True, env=env)
  times = []
  for _ in range(samples):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=env)
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--samples", type=int, default=30, help="samples per measurement")
  args = parser.parse_args()
  x = np.linspace(0.1, 1.0, 10)
  print("dfdx eager overhead; one thread for every library; medians of "
        f"{args.samples} interleaved samples; NumPy {np.__version__}, Python "
        f"{sys.version.split()[0]}")

  calls = interleaved_medians({
      "np.sin(x)": lambda: np.sin(x), "dnp.sin(x)": lambda: dnp.sin(x),
      "np.sum(x)": lambda: np.sum(x), "dnp.sum(x)": lambda: dnp.sum(x),
      "x * x (numpy)": lambda: np.multiply(x, x), "dnp.multiply(x, x)": lambda: dnp.multiply(x, x),
  }, args.samples)
  rows = []
  for np_name, dnp_name in (("np.sin(x)", "dnp.sin(x)"), ("np.sum(x)", "dnp.sum(x)"),
                            ("x * x (numpy)", "dnp.multiply(x, x)")):
    rows.append([dnp_name, f"{calls[dnp_name] * 1e6:.2f}", f"{calls[np_name] * 1e6:.2f}",
                 f"{calls[dnp_name] / calls[np_name]:.2f}"])
  print("\nOne call with nothing traced (10 elements)")
  print(table(rows, ["call", "dfdx us", "NumPy us", "ratio"]))

  grads = interleaved_medians(tiny_grad_candidates(x), args.samples)
  base = grads.get("autograd grad")
  rows = [[name, f"{t * 1e6:.1f}", f"{t / grads['dfdx grad']:.2f}",
           f"{grads['dfdx grad'] / base:.2f}" if name == "dfdx grad" and base else ""]
          for name, t in sorted(grads.items(), key=lambda kv: kv[1])]
  print("\nEager gradient of f(x) = sum(sin(x) * x), 10 elements")
  print(table(rows, ["tool", "us per grad", "x dfdx's time", "dfdx / autograd"]))
  if base:
    verdict = "met" if grads["dfdx grad"] <= 0.5 * base else "NOT met"
    print(f"target dfdx <= 0.5 x autograd: {verdict} ({grads['dfdx grad'] / base:.2f})")

  jitted = interleaved_medians(jitted_grad_candidates(x), args.samples)
  rows = [[name, f"{t * 1e6:.2f}", f"{t / jitted['dfdx jit(grad)']:.2f}"]
          for name, t in sorted(jitted.items(), key=lambda kv: kv[1])]
  print("\nJitted gradient of the same function (issue 3: dfdx at or under JAX's jitted call)")
  print(table(rows, ["tool", "us per call", "x dfdx's time"]))

  t_numpy = import_time("import numpy")
  t_dfdx = import_time("import numpy, dfdx")
  print(f"\nimport numpy: {t_numpy:.3f} s; import numpy, dfdx: {t_dfdx:.3f} s; dfdx adds "
        f"{t_dfdx - t_numpy:.3f} s (target <= 0.100 s: "
        f"{'met' if t_dfdx - t_numpy <= 0.1 else 'NOT met'}), with bytecode caching")
  cold = import_time("import numpy, dfdx", samples=3, bytecode=False) - import_time(
      "import numpy", samples=3, bytecode=False)
  print(f"compiling every module from source (PYTHONDONTWRITEBYTECODE=1), dfdx adds {cold:.3f} s")
  print("\nRerun: python bench/overhead.py --samples 30")


if __name__ == "__main__":
  main()
