"""Placeholder for the indexing primitives."""
