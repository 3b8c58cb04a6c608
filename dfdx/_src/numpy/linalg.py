"""`dfdx.numpy.linalg`: norm, det, inv, solve (and matmul), with numpy.linalg's semantics on
stacks of matrices (leading batch dims), dtypes and errors.

With no traced operand each function calls NumPy itself. Traced calls use the det and solve
primitives of `dfdx._src.ops.linalg` and, for norm, elementwise and reduction primitives;
this module holds no derivative rules. Norms that need singular values (ord=2, -2, 'nuc' for
matrices) raise NotImplementedError on traced values: dfdx has no differentiable SVD yet.
"""
from __future__ import annotations

import operator

import numpy as np

from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import linalg as linalg_ops
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.contractions import _operand, _traced, matmul
from dfdx._src.numpy.util import dtype as dtype_of, normalize_axis, shape as shape_of

__all__ = ["norm", "det", "inv", "solve", "matmul"]


def det(a):
  """Differentiable `numpy.linalg.det`, for stacks of matrices.

  Its derivative is det(a) inv(a)^T (computed with a solve, which raises LinAlgError at a
  singular matrix).

  >>> import dfdx
  >>> dfdx.grad(det)(np.array([[2.0, 0.0], [0.0, 4.0]]))
  array([[4., 0.],
         [0., 2.]])
  """
  if not _traced(a):
    return np.linalg.det(a)
  return linalg_ops.det(_operand(a))


def inv(a):
  """Differentiable `numpy.linalg.inv`, for stacks of matrices: solve(a, I)."""
  if not _traced(a):
    return np.linalg.inv(a)
  return linalg_ops.inv(_operand(a))


def solve(a, b):
  """Differentiable `numpy.linalg.solve`, in a and in b. As in NumPy 2, b is a vector only
  when b.ndim == 1; otherwise it is a stack of matrices whose batch dims broadcast with a's."""
  if not _traced(a, b):
    return np.linalg.solve(a, b)
  return linalg_ops.solve(_operand(a), _operand(b))


# ---- norm -----------------------------------------------------------------------------------
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002  (NumPy's name)
  """Differentiable `numpy.linalg.norm`: vector norms (ord None/2, 1, inf, -inf, 0, any p,
  negative p too) and matrix norms ('fro', 1, -1, inf, -inf), over `axis` (None, an int or
  a pair) with `keepdims`.

  Where a 2-norm, Frobenius or p-norm (p > 0) is zero its derivative does not exist; dfdx
  gives the subgradient 0 there rather than NaN.

  Raises:
    NotImplementedError: for the matrix norms that need singular values (2, -2, 'nuc').

  >>> import dfdx
  >>> dfdx.grad(norm)(np.array([3.0, 4.0]))
  array([0.6, 0.8])
  """
  if not _traced(x):
    return np.linalg.norm(x, ord, axis, keepdims)
  x = _operand(x)
  if dtype_of(x).kind not in "fc":
    x = shape_ops.convert_element_type(x, np.float64)
  nd = len(shape_of(x))
  if axis is None:
    if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
      out = _root(red.reduce_sum(ew.mul(x, x), tuple(range(nd))), 2)
      return shape_ops.reshape(out, (1,) * nd) if keepdims else out
    axis = tuple(range(nd))
  elif not isinstance(axis, tuple):
    try:
      axis = (operator.index(axis),)
    except TypeError as e:
      raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
  if len(axis) == 1:
    return _vector_norm(x, ord, normalize_axis(axis[0], nd), keepdims)
  if len(axis) == 2:
    return _matrix_norm(x, ord, normalize_axis(axis[0], nd), normalize_axis(axis[1], nd),
                        keepdims)
  raise ValueError(f"Improper number of dimensions to norm. (dfdx.numpy.linalg.norm got axis="
                   f"{axis} for an array of rank {nd}: give one axis for a vector norm or two "
                   "for a matrix norm.)")


def _root(total, p):
  """total ** (1/p), with the subgradient 0 (not NaN) where total is 0 (p > 0)."""
  zero = ew.eq(total, 0)
  safe = ew.select(zero, np.ones((), dtype_of(total)), total)
  root = ew.sqrt(safe) if p == 2 else ew.pow(safe, 1.0 / p)
  return ew.select(zero, np.zeros((), dtype_of(total)), root)


def _abs_power(x, p):
  ax = ew.abs(x)
  return ew.integer_pow(ax, int(p)) if float(p).is_integer() else ew.pow(ax, float(p))


def _max_or_zero(x, axis):
  """max along `axis`, 0 for an empty axis (NumPy's initial=0 for the inf norms)."""
  shape = shape_of(x)
  if shape[axis] == 0:
    return np.zeros(shape[:axis] + shape[axis + 1:], dtype_of(x))
  return red.reduce_max(x, (axis,))


def _vector_norm(x, ord, axis, keepdims):
  if isinstance(ord, str):
    raise ValueError(f"Invalid norm order '{ord}' for vectors")
  axes = (axis,)
  if ord == np.inf:
    out = _max_or_zero(ew.abs(x), axis)
  elif ord == -np.inf:
    out = red.reduce_min(ew.abs(x), axes)
  elif ord == 0:
    out = red.reduce_sum(shape_ops.convert_element_type(ew.ne(x, 0), dtype_of(x)), axes)
  elif ord == 1:
    out = red.reduce_sum(ew.abs(x), axes)
  elif ord is None or ord == 2:
    out = _root(red.reduce_sum(ew.mul(x, x), axes), 2)
  elif ord > 0:
    out = _root(red.reduce_sum(_abs_power(x, ord), axes), ord)
  else:
    out = ew.pow(red.reduce_sum(_abs_power(x, ord), axes), 1.0 / float(ord))
  if keepdims:
    out = shape_ops.reshape(out, red.keepdims_shape(shape_of(x), axes))
  return out


def _matrix_norm(x, ord, row, col, keepdims):
  if row == col:
    raise ValueError("Duplicate axes given.")
  if isinstance(ord, str) and ord == "nuc" or not isinstance(ord, str) and ord in (2, -2):
    raise NotImplementedError(
        f"dfdx.numpy.linalg.norm: the matrix norm ord={ord!r} needs singular values, and dfdx "
        "has no differentiable SVD yet. Use ord='fro', 1, -1, inf or -inf, or call "
        "numpy.linalg.norm on values that are not traced.")
  if ord is None or ord in ("fro", "f"):
    out = _root(red.reduce_sum(ew.mul(x, x), tuple(sorted((row, col)))), 2)
  elif ord in (1, -1, np.inf, -np.inf):
    # 1: max over columns of the column sums; inf: max over rows of the row sums.
    summed, other = (row, col) if ord in (1, -1) else (col, row)
    sums, along = red.reduce_sum(ew.abs(x), (summed,)), other - (other > summed)
    out = _max_or_zero(sums, along) if ord > 0 else red.reduce_min(sums, (along,))
  else:
    raise ValueError(f"Invalid norm order for matrices. (dfdx.numpy.linalg.norm got ord="
                     f"{ord!r}; use None, 'fro', 1, -1, inf or -inf.)")
  if keepdims:
    out = shape_ops.reshape(out, red.keepdims_shape(shape_of(x), (row, col)))
  return out
