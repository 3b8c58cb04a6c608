"""The examples of the seed documents (shared/seeds/) that the foundation's API covers, written
the dfdx way: PhiML's gradient by name and through dataclasses, JAX's autodiff tutorial,
BrainPy's vector_grad and jacobian of pure functions, Nx's autodiff notebook, and the
questions people asked about autodiff."""
import collections
import dataclasses

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads


# ---- seed 000: PhiML --------------------------------------------------------------------------

def test_phiml_gradient_by_name_with_value():
  def loss_function(x, y):
    return x ** 2 * y

  dx_function = dfdx.grad(loss_function, wrt="x", return_value=True)
  grad, value = dx_function(x=1.0, y=1.0)
  assert (value, grad) == (1.0, 2.0)
  assert dfdx.grad(loss_function, wrt="x")(x=1.0, y=1.0) == 2.0


def test_phiml_non_scalar_loss_is_an_error_and_batches_are_explicit():
  def loss_function(x, y):
    return x ** 2 * y
  x = np.array([0.0, 1.0, 2.0])
  with pytest.raises(dfdx.NonScalarOutputError, match="must return a scalar"):
    dfdx.grad(loss_function, wrt="x")(x, y=1.0)
  # PhiML sums over batch dimensions; in dfdx a batch is explicit: vmap, or vector_grad.
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(loss_function), in_axes=(0, None))(x, 1.0),
                             [0.0, 2.0, 4.0])
  np.testing.assert_allclose(dfdx.vector_grad(loss_function)(x, 1.0), [0.0, 2.0, 4.0])


def l2_loss(x):
  return dnp.sum(x ** 2) / 2


def test_phiml_l2_loss_and_several_names():
  def loss_function(x, y):
    return l2_loss(x ** 2 * y)
  x = np.array([0.0, 1.0, 2.0])
  np.testing.assert_allclose(dfdx.grad(loss_function, wrt="x")(x, y=1.0), [0.0, 2.0, 16.0])
  assert dfdx.grad(loss_function, wrt="x,y")(1, 1) == (2.0, 1.0)


@dataclasses.dataclass
class Vec:
  x1: float
  x2: float

  def __mul__(self, other):
    return Vec(self.x1 * other, self.x2 * other)

  def __pow__(self, power, modulo=None):
    return Vec(self.x1 ** power, self.x2 ** power)

  def __value_attrs__(self):
    return "x1", "x2"


def test_phiml_gradient_through_a_dataclass():
  def loss_function(x, y):
    v = x ** 2 * y
    return (v.x1 ** 2 + v.x2 ** 2) / 2

  g = dfdx.grad(loss_function, wrt="x")(x=Vec(1, 2), y=1.0)
  assert g == Vec(x1=2.0, x2=16.0)


# ---- seed 001: questions about autodiff --------------------------------------------------

def test_derivative_is_exact_not_finite_difference():
  assert dfdx.grad(lambda x: x ** 2)(1.0) == 2.0
  np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.sum(x ** 2))(np.array([1.0])), [2.0])


def test_jacfwd_of_two_outputs_with_respect_to_two_parameters():
  def helper_1(params1):
    return dnp.sin(params1) * 3.0

  def helper_2(z, params2):
    return dnp.sum(z) * params2 ** 2

  def main(params1, params2):
    z = helper_1(params1)
    y = helper_2(z, params2)
    return z, y

  p1, p2 = np.array([0.1, 0.2]), np.array([1.0, 2.0, 3.0])
  (dz1, dz2), (dy1, dy2) = dfdx.jacfwd(main, (0, 1))(p1, p2)
  np.testing.assert_allclose(dz1, np.diag(3 * np.cos(p1)))
  assert dz2.shape == (2, 3) and not dz2.any()
  np.testing.assert_allclose(dy1, np.outer(p2 ** 2, 3 * np.cos(p1)))
  np.testing.assert_allclose(dy2, np.diag(2 * p2 * np.sum(3 * np.sin(p1))))


def test_mixed_second_derivative_through_a_trace():
  # Z(X, Y) = X X Y; d/dY of tr(dZ/dX)-style scalarization, as the answer does with JAX.
  rng = np.random.default_rng(1)
  X, Y = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
  X, Y = X + X.T, Y + Y.T

  def f(X, Y):
    return dnp.sum((X @ X) * Y)  # <X X, Y>

  def scalarized_dy(X, Y):
    return dnp.trace(dfdx.grad(f, argnums=1)(X, Y))

  dYX = dfdx.grad(scalarized_dy, argnums=0)(X, Y)
  # d/dX tr(X X) = 2 X^T; nothing depends on Y after the first derivative.
  np.testing.assert_allclose(dYX, 2 * X.T, rtol=1e-12)
  np.testing.assert_allclose(dfdx.grad(scalarized_dy, argnums=1)(X, Y), np.zeros((3, 3)))


def test_jacobian_of_small_vector_function():
  def f(x):
    return dnp.asarray([x[0] * x[1] * x[2], x[1] ** 2, x[0] + x[2]])
  x = np.array([1.0, 2.0, 3.0])
  expected = [[6.0, 3.0, 2.0], [0.0, 4.0, 0.0], [1.0, 0.0, 1.0]]
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    np.testing.assert_array_equal(jac(f)(x), expected)


def test_derivative_of_elementwise_function_at_many_points():
  x = np.arange(1, 1.8, 0.1)
  f = lambda x: x ** 2 + dnp.sqrt(x)
  np.testing.assert_allclose(dfdx.vector_grad(f)(x), 2 * x + 0.5 / np.sqrt(x), rtol=1e-14)
  _, vjp_fn = dfdx.vjp(f, x)
  np.testing.assert_allclose(vjp_fn(np.ones_like(x))[0], 2 * x + 0.5 / np.sqrt(x), rtol=1e-14)


def test_derivative_of_reciprocal():
  for x in (0.5, 2.0, -3.0):
    assert dfdx.grad(lambda x: 1 / x)(x) == pytest.approx(-1 / x ** 2, rel=1e-15)


def test_ratio_derivative_does_not_underflow():
  # d(-a/b)/db = (a/b)/b, computed without forming b**2 (which underflows to 0 here).
  g = dfdx.grad(lambda b: -1e-200 / b)(1e-200)
  assert g == pytest.approx(1e200)
  g = dfdx.grad(lambda a, b: -a / b, argnums=1)(1e-170, 1e-170)
  assert g == pytest.approx(1e170)


# ---- seed 002: JAX's autodiff tutorial ---------------------------------------------------

def test_grad_of_tanh_and_its_derivatives():
  t = np.tanh(2.0)
  assert dfdx.grad(dnp.tanh)(2.0) == pytest.approx(1 - t ** 2, rel=1e-14)
  assert dfdx.grad(dfdx.grad(dnp.tanh))(2.0) == pytest.approx(-2 * t * (1 - t ** 2), rel=1e-13)
  third = dfdx.grad(dfdx.grad(dfdx.grad(dnp.tanh)))(2.0)
  assert third == pytest.approx((1 - t ** 2) * (6 * t ** 2 - 2), rel=1e-12)


def test_polynomial_and_its_derivatives():
  f = lambda x: x ** 3 + 2 * x ** 2 - 3 * x + 1
  dfdx_ = dfdx.grad(f)
  d2 = dfdx.grad(dfdx_)
  d3 = dfdx.grad(d2)
  d4 = dfdx.grad(d3)
  assert (dfdx_(1.0), d2(1.0), d3(1.0), d4(1.0)) == (4.0, 10.0, 6.0, 0.0)


def sigmoid(x):
  return 0.5 * (dnp.tanh(x / 2) + 1)


INPUTS = np.array([[0.52, 1.12, 0.77], [0.88, -1.08, 0.15], [0.52, 0.06, -1.30],
                   [0.74, -2.49, 1.39]])
TARGETS = np.array([True, True, False, True])


def predict(W, b, inputs):
  return sigmoid(dnp.sum(inputs * W, axis=1) + b)


def loss(W, b):
  preds = predict(W, b, INPUTS)
  label_probs = preds * TARGETS + (1 - preds) * (1 - TARGETS)
  return -dnp.sum(dnp.log(label_probs))


def _loss_grads_closed_form(W, b):
  p = 1 / (1 + np.exp(-(INPUTS @ W + b)))
  residual = p - TARGETS
  return INPUTS.T @ residual, residual.sum()


def test_logistic_regression_gradients_with_argnums():
  rng = np.random.default_rng(0)
  W, b = rng.standard_normal(3), rng.standard_normal()
  gW, gb = _loss_grads_closed_form(W, b)
  np.testing.assert_allclose(dfdx.grad(loss, argnums=0)(W, b), gW, rtol=1e-12)
  np.testing.assert_allclose(dfdx.grad(loss)(W, b), gW, rtol=1e-12)
  assert dfdx.grad(loss, 1)(W, b) == pytest.approx(gb, rel=1e-12)
  W_grad, b_grad = dfdx.grad(loss, (0, 1))(W, b)
  np.testing.assert_allclose(W_grad, gW, rtol=1e-12)
  assert b_grad == pytest.approx(gb, rel=1e-12)


def test_gradient_with_respect_to_a_dict_and_value_and_grad():
  rng = np.random.default_rng(0)
  W, b = rng.standard_normal(3), rng.standard_normal()

  def loss2(params_dict):
    return loss(params_dict["W"], params_dict["b"])
  g = dfdx.grad(loss2)({"W": W, "b": b})
  gW, gb = _loss_grads_closed_form(W, b)
  np.testing.assert_allclose(g["W"], gW, rtol=1e-12)
  assert g["b"] == pytest.approx(gb, rel=1e-12)
  value, (W_grad, b_grad) = dfdx.value_and_grad(loss, (0, 1))(W, b)
  assert value == loss(W, b)


def test_checking_against_numerical_differences():
  rng = np.random.default_rng(0)
  W, b = rng.standard_normal(3), rng.standard_normal()
  eps = 1e-4
  b_grad_numerical = (loss(W, b + eps / 2.0) - loss(W, b - eps / 2.0)) / eps
  assert dfdx.grad(loss, 1)(W, b) == pytest.approx(b_grad_numerical, rel=1e-6)
  vec = rng.standard_normal(W.shape)
  unitvec = vec / np.sqrt(np.vdot(vec, vec))
  W_numerical = (loss(W + eps / 2.0 * unitvec, b) - loss(W - eps / 2.0 * unitvec, b)) / eps
  assert np.vdot(dfdx.grad(loss)(W, b), unitvec) == pytest.approx(W_numerical, rel=1e-6)
  check_grads(loss, (W, b), order=2)


# ---- seed 003: BrainPy (pure-function parts; Variables come with their own issue) ---------

def test_brainpy_grad_of_pure_function_with_argnums():
  def f(a, b):
    return a * 2 + b
  assert dfdx.grad(f)(2.0, 1.0) == 2.0
  assert dfdx.grad(f, argnums=(0, 1))(2.0, 1.0) == (2.0, 1.0)


def test_brainpy_non_scalar_output_error():
  with pytest.raises(TypeError, match=r"must return a scalar.*float64\[2\]"):
    dfdx.grad(lambda x: x)(np.zeros(2))
  np.testing.assert_allclose(dfdx.grad(lambda x: x.mean())(np.zeros(2)), [0.5, 0.5])


def test_brainpy_vector_grad_vectors_and_matrices():
  def f(a, b):
    return dnp.sin(b) * a
  rng = np.random.default_rng(0)
  a, b = np.arange(5.0), rng.random(5)
  np.testing.assert_allclose(dfdx.vector_grad(f)(a, b), np.sin(b))
  ga, gb = dfdx.vector_grad(f, argnums=(0, 1))(a, b)
  np.testing.assert_allclose(ga, np.sin(b))
  np.testing.assert_allclose(gb, np.cos(b) * a)
  a, b = np.arange(6.0).reshape((2, 3)), rng.random((2, 3))
  np.testing.assert_allclose(dfdx.vector_grad(f, argnums=1)(a, b), np.cos(b) * a)


def test_brainpy_jacobian_with_value_and_aux():
  def f1(x, y):
    a = 4 * x[1] ** 2 - 2 * x[2]
    r = dnp.asarray([x[0] * y[0], 5 * x[2] * y[1], a, x[2] * dnp.sin(x[0])])
    return r, a
  _x, _y = np.array([1.0, 2.0, 3.0]), np.array([10.0, 5.0])
  grads, vec, aux = dfdx.jacobian(f1, return_value=True, has_aux=True)(_x, _y)
  expected = [[10.0, 0.0, 0.0], [0.0, 0.0, 25.0], [0.0, 16.0, -2.0],
              [3 * np.cos(1.0), 0.0, np.sin(1.0)]]
  np.testing.assert_allclose(grads, expected, rtol=1e-15)
  np.testing.assert_allclose(vec, [10.0, 75.0, 10.0, 3 * np.sin(1.0)])
  assert aux == 10.0
  (gx, gy), vec, aux = dfdx.jacobian(f1, argnums=(0, 1), return_value=True, has_aux=True)(_x, _y)
  np.testing.assert_allclose(gy, [[1.0, 0.0], [0.0, 15.0], [0.0, 0.0], [0.0, 0.0]])


# ---- seed 004: Nx -----------------------------------------------------------------------------

def test_nx_gradient_of_tensor_function_is_float():
  f = lambda x: x ** 3 + x
  x = np.array([[1, 1], [2, 3], [5, 8]])
  np.testing.assert_array_equal(f(x), [[2, 2], [10, 30], [130, 520]])
  g = dfdx.vector_grad(f)(x)
  assert g.dtype == np.float64
  np.testing.assert_array_equal(g, [[4, 4], [13, 28], [76, 193]])
  value, g = dfdx.value_and_grad(lambda x: dnp.sum(f(x)))(x)
  assert value == 694
  np.testing.assert_array_equal(g, [[4, 4], [13, 28], [76, 193]])


def test_nx_gradient_with_respect_to_each_argument_and_a_tuple():
  def add_multiply(x, y, z):
    return dnp.sum(z * (x + y))
  x, y, z = np.array([1, 2]), np.array([3, 4]), np.array([5, 6])
  np.testing.assert_array_equal(dfdx.grad(add_multiply, 0)(x, y, z), [5, 6])
  np.testing.assert_array_equal(dfdx.grad(add_multiply, 1)(x, y, z), [5, 6])
  np.testing.assert_array_equal(dfdx.grad(add_multiply, 2)(x, y, z), [4, 6])
  gx, gy, gz = dfdx.grad(lambda xyz: add_multiply(*xyz))((x, y, z))
  np.testing.assert_array_equal(gz, [4, 6])


def test_nx_value_and_grad_keeping_intermediate_values():
  # Nx's value_and_grad with a transform: differentiate x**3 + x, keep both terms.
  x = np.array([[1.0, 1.0], [2.0, 3.0], [5.0, 8.0]])

  def f(x):
    x_cubed = x ** 3
    return dnp.sum(x_cubed + x), (x_cubed, x)
  (value, (x_cubed, x_again)), g = dfdx.value_and_grad(f, has_aux=True)(x)
  np.testing.assert_array_equal(g, 3 * x ** 2 + 1)
  np.testing.assert_array_equal(x_cubed, x ** 3)


Pair = collections.namedtuple("Pair", "x y")


def test_nx_container_gradient():
  g = dfdx.grad(lambda p: dnp.sum(p.x * p.y))(Pair(np.array([1.0, 2.0]), np.array([3.0, 4.0])))
  assert isinstance(g, Pair)
  np.testing.assert_array_equal(g.y, [1.0, 2.0])


# ---- seed 003: BrainPy's gradients with respect to object variables ------------------------

class BPLinear(dfdx.Module):
  def __init__(self):
    super().__init__()
    self.w = dfdx.Variable(np.random.default_rng(0).random((1, 10)))
    self.b = dfdx.Variable(np.zeros(1))

  def update(self, x):
    r = dnp.dot(self.w, x) + self.b
    return r.sum()


def test_brainpy_argnums_and_grad_vars():
  lin = BPLinear()
  np.testing.assert_allclose(dfdx.grad(lin.update, argnums=0)(np.ones(10)), lin.w.value[0])
  gw, gb = dfdx.grad(lin.update, grad_vars=(lin.w, lin.b))(np.ones(10))
  np.testing.assert_array_equal(gw, np.ones((1, 10)))
  np.testing.assert_array_equal(gb, [1.0])
  var_grads, arg_grads = dfdx.grad(lin.update, grad_vars=(lin.w, lin.b), argnums=0)(
      np.ones(10))
  np.testing.assert_array_equal(var_grads[0], np.ones((1, 10)))
  np.testing.assert_allclose(arg_grads, lin.w.value[0])
  gradient, value = dfdx.grad(lin.update, argnums=0, return_value=True)(np.ones(10))
  assert value == pytest.approx(lin.w.value.sum())


def test_brainpy_has_aux():
  class LinearAux(BPLinear):
    def update(self, x):
      dot = dnp.dot(self.w, x)
      r = (dot + self.b).sum()
      return r, (r, dot)
  lin = LinearAux()
  gradient, (r, dot) = dfdx.grad(lin.update, argnums=0, has_aux=True)(np.ones(10))
  np.testing.assert_allclose(gradient, lin.w.value[0])
  assert r == pytest.approx(lin.w.value.sum()) and dot.shape == (1,)


class BPF(dfdx.Module):
  def __init__(self):
    super().__init__()
    self.a = dfdx.TrainVar(np.ones(1))
    self.b = dfdx.TrainVar(np.ones(1))

  def __call__(self, c):
    ab = self.a * self.b
    ab2 = ab * 2
    vv = ab2 + c
    return vv.mean()


def test_brainpy_class_objects():
  f = BPF()
  grads = dfdx.grad(f, grad_vars=f.train_vars())(10.0)
  assert set(grads) == {f"{f.name}.a", f"{f.name}.b"}
  for g in grads.values():
    np.testing.assert_array_equal(g, [2.0])
  ga, gb = dfdx.grad(f, grad_vars=[f.a, f.b])(10.0)
  np.testing.assert_array_equal(ga, [2.0])
  grad, loss = dfdx.grad(f, grad_vars=f.a, return_value=True)(10.0)
  np.testing.assert_array_equal(grad, [2.0])
  assert loss == 12.0


def test_brainpy_variables_changed_inside_the_gradient_function():
  class F2(BPF):
    def __call__(self, c):
      ab = self.a * self.b
      ab = ab * 2
      self.a.value = ab
      return (ab + c).mean()
  f2 = F2()
  np.testing.assert_array_equal(dfdx.grad(f2, grad_vars=f2.b)(10.0), [2.0])
  assert type(f2.a.value) is np.ndarray and f2.a.value[0] == 2.0  # no dyn_vars needed


def test_brainpy_grad_vars_with_argnums():
  class F3(BPF):
    def __call__(self, c, d):
      ab = self.a * self.b
      ab = ab * 2
      return (ab + c * d).mean()
  f3 = F3()
  grads_of_gv, grad_of_args = dfdx.grad(f3, grad_vars=[f3.a, f3.b], argnums=0)(10.0, 3.0)
  np.testing.assert_array_equal(grads_of_gv[0], [2.0])
  assert grad_of_args == 3.0
  grads_of_gv, grad_of_args = dfdx.grad(f3, grad_vars=[f3.a, f3.b], argnums=(0, 1))(10.0, 3.0)
  assert grad_of_args == (3.0, 10.0)


def test_brainpy_auxiliary_data():
  class F4(BPF):
    def __call__(self, c):
      ab = self.a * self.b
      ab2 = ab * 2
      loss = (ab + c).mean()
      return loss, (ab, ab2)
  f4 = F4()
  grad, (ab, ab2) = dfdx.grad(f4, grad_vars=f4.a, has_aux=True)(10.0)
  np.testing.assert_array_equal(grad, [1.0])
  np.testing.assert_array_equal(ab2, [2.0])


def test_brainpy_vector_grad_of_object_variables():
  class Test(dfdx.Module):
    def __init__(self):
      super().__init__()
      self.x = dfdx.Variable(np.ones(5))
      self.y = dfdx.Variable(np.ones(5))

    def __call__(self):
      return self.x ** 2 + self.y ** 3 + 10
  t = Test()
  np.testing.assert_array_equal(dfdx.vector_grad(t, grad_vars=t.x)(), 2 * np.ones(5))
  (gx,) = dfdx.vector_grad(t, grad_vars=(t.x,))()
  np.testing.assert_array_equal(gx, 2 * np.ones(5))
  gx, gy = dfdx.vector_grad(t, grad_vars=(t.x, t.y))()
  np.testing.assert_array_equal(gy, 3 * np.ones(5))


def test_brainpy_jacobian_of_object_variables():
  class Test(dfdx.Module):
    def __init__(self):
      super().__init__()
      self.x = dfdx.Variable(np.array([1.0, 2.0, 3.0]))

    def __call__(self, y):
      a = self.x[0] * y[0]
      b = 5 * self.x[2] * y[1]
      c = 4 * self.x[1] ** 2 - 2 * self.x[2]
      d = self.x[2] * dnp.sin(self.x[0])
      r = dnp.asarray([a, b, c, d])
      return r, (c, d)
  t = Test()
  (var_grads, arg_grads), value, aux = dfdx.jacobian(
      t, grad_vars=t.x, argnums=0, has_aux=True, return_value=True)(np.array([10.0, 5.0]))
  np.testing.assert_allclose(var_grads, [[10, 0, 0], [0, 0, 25], [0, 16, -2],
                                         [3 * np.cos(1.0), 0, np.sin(1.0)]])
  np.testing.assert_array_equal(arg_grads, [[1, 0], [0, 15], [0, 0], [0, 0]])
  np.testing.assert_allclose(value, [10, 75, 10, 3 * np.sin(1.0)])
  assert aux[0] == 10.0
