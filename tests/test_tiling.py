"""Jitted programs run in chunks of a long axis (dfdx/_src/tiling.py): a program whose entries
along an axis are computed independently runs chunk by chunk and gives the values of the
program run whole, bit for bit; a program that mixes entries along the axis runs whole.
The chunk sizes are made small here so that short arrays are tiled."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import tiling

N = 103  # not a multiple of the chunk: the last chunk overlaps the one before it


@pytest.fixture
def small_chunks(monkeypatch):
  """Chunks of 16 entries of the axis (the widest intermediate sets the length), and a log of
  what compile_tiled decided: None (run whole) or the function's `tiles`."""
  monkeypatch.setattr(tiling, "MIN_CHUNK", 16)
  monkeypatch.setattr(tiling, "TARGET_BYTES", 16 * 8)
  return logged_decisions(monkeypatch)


def logged_decisions(monkeypatch):
  """Tiling on, and the list compile_tiled's decisions are appended to."""
  monkeypatch.setattr(tiling, "enabled", True)
  decisions = []
  compile_tiled = tiling.compile_tiled

  def logged(program, name, *args, **kwargs):
    run = compile_tiled(program, name, *args, **kwargs)
    decisions.append(run and run.tiles)
    return run
  monkeypatch.setattr(tiling, "compile_tiled", logged)
  return decisions


def whole(f, *args):
  previous, tiling.enabled = tiling.enabled, False
  try:
    return dfdx.jit(f)(*args)
  finally:
    tiling.enabled = previous


def assert_same(got, expected):
  for g, e in zip(got, expected, strict=True):
    g, e = np.atleast_1d(g), np.atleast_1d(e)
    assert g.shape == e.shape and g.dtype == e.dtype
    np.testing.assert_array_equal(g, e)


def rng():
  return np.random.default_rng(0)


# ---- programs that are tiled ----------------------------------------------------------------


def reproj(cam, x):
  """A per-observation residual (rotation, projection, distortion), as BA's."""
  rot = cam[..., 0:3]
  xo = x - cam[..., 3:6]
  theta = dnp.sqrt(dnp.sum(rot * rot, axis=-1, keepdims=True))
  axis = rot / theta
  xc = (xo * dnp.cos(theta) + dnp.cross(axis, xo) * dnp.sin(theta)
        + axis * dnp.sum(axis * xo, axis=-1, keepdims=True) * (1 - dnp.cos(theta)))
  proj = xc[..., :2] / xc[..., 2:3]
  return proj * (1 + cam[..., 6:7] * dnp.sum(proj * proj, axis=-1, keepdims=True))


def test_vmapped_jacobians_gathered_by_index_arrays_are_tiled_and_exact(small_chunks):
  r = rng()
  cams, points = r.standard_normal((7, 7)), r.standard_normal((11, 3)) + [0, 0, 5]
  ci, pi = np.arange(N) % 7, np.arange(N) % 11
  blocks = dfdx.vmap(dfdx.jacobian(reproj, (0, 1), return_value=True))

  def f(cams, points, ci, pi):
    (d_cam, d_x), value = blocks(cams[ci], points[pi])
    return value, d_cam, d_x
  got = dfdx.jit(f)(cams, points, ci, pi)
  assert small_chunks[-1] is not None and small_chunks[-1][0] == N
  assert_same(got, whole(f, cams, points, ci, pi))
  # and against the per-observation Jacobian taken eagerly, one observation at a time
  jac = dfdx.jacobian(reproj, (0, 1))
  for i in (0, 50, N - 1):
    d_cam, d_x = jac(cams[ci[i]], points[pi[i]])
    np.testing.assert_allclose(got[1][i], d_cam, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[2][i], d_x, rtol=1e-12, atol=1e-12)


def test_outputs_of_every_kind_keep_their_values_and_layouts(small_chunks):
  x = rng().standard_normal((N, 3))
  table = rng().standard_normal((4, 5))

  def f(x, table):
    y = dnp.sin(x) * 2.0
    # a transposed output, an input returned, an output twice, an integer output, a
    # concatenation, an output that does not depend on the axis, a literal equal to N
    return (y.T, x, y, y, (x > 0).astype(np.int32), dnp.concatenate([x, y], axis=1),
            dnp.exp(table), x * x.shape[0])
  got = dfdx.jit(f)(x, table)
  assert small_chunks[-1] is not None
  expected = whole(f, x, table)
  assert_same(got, expected)
  np.testing.assert_array_equal(got[7], x * N)
  np.testing.assert_array_equal(got[0], (np.sin(x) * 2.0).T)


def test_contractions_along_batch_and_free_axes_are_tiled(small_chunks):
  r = rng()
  a, b, w = r.standard_normal((N, 3, 3)), r.standard_normal((N, 3, 2)), r.standard_normal((4, 3))

  def f(a, b, w):
    stacked = dnp.matmul(a, b)        # the axis is a batch axis of the product
    mapped = dnp.matmul(w, b[:, :, 0].T)  # a free axis of one operand
    return stacked, mapped
  got = dfdx.jit(f)(a, b, w)
  assert small_chunks[-1] is not None
  assert_same(got, whole(f, a, b, w))
  np.testing.assert_allclose(got[0], a @ b, rtol=1e-14)
  np.testing.assert_allclose(got[1], w @ b[:, :, 0].T, rtol=1e-14)


def test_reductions_over_other_axes_and_broadcasts_are_tiled(small_chunks):
  x = rng().standard_normal((2, N, 4))

  def f(x):
    m = dnp.max(x, axis=(0, 2), keepdims=True)
    return dnp.sum(dnp.exp(x - m), axis=-1), dnp.cumsum(x, axis=2), dnp.broadcast_to(m, (3, 1, N, 1))
  got = dfdx.jit(f)(x)
  assert small_chunks[-1] is not None
  assert_same(got, whole(f, x))


def test_padding_along_other_axes_is_tiled(small_chunks):
  x = rng().standard_normal((N, 3))

  def f(x):  # (a slice's cotangent is such a pad: the reverse passes of vmap of jacobian)
    return dnp.pad(dnp.sin(x), ((0, 0), (1, 2))) * 2
  got = dfdx.jit(f)(x)
  assert small_chunks[-1] is not None
  assert_same([got], [whole(f, x)])
  np.testing.assert_array_equal(got[:, 1:4], 2 * np.sin(x))


def test_constants_along_the_axis_are_cut_into_chunks_with_the_inputs(small_chunks):
  r = rng()
  data, scale = r.standard_normal((N, 3)), r.standard_normal(N)  # closed over: constants
  x = r.standard_normal((N, 2))

  def f(x, w):
    return dnp.tanh(data @ w) * scale, x * np.arange(N)[:, None]
  w = r.standard_normal(3)
  got = dfdx.jit(f)(x, w)
  assert small_chunks[-1] is not None
  assert_same(got, whole(f, x, w))
  np.testing.assert_allclose(got[0], np.tanh(data @ w) * scale, rtol=1e-14)

  def only_constants(w):  # the constants' axis alone, no input along it
    return dnp.sin(data @ w)
  got = dfdx.jit(only_constants)(w)
  assert small_chunks[-1] is not None
  assert_same([got], [whole(only_constants, w)])


def test_gradient_through_a_tiled_jit_is_exact(small_chunks):
  x = rng().standard_normal(N)

  def f(x):
    return dnp.tanh(x) * dnp.sin(3 * x)
  jitted = dfdx.jit(f)
  assert_same([jitted(x)], [whole(f, x)])
  g = dfdx.grad(lambda x: dnp.sum(jitted(x)))(x)
  expected = (1 - np.tanh(x) ** 2) * np.sin(3 * x) + 3 * np.tanh(x) * np.cos(3 * x)
  np.testing.assert_allclose(g, expected, rtol=1e-13)


# ---- programs that are not ------------------------------------------------------------------


@pytest.mark.parametrize("name, f", [
    ("sum over the axis", lambda x: dnp.sum(x * x, axis=0)),
    ("cumulative sum along it", lambda x: dnp.cumsum(dnp.sin(x), axis=0)),
    ("sort along it", lambda x: dnp.sort(x, axis=0) * 2),
    ("shifted slice", lambda x: x[1:] - x[:-1]),
    ("reversed", lambda x: dnp.sin(x[::-1])),
    ("axis merged by a reshape", lambda x: dnp.reshape(dnp.sin(x), (-1,))),
    ("contracted in a product", lambda x: dnp.sin(x).T @ x),
    ("gathered at fixed positions", lambda x: dnp.sin(x)[np.arange(N)[::-1]]),
    ("padded along it", lambda x: dnp.pad(dnp.sin(x), ((1, 0), (0, 0)))[:N] * 2),
])
def test_programs_that_mix_entries_along_the_axis_run_whole(small_chunks, name, f):
  x = rng().standard_normal((N, 2))
  got = dfdx.jit(f)(x)
  assert small_chunks == [None], name
  np.testing.assert_allclose(got, f(x), rtol=1e-13, atol=1e-13)


def test_inputs_returned_unchanged_beside_values_of_other_inputs(small_chunks):
  x, y = rng().standard_normal((N, 2)), rng().standard_normal(3)

  def f(x, y):
    return x, dnp.sum(y * y)
  got = dfdx.jit(f)(x, y)
  assert small_chunks[-1] is not None
  assert_same(got, whole(f, x, y))


def test_short_axes_and_the_off_switch_run_whole(small_chunks, monkeypatch):
  def f(x):
    return dnp.sin(x) * 2
  dfdx.jit(f)(np.ones((20, 2)))  # shorter than two chunks
  monkeypatch.setattr(tiling, "enabled", False)
  dfdx.jit(f)(np.ones((N, 2)))
  assert small_chunks == [None, None]


def test_the_default_chunk_sizes_tile_a_long_batch(monkeypatch):
  """Without the fixture's small chunks: 8 bytes an entry makes chunks of 2 MB / 8 entries,
  and an axis of 600,000 entries runs in 3 of them."""
  decisions = logged_decisions(monkeypatch)
  x = np.linspace(-3, 3, 600_000)

  def f(x):
    return dnp.sin(x) * dnp.cos(2 * x)
  got = dfdx.jit(f)(x)
  chunks = -(-600_000 // (tiling.TARGET_BYTES // 8))  # float64 entries
  assert decisions == [(600_000, 600_000 // chunks, chunks)]
  np.testing.assert_array_equal(got, whole(f, x))
  np.testing.assert_allclose(got, np.sin(x) * np.cos(2 * x), rtol=1e-15, atol=1e-15)
