"""Placeholder for the sorting primitives."""
