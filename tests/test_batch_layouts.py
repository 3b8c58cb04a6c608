"""Batching rules that choose where the batch axis goes from the operand's memory layout
(gather along one axis with the batch axis last, reshape keeping a non-outermost batch axis
last): the values must be those of the per-example calls exactly, whatever the layout, batch
axis position, index size or dtype."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import batching

B = 4


@pytest.fixture(autouse=True, params=["layout rules on", "layout rules off"])
def layout_threshold(request, monkeypatch):
  """Every test with the layout-choosing rules applying to any size (the small arrays here
  are below the default threshold), and with them off."""
  monkeypatch.setattr(batching, "LAYOUT_MIN_SIZE", 0 if request.param.endswith("on") else 1 << 62)


def _layouts(a):
  """`a` (C-contiguous) and copies of it with the same values in other memory layouts."""
  yield a
  yield np.asfortranarray(a)
  if a.ndim >= 2:
    yield np.ascontiguousarray(np.swapaxes(a, 0, 1)).swapaxes(0, 1)
    yield np.ascontiguousarray(np.moveaxis(a, 0, -1)).transpose(
        (a.ndim - 1,) + tuple(range(a.ndim - 1)))
  flipped = np.flip(a, axis=-1).copy()
  yield np.flip(flipped, axis=-1)  # negative strides


def _check_vmap(fun, x, in_axis):
  batched = dfdx.vmap(fun, in_axes=in_axis)(x)
  expected = np.stack([fun(np.take(x, b, axis=in_axis)) for b in range(x.shape[in_axis])])
  np.testing.assert_array_equal(np.asarray(batched), expected)
  assert np.asarray(batched).dtype == expected.dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.complex128])
@pytest.mark.parametrize("in_axis", [0, 1, 2, 3])
@pytest.mark.parametrize("n_index", [2, 7, 40])
def test_vmap_gather_along_one_axis(rng, dtype, in_axis, n_index):
  base = (rng.normal(size=(B, 6, 3, 5)) * 10).astype(dtype)
  for x in _layouts(np.moveaxis(base, 0, in_axis)):
    for axis in range(3):
      size = (6, 3, 5)[axis]
      idx = rng.integers(-size, size, n_index)
      where = (slice(None),) * axis + (idx,)
      _check_vmap(lambda e: dnp.asarray(e)[where], x, in_axis)
      # ... and a reshape of the result, as the gather may leave its batch axis last
      _check_vmap(lambda e: dnp.reshape(dnp.asarray(e)[where], (-1,)), x, in_axis)
      _check_vmap(lambda e: -dnp.reshape(dnp.asarray(e)[where], (n_index, -1)), x, in_axis)


def test_vmap_gather_index_arrays_of_several_dims(rng):
  x = rng.normal(size=(5, B, 3))
  idx = rng.integers(0, 5, (4, 6))
  _check_vmap(lambda e: dnp.asarray(e)[idx], x, 1)
  _check_vmap(lambda e: dnp.asarray(e)[:, idx[:, :1]], np.swapaxes(x, 0, 2), 0)
  _check_vmap(lambda e: dnp.reshape(dnp.asarray(e)[idx], (8, 9)), x, 1)


def test_vmap_gather_out_of_bounds_still_raises(rng):
  x = rng.normal(size=(B, 3, 2))
  with pytest.raises(IndexError):
    dfdx.vmap(lambda e: e[np.array([0, 1, 2, 3, 1, 0, 5])])(x)


@pytest.mark.parametrize("in_axis", [0, 1, 2])
def test_vmap_reshape_of_every_layout(rng, in_axis):
  base = rng.normal(size=(B, 6, 4))
  for x in _layouts(np.moveaxis(base, 0, in_axis)):
    for shape in [(24,), (4, 6), (2, 3, 4), (24, 1)]:
      _check_vmap(lambda e: dnp.reshape(e, shape), x, in_axis)
      _check_vmap(lambda e: dnp.reshape(e, shape) * np.arange(24.0).reshape(shape), x, in_axis)


def test_vmap_reshape_of_a_size_one_batch(rng):
  x = rng.normal(size=(6, 1, 4))
  _check_vmap(lambda e: dnp.reshape(e, (24,)), x, 1)


def test_jacfwd_of_a_gather_then_reshape_matches_columns(rng):
  # the hand benchmark's tail: a small table's rows gathered many times, negated, flattened
  table = rng.normal(size=(3, 7))
  idx = rng.integers(0, 7, 50)
  points = rng.normal(size=(50, 3))

  def f(theta):
    mesh = dnp.matmul(dnp.reshape(theta[:9], (3, 3)), table) + theta[9:][:, None]
    return dnp.reshape(points - dnp.transpose(mesh)[idx], (-1,))
  theta = rng.normal(size=12)
  jac = dfdx.jacfwd(f)(theta)
  columns = [dfdx.jvp(f, (theta,), (e,))[1] for e in np.eye(12)]
  np.testing.assert_array_equal(jac, np.stack(columns, axis=1))


@pytest.mark.parametrize("shapes", [((3, 1), (4,)), ((), (5,)), ((2, 3), (2, 3)), ((4,), ())])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float64),
                                    (np.float32, np.float32)])
def test_jvp_of_sub_is_the_sum_of_its_terms(rng, shapes, dtypes):
  # sub's JVP takes x_dot - y_dot in one pass: the same as x_dot + (-y_dot), to the bit, with
  # the same broadcasting and dtype; and either tangent alone
  x, y = (rng.normal(size=s).astype(d) for s, d in zip(shapes, dtypes))
  x_dot, y_dot = (rng.normal(size=s).astype(d) for s, d in zip(shapes, dtypes))
  out, t = dfdx.jvp(lambda a, b: a - b, (x, y), (x_dot, y_dot))
  expected = np.broadcast_to(x_dot + -y_dot, np.shape(out)).astype(np.asarray(out).dtype)
  np.testing.assert_array_equal(t, expected)
  assert np.asarray(t).dtype == np.asarray(out).dtype and np.shape(t) == np.shape(out)
  _, t_x = dfdx.jvp(lambda a: a - y, (x,), (x_dot,))
  np.testing.assert_array_equal(t_x, np.broadcast_to(x_dot, np.shape(out)).astype(t_x.dtype))
  _, t_y = dfdx.jvp(lambda b: x - b, (y,), (y_dot,))
  np.testing.assert_array_equal(t_y, np.broadcast_to(-y_dot, np.shape(out)).astype(t_y.dtype))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.uint64])
def test_index_bounds_checks_of_integer_arrays(dtype):
  x = dnp.asarray(np.arange(5.0))
  np.testing.assert_array_equal(x[np.array([0, 4, 2], dtype)], [0.0, 4.0, 2.0])
  with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 5"):
    x[np.array([0, 5], dtype)]
  if np.dtype(dtype).kind == "i":
    np.testing.assert_array_equal(x[np.array([-5, -1], dtype)], [0.0, 4.0])
    with pytest.raises(IndexError, match="index -6 is out of bounds"):
      x[np.array([0, -6], dtype)]
  with pytest.raises(IndexError, match="index 5 is out of bounds"):
    dfdx.grad(lambda v: v[5])(np.arange(5.0))
  with pytest.raises(IndexError, match="index -6 is out of bounds"):
    dfdx.grad(lambda v: v[-6])(np.arange(5.0))


@pytest.mark.parametrize("index_dtype", [np.uint8, np.int32, np.uint64])
def test_vmap_gather_index_dtypes_and_traced_indices(rng, index_dtype):
  x = rng.normal(size=(B, 5, 3))
  idx = rng.integers(0, 5, 9).astype(index_dtype)
  expected = np.stack([x[b][idx] for b in range(B)])
  np.testing.assert_array_equal(dfdx.vmap(lambda e: e[idx])(x), expected)
  gather = dfdx.vmap(lambda e, i: e[i], in_axes=(0, None))
  np.testing.assert_array_equal(dfdx.jit(gather)(x, idx), expected)
  np.testing.assert_array_equal(
      dfdx.jacfwd(lambda i: gather(x * i[0], idx))(np.ones(1))[..., 0], expected)
