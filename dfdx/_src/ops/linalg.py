"""Linear-algebra primitives: det and solve, on stacks of matrices (leading batch dims, as
in numpy.linalg); `inv` is solve with an identity right-hand side.

`solve_p` takes a matrix right-hand side only, b of shape (..., n, k), with the batch dims of
a and b broadcast as NumPy does; the wrapper `solve` gives NumPy 2's vector case (b.ndim ==
1) by adding and removing a unit column. Result dtypes are numpy.linalg's (integers become
float64; float16 is rejected as NumPy rejects it).

Matrix-calculus rules from M. Giles, "Collected matrix derivative results for forward and
reverse mode algorithmic differentiation" (2008). At a singular matrix the rules raise
NumPy's LinAlgError (from the solve they use) rather than return a wrong number.
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core
from dfdx._src.batching import NOT_MAPPED, moveaxis
from dfdx._src.core import ShapedArray
from dfdx._src.ops import contraction
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops

_dtype_cache: dict = {}


def _linalg_dtype(*dtypes_):
  """numpy.linalg's result dtype for operands of these dtypes (found once by running it)."""
  try:
    return _dtype_cache[dtypes_]
  except KeyError:
    pass
  eye = np.eye(1, dtype=dtypes_[0])
  out = np.linalg.det(eye) if len(dtypes_) == 1 else np.linalg.solve(
      eye, np.ones((1, 1), dtypes_[1]))
  dtype = _dtype_cache[dtypes_] = np.asarray(out).dtype
  return dtype


def _check_square(a, name):
  if a.ndim < 2:
    raise np.linalg.LinAlgError(f"{a.ndim}-dimensional array given. Array must be at least "
                                f"two-dimensional (in {name}).")
  if a.shape[-1] != a.shape[-2]:
    raise np.linalg.LinAlgError(f"Last 2 dimensions of the array must be square (in {name}, "
                                f"got shape {a.shape}).")


# ---- solve --------------------------------------------------------------------------------
solve_p = core.primitive("solve")
_SOLVE_SIGNATURE = "gufunc signature (m,m),(m,n)->(m,n)"


def solve(a, b):
  """`numpy.linalg.solve(a, b)`: b is a vector when b.ndim == 1 (NumPy 2), else a stack of
  matrices whose batch dims broadcast against a's."""
  a_shape, b_shape = core.shape_of(a), core.shape_of(b)
  if len(b_shape) != 1:
    return solve_p.bind(a, b)
  if len(a_shape) >= 2 and a_shape[-1] != b_shape[0]:
    raise ValueError(f"solve1: Input operand 1 has a mismatch in its core dimension 0, with "
                     f"gufunc signature (m,m),(m)->(m) (size {b_shape[0]} is different from "
                     f"{a_shape[-1]})")
  x = solve_p.bind(a, shape_ops.reshape(b, b_shape + (1,)))
  return shape_ops.reshape(x, core.shape_of(x)[:-1])


def _solve_impl(a, b):
  if np.ndim(b) < 2:
    raise ValueError(f"solve_p takes a matrix right-hand side (b.ndim >= 2), got shape "
                     f"{np.shape(b)}; call dfdx._src.ops.linalg.solve for a vector b.")
  return np.linalg.solve(a, b)


def _solve_abstract_eval(a, b):
  _check_square(a, "solve")
  if b.ndim < 2:
    raise ValueError(f"solve: Input operand 1 does not have enough dimensions (has {b.ndim}, "
                     f"gufunc core with signature (m,m),(m,n)->(m,n) requires 2)")
  if b.shape[-2] != a.shape[-1]:
    raise ValueError(f"solve: Input operand 1 has a mismatch in its core dimension 0, with "
                     f"{_SOLVE_SIGNATURE} (size {b.shape[-2]} is different from {a.shape[-1]})")
  batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  return ShapedArray(batch + b.shape[-2:], _linalg_dtype(a.dtype, b.dtype))


def _solve_jvp(primals, tangents):
  # x = A^-1 b:  dx = A^-1 (db - dA x)  (Giles 2008, sec. 2.3.1)
  (a, b), (a_dot, b_dot) = primals, tangents
  x = solve_p.bind(a, b)
  rhs = b_dot
  if a_dot is not None:
    a_dot_x = contraction.matmul(a_dot, x)
    rhs = ew.neg(a_dot_x) if rhs is None else ew.sub(rhs, a_dot_x)
  return x, ad.match_primal(solve_p.bind(a, rhs), x)


def _solve_transpose(ct, a, b):
  # Linear in b only: b_bar = A^-T x_bar, summed over the batch dims b was broadcast along.
  assert not ad.is_linear(a), "solve is linear in its right-hand side only"
  b_bar = shape_ops.sum_to_shape(solve_p.bind(contraction.matrix_transpose(a), ct),
                                 core.shape_of(b))
  dtype = core.get_aval(b).dtype
  return [None, b_bar if b_bar.dtype == dtype else shape_ops.convert_element_type(b_bar, dtype)]


def _solve_batch(axis_size, vals, dims):
  (a, b), (a_d, b_d) = vals, dims
  if a_d is NOT_MAPPED:  # one factorization: the batch becomes extra columns of b
    nd = core.ndim_of(b)
    b = moveaxis(b, b_d, nd - 2)
    shape = core.shape_of(b)
    x = solve_p.bind(a, shape_ops.reshape(b, shape[:-2] + (shape[-2] * shape[-1],)))
    x_shape = core.shape_of(x)
    return shape_ops.reshape(x, x_shape[:-1] + shape[-2:]), len(x_shape) - 1
  rank = max(core.ndim_of(v) - (d is not NOT_MAPPED) - 2 for v, d in zip(vals, dims))
  return solve_p.bind(_batch_first(a, a_d, rank), _batch_first(b, b_d, rank)), 0


def _batch_first(x, d, rank):
  """Batch axis first, then unit axes so that `rank` logical batch dims follow it."""
  if d is NOT_MAPPED:
    return x
  x = moveaxis(x, d, 0)
  shape = core.shape_of(x)
  missing = rank - (len(shape) - 3)
  return shape_ops.reshape(x, shape[:1] + (1,) * missing + shape[1:]) if missing else x


solve_p.def_impl(_solve_impl)
solve_p.def_abstract_eval(_solve_abstract_eval)
ad.primitive_jvps[solve_p] = _solve_jvp
ad.primitive_transposes[solve_p] = _solve_transpose
batching.primitive_batchers[solve_p] = _solve_batch


# ---- inv (no primitive of its own) ---------------------------------------------------------
def inv(a):
  """Inverses of the matrices in the last two axes of `a`: solve(a, I)."""
  aval = core.get_aval(a)
  _check_square(aval, "inv")
  return solve_p.bind(a, np.eye(aval.shape[-1], dtype=_linalg_dtype(aval.dtype)))


# ---- det ----------------------------------------------------------------------------------
det_p = core.primitive("det")


def det(a):
  """Determinants of the matrices in the last two axes of `a`."""
  return det_p.bind(a)


def _det_abstract_eval(a):
  _check_square(a, "det")
  return ShapedArray(a.shape[:-2], _linalg_dtype(a.dtype))


def _det_batch(axis_size, vals, dims):
  (a,), (d,) = vals, dims
  if d >= core.ndim_of(a) - 2:  # the batch axis is one of the matrix axes: move it first
    a, d = moveaxis(a, d, 0), 0
  return det(a), d


det_p.def_impl(np.linalg.det)
det_p.def_abstract_eval(_det_abstract_eval)
# d det(A) = det(A) tr(A^-1 dA)  (Giles 2008, sec. 2.2.2)
ad.defjvp2(det_p, lambda a_dot, ans, a: ew.mul(ans, contraction.trace(solve_p.bind(a, a_dot))))
batching.primitive_batchers[det_p] = _det_batch
