"""dfdx.numpy: NumPy's API, differentiable.

Same names, signatures and semantics as NumPy (broadcasting, dtype promotion, axis and
keepdims, empty arrays). With no traced argument a function calls NumPy directly and returns
what NumPy returns; with traced arguments (inside grad, jvp, vmap, ...) it builds the result
from dfdx's primitives, so that it can be differentiated and batched.

>>> import dfdx, dfdx.numpy as dnp
>>> float(dfdx.grad(lambda x: dnp.sum(dnp.sin(x) * x))(0.0))
0.0
"""
import numpy as _np

from dfdx._src.numpy.creation import *  # noqa: F401,F403
from dfdx._src.numpy.ufuncs import *  # noqa: F401,F403
from dfdx._src.numpy.reductions import *  # noqa: F401,F403
from dfdx._src.numpy.manipulation import *  # noqa: F401,F403
from dfdx._src.numpy.indexing import *  # noqa: F401,F403
from dfdx._src.numpy.contractions import *  # noqa: F401,F403
from dfdx._src.numpy.extras import *  # noqa: F401,F403
from dfdx._src.numpy import array_methods as _array_methods
from dfdx.numpy import linalg  # noqa: F401
from dfdx.numpy import fft  # noqa: F401

# Constants, dtypes and functions of array metadata, as NumPy has them.
from numpy import (  # noqa: F401
    pi, e, inf, nan, newaxis, euler_gamma,
    dtype, finfo, iinfo, ndarray, generic, number, integer, floating, complexfloating,
    bool_, int8, int16, int32, int64, uint8, uint16, uint32, uint64, intp,
    float16, float32, float64, complex64, complex128,
    shape, ndim, size, result_type, promote_types, can_cast, issubdtype, isscalar,
    broadcast_shapes, errstate,
)

_array_methods.install()


def __getattr__(name):
  if name == "random":  # NumPy's own, imported on first use as NumPy does (it is slow to import)
    import numpy.random
    return numpy.random
  if hasattr(_np, name):
    raise AttributeError(
        f"dfdx.numpy has no '{name}' yet (numpy.{name} exists but has no differentiable version "
        f"in dfdx). Use numpy.{name} on values that are not traced, or file an issue.")
  raise AttributeError(f"module 'dfdx.numpy' has no attribute '{name}'")
