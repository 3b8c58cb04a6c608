"""ADBench's hand tracking (HT), "simple" variant: residuals and their dense Jacobian with
respect to the 26 pose parameters, dfdx against the peers, in one run.

ADBench's objective (src/cpp/shared/hand_light_matrix.h there): theta (26) becomes the pose
parameters (global rotation, scale 1, global translation, then per bone xzy Euler angles:
two for each finger's first joint, one for the next two). The posed mesh is
  relatives  = base_relative[b] @ [R_euler(b) 0; 0 1]              (R = Rz Ry Rx)
  absolutes  = absolutes[parent] @ relatives, down the bone tree
  transforms = absolutes @ inverse_base_absolute
  vertex v   = sum_b weight[b, v] (transforms[b] @ base_position[v])[:3]      (skinning)
then rotated by the angle-axis global rotation (identity below |angle| 1e-4, as ADBench)
and translated. The residual of point i is point_i - vertex[correspondence_i] (3 per point,
ADBench's order). "Simple" means no triangle coordinates (ADBench's "complicated" variant
also fits barycentric us on the mesh's triangles).

The rig is synthetic (hand_model.py): ADBench's model files are not available here, so a
seeded rig with ADBench's small-model sizes stands in for them (22 bones, 544 vertices,
each vertex weighted to one or two bones), with ADBench's point counts (hand1..hand12 of
"simple_small": 100 .. 100000 points).

The objective is written once (`make_hand_objective(xp, ...)`) for dfdx.numpy, autograd and
jax.numpy and transcribed to PyTorch. Written for arrays: the 22 Euler rotations at once;
the bone tree one depth at a time (6 levels, each one batched matmul of parents' absolutes);
the skinning as one contraction, (3, 22 x 4) transforms times the constant (22 x 4, M)
weighted base positions; the residuals as a gather of rows of the transposed posed mesh.
The Jacobian (3N x 26) is by forward mode everywhere: dfdx.jacfwd, jax.jacfwd (eager and jit),
torch.func.jacfwd, and autograd's forward mode (make_jvp, one pass per parameter: 26
passes, fewer than reverse mode's 3N). The reference Jacobian is the complex step on the
NumPy objective (exact to rounding: 26 complex evaluations), checked against central
differences; the floor is the NumPy objective (there is no hand-written Jacobian).

Run: python bench/hand.py [--sizes 100 1600 12800] [--samples 5]
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
import hand_model  # noqa: E402
from ba import jacobian_fd_error, print_rows  # noqa: E402
from common import Tool, import_jax, import_torch, measure_tools, size_label  # noqa: E402

NAME = "hand"
# ADBench's simple_small instances hand1..hand12: number of points (correspondences).
SIZES = [100, 192, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 100000]
DEFAULT_SIZES = [100, 1600, 12800]


def parse_size(size):
  """Points N from an int, (N,), "N" or ADBench's name ("hand1")."""
  if isinstance(size, str):
    return SIZES[int(size[4:]) - 1] if size.startswith("hand") else int(size)
  return int(size[0] if isinstance(size, tuple) else size)


# ---- constants of the rig ----------------------------------------------------------------


class Rig:
  """What the objective needs from the model, prepared once: the gather plan from theta to the
  bones' Euler angles, the bones grouped by depth, and the weighted base positions."""

  def __init__(self, model):
    n_bones = len(model.parents)
    # Euler angles of every bone as a gather from [theta, 0] (index 26 is the zero), in the
    # order of ADBench's to_pose_params: finger f's three rotated bones are 2 + 4f .. 4 + 4f.
    plan = np.full((n_bones, 3), hand_model.N_THETA, dtype=np.intp)
    i_theta = 6
    for f in range(5):
      for j in range(3):
        plan[2 + 4 * f + j, 0] = i_theta
        i_theta += 1
        if j == 0:
          plan[2 + 4 * f, 1] = i_theta
          i_theta += 1
    self.plan = plan.ravel()
    depth = np.zeros(n_bones, dtype=int)
    for b, parent in enumerate(model.parents):  # parents precede their children
      depth[b] = depth[parent] + 1 if parent >= 0 else 0
    self.levels = [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]
    # Position of each bone's parent within the level above.
    self.parent_slots = [None] + [
        np.searchsorted(self.levels[d - 1], model.parents[self.levels[d]])
        for d in range(1, len(self.levels))]
    self.unsort = np.argsort(np.concatenate(self.levels))
    self.base_relatives = model.base_relatives
    self.inverse_base_absolutes = model.inverse_base_absolutes
    # skin[(b, j), v] = weight[b, v] base_position[j, v]: skinning is one contraction with it.
    self.skin = (model.weights[:, None, :] * model.base_positions[None, :, :]).reshape(
        4 * n_bones, -1)
    self.n_bones = n_bones


# ---- the objective, written once ---------------------------------------------------------


def make_hand_objective(xp, rig, correspondences):
  def euler_rotations(angles):
    """Rz Ry Rx for each row of xzy angles (ADBench's order: x, then z, then y)."""
    cx, cz, cy = xp.cos(angles[:, 0]), xp.cos(angles[:, 1]), xp.cos(angles[:, 2])
    sx, sz, sy = xp.sin(angles[:, 0]), xp.sin(angles[:, 1]), xp.sin(angles[:, 2])
    entries = [cy * cz, -cx * sz + sx * sy * cz, sx * sz + cx * sy * cz,
               cy * sz, cx * cz + sx * sy * sz, -sx * cz + cx * sy * sz,
               -sy, sx * cy, cx * cy]
    return xp.reshape(xp.stack(entries, axis=-1), (-1, 3, 3))

  def angle_axis_rotation(angle_axis):
    norm = xp.sqrt(xp.sum(angle_axis * angle_axis))
    small = norm < 1e-4
    n = xp.where(small, 1.0, norm)  # keeps the unselected branch finite
    x, y, z = angle_axis[0] / n, angle_axis[1] / n, angle_axis[2] / n
    s, c = xp.sin(norm), xp.cos(norm)
    entries = [x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s,
               x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s,
               x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c]
    return xp.where(small, np.eye(3), xp.reshape(xp.stack(entries), (3, 3)))

  def posed_vertices(theta):
    """The posed mesh, 3 x M."""
    angles = xp.reshape(xp.concatenate([theta, np.zeros(1)])[rig.plan], (rig.n_bones, 3))
    base = rig.base_relatives
    relatives = xp.concatenate([xp.matmul(base[:, :, :3], euler_rotations(angles)),
                                base[:, :, 3:]], axis=2)
    level = relatives[rig.levels[0]]  # the roots: absolute = relative
    absolutes = [level]
    for bones, slots in zip(rig.levels[1:], rig.parent_slots[1:]):
      level = xp.matmul(level[slots], relatives[bones])
      absolutes.append(level)
    absolutes = xp.concatenate(absolutes, axis=0)[rig.unsort]
    transforms = xp.matmul(absolutes, rig.inverse_base_absolutes)[:, :3, :]
    stacked = xp.reshape(xp.transpose(transforms, (1, 0, 2)), (3, 4 * rig.n_bones))
    vertices = xp.matmul(stacked, rig.skin)                          # 3 x M, skinned
    return xp.matmul(angle_axis_rotation(theta[0:3]), vertices) + theta[3:6][:, None]

  def hand_objective(theta, points):
    # Rows of the (small) transposed mesh: the gather then yields ADBench's point-major order.
    return xp.reshape(points - xp.transpose(posed_vertices(theta))[correspondences], (-1,))
  hand_objective.posed_vertices = posed_vertices
  return hand_objective


def torch_hand_objective(torch, rig, correspondences):
  """The objective transcribed to PyTorch (same operations)."""
  t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
  plan, unsort, corr = t(rig.plan), t(rig.unsort), t(correspondences)
  levels = [t(b) for b in rig.levels]
  slots = [None] + [t(s) for s in rig.parent_slots[1:]]
  base, inverse, skin = t(rig.base_relatives), t(rig.inverse_base_absolutes), t(rig.skin)
  eye, zero = torch.eye(3, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)

  def euler_rotations(angles):
    cx, cz, cy = torch.cos(angles[:, 0]), torch.cos(angles[:, 1]), torch.cos(angles[:, 2])
    sx, sz, sy = torch.sin(angles[:, 0]), torch.sin(angles[:, 1]), torch.sin(angles[:, 2])
    entries = [cy * cz, -cx * sz + sx * sy * cz, sx * sz + cx * sy * cz,
               cy * sz, cx * cz + sx * sy * sz, -sx * cz + cx * sy * sz,
               -sy, sx * cy, cx * cy]
    return torch.stack(entries, dim=-1).reshape(-1, 3, 3)

  def angle_axis_rotation(angle_axis):
    norm = torch.sqrt(torch.sum(angle_axis * angle_axis))
    small = norm < 1e-4
    n = torch.where(small, 1.0, norm)
    x, y, z = angle_axis[0] / n, angle_axis[1] / n, angle_axis[2] / n
    s, c = torch.sin(norm), torch.cos(norm)
    entries = [x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s,
               x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s,
               x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c]
    return torch.where(small, eye, torch.stack(entries).reshape(3, 3))

  def hand_objective(theta, points):
    angles = torch.cat([theta, zero])[plan].reshape(rig.n_bones, 3)
    relatives = torch.cat([torch.matmul(base[:, :, :3], euler_rotations(angles)),
                           base[:, :, 3:]], dim=2)
    level = relatives[levels[0]]
    absolutes = [level]
    for bones, slot in zip(levels[1:], slots[1:]):
      level = torch.matmul(level[slot], relatives[bones])
      absolutes.append(level)
    absolutes = torch.cat(absolutes, dim=0)[unsort]
    transforms = torch.matmul(absolutes, inverse)[:, :3, :]
    vertices = torch.matmul(transforms.permute(1, 0, 2).reshape(3, 4 * rig.n_bones), skin)
    posed = torch.matmul(angle_axis_rotation(theta[0:3]), vertices) + theta[3:6][:, None]
    return (points - posed.T[corr]).reshape(-1)
  return hand_objective


# ---- data and the reference -----------------------------------------------------------


def hand_data(n_points, seed=0):
  """(rig, theta, points, correspondences) for N points."""
  model = hand_model.make_model(seed)
  rig = Rig(model)
  posed = make_hand_objective(np, rig, None).posed_vertices
  theta, points, correspondences = hand_model.make_data(model, n_points, posed, seed)
  return rig, theta, points, correspondences


def complex_step_jacobian(objective, theta, points, step=1e-30):
  """d objective / d theta by the complex step: Im f(theta + i h e_j) / h, exact to rounding
  (no subtraction), one complex evaluation per parameter."""
  columns = [objective(theta + 1j * step * e, points).imag / step for e in np.eye(len(theta))]
  return np.stack(columns, axis=1)


# ---- the tools ----------------------------------------------------------------------------


def tool_makers(rig, theta, points, correspondences):
  """{tool name: () -> Tool}; each derivative returns (residuals, (Jacobian (3N, 26),))."""

  def numpy_tool():
    objective = make_hand_objective(np, rig, correspondences)
    return Tool(lambda: objective(theta, points), None, "objective only (the floor)")

  def dfdx_tool(jit):
    objective = make_hand_objective(dnp, rig, correspondences)
    jac = dfdx.jacfwd(objective, return_value=True)
    if jit:
      objective, jac = dfdx.jit(objective), dfdx.jit(jac)

    def derivative():
      jacobian, value = jac(theta, points)
      return value, (jacobian,)
    return Tool(lambda: objective(theta, points), derivative, "jacfwd")

  def autograd_tool():
    import autograd
    import autograd.numpy as anp
    objective = make_hand_objective(anp, rig, correspondences)
    basis = np.eye(len(theta))

    def derivative():
      columns = []
      for direction in basis:  # one forward pass per parameter
        value, column = autograd.make_jvp(objective)(theta, points)(direction)
        columns.append(column)
      return value, (np.stack(columns, axis=1),)
    return Tool(lambda: objective(theta, points), derivative, "26 make_jvp passes")

  def jax_tool(jit):
    jax, jnp = import_jax()
    objective = make_hand_objective(jnp, rig, correspondences)
    jac = jax.jacfwd(lambda th, pts: (objective(th, pts),) * 2, has_aux=True)
    if jit:
      objective, jac = jax.jit(objective), jax.jit(jac)
    theta_j, points_j = jnp.asarray(theta), jnp.asarray(points)

    def derivative():
      jacobian, value = jac(theta_j, points_j)
      return np.asarray(value), (np.asarray(jacobian),)
    return Tool(lambda: np.asarray(objective(theta_j, points_j)), derivative, "jacfwd")

  def torch_tool():
    torch = import_torch()
    objective = torch_hand_objective(torch, rig, correspondences)
    jac = torch.func.jacfwd(lambda th, pts: (objective(th, pts),) * 2, has_aux=True)
    theta_t, points_t = torch.from_numpy(theta), torch.from_numpy(points)

    def value():
      with torch.no_grad():
        return objective(theta_t, points_t).numpy()

    def derivative():
      jacobian, out = jac(theta_t, points_t)
      return out.detach().numpy(), (jacobian.numpy(),)
    return Tool(value, derivative, "func.jacfwd")

  return {"numpy": numpy_tool, "dfdx eager": lambda: dfdx_tool(False),
          "dfdx jit": lambda: dfdx_tool(True), "autograd": autograd_tool,
          "jax eager": lambda: jax_tool(False), "jax jit": lambda: jax_tool(True),
          "pytorch": torch_tool}


def measure(size, tools=None, samples=5):
  """Rows (see common.py) for the simple hand objective with N points (or "hand1".."hand12")."""
  n_points = parse_size(size)
  rig, theta, points, correspondences = hand_data(n_points)
  objective = make_hand_objective(np, rig, correspondences)
  jacobian = complex_step_jacobian(objective, theta, points)
  reference = (objective(theta, points), (jacobian,))
  fd = jacobian_fd_error(lambda th: objective(th, points), (theta,), lambda v: jacobian @ v[0])
  return measure_tools(NAME, n_points, len(theta), reference,
                       tool_makers(rig, theta, points, correspondences), tools, samples, fd)


def main():
  parser = argparse.ArgumentParser(description="ADBench hand tracking (simple): Jacobian")
  parser.add_argument("--sizes", nargs="*", default=[size_label(s) for s in DEFAULT_SIZES],
                      help="numbers of points or ADBench names (hand1 .. hand12)")
  parser.add_argument("--samples", type=int, default=5)
  parser.add_argument("--tools", nargs="*", default=None)
  args = parser.parse_args()
  tools = None if args.tools is None else ["numpy"] + args.tools
  print(f"ADBench hand tracking (simple, synthetic small rig): residuals and Jacobian d r / d "
        f"theta (3N x 26); medians of {args.samples} interleaved samples; one thread for every "
        f"library; NumPy {np.__version__}, Python {sys.version.split()[0]}")
  rows = []
  for size in args.sizes:
    rows += measure(size, tools, args.samples)
  print_rows(rows)
  print(f"\nx floor: derivative time / the NumPy objective's time.\n"
        f"Rerun: python bench/hand.py --sizes {' '.join(args.sizes)} --samples {args.samples}")


if __name__ == "__main__":
  main()
