"""GestureLSM's input normalisation, so its `net_300000_*.pth` tokenizers see the inputs they were trained on.

GestureLSM's generative trainer normalises each part's rot6d channels with the matching slice of
`beatx_2_330_{mean,std}.npy` (55 joints x 6, joint-major), and the lower part's (vx, y, vz) translation with
`beatx_2_trans_{mean,std}.npy`, before `map2latent`. Its face model reads the 100 FLAME expressions raw
(`rvq_beatx_train.py` slices them from its cache with no statistics file), and has no jaw channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omniges.data.body import EXPRESSION_DIM, NUM_JOINTS, PART_JOINTS

STAT_FILES = ("pose_mean", "pose_std", "trans_mean", "trans_std")
STAT_SHAPES = {"pose_mean": (NUM_JOINTS * 6,), "pose_std": (NUM_JOINTS * 6,), "trans_mean": (3,), "trans_std": (3,)}


def load_stat(path: str | Path, name: str) -> np.ndarray:
    """One GestureLSM statistics file as float32, checked for shape (and a positive std)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: GestureLSM statistics file ({name}) not found")
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a .npy array ({error})") from error
    if value.shape != STAT_SHAPES[name]:
        raise ValueError(f"{path}: {name} must have shape {STAT_SHAPES[name]}, got {value.shape}")
    if not np.isfinite(value).all() or (name.endswith("std") and (value <= 0).any()):
        raise ValueError(f"{path}: {name} has non-finite{' or non-positive' if name.endswith('std') else ''} values")
    return value.astype(np.float32)


def gesturelsm_part_stats(part: str, paths: dict[str, str], *, face_jaw: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) GestureLSM normalises `part` with; `paths` names the four statistics files."""
    if part == "face":
        if face_jaw:
            raise ValueError("rvqvae.import.face: GestureLSM's face model reads the 100 expressions only; "
                             "set data.face_jaw=false to use its 100-d layout")
        return np.zeros(EXPRESSION_DIM, np.float32), np.ones(EXPRESSION_DIM, np.float32)
    needed = STAT_FILES if part == "lower_trans" else STAT_FILES[:2]
    unset = [name for name in needed if not paths.get(name)]
    if unset:
        raise ValueError(f"rvqvae.import.{part} is a GestureLSM checkpoint: set rvqvae.import.normalization."
                         f"{', '.join(unset)} (its mean_std/beatx_2_*.npy files), or normalization.source=corpus")
    stats = {name: load_stat(paths[name], name) for name in needed}
    joints = list(PART_JOINTS[part])
    mean = stats["pose_mean"].reshape(NUM_JOINTS, 6)[joints].reshape(-1)
    std = stats["pose_std"].reshape(NUM_JOINTS, 6)[joints].reshape(-1)
    if part == "lower_trans":
        mean, std = np.concatenate([mean, stats["trans_mean"]]), np.concatenate([std, stats["trans_std"]])
    return mean, std
