"""dfdx.scipy: differentiable versions of SciPy functions, written with `dfdx.numpy`.

Submodules: `special`, `stats`, `linalg`, `signal`, `integrate`, `optimize`. Importing them
needs NumPy alone. Functions that NumPy can compute (logsumexp, softmax, xlogy, norm.logpdf,
multivariate_normal, solve_triangular, cho_factor/cho_solve, lu_solve, solve_banded,
convolve) never import SciPy; the others (erf, gamma, Bessel functions, the distribution
functions, lu_factor, expm, logm, sqrtm, solve_sylvester, odeint, optimize's minimize and
root) import it on first use and
raise an ImportError naming `pip install dfdx[scipy]` when it is missing.
"""
from dfdx.scipy import integrate, linalg, optimize, signal, special, stats  # noqa: F401
