"""A model of how NumPy's iterator lays out and loops over a ufunc's operands: what the
generated code plans its layouts with (codegen.py's _Layouts). The eager impls
(ops/elementwise.py) see the real strides and use a quicker test with the same threshold.

NumPy gives a ufunc's result the layout of its operands ("K" order: the axes sorted by the
operands' strides, C order winning conflicts) and loops innermost along the fastest axis.
For a transposed operand broadcast against others that can make the innermost loop run
along a short axis: `x.T[None, :, :] - m[:, :, None]` with x of shape (1000, 2) is laid out
with the axis of length 2 innermost, and runs 4-7x slower than on a C-ordered copy of x.T
(and so does every later operation on the result). Strides here are in elements, with 0
for broadcast axes; only the layout is modelled, so a wrong guess costs time, never
correctness.
"""
from __future__ import annotations

SHORT = 32  # K order is kept for inner loops this long (measured: from there on it wins)


def c_strides(shape):
  """The element strides of a C-ordered array of `shape`."""
  strides, step = [], 1
  for n in reversed(shape):
    strides.append(step)
    step *= max(n, 1)
  return tuple(reversed(strides))


def broadcast_strides(strides, shape, out_shape):
  """`strides` of an operand of `shape` broadcast to `out_shape` (0 on broadcast axes)."""
  lead = len(out_shape) - len(shape)
  return tuple(0 if i < lead or shape[i - lead] == 1 else strides[i - lead]
               for i in range(len(out_shape)))


def numpy_order(axes, operands):
  """The axes fastest first, as NumPy's iterator orders them (a stable insertion sort by
  stride, an operand with a zero stride on either axis having no say, C order winning
  conflicts)."""
  perm = list(reversed(axes))
  for i0 in range(1, len(perm)):
    j0, pos = perm[i0], i0
    for i1 in range(i0 - 1, -1, -1):
      j1 = perm[i1]
      ambiguous, swap = True, False
      for s in operands:
        if s[j0] != 0 and s[j1] != 0:
          if abs(s[j1]) <= abs(s[j0]):
            swap = False
          elif ambiguous:
            swap = True
          ambiguous = False
      if not ambiguous:
        if not swap:
          break
        pos = i1
    if pos != i0:
      perm.insert(pos, perm.pop(i0))
  return perm


def inner_length(order, operands, shape):
  """The length of the innermost loop once NumPy coalesces the axes contiguous in every
  operand."""
  length = shape[order[0]]
  for inner, outer in zip(order, order[1:]):
    if any(s[outer] != s[inner] * shape[inner] for s in operands):
      break
    length *= shape[outer]
  return length


def contiguous_in(order, shape):
  """The element strides of an array of `shape` laid out with the axes `order` fastest
  first."""
  strides, step = [0] * len(shape), 1
  for ax in order:
    strides[ax] = step
    step *= shape[ax]
  return tuple(strides)


def k_order(shape, operands):
  """NumPy's order of the non-trivial axes of a result of `shape` (fastest first) over the
  broadcast `operands` strides, or None where it is C order."""
  axes = [i for i, n in enumerate(shape) if n > 1]
  order = numpy_order(axes, operands)
  return None if order == axes[::-1] else order


def short_inner_loop(shape, operands):
  """Whether K order over `operands` would loop along a short axis where C order would loop
  along a much longer one."""
  order = k_order(shape, operands)
  if order is None:
    return False
  c_order = [i for i, n in enumerate(shape) if n > 1][::-1]
  k_inner = inner_length(order, operands + [contiguous_in(order, shape)], shape)
  c_inner = inner_length(c_order, operands + [c_strides(shape)], shape)
  return k_inner < SHORT and c_inner >= 4 * k_inner


def reshape_copies(strides, shape, new_shape):
  """Whether NumPy's reshape of an array with these element strides copies it: it is a view
  when each group of axes that merges into (or splits from) new axes steps through memory
  as one axis would."""
  if 0 in shape:
    return False
  dims = [(n, s) for n, s in zip(shape, strides) if n != 1]
  new = [n for n in new_shape if n != 1]
  i = j = 0
  while i < len(dims) and j < len(new):
    i0, old_size, new_size = i, dims[i][0], new[j]
    while old_size != new_size:
      if old_size < new_size:
        i += 1
        old_size *= dims[i][0]
      else:
        j += 1
        new_size *= new[j]
    if any(dims[k][1] != dims[k + 1][0] * dims[k + 1][1] for k in range(i0, i)):
      return True
    i, j = i + 1, j + 1
  return False
