"""dfdx.scipy.optimize: SciPy's `minimize`, `root`, `root_scalar`, `least_squares` and
`curve_fit` with dfdx's exact derivatives (the gradient, Hessian-vector products, the
Hessian, the Jacobian: whatever the method uses), and their solutions differentiable in
`args` by implicit differentiation, under grad, jit and vmap. Needs SciPy.

>>> import dfdx, dfdx.numpy as dnp, dfdx.scipy.optimize as dso
>>> rosen = lambda x: dnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
>>> np.round(dso.minimize(rosen, np.zeros(4), method="Newton-CG", tol=1e-10).x, 6)
array([1., 1., 1., 1.])
"""
from dfdx._src.scipy_optimize import (  # noqa: F401
    curve_fit as curve_fit, least_squares as least_squares, minimize as minimize, root as root)
from dfdx._src.scipy_root_scalar import root_scalar as root_scalar  # noqa: F401

__all__ = ["minimize", "root", "root_scalar", "least_squares", "curve_fit"]
