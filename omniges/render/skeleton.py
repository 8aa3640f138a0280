"""Stick-figure renderer of SMPL-X joints (no model files): part-coloured bones and a simple face, via PIL.

Drawing uses PIL at 2x then downsamples, which gives anti-aliased bones at well over 60 frames/s for 512x512.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from omniges.data.body import EYE_JOINTS, JAW_JOINT, NUM_JOINTS
from omniges.data.kinematics import SMPLX_PARENTS
from omniges.render.framing import HEAD_JOINT, NECK_JOINT, PART_COLORS, PART_OF_JOINT, Framing, JointRenderer


def _ellipse_polygon(
    center: np.ndarray, up: np.ndarray, half_width: float, half_height: float, points: int = 20
) -> list[tuple[float, float]]:
    """Polygon of an ellipse in pixels with its minor axis along the 2D unit vector `up`."""
    right = np.array([-up[1], up[0]])
    theta = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    pts = center + np.outer(np.cos(theta) * half_width, right) + np.outer(np.sin(theta) * half_height, up)
    return [tuple(p) for p in pts]


class SkeletonRenderer(JointRenderer):
    """Draws SMPL-X joints as part-coloured bones with a simple face (jaw opening, expression) via PIL."""

    def __init__(
        self,
        width: int = 512,
        height: int = 512,
        *,
        supersample: int = 2,
        background: tuple[int, int, int] = (245, 245, 242),
    ) -> None:
        self.width, self.height, self.supersample = width, height, supersample
        self.background = background
        self._font = ImageFont.load_default(size=max(12, height // 28))
        self._bone_colors = [PART_COLORS[PART_OF_JOINT[j]] for j in range(NUM_JOINTS)]
        self._bone_widths = [0.009 if PART_OF_JOINT[j] == "hands" else 0.024 for j in range(NUM_JOINTS)]
        self._bones = np.array([j for j in range(1, NUM_JOINTS) if j not in (JAW_JOINT, *EYE_JOINTS)])
        self._bone_parents = np.array([SMPLX_PARENTS[j] for j in self._bones])

    def render_frame(
        self,
        joints: np.ndarray,
        framing: Framing,
        jaw: np.ndarray | None = None,
        expression: np.ndarray | None = None,
        title: str | None = None,
    ) -> np.ndarray:
        """One frame: joints (55,3), jaw axis-angle (3,), expression (E,) -> uint8 (H, W, 3)."""
        ss = self.supersample
        image = Image.new("RGB", (self.width * ss, self.height * ss), self.background)
        draw = ImageDraw.Draw(image)
        pixels = framing.project(joints) * ss
        px_per_m = framing.scale * ss
        ground = (framing.y_center - framing.ground_y) * framing.scale * ss + self.height * ss / 2
        if 0 < ground < self.height * ss:
            draw.line([(0, ground), (self.width * ss, ground)], fill=(205, 205, 200), width=ss)
        face_depth = joints[HEAD_JOINT, 2] + 0.05
        face_drawn = False
        for joint in self._bones[np.argsort(joints[self._bones, 2] + joints[self._bone_parents, 2])]:
            if not face_drawn and joints[joint, 2] > face_depth:
                self._draw_face(draw, joints, pixels, px_per_m, jaw, expression)
                face_drawn = True
            start, end = pixels[SMPLX_PARENTS[joint]], pixels[joint]
            width = max(ss, int(round(self._bone_widths[joint] * px_per_m)))
            draw.line([tuple(start), tuple(end)], fill=self._bone_colors[joint], width=width)
            radius = width / 2
            draw.ellipse(
                [end[0] - radius, end[1] - radius, end[0] + radius, end[1] + radius], fill=self._bone_colors[joint]
            )
        if not face_drawn:
            self._draw_face(draw, joints, pixels, px_per_m, jaw, expression)
        if ss > 1:
            image = image.reduce(ss)
        if title:
            ImageDraw.Draw(image).text((8, 6), title, fill=(30, 30, 30), font=self._font)
        return np.asarray(image)

    def _draw_face(
        self,
        draw: ImageDraw.ImageDraw,
        joints: np.ndarray,
        pixels: np.ndarray,
        px_per_m: float,
        jaw: np.ndarray | None,
        expression: np.ndarray | None,
    ) -> None:
        """Head ellipse, eyes, brows raised by expression intensity, mouth opened by the jaw rotation."""
        up3 = joints[HEAD_JOINT] - joints[NECK_JOINT]
        up2 = np.array([up3[0], -up3[1]])
        up2 = up2 / max(np.linalg.norm(up2), 1e-9)
        up_screen = -up2  # pixel y grows downwards; ellipse helper wants the on-screen "up"
        right2 = np.array([-up2[1], up2[0]])
        eyes_mid = pixels[list(EYE_JOINTS)].mean(axis=0) - pixels[HEAD_JOINT]
        head = pixels[HEAD_JOINT] + up2 * 0.075 * px_per_m + 0.4 * (eyes_mid @ right2) * right2
        color = PART_COLORS["face"]
        outline = max(2, int(0.008 * px_per_m))
        draw.polygon(
            _ellipse_polygon(head, up_screen, 0.075 * px_per_m, 0.1 * px_per_m, 32),
            fill=(250, 236, 222),
            outline=color,
            width=outline,
        )
        intensity = 0.0 if expression is None else float(np.tanh(np.linalg.norm(expression[:10]) / 3.0))
        opening = 0.0 if jaw is None else float(np.clip(jaw[0], 0.0, 0.6))
        for eye in EYE_JOINTS:
            center = pixels[eye]
            radius = 0.011 * px_per_m
            draw.ellipse(
                [center[0] - radius, center[1] - radius, center[0] + radius, center[1] + radius], fill=(40, 40, 40)
            )
            brow = center + up2 * (0.022 + 0.012 * intensity) * px_per_m
            side = right2 * 0.016 * px_per_m
            draw.line([tuple(brow - side), tuple(brow + side)], fill=(60, 40, 30), width=outline)
        mouth = head - up2 * 0.05 * px_per_m
        half_width = (0.024 + 0.008 * intensity) * px_per_m
        half_height = (0.003 + 0.25 * opening) * px_per_m
        draw.polygon(
            _ellipse_polygon(mouth - up2 * half_height * 0.5, up_screen, half_width, half_height), fill=(150, 40, 50)
        )
