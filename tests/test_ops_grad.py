"""Spec table, part 2: derivatives of every primitive against finite differences in float64,
forward and reverse, to second order; reverse mode also with the direct VJP rules off (the
transpose of the JVP rules alone)."""
import pytest

from dfdx._src import ad
from dfdx.testing import check_grads
from tests.checks import differentiable_part
from tests.op_specs import all_specs, cases

CASES = cases([s for s in all_specs() if s.grad], differentiable=True)


@pytest.mark.parametrize("spec,shapes", CASES)
def test_grads(spec, shapes, rng):
  args = spec.make_args(rng, shapes)
  f, diff_args = differentiable_part(spec, args, shapes)
  check_grads(f, diff_args, order=spec.order, modes=("fwd", "rev"), eps=spec.eps,
              atol=spec.atol, rtol=spec.rtol, rng=rng)


@pytest.mark.parametrize("spec,shapes", CASES)
def test_grads_without_vjp_rules(spec, shapes, rng):
  args = spec.make_args(rng, shapes)
  f, diff_args = differentiable_part(spec, args, shapes)
  with ad.use_vjp_rules(False):
    check_grads(f, diff_args, order=spec.order, modes=("rev",), eps=spec.eps, atol=spec.atol,
                rtol=spec.rtol, rng=rng)
