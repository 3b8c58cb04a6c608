"""Deferred values of eager gradients (dfdx/_src/ad.py, "deferred values"): the square of a
large array, or the product of two of one shape, that the next operation sums is summed in
blocks, never written out whole. The values and derivatives must be those of the path that
computes it, bit for bit, and every other use must see it computed."""
import tracemalloc

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad
from dfdx._src.ops import reduction


@pytest.fixture
def fused_sums(monkeypatch):
  """The axes of every sum of squares computed in blocks."""
  calls = []
  real = reduction.sum_of_products

  def spy(x, y, axes):
    out = real(x, y, axes)
    if out is not None:
      calls.append(axes)
    return out
  monkeypatch.setattr(reduction, "sum_of_products", spy)
  return calls


def undeferred(fn, *args):
  """fn(*args) with no value deferred."""
  saved = dict(ad.deferred_impls)
  ad.deferred_impls.clear()
  try:
    return fn(*args)
  finally:
    ad.deferred_impls.update(saved)


def assert_identical(a, b):
  for x, y in zip(dfdx.tree.tree_leaves(a), dfdx.tree.tree_leaves(b), strict=True):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("shape,axis,fused", [
    ((50, 20, 400), 1, True),           # GMM's sum over a middle axis
    ((5000, 64), -1, True),             # row norms: NumPy's pairwise sums along each row
    ((40, 30, 300), (1, 2), True),
    ((16, 20, 1000), (2,), True),
    ((5000, 64), 0, False),             # the leading axis summed: computed whole
    ((5000, 64), None, False),
    ((2, 200_000), 1, False),           # rows too long for two in a block
    ((40, 50), 1, False),               # small: no deferral
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_and_gradients_are_those_of_the_square_computed_whole(shape, axis, fused, dtype,
                                                                     rng, fused_sums):
  x = rng.standard_normal(shape).astype(dtype)
  w = rng.standard_normal(np.sum(np.ones(shape), axis=axis).shape).astype(dtype)

  def f(x):
    return dnp.sum(dnp.sqrt(dnp.sum(x ** 2, axis=axis) + 1.0) * w)
  got = dfdx.value_and_grad(f)(x)
  assert_identical(got, undeferred(dfdx.value_and_grad(f), x))
  assert bool(fused_sums) == fused
  want = np.sum(np.sqrt(np.sum(x ** 2, axis=axis) + 1.0) * w)
  assert got[0] == want  # NumPy's own value
  x64 = x.astype(np.float64)
  s = np.sum(x64 ** 2, axis=axis, keepdims=True) + 1.0
  np.testing.assert_allclose(got[1], w.reshape(s.shape) * x64 / np.sqrt(s),
                             rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


def test_the_square_is_never_written_out_whole(rng):
  x = rng.standard_normal((64, 16, 2048))  # 16 MB
  f = lambda x: dnp.sum(dnp.log(dnp.sum(x ** 2, axis=1)))

  def peak():  # of the forward pass, which holds x's cotangent-sized arrays only later
    tracemalloc.start()
    try:
      dfdx.vjp(f, x)
      return tracemalloc.get_traced_memory()[1]
    finally:
      tracemalloc.stop()
  peak()
  deferred, whole = peak(), undeferred(peak)
  assert whole - deferred > 0.9 * x.nbytes, (deferred / x.nbytes, whole / x.nbytes)


def test_every_other_use_sees_the_square_computed(rng, fused_sums):
  x = rng.standard_normal((300, 500))

  def f(x):
    sq = x ** 2
    assert sq.shape == x.shape and sq.dtype == x.dtype  # known without computing it
    t = sq * 3.0  # another primitive takes it: computed first
    total = dnp.sum(x ** 2)  # summed over every axis (the leading one too): computed whole
    v = x ** 2
    if v[0, 0] >= 0:  # indexing it, for a concrete value
      total = total + dnp.sum(t)
    w = x ** 2
    total = total + dnp.sum(w, axis=1)[1]  # summed in blocks, but w is still used: computed
    return total + dnp.sum(w[:2]), (w, x ** 2)  # squares returned as aux: computed
  got = dfdx.value_and_grad(f, has_aux=True)(x)
  assert_identical(got, undeferred(dfdx.value_and_grad(f, has_aux=True), x))
  (value, aux), grad = got
  for a in aux:
    assert type(a) is np.ndarray
    np.testing.assert_array_equal(a, x ** 2)
  assert fused_sums == [(1,)]
  rows = np.arange(300)[:, None]
  np.testing.assert_allclose(grad, 2 * x + 6 * x + 2 * x * (rows == 1) + 2 * x * (rows < 2),
                             rtol=1e-14)


def test_a_square_still_used_after_its_sum_is_computed_then(rng, fused_sums):
  x = rng.standard_normal((30, 40, 300))
  f = lambda x: (lambda sq: dnp.sum(dnp.sum(sq, axis=1)) + dnp.sum(dnp.sum(sq, axis=2)))(x ** 2)
  assert_identical(dfdx.value_and_grad(f)(x), undeferred(dfdx.value_and_grad(f), x))
  assert fused_sums == [(1,)]
  np.testing.assert_allclose(dfdx.grad(f)(x), 4 * x, rtol=1e-15)


def test_a_square_kept_past_the_trace_is_computed(rng):
  x = rng.standard_normal((300, 500))
  kept = []

  def f(x):
    sq = x ** 2
    kept.append(sq)
    return dnp.sum(x)
  dfdx.grad(f)(x)
  assert type(kept[0].primal) is np.ndarray
  np.testing.assert_array_equal(kept[0].primal, x ** 2)


def test_transformations_around_the_gradient_compute_every_value(rng, fused_sums):
  x = rng.standard_normal((4, 400, 400))
  f = lambda x: dnp.sum(dnp.sqrt(dnp.sum(x ** 2, axis=1)))
  per_row = dfdx.vmap(dfdx.grad(f))(x)
  np.testing.assert_allclose(per_row, x / np.sqrt(np.sum(x ** 2, axis=2, keepdims=True)),
                             rtol=1e-13)
  hvp = dfdx.jvp(dfdx.grad(f), (x[0],), (np.ones_like(x[0]),))[1]
  np.testing.assert_allclose(hvp, undeferred(lambda: dfdx.jvp(dfdx.grad(f), (x[0],),
                                                              (np.ones_like(x[0]),))[1]))
  jitted = dfdx.jit(dfdx.grad(f))(x[0])
  np.testing.assert_allclose(jitted, dfdx.grad(f)(x[0]), rtol=1e-14)
  assert fused_sums  # the plain gradient, and only it, sums in blocks


@pytest.mark.parametrize("axis", [1, -1, (1, 2)])
def test_products_of_two_arrays_are_summed_in_blocks_too(rng, fused_sums, axis):
  x, y = rng.standard_normal((2, 60, 30, 200))
  f = lambda x, y: dnp.sum(dnp.tanh(dnp.sum(x * y, axis=axis)))
  got = dfdx.value_and_grad(f, (0, 1))(x, y)
  assert_identical(got, undeferred(dfdx.value_and_grad(f, (0, 1)), x, y))
  assert got[0] == np.sum(np.tanh(np.sum(x * y, axis=axis)))
  assert len(fused_sums) == 1
  s = 1 - np.tanh(np.sum(x * y, axis=axis, keepdims=True)) ** 2
  np.testing.assert_allclose(got[1][0], s * y, rtol=1e-13)
  np.testing.assert_allclose(got[1][1], s * x, rtol=1e-13)
  # x * x, a broadcast operand, a transposed one, a Python scalar: not deferred, or computed
  for g in (lambda x, y: dnp.sum(dnp.sum(x * x, axis=1)),
            lambda x, y: dnp.sum(dnp.sum(x * y[:1], axis=1)),
            lambda x, y: dnp.sum(dnp.sum(x * dnp.transpose(y, (0, 2, 1)).reshape(x.shape),
                                         axis=1)),
            lambda x, y: dnp.sum(dnp.sum(x * 3.0, axis=1))):
    assert_identical(dfdx.value_and_grad(g, (0, 1))(x, y),
                     undeferred(dfdx.value_and_grad(g, (0, 1)), x, y))
