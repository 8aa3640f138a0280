"""SMPL-X kinematics without model files: the joint tree, a rest skeleton, forward kinematics and joint speeds.

The rest skeleton is built in (the neutral model's body joints, fingers by hand anatomy) or read from a
SMPL-X model file for given shape betas. Coordinates: y up, the body faces +z, +x is the subject's left.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from omniges.data.body import NUM_JOINTS, POSE_DIM, axis_angle_to_matrix

if TYPE_CHECKING:
    import torch

# Parent of each of the 55 SMPL-X joints (-1: root), the model's kintree_table row 0.
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip
_FINGER_NAMES = ("index", "middle", "pinky", "ring", "thumb")
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    *(f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGER_NAMES for k in (1, 2, 3)),
)  # fmt: skip

# Left-hand finger offsets from their parent (metres, T-pose, palm down, fingers along +x, thumb at +z).
# Order per finger: knuckle from the wrist, then the two distal segments; fingers in SMPL-X order.
_LEFT_FINGERS = {
    "index": ((0.095, -0.008, 0.026), (0.036, -0.003, 0.002), (0.025, -0.003, 0.001)),
    "middle": ((0.100, -0.008, 0.004), (0.040, -0.004, 0.000), (0.028, -0.003, 0.000)),
    "pinky": ((0.082, -0.014, -0.038), (0.025, -0.003, -0.004), (0.020, -0.003, -0.002)),
    "ring": ((0.092, -0.010, -0.018), (0.036, -0.004, -0.002), (0.027, -0.003, -0.001)),
    "thumb": ((0.028, -0.016, 0.026), (0.028, -0.006, 0.022), (0.026, -0.004, 0.014)),
}
_BODY_REST = (
    (0.003, -0.351, 0.012), (0.061, -0.441, -0.014), (-0.060, -0.447, -0.009), (0.000, -0.239, -0.027),
    (0.116, -0.822, -0.003), (-0.104, -0.818, -0.006), (0.010, -0.104, -0.005), (0.073, -1.231, -0.056),
    (-0.089, -1.228, -0.047), (-0.002, -0.047, 0.023), (0.120, -1.283, 0.077), (-0.126, -1.284, 0.084),
    (-0.013, 0.112, -0.021), (0.045, 0.028, -0.005), (-0.048, 0.026, -0.010), (0.011, 0.265, -0.003),
    (0.163, 0.079, -0.014), (-0.163, 0.079, -0.019), (0.422, 0.043, -0.041), (-0.420, 0.041, -0.040),
    (0.670, 0.043, -0.043), (-0.670, 0.043, -0.043), (0.001, 0.240, 0.035), (0.031, 0.330, 0.085),
    (-0.029, 0.330, 0.085),
)  # fmt: skip


def _build_rest_joints() -> np.ndarray:
    """Approximate SMPL-X neutral rest joints (55, 3): body from the neutral model, fingers by hand anatomy."""
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:25] = _BODY_REST
    for side, first in ((1.0, 25), (-1.0, 40)):
        index = first
        for segments in _LEFT_FINGERS.values():
            for offset in segments:
                joints[index] = joints[SMPLX_PARENTS[index]] + np.array(offset) * (side, 1.0, 1.0)
                index += 1
    return joints


REST_JOINTS: np.ndarray = _build_rest_joints()
REST_JOINTS.setflags(write=False)


def rest_offsets(rest_joints: np.ndarray | None = None) -> np.ndarray:
    """Each joint's rest offset from its parent (55, 3); the root's is its rest position."""
    rest = REST_JOINTS if rest_joints is None else np.asarray(rest_joints, dtype=np.float64)
    offsets = rest.copy()
    offsets[1:] -= rest[list(SMPLX_PARENTS[1:])]
    return offsets


def create_smplx(
    model_path: str | Path, *, gender: str = "NEUTRAL_2020", flat_hand_mean: bool = False
) -> torch.nn.Module:
    """SMPL-X model as EMAGE/GestureLSM build it (300 betas, 100 expressions, no PCA hands, npz).

    `model_path` is a model file, or a folder holding `smplx/SMPLX_<GENDER>.npz` (the smplx.create layout).
    """
    import smplx

    options = dict(
        ext="npz",
        use_pca=False,
        num_betas=300,
        num_expression_coeffs=100,
        use_face_contour=False,
        flat_hand_mean=flat_hand_mean,
    )
    path = Path(model_path)
    if path.is_dir():
        return smplx.create(str(path), model_type="smplx", gender=gender, **options).eval()
    if not path.exists():
        raise FileNotFoundError(f"SMPL-X model not found: {path}")
    return smplx.SMPLX(model_path=str(path), gender=gender, **options).eval()


def rest_joints_from_model(
    model_path: str | Path, betas: np.ndarray | None = None, gender: str = "NEUTRAL_2020"
) -> np.ndarray:
    """Exact rest joints (55, 3) of a SMPL-X model file or folder, for the given shape `betas`."""
    import torch
    from smplx.lbs import blend_shapes, vertices2joints

    model = create_smplx(model_path, gender=gender)
    shape = torch.zeros(1, model.num_betas)
    if betas is not None:
        values = torch.as_tensor(np.asarray(betas, dtype=np.float32)).flatten()[: model.num_betas]
        shape[0, : len(values)] = values
    with torch.no_grad():
        v_shaped = model.v_template[None] + blend_shapes(shape, model.shapedirs)
        joints = vertices2joints(model.J_regressor, v_shaped)[0, :NUM_JOINTS]
    return joints.numpy().astype(np.float64)


def forward_kinematics(
    poses: np.ndarray,
    trans: np.ndarray | None = None,
    rest_joints: np.ndarray | None = None,
    *,
    return_rotations: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """SMPL-X FK: poses (T,165) axis-angle, trans (T,3) -> world joints (T,55,3) (and world rotations)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM:
        raise ValueError(f"poses must be (T, {POSE_DIM}), got {poses.shape}")
    rest = REST_JOINTS if rest_joints is None else np.asarray(rest_joints, dtype=np.float64)
    length = len(poses)
    local = axis_angle_to_matrix(poses.reshape(length, NUM_JOINTS, 3))
    rotations = np.empty_like(local)
    joints = np.empty((length, NUM_JOINTS, 3))
    rotations[:, 0] = local[:, 0]
    joints[:, 0] = rest[0]
    for joint in range(1, NUM_JOINTS):
        parent = SMPLX_PARENTS[joint]
        rotations[:, joint] = rotations[:, parent] @ local[:, joint]
        joints[:, joint] = joints[:, parent] + rotations[:, parent] @ (rest[joint] - rest[parent])
    if trans is not None:
        joints += np.asarray(trans, dtype=np.float64).reshape(length, 1, 3)
    return (joints, rotations) if return_rotations else joints


def joint_speeds(joints: np.ndarray, fps: float = 30) -> np.ndarray:
    """Joint positions (T,55,3) -> per-frame speeds (T,55) in m/s by central differences (as BEAT2's mean_vel)."""
    return np.linalg.norm(np.gradient(np.asarray(joints, dtype=np.float64), axis=0), axis=-1) * fps


def mean_joint_speeds(poses: np.ndarray, trans: np.ndarray | None = None, fps: float = 30) -> np.ndarray:
    """One clip's per-joint mean speed (55,) in m/s, FK with translation."""
    return joint_speeds(forward_kinematics(poses, trans), fps).mean(axis=0)


def mean_velocity(clips: Iterable[tuple[np.ndarray, np.ndarray | None]], fps: float = 30) -> np.ndarray:
    """Per-joint mean speed (55,) over every frame of (poses, trans) clips: BEAT2's mean_vel_smplxflame_30.npy."""
    speeds = [joint_speeds(forward_kinematics(poses, trans), fps) for poses, trans in clips]
    if not speeds:
        raise ValueError("mean_velocity needs at least one clip")
    return np.concatenate(speeds).mean(axis=0)
