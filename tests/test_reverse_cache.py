"""Compiled reverse passes (dfdx/_src/reverse_cache.py): an eager gradient called again and
again with the same structure runs a compiled reverse pass, which gives the interpreted
pass's results bit for bit on new values; anything else is interpreted as before."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad, reverse_cache

_CHECK = reverse_cache._compile_and_check


def interpreted(fn, *args):
  previous, reverse_cache.enabled = reverse_cache.enabled, False
  try:
    return fn(*args)
  finally:
    reverse_cache.enabled = previous


def assert_same_bits(got, expected):
  got, expected = dfdx.tree.tree_leaves(got), dfdx.tree.tree_leaves(expected)
  assert len(got) == len(expected)
  for g, e in zip(got, expected):
    g, e = np.asarray(g), np.asarray(e)
    assert g.dtype == e.dtype and g.shape == e.shape
    np.testing.assert_array_equal(g, e)
    np.testing.assert_array_equal(np.signbit(g), np.signbit(e))


def mixture(params, x):
  """A small Gaussian mixture: gathers, broadcasts, a batched matmul, log-sum-exp."""
  means, log_scales, weights = params
  z = (x[None, :, :] - means[:, None, :]) * dnp.exp(-log_scales)[:, None, :]
  inner = weights[:, None] - 0.5 * dnp.sum(z ** 2, axis=2) - dnp.sum(log_scales, axis=1)[:, None]
  top = dnp.max(inner, axis=0)
  return dnp.sum(dnp.log(dnp.sum(dnp.exp(inner - dfdx.stop_gradient(top)), axis=0)) + top)


def mixture_data(rng, k=3, d=2, n=50):
  return (rng.normal(size=(k, d)), 0.1 * rng.normal(size=(k, d)), rng.normal(size=k)), \
      rng.normal(size=(n, d))


def test_a_training_loop_runs_the_compiled_pass_with_the_interpreted_bits(compiling, rng):
  vg = dfdx.value_and_grad(mixture)
  for step in range(6):  # new values each call: the pass is compiled, not its results
    params, x = mixture_data(rng)
    got = vg(params, x)
    assert_same_bits(got, interpreted(vg, params, x))
  assert compiling["compiled"] == 1
  assert compiling["differed"] == compiling["not staged"] == 0


def test_the_default_estimate_compiles_only_a_pass_called_often(compiling, rng, monkeypatch):
  monkeypatch.setattr(reverse_cache, "_compile_seconds_per_node", 1e-3)
  params, x = mixture_data(rng)
  grad = dfdx.grad(mixture)
  for _ in range(2):
    grad(params, x)
  assert sum(compiling.values()) == 0  # two calls do not repay a compilation
  (entry,) = [e for bucket in reverse_cache._entries.values() for e in bucket]
  assert entry.fn is None and entry.spent > 0
  entry.spent = 1e-3 * entry.nodes  # as if it had been interpreted that long
  grad(params, x)
  assert compiling["compiled"] == 1 and callable(entry.fn)


def test_constants_and_python_scalars_are_read_on_every_call(compiling, rng):
  def f(x, c, s):
    return dnp.sum(c * dnp.sin(x) ** 2) * s + s * dnp.sum(x)
  grad = dfdx.grad(f)
  for step in range(5):
    x, c, s = rng.normal(size=4), rng.normal(size=4), float(step + 1)
    got = grad(x, c, s)
    np.testing.assert_allclose(got, c * 2 * np.sin(x) * np.cos(x) * s + s, rtol=1e-14)
    assert_same_bits(got, interpreted(grad, x, c, s))
  assert compiling["compiled"] == 1


def test_structures_that_differ_only_in_wiring_or_parameters_are_told_apart(compiling, rng):
  # same primitives, shapes and dtypes: only which operand is reused, or the axis, differs
  fns = [lambda x, y: dnp.sum(x * y + x), lambda x, y: dnp.sum(x * y + y),
         lambda x, y: dnp.sum(dnp.cumsum(x, axis=0) * y),
         lambda x, y: dnp.sum(dnp.cumsum(x, axis=1) * y)]
  grads = [dfdx.grad(f, (0, 1)) for f in fns]
  for step in range(3):
    x, y = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    for g in grads:
      assert_same_bits(g(x, y), interpreted(g, x, y))
  assert compiling["compiled"] == len(fns)


def test_python_control_flow_keeps_each_path_its_own_pass(compiling, rng):
  def f(x):
    if x.sum() > 0:  # the forward is plain Python: a branch on a value is fine
      return dnp.sum(dnp.sin(x) * x)
    return dnp.sum(dnp.exp(x))
  grad = dfdx.grad(f)
  for step in range(8):
    x = rng.normal(size=5) + (1.0 if step % 2 else -1.0)
    expected = np.sin(x) + x * np.cos(x) if x.sum() > 0 else np.exp(x)
    np.testing.assert_allclose(grad(x), expected, rtol=1e-14)
  assert compiling["compiled"] == 2


def test_vjp_functions_and_shapes_make_their_own_entries(compiling, rng):
  for n in (3, 4):
    x = rng.normal(size=n)
    _, pullback = dfdx.vjp(lambda x: dnp.tanh(x) * x, x)
    for step in range(3):
      ct = rng.normal(size=n)
      (got,) = pullback(ct)
      np.testing.assert_allclose(got, ct * ((1 - np.tanh(x) ** 2) * x + np.tanh(x)),
                                 rtol=1e-14)
  assert compiling["compiled"] == 2


def test_a_nan_from_a_compiled_pass_is_redone_with_the_zero_absorbing_rule(compiling):
  grad = dfdx.grad(lambda x: dnp.sum(dnp.sqrt(x) * 0.0 + x))
  x = np.array([0.0, 1.0, 4.0])
  results = [grad(x) for _ in range(4)]  # sqrt'(0) * 0: the chain rule absorbs the zero
  assert compiling["compiled"] == 1
  for r in results:
    np.testing.assert_array_equal(r, [1.0, 1.0, 1.0])


def test_transformations_debug_checks_and_the_switch_keep_passes_interpreted(compiling, rng,
                                                                               monkeypatch):
  x = rng.normal(size=4)
  grad = dfdx.grad(lambda x: dnp.sum(dnp.sin(x) ** 3))
  for _ in range(3):
    xs = rng.normal(size=(2, 4))
    dfdx.jvp(dfdx.vmap(grad), (xs,), (xs,))  # a vmap inside jvp: not only vmaps around
    dfdx.jit(grad)(x)
    dfdx.jvp(grad, (x,), (x,))  # a reverse pass under jvp
  monkeypatch.setattr(ad, "debug_checks", True)
  for _ in range(3):
    grad(x)
  monkeypatch.setattr(ad, "debug_checks", False)
  monkeypatch.setattr(reverse_cache, "enabled", False)
  for _ in range(3):
    grad(x)
  assert sum(compiling.values()) == 0


def test_a_compiled_pass_that_would_differ_is_not_kept(compiling, rng, monkeypatch):
  check_at_once = reverse_cache._compile_and_check  # (the fixture's)

  def off_by_one_ulp(entry, lin, residuals, cotangents, expected, seconds, vmaps=None):
    expected = [np.nextafter(e, np.inf) for e in expected]
    return check_at_once(entry, lin, residuals, cotangents, expected, seconds, vmaps)
  monkeypatch.setattr(reverse_cache, "_compile_and_check", off_by_one_ulp)
  grad = dfdx.grad(lambda x: dnp.sum(dnp.cos(x) * x))
  x = rng.normal(size=3)
  for _ in range(4):
    np.testing.assert_array_equal(grad(x), -np.sin(x) * x + np.cos(x))
  assert compiling == {"compiled": 0, "differed": 1, "slower": 0, "not staged": 0}
  (entry,) = [e for bucket in reverse_cache._entries.values() for e in bucket]
  assert entry.fn is reverse_cache._INTERPRET


def test_structures_that_never_repeat_do_not_crowd_out_a_compiled_one(compiling, rng,
                                                                        monkeypatch):
  monkeypatch.setattr(reverse_cache, "_MAX_SEEN", 8)
  hot = dfdx.grad(lambda x: dnp.sum(dnp.sin(x) * x))
  x = rng.normal(size=3)
  for _ in range(3):
    hot(x)
  assert compiling["compiled"] == 1
  for n in range(1, 20):  # a new shape every call
    dfdx.grad(lambda x: dnp.sum(dnp.cos(x)))(rng.normal(size=n))
  assert reverse_cache._count <= 8
  hot(x)
  assert compiling["compiled"] == 1  # still compiled: not compiled again


def test_a_slower_compiled_pass_is_tried_again_then_given_up(compiling, rng, monkeypatch):
  def never_fast_enough(entry, lin, residuals, cotangents, expected, seconds, vmaps=None):
    _CHECK(entry, lin, residuals, cotangents, expected, -1.0, vmaps)
    entry.best = -1.0  # (its trial loses too)
    reverse_cache._compile_seconds_per_node = 0.0
  monkeypatch.setattr(reverse_cache, "_compile_and_check", never_fast_enough)
  grad = dfdx.grad(lambda x: dnp.sum(dnp.tanh(x) * x))
  x = rng.normal(size=3)
  # each try: two sightings, then the compiled pass on trial for its first runs
  for _ in range((2 + reverse_cache._TRIAL_RUNS - 1) * reverse_cache._TRIES + 2):
    np.testing.assert_allclose(grad(x), (1 - np.tanh(x) ** 2) * x + np.tanh(x), rtol=1e-14)
  assert compiling == {"compiled": 0, "differed": 0, "slower": reverse_cache._TRIES,
                       "not staged": 0}
  (entry,) = [e for bucket in reverse_cache._entries.values() for e in bucket]
  assert entry.fn is reverse_cache._INTERPRET


def test_a_compiled_pass_whose_first_run_is_slow_is_kept_after_its_trial(compiling, rng,
                                                                          monkeypatch):
  def slow_first_run(entry, lin, residuals, cotangents, expected, seconds, vmaps=None):
    _CHECK(entry, lin, residuals, cotangents, expected, -1.0, vmaps)  # (the first run loses)
    assert entry.trial is not None and entry.fn is None
    entry.best = float("inf")  # (and the next ones win)
  monkeypatch.setattr(reverse_cache, "_compile_and_check", slow_first_run)
  trial = reverse_cache._on_trial
  runs = []
  monkeypatch.setattr(reverse_cache, "_on_trial", lambda *a: runs.append(0) or trial(*a))
  vg = dfdx.value_and_grad(mixture)
  for _ in range(6):
    params, x = mixture_data(rng)
    assert_same_bits(vg(params, x), interpreted(vg, params, x))
  assert len(runs) == reverse_cache._TRIAL_RUNS - 1  # (the first run was the compiling call's)
  assert compiling["compiled"] == 1 and compiling["slower"] == 0
  (fn,) = _compiled_passes()


def test_tapes_with_other_kinds_of_nodes_stay_interpreted(compiling, rng):
  # a custom_vjp records its forward's residuals: a residual node, which is not compiled
  @dfdx.custom_vjp
  def clip(x):
    return x
  clip.defvjp(lambda x: (x, None), lambda _, ct: (dnp.clip(ct, -1.0, 1.0),))
  grad = dfdx.grad(lambda x: dnp.sum(clip(dnp.sin(x)) * 3.0))
  x = rng.uniform(0.5, 1.0, size=4)
  for _ in range(4):
    np.testing.assert_allclose(grad(x), np.cos(x), rtol=1e-14)
  assert sum(compiling.values()) == 0


def test_index_arrays_are_read_on_every_call(compiling, rng):
  def f(x, rows, cols):
    return dnp.sum(dnp.sin(x[rows, cols]) * x[:, cols[:2]].sum())
  grad = dfdx.grad(f)
  x = rng.normal(size=(4, 5))
  for step in range(5):
    rows, cols = rng.integers(0, 4, size=3), rng.integers(0, 5, size=3)
    got = grad(x, rows, cols)
    assert_same_bits(got, interpreted(grad, x, rows, cols))
    expected = np.zeros_like(x)
    np.add.at(expected, (rows, cols), np.cos(x[rows, cols]) * x[:, cols[:2]].sum())
    np.add.at(expected, (slice(None), cols[:2]), np.sin(x[rows, cols]).sum())
    np.testing.assert_allclose(got, expected, rtol=1e-13)
  assert compiling["compiled"] >= 1


# ---- donated residuals: buffers that only the tape holds -----------------------------------------
# Arrays of 32,768 float64s (256 KB): above reverse_cache.DONATE_MIN_BYTES.
_BIG = (128, 256)


def _compiled_passes():
  return [e.fn for bucket in reverse_cache._entries.values() for e in bucket if callable(e.fn)]


def _donations():
  """The sets of donated residual positions whose variant was kept, over all compiled passes."""
  return [d for fn in _compiled_passes() for d, v in fn.variants.items() if v is not fn]


def test_temporaries_of_the_forward_pass_lend_their_buffers_with_the_same_bits(compiling, rng):
  def f(x, y):
    t = x * y  # a temporary: only the sine's node holds it once f returns
    return dnp.sum(dnp.sin(t) * dnp.exp(y) + dnp.tanh(x) * x)
  vg = dfdx.value_and_grad(f, (0, 1))
  for step in range(5):
    x, y = rng.normal(size=_BIG), rng.normal(size=_BIG)
    x0, y0 = x.copy(), y.copy()
    got = vg(x, y)
    assert_same_bits(got, interpreted(vg, x, y))
    np.testing.assert_array_equal(x, x0)  # the caller's arrays are never written
    np.testing.assert_array_equal(y, y0)
  (fn,) = _compiled_passes()
  assert _donations(), fn.variants
  for donated, variant in fn.variants.items():  # (the residuals are its arguments v0, v1, ...)
    assert any(f"out=v{k})" in variant.__dfdx_source__ for k in donated)
    assert not any(f"out=v{k})" in fn.__dfdx_source__ for k in donated)
  np.testing.assert_allclose(got[1][0], np.cos(x * y) * np.exp(y) * y
                             + (1 - np.tanh(x) ** 2) * x + np.tanh(x), rtol=1e-13, atol=1e-14)


_W = np.random.default_rng(1).normal(size=_BIG)


def test_arrays_the_caller_can_reach_are_never_written(compiling, rng):
  # a global, a closure's array, the caller's input and a view of it, an aux output, the value
  # returned: each is a residual whose buffer the reverse pass could take (same shape, last
  # read there), and each is held by someone other than the tape
  scale = rng.normal(size=_BIG)
  w0, scale0 = _W.copy(), scale.copy()

  def f(x):
    flat = dnp.reshape(x, (-1,))                  # a view of the caller's x
    inner = dnp.tanh(x * _W) * scale
    return dnp.sum(dnp.sin(inner) + dnp.reshape(dnp.cos(flat), _BIG)), inner

  vg = dfdx.value_and_grad(f, has_aux=True)
  for step in range(5):
    x = rng.normal(size=_BIG)
    x0 = x.copy()
    (value, inner), grad = vg(x)
    assert_same_bits(((value, inner), grad), interpreted(vg, x))
    np.testing.assert_array_equal(inner, np.tanh(x0 * w0) * scale0)
    np.testing.assert_array_equal(x, x0)
  np.testing.assert_array_equal(_W, w0)
  np.testing.assert_array_equal(scale, scale0)
  # vector_grad's value: exp's output is also the residual its derivative reads
  vector_grad = dfdx.vector_grad(lambda x: dnp.exp(x) * 2.0, return_value=True)
  for step in range(4):
    x = rng.normal(size=_BIG)
    grad, value = vector_grad(x)
    np.testing.assert_array_equal(value, np.exp(x) * 2.0)
    np.testing.assert_array_equal(grad, np.exp(x) * 2.0)


def _square_of_a_temporary(x):
  t = dnp.tanh(x)
  return dnp.sum(dnp.sin(t * t))  # the product's two operands: one array, held twice


def _view_of_a_temporary(x):
  t = dnp.tanh(x)                    # read by the reverse pass (tanh's output)
  u = dnp.reshape(t, (-1,))          # a view of t: its base is held by t's node too
  return dnp.sum(dnp.sin(u)) + dnp.sum(t * x)


def _tanh_derivative(x):
  return 1 - np.tanh(x) ** 2


@pytest.mark.parametrize("f, derivative", [
    (_square_of_a_temporary,
     lambda x: np.cos(np.tanh(x) ** 2) * 2 * np.tanh(x) * _tanh_derivative(x)),
    (_view_of_a_temporary,
     lambda x: (np.cos(np.tanh(x)) + x) * _tanh_derivative(x) + np.tanh(x)),
], ids=["held twice", "a view of an array another residual holds"])
def test_temporaries_held_more_than_once_are_not_donated(compiling, rng, f, derivative):
  grad = dfdx.grad(f)
  for step in range(5):
    x = rng.normal(size=_BIG)
    got = grad(x)
    assert_same_bits(got, interpreted(grad, x))
  np.testing.assert_allclose(got, derivative(x), rtol=1e-13)


def test_a_vjp_pullback_called_again_reads_intact_residuals(compiling, rng):
  def f(x):
    t = dnp.tanh(x * 2.0)
    return dnp.sin(t) * t
  x = rng.normal(size=_BIG)
  _, pullback = dfdx.vjp(f, x)
  cts = [rng.normal(size=_BIG) for _ in range(2)]
  first = [pullback(ct) for ct in cts * 3]  # compiled at the second call
  assert compiling["compiled"] == 1 and not _donations()
  for a, b in zip(first, first[2:]):
    assert_same_bits(a, b)
  t = np.tanh(2.0 * x)
  np.testing.assert_allclose(first[-1][0], cts[1] * (np.cos(t) * t + np.sin(t)) * (1 - t ** 2)
                             * 2.0, rtol=1e-13)


def test_a_pass_compiles_a_bounded_number_of_donating_variants(compiling, rng, monkeypatch):
  kept = []

  def f(x, which):
    temps = [x * c for c in (1.0, 2.0, 3.0)]  # each a residual of its sine alone
    kept[:] = [temps[which]]  # the caller keeps one temporary: it is not donated
    return dnp.sum(dnp.sin(temps[0]) + dnp.sin(temps[1]) + dnp.sin(temps[2]))
  compile_pass, compiled = reverse_cache._compile, []

  def counting(*args, **kwargs):
    compiled.append(args[-1] if len(args) == 4 else ())
    return compile_pass(*args, **kwargs)
  monkeypatch.setattr(reverse_cache, "_compile", counting)
  monkeypatch.setattr(reverse_cache, "_MAX_VARIANTS", 2)
  grad = dfdx.grad(f)
  for which in (0, 1, 2, 0, 1, 2):
    for step in range(3):
      x = rng.normal(size=_BIG)
      assert_same_bits(grad(x, which), interpreted(grad, x, which))
  (fn,) = _compiled_passes()
  assert len(fn.variants) == 2 and len(_donations()) == 2
  assert len(compiled) == 3 and len({d for d in compiled if d}) == 2  # the pass, 2 variants


def test_a_donating_pass_that_would_differ_is_not_kept(compiling, rng, monkeypatch):
  compile_pass = reverse_cache._compile

  def wrong_when_donating(lin, residuals, cotangents, donated=(), **kwargs):
    fn = compile_pass(lin, residuals, cotangents, donated, **kwargs)
    if not donated:
      return fn

    def off(*args):
      return [np.nextafter(c, np.inf) for c in fn(*args)]
    off.large, off.variants, off.pattern = fn.large, fn.variants, fn.pattern
    return off
  monkeypatch.setattr(reverse_cache, "_compile", wrong_when_donating)
  grad = dfdx.grad(lambda x: dnp.sum(dnp.sin(dnp.tanh(x) * 3.0)))
  for step in range(5):
    x = rng.normal(size=_BIG)
    assert_same_bits(grad(x), interpreted(grad, x))
  (fn,) = _compiled_passes()
  assert fn.variants and not _donations() and compiling["differed"] == 1


# ---- reverse passes under vmap: per-example gradients, jacobian, vmap of jacobian -----------


def _batched_passes():
  return [fn for fn in _compiled_passes() if hasattr(fn, "out_dims")]


def test_per_example_gradients_run_a_compiled_batched_pass_with_the_interpreted_bits(
    compiling, rng):
  def loss(w, x):  # w shared, x one example: w's gradient varies over the batch, b's not
    w, b = w
    h = dnp.tanh(x @ w)
    return dnp.sum(h ** 2) + dnp.sum(dnp.sin(b) ** 2) + dnp.sum(x * x)
  per_example = dfdx.vmap(dfdx.grad(loss, (0, 1)), in_axes=(None, 0))
  for _ in range(5):
    w, xs = (rng.normal(size=(3, 4)), rng.normal(size=2)), rng.normal(size=(6, 3))
    got = per_example(w, xs)
    assert_same_bits(got, interpreted(per_example, w, xs))
    (gw, gb), gx = got
    assert gw.shape == (6, 3, 4) and gb.shape == (6, 2)  # b's gradient broadcast over the batch
    h = np.tanh(xs @ w[0])
    np.testing.assert_allclose(gw, xs[:, :, None] * (2 * h * (1 - h * h))[:, None, :],
                               rtol=1e-13)
    np.testing.assert_allclose(gb, np.broadcast_to(np.sin(2 * w[1]), (6, 2)), rtol=1e-14)
  assert compiling["compiled"] == 1 and compiling["differed"] == 0
  (fn,) = _batched_passes()
  assert fn.pattern == (True, True, True) and not fn.forward
  assert None in [d for dims in fn.out_dims for d in dims]  # (b's: not batched)


def test_jacobian_pulls_back_its_basis_through_a_compiled_pass(compiling, rng):
  def f(x, a):  # (fewer outputs than inputs: reverse mode)
    return dnp.stack([dnp.sum(dnp.exp(x[:2]) * a), dnp.sum(dnp.cumsum(x * dnp.cos(x)))])
  jac = dfdx.jacobian(f)
  for _ in range(4):
    x, a = rng.normal(size=5), rng.normal()
    got = jac(x, a)
    assert_same_bits(got, interpreted(jac, x, a))
    expected = [np.r_[np.exp(x[:2]) * a, 0, 0, 0],
                np.arange(5, 0, -1) * (np.cos(x) - x * np.sin(x))]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
  assert compiling["compiled"] == 1 and len(_batched_passes()) == 1


@pytest.mark.parametrize("in_axes", [0, 1])
def test_vmaps_of_jacobians_and_nested_vmaps_compile_with_their_batch_axes(compiling, rng,
                                                                           in_axes):
  def f(x, c):
    return dnp.stack([dnp.sum(dnp.sin(x) * c), x[0] * x[1] / (1 + x[2] ** 2)])
  jac = dfdx.vmap(dfdx.jacobian(f), in_axes=(in_axes, None))
  grad2 = dfdx.vmap(dfdx.vmap(dfdx.grad(lambda x, c: f(x, c)[1]), (0, None)), (in_axes, None))
  for _ in range(4):
    xs, c = rng.normal(size=(5, 3) if in_axes == 0 else (3, 5)), rng.normal(size=3)
    got = jac(xs, c)
    assert_same_bits(got, interpreted(jac, xs, c))
    x = xs if in_axes == 0 else xs.T
    np.testing.assert_allclose(got[:, 0], np.cos(x) * c, rtol=1e-14)
    np.testing.assert_allclose(got[:, 1, 2], -2 * x[:, 2] * x[:, 0] * x[:, 1]
                               / (1 + x[:, 2] ** 2) ** 2, rtol=1e-13)
    many = np.stack([xs] * 2, axis=1) if in_axes == 0 else np.stack([xs.T] * 2)
    assert_same_bits(grad2(many, c), interpreted(grad2, many, c))
  assert compiling["compiled"] == 2 and len(_batched_passes()) == 2


def test_jacfwd_and_hessian_push_the_basis_through_a_compiled_forward_pass(compiling, rng):
  def f(x):
    return dnp.concatenate([dnp.sin(x) * x[0], dnp.cumsum(dnp.exp(x))[1:] / (1 + x @ x)])
  jac = dfdx.jacfwd(f)
  hess = dfdx.hessian(lambda x: dnp.sum(dnp.sin(x) ** 3) * x[1])
  outer = dfdx.vmap(dfdx.jacfwd(f), in_axes=1)
  for _ in range(4):
    x, xs = rng.normal(size=3), rng.normal(size=(3, 4))
    got = jac(x)
    assert_same_bits(got, interpreted(jac, x))
    expected = np.diag(np.cos(x) * x[0])
    expected[:, 0] += np.sin(x)
    np.testing.assert_allclose(got[:3], expected, rtol=1e-14)
    got = hess(x)
    assert_same_bits(got, interpreted(hess, x))
    s, c = np.sin(x), np.cos(x)
    expected = np.diag((6 * s * c * c - 3 * s ** 3) * x[1])
    expected[1] += 3 * s * s * c
    expected[:, 1] += 3 * s * s * c
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    assert_same_bits(outer(xs), interpreted(outer, xs))
  # three forward passes (jacfwd's, hessian's outer one, and jacfwd's under a vmap of its
  # own); hessian's inner reverse pass runs under the outer linearization: interpreted
  assert [fn.forward for fn in _batched_passes()] == [True] * 3
  assert compiling["compiled"] == 3 and compiling["differed"] == 0


def _rotated_projection(p, x):
  """A small per-example function of many steps (the shape of bundle adjustment's)."""
  y = x * dnp.cos(p[0]) + dnp.cross(p[:3], x) * dnp.sin(p[1]) + p[3:6]
  return y[:2] / y[2] * (1 + p[6] * dnp.sum(y[:2] ** 2))


@pytest.mark.parametrize("batch", [2048, 40000])
def test_a_large_batch_of_small_problems_runs_with_the_batch_axis_last(compiling, rng, batch):
  jac = dfdx.vmap(dfdx.jacobian(_rotated_projection, (0, 1)))
  for _ in range(3):
    ps, xs = rng.normal(size=(batch, 7)), rng.normal(size=(batch, 3)) + [0, 0, 5]
    assert_same_bits(jac(ps, xs), interpreted(jac, ps, xs))
  (fn,) = _batched_passes()
  assert fn.batch_last
  # a batch of two chunks' worth or more (tiling.py: each chunk's widest intermediate about
  # 2 MB) runs chunk by chunk; slices' cotangents are pads along the other axes
  tiles = getattr(fn, "tiles", None)
  assert tiles is None if batch == 2048 else (tiles[0] == batch and tiles[2] >= 2)


def test_a_pass_whose_moved_batch_axis_would_differ_is_compiled_without_the_move(
    compiling, rng, monkeypatch):
  comparisons = []
  real = reverse_cache._identical
  monkeypatch.setattr(reverse_cache, "_identical",
                      lambda got, expected: bool(comparisons.append(0) or len(comparisons) > 1)
                      and real(got, expected))
  jac = dfdx.vmap(dfdx.jacobian(_rotated_projection, (0, 1)))
  for _ in range(3):
    ps, xs = rng.normal(size=(2048, 7)), rng.normal(size=(2048, 3)) + [0, 0, 5]
    assert_same_bits(jac(ps, xs), interpreted(jac, ps, xs))
  assert len(comparisons) == 2
  assert compiling["differed"] == 1 and compiling["compiled"] == 1
  (fn,) = _batched_passes()
  assert not fn.batch_last


# ---- rolled reverse passes: the tapes of Python loops ------------------------------------------


def recurrence(params, xs, steps, skip=None):
  """An RNN written as a Python loop: the weights are indexed once before it (read by every
  iteration), the inputs are constants indexed each step, the state is carried, and
  optionally a state two steps back is read too."""
  w, u, b = params[0], params[1], params[2]
  h = dnp.tanh(b)
  history = [h, h]
  total = 0.0
  for t in range(steps):
    pre = w * h + u * xs[t] + (0.5 * history[-2] if skip else 0.0)
    h = dnp.tanh(pre) * dnp.exp(-0.1 * h)
    history.append(h)
    total = total + dnp.sum(h ** 2) / (t + 1)  # a Python scalar changing every step
  return total + dnp.sum(dnp.sin(h))


@pytest.mark.parametrize("skip", [False, True])
def test_a_python_loops_tape_runs_block_by_block_with_the_interpreted_bits(rolling, rng, skip):
  vg = dfdx.value_and_grad(recurrence)
  for step in range(4):  # new values each call
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    got = vg(params, xs, 40, skip)
    assert_same_bits(got, interpreted(vg, params, xs, 40, skip))
  assert rolling["compiled"] == 1 and rolling["differed"] == rolling["not staged"] == 0
  plan = rolling["rolled"][-1]
  assert plan.blocks >= 30 and plan.period * plan.blocks <= len(plan.lin.eqns)
  # and against finite differences, through the rolled pass
  params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
  g = dfdx.grad(recurrence)(params, xs, 40, skip)
  e = np.zeros_like(params)
  e[1, 2] = 1e-6
  fd = (recurrence(params + e, xs, 40, skip) - recurrence(params - e, xs, 40, skip)) / 2e-6
  np.testing.assert_allclose(g[1, 2], fd, rtol=1e-6)


def test_a_loop_whose_body_changes_rolls_only_the_part_that_repeats(rolling, rng):
  def f(params, xs):
    h = params[0]
    for t in range(40):
      h = dnp.tanh(h * params[1] + xs[t])
      if t == 25:  # one iteration does more
        h = h * dnp.cos(h)
      if t >= 30:  # and the last ones read a constant of another shape
        h = h + dnp.sum(xs[t:t + 2] * 0.01, axis=0)
    return dnp.sum(h ** 2)
  vg = dfdx.value_and_grad(f)
  for _ in range(3):
    params, xs = rng.normal(size=(2, 5)), rng.normal(size=(42, 5))
    assert_same_bits(vg(params, xs), interpreted(vg, params, xs))
  plan = rolling["rolled"][-1]
  assert plan.blocks < 40 and rolling["compiled"] == 1


def test_short_loops_transformations_and_debug_checks_are_interpreted(rolling, rng,
                                                                        monkeypatch):
  params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
  grad = dfdx.grad(recurrence)
  for _ in range(3):
    grad(params, xs, 6)  # a tape of 6 iterations: compiled whole, not rolled
  assert not rolling["rolled"]
  jitted = dfdx.jit(grad, static_argnums=(2, 3))
  batched = dfdx.vmap(grad, in_axes=(0, None, None, None))
  for _ in range(3):
    np.testing.assert_allclose(jitted(params, xs, 40, None), grad(params, xs, 40), rtol=1e-12)
    batched(np.stack([params, params]), xs, 40, None)
  monkeypatch.setattr(ad, "debug_checks", True)
  rolled_before = len(rolling["rolled"])
  grad(params, xs, 40)
  assert len(rolling["rolled"]) == rolled_before


def test_a_loop_that_does_not_repeat_is_interpreted(rolling, rng):
  def f(x):  # a different primitive in every step: no period
    ops = [dnp.sin, dnp.cos, dnp.tanh, dnp.exp, dnp.log1p, dnp.arctan, dnp.sinh]
    for t in range(40):
      x = ops[(t * t) % 7](x * 0.5)
    return dnp.sum(x)
  grad = dfdx.grad(f)
  x = rng.uniform(0.1, 0.5, 4)
  for _ in range(3):
    assert_same_bits(grad(x), interpreted(grad, x))
  assert not rolling["rolled"] and rolling["compiled"] == 0


def test_a_rolled_pass_that_is_slower_is_tried_again_then_given_up(rolling, rng, monkeypatch):
  monkeypatch.setattr(reverse_cache, "_slower", lambda seconds, interpreted: True)
  vg = dfdx.value_and_grad(recurrence)
  for _ in range(8):
    params, xs = rng.normal(size=(3, 6)), rng.normal(size=(40, 6))
    assert_same_bits(vg(params, xs, 40), interpreted(vg, params, xs, 40))
  assert rolling["slower"] == reverse_cache._TRIES and rolling["compiled"] == 0
  assert len(reverse_cache._rolled_refused) == 1


def test_parameters_that_repeat_every_few_iterations_roll_in_blocks_of_those(rolling, rng):
  def f(p, x):
    for t in range(40):
      x = dnp.sin(x * p[t % 3]) + x[::-1] * 0.1  # p[t % 3]: a gather at a new constant index
    return dnp.sum(x)
  vg = dfdx.value_and_grad(f, (0, 1))
  for _ in range(3):
    p, x = rng.normal(size=3), rng.normal(size=5)
    assert_same_bits(vg(p, x), interpreted(vg, p, x))
  plan = rolling["rolled"][-1]
  assert plan.period % 3 == 0 and plan.blocks >= 10 and rolling["compiled"] == 1


def test_a_loop_after_a_long_stretch_of_other_work_is_found(rolling, rng):
  ops = [dnp.sin, dnp.cos, dnp.tanh, dnp.arctan, dnp.sinh]
  order = np.random.default_rng(7).integers(0, 5, 200)  # no period

  def f(p, x):
    x = x + p[1]  # (so that the work before the loop is recorded too)
    for k in order:
      x = ops[k](x * 0.5)
    for t in range(60):
      x = dnp.tanh(x * p[0] + p[1])
    return dnp.sum(x)
  vg = dfdx.value_and_grad(f)
  for _ in range(3):
    p, x = rng.normal(size=(2, 4)), rng.normal(size=4)
    assert_same_bits(vg(p, x), interpreted(vg, p, x))
  plan = rolling["rolled"][-1]
  assert plan.start >= 200 * 2 and plan.blocks >= 50 and rolling["compiled"] == 1


def test_equations_after_the_loop_that_read_its_last_blocks_get_their_cotangents_there(
    rolling, rng):
  def f(p, x):
    for t in range(40):
      side = dnp.sin(x)  # read by nothing in the loop
      x = dnp.tanh(x * p[0] + p[1])
    # the last iteration's `side`, read only by equations recorded from JVP rules (not nodes)
    return dnp.sum(dnp.arctan(side) * dnp.sinh(x))
  vg = dfdx.value_and_grad(f)
  for _ in range(3):
    p, x = rng.normal(size=(2, 4)), rng.normal(size=4)
    assert_same_bits(vg(p, x), interpreted(vg, p, x))
  assert rolling["rolled"] and rolling["compiled"] == 1


def _bodies():
  """Loop bodies (state, parameters, step, the step's input) -> state, of many primitives."""
  return {
      "matmul and broadcast": lambda h, p, t, x: dnp.tanh(p[:4, :4] @ h + p[4, :4] * x),
      "where and comparisons": lambda h, p, t, x: dnp.where(h > 0.2, h * p[0, :4],
                                                             dnp.exp(h) - 1.0)
      + 0.01 * p[0, :4],
      "reductions with axes": lambda h, p, t, x: dnp.tanh(
          h - 0.1 * dnp.mean(h ** 2, keepdims=True) + dnp.max(p[:2, :4], axis=0) * x),
      "concatenate and slices": lambda h, p, t, x: dnp.concatenate(
          [dnp.sin(h[2:] * p[1, :2]), dnp.cos(h[:2]) + x[:2]]),
      "indexing by step": lambda h, p, t, x: dnp.tanh(h * p[t % 4, :4] + x),
      "powers and division": lambda h, p, t, x: h / (1.0 + h ** 2) + p[2, :4] ** 3 * x,
      "stop_gradient": lambda h, p, t, x: dnp.tanh(h + dfdx.stop_gradient(h) * p[3, :4])
      + 0.1 * x,
      "einsum": lambda h, p, t, x: dnp.einsum("i,ij->j", h, p[:4, :4]) * 0.3 + x,
      "cumsum and flip": lambda h, p, t, x: dnp.cumsum(h[::-1] * p[1, :4]) * 0.2 + x,
      # (elementwise primitives whose VJP rules are derived from their JVP rules)
      # (+ 0.01 (p[2] + p[3]): no entry masked in every step, see the test after this one)
      "clip, maximum and log1p": lambda h, p, t, x: dnp.clip(h * p[3, :4], -0.5, 0.5)
      + dnp.log1p(dnp.maximum(h, 0.0) * p[2, :4] ** 2) + 0.01 * (p[2, :4] + p[3, :4]) + x,
  }


def _loop(body, steps=60):
  def f(p, xs):
    h = dnp.tanh(p[5, :4])
    for t in range(steps):
      h = body(h, p, t, xs[t])
    return dnp.sum(h * dnp.arange(1.0, 5.0))
  return f


@pytest.mark.parametrize("name", sorted(_bodies()))
def test_many_kinds_of_loop_bodies_roll_with_the_interpreted_bits(rolling, rng, name):
  f = _loop(_bodies()[name])
  vg = dfdx.value_and_grad(f)
  for _ in range(3):
    p, xs = rng.normal(size=(6, 4)) * 0.5, rng.normal(size=(60, 4))
    assert_same_bits(vg(p, xs), interpreted(vg, p, xs))
  assert rolling["rolled"] and rolling["compiled"] == 1, rolling
  p, xs = rng.normal(size=(6, 4)) * 0.5, rng.normal(size=(60, 4))
  e = np.zeros_like(p)
  e[1, 2] = 1e-6
  fd = (f(p + e, xs) - f(p - e, xs)) / 2e-6
  np.testing.assert_allclose(vg(p, xs)[1][1, 2], fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("body,outcome", [
    # cumprod's derivative is recorded from its JVP rule, not as a node: no block is made of it
    (lambda h, p, t, x: dnp.tanh(dnp.cumprod(h * p[3, :4] + 1.0)) + x, "not rolled"),
    # entries of p[0] that `where` masks in every step get -0.0 from the rolled pass and +0.0
    # from the interpreter (which sums the slices' cotangents last): the check refuses it
    (lambda h, p, t, x: dnp.where(h > 0.2, h * p[0, :4], dnp.exp(h) - 1.0), "differed"),
])
def test_loops_that_do_not_roll_are_interpreted(rolling, rng, body, outcome):
  vg = dfdx.value_and_grad(_loop(body))
  for _ in range(3):
    p, xs = rng.normal(size=(6, 4)) * 0.5, rng.normal(size=(60, 4))
    assert_same_bits(vg(p, xs), interpreted(vg, p, xs))
  assert rolling["compiled"] == 0
  assert rolling["differed"] == (outcome == "differed")


def test_elementwise_primitives_with_only_a_jvp_rule_record_one_node_each(rng):
  # (their VJP rules are derived from the JVP rules: ops/elementwise.py, derive_vjps)
  from dfdx.scipy import special
  x = rng.uniform(0.1, 0.9, 5)
  fns = [lambda x: dnp.maximum(x, 0.5), lambda x: dnp.log1p(x), lambda x: dnp.arctan2(x, 0.3),
         lambda x: special.erf(x), lambda x: dnp.clip(x, 0.2, 0.7), lambda x: dnp.hypot(x, x)]
  for f in fns:
    (out,), lin = ad.linearize_flat(lambda x: [f(x)], [x])
    assert lin.eqns and all(type(e) is ad._Node for e in lin.eqns), lin.eqns  # (clip: two)
    ct = rng.normal(size=out.shape)
    (got,) = lin.transpose([ct])
    (want,) = ad.Linearized(lin.eqns, lin.in_vars, lin.out_vars).transpose([ct])
    np.testing.assert_array_equal(got, want)
    jac = dfdx.jacfwd(f)(x)  # forward mode, from the JVP rule itself
    np.testing.assert_allclose(got, jac.T @ ct, rtol=1e-14)


# ---- results proved free of NaN ---------------------------------------------------------------


def _dense_loss(params, x, y):
  w1, w2 = params
  z = dnp.tanh(x @ w1) @ w2
  return dnp.log(dnp.sum(dnp.exp(z))) - z[y]


def _full_reads(monkeypatch):
  """The sizes of the arrays `ad.holds_nan` reads whole, from now on."""
  reads, real = [], ad.holds_nan

  def spy(tree):
    if isinstance(tree, np.ndarray) and tree.dtype.kind in "fc" and \
        not ad.proved_nan_free(tree):
      reads.append(tree.size)
    return real(tree)
  monkeypatch.setattr(ad, "holds_nan", spy)
  return reads


def test_per_example_outer_products_are_proved_free_of_nan_by_their_factors(
    compiling, rng, monkeypatch):
  per_example = dfdx.vmap(dfdx.grad(_dense_loss), in_axes=(None, 0, 0))
  params, xs, ys = (rng.normal(size=(8, 16)), rng.normal(size=(16, 3))), \
      rng.normal(size=(40, 8)), rng.integers(0, 3, 40)
  want = interpreted(per_example, params, xs, ys)
  for _ in range(3):
    got = per_example(params, xs, ys)
  reads = _full_reads(monkeypatch)
  got = per_example(params, xs, ys)
  assert_same_bits(got, want)
  (fn,) = _batched_passes()
  # w1's gradient (40 x 8 x 16 entries, from factors of 40 x 8 and 40 x 16) is not read
  # again; w2's (40 x 16 x 3, from 40 x 16 and 40 x 3: too large a share) is
  assert fn.certificates[0] is not None and fn.certificates[1] is None
  assert 40 * 8 * 16 not in reads and 40 * 16 * 3 in reads, reads
  assert not ad.nan_free  # (emptied when the call returns)


def test_an_infinite_factor_leaves_the_result_to_the_nan_check(compiling, rng, monkeypatch):
  """inf * 0 is NaN: with an infinite input the product is read, its NaN found, and the
  gradient computed again with the zero-absorbing chain rule, as interpreted."""
  per_example = dfdx.vmap(dfdx.grad(_dense_loss), in_axes=(None, 0, 0))
  params, xs, ys = (rng.normal(size=(8, 16)), rng.normal(size=(16, 3))), \
      rng.normal(size=(40, 8)), rng.integers(0, 3, 40)
  for _ in range(3):
    per_example(params, xs, ys)
  (fn,) = _batched_passes()
  assert fn.certificates[0] is not None
  xs[2, 1] = np.inf
  reads = _full_reads(monkeypatch)
  got = per_example(params, xs, ys)
  assert 40 * 8 * 16 in reads
  assert_same_bits(got, interpreted(per_example, params, xs, ys))


def test_sums_of_products_and_slices_are_not_proved(rng):
  from dfdx._src.ir import Var
  from dfdx._src.passes import optimize
  a, b = rng.normal(size=(20, 5)), rng.normal(size=(5, 30))

  def certificates(f, *args):
    program = optimize(dfdx.make_expr(f)(*args).program, evaluate_only=True)
    found, extended = reverse_cache._nan_certificates(program)
    assert all(isinstance(o, Var) for o in extended.outs)
    return found
  assert certificates(lambda a, b: a[:, :, None] * b[None, :, :], a, b) is not None
  assert certificates(lambda a, b: a[:, :2] @ b[:2], a, b) is None  # a sum: inf - inf is NaN
  assert certificates(lambda a, b: a[:, :2, None] * b[None, :2], a, b) is not None
  assert certificates(lambda a: a[:, :, None] * a[:, None, :] + 1.0, a) is None
  assert certificates(lambda a: a * a, a) is None  # factors as large as the product


def test_a_proof_covers_only_an_array_a_result_is_all_of():
  big = np.full(10, np.nan)
  part = big[:4]
  part[:] = 1.0  # a result that is a slice: the array it views holds NaNs elsewhere
  whole = np.ones((2, 3))
  try:
    outs = reverse_cache._certify([part, whole.T, np.zeros(2), 5.0], [np.ones(2)],
                                  [[("in", 0)], [("in", 0)], None], 3)
    assert len(outs) == 3
    assert not ad.proved_nan_free(big) and ad.proved_nan_free(whole)
    assert not ad.holds_nan(whole.T) and ad.holds_nan(big)
    ad.nan_free.clear()
    reverse_cache._certify([whole], [np.array([1.0, np.inf])], [[("in", 0)]], 1)
    assert not ad.proved_nan_free(whole)  # an infinite factor proves nothing
  finally:
    ad.nan_free.clear()


def test_jitted_outer_products_are_proved_free_of_nan_too(rng, monkeypatch):
  per_example = dfdx.vmap(dfdx.grad(_dense_loss), in_axes=(None, 0, 0))
  jitted = dfdx.jit(per_example)
  params, xs, ys = (rng.normal(size=(8, 16)), rng.normal(size=(16, 3))), \
      rng.normal(size=(40, 8)), rng.integers(0, 3, 40)
  jitted(params, xs, ys)  # (compiled: the next call takes the direct path)
  want = per_example(params, xs, ys)
  reads = _full_reads(monkeypatch)
  got = jitted(params, xs, ys)
  assert reads == [40 * 16 * 3], reads  # w2's gradient only
  assert not ad.nan_free
  np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
  xs[2, 1] = np.inf  # the factor check fails: the product is read, its NaN found, and the
  want = per_example(params, xs, ys)  # zero-absorbing chain rule runs, as without the proof
  del reads[:]
  got = jitted(params, xs, ys)
  assert 40 * 8 * 16 in reads
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-13)


def test_a_block_whose_constant_input_becomes_a_traced_one_ends_the_periodic_part(rolling,
                                                                                  rng):
  # In one call the step's input is, in one iteration, an output of a primitive with
  # several outputs (a variable with no place on the tape), where the other iterations read
  # a constant (no tangent): that iteration's block does not repeat the others.
  def f(p, xs, traced_at):
    h = dnp.tanh(p[0])
    traced = dnp.linalg.eigh(dnp.diag(p[0]) + 0.1)[0]  # (before the loop)
    for t in range(40):
      h = dnp.tanh(h * p[1] + (traced if t == traced_at else xs[t]))
    return dnp.sum(h ** 2)
  vg = dfdx.value_and_grad(f)
  for traced_at in (-1, -1, -1, 20, -1):
    p, xs = rng.normal(size=(2, 3)), rng.normal(size=(40, 3))
    assert_same_bits(vg(p, xs, traced_at), interpreted(vg, p, xs, traced_at))
  assert rolling["compiled"] == 1


def scaled_recurrence(p, xs, scales):
  """A loop over the steps of `scales`, whose entries are constants: arrays or numbers."""
  h = dnp.tanh(p[0])
  for t in range(len(scales)):
    h = dnp.tanh(h * scales[t] + xs[t] * p[1])
  return dnp.sum(h ** 2)


@pytest.mark.parametrize("late", ["shape", "dtype", "type"])
def test_a_block_whose_constant_has_another_shape_dtype_or_type_ends_the_periodic_part(
    rolling, rng, late):
  vg = dfdx.value_and_grad(scaled_recurrence)
  for _ in range(3):
    p, xs = rng.normal(size=(2, 3)), rng.normal(size=(60, 3))
    scales = [rng.normal(size=3) for _ in range(60)]
    # from step 40 on, a constant of another shape, dtype or type (the values broadcast and
    # multiply as before)
    scales[40:] = [{"shape": s[:1], "dtype": s.astype(np.float32), "type": float(s[0])}[late]
                   for s in scales[40:]]
    assert_same_bits(vg(p, xs, scales), interpreted(vg, p, xs, scales))
  plan = rolling["rolled"][-1]
  period = plan.period
  assert plan.end <= plan.start + (40 + 1) * period and plan.blocks >= 20


def test_a_compiled_pass_keeps_its_bits_on_every_call_through_a_small_broadcast(compiling,
                                                                                 rng):
  # The cotangent of outer(x, x) is reduce_sum's transpose, a small broadcast that the impl
  # writes out; np.dot sums a row of a broadcast view in another order, so compiled code
  # that kept the view differed in the last bit on about half of the calls (not always on
  # the call that compiled it).
  w = np.arange(1.0, 5.0)
  grad = dfdx.grad(lambda x: dnp.sum(dnp.outer(x, x).sum(axis=0) * w))
  for _ in range(60):
    x = rng.normal(size=4) * 10.0 ** rng.integers(-3, 3)
    assert_same_bits(grad(x), interpreted(grad, x))
  assert compiling["compiled"] == 1
