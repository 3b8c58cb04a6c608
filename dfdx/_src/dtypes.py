"""Dtype rules: NumPy 2 promotion (Python scalars are weak) and the dtypes of derivatives.

Result dtypes of ufuncs are found by applying the ufunc to empty arrays of the operand dtypes
once and caching the answer, so abstract evaluation agrees with NumPy by construction.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.core import ShapedArray

default_float = np.dtype(np.float64)

_WEAK_STANDINS = {"b": True, "i": 1, "u": 1, "f": 1.0, "c": 1j}
_ufunc_cache: dict = {}


def standin(aval: ShapedArray):
  """An operand that NumPy promotes like `aval`: an empty array, or a Python scalar if weak."""
  if aval.weak_type:
    return _WEAK_STANDINS[aval.dtype.kind]
  return np.empty((0,), aval.dtype)


def ufunc_result_dtype(ufunc, *avals: ShapedArray) -> np.dtype:
  """The dtype NumPy gives `ufunc(*operands)` for operands with these avals."""
  key = (ufunc,) + tuple((a.dtype, a.weak_type) for a in avals)
  try:
    return _ufunc_cache[key]
  except KeyError:
    pass
  with np.errstate(all="ignore"):
    result = ufunc(*[standin(a) for a in avals])
  dtype = _ufunc_cache[key] = (result[0] if isinstance(result, tuple) else result).dtype
  return dtype


def result_weak_type(*avals: ShapedArray) -> bool:
  """A result is weakly typed only when every operand is (Python scalars combined)."""
  return all(a.weak_type for a in avals)


def result_type(*avals: ShapedArray) -> np.dtype:
  """NumPy's promotion of the operands' dtypes, weak scalars included."""
  key = ("result_type",) + tuple((a.dtype, a.weak_type) for a in avals)
  try:
    return _ufunc_cache[key]
  except KeyError:
    pass
  dtype = _ufunc_cache[key] = np.result_type(*[standin(a) for a in avals])
  return dtype


def differentiable_dtype(dtype) -> np.dtype:
  """The dtype a value is differentiated as: floats keep theirs, integers and bools become
  the default float."""
  dtype = np.dtype(dtype)
  return dtype if dtype.kind in "fc" else default_float


def is_differentiable(dtype) -> bool:
  return np.dtype(dtype).kind in "fc"
