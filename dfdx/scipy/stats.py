"""dfdx.scipy.stats: SciPy's distributions, differentiable in their arguments and parameters.

`norm`, `t`, `beta`, `gamma`, `chi2` (logpdf, pdf, cdf, logcdf, sf, logsf; norm also ppf,
isf), `poisson` (logpmf, pmf, cdf, logcdf, sf, logsf), `dirichlet` and `multivariate_normal`
(logpdf, pdf), with SciPy's argument names and defaults (loc=0, scale=1, ...).

>>> import dfdx, dfdx.scipy.stats as dst
>>> float(dfdx.grad(dst.norm.logpdf, argnums=2)(1.0, 0.0, 1.0))  # d/dscale: z^2 - 1
0.0
"""
from dfdx._src.scipy_stats import (  # noqa: F401
    beta as beta,
    chi2 as chi2,
    dirichlet as dirichlet,
    gamma as gamma,
    multivariate_normal as multivariate_normal,
    norm as norm,
    poisson as poisson,
    t as t,
)

__all__ = ["beta", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson", "t"]
