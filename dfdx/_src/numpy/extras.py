"""More of NumPy's API in `dfdx.numpy`, toward all that HIPS autograd's `autograd.numpy`
differentiates.

The families live in their own modules and are re-exported here: `sorting` (sort, argsort,
partition, lexsort, searchsorted, unique, set functions), `statistics` (median, quantiles,
nan* reductions), `floating` (copysign, frexp, sinc, nan_to_num, ...) and `numerical` (cross,
convolve, interp, cov, histograms, polynomials, ...). This module adds the index-expression
objects `r_` and `c_`, select, piecewise, choose, block, apply_along_axis and other
array-building functions, NumPy 2's aliases, the functions of NumPy's namespace that need no
differentiable version (dtypes, printing, I/O, ...; re-exported unchanged), and clear errors
for NumPy's in-place functions on traced values.

As everywhere in `dfdx.numpy`: with no traced argument a function calls NumPy; traced calls
compose dfdx's functions, so they can be differentiated and batched.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from dfdx._src import core, errors
from dfdx._src.core import Tracer
from dfdx._src.numpy import contractions as ct
from dfdx._src.numpy import creation as cr
from dfdx._src.numpy import floating as _floating
from dfdx._src.numpy import indexing as ixn
from dfdx._src.numpy import manipulation as mp
from dfdx._src.numpy import numerical as _numerical
from dfdx._src.numpy import reductions as rd
from dfdx._src.numpy import sorting as _sorting
from dfdx._src.numpy import statistics as _statistics
from dfdx._src.numpy import ufuncs as uf
from dfdx._src.numpy.floating import *  # noqa: F401,F403
from dfdx._src.numpy.numerical import *  # noqa: F401,F403
from dfdx._src.numpy.sorting import *  # noqa: F401,F403
from dfdx._src.numpy.sorting import concrete, traced
from dfdx._src.numpy.statistics import *  # noqa: F401,F403
from dfdx._src.tree import tree_leaves
from dfdx._src.numpy.util import arg, dtype as dtype_of, is_weak, python_kind, reject_out, \
    shape as shape_of, standin, strong, weakly_typed

_HERE = ["r_", "c_", "select", "piecewise", "choose", "block", "diagflat", "extract", "resize",
         "rollaxis", "trim_zeros", "unstack", "apply_along_axis", "apply_over_axes",
         "geomspace", "einsum_path", "astype", "matrix_transpose", "permute_dims", "concat",
         "row_stack", "put", "place", "putmask", "copyto", "fill_diagonal", "put_along_axis",
         "asarray_chkfinite", "asfortranarray", "require", "isfortran", "vectorize"]


def _operand(x):
  x = arg(x)
  return strong(x) if isinstance(x, Tracer) else np.asarray(x)  # (what asarray makes)


# ---- r_ and c_ --------------------------------------------------------------------------------
class _AxisConcatenator:
  """NumPy's `r_`/`c_` (numpy.lib._index_tricks_impl.AxisConcatenator) for traced entries:
  slices become ranges, strings are directives, the rest is concatenated."""
  __slots__ = ("axis", "ndmin", "trans1d", "np_object")

  def __init__(self, np_object, axis=0, ndmin=1, trans1d=-1):
    self.np_object, self.axis, self.ndmin, self.trans1d = np_object, axis, ndmin, trans1d

  def __getitem__(self, key):
    if not traced(*(key if isinstance(key, tuple) else (key,))):
      return self.np_object[key]
    key = key if isinstance(key, tuple) else (key,)
    axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
    objs, kinds = [], []
    for k, item in enumerate(key):
      if isinstance(item, str):
        if k != 0:
          raise ValueError("special directives must be the first entry.")
        axis, ndmin, trans1d = self._directive(item, axis, ndmin, trans1d)
        continue
      if isinstance(item, slice):
        new = self.np_object[item]  # NumPy's range (a constant)
        if ndmin > 1:
          new = np.array(new, copy=None, ndmin=ndmin)
          if trans1d != -1:
            new = new.swapaxes(-1, trans1d)
        objs.append(new)
        kinds.append(new.dtype)
      elif type(item) in np.ScalarType:
        objs.append(item)
        kinds.append(item)
      else:
        new = self._promote(_operand(item), ndmin, trans1d)
        objs.append(new)
        kinds.append(dtype_of(new))
    dtype = np.result_type(*[k if is_weak(k) else np.empty(0, k) if isinstance(k, np.dtype)
                             else k for k in kinds])
    objs = [self._promote(uf.astype(_operand(o), dtype), ndmin, -1) for o in objs]
    return mp.concatenate(objs, axis=axis)

  @staticmethod
  def _directive(item, axis, ndmin, trans1d):
    if item in ("r", "c"):
      raise NotImplementedError("dfdx.numpy: the matrix directives 'r' and 'c' of r_ are not "
                                "supported on traced values.")
    try:
      vec = [int(v) for v in item.split(",")]
    except ValueError:
      raise ValueError(f"unknown special directive {item!r}") from None
    if len(vec) == 1:
      return vec[0], ndmin, trans1d
    return vec[0], vec[1], vec[2] if len(vec) == 3 else trans1d

  @staticmethod
  def _promote(x, ndmin, trans1d):
    """NumPy's array(x, ndmin=ndmin), with the trans1d transposition of its new axes."""
    item_ndim = len(shape_of(x))
    if item_ndim >= ndmin:
      return x
    x = mp.reshape(x, (1,) * (ndmin - item_ndim) + shape_of(x))
    if trans1d != -1:
      k2, k1 = ndmin - item_ndim, trans1d
      k1 = k1 + k2 + 1 if k1 < 0 else k1
      axes = list(range(ndmin))
      x = mp.transpose(x, axes[:k1] + axes[k2:] + axes[k1:k2])
    return x

  def __len__(self):
    return 0


r_ = _AxisConcatenator(np.r_, 0, 1, -1)
c_ = _AxisConcatenator(np.c_, -1, 2, 0)


# ---- select, piecewise, choose ------------------------------------------------------------
def select(condlist, choicelist, default=0):
  """Differentiable `numpy.select`: the first choice whose condition holds, else default (the
  derivative flows to the chosen entries)."""
  if not traced(condlist, choicelist, default):
    return np.select(condlist, choicelist, default)
  if len(condlist) != len(choicelist):
    raise ValueError("list of cases must be same length as list of conditions")
  if len(condlist) == 0:
    raise ValueError("select with an empty condition list is not possible")
  choices = [c if weakly_typed(c) else _operand(c) for c in list(choicelist) + [default]]
  try:
    dtype = np.result_type(*[standin(c) for c in choices])
  except TypeError as e:
    raise TypeError(f"Choicelist and default value do not have a common dtype: {e}") from None
  conds = [_operand(c) for c in condlist]
  for i, c in enumerate(conds):
    if dtype_of(c) != np.bool_:
      raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
  shape = np.broadcast_shapes(*[shape_of(v) for v in conds + choices])
  result = mp.broadcast_to(uf.astype(_operand(choices[-1]), dtype), shape)
  for cond, choice in zip(conds[::-1], choices[-2::-1]):
    result = uf.where(cond, uf.astype(_operand(choice), dtype), result)
  return result


def piecewise(x, condlist, funclist, *args, **kw):
  """Differentiable `numpy.piecewise`. With concrete conditions each function sees only its
  entries, as in NumPy; with traced ones (under vmap) each function is evaluated on all of x
  and its results are selected with where."""
  if not traced(x, condlist):
    return np.piecewise(x, condlist, funclist, *args, **kw)
  x = _operand(x)
  n2 = len(funclist)
  conds = [uf.astype(_operand(c), bool) for c in _conditions(condlist, len(shape_of(x)))]
  if len(conds) == n2 - 1:
    others = rd.any(mp.stack(conds), axis=0) if conds else np.zeros(shape_of(x), bool)
    conds.append(uf.logical_not(others))
  elif len(conds) != n2:
    raise ValueError(f"with {len(conds)} condition(s), either {len(conds)} or "
                     f"{len(conds) + 1} functions are expected")
  y = np.zeros(shape_of(x), dtype_of(x))
  for cond, func in zip(conds, funclist):
    y = _piece(x, y, cond, func, args, kw)
  return y


def _conditions(condlist, x_ndim):
  """NumPy's reading of piecewise's condlist: a single condition, or a sequence of them."""
  if isinstance(condlist, (Tracer, np.ndarray)):
    single = len(shape_of(condlist)) <= 1 and x_ndim != 0
  elif np.isscalar(condlist):
    single = True
  else:
    single = not isinstance(condlist[0], (list, np.ndarray, Tracer)) and x_ndim != 0
  if single:
    return [condlist]
  return [condlist[i] for i in range(len(condlist))]


def _piece(x, y, cond, func, args, kw):
  cond = mp.broadcast_to(cond, shape_of(x))
  if isinstance(cond, Tracer):
    value = func(x, *args, **kw) if callable(func) else func
    return uf.where(cond, uf.astype(_operand(value), dtype_of(x)), y)
  if not callable(func):
    return ixn.at(y)[cond].set(func)
  if not np.any(cond):
    return y
  return ixn.at(y)[cond].set(uf.astype(_operand(func(x[cond], *args, **kw)), dtype_of(x)))


def choose(a, choices, out=None, mode="raise"):
  """Differentiable `numpy.choose` (in the choices; the index array has zero derivative)."""
  if not traced(a, choices):
    return np.choose(a, choices, out=out, mode=mode)
  reject_out("choose", out)
  a = _operand(a)
  items = [_operand(c) for c in (choices if not isinstance(choices, Tracer) else
                                 [choices[i] for i in range(shape_of(choices)[0])])]
  try:
    a_values = concrete(a, "choose")
  except errors.ConcretizationError:
    a_values = np.zeros(shape_of(a), dtype_of(a))
  np.choose(a_values, [np.zeros(shape_of(c), dtype_of(c)) for c in items], mode=mode)
  dtype = np.result_type(*[np.empty(0, dtype_of(c)) for c in items])
  shape = np.broadcast_shapes(shape_of(a), *[shape_of(c) for c in items])
  stacked = mp.stack([mp.broadcast_to(uf.astype(c, dtype), shape) for c in items])
  n = len(items)
  index = mp.broadcast_to(a, shape)
  if mode == "wrap":
    index = uf.mod(index, n)
  elif mode == "clip":
    index = uf.clip(index, 0, n - 1)
  return ixn.take_along_axis(stacked, mp.expand_dims(index, 0), axis=0)[0]


# ---- building and reshaping arrays ------------------------------------------------------
def _leaves(x):
  if isinstance(x, list):
    for v in x:
      yield from _leaves(v)
  else:
    yield x


def _probe_nested(x):
  if isinstance(x, list):
    return [_probe_nested(v) for v in x]
  if isinstance(x, tuple):
    return tuple(_probe_nested(v) for v in x)
  x = _operand(x)
  return np.broadcast_to(np.zeros((), dtype_of(x)), shape_of(x))


def _depth(x):
  return 1 + _depth(x[0]) if isinstance(x, list) and x else int(isinstance(x, list))


def block(arrays):
  """Differentiable `numpy.block`: nested lists of arrays concatenated along the last axes,
  the innermost lists along the last one."""
  if not traced(arrays):
    return np.block(arrays)
  np.block(_probe_nested(arrays))  # NumPy's errors for ragged nesting or shapes
  depth = _depth(arrays)
  ndim = max([depth] + [len(shape_of(_operand(v))) for v in _leaves(arrays)])

  def build(x, level):
    if level < depth:
      return mp.concatenate([build(v, level + 1) for v in x], axis=-(depth - level))
    x = _operand(x)
    return mp.reshape(x, (1,) * (ndim - len(shape_of(x))) + shape_of(x))
  return build(arrays, 0)


def diagflat(v, k=0):
  """Differentiable `numpy.diagflat`."""
  if not traced(v):
    return np.diagflat(v, k)
  return ct.diag(mp.ravel(_operand(v)), k)


def extract(condition, arr):
  """Differentiable `numpy.extract` (in arr; the condition must be concrete)."""
  if not traced(condition, arr):
    return np.extract(condition, arr)
  cond = concrete(condition, "extract", "The result's length is decided by the condition.")
  return ixn.take(mp.ravel(_operand(arr)), np.flatnonzero(cond))


def resize(a, new_shape):
  """Differentiable `numpy.resize`: the entries of `a` repeated to fill `new_shape`."""
  if not traced(a):
    return np.resize(a, new_shape)
  new_shape = (new_shape,) if isinstance(new_shape, (int, np.integer)) else tuple(new_shape)
  a = mp.ravel(_operand(a))
  if any(d < 0 for d in new_shape):
    raise ValueError("all elements of `new_shape` must be non-negative")
  size, new_size = shape_of(a)[0], math.prod(new_shape)
  if size == 0 or new_size == 0:
    return np.zeros(new_shape, dtype_of(a))
  repeats = -(-new_size // size)
  return mp.reshape(mp.concatenate([a] * repeats)[:new_size], new_shape)


def rollaxis(a, axis, start=0):
  """Differentiable `numpy.rollaxis`."""
  if not traced(a):
    return np.rollaxis(a, axis, start)
  a = _operand(a)
  labels = tuple(range(1, len(shape_of(a)) + 1))
  perm = np.rollaxis(np.broadcast_to(np.int8(0), labels), axis, start).shape
  return mp.transpose(a, [p - 1 for p in perm])


def trim_zeros(filt, trim="fb", axis=None):
  """Differentiable `numpy.trim_zeros` (the zeros must be concrete: they decide the shape)."""
  if not traced(filt):
    return np.trim_zeros(filt, trim, axis)
  x = _operand(filt)
  values = concrete(x, "trim_zeros", "The result's shape is decided by the zeros.")
  np.trim_zeros(values, trim, axis)  # NumPy's errors
  return x[_trimmed_slices(values, trim.lower(), axis)]


def _trimmed_slices(values, trim, axis):
  """The slices NumPy's trim_zeros takes: along each trimmed axis, from the first to the last
  index holding a nonzero entry (an empty range if there is none)."""
  ndim = values.ndim
  axes = range(ndim) if axis is None else np.lib.array_utils.normalize_axis_tuple(axis, ndim)
  nonzero = np.argwhere(values != 0)
  if len(nonzero) == 0:
    start = stop = [0] * ndim
  else:
    start = nonzero.min(axis=0) if "f" in trim else [None] * ndim
    stop = nonzero.max(axis=0) + 1 if "b" in trim else [None] * ndim
  return tuple(slice(None if start[d] is None else int(start[d]),
                     None if stop[d] is None else int(stop[d])) if d in axes else slice(None)
               for d in range(ndim))


def unstack(x, /, *, axis=0):
  """Differentiable `numpy.unstack`: the slices along `axis`, as a tuple."""
  if not traced(x):
    return np.unstack(x, axis=axis)
  x = _operand(x)
  if not shape_of(x):
    raise ValueError("Input array must be at least 1-d.")
  moved = mp.moveaxis(x, axis, 0)
  return tuple(moved[i] for i in range(shape_of(moved)[0]))


def apply_along_axis(func1d, axis, arr, *args, **kwargs):
  """Differentiable `numpy.apply_along_axis`: `func1d` is called on each 1-D slice (a Python
  loop, as in NumPy) and the results are stacked."""
  if not traced(arr):
    return np.apply_along_axis(func1d, axis, arr, *args, **kwargs)
  arr = _operand(arr)
  nd = len(shape_of(arr))
  axis = np.lib.array_utils.normalize_axis_index(axis, nd)
  view = mp.moveaxis(arr, axis, -1)
  outer = shape_of(view)[:-1]
  if 0 in outer:
    raise ValueError("Cannot apply_along_axis when any iteration dimensions are 0")
  results = [_operand(func1d(view[ind], *args, **kwargs)) for ind in np.ndindex(outer)]
  dtype = dtype_of(results[0])
  res_shape = shape_of(results[0])
  buff = mp.reshape(mp.stack([uf.astype(r, dtype) for r in results]), outer + res_shape)
  dims = list(range(len(shape_of(buff))))
  return mp.transpose(buff, dims[:axis] + dims[len(outer):] + dims[axis:len(outer)])


def apply_over_axes(func, a, axes):
  """Differentiable `numpy.apply_over_axes` (func is called with traced values)."""
  if not traced(a):
    return np.apply_over_axes(func, a, axes)
  val = _operand(a)
  n = len(shape_of(val))
  for axis in (axes,) if np.ndim(axes) == 0 else axes:
    axis = axis + n if axis < 0 else axis
    res = _operand(func(val, axis))
    if len(shape_of(res)) != len(shape_of(val)):
      res = mp.expand_dims(res, axis)
      if len(shape_of(res)) != len(shape_of(val)):
        raise ValueError("function is not returning an array of the correct shape")
    val = res
  return val


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
  """Differentiable `numpy.geomspace` (real start and stop), with NumPy's exact end points."""
  if not traced(start, stop):
    return np.geomspace(start, stop, num, endpoint, dtype, axis)
  start, stop = _operand(start), _operand(stop)
  for v in (start, stop):
    if dtype_of(v).kind == "c":
      raise TypeError("dfdx.numpy.geomspace: complex traced values are not supported yet.")
  zero = _floating._python_bool(rd.any(uf.logical_or(uf.equal(start, 0), uf.equal(stop, 0))))
  if zero is True:
    raise ValueError("Geometric sequence cannot include zero")
  dt = np.result_type(np.empty(0, dtype_of(start)), np.empty(0, dtype_of(stop)), float(num))
  dtype = dt if dtype is None else np.dtype(dtype)
  start, stop = uf.astype(start, dt), uf.astype(stop, dt)
  sign = uf.sign(start)
  start, stop = uf.true_divide(start, sign), uf.true_divide(stop, sign)
  result = cr.logspace(uf.log10(start), uf.log10(stop), num=num, endpoint=endpoint, base=10.0,
                       dtype=dt)
  if num > 0:  # the end points are exactly start and stop, as NumPy makes them
    row = (1,) + shape_of(result)[1:]
    ends = [mp.broadcast_to(mp.expand_dims(v, 0), row) for v in (start, stop)]
    if num > 1 and endpoint:
      result = mp.concatenate([ends[0], result[1:num - 1], ends[1]], axis=0)
    else:
      result = mp.concatenate([ends[0], result[1:]], axis=0)
  result = uf.multiply(result, sign)
  if axis != 0:
    result = mp.moveaxis(result, 0, axis)
  return uf.astype(result, dtype)


def einsum_path(subscripts, *operands, optimize="greedy", einsum_call=False):
  """`numpy.einsum_path` (it only needs the operands' shapes, so traced ones are fine)."""
  probes = [_probe_nested(o) if traced(o) else o for o in operands]
  return np.einsum_path(subscripts, *probes, optimize=optimize, einsum_call=einsum_call)


def astype(x, dtype, /, *, copy=True, device=None):
  """`numpy.astype` (a cast between floating types keeps the derivative)."""
  if not traced(x):
    return np.astype(x, dtype, copy=copy, device=device)
  return uf.astype(_operand(x), dtype)


def matrix_transpose(x, /):
  """Differentiable `numpy.matrix_transpose`: the last two axes swapped."""
  if not traced(x):
    return np.matrix_transpose(x)
  x = _operand(x)
  if len(shape_of(x)) < 2:
    raise ValueError("Input array must be at least 2-dimensional, but it is "
                     f"{len(shape_of(x))}")
  return mp.swapaxes(x, -1, -2)


permute_dims = mp.transpose
concat = mp.concatenate


def row_stack(tup, *, dtype=None, casting="same_kind"):
  """`numpy.row_stack` (deprecated by NumPy, with its warning): vstack."""
  warnings.warn("`row_stack` alias is deprecated. Use `np.vstack` directly.",
                DeprecationWarning, stacklevel=2)
  return mp.vstack(tup, dtype=dtype, casting=casting)


# ---- in-place functions: not for traced values --------------------------------------------
def _in_place(name, fix):
  np_fun = getattr(np, name)

  def fn(*args, **kwargs):
    if traced(*args, *kwargs.values()):
      raise TypeError(f"dfdx.numpy.{name} modifies an array in place, which traced values "
                      f"do not allow. {fix}")
    return np_fun(*args, **kwargs)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"`numpy.{name}` (in place: concrete arrays only). {fix}"
  return fn


_AT = "Use the functional form: y = x.at[index].set(values) (or dfdx.numpy.at(x)[...])."
put = _in_place("put", _AT)
place = _in_place("place", _AT)
putmask = _in_place("putmask", "Use y = dfdx.numpy.where(mask, values, x).")
copyto = _in_place("copyto", "Use y = dfdx.numpy.where(where, src, dst), or src itself.")
fill_diagonal = _in_place("fill_diagonal", _AT)
put_along_axis = _in_place("put_along_axis", _AT)


def _identity_on_traced(name):
  np_fun = getattr(np, name)

  def fn(a, *args, **kwargs):
    return _operand(a) if traced(a) else np_fun(a, *args, **kwargs)
  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = f"`numpy.{name}`; a traced value is returned as it is."
  return fn


asarray_chkfinite = _identity_on_traced("asarray_chkfinite")
asfortranarray = _identity_on_traced("asfortranarray")
require = _identity_on_traced("require")


def isfortran(a):
  """`numpy.isfortran` (False for traced values)."""
  return False if traced(a) else np.isfortran(a)


class vectorize(np.vectorize):
  """`numpy.vectorize` that also accepts traced arguments, with NumPy's semantics.

  The function is called once per entry of the broadcast arguments (a Python loop, as in
  NumPy, so it may branch on concrete values) and the results are stacked with dfdx's
  indexing, `stack` and `reshape`: derivatives, vmap and jit follow. `excluded` arguments are
  passed through unchanged; keyword arguments not excluded are broadcast. With `signature`
  (a gufunc signature such as "(m,n),(n)->(m)") the function gets the core slices of each
  loop index, and the core sizes are checked as NumPy checks them. Results take `otypes`, or
  else the dtype of the first result, as in NumPy. Traced arguments may also sit in
  `excluded` arguments (in any pytree)."""

  def __call__(self, *args, **kwargs):
    if self.pyfunc is np._NoValue:  # a decorator with arguments: NumPy's second stage
      return super().__call__(*args, **kwargs)
    excluded = self.excluded
    inds = [i for i in range(len(args)) if i not in excluded]
    names = [n for n in kwargs if n not in excluded]
    vargs = [args[i] for i in inds] + [kwargs[n] for n in names]
    fixed = [args[i] for i in range(len(args)) if i in excluded]
    fixed += [v for n, v in kwargs.items() if n in excluded]
    if not traced(*vargs) and not traced(*tree_leaves(fixed)) and \
            core.current_trace() is None:  # (under a transformation the function may close
      return super().__call__(*args, **kwargs)  # over traced values: NumPy's loop cannot)

    def func(*vals):  # NumPy's wrapper: the broadcast arguments back in their places
      full, kw = list(args), dict(kwargs)
      for i, v in zip(inds, vals):
        full[i] = v
      kw.update(zip(names, vals[len(inds):]))
      return self.pyfunc(*full, **kw)
    if self.signature is not None:
      return self._call_with_signature(func, vargs)
    return self._call_elementwise(func, vargs) if vargs else func()

  def _call_elementwise(self, func, vargs):
    ops = [_operand(a) for a in vargs]
    if self.otypes is None and any(0 in shape_of(o) for o in ops):
      raise ValueError("cannot call `vectorize` on size 0 inputs unless `otypes` is set")
    shape = np.broadcast_shapes(*[shape_of(o) for o in ops])
    ops = [mp.broadcast_to(o, shape) for o in ops]
    nout, dtypes = (len(self.otypes), self.otypes) if self.otypes is not None else (None, None)
    if dtypes is None and math.prod(shape):  # NumPy's first call, on NumPy scalars (traced:
      first = func(*[o[(0,) * len(shape)] for o in ops])  # 0-d values), fixes the dtypes
      nout = len(first) if isinstance(first, tuple) else 1
      dtypes = [dtype_of(_operand(r)) for r in _results(first, nout)]
    columns = None
    for index in np.ndindex(shape):  # (then every entry, on Python scalars: see _entry)
      res = [_operand(r) for r in _results(func(*[_entry(o[index]) for o in ops]), nout)]
      columns = columns or [[] for _ in range(nout)]
      for column, r in zip(columns, res):
        if shape_of(r) != ():
          raise ValueError("setting an array element with a sequence.")
        column.append(r)
    if columns is None:  # size 0, with otypes
      outs = [np.empty(shape, dt) for dt in self.otypes]
    else:
      outs = [_stacked(c, shape, dt) for c, dt in zip(columns, dtypes)]
    return outs[0] if len(outs) == 1 else tuple(outs)

  def _call_with_signature(self, func, vargs):
    in_dims, out_dims = _parse_gufunc_signature(self.signature)
    if len(vargs) != len(in_dims):
      raise TypeError(f"wrong number of positional arguments: expected {len(in_dims)}, got "
                      f"{len(vargs)}")
    ops = [_operand(a) for a in vargs]
    sizes = {}
    loops = []
    for o, dims in zip(ops, in_dims):
      _update_dim_sizes(sizes, shape_of(o), dims)
      loops.append(shape_of(o)[:len(shape_of(o)) - len(dims)])
    loop = np.broadcast_shapes(*loops)
    ops = [mp.broadcast_to(o, loop + _core(sizes, dims)) for o, dims in zip(ops, in_dims)]
    nout = len(out_dims)
    columns, cores, dtypes = [[] for _ in out_dims], None, None
    for index in np.ndindex(*loop):
      res = [_operand(r) for r in _results(func(*[o[index] for o in ops]), nout)]
      if cores is None:  # the first results fix new core sizes and the dtypes, as in NumPy
        for r, dims in zip(res, out_dims):
          _update_dim_sizes(sizes, shape_of(r), dims)
        cores = [_core(sizes, dims) for dims in out_dims]
        dtypes = self.otypes if self.otypes is not None else [dtype_of(r) for r in res]
      for column, r, core_shape in zip(columns, res, cores):
        column.append(_fit(r, core_shape))
    if cores is None:  # the function was never called
      if self.otypes is None:
        raise ValueError("cannot call `vectorize` on size 0 inputs unless `otypes` is set")
      if any(d not in sizes for dims in out_dims for d in dims):
        raise ValueError("cannot call `vectorize` with a signature including new output "
                         "dimensions on size 0 inputs")
      outs = [np.empty(loop + _core(sizes, dims), dt) for dims, dt in zip(out_dims, self.otypes)]
    else:
      outs = [_stacked(c, loop + core, dt) for c, core, dt in zip(columns, cores, dtypes)]
    return outs[0] if nout == 1 else tuple(outs)


def _entry(x):
  """An entry as numpy.vectorize passes it, a Python scalar: a staged integer or bool stands
  for one (2 - True is 1, not an error); a traced float stays a 0-d value of its dtype,
  which keeps its derivative."""
  if not isinstance(x, Tracer):
    return x.item() if isinstance(x, (np.ndarray, np.generic)) else x
  return python_kind(x, dtype_of(x).kind) if dtype_of(x).kind in "biu" else x


try:  # NumPy's own parser of gufunc signatures (private, so imported with care)
  from numpy.lib._function_base_impl import _parse_gufunc_signature
except ImportError:
  def _parse_gufunc_signature(signature):
    return np.vectorize(lambda *a: None, signature=signature)._in_and_out_core_dims


def _results(res, nout):
  """The function's results as a tuple of `nout` (NumPy wraps a lone result, even a tuple)."""
  if nout == 1:
    return (res,)
  n = len(res) if isinstance(res, tuple) else 1
  if n != nout:
    raise ValueError(f"wrong number of outputs from pyfunc: expected {nout}, got {n}")
  return res


def _update_dim_sizes(sizes, shape, dims):
  """NumPy's `_update_dim_sizes`: the last `len(dims)` sizes of `shape` as the core sizes
  named `dims`, checked against (and added to) `sizes`."""
  if not dims:
    return
  if len(shape) < len(dims):
    raise ValueError(f"{len(shape)}-dimensional argument does not have enough dimensions for "
                     f"all core dimensions {dims!r}")
  for dim, size in zip(dims, shape[len(shape) - len(dims):]):
    if sizes.setdefault(dim, size) != size:
      raise ValueError(f"inconsistent size for core dimension {dim!r}: {size!r} vs "
                       f"{sizes[dim]!r}")


def _core(sizes, dims):
  return tuple(sizes[d] for d in dims)


def _fit(r, core):
  """A result broadcast to its core shape, as NumPy's `output[index] = result` allows: only a
  0-d result for a 0-d core, else broadcasting after dropping leading 1s."""
  s = shape_of(r)
  if not core:
    if s:
      raise ValueError("setting an array element with a sequence.")
    return r
  t = s
  while len(t) > len(core) and t[0] == 1:
    t = t[1:]
  if len(t) > len(core) or any(a not in (1, b) for a, b in zip(t[::-1], core[::-1])):
    raise ValueError(f"could not broadcast input array from shape {s} into shape {core}")
  return mp.broadcast_to(mp.reshape(r, t) if t != s else r, core)


def _stacked(values, shape, dtype):
  """Equally shaped values stacked into `shape` and cast to `dtype` (NumPy's output array)."""
  out = mp.reshape(mp.stack(values), shape)
  return out if dtype_of(out) == np.dtype(dtype) else uf.astype(out, dtype)


# ---- NumPy's functions and types that need no differentiable version ---------------------
_REEXPORTED = [
    "bool", "byte", "bytes_", "cdouble", "character", "clongdouble", "csingle", "datetime64",
    "double", "flexible", "half", "inexact", "int_", "intc", "long", "longdouble",
    "longlong", "object_", "short", "signedinteger", "single", "str_", "timedelta64", "ubyte",
    "uint", "uintc", "uintp", "ulong", "ulonglong", "unsignedinteger", "ushort", "void",
    "complex256", "float128", "ufunc", "flatiter", "broadcast", "busdaycalendar", "memmap",
    "recarray", "record", "matrix", "asmatrix", "bmat", "common_type", "mintypecode",
    "min_scalar_type", "typename", "isdtype", "array2string", "array_repr", "array_str",
    "format_float_positional", "format_float_scientific", "get_printoptions",
    "set_printoptions", "printoptions", "base_repr", "binary_repr", "load", "loadtxt", "save",
    "savetxt", "savez", "savez_compressed", "genfromtxt", "fromfile", "frombuffer", "fromiter",
    "fromregex", "fromstring", "from_dlpack", "geterr", "seterr", "geterrcall", "seterrcall",
    "getbufsize", "setbufsize", "info", "show_config", "show_runtime", "get_include",
    "busday_count", "busday_offset", "is_busday", "datetime_as_string", "datetime_data",
    "isnat", "bartlett", "blackman", "hamming", "hanning", "kaiser", "tri", "indices",
    "fromfunction", "frompyfunc", "iterable", "may_share_memory", "shares_memory",
    "ndenumerate", "ndindex", "nditer", "nested_iters", "mask_indices", "poly1d", "roots",
    "ravel_multi_index", "unravel_index", "packbits",
    "unpackbits",
]
_REEXPORTED = [name for name in _REEXPORTED if hasattr(np, name)]
globals().update({name: getattr(np, name) for name in _REEXPORTED})

__all__ = (list(_sorting.__all__) + list(_statistics.__all__) + list(_floating.__all__)
           + list(_numerical.__all__) + _HERE + _REEXPORTED)
