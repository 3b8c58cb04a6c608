"""ADBench's bundle adjustment (BA): residuals and their sparse Jacobian, dfdx against a
hand-written NumPy Jacobian and the peers, in one run.

ADBench's BA (src/cpp/shared/ba.h there): n cameras of 11 parameters each (Rodrigues rotation
3, center 3, focal length 1, principal point 2, radial distortion 2), m points (3), and p
observations, each a (camera, point) pair with a 2-D feature and a weight w. Observation i
has the reprojection residual
  Xcam = rodrigues(rot, X - C)   (ADBench's small-angle form X + rot x X when |rot| = 0)
  proj = Xcam[:2] / Xcam[2];  distorted = proj (1 + k1 |proj|^2 + k2 |proj|^4)
  err  = w (distorted f + principal point - feature)
and the weight residual 1 - w^2. The Jacobian (3p rows: 2 per reprojection, then one per
weight; 11n + 3m + p columns) is sparse: each observation's reprojection rows form a 2 x 15
block (its camera, its point, its weight) and each weight row a 1 x 1 block. Every tool
returns it as a scipy.sparse CSR matrix, scattered from the blocks through one shared
pattern (without SciPy, the blocks themselves), together with the residuals.

The residual of one observation is written once (`make_reproj(xp)`, ellipsis indexing, so the
same code runs on one observation under vmap and on all of them at once) for dfdx.numpy,
autograd.numpy and jax.numpy, and transcribed to PyTorch. The derivative is the Jacobian of
one observation, batched over all observations:
  * dfdx: vmap(jacobian(reproj, argnums=(cam, X, w))); `jacobian` picks reverse mode
    (2 outputs, 15 inputs): one linearization, the transpose pulled back over 2 cotangents;
  * JAX (eager and jit) and PyTorch (torch.func): vmap(jacrev) likewise (`--mode fwd` runs
    every tool in forward mode instead: dfdx.jacfwd, jax.jacfwd, torch.func.jacfwd);
  * autograd (no vmap): the residuals of all observations as one batched function and two
    VJPs with a one-hot cotangent per residual component. The blocks are independent, so one
    VJP yields that row of every block: the Jacobian in two reverse passes;
  * the floor: the Jacobian derived by hand (chain rule through the Rodrigues rotation,
    the projection and the distortion), vectorized over observations, each row pulled back
    through the stages as a vector.
The weight rows are each tool's elementwise derivative of 1 - w^2. Gathering the cameras and
points of the observations and scattering the blocks are part of every timed call.

Data: ADBench's files hold one camera, point, weight and feature, replicated n, m and p times,
with observation i = (camera i mod n, point i mod m). Here that one camera, point and weight
are drawn as ADBench's generator draws them (rotation normal, center uniform(0, 100), focal
uniform(0, 1000), principal point 10 x normal, distortion uniform(0, 0.1); point
uniform(0, 10); weight uniform(0, 1)), seeded, and each replica gets 1% relative noise, so
that no two blocks are equal; features are the projections plus unit normal noise. Sizes
are ADBench's ba1..ba20 (n, m, p).

Run: python bench/ba.py [--sizes 49,7776,31843 21,11315,36455] [--samples 5] [--mode rev]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import single_threaded  # noqa: E402

single_threaded()

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
from common import Tool, import_jax, import_torch, measure_tools, size_label  # noqa: E402

try:
  import scipy.sparse as sparse
except ImportError:  # the Jacobian is then returned as its dense blocks
  sparse = None

NAME = "ba"
# ADBench's ba1..ba20: (cameras n, points m, observations p).
SIZES = [(49, 7776, 31843), (21, 11315, 36455), (161, 48126, 182072), (372, 47423, 204472),
         (257, 65132, 225911), (539, 65220, 277273), (93, 61203, 287451),
         (88, 64298, 383937), (810, 88814, 393775), (1197, 126327, 563734),
         (1723, 156502, 678718), (253, 163691, 899155), (245, 198739, 1091386),
         (356, 226730, 1255268), (1102, 780462, 4052340), (1544, 942409, 4750193),
         (1778, 993923, 5001946), (1936, 649673, 5213733), (4585, 1324582, 9125125),
         (13682, 4456117, 2987644)]
DEFAULT_SIZES = SIZES[:2]
N_CAM = 11
BLOCK = N_CAM + 3 + 1  # columns of one reprojection block: camera, point, weight


def parse_size(size):
  """(n, m, p) from a tuple, "n,m,p" or ADBench's name ("ba1")."""
  if isinstance(size, str):
    if size.startswith("ba"):
      return SIZES[int(size[2:]) - 1]
    size = tuple(int(v) for v in size.split(","))
  return tuple(int(v) for v in size)


# ---- data -------------------------------------------------------------------------------------


def ba_data(n, m, p, seed=0):
  """cams (n, 11), X (m, 3), w (p,), obs (p, 2) (camera, point), feats (p, 2)."""
  rng = np.random.default_rng(seed)
  cam = np.concatenate([rng.standard_normal(3), rng.uniform(0, 100, 3), rng.uniform(0, 1000, 1),
                        10 * rng.standard_normal(2), rng.uniform(0, 0.1, 2)])
  point = rng.uniform(0, 10, 3)
  weight = rng.uniform(0, 1)
  cams = cam * (1 + 0.01 * rng.standard_normal((n, N_CAM)))
  X = point * (1 + 0.01 * rng.standard_normal((m, 3)))
  w = weight * (1 + 0.01 * rng.standard_normal(p))
  obs = np.stack([np.arange(p) % n, np.arange(p) % m], axis=1)
  ones = np.ones(p)
  feats = make_reproj(np)(cams[obs[:, 0]], X[obs[:, 1]], ones, 0.0) + rng.standard_normal((p, 2))
  return cams, X, w, obs, feats


# ---- the residuals, written once ---------------------------------------------------------
# Ellipsis indexing and reductions over the last axis: cam is (11,) for one observation (under
# vmap) or (p, 11) for all of them (NumPy, autograd). PyTorch's transcription is below.


def make_reproj(xp):
  def reproj(cam, X, w, feat):
    rot = cam[..., 0:3]
    Xo = X - cam[..., 3:6]
    sqtheta = xp.sum(rot * rot, axis=-1, keepdims=True)
    nonzero = sqtheta != 0
    # ADBench branches on |rot| = 0; a select does that under vmap, and the safe theta keeps
    # the unselected branch finite.
    theta = xp.sqrt(xp.where(nonzero, sqtheta, 1.0))
    c, s = xp.cos(theta), xp.sin(theta)
    axis = rot / theta
    rotated = (Xo * c + xp.cross(axis, Xo) * s
               + axis * (xp.sum(axis * Xo, axis=-1, keepdims=True) * (1 - c)))
    Xcam = xp.where(nonzero, rotated, Xo + xp.cross(rot, Xo))
    proj = Xcam[..., 0:2] / Xcam[..., 2:3]
    rsq = xp.sum(proj * proj, axis=-1, keepdims=True)
    distortion = 1 + cam[..., 9:10] * rsq + cam[..., 10:11] * rsq * rsq
    return w[..., None] * (proj * distortion * cam[..., 6:7] + cam[..., 7:9] - feat)
  return reproj


def weight_error(w):
  return 1 - w * w


def torch_reproj(torch):
  """The residual transcribed to PyTorch (same operations)."""
  def reproj(cam, X, w, feat):
    rot = cam[..., 0:3]
    Xo = X - cam[..., 3:6]
    sqtheta = torch.sum(rot * rot, dim=-1, keepdim=True)
    nonzero = sqtheta != 0
    theta = torch.sqrt(torch.where(nonzero, sqtheta, 1.0))
    c, s = torch.cos(theta), torch.sin(theta)
    axis = rot / theta
    rotated = (Xo * c + torch.linalg.cross(axis, Xo) * s
               + axis * (torch.sum(axis * Xo, dim=-1, keepdim=True) * (1 - c)))
    Xcam = torch.where(nonzero, rotated, Xo + torch.linalg.cross(rot, Xo))
    proj = Xcam[..., 0:2] / Xcam[..., 2:3]
    rsq = torch.sum(proj * proj, dim=-1, keepdim=True)
    distortion = 1 + cam[..., 9:10] * rsq + cam[..., 10:11] * rsq * rsq
    return w[..., None] * (proj * distortion * cam[..., 6:7] + cam[..., 7:9] - feat)
  return reproj


def ba_objective_numpy(cams, X, w, obs, feats):
  """All residuals as one vector: the 2p reprojection entries, then the p weight entries."""
  err = make_reproj(np)(cams[obs[:, 0]], X[obs[:, 1]], w, feats)
  return np.concatenate([err.ravel(), weight_error(w)])


# ---- the sparse Jacobian ----------------------------------------------------------------


class Pattern:
  """The CSR structure of BA's Jacobian, built once per problem: row 2i + a (a = 0, 1) holds
  observation i's camera, point and weight columns (15, in increasing order); row 2p + i its
  weight column. `assemble` only fills the values."""

  def __init__(self, n, m, obs):
    p = len(obs)
    self.p, self.shape = p, (3 * p, N_CAM * n + 3 * m + p)
    cols = np.concatenate([N_CAM * obs[:, :1] + np.arange(N_CAM),
                           N_CAM * n + 3 * obs[:, 1:] + np.arange(3),
                           (N_CAM * n + 3 * m + np.arange(p))[:, None]], axis=1)
    self.indices = np.concatenate([np.repeat(cols, 2, axis=0).ravel(), cols[:, -1]])
    self.indptr = np.concatenate([np.arange(0, 2 * p * BLOCK + 1, BLOCK),
                                  2 * p * BLOCK + np.arange(1, p + 1)])

  def values(self):
    """An empty value array and its view as the (p, 2, 15) blocks."""
    data = np.empty(2 * self.p * BLOCK + self.p)
    return data, data[:2 * self.p * BLOCK].reshape(self.p, 2, BLOCK)

  def assemble(self, d_cam, d_x, d_w, d_werr):
    """The Jacobian from the blocks' parts: (p, 2, 11), (p, 2, 3), (p, 2) and (p,)."""
    data, blocks = self.values()
    blocks[:, :, :N_CAM] = d_cam
    blocks[:, :, N_CAM:BLOCK - 1] = d_x
    blocks[:, :, BLOCK - 1] = d_w
    data[2 * self.p * BLOCK:] = d_werr
    return self.matrix(data)

  def matrix(self, data):
    if sparse is None:
      return data
    return sparse.csr_matrix((data, self.indices, self.indptr), shape=self.shape)


def result(value_parts, jac):
  """(residual vector, (Jacobian values,)): the form every tool's derivative returns and the
  reference is compared in (all tools share the pattern, so the values are the matrix)."""
  value = np.concatenate([np.asarray(v).ravel() for v in value_parts])
  return value, (jac.data if sparse is not None else jac,)


# ---- the hand-written Jacobian (the floor) ---------------------------------------------


def ba_jacobian_numpy(cams, X, w, obs, feats, pattern):
  """Residuals and the Jacobian by the chain rule, written for speed: observations along the
  last axis, and each Jacobian row pulled back through the stages as a vector (no 3 x 3
  matrices). With Xo = X - C, Xcam = c Xo + s (a x Xo) + (1 - c)(a.Xo) a (a = rot / theta),
  proj = Xcam[:2] / z, err = w (f L(|proj|^2) proj + x0 - feat); e is d err_row / d Xcam."""
  cam = cams[obs[:, 0]].T
  rot, Xo = cam[0:3], X[obs[:, 1]].T - cam[3:6]
  f, k1, k2 = cam[6], cam[9], cam[10]
  sq = np.sum(rot * rot, axis=0)
  nonzero = sq != 0
  small = ~nonzero
  theta = np.sqrt(np.where(nonzero, sq, 1.0))
  c, s = np.cos(theta), np.sin(theta)
  u = 1 - c
  axis = rot / theta
  axis_x_xo = np.cross(axis, Xo, axis=0)
  t = np.sum(axis * Xo, axis=0)
  Xcam = Xo * c + axis_x_xo * s + axis * (t * u)
  Xcam[:, small] = Xo[:, small] + np.cross(rot[:, small], Xo[:, small], axis=0)  # ADBench's
  z = Xcam[2]
  proj = Xcam[:2] / z
  rsq = np.sum(proj * proj, axis=0)
  dist = 1 + k1 * rsq + k2 * rsq * rsq
  distorted = proj * dist
  residual = distorted * f + cam[7:9] - feats.T
  wf = w * f
  data, blocks = pattern.values()
  block_row = np.zeros((BLOCK, len(w)))  # one row of every block, observations last
  for row in range(2):
    g = 2 * (k1 + 2 * k2 * rsq) * proj[row]
    e = np.stack([wf * (dist * (row == 0) + g * proj[0]) / z,
                  wf * (dist * (row == 1) + g * proj[1]) / z,
                  -wf * (dist * proj[row] + g * rsq) / z])
    e_axis = np.sum(e * axis, axis=0)
    # e^T d Xcam / d Xo (= e^T R) and e^T d Xcam / d rot, term by term (d axis / d rot =
    # (I - a a^T) / theta and d theta / d rot = a).
    d_xo = c * e + s * np.cross(e, axis, axis=0) + u * e_axis * axis
    q = -s * np.cross(e, Xo, axis=0) + t * u * e + u * e_axis * Xo
    d_rot = ((-s * np.sum(e * Xo, axis=0) + c * np.sum(e * axis_x_xo, axis=0) + t * s * e_axis)
             * axis + (q - axis * np.sum(axis * q, axis=0)) / theta)
    if small.any():  # Xcam = Xo + rot x Xo
      d_xo[:, small] = e[:, small] + np.cross(e[:, small], rot[:, small], axis=0)
      d_rot[:, small] = np.cross(Xo[:, small], e[:, small], axis=0)
    block_row[0:3] = d_rot
    np.negative(d_xo, out=block_row[3:6])
    block_row[6] = w * distorted[row]
    block_row[7 + row], block_row[8 - row] = w, 0
    block_row[9] = wf * rsq * proj[row]
    block_row[10] = block_row[9] * rsq
    block_row[11:14] = d_xo
    block_row[14] = residual[row]
    blocks[:, row, :] = block_row.T
  data[2 * len(w) * BLOCK:] = -2 * w
  return result(((w * residual).T, weight_error(w)), pattern.matrix(data))


# ---- finite differences -------------------------------------------------------------------


def jacobian_fd_error(objective, params, jac_times, directions=3, step=1e-3, seed=0):
  """Max relative error (inf-norm) of J v against fourth-order central differences of the
  residual vector along random directions v (entries standard normal)."""
  rng = np.random.default_rng(seed)
  worst = 0.0
  for _ in range(directions):
    v = [rng.standard_normal(np.shape(x)) for x in params]

    def at(h):
      return objective(*[x + h * d for x, d in zip(params, v)])
    numeric = (8 * (at(step) - at(-step)) - (at(2 * step) - at(-2 * step))) / (12 * step)
    exact = jac_times(v)
    worst = max(worst, float(np.max(np.abs(numeric - exact)) / np.max(np.abs(exact))))
  return worst


# ---- the tools ----------------------------------------------------------------------------


def tool_makers(data, pattern, mode="rev"):
  """{tool name: () -> Tool} for BA with the inputs bound. Each derivative returns the
  residuals and the sparse Jacobian's values (see `result`)."""
  cams, X, w, obs, feats = data
  ci, pi = obs[:, 0], obs[:, 1]
  wrt = (0, 1, 2)  # camera, point, weight

  def numpy_tool():
    return Tool(lambda: ba_objective_numpy(*data),
                lambda: ba_jacobian_numpy(*data, pattern), "Jacobian by hand")

  def dfdx_parts(jit):
    reproj = make_reproj(dnp)
    jac = (dfdx.jacobian(reproj, wrt, return_value=True) if mode == "rev"
           else dfdx.jacfwd(reproj, wrt, return_value=True))
    blocks = dfdx.vmap(jac)
    d_werr = dfdx.vector_grad(weight_error)

    def objective(cams, X, w, ci, pi, feats):
      return reproj(cams[ci], X[pi], w, feats), weight_error(w)

    def derivative(cams, X, w, ci, pi, feats):
      (d_cam, d_x, d_w), err = blocks(cams[ci], X[pi], w, feats)
      return err, weight_error(w), d_cam, d_x, d_w, d_werr(w)
    if jit:
      objective, derivative = dfdx.jit(objective), dfdx.jit(derivative)
    args = (cams, X, w, ci, pi, feats)

    def run():
      err, werr, *parts = derivative(*args)
      return result((err, werr), pattern.assemble(*parts))
    return Tool(lambda: objective(*args), run,
                "vmap(jacobian)" if mode == "rev" else "vmap(jacfwd)")

  def autograd_tool():
    import autograd
    import autograd.numpy as anp
    reproj = make_reproj(anp)
    d_werr = autograd.elementwise_grad(weight_error)
    basis = np.zeros((2, len(w), 2))
    basis[0, :, 0] = basis[1, :, 1] = 1

    def derivative():
      cam, x = cams[ci], X[pi]
      vjp, err = autograd.make_vjp(lambda c, p, ww: reproj(c, p, ww, feats), wrt)(cam, x, w)
      rows = [vjp(ct) for ct in basis]  # one row of every block per VJP
      parts = [np.stack([r[k] for r in rows], axis=1) for k in range(3)]
      return result((err, weight_error(w)), pattern.assemble(*parts, d_werr(w)))
    return Tool(lambda: (reproj(cams[ci], X[pi], w, feats), weight_error(w)), derivative,
                "2 batched VJPs")

  def jax_tool(jit):
    jax, jnp = import_jax()
    reproj = make_reproj(jnp)
    jac = jax.jacrev if mode == "rev" else jax.jacfwd
    # has_aux carries each block's residual out beside its Jacobian.
    blocks = jax.vmap(jac(lambda c, p, ww, ft: (reproj(c, p, ww, ft),) * 2, wrt, has_aux=True))
    d_werr = jax.vmap(jax.grad(weight_error))

    def objective(cams, X, w, ci, pi, feats):
      return reproj(cams[ci], X[pi], w, feats), weight_error(w)

    def derivative(cams, X, w, ci, pi, feats):
      (d_cam, d_x, d_w), err = blocks(cams[ci], X[pi], w, feats)
      return err, weight_error(w), d_cam, d_x, d_w, d_werr(w)
    if jit:
      objective, derivative = jax.jit(objective), jax.jit(derivative)
    args = [jnp.asarray(a) for a in (cams, X, w, ci, pi, feats)]

    def run():
      err, werr, *parts = [np.asarray(a) for a in derivative(*args)]
      return result((err, werr), pattern.assemble(*parts))
    return Tool(lambda: [np.asarray(a) for a in objective(*args)], run,
                f"vmap({'jacrev' if mode == 'rev' else 'jacfwd'})")

  def torch_tool():
    torch = import_torch()
    func = torch.func
    reproj = torch_reproj(torch)
    jac = func.jacrev if mode == "rev" else func.jacfwd
    blocks = func.vmap(jac(lambda c, p, ww, ft: (reproj(c, p, ww, ft),) * 2, wrt, has_aux=True))
    d_werr = func.vmap(func.grad(weight_error))
    cams_t, X_t, w_t, feats_t = (torch.from_numpy(a) for a in (cams, X, w, feats))
    ci_t, pi_t = torch.from_numpy(ci), torch.from_numpy(pi)

    def objective():
      with torch.no_grad():
        return (reproj(cams_t[ci_t], X_t[pi_t], w_t, feats_t).numpy(),
                weight_error(w_t).numpy())

    def derivative():
      (d_cam, d_x, d_w), err = blocks(cams_t[ci_t], X_t[pi_t], w_t, feats_t)
      return result((err.detach().numpy(), weight_error(w_t).numpy()),
                    pattern.assemble(d_cam.numpy(), d_x.numpy(), d_w.numpy(),
                                     d_werr(w_t).numpy()))
    return Tool(objective, derivative,
                f"func.vmap({'jacrev' if mode == 'rev' else 'jacfwd'})")

  return {"numpy": numpy_tool, "dfdx eager": lambda: dfdx_parts(False),
          "dfdx jit": lambda: dfdx_parts(True), "autograd": autograd_tool,
          "jax eager": lambda: jax_tool(False), "jax jit": lambda: jax_tool(True),
          "pytorch": torch_tool}


def measure(size, tools=None, samples=5, mode="rev"):
  """Rows (see common.py) for BA at size (n, m, p) (or "ba1".."ba20")."""
  n, m, p = parse_size(size)
  data = ba_data(n, m, p)
  cams, X, w, obs, feats = data
  pattern = Pattern(n, m, obs)
  reference = ba_jacobian_numpy(*data, pattern)
  fd = None
  if sparse is not None:
    jac = pattern.matrix(reference[1][0])
    fd = jacobian_fd_error(lambda c, x, ww: ba_objective_numpy(c, x, ww, obs, feats),
                           (cams, X, w), lambda v: jac @ np.concatenate([d.ravel() for d in v]),
                           step=1e-4)
  n_params = cams.size + X.size + w.size
  return measure_tools(NAME, (n, m, p), n_params, reference, tool_makers(data, pattern, mode),
                       tools, samples, fd)


# ---- standalone run -------------------------------------------------------------------------


def _cell(v, spec):
  """v formatted by spec, or a dash of the same width."""
  return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))


def print_rows(rows, base_tool="numpy"):
  """The table of one problem's rows: times in ms, ratios to the floor's derivative (or, where
  the floor has none, its objective)."""
  header = (f"{'size':>20}  {'tool':<11} {'objective ms':>12} {'derivative ms':>13} "
            f"{'x floor':>8} {'first s':>8} {'peak MB':>8} {'error':>8} {'fd error':>8}  note")
  print(header)
  print("-" * len(header))
  by_size = {}
  for r in rows:
    by_size.setdefault(r["size"], []).append(r)
  fmt = _cell
  for size, group in by_size.items():
    floor = next((r for r in group if r["tool"] == base_tool), None)
    base = floor and (floor["derivative_s"] or floor["objective_s"])
    for r in group:
      t, obj = r["derivative_s"], r["objective_s"]
      ratio = t / base if t and base else None
      print(f"{size:>20}  {r['tool']:<11} {fmt(obj and obj * 1e3, '12.3f')} "
            f"{fmt(t and t * 1e3, '13.2f')} {fmt(ratio, '8.2f')} "
            f"{fmt(r['first_call_s'], '8.3f')} {fmt(r['peak_mb'], '8.1f')} "
            f"{fmt(r['error'], '8.1e')} {fmt(r['fd_error'], '8.1e')}  {r['note']}")
    print(" " * 22 + verdicts(group))


def verdicts(group):
  """dfdx eager against the fastest eager peer, dfdx jit against JAX jit."""
  t = {r["tool"]: r["derivative_s"] for r in group if r["derivative_s"]}
  out = []
  peers = {k: v for k, v in t.items() if k in ("autograd", "jax eager", "pytorch")}
  if "dfdx eager" in t and peers:
    best = min(peers, key=peers.get)
    out.append(f"dfdx eager / fastest eager peer ({best}) = {t['dfdx eager'] / peers[best]:.2f}"
               " (target < 1)")
  if "dfdx jit" in t and "jax jit" in t:
    out.append(f"dfdx jit / jax jit = {t['dfdx jit'] / t['jax jit']:.2f}")
  return "; ".join(out)


def main():
  parser = argparse.ArgumentParser(description="ADBench BA: residuals and sparse Jacobian")
  parser.add_argument("--sizes", nargs="*", default=[size_label(s) for s in DEFAULT_SIZES],
                      help="n,m,p triples or ADBench names (ba1 .. ba20)")
  parser.add_argument("--samples", type=int, default=5)
  parser.add_argument("--tools", nargs="*", default=None)
  parser.add_argument("--mode", choices=("rev", "fwd"), default="rev",
                      help="mode of every vmapped per-observation Jacobian")
  args = parser.parse_args()
  tools = None if args.tools is None else ["numpy"] + args.tools
  print(f"ADBench BA: residuals and sparse Jacobian ({args.mode} mode); medians of "
        f"{args.samples} interleaved samples; one thread for every library; NumPy "
        f"{np.__version__}, Python {sys.version.split()[0]}")
  rows = []
  for size in args.sizes:
    rows += measure(size, tools, args.samples, args.mode)
  print_rows(rows)
  print(f"\nRerun: python bench/ba.py --sizes {' '.join(args.sizes)} --samples {args.samples} "
        f"--mode {args.mode}")


if __name__ == "__main__":
  main()
