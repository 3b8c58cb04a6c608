"""Linear-algebra primitives, on stacks of matrices (leading batch dims, as in numpy.linalg):
solve, triangular_solve, det, adjugate, slogdet, cholesky, qr, eigh, eig, svd, pinv and
lstsq. `inv` is solve with an identity right-hand side; everything else in
`dfdx.numpy.linalg` is composed from these. triangular_solve (LAPACK's trtrs from SciPy when
it imports, O(n^2) per right-hand side) serves dfdx.scipy.linalg's triangular, Cholesky and
LU solves and the derivatives of cholesky and qr.

`solve_p` takes a matrix right-hand side only, b of shape (..., n, k), with the batch dims of
a and b broadcast as NumPy does; the wrapper `solve` gives NumPy 2's vector case (b.ndim ==
1) by adding and removing a unit column. Result dtypes are numpy.linalg's (integers become
float64; float16 is rejected as NumPy rejects it). Decompositions with several outputs are
primitives with `multiple_results` (lists in NumPy's order).

Complex matrices: every primitive here but the adjugate is differentiable at complex operands
(listed in `ad.complex_rules`); the rules are the real ones with conjugate transposes (A^H)
in place of transposes, JVPs are complex-linear in the tangent where the function is, and
reverse mode, their transpose, gives gradients df/dx + i df/dy of real-valued f. As NumPy,
eigh and svd return real eigen- and singular values, slogdet a complex sign and a real
logabsdet, lstsq real residuals and singular values. Complex eigenvectors (eigh) and
singular vectors (svd) are defined up to a phase per column: the derivatives fix that gauge
with Im diag(V^H dV) = 0 (as JAX), so only phase-invariant functions of them (V diag(g(w))
V^H, U diag(s) V^H, |v_ij|) have derivatives that match finite differences of NumPy's.

Matrix-calculus rules: M. Giles, "Collected matrix derivative results for forward and reverse
mode algorithmic differentiation" (2008); I. Murray, "Differentiation of the Cholesky
decomposition" (2016); J. Townsend, "Differentiating the singular value decomposition"
(2016) and M. Seeger et al., "Auto-differentiating linear algebra" (2017); G. Golub and V.
Pereyra, "The differentiation of pseudo-inverses" (1973); S. Walter and L. Lehmann,
"Algorithmic differentiation of linear algebra functions" (2018) for QR.

Where the derivative exists the rules stay finite:
  * det's derivative is the adjugate, computed from an SVD without division, so it is exact
    at singular matrices (a solve would raise there); the adjugate's own derivative is exact
    everywhere too.
  * eigenvalue and singular-value derivatives (diag(V^H dA V), Re diag(U^H dA V)) use no gaps,
    so they are exact at repeated values. The 1/gap factors of the eigenvector and
    singular-vector derivatives are one primitive, gaps.gap_div: 0 where the gap is zero to
    working precision (within a degenerate space the vectors are not differentiable), so no
    NaN or inf appears, and a reverse pass that meets such a tie is computed again with the
    spectrum split, which gives the exact gradient of functions that do not depend on the
    basis of a degenerate space (see ops/gaps.py).
eigh, cholesky and pinv(hermitian=True) read one triangle of their input, as LAPACK does:
their derivatives with respect to the other triangle are zero (and, for complex input, with
respect to the imaginary parts of the diagonal).
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core
from dfdx._src.batching import NOT_MAPPED, bdim_at_front, moveaxis
from dfdx._src.core import ShapedArray
from dfdx._src.ops import contraction, gaps
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction as red
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


def _check_matrix(a, name):
  if a.ndim < 2:
    raise np.linalg.LinAlgError(f"{a.ndim}-dimensional array given. Array must be at least "
                                f"two-dimensional (in {name}).")


def _check_square(a, name):
  _check_matrix(a, name)
  if a.shape[-1] != a.shape[-2]:
    raise np.linalg.LinAlgError(f"Last 2 dimensions of the array must be square (in {name}, "
                                f"got shape {a.shape}).")


# ---- helpers for the rules (dfdx ops only: the rules are differentiated again) -------------
_mT = contraction.matrix_transpose
_mm = contraction.matmul


def _dtype(x):
  return core.get_aval(x).dtype


def _diag(x):
  """The diagonals of the matrices in the last two axes: (..., n, m) -> (..., min(n, m))."""
  n = core.ndim_of(x)
  return contraction.diagonal(x, 0, n - 2, n - 1)


def _row(v):
  """(..., k) -> (..., 1, k): entry [i, j] of a broadcast is v[j]."""
  shape = core.shape_of(v)
  return shape_ops.reshape(v, shape[:-1] + (1, shape[-1]))


def _col(v):
  """(..., k) -> (..., k, 1): entry [i, j] of a broadcast is v[i]."""
  shape = core.shape_of(v)
  return shape_ops.reshape(v, shape + (1,))


def _diag_matrix(v):
  """(..., k) -> (..., k, k) with v on the diagonal."""
  return ew.mul(_col(v), np.eye(core.shape_of(v)[-1], dtype=_dtype(v)))


def _triangle(x, k=0, lower=True):
  """tril(x, k) (lower) or triu(x, k): a product with a constant mask, so linear."""
  n, m = core.shape_of(x)[-2:]
  mask = np.tri(n, m, k, dtype=_dtype(x)) if lower else 1 - np.tri(n, m, k - 1, _dtype(x))
  return ew.mul(x, mask)


def _mH(x):
  """The conjugate transposes of the matrices in the last two axes (_mT for real x)."""
  return _mT(ew.conj(x))


def _is_complex(x):
  return _dtype(x).kind == "c"


def _real_dtype(dtype):
  """float64 for complex128, float32 for complex64; real dtypes unchanged."""
  return np.empty(0, dtype).real.dtype


def _re(x):
  """Re x in x's real dtype (x itself if real), taken from a fresh conj(x): jit's generated
  np.real returns a view of its operand, which a later in-place operation on the result could
  otherwise write through into a live value."""
  return ew.real(ew.conj(x)) if _is_complex(x) else x


def _i_im(x):
  """i Im x = (x - conj(x)) / 2, complex (fresh, like _re)."""
  return ew.mul(ew.sub(x, ew.conj(x)), np.asarray(0.5, _real_dtype(_dtype(x))))


def _symmetrized(x, lower):
  """The symmetric (for complex x, Hermitian) matrix that a LAPACK routine reading one
  triangle of `x` sees: the other triangle is the (conjugate) transpose of the one read, and
  the imaginary parts of a complex diagonal are ignored (taken as 0), as LAPACK does."""
  if not _is_complex(x):
    if lower:
      return ew.add(_triangle(x), _mT(_triangle(x, -1)))
    return ew.add(_triangle(x, 0, False), _mT(_triangle(x, 1, False)))
  strict = _triangle(x, -1) if lower else _triangle(x, 1, False)
  n = core.shape_of(x)[-1]
  diag = ew.mul(ew.add(x, ew.conj(x)), np.eye(n, dtype=_real_dtype(_dtype(x))) * 0.5)
  return ew.add(ew.add(strict, _mH(strict)), diag)


def _tolerance(v):
  """10 len eps max|v| over the last axis (keepdims): the size below which a difference of
  entries of v is zero to working precision (computed eigenvalues of a repeated one differ
  by up to about len eps max|v|)."""
  v = ew.stop_gradient(v)
  shape, dtype = core.shape_of(v), _dtype(v)
  if shape[-1] == 0:
    return np.zeros(shape[:-1] + (1,), dtype)
  scale = red.reduce_max(ew.abs(v), (len(shape) - 1,))
  scale = ew.mul(scale, np.asarray(10 * shape[-1] * np.finfo(dtype).eps, dtype))
  return shape_ops.reshape(scale, shape[:-1] + (1,))


def _safe_reciprocal(x, tol):
  """1 / x, and 0 where |x| <= tol. Both branches of the select are finite, so every
  derivative order is free of NaN and inf."""
  small = ew.le(ew.abs(x), tol)
  zero, one = np.zeros((), _dtype(x)), np.ones((), _dtype(x))
  return ew.select(small, zero, ew.div(one, ew.select(small, one, x)))


def _unary_matrix_batcher(prim):
  """Batching rule of a primitive of one stack of matrices: the batch axis goes first."""
  def rule(axis_size, vals, dims, **params):
    (a,), (d,) = vals, dims
    out = prim.bind(moveaxis(a, d, 0), **params)
    return out, ([0] * len(out) if prim.multiple_results else 0)
  batching.primitive_batchers[prim] = rule


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
  # Linear in b only: b_bar = A^-H x_bar (the adjoint: A^-T for real A), summed over the
  # batch dims b was broadcast along.
  assert not ad.is_linear(a), "solve is linear in its right-hand side only"
  b_bar = shape_ops.sum_to_shape(solve_p.bind(contraction.matrix_transpose(ew.conj(a)), ct),
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


# ---- triangular_solve ---------------------------------------------------------------------
triangular_solve_p = core.primitive("triangular_solve")


def triangular_solve(a, b, *, lower, trans=0, unit_diagonal=False, check=True):
  """x with op(T) x = b, T the lower (or upper) triangle of the matrices in a's last two axes,
  with ones on the diagonal if `unit_diagonal` (the rest of `a` is not read), and op(T) = T,
  T^T or T^H for `trans` 0, 1 or 2. b is a vector when b.ndim == 1 (as in `solve`), else a
  stack of matrices whose batch dims broadcast against a's. O(n^2) per column of b. A zero
  on the diagonal raises LinAlgError (LAPACK's trtrs), or with check=False is divided by,
  giving infs and NaNs (BLAS's trsm, what LAPACK's getrs runs: SciPy's lu_solve)."""
  if trans not in (0, 1, 2):
    raise ValueError(f"triangular_solve: trans must be 0 (T), 1 (T^T) or 2 (T^H), got "
                     f"{trans!r}.")
  if trans == 2 and not _is_complex(a):  # (T^H is T^T: one form in programs)
    trans = 1
  params = dict(lower=bool(lower), trans=int(trans), unit_diagonal=bool(unit_diagonal),
                check=bool(check))
  a_shape, b_shape = core.shape_of(a), core.shape_of(b)
  if len(b_shape) != 1:
    return triangular_solve_p.bind(a, b, **params)
  if len(a_shape) >= 2 and a_shape[-1] != b_shape[0]:
    raise ValueError(f"triangular_solve: b has {b_shape[0]} rows, but the matrices of a are "
                     f"{a_shape[-1]} x {a_shape[-1]}.")
  x = triangular_solve_p.bind(a, shape_ops.reshape(b, b_shape + (1,)), **params)
  return shape_ops.reshape(x, core.shape_of(x)[:-1])


# LAPACK's trtrs (SciPy's solve_triangular without its checks and copies) on each matrix of
# the broadcast stacks, or on one matrix with the stack of b as more columns; without SciPy,
# and for stacks of matrices up to 12 x 12 (one vectorized call is faster there: measured,
# the loop of LAPACK calls, about 5 us a matrix, wins from 12-16 rows on), NumPy's solve
# on the triangle. A zero on the diagonal is an error whatever the path, as SciPy's.
# One source for the impl and for generated code (codegen_rules.py emits it as a helper).
TRIANGULAR_SOLVE_SOURCE = '''def _linalg_trtrs_for(dtype, check=True, _found={}):
    if (dtype, check) not in _found:
        try:
            from scipy.linalg import blas, lapack
        except ImportError:
            _found[dtype, check] = None
        else:
            _found[dtype, check] = (lapack.get_lapack_funcs("trtrs", dtype=dtype) if check
                                    else blas.get_blas_funcs("trsm", dtype=dtype))
    return _found[dtype, check]


def _linalg_trtrs(trtrs, a, b, lower, trans, unit_diagonal, check=True):
    conj = False
    if not a.flags.f_contiguous:  # a C-ordered matrix is the F-ordered transpose
        a, lower = a.T, not lower
        if trans == 2:  # T^H x = b: conj(T^T) x = b, so T^T conj(x) = conj(b)
            b, trans, conj = b.conj(), 0, True
        else:
            trans = 1 - trans
    if not check:  # (BLAS's trsm: no test of the diagonal, a zero on it is divided by)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x = trtrs(1.0, a, b, lower=lower, trans_a=trans, diag=unit_diagonal)
        return x.conj() if conj else x
    x, info = trtrs(a, b, lower=lower, trans=trans, unitdiag=unit_diagonal)
    if info != 0:
        raise np.linalg.LinAlgError(f"Singular matrix (in triangular_solve: LAPACK's trtrs "
                                    f"returned info={info}).")
    return x.conj() if conj else x


def _linalg_substitute(t, b):
    """x with t x = b for triangular matrices t (the other triangle zero), one row a step, in
    the order whose rows are known first: a zero on t's diagonal is divided by."""
    n = t.shape[-1]
    lower = not np.any(np.triu(t, 1))
    x = np.zeros(np.broadcast_shapes(t.shape[:-1], b.shape[:-2] + (n,)) + b.shape[-1:],
                 np.result_type(t, b))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in (range(n) if lower else range(n - 1, -1, -1)):
            done = slice(0, i) if lower else slice(i + 1, n)
            known = np.einsum("...j,...jk->...k", t[..., i, done], x[..., done, :])
            x[..., i, :] = (b[..., i, :] - known) / t[..., i, i, None]
    return x


def _linalg_triangular_solve(a, b, lower, trans, unit_diagonal, dtype, check=True, small=12):
    a, b = np.asarray(a, dtype), np.asarray(b, dtype)
    if trans == 2 and a.dtype.kind != "c":
        trans = 1
    n, k = b.shape[-2:]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if not unit_diagonal and check:
        zero = np.diagonal(a, 0, -2, -1) == 0
        if zero.any():
            j = int(np.nonzero(zero.reshape(-1, n).any(0))[0][0])
            raise np.linalg.LinAlgError(f"Singular matrix (in triangular_solve): entry {j} "
                                        "of the triangle's diagonal is zero.")
    count = int(np.prod(batch))
    if count == 0 or n == 0 or k == 0:
        return np.zeros(batch + (n, k), dtype)
    trtrs = _linalg_trtrs_for(dtype, check)
    if trtrs is None or (a.ndim > 2 and count > 1 and n <= small):
        t = np.tril(a, -1 if unit_diagonal else 0) if lower else np.triu(a, int(unit_diagonal))
        if unit_diagonal:
            t = t + np.eye(n, dtype=dtype)
        if trans:
            t = np.swapaxes(t, -1, -2).conj() if trans == 2 else np.swapaxes(t, -1, -2)
        if check or np.all(np.diagonal(t, 0, -2, -1)):
            return np.linalg.solve(t, b)
        return _linalg_substitute(t, b)
    if a.ndim == 2:  # one matrix: a stack of right-hand sides is more columns
        cols = b if b.ndim == 2 else np.moveaxis(b, -2, 0).reshape(n, count * k)
        x = _linalg_trtrs(trtrs, a, cols, lower, trans, unit_diagonal, check)
        if b.ndim == 2:
            return np.ascontiguousarray(x)
        return np.ascontiguousarray(np.moveaxis(x.reshape((n,) + batch + (k,)), 0, -2))
    a, b = np.broadcast_to(a, batch + (n, n)), np.broadcast_to(b, batch + (n, k))
    out = np.empty(batch + (n, k), dtype)
    for i in np.ndindex(*batch):
        out[i] = _linalg_trtrs(trtrs, a[i], b[i], lower, trans, unit_diagonal, check)
    return out
'''
_triangular_namespace = {"np": np}
exec(TRIANGULAR_SOLVE_SOURCE, _triangular_namespace)


def _triangular_solve_impl(a, b, *, lower, trans, unit_diagonal, check):
  a, b = np.asarray(a), np.asarray(b)
  if b.ndim < 2:
    raise ValueError(f"triangular_solve_p takes a matrix right-hand side (b.ndim >= 2), got "
                     f"shape {b.shape}; call dfdx._src.ops.linalg.triangular_solve for a "
                     "vector b.")
  return _triangular_namespace["_linalg_triangular_solve"](
      a, b, lower, trans, unit_diagonal, _linalg_dtype(a.dtype, b.dtype), check)


def _triangular_solve_abstract_eval(a, b, *, lower, trans, unit_diagonal, check):
  _check_square(a, "triangular_solve")
  if b.ndim < 2:
    raise ValueError(f"triangular_solve: b must be a stack of matrices (ndim >= 2), got "
                     f"shape {b.shape}.")
  if b.shape[-2] != a.shape[-1]:
    raise ValueError(f"triangular_solve: b has {b.shape[-2]} rows, but the matrices of a are "
                     f"{a.shape[-1]} x {a.shape[-1]}.")
  batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  return ShapedArray(batch + b.shape[-2:], _linalg_dtype(a.dtype, b.dtype))


def _triangular_operand(a, lower, trans, unit_diagonal):
  """op(T) as a dense matrix: the triangle that triangular_solve reads (strictly, if
  `unit_diagonal`: its unit diagonal is constant), transposed for trans 1, conjugate
  transposed for trans 2."""
  k = (-1 if lower else 1) if unit_diagonal else 0
  t = _triangle(a, k, lower)
  return t if trans == 0 else _mT(t) if trans == 1 else _mH(t)


def _triangular_solve_jvp(primals, tangents, *, lower, trans, unit_diagonal, check):
  # op(T) x = b: op(T) dx = db - op(dT) x, one more solve with the same T; dT is the triangle
  # of dA that is read (its strict part for a unit diagonal).
  (a, b), (a_dot, b_dot) = primals, tangents
  params = dict(lower=lower, trans=trans, unit_diagonal=unit_diagonal, check=check)
  x = triangular_solve_p.bind(a, b, **params)
  rhs = b_dot
  if a_dot is not None:
    t_dot_x = _mm(_triangular_operand(a_dot, lower, trans, unit_diagonal), x)
    rhs = ew.neg(t_dot_x) if rhs is None else ew.sub(rhs, t_dot_x)
  return x, ad.match_primal(triangular_solve_p.bind(a, rhs, **params), x)


def _triangular_solve_transpose(ct, a, b, *, lower, trans, unit_diagonal, check):
  # Linear in b: b_bar = op(T)^-H x_bar, summed over the batch dims b was broadcast along.
  # op(T)^H is T^H (trans 0), conj(T) (trans 1) or T (trans 2); for real T, T^T or T.
  assert not ad.is_linear(a), "triangular_solve is linear in its right-hand side only"
  if not _is_complex(a):
    a_t, trans_t = a, 0 if trans else 1
  else:
    a_t, trans_t = (a, 2) if trans == 0 else (ew.conj(a), 0) if trans == 1 else (a, 0)
  b_bar = triangular_solve_p.bind(a_t, ct, lower=lower, trans=trans_t,
                                  unit_diagonal=unit_diagonal, check=check)
  b_bar = shape_ops.sum_to_shape(b_bar, core.shape_of(b))
  dtype = core.get_aval(b).dtype
  return [None, b_bar if b_bar.dtype == dtype else shape_ops.convert_element_type(b_bar, dtype)]


def _triangular_solve_batch(axis_size, vals, dims, **params):
  (a, b), (a_d, b_d) = vals, dims
  if a_d is NOT_MAPPED:  # one matrix: the batch becomes extra columns of b
    nd = core.ndim_of(b)
    b = moveaxis(b, b_d, nd - 2)
    shape = core.shape_of(b)
    x = triangular_solve_p.bind(a, shape_ops.reshape(b, shape[:-2] + (shape[-2] * shape[-1],)),
                                **params)
    x_shape = core.shape_of(x)
    return shape_ops.reshape(x, x_shape[:-1] + shape[-2:]), len(x_shape) - 1
  rank = max(core.ndim_of(v) - (d is not NOT_MAPPED) - 2 for v, d in zip(vals, dims))
  return triangular_solve_p.bind(_batch_first(a, a_d, rank), _batch_first(b, b_d, rank),
                                 **params), 0


triangular_solve_p.def_impl(_triangular_solve_impl)
triangular_solve_p.def_abstract_eval(_triangular_solve_abstract_eval)
ad.primitive_jvps[triangular_solve_p] = _triangular_solve_jvp
ad.primitive_transposes[triangular_solve_p] = _triangular_solve_transpose
ad.complex_rules.add(triangular_solve_p)
batching.primitive_batchers[triangular_solve_p] = _triangular_solve_batch


# ---- adjugate -----------------------------------------------------------------------------
adjugate_p = core.primitive("adjugate")


def adjugate(a):
  """Adjugates (transposed cofactor matrices) of the matrices in the last two axes: det(a)
  inv(a) where a is invertible, and finite (exact) where it is not."""
  return adjugate_p.bind(a)


# adj(U S V^H) = det(U) det(V^H) V adj(S) U^H, adj(S) = diag(prod_{j != i} s_j): no
# division.
# One source for the impl and for generated code (codegen_rules.py emits it as a helper).
ADJUGATE_SOURCE = '''def _linalg_adjugate(a):
    a = np.asarray(a)
    a = a if a.dtype.kind in "fc" else a.astype(np.float64)
    if a.shape[-1] == 0 or a.size == 0:
        return np.array(a, copy=True)
    u, s, vh = np.linalg.svd(a)
    ones = np.ones(s.shape[:-1] + (1,), s.dtype)
    before = np.cumprod(np.concatenate([ones, s[..., :-1]], -1), -1)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(s[..., 1:], -1)], -1), -1), -1)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vh))[..., None, None]
    v, uh = np.swapaxes(vh, -1, -2), np.swapaxes(u, -1, -2)
    if a.dtype.kind == "c":  # A = U S V^H: adj(A) = det(U) det(V^H) V adj(S) U^H
        v, uh = v.conj(), uh.conj()
    return sign * np.matmul(v * (before * after)[..., None, :], uh)
'''
_namespace = {"np": np}
exec(ADJUGATE_SOURCE, _namespace)
_adjugate_impl = _namespace["_linalg_adjugate"]


def _adjugate_abstract_eval(a):
  _check_square(a, "adjugate")
  return ShapedArray(a.shape, _linalg_dtype(a.dtype))


def _adjugate_jvp(primals, tangents):
  # With A = U S V^H and E = U^H dA V: d adj(A) = det(U) det(V^H) V (diag(P diag(E)) - P o E)
  # U^H, P_ij = prod_{k not in {i, j}} s_k (i != j), P_ii = 0: the first-order cofactors of
  # S + E, from adj(XY) = adj(Y) adj(X) and adj(U) = det(U) U^H for unitary U (cf. Magnus &
  # Neudecker, "Matrix differential calculus", ch. 8, on the differential of the adjoint
  # matrix); exact at any rank. det(U) det(V^H) is a sign for real A, a phase for complex A.
  (a,), (a_dot,) = primals, tangents
  ans = adjugate(a)
  n = core.shape_of(a)[-1]
  if n <= 1:
    return ans, None
  u, s, vh = svd_p.bind(a, full_matrices=False, compute_uv=True)
  if _is_complex(a):  # moves with the singular vectors' gauge (derivatives of order 2 on)
    phase = ew.mul(det(u), det(vh))
  else:
    phase = ew.sign(ew.mul(det(ew.stop_gradient(u)), det(ew.stop_gradient(vh))))
  uh, v = _mH(u), _mH(vh)
  e = _mm(uh, _mm(a_dot, v))
  p = _pair_cofactors(s)
  d = ew.sub(_diag_matrix(red.reduce_sum(ew.mul(p, _row(_diag(e))), (core.ndim_of(e) - 1,))),
             ew.mul(p, e))
  return ans, ew.mul(_col(_col(phase)), _mm(v, _mm(d, uh)))


def _pair_cofactors(s):
  """P_ij = prod_{k not in {i, j}} s_k for i != j and P_ii = 0, with no division and O(n^2)
  memory: for i < j, (prod_{k < i} s_k) (prod_{i < k < j} s_k) (prod_{k > j} s_k)."""
  shape, dtype = core.shape_of(s), _dtype(s)
  n, last = shape[-1], len(shape) - 1
  k = np.arange(n)
  ones = np.ones(shape[:-1] + (1,), dtype)
  before = shape_ops.concatenate(
      [ones, red.cumprod(shape_ops.slice_in_dim(s, 0, n - 1, last), last)], last)
  after = shape_ops.concatenate(
      [red.cumprod(shape_ops.slice_in_dim(s, 1, n, last), last, reverse=True), ones], last)
  between = red.cumprod(ew.select(k > k[:, None], _row(s), np.ones((), dtype)), last + 1)
  between = shape_ops.concatenate(  # [i, j] = prod_{i < k < j} s_k
      [np.ones(shape[:-1] + (n, 1), dtype),
       shape_ops.slice_in_dim(between, 0, n - 1, last + 1)], last + 1)
  p = ew.mul(ew.mul(_col(before), between), ew.mul(_row(after), np.tri(n, k=-1, dtype=dtype).T))
  return ew.add(p, _mT(p))


adjugate_p.def_impl(_adjugate_impl)
adjugate_p.def_abstract_eval(_adjugate_abstract_eval)
ad.primitive_jvps[adjugate_p] = _adjugate_jvp
_unary_matrix_batcher(adjugate_p)

# ---- det ----------------------------------------------------------------------------------
det_p = core.primitive("det")


def det(a):
  """Determinants of the matrices in the last two axes of `a`."""
  return det_p.bind(a)


def _det_abstract_eval(a):
  _check_square(a, "det")
  return ShapedArray(a.shape[:-2], _linalg_dtype(a.dtype))


def _det_jvp(a_dot, a):
  # d det(A) = tr(adj(A) dA)  (Giles 2008, sec. 2.2.2, with det(A) A^-1 = adj(A)): finite and
  # exact at singular matrices, where det(A) A^-1 is not defined.
  nd = core.ndim_of(a_dot)
  return red.reduce_sum(ew.mul(_mT(adjugate(a)), a_dot), (nd - 2, nd - 1))


def _det_batch(axis_size, vals, dims):
  (a,), (d,) = vals, dims
  if d >= core.ndim_of(a) - 2:  # the batch axis is one of the matrix axes: move it first
    a, d = moveaxis(a, d, 0), 0
  return det(a), d


det_p.def_impl(np.linalg.det)
det_p.def_abstract_eval(_det_abstract_eval)
ad.defjvp(det_p, _det_jvp)
batching.primitive_batchers[det_p] = _det_batch

# ---- slogdet ------------------------------------------------------------------------------
slogdet_p = core.primitive("slogdet", multiple_results=True)


def slogdet(a):
  """[sign, log|det|] of the matrices in the last two axes of `a`."""
  return slogdet_p.bind(a)


def _slogdet_impl(a):
  sign, logabsdet = np.linalg.slogdet(a)
  return [sign, logabsdet]


def _slogdet_abstract_eval(a):
  _check_square(a, "slogdet")
  dtype = _linalg_dtype(a.dtype)  # complex input: a complex sign, a real logabsdet
  return [ShapedArray(a.shape[:-2], dtype), ShapedArray(a.shape[:-2], _real_dtype(dtype))]


def _slogdet_jvp(primals, tangents):
  # With t = tr(A^-1 dA) = d log det A (Giles 2008, sec. 2.2.2): d log|det A| = Re t. A real
  # sign is locally constant; a complex one, sign = exp(i arg det A), has d sign = i Im(t) sign.
  (a,), (a_dot,) = primals, tangents
  sign, logabsdet = ans = slogdet(a)
  t = contraction.trace(solve_p.bind(a, a_dot))
  sign_dot = None
  if _is_complex(sign):
    sign_dot = ew.mul(sign, _i_im(t))
  return ans, [sign_dot, ad.match_primal(_re(t), logabsdet)]


slogdet_p.def_impl(_slogdet_impl)
slogdet_p.def_abstract_eval(_slogdet_abstract_eval)
ad.primitive_jvps[slogdet_p] = _slogdet_jvp
_unary_matrix_batcher(slogdet_p)

# ---- cholesky -----------------------------------------------------------------------------
cholesky_p = core.primitive("cholesky")


def cholesky(a, upper=False):
  """Cholesky factors L (L L^H = a, from a's lower triangle) or, with `upper`, U (U^H U = a,
  from a's upper triangle), as numpy.linalg.cholesky (L^H = L^T for real a; for complex a the
  imaginary parts of the diagonal are not read)."""
  return cholesky_p.bind(a, upper=bool(upper))


def _cholesky_abstract_eval(a, *, upper):
  _check_square(a, "cholesky")
  return ShapedArray(a.shape, _linalg_dtype(a.dtype))


def _cholesky_jvp(primals, tangents, *, upper):
  # dL = L Phi(L^-1 dA L^-H), Phi: the lower triangle with the diagonal halved (Murray 2016,
  # forward mode; L^-H = L^-T for real A); dA is symmetrized (made Hermitian) from the
  # triangle that was read. For complex A the diagonal of L^-1 dA L^-H is real, so dL keeps
  # L's diagonal real. Upper: U = L^H, dU = Phi(...)^H U. Two triangular solves, as JAX.
  (a,), (a_dot,) = primals, tangents
  ans = cholesky(a, upper)
  a_dot = _symmetrized(a_dot, lower=not upper)
  if upper:
    x = triangular_solve(ans, a_dot, lower=False, trans=2)  # L^-1 dA = U^-H dA
    x = _mT(triangular_solve(ans, _mT(x), lower=False, trans=1))  # x L^-H = x U^-1
  else:
    x = triangular_solve(ans, a_dot, lower=True)
    x = _mH(triangular_solve(ans, _mH(x), lower=True))  # x L^-H = (L^-1 x^H)^H
  n = core.shape_of(a)[-1]
  phi = ew.mul(x, np.tri(n, k=-1, dtype=_dtype(x)) + 0.5 * np.eye(n, dtype=_dtype(x)))
  return ans, _mm(_mH(phi), ans) if upper else _mm(ans, phi)


cholesky_p.def_impl(lambda a, *, upper: np.linalg.cholesky(a, upper=upper))
cholesky_p.def_abstract_eval(_cholesky_abstract_eval)
ad.primitive_jvps[cholesky_p] = _cholesky_jvp
_unary_matrix_batcher(cholesky_p)

# ---- qr -----------------------------------------------------------------------------------
qr_p = core.primitive("qr", multiple_results=True)


def qr(a, full_matrices=False):
  """[q, r] of the matrices in the last two axes: numpy.linalg.qr's mode 'reduced', or mode
  'complete' with `full_matrices`."""
  return qr_p.bind(a, full_matrices=bool(full_matrices))


def _qr_impl(a, *, full_matrices):
  q, r = np.linalg.qr(a, mode="complete" if full_matrices else "reduced")
  return [q, r]


def _qr_abstract_eval(a, *, full_matrices):
  _check_matrix(a, "qr")
  (m, n), batch, dtype = a.shape[-2:], a.shape[:-2], _linalg_dtype(a.dtype)
  k = m if full_matrices else min(m, n)
  return [ShapedArray(batch + (m, k), dtype), ShapedArray(batch + (k, n), dtype)]


def _qr_jvp(primals, tangents, *, full_matrices):
  (a,), (a_dot,) = primals, tangents
  q, r = ans = qr(a, full_matrices)
  m, n = core.shape_of(a)[-2:]
  nd = core.ndim_of(a)
  if m > n and full_matrices:
    # The last m - n columns Q_c of Q are any orthonormal basis of the complement of a's
    # column space: their derivative is the least rotation keeping Q unitary, Q_c^H dQ_c = 0
    # and Q_1^H dQ_c = -(Q_c^H dQ_1)^H (exact for functions of the complement that do not
    # depend on its basis, such as Q_c Q_c^H). R's last m - n rows stay 0.
    q1 = shape_ops.slice_in_dim(q, 0, n, nd - 1)
    q1_dot, r1_dot = _qr_tangents(q1, shape_ops.slice_in_dim(r, 0, n, nd - 2), a_dot)
    qc_dot = ew.neg(_mm(q1, _mH(_mm(_mH(shape_ops.slice_in_dim(q, n, m, nd - 1)), q1_dot))))
    zeros = np.zeros(core.shape_of(r)[:-2] + (m - n, n), _dtype(r))
    return ans, [shape_ops.concatenate([q1_dot, qc_dot], nd - 1),
                 shape_ops.concatenate([r1_dot, zeros], nd - 2)]
  if m >= n:
    return ans, list(_qr_tangents(q, r, a_dot))
  # A wide matrix [X Y] = Q [R_X, Q^T Y]: Q and R_X come from X alone.
  x_dot, y_dot = (shape_ops.slice_in_dim(a_dot, 0, m, nd - 1),
                  shape_ops.slice_in_dim(a_dot, m, n, nd - 1))
  q_dot, rx_dot = _qr_tangents(q, shape_ops.slice_in_dim(r, 0, m, nd - 1), x_dot)
  y = shape_ops.convert_element_type(shape_ops.slice_in_dim(a, m, n, nd - 1), _dtype(q))
  ry_dot = ew.add(_mm(_mH(q_dot), y), _mm(_mH(q), y_dot))
  return ans, [q_dot, shape_ops.concatenate([rx_dot, ry_dot], nd - 1)]


def _qr_tangents(q, r, a_dot):
  # With C = Q^H dA R^-1 and Omega = Q^H dQ, skew-Hermitian, from C's strict lower triangle:
  # Omega = tril(C, -1) - tril(C, -1)^H + i Im diag(C), dQ = Q (Omega - C) + dA R^-1,
  # dR = (C - Omega) R (Walter & Lehmann 2018; Q^H = Q^T for real A). The imaginary diagonal
  # keeps diag(R) real, as LAPACK's (NumPy's) complex R is: Re diag(C) = diag(dR R^-1).
  a_dot_rinv = _mT(triangular_solve(r, _mT(a_dot), lower=False, trans=1))  # R^T Y^T = dA^T
  c = _mm(_mH(q), a_dot_rinv)
  low = _triangle(c, -1)
  omega = ew.sub(low, _mH(low))
  if _is_complex(c):
    omega = ew.add(omega, ew.mul(_i_im(c), np.eye(core.shape_of(c)[-1],
                                                  dtype=_real_dtype(_dtype(c)))))
  return ew.add(_mm(q, ew.sub(omega, c)), a_dot_rinv), _mm(ew.sub(c, omega), r)


qr_p.def_impl(_qr_impl)
qr_p.def_abstract_eval(_qr_abstract_eval)
ad.primitive_jvps[qr_p] = _qr_jvp
_unary_matrix_batcher(qr_p)

# ---- eigh ---------------------------------------------------------------------------------
eigh_p = core.primitive("eigh", multiple_results=True)


def eigh(a, lower=True):
  """[w, v]: ascending eigenvalues and orthonormal eigenvectors (columns) of the symmetric
  matrices that the lower (or upper) triangles of `a` define, as numpy.linalg.eigh."""
  return eigh_p.bind(a, lower=bool(lower))


def _eigh_impl(a, *, lower):
  w, v = np.linalg.eigh(a, UPLO="L" if lower else "U")
  return [w, v]


def _eigh_abstract_eval(a, *, lower):
  _check_square(a, "eigh")
  dtype = _linalg_dtype(a.dtype)  # complex input: real eigenvalues
  return [ShapedArray(a.shape[:-1], _real_dtype(dtype)), ShapedArray(a.shape, dtype)]


def _eigh_jvp(primals, tangents, *, lower):
  # dw = diag(V^H dA V), dV = V (F o V^H dA V), F_ij = 1 / (w_j - w_i) (Giles 2008, sec. 3.1;
  # V^H = V^T for real A), with F_ij = 0 where w_i = w_j to working precision: dw needs no
  # gap, dV stays finite. F_ii = 0 fixes the gauge of complex eigenvectors (each column's
  # phase): diag(V^H dV) = 0, its imaginary part included (as JAX).
  # At a tie the factor is a limit, which a second pass with the spectrum split finds (see
  # ops/gaps.py): the split moves w_i at rate i.
  (a,), (a_dot,) = primals, tangents
  w, v = eigh(a, lower)
  w = ad.split_value(w, lambda: np.broadcast_to(np.arange(w.shape[-1], dtype=w.dtype), w.shape))
  vt_dot_v = _mm(_mH(v), _mm(_symmetrized(a_dot, lower), v))
  v_dot = _mm(v, gaps.gap_div(vt_dot_v, ew.sub(_row(w), _col(w)), _col(_tolerance(w)),
                                 difference=True))
  return [w, v], [_re(_diag(vt_dot_v)), v_dot]


eigh_p.def_impl(_eigh_impl)
eigh_p.def_abstract_eval(_eigh_abstract_eval)
ad.primitive_jvps[eigh_p] = _eigh_jvp
_unary_matrix_batcher(eigh_p)

# ---- svd ----------------------------------------------------------------------------------
svd_p = core.primitive("svd", multiple_results=True)


def svd(a, full_matrices=True, compute_uv=True):
  """[u, s, vh] (or [s] without `compute_uv`) of the matrices in the last two axes, as
  numpy.linalg.svd: s descending, a = u[..., :k] diag(s) vh[..., :k, :]."""
  return svd_p.bind(a, full_matrices=bool(full_matrices), compute_uv=bool(compute_uv))


def _svd_impl(a, *, full_matrices, compute_uv):
  if not compute_uv:
    return [np.linalg.svd(a, compute_uv=False)]
  u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
  return [u, s, vh]


def _svd_abstract_eval(a, *, full_matrices, compute_uv):
  _check_matrix(a, "svd")
  (m, n), batch, dtype = a.shape[-2:], a.shape[:-2], _linalg_dtype(a.dtype)
  k = min(m, n)
  s = ShapedArray(batch + (k,), _real_dtype(dtype))  # complex input: real singular values
  if not compute_uv:
    return [s]
  mu, nv = (m, n) if full_matrices else (k, k)
  return [ShapedArray(batch + (m, mu), dtype), s, ShapedArray(batch + (nv, n), dtype)]


def _svd_jvp(primals, tangents, *, full_matrices, compute_uv):
  # With dS = U^H dA V (U^T dA V for real A): ds = Re diag(dS), dU = U Om_U, dV = V Om_V,
  # where for i != j Om_U_ij = (dS_ij s_j + s_i conj(dS_ji)) / (s_j^2 - s_i^2) and
  # Om_V_ij = (s_i dS_ij + conj(dS_ji) s_j) / (s_j^2 - s_i^2), plus the parts outside the
  # column spaces for non-square matrices (Townsend 2016; Seeger et al. 2017). Split by
  # partial fractions into herm(dS) / (s_j - s_i) -+ skew(dS) / (s_j + s_i) (the Hermitian and
  # skew-Hermitian parts): only the Hermitian part, which has no limit, is dropped where
  # s_i = s_j to working precision; the skew part (a rotation shared by U and V) is kept.
  # 1/s is 0 where s is 0. No NaN, no inf. Complex A: a phase e^{i t} on u_i and v_i leaves
  # A unchanged; the gauge is JAX's, Im diag(V^H dV) = 0 (diag(Om_V) = 0, and
  # diag(Om_U) = i Im(dS_ii) / s_i).
  # full_matrices of a tall matrix: the last m - k columns U_c of U are any orthonormal basis
  # of the complement. Their derivative is the least rotation keeping U unitary:
  # U_c^H dU_c = 0 and U^H dU_c = -(U_c^H dU)^H, so dU_c = -U (U_c^H dA V S^-1)^H, which is
  # exact for functions of the complement that do not depend on its basis (U_c U_c^H); V's
  # for a wide matrix likewise.
  (a,), (a_dot,) = primals, tangents
  ans = svd(a, full_matrices, compute_uv)
  m, n = core.shape_of(a)[-2:]
  k, nd = min(m, n), core.ndim_of(a)
  if compute_uv:
    u_full, s, vh_full = ans
    u = shape_ops.slice_in_dim(u_full, 0, k, nd - 1) if m > n and full_matrices else u_full
    vh = shape_ops.slice_in_dim(vh_full, 0, k, nd - 2) if m < n and full_matrices else vh_full
  else:
    u, s, vh = svd_p.bind(a, full_matrices=False, compute_uv=True)
  v = _mH(vh)
  ds = _mm(_mH(u), _mm(a_dot, v))
  s_dot = _re(_diag(ds))
  if not compute_uv:
    return ans, [s_dot]
  # At ties the factors are limits, which a second pass with the singular values split finds
  # (see ops/gaps.py): the split moves s_i at rate -(i + 1), so that no rate, difference of
  # two rates or sum of two rates is 0.
  s = ad.split_value(s, lambda: np.broadcast_to(-np.arange(1, s.shape[-1] + 1, dtype=s.dtype),
                                                s.shape))
  s_row, s_col, tol = _row(s), _col(s), _tolerance(s)
  half = np.asarray(0.5, _dtype(s))
  sym = gaps.gap_div(ew.mul(ew.add(ds, _mH(ds)), half), ew.sub(s_row, s_col), _col(tol),
                     difference=True)
  skew = gaps.gap_div(ew.mul(ew.sub(ds, _mH(ds)), half), ew.add(s_row, s_col), _col(tol))
  u_dot, v_dot = _mm(u, ew.add(sym, skew)), _mm(v, ew.sub(sym, skew))
  if _is_complex(ds):  # the gauge: move skew's diagonal (phases of v_i) onto u_i
    phase = _row(_diag(skew))
    u_dot, v_dot = ew.add(u_dot, ew.mul(u, phase)), ew.add(v_dot, ew.mul(v, phase))
  if m != n:
    if m > n:  # dU += (I - U U^H) dA V S^-1
      dav = _mm(a_dot, v)
      u_dot = ew.add(u_dot, gaps.gap_div(ew.sub(dav, _mm(u, _mm(_mH(u), dav))), s_row,
                                         _row(tol)))
      if full_matrices:
        u_c = shape_ops.slice_in_dim(u_full, k, m, nd - 1)
        x = gaps.gap_div(_mm(_mH(u_c), dav), s_row, _row(tol))
        u_dot = shape_ops.concatenate([u_dot, ew.neg(_mm(u, _mH(x)))], nd - 1)
    else:  # dV += (I - V V^H) dA^H U S^-1
      dau = _mm(_mH(a_dot), u)
      v_dot = ew.add(v_dot, gaps.gap_div(ew.sub(dau, _mm(v, _mm(vh, dau))), s_row,
                                         _row(tol)))
      if full_matrices:
        v_c = _mH(shape_ops.slice_in_dim(vh_full, k, n, nd - 2))
        y = gaps.gap_div(_mm(_mH(v_c), dau), s_row, _row(tol))
        v_dot = shape_ops.concatenate([v_dot, ew.neg(_mm(v, _mH(y)))], nd - 1)
  return [u_full, s, vh_full], [u_dot, s_dot, _mH(v_dot)]


svd_p.def_impl(_svd_impl)
svd_p.def_abstract_eval(_svd_abstract_eval)
ad.primitive_jvps[svd_p] = _svd_jvp
_unary_matrix_batcher(svd_p)

# ---- pinv ---------------------------------------------------------------------------------
pinv_p = core.primitive("pinv")


def pinv(a, rcond=1e-15, hermitian=False):
  """Moore-Penrose pseudo-inverses of the matrices in the last two axes (numpy.linalg.pinv;
  `rcond` a float)."""
  return pinv_p.bind(a, rcond=float(rcond), hermitian=bool(hermitian))


def _pinv_abstract_eval(a, *, rcond, hermitian):
  _check_matrix(a, "pinv")
  return ShapedArray(a.shape[:-2] + a.shape[:-3:-1], _linalg_dtype(a.dtype))


def _pinv_jvp(primals, tangents, *, rcond, hermitian):
  # dA+ = -A+ dA A+ + A+ A+^H dA^H (I - A A+) + (I - A+ A) dA^H A+^H A+, where the rank is
  # locally constant (Golub & Pereyra 1973; ^H = ^T for real A).
  (a,), (a_dot,) = primals, tangents
  p = pinv(a, rcond, hermitian)
  if hermitian:  # LAPACK reads the lower triangle
    a, a_dot = _symmetrized(a, True), _symmetrized(a_dot, True)
  a = shape_ops.convert_element_type(a, _dtype(p))
  a_dot_t = _mH(a_dot)
  term1 = ew.neg(_mm(p, _mm(a_dot, p)))
  term2 = _mm(p, _mm(_mH(p), ew.sub(a_dot_t, _mm(_mm(a_dot_t, a), p))))
  term3 = _mm(ew.sub(a_dot_t, _mm(p, _mm(a, a_dot_t))), _mm(_mH(p), p))
  return p, ew.add(ew.add(term1, term2), term3)


pinv_p.def_impl(lambda a, *, rcond, hermitian: np.linalg.pinv(a, rcond, hermitian))
pinv_p.def_abstract_eval(_pinv_abstract_eval)
ad.primitive_jvps[pinv_p] = _pinv_jvp
_unary_matrix_batcher(pinv_p)

# ---- lstsq --------------------------------------------------------------------------------
lstsq_p = core.primitive("lstsq", multiple_results=True)


def lstsq(a, b, rcond):
  """[x, residuals, rank, s] of the least-squares problems a x = b, for a (..., m, n) and a
  matrix right-hand side b (..., m, k) with broadcast batch dims; `rcond` a float.

  Unlike numpy.linalg.lstsq (two-dimensional, with empty residuals when rank < n), the
  residuals have shape (..., k) whenever m > n (else (..., 0)), so that their shape does not
  depend on the values."""
  return lstsq_p.bind(a, b, rcond=float(rcond))


def _lstsq_impl(a, b, *, rcond):
  a, b = np.asarray(a), np.asarray(b)
  batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
  m, n = a.shape[-2:]
  outs = []
  for i in np.ndindex(*batch):
    x, res, rank, s = np.linalg.lstsq(a[i], b[i], rcond=rcond)
    if m > n and res.shape[0] != b.shape[-1]:  # rank < n: NumPy leaves them out
      res = np.sum(np.square(np.abs(b[i] - a[i] @ x)), axis=0).astype(res.dtype)
    outs.append((x, res, np.asarray(rank, np.int32), s))
  if not batch:
    return list(outs[0])
  return [np.stack([o[j] for o in outs]).reshape(batch + np.shape(outs[0][j]))
          if outs else _lstsq_empty(a, b, batch, j) for j in range(4)]


def _lstsq_empty(a, b, batch, j):
  aval = _lstsq_abstract_eval(core.get_aval(a), core.get_aval(b), rcond=0.0)[j]
  return np.zeros(batch + aval.shape[len(batch):], aval.dtype)


def _lstsq_abstract_eval(a, b, *, rcond):
  if a.ndim < 2 or b.ndim < 2:
    raise np.linalg.LinAlgError(f"{min(a.ndim, b.ndim)}-dimensional array given. Array must "
                                "be two-dimensional (in lstsq).")
  (m, n), (mb, k) = a.shape[-2:], b.shape[-2:]
  if m != mb:
    raise np.linalg.LinAlgError(f"Incompatible dimensions (in lstsq: a has {m} rows, b has "
                                f"{mb}).")
  batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  dtype = _linalg_dtype(a.dtype, b.dtype)
  real = _real_dtype(dtype)  # complex problems: real residuals and singular values
  return [ShapedArray(batch + (n, k), dtype), ShapedArray(batch + (k if m > n else 0,), real),
          ShapedArray(batch, np.int32), ShapedArray(batch + (min(m, n),), real)]


def _lstsq_jvp(primals, tangents, *, rcond):
  # x = A+ b: dx = A+ (db - dA x) + A+ A+^H dA^H r + (I - A+ A) dA^H A+^H x with r = b - A x
  # (Golub & Pereyra 1973); d|r|^2 = 2 Re(r^H (db - dA x)), as A^H r = 0;
  # ds = Re diag(U^H dA V). (^H = ^T for real A and b.)
  (a, b), (a_dot, b_dot) = primals, tangents
  x, res, rank, s = ans = lstsq(a, b, rcond)
  dtype = _dtype(x)
  a, b = (shape_ops.convert_element_type(v, dtype) for v in (a, b))
  rhs = b_dot  # db - dA x
  if a_dot is not None:
    a_dot_x = _mm(a_dot, x)
    rhs = ew.neg(a_dot_x) if rhs is None else ew.sub(rhs, a_dot_x)
  p = pinv(a, rcond)
  r = ew.sub(b, _mm(a, x))
  x_dot = _mm(p, rhs)
  s_dot = None
  if a_dot is not None:
    a_dot_t = _mH(a_dot)
    x_dot = ew.add(x_dot, _mm(p, _mm(_mH(p), _mm(a_dot_t, r))))
    y = _mm(a_dot_t, _mm(_mH(p), x))
    x_dot = ew.add(x_dot, ew.sub(y, _mm(p, _mm(a, y))))
    u, _, vh = svd_p.bind(a, full_matrices=False, compute_uv=True)
    s_dot = _re(_diag(_mm(_mH(u), _mm(a_dot, _mH(vh)))))
  nd = core.ndim_of(r)
  res_dot = None
  if core.shape_of(res)[-1]:
    res_dot = ew.mul(_re(red.reduce_sum(ew.mul(ew.conj(r), rhs), (nd - 2,))),
                     np.asarray(2, _dtype(res)))
  return ans, [ad.match_primal(x_dot, x), None if res_dot is None else ad.match_primal(
      res_dot, res), None, None if s_dot is None else ad.match_primal(s_dot, s)]


def _lstsq_batch(axis_size, vals, dims, *, rcond):
  a, b = (bdim_at_front(v, d, axis_size) for v, d in zip(vals, dims))
  if core.ndim_of(a) != core.ndim_of(b):  # line up the batch dims: unit axes after the first
    a, b = (shape_ops.reshape(v, core.shape_of(v)[:1] + (1,) * (
        max(core.ndim_of(a), core.ndim_of(b)) - core.ndim_of(v)) + core.shape_of(v)[1:])
            for v in (a, b))
  return lstsq(a, b, rcond), [0, 0, 0, 0]


lstsq_p.def_impl(_lstsq_impl)
lstsq_p.def_abstract_eval(_lstsq_abstract_eval)
ad.primitive_jvps[lstsq_p] = _lstsq_jvp
batching.primitive_batchers[lstsq_p] = _lstsq_batch

# ---- eig ----------------------------------------------------------------------------------
eig_p = core.primitive("eig", multiple_results=True)


def eig(a):
  """[w, v]: eigenvalues and unit-norm right eigenvectors (columns) of the general square
  matrices in the last two axes, as numpy.linalg.eig, but always complex (NumPy returns real
  arrays for real input whose eigenvalues are all real; dfdx.numpy.linalg.eig does too)."""
  return eig_p.bind(a)


def _eig_dtype(dtype):
  return np.result_type(_linalg_dtype(dtype), np.complex64)


def _eig_impl(a):
  a = np.asarray(a)
  w, v = np.linalg.eig(a)
  dtype = _eig_dtype(a.dtype)
  return [w.astype(dtype, copy=False), v.astype(dtype, copy=False)]


def _eig_abstract_eval(a):
  _check_square(a, "eig")
  dtype = _eig_dtype(a.dtype)
  return [ShapedArray(a.shape[:-1], dtype), ShapedArray(a.shape, dtype)]


def _eig_jvp(primals, tangents):
  # A = V diag(w) V^-1. With dA' = V^-1 dA V: dw = diag(dA'), dV = V (F o dA' + diag(c)),
  # F_ij = 1 / (w_j - w_i) for i != j, 0 on the diagonal and where w_i = w_j to working
  # precision (Giles 2008, sec. 3.1; no NaN or inf at repeated eigenvalues). Each column's
  # own component c_j follows LAPACK's normalization of v_j: unit 2-norm, so
  # Re(v_j^H dv_j) = 0, and its largest-modulus entry v_kj kept real, so that entry's phase
  # is constant: Im(dv_kj / v_kj) = 0. Then dV is the derivative of what NumPy returns.
  (a,), (a_dot,) = primals, tangents
  w, v = ans = eig(a)
  dtype, nd = _dtype(w), core.ndim_of(v)
  n = core.shape_of(v)[-1]
  if n == 0 or 0 in core.shape_of(v):
    return ans, [None, None]
  da = solve_p.bind(v, _mm(shape_ops.convert_element_type(a_dot, dtype), v))
  gap = ew.sub(_row(w), _col(w))
  f = _safe_reciprocal(gap, _col(_tolerance(ew.abs(ew.stop_gradient(w)))))
  v_dot = _mm(v, ew.mul(f, da))
  # c_j = -Re(v_j^H dv_j) - i Im(dv_kj / v_kj), k the row of the largest |v_kj| (the first).
  norm_part = ew.real(red.reduce_sum(ew.mul(ew.conj(v), v_dot), (nd - 2,)))
  k = red.argmax_p.bind(ew.abs(ew.stop_gradient(v)), axis=nd - 2)
  pivot = shape_ops.convert_element_type(ew.eq(_row(k), np.arange(n).reshape(n, 1)), dtype)
  phase_part = ew.imag(ew.div(red.reduce_sum(ew.mul(pivot, v_dot), (nd - 2,)),
                              red.reduce_sum(ew.mul(pivot, v), (nd - 2,))))
  c = ew.complex(ew.neg(norm_part), ew.neg(phase_part))
  return ans, [_diag(da), ew.add(v_dot, ew.mul(v, _row(c)))]


eig_p.def_impl(_eig_impl)
eig_p.def_abstract_eval(_eig_abstract_eval)
ad.primitive_jvps[eig_p] = _eig_jvp
_unary_matrix_batcher(eig_p)
