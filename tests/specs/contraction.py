"""Spec lines of the contraction primitives (see tests/op_specs.py)."""
import string

import numpy as np

from dfdx._src.ops import contraction as con
from tests.op_specs import Int, OpSpec


def _einsum_ref(x, y, dimension_numbers):
  """NumPy's einsum for a dot_general: an independent reference for the impl."""
  (xc, yc), (xb, yb) = [[tuple(a % max(np.ndim(v), 1) for a in axes)
                         for axes, v in zip(pair, (x, y))] for pair in dimension_numbers]
  letters = iter(string.ascii_letters)
  x_labels = [next(letters) for _ in range(np.ndim(x))]
  y_labels = [next(letters) for _ in range(np.ndim(y))]
  for i, j in zip(xc + xb, yc + yb):
    y_labels[j] = x_labels[i]
  x_free = [x_labels[i] for i in range(np.ndim(x)) if i not in xc + xb]
  y_free = [y_labels[i] for i in range(np.ndim(y)) if i not in yc + yb]
  out = "".join([x_labels[i] for i in xb] + x_free + y_free)
  result = np.einsum(f"{''.join(x_labels)},{''.join(y_labels)}->{out}", x, y)
  return np.asarray(result).astype(np.result_type(x, y))


def dot_general(name, x_shape, y_shape, dimension_numbers, **kw):
  return OpSpec(f"dot_general_{name}", con.dot_general_p,
                lambda x, y: con.dot_general(x, y, dimension_numbers),
                lambda x, y: _einsum_ref(x, y, dimension_numbers), [(x_shape, y_shape)], **kw)


def zdot_general(name, x_shape, y_shape, dimension_numbers, **kw):
  """The zero-absorbing contraction: on finite values, the product itself."""
  return OpSpec(f"zdot_general_{name}", con.zdot_general_p,
                lambda x, y: con.zdot_general_p.bind(x, y,
                                                     dimension_numbers=dimension_numbers),
                lambda x, y: _einsum_ref(x, y, dimension_numbers), [(x_shape, y_shape)], **kw)


NONE = ((), ())
SPECS = [
    dot_general("vector", (3,), (3,), (((0,), (0,)), NONE)),
    dot_general("matvec", (2, 3), (3,), (((1,), (0,)), NONE)),
    dot_general("vecmat", (3,), (3, 4), (((0,), (0,)), NONE)),
    dot_general("matmul", (2, 3), (3, 4), (((1,), (0,)), NONE)),
    dot_general("contract_first", (3, 2), (3, 4), (((0,), (0,)), NONE)),
    dot_general("negative_axes", (2, 3), (4, 3), (((-1,), (-1,)), NONE)),
    dot_general("outer", (2,), (3,), (NONE, NONE)),
    dot_general("scalar", (), (2, 3), (NONE, NONE)),
    dot_general("two_contract", (2, 3, 4), (4, 3, 5), (((1, 2), (1, 0)), NONE)),
    dot_general("batch_matmul", (4, 2, 3), (4, 3, 2), (((2,), (1,)), ((0,), (0,)))),
    dot_general("batch_middle", (2, 4, 3), (3, 4), (((2,), (0,)), ((1,), (1,)))),
    dot_general("batch_only", (3, 2), (3, 2), (NONE, ((0, 1), (0, 1)))),
    dot_general("two_batch_dims", (2, 3, 4, 2), (3, 2, 2, 5),
                (((3,), (2,)), ((0, 1), (1, 0)))),
    dot_general("empty_free", (0, 3), (3, 4), (((1,), (0,)), NONE)),
    dot_general("empty_contract", (2, 0), (0, 3), (((1,), (0,)), NONE)),
    dot_general("empty_batch", (0, 2, 3), (0, 3, 2), (((2,), (1,)), ((0,), (0,)))),
    dot_general("int", (2, 3), (3, 4), (((1,), (0,)), NONE), domain=[Int(-3, 3), Int(-3, 3)]),
    dot_general("int_float", (2, 3), (3, 4), (((1,), (0,)), NONE),
                domain=[Int(-3, 3), (-2.0, 2.0)]),
    dot_general("linear_lhs", (4, 2, 3), (4, 3, 2), (((2,), (1,)), ((0,), (0,))),
                diff_argnums=(0,), linear=True),
    dot_general("linear_rhs", (2, 3, 4), (4, 3, 5), (((1, 2), (1, 0)), NONE),
                diff_argnums=(1,), linear=True),
    zdot_general("matmul", (2, 3), (3, 4), (((1,), (0,)), NONE)),
    zdot_general("batch_matmul", (4, 2, 3), (4, 3, 2), (((2,), (1,)), ((0,), (0,)))),
    zdot_general("vector", (3,), (3,), (((0,), (0,)), NONE)),
]
