"""Work moved out of jitted loops (dfdx/_src/loops.py): which equations of a scan's body run
before the loop, in it and after it, and that every split computes the loop's values
(checked against the Python loop that dfdx.scan is outside jit, and against derivatives by
finite differences)."""
import re

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import loops, passes
from dfdx.testing import check_grads


def compiled(f, *args):
  """The program jit compiles for f(*args)."""
  return passes.optimize(dfdx.make_expr(f)(*args).program, evaluate_only=True)


def scans(program):
  return [e for e in program.eqns if e.prim.name == "scan"]


def body_prims(eqn):
  return sorted(e.prim.name for e in eqn.params["body"].eqns)


def assert_jit_matches(f, *args, rtol=1e-13):
  eager, jitted = f(*args), dfdx.jit(f)(*args)
  for a, b in zip(dfdx.tree.tree_leaves(eager), dfdx.tree.tree_leaves(jitted)):
    assert np.shape(a) == np.shape(b) and np.result_type(a) == np.result_type(b)
    np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-300)


def _rnn(w, u, v, xs):
  """A recurrent loss: the input's part (u * x) needs no carry, the step's loss reads the
  carry but feeds nothing back."""
  def step(h, x):
    h = dnp.tanh(w * h + u * x)
    return h, dnp.sum(dnp.exp(v * h)) * dnp.sum(x)
  h, ys = dfdx.scan(step, dnp.zeros_like(w), xs)
  return dnp.sum(h) + dnp.sum(ys)


@pytest.fixture
def rnn_args(rng):
  return (rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 4),
          rng.uniform(-1, 1, (9, 4)))


def test_the_loop_keeps_only_what_the_carry_needs(rnn_args):
  (scan,) = scans(compiled(_rnn, *rnn_args))
  # u * x runs before the loop for every step; exp, the sums and the product after it.
  assert body_prims(scan) == ["add", "mul", "tanh"]
  assert scan.params["num_xs"] == 1 and scan.params["length"] == 9


def test_values_and_gradients_of_a_split_loop(rnn_args):
  assert_jit_matches(_rnn, *rnn_args)
  assert_jit_matches(dfdx.value_and_grad(_rnn, (0, 1, 2, 3)), *rnn_args)
  check_grads(dfdx.jit(_rnn), rnn_args, order=2, modes=("fwd", "rev"))


def test_sums_carried_through_reverse_mode_are_summed_after_the_loop(rnn_args):
  program = compiled(dfdx.grad(_rnn, (0, 1, 2)), *rnn_args)
  loops_ = scans(program)
  # The reverse loop carries only h's cotangent: those of w, u and v (closed over, so
  # summed over the steps) are stacked and summed after it.
  backward = loops_[-1]
  assert backward.params["num_carry"] == 1, backward.params["body"]
  assert len(backward.params["body"].eqns) <= 6, backward.params["body"]


@pytest.mark.parametrize("reverse", [False, True])
def test_every_kind_of_output(rng, reverse):
  """Carries and ys that are inputs, constants, literals or steps' values, kept in place
  under reverse=True."""
  xs = rng.normal(size=(5, 3))
  k = rng.normal(size=3)

  def f(c, xs, k):
    def step(carry, x):
      a, b, total, n = carry
      kk = dnp.cos(k) * 2.0  # invariant
      a_new = a * 0.5 + x * kk  # reads the carry
      return ((a_new, x, total + dnp.sin(x) * a, n + 1),  # b becomes x: a step's value
              (x * kk, a, kk, 1.0, dnp.exp(a_new) + x, b))
    return dfdx.scan(step, (c, dnp.zeros(3), dnp.zeros(3), 0), xs, reverse=reverse)
  c = rng.normal(size=3)
  assert_jit_matches(f, c, xs, k)
  (scan,) = scans(compiled(f, c, xs, k))
  assert "cos" not in body_prims(scan) and "exp" not in body_prims(scan)


def test_reverse_scan_stacks_each_step_in_its_place(rng):
  xs = rng.normal(size=(6,))

  def f(xs):
    return dfdx.scan(lambda c, x: (c + x, c * dnp.exp(x)), 0.0, xs, reverse=True)
  assert_jit_matches(f, xs)
  carry, ys = dfdx.jit(f)(xs)
  expected = [np.sum(xs[i + 1:]) * np.exp(xs[i]) for i in range(6)]
  np.testing.assert_allclose(ys, expected, rtol=1e-14)


def test_a_carried_sum_keeps_its_initial_value(rng):
  xs = rng.normal(size=(7, 2))

  def f(init, xs):
    return dfdx.scan(lambda s, x: (s + dnp.sin(x), None), init, xs)[0]
  init = rng.normal(size=2)
  np.testing.assert_allclose(dfdx.jit(f)(init, xs), init + np.sum(np.sin(xs), 0), rtol=1e-14)
  assert not scans(compiled(f, init, xs))  # nothing is left to loop over


def test_nested_loops_and_float32(rng):
  xs = rng.normal(size=(4, 3, 2)).astype(np.float32)
  w = np.float32(0.7)

  def f(w, xs):
    def outer(h, x_block):
      inner_h, inner_ys = dfdx.scan(lambda g, x: (g * w + x, dnp.exp(x) * g), h, x_block)
      return inner_h, dnp.sum(inner_ys, 0) * dnp.cos(w)
    return dfdx.scan(outer, dnp.zeros(2, np.float32), xs)
  assert_jit_matches(f, w, xs, rtol=1e-5)
  assert dfdx.jit(f)(w, xs)[1].dtype == np.float32
  assert_jit_matches(dfdx.grad(lambda w, xs: dnp.sum(f(w, xs)[1])), w, xs, rtol=1e-5)


def test_short_loops_are_left_alone(rng):
  def f(h, xs):
    return dfdx.scan(lambda h, x: (h * 0.5 + dnp.exp(x), dnp.sin(h)), h, xs)
  xs = rng.normal(size=(1, 2))
  (scan,) = scans(compiled(f, np.ones(2), xs))
  assert "exp" in body_prims(scan)
  assert_jit_matches(f, np.ones(2), xs)
  xs = rng.normal(size=(0, 2))  # (no step: init as it is, no loop at all)
  assert not scans(compiled(f, np.ones(2), xs))
  assert_jit_matches(f, np.ones(2), xs)


def test_the_memory_bound_keeps_per_step_work_in_the_loop(rng, monkeypatch):
  xs = rng.normal(size=(8, 50))
  k = rng.normal(size=50)

  def f(h, xs, k):
    return dfdx.scan(lambda h, x: (h * dnp.cos(k) + dnp.exp(x), dnp.sin(h)), h, xs)
  monkeypatch.setattr(loops, "MAX_STACKED_BYTES", 8 * 50 * 8)  # one stacked array of (8, 50)
  (scan,) = scans(compiled(f, np.ones(50), xs, k))
  prims = body_prims(scan)
  assert "exp" in prims and "sin" in prims  # not batched: it would stack three such arrays
  assert "cos" not in prims  # invariant: computed once, whatever the bound
  assert_jit_matches(f, np.ones(50), xs, k)


def test_a_split_that_saves_nothing_is_not_made(rng):
  def f(h, xs):
    return dfdx.scan(lambda h, x: (dnp.tanh(h * x), h), h, xs)
  program = passes.optimize(dfdx.make_expr(f)(np.ones(3), rng.normal(size=(5, 3))).program)
  assert loops.hoist_loops(program) is program


def test_loops_under_vmap_and_jit(rnn_args, rng):
  w, u, v, xs = rnn_args
  batch = rng.uniform(-1, 1, (3, 9, 4))
  f = dfdx.vmap(dfdx.grad(_rnn, (0, 1)), in_axes=(None, None, None, 0))
  eager, jitted = f(w, u, v, batch), dfdx.jit(f)(w, u, v, batch)
  for a, b in zip(eager, jitted):
    np.testing.assert_allclose(b, a, rtol=1e-12)


def test_the_loop_is_written_around_the_body_code(rng, jit_sources):
  """No call per step: the compiled scan iterates over the rows of its xs with the body's
  code inside, stacks the ys (one of them an incoming carry) before the carries change, and
  a carry may take another's value."""
  def f(a, xs):
    def step(carry, x):
      h, g = carry
      return (g, dnp.tanh(h * x)), h  # the carries swap; y is the incoming h
    return dfdx.scan(step, (a, a * 2.0), xs, reverse=True)
  a, xs = rng.normal(size=3), rng.normal(size=(5, 3))
  (h, g), ys = dfdx.jit(f)(a, xs)
  (source,) = [s for s in jit_sources if "for " in s]
  assert "zip(" in source and "[::-1]" in source and "tanh" in source
  h_, g_, expected = a, a * 2.0, [None] * 5
  for i in reversed(range(5)):
    expected[i] = h_
    h_, g_ = g_, np.tanh(h_ * xs[i])
  np.testing.assert_array_equal(ys, np.stack(expected))
  np.testing.assert_array_equal(h, h_)
  np.testing.assert_array_equal(g, g_)


def test_stacked_results_are_computed_into_their_rows(rng, jit_sources):
  """A stacked result the body makes is computed into its row of the stacked array (out=),
  with no store after; the row, carried on, is read by the next step. A stacked incoming
  carry is stored."""
  def f(a, xs):
    def step(h, x):
      new = dnp.tanh(h * x)
      return new, (new * h, dnp.cos(new) + x)  # (both computed after the loop)
    return dfdx.scan(step, a, xs)
  a, xs = rng.normal(size=3), rng.normal(size=(6, 3))
  for got, want in zip(dfdx.tree.tree_leaves(dfdx.jit(f)(a, xs)), dfdx.tree.tree_leaves(f(a, xs))):
    np.testing.assert_allclose(got, want, rtol=1e-14)
  (source,) = [s for s in jit_sources if "for " in s]
  assert re.search(r"= np\.tanh\(\w+, out=ys0\[step\]\)", source), source
  assert "ys0[step] =" not in source, source

  def g(a, xs):  # the incoming carry stacked: stored
    return dfdx.scan(lambda h, x: (dnp.tanh(h * x), h), a, xs)
  jit_sources.clear()
  np.testing.assert_allclose(dfdx.jit(g)(a, xs)[1], g(a, xs)[1], rtol=1e-14)
  (source,) = [s for s in jit_sources if "for " in s]
  assert re.search(r"ys\d\[step\] = v\d+", source), source


@pytest.mark.parametrize("reverse", [False, True])
def test_an_incoming_carry_stacked_alone_is_stacked_as_the_outgoing_one(rng, reverse,
                                                                       jit_sources):
  """The loop stacks the value the carry leaves each step with, computed into its row
  (here by the logistic's outer exp, and by tanh), and after the loop shifts it a step:
  no step stores anything."""
  import dfdx.scipy.special as dsp

  def f(a, xs):
    def step(h, x):
      gate = dsp.expit(h * x)
      new = dnp.tanh(h * dnp.exp(x)) + gate
      return new, (h * 2.0, gate * 3.0)
    return dfdx.scan(step, a, xs, reverse=reverse)
  a, xs = rng.normal(size=3), rng.normal(size=(6, 3))
  for got, want in zip(dfdx.tree.tree_leaves(dfdx.jit(f)(a, xs)),
                       dfdx.tree.tree_leaves(f(a, xs))):
    np.testing.assert_allclose(got, want, rtol=1e-14)
  (source,) = [s for s in jit_sources if "for " in s]
  assert not re.search(r"ys\d\[step\] =", source), source
  assert re.search(r"np\.exp\(-np\.logaddexp\(.*, out=ys\d\[step\]\)", source), source


def test_products_regrouped_so_that_factors_leave_the_loop(rng):
  """(tanh(h) * exp(x)) * k is computed as tanh(h) * (exp(x) * k): one product a step."""
  xs, k = rng.normal(size=(6, 3)), rng.normal(size=3)

  def f(h, xs, k):
    return dfdx.scan(lambda h, x: (dnp.tanh(h) * dnp.exp(x) * k, None), h, xs)[0]
  h = rng.normal(size=3)
  (scan,) = scans(compiled(f, h, xs, k))
  assert body_prims(scan) == ["mul", "tanh"]
  assert_jit_matches(f, h, xs, k)
  # A product read elsewhere stays as it is.

  def g(h, xs, k):
    def step(h, x):
      p = dnp.tanh(h) * dnp.exp(x)
      return p * k, p
    return dfdx.scan(step, h, xs)
  (scan,) = scans(compiled(g, h, xs, k))
  assert body_prims(scan) == ["mul", "mul", "tanh"]
  assert_jit_matches(g, h, xs, k)
  # Sums too: (tanh(h) + exp(x)) + k adds one sum a step.

  def s(h, xs, k):
    return dfdx.scan(lambda h, x: (dnp.tanh(h) + dnp.exp(x) + k, None), h, xs)[0]
  (scan,) = scans(compiled(s, h, xs, k))
  assert body_prims(scan) == ["add", "tanh"]
  assert_jit_matches(s, h, xs, k)


@pytest.mark.parametrize("reverse", [False, True])
def test_an_incoming_carry_is_the_outgoing_one_a_step_earlier(rng, reverse):
  xs = rng.normal(size=(5, 3))

  def f(h, xs):
    def step(h, x):
      new = dnp.tanh(h * x)
      return new, (dnp.sin(h), new * 2.0)  # both read after the loop
    return dfdx.scan(step, h, xs, reverse=reverse)
  h = rng.normal(size=3)
  (scan,) = scans(compiled(f, h, xs))
  assert len(scan.params["body"].outs) == 2  # the carry, and the carry stacked once
  assert_jit_matches(f, h, xs)


def test_swapped_carries_stacked_and_sums_of_other_dtypes(rng):
  xs = rng.normal(size=(5, 3))

  def f(a, xs):
    def step(carry, x):
      h, g, n, seen = carry
      return (g, dnp.tanh(h * x), n + dnp.sum(x > 0), seen + (x > 1)), (h, g)
    return dfdx.scan(step, (a, a * 2.0, 0, dnp.zeros(3, bool)), xs)
  a = rng.normal(size=3)
  assert_jit_matches(f, a, xs)
  (_, _, n, seen), _ = dfdx.jit(f)(a, xs)
  assert n == np.sum(xs > 0) and n.dtype == np.result_type(int)
  np.testing.assert_array_equal(seen, np.any(xs > 1, axis=0))


def test_exported_code_splits_its_loops_as_jit_does():
  def loss(w, xs):
    h, hs = dfdx.scan(lambda h, x: (dnp.tanh(w * h + x), dnp.exp(h)), 0.0, xs)
    return h + dnp.sum(hs)
  xs = np.array([0.5, -1.0, 2.0])
  source = dfdx.export.to_source(dfdx.grad(loss), 0.3, xs, name="dloss")
  first_loop = source[source.index("def fn0"):]
  first_loop = first_loop[:first_loop.index("return")]
  assert "tanh" in first_loop and "exp" not in first_loop
  namespace = {}
  exec(source, namespace)
  np.testing.assert_allclose(namespace["dloss"](0.3, xs), dfdx.grad(loss)(0.3, xs),
                             rtol=1e-14)


# ---- recurrences in turn (loops._recurrences, loops._parts) ------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_recurrences_that_do_not_feed_back_run_as_loops_in_turn(rng, reverse):
  def f(w, h0, xs):
    def step(carry, x):
      h1, h2, total = carry
      new1 = dnp.tanh(w[0] * h1 + x)  # layer 1: its own state and the input
      gate = dnp.exp(-dnp.abs(new1 * w[1]))  # reads layer 1 alone
      new2 = dnp.sin(w[2] * h2 + gate * h1)  # layer 2, reading layer 1's incoming state too
      return (new1, new2, total + new2 * x), (new1 * 2.0, new2 + h1)
    return dfdx.scan(step, (h0, h0 * 0.5, dnp.zeros(3)), xs, reverse=reverse)
  w, h0, xs = rng.normal(size=3), rng.normal(size=3), rng.normal(size=(7, 3))
  loops_ = scans(compiled(f, w, h0, xs))
  assert len(loops_) == 2
  first, second = (body_prims(s) for s in loops_)
  # layer 2's gate and its product with layer 1's state run for every step between the loops
  assert "tanh" in first and "sin" not in first
  assert "sin" in second and not {"tanh", "exp", "abs"} & set(second)
  assert_jit_matches(f, w, h0, xs)

  def loss(w, h0, xs):
    (h1, h2, total), (ys1, ys2) = f(w, h0, xs)
    return dnp.sum(h2 * h1) + dnp.sum(total) + dnp.sum(ys1 * ys2)
  assert_jit_matches(dfdx.value_and_grad(loss, (0, 1, 2)), w, h0, xs)
  # reverse mode's loop distributes too: its recurrences are the layers' cotangents
  assert len(scans(compiled(dfdx.grad(loss, (0, 1)), w, h0, xs))) == 4
  check_grads(dfdx.jit(loss), (w, h0, xs), order=2, modes=("fwd", "rev"))


def test_a_layer_that_keeps_all_its_work_in_its_loop(rng):
  """The first loop has nothing to move out (it runs as it is); the second reads the first's
  states for every step at once."""
  def f(h0, xs):
    def step(carry, x):
      h1, h2 = carry
      new1 = dnp.tanh(h1 * x + h1)
      new2 = h2 * 0.5 + dnp.exp(dnp.sin(dnp.cos(new1 * 3.0)))
      return (new1, new2), None
    return dfdx.scan(step, (h0, h0), xs)[0]
  h0, xs = rng.normal(size=4), rng.normal(size=(9, 4))
  first, second = scans(compiled(f, h0, xs))
  assert body_prims(first) == ["add", "mul", "tanh"]
  assert body_prims(second) == ["add", "mul"]
  assert_jit_matches(f, h0, xs)


def _layers_reading_the_input(carry, x):
  h1, h2 = carry
  new1 = dnp.tanh(h1 * x[0] + x[1])
  return (new1, dnp.sin(h2 * 0.5 + dnp.exp(dnp.cos(new1 * x[1]) * 2.0))), (new1 * h2, h1)


def _a_first_layer_with_nothing_to_move(carry, x):  # (its loop runs as it is)
  h1, h2 = carry
  new1 = dnp.tanh(h1 * 0.9 + 0.1)
  return (new1, dnp.sin(h2 * 0.5 + dnp.exp(dnp.cos(new1 * x[1]) * 2.0))), (new1 * h2, h1)


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("body", [_layers_reading_the_input,
                                  _a_first_layer_with_nothing_to_move])
def test_loops_in_turn_keep_every_bit_where_asked(rng, exact, body):
  from dfdx._src import ir, staging

  def traced(h0, xs):
    (h1, h2), (a, b) = dfdx.scan(body, (h0, h0 * 2.0), xs)
    return [h1, h2, a, b]
  h0, xs = rng.normal(size=5), rng.normal(size=(40, 2, 5))
  program, _ = staging.make_program(traced, [staging.core.get_aval(a) for a in (h0, xs)])
  split = loops.hoist_loops(program, exact=exact)
  assert len(scans(split)) == 2
  got, whole = ir.eval_program(split, h0, xs), ir.eval_program(program, h0, xs)
  for a, b in zip(got, whole):
    if exact:
      np.testing.assert_array_equal(a, b)
    else:
      np.testing.assert_allclose(a, b, rtol=1e-13)


def test_the_recurrences_are_the_strongly_connected_carries_each_after_what_it_reads(rng):
  for _ in range(200):
    n = int(rng.integers(1, 12))
    succ = [sorted({int(j) for j in rng.integers(0, n, int(rng.integers(0, 4)))})
            for _ in range(n)]
    reach = [set(s) for s in succ]  # (brute force: the transitive closure)
    for _ in range(n):
      reach = [r.union(*(reach[j] for j in r)) for r in reach]
    found = loops._components(succ)
    assert sorted(i for c in found for i in c) == list(range(n))
    where = {i: k for k, c in enumerate(found) for i in c}
    for i in range(n):
      for j in range(n):
        together = i == j or (j in reach[i] and i in reach[j])
        assert (where[i] == where[j]) == together
        if j in reach[i] and not together:  # i reads j: j's recurrence comes first
          assert where[j] < where[i]
