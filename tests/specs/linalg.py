"""Spec lines of the linalg primitives (see tests/op_specs.py). Matrices are shifted by 4 I
so that they are well conditioned (entries are uniform in (-1, 1))."""
import numpy as np

from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import linalg as la
from tests.op_specs import OpSpec


def _shifted(a):
  return a + 4 * np.eye(np.shape(a)[-1]) if isinstance(a, np.ndarray) else \
      ew.add(a, 4 * np.eye(a.shape[-1]))


def _np_solve(a, b):
  return np.linalg.solve(_shifted(a), b)


SOLVE_SHAPES = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1)), ((2, 3, 3), (3, 2)),
                ((3, 3), (2, 3, 2)), ((2, 3, 3), (3,)), ((2, 1, 3, 3), (4, 3, 1)),
                ((0, 0), (0,)), ((0, 2, 2), (2, 1))]

SPECS = [
    OpSpec("det", la.det_p, lambda a: la.det(_shifted(a)), lambda a: np.linalg.det(_shifted(a)),
           [((3, 3),), ((1, 1),), ((2, 3, 3),), ((2, 1, 2, 2),), ((0, 0),), ((0, 2, 2),)],
           domain=(-1.0, 1.0)),
    OpSpec("solve", la.solve_p, lambda a, b: la.solve(_shifted(a), b), _np_solve, SOLVE_SHAPES,
           domain=(-1.0, 1.0)),
    OpSpec("solve_linear_in_b", la.solve_p, lambda a, b: la.solve(_shifted(a), b), _np_solve,
           [((3, 3), (3,)), ((2, 3, 3), (3, 2)), ((3, 3), (2, 3, 2))], domain=(-1.0, 1.0),
           diff_argnums=(1,), linear=True),
    OpSpec("inv", la.solve_p, lambda a: la.inv(_shifted(a)),
           lambda a: np.linalg.inv(_shifted(a)), [((3, 3),), ((2, 2, 2),), ((0, 0),)],
           domain=(-1.0, 1.0)),
]
