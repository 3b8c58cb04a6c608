"""Placeholder for the special primitives."""
