"""Pytrees: nested containers of arrays (tuples, lists, dicts, namedtuples, None,
dataclasses, PhiML-style classes and registered types) that dfdx's transformations accept and
return."""
from dfdx._src.tree import (  # noqa: F401
    PyTreeDef as PyTreeDef,
    register_pytree_node as register_pytree_node,
    tree_flatten as tree_flatten,
    tree_leaves as tree_leaves,
    tree_map as tree_map,
    tree_structure as tree_structure,
    tree_unflatten as tree_unflatten,
)
