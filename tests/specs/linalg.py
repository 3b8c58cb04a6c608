"""Spec lines of the linalg primitives (see tests/op_specs.py)."""
SPECS = []
