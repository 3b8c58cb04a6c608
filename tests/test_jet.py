"""dfdx.jet, Taylor mode: series against closed forms, against nested jvp (every primitive of
the spec table, third order), along curved paths against derivatives in t, under every
transformation, with pytrees and dtypes; and its cost, which grows as a polynomial in the
order where nested jvp doubles per order."""
import math

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import core
from tests.op_specs import all_specs


def ones_then_zeros(x, order):
  """The straight path x + t v with v = 1: its derivatives are (1, 0, 0, ...)."""
  return [np.ones_like(x)] + [np.zeros_like(x)] * (order - 1)


def nested_jvps(f, primals, direction, order):
  """The first `order` directional derivatives by nested jvp (2^k evaluations for the k-th)."""
  out, g = [], f
  for _ in range(order):
    g = (lambda h: lambda *xs: dfdx.jvp(h, xs, direction)[1])(g)
    out.append(g(*primals))
  return out


# ---- closed forms -------------------------------------------------------------------------


@pytest.mark.parametrize("name, f, derivative", [
    ("exp", dnp.exp, lambda x, k: np.exp(x)),
    ("sin", dnp.sin, lambda x, k: np.sin(x + k * np.pi / 2)),
    ("1/(1-x)", lambda x: 1 / (1 - x), lambda x, k: math.factorial(k) / (1 - x) ** (k + 1)),
    ("log", dnp.log, lambda x, k: (-1) ** (k - 1) * math.factorial(k - 1) / x ** k),
    ("x^5", lambda x: x ** 5, lambda x, k: (math.perm(5, k) * x ** (5 - k) if k <= 5 else 0.0)),
])
def test_closed_forms_to_eighth_order(name, f, derivative):
  x = 0.4
  value, series = dfdx.jet(f, (x,), (ones_then_zeros(np.float64(x), 8),))
  assert value == pytest.approx(derivative(x, 0) if name != "log" else np.log(x), rel=1e-15)
  for k, s in enumerate(series, start=1):
    assert s == pytest.approx(derivative(x, k), rel=1e-11, abs=1e-12), k


def composite(x):
  y = dnp.sin(x) * dnp.exp(-x / 3)
  for _ in range(2):
    y = dnp.tanh(y) / (1 + y ** 2) + dnp.log1p(y * y)
  return dnp.sum(y * dnp.cumsum(x)) + dnp.max(x ** 2)


def test_composite_against_nested_jvp():
  rng = np.random.default_rng(0)
  x, v = rng.uniform(0.1, 1.0, 6), rng.normal(size=6)
  value, series = dfdx.jet(composite, (x,), ([v] + [np.zeros(6)] * 5,))
  assert value == pytest.approx(composite(x), rel=1e-15)
  for k, (s, r) in enumerate(zip(series, nested_jvps(composite, (x,), (v,), 6)), start=1):
    assert s == pytest.approx(r, rel=1e-11), k


def test_curved_path_against_derivatives_in_t():
  # x(t) = x0 + x1 t + x2 t^2 / 2 + x3 t^3 / 6: the series are d^k/dt^k f(x(t)) at t = 0.
  rng = np.random.default_rng(1)
  x0, x1, x2, x3 = (rng.uniform(0.2, 0.8, 4) for _ in range(4))
  path = lambda t: x0 + x1 * t + x2 * t ** 2 / 2 + x3 * t ** 3 / 6  # noqa: E731
  g = lambda t: composite(path(t))  # noqa: E731
  _, series = dfdx.jet(composite, (x0,), ([x1, x2, x3, np.zeros(4)],))
  d = g
  for k in range(4):
    d = dfdx.grad(d)
    assert series[k] == pytest.approx(d(0.0), rel=1e-10), k + 1


# ---- every primitive ------------------------------------------------------------------------
_SPECS = [s for s in all_specs() if s.grad]


@pytest.mark.parametrize("spec", _SPECS, ids=[s.name for s in _SPECS])
def test_every_primitive_to_third_order(spec):
  shapes = spec.shapes[0]
  rng = np.random.default_rng(0)
  args = spec.make_args(rng, shapes)
  diff = spec.differentiated(shapes)
  if not diff:
    pytest.skip("nothing differentiable")
  direction = tuple(rng.normal(size=np.shape(args[i])) for i in diff)

  def g(*dargs):
    full = list(args)
    for i, a in zip(diff, dargs):
      full[i] = a
    return spec.fun(*full)
  primals = tuple(args[i] for i in diff)
  try:
    expected = nested_jvps(g, primals, direction, 3)
  except dfdx.MissingRuleError:
    with pytest.raises(dfdx.MissingRuleError):
      dfdx.jet(g, primals, tuple([v, 0 * v, 0 * v] for v in direction))
    return
  out, series = dfdx.jet(g, primals, tuple([v, 0 * v, 0 * v] for v in direction))
  out_leaves, tree = dfdx.tree.tree_flatten(out)
  for leaf, terms in zip(out_leaves, tree.flatten_up_to(series)):
    assert len(terms) == 3
    for term in terms:
      assert np.shape(term) == np.shape(leaf)
  for k in range(3):
    for terms, ref in zip(tree.flatten_up_to(series), dfdx.tree.tree_leaves(expected[k])):
      np.testing.assert_allclose(terms[k], ref, rtol=1e-6, atol=1e-7, err_msg=f"order {k + 1}")


# ---- transformations, pytrees, dtypes --------------------------------------------------------


def test_under_jit_vmap_and_grad():
  rng = np.random.default_rng(2)
  x, v = rng.uniform(0.1, 1.0, 5), rng.normal(size=5)
  series_of = lambda x: dfdx.jet(composite, (x,), ([v, 0 * v, 0 * v],))[1]  # noqa: E731
  eager = series_of(x)
  for got, ref in zip(dfdx.jit(series_of)(x), eager):
    assert got == pytest.approx(ref, rel=1e-13)
  batch = np.stack([x, x + 0.1, x * 0.5])
  batched = dfdx.vmap(series_of)(batch)
  for k in range(3):
    np.testing.assert_allclose(batched[k], [series_of(b)[k] for b in batch], rtol=1e-13)
  # d/dx of the third derivative along v = the fourth derivative along (v, e_i)
  grad_third = dfdx.grad(lambda x: series_of(x)[2])(x)
  e = np.eye(5)[2]
  fourth = dfdx.jvp(lambda x: dfdx.jvp(lambda x: dfdx.jvp(
      lambda x: dfdx.jvp(composite, (x,), (v,))[1], (x,), (v,))[1], (x,), (v,))[1], (x,), (e,))[1]
  assert grad_third[2] == pytest.approx(fourth, rel=1e-10)


def test_jet_of_grad_and_nested_jet():
  x, v = np.array([0.3, 0.7]), np.array([1.0, -0.5])
  f = lambda x: dnp.sum(dnp.sin(x) ** 3)  # noqa: E731
  _, series = dfdx.jet(dfdx.grad(f), (x,), ([v, 0 * v],))
  expected = nested_jvps(dfdx.grad(f), (x,), (v,), 2)
  for s, r in zip(series, expected):
    np.testing.assert_allclose(s, r, rtol=1e-12)
  inner = lambda x: dfdx.jet(f, (x,), ([v, 0 * v],))[1][1]  # noqa: E731
  _, outer = dfdx.jet(inner, (x,), ([v],))
  assert outer[0] == pytest.approx(nested_jvps(f, (x,), (v,), 3)[2], rel=1e-12)


def test_pytrees_several_outputs_and_dtypes():
  def f(p):
    return {"a": dnp.sin(p["x"]) * p["y"], "b": (p["x"] ** 2, dnp.sum(p["y"]) > 0)}
  p = {"x": np.array([0.5, 1.0], np.float32), "y": np.float32(2.0)}
  s = {"x": np.ones(2, np.float32), "y": np.float32(0.5)}
  zero = {"x": np.zeros(2, np.float32), "y": np.float32(0.0)}
  out, series = dfdx.jet(f, (p,), ([s, zero],))
  assert out["a"].dtype == np.float32 and series["a"][0].dtype == np.float32
  x, y = p["x"].astype(float), 2.0
  np.testing.assert_allclose(series["a"][0], np.cos(x) * y + np.sin(x) * 0.5, rtol=1e-6)
  np.testing.assert_allclose(series["a"][1], -np.sin(x) * y + 2 * np.cos(x) * 0.5, rtol=1e-6)
  np.testing.assert_allclose(series["b"][0][1], 2.0)
  assert out["b"][1] == np.True_ and series["b"][1][0] == 0  # (a bool has no derivative)
  value, series = dfdx.jet(lambda n: n * 1.5, (3,), ([1],))  # an int primal: float series
  assert series[0] == 1.5 and np.asarray(series[0]).dtype == np.float64
  value, series = dfdx.jet(dnp.exp, (1.0,), ([],))  # order 0: the value alone
  assert value == pytest.approx(np.e) and series == []


def test_errors():
  with pytest.raises(ValueError, match="one sequence of derivatives per primal"):
    dfdx.jet(dnp.sin, (1.0, 2.0), ([1.0],))
  with pytest.raises(ValueError, match="same number K"):
    dfdx.jet(lambda x, y: x * y, (1.0, 2.0), ([1.0], [1.0, 0.0]))
  with pytest.raises((ValueError, TypeError), match="series term 1"):
    dfdx.jet(dnp.sin, (np.ones(3),), ([np.ones(2)],))


def test_cost_grows_as_a_polynomial_in_the_order():
  # A primitive without a Taylor rule of its own (arctan) runs its JVP rule one order lower,
  # once per order: one arctan per order, O(K^3) binds in all, where nested jvp binds 2^K
  # arctans for the K-th derivative alone. exp has a rule: its value, then products of
  # coefficients.
  for order in (4, 8, 12, 16):
    path = ([1.0] + [0.0] * (order - 1),)
    counts = core.count_binds(lambda: dfdx.jet(dnp.arctan, (0.5,), path))
    assert counts["arctan"] == order + 1, (order, counts["arctan"])
    assert sum(counts.values()) <= 2 * order ** 3, (order, sum(counts.values()))
    assert core.count_binds(lambda: dfdx.jet(dnp.exp, (0.5,), path))["exp"] <= 2


# ---- found by adversarial testing ------------------------------------------------------------


def test_derivatives_stay_finite_as_in_forward_mode():
  # Where jvp's zero-absorbing chain rule gives a finite derivative, so does jet.
  f = lambda x: dnp.arccos(dnp.clip(x, -1, 1))  # noqa: E731  (constant beyond 1)
  assert dfdx.jet(f, (2.0,), ([1.0],))[1][0] == 0.0
  g = lambda x, y: x * dnp.sqrt(y)  # noqa: E731  (y rests at 0)
  assert all(s == 0.0 for s in dfdx.jet(g, (2.0, 0.0), ([1.0, 0.0], [0.0, 0.0]))[1])
  h = dfdx.grad(lambda x: dnp.where(x > 0, dnp.log(x), 0.0))
  with np.errstate(all="ignore"):
    assert dfdx.jet(h, (0.0,), ([1.0],))[1][0] == 0.0


def test_powers_at_zero_equal_nested_jvp():
  # x ** c with a constant c that is not an integer power: its recurrence divides by x, so
  # at x = 0 the JVP rule's series is used (0 / 0 made every term 0 after the rerun)
  def nested(f, x, order):
    d = f
    for _ in range(order):
      d = (lambda g: lambda x: dfdx.jvp(g, (x,), (np.ones_like(x),))[1])(d)
    return d(x)
  for c in (np.array([2.0, 3.0]), np.array([0.5, 1.5]), np.array([2.5, 1.0])):
    f = lambda x, c=c: x ** c  # noqa: E731
    for x in (np.zeros(2), np.array([0.0, 0.7])):
      series = ([np.ones(2), np.zeros(2), np.zeros(2)],)
      for jet in (dfdx.jet, lambda *a: dfdx.jit(lambda x: dfdx.jet(f, (x,), a[2]))(x)):
        _, terms = jet(f, (x,), series)
        for order, term in enumerate(terms, 1):
          with np.errstate(all="ignore"):
            np.testing.assert_allclose(term, nested(f, x, order), rtol=1e-14)


def test_outputs_that_are_scalars_come_back_as_numpy_scalars():
  out, terms = dfdx.jet(lambda x: (x, 3.0), (1.0,), ([1.0, 0.0],))
  assert type(out[0]) is np.float64 and type(out[1]) is np.float64
  assert type(terms[0][0]) is np.float64


def test_a_buffer_changed_in_place_between_operations():
  def f(x):
    w = np.empty(2)
    total = 0.0
    for k in range(3):
      w[:] = k + 1.0  # one NumPy work array, overwritten
      total = total + dnp.sum(dnp.sin(x * w))
    return total
  x = np.array([0.3, 0.5])
  value, series = dfdx.jet(f, (x,), ([np.ones(2)],))
  assert value == pytest.approx(f(x), rel=1e-15)
  assert series[0] == pytest.approx(sum((k + 1) * np.cos((k + 1) * x).sum() for k in range(3)),
                                    rel=1e-14)


def test_rules_that_would_branch_per_order():
  # expit and x ** 2.5 have Taylor rules of their own; jitted blocks and checkpoints are
  # their equations. Each costs a polynomial in the order (the JVP-rule recursion of these
  # doubled per order: 286,000 binds for expit at order 14).
  import dfdx.scipy.special as dss
  x = np.linspace(0.2, 0.8, 5)
  body = lambda c: dnp.sin(c) * 0.9 + dnp.arctan(c) * 0.1  # noqa: E731
  for fn in (dss.expit, lambda y: y ** 2.5, dfdx.jit(lambda y: body(body(y))),
             dfdx.checkpoint(lambda y: body(body(y)))):
    path = ([np.ones(5)] + [np.zeros(5)] * 13,)
    assert sum(core.count_binds(lambda: dfdx.jet(fn, (x,), path)).values()) < 20_000
    curved = ([np.ones(5), 0.3 * np.ones(5), np.zeros(5)],)
    _, series = dfdx.jet(fn, (x,), curved)
    g = lambda t: fn(x + t + 0.3 * t ** 2 / 2)  # noqa: E731
    for k, ref in enumerate((dfdx.jacfwd(g)(0.0), dfdx.jacfwd(dfdx.jacfwd(g))(0.0),
                             dfdx.jacfwd(dfdx.jacfwd(dfdx.jacfwd(g)))(0.0))):
      np.testing.assert_allclose(series[k], ref, rtol=1e-12, atol=1e-12)


def test_float32_with_python_constants_and_none_terms():
  x, v = np.float32([0.2, 0.3]), np.float32([1.0, 1.0])
  for fn in (lambda x: x + 1.0, lambda x: dfdx.scan(lambda c, _: (c * 0.5 + 1.0, None), x,
                                                     None, length=3)[0]):
    for series in (dfdx.jet(fn, (x,), ([v, v],))[1],
                   dfdx.jit(lambda x: dfdx.jet(fn, (x,), ([v, v],))[1])(x)):
      assert [s.dtype for s in series] == [np.float32, np.float32]
  with pytest.raises(ValueError, match="series term 1 of primal 0 is .*None; pass zeros"):
    dfdx.jet(dnp.sin, (1.0,), ([None, 0.0],))


def test_integer_operands_of_sums_are_constants():
  x = np.array([0.1, 0.2, 0.3])
  value, series = dfdx.jet(lambda x: x + np.arange(3), (x,), ([np.ones(3), np.ones(3)],))
  np.testing.assert_array_equal(value, x + np.arange(3))
  np.testing.assert_array_equal(series[0], np.ones(3))
  np.testing.assert_array_equal(series[1], np.ones(3))


@pytest.mark.parametrize("kind", ["scan", "cond true", "cond false", "switch", "while"])
def test_staged_loops_and_branches_cost_a_polynomial(kind):
  # Under jit a scan, cond or while runs over the coefficients of its body (its JVP rule
  # would nest one program per order: 27 s at order 8 for a 3-step scan).
  w = np.linspace(1.0, 2.0, 4)
  body = lambda c: dnp.sin(c) * 0.9 + dnp.arctan(c) * 0.1 * w  # noqa: E731
  if kind == "scan":
    staged = lambda x: dfdx.scan(lambda c, s: (body(c) + s * c, c ** 2), x,  # noqa: E731
                                 np.linspace(0, 1, 3)[:, None] * np.ones(4))
    def plain(x):
      ys = []
      for s in np.linspace(0, 1, 3)[:, None] * np.ones(4):
        ys.append(x ** 2)
        x = body(x) + s * x
      return x, dnp.stack(ys)
  elif kind == "while":
    staged = lambda x: dfdx.while_loop(  # noqa: E731
        lambda c: c[0] < 3, lambda c: (c[0] + 1, body(c[1]) + c[1] * c[0]), (0, x))[1]
    def plain(x):
      for i in range(3):
        x = body(x) + x * i
      return x
  elif kind == "switch":
    staged = lambda x: dfdx.switch(1, [lambda y: y * 0.0 + 1.0, body, lambda y: y], x)  # noqa: E731
    plain = body
  else:
    p = 1.0 if kind == "cond true" else -1.0
    staged = lambda x: dfdx.cond(p > 0, body, lambda y: y ** 2, x)  # noqa: E731
    plain = body if p > 0 else (lambda y: y ** 2)
  x = np.linspace(0.1, 0.9, 4)
  path = ([np.ones(4), 0.2 * np.ones(4)] + [np.zeros(4)] * 10,)
  counts = core.count_binds(lambda: dfdx.jet(dfdx.jit(staged), (x,), path))
  assert sum(counts.values()) < 20_000
  got = dfdx.tree.tree_leaves(dfdx.jet(dfdx.jit(staged), (x,), path)[1])
  expected = dfdx.tree.tree_leaves(dfdx.jet(plain, (x,), path)[1])
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_linear_solve_by_its_recurrence():
  # A_0 x_n = b_n - sum_j A_j x_(n-j): one solve per term (its JVP rule solves twice per
  # order, 2^K solves in all).
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(4, 4)) + 4 * np.eye(4), rng.normal(size=4)
  da, db = rng.normal(size=(4, 4)), rng.normal(size=4)
  f = lambda a, b: dnp.linalg.solve(a, b)  # noqa: E731
  _, series = dfdx.jet(f, (a, b), ([da, da, 0 * da], [db, 0 * db, db]))
  g = lambda t: f(a + t * da + t ** 2 / 2 * da, b + t * db + t ** 3 / 6 * db)  # noqa: E731
  d = g
  for k in range(3):
    d = dfdx.jacfwd(d)
    np.testing.assert_allclose(series[k], d(0.0), rtol=1e-11, atol=1e-12)
  path = ([da] + [0 * da] * 11, [db] + [0 * db] * 11)
  counts = core.count_binds(lambda: dfdx.jet(f, (a, b), path))
  assert counts["solve"] <= 14  # (a value and one per term)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_prod_and_cumprod_by_trees_of_products(axis):
  # Along x + t v every factor is linear in t, so a product of n factors is a polynomial of
  # degree n, and its normalized coefficients are those of the product of the factors'
  # polynomials (checked to order 8, beyond the degree: zeros). A zero factor included.
  rng = np.random.default_rng(5)
  x, v = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
  x[1, 2] = 0.0
  order = 8
  path = [v] + [np.zeros_like(v)] * (order - 1)

  def coefficients(xs, vs):
    poly = np.polynomial.Polynomial([1.0])
    for a, b in zip(xs, vs):
      poly = poly * np.polynomial.Polynomial([a, b])
    c = np.zeros(order + 1)
    c[:len(poly.coef)] = poly.coef[:order + 1]
    return [c[k] * math.factorial(k) for k in range(1, order + 1)]  # (derivatives in t)

  def groups(a):
    if axis is None or axis == (0, 1):
      return a.reshape(1, -1)
    return np.moveaxis(a, axis, -1).reshape(-1, a.shape[axis])
  value, series = dfdx.jet(lambda x: dnp.prod(x, axis=axis), (x,), (path,))
  np.testing.assert_array_equal(value, np.prod(x, axis=axis))
  expected = np.array([coefficients(a, b) for a, b in zip(groups(x), groups(v))])
  np.testing.assert_allclose(np.reshape(series, (order, -1)).T, expected, rtol=1e-12,
                             atol=1e-12)
  if isinstance(axis, int):
    value, series = dfdx.jet(lambda x: dnp.cumprod(x, axis=axis), (x,), (path,))
    np.testing.assert_array_equal(value, np.cumprod(x, axis=axis))
    n = x.shape[axis]
    for i in range(n):  # (the prefix of length i + 1 is a product of i + 1 factors)
      prefix = [np.take(s, i, axis=axis) for s in series]
      xs, vs = np.take(x, range(i + 1), axis=axis), np.take(v, range(i + 1), axis=axis)
      want = np.array([coefficients(a, b) for a, b in zip(np.moveaxis(xs, axis, -1),
                                                          np.moveaxis(vs, axis, -1))])
      np.testing.assert_allclose(np.array(prefix).T, want, rtol=1e-12, atol=1e-12)


def test_prod_and_cumprod_cost_a_polynomial_along_curved_paths():
  # (Their JVP rules call cumprod again: through them, order 4 took 13 s on a (30, 50) array
  # and order 6 asked for 63 GiB.)
  rng = np.random.default_rng(6)
  x, v = rng.uniform(0.5, 1.5, (30, 50)), rng.normal(size=(30, 50))
  path = [v, -v, 0.5 * v, v, v, -v, v, v]
  f = lambda x: dnp.prod(x, axis=1) + dnp.sum(dnp.cumprod(x[:, ::-1], axis=1) ** 2, axis=1)  # noqa: E731
  counts = core.count_binds(lambda: dfdx.jet(f, (x,), (path,)))
  assert counts["mul"] < 2000 and counts.get("cumprod", 0) <= 2
  _, series = dfdx.jet(f, (x[:2, :6],), ([c[:2, :6] for c in path[:3]],))
  g = lambda t: f(x[:2, :6] + t * v[:2, :6] - t ** 2 / 2 * v[:2, :6] + t ** 3 / 12 * v[:2, :6])  # noqa: E731
  d = g
  for k in range(3):
    d = dfdx.jacfwd(d)
    np.testing.assert_allclose(series[k], d(0.0), rtol=1e-10, atol=1e-12)
  assert dfdx.jet(lambda x: dnp.prod(x, axis=1), (np.ones((2, 0)),),
                  ([np.ones((2, 0))],))[1][0].shape == (2,)
