"""Spec lines of minimize (dfdx/_src/scipy_optimize.py): the minimizer of
0.5 |x|^2 - x . sin(c), which is sin(c) (Newton-CG finds it in one step, exactly), found by
SciPy and differentiated implicitly (nonlinear in c: its derivatives are cos(c), -sin(c))."""
import numpy as np

import dfdx.numpy as dnp
from dfdx._src.scipy_optimize import minimize, minimize_p
from tests.op_specs import OpSpec


def _objective(x, c):
  return 0.5 * dnp.sum(x ** 2) - dnp.sum(x * dnp.sin(c))


def _minimizer(c):
  return minimize(_objective, np.zeros(np.shape(c)), args=(c,), method="Newton-CG").x


SPECS = [OpSpec("minimize", minimize_p, _minimizer, np.sin, [((3,),), ((2, 2),)])]
