"""dfdx.numpy.fft: NumPy's discrete Fourier transforms, differentiable."""
from dfdx._src.numpy.fft import *  # noqa: F401,F403
