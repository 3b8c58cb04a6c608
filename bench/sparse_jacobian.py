"""Sparse Jacobians: dfdx's `jacobian(f, sparse=True)` against the dense Jacobian (dfdx, JAX
jit) and a hand-written sparse Jacobian (the floor), in one run.

Problems, each a residual whose Jacobian is sparse:
  * bratu1d: the 1-D Bratu problem on n interior points, F(u) = (u[i-1] - 2 u[i] +
    u[i+1]) / h^2 + lam exp(u[i]) (tridiagonal);
  * bratu2d: the same on an n x n grid with the 5-point Laplacian (five diagonals);
  * ba: ADBench's bundle-adjustment residuals (bench/ba.py) as one function of (cameras,
    points, weights): 15 nonzeros in each reprojection row, one in each weight row.
  * arrow: a Hessian, of sum x^4 + x_0 sum sin x_i (the diagonal, and a hub row and
    column: a star coloring needs 2 passes, a column coloring one per column).
Tools: dfdx sparse=True (the pattern found at every call), dfdx sparse=P (a pattern given,
its coloring cached), dfdx's dense jacobian (hessian), JAX's jitted jacfwd (hessian; dense;
installed peers only), and the hand-written sparse matrix. Dense tools are skipped where the matrix would
not fit in memory. Every result is first checked against the hand-written one (ADBench's
|a - b| / max(1, |a| + |b|) < 1e-8 per entry); a tool that disagrees is reported, not timed.
"colors" is the number of passes dfdx needed (the mode with fewer). Below the table, each
problem's first call of dfdx sparse=True (a new function: the pattern found and colored, the
coloring not yet cached), split into finding the pattern, coloring it, the passes and the
rest (linearizing, assembling), beside the later calls' median.

Run: python bench/sparse_jacobian.py [--problems bratu1d bratu2d ba] [--samples 5]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import interleaved_medians, single_threaded, steady_allocator, table  # noqa: E402

single_threaded()
steady_allocator()

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
from dfdx._src import sparsity  # noqa: E402
from common import import_jax, relative_error  # noqa: E402

import ba  # noqa: E402

SIZES = {"bratu1d": [1000, 10000], "bratu2d": [32, 100],
         "ba": [(49, 7776, 31843), (21, 11315, 36455)],
         "arrow": [1000, 4000]}
LAM = 1.0
MAX_ERROR = 1e-8
DENSE_LIMIT = 20_000_000  # entries of a dense Jacobian worth timing


# ---- the problems: residual (written once, `xp` = dfdx.numpy or jax.numpy), data, floor -------


def bratu1d(xp, n):
  h = 1.0 / (n + 1)

  def residual(u):
    padded = xp.concatenate([xp.zeros(1), u, xp.zeros(1)])
    return (padded[:-2] - 2 * u + padded[2:]) / h ** 2 + LAM * xp.exp(u)

  def hand(u):
    main = -2 / h ** 2 + LAM * np.exp(u)
    off = np.full(n - 1, 1 / h ** 2)
    return sp.diags_array([off, main, off], offsets=[-1, 0, 1], format="csr")
  u = np.random.default_rng(0).uniform(0, 0.5, n)
  return residual, hand, (u,)


def bratu2d(xp, n):
  h = 1.0 / (n + 1)

  def residual(u):
    g = xp.pad(xp.reshape(u, (n, n)), 1)
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1])
    return xp.ravel(lap / h ** 2 + LAM * xp.exp(xp.reshape(u, (n, n))))

  def hand(u):
    one = sp.diags_array([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1])
    eye = sp.eye_array(n)
    lap = (sp.kron(eye, one) + sp.kron(one, eye)) / h ** 2
    return (lap + sp.diags_array(LAM * np.exp(u))).tocsr()
  u = np.random.default_rng(0).uniform(0, 0.5, n * n)
  return residual, hand, (u,)


def ba_problem(xp, size):
  n, m, p = size
  cams, X, w, obs, feats = ba.ba_data(n, m, p)
  reproj = ba.make_reproj(xp)
  pattern = ba.Pattern(n, m, obs)

  def residual(cams, X, w):
    err = reproj(cams[obs[:, 0]], X[obs[:, 1]], w, feats)
    return xp.concatenate([xp.ravel(err), ba.weight_error(w)])

  def hand(cams, X, w):
    return pattern.matrix(ba.ba_jacobian_numpy(cams, X, w, obs, feats, pattern)[1][0])
  return residual, hand, (cams, X, w)


def arrow(xp, n):
  """A Hessian (of f(x) = sum x^4 + x_0 sum sin x_i): the diagonal and a hub row and column."""
  def objective(x):
    return xp.sum(x ** 4) + x[0] * xp.sum(xp.sin(x[1:]))

  def hand(x):
    diag = 12 * x ** 2
    diag[1:] -= x[0] * np.sin(x[1:])
    hub = np.concatenate([[0.0], np.cos(x[1:])])
    rows = np.concatenate([np.arange(n), np.zeros(n - 1, int), np.arange(1, n)])
    cols = np.concatenate([np.arange(n), np.arange(1, n), np.zeros(n - 1, int)])
    return sp.csr_array((np.concatenate([diag, hub[1:], hub[1:]]), (rows, cols)), shape=(n, n))
  x = np.random.default_rng(0).standard_normal(n)
  return objective, hand, (x,)


PROBLEMS = {"bratu1d": bratu1d, "bratu2d": bratu2d, "ba": ba_problem, "arrow": arrow}
HESSIANS = {"arrow"}


# ---- one size ---------------------------------------------------------------------------------


def _dense(jac, args):
  """A dense (M, N) array from a Jacobian of one or several arguments."""
  if isinstance(jac, (tuple, list)):
    m = np.asarray(jac[0]).shape[0]
    return np.concatenate([np.asarray(b).reshape(m, -1) for b in jac], axis=1)
  return np.asarray(jac)


def measure(name, size, samples):
  residual, hand, args = PROBLEMS[name](dnp, size)
  argnums = tuple(range(len(args)))
  argnums = argnums[0] if len(argnums) == 1 else argnums
  reference = hand(*args).tocsr()
  reference.sort_indices()
  m, n = reference.shape
  tools = {"hand-written sparse": lambda: hand(*args)}
  first = {}
  derivative = dfdx.hessian if name in HESSIANS else dfdx.jacobian
  detecting = derivative(residual, argnums, sparse=True)
  found, first = first_call(detecting, args)
  tools["dfdx sparse=True"] = lambda: detecting(*args)
  given = derivative(residual, argnums, sparse=found)
  tools["dfdx sparse=P"] = lambda: given(*args)
  dense_ok = m * n <= DENSE_LIMIT
  if dense_ok:
    dense = derivative(residual, argnums)
    tools["dfdx dense"] = lambda: _dense(dense(*args), args)
    jax = import_jax_or_none()
    if jax is not None:
      jax_mod, jnp = jax
      jresidual = PROBLEMS[name](jnp, size)[0]
      jjac = jax_mod.jit((jax_mod.hessian if name in HESSIANS else jax_mod.jacfwd)(
          jresidual, argnums))
      tools["JAX jit (dense)"] = lambda: _dense(
          jax_mod.block_until_ready(jjac(*args)), args)
  ok, errors = {}, {}
  ref_dense = reference.toarray() if dense_ok else None
  for tool, fn in tools.items():
    out = fn()
    if sp.issparse(out):
      out = out.tocsr()
      out.sort_indices()
      err = (relative_error((out - reference).toarray(), 0) if dense_ok else
             _sparse_error(out, reference))
    else:
      err = relative_error(out, ref_dense)
    errors[tool] = err
    ok[tool] = err < MAX_ERROR
  timed = {t: f for t, f in tools.items() if ok[t]}
  medians = interleaved_medians(timed, samples)
  colors = _colors(found, name in HESSIANS)
  rows = []
  floor = medians["hand-written sparse"]
  for tool in tools:
    if not ok[tool]:
      rows.append([tool, f"{name} {_label(size)}", "disagrees", "", f"{errors[tool]:.1e}", ""])
      continue
    rows.append([tool, f"{name} {_label(size)}", f"{medians[tool] * 1e3:.2f}",
                 f"{medians[tool] / floor:.2f}", f"{errors[tool]:.1e}",
                 colors if tool.startswith("dfdx sparse") else ""])
  first["later"] = medians["dfdx sparse=True"]
  return rows, (m, n, found.nnz), first


# The parts of a first call, by the sparsity functions that do them.
PHASES = {"pattern": ("jacobian_pattern",), "coloring": ("column_coloring", "star_coloring"),
          "passes": ("_pushed", "_pulled")}


def first_call(fn, args):
  """fn(*args) and {phase: seconds} of that call: "total", and the time spent in each of
  PHASES (the functions wrapped for this call only)."""
  spent = {phase: 0.0 for phase in PHASES}
  originals = {}

  def timed(phase, f):
    def wrapper(*a, **k):
      start = time.perf_counter()
      try:
        return f(*a, **k)
      finally:
        spent[phase] += time.perf_counter() - start
    return wrapper
  for phase, names in PHASES.items():
    for name in names:
      originals[name] = getattr(sparsity, name)
      setattr(sparsity, name, timed(phase, originals[name]))
  try:
    start = time.perf_counter()
    out = fn(*args)
    spent["total"] = time.perf_counter() - start
  finally:
    for name, f in originals.items():
      setattr(sparsity, name, f)
  return out, spent


def _sparse_error(a, b):
  """ADBench's metric at the entries where the two differ, without densifying."""
  d = abs(a - b).tocsr()
  rows, cols = d.nonzero()
  if not len(rows):
    return 0.0
  scale = (abs(a) + abs(b)).tocsr()
  return float(np.max(np.asarray(d[rows, cols]) / np.maximum(1.0, np.asarray(scale[rows, cols]))))


def _colors(jac, symmetric):
  pattern = sp.csr_array((np.ones(jac.nnz), jac.indices, jac.indptr), shape=jac.shape)
  counts = {"fwd": sparsity.column_coloring(pattern)[1]}
  if symmetric:
    counts["star"] = sparsity.star_coloring(pattern)[1]
  else:
    counts["rev"] = sparsity.column_coloring(pattern.T.tocsr())[1]
  best = min(counts, key=counts.get)
  return f"{counts[best]} ({best})"


def _label(size):
  return "x".join(str(s) for s in size) if isinstance(size, tuple) else str(size)


def import_jax_or_none():
  try:
    return import_jax()
  except ImportError:
    return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
  parser.add_argument("--samples", type=int, default=5)
  args = parser.parse_args()
  print("Sparse Jacobians: medians of", args.samples, "samples, tools interleaved, one thread "
        "for every library (NumPy's BLAS, XLA), held to one core.")
  rows, notes = [], []
  for name in args.problems:
    for size in SIZES[name]:
      r, (m, n, nnz), first = measure(name, size, args.samples)
      rows += r
      rest = first["total"] - sum(first[phase] for phase in PHASES)
      notes.append(f"{name} {_label(size)}: {m} x {n}, {nnz} nonzeros "
                   f"({100 * nnz / max(1, m * n):.3g}%); dfdx sparse=True first call "
                   f"{first['total'] * 1e3:.0f} ms (" + ", ".join(
                       f"{phase} {first[phase] * 1e3:.0f}" for phase in PHASES)
                   + f", rest {rest * 1e3:.0f}), later calls {first['later'] * 1e3:.0f} ms")
  print(table(rows, ["tool", "problem", "ms", "/ hand", "error", "colors"]))
  print("\n".join(notes))
  print("Rerun: python bench/sparse_jacobian.py --problems " + " ".join(args.problems)
        + f" --samples {args.samples}")


if __name__ == "__main__":
  main()
