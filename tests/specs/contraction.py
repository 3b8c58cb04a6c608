"""Spec lines of the contraction primitives (see tests/op_specs.py)."""
SPECS = []
