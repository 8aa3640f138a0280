"""SMPL-X mesh rendering when model files are configured: `smplx` for vertices, a numpy z-buffer for pixels.

The rasteriser is plain numpy (no GL): triangles are grouped by bounding-box size, every candidate
pixel centre of every triangle is tested with edge functions at once, and the nearest fragment per
pixel wins through one sort. Faces are flat Lambert-shaded and tinted by body part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omniges.data.body import NUM_JOINTS
from omniges.data.kinematics import create_smplx
from omniges.render.framing import PART_COLORS, PART_OF_JOINT, Framing, fit_framing

_LIGHT = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])


class SmplxMesh:
    """SMPL-X vertices for BEAT2 arrays: poses (T,165), trans (T,3), expressions (T,100), betas (300,)."""

    def __init__(self, model_path: str | Path, *, gender: str = "NEUTRAL_2020", flat_hand_mean: bool = False) -> None:
        self.model = create_smplx(model_path, gender=gender, flat_hand_mean=flat_hand_mean)
        self.faces = np.asarray(self.model.faces, dtype=np.int64)
        dominant = self.model.lbs_weights.argmax(dim=1).numpy()
        self.face_parts = np.array([PART_OF_JOINT[j] for j in dominant[self.faces[:, 0]]])

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


def _edge_planes(tri: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle linear forms (F, k, 3) for barycentrics w_k = a*x + b*y + c, and depth (F, 3)."""
    x, y = tri[..., 0], tri[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0])
    area = np.where(np.abs(area) < 1e-9, np.nan, area)  # degenerate triangles cover nothing
    planes = np.empty((len(tri), 3, 3))
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        planes[:, k, 0] = (y[:, i] - y[:, j]) / area
        planes[:, k, 1] = (x[:, j] - x[:, i]) / area
        planes[:, k, 2] = (x[:, i] * y[:, j] - x[:, j] * y[:, i]) / area
    depth_plane = np.einsum("fkc,fk->fc", planes, depth)
    return planes, depth_plane


def rasterize(
    vertices_px: np.ndarray,
    depth: np.ndarray,
    faces: np.ndarray,
    width: int,
    height: int,
    max_candidates: int = 2_000_000,
) -> np.ndarray:
    """Z-buffer visibility: pixel vertices (V,2), depth (V,) larger = nearer -> face id per pixel (H,W), -1 empty."""
    tri = vertices_px[faces]  # (F, 3, 2)
    lo = np.maximum(np.floor(tri.min(axis=1) - 0.5).astype(np.int64), 0)
    hi = np.minimum(np.ceil(tri.max(axis=1) - 0.5).astype(np.int64), [width - 1, height - 1])
    extent = hi - lo + 1
    face_ids = np.nonzero((extent > 0).all(axis=1))[0]
    planes, depth_plane = _edge_planes(tri[face_ids], depth[faces[face_ids]])
    lo, hi, extent = lo[face_ids], hi[face_ids], extent[face_ids]
    bucket = np.ceil(np.log2(extent)).astype(np.int64)  # per-axis power-of-two box sizes
    pixel_index, pixel_depth, pixel_face = [], [], []
    for level_x, level_y in np.unique(bucket, axis=0):
        members = np.nonzero((bucket[:, 0] == level_x) & (bucket[:, 1] == level_y))[0]
        gx, gy = np.meshgrid(np.arange(1 << int(level_x)), np.arange(1 << int(level_y)), indexing="xy")
        gx, gy = gx.ravel(), gy.ravel()
        step = max(1, max_candidates // len(gx))
        for chunk in range(0, len(members), step):
            m = members[chunk : chunk + step]
            px, py = lo[m, 0, None] + gx, lo[m, 1, None] + gy  # (n, K) candidate pixels
            cx, cy = px + 0.5, py + 0.5
            inside = (px <= hi[m, 0, None]) & (py <= hi[m, 1, None])
            for k in range(3):
                p = planes[m, k]
                inside &= p[:, 0, None] * cx + p[:, 1, None] * cy + p[:, 2, None] >= 0
            n_idx, k_idx = np.nonzero(inside)
            d = depth_plane[m[n_idx]]
            pixel_depth.append(d[:, 0] * cx[n_idx, k_idx] + d[:, 1] * cy[n_idx, k_idx] + d[:, 2])
            pixel_index.append(py[n_idx, k_idx] * width + px[n_idx, k_idx])
            pixel_face.append(face_ids[m[n_idx]])
    face_map = np.full(height * width, -1, dtype=np.int64)
    if pixel_index:
        index, frag, owner = (np.concatenate(x) for x in (pixel_index, pixel_depth, pixel_face))
        order = np.lexsort((-frag, index))  # per pixel, nearest first
        index, owner = index[order], owner[order]
        first = np.ones(len(index), dtype=bool)
        first[1:] = index[1:] != index[:-1]
        face_map[index[first]] = owner[first]
    return face_map.reshape(height, width)


class MeshRenderer:
    """Offscreen flat-shaded SMPL-X mesh renderer (front orthographic view, part-tinted)."""

    def __init__(
        self,
        mesh: SmplxMesh,
        width: int = 512,
        height: int = 512,
        *,
        background: tuple[int, int, int] = (245, 245, 242),
    ) -> None:
        self.mesh, self.width, self.height = mesh, width, height
        self.background = np.array(background, dtype=np.float64)
        base = np.array([PART_COLORS[p] for p in mesh.face_parts], dtype=np.float64)
        self.face_albedo = 0.55 * base + 0.45 * 220.0

    def framing(self, vertices: np.ndarray | list[np.ndarray]) -> Framing:
        """Framing that fits every vertex of one (T,V,3) sequence or of several."""
        return fit_framing(vertices, self.width, self.height, margin=0.05, head_room=0.0)

    def render_frame(self, vertices: np.ndarray, framing: Framing) -> np.ndarray:
        """Vertices (V,3) -> uint8 (H, W, 3) image."""
        faces = self.mesh.faces
        tri = vertices[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        shade = 0.25 + 0.75 * np.abs(normals @ _LIGHT)
        face_map = rasterize(framing.project(vertices), vertices[:, 2], faces, self.width, self.height)
        colors = np.concatenate([self.face_albedo * shade[:, None], self.background[None]], axis=0)
        image = colors[np.where(face_map >= 0, face_map, len(faces))]
        return np.clip(image, 0, 255).astype(np.uint8)

    def render_sequence(
        self,
        poses: np.ndarray,
        trans: np.ndarray | None = None,
        expressions: np.ndarray | None = None,
        betas: np.ndarray | None = None,
        framing: Framing | None = None,
    ) -> np.ndarray:
        """SMPL-X arrays -> uint8 frames (T, H, W, 3)."""
        vertices = self.mesh.vertices(poses, trans, expressions, betas)
        framing = framing or self.framing(vertices)
        return np.stack([self.render_frame(v, framing) for v in vertices])
