"""What both renderers share: body-part colours per joint and the fixed orthographic front camera.

Front view, orthographic: the body faces +z (towards the camera), y is up, so the subject's left (+x)
appears on the viewer's right.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from omniges.data.body import EYE_JOINTS, JAW_JOINT, NUM_JOINTS, PART_JOINTS
from omniges.data.kinematics import REST_JOINTS

HEAD_JOINT = 15
NECK_JOINT = 12


PARTS = ("upper", "hands", "lower", "face")
_PART_INDEX = {
    **{j: "upper" for j in PART_JOINTS["upper"]},
    **{j: "hands" for j in PART_JOINTS["hands"]},
    **{j: "lower" for j in PART_JOINTS["lower_trans"]},
    **{j: "face" for j in (JAW_JOINT, *EYE_JOINTS)},
}
PART_OF_JOINT: tuple[str, ...] = tuple(_PART_INDEX[j] for j in range(NUM_JOINTS))
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "upper": (52, 101, 164),
    "hands": (230, 120, 20),
    "lower": (60, 150, 70),
    "face": (150, 70, 160),
}


@dataclass(frozen=True)
class Framing:
    """Orthographic front camera: pixel = (x - x_center, y_center - y) * scale + image centre."""

    x_center: float
    y_center: float
    scale: float
    width: int
    height: int
    ground_y: float = 0.0

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixel coordinates (u right, v down)."""
        u = (points[..., 0] - self.x_center) * self.scale + self.width / 2
        v = (self.y_center - points[..., 1]) * self.scale + self.height / 2
        return np.stack([u, v], axis=-1)


def fit_framing(
    joints: np.ndarray | list[np.ndarray], width: int, height: int, margin: float = 0.08, head_room: float = 0.22
) -> Framing:
    """Fixed framing that keeps every joint of every frame (plus the head) inside the image."""
    points = np.concatenate(
        [np.asarray(j, dtype=np.float64).reshape(-1, 3) for j in (joints if isinstance(joints, list) else [joints])]
    )
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        points = REST_JOINTS
    low, high = points.min(axis=0), points.max(axis=0)
    high = high + np.array([0.0, head_room, 0.0])  # room for the head drawn above the head joint
    span_x, span_y = max(high[0] - low[0], 0.3), max(high[1] - low[1], 0.3)
    scale = (1.0 - 2 * margin) * min(width / span_x, height / span_y)
    center_x, center_y = float((low[0] + high[0]) / 2), float((low[1] + high[1]) / 2)
    return Framing(center_x, center_y, float(scale), width, height, ground_y=float(low[1]) - 0.01)


class JointRenderer(ABC):
    """A renderer of joint frames (55, 3) at width x height: a shared fitted camera and whole sequences."""

    width: int
    height: int

    def framing(self, joints: np.ndarray | list[np.ndarray]) -> Framing:
        """Framing that fits one sequence (T,55,3) or several (shared camera across panels)."""
        return fit_framing(joints, self.width, self.height)

    @abstractmethod
    def render_frame(
        self, joints: np.ndarray, framing: Framing, jaw: np.ndarray | None = None,
        expression: np.ndarray | None = None, title: str | None = None,
    ) -> np.ndarray:
        """One frame: joints (55,3), jaw axis-angle (3,), expression (E,) -> uint8 (H, W, 3)."""

    def render_sequence(
        self,
        joints: np.ndarray,
        jaw: np.ndarray | None = None,
        expressions: np.ndarray | None = None,
        *,
        title: str | None = None,
        framing: Framing | None = None,
    ) -> np.ndarray:
        """Joints (T,55,3), jaw (T,3), expressions (T,E) -> uint8 frames (T, H, W, 3)."""
        joints = np.asarray(joints, dtype=np.float64)
        framing = framing or self.framing(joints)
        frames = np.empty((len(joints), self.height, self.width, 3), dtype=np.uint8)
        for t in range(len(joints)):
            frames[t] = self.render_frame(
                joints[t], framing, None if jaw is None else jaw[t], None if expressions is None else expressions[t],
                title,
            )
        return frames
