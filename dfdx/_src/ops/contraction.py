"""The contraction primitive, dot_general, and the compositions that other families' rules
and dfdx.numpy share: `matmul` (NumPy's semantics), `matrix_transpose`, `diagonal` (a strided
slice of the flattened matrix axes, no primitive of its own) and `trace`.

`dot_general(x, y, ((x_contract, y_contract), (x_batch, y_batch)))` is `lax.dot_general`:
it sums over the paired contracting dims and pairs the batch dims; the output is (batch dims,
x's free dims, y's free dims), each group in its operand's axis order. The impl moves the
dims to (batch, free, contract) and calls np.dot or np.matmul (BLAS), except for two forms
that are not matrix products: with batch dims and nothing to sum it is a broadcast multiply,
and with batch and contracting dims only (batched dot products, `einsum('kdn,kdn->kn')` and
its kind) it is np.einsum on the operands as they are laid out. There matmul would multiply
one 1-row matrix per batch entry, after copying operands whose batch dims are not outermost
(3-7x slower). The result dtype is NumPy's promotion of the operands' dtypes (integers stay
integers).

dot_general is bilinear: its JVP and transposes are dot_generals and transposes. It also has
a direct VJP rule, so reverse mode records one node per product (see `_dot_general_vjp`).
This module imports only the engine and the shape and reduction families.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from dfdx._src import ad, batching, core, dtypes
from dfdx._src.batching import NOT_MAPPED, logical_axis, moveaxis
from dfdx._src.core import ShapedArray
from dfdx._src.ops import elementwise, reduction
from dfdx._src.ops import shape as shape_ops

# ---- dot_general ----------------------------------------------------------------------------
dot_general_p = core.primitive("dot_general")


def dot_general(x, y, dimension_numbers):
  """Contract `x` and `y`: `dimension_numbers = ((x_contract, y_contract), (x_batch,
  y_batch))`, sequences of axes (negative allowed). Output: batch, x free, y free dims."""
  (xc, yc), (xb, yb) = dimension_numbers
  xn, yn = core.ndim_of(x), core.ndim_of(y)
  dims = ((_axes(xc, xn), _axes(yc, yn)), (_axes(xb, xn), _axes(yb, yn)))
  return dot_general_p.bind(x, y, dimension_numbers=dims)


def _axes(axes, ndim):
  return tuple(int(a) + ndim if -ndim <= int(a) < 0 else int(a) for a in axes)


def _free_dims(ndim, contract, batch):
  return tuple(i for i in range(ndim) if i not in contract and i not in batch)


def _dot_general_shape(x_shape, y_shape, dimension_numbers):
  """The output shape; a ValueError saying what is wrong for invalid dimension numbers."""
  (xc, yc), (xb, yb) = dimension_numbers
  where = f"dot_general of shapes {x_shape} and {y_shape} with dimension_numbers " \
          f"{dimension_numbers}"
  for axes, shape in ((xc + xb, x_shape), (yc + yb, y_shape)):
    if len(set(axes)) != len(axes) or any(not 0 <= a < len(shape) for a in axes):
      raise ValueError(f"{where}: the axes {axes} must be distinct and in range for rank "
                       f"{len(shape)}. Give each axis once, as contracting or as batch axis.")
  for kind, xs, ys in (("contracting", xc, yc), ("batch", xb, yb)):
    if len(xs) != len(ys) or any(x_shape[a] != y_shape[b] for a, b in zip(xs, ys)):
      raise ValueError(f"{where}: the {kind} dims have sizes "
                       f"{[x_shape[a] for a in xs]} and {[y_shape[b] for b in ys]}, which must "
                       "be equal, pair by pair.")
  return (tuple(x_shape[i] for i in xb) + tuple(x_shape[i] for i in _free_dims(
      len(x_shape), xc, xb)) + tuple(y_shape[i] for i in _free_dims(len(y_shape), yc, yb)))


def _dot_general_impl(x, y, *, dimension_numbers):
  if type(x) is np.ndarray and type(y) is np.ndarray:
    dtype = _result_dtype(x.dtype, y.dtype)
  else:  # (Python scalars are weak: NumPy's rule on the values themselves)
    dtype = np.result_type(x, y)
    x, y = np.asarray(x), np.asarray(y)
  kind, x_perm, x_shape, y_perm, y_shape, out_shape = _dot_plan(x.shape, y.shape,
                                                                dimension_numbers)
  if x_perm is not None:
    x = x.transpose(x_perm)
  if y_perm is not None:
    y = y.transpose(y_perm)
  if kind == "outer":
    out = np.multiply.outer(x, y)
  elif kind == "mul":
    out = np.multiply(x.reshape(x_shape), y.reshape(y_shape))
  elif kind == "einsum":
    out = np.einsum(x_shape, x, y)
  else:
    out = (np.matmul if kind == "matmul" else np.dot)(x.reshape(x_shape), y.reshape(y_shape))
  out = np.asarray(out).reshape(out_shape)
  return out if out.dtype == dtype else out.astype(dtype)


@functools.lru_cache(maxsize=1024)
def _result_dtype(x_dtype, y_dtype):
  return np.result_type(x_dtype, y_dtype)


@functools.lru_cache(maxsize=1024)
def _dot_plan(xs, ys, dimension_numbers):
  """How the impl computes a product of these shapes: (kind, x's permutation or None, the
  shape it is reshaped to, the same for y, the output shape); for kind "einsum", np.einsum's
  subscripts in place of x's shape, on the operands as they are."""
  (xc, yc), (xb, yb) = dimension_numbers
  xf, yf = _free_dims(len(xs), xc, xb), _free_dims(len(ys), yc, yb)
  out_shape = (tuple(xs[i] for i in xb) + tuple(xs[i] for i in xf)
               + tuple(ys[i] for i in yf))
  c = math.prod(xs[i] for i in xc)
  f, g = math.prod(xs[i] for i in xf), math.prod(ys[i] for i in yf)
  if xb and not xc:  # products of paired entries, no sums: a broadcast multiply
    kind, x_perm, y_perm = "mul", xb + xf, yb + yf
    x_shape = tuple(xs[i] for i in xb + xf) + (1,) * len(yf)
    y_shape = tuple(ys[i] for i in yb) + (1,) * len(xf) + tuple(ys[i] for i in yf)
  elif xb and not xf and not yf and len(xs) <= 26:  # batched dot products, on the operands
    # as laid out (one letter a dim: "abc,abc->ac")
    kind, x_perm, y_perm, y_shape = "einsum", None, None, None
    x_shape = _einsum_subscripts(len(xs), len(ys), dimension_numbers)
  elif xb:  # (batch, free, contract) @ (batch, contract, free)
    b = math.prod(xs[i] for i in xb)
    kind, x_perm, y_perm = "matmul", xb + xf + xc, yb + yc + yf
    x_shape, y_shape = (b, f, c), (b, c, g)
  elif xc:
    kind, x_perm, y_perm = "dot", xf + xc, yc + yf
    x_shape, y_shape = (f, c) if xf else (c,), (c, g) if yf else (c,)
  else:
    kind, x_perm, y_perm, x_shape, y_shape = "outer", None, None, None, None
  identity = lambda perm, n: perm is None or perm == tuple(range(n))  # noqa: E731
  return (kind, None if identity(x_perm, len(xs)) else x_perm, x_shape,
          None if identity(y_perm, len(ys)) else y_perm, y_shape, out_shape)


def _einsum_subscripts(xn, yn, dimension_numbers):
  """np.einsum's subscripts of a product with batch and contracting dims only."""
  (xc, yc), (xb, yb) = dimension_numbers
  letters = "abcdefghijklmnopqrstuvwxyz"
  x_sub = letters[:xn]
  y_sub = [""] * yn
  for i, j in zip(xc + xb, yc + yb):
    y_sub[j] = x_sub[i]
  return f"{x_sub},{''.join(y_sub)}->{''.join(x_sub[i] for i in xb)}"


def _dot_general_abstract_eval(x, y, *, dimension_numbers):
  return ShapedArray(_dot_general_shape(x.shape, y.shape, dimension_numbers),
                     dtypes.result_type(x, y), dtypes.result_weak_type(x, y))


def _ranges_like(*xs):
  start = 0
  for x in xs:
    yield tuple(range(start, start + len(x)))
    start += len(x)


@functools.lru_cache(maxsize=1024)
def _transpose_lhs_plan(xn, yn, dimension_numbers, swap_ans):
  """The dimension numbers of the lhs transpose's product and the permutation after it."""
  (xc, yc), (xb, yb) = dimension_numbers
  x_kept = _free_dims(xn, xc, xb)
  y_kept = _free_dims(yn, yc, yb)
  if swap_ans:
    ans_batch, ans_y, _ = _ranges_like(xb, y_kept, x_kept)
  else:
    ans_batch, _, ans_y = _ranges_like(xb, x_kept, y_kept)
  x_contract_by_y = tuple(xc[i] for i in np.argsort(yc, kind="stable"))
  return (((ans_y, y_kept), (ans_batch, yb)),
          tuple(int(i) for i in np.argsort(xb + x_kept + x_contract_by_y)))


def _dot_general_transpose_lhs(ct, x, y, *, dimension_numbers, swap_ans=False,
                               pending=False):
  # ct has the output's layout; contract its y-free dims with y's, then put x's axes back.
  # With `pending`, the product is returned uncomputed (see PendingProduct).
  xn, yn = core.ndim_of(x), core.ndim_of(y)
  try:
    dims, perm = _transpose_lhs_plan(xn, yn, dimension_numbers, swap_ans)
  except TypeError:  # unhashable dimension numbers (lists)
    dims, perm = _transpose_lhs_plan.__wrapped__(xn, yn, dimension_numbers, swap_ans)
  if y.dtype.kind == "c":  # the adjoint for complex values (see ops/elementwise.py)
    y = elementwise.conj(y)
  aval = core.get_aval(x)
  if pending:
    return PendingProduct(ShapedArray(aval.shape, aval.dtype), ct, y, dims, perm)
  return _product(ct, y, dims, perm, aval.dtype)


def _product(ct, y, dims, perm, dtype):
  prim = zdot_general_p if core.context.zero_absorbing else dot_general_p
  out = shape_ops.transpose(prim.bind(ct, y, dimension_numbers=dims), perm)
  return out if out.dtype == dtype else shape_ops.convert_element_type(out, dtype)


def _dot_general_transpose_rhs(ct, x, y, *, dimension_numbers, pending=False):
  (xc, yc), (xb, yb) = dimension_numbers
  return _dot_general_transpose_lhs(ct, y, x, dimension_numbers=((yc, xc), (yb, xb)),
                                    swap_ans=True, pending=pending)


def _dot_general_vjp(ct, ans, x, y, *, needs, dimension_numbers):
  # One tape node per product instead of two recorded products and an add. Measured: grad
  # of a 10-layer tanh MLP with 8x8 weights, 571 us with this rule, 876 us without; equal
  # (27 ms) at 512x512, where BLAS time dominates. The products are left pending: a
  # broadcast's transpose may sum one over a free axis first (see PendingProduct).
  return [_dot_general_transpose_lhs(ct, x, y, dimension_numbers=dimension_numbers,
                                     pending=True) if needs[0] else None,
          _dot_general_transpose_rhs(ct, x, y, dimension_numbers=dimension_numbers,
                                     pending=True) if needs[1] else None]


class PendingProduct(ad.PendingCotangent):
  """An operand's cotangent from a dot_general's VJP, not yet computed: `transpose(
  dot_general(ct, other, dims), perm)` in the dtype of `aval`. Summed to a smaller shape
  (the transpose of a broadcast: `W @ (x - mu[:, None])`), the sum over axes that come from
  one factor's free dims is taken of that factor before the product, so mu's cotangent
  costs a matrix-vector product instead of a matrix product and a sum (the products of
  ADBench's GMM gradient at d=64, K=100: 3 to 2). Other uses compute it once."""
  __slots__ = ("aval", "ct", "other", "dims", "perm", "_value")

  def __init__(self, aval, ct, other, dims, perm):
    self.aval, self.ct, self.other, self.dims, self.perm = aval, ct, other, dims, perm
    self._value = None

  shape = property(lambda self: self.aval.shape)
  dtype = property(lambda self: self.aval.dtype)

  def keep_for(self, var):
    # Kept only for a variable whose transpose may sum it: held elsewhere (a parameter's
    # cotangent, kept to the end of the pass) it would keep the product's factors alive.
    return ad.sums_its_cotangent(var)

  def materialize(self):
    if self._value is None:
      self._value = _product(self.ct, self.other, self.dims, self.perm, self.aval.dtype)
      self.ct = self.other = None  # (not needed any more: let them go)
    return self._value

  def add(self, ct):
    return ad.tangent_ops.add(self.materialize(), ad.materialized(ct))

  def radd(self, ct):
    return ad.tangent_ops.add(ct, self.materialize())

  def sum_to_shape(self, shape):
    full = self.aval.shape
    if full == shape:
      return self
    if self._value is not None:  # computed already for another use: sum that
      return shape_ops.sum_to_shape(self._value, shape)
    axes = shape_ops.summed_axes(tuple(full), tuple(shape))
    (ct_contract, other_contract), (ct_batch, other_batch) = self.dims
    ct, other = self.ct, self.other
    ct_free = _free_dims(core.ndim_of(ct), ct_contract, ct_batch)
    other_free = _free_dims(core.ndim_of(other), other_contract, other_batch)
    nb, nf = len(ct_batch), len(ct_free)
    ct_axes = [ct_free[p - nb] for p in (self.perm[a] for a in axes) if nb <= p < nb + nf]
    other_axes = [other_free[p - nb - nf] for p in (self.perm[a] for a in axes)
                  if p >= nb + nf]
    if not ct_axes and not other_axes:  # only batch axes are summed
      return shape_ops.sum_to_shape(self.materialize(), shape)
    if ct_axes:
      ct = _sum_keepdims(ct, ct_axes)
    if other_axes:
      other = _sum_keepdims(other, other_axes)
    out = _product(ct, other, self.dims, self.perm, self.aval.dtype)
    rest = tuple(a for a in axes if core.shape_of(out)[a] != 1)
    if rest:
      out = reduction.reduce_sum(out, rest)
    return shape_ops.reshape(out, shape)


def _sum_keepdims(x, axes):
  summed = reduction.reduce_sum(x, tuple(sorted(axes)))
  return shape_ops.reshape(summed, tuple(1 if i in axes else d
                                         for i, d in enumerate(core.shape_of(x))))


def _dot_general_batch(axis_size, vals, dims, *, dimension_numbers, prim=None):
  # A batched operand's batch axis becomes a new batch dim if both are batched, else a free
  # dim of that operand (no broadcast of the unbatched one).
  dot_general_p = prim or globals()["dot_general_p"]
  (x, y), (xd, yd) = vals, dims
  (xc, yc), (xb, yb) = dimension_numbers
  if xd is not NOT_MAPPED and yd is not NOT_MAPPED:
    x, y = moveaxis(x, xd, 0), moveaxis(y, yd, 0)
    xc, yc, xb, yb = (tuple(a + 1 for a in axes) for axes in (xc, yc, xb, yb))
    return dot_general_p.bind(x, y, dimension_numbers=((xc, yc), ((0,) + xb, (0,) + yb))), 0
  if xd is not NOT_MAPPED:
    xc, xb = (tuple(logical_axis(a, xd) for a in axes) for axes in (xc, xb))
    out_dim = len(xb) + _free_dims(core.ndim_of(x), xc, xb).index(xd)
  else:
    yc, yb = (tuple(logical_axis(a, yd) for a in axes) for axes in (yc, yb))
    x_free = len(_free_dims(core.ndim_of(x), xc, xb))
    out_dim = len(yb) + x_free + _free_dims(core.ndim_of(y), yc, yb).index(yd)
  return dot_general_p.bind(x, y, dimension_numbers=((xc, yc), (xb, yb))), out_dim


dot_general_p.def_impl(_dot_general_impl)
dot_general_p.def_abstract_eval(_dot_general_abstract_eval)
ad.defbilinear(dot_general_p, _dot_general_transpose_lhs, _dot_general_transpose_rhs)
ad.defvjp(dot_general_p, _dot_general_vjp)
ad.vjp_ignores_output(dot_general_p)
batching.primitive_batchers[dot_general_p] = _dot_general_batch


# ---- zdot_general: the zero-absorbing chain rule's contraction ----------------------------
# A product's terms that pair a zero with an infinite or NaN factor count as 0 (as zmul's, in
# ops/elementwise.py), so that a cotangent that is 0 where a `where` discarded a row stops
# the NaN or inf of that row at a matmul or einsum too. Where a non-finite factor meets a
# nonzero one, the result is the plain product's (not finite).
zdot_general_p = core.primitive("zdot_general")


def _zero_absorbing_dot(dot, x, y):
  with np.errstate(invalid="ignore"):
    out = dot(x, y)
  x_finite, y_finite = np.isfinite(x), np.isfinite(y)
  if x_finite.all() and y_finite.all():
    return out
  finite = dot(np.where(x_finite, x, 0), np.where(y_finite, y, 0))
  spoiled = (dot((~x_finite).astype(np.float64), (np.asarray(y) != 0).astype(np.float64))
             + dot((np.asarray(x) != 0).astype(np.float64), (~y_finite).astype(np.float64)))
  return np.asarray(np.where(spoiled > 0, out, finite), out.dtype)[()]


zdot_general_p.def_impl(lambda x, y, *, dimension_numbers: _zero_absorbing_dot(
    lambda a, b: _dot_general_impl(a, b, dimension_numbers=dimension_numbers), x, y))
zdot_general_p.def_abstract_eval(_dot_general_abstract_eval)
ad.defbilinear(zdot_general_p, _dot_general_transpose_lhs, _dot_general_transpose_rhs)
batching.primitive_batchers[zdot_general_p] = functools.partial(_dot_general_batch,
                                                                prim=zdot_general_p)
ad.zero_absorbing_prims[dot_general_p] = zdot_general_p
ad.complex_rules.add(zdot_general_p)

# ---- compositions used by other rules and by dfdx.numpy ------------------------------------
_MATMUL_SIGNATURE = "signature (n?,k),(k,m?)->(n?,m?)"


def matmul(x, y):
  """`x @ y` with NumPy's semantics (1-D operands as vectors, batch dims broadcast) and
  NumPy's errors. Only operands with batch dims on both sides are broadcast."""
  xs, ys = core.shape_of(x), core.shape_of(y)
  xn, yn = len(xs), len(ys)
  for i, n in enumerate((xn, yn)):
    if n == 0:
      raise ValueError(f"matmul: Input operand {i} does not have enough dimensions (has 0, "
                       f"gufunc core with {_MATMUL_SIGNATURE} requires 1)")
  k = ys[-2] if yn >= 2 else ys[0]
  if xs[-1] != k:
    raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0, with "
                     f"gufunc {_MATMUL_SIGNATURE} (size {k} is different from {xs[-1]})")
  if yn <= 2:  # y has no batch dims: x's batch dims are free dims
    return dot_general(x, y, (((xn - 1,), (0,)), ((), ())))
  if xn <= 2:  # x has no batch dims: y's are free dims, then x's row axis moves after them
    out = dot_general(x, y, (((xn - 1,), (yn - 2,)), ((), ())))
    return out if xn == 1 else moveaxis(out, 0, yn - 2)
  batch = elementwise.broadcast_shapes(xs[:-2], ys[:-2])
  x = shape_ops.broadcast_to(x, batch + xs[-2:])
  y = shape_ops.broadcast_to(y, batch + ys[-2:])
  nb = tuple(range(len(batch)))
  return dot_general(x, y, (((len(batch) + 1,), (len(batch),)), (nb, nb)))


def matrix_transpose(x):
  """Swap the last two axes."""
  n = core.ndim_of(x)
  return shape_ops.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def diagonal(x, offset=0, axis1=0, axis2=1):
  """`numpy.diagonal` for distinct non-negative axes: the other axes, then the diagonal.
  Moves the two axes last, flattens them, and takes a strided slice."""
  shape = core.shape_of(x)
  rest = tuple(i for i in range(len(shape)) if i not in (axis1, axis2))
  n, m = shape[axis1], shape[axis2]
  lead = tuple(shape[i] for i in rest)
  flat = shape_ops.reshape(shape_ops.transpose(x, rest + (axis1, axis2)), lead + (n * m,))
  if offset >= 0:
    length, start = max(0, min(n, m - offset)), offset
  else:
    length, start = max(0, min(n + offset, m)), -offset * m
  if length == 0:
    start = limit = 0
  else:
    limit = start + (length - 1) * (m + 1) + 1
  return shape_ops.slice_in_dim(flat, start, limit, len(lead), m + 1)


def trace(x):
  """The trace of the matrices in the last two axes of `x` (NumPy's sum dtype)."""
  n = core.ndim_of(x)
  return reduction.reduce_sum(diagonal(x, 0, n - 2, n - 1), (n - 2,))

