"""More of `dfdx.scipy.linalg`: cholesky, solve, inv, det, eigh, svd, qr, lu, lstsq, norm,
block_diag, toeplitz and circulant, with SciPy's signatures, defaults, result tuples and errors.

Every function is a composition of `dfdx.numpy`, `dfdx.numpy.linalg` and the triangular and
LU solves of `dfdx._src.scipy_linalg`, so it has their derivatives (to any order) and batches
and stages like them; this module holds no derivative rules and adds no primitive. The
structure arguments are read as SciPy reads them: `lower` picks the triangle that cholesky,
solve('sym'/'pos'), inv and eigh read, and the derivative with respect to the triangle that is
not read is 0.

Permutations are piecewise constant, so they have no derivative: lu's comes from SciPy's
LU (lu_factor) and qr's column pivots from SciPy's pivoted QR, computed on values with no
derivative. Everything but lu, pivoted or 'raw' qr needs NumPy alone. `check_finite` checks
values wherever they are concrete (not under jit or vmap); `overwrite_*`, `lwork` and the
LAPACK driver choices are accepted and checked, and change nothing.
"""
from __future__ import annotations

import math

import numpy as np

import dfdx.numpy as dnp
from dfdx._src import errors
from dfdx._src.callback import ShapeDtypeStruct, pure_callback
from dfdx._src.core import Tracer
from dfdx._src.numpy.sorting import concrete
from dfdx._src.numpy.util import contains_tracer, dtype as dtype_of, shape as shape_of
from dfdx._src.ops import elementwise as ew
from dfdx._src.scipy_linalg import (cho_solve, lu_factor, lu_pivots_to_permutation,
                                    scipy_linalg, solve_triangular)

__all__ = ["cholesky", "solve", "inv", "det", "eigh", "svd", "qr", "lu", "lstsq", "norm",
           "block_diag", "toeplitz", "circulant"]

LinAlgError = np.linalg.LinAlgError


def _traced(*xs):
  return any(contains_tracer(x) for x in xs)


def _array(a, check_finite):
  """`a` as an array; with `check_finite`, SciPy's error for infs and NaNs where the values
  are concrete."""
  a = dnp.asarray(a)
  if check_finite and dtype_of(a).kind in "fc":
    try:
      value = concrete(a, "check_finite")
    except errors.ConcretizationError:
      return a
    if not np.all(np.isfinite(value)):
      raise ValueError("array must not contain infs or NaNs")
  return a


def _square(a, message):
  shape = shape_of(a)
  if len(shape) < 2 or shape[-1] != shape[-2]:
    raise ValueError(message.format(shape=tuple(shape)))


def _mT(x):
  return dnp.swapaxes(x, -1, -2)


def _symmetric(a, lower):
  """The symmetric (Hermitian) matrix that a's lower (or upper) triangle defines."""
  part = dnp.tril(a, -1) if lower else dnp.triu(a, 1)
  diag = dnp.tril(dnp.triu(a))
  if dtype_of(a).kind == "c":
    diag, mirrored = dnp.real(diag), dnp.conj(_mT(part))
  else:
    mirrored = _mT(part)
  return part + diag + mirrored


def _scalar(x):
  return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


# ---- cholesky, solve, inv, det -----------------------------------------------------------------


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
  """Differentiable `scipy.linalg.cholesky`: the upper factor U with a = U^H U (SciPy's
  default), or with `lower` the lower factor L with a = L L^H, read from that triangle of a
  (stacks of matrices too). Derivative: Murray's (2016), 0 in the triangle that is not read.

  >>> cholesky(np.array([[4.0, 2.0], [2.0, 5.0]]))
  array([[2., 1.],
         [0., 2.]])
  """
  a = _array(a, check_finite)
  _square(a, "Input array is expected to be square but has the shape: {shape}.")
  return dnp.linalg.cholesky(a, upper=not lower)


_STRUCTURES = {
    None: "general", "gen": "general", "general": "general", "sym": "symmetric",
    "symmetric": "symmetric", "her": "hermitian", "hermitian": "hermitian",
    "pos": "positive definite", "positive definite": "positive definite",
    "diagonal": "diagonal", "tridiagonal": "tridiagonal", "banded": "banded",
    "upper triangular": "upper triangular", "lower triangular": "lower triangular",
}


def _structure(assume_a, allowed=None):
  structure = _STRUCTURES.get(assume_a) if isinstance(assume_a, (str, type(None))) else None
  if structure is None or (allowed is not None and structure not in allowed):
    raise ValueError(f"{assume_a} is not a recognized matrix structure")
  return structure


def _check_singular_diagonal(d):
  try:
    value = concrete(d, "solve")
  except errors.ConcretizationError:
    return
  if np.any(value == 0):
    raise LinAlgError("Matrix is singular.")


def _structured_solve(a, b, structure, lower, transposed):
  """x with op(a) x = b, a read as `structure` says."""
  if structure in ("general", "banded"):  # a banded matrix is zero outside its band
    return dnp.linalg.solve(_mT(a) if transposed else a, b)
  if structure in ("symmetric", "hermitian"):
    return dnp.linalg.solve(_symmetric(a, lower), b)
  if structure == "positive definite":
    return cho_solve((dnp.linalg.cholesky(a, upper=not lower), lower), b)
  if structure in ("upper triangular", "lower triangular"):
    return solve_triangular(a, b, trans=int(transposed), lower=structure[0] == "l")
  if structure == "tridiagonal":
    n = shape_of(a)[-1]
    band = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1
    m = dnp.where(band, a, 0)
    return dnp.linalg.solve(_mT(m) if transposed else m, b)
  d = dnp.diagonal(a, axis1=-2, axis2=-1)  # diagonal
  _check_singular_diagonal(d)
  return b / (d if len(shape_of(b)) == 1 else d[..., :, None])


def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
  """Differentiable `scipy.linalg.solve`: x with a x = b (a^T x = b with `transposed`), for a
  (..., N, N) and b (N,) or (..., N, K), batch dims broadcast.

  `assume_a` reads a as SciPy does: 'gen'/'general' (also None and 'banded': the whole
  matrix), 'sym'/'her' (the symmetric matrix of the `lower` triangle; upper by default),
  'pos' (Cholesky of that triangle), 'lower triangular'/'upper triangular', 'tridiagonal',
  'diagonal'. Differentiable in a (in the entries read) and b. Raises numpy.linalg.LinAlgError
  for a singular (or, with 'pos', not positive definite) matrix.

  >>> solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 4.0]), assume_a="pos")
  array([1., 1.])
  """
  structure = _structure(assume_a)
  a, b = _array(a, check_finite), _array(b, check_finite)
  _square(a, "Expected square matrix, got a1.shape={shape}")
  a_shape, b_shape = shape_of(a), shape_of(b)
  if len(b_shape) == 0 or b_shape[0 if len(b_shape) == 1 else -2] != a_shape[-1]:
    raise ValueError(f"incompatible shapes: a1.shape={tuple(a_shape)} and "
                     f"b1.shape={tuple(b_shape)}")
  if transposed and dtype_of(a).kind == "c":
    raise NotImplementedError("scipy.linalg.solve can currently not solve a^T x = b or "
                              "a^H x = b for complex matrices.")
  return _structured_solve(a, b, structure, lower, transposed)


def inv(a, overwrite_a=False, check_finite=True, *, assume_a=None, lower=False):
  """Differentiable `scipy.linalg.inv` of a matrix or a stack of them; `assume_a` ('gen',
  'sym', 'her', 'pos', 'diagonal', 'upper triangular', 'lower triangular') and `lower` read a
  as in `solve`. Its derivative is -inv(a) da inv(a). Raises numpy.linalg.LinAlgError for a
  singular matrix.

  >>> inv(np.array([[2.0, 0.0], [0.0, 4.0]]))
  array([[0.5 , 0.  ],
         [0.  , 0.25]])
  """
  structure = _structure(assume_a, ("general", "symmetric", "hermitian", "positive definite",
                                    "diagonal", "upper triangular", "lower triangular"))
  a = _array(a, check_finite)
  _square(a, "Expected square matrix, got a1.shape={shape}")
  if structure == "general":
    return dnp.linalg.inv(a)
  shape = shape_of(a)
  dtype = dtype_of(a) if dtype_of(a).kind in "fc" else np.dtype(np.float64)
  eye = dnp.broadcast_to(np.eye(shape[-1], dtype=dtype), shape)
  return _structured_solve(a, eye, structure, lower, False)


def det(a, overwrite_a=False, check_finite=True):
  """Differentiable `scipy.linalg.det` of a matrix or a stack of them, in double precision
  (float64 or complex128, as SciPy). Its derivative is the transposed adjugate, exact at
  singular matrices too (see dfdx.numpy.linalg.det).

  >>> float(det(np.array([[1.0, 2.0], [3.0, 4.0]])))
  -2.0
  """
  a = _array(a, check_finite)
  _square(a, "Last 2 dimensions of the array must be square but received shape {shape}.")
  if dtype_of(a).kind in "fc":  # SciPy computes in double precision
    a = dnp.asarray(a, np.result_type(dtype_of(a), np.float64))
  return dnp.linalg.det(a)


# ---- eigh, svd ---------------------------------------------------------------------------------

_EIGH_DRIVERS = (None, "ev", "evd", "evr", "evx", "gv", "gvd", "gvx")


def _index_subset(subset, n):
  lo, hi = (int(i) for i in subset)
  if not 0 <= lo <= hi < n:
    raise ValueError("Requested eigenvalue indices are not valid. Valid range is "
                     f"[0, {n - 1}] and start <= end, but start={lo}, end={hi} is given")
  return slice(lo, hi + 1)


def _value_subset(w, subset):
  lo, hi = (float(v) for v in subset)
  if len(shape_of(w)) != 1:
    raise ValueError("eigh: subset_by_value is supported for a single matrix, not a stack.")
  try:
    values = concrete(w, "eigh's subset_by_value")
  except errors.ConcretizationError as e:
    raise errors.ConcretizationError(
        "eigh: subset_by_value selects a number of eigenvalues that depends on their values, "
        "which are not known here (under vmap or jit). Use subset_by_index, or select with "
        "dfdx.numpy.where.") from e
  return np.flatnonzero((values > lo) & (values <= hi))


def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None,  # noqa: A002
         driver=None):
  """Differentiable `scipy.linalg.eigh`: ascending eigenvalues w and eigenvectors v (columns)
  of the symmetric (Hermitian) matrix that a's lower triangle (upper with lower=False)
  defines; with `b` (read from the same triangle, positive definite), of the generalized
  problem a v = w b v (type=1), a b v = w v (2) or b a v = w v (3), eigenvectors normalized
  as SciPy's (v^H b v = I for types 1 and 2, v^H b^-1 v = I for type 3): through the Cholesky
  factor b = L L^H, the standard problem of L^-1 a L^-H (type 1) or L^H a L (2, 3).

  `eigvals_only` returns w alone; `subset_by_index` ([lo, hi], inclusive) selects eigenpairs
  by rank, `subset_by_value` ((lo, hi]) by value (concrete values only: its result's size
  depends on them). The eigenvalues' derivative is exact at repeated eigenvalues; see
  dfdx.numpy.linalg.eigh for the eigenvectors'.

  >>> eigh(np.array([[2.0, 1.0], [1.0, 2.0]]), eigvals_only=True)
  array([1., 3.])
  """
  if driver not in _EIGH_DRIVERS:
    raise ValueError(f'"{driver}" is unknown. Possible values are "None", "ev", "evd", '
                     '"evr", "evx", "gv", "gvd", "gvx".')
  if type not in (1, 2, 3):
    raise ValueError("'type' keyword only accepts 1, 2, and 3 as values")
  if subset_by_index is not None and subset_by_value is not None:
    raise ValueError("Either index or value subset can be requested.")
  a = _array(a, check_finite)
  _square(a, "expected square 'a' matrix, got shape {shape}")
  uplo = "L" if lower else "U"
  if b is None:
    w, v = dnp.linalg.eigh(a, UPLO=uplo)
  else:
    b = _array(b, check_finite)
    _square(b, "expected square 'b' matrix, got shape {shape}")
    if shape_of(b)[-1] != shape_of(a)[-1]:
      raise ValueError(f"wrong b dimensions {tuple(shape_of(b))}, should be "
                       f"{tuple(shape_of(a))}")
    w, v = _generalized_eigh(_symmetric(a, lower), b, lower, type)
  if subset_by_index is not None:
    keep = _index_subset(subset_by_index, shape_of(a)[-1])
    w, v = w[..., keep], v[..., :, keep]
  elif subset_by_value is not None:
    keep = _value_subset(w, subset_by_value)
    w, v = w[keep], v[:, keep]
  return w if eigvals_only else (w, v)


def _generalized_eigh(a, b, lower, kind):
  factor = dnp.linalg.cholesky(b, upper=not lower)
  low = factor if lower else dnp.conj(_mT(factor))  # b = low low^H
  if kind == 1:  # L^-1 a L^-H: two triangular solves (a Hermitian)
    c = solve_triangular(low, dnp.conj(_mT(solve_triangular(low, a, lower=True))), lower=True)
  else:  # L^H a L
    c = dnp.matmul(dnp.conj(_mT(low)), dnp.matmul(a, low))
  w, u = dnp.linalg.eigh(c, UPLO="L")
  if kind == 3:
    return w, dnp.matmul(low, u)
  return w, solve_triangular(low, u, trans=2, lower=True)  # L^-H u


def svd(a, full_matrices=True, compute_uv=True, overwrite_a=False, check_finite=True,
        lapack_driver="gesdd"):
  """Differentiable `scipy.linalg.svd`: (U, s, Vh) with a = U diag(s) Vh, or s alone without
  `compute_uv`; U and Vh square with `full_matrices` (SciPy's default), reduced otherwise.
  Stacks of matrices too. The singular values' derivative is exact at repeated values; see
  dfdx.numpy.linalg.svd for the singular vectors'.

  >>> svd(np.array([[3.0, 0.0], [0.0, -2.0]]), compute_uv=False)
  array([3., 2.])
  """
  if lapack_driver not in ("gesdd", "gesvd"):
    raise ValueError(f'lapack_driver must be "gesdd" or "gesvd", not "{lapack_driver}"')
  a = _array(a, check_finite)
  if len(shape_of(a)) < 2:
    raise ValueError("expected matrix")
  out = dnp.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)
  return tuple(out) if compute_uv else out


# ---- qr ----------------------------------------------------------------------------------------


def _column_pivots(a):
  """SciPy's column pivots of a's QR (int32), from values (a permutation has no derivative)."""
  def pivots(x):
    return np.asarray(scipy_linalg().qr(np.asarray(x), mode="r", pivoting=True)[1], np.int32)
  if not _traced(a):
    return pivots(a)
  n = shape_of(a)[-1]
  (out,) = pure_callback(lambda x: [pivots(x)], [ShapeDtypeStruct((n,), np.int32)],
                         ew.stop_gradient(a))
  return out


def qr(a, overwrite_a=False, lwork=None, mode="full", pivoting=False, check_finite=True):
  """Differentiable `scipy.linalg.qr` of an (M, N) matrix (or a stack): (Q, R) with Q (M, M)
  and R (M, N) in mode 'full' (SciPy's default), Q (M, K) and R (K, N) in 'economic' (K =
  min(M, N)), (R,) in 'r' (R of shape (M, N)). With `pivoting`, also the column permutation P
  (a[:, P] = Q R), found by SciPy on values (it has no derivative); the factors differentiate
  as the QR of a[:, P]. Mode 'raw' is SciPy's own, on values that are not traced. The
  derivative is that of full-rank matrices (see dfdx.numpy.linalg.qr).

  >>> q, r = qr(np.array([[3.0, 1.0], [4.0, 2.0]]))
  >>> r
  array([[-5. , -2.2],
         [ 0. ,  0.4]])
  """
  if mode not in ("full", "r", "economic", "raw"):
    raise ValueError("Mode argument should be one of ['full', 'r', 'economic', 'raw']")
  a = _array(a, check_finite)
  if len(shape_of(a)) < 2:
    raise ValueError("expected a 2-D array")
  if mode == "raw":
    if _traced(a):
      raise NotImplementedError(
          "dfdx.scipy.linalg.qr: mode='raw' (LAPACK's Householder reflectors) is not "
          "supported on traced values; use mode='full', 'economic' or 'r'.")
    return scipy_linalg().qr(a, mode="raw", pivoting=pivoting, check_finite=False)
  out = ()
  if pivoting:
    if len(shape_of(a)) != 2:
      raise ValueError("dfdx.scipy.linalg.qr: pivoting is supported for a single matrix, not "
                       "a stack.")
    perm = _column_pivots(a)
    a, out = dnp.take(a, perm, axis=-1), (perm,)
  q, r = dnp.linalg.qr(a, mode="reduced" if mode == "economic" else "complete")
  return (r,) + out if mode == "r" else (q, r) + out


# ---- lu ----------------------------------------------------------------------------------------


def _row_permutation(pivots, m):
  """The rows perm (a[perm] = L U) of LAPACK's row interchanges (rows i <-> pivots[i])."""
  perm = np.broadcast_to(np.arange(m), pivots.shape[:-1] + (m,)).copy()
  for index in np.ndindex(pivots.shape[:-1]):
    p = perm[index]
    for i, j in enumerate(pivots[index]):
      p[i], p[j] = p[j], p[i]
  return perm


def _tall_rows(a):
  """The row permutation of the LU of tall matrices (m > n), from values (no derivative)."""
  shape = shape_of(a)

  def rows(x):
    x = np.asarray(x)
    factor = scipy_linalg().lu_factor
    pivots = np.stack([factor(x[i])[1] for i in np.ndindex(x.shape[:-2])]) if x.ndim > 2 \
        else factor(x)[1]
    return _row_permutation(pivots.reshape(x.shape[:-2] + (-1,)), x.shape[-2])
  if not _traced(a):
    return rows(a)
  (out,) = pure_callback(lambda x: [rows(x)], [ShapeDtypeStruct(shape[:-1], np.int64)],
                         ew.stop_gradient(a))
  return out


def _take_rows(x, perm):
  return dnp.take_along_axis(x, perm[..., :, None], axis=-2)


def _unit_lower(lu_packed):
  n = shape_of(lu_packed)[-1]
  return dnp.tril(lu_packed, -1) + np.eye(n, dtype=dtype_of(lu_packed))


def _lu_parts(a):
  """(perm, L, U) with a[perm] = L U, L (M, K) unit lower, U (K, N) upper."""
  m, n = shape_of(a)[-2:]
  if m > n:  # the rows SciPy's LU picks, then the LU of the top square block of a[perm]
    perm = _tall_rows(a)
    c = _take_rows(a, perm)
    packed, piv = lu_factor(c[..., :n, :])
    top = lu_pivots_to_permutation(piv)  # (the identity, but for exact ties)
    upper = dnp.triu(packed)
    below = _mT(solve_triangular(packed, _mT(c[..., n:, :]), trans=1))  # c2 U^-1
    perm = dnp.concatenate([dnp.take_along_axis(perm[..., :n], top, axis=-1),
                            perm[..., n:]], axis=-1)
    lower = dnp.concatenate([_unit_lower(packed), below], axis=-2)
    return perm, lower, upper
  packed, piv = lu_factor(a[..., :, :m])
  perm = lu_pivots_to_permutation(piv)
  upper = dnp.triu(packed)
  if n > m:  # U's right block: L^-1 (a[perm])'s right block
    right = solve_triangular(packed, _take_rows(a[..., :, m:], perm), lower=True,
                             unit_diagonal=True)
    upper = dnp.concatenate([upper, right], axis=-1)
  return perm, _unit_lower(packed), upper


def _inverse(perm):
  return dnp.argsort(perm, axis=-1)


def lu(a, permute_l=False, overwrite_a=False, check_finite=True, p_indices=False):
  """Differentiable `scipy.linalg.lu` of an (M, N) matrix (or a stack): (P, L, U) with a = P L
  U, L (M, K) unit lower triangular, U (K, N) upper triangular (K = min(M, N)), P a
  permutation matrix in a's dtype; with `p_indices`, P as row indices p (a = L[p] U); with
  `permute_l`, (P L, U). The pivots are SciPy's (partial pivoting), found on values; L and U
  differentiate as the LU with those pivots (dfdx.scipy.linalg.lu_factor's rule, and for
  non-square matrices triangular solves for the extra rows or columns). Needs SciPy.

  >>> p, l, u = lu(np.array([[1.0, 2.0], [3.0, 4.0]]))
  >>> l
  array([[1.        , 0.        ],
         [0.33333333, 1.        ]])
  """
  a = _array(a, check_finite)
  shape = shape_of(a)
  if len(shape) < 2:
    raise ValueError("The input array must be at least two-dimensional.")
  if dtype_of(a).kind not in "fc":
    a = dnp.asarray(a, np.float64)
  m, n = shape[-2:]
  k = min(m, n)
  if k == 0:  # nothing to factor: SciPy's empty results (P empty too)
    lower, upper = np.zeros(shape[:-2] + (m, 0), dtype_of(a)), np.zeros(shape[:-2] + (0, n),
                                                                         dtype_of(a))
    if permute_l:
      return lower, upper
    p = np.zeros((0,), np.int32) if p_indices else np.zeros((0, 0), dtype_of(a))
    return p, lower, upper
  perm, lower, upper = _lu_parts(a)
  rows = _inverse(perm)  # a = L[rows] U
  if permute_l:
    return _take_rows(lower, rows), upper
  if p_indices:
    return dnp.asarray(rows, np.int32), lower, upper
  return np.eye(m, dtype=dtype_of(lower))[rows] if not _traced(rows) else \
      dnp.asarray(dnp.arange(m) == rows[..., :, None], dtype_of(lower)), lower, upper


# ---- lstsq, norm -------------------------------------------------------------------------------


def lstsq(a, b, cond=None, overwrite_a=False, overwrite_b=False, check_finite=True,
          lapack_driver=None):
  """Differentiable `scipy.linalg.lstsq`: (x, residues, rank, s) minimizing |b - a x|, for a
  (M, N) and b (M,) or (M, K). residues holds the squared residual norms when M > N and a has
  full rank (a scalar for 1-D b), else it is empty; s holds the singular values
  (lapack_driver='gelsy' gives empty residues and s None, as SciPy). Singular values below
  cond times the largest count as 0 (cond=None: the machine precision). The derivatives of x,
  residues and s are those of the problem of this rank (see dfdx.numpy.linalg.lstsq).

  >>> x, res, rank, s = lstsq(np.array([[1.0], [1.0]]), np.array([1.0, 3.0]))
  >>> x, float(res), rank
  (array([2.]), 2.0, 1)
  """
  if lapack_driver not in (None, "gelsd", "gelsy", "gelss"):
    raise ValueError(f'LAPACK driver "{lapack_driver}" is not found')
  a, b = _array(a, check_finite), _array(b, check_finite)
  if len(shape_of(a)) != 2:
    raise ValueError("Input array a should be 2D")
  m, n = shape_of(a)
  b_shape = shape_of(b)
  if len(b_shape) not in (1, 2):
    raise ValueError("Input array b should be 1D or 2D")
  if b_shape[0] != m:
    raise ValueError(f"Shape mismatch: a and b should have the same number of rows ({m} != "
                     f"{b_shape[0]}).")
  dtype = np.result_type(dtype_of(a), dtype_of(b), np.float32)
  if cond is None:
    cond = float(np.finfo(dtype).eps)
  x, residues, rank, s = dnp.linalg.lstsq(a, b, rcond=cond)
  if len(b_shape) == 1 and shape_of(residues) == (1,):
    residues = residues[0]
  rank = rank if isinstance(rank, Tracer) else int(rank)
  if lapack_driver == "gelsy":  # (SciPy's gelsy gives neither residues nor singular values)
    return x, np.zeros((0,), dtype_of(s)), rank, None
  return x, residues, rank, s


def norm(a, ord=None, axis=None, keepdims=False, check_finite=True):  # noqa: A002
  """Differentiable `scipy.linalg.norm`: a vector or matrix norm, as numpy.linalg.norm (ord,
  axis, keepdims alike; where SciPy returns a Python float, so does this). The derivative of
  the 2-norm at 0 is 0 (see dfdx.numpy.linalg.norm).

  >>> float(norm(np.array([3.0, 4.0])))
  5.0
  """
  a = _array(a, check_finite)
  out = dnp.linalg.norm(a, ord=ord, axis=axis, keepdims=keepdims)
  if _lapack_norm(a, ord, axis, keepdims):  # SciPy's result: a Python float (float64 traced)
    out = float(out) if not _traced(out) else dnp.asarray(out, np.float64)
  return out


def _lapack_norm(a, ord, axis, keepdims):  # noqa: A002
  """Whether SciPy computes this norm with BLAS's nrm2 (the 2-norm of a vector) or LAPACK's
  lange (1- and inf-norms of contiguous matrices), which return Python floats."""
  if not (math.prod(shape_of(a)) and dtype_of(a).char in "fdFD" and axis is None
          and not keepdims):
    return False
  if len(shape_of(a)) == 1:
    return ord in (None, 2)
  if len(shape_of(a)) != 2 or ord not in (1, np.inf) or _traced(a):
    return False
  a = np.asarray(a)
  return np.isfortran(a) or np.isfortran(a.T)


# ---- block_diag, toeplitz, circulant -----------------------------------------------------------


def block_diag(*arrs):
  """Differentiable `scipy.linalg.block_diag`: the block diagonal matrix of the arguments (each
  made at least 2-d: a 1-d array is a row; [] and [[]] are (1, 0) blocks), in the dtype they
  promote to; leading batch dims broadcast.

  >>> block_diag(np.array([[1.0, 2.0]]), 3.0)
  array([[1., 2., 0.],
         [0., 0., 3.]])
  """
  if not arrs:
    arrs = ([],)
  arrs = [dnp.atleast_2d(dnp.asarray(a)) for a in arrs]
  dtype = np.result_type(*[dtype_of(a) for a in arrs])
  batch = np.broadcast_shapes(*[shape_of(a)[:-2] for a in arrs])
  arrs = [dnp.broadcast_to(dnp.asarray(a, dtype), batch + shape_of(a)[-2:]) for a in arrs]
  widths = [shape_of(a)[-1] for a in arrs]
  total = sum(widths)
  rows, start = [], 0
  for a, width in zip(arrs, widths):
    height = shape_of(a)[-2]
    left = np.zeros(batch + (height, start), dtype)
    right = np.zeros(batch + (height, total - start - width), dtype)
    rows.append(dnp.concatenate([left, a, right], axis=-1))
    start += width
  return dnp.concatenate(rows, axis=-2)


def _diagonals(values, index):
  """values[..., index] for an integer (rows, cols) index array."""
  return dnp.take(values, index, axis=-1)


def toeplitz(c, r=None):
  """Differentiable `scipy.linalg.toeplitz`: the matrix with first column c and first row r
  (r[0] is ignored; r defaults to conj(c)), T[i, j] = c[i - j] below the diagonal and r[j - i]
  above. c (..., M) and r (..., N) with batch dims that broadcast give (..., M, N).

  >>> toeplitz(np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0]))
  array([[1., 4.],
         [2., 1.],
         [3., 2.]])
  """
  c = dnp.atleast_1d(dnp.asarray(c))
  r = dnp.conj(c) if r is None else dnp.atleast_1d(dnp.asarray(r))
  m, n = shape_of(c)[-1], shape_of(r)[-1]
  batch = np.broadcast_shapes(shape_of(c)[:-1], shape_of(r)[:-1])
  c = dnp.broadcast_to(c, batch + (m,))
  r = dnp.broadcast_to(r, batch + (n,))
  values = dnp.concatenate([dnp.flip(c, axis=-1), r[..., 1:]], axis=-1)
  index = (m - 1) - np.arange(m)[:, None] + np.arange(n)[None, :]
  return _diagonals(values, index)


def circulant(c):
  """Differentiable `scipy.linalg.circulant`: the circulant matrix with first column c,
  C[i, j] = c[(i - j) mod n]; c (..., N) gives (..., N, N).

  >>> circulant(np.array([1.0, 2.0, 3.0]))
  array([[1., 3., 2.],
         [2., 1., 3.],
         [3., 2., 1.]])
  """
  c = dnp.atleast_1d(dnp.asarray(c))
  n = shape_of(c)[-1]
  index = np.subtract.outer(np.arange(n), np.arange(n)) % max(n, 1)
  return _diagonals(c, index)
