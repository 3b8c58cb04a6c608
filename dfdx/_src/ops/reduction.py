"""Reduction and cumulative primitives: reduce_sum, reduce_max, reduce_min, reduce_prod,
argmax, argmin, cumsum, cumprod.

Reductions take `axes`, a sorted tuple of non-negative axes, and drop them (no keepdims; the
NumPy layer reshapes). Ties in max/min share the derivative equally among the tied entries.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from dfdx._src import ad, batching, core
from dfdx._src.batching import logical_axis
from dfdx._src.core import ShapedArray
from dfdx._src.ops import shape as shape_ops

_sum_dtypes: dict = {}


def _sum_dtype(dtype):
  """The dtype of np.sum over an array of `dtype` (small integers and bools widen)."""
  try:
    return _sum_dtypes[dtype]
  except KeyError:
    out = _sum_dtypes[dtype] = np.sum(np.empty((0,), dtype)).dtype
    return out


def _reduced_shape(shape, axes):
  return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_axes(x, axes, name):
  if any(not 0 <= a < x.ndim for a in axes) or len(set(axes)) != len(axes):
    raise ValueError(f"{name}: axes {axes} are invalid for an array of rank {x.ndim}")


def keepdims_shape(shape, axes):
  """`shape` with the reduced `axes` kept as size-1 axes."""
  try:
    return _keepdims_shape(shape, axes)
  except TypeError:  # (a list: not hashable)
    return _keepdims_shape(tuple(shape), tuple(axes))


@functools.lru_cache(maxsize=1024)
def _keepdims_shape(shape, axes):
  return tuple(1 if i in axes else d for i, d in enumerate(shape))


def expand_reduced(y, shape, axes):
  """Broadcast a reduction's result `y` back to the input's `shape`."""
  if len(axes) == len(shape):  # a full reduction: y is 0-d and broadcasts as it is
    return shape_ops.broadcast_to(y, shape)
  return shape_ops.broadcast_to(shape_ops.reshape(y, keepdims_shape(shape, axes)), shape)


# ---- reduce_sum ---------------------------------------------------------------------------
reduce_sum_p = core.primitive("reduce_sum")


def _sorted_axes(axes):
  axes = tuple(axes)
  if len(axes) == 1 and type(axes[0]) is int:  # the common case, as below
    return axes
  return axes if all(type(a) is int for a in axes) and list(axes) == sorted(axes) else \
      tuple(sorted(int(a) for a in axes))


def reduce_sum(x, axes):
  return reduce_sum_p.bind(x, axes=_sorted_axes(axes))


def _reduce_sum_abstract_eval(x, *, axes):
  _check_axes(x, axes, "reduce_sum")
  return ShapedArray(_reduced_shape(x.shape, axes), _sum_dtype(x.dtype))


def _reduce_sum_transpose(ct, x, *, axes):
  return [expand_reduced(ct, x.shape, axes)]


def _reduce_sum_transpose_eager(ct, x, *, axes):
  # expand_reduced's reshape and broadcast_to, by their impls (see ad.eager_transposes)
  shape = x.shape
  if len(axes) != len(shape):
    ct = ct.reshape(keepdims_shape(shape, axes))
  return [ct if ct.shape == shape else shape_ops.broadcast_to_p.impl(ct, shape=shape)]


_SUM_BY_SLICES_MAX = 7  # NumPy adds a run of fewer than 8 entries one by one
_SUM_BY_SLICES_MIN_ROWS = 128
_SUM_BY_SLICES_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _sum_by_slices(x, axes):
  """np.add.reduce(x, axis=axes) bit for bit, as adds of whole slices, where that is NumPy's
  slow case: a C-contiguous array summed over a few trailing entries per row (batched
  3-vectors, the cotangents of broadcast operands), one inner-loop call per row in NumPy.
  NumPy adds such a run one by one onto +0.0, so the sum is ((0 + x0) + x1) + ... (and a sum
  of -0.0s is +0.0). None where this does not apply."""
  if type(x) is not np.ndarray or not axes or axes[0] != x.ndim - len(axes):
    return None  # (axes are sorted and distinct: the trailing ones, or not)
  nd = x.ndim - len(axes)
  n, rows = math.prod(x.shape[nd:]), x.shape[:nd]
  if (not 0 < n <= _SUM_BY_SLICES_MAX or math.prod(rows) < _SUM_BY_SLICES_MIN_ROWS
          or x.dtype not in _SUM_BY_SLICES_DTYPES or not x.flags.c_contiguous):
    return None
  return _sum_trailing(x, axes)


def _sum_trailing(x, axes):
  """np.add.reduce(x, axis=axes) over the trailing `axes`, bit for bit: by adds of whole
  slices where x is C-contiguous and each sum has at most 7 entries (see _sum_by_slices;
  NumPy sums 8 or more pairwise), else by NumPy. Also the generated code's helper of that
  name (codegen_rules copies its source)."""
  nd = x.ndim - len(axes)
  n = 1
  for d in x.shape[nd:]:
    n *= d
  if not 0 < n <= 7 or not x.flags.c_contiguous:
    return np.add.reduce(x, axis=axes)
  x = x.reshape(x.shape[:nd] + (n,))
  if n == 1:
    return np.add(x[..., 0], 0.0)
  out = np.add(x[..., 0], x[..., 1])
  for i in range(2, n):
    np.add(out, x[..., i], out=out)
  return np.add(out, 0.0, out=out)  # -0.0 becomes +0.0, everything else stays


# sum(x * y, axes) of large arrays (x ** 2: y is x), in blocks of leading rows whose products
# stay in cache (see ad.py's "deferred values"): each block's product goes into one buffer
# and is summed into its rows of the result. The operands are C-contiguous and of one shape,
# so the whole product would be too, and each sum runs over the same entries in the same
# order as NumPy's sum of the whole product (rows along the leading axis are summed
# separately by NumPy too: the leading axis is never summed here): the values are NumPy's
# bit for bit.
_PRODUCTS_BLOCK = 1 << 16  # entries per block (512 KB of float64: a quarter of L2)


def sum_of_products(x, y, axes):
  """np.add.reduce(x * y, axis=axes) without the whole product (np.square(x) when y is x),
  or None where blocks do not apply (axis 0 summed, rows too long for two in a block)."""
  n = x.shape[0]
  if not axes or axes[0] == 0 or x.ndim < 2:
    return None
  rows = _PRODUCTS_BLOCK // (x.size // n) if n else 0
  if rows < 2 or rows >= n:
    return None
  out = np.empty(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)
  buf = np.empty((rows,) + x.shape[1:], x.dtype)
  for i in range(0, n, rows):
    j = min(n, i + rows)
    block = np.square(x[i:j], out=buf[:j - i]) if y is x else \
        np.multiply(x[i:j], y[i:j], out=buf[:j - i])
    np.add.reduce(block, axis=axes, out=out[i:j])
  return out


def _reduce_sum_impl(x, *, axes):
  if type(x) is np.ndarray and x.size >= _SUM_BY_SLICES_MIN_ROWS:
    out = _sum_by_slices(x, axes)
    if out is not None:
      return out
  return np.add.reduce(x, axis=axes)


reduce_sum_p.def_impl(_reduce_sum_impl)
reduce_sum_p.def_abstract_eval(_reduce_sum_abstract_eval)
ad.deflinear(reduce_sum_p, _reduce_sum_transpose)
ad.deftranspose_eager(reduce_sum_p, _reduce_sum_transpose_eager)
batching.defreducer(reduce_sum_p)


# ---- reduce_max, reduce_min ---------------------------------------------------------------
def _chooser_abstract_eval(name):
  def abstract_eval(x, *, axes):
    _check_axes(x, axes, name)
    if any(x.shape[a] == 0 for a in axes):
      raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
    return ShapedArray(_reduced_shape(x.shape, axes), x.dtype)
  return abstract_eval


def _chooser_jvp(prim):
  def jvp(primals, tangents, *, axes):
    (x,), (x_dot,) = primals, tangents
    ans = prim.bind(x, axes=axes)
    if ans.dtype.kind not in "fc":
      return ans, None
    location = shape_ops.convert_element_type(
        elementwise.eq(x, expand_reduced(ans, x.shape, axes)), ans.dtype)
    counts = reduce_sum(location, axes)
    return ans, elementwise.div(reduce_sum(elementwise.mul(x_dot, location), axes), counts)
  return jvp


def _chooser_vjp(ct, ans, x, *, needs, axes):
  """The transpose of the chooser's JVP, step for step (the same values), recorded as one
  node: a max whose derivative is not used (the shift of a log-sum-exp under stop_gradient)
  then costs no derivative work in the forward pass."""
  location = shape_ops.convert_element_type(
      elementwise.eq(x, expand_reduced(ans, x.shape, axes)), ans.dtype)
  counts = reduce_sum(location, axes)
  return [elementwise.tmul(expand_reduced(elementwise.tdiv(ct, counts), x.shape, axes),
                           location)]


reduce_max_p = core.primitive("reduce_max")


def reduce_max(x, axes):
  return reduce_max_p.bind(x, axes=_sorted_axes(axes))


reduce_max_p.def_impl(lambda x, *, axes: np.maximum.reduce(x, axis=axes))
reduce_max_p.def_abstract_eval(_chooser_abstract_eval("maximum"))
ad.primitive_jvps[reduce_max_p] = _chooser_jvp(reduce_max_p)
ad.defvjp(reduce_max_p, _chooser_vjp)
batching.defreducer(reduce_max_p)

reduce_min_p = core.primitive("reduce_min")


def reduce_min(x, axes):
  return reduce_min_p.bind(x, axes=_sorted_axes(axes))


reduce_min_p.def_impl(lambda x, *, axes: np.minimum.reduce(x, axis=axes))
reduce_min_p.def_abstract_eval(_chooser_abstract_eval("minimum"))
ad.primitive_jvps[reduce_min_p] = _chooser_jvp(reduce_min_p)
ad.defvjp(reduce_min_p, _chooser_vjp)
batching.defreducer(reduce_min_p)

# ---- reduce_prod --------------------------------------------------------------------------
reduce_prod_p = core.primitive("reduce_prod")


def reduce_prod(x, axes):
  return reduce_prod_p.bind(x, axes=_sorted_axes(axes))


def _reduce_prod_abstract_eval(x, *, axes):
  _check_axes(x, axes, "reduce_prod")
  return ShapedArray(_reduced_shape(x.shape, axes), _sum_dtype(x.dtype))


def _reduce_prod_jvp(primals, tangents, *, axes):
  (x,), (x_dot,) = primals, tangents
  ans = reduce_prod_p.bind(x, axes=axes)
  if ans.dtype.kind not in "fc":
    return ans, None
  return ans, reduce_sum(elementwise.mul(x_dot, _product_of_others(x, axes)), axes)


def _product_of_others(x, axes):
  """For each entry, the product of the other entries of its reduction group; exact when
  entries are zero (no division): exclusive products from the left times from the right."""
  shape, ndim = x.shape, len(x.shape)
  kept = [i for i in range(ndim) if i not in axes]
  n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
  flat = shape_ops.reshape(shape_ops.transpose(x, kept + list(axes)),
                           tuple(shape[i] for i in kept) + (n,))
  last = len(kept)
  if n <= 1:
    others = elementwise.add(elementwise.mul(flat, 0), 1)
  else:
    ones = np.ones(tuple(shape[i] for i in kept) + (1,), x.dtype)
    left = shape_ops.concatenate(
        [ones, cumprod(shape_ops.slice_in_dim(flat, 0, n - 1, last), last)], last)
    right = shape_ops.concatenate(
        [cumprod(shape_ops.slice_in_dim(flat, 1, n, last), last, reverse=True), ones], last)
    others = elementwise.mul(left, right)
  others = shape_ops.reshape(others, tuple(shape[i] for i in kept) + tuple(shape[a] for a in axes))
  return shape_ops.transpose(others, tuple(np.argsort(kept + list(axes))))


reduce_prod_p.def_impl(lambda x, *, axes: np.multiply.reduce(x, axis=axes))
reduce_prod_p.def_abstract_eval(_reduce_prod_abstract_eval)
ad.primitive_jvps[reduce_prod_p] = _reduce_prod_jvp
batching.defreducer(reduce_prod_p)


# ---- argmax, argmin -----------------------------------------------------------------------
def _arg_abstract_eval(name):
  def abstract_eval(x, *, axis):
    _check_axes(x, (axis,), name)
    if x.shape[axis] == 0:
      raise ValueError(f"attempt to get {name} of an empty sequence")
    return ShapedArray(_reduced_shape(x.shape, (axis,)), np.intp)
  return abstract_eval


def _arg_batch(prim):
  def rule(axis_size, vals, dims, *, axis):
    (x,), (d,) = vals, dims
    return prim.bind(x, axis=logical_axis(axis, d)), d - (axis < d)
  return rule


argmax_p = core.primitive("argmax")
argmax_p.def_impl(lambda x, *, axis: np.argmax(x, axis=axis))
argmax_p.def_abstract_eval(_arg_abstract_eval("argmax"))
ad.defjvp_zero(argmax_p)
batching.primitive_batchers[argmax_p] = _arg_batch(argmax_p)

argmin_p = core.primitive("argmin")
argmin_p.def_impl(lambda x, *, axis: np.argmin(x, axis=axis))
argmin_p.def_abstract_eval(_arg_abstract_eval("argmin"))
ad.defjvp_zero(argmin_p)
batching.primitive_batchers[argmin_p] = _arg_batch(argmin_p)


# ---- cumsum, cumprod ----------------------------------------------------------------------
def _cumulative_impl(np_fun):
  def impl(x, *, axis, reverse):
    if not reverse:
      return np_fun(x, axis=axis)
    return np.flip(np_fun(np.flip(x, axis), axis=axis), axis)
  return impl


def _cumulative_abstract_eval(x, *, axis, reverse):
  _check_axes(x, (axis,), "cumulative operation")
  return ShapedArray(x.shape, _sum_dtype(x.dtype))


def _cumulative_batch(prim):
  def rule(axis_size, vals, dims, *, axis, reverse):
    (x,), (d,) = vals, dims
    return prim.bind(x, axis=logical_axis(axis, d), reverse=reverse), d
  return rule


cumsum_p = core.primitive("cumsum")


def cumsum(x, axis, reverse=False):
  return cumsum_p.bind(x, axis=int(axis), reverse=bool(reverse))


cumsum_p.def_impl(_cumulative_impl(np.cumsum))
cumsum_p.def_abstract_eval(_cumulative_abstract_eval)
ad.deflinear(cumsum_p, lambda ct, x, *, axis, reverse: [cumsum(ct, axis, not reverse)])
batching.primitive_batchers[cumsum_p] = _cumulative_batch(cumsum_p)

cumprod_p = core.primitive("cumprod")


def cumprod(x, axis, reverse=False):
  return cumprod_p.bind(x, axis=int(axis), reverse=bool(reverse))


def _cumprod_jvp(primals, tangents, *, axis, reverse):
  (x,), (x_dot,) = primals, tangents
  ans = cumprod_p.bind(x, axis=axis, reverse=reverse)
  if ans.dtype.kind not in "fc":
    return ans, None
  if reverse:
    return ans, shape_ops.rev(_cumprod_tangent(shape_ops.rev(x, (axis,)),
                                               shape_ops.rev(x_dot, (axis,)), axis), (axis,))
  return ans, _cumprod_tangent(x, x_dot, axis)


# Along an axis of at most this many entries the tangent of cumprod is a matrix product (n^2
# entries, few operations); past it, a linear recurrence solved by doubling (n log n).
_CUMPROD_BY_MATRIX_MAX = 16


def _cumprod_tangent(x, x_dot, axis):
  """d cumprod(x)_i = sum_{j<=i} x_dot_j prod_{k<=i, k!=j} x_k, exact at zeros (no division).
  It is the recurrence dc_i = x_i dc_(i-1) + c_(i-1) x_dot_i (c the cumulative product, 1
  before the first entry): O(n log n) entries, and so are its own derivatives (the n^2 of the
  matrix form became n^3 in a third derivative: 513 GiB for 4,100 entries)."""
  n = x.shape[axis]
  if n <= _CUMPROD_BY_MATRIX_MAX:
    return _cumprod_tangent_by_matrix(x, x_dot, axis)
  ones = np.ones(x.shape[:axis] + (1,) + x.shape[axis + 1:], x.dtype)
  before = shape_ops.concatenate(
      [ones, cumprod(shape_ops.slice_in_dim(x, 0, n - 1, axis), axis)], axis)
  return linear_recurrence(x, elementwise.mul(before, x_dot), axis)


def linear_recurrence(a, b, axis):
  """y with y_i = a_i y_(i-1) + b_i along `axis` (y_(-1) = 0), exactly (no division), in
  ceil(log2 n) doubling steps (Hillis and Steele): after the step of shift s, entry i holds
  the composition of the maps i-2s+1..i, the map (a, b) after (a', b') being (a a', a b' + b)."""
  n = core.shape_of(a)[axis]
  shape = core.shape_of(b)
  s = 1
  while s < n:
    fill = shape[:axis] + (s,) + shape[axis + 1:]
    b_before = shape_ops.concatenate(
        [np.zeros(fill, core.get_aval(b).dtype), shape_ops.slice_in_dim(b, 0, n - s, axis)],
        axis)
    b = elementwise.add(elementwise.mul(a, b_before), b)
    if 2 * s < n:  # (the last step needs no a)
      a_before = shape_ops.concatenate(
          [np.ones(fill, core.get_aval(a).dtype), shape_ops.slice_in_dim(a, 0, n - s, axis)],
          axis)
      a = elementwise.mul(a, a_before)
    s *= 2
  return b


def _cumprod_tangent_by_matrix(x, x_dot, axis):
  """The tangent of cumprod as a product with the matrix whose row j holds x with x_j
  replaced by one (n^2 entries along the axis)."""
  n = x.shape[axis]
  xm = batching.moveaxis(x, axis, x.ndim - 1)
  tm = batching.moveaxis(x_dot, axis, x.ndim - 1)
  rows = shape_ops.broadcast_to(shape_ops.reshape(xm, xm.shape[:-1] + (1, n)),
                                xm.shape[:-1] + (n, n))
  rows = elementwise.select(np.eye(n, dtype=bool), 1, rows)
  partial = elementwise.mul(cumprod(rows, x.ndim), np.triu(np.ones((n, n), x.dtype)))
  out = reduce_sum(elementwise.mul(shape_ops.reshape(tm, tm.shape + (1,)), partial), (x.ndim - 1,))
  return batching.moveaxis(out, x.ndim - 1, axis)


cumprod_p.def_impl(_cumulative_impl(np.cumprod))
cumprod_p.def_abstract_eval(_cumulative_abstract_eval)
ad.primitive_jvps[cumprod_p] = _cumprod_jvp
batching.primitive_batchers[cumprod_p] = _cumulative_batch(cumprod_p)

from dfdx._src.ops import elementwise  # noqa: E402  (rules above use it; it imports this module)
