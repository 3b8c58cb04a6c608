"""The discrete Fourier transform primitive `fft`: NumPy's pocketfft transforms, all linear.

One primitive covers the four kinds, selected by the static `fft_type`:
  * "fft", "ifft": complex to complex along any number of `axes` (numpy.fft.fftn / ifftn);
  * "rfft": real to the half spectrum (n // 2 + 1 bins) along one axis (numpy.fft.rfft);
  * "irfft": half spectrum to real along one axis (numpy.fft.irfft; the imaginary parts of
    the zero-frequency bin, and of the Nyquist bin for even n, are ignored, as NumPy does).
`lengths` are the transform lengths (the output length of "irfft"); the operand already has
them (n, or n // 2 + 1 bins for "irfft"): `dfdx.numpy.fft` crops and zero-pads before binding,
and composes the n-dimensional real transforms from these as NumPy does (rfftn = fft over the
other axes of rfft along the last one; irfftn the reverse). `norm` is "backward", "ortho" or
"forward".

Transposes are adjoints for the real inner product <a, b> = Re(sum(conj(a) b)) (see
ops/elementwise.py). With D the unnormalized DFT, fft = D / c and ifft = D^H / c' for the
scales c, c' of each norm; D^H is the unscaled inverse, so the adjoint of an fft is the ifft
of the swapped norm ("backward" <-> "forward", "ortho" stays) and vice versa. For the real
transforms:
  * rfft = P D (P keeps the first n // 2 + 1 bins) on real input: adjoint Re(D^H P^T ct),
    the real part of the swapped-norm ifft of ct zero-padded to n;
  * irfft x = Re(D^H[:, :m] W X) / n, with W = diag(1, 2, ..., 2, [1 if n even]) the
    multiplicity of each bin in the full spectrum: adjoint W rfft(ct) with the swapped norm
    (its zero-frequency and Nyquist bins are real: no derivative reaches the ignored parts).
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core
from dfdx._src.batching import logical_axis
from dfdx._src.core import ShapedArray
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops

FFT_TYPES = ("fft", "ifft", "rfft", "irfft")
NORMS = ("backward", "ortho", "forward")
_NUMPY = {"fft": np.fft.fftn, "ifft": np.fft.ifftn, "rfft": np.fft.rfftn,
          "irfft": np.fft.irfftn}
_SWAP_NORM = {"backward": "forward", "ortho": "ortho", "forward": "backward"}

fft_p = core.primitive("fft")


def fft(x, fft_type, axes, lengths, norm="backward"):
  """The `fft_type` transform of `x` along `axes` (non-negative), of lengths `lengths`; for
  "rfft" and "irfft" exactly one axis."""
  return fft_p.bind(x, fft_type=fft_type, axes=tuple(int(a) for a in axes),
                    lengths=tuple(int(n) for n in lengths), norm=norm)


def _fft_impl(x, *, fft_type, axes, lengths, norm):
  return _NUMPY[fft_type](x, s=lengths, axes=axes, norm=norm)


def _fft_abstract_eval(x, *, fft_type, axes, lengths, norm):
  if fft_type not in FFT_TYPES or norm not in NORMS or len(axes) != len(lengths) or (
      fft_type in ("rfft", "irfft") and len(axes) != 1):
    raise ValueError(f"fft: fft_type {fft_type!r} must be one of {FFT_TYPES}, norm {norm!r} "
                     f"one of {NORMS}, and axes {axes} and lengths {lengths} of equal length "
                     "(one axis for rfft and irfft)")
  complex_in = x.dtype.kind == "c"
  if complex_in != (fft_type != "rfft") or x.dtype.kind not in "fc":
    raise TypeError(f"fft: {fft_type} takes a {'real' if fft_type == 'rfft' else 'complex'} "
                    f"floating operand, got {x.dtype} (dfdx.numpy.fft converts its input)")
  shape = list(x.shape)
  for axis, n in zip(axes, lengths):
    want = n // 2 + 1 if fft_type == "irfft" else n
    if not 0 <= axis < x.ndim or n < 1 or shape[axis] != want:
      raise ValueError(f"fft: {fft_type} of length {n} along axis {axis} needs an operand with "
                       f"{want} entries there, got shape {x.shape}")
    shape[axis] = n // 2 + 1 if fft_type == "rfft" else n
  if fft_type == "rfft":
    dtype = np.result_type(x.dtype, np.complex64)
  elif fft_type == "irfft":
    dtype = np.empty(0, x.dtype).real.dtype
  else:
    dtype = x.dtype
  return ShapedArray(tuple(shape), dtype)


def _fft_transpose(ct, x, *, fft_type, axes, lengths, norm):
  swapped = _SWAP_NORM[norm]
  if fft_type in ("fft", "ifft"):
    inverse = "ifft" if fft_type == "fft" else "fft"
    return [fft(ct, inverse, axes, lengths, swapped)]
  (axis,), (n,) = axes, lengths
  nd = len(core.shape_of(ct))
  if fft_type == "rfft":  # Re(D^H P^T ct)
    m = core.shape_of(ct)[axis]
    padded = shape_ops.pad(ct, [(0, n - m, 0) if i == axis else (0, 0, 0) for i in range(nd)])
    return [ew.real(fft(padded, "ifft", axes, lengths, swapped))]
  # irfft: W rfft(ct), W the multiplicity of each bin in the full spectrum
  m = n // 2 + 1
  w = np.full(m, 2, core.get_aval(ct).dtype)
  w[0] = 1
  if n % 2 == 0:
    w[-1] = 1
  return [ew.mul(fft(ct, "rfft", axes, lengths, swapped),
                 w.reshape((m,) + (1,) * (nd - axis - 1)))]


def _fft_batch(axis_size, vals, dims, *, fft_type, axes, lengths, norm):
  (x,), (d,) = vals, dims
  return fft(x, fft_type, [logical_axis(a, d) for a in axes], lengths, norm), d


fft_p.def_impl(_fft_impl)
fft_p.def_abstract_eval(_fft_abstract_eval)
ad.deflinear(fft_p, _fft_transpose)
batching.primitive_batchers[fft_p] = _fft_batch
