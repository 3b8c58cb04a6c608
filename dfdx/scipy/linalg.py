"""dfdx.scipy.linalg: SciPy's linear-algebra functions, differentiable.

solve_triangular, cho_factor, cho_solve, lu_solve and solve_banded need NumPy alone;
lu_factor, expm, logm, sqrtm and solve_sylvester call SciPy. See each function for its
derivative (expm and logm: Frechet derivatives by the block-matrix identity; sqrtm: a
Sylvester equation).

>>> import dfdx, dfdx.scipy.linalg as dsl
>>> dfdx.jvp(dsl.expm, (np.zeros((2, 2)),), (np.eye(2),))[1]  # d expm at 0 is the identity map
array([[1., 0.],
       [0., 1.]])
"""
from dfdx._src.scipy_linalg import (  # noqa: F401
    cho_factor as cho_factor,
    cho_solve as cho_solve,
    expm as expm,
    logm as logm,
    lu_factor as lu_factor,
    lu_solve as lu_solve,
    solve_banded as solve_banded,
    solve_sylvester as solve_sylvester,
    solve_triangular as solve_triangular,
    sqrtm as sqrtm,
)

__all__ = ["cho_factor", "cho_solve", "expm", "logm", "lu_factor", "lu_solve", "solve_banded",
           "solve_sylvester", "solve_triangular", "sqrtm"]
