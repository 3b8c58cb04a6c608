"""Spec table, part 2: derivatives of every primitive against finite differences in float64,
forward and reverse, to second order; reverse mode also with the direct VJP rules off (the
transpose of the JVP rules alone)."""
import pytest

from dfdx._src import ad
from dfdx.testing import check_grads
from tests.op_specs import all_specs, cases

CASES = cases([s for s in all_specs() if s.grad], differentiable=True)


def _differentiable(spec, args, shapes):
  argnums = spec.differentiated(shapes)

  def f(*diff_args):
    full = list(args)
    for i, a in zip(argnums, diff_args):
      full[i] = a
    return spec.fun(*full)
  f.__name__ = spec.name
  return f, tuple(args[i] for i in argnums)


@pytest.mark.parametrize("spec,shapes", CASES)
def test_grads(spec, shapes, rng):
  args = spec.make_args(rng, shapes)
  f, diff_args = _differentiable(spec, args, shapes)
  check_grads(f, diff_args, order=spec.order, modes=("fwd", "rev"), eps=spec.eps,
              atol=spec.atol, rtol=spec.rtol, rng=rng)


@pytest.mark.parametrize("spec,shapes", CASES)
def test_grads_without_vjp_rules(spec, shapes, rng):
  args = spec.make_args(rng, shapes)
  f, diff_args = _differentiable(spec, args, shapes)
  with ad.use_vjp_rules(False):
    check_grads(f, diff_args, order=spec.order, modes=("rev",), eps=spec.eps, atol=spec.atol,
                rtol=spec.rtol, rng=rng)
