"""Spec lines of the higher-order primitives (see tests/op_specs.py)."""
import numpy as np

import dfdx
import dfdx.numpy as dnp
from dfdx._src.jit import jit_call_p
from tests.op_specs import BINARY_SHAPES, OpSpec

_jitted = dfdx.jit(lambda x, y: dnp.sin(x) * y + x ** 2)

SPECS = [
    OpSpec("jit_call", jit_call_p, _jitted, lambda x, y: np.sin(x) * y + x ** 2, BINARY_SHAPES),
]
