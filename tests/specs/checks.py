"""Spec lines of check (dfdx/_src/ops/checks.py): the identity on values that pass, for each
kind of check (failures: tests/test_numpy_reductions.py, tests/test_implicit.py)."""
import numpy as np

from dfdx._src.ops import checks
from tests.op_specs import OpSpec

SPECS = [
    OpSpec("check_nonzero", checks.check_p,
           lambda x: checks.check(x * x + 1.0, "nonzero", "ZeroDivisionError", "zero"),
           lambda x: x * x + 1.0, [((3,),), ((2, 3),), ((),)]),
    OpSpec("check_nonsingular", checks.check_p,
           lambda a: checks.check(a + 3 * np.eye(a.shape[-1]), "nonsingular", "LinAlgError",
                                  "singular"),
           lambda a: a + 3 * np.eye(a.shape[-1]), [((3, 3),), ((2, 2, 2),)],
           domain=(-1.0, 1.0)),
]
