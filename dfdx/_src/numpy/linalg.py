"""`dfdx.numpy.linalg`: numpy.linalg made differentiable, with its semantics on stacks of
matrices (leading batch dims), its dtypes, result tuples and errors.

With no traced operand each function calls NumPy itself. Traced calls use the primitives of
`dfdx._src.ops.linalg` (solve, det, slogdet, cholesky, qr, eigh, eig, svd, pinv, lstsq) and
compose the rest (inv, eigvalsh, svdvals, matrix_power, multi_dot, matrix_rank, cond and the
norms) from them; this module holds no derivative rules. The derivatives are documented on
each function; see the primitives' module for the rules and how they stay finite.

eig and eigvals have complex results in general: their derivatives follow dfdx's complex
convention (gradients of real-valued functions are df/dx + i df/dy).
"""
from __future__ import annotations

import operator

import numpy as np

from dfdx._src.core import Tracer
from dfdx._src.errors import ConcretizationError
from dfdx._src.ops import contraction as con
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import linalg as linalg_ops
from dfdx._src.ops import reduction as red
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.contractions import _operand, _traced, dot, matmul
from dfdx._src.numpy.util import dtype as dtype_of, normalize_axis, shape as shape_of

__all__ = ["norm", "matrix_norm", "vector_norm", "det", "slogdet", "inv", "pinv", "solve",
           "lstsq", "cholesky", "qr", "eigh", "eigvalsh", "svd", "svdvals", "matrix_power",
           "multi_dot", "matrix_rank", "cond", "eig", "eigvals", "tensorinv", "tensorsolve",
           "matmul", "trace", "diagonal", "outer", "cross", "matrix_transpose", "tensordot",
           "vecdot", "LinAlgError"]

LinAlgError = np.linalg.LinAlgError

# NumPy's result tuples (named tuples, which dfdx's pytrees handle).
SlogdetResult = type(np.linalg.slogdet(np.eye(1)))
EighResult = type(np.linalg.eigh(np.eye(1)))
QRResult = type(np.linalg.qr(np.eye(1)))
SVDResult = type(np.linalg.svd(np.eye(1)))
EigResult = type(np.linalg.eig(np.eye(1)))


def _square(a, name):
  """Raise NumPy's LinAlgError unless `a` is a stack of square matrices."""
  shape = shape_of(a)
  if len(shape) < 2:
    raise LinAlgError(f"{len(shape)}-dimensional array given. Array must be at least "
                      f"two-dimensional (in dfdx.numpy.linalg.{name}).")
  if shape[-1] != shape[-2]:
    raise LinAlgError(f"Last 2 dimensions of the array must be square (in "
                      f"dfdx.numpy.linalg.{name}, got shape {shape}).")


def _float(x):
  """x in numpy.linalg's floating dtype (integers and booleans become float64)."""
  dtype = linalg_ops._linalg_dtype(dtype_of(x))
  return shape_ops.convert_element_type(x, dtype)


# ---- determinants and inverses --------------------------------------------------------------
def det(a):
  """Differentiable `numpy.linalg.det`, for stacks of matrices.

  Its derivative is the transposed adjugate, adj(a)^T = det(a) inv(a)^T where a is
  invertible; dfdx computes the adjugate from an SVD, so the derivative is finite and exact
  at singular matrices too (and so is the second derivative).

  >>> import dfdx
  >>> dfdx.grad(det)(np.array([[2.0, 0.0], [0.0, 4.0]]))
  array([[4., 0.],
         [0., 2.]])
  >>> dfdx.grad(det)(np.array([[1.0, 2.0], [2.0, 4.0]]))  # singular: the adjugate
  array([[ 4., -2.],
         [-2.,  1.]])
  """
  if not _traced(a):
    return np.linalg.det(a)
  return linalg_ops.det(_operand(a))


def slogdet(a):
  """Differentiable `numpy.linalg.slogdet`: (sign, logabsdet) of stacks of matrices.

  The derivative of logabsdet is inv(a)^T (the sign has a zero derivative); at a singular
  matrix, where logabsdet is -inf, it raises LinAlgError.

  >>> import dfdx
  >>> dfdx.grad(lambda a: slogdet(a).logabsdet)(np.array([[2.0, 0.0], [0.0, 4.0]]))
  array([[0.5 , 0.  ],
         [0.  , 0.25]])
  """
  if not _traced(a):
    return np.linalg.slogdet(a)
  sign, logabsdet = linalg_ops.slogdet(_operand(a))
  return SlogdetResult(sign, logabsdet)


def inv(a):
  """Differentiable `numpy.linalg.inv`, for stacks of matrices: solve(a, I)."""
  if not _traced(a):
    return np.linalg.inv(a)
  return linalg_ops.inv(_operand(a))


def solve(a, b):
  """Differentiable `numpy.linalg.solve`, in a and in b. As in NumPy 2, b is a vector only
  when b.ndim == 1; otherwise it is a stack of matrices whose batch dims broadcast with a's."""
  if not _traced(a, b):
    return np.linalg.solve(a, b)
  return linalg_ops.solve(_operand(a), _operand(b))


_NO_VALUE = object()


def _pinv_rcond(a, rcond, rtol):
  """numpy.linalg.pinv's cutoff, as one float (dfdx supports scalar cutoffs on traced
  values)."""
  if rcond is None:
    if rtol is _NO_VALUE:
      rcond = 1e-15
    elif rtol is None:
      rcond = max(shape_of(a)[-2:]) * np.finfo(linalg_ops._linalg_dtype(dtype_of(a))).eps
    else:
      rcond = rtol
  elif rtol is not _NO_VALUE:
    raise ValueError("`rtol` and `rcond` can't be both set.")
  return _scalar_cutoff(rcond, "pinv", "rcond")


def _scalar_cutoff(value, name, what):
  if isinstance(value, Tracer) or np.ndim(value) != 0:
    raise NotImplementedError(
        f"dfdx.numpy.linalg.{name}: {what} must be one number on traced values (got "
        f"{type(value).__name__} of shape {shape_of(value)}). Call it once per cutoff, or use "
        f"numpy.linalg.{name} on values that are not traced.")
  return float(value)


def pinv(a, rcond=None, hermitian=False, *, rtol=_NO_VALUE):
  """Differentiable `numpy.linalg.pinv` (Moore-Penrose pseudo-inverse) of stacks of matrices.

  Its derivative is Golub and Pereyra's, which holds where the rank (the number of singular
  values above the cutoff) does not change. With `hermitian`, a's lower triangle is read.
  On traced values `rcond`/`rtol` must be a single number.

  >>> import dfdx
  >>> dfdx.grad(lambda a: pinv(a).sum())(np.array([[2.0], [0.0]]))
  array([[-0.25],
         [ 0.25]])
  """
  if not _traced(a):
    kwargs = {} if rtol is _NO_VALUE else {"rtol": rtol}
    return np.linalg.pinv(a, rcond, hermitian, **kwargs)
  a = _operand(a)
  return linalg_ops.pinv(a, _pinv_rcond(a, rcond, rtol), hermitian)


def lstsq(a, b, rcond=None):
  """Differentiable `numpy.linalg.lstsq`: (x, residuals, rank, s) for a of shape (M, N) and b
  of shape (M,) or (M, K).

  The derivatives of x (in a and b), of the residuals and of s are those of a full-rank
  problem (they hold where the rank does not change); rank has none. On traced values the
  residuals follow NumPy (empty when rank < N or M <= N) wherever the rank is known; under
  vmap and jit, where it is not, they are the sums of squared residuals whenever M > N.

  >>> import dfdx
  >>> a, b = np.array([[1.0], [1.0]]), np.array([1.0, 3.0])
  >>> dfdx.grad(lambda b: lstsq(a, b)[0].sum())(b)
  array([0.5, 0.5])
  """
  if not _traced(a, b):
    return np.linalg.lstsq(a, b, rcond)
  a, b = _operand(a), _operand(b)
  a_shape, b_shape = shape_of(a), shape_of(b)
  for x in (a_shape, b_shape):
    if len(x) != 2 and not (x is b_shape and len(x) == 1):
      raise LinAlgError(f"{len(x)}-dimensional array given. Array must be two-dimensional")
  if a_shape[0] != b_shape[0]:
    raise LinAlgError("Incompatible dimensions")
  m, n = a_shape
  if rcond is None:
    rcond = np.finfo(np.float64).eps * max(m, n)
  vector = len(b_shape) == 1
  if vector:
    b = shape_ops.reshape(b, b_shape + (1,))
  x, residuals, rank, s = linalg_ops.lstsq(a, b, _scalar_cutoff(rcond, "lstsq", "rcond"))
  if vector:
    x = shape_ops.reshape(x, (n,))
  known_rank = _concrete_int(rank)
  if known_rank is not None and known_rank < n < m:  # as NumPy: no residuals when rank < N
    residuals = shape_ops.slice_in_dim(residuals, 0, 0, 0)
  return x, residuals, rank if isinstance(rank, Tracer) else np.int32(rank), s


def _concrete_int(x):
  """int(x), or None where x has no concrete value (under vmap or jit)."""
  try:
    return int(x)
  except ConcretizationError:
    return None


# ---- decompositions ---------------------------------------------------------------------------
def cholesky(a, /, *, upper=False):
  """Differentiable `numpy.linalg.cholesky`: L with L L^T = a (a's lower triangle is read), or
  with `upper` U with U^T U = a (its upper triangle is read), for stacks of matrices.

  The derivative is Murray's (2016); with respect to the triangle that is not read it is 0.

  >>> import dfdx
  >>> dfdx.grad(lambda a: cholesky(a)[1, 1])(np.array([[4.0, 2.0], [2.0, 2.0]]))
  array([[ 0.125,  0.   ],
         [-0.5  ,  0.5  ]])
  """
  if not _traced(a):
    return np.linalg.cholesky(a, upper=upper)
  return linalg_ops.cholesky(_operand(a), upper)


def qr(a, mode="reduced"):
  """Differentiable `numpy.linalg.qr` of stacks of matrices, modes 'reduced' (q, r),
  'complete' (q, r) and 'r' (r only).

  The derivative is implemented for matrices of full rank, tall, square or wide (M < N,
  where Q comes from the first M columns), in every mode but 'raw' (not supported on traced
  values). In mode 'complete' the extra columns of a tall matrix's q are any orthonormal
  basis of the complement: their derivative is the least rotation that keeps q unitary,
  exact for functions of the complement that do not depend on that basis (q_c q_c^T).
  """
  if not _traced(a):
    return np.linalg.qr(a, mode)
  if mode not in ("reduced", "complete", "r", "raw"):
    raise ValueError(f"Unrecognized mode '{mode}'")
  if mode == "raw":
    raise NotImplementedError(
        "dfdx.numpy.linalg.qr: mode='raw' (LAPACK's Householder reflectors) is not supported "
        "on traced values; use mode='reduced', 'complete' or 'r'.")
  q, r = linalg_ops.qr(_operand(a), mode == "complete")
  return r if mode == "r" else QRResult(q, r)


def _uplo(UPLO):
  uplo = UPLO.upper() if isinstance(UPLO, str) else UPLO
  if uplo not in ("L", "U"):
    raise ValueError("UPLO argument must be 'L' or 'U'")
  return uplo == "L"


def eigh(a, UPLO="L"):  # noqa: N803  (NumPy's name)
  """Differentiable `numpy.linalg.eigh`: (eigenvalues, eigenvectors) of the symmetric
  matrices that a's lower (UPLO='L') or upper ('U') triangles define, for stacks.

  The eigenvalues' derivative, diag(V^H da V), needs no eigenvalue gaps, so it is exact
  and finite at repeated eigenvalues too. The eigenvectors' derivative divides by the gaps.
  Eigenvectors of a repeated eigenvalue are not differentiable (any rotation within their
  eigenspace is as good), but functions that do not depend on that choice, such as
  v diag(f(w)) v^T, are. For them the gradient at an exactly repeated eigenvalue is a limit:
  a reverse pass (grad, value_and_grad, vjp, jacrev, also under vmap and jit) that meets a
  tie is computed once more with the eigenvalues split by an infinitesimal, which gives the
  limit exactly (see dfdx/_src/ops/gaps.py). Forward mode and higher orders keep the first
  pass's answer there, in which the factor of a zero gap is 0: finite, not exact. Complex
  eigenvectors are fixed in phase by diag(V^H dV) = 0.

  >>> import dfdx
  >>> def f(a):  # sum(a) as eigh reads it (the lower triangle), through the eigenvectors
  ...   w, v = eigh(a)
  ...   return ((v * w) @ v.T).sum()
  >>> dfdx.grad(f)(np.eye(2))  # a repeated eigenvalue: exact
  array([[1., 0.],
         [2., 1.]])
  """
  if not _traced(a):
    return np.linalg.eigh(a, UPLO)
  w, v = linalg_ops.eigh(_operand(a), _uplo(UPLO))
  return EighResult(w, v)


def eigvalsh(a, UPLO="L"):  # noqa: N803  (NumPy's name)
  """Differentiable `numpy.linalg.eigvalsh`: ascending eigenvalues of the symmetric matrices
  defined by a's lower (or upper) triangles. Their derivative is exact at repeated
  eigenvalues (see eigh)."""
  if not _traced(a):
    return np.linalg.eigvalsh(a, UPLO)
  return linalg_ops.eigh(_operand(a), _uplo(UPLO))[0]


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
  """Differentiable `numpy.linalg.svd` of stacks of matrices: (U, S, Vh), or S alone without
  `compute_uv`.

  The singular values' derivative, Re diag(U^H da V), is exact at repeated singular values.
  The singular vectors' derivative is that of the reduced decomposition; it divides by
  s_j - s_i, s_j + s_i and s_i. The vectors of a repeated (or zero) singular value are not
  differentiable, but functions that do not depend on their choice, such as u diag(f(s)) vh,
  are: at such ties a reverse pass is computed again with the singular values split, which
  gives their gradient exactly, as for eigh. Elsewhere (forward mode) a zero gap's
  factor is 0, so no NaN or inf appears. With
  full_matrices=True (NumPy's default) and a non-square matrix, the extra vectors are any
  orthonormal basis of a complement: their derivative is the least rotation that keeps u
  (or vh) unitary, exact for functions that do not depend on that basis.
  With `hermitian` on traced values, dfdx decomposes the symmetric matrix defined by a's lower
  triangle with the general SVD: S is NumPy's, U and Vh may differ from it by signs.
  """
  if not _traced(a):
    return np.linalg.svd(a, full_matrices, compute_uv, hermitian)
  a = _operand(a)
  if hermitian:
    _square(a, "svd")
    a = linalg_ops._symmetrized(_float(a), True)
  out = linalg_ops.svd(a, full_matrices, compute_uv)
  return SVDResult(*out) if compute_uv else out[0]


def svdvals(x, /):
  """Differentiable `numpy.linalg.svdvals`: the singular values (descending) of stacks of
  matrices; their derivative is exact at repeated singular values."""
  if not _traced(x):
    return np.linalg.svdvals(x)
  return linalg_ops.svd(_operand(x), False, False)[0]


def eig(a):
  """Differentiable `numpy.linalg.eig`: (eigenvalues, eigenvectors) of stacks of general
  square matrices, real or complex, with NumPy's results: unit-norm eigenvector columns whose
  largest-modulus entry is real (LAPACK's normalization), complex unless the input is real and
  every eigenvalue is real, in which case NumPy returns real arrays. dfdx decides that on
  concrete values; under jit and vmap, where the values are abstract, the results stay
  complex (with zero imaginary parts there).

  Derivatives (forward and reverse, any order): with A = V diag(w) V^-1 and dA' = V^-1 dA V,
  dw = diag(dA') and dV = V (F o dA' + diag(c)), F_ij = 1 / (w_j - w_i), where c keeps each
  column's norm and the phase of its largest entry fixed, so that dV is the derivative of what
  NumPy returns. F is 0 where two eigenvalues are equal to working precision, so repeated
  eigenvalues give finite results, not NaN: the sum of a repeated eigenvalue's copies has an
  exact derivative, the copies and their eigenvectors are not differentiable there (their
  eigenspace has no preferred basis). A defective matrix (V singular) has no derivative.

  >>> import dfdx
  >>> dfdx.grad(lambda a: eig(a).eigenvalues[1])(np.array([[1.0, 2.0], [0.0, 3.0]]))
  array([[0., 1.],
         [0., 1.]])
  """
  if not _traced(a):
    return np.linalg.eig(a)
  a = _operand(a)
  _square(a, "eig")
  w, v = linalg_ops.eig(a)
  if _all_real(a, w):
    w, v = ew.real(w), ew.real(v)
  return EigResult(w, v)


def eigvals(a):
  """Differentiable `numpy.linalg.eigvals`: the eigenvalues of stacks of general square
  matrices, with NumPy's dtype rule and the derivative of eig's eigenvalues (see eig)."""
  if not _traced(a):
    return np.linalg.eigvals(a)
  return eig(a).eigenvalues


def _all_real(a, w):
  """Whether NumPy would return eig's results as real arrays: real input with real
  eigenvalues only (decided on concrete values; False where they are abstract)."""
  if dtype_of(a).kind == "c":
    return False
  try:
    w = w.concrete_value("eig") if isinstance(w, Tracer) else w
  except ConcretizationError:
    return False
  return bool(np.all(np.imag(w) == 0))


# ---- products and ranks -----------------------------------------------------------------------
def matrix_power(a, n):
  """Differentiable `numpy.linalg.matrix_power`: a to the integer power n (by repeated
  squaring; negative n through inv(a)), for stacks of square matrices."""
  if not _traced(a):
    return np.linalg.matrix_power(a, n)
  a = _operand(a)
  _square(a, "matrix_power")
  try:
    n = operator.index(n)
  except TypeError as e:
    raise TypeError("exponent must be an integer") from e
  if n == 0:
    shape = shape_of(a)
    return np.broadcast_to(np.eye(shape[-1], dtype=dtype_of(a)), shape).copy()
  if n < 0:
    a, n = linalg_ops.inv(a), -n
  result = z = None
  while n > 0:
    z = a if z is None else con.matmul(z, z)
    n, bit = divmod(n, 2)
    if bit:
      result = z if result is None else con.matmul(result, z)
  return result


def multi_dot(arrays, *, out=None):
  """Differentiable `numpy.linalg.multi_dot`: the product of two or more arrays in the
  cheapest order (NumPy's; the first may be a row vector and the last a column vector)."""
  arrays = list(arrays)
  if not _traced(*arrays):
    return np.linalg.multi_dot(arrays, out=out)
  if out is not None:
    raise TypeError("dfdx.numpy.linalg.multi_dot: out= is not supported on traced values "
                    "(arrays are not modified in place under a transformation); use the "
                    "returned value.")
  n = len(arrays)
  if n < 2:
    raise ValueError("Expecting at least two arrays.")
  if n == 2:
    return dot(arrays[0], arrays[1])
  arrays = [_operand(x) for x in arrays]
  first, last = len(shape_of(arrays[0])), len(shape_of(arrays[-1]))
  if first == 1:
    arrays[0] = shape_ops.reshape(arrays[0], (1,) + shape_of(arrays[0]))
  if last == 1:
    arrays[-1] = shape_ops.reshape(arrays[-1], shape_of(arrays[-1]) + (1,))
  for x in arrays:
    if len(shape_of(x)) != 2:
      raise LinAlgError(f"{len(shape_of(x))}-dimensional array given. Array must be "
                        "two-dimensional")
  dims = [shape_of(x)[0] for x in arrays] + [shape_of(arrays[-1])[1]]
  result = _chain_product(arrays, _chain_order(dims), 0, n - 1)
  if first == 1 and last == 1:
    return shape_ops.reshape(result, ())
  if first == 1 or last == 1:
    return shape_ops.reshape(result, (int(np.prod(shape_of(result))),))
  return result


def _chain_order(p):
  """NumPy's (Cormen's) dynamic program for the cheapest parenthesization of a matrix chain
  with dimensions p: split[i][j] is where the product of matrices i..j splits."""
  n = len(p) - 1
  cost = [[0] * n for _ in range(n)]
  split = [[0] * n for _ in range(n)]
  for length in range(1, n):
    for i in range(n - length):
      j = i + length
      cost[i][j] = None
      for k in range(i, j):
        c = cost[i][k] + cost[k + 1][j] + p[i] * p[k + 1] * p[j + 1]
        if cost[i][j] is None or c < cost[i][j]:
          cost[i][j], split[i][j] = c, k
  return split


def _chain_product(arrays, split, i, j):
  if i == j:
    return arrays[i]
  k = split[i][j]
  return dot(_chain_product(arrays, split, i, k), _chain_product(arrays, split, k + 1, j))


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):  # noqa: N803  (NumPy's name)
  """`numpy.linalg.matrix_rank` on traced values: the number of singular values above the
  tolerance. An integer has no derivative (the result does not depend on how a changes)."""
  if not _traced(A, tol, rtol):
    return np.linalg.matrix_rank(A, tol, hermitian, rtol=rtol)
  a = ew.stop_gradient(_operand(A))
  shape = shape_of(a)
  if len(shape) < 2:  # NumPy: 1 unless every entry is 0
    nonzero = ew.ne(a, 0)
    if shape:
      nonzero = red.reduce_max(nonzero, (0,)) if shape[0] else np.asarray(False)
    return shape_ops.convert_element_type(nonzero, np.int64)
  a = _float(a)
  if hermitian:
    s = ew.abs(linalg_ops.eigh(a, True)[0])
  else:
    s = linalg_ops.svd(a, False, False)[0]
  last = len(shape) - 2  # s's axis
  if tol is None:
    rtol = max(shape[-2:]) * np.finfo(dtype_of(s)).eps if rtol is None else \
        _expand_last(_operand(rtol))
    tol = ew.mul(shape_ops.reshape(_max_or_zero(s, last), shape[:-2] + (1,)), rtol)
  else:
    tol = _expand_last(_operand(tol))
  return red.reduce_sum(shape_ops.convert_element_type(ew.gt(s, tol), np.int64), (last,))


def _expand_last(x):
  return shape_ops.reshape(x, shape_of(x) + (1,))


def cond(x, p=None):
  """Differentiable `numpy.linalg.cond`: the condition number of stacks of matrices in norm
  p (None or +-2 from the singular values; 'fro', 'nuc', +-1, +-inf as norm(x) norm(inv(x)))."""
  if not _traced(x):
    return np.linalg.cond(x, p)
  x = _operand(x)
  shape = shape_of(x)
  if len(shape) >= 2 and 0 in shape[-2:]:
    raise LinAlgError("cond is not defined on empty arrays")
  if p is None or (not isinstance(p, str) and p in (2, -2)):
    s = svdvals(x)
    last = len(shape_of(s)) - 1
    k = shape_of(s)[-1]
    big, small = (shape_ops.slice_in_dim(s, i, i + 1, last) for i in (0, k - 1))
    r = ew.div(small, big) if p == -2 else ew.div(big, small)
    return shape_ops.reshape(r, shape_of(r)[:-1])
  _square(x, "cond")
  x = _float(x)
  return ew.mul(norm(x, p, axis=(-2, -1)), norm(linalg_ops.inv(x), p, axis=(-2, -1)))


def tensorinv(a, ind=2):
  """Differentiable `numpy.linalg.tensorinv`: inv of `a` reshaped to a square matrix (the
  first `ind` axes against the rest), reshaped back."""
  if not _traced(a):
    return np.linalg.tensorinv(a, ind)
  a = _operand(a)
  shape = shape_of(a)
  if ind <= 0:
    raise ValueError("Invalid ind argument.")
  rows = int(np.prod(shape[ind:], dtype=np.int64))
  inverse = linalg_ops.inv(shape_ops.reshape(a, (rows, int(np.prod(shape, dtype=np.int64))
                                                 // max(rows, 1))))
  return shape_ops.reshape(inverse, shape[ind:] + shape[:ind])


def tensorsolve(a, b, axes=None):
  """Differentiable `numpy.linalg.tensorsolve`: x with tensordot(a, x, x.ndim) == b."""
  if not _traced(a, b):
    return np.linalg.tensorsolve(a, b, axes)
  a, b = _operand(a), _operand(b)
  an = len(shape_of(a))
  if axes is not None:
    order = [k for k in range(an) if k not in [normalize_axis(x, an) for x in axes]]
    a = shape_ops.transpose(a, tuple(order) + tuple(normalize_axis(x, an) for x in axes))
  old_shape = shape_of(a)[-(an - len(shape_of(b))):]
  size = int(np.prod(old_shape, dtype=np.int64))
  if int(np.prod(shape_of(a), dtype=np.int64)) != size ** 2:
    raise LinAlgError("Input arrays must satisfy the requirement "
                      "prod(a.shape[b.ndim:]) == prod(a.shape[:b.ndim])")
  x = linalg_ops.solve(shape_ops.reshape(a, (size, size)), shape_ops.reshape(b, (size,)))
  return shape_ops.reshape(x, old_shape)


# ---- NumPy 2's array-API functions in numpy.linalg (the dfdx.numpy ones, last two axes) ------
def _dnp():
  import dfdx.numpy as dnp
  return dnp


def trace(x, /, *, offset=0, dtype=None):
  """Differentiable `numpy.linalg.trace`: traces of the matrices in the last two axes."""
  if not _traced(x):
    return np.linalg.trace(x, offset=offset, dtype=dtype)
  return _dnp().trace(x, offset, -2, -1, dtype)


def diagonal(x, /, *, offset=0):
  """Differentiable `numpy.linalg.diagonal`: diagonals of the matrices in the last two axes."""
  if not _traced(x):
    return np.linalg.diagonal(x, offset=offset)
  return _dnp().diagonal(x, offset, -2, -1)


def outer(x1, x2, /):
  """Differentiable `numpy.linalg.outer` of two vectors."""
  if not _traced(x1, x2):
    return np.linalg.outer(x1, x2)
  n1, n2 = len(shape_of(x1)), len(shape_of(x2))
  if n1 != 1 or n2 != 1:
    raise ValueError(f"Input arrays must be one-dimensional, but they are x1.ndim={n1} and "
                     f"x2.ndim={n2}.")
  return _dnp().outer(x1, x2)


def cross(x1, x2, /, *, axis=-1):
  """Differentiable `numpy.linalg.cross` of (stacks of) 3-element vectors."""
  if not _traced(x1, x2):
    return np.linalg.cross(x1, x2, axis=axis)
  d1, d2 = shape_of(x1)[axis], shape_of(x2)[axis]
  if d1 != 3 or d2 != 3:
    raise ValueError(f"Both input arrays must be (arrays of) 3-dimensional vectors, but they "
                     f"are {d1} and {d2} dimensional instead.")
  return _dnp().cross(x1, x2, axis=axis)


def matrix_transpose(x, /):
  """Differentiable `numpy.linalg.matrix_transpose`: swap the last two axes."""
  if not _traced(x):
    return np.linalg.matrix_transpose(x)
  return _dnp().matrix_transpose(x)


def tensordot(x1, x2, /, *, axes=2):
  """Differentiable `numpy.linalg.tensordot`."""
  if not _traced(x1, x2):
    return np.linalg.tensordot(x1, x2, axes=axes)
  return _dnp().tensordot(x1, x2, axes)


def vecdot(x1, x2, /, *, axis=-1):
  """Differentiable `numpy.linalg.vecdot`: dot products of vectors along `axis`."""
  if not _traced(x1, x2):
    return np.linalg.vecdot(x1, x2, axis=axis)
  return _dnp().vecdot(x1, x2, axis=axis)


# ---- norms ------------------------------------------------------------------------------------
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002  (NumPy's name)
  """Differentiable `numpy.linalg.norm`: vector norms (ord None/2, 1, inf, -inf, 0, any p,
  negative p too) and matrix norms ('fro', 'nuc', 1, -1, 2, -2, inf, -inf), over `axis`
  (None, an int or a pair) with `keepdims`.

  Where a 2-norm, Frobenius or p-norm (p > 0) is zero its derivative does not exist; dfdx
  gives the subgradient 0 there rather than NaN. The matrix norms 2, -2 and 'nuc' are the
  largest, the smallest and the sum of the singular values, whose derivatives are exact at
  repeated singular values (a tie for the largest splits the derivative equally).

  >>> import dfdx
  >>> dfdx.grad(norm)(np.array([3.0, 4.0]))
  array([0.6, 0.8])
  >>> dfdx.grad(lambda a: norm(a, 2))(np.array([[3.0, 0.0], [0.0, 1.0]]))
  array([[1., 0.],
         [0., 0.]])
  """
  if not _traced(x):
    return np.linalg.norm(x, ord, axis, keepdims)
  x = _operand(x)
  if dtype_of(x).kind not in "fc":
    x = shape_ops.convert_element_type(x, np.float64)
  nd = len(shape_of(x))
  if dtype_of(x).kind == "c":
    pair = nd == 2 if axis is None else isinstance(axis, tuple) and len(axis) == 2
    if not (pair and isinstance(ord, (int, str)) and ord in (2, -2, "nuc")):
      x = ew.abs(x)  # norms of the magnitudes (the spectral ones take the complex SVD)
  if axis is None:
    if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
      out = _root(red.reduce_sum(ew.mul(x, x), tuple(range(nd))), 2)
      return shape_ops.reshape(out, (1,) * nd) if keepdims else out
    axis = tuple(range(nd))
  elif not isinstance(axis, tuple):
    try:
      axis = (operator.index(axis),)
    except TypeError as e:
      raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
  if len(axis) == 1:
    return _vector_norm(x, ord, normalize_axis(axis[0], nd), keepdims)
  if len(axis) == 2:
    return _matrix_norm(x, ord, normalize_axis(axis[0], nd), normalize_axis(axis[1], nd),
                        keepdims)
  raise ValueError(f"Improper number of dimensions to norm. (dfdx.numpy.linalg.norm got axis="
                   f"{axis} for an array of rank {nd}: give one axis for a vector norm or two "
                   "for a matrix norm.)")


def matrix_norm(x, /, *, keepdims=False, ord="fro"):  # noqa: A002  (NumPy's name)
  """Differentiable `numpy.linalg.matrix_norm`: norm over the last two axes."""
  if not _traced(x):
    return np.linalg.matrix_norm(x, keepdims=keepdims, ord=ord)
  return norm(x, axis=(-2, -1), keepdims=keepdims, ord=ord)


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):  # noqa: A002  (NumPy's name)
  """Differentiable `numpy.linalg.vector_norm`: the vector norm over all axes (None), one
  axis, or several axes taken together."""
  if not _traced(x):
    return np.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=ord)
  x = _operand(x)
  shape = shape_of(x)
  if axis is None:
    x, axes = shape_ops.reshape(x, (int(np.prod(shape, dtype=np.int64)),)), tuple(
        range(len(shape)))
    out = norm(x, ord, 0)
  elif isinstance(axis, tuple):
    axes = tuple(normalize_axis(a, len(shape)) for a in axis)
    if len(set(axes)) != len(axes):
      raise ValueError("repeated axis")
    rest = tuple(i for i in range(len(shape)) if i not in axes)
    x = shape_ops.transpose(x, axes + rest)
    x = shape_ops.reshape(x, (int(np.prod([shape[i] for i in axes], dtype=np.int64)),)
                          + tuple(shape[i] for i in rest))
    out = norm(x, ord, 0)
  else:
    axes = (normalize_axis(axis, len(shape)),)
    out = norm(x, ord, axes[0])
  if keepdims:
    out = shape_ops.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape)))
  return out


def _root(total, p):
  """total ** (1/p), with the subgradient 0 (not NaN) where total is 0 (p > 0)."""
  zero = ew.eq(total, 0)
  safe = ew.select(zero, np.ones((), dtype_of(total)), total)
  root = ew.sqrt(safe) if p == 2 else ew.pow(safe, 1.0 / p)
  return ew.select(zero, np.zeros((), dtype_of(total)), root)


def _abs_power(x, p):
  ax = ew.abs(x)
  return ew.integer_pow(ax, int(p)) if float(p).is_integer() else ew.pow(ax, float(p))


def _max_or_zero(x, axis):
  """max along `axis`, 0 for an empty axis (NumPy's initial=0 for the inf norms)."""
  shape = shape_of(x)
  if shape[axis] == 0:
    return np.zeros(shape[:axis] + shape[axis + 1:], dtype_of(x))
  return red.reduce_max(x, (axis,))


def _vector_norm(x, ord, axis, keepdims):
  if isinstance(ord, str):
    raise ValueError(f"Invalid norm order '{ord}' for vectors")
  axes = (axis,)
  if ord == np.inf:
    out = _max_or_zero(ew.abs(x), axis)
  elif ord == -np.inf:
    out = red.reduce_min(ew.abs(x), axes)
  elif ord == 0:
    out = red.reduce_sum(shape_ops.convert_element_type(ew.ne(x, 0), dtype_of(x)), axes)
  elif ord == 1:
    out = red.reduce_sum(ew.abs(x), axes)
  elif ord is None or ord == 2:
    out = _root(red.reduce_sum(ew.mul(x, x), axes), 2)
  elif ord > 0:
    out = _root(red.reduce_sum(_abs_power(x, ord), axes), ord)
  else:
    out = ew.pow(red.reduce_sum(_abs_power(x, ord), axes), 1.0 / float(ord))
  if keepdims:
    out = shape_ops.reshape(out, red.keepdims_shape(shape_of(x), axes))
  return out


def _matrix_norm(x, ord, row, col, keepdims):
  if row == col:
    raise ValueError("Duplicate axes given.")
  if isinstance(ord, str) and ord == "nuc" or not isinstance(ord, str) and ord in (2, -2):
    # The singular values of the matrices in axes (row, col), moved last (as NumPy does).
    nd = len(shape_of(x))
    rest = tuple(i for i in range(nd) if i not in (row, col))
    s = linalg_ops.svd(shape_ops.transpose(x, rest + (row, col)), False, False)[0]
    last = len(rest)
    out = (red.reduce_sum(s, (last,)) if ord == "nuc" else
           _max_or_zero(s, last) if ord == 2 else red.reduce_min(s, (last,)))
  elif ord is None or ord in ("fro", "f"):
    out = _root(red.reduce_sum(ew.mul(x, x), tuple(sorted((row, col)))), 2)
  elif ord in (1, -1, np.inf, -np.inf):
    # 1: max over columns of the column sums; inf: max over rows of the row sums.
    summed, other = (row, col) if ord in (1, -1) else (col, row)
    sums, along = red.reduce_sum(ew.abs(x), (summed,)), other - (other > summed)
    out = _max_or_zero(sums, along) if ord > 0 else red.reduce_min(sums, (along,))
  else:
    raise ValueError(f"Invalid norm order for matrices. (dfdx.numpy.linalg.norm got ord="
                     f"{ord!r}; use None, 'fro', 'nuc', 1, -1, 2, -2, inf or -inf.)")
  if keepdims:
    out = shape_ops.reshape(out, red.keepdims_shape(shape_of(x), (row, col)))
  return out
