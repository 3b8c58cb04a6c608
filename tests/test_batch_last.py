"""The batch axis moved last in compiled programs (passes.batch_last): a batch of many small
problems, (B, 2, 3) arrays as vmap makes them, is computed as (2, 3, B) arrays. Each test
checks which equations moved (by the shapes the rewritten program holds) and that its values
are the original program's, bit for bit (evaluated by the same impls), or jit's against eager
evaluation where code generation writes sums of products with np.einsum."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import passes
from dfdx._src.ir import eval_program, typecheck_program

B = 2048


def _programs(f, *args, exact=True):
  """(original, rewritten) programs of f at args, unoptimized: the rules see what f binds;
  with `exact`, their values are checked to be the same, bit for bit."""
  program = dfdx.make_expr(f)(*args).program
  moved = passes.batch_last(program)
  typecheck_program(moved)
  if exact:
    _same_values(program, moved, *args)
  return program, moved


def _shapes(program):
  return [v.aval.shape for e in program.eqns for v in e.outputs]


def _same_values(original, moved, *args):
  for a, b in zip(eval_program(original, *args), eval_program(moved, *args), strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(b, a)


def _many(step, n=12):
  """A chain of n elementwise steps: enough moved equations to pay for transposed inputs."""
  def f(*args):
    y = step(*args)
    for _ in range(n):
      y = dnp.sin(y) * 1.5 + y
    return y
  return f


def test_elementwise_chains_run_on_batch_last_arrays_with_the_same_bits(rng):
  x, v, c = rng.normal(size=(B, 2, 3)), rng.normal(size=3), rng.normal(size=(1, 2, 1))
  f = _many(lambda x, v, c: x * v - c + 2.0)
  original, moved = _programs(f, x, v, c)
  assert moved is not original
  assert (2, 3, B) in _shapes(moved) and (B, 2, 3) not in _shapes(moved)[:-1]


def test_only_the_programs_outputs_are_transposed_back(rng):
  x = rng.normal(size=(B, 2, 3))
  original, moved = _programs(_many(lambda x: x * 2.0), x)
  transposes = [e for e in moved.eqns if e.prim.name == "transpose"]
  assert [e.params["perm"] for e in transposes] == [(1, 2, 0), (2, 0, 1)]
  assert moved.outs[0].aval.shape == (B, 2, 3)


def test_reshapes_slices_and_concatenations_keeping_the_batch_axis_move(rng):
  x, w = rng.normal(size=(B, 6)), rng.normal(size=(B,))

  def f(x, w):
    y = dnp.reshape(x, (B, 2, 3)) * w[:, None, None]
    y = dnp.concatenate([y[:, :, 1:], y[:, :, :1], dnp.cos(y)], axis=2)
    for _ in range(6):
      y = dnp.tanh(y) + y
    return dnp.reshape(y, (B, 12)), dnp.reshape(y[:, 1:, 2:3], (B,))
  original, moved = _programs(f, x, w)
  shapes = _shapes(moved)
  assert (2, 3, B) in shapes and (2, 6, B) in shapes and (1, 1, B) in shapes
  assert [o.aval.shape for o in moved.outs] == [(B, 12), (B,)]


def test_short_sums_move_and_keep_numpys_bits(rng):
  x = rng.normal(size=(B, 3, 7))
  x[:5] = -0.0  # all-negative-zero sums are +0.0 in NumPy's every layout

  def f(x):
    y = x
    for _ in range(8):
      y = dnp.sin(y) + y
    return dnp.sum(y, axis=2), dnp.sum(y[:, :1], axis=(1, 2))
  original, moved = _programs(f, x)
  sums = [e for e in moved.eqns if e.prim.name == "reduce_sum"]
  assert [(e.inputs[0].aval.shape, e.params["axes"]) for e in sums] == [
      ((3, 7, B), (1,)), ((1, 7, B), (0, 1))]
  assert not np.signbit(eval_program(moved, x)[0][:5]).any()


def test_long_sums_and_extremes_move(rng):
  """NumPy adds 8 or more entries pairwise along the last axis and one by one along others:
  the same sums to rounding. Maxima and minima are the same in any order."""
  x = rng.normal(size=(B, 2, 16))
  x[7, 1, 3] = np.nan

  def f(x):
    y = x
    for _ in range(8):
      y = dnp.sin(y) + y
    return dnp.sum(y, axis=2), dnp.max(y, axis=(1, 2)), dnp.min(y, axis=1)
  original, moved = _programs(f, x, exact=False)
  reductions = [e for e in moved.eqns if e.prim.name.startswith("reduce_")]
  assert [e.inputs[0].aval.shape for e in reductions] == [(2, 16, B)] * 3
  want, got = eval_program(original, x), eval_program(moved, x)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-14, atol=1e-14)
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_array_equal(got[2], want[2])
  assert np.isnan(got[1][7]) and np.isnan(got[2][7, 3])


def test_products_of_small_matrices_are_sums_of_broadcast_products(rng):
  """(B, 4, 3) @ (B, 3, 3) as (4, 1, 3, B) * (1, 3, 3, B) summed over the 3 entries."""
  x, r = rng.normal(size=(B, 4, 3)), rng.normal(size=(B, 3, 3))

  def f(x, r):
    y = dnp.matmul(x, r)
    for _ in range(8):
      y = dnp.tanh(y) + y
    return y, dnp.einsum("bij,bkj->bik", x, r)
  original, moved = _programs(f, x, r, exact=False)
  assert not [e for e in moved.eqns if e.prim.name == "dot_general"]
  products = [e.outputs[0].aval.shape for e in moved.eqns if e.prim.name == "mul"]
  assert (4, 3, 3, B) in products
  for got, want in zip(eval_program(moved, x, r), eval_program(original, x, r)):
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_transposes_broadcasts_and_pads_of_the_rest_move(rng):
  x = rng.normal(size=(B, 2, 3))

  def f(x):
    y = dnp.transpose(x, (0, 2, 1)) * 2.0
    y = dnp.broadcast_to(y[:, :1, :], (B, 4, 2)) + dnp.pad(y, ((0, 0), (0, 1), (0, 0)))
    for _ in range(8):
      y = dnp.sin(y) + y
    return y
  original, moved = _programs(f, x)
  shapes = _shapes(moved)
  assert (3, 2, B) in shapes and (4, 2, B) in shapes
  assert not [e for e in moved.eqns if e.prim.name == "transpose"
              and e.outputs[0].aval.shape == (B, 3, 2)]


def test_gathers_of_rows_take_columns_of_the_transposed_operand(rng):
  table, index = rng.normal(size=(50, 11)), rng.integers(0, 50, B)

  def f(table, index):
    rows = table[index]
    y = rows[:, 0:3] * rows[:, 3:6]
    for _ in range(6):
      y = dnp.exp(-y * y) + y
    return y
  original, moved = _programs(f, table, index)
  gathers = [e for e in moved.eqns if e.prim.name == "gather"]
  assert gathers[0].outputs[0].aval.shape == (11, B)


def test_rows_of_a_table_longer_than_the_batch_are_gathered_as_they_are(rng):
  """Taking columns of the transposed table copies all of it: not for a large table."""
  table, index = rng.normal(size=(3 * B, 4)), rng.integers(0, 3 * B, B)

  def f(table, index):
    y = table[index] * 2.0
    for _ in range(8):
      y = dnp.sin(y) + y
    return y
  original, moved = _programs(f, table, index)
  gather, = [e for e in moved.eqns if e.prim.name == "gather"]
  assert gather.inputs[0].aval.shape == (3 * B, 4) and gather.outputs[0].aval.shape == (B, 4)


def test_other_equations_read_plain_operands_in_c_order(rng):
  """A product with a matrix shared by the batch is not rewritten: its operand is
  transposed back for it, and copied in C order (flattened and reshaped), as the
  batch-first program had it."""
  x, m = rng.normal(size=(B, 2, 3)), rng.normal(size=(3, 3))

  def f(x, m):
    y = x
    for _ in range(8):
      y = dnp.sin(y) + y
    z = y @ m
    for _ in range(8):
      z = dnp.cos(z) * z
    return z
  original, moved = _programs(f, x, m)
  dot = next(e for e in moved.eqns if e.prim.name == "dot_general")
  assert dot.inputs[0].aval.shape == (B, 2, 3)
  flat = next(e for e in moved.eqns if e.outputs[0] is dot.inputs[0]).inputs[0]
  assert flat.aval.shape == (B * 6,)


@pytest.mark.parametrize("shape", [(B // 4, 2, 3), (B, 16, 16), (B,)])
def test_small_batches_long_rows_and_vectors_are_left_alone(rng, shape):
  x = rng.normal(size=shape)
  original, moved = _programs(_many(lambda x: x * 2.0), x)
  assert moved is original


def test_few_equations_per_transposed_input_are_left_alone(rng):
  x, y = rng.normal(size=(B, 2, 1)), rng.normal(size=(B, 1, 3))
  original, moved = _programs(lambda x, y: x * y + 1.0, x, y)
  assert moved is original


def test_dtypes_booleans_and_selects_keep_their_types(rng):
  x = rng.normal(size=(B, 2, 3)).astype(np.float32)

  def f(x):
    y = dnp.where(x > 0, x, -2 * x)
    for _ in range(8):
      y = dnp.sqrt(y + 1) * y
    return y, y > 1, (y * 3).astype(np.int32)
  original, moved = _programs(f, x)
  assert moved is not original


def _reprojection(cam, point):
  """A small residual of one observation (the shape of bundle adjustment's)."""
  rot, center, focal = cam[0:3], cam[3:6], cam[6]
  p = point - center
  q = p + dnp.cross(rot, p) * dnp.cos(dnp.sum(rot * rot))
  return focal * q[:2] / q[2]


def test_jit_of_a_batched_jacobian_matches_eager_and_is_rewritten(rng, pass_changes):
  cams, points = rng.normal(size=(40, 7)), rng.normal(size=(500, 3)) + [0, 0, 5]
  ci, pi = rng.integers(0, 40, B), rng.integers(0, 500, B)
  blocks = dfdx.vmap(dfdx.jacobian(_reprojection, (0, 1)))

  def f(cams, points, ci, pi):
    return blocks(cams[ci], points[pi])
  rewritten = pass_changes("batch_last")
  got = dfdx.jit(f)(cams, points, ci, pi)
  want = f(cams, points, ci, pi)
  assert rewritten == [True]
  for g, w in zip(got, want, strict=True):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)


def test_grad_through_a_jitted_batch_is_unaffected(rng):
  """batch_last runs on the compiled program only: the program differentiated is the same."""
  cams, points = rng.normal(size=(40, 7)), rng.normal(size=(500, 3)) + [0, 0, 5]
  ci, pi = rng.integers(0, 40, B), rng.integers(0, 500, B)
  residuals = dfdx.vmap(_reprojection)

  def loss(cams):
    return dnp.sum(dfdx.jit(residuals)(cams[ci], points[pi]) ** 2)
  np.testing.assert_allclose(dfdx.grad(loss)(cams),
                             dfdx.grad(lambda c: dnp.sum(residuals(c[ci], points[pi]) ** 2))(cams),
                             rtol=1e-12)


def _table(rng):
  r = rng.normal
  return {
      "argmax": (lambda x: dnp.argmax(dnp.sin(x) * x, axis=-1) + dnp.sum(dnp.cos(x), -1),
                 [r(size=(B, 3, 4))]),
      "cumsum": (lambda x: dnp.cumsum(dnp.tanh(x) + x, axis=-1) * dnp.exp(x), [r(size=(B, 2, 5))]),
      "sort": (lambda x: dnp.sort(dnp.sin(x) + x * x, axis=-1) - dnp.log1p(x * x), [r(size=(B, 6))]),
      "norm": (lambda x: dnp.linalg.norm(dnp.sin(x) + x, axis=-1, keepdims=True) * x,
               [r(size=(B, 3))]),
      "integers": (lambda x, k: dnp.where(k > 0, dnp.sin(x), dnp.cos(x)) * k + x ** 3,
                   [r(size=(B, 2, 3)), rng.integers(-2, 3, (B, 2, 3))]),
      "outer": (lambda x, y: dnp.einsum("bi,bj->bij", dnp.sin(x), dnp.cos(y)) * 2 + 1,
                [r(size=(B, 3)), r(size=(B, 4))]),
      "matvec": (lambda m, v: dnp.tanh(dnp.einsum("bij,bj->bi", m, v) + v[:, :3]),
                 [r(size=(B, 3, 4)), r(size=(B, 4))]),
      "hessians": (dfdx.vmap(dfdx.hessian(lambda x: dnp.sum(dnp.exp(-x * x) * dnp.cos(x[::-1])))),
                   [r(size=(B, 4))]),
      "complex": (lambda x: dnp.abs(dnp.exp(1j * x) * (x + 2j)) + dnp.real(x * (1 + 1j)) * x,
                  [r(size=(B, 2, 3))]),
      "pad": (lambda x: dnp.concatenate([dnp.pad(dnp.sin(x), ((0, 0), (1, 0))), x ** 2], axis=1),
              [r(size=(B, 4))]),
      "rows": (lambda t, i: dnp.sin(t[i]) * t[i] + dnp.cos(t[i][:, ::-1]),
               [r(size=(30, 5)), rng.integers(0, 30, B)]),
      "flat": (lambda x: dnp.reshape(dnp.sin(x) ** 2 + x, (B * 6,)) * 2.0, [r(size=(B, 2, 3))]),
      "batch_contracted": (lambda x: (dnp.sin(x) * x).T @ dnp.ones(B) + x[:3, 0], [r(size=(B, 3))]),
  }


@pytest.mark.parametrize("name", sorted(_table(np.random.default_rng(0))))
def test_jit_with_every_program_rewritten_matches_eager(name, rng, monkeypatch, pass_changes):
  """The rules and the operations without one, on programs the gain rule would leave alone:
  jit's values against eager evaluation."""
  monkeypatch.setattr(passes, "_BATCH_GAIN", 0)
  f, args = _table(rng)[name]
  rewritten = pass_changes("batch_last")
  got, want = dfdx.jit(f)(*args), f(*args)
  assert rewritten == [True]
  assert got.shape == want.shape and got.dtype == want.dtype
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
