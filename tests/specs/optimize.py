"""Spec lines of minimize (dfdx/_src/scipy_optimize.py): the minimizer of
0.5 |x|^2 - x . sin(c), which is sin(c) (Newton-CG finds it in one step, exactly), found by
SciPy and differentiated implicitly (nonlinear in c: its derivatives are cos(c), -sin(c))."""
import numpy as np

import dfdx.numpy as dnp
from dfdx._src.scipy_optimize import least_squares, minimize, minimize_p
from tests.op_specs import OpSpec


def _objective(x, c):
  return 0.5 * dnp.sum(x ** 2) - dnp.sum(x * dnp.sin(c))


def _minimizer(c):
  return minimize(_objective, np.zeros(np.shape(c)), args=(c,), method="Newton-CG").x


def _fitted(c):  # (least squares: residuals x - sin(c), one Gauss-Newton step)
  return least_squares(lambda x, c: x - dnp.sin(c), np.zeros(np.shape(c)), args=(c,),
                       method="lm").x


SPECS = [OpSpec("minimize", minimize_p, _minimizer, np.sin, [((3,),), ((2, 2),)]),
         OpSpec("minimize_least_squares", minimize_p, _fitted, np.sin, [((3,),)])]
