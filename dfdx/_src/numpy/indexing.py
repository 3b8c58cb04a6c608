"""Placeholder: filled in by the indexing work. A minimal getitem for integers and slices."""
from dfdx._src.ops import shape as shape_ops

__all__ = []


def getitem(x, idx):
  if isinstance(idx, int):
    n = x.shape[0]
    i = idx % n
    return shape_ops.reshape(shape_ops.slice_in_dim(x, i, i + 1, 0), x.shape[1:])
  raise NotImplementedError(f"indexing with {idx!r}")
