"""The functions of `dfdx.scipy.linalg`, and the primitives they need beyond numpy.linalg's.

Compositions (their derivatives come from the primitives they call): solve_triangular is
ops/linalg.py's `triangular_solve` (LAPACK's trtrs through SciPy, O(n^2) per right-hand
side; NumPy's solve on the triangle without SciPy), linear in b, its derivative in a
reading only the triangle that is solved with; cho_factor is
`dfdx.numpy.linalg.cholesky`; cho_solve and lu_solve are triangular solves (and a row
permutation; lu_solve of a factor with a zero pivot substitutes row by row instead, giving
SciPy's infs and NaNs where a triangular solve raises); solve_banded is a dense solve of the matrix gathered from the band storage.
None of these needs SciPy.

Primitives (impls from SciPy, imported on first use):
  * expm and logm, with `expm_frechet` / `logm_frechet`, their Frechet derivatives L(A, E),
    computed by the block-matrix identity f([[A, E], [0, A]]) = [[f(A), L(A, E)], [0, f(A)]]
    (Mathias 1996; Higham, "Functions of Matrices", 2008, thm. 3.6). L is linear in E, with
    transpose L(A^T, .) (Higham 2008, sec. 3.6), and its derivative in A is again a block of a
    Frechet derivative of the doubled matrix, so both differentiate to any order.
  * sqrtm, whose derivative X' solves the Sylvester equation X X' + X' X = A'.
  * solve_sylvester (A X + X B = Q): linear in Q (the transpose solves A^T Y + Y B^T = C),
    and dX = solve_sylvester(A, B, dQ - dA X - X dB).
  * lu_factor (SciPy's packed LU and pivots), with dLU = L tril(F, -1) + triu(F) U where
    F = L^-1 P^T dA U^-1; and lu_pivots_to_permutation (integer, zero derivative).
Real matrices only: a matrix whose logm or sqrtm is not real raises ValueError when traced.
"""
from __future__ import annotations

import functools

import numpy as np

import dfdx.numpy as dnp
from dfdx._src import ad, batching, core
from dfdx._src.batching import bdim_at_front
from dfdx._src.core import ShapedArray
from dfdx._src.numpy.util import contains_tracer, dtype as dtype_of, shape as shape_of
from dfdx._src.ops import linalg as linalg_ops

__all__ = ["solve_triangular", "cho_factor", "cho_solve", "lu_factor", "lu_solve", "expm",
           "sqrtm", "logm", "solve_sylvester", "solve_banded"]

_scipy_linalg_module = None


def scipy_linalg():
  """The `scipy.linalg` module, imported on first use (ImportError naming the extra): for
  lu_factor, expm, logm, sqrtm and solve_sylvester."""
  global _scipy_linalg_module
  if _scipy_linalg_module is None:
    try:
      import scipy.linalg
    except ImportError as e:
      raise ImportError(
          "dfdx.scipy.linalg: lu_factor, expm, logm, sqrtm and solve_sylvester are computed "
          "with SciPy, which is not installed. Install it with `pip install dfdx[scipy]` (or "
          "`pip install scipy`).") from e
    _scipy_linalg_module = scipy.linalg
  return _scipy_linalg_module


def _traced(*xs):
  return any(contains_tracer(x) for x in xs)


def _mT(x):
  return dnp.swapaxes(x, -1, -2)


def _check_square(shape, name, arg="a"):
  if len(shape) < 2 or shape[-1] != shape[-2]:
    raise ValueError(f"{name}: expected a square matrix (or a stack of them) for {arg}, got "
                     f"shape {tuple(shape)}.")


def _trans_code(trans, name):
  """SciPy's `trans` as 0 (a), 1 (a^T) or 2 (a^H)."""
  codes = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2}
  try:
    return codes[trans]
  except (KeyError, TypeError):
    raise ValueError(f"{name}: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}.") from None


_dtype_cache: dict = {}


def _scipy_dtype(name, *dtypes):
  """The dtype SciPy's `name` gives for operands of these dtypes (found once, on 1x1 eyes)."""
  key = (name,) + dtypes
  if key not in _dtype_cache:
    out = getattr(scipy_linalg(), name)(*[np.eye(1, dtype=d) for d in dtypes])
    dtype = np.asarray(out[0] if isinstance(out, tuple) else out).dtype
    _dtype_cache[key] = np.dtype(np.float64) if dtype.kind == "c" else dtype
  return _dtype_cache[key]


def _over_batch(fun, *arrays):
  """`fun` (a SciPy function of 2-d arrays) on each matrix of stacks with equal batch dims
  (older SciPy versions take 2-d arrays only)."""
  arrays = [np.asarray(x) for x in arrays]
  if arrays[0].ndim == 2:
    return np.asarray(fun(*arrays))
  batch = arrays[0].shape[:-2]
  outs = [np.asarray(fun(*[x[index] for x in arrays])) for index in np.ndindex(batch)]
  if not outs:  # an empty stack (the dtype is set by the caller)
    return np.zeros(batch + arrays[-1].shape[-2:])
  return np.stack(outs).reshape(batch + outs[0].shape)


def _front_batched(vals, dims, axis_size):
  """Every operand with the batch axis first (unbatched ones broadcast along it)."""
  return [bdim_at_front(v, d, axis_size) for v, d in zip(vals, dims)]


def _batch_at_front(prim):
  def rule(axis_size, vals, dims, **params):
    out = prim.bind(*_front_batched(vals, dims, axis_size), **params)
    return out, ([0] * len(out) if prim.multiple_results else 0)
  batching.primitive_batchers[prim] = rule


# ---- triangular, Cholesky, LU and banded solves (compositions) -------------------------------


def _triangle(a, lower, unit_diagonal):
  """The triangle of `a` that a triangular solve reads (unit diagonal if asked)."""
  if unit_diagonal:
    n = shape_of(a)[-1]
    part = dnp.tril(a, -1) if lower else dnp.triu(a, 1)
    return part + np.eye(n, dtype=dtype_of(part))
  return dnp.tril(a) if lower else dnp.triu(a)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
  """Differentiable `scipy.linalg.solve_triangular`: x with op(T) x = b, T the lower (or upper)
  triangle of `a` (with ones on the diagonal if `unit_diagonal`), op given by `trans` (0/'N':
  T, 1/'T': T^T, 2/'C': T^H, the last two the same for real matrices). `a` is a matrix or a
  stack of them, `b` a vector (ndim 1) or a (stack of) matrices, batch dims broadcast. Linear
  in b; the derivative in a reads only the triangle used. O(n^2) per column of b: LAPACK's
  trtrs through SciPy, or NumPy's solve on the triangle (O(n^3)) where SciPy is missing.
  Raises numpy.linalg.LinAlgError for a zero on the diagonal, as SciPy.

  >>> solve_triangular(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([2.0, 3.0]), lower=True)
  array([1., 2.])
  """
  trans = _trans_code(trans, "solve_triangular")
  a, b = dnp.asarray(a), dnp.asarray(b)
  a_shape, b_shape = shape_of(a), shape_of(b)
  _check_square(a_shape, "solve_triangular")
  if len(b_shape) == 0 or b_shape[0 if len(b_shape) == 1 else -2] != a_shape[-1]:
    raise ValueError(f"solve_triangular: shapes of a {a_shape} and b {b_shape} are "
                     "incompatible (b must have as many rows as a).")
  return linalg_ops.triangular_solve(a, b, lower=lower, trans=trans,
                                     unit_diagonal=unit_diagonal)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
  """Differentiable `scipy.linalg.cho_factor`: `(c, lower)` with c the Cholesky factor of the
  symmetric positive definite `a` (upper, a = c^T c, unless `lower`: a = c c^T), read from that
  triangle of `a`. Unlike SciPy's, the other triangle of c is zero (SciPy leaves arbitrary
  values there, which cho_solve ignores). Differentiable (the Cholesky rule); no SciPy needed.

  >>> c, low = cho_factor(np.array([[4.0, 2.0], [2.0, 5.0]]))
  >>> c
  array([[2., 1.],
         [0., 2.]])
  """
  a = dnp.asarray(a)
  _check_square(shape_of(a), "cho_factor")
  return dnp.linalg.cholesky(a, upper=not lower), bool(lower)


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
  """Differentiable `scipy.linalg.cho_solve((c, lower), b)`: x with a x = b, a = c c^H (lower)
  or c^H c (upper; c^H = c^T for real c); two O(n^2) triangular solves per column of b,
  differentiable in c and b. Takes the output of this module's or SciPy's cho_factor. No
  SciPy needed.

  >>> cho_solve(cho_factor(np.array([[4.0, 2.0], [2.0, 5.0]])), np.array([6.0, 7.0]))
  array([1., 1.])
  """
  c, lower = c_and_lower
  if lower:
    return solve_triangular(c, solve_triangular(c, b, lower=True), trans=2, lower=True)
  return solve_triangular(c, solve_triangular(c, b, trans=2), lower=False)


def lu_factor(a, overwrite_a=False, check_finite=True):
  """Differentiable `scipy.linalg.lu_factor`: `(lu, piv)` with a = P L U, L (unit lower) and U
  packed in lu and the LAPACK row interchanges in piv (int32), exactly as SciPy's, so either
  cho_solve implementation accepts them. Stacks of matrices are factored one by one.
  Differentiable in a (lu only; piv is piecewise constant). Needs SciPy.

  >>> lu, piv = lu_factor(np.array([[1.0, 2.0], [3.0, 4.0]]))
  >>> piv
  array([1, 1], dtype=int32)
  """
  a = dnp.asarray(a)
  _check_square(shape_of(a), "lu_factor")
  if not _traced(a):
    return _lu_factor_impl(a)
  lu, piv = lu_factor_p.bind(a)
  return lu, piv


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
  """Differentiable `scipy.linalg.lu_solve((lu, piv), b, trans)`: solves a x = b (trans 0),
  a^T x = b (1) or a^H x = b (2) from lu_factor's output: a row permutation and two O(n^2)
  triangular solves per column of b, differentiable in lu and b. No SciPy needed.

  As SciPy's (LAPACK's getrs, which does not check), a factor with a zero on U's diagonal
  (a singular matrix) raises nothing: the substitution divides by it, giving infs and NaNs
  (lu_factor is where SciPy warns).

  >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
  >>> lu_solve(lu_factor(a), np.array([5.0, 11.0]))
  array([1., 2.])
  """
  lu, piv = lu_and_piv
  trans = _trans_code(trans, "lu_solve")
  lu, b = dnp.asarray(lu), dnp.asarray(b)
  vector = len(shape_of(b)) == 1
  if vector:
    b = b[:, None]
  _check_square(shape_of(lu), "lu_solve")
  if shape_of(b)[-2] != shape_of(lu)[-1]:
    raise ValueError(f"lu_solve: shapes of lu {shape_of(lu)} and b {shape_of(b)} are "
                     "incompatible (b must have as many rows as lu).")
  solve = functools.partial(linalg_ops.triangular_solve, check=False)  # (getrs: trsm)
  if not trans:
    perm = lu_pivots_to_permutation(piv)
    x = solve(lu, dnp.take_along_axis(b, perm[..., :, None], axis=-2), lower=True,
              unit_diagonal=True)
    x = solve(lu, x, lower=False)
  else:  # a^T = U^T L^T P^T (a^H likewise)
    inverse = lu_pivots_to_permutation(piv, inverse=True)
    w = solve(lu, solve(lu, b, lower=False, trans=trans), trans=trans, lower=True,
              unit_diagonal=True)
    x = dnp.take_along_axis(w, inverse[..., :, None], axis=-2)
  return x[:, 0] if vector else x


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
  """Differentiable `scipy.linalg.solve_banded((l, u), ab, b)`: a x = b for the banded matrix
  a stored as ab[u + i - j, j] = a[i, j]. The dense matrix is gathered from ab and solved with
  numpy.linalg's solve (O(n^3): meant for small bands of moderate n); differentiable in ab and
  b. No SciPy needed.

  >>> ab = np.array([[0.0, 1.0, 1.0], [2.0, 2.0, 2.0], [1.0, 1.0, 0.0]])  # tridiagonal
  >>> solve_banded((1, 1), ab, np.array([3.0, 4.0, 3.0]))
  array([1., 1., 1.])
  """
  l, u = (int(k) for k in l_and_u)
  ab = dnp.asarray(ab)
  rows, n = shape_of(ab)
  if rows != l + u + 1:
    raise ValueError(f"solve_banded: invalid values for the number of lower and upper "
                     f"diagonals: l+u+1 ({l + u + 1}) does not equal ab.shape[0] ({rows}).")
  i, j = np.indices((n, n))
  band = u + i - j
  inside = (band >= 0) & (band < rows)
  dense = dnp.where(inside, ab[np.clip(band, 0, rows - 1), j], 0)
  return dnp.linalg.solve(dense, b)


# ---- lu_factor and lu_pivots_to_permutation --------------------------------------------------
lu_factor_p = core.primitive("lu_factor", multiple_results=True)
lu_pivots_to_permutation_p = core.primitive("lu_pivots_to_permutation")


def _lu_factor_impl(a):
  a = np.asarray(a)
  lu_factor_ = scipy_linalg().lu_factor
  if a.ndim == 2:
    return lu_factor_(a)
  dtype = _scipy_dtype("lu_factor", a.dtype)
  lu, piv = np.empty(a.shape, dtype), np.empty(a.shape[:-1], np.int32)
  for index in np.ndindex(a.shape[:-2]):
    lu[index], piv[index] = lu_factor_(a[index])
  return lu, piv


def _lu_factor_abstract_eval(a):
  _check_square(a.shape, "lu_factor")
  return [ShapedArray(a.shape, _scipy_dtype("lu_factor", a.dtype)),
          ShapedArray(a.shape[:-1], np.int32)]


def _lu_factor_jvp(primals, tangents):
  # P^T A = L U; P^T dA = dL U + L dU, so L^-1 P^T dA U^-1 = L^-1 dL + dU U^-1 = F, whose
  # strictly lower part is L^-1 dL and upper part dU U^-1 (Giles 2008, sec. 3.1, with pivots).
  (a,), (a_dot,) = primals, tangents
  lu, piv = lu_factor_p.bind(a)
  perm = lu_pivots_to_permutation(piv)
  pa_dot = dnp.take_along_axis(a_dot, perm[..., :, None], axis=-2)
  f = solve_triangular(lu, pa_dot, lower=True, unit_diagonal=True)
  f = _mT(solve_triangular(lu, _mT(f), trans=1))  # F U^-1: solve U^T G^T = F^T
  l_mat, u_mat = _triangle(lu, True, True), dnp.triu(lu)
  lu_dot = dnp.matmul(l_mat, dnp.tril(f, -1)) + dnp.matmul(dnp.triu(f), u_mat)
  return [lu, piv], [ad.match_primal(lu_dot, lu), None]


lu_factor_p.def_impl(lambda a: list(_lu_factor_impl(a)))
lu_factor_p.def_abstract_eval(_lu_factor_abstract_eval)
ad.primitive_jvps[lu_factor_p] = _lu_factor_jvp
_batch_at_front(lu_factor_p)


def lu_pivots_to_permutation(piv, inverse=False):
  """The row permutation perm (a[perm] = L U) of LAPACK pivots (row i swapped with piv[i], in
  turn), or with `inverse` its inverse, along the last axis of `piv`."""
  if not _traced(piv):
    return _permutation_impl(np.asarray(piv), inverse=inverse)
  return lu_pivots_to_permutation_p.bind(piv, inverse=bool(inverse))


def _permutation_impl(piv, *, inverse):
  # (the swaps are sequential: a Python loop over lists, or over the stack's rows at once)
  piv = np.asarray(piv)
  n = piv.shape[-1]
  if piv.ndim == 1:
    perm = list(range(n))
    for i, j in enumerate(piv.tolist()):
      perm[i], perm[j] = perm[j], perm[i]
    perm = np.array(perm, np.int64)
  else:
    rows = piv.reshape(-1, n).astype(np.intp)
    perm = np.broadcast_to(np.arange(n), rows.shape).copy()
    stack = np.arange(rows.shape[0])
    for i in range(n):
      j = rows[:, i]
      row_i = perm[:, i].copy()
      perm[:, i] = perm[stack, j]
      perm[stack, j] = row_i
    perm = perm.reshape(piv.shape)
  return np.argsort(perm, axis=-1) if inverse else perm


def _permutation_batch(axis_size, vals, dims, *, inverse):
  (piv,), (d,) = vals, dims
  return lu_pivots_to_permutation_p.bind(bdim_at_front(piv, d, axis_size), inverse=inverse), 0


lu_pivots_to_permutation_p.def_impl(_permutation_impl)
lu_pivots_to_permutation_p.def_abstract_eval(
    lambda piv, *, inverse: ShapedArray(piv.shape, np.dtype(np.int64)))
ad.defjvp_zero(lu_pivots_to_permutation_p)
batching.primitive_batchers[lu_pivots_to_permutation_p] = _permutation_batch

# ---- expm and logm, with their Frechet derivatives -------------------------------------------


def _real_result(name, x, a):
  """SciPy's result as a real array: a matrix function with no real value is an error."""
  x = np.asarray(x)
  if x.dtype.kind == "c":
    if np.any(np.abs(x.imag) > 1e-10 * max(1.0, float(np.max(np.abs(x.real), initial=0)))):
      raise ValueError(f"{name}: the matrix has no real {name} (SciPy returned a complex "
                       "result, e.g. for eigenvalues on the negative real axis); dfdx "
                       "differentiates real matrix functions only.")
    x = x.real
  return x.astype(_scipy_dtype(name, np.asarray(a).dtype), copy=False)


def _block(a, e, zero_blocks=False):
  """[[a, e], [0, a]] (or [[a, 0], [0, e]] with `zero_blocks`), along the last two axes."""
  zeros = dnp.zeros_like(a)
  if zero_blocks:
    return dnp.concatenate([dnp.concatenate([a, zeros], axis=-1),
                            dnp.concatenate([zeros, e], axis=-1)], axis=-2)
  return dnp.concatenate([dnp.concatenate([a, e], axis=-1),
                          dnp.concatenate([zeros, a], axis=-1)], axis=-2)


def _matrix_function(name):
  """The primitive `name` (a primary matrix function computed by SciPy) and its Frechet
  derivative primitive `name_frechet`, linear in its second argument."""
  fun_p, frechet_p = core.primitive(name), core.primitive(name + "_frechet")

  def impl(a):
    return _real_result(name, _over_batch(getattr(scipy_linalg(), name), a), a)

  def frechet_impl(a, e):
    n = np.shape(a)[-1]
    a, e = np.broadcast_arrays(np.asarray(a), np.asarray(e))
    block = np.block([[a, e], [np.zeros_like(a), a]]) if a.ndim == 2 else np.concatenate(
        [np.concatenate([a, e], -1), np.concatenate([np.zeros_like(a), a], -1)], -2)
    return _real_result(name, _over_batch(getattr(scipy_linalg(), name), block), a)[..., :n, n:]

  def abstract_eval(a):
    _check_square(a.shape, name)
    return ShapedArray(a.shape, _scipy_dtype(name, a.dtype))

  def frechet_abstract_eval(a, e):
    _check_square(a.shape, name + "_frechet")
    if a.shape != e.shape:
      raise ValueError(f"{name}_frechet: A and E must have the same shape, got {a.shape} and "
                       f"{e.shape}.")
    return ShapedArray(a.shape, _scipy_dtype(name, np.result_type(a.dtype, e.dtype)))

  def frechet_jvp(primals, tangents):
    # d L(A, E) = L(A, dE) + [L([[A, E], [0, A]], [[dA, 0], [0, dA]])]_12.
    (a, e), (a_dot, e_dot) = primals, tangents
    ans = frechet_p.bind(a, e)
    out = None if e_dot is None else frechet_p.bind(a, e_dot)
    if a_dot is not None:
      n = shape_of(a)[-1]
      term = frechet_p.bind(_block(a, e), _block(a_dot, a_dot, zero_blocks=True))
      term = term[..., :n, n:]
      out = term if out is None else out + term
    return ans, None if out is None else ad.match_primal(out, ans)

  def frechet_transpose(ct, a, e):
    assert not ad.is_linear(a), f"{name}_frechet is linear in E only"
    return [None, frechet_p.bind(_mT(a), ct)]

  fun_p.def_impl(impl)
  fun_p.def_abstract_eval(abstract_eval)
  ad.primitive_jvps[fun_p] = lambda primals, tangents: (
      fun_p.bind(*primals), frechet_p.bind(primals[0], tangents[0]))
  _batch_at_front(fun_p)
  frechet_p.def_impl(frechet_impl)
  frechet_p.def_abstract_eval(frechet_abstract_eval)
  ad.primitive_jvps[frechet_p] = frechet_jvp
  ad.primitive_transposes[frechet_p] = frechet_transpose
  _batch_at_front(frechet_p)
  return fun_p, frechet_p


expm_p, expm_frechet_p = _matrix_function("expm")
logm_p, logm_frechet_p = _matrix_function("logm")


def expm(A):
  """Differentiable `scipy.linalg.expm`, the matrix exponential of a (stack of) square
  matrices. Its derivative is the Frechet derivative, from expm([[A, E], [0, A]]) (Mathias
  1996), which differentiates again. Needs SciPy.

  >>> expm(np.zeros((2, 2)))
  array([[1., 0.],
         [0., 1.]])
  """
  if not _traced(A):
    return scipy_linalg().expm(A)
  A = dnp.asarray(A)
  return expm_p.bind(_float(A, "expm"))


def logm(A):
  """Differentiable `scipy.linalg.logm`, the principal matrix logarithm. Traced, the matrix
  must have a real logarithm (no eigenvalues on the closed negative real axis), else
  ValueError; its derivative comes from logm([[A, E], [0, A]]). Needs SciPy.

  >>> logm(np.eye(2))
  array([[0., 0.],
         [0., 0.]])
  """
  if not _traced(A):
    return scipy_linalg().logm(A)
  return logm_p.bind(_float(dnp.asarray(A), "logm"))


def _float(a, name):
  dtype = dtype_of(a)
  if dtype.kind == "c":
    raise TypeError(f"dfdx.scipy.linalg.{name}: complex matrices are not supported when "
                    "differentiating; pass real arrays.")
  return a if dtype.kind == "f" else dnp.asarray(a, np.float64)


# ---- sqrtm and solve_sylvester ----------------------------------------------------------------
sqrtm_p = core.primitive("sqrtm")
solve_sylvester_p = core.primitive("solve_sylvester")


def sqrtm(A):
  """Differentiable `scipy.linalg.sqrtm`, the principal square root X (X @ X = A). Traced, X
  must be real; its derivative X' solves the Sylvester equation X X' + X' X = A'. Needs SciPy.

  >>> sqrtm(np.array([[4.0, 0.0], [0.0, 9.0]]))
  array([[2., 0.],
         [0., 3.]])
  """
  if not _traced(A):
    return scipy_linalg().sqrtm(A)
  return sqrtm_p.bind(_float(dnp.asarray(A), "sqrtm"))


def solve_sylvester(a, b, q):
  """Differentiable `scipy.linalg.solve_sylvester`: X with a X + X b = q (Bartels-Stewart, in
  SciPy). Linear in q; dX = solve_sylvester(a, b, dq - da X - X db). Needs SciPy.

  >>> solve_sylvester(np.eye(2), np.eye(2), np.ones((2, 2)))
  array([[0.5, 0.5],
         [0.5, 0.5]])
  """
  if not _traced(a, b, q):
    return scipy_linalg().solve_sylvester(a, b, q)
  a, b, q = (_float(dnp.asarray(x), "solve_sylvester") for x in (a, b, q))
  batch = np.broadcast_shapes(shape_of(a)[:-2], shape_of(b)[:-2], shape_of(q)[:-2])
  a, b, q = (dnp.broadcast_to(x, batch + shape_of(x)[-2:]) for x in (a, b, q))
  return solve_sylvester_p.bind(a, b, q)


def _sylvester_impl(a, b, q):
  a, b, q = np.asarray(a), np.asarray(b), np.asarray(q)
  dtype = _scipy_dtype("solve_sylvester", a.dtype, b.dtype, q.dtype)
  return _over_batch(scipy_linalg().solve_sylvester, a, b, q).astype(dtype, copy=False)


def _sylvester_abstract_eval(a, b, q):
  _check_square(a.shape, "solve_sylvester")
  _check_square(b.shape, "solve_sylvester", "b")
  if q.shape[-2:] != (a.shape[-1], b.shape[-1]) or not (
      a.shape[:-2] == b.shape[:-2] == q.shape[:-2]):
    raise ValueError(f"solve_sylvester: shapes {a.shape}, {b.shape}, {q.shape} do not match "
                     "(a: (..., m, m), b: (..., n, n), q: (..., m, n), same batch dims).")
  return ShapedArray(q.shape, _scipy_dtype("solve_sylvester", a.dtype, b.dtype, q.dtype))


def _sylvester_jvp(primals, tangents):
  # A X + X B = Q:  A dX + dX B = dQ - dA X - X dB.
  (a, b, q), (a_dot, b_dot, q_dot) = primals, tangents
  x = solve_sylvester_p.bind(a, b, q)
  rhs = q_dot
  for term in ([] if a_dot is None else [dnp.matmul(a_dot, x)]) + (
      [] if b_dot is None else [dnp.matmul(x, b_dot)]):
    rhs = -term if rhs is None else rhs - term
  return x, ad.match_primal(solve_sylvester_p.bind(a, b, rhs), x)


def _sylvester_transpose(ct, a, b, q):
  # <X, C> with X = S(A, B) Q is <Q, S(A^T, B^T) C>: the adjoint of A X + X B is A^T Y + Y B^T.
  assert not (ad.is_linear(a) or ad.is_linear(b)), "solve_sylvester is linear in q only"
  return [None, None, solve_sylvester_p.bind(_mT(a), _mT(b), ct)]


solve_sylvester_p.def_impl(_sylvester_impl)
solve_sylvester_p.def_abstract_eval(_sylvester_abstract_eval)
ad.primitive_jvps[solve_sylvester_p] = _sylvester_jvp
ad.primitive_transposes[solve_sylvester_p] = _sylvester_transpose
_batch_at_front(solve_sylvester_p)

sqrtm_p.def_impl(lambda a: _real_result("sqrtm", _over_batch(scipy_linalg().sqrtm, a), a))
def _sqrtm_abstract_eval(a):
  _check_square(a.shape, "sqrtm")
  return ShapedArray(a.shape, _scipy_dtype("sqrtm", a.dtype))


sqrtm_p.def_abstract_eval(_sqrtm_abstract_eval)
ad.defjvp2(sqrtm_p, lambda a_dot, ans, a: solve_sylvester_p.bind(ans, ans, a_dot))
_batch_at_front(sqrtm_p)
