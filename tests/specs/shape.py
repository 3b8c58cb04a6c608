"""Spec lines of the shape primitives (see tests/op_specs.py)."""
import numpy as np

from dfdx._src.ops import shape as sh
from tests.op_specs import Int, OpSpec


def one(name, prim, fun, ref, shape, **kw):
  return OpSpec(name, prim, fun, ref, [(shape,)], **kw)


def _np_pad(x, config):
  out = np.zeros(tuple(lo + hi + n + max(n - 1, 0) * i for n, (lo, hi, i) in zip(x.shape, config)),
                 x.dtype)
  out[tuple(slice(lo, lo + (n + max(n - 1, 0) * i), i + 1)
            for n, (lo, hi, i) in zip(x.shape, config))] = x
  return out


SPECS = [
    one("broadcast_to_scalar", sh.broadcast_to_p, lambda x: sh.broadcast_to(x, (2, 3)),
        lambda x: np.broadcast_to(x, (2, 3)), ()),
    one("broadcast_to_leading", sh.broadcast_to_p, lambda x: sh.broadcast_to(x, (2, 3)),
        lambda x: np.broadcast_to(x, (2, 3)), (3,)),
    one("broadcast_to_unit", sh.broadcast_to_p, lambda x: sh.broadcast_to(x, (4, 2, 3)),
        lambda x: np.broadcast_to(x, (4, 2, 3)), (2, 1)),
    one("broadcast_to_empty", sh.broadcast_to_p, lambda x: sh.broadcast_to(x, (0, 3)),
        lambda x: np.broadcast_to(x, (0, 3)), (3,)),
    one("reshape", sh.reshape_p, lambda x: sh.reshape(x, (3, 2)),
        lambda x: np.reshape(x, (3, 2)), (2, 3)),
    one("reshape_to_scalar", sh.reshape_p, lambda x: sh.reshape(x, ()),
        lambda x: np.reshape(x, ()), (1, 1)),
    one("reshape_empty", sh.reshape_p, lambda x: sh.reshape(x, (3, 0)),
        lambda x: np.reshape(x, (3, 0)), (0, 3)),
    one("transpose", sh.transpose_p, lambda x: sh.transpose(x, (1, 0)), np.transpose, (2, 3)),
    one("transpose_3d", sh.transpose_p, lambda x: sh.transpose(x, (2, 0, 1)),
        lambda x: np.transpose(x, (2, 0, 1)), (2, 3, 4)),
    OpSpec("concatenate", sh.concatenate_p, lambda x, y: sh.concatenate([x, y], 0),
           lambda x, y: np.concatenate([x, y], 0),
           [((2,), (3,)), ((2, 3), (1, 3)), ((0, 3), (2, 3))]),
    OpSpec("concatenate_axis1_three", sh.concatenate_p,
           lambda x, y, z: sh.concatenate([x, y, z], 1),
           lambda x, y, z: np.concatenate([x, y, z], 1), [((2, 1), (2, 3), (2, 2))]),
    one("pad", sh.pad_p, lambda x: sh.pad(x, ((1, 2, 0), (0, 1, 0))),
        lambda x: _np_pad(x, ((1, 2, 0), (0, 1, 0))), (2, 3)),
    one("pad_interior", sh.pad_p, lambda x: sh.pad(x, ((0, 0, 2), (1, 0, 1))),
        lambda x: _np_pad(x, ((0, 0, 2), (1, 0, 1))), (2, 3)),
    one("pad_empty", sh.pad_p, lambda x: sh.pad(x, ((1, 1, 1), (0, 0, 0))),
        lambda x: _np_pad(x, ((1, 1, 1), (0, 0, 0))), (0, 3)),
    one("slice", sh.slice_p, lambda x: sh.slice_array(x, (1, 0), (3, 2)),
        lambda x: x[1:3, 0:2], (4, 3)),
    one("slice_strided", sh.slice_p, lambda x: sh.slice_array(x, (0, 1), (5, 3), (2, 1)),
        lambda x: x[0:5:2, 1:3], (5, 3)),
    one("slice_to_empty", sh.slice_p, lambda x: sh.slice_array(x, (2,), (2,)),
        lambda x: x[2:2], (4,)),
    one("rev", sh.rev_p, lambda x: sh.rev(x, (0,)), lambda x: np.flip(x, 0), (3,)),
    one("rev_2d", sh.rev_p, lambda x: sh.rev(x, (0, 1)), lambda x: np.flip(x, (0, 1)), (2, 3)),
    one("convert_to_float32", sh.convert_element_type_p,
        lambda x: sh.convert_element_type(x, np.float32), lambda x: x.astype(np.float32),
        (2, 3), eps=1e-2, atol=1e-4, rtol=1e-4, transpose_rtol=1e-6),
    one("convert_to_int", sh.convert_element_type_p,
        lambda x: sh.convert_element_type(x, np.int64), lambda x: x.astype(np.int64), (2, 3),
        domain=(0.1, 0.9), linear=False),
    one("convert_int_to_float", sh.convert_element_type_p,
        lambda x: sh.convert_element_type(x, np.float64), lambda x: x.astype(np.float64), (3,),
        domain=Int(-3, 3), linear=False),
]
