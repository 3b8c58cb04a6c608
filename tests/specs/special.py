"""Spec lines of the special primitives (see tests/op_specs.py)."""
SPECS = []
