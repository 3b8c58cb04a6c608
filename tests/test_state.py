"""Variables, Modules and grad_vars: Variables behave like their values, Modules name their
Variables stably, grad_vars differentiates with respect to them with BrainPy's conventions,
and after any transformation every Variable holds a plain array (its last assigned value), or
its previous value if the transformation raised."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx import Module, TrainVar, Variable


# ---- Variables behave like their values ------------------------------------------------------

def test_variable_arithmetic_indexing_and_numpy_functions():
  v = Variable(np.array([1.0, 2.0, 3.0]))
  np.testing.assert_array_equal(v + 1, [2, 3, 4])
  np.testing.assert_array_equal(1 + v, [2, 3, 4])
  np.testing.assert_array_equal(np.ones(3) * v, [1, 2, 3])
  np.testing.assert_array_equal(v * np.ones(3), [1, 2, 3])
  np.testing.assert_array_equal(2 ** v, [2, 4, 8])
  np.testing.assert_array_equal(-v, [-1, -2, -3])
  assert v[1] == 2.0 and len(v) == 3 and v.shape == (3,) and v.dtype == np.float64
  np.testing.assert_array_equal(np.sin(v), np.sin([1, 2, 3]))
  assert np.sum(v) == 6.0 and v.sum() == 6.0 and dnp.sum(v) == 6.0
  np.testing.assert_array_equal(dnp.exp(v), np.exp([1, 2, 3]))
  np.testing.assert_array_equal(dnp.dot(v, v), 14.0)
  np.testing.assert_array_equal(np.asarray(v), [1, 2, 3])
  assert repr(v) == "Variable(array([1., 2., 3.]))"
  v.value = [4.0, 5.0, 6.0]
  assert type(v.value) is np.ndarray and v.value[0] == 4.0


def test_variables_inside_traced_code_behave_like_their_values():
  v = Variable(np.array([1.0, 2.0]))
  g = dfdx.grad(lambda x: dnp.sum(dnp.dot(v, x) * v + np.sin(v) * x))(np.ones(2))
  np.testing.assert_allclose(g, v.value * v.value.sum() + np.sin(v.value))


# ---- Modules -----------------------------------------------------------------------------------

class Layer(Module):
  def __init__(self, n):
    super().__init__()
    self.w = TrainVar(np.ones(n))
    self.b = TrainVar(np.zeros(n))
    self.count = Variable(np.zeros(()))


class Net(Module):
  def __init__(self):
    super().__init__()
    self.layers = [Layer(2), Layer(3)]
    self.extra = {"scale": TrainVar(np.ones(1))}
    self.alias = self.layers[0].w  # the same Variable twice: listed once


def test_module_vars_are_named_stably_and_uniquely():
  net = Net()
  names = list(net.vars())
  assert names == list(net.vars())  # stable across calls
  l0, l1 = net.layers[0].name, net.layers[1].name
  assert l0 != l1 and l0.startswith("Layer") and net.name.startswith("Net")
  assert set(names) == {f"{l0}.w", f"{l0}.b", f"{l0}.count", f"{l1}.w", f"{l1}.b",
                        f"{l1}.count", f"{net.name}.extra['scale']"}
  assert set(net.train_vars()) == set(names) - {f"{l0}.count", f"{l1}.count"}


def test_module_without_super_init_gets_a_name():
  class Bare(Module):
    def __init__(self):
      self.v = Variable(np.ones(2))
  b = Bare()
  assert list(b.vars()) == [f"{b.name}.v"]


# ---- grad_vars -----------------------------------------------------------------------------

class Linear(Module):
  def __init__(self):
    super().__init__()
    self.w = Variable(np.linspace(0.1, 1.0, 10)[None, :])
    self.b = Variable(np.zeros(1))

  def update(self, x):
    return (dnp.dot(self.w, x) + self.b).sum()


def test_grad_vars_structures_and_argnums():
  l = Linear()
  x = np.ones(10)
  np.testing.assert_allclose(dfdx.grad(l.update)(x), l.w.value[0])
  gw, gb = dfdx.grad(l.update, grad_vars=(l.w, l.b))(x)
  np.testing.assert_array_equal(gw, np.ones((1, 10)))
  np.testing.assert_array_equal(gb, [1.0])
  assert isinstance(dfdx.grad(l.update, grad_vars=[l.w, l.b])(x), list)
  gw_only = dfdx.grad(l.update, grad_vars=l.w)(x)
  assert type(gw_only) is np.ndarray and gw_only.shape == (1, 10)
  d = dfdx.grad(l.update, grad_vars={"w": l.w, "b": l.b})(x)
  assert set(d) == {"w", "b"}
  (gw, gb), gx = dfdx.grad(l.update, grad_vars=(l.w, l.b), argnums=0)(x)
  np.testing.assert_allclose(gx, l.w.value[0])
  (gw, gb), (gx, gy) = dfdx.grad(lambda x, y: l.update(x * y), grad_vars=(l.w, l.b),
                                 argnums=(0, 1))(x, np.ones(10))
  np.testing.assert_allclose(gy, l.w.value[0])


def test_grad_vars_with_return_value_and_aux():
  l = Linear()
  x = np.ones(10)
  g, value = dfdx.grad(l.update, grad_vars=l.b, return_value=True)(x)
  assert value == l.update(x) and g == 1.0
  aux_fn = lambda x: (l.update(x), l.w.sum())
  g, aux = dfdx.grad(aux_fn, grad_vars=l.b, has_aux=True)(x)
  assert aux == l.w.value.sum()
  g, value, aux = dfdx.grad(aux_fn, grad_vars=l.b, has_aux=True, return_value=True)(x)
  assert value == l.update(x)
  (value, aux), g = dfdx.value_and_grad(aux_fn, grad_vars=l.b, has_aux=True)(x)
  assert g == 1.0


def test_grad_vars_for_callable_objects_and_vector_jacobian_hessian():
  class Cubes(Module):
    def __init__(self):
      super().__init__()
      self.x = Variable(np.array([1.0, 2.0]))

    def __call__(self, c):
      return self.x ** 3 * c
  m = Cubes()
  np.testing.assert_allclose(dfdx.vector_grad(m, grad_vars=m.x)(2.0), 6 * m.x.value ** 2)
  for jac in (dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev):
    np.testing.assert_allclose(jac(m, grad_vars=m.x)(2.0), np.diag(6 * m.x.value ** 2))
  jv, jc = dfdx.jacobian(m, grad_vars=m.x, argnums=0)(2.0)
  np.testing.assert_allclose(jc, m.x.value ** 3)
  h = dfdx.hessian(lambda: dnp.sum(m.x ** 3), grad_vars=m.x)()
  np.testing.assert_allclose(h, np.diag(6 * m.x.value))


def test_grad_vars_errors():
  with pytest.raises(TypeError, match="grad_vars must be a Variable"):
    dfdx.grad(lambda: 1.0, grad_vars=np.ones(2))


# ---- the journal ------------------------------------------------------------------------------

class Stateful(Module):
  def __init__(self):
    super().__init__()
    self.a = TrainVar(np.ones(1))
    self.b = TrainVar(np.ones(1))
    self.calls = Variable(np.zeros(()))

  def __call__(self, c):
    ab = self.a * self.b * 2
    self.a.value = ab          # assigned a traced value
    self.calls.value = self.calls + 1
    return (ab + c).mean()


def test_variables_hold_plain_last_values_after_transformations():
  s = Stateful()
  g = dfdx.grad(s, grad_vars=s.b)(10.0)
  np.testing.assert_array_equal(g, [2.0])
  assert type(s.a.value) is np.ndarray and s.a.value[0] == 2.0
  assert type(s.b.value) is np.ndarray and s.b.value[0] == 1.0
  assert s.calls.value == 1.0
  dfdx.jacfwd(s, grad_vars=s.b)(10.0)
  dfdx.hessian(s, grad_vars=s.a)(10.0)
  for v in s.vars().values():
    assert type(v.value) is np.ndarray
  assert s.a.value[0] == 2.0 * 2.0 * 2.0
  dfdx.grad(lambda c: dfdx.grad(s, grad_vars=s.b)(c)[0])(3.0)
  assert type(s.a.value) is np.ndarray


def test_variables_are_restored_when_a_transformation_raises():
  s = Stateful()

  def failing(c):
    s(c)
    raise RuntimeError("boom")
  with pytest.raises(RuntimeError, match="boom"):
    dfdx.grad(failing, grad_vars=s.b)(1.0)
  assert s.a.value[0] == 1.0 and s.calls.value == 0.0 and type(s.b.value) is np.ndarray


def test_assigning_a_batched_or_staged_value_is_a_clear_error():
  v = Variable(np.zeros(()))

  def store(x):
    v.value = x * 2
    return x
  with pytest.raises(dfdx.ConcretizationError, match="varies over the vmap"):
    dfdx.vmap(store)(np.ones(3))
  assert v.value == 0.0
  # under jit, as eagerly: the Variable gets the value at every call
  np.testing.assert_array_equal(dfdx.jit(store)(np.ones(3)), np.ones(3))
  np.testing.assert_array_equal(v.value, np.full(3, 2.0))


def test_jit_reads_variables_at_every_call():
  # the Variables a jitted function reads are inputs of its program: it sees their current
  # values (a training loop under jit), and is traced again where their shape changes
  class Lin(Module):
    def __init__(self):
      super().__init__()
      self.w = TrainVar(np.array([1.0, 2.0]))
      self.b = Variable(np.array(0.5))

    def __call__(self, x):
      return x @ self.w.value + self.b

  lin, x = Lin(), np.array([1.0, 3.0])
  loss = lambda: (lin(x) - 1.0) ** 2  # noqa: E731
  jit_loss = dfdx.jit(loss)
  step = dfdx.jit(dfdx.value_and_grad(loss, grad_vars=lin.train_vars()))
  traces = []
  counted = dfdx.jit(lambda: traces.append(1) or dnp.sum(lin.w * 2))
  for _ in range(3):
    value, grads = step()
    assert value == loss() and jit_loss() == loss() and counted() == 2 * np.sum(lin.w.value)
    (g,) = grads.values()
    np.testing.assert_allclose(g, 2 * (lin(x) - 1.0) * x)
    lin.w.value = lin.w.value - 0.1 * g
  assert len(traces) == 2  # (once noting what it reads, once with them as inputs)
  lin.b.value = np.array(2.0)
  assert jit_loss() == loss()
  lin.w.value = np.array([1.0, 2.0, 3.0])  # another shape: traced again, for it
  x = np.array([1.0, 1.0, 1.0])
  assert jit_loss() == loss() and counted() == 12.0
  # read through an inner jitted function, and under transformations
  inner = dfdx.jit(lambda s: s * lin.b)
  outer = dfdx.jit(lambda s: inner(s) + 1.0)
  assert outer(3.0) == 7.0
  lin.b.value = np.array(-1.0)
  assert outer(3.0) == -2.0
  assert dfdx.grad(outer)(3.0) == -1.0
  np.testing.assert_allclose(dfdx.vmap(outer)(np.array([1.0, 2.0])), [0.0, -1.0])


def test_jit_updates_variables_at_every_call_as_eager_code_does():
  # assignments inside a jitted function run at every call (the new values are outputs of
  # the program, assigned after it), never at tracing: a counter, a value doubled, a value
  # assigned without being read, a training step with its update inside jit
  v, count, out = Variable(np.array(1.0)), Variable(np.array(0)), Variable(np.zeros(2))

  def f(x):
    v.value = v.value * 2
    count.value = count.value + 1
    out.value = x * v.value
    return dnp.sum(x) + v.value
  g = dfdx.jit(f)
  assert [float(g(np.ones(2))) for _ in range(3)] == [4.0, 6.0, 10.0]
  assert v.value == 8.0 and count.value == 3
  np.testing.assert_array_equal(out.value, [8.0, 8.0])
  assert not isinstance(v.value, dfdx._src.core.Tracer)

  class Lin(Module):
    def __init__(self):
      super().__init__()
      self.w = TrainVar(np.array([1.0, -2.0]))

  def train(lin, jitted):
    x = np.array([0.5, 1.5])
    loss = lambda: (x @ lin.w.value - 1.0) ** 2  # noqa: E731
    grad = dfdx.grad(loss, grad_vars=lin.train_vars())

    def step():
      (g,) = grad().values()
      lin.w.value = lin.w.value - 0.1 * g
      return loss()
    step = dfdx.jit(step) if jitted else step
    return [float(step()) for _ in range(5)], lin.w.value
  eager, jitted = train(Lin(), False), train(Lin(), True)
  np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-14)
  np.testing.assert_allclose(jitted[1], eager[1], rtol=1e-14)
  # a jitted function assigning a Variable, under grad: the Variable holds a plain value
  z = Variable(np.array(0.0))

  def keep(x):
    z.value = x * 3
    return x * x
  assert dfdx.grad(dfdx.jit(keep))(2.0) == 4.0 and z.value == 6.0
  assert not isinstance(z.value, dfdx._src.core.Tracer)
  # make_expr does not run its function: it refuses assignments
  with pytest.raises(TypeError, match="make_expr.*assigns Variables"):
    dfdx.make_expr(keep)(2.0)
  # Python control flow on a Variable's value: its error says how to pass it
  n = Variable(np.array(3))
  with pytest.raises(dfdx.ConcretizationError, match="a Variable's value is an input"):
    dfdx.jit(lambda x: sum(x for _ in range(int(n))))(1.0)


def test_variables_made_inside_a_transformation_hold_values_after_it():
  # also the first Variable of a process, made where no journal is open yet
  code = textwrap.dedent("""
      import numpy as np, dfdx, dfdx.numpy as dnp
      made = []
      def f(x):
          made.append(dfdx.Variable(x * 2))
          return dnp.sum(made[-1].value)
      for transform in (dfdx.grad, dfdx.jit, lambda f: lambda x: dfdx.jvp(f, (x,), (x,))):
          transform(f)(np.array([1.0, 2.0]))
          assert type(made[-1].value) is np.ndarray, type(made[-1].value)
          np.testing.assert_array_equal(made[-1] + 0, [2.0, 4.0])
      print("ok")
  """)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert out.stdout.strip() == "ok", out.stderr


def test_grad_vars_refuses_a_variable_listed_twice_and_a_module_without_trainvars():
  v = dfdx.Variable(np.array([1.0, 2.0]))
  with pytest.raises(dfdx.ArgnumsError, match=r"same Variable twice \(at \[0\] and \[1\]\)"):
    dfdx.grad(lambda x: dnp.sum(v.value * x), grad_vars=(v, v))(np.ones(2))

  class Plain(dfdx.Module):
    def __init__(self):
      super().__init__()
      self.state = dfdx.Variable(np.zeros(2))
  with pytest.raises(TypeError, match="holds no TrainVar.*module.vars"):
    dfdx.grad(lambda x: dnp.sum(x), grad_vars=Plain())(np.ones(2))


def test_a_0d_variable_assigned_inside_derivatives_stays_an_array():
  v = Variable(np.array(1.0))

  def f(x):
    v.value = v.value + x
    return v.value * x
  for transform in (dfdx.grad, dfdx.jacfwd, dfdx.hessian, lambda f: dfdx.grad(dfdx.jit(f))):
    v.value = np.array(1.0)
    transform(f)(2.0)
    assert type(v.value) is np.ndarray and v.value == 3.0
    v.value[...] = 0.0  # (writable in place, as after eager code)


def test_a_loop_step_run_again_for_its_carry_type_assigns_variables_once():
  # the carry 0.0 (a Python float) comes back a NumPy float: the first step runs again with
  # the carry cast, its assignments undone first (a counter went up four times in 3 steps)
  count = Variable(np.array(0))

  def body(c):
    count.value = count.value + 1
    return c + np.float64(1.0)
  for loop in (lambda: dfdx.scan(lambda c, _: (body(c), None), 0.0, None, length=3),
               lambda: dfdx.fori_loop(0, 3, lambda i, c: body(c), 0.0),
               lambda: dfdx.while_loop(lambda c: c < 3, body, 0.0)):
    count.value = np.array(0)
    loop()
    assert count.value == 3


def test_assigning_a_traced_value_in_a_staged_body_names_the_body():
  v = Variable(np.zeros(2))

  def step(c, x):
    v.value = c
    return c + x, None
  with pytest.raises(TypeError, match="loop or branch body.*as part of its carry"):
    dfdx.jit(lambda xs: dfdx.scan(step, np.zeros(2), xs)[0])(np.ones((3, 2)))


def test_a_variable_that_holds_no_numbers_is_named_with_what_to_do():
  v = Variable(np.array(["a", "b"]))
  with pytest.raises(dfdx.NonDifferentiableInputError,
                     match=r"grad_vars at \[0\].*Leave this Variable out of grad_vars"):
    dfdx.grad(lambda x: dnp.sum(x), grad_vars=[v])(np.ones(2))
