"""dfdx.scipy.signal: n-d convolution and correlation (modes full, same, valid), bilinear and
differentiable in both inputs, computed with NumPy alone.

>>> import dfdx.scipy.signal as dss
>>> dss.convolve(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
array([1., 3., 2.])
"""
from dfdx._src.scipy_signal import convolve as convolve, correlate as correlate  # noqa: F401

__all__ = ["convolve", "correlate"]
