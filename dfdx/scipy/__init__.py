"""dfdx.scipy: differentiable versions of SciPy functions, written with `dfdx.numpy`.

SciPy itself is not needed: `import dfdx.scipy.special` works with NumPy alone.
"""
from dfdx.scipy import special  # noqa: F401
