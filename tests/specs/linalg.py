"""Spec lines of the linalg primitives (see tests/op_specs.py). Entries are uniform in
(-1, 1) and the inputs are built inside `fun` so that every case is well conditioned:
matrices shifted by 4 I, symmetric positive definite a a^T + 3 I, and eigenvalue or
singular-value problems with a spread diagonal (gaps of at least 1), whose eigen- and
singular vectors are close to the coordinate axes. Their signs are arbitrary, so the vector
outputs are compared after fixing each vector's sign by its diagonal entry (sign-invariant)."""
import numpy as np

from dfdx._src import core
from dfdx._src.ops import contraction as con
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import gaps
from dfdx._src.ops import linalg as la
from dfdx._src.ops import shape as shape_ops
from tests.op_specs import Fixed, OpSpec


def _shifted(a):
  return a + 4 * np.eye(np.shape(a)[-1]) if isinstance(a, np.ndarray) else \
      ew.add(a, 4 * np.eye(a.shape[-1]))


def _np_solve(a, b):
  return np.linalg.solve(_shifted(a), b)


def _triangular(lower, trans, unit_diagonal=False, check=True):
  """triangular_solve of the triangle of a + 4 I (the rest of a is not read)."""
  return lambda a, b: la.triangular_solve(_shifted(a), b, lower=lower, trans=trans,
                                          unit_diagonal=unit_diagonal, check=check)


def _np_triangular(lower, trans, unit_diagonal=False):
  """NumPy's solve on the masked triangle."""
  def ref(a, b):
    a = _shifted(a)
    n = a.shape[-1]
    t = np.tril(a, -unit_diagonal) if lower else np.triu(a, int(unit_diagonal))
    t = t + np.eye(n) if unit_diagonal else t
    return np.linalg.solve(np.swapaxes(t, -1, -2) if trans else t, b)
  return ref


def _spd(a):
  """a a^T + 3 I, with dfdx ops (which evaluate NumPy arrays directly)."""
  return ew.add(con.matmul(a, con.matrix_transpose(a)), 3 * np.eye(np.shape(a)[-1]))


def _spread(a):
  """a + a diagonal 0, 5, 10, ... (rectangular for non-square a): separated eigenvalues or
  singular values (|a| < 0.5 entrywise keeps them at least 1 apart for up to 4 rows)."""
  m, n = np.shape(a)[-2:]
  return ew.add(a, np.eye(m, n) * 5.0 * np.arange(1, n + 1))


def _signs(x):
  """The signs of the diagonal of x (..., m, k), as a row (..., 1, k)."""
  nd = core.ndim_of(x)
  d = ew.sign(con.diagonal(x, 0, nd - 2, nd - 1))
  shape = core.shape_of(d)
  return shape_ops.reshape(d, shape[:-1] + (1, shape[-1]))


def _fixed_eigh(w, v):
  return [w, ew.mul(v, _signs(v))]


def _fixed_svd(u, s, vh):
  signs = _signs(u)
  return [ew.mul(u, signs), s, ew.mul(vh, con.matrix_transpose(signs))]


def _svd(full_matrices=False):
  return (lambda a: _fixed_svd(*la.svd(_spread(a), full_matrices)),
          lambda a: _fixed_svd(*np.linalg.svd(_spread(a), full_matrices)))


def _lstsq_fun(a, b):
  x, residuals, _, s = la.lstsq(_spread(a), b, 1e-12)
  return [x, residuals, s]


def _lstsq_ref(a, b):
  outs = [np.linalg.lstsq(_spread(a[i]), b[i], 1e-12) for i in np.ndindex(a.shape[:-2])]
  return [np.stack([o[j] for o in outs]).reshape(a.shape[:-2] + np.shape(outs[0][j]))
          for j in (0, 1, 3)]


SOLVE_SHAPES = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1)), ((2, 3, 3), (3, 2)),
                ((3, 3), (2, 3, 2)), ((2, 3, 3), (3,)), ((2, 1, 3, 3), (4, 3, 1)),
                ((0, 0), (0,)), ((0, 2, 2), (2, 1))]
SQUARE_SHAPES = [((3, 3),), ((2, 3, 3),), ((1, 1),)]
TALL_WIDE_SHAPES = [((3, 3),), ((4, 3),), ((3, 4),), ((2, 4, 3),), ((2, 2, 4),)]
HALF = (-0.5, 0.5)

SPECS = [
    OpSpec("det", la.det_p, lambda a: la.det(_shifted(a)), lambda a: np.linalg.det(_shifted(a)),
           [((3, 3),), ((1, 1),), ((2, 3, 3),), ((2, 1, 2, 2),), ((0, 0),), ((0, 2, 2),)],
           domain=(-1.0, 1.0)),
    OpSpec("solve", la.solve_p, lambda a, b: la.solve(_shifted(a), b), _np_solve, SOLVE_SHAPES,
           domain=(-1.0, 1.0)),
    OpSpec("solve_linear_in_b", la.solve_p, lambda a, b: la.solve(_shifted(a), b), _np_solve,
           [((3, 3), (3,)), ((2, 3, 3), (3, 2)), ((3, 3), (2, 3, 2))], domain=(-1.0, 1.0),
           diff_argnums=(1,), linear=True),
    OpSpec("triangular_solve", la.triangular_solve_p, _triangular(True, 0),
           _np_triangular(True, 0), SOLVE_SHAPES, domain=(-1.0, 1.0)),
    OpSpec("triangular_solve_upper_trans", la.triangular_solve_p, _triangular(False, 1),
           _np_triangular(False, 1), SOLVE_SHAPES[:7], domain=(-1.0, 1.0)),
    OpSpec("triangular_solve_unit", la.triangular_solve_p, _triangular(True, 1, True),
           _np_triangular(True, 1, True), SOLVE_SHAPES[1:7], domain=(-1.0, 1.0)),
    OpSpec("triangular_solve_upper_unit", la.triangular_solve_p, _triangular(False, 0, True),
           _np_triangular(False, 0, True), [((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1))],
           domain=(-1.0, 1.0)),
    OpSpec("triangular_solve_unchecked", la.triangular_solve_p,  # (BLAS's trsm)
           _triangular(False, 1, check=False), _np_triangular(False, 1), SOLVE_SHAPES[:7],
           domain=(-1.0, 1.0)),
    OpSpec("triangular_solve_linear_in_b", la.triangular_solve_p, _triangular(False, 0),
           _np_triangular(False, 0), [((3, 3), (3,)), ((2, 3, 3), (3, 2)), ((3, 3), (2, 3, 2))],
           domain=(-1.0, 1.0), diff_argnums=(1,), linear=True),
    OpSpec("triangular_solve_trans_linear_in_b", la.triangular_solve_p, _triangular(True, 1),
           _np_triangular(True, 1), [((2, 1, 3, 3), (4, 3, 1))], domain=(-1.0, 1.0),
           diff_argnums=(1,), linear=True),
    OpSpec("inv", la.solve_p, lambda a: la.inv(_shifted(a)),
           lambda a: np.linalg.inv(_shifted(a)), [((3, 3),), ((2, 2, 2),), ((0, 0),)],
           domain=(-1.0, 1.0)),
    OpSpec("adjugate", la.adjugate_p, la.adjugate,
           lambda a: np.linalg.det(a)[..., None, None] * np.linalg.inv(a),
           [((3, 3),), ((2, 2, 2),), ((1, 1),), ((0, 0),)], domain=(-1.0, 1.0), atol=1e-10),
    OpSpec("slogdet", la.slogdet_p, lambda a: la.slogdet(_shifted(a)),
           lambda a: list(np.linalg.slogdet(_shifted(a))), SQUARE_SHAPES + [((0, 0),)],
           domain=(-1.0, 1.0)),
    OpSpec("slogdet_negative", la.slogdet_p, lambda a: la.slogdet(ew.neg(_shifted(a))),
           lambda a: list(np.linalg.slogdet(-_shifted(a))), [((3, 3),)], domain=(-1.0, 1.0)),
    OpSpec("cholesky", la.cholesky_p, lambda a: la.cholesky(_spd(a)),
           lambda a: np.linalg.cholesky(_spd(a)), SQUARE_SHAPES + [((0, 0),)],
           domain=(-1.0, 1.0)),
    # Nonsymmetric inputs: only the triangle that LAPACK reads matters.
    OpSpec("cholesky_triangle", la.cholesky_p, lambda a, upper: la.cholesky(_shifted(a), upper),
           lambda a, upper: np.linalg.cholesky(_shifted(a), upper=upper),
           [((3, 3), ()), ((2, 3, 3), ())], domain=[(-1.0, 1.0), Fixed(True)]),
    OpSpec("cholesky_triangle_lower", la.cholesky_p, lambda a: la.cholesky(_shifted(a)),
           lambda a: np.linalg.cholesky(_shifted(a)), [((3, 3),)], domain=(-1.0, 1.0)),
    OpSpec("qr", la.qr_p, lambda a: la.qr(_spread(a)), lambda a: list(np.linalg.qr(_spread(a))),
           TALL_WIDE_SHAPES + [((0, 2),)], domain=HALF),
    OpSpec("qr_complete", la.qr_p, lambda a: la.qr(a, True),
           lambda a: list(np.linalg.qr(a, "complete")), [((3, 3),), ((3, 4),), ((4, 3),)],
           domain=(-1.0, 1.0), grad=False),
    OpSpec("qr_complete_grad", la.qr_p, lambda a: la.qr(_spread(a), True),
           lambda a: list(np.linalg.qr(_spread(a), "complete")), [((3, 3),), ((2, 3, 4),)],
           domain=HALF),
    OpSpec("eigh", la.eigh_p, lambda a: _fixed_eigh(*la.eigh(_spread(a))),
           lambda a: _fixed_eigh(*np.linalg.eigh(_spread(a))),
           SQUARE_SHAPES + [((2, 1, 4, 4),), ((0, 0),)], domain=HALF),
    OpSpec("eigh_upper", la.eigh_p, lambda a: _fixed_eigh(*la.eigh(_spread(a), False)),
           lambda a: _fixed_eigh(*np.linalg.eigh(_spread(a), "U")), [((3, 3),)], domain=HALF),
    OpSpec("svd", la.svd_p, *_svd(), TALL_WIDE_SHAPES + [((0, 2),)], domain=HALF),
    OpSpec("svd_full_square", la.svd_p, *_svd(True), [((3, 3),), ((2, 2, 2),)], domain=HALF),
    OpSpec("svd_full", la.svd_p, lambda a: la.svd(a, True), lambda a: list(np.linalg.svd(a)),
           [((4, 3),), ((2, 3),)], grad=False),
    OpSpec("svdvals", la.svd_p, lambda a: la.svd(_spread(a), compute_uv=False),
           lambda a: [np.linalg.svd(_spread(a), compute_uv=False)],
           TALL_WIDE_SHAPES + [((0, 2),)], domain=HALF),
    OpSpec("pinv", la.pinv_p, lambda a: la.pinv(_spread(a)),
           lambda a: np.linalg.pinv(_spread(a)), TALL_WIDE_SHAPES + [((0, 2),)], domain=HALF),
    OpSpec("pinv_hermitian", la.pinv_p, lambda a: la.pinv(_spread(a), hermitian=True),
           lambda a: np.linalg.pinv(_spread(a), hermitian=True), [((3, 3),), ((2, 3, 3),)],
           domain=HALF),
    OpSpec("lstsq", la.lstsq_p, _lstsq_fun, _lstsq_ref,
           [((4, 3), (4, 2)), ((3, 3), (3, 1)), ((3, 4), (3, 2)), ((2, 4, 2), (2, 4, 1))],
           domain=HALF),
]



# ---- eig: general matrices, real or complex ------------------------------------------------
def _eig_shift(n):
  """A diagonal 5, 10, 15, ... with an unsymmetric rotation in the first 2x2 block (its
  eigenvalues 7.5 +- 2.4i), so that eigenvalues are separated and some complex, and no two
  entries of an eigenvector tie for the largest modulus (which LAPACK makes real)."""
  d = np.diag(5.0 * np.arange(1, n + 1))
  if n >= 2:
    d[0, 1], d[1, 0] = 6.0, -2.0
  return d


def _eig_parts(w, v, m=ew):
  """eig's results through their real and imaginary parts (the table compares real arrays)."""
  return [m.real(w), m.imag(w), m.real(v), m.imag(v)]


SPECS += [
    OpSpec("eig", la.eig_p, lambda a: _eig_parts(*la.eig(ew.add(a, _eig_shift(a.shape[-1])))),
           lambda a: _eig_parts(*np.linalg.eig(a + _eig_shift(a.shape[-1])), m=np),
           SQUARE_SHAPES + [((2, 2),), ((0, 0),)], domain=HALF),
    OpSpec("eig_complex", la.eig_p,
           lambda x, y: _eig_parts(*la.eig(ew.add(ew.complex(x, y), _eig_shift(x.shape[-1])))),
           lambda x, y: _eig_parts(*np.linalg.eig(x + 1j * y + _eig_shift(x.shape[-1])), m=np),
           [((3, 3), (3, 3)), ((2, 2, 2), (2, 2, 2))], domain=HALF),
]

# ---- gaps of a spectrum (ops/gaps.py) ----------------------------------------------------
_TIES = np.array([[0.0, 1.5, -2.0], [-1.5, 0.0, 1e-17], [2.0, -1e-17, 0.0]])
_NO_TOL, _TOL = Fixed(np.zeros(())), Fixed(np.full((3, 1), 1e-15))


def _away(g):
  """Gaps in (2, 4): away from 0."""
  return ew.add(g, 3.0)


SPECS += [
    OpSpec("gap_div", gaps.gap_div_p, lambda x, g, tol: gaps.gap_div(x, _away(g), tol),
           lambda x, g, tol: x / (g + 3.0),
           [((3, 3), (3, 3), ()), ((2, 3), (3,), ()), ((2, 1, 3), (4, 1), ())],
           domain=[(-1.0, 1.0), (-1.0, 1.0), _NO_TOL]),
    OpSpec("gap_div_ties", gaps.gap_div_p, lambda x, tol: gaps.gap_div(x, _TIES, tol),
           lambda x, tol: np.where(np.abs(_TIES) <= 1e-15, 0.0, x / np.where(
               np.abs(_TIES) <= 1e-15, 1.0, _TIES)),
           [((3, 3), (3, 1)), ((2, 3, 3), (3, 1))], domain=[(-1.0, 1.0), _TOL]),
]
