"""Helpers shared by the modules of `dfdx.numpy`: recognizing traced values, converting
arguments, and normalizing axes the way NumPy does (with NumPy's errors)."""
from __future__ import annotations

import numpy as np

from dfdx._src.core import Tracer, get_aval


def is_traced(x) -> bool:
  return isinstance(x, Tracer)


def any_traced(*xs) -> bool:
  for x in xs:
    if isinstance(x, Tracer):
      return True
  return False


def contains_tracer(x) -> bool:
  """Whether a (nested) list or tuple holds a traced value."""
  if isinstance(x, Tracer):
    return True
  if isinstance(x, (list, tuple)):
    return any(contains_tracer(v) for v in x)
  return False


def arg(x):
  """An operand as NumPy or dfdx sees it: tracers and scalars as they are, sequences (which
  may hold tracers) as arrays."""
  if isinstance(x, (list, tuple)):
    from dfdx._src.numpy.creation import asarray
    return asarray(x)
  return x


def shape(x) -> tuple:
  return x.shape if isinstance(x, (Tracer, np.ndarray, np.generic)) else np.shape(x)


def ndim(x) -> int:
  return len(shape(x))


def dtype(x) -> np.dtype:
  return get_aval(x).dtype if isinstance(x, (Tracer, np.ndarray, np.generic)) else \
      np.asarray(x).dtype


def normalize_axis(axis, ndim: int) -> int:
  """A non-negative axis; NumPy's AxisError if out of range."""
  if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
    raise TypeError(f"an integer is required for the axis, got {type(axis).__name__}")
  if not -ndim <= axis < ndim:
    raise np.exceptions.AxisError(int(axis), ndim)
  return int(axis) % ndim if ndim else 0


def normalize_axes(axis, ndim: int) -> tuple:
  """`axis` (None, an int or a tuple) as a sorted tuple of distinct non-negative axes."""
  if axis is None:
    return tuple(range(ndim))
  axes = axis if isinstance(axis, (tuple, list)) else (axis,)
  out = tuple(normalize_axis(a, ndim) for a in axes)
  if len(set(out)) != len(out):
    raise ValueError("duplicate value in 'axis'")
  return tuple(sorted(out))


def reject_out(name, out):
  if out is not None:
    raise TypeError(f"dfdx.numpy.{name}: out= is not supported on traced values (arrays are "
                    "not modified in place under a transformation); use the returned value.")
