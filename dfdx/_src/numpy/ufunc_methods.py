"""The methods of dfdx.numpy's binary ufuncs (`dnp.add.reduce`, `dnp.maximum.accumulate`,
`dnp.multiply.outer`, `dnp.add.reduceat`, `dnp.add.at`), also what NumPy's own ufunc methods
run on traced values (`np.multiply.outer(x, y)`).

Each maps to dfdx.numpy functions with NumPy's semantics: reduce to sum, prod, max, min, all,
any (and a shifted log-sum-exp for logaddexp), accumulate to cumsum, cumprod or a cumulative
maximum or minimum, outer to broadcasting, reduceat to reductions of slices between concrete
indices. Every other binary ufunc's reduce and accumulate combine entries in log2(n) rounds
where the ufunc is associative and commutative (fmax, fmin, logaddexp's accumulate,
logical_xor, the bitwise ones), and otherwise fold from the left as NumPy does (subtract,
divide, power, hypot, arctan2, ...: one `dfdx.scan` over the axis). Except for add,
multiply, maximum and minimum's reduce and accumulate (dfdx.numpy's reductions check their
own), NumPy's own call on zeros of the same shape checks the arguments first (its errors,
its result dtype). `at`
writes in place, which a traced value cannot take: its TypeError names the functional
update. With no traced operand each method is NumPy's own.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.ops import control_flow as cf
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy import indexing as ixn
from dfdx._src.numpy import manipulation as mp
from dfdx._src.numpy import reductions as rd
from dfdx._src.numpy import ufuncs as uf
from dfdx._src.numpy.util import arg, contains_tracer, dtype as dtype_of, normalize_axis, \
    reject_out, shape as shape_of

_NO_VALUE = np._NoValue

# ufunc name -> the dfdx.numpy reduction that is its reduce
_REDUCTIONS = {"add": rd.sum, "multiply": rd.prod, "maximum": rd.max, "minimum": rd.min,
               "logical_and": rd.all, "logical_or": rd.any}
# ufuncs whose reduce and accumulate may group and order entries freely (associative and
# commutative: exactly, or up to rounding for logaddexp): log2(n) rounds, not one per entry
_REORDERABLE = frozenset(["fmax", "fmin", "logaddexp", "logaddexp2", "logical_xor",
                          "bitwise_and", "bitwise_or", "bitwise_xor", "gcd", "lcm"])
# ufunc name -> the functional update that does its `at` on traced values
_AT = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
       "true_divide": "divide", "power": "power", "maximum": "max", "minimum": "min"}


def _traced(*xs):
  return any(isinstance(x, Tracer) or contains_tracer(x) for x in xs)


def call(fn, np_ufunc, method, args, kwargs):
  """`fn.method(*args, **kwargs)` for the dfdx.numpy ufunc `fn`, NumPy's `np_ufunc`."""
  if not _traced(*args, *kwargs.values()):
    return getattr(np_ufunc, method)(*args, **kwargs)
  return _METHODS[method](fn, np_ufunc.__name__, *args, **kwargs)


# ---- reduce ---------------------------------------------------------------------------------
def reduce(fn, name, array, axis=0, dtype=None, out=None, keepdims=False, initial=_NO_VALUE,
           where=_NO_VALUE):
  """`ufunc.reduce`: sum for add, prod for multiply, max, min, all, any, and a log-sum-exp
  for logaddexp and logaddexp2."""
  reject_out(f"{name}.reduce", out)
  kw = {k: v for k, v in (("initial", initial), ("where", where)) if v is not _NO_VALUE}
  if name in _REDUCTIONS:
    if name in ("logical_and", "logical_or"):
      _numpy_reduce(name, arg(array), axis, dtype, keepdims, initial, where)  # (its checks)
      kw.pop("initial", None)
      array = arg(array) if dtype is None else uf.astype(arg(array), dtype)
      result = _REDUCTIONS[name](array, axis=axis, keepdims=keepdims, **kw)
      return result if initial is _NO_VALUE else fn(result, initial)
    if name in ("maximum", "minimum"):
      array = arg(array) if dtype is None else uf.astype(arg(array), dtype)
      return _REDUCTIONS[name](array, axis=axis, keepdims=keepdims, **kw)
    return _REDUCTIONS[name](array, axis=axis, dtype=dtype, keepdims=keepdims, **kw)
  if name in ("logaddexp", "logaddexp2"):
    probe = _numpy_reduce(name, arg(array), axis, dtype, keepdims, initial, where)
    if not shape_of(array):  # (a 0-d array: NumPy's reduce gives it, or it with initial)
      return _of_scalar(fn, arg(array), initial, np.result_type(probe))
    return _logsumexp(name, fn, array, axis, dtype, keepdims, initial, where)
  return _general_reduce(fn, name, arg(array), axis, dtype, keepdims, initial, where)


def _logsumexp(name, fn, a, axis, dtype, keepdims, initial, where):
  """logaddexp.reduce: log(sum(exp(a - m))) + m with m the largest entry (held constant: its
  derivative cancels), in base 2 for logaddexp2; -inf (the identity) for no entries."""
  a = arg(a)
  if dtype is not None:
    a = uf.astype(a, dtype)
  elif dtype_of(a).kind not in "fc":  # (NumPy's loop: float16 for int8, float64 for int64)
    probe = np.zeros(0, dtype_of(a))
    a = uf.astype(a, getattr(np, name)(probe, probe).dtype)
  shape = shape_of(a)
  axes = tuple(range(len(shape))) if axis is None else \
      tuple(normalize_axis(i, len(shape)) for i in (axis if isinstance(axis, tuple) else
                                                      (axis,)))
  if where is not _NO_VALUE:
    a = uf.where(where, a, np.array(-np.inf, dtype_of(a)))
  if initial is not _NO_VALUE:
    result = _logsumexp(name, fn, a, axes, None, keepdims, _NO_VALUE, _NO_VALUE)
    return fn(result, initial)
  if any(shape[i] == 0 for i in axes):
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    return np.full(out_shape, -np.inf, dtype_of(a))
  exp, log = (uf.exp, uf.log) if name == "logaddexp" else (uf.exp2, uf.log2)
  m = ew.stop_gradient(rd.max(a, axis=axes, keepdims=True))
  m = uf.where(uf.isfinite(m), m, np.zeros((), dtype_of(a)))
  total = rd.sum(exp(uf.subtract(a, m)), axis=axes, keepdims=True)
  # (no entry above -inf: -inf, without log(0)'s warning and infinite slope)
  empty = uf.equal(total, 0)
  logs = uf.where(empty, np.array(-np.inf, dtype_of(a)),
                  log(uf.where(empty, np.ones((), dtype_of(a)), total)))
  result = uf.add(logs, m)
  return result if keepdims else mp.squeeze(result, axes)


def _numpy_reduce(name, a, axis, dtype, keepdims, initial, where):
  """NumPy's own reduce of zeros shaped like `a`: its errors for these arguments, and the
  result's dtype and shape."""
  kw = {}
  if initial is not _NO_VALUE:
    kw["initial"] = np.zeros((), dtype_of(initial)) if _traced(initial) else initial
  if where is not _NO_VALUE:
    kw["where"] = np.ones(np.shape(where), bool) if _traced(where) else where
  with np.errstate(all="ignore"):  # (NumPy's errors, not its warnings on zeros)
    return getattr(np, name).reduce(np.zeros(shape_of(a), dtype_of(a)), axis=axis,
                                    dtype=dtype, keepdims=keepdims, **kw)


def _of_scalar(fn, a, initial, dtype):
  return uf.astype(a if initial is _NO_VALUE else fn(initial, a), dtype)


def _general_reduce(fn, name, a, axis, dtype, keepdims, initial, where):
  """reduce of any other binary ufunc: NumPy's own reduce of zeros checks the arguments and
  gives the result's dtype; the reduced axes become one, which is folded from the left (or
  combined in rounds, see `_REORDERABLE`) starting from `initial` (or the ufunc's identity,
  with `where`), entries where `where` is False left out."""
  shape = shape_of(a)
  np_ufunc = getattr(np, name)
  probe = _numpy_reduce(name, a, axis, dtype, keepdims, initial, where)
  out_dtype = np.result_type(probe)
  if not shape:  # (a 0-d array: NumPy's reduce gives it, or it with initial)
    return _of_scalar(fn, a, initial, out_dtype)
  axes = tuple(range(len(shape))) if axis is None else tuple(
      normalize_axis(i, len(shape)) for i in (axis if isinstance(axis, tuple) else (axis,)))
  kept = [i for i in range(len(shape)) if i not in axes]
  n = int(np.prod([shape[i] for i in axes], dtype=np.int64))
  a = mp.reshape(mp.transpose(a, kept + list(axes)), tuple(shape[i] for i in kept) + (n,))
  a = _in_dtype(np_ufunc, a, dtype)
  mask = start = None
  if where is not _NO_VALUE:
    mask = mp.broadcast_to(arg(where), shape)
    mask = mp.reshape(mp.transpose(mask, kept + list(axes)), shape_of(a))
    start = np.asarray(np_ufunc.identity)  # (the probe raised if there is none)
  if initial is not _NO_VALUE:
    start = arg(initial)
  if start is not None:
    start = mp.broadcast_to(uf.astype(start, out_dtype), shape_of(a)[:-1])
  elif n == 0:
    return probe  # (no entries: NumPy's identity)
  if name in _REORDERABLE and mask is None:
    result = start if n == 0 else _rounds(fn, a)
    if start is not None and n:
      result = fn(start, result)
  else:
    result = _fold(fn, a, out_dtype, running=False, mask=mask, start=start)
  result = uf.astype(result, out_dtype)
  return mp.reshape(result, shape_of(probe)) if keepdims else result


# ---- accumulate -----------------------------------------------------------------------------
def accumulate(fn, name, array, axis=0, dtype=None, out=None):
  """`ufunc.accumulate`: cumsum for add, cumprod for multiply, and cumulative maxima and
  minima (also logical_and, logical_or) as a scan of `fn` over shifted copies."""
  reject_out(f"{name}.accumulate", out)
  array = arg(array)
  ndim = len(shape_of(array))
  with np.errstate(all="ignore"):  # (NumPy's errors and result dtype, from zeros)
    out_dtype = getattr(np, name).accumulate(np.zeros(shape_of(array), dtype_of(array)),
                                             axis=axis, dtype=dtype).dtype
  if isinstance(axis, tuple):  # (one axis, as NumPy allows)
    (axis,) = axis
  axis = normalize_axis(0 if axis is None else axis, ndim)
  if name == "add":
    return rd.cumsum(array, axis=axis, dtype=dtype)
  if name == "multiply":
    return rd.cumprod(array, axis=axis, dtype=dtype)
  if name in ("maximum", "minimum", "logical_and", "logical_or"):
    if dtype is not None or name.startswith("logical"):
      array = uf.astype(array, bool if dtype is None else dtype)
    return mp.moveaxis(_rounds(fn, mp.moveaxis(array, axis, -1), running=True), -1, axis)
  array = _in_dtype(getattr(np, name), array, dtype)
  if shape_of(array)[axis] == 0:
    return uf.astype(array, out_dtype)
  a = mp.moveaxis(array, axis, -1)
  a = _rounds(fn, a, running=True) if name in _REORDERABLE else _fold(fn, a, out_dtype,
                                                                      running=True)
  return mp.moveaxis(uf.astype(a, out_dtype), -1, axis)


def _in_dtype(np_ufunc, a, dtype):
  """`a` cast to the `dtype=` of a reduction, as NumPy casts the operands, where the ufunc
  has a loop for two operands of that dtype (ldexp's second operand stays an integer)."""
  if dtype is None:
    return a
  try:
    np_ufunc(np.zeros(1, dtype), np.zeros(1, dtype))
  except TypeError:
    return a
  return uf.astype(a, dtype)


def _rounds(fn, a, running=False):
  """fn (associative and commutative) over the last axis of `a` in ceil(log2(n)) rounds:
  for reduce, the halves' entries in pairs until one is left; for accumulate (`running`),
  each entry combined with the one 2**k before it in round k (Hillis and Steele). The
  derivative of a maximum or minimum goes to the entry it picks (shared between ties)."""
  n = shape_of(a)[-1]
  if running:
    shift = 1
    while shift < n:
      a = mp.concatenate([shape_ops.slice_in_dim(a, 0, shift, -1),
                          fn(shape_ops.slice_in_dim(a, 0, n - shift, -1),
                             shape_ops.slice_in_dim(a, shift, n, -1))], axis=-1)
      shift *= 2
    return a
  while n > 1:
    half = n // 2
    pairs = fn(shape_ops.slice_in_dim(a, 0, half, -1),
               shape_ops.slice_in_dim(a, half, 2 * half, -1))
    a = mp.concatenate([pairs, shape_ops.slice_in_dim(a, 2 * half, n, -1)], axis=-1) \
        if n % 2 else pairs
    n -= half
  return mp.squeeze(a, -1)


def _fold(fn, a, dtype, running, mask=None, start=None):
  """NumPy's left fold of fn over the last axis of `a`, ((a0 fn a1) fn a2) ..., as one scan
  (from `start` if given, then over every entry): the last result, or every running one
  (`running`), in `dtype`. Entries where `mask` is False leave the result as it was."""
  n = shape_of(a)[-1]
  first, lo = (start, 0) if start is not None else (ixn.take(a, 0, axis=-1), 1)
  first = uf.astype(first, dtype)
  if lo == n:
    return mp.expand_dims(first, -1) if running else first
  xs = mp.moveaxis(shape_ops.slice_in_dim(a, lo, n, -1), -1, 0)
  if mask is not None:
    xs = (xs, mp.moveaxis(shape_ops.slice_in_dim(mask, lo, n, -1), -1, 0))

  def step(carry, x):
    if mask is None:
      new = uf.astype(fn(carry, x), dtype)
    else:
      new = uf.where(x[1], uf.astype(fn(carry, x[0]), dtype), carry)
    return new, (new if running else None)
  last, steps = cf.scan(step, first, xs)
  if not running:
    return last
  return mp.concatenate([mp.expand_dims(first, -1), mp.moveaxis(steps, 0, -1)], axis=-1)


# ---- outer, reduceat, at ----------------------------------------------------------------------
def outer(fn, name, A, B, /, **kwargs):
  """`ufunc.outer`: fn(A[..., None, ..., None], B), every pair of entries."""
  A, B = arg(A), arg(B)
  A = mp.reshape(A, shape_of(A) + (1,) * len(shape_of(B)))
  return fn(A, B, **kwargs)


def reduceat(fn, name, array, indices, axis=0, dtype=None, out=None):
  """`ufunc.reduceat` with concrete `indices`: the reduction of array[i:j] for each index i and
  the next one j (to the end for the last), or array[i] where j <= i."""
  reject_out(f"{name}.reduceat", out)
  if isinstance(indices, Tracer):  # (read off under grad; under jit or vmap, an error)
    indices = indices.concrete_value(f"{name}.reduceat's indices (the result's shape depends "
                                     "on them)")
  array = arg(array)
  in_dtype = dtype_of(array)
  indices = np.asarray(indices)
  if indices.size == 0:
    indices = indices.astype(np.intp)  # ([] is NumPy's float64)
  with np.errstate(all="ignore"):  # (NumPy's errors and the result's dtype, from zeros)
    out_dtype = getattr(np, name).reduceat(np.zeros(shape_of(array), in_dtype), indices,
                                           axis=axis, dtype=dtype).dtype
  if name in _REDUCTIONS and dtype is not None:
    array = uf.astype(array, dtype)
  else:
    array = _in_dtype(getattr(np, name), array, dtype)
  shape = shape_of(array)
  axis = normalize_axis(axis, len(shape))
  n = shape[axis]
  parts = []
  for k, i in enumerate(indices.tolist()):
    if not 0 <= i < n:
      raise IndexError(f"index {i} out-of-bounds in {name}.reduceat [0, {n})")
    j = indices[k + 1] if k + 1 < len(indices) else n
    if j <= i:
      parts.append(ixn.take(array, [i], axis=axis))
    else:
      part = ixn.take(array, np.arange(i, j), axis=axis)
      parts.append(reduce(fn, name, part, axis=axis, keepdims=True))
  if not parts:
    return uf.astype(ixn.take(array, np.zeros(0, np.intp), axis=axis), out_dtype)
  return uf.astype(mp.concatenate(parts, axis=axis), out_dtype)


def at(fn, name, a, indices, b=None):
  """`ufunc.at` writes into `a` in place: a NumPy array takes it, a traced value cannot."""
  if not isinstance(a, Tracer) and not isinstance(b, Tracer) and not contains_tracer(b) \
      and not contains_tracer(indices):
    np_ufunc = getattr(np, name)
    return np_ufunc.at(a, indices) if b is None else np_ufunc.at(a, indices, b)
  update = _AT.get(name, f"apply(dnp.{name})")
  update = update if "(" in update else update + "(values)"
  raise TypeError(f"numpy.{name}.at writes into an array in place, and a traced value cannot go "
                  f"into a NumPy array or be written into; use the functional update "
                  f"x = x.at[indices].{update} (dnp.at(x)[indices] on a NumPy array), which "
                  "returns the updated array.")


_METHODS = {"reduce": reduce, "accumulate": accumulate, "outer": outer, "reduceat": reduceat,
            "at": at}
METHOD_NAMES = tuple(_METHODS)
