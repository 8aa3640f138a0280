"""BVH of the SMPL-X skeleton: the built-in (or a model's) rest offsets, per-joint local rotations, root motion.

The hierarchy is the SMPL-X tree (body, both hands, the jaw optionally), in metres, y up, facing +z. Every
joint's rotation is SMPL-X's local axis-angle as intrinsic Z-X-Y Euler angles in degrees (channels
`Zrotation Xrotation Yrotation`); the root also carries its position, the pelvis rest joint plus `trans`, and
has a zero OFFSET, so readers that add the offset and readers that overwrite it place it the same.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from omniges.data.body import EYE_JOINTS, JAW_JOINT, NUM_JOINTS, POSE_DIM
from omniges.data.kinematics import JOINT_NAMES, REST_JOINTS, SMPLX_PARENTS, rest_offsets

ROTATION_CHANNELS = "Zrotation Xrotation Yrotation"
EULER_ORDER = "ZXY"  # scipy: upper case = intrinsic, R = Rz @ Rx @ Ry as BVH readers compose the channels
HEAD_JOINT = 15
_HEAD_END = (0.0, 0.2, 0.0)  # end site above the head joint when nothing hangs below it


def bvh_joints(*, jaw: bool = True) -> list[int]:
    """SMPL-X joints written to the BVH (depth-first, children in index order): all but the eyes, jaw optional."""
    skipped = set(EYE_JOINTS) | (set() if jaw else {JAW_JOINT})
    children = {j: [c for c in range(NUM_JOINTS) if SMPLX_PARENTS[c] == j and c not in skipped]
                for j in range(NUM_JOINTS)}
    order, stack = [], [0]
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(reversed(children[joint]))
    return order


def _hierarchy(joints: list[int], offsets: np.ndarray) -> list[str]:
    """HIERARCHY lines for `joints` (depth-first order) with their rest offsets; leaves get an End Site."""
    kept = set(joints)
    lines, open_depths, depth = ["HIERARCHY"], [], {}
    for joint in joints:
        parent = SMPLX_PARENTS[joint]
        level = 0 if parent < 0 else depth[parent] + 1
        while open_depths and open_depths[-1] >= level:
            pad = "  " * open_depths.pop()
            lines.append(f"{pad}}}")
        depth[joint] = level
        pad = "  " * level
        offset = (0.0, 0.0, 0.0) if parent < 0 else offsets[joint]
        lines += [f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {JOINT_NAMES[joint]}", f"{pad}{{",
                  f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}",
                  f"{pad}  CHANNELS 6 Xposition Yposition Zposition {ROTATION_CHANNELS}" if parent < 0
                  else f"{pad}  CHANNELS 3 {ROTATION_CHANNELS}"]
        if not any(SMPLX_PARENTS[c] == joint for c in kept):
            end = _HEAD_END if joint == HEAD_JOINT else 0.6 * offsets[joint]
            lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}",
                      f"{pad}  }}"]
        open_depths.append(level)
    while open_depths:
        lines.append(f"{'  ' * open_depths.pop()}}}")
    return lines


def write_bvh(
    path: str | Path,
    poses: np.ndarray,
    trans: np.ndarray | None = None,
    *,
    fps: float = 30,
    rest_joints: np.ndarray | None = None,
    jaw: bool = True,
) -> Path:
    """Write poses (T,165) axis-angle and trans (T,3) as a BVH at `fps`, atomically (temp file, then rename)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM or len(poses) == 0:
        raise ValueError(f"poses must be (T, {POSE_DIM}) with T >= 1, got {poses.shape}")
    length = len(poses)
    trans = np.zeros((length, 3)) if trans is None else np.asarray(trans, dtype=np.float64).reshape(length, 3)
    rest = REST_JOINTS if rest_joints is None else np.asarray(rest_joints, dtype=np.float64)
    joints = bvh_joints(jaw=jaw)
    with warnings.catch_warnings():  # at gimbal lock scipy zeroes the third angle; the rotation stays exact
        warnings.filterwarnings("ignore", "Gimbal lock", UserWarning)
        euler = Rotation.from_rotvec(poses.reshape(-1, 3)).as_euler(EULER_ORDER, degrees=True)
    euler = euler.reshape(length, NUM_JOINTS, 3)[:, joints]
    motion = np.concatenate([rest[0] + trans, euler.reshape(length, -1)], axis=1)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(_hierarchy(joints, rest_offsets(rest))) + "\n")
            handle.write(f"MOTION\nFrames: {length}\nFrame Time: {1.0 / fps:.8f}\n")
            np.savetxt(handle, motion, fmt="%.6f")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
