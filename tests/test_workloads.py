"""Whole programs as scientists and engineers write them (small sizes): an MLP trained with
Adam, a PDE stepped by scan / fori_loop / a Python loop (with checkpointing), ODE parameter
sensitivities (hand-written RK4 and odeint), a Gaussian-process marginal likelihood, Bayesian
logistic regression with HMC, Newton solves (while_loop, custom_root), constrained least
squares, robot forward kinematics, masked attention, a membrane energy minimized with
dfdx.scipy.optimize, a truss with dataclass / namedtuple parameters, exported gradients, a
Kalman filter, N-body forces, vibration modes, curve fitting, Taylor mode and Hessian-vector
products. Each checks values against closed forms or finite differences, and eager, jit and
vmap against each other.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads

scipy = pytest.importorskip("scipy")
import scipy.integrate  # noqa: E402
import scipy.optimize  # noqa: E402

import dfdx.scipy.linalg as dsl  # noqa: E402
import dfdx.scipy.optimize as dso  # noqa: E402
import dfdx.scipy.special as dss  # noqa: E402
import dfdx.scipy.stats as dst  # noqa: E402
from dfdx.scipy.integrate import odeint  # noqa: E402


def assert_trees_close(a, b, rtol=1e-9, atol=1e-11):
  la, ta = dfdx.tree.tree_flatten(a)
  lb, tb = dfdx.tree.tree_flatten(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def numerical_grad(f, x, eps=1e-6):
  x = np.asarray(x, float)
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = eps
    g[i] = (f(x + e) - f(x - e)) / (2 * eps)
  return g


# ---- an MLP classifier: dict parameters, jit(value_and_grad), Adam, per-example grads ------
def _mlp_problem(rng, n=24, d=5, h=8, c=3):
  x = rng.normal(size=(n, d))
  y = np.eye(c)[np.argmax(x @ rng.normal(size=(d, c)), axis=1)]
  params = {"W1": rng.normal(size=(d, h)) / np.sqrt(d), "b1": np.zeros(h),
            "W2": rng.normal(size=(h, c)) / np.sqrt(h), "b2": np.zeros(c)}
  return x, y, params


def mlp_loss(p, x, y):
  h = dnp.tanh(x @ p["W1"] + p["b1"])
  h = dnp.maximum(h, 0.1 * h)
  logits = h @ p["W2"] + p["b2"]
  logp = logits - dss.logsumexp(logits, axis=-1, keepdims=True)
  nll = dnp.clip(-dnp.sum(y * logp, axis=-1), 0.0, 5.0)
  return dnp.mean(nll) + 1e-4 * sum(dnp.sum(v ** 2) for v in p.values())


def test_mlp_adam_jit_value_and_grad_and_per_example_grads(rng):
  x, y, p = _mlp_problem(rng)
  vg = dfdx.value_and_grad(mlp_loss)
  vg_jit = dfdx.jit(vg)
  (l0, g0), (l1, g1) = vg(p, x, y), vg_jit(p, x, y)
  assert_trees_close(l0, l1)
  assert_trees_close(g0, g1)
  assert set(g0) == set(p) and all(isinstance(v, np.ndarray) for v in g0.values())
  gw = numerical_grad(lambda w: mlp_loss({**p, "W2": w}, x, y), p["W2"])
  np.testing.assert_allclose(g0["W2"], gw, rtol=1e-6, atol=1e-9)
  # per-example gradients average to the batch gradient (the regularizer is in each)
  pe = dfdx.vmap(dfdx.grad(mlp_loss), in_axes=(None, 0, 0))
  per = pe(p, x[:, None], y[:, None])
  assert per["W1"].shape == (len(x),) + p["W1"].shape
  assert_trees_close({k: v.mean(0) for k, v in per.items()}, g0)
  assert_trees_close(dfdx.jit(pe)(p, x[:, None], y[:, None]), per)
  # Adam over the dict of parameters, with dfdx.tree.tree_map
  tm = dfdx.tree.tree_map
  m, v = tm(np.zeros_like, p), tm(np.zeros_like, p)
  for t in range(1, 31):
    loss, g = vg_jit(p, x, y)
    m = tm(lambda m, g: 0.9 * m + 0.1 * g, m, g)
    v = tm(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
    p = tm(lambda p, m, v: p - 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8),
           p, m, v)
  assert mlp_loss(p, x, y) < 0.5 * l0


# ---- a 1-D advection-diffusion equation stepped by scan, fori_loop and a Python loop -------
NX, NT = 16, 30
DX = 1.0 / NX
DT = 0.2 * DX * DX
XG = np.arange(NX) * DX
U0 = np.exp(-30 * (XG - 0.5) ** 2)
TARGET = 0.5 * np.exp(-20 * (XG - 0.4) ** 2)


def heat_step(u, kappa, c):
  lap = (dnp.roll(u, 1) - 2 * u + dnp.roll(u, -1)) / DX ** 2
  return u + DT * (kappa * lap - c * (u - dnp.roll(u, 1)) / DX)


def heat_scan(u0, kappa, c, checkpoint=False):
  def body(u, _):
    u = heat_step(u, kappa, c)
    return u, dnp.sum(u ** 2) * DX
  ut, energies = dfdx.scan(body, u0, None, length=NT, checkpoint=checkpoint)
  return dnp.sum((ut - TARGET) ** 2) * DX + 1e-3 * dnp.sum(energies)


def heat_fori(u0, kappa, c):
  ut = dfdx.fori_loop(0, NT, lambda i, u: heat_step(u, kappa, c), u0)
  return dnp.sum((ut - TARGET) ** 2) * DX


def heat_python(u0, kappa, c):
  u = u0
  energies = 0.0
  for _ in range(NT):
    u = heat_step(u, kappa, c)
    energies = energies + dnp.sum(u ** 2) * DX
  return dnp.sum((u - TARGET) ** 2) * DX + 1e-3 * energies


def test_heat_equation_scan_fori_python_loop_checkpoint():
  args = (U0, 0.5, 0.3)
  grad = lambda f: dfdx.grad(f, argnums=(0, 1, 2))  # noqa: E731
  ref = grad(heat_python)(*args)
  for f in (heat_scan, lambda *a: heat_scan(*a, checkpoint=True)):
    assert_trees_close(grad(f)(*args), ref)
    assert_trees_close(dfdx.jit(grad(f))(*args), ref)
  assert_trees_close(dfdx.jit(grad(heat_fori))(*args), grad(heat_fori)(*args))
  np.testing.assert_allclose(ref[1], numerical_grad(lambda k: heat_python(U0, k, 0.3), 0.5),
                             rtol=1e-6)
  check_grads(lambda u, k: heat_fori(u, k, 0.3), (U0, 0.5), order=2)
  # the fori loop's final state is linear in u0: its gradient is exact at any u0
  ks = np.array([0.2, 0.5, 0.9])
  per_kappa = dfdx.vmap(dfdx.grad(heat_scan, argnums=1), in_axes=(None, 0, None))(U0, ks, 0.3)
  np.testing.assert_allclose(per_kappa, [dfdx.grad(heat_scan, argnums=1)(U0, k, 0.3) for k in ks],
                             rtol=1e-10)
  h = dfdx.hessian(lambda kc: heat_scan(U0, kc[0], kc[1]))(np.array([0.5, 0.3]))
  np.testing.assert_allclose(h, h.T, rtol=1e-10)
  np.testing.assert_allclose(
      h, dfdx.jit(dfdx.hessian(lambda kc: heat_scan(U0, kc[0], kc[1])))(np.array([0.5, 0.3])),
      rtol=1e-9)


# ---- ODE sensitivities: hand-written RK4 and odeint, against closed forms -------------------
def lotka_volterra(y, t, a, b, c, d):
  return dnp.stack([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])


def rk4(f, y0, ts, *args):
  ys, y = [y0], y0
  for i in range(len(ts) - 1):
    h, t = ts[i + 1] - ts[i], ts[i]
    k1 = f(y, t, *args)
    k2 = f(y + h / 2 * k1, t + h / 2, *args)
    k3 = f(y + h / 2 * k2, t + h / 2, *args)
    k4 = f(y + h * k3, t + h, *args)
    y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    ys.append(y)
  return dnp.stack(ys)


def test_ode_rk4_and_odeint_sensitivities():
  # harmonic oscillator y'' = -w^2 y, y(0) = 1, y'(0) = 0: y = cos(w t), dy/dw = -t sin(w t)
  osc = lambda y, t, w: dnp.stack([y[1], -w ** 2 * y[0]])  # noqa: E731
  ts = np.linspace(0.0, 2.0, 6)
  w = 1.3
  exact = -ts * np.sin(w * ts)

  def y_ode(w):
    return odeint(osc, np.array([1.0, 0.0]), ts, (w,), rtol=1e-12, atol=1e-12)[:, 0]
  np.testing.assert_allclose(dfdx.jacfwd(y_ode)(w), exact, atol=1e-8)
  np.testing.assert_allclose(dfdx.jacrev(y_ode)(w), exact, atol=1e-8)
  fine = np.linspace(0.0, 2.0, 21)
  y_rk4 = lambda w, ts=fine: rk4(osc, np.array([1.0, 0.0]), ts, w)[:, 0]  # noqa: E731
  np.testing.assert_allclose(dfdx.jacfwd(y_rk4)(w), -fine * np.sin(w * fine), atol=1e-4)
  np.testing.assert_allclose(dfdx.jit(dfdx.jacrev(lambda w: y_rk4(w, ts)))(w),
                             dfdx.jacfwd(lambda w: y_rk4(w, ts))(w), rtol=1e-10, atol=1e-13)
  # Lotka-Volterra fit: odeint's gradient against finite differences of SciPy's solution,
  # RK4's with check_grads, and the two close
  ts = np.linspace(0.0, 3.0, 16)
  theta, y0 = np.array([1.1, 0.4, 0.1, 0.4]), np.array([1.0, 0.5])
  data = 0.3 + 0.1 * np.sin(ts)[:, None]
  loss_rk4 = lambda th: dnp.sum((rk4(lotka_volterra, y0, ts, *th) - data) ** 2)  # noqa: E731
  loss_ode = lambda th: dnp.sum(  # noqa: E731
      (odeint(lotka_volterra, y0, ts, tuple(th), rtol=1e-12, atol=1e-12) - data) ** 2)

  def scipy_loss(th):
    rhs = lambda y, t: np.array(lotka_volterra(y, t, *th))  # noqa: E731
    return np.sum((scipy.integrate.odeint(rhs, y0, ts, rtol=1e-13, atol=1e-13) - data) ** 2)
  g = dfdx.grad(loss_ode)(theta)
  np.testing.assert_allclose(g, numerical_grad(scipy_loss, theta), rtol=1e-6)
  np.testing.assert_allclose(dfdx.grad(loss_rk4)(theta), g, rtol=1e-2)
  check_grads(loss_rk4, (theta,), order=2, eps=1e-6, rtol=1e-4)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(loss_ode))(theta), g, rtol=1e-8, atol=1e-12)


# ---- a Gaussian-process marginal likelihood -------------------------------------------------
def _gp_data(rng, n=12):
  x = np.sort(rng.uniform(-3, 3, size=(n, 1)), axis=0)
  return x, np.sin(2 * x[:, 0]) + 0.1 * rng.normal(size=n)


def gp_kernel(x1, x2, log_ell, log_sf):
  d2 = dnp.sum((x1[:, None, :] - x2[None, :, :]) ** 2, axis=-1)
  return dnp.exp(2 * log_sf) * dnp.exp(-0.5 * d2 / dnp.exp(2 * log_ell))


def gp_nlls(x, y):
  n = len(y)

  def cov(h):
    return gp_kernel(x, x, h[0], h[1]) + dnp.exp(2 * h[2]) * dnp.eye(n)

  def nll_cho(h):
    chol = dnp.linalg.cholesky(cov(h))
    alpha = dsl.cho_solve((chol, True), y)
    return 0.5 * y @ alpha + dnp.sum(dnp.log(dnp.diag(chol))) + 0.5 * n * np.log(2 * np.pi)

  def nll_tri(h):
    chol = dnp.linalg.cholesky(cov(h))
    a = dsl.solve_triangular(chol, y, lower=True)
    return 0.5 * dnp.dot(a, a) + dnp.sum(dnp.log(dnp.diagonal(chol))) + 0.5 * n * np.log(2 * np.pi)

  def nll_slogdet(h):
    k = cov(h)
    _, logdet = dnp.linalg.slogdet(k)
    return 0.5 * y @ dnp.linalg.solve(k, y) + 0.5 * logdet + 0.5 * n * np.log(2 * np.pi)
  return nll_cho, nll_tri, nll_slogdet


def test_gaussian_process_marginal_likelihood(rng):
  x, y = _gp_data(rng)
  h = np.array([0.1, 0.2, -1.5])
  fs = gp_nlls(x, y)
  vals = [f(h) for f in fs]
  np.testing.assert_allclose(vals, vals[0], rtol=1e-10)
  g, hess = dfdx.grad(fs[0])(h), dfdx.hessian(fs[0])(h)
  for f in fs:
    np.testing.assert_allclose(dfdx.grad(f)(h), g, rtol=1e-8)
    np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(h), g, rtol=1e-8)
    np.testing.assert_allclose(dfdx.hessian(f)(h), hess, rtol=1e-7, atol=1e-10)
  np.testing.assert_allclose(g, numerical_grad(fs[2], h), rtol=1e-6)
  check_grads(fs[0], (h,), order=2, rtol=1e-4)
  hs = np.stack([h, h + 0.1, h - 0.2])
  per = dfdx.vmap(dfdx.grad(fs[0]))(hs)
  np.testing.assert_allclose(per, [dfdx.grad(fs[0])(hi) for hi in hs], rtol=1e-9)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(dfdx.grad(fs[0])))(hs), per, rtol=1e-9)
  res = scipy.optimize.minimize(fs[0], h, jac=dfdx.jit(dfdx.grad(fs[0])), method="BFGS")
  assert res.success and np.abs(dfdx.grad(fs[0])(res.x)).max() < 1e-4


# ---- Bayesian logistic regression: log posterior, HMC under jit and vmap --------------------
def test_bayesian_logistic_regression_hmc(rng):
  n, d = 40, 3
  x = rng.normal(size=(n, d))
  y = (rng.uniform(size=n) < 0.5).astype(float)

  def log_post(w):
    logits = x @ w
    ll = dnp.sum(y * -dnp.logaddexp(0.0, -logits) + (1 - y) * -dnp.logaddexp(0.0, logits))
    return ll + dnp.sum(dst.norm.logpdf(w, 0.0, 2.0))
  w = rng.normal(size=d)
  closed = x.T @ (y - 1 / (1 + np.exp(-x @ w))) - w / 4.0
  np.testing.assert_allclose(dfdx.grad(log_post)(w), closed, rtol=1e-10)
  s = 1 / (1 + np.exp(-x @ w))
  np.testing.assert_allclose(dfdx.hessian(log_post)(w),
                             -(x.T * (s * (1 - s))) @ x - np.eye(d) / 4.0, rtol=1e-9, atol=1e-12)

  def hmc_step(w, p0, u, eps):
    grad_lp = dfdx.grad(log_post)

    def body(i, wp):
      w, p = wp
      w = w + eps * p
      return w, p + eps * grad_lp(w)
    p = p0 + 0.5 * eps * grad_lp(w)
    w1, p = dfdx.fori_loop(0, 4, body, (w, p))
    w1 = w1 + eps * p
    p1 = p + 0.5 * eps * grad_lp(w1)
    h0 = -log_post(w) + 0.5 * dnp.sum(p0 ** 2)
    h1 = -log_post(w1) + 0.5 * dnp.sum(p1 ** 2)
    return dnp.where(dnp.log(u) < h0 - h1, w1, w)
  chains = 4
  w0, p0, u = np.zeros((chains, d)), rng.normal(size=(chains, d)), rng.uniform(size=chains)
  batched = dfdx.vmap(hmc_step, in_axes=(0, 0, 0, None))
  out = dfdx.jit(batched)(w0, p0, u, 0.05)
  np.testing.assert_allclose(out, batched(w0, p0, u, 0.05), rtol=1e-12)
  np.testing.assert_allclose(out, [hmc_step(w0[i], p0[i], u[i], 0.05) for i in range(chains)],
                             rtol=1e-12)


# ---- Newton's method in a while_loop, custom_root; constrained least squares ---------------
def kepler_while(m, e):
  def cond(s):
    big_e, it = s
    return (dnp.abs(big_e - e * dnp.sin(big_e) - m) > 1e-14) & (it < 50)

  def body(s):
    big_e, it = s
    return big_e - (big_e - e * dnp.sin(big_e) - m) / (1 - e * dnp.cos(big_e)), it + 1
  return dfdx.while_loop(cond, body, (m, 0))[0]


def kepler_root(m, e):
  def solve(f, x0):  # Newton on the function given (the solver must not close over m or e)
    x = x0
    for _ in range(30):
      x = x - f(x) / dfdx.grad(f)(x)
    return x
  return dfdx.custom_root(lambda big_e: big_e - e * dnp.sin(big_e) - m, m, solve)


@pytest.mark.parametrize("kepler", [kepler_while, kepler_root])
def test_kepler_equation_newton(kepler):
  m, e = 1.2, 0.3
  big_e = kepler(m, e)
  np.testing.assert_allclose(big_e - e * np.sin(big_e), m, atol=1e-13)
  closed = (1 / (1 - e * np.cos(big_e)), np.sin(big_e) / (1 - e * np.cos(big_e)))
  np.testing.assert_allclose(dfdx.grad(kepler, argnums=(0, 1))(m, e), closed, rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(kepler, argnums=(0, 1)))(m, e), closed, rtol=1e-12)
  ms = np.linspace(0.1, 3.0, 5)
  per = dfdx.vmap(dfdx.grad(kepler), in_axes=(0, None))(ms, e)
  es = np.array([kepler_while(mi, e) for mi in ms])
  np.testing.assert_allclose(per, 1 / (1 - e * np.cos(es)), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(dfdx.grad(kepler), in_axes=(0, None)))(ms, e), per,
                             rtol=1e-12)
  np.testing.assert_allclose(dfdx.hessian(kepler)(m, e), dfdx.hessian(kepler_while)(m, e),
                             rtol=1e-10)
  check_grads(kepler, (m, e), order=2)


def test_constrained_least_squares_kkt_and_nullspace(rng):
  a, b = rng.normal(size=(10, 4)), rng.normal(size=10)
  c, d = rng.normal(size=(2, 4)), rng.normal(size=2)

  def kkt(a, b, c, d):
    n, m = a.shape[1], c.shape[0]
    k = dnp.block([[2 * a.T @ a, c.T], [c, dnp.zeros((m, m))]])
    return dnp.linalg.solve(k, dnp.concatenate([2 * a.T @ b, d]))[:n]

  def nullspace(a, b, c, d):
    x0 = dnp.linalg.lstsq(c, d, rcond=None)[0]
    q, _ = dnp.linalg.qr(c.T, mode="complete")
    z = q[:, c.shape[0]:]
    return x0 + z @ dnp.linalg.lstsq(a @ z, b - a @ x0, rcond=None)[0]
  x = kkt(a, b, c, d)
  np.testing.assert_allclose(c @ x, d, atol=1e-12)
  np.testing.assert_allclose(nullspace(a, b, c, d), x, rtol=1e-10)
  jk = dfdx.jacobian(kkt, argnums=(0, 1, 3))(a, b, c, d)
  jn = dfdx.jacobian(nullspace, argnums=(0, 1, 3))(a, b, c, d)
  assert_trees_close(jk, jn, rtol=1e-8, atol=1e-10)
  assert_trees_close(dfdx.jit(dfdx.jacobian(kkt, argnums=(0, 1, 3)))(a, b, c, d), jk)
  check_grads(lambda b, d: kkt(a, b, c, d), (b, d), order=2)


# ---- robot forward kinematics: 4x4 transforms, jacfwd / jacrev / sparse Jacobian -----------
def transform(theta, length):
  ct, st = dnp.cos(theta), dnp.sin(theta)
  return dnp.array([[ct, -st, 0.0, length * ct],
                    [st, ct, 0.0, length * st],
                    [0.0, 0.0, 1.0, 0.0],
                    [0.0, 0.0, 0.0, 1.0]])


LINKS = np.array([0.5, 0.4, 0.3])


def end_effector(q):
  t = dnp.eye(4)
  for qi, li in zip(q, LINKS):
    t = t @ transform(qi, li)
  return dnp.concatenate([t[:2, 3], t[:2, 0]])


def test_robot_forward_kinematics_jacobians():
  q = np.array([0.1, -0.4, 0.7])
  angles = np.cumsum(q)
  exact = np.zeros((4, 3))
  for j in range(3):
    exact[0, j] = -np.sum(LINKS[j:] * np.sin(angles[j:]))
    exact[1, j] = np.sum(LINKS[j:] * np.cos(angles[j:]))
    exact[2, j], exact[3, j] = -np.sin(angles[-1]), np.cos(angles[-1])
  np.testing.assert_allclose(dfdx.jacfwd(end_effector)(q), exact, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(dfdx.jacrev(end_effector)(q), exact, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(dfdx.jit(dfdx.jacfwd(end_effector))(q), exact, rtol=1e-12, atol=1e-15)
  sparse = dfdx.jacobian(end_effector, sparse=True)(q)
  np.testing.assert_allclose(sparse.toarray(), exact, rtol=1e-12, atol=1e-15)
  qs = np.random.default_rng(5).uniform(-1, 1, size=(6, 3))
  per = dfdx.vmap(dfdx.jacfwd(end_effector))(qs)
  np.testing.assert_allclose(per, [dfdx.jacrev(end_effector)(qi) for qi in qs], rtol=1e-12,
                             atol=1e-15)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(dfdx.jacfwd(end_effector)))(qs), per, rtol=1e-12,
                             atol=1e-15)
  check_grads(end_effector, (q,), order=2)
  # damped Gauss-Newton inverse kinematics converges
  target, qk = np.array([0.6, 0.5]), np.zeros(3)
  jac = dfdx.jit(dfdx.jacfwd(lambda q: end_effector(q)[:2]))
  for _ in range(30):
    r, jp = end_effector(qk)[:2] - target, jac(qk)
    qk = qk - np.linalg.solve(jp.T @ jp + 1e-6 * np.eye(3), jp.T @ r)
  np.testing.assert_allclose(end_effector(qk)[:2], target, atol=1e-10)


# ---- masked multi-head attention: -inf masks guarded with where, NaN-free gradients ---------
def attention_loss(variant, params, x, pad, heads=2):
  b, t, dm = x.shape
  split = lambda z: z.reshape(b, t, heads, dm // heads).transpose(0, 2, 1, 3)  # noqa: E731
  q, k, v = (split(x @ params[n]) for n in ("Wq", "Wk", "Wv"))
  s = dnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(dm // heads)
  mask = (np.tril(np.ones((t, t), bool))[None, None] & pad[:, None, None, :]
          & pad[:, None, :, None])
  if variant == "neginf":
    s = dnp.where(mask, s, -dnp.inf)
    s = dnp.where(dnp.any(mask, axis=-1, keepdims=True), s, 0.0)
    a = dnp.where(mask, dss.softmax(s, axis=-1), 0.0)
  elif variant == "large":
    a = dss.softmax(dnp.where(mask, s, -1e9), axis=-1) * mask
  else:
    s = dnp.where(mask, s, -dnp.inf)
    mx = dnp.max(s, axis=-1, keepdims=True)
    e = dnp.where(mask, dnp.exp(s - dnp.where(dnp.isfinite(mx), mx, 0.0)), 0.0)
    den = dnp.sum(e, axis=-1, keepdims=True)
    a = e / dnp.where(den > 0, den, 1.0)
  o = dnp.einsum("bhqk,bhkd->bhqd", a, v).transpose(0, 2, 1, 3).reshape(b, t, dm)
  return dnp.sum(dnp.where(pad[..., None], o @ params["Wo"], 0.0) ** 2)


def test_masked_attention_gradients_are_finite_and_agree(rng):
  b, t, dm = 2, 5, 4
  x = rng.normal(size=(b, t, dm))
  params = {n: rng.normal(size=(dm, dm)) / 2 for n in ("Wq", "Wk", "Wv", "Wo")}
  pad = np.arange(t)[None, :] < np.array([5, 3])[:, None]
  grads = [dfdx.grad(lambda p, x: attention_loss(v, p, x, pad), argnums=(0, 1))(params, x)
           for v in ("neginf", "large", "manual")]
  for g in grads:
    assert all(np.isfinite(leaf).all() for leaf in dfdx.tree.tree_leaves(g))
    assert_trees_close(g, grads[0], rtol=1e-9, atol=1e-12)
  jitted = dfdx.jit(dfdx.grad(lambda p, x: attention_loss("neginf", p, x, pad), argnums=(0, 1)))
  assert_trees_close(jitted(params, x), grads[0], rtol=1e-9, atol=1e-12)
  gw = numerical_grad(lambda w: attention_loss("neginf", {**params, "Wv": w}, x, pad),
                      params["Wv"])
  np.testing.assert_allclose(grads[0][0]["Wv"], gw, rtol=1e-6, atol=1e-8)
  check_grads(lambda x: attention_loss("manual", params, x, pad), (x,), order=1)


# ---- a membrane energy minimized with dfdx.scipy.optimize; sparse Hessian; sensitivity -----
MEM_N = 6
MEM_H = 1.0 / (MEM_N + 1)
_xs = np.linspace(MEM_H, 1 - MEM_H, MEM_N)
LOAD = np.exp(-20 * ((_xs[:, None] - 0.5) ** 2 + (_xs[None, :] - 0.5) ** 2))
EDGE = np.concatenate([np.zeros((MEM_N + 1, MEM_N + 2)),
                       np.sin(np.pi * np.linspace(0, 1, MEM_N + 2))[None]], 0)


def membrane_energy(u_flat, f):
  u = dnp.pad(u_flat.reshape(MEM_N, MEM_N), 1) + EDGE
  ux = (u[1:, 1:-1] - u[:-1, 1:-1]) / MEM_H
  uy = (u[1:-1, 1:] - u[1:-1, :-1]) / MEM_H
  area = (dnp.sum(dnp.sqrt(1 + ux ** 2)) + dnp.sum(dnp.sqrt(1 + uy ** 2))) * MEM_H ** 2
  return area - f * dnp.sum(LOAD * u[1:-1, 1:-1]) * MEM_H ** 2


def test_membrane_minimization_sparse_hessian_and_sensitivity():
  u = np.full(MEM_N * MEM_N, 0.1)
  sparse = dfdx.hessian(membrane_energy, sparse=True)(u, 2.0)
  dense = dfdx.hessian(membrane_energy)(u, 2.0)
  np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-12, atol=1e-14)
  assert sparse.nnz <= 5 * MEM_N * MEM_N
  check_grads(lambda u: membrane_energy(u, 2.0), (u,), order=2)
  sols = [dso.minimize(membrane_energy, np.zeros(MEM_N ** 2), args=(2.0,), method=m, tol=1e-12).x
          for m in ("trust-ncg", "Newton-CG", "BFGS")]
  for s in sols:
    np.testing.assert_allclose(s, sols[0], rtol=1e-6, atol=1e-8)
  assert np.abs(dfdx.grad(membrane_energy)(sols[0], 2.0)).max() < 1e-8

  def solution(f):
    return dso.minimize(membrane_energy, np.zeros(MEM_N ** 2), args=(f,), method="trust-ncg",
                        tol=1e-12).x
  du = dfdx.jacobian(solution)(2.0)
  h = dfdx.hessian(membrane_energy)(sols[0], 2.0)
  b = dfdx.jacobian(lambda f: dfdx.grad(membrane_energy)(sols[0], f))(2.0)
  np.testing.assert_allclose(du, -np.linalg.solve(h, b), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(du, (solution(2.0 + 1e-3) - solution(2.0 - 1e-3)) / 2e-3, rtol=1e-4,
                             atol=1e-7)


# ---- a 1-D finite-element bar assembled by scatter-add (dnp.at), its sparse Jacobian -------
def test_fem_assembly_scatter_add_and_sparse_newton():
  ne = 12
  nn, h = ne + 1, 1.0 / ne
  conn = np.stack([np.arange(ne), np.arange(1, nn)], 1)
  rows, cols = np.repeat(conn, 2, axis=1).reshape(-1), np.tile(conn, (1, 2)).reshape(-1)
  ke = np.array([[1.0, -1.0], [-1.0, 1.0]]) / h
  f = np.full(nn, h)
  f[0] = 0.0

  def compliance(e):
    k = dnp.at(dnp.zeros((nn, nn)))[rows, cols].add((e[:, None, None] * ke).reshape(-1))
    return f[1:] @ dnp.linalg.solve(k[1:, 1:], f[1:])

  def residual(u, e):
    du = (u[1:] - u[:-1]) / h
    flux = e * (1 + du ** 2) * du
    r = dnp.at(dnp.at(dnp.zeros(nn))[np.arange(ne)].add(-flux))[np.arange(1, nn)].add(flux)
    return r - f
  e = 1.0 + 0.5 * np.sin(np.linspace(0, 3, ne))
  k = np.zeros((nn, nn))
  np.add.at(k, (rows, cols), (e[:, None, None] * ke).reshape(-1))
  u = np.concatenate([[0.0], np.linalg.solve(k[1:, 1:], f[1:])])
  exact = -((u[1:] - u[:-1]) / h) ** 2 * h
  np.testing.assert_allclose(dfdx.grad(compliance)(e), exact, rtol=1e-10)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(compliance))(e), exact, rtol=1e-10)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(compliance))(np.stack([e, 2 * e])),
                             [exact, exact / 4], rtol=1e-10)
  check_grads(compliance, (e,), order=2)
  uu = np.linspace(0, 0.3, nn)
  jac = dfdx.jacobian(residual, sparse=True)(uu, e)
  assert jac.nnz == 3 * nn - 2
  np.testing.assert_allclose(jac.toarray(), dfdx.jacfwd(residual)(uu, e), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(dfdx.jacobian(residual, argnums=1, sparse=True)(uu, e).toarray(),
                             dfdx.jacrev(residual, argnums=1)(uu, e), rtol=1e-12, atol=1e-12)
  un = np.zeros(nn)                                    # Newton with the sparse Jacobian
  for _ in range(15):
    r = residual(un, e)
    jac = dfdx.jacobian(residual, sparse=True)(un, e).toarray()
    jac[0], r[0] = np.eye(nn)[0], un[0]
    un = un - np.linalg.solve(jac, r)
  assert np.abs(residual(un, e)[1:]).max() < 1e-12


# ---- a truss with dataclass / namedtuple parameters, wrt=, has_aux, return_value ------------
@dataclass
class Material:
  E: np.ndarray
  rho: float


class Load(NamedTuple):
  fx: np.ndarray
  fy: np.ndarray


NODES = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]], float)
BARS = np.array([[0, 1], [1, 2], [3, 4], [4, 5], [0, 4], [1, 3], [1, 4], [1, 5], [2, 4]])
FREE = np.setdiff1d(np.arange(12), [0, 1, 6, 7])
_d = NODES[BARS[:, 1]] - NODES[BARS[:, 0]]
BAR_LEN = np.linalg.norm(_d, axis=1)
BMAT = np.zeros((len(BARS), 12))
for _e, (_i, _j) in enumerate(BARS):
  BMAT[_e, 2 * _i:2 * _i + 2] = -_d[_e] / BAR_LEN[_e]
  BMAT[_e, 2 * _j:2 * _j + 2] = _d[_e] / BAR_LEN[_e]


def compliance(areas, mat, load):
  stiff = (BMAT.T * (mat.E * areas / BAR_LEN)) @ BMAT
  f = dnp.stack([load.fx, load.fy], axis=1).reshape(-1)[FREE]
  u = dnp.linalg.solve(stiff[np.ix_(FREE, FREE)], f)
  return f @ u, {"u": u, "mass": mat.rho * dnp.sum(areas * BAR_LEN)}


def test_truss_compliance_with_dataclass_and_namedtuple_parameters():
  areas = np.full(len(BARS), 0.01)
  mat = Material(E=np.full(len(BARS), 200.0), rho=7.8)
  load = Load(fx=np.zeros(6), fy=np.array([0, 0, -1.0, 0, 0, -0.5]))
  c, aux = compliance(areas, mat, load)
  u = np.zeros(12)
  u[FREE] = aux["u"]
  strain = BMAT @ u
  exact_areas = -(mat.E / BAR_LEN) * strain ** 2
  (ga, gm, gl), aux2 = dfdx.grad(compliance, argnums=(0, 1, 2), has_aux=True)(areas, mat, load)
  assert isinstance(gm, Material) and isinstance(gl, Load)
  np.testing.assert_allclose(ga, exact_areas, rtol=1e-10)
  np.testing.assert_allclose(gm.E, exact_areas * areas / mat.E, rtol=1e-10)
  assert gm.rho == 0.0
  fvec = np.stack([load.fx, load.fy], 1).reshape(-1)
  np.testing.assert_allclose(np.stack([gl.fx, gl.fy], 1).reshape(-1)[FREE], 2 * aux["u"],
                             rtol=1e-10)
  np.testing.assert_allclose(aux2["mass"], mat.rho * np.sum(areas * BAR_LEN))
  (gw, _), _ = dfdx.grad(compliance, wrt="areas,load", has_aux=True)(areas=areas, mat=mat,
                                                                     load=load)
  np.testing.assert_allclose(gw, exact_areas, rtol=1e-10)
  g3, value, aux3 = dfdx.grad(compliance, wrt="areas", has_aux=True, return_value=True)(
      areas, mat, load)
  np.testing.assert_allclose(value, c)
  np.testing.assert_allclose(g3, exact_areas, rtol=1e-10)
  (val, _), g4 = dfdx.value_and_grad(compliance, has_aux=True)(areas, mat, load)
  np.testing.assert_allclose(val, fvec[FREE] @ aux["u"])
  jitted = dfdx.jit(dfdx.grad(compliance, argnums=(0, 1, 2), has_aux=True))(areas, mat, load)
  assert isinstance(jitted[0][1], Material)
  assert_trees_close(jitted[0][0], ga)
  loads = Load(fx=np.zeros((3, 6)), fy=np.stack([load.fy * s for s in (1.0, 2.0, 3.0)]))
  per = dfdx.vmap(lambda ld: dfdx.grad(compliance, has_aux=True)(areas, mat, ld)[0])(loads)
  np.testing.assert_allclose(per, [exact_areas * s ** 2 for s in (1.0, 2.0, 3.0)], rtol=1e-10)
  check_grads(lambda a, m: compliance(a, m, load)[0],
              (areas * 100, Material(mat.E / 100, 7.8)), order=2, rtol=1e-4)


# ---- gradients exported as NumPy source, exec'd and compared ------------------------------
def test_exported_gradients_run_standalone(rng):
  import dfdx.export
  x, y = rng.normal(size=(12, 3)), rng.normal(size=12)

  def nll(w, s):
    r = y - x @ w
    return dnp.sum(0.5 * (r / dnp.exp(s)) ** 2 + s) + 0.1 * dss.logsumexp(w)

  def rnn(a, xs):
    h, hs = dfdx.scan(lambda h, xi: (dnp.tanh(a * h + xi), h * h), 0.0, xs)
    return h + dnp.sum(hs)

  def decay(k, u0):
    step = lambda i, u: u + 0.05 * (-k * u + dnp.roll(u, 1))  # noqa: E731
    return dnp.sum(dfdx.fori_loop(0, 10, step, u0) ** 2)
  cases = [(dfdx.grad(nll, argnums=(0, 1)), (np.array([0.1, -0.2, 0.3]), 0.5)),
           (dfdx.hessian(nll), (np.array([0.1, -0.2, 0.3]), 0.5)),
           (dfdx.jacfwd(lambda w: x @ dnp.tanh(w)), (np.array([0.1, -0.2, 0.3]),)),
           (dfdx.grad(rnn), (0.4, rng.normal(size=6))),
           (dfdx.grad(decay, argnums=(0, 1)), (0.7, np.linspace(0, 1, 5)))]
  for g, args in cases:
    namespace = {}
    exec(dfdx.export.to_source(g, *args, name="exported"), namespace)
    assert_trees_close(namespace["exported"](*args), g(*args), rtol=1e-12, atol=1e-14)


# ---- a Kalman filter's log likelihood through scan; an FFT / convolve / interp fit ---------
def kalman_loglik(theta, obs):
  f = np.array([[1.0, 1.0], [0.0, 1.0]])
  q, r = dnp.exp(2 * theta[0]), dnp.exp(2 * theta[1])

  def step(carry, yt):
    m, p = carry
    m, p = f @ m, f @ p @ f.T + q * np.diag([1.0, 0.1])
    s = p[0, 0] + r
    k = p[:, 0] / s
    v = yt - m[0]
    return (m + k * v, p - dnp.outer(k, k) * s), -0.5 * (dnp.log(2 * np.pi * s) + v ** 2 / s)
  _, lls = dfdx.scan(step, (np.zeros(2), 10.0 * np.eye(2)), obs)
  return dnp.sum(lls)


def test_kalman_filter_likelihood(rng):
  obs = np.cumsum(0.1 * rng.normal(size=15)) + 0.3 * rng.normal(size=15)
  th = np.array([-1.0, -1.2])
  g = dfdx.grad(kalman_loglik)(th, obs)
  np.testing.assert_allclose(g, numerical_grad(lambda t: kalman_loglik(t, obs), th), rtol=1e-6)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(kalman_loglik))(th, obs), g, rtol=1e-10)
  np.testing.assert_allclose(dfdx.jit(dfdx.hessian(kalman_loglik))(th, obs),
                             dfdx.hessian(kalman_loglik)(th, obs), rtol=1e-9)
  ths = np.stack([th, th + 0.2, th - 0.3])
  per = dfdx.vmap(dfdx.grad(kalman_loglik), in_axes=(0, None))(ths, obs)
  np.testing.assert_allclose(per, [dfdx.grad(kalman_loglik)(t, obs) for t in ths], rtol=1e-10)
  check_grads(lambda t: kalman_loglik(t, obs), (th,), order=2)


def test_spectral_fit_fft_convolve_interp(rng):
  t = np.linspace(0, 4, 32)
  sig = np.exp(-0.3 * t) * np.sin(2 * np.pi * 1.5 * t) + 0.05 * rng.normal(size=32)
  tq = np.linspace(0.1, 3.9, 9)

  def loss(p):
    m = dnp.exp(-p[0] * t) * dnp.sin(2 * np.pi * p[1] * t + p[2])
    spec = dnp.abs(dnp.fft.rfft(m))
    smooth = dnp.convolve(m, np.ones(5) / 5, mode="same")
    return (dnp.sum((spec - np.abs(np.fft.rfft(sig))) ** 2) / 32 + dnp.sum((m - sig) ** 2)
            + 1e-3 * dnp.sum(dnp.interp(tq, t, smooth) ** 2) + 1e-2 * dnp.sum(dnp.diff(m) ** 2))
  p = np.array([0.25, 1.45, 0.1])
  g = dfdx.grad(loss)(p)
  np.testing.assert_allclose(g, numerical_grad(loss, p), rtol=1e-6)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(loss))(p), g, rtol=1e-10)
  check_grads(loss, (p,), order=2)


# ---- N-body forces with a zero distance on the diagonal (norm and 1/r masked by where) -----
def test_nbody_forces_are_finite_with_masked_self_interaction(rng):
  nb = 4
  pos, masses = rng.normal(size=(nb, 3)), rng.uniform(0.5, 1.5, size=nb)
  eye = np.eye(nb, dtype=bool)

  def potential(pos, m):
    r = dnp.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    return -0.5 * dnp.sum(m[:, None] * m[None, :] * dnp.where(eye, 0.0, 1.0 / r))
  diff = pos[:, None, :] - pos[None, :, :]
  r = np.linalg.norm(diff, axis=-1) + eye
  exact = np.sum((masses[:, None] * masses[None, :] / r ** 3 * ~eye)[..., None] * diff, axis=1)
  with np.errstate(divide="ignore"):
    g = dfdx.grad(potential)(pos, masses)
    np.testing.assert_allclose(g, exact, rtol=1e-12)
    np.testing.assert_allclose(dfdx.jit(dfdx.grad(potential))(pos, masses), exact, rtol=1e-12)

    def simulate(m, dt=0.01, steps=10):
      def step(c, _):
        p, v = c
        v = v - 0.5 * dt * dfdx.grad(potential)(p, m) / m[:, None]
        p = p + dt * v
        v = v - 0.5 * dt * dfdx.grad(potential)(p, m) / m[:, None]
        return (p, v), None
      return dnp.sum(dfdx.scan(step, (pos, np.zeros_like(pos)), None, length=steps)[0][0] ** 2)
    gm = dfdx.grad(simulate)(masses)
    assert np.isfinite(gm).all()
    np.testing.assert_allclose(gm, numerical_grad(simulate, masses), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(dfdx.jit(dfdx.grad(simulate))(masses), gm, rtol=1e-10)


# ---- vibration modes (eigh) and a Module trained with grad_vars; custom_vjp clipping -------
def test_vibration_modes_eigenvalue_derivatives():
  n = 5
  masses = np.linspace(1.0, 2.0, n)
  mi = 1 / np.sqrt(masses)

  def matrix(k):
    main = dnp.concatenate([k[:-1] + k[1:], k[-1:]])
    stiff = dnp.diag(main) - dnp.diag(k[1:], 1) - dnp.diag(k[1:], -1)
    return mi[:, None] * stiff * mi[None, :]

  def lowest_two(k):
    return dnp.linalg.eigh(matrix(k))[0][:2]
  k = np.linspace(0.6, 1.0, n)
  w2, v = np.linalg.eigh(matrix(k))
  exact = np.array([[v[:, i] @ (dfdx.jacfwd(matrix)(k)[..., j]) @ v[:, i] for j in range(n)]
                    for i in range(2)])
  np.testing.assert_allclose(dfdx.jacfwd(lowest_two)(k), exact, rtol=1e-10, atol=1e-13)
  np.testing.assert_allclose(dfdx.jacrev(lowest_two)(k), exact, rtol=1e-10, atol=1e-13)
  np.testing.assert_allclose(dfdx.jit(dfdx.jacrev(lowest_two))(k), exact, rtol=1e-10, atol=1e-13)
  check_grads(lambda k: dnp.sum(dnp.sqrt(lowest_two(k))), (k,), order=2)


def test_module_grad_vars_and_custom_vjp_gradient_clipping(rng):
  @dfdx.custom_vjp
  def clip_gradient(x):
    return x
  clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (dnp.clip(g, -0.1, 0.1),))
  f = lambda x: dnp.sum(clip_gradient(x) ** 3)  # noqa: E731
  x = np.array([0.1, 1.0, -2.0])
  np.testing.assert_allclose(dfdx.grad(f)(x), np.clip(3 * x ** 2, -0.1, 0.1))
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(x), np.clip(3 * x ** 2, -0.1, 0.1))
  xs = np.stack([x, 0.1 * x])
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(xs), np.clip(3 * xs ** 2, -0.1, 0.1))

  class Linear(dfdx.Module):
    def __init__(self):
      super().__init__()
      self.W = dfdx.TrainVar(rng.normal(size=(3, 2)))
      self.b = dfdx.TrainVar(np.zeros(2))

    def __call__(self, x):
      return x @ self.W.value + self.b.value
  lin = Linear()
  xd = rng.normal(size=(20, 3))
  yd = xd @ np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]]) + 0.3
  loss = lambda: dnp.mean((lin(xd) - yd) ** 2)  # noqa: E731
  grad = dfdx.grad(loss, grad_vars=lin.train_vars())
  variables = lin.train_vars()
  for _ in range(300):
    grads = grad()
    for key in variables:
      variables[key].value = variables[key].value - 0.2 * grads[key]
  assert loss() < 1e-10
  assert_trees_close(dfdx.jit(dfdx.grad(loss, grad_vars=lin.train_vars()))(), grad(), atol=1e-12)


# ---- curve fitting and its sensitivity to the data; a multivariate normal likelihood -------
def test_curve_fit_sensitivity_and_multivariate_normal(rng):
  xd = np.linspace(0, 5, 15)
  yd = 2.0 * np.exp(-0.7 * xd) + 0.3 + 0.02 * rng.normal(size=15)

  def model(x, a, k, c):
    return a * dnp.exp(-k * x) + c

  def fit(y):
    return dso.curve_fit(model, xd, y, p0=[1.0, 1.0, 0.0])[0]
  ref = scipy.optimize.curve_fit(lambda x, a, k, c: a * np.exp(-k * x) + c, xd, yd,
                                 p0=[1.0, 1.0, 0.0])[0]
  np.testing.assert_allclose(fit(yd), ref, rtol=1e-6)
  jac = dfdx.jacobian(fit)(yd)
  fd = np.stack([(fit(yd + 1e-6 * e) - fit(yd - 1e-6 * e)) / 2e-6 for e in np.eye(15)], 1)
  np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-6)
  ys = yd + 0.02 * rng.normal(size=(2, 15))
  np.testing.assert_allclose(dfdx.vmap(fit)(ys), [fit(y) for y in ys], rtol=1e-8)

  xs = rng.normal(size=(10, 3))

  def mvn(mu, lraw):
    chol = dnp.tril(lraw) + 3 * np.eye(3)
    return dnp.sum(dst.multivariate_normal.logpdf(xs, mu, chol @ chol.T))
  mu, lr = np.array([0.1, -0.2, 0.3]), 0.1 * rng.normal(size=(3, 3))
  chol = np.tril(lr) + 3 * np.eye(3)
  cov = chol @ chol.T
  np.testing.assert_allclose(dfdx.grad(mvn)(mu, lr), np.linalg.solve(cov, (xs - mu).sum(0)),
                             rtol=1e-10)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(mvn, argnums=1))(mu, lr),
                             dfdx.grad(mvn, argnums=1)(mu, lr), rtol=1e-10)
  check_grads(mvn, (mu, lr), order=2)


# ---- Taylor mode (pendulum), Newton-CG with hvp, linearize, checkpointed residual blocks ---
def test_jet_hvp_linearize_and_checkpoint(rng):
  def pendulum_derivatives(y0, v0, order=5):
    ds = [y0, v0]
    for k in range(order - 1):
      prim, terms = dfdx.jet(lambda y: -dnp.sin(y), (ds[0],), ([*ds[1:]],))
      ds.append(prim if k == 0 else terms[k - 1])
    return dnp.stack(ds)
  y0, v0 = 0.5, 0.1
  d = pendulum_derivatives(y0, v0)
  np.testing.assert_allclose(d[2:5], [-np.sin(y0), -np.cos(y0) * v0,
                                      np.sin(y0) * v0 ** 2 + np.cos(y0) * np.sin(y0)], rtol=1e-12)
  np.testing.assert_allclose(dfdx.jacfwd(lambda y: pendulum_derivatives(y, v0))(y0)[2], -np.cos(y0),
                             rtol=1e-12)

  x, y = rng.normal(size=(30, 4)), (rng.uniform(size=30) < 0.5).astype(float)

  def loss(w):
    return dnp.mean(dnp.logaddexp(0.0, x @ w) - y * (x @ w)) + 0.05 * dnp.sum(w ** 2)
  w, v = 0.1 * rng.normal(size=4), rng.normal(size=4)
  hvp = dfdx.jit(lambda w, v: dfdx.hvp(loss, (w,), (v,)))
  np.testing.assert_allclose(hvp(w, v), dfdx.hessian(loss)(w) @ v, rtol=1e-10)
  for _ in range(6):                                   # Newton steps with CG on hvp
    p, r = np.zeros(4), -dfdx.grad(loss)(w)
    dvec = r.copy()
    for _ in range(8):
      hd = hvp(w, dvec)
      a = r @ r / (dvec @ hd)
      p, rn = p + a * dvec, r - a * hd
      if np.linalg.norm(rn) < 1e-14:
        break
      dvec, r = rn + (rn @ rn) / (r @ r) * dvec, rn
    w = w + p
  assert np.linalg.norm(dfdx.grad(loss)(w)) < 1e-10
  _, f_jvp = dfdx.linearize(lambda w: dnp.tanh(x @ w), w)
  vs = rng.normal(size=(3, 4))
  np.testing.assert_allclose(dfdx.vmap(f_jvp)(vs),
                             [(1 - np.tanh(x @ w) ** 2) * (x @ vi) for vi in vs], rtol=1e-10)

  weights = [rng.normal(size=(6, 6)) / 3 for _ in range(5)]

  def deep(ws, xin, wrap):
    h = xin
    for wi in ws:
      h = wrap(lambda h, wi: h + dnp.tanh(h @ wi))(h, wi)
    return dnp.sum(h ** 2)
  xin = rng.normal(size=(3, 6))
  plain = dfdx.grad(deep)(weights, xin, lambda f: f)
  assert_trees_close(dfdx.grad(deep)(weights, xin, dfdx.checkpoint), plain)
  assert_trees_close(dfdx.jit(dfdx.grad(lambda ws, x: deep(ws, x, dfdx.checkpoint)))(weights, xin),
                     plain)
  check_grads(lambda x: deep(weights, x, dfdx.checkpoint), (xin,), order=2)
