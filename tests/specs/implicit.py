"""Spec lines of implicit differentiation (dfdx/_src/implicit.py): custom_root and
linear_solve, with solvers that run on NumPy values."""
import numpy as np

import dfdx
import dfdx.numpy as dnp
from dfdx._src.implicit import custom_root_p, linear_solve_p
from tests.op_specs import OpSpec


def _newton(f, x):
  """Newton's method on an elementwise residual (its derivative by dfdx, on NumPy values)."""
  x = np.asarray(x, np.float64)
  for _ in range(60):
    x = x - f(x) / dfdx.vector_grad(f)(x)
  return x


def _cubic_root(a):
  """The real root of x^3 + x = a, found by Newton's method."""
  return dfdx.custom_root(lambda x: x ** 3 + x - a, dnp.zeros_like(a), _newton)


def _cubic_root_ref(a):
  # Cardano: x^3 + p x + q = 0 with p = 1, q = -a has the single real root below.
  d = np.sqrt(a * a / 4 + 1 / 27)
  return np.cbrt(a / 2 + d) + np.cbrt(a / 2 - d)


def _dense(matvec, b):
  """A solver that only calls the operator: its matrix column by column, then LAPACK."""
  n = b.shape[0]
  a = np.stack([matvec(e) for e in np.eye(n)], axis=1)
  return np.linalg.solve(a, b)


def _shifted_solve(a, b):
  """x with (a + 4 I) x = b, a not symmetric: reverse mode uses transpose_solve."""
  shifted = a + 4 * np.eye(a.shape[0])
  return dfdx.custom_linear_solve(lambda x: shifted @ x, b, _dense, transpose_solve=_dense)


SPECS = [
    OpSpec("custom_root", custom_root_p, _cubic_root, _cubic_root_ref, [((),), ((3,),),
                                                                         ((2, 3),)]),
    OpSpec("linear_solve", linear_solve_p, _shifted_solve,
           lambda a, b: np.linalg.solve(a + 4 * np.eye(a.shape[0]), b),
           [((3, 3), (3,)), ((1, 1), (1,))], domain=(-1.0, 1.0)),
]

