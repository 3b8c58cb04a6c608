"""The primitives, one module per family. Importing this package registers all of them."""
from dfdx._src.ops import shape, reduction, elementwise  # noqa: F401  (shape first)
from dfdx._src.ops import indexing, contraction, linalg, special, sorting  # noqa: F401
