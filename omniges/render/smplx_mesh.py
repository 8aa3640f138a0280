"""The SMPL-X mesh when model files are configured: `smplx` gives the vertices, `render.raster` draws them.

Vertices are tinted by the body part of the joint that moves them most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omniges.data.body import NUM_JOINTS
from omniges.data.kinematics import create_smplx
from omniges.render.framing import PART_COLORS, PART_OF_JOINT


class SmplxMesh:
    """SMPL-X vertices for BEAT2 arrays: poses (T,165), trans (T,3), expressions (T,100), betas (300,)."""

    def __init__(self, model_path: str | Path, *, gender: str = "NEUTRAL_2020", flat_hand_mean: bool = False) -> None:
        self.model = create_smplx(model_path, gender=gender, flat_hand_mean=flat_hand_mean)
        self.faces = np.asarray(self.model.faces, dtype=np.int64)
        dominant = self.model.lbs_weights.argmax(dim=1).numpy()
        self.face_parts = np.array([PART_OF_JOINT[j] for j in dominant[self.faces[:, 0]]])
        self.vertex_parts = np.array([PART_OF_JOINT[j] for j in dominant])

    def vertex_colors(self) -> np.ndarray:
        """Linear RGB (V, 3) per vertex: its part's colour, lightened (as the figure's panels show parts)."""
        srgb = (0.55 * np.array([PART_COLORS[p] for p in self.vertex_parts]) + 0.45 * 220.0) / 255.0
        return (srgb**2.2).astype(np.float32)

    @torch.no_grad()
    def vertices(
        self,
        poses: np.ndarray,
        trans: np.ndarray | None = None,
        expressions: np.ndarray | None = None,
        betas: np.ndarray | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """World vertices (T, V, 3) float32, computed in batches through the smplx forward pass."""
        poses = torch.as_tensor(np.asarray(poses, dtype=np.float32))
        length = len(poses)
        if poses.shape != (length, 3 * NUM_JOINTS):
            raise ValueError(f"poses must be (T, {3 * NUM_JOINTS}), got {tuple(poses.shape)}")
        shape = torch.zeros(1, self.model.num_betas)
        if betas is not None:
            values = torch.as_tensor(np.asarray(betas, dtype=np.float32)).flatten()[: self.model.num_betas]
            shape[0, : len(values)] = values
        expr = torch.zeros(length, self.model.num_expression_coeffs)
        if expressions is not None:
            values = torch.as_tensor(np.asarray(expressions, dtype=np.float32))[:, : expr.shape[1]]
            expr[:, : values.shape[1]] = values
        transl = torch.zeros(length, 3) if trans is None else torch.as_tensor(np.asarray(trans, np.float32))
        out = []
        for start in range(0, length, batch_size):
            p = poses[start : start + batch_size]
            n = len(p)
            result = self.model(
                betas=shape.expand(n, -1),
                global_orient=p[:, 0:3],
                body_pose=p[:, 3:66],
                jaw_pose=p[:, 66:69],
                leye_pose=p[:, 69:72],
                reye_pose=p[:, 72:75],
                left_hand_pose=p[:, 75:120],
                right_hand_pose=p[:, 120:165],
                expression=expr[start : start + n],
                transl=transl[start : start + n],
                return_verts=True,
            )
            out.append(result.vertices.numpy())
        return np.concatenate(out, axis=0)
