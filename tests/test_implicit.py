"""Implicit differentiation: dfdx.custom_root and dfdx.custom_linear_solve.

Derivatives against closed forms (square and cube roots, a fixed point of cos, a linear
system) and against finite differences (check_grads, second order, both modes); solvers
of every kind (Newton with dfdx's own Jacobian, bisection with Python branches, SciPy,
conjugate gradients) run on NumPy values, once per evaluation, under grad, jit and vmap;
pytrees, float32, and the errors.
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads


def newton(f, x):
  """Newton's method with dfdx's Jacobian of the residual (f is differentiable)."""
  x = np.asarray(x, np.float64)
  for _ in range(50):
    jac = np.reshape(dfdx.jacobian(f)(x), (x.size, x.size))
    x = x - np.linalg.solve(jac, np.ravel(f(x))).reshape(x.shape)
  return x


def bisect(f, x0):
  """Bisection on [0, 10]: Python branches on the residual's values."""
  lo, hi = 0.0, 10.0
  for _ in range(200):
    mid = (lo + hi) / 2
    lo, hi = (lo, mid) if f(mid) > 0 else (mid, hi)
  return (lo + hi) / 2


def fixed_point_solve(f, x0):
  """x = g(x) by iteration, for f(x) = g(x) - x."""
  x = x0
  for _ in range(500):
    x = x + f(x)
  return x


def cg(matvec, b):
  """Conjugate gradients (A symmetric positive definite)."""
  x = np.zeros_like(b)
  r = b - matvec(x)
  p = r.copy()
  for _ in range(4 * b.size):
    if np.linalg.norm(r) < 1e-15:
      break
    ap = matvec(p)
    alpha = (r @ r) / (p @ ap)
    x, r_new = x + alpha * p, r - alpha * ap
    p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
  return x


def by_columns(matvec, b):
  """A general solver that only calls the operator."""
  a = np.stack([matvec(e) for e in np.eye(b.size)], axis=1)
  return np.linalg.solve(a, b)


def square_root(a):
  return dfdx.custom_root(lambda x: x * x - a, 1.0, bisect)


def coupled_root(theta):
  """x^3 + theta_0 x + 0.1 sum(x) = theta_1, for x in R^3 (coupled through the sum)."""
  f = lambda x: x ** 3 + theta[0] * x + 0.1 * dnp.sum(x) - theta[1] * dnp.arange(1.0, 4.0)
  return dfdx.custom_root(f, np.ones(3), newton)


THETA = np.array([1.5, 2.0])


# ---- custom_root: values and closed forms -------------------------------------------------


def test_value_is_the_solvers():
  assert square_root(2.0) == pytest.approx(np.sqrt(2.0), abs=1e-14)
  x = coupled_root(THETA)
  np.testing.assert_allclose(x ** 3 + THETA[0] * x + 0.1 * x.sum(), THETA[1] * np.arange(1, 4),
                             atol=1e-12)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_square_root_closed_form_to_third_order(mode):
  d = dfdx.jacfwd if mode == "fwd" else dfdx.jacrev
  a = 2.0
  assert d(square_root)(a) == pytest.approx(0.5 * a ** -0.5, rel=1e-12)
  assert d(d(square_root))(a) == pytest.approx(-0.25 * a ** -1.5, rel=1e-10)
  assert d(d(d(square_root)))(a) == pytest.approx(0.375 * a ** -2.5, rel=1e-9)


def test_fixed_point_of_cos_closed_form():
  # x = cos(t x): dx/dt = -x sin(t x) / (1 + t sin(t x))
  def fixed(t):
    return dfdx.custom_root(lambda x: dnp.cos(t * x) - x, 0.5, fixed_point_solve)
  t = 0.8
  x = fixed(t)
  assert x == pytest.approx(np.cos(t * x), abs=1e-14)
  s = np.sin(t * x)
  assert dfdx.grad(fixed)(t) == pytest.approx(-x * s / (1 + t * s), rel=1e-12)
  check_grads(fixed, (t,), order=2, modes=("fwd", "rev"))


def test_coupled_system_finite_differences_second_order():
  check_grads(coupled_root, (THETA,), order=2, modes=("fwd", "rev"))
  check_grads(lambda t: dnp.sum(coupled_root(t) ** 2), (THETA,), order=2, modes=("fwd", "rev"))


def test_implicit_function_theorem_directly():
  # dx/dtheta = -(df/dx)^-1 df/dtheta at the root, built by hand from the residual's Jacobians.
  x = coupled_root(THETA)
  f = lambda x, t: x ** 3 + t[0] * x + 0.1 * np.sum(x) - t[1] * np.arange(1.0, 4.0)
  fx = np.diag(3 * x ** 2 + THETA[0]) + 0.1
  ft = np.stack([x, -np.arange(1.0, 4.0)], axis=1)
  expected = -np.linalg.solve(fx, ft)
  assert np.allclose(f(x, THETA), 0, atol=1e-12)
  np.testing.assert_allclose(dfdx.jacfwd(coupled_root)(THETA), expected, rtol=1e-12)
  np.testing.assert_allclose(dfdx.jacrev(coupled_root)(THETA), expected, rtol=1e-12)


def test_tangent_solve_given_equals_dense():
  def root(theta, tangent_solve):
    f = lambda x: x ** 3 + theta[0] * x - theta[1]
    return dfdx.custom_root(f, np.ones(2), newton, tangent_solve)
  theta = np.array([1.0, 3.0])
  diagonal = lambda g, y: y / g(np.ones(2))  # the Jacobian is diagonal here
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.hessian):
    np.testing.assert_allclose(jac(lambda t: root(t, diagonal))(theta),
                               jac(lambda t: root(t, None))(theta), rtol=1e-12)


def test_initial_guess_gets_no_derivative():
  d_guess, d_a = dfdx.grad(
      lambda x0, a: dfdx.custom_root(lambda x: x * x - a, x0, bisect), argnums=(0, 1))(1.0, 2.0)
  assert d_guess == 0.0
  assert d_a == pytest.approx(0.5 / np.sqrt(2.0), rel=1e-12)


# ---- the solver: concrete values, called once ----------------------------------------------


@pytest.mark.parametrize("transform", ["plain", "grad", "jit", "jit_grad", "vmap", "hessian"])
def test_solver_sees_numpy_values_once_per_evaluation(transform):
  calls = []

  def solve(f, x0):
    assert isinstance(x0, np.ndarray) and not isinstance(f(x0), dfdx._src.core.Tracer)
    calls.append(1)
    return newton(f, x0)

  def fun(t):
    return dnp.sum(dfdx.custom_root(lambda x: x ** 3 + x - t, np.zeros(2), solve))
  t = np.float64(1.5)
  run = {"plain": fun, "grad": dfdx.grad(fun), "jit": dfdx.jit(fun),
         "jit_grad": dfdx.jit(dfdx.grad(fun)), "hessian": dfdx.hessian(fun),
         "vmap": lambda t: dfdx.vmap(fun)(np.stack([t, t + 1, t + 2]))}[transform]
  run(t)
  assert len(calls) == (3 if transform == "vmap" else 1)


def test_scipy_solver_and_pytree_unknowns():
  optimize = pytest.importorskip("scipy.optimize")

  def solve(f, z0):
    def flat(v):
      r = f({"x": v[:2], "y": v[2:]})
      return np.concatenate([r["x"], r["y"]])
    v = optimize.root(flat, np.concatenate([z0["x"], z0["y"]]), tol=1e-14).x
    return {"x": v[:2], "y": v[2:]}

  def fun(theta):
    def f(z):
      return {"x": z["x"] + theta[0] * dnp.tanh(z["y"]) - 1.0,
              "y": z["y"] ** 3 + z["x"] - theta[1] * np.array([1.0, 2.0])}
    z = dfdx.custom_root(f, {"x": np.zeros(2), "y": np.ones(2)}, solve)
    assert set(z) == {"x", "y"}
    return dnp.concatenate([z["x"], z["y"]])
  check_grads(fun, (np.array([0.7, 1.3]),), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_float32_and_integer_guesses():
  root32 = lambda a: dfdx.custom_root(lambda x: x * x - a, np.float32(1), bisect)
  x = root32(np.float32(3))
  g = dfdx.grad(root32)(np.float32(3))
  assert x.dtype == np.float32 and g.dtype == np.float32
  assert g == pytest.approx(0.5 / np.sqrt(3.0), rel=1e-6)
  x = dfdx.custom_root(lambda x: x * x - 4.0, 1, bisect)  # an int guess: float64 unknowns
  assert x.dtype == np.float64 and x == pytest.approx(2.0, abs=1e-14)


# ---- jit and vmap ---------------------------------------------------------------------------


def test_jit_matches_eager():
  np.testing.assert_allclose(dfdx.jit(coupled_root)(THETA), coupled_root(THETA), rtol=1e-14)
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.hessian):
    f = lambda t: dnp.sum(coupled_root(t) ** 2)
    np.testing.assert_allclose(dfdx.jit(jac(f))(THETA), jac(f)(THETA), rtol=1e-12)


def test_vmap_over_parameters_and_guesses():
  thetas = np.stack([THETA, THETA + 0.3, THETA - 0.2])
  np.testing.assert_allclose(dfdx.vmap(coupled_root)(thetas),
                             np.stack([coupled_root(t) for t in thetas]), rtol=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.jacrev(coupled_root))(thetas),
                             np.stack([dfdx.jacfwd(coupled_root)(t) for t in thetas]),
                             rtol=1e-12)
  # A batch of guesses, one parameter: every guess finds the same (unique) root.
  guesses = np.array([0.5, 1.0, 3.0])
  roots = dfdx.vmap(lambda g: dfdx.custom_root(lambda x: x ** 3 + x - 2.0, g, newton))(guesses)
  np.testing.assert_allclose(roots, 1.0, rtol=1e-14)
  assert dfdx.vmap(square_root)(np.zeros(0)).shape == (0,)


def test_sparse_jacobian_of_a_root():
  pytest.importorskip("scipy.sparse")
  sparse = dfdx.jacobian(coupled_root, sparse=True)(THETA)
  np.testing.assert_allclose(sparse.toarray(), dfdx.jacobian(coupled_root)(THETA), rtol=1e-12)


# ---- custom_linear_solve --------------------------------------------------------------------
RNG = np.random.default_rng(0)
_M = RNG.normal(size=(4, 4))
A0 = _M @ _M.T + 4 * np.eye(4)
U, B = RNG.normal(size=4), RNG.normal(size=4)


def spd_solve(u, b):
  a = A0 + u[0] * dnp.outer(u, u)
  return dfdx.custom_linear_solve(lambda x: a @ x, b, cg, symmetric=True)


def general_solve(u, b, transpose_solve=by_columns, solve=by_columns):
  a = A0 + dnp.outer(u, b)
  return dfdx.custom_linear_solve(lambda x: a @ x, b, solve, transpose_solve=transpose_solve)


def test_linear_solve_values_and_closed_form():
  a = A0 + U[0] * np.outer(U, U)
  x = spd_solve(U, B)
  np.testing.assert_allclose(x, np.linalg.solve(a, B), rtol=1e-12)
  # d/db = A^-1; d/du_k along e: -A^-1 (dA) x
  np.testing.assert_allclose(dfdx.jacrev(spd_solve, 1)(U, B), np.linalg.inv(a), rtol=1e-10)
  e = np.eye(4)[2]
  da = U[0] * (np.outer(e, U) + np.outer(U, e))
  np.testing.assert_allclose(dfdx.jvp(lambda u: spd_solve(u, B), (U,), (e,))[1],
                             -np.linalg.solve(a, da @ x), rtol=1e-10)


@pytest.mark.parametrize("fun", [spd_solve, general_solve,
                                 lambda u, b: general_solve(u, b, None, None)],
                         ids=["cg_symmetric", "transpose_solve", "dense"])
def test_linear_solve_finite_differences_second_order(fun):
  check_grads(fun, (U, B), order=2, modes=("fwd", "rev"))
  np.testing.assert_allclose(dfdx.jit(dfdx.jacrev(fun))(U, B), dfdx.jacfwd(fun)(U, B),
                             rtol=1e-10)
  np.testing.assert_allclose(dfdx.vmap(fun, (0, None))(np.stack([U, U / 2]), B),
                             np.stack([fun(U, B), fun(U / 2, B)]), rtol=1e-12)


def test_linear_solve_without_transpose_solve():
  fun = lambda u: dnp.sum(general_solve(u, B, transpose_solve=None))
  check_grads(fun, (U,), order=2, modes=("fwd",))  # forward mode needs no transpose
  with pytest.raises(dfdx.MissingRuleError, match="transpose_solve="):
    dfdx.grad(fun)(U)


def test_linear_solve_pytree_right_hand_side():
  def fun(scale):
    def matvec(x):
      return {"a": 3.0 * x["a"] + scale * x["b"], "b": scale * x["a"] + 2.0 * x["b"]}
    return dfdx.custom_linear_solve(matvec, {"a": 1.0, "b": np.array(2.0)})
  s = 0.5
  x = fun(s)
  expected = np.linalg.solve([[3.0, s], [s, 2.0]], [1.0, 2.0])
  np.testing.assert_allclose([x["a"], x["b"]], expected, rtol=1e-14)
  check_grads(lambda s: fun(s)["a"] * fun(s)["b"], (s,), order=2, modes=("fwd", "rev"))


# ---- errors ---------------------------------------------------------------------------------


def test_errors():
  with pytest.raises(ValueError, match="square system"):
    dfdx.custom_root(lambda x: dnp.sum(x), np.ones(2), newton)
  with pytest.raises(TypeError, match="structure"):
    dfdx.custom_root(lambda x: (x, x), np.ones(2), newton)
  with pytest.raises(ValueError, match="result of solve.*shape"):
    dfdx.custom_root(lambda x: x - 1.0, np.ones(2), lambda f, x: np.ones(3))
  with pytest.raises(TypeError, match="result of solve.*structure"):
    dfdx.grad(lambda a: dfdx.custom_root(lambda x: x - a, 1.0, lambda f, x: (x, x)))(1.0)
  with pytest.raises(TypeError, match="complex"):
    dfdx.custom_root(lambda x: x - 1.0, np.ones(2, complex), newton)
  with pytest.raises(TypeError, match="must be functions"):
    dfdx.custom_root(lambda x: x, 1.0, None)
  with pytest.raises(TypeError, match="tangent_solve must be a function"):
    dfdx.custom_root(lambda x: x, 1.0, bisect, 3)
  with pytest.raises(TypeError, match="matvec must be a function"):
    dfdx.custom_linear_solve(np.eye(2), np.ones(2))
  # df/dx = 2 x is singular at the root x = 0 of x^2 = a, a = 0: no derivative there.
  at_zero = lambda a: dfdx.custom_root(lambda x: x * x - a, 1.0, lambda f, x: 0.0)
  with pytest.raises(np.linalg.LinAlgError, match="custom_root: the linear system is singular"):
    dfdx.jvp(at_zero, (0.0,), (1.0,))
  with pytest.raises(np.linalg.LinAlgError, match="custom_root: the linear system is singular"):
    dfdx.grad(at_zero)(0.0)
  # a df/dx that depends on a traced value is known only when computed: under jit and vmap
  # the error names the function too (not LAPACK's bare "Singular matrix")
  def pair(a):
    return dfdx.custom_root(lambda x: dnp.stack([a * (x[0] + x[1] - 1), 2 * a * (x[0] + x[1] - 1)]),
                            dnp.zeros(2), lambda f, x: np.array([0.5, 0.5]))
  for run in (lambda: dfdx.jit(dfdx.grad(lambda a: dnp.sum(pair(a))))(1.0),
              lambda: dfdx.jit(dfdx.jacfwd(pair))(1.0),
              lambda: dfdx.vmap(dfdx.grad(lambda a: dnp.sum(pair(a))))(np.array([1.0, 2.0]))):
    with pytest.raises(np.linalg.LinAlgError, match="custom_root: the linear system is singular"):
      run()


def test_exports_refuse_solvers():
  f = lambda a: dfdx.custom_root(lambda x: x * x - a, 1.0, bisect)
  with pytest.raises(TypeError, match="to_source: the function calls custom_root"):
    dfdx.export.to_source(dfdx.grad(f), 2.0)
  pytest.importorskip("sympy")
  with pytest.raises(NotImplementedError, match="numerical solver"):
    dfdx.export.to_sympy(f, 2.0)
  with pytest.raises(NotImplementedError, match="numerical solver"):
    dfdx.export.to_sympy(lambda u: spd_solve(u, B), U)



def test_readme_example():
  optimize = pytest.importorskip("scipy.optimize")

  def equilibrium(k):
    residual = lambda x: x ** 3 + k * x - 1.0
    solve = lambda f, x0: optimize.root(f, x0, tol=1e-14).x
    return dfdx.custom_root(residual, np.ones(3), solve)
  k = np.array([0.5, 1.0, 2.0])
  x = equilibrium(k)
  np.testing.assert_allclose(dfdx.jacfwd(equilibrium)(k), np.diag(-x / (3 * x ** 2 + k)),
                             rtol=1e-12, atol=1e-15)
  # dx/dk = -x / (3 x^2 + k), differentiated once more (quotient rule)
  dx = -x / (3 * x ** 2 + k)
  d2x = -(dx * (3 * x ** 2 + k) - x * (6 * x * dx + 1)) / (3 * x ** 2 + k) ** 2
  np.testing.assert_allclose(dfdx.hessian(lambda k: dnp.sum(equilibrium(k)))(k), np.diag(d2x),
                             rtol=1e-10, atol=1e-15)


# ---- found by adversarial testing ------------------------------------------------------------


def test_empty_unknowns_with_the_dense_tangent_solve():
  f = lambda a: dfdx.custom_root(lambda x: x - a, np.zeros(0), lambda f, x0: x0)  # noqa: E731
  for jac in (dfdx.jacfwd(f), dfdx.jacrev(f), dfdx.jit(dfdx.jacfwd(f))):
    assert np.shape(jac(2.0)) == (0,)


def test_a_solver_that_computes_with_a_traced_parameter_gets_a_clear_error():
  def root(a):  # the solver closes over `a` instead of using the f it is given
    return dfdx.custom_root(lambda x: x * x - a, 1.0, lambda f, x0: bisect(lambda x: x * x - a, x0))
  assert root(2.0) == pytest.approx(np.sqrt(2.0))
  for transform in (dfdx.grad, dfdx.jit):
    with pytest.raises(TypeError, match="custom_root: solve computed with a traced value"):
      transform(root)(2.0)


def test_errors_name_the_solver_at_fault():
  f = lambda a: dfdx.custom_root(lambda x: x - a, np.ones(2), lambda f, x0: x0,  # noqa: E731
                                 lambda g, y: np.ones(5))
  with pytest.raises(ValueError, match="result of tangent_solve has shape"):
    dfdx.jacfwd(f)(np.ones(2))
  g = lambda b: dfdx.custom_linear_solve(lambda x: 2 * x, b, lambda mv, b: b / 2,  # noqa: E731
                                         transpose_solve=lambda mv, b: np.ones(3))
  with pytest.raises(ValueError, match="result of transpose_solve has shape"):
    dfdx.grad(lambda b: dnp.sum(g(b)))(np.ones(2))


def test_float16_and_scalar_results():
  r = lambda a: dfdx.custom_root(lambda x: x * x - a, np.float16(1),  # noqa: E731
                                 lambda f, x0: np.float16(1.414))
  g = dfdx.grad(r)(np.float16(2))
  assert g.dtype == np.float16 and float(g) == pytest.approx(0.5 / 1.414, rel=1e-3)
  x = dfdx.custom_linear_solve(lambda x: 2 * x, np.ones(2, np.float16))
  assert x.dtype == np.float16 and np.all(x == 0.5)
  for solve in (None, lambda mv, b: b / 4.0):
    x = dfdx.custom_linear_solve(lambda x: 4.0 * x, 2.0, solve, symmetric=True)
    assert type(x) is np.float64 and x == 0.5

  def solve(f, x0):  # the residual has one type at every call (interpreted, then compiled)
    assert {type(f(x0)) for _ in range(60)} == {np.float32}
    return x0
  dfdx.custom_root(lambda x: x * 2.0 + np.float32(1.0), np.float32(1.0), solve)


# ---- vectorized=True: one solve for a whole vmap ---------------------------------------------


def vector_bisection(f, x, calls=None):
  """Bisection on [0, 10] of every entry at once (np.where, no Python branch)."""
  if calls is not None:
    calls.append(np.shape(x))
  lo, hi = np.zeros_like(x), np.full_like(x, 10.0)
  for _ in range(100):
    above = f((lo + hi) / 2) > 0
    lo, hi = np.where(above, lo, (lo + hi) / 2), np.where(above, (lo + hi) / 2, hi)
  return (lo + hi) / 2


def test_vectorized_solver_runs_once_for_the_batch():
  calls = []

  def root(a, vectorized):
    return dfdx.custom_root(lambda r: r ** 3 + r - a, np.ones(2),
                            lambda f, x: vector_bisection(f, x, calls), vectorized=vectorized)
  a = np.array([[2.0, 3.0], [8.0, 1.0], [27.0, 5.0]])
  looped = dfdx.vmap(lambda a: root(a, False))(a)
  assert calls == [(2,)] * 3
  calls.clear()
  np.testing.assert_array_equal(dfdx.vmap(lambda a: root(a, True))(a), looped)
  assert calls == [(3, 2)]
  calls.clear()
  nested = dfdx.vmap(dfdx.vmap(lambda a: root(a, True)))(np.stack([a, 2 * a]))
  assert calls == [(6, 2)]
  np.testing.assert_array_equal(nested[0], looped)
  assert dfdx.vmap(lambda a: root(a, True))(np.zeros((0, 2))).shape == (0, 2)
  # derivatives, in every order of the transformations, equal the per-example ones
  for transform in (lambda g: dfdx.vmap(dfdx.jacfwd(g)), lambda g: dfdx.vmap(dfdx.jacrev(g)),
                    lambda g: dfdx.jacfwd(dfdx.vmap(g)), lambda g: dfdx.jacrev(dfdx.vmap(g)),
                    lambda g: dfdx.jit(dfdx.vmap(dfdx.jacrev(g))),
                    lambda g: dfdx.vmap(dfdx.hessian(lambda a: dnp.sum(g(a) ** 2)))):
    np.testing.assert_allclose(transform(lambda a: root(a, True))(a),
                               transform(lambda a: root(a, False))(a), rtol=1e-12)


def test_vectorized_closed_form_over_many_examples():
  s = np.linspace(1.0, 5.0, 500)
  root = lambda s: dfdx.custom_root(lambda r: r ** 3 + r - s, 1.0, vector_bisection,  # noqa: E731
                                    vectorized=True)
  r = dfdx.vmap(root)(s)
  np.testing.assert_allclose(r ** 3 + r, s, rtol=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(root))(s), 1 / (3 * r ** 2 + 1), rtol=1e-12)
  check_grads(lambda s: dfdx.vmap(root)(s), (s[:3],), order=2, modes=("fwd", "rev"))
