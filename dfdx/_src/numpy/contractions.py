"""Placeholder: filled in by the contractions work."""
__all__ = []
