"""The middle blocks of a rolled reverse pass run as one compiled loop (dfdx/_src/
rolled_loop.py): same bits as the interpreted pass on every call, the loop kept only where it
fits, and the blocks run one by one wherever a call's tape does not fit it."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ir, loops, reverse_cache, rolled_loop, staging

from tests.test_reverse_cache import (assert_same_bits, interpreted, recurrence,
                                      scaled_recurrence)


@pytest.fixture
def looping(rolling, monkeypatch):
  """`rolling`, with each loop run counted: rolling["loop runs"] (calls that ran the loop)."""
  runs = []
  real = rolled_loop.run
  monkeypatch.setattr(rolled_loop, "run", lambda *a: runs.append(real(*a)) or runs[-1])
  rolling["loop runs"] = runs
  return rolling


def _loop_of(rolling):
  plan = rolling["rolled"][-1]
  rolled = [e.fn for bucket in reverse_cache._entries.values() for e in bucket
            if type(e.fn) is reverse_cache._Rolled]
  assert len(rolled) == 1
  return plan, rolled[0].loop


def lstm_like(params, xs):
  """Two gated layers, the weights indexed once before the loop; the inputs are constants."""
  total = 0.0
  h, c = [dnp.tanh(params[8]), dnp.tanh(params[9])], [params[8] * 0.0, params[9] * 0.0]
  w = [[params[4 * i + j] for j in range(4)] for i in range(2)]
  for t in range(48):
    x = xs[t]
    for i in range(2):
      f, g = dfdx.scipy.special.expit(x * w[i][0]), dfdx.scipy.special.expit(h[i] * w[i][1])
      c[i] = c[i] * f + g * dnp.tanh(h[i] * w[i][2] + x * w[i][3])
      h[i] = dnp.tanh(c[i]) * g
      x = h[i]
    total = total + dnp.log(dnp.sum(dnp.exp(x)))
  return total


def test_a_recurrent_loops_middle_blocks_run_as_one_loop_with_the_interpreted_bits(
    looping, rng):
  import dfdx.scipy.special  # noqa: F401
  vg = dfdx.value_and_grad(lstm_like)
  for _ in range(4):  # new values each call
    params, xs = rng.normal(size=(10, 5)) * 0.5, rng.normal(size=(48, 5))
    assert_same_bits(vg(params, xs), interpreted(vg, params, xs))
  assert reverse_cache.loop_stats == {"compiled": 1, "differed": 0, "slower": 0,
                                      "not staged": 0}
  plan, loop = _loop_of(looping)
  assert isinstance(loop, rolled_loop.Loop)
  # from the second-to-last block down to the second (the first reads the initial states)
  assert loop.hi == plan.end - 2 * plan.period and loop.lo == plan.start + plan.period
  assert looping["loop runs"] and all(looping["loop runs"])
  # the weights are passed once, the outputs that the next node reads once
  assert rolled_loop._SAME in loop.kinds and rolled_loop._DUP in loop.kinds
  params, xs = rng.normal(size=(10, 5)) * 0.5, rng.normal(size=(48, 5))
  e = np.zeros_like(params)
  e[6, 3] = 1e-6
  fd = (lstm_like(params + e, xs) - lstm_like(params - e, xs)) / 2e-6
  np.testing.assert_allclose(vg(params, xs)[1][6, 3], fd, rtol=1e-5, atol=1e-9)


def test_python_numbers_that_change_every_step_are_stacked(looping, rng):
  vg = dfdx.value_and_grad(recurrence)  # (its loss divides by t + 1)
  for _ in range(3):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    assert_same_bits(vg(params, xs, 40), interpreted(vg, params, xs, 40))
  _, loop = _loop_of(looping)
  assert rolled_loop._NUMBERS in loop.kinds and reverse_cache.loop_stats["compiled"] == 1


def test_a_block_reading_two_blocks_back_runs_block_by_block(looping, rng):
  vg = dfdx.value_and_grad(recurrence)
  for _ in range(3):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    assert_same_bits(vg(params, xs, 40, True), interpreted(vg, params, xs, 40, True))
  plan, loop = _loop_of(looping)
  assert rolled_loop.bounds(plan) is None and loop is False
  assert looping["compiled"] == 1 and not looping["loop runs"]


def test_a_tape_whose_residuals_do_not_fit_the_loop_runs_block_by_block(looping, rng):
  vg = dfdx.value_and_grad(scaled_recurrence)
  for copies in (False, False, False, True, False):
    p, xs, scale = rng.normal(size=(2, 4)), rng.normal(size=(40, 4)), rng.normal(size=4)
    # a constant that is one array in every step, or (copies) a new array in every step
    scales = [scale * (1.0 + 0.01 * t) for t in range(40)] if copies else [scale] * 40
    assert_same_bits(vg(p, xs, scales), interpreted(vg, p, xs, scales))
  assert reverse_cache.loop_stats["compiled"] == 1
  assert looping["loop runs"][-2:] == [False, True]  # the call with copies did not fit


def test_a_tape_of_another_length_runs_the_blocks_of_the_loop_it_has(looping, rng):
  vg = dfdx.value_and_grad(recurrence)
  ran = []
  for steps in (40, 40, 40, 50, 32, 40):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(50, 6))
    before = len(looping["loop runs"])
    assert_same_bits(vg(params, xs, steps), interpreted(vg, params, xs, steps))
    ran.append(looping["loop runs"][before:])
  assert reverse_cache.loop_stats["compiled"] == 1
  assert ran[2:] == [[True], [True], [], [True]]  # 50 steps: 36 of them in the loop


def test_a_tape_whose_periodic_part_starts_later_runs_block_by_block(looping, rng):
  def f(p, xs, warm):
    h = dnp.tanh(p[0])
    for t in range(40):  # the first `warm` steps differ: the blocks repeat from there on
      a = h * p[1] + xs[t]
      h = dnp.sin(a) if t < warm else dnp.tanh(a)
    return dnp.sum(h ** 2)
  vg = dfdx.value_and_grad(f)
  ran = []
  for warm in (0, 0, 0, 12, 0):
    p, xs = rng.normal(size=(2, 4)), rng.normal(size=(40, 4))
    before = len(looping["loop runs"])
    assert_same_bits(vg(p, xs, warm), interpreted(vg, p, xs, warm))
    ran.append(looping["loop runs"][before:])
  assert reverse_cache.loop_stats["compiled"] == 1
  assert ran[2:] == [[True], [False], [True]]


def test_residuals_of_different_shapes_are_not_stacked():
  # (their sizes add up to a stack's, but the entries would not be in their places)
  column = [np.zeros(4), np.zeros(3), np.zeros(5), np.zeros(4)]
  with pytest.raises(ValueError):
    rolled_loop._stacked(column, rolled_loop._STACKED)
  np.testing.assert_array_equal(
      rolled_loop._stacked([np.arange(3.0), np.arange(3.0) + 1], rolled_loop._STACKED),
      [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])


def test_a_loop_over_the_memory_bound_is_not_made(looping, rng, monkeypatch):
  monkeypatch.setattr(loops, "MAX_STACKED_BYTES", 1000)
  vg = dfdx.value_and_grad(recurrence)
  for _ in range(3):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    assert_same_bits(vg(params, xs, 40), interpreted(vg, params, xs, 40))
  _, loop = _loop_of(looping)
  assert loop is False and looping["compiled"] == 1 and not looping["loop runs"]


@pytest.mark.parametrize("slow_tries", [1, 3])
def test_a_loop_slower_than_the_blocks_is_tried_again_then_dropped(looping, rng, monkeypatch,
                                                                   slow_tries):
  # the blocks are not slower than the interpreter; the loop is, `slow_tries` times
  verdicts = iter([False] + [True] * slow_tries + [False] * 8)
  monkeypatch.setattr(reverse_cache, "_slower", lambda seconds, other: next(verdicts))
  vg = dfdx.value_and_grad(recurrence)
  for _ in range(6):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    assert_same_bits(vg(params, xs, 40), interpreted(vg, params, xs, 40))
  _, loop = _loop_of(looping)
  assert reverse_cache.loop_stats["slower"] == slow_tries
  if slow_tries < reverse_cache._TRIES:
    assert isinstance(loop, rolled_loop.Loop) and reverse_cache.loop_stats["compiled"] == 1
  else:
    assert loop is False and reverse_cache.loop_stats["compiled"] == 0
  assert looping["compiled"] == 1


def test_python_numbers_changing_every_step_make_no_loop_with_narrow_dtypes(looping, rng):
  # float32 with a Python number that changes every step: stacked, the numbers would be a
  # float64 array, which NumPy does not cast down to float32 as it does Python floats (the
  # product would round differently)
  def f(p, xs):
    h = dnp.tanh(p[0])
    for t in range(40):
      h = dnp.tanh(h * p[1] + xs[t] * 0.5) * (1.0 + 0.01 * t)
    return dnp.sum(h * h)
  vg = dfdx.value_and_grad(f)
  for _ in range(4):
    p = rng.normal(size=(2, 4)).astype(np.float32)
    xs = rng.normal(size=(40, 4)).astype(np.float32)
    got = vg(p, xs)
    assert got[1].dtype == np.float32
    assert_same_bits(got, interpreted(vg, p, xs))
  assert looping["compiled"] == 1 and _loop_of(looping)[1] is False
  assert not any(reverse_cache.loop_stats.values())  # (no loop compiled, none checked)


def test_a_loop_whose_bits_differ_is_not_kept(looping, rng, monkeypatch):
  # (a loop whose body would compute one product another way)
  real = rolled_loop.compile_loop

  def altered(*args):
    loop = real(*args)
    fn = loop.fn
    loop.fn = lambda *xs: [o * np.float64(1.0000001) for o in fn(*xs)]
    return loop
  monkeypatch.setattr(rolled_loop, "compile_loop", altered)
  vg = dfdx.value_and_grad(recurrence)
  for _ in range(3):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    assert_same_bits(vg(params, xs, 40), interpreted(vg, params, xs, 40))
  assert reverse_cache.loop_stats["differed"] == 1 and _loop_of(looping)[1] is False


# ---- the exact split (loops.hoist_loops(exact=True)) ------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 14])
def test_the_exact_split_sums_carried_terms_in_the_loops_order(rng, size):
  def body(carry, x):
    total, state = carry
    state = dnp.tanh(state * x[0])
    return (total + (dnp.sin(x[1]) * 1e-3 + state * 1e5), state), state * 2.0
  init = (rng.normal(size=size) * 1e8, rng.normal(size=size))
  xs = rng.normal(size=(300, 2, size))

  def traced(*flat):
    (total, state), ys = dfdx.scan(body, (flat[0], flat[1]), flat[2], reverse=True)
    return [total, state, ys]
  avals = [staging.core.get_aval(a) for a in (*init, xs)]
  program, _ = staging.make_program(traced, avals)
  split = loops.hoist_loops(program, exact=True)
  scans = [e for e in split.eqns if e.prim.name == "scan"]
  body_eqns = len(scans[0].params["body"].eqns)
  whole = ir.eval_program(program, *init, xs)
  got = ir.eval_program(split, *init, xs)
  assert_same_bits(got, whole)
  # the term of the sum (sin of the input) leaves the loop; a carry of one entry stays in it
  original = [e for e in program.eqns if e.prim.name == "scan"][0].params["body"]
  assert body_eqns < len(original.eqns)
  assert any(e.prim.name == "add" for e in scans[0].params["body"].eqns) == (size == 1)


@pytest.mark.parametrize("exact", [False, True])
def test_the_exact_split_batches_only_what_computes_each_entry_on_its_own(rng, exact):
  # a sum over an axis and a matrix product of the step's input: batched, they may add in
  # another order (jit's split batches them; the exact one keeps them in the loop)
  w = rng.normal(size=(4, 4))

  def body(carry, x):
    return carry * dnp.sum(dnp.tanh(x) * 0.5, axis=0) + w @ dnp.sin(x[0]), x[0] * 2.0

  def traced(init, xs):
    carry, ys = dfdx.scan(body, init, xs)
    return [carry, ys]
  avals = [staging.core.get_aval(a) for a in (rng.normal(size=4), rng.normal(size=(30, 3, 4)))]
  program, _ = staging.make_program(traced, avals)
  split = loops.hoist_loops(program, exact=exact)
  (scan,) = [e for e in split.eqns if e.prim.name == "scan"]
  in_loop = {e.prim.name for e in scan.params["body"].eqns}
  # tanh, sin and the products by constants leave the loop either way
  assert not in_loop & {"tanh", "sin"}
  assert ({"reduce_sum", "dot_general"} <= in_loop) == exact
  init, xs = rng.normal(size=4), rng.normal(size=(30, 3, 4))
  np.testing.assert_allclose(ir.eval_program(split, init, xs)[0],
                             ir.eval_program(program, init, xs)[0], rtol=1e-12)


# ---- jacrev of a long loop: one plain (rolled) pass per row -----------------------------------


def pendulums(p, y, steps=40, dt=0.05):
  """Two coupled damped pendulums, explicit Euler steps in a Python loop."""
  for _ in range(steps):
    th, om = y[:2], y[2:]
    acc = -p[0] * dnp.sin(th) - p[1] * om + p[2] * dnp.cos(th[::-1])
    y = dnp.concatenate([th + dt * om, om + dt * acc])
  return y


def test_jacrev_of_a_long_loop_runs_one_rolled_pass_per_row(looping, rng, monkeypatch):
  p, y0 = np.array([9.8, 0.3, 0.5]), np.array([0.5, -0.2, 0.0, 0.1])
  jac = dfdx.jacrev(pendulums)
  passes = []
  real = dfdx._src.ad.Linearized._example_by_example
  monkeypatch.setattr(dfdx._src.ad.Linearized, "_example_by_example",
                      lambda self, cts: passes.append(real(self, cts)) or passes[-1])
  ran = []
  for _ in range(4):
    got = jac(p, y0)
    ran.append([out is not None for out in passes])
    passes.clear()
  # The first call runs the pass batched (a plain pass interpreted costs as much per row)
  # and counts as the tape's first sighting; the second compiles its blocks, and runs each
  # row rolled from then on (the other calls: staging the blocks).
  assert [any(r) for r in ran] == [False, True, True, True]
  assert looping["compiled"] == 1 and all(looping["loop runs"])
  # each row is the plain reverse pass of its basis vector, bit for bit
  out, pullback = dfdx.vjp(pendulums, p, y0)
  for i in range(4):
    assert_same_bits(got[i], pullback(np.eye(4)[i])[0])
  # and the Jacobian itself, against central differences
  fd = np.stack([(pendulums(p + h, y0) - pendulums(p - h, y0)) / 2e-6
                 for h in np.eye(3) * 1e-6], axis=1)
  np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)


def test_jacrev_of_many_rows_or_under_another_vmap_runs_the_pass_batched(looping, rng,
                                                                         monkeypatch):
  monkeypatch.setattr(dfdx._src.ad, "EXAMPLES_ONE_BY_ONE", 3)  # (fewer than the 4 rows)
  p, y0 = np.array([9.8, 0.3, 0.5]), np.array([0.5, -0.2, 0.0, 0.1])
  jac = dfdx.jacrev(pendulums)
  monkeypatch.setattr(dfdx._src.ad, "EXAMPLES_ONE_BY_ONE", 8)
  want = jac(p, y0)
  monkeypatch.setattr(dfdx._src.ad, "EXAMPLES_ONE_BY_ONE", 3)
  np.testing.assert_allclose(jac(p, y0), want, rtol=1e-13)
  # recorded under a vmap (a batch of parameters): the residuals differ per example
  ps = np.stack([p, p * 1.1])
  batched = dfdx.vmap(jac, in_axes=(0, None))(ps, y0)
  monkeypatch.setattr(dfdx._src.ad, "EXAMPLES_ONE_BY_ONE", 8)
  np.testing.assert_allclose(batched[0], want, rtol=1e-13)
  np.testing.assert_allclose(batched[1], jac(p * 1.1, y0), rtol=1e-13)


def test_jacobian_auto_pulls_back_the_rows_of_a_long_loop_once_they_run_rolled(
    looping, monkeypatch):
  from dfdx._src import api
  used = []
  for name in ("_jacobian_by_transpose", "_jacobian_by_pushforward"):
    real = getattr(api, name)
    monkeypatch.setattr(api, name,
                        lambda *a, real=real, name=name: used.append(name) or real(*a))
  p, y0 = np.array([9.8, 0.3, 0.5]), np.array([0.5, -0.2, 0.0, 0.1])
  jac = dfdx.jacobian(pendulums)  # 3 inputs, 4 outputs: forward mode by size
  want = dfdx.jacfwd(pendulums)(p, y0)
  used.clear()
  for _ in range(4):
    np.testing.assert_allclose(jac(p, y0), want, rtol=1e-12)
  # the first call pushes forward and counts as the tape's first sighting; from the second
  # on, its rows are pulled back one by one, rolled
  assert used == ["_jacobian_by_pushforward"] + ["_jacobian_by_transpose"] * 3
  assert looping["compiled"] == 1
  used.clear()
  monkeypatch.setattr(dfdx._src.ad, "EXAMPLES_ONE_BY_ONE", 3)  # (fewer than the 4 rows)
  np.testing.assert_allclose(jac(p, y0), want, rtol=1e-12)
  assert used == ["_jacobian_by_pushforward"]
