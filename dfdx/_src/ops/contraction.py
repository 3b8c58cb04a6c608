"""Placeholder for the contraction primitives."""
