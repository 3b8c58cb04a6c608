"""Pytrees: flatten/unflatten round trips (hypothesis), the built-in node kinds, registration,
structure errors with key paths, and tree_map."""
import collections
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dfdx
from dfdx import tree

leaves = st.one_of(st.floats(allow_nan=False), st.integers(), st.none(),
                   st.just(np.arange(3.0)))
pytrees = st.recursive(
    leaves, lambda children: st.one_of(
        st.lists(children, max_size=3), st.tuples(children, children),
        st.dictionaries(st.text(max_size=3), children, max_size=3)), max_leaves=12)


def _equal(a, b):
  if isinstance(a, np.ndarray):
    return isinstance(b, np.ndarray) and np.array_equal(a, b)
  if isinstance(a, (list, tuple)):
    return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
  if isinstance(a, dict):
    return type(a) is type(b) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
  return a == b or (a is None and b is None)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(pytrees)
def test_flatten_unflatten_round_trip(t):
  flat, treedef = tree.tree_flatten(t)
  assert _equal(tree.tree_unflatten(treedef, flat), t)
  assert treedef == tree.tree_structure(t)
  assert hash(treedef) == hash(tree.tree_structure(t))
  assert len(flat) == treedef.num_leaves


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass(frozen=True)
class Frozen:
  a: float
  b: tuple
  label: str = "l"
  config: int = dataclasses.field(default=3, metadata={"static": True})


class Declared:
  __variable_attrs__ = ("w",)

  def __init__(self, w, v):
    self.w, self.v = w, v


def test_builtin_node_kinds():
  t = {"b": [1.0, (2.0, None)], "a": Point(3.0, 4.0), "c": collections.OrderedDict(z=5.0, y=6.0)}
  flat, treedef = tree.tree_flatten(t)
  assert flat == [3.0, 4.0, 1.0, 2.0, 5.0, 6.0]  # dict keys sorted; OrderedDict keeps order
  rebuilt = tree.tree_unflatten(treedef, flat)
  assert type(rebuilt["a"]) is Point and list(rebuilt["c"]) == ["z", "y"]


def test_dataclass_fields_static_values_and_frozen():
  f = Frozen(1.0, (2.0, 3.0))
  flat, treedef = tree.tree_flatten(f)
  assert flat == [1.0, 2.0, 3.0]
  g = tree.tree_unflatten(treedef, [10.0, 20.0, 30.0])
  assert g == Frozen(10.0, (20.0, 30.0))
  assert tree.tree_structure(Frozen(1.0, (2.0, 3.0), label="other")) != treedef


def test_declared_attrs_are_children_and_the_rest_is_carried():
  d = Declared(np.ones(2), "kept")
  flat, treedef = tree.tree_flatten(d)
  assert len(flat) == 1
  e = tree.tree_unflatten(treedef, [np.zeros(2)])
  assert e.v == "kept" and not e.w.any() and d.w.all()


def test_register_pytree_node_and_double_registration():
  class Box:
    def __init__(self, items):
      self.items = items
  tree.register_pytree_node(Box, lambda b: (b.items, None), lambda _, ch: Box(list(ch)))
  assert tree.tree_leaves(Box([1, [2, 3]])) == [1, 2, 3]
  with pytest.raises(ValueError, match="already registered"):
    tree.register_pytree_node(Box, lambda b: (b.items, None), lambda _, ch: Box(list(ch)))


def test_tree_map_over_several_trees_and_mismatch_path():
  out = tree.tree_map(lambda a, b: a * b, {"x": [1, 2], "y": 3}, {"x": [4, 5], "y": 6})
  assert out == {"x": [4, 10], "y": 18}
  with pytest.raises(dfdx.PytreeError, match=r"key path \['x'\]\[1\].*expected tuple"):
    tree.tree_map(lambda a, b: a, {"x": [1, (2, 3)]}, {"x": [1, [2, 3]]})
  with pytest.raises(dfdx.PytreeError, match=r"keys \['a'\].*keys \['b'\]"):
    tree.tree_map(lambda a, b: a, {"a": 1}, {"b": 1})


def test_unflatten_with_wrong_number_of_leaves():
  _, treedef = tree.tree_flatten((1, 2))
  with pytest.raises(dfdx.PytreeError, match="has 2 leaves, but 3 were given"):
    tree.tree_unflatten(treedef, [1, 2, 3])


def test_treedef_repr():
  assert repr(tree.tree_structure({"a": (1, [2]), "b": None})) == \
      "PyTreeDef({'a': (*, [*]), 'b': None})"


def test_dicts_with_keys_of_several_types_flatten_alike():
  # 1 and "x" do not sort together: grouped by type, then sorted (not in insertion order,
  # which paired key 1 of one dict with key "x" of an equal one)
  d1, d2 = {1: 10.0, "x": 20.0}, {"x": 20.0, 1: 10.0}
  assert tree.tree_leaves(d1) == tree.tree_leaves(d2) == [10.0, 20.0]
  assert tree.tree_structure(d1) == tree.tree_structure(d2)
  assert tree.tree_map(lambda a, b: a + b, d1, d2) == {1: 20.0, "x": 40.0}
  assert dfdx.jvp(lambda d: d[1] * d["x"], (d1,), (d2,)) == (200.0, 400.0)


def test_node_data_mismatches_and_bad_flatten_functions_are_named():
  class Tagged:
    def __init__(self, a, tag):
      self.a, self.tag = a, tag
  tree.register_pytree_node(Tagged, lambda t: ((t.a,), t.tag), lambda tag, ch: Tagged(ch[0], tag))
  with pytest.raises(dfdx.PytreeError, match=r"Tagged with node data .*'m1'.*got Tagged with "
                                             r"node data .*'m2'"):
    tree.tree_map(lambda x, y: x + y, Tagged(1.0, "m1"), Tagged(2.0, "m2"))

  @dataclasses.dataclass
  class Static:
    w: object
    tag: object = dataclasses.field(default=None, metadata={"static": True})
  # equal static arrays (or NumPy scalars) are the same structure
  a, b = Static(1.0, np.array([1, 2])), Static(2.0, np.array([1, 2]))
  assert tree.tree_structure(a) == tree.tree_structure(b)
  assert tree.tree_map(lambda x, y: x + y, a, b).w == 3.0
  assert tree.tree_structure(Static(1.0, np.float64(2))) == \
      tree.tree_structure(Static(2.0, np.float64(2)))
  assert tree.tree_structure(a) != tree.tree_structure(Static(1.0, np.array([1, 3])))

  class Bad:
    pass
  tree.register_pytree_node(Bad, lambda b: [1, 2, 3], lambda data, ch: Bad())
  with pytest.raises(dfdx.PytreeError, match=r"flatten function registered for Bad returned "
                                             r"list of 3; it must return a pair"):
    tree.tree_leaves(Bad())
