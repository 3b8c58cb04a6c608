"""Array creation in `dfdx.numpy`: array and asarray (also of lists holding traced values),
zeros, ones, empty, full and their `_like` forms, eye, identity, arange, linspace, logspace,
meshgrid.

Creation functions return plain NumPy arrays unless a traced value flows into the result
(`asarray([x[0] * y[0], 5 * x[2]])`, `full(shape, traced)`, `linspace(traced, ...)`). The
`_like` forms of a traced array return constants of its shape and dtype.
"""
from __future__ import annotations

import operator

import numpy as np

from dfdx._src.core import Tracer, get_aval
from dfdx._src.state import Variable
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import contains_tracer, is_weak, normalize_axis, result_type, strong, \
    shape as shape_of

__all__ = ["array", "asarray", "asanyarray", "ascontiguousarray", "zeros", "ones", "empty",
           "full", "zeros_like", "ones_like", "empty_like", "full_like", "eye", "identity",
           "arange", "linspace", "logspace", "meshgrid", "copy"]


def _stack_nested(x, dtype):
  """A (nested) list holding tracers as one traced array of `dtype`."""
  if not isinstance(x, (list, tuple)):
    return shape_ops.convert_element_type(x, dtype) if isinstance(x, Tracer) else \
        np.asarray(x, dtype)
  items = [_stack_nested(v, dtype) for v in x]
  shapes = {shape_of(v) for v in items}
  if len(shapes) > 1:
    raise ValueError("setting an array element with a sequence. The requested array has an "
                     f"inhomogeneous shape: its elements have shapes {sorted(shapes)}.")
  (item_shape,) = shapes or {()}
  return shape_ops.concatenate([shape_ops.reshape(v, (1,) + item_shape) for v in items], 0) \
      if items else np.zeros((0,), dtype)


def _nested_dtype(x):
  if isinstance(x, (list, tuple)):
    dtypes = [_nested_dtype(v) for v in x]
    return np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
  return get_aval(x).dtype if isinstance(x, Tracer) else np.asarray(x).dtype


def asarray(a, dtype=None, order=None, *, device=None, copy=None, like=None):
  """Differentiable `numpy.asarray`: traced values pass through, and lists holding traced
  values become one traced array (`asarray([x[0] * y[0], 5 * x[2]])`), with the dtype NumPy
  would give the list."""
  if isinstance(a, Variable):
    a = a.value
  if isinstance(a, Tracer):
    return strong(a) if dtype is None else shape_ops.convert_element_type(a, dtype)
  if isinstance(a, (list, tuple)) and contains_tracer(a):
    return _stack_nested(a, np.dtype(dtype) if dtype is not None else _nested_dtype(a))
  return np.asarray(a, dtype=dtype, order=order, device=device, copy=copy,
                    **({} if like is None else {"like": like}))


def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0):  # noqa: A002
  """Differentiable `numpy.array` (see `asarray`)."""
  if isinstance(object, Variable):
    object = object.value  # noqa: A001
  if not (isinstance(object, Tracer) or contains_tracer(object)):
    return np.array(object, dtype=dtype, copy=copy, order=order, subok=subok, ndmin=ndmin)
  out = asarray(object, dtype)
  missing = ndmin - len(shape_of(out))
  return shape_ops.reshape(out, (1,) * missing + shape_of(out)) if missing > 0 else out


asanyarray = asarray
ascontiguousarray = asarray


def copy(a, order="K", subok=False):
  """`numpy.copy`; a traced value is returned as it is (traced values are never mutated)."""
  return strong(a) if isinstance(a, Tracer) else np.copy(a, order=order, subok=subok)


zeros, ones, empty, eye, identity = np.zeros, np.ones, np.empty, np.eye, np.identity


def full(shape, fill_value, dtype=None, order="C", *, like=None):
  """Differentiable `numpy.full`: a traced `fill_value` (a scalar or an array, or a list
  holding traced values) is broadcast to `shape`."""
  if not _any_traced(fill_value):
    return np.full(shape, fill_value, dtype=dtype, order=order,
                   **({} if like is None else {"like": like}))
  shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
  fill = asarray(fill_value)
  fill = fill if dtype is None else shape_ops.convert_element_type(fill, dtype)
  return shape_ops.broadcast_to(fill, shape)


def _like(np_fun):
  def fn(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if not _any_traced(a):
      return np_fun(a, dtype=dtype, order=order, subok=subok, shape=shape, device=device)
    aval = get_aval(asarray(a))
    return np_fun(np.empty((0,), aval.dtype), dtype=aval.dtype if dtype is None else dtype,
                  shape=aval.shape if shape is None else shape)
  fn.__name__ = fn.__qualname__ = np_fun.__name__
  fn.__doc__ = (f"`numpy.{np_fun.__name__}`; of a traced array, a constant of its shape and "
                "dtype.")
  return fn


zeros_like = _like(np.zeros_like)
ones_like = _like(np.ones_like)
empty_like = _like(np.empty_like)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
  """Differentiable `numpy.full_like`: a traced `fill_value` is broadcast (and cast to the
  dtype of `a`, as NumPy does, so an integer `a` gives a zero derivative)."""
  if not _any_traced(a, fill_value):
    return np.full_like(a, fill_value, dtype=dtype, order=order, subok=subok, shape=shape,
                        device=device)
  aval = get_aval(asarray(a))
  out_shape = aval.shape if shape is None else shape
  out_dtype = np.dtype(aval.dtype if dtype is None else dtype)
  if _any_traced(fill_value):
    return full(out_shape, fill_value, out_dtype)
  return np.full(out_shape, fill_value, out_dtype)


def _concrete(x, what):
  if isinstance(x, Tracer):
    return x.concrete_value(what)
  return x


def arange(start, stop=None, step=None, dtype=None, *, like=None):
  """Differentiable `numpy.arange`, in `start` and `step`: the length comes from their concrete
  values (so under `jit` or `vmap`, where those are unknown, traced bounds raise
  `ConcretizationError`), and the values are computed as NumPy fills them: `start`,
  `start + step`, then `start + i * delta` with `delta = (start + step) - start`. `stop` only
  sets the length, and has a zero derivative."""
  given = (start, stop, step)
  start, stop, step = (_concrete(v, "arange") for v in given)
  args = [start] + ([] if stop is None else [stop]) + ([] if step is None else [step])
  if stop is None and step is not None:
    args = [0, start, step]
  values = np.arange(*args, dtype=dtype)
  first, second = (given[0], given[2]) if stop is not None else (0, None)
  if not _any_traced(first, second) or values.dtype.kind not in "fc" or not values.size:
    return values
  return _arange_values(first, 1 if second is None else second, values.size, values.dtype)


def _arange_values(start, step, n, dtype):
  """NumPy's fill of an arange of `n` entries of `dtype` (`@NAME@_fill` in its sources), with
  traced `start` and `step`."""
  s0 = _cast_operand(_as_operand(start), dtype)
  if n == 1:
    return shape_ops.reshape(s0, (1,))
  s1 = _cast_operand(ew.add(_as_operand(start), step), dtype)
  head = [shape_ops.reshape(s0, (1,)), shape_ops.reshape(s1, (1,))]
  if n == 2:
    return shape_ops.concatenate(head, 0)
  delta = ew.sub(s1, s0)
  rest = ew.add(s0, ew.mul(np.arange(2, n, dtype=np.empty(0, dtype).real.dtype), delta))
  return shape_ops.concatenate(head + [rest], 0)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
  """Differentiable `numpy.linspace`, in `start` and `stop` (scalars or arrays), computed as
  NumPy computes it: start + arange(num) * step, with the last sample set to `stop`."""
  if not _any_traced(start, stop):
    return np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
  num = operator.index(num)
  if num < 0:
    raise ValueError(f"Number of samples, {num}, must be non-negative.")
  div = (num - 1) if endpoint else num
  start, stop = _as_operand(start), _as_operand(stop)
  dt = result_type(start, stop)
  if dt.kind not in "fc":
    dt = np.result_type(dt, np.float64)
  integer_dtype = dtype is not None and np.issubdtype(dtype, np.integer)
  dtype = dt if dtype is None else np.dtype(dtype)
  start = _cast_operand(start, dt)
  delta = ew.sub(_cast_operand(stop, dt), start)
  bshape = shape_of(delta)
  y = np.arange(num, dtype=dt).reshape((-1,) + (1,) * len(bshape))
  if div > 0:
    step = ew.div(delta, div)
    y = ew.mul(y, step)
  else:  # no step for 0 samples, or 1 sample with the endpoint
    step = np.nan
    y = ew.mul(y, delta)
  y = ew.add(y, start)
  if endpoint and num > 1:
    last = shape_ops.broadcast_to(_cast_operand(stop, dt), bshape)
    y = shape_ops.concatenate([shape_ops.slice_in_dim(y, 0, num - 1, 0),
                               shape_ops.reshape(last, (1,) + bshape)], 0)
  axis = normalize_axis(axis, len(bshape) + 1)
  if axis:
    y = shape_ops.transpose(y, tuple(range(1, axis + 1)) + (0,) + tuple(
        range(axis + 1, len(bshape) + 1)))
  if integer_dtype:
    y = ew.floor(y)
  y = shape_ops.convert_element_type(y, dtype)
  return (y, step) if retstep else y


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
  """Differentiable `numpy.logspace`: base ** linspace(start, stop), in start, stop and base."""
  if not _any_traced(start, stop, base):
    return np.logspace(start, stop, num, endpoint, base, dtype, axis)
  start, stop, base = _as_operand(start), _as_operand(stop), _as_operand(base)
  if not is_weak(base) and shape_of(base):
    # A non-scalar base is broadcast with start and stop, since it may change what axis means.
    ndmax = len(np.broadcast_shapes(shape_of(start), shape_of(stop), shape_of(base)))
    start, stop, base = (_at_least_ndim(v, ndmax) for v in (start, stop, base))
    axis_ = normalize_axis(axis, ndmax + 1)
    base_shape = shape_of(base)
    base = shape_ops.reshape(base, base_shape[:axis_] + (1,) + base_shape[axis_:])
  y = linspace(start, stop, num=num, endpoint=endpoint, axis=axis)
  out = _power(base, y)
  return out if dtype is None else shape_ops.convert_element_type(out, dtype)


def _power(x, y):
  from dfdx._src.numpy.ufuncs import power
  return power(x, y)


def _any_traced(*xs):
  return any(isinstance(x, Tracer) or contains_tracer(x) for x in xs)


def _as_operand(x):
  """A tracer or Python scalar as it is; anything else as an array (lists may hold tracers)."""
  if isinstance(x, Tracer) or is_weak(x):
    return x
  return asarray(x)


def _cast_operand(x, dtype):
  if is_weak(x):
    return np.asarray(x, dtype)
  return shape_ops.convert_element_type(x, dtype)


def _at_least_ndim(x, ndim):
  shape = shape_of(x)
  if len(shape) >= ndim:
    return x
  return shape_ops.reshape(x if not is_weak(x) else np.asarray(x),
                           (1,) * (ndim - len(shape)) + shape)


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
  """Differentiable `numpy.meshgrid` (a tuple of arrays, as in NumPy 2)."""
  if not _any_traced(*xi):
    return np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
  if indexing not in ("xy", "ij"):
    raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
  xi = [asarray(x) for x in xi]
  xi = [shape_ops.reshape(x, (int(np.prod(shape_of(x))),)) for x in xi]
  n = len(xi)
  shapes = [[1] * n for _ in xi]
  for i in range(n):
    shapes[i][i] = shape_of(xi[i])[0]
  if indexing == "xy" and n > 1:
    shapes[0][0], shapes[0][1] = 1, shapes[0][0]
    shapes[1][1], shapes[1][0] = 1, shapes[1][1]
  out = [shape_ops.reshape(x, tuple(s)) for x, s in zip(xi, shapes)]
  if sparse:
    return tuple(out)
  full_shape = np.broadcast_shapes(*[tuple(s) for s in shapes])
  return tuple(shape_ops.broadcast_to(x, full_shape) for x in out)

