"""Helpers shared by the modules of `dfdx.numpy`: recognizing traced values, converting
arguments, and normalizing axes the way NumPy does (with NumPy's errors)."""
from __future__ import annotations

import operator

import numpy as np

from dfdx._src import dtypes
from dfdx._src.core import Tracer, get_aval
from dfdx._src.staging import StagingTracer
from dfdx._src.state import Variable


def is_traced(x) -> bool:
  return isinstance(x, Tracer)


def any_traced(*xs) -> bool:
  for x in xs:
    if isinstance(x, Tracer):
      return True
  return False


def contains_tracer(x) -> bool:
  """Whether a (nested) list or tuple holds a traced value (or a Variable holding one)."""
  t = type(x)
  if t is np.ndarray or t is float or t is int:  # the common plain operands first
    return False
  if isinstance(x, Variable):
    x = x.value
  if isinstance(x, Tracer):
    return True
  if isinstance(x, (list, tuple)):
    for v in x:
      if contains_tracer(v):
        return True
  return False


def arg(x):
  """An operand as NumPy or dfdx sees it: tracers and scalars as they are, a Variable as its
  value, sequences (which may hold tracers) as arrays."""
  if type(x) is np.ndarray or isinstance(x, Tracer):  # the common cases first
    return x
  if isinstance(x, Variable):
    return x.value
  if isinstance(x, (list, tuple)):
    from dfdx._src.numpy.creation import asarray
    return asarray(x)
  return x


def shape(x) -> tuple:
  return x.shape if isinstance(x, (Tracer, np.ndarray, np.generic)) else np.shape(x)


def ndim(x) -> int:
  return len(shape(x))


def dtype(x) -> np.dtype:
  if isinstance(x, (Tracer, np.ndarray, np.generic)):
    return x.dtype  # (a tracer's dtype is its aval's, without building the aval)
  return np.asarray(x).dtype


def normalize_axis(axis, ndim: int) -> int:
  """A non-negative axis; NumPy's TypeError for a non-integer and AxisError if out of range.
  Integer NumPy scalars and 0-d integer arrays are accepted, as NumPy does."""
  if isinstance(axis, (bool, np.bool_)):
    raise TypeError("an integer is required for the axis")
  try:
    axis = operator.index(axis)
  except TypeError:
    raise TypeError(f"'{type(axis).__name__}' object cannot be interpreted as an integer "
                    "(axis must be an integer)") from None
  if not -ndim <= axis < ndim:
    raise np.exceptions.AxisError(axis, ndim)
  return axis % ndim if ndim else 0


def normalize_axes(axis, ndim: int) -> tuple:
  """`axis` (None, an int or a tuple) as a sorted tuple of distinct non-negative axes."""
  if axis is None:
    return tuple(range(ndim))
  if type(axis) is int and -ndim <= axis < ndim:  # the common case, as normalize_axis does
    return (axis % ndim,)
  axes = axis if isinstance(axis, (tuple, list)) else (axis,)
  out = tuple(normalize_axis(a, ndim) for a in axes)
  if len(set(out)) != len(out):
    raise ValueError("duplicate value in 'axis'")
  return tuple(sorted(out))


def strong(x):
  """`x`, or, if it is a staged value standing for a Python scalar (weakly typed), that value
  as a NumPy value of its dtype, as `np.asarray` makes a Python scalar."""
  if type(x) is StagingTracer and x.ir_var.aval.weak_type:
    from dfdx._src.ops import shape as shape_ops
    return shape_ops.convert_element_type(x, x.dtype)
  return x


_PYTHON_TYPES = {"b": bool, "i": int, "u": int, "f": float, "c": complex}


def python_kind(x, kind: str):
  """A Python scalar `x`, or a staged value standing for one, as the Python scalar of another
  kind ("b", "i", "u", "f" or "c"), as Python converts it (2 -> 2.0, True -> 1, 2.7 -> 2):
  still a Python scalar."""
  if not isinstance(x, Tracer):
    return _PYTHON_TYPES[kind](x)
  from dfdx._src.ops import shape as shape_ops
  from dfdx._src.ops.control_flow import python_number_p
  return python_number_p.bind(shape_ops.convert_element_type(
      x, np.result_type(_PYTHON_TYPES[kind](0))))


def is_weak(x) -> bool:
  """Whether `x` is a Python scalar, whose dtype yields in promotion (NEP 50). NumPy scalars
  are not weak, although np.float64 subclasses float."""
  return type(x) in (bool, int, float, complex)


def weakly_typed(x) -> bool:
  """Whether `x` promotes as a Python scalar does: it is one, or a staged value standing for
  one (a Python scalar argument of a jitted function, say)."""
  t = type(x)
  return t in (bool, int, float, complex) or (t is StagingTracer and x.ir_var.aval.weak_type)


def standin(x):
  """A value that NumPy promotes like `x` (an array, tracer or scalar): an empty array of its
  dtype, or a Python scalar (weak, NEP 50) for a Python scalar or a value standing for one."""
  if is_weak(x):
    return x
  if weakly_typed(x):
    return dtypes.standin(x.ir_var.aval)
  return np.empty((0,), dtype(x))


def result_type(*xs) -> np.dtype:
  """NumPy's `result_type` of arrays, tracers and scalars, Python scalars weak (NEP 50)."""
  return np.result_type(*[standin(x) for x in xs])


def numpy_result_dtype(np_fun, *xs) -> np.dtype:
  """The dtype of `np_fun(*xs)` for operands of these dtypes (cached; raises NumPy's error when
  NumPy has no loop for them)."""
  return dtypes.ufunc_result_dtype(np_fun, *[get_aval(x) for x in xs])


def reject_out(name, out):
  if out is not None:
    raise TypeError(f"dfdx.numpy.{name}: out= is not supported on traced values (arrays are "
                    "not modified in place under a transformation); use the returned value.")
