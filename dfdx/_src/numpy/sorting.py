"""Sorting, searching and set functions of `dfdx.numpy`: sort, argsort, partition,
argpartition, lexsort, searchsorted, unique (and unique_values, unique_counts,
unique_inverse, unique_all), union1d, intersect1d, setdiff1d, setxor1d, isin.

With no traced argument every function calls NumPy and returns what NumPy returns. Traced
calls use the primitives of `dfdx._src.ops.sorting`, whose impls are NumPy's, so values and
index results are NumPy's. The derivative of sort and partition moves each tangent with its
entry (tied entries are matched in a consistent order); index results have zero derivatives.

Functions whose result's shape depends on the values (unique and the set functions) need a
concrete input: a NumPy array, or a traced value with one concrete value (as under grad). Their
values are then gathered from the traced input, so they are differentiable; under vmap or jit
they raise ConcretizationError. This module holds no derivative rules.
"""
from __future__ import annotations

import math

import numpy as np

from dfdx._src import errors
from dfdx._src.core import Tracer
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx._src.ops import sorting as so
from dfdx._src.numpy import indexing, manipulation
from dfdx._src.numpy.util import arg, contains_tracer, dtype as dtype_of, normalize_axis, \
    shape as shape_of

__all__ = ["sort", "argsort", "partition", "argpartition", "lexsort", "searchsorted", "unique",
           "unique_values", "unique_counts", "unique_inverse", "unique_all", "union1d",
           "intersect1d", "setdiff1d", "setxor1d", "isin", "sort_complex"]


def traced(*xs) -> bool:
  """Whether any argument is (or holds, in a list or tuple) a traced value."""
  return any(contains_tracer(x) for x in xs)


def concrete(x, purpose, fix=""):
  """The NumPy value of `x`; a traced `x` is read off where it has one concrete value (under
  grad) and raises ConcretizationError, with `fix` in the message, where it has not."""
  x = arg(x)
  if not isinstance(x, Tracer):
    return np.asarray(x)
  try:
    return np.asarray(x.concrete_value(purpose))
  except errors.ConcretizationError as e:
    raise errors.ConcretizationError(
        f"{purpose} needs concrete values, but this {x.aval.str_short()} is traced (e.g. "
        f"batched under vmap, or staged by jit). {fix}".rstrip()) from e


def _flat(x):
  return shape_ops.reshape(x, (math.prod(shape_of(x)),))


def _sort_axis(a, axis, zero_d_as_1d=False):
  """The operand and axis of a sort: axis None flattens (NumPy's rule). `zero_d_as_1d`:
  a 0-d array is sorted as a 1-d one (NumPy's argsort and argpartition; sort and partition
  refuse it)."""
  a = arg(a)  # (complex values sort as NumPy sorts them: by real part, then imaginary)
  if axis is None or (zero_d_as_1d and not shape_of(a)):
    if axis is not None:
      normalize_axis(axis, 1)  # (NumPy's error for an axis other than 0 or -1)
    return _flat(a), 0
  return a, normalize_axis(axis, len(shape_of(a)))


def _sort_kind(a, kind, order, stable):
  """NumPy's checks of `kind`, `order` and `stable` (run on a one-entry array), and the kind
  the sort runs with."""
  if order is not None:
    raise ValueError("Cannot specify order when the array has no fields.")
  np.sort(np.zeros(1, dtype_of(a)), kind=kind, stable=stable)
  return "stable" if stable else kind


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
  """Differentiable `numpy.sort`: the derivative moves with the entries (ties get a
  consistent one-to-one matching).

  >>> import dfdx
  >>> dfdx.grad(lambda x: dnp.sort(x)[0])(np.array([3.0, 1.0, 2.0]))
  array([0., 1., 0.])
  """
  if not traced(a):
    return np.sort(a, axis=axis, kind=kind, order=order, stable=stable)
  a, axis = _sort_axis(a, axis)
  return so.sort(a, axis, _sort_kind(a, kind, order, stable))


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
  """`numpy.argsort` on traced values (an integer result with zero derivative)."""
  if not traced(a):
    return np.argsort(a, axis=axis, kind=kind, order=order, stable=stable)
  a, axis = _sort_axis(a, axis, zero_d_as_1d=True)
  return so.argsort(a, axis, _sort_kind(a, kind, order, stable))


def _kth(a, kth, axis, kind, order):
  """NumPy's checks of `kth` (run on an array as long as the axis), as non-negative ints."""
  if order is not None:
    raise ValueError("Cannot specify order when the array has no fields.")
  n = shape_of(a)[axis]
  kth = concrete(kth, "partition: kth")
  np.partition(np.zeros(n, dtype_of(a)), kth, kind=kind)
  if n == 0:  # (NumPy accepts any kth on an empty axis: there is nothing to partition)
    return None
  return tuple(int(k) % n for k in np.ravel(kth))


def partition(a, kth, axis=-1, kind="introselect", order=None):
  """Differentiable `numpy.partition` (the values move with their derivatives)."""
  if not traced(a):
    return np.partition(a, kth, axis=axis, kind=kind, order=order)
  a, axis = _sort_axis(a, axis)
  kth = _kth(a, kth, axis, kind, order)
  return a if kth is None else so.partition(a, kth, axis)


def argpartition(a, kth, axis=-1, kind="introselect", order=None):
  """`numpy.argpartition` on traced values (zero derivative)."""
  if not traced(a):
    return np.argpartition(a, kth, axis=axis, kind=kind, order=order)
  a, axis = _sort_axis(a, axis, zero_d_as_1d=True)
  kth = _kth(a, kth, axis, kind, order)
  return np.zeros(shape_of(a), np.intp) if kth is None else so.argpartition(a, kth, axis)


def lexsort(keys, axis=-1):
  """`numpy.lexsort` on traced keys: stable argsorts, by the first key up to the last (the
  primary one). Zero derivative."""
  if not traced(keys):
    return np.lexsort(keys, axis=axis)
  if not isinstance(keys, (list, tuple)):  # an array's rows are the keys
    keys = [keys[i] for i in range(shape_of(keys)[0])]
  keys = [arg(k) for k in keys]
  if not keys:
    raise TypeError("need sequence of keys with len > 0 in lexsort")
  shape = shape_of(keys[0])
  if any(shape_of(k) != shape for k in keys):
    raise ValueError("all keys need to be the same shape")
  if not shape:
    return np.intp(0)
  axis = normalize_axis(axis, len(shape))
  order = so.argsort(keys[0], axis, "stable")
  for k in keys[1:]:
    order = so.take_along_axis(order, so.argsort(so.take_along_axis(k, order, axis), axis,
                                                 "stable"), axis)
  return order


def searchsorted(a, v, side="left", sorter=None):
  """`numpy.searchsorted` on traced values (an integer result with zero derivative)."""
  if not traced(a, v, sorter):
    return np.searchsorted(a, v, side=side, sorter=sorter)
  a, v = arg(a), arg(v)
  np.searchsorted(np.zeros(shape_of(a), dtype_of(a)), np.zeros((), dtype_of(v)), side=side)
  if sorter is not None:
    a = indexing.take(a, sorter)
  return so.searchsorted(a, v, side)


# ---- unique and the set functions ---------------------------------------------------------
_UNIQUE_FIX = ("unique's result has as many entries as there are distinct values; under vmap "
               "or jit that number is not known.")


def _first_positions(flat, values):
  """For each of `values` (NumPy), the first position of an equal entry of `flat` (NaN
  matches NaN)."""
  u, first = np.unique(flat, return_index=True)
  return first[np.searchsorted(u, values)]


def _gathered(x, x_concrete, values):
  """`values` (found in `x_concrete`) gathered from the traced `x` (flattened), so that
  they carry x's derivative."""
  flat = np.ravel(x_concrete)
  pos = _first_positions(flat, np.ravel(values)).reshape(np.shape(values))
  return indexing.take(_flat(x), pos)


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True, sorted=True):  # noqa: A002  (NumPy's name)
  """Differentiable `numpy.unique` (in the values; `ar` must be concrete, see the module
  docstring). Each unique value carries the derivative of its first occurrence."""
  kw = dict(axis=axis, equal_nan=equal_nan, sorted=sorted)
  if not traced(ar):
    return np.unique(ar, return_index, return_inverse, return_counts, **kw)
  x = arg(ar)
  out = np.unique(concrete(x, "unique", _UNIQUE_FIX), True, return_inverse, return_counts, **kw)
  index = out[1]
  if axis is None:
    values = indexing.take(_flat(x), index)
  else:
    values = indexing.take(x, index, axis=axis)
  rest = out[1:] if return_index else out[2:]
  return (values,) + tuple(rest) if rest else values


def _unique_result(name):
  np_fun = getattr(np, name)

  def fn(x, /):
    if not traced(x):
      return np_fun(x)
    x = arg(x)
    xc = concrete(x, name, _UNIQUE_FIX)
    out = np_fun(xc)
    values = _gathered(x, xc, out if name == "unique_values" else out.values)
    return values if name == "unique_values" else out._replace(values=values)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"Differentiable `numpy.{name}` (values; `x` must be concrete)."
  return fn


unique_values = _unique_result("unique_values")
unique_counts = _unique_result("unique_counts")
unique_inverse = _unique_result("unique_inverse")
unique_all = _unique_result("unique_all")


def _set_function(name):
  np_fun = getattr(np, name)

  def fn(ar1, ar2, *args, **kwargs):
    if not traced(ar1, ar2):
      return np_fun(ar1, ar2, *args, **kwargs)
    a, b = arg(ar1), arg(ar2)
    ac, bc = concrete(a, name, _UNIQUE_FIX), concrete(b, name, _UNIQUE_FIX)
    out = np_fun(ac, bc, *args, **kwargs)
    both = manipulation.concatenate([_flat(a), _flat(b)]) if isinstance(a, Tracer) or \
        isinstance(b, Tracer) else None
    source = np.concatenate([np.ravel(ac), np.ravel(bc)])
    values = _gathered(both, source, out[0] if isinstance(out, tuple) else out)
    return (values,) + out[1:] if isinstance(out, tuple) else values
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (f"Differentiable `numpy.{name}` (values; the inputs must be concrete). Each "
                "value carries the derivative of its first occurrence in ar1, then ar2.")
  return fn


union1d = _set_function("union1d")
intersect1d = _set_function("intersect1d")
setdiff1d = _set_function("setdiff1d")
setxor1d = _set_function("setxor1d")


def isin(element, test_elements, assume_unique=False, invert=False, *, kind=None):
  """`numpy.isin` on traced values: every entry compared with every test element (a boolean
  result, zero derivative)."""
  if not traced(element, test_elements):
    return np.isin(element, test_elements, assume_unique=assume_unique, invert=invert,
                   kind=kind)
  x, t = arg(element), arg(test_elements)
  x = x if isinstance(x, Tracer) else np.asarray(x)
  t = _flat(t) if isinstance(t, Tracer) else np.ravel(t)
  shape = shape_of(x)
  hits = ew.eq(shape_ops.reshape(x, shape + (1,)),
               shape_ops.reshape(t, (1,) * len(shape) + shape_of(t)))
  found = ew.gt(red.reduce_sum(shape_ops.convert_element_type(hits, np.intp), (len(shape),)), 0)
  return ew.logical_not_p.bind(found) if invert else found


def sort_complex(a):
  """`numpy.sort_complex`: sorted along the last axis (complex values by real part, then
  imaginary part), as complex numbers of NumPy's width for the input's dtype."""
  if not traced(a):
    return np.sort_complex(a)
  x = sort(a)
  dtype = dtype_of(x)
  if dtype.kind != "c":
    dtype = np.sort_complex(np.zeros(0, dtype)).dtype
  return shape_ops.convert_element_type(x, dtype)
