"""Every primitive has every rule it needs and at least one line in the spec table."""
import pytest

from dfdx._src import ad, batching, codegen, core
from tests.op_specs import all_specs

COVERED = {s.prim for s in all_specs()}


@pytest.mark.parametrize("prim", sorted(core.all_primitives.values(), key=lambda p: p.name),
                         ids=lambda p: p.name)
def test_primitive_has_rules_and_spec_line(prim):
  assert prim.impl is not None, f"{prim.name}: no impl"
  assert prim.abstract_eval is not None, f"{prim.name}: no abstract eval"
  assert prim in ad.primitive_jvps, f"{prim.name}: no JVP rule"
  assert prim in batching.primitive_batchers, f"{prim.name}: no batching rule"
  if prim.linear:
    assert prim in ad.primitive_transposes, f"{prim.name}: linear but no transpose rule"
  if prim in ad.primitive_vjps:
    assert not prim.linear, f"{prim.name}: linear primitives use their transpose, not a VJP"
  assert prim in COVERED, f"{prim.name}: no line in the spec table (tests/specs/)"
  assert prim.name in codegen.codegen_rules or prim.name in codegen.INLINED, (
      f"{prim.name}: no NumPy code generation rule (dfdx/_src/codegen_rules.py), so jit "
      "cannot compile it")
