"""Sorting primitives (sort, argsort, partition, argpartition, searchsorted) and the few
elementwise primitives that the rest of NumPy's API needs and that cannot be composed
exactly from the others (signbit, spacing, nextafter, fmod, ldexp, frexp_exponent).

Sorting primitives act along one non-negative `axis`, with NumPy's `kind`; their impls are
NumPy's own functions, so traced results are NumPy's (also for ties, for the order NumPy's
algorithm gives them). Derivatives: sort and partition move the tangent with the permutation
that maps the input onto the output, `take_along_axis(x_dot, perm)`, where `perm` comes from
stable argsorts, so tied entries (equal values) are matched one to one in a consistent order.
Index results (argsort, argpartition, searchsorted, frexp's exponent), signbit and spacing
have zero derivatives; nextafter(x, y) has derivative 1 in x (it is x plus a step).

`searchsorted` takes a 1-D sorted `a`, or under vmap a stack of them: `batch_ndim` leading
axes of `a` and `v` are paired, and each 1-D `a` is searched for its own `v`.

Imports the shape, elementwise and indexing families; never `dfdx.numpy`.
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core, dtypes
from dfdx._src.batching import NOT_MAPPED, bdim_at_front, logical_axis
from dfdx._src.core import ShapedArray
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import indexing as ix
from dfdx._src.ops import shape as shape_ops


def take_along_axis(x, idx, axis):
  """`numpy.take_along_axis(x, idx, axis)` for `idx` of x's shape (gathered, so linear in
  x)."""
  shape = core.shape_of(x)
  arrays = [idx if d == axis else
            np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1))
            for d, n in enumerate(shape)]
  return ix.gather(x, arrays, tuple(ix.ArrayIndex(d) for d in range(len(shape))))


def _check_axis(x, axis, name):
  if not 0 <= axis < x.ndim:
    raise ValueError(f"{name}: axis {axis} is invalid for an array of rank {x.ndim}")


def _axis_batch(prim):
  def rule(axis_size, vals, dims, *, axis, **params):
    (x,), (d,) = vals, dims
    return prim.bind(x, axis=logical_axis(axis, d), **params), d
  return rule


# ---- sort, argsort ------------------------------------------------------------------------
sort_p = core.primitive("sort")


def sort(x, axis, kind=None):
  """`numpy.sort(x, axis, kind)` along a non-negative `axis`."""
  return sort_p.bind(x, axis=int(axis), kind=kind)


def _sort_abstract_eval(x, *, axis, kind):
  _check_axis(x, axis, "sort")
  return ShapedArray(x.shape, x.dtype, x.weak_type)


def _sort_jvp(primals, tangents, *, axis, kind):
  (x,), (x_dot,) = primals, tangents
  ans = sort_p.bind(x, axis=axis, kind=kind)
  if ans.dtype.kind not in "fc":
    return ans, None
  return ans, take_along_axis(x_dot, argsort(x, axis, "stable"), axis)


sort_p.def_impl(lambda x, *, axis, kind: np.sort(x, axis=axis, kind=kind))
sort_p.def_abstract_eval(_sort_abstract_eval)
ad.primitive_jvps[sort_p] = _sort_jvp
batching.primitive_batchers[sort_p] = _axis_batch(sort_p)

argsort_p = core.primitive("argsort")


def argsort(x, axis, kind=None):
  """`numpy.argsort(x, axis, kind)` along a non-negative `axis` (zero derivative)."""
  return argsort_p.bind(x, axis=int(axis), kind=kind)


def _argsort_abstract_eval(x, *, axis, kind):
  _check_axis(x, axis, "argsort")
  return ShapedArray(x.shape, np.intp)


argsort_p.def_impl(lambda x, *, axis, kind: np.argsort(x, axis=axis, kind=kind))
argsort_p.def_abstract_eval(_argsort_abstract_eval)
ad.defjvp_zero(argsort_p)
batching.primitive_batchers[argsort_p] = _axis_batch(argsort_p)


# ---- partition, argpartition ------------------------------------------------------------
def _check_kth(x, kth, axis, name):
  _check_axis(x, axis, name)
  n = x.shape[axis]
  for k in kth:
    if not 0 <= k < n:
      raise ValueError(f"kth(={k}) out of bounds ({n})")


partition_p = core.primitive("partition")


def partition(x, kth, axis):
  """`numpy.partition(x, kth, axis)` for non-negative `kth` (a tuple) and `axis`."""
  return partition_p.bind(x, kth=tuple(int(k) for k in kth), axis=int(axis))


def _partition_abstract_eval(x, *, kth, axis):
  _check_kth(x, kth, axis, "partition")
  return ShapedArray(x.shape, x.dtype, x.weak_type)


def _matching_permutation(x, ans, axis):
  """`perm` with take_along_axis(x, perm) == ans, for `ans` a permutation of `x` along
  `axis`: the entry of rank r in `ans` comes from the entry of rank r in `x` (stable ranks)."""
  ranks = argsort(argsort(ans, axis, "stable"), axis, "stable")
  return take_along_axis(argsort(x, axis, "stable"), ranks, axis)


def _partition_jvp(primals, tangents, *, kth, axis):
  (x,), (x_dot,) = primals, tangents
  ans = partition_p.bind(x, kth=kth, axis=axis)
  if ans.dtype.kind not in "fc":
    return ans, None
  return ans, take_along_axis(x_dot, _matching_permutation(x, ans, axis), axis)


partition_p.def_impl(lambda x, *, kth, axis: np.partition(x, kth, axis=axis))
partition_p.def_abstract_eval(_partition_abstract_eval)
ad.primitive_jvps[partition_p] = _partition_jvp
batching.primitive_batchers[partition_p] = _axis_batch(partition_p)

argpartition_p = core.primitive("argpartition")


def argpartition(x, kth, axis):
  """`numpy.argpartition(x, kth, axis)` (zero derivative)."""
  return argpartition_p.bind(x, kth=tuple(int(k) for k in kth), axis=int(axis))


def _argpartition_abstract_eval(x, *, kth, axis):
  _check_kth(x, kth, axis, "argpartition")
  return ShapedArray(x.shape, np.intp)


argpartition_p.def_impl(lambda x, *, kth, axis: np.argpartition(x, kth, axis=axis))
argpartition_p.def_abstract_eval(_argpartition_abstract_eval)
ad.defjvp_zero(argpartition_p)
batching.primitive_batchers[argpartition_p] = _axis_batch(argpartition_p)

# ---- searchsorted -------------------------------------------------------------------------
searchsorted_p = core.primitive("searchsorted")


def searchsorted(a, v, side="left", batch_ndim=0):
  """`numpy.searchsorted(a, v, side)` for a sorted 1-D `a` (or `batch_ndim` leading axes of
  `a` and `v` paired, see the module docstring). Zero derivative."""
  return searchsorted_p.bind(a, v, side=side, batch_ndim=int(batch_ndim))


def _searchsorted_impl(a, v, *, side, batch_ndim):
  if batch_ndim == 0:
    return np.searchsorted(a, v, side=side)
  a, v = np.asarray(a), np.asarray(v)
  out = np.empty(v.shape, np.intp)
  for i in np.ndindex(a.shape[:batch_ndim]):
    out[i] = np.searchsorted(a[i], v[i], side=side)
  return out


def _searchsorted_abstract_eval(a, v, *, side, batch_ndim):
  if a.ndim != batch_ndim + 1 or v.shape[:batch_ndim] != a.shape[:batch_ndim]:
    raise ValueError(f"searchsorted: a is {a.str_short()} and v is {v.str_short()}; a must "
                     f"have {batch_ndim + 1} axes, the first {batch_ndim} shared with v")
  return ShapedArray(v.shape, np.intp)


def _searchsorted_batch(axis_size, vals, dims, *, side, batch_ndim):
  (a, v), (a_dim, v_dim) = vals, dims
  if a_dim is NOT_MAPPED and batch_ndim == 0:
    return searchsorted_p.bind(a, v, side=side, batch_ndim=0), v_dim
  a, v = bdim_at_front(a, a_dim, axis_size), bdim_at_front(v, v_dim, axis_size)
  return searchsorted_p.bind(a, v, side=side, batch_ndim=batch_ndim + 1), 0


searchsorted_p.def_impl(_searchsorted_impl)
searchsorted_p.def_abstract_eval(_searchsorted_abstract_eval)
ad.defjvp_zero(searchsorted_p)
batching.primitive_batchers[searchsorted_p] = _searchsorted_batch


# ---- elementwise: signbit, spacing, nextafter, fmod, ldexp, frexp_exponent ----------------
def _elementwise_prim(name, np_fun, out_dtype=None):
  prim = core.primitive(name)
  prim.def_impl(np_fun)

  def abstract_eval(*avals):
    dtype = dtypes.ufunc_result_dtype(np_fun, *avals) if out_dtype is None else out_dtype
    shape = ew.broadcast_shapes(*[a.shape for a in avals])
    return ShapedArray(shape, dtype, dtypes.result_weak_type(*avals) and out_dtype is None)
  prim.def_abstract_eval(abstract_eval)
  batching.defbroadcasting(prim)
  return prim


signbit_p = _elementwise_prim("signbit", np.signbit, np.dtype(bool))
ad.defjvp_zero(signbit_p)
spacing_p = _elementwise_prim("spacing", np.spacing)
ad.defjvp_zero(spacing_p)
nextafter_p = _elementwise_prim("nextafter", np.nextafter)
# nextafter(x, y) is x moved by one unit in the last place: x plus a piecewise constant, so
# its derivative is 1 in x and 0 in y (as finite differences see it).
ad.defjvp(nextafter_p, lambda x_dot, x, y: x_dot, None)


def _frexp_exponent(x):
  return np.frexp(x)[1]


frexp_exponent_p = _elementwise_prim("frexp_exponent", _frexp_exponent, np.dtype(np.int32))
ad.defjvp_zero(frexp_exponent_p)


def signbit(x):
  return signbit_p.bind(x)


def spacing(x):
  return spacing_p.bind(x)


def nextafter(x, y):
  return nextafter_p.bind(x, y)


def frexp_exponent(x):
  """The exponent of `numpy.frexp(x)` (int32; zero derivative)."""
  return frexp_exponent_p.bind(x)


fmod_p = _elementwise_prim("fmod", np.fmod)


def fmod(x, y):
  """C's fmod (the result has the sign of `x`): x - trunc(x / y) * y."""
  return fmod_p.bind(x, y)


ad.defjvp(fmod_p, lambda x_dot, x, y: x_dot,
          lambda y_dot, x, y: ew.mul(y_dot, ew.neg(ew.trunc(ew.div(x, y)))))

ldexp_p = _elementwise_prim("ldexp", np.ldexp)


def ldexp(x, e):
  """x * 2**e for an integer `e`, exact (no overflow of 2**e where the product fits)."""
  return ldexp_p.bind(x, e)


def _ldexp_transpose(ct, x, e):
  assert not ad.is_linear(e), "ldexp is linear in its first argument only"
  ct = ldexp(ct, e)
  if ct.shape != x.shape:
    ct = shape_ops.sum_to_shape(ct, x.shape)
  return [ct if ct.dtype == x.dtype else shape_ops.convert_element_type(ct, x.dtype), None]


ad.defjvp(ldexp_p, lambda x_dot, x, e: ldexp(x_dot, e), None)
ad.primitive_transposes[ldexp_p] = _ldexp_transpose
