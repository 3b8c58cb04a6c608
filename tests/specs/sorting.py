"""Spec lines of the sorting primitives (see tests/op_specs.py)."""
SPECS = []
