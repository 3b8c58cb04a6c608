"""Indexing on traced values against NumPy: `x[index]` for every kind of index, its
derivatives (the transpose is a scatter-add of the cotangent), vmap with batched arrays and
batched indices, functional updates `.at[...]`, take / take_along_axis / compress /
nonzero, and the errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.checks import assert_same_array

X3 = (4, 5, 6)
MASK4 = np.array([True, False, True, True])
MASK45 = np.arange(20).reshape(4, 5) % 3 == 0
S = slice(None)

# (shape of x, index): every kind of index and their combinations.
GETITEM_CASES = [
    (X3, 2), (X3, -1), (X3, (1, 2)), (X3, (-1, -2, -3)), (X3, np.int64(3)),
    (X3, np.array(1)), (X3, (S, np.array(-2))),
    (X3, slice(1, 3)), (X3, slice(None, None, -1)), (X3, (S, slice(4, 0, -2))),
    (X3, (slice(-10, 10), slice(None, None, 3))), (X3, slice(10, 20)), (X3, slice(2, 2)),
    (X3, (S, S, slice(-1, -7, -4))), (X3, (slice(None, None, -3), 1, slice(5, None, -1))),
    (X3, None), (X3, (None, 1)), (X3, (Ellipsis, None)), (X3, (None, Ellipsis, None, 2)),
    (X3, Ellipsis), (X3, (1, Ellipsis, -1)), (X3, ()),
    (X3, np.array([0, 2, -1])), (X3, [1, 1, 0]), (X3, np.array([[0, 1], [2, 3]])), (X3, []),
    (X3, (S, [0, 2])), (X3, ([0, 1], [1, 2])), (X3, ([0, 1], S, [1, 2])),
    (X3, (1, S, [0, 1])), (X3, (S, 1, [0, 1])), (X3, ([[0], [1]], [0, 1, 2])),
    (X3, (Ellipsis, [0, -1])), (X3, ([0, 1], Ellipsis, [0, 1])), ((4, 5), ([0, 1], ..., [0, 1])),
    (X3, (S, [0, 1], None, [0, 1])), (X3, (None, [0, 1], [1, 2])),
    (X3, (slice(None, None, -2), [0, -1])), (X3, (S, [[4], [0]], slice(1, None, 2))),
    (X3, MASK4), (X3, MASK45), (X3, (S, np.array([True, False, False, True, True]))),
    (X3, (MASK4, [1])), (X3, (MASK4, S, [0, 1, 2])), (X3, np.zeros((4, 5, 6), bool)),
    (X3, [True, False, True, False]), (X3, True), (X3, False), (X3, (S, True, [0, 1])),
    ((), ()), ((), None), ((), Ellipsis), ((), True), ((0, 3), (S, 1)), ((0, 3), []),
    ((0, 3), (S, [2, -1])), ((3,), np.array([], np.int64)),
]


def _case_id(case):
  return f"{case[0]}-{case[1]!r}".replace(" ", "")[:60]


def _scatter(shape, idx, ct):
  """The transpose of x -> x[idx]: ct added back at the positions idx selected."""
  positions = np.arange(int(np.prod(shape))).reshape(shape)[idx]
  out = np.bincount(np.ravel(positions), weights=np.ravel(ct), minlength=int(np.prod(shape)))
  return out.reshape(shape)


@pytest.mark.parametrize("shape,idx", GETITEM_CASES, ids=[_case_id(c) for c in GETITEM_CASES])
def test_getitem_matches_numpy(shape, idx, rng):
  x, t = rng.standard_normal(shape), rng.standard_normal(shape)
  y, y_dot = dfdx.jvp(lambda x: x[idx], (x,), (t,))
  assert_same_array(y, x[idx])
  assert_same_array(y_dot, t[idx])
  out, vjp_fn = dfdx.vjp(lambda x: x[idx], x)
  ct = rng.standard_normal(np.shape(out))
  np.testing.assert_allclose(vjp_fn(ct)[0], _scatter(shape, idx, ct), rtol=1e-12)


def test_getitem_without_tracers_is_numpy():
  x = np.arange(12.0).reshape(3, 4)
  from dfdx._src.numpy.indexing import getitem
  for idx in [1, (S, [0, 2]), x > 3, (None, ..., 1)]:
    out = getitem(x, idx)
    assert type(out) is type(x[idx]) and np.array_equal(out, x[idx])


@pytest.mark.parametrize("idx", [np.s_[1, ::-1], np.s_[[0, 2, 0], 1:], np.s_[None, ..., [1, -1]],
                                 np.s_[[[0], [2]], None, [0, 1]], MASK45[:3, :4]],
                         ids=["basic", "duplicates", "newaxis", "separated", "mask"])
def test_check_grads(idx, rng):
  x = rng.standard_normal((3, 4))
  check_grads(lambda x: dnp.sin(x[idx]) * x[idx], (x,), order=2, rng=rng)


def test_grad_of_sum_is_scatter_of_ones(rng):
  x = rng.standard_normal((4, 3))
  idx = (np.array([0, 0, 3, -1]), np.array([1, 1, 2, 0]))
  expected = np.zeros((4, 3))
  np.add.at(expected, idx, 1.0)
  assert_same_array(dfdx.grad(lambda x: x[idx].sum())(x), expected)
  assert_same_array(dfdx.grad(lambda x: x[1:, ::-2].sum())(x),
                    np.array([[0, 0, 0]] + [[1.0, 0, 1]] * 3))


def test_hessian_through_gather(rng):
  x = rng.standard_normal(4)
  idx = np.array([1, 1, 3])
  h = dfdx.hessian(lambda x: (x[idx] ** 3).sum())(x)
  assert_same_array(h, np.diag(6 * x * np.bincount(idx, minlength=4)))


# ---- vmap ------------------------------------------------------------------------------------


def _index(x, idx):
  """x[idx] that also works when x is a plain NumPy array and idx is traced."""
  return dnp.at(x)[idx].get()


VMAP_CASES = [
    (lambda x, i: _index(x, i), (5, 4), (3,)),
    (lambda x, i: _index(x, (S, i)), (3, 5), (2, 2)),
    (lambda x, i: _index(x, (i, S, i)), (3, 2, 3), (2,)),
    (lambda x, i: _index(x, (1, S, i)), (3, 2, 3), (4,)),
    (lambda x, i: _index(x, (S, i, i)), (2, 3, 3), (2, 1)),
    (lambda x, i: _index(x, (None, S, i, ..., slice(None, None, -1))), (2, 3, 2), ()),
    (lambda x, i: _index(x, (i, ..., [0, 2])), (3, 2, 3), (2,)),
    (lambda x, i: dnp.take(x, i, axis=1), (2, 3), (2, 2)),
    (lambda x, i: dnp.take(x, i, mode="wrap"), (2, 3), (4,)),
    (lambda x, i: dnp.at(x)[i, 1:].set(7.0), (3, 3), (2,)),
    (lambda x, i: dnp.at(x)[i].add(1.0), (3, 2), (4,)),
    (lambda x, i: dnp.at(x)[:, i].multiply(2.0), (2, 3), (4,)),
]


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0), (-1, -1)])
@pytest.mark.parametrize("case", range(len(VMAP_CASES)))
def test_vmap_of_indexing(case, in_axes, rng):
  f, x_shape, i_shape = VMAP_CASES[case]
  n = 3
  xs = [rng.standard_normal(x_shape) for _ in range(n)]
  idxs = [rng.integers(-2, 2, size=i_shape) for _ in range(n)]
  args = [xs, idxs]
  batched = [np.stack(a, axis=ax) if ax is not None else a[0] for a, ax in zip(args, in_axes)]
  expected = np.stack([f(*[a[b] if ax is not None else a[0] for a, ax in zip(args, in_axes)])
                       for b in range(n)])
  assert_same_array(dfdx.vmap(f, in_axes=in_axes)(*batched), expected)


def test_vmap_of_grad_and_grad_of_vmap(rng):
  xs, idx = rng.standard_normal((3, 5)), np.array([[0, 0], [4, 1], [2, 2]])

  def f(x, i):
    return (x[i] ** 2).sum()
  expected = np.stack([dfdx.grad(f)(x, i) for x, i in zip(xs, idx)])
  assert_same_array(dfdx.vmap(dfdx.grad(f))(xs, idx), expected)
  assert_same_array(dfdx.grad(lambda xs: dfdx.vmap(f)(xs, idx).sum())(xs), expected)


@pytest.mark.parametrize("kind", ["set", "add", "multiply"])
def test_vmap_of_update_gradients_with_batched_indices(kind, rng):
  # The index arrays are traced inside the rules: `set` finds the kept writes and `multiply`
  # the products of the other updates with dfdx operations on them.
  vs = rng.standard_normal((3, 4))
  vs[0, 1] = 0.0
  idx = np.array([[0, 2, 0, 0], [1, 1, 1, 3], [3, 2, 1, 0]])

  def f(v, i):
    return (getattr(dnp.at(np.arange(1.0, 5.0))[i], kind)(v) ** 2).sum()
  expected = np.stack([dfdx.jacrev(dfdx.grad(f))(v, i) for v, i in zip(vs, idx)])
  assert_same_array(dfdx.vmap(dfdx.jacrev(dfdx.grad(f)))(vs, idx), expected, rtol=1e-10)
  check_grads(lambda v: dfdx.vmap(f, in_axes=(None, 0))(v, idx), (vs[0],), order=2, rng=rng)


# ---- .at[...] ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,np_update", [
    ("set", lambda out, idx, v: out.__setitem__(idx, v)),
    ("add", np.add.at), ("multiply", np.multiply.at)])
@pytest.mark.parametrize("idx,v_shape", [
    ((S, [0, 2, 0]), (3,)), (1, ()), ((slice(None, None, -1), 1), (4,)), ((MASK4, 2), (3,)),
    (([1, 1, 3], [0, 0, 2]), (3,)), ((None, 0, [1, 2]), (1, 2))])
def test_at_matches_numpy(kind, np_update, idx, v_shape, rng):
  x, v = rng.standard_normal((4, 3)), rng.standard_normal(v_shape)
  x_before = x.copy()
  expected = x.copy()
  np_update(expected, idx, v)
  plain = getattr(dnp.at(x)[idx], kind)(v)
  assert type(plain) is np.ndarray
  assert_same_array(plain, expected)
  traced = dfdx.jvp(lambda x, v: getattr(x.at[idx], kind)(v), (x, v), (x, v))[0]
  assert_same_array(traced, expected)
  assert_same_array(x, x_before)


_UPDATES = {"subtract": np.subtract.at, "divide": np.divide.at, "power": np.power.at,
            "min": np.minimum.at, "max": np.maximum.at}


@pytest.mark.parametrize("kind", sorted(_UPDATES))
@pytest.mark.parametrize("idx,v_shape", [
    ((S, [0, 2, 0]), (3,)), (1, ()), ((slice(None, None, -1), 1), (4,)), ((MASK4, 2), (3,)),
    (([1, 1, 3, 1], [0, 0, 2, 0]), (4,)), ((None, 0, [1, 2]), (1, 2)), ([], (3,))])
def test_more_at_updates_match_numpy_ufunc_at(kind, idx, v_shape, rng):
  # Positive data (power takes fractional exponents); repeated positions are combined
  # (subtract, min, max) or visited once per occurrence, in order (divide, power).
  x, v = rng.uniform(0.5, 2.0, (4, 3)), rng.uniform(0.5, 2.0, v_shape)
  expected = x.copy()
  _UPDATES[kind](expected, idx, v)
  f = lambda x, v: getattr(x.at[idx], kind)(v)
  plain = getattr(dnp.at(x)[idx], kind)(v)
  assert type(plain) is np.ndarray
  assert_same_array(plain, expected)
  assert_same_array(dfdx.jvp(f, (x, v), (x, v))[0], expected)
  assert_same_array(dfdx.jit(f)(x, v), expected)
  assert_same_array(dfdx.vmap(f, in_axes=(0, None))(np.stack([x, 2 * x]), v)[0], expected)


@pytest.mark.parametrize("kind", ["set", "add", "subtract", "multiply", "divide", "power",
                                  "min", "max"])
def test_at_grads(kind, rng):
  x, v = rng.uniform(0.5, 2.0, (4, 3)), rng.uniform(0.5, 2.0, (3, 3))
  if kind == "multiply":
    v[0, 0] = 0.0  # exact derivatives at zero updates, with repeated positions
  idx = np.array([1, 3, 1])
  check_grads(lambda x, v: getattr(dnp.at(x)[idx], kind)(v) ** 2, (x, v), order=2, rng=rng)
  check_grads(lambda v: getattr(dnp.at(x)[idx, 1:], kind)(v[:, :2]), (v,), order=2, rng=rng)


def test_at_min_and_max_closed_forms():
  x, i = np.array([3.0, 1.0, 2.0]), np.array([0, 0, 2, 0])
  v = np.array([5.0, 4.0, 2.0, 6.0])
  # max at position 0 keeps v[3]; at position 2 x and v[2] tie and split the derivative
  (gx, gv) = dfdx.grad(lambda x, v: x.at[i].max(v).sum(), argnums=(0, 1))(x, v)
  assert_same_array(gx, np.array([0.0, 1.0, 0.5]))
  assert_same_array(gv, np.array([0.0, 0.0, 0.5, 1.0]))
  gx, gv = dfdx.grad(lambda x, v: (x.at[i].min(v) * np.array([1.0, 2.0, 3.0])).sum(),
                     argnums=(0, 1))(x, v)
  assert_same_array(gx, np.array([1.0, 2.0, 1.5]))
  assert_same_array(gv, np.array([0.0, 0.0, 1.5, 0.0]))
  # a NaN kept has derivative 0, as for maximum
  g = dfdx.grad(lambda v: dnp.at(x)[i].max(v).sum())(np.array([np.nan, 1.0, 1.0, 1.0]))
  assert_same_array(g, np.array([0.0, 0.0, 0.0, 0.0]))
  assert np.isnan(dnp.at(x)[i].max(np.array([np.nan, 1.0, 1.0, 1.0]))[0])
  # integers: values as NumPy's, no derivative to take
  assert_same_array(dfdx.jit(lambda x: x.at[i].min(np.array([0, 5, 1, -2])))(np.arange(3)),
                    np.array([-2, 1, 1]))


def test_at_apply(rng):
  x, i = rng.standard_normal(4), np.array([1, 3, 1, -1])
  expected = x.copy()
  np.sin.at(expected, i)
  for func in (np.sin, dnp.sin, lambda v: dnp.sin(v)):
    assert_same_array(dnp.at(x)[i].apply(func), expected)
    assert_same_array(dfdx.jit(lambda x: x.at[i].apply(func))(x), expected)
  # d/dx sin(sin(x)) at the position visited twice
  g = dfdx.grad(lambda x: x.at[i].apply(dnp.sin).sum())(x)
  assert_same_array(g, np.array([1.0, np.cos(np.sin(x[1])) * np.cos(x[1]), 1.0,
                                 np.cos(np.sin(x[3])) * np.cos(x[3])]))
  check_grads(lambda x: dnp.at(x)[1:].apply(lambda v: v ** 3 + dnp.exp(v)), (x,), order=2,
              rng=rng)
  check_grads(lambda x: dnp.at(x)[i].apply(dnp.tanh), (x,), order=2, rng=rng)
  xs = rng.standard_normal((2, 4))
  assert_same_array(dfdx.vmap(lambda x: x.at[i].apply(np.sin))(xs),
                    np.stack([dnp.at(r)[i].apply(np.sin) for r in xs]))


def test_at_update_errors(rng):
  x = rng.standard_normal(4)
  with pytest.raises(TypeError, match="expected an elementwise function, got float"):
    dnp.at(x)[0].apply(2.0)
  with pytest.raises(TypeError, match="numpy.add takes 2 arguments"):
    dnp.at(x)[0].apply(np.add)
  with pytest.raises(ValueError, match=r"func returned shape \(\) for entries of shape \(2,\)"):
    dfdx.grad(lambda x: x.at[:2].apply(dnp.sum).sum())(x)
  with pytest.raises(TypeError, match="the array is int64, and func gives float64"):
    dnp.at(np.arange(3))[0].apply(np.sqrt)
  with pytest.raises(TypeError, match="the array is int64, and values int64"):
    dfdx.jit(lambda x: x.at[0].divide(2))(np.arange(3))
  with pytest.raises(TypeError, match="the array is int64, and values float64.*x\\[i\\] \\+= v"):
    dnp.at(np.arange(3))[0].add(1.5)  # (numpy.add.at would cast silently)
  with pytest.raises(TypeError, match="does not subtract booleans"):
    dnp.at(np.ones(2, bool))[0].subtract(True)
  # traced index arrays whose positions could repeat: divide multiplies by reciprocals,
  # power and apply need the positions
  idx = np.array([[0, 0], [1, 2]])
  got = dfdx.vmap(lambda i: dnp.at(np.full(3, 8.0))[i].divide(2.0))(idx)
  np.testing.assert_allclose(got, [[2.0, 8.0, 8.0], [8.0, 4.0, 4.0]], rtol=1e-15)
  with pytest.raises(dfdx.ConcretizationError, match="power then acts once per occurr"):
    dfdx.vmap(lambda i: dnp.at(np.full(3, 8.0))[i].power(2.0))(idx)
  # one entry per example cannot repeat: fine under vmap
  assert_same_array(dfdx.vmap(lambda i: dnp.at(np.full(3, 2.0))[i].power(3.0))(np.arange(3)),
                    np.array([[8.0, 2, 2], [2, 8, 2], [2, 2, 8]]))


@pytest.mark.parametrize("kind", ["set", "add", "max"])
def test_at_refuses_what_would_be_lost_alike_on_plain_and_traced_arrays(kind):
  # A Python integer past the dtype's range (NumPy's assignment raises; numpy.add.at would
  # wrap), a complex value into real entries (its imaginary part would be dropped).
  for run in (lambda f, x: f(x), lambda f, x: dfdx.jit(f)(x)):
    with pytest.raises(OverflowError, match="Python integer 300 out of bounds for uint8"):
      run(lambda x: getattr(dnp.at(x)[0], kind)(300), np.ones(3, np.uint8))
    error = "lose their imaginary part" if kind == "set" else "another kind of dtype"
    with pytest.raises(TypeError, match=error):
      run(lambda x: getattr(dnp.at(x)[0], kind)(np.array([1j])), np.ones(3))
  assert_same_array(dfdx.jit(lambda x: x.at[0].add(255))(np.zeros(2, np.uint8)),
                    np.array([255, 0], np.uint8))


def test_at_divide_with_many_repeats_multiplies_by_reciprocals():
  x, i = np.full(3, 1e300), np.zeros(100, np.int64)
  expected = x.copy()
  np.divide.at(expected, i, 2.0)
  got = dfdx.jit(lambda x: x.at[i].divide(2.0))(x)
  np.testing.assert_allclose(got, expected, rtol=1e-13)
  assert_same_array(dfdx.grad(lambda x: x.at[i].divide(2.0)[0])(x), np.array([2.0 ** -100, 0, 0]))


def test_at_values_are_cast_to_the_array_dtype_first():
  # float64 values into float32 and float16 arrays: each method combines in x's dtype, on
  # NumPy arrays as on traced ones (numpy's ufunc.at would compute in float64)
  i, v = np.array([0, 2, 0, 1, 0]), np.array([1.307, 0.9946, 1.6826, 0.9548, 1.1802])
  for dtype in (np.float16, np.float32):
    x = np.array([1.324, 0.5415, 1.63], dtype)
    for kind, ufunc in (("add", np.add), ("multiply", np.multiply), ("divide", np.divide),
                        ("power", np.power)):
      expected = x.copy()
      ufunc.at(expected, i, v.astype(dtype))
      assert_same_array(getattr(dnp.at(x)[i], kind)(v), expected)
      assert_same_array(dfdx.jit(lambda x: getattr(x.at[i], kind)(v))(x), expected)
  # a Python -1 fits no uint8: refused on both, where numpy.minimum.at would wrap it to 255
  for run in (lambda f, x: f(x), lambda f, x: dfdx.jit(f)(x)):
    with pytest.raises(OverflowError, match="Python integer -1 out of bounds for uint8"):
      run(lambda x: dnp.at(x)[0].min(-1), np.ones(2, np.uint8))


def test_at_values_broadcast_alike_on_plain_and_traced_arrays():
  x, v = np.zeros((2, 3)), np.arange(3.0).reshape(1, 1, 3)  # leading unit axes drop
  for kind in ("add", "max", "divide"):
    expected = dfdx.jit(lambda x: getattr(x.at[0], kind)(v + 1))(x)
    assert_same_array(getattr(dnp.at(x)[0], kind)(v + 1), expected)
    with pytest.raises(ValueError, match=rf"x.at\[...\].{kind}: could not broadcast input "
                       r"array from shape \(2,\) into the indexed shape \(3,\)"):
      getattr(dnp.at(x)[0], kind)(np.ones(2))


def test_at_traced_single_entry_index_of_a_matrix_repeats_no_position():
  # a row index under vmap picks one whole row: no position can repeat
  x = np.full((3, 2), 2.0)
  expected = np.stack([dnp.at(x)[i].power(3.0) for i in range(2)])
  assert_same_array(dfdx.vmap(lambda i: dnp.at(x)[i].power(3.0))(np.arange(2)), expected)
  expected = np.stack([dnp.at(x)[i].divide(3.0) for i in range(2)])
  assert_same_array(dfdx.vmap(lambda i: dnp.at(x)[i].divide(3.0))(np.arange(2)), expected)
  got = dfdx.jit(lambda x, i: x.at[i].apply(dnp.sqrt))(x, np.array([1]))
  assert_same_array(got, dnp.at(x)[[1]].apply(np.sqrt))


def test_at_derivative_at_a_traced_0d_index_under_jit():
  x = np.array([4.0, 1.0, 9.0])
  f = dfdx.jit(lambda x, i, v: x.at[i].add(v))  # (v a Python float, as it was passed)
  assert_same_array(dfdx.jvp(lambda x: f(x, np.array(1), 2.0), (x,), (x,))[1], x)
  assert_same_array(dfdx.grad(lambda x: f(x, np.array(1), 2.0).sum())(x), np.ones(3))


def test_at_min_max_derivative_of_untouched_nan_entries():
  # entries the index does not name pass through: derivative 1, a NaN there too
  x = np.array([1.0, 2.0, np.nan])
  for kind in ("min", "max"):
    g = dfdx.grad(lambda x: getattr(x.at[0], kind)(5.0).sum())(x)
    assert_same_array(g, np.array([1.0 if kind == "min" else 0.0, 1.0, 1.0]))
  # a NaN kept where the index names it still has derivative 0
  assert_same_array(dfdx.grad(lambda x: x.at[2].max(5.0).sum())(x), np.array([1.0, 1.0, 0.0]))


def test_at_apply_refuses_functions_of_several_outputs():
  x = np.array([1.5, 2.5])
  for func in (np.modf, np.frexp, dnp.modf):
    with pytest.raises(TypeError, match="apply: .* returns 2 outputs; apply takes a function "
                       "of one output"):
      dnp.at(x)[0].apply(func)
    with pytest.raises(TypeError, match="returns 2 outputs"):
      dfdx.jit(lambda x: x.at[0].apply(func))(x)


def test_at_traced_values_into_plain_array(rng):
  v = rng.standard_normal(3)
  g = dfdx.grad(lambda v: (dnp.at(np.ones(4))[[0, 0, 2]].add(v) ** 2).sum())(v)
  assert_same_array(g, 2 * np.array([1 + v[0] + v[1], 1 + v[0] + v[1], 1 + v[2]]))
  # set with a repeated position: NumPy keeps the last write, which gets the derivative
  g = dfdx.grad(lambda v: dnp.at(np.ones(4))[[0, 2, 0]].set(v).sum())(v)
  assert_same_array(g, np.array([0.0, 1.0, 1.0]))


def test_at_leaves_the_original_unchanged(rng):
  x = rng.standard_normal(4)

  def f(x):
    y = x.at[1].set(0.0)
    return x, y, x.at[[1, 2]].get()
  x_out, y, got = dfdx.jvp(f, (x,), (np.ones(4),))[0]
  assert_same_array(x_out, x)
  assert y[1] == 0.0 and np.array_equal(np.delete(y, 1), np.delete(x, 1))
  assert_same_array(got, x[[1, 2]])


def test_at_casts_and_broadcasts_like_numpy(rng):
  x = rng.standard_normal((2, 3)).astype(np.float32)
  out = dfdx.jvp(lambda v: dnp.at(x)[:, 1].set(v), (2.0,), (1.0,))
  assert out[0].dtype == np.float32 and out[1].dtype == np.float32
  assert_same_array(out[1], np.array([[0, 1, 0], [0, 1, 0]], np.float32))
  with pytest.raises(TypeError, match="another kind of dtype"):
    dfdx.grad(lambda v: dnp.at(np.zeros(3, int))[0].add(v).sum())(1.5)
  with pytest.raises(ValueError, match=r"could not broadcast input array from shape \(3,\)"):
    dfdx.grad(lambda v: dnp.at(np.zeros((2, 3)))[:, 1].set(v).sum())(np.ones(3))


# ---- take, take_along_axis, compress, nonzero ---------------------------------------------------


@pytest.mark.parametrize("indices,axis,mode", [
    ([2, -1, 0, 2], None, None), ([[1], [0]], 0, "raise"), ([5, -7, 1], 1, "wrap"),
    ([5, -7, 1], -1, "clip"), (1, 1, None), ([], 0, None)])
def test_take_matches_numpy(indices, axis, mode, rng):
  a = rng.standard_normal((3, 4))
  expected = np.take(a, indices, axis=axis, mode=mode or "raise")
  f = lambda a: dnp.take(a, indices, axis=axis, mode=mode)
  assert_same_array(dfdx.jvp(f, (a,), (a,))[0], expected)
  check_grads(f, (a,), order=1, rng=rng)


@pytest.mark.parametrize("axis,i_shape", [(1, (3, 2)), (0, (5, 4)), (-1, (1, 6)), (None, (7,))])
def test_take_along_axis(axis, i_shape, rng):
  a = rng.standard_normal((3, 4))
  idx = rng.integers(-3, 3, size=i_shape)
  expected = np.take_along_axis(a, idx, axis=axis)
  assert_same_array(dfdx.jvp(lambda a: dnp.take_along_axis(a, idx, axis), (a,), (a,))[0], expected)
  check_grads(lambda a: dnp.take_along_axis(a, idx, axis), (a,), order=1, rng=rng)
  idxs = rng.integers(-3, 3, size=(2,) + i_shape)
  assert_same_array(dfdx.vmap(lambda i: dnp.take_along_axis(a, i, axis))(idxs),
                    np.stack([np.take_along_axis(a, i, axis=axis) for i in idxs]))


def test_compress_and_nonzero_on_concrete_traced_values(rng):
  a = rng.standard_normal((3, 4))
  cond = np.array([True, False, True])

  def f(a):
    nz = dnp.nonzero(a > 0)
    assert all(np.array_equal(u, w) for u, w in zip(nz, np.nonzero(a > 0)))
    assert np.array_equal(dnp.flatnonzero(a > 0), np.flatnonzero(a > 0))
    assert np.array_equal(dnp.argwhere(a > 0), np.argwhere(a > 0))
    assert np.array_equal(dnp.where(a > 0)[0], np.nonzero(a > 0)[0])
    return dnp.compress(cond, a, axis=0) * 2.0
  assert_same_array(dfdx.jvp(f, (a,), (a,))[1], 2 * np.compress(cond, a, axis=0))
  assert_same_array(dnp.compress([1, 0, 1, 1], a, axis=1), np.compress([1, 0, 1, 1], a, axis=1))


def test_plain_calls_are_numpy():
  a = np.arange(12.0).reshape(3, 4)
  assert np.array_equal(dnp.take(a, [1, 5]), np.take(a, [1, 5]))
  assert dnp.take(a, 5) == np.take(a, 5)
  assert np.array_equal(dnp.take_along_axis(a, np.array([[0], [1], [2]]), 1),
                        np.take_along_axis(a, np.array([[0], [1], [2]]), 1))
  assert all(np.array_equal(u, w) for u, w in zip(dnp.nonzero(a > 4), np.nonzero(a > 4)))
  for name in ["diag_indices", "tril_indices", "triu_indices", "tril_indices_from"]:
    assert getattr(dnp, name) is getattr(np, name)
  assert all(np.array_equal(u, w) for u, w in zip(dnp.ix_([0, 2], [True, False, True]),
                                                  np.ix_([0, 2], [True, False, True])))
  assert all(np.array_equal(u, w) for u, w in zip(dnp.tril_indices(3, -1), np.tril_indices(3, -1)))


# ---- errors --------------------------------------------------------------------------------------


def _traced(f, x):
  return dfdx.jvp(f, (x,), (np.ones_like(x),))


@pytest.mark.parametrize("idx,error,match", [
    (5, IndexError, "index 5 is out of bounds for axis 0 with size 3"),
    ((S, -5), IndexError, "index -5 is out of bounds for axis 1 with size 4"),
    ([0, 3], IndexError, "index 3 is out of bounds for axis 0 with size 3"),
    ((0, 0, 0), IndexError, "too many indices for array: array is 2-dimensional, but 3 were"),
    (np.array([1.0]), IndexError, "arrays used as indices must be of integer"),
    (1.5, IndexError, "only integers, slices"),
    ((..., ...), IndexError, "an index can only have a single ellipsis"),
    (np.array([True, False]), IndexError, "boolean index did not match indexed array along axis 0"),
    (([0, 1], [0, 1, 2]), IndexError, "shape mismatch: indexing arrays could not be broadcast"),
    (slice(0, 2, 0), ValueError, "slice step cannot be zero")])
def test_getitem_errors(idx, error, match):
  x = np.zeros((3, 4))
  with pytest.raises(error, match=match):
    _traced(lambda x: x[idx], x)
  with pytest.raises(error, match=match):
    x[idx]  # the same error as NumPy


def test_take_errors():
  with pytest.raises(IndexError, match="index 4 is out of bounds for axis 0 with size 4"):
    _traced(lambda a: dnp.take(a, [4]), np.zeros(4))
  with pytest.raises(ValueError, match="clipmode must be one of"):
    _traced(lambda a: dnp.take(a, [4], mode="bad"), np.zeros(4))


def test_traced_mask_under_vmap_is_an_error():
  xs = np.ones((2, 3))
  with pytest.raises(dfdx.ConcretizationError, match=r"boolean mask.*dfdx.numpy.where"):
    dfdx.vmap(lambda x: x[x > 0])(xs)
  with pytest.raises(dfdx.ConcretizationError, match=r"nonzero.*dfdx.numpy.where"):
    dfdx.vmap(dnp.nonzero)(xs)
  with pytest.raises(dfdx.ConcretizationError, match="boolean mask"):
    dfdx.vmap(lambda x: dnp.at(x)[x > 0].set(0.0))(xs)
  with pytest.raises(dfdx.ConcretizationError, match=r"compress.*dfdx.numpy.where"):
    dfdx.vmap(lambda x: dnp.compress(x > 0, x))(xs)


def test_out_of_bounds_batched_indices_raise():
  with pytest.raises(IndexError, match="out of bounds"):
    dfdx.vmap(lambda i: dnp.take(np.zeros(3), i))(np.array([[0], [3]]))


def test_cached_basic_index_plans_depend_on_shape_and_index(rng):
  """Basic indexes of Python ints and slices resolve through a cache keyed on the shape and
  the index: the same index on other shapes, indexes that differ only in the type of an entry
  (bool, NumPy integer) and errors, each time, all match NumPy."""
  idxs = [(S, slice(1, None)), (slice(None, None, -1), None, 1), (-1, Ellipsis),
          (True,), (np.int64(1), S), (slice(np.int64(0), 2),), (1, slice(True, None))]
  for _ in range(2):  # the second time from the cache
    for shape in [(3, 4), (5, 2, 3), (2, 7)]:
      x = rng.standard_normal(shape)
      for idx in idxs:
        y, y_dot = dfdx.jvp(lambda x: x[idx], (x,), (x,))
        assert_same_array(y, x[idx])
        assert_same_array(y_dot, x[idx])
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 1 with size 3"):
      _traced(lambda x: x[:, 3], np.zeros((2, 3)))


@pytest.mark.parametrize("index", [lambda x, i: x[i], lambda x, i: x[:, i], lambda x, i: x[i, 1],
                                   lambda x, i: dnp.take(x, i, axis=0),
                                   lambda x, i: dnp.take(x, i, axis=-1)])
def test_a_traced_integer_index_of_a_matrix_under_jit(index):
  # (jit's code generation read the index's length: a 0-d index has none)
  x = np.arange(24.0).reshape(2, 3, 4)
  for i in (np.array(1), np.int64(1)):
    assert_same_array(dfdx.jit(index)(x, i), index(x, i))
    g = lambda x: dnp.sum(index(x, i) ** 2)  # noqa: E731
    assert_same_array(dfdx.jit(dfdx.grad(g))(x), dfdx.grad(g)(x))


def test_ix_of_traced_integer_sequences():
  x = np.arange(20.0).reshape(4, 5)
  i, j = np.array([0, 2]), np.array([1, 3, -1])
  expected = x[np.ix_(i, j)]
  take = lambda x, i, j: x[dnp.ix_(i, j)]  # noqa: E731
  np.testing.assert_array_equal(dfdx.jit(take)(x, i, j), expected)
  np.testing.assert_array_equal(
      dfdx.vmap(take, in_axes=(0, 0, None))(np.stack([x, x]), np.stack([i, i + 1]), j),
      np.stack([expected, x[np.ix_(i + 1, j)]]))
  grad = dfdx.jit(dfdx.grad(lambda x, i, j: dnp.sum(take(x, i, j) ** 2)))(x, i, j)
  expected_grad = np.zeros_like(x)
  expected_grad[np.ix_(i, j)] = 2 * expected
  np.testing.assert_array_equal(grad, expected_grad)
  # a boolean sequence stands for its nonzero entries (concrete), as in NumPy
  mask = np.array([True, False, True, False])
  np.testing.assert_array_equal(dfdx.jit(lambda x, j: x[dnp.ix_(mask, j)])(x, j),
                                x[np.ix_(mask, j)])
  assert [a.shape for a in dnp.ix_(i, j)] == [(2, 1), (1, 3)]  # (nothing traced: NumPy's)
  with pytest.raises(ValueError, match="Cross index must be 1 dimensional"):
    dfdx.jit(lambda i: dnp.ix_(i, i))(np.ones((2, 2), int))
