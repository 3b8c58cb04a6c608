"""Transformations running in several threads at once: each thread has its own current trace
and dynamic context (core.context), so no thread sees another's tracers."""
import sys
import threading

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp


@pytest.fixture(autouse=True)
def _switch_often():
  # Python switches threads every 5 ms by default; switching every microsecond puts one
  # thread's operations inside another's transformation many times in every test.
  prev = sys.getswitchinterval()
  sys.setswitchinterval(1e-6)
  yield
  sys.setswitchinterval(prev)


def _run_threads(work, args):
  """work(arg) in one thread per arg, all at once; the exceptions they raised."""
  errors = []
  start = threading.Barrier(len(args))

  def body(arg):
    start.wait()
    try:
      work(arg)
    except BaseException as e:  # noqa: BLE001 (reported by the test)
      errors.append(e)
  threads = [threading.Thread(target=body, args=(a,)) for a in args]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  return errors


def _chain(x, a):
  y = x
  for _ in range(60):
    y = dnp.sin(y) * a + x
  return dnp.sum(y * y)


def test_gradients_in_four_threads_equal_their_values_in_one():
  x = np.linspace(0.0, 1.0, 7)
  expected = {a: dfdx.grad(_chain)(x, a) for a in (0.5, 0.9)}
  got = []

  def work(a):
    for _ in range(15):
      got.append((a, dfdx.grad(_chain)(x, a)))
  assert _run_threads(work, [0.5, 0.9, 0.5, 0.9]) == []
  assert len(got) == 60
  for a, g in got:
    np.testing.assert_array_equal(g, expected[a])


def test_plain_numpy_calls_beside_a_transformation_stay_plain():
  # dfdx.numpy called with no transformation in one thread while another thread is inside
  # grad, vmap and jit: NumPy values out, never a tracer of the other thread's trace.
  x = np.linspace(0.0, 1.0, 5)
  seen = []

  def work(kind):
    for _ in range(30):
      if kind == "plain":
        out = dnp.sum(dnp.exp(dnp.sin(x)) * 2.0)
        seen.append(type(out))
        assert out == np.sum(np.exp(np.sin(x)) * 2.0)
      elif kind == "grad":
        dfdx.grad(_chain)(x, 0.7)
      elif kind == "vmap":
        dfdx.vmap(lambda r: _chain(r, 0.3))(np.stack([x, x]))
      else:
        dfdx.jit(lambda r: _chain(r, 0.2))(x)  # traced at every call: a new function
  assert _run_threads(work, ["plain", "grad", "vmap", "jit"]) == []
  assert set(seen) == {np.float64}


def test_jit_vmap_and_hessian_in_threads():
  x = np.linspace(-1.0, 1.0, 4)
  f = lambda v: dnp.sum(dnp.tanh(v) ** 3 * dnp.cos(v))  # noqa: E731
  expected = {"hessian": dfdx.hessian(f)(x),
              "vmap": dfdx.vmap(dfdx.grad(f))(np.stack([x, 2 * x])),
              "jit": dfdx.jit(dfdx.grad(f))(x)}
  jitted = dfdx.jit(dfdx.grad(f))
  results = []

  def work(kind):
    for _ in range(10):
      if kind == "hessian":
        results.append((kind, dfdx.hessian(f)(x)))
      elif kind == "vmap":
        results.append((kind, dfdx.vmap(dfdx.grad(f))(np.stack([x, 2 * x]))))
      else:
        results.append((kind, jitted(x)))
  assert _run_threads(work, ["hessian", "vmap", "jit", "jit"]) == []
  for kind, value in results:
    np.testing.assert_allclose(value, expected[kind], rtol=1e-13, atol=1e-15)


def test_variables_and_zero_absorbing_reruns_in_threads():
  # Each thread differentiates its own Module (the journal of assigned Variables is per
  # thread), and a derivative that comes out NaN at first (sqrt at 0 under where) is computed
  # again with the zero-absorbing rule in its own thread only.
  class Scale(dfdx.Module):
    def __init__(self, w):
      super().__init__()
      self.w = dfdx.TrainVar(np.array(w))

    def __call__(self, x):
      return dnp.sum(self.w * dnp.sin(x))

  safe = lambda v: dnp.sum(dnp.where(v > 0, dnp.sqrt(dnp.abs(v)), 0.0))  # noqa: E731
  x = np.array([0.0, 0.25, 1.0])

  def work(w):
    model = Scale([w, w, w])
    for _ in range(20):
      g = dfdx.grad(model, grad_vars=model.train_vars())(x)
      np.testing.assert_allclose(next(iter(g.values())), np.sin(x))
      np.testing.assert_array_equal(dfdx.grad(safe)(x), [0.0, 1.0, 0.5])
  assert _run_threads(work, [1.0, 2.0, 3.0]) == []


def test_custom_rules_staged_in_two_threads_at_once():
  # While one thread runs a custom function's rule (inside which the function is its plain
  # primal), another thread's call of it must still use the rule: a straight-through clip,
  # whose rule passes every tangent, differs from clip's own derivative outside [0, 1].
  @dfdx.custom_jvp
  def clip01(x):
    return dnp.clip(x, 0.0, 1.0)

  @clip01.defjvp
  def _(primals, tangents):
    return clip01(primals[0]), tangents[0]

  @dfdx.custom_vjp
  def scale_grad(x):
    return dnp.sin(x)

  scale_grad.defvjp(lambda x: (scale_grad(x), x), lambda x, g: (3.0 * g,))
  x = np.array([-1.0, 0.5, 2.0])

  def work(kind):
    for _ in range(40):
      if kind == "jvp":
        np.testing.assert_array_equal(dfdx.grad(lambda v: dnp.sum(clip01(v) * 2.0))(x), 2.0)
      else:
        np.testing.assert_array_equal(dfdx.grad(lambda v: dnp.sum(scale_grad(v)))(x), 3.0)
  assert _run_threads(work, ["jvp", "vjp", "jvp", "vjp"]) == []


def test_a_module_shared_by_threads_shows_each_its_own_traced_values():
  # Two threads differentiate the same model (grad_vars puts their tracers in its Variables,
  # for their own thread only), one jits a function reading it, and one runs plain forward
  # passes: each sees the model's values, never another thread's tracers.
  class Net(dfdx.Module):
    def __init__(self):
      super().__init__()
      rng = np.random.default_rng(0)
      self.w = dfdx.TrainVar(rng.normal(size=(6, 3)) / 3)
      self.b = dfdx.TrainVar(np.zeros(3))

    def __call__(self, x):
      return dnp.tanh(x @ self.w + self.b)

  net = Net()
  x = np.random.default_rng(1).normal(size=(5, 6))
  grad_fn = dfdx.grad(lambda x: dnp.sum(net(x) ** 2), grad_vars=net)
  want_grads = grad_fn(x)
  want_out = np.tanh(x @ net.w.value + net.b.value)

  def work(kind):
    for _ in range(40):
      if kind == "grad":
        got = grad_fn(x)
        for key, value in want_grads.items():
          assert type(got[key]) is np.ndarray
          np.testing.assert_array_equal(got[key], value)
      elif kind == "jit":
        np.testing.assert_allclose(dfdx.jit(lambda x: net(x))(x), want_out, rtol=1e-14)
      else:
        out = net(x)
        assert type(out) is np.ndarray
        np.testing.assert_array_equal(out, want_out)
  assert _run_threads(work, ["grad", "grad", "jit", "plain"]) == []
  assert type(net.w.value) is np.ndarray and type(net.b.value) is np.ndarray


def test_a_variable_assigned_in_a_transformation_is_everyones_once_it_returns():
  counter = dfdx.Variable(np.array(0.0))

  def step(x):
    counter.value = counter.value + 1.0
    return dnp.sum(x ** 2)

  def work(_):
    for _ in range(25):
      dfdx.grad(step)(np.ones(2))
  assert _run_threads(work, [0, 1]) == []
  assert type(counter.value) is np.ndarray  # no tracer left behind
  assert 1.0 <= counter.value <= 50.0  # (threads that ran at once may overwrite each other)
  before = counter.value
  with pytest.raises(ZeroDivisionError):  # an exception drops what the call assigned
    dfdx.grad(lambda x: (step(x), 1 / 0))(np.ones(2))
  assert counter.value is before


def test_debug_nans_blocks_in_threads_at_once():
  # the checks stay on while any thread's block is open, and are off once all have ended
  # (two threads' blocks ending out of order left them on); a thread other than the one
  # that switched them on finds a NaN that a NumPy ufunc makes by scanning its output
  assert not dfdx.debug_nans.is_enabled()
  found = []

  def work(k):
    for _ in range(30):
      with dfdx.debug_nans():
        try:
          dfdx.grad(lambda x: dnp.sum(dnp.log(x - 2.0)))(np.ones(2))
        except dfdx.NaNError:
          found.append(k)
  assert _run_threads(work, [0, 1, 2]) == []
  assert not dfdx.debug_nans.is_enabled()
  assert sorted(set(found)) == [0, 1, 2] and len(found) == 90
  with np.errstate(invalid="ignore"):  # (off: a NaN is a value again)
    assert np.isnan(dnp.log(np.array([-1.0]) + np.zeros(1)))[0]


def test_a_transformation_leaves_other_threads_assignments_to_its_variables():
  # grad_vars gives w a tracer in this thread; another thread assigns w meanwhile; at the
  # end this thread's w is its value from before (unchanged here), so the other's stays
  w = dfdx.Variable(np.array([1.0, 2.0]))

  def loss(x):
    t = threading.Thread(target=lambda: setattr(w, "value", np.array([5.0, 6.0])))
    t.start()
    t.join()
    return dnp.sum(w.value * x)
  g = dfdx.grad(loss, grad_vars=[w])(np.array([3.0, 4.0]))
  np.testing.assert_array_equal(g[0], [3.0, 4.0])
  np.testing.assert_array_equal(w.value, [5.0, 6.0])


def test_assignments_by_other_threads_survive_grad_vars_and_nan_reruns():
  # grad_vars reads w and gives it a tracer; another thread assigns w in between (here at the
  # first read, by a hook) or during a first run that the NaN rerun repeats: the
  # transformation changed nothing of w, so the other thread's value stands (it was undone)
  class Hooked(dfdx.TrainVar):
    __slots__ = ()
    hook = []

    @property
    def value(self):
      out = dfdx.TrainVar.value.fget(self)
      while self.hook:
        self.hook.pop()()
      return out

    @value.setter
    def value(self, new):
      dfdx.TrainVar.value.fset(self, new)

  def assign_elsewhere(var, value):
    t = threading.Thread(target=lambda: setattr(var, "value", np.array(value)))
    t.start()
    t.join()
  w = Hooked(np.array(1.0))
  Hooked.hook.append(lambda: assign_elsewhere(w, 5.0))
  g = dfdx.grad(lambda x: dnp.sum(w.value * x), grad_vars=w)(np.float64(2.0))
  assert g == 2.0 and w.value == 5.0  # (computed from w = 1, its value when first read)
  v = dfdx.TrainVar(np.array(1.0))
  runs = []

  def loss(x):
    runs.append(1)
    if len(runs) == 1:
      assign_elsewhere(v, 5.0)
    return dnp.sqrt(x * x) * v.value  # (at 0 a NaN in plain products: a second run)
  dfdx.grad(loss, grad_vars=v, argnums=0)(np.float64(0.0))
  assert len(runs) == 2 and v.value == 5.0
