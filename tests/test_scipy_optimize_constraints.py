"""dfdx.scipy.optimize under bounds, constraints and robust losses: the solutions' derivatives
(the KKT conditions of what is active, dfdx/_src/scipy_constraints.py) against closed forms
differentiated by dfdx itself (to second order), against independent reduced problems and
finite differences of polished solutions, under jit and vmap, where the active set differs
between examples; and SciPy's runs given the constraints' exact Jacobians."""
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp

scipy_optimize = pytest.importorskip("scipy.optimize")
dso = pytest.importorskip("dfdx.scipy.optimize")

BOUNDED_METHODS = ("L-BFGS-B", "TNC", "SLSQP", "trust-constr")


def _clipped_minimum(c, method="L-BFGS-B"):
  # argmin sum((x - c)^2 + 0.1 x^4) over [0, 1]^3: each entry on its own, held at a bound
  # where its unconstrained minimum lies beyond it
  f = lambda x, c: dnp.sum((x - c) ** 2 + 0.1 * x ** 4)  # noqa: E731
  options = {"gtol": 1e-12, "xtol": 1e-14} if method == "trust-constr" else None
  return dso.minimize(f, np.full(np.shape(c), 0.5), args=(c,), bounds=[(0.0, 1.0)] * len(c),
                      method=method, tol=1e-13, options=options).x


@pytest.mark.parametrize("method", BOUNDED_METHODS)
def test_bounded_minimum_derivative_is_zero_where_held_and_implicit_elsewhere(method):
  c = np.array([-0.5, 0.3, 1.8])
  x = _clipped_minimum(c, method)
  assert x[0] == pytest.approx(0.0, abs=1e-6) and x[2] == pytest.approx(1.0, abs=1e-6)
  # inside: 2 (x - c) + 0.4 x^3 = 0, so dx/dc = 1 / (1 + 0.6 x^2)
  expected = np.diag([0.0, 1.0 / (1.0 + 0.6 * x[1] ** 2), 0.0])
  for jac in (dfdx.jacfwd, dfdx.jacrev, lambda f: dfdx.jit(dfdx.jacobian(f))):
    np.testing.assert_allclose(jac(lambda c: _clipped_minimum(c, method))(c), expected,
                               atol=1e-7)


def test_bounded_minimum_active_sets_differ_across_a_batch():
  cs = np.array([[-0.5, 0.3, 1.8], [0.4, 2.0, -1.0], [0.2, 0.5, 0.7]])
  jac = dfdx.jacobian(_clipped_minimum)
  expected = np.stack([jac(c) for c in cs])
  assert (expected[2].diagonal() > 0).all() and (abs(expected[1].diagonal()) < 1e-12)[1:].all()
  np.testing.assert_allclose(dfdx.vmap(jac)(cs), expected, atol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(jac))(cs), expected, atol=1e-12)


def test_bounded_minimum_of_a_coupled_objective_against_the_reduced_problem():
  # x_0 is held at its upper bound 0.5; the derivative of x_1 is that of the minimum over
  # x_1 alone with x_0 = 0.5 (no bounds: the unconstrained rule)
  def f(x, a):
    return (a[0] - x[0]) ** 2 + 10 * (x[1] - x[0] ** 2) ** 2 + a[1] * x[1] ** 4
  a = np.array([1.0, 0.3])
  bounded = lambda a: dso.minimize(  # noqa: E731
      f, np.zeros(2), args=(a,), bounds=[(None, 0.5), (-2, 2)], tol=1e-14).x
  reduced = lambda a: dso.minimize(  # noqa: E731
      lambda y, a: f(dnp.stack([0.5, y[0]]), a), np.zeros(1), args=(a,), tol=1e-14).x
  assert bounded(a)[0] == 0.5
  j = dfdx.jacobian(bounded)(a)
  np.testing.assert_allclose(j[0], 0.0, atol=1e-12)
  np.testing.assert_allclose(j[1], dfdx.jacobian(reduced)(a)[0], rtol=1e-8, atol=1e-14)
  # and its second derivatives
  h = dfdx.hessian(lambda a: bounded(a)[1])(a)
  np.testing.assert_allclose(h, dfdx.hessian(lambda a: reduced(a)[0])(a), rtol=1e-6,
                             atol=1e-12)


def _projection(c, s, method="SLSQP"):
  # the point of the plane sum(x) = s nearest to c: c - (sum(c) - s) / n
  return dso.minimize(lambda x, c: dnp.sum((x - c) ** 2), np.zeros(3), args=(c,),
                      method=method, constraints={"type": "eq", "fun": lambda x: dnp.sum(x) - s},
                      tol=1e-14).x


def test_equality_constrained_minimum_against_its_closed_form():
  c, s = np.array([0.3, 1.0, -2.0]), 1.0
  closed = lambda c, s: c - (dnp.sum(c) - s) / 3  # noqa: E731
  np.testing.assert_allclose(_projection(c, s), closed(c, s), atol=1e-7)
  for jac in (dfdx.jacfwd, dfdx.jacrev, lambda f, **kw: dfdx.jit(dfdx.jacobian(f, **kw))):
    np.testing.assert_allclose(jac(_projection)(c, s), np.eye(3) - 1 / 3, atol=1e-10)
    # s is closed over by the constraint's function
    np.testing.assert_allclose(jac(_projection, argnums=1)(c, s), np.full(3, 1 / 3),
                               atol=1e-10)


def _sphere_point(c, r, constraint="dict"):
  # the point of the sphere |x| = r nearest to c (plus a quartic term in x_0), and x_1 >= 0.2
  f = lambda x: dnp.sum((x - c) ** 2) + 0.1 * x[0] ** 4  # noqa: E731
  sphere = {"type": "eq", "fun": lambda x: dnp.sum(x ** 2) - r ** 2}
  floor = ({"type": "ineq", "fun": lambda x: x[1] - 0.2} if constraint == "dict" else
           scipy_optimize.NonlinearConstraint(lambda x: x[1], 0.2, np.inf))
  return dso.minimize(f, np.ones(3), constraints=[sphere, floor], tol=1e-14).x


def test_nonlinear_constraints_to_second_order_against_the_reduced_problem():
  # where x_1 >= 0.2 is active the sphere's point has x_1 = 0.2: the reduced problem is the
  # circle x_0^2 + x_2^2 = r^2 - 0.04 in (x_0, x_2), with x_0 = rho cos t, x_2 = rho sin t
  def reduced(c, r):
    rho = dnp.sqrt(r ** 2 - 0.04)
    f = lambda t: (rho * dnp.cos(t[0]) - c[0]) ** 2 + (rho * dnp.sin(t[0]) - c[2]) ** 2 + \
        0.1 * (rho * dnp.cos(t[0])) ** 4  # noqa: E731
    t = dso.minimize(f, np.array([np.arctan2(-2.0, 0.3)]), tol=1e-14).x[0]
    return dnp.stack([rho * dnp.cos(t), 0.2 + 0 * rho, rho * dnp.sin(t)])
  c, r = np.array([0.3, -1.0, -2.0]), 2.0
  for kind in ("dict", "object"):
    point = lambda c, r: _sphere_point(c, r, kind)  # noqa: E731
    np.testing.assert_allclose(point(c, r), reduced(c, r), atol=1e-7)
    for argnums in (0, 1):
      np.testing.assert_allclose(dfdx.jacobian(point, argnums=argnums)(c, r),
                                 dfdx.jacobian(reduced, argnums=argnums)(c, r), atol=1e-6)
    loss = lambda f: (lambda c: dnp.sum(f(c, r) ** 3))  # noqa: E731
    np.testing.assert_allclose(dfdx.hessian(loss(point))(c), dfdx.hessian(loss(reduced))(c),
                               atol=1e-5)
  # where it is not active: the sphere alone, x = r c / |c| up to the quartic term
  c_up = np.array([0.3, 1.0, -2.0])
  x = _sphere_point(c_up, r)
  assert x[1] > 0.5
  # it stays on the sphere: x . dx/dc = 0 and x . dx/dr = r
  np.testing.assert_allclose(x @ dfdx.jacobian(_sphere_point)(c_up, r), 0.0, atol=1e-8)
  assert x @ dfdx.jacobian(_sphere_point, argnums=1)(c_up, r) == pytest.approx(r)


def test_inequality_active_or_not_under_jit_and_vmap():
  def nearest(c):  # the point of x_0 + x_1 <= 1 nearest to c
    return dso.minimize(lambda x: dnp.sum((x - c) ** 2), np.zeros(2), tol=1e-14,
                        constraints=[{"type": "ineq", "fun": lambda x: 1 - x[0] - x[1]}]).x
  # the second minimum lies just inside its constraint (within the tolerance of candidates),
  # with a zero multiplier: not active
  cs = np.array([[1.0, 2.0], [0.1, 0.2], [0.5, 0.5 - 1e-6]])
  expected = np.stack([np.eye(2) - 0.5, np.eye(2), np.eye(2)])
  jac = dfdx.jacobian(nearest)
  for run in (lambda: np.stack([jac(c) for c in cs]), lambda: dfdx.vmap(jac)(cs),
              lambda: dfdx.jit(dfdx.vmap(jac))(cs)):
    np.testing.assert_allclose(run(), expected, atol=1e-9)


def test_linear_and_range_constraints_with_trust_constr():
  def nearest(c):  # sum(x) <= 1 as a LinearConstraint; trust-constr stops just inside it
    return dso.minimize(lambda x: dnp.sum((x - c) ** 2), np.zeros(3), method="trust-constr",
                        constraints=scipy_optimize.LinearConstraint(np.ones((1, 3)), -np.inf,
                                                                    1.0),
                        options={"gtol": 1e-12, "xtol": 1e-14}).x
  c = np.array([-0.3, 1.0, 2.0])
  np.testing.assert_allclose(nearest(c), c - (c.sum() - 1) / 3, atol=1e-4)
  np.testing.assert_allclose(dfdx.jacobian(nearest)(c), np.eye(3) - 1 / 3, atol=1e-8)

  def banded(c):  # 0.5 <= x_0 * x_1 <= 2: the upper side holds
    return dso.minimize(lambda x: dnp.sum((x - c) ** 2), np.ones(2), tol=1e-14,
                        constraints=scipy_optimize.NonlinearConstraint(
                            lambda x: x[0] * x[1], 0.5, 2.0)).x
  c = np.array([2.0, 3.0])
  x = banded(c)
  assert x[0] * x[1] == pytest.approx(2.0)
  j = dfdx.jacobian(banded)(c)
  np.testing.assert_allclose(j, j.T, atol=1e-8)  # (a nearest point's: symmetric)
  np.testing.assert_allclose(np.array([x[1], x[0]]) @ j, 0.0, atol=1e-8)  # (along the curve)


def test_dependent_active_constraints_and_bounds():
  # the same plane twice; a bound along an active constraint (x_0 <= 0.5 with x_0 <= 0.5 as
  # a constraint): the multipliers' split is open, the derivative is not
  twice = [{"type": "eq", "fun": lambda x: dnp.sum(x) - 1}] * 2
  plane = lambda c: dso.minimize(lambda x: dnp.sum((x - c) ** 2), np.zeros(2),  # noqa: E731
                                 constraints=twice, tol=1e-14).x
  np.testing.assert_allclose(dfdx.jacobian(plane)(np.ones(2)), np.eye(2) - 0.5, atol=1e-10)
  along = lambda c: dso.minimize(  # noqa: E731
      lambda x: dnp.sum((x - c) ** 2), np.zeros(2), bounds=[(None, 0.5), (None, None)],
      constraints={"type": "ineq", "fun": lambda x: 0.5 - x[0]}, tol=1e-14).x
  np.testing.assert_allclose(dfdx.jacobian(along)(np.array([1.0, 2.0])), [[0, 0], [0, 1]],
                             atol=1e-10)
  # the simplex: bounds and a constraint active together (x = (0.7, 0.3, 0), c_2 held at 0)
  simplex = lambda c: dso.minimize(  # noqa: E731
      lambda x: dnp.sum((x - c) ** 2), np.full(3, 1 / 3), bounds=[(0.0, None)] * 3,
      constraints={"type": "eq", "fun": lambda x: dnp.sum(x) - 1.0}, tol=1e-14).x
  c = np.array([0.5, 0.1, -0.3])
  np.testing.assert_allclose(simplex(c), [0.7, 0.3, 0.0], atol=1e-8)
  np.testing.assert_allclose(dfdx.jacobian(simplex)(c),
                             [[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-9)
  # a vertex of a bound and a constraint with positive multipliers: it stays put
  vertex = lambda c: dso.minimize(  # noqa: E731
      lambda x: dnp.sum((x - c) ** 2), np.zeros(2), bounds=[(0.0, None), (None, None)],
      constraints={"type": "ineq", "fun": lambda x: 1 - x[0] - x[1]}, tol=1e-14).x
  np.testing.assert_allclose(dfdx.jacobian(vertex)(np.array([1.0, 3.0])), 0.0, atol=1e-9)
  # a clearly active constraint of an objective in small units (its multiplier 8e-7)
  small = lambda t: dso.minimize(lambda x: 1e-4 * (x[0] - t) ** 2, np.zeros(1),  # noqa: E731
                                 constraints={"type": "ineq", "fun": lambda x: 1.0 - x[0]},
                                 tol=1e-16).x[0]
  assert abs(dfdx.grad(small)(1.004)) < 1e-12


def test_methods_bounds_of_x0s_shape_and_trust_constr_results():
  c = np.array([0.3, 1.0, -2.0])
  # a method that cannot take constraints runs without them (SciPy warns): so does the
  # derivative, of the point returned
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    free = lambda c: dso.minimize(  # noqa: E731
        lambda x: dnp.sum((x - c) ** 2), np.zeros(3), method="L-BFGS-B", tol=1e-12,
        constraints={"type": "eq", "fun": lambda x: dnp.sum(x) - 1}).x
    np.testing.assert_allclose(free(c), c, atol=1e-6)
    np.testing.assert_allclose(dfdx.jacobian(free)(c), np.eye(3), atol=1e-8)
  # bounds of x0's shape
  target = np.array([[-0.5, 0.3, 1.8], [0.4, 2.0, 0.7]])
  lb, ub = np.zeros((2, 3)), np.ones((2, 3))
  box = lambda t: dso.minimize(lambda x: dnp.sum((x - t) ** 2), np.full((2, 3), 0.5),  # noqa: E731
                               bounds=scipy_optimize.Bounds(lb, ub), tol=1e-12).x
  fit = lambda t: dso.least_squares(lambda x, t: x - t, np.full((2, 3), 0.5), args=(t,),  # noqa: E731
                                    bounds=(lb, ub)).x
  inside = ((target > 0) & (target < 1)).ravel().astype(float)
  for f in (box, fit):
    np.testing.assert_allclose(f(target), np.clip(target, 0, 1), atol=1e-6)
    np.testing.assert_allclose(dfdx.jacobian(f)(target).reshape(6, 6), np.diag(inside),
                               atol=1e-8)
  # trust-constr with bounds and a constraint: its result's jac (a list) is left as it is
  con = {"type": "ineq", "fun": lambda x: 1 - x[0] - x[1]}
  result = dso.minimize(lambda x: dnp.sum((x - np.array([1.0, 1.5])) ** 2), np.zeros(2),
                        method="trust-constr", bounds=[(-5, 0.8), (-5, 0.8)], constraints=con)
  np.testing.assert_allclose(result.x, [0.25, 0.75], atol=1e-3)
  # a bound or f_scale traced alone: refused by name
  with pytest.raises(NotImplementedError, match="bounds must be NumPy values"):
    dfdx.grad(lambda b: dso.minimize(lambda x: dnp.sum((x - c) ** 2), np.zeros(3),
                                     bounds=[(b, None)] * 3).x[0])(0.5)
  with pytest.raises(NotImplementedError, match="f_scale must be NumPy values"):
    dfdx.grad(lambda s: dso.least_squares(lambda x: x - c, np.zeros(3), loss="huber",
                                          f_scale=s).x[0])(0.5)


def test_constraint_errors():
  with pytest.raises(ValueError, match="'type'"):
    dso.minimize(lambda x: dnp.sum(x ** 2), np.ones(2), constraints=[{"fun": lambda x: x[0]}])
  with pytest.raises(NotImplementedError, match="constraint bounds must be NumPy values"):
    dfdx.grad(lambda r: dso.minimize(
        lambda x: dnp.sum(x ** 2), np.ones(2), constraints=scipy_optimize.NonlinearConstraint(
            lambda x: x[0], r, np.inf)).x[0])(0.5)


def test_constraints_on_numpy_values_get_x_in_x0s_shape_and_exact_jacobians():
  # x0 of shape (2, 2): the constraint sees that shape, as fun does
  con = {"type": "eq", "fun": lambda x: x[0, 0] + x[1, 1] - 1.0}
  result = dso.minimize(lambda x: dnp.sum(x ** 2), np.ones((2, 2)), constraints=con)
  np.testing.assert_allclose(result.x, [[0.5, 0.0], [0.0, 0.5]], atol=1e-6)
  # a constraint written with NumPy alone still runs (SciPy's differences for its Jacobian)
  numpy_only = {"type": "ineq", "fun": lambda x: np.asarray(1.0 - x[0] - x[1])}
  ours = dso.minimize(lambda x: dnp.sum((x - 2) ** 2), np.zeros(2), constraints=numpy_only)
  theirs = scipy_optimize.minimize(lambda x: np.sum((x - 2) ** 2), np.zeros(2),
                                   constraints=numpy_only)
  np.testing.assert_allclose(ours.x, theirs.x, atol=1e-6)
  # trust-constr gets the constraints' Hessians too (SciPy's approximation of a linear
  # one's warns)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    result = dso.minimize(lambda x: dnp.sum((x - 2) ** 2), np.zeros(2), method="trust-constr",
                          constraints={"type": "ineq", "fun": lambda x: 1 - x[0] - x[1]})
  np.testing.assert_allclose(result.x, [0.5, 0.5], atol=1e-3)  # (its barrier: just inside)
  # dfdx's Jacobian is what SciPy gets: exact, where differences are not
  calls = []

  def spy(x):
    calls.append(1)
    return dnp.sum(dnp.sin(x)) - 0.5
  dso.minimize(lambda x: dnp.sum((x - 1) ** 2), np.zeros(3),
               constraints={"type": "eq", "fun": spy})
  n_ours = len(calls)
  calls.clear()
  scipy_optimize.minimize(lambda x: np.sum((x - 1) ** 2), np.zeros(3),
                          constraints={"type": "eq", "fun": lambda x: float(spy(x))})
  assert n_ours < len(calls)  # (no calls for differences)


# ---- least squares -----------------------------------------------------------------------

T = np.linspace(0.0, 1.0, 20)
DATA = 2.0 * np.exp(-1.3 * T) + 0.05 * np.sin(9 * T)
DATA[3] += 1.0  # (an outlier: the robust losses weigh it less)


def _decay(p, y):
  return p[0] * dnp.exp(-p[1] * T) - y


def _robust_fit(y, loss, bounds=(-np.inf, np.inf)):
  return dso.least_squares(_decay, np.array([1.0, 1.0]), args=(y,), loss=loss, f_scale=0.1,
                           bounds=bounds, xtol=1e-15, ftol=1e-15, gtol=1e-15).x


@pytest.mark.parametrize("loss", ["linear", "soft_l1", "huber", "cauchy", "arctan"])
def test_robust_losses_values_cost_and_derivatives(loss):
  ours = dso.least_squares(_decay, np.ones(2), args=(DATA,), loss=loss, f_scale=0.1)
  theirs = scipy_optimize.least_squares(lambda p: p[0] * np.exp(-p[1] * T) - DATA, np.ones(2),
                                        loss=loss, f_scale=0.1)
  np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-6)
  traced = dfdx.jit(lambda y: dso.least_squares(_decay, np.ones(2), args=(y,), loss=loss,
                                                f_scale=0.1).cost)(DATA)
  assert traced == pytest.approx(theirs.cost, rel=1e-9)  # (SciPy's cost: 0.5 C^2 sum rho)

  # the derivative: -H^-1 d(grad)/dy of the robust cost, against central differences of
  # solutions polished by Newton's method on the cost's gradient (the solver's own stopping
  # error would swamp them)
  rho = {"linear": lambda z: z, "soft_l1": lambda z: 2 * (dnp.sqrt(1 + z) - 1),
         "huber": lambda z: dnp.where(z <= 1, z, 2 * dnp.sqrt(dnp.maximum(z, 1.0)) - 1),
         "cauchy": dnp.log1p, "arctan": dnp.arctan}[loss]
  cost = lambda p, y: 0.005 * dnp.sum(rho((_decay(p, y) / 0.1) ** 2))  # noqa: E731

  def polished(y):
    p = _robust_fit(y, loss)
    for _ in range(3):
      p = p - np.linalg.solve(dfdx.hessian(cost)(p, y), dfdx.grad(cost)(p, y))
    return p
  h = 1e-5
  differences = np.stack([(polished(DATA + h * e) - polished(DATA - h * e)) / (2 * h)
                          for e in np.eye(len(DATA))], 1)
  for jac in (dfdx.jacfwd, dfdx.jacrev):
    np.testing.assert_allclose(jac(lambda y: _robust_fit(y, loss))(DATA), differences,
                               atol=1e-7)


def test_least_squares_and_curve_fit_with_an_active_bound():
  # the rate is held at its upper bound 1.0; the amplitude's derivative is that of the fit
  # of the amplitude alone with the rate fixed there (linear in y: a pseudo-inverse)
  bounds = ([0.0, 0.0], [5.0, 1.0])
  basis = np.exp(-1.0 * T)
  expected = np.stack([basis / (basis @ basis), np.zeros_like(T)])
  for fit in (lambda y: _robust_fit(y, "linear", bounds),
              lambda y: dso.curve_fit(lambda t, a, k: a * dnp.exp(-k * t), T, y,
                                      bounds=bounds)[0]):
    assert fit(DATA)[1] == pytest.approx(1.0)
    for jac in (dfdx.jacfwd, dfdx.jacrev, lambda f: dfdx.jit(dfdx.jacobian(f))):
      np.testing.assert_allclose(jac(fit)(DATA), expected, atol=1e-9)
