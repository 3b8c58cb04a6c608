"""A synthetic hand rig with the sizes of ADBench's small hand model, and hand-tracking data
for it (ADBench's model files, data/hand/model/*.txt there, are not available here).

The rig has ADBench's shapes: 22 bones and 544 vertices. Bones: 0 the forearm (the root),
1 the wrist, then four per finger (thumb, index, middle, ring, pinky), each the child of the
one before, the first the wrist's child; the fourth is the fingertip, which the pose never
rotates. This is the bone order ADBench's pose vector assumes (to_pose_params there: the
angles of finger f go to bones 2 + 4f, 3 + 4f, 4 + 4f). Each bone has a base relative
transform (a small random rotation and an offset along its parent's y axis: palm, phalanx
lengths in centimetres) and the inverse of its base absolute transform. Each vertex sits
around one bone (along its length, 0.5 to 1 cm off its axis) and is weighted to that bone
and, near the joint it starts at, to the bone's parent, the weights summing to 1.

The data, as in ADBench's files: pose parameters theta (26: global rotation 3, global
translation 3, finger angles 20), N points and each point's corresponding vertex. The points
are the vertices of the rig posed at a nearby "true" pose, plus noise. Everything is drawn
from a seeded generator.
"""
from __future__ import annotations

import dataclasses

import numpy as np

N_BONES = 22
N_VERTICES = 544
N_THETA = 26
FINGER_X = (-4.0, -2.0, 0.0, 2.0, 4.0)          # base of each finger across the palm
FINGER_Y = (3.0, 8.0, 8.5, 8.0, 7.0)            # how far up the palm it starts
PHALANGES = ((3.5, 3.0, 2.5), (4.5, 2.5, 2.0), (5.0, 3.0, 2.0), (4.5, 3.0, 2.0),
             (3.5, 2.0, 1.5))                    # lengths of the three rotated bones
TIP = 1.5                                        # length of each fingertip bone
FOREARM, PALM = 6.0, 8.0


@dataclasses.dataclass
class HandModel:
  """ADBench's HandModel, less the triangles (used only by the "complicated" objective).

  parents (22,), -1 for the root; base_relatives, inverse_base_absolutes (22, 4, 4);
  base_positions (4, M) homogeneous; weights (22, M), weights[b, v] of bone b on vertex v.
  """
  parents: np.ndarray
  base_relatives: np.ndarray
  inverse_base_absolutes: np.ndarray
  base_positions: np.ndarray
  weights: np.ndarray


def _rotation(axis_angle):
  """Rodrigues' formula."""
  theta = np.linalg.norm(axis_angle)
  if theta == 0:
    return np.eye(3)
  k = axis_angle / theta
  kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def _bone_lengths_and_offsets():
  parents = [-1, 0]
  offsets = [np.zeros(3), np.array([0.0, FOREARM, 0.0])]
  lengths = [FOREARM, PALM]
  for f in range(5):
    parents += [1, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f]
    offsets.append(np.array([FINGER_X[f], FINGER_Y[f], 0.0]))
    offsets += [np.array([0.0, length, 0.0]) for length in PHALANGES[f]]
    lengths += list(PHALANGES[f]) + [TIP]
  return np.array(parents), offsets, lengths


def make_model(seed=0):
  """The synthetic rig (see the module docstring)."""
  rng = np.random.default_rng(seed)
  parents, offsets, lengths = _bone_lengths_and_offsets()
  base_relatives = np.zeros((N_BONES, 4, 4))
  absolutes = np.zeros((N_BONES, 4, 4))
  for b in range(N_BONES):
    base_relatives[b, :3, :3] = _rotation(0.1 * rng.standard_normal(3)) if b else np.eye(3)
    base_relatives[b, :3, 3] = offsets[b]
    base_relatives[b, 3, 3] = 1
    absolutes[b] = (absolutes[parents[b]] @ base_relatives[b] if parents[b] >= 0
                    else base_relatives[b])
  bone = np.arange(N_VERTICES) % N_BONES
  along = rng.uniform(0, 1, N_VERTICES)                        # fraction of the bone's length
  radius = rng.uniform(0.5, 1.0, N_VERTICES)
  angle = rng.uniform(0, 2 * np.pi, N_VERTICES)
  local = np.stack([radius * np.cos(angle), along * np.array(lengths)[bone],
                    radius * np.sin(angle), np.ones(N_VERTICES)])
  base_positions = np.einsum("vij,jv->iv", absolutes[bone], local)
  weights = np.zeros((N_BONES, N_VERTICES))
  blend = np.where(parents[bone] >= 0, 0.5 * np.clip(1 - 2 * along, 0, 1), 0.0)
  weights[bone, np.arange(N_VERTICES)] = 1 - blend
  has_parent = parents[bone] >= 0
  weights[parents[bone][has_parent], np.arange(N_VERTICES)[has_parent]] += blend[has_parent]
  return HandModel(parents, base_relatives, np.linalg.inv(absolutes), base_positions, weights)


def make_data(model, n_points, posed_vertices, seed=0):
  """theta (26,), points (N, 3), correspondences (N,): points near the rig posed at a true
  pose, theta that pose perturbed. `posed_vertices(theta)` gives the (3, M) posed mesh."""
  rng = np.random.default_rng(seed + 1)
  true_theta = np.concatenate([0.3 * rng.standard_normal(3), rng.standard_normal(3),
                               rng.uniform(-0.2, 0.8, N_THETA - 6)])
  theta = true_theta + 0.05 * rng.standard_normal(N_THETA)
  correspondences = rng.integers(0, N_VERTICES, n_points)
  points = (posed_vertices(true_theta)[:, correspondences].T
            + 0.1 * rng.standard_normal((n_points, 3)))
  return theta, points, correspondences
