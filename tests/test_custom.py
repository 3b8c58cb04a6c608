"""custom_jvp, custom_vjp and checkpoint: the custom rules are what every transformation uses
(to any order, under vmap and jit), closures over traced values need no conversion by the
user, a custom_vjp works in forward mode through its transposed backward rule, and
checkpointed blocks keep only their inputs for the backward pass."""
import functools

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad
from dfdx.testing import check_grads


# A function whose custom derivative is deliberately not its true derivative, so tests can
# tell which rule ran: f(x) = sin(x), "f'(x)" = 2 cos(x).
@dfdx.custom_jvp
def fake_sin(x):
  return dnp.sin(x)


@fake_sin.defjvp
def _fake_sin_jvp(primals, tangents):
  (x,), (x_dot,) = primals, tangents
  return fake_sin(x), 2.0 * dnp.cos(x) * x_dot


@dfdx.custom_vjp
def fake_sin_vjp(x):
  return dnp.sin(x)


fake_sin_vjp.defvjp(lambda x: (dnp.sin(x), x), lambda x, ct: (2.0 * dnp.cos(x) * ct,))

X = np.array([0.2, 0.5, 0.9])


@pytest.mark.parametrize("f", [fake_sin, fake_sin_vjp], ids=["custom_jvp", "custom_vjp"])
def test_custom_rule_is_used_by_every_transformation(f):
  expected = 2 * np.cos(X)
  scalar = lambda x: dnp.sum(f(x))
  np.testing.assert_allclose(dfdx.grad(scalar)(X), expected)
  np.testing.assert_allclose(dfdx.jvp(f, (X,), (np.ones(3),))[1], expected)
  np.testing.assert_allclose(dfdx.jacfwd(f)(X), np.diag(expected))
  np.testing.assert_allclose(dfdx.jacrev(f)(X), np.diag(expected))
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(lambda x: f(x)))(X), expected)
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(dfdx.vmap(f)(x)))(X), expected)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(scalar))(X), expected)
  np.testing.assert_allclose(dfdx.grad(dfdx.jit(scalar))(X), expected)
  np.testing.assert_allclose(f(X), np.sin(X))
  with ad.use_vjp_rules(False):
    np.testing.assert_allclose(dfdx.grad(scalar)(X), expected)


@pytest.mark.parametrize("f", [fake_sin, fake_sin_vjp], ids=["custom_jvp", "custom_vjp"])
def test_second_derivatives_differentiate_the_rule(f):
  # d/dx of the rule 2 cos(x) is -2 sin(x).
  np.testing.assert_allclose(dfdx.hessian(lambda x: dnp.sum(f(x)))(X), np.diag(-2 * np.sin(X)))
  np.testing.assert_allclose(dfdx.grad(dfdx.grad(lambda x: f(x)))(0.4), -2 * np.sin(0.4))


def test_custom_jvp_pytrees_and_nondiff_argnums():
  @functools.partial(dfdx.custom_jvp, nondiff_argnums=(0,))
  def scaled(power, p):
    return {"out": p["a"] ** power * p["b"]}

  @scaled.defjvp
  def _(power, primals, tangents):
    (p,), (t,) = primals, tangents
    out = scaled(power, p)
    return out, {"out": power * p["a"] ** (power - 1) * p["b"] * t["a"]
                 + p["a"] ** power * t["b"]}
  p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
  g = dfdx.grad(lambda p: dnp.sum(scaled(3, p)["out"]))(p)
  np.testing.assert_allclose(g["a"], 3 * p["a"] ** 2 * p["b"])
  np.testing.assert_allclose(g["b"], p["a"] ** 3)
  check_grads(lambda a, b: scaled(2, {"a": a, "b": b})["out"], (p["a"], p["b"]), order=2)


def test_custom_vjp_pytrees_residuals_and_none_cotangents():
  @dfdx.custom_vjp
  def combine(p, q):
    return p["x"] * q, dnp.sum(q)

  def fwd(p, q):
    return combine(p, q), {"x": p["x"], "q": q}

  def bwd(res, cts):
    ct_prod, ct_sum = cts
    return {"x": dnp.sum(ct_prod * res["q"])}, ct_prod * res["x"] + ct_sum
  combine.defvjp(fwd, bwd)
  p, q = {"x": np.array(2.0)}, np.array([1.0, 3.0])
  check_grads(lambda x, q: combine({"x": x}, q), (p["x"], q), order=2)

  @dfdx.custom_vjp
  def only_first(a, b):
    return a * b
  only_first.defvjp(lambda a, b: (a * b, b), lambda b, ct: (ct * b, None))
  assert dfdx.grad(only_first, (0, 1))(2.0, 3.0) == (3.0, 0.0)


def test_closures_over_traced_values_need_no_conversion():
  def outer(c):
    @dfdx.custom_jvp
    def times_c(x):
      return x * c

    @times_c.defjvp
    def _(p, t):
      return times_c(p[0]), t[0] * c
    return dnp.sum(times_c(X))
  # The derivative in the closed-over c comes from differentiating the function itself.
  np.testing.assert_allclose(dfdx.grad(outer)(2.0), np.sum(X))
  np.testing.assert_allclose(dfdx.hessian(lambda c: outer(c) * c)(2.0), 2 * np.sum(X))

  def outer_vjp(c):
    @dfdx.custom_vjp
    def times_c(x):
      return x * c
    times_c.defvjp(lambda x: (x * c, None), lambda r, ct: (ct * c,))
    return dnp.sum(times_c(X) ** 2)
  np.testing.assert_allclose(dfdx.grad(outer_vjp)(2.0), 2 * 2.0 * np.sum(X ** 2))
  np.testing.assert_allclose(dfdx.jvp(outer_vjp, (2.0,), (1.0,))[1], 4.0 * np.sum(X ** 2))


def test_custom_vjp_in_forward_mode_transposes_the_backward_rule():
  # A gradient clipper: the identity, whose backward rule clips the cotangent. Forward mode
  # transposes the (linear) backward rule.
  @dfdx.custom_vjp
  def double_grad(x):
    return x
  double_grad.defvjp(lambda x: (x, None), lambda r, ct: (2.0 * ct,))
  assert dfdx.jvp(double_grad, (1.0,), (3.0,))[1] == 6.0
  np.testing.assert_allclose(dfdx.jacfwd(double_grad)(X), 2 * np.eye(3))


def test_seed_001_stable_ratio_with_a_custom_vjp():
  @dfdx.custom_vjp
  def new_div(x, y):
    return x / y

  def new_div_fwd(x, y):
    return x / y, (x, y)

  def new_div_bwd(res, g):
    x, y = res
    return g / y, -((x / y) / y) * g
  new_div.defvjp(new_div_fwd, new_div_bwd)
  assert dfdx.grad(lambda b: -new_div(1e-200, b))(1e-200) == pytest.approx(1e200)
  for a in (1e-100, 1e-250):
    assert np.isfinite(dfdx.grad(lambda b: new_div(a, b))(a))
    assert dfdx.grad(lambda b: -new_div(a, b))(a) == pytest.approx(1 / a)


def test_custom_functions_errors():
  @dfdx.custom_jvp
  def no_rule(x):
    return x
  with pytest.raises(TypeError, match="has no rule"):
    dfdx.grad(no_rule)(1.0)

  @dfdx.custom_vjp
  def bad_bwd(x):
    return x
  bad_bwd.defvjp(lambda x: (x, None), lambda r, ct: ct)
  with pytest.raises(TypeError, match="custom_vjp function bad_bwd: its bwd `<lambda>` must "
                                      "return a tuple"):
    dfdx.grad(bad_bwd)(1.0)


# ---- checkpoint -------------------------------------------------------------------------------

def block(x):
  return dnp.tanh(dnp.sin(x) * dnp.exp(x / 4))


def test_checkpoint_values_and_derivatives_are_unchanged():
  cb = dfdx.checkpoint(block)
  np.testing.assert_allclose(cb(X), block(X))
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(cb(cb(x))))(X),
                             dfdx.grad(lambda x: dnp.sum(block(block(x))))(X), rtol=1e-14)
  check_grads(cb, (X,), order=2)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(lambda x: cb(x)))(X),
                             dfdx.vmap(dfdx.grad(block))(X))
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(lambda x: dnp.sum(cb(x))))(X),
                             dfdx.grad(lambda x: dnp.sum(block(x)))(X))


def test_checkpoint_of_a_python_number():
  # The block's input is a Python float (a loop's first carry, say); its cotangent is not
  # wanted, the closed-over w's is.
  g = dfdx.grad(lambda w: dfdx.checkpoint(lambda c: dnp.sin(c * w))(0.1))(0.5)
  np.testing.assert_allclose(g, 0.1 * np.cos(0.05), rtol=1e-15)


def test_checkpoint_keeps_only_inputs_and_recomputes_in_the_backward_pass():
  calls = []

  def counted(x):
    calls.append(1)
    return block(x)
  cb = dfdx.checkpoint(counted)
  outs, lin = ad.linearize_flat(lambda x: [dnp.sum(cb(x))], [X])
  # One node for the whole block (its internals are not on the tape).
  assert [e.prim.name for e in lin.eqns] == ["checkpoint_call", "reduce_sum"]
  traced = len(calls)
  lin.transpose([1.0])
  assert len(calls) == traced  # the staged program runs again, not the Python function
  node = lin.eqns[0]
  assert [np.shape(p) for p in node.primals] == [(3,)]


def _outer_block(x):
  """A block whose internals (n x n) are n times larger than its input."""
  m = dnp.tanh(x[:, None] * x[None, :])
  return x + 0.1 * dnp.sum(m * dnp.cos(m), axis=1)


def test_checkpoint_under_jit_is_not_merged_with_its_recomputation():
  # Inlined, the passes would merge the backward pass's recomputation of each block with
  # its forward pass, and keep every block's internals alive until the backward pass.
  cb = dfdx.checkpoint(_outer_block)

  def chain(x):
    for _ in range(3):
      x = cb(x)
    return dnp.sum(x)
  program = dfdx.make_expr(dfdx.grad(chain), optimize=True)(X).program
  # (the forward pass of the last block is dead: grad reads only its recomputation)
  assert [e.prim.name for e in program.eqns].count("checkpoint_call") == 2
  plain = lambda x: dnp.sum(_outer_block(_outer_block(_outer_block(x))))  # noqa: E731
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(chain))(X), dfdx.grad(plain)(X), rtol=1e-14)


def _scanned(per_checkpoint, steps=6):
  step = lambda c, _: (_outer_block(c), None)  # noqa: E731
  if per_checkpoint is None:
    return lambda x: dnp.sum(dfdx.scan(step, x, None, length=steps)[0])
  inner = dfdx.checkpoint(lambda c: dfdx.scan(step, c, None, length=per_checkpoint)[0])
  return lambda x: dnp.sum(dfdx.scan(lambda c, _: (inner(c), None), x, None,
                                     length=steps // per_checkpoint)[0])


def _scan_outputs(program):
  for e in program.eqns:
    if e.prim.name == "scan":
      yield from (v.aval.shape for v in e.outputs)
    for v in e.params.values():
      if hasattr(v, "eqns"):
        yield from _scan_outputs(v)


def test_checkpointed_scan_keeps_only_carries_under_jit():
  # A scan of checkpointed scans: reverse mode keeps one carry per outer step, and the
  # inner steps' n x n internals only while an inner scan is recomputed.
  x = np.linspace(-1.0, 1.0, 5)
  checkpointed, plain = _scanned(2), _scanned(None)
  outer = dfdx.make_expr(dfdx.grad(checkpointed), optimize=True)(x).program
  # (the outer scan has 3 steps; what it stacks is a (3, 5) carry, not (3, 2, 5, 5) internals)
  assert [s for s in _scan_outputs(outer) if s and s[0] == 3] == [(3, 5)]
  stored = dfdx.make_expr(dfdx.grad(plain), optimize=True)(x).program
  assert any(len(s) == 3 and s[-2:] == (5, 5) for s in _scan_outputs(stored))  # (the control)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(checkpointed))(x), dfdx.grad(plain)(x),
                             rtol=1e-13)
  check_grads(dfdx.jit(checkpointed), (x,), order=2, modes=("fwd", "rev"))


def test_checkpoint_forward_mode_under_jit_and_vmap():
  cb = dfdx.checkpoint(_outer_block)
  v = np.array([0.3, -1.0, 2.0])
  expected = dfdx.jvp(_outer_block, (X,), (v,))
  got = dfdx.jit(lambda x, v: dfdx.jvp(cb, (x,), (v,)))(X, v)
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-14)
  np.testing.assert_allclose(got[1], expected[1], rtol=1e-14)
  np.testing.assert_allclose(dfdx.jacfwd(cb)(X), dfdx.jacrev(_outer_block)(X), rtol=1e-13)
  np.testing.assert_allclose(dfdx.hessian(lambda x: dnp.sum(cb(x) ** 2))(X),
                             dfdx.hessian(lambda x: dnp.sum(_outer_block(x) ** 2))(X),
                             rtol=1e-12)


def test_custom_rules_and_checkpoint_read_values_at_each_call():
  # A value the function reads from outside (a global, a model's weights) is read again at
  # every call: a program kept from the first call would give derivatives at stale values.
  state = {"w": np.array(1.0)}
  block = dfdx.checkpoint(lambda x: dnp.sin(state["w"] * x))

  @dfdx.custom_jvp
  def scaled(x):
    return state["w"] * dnp.sin(x)

  @scaled.defjvp
  def _(primals, tangents):
    return scaled(primals[0]), state["w"] * dnp.cos(primals[0]) * tangents[0]
  for w in (1.0, 2.0):
    state["w"] = np.array(w)
    assert dfdx.grad(block)(0.5) == pytest.approx(w * np.cos(0.5 * w), rel=1e-14)
    assert dfdx.vmap(block)(np.array([0.5]))[0] == pytest.approx(np.sin(0.5 * w), rel=1e-14)
    assert dfdx.grad(scaled)(0.5) == pytest.approx(w * np.cos(0.5), rel=1e-14)


def test_checkpoint_keywords_and_non_array_arguments():
  f = dfdx.checkpoint(lambda x, scale=1.0: x * scale)
  assert f(2.0, scale=3.0) == 6.0
  assert dfdx.grad(lambda x: f(x, scale=3.0))(2.0) == 3.0
  g = dfdx.checkpoint(lambda x, mode: dnp.sin(x) if mode == "sin" else dnp.cos(x))
  assert dfdx.grad(lambda x: g(x, "sin"))(2.0) == pytest.approx(np.cos(2.0), rel=1e-15)
  assert dfdx.grad(lambda x: g(x, "cos"))(2.0) == pytest.approx(-np.sin(2.0), rel=1e-15)


def _sin_with(rule):
  """A custom_jvp function F = sin whose rule is `rule(F, x, t) -> (output, tangent)`."""
  @dfdx.custom_jvp
  def f(x):
    return dnp.sin(x)

  @f.defjvp
  def _(primals, tangents):
    return rule(f, primals[0], tangents[0])
  return f


def _sin_with_rule_2x():
  """F = sin, with a rule that says F' = 2x (not cos): which derivative a route takes shows."""
  return _sin_with(lambda f, x, t: (f(x), 2 * x * t))


def test_custom_jvp_rule_applies_at_every_order():
  # The rule says F' = 2x where the body (sin) says cos: a call of F inside its own rule is
  # a call with the rule, so derivatives of every order use it (as if F were a primitive).
  f = _sin_with_rule_2x()
  x = 0.7
  assert dfdx.grad(lambda x: dfdx.jvp(f, (x,), (1.0,))[0])(x) == pytest.approx(2 * x)
  # second derivative of F^2: 2 F'^2 + 2 F F'' = 8 x^2 + 4 sin(x); third: 6 F' F'' = 24 x
  expected = 8 * x ** 2 + 4 * np.sin(x)
  for hess in (dfdx.hessian, lambda g: dfdx.jit(dfdx.hessian(g)),
               lambda g: dfdx.jacrev(dfdx.jacfwd(g))):
    assert hess(lambda x: f(x) ** 2)(x) == pytest.approx(expected, rel=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.hessian(lambda x: f(x) ** 2))(np.array([x, -x])),
                             [expected, 8 * x ** 2 - 4 * np.sin(x)], rtol=1e-14)
  third = dfdx.grad(dfdx.grad(dfdx.grad(lambda x: f(x) ** 2)))(x)
  assert third == pytest.approx(24 * x, rel=1e-14)

  # a rule calling its function at other types uses the body there
  g = _sin_with(lambda g, x, t: (g(x), dnp.sum(g(dnp.stack([x, x]))) * 0 + 2 * x * t))
  assert dfdx.hessian(lambda x: g(x) ** 2)(x) == pytest.approx(expected, rel=1e-14)


def test_custom_jvp_rule_calling_its_function_at_other_types():
  # A call of the function inside its rule at other shapes (or other nondiff arguments) is a
  # call with the rule too, staged at those types when differentiated: here F' = F at every
  # order (the rule's tangent is F at another shape), where the body there gave F'' = cos.
  f = _sin_with(lambda f, x, t: (f(x), f(dnp.stack([x, x]))[0] * t))
  x = 0.7
  s = np.sin(x)
  for hess in (dfdx.hessian, lambda g: dfdx.jit(dfdx.hessian(g)),
               lambda g: dfdx.jacrev(dfdx.jacfwd(g)), lambda g: dfdx.grad(dfdx.grad(g))):
    assert hess(lambda x: f(x) ** 2)(x) == pytest.approx(4 * s ** 2, rel=1e-14)
  assert dfdx.grad(dfdx.grad(dfdx.grad(lambda x: f(x) ** 2)))(x) == pytest.approx(
      8 * s ** 2, rel=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.hessian(lambda x: f(x) ** 2))(np.array([x, -x])),
                             [4 * s ** 2, 4 * s ** 2], rtol=1e-14)
  _, series = dfdx.jet(f, (x,), ([1.0, 0.0, 0.0],))
  np.testing.assert_allclose(series, [s, s, s], rtol=1e-14)

  # a rule calling its function at ever larger shapes: staged one order at a time
  g = _sin_with(lambda g, x, t: (g(x), g(dnp.concatenate([x, x]))[x.shape[0]:] * t))
  np.testing.assert_allclose(dfdx.jacfwd(dfdx.jacrev(dfdx.grad(lambda x: dnp.sum(g(x)))))(X),
                             np.einsum("i,ij,ik->ijk", np.sin(X), np.eye(3), np.eye(3)),
                             rtol=1e-14)

  # a rule closing over a traced value w: at the same types, F' = 2 x w at every order, so
  # (F^2)'' = 2 F'^2 + 2 F F'' = 8 x^2 w^2 + 4 w sin(x), whose derivative in w is
  # 16 x^2 w + 4 sin(x); at other types its rule cannot be formed, and that is said
  def second(w, rule):
    f = _sin_with(rule(w))
    return dfdx.hessian(lambda x: f(x) ** 2)(x)
  same = lambda w: lambda f, x, t: (f(x), 2 * x * t * w)  # noqa: E731
  assert second(1.5, same) == pytest.approx(8 * x ** 2 * 1.5 ** 2 + 6 * s, rel=1e-14)
  for run in (dfdx.grad, lambda g: dfdx.jit(dfdx.grad(g))):
    assert run(lambda w: second(w, same))(1.5) == pytest.approx(16 * x ** 2 * 1.5 + 4 * s,
                                                                rel=1e-13)
  other = lambda w: lambda f, x, t: (f(x), f(dnp.stack([x, x]))[0] * t * w)  # noqa: E731
  assert second(1.5, other) == pytest.approx(4 * 1.5 ** 2 * s ** 2, rel=1e-14)
  with pytest.raises(dfdx.MissingRuleError, match="calls it at other argument types and "
                                                  "uses values traced outside it"):
    dfdx.grad(lambda w: second(w, other))(1.5)

  # recursion through a nondiff argument: F_n' = F_(n-1) + x, F_0' = cos
  h = dfdx.custom_jvp(lambda n, x: dnp.sin(x) * n, nondiff_argnums=(0,))

  @h.defjvp
  def _(n, primals, tangents):
    (x,), (t,) = primals, tangents
    return h(n, x), ((h(n - 1, x) if n > 0 else dnp.cos(x)) + x) * t
  # F_2'' = F_1' + 1 = F_0 + x + 1 = x + 1 (F_0 = 0 * sin)
  assert dfdx.grad(dfdx.grad(lambda x: h(2, x)))(x) == pytest.approx(x + 1, rel=1e-14)
  assert dfdx.jacfwd(dfdx.grad(dfdx.grad(lambda x: h(3, x))))(x) == pytest.approx(
      x + 1, rel=1e-14)


def test_custom_jvp_program_with_a_rule_calling_its_function_prints():
  # the rule program holds a call whose rule is that program: printed once, not recursing
  f = _sin_with_rule_2x()
  text = str(dfdx.make_expr(lambda x: f(x) ** 2)(0.7))
  assert "custom_jvp_call" in text and "<the rule program above>" in text


def test_custom_jvp_jet_takes_every_order_from_the_rule():
  # Taylor mode: the coefficients past the value come from the rule's tangent output, also
  # where the rule computes its output otherwise than by calling the function (they had been
  # taken from that output's series: sin's derivatives here, cos(x) in place of 2x)
  f = _sin_with(lambda f, x, t: (dnp.sin(x), 2 * x * t))
  x = 0.7
  value, series = dfdx.jet(f, (x,), ([1.0, 0.0, 0.0],))
  assert value == pytest.approx(np.sin(x), rel=1e-15)
  np.testing.assert_allclose(series, [2 * x, 2.0, 0.0], rtol=1e-14, atol=1e-14)
  np.testing.assert_allclose(series, [dfdx.grad(f)(x), dfdx.grad(dfdx.grad(f))(x),
                                      dfdx.grad(dfdx.grad(dfdx.grad(f)))(x)], atol=1e-14)
  _, series = dfdx.jet(lambda x: f(x) ** 2, (x,), ([1.0, 0.0],))
  assert series[0] == pytest.approx(dfdx.grad(lambda x: f(x) ** 2)(x), rel=1e-14)
  assert series[0] == pytest.approx(4 * x * np.sin(x), rel=1e-14)

  # a rule whose tangent is a constant zero: every coefficient past the value is zero
  flat = _sin_with(lambda flat, x, t: (dnp.sin(x), dnp.zeros_like(t)))
  _, series = dfdx.jet(flat, (x,), ([1.0, 0.5, 0.0],))
  np.testing.assert_array_equal(series, [0.0, 0.0, 0.0])


def test_custom_jvp_rule_with_a_constant_tangent():
  # a rule that returns zeros (not computed from the tangents) in reverse mode; a nonzero
  # constant is not linear in the tangents, and said so
  @dfdx.custom_jvp
  def flat(x):
    return dnp.round(x)

  @flat.defjvp
  def _(primals, tangents):
    return flat(primals[0]), dnp.zeros_like(primals[0])
  assert dfdx.grad(flat)(1.3) == 0.0
  np.testing.assert_array_equal(dfdx.jacrev(flat)(X), np.zeros((3, 3)))
  assert dfdx.jit(dfdx.grad(lambda x: flat(x) * x))(1.3) == 1.0
  np.testing.assert_array_equal(dfdx.vmap(dfdx.grad(flat))(X), np.zeros(3))

  @dfdx.custom_jvp
  def wrong(x):
    return x

  @wrong.defjvp
  def _(primals, tangents):
    return primals[0], np.ones(())
  with pytest.raises(TypeError, match="does not depend on the input tangents and is not zero"):
    dfdx.grad(wrong)(1.0)


def _vjp_sin_with(fwd, bwd):
  """A custom_vjp function F = sin whose rules are `fwd(F, x)` and `bwd(F, residuals, ct)`."""
  @dfdx.custom_vjp
  def f(x):
    return dnp.sin(x)
  f.defvjp(lambda x: fwd(f, x), lambda res, ct: bwd(f, res, ct))
  return f


def _rule_2x(f, x, ct):
  return (2 * x * ct,)


_SECOND_ORDER = {
    "grad(grad)": lambda g: dfdx.grad(dfdx.grad(g)),
    "jacrev(jacrev)": lambda g: dfdx.jacrev(dfdx.jacrev(g)),
    "hessian": dfdx.hessian,  # (forward over reverse: bwd transposed)
    "jacfwd(jacrev)": lambda g: dfdx.jacfwd(dfdx.jacrev(g)),
    "jit(grad(grad))": lambda g: dfdx.jit(dfdx.grad(dfdx.grad(g))),
    "grad(jit(grad))": lambda g: dfdx.grad(dfdx.jit(dfdx.grad(g))),
    "jit(hessian)": lambda g: dfdx.jit(dfdx.hessian(g)),
}


@pytest.mark.parametrize("second", _SECOND_ORDER.values(), ids=_SECOND_ORDER.keys())
def test_custom_vjp_rules_apply_at_every_order(second):
  # The rules say F' = 2x where the body (sin) says cos, and fwd calls F: that call is a
  # call with the rules (as in JAX), so second derivatives use them, in reverse and forward
  # over reverse: (F^2)'' = 2 F'^2 + 2 F F'' = 8 x^2 + 4 sin(x) (the body gave 4 x cos(x)
  # + 4 sin(x)).
  f = _vjp_sin_with(lambda f, x: (f(x), x), _rule_2x)
  x = 0.7
  assert second(lambda x: f(x) ** 2)(x) == pytest.approx(8 * x ** 2 + 4 * np.sin(x),
                                                          rel=1e-14)
  xs = np.array([0.7, -1.3])
  np.testing.assert_allclose(dfdx.vmap(second(lambda x: f(x) ** 2))(xs),
                             8 * xs ** 2 + 4 * np.sin(xs), rtol=1e-14)


def test_custom_vjp_rules_apply_at_third_order_and_in_taylor_series():
  f = _vjp_sin_with(lambda f, x: (f(x), x), _rule_2x)
  x = 0.7
  # (F^2)''' = 6 F' F'' + 2 F F''' = 24 x
  assert dfdx.grad(dfdx.grad(dfdx.grad(lambda x: f(x) ** 2)))(x) == pytest.approx(24 * x,
                                                                                  rel=1e-14)
  assert dfdx.jacfwd(dfdx.grad(dfdx.grad(lambda x: f(x) ** 2)))(x) == pytest.approx(
      24 * x, rel=1e-14)
  np.testing.assert_allclose(dfdx.hessian(lambda v: dnp.sum(f(v) ** 2))(X),
                             np.diag(8 * X ** 2 + 4 * np.sin(X)), rtol=1e-14)
  _, series = dfdx.jet(lambda x: f(x) ** 2, (x,), ([1.0, 0.0, 0.0],))
  np.testing.assert_allclose(series, [4 * x * np.sin(x), 8 * x ** 2 + 4 * np.sin(x), 24 * x],
                             rtol=1e-14)


def _fwd_with_output_in_pytree(f, x):
  y = f(x)
  return y, {"x": x, "y": [y]}


def _squared(d1, d2):
  """(F^2)'' = 2 F'^2 + 2 F F'', F = sin, given F' and F'' (functions of x)."""
  return lambda x: 2 * d1(x) ** 2 + 2 * np.sin(x) * d2(x)


# Rules that call F in other ways, each with F'' and (F^2)'' as the rules give them (the
# body's differ: it had cos where F' is called for).
_CALLS_INSIDE = {
    # bwd calls F: F' = F + x, so F'' = F' + 1 = sin(x) + x + 1
    "bwd calls F": (lambda f, x: (f(x), x), lambda f, x, ct: ((f(x) + x) * ct,),
                    lambda x: np.sin(x) + x + 1,
                    _squared(lambda x: np.sin(x) + x, lambda x: np.sin(x) + x + 1)),
    # F's output in the residuals, a pytree: F' = F + x as above
    "output in residuals": (_fwd_with_output_in_pytree,
                            lambda f, res, ct: ((res["y"][0] + res["x"]) * ct,),
                            lambda x: np.sin(x) + x + 1,
                            _squared(lambda x: np.sin(x) + x, lambda x: np.sin(x) + x + 1)),
    # fwd calls F on another argument: F'(x) = x + F(2x), F'' = 1 + 2 F'(2x)
    "another argument": (lambda f, x: (f(x + 0.0), (x, f(2 * x))),
                         lambda f, res, ct: ((res[0] + res[1]) * ct,),
                         lambda x: 1 + 2 * (2 * x + np.sin(4 * x)),
                         _squared(lambda x: x + np.sin(2 * x),
                                  lambda x: 1 + 2 * (2 * x + np.sin(4 * x)))),
    # fwd calls F at another shape: F' = 2x by the rules there too
    "another shape": (lambda f, x: (f(dnp.stack([x, x]))[1], x), _rule_2x, lambda x: 2.0,
                      _squared(lambda x: 2 * x, lambda x: 2.0)),
    # fwd does not call F: its own code is what is differentiated (as in JAX), here sin in
    # another form, whose derivative is cos: (F^2)'' = 2 cos(x) 2x + 2 F 2
    "no call": (lambda f, x: (dnp.cos(x - np.pi / 2), x), _rule_2x, lambda x: 2.0,
                lambda x: 4 * x * np.cos(x) + 4 * np.sin(x)),
}


@pytest.mark.parametrize("fwd, bwd, second, second_of_square", _CALLS_INSIDE.values(),
                         ids=_CALLS_INSIDE.keys())
def test_custom_vjp_calls_of_the_function_inside_its_rules(fwd, bwd, second,
                                                           second_of_square):
  f = _vjp_sin_with(fwd, bwd)
  sq = lambda x: f(x) ** 2  # noqa: E731
  x = 0.7
  for order2 in (lambda g: dfdx.grad(dfdx.grad(g)), lambda g: dfdx.jacfwd(dfdx.jacrev(g)),
                 lambda g: dfdx.jit(dfdx.grad(dfdx.grad(g)))):
    assert order2(f)(x) == pytest.approx(second(x), rel=1e-13)
    assert order2(sq)(x) == pytest.approx(second_of_square(x), rel=1e-13)
  xs = np.array([0.7, -1.3])
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(dfdx.grad(f)))(xs), second(xs), rtol=1e-13)
  np.testing.assert_allclose(dfdx.vmap(dfdx.hessian(sq))(xs), second_of_square(xs),
                             rtol=1e-13)
  assert f(x) == pytest.approx(np.sin(x), rel=1e-15)


def test_custom_vjp_rules_calling_the_function_with_nondiff_arguments_and_closures():
  # G(p, x) = sin(p x) with G' = 2 p x: (G^2)'' = 8 p^2 x^2 + 4 p sin(p x)
  g = dfdx.custom_vjp(lambda p, x: dnp.sin(p * x), nondiff_argnums=(0,))
  g.defvjp(lambda p, x: (g(p, x), x), lambda p, x, ct: (2 * p * x * ct,))
  x = 0.7
  for p in (3.0, -0.5):
    assert dfdx.hessian(lambda x: g(p, x) ** 2)(x) == pytest.approx(
        8 * p ** 2 * x ** 2 + 4 * p * np.sin(p * x), rel=1e-14)
    assert dfdx.grad(dfdx.grad(lambda x: g(p, x) ** 2))(x) == pytest.approx(
        8 * p ** 2 * x ** 2 + 4 * p * np.sin(p * x), rel=1e-14)

  # rules and body closing over a traced w: F = w sin(x), F' = 2 x w, so (F^2)'' =
  # 8 x^2 w^2 + 4 w^2 sin(x), whose derivative in w is 16 x^2 w + 8 w sin(x)
  def second(w):
    f = dfdx.custom_vjp(lambda x: dnp.sin(x) * w)
    f.defvjp(lambda x: (f(x), x), lambda x, ct: (2 * x * w * ct,))
    return dfdx.grad(dfdx.grad(lambda x: f(x) ** 2))(x)
  w = 1.5
  assert second(w) == pytest.approx(8 * x ** 2 * w ** 2 + 4 * w ** 2 * np.sin(x), rel=1e-14)
  for run in (dfdx.grad, dfdx.jacfwd, lambda h: dfdx.jit(dfdx.grad(h))):
    assert run(second)(w) == pytest.approx(16 * x ** 2 * w + 8 * w * np.sin(x), rel=1e-13)

  # rules closing over a traced w that call the function at other types: said
  def other(w):
    f = dfdx.custom_vjp(dnp.sin)
    f.defvjp(lambda x: (f(dnp.stack([x, x]))[0], x), lambda x, ct: (2 * x * w * ct,))
    return dfdx.grad(dfdx.grad(lambda x: f(x) ** 2))(x)
  assert other(w) == pytest.approx(8 * x ** 2 * w ** 2 + 4 * w * np.sin(x), rel=1e-14)
  with pytest.raises(dfdx.MissingRuleError, match="calls it at other argument types and "
                                                  "uses values traced outside it"):
    dfdx.grad(other)(w)


def test_custom_vjp_program_with_rules_calling_the_function_prints():
  f = _vjp_sin_with(lambda f, x: (f(x), x), _rule_2x)
  text = str(dfdx.make_expr(dfdx.grad(lambda x: f(x) ** 2))(0.7))
  assert text.count("custom_vjp_call") == 2 and "<the rule program above>" in text


def test_custom_vjp_stable_softplus_second_derivatives_at_extremes(monkeypatch):
  # A softplus whose body is finite but whose derivative is NaN far out (the branch not
  # taken computes exp(1000)), with rules giving the stable derivative, sigmoid: second
  # derivatives come from the rules, finite and NaN-free (no recomputation with the
  # zero-absorbing chain rule, which the body's NaN needed) at every point.
  @dfdx.custom_vjp
  def softplus(x):
    return dnp.where(x > 30.0, x, dnp.log1p(dnp.exp(x)))
  sigmoid = lambda x: 0.5 * (1 + dnp.tanh(0.5 * x))  # noqa: E731
  softplus.defvjp(lambda x: (softplus(x), x), lambda x, ct: (sigmoid(x) * ct,))
  recomputed = []
  monkeypatch.setattr(ad, "run_zero_absorbing", lambda run: recomputed.append(run) or run())
  xs = np.array([-1000.0, -3.0, 0.0, 2.0, 1000.0])
  s = 0.5 * (1 + np.tanh(0.5 * xs))
  ds, f = s * (1 - s), np.logaddexp(0.0, xs)
  want = 2 * s ** 2 + 2 * f * ds  # (f^2)'' = 2 f'^2 + 2 f f''
  sq = lambda x: softplus(x) ** 2  # noqa: E731
  with np.errstate(over="ignore"):  # (the body's exp(1000), as NumPy's)
    for i, x in enumerate(xs):
      assert dfdx.grad(softplus)(x) == s[i]
      assert dfdx.grad(dfdx.grad(softplus))(x) == pytest.approx(ds[i], rel=1e-14, abs=0)
      for name, second in _SECOND_ORDER.items():
        assert second(sq)(x) == pytest.approx(want[i], rel=1e-14), name
    np.testing.assert_allclose(dfdx.hessian(lambda v: dnp.sum(sq(v)))(xs), np.diag(want),
                               rtol=1e-14)
    np.testing.assert_allclose(dfdx.vmap(dfdx.hessian(sq))(xs), want, rtol=1e-14)
    np.testing.assert_allclose(dfdx.jit(dfdx.vmap(dfdx.grad(dfdx.grad(sq))))(xs), want,
                               rtol=1e-14)
  assert np.all(np.isfinite(want)) and not recomputed


def test_checkpoint_passes_python_numbers_as_they_are():
  def steps(x, n, scale):
    assert type(n) is int and type(scale) is float
    for _ in range(n):
      x = dnp.sin(x) * scale
    return x
  f = dfdx.checkpoint(steps)
  g = dfdx.grad(lambda x: f(x, 3, 0.5))(0.3)
  assert g == pytest.approx(dfdx.grad(lambda x: steps(x, 3, 0.5))(0.3), rel=1e-15)
  assert dfdx.jit(dfdx.grad(lambda x: f(x, 2, 1.5)))(0.3) == pytest.approx(
      dfdx.grad(lambda x: steps(x, 2, 1.5))(0.3), rel=1e-15)


def test_checkpoint_forward_mode_types_under_jit():
  to_int = dfdx.checkpoint(lambda x: dnp.round(x).astype(int))
  out, tangent = dfdx.jit(lambda x: dfdx.jvp(to_int, (x,), (1.0,)))(2.0)
  assert type(tangent) is np.float64 and tangent == 0.0  # (as without checkpoint)
  pair = dfdx.checkpoint(lambda x: (x * 1.0, 3))
  _, tangents = dfdx.jit(lambda x, t: dfdx.jvp(pair, (x,), (t,)))(2.0, 1.0)
  assert type(tangents[0]) is np.float64 and tangents[0] == 1.0


def _chain_of_blocks(x, depth=4):
  for _ in range(depth):
    x = _outer_block(x)
  return dnp.sum(x ** 2)


@pytest.mark.parametrize("segments", ["auto", 2, 3, 1000])
def test_checkpoint_segments_values_and_derivatives_are_unchanged(segments):
  f = dfdx.checkpoint(_chain_of_blocks, segments=segments)
  assert f(X) == pytest.approx(_chain_of_blocks(X), rel=1e-15)
  expected = dfdx.grad(_chain_of_blocks)(X)
  np.testing.assert_allclose(dfdx.grad(f)(X), expected, rtol=1e-13)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(X), expected, rtol=1e-13)
  np.testing.assert_allclose(dfdx.hessian(f)(X), dfdx.hessian(_chain_of_blocks)(X),
                             rtol=1e-12)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(np.stack([X, -X])),
                             np.stack([expected, dfdx.grad(_chain_of_blocks)(-X)]), rtol=1e-13)
  check_grads(f, (X,), order=2)


def test_checkpoint_segments_cut_between_blocks():
  # The blocks' internals are n x n, the values between blocks n: "auto" cuts between the
  # blocks, and reverse mode keeps one n-vector per piece, no n x n internals.
  f = dfdx.checkpoint(_chain_of_blocks, segments="auto")
  _, lin = ad.linearize_flat(lambda x: [f(x)], [X])
  nodes = [e for e in lin.eqns if e.prim.name == "checkpoint_call"]
  assert len(nodes) >= 4
  assert all(np.size(p) <= X.size for e in nodes for p in e.primals)
  _, lin = ad.linearize_flat(lambda x: [dfdx.checkpoint(_chain_of_blocks, segments=2)(x)], [X])
  assert [e.prim.name for e in lin.eqns].count("checkpoint_call") == 2
  program = dfdx.make_expr(dfdx.grad(f), optimize=True)(X).program
  # (under jit the last piece's forward pass is dead: grad reads only its recomputation)
  assert [e.prim.name for e in program.eqns].count("checkpoint_call") >= 3


def test_checkpoint_segments_auto_is_sqrt_on_a_uniform_chain():
  # 100 equations of 1 byte of intermediates, 1 byte alive between any two: cutting every k
  # costs 100 / k + k, least near k = 10.
  from dfdx._src import remat
  sizes, alive = np.ones(100), np.ones(100)
  cuts = remat.choose_cuts(sizes, alive, "auto")
  assert 7 <= len(cuts) <= 13
  assert remat._peak(np.arange(101.0), alive, cuts) <= 21
  # an integer: that many pieces of about equal size, cut at the narrowest nearby point
  alive[[23, 52, 77]] = 0.0
  assert remat.choose_cuts(sizes, alive, 4) == [23, 52, 77]
  assert len(remat.choose_cuts(sizes, np.ones(100), 7)) == 6
  assert remat.choose_cuts(np.ones(3), np.ones(3), 10) == [0, 1]


def test_checkpoint_segments_pytrees_literals_closures_and_decorator():
  @dfdx.checkpoint(segments="auto")
  def f(x, w):
    y = _outer_block(x) * w
    return {"y": y, "x": x, "two": 2.0, "z": _outer_block(y)}
  out = f(X, 2.0)
  assert out["two"] == 2.0 and out["x"] is X
  g = dfdx.grad(lambda w: dnp.sum(f(X, w)["z"]) + f(X, w)["two"])(0.7)
  expected = dfdx.grad(lambda w: dnp.sum(_outer_block(_outer_block(X) * w)))(0.7)
  assert g == pytest.approx(expected, rel=1e-13)
  # a traced value the function closes over
  h = lambda w: dfdx.checkpoint(lambda x: _chain_of_blocks(x * w), segments=3)(X)  # noqa: E731
  assert dfdx.grad(h)(0.7) == pytest.approx(
      dfdx.grad(lambda w: _chain_of_blocks(X * w))(0.7), rel=1e-13)


def _masked_chain(x):
  for _ in range(3):
    x = _outer_block(x)
  mask, i = x > 0.9, dnp.argmax(x)  # (a boolean and an integer, used further on)
  for _ in range(3):
    x = _outer_block(x)
  return dnp.sum(dnp.where(mask, x, -x)) + x[i]


@pytest.mark.parametrize("segments", ["auto", 2, 3, 1000])
def test_checkpoint_segments_with_integer_and_boolean_values_alive(segments):
  # A boolean or an integer computed in one piece and used in a later one (a where's
  # condition, an index) is an input of that piece, held fixed when it is recomputed.
  f = dfdx.checkpoint(_masked_chain, segments=segments)
  expected = dfdx.grad(_masked_chain)(X)
  np.testing.assert_allclose(dfdx.grad(f)(X), expected, rtol=1e-13)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(X), expected, rtol=1e-13)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(np.stack([X, -X])),
                             np.stack([expected, dfdx.grad(_masked_chain)(-X)]), rtol=1e-13)
  _, lin = ad.linearize_flat(lambda x: [f(x)], [X])
  assert [e.prim.name for e in lin.eqns].count("checkpoint_call") >= 2


def test_checkpoint_with_integer_and_boolean_arguments():
  # reverse mode recomputes the block linearized in its floating inputs only
  masked = dfdx.checkpoint(lambda m, x: dnp.where(m, dnp.sin(x), x))
  m = np.array([True, False, True])
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(masked(m, x)))(X),
                             np.where(m, np.cos(X), 1.0), rtol=1e-15)
  indexed = dfdx.checkpoint(lambda i, x: dnp.sin(x)[i])
  assert dfdx.grad(lambda x: indexed(2, x))(X)[2] == pytest.approx(np.cos(X[2]), rel=1e-15)
  assert dfdx.jit(dfdx.grad(lambda x, i: indexed(i, x)))(X, np.int64(1))[1] == \
      pytest.approx(np.cos(X[1]), rel=1e-15)


@pytest.mark.parametrize("segments", [0, -2, 1.5, True, "fast"])
def test_checkpoint_segments_errors(segments):
  with pytest.raises(ValueError, match=f"segments must be None, 'auto' or a positive integer, "
                                       f"got {segments!r}"):
    dfdx.checkpoint(_chain_of_blocks, segments=segments)
  with pytest.raises(TypeError, match="checkpoint: expected a function, got int"):
    dfdx.checkpoint(3)


def test_jit_gradient_through_a_complex_literal():
  f = lambda x: dnp.real(dnp.exp(x * (1 + 2j)))  # noqa: E731
  assert dfdx.jit(dfdx.grad(f))(0.5) == pytest.approx(dfdx.grad(f)(0.5), rel=1e-14)


def test_custom_vjp_under_vmap_sums_the_cotangents_of_unmapped_arguments():
  # y is the same for every example: its cotangent is the sum over the batch (as without
  # custom_vjp), at first and second order, eager and jitted
  @dfdx.custom_vjp
  def f(x, y):
    return dnp.sin(x) * y
  f.defvjp(lambda x, y: (f(x, y), (x, y)),
           lambda r, ct: (dnp.cos(r[0]) * r[1] * ct, dnp.sin(r[0]) * ct))
  x = np.array([0.7, -1.3, 0.4])

  def loss(x, y):
    return dnp.sum(dfdx.vmap(f, in_axes=(0, None))(x, y))
  for g in (dfdx.grad(loss, argnums=1), dfdx.jit(dfdx.grad(loss, argnums=1))):
    np.testing.assert_allclose(g(x, 0.2), np.sum(np.sin(x)), rtol=1e-14)
  h = dfdx.hessian(loss, argnums=(0, 1))(x, 0.2)
  np.testing.assert_allclose(h[1][0], np.cos(x), rtol=1e-14)
  assert h[1][1] == 0.0
  np.testing.assert_allclose(h[0][0], np.diag(-np.sin(x) * 0.2), atol=1e-15)


def _doubler(rule):
  """A custom_jvp function q(x) = 2 x with the JVP rule `rule`."""
  @dfdx.custom_jvp
  def q(x):
    return x * 2
  q.defjvp(rule)
  return q


def test_custom_jvp_rule_errors_say_what_the_rule_returned_and_what_was_expected():
  def raises(rule, match, x=1.0):
    with pytest.raises(TypeError, match=match) as info:
      dfdx.grad(lambda x: dnp.sum(_doubler(rule)(x)))(x)
    assert "Tracer" not in str(info.value)
  raises(lambda p, t: p[0] * 2,
         r"custom_jvp function q: its rule `<lambda>` must return a pair \(output, tangent\), "
         r"but it returned an array float64\[\]\. The output is the function's at the primals "
         r"\(float64\[\]\)")
  raises(lambda p, t: (p[0] * 2, t[0], 1.0), r"must return a pair.*a tuple of 3 \(float64\[\], "
                                            r"float64\[\], 1\.0\)")
  # a tangent of the wrong shape, constant or computed from the tangents
  raises(lambda p, t: (p[0] * 2, np.ones(3)),
         r"custom_jvp function q: its rule `<lambda>` returned a tangent that is an array "
         r"float64\[3\], but the output is float64\[\]: each tangent must have its output's "
         r"shape and dtype")
  raises(lambda p, t: (p[0] * 2, np.ones(3) * t[0]),
         r"returned a tangent that is an array float64\[3\], but the output is float64\[\]")
  raises(lambda p, t: (p[0] * 2, dnp.sum(t[0])),
         r"returned a tangent that is an array float64\[\], but the output is float64\[2\]",
         x=np.array([1.0, 2.0]))
  raises(lambda p, t: (p[0] * 2, "zero"), r"returned a tangent that is a str")
  raises(lambda p, t: (np.ones(3), t[0]),
         r"its rule `<lambda>` returned as its output \(the pair's first element\) an array "
         r"float64\[3\], but the function returns float64\[\]")
  # a constant nonzero tangent is not linear in the tangents
  raises(lambda p, t: (p[0] * 2, np.ones(())),
         r"custom_jvp function q: its rule `<lambda>` returned a tangent \(an array "
         r"float64\[\]\) that does not depend on the input tangents and is not zero")
  with pytest.raises(TypeError, match=r"custom_jvp function q: its rule `<lambda>` returned a "
                                      r"tangent \(an array float64\[\]\) that does not depend"):
    dfdx.jvp(_doubler(lambda p, t: (p[0] * 2, 1.0)), (1.0,), (1.0,))  # (also forward mode)


def test_custom_jvp_rules_with_zero_tangents_not_computed_from_the_tangents():
  # None, a Python 0.0 broadcast to the output, and zeros: the derivative is zero
  x = np.array([1.0, 2.0])
  for zero in (lambda p: None, lambda p: 0.0, lambda p: dnp.zeros_like(p)):
    q = _doubler(lambda p, t, zero=zero: (p[0] * 2, zero(p[0])))
    np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.sum(q(x)))(x), [0.0, 0.0])
    _, tangent = dfdx.jvp(q, (x,), (np.ones(2),))
    np.testing.assert_array_equal(tangent, [0.0, 0.0])


def test_custom_vjp_rule_errors_say_what_the_rule_returned_and_what_was_expected():
  def raises(fwd, bwd, match, cls=TypeError):
    @dfdx.custom_vjp
    def h(x, y):
      return x * y
    h.defvjp(fwd, bwd)
    with pytest.raises(cls, match=match) as info:
      dfdx.grad(h)(2.0, 3.0)
    assert "Tracer" not in str(info.value)
  fwd = lambda x, y: (x * y, (x, y))
  raises(fwd, lambda r, ct: ct * r[1],
         r"custom_vjp function h: its bwd `<lambda>` must return a tuple with one cotangent per "
         r"differentiated argument \(2\), got an array float64\[\]\. Return a tuple")
  raises(fwd, lambda r, ct: ({"x": ct}, ct),
         r"its bwd `<lambda>` returned a cotangent 0 holding a dict of 1 \('x': float64\[\]\) "
         r"where argument 0 holds float64\[\]")
  raises(lambda x, y: x * y, lambda r, ct: (ct, ct),
         r"custom_vjp function h: its fwd `<lambda>` must return a pair \(output, residuals\), "
         r"but it returned an array float64\[\]")
  raises(lambda x, y: (np.ones(3), None), lambda r, ct: (ct, ct),
         r"its fwd `<lambda>` returned as its output \(the pair's first element\) an array "
         r"float64\[3\], but the function returns float64\[\]")

  @dfdx.custom_vjp
  def prod(pair):
    return pair[0] * pair[1]
  prod.defvjp(lambda pair: (prod(pair), pair), lambda r, ct: (ct * r[1],))
  with pytest.raises(dfdx.PytreeError, match=r"custom_vjp function prod: its bwd `<lambda>` "
                                             r"returned as cotangent 0 an array float64\[\], but "
                                             r"argument 0 is a tuple of 2"):
    dfdx.grad(prod)((2.0, 3.0))


def test_custom_vjp_bwd_must_return_cotangents_shaped_like_the_arguments():
  @dfdx.custom_vjp
  def f(x):
    return dnp.sin(x)
  f.defvjp(lambda x: (f(x), x), lambda x, ct: (dnp.sum(ct * dnp.cos(x)),))
  with pytest.raises(TypeError, match=r"bwd `<lambda>` returned cotangent 0 of shape \(\), but "
                                      r"its argument has shape \(2,\)"):
    dfdx.grad(lambda x: dnp.sum(f(x)))(np.array([0.5, 0.2]))

  @dfdx.custom_vjp
  def g(x, y):
    return x * y
  g.defvjp(lambda x, y: (g(x, y), (x, y)), lambda r, ct: (ct,))
  with pytest.raises(TypeError, match="one cotangent per differentiated argument \\(2\\), "
                                      "got a tuple of 1"):
    dfdx.grad(g)(1.0, 2.0)


def test_custom_vjp_jet_takes_every_order_from_the_rule():
  # fwd computes the output itself (sin), bwd says f' = 2x: jet's derivatives along the path
  # are the rule's at every order (f' = 2x, f'' = 2, f''' = 0), as grad and jacfwd give
  @dfdx.custom_vjp
  def f(x):
    return dnp.sin(x)
  f.defvjp(lambda x: (dnp.sin(x), x), lambda x, ct: (2 * x * ct,))
  x = 0.7
  out, series = dfdx.jet(f, (x,), ((1.0, 0.0, 0.0),))
  assert out == pytest.approx(np.sin(x))
  np.testing.assert_allclose(series, [2 * x, 2.0, 0.0], atol=1e-15)
  assert dfdx.grad(f)(x) == pytest.approx(series[0])
  assert dfdx.grad(dfdx.grad(f))(x) == pytest.approx(series[1])
  assert dfdx.jacfwd(dfdx.jacfwd(f))(x) == pytest.approx(series[1])
