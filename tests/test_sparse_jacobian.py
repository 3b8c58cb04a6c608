"""Sparse Jacobians and Hessians (`sparse=True` / `sparse=P`, see dfdx/_src/sparsity.py): the
sparse matrix equals the dense Jacobian (leaves raveled and concatenated), its stored pattern
holds every nonzero, exact patterns and color counts where the structure is known, both
modes, `auto`'s choice, given patterns, and the errors."""
import re

import numpy as np
import pytest
import scipy.sparse as sp

import dfdx
import dfdx.numpy as dnp
from dfdx._src import batching, sparsity
from dfdx.tree import tree_leaves


# ---- helpers --------------------------------------------------------------------------------


def _selected(args, argnums):
  return (args[argnums],) if isinstance(argnums, int) else tuple(args[i] for i in argnums)


def _assemble(blocks, out_sizes, in_sizes):
  """The dense (M, N) matrix from the dense Jacobian's blocks (output-major leaf order)."""
  blocks = [np.asarray(b) for b in tree_leaves(blocks)]
  assert len(blocks) == len(out_sizes) * len(in_sizes)
  dense = np.zeros((sum(out_sizes), sum(in_sizes)))
  k, r = 0, 0
  for mo in out_sizes:
    c = 0
    for ni in in_sizes:
      dense[r:r + mo, c:c + ni] = blocks[k].reshape(mo, ni)
      k, c = k + 1, c + ni
    r += mo
  return dense


def dense_jacobian(f, args, argnums=0):
  jac, value = dfdx.jacobian(f, argnums, return_value=True)(*args)
  in_sizes = [np.size(x) for x in tree_leaves(_selected(args, argnums))]
  out_sizes = [np.size(o) for o in tree_leaves(value)]
  return _assemble(jac, out_sizes, in_sizes)


def structure(jac):
  """The stored entries of a sparse result, as a dense bool array."""
  return sp.csr_array((np.ones(jac.nnz), jac.indices, jac.indptr), shape=jac.shape).toarray() != 0


def pattern_of(jac):
  return sp.csr_array((np.ones(jac.nnz), jac.indices.copy(), jac.indptr.copy()),
                      shape=jac.shape)


def assert_matches(jac, dense):
  assert isinstance(jac, sp.csr_array)
  assert jac.shape == dense.shape
  assert jac.dtype == np.float64
  scale = max(1.0, float(np.max(np.abs(dense)))) if dense.size else 1.0
  np.testing.assert_allclose(jac.toarray(), dense, rtol=1e-12, atol=1e-12 * scale)
  missed = (dense != 0) & ~structure(jac)
  assert not missed.any(), f"pattern misses nonzeros at {np.argwhere(missed)[:5].tolist()}"


def assert_valid_coloring(pattern, colors):
  """Columns of one color share no row."""
  for i in range(pattern.shape[0]):
    cols = pattern.indices[pattern.indptr[i]:pattern.indptr[i + 1]]
    assert len(np.unique(colors[cols])) == len(cols), f"row {i}: colors {colors[cols]}"


def colors_of(jac):
  """(forward, reverse) greedy color counts of a result's pattern, each checked valid."""
  pattern = pattern_of(jac)
  fwd_colors, fwd = sparsity.column_coloring(pattern)
  rev_colors, rev = sparsity.column_coloring(pattern.T.tocsr())
  assert_valid_coloring(pattern, fwd_colors)
  assert_valid_coloring(pattern.T.tocsr(), rev_colors)
  return fwd, rev


# ---- the table --------------------------------------------------------------------------------

_RNG = np.random.default_rng(20240611)
N = 8
V = _RNG.standard_normal(N)
W = _RNG.standard_normal(N)
MAT = _RNG.standard_normal((3, 4))
GRID = _RNG.standard_normal((5, 5))
IDX = np.array([0, 0, 3, 2, 3, 5, 7, 7])
MASK = np.arange(N) % 3 == 0
A_LEFT = _RNG.standard_normal((6, N)) * (_RNG.random((6, N)) < 0.3)   # A @ x
B_RIGHT = _RNG.standard_normal((4, 5)) * (_RNG.random((4, 5)) < 0.4)  # X @ B
C_BATCH = _RNG.standard_normal((3, 4, 4)) * (_RNG.random((3, 4, 4)) < 0.4)
M_SOLVE = 4 * np.eye(N) + np.diag(np.ones(N - 1), 1) + np.diag(np.ones(N - 1), -1)


def lap1(x):
  """1-D finite-difference Laplacian, zero (Dirichlet) boundaries: tridiagonal."""
  p = dnp.pad(x, 1)
  return p[:-2] - 2 * p[1:-1] + p[2:]


def lap2(u):
  """2-D 5-point Laplacian, zero boundaries."""
  p = dnp.pad(u, 1)
  return (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * u).ravel()


def scan_recurrence(x):
  def body(c, xi):
    c = 0.5 * c + xi
    return c, c
  return dfdx.scan(body, 0.0, x)[1]


def scan_tree(x, w):
  def body(carry, xi):
    a, b = carry
    return (a * w[0] + xi[0], b + a * xi[1] * w[1]), a * b
  return dfdx.scan(body, (x[0], x[1]), dnp.stack([x, dnp.cos(x)], axis=1))


def scan_reverse(x):
  c, ys = dfdx.scan(lambda c, xi: (c + xi, c ** 2), 0.0, x, reverse=True)
  return dnp.concatenate([ys, dnp.reshape(c, (1,))])


def fori_smooth(x):
  """Two steps of explicit diffusion: a band of half-width 2."""
  def step(i, v):
    p = dnp.pad(v, 1)
    return v + 0.1 * (p[:-2] - 2 * v + p[2:])
  return dfdx.fori_loop(0, 2, step, x)


def while_elementwise(x):
  return dfdx.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, dnp.sin(s[1]) * 1.5),
                         (0, x))[1]


def cond_product(x):
  return dfdx.cond(True, lambda v: v[1:] * v[:-1], lambda v: v[1:], x)


_jit_stencil = dfdx.jit(lambda v: v[:-2] - 2 * v[1:-1] + v[2:] * v[1:-1])
_ckpt_stencil = dfdx.checkpoint(lambda v: v[:-2] - 2 * v[1:-1] + v[2:] * v[1:-1])
_jit_cond = dfdx.jit(lambda v: dfdx.cond(v[0] > 0, lambda u: u ** 2, lambda u: u * 3, v))
_jit_while = dfdx.jit(while_elementwise)


@dfdx.custom_jvp
def _square(v):
  return v * v


@_square.defjvp
def _square_jvp(primals, tangents):
  (v,), (t,) = primals, tangents
  return _square(v), 2 * v * t


def pytree_fn(d, t):
  return {"u": d["p"] * t[0], "v": (dnp.sum(d["q"], axis=0), t[1] ** 2)}


# Bundle adjustment (ADBench-like): cameras [angle about z, tx, ty, focal], points (x, y, z),
# one observation per (camera, point) pair in the index arrays.
N_CAMS, N_PTS, N_OBS = 3, 5, 9
CAM_IDX = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2])
PT_IDX = np.array([0, 1, 1, 2, 3, 4, 4, 0, 2])
OBS = _RNG.standard_normal((N_OBS, 2))
CAMS = np.column_stack([_RNG.uniform(0.2, 1.0, N_CAMS), _RNG.standard_normal((N_CAMS, 2)),
                        _RNG.uniform(1.0, 2.0, N_CAMS)])
PTS = _RNG.standard_normal((N_PTS, 3))


def ba_residual(cams, pts):
  cam, pt = cams[CAM_IDX], pts[PT_IDX]
  c, s = dnp.cos(cam[:, 0]), dnp.sin(cam[:, 0])
  px = c * pt[:, 0] - s * pt[:, 1] + cam[:, 1]
  py = s * pt[:, 0] + c * pt[:, 1] + cam[:, 2]
  pz = pt[:, 2] + 5.0
  proj = dnp.stack([cam[:, 3] * px / pz, cam[:, 3] * py / pz], axis=1)
  return proj - OBS


def case(name, f, args, argnums=0, nnz=None, colors=None, rev_colors=None, max_colors=None):
  return pytest.param(f, args, argnums, nnz, colors, rev_colors, max_colors, id=name)


CASES = [
    # elementwise and broadcasting
    case("elementwise", lambda x: dnp.sin(x) * dnp.exp(x) + x ** 2, (V,), nnz=N, colors=1,
         rev_colors=1),
    case("broadcast_const", lambda X: X * np.arange(1., 5.) + dnp.tanh(X) / (1 + X ** 2),
         (MAT,), nnz=12, colors=1),
    case("outer_broadcast", lambda a, b: a[:, None] * b[None, :], (V[:3], W[:4]), (0, 1),
         nnz=24, colors=2, rev_colors=4),
    case("where_branches", lambda x: dnp.where(x > 0, x ** 2, dnp.sin(x)), (V,), nnz=N,
         colors=1),
    case("where_mask_mix", lambda x: dnp.where(MASK, x, x[::-1]), (V,), nnz=N, colors=1),
    # stencils and slicing
    case("stencil_1d_interior", lambda x: x[:-2] - 2 * x[1:-1] + x[2:], (V,),
         nnz=3 * (N - 2), colors=3, rev_colors=3),
    case("laplacian_1d", lap1, (V,), nnz=3 * N - 2, colors=3, rev_colors=3),
    case("laplacian_2d", lap2, (GRID,), nnz=5 * 25 - 4 * 5, max_colors=(5, 9)),
    # moves
    case("reshape_transpose", lambda x: x.reshape(2, 4).T.ravel() * 3, (V,), nnz=N, colors=1),
    case("stack_flip", lambda x: dnp.stack([x, 2 * x[::-1]]), (V,), nnz=2 * N, colors=1,
         rev_colors=2),
    case("concatenate", lambda x: dnp.concatenate([x[3:], x[:3] * x[5:]]), (V,), nnz=11,
         colors=2),
    case("pad_edge", lambda x: dnp.pad(x, 2, mode="edge") ** 2, (V,), nnz=N + 4, colors=1),
    case("pad_reflect", lambda x: dnp.pad(x, 2, mode="reflect"), (V,), nnz=N + 4, colors=1),
    case("roll_flip", lambda x: dnp.roll(x, 2) - dnp.flip(x), (V,), nnz=2 * N, colors=2),
    # gathers and scatters
    case("gather_repeats", lambda x: x[IDX] * 2.0, (V,), nnz=len(IDX), colors=1),
    case("gather_product", lambda x: x[IDX] * x[IDX[::-1]], (V,), nnz=2 * len(IDX)),
    case("gather_2d", lambda X: X[np.array([0, 2, 2]), np.array([1, 1, 3])], (MAT,), nnz=3,
         colors=1),
    case("at_set", lambda x, y: dnp.at(x)[np.array([1, 4])].set(y * 2), (V, W[:2]), (0, 1),
         nnz=N, colors=1),
    case("at_set_repeats", lambda x, y: dnp.at(x)[np.array([1, 1, 4])].set(y), (V, W[:3]),
         (0, 1), nnz=N),
    case("at_add_repeats", lambda x, y: dnp.at(x)[np.array([1, 1, 4])].add(y ** 2),
         (V, W[:3]), (0, 1), nnz=N + 3),
    case("at_multiply", lambda x, y: dnp.at(x)[np.array([1, 1, 4])].multiply(y),
         (V, W[:3] + 2), (0, 1)),
    # reductions and scans of arrays
    case("sum_axis0", lambda X: dnp.sum(X, axis=0), (MAT,), nnz=12, colors=3, rev_colors=1),
    case("mean_keepdims", lambda X: dnp.mean(X ** 2, axis=1, keepdims=True), (MAT,), nnz=12,
         colors=4, rev_colors=1),
    case("max_axis1", lambda X: dnp.max(X, axis=1), (MAT,)),
    case("prod_axis0", lambda X: dnp.prod(X, axis=0), (MAT,), nnz=12, colors=3),
    case("cumsum", dnp.cumsum, (V,), nnz=N * (N + 1) // 2, colors=N),
    case("cumsum_axis1", lambda X: dnp.cumsum(X, axis=1), (MAT,), nnz=3 * 10, colors=4),
    case("cumprod", dnp.cumprod, (V,), nnz=N * (N + 1) // 2),
    # contractions with constants holding exact zeros
    case("matmul_left_const", lambda x: A_LEFT @ x, (V,), nnz=np.count_nonzero(A_LEFT)),
    case("matmul_right_const", lambda X: dnp.sin(X) @ B_RIGHT, (MAT,),
         nnz=3 * np.count_nonzero(B_RIGHT)),
    case("einsum_right_const", lambda X: dnp.einsum("ij,jk->ik", X, B_RIGHT), (MAT,),
         nnz=3 * np.count_nonzero(B_RIGHT)),
    case("einsum_batch_left_const", lambda X: dnp.einsum("bij,bj->bi", C_BATCH, X),
         (MAT,), nnz=np.count_nonzero(C_BATCH)),
    case("einsum_batch_right_const", lambda X: dnp.einsum("bj,bij->ib", X, C_BATCH),
         (MAT,), nnz=np.count_nonzero(C_BATCH)),
    case("solve_const", lambda x: dnp.linalg.solve(M_SOLVE, x), (V,)),
    # sorting
    case("sort", dnp.sort, (V,), nnz=N, colors=1),
    case("argsort_permutation", lambda x: x[dnp.argsort(x)] * np.arange(1., N + 1), (V,),
         nnz=N, colors=1),
    # control flow and nested programs
    case("scan_recurrence", scan_recurrence, (V,), nnz=N * (N + 1) // 2, colors=N),
    case("scan_tree_carry_consts", scan_tree, (V[:6], W[:2]), (0, 1)),
    case("scan_reverse", scan_reverse, (V,), nnz=N * (N + 1) // 2),
    case("fori_loop_smoothing", fori_smooth, (V,), nnz=5 * N - 6, colors=5),
    case("while_loop", while_elementwise, (V,), nnz=N, colors=1),
    case("cond", cond_product, (V,), nnz=2 * (N - 1), colors=2),
    case("jit_inside", lambda x: _jit_stencil(dnp.sin(x)), (V,), nnz=3 * (N - 2), colors=3),
    case("checkpoint_inside", lambda x: _ckpt_stencil(dnp.sin(x)), (V,), nnz=3 * (N - 2),
         colors=3),
    case("jit_cond_inside", lambda x: _jit_cond(x), (V,)),
    case("jit_while_inside", lambda x: _jit_while(x), (V,), nnz=N, colors=1),
    case("custom_jvp", lambda x: _square(x[1:]) + x[:-1], (V,), nnz=2 * (N - 1), colors=2),
    case("vmap_inside", lambda X: dfdx.vmap(lambda r: r[1:] * r[:-1])(X), (MAT,), nnz=18,
         colors=2),
    # pytrees, several arguments, odd shapes
    case("pytree_in_out", pytree_fn, ({"p": V[:3], "q": MAT}, (W[:3], W[3:5])), (0, 1),
         nnz=20),
    case("bundle_adjustment", ba_residual, (CAMS, PTS), (0, 1), nnz=12 * N_OBS),
    case("empty_leaf", lambda x: (x[:0], x[1:] * 2), (V,), nnz=N - 1, colors=1),
    case("scalar_output", lambda x: dnp.sum(x ** 2), (V,), nnz=N, colors=N, rev_colors=1),
    case("scalar_input", lambda s: dnp.sin(s) * np.arange(1., 4.), (1.3,), nnz=3, colors=1),
]

assert len(CASES) >= 30


@pytest.mark.parametrize("f, args, argnums, nnz, colors, rev_colors, max_colors", CASES)
def test_sparse_equals_dense(f, args, argnums, nnz, colors, rev_colors, max_colors,
                             monkeypatch):
  found = []
  detect = sparsity.jacobian_pattern
  monkeypatch.setattr(sparsity, "jacobian_pattern",
                      lambda *a, **k: found.append(detect(*a, **k)) or found[-1])
  dense = dense_jacobian(f, args, argnums)
  jac = dfdx.jacobian(f, argnums, sparse=True)(*args)
  assert_matches(jac, dense)
  # The stored entries are the detected pattern, all 1s there.
  (detected,) = found
  assert detected.shape == jac.shape and np.all(detected.data == 1)
  assert np.array_equal(detected.toarray() != 0, structure(jac))
  if nnz is not None:
    assert jac.nnz == nnz
    assert np.count_nonzero(dense) == nnz  # (the exact structure: nothing spurious)
  fwd, rev = colors_of(jac)
  if colors is not None:
    assert fwd == colors
  if rev_colors is not None:
    assert rev == rev_colors
  if max_colors is not None:
    lo, hi = max_colors
    assert lo <= fwd <= hi and lo <= rev <= hi
  # Both modes give the same matrix, on the same pattern.
  for jac_mode in (dfdx.jacfwd(f, argnums, sparse=True)(*args),
                   dfdx.jacrev(f, argnums, sparse=True)(*args),
                   dfdx.jacobian(f, argnums, mode="fwd", sparse=True)(*args),
                   dfdx.jacobian(f, argnums, mode="rev", sparse=True)(*args)):
    assert_matches(jac_mode, dense)
    assert np.array_equal(structure(jac_mode), structure(jac))


def test_bundle_adjustment_pattern_is_the_gathers():
  jac = dfdx.jacobian(ba_residual, (0, 1), sparse=True)(CAMS, PTS)
  expected = np.zeros((2 * N_OBS, 4 * N_CAMS + 3 * N_PTS), bool)
  for k, (ci, pi) in enumerate(zip(CAM_IDX, PT_IDX)):
    for r, cam_params in ((2 * k, (0, 1, 3)), (2 * k + 1, (0, 2, 3))):  # u: no ty, v: no tx
      expected[r, [4 * ci + p for p in cam_params]] = True
      expected[r, 4 * N_CAMS + 3 * pi + np.arange(3)] = True
  assert np.array_equal(structure(jac), expected)


def test_coloring_of_a_tridiagonal_pattern():
  pattern = pattern_of(dfdx.jacobian(lap1, sparse=True)(V))
  colors, count = sparsity.column_coloring(pattern)
  assert count == 3
  np.testing.assert_array_equal(colors, np.arange(N) % 3)
  assert sparsity.column_coloring(sp.csr_array((0, 0)))[1] == 0
  colors, count = sparsity.column_coloring(sp.csr_array(np.eye(5)))
  assert count == 1
  np.testing.assert_array_equal(colors, np.zeros(5))


def greedy_colors(pattern):
  """The greedy column coloring, written plainly: column j takes the least color that no
  earlier column sharing a row with it has."""
  pattern = sp.csr_array(pattern)
  by_column = pattern.tocsc()
  colors = np.full(pattern.shape[1], -1)
  for j in range(pattern.shape[1]):
    taken = set()
    for i in by_column.indices[by_column.indptr[j]:by_column.indptr[j + 1]]:
      taken.update(colors[pattern.indices[pattern.indptr[i]:pattern.indptr[i + 1]]].tolist())
    c = 0
    while c in taken:
      c += 1
    colors[j] = c
  return colors


def _ba_like_pattern(rng, cams, pts, obs):
  """Rows of ADBench's bundle adjustment: two per observation, each on its camera's 11
  columns and its point's 3."""
  cam, pt = rng.integers(0, cams, obs), rng.integers(0, pts, obs)
  block = np.concatenate([11 * cam[:, None] + np.arange(11),
                          11 * cams + 3 * pt[:, None] + np.arange(3)], axis=1)
  rows = np.repeat(np.arange(2 * obs), 14)
  return sp.csr_array((np.ones(rows.size), (rows, np.repeat(block, 2, axis=0).ravel())),
                      shape=(2 * obs, 11 * cams + 3 * pts))


def _random_patterns():
  rng = np.random.default_rng(30)
  band = sp.diags_array([np.ones(300 - abs(k)) for k in range(-2, 3)], offsets=range(-2, 3))
  band = band.tolil()
  band[[7, 150], :] = 1.0  # (two dense rows)
  return [
      ("random", sp.random_array((120, 90), density=0.05, rng=rng)),
      ("random_dense", sp.random_array((40, 60), density=0.3, rng=rng)),
      ("blocks", sp.block_diag([np.ones((90, 90))] * 12)),  # (colors beyond 64 per round)
      ("ba_like", _ba_like_pattern(rng, 7, 30, 200)),
      ("band_dense_rows", band),
      ("empty_columns", sp.csr_array(np.eye(6, 9)[:, ::-1])),
  ]


@pytest.mark.parametrize("name, pattern", _random_patterns(),
                         ids=[name for name, _ in _random_patterns()])
def test_coloring_is_the_plain_greedy_one(name, pattern):
  """Colored in rounds (and, where rounds are small, in a loop), the coloring is the one the
  plain greedy loop gives, for columns and for rows; so never more colors."""
  pattern = sp.csr_array(pattern, dtype=float)
  pattern.data[:] = 1.0
  for p in (pattern, pattern.T.tocsr()):
    colors, count = sparsity.column_coloring(p)
    np.testing.assert_array_equal(colors, greedy_colors(p))
    assert count == colors.max() + 1
    assert_valid_coloring(p, colors)
    assert count >= np.diff(p.indptr).max()  # (a row's columns all differ)


def test_coloring_of_a_pattern_with_unsorted_and_repeated_columns():
  scrambled = sp.csr_array((np.ones(6), np.array([3, 1, 3, 2, 0, 1]),
                            np.array([0, 3, 5, 6])), shape=(3, 4))  # (row 0: 3, 1, 3)
  colors, count = sparsity.column_coloring(scrambled)
  np.testing.assert_array_equal(colors, greedy_colors(scrambled.toarray() != 0))
  assert_valid_coloring(sp.csr_array(scrambled.toarray()), colors)


@pytest.mark.parametrize("period", [1, 3])
@pytest.mark.parametrize("fewest", [1, 1024], ids=["orders_tried", "default"])
def test_rows_sorted_alike_and_unlike(period, fewest, monkeypatch):
  """_sort_rows: each row's columns once, increasing, after its placeholders, whether the
  rows sort in one order (every `period` rows), in a few, or each in its own."""
  monkeypatch.setattr(sparsity, "_ALIKE_MIN_ROWS", fewest)
  rng = np.random.default_rng(31 + period)
  base = rng.permutation(40)[:6]
  alike = np.tile(np.stack([base[rng.permutation(6)] for _ in range(period)]), (50, 1))
  alike = alike + 100 * np.repeat(np.arange(50 * period), 6).reshape(-1, 6)
  alike[:, 4] = alike[:, 1]  # (a repeat in every row)
  unlike = rng.integers(-1, 12, (40, 6))  # (repeats and placeholders anywhere)
  for a in (alike, unlike, np.concatenate([alike, unlike]), alike[:0]):
    out = sparsity._sort_rows(a.astype(np.int32), period)
    assert out.shape == a.shape
    for row, got in zip(a, out):
      real = got[got >= 0]
      np.testing.assert_array_equal(real, np.unique(row[row >= 0]))
      assert np.all(got[:len(got) - len(real)] == -1)


def test_found_pattern_is_canonical():
  jac = dfdx.jacobian(lap2, sparse=True)(GRID)
  assert jac.has_canonical_format
  for i in range(jac.shape[0]):
    row = jac.indices[jac.indptr[i]:jac.indptr[i + 1]]
    assert np.all(np.diff(row) > 0)


# ADBench's bundle-adjustment residual (bench/ba.py), vectorized over observations: 11
# camera parameters (Rodrigues rotation, center, focal length, principal point, radial
# distortion), 3 per point, a weight per observation. Cameras with a zero rotation take
# ADBench's small-angle branch, so that rows of one array differ in how they are computed.
ADB_CAMS, ADB_PTS, ADB_OBS = 5, 9, 24
_ADB = np.random.default_rng(32)
ADB_CAM_IDX = np.arange(ADB_OBS) % ADB_CAMS
ADB_PT_IDX = _ADB.integers(0, ADB_PTS, ADB_OBS)
ADB_FEATS = _ADB.standard_normal((ADB_OBS, 2))
ADB_CAMERAS = np.column_stack([
    _ADB.standard_normal((ADB_CAMS, 3)) * 0.3, _ADB.uniform(-1, 1, (ADB_CAMS, 3)),
    _ADB.uniform(1, 2, (ADB_CAMS, 1)), _ADB.standard_normal((ADB_CAMS, 2)),
    _ADB.uniform(0, 0.1, (ADB_CAMS, 2))])
ADB_CAMERAS[1, :3] = 0.0  # (the small-angle branch)
ADB_POINTS = _ADB.uniform(0, 1, (ADB_PTS, 3)) + np.array([0.0, 0.0, 5.0])
ADB_WEIGHTS = _ADB.uniform(0.2, 1.0, ADB_OBS)


def adbench_ba_residual(cams, points, weights):
  cam, X = cams[ADB_CAM_IDX], points[ADB_PT_IDX]
  rot, Xo = cam[:, 0:3], X - cam[:, 3:6]
  sqtheta = dnp.sum(rot * rot, axis=-1, keepdims=True)
  nonzero = sqtheta != 0
  theta = dnp.sqrt(dnp.where(nonzero, sqtheta, 1.0))
  axis = rot / theta
  rotated = (Xo * dnp.cos(theta) + dnp.cross(axis, Xo) * dnp.sin(theta)
             + axis * (dnp.sum(axis * Xo, axis=-1, keepdims=True) * (1 - dnp.cos(theta))))
  Xcam = dnp.where(nonzero, rotated, Xo + dnp.cross(rot, Xo))
  proj = Xcam[:, 0:2] / Xcam[:, 2:3]
  rsq = dnp.sum(proj * proj, axis=-1, keepdims=True)
  distortion = 1 + cam[:, 9:10] * rsq + cam[:, 10:11] * rsq * rsq
  err = weights[:, None] * (proj * distortion * cam[:, 6:7] + cam[:, 7:9] - ADB_FEATS)
  return dnp.concatenate([dnp.ravel(err), 1 - weights * weights])


@pytest.mark.parametrize("fewest", [1, 1024], ids=["orders_tried", "default"])
def test_adbench_bundle_adjustment(fewest, monkeypatch):
  """The pattern is the observations' blocks exactly: a reprojection row on its camera's
  parameters but the other coordinate's principal point, its point and its weight; a weight
  row on its weight. Forward mode needs as many colors as a row has entries."""
  monkeypatch.setattr(sparsity, "_ALIKE_MIN_ROWS", fewest)
  args = (ADB_CAMERAS, ADB_POINTS, ADB_WEIGHTS)
  jac = dfdx.jacobian(adbench_ba_residual, (0, 1, 2), sparse=True)(*args)
  assert_matches(jac, dense_jacobian(adbench_ba_residual, args, (0, 1, 2)))
  n_cam, n_pt = 11 * ADB_CAMS, 3 * ADB_PTS
  expected = np.zeros((3 * ADB_OBS, n_cam + n_pt + ADB_OBS), bool)
  for k, (c, p) in enumerate(zip(ADB_CAM_IDX, ADB_PT_IDX)):
    for r, skip in ((2 * k, 8), (2 * k + 1, 7)):
      expected[r, [11 * c + q for q in range(11) if q != skip]] = True
      expected[r, n_cam + 3 * p + np.arange(3)] = True
      expected[r, n_cam + n_pt + k] = True
    expected[2 * ADB_OBS + k, n_cam + n_pt + k] = True
  assert np.array_equal(structure(jac), expected)
  fwd, _ = colors_of(jac)
  assert fwd == expected.sum(axis=1).max()
  for transform in (dfdx.jacfwd, dfdx.jacrev):
    assert np.array_equal(structure(transform(adbench_ba_residual, (0, 1, 2),
                                              sparse=True)(*args)), expected)


def _random_batched(rng):
  """A random residual of a (k, 3) array: gathers, scatters, reductions along either axis,
  masks and products of its rows' entries."""
  steps = [(int(rng.integers(0, 7)), int(rng.integers(1 << 30))) for _ in range(5)]

  def f(x):
    for kind, seed in steps:
      r = np.random.default_rng(seed)
      k = x.shape[0]
      if kind == 0:  # (each row's entries mixed, as a cross product does)
        x = x[:, [1, 2, 0]] * x[:, [2, 0, 1]] - x
      elif kind == 1:
        x = x[r.integers(0, k, k)] * dnp.sum(x, axis=1, keepdims=True)
      elif kind == 2:
        x = dnp.where(r.random((k, 1)) < 0.4, x * x[:, :1], dnp.sin(x))
      elif kind == 3:
        x = dnp.at(x)[r.integers(0, k, k // 2)].add(x[: k // 2] ** 2)
      elif kind == 4:
        x = dnp.concatenate([x[1:], x[:1] * 2.0]) + dnp.sum(x, axis=0) * 0.1
      elif kind == 5:
        x = x * np.where(r.random((k, 3)) < 0.3, 0.0, r.standard_normal((k, 3)))
      else:
        x = x / (1 + x[:, 2:3] ** 2)
    return x
  return f


@pytest.mark.parametrize("seed", range(8))
def test_random_batched_residuals(seed, monkeypatch):
  """Random residuals on arrays of rows: the sparse Jacobian is the dense one, its pattern
  holds every nonzero, and each mode finds the same pattern (rows sorted by tried orders
  however few, see _sort_rows)."""
  monkeypatch.setattr(sparsity, "_ALIKE_MIN_ROWS", 1)
  rng = np.random.default_rng(40 + seed)
  f = _random_batched(rng)
  x = rng.standard_normal((int(rng.integers(2, 30)), 3))
  dense = dense_jacobian(f, (x,))
  jac = dfdx.jacobian(f, sparse=True)(x)
  assert_matches(jac, dense)
  assert jac.has_canonical_format
  fwd, rev = colors_of(jac)
  assert fwd >= np.diff(jac.indptr).max(initial=0)
  for transform in (dfdx.jacfwd, dfdx.jacrev):
    other = transform(f, sparse=True)(x)
    assert_matches(other, dense)
    assert np.array_equal(structure(other), structure(jac))


# ---- modes and auto ---------------------------------------------------------------------------


@pytest.fixture
def passes(monkeypatch):
  """[(mode, count)] of the passes run: 'fwd' pushes, 'rev' pulls."""
  calls = []
  pushed, pulled = sparsity._pushed, sparsity._pulled

  def spy_pushed(lin, leaves, out_leaves, colors, count, chunk_size=None):
    calls.append(("fwd", count))
    return pushed(lin, leaves, out_leaves, colors, count, chunk_size)

  def spy_pulled(lin, leaves, out_leaves, colors, count, chunk_size=None):
    calls.append(("rev", count))
    return pulled(lin, leaves, out_leaves, colors, count, chunk_size)
  monkeypatch.setattr(sparsity, "_pushed", spy_pushed)
  monkeypatch.setattr(sparsity, "_pulled", spy_pulled)
  return calls


def few_dense_rows(x):
  return dnp.concatenate([x ** 2, dnp.reshape(dnp.sum(x), (1,)),
                          dnp.reshape(dnp.sum(dnp.sin(x)), (1,))])


def few_dense_columns(x):
  return x[1:] * x[0] + dnp.cos(x[1:])


def test_auto_picks_reverse_for_dense_rows(passes):
  x = np.random.default_rng(1).standard_normal(10)
  dense = dense_jacobian(few_dense_rows, (x,))
  jac = dfdx.jacobian(few_dense_rows, sparse=True)(x)
  assert_matches(jac, dense)
  assert colors_of(jac) == (10, 3)
  assert passes == [("rev", 3)]
  passes.clear()
  assert_matches(dfdx.jacfwd(few_dense_rows, sparse=True)(x), dense)
  assert passes == [("fwd", 10)]
  passes.clear()
  assert_matches(dfdx.jacobian(few_dense_rows, mode="fwd", sparse=True)(x), dense)
  assert_matches(dfdx.jacrev(few_dense_rows, sparse=True)(x), dense)
  assert passes == [("fwd", 10), ("rev", 3)]


def test_auto_picks_forward_for_dense_columns(passes):
  x = np.random.default_rng(2).standard_normal(10)
  dense = dense_jacobian(few_dense_columns, (x,))
  jac = dfdx.jacobian(few_dense_columns, sparse=True)(x)
  assert_matches(jac, dense)
  assert colors_of(jac) == (2, 9)
  assert passes == [("fwd", 2)]
  passes.clear()
  assert_matches(dfdx.jacobian(few_dense_columns, mode="rev", sparse=True)(x), dense)
  assert passes == [("rev", 9)]


def test_passes_in_chunks_of_colors(monkeypatch):
  """Colors are pushed (or pulled) in chunks of at most _PASS_ENTRIES entries: the same
  matrix, one vmap per chunk."""
  whole = {mode: dfdx.jacobian(lap2, mode=mode, sparse=True)(GRID) for mode in ("fwd", "rev")}
  dense = dense_jacobian(lap2, (GRID,))
  batches = []
  vmap_flat = batching.vmap_flat
  monkeypatch.setattr(batching, "vmap_flat",
                      lambda fun, size, *rest: batches.append(size) or vmap_flat(fun, size, *rest))
  monkeypatch.setattr(sparsity, "_PASS_ENTRIES", 2 * (25 + 25))  # (two colors a chunk)
  for mode in ("fwd", "rev"):
    batches.clear()
    jac = dfdx.jacobian(lap2, mode=mode, sparse=True)(GRID)
    count = colors_of(jac)[0 if mode == "fwd" else 1]
    assert batches == [2] * (count // 2) + [1] * (count % 2)
    np.testing.assert_array_equal(jac.toarray(), whole[mode].toarray())
    assert_matches(jac, dense)


def test_auto_ties_go_forward(passes):
  x = np.random.default_rng(3).standard_normal(9)
  assert_matches(dfdx.jacobian(lap1, sparse=True)(x), dense_jacobian(lap1, (x,)))
  assert passes == [("fwd", 3)]


def test_second_call_at_another_point():
  """The colorings are cached per pattern; a new point with another pattern is found again."""
  jac_f = dfdx.jacobian(lambda x: dnp.where(x > 0, x[::-1] * x, x), sparse=True)
  rng = np.random.default_rng(4)
  for _ in range(3):
    x = rng.standard_normal(7)
    assert_matches(jac_f(x), dense_jacobian(lambda x: dnp.where(x > 0, x[::-1] * x, x), (x,)))


def test_return_value_and_has_aux():
  def f(x):
    return x[1:] * x[:-1], {"s": dnp.sum(x)}
  x = np.random.default_rng(5).standard_normal(6)
  dense = dense_jacobian(lambda x: f(x)[0], (x,))
  for transform in (dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev):
    jac, aux = transform(f, has_aux=True, sparse=True)(x)
    assert_matches(jac, dense)
    np.testing.assert_allclose(aux["s"], np.sum(x))
    jac, value = transform(lambda x: f(x)[0], return_value=True, sparse=True)(x)
    assert_matches(jac, dense)
    np.testing.assert_allclose(value, x[1:] * x[:-1])
    jac, value, aux = transform(f, has_aux=True, return_value=True, sparse=True)(x)
    assert_matches(jac, dense)
    np.testing.assert_allclose(value, x[1:] * x[:-1])
    np.testing.assert_allclose(aux["s"], np.sum(x))


def test_pytree_output_value_keeps_structure():
  args = ({"p": V[:3], "q": MAT}, (W[:3], W[3:5]))
  jac, value = dfdx.jacobian(pytree_fn, (0, 1), return_value=True, sparse=True)(*args)
  assert jac.shape == (3 + 4 + 2, 3 + 12 + 3 + 2)
  assert set(value) == {"u", "v"} and isinstance(value["v"], tuple)
  np.testing.assert_allclose(value["u"], V[:3] * W[:3])


# ---- hessians ---------------------------------------------------------------------------------


def separable(x):
  return dnp.sum(dnp.sin(x) * x ** 2)


def chain(x):
  return dnp.sum((x[1:] - x[:-1] ** 2) ** 2) + dnp.sum(dnp.cos(x))


def two_arrays(d):
  return dnp.sum(d["a"] ** 2 * d["b"][np.array([0, 1, 1, 2])]) + dnp.sum(dnp.cos(d["b"]) ** 3)


@pytest.mark.parametrize("f, nnz, colors", [(separable, N, 1), (chain, 3 * N - 2, 3)],
                         ids=["separable", "chain"])
def test_hessian_sparse(f, nnz, colors):
  x = np.random.default_rng(6).standard_normal(N)
  hess = dfdx.hessian(f, sparse=True)(x)
  dense = np.asarray(dfdx.hessian(f)(x))
  assert_matches(hess, dense)
  assert hess.nnz == nnz
  assert colors_of(hess)[0] == colors
  np.testing.assert_allclose(hess.toarray(), hess.toarray().T, rtol=1e-12, atol=1e-12)


def test_hessian_sparse_pytree():
  rng = np.random.default_rng(7)
  d = {"a": rng.standard_normal(4), "b": rng.standard_normal(3)}
  hess = dfdx.hessian(two_arrays, sparse=True)(d)
  dense = _assemble(dfdx.hessian(two_arrays)(d), [4, 3], [4, 3])
  assert_matches(hess, dense)
  assert hess.shape == (7, 7)
  # a_i couples with itself and b[idx[i]]; b_j with itself and the a's that read it
  assert hess.nnz == 4 + 3 + 2 * 4


def test_hessian_has_aux_and_return_value():
  def f(x):
    return chain(x), {"n": dnp.sum(x)}
  x = np.random.default_rng(8).standard_normal(6)
  dense = np.asarray(dfdx.hessian(chain)(x))
  hess, aux = dfdx.hessian(f, has_aux=True, sparse=True)(x)
  assert_matches(hess, dense)
  np.testing.assert_allclose(aux["n"], np.sum(x))
  hess, value = dfdx.hessian(chain, return_value=True, sparse=True)(x)
  assert_matches(hess, dense)
  np.testing.assert_allclose(value, chain(x))
  hess, value, aux = dfdx.hessian(f, has_aux=True, return_value=True, sparse=True)(x)
  _, value_dense, aux_dense = dfdx.hessian(f, has_aux=True, return_value=True)(x)
  assert_matches(hess, dense)
  np.testing.assert_allclose(value, value_dense)
  np.testing.assert_allclose(aux["n"], aux_dense["n"])


def test_hessian_given_pattern():
  rng = np.random.default_rng(9)
  x1, x2 = rng.standard_normal(N), rng.standard_normal(N)
  pattern = pattern_of(dfdx.hessian(chain, sparse=True)(x1))
  hess = dfdx.hessian(chain, sparse=pattern)(x2)
  assert_matches(hess, np.asarray(dfdx.hessian(chain)(x2)))


# ---- given patterns ---------------------------------------------------------------------------


def forbid_detection(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError("the pattern was detected although one was given")
  monkeypatch.setattr(sparsity, "jacobian_pattern", refuse)


def _given_pattern_setup():
  rng = np.random.default_rng(10)
  cams1, pts1 = CAMS + 0.1 * rng.standard_normal(CAMS.shape), PTS
  cams2, pts2 = CAMS, PTS + 0.1 * rng.standard_normal(PTS.shape)
  pattern = pattern_of(dfdx.jacobian(ba_residual, (0, 1), sparse=True)(cams1, pts1))
  return pattern, (cams2, pts2), dense_jacobian(ba_residual, (cams2, pts2), (0, 1))


def test_given_pattern_at_another_point(monkeypatch):
  pattern, args2, dense2 = _given_pattern_setup()
  forbid_detection(monkeypatch)
  for transform in (dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev):
    jac = transform(ba_residual, (0, 1), sparse=pattern)(*args2)
    assert_matches(jac, dense2)
    assert np.array_equal(structure(jac), pattern.toarray() != 0)


@pytest.mark.parametrize("kind", ["int01", "bool", "float01", "csr_matrix", "coo_array"])
def test_given_pattern_kinds(kind, monkeypatch):
  pattern, args2, dense2 = _given_pattern_setup()
  forbid_detection(monkeypatch)
  given = {"int01": lambda: pattern.toarray().astype(np.int64),
           "bool": lambda: pattern.toarray() != 0,
           "float01": lambda: pattern.toarray(),
           "csr_matrix": lambda: sp.csr_matrix(pattern.toarray()),
           "coo_array": lambda: sp.coo_array(pattern.toarray())}[kind]()
  assert_matches(dfdx.jacobian(ba_residual, (0, 1), sparse=given)(*args2), dense2)


def test_given_full_pattern_gives_the_dense_jacobian(monkeypatch):
  x = np.random.default_rng(11).standard_normal(6)
  f = lambda x: dnp.cumsum(x) * x[::-1]  # noqa: E731
  dense = dense_jacobian(f, (x,))
  forbid_detection(monkeypatch)
  jac = dfdx.jacobian(f, sparse=np.ones((6, 6)))(x)
  assert jac.nnz == 36
  assert_matches(jac, dense)


def test_given_pattern_wrong_shape():
  x = V.copy()
  with pytest.raises(ValueError, match=re.escape("(9, 8)")):
    dfdx.jacobian(lap1, sparse=np.ones((9, 8)))(x)
  with pytest.raises(ValueError, match=re.escape("(8, 7)")):
    dfdx.jacfwd(lap1, sparse=sp.csr_array(np.eye(8)[:, :7]))(x)
  with pytest.raises(ValueError, match=re.escape("(8,)")):
    dfdx.jacrev(lap1, sparse=np.ones(8))(x)
  with pytest.raises(ValueError, match=re.escape("(9, 9)")):
    dfdx.hessian(chain, sparse=np.ones((9, 9)))(x)


# ---- errors -----------------------------------------------------------------------------------


def test_complex_raises():
  x = V + 1j * W
  for transform in (dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev):
    with pytest.raises(TypeError, match="complex"):
      transform(lambda z: z * z, sparse=True)(x)
    with pytest.raises(TypeError, match="complex"):
      transform(lambda v: v * 1j, sparse=True)(V)
    with pytest.raises(TypeError, match="complex"):
      transform(lambda z: z * z, sparse=True, holomorphic=True)(x)


def test_traced_raises():
  jac_f = dfdx.jacobian(lambda v: v[1:] * v[:-1], sparse=True)
  with pytest.raises(TypeError, match="sparse"):
    dfdx.jit(lambda x: jac_f(x))(V)
  with pytest.raises(TypeError, match="sparse"):
    dfdx.vmap(jac_f)(np.ones((2, 5)))
  with pytest.raises(TypeError, match="sparse"):
    dfdx.grad(lambda x: dnp.sum(jac_f(x)))(V)
  with pytest.raises(TypeError, match="sparse"):
    dfdx.jit(lambda x: dfdx.hessian(chain, sparse=True)(x))(V)


@pytest.mark.parametrize("value", [1, 0, 1.0, "yes", None], ids=repr)
def test_bad_sparse_values(value):
  for transform in (dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev, dfdx.hessian):
    with pytest.raises(TypeError, match="sparse"):
      transform(chain, sparse=value)(V)


def test_numpy_integer_sparse_value_is_a_type_error():
  with pytest.raises(TypeError, match="sparse"):
    dfdx.jacobian(chain, sparse=np.int64(1))(V)


def test_numpy_true_means_sparse():
  jac = dfdx.jacobian(lap1, sparse=np.True_)(V)
  assert_matches(jac, dense_jacobian(lap1, (V,)))


@pytest.mark.parametrize("transform", [dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev, dfdx.hessian],
                         ids=["jacobian", "jacfwd", "jacrev", "hessian"])
def test_numpy_false_means_dense(transform):
  f = chain if transform is dfdx.hessian else lap1
  out = transform(f, sparse=np.False_)(V)
  assert isinstance(out, np.ndarray)


def test_not_sparse_error(monkeypatch):
  monkeypatch.setattr(sparsity, "MAX_ENTRIES", 50)
  assert issubclass(sparsity.NotSparseError, ValueError)
  x = np.random.default_rng(12).standard_normal(10)
  with pytest.raises(sparsity.NotSparseError, match="not sparse"):
    dfdx.jacobian(lambda v: v * dnp.sum(v), sparse=True)(x)
  with pytest.raises(ValueError):
    dfdx.hessian(lambda v: dnp.sum(v) ** 3, sparse=True)(x)
  # A sparse pattern under the limit still works.
  assert_matches(dfdx.jacobian(lap1, sparse=True)(x), dense_jacobian(lap1, (x,)))


def test_coloring_gives_up_on_full_rows(monkeypatch):
  """Rows too full to compare columns within the limit (sum of squared row counts over it):
  every column its own color, and the Jacobian is still right."""
  monkeypatch.setattr(sparsity, "MAX_ENTRIES", 30)
  jac = dfdx.jacobian(lap1, sparse=True)(V)
  assert_matches(jac, dense_jacobian(lap1, (V,)))
  colors, count = sparsity.column_coloring(pattern_of(jac))
  assert count == N
  np.testing.assert_array_equal(colors, np.arange(N))


# ---- exact zeros at the point -------------------------------------------------------------------


def test_zero_constant_factor_is_omitted():
  rng = np.random.default_rng(14)
  x = rng.standard_normal(12)
  mask = (rng.random(12) < 0.5).astype(float)
  mask[[0, 5]] = 0.0
  f = lambda v: v * mask + dnp.sin(v[::-1]) * mask  # noqa: E731
  jac = dfdx.jacobian(f, sparse=True)(x)
  dense = dense_jacobian(f, (x,))
  assert_matches(jac, dense)
  on = np.flatnonzero(mask)
  assert jac.nnz == 2 * len(on)
  assert not structure(jac)[mask == 0].any()
  assert jac.nnz == np.count_nonzero(dense)


def test_zero_primal_factor_is_omitted():
  """x[1:] * x[:-1] at a point with x[3] == 0: d/dx of the neighbours of x[3] is 0 there, and
  the pattern (of the derivative at the point) leaves it out."""
  x = np.random.default_rng(15).standard_normal(7)
  x[3] = 0.0
  f = lambda v: v[1:] * v[:-1]  # noqa: E731
  jac = dfdx.jacobian(f, sparse=True)(x)
  dense = dense_jacobian(f, (x,))
  assert_matches(jac, dense)
  assert jac.nnz == 2 * 6 - 2 == np.count_nonzero(dense)
  x[3] = 1.0  # at another point the structure is the full one
  assert dfdx.jacobian(f, sparse=True)(x).nnz == 12


def test_zero_factor_in_matmul_both_sides():
  rng = np.random.default_rng(16)
  X = rng.standard_normal((4, 4))
  L = np.diag(rng.standard_normal(4)) + np.diag(np.ones(3), 1)
  L[2, 2] = 0.0
  f = lambda X: L @ X @ L.T  # noqa: E731
  jac = dfdx.jacobian(f, sparse=True)(X)
  dense = dense_jacobian(f, (X,))
  assert_matches(jac, dense)
  assert jac.nnz == np.count_nonzero(L) ** 2 == np.count_nonzero(dense)


# ---- outputs no input reaches, and empty ones ----------------------------------------------------


@pytest.mark.parametrize("transform", [dfdx.jacobian, dfdx.jacfwd, dfdx.jacrev],
                         ids=["jacobian", "jacfwd", "jacrev"])
def test_output_leaf_independent_of_inputs(transform):
  f = lambda x: (x ** 2, dfdx.stop_gradient(x[:3]))  # noqa: E731
  jac = transform(f, sparse=True)(V)
  assert jac.shape == (N + 3, N)
  assert_matches(jac, dense_jacobian(f, (V,)))


def test_empty_output_forward():
  jac = dfdx.jacfwd(lambda x: x[:0] * 2, sparse=True)(V)
  assert jac.shape == (0, N) and jac.nnz == 0


@pytest.mark.parametrize("which", ["auto_empty_output", "rev_empty_output", "fwd_empty_input"])
def test_zero_colors(which):
  if which == "fwd_empty_input":
    jac = dfdx.jacfwd(lambda b: b * 2, sparse=True)(np.zeros(0))
    assert jac.shape == (0, 0)
  else:
    transform = dfdx.jacobian if which == "auto_empty_output" else dfdx.jacrev
    jac = transform(lambda x: x[:0] * 2, sparse=True)(V)
    assert jac.shape == (0, N) and jac.nnz == 0


# ---- symmetric (star) coloring of Hessians --------------------------------------------------------


def _recoverable(pattern, colors):
  """Every off-diagonal entry has a color met once in its row, or in its mirror's row."""
  rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
  for i, j in zip(rows, pattern.indices):
    if i == j:
      continue
    ri = pattern.indices[pattern.indptr[i]:pattern.indptr[i + 1]]
    rj = pattern.indices[pattern.indptr[j]:pattern.indptr[j + 1]]
    if np.sum(colors[ri] == colors[j]) != 1 and np.sum(colors[rj] == colors[i]) != 1:
      return False
  return True


def test_arrowhead_hessian_takes_two_passes():
  # A hub coupled to every entry: a column coloring needs a color per column, a star
  # coloring two; the entries are read from either side.
  x = np.random.default_rng(21).standard_normal(60)
  f = lambda x: dnp.sum(x ** 3) + x[0] * dnp.sum(dnp.sin(x[1:]))  # noqa: E731
  hess = dfdx.hessian(f, sparse=True)(x)
  assert_matches(hess, dfdx.hessian(f)(x))
  pattern = pattern_of(hess)
  assert sparsity.column_coloring(pattern)[1] == 60
  colors, count = sparsity.star_coloring(pattern)
  assert count == 2 and _recoverable(pattern, colors)


@pytest.mark.parametrize("seed", range(12))
def test_star_coloring_of_random_symmetric_patterns(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(5, 50))
  a = sp.random(n, n, density=float(rng.uniform(0.02, 0.3)), random_state=seed).toarray()
  a = a + a.T
  if seed % 3 == 0:
    a[0, :] = a[:, 0] = 1.0  # (a hub)
  f = lambda x: 0.5 * x @ (a @ x) + dnp.sum(dnp.sin(x))  # noqa: E731
  x = rng.standard_normal(n)
  hess = dfdx.hessian(f, sparse=True)(x)
  assert_matches(hess, dfdx.hessian(f)(x))
  pattern = pattern_of(hess)
  colors, count = sparsity.star_coloring(pattern)
  assert _recoverable(pattern, colors)
  off = pattern.copy().tolil()
  off.setdiag(0)
  off = off.tocsr()
  off.eliminate_zeros()
  rows = np.repeat(np.arange(n), np.diff(off.indptr))
  assert np.all(colors[rows] != colors[off.indices])  # (neighbours differ)


# ---- rows pulled back and the rest pushed forward -------------------------------------------------


def arrowhead(x):
  """A row coupled to every column and a column coupled to every row: both modes alone need a
  pass per entry."""
  return dnp.concatenate([dnp.sum(x ** 2)[None], x[1:] * x[0] + dnp.sin(x[1:])])


@pytest.mark.parametrize("n", [12, 300])
def test_an_arrowhead_jacobian_takes_three_passes(passes, n):
  x = np.random.default_rng(n).standard_normal(n)
  jac = dfdx.jacobian(arrowhead, sparse=True)(x)
  assert_matches(jac, dense_jacobian(arrowhead, (x,)))
  assert colors_of(jac) == (n, n)  # (forward alone, reverse alone)
  assert sorted(passes) == [("fwd", 2), ("rev", 1)]
  passes.clear()
  for mode in ("fwd", "rev"):  # (a mode asked for is that mode alone)
    assert_matches(dfdx.jacobian(arrowhead, mode=mode, sparse=True)(x),
                   dense_jacobian(arrowhead, (x,)))
  assert passes == [("fwd", n), ("rev", n)]


def test_dense_rows_and_a_band_split_both_ways():
  rng = np.random.default_rng(3)
  x = rng.standard_normal(40)
  a = rng.standard_normal((3, 40))

  def f(x):  # three dense rows, a tridiagonal band, and two dense columns
    band = x[1:-1] * x[:-2] + dnp.cos(x[2:]) + x[0] * x[1:-1] + x[5] ** 2
    return dnp.concatenate([a @ dnp.tanh(x), band])
  jac = dfdx.jacobian(f, sparse=True)(x)
  assert_matches(jac, dense_jacobian(f, (x,)))
  both = sparsity._both_ways(pattern_of(jac), 10 ** 9)
  assert both is not None and both[1][1] + both[2][1] < min(colors_of(jac))


# ---- found by a randomized comparison with the dense Jacobian -------------------------------------


def test_empty_values_inside_the_program():
  x = np.random.default_rng(4).standard_normal((1, 4, 3))
  f = lambda x: dnp.resize(dnp.pad(dnp.resize(dnp.ravel(x[:0]), (2,)), 4, mode="linear_ramp",  # noqa: E731
                                   end_values=2.5), (12,)) + dnp.sum(x)
  assert_matches(dfdx.jacobian(f, sparse=True)(x), dense_jacobian(f, (x,)))
  g = dfdx.jit(lambda a: dnp.cumsum(a))
  jac = dfdx.jacobian(g, sparse=True)(np.zeros((0, 3)))
  assert jac.shape == (0, 0) and jac.nnz == 0


def test_a_nan_of_a_zero_factor_is_recomputed_as_for_the_dense_jacobian():
  # (log2 of a negative number times a zero cotangent: the dense result is 0, and so is this)
  a1 = np.zeros((0, 3), bool)
  f = lambda a0: dnp.sum(dnp.inner(dnp.reshape(dfdx.fori_loop(  # noqa: E731
      0, 3, lambda i, c: 0.5 * dnp.log2(c) + 0.25 * c, dnp.ravel(a0)), ()), a1) ** 2)
  with np.errstate(invalid="ignore"):
    hess = dfdx.hessian(f, sparse=True)(np.array(-0.5))
    assert_matches(hess, np.asarray(dfdx.hessian(f)(np.array(-0.5))).reshape(1, 1))


def test_a_jitted_loop_counter_in_a_hessian():
  # (the loop's integer counter gets no dependence, and the sort's gather its indices)
  def f(a):
    return dfdx.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, 0.5 * dnp.resize(
        dnp.sort(dnp.resize(s[1], (3,))), (1,)) + 0.1 * s[1]), (0, dnp.ravel(a)))[1]
  h = lambda a: dnp.sum(dfdx.jit(f)(a) ** 2)  # noqa: E731
  assert_matches(dfdx.hessian(h, sparse=True)(np.array(1.0)),
                 np.asarray(dfdx.hessian(h)(np.array(1.0))).reshape(1, 1))


def test_sparse_jacobians_take_chunk_size(monkeypatch):
  # chunk_size bounds the colors pushed (or pulled) at a time, as for dense Jacobians; the
  # matrix is the same
  from dfdx._src import batching, sparsity
  seen = []
  original = batching.vmap_chunked

  def spy(fun, axis_size, vals, in_dims, chunk_size=None):
    seen.append(chunk_size)
    return original(fun, axis_size, vals, in_dims, chunk_size)
  monkeypatch.setattr(sparsity.batching, "vmap_chunked", spy)
  x = np.linspace(0.1, 1.0, 30)
  f = lambda x: x[1:] * x[:-1] + dnp.sin(x[1:])  # noqa: E731
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    seen.clear()
    got = jac(f, sparse=True, chunk_size=1)(x).toarray()
    np.testing.assert_allclose(got, dfdx.jacobian(f)(x), rtol=1e-15)
    assert 1 in seen and all(c == 1 for c in seen if c is not None)
  seen.clear()
  h = dfdx.hessian(lambda x: dnp.sum(f(x) ** 2), sparse=True, chunk_size=2)(x).toarray()
  np.testing.assert_allclose(h, dfdx.hessian(lambda x: dnp.sum(f(x) ** 2))(x), rtol=1e-13)
  assert 2 in seen and all(c <= 2 for c in seen if c is not None)
