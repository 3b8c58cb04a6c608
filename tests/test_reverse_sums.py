"""Eager reverse mode doing less work than the plain rules: a product's cotangent summed over
a broadcast axis is computed from the summed factor (contraction.PendingProduct), x ** y's
cotangent scaled before it is broadcast, and a gather's transpose planned instead of
np.add.at. Each is checked against finite differences, forward mode or NumPy, and for doing
less work."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import ad
from dfdx._src.ops import contraction, indexing
from dfdx.testing import check_grads


@pytest.fixture
def products(monkeypatch):
  """The output shapes of every dot_general computed while the fixture is active."""
  shapes = []
  impl = contraction.dot_general_p.impl

  def recording(x, y, **params):
    out = impl(x, y, **params)
    shapes.append(out.shape)
    return out
  monkeypatch.setattr(contraction.dot_general_p, "impl", recording)
  return shapes


def gmm_like(q, mu, x):
  # Q (x - mu) with mu broadcast along the points: mu's cotangent is a product summed over n.
  z = x[None, :, :] - mu[:, :, None]
  return dnp.sum(dnp.tanh(dnp.matmul(q, z)) ** 2)


def test_product_summed_over_a_broadcast_axis_is_computed_from_the_summed_factor(
    rng, products):  # (eager; jit's program is checked below)
  q, mu, x = rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3)), rng.normal(size=(3, 50))
  g_q, g_mu = dfdx.grad(gmm_like, (0, 1))(q, mu, x)
  # The forward product, q's cotangent, and mu's from the summed cotangent: no (4, 3, 50)
  # product in the reverse pass.
  assert sorted(products) == [(4, 1, 3), (4, 3, 3), (4, 3, 50)]
  # Against the closed form: d/dz of sum(tanh(qz)^2) is q^T (2 tanh sech^2)(qz).
  y = np.matmul(q, x[None] - mu[:, :, None])
  g_y = 2 * np.tanh(y) / np.cosh(y) ** 2
  np.testing.assert_allclose(g_mu, -np.einsum("kij,kin->kj", q, g_y), rtol=1e-12)
  np.testing.assert_allclose(g_q, np.einsum("kin,kjn->kij", g_y, x[None] - mu[:, :, None]),
                             rtol=1e-12)
  check_grads(gmm_like, (q, mu, x), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("fun, shapes", [
    # The summed axis from the other factor's free dims: b broadcast along W's rows.
    (lambda w, b: dnp.sum(dnp.sin((w + b[:, None]) @ np.arange(1.0, 13).reshape(4, 3))),
     [(5, 4), (5,)]),
    # Both operands' cotangents pending and broadcast; the sum includes a leading axis.
    (lambda a, b: dnp.sum(dnp.cos(dnp.matmul(a + 0.0 * a[:1], b[None] - 1.0))),
     [(2, 3, 4), (4, 5)]),
    # Only batch axes summed: the product is computed whole, then summed.
    (lambda a, b: dnp.sum(dnp.exp(0.1 * dnp.matmul(a - b[None], np.ones((3, 4, 2))))),
     [(3, 2, 4), (2, 4)]),
    # An add passing its pending cotangent on to a rule that is not a sum (mul).
    (lambda a, b: dnp.sum((a @ b + 1.0) * (a @ b)), [(3, 4), (4, 2)]),
    # The cotangent reaching the differentiated argument itself, and through sub's y side.
    (lambda a, b: dnp.sum(dnp.tanh(a @ (b - a.T))), [(3, 3), (3, 3)]),
])
def test_pending_products_give_the_same_gradients(fun, shapes, rng):
  args = tuple(rng.normal(size=s) for s in shapes)
  check_grads(fun, args, order=2, modes=("rev",))
  forward = dfdx.jacfwd(fun, (0, 1))(*args)  # forward mode: no transposes at all
  for grad in (dfdx.grad(fun, (0, 1)), dfdx.jit(dfdx.grad(fun, (0, 1)))):
    for got, want in zip(grad(*args), forward):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_pending_product_keeps_the_operand_dtype_and_complex_adjoint(rng):
  w = rng.normal(size=(3, 4)).astype(np.float32)
  b = rng.normal(size=(4,)).astype(np.float32)
  x = rng.normal(size=(4, 6))  # float64: the product is float64, the cotangents float32
  g_w, g_b = dfdx.grad(lambda w, b: dnp.sum(w @ (x - b[:, None]).astype(np.float32)),
                       (0, 1))(w, b)
  assert g_w.dtype == g_b.dtype == np.float32
  np.testing.assert_allclose(g_b, -w.sum(0) * 6, rtol=1e-5)
  c = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
  z = rng.normal(size=(4,)) + 1j * rng.normal(size=(4,))

  def f(z):
    return dnp.sum(dnp.abs(c @ (x - z[:, None])) ** 2)
  check_grads(f, (z,), order=1, modes=("rev",))


@pytest.mark.parametrize("power", [2, 3, 4])
@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 3, 6000)])  # ct copied, and a view
def test_power_of_a_broadcast_cotangent(power, shape, rng):
  x = rng.normal(size=shape)

  def f(x):
    return dnp.sum(dnp.sin(dnp.sum(x ** power, axis=1)))
  g = dfdx.grad(f)(x)
  s = np.sum(x ** power, axis=1)
  np.testing.assert_allclose(g, power * x ** (power - 1) * np.cos(s)[:, None, :], rtol=1e-12)
  if x.size < 1000:  # (central differences of a sum of 72000 terms lose too many digits)
    check_grads(f, (x,), order=2, modes=("fwd", "rev"))


def test_power_cotangent_is_scaled_before_it_is_broadcast(rng, monkeypatch):
  from dfdx._src.ops import elementwise
  sizes = []
  impl = elementwise.mul_p.impl

  def recording(a, b):
    out = impl(a, b)
    sizes.append(np.size(out))
    return out
  monkeypatch.setattr(elementwise.mul_p, "impl", recording)
  monkeypatch.setattr(ad, "eager_vjps", {})  # every product through mul's impl, counted
  x = rng.normal(size=(40, 2000))  # large enough for the broadcast to stay a view
  dfdx.grad(lambda x: dnp.sum(dnp.sum(x ** 2, axis=0) * np.arange(2000.0)))(x)
  # Forward: one product of the sums; reverse: its cotangent, 2 * ct, then ct * x: one pass
  # over x's size where 2 * x and ct * (2 x) took two.
  assert sorted(sizes) == [2000, 2000, 2000, 80000]


@pytest.mark.parametrize("index", [
    np.array([5, 1, 5, 0, 5, -1, 3, 1] * 700),  # repeats and a negative index
    np.arange(4999, -1, -1),  # a permutation: every position once
    np.arange(0, 5000, 3),  # some positions never
])
def test_gather_transpose_by_plan_matches_add_at(index, rng):
  x = rng.normal(size=(3, 5000))
  w = rng.normal(size=(3, index.size))
  g = dfdx.grad(lambda x: dnp.sum(x[:, index] * w))(x)
  want = np.zeros_like(x)
  np.add.at(want, (slice(None), index), w)
  np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-14)


def test_plan_follows_an_index_changed_in_place(rng):
  x = rng.normal(size=(2, 5000))
  index = np.arange(5000)
  grad = dfdx.grad(lambda x: dnp.sum(x[:, index] * np.arange(5000.0)))
  np.testing.assert_array_equal(grad(x), np.broadcast_to(np.arange(5000.0), (2, 5000)))
  index[:] = 0  # same array object, new values: the kept plan must not be used
  g = grad(x)
  assert g[0, 0] == np.arange(5000.0).sum() and not g[:, 1:].any()


def test_scatter_add_onto_nonzero_base_keeps_add_at(rng):
  base, updates = rng.normal(size=(2, 5000)), rng.normal(size=(2, 6000))
  index = rng.integers(0, 5000, 6000)
  got = indexing.scatter_add(base, updates, [index], (slice(None), indexing.ArrayIndex(0)))
  want = base.copy()
  np.add.at(want, (slice(None), index), updates)
  np.testing.assert_array_equal(got, want)


def test_jit_program_has_the_summed_product_only(rng):
  q, mu, x = rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3)), rng.normal(size=(3, 50))
  program = str(dfdx.make_expr(dfdx.grad(gmm_like, (0, 1)), optimize=True)(q, mu, x))
  products = [line.split("=")[0].strip() for line in program.splitlines()
              if "dot_general" in line]
  assert sorted(p.split(":")[1] for p in products) == [
      "float64[4,1,3]", "float64[4,3,3]", "float64[4,3,50]"], program
  got = dfdx.jit(dfdx.grad(gmm_like, (0, 1)))(q, mu, x)
  for a, b in zip(got, dfdx.grad(gmm_like, (0, 1))(q, mu, x)):
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


def test_parameters_cotangents_do_not_keep_their_products_factors_alive(rng):
  # A pending product kept as a weight's cotangent until the end of the pass would hold
  # every layer's activation-sized cotangent: 10 more layers' worth of memory here.
  import tracemalloc
  layers, n, width = 10, 2000, 256
  ws = [rng.normal(size=(width, width)) * 0.05 for _ in range(layers)]
  x = rng.normal(size=(n, width))

  def loss(ws, x):
    h = x
    for w in ws:
      h = dnp.tanh(h @ w)
    return dnp.sum(h ** 2)
  grad = dfdx.grad(loss)
  grad(ws, x)
  tracemalloc.start()
  try:
    grad(ws, x)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  layer_bytes = n * width * 8  # two of these a layer are kept for the reverse pass
  assert peak < (2 * layers + 8) * layer_bytes, peak / layer_bytes
