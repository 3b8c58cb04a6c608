"""Spec table, part 4: for linear primitives, the dot-product test of the transpose rule:
<ct, L(x)> == <L^T(ct), x>, through the node path and through transposed JVP rules."""
import numpy as np
import pytest

import dfdx
from dfdx._src import ad
from tests.checks import differentiable_part
from tests.op_specs import all_specs, cases

CASES = cases([s for s in all_specs() if s.is_linear()], differentiable=True)


@pytest.mark.parametrize("vjp_rules", [True, False])
@pytest.mark.parametrize("spec,shapes", CASES)
def test_transpose_dot_product(spec, shapes, vjp_rules, rng):
  args = list(spec.make_args(rng, shapes))
  linear, diff_args = differentiable_part(spec, args, shapes)
  xs = tuple(np.asarray(rng.standard_normal(np.shape(a))) for a in diff_args)
  with ad.use_vjp_rules(vjp_rules):
    out, vjp_fn = dfdx.vjp(linear, *xs)
    ct = rng.standard_normal(np.shape(out))
    cts = vjp_fn(ct)
  lhs = float(np.vdot(ct, np.asarray(out, np.float64)))
  rhs = sum(float(np.vdot(c, x)) for c, x in zip(cts, xs))
  np.testing.assert_allclose(lhs, rhs, rtol=spec.transpose_rtol, atol=spec.transpose_rtol)
