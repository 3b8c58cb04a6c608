"""dfdx.scan and dfdx.fori_loop: the Python loop outside jit, one `scan` equation under it, and
the primitive's rules (JVP, transpose, batching) under every composition. The spec table
(tests/specs/control.py) checks the primitive's derivatives against finite differences to
second order, both modes; these tests check the API, the compositions and the errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src.ops.control_flow import _scan
from dfdx.testing import check_grads


def staged_scan(f, init, xs=None, length=None, reverse=False):
  return _scan(f, init, xs, length, reverse, staged=True)


def _rnn(scan):
  """A small recurrent loss: a pair carry, a closed-over weight, per-step outputs."""
  def loss(w, u, xs):
    def step(carry, x):
      h, s = carry
      h = dnp.tanh(w * h + u * x)
      return (h, s + dnp.sum(h * x)), h ** 2
    (h, s), ys = scan(step, (dnp.zeros_like(u), 0.0), xs)
    return dnp.sum(h) + s + dnp.sum(ys)
  return loss


@pytest.fixture
def rnn_args(rng):
  return (rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(-1, 1, (6, 3)))


def test_scan_is_the_python_loop(rng):
  xs = rng.normal(size=(5, 2))
  carry, ys = dfdx.scan(lambda c, x: (c * 0.5 + x, dnp.sum(c * x)), np.ones(2), xs)
  c, expected = np.ones(2), []
  for x in xs:
    expected.append(np.sum(c * x))
    c = c * 0.5 + x
  np.testing.assert_allclose(carry, c, rtol=1e-15)
  np.testing.assert_allclose(ys, expected, rtol=1e-15)
  assert isinstance(ys, np.ndarray) and ys.shape == (5,)


@pytest.mark.parametrize("reverse", [False, True])
def test_jit_matches_the_loop(rng, reverse):
  xs = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=(4,))}

  def f(c, xs):
    return dfdx.scan(lambda c, x: ((c[0] + x["a"] * x["b"], c[1] * 2),
                                   {"y": c[0] - x["a"], "z": (x["b"],)}),
                     (c, 1.0), xs, reverse=reverse)
  c = rng.normal(size=3)
  eager, jitted = f(c, xs), dfdx.jit(f)(c, xs)
  for a, b in zip(dfdx.tree.tree_leaves(eager), dfdx.tree.tree_leaves(jitted)):
    np.testing.assert_allclose(a, b, rtol=1e-14)
  assert isinstance(jitted[1]["z"], tuple) and jitted[1]["z"][0].shape == (4,)


def test_reverse_keeps_ys_in_place():
  xs = np.arange(4.0)
  for scan in (dfdx.scan, staged_scan):
    carry, ys = scan(lambda c, x: (c + x, c), 0.0, xs, reverse=True)
    np.testing.assert_array_equal(ys, [6.0, 5.0, 3.0, 0.0])  # ys[i] is the carry before xs[i]
    assert carry == 6.0


@pytest.mark.parametrize("argnums", [0, 1, 2, (0, 1, 2)])
def test_gradients_agree_in_every_form(rnn_args, argnums):
  eager = dfdx.grad(_rnn(dfdx.scan), argnums)(*rnn_args)
  for g in (dfdx.grad(_rnn(staged_scan), argnums)(*rnn_args),
            dfdx.jit(dfdx.grad(_rnn(dfdx.scan), argnums))(*rnn_args),
            dfdx.grad(dfdx.jit(_rnn(dfdx.scan)), argnums)(*rnn_args)):
    for a, b in zip(dfdx.tree.tree_leaves(eager), dfdx.tree.tree_leaves(g)):
      np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_check_grads_second_order_under_jit(rnn_args):
  check_grads(dfdx.jit(_rnn(dfdx.scan)), rnn_args, order=2, modes=("fwd", "rev"))
  check_grads(_rnn(staged_scan), rnn_args, order=2, modes=("fwd", "rev"))


def test_hessians_and_jacobians(rnn_args):
  w, u, xs = rnn_args
  expected = dfdx.hessian(_rnn(dfdx.scan))(w, u, xs)
  for h in (dfdx.jit(dfdx.hessian(_rnn(dfdx.scan)))(w, u, xs),
            dfdx.jacrev(dfdx.jacrev(_rnn(staged_scan)))(w, u, xs),
            dfdx.jacfwd(dfdx.jacfwd(_rnn(staged_scan)))(w, u, xs)):
    np.testing.assert_allclose(h, expected, rtol=1e-10, atol=1e-12)
  # d ys / d xs of a cumulative sum is lower triangular ones.
  jac = dfdx.jit(dfdx.jacrev(lambda xs: dfdx.scan(lambda c, x: (c + x, c + x), 0.0, xs)[1]))
  np.testing.assert_array_equal(jac(np.ones(4)), np.tril(np.ones((4, 4))))


def test_linearize_and_vjp(rnn_args):
  w, u, xs = rnn_args
  f = lambda w: _rnn(staged_scan)(w, u, xs)  # noqa: E731
  value, jvp_fn = dfdx.linearize(f, w)
  v = np.array([0.3, -1.0, 2.0])
  expected = dfdx.jvp(_rnn(dfdx.scan), (w, u, xs), (v, 0 * u, 0 * xs))[1]
  np.testing.assert_allclose(jvp_fn(v), expected, rtol=1e-12)
  _, vjp_fn = dfdx.vjp(f, w)
  np.testing.assert_allclose(vjp_fn(1.0)[0], dfdx.grad(_rnn(dfdx.scan))(w, u, xs), rtol=1e-12)


@pytest.mark.parametrize("in_axes", [(0, None, None), (None, None, 0), (None, 0, 1),
                                     (0, 0, 0)])
def test_vmap(rng, in_axes):
  w, u, xs = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(-1, 1, (6, 3))
  args = [w, u, xs]
  batched = []
  for a, ax in zip(args, in_axes):
    batched.append(a if ax is None else np.stack([a * (1 + 0.1 * k) for k in range(4)], ax))
  per_example = [[a if ax is None else np.take(b, k, ax) for a, b, ax in
                  zip(args, batched, in_axes)] for k in range(4)]
  for fn in (_rnn(staged_scan), dfdx.jit(_rnn(dfdx.scan)), dfdx.grad(_rnn(staged_scan)),
             dfdx.jit(dfdx.grad(_rnn(dfdx.scan)))):
    out = dfdx.vmap(fn, in_axes)(*batched)
    np.testing.assert_allclose(out, np.stack([fn(*e) for e in per_example]), rtol=1e-12)


def test_vmap_of_reverse_scan_with_unbatched_carry(rng):
  xs = rng.normal(size=(3, 5))   # batch of 3 sequences of 5 steps (the batch axis first)

  def f(xs):
    return staged_scan(lambda c, x: (c * 0.9 + x, c), 1.0, xs, reverse=True)
  carry, ys = dfdx.vmap(f)(xs)
  for k in range(3):
    c, y = f(xs[k])
    np.testing.assert_allclose(carry[k], c, rtol=1e-15)
    np.testing.assert_allclose(ys[k], y, rtol=1e-15)


def test_nested_scans(rng):
  xs = rng.uniform(-1, 1, (3, 4))

  def f(w, xs):
    def outer(c, row):
      inner, _ = dfdx.scan(lambda d, x: (dnp.sin(d * w + x), None), c, row)
      return inner, inner * c
    return dnp.sum(dfdx.scan(outer, 0.5, xs)[1])
  expected = dfdx.grad(f)(0.8, xs)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(0.8, xs), expected, rtol=1e-12)
  # Forward mode over the inner scan's JVP (one equation with primal and tangent outputs):
  # the primal outputs stay unbatched by jacfwd's vmap over the tangent basis.
  np.testing.assert_allclose(dfdx.jacfwd(dfdx.jit(f))(0.8, xs), expected, rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.hessian(f))(0.8, xs), dfdx.hessian(f)(0.8, xs),
                             rtol=1e-11)
  check_grads(dfdx.jit(f), (0.8, xs), order=2)


def test_fori_loop():
  power = lambda x: dfdx.fori_loop(0, 5, lambda i, v: v * x + i, 1.0)  # noqa: E731
  expected = 1.0
  for i in range(5):
    expected = expected * 1.5 + i
  assert power(1.5) == expected
  np.testing.assert_allclose(dfdx.jit(power)(1.5), expected, rtol=1e-15)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(power))(1.5), dfdx.grad(power)(1.5), rtol=1e-14)
  check_grads(dfdx.jit(power), (1.5,), order=2)
  assert dfdx.fori_loop(3, 3, lambda i, v: v + 1, 7.0) == 7.0


def test_jit_program_does_not_grow_with_the_length():
  def f(w, xs):
    return dnp.sum(dfdx.scan(lambda c, x: (dnp.tanh(c * w + x), c), 0.0, xs)[1])
  sizes = []
  for n in (4, 400):
    expr = dfdx.make_expr(dfdx.value_and_grad(f))(0.5, np.ones(n))
    sizes.append(str(expr).count("\n"))
    assert "scan[" in str(expr)
  assert sizes[0] == sizes[1]


def test_python_number_init_takes_the_carry_dtype(rng):
  xs = rng.normal(size=3).astype(np.float32)
  f = lambda xs: dfdx.scan(lambda c, x: (c + x, c), 0.0, xs)  # noqa: E731
  for carry, ys in (f(xs), dfdx.jit(f)(xs)):
    assert carry.dtype == np.float32 and ys.dtype == np.float32
    np.testing.assert_allclose(carry, xs.sum(), rtol=1e-6)


def test_integer_outputs_are_not_differentiated():
  def f(x, xs):
    (count, total), flags = dfdx.scan(
        lambda c, v: ((c[0] + 1, c[1] + v * x), v > 0), (0, 0.0), xs)
    return total * count + dnp.sum(flags)
  xs = np.array([1.0, -2.0, 3.0])
  assert dfdx.jit(f)(2.0, xs) == f(2.0, xs) == (2.0 * 2) * 3 + 2
  assert dfdx.jit(dfdx.grad(f))(2.0, xs) == dfdx.grad(f)(2.0, xs) == 2 * 3


def test_empty_scan():
  carry, ys = dfdx.scan(lambda c, x: (c + x, c * x), np.ones(2), np.zeros((0, 2)))
  np.testing.assert_array_equal(carry, np.ones(2))
  assert ys.shape == (0, 2) and ys.dtype == np.float64
  g = dfdx.grad(lambda c: dnp.sum(dfdx.scan(lambda c, x: (c * x, c), c, np.zeros((0, 2)))[0]))
  np.testing.assert_array_equal(g(np.ones(2)), np.ones(2))


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scan", [dfdx.scan, staged_scan], ids=["loop", "staged"])
def test_carry_errors(scan):
  xs = np.ones((3, 2))
  with pytest.raises(TypeError, match="structure of init"):
    scan(lambda c, x: ((c, c), x), np.zeros(2), xs)
  with pytest.raises(TypeError, match=r"shapes and dtypes.*float64\[2\].*float64\[\]"):
    scan(lambda c, x: (dnp.sum(c * x), x), np.zeros(2), xs)
  with pytest.raises(TypeError, match=r"int64\[2\].*float64\[2\]"):
    scan(lambda c, x: (c + x, x), np.zeros(2, np.int64), xs)
  with pytest.raises(TypeError, match=r"pair \(carry, y\)"):
    scan(lambda c, x: c + x, np.zeros(2), xs)


@pytest.mark.parametrize("jit", [False, True])
def test_fori_and_while_carry_errors_eagerly_as_under_jit(jit):
  # (a NumPy carry whose dtype the body changes: the Python loop raises as jit does)
  wrap = dfdx.jit if jit else (lambda f: f)
  f32 = np.float32(0.0)
  with pytest.raises(TypeError, match=r"must keep init.*float32\[\].*float64\[\]"):
    wrap(lambda x: dfdx.fori_loop(0, 2, lambda i, c: c * 0.5 + dnp.exp(x), f32))(0.0)
  with pytest.raises(TypeError, match=r"must keep init_val.*float32\[\].*float64\[\]"):
    wrap(lambda x: dfdx.while_loop(lambda c: c < 1, lambda c: c + dnp.exp(x), f32))(0.0)
  with pytest.raises(TypeError, match="structure of init"):
    wrap(lambda x: dfdx.fori_loop(0, 2, lambda i, c: (c, c), x))(0.0)


def test_input_errors():
  f = lambda c, x: (c, x)  # noqa: E731
  with pytest.raises(ValueError, match=r"leading axes.*\[2, 3\]"):
    dfdx.scan(f, 0.0, (np.ones(3), np.ones((2, 1))))
  with pytest.raises(ValueError, match=r"leading axes.*\[3, 4\]"):
    dfdx.scan(f, 0.0, np.ones(3), length=4)
  with pytest.raises(ValueError, match="pass length="):
    dfdx.scan(f, 0.0, None)
  with pytest.raises(ValueError, match="needs a leading axis"):
    dfdx.scan(f, 0.0, 1.0)
  with pytest.raises(TypeError, match="length must be"):
    dfdx.scan(f, 0.0, length=2.5)
  with pytest.raises(TypeError, match="f must be a function"):
    dfdx.scan(3, 0.0, np.ones(2))
  with pytest.raises(TypeError, match="unroll must be a positive integer"):
    dfdx.scan(f, 0.0, np.ones(2), unroll=0)


def test_unroll_is_accepted_and_changes_nothing():
  xs = np.arange(5.0)
  step = lambda c, x: (c * 0.5 + x, c)  # noqa: E731
  expected = dfdx.scan(step, 1.0, xs)
  for unroll in (2, True):
    for got in (dfdx.scan(step, 1.0, xs, unroll=unroll),
                dfdx.jit(lambda xs: dfdx.scan(step, 1.0, xs, unroll=unroll))(xs)):
      np.testing.assert_array_equal(got[1], expected[1])
  assert dfdx.fori_loop(0, 3, lambda i, v: v + i, 0.0, unroll=3) == 3.0


def test_fori_loop_bounds_must_be_concrete():
  with pytest.raises(dfdx.ConcretizationError, match="upper is a traced value"):
    dfdx.jit(lambda n: dfdx.fori_loop(0, n, lambda i, v: v + 1.0, 0.0))(3)
  with pytest.raises(TypeError, match="lower must be an integer"):
    dfdx.fori_loop(0.5, 3, lambda i, v: v, 0.0)


def test_exported_source_is_standalone(rng):
  """to_source writes each body out as a function of its own (nested scans too): the source
  runs with NumPy alone and gives dfdx's values."""
  xs = rng.uniform(0.1, 1, (3, 4))

  def f(w, xs):
    def outer(c, row):
      inner, _ = dfdx.scan(lambda d, x: (dnp.sin(d * w + x), None), c, row)
      return inner, inner * dnp.sqrt(row[0])
    return dnp.sum(dfdx.scan(outer, 0.5, xs, reverse=True)[1])
  for fn in (f, dfdx.grad(f), dfdx.hessian(f)):
    source = dfdx.export.to_source(fn, 0.8, xs, name="exported")
    assert "_dfdx_impl" not in source and "import dfdx" not in source
    namespace = {}
    exec(source, namespace)
    np.testing.assert_allclose(namespace["exported"](0.8, xs), fn(0.8, xs), rtol=1e-13)


def test_compiled_code_never_writes_into_a_carry_passed_through():
  # The final carry is the input itself (the body returns it unchanged): code after the scan
  # must not reuse it as a buffer.
  def f(c, xs):
    carry, ys = dfdx.scan(lambda c, x: (c, c * x), c, xs)
    return carry + ys[0] + 1.0
  c, xs = np.ones(3), np.arange(6.0).reshape(2, 3)
  out = dfdx.jit(f)(c, xs)
  np.testing.assert_array_equal(c, np.ones(3))
  np.testing.assert_array_equal(out, 1 + xs[0] + 1)


def test_to_sympy_unrolls_the_steps():
  sp = pytest.importorskip("sympy")
  w = sp.Symbol("w", real=True)
  poly = lambda w: dfdx.fori_loop(0, 3, lambda i, v: v * w + i, 1.0)  # noqa: E731
  assert sp.simplify(dfdx.export.to_sympy(poly, 0.5) - (w ** 3 + w + 2)) == 0
  assert sp.simplify(dfdx.export.to_sympy(dfdx.grad(poly), 0.5) - (3 * w ** 2 + 1)) == 0


def test_nested_control_flow_splits_and_the_recomputing_fallback_agrees(rng, monkeypatch):
  from dfdx._src.ops import control_flow
  xs = rng.uniform(0, 1, (3, 4))

  def f(w, xs):
    def outer(c, row):
      inner, _ = dfdx.scan(lambda d, x: (dnp.sin(d * w + x), None), c, row)
      c2 = dfdx.while_loop(lambda v: v[1] < 3, lambda v: (v[0] * w + 0.1, v[1] + 1),
                           (inner, 0))[0]
      return dfdx.cond(c2 > 0.5, lambda z: z * w, lambda z: z - w, c2), inner * c
    return dnp.sum(dfdx.scan(outer, 0.5, xs)[1])
  expected = dfdx.grad(f)(0.8, xs)  # the Python loops
  calls = []
  recompute = control_flow._recomputing_scan
  monkeypatch.setattr(control_flow, "_recomputing_scan",
                      lambda *a, **k: calls.append(1) or recompute(*a, **k))
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(0.8, xs), expected, rtol=1e-13)
  assert not calls  # the nested scan, while and cond split: the body's JVP splits
  monkeypatch.setattr(control_flow, "_partial_eval", lambda *a: None)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(0.8, xs), expected, rtol=1e-13)
  assert calls


# ---- known disagreements of jit with eager, kept here until fixed ------------------------------


def test_a_python_float_carry_that_a_ufunc_makes_float64_eagerly():
  xs = np.ones((3, 2), dtype=np.float32)
  f = lambda xs: dfdx.scan(lambda c, x: (dnp.sum(x * dnp.exp(c)), c), 0.0, xs)
  assert [np.asarray(o).dtype for o in dfdx.tree.tree_leaves(dfdx.jit(f)(xs))] == \
      [np.asarray(o).dtype for o in dfdx.tree.tree_leaves(f(xs))]


def test_jit_of_vmap_of_grad_through_a_python_float_carry():
  def f(a1):
    def b0(c, x):
      return c + dnp.tanh(-c) * 0.1, (x * x, c * 2.0)
    c0, (y1, _) = dfdx.scan(b0, 0.0, a1)

    def b1(carry, x):
      c, d = carry
      t = dnp.broadcast_to(0.572 + c, (2,))
      n0 = (c * dnp.cos(dnp.sum(x)) * dnp.sin(dnp.sum(x) + 1.0)
            + dnp.tanh(dnp.sum(t) * 0.211) * 0.1)
      return (n0, dnp.tanh(d * 0.3 + d)), 0.572 + c
    (c1, _), _ = dfdx.scan(b1, (c0, y1), y1)
    return dnp.sum(c1)
  xs = np.random.default_rng(0).uniform(-2, 2, (3, 3, 3)).astype(np.float32)
  vg = dfdx.vmap(dfdx.grad(f))
  np.testing.assert_allclose(dfdx.jit(vg)(xs), vg(xs), rtol=1e-5)


# ---- checkpoint= -----------------------------------------------------------------------------


def _ckpt_step(c, x):
  h, s = c
  h = dnp.tanh(h * x + 0.3 * s)
  return (h, s + dnp.sum(h)), {"twice": h * 2.0}


def _ckpt_loss(xs, h0, checkpoint, reverse=False):
  (h, s), ys = dfdx.scan(_ckpt_step, (h0, 0.0), xs, reverse=reverse, checkpoint=checkpoint)
  return dnp.sum(h) + s + dnp.sum(ys["twice"] * dnp.arange(ys["twice"].shape[0])[:, None])


@pytest.mark.parametrize("steps", [1, 5, 9, 17])
@pytest.mark.parametrize("reverse", [False, True])
def test_checkpoint_keeps_values_and_derivatives(steps, reverse):
  rng = np.random.default_rng(steps)
  xs, h0 = rng.normal(size=(steps, 3)), rng.normal(size=3)
  expected = _ckpt_loss(xs, h0, None, reverse)
  grads = dfdx.grad(_ckpt_loss, (0, 1))(xs, h0, None, reverse)
  jitted = dfdx.jit(dfdx.grad(_ckpt_loss, (0, 1)), static_argnums=(2, 3))
  for checkpoint in (True, 1, 2, 4, 100):  # (the blocks, and the steps left after them)
    assert _ckpt_loss(xs, h0, checkpoint, reverse) == pytest.approx(expected, rel=1e-14)
    for got in (dfdx.grad(_ckpt_loss, (0, 1))(xs, h0, checkpoint, reverse),
                jitted(xs, h0, checkpoint, reverse)):
      for a, b in zip(got, grads):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_checkpoint_second_order_vmap_and_no_xs():
  rng = np.random.default_rng(0)
  xs, h0 = rng.normal(size=(7, 3)), rng.normal(size=3)
  check_grads(lambda xs, h0: _ckpt_loss(xs, h0, 3), (xs, h0), order=2)
  check_grads(dfdx.jit(lambda xs, h0: _ckpt_loss(xs, h0, True, True)), (xs, h0), order=2)
  batch = np.stack([h0, 2 * h0])
  np.testing.assert_allclose(dfdx.vmap(lambda h: _ckpt_loss(xs, h, 2))(batch),
                             [_ckpt_loss(xs, h, None) for h in batch], rtol=1e-14)
  orbit = lambda c0, k: dfdx.scan(lambda c, _: (dnp.sin(c) * 1.1, c), c0, None, length=10,
                                  checkpoint=k)
  np.testing.assert_allclose(orbit(0.5, 3)[1], orbit(0.5, None)[1], rtol=1e-15)
  assert dfdx.grad(lambda c: orbit(c, 3)[0])(0.5) == pytest.approx(
      dfdx.grad(lambda c: orbit(c, None)[0])(0.5), rel=1e-14)


def test_checkpoint_stacks_only_carries_under_jit():
  block = lambda c, _: (c + 0.1 * dnp.sum(dnp.tanh(c[:, None] * c[None, :]), axis=1), None)

  def stacked_shapes(checkpoint):
    loss = lambda x: dnp.sum(dfdx.scan(block, x, None, length=9, checkpoint=checkpoint)[0])
    program = dfdx.make_expr(dfdx.grad(loss), optimize=True)(np.linspace(-1, 1, 4)).program
    return [v.aval.shape for e in program.eqns if e.prim.name == "scan" for v in e.outputs]
  assert (9, 4, 4) in stacked_shapes(None)  # every step's 4 x 4 internals
  assert [s for s in stacked_shapes(3) if len(s) > 1] == [(3, 4)]  # one carry per 3 steps


def test_fori_loop_takes_checkpoint_as_scan_does():
  # the same values and derivatives, eager and jitted, and one carry per k steps under jit
  x = np.linspace(-1.0, 1.0, 4)
  body = lambda i, c: c + 0.1 * dnp.sum(dnp.tanh(c[:, None] * c[None, :] + i), axis=1)  # noqa: E731

  def loss(x, checkpoint=None):
    return dnp.sum(dfdx.fori_loop(0, 9, body, x, checkpoint=checkpoint) ** 2)
  want = dfdx.grad(loss)(x)
  for checkpoint in (True, 3):
    g = dfdx.grad(lambda x: loss(x, checkpoint))
    for h in (g, dfdx.jit(g)):
      np.testing.assert_allclose(h(x), want, rtol=1e-14)
  program = dfdx.make_expr(dfdx.grad(lambda x: loss(x, 3)), optimize=True)(x).program
  stacked = [v.aval.shape for e in program.eqns if e.prim.name == "scan" for v in e.outputs]
  assert [s for s in stacked if len(s) > 1] == [(3, 4)]


def test_checkpoint_argument_is_checked():
  with pytest.raises(TypeError, match="checkpoint must be None, True or a positive number"):
    dfdx.scan(_ckpt_step, (np.ones(3), 0.0), np.ones((4, 3)), checkpoint=0)
  with pytest.raises(TypeError, match="checkpoint must be"):
    dfdx.scan(_ckpt_step, (np.ones(3), 0.0), np.ones((4, 3)), checkpoint=2.5)
