"""Spec lines of the higher-order primitives (see tests/op_specs.py)."""
import numpy as np

import dfdx
import dfdx.numpy as dnp
from dfdx._src.custom import checkpoint_call_p, custom_jvp_call_p, custom_vjp_call_p
from dfdx._src.jit import jit_call_p
from tests.op_specs import BINARY_SHAPES, OpSpec

_jitted = dfdx.jit(lambda x, y: dnp.sin(x) * y + x ** 2)


@dfdx.custom_jvp
def _custom_jvp_fun(x, y):
  return dnp.sin(x) * y


@_custom_jvp_fun.defjvp
def _(primals, tangents):
  (x, y), (x_dot, y_dot) = primals, tangents
  return _custom_jvp_fun(x, y), dnp.cos(x) * y * x_dot + dnp.sin(x) * y_dot


@dfdx.custom_vjp
def _custom_vjp_fun(x, y):
  return dnp.sin(x) * y


_custom_vjp_fun.defvjp(lambda x, y: (dnp.sin(x) * y, (x, y)),
                       lambda r, ct: (dnp.cos(r[0]) * r[1] * ct, dnp.sin(r[0]) * ct))

_checkpointed = dfdx.checkpoint(lambda x, y: dnp.sin(x) * y + x ** 2)


SPECS = [
    OpSpec("jit_call", jit_call_p, _jitted, lambda x, y: np.sin(x) * y + x ** 2, BINARY_SHAPES),
    OpSpec("custom_jvp_call", custom_jvp_call_p, _custom_jvp_fun, lambda x, y: np.sin(x) * y,
           BINARY_SHAPES),
    OpSpec("custom_vjp_call", custom_vjp_call_p, _custom_vjp_fun, lambda x, y: np.sin(x) * y,
           [((), ()), ((3,), (3,)), ((2, 3), (2, 3))]),
    OpSpec("checkpoint_call", checkpoint_call_p, _checkpointed,
           lambda x, y: np.sin(x) * y + x ** 2, BINARY_SHAPES),
]
