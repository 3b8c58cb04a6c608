"""Placeholder: more of NumPy's API (sorting, nan-reductions, convolutions, ...)."""
__all__ = []
