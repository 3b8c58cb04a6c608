"""Sums of products that share a factor, computed as one product (factoring.share_factors,
compiled code only). Each test checks which products are left and that the values are the
original program's to rounding; jit of a forward-mode Jacobian through a large constant
matrix runs the rewritten program."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src.factoring import share_factors
from dfdx._src.ir import eval_program, typecheck_program


def _programs(f, *args):
  program = dfdx.make_expr(f)(*args).program
  shared = share_factors(program)
  typecheck_program(shared)
  for a, b in zip(eval_program(program, *args), eval_program(shared, *args), strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
  return program, shared


def _products(program):
  return [e for e in program.eqns if e.prim.name == "dot_general"]


def _with(program, w_shape):
  """The products one of whose operands has the shape of W."""
  return [e for e in _products(program) if any(a.aval.shape == w_shape for a in e.inputs)]


def test_a_sum_of_products_with_one_matrix_is_one_product(rng):
  a, b, w = rng.normal(size=(6, 40)), rng.normal(size=(6, 40)), rng.normal(size=(40, 300))
  original, shared = _programs(lambda a, b, w: a @ w + b @ w, a, b, w)
  assert len(_products(original)) == 2
  product, = _products(shared)
  assert product.inputs[1].aval.shape == (40, 300)
  assert [e.prim.name for e in shared.eqns] == ["add", "dot_general"]


def test_a_forward_mode_tangent_through_a_product_chain(rng):
  """The tangent of R (A W): dR (A W) + R (dA W), as (dR A + R dA) W."""
  r, dr = rng.normal(size=(3, 3)), rng.normal(size=(8, 3, 3))  # 8 tangents
  a, da, w = rng.normal(size=(3, 30)), rng.normal(size=(8, 3, 30)), rng.normal(size=(30, 500))

  def tangent(r, dr, a, da, w):
    aw = a @ w
    first = dnp.einsum("kij,jn->kin", dr, aw)
    second = dnp.einsum("ij,kjn->kin", r, dnp.einsum("kjm,mn->kjn", da, w))
    return first + second, aw
  original, shared = _programs(tangent, r, dr, a, da, w)
  # A W stays (it is also an output); the tangent's products with W become one.
  assert len(_with(original, (30, 500))) == 2 and len(_products(original)) == 4
  assert len(_with(shared, (30, 500))) == 2
  large = [e for e in _products(shared) if e.outputs[0].aval.size >= 3 * 500]
  assert len(large) == 2  # A W and the tangent's one product


@pytest.mark.parametrize("case", ["transposed", "w_on_the_left", "negated_and_scaled",
                                  "difference"])
def test_terms_read_through_transposes_negations_and_scalings(rng, case):
  a, b, w = rng.normal(size=(5, 4, 20)), rng.normal(size=(4, 5, 20)), rng.normal(size=(20, 70))
  terms = {
      "transposed": lambda a, b, w: dnp.transpose(a @ w, (1, 0, 2)) + b @ w,
      "w_on_the_left": lambda a, b, w: (dnp.einsum("mn,ijm->nij", w, a)
                                        + dnp.transpose(b @ w, (2, 1, 0))),
      "negated_and_scaled": lambda a, b, w: -(a @ w) + 2.5 * dnp.transpose(b @ w, (1, 0, 2)),
      "difference": lambda a, b, w: a @ w - dnp.transpose(b @ w, (1, 0, 2)),
  }
  original, shared = _programs(terms[case], a, b, w)
  assert len(_with(original, (20, 70))) == 2
  assert len(_with(shared, (20, 70))) == 1


def test_equal_constants_are_one_factor(rng):
  """Two constants holding the same matrix (a gather of one constant folded twice) count as
  one W."""
  w = rng.normal(size=(30, 200))
  w2 = w.copy()
  a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
  original, shared = _programs(lambda a, b: a @ w + b @ w2, a, b)
  assert len(_products(shared)) == 1
  other = w.copy()
  other[3, 7] += 1.0
  original, kept = _programs(lambda a, b: a @ w + b @ other, a, b)
  assert kept is original


def test_a_reassociation_that_costs_more_is_not_made(rng):
  """R (A W) + B W with W a single column: (R A + B) W would multiply R by all of A."""
  r, a = rng.normal(size=(3, 400)), rng.normal(size=(400, 300))
  b, w = rng.normal(size=(3, 300)), rng.normal(size=(300, 1))
  original, kept = _programs(lambda r, a, b, w: r @ (a @ w) + b @ w, r, a, b, w)
  assert kept is original


def test_what_dies_with_the_rewrite_decides_it(rng):
  """(R A + B) W in place of R (A W) + B W, with W taller than wide: worth it only where A W
  is computed for the sum alone."""
  r, a = rng.normal(size=(3, 40)), rng.normal(size=(40, 300))
  b, w = rng.normal(size=(3, 300)), rng.normal(size=(300, 10))
  original, shared = _programs(lambda r, a, b, w: r @ (a @ w) + b @ w, r, a, b, w)
  assert len(_with(shared, (300, 10))) == 1

  def also_returned(r, a, b, w):
    aw = a @ w
    return r @ aw + b @ w, aw
  original, kept = _programs(also_returned, r, a, b, w)
  assert kept is original


@pytest.mark.parametrize("case", ["batched", "integers", "broadcast_sum", "contracts_w",
                                  "w_axes_elsewhere"])
def test_sums_left_as_they_are(rng, case):
  w = rng.normal(size=(10, 50))
  args = {
      "batched": (lambda a, b, w: dnp.matmul(a, w) + dnp.matmul(b, w),
                  rng.normal(size=(4, 3, 10)), rng.normal(size=(4, 3, 10)),
                  rng.normal(size=(4, 10, 50))),
      "integers": (lambda a, b, w: a @ w + b @ w, rng.integers(0, 9, (3, 10)),
                   rng.integers(0, 9, (3, 10)), rng.integers(0, 9, (10, 50))),
      "broadcast_sum": (lambda a, b, w: a @ w + b @ w, rng.normal(size=(3, 10)),
                        rng.normal(size=(1, 10)), w),
      # (A W) C contracts W's own axis: that term is no product of something with W.
      "contracts_w": (lambda a, c, w: (a @ w) @ c + a @ w, rng.normal(size=(3, 10)),
                      rng.normal(size=(50, 50)), w),
      # Square terms whose W axes sit at different places: A W + (B W)^T.
      "w_axes_elsewhere": (lambda a, b, w: a @ w + (b @ w).T, rng.normal(size=(50, 10)),
                           rng.normal(size=(50, 10)), w),
  }
  f, *xs = args[case]
  original, kept = _programs(f, *xs)
  assert kept is original


def test_jit_of_a_skinning_jacobian_matches_eager_and_differences(rng):
  """Forward mode through rotate(pose, skin(W)): jit's one product with W gives eager's
  Jacobian to rounding, and both agree with central differences."""
  w = rng.normal(size=(4, 400)) / 2

  def pose(theta):
    c, s = dnp.cos(theta[0]), dnp.sin(theta[0])
    rot = dnp.stack([dnp.stack([c, -s, 0.0 * c]), dnp.stack([s, c, 0.0 * c]),
                     dnp.stack([0.0 * c, 0.0 * c, 1.0 + 0.0 * c])])
    skin = dnp.reshape(dnp.tanh(theta[1:]), (3, 4)) @ w
    return dnp.reshape(rot @ skin, (-1,))

  theta = rng.normal(size=13)
  eager = dfdx.jacfwd(pose)(theta)
  jitted = dfdx.jit(dfdx.jacfwd(pose))(theta)
  np.testing.assert_allclose(jitted, eager, rtol=1e-12, atol=1e-13)
  h = 1e-6
  columns = [(pose(theta + h * e) - pose(theta - h * e)) / (2 * h) for e in np.eye(13)]
  np.testing.assert_allclose(eager, np.stack(columns, axis=1), rtol=1e-6, atol=1e-7)
