"""Per-example gradients: vmap of grad, eager, against a hand-written NumPy gradient and the
peers, in one run.

The loss of one example (x, y) is the softmax cross-entropy of a two-layer network,
  h = tanh(x W1 + b1),  z = h W2 + b2,  loss = logsumexp(z) - z[y],
and the derivative is its gradient with respect to (W1, b1, W2, b2) for every example of a
batch at once (the per-example gradients of differentially private training, or of
influence estimates): dfdx.vmap(dfdx.grad(loss), in_axes=(None, 0, 0)), the same with
jax.vmap(jax.grad) eager and jitted and torch.func.vmap(torch.func.grad); autograd has no
vmap and is left out. The floor is the gradient written by hand, vectorized over the batch.
Every tool is first checked against the floor (|a - b| / max(1, |a| + |b|) < 1e-8 per
entry); one that disagrees is reported, not timed.

dfdx's eager reverse pass under vmap is compiled once its structure has been seen (see
dfdx/_src/reverse_cache.py, "reverse passes under vmap"); the row "dfdx interpreted" runs the
same call with compiled passes off, the interpreter of every earlier version.

Run: python bench/per_example.py [--sizes 512,32,64,10 8192,8,16,3] [--samples 7]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import interleaved_medians, single_threaded, table  # noqa: E402

single_threaded()

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
from dfdx._src import reverse_cache  # noqa: E402

# (batch, inputs, hidden units, classes): a mid-size network, and many examples of a small one.
SIZES = [(512, 32, 64, 10), (8192, 8, 16, 3)]
MAX_ERROR = 1e-8


def make_data(batch, d, hidden, classes, seed=0):
  rng = np.random.default_rng(seed)
  params = (rng.normal(size=(d, hidden)) / np.sqrt(d), 0.1 * rng.normal(size=hidden),
            rng.normal(size=(hidden, classes)) / np.sqrt(hidden), 0.1 * rng.normal(size=classes))
  return params, rng.normal(size=(batch, d)), rng.integers(0, classes, size=batch)


def make_loss(xp, take):
  """The loss of one example; `take(z, y)` is z[y] in the tool's own terms."""
  def loss(params, x, y):
    w1, b1, w2, b2 = params
    z = xp.tanh(x @ w1 + b1) @ w2 + b2
    top = xp.max(z)
    return xp.log(xp.sum(xp.exp(z - top))) + top - take(z, y)
  return loss


def hand_written(params, xs, ys):
  """The per-example gradients by the chain rule, batched: (B, d, h), (B, h), (B, h, c), (B, c)."""
  w1, b1, w2, b2 = params
  h = np.tanh(xs @ w1 + b1)
  z = h @ w2 + b2
  p = np.exp(z - z.max(axis=1, keepdims=True))
  dz = p / p.sum(axis=1, keepdims=True)
  dz[np.arange(len(ys)), ys] -= 1
  dpre = (dz @ w2.T) * (1 - h * h)
  return (xs[:, :, None] * dpre[:, None, :], dpre, h[:, :, None] * dz[:, None, :], dz)


def candidates(params, xs, ys):
  """{tool: () -> the four per-example gradients as NumPy arrays}."""
  found = {"numpy": lambda: hand_written(params, xs, ys)}
  per_example = dfdx.vmap(dfdx.grad(make_loss(dnp, lambda z, y: z[y])), in_axes=(None, 0, 0))
  found["dfdx eager"] = lambda: per_example(params, xs, ys)

  def interpreted():
    previous, reverse_cache.enabled = reverse_cache.enabled, False
    try:
      return per_example(params, xs, ys)
    finally:
      reverse_cache.enabled = previous
  found["dfdx interpreted"] = interpreted
  jitted = dfdx.jit(per_example)
  found["dfdx jit"] = lambda: jitted(params, xs, ys)
  try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    jax_grads = jax.vmap(jax.grad(make_loss(jnp, lambda z, y: z[y])), in_axes=(None, 0, 0))
    jax_jit = jax.jit(jax_grads)
    jax_args = (tuple(jnp.asarray(p) for p in params), jnp.asarray(xs), jnp.asarray(ys))
    found["jax eager"] = lambda: [np.asarray(g) for g in jax_grads(*jax_args)]
    found["jax jit"] = lambda: [np.asarray(g) for g in jax_jit(*jax_args)]
  except ImportError:
    pass
  try:
    import torch
    torch.set_num_threads(1)
    take = lambda z, y: z.gather(0, y.unsqueeze(0)).squeeze(0)  # (z[y] is not vmappable)  # noqa: E731
    torch_grads = torch.func.vmap(torch.func.grad(make_loss(torch, take)), in_dims=(None, 0, 0))
    torch_args = (tuple(torch.from_numpy(p) for p in params), torch.from_numpy(xs),
                  torch.from_numpy(ys))
    found["pytorch"] = lambda: [g.numpy() for g in torch_grads(*torch_args)]
  except ImportError:
    pass
  return found


def error(got, expected):
  """ADBench's metric, the largest over every entry of every gradient."""
  return max(float(np.max(np.abs(g - e) / np.maximum(1, np.abs(g) + np.abs(e))))
             for g, e in zip(got, expected, strict=True))


def measure(size, samples):
  params, xs, ys = make_data(*size)
  tools = candidates(params, xs, ys)
  expected = tools["numpy"]()
  timed, notes = {}, {}
  for name, fn in tools.items():
    err = error([np.asarray(g) for g in fn()], expected)
    notes[name] = f"{err:.0e}"
    if err < MAX_ERROR:
      timed[name] = fn
    else:
      notes[name] += " disagrees: not timed"
  medians = interleaved_medians(timed, samples)
  rows = []
  for name in tools:
    t = medians.get(name)
    cell = lambda r: "-" if t is None else f"{r:.2f}"  # noqa: E731
    rows.append([",".join(map(str, size)), name, "-" if t is None else f"{t * 1e3:.3f}",
                 cell(t / medians["numpy"] if t else 0),
                 cell(t / medians["dfdx eager"] if t and "dfdx eager" in medians else 0),
                 notes[name]])
  return rows


def main():
  parser = argparse.ArgumentParser(description="per-example gradients (vmap of grad)")
  parser.add_argument("--sizes", nargs="*", default=[",".join(map(str, s)) for s in SIZES],
                      help="batch,inputs,hidden,classes")
  parser.add_argument("--samples", type=int, default=7)
  args = parser.parse_args()
  print(f"Per-example gradients of a two-layer network's cross-entropy (vmap of grad); medians "
        f"of {args.samples} interleaved samples; one thread for every library; NumPy "
        f"{np.__version__}, Python {sys.version.split()[0]}")
  rows = []
  for size in args.sizes:
    rows += measure(tuple(int(v) for v in size.split(",")), args.samples)
  print(table(rows, ["size", "tool", "ms", "x floor", "x dfdx eager", "error"]))
  print(f"\nRerun: python bench/per_example.py --sizes {' '.join(args.sizes)} "
        f"--samples {args.samples}")


if __name__ == "__main__":
  main()
