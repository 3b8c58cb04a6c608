"""Placeholder: filled in by the manipulation work."""
__all__ = []
