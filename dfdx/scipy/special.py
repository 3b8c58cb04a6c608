"""dfdx.scipy.special: SciPy's special functions, differentiable.

Same names, signatures, results and dtypes as `scipy.special`; with traced arguments they can
be differentiated (to any order: each derivative is written with these functions) and
batched. logsumexp, softmax, log_softmax, expit, log_expit, logit, xlogy, xlog1py, entr,
rel_entr and kl_div are computed with NumPy alone; the others call SciPy (the `scipy` extra:
`pip install dfdx[scipy]`).

Orders and shape parameters: polygamma's n and yn's n are integers (no derivative); the
derivative of jv, yv, iv, ive, kv, kve in their order v, and of betainc and stdtr in their
first arguments, and of zeta in x, is not implemented (MissingRuleError); gammainc and
gammaincc are differentiable in a to first order. loggamma is differentiable for real
arguments; factorial on traced values is gamma(n + 1) (exact=False).

>>> import dfdx, dfdx.scipy.special as dss
>>> float(dss.logsumexp(np.array([0.0, 0.0])))
0.6931471805599453
>>> dfdx.grad(dss.logsumexp)(np.array([1000.0, 1000.0]))
array([0.5, 0.5])
>>> float(dfdx.grad(dss.gammaln)(1.0))  # digamma(1) = -Euler's gamma
-0.5772156649015329
"""
from dfdx._src.scipy_special import (  # noqa: F401
    beta as beta,
    betainc as betainc,
    betaln as betaln,
    binom as binom,
    digamma as digamma,
    entr as entr,
    erf as erf,
    erfc as erfc,
    erfcinv as erfcinv,
    erfcx as erfcx,
    erfinv as erfinv,
    exp1 as exp1,
    expi as expi,
    expit as expit,
    factorial as factorial,
    gamma as gamma,
    gammainc as gammainc,
    gammaincc as gammaincc,
    gammaln as gammaln,
    i0 as i0,
    i0e as i0e,
    i1 as i1,
    i1e as i1e,
    iv as iv,
    ive as ive,
    j0 as j0,
    j1 as j1,
    jn as jn,
    jv as jv,
    k0 as k0,
    k0e as k0e,
    k1 as k1,
    k1e as k1e,
    kl_div as kl_div,
    kv as kv,
    kve as kve,
    log_expit as log_expit,
    log_ndtr as log_ndtr,
    log_softmax as log_softmax,
    loggamma as loggamma,
    logit as logit,
    logsumexp as logsumexp,
    multigammaln as multigammaln,
    ndtr as ndtr,
    ndtri as ndtri,
    ndtri_exp as ndtri_exp,
    polygamma as polygamma,
    psi as psi,
    rel_entr as rel_entr,
    rgamma as rgamma,
    softmax as softmax,
    stdtr as stdtr,
    xlog1py as xlog1py,
    xlogy as xlogy,
    y0 as y0,
    y1 as y1,
    yn as yn,
    yv as yv,
    zeta as zeta,
)

__all__ = [
    "beta", "betainc", "betaln", "binom", "digamma", "entr", "erf", "erfc", "erfcinv", "erfcx",
    "erfinv", "exp1", "expi", "expit", "factorial", "gamma", "gammainc", "gammaincc", "gammaln",
    "i0", "i0e", "i1", "i1e", "iv", "ive", "j0", "j1", "jn", "jv", "k0", "k0e", "k1", "k1e",
    "kl_div", "kv", "kve", "log_expit", "log_ndtr", "log_softmax", "loggamma", "logit",
    "logsumexp", "multigammaln", "ndtr", "ndtri", "ndtri_exp", "polygamma", "psi", "rel_entr",
    "rgamma", "softmax", "stdtr", "xlog1py", "xlogy", "y0", "y1", "yn", "yv", "zeta"
]
