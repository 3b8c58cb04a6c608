"""Spec lines of the sorting primitives and of the elementwise ones defined next to them
(see tests/op_specs.py). Sampled floats have no ties, so every kind of sort gives one
answer."""
import numpy as np

from dfdx._src.ops import sorting as so
from tests.op_specs import BINARY_SHAPES, UNARY_SHAPES, Int, OpSpec

AXIS_CASES = [((3,), 0), ((2, 3), 1), ((2, 3), 0), ((0, 3), 1), ((2, 3, 4), 1)]
KTH_CASES = [((4,), 0, (1,)), ((2, 5), 1, (0, 3)), ((4, 3), 0, (3,)), ((2, 5), 1, (2,))]


def along_axis(name, prim, fun, ref, **kw):
  return [OpSpec(f"{name}_axis{axis}", prim, lambda x, axis=axis: fun(x, axis),
                 lambda x, axis=axis: ref(x, axis=axis), [(shape,)], **kw)
          for shape, axis in AXIS_CASES]


def with_kth(name, prim, fun, ref):
  return [OpSpec(f"{name}_kth{''.join(map(str, kth))}_axis{axis}", prim,
                 lambda x, kth=kth, axis=axis: fun(x, kth, axis),
                 lambda x, kth=kth, axis=axis: ref(x, kth, axis=axis), [(shape,)])
          for shape, axis, kth in KTH_CASES]


def _searchsorted(side):
  return OpSpec(f"searchsorted_{side}", so.searchsorted_p,
                lambda a, v: so.searchsorted(so.sort(a, 0), v, side),
                lambda a, v: np.searchsorted(np.sort(a), v, side),
                [((5,), ()), ((5,), (3,)), ((4,), (2, 3)), ((0,), (2,))])


SPECS = (
    along_axis("sort", so.sort_p, so.sort, np.sort)
    + along_axis("sort_stable", so.sort_p, lambda x, a: so.sort(x, a, "stable"),
                 lambda x, axis: np.sort(x, axis=axis, kind="stable"))
    + along_axis("argsort", so.argsort_p, so.argsort, np.argsort)
    + with_kth("partition", so.partition_p, so.partition, np.partition)
    + with_kth("argpartition", so.argpartition_p, so.argpartition, np.argpartition)
    + [_searchsorted("left"), _searchsorted("right"),
       OpSpec("signbit", so.signbit_p, so.signbit, np.signbit, UNARY_SHAPES),
       OpSpec("spacing", so.spacing_p, so.spacing, np.spacing, UNARY_SHAPES),
       OpSpec("nextafter", so.nextafter_p, so.nextafter, np.nextafter, BINARY_SHAPES),
       OpSpec("frexp_exponent", so.frexp_exponent_p, so.frexp_exponent,
              lambda x: np.frexp(x)[1], UNARY_SHAPES, domain=(-50.0, 50.0)),
       OpSpec("fmod", so.fmod_p, so.fmod, np.fmod, BINARY_SHAPES,
              domain=[(-3.0, 3.0), (0.7, 2.0)]),
       OpSpec("fmod_negative_divisor", so.fmod_p, so.fmod, np.fmod, [((3,), (3,))],
              domain=[(-3.0, 3.0), (-2.0, -0.7)]),
       OpSpec("ldexp", so.ldexp_p, so.ldexp, np.ldexp,
              [((), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), ()), ((0, 3), (3,))],
              domain=[(-2.0, 2.0), Int(-4, 4)])]
)
