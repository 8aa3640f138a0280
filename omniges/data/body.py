"""SMPL-X body representation: joint sets per part, rot6d both ways, translation velocity encoding.

Conventions follow GestureLSM/EMAGE so their checkpoints and statistics apply unchanged:
rot6d is the first two ROWS of the rotation matrix (pytorch3d `matrix_to_rotation_6d`), parts are
joint subsets of the 55-joint SMPL-X tree, and lower_trans ends with (vx, y, vz) translation where
x/z are per-frame velocities of the first-frame-relative position and y is absolute height.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

NUM_JOINTS = 55
POSE_DIM = NUM_JOINTS * 3
EXPRESSION_DIM = 100
JAW_JOINT = 22
EYE_JOINTS = (23, 24)

PART_JOINTS: dict[str, tuple[int, ...]] = {
    "upper": (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21),
    "hands": tuple(range(25, 55)),
    "lower_trans": (0, 1, 2, 4, 5, 7, 8, 10, 11),
}
PART_NAMES = ("upper", "hands", "lower_trans", "face")


def part_dim(part: str, *, face_jaw: bool = True) -> int:
    """Feature width of a part: 6 per joint, +3 translation for lower_trans, 100 (+6 jaw) for face."""
    if part == "face":
        return EXPRESSION_DIM + (6 if face_jaw else 0)
    if part not in PART_JOINTS:
        raise ValueError(f"unknown body part {part!r}; expected one of {PART_NAMES}")
    return 6 * len(PART_JOINTS[part]) + (3 if part == "lower_trans" else 0)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices."""
    flat = np.asarray(axis_angle, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(*np.shape(axis_angle)[:-1], 3, 3)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, pi]."""
    flat = np.asarray(matrix, dtype=np.float64).reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*np.shape(matrix)[:-2], 3)


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): the first two rows, flattened (pytorch3d convention)."""
    return np.asarray(matrix)[..., :2, :].reshape(*np.shape(matrix)[:-2], 6)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two rows (pytorch3d `rotation_6d_to_matrix`)."""
    rot6d = np.asarray(rot6d, dtype=np.float64)
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-8)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-8)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def axis_angle_to_rot6d(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 6)."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3)."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def trans_to_velocity(trans: np.ndarray) -> np.ndarray:
    """(T, 3) translation -> (vx, y, vz): x/z frame deltas (frame 0 copies frame 1, as GestureLSM), y absolute."""
    trans = np.asarray(trans, dtype=np.float64)
    out = np.zeros_like(trans)
    rel = trans - trans[:1]
    for axis in (0, 2):
        out[1:, axis] = np.diff(rel[:, axis])
        out[0, axis] = out[1, axis] if len(trans) > 1 else 0.0
    out[:, 1] = trans[:, 1]
    return out


def velocity_to_trans(trans_vel: np.ndarray, trans_init: np.ndarray | None = None) -> np.ndarray:
    """Inverse of `trans_to_velocity`: integrate x/z from `trans_init` (origin when None); frame 0's value is unused."""
    trans_vel = np.asarray(trans_vel, dtype=np.float64)
    start = np.zeros(3) if trans_init is None else np.asarray(trans_init, dtype=np.float64)
    out = np.empty_like(trans_vel)
    for axis in (0, 2):
        steps = trans_vel[:, axis].copy()
        steps[0] = 0.0
        out[:, axis] = start[axis] + np.cumsum(steps)
    out[:, 1] = trans_vel[:, 1]
    return out


def bound_root_drift(trans: np.ndarray, horizon_frames: float) -> np.ndarray:
    """(T, 3) root path re-centred on its start over `horizon_frames`: x/z frame steps integrated with a leak.

    p_t = lam * p_(t-1) + step_t with lam = exp(-1 / horizon_frames): motion faster than the horizon passes
    unchanged, a velocity bias b settles at b * horizon instead of growing with the length, and the offset
    from the first frame never exceeds max |step| / (1 - lam). y (height) is kept as it is.
    """
    trans = np.asarray(trans, dtype=np.float64)
    if horizon_frames <= 0 or len(trans) < 2:
        return trans.copy()
    out = trans.copy()
    out[1:, [0, 2]] = trans[0, [0, 2]] + leaky_sum(np.diff(trans[:, [0, 2]], axis=0), drift_leak(horizon_frames))[0]
    return out


def drift_leak(horizon_frames: float) -> float:
    """The leak of `bound_root_drift` over `horizon_frames` (1: none, for a horizon <= 0)."""
    return float(np.exp(-1.0 / horizon_frames)) if horizon_frames > 0 else 1.0


def leaky_sum(steps: np.ndarray, leak: float, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """y_t = leak * y_(t-1) + step_t down the rows of `steps` (n, k), from y_(-1) = `state` (zeros): (y, the last
    y, to continue from). `bound_root_drift` runs it over a whole path, a live stream hop by hop."""
    steps = np.asarray(steps, dtype=np.float64)
    state = np.zeros(steps.shape[1]) if state is None else np.asarray(state, dtype=np.float64)
    if not len(steps):
        return steps.copy(), state
    out, _ = lfilter([1.0], [1.0, -leak], steps, axis=0, zi=(leak * state)[None])
    return out, out[-1].copy()


def split_parts(
    poses: np.ndarray, trans: np.ndarray, expressions: np.ndarray, *, face_jaw: bool = True
) -> dict[str, np.ndarray]:
    """SMPL-X arrays (T,165), (T,3), (T,100) -> {part: (T, part_dim)} float32, un-normalised."""
    poses = np.asarray(poses)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM:
        raise ValueError(f"poses must be (T, {POSE_DIM}), got {poses.shape}")
    rot6d = axis_angle_to_rot6d(poses.reshape(len(poses), NUM_JOINTS, 3))
    parts = {
        name: rot6d[:, list(joints)].reshape(len(poses), -1) for name, joints in PART_JOINTS.items()
    }
    parts["lower_trans"] = np.concatenate([parts["lower_trans"], trans_to_velocity(trans)], axis=1)
    face = [np.asarray(expressions, dtype=np.float64)]
    if face_jaw:
        face.append(rot6d[:, JAW_JOINT])
    parts["face"] = np.concatenate(face, axis=1)
    return {name: value.astype(np.float32) for name, value in parts.items()}


def merge_parts(
    parts: dict[str, np.ndarray], *, trans_init: np.ndarray | None = None, face_jaw: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """{part: (T, D)} -> poses (T,165) float32, trans (T,3), expressions (T,100); eyes at rest, jaw from face."""
    length = len(parts["upper"])
    rot = np.zeros((length, NUM_JOINTS, 3, 3))
    rot[:] = np.eye(3)
    for name, joints in PART_JOINTS.items():
        values = np.asarray(parts[name])[:, : 6 * len(joints)]
        rot[:, list(joints)] = rot6d_to_matrix(values.reshape(length, len(joints), 6))
    face = np.asarray(parts["face"])
    if face_jaw:
        rot[:, JAW_JOINT] = rot6d_to_matrix(face[:, EXPRESSION_DIM : EXPRESSION_DIM + 6])
    poses = matrix_to_axis_angle(rot).reshape(length, POSE_DIM).astype(np.float32)
    trans = velocity_to_trans(np.asarray(parts["lower_trans"])[:, -3:], trans_init)
    return poses, trans, face[:, :EXPRESSION_DIM].astype(np.float64)


def joint_angle_error_deg(rot6d_a: np.ndarray, rot6d_b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between two (..., 6) rotation sets."""
    rel = np.einsum("...ij,...kj->...ik", rot6d_to_matrix(rot6d_a), rot6d_to_matrix(rot6d_b))
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos))
