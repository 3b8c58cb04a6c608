"""Spec lines of the reduction and cumulative primitives (see tests/op_specs.py)."""
import numpy as np

from dfdx._src.ops import reduction as red
from tests.op_specs import OpSpec

REDUCE_CASES = [((), ()), ((3,), (0,)), ((2, 3), (1,)), ((2, 3), (0, 1)), ((2, 3, 4), (0, 2)),
                ((0, 3), (0,)), ((2, 3), ())]
NONEMPTY_CASES = [c for c in REDUCE_CASES if 0 not in [c[0][a] for a in c[1]]]


def reductions(name, prim, fun, np_fun, cases, **kw):
  return [OpSpec(f"{name}_axes{''.join(map(str, axes))}", prim,
                 lambda x, axes=axes: fun(x, axes),
                 lambda x, axes=axes: np_fun(x, axis=axes), [(shape,)], **kw)
          for shape, axes in cases]


def axis_ops(name, prim, fun, np_fun, shapes_axes, **kw):
  return [OpSpec(f"{name}_axis{axis}", prim, lambda x, axis=axis: fun(x, axis),
                 lambda x, axis=axis: np_fun(x, axis), [(shape,)], **kw)
          for shape, axis in shapes_axes]


def _rev_cumsum(x, axis):
  return np.flip(np.cumsum(np.flip(x, axis), axis), axis)


def _rev_cumprod(x, axis):
  return np.flip(np.cumprod(np.flip(x, axis), axis), axis)


CUMULATIVE = [((3,), 0), ((2, 3), 1), ((2, 3), 0), ((0, 3), 1)]

SPECS = (
    reductions("reduce_sum", red.reduce_sum_p, red.reduce_sum, np.sum, REDUCE_CASES)
    + reductions("reduce_max", red.reduce_max_p, red.reduce_max, np.max, NONEMPTY_CASES)
    + reductions("reduce_min", red.reduce_min_p, red.reduce_min, np.min, NONEMPTY_CASES)
    + reductions("reduce_prod", red.reduce_prod_p, red.reduce_prod, np.prod, REDUCE_CASES)
    + [OpSpec("reduce_prod_with_zero", red.reduce_prod_p, lambda x: red.reduce_prod(x, (0,)),
              lambda x: np.prod(x, axis=0), [((3, 2),)],
              domain=(0.0, 0.0) if False else (-2.0, 2.0))]
    + axis_ops("argmax", red.argmax_p, lambda x, a: red.argmax_p.bind(x, axis=a), np.argmax,
               [((3,), 0), ((2, 3), 1), ((2, 3), 0)])
    + axis_ops("argmin", red.argmin_p, lambda x, a: red.argmin_p.bind(x, axis=a), np.argmin,
               [((3,), 0), ((2, 3), 1), ((2, 3), 0)])
    + axis_ops("cumsum", red.cumsum_p, red.cumsum, np.cumsum, CUMULATIVE)
    + axis_ops("cumsum_reverse", red.cumsum_p, lambda x, a: red.cumsum(x, a, reverse=True),
               _rev_cumsum, CUMULATIVE)
    + axis_ops("cumprod", red.cumprod_p, red.cumprod, np.cumprod, CUMULATIVE)
    + axis_ops("cumprod_reverse", red.cumprod_p, lambda x, a: red.cumprod(x, a, reverse=True),
               _rev_cumprod, CUMULATIVE)
)
