"""Indexing in `dfdx.numpy`: `x[index]` on traced values (`getitem`, behind
`Tracer.__getitem__`), functional updates (`x.at[index].set/add/multiply/get`, and `at(x)`
for any array), take, take_along_axis, compress, and the index helpers nonzero, flatnonzero,
argwhere, ix_ (integer sequences may be traced), diag_indices, tril_indices and triu_indices
(NumPy's own).

Indexes mean exactly what they mean in NumPy: integers (negative ones count from the end),
slices (any step, out-of-range bounds clipped), None, Ellipsis, integer arrays and lists
(out-of-bounds entries raise IndexError), boolean masks, and their combinations, with NumPy's
placement of the index-array axes. Basic indexes (integers, slices, None, Ellipsis) are built
from the shape primitives (rev, slice, reshape); index arrays and masks use the gather and
scatter primitives of `dfdx._src.ops.indexing`.

A boolean mask decides the shape of the result, so it must be concrete: a NumPy array, or a
traced value with one concrete value (as under grad). Under vmap, use `where` instead.

With no traced argument every function calls NumPy and returns what NumPy returns. This
module holds no derivative rules.
"""
from __future__ import annotations

import math
import operator

import numpy as np
from numpy import diag_indices, diag_indices_from, tril_indices, tril_indices_from, \
    triu_indices, triu_indices_from

from dfdx._src import dtypes, errors
from dfdx._src.core import ShapedArray, Tracer, get_aval
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import indexing as ix
from dfdx._src.ops import shape as shape_ops
from dfdx._src.ops.indexing import ArrayIndex
from dfdx._src.numpy.util import arg, contains_tracer, normalize_axis, reject_out, \
    shape as shape_of

__all__ = ["at", "take", "take_along_axis", "compress", "nonzero", "flatnonzero", "argwhere",
           "ix_", "diag_indices", "diag_indices_from", "tril_indices", "tril_indices_from",
           "triu_indices", "triu_indices_from"]

_INVALID_INDEX = ("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                  "integer or boolean arrays are valid indices")


# ---- resolving an index against a shape -------------------------------------------------------


class _Resolved:
  """An index resolved against an array's shape: the primitives' `spec` and index `arrays`,
  and `shape`, the array's shape with a unit axis where a 0-d boolean stands (NumPy treats
  `True`/`False` as a mask over a new unit axis)."""
  __slots__ = ("spec", "arrays", "shape")

  def __init__(self, spec, arrays, shape):
    self.spec, self.arrays, self.shape = tuple(spec), arrays, tuple(shape)


def _concrete(x, purpose, fix):
  """The concrete value of a traced `x` whose value decides a shape, or a clear error."""
  try:
    return np.asarray(x.concrete_value(purpose))
  except errors.ConcretizationError as e:
    raise errors.ConcretizationError(
        f"{purpose}: the result's shape depends on the values of this "
        f"{x.aval.str_short()}, so they must be concrete, but here they are traced "
        f"(e.g. batched under vmap, where each element could select a different number of "
        f"entries). {fix}") from e


_MASK_FIX = ("Use dfdx.numpy.where(mask, x, 0) to keep the shape, or an integer index array, "
             "instead of indexing with a traced boolean mask.")


def _classify(item):
  """One entry of an index as None, Ellipsis, a slice, an int, ('array', integer array) or
  ('mask', NumPy bool array)."""
  if item is None or item is Ellipsis or isinstance(item, slice):
    return item
  if isinstance(item, (bool, np.bool_)):
    return ("mask", np.asarray(item))
  if isinstance(item, (int, np.integer)):
    return int(item)
  if isinstance(item, (list, tuple)):
    item = arg(item) if contains_tracer(item) else _list_index(item)
  if isinstance(item, Tracer):
    kind = item.dtype.kind
    if kind == "b":
      return ("mask", _concrete(item, "indexing with a boolean mask", _MASK_FIX))
    return ("array", item) if kind in "iu" else _not_integer(item)
  if isinstance(item, (np.ndarray, np.generic)):
    kind = item.dtype.kind
    if kind == "b":
      return ("mask", np.asarray(item))
    if kind in "iu":
      return int(item) if np.ndim(item) == 0 else ("array", np.asarray(item))
    return _not_integer(item)
  raise IndexError(f"{_INVALID_INDEX}; got {type(item).__name__} {item!r:.60}")


def _list_index(item):
  a = np.asarray(item)
  return a.astype(np.intp) if a.size == 0 and a.dtype.kind == "f" else a  # x[[]] is valid


def _not_integer(item):
  raise IndexError("arrays used as indices must be of integer (or boolean) type, got "
                   f"{get_aval(item).str_short()}")


def _consumed(item):
  if item is None or item is Ellipsis:
    return 0
  return item[1].ndim if type(item) is tuple and item[0] == "mask" else 1


def _check_bounds(indices, n, axis):
  """NumPy's IndexError for concrete integer indices outside [-n, n); traced indices are
  checked when they are evaluated."""
  if isinstance(indices, Tracer) or np.size(indices) == 0:
    return
  if type(indices) is np.ndarray and indices.dtype.kind in "iu":  # two reductions, no masks
    if indices.max() < n and (indices.dtype.kind == "u" or indices.min() >= -n):
      return
  bad = (indices < -n) | (indices >= n)
  if np.any(bad):
    raise IndexError(f"index {np.asarray(indices)[bad].flat[0]} is out of bounds for axis "
                     f"{axis} with size {n}")


def _normalize_slice(s, n):
  start, stop, step = (None if v is None else operator.index(v) for v in (s.start, s.stop, s.step))
  start, stop, step = slice(start, stop, step).indices(n)
  return (start, None if step < 0 and stop < 0 else stop, step)


def _resolve(shape, idx):
  """Resolve a NumPy index against `shape` (NumPy's IndexErrors for indexes that do not fit)."""
  items = [_classify(i) for i in (idx if type(idx) is tuple else (idx,))]
  if sum(i is Ellipsis for i in items) > 1:
    raise IndexError("an index can only have a single ellipsis ('...')")
  consumed = sum(_consumed(i) for i in items)
  if consumed > len(shape):
    raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, but "
                     f"{consumed} were indexed")
  spec, arrays, new_shape, dim = [], [], [], 0
  for item in items:
    if item is None or item is Ellipsis:
      spec.append(item)
      k = len(shape) - consumed if item is Ellipsis else 0
      new_shape += shape[dim:dim + k]
      dim += k
    elif type(item) is tuple and item[0] == "mask":
      dim = _resolve_mask(item[1], shape, dim, spec, arrays, new_shape)
    else:
      n = shape[dim]
      if isinstance(item, slice):
        spec.append(_normalize_slice(item, n))
      elif isinstance(item, int):
        if not -n <= item < n:
          _check_bounds(np.asarray(item), n, dim)
        spec.append(item % n)
      else:
        _check_bounds(item[1], n, dim)
        spec.append(ArrayIndex(len(arrays)))
        arrays.append(item[1])
      new_shape.append(n)
      dim += 1
  return _Resolved(spec, arrays, new_shape + list(shape[dim:]))


def _resolve_mask(mask, shape, dim, spec, arrays, new_shape):
  """A boolean mask becomes the integer arrays of its nonzero entries (as in NumPy); a 0-d one
  indexes a new unit axis. Returns the next axis of `shape`."""
  if mask.ndim == 0:
    spec.append(ArrayIndex(len(arrays)))
    arrays.append(np.zeros(int(mask), np.intp))
    new_shape.append(1)
    return dim
  for i, (n, m) in enumerate(zip(shape[dim:], mask.shape)):
    if n != m:
      raise IndexError(f"boolean index did not match indexed array along axis {dim + i}; size "
                       f"of axis is {n} but size of corresponding boolean axis is {m}")
  for a in np.nonzero(mask):
    spec.append(ArrayIndex(len(arrays)))
    arrays.append(a)
  new_shape += shape[dim:dim + mask.ndim]
  return dim + mask.ndim


def _basic_plan(shape, spec):
  """The bounds of `_basic`'s slice, the axes it reverses and the result's shape."""
  starts, limits, strides, flips, out_shape, dim = [], [], [], [], [], 0
  for e in _expand_ellipsis(spec, len(shape)):
    if e is None:
      out_shape.append(1)
      continue
    start, limit, stride, length = _slice_bounds(e, shape[dim])
    if type(e) is tuple and e[2] is not None and e[2] < 0:
      flips.append(dim)
    if length is not None:
      out_shape.append(length)
    starts.append(start)
    limits.append(limit)
    strides.append(stride)
    dim += 1
  return starts, limits, strides, flips, out_shape


def _expand_ellipsis(spec, ndim):
  rest = ndim - sum(e is not None and e is not Ellipsis for e in spec)
  spec = spec if Ellipsis in spec else spec + (Ellipsis,)
  i = spec.index(Ellipsis)
  return spec[:i] + ((None, None, None),) * rest + spec[i + 1:]


def _slice_bounds(e, n):
  """(start, limit, stride, length) of a slice or an integer as a forward slice of an axis of
  size n (reversed first if the step is negative); an integer has no length (it is dropped)."""
  if type(e) is int:
    return e, e + 1, 1, None
  start, stop, step = slice(*e).indices(n)
  length = len(range(start, stop, step))
  if step < 0:
    start, step = n - 1 - start, -step
  if length == 0:
    return 0, 0, 1, 0
  return start, start + (length - 1) * step + 1, step, length


# ---- x[index] ---------------------------------------------------------------------------------


_basic_plans: dict = {}


def _basic_key(idx):
  """A hashable stand-in for a basic index made of Python ints, slices of Python ints, None
  and Ellipsis (the indexes whose resolution depends on the shape alone); None for any other
  index."""
  if type(idx) is not tuple:
    idx = (idx,)
  key = []
  for item in idx:
    t = type(item)
    if t is slice:
      start, stop, step = item.start, item.stop, item.step
      if not ((start is None or type(start) is int) and (stop is None or type(stop) is int)
              and (step is None or type(step) is int)):
        return None
      key.append((start, stop, step))
    elif t is int or item is None or item is Ellipsis:
      key.append(item)
    else:
      return None
  return tuple(key)


def _basic_steps(shape, index):
  """The primitives that take `x[index]` for an array of `shape` and a resolved index of
  integers, slices, None and Ellipsis (no arrays): a reshape to the index's shape, one rev,
  one slice and one reshape, each left out where it would change nothing, as (primitive,
  params) pairs with normalized params (what the cache of basic indexes holds)."""
  starts, limits, strides, flips, out_shape = _basic_plan(index.shape, index.spec)
  steps, shape = [], tuple(shape)
  if tuple(index.shape) != shape:
    shape = tuple(map(int, index.shape))
    steps.append((shape_ops.reshape_p, {"shape": shape}))
  if flips:
    steps.append((shape_ops.rev_p, {"axes": tuple(map(int, flips))}))
  start, limit, stride = (tuple(map(int, v)) for v in (starts, limits, strides))
  if not (start == (0,) * len(shape) and limit == shape and all(s == 1 for s in stride)):
    steps.append((shape_ops.slice_p, {"start": start, "limit": limit, "strides": stride}))
    shape = tuple(len(range(*bounds)) for bounds in zip(start, limit, stride))
  out_shape = tuple(map(int, out_shape))
  if out_shape != shape:
    steps.append((shape_ops.reshape_p, {"shape": out_shape}))
  return tuple(steps)


def _bind_steps(x, steps):
  for prim, params in steps:
    x = prim.bind(x, **params)
  return x


def getitem(x, idx):
  """`x[idx]` with NumPy's semantics, for a traced `x` and/or traced index arrays (this is
  `Tracer.__getitem__`). Linear in x, so derivatives flow back to the selected entries
  (summed where an index repeats)."""
  if not isinstance(x, Tracer) and not contains_tracer(idx):
    return (x if isinstance(x, np.ndarray) else np.asarray(x))[idx]
  x = arg(x)
  shape = shape_of(x)
  key = _basic_key(idx)
  if key is not None:  # a basic index of plain ints and slices: its resolved plan is cached
    key = (shape, key)
    steps = _basic_plans.get(key)
    if steps is None:
      steps = _basic_steps(shape, _resolve(shape, idx))
      if len(_basic_plans) >= 4096:
        _basic_plans.clear()
      _basic_plans[key] = steps
    return _bind_steps(x, steps)
  index = _resolve(shape, idx)
  if not index.arrays:
    return _bind_steps(x, _basic_steps(shape, index))
  return ix.gather(shape_ops.reshape(x, index.shape), index.arrays, index.spec)


# ---- x.at[index] --------------------------------------------------------------------------------


def at(x):
  """Functional index updates of `x`: the function form of `x.at`, for NumPy arrays as well as
  traced values.

  `at(x)[index]` chooses entries, and its methods return a new array equal to `x` except
  there (`x` itself is never modified):

    .set(v)         x[index] = v
    .add(v)         x[index] += v            .subtract(v)   x[index] -= v
    .multiply(v)    x[index] *= v            .divide(v)     x[index] /= v
    .power(v)       x[index] **= v
    .min(v)         x[index] = minimum(x[index], v)
    .max(v)         x[index] = maximum(x[index], v)
    .apply(f)       x[index] = f(x[index]), for an elementwise f (a ufunc, a dfdx.numpy
                    function, or a function of them)
    .get()          x[index]

  `v` is broadcast to the indexed shape and cast to x's dtype. An update whose result is of
  another kind (floats into an integer array) is refused, as NumPy's in-place operators
  refuse it. Where the index repeats a position, every update applies, as NumPy's `ufunc.at`
  applies them: add, subtract, multiply, min and max combine them, divide, power and apply act
  once per occurrence, in order, and set keeps NumPy's write (the last) and differentiates
  through it. Derivatives of min and max split equally among tied values.

  >>> dnp.at(np.zeros(3))[np.array([1, 1, 2])].add(1.0)
  array([0., 2., 1.])
  >>> dnp.at(np.array([4.0, 1.0]))[np.array([0, 0])].divide(2.0)
  array([1., 1.])
  >>> float(dfdx.grad(lambda v: dnp.at(np.zeros(3))[1].set(v).sum())(2.0))
  1.0
  """
  return _IndexUpdateHelper(x)


class _IndexUpdateHelper:
  """`x.at`: index it (`x.at[index]`) to choose the entries to update."""
  __slots__ = ("array",)

  def __init__(self, array):
    self.array = array

  def __getitem__(self, index):
    return _IndexUpdateRef(self.array, index)

  def __repr__(self):
    return f"_IndexUpdateHelper({self.array!r})"


class _IndexUpdateRef:
  """`x.at[index]`: `.set(v)`, `.add(v)`, `.subtract(v)`, `.multiply(v)`, `.divide(v)`,
  `.power(v)`, `.min(v)`, `.max(v)` and `.apply(f)` return updated copies of x (see `at`),
  `.get()` returns `x[index]`."""
  __slots__ = ("array", "index")

  def __init__(self, array, index):
    self.array, self.index = array, index

  def get(self):
    """`x[index]`."""
    return getitem(self.array, self.index)

  def set(self, values):
    """A copy of x with `x[index] = values`."""
    return _update("set", self.array, self.index, values)

  def add(self, values):
    """A copy of x with `values` added at `x[index]` (repeated positions accumulate)."""
    return _update("add", self.array, self.index, values)

  def subtract(self, values):
    """A copy of x with `values` subtracted at `x[index]` (repeated positions accumulate)."""
    return _update("subtract", self.array, self.index, values)

  def multiply(self, values):
    """A copy of x with `x[index]` multiplied by `values` (repeated positions multiply)."""
    return _update("multiply", self.array, self.index, values)

  def divide(self, values):
    """A copy of x with `x[index]` divided by `values` (a repeated position is divided by
    each of its updates, in order)."""
    return _update("divide", self.array, self.index, values)

  def power(self, values):
    """A copy of x with `x[index]` raised to the power `values` (a repeated position is
    raised by each of its updates, in order)."""
    return _update("power", self.array, self.index, values)

  def min(self, values):
    """A copy of x with `x[index]` replaced by its minimum with `values` (a repeated
    position keeps the least of all)."""
    return _update("min", self.array, self.index, values)

  def max(self, values):
    """A copy of x with `x[index]` replaced by its maximum with `values` (a repeated
    position keeps the greatest of all)."""
    return _update("max", self.array, self.index, values)

  def apply(self, func):
    """A copy of x with `x[index]` replaced by `func(x[index])`, for an elementwise `func`
    (a repeated position gets it once per occurrence, as `ufunc.at`)."""
    return _update("apply", self.array, self.index, func)

  def __repr__(self):
    return f"_IndexUpdateRef({self.array!r}, {self.index!r})"


_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
           "divide": np.true_divide, "power": np.power, "min": np.minimum, "max": np.maximum}
_SCATTERS = {"set": ix.scatter, "add": ix.scatter_add, "subtract": ix.scatter_add,
             "multiply": ix.scatter_mul, "min": ix.scatter_min, "max": ix.scatter_max}
_SPELLED = {"add": "x[i] += v", "subtract": "x[i] -= v", "multiply": "x[i] *= v",
            "divide": "x[i] /= v", "power": "x[i] **= v", "min": "x[i] = minimum(x[i], v)",
            "max": "x[i] = maximum(x[i], v)", "apply": "x[i] = f(x[i])"}
_DISTINCT = {"divide": "x.at[i].set(x[i] / v)", "power": "x.at[i].set(x[i] ** v)",
             "apply": "x.at[i].set(f(x[i]))"}
# divide, power and apply act once per occurrence of a repeated position: by rounds of
# distinct positions. Past this many rounds divide multiplies by the product of reciprocals.
_MAX_DIVIDE_ROUNDS = 64


def _update(kind, x, idx, values):
  if kind == "apply":
    func = values
    if not callable(func):
      raise TypeError(f"x.at[...].apply: expected an elementwise function, got "
                      f"{type(func).__name__}; pass e.g. dnp.sin or lambda v: v ** 2")
    if isinstance(func, np.ufunc) and func.nin != 1:
      raise TypeError(f"x.at[...].apply: numpy.{func.__name__} takes {func.nin} arguments; "
                      "apply takes a function of one (for two, use .add, .multiply, ...)")
    if isinstance(func, np.ufunc) and func.nout != 1:
      _several_outputs(f"numpy.{func.__name__}", func.nout)
  else:
    _check_values(kind, get_aval(arg(x)).dtype, values)
  if not isinstance(x, Tracer) and not contains_tracer(values) and not contains_tracer(idx) \
      and (kind != "apply" or isinstance(values, np.ufunc)):
    out = np.array(x, copy=True)
    if kind == "set":
      out[idx] = values
    elif kind == "apply":
      result = values.resolve_dtypes((out.dtype, None))[-1]
      _check_kind(kind, out.dtype, result, f"func gives {result}")
      values.at(out, idx)
    else:
      _UFUNCS[kind].at(out, idx, _plain_values(kind, out, idx, values))
    return out
  x = arg(x)
  x_aval = get_aval(x)
  index = _resolve(x_aval.shape, idx)
  indexed = ix.index_shape(index.shape, index.spec, [shape_of(a) for a in index.arrays])
  if kind in ("divide", "power", "apply"):
    return _once_per_occurrence(kind, x, x_aval, idx, index, indexed, values)
  values = _updates(kind, shape_ops.convert_element_type(arg(values), x_aval.dtype), indexed)
  if kind == "subtract":
    values = ew.neg(values)
  out = _SCATTERS[kind](shape_ops.reshape(x, index.shape), values, index.arrays, index.spec)
  return shape_ops.reshape(out, x_aval.shape)


def _check_values(kind, dtype, values):
  """Refuse `values` that would make x[i] <kind> v, for x of `dtype`, another kind of dtype
  (see _check_kind), complex values into real entries (set too: their imaginary part would
  be lost) and Python integers out of bounds for an integer dtype (as NumPy's assignment);
  NumPy has no boolean subtraction."""
  if type(values) is int and dtype.kind in "iu" and not (
      np.iinfo(dtype).min <= values <= np.iinfo(dtype).max):
    raise OverflowError(f"x.at[...].{kind}: Python integer {values} out of bounds for {dtype}")
  v_aval = get_aval(arg(values))
  if kind == "set":
    if v_aval.dtype.kind == "c" and dtype.kind != "c":
      raise TypeError(f"x.at[...].set: complex values {v_aval.str_short()} into an array of "
                      f"dtype {dtype} would lose their imaginary part; set dnp.real(v) (or "
                      "cast the array to complex first)")
    return
  if kind == "subtract" and dtype == np.bool_:
    raise TypeError("x.at[...].subtract: NumPy does not subtract booleans (x[i] -= v refuses "
                    "it); use .set(x[i] ^ v) for a logical difference.")
  out = dtypes.result_type(ShapedArray((), dtype), v_aval)
  if kind == "divide" and out.kind in "biu":
    out = np.dtype(np.float64)
  _check_kind(kind, dtype, out, f"values {v_aval.str_short()} give {out}")


def _check_kind(kind, dtype, out, got):
  """Refuse an update whose result dtype `out` is of another kind than x's `dtype`, as
  NumPy's in-place operators do (numpy's ufunc.at casts silently)."""
  if not np.can_cast(out, dtype, "same_kind"):
    raise TypeError(f"x.at[...].{kind}: the array is {dtype}, and {got}, another kind of "
                    f"dtype. NumPy's in-place `{_SPELLED[kind]}` refuses this (numpy's "
                    f"ufunc.at casts silently). Cast the values or the array first.")


def _updates(kind, values, shape):
  """`values` (already of x's dtype) broadcast to the indexed `shape`, as NumPy's assignment
  broadcasts them (leading unit axes may be dropped)."""
  v_shape = _values_shape(kind, shape_of(values), shape)
  return shape_ops.broadcast_to(shape_ops.reshape(values, v_shape), shape)


def _values_shape(kind, v_shape, shape):
  """The shape `v_shape` of values to broadcast to the indexed `shape`, less the leading unit
  axes past its rank; NumPy's ValueError where they do not broadcast."""
  trimmed = tuple(v_shape)
  while len(trimmed) > len(shape) and trimmed[0] == 1:
    trimmed = trimmed[1:]
  if len(trimmed) > len(shape) or any(a not in (1, b) for a, b in zip(trimmed[::-1],
                                                                      shape[::-1])):
    raise ValueError(f"x.at[...].{kind}: could not broadcast input array from shape "
                     f"{tuple(v_shape)} into the indexed shape {tuple(shape)}")
  return trimmed


def _plain_values(kind, out, idx, values):
  """`values` for `ufunc.at` on the NumPy array `out`, as the traced path takes them: cast to
  out's dtype first (ufunc.at would combine them in a wider dtype: float64 values into
  float32 entries, -1 into uint8 ones), and broadcast as assignment broadcasts them (leading
  unit axes dropped; ufunc.at refuses those)."""
  values = np.asarray(values)
  if values.dtype != out.dtype:
    values = values.astype(out.dtype)
  if values.ndim:
    shape = np.empty(out.shape, np.bool_)[idx].shape  # (a view, or a bool per entry indexed)
    values = values.reshape(_values_shape(kind, values.shape, shape))
  return values


def _several_outputs(name, n):
  raise TypeError(f"x.at[...].apply: {name} returns {n} outputs; apply takes a function of "
                  "one output (select one, e.g. lambda v: dnp.modf(v)[0])")


def _once_per_occurrence(kind, x, x_aval, idx, index, indexed, values):
  """divide, power and apply, which NumPy's ufunc.at applies once per occurrence of a
  position: where no position repeats, one set of the updated entries; where concrete index
  arrays repeat some, rounds of distinct positions, in the order NumPy visits them."""
  from dfdx._src.numpy import ufuncs as uf
  dtype = x_aval.dtype
  if kind == "apply":
    func = values

    def op(cur, _):
      out = func(cur)
      if isinstance(out, (tuple, list)):
        _several_outputs(getattr(func, "__name__", "func"), len(out))
      out = arg(out)
      aval = get_aval(out)
      if aval.shape != shape_of(cur):
        raise ValueError(f"x.at[...].apply: func returned shape {aval.shape} for entries of "
                         f"shape {shape_of(cur)}; apply takes an elementwise function")
      _check_kind("apply", dtype, aval.dtype, f"func returns {aval.str_short()}")
      return shape_ops.convert_element_type(out, dtype)
    values = None
  else:
    combine = uf.true_divide if kind == "divide" else uf.power

    def op(cur, v):
      return shape_ops.convert_element_type(arg(combine(cur, v)), dtype)
    values = _updates(kind, shape_ops.convert_element_type(arg(values), dtype), indexed)
  # Only the index arrays can repeat a position (slices never do): their broadcast entries.
  entries = math.prod(np.broadcast_shapes(*[shape_of(a) for a in index.arrays])) \
      if index.arrays else 0
  positions = None
  if entries > 1 and math.prod(indexed) > 1:
    size = math.prod(index.shape)
    positions = ix.gather(np.arange(size).reshape(index.shape), index.arrays, index.spec)
  if positions is None or (not isinstance(positions, Tracer)
                           and len(np.unique(positions)) == positions.size):
    return _update("set", x, idx, op(getitem(x, idx), values))
  if isinstance(positions, Tracer):
    if kind == "divide":  # (the product of the reciprocals: may differ in the last bit)
      return _update("multiply", x, idx, ew.div(np.ones((), dtype), values))
    raise errors.ConcretizationError(
        f"x.at[...].{kind}: the index arrays are traced (e.g. batched under vmap, or computed "
        f"under jit), and their {entries} entries could name a position more than once; "
        f"{kind} then acts once per occurrence, which needs the index's values. Index with "
        f"NumPy arrays, or, where the positions are distinct, write {_DISTINCT[kind]}.")
  pos = np.ravel(positions)
  order = np.argsort(pos, kind="stable")
  first = np.r_[True, pos[order][1:] != pos[order][:-1]]
  rank = np.empty(pos.size, np.intp)
  rank[order] = np.arange(pos.size) - np.maximum.accumulate(np.where(first, np.arange(pos.size),
                                                                     0))
  rounds = int(rank.max()) + 1
  if kind == "divide" and rounds > _MAX_DIVIDE_ROUNDS:
    return _update("multiply", x, idx, ew.div(np.ones((), dtype), values))
  flat = shape_ops.reshape(x, (math.prod(x_aval.shape),))
  flat_values = None if values is None else shape_ops.reshape(values, (pos.size,))
  one_axis = (ArrayIndex(0),)
  for r in range(rounds):
    chosen = np.flatnonzero(rank == r)
    at_r = pos[chosen]
    v = None if values is None else ix.gather(flat_values, [chosen], one_axis)
    flat = ix.scatter(flat, op(ix.gather(flat, [at_r], one_axis), v), [at_r], one_axis)
  return shape_ops.reshape(flat, x_aval.shape)


# ---- take, take_along_axis, compress -----------------------------------------------------------


def _index_array(indices, name):
  if isinstance(indices, Tracer):
    if indices.dtype.kind not in "iu":
      raise TypeError(f"dfdx.numpy.{name}: indices must be integers, got "
                      f"{indices.aval.str_short()}")
    return indices
  indices = np.asarray(indices)
  if indices.size == 0 and indices.dtype.kind not in "iu":
    return indices.astype(np.intp)
  if indices.dtype.kind not in "iu":
    raise TypeError(f"dfdx.numpy.{name}: cannot cast array data from {indices.dtype} to "
                    "int64 according to the rule 'safe'; indices must be integers.")
  return indices


def _take_mode(indices, n, mode, axis):
  """Indices in range for an axis of size n by NumPy's `mode` ('raise', 'wrap', 'clip')."""
  if mode == "raise":
    _check_bounds(indices, n, axis)
    return indices
  if mode not in ("wrap", "clip"):
    raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
  if n == 0 and math.prod(shape_of(indices)) > 0:
    raise IndexError("cannot do a non-empty take from an empty axes.")
  if not isinstance(indices, Tracer):
    return np.mod(indices, n) if mode == "wrap" else np.clip(indices, 0, n - 1)
  return ew.rem(indices, n) if mode == "wrap" else ew.minimum(ew.maximum(indices, 0), n - 1)


def take(a, indices, axis=None, out=None, mode=None):
  """Differentiable `numpy.take`: entries of `a` at `indices` along `axis` (of the flattened
  array when `axis` is None). `indices` may be traced (e.g. batched under vmap).

  Args:
    mode: 'raise' (default: out-of-bounds indices raise IndexError), 'wrap' or 'clip'.

  >>> dnp.take(np.array([1.0, 2.0, 3.0]), [2, -1, 0])
  array([3., 3., 1.])
  """
  mode = "raise" if mode is None else mode
  if not isinstance(a, Tracer) and not contains_tracer(indices):
    return np.take(a, indices, axis=axis, out=out, mode=mode)
  reject_out("take", out)
  a, indices = arg(a), _index_array(arg(indices), "take")
  if axis is None or not shape_of(a):  # (NumPy takes from a 0-d array as from a 1-d one)
    if axis is not None:
      normalize_axis(axis, 1)
    a, axis = shape_ops.reshape(a, (math.prod(shape_of(a)),)), 0
  axis = normalize_axis(axis, len(shape_of(a)))
  indices = _take_mode(indices, shape_of(a)[axis], mode, axis)
  return ix.gather(a, [indices], (slice(None),) * axis + (ArrayIndex(0),))


def take_along_axis(arr, indices, axis=-1):
  """Differentiable `numpy.take_along_axis`: `arr` indexed by `indices` along `axis`, the
  other axes matched (broadcast) with those of `indices`.

  >>> dnp.take_along_axis(np.array([[10., 30., 20.]]), np.array([[1, 2]]), axis=1)
  array([[30., 20.]])
  """
  if not isinstance(arr, Tracer) and not contains_tracer(indices):
    return np.take_along_axis(arr, indices, axis=axis)
  arr, indices = arg(arr), _index_array(arg(indices), "take_along_axis")
  if axis is None:
    if len(shape_of(indices)) != 1:
      raise ValueError("when axis=None, `indices` must have a single dimension.")
    arr, axis = shape_ops.reshape(arr, (math.prod(shape_of(arr)),)), 0
  else:
    normalize_axis(axis, len(shape_of(arr)))  # (NumPy's AxisError comes first)
    if len(shape_of(indices)) != len(shape_of(arr)):
      raise ValueError("`indices` and `arr` must have the same number of dimensions")
  shape = shape_of(arr)
  axis = normalize_axis(axis, len(shape))
  _check_bounds(indices, shape[axis], axis)
  arrays = [indices if d == axis else
            np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1))
            for d, n in enumerate(shape)]
  return ix.gather(arr, arrays, tuple(ArrayIndex(d) for d in range(len(shape))))


def compress(condition, a, axis=None, out=None):
  """Differentiable `numpy.compress` (in `a`): the slices of `a` along `axis` where the 1-d
  `condition` is true. `condition` must be concrete.

  >>> dnp.compress([True, False, True], np.array([1.0, 2.0, 3.0]))
  array([1., 3.])
  """
  if not isinstance(a, Tracer) and not isinstance(condition, Tracer):
    return np.compress(condition, a, axis=axis, out=out)
  reject_out("compress", out)
  if isinstance(condition, Tracer):
    condition = _concrete(condition, "compress", _MASK_FIX)
  condition = np.asarray(condition)
  if condition.ndim != 1:
    raise ValueError("condition must be a 1-d array")
  return take(a, np.nonzero(condition)[0], axis=axis)


# ---- indices of nonzero entries (concrete only) -------------------------------------------------
_NONZERO_FIX = "Use dfdx.numpy.where(condition, x, y), which keeps the shape, instead."


def nonzero(a):
  """`numpy.nonzero`: the indices of the nonzero entries, as a tuple of integer arrays. `a`
  must be concrete (the number of entries decides the result's shape).

  >>> dnp.nonzero(np.array([0.0, 2.0, 3.0]))
  (array([1, 2]),)
  """
  return np.nonzero(_concrete(a, "nonzero", _NONZERO_FIX) if isinstance(a, Tracer) else a)


def flatnonzero(a):
  """`numpy.flatnonzero` (`a` must be concrete)."""
  return np.flatnonzero(_concrete(a, "flatnonzero", _NONZERO_FIX) if isinstance(a, Tracer)
                        else a)


def argwhere(a):
  """`numpy.argwhere` (`a` must be concrete)."""
  return np.argwhere(_concrete(a, "argwhere", _NONZERO_FIX) if isinstance(a, Tracer) else a)


def ix_(*args):
  """`numpy.ix_`: an open mesh of the 1-d sequences, the k-th of n reshaped to unit axes but
  its own, so that `x[ix_(rows, cols)]` takes the cross product. Integer sequences may be
  traced (under jit and vmap too); a boolean one stands for its nonzero entries, so it must
  be concrete.

  >>> [i.shape for i in dnp.ix_(np.array([0, 2]), np.array([1, 2, 3]))]
  [(2, 1), (1, 3)]
  """
  if not contains_tracer(args):
    return np.ix_(*args)
  out = []
  for k, seq in enumerate(args):
    if not isinstance(seq, Tracer):
      seq = np.asarray(seq)
      if seq.size == 0:
        seq = seq.astype(np.intp)
    aval = get_aval(seq)
    if len(aval.shape) != 1:
      raise ValueError("Cross index must be 1 dimensional")
    if aval.dtype.kind == "b":
      seq = np.nonzero(_concrete(seq, "ix_ of a boolean sequence", _NONZERO_FIX)
                       if isinstance(seq, Tracer) else seq)[0]
    elif aval.dtype.kind not in "iu":
      raise IndexError(f"ix_: the sequences must be of integers or booleans, sequence {k} "
                       f"is {aval.dtype}.")
    shape = (1,) * k + (get_aval(seq).shape[0],) + (1,) * (len(args) - k - 1)
    out.append(shape_ops.reshape(seq, shape) if isinstance(seq, Tracer) else
               np.reshape(seq, shape))
  return tuple(out)
