"""dfdx.scipy.integrate: `odeint` (SciPy's LSODA), differentiable in the initial state, the
times, `args` and what the right-hand side closes over: forward mode by the sensitivity
equations, reverse mode by the adjoint method.

>>> import dfdx, dfdx.scipy.integrate as dsi
>>> y = lambda y0: dsi.odeint(lambda y, t: -y, y0, np.array([0.0, 1.0]), rtol=1e-10,
...                           atol=1e-10)[1, 0]
>>> round(float(dfdx.grad(y)(1.0)), 8)  # exp(-1)
0.36787944
"""
from dfdx._src.scipy_integrate import odeint as odeint  # noqa: F401

__all__ = ["odeint"]
