"""dfdx.scipy.optimize: SciPy's `minimize` and `root`, given dfdx's exact derivatives, and
their solutions differentiable in the problem's parameters.

Called on NumPy values, each is SciPy's function with the derivatives its method uses
computed by dfdx (the gradient, a Hessian-vector product or the Hessian for minimize; the
Jacobian for root), from a `fun` written with `dfdx.numpy`. `x0` may have any shape (SciPy's
flat vector is reshaped for `fun`), and the result is SciPy's OptimizeResult with `x` of
x0's shape.

Called where `args` holds traced values, or `fun` closes over some (under grad, jvp, jit,
vmap), the solution is differentiated implicitly: the solver's iterations are not, and
  * root: fun(x, theta) = 0 gives dx = -(d fun/dx)^-1 (d fun/dtheta) dtheta (custom_root);
  * minimize: grad_x fun(x, theta) = 0 at an unconstrained minimum gives
    dx = -H^-1 (d grad_x fun/dtheta) dtheta, H the Hessian at the minimum (the primitive
    `minimize`, whose impl runs SciPy on NumPy values and whose JVP rule binds it again).
Derivatives exist to any order and in both modes. The result then holds `x`, `fun` (and
`jac` for minimize: the gradient at x) as traced values; the solver's messages are known
only when it runs, so a solver that reports failure warns (RuntimeWarning) instead of
setting `success`. Under bounds and constraints (minimize) and bounds and robust losses
(least_squares, curve_fit), the conditions differentiated are the KKT conditions of the
bounds and constraints active at the solution (dfdx/_src/scipy_constraints.py).
"""
from __future__ import annotations

import numpy as np

from dfdx._src import errors
from dfdx._src.core import Tracer
from dfdx._src.tree import tree_flatten, tree_unflatten

_scipy_optimize_module = None


def scipy_optimize():
  global _scipy_optimize_module
  if _scipy_optimize_module is None:
    try:
      import scipy.optimize
    except ImportError as e:
      raise ImportError(
          "dfdx.scipy.optimize calls SciPy's solvers, and SciPy is not installed. Install it "
          "with `pip install dfdx[scipy]` (or `pip install scipy`).") from e
    from dfdx._src.tree import register_pytree_node
    result = scipy.optimize.OptimizeResult  # (a dict of its own type: a pytree of its fields)
    register_pytree_node(result, lambda r: (list(r.values()), list(r.keys())),
                         lambda keys, values: result(zip(keys, values)))
    register_pytree_node(scipy.optimize.RootResults, _flatten_root_results,
                         _unflatten_root_results)
    _scipy_optimize_module = scipy.optimize
  return _scipy_optimize_module


def _flatten_root_results(r):
  """A RootResults as a pytree: its root, and the rest as it is."""
  return [r.root], (r.iterations, r.function_calls, r.converged, r.flag, r.method)


def _unflatten_root_results(aux, children):
  iterations, calls, converged, flag, method = aux
  result = _scipy_optimize_module.RootResults(children[0], iterations, calls, flag, method)
  result.converged = converged
  return result


# What each method of minimize uses beyond the objective (SciPy warns when given more).
_NO_GRADIENT = {"nelder-mead", "powell", "cobyla", "cobyqa"}
_HESSP = {"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"}
_HESS = {"trust-exact", "dogleg"}


def _small(residual, scale):
  """Whether a solver that reports no success still stopped where the derivative's condition
  holds (grad = 0, fun = 0) to about half the digits: SciPy reports a loss of precision at
  tight tolerances, at the solution."""
  bound = np.sqrt(np.finfo(np.float64).eps) * (1 + np.max(np.abs(scale), initial=0.0))
  return bool(np.all(np.abs(np.asarray(residual, np.float64)) <= bound))


def _as_args(args):
  return args if isinstance(args, tuple) else (args,)


def _traced(tree):
  return any(isinstance(x, Tracer) for x in tree_flatten(tree)[0])


def _closes_over_traced(fun, shape, args):
  """Whether fun(x, *args) uses a value an enclosing transformation traces (only possible
  while one is current); a fun that cannot be staged is run as it is."""
  from dfdx._src import core
  from dfdx._src.staging import make_program
  if core.current_trace() is None:
    return False
  try:
    return bool(make_program(lambda x: tree_flatten(fun(x, *args))[0],
                             [core.ShapedArray(shape, np.float64)], record_source=False)[1])
  except Exception:  # noqa: BLE001 (the solver's own run raises what is wrong)
    return False


def _scalar(value):
  """fun's value as a scalar: SciPy takes one of any shape of one element."""
  from dfdx._src import core
  import dfdx.numpy as dnp
  shape = core.shape_of(value)
  if int(np.prod(shape)) != 1:
    raise ValueError(f"minimize: fun must return a scalar, but it returned shape {shape}. "
                     "Reduce it (e.g. with dnp.sum), or use root or a least-squares objective.")
  return dnp.reshape(value, ())


def _residual(out, shape, method):
  """root's residual, checked: x's shape (a square system), or any for lm (least squares) and
  a method of the user's."""
  from dfdx._src import core
  square = method is None or (isinstance(method, str) and method.lower() != "lm")
  if square and tuple(core.shape_of(out)) != tuple(shape):
    raise ValueError(f"root: fun returned shape {tuple(core.shape_of(out))}; it must return "
                     f"x0's shape {tuple(shape)} (a square system).")
  return out


def _shaped_callback(callback, shape):
  """callback, given x in x0's shape (SciPy's solvers hold it flat)."""
  import inspect
  if callback is None or len(shape) == 1:
    return callback
  try:
    by_result = set(inspect.signature(callback).parameters) == {"intermediate_result"}
  except (TypeError, ValueError):
    by_result = False
  if by_result:
    def shaped(intermediate_result):
      result = type(intermediate_result)(intermediate_result)
      result.x = np.reshape(result.x, shape)
      return callback(intermediate_result=result)
  else:
    def shaped(xk, *rest):
      return callback(np.reshape(xk, shape), *rest)
  return shaped


class _CompiledAfter:
  """`fn` (a derivative the solver evaluates again and again), run as it is for its first
  calls and compiled with dfdx.jit from the `after`-th on (measured: compiling the gradient of
  a small function takes about 5 ms, and then saves about 140 us a call). A function jit
  cannot run (Python branching on values) stays as it is."""
  __slots__ = ("fn", "after", "calls", "jitted")

  def __init__(self, fn, after=40):
    self.fn, self.after, self.calls, self.jitted = fn, after, 0, None

  def __call__(self, *args):
    self.calls += 1
    if self.calls <= self.after or self.jitted is False:
      return self.fn(*args)
    if self.jitted is None:
      import dfdx
      jitted = dfdx.jit(self.fn)
      try:
        out = jitted(*args)
      except Exception:  # noqa: BLE001 (it runs as it is; its own errors show there)
        self.jitted = False
        return self.fn(*args)
      self.jitted = jitted
      return out
    return self.jitted(*args)


def _float_start(x0, name):
  x0 = x0.concrete_value(f"{name}: x0") if isinstance(x0, Tracer) else x0
  x0 = np.asarray(x0)
  if x0.dtype.kind == "c":
    raise TypeError(f"{name}: x0 is complex ({x0.dtype}); SciPy's solvers work on real "
                    "vectors: split real and imaginary parts.")
  return np.asarray(x0, np.float64)


def _minimize_now(fun, x0, args, method, jac, hess, hessp, bounds, constraints, tol,
                  callback, options):
  """SciPy's minimize on NumPy values, with dfdx's derivatives where the method uses them."""
  import dfdx
  import dfdx.numpy as dnp
  opt = scipy_optimize()
  shape = np.shape(x0)
  m = (method or ("L-BFGS-B" if bounds is not None else "SLSQP" if constraints else "BFGS"))
  m = m.lower() if isinstance(m, str) else m
  unflat = lambda v: dnp.reshape(v, shape)  # noqa: E731

  if jac is True:  # (SciPy's convention: fun gives the value and the gradient)
    def objective(v, *a):
      value, grad = fun(unflat(v), *a)
      return float(_scalar(value)), np.ravel(np.asarray(grad, np.float64))
    gradient = lambda v, *a: dnp.ravel(fun(unflat(v), *a)[1])  # noqa: E731
    use_jac = True
  else:
    def scalar(v, *a):
      return _scalar(fun(unflat(v), *a))
    objective = lambda v, *a: float(scalar(v, *a))  # noqa: E731
    gradient = lambda v, *a: dfdx.grad(scalar)(v, *a)  # noqa: E731
    if jac is None and m not in _NO_GRADIENT:
      objective = _CompiledAfter(dfdx.value_and_grad(scalar))
      use_jac = True
    elif callable(jac):
      use_jac = lambda v, *a: np.ravel(jac(np.reshape(v, shape), *a))  # noqa: E731
    else:
      use_jac = jac
  kw = {}
  if isinstance(m, str) and m in _HESSP | _HESS and hess is None and hessp is None:
    if m in _HESSP:
      hvp = _CompiledAfter(lambda v, p, *a: dfdx.jvp(lambda w: gradient(w, *a), (v,), (p,))[1])
      kw["hessp"] = lambda v, p, *a: np.asarray(hvp(v, p, *a), np.float64)  # noqa: E731
    else:
      hessian = _CompiledAfter(lambda v, *a: dfdx.jacfwd(lambda w: gradient(w, *a))(v))
      kw["hess"] = lambda v, *a: np.asarray(hessian(v, *a), np.float64)  # noqa: E731
  elif hess is not None:
    kw["hess"] = hess if isinstance(hess, str) or not callable(hess) else \
        (lambda v, *a: hess(np.reshape(v, shape), *a))
  elif hessp is not None:
    kw["hessp"] = lambda v, p, *a: np.ravel(hessp(np.reshape(v, shape), np.reshape(p, shape), *a))
  if callback is not None:
    kw["callback"] = _shaped_callback(callback, shape)
  result = opt.minimize(objective, np.ravel(x0), args=args, method=method, jac=use_jac,
                        bounds=bounds, constraints=constraints, tol=tol, options=options, **kw)
  result.x = np.reshape(result.x, shape)
  # (trust-constr's jac is a list of the constraints' Jacobians)
  if isinstance(result.get("jac"), np.ndarray) and result.jac.size == result.x.size:
    result.jac = np.reshape(result.jac, shape)
  return result


def minimize(fun, x0, args=(), method=None, jac=None, hess=None, hessp=None, bounds=None,
             constraints=(), tol=None, callback=None, options=None):
  """`scipy.optimize.minimize(fun, x0, args, ...)` with dfdx's derivatives, and its minimizer
  differentiable in `args` (see the module's docstring).

  `fun(x, *args)` returns a scalar and is written with `dfdx.numpy`. `jac=None` (the
  default) gives the method dfdx's exact gradient where it uses one, and Newton-CG and the
  trust-region methods dfdx's Hessian-vector products or Hessian; `jac=True` means, as in
  SciPy, that fun returns (value, gradient); a callable or a finite-difference scheme is
  passed to SciPy. Other arguments are SciPy's. Constraints (dicts, NonlinearConstraint,
  LinearConstraint) are given dfdx's exact Jacobians (and, for trust-constr, Hessians), and
  their functions get x in x0's shape, as fun does.

  Differentiated under bounds and constraints, the minimizer follows the KKT conditions of
  those active at it: a variable held at a bound stays there, and the rest move with the
  Lagrangian's stationary point on the active constraints (bounds and constraints' bounds
  must then be NumPy values; what the constraints' functions close over may be traced).

  >>> import dfdx, dfdx.numpy as dnp, dfdx.scipy.optimize as dso
  >>> def fit(c):  # the minimizer of sum((x - c)^2) + x_0^4, and its derivative in c
  ...   f = lambda x, c: dnp.sum((x - c) ** 2) + x[0] ** 4
  ...   return dso.minimize(f, np.zeros(2), args=(c,), tol=1e-10).x
  >>> np.round(fit(np.array([1.0, 2.0])), 6)
  array([0.589755, 2.      ])
  >>> round(float(dfdx.jacobian(fit)(np.array([1.0, 2.0]))[0, 0]), 6)  # 1 / (1 + 6 x_0^2)
  0.323954
  """
  from dfdx._src import scipy_constraints as sc
  args = _as_args(args)
  cons = sc.constraint_list(constraints)
  shape = np.shape(x0)
  bounds = sc.flat_bounds(sc._concrete(bounds, "minimize", "bounds"))
  if not _traced((x0, args)) and not _closes_over_traced(fun, shape, args) and not any(
      _closes_over_traced(c.fun, shape, ()) for c in cons):
    x0 = _float_start(x0, "minimize")
    if cons:
      constraints = sc.scipy_constraints(cons, lambda k, x: _flat(cons[k].fun(x)), shape,
                                         method, sc.traceable(cons, x0))
    return _minimize_now(fun, x0, args, method, jac, hess, hessp, bounds, constraints, tol,
                         callback, options)
  used_bounds, used_cons = sc.used_by(method, bounds, cons)
  return _differentiable_minimum(fun, x0, args, method, jac, hess, hessp, tol, callback,
                                 options, bounds, cons, used_bounds, used_cons)


def _flat(value):
  import dfdx.numpy as dnp
  return dnp.ravel(dnp.asarray(value, np.float64))


def _differentiable_minimum(fun, x0, args, method, jac, hess, hessp, tol, callback, options,
                            bounds, cons, used_bounds, used_cons):
  import dfdx
  import dfdx.numpy as dnp
  from dfdx._src.core import ShapedArray, get_aval
  from dfdx._src.staging import make_program
  x0 = x0 if isinstance(x0, Tracer) else _float_start(x0, "minimize")
  shape = np.shape(x0)
  leaves, tree = tree_flatten(args)
  floating = [get_aval(x).dtype.kind in "fc" for x in leaves]
  fixed = [x for x, f in zip(leaves, floating) if not f]

  def full_args(params):
    it, rest = iter(params), iter(fixed)
    return tree_unflatten(tree, [next(it) if f else next(rest) for f in floating])

  # fun as a program of (x, the floating arguments, what it closes over): the solver, run on
  # NumPy values, and the derivative rule take every traced value as an operand (a traced
  # value closed over would not exist when the solver runs).
  params = [x for x, f in zip(leaves, floating) if f]

  def outputs(x, *ps):
    out = fun(x, *full_args(ps))
    values = [_scalar(out[0]), out[1]] if jac is True else [_scalar(out)]
    return values + [_flat(c.fun(x)) for c in cons]
  program, lifted = make_program(
      outputs, [ShapedArray(shape, np.float64)] + [get_aval(p) for p in params],
      record_source=False)
  from dfdx._src import scipy_constraints as sc
  first = 2 if jac is True else 1
  targets = sc.target_arrays(cons, [a.shape[0] for a in program.out_avals[first:]]) \
      if cons else None
  operands = params + lifted
  start = dfdx.stop_gradient(dnp.asarray(x0, np.float64))  # (the minimum does not move with it)
  n = len(params)  # (the solver's args: params, then lifted; the user's callables get args)
  if callable(jac):
    jac = lambda x, *ops, f=jac: f(x, *full_args(ops[:n]))  # noqa: E731
  if callable(hess):
    hess = lambda x, *ops, f=hess: f(x, *full_args(ops[:n]))  # noqa: E731
  if callable(hessp):
    hessp = lambda x, p, *ops, f=hessp: f(x, p, *full_args(ops[:n]))  # noqa: E731
  solver = _Solver(method, jac, hess, hessp, tol, callback, options,
                   bounds=(bounds, sc.bound_arrays(used_bounds, int(np.prod(shape)),
                                                   "minimize")),
                   constraints=(cons, targets), used_constraints=len(used_cons))
  x = minimize_p.bind(start, *operands, program=program, solver=solver)
  return scipy_optimize().OptimizeResult(x=x, fun=_value(program, x, operands),
                                         jac=_gradient(program, jac is True, x, operands))


class _Solver:
  """What the solver of a `minimize_p` is given beyond the objective (held by identity):
  SciPy's minimize, or (kind "least_squares") least_squares on the program's second output,
  the residuals, whose (robust) cost is the value minimized. `bounds`: (as the user gave
  them, for SciPy; (lb, ub) flat arrays or None, for the derivative); `constraints`: (the
  Constraints, whose values are the program's outputs after the objective's; their bounds
  (lo, hi) concatenated, or None)."""
  __slots__ = ("kind", "method", "jac", "jac_true", "hess", "hessp", "tol", "callback",
               "options", "bounds", "bound_arrays", "constraints", "targets",
               "used_constraints")

  def __init__(self, method, jac, hess, hessp, tol, callback, options, kind="minimize",
               bounds=(None, None), constraints=((), None), used_constraints=0):
    self.kind, self.method, self.jac, self.jac_true = kind, method, jac, jac is True
    self.hess, self.hessp = hess, hessp
    self.tol, self.callback, self.options = tol, callback, options
    self.bounds, self.bound_arrays = bounds
    self.constraints, self.targets = constraints
    self.used_constraints = bool(used_constraints)  # (False: the method runs without them)

  def __repr__(self):
    return f"{self.kind}(method={self.method!r})"


def _value(program, x, ops):
  from dfdx._src.ir import eval_program
  return eval_program(program, x, *ops)[0]


def _gradient(program, jac_true, x, ops):
  import dfdx
  from dfdx._src.ir import eval_program
  if jac_true:
    return eval_program(program, x, *ops)[1]
  return dfdx.grad(lambda y: _value(program, y, ops))(x)


# minimize_p: the minimizer of a program's value over its first input, from a start, at the
# values of its other inputs (the operands). Its impl runs SciPy on NumPy values; its JVP rule
# binds it again for the minimizer (so every order of derivative gets this rule) and solves
# H dx = -(d grad / d operands) d operands, H the Hessian at the minimizer.
from dfdx._src import ad as _ad, batching as _batching, core as _core  # noqa: E402

minimize_p = _core.primitive("minimize")


def _minimize_impl(start, *ops, program, solver):
  from dfdx._src.ir import eval_program
  if solver.kind == "least_squares":
    result = _least_squares_now(lambda x, *o: eval_program(program, x, *o)[1],
                                np.asarray(start, np.float64), tuple(ops), solver.jac,
                                solver.bounds, solver.method, solver.options)
    if not result.success and not _stationary(program, False, result.x, ops, solver,
                                              result.cost):
      errors.warn_at_user(f"least_squares: the solver reports no success ({result.message}); "
                          "the solution's derivative assumes a stationary point there")
    return np.asarray(result.x, np.float64)
  if solver.jac_true:
    objective = lambda x, *o: tuple(eval_program(program, x, *o)[:2])  # noqa: E731
  else:
    objective = lambda x, *o: _value(program, x, o)  # noqa: E731
  constraints = ()
  if solver.constraints:
    from dfdx._src.scipy_constraints import scipy_constraints
    first = 2 if solver.jac_true else 1
    constraints = scipy_constraints(
        solver.constraints, lambda k, x: eval_program(program, x, *ops)[first + k],
        np.shape(start), solver.method)
  result = _minimize_now(objective, np.asarray(start, np.float64), tuple(ops), solver.method,
                         solver.jac, solver.hess, solver.hessp, solver.bounds, constraints,
                         solver.tol, solver.callback, solver.options)
  # (dfdx's gradient at x: not every method's result holds it, trust-constr's jac is the
  # constraints' Jacobian)
  if not result.success and (solver.used_constraints or not _stationary(
      program, solver.jac_true, result.x, ops, solver, result.fun)):
    errors.warn_at_user(f"minimize: the solver reports no success ({result.message}); the "
                        "minimizer's derivative assumes that the minimum's conditions hold "
                        "there")
  return np.asarray(result.x, np.float64)


def _stationary(program, jac_true, x, ops, solver, scale):
  """Whether x is stationary to about half the digits: its gradient, projected on the bounds,
  is small."""
  g = np.asarray(_gradient(program, jac_true, x, ops), np.float64)
  if solver.bound_arrays is not None:
    lb, ub = solver.bound_arrays
    flat = np.ravel(x)
    g = flat - np.clip(flat - np.ravel(g), lb, ub)
  return _small(g, scale)


def _minimize_jvp(primals, tangents, *, program, solver):
  import dfdx
  import dfdx.numpy as dnp
  from dfdx._src.ir import eval_program
  from dfdx._src.ops import checks
  (start, *ops), (_, *dops) = primals, tangents
  x = minimize_p.bind(start, *ops, program=program, solver=solver)
  if all(d is None for d in dops):
    return x, None
  shape = _core.shape_of(x)
  flat = lambda v: dnp.reshape(v, (-1,))  # noqa: E731
  grad_of = lambda y, os: flat(_gradient(program, solver.jac_true, y, os))  # noqa: E731
  live = [i for i, d in enumerate(dops) if d is not None]
  if solver.bound_arrays is not None or solver.used_constraints:
    from dfdx._src.scipy_constraints import constrained_tangent
    first = 2 if solver.jac_true else 1
    cons_of = None if not solver.used_constraints else (
        lambda v, os: dnp.concatenate(eval_program(program, dnp.reshape(v, shape),
                                                   *os)[first:]))
    dx = constrained_tangent(lambda v, os: grad_of(dnp.reshape(v, shape), os), cons_of,
                             flat(x), ops, live, [dops[i] for i in live],
                             solver.bound_arrays, solver.targets)
    return x, dnp.reshape(dx, shape)
  h = dfdx.jacfwd(lambda v: grad_of(dnp.reshape(v, shape), ops))(flat(x))
  h = checks.check(h, "nonsingular", "LinAlgError", "minimize: the Hessian at the minimum is "
                   "singular, so the minimizer's derivative does not exist here")

  def moved(*vs):
    os = list(ops)
    for i, v in zip(live, vs):
      os[i] = v
    return grad_of(x, os)
  rhs = dfdx.jvp(moved, tuple(ops[i] for i in live), tuple(dops[i] for i in live))[1]
  return x, dnp.reshape(-dnp.linalg.solve(h, rhs), shape)


minimize_p.def_impl(_minimize_impl)
minimize_p.def_abstract_eval(
    lambda start, *ops, program, solver: _core.ShapedArray(start.shape, np.float64))
_ad.primitive_jvps[minimize_p] = _minimize_jvp
_batching.defone_by_one(minimize_p)


def _register_codegen():
  from dfdx._src import codegen_rules
  codegen_rules.register("minimize", codegen_rules._solver_call("minimize"))


_register_codegen()


def root(fun, x0, args=(), method="hybr", jac=None, tol=None, callback=None, options=None):
  """`scipy.optimize.root(fun, x0, args, ...)` with dfdx's Jacobian, and its solution
  differentiable in `args` (see the module's docstring).

  `fun(x, *args)` returns an array of x's shape, written with `dfdx.numpy`. `jac=None` (the
  default) gives the methods that use a Jacobian (hybr, lm) dfdx's, computed exactly;
  `jac=True` means, as in SciPy, that fun returns (value, Jacobian); a callable is passed to
  SciPy. Other arguments are SciPy's.

  >>> import dfdx, dfdx.numpy as dnp, dfdx.scipy.optimize as dso
  >>> cube_root = lambda a: dso.root(lambda x, a: x ** 3 - a, 1.0, args=(a,), tol=1e-14).x
  >>> round(float(cube_root(8.0)), 10), round(float(dfdx.grad(cube_root)(8.0)), 10)
  (2.0, 0.0833333333)
  """
  args = _as_args(args)
  if not _traced((x0, args)) and not _closes_over_traced(fun, np.shape(x0), args):
    return _root_now(fun, _float_start(x0, "root"), args, method, jac, tol, callback, options)
  import dfdx
  x0 = x0 if isinstance(x0, Tracer) else _float_start(x0, "root")
  shape = np.shape(x0)
  residual = lambda x: _residual(fun(x, *args)[0] if jac is True else fun(x, *args),  # noqa: E731
                                 shape, None)

  def solve(f, start):  # (on NumPy values: f is the residual at the parameters' values)
    result = _root_now(lambda x: f(x), start, (), method, None, tol, callback, options)
    if not result.success and not _small(result.fun, result.x):
      errors.warn_at_user(f"root: the solver reports no success ({result.message}); the "
                          "solution's derivative assumes fun = 0 there")
    return np.asarray(result.x, np.float64)
  x = dfdx.custom_root(residual, dfdx.stop_gradient(x0), solve)
  return scipy_optimize().OptimizeResult(x=x, fun=residual(x))


def _root_now(fun, x0, args, method, jac, tol, callback, options):
  """SciPy's root on NumPy values, with dfdx's Jacobian for the methods that use one."""
  import dfdx
  import dfdx.numpy as dnp
  opt = scipy_optimize()
  shape = np.shape(x0)

  def flat_fun(v, *a):
    out = fun(dnp.reshape(v, shape), *a)
    if jac is True:
      return (np.ravel(np.asarray(_residual(out[0], shape, method), np.float64)),
              np.asarray(out[1], np.float64))
    return np.ravel(np.asarray(_residual(out, shape, method), np.float64))
  use_jac = jac
  if jac is None and isinstance(method, str) and method.lower() in ("hybr", "lm"):
    jacobian = _CompiledAfter(lambda v, *a: dfdx.jacfwd(
        lambda w: dnp.ravel(fun(dnp.reshape(w, shape), *a)))(v))
    use_jac = lambda v, *a: np.asarray(jacobian(v, *a), np.float64)  # noqa: E731
  elif callable(jac):
    use_jac = lambda v, *a: np.asarray(jac(np.reshape(v, shape), *a), np.float64)  # noqa: E731
  kw = {} if callback is None else {"callback": _shaped_callback(callback, shape)}
  result = opt.root(flat_fun, np.ravel(x0), args=args, method=method, jac=use_jac, tol=tol,
                    options=options, **kw)
  result.x = np.reshape(result.x, shape)
  if "fun" in result and np.size(result.fun) == np.size(result.x):
    result.fun = np.reshape(result.fun, shape)
  return result


# ---- least squares and curve fitting ---------------------------------------------------------


def least_squares(fun, x0, jac=None, bounds=(-np.inf, np.inf), method="trf", args=(),
                  kwargs=None, **options):
  """`scipy.optimize.least_squares(fun, x0, ...)` with dfdx's exact Jacobian, and its solution
  differentiable in `args`, `kwargs` and what fun closes over (see the module's docstring).

  `fun(x, *args, **kwargs)` returns the residuals (any shape), written with `dfdx.numpy`;
  x0 may have any shape. `jac=None` gives SciPy dfdx's Jacobian; a callable or a
  finite-difference scheme is passed to SciPy, as are the other options (ftol, xtol, gtol,
  x_scale, loss, f_scale, max_nfev, ...). Differentiated, the solution is the stationary
  point of SciPy's cost, 0.5 f_scale^2 sum(rho((r / f_scale)^2)) for a named loss (the
  derivative uses its exact Hessian: J^T J plus the residuals' curvature for the plain sum of
  squares), with the parameters held at a bound fixed there (bounds must then be NumPy
  values); a callable loss is refused.

  >>> import dfdx, dfdx.numpy as dnp, dfdx.scipy.optimize as dso
  >>> t = np.linspace(0.0, 1.0, 20)
  >>> def rate(y):  # the decay rate of y ~ exp(-k t), fitted
  ...   return dso.least_squares(lambda k, y: dnp.exp(-k[0] * t) - y, np.ones(1), args=(y,)).x[0]
  >>> round(float(rate(np.exp(-2.0 * t))), 8)
  2.0
  """
  from dfdx._src.scipy_constraints import _concrete, flat_bounds
  args = _as_args(args)
  kwargs = dict(kwargs or {})
  bounds = flat_bounds(_concrete(bounds, "least_squares", "bounds"))
  _concrete(options.get("f_scale", 1.0), "least_squares", "f_scale")
  call = lambda x, a, k: fun(x, *a, **k)  # noqa: E731
  if not _traced((x0, args, kwargs)) and not _closes_over_traced(
      lambda x: call(x, args, kwargs), np.shape(x0), ()):
    user_jac = (lambda x, a, k: jac(x, *a, **k)) if callable(jac) else jac  # noqa: E731
    return _least_squares_now(call, _float_start(x0, "least_squares"), (args, kwargs),
                              user_jac, bounds, method, options)
  cost = _robust_cost(options.get("loss", "linear"), options.get("f_scale", 1.0))
  import dfdx
  import dfdx.numpy as dnp
  from dfdx._src.core import ShapedArray
  from dfdx._src.staging import make_program
  x0 = x0 if isinstance(x0, Tracer) else _float_start(x0, "least_squares")
  shape = np.shape(x0)
  leaves, tree = tree_flatten((args, kwargs))

  def outputs(x, *ls):
    a, k = tree_unflatten(tree, list(ls))
    r = fun(x, *a, **k)
    return [cost(r), r]
  program, lifted = make_program(
      outputs, [ShapedArray(shape, np.float64)] + [_aval(x) for x in leaves],
      record_source=False)
  operands = list(leaves) + lifted
  if callable(jac):
    n = len(leaves)
    jac = lambda x, *ops, f=jac: f(x, *tree_unflatten(tree, list(ops[:n]))[0],  # noqa: E731
                                   **tree_unflatten(tree, list(ops[:n]))[1])
  from dfdx._src.scipy_constraints import bound_arrays
  solver = _Solver(method, jac, None, None, None, None, options, kind="least_squares",
                   bounds=(bounds, bound_arrays(bounds, int(np.prod(shape)), "least_squares")))
  start = dfdx.stop_gradient(dnp.asarray(x0, np.float64))
  x = minimize_p.bind(start, *operands, program=program, solver=solver)
  from dfdx._src.ir import eval_program
  cost, residuals = eval_program(program, x, *operands)
  return scipy_optimize().OptimizeResult(x=x, fun=dnp.ravel(residuals), cost=cost)


def _robust_cost(loss, f_scale):
  """least_squares' cost of the residuals r, as SciPy defines it: 0.5 C^2 sum(rho((r / C)^2)),
  C = f_scale, for its named losses."""
  import dfdx.numpy as dnp
  from dfdx._src.scipy_constraints import _concrete
  _concrete(f_scale, "least_squares", "f_scale")
  rhos = {"linear": lambda z: z,
          "soft_l1": lambda z: 2 * (dnp.sqrt(1 + z) - 1),
          "huber": lambda z: dnp.where(z <= 1, z, 2 * dnp.sqrt(dnp.maximum(z, 1.0)) - 1),
          "cauchy": dnp.log1p,
          "arctan": dnp.arctan}
  if not isinstance(loss, str) or loss not in rhos:
    raise NotImplementedError(
        f"least_squares: the solution's derivative supports the losses {sorted(rhos)}, got "
        f"{loss!r} (a callable loss gives SciPy rho and its first two derivatives, not a "
        "function dfdx can differentiate further).")
  rho, c = rhos[loss], float(f_scale)
  return lambda r: 0.5 * c ** 2 * dnp.sum(rho((r / c) ** 2))


def _aval(x):
  from dfdx._src.core import get_aval
  if not isinstance(x, (Tracer, np.ndarray, np.generic, bool, int, float, complex)):
    raise TypeError(f"least_squares: args and kwargs must hold arrays or numbers when the "
                    f"solution is differentiated, got {type(x).__name__}")
  return get_aval(x)


def _unbounded(bounds):
  if isinstance(bounds, (tuple, list)) and len(bounds) == 2:
    return all(not isinstance(b, Tracer) and np.all(np.isinf(np.asarray(b))) for b in bounds)
  return False


def _least_squares_now(fun, x0, args, jac, bounds, method, options):
  """SciPy's least_squares on NumPy values, with dfdx's Jacobian."""
  import dfdx
  import dfdx.numpy as dnp
  opt = scipy_optimize()
  shape = np.shape(x0)
  residuals = lambda v, *a: dnp.ravel(fun(dnp.reshape(v, shape), *a))  # noqa: E731
  flat_fun = lambda v, *a: np.asarray(residuals(v, *a), np.float64)  # noqa: E731
  if jac is None:
    jacobian = _CompiledAfter(lambda v, *a: dfdx.jacobian(lambda w: residuals(w, *a))(v))
    use_jac = lambda v, *a: np.asarray(jacobian(v, *a), np.float64)  # noqa: E731
  elif callable(jac):
    use_jac = lambda v, *a: np.asarray(jac(np.reshape(v, shape), *a), np.float64)  # noqa: E731
  else:
    use_jac = jac
  result = opt.least_squares(flat_fun, np.ravel(x0), jac=use_jac, bounds=bounds, method=method,
                             args=args, **options)
  result.x = np.reshape(result.x, shape)
  return result


def curve_fit(f, xdata, ydata, p0=None, sigma=None, absolute_sigma=False,
              bounds=(-np.inf, np.inf), method=None, jac=None, **kwargs):
  """`scipy.optimize.curve_fit(f, xdata, ydata, ...)`: the parameters p minimizing
  sum(((f(xdata, *p) - ydata) / sigma)^2), with dfdx's exact Jacobian, and (popt, pcov)
  differentiable in xdata, ydata and sigma (the fit's sensitivity to the data).

  `f(x, *params)` is written with `dfdx.numpy`. As in SciPy: p0 defaults to ones, one per
  positional parameter of f after x (inside bounds: their midpoints, or one from the finite
  bound); sigma is None, a scalar, one standard deviation per point, or the data's
  covariance matrix; a callable `jac(x, *params)` gives the Jacobian of f, shape (M, N);
  pcov is the pseudo-inverse of J^T J (from J's singular values, as SciPy), scaled by the
  residual variance unless `absolute_sigma` (all inf, with an OptimizeWarning, where that
  cannot be estimated); a solver that reports failure raises RuntimeError (warns when the
  fit is differentiated); method None is "lm" without bounds, else "trf"; `maxfev` is
  max_nfev, and other keywords go to least_squares.

  >>> import dfdx, dfdx.numpy as dnp, dfdx.scipy.optimize as dso
  >>> x = np.linspace(0.0, 1.0, 10)
  >>> popt, pcov = dso.curve_fit(lambda x, a, b: a * dnp.exp(b * x), x, 2.0 * np.exp(0.5 * x))
  >>> np.round(popt, 8)
  array([2. , 0.5])
  """
  import dfdx
  import dfdx.numpy as dnp
  from dfdx._src import core
  from dfdx._src.scipy_linalg import solve_triangular
  opt = scipy_optimize()
  if kwargs.pop("full_output", False):
    raise NotImplementedError("curve_fit: full_output is not supported; call least_squares "
                              "for the solver's whole result")
  if "args" in kwargs:
    raise ValueError("curve_fit: 'args' is not a supported keyword argument (f takes x and "
                     "the parameters; close over other values)")
  check_finite = kwargs.pop("check_finite", None)
  if kwargs.pop("nan_policy", None) is not None:
    raise NotImplementedError("curve_fit: nan_policy is not supported; drop the points that "
                              "hold NaN before the fit")
  check_finite = True if check_finite is None else check_finite
  if "maxfev" in kwargs:  # (leastsq's name, SciPy's curve_fit takes it for every method)
    maxfev = kwargs.pop("maxfev")
    kwargs.setdefault("max_nfev", maxfev)
  if p0 is None:
    import inspect
    try:
      positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
      n = sum(q.kind in positional for q in inspect.signature(f).parameters.values()) - 1
    except (TypeError, ValueError):
      n = 0
    if n < 1:
      raise ValueError("curve_fit: cannot tell how many parameters f takes; pass p0")
  elif isinstance(p0, Tracer):
    p0 = dnp.reshape(p0, (-1,))
    n = core.shape_of(p0)[0]
  else:
    p0 = np.atleast_1d(np.asarray(p0, np.float64))
    n = p0.size
    p0 = np.ravel(p0)
  bounded = not _unbounded(bounds)
  if p0 is None:  # (SciPy's start: inside the bounds)
    p0 = np.ones(n)
    if bounded and not _traced(bounds):
      lb, ub = (bounds.lb, bounds.ub) if isinstance(bounds, opt.Bounds) else bounds
      lb, ub = (np.broadcast_to(np.asarray(b, np.float64), (n,)) for b in (lb, ub))
      both, low, high = (np.isfinite(lb) & np.isfinite(ub), np.isfinite(lb) & ~np.isfinite(ub),
                         ~np.isfinite(lb) & np.isfinite(ub))
      p0 = np.where(both, 0.5 * (lb + ub), np.where(low, lb + 1, np.where(high, ub - 1, p0)))
  method = ("trf" if bounded else "lm") if method is None else method
  if method == "lm" and bounded:
    raise ValueError("curve_fit: method 'lm' only works for unconstrained problems; use "
                     "'trf' or 'dogbox' instead")
  # the data as SciPy takes them: floating arrays (xdata only when an array or a sequence:
  # f gets any other object as it is), checked for infs and NaNs
  as_float = np.asarray_chkfinite if check_finite else np.asarray
  if not isinstance(ydata, Tracer):
    ydata = as_float(ydata, np.float64)
  if isinstance(xdata, (list, tuple, np.ndarray)) and not _traced(xdata):
    xdata = as_float(xdata, np.float64)
  m_data = int(np.prod(core.shape_of(ydata)))
  if m_data == 0:
    raise ValueError("curve_fit: `ydata` must not be empty")
  if method == "lm" and m_data != 1 and n > m_data:
    raise TypeError(f"curve_fit: the number of func parameters={n} must not exceed the "
                    f"number of data points={m_data} (method 'lm'; 'trf' solves such a fit)")
  # sigma: None, errors (a scalar or one per point) or a covariance matrix C = L L^T
  kind, weights = None, 1.0
  if sigma is not None:
    sigma = sigma if isinstance(sigma, Tracer) else np.asarray(sigma, np.float64)
    shape = tuple(core.shape_of(sigma))
    if int(np.prod(shape)) == 1 or shape == (m_data,):
      kind, weights = "errors", 1.0 / sigma
    elif shape == (m_data, m_data):
      kind = "covariance"
      if isinstance(sigma, Tracer):
        weights = dnp.linalg.cholesky(sigma)
      else:
        try:
          weights = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError as e:
          raise ValueError("curve_fit: `sigma` must be positive definite") from e
    else:
      raise ValueError(f"curve_fit: `sigma` has incorrect shape {shape}: it must be a "
                       f"scalar, of shape ({m_data},) or ({m_data}, {m_data})")

  def weigh(d, w):  # (d: residuals, or the Jacobian's rows)
    if kind == "covariance":
      return solve_triangular(w, d, lower=True)
    if kind == "errors" and np.ndim(w) == 1 and np.ndim(d) == 2:
      return w[:, None] * d
    return d * w

  def residual(p, x, y, w):
    return weigh(dnp.ravel(f(x, *[p[i] for i in range(n)]) - y), w)
  if callable(jac):
    user_jac = jac
    jac = lambda p, x, y, w: np.asarray(weigh(  # noqa: E731
        np.reshape(np.asarray(user_jac(x, *p), np.float64), (-1, n)), w))
  result = least_squares(residual, p0, jac=jac, bounds=bounds, method=method,
                         args=(xdata, ydata, weights), **kwargs)
  popt = result.x
  m = int(np.prod(core.shape_of(result.fun)))
  if "success" in result:  # (the solver's result on NumPy values; its Jacobian, SciPy's pcov)
    if not result.success:
      raise RuntimeError("Optimal parameters not found: " + str(result.message))
    j = np.asarray(result.jac, np.float64)
    _, sv, vt = np.linalg.svd(j, full_matrices=False)
    keep = sv > np.finfo(np.float64).eps * max(j.shape) * sv[0]
    pcov = (vt[keep].T / sv[keep] ** 2) @ vt[keep]
    indeterminate = bool(np.isnan(pcov).any())
  else:  # (differentiated: J^T J's pseudo-inverse, pinv(J) pinv(J)^T, with SciPy's cutoff)
    j = dfdx.jacfwd(lambda p: residual(p, xdata, ydata, weights))(popt)
    pinv = dnp.linalg.pinv(j, rcond=np.finfo(np.float64).eps * max(m, n))
    pcov = pinv @ dnp.transpose(pinv)
    indeterminate = False
  if indeterminate or (not absolute_sigma and m <= n):
    errors.warn_at_user("curve_fit: the covariance of the parameters could not be estimated",
                        opt.OptimizeWarning)
    return popt, np.full((n, n), np.inf)
  if not absolute_sigma:
    pcov = pcov * (2 * result.cost / (m - n))
  return popt, pcov
