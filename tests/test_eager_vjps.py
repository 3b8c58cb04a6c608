"""The reverse pass of eager code on plain NumPy arrays (ad.eager_vjps, ad.eager_transposes):
every rule gives what the primitive's general VJP rule (or transpose) gives, bit for bit, and
is used only where it applies (float arrays of one dtype, broadcast ones only when small, no
transformation current, neither the zero-absorbing chain rule nor debug_nans on)."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.special
from dfdx._src import ad, core
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction
from dfdx._src.ops import shape as shape_ops

_ARITY = {ew.add_p: 2, ew.sub_p: 2, ew.mul_p: 2, ew.div_p: 2}
_POSITIVE = {ew.log_p, ew.sqrt_p}  # defined on positive operands
_PARAMS = {ew.integer_pow_p: [{"y": y} for y in (0, 1, 2, 3, -2)]}


def _operands(prim, rng, shapes, dtype):
  xs = [np.asarray(rng.normal(size=shape)).astype(dtype) for shape in shapes]
  if prim in _POSITIVE or prim is ew.integer_pow_p:
    xs = [np.abs(x) + dtype(0.5) for x in xs]
  if prim is ew.div_p:
    xs[1] = xs[1] + np.sign(xs[1]).astype(dtype)  # away from 0
  return xs


def _general(prim, ct, ans, primals, needs, **params):
  """What the reverse pass computes without the eager rule: the VJP rule, or the transpose
  of a linear primitive (its operands standing in for the tangents)."""
  if prim.linear:
    tape = ad.TapeTrace()
    args = [ad.TapeTracer(tape, np.shape(p), np.result_type(p)) if need else p
            for p, need in zip(primals, needs)]
    return ad.primitive_transposes[prim](ct, *args, **params)
  return ad.primitive_vjps[prim](ct, ans, *primals, needs=needs, **params)


def _assert_same_bits(got, want, needs):
  for g, w, need in zip(got, want, needs, strict=True):
    if need and w is None:
      assert g is None
    elif need:
      w = ad.materialized(w)
      assert type(g) is type(w) or {type(g), type(w)} <= {np.ndarray, np.float64, np.float32}
      assert np.asarray(g).dtype == np.asarray(w).dtype and np.shape(g) == np.shape(w)
      np.testing.assert_array_equal(g, w)


def _needs(n):
  return [(True,)] if n == 1 else [(True, True), (True, False), (False, True)]


def test_every_primitive_with_an_eager_rule_is_covered():
  assert set(ad.eager_vjps) == {ew.add_p, ew.sub_p, ew.mul_p, ew.div_p, ew.sqrt_p,
                                ew.exp_p, ew.log_p, ew.logistic_p, ew.sin_p, ew.cos_p,
                                ew.tanh_p, ew.integer_pow_p}
  assert set(ad.eager_transposes) == {reduction.reduce_sum_p, shape_ops.reshape_p, ew.neg_p}


@pytest.mark.parametrize("prim", sorted(ad.eager_vjps, key=lambda p: p.name), ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (14,), (3, 5)])
def test_eager_rules_give_the_general_rules_bits(prim, dtype, shape, rng):
  n = _ARITY.get(prim, 1)
  for params in _PARAMS.get(prim, [{}]):
    primals = _operands(prim, rng, [shape] * n, dtype)
    ans = prim.impl(*primals, **params)
    ct = np.asarray(rng.normal(size=shape)).astype(dtype)
    if prim is ew.logistic_p:  # both tails, where 1 - s would cancel
      primals[0].flat[0] = 40.0
    for needs in _needs(n):
      want = _general(prim, ct, ans, primals, needs, **params)
      got = ad.eager_vjps[prim](ct, ans, *primals, needs=needs, **params)
      _assert_same_bits(got, want, needs)


_BROADCASTS = [((3, 5), (5,)), ((3, 1), (1, 5)), ((), (3, 5)), ((2, 3, 4), (3, 1)),
               ((4, 3), ())]


@pytest.mark.parametrize("prim", [ew.add_p, ew.sub_p, ew.mul_p, ew.div_p], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes", _BROADCASTS, ids=str)
def test_broadcast_operands_are_summed_to_their_shapes_as_the_general_rules_do(
    prim, dtype, shapes, rng):
  primals = _operands(prim, rng, shapes, dtype)
  ans = prim.impl(*primals)
  ct = rng.normal(size=ans.shape).astype(dtype)
  for needs in _needs(2):
    assert ad._plain_operands(ct, primals, needs)
    want = _general(prim, ct, ans, primals, needs)
    got = ad.eager_vjps[prim](ct, ans, *primals, needs=needs)
    _assert_same_bits(got, want, needs)


def test_large_broadcasts_take_the_general_rules(rng):
  """From EAGER_BROADCAST_SIZE on, the impls may compute a broadcast in another memory order
  (ops/elementwise.py), so the general rules run; operands of the cotangent's shape still
  take the eager ones."""
  n = ad.EAGER_BROADCAST_SIZE
  # below it neither of the impls' rules applies (blocked loops, laid-out operands)
  assert n <= min(ew._BLOCK_MIN_INPUT, ew._LAYOUT_MIN_SIZE)
  x, row = rng.normal(size=(n // 8, 8)), rng.normal(size=8)
  assert not ad._plain_operands(x, (x, row), (True, True))
  assert ad._plain_operands(x, (x, x), (True, True))
  small = x[:n // 16]
  assert ad._plain_operands(small, (small, row), (True, True))


@pytest.mark.parametrize("prim", [ew.add_p, ew.sub_p], ids=str)
@pytest.mark.parametrize("shapes", [((512, 16), (16,)), ((64, 1, 128), (64, 8, 1)),
                                    ((1, 4096), (8, 1))], ids=str)
def test_add_and_sub_take_broadcasts_of_any_size(prim, shapes, rng):
  """Their rules compute nothing from the operands (the cotangent, summed by the impl the
  general rule binds), so layouts cannot change their bits, at any size and for a cotangent
  in any memory order."""
  primals = _operands(prim, rng, shapes, np.float64)
  ans = prim.impl(*primals)
  assert ans.size >= ad.EAGER_BROADCAST_SIZE and prim in ad.eager_any_broadcast
  for ct in (rng.normal(size=ans.shape), rng.normal(size=ans.shape[::-1]).T):
    for needs in _needs(2):
      assert ad._plain_operands(ct, primals, needs, True)
      assert not ad._plain_operands(ct, primals, needs)  # (the others' limit)
      want = _general(prim, ct, ans, primals, needs)
      got = ad.eager_vjps[prim](ct, ans, *primals, needs=needs)
      _assert_same_bits(got, want, needs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("y", [2, 3, -1])
def test_integer_pow_of_a_broadcast_cotangent(dtype, y, rng):
  """The gradient of sum(x ** y, axis): the cotangent is a broadcast view, scaled by y before
  it is broadcast (by both rules)."""
  x = (np.abs(rng.normal(size=(3, 4, 5))) + 0.5).astype(dtype)
  ct = np.broadcast_to(rng.normal(size=(3, 1, 5)).astype(dtype), x.shape)
  ans = ew.integer_pow_p.impl(x, y=y)
  want = _general(ew.integer_pow_p, ct, ans, [x], (True,), y=y)
  got = ad.eager_vjps[ew.integer_pow_p](ct, ans, x, needs=(True,), y=y)
  _assert_same_bits(got, want, (True,))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,axes", [((3, 4), (1,)), ((3, 4), (0,)), ((2, 3, 4), (0, 2)),
                                        ((3, 4), (0, 1)), ((5,), (0,)), ((3, 4), ())])
def test_reduce_sum_transposes_like_the_general_rule(dtype, shape, axes, rng):
  x = rng.normal(size=shape).astype(dtype)
  out = reduction.reduce_sum_p.impl(x, axes=axes)
  cts = [np.asarray(rng.normal(size=out.shape)).astype(dtype)]
  if out.shape == ():
    cts.append(dtype(rng.normal()))  # a NumPy scalar, what a full reduction's cotangent is
  for ct in cts:
    want = _general(reduction.reduce_sum_p, ct, None, [x], (True,), axes=axes)
    got = ad.eager_transposes[reduction.reduce_sum_p](
        ct, ad.TapeTracer(ad.TapeTrace(), x.shape, x.dtype), axes=axes)
    _assert_same_bits(got, want, (True,))


@pytest.mark.parametrize("shape,new", [((3, 4), (12,)), ((3, 4), (4, 1, 3)), ((), (1, 1))])
def test_reshape_transposes_like_the_general_rule(shape, new, rng):
  x = np.asarray(rng.normal(size=shape))
  ct = rng.normal(size=new)
  want = _general(shape_ops.reshape_p, ct, None, [x], (True,), shape=new)
  got = ad.eager_transposes[shape_ops.reshape_p](
      ct, ad.TapeTracer(ad.TapeTrace(), x.shape, x.dtype), shape=new)
  _assert_same_bits(got, want, (True,))


@pytest.mark.parametrize("prim", [ew.add_p, ew.sub_p, ew.mul_p, ew.div_p], ids=str)
@pytest.mark.parametrize("number", [2, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_python_numbers_and_numpy_scalars_take_them_too(prim, number, dtype, rng):
  """A Python number operand (not differentiated) and NumPy scalar cotangents (what a full
  reduction's cotangent is): the same values as the general rules."""
  x = dtype(rng.normal() + 3.0)
  ct = dtype(rng.normal())
  for primals, needs in (((x, number), (True, False)), ((number, x), (False, True))):
    assert ad._plain_operands(ct, primals, needs)
    ans = prim.impl(*primals)
    want = _general(prim, ct, ans, list(primals), needs)
    got = ad.eager_vjps[prim](ct, ans, *primals, needs=needs)
    for g, w, need in zip(got, want, needs, strict=True):
      if need:
        assert type(g) is type(w) and np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(g, w)
  assert not ad._plain_operands(ct, (x, number), (True, True))  # a number to differentiate
  assert not ad._plain_operands(ct, (x, 1j), (True, False))


def _counting_rules(monkeypatch):
  calls = []

  def counting(table):
    return {p: (lambda r, name: lambda *a, **k: calls.append(name) or r(*a, **k))(r, p.name)
            for p, r in table.items()}
  monkeypatch.setattr(ad, "eager_vjps", counting(ad.eager_vjps))
  monkeypatch.setattr(ad, "eager_transposes", counting(ad.eager_transposes))
  return calls


def _lstm_like(x, w):
  h = dnp.tanh(x * w[0] + w[1]) * dfdx.scipy.special.expit(x * w[2])
  return dnp.sum(dnp.log(dnp.exp(h) + 1.0) / dnp.sqrt(w[3] * w[3] + 1.0) - dnp.sin(h))


def _mixture_like(means, x, w):
  """Broadcast operands, reshapes, a sum of squares over an axis and full reductions."""
  z = x[None, :, :] - means[:, :, None]
  inner = w[:, None] - 0.5 * dnp.sum(z ** 2, axis=1) / (1.0 + w[:, None] ** 2)
  mx = dfdx.stop_gradient(dnp.max(inner, axis=0, keepdims=True))
  return dnp.sum(dnp.log(dnp.sum(dnp.exp(inner - mx), axis=0)) + mx[0]) + dnp.sum(z ** 3)


@pytest.mark.parametrize("f,shapes", [(_lstm_like, [(14,), (4, 14)]),
                                      (_mixture_like, [(4, 3), (3, 20), (4,)])],
                         ids=["lstm", "mixture"])
def test_a_gradient_uses_them_and_matches_the_general_rules(f, shapes, rng, monkeypatch):
  args = [rng.normal(size=shape) for shape in shapes]
  argnums = tuple(range(len(args)))
  with monkeypatch.context() as m:
    m.setattr(ad, "eager_vjps", {})
    m.setattr(ad, "eager_transposes", {})
    plain = dfdx.grad(f, argnums)(*args)
  calls = _counting_rules(monkeypatch)
  got = dfdx.grad(f, argnums)(*args)
  for g, p in zip(got, plain, strict=True):
    np.testing.assert_array_equal(g, p)
  if f is _lstm_like:
    assert {"mul", "tanh", "logistic", "log", "exp", "sqrt", "sin", "div"} <= set(calls)
  else:
    assert {"sub", "mul", "integer_pow", "reduce_sum", "reshape", "div", "add"} <= set(calls)


def test_mixed_dtypes_and_complex_values_take_the_general_rules(rng, monkeypatch):
  calls = _counting_rules(monkeypatch)
  x, row = rng.normal(size=(3, 4)), rng.normal(size=4)
  g = dfdx.grad(lambda x, r: dnp.sum(x * r), (0, 1))(x, row)  # broadcast: the eager rule
  np.testing.assert_array_equal(g[0], np.broadcast_to(row, (3, 4)))
  np.testing.assert_array_equal(g[1], np.add.reduce(x, axis=0))
  assert "mul" in calls
  calls.clear()
  dfdx.grad(lambda x: dnp.sum(x * x.astype(np.float32)))(x)  # mixed dtypes
  z = rng.normal(size=4) + 1j * rng.normal(size=4)
  dfdx.grad(lambda z: dnp.real(dnp.sum(z * z)))(z)  # complex
  assert "mul" not in calls


def test_not_under_transformations_zero_absorbing_or_debug_nans(rng, monkeypatch):
  calls = _counting_rules(monkeypatch)
  x = rng.normal(size=5)
  f = lambda x: dnp.sum(dnp.sin(x) * x)  # noqa: E731
  hess = dfdx.hessian(f)(x)  # the inner reverse pass runs under forward mode
  h = np.diag(2 * np.cos(x) - x * np.sin(x))
  np.testing.assert_allclose(hess, h, rtol=1e-12, atol=1e-12)
  batched = dfdx.vmap(dfdx.grad(f))(np.stack([x, 2 * x]))
  np.testing.assert_allclose(batched[1], np.sin(2 * x) + 2 * x * np.cos(2 * x), rtol=1e-12)
  dfdx.jit(dfdx.grad(f))(x)
  assert calls == []
  with dfdx.debug_nans():
    dfdx.grad(f)(x)
  assert calls == []
  # the zero-absorbing chain rule (where's unselected branch holds inf * 0): the first pass
  # takes the rules, the second, zero-absorbing one must not
  absorbing = []
  calls_during = []
  run = ad.run_zero_absorbing

  def spy(f):
    absorbing.append(len(calls))
    out = run(f)
    calls_during.append(len(calls) - absorbing[-1])
    return out
  monkeypatch.setattr(ad, "run_zero_absorbing", spy)
  g = dfdx.grad(lambda x: dnp.sum(dnp.where(x > 0, dnp.sqrt(dnp.abs(x)), 0.0)))(
      np.array([0.0, 4.0]))
  np.testing.assert_array_equal(g, [0.0, 0.25])
  assert len(absorbing) == 1 and absorbing[0] > 0 and calls_during == [0]
  assert core.current_trace() is None


def test_second_derivatives_are_unchanged(rng):
  from dfdx.testing import check_grads
  x, w = rng.normal(size=6), rng.normal(size=(4, 6))
  check_grads(_lstm_like, (x, w), order=2, modes=("fwd", "rev"))


_SHAPES = [(), (4,), (3, 1), (1, 4), (3, 4), (2, 3, 4), (2, 1, 4)]


def _random_program(rng):
  """A random function of three arrays of broadcastable shapes: elementwise arithmetic,
  powers, sums over random axes (some kept) and reshapes, ending in a full sum."""
  shapes = [_SHAPES[i] for i in rng.integers(0, len(_SHAPES), 3)]
  steps = [(int(rng.integers(0, 8)), int(rng.integers(0, 3)), int(rng.integers(0, 3)))
           for _ in range(8)]

  def f(a, b, c):
    vals = [a, b, c]
    for kind, i, j in steps:
      x, y = vals[i % len(vals)], vals[j % len(vals)]
      if kind == 0:
        out = x + y
      elif kind == 1:
        out = x - y
      elif kind == 2:
        out = x * y
      elif kind == 3:
        out = x / (1.5 + y * y)
      elif kind == 4:
        out = x ** 2 + y ** 3
      elif kind == 5 and dnp.ndim(x):
        out = dnp.sum(x, axis=-1, keepdims=bool(i % 2))
      elif kind == 6 and dnp.ndim(x):
        out = dnp.reshape(x, (-1,))[:, None] * 0.5
      else:
        out = dnp.exp(-x * x) - y
      vals.append(out)
    return dnp.sum(vals[-1]) + dnp.sum(vals[-2] ** 2)
  return f, shapes


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_take_the_same_bits_with_and_without_the_eager_rules(seed,
                                                                              monkeypatch):
  rng = np.random.default_rng(seed)
  f, shapes = _random_program(rng)
  args = [rng.normal(size=s) for s in shapes]
  want = dfdx.grad(f, (0, 1, 2))(*args)
  with monkeypatch.context() as m:
    m.setattr(ad, "eager_vjps", {})
    m.setattr(ad, "eager_transposes", {})
    plain = dfdx.grad(f, (0, 1, 2))(*args)
  for g, p in zip(want, plain, strict=True):
    assert g.shape == p.shape and g.dtype == p.dtype
    np.testing.assert_array_equal(g, p)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (3, 4)])
def test_neg_transposes_like_the_general_rule(dtype, shape, rng):
  x = np.asarray(rng.normal(size=shape)).astype(dtype)
  ct = np.asarray(rng.normal(size=shape)).astype(dtype)
  want = _general(ew.neg_p, ct, None, [x], (True,))
  got = ad.eager_transposes[ew.neg_p](ct, ad.TapeTracer(ad.TapeTrace(), x.shape, x.dtype))
  _assert_same_bits(got, want, (True,))
