"""The reverse pass of eager code on plain NumPy arrays (ad.eager_vjps): every rule gives
what the primitive's general VJP rule (or transpose) gives, bit for bit, and is used only
where it applies (float arrays of one shape, no transformation current, neither the
zero-absorbing chain rule nor debug_nans on)."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad, core
from dfdx._src.ops import elementwise as ew

_ARITY = {ew.add_p: 2, ew.sub_p: 2, ew.mul_p: 2, ew.div_p: 2}
_POSITIVE = {ew.log_p, ew.sqrt_p}  # defined on positive operands


def _operands(prim, rng, shape, dtype):
  n = _ARITY.get(prim, 1)
  xs = [rng.normal(size=shape).astype(dtype) for _ in range(n)]
  if prim in _POSITIVE:
    xs = [np.abs(x) + dtype(0.5) for x in xs]
  if prim is ew.div_p:
    xs[1] = xs[1] + np.sign(xs[1]).astype(dtype)  # away from 0
  return xs


def _general(prim, ct, ans, primals, needs):
  """What the reverse pass computes without the eager rule: the VJP rule, or the transpose
  of a linear primitive (its operands standing in for the tangents)."""
  if prim.linear:
    tape = ad.TapeTrace()
    args = [ad.TapeTracer(tape, p.shape, p.dtype) if need else p
            for p, need in zip(primals, needs)]
    return ad.primitive_transposes[prim](ct, *args)
  return ad.primitive_vjps[prim](ct, ans, *primals, needs=needs)


def test_every_primitive_with_an_eager_rule_is_covered():
  assert set(ad.eager_vjps) == {ew.add_p, ew.sub_p, ew.neg_p, ew.mul_p, ew.div_p, ew.sqrt_p,
                                ew.exp_p, ew.log_p, ew.logistic_p, ew.sin_p, ew.cos_p,
                                ew.tanh_p}


@pytest.mark.parametrize("prim", sorted(ad.eager_vjps, key=lambda p: p.name), ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (14,), (3, 5)])
def test_eager_rules_give_the_general_rules_bits(prim, dtype, shape, rng):
  primals = _operands(prim, rng, shape, dtype)
  ans = prim.impl(*primals)
  ct = rng.normal(size=shape).astype(dtype)
  if prim is ew.logistic_p:  # both tails, where 1 - s would cancel
    primals[0].flat[0] = 40.0
  for needs in ([(True,)] if len(primals) == 1 else [(True, True), (True, False), (False, True)]):
    want = _general(prim, ct, ans, primals, needs)
    got = ad.eager_vjps[prim](ct, ans, *primals, needs=needs)
    for g, w, need in zip(got, want, needs, strict=True):
      if need:
        w = np.asarray(w)
        assert type(g) is np.ndarray or np.isscalar(g) or g.shape == ()
        assert np.asarray(g).dtype == w.dtype and np.shape(g) == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("prim", [ew.add_p, ew.sub_p, ew.mul_p, ew.div_p], ids=str)
@pytest.mark.parametrize("number", [2, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_python_numbers_and_numpy_scalars_take_them_too(prim, number, dtype, rng):
  """A Python number operand (not differentiated) and NumPy scalar cotangents (what a full
  reduction's cotangent is): the same values as the general rules."""
  x = dtype(rng.normal() + 3.0)
  ct = dtype(rng.normal())
  for primals, needs in (((x, number), (True, False)), ((number, x), (False, True))):
    assert ad._plain_float_arrays(ct, primals, needs)
    ans = prim.impl(*primals)
    want = _general(prim, ct, ans, list(primals), needs)
    got = ad.eager_vjps[prim](ct, ans, *primals, needs=needs)
    for g, w, need in zip(got, want, needs, strict=True):
      if need:
        assert type(g) is type(w) and np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(g, w)
  assert not ad._plain_float_arrays(ct, (x, number), (True, True))  # a number to differentiate
  assert not ad._plain_float_arrays(ct, (x, 1j), (True, False))
  assert not ad._plain_float_arrays(np.complex128(1), (x, x), (True, True))


def _counting_rules(monkeypatch):
  calls = []
  rules = {p: (lambda r, name: lambda *a, **k: calls.append(name) or r(*a, **k))(r, p.name)
           for p, r in ad.eager_vjps.items()}
  monkeypatch.setattr(ad, "eager_vjps", rules)
  return calls


def _lstm_like(x, w):
  h = dnp.tanh(x * w[0] + w[1]) * dfdx.scipy.special.expit(x * w[2])
  return dnp.sum(dnp.log(dnp.exp(h) + 1.0) / dnp.sqrt(w[3] * w[3] + 1.0) - dnp.sin(h))


def test_a_gradient_uses_them_and_matches_the_general_rules(rng, monkeypatch):
  import dfdx.scipy.special  # noqa: F401
  x, w = rng.normal(size=14), rng.normal(size=(4, 14))
  want = dfdx.grad(_lstm_like, (0, 1))
  with monkeypatch.context() as m:
    m.setattr(ad, "eager_vjps", {})
    plain = want(x, w)
  calls = _counting_rules(monkeypatch)
  got = dfdx.grad(_lstm_like, (0, 1))(x, w)
  for g, p in zip(got, plain):
    np.testing.assert_array_equal(g, p)
  assert {"mul", "tanh", "logistic", "log", "exp", "sqrt", "sin", "div"} <= set(calls)


def test_broadcasting_mixed_dtypes_and_complex_values_take_the_general_rules(rng, monkeypatch):
  calls = _counting_rules(monkeypatch)
  x, row = rng.normal(size=(3, 4)), rng.normal(size=4)
  g = dfdx.grad(lambda x, r: dnp.sum(x * r), (0, 1))(x, row)  # broadcast
  np.testing.assert_allclose(g[0], np.broadcast_to(row, (3, 4)))
  np.testing.assert_allclose(g[1], x.sum(0))
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
