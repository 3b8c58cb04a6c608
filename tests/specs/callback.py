"""Spec lines of pure_callback (dfdx/_src/callback.py): NumPy code called back, one call per
example and one per batch. It has no derivative (grad=False; tests/test_callback.py)."""
import numpy as np

import dfdx
from dfdx._src.callback import pure_callback_p
from tests.op_specs import OpSpec


def _hypot_then_sin(x, y):
  return np.sin(np.hypot(x, y))


def _called_back(vectorized):
  def f(x, y):
    shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    return dfdx.pure_callback(_hypot_then_sin, dfdx.ShapeDtypeStruct(shape, x.dtype), x, y,
                              vectorized=vectorized)
  return f


SPECS = [
    OpSpec("pure_callback", pure_callback_p, _called_back(False), _hypot_then_sin,
           [((3,), (3,)), ((2, 3), (3,)), ((), ())], grad=False),
    # (a vectorized callback gets a leading batch axis on every argument: same ranks here)
    OpSpec("pure_callback_vectorized", pure_callback_p, _called_back(True), _hypot_then_sin,
           [((3,), (3,)), ((2, 3), (2, 3))], grad=False),
]
