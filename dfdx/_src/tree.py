"""Pytrees: nested containers of arrays that transformations flatten to lists and rebuild.

Owns the node registry and `tree_flatten` / `tree_unflatten` / `tree_map`. Built in, with no
registration: tuple, list, dict (leaves in sorted key order), OrderedDict, defaultdict,
namedtuple, None (an empty node), dataclasses, and classes that declare `__variable_attrs__`
or `__value_attrs__` (the PhiML convention). Anything else is a leaf unless registered with
`register_pytree_node`.

Dataclass fields are children, except fields marked `field(metadata={"static": True})` and
fields holding strings, types, enums or plain callables, which are carried in the treedef.
A class with `__variable_attrs__` has those attributes as children (else its
`__value_attrs__`); every other attribute is carried along unchanged.

Imports only the core and errors.
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import enum

import numpy as np

from dfdx._src import errors
from dfdx._src.core import Tracer, short_value


class _NodeKind:
  """How to take one kind of container apart (`flatten`) and put it back (`unflatten`)."""
  __slots__ = ("name", "flatten", "unflatten", "child_keys", "data_key")

  def __init__(self, name, flatten, unflatten, child_keys, data_key=lambda data: data):
    self.name, self.flatten, self.unflatten = name, flatten, unflatten
    self.child_keys, self.data_key = child_keys, data_key


def _index_keys(data, n):
  return [f"[{i}]" for i in range(n)]


def _sorted_keys(d):
  try:
    return tuple(sorted(d))
  except TypeError:  # keys of several types (1 and "x"): grouped by type, each group sorted
    try:
      return tuple(sorted(d, key=lambda k: (type(k).__qualname__, k)))
    except TypeError:  # (keys of one type that do not order: the order they were added in)
      return tuple(d)


_TUPLE = _NodeKind("tuple", lambda x: (x, None), lambda data, ch: tuple(ch), _index_keys)
_LIST = _NodeKind("list", lambda x: (x, None), lambda data, ch: list(ch), _index_keys)
_NONE = _NodeKind("None", lambda x: ((), None), lambda data, ch: None, _index_keys)


def _dict_flatten(d):
  keys = _sorted_keys(d)
  return [d[k] for k in keys], keys


_DICT = _NodeKind("dict", _dict_flatten, lambda keys, ch: dict(zip(keys, ch, strict=True)),
                  lambda keys, n: [f"[{k!r}]" for k in keys])
_ORDERED_DICT = _NodeKind(
    "OrderedDict", lambda d: (list(d.values()), tuple(d)),
    lambda keys, ch: collections.OrderedDict(zip(keys, ch, strict=True)),
    lambda keys, n: [f"[{k!r}]" for k in keys])
_DEFAULT_DICT = _NodeKind(
    "defaultdict",
    lambda d: ([d[k] for k in _sorted_keys(d)], (d.default_factory, _sorted_keys(d))),
    lambda data, ch: collections.defaultdict(data[0], zip(data[1], ch, strict=True)),
    lambda data, n: [f"[{k!r}]" for k in data[1]])

_registry: dict[type, _NodeKind] = {
    tuple: _TUPLE, list: _LIST, dict: _DICT, type(None): _NONE,
    collections.OrderedDict: _ORDERED_DICT, collections.defaultdict: _DEFAULT_DICT,
}
_kind_cache: dict[type, _NodeKind | None] = {}


def register_pytree_node(nodetype: type, flatten_func, unflatten_func) -> None:
  """Register a container type, so that transformations look inside it.

  Args:
    nodetype: the class to register.
    flatten_func: `obj -> (children, aux_data)`; children is an iterable of subtrees and
      aux_data is hashable data needed to rebuild `obj`.
    unflatten_func: `(aux_data, children) -> obj`.

  >>> class Pair:
  ...   def __init__(self, a, b): self.a, self.b = a, b
  >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, ch: Pair(*ch))
  >>> tree_leaves(Pair(1.0, (2.0, 3.0)))
  [1.0, 2.0, 3.0]
  """
  if nodetype in _registry:
    raise ValueError(f"register_pytree_node: {nodetype.__name__} is already registered")
  _registry[nodetype] = _NodeKind(
      nodetype.__name__, lambda x: _as_list_and_data(flatten_func(x), nodetype), unflatten_func,
      _index_keys)
  _kind_cache.clear()


def _as_list_and_data(pair, nodetype):
  try:
    children, data = pair
    return list(children), data
  except (TypeError, ValueError):
    raise errors.PytreeError(
        f"the flatten function registered for {nodetype.__name__} returned "
        f"{short_value(pair)}; it must return a pair (children, aux_data): an iterable "
        "of the children and the data that unflatten needs besides them.") from None


def _namedtuple_kind(cls):
  return _NodeKind(cls.__name__, lambda x: (x, None), lambda data, ch: cls(*ch),
                   lambda data, n: [f".{f}" for f in cls._fields])


def _is_static_value(v) -> bool:
  if isinstance(v, (str, bytes, type, enum.Enum)):
    return True
  return callable(v) and not isinstance(v, Tracer) and _node_kind(type(v)) is None


def _dataclass_kind(cls):
  fields = [f for f in dataclasses.fields(cls)]

  def flatten(x):
    children, names, static = [], [], []
    for f in fields:
      value = getattr(x, f.name)
      if f.metadata.get("static", False) or _is_static_value(value):
        static.append((f.name, value))
      else:
        names.append(f.name)
        children.append(value)
    return children, (tuple(names), tuple(static))

  def unflatten(data, children):
    names, static = data
    obj = object.__new__(cls)
    for name, value in zip(names, children, strict=True):
      object.__setattr__(obj, name, value)
    for name, value in static:
      object.__setattr__(obj, name, value)
    return obj

  return _NodeKind(cls.__name__, flatten, unflatten, lambda data, n: [f".{k}" for k in data[0]])


def _attrs_of(x, name):
  attrs = getattr(x, name)
  return tuple(attrs() if callable(attrs) else attrs)


def _declared_attrs_kind(cls):
  """PhiML's convention: `__variable_attrs__` are differentiated, other attributes carried."""
  key = "__variable_attrs__" if hasattr(cls, "__variable_attrs__") else "__value_attrs__"

  def flatten(x):
    names = _attrs_of(x, key)
    return [getattr(x, n) for n in names], (names, x)

  def unflatten(data, children):
    names, template = data
    obj = copy.copy(template)
    for name, value in zip(names, children, strict=True):
      object.__setattr__(obj, name, value)
    return obj

  return _NodeKind(cls.__name__, flatten, unflatten, lambda data, n: [f".{k}" for k in data[0]],
                   data_key=lambda data: data[0])


def _node_kind(cls) -> _NodeKind | None:
  try:
    return _kind_cache[cls]
  except KeyError:
    pass
  kind = _registry.get(cls)
  if kind is None and not issubclass(cls, Tracer):
    if hasattr(cls, "__variable_attrs__") or hasattr(cls, "__value_attrs__"):
      kind = _declared_attrs_kind(cls)
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
      kind = _namedtuple_kind(cls)
    elif dataclasses.is_dataclass(cls):
      kind = _dataclass_kind(cls)
  _kind_cache[cls] = kind
  return kind


# ---- treedefs -----------------------------------------------------------------------------


class PyTreeDef:
  """The structure of a pytree: its containers, with the leaves left out."""
  __slots__ = ("kind", "data", "children", "num_leaves", "_hash", "flat_tuple")

  def __init__(self, kind, data, children):
    self.kind, self.data, self.children = kind, data, children
    self.num_leaves = 1 if kind is None else sum(c.num_leaves for c in children)
    self._hash = None
    # A tuple of leaves (the common case of positional arguments) unflattens in one step.
    self.flat_tuple = kind is _TUPLE and all(c.kind is None for c in children)

  def __eq__(self, other):
    if self is other:
      return True
    if type(other) is not PyTreeDef or self.kind is not other.kind:
      return False
    if self.kind is None:
      return True
    return (_safe_eq(self.kind.data_key(self.data), other.kind.data_key(other.data))
            and self.children == other.children)

  def __hash__(self):
    if self._hash is None:
      key = None if self.kind is None else self.kind.data_key(self.data)
      try:
        self._hash = hash((id(self.kind), key, self.children))
      except TypeError:
        self._hash = hash((id(self.kind), self.children))
    return self._hash

  def unflatten(self, leaves):
    return tree_unflatten(self, leaves)

  def flatten_up_to(self, tree, path="") -> list:
    """The subtrees of `tree` at this treedef's leaves; `tree` must have this structure down
    to those leaves. Raises PytreeError naming the key path of the first difference."""
    out = []
    self._flatten_up_to(tree, path, out)
    return out

  def _flatten_up_to(self, tree, path, out):
    if self.kind is None:
      out.append(tree)
      return
    kind = _node_kind(type(tree))
    if kind is not self.kind:
      raise errors.PytreeError(
          f"pytree structure mismatch at key path {path or '(root)'}: expected "
          f"{self.kind.name}, got {type(tree).__name__}.")
    children, data = kind.flatten(tree)
    if len(children) != len(self.children) or not _safe_eq(kind.data_key(data),
                                                           kind.data_key(self.data)):
      same_length = len(children) == len(self.children)  # (then the node's data differs)
      raise errors.PytreeError(
          f"pytree structure mismatch at key path {path or '(root)'}: expected "
          f"{_describe_node(self.kind, self.data, len(self.children), same_length)}, got "
          f"{_describe_node(kind, data, len(children), same_length)}.")
    keys = kind.child_keys(data, len(children))
    for child_def, child, key in zip(self.children, children, keys):
      child_def._flatten_up_to(child, path + key, out)

  def leaf_paths(self, path="") -> list[str]:
    """The key path of every leaf, in flattening order."""
    if self.kind is None:
      return [path or "(root)"]
    keys = self.kind.child_keys(self.data, len(self.children))
    return [p for c, k in zip(self.children, keys) for p in c.leaf_paths(path + k)]

  def __repr__(self):
    return f"PyTreeDef({self._str()})"

  def _str(self):
    if self.kind is None:
      return "*"
    inner = ", ".join(c._str() for c in self.children)
    if self.kind is _TUPLE:
      return f"({inner}{',' if len(self.children) == 1 else ''})"
    if self.kind is _LIST:
      return f"[{inner}]"
    if self.kind is _NONE:
      return "None"
    if self.kind is _DICT:
      return "{" + ", ".join(f"{k!r}: {c._str()}" for k, c in zip(self.data, self.children)) + "}"
    return f"{self.kind.name}({inner})"


def _describe_node(kind, data, n, with_data=False):
  if kind in (_DICT, _ORDERED_DICT):
    return f"{kind.name} with keys {list(data)}"
  if with_data:  # (the same number of children: the node's own data differs)
    return f"{kind.name} with node data (aux data, static fields) {data!r:.100}"
  return f"{kind.name} of length {n}"


def _safe_eq(a, b) -> bool:
  if a is b:
    return True
  if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):  # (== is elementwise)
    return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b)
  if type(a) in (tuple, list) and type(b) is type(a):
    return len(a) == len(b) and all(_safe_eq(x, y) for x, y in zip(a, b))
  try:
    result = a == b
    return bool(result) if isinstance(result, (bool, np.bool_)) else False
  except Exception:  # a user-defined __eq__ that cannot compare these values
    return False


LEAF = PyTreeDef(None, None, ())
_UNKNOWN = object()


# ---- flatten, unflatten, map --------------------------------------------------------------


def tree_flatten(tree, is_leaf=None):
  """Flatten a pytree into a list of leaves and a treedef.

  >>> tree_flatten({"b": (1.0, 2.0), "a": None})
  ([1.0, 2.0], PyTreeDef({'a': None, 'b': (*, *)}))
  """
  leaves = []
  return leaves, _flatten(tree, leaves, is_leaf)


def _flatten(x, leaves, is_leaf):
  kind = _kind_cache.get(type(x), _UNKNOWN)
  if kind is _UNKNOWN:
    kind = _node_kind(type(x))
  if kind is None or (is_leaf is not None and is_leaf(x)):
    leaves.append(x)
    return LEAF
  children, data = kind.flatten(x)
  return PyTreeDef(kind, data, tuple([_flatten(c, leaves, is_leaf) for c in children]))


def tree_unflatten(treedef: PyTreeDef, leaves):
  """Rebuild a pytree from a treedef and its leaves (the inverse of `tree_flatten`)."""
  if not isinstance(leaves, (list, tuple)):
    leaves = list(leaves)
  if len(leaves) != treedef.num_leaves:
    raise errors.PytreeError(
        f"tree_unflatten: the treedef {treedef} has {treedef.num_leaves} leaves, but "
        f"{len(leaves)} were given.")
  return _unflatten(treedef, iter(leaves))


def _unflatten(treedef, leaves):
  if treedef.kind is None:
    return next(leaves)
  if treedef.flat_tuple:
    return tuple([next(leaves) for _ in treedef.children])
  return treedef.kind.unflatten(treedef.data, [_unflatten(c, leaves) for c in treedef.children])


def tree_leaves(tree, is_leaf=None) -> list:
  """The leaves of a pytree, in flattening order."""
  return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None) -> PyTreeDef:
  """The treedef of a pytree."""
  return tree_flatten(tree, is_leaf)[1]


def tree_map(f, tree, *rest, is_leaf=None):
  """Apply `f` to every leaf of `tree` (and the matching leaves of `rest`), keeping the structure.

  >>> tree_map(lambda x, y: x + y, {"a": 1, "b": [2, 3]}, {"a": 10, "b": [20, 30]})
  {'a': 11, 'b': [22, 33]}
  """
  leaves, treedef = tree_flatten(tree, is_leaf)
  others = [treedef.flatten_up_to(r) for r in rest]
  return treedef.unflatten([f(*xs) for xs in zip(leaves, *others)])
