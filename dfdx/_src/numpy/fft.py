"""`dfdx.numpy.fft`: numpy.fft made differentiable, with NumPy's signatures and semantics:
`n` and `s` crop or zero-pad, axes may be negative or repeated, `norm` is None, "backward",
"ortho" or "forward", real input is promoted to complex, and the result dtypes are NumPy's
(complex64 for float32 and complex64 input, complex128 for float64 and integers).

With no traced operand each function calls NumPy itself. Traced calls crop and pad with the
shape primitives and apply the `fft` primitive (dfdx._src.ops.fft) in NumPy's order of 1-D
transforms, so that results agree with NumPy's; this module holds no derivative rules. Every
transform is linear, so its derivative is the same transform of the tangent, and reverse
mode uses the adjoints documented in the primitive's module. Gradients of real-valued
functions of complex inputs are df/dx + i df/dy (see dfdx.grad).

>>> import dfdx, dfdx.numpy as dnp
>>> x = np.array([1.0, 2.0, 0.0, -1.0])
>>> dfdx.grad(lambda x: dnp.sum(dnp.abs(dnp.fft.fft(x)) ** 2))(x)  # Parseval: 2 n x
array([ 8., 16.,  0., -8.])
"""
from __future__ import annotations

import operator
import warnings

import numpy as np
from numpy.fft import fftfreq, rfftfreq  # noqa: F401  (no derivative: functions of n, d)

from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import fft as fft_ops
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.contractions import _operand, _traced
from dfdx._src.numpy.manipulation import roll
from dfdx._src.numpy.util import dtype as dtype_of, normalize_axis, reject_out, \
    shape as shape_of

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "hfft", "ihfft", "fftshift", "ifftshift", "fftfreq", "rfftfreq"]


# ---- helpers ------------------------------------------------------------------------------
def _norm(norm):
  if norm is None:
    return "backward"
  if norm not in fft_ops.NORMS:
    raise ValueError(f'Invalid norm value {norm}; should be "backward", "ortho" or "forward".')
  return norm


def _swap(norm):
  return {"backward": "forward", "ortho": "ortho", "forward": "backward"}[_norm(norm)]


def _length(n):
  n = operator.index(n)
  if n < 1:
    raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
  return n


_dtype_cache: dict = {}


def _numpy_dtype(kind, dtype):
  """The dtype numpy.fft's `kind` ("fft", "rfft" or "irfft") returns for input of `dtype`
  (found once by running it)."""
  key = (kind, dtype)
  if key not in _dtype_cache:
    try:
      _dtype_cache[key] = getattr(np.fft, kind)(np.zeros(2, dtype)).dtype
    except TypeError:
      if kind == "rfft" and dtype.kind == "c":
        raise TypeError(f"dfdx.numpy.fft.rfft: the input must be real, got {dtype} (numpy.fft's "
                        "real transforms have no complex loop). Use fft for complex input, or "
                        "take the real part first.") from None
      raise
  return _dtype_cache[key]


def _fit(a, axis, n):
  """`a` cropped or zero-padded to length n along `axis` (what numpy.fft does with n)."""
  shape = shape_of(a)
  size = shape[axis]
  if size > n:
    return shape_ops.slice_in_dim(a, 0, n, axis)
  if size < n:
    return shape_ops.pad(a, [(0, n - size, 0) if i == axis else (0, 0, 0)
                             for i in range(len(shape))])
  return a


def _c2c(a, lengths, axes, kind, norm):
  """numpy.fft.fftn or ifftn (`kind`) along normalized `axes`: 1-D transforms along
  axes[-1], ..., axes[0], one primitive for all of them when the axes are distinct."""
  if not axes:
    return a
  a = shape_ops.convert_element_type(a, _numpy_dtype("fft", dtype_of(a)))
  if len(set(axes)) < len(axes):
    for axis, n in reversed(list(zip(axes, lengths))):
      a = fft_ops.fft(_fit(a, axis, n), kind, (axis,), (n,), norm)
    return a
  for axis, n in zip(axes, lengths):
    a = _fit(a, axis, n)
  return fft_ops.fft(a, kind, axes, lengths, norm)


def _r2c(a, lengths, axes, norm):
  """numpy.fft.rfftn: rfft along axes[-1], then fft along the others."""
  real_dtype = np.empty(0, _numpy_dtype("rfft", dtype_of(a))).real.dtype
  a = shape_ops.convert_element_type(a, real_dtype)
  a = fft_ops.fft(_fit(a, axes[-1], lengths[-1]), "rfft", axes[-1:], lengths[-1:], norm)
  return _c2c(a, lengths[:-1], axes[:-1], "fft", norm)


def _c2r(a, lengths, axes, norm):
  """numpy.fft.irfftn: ifft along axes[:-1] (last first), then irfft along axes[-1]."""
  a = _c2c(a, lengths[:-1], axes[:-1], "ifft", norm)
  target = _numpy_dtype("irfft", dtype_of(a))
  a = shape_ops.convert_element_type(a, np.result_type(target, np.complex64))
  n = lengths[-1]
  out = fft_ops.fft(_fit(a, axes[-1], n // 2 + 1), "irfft", axes[-1:], (n,), norm)
  return shape_ops.convert_element_type(out, target)


def _one_axis(a, n, axis, default):
  """(axis, n) for a 1-D transform: NumPy's AxisError, and its ValueError for n < 1."""
  axis = normalize_axis(axis, len(shape_of(a)))
  return axis, _length(default(shape_of(a)[axis]) if n is None else n)


def _cook(a, s, axes, invreal=False):
  """(lengths, axes) of an n-dimensional transform, as numpy.fft's `_cook_nd_args` makes
  them (with its errors and deprecation warnings), normalized."""
  shape = shape_of(a)
  shapeless = s is None
  if shapeless:
    s = list(shape) if axes is None else [shape[ax] for ax in axes]
  s = list(s)
  if axes is None:
    if not shapeless:
      warnings.warn("`axes` should not be `None` if `s` is not `None` (Deprecated in NumPy "
                    "2.0). To retain current behaviour, pass a sequence [0, ..., k-1] to "
                    "`axes` for an array of dimension k.", DeprecationWarning, stacklevel=3)
    axes = list(range(-len(s), 0))
  axes = list(axes)
  if len(s) != len(axes):
    raise ValueError("Shape and axes have different lengths.")
  axes = [normalize_axis(ax, len(shape)) for ax in axes]
  if invreal and shapeless:
    s[-1] = (shape[axes[-1]] - 1) * 2
  if None in s:
    warnings.warn("Passing an array containing `None` values to `s` is deprecated in NumPy "
                  "2.0. To use the default behaviour of the corresponding 1-D transform, pass "
                  "the value matching the default for its `n` parameter.", DeprecationWarning,
                  stacklevel=3)
  lengths = []
  for i, (n, ax) in enumerate(zip(s, axes)):
    if n is None:
      n = (shape[ax] - 1) * 2 if invreal and i == len(s) - 1 else shape[ax]
    lengths.append(_length(shape[ax] if n == -1 else n))
  return lengths, axes


# ---- 1-D transforms ------------------------------------------------------------------------
def fft(a, n=None, axis=-1, norm=None, out=None):
  """Differentiable `numpy.fft.fft`: the 1-D discrete Fourier transform."""
  if not _traced(a):
    return np.fft.fft(a, n, axis, norm, out)
  reject_out("fft.fft", out)
  a = _operand(a)
  axis, n = _one_axis(a, n, axis, lambda m: m)
  return _c2c(a, (n,), (axis,), "fft", _norm(norm))


def ifft(a, n=None, axis=-1, norm=None, out=None):
  """Differentiable `numpy.fft.ifft`: the 1-D inverse discrete Fourier transform."""
  if not _traced(a):
    return np.fft.ifft(a, n, axis, norm, out)
  reject_out("fft.ifft", out)
  a = _operand(a)
  axis, n = _one_axis(a, n, axis, lambda m: m)
  return _c2c(a, (n,), (axis,), "ifft", _norm(norm))


def rfft(a, n=None, axis=-1, norm=None, out=None):
  """Differentiable `numpy.fft.rfft`: the n // 2 + 1 non-negative frequency terms of the DFT
  of real input."""
  if not _traced(a):
    return np.fft.rfft(a, n, axis, norm, out)
  reject_out("fft.rfft", out)
  a = _operand(a)
  axis, n = _one_axis(a, n, axis, lambda m: m)
  return _r2c(a, (n,), (axis,), _norm(norm))


def irfft(a, n=None, axis=-1, norm=None, out=None):
  """Differentiable `numpy.fft.irfft`: the real inverse of rfft, of length n (default
  2 (m - 1) for m input bins). As in NumPy the imaginary parts of the zero-frequency bin (and
  of the Nyquist bin, n even) are ignored: the derivative with respect to them is zero."""
  if not _traced(a):
    return np.fft.irfft(a, n, axis, norm, out)
  reject_out("fft.irfft", out)
  a = _operand(a)
  axis, n = _one_axis(a, n, axis, lambda m: (m - 1) * 2)
  return _c2r(a, (n,), (axis,), _norm(norm))


def hfft(a, n=None, axis=-1, norm=None, out=None):
  """Differentiable `numpy.fft.hfft`: the real spectrum of a Hermitian-symmetric signal given
  by its first half (irfft of its conjugate, with the swapped norm)."""
  if not _traced(a):
    return np.fft.hfft(a, n, axis, norm, out)
  reject_out("fft.hfft", out)
  a = _operand(a)
  axis, n = _one_axis(a, n, axis, lambda m: (m - 1) * 2)
  return _c2r(ew.conj(a), (n,), (axis,), _swap(norm))


def ihfft(a, n=None, axis=-1, norm=None, out=None):
  """Differentiable `numpy.fft.ihfft`: the inverse of hfft (conjugate of rfft, with the
  swapped norm)."""
  if not _traced(a):
    return np.fft.ihfft(a, n, axis, norm, out)
  reject_out("fft.ihfft", out)
  a = _operand(a)
  axis, n = _one_axis(a, n, axis, lambda m: m)
  return ew.conj(_r2c(a, (n,), (axis,), _swap(norm)))


# ---- n-dimensional transforms --------------------------------------------------------------
def fftn(a, s=None, axes=None, norm=None, out=None):
  """Differentiable `numpy.fft.fftn`: the DFT along `axes` (default: all, or the last len(s))."""
  if not _traced(a):
    return np.fft.fftn(a, s, axes, norm, out)
  reject_out("fft.fftn", out)
  a = _operand(a)
  lengths, axes = _cook(a, s, axes)
  return _c2c(a, lengths, axes, "fft", _norm(norm))


def ifftn(a, s=None, axes=None, norm=None, out=None):
  """Differentiable `numpy.fft.ifftn`: the inverse DFT along `axes`."""
  if not _traced(a):
    return np.fft.ifftn(a, s, axes, norm, out)
  reject_out("fft.ifftn", out)
  a = _operand(a)
  lengths, axes = _cook(a, s, axes)
  return _c2c(a, lengths, axes, "ifft", _norm(norm))


def fft2(a, s=None, axes=(-2, -1), norm=None, out=None):
  """Differentiable `numpy.fft.fft2`: fftn along the last two axes."""
  if not _traced(a):
    return np.fft.fft2(a, s, axes, norm, out)
  return fftn(a, s, axes, norm, out)


def ifft2(a, s=None, axes=(-2, -1), norm=None, out=None):
  """Differentiable `numpy.fft.ifft2`: ifftn along the last two axes."""
  if not _traced(a):
    return np.fft.ifft2(a, s, axes, norm, out)
  return ifftn(a, s, axes, norm, out)


def rfftn(a, s=None, axes=None, norm=None, out=None):
  """Differentiable `numpy.fft.rfftn`: rfft along the last of `axes`, fft along the others."""
  if not _traced(a):
    return np.fft.rfftn(a, s, axes, norm, out)
  reject_out("fft.rfftn", out)
  a = _operand(a)
  lengths, axes = _cook(a, s, axes)
  return _r2c(a, lengths, axes, _norm(norm))


def irfftn(a, s=None, axes=None, norm=None, out=None):
  """Differentiable `numpy.fft.irfftn`: ifft along all but the last of `axes`, then irfft
  along the last (whose length defaults to 2 (m - 1))."""
  if not _traced(a):
    return np.fft.irfftn(a, s, axes, norm, out)
  reject_out("fft.irfftn", out)
  a = _operand(a)
  lengths, axes = _cook(a, s, axes, invreal=True)
  return _c2r(a, lengths, axes, _norm(norm))


def rfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
  """Differentiable `numpy.fft.rfft2`: rfftn along the last two axes."""
  if not _traced(a):
    return np.fft.rfft2(a, s, axes, norm, out)
  return rfftn(a, s, axes, norm, out)


def irfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
  """Differentiable `numpy.fft.irfft2`: irfftn along the last two axes."""
  if not _traced(a):
    return np.fft.irfft2(a, s, axes, norm, out)
  return irfftn(a, s, axes, norm, out)


# ---- shifts -------------------------------------------------------------------------------
def _shift(x, axes, sign):
  shape = shape_of(x)
  if axes is None:
    axes = tuple(range(len(shape)))
    shift = [sign * (dim // 2) for dim in shape]
  elif isinstance(axes, (int, np.integer)):
    shift = sign * (shape[axes] // 2)
  else:
    shift = [sign * (shape[ax] // 2) for ax in axes]
  return roll(x, shift, axes)


def fftshift(x, axes=None):
  """Differentiable `numpy.fft.fftshift`: the zero frequency moved to the centre (a roll)."""
  if not _traced(x):
    return np.fft.fftshift(x, axes)
  return _shift(_operand(x), axes, 1)


def ifftshift(x, axes=None):
  """Differentiable `numpy.fft.ifftshift`: the inverse of fftshift (a roll)."""
  if not _traced(x):
    return np.fft.ifftshift(x, axes)
  return _shift(_operand(x), axes, -1)
