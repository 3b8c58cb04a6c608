"""Spec table, part 1: every primitive's NumPy impl against the NumPy reference, and its
abstract evaluation against the actual result (for every primitive the line binds)."""
import numpy as np
import pytest

from tests.checks import AbstractEvalChecker, assert_same_array
from tests.op_specs import all_specs, cases

CASES = cases(all_specs())


@pytest.mark.parametrize("spec,shapes", CASES)
def test_impl_matches_numpy(spec, shapes, rng):
  args = spec.make_args(rng, shapes)
  with np.errstate(all="ignore"):
    expected = spec.ref(*args)
    actual = spec.fun(*args)
  for a, e in zip(_as_list(actual), _as_list(expected)):
    assert_same_array(a, e)


@pytest.mark.parametrize("spec,shapes", CASES)
def test_abstract_eval_matches_impl(spec, shapes, rng):
  args = spec.make_args(rng, shapes)
  checker = AbstractEvalChecker()
  with np.errstate(all="ignore"):
    actual = checker.run(spec.fun, args)
    expected = spec.ref(*args)
  assert spec.prim in checker.checked, f"{spec.name} does not bind {spec.prim}"
  for a, e in zip(actual, _as_list(expected)):
    assert_same_array(a, e)


def _as_list(x):
  return list(x) if isinstance(x, (tuple, list)) else [x]
