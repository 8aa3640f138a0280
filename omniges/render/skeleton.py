"""SMPL-X skeleton without model files: kinematic tree, approximate rest joints, FK and a fast 2D renderer.

Front view, orthographic: the body faces +z (towards the camera), y is up, so the subject's left (+x)
appears on the viewer's right. Drawing uses PIL at 2x then downsamples, which gives anti-aliased
bones at well over 60 frames/s for 512x512.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from omniges.data.body import EYE_JOINTS, JAW_JOINT, PART_JOINTS, SMPLX_PARENTS, axis_angle_to_matrix

NUM_JOINTS = 55
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


def rest_joints_from_model(
    model_path: str | Path, betas: np.ndarray | None = None, gender: str = "NEUTRAL_2020"
) -> np.ndarray:
    """Exact rest joints (55, 3) of a SMPL-X model file or folder, for the given shape `betas`."""
    import torch
    from smplx.lbs import blend_shapes, vertices2joints

    from omniges.render.smplx_mesh import create_smplx

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
    if poses.ndim != 2 or poses.shape[1] != 3 * NUM_JOINTS:
        raise ValueError(f"poses must be (T, {3 * NUM_JOINTS}), got {poses.shape}")
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


def _ellipse_polygon(
    center: np.ndarray, up: np.ndarray, half_width: float, half_height: float, points: int = 20
) -> list[tuple[float, float]]:
    """Polygon of an ellipse in pixels with its minor axis along the 2D unit vector `up`."""
    right = np.array([-up[1], up[0]])
    theta = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    pts = center + np.outer(np.cos(theta) * half_width, right) + np.outer(np.sin(theta) * half_height, up)
    return [tuple(p) for p in pts]


class SkeletonRenderer:
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

    def framing(self, joints: np.ndarray | list[np.ndarray]) -> Framing:
        """Framing that fits one sequence (T,55,3) or several (shared camera across panels)."""
        return fit_framing(joints, self.width, self.height)

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
                joints[t],
                framing,
                None if jaw is None else jaw[t],
                None if expressions is None else expressions[t],
                title,
            )
        return frames
