"""A table of small functions f(w, x), each using scan, fori_loop, while_loop, cond or switch in
a different way (pytree carries, reverse order, nesting, data-dependent trip counts and
branches). Each is checked against its plain Python-loop run (outside jit and vmap): values
under jit; grad, jacrev, jacfwd and hessian with respect to w, both jit(D(f)) and D(jit(f));
vmap over a batch of three inputs (the examples take different branches and trip counts);
finite differences to second order; and linearize under jit."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads

RTOL, ATOL = 1e-10, 1e-12


# ---- the table ----------------------------------------------------------------------------------


def scan_pytree(w, x):
  """A dict carry holding a tuple, per-step outputs that are a pair; w a vector."""
  def step(c, xt):
    h = dnp.tanh(w * c["h"] + xt)
    return {"h": h, "s": (c["s"][0] + dnp.sum(h * xt),)}, (h ** 2, dnp.sin(c["s"][0]))
  c, (ys, zs) = dfdx.scan(step, {"h": dnp.zeros_like(x[0]) + 0.2, "s": (0.1,)}, x)
  return dnp.sum(ys, axis=0) * c["s"][0] + c["h"] + dnp.sum(zs)


def scan_reverse(w, x):
  c, ys = dfdx.scan(lambda c, xt: (dnp.sin(c * w) + xt, c * xt), 0.3, x, reverse=True)
  return ys * c


def scan_length(w, x):
  """xs=None: the body closes over x and sees None."""
  def step(c, none):
    assert none is None
    return dnp.tanh(c * w + x), dnp.sum(c * x)
  c, ys = dfdx.scan(step, x, length=4)
  return dnp.concatenate([ys, c])


def fori(w, x):
  return dfdx.fori_loop(1, 5, lambda i, v: dnp.sin(v * w) + x / i, x)


def while_fixed(w, x):
  """A counter decides when to stop: the trip count does not depend on w or x."""
  return dfdx.while_loop(lambda v: v[1] < 4,
                         lambda v: (dnp.tanh(v[0] * w) + x * v[0], v[1] + 1), (x, 0))[0]


def while_newton(w, x):
  """Newton's sqrt with a relative tolerance: the trip count depends on the data (bigger
  entries take more steps), the result is sqrt(a) to rounding, a smooth function."""
  a = 1.0 + w ** 2 * dnp.exp(x)
  return dfdx.while_loop(lambda v: dnp.max(dnp.abs(v * v - a) / a) > 1e-13,
                         lambda v: (v + a / v) / 2, a)


def cond_sign(w, x):
  s = dnp.sum(dnp.sin(x * w))
  return dfdx.cond(s > 0, lambda u: dnp.exp(u * w) * s, lambda u: dnp.cos(u) * w ** 2, x)


def switch_three(w, x):
  """The index counts the positive entries of x (0 to 3), clipped to the last branch."""
  return dfdx.switch(dnp.sum(x > 0),
                     [lambda u: dnp.sin(u * w), lambda u: w * dnp.tanh(u) ** 2,
                      lambda u: dnp.exp(-w * u) * u], x)


def scan_of_cond(w, x):
  def step(c, xt):
    c = dfdx.cond(xt > 0, lambda c: dnp.sin(c * w) + xt, lambda c: c * w - xt, c)
    return c, c ** 2
  c, ys = dfdx.scan(step, 0.5, x)
  return ys * c


def scan_of_scan(w, x):
  def outer(c, row):
    inner, zs = dfdx.scan(lambda d, xt: (dnp.sin(d * w + xt), d * xt), c, row)
    return inner, inner * c + dnp.sum(zs)
  return dfdx.scan(outer, 0.5, x)[1]


def fori_of_while(w, x):
  """The inner loop's trip count depends on the outer loop's index (2, 3, 4 steps)."""
  def body(i, v):
    inner = dfdx.while_loop(lambda s: s[1] < i + 2,
                            lambda s: (dnp.sin(s[0] * w) + 0.5 * x, s[1] + 1), (v, 0))
    return inner[0] * dnp.cos(v)
  return dfdx.fori_loop(0, 3, body, x)


# Each entry: f, w, and three x inputs (the batch for the vmap tests; every one of them is also
# checked alone). The inputs stay well away from branch boundaries.
_X3 = np.array([[0.3, -0.6, 0.9], [-0.4, -0.7, -0.2], [0.8, 0.5, 1.1]])
TABLE = [
    pytest.param(scan_pytree, np.array([0.7, -0.4]),
                 np.array([[[0.3, -0.5], [0.8, 0.1], [-0.2, 0.6], [0.4, -0.9]],
                           [[-0.7, 0.2], [0.1, 0.5], [0.9, -0.3], [-0.6, 0.4]],
                           [[0.5, 0.5], [-0.8, -0.1], [0.2, 0.7], [0.3, 0.3]]]),
                 id="scan_pytree_carry"),
    pytest.param(scan_reverse, 0.8, np.array([[0.3, -0.5, 0.8, 0.1, -0.2],
                                              [0.9, 0.4, -0.6, 0.2, 0.5],
                                              [-0.3, -0.8, 0.1, 0.7, 0.6]]),
                 id="scan_reverse"),
    pytest.param(scan_length, 0.9, _X3, id="scan_xs_none_length"),
    pytest.param(fori, 1.2, _X3, id="fori_loop"),
    pytest.param(while_fixed, 0.7, _X3 * 0.5, id="while_fixed_count"),
    pytest.param(while_newton, 1.3, np.array([[0.3, -0.6, 0.9], [4.0, 6.0, 5.0],
                                              [-2.0, 9.0, 0.1]]), id="while_newton_sqrt"),
    pytest.param(cond_sign, 0.9, _X3, id="cond_on_sign"),
    pytest.param(switch_three, 0.8, np.array([[-0.3, -0.6, -0.9], [0.4, -0.7, 0.2],
                                              [0.8, 0.5, 1.1]]), id="switch_three_way"),
    pytest.param(scan_of_cond, 0.9, _X3, id="scan_of_cond"),
    pytest.param(scan_of_scan, 0.8, np.array([_X3, _X3[::-1] * 0.7, -_X3.T]),
                 id="scan_of_scan"),
    pytest.param(fori_of_while, 0.6, _X3, id="fori_of_while"),
]


def test_the_table_reaches_every_branch_and_trip_count():
  """The batches are chosen so that the vmap tests see per-example branches and trip counts."""
  xs = [p.values[2] for p in TABLE if p.values[0] is cond_sign][0]
  assert [bool(np.sum(np.sin(x * 0.9)) > 0) for x in xs] == [True, False, True]
  xs = [p.values[2] for p in TABLE if p.values[0] is switch_three][0]
  assert [int(np.sum(x > 0)) for x in xs] == [0, 2, 3]
  xs = [p.values[2] for p in TABLE if p.values[0] is while_newton][0]
  steps = []
  for x in xs:
    a = 1.0 + 1.3 ** 2 * np.exp(x)
    _, n = dfdx.while_loop(lambda v: np.max(np.abs(v[0] * v[0] - a) / a) > 1e-13,
                           lambda v: ((v[0] + a / v[0]) / 2, v[1] + 1), (a, 0))
    steps.append(int(n))
  assert len(set(steps)) == 3, steps
  np.testing.assert_allclose(while_newton(1.3, xs[1]), np.sqrt(1 + 1.3 ** 2 * np.exp(xs[1])),
                             rtol=1e-15)


# ---- references: the Python loops, differentiated without vmap ----------------------------------


def _basis(w):
  w = np.asarray(w, dtype=np.float64)
  return [e.reshape(w.shape) for e in np.eye(w.size)]


def _stack_basis(columns, w):
  """Columns d out / d w[k] (out-shaped) into an out.shape + w.shape array."""
  cols = np.stack([np.asarray(c) for c in columns], axis=-1)
  return cols.reshape(cols.shape[:-1] + np.shape(w))


def ref_jacobian(f, w, x):
  return _stack_basis([dfdx.jvp(lambda w: f(w, x), (w,), (e,))[1] for e in _basis(w)], w)


def _summed(f):
  return lambda w, x: dnp.sum(f(w, x))


def ref_hessian(f, w, x):
  g = dfdx.grad(_summed(f))
  return _stack_basis([dfdx.jvp(lambda w: g(w, x), (w,), (e,))[1] for e in _basis(w)], w)


def assert_close(actual, expected):
  np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# ---- the checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("f,w,xs", TABLE)
def test_jit_values(f, w, xs):
  for x in xs:
    expected = f(w, x)
    assert np.all(np.isfinite(expected))
    assert_close(dfdx.jit(f)(w, x), expected)


@pytest.mark.parametrize("kind", ["grad", "jacrev", "jacfwd", "hessian"])
@pytest.mark.parametrize("f,w,xs", TABLE)
def test_derivatives_under_jit(f, w, xs, kind):
  D, fun = getattr(dfdx, kind), f if kind.startswith("jac") else _summed(f)
  forms = [dfdx.jit(D(fun)), D(dfdx.jit(fun))]  # made once: the examples share the compilations
  if kind == "jacfwd":  # jacfwd's forward application of its tape: outside jit too
    forms.append(D(fun))
  for x in xs:
    if kind == "grad":
      expected = dfdx.grad(fun)(w, x)  # the Python loops' tape
      assert_close(expected, ref_jacobian(fun, w, x))
    elif kind == "hessian":
      expected = ref_hessian(f, w, x)
    else:
      expected = ref_jacobian(f, w, x)
    assert np.all(np.isfinite(expected)) and np.any(expected != 0)
    for got in (form(w, x) for form in forms):
      assert np.shape(got) == np.shape(expected)
      assert_close(got, expected)


@pytest.mark.parametrize("f,w,xs", TABLE)
def test_vmap(f, w, xs):
  expected = np.stack([f(w, x) for x in xs])
  assert_close(dfdx.vmap(f, in_axes=(None, 0))(w, xs), expected)
  assert_close(dfdx.jit(dfdx.vmap(f, in_axes=(None, 0)))(w, xs), expected)
  g = dfdx.grad(_summed(f))
  expected = np.stack([g(w, x) for x in xs])
  assert_close(dfdx.vmap(g, in_axes=(None, 0))(w, xs), expected)
  assert_close(dfdx.jit(dfdx.vmap(g, in_axes=(None, 0)))(w, xs), expected)


@pytest.mark.parametrize("f,w,xs", TABLE)
def test_check_grads_under_jit(f, w, xs):
  jitted = dfdx.jit(f)
  for x in xs[:2]:  # two examples: for cond and switch, two branches; for Newton, two counts
    check_grads(jitted, (w, x), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("f,w,xs", TABLE)
def test_linearize_under_jit(f, w, xs):
  tangent = np.reshape(np.linspace(-1.0, 1.5, np.size(w)), np.shape(w))
  for x in xs:
    value, jvp_fn = dfdx.linearize(dfdx.jit(lambda w: f(w, x)), w)
    expected_value, expected_tangent = dfdx.jvp(lambda w: f(w, x), (w,), (tangent,))
    assert_close(value, expected_value)
    assert np.any(expected_tangent != 0)
    assert_close(jvp_fn(tangent), expected_tangent)
    assert_close(jvp_fn(2.0 * tangent), 2.0 * expected_tangent)
