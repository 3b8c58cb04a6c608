"""Spec lines of the `fft` primitive (see tests/op_specs.py). The table takes real inputs, so
each line is a real-to-real composite: the complex operand is complex(x, y), and a complex
result is seen through real - imag. The composites are linear (over the reals), so the
transpose test runs on them too, and checks the adjoints for the real inner product."""
import numpy as np

from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import fft as fft_ops
from tests.op_specs import OpSpec

PAIRS = [((3,), (3,)), ((2, 4), (2, 4)), ((0, 3), (0, 3)), ((2, 1, 3), (2, 1, 3))]
ND_PAIRS = [p for p in PAIRS if 0 not in p[0]]  # no transform of length 0
SINGLES = [((4,),), ((5,),), ((2, 3),), ((0, 4),), ((1,),)]


def _parts(z):
  return ew.sub(ew.real(z), ew.imag(z))


def _np_parts(z):
  return np.real(z) - np.imag(z)


def _c2c(kind, norm, nd_axes=1):
  """fft or ifft along the last `nd_axes` axes."""
  def fun(x, y):
    shape = np.shape(x)
    axes = tuple(range(len(shape) - min(nd_axes, len(shape)), len(shape)))
    return _parts(fft_ops.fft(ew.complex(x, y), kind, axes, [shape[a] for a in axes], norm))

  def ref(x, y):
    axes = tuple(range(np.ndim(x) - min(nd_axes, np.ndim(x)), np.ndim(x)))
    return _np_parts((np.fft.fftn if kind == "fft" else np.fft.ifftn)(x + 1j * y, axes=axes,
                                                                     norm=norm))
  return fun, ref


def _rfft(norm, axis=-1):
  def fun(x):
    ax = axis % np.ndim(x)
    return _parts(fft_ops.fft(x, "rfft", (ax,), (np.shape(x)[ax],), norm))
  return fun, lambda x: _np_parts(np.fft.rfft(x, axis=axis, norm=norm))


def _irfft(norm, odd):
  """irfft of m bins to n = 2 (m - 1) + odd points, along the last axis."""
  def fun(x, y):
    m = np.shape(x)[-1]
    return fft_ops.fft(ew.complex(x, y), "irfft", (np.ndim(x) - 1,), (2 * (m - 1) + odd,), norm)
  return fun, lambda x, y: np.fft.irfft(x + 1j * y, 2 * (np.shape(x)[-1] - 1) + odd, norm=norm)


IRFFT_PAIRS = [((3,), (3,)), ((2, 4), (2, 4)), ((1,), (1,)), ((0, 2), (0, 2))]
IRFFT_EVEN = [p for p in IRFFT_PAIRS if p[0][-1] > 1]  # n = 2 (m - 1) >= 1

SPECS = [
    OpSpec("fft", fft_ops.fft_p, *_c2c("fft", "backward"), PAIRS),
    OpSpec("fft[ifft]", fft_ops.fft_p, *_c2c("ifft", "backward"), PAIRS),
    OpSpec("fft[ortho,2d]", fft_ops.fft_p, *_c2c("fft", "ortho", 2), ND_PAIRS),
    OpSpec("fft[ifft,forward,3d]", fft_ops.fft_p, *_c2c("ifft", "forward", 3), ND_PAIRS),
    OpSpec("fft[rfft]", fft_ops.fft_p, *_rfft("backward"), SINGLES),
    OpSpec("fft[rfft,ortho,axis0]", fft_ops.fft_p, *_rfft("ortho", 0), SINGLES[:3]),
    OpSpec("fft[rfft,forward]", fft_ops.fft_p, *_rfft("forward"), SINGLES),
    OpSpec("fft[irfft,even]", fft_ops.fft_p, *_irfft("backward", 0), IRFFT_EVEN),
    OpSpec("fft[irfft,odd]", fft_ops.fft_p, *_irfft("backward", 1), IRFFT_PAIRS),
    OpSpec("fft[irfft,ortho]", fft_ops.fft_p, *_irfft("ortho", 0), IRFFT_EVEN),
    OpSpec("fft[irfft,forward,odd]", fft_ops.fft_p, *_irfft("forward", 1), IRFFT_PAIRS),
]
