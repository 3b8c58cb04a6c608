"""Where to cut a program into checkpointed pieces (`checkpoint(f, segments=...)`).

Reverse mode through a checkpointed piece keeps only the piece's inputs, and recomputes its
intermediates when the backward pass reaches it. Cut into pieces, a program's backward pass
holds the values alive at the cuts (each piece's inputs), plus one piece's intermediates
while that piece is recomputed and pulled back. The peak is estimated as

    (bytes alive at the cuts) + (bytes of the largest piece's intermediates)

with a piece's intermediates taken as the outputs of its equations (what linearization may
keep). For a chain of n equal blocks of intermediates r and boundary c, cutting every k
blocks costs n c / k + k r, least at k = sqrt(n c / r): Chen et al.'s sqrt(n) memory for one
extra forward pass. The cuts are chosen where few bytes are alive (between blocks, not
inside one), which is what makes the placement automatic.

`segments="auto"` tries piece sizes on a geometric grid and keeps the cuts of least
estimated peak (no cut when none beats recomputing nothing); an integer k gives k pieces of
about equal intermediate bytes, each cut moved to the narrowest point near its place.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.ir import Program, Var


def _nbytes(v):
  return v.aval.size * v.aval.dtype.itemsize


def cut_costs(program):
  """(bytes of each equation's outputs, bytes alive just after each equation): a value is
  alive from the equation that computes it until its last use (program outputs: to the end).
  The program's inputs and constants are held by the caller anyway and are not counted."""
  eqns, n = program.eqns, len(program.eqns)
  last = {}
  for i, eqn in enumerate(eqns):
    for a in eqn.inputs:
      if type(a) is Var:
        last[id(a)] = i
  for o in program.outs:
    if type(o) is Var:
      last[id(o)] = n
  sizes = np.zeros(n, np.float64)
  change = np.zeros(n + 1, np.float64)
  for i, eqn in enumerate(eqns):
    for v in eqn.outputs:
      s = _nbytes(v)
      sizes[i] += s
      end = last.get(id(v), i)
      if end > i:
        change[i] += s
        change[end] -= s
  return sizes, np.cumsum(change)[:n], last


def choose_cuts(sizes, alive, segments):
  """The equations after which to cut (sorted), for `segments` ("auto" or a count)."""
  n = len(sizes)
  if n < 2:
    return []
  prefix = np.concatenate([[0.0], np.cumsum(sizes)])
  total = prefix[-1]
  if segments == "auto":
    best, best_cuts = total, []
    largest = max(float(sizes.max()), 1.0)
    for bound in np.geomspace(largest, max(total, largest), 32)[:-1]:
      cuts = _greedy_cuts(prefix, alive, bound)
      peak = _peak(prefix, alive, cuts)
      if peak < best:
        best, best_cuts = peak, cuts
    return best_cuts
  k = min(int(segments), n)
  cuts, start = [], 0
  for j in range(1, k):
    target = int(np.searchsorted(prefix, total * j / k, side="left")) - 1
    lo, hi = max(start, target - n // (4 * k)), min(n - 1 - (k - j), target + n // (4 * k))
    if hi < lo:
      lo = hi = max(start, min(target, n - 1 - (k - j)))
    near = np.abs(np.arange(lo, hi + 1) - target)
    i = lo + int(np.lexsort((near, alive[lo:hi + 1]))[0])  # (the narrowest, then the nearest)
    cuts.append(i)
    start = i + 1
  return cuts


def _greedy_cuts(prefix, alive, bound):
  """Pieces of at most `bound` bytes of intermediates (a longer equation is a piece of its
  own), each ending at the least-alive point of the second half of its allowed range."""
  n, cuts, start = len(prefix) - 1, [], 0
  while prefix[n] - prefix[start] > bound:
    end = int(np.searchsorted(prefix, prefix[start] + bound, side="right")) - 2
    end = max(start, min(end, n - 2))
    lo = start + (end - start) // 2
    window = alive[lo:end + 1]
    i = lo + int(len(window) - 1 - np.argmin(window[::-1]))  # (ties: the latest)
    cuts.append(i)
    start = i + 1
    if start >= n - 1:
      break
  return cuts


def _peak(prefix, alive, cuts):
  bounds = [0] + [c + 1 for c in cuts] + [len(prefix) - 1]
  largest = max(prefix[b] - prefix[a] for a, b in zip(bounds[:-1], bounds[1:]))
  return float(sum(alive[c] for c in cuts) + largest)


def split_program(program, cuts, last):
  """The pieces of `program` cut after the equations `cuts`: a list of (piece, its input
  variables, its output variables). A piece takes the program's inputs, constants and
  earlier pieces' outputs that it uses (constants as constants of its own), and gives the
  values that later pieces or the program's outputs use."""
  eqns, n = program.eqns, len(program.eqns)
  consts = {id(v): (v, c) for v, c in zip(program.const_vars, program.const_vals)}
  bounds = [0] + [c + 1 for c in cuts] + [n]
  pieces = []
  for a, b in zip(bounds[:-1], bounds[1:]):
    defined, ins, const_vars, const_vals, seen = set(), [], [], [], set()
    for eqn in eqns[a:b]:
      for x in eqn.inputs:
        if type(x) is Var and id(x) not in defined and id(x) not in seen:
          seen.add(id(x))
          if id(x) in consts:
            const_vars.append(x)
            const_vals.append(consts[id(x)][1])
          else:
            ins.append(x)
      defined.update(id(v) for v in eqn.outputs)
    outs = [v for eqn in eqns[a:b] for v in eqn.outputs if last.get(id(v), -1) >= b]
    if outs:
      pieces.append((Program(ins, const_vars, const_vals, eqns[a:b], outs), ins, outs))
  return pieces
