"""dfdx.scipy.optimize: SciPy's minimize and root with dfdx's derivatives (every method's
use of them, shapes, SciPy's conventions), and their solutions differentiated implicitly
against closed forms and finite differences, under jit and vmap."""
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads

scipy_optimize = pytest.importorskip("scipy.optimize")
dso = pytest.importorskip("dfdx.scipy.optimize")


def rosen(x):
  return dnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


@pytest.mark.parametrize("method", ["BFGS", "CG", "L-BFGS-B", "Newton-CG", "trust-ncg",
                                    "trust-krylov", "trust-exact", "dogleg", "trust-constr",
                                    "Nelder-Mead", "Powell", "SLSQP", "TNC"])
def test_minimize_every_method_with_dfdx_derivatives(method):
  x0 = np.array([-1.2, 1.0, 0.5])
  options = {"maxiter": 20000, "maxfev": 20000} if method in ("Nelder-Mead", "Powell") else \
      {"maxfun": 10000} if method == "TNC" else None
  start = x0 if method != "dogleg" else np.array([1.1, 1.2, 1.4])  # (positive definite path)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # (no "method does not use the gradient" warning)
    warnings.filterwarnings("ignore", message=".*delta_grad == 0.0.*")  # (trust-constr's own)
    result = dso.minimize(rosen, start, method=method, tol=1e-10, options=options)
  tol = 1e-3 if method in ("Nelder-Mead", "Powell", "TNC", "SLSQP") else 1e-5
  np.testing.assert_allclose(result.x, np.ones(3), atol=tol)
  if method not in ("Nelder-Mead", "Powell"):  # (gradient-based: fewer evaluations than
    assert result.nfev < 2000                   #  finite differences would take)


def test_minimize_shapes_and_scipy_conventions():
  # x0 of any shape: fun gets x of that shape, and the result is reshaped back
  c = np.arange(6.0).reshape(2, 3)
  result = dso.minimize(lambda x, c: dnp.sum((x - c) ** 2 + (x - c) ** 4), np.zeros((2, 3)),
                        args=(c,), tol=1e-12)
  assert result.x.shape == (2, 3) and result.jac.shape == (2, 3)
  np.testing.assert_allclose(result.x, c, atol=1e-6)
  # jac=True: fun gives (value, gradient), as in SciPy
  both = lambda x: (dnp.sum(x ** 2) + x[0], 2 * x + np.array([1.0, 0.0]))  # noqa: E731
  np.testing.assert_allclose(dso.minimize(both, np.ones(2), jac=True).x, [-0.5, 0.0],
                             atol=1e-7)
  # a user's jac callable and a finite-difference scheme are passed to SciPy
  np.testing.assert_allclose(dso.minimize(lambda x: dnp.sum((x - 3) ** 2), np.zeros(2),
                                          jac=lambda x: 2 * (x - 3)).x, [3.0, 3.0], atol=1e-6)
  np.testing.assert_allclose(dso.minimize(lambda x: dnp.sum((x - 3) ** 2), np.zeros(2),
                                          jac="3-point").x, [3.0, 3.0], atol=1e-5)
  # bounds and constraints (NumPy values)
  bounded = dso.minimize(rosen, np.zeros(2), bounds=[(None, 0.5), (None, None)])
  np.testing.assert_allclose(bounded.x, [0.5, 0.25], atol=1e-5)
  constrained = dso.minimize(lambda x: dnp.sum(x ** 2), np.ones(2),
                             constraints=[{"type": "eq", "fun": lambda x: x[0] + x[1] - 1}])
  np.testing.assert_allclose(constrained.x, [0.5, 0.5], atol=1e-6)


def _quadratic_minimum(b, a):
  f = lambda x, b: 0.5 * x @ (a @ x) - b @ x + 0.1 * dnp.sum(x ** 4)  # noqa: E731
  return dso.minimize(f, np.zeros(3), args=(b,), method="trust-exact", tol=1e-13).x


def test_minimizer_derivative_closed_form_and_finite_differences():
  rng = np.random.default_rng(0)
  m = rng.normal(size=(3, 3))
  a = m @ m.T + 3 * np.eye(3)
  b = rng.normal(size=3)
  x = _quadratic_minimum(b, a)
  # grad_x f = a x - b + 0.4 x^3 = 0: dx/db = (a + 1.2 diag(x^2))^-1
  expected = np.linalg.inv(a + 1.2 * np.diag(x ** 2))
  for jac in (dfdx.jacfwd, dfdx.jacrev):
    np.testing.assert_allclose(jac(_quadratic_minimum)(b, a), expected, rtol=1e-8, atol=1e-10)
  np.testing.assert_allclose(dfdx.jit(dfdx.jacrev(_quadratic_minimum))(b, a), expected,
                             rtol=1e-8, atol=1e-10)
  bs = np.stack([b, 2 * b])
  np.testing.assert_allclose(dfdx.vmap(_quadratic_minimum, in_axes=(0, None))(bs, a),
                             np.stack([x, _quadratic_minimum(2 * b, a)]), rtol=1e-10)
  check_grads(lambda b: _quadratic_minimum(b, a), (b,), order=2, modes=("fwd", "rev"),
              atol=1e-6, rtol=1e-5)
  # the result carries the value and the gradient at the minimum
  result = dfdx.jit(lambda b: dso.minimize(
      lambda x, b: dnp.sum((x - b) ** 2), np.zeros(3), args=(b,)))(b)
  np.testing.assert_allclose(result.x, b, atol=1e-7)
  assert abs(result.fun) < 1e-12 and np.allclose(result.jac, 0, atol=1e-6)


def test_minimizer_derivative_with_jac_true_and_fixed_arguments():
  # fun gives (value, gradient); an integer argument is held fixed
  def both(x, c, p):
    return dnp.sum((x - c) ** p), p * (x - c) ** (p - 1)
  f = lambda c: dso.minimize(both, np.zeros(2), args=(c, 2), jac=True, tol=1e-12).x  # noqa: E731
  np.testing.assert_allclose(dfdx.jacobian(f)(np.array([1.0, -2.0])), np.eye(2), atol=1e-8)


def test_minimize_errors_and_warnings():
  with pytest.raises(NotImplementedError, match="bounds must be NumPy values"):
    dfdx.grad(lambda c: dso.minimize(lambda x, c: dnp.sum((x - c) ** 2), np.zeros(1),
                                     args=(c,), bounds=[(0, c)]).x[0])(0.5)
  with pytest.raises(TypeError, match="x0 is complex"):
    dso.minimize(lambda x: dnp.sum(dnp.abs(x) ** 2), np.ones(2, complex))
  # a minimum that is a line, x_0 + x_1 = c: the Hessian is singular, and no derivative
  line = lambda c: dso.minimize(lambda x, c: (x[0] + x[1] - c) ** 2, np.zeros(2),  # noqa: E731
                                args=(c,)).x
  for run in (lambda: dfdx.jacobian(line)(1.0), lambda: dfdx.jit(dfdx.jacobian(line))(1.0)):
    with pytest.raises(np.linalg.LinAlgError, match="the Hessian at the minimum is singular"):
      run()
  # a solver that gives up: warned, under transformations
  with pytest.warns(RuntimeWarning, match="the solver reports no success"):
    dfdx.grad(lambda c: dso.minimize(lambda x, c: rosen(x) * c, np.zeros(2), args=(c,),
                                     options={"maxiter": 2}).x[0])(1.0)
  # the start is traced: the minimum does not depend on it
  g = dfdx.grad(lambda s: dso.minimize(lambda x: dnp.sum((x - 2.0) ** 2), s * np.ones(2)).x[0])
  assert g(0.5) == 0.0


def test_root_values_methods_and_derivatives():
  def system(x, a):
    return dnp.stack([x[0] ** 3 + x[1] - a[0], x[1] ** 3 - x[0] - a[1]])
  a = np.array([3.0, -1.0])
  for method in ("hybr", "lm", "broyden2", "krylov", "df-sane"):
    result = dso.root(system, np.array([1.0, 1.0]), args=(a,), method=method, tol=1e-12)
    np.testing.assert_allclose(system(result.x, a), 0.0, atol=1e-8)
  solve = lambda a: dso.root(system, np.ones(2), args=(a,), tol=1e-13).x  # noqa: E731
  x = solve(a)
  jx = np.array([[3 * x[0] ** 2, 1.0], [-1.0, 3 * x[1] ** 2]])
  expected = np.linalg.inv(jx)  # (d system / d a = -I)
  np.testing.assert_allclose(dfdx.jacfwd(solve)(a), expected, rtol=1e-9)
  np.testing.assert_allclose(dfdx.jacrev(solve)(a), expected, rtol=1e-9)
  np.testing.assert_allclose(dfdx.jit(dfdx.jacrev(solve))(a), expected, rtol=1e-9)
  np.testing.assert_allclose(dfdx.vmap(solve)(np.stack([a, 2 * a]))[0], x, rtol=1e-10)
  check_grads(solve, (a,), order=2, atol=1e-6, rtol=1e-5)
  # x0 of another shape, jac=True
  both = lambda x: (x ** 2 - np.array([[4.0], [9.0]]), np.diag(2 * x.ravel()))  # noqa: E731
  result = dso.root(both, np.ones((2, 1)), jac=True)
  assert result.x.shape == (2, 1)
  np.testing.assert_allclose(result.x, [[2.0], [3.0]], rtol=1e-10)


def test_solutions_differentiated_in_values_fun_closes_over():
  # no traced args: the traced value is closed over (x + x^3 = c, x^3 = c)
  def minimum(c):
    return dso.minimize(lambda x: 0.5 * dnp.sum(x ** 2) + 0.25 * dnp.sum(x ** 4) - dnp.sum(x * c),
                        np.zeros(2), method="trust-exact", tol=1e-13).x

  def cube_root(c):
    return dso.root(lambda x: x ** 3 - c, np.ones(2), tol=1e-13).x
  c = np.array([0.5, 2.0])
  x = minimum(c)
  for jac in (dfdx.jacfwd, dfdx.jacrev, lambda f: dfdx.jit(dfdx.jacrev(f))):
    np.testing.assert_allclose(jac(minimum)(c), np.diag(1 / (1 + 3 * x ** 2)), atol=1e-8)
    np.testing.assert_allclose(jac(cube_root)(c), np.diag(c ** (-2 / 3) / 3), atol=1e-8)
  np.testing.assert_allclose(dfdx.vmap(minimum)(np.stack([c, c])), np.stack([x, x]),
                             atol=1e-10)
  np.testing.assert_allclose(dfdx.jit(cube_root)(c), np.cbrt(c), atol=1e-10)
  # bounds: the derivative of the bounded minimum, clip(c, 0, 1)
  bounded = dfdx.grad(lambda c: dso.minimize(lambda x: dnp.sum((x - c) ** 2), np.zeros(1),
                                             bounds=[(0, 1)]).x[0])
  assert bounded(0.5) == pytest.approx(1.0) and abs(bounded(1.5)) < 1e-12
  # nothing traced closed over under a transformation: SciPy's full result
  result = dfdx.grad(lambda c: c * dso.minimize(lambda x: dnp.sum((x - 1.0) ** 2),
                                                np.zeros(1)).nit)(1.0)
  assert result > 0


def test_user_derivative_callables_get_the_users_args_under_transformations():
  # args a dict with an integer leaf: the user's jac, hess, hessp get args as given
  seen = []

  def grad_(x, p):
    seen.append(type(p))
    return (1 + p["n"] * 0) * (np.asarray(x) + np.asarray(x) ** 3 - np.asarray(p["c"]))
  hess = lambda x, p: np.diag(1 + 3 * np.asarray(x) ** 2 + 0 * p["n"])  # noqa: E731
  hessp = lambda x, v, p: (1 + 3 * np.asarray(x) ** 2 + 0 * p["n"]) * v  # noqa: E731

  def f(x, p):
    return 0.5 * dnp.sum(x ** 2) + 0.25 * dnp.sum(x ** 4) - dnp.sum(x * p["c"])
  c = np.array([0.5, 2.0])
  for kw in ({"method": "BFGS", "jac": grad_}, {"method": "trust-exact", "hess": hess},
             {"method": "Newton-CG", "hessp": hessp}):
    def solve(c, kw=kw):
      return dso.minimize(f, np.zeros(2), args=({"c": c, "n": 3},), tol=1e-12, **kw).x
    x = solve(c)
    np.testing.assert_allclose(dfdx.jacrev(solve)(c), np.diag(1 / (1 + 3 * x ** 2)), atol=1e-7)
  assert seen and all(t is dict for t in seen)  # (the user's jac is the solver's)


def test_solver_failure_warns_for_every_method():
  # trust-constr's result.jac is the constraints' Jacobian: the gradient is dfdx's
  rosen_c = lambda x, c: c * rosen(x)  # noqa: E731
  with pytest.warns(RuntimeWarning, match="the solver reports no success"):
    dfdx.grad(lambda c: dso.minimize(rosen_c, np.zeros(2), args=(c,), method="trust-constr",
                                     options={"maxiter": 3}).x[0])(1.0)


def test_objective_must_be_scalar_and_callback_sees_x0s_shape():
  for run in (lambda: dso.minimize(lambda x: x ** 2, np.ones(2)),
              lambda: dso.minimize(lambda x: x ** 2, np.ones(2), method="Nelder-Mead"),
              lambda: dfdx.grad(lambda c: dso.minimize(lambda x, c: (x - c) ** 2, np.ones(2),
                                                       args=(c,)).x[0])(1.0)):
    with pytest.raises(ValueError, match="minimize: fun must return a scalar"):
      run()
  # a one-element array is a scalar to SciPy
  np.testing.assert_allclose(dso.minimize(lambda x: dnp.sum((x - 2) ** 2, keepdims=True),
                                          np.zeros(2)).x, [2.0, 2.0], atol=1e-7)
  shapes = []
  f = lambda x: dnp.sum((x - 1) ** 2)  # noqa: E731
  dso.minimize(f, np.zeros((2, 3)), callback=lambda xk: shapes.append(np.shape(xk)))
  dso.minimize(f, np.zeros((2, 3)), method="trust-constr",
               callback=lambda xk, state: shapes.append(np.shape(xk)))
  dso.minimize(f, np.zeros((2, 3)),
               callback=lambda intermediate_result: shapes.append(intermediate_result.x.shape))
  dso.minimize(f, np.zeros((2, 3)), method="TNC", callback=lambda xk: shapes.append(xk.shape))
  assert shapes and set(shapes) == {(2, 3)}


def test_root_residual_of_another_shape_raises():
  for run in (lambda: dso.root(lambda x: dnp.reshape(x ** 2 - 4, (2, 1)), np.ones(2)),
              lambda: dfdx.grad(lambda a: dso.root(lambda x, a: dnp.stack([x[0] - a, x[1], x[0]]),
                                                   np.ones(2), args=(a,)).x[0])(1.0)):
    with pytest.raises(ValueError, match="root: fun returned shape"):
      run()
  # lm is a least-squares method: more residuals than unknowns are SciPy's
  np.testing.assert_allclose(dso.root(lambda x: dnp.stack([x[0] - 1, x[1], x[0] - 1]),
                                      np.ones(2), method="lm").x, [1.0, 0.0], atol=1e-8)


def test_least_squares_and_curve_fit_values_against_scipy():
  x = np.linspace(0.0, 1.0, 30)
  rng = np.random.default_rng(0)
  y = 2.0 * np.exp(0.5 * x) + 0.01 * rng.normal(size=30)
  f = lambda x, a, b: a * dnp.exp(b * x)  # noqa: E731
  f_np = lambda x, a, b: a * np.exp(b * x)  # noqa: E731
  for kw in ({}, {"sigma": np.full(30, 0.01), "absolute_sigma": True},
             {"bounds": ([0.0, 0.0], [10.0, 1.0])}):
    popt, pcov = dso.curve_fit(f, x, y, **kw)
    ref_popt, ref_pcov = scipy_optimize.curve_fit(f_np, x, y, **kw)
    np.testing.assert_allclose(popt, ref_popt, rtol=1e-7)
    np.testing.assert_allclose(pcov, ref_pcov, rtol=1e-4)  # (SciPy's Jacobian: differences)
  # least_squares: residuals of any shape, x0 of any shape, keyword arguments, options
  result = dso.least_squares(lambda p, t, scale=1.0: (p[0, 0] * t + p[0, 1] - scale * y)[None],
                             np.zeros((1, 2)), args=(x,), kwargs={"scale": 2.0}, xtol=1e-14)
  assert result.x.shape == (1, 2)
  ref = np.polyfit(x, 2.0 * y, 1)
  np.testing.assert_allclose(result.x[0], ref, rtol=1e-9)
  with pytest.raises(ValueError, match="cannot tell how many parameters"):
    dso.curve_fit(lambda *a: a[0], x, y)


def test_fits_differentiated_in_the_data():
  x = np.linspace(0.0, 1.0, 12)
  y = 1.5 + 0.7 * x + 0.05 * np.sin(7 * x)
  line = lambda x, a, b: a + b * x  # noqa: E731
  a = np.stack([np.ones_like(x), x], axis=1)
  fit = lambda y: dso.curve_fit(line, x, y)[0]  # noqa: E731
  for jac in (dfdx.jacfwd, dfdx.jacrev, lambda g: dfdx.jit(dfdx.jacobian(g))):
    np.testing.assert_allclose(jac(fit)(y), np.linalg.pinv(a), atol=1e-12)  # (linear in y)
  # a nonlinear model: finite differences of the whole fit, to second order
  model = lambda x, a, b: a * dnp.exp(b * x)  # noqa: E731
  data = 2.0 * np.exp(0.5 * x) + 0.02 * np.cos(5 * x)
  nonlinear = lambda y: dso.curve_fit(model, x, y, xtol=1e-15, ftol=1e-15)[0]  # noqa: E731
  check_grads(nonlinear, (data,), order=2, atol=1e-6, rtol=1e-5)
  # pcov too; and a fit under vmap
  check_grads(lambda y: dso.curve_fit(model, x, y, xtol=1e-15, ftol=1e-15)[1], (data,),
              order=1, atol=1e-8, rtol=1e-4)
  batch = np.stack([data, 1.1 * data])
  np.testing.assert_allclose(dfdx.vmap(nonlinear)(batch)[1], nonlinear(1.1 * data), rtol=1e-10)
  with pytest.raises(NotImplementedError, match="supports the losses"):
    dfdx.grad(lambda y: dso.least_squares(lambda p, y: p * x - y, np.ones(1), args=(y,),
                                          loss=lambda z: np.stack([z, 1 + 0 * z, 0 * z])
                                          ).x[0])(data)


def test_least_squares_callable_jac_gets_args_and_kwargs():
  t = np.linspace(0.0, 1.0, 15)
  y = 2.0 * np.exp(-1.3 * t) + 0.01 * np.sin(9 * t)
  fun = lambda p, t, y=None: p[0] * dnp.exp(-p[1] * t) - y  # noqa: E731
  def jac(p, t, y=None):
    return np.stack([np.exp(-p[1] * t), -p[0] * t * np.exp(-p[1] * t)], 1)
  ref = scipy_optimize.least_squares(fun, np.ones(2), jac=jac, args=(t,), kwargs={"y": y}).x
  for kw in ({"args": (t, y)}, {"args": (t,), "kwargs": {"y": y}}):
    np.testing.assert_allclose(dso.least_squares(fun, np.ones(2), jac=jac, **kw).x, ref,
                               rtol=1e-10)
  # bounds given as a list, infinite: the solution is still differentiable
  fit = lambda y: dso.least_squares(fun, np.ones(2), args=(t, y),  # noqa: E731
                                    bounds=[-np.inf, np.inf]).x
  assert dfdx.jacfwd(fit)(y).shape == (2, 15)
  # the result's residuals are SciPy's flat vector, whether the solution is traced or not
  grid = lambda p, y: dnp.reshape(fun(p, t, y), (3, 5))  # noqa: E731
  assert dso.least_squares(grid, np.ones(2), args=(y,)).fun.shape == (15,)
  assert dfdx.jit(lambda y: dso.least_squares(grid, np.ones(2), args=(y,)).fun)(y).shape == (15,)


def test_curve_fit_follows_scipy_conventions():
  x = np.linspace(0.0, 1.0, 20)
  y = 2.0 * np.exp(0.5 * x) + 0.01 * np.cos(11 * x)
  f = lambda x, a, b: a * dnp.exp(b * x)  # noqa: E731
  f_np = lambda x, a, b: a * np.exp(b * x)  # noqa: E731
  jac = lambda x, a, b: np.stack([np.exp(b * x), a * x * np.exp(b * x)], 1)  # noqa: E731
  cases = [{"bounds": ([1.5, 0.1], [3.0, 1.0])},  # (no p0: a start inside the bounds)
           {"jac": jac}, {"jac": jac, "sigma": 0.1 + x, "method": "trf"},
           {"maxfev": 1000}, {"maxfev": 1000, "method": "trf"}, {"sigma": 0.5},
           {"sigma": list(0.1 + x)}, {"sigma": np.diag((0.1 + x) ** 2)},
           {"sigma": np.diag(0.1 + x) + 0.001, "method": "trf"}]
  for kw in cases:
    popt, pcov = dso.curve_fit(f, x, y, **kw)
    ref_popt, ref_pcov = scipy_optimize.curve_fit(f_np, x, y, **kw)
    np.testing.assert_allclose(popt, ref_popt, rtol=1e-7, err_msg=str(kw))
    np.testing.assert_allclose(pcov, ref_pcov, rtol=1e-4, err_msg=str(kw))
  popt, _ = dso.curve_fit(f, list(x), list(y))  # (lists, as SciPy takes them)
  np.testing.assert_allclose(popt, scipy_optimize.curve_fit(f_np, x, y)[0], rtol=1e-7)
  with pytest.raises(RuntimeError, match="Optimal parameters not found"):
    dso.curve_fit(f, x, y, max_nfev=2, method="trf")
  with pytest.raises(RuntimeError, match="Optimal parameters not found"):
    dso.curve_fit(f, x, y, maxfev=2)
  with pytest.raises(ValueError, match="`sigma` has incorrect shape"):
    dso.curve_fit(f, x, y, sigma=np.ones(5))
  with pytest.raises(ValueError, match="'args' is not a supported"):
    dso.curve_fit(f, x, y, args=(1.0,))
  with pytest.raises(ValueError, match="must not contain infs or NaNs"):
    dso.curve_fit(f, x, np.where(x > 0.5, np.nan, y))
  with pytest.raises(TypeError, match="must not exceed the number of data points"):
    dso.curve_fit(lambda x, a, b, c: a + b * x + c * x * x, x[:2], y[:2])


def test_curve_fit_covariance_where_scipy_has_none_and_ill_conditioned():
  quadratic = lambda x, a, b, c: a + b * x + c * x * x  # noqa: E731
  x, y = np.array([0.0, 1.0]), np.array([1.0, 2.0])
  for method in ("trf", "dogbox"):
    with pytest.warns(Warning, match="could not be estimated"):
      popt, pcov = dso.curve_fit(quadratic, x, y, method=method)
    np.testing.assert_allclose(quadratic(x, *popt), y, atol=1e-10)
    assert np.all(pcov == np.inf)  # (SciPy's: every entry +inf)
  # a line far from the origin: J is ill-conditioned (cond 3e10), pcov inv(A^T A) still
  x = np.linspace(1e5, 1e5 + 1, 30)
  a = np.stack([np.ones_like(x), x], axis=1)
  r_inv = np.linalg.inv(np.linalg.qr(a)[1])
  for method in ("lm", "trf"):
    popt, pcov = dso.curve_fit(lambda x, a, b: a + b * x, x, 3 + 2 * (x - 1e5), method=method,
                               p0=[3 - 2e5, 2.0], absolute_sigma=True)
    np.testing.assert_allclose(pcov, r_inv @ r_inv.T, rtol=1e-6)


@pytest.mark.parametrize("method,kw", [
    ("brentq", {"bracket": (0.0, 10.0)}), ("bisect", {"bracket": (0.0, 10.0)}),
    ("ridder", {"bracket": (0.0, 10.0)}), ("toms748", {"bracket": (0.0, 10.0)}),
    ("newton", {"x0": 1.0}), ("halley", {"x0": 1.0}), ("secant", {"x0": 1.0, "x1": 1.5})])
def test_root_scalar_every_method_and_its_implicit_derivative(method, kw):
  # the real root of x^3 + x = a (Cardano's formula), and d root / d a = 1 / (3 root^2 + 1)
  def cardano(a):
    d = np.sqrt(a * a / 4 + 1 / 27)
    return np.cbrt(a / 2 + d) + np.cbrt(a / 2 - d)
  f = lambda x, a: x ** 3 + x - a  # noqa: E731
  a = 5.0
  result = dso.root_scalar(f, args=(a,), method=method, xtol=1e-14, **kw)
  assert result.converged and result.root == pytest.approx(cardano(a), rel=1e-12)
  if method in ("newton", "halley"):  # (dfdx's derivatives, not secant steps)
    reference = scipy_optimize.root_scalar(
        lambda x: x ** 3 + x - a, method=method, fprime=lambda x: 3 * x ** 2 + 1,
        fprime2=lambda x: 6 * x, xtol=1e-14, **kw)
    assert result.iterations == reference.iterations
  root = lambda a: dso.root_scalar(f, args=(a,), method=method, xtol=1e-14, **kw).root  # noqa: E731
  x = cardano(a)
  assert dfdx.grad(root)(a) == pytest.approx(1 / (3 * x ** 2 + 1), rel=1e-10)
  assert dfdx.jit(dfdx.grad(root))(a) == pytest.approx(1 / (3 * x ** 2 + 1), rel=1e-10)
  np.testing.assert_allclose(dfdx.vmap(root)(np.array([a, 2.0])), [x, cardano(2.0)],
                             rtol=1e-12)
  check_grads(root, (a,), order=2, atol=1e-6, rtol=1e-5)


def test_root_scalar_closures_and_convergence_report():
  c = 3.0
  g = lambda c: dso.root_scalar(lambda x: dnp.exp(x) - c, bracket=(-5.0, 5.0)).root  # noqa: E731
  assert dfdx.grad(g)(c) == pytest.approx(1 / c, rel=1e-8)  # (root = log c)
  result = dfdx.jit(lambda c: dso.root_scalar(lambda x, c: x - c, args=(c,), x0=0.0))(c)
  assert result.root == pytest.approx(c) and result.converged is None
  with pytest.warns(RuntimeWarning, match="root_scalar: the solver did not converge"):
    dfdx.grad(lambda c: dso.root_scalar(lambda x, c: x ** 3 - c, args=(c,), x0=5.0,
                                        method="newton", maxiter=2).root)(c)
