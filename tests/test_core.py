"""The engine itself: traces, nesting without perturbation confusion, symbolic zeros, escaped
tracers, Python control flow on concrete values, and the eval fast path."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad, core
from dfdx._src.ops import elementwise as ew


def test_bind_without_trace_calls_numpy():
  assert core.current_trace() is None
  out = ew.sin(np.array([0.0, 1.0]))
  assert type(out) is np.ndarray
  np.testing.assert_array_equal(out, np.sin([0.0, 1.0]))


def test_dnp_without_trace_returns_plain_numpy():
  x = np.array([1.0, 2.0])
  assert type(dnp.sin(x)) is np.ndarray
  assert type(dnp.sum(x)) is np.float64
  assert dnp.sum(x, keepdims=True).shape == (1,)


def test_no_perturbation_confusion_grad_of_grad():
  # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1 everywhere.
  def f(x):
    return x * dfdx.grad(lambda y: x + y)(2.0)
  for x in (-1.5, 0.0, 3.0):
    assert dfdx.grad(f)(x) == 1.0


def test_no_perturbation_confusion_jvp_inside_grad():
  def f(x):
    return x * dfdx.jvp(lambda y: x + y, (2.0,), (1.0,))[1]
  assert dfdx.grad(f)(3.0) == 1.0


def test_no_perturbation_confusion_grad_inside_vmap_and_vmap_inside_grad():
  xs = np.array([1.0, 2.0, 3.0])
  inner = dfdx.vmap(lambda x: x * dfdx.grad(lambda y: x * y)(1.0))
  np.testing.assert_allclose(inner(xs), xs ** 2)
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(inner(x)))(xs), 2 * xs)
  g = dfdx.grad(lambda x: dnp.sum(dfdx.vmap(lambda y: x * y)(xs)))(2.0)
  assert g == xs.sum()


def test_nested_grads_of_polynomial():
  f = lambda x: x ** 3 + 2 * x ** 2 - 3 * x + 1
  d = dfdx.grad
  assert (d(f)(1.0), d(d(f))(1.0), d(d(d(f)))(1.0), d(d(d(d(f))))(1.0)) == (4.0, 10.0, 6.0, 0.0)


def test_symbolic_zeros_do_no_work_for_constants():
  c = np.linspace(0, 1, 3)

  def f(x):
    k = ew.exp(ew.sin(c))  # does not depend on x: runs on NumPy values, records nothing
    return dnp.sum(x * k)
  outs, lin = ad.linearize_flat(lambda x: [f(x)], [np.ones(3)])
  assert [e.prim.name for e in lin.eqns] == ["mul", "reduce_sum"]
  with ad.use_vjp_rules(False):
    outs, lin = ad.linearize_flat(lambda x: [f(x)], [np.ones(3)])
  assert [e.prim.name for e in lin.eqns] == ["mul", "reduce_sum"]
  np.testing.assert_allclose(lin.transpose([1.0])[0], np.exp(np.sin(c)))


def test_independent_output_gives_zero_gradient():
  g = dfdx.grad(lambda x, y: dnp.sum(y ** 2), argnums=0)(np.ones(3), np.ones(3))
  np.testing.assert_array_equal(g, np.zeros(3))


def test_python_control_flow_on_concrete_values():
  def f(x):
    if x > 0:
      return x ** 2
    return -x

  assert dfdx.grad(f)(3.0) == 6.0
  assert dfdx.grad(f)(-3.0) == -1.0

  def halve_until_small(x):
    while x > 1.0:  # data-dependent loop length
      x = x / 2
    return x

  assert dfdx.grad(halve_until_small)(10.0) == 1 / 16
  assert dfdx.jvp(halve_until_small, (10.0,), (1.0,))[1] == 1 / 16


def test_escaped_tracer_raises():
  leaked = []

  def f(x):
    leaked.append(x)
    return x * 2

  dfdx.grad(f)(1.0)
  with pytest.raises(dfdx.EscapedTracerError, match="after the transformation"):
    dnp.sin(leaked[0])
  with pytest.raises(dfdx.EscapedTracerError, match="after the transformation"):
    leaked[0] + 1.0
  with pytest.raises(dfdx.EscapedTracerError, match="after the transformation"):
    np.sin(leaked[0])


def test_escaped_tracer_from_vmap_raises():
  leaked = []
  dfdx.vmap(lambda x: leaked.append(x) or x)(np.ones(3))
  with pytest.raises(dfdx.EscapedTracerError):
    leaked[0] * 2


def test_float_of_tracer_is_an_error_not_a_silent_zero():
  with pytest.raises(dfdx.ConcretizationError, match="drop its derivative"):
    dfdx.grad(lambda x: float(x) * x)(2.0)
  with pytest.raises(dfdx.ConcretizationError, match="drop its derivative"):
    dfdx.grad(lambda x: x.item())(2.0)


def test_numpy_asarray_of_tracer_is_a_clear_error():
  with pytest.raises(dfdx.TracerArrayConversionError, match="dfdx.numpy"):
    dfdx.grad(lambda x: np.asarray(x).sum())(np.ones(2))


def test_plain_numpy_calls_dispatch_to_dfdx_numpy():
  x = np.linspace(0.1, 1.0, 4)
  g = dfdx.grad(lambda x: np.sum(np.sin(x) * x))(x)
  np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x))


def test_bool_under_vmap_is_a_concretization_error():
  with pytest.raises(dfdx.ConcretizationError, match="dfdx.numpy.where"):
    dfdx.vmap(lambda x: x if x > 0 else -x)(np.ones(3))


def test_tracer_repr_shows_kind_and_value():
  seen = []
  dfdx.grad(lambda x: seen.append(repr(x)) or x)(1.5)
  assert "float64[]" in seen[0] and "jvp" in seen[0] and "1.5" in seen[0]


def test_vjp_rules_and_transposed_jvp_rules_agree():
  f = lambda x, y: dnp.sum(dnp.tanh(x * y) / (1.0 + dnp.exp(x)) + dnp.sqrt(y) ** 3)
  x, y = np.linspace(-1, 1, 5), np.linspace(0.5, 2, 5)
  g1 = dfdx.grad(f, (0, 1))(x, y)
  with ad.use_vjp_rules(False):
    g2 = dfdx.grad(f, (0, 1))(x, y)
  np.testing.assert_allclose(g1[0], g2[0], rtol=1e-13)
  np.testing.assert_allclose(g1[1], g2[1], rtol=1e-13)


def test_division_derivative_is_stable_where_b_squared_underflows():
  assert dfdx.grad(lambda b: -1e-200 / b)(1e-200) == pytest.approx(1e200)
  with ad.use_vjp_rules(False):
    assert dfdx.grad(lambda b: -1e-200 / b)(1e-200) == pytest.approx(1e200)


def test_stop_gradient_is_a_constant_for_every_derivative():
  x = np.array([1.0, 2.0])
  f = lambda x: dnp.sum(x ** 2 * dfdx.stop_gradient(x))
  np.testing.assert_allclose(dfdx.grad(f)(x), 2 * x * x)
  np.testing.assert_allclose(dfdx.jvp(f, (x,), (np.ones(2),))[1], np.sum(2 * x * x))
  np.testing.assert_allclose(dfdx.hessian(f)(x), np.diag(2 * x))
  assert dfdx.stop_gradient({"a": 1.0})["a"] == 1.0
  assert float(dfdx.grad(lambda x: float(dfdx.stop_gradient(x)) * x)(3.0)) == 3.0


def test_reverse_mode_frees_temporaries_its_rules_do_not_read(rng):
  """The squares in sum(y ** 2, axis) are read by no reverse rule (x ** 2's reads y, the sum's
  transpose only shapes): freed once the sum has them, as without differentiation. y itself,
  which x ** 2's rule reads, stays."""
  import weakref
  refs = {}

  def f(x):
    y = dnp.reshape(x, (3, 4)) * 2.0
    squares = y ** 2
    refs["squares"], refs["y"] = weakref.ref(squares.primal), weakref.ref(y.primal)
    total = dnp.sum(dnp.sum(squares, axis=1) * x[:3])
    del squares
    refs["freed"] = refs["squares"]() is None
    return total
  x = rng.normal(size=12)
  g = dfdx.grad(f)(x)
  assert refs["freed"]
  y = 2.0 * x.reshape(3, 4)
  want = (4.0 * y * x[:3, None]).reshape(12)
  want[:3] += np.sum(y ** 2, axis=1)
  np.testing.assert_allclose(g, want, rtol=1e-13)


def test_linearized_function_applies_nodes_that_forgot_their_inputs(rng):
  """A primitive linear in its one argument (reshape, reduce_sum, transpose, neg, slice)
  keeps no input on the tape; the linearized function applies it to the tangent."""
  def f(x):
    y = dnp.transpose(dnp.reshape(x, (3, 4)))[1:] * x[:3, None]
    return -dnp.sum(dnp.sin(y), axis=0)
  x, t = rng.normal(size=12), rng.normal(size=12)
  value, f_jvp = dfdx.linearize(f, x)
  want_value, want = dfdx.jvp(f, (x,), (t,))
  np.testing.assert_array_equal(value, want_value)
  np.testing.assert_allclose(f_jvp(t), want, rtol=1e-13)


def _staged(f, *args):
  from dfdx._src import staging
  return staging.make_program(lambda *xs: [f(*xs)], [core.get_aval(a) for a in args],
                              record_source=False)[0]


def test_same_program_compares_equations_literals_and_constants_to_the_bit():
  from dfdx._src.ir import same_program
  x = np.ones(3)
  w = np.arange(3.0)
  program = lambda c=2.0, w=w: _staged(lambda x: dnp.sum(dnp.sin(x) * c + w), x)  # noqa
  assert same_program(program(), program())
  assert not same_program(program(), program(3.0))
  assert not same_program(program(0.0), program(-0.0))  # (1 / x tells them apart)
  assert same_program(program(w=w), program(w=w.copy()))
  assert not same_program(program(w=w), program(w=w + 1))
  assert not same_program(program(), _staged(lambda x: dnp.sum(dnp.cos(x) * 2.0 + w), x))
  assert not same_program(program(), _staged(lambda x: dnp.sum(dnp.sin(x) * 2.0 + w),
                                             np.ones(3, np.float32)))
  # a copy of the constants taken earlier sees an array changed in place since
  held = np.arange(3.0)
  first = program(w=held)
  snapshot = [c.copy() for c in first.const_vals]
  assert same_program(first, program(w=held), a_consts=snapshot)
  held[0] = 5.0
  assert not same_program(first, program(w=held), a_consts=snapshot)
  # programs inside params (a loop's body) are compared the same way
  looped = lambda k: _staged(  # noqa: E731
      lambda x: dfdx.scan(lambda c, _: (c * k, None), x, None, length=3)[0], x)
  assert same_program(looped(2.0), looped(2.0)) and not same_program(looped(2.0), looped(3.0))
