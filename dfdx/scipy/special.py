"""dfdx.scipy.special: SciPy's special functions, differentiable.

Same names, signatures and results as `scipy.special` (computed with NumPy, so SciPy is not
needed); with traced arguments they can be differentiated and batched.

>>> import dfdx, dfdx.scipy.special as dss
>>> float(dss.logsumexp(np.array([0.0, 0.0])))
0.6931471805599453
>>> dfdx.grad(dss.logsumexp)(np.array([1000.0, 1000.0]))
array([0.5, 0.5])
"""
from dfdx._src.scipy_special import (  # noqa: F401
    expit as expit,
    log_softmax as log_softmax,
    logit as logit,
    logsumexp as logsumexp,
    softmax as softmax,
)

__all__ = ["expit", "log_softmax", "logit", "logsumexp", "softmax"]
