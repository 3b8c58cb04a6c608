"""Spec table, part 3: vmap of every primitive against stacked per-example calls, with the
batch axis first, last, and on each argument alone."""
import numpy as np
import pytest

import dfdx
from tests.checks import assert_same_array
from tests.op_specs import Fixed, all_specs, batching_patterns, cases

CASES = cases([s for s in all_specs() if s.vmap])
BATCH = 3


@pytest.mark.parametrize("spec,shapes", CASES)
def test_vmap_matches_stacked_calls(spec, shapes, rng):
  domains = spec.domains(len(shapes))
  sampleable = [not isinstance(d, Fixed) for d in domains]
  for in_axes in batching_patterns(len(shapes), sampleable):
    examples = [spec.make_args(rng, shapes) for _ in range(BATCH)]
    batched = []
    for i, axis in enumerate(in_axes):
      if axis is None:
        batched.append(examples[0][i])
      else:
        batched.append(np.stack([np.asarray(e[i]) for e in examples], axis=axis))
    per_example = []
    for b in range(BATCH):
      per_example.append(spec.fun(*[examples[b][i] if axis is not None else examples[0][i]
                                    for i, axis in enumerate(in_axes)]))
    with np.errstate(all="ignore"):
      actual = dfdx.vmap(spec.fun, in_axes=in_axes)(*batched)
    expected = _stack(per_example)
    for a, e in zip(_as_list(actual), _as_list(expected)):
      assert_same_array(a, e, rtol=1e-10, atol=1e-12)


def _stack(outs):
  if isinstance(outs[0], (tuple, list)):
    return [np.stack([np.asarray(o[k]) for o in outs]) for k in range(len(outs[0]))]
  return np.stack([np.asarray(o) for o in outs])


def _as_list(x):
  return list(x) if isinstance(x, (tuple, list)) else [x]
