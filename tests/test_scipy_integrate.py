"""dfdx.scipy.integrate.odeint: SciPy's values; derivatives in y0, args, t and closed-over
values against the closed form of y' = -k y (y = y0 exp(-k t)) in forward and reverse mode
(the adjoint method), to second order; check_grads on a nonlinear system; vmap, jit, errors.
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad
from dfdx.scipy.integrate import odeint
from dfdx.testing import check_grads

si = pytest.importorskip("scipy.integrate")
integrate = pytest.importorskip("dfdx._src.scipy_integrate")


@pytest.fixture(params=["adjoint", "sensitivities"])
def reverse_by(request, monkeypatch):
  """Reverse mode by the adjoint method, or by the forward sensitivities of the few
  differentiated inputs contracted with the cotangents (odeint_tangent's transpose chooses
  by the size of the two systems: both are forced here)."""
  large = request.param == "sensitivities"
  monkeypatch.setattr(integrate, "FORWARD_STATE_FACTOR", 10 ** 6 if large else 0)
  monkeypatch.setattr(integrate, "FORWARD_STATE_EXTRA", 10 ** 6 if large else 0)
  return request.param

T = np.array([0.0, 0.3, 1.0, 1.7])
TOL = dict(rtol=1e-11, atol=1e-12)


def decay(y, t, k):
  return -k * y


def solve_decay(y0, k, t=T):
  return odeint(decay, y0, t, (k,), **TOL)[:, 0]


def test_untraced_call_is_scipy():
  np.testing.assert_array_equal(odeint(decay, 2.0, T, (1.5,)), si.odeint(decay, 2.0, T, (1.5,)))
  out = odeint(decay, [1.0, 2.0], T, args=(0.5,), full_output=True)
  assert isinstance(out, tuple) and out[0].shape == (4, 2)


def test_traced_values_match_scipy():
  y = dfdx.jvp(lambda k: odeint(decay, np.array([2.0, 1.0]), T, (k,), **TOL), (1.5,), (1.0,))[0]
  np.testing.assert_allclose(y, si.odeint(decay, [2.0, 1.0], T, (1.5,), **TOL), rtol=1e-14)
  assert y.shape == (4, 2) and y.dtype == np.float64


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_closed_form_derivatives(mode, reverse_by):
  y0, k = 2.0, 1.5
  jac = dfdx.jacfwd if mode == "fwd" else dfdx.jacrev
  d_y0, d_k, d_t = jac(solve_decay, (0, 1, 2))(y0, k, T)
  e = np.exp(-k * T)
  np.testing.assert_allclose(d_y0, e, rtol=1e-8)
  np.testing.assert_allclose(d_k, -T * y0 * e, rtol=1e-8, atol=1e-12)
  # y(t_i) = y0 exp(-k (t_i - t_0)): the output time moves it by -k y, the start by +k y;
  # y(t_0) = y0 does not move at all.
  expected = np.diag(-k * y0 * e)
  expected[1:, 0] = k * y0 * e[1:]
  expected[0, 0] = 0.0
  np.testing.assert_allclose(d_t, expected, rtol=1e-8, atol=1e-12)


def test_second_derivatives_closed_form(reverse_by):
  y0, k, t = 2.0, 1.5, T[-1]
  last = lambda y0, k: solve_decay(y0, k)[-1]  # noqa: E731
  hess = dfdx.hessian(last, (0, 1))(y0, k)
  e = np.exp(-k * t)
  expected = [[0.0, -t * e], [-t * e, t * t * y0 * e]]
  np.testing.assert_allclose(np.array(hess, float), expected, rtol=1e-6, atol=1e-10)
  # reverse over reverse
  g2 = dfdx.grad(dfdx.grad(last, 1), 1)(y0, k)
  np.testing.assert_allclose(g2, t * t * y0 * e, rtol=1e-6)


def test_reverse_mode_with_or_without_vjp_rules(reverse_by):
  y0, k = 2.0, 1.5
  expected = dfdx.grad(lambda k: solve_decay(y0, k)[-1])(k)
  with ad.use_vjp_rules(False):
    got = dfdx.grad(lambda k: solve_decay(y0, k)[-1])(k)
  np.testing.assert_allclose(got, expected, rtol=1e-12)
  np.testing.assert_allclose(got, -T[-1] * y0 * np.exp(-k * T[-1]), rtol=1e-8)


def lotka_volterra(y, t, params):
  a, b = params["a"], params["b"]
  prey, predator = y[0], y[1]
  return dnp.stack([a * prey - b * prey * predator, b * prey * predator - predator])


def test_check_grads_nonlinear_system_with_pytree_args(reverse_by):
  t = np.array([0.0, 0.5, 1.2])

  def f(y0, a, b):
    return odeint(lotka_volterra, y0, t, ({"a": a, "b": b},), **TOL)
  check_grads(f, (np.array([1.0, 0.5]), 1.1, 0.4), order=1, rtol=1e-5, atol=1e-6)
  check_grads(lambda a: f(np.array([1.0, 0.5]), a, 0.4)[-1], (1.1,), order=2, rtol=1e-4,
              atol=1e-5)


def test_closed_over_tracers_and_times(reverse_by):
  def f(k, t):
    return odeint(lambda y, s: dnp.stack([y[1], -k * y[0] + dnp.cos(s)]),
                  np.array([1.0, 0.0]), t, **TOL)
  check_grads(f, (2.0, T), order=1, rtol=1e-5, atol=1e-6)
  check_grads(lambda k: f(k, T)[-1, 0], (2.0,), order=2, rtol=1e-4, atol=1e-5)


def test_reverse_mode_chooses_the_smaller_system(monkeypatch):
  # Lotka-Volterra fitted in its 4 parameters at 21 times: 4 sensitivities (a state of 10)
  # in one solve rather than 20 adjoint solves of a state of 8; the two agree.
  t = np.linspace(0.0, 3.0, 21)
  f = lambda y, s, a, b, c, d: dnp.stack([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])  # noqa
  loss = lambda th: dnp.sum(odeint(f, np.array([1.0, 0.5]), t, tuple(th), **TOL) ** 2)  # noqa
  theta = np.array([1.1, 0.4, 0.1, 0.4])
  calls = []
  by_sensitivities = integrate._transpose_by_sensitivities
  monkeypatch.setattr(integrate, "_transpose_by_sensitivities",
                      lambda *a: calls.append(1) or by_sensitivities(*a))
  g = dfdx.grad(loss)(theta)
  assert calls == [1]
  monkeypatch.setattr(integrate, "FORWARD_STATE_FACTOR", 0)
  monkeypatch.setattr(integrate, "FORWARD_STATE_EXTRA", 0)
  np.testing.assert_allclose(g, dfdx.grad(loss)(theta), rtol=1e-7)
  assert calls == [1]
  # 40 coupled decays differentiated in y0: 40 sensitivities of 40 states (1,640) against
  # an adjoint state of 80: the adjoint
  monkeypatch.undo()
  monkeypatch.setattr(integrate, "_transpose_by_sensitivities",
                      lambda *a: calls.append(2) or by_sensitivities(*a))
  A = -np.eye(40) + 0.01 * np.ones((40, 40))
  g = dfdx.grad(lambda y0: dnp.sum(odeint(lambda y, s: A @ y, y0, T, **TOL)))(np.ones(40))
  assert calls == [1]
  from scipy.linalg import expm
  expected = sum(expm(A * (s - T[0])).T @ np.ones(40) for s in T)
  np.testing.assert_allclose(g, expected, rtol=1e-8)


def test_tfirst():
  got = dfdx.jvp(lambda k: odeint(lambda t, y, k: -k * y * t, 1.0, T, (k,), tfirst=True, **TOL),
                 (1.5,), (1.0,))
  np.testing.assert_allclose(got[0][:, 0], np.exp(-1.5 * T ** 2 / 2), rtol=1e-9)
  np.testing.assert_allclose(got[1][:, 0], -T ** 2 / 2 * np.exp(-1.5 * T ** 2 / 2), rtol=1e-8,
                             atol=1e-12)


def test_vmap_matches_stacked_calls(reverse_by):
  ks = np.array([0.5, 1.0, 2.0])
  out = dfdx.vmap(lambda k: solve_decay(2.0, k))(ks)
  np.testing.assert_allclose(out, [solve_decay(2.0, k) for k in ks], rtol=1e-12)
  grads = dfdx.vmap(dfdx.grad(lambda k: solve_decay(2.0, k)[-1]))(ks)
  np.testing.assert_allclose(grads, -T[-1] * 2.0 * np.exp(-ks * T[-1]), rtol=1e-8)


def test_jit(reverse_by):
  f = dfdx.jit(lambda y0, k: solve_decay(y0, k))
  np.testing.assert_allclose(f(2.0, 1.5), 2.0 * np.exp(-1.5 * T), rtol=1e-9)
  g = dfdx.jit(dfdx.grad(lambda k: solve_decay(2.0, k)[-1]))
  np.testing.assert_allclose(g(1.5), -T[-1] * 2.0 * np.exp(-1.5 * T[-1]), rtol=1e-8)


def test_errors():
  run = lambda **kw: dfdx.jvp(lambda k: odeint(decay, **kw, args=(k,)), (1.0,), (1.0,))  # noqa
  with pytest.raises(ValueError, match="one-dimensional"):
    run(y0=np.ones((2, 2)), t=T)
  with pytest.raises(NotImplementedError, match="full_output"):
    run(y0=1.0, t=T, full_output=True)
  with pytest.raises(ValueError, match="func returned shape"):
    dfdx.jvp(lambda y0: odeint(lambda y, t: dnp.ones(3), y0, T), (np.ones(2),), (np.ones(2),))


def test_exported_derivative_runs_with_numpy_and_scipy_alone():
  # The right-hand side is written out as a function of its own; reverse mode's adjoint
  # solves are odeints too, and forward mode's tangent is written out as its definition, so
  # the exported derivatives call SciPy directly.
  t = np.linspace(0, 1, 5)

  def f(k):
    ys = odeint(lambda y, s, k: -k * y * dnp.sin(s + 1), np.array([1.0, 2.0]), t, (k,),
                rtol=1e-10, atol=1e-10)
    return dnp.sum(ys)
  for fn in (f, dfdx.grad(f), dfdx.jacfwd(f)):
    source = dfdx.export.to_source(fn, 0.7, name="exported")
    assert "_dfdx_impl" not in source and "import dfdx" not in source
    namespace = {}
    exec(source, namespace)
    np.testing.assert_allclose(namespace["exported"](0.7), fn(0.7), rtol=1e-12)


def test_extra_arguments_passed_positionally_are_a_clear_error():
  # (a, 0.5) meant as func's arguments: 0.5 lands in Dfun, which must be a function
  f = lambda y, t, a, b: -a * y + b  # noqa: E731
  t = np.linspace(0.0, 1.0, 5)
  for run in (lambda: odeint(f, np.ones(2), t, 1.0, 0.5),
              lambda: dfdx.grad(lambda a: dnp.sum(odeint(f, np.ones(2), t, a, 0.5)))(1.0)):
    with pytest.raises(TypeError, match=r"Dfun must be a function.*args=\(a, b, \.\.\.\)"):
      run()


def test_right_hand_side_staged_again_reads_current_values(monkeypatch):
  # A right-hand side equal to a recent one reuses its program (compiled code and augmented
  # systems built once); one that reads changed values (a closed-over array changed in
  # place, another float) is a new program.
  monkeypatch.setattr(integrate, "_recent_programs", [])
  rates = np.array([1.0, 2.0])
  scale = [1.0]

  def solve(k):
    return odeint(lambda y, s, k: -k * rates * y * scale[0], np.ones(2), T, (k,), **TOL)
  d = lambda: dfdx.jacfwd(solve)(0.5)[-1]  # noqa: E731
  expected = lambda: -rates * scale[0] * T[-1] * np.exp(-0.5 * rates * scale[0] * T[-1])  # noqa
  np.testing.assert_allclose(d(), expected(), rtol=1e-8)
  first = integrate._recent_programs[-1][0]
  np.testing.assert_allclose(d(), expected(), rtol=1e-8)
  assert integrate._recent_programs[-1][0] is first and len(integrate._recent_programs) == 1
  rates[1] = 3.0
  np.testing.assert_allclose(d(), expected(), rtol=1e-8)
  scale[0] = 0.5
  np.testing.assert_allclose(d(), expected(), rtol=1e-8)
  assert len(integrate._recent_programs) == 3
