"""dfdx.while_loop, dfdx.cond and dfdx.switch: Python control flow outside jit and vmap, one
equation under them. The spec table (tests/specs/control.py) checks the primitives'
derivatives against finite differences to second order; these tests check the API, the
compositions and the errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads


def newton_sqrt(a):
  """sqrt(a) by Newton's iteration, and the number of steps it took."""
  return dfdx.while_loop(lambda v: dnp.abs(v[0] * v[0] - a) > 1e-12 * a,
                         lambda v: ((v[0] + a / v[0]) / 2, v[1] + 1), (a, 0))


def test_while_loop_is_the_python_loop():
  root, steps = newton_sqrt(2.0)
  r, expected_steps = 2.0, 0
  while abs(r * r - 2.0) > 1e-12 * 2.0:
    r, expected_steps = (r + 2.0 / r) / 2, expected_steps + 1
  assert root == r and steps == expected_steps
  root_jit, steps_jit = dfdx.jit(newton_sqrt)(2.0)
  assert root_jit == root and steps_jit == steps
  # a Python number the loop keeps one stays one, under jit too (as `a` does: root is float)
  assert type(steps) is type(steps_jit) is int and type(root) is type(root_jit) is float


def test_while_loop_derivatives():
  f = lambda a: newton_sqrt(a)[0]  # noqa: E731
  exact = 0.5 / np.sqrt(2.0)
  np.testing.assert_allclose(dfdx.grad(f)(2.0), exact, rtol=1e-12)  # the Python loop
  for d in (dfdx.jacfwd(dfdx.jit(f))(2.0), dfdx.jit(dfdx.jacfwd(f))(2.0),
            dfdx.jvp(dfdx.jit(f), (2.0,), (1.0,))[1]):
    np.testing.assert_allclose(d, exact, rtol=1e-12)
  check_grads(dfdx.jit(f), (2.0,), order=2, modes=("fwd", "rev"))
  # Reverse mode under jit: the loop counts its steps, and the reverse pass runs them back.
  for d in (dfdx.jit(dfdx.grad(f))(2.0), dfdx.grad(dfdx.jit(f))(2.0)):
    np.testing.assert_allclose(d, exact, rtol=1e-12)
  second = -0.25 * 2.0 ** -1.5  # d^2 sqrt(a) / da^2
  for h in (dfdx.jit(dfdx.hessian(f))(2.0), dfdx.jit(dfdx.grad(dfdx.grad(f)))(2.0),
            dfdx.hessian(dfdx.jit(f))(2.0)):
    np.testing.assert_allclose(h, second, rtol=1e-10)


def test_while_loop_reverse_mode_through_values_and_constants(rng):
  def f(w, x0):  # a fixed number of steps, so that the Python loop gives the same Jacobian
    return dfdx.while_loop(lambda v: v[1] < 5, lambda v: (dnp.sin(v[0] * w) + v[0], v[1] + 1),
                           (x0, 0))[0]
  x0 = rng.uniform(0, 1, 3)
  expected = dfdx.jacrev(f, (0, 1))(0.7, x0)  # the Python loop's tape
  for jac in (dfdx.jit(dfdx.jacrev(f, (0, 1)))(0.7, x0),
              dfdx.jacrev(dfdx.jit(f), (0, 1))(0.7, x0)):
    for a, b in zip(jac, expected):
      np.testing.assert_allclose(a, b, rtol=1e-13)
  check_grads(dfdx.jit(f), (0.7, x0), order=2, modes=("fwd", "rev"))
  np.testing.assert_allclose(
      dfdx.jit(dfdx.vmap(dfdx.grad(lambda w, x: dnp.sum(f(w, x))), (None, 0)))(0.7, x0[:, None]),
      [dfdx.grad(lambda w: dnp.sum(f(w, x)))(0.7) for x in x0[:, None]], rtol=1e-13)


def test_while_loop_under_vmap_stops_each_example_on_its_own():
  a = np.array([2.0, 9.0, 1e6])
  roots, steps = dfdx.vmap(newton_sqrt)(a)
  for k in range(3):
    r, s = newton_sqrt(a[k])
    assert roots[k] == r and steps[k] == s
  assert len(set(steps.tolist())) > 1  # the examples took different numbers of steps
  np.testing.assert_array_equal(dfdx.jit(dfdx.vmap(newton_sqrt))(a)[1], steps)
  np.testing.assert_allclose(dfdx.vmap(dfdx.jacfwd(lambda a: newton_sqrt(a)[0]))(a),
                             0.5 / np.sqrt(a), rtol=1e-12)


def test_while_loop_vmap_of_a_closed_over_value():
  # Only the body's constant is batched: the condition does not depend on the batch.
  def f(w):
    return dfdx.while_loop(lambda v: v[1] < 4, lambda v: (v[0] * w + 1.0, v[1] + 1), (1.0, 0))[0]
  w = np.array([0.5, 1.0, 2.0])
  np.testing.assert_allclose(dfdx.vmap(f)(w), [f(x) for x in w], rtol=1e-15)


def test_while_loop_errors():
  with pytest.raises(TypeError, match="cond_fun must return a boolean scalar"):
    dfdx.while_loop(lambda v: v < 3, lambda v: v + 1, np.zeros(2))
  with pytest.raises(TypeError, match="cond_fun must return a boolean scalar"):
    dfdx.jit(lambda x: dfdx.while_loop(lambda v: v, lambda v: v - 1, x))(3.0)
  with pytest.raises(TypeError, match=r"body_fun.*float64\[2\].*float64\[\]"):
    dfdx.jit(lambda x: dfdx.while_loop(lambda v: dnp.sum(v) < 3, lambda v: dnp.sum(v), x))(
        np.zeros(2))


def test_cond_takes_one_branch_under_jit():
  f = dfdx.jit(lambda x: dfdx.cond(x > 0, lambda x: dnp.log(x), lambda x: -x, x))
  with np.errstate(all="raise"):  # the log of a negative number is never computed
    assert f(-2.0) == 2.0
    assert f(np.e) == 1.0
    assert dfdx.grad(f)(-2.0) == -1.0


def _piecewise(x, w):
  return dfdx.cond(dnp.sum(x) > 0, lambda x: dnp.sin(x * w), lambda x: dnp.cos(x) * w ** 2, x)


@pytest.mark.parametrize("sign", [1, -1])
def test_cond_derivatives(sign):
  x, w = sign * np.array([0.3, 0.5]), 1.3
  expected = dfdx.jacrev(_piecewise, (0, 1))(x, w)  # the Python if
  for jac in (dfdx.jit(dfdx.jacrev(_piecewise, (0, 1)))(x, w),
              dfdx.jacfwd(dfdx.jit(_piecewise), (0, 1))(x, w),
              dfdx.jacrev(dfdx.jit(_piecewise), (0, 1))(x, w)):
    for a, b in zip(jac, expected):
      np.testing.assert_allclose(a, b, rtol=1e-14)
  check_grads(dfdx.jit(_piecewise), (x, w), order=2)
  np.testing.assert_allclose(dfdx.jit(dfdx.hessian(lambda w: dnp.sum(_piecewise(x, w))))(w),
                             dfdx.hessian(lambda w: dnp.sum(_piecewise(x, w)))(w), rtol=1e-13)


def test_cond_under_vmap():
  xs = np.array([[0.3, 0.5], [-0.3, -0.5], [0.6, -0.1]])
  expected = np.stack([_piecewise(x, 1.3) for x in xs])
  np.testing.assert_allclose(dfdx.vmap(_piecewise, (0, None))(xs, 1.3), expected, rtol=1e-15)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(_piecewise, (0, None)))(xs, 1.3), expected,
                             rtol=1e-15)
  grads = dfdx.vmap(dfdx.grad(lambda x, w: dnp.sum(_piecewise(x, w)), 1), (0, None))(xs, 1.3)
  np.testing.assert_allclose(
      grads, [dfdx.grad(lambda w: dnp.sum(_piecewise(x, w)))(1.3) for x in xs], rtol=1e-14)
  # An unbatched predicate with a batched operand: one branch for the whole batch.
  ws = np.array([1.0, 2.0])
  np.testing.assert_allclose(dfdx.vmap(_piecewise, (None, 0))(xs[0], ws),
                             [_piecewise(xs[0], w) for w in ws], rtol=1e-15)


def test_switch_clips_the_index():
  branches = [lambda x: x, lambda x: 2 * x, lambda x: 3 * x]
  for f in (lambda i, x: dfdx.switch(i, branches, x),
            dfdx.jit(lambda i, x: dfdx.switch(i, branches, x))):
    assert [float(f(i, 1.0)) for i in (-5, 0, 1, 2, 7)] == [1.0, 1.0, 2.0, 3.0, 3.0]
  i = np.array([0, 2, 9, -1])
  np.testing.assert_array_equal(dfdx.vmap(lambda i: dfdx.switch(i, branches, 1.0))(i),
                                [1.0, 3.0, 3.0, 1.0])


def test_branch_errors():
  with pytest.raises(TypeError, match=r"true_fun returned float64\[2\]"):
    dfdx.jit(lambda x: dfdx.cond(x[0] > 0, lambda x: x, lambda x: x[0], x))(np.ones(2))
  with pytest.raises(TypeError, match="pred must be a boolean"):
    dfdx.cond(np.array([True, False]), lambda: 1.0, lambda: 2.0)
  with pytest.raises(TypeError, match="index must be an integer scalar"):
    dfdx.switch(1.0, [lambda: 1.0], )
  with pytest.raises(TypeError, match="non-empty sequence of functions"):
    dfdx.switch(0, [])


def test_exported_branches_and_while_run_standalone():
  def f(x):
    y = dfdx.cond(x > 1, lambda x: dnp.sqrt(x), lambda x: x ** 2, x)
    return dfdx.while_loop(lambda v: v < 10, lambda v: v * 3 + y, y)
  for fn in (f, dfdx.jacfwd(f), dfdx.grad(f)):
    for x in (0.5, 2.0):
      source = dfdx.export.to_source(fn, x, name="exported")
      namespace = {}
      exec(source, namespace)
      np.testing.assert_allclose(namespace["exported"](x), fn(x), rtol=1e-14)


def test_to_sympy_refuses_value_dependent_control_flow():
  pytest.importorskip("sympy")
  with pytest.raises(NotImplementedError, match="cond.*no single formula.*dnp.where"):
    dfdx.export.to_sympy(lambda x: dfdx.cond(x > 0, lambda x: x, lambda x: -x, x), 1.0)
  with pytest.raises(NotImplementedError, match="while_loop"):
    dfdx.export.to_sympy(lambda x: dfdx.while_loop(lambda v: v < 3, lambda v: v * 2, x), 1.0)


def test_while_loop_gradient_of_a_long_loop_runs_the_steps_back(monkeypatch):
  # 2000 steps: the gradient under jit takes n steps each way (it would take n^2 / 2 = 2M
  # steps if it computed the values again), and agrees with the Python loop's tape.
  from dfdx._src.ops import branches

  def f(w):
    return dfdx.while_loop(lambda v: v[1] < 2000,
                           lambda v: (v[0] * (1 - 1e-3 * w) + 1e-3, v[1] + 1), (1.0, 0))[0]
  calls = []
  original = branches._reverse_as_while
  monkeypatch.setattr(branches, "_reverse_as_while",
                      lambda *a, **k: calls.append(1) or original(*a, **k))
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(0.5), dfdx.grad(f)(0.5), rtol=1e-12)
  assert not calls  # first order never builds the recomputing loops


@pytest.mark.parametrize("steps", [0, 1, 2, 9, 10, 11, 50])
def test_while_loop_gradient_keeps_every_kth_step_past_its_memory_budget(steps, monkeypatch):
  # Past REVERSE_LOOP_BYTES the reverse pass keeps every k-th step's values (k about
  # sqrt(n)) and computes each stretch again: the same gradient (values, closed-over
  # constants, an integer carry), in less memory.
  from dfdx._src.ops import branches
  x0 = np.linspace(0.1, 1.0, 2000)

  def f(x, w):
    v, _, n = dfdx.while_loop(lambda c: c[2] < steps,
                              lambda c: (dnp.sin(c[0] * w) + c[1], c[1] * 0.9, c[2] + 1),
                              (x, 0.5 * x, 0))
    return dnp.sum(v ** 2) + n
  expected = dfdx.grad(f, argnums=(0, 1))(x0, 0.7)  # (the Python loop's tape)
  monkeypatch.setattr(branches, "REVERSE_LOOP_BYTES", 3 * x0.nbytes)
  import tracemalloc
  for g in (dfdx.jit(dfdx.grad(f, argnums=(0, 1))), dfdx.grad(dfdx.jit(f), argnums=(0, 1))):
    g(x0, 0.7)  # (compiled first: the peak is the call's)
    tracemalloc.start()
    got = g(x0, 0.7)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    if steps == 50:  # (two 2000-entry carries a step: keeping every step's takes 1.7 MB)
      assert peak < 1.25e6, peak


def test_exported_derivative_keeps_the_plain_program_when_a_branch_absorbs_zeros():
  # The zero-absorbing chain rule inside a branch (sqrt's derivative) makes to_source write
  # the plain program and the zero-absorbing one, as for code without branches.
  f = lambda x: dfdx.cond(x > 0, lambda x: dnp.sqrt(x) * x, lambda x: -x, x)  # noqa: E731
  source = dfdx.export.to_source(dfdx.grad(f), 2.0, name="exported")
  assert "def _exported_plain(" in source and "def _exported_zero_absorbing(" in source
  namespace = {}
  exec(source, namespace)
  np.testing.assert_allclose(namespace["exported"](2.0), 1.5 * np.sqrt(2.0), rtol=1e-15)


@pytest.mark.parametrize("closure", [False, True])
def test_cond_in_a_custom_jvp_rule_is_transposed(closure):
  # A cond the user writes in a JVP rule is linear in the tangent it is given (as an operand
  # or closed over): reverse mode transposes it. Its `linear` flags covered the operands
  # only, not the closed-over values: a tangent closed over was transposed as a constant
  # (program takes 2 inputs, got 0), and one passed as an operand next to a closed-over
  # primal, likewise (got 1).
  @dfdx.custom_jvp
  def h(x):
    return dnp.sin(x)

  @h.defjvp
  def h_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    big = dnp.any(x > 100.0)
    if closure:
      d = dfdx.cond(big, lambda: t * 0.0, lambda: t * dnp.cos(x))
    else:
      d = dfdx.cond(big, lambda u: u * 0.0, lambda u: u * dnp.cos(x), t)
    return h(x), d

  f = lambda x: dnp.sum(h(x) * 2)  # noqa: E731
  x = np.array([0.5, 1.0])
  for grad in (dfdx.grad(f), dfdx.jit(dfdx.grad(f))):
    np.testing.assert_allclose(grad(x), 2 * np.cos(x), rtol=1e-15)
  np.testing.assert_allclose(dfdx.jacrev(h)(x), np.diag(np.cos(x)), rtol=1e-15)
  np.testing.assert_allclose(dfdx.hessian(f)(x), np.diag(-2 * np.sin(x)), rtol=1e-15)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(np.stack([x, x + 1])),
                             2 * np.cos(np.stack([x, x + 1])), rtol=1e-15)
  check_grads(f, (x,), order=2)
