"""Bounds and constraints of dfdx.scipy.optimize's solvers, and the derivative of a solution
that they hold.

At a minimum of f(x, theta) under constraints lo <= c(x, theta) <= hi (SciPy's 'eq' is
c = 0, 'ineq' c >= 0) and bounds lb <= x <= ub (constants: each finite one is a row
c = x_i with gradient e_i), what holds is the KKT conditions of the rows active there:

    grad_x L = grad f + J_A^T lam = 0,    c_A(x, theta) = its bound,

with L = f + lam . c_A and lam the active rows' multipliers. Differentiated:

    [H_L  J_A^T] [dx  ]     [d_theta grad_x L . dtheta]
    [J_A    0  ] [dlam] = - [d_theta c_A . dtheta     ]

with H_L the Hessian of L in x, solved by least squares (the pseudo-inverse), so that
dependent active rows (a bound and a constraint along it, a constraint given twice) leave
the multipliers' split open but determine dx. Which rows are active is read at the
solution, with array operations (so per example under jit and vmap):
  * a row is a candidate where it lies within 1e-4 (1 + |grad c| (1 + max |x|)) of a bound
    (interior-point methods stop that far inside);
  * the candidates' multipliers are least squares' of least norm for grad f + J^T lam = 0:
    at a KKT point those of the active rows, and zeros;
  * a candidate is active where its multiplier has the sign of a bound that holds (lam < 0
    at a lower bound, lam > 0 at an upper one) and is not negligible: |lam| |grad c| above
    1e-6 (max |grad f| + max |H_f| (1 + max |x|)), the size of the objective's gradient and
    of what its curvature makes over x's range (so in any units of f). Equality
    constraints are always active.
Where a bound or a constraint is weakly active (at its bound with a zero multiplier) the
solution has no derivative; the one given is then one-sided.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.tree import tree_flatten


def _concrete(value, who, what):
  if any(isinstance(x, Tracer) for x in tree_flatten(value)[0]):
    raise NotImplementedError(
        f"{who}: {what} must be NumPy values or numbers when the solution is differentiated "
        "(the solution's derivative with respect to them is not supported); fix them, or "
        "write them into the objective (a change of variables).")
  return value


# ---- bounds ----------------------------------------------------------------------------------


def bound_arrays(bounds, size, who):
  """(lb, ub): the bounds as flat float64 arrays of `size` entries, or None where no bound is
  finite. `bounds`: scipy.optimize.Bounds, a pair (lb, ub) of scalars or arrays
  (least_squares), or one (min, max) pair per variable, None meaning unbounded (minimize)."""
  from dfdx._src.scipy_optimize import scipy_optimize
  if bounds is None:
    return None
  _concrete(bounds, who, "bounds")
  if isinstance(bounds, scipy_optimize().Bounds):
    lb, ub = bounds.lb, bounds.ub
  elif who == "minimize":
    pairs = list(bounds)
    if len(pairs) != size or any(np.ndim(p) != 1 or len(p) != 2 for p in pairs):
      raise ValueError(f"minimize: bounds must be one (min, max) pair per entry of x "
                       f"({size}), or scipy.optimize.Bounds; got {bounds!r}")
    lb = [-np.inf if p[0] is None else p[0] for p in pairs]
    ub = [np.inf if p[1] is None else p[1] for p in pairs]
  else:
    lb, ub = bounds
  try:
    lb, ub = (np.broadcast_to(np.asarray(b, np.float64).ravel() if np.ndim(b) > 1 else
                              np.asarray(b, np.float64), (size,)).copy() for b in (lb, ub))
  except ValueError as e:
    raise ValueError(f"{who}: bounds must be scalars or have one entry per entry of x "
                     f"({size}); got {bounds!r}") from e
  if not (np.isfinite(lb).any() or np.isfinite(ub).any()):
    return None
  return lb, ub


def flat_bounds(bounds):
  """`bounds` as SciPy takes them for the flat x: a Bounds object's arrays, or least_squares'
  pair (lb, ub), raveled where they have x0's shape."""
  from dfdx._src.scipy_optimize import scipy_optimize
  opt = scipy_optimize()
  if isinstance(bounds, opt.Bounds):
    if max(np.ndim(bounds.lb), np.ndim(bounds.ub), np.ndim(bounds.keep_feasible)) > 1:
      keep = bounds.keep_feasible
      return opt.Bounds(np.ravel(bounds.lb), np.ravel(bounds.ub),
                        keep_feasible=np.ravel(keep) if np.ndim(keep) > 1 else keep)
    return bounds
  if isinstance(bounds, (tuple, list)) and len(bounds) == 2 and \
      any(np.ndim(b) > 1 for b in bounds):
    return tuple(np.ravel(np.asarray(b, np.float64)) for b in bounds)
  return bounds


# What SciPy's minimize methods take (others warn, and run without them).
_TAKE_CONSTRAINTS = {"cobyla", "cobyqa", "slsqp", "trust-constr"}
_TAKE_BOUNDS = {"nelder-mead", "l-bfgs-b", "tnc", "slsqp", "powell", "trust-constr", "cobyla",
                "cobyqa"}


def used_by(method, bounds, constraints):
  """(bounds, constraints) as minimize's `method` uses them: SciPy's default method for them
  where `method` is None; a method that cannot take them runs without them (SciPy warns),
  and so does the derivative."""
  if callable(method):
    return bounds, constraints
  m = method.lower() if isinstance(method, str) else (
      "slsqp" if constraints else "l-bfgs-b" if bounds is not None else "bfgs")
  return (bounds if m in _TAKE_BOUNDS else None,
          constraints if m in _TAKE_CONSTRAINTS else [])


# ---- constraints -----------------------------------------------------------------------------


class Constraint:
  """One of minimize's constraints: `fun(x)` (x in x0's shape) and the bounds its values
  keep, lo <= fun(x) <= hi; `kind`: 'eq' or 'ineq' for SciPy's dict form (rebuilt as one),
  else None; `jac`: the user's Jacobian, if any; `matrix`: A of a LinearConstraint (fun is
  A x)."""
  __slots__ = ("fun", "lo", "hi", "kind", "jac", "matrix")

  def __init__(self, fun, lo, hi, kind=None, jac=None, matrix=None):
    self.fun, self.lo, self.hi, self.kind, self.jac = fun, lo, hi, kind, jac
    self.matrix = matrix


def constraint_list(constraints):
  """minimize's `constraints` (a dict, a NonlinearConstraint or LinearConstraint, or a
  sequence of them) as Constraints (their functions take x in x0's shape)."""
  from dfdx._src.scipy_optimize import scipy_optimize
  opt = scipy_optimize()
  if constraints is None:
    return []
  if isinstance(constraints, (dict, opt.NonlinearConstraint, opt.LinearConstraint)):
    constraints = [constraints]
  out = []
  for i, c in enumerate(constraints):
    if isinstance(c, dict):
      kind = c.get("type")
      if kind not in ("eq", "ineq") or "fun" not in c:
        raise ValueError(f"minimize: constraint {i} must be a dict with 'type' ('eq' or "
                         f"'ineq') and 'fun', got {c!r}")
      fun, args = c["fun"], c.get("args", ())
      args = args if isinstance(args, tuple) else (args,)
      out.append(Constraint(lambda x, f=fun, a=args: f(x, *a), 0.0,
                            0.0 if kind == "eq" else np.inf, kind, c.get("jac")))
    elif isinstance(c, opt.NonlinearConstraint):
      jac = c.jac if callable(c.jac) else None
      out.append(Constraint(c.fun, _concrete(c.lb, "minimize", "constraint bounds"),
                            _concrete(c.ub, "minimize", "constraint bounds"), None, jac))
    elif isinstance(c, opt.LinearConstraint):
      a = c.A.toarray() if hasattr(c.A, "toarray") else np.asarray(c.A, np.float64)
      a = np.atleast_2d(a)
      out.append(Constraint(lambda x, a=a: a @ _ravel(x),
                            _concrete(c.lb, "minimize", "constraint bounds"),
                            _concrete(c.ub, "minimize", "constraint bounds"), None,
                            matrix=a))
    else:
      raise TypeError(f"minimize: constraint {i} must be a dict, a NonlinearConstraint or "
                      f"a LinearConstraint, got {type(c).__name__}")
  return out


def _ravel(x):
  import dfdx.numpy as dnp
  return dnp.reshape(x, (-1,))


def target_arrays(constraints, sizes):
  """(lo, hi): every constraint's bounds, one entry per value, concatenated."""
  los, his = [], []
  for c, m in zip(constraints, sizes):
    try:
      los.append(np.broadcast_to(np.asarray(c.lo, np.float64), (m,)))
      his.append(np.broadcast_to(np.asarray(c.hi, np.float64), (m,)))
    except ValueError as e:
      raise ValueError(f"minimize: a constraint's bounds must be scalars or have one entry "
                       f"per value of its function ({m}); got {c.lo!r}, {c.hi!r}") from e
  return np.concatenate(los), np.concatenate(his)


def scipy_constraints(constraints, value_of, shape, method, exact=None):
  """The constraints as SciPy takes them (x flat), with dfdx's Jacobians: `value_of(k, x)` is
  constraint k's flat value at x (x0's shape). Where `exact[k]` is False (a function dfdx
  cannot trace), the user's Jacobian or SciPy's finite differences. For trust-constr, every
  one is a NonlinearConstraint given dfdx's Hessians (SciPy would approximate them)."""
  objects = isinstance(method, str) and method.lower() == "trust-constr"
  import dfdx
  import dfdx.numpy as dnp
  from dfdx._src.scipy_optimize import _CompiledAfter, scipy_optimize
  opt = scipy_optimize()
  out = []
  for k, c in enumerate(constraints):
    hess = None
    if c.matrix is not None:
      out.append(opt.LinearConstraint(c.matrix, c.lo, c.hi))
      continue
    if exact is None or exact[k]:
      fun = _CompiledAfter(lambda v, k=k: value_of(k, dnp.reshape(v, shape)))
      jac = _CompiledAfter(lambda v, k=k: dfdx.jacfwd(
          lambda w: value_of(k, dnp.reshape(w, shape)))(v))
      weighted = _CompiledAfter(lambda v, m, k=k: dfdx.hessian(
          lambda w: dnp.sum(m * value_of(k, dnp.reshape(w, shape))))(v))
      hess = lambda v, m, f=weighted: np.asarray(f(v, m), np.float64)  # noqa: E731
    else:
      fun = lambda v, k=k: value_of(k, np.reshape(v, shape))  # noqa: E731
      jac = None if c.jac is None else (lambda v, j=c.jac: j(np.reshape(v, shape)))
    as_np = lambda v, f=fun: np.asarray(f(v), np.float64)  # noqa: E731
    jac_np = None if jac is None else (lambda v, f=jac: np.asarray(f(v), np.float64))
    if c.kind is not None and not objects:
      out.append({"type": c.kind, "fun": as_np, **({} if jac_np is None else {"jac": jac_np})})
    else:
      out.append(opt.NonlinearConstraint(as_np, c.lo, c.hi,
                                         jac="2-point" if jac_np is None else jac_np,
                                         **({} if hess is None else {"hess": hess})))
  return out


def traceable(constraints, x0):
  """Per constraint: whether dfdx differentiates its function at x0 (NumPy values)."""
  import dfdx
  import dfdx.numpy as dnp
  shape, flat = np.shape(x0), np.ravel(x0)
  out = []
  for c in constraints:
    try:
      dfdx.jacfwd(lambda w, f=c.fun: dnp.ravel(f(dnp.reshape(w, shape))))(flat)
      out.append(True)
    except Exception:  # noqa: BLE001 (SciPy's run shows what is wrong with it)
      out.append(False)
  return out


# ---- the derivative ------------------------------------------------------------------------


def _rows(x, ops, cons_of, targets, bounds):
  """Every constraint as rows lo <= c(x) <= hi: the user's (values, Jacobian), then one row
  x_i per variable with a finite bound (c = x_i, gradient e_i). Returns (c, J, lo, hi, the
  number of the user's rows, the bounded variables)."""
  import dfdx
  import dfdx.numpy as dnp
  values, grads, los, his = [], [], [], []
  m = 0
  if cons_of is not None:
    values.append(cons_of(x, ops))
    grads.append(dfdx.jacfwd(lambda v: cons_of(v, ops))(x))
    los.append(targets[0])
    his.append(targets[1])
    m = targets[0].shape[0]
  bounded = np.zeros(0, np.intp)
  if bounds is not None:
    lb, ub = bounds
    bounded = np.flatnonzero(np.isfinite(lb) | np.isfinite(ub))
    values.append(x[bounded])
    grads.append(np.eye(x.shape[0])[bounded])
    los.append(lb[bounded])
    his.append(ub[bounded])
  return (dnp.concatenate(values), dnp.concatenate(grads, axis=0), np.concatenate(los),
          np.concatenate(his), m, bounded)


def _multipliers(j, g, active):
  """lam with g + J_A^T lam = 0 in the least-squares sense, of least norm (0 for the rows not
  active; shared among dependent rows)."""
  import dfdx.numpy as dnp
  ja = j * dnp.where(active, 1.0, 0.0)[:, None]
  return -(dnp.linalg.pinv(dnp.transpose(ja)) @ g)


def constrained_tangent(grad_of, cons_of, x, ops, live, dops, bounds, targets):
  """dx (flat) at the flat minimizer `x` for tangents `dops` of the operands at `live`:
  `grad_of(x, ops)` is the objective's flat gradient, `cons_of(x, ops)` the constraints'
  flat values (None without constraints), `bounds` (lb, ub) or None, `targets` the
  constraints' (lo, hi)."""
  import dfdx
  import dfdx.numpy as dnp
  n = x.shape[0]
  g = grad_of(x, ops)
  h = dfdx.jacfwd(lambda v: grad_of(v, ops))(x)
  c, j, lo, hi, m, bounded = _rows(x, ops, cons_of, targets, bounds)
  norms = dnp.sqrt(dnp.sum(j * j, axis=1))
  reach = 1 + dnp.max(dnp.abs(x))
  tol = 1e-4 * (1 + norms * reach)
  equal = lo == hi
  near_lo, near_hi = c - lo <= tol, hi - c <= tol
  lam = _multipliers(j, g, equal | near_lo | near_hi)
  # (negligible: below what the gradient's size and the curvature over x's range make)
  big = dnp.abs(lam) * norms > 1e-6 * (dnp.max(dnp.abs(g)) + dnp.max(dnp.abs(h)) * reach)
  active = equal | (near_lo & (lam < 0) & big) | (near_hi & (lam > 0) & big)
  lam = _multipliers(j, g, active)
  a = dnp.where(active, 1.0, 0.0)

  def lagrangian_grad(v, os):
    if not m:
      return grad_of(v, os)
    return grad_of(v, os) + dfdx.grad(lambda w: dnp.sum(lam[:m] * cons_of(w, os)))(v)
  if m:
    h = h + dfdx.jacfwd(lambda v: dfdx.grad(lambda w: dnp.sum(lam[:m] * cons_of(w, ops)))(v))(x)
  ja = j * a[:, None]
  system = dnp.block([[h, dnp.transpose(ja)], [ja, dnp.diag(1.0 - a)]])

  def residual(*vs):
    os = list(ops)
    for i, v in zip(live, vs):
      os[i] = v
    moved = [a[:m] * cons_of(x, os)] if m else []
    return dnp.concatenate([lagrangian_grad(x, os)] + moved
                           + [np.zeros(len(bounded))])  # (the bounds do not move)
  rhs = dfdx.jvp(residual, tuple(ops[i] for i in live), tuple(dops))[1]
  # (least squares, by the pseudo-inverse: dependent active rows, such as a bound and a
  # constraint along it, leave the multipliers' split open but not dx)
  return -(dnp.linalg.pinv(system) @ rhs)[:n]
