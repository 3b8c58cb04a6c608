"""Spec lines of the indexing primitives (see tests/op_specs.py). Index arrays are `Int`
arguments (sampled, negative entries included, batched by the vmap test; repeated entries are
common) or `Fixed` ones (repeated positions, empty index arrays)."""
import numpy as np

from dfdx._src.ops import indexing as ix
from dfdx._src.ops.indexing import ArrayIndex as A
from tests.op_specs import Fixed, Int, OpSpec

S = slice(None)


def _np_index(spec, arrays):
  return tuple(arrays[e.k] if isinstance(e, A) else e for e in spec)


def gather(name, spec, shapes, domain):
  return OpSpec(name, ix.gather_p, lambda x, *i: ix.gather(x, i, spec),
                lambda x, *i: x[_np_index(spec, i)], shapes, domain=domain)


def _np_update(kind, x, u, spec, arrays):
  out = np.array(x, copy=True)
  if kind == "set":
    out[_np_index(spec, arrays)] = u
  else:
    getattr(np, kind).at(out, _np_index(spec, arrays), u)
  return out


_SCATTERS = {"set": ix.scatter, "add": ix.scatter_add, "multiply": ix.scatter_mul,
             "minimum": ix.scatter_min, "maximum": ix.scatter_max}


def scatter(kind, name, prim, spec, shapes, domain, **kw):
  return OpSpec(name, prim, lambda x, u, *i: _SCATTERS[kind](x, u, i, spec),
                lambda x, u, *i: _np_update(kind, x, u, spec, i), shapes, domain=domain, **kw)


F = (-2.0, 2.0)
DUPLICATES = Fixed(np.array([1, -2, 0, 1, 1]))
EMPTY = Fixed(np.zeros((0,), np.int64))

SPECS = [
    gather("gather_axis0", (A(0),), [((4, 3), (5,)), ((4,), (2, 3)), ((4, 3), ())],
           [F, Int(-4, 4)]),
    gather("gather_axis1", (S, A(0)), [((2, 4), (3,)), ((0, 4), (2,))], [F, Int(-4, 4)]),
    gather("gather_adjacent_broadcast", (S, A(0), A(1)), [((2, 3, 4), (2, 1), (3,))],
           [F, Int(-3, 3), Int(-4, 4)]),
    gather("gather_separated_by_slice", (A(0), S, A(1)), [((3, 2, 4), (2,), (2,))],
           [F, Int(-3, 3), Int(-4, 4)]),
    gather("gather_int_and_array_separated", (1, S, A(0)), [((3, 2, 4), (3,))],
           [F, Int(-4, 4)]),
    gather("gather_int_and_array_adjacent", (S, 1, A(0)), [((3, 2, 4), (2, 2))],
           [F, Int(-4, 4)]),
    gather("gather_newaxis_ellipsis_reversed", (None, A(0), Ellipsis, slice(None, None, -1)),
           [((3, 2, 4), (2,))], [F, Int(-3, 3)]),
    gather("gather_empty_ellipsis_separates", (S, A(0), Ellipsis, A(1)),
           [((3, 4, 5), (2,), (2,))], [F, Int(-4, 4), Int(-5, 5)]),
    gather("gather_strided_slice", (slice(3, None, -2), A(0)), [((5, 3), (4,))],
           [F, Int(-3, 3)]),
    gather("gather_duplicates", (A(0),), [((3, 2), (5,))], [F, DUPLICATES]),
    gather("gather_empty_indices", (S, A(0)), [((3, 2), (0,))], [F, EMPTY]),
    scatter("add", "scatter_add_axis0", ix.scatter_add_p, (A(0),), [((4, 3), (5, 3), (5,))],
            [F, F, Int(-4, 4)]),
    scatter("add", "scatter_add_separated", ix.scatter_add_p, (A(0), S, A(1)),
            [((3, 2, 4), (2, 2), (2,), (2,))], [F, F, Int(-3, 3), Int(-4, 4)]),
    scatter("add", "scatter_add_duplicates", ix.scatter_add_p, (A(0),), [((3,), (5,), (5,))],
            [F, F, DUPLICATES]),
    scatter("add", "scatter_add_basic_index", ix.scatter_add_p, (slice(1, None), None, 0),
            [((3, 2), (2, 1))], [F, F]),
    scatter("add", "scatter_add_empty_indices", ix.scatter_add_p, (S, A(0)),
            [((3, 2), (3, 0), (0,))], [F, F, EMPTY]),
    scatter("set", "scatter_axis0", ix.scatter_p, (A(0),), [((4, 3), (5, 3), (5,))],
            [F, F, Int(-4, 4)]),
    scatter("set", "scatter_adjacent_broadcast", ix.scatter_p, (S, A(0), A(1)),
            [((2, 3, 4), (2, 2, 3), (2, 1), (3,))], [F, F, Int(-3, 3), Int(-4, 4)]),
    scatter("set", "scatter_duplicates", ix.scatter_p, (A(0),), [((3, 2), (5, 2), (5,))],
            [F, F, DUPLICATES]),
    scatter("set", "scatter_basic_reversed", ix.scatter_p, (slice(None, None, -1), 1),
            [((3, 2), (3,))], [F, F]),
    scatter("multiply", "scatter_mul_axis0", ix.scatter_mul_p, (A(0),),
            [((4, 3), (5, 3), (5,))], [F, F, Int(-4, 4)]),
    scatter("multiply", "scatter_mul_duplicates", ix.scatter_mul_p, (S, A(0)),
            [((2, 3), (2, 5), (5,))], [F, F, DUPLICATES]),
    scatter("multiply", "scatter_mul_basic_index", ix.scatter_mul_p, (1, slice(None, None, 2)),
            [((2, 3), (2,))], [F, F]),
    scatter("multiply", "scatter_mul_linear_in_x", ix.scatter_mul_p, (A(0),),
            [((3, 2), (5, 2), (5,))], [F, F, DUPLICATES], diff_argnums=(0,), linear=True),
    scatter("minimum", "scatter_min_axis0", ix.scatter_min_p, (A(0),),
            [((4, 3), (5, 3), (5,))], [F, F, Int(-4, 4)]),
    scatter("minimum", "scatter_min_duplicates", ix.scatter_min_p, (S, A(0)),
            [((2, 3), (2, 5), (5,))], [F, F, DUPLICATES]),
    scatter("maximum", "scatter_max_separated", ix.scatter_max_p, (A(0), S, A(1)),
            [((3, 2, 4), (2, 2), (2,), (2,))], [F, F, Int(-3, 3), Int(-4, 4)]),
    scatter("maximum", "scatter_max_duplicates", ix.scatter_max_p, (A(0),),
            [((3,), (5,), (5,))], [F, F, DUPLICATES]),
    scatter("maximum", "scatter_max_basic_index", ix.scatter_max_p, (1, slice(None, None, 2)),
            [((2, 3), (2,))], [F, F]),
]
