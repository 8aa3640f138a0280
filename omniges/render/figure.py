"""Bodies through the one rasteriser: the default skinned mannequin, or the SMPL-X mesh when a model is configured.

Both take BEAT2 arrays (poses (T, 165), trans (T, 3)[, expressions, betas]), prepare a clip once (skinning matrices,
or the SMPL-X model's vertices in batches) and draw frame by frame with `raster.GLRenderer`, on a camera shared
by every panel of a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from omniges.data.skinned_body import SkinnedBody, default_body, simplified
from omniges.render.framing import Framing, fit_framing
from omniges.render.raster import GLRenderer

FEET = [7, 8, 10, 11]  # ankles and feet: where the contact shadow goes
RENDER_KEEP = 0.3  # of the mannequin's triangles: llvmpipe shades vertices on one thread, and 30% looks the same


@lru_cache(maxsize=1)
def render_body() -> SkinnedBody:
    """The default body decimated for rendering (the .glb keeps the whole mesh)."""
    return simplified(default_body(), RENDER_KEEP)


@dataclass(frozen=True)
class PreparedClip:
    """What drawing a clip's frames needs: per-frame skinning matrices or vertices, and the feet (T, 4, 3)."""

    frames: np.ndarray  # (T, 55, 4, 4) skinning matrices, or (T, V, 3) world vertices
    feet: np.ndarray
    points: np.ndarray  # (T, P, 3) what the camera must keep in view


class MannequinFigure:
    """The default body: mannequin-x's wooden figure skinned to the SMPL-X skeleton (no model files)."""

    def __init__(self, width: int = 512, height: int = 512, *, body: SkinnedBody | None = None) -> None:
        self.width, self.height = width, height
        self.body = body or render_body()
        self.gl = GLRenderer(width, height)

    def prepare(self, poses: np.ndarray, trans: np.ndarray | None = None, expressions: np.ndarray | None = None,
                betas: np.ndarray | None = None) -> PreparedClip:
        """Skinning matrices and joints of every frame (expressions and betas do not change this body)."""
        transforms = self.body.joint_transforms(poses, trans)
        skin = transforms.copy()
        skin[..., :3, 3] -= np.einsum("tjab,jb->tja", skin[..., :3, :3], self.body.rest_joints)
        joints = transforms[..., :3, 3]
        return PreparedClip(skin, joints[:, FEET], joints)

    def framing(self, clips: list[PreparedClip]) -> Framing:
        """One camera that keeps every joint of every clip in view (room above the head joint for the head)."""
        return fit_framing([clip.points for clip in clips], self.width, self.height)

    def render_frame(self, clip: PreparedClip, t: int, framing: Framing, z_center: float) -> np.ndarray:
        return self.gl.render_skinned(self.body, clip.frames[t], framing, clip.feet[t], z_center)


class SmplxFigure:
    """The SMPL-X mesh of a model file (vertices from `smplx`), tinted by body part, flat shaded."""

    def __init__(self, model_path: str | Path, width: int = 512, height: int = 512) -> None:
        from omniges.render.smplx_mesh import SmplxMesh

        self.width, self.height = width, height
        self.mesh = SmplxMesh(model_path)
        self.colors = self.mesh.vertex_colors()
        self.gl = GLRenderer(width, height)

    def prepare(self, poses: np.ndarray, trans: np.ndarray | None = None, expressions: np.ndarray | None = None,
                betas: np.ndarray | None = None) -> PreparedClip:
        vertices = self.mesh.vertices(poses, trans, expressions, betas)
        low = vertices[..., 1] <= vertices[..., 1].min(axis=1, keepdims=True) + 0.05  # the soles
        x = np.where(low, vertices[..., 0], np.nan)
        left, right = np.nanargmin(x, axis=1), np.nanargmax(x, axis=1)
        frames = np.arange(len(vertices))
        feet = np.stack([vertices[frames, left], vertices[frames, right]] * 2, axis=1)
        return PreparedClip(vertices, feet, vertices)

    def framing(self, clips: list[PreparedClip]) -> Framing:
        return fit_framing([clip.points for clip in clips], self.width, self.height, margin=0.05, head_room=0.0)

    def render_frame(self, clip: PreparedClip, t: int, framing: Framing, z_center: float) -> np.ndarray:
        return self.gl.render_vertices(id(self.mesh), clip.frames[t], self.mesh.faces, self.colors, framing,
                                       clip.feet[t], z_center)


def z_center(clips: list[PreparedClip]) -> float:
    """The depth the camera's depth range and the depth cue centre on: the clips' mean pelvis / body depth."""
    return float(np.mean([clip.points[:, 0, 2].mean() for clip in clips]))


def render_sequence(figure: MannequinFigure | SmplxFigure, poses: np.ndarray, trans: np.ndarray | None = None,
                    expressions: np.ndarray | None = None, framing: Framing | None = None) -> np.ndarray:
    """One clip's uint8 frames (T, H, W, 3)."""
    clip = figure.prepare(poses, trans, expressions)
    framing = framing or figure.framing([clip])
    depth = z_center([clip])
    return np.stack([figure.render_frame(clip, t, framing, depth) for t in range(len(clip.frames))])
