"""dfdx.testing.check_grads itself: it passes correct rules and fails, naming the mode and the
order, on deliberately wrong ones (first and second order, forward and reverse)."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad, batching, core
from dfdx._src.ops import elementwise as ew
from dfdx.testing import check_grads


def _primitive_with_rules(name, jvp_scale=1.0, vjp_scale=1.0, second_order_bug=False):
  """cube(x) = x**3 with its derivative 3x**2, optionally scaled wrong."""
  prim = core.Primitive(name)  # not registered: a test-only primitive
  prim.def_impl(lambda x: x ** 3)
  prim.def_abstract_eval(lambda x: x)
  batching.defvectorized(prim)

  def derivative(x):
    if second_order_bug:  # the right value 3x^2, but one factor is a constant: d/dx gives 3x
      constant = x.concrete_value("test") if isinstance(x, core.Tracer) else x
      return ew.mul(3.0, ew.mul(x, constant))
    return ew.mul(3.0, ew.mul(x, x))
  ad.defjvp(prim, lambda x_dot, x: ew.mul(ew.mul(x_dot, derivative(x)), jvp_scale))
  ad.defvjp(prim, lambda ct, ans, x, *, needs: [ew.mul(ew.mul(ct, derivative(x)), vjp_scale)])
  return prim


X = (np.array([0.4, 0.7, 1.1]),)


def test_passes_correct_rules():
  prim = _primitive_with_rules("cube_ok")
  check_grads(prim.bind, X, order=2)


def test_wrong_jvp_rule_fails_in_forward_mode():
  prim = _primitive_with_rules("cube_bad_jvp", jvp_scale=1.001)
  with pytest.raises(AssertionError, match=r"forward-mode \(JVP\) derivative of order 1"):
    check_grads(prim.bind, X, order=1, modes=("fwd",))


def test_wrong_vjp_rule_fails_in_reverse_mode():
  prim = _primitive_with_rules("cube_bad_vjp", vjp_scale=1.001)
  with pytest.raises(AssertionError, match=r"reverse-mode \(VJP\) derivative of order 1.*"
                                           r"analytic.*numerical"):
    check_grads(prim.bind, X, order=1, modes=("rev",))
  check_grads(prim.bind, X, order=1, modes=("fwd",))  # the JVP rule is right


def test_wrong_second_derivative_is_caught_at_order_2():
  prim = _primitive_with_rules("cube_bad_second", second_order_bug=True)
  x = (np.array([-0.5, 0.6]),)
  check_grads(prim.bind, x, order=1)
  with pytest.raises(AssertionError, match="of order 2"):
    check_grads(prim.bind, x, order=2, modes=("fwd",))
  with pytest.raises(AssertionError, match="of order 2"):
    check_grads(prim.bind, x, order=2, modes=("rev",))


def test_pytree_arguments_and_outputs():
  check_grads(lambda p: {"s": dnp.sum(p["a"] * p["b"]), "t": dnp.sin(p["a"])},
              ({"a": np.array([0.1, 0.2]), "b": np.array([1.0, 2.0])},))


def test_bad_mode_is_rejected():
  with pytest.raises(ValueError, match="modes must be"):
    check_grads(dnp.sin, X, modes=("sideways",))


def _complex_cube(name, conjugate_in_vjp=True):
  """cube(z) = z**3 for complex z; its VJP is the adjoint ct * conj(3 z**2) (dfdx's convention,
  README's complex numbers), or, with conjugate_in_vjp=False, the transpose ct * 3 z**2."""
  prim = core.Primitive(name)  # not registered: a test-only primitive
  prim.def_impl(lambda z: z ** 3)
  prim.def_abstract_eval(lambda z: z)
  batching.defvectorized(prim)
  ad.complex_rules.add(prim)

  def derivative(z):
    return ew.mul(3.0, ew.mul(z, z))
  ad.defjvp(prim, lambda z_dot, z: ew.mul(z_dot, derivative(z)))
  ad.defvjp(prim, lambda ct, ans, z, *, needs: [ew.mul(
      ct, ew.conj(derivative(z)) if conjugate_in_vjp else derivative(z))])
  return prim


def test_complex_arguments_are_checked_along_complex_directions():
  z = np.array([1 + 2j, -0.5 + 0.3j])
  check_grads(lambda z: dnp.real(z * z), (1 + 2j,), order=2)
  check_grads(lambda z: dnp.sum(dnp.abs(z) ** 2), (z,), order=2)  # not holomorphic
  check_grads(lambda z: dnp.exp(z) * dnp.conj(z), (z,), order=2)  # complex to complex
  check_grads(lambda x, z: x * z, (np.array([0.3, 0.4]), z), order=2)  # real and complex
  check_grads(_complex_cube("complex_cube_ok").bind, (z,), order=1)
  # a VJP that is the transpose rather than the adjoint is wrong in dfdx's convention
  prim = _complex_cube("complex_cube_transposed", conjugate_in_vjp=False)
  with pytest.raises(AssertionError, match=r"reverse-mode \(VJP\) derivative of order 1"):
    check_grads(prim.bind, (z,), order=1, modes=("rev",))
  check_grads(prim.bind, (z,), order=1, modes=("fwd",))  # the JVP rule is right
  # a JVP that drops the imaginary direction is caught in forward mode
  with pytest.raises(AssertionError, match=r"forward-mode \(JVP\) derivative of order 1"):
    check_grads(lambda z: dnp.real(z) ** 2 + dfdx.stop_gradient(dnp.imag(z)) ** 2, (1 + 2j,),
                order=1, modes=("fwd",))
