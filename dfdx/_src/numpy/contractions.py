"""Contractions of `dfdx.numpy`: dot, matmul (the `@` operator), vdot, inner, outer,
tensordot, einsum, trace, diagonal, diag, tril, triu and kron, with NumPy's semantics,
dtypes and errors.

With no traced operand each function calls NumPy itself. Traced calls are built from the
dot_general primitive and the shape, reduction and elementwise primitives; this module holds
no derivative rules. einsum has no primitive of its own: it takes diagonals for repeated
indices, sums indices that occur in one operand only, and contracts the operands pairwise in
the order that np.einsum_path(optimize='greedy') picks from their shapes.
"""
from __future__ import annotations

import functools
import math
import string

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.ops import contraction as con
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import arg, contains_tracer, dtype as dtype_of, normalize_axis, \
    reject_out, shape as shape_of, strong

__all__ = ["dot", "matmul", "vdot", "inner", "outer", "tensordot", "einsum", "trace",
           "diagonal", "diag", "tril", "triu", "kron"]


def _traced(*xs):
  for x in xs:
    if contains_tracer(x):
      return True
  return False


def _operand(x):
  """A traced operand as it is; anything else as a NumPy array (a Python scalar becomes a
  strongly typed 0-d array, as NumPy's contractions convert it, and so does a staged value
  standing for one)."""
  x = arg(x)
  return strong(x) if isinstance(x, Tracer) else np.asarray(x)


def _fmt(shape):
  return f"({','.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def _not_aligned(a_shape, b_shape, a_dim, b_dim):
  return ValueError(f"shapes {_fmt(a_shape)} and {_fmt(b_shape)} not aligned: "
                    f"{a_shape[a_dim]} (dim {a_dim}) != {b_shape[b_dim]} (dim {b_dim})")


def dot(a, b, out=None):
  """Differentiable `numpy.dot`: the sum product of a's last axis with b's second-to-last
  (or only) axis; a product with a 0-d operand is elementwise."""
  if not _traced(a, b):
    return np.dot(a, b, out=out)
  reject_out("dot", out)
  a, b = _operand(a), _operand(b)
  a_shape, b_shape = shape_of(a), shape_of(b)
  if not a_shape or not b_shape:
    return ew.mul(a, b)
  b_axis = max(len(b_shape) - 2, 0)
  if a_shape[-1] != b_shape[b_axis]:
    raise _not_aligned(a_shape, b_shape, len(a_shape) - 1, b_axis)
  return con.dot_general(a, b, (((len(a_shape) - 1,), (b_axis,)), ((), ())))


def matmul(x1, x2, /, out=None, **kwargs):
  """Differentiable `numpy.matmul` (also the `@` operator on traced values): stacks of
  matrices with broadcast batch dims; 1-D operands are vectors."""
  if not _traced(x1, x2):
    return np.matmul(x1, x2) if out is None and not kwargs else np.matmul(x1, x2, out=out,
                                                                           **kwargs)
  reject_out("matmul", out)
  if kwargs:
    raise TypeError(f"dfdx.numpy.matmul: unsupported keyword arguments {sorted(kwargs)} on "
                    "traced values.")
  return con.matmul(_operand(x1), _operand(x2))


def vdot(a, b, /):
  """Differentiable `numpy.vdot`: the dot product of the flattened operands, the first
  conjugated where complex (sum(conj(a) * b))."""
  if not _traced(a, b):
    return np.vdot(a, b)
  a, b = _operand(a), _operand(b)
  n, m = math.prod(shape_of(a)), math.prod(shape_of(b))
  if n != m:
    raise ValueError(f"vdot: the operands have {n} and {m} elements (shapes {shape_of(a)} and "
                     f"{shape_of(b)}); they must have the same number of elements.")
  return con.dot_general(shape_ops.reshape(ew.conj(a), (n,)), shape_ops.reshape(b, (n,)),
                         (((0,), (0,)), ((), ())))


def inner(a, b, /):
  """Differentiable `numpy.inner`: the sum product over the last axes of a and b."""
  if not _traced(a, b):
    return np.inner(a, b)
  a, b = _operand(a), _operand(b)
  a_shape, b_shape = shape_of(a), shape_of(b)
  if not a_shape or not b_shape:
    return ew.mul(a, b)
  if a_shape[-1] != b_shape[-1]:
    raise _not_aligned(a_shape, b_shape, len(a_shape) - 1, len(b_shape) - 1)
  return con.dot_general(a, b, (((len(a_shape) - 1,), (len(b_shape) - 1,)), ((), ())))


def outer(a, b, out=None):
  """Differentiable `numpy.outer` of the flattened operands."""
  if not _traced(a, b):
    return np.outer(a, b, out=out)
  reject_out("outer", out)
  a, b = _operand(a), _operand(b)
  a = shape_ops.reshape(a, (math.prod(shape_of(a)),))
  b = shape_ops.reshape(b, (math.prod(shape_of(b)),))
  return con.dot_general(a, b, (((), ()), ((), ())))


def tensordot(a, b, axes=2):
  """Differentiable `numpy.tensordot`: `axes` is an int N (a's last N axes with b's first N)
  or a pair of axis sequences (or of ints)."""
  if not _traced(a, b):
    return np.tensordot(a, b, axes)
  a, b = _operand(a), _operand(b)
  a_shape, b_shape = shape_of(a), shape_of(b)
  try:
    a_axes, b_axes = axes
  except TypeError:
    n = int(axes)
    a_axes, b_axes = list(range(-n, 0)), list(range(0, n))
  a_axes = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)
  b_axes = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)
  if len(a_axes) != len(b_axes):
    raise ValueError(f"shape-mismatch for sum: tensordot got {len(a_axes)} axes of a and "
                     f"{len(b_axes)} axes of b; give as many of each.")
  a_axes = [normalize_axis(i, len(a_shape)) for i in a_axes]
  b_axes = [normalize_axis(i, len(b_shape)) for i in b_axes]
  if len(set(a_axes)) != len(a_axes) or len(set(b_axes)) != len(b_axes):
    raise ValueError("duplicate axes are not allowed in tensordot")
  for i, j in zip(a_axes, b_axes):
    if a_shape[i] != b_shape[j]:
      raise ValueError(f"shape-mismatch for sum: axis {i} of a has size {a_shape[i]} but axis "
                       f"{j} of b has size {b_shape[j]}.")
  return con.dot_general(a, b, ((a_axes, b_axes), ((), ())))


# ---- einsum ---------------------------------------------------------------------------------
def einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe"):
  """Differentiable `numpy.einsum`: subscripts with '...' broadcasting and implicit output,
  repeated indices (diagonals), any number of operands; the interleaved form
  `einsum(op0, sublist0, op1, sublist1, ..., [sublistout])` too. `optimize` is accepted and
  ignored on traced values: they are always contracted pairwise in np.einsum_path's greedy
  order. `dtype` and `casting` act as in NumPy: operands that `casting` does not allow to
  cast to `dtype` raise TypeError.

  >>> float(einsum("ij,ij", np.eye(2), np.ones((2, 2))))
  2.0
  """
  if not _traced(*operands):
    return np.einsum(*operands, out=out, optimize=optimize, dtype=dtype, order=order,
                     casting=casting)
  reject_out("einsum", out)
  subscripts, operands = _einsum_subscripts(operands)
  operands = [_operand(x) for x in operands]
  # (NumPy computes every product in the operands' common dtype: two float32 operands
  # contracted first in float32 would lose a float64 result's precision)
  common = np.dtype(dtype) if dtype is not None else np.result_type(
      *[np.empty(0, dtype_of(x)) for x in operands])
  _check_casting(operands, common, casting)
  operands = [x if dtype_of(x) == common else shape_ops.convert_element_type(x, common)
              for x in operands]
  return _einsum(subscripts, operands)


_CASTINGS = ("no", "equiv", "safe", "same_kind", "unsafe")


def _check_casting(operands, common, casting):
  """NumPy's errors where an operand may not be cast to the dtype that einsum computes in
  under `casting` (its default 'safe' refuses float64 operands with dtype=float32)."""
  if casting not in _CASTINGS:
    raise ValueError(f"casting must be one of 'no', 'equiv', 'safe', 'same_kind', 'unsafe' "
                     f"(got {casting!r})")
  for i, x in enumerate(operands):
    if not np.can_cast(dtype_of(x), common, casting):
      raise TypeError(f"Iterator operand {i} dtype could not be cast from "
                      f"{dtype_of(x)!r} to {common!r} according to the rule {casting!r}")


def _einsum_subscripts(args):
  """(subscripts string, operands) from either calling form of einsum."""
  if isinstance(args[0], str):
    return args[0].replace(" ", ""), list(args[1:])
  pairs = args[:len(args) - len(args) % 2]
  subscripts = ",".join(_sublist(s) for s in pairs[1::2])
  if len(args) % 2:
    subscripts += "->" + _sublist(args[-1])
  return subscripts, list(pairs[0::2])


def _sublist(sublist):
  letters = string.ascii_letters
  out = []
  for s in sublist:
    if s is Ellipsis:
      out.append("...")
    elif isinstance(s, (int, np.integer)) and 0 <= s < len(letters):
      out.append(letters[s])
    else:
      raise ValueError(f"einsum: subscript {s!r} in a sublist must be an integer in [0, 52) or "
                       "Ellipsis.")
  return "".join(out)


def _einsum(subscripts, operands):
  terms, out_labels, sizes = _parse_einsum(subscripts, [shape_of(x) for x in operands])
  dtype = np.result_type(*[dtype_of(x) for x in operands])
  # Per operand: drop broadcast unit dims, take diagonals of repeated labels, and sum the
  # labels that no other operand and not the output has.
  counts = {}
  for labels in terms:
    for label in set(labels):
      counts[label] = counts.get(label, 0) + 1
  ops = []
  for x, labels in zip(operands, terms):
    x, labels = _squeeze_broadcast(x, labels, sizes)
    x, labels = _take_diagonals(x, labels)
    lone = [i for i, l in enumerate(labels) if counts[l] == 1 and l not in out_labels]
    if lone:
      x = red.reduce_sum(x, lone)
      labels = [l for i, l in enumerate(labels) if i not in lone]
    ops.append((x, labels))
  for pair in _contraction_path(ops, out_labels):
    picked = [ops[i] for i in pair]
    for i in sorted(pair, reverse=True):
      del ops[i]
    needed = set(out_labels).union(*[labels for _, labels in ops])
    result = picked[0]
    for k, other in enumerate(picked[1:]):
      rest = needed.union(*[labels for _, labels in picked[k + 2:]])
      result = _contract_pair(result, other, rest)
    ops.append(result)
  (x, labels), = ops
  x = shape_ops.transpose(x, [labels.index(l) for l in out_labels])
  return x if dtype_of(x) == dtype else shape_ops.convert_element_type(x, dtype)


def _parse_einsum(subscripts, shapes):
  """(input label lists, output labels, label sizes). Letters are labels; the dims an
  ellipsis covers get integer labels counted from the right (0 = rightmost), so that they
  broadcast across operands as NumPy broadcasts."""
  where = f"einsum('{subscripts}')"
  if "->" in subscripts:
    inputs, output = subscripts.split("->", 1)
  else:
    inputs, output = subscripts, None
  inputs = inputs.split(",")
  if len(inputs) != len(shapes):
    raise ValueError(f"{where}: the subscripts name {len(inputs)} operands but {len(shapes)} "
                     "were given; give one comma-separated term per operand.")
  terms, sizes, n_ellipsis = [], {}, 0
  for i, (term, shape) in enumerate(zip(inputs, shapes)):
    labels = _parse_term(term, len(shape), where, f"operand {i}")
    n_ellipsis = max(n_ellipsis, sum(isinstance(l, int) for l in labels))
    for label, size in zip(labels, shape):
      known = sizes.get(label, 1)
      if size != known and 1 not in (size, known):
        raise ValueError(f"{where}: index {_label_name(label)} has size {size} in operand {i} "
                         f"but {known} elsewhere; sizes of one index must match (or be 1).")
      sizes[label] = size if known == 1 else known
    terms.append(labels)
  if output is None:
    letters = [l for ls in terms for l in ls if isinstance(l, str)]
    out_labels = list(range(n_ellipsis - 1, -1, -1)) + sorted(
        l for l in set(letters) if letters.count(l) == 1)
  else:
    if n_ellipsis and "..." not in output:
      raise ValueError(f"{where}: the operands have dims under '...' but the output has no "
                       "'...' to put them; add '...' to the output (e.g. '...i->...').")
    out_labels = _parse_term(output, None, where, "the output", n_ellipsis)
    if len(set(out_labels)) != len(out_labels):
      raise ValueError(f"{where}: the output repeats an index; name each output index once.")
    missing = [l for l in out_labels if l not in sizes]
    if missing:
      raise ValueError(f"{where}: output index {_label_name(missing[0])} appears in no input; "
                       "every output index must appear in an input.")
  return terms, out_labels, sizes


def _parse_term(term, ndim, where, what, n_ellipsis=None):
  if term.count("...") > 1 or "." in term.replace("...", ""):
    raise ValueError(f"{where}: the term '{term}' of {what} has more than one ellipsis or a "
                     "stray '.'; use at most one '...' per term.")
  head, ellipsis, tail = term.partition("...")
  for c in head + tail:
    if c not in string.ascii_letters:
      raise ValueError(f"{where}: invalid subscript {c!r} in {what}; subscripts must be "
                       "letters (a-z, A-Z), '...', ',' and '->'.")
  n_letters = len(head) + len(tail)
  if ndim is None:
    n = n_ellipsis if ellipsis else 0
  elif ellipsis:
    n = ndim - n_letters
    if n < 0:
      raise ValueError(f"{where}: the term '{term}' of {what} has {n_letters} indices but the "
                       f"operand has only {ndim} dims.")
  else:
    n = 0
    if n_letters != ndim:
      raise ValueError(f"{where}: the term '{term}' of {what} has {n_letters} indices but the "
                       f"operand has {ndim} dims; give one index per dim (or use '...').")
  return list(head) + list(range(n - 1, -1, -1)) + list(tail)


def _label_name(label):
  return f"'{label}'" if isinstance(label, str) else f"of the ellipsis at position -{label + 1}"


def _squeeze_broadcast(x, labels, sizes):
  shape = shape_of(x)
  keep = [i for i, l in enumerate(labels) if shape[i] == sizes[l]]
  if len(keep) == len(labels):
    return x, labels
  return (shape_ops.reshape(x, tuple(shape[i] for i in keep)), [labels[i] for i in keep])


def _take_diagonals(x, labels):
  while len(set(labels)) != len(labels):
    i = next(i for i, l in enumerate(labels) if labels.count(l) > 1)
    j = labels.index(labels[i], i + 1)
    x = con.diagonal(x, 0, i, j)
    labels = [l for k, l in enumerate(labels) if k not in (i, j)] + [labels[i]]
  return x, labels


def _contraction_path(ops, out_labels):
  """np.einsum_path's greedy pairwise order for these operands (from shapes only)."""
  if len(ops) == 1:
    return []
  if len(ops) == 2:
    return [(0, 1)]
  names = {}
  for _, labels in ops:
    for l in labels:
      names.setdefault(l, string.ascii_letters[len(names) % 52])
  if len(names) > 52:  # more indices than np.einsum_path can name: contract left to right
    return [(0, 1)] * (len(ops) - 1)
  subscripts = ",".join("".join(names[l] for l in labels) for _, labels in ops) + "->" + \
      "".join(names[l] for l in out_labels)
  return _greedy_path(subscripts, tuple(shape_of(x) for x, _ in ops))


@functools.lru_cache(maxsize=512)
def _greedy_path(subscripts, shapes):
  standins = [np.broadcast_to(np.zeros((), np.float64), s) for s in shapes]
  return np.einsum_path(subscripts, *standins, optimize="greedy")[0][1:]


def _contract_pair(a, b, needed):
  """Contract two (operand, labels) pairs with dot_general: shared labels still needed are
  batch dims, other shared labels are summed; labels needed by neither are summed first."""
  (x, xl), (y, yl) = a, b
  x, xl = _sum_unneeded(x, xl, set(yl) | needed)
  y, yl = _sum_unneeded(y, yl, set(xl) | needed)
  shared = [l for l in xl if l in yl]
  batch = [l for l in shared if l in needed]
  contract = [l for l in shared if l not in needed]
  dims = (([xl.index(l) for l in contract], [yl.index(l) for l in contract]),
          ([xl.index(l) for l in batch], [yl.index(l) for l in batch]))
  out = con.dot_general(x, y, dims)
  labels = batch + [l for l in xl if l not in shared] + [l for l in yl if l not in shared]
  return out, labels


def _sum_unneeded(x, labels, needed):
  drop = [i for i, l in enumerate(labels) if l not in needed]
  if not drop:
    return x, labels
  return red.reduce_sum(x, drop), [l for i, l in enumerate(labels) if i not in drop]


# ---- diagonals and triangles ----------------------------------------------------------------
def _two_axes(name, a, axis1, axis2):
  ndim = len(shape_of(a))
  if ndim < 2:
    raise ValueError(f"diag requires an array of at least two dimensions (in {name}, got "
                     f"shape {shape_of(a)})")
  axis1, axis2 = normalize_axis(axis1, ndim), normalize_axis(axis2, ndim)
  if axis1 == axis2:
    raise ValueError("axis1 and axis2 cannot be the same")
  return axis1, axis2


def diagonal(a, offset=0, axis1=0, axis2=1):
  """Differentiable `numpy.diagonal`: the other axes, then the diagonal (a copy, not a
  view)."""
  if not _traced(a):
    return np.diagonal(a, offset, axis1, axis2)
  a = _operand(a)
  axis1, axis2 = _two_axes("diagonal", a, axis1, axis2)
  return con.diagonal(a, int(offset), axis1, axis2)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
  """Differentiable `numpy.trace`: sums along diagonals (NumPy's sum dtype)."""
  if not _traced(a):
    return np.trace(a, offset, axis1, axis2, dtype, out)
  reject_out("trace", out)
  a = _operand(a)
  axis1, axis2 = _two_axes("trace", a, axis1, axis2)
  d = con.diagonal(a, int(offset), axis1, axis2)
  if dtype is not None:
    d = shape_ops.convert_element_type(d, dtype)
  return red.reduce_sum(d, (len(shape_of(d)) - 1,))


def diag(v, k=0):
  """Differentiable `numpy.diag`: a 1-D input becomes a matrix with it on diagonal k; a 2-D
  input gives its diagonal k."""
  if not _traced(v):
    return np.diag(v, k)
  v = _operand(v)
  shape, k = shape_of(v), int(k)
  if len(shape) == 2:
    return con.diagonal(v, k, 0, 1)
  if len(shape) != 1:
    raise ValueError(f"Input must be 1- or 2-d. (dfdx.numpy.diag got shape {shape})")
  n = shape[0] + abs(k)
  start = k if k >= 0 else -k * n
  used = shape[0] + max(shape[0] - 1, 0) * n  # the diagonal spans this much of the flat matrix
  flat = shape_ops.pad(v, ((start, n * n - start - used, n),))
  return shape_ops.reshape(flat, (n, n))


def _triangle(name, np_fun, lower):
  def fn(m, k=0):
    if not _traced(m):
      return np_fun(m, k)
    m = _operand(m)
    shape = shape_of(m)
    if not shape:
      raise TypeError(f"dfdx.numpy.{name}: the input must have at least one dimension, got "
                      "a 0-d value.")
    mask = np.tri(*shape[-2:], k=k, dtype=bool) if lower else \
        ~np.tri(*shape[-2:], k=k - 1, dtype=bool)
    return ew.select(mask, m, np.zeros((), dtype_of(m)))
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"Differentiable `numpy.{name}`: zeros the entries {'above' if lower else 'below'}"
                f" diagonal k of the last two axes.")
  return fn


tril = _triangle("tril", np.tril, lower=True)
triu = _triangle("triu", np.triu, lower=False)


def kron(a, b):
  """Differentiable `numpy.kron`: the Kronecker product (the shorter shape is padded with
  leading ones)."""
  if not _traced(a, b):
    return np.kron(a, b)
  a, b = _operand(a), _operand(b)
  a_shape, b_shape = shape_of(a), shape_of(b)
  nd = max(len(a_shape), len(b_shape))
  a_shape = (1,) * (nd - len(a_shape)) + a_shape
  b_shape = (1,) * (nd - len(b_shape)) + b_shape
  a = shape_ops.reshape(a, tuple(d for n in a_shape for d in (n, 1)))
  b = shape_ops.reshape(b, tuple(d for n in b_shape for d in (1, n)))
  return shape_ops.reshape(ew.mul(a, b), tuple(p * q for p, q in zip(a_shape, b_shape)))
