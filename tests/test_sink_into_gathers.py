"""Transposes and unary operations moved into the gathers before them
(passes.sink_into_gathers), and how compiled code gathers rows. Each test checks where the
operations ended up and that the values are the original program's, bit for bit."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import passes
from dfdx._src.ir import eval_program, typecheck_program
from dfdx._src.ops.indexing import ArrayIndex


def _programs(f, *args):
  program = dfdx.make_expr(f)(*args).program
  sunk = passes.sink_into_gathers(program)
  typecheck_program(sunk)
  for a, b in zip(eval_program(program, *args), eval_program(sunk, *args), strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(b, a)
  return program, sunk


def _eqns(program, name):
  return [e for e in program.eqns if e.prim.name == name]


def test_a_jacobians_last_transpose_makes_its_gather_take_whole_rows(rng):
  """The tail of a forward-mode Jacobian of residuals at repeated points: columns first,
  each point's 3 coordinates taken, negated, and transposed last."""
  x, idx = rng.normal(size=(26, 3, 50)), rng.integers(0, 50, 400)

  def f(x, idx):
    picked = dnp.take(dnp.transpose(x, (0, 2, 1)), idx, axis=1)  # (26, 400, 3)
    return -dnp.reshape(picked, (26, 1200)).T
  original, sunk = _programs(f, x, idx)
  gather, = _eqns(sunk, "gather")
  assert gather.inputs[0].aval.shape == (50, 3, 26)  # rows of 3 x 26 entries
  assert type(gather.params["spec"][0]) is ArrayIndex
  neg, = _eqns(sunk, "neg")
  assert neg.outputs[0].aval.size == x.size  # once per entry, before the gather repeats it
  assert sunk.eqns.index(neg) < sunk.eqns.index(gather)
  assert [e.prim.name for e in sunk.eqns[sunk.eqns.index(gather):]] == ["gather", "reshape"]
  assert sunk.outs[0].aval.shape == (1200, 26)


def test_unary_operations_move_before_gathers_that_repeat_entries(rng):
  x, idx = rng.normal(size=(20, 4)), rng.integers(0, 20, 100)
  original, sunk = _programs(lambda x, idx: dnp.exp(dnp.sin(x[idx])), x, idx)
  assert [e.prim.name for e in sunk.eqns] == ["sin", "exp", "gather"]
  assert _eqns(sunk, "exp")[0].outputs[0].aval.shape == (20, 4)


def test_gathers_of_fewer_entries_keep_their_operations_after_them(rng):
  x, idx = rng.normal(size=(20, 4)), rng.integers(0, 20, 5)
  original, sunk = _programs(lambda x, idx: dnp.exp(x[idx]), x, idx)
  assert sunk is original


def test_transposes_that_do_not_bring_the_gathered_axis_forward_stay(rng):
  x, idx = rng.normal(size=(30, 4, 5)), rng.integers(0, 30, 60)
  original, sunk = _programs(lambda x, idx: dnp.transpose(x[idx], (0, 2, 1)), x, idx)
  assert sunk is original


def test_a_transpose_stays_after_a_gather_of_few_entries(rng):
  """Taking from a transposed operand copies all of it first: worth it only where the
  gather repeats entries."""
  x, idx = rng.normal(size=(40, 300)), rng.integers(0, 300, 10)
  original, sunk = _programs(lambda x, idx: dnp.take(x, idx, axis=1).T, x, idx)
  assert sunk is original


def test_a_used_intermediate_is_not_recomputed(rng):
  """The gather's result is also an output: moving the transpose would compute it twice."""
  x, idx = rng.normal(size=(4, 10)), rng.integers(0, 10, 30)

  def f(x, idx):
    picked = dnp.take(x, idx, axis=1)
    return picked.T * 2.0, picked
  original, sunk = _programs(f, x, idx)
  assert sunk is original


@pytest.mark.parametrize("shape, out, blocks", [
    ((26, 400, 3), (26, 1200), [([0], [0]), ([1, 2], [1])]),
    ((6, 4), (2, 3, 4), [([0], [0, 1]), ([1], [2])]),
    ((1, 5), (5,), [([0, 1], [0])]),
    ((2, 3), (3, 2), None),  # 2 x 3 -> 3 x 2 mixes its axes
    ((5,), (5, 1), None),
])
def test_reshape_blocks(shape, out, blocks):
  assert passes._blocks(shape, out) == blocks


def test_jit_of_a_forward_jacobian_at_repeated_points_matches_eager(rng, pass_changes):
  table = rng.normal(size=(40, 3))
  idx = rng.integers(0, 40, 500)

  def residuals(theta, points):
    c, s = dnp.cos(theta[0]), dnp.sin(theta[0])
    rot = dnp.stack([dnp.stack([c, -s, 0 * c]), dnp.stack([s, c, 0 * c]),
                     dnp.stack([0 * c, 0 * c, 1 + 0 * c])])
    model = (table * theta[1]) @ rot.T + theta[2:5]
    return dnp.ravel(points - model[idx])
  theta, points = rng.normal(size=5), rng.normal(size=(500, 3))
  calls = pass_changes("sink_into_gathers")
  jac = dfdx.jacfwd(residuals)
  np.testing.assert_allclose(dfdx.jit(jac)(theta, points), jac(theta, points), rtol=1e-14,
                             atol=1e-14)
  assert calls == [True]


def test_compiled_gathers_of_repeated_rows_use_take(rng, jit_sources):
  x, many, few = rng.normal(size=(10, 3)), rng.integers(-10, 10, 40), rng.integers(0, 10, 4)
  f = dfdx.jit(lambda x, i, j: (x[i], x[j], x[:, 0][i]))
  got = f(x, many, few)
  for g, w in zip(got, (x[many], x[few], x[:, 0][many])):
    np.testing.assert_array_equal(g, w)
  source = jit_sources[-1]
  assert source.count(".take(") == 1 and "axis=0" in source, source


def _table(rng):
  t = rng.normal(size=(40, 3))
  idx, cols = rng.integers(-40, 40, 300), rng.integers(0, 3, 50)
  return {
      "jacfwd of gathered rows": (
          dfdx.jacfwd(lambda th: dnp.ravel(-(dnp.sin(t * th[0]) + th[1:4])[idx])),
          [rng.normal(size=4)]),
      "exp after a gather": (
          dfdx.jacfwd(lambda th: dnp.exp(dnp.ravel((t * th[0])[idx].T))), [rng.normal(size=1)]),
      "a chain of unary operations": (lambda x: dnp.tanh(dnp.sin(x[idx]) * 1.0).T, [t]),
      "columns": (lambda x: -dnp.transpose(dnp.take(x, cols, axis=1), (1, 0)), [t]),
      "a reshape that splits an axis": (
          lambda x: dnp.reshape(-x[idx], (300, 3, 1)).transpose((2, 1, 0)), [t]),
  }


@pytest.mark.parametrize("name", sorted(_table(np.random.default_rng(0))))
def test_jit_of_sunk_programs_matches_eager(name, rng, pass_changes):
  f, args = _table(rng)[name]
  changed = pass_changes("sink_into_gathers")
  got, want = dfdx.jit(f)(*args), f(*args)
  assert changed == [True]
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
