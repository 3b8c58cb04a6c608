"""The functions of `dfdx.scipy.signal`: convolve, and correlate built on it.

An n-d convolution is written as one gather and one matrix product: with k the operand with
fewer elements (the kernel) and x the other, out[n] = sum_m k[m] x[n - m]. The index
arrays (which x element each output position meets for each kernel element, or a padding
zero) are computed with NumPy from the shapes alone, for just the output positions that the
mode keeps. So the result is bilinear in the inputs with the derivatives of gather and
matmul, and it runs on NumPy alone (no SciPy): memory is (outputs x kernel size), which
suits the small kernels of signal and image processing.
"""
from __future__ import annotations

import numpy as np

import dfdx.numpy as dnp
from dfdx._src.numpy.util import dtype as dtype_of, shape as shape_of

__all__ = ["convolve", "correlate"]

_MODES = ("full", "same", "valid")
_METHODS = ("auto", "direct", "fft")
_index_cache: dict = {}


def _output_window(s1, s2, mode):
  """(start, shape) of the kept output positions within the full convolution."""
  full = tuple(a + b - 1 for a, b in zip(s1, s2))
  if mode == "full":
    return (0,) * len(full), full
  if mode == "same":
    return tuple((f - a) // 2 for f, a in zip(full, s1)), tuple(s1)
  if not (all(a >= b for a, b in zip(s1, s2)) or all(b >= a for a, b in zip(s1, s2))):
    raise ValueError("For 'valid' mode, one must be at least as large as the other in every "
                     "dimension")
  return tuple(min(a, b) - 1 for a, b in zip(s1, s2)), tuple(abs(a - b) + 1
                                                             for a, b in zip(s1, s2))


def _gather_indices(x_shape, k_shape, start, out_shape):
  """For each kept output position and each kernel element (flattened), the flat index of
  the x element it multiplies, or x.size (a padding zero) outside x."""
  key = (x_shape, k_shape, start, out_shape)
  if key in _index_cache:
    return _index_cache[key]
  out_pos = np.indices(out_shape).reshape(len(out_shape), -1) + np.array(start)[:, None]
  k_pos = np.indices(k_shape).reshape(len(k_shape), -1)
  src = out_pos[:, :, None] - k_pos[:, None, :]  # (ndim, outputs, kernel)
  x_dims = np.array(x_shape)[:, None, None]
  inside = np.all((src >= 0) & (src < x_dims), axis=0)
  flat = np.ravel_multi_index(tuple(np.where(inside, src, 0)), x_shape) if x_shape else \
      np.zeros(inside.shape, np.intp)
  index = np.where(inside, flat, int(np.prod(x_shape)))
  _index_cache[key] = index
  return index


def convolve(in1, in2, mode="full", method="auto"):
  """Differentiable `scipy.signal.convolve`: the n-d convolution of `in1` and `in2` (same
  number of dimensions), `mode` 'full', 'same' (centered, the shape of in1) or 'valid'.
  `method` is accepted and ignored (the computation is direct, in the inputs' dtype).
  Bilinear: differentiable in both inputs. Needs no SciPy.

  >>> convolve(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
  array([0. , 1. , 2.5, 4. , 1.5])
  """
  if mode not in _MODES:
    raise ValueError(f"convolve: acceptable mode flags are 'valid', 'same', or 'full', got "
                     f"{mode!r}")
  if method not in _METHODS:
    raise ValueError(f"convolve: acceptable method flags are 'auto', 'direct', or 'fft', got "
                     f"{method!r}")
  in1, in2 = dnp.asarray(in1), dnp.asarray(in2)
  s1, s2 = shape_of(in1), shape_of(in2)
  if len(s1) != len(s2):
    raise ValueError("in1 and in2 should have the same dimensionality")
  if not s1:
    return in1 * in2
  dtype = np.result_type(dtype_of(in1), dtype_of(in2))
  if 0 in s1 or 0 in s2:
    return _empty_operand(s1, s2, mode, dtype)
  start, out_shape = _output_window(s1, s2, mode)
  # the operand with fewer elements is the kernel (convolution is symmetric)
  x, k = (in1, in2) if np.prod(s2) <= np.prod(s1) else (in2, in1)
  index = _gather_indices(shape_of(x), shape_of(k), start, out_shape)
  x_flat = dnp.concatenate([dnp.reshape(x, (-1,)), np.zeros(1, dtype_of(x))]).astype(dtype)
  out = dnp.matmul(x_flat[index], dnp.reshape(k, (-1,)).astype(dtype))
  return dnp.reshape(out, out_shape)


def _empty_operand(s1, s2, mode, dtype):
  """The convolution where an operand has no elements: every output entry is an empty sum,
  0. 'same' keeps in1's shape and 'valid' checks the shapes (both as SciPy); 'full', where
  SciPy's own paths disagree (an error or []), gives SciPy's documented empty array."""
  if mode == "full":
    return np.array([], dtype)
  return np.zeros(_output_window(s1, s2, mode)[1], dtype)


def _conj(x):
  return dnp.conj(x) if dtype_of(x).kind == "c" else x


def correlate(in1, in2, mode="full", method="auto"):
  """Differentiable `scipy.signal.correlate`: convolution with in2 reversed along every axis
  and conjugated (for complex in2, as SciPy: sum_m in1[n + m] conj(in2[m])). Needs no SciPy.

  >>> correlate(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
  array([0.5, 2. , 3.5, 3. , 0. ])
  """
  in1, in2 = dnp.asarray(in1), dnp.asarray(in2)
  s1, s2 = shape_of(in1), shape_of(in2)
  if mode == "valid" and len(s1) == len(s2) and not all(a >= b for a, b in zip(s1, s2)):
    # SciPy swaps the inputs when in2 is the larger one, and reverses and conjugates the
    # result.
    return _conj(dnp.flip(convolve(in2, _conj(dnp.flip(in1)), mode, method)))
  return convolve(in1, _conj(dnp.flip(in2) if s2 else in2), mode, method)
