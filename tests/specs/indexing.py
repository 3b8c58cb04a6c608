"""Spec lines of the indexing primitives (see tests/op_specs.py)."""
SPECS = []
