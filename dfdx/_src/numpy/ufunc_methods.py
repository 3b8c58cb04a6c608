"""The methods of dfdx.numpy's binary ufuncs (`dnp.add.reduce`, `dnp.maximum.accumulate`,
`dnp.multiply.outer`, `dnp.add.reduceat`, `dnp.add.at`), also what NumPy's own ufunc methods
run on traced values (`np.multiply.outer(x, y)`).

Each maps to dfdx.numpy functions with NumPy's semantics: reduce to sum, prod, max, min, all,
any (and a shifted log-sum-exp for logaddexp), accumulate to cumsum, cumprod or a cumulative
maximum or minimum, outer to broadcasting, reduceat to reductions of slices between concrete
indices. What has no differentiable version raises a TypeError that names an alternative.
With no traced operand each method is NumPy's own.
"""
from __future__ import annotations

import numpy as np

from dfdx._src.core import Tracer
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
# ufunc name -> the functional update that does its `at` on traced values
_AT = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
       "true_divide": "divide", "power": "power", "maximum": "max", "minimum": "min"}


def _traced(*xs):
  return any(isinstance(x, Tracer) or contains_tracer(x) for x in xs)


def _unsupported(name, method, alternative):
  return TypeError(f"dfdx.numpy.{name}.{method} does not support traced values: "
                   f"{alternative}")


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
      if initial is not _NO_VALUE:
        raise _unsupported(name, "reduce", "initial= is not supported; combine the result "
                           f"with dfdx.numpy.{name}.")
      array = arg(array) if dtype is None else uf.astype(arg(array), dtype)
      return _REDUCTIONS[name](array, axis=axis, keepdims=keepdims, **kw)
    if name in ("maximum", "minimum"):
      array = arg(array) if dtype is None else uf.astype(arg(array), dtype)
      return _REDUCTIONS[name](array, axis=axis, keepdims=keepdims, **kw)
    return _REDUCTIONS[name](array, axis=axis, dtype=dtype, keepdims=keepdims, **kw)
  if name in ("logaddexp", "logaddexp2"):
    return _logsumexp(name, fn, array, axis, dtype, keepdims, initial, where)
  raise _unsupported(name, "reduce", f"fold the slices with dfdx.numpy.{name} "
                     f"(functools.reduce(dnp.{name}, ...)) or use dfdx.scan.")


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


# ---- accumulate -----------------------------------------------------------------------------
def accumulate(fn, name, array, axis=0, dtype=None, out=None):
  """`ufunc.accumulate`: cumsum for add, cumprod for multiply, and cumulative maxima and
  minima (also logical_and, logical_or) as a scan of `fn` over shifted copies."""
  reject_out(f"{name}.accumulate", out)
  array = arg(array)
  ndim = len(shape_of(array))
  if axis is None:
    if ndim != 1:
      raise ValueError("accumulate does not allow multiple axes")
    axis = 0
  if not ndim:
    raise ValueError("Cannot accumulate on a scalar")
  axis = normalize_axis(axis, ndim)
  if name == "add":
    return rd.cumsum(array, axis=axis, dtype=dtype)
  if name == "multiply":
    return rd.cumprod(array, axis=axis, dtype=dtype)
  if name in ("maximum", "minimum", "logical_and", "logical_or"):
    if dtype is not None or name.startswith("logical"):
      array = uf.astype(array, bool if dtype is None else dtype)
    return _scan(fn, array, axis)
  raise _unsupported(name, "accumulate", "compute it with dfdx.scan (a loop carrying the "
                     f"running result of dfdx.numpy.{name}).")


def _scan(fn, a, axis):
  """The running `fn` (associative and idempotent: fn(x, x) = x) along `axis` in
  ceil(log2(n)) steps: step k combines each entry with the one 2**k before it (Hillis and
  Steele), the first 2**k entries with themselves. The derivative of each output goes to the
  entry that `fn` picks (shared between tied entries)."""
  n = shape_of(a)[axis]
  shift = 1
  while shift < n:
    before = mp.concatenate([shape_ops.slice_in_dim(a, 0, shift, axis),
                             shape_ops.slice_in_dim(a, 0, n - shift, axis)], axis=axis)
    a = fn(a, before)
    shift *= 2
  return a


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
  if name not in _REDUCTIONS:
    raise _unsupported(name, "reduceat", f"reduce each slice with dfdx.numpy.{name}.")
  array = arg(array)
  if dtype is not None:
    array = uf.astype(array, dtype)
  shape = shape_of(array)
  axis = normalize_axis(axis, len(shape))
  n = shape[axis]
  indices = np.asarray(indices)
  if indices.ndim != 1:
    raise ValueError("index must be 1-dimensional")
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
    return ixn.take(array, np.zeros(0, np.intp), axis=axis)
  result = mp.concatenate(parts, axis=axis)
  return result if dtype_of(result) == dtype_of(array) or name in ("add", "multiply") \
      else uf.astype(result, dtype_of(array))


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
