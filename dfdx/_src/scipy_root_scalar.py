"""dfdx.scipy.optimize.root_scalar: SciPy's scalar root finders (brentq, bisect, newton,
halley, secant, ...) with dfdx's exact first and second derivatives for the methods that
use them, and the root differentiable in `args` and what f closes over (custom_root: the
implicit function theorem, to any order, under jit and vmap).
"""
from __future__ import annotations

import numpy as np

from dfdx._src import errors
from dfdx._src.core import Tracer
from dfdx._src.scipy_optimize import _as_args, _closes_over_traced, _traced, scipy_optimize


def root_scalar(f, args=(), method=None, bracket=None, fprime=None, fprime2=None, x0=None,
                x1=None, xtol=None, rtol=None, maxiter=None, options=None):
  """`scipy.optimize.root_scalar(f, args, ...)`: a root of the scalar function f(x, *args),
  written with `dfdx.numpy`. `fprime=None` and `fprime2=None` give newton and halley dfdx's
  exact derivatives (`True`, as in SciPy, means f returns them); other arguments are
  SciPy's, and so is the result (a RootResults). Where `args` (or what f closes over) are
  traced, the result's `root` is differentiated implicitly, d root = -(df/dargs d args) /
  (df/dx), and the result holds `root` (traced), `converged` and `flag` (None and a note
  under jit, where the solver runs only when the compiled code does; it warns there if it
  does not converge).

  >>> import dfdx, dfdx.scipy.optimize as dso
  >>> cube_root = lambda a: dso.root_scalar(lambda x, a: x ** 3 - a, args=(a,),
  ...                                        bracket=(0.0, 10.0), xtol=1e-15).root
  >>> round(float(cube_root(8.0)), 12), round(float(dfdx.grad(cube_root)(8.0)), 12)
  (2.0, 0.083333333333)
  """
  args = _as_args(args)
  start = x0 if x0 is not None else (bracket[0] if bracket is not None else None)
  shape = () if start is None else np.shape(start)
  if not _traced((args, bracket, x0, x1)) and not _closes_over_traced(f, shape, args):
    return _root_scalar_now(f, args, method, bracket, fprime, fprime2, x0, x1, xtol, rtol,
                            maxiter, options)
  import dfdx
  concrete = lambda v: v.concrete_value("root_scalar") if isinstance(v, Tracer) else v  # noqa: E731
  bracket = None if bracket is None else tuple(concrete(b) for b in bracket)
  x0, x1 = (None if v is None else concrete(v) for v in (x0, x1))
  value = (lambda x: f(x, *args)[0]) if fprime is True or fprime2 is True else \
      (lambda x: f(x, *args))
  found = {}

  def solve(g, start):  # (on NumPy values: g is f at the arguments' values)
    result = _root_scalar_now(lambda x: g(x), (), method, bracket, None, None,
                              x0 if x0 is not None else start, x1, xtol, rtol, maxiter,
                              options)
    found["result"] = result
    if not result.converged:
      errors.warn_at_user(f"root_scalar: the solver did not converge ({result.flag}); the "
                          "root's derivative assumes f = 0 there")
    return np.float64(result.root)
  guess = 0.5 * (bracket[0] + bracket[1]) if bracket is not None and x0 is None else \
      (x0 if x0 is not None else 0.0)
  root = dfdx.custom_root(value, np.float64(guess), solve)
  result = scipy_optimize().RootResults(root=root, iterations=-1, function_calls=-1, flag="",
                                        method=method or "")
  done = found.get("result")
  # (the solver has run unless under jit, where it runs when the compiled code does)
  result.converged = None if done is None else done.converged
  result.flag = "not known when traced" if done is None else done.flag
  return result


def _root_scalar_now(f, args, method, bracket, fprime, fprime2, x0, x1, xtol, rtol, maxiter,
                     options):
  """SciPy's root_scalar on NumPy values, with dfdx's derivatives for newton and halley."""
  import dfdx
  opt = scipy_optimize()
  kw = {k: v for k, v in (("xtol", xtol), ("rtol", rtol), ("maxiter", maxiter),
                          ("options", options)) if v is not None}
  both = fprime is True or fprime2 is True
  scalar = (lambda x, *a: f(x, *a)[0]) if both else f
  name = method.lower() if isinstance(method, str) else method
  wants_first = name in ("newton", "halley") or (name is None and x0 is not None and
                                                 bracket is None and x1 is None)
  if fprime is None and wants_first:
    fprime = lambda x, *a: float(dfdx.grad(scalar)(np.float64(x), *a))  # noqa: E731
  if fprime2 is None and name == "halley":
    fprime2 = lambda x, *a: float(dfdx.grad(dfdx.grad(scalar))(np.float64(x), *a))  # noqa: E731
  call = (lambda x, *a: tuple(float(v) for v in f(x, *a))) if both else \
      (lambda x, *a: float(f(x, *a)))
  return opt.root_scalar(call, args=args, method=method, bracket=bracket, fprime=fprime,
                         fprime2=fprime2, x0=x0, x1=x1, **kw)
