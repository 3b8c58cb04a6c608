"""dfdx.numpy.linalg: NumPy's linear algebra, differentiable."""
from dfdx._src.numpy.linalg import *  # noqa: F401,F403
