"""dfdx.scipy.linalg: SciPy's linear-algebra functions, differentiable.

solve_triangular, cho_factor, cho_solve, lu_solve, solve_banded, cholesky, solve, inv, det,
eigh, svd, qr, lstsq, norm, block_diag, toeplitz and circulant need NumPy alone; lu_factor, lu,
qr with pivoting, expm, logm, sqrtm and solve_sylvester call SciPy. See each function for its
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
from dfdx._src.scipy_linalg_more import (  # noqa: F401
    block_diag as block_diag,
    cholesky as cholesky,
    circulant as circulant,
    det as det,
    eigh as eigh,
    inv as inv,
    lstsq as lstsq,
    lu as lu,
    norm as norm,
    qr as qr,
    solve as solve,
    svd as svd,
    toeplitz as toeplitz,
)

__all__ = ["block_diag", "cho_factor", "cho_solve", "cholesky", "circulant", "det", "eigh",
           "expm", "inv", "logm", "lstsq", "lu", "lu_factor", "lu_solve", "norm", "qr", "solve",
           "solve_banded", "solve_sylvester", "solve_triangular", "sqrtm", "svd", "toeplitz"]
