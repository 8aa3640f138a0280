"""SMPL-X motion npz in the BEAT2 layout, with AMASS's frame-rate key so SMPL-X importers read it too."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omniges.data.kinematics import forward_kinematics


def write_npz(path: str | Path, motion: dict[str, np.ndarray], fps: int = 30) -> Path:
    """poses (T,165), trans, expressions, betas, model, gender, frame rate and FK joints (T,55,3), atomically."""
    path = Path(path)
    poses = np.asarray(motion["poses"], dtype=np.float32)
    trans = np.asarray(motion["trans"], dtype=np.float64)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, poses=poses, trans=trans, expressions=np.asarray(motion["expressions"], dtype=np.float64),
             betas=np.asarray(motion.get("betas", np.zeros(300)), dtype=np.float32), model="smplx2020",
             gender="neutral", mocap_frame_rate=np.array(fps), mocap_framerate=np.array(float(fps)),
             joints=forward_kinematics(poses, trans).astype(np.float32))
    tmp.replace(path)
    return path
