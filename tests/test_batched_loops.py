"""Work on batched shapes: impls that avoid NumPy's short inner loops (a few trailing entries
per row of a large array) and the reverse pass's summing of the cotangents of an array's
slices. Values are NumPy's bit for bit (or the pad-and-add reference's), derivatives are
checked against finite differences, forward and reverse, to second order."""
import itertools

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad, core
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx.testing import check_grads


def assert_same_bits(actual, expected):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape)
  np.testing.assert_array_equal(np.ascontiguousarray(np.atleast_1d(actual)).view(np.uint8),
                                np.ascontiguousarray(np.atleast_1d(expected)).view(np.uint8))


def awkward(rng, shape, dtype=np.float64):
  """Entries of very different magnitudes (sums depend on their order), with -0.0s."""
  x = rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 9, shape)
  x.reshape(-1)[::5] = -0.0
  return x.astype(dtype)


@pytest.fixture
def small_thresholds(monkeypatch):
  """The batched-shape paths for small arrays too, so that derivatives run through them."""
  monkeypatch.setattr(ew, "_BLOCK_MIN_INPUT", 1)
  monkeypatch.setattr(ew, "_BLOCK_MIN_SIZE", 1)
  monkeypatch.setattr(ew, "_BLOCK_LONG_RUN", 4)
  monkeypatch.setattr(red, "_SUM_BY_SLICES_MIN_ROWS", 1)


# ---- reduce_sum over a few trailing entries -----------------------------------------------

SUM_SHAPES = [(300, 1), (300, 2), (300, 3), (300, 7), (300, 8), (40, 4, 3), (70, 2, 1, 3),
              (129, 1, 1), (5, 3), (1000,)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SUM_SHAPES, ids=str)
def test_reduce_sum_is_numpy_bit_for_bit(shape, dtype, rng):
  x = awkward(rng, shape, dtype)
  for r in range(len(shape) + 1):
    for axes in itertools.combinations(range(len(shape)), r):
      assert_same_bits(red._reduce_sum_impl(x, axes=axes), np.add.reduce(x, axis=axes))
      assert_same_bits(red._reduce_sum_impl(x[::-1], axes=axes),  # not C-contiguous
                       np.add.reduce(x[::-1], axis=axes))


@pytest.mark.parametrize("shape,axes", [((300, 2), (1,)), ((300, 3), (1,)), ((300, 7), (1,)),
                                        ((300, 1), (1,)), ((40, 4, 3), (2,)),
                                        ((70, 2, 1, 3), (2, 3)), ((129, 1, 1), (1, 2))])
def test_reduce_sum_by_slices_where_numpy_is_slow(shape, axes, rng):
  x = awkward(rng, shape)
  by_slices = red._sum_by_slices(x, axes)
  assert by_slices is not None
  assert_same_bits(by_slices, np.add.reduce(x, axis=axes))
  assert red._sum_by_slices(x, (0,)) is None  # a leading axis: NumPy's own loop
  if not np.asfortranarray(x).flags.c_contiguous:
    assert red._sum_by_slices(np.asfortranarray(x), axes) is None
  assert red._sum_by_slices(x.astype(np.complex128), axes) is None


def test_reduce_sum_of_negative_zeros_is_positive_zero():
  for n in (1, 2, 3, 7):
    out = red._reduce_sum_impl(np.full((200, n), -0.0), axes=(1,))
    assert not np.signbit(out).any()
    assert_same_bits(out, np.add.reduce(np.full((200, n), -0.0), axis=1))


def test_reduce_sum_of_inf_and_nan(rng):
  x = rng.standard_normal((300, 3))
  x[0] = [np.inf, -np.inf, 1.0]
  x[1] = [np.nan, 1.0, 2.0]
  x[2] = [np.inf, 1.0, np.inf]
  assert_same_bits(red._reduce_sum_impl(x, axes=(1,)), np.add.reduce(x, axis=1))


def test_sum_of_batched_vectors_derivatives(rng, monkeypatch):
  x = rng.standard_normal((300, 3))
  f = lambda x: dnp.sum(dnp.sin(x) * x, axis=-1, keepdims=True) * x  # noqa: E731
  check_grads(f, (x,), order=2)
  loss = lambda x: dnp.sum(f(x) ** 2)  # noqa: E731
  got = [dfdx.grad(loss)(x), dfdx.hessian(loss)(x[:130])]
  monkeypatch.setattr(red, "_SUM_BY_SLICES_MIN_ROWS", 10 ** 9)  # NumPy's reduce throughout
  for g, e in zip(got, [dfdx.grad(loss)(x), dfdx.hessian(loss)(x[:130])]):
    assert_same_bits(g, e)


# ---- elementwise operations with short inner loops ---------------------------------------

P = 4200  # rows: with the default thresholds, large enough for the loops below to apply
PAIRS = [((P, 2, 3), (P, 1, 3)), ((P, 2, 1), (P, 1, 3)), ((2, 2), (P, 1, 2)),
         ((P, 2, 2), (P, 1, 2)), ((P, 3, 2), (3, 1)), ((P, 1, 3), (P, 2, 1)),
         ((P, 2, 3), (P, 1, 1)), ((P, 3), (P, 1)), ((P, 2, 3), (P, 2, 3)), ((P, 2, 11), (P, 1, 11))]
BLOCKED = {0, 1, 2, 3, 4, 5}  # the pairs that are computed position by position
UNBLOCKED_WIDE = ((P, 4, 4), (P, 1, 4))  # 16 positions: more passes than NumPy's calls cost
UFUNCS = [np.add, np.subtract, np.multiply, np.true_divide, np.power, np.arctan2, np.maximum,
          np.less, np.logaddexp]


def operand(rng, shape, dtype, kind):
  """An array of `shape`: C-contiguous, a view with large strides, or a broadcast view."""
  if kind == "strided" and len(shape) > 1:
    return rng.standard_normal(shape[:-1] + (shape[-1] + 9,)).astype(dtype)[..., 4:4 + shape[-1]]
  if kind == "broadcast" and len(shape) > 1 and shape[-1] > 1:
    return np.broadcast_to(rng.standard_normal(shape[:-1] + (1,)).astype(dtype), shape)
  return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kinds", [("c", "c"), ("strided", "c"), ("c", "strided"),
                                   ("broadcast", "c"), ("strided", "broadcast")], ids=str)
@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_blocked_ufuncs_are_numpy_bit_for_bit(pair, kinds, rng):
  sa, sb = PAIRS[pair]
  for dtype in (np.float64, np.float32):
    a, b = (operand(rng, s, dtype, k) for s, k in zip((sa, sb), kinds))
    shape = np.broadcast_shapes(sa, sb)
    if kinds == ("c", "c"):
      assert (ew._trailing_split(shape, [a, b]) is not None) == (pair in BLOCKED)
    with np.errstate(all="ignore"):
      for ufunc in UFUNCS:
        impl = ew._blocked_ufunc(ufunc)
        for args in [(a, b), (b, a), (a, 2.5), (3, b), (a, np.float64(0.5)), (a, 1j),
                     (np.array(2.0, dtype), b)]:
          if ufunc in (np.maximum, np.less, np.arctan2, np.logaddexp) and any(
              type(v) is complex for v in args):
            continue
          assert_same_bits(impl(*args), ufunc(*args))


def test_blocked_ufuncs_keep_numpy_errors_and_dtypes(rng):
  a = rng.standard_normal((P, 2, 1))
  b = rng.integers(0, 5, (P, 1, 3)).astype(np.int8)
  assert ew._trailing_split((P, 2, 3), [a, b]) is not None
  for ufunc in (np.add, np.multiply, np.true_divide, np.less):
    assert_same_bits(ew._blocked_ufunc(ufunc)(a, b), ufunc(a, b))
    assert_same_bits(ew._blocked_ufunc(ufunc)(b, b[:, :, :1] + np.zeros((1, 2, 1), np.int8)),
                     ufunc(b, b[:, :, :1] + np.zeros((1, 2, 1), np.int8)))
  with pytest.raises(OverflowError):
    ew._blocked_ufunc(np.add)(np.broadcast_to(b, (P, 2, 3)), 1000)
  with pytest.raises(FloatingPointError), np.errstate(divide="raise"):
    ew._blocked_ufunc(np.true_divide)(a, np.zeros((P, 1, 3)))


def test_blocked_ufuncs_decline_other_layouts(rng):
  a, b = rng.standard_normal((P, 2, 3)), rng.standard_normal((P, 1, 3))
  assert ew._trailing_split((P, 2, 3), [a, b]) == 1
  assert ew._trailing_split((P, 2, 3), [a[::-1], b]) is None  # reversed
  assert ew._trailing_split((3, 2, P), [a.T, b.T]) is None  # batch axis last: long runs
  assert ew._trailing_split((P, 2, 3), [a, a]) is None  # one run
  assert ew._trailing_split((P, 6), [a.reshape(P, 6), b[:, 0, :1]]) is None  # one outer level
  assert ew._trailing_split((40, 2, 3), [a[:40], b[:40]]) is None  # small
  wide = [rng.standard_normal(s) for s in UNBLOCKED_WIDE]
  assert ew._trailing_split((P, 4, 4), wide) is None


@pytest.mark.parametrize("d, copied", [(2, True), (64, False)])
def test_transposed_operand_broadcast_along_a_short_axis_is_laid_out_first(d, copied, rng):
  # x.T[None] - m[:, :, None] (GMM's centred points): with d = 2 NumPy would loop along the
  # axis of 2 and give the result that layout; the impl copies x.T to C order first. With
  # d = 64 the loop is long enough and NumPy's own layout stays.
  x, m = rng.standard_normal((1000, d)), rng.standard_normal((5, d))
  a, b = x.T[None], m[:, :, None]
  for ufunc in (np.subtract, np.multiply, np.logaddexp):
    got, want = ew._blocked_ufunc(ufunc)(a, b), ufunc(a, b)
    assert_same_bits(got, want)
    assert got.flags.c_contiguous == copied or d == 64 and got.strides == want.strides
  # Deciding the layout is plain Python: it binds no primitive, also while a trace is
  # current (a reverse pass of eager code records the subtraction above)
  counts = core.count_binds(lambda: dfdx.grad(lambda m: dnp.sum(a - m[:, :, None]))(m))
  assert set(counts) <= {"sub", "reshape", "reduce_sum", "broadcast_to", "neg"}, counts
  # Through dfdx.numpy, values and gradients as before.
  f = lambda x, m: dnp.sum(dnp.tanh(dnp.transpose(x)[None] - m[:, :, None]) ** 2)
  got = dfdx.grad(f, (0, 1))(x, m)
  y = np.tanh(x.T[None] - m[:, :, None])
  g = 2 * y * (1 - y ** 2)
  np.testing.assert_allclose(got[0], g.sum(0).T, rtol=1e-12)
  np.testing.assert_allclose(got[1], -g.sum(2), rtol=1e-12)
  # Same shapes, a scalar, or a small result: NumPy's call as it is.
  big = rng.standard_normal((40, 300))
  for args in ((big.T, big.T), (big.T, 2.0), (x[:20].T[None], m[:, :, None])):
    assert_same_bits(ew._blocked_ufunc(np.add)(*args), np.add(*args))


@pytest.mark.parametrize("pair", [0, 1, 2, 4, 6])
def test_blocked_select_is_numpy_bit_for_bit(pair, rng, monkeypatch):
  sa, sb = PAIRS[pair]
  shape = np.broadcast_shapes(sa, sb)
  conds = [rng.standard_normal(shape[:1] + (1,) * (len(shape) - 1)) > 0,
           rng.standard_normal(sb) > 0, rng.standard_normal(shape[-1:]) > 0]
  for dtype in (np.float64, np.float32):
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    for c in conds:
      for x, y in [(a, b), (b, a), (a, 0.0), (0, b), (np.array(1.0, dtype), b), (a, 2j)]:
        assert_same_bits(ew._select_impl(c, x, y), np.where(c, x, y))
  monkeypatch.setattr(ew, "_trailing_split", lambda shape, arrays: 1)  # always by position
  for c in conds:
    for x, y in [(a, b), (b, a), (a, 0.0), (0, b), (a, 2j)]:
      assert_same_bits(ew._select_impl(c, x, y), np.where(c, x, y))


def reprojection(cam, X, w):
  """BA's residual (bench/ba.py): slices, cross products, sums over the last axis, where."""
  rot, Xo = cam[..., 0:3], X - cam[..., 3:6]
  sq = dnp.sum(rot * rot, axis=-1, keepdims=True)
  nonzero = sq != 0
  theta = dnp.sqrt(dnp.where(nonzero, sq, 1.0))
  axis = rot / theta
  rotated = (Xo * dnp.cos(theta) + dnp.cross(axis, Xo) * dnp.sin(theta)
             + axis * (dnp.sum(axis * Xo, axis=-1, keepdims=True) * (1 - dnp.cos(theta))))
  Xcam = dnp.where(nonzero, rotated, Xo + dnp.cross(rot, Xo))
  proj = Xcam[..., 0:2] / Xcam[..., 2:3]
  rsq = dnp.sum(proj * proj, axis=-1, keepdims=True)
  distortion = 1 + cam[..., 9:10] * rsq + cam[..., 10:11] * rsq * rsq
  return w[..., None] * (proj * distortion * cam[..., 6:7] + cam[..., 7:9])


def ba_inputs(rng, p, small_angle=True):
  cam = np.concatenate([0.3 * rng.standard_normal((p, 3)), rng.uniform(-1, 1, (p, 3)),
                        rng.uniform(1, 2, (p, 1)), rng.standard_normal((p, 2)),
                        rng.uniform(0, 0.1, (p, 2))], axis=1)
  if small_angle:  # ADBench's branch at rotation 0 (first-order accurate only)
    cam[0, :3] = 0
  X = np.concatenate([rng.uniform(-5, 5, (p, 2)), rng.uniform(20, 30, (p, 1))], axis=1)
  return cam, X, rng.uniform(0.5, 1, p)


def test_vmapped_jacobian_is_the_same_through_the_batched_paths(rng, monkeypatch):
  cam, X, w = ba_inputs(rng, 40)
  blocks = dfdx.vmap(dfdx.jacobian(reprojection, (0, 1, 2), return_value=True))
  expected = blocks(cam, X, w)
  monkeypatch.setattr(ew, "_BLOCK_MIN_INPUT", 1)
  monkeypatch.setattr(ew, "_BLOCK_MIN_SIZE", 1)
  monkeypatch.setattr(ew, "_BLOCK_LONG_RUN", 4)
  monkeypatch.setattr(red, "_SUM_BY_SLICES_MIN_ROWS", 1)
  taken = []
  split = ew._trailing_split
  monkeypatch.setattr(ew, "_trailing_split",
                      lambda shape, arrays: taken.append(split(shape, arrays)) or taken[-1])
  got = blocks(cam, X, w)
  assert any(k is not None for k in taken)
  for g, e in zip(dfdx.tree.tree_leaves(got), dfdx.tree.tree_leaves(expected)):
    assert_same_bits(g, e)
  np.testing.assert_array_equal(got[1], reprojection(cam, X, w))


def test_batched_paths_derivatives(rng, small_thresholds):
  cam, X, w = ba_inputs(rng, 12, small_angle=False)
  check_grads(reprojection, (cam, X, w), order=2)
  jac = dfdx.vmap(dfdx.jacobian(reprojection, (0, 1, 2)))
  check_grads(lambda c, x, w: jac(c, x, w)[0], (cam, X, w), order=1)
  a, b = rng.standard_normal((12, 2, 1)), rng.standard_normal((12, 1, 3))
  check_grads(lambda a, b: dnp.where(a > b, a * b, a / (b + 3)) ** 2, (a, b), order=2)


# ---- cotangents of slices -------------------------------------------------------------------

def pieces(x):  # a vector of parameters split into pieces that tile the last axis, with a gap
  a, b, c, d = x[..., 0:3], x[..., 3:6], x[..., 6:7], x[..., 9:11]
  return dnp.sin(a) * dnp.sum(b * b, axis=-1, keepdims=True) + c * dnp.cos(a) + dnp.sum(d ** 3)


def overlapping(x):
  return dnp.sin(x[..., 1:5]) * x[..., 2:6] + x[..., -3:-1].sum() ** 2


def strided(x):
  return dnp.sum(dnp.sin(x[..., ::2])) * dnp.sum(x[..., 1::3] ** 2) + dnp.sum(x[..., 9:1:-2] ** 3)


def negative_and_empty(x):
  return dnp.sum(x[..., -4:] ** 2) + dnp.sum(x[..., 3:3]) + dnp.sum(dnp.exp(x[..., :-4]))


def two_axes(x):
  return dnp.sum(dnp.sin(x[0:2, :]) * x[1:3, 1:5].sum()) + dnp.sum(x[2:, 7:] ** 2)


def dense_and_slices(x):  # x also used whole, before and after its slices
  return (dnp.sum(x ** 2) * dnp.sum(dnp.sin(x[..., 0:4])) + dnp.sum(x[..., 4:] * x[..., :7])
          + dnp.sum(x))


def integer_indices(x):  # cross products of 3-vectors: x[..., 0], x[..., 1], x[..., 2]
  return dnp.cross(x[..., 0:3], x[..., 3:6]) * x[..., 6:7] + dnp.cross(x[..., 6:9], x[..., 0:3])


def broadcast_pieces(x):  # the slices' cotangents come out broadcast (x[..., k] * a row)
  return x[..., 0:1] * np.arange(1.0, 4.0) + dnp.exp(x[..., 1:2]) * x[..., 2:5]


SLICING = [pieces, overlapping, strided, negative_and_empty, two_axes, dense_and_slices,
           integer_indices, broadcast_pieces]


def pad_and_add_transpose(ct, x, *, start, limit, strides):
  """The transpose of slice as it was: pad each cotangent; the reverse pass adds them."""
  return [shape_ops.pad(ct, shape_ops._slice_pad_config(x.aval.shape, start, limit, strides))]


def with_pad_and_add(monkeypatch):
  monkeypatch.setitem(ad.primitive_transposes, shape_ops.slice_p, pad_and_add_transpose)


@pytest.mark.parametrize("f", SLICING, ids=lambda f: f.__name__)
def test_slice_cotangents_derivatives(f, rng):
  x = rng.uniform(0.5, 1.5, (4, 11))
  check_grads(f, (x,), order=2)


@pytest.mark.parametrize("f", SLICING, ids=lambda f: f.__name__)
def test_slice_cotangents_equal_pad_and_add(f, rng, monkeypatch):
  x = rng.uniform(0.5, 1.5, (4, 11))
  weights = np.linspace(-1, 2, np.size(f(x))).reshape(np.shape(f(x)))
  loss = lambda x: dnp.sum(f(x) * weights)  # noqa: E731
  per_row = f is not two_axes

  def derivatives():
    return [dfdx.grad(loss)(x), dfdx.jacobian(f)(x), dfdx.jit(dfdx.grad(loss))(x),
            dfdx.hessian(lambda v: loss(v.reshape(4, 11)))(x.ravel()),
            dfdx.vmap(dfdx.jacobian(f))(x) if per_row else 0.0]
  got = derivatives()
  with_pad_and_add(monkeypatch)
  for g, e in zip(got, derivatives()):
    np.testing.assert_array_equal(g, e)


def test_tiling_slices_are_joined_not_padded(rng):
  x = rng.uniform(0.5, 1.5, (4, 11))
  counts = core.count_binds(lambda: dfdx.grad(lambda x: dnp.sum(pieces(x)))(x))
  assert counts["pad"] == 0 and counts["concatenate"] == 1
  counts = core.count_binds(lambda: dfdx.grad(lambda x: dnp.sum(overlapping(x)))(x))
  assert counts["pad"] == 3  # overlapping slices: padded and added in order


def test_join_slices_cases():
  shape = (2, 8)

  def part(lo, hi, axis=1, st=1):  # (cotangent of ones, start, limit, strides)
    n = len(range(lo, hi, st))
    return (np.ones(shape[:axis] + (n,) + shape[axis + 1:]),
            tuple(lo if i == axis else 0 for i in range(2)),
            tuple(hi if i == axis else shape[i] for i in range(2)),
            tuple(st if i == axis else 1 for i in range(2)))
  joined = shape_ops._join_slices(shape, [part(5, 8), part(0, 2)])
  np.testing.assert_array_equal(joined, [[1, 1, 0, 0, 0, 1, 1, 1]] * 2)
  assert shape_ops._join_slices(shape, [part(0, 3), part(2, 4)]) is None  # overlap
  assert shape_ops._join_slices(shape, [part(0, 3), part(4, 8, st=2)]) is None  # strided
  assert shape_ops._join_slices(shape, [part(0, 1, axis=0), part(4, 8)]) is None  # two axes
  assert shape_ops._join_slices(shape, [part(0, 3), part(3, 3)]) is None  # empty
  pending = shape_ops.SliceCotangents(core.ShapedArray(shape, np.float64), np.full(shape, 2.0),
                                      [part(5, 8), part(0, 2)])
  np.testing.assert_array_equal(pending.materialize(), [[3, 3, 2, 2, 2, 3, 3, 3]] * 2)
  more = pending.add(np.full(shape, 10.0))
  np.testing.assert_array_equal(more, [[13, 13, 12, 12, 12, 13, 13, 13]] * 2)


def test_slices_of_a_multiple_result_primitive(rng):
  @dfdx.custom_vjp  # recorded whole, with multiple results: its outputs' cotangents are popped
  def sin_cos(x):  # together
    return dnp.sin(x), dnp.cos(x)

  sin_cos.defvjp(lambda x: (sin_cos(x), x),
                 lambda x, ct: (ct[0] * dnp.cos(x) - ct[1] * dnp.sin(x),))

  def f(x):
    s, c = sin_cos(x)
    return dnp.sum(s[1:3] * c[0:2]) + dnp.sum(s[::2] ** 2) + c[-1] * s[0]
  x = rng.uniform(0.5, 1.5, 5)
  check_grads(f, (x,), order=1, modes="rev")

  def plain(x):  # the same function without the custom rule
    return (dnp.sum(dnp.sin(x)[1:3] * dnp.cos(x)[0:2]) + dnp.sum(dnp.sin(x)[::2] ** 2)
            + dnp.cos(x)[-1] * dnp.sin(x)[0])
  np.testing.assert_allclose(dfdx.grad(f)(x), dfdx.grad(plain)(x), rtol=1e-14)


def test_slice_cotangents_under_vmap_and_jit(rng):
  x = rng.uniform(0.5, 1.5, (6, 11))
  grad = dfdx.grad(lambda v: dnp.sum(pieces(v) ** 2))
  expected = np.stack([grad(v) for v in x])
  np.testing.assert_allclose(dfdx.vmap(grad)(x), expected, rtol=1e-14)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(grad))(x), expected, rtol=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.jacfwd(grad))(x),
                             np.stack([dfdx.jacfwd(grad)(v) for v in x]), rtol=1e-14)


def test_blocked_impls_keep_dfdx_numpys_direct_path():
  # dfdx.numpy binds a ufunc's primitive directly (no dtype resolution, no casts) when the
  # primitive computes that ufunc; the blocked impls must still count as computing it.
  from dfdx._src.numpy import ufuncs
  from dfdx._src.ops import elementwise as ew
  for np_fun, op in ((np.multiply, ew.mul), (np.add, ew.add), (np.subtract, ew.sub),
                     (np.true_divide, ew.div), (np.maximum, ew.maximum)):
    assert ufuncs._is_the_ufunc(np_fun, op), np_fun
