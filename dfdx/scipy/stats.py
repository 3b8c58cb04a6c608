"""dfdx.scipy.stats: SciPy's distributions, differentiable in their arguments and parameters.

`norm`, `t`, `beta`, `gamma`, `chi2`, `expon`, `uniform`, `laplace`, `logistic`, `cauchy`,
`lognorm`, `truncnorm` (logpdf, pdf, cdf, logcdf, sf, logsf; norm, expon, uniform, laplace,
logistic, cauchy, lognorm and truncnorm also ppf, norm isf), `poisson`, `binom`, `bernoulli`
(logpmf, pmf, cdf, logcdf, sf, logsf), `dirichlet` and `multivariate_normal` (logpdf, pdf),
with SciPy's argument names and defaults (loc=0, scale=1, ...).

>>> import dfdx, dfdx.scipy.stats as dst
>>> float(dfdx.grad(dst.norm.logpdf, argnums=2)(1.0, 0.0, 1.0))  # d/dscale: z^2 - 1
0.0
"""
from dfdx._src.scipy_stats import (  # noqa: F401
    bernoulli as bernoulli,
    beta as beta,
    binom as binom,
    cauchy as cauchy,
    chi2 as chi2,
    dirichlet as dirichlet,
    expon as expon,
    gamma as gamma,
    laplace as laplace,
    logistic as logistic,
    lognorm as lognorm,
    multivariate_normal as multivariate_normal,
    norm as norm,
    poisson as poisson,
    t as t,
    truncnorm as truncnorm,
    uniform as uniform,
)

__all__ = ["bernoulli", "beta", "binom", "cauchy", "chi2", "dirichlet", "expon", "gamma",
           "laplace", "logistic", "lognorm", "multivariate_normal", "norm", "poisson", "t",
           "truncnorm", "uniform"]
