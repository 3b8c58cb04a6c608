"""Placeholder for the linalg primitives."""
