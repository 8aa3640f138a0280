"""Shaded mannequin without SMPL-X files: tapered capsules on the FK skeleton, ray-cast in numpy with a z-buffer.

Orthographic front view (as `framing`). Each capsule (segment a-b, radii ra-rb) is evaluated only on its own
pixel box: the nearest point of the projected segment gives the radius, the front surface depth and the normal,
so no mesh or model file is needed. Pixels are Lambert + specular shaded from an upper-left key light, darker
with depth behind the pelvis, outlined where the depth jumps, and drawn over a floor with a contact shadow.
The head carries eyes and a mouth that the jaw rotation opens.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from omniges.data.body import EYE_JOINTS
from omniges.render.framing import HEAD_JOINT, NECK_JOINT, Framing, JointRenderer

_SKIN, _SHIRT, _TROUSERS, _SHOES = (224, 182, 150), (66, 106, 166), (74, 80, 96), (52, 48, 48)
_EYE, _MOUTH = (35, 30, 30), (96, 22, 32)
MATERIALS = np.array([_SKIN, _SHIRT, _TROUSERS, _SHOES, _EYE, _MOUTH], dtype=np.float32) / 255.0
SKIN, SHIRT, TROUSERS, SHOES, EYE, MOUTH = range(6)

# (parent joint, child joint, radius at parent, radius at child, material), metres.
_BODY = (
    (0, 3, 0.105, 0.100, TROUSERS), (1, 2, 0.085, 0.085, TROUSERS), (3, 6, 0.100, 0.110, SHIRT),
    (6, 9, 0.110, 0.120, SHIRT), (9, 12, 0.095, 0.055, SHIRT), (9, 16, 0.085, 0.058, SHIRT),
    (9, 17, 0.085, 0.058, SHIRT), (16, 17, 0.058, 0.058, SHIRT), (12, 15, 0.045, 0.045, SKIN),
    (16, 18, 0.055, 0.044, SHIRT), (17, 19, 0.055, 0.044, SHIRT), (18, 20, 0.042, 0.032, SKIN),
    (19, 21, 0.042, 0.032, SKIN), (1, 4, 0.085, 0.060, TROUSERS), (2, 5, 0.085, 0.060, TROUSERS),
    (4, 7, 0.058, 0.044, TROUSERS), (5, 8, 0.058, 0.044, TROUSERS), (7, 10, 0.046, 0.038, SHOES),
    (8, 11, 0.046, 0.038, SHOES),
)  # fmt: skip
JAW_FULL_OPEN = 0.08  # jaw rotation (rad) that opens the mouth fully; BEAT2 speech spans 0 to 0.06
_FINGER_RADII = (0.0105, 0.0095, 0.0085)
_THUMB_RADII = (0.0125, 0.0115, 0.0105)


def _hand(wrist: int, first: int) -> list[tuple[int, int, float, float, int]]:
    """Palm (wrist to middle knuckle, and across the knuckles), thumb base and finger segments of one hand."""
    index, middle, pinky, ring, thumb = (first + 3 * k for k in range(5))
    caps = [(wrist, middle, 0.030, 0.026, SKIN), (index, pinky, 0.020, 0.018, SKIN), (wrist, ring, 0.026, 0.02, SKIN),
            (wrist, thumb, 0.020, 0.016, SKIN)]
    for knuckle in (index, middle, pinky, ring, thumb):
        radii = _THUMB_RADII if knuckle == thumb else _FINGER_RADII
        caps += [(knuckle, knuckle + 1, radii[0], radii[1], SKIN), (knuckle + 1, knuckle + 2, radii[1], radii[2], SKIN)]
    return caps


CAPSULES = _BODY + tuple(_hand(20, 25)) + tuple(_hand(21, 40))
_TIPS = tuple(first + 3 * k + 2 for first in (25, 40) for k in range(5))  # distal finger joints, extended to tips

_LIGHT = np.array([-0.45, -0.6, 0.66], dtype=np.float32) / np.linalg.norm([-0.45, -0.6, 0.66])
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0], dtype=np.float32)) / np.linalg.norm(_LIGHT + [0.0, 0.0, 1.0])


_LEVELS, _MAX_LIGHT, _SHINES, _SHINE_FROM = 96, 1.2, 16, 0.8  # quantised light: (material, level, shine)


def _palette() -> np.ndarray:
    """uint8 colour of every (material, light level, shine level): shading is one table look-up per pixel."""
    light = (np.arange(_LEVELS) + 0.5) * (_MAX_LIGHT / _LEVELS)
    shine = (_SHINE_FROM + (np.arange(_SHINES) + 0.5) * ((1.0 - _SHINE_FROM) / _SHINES)) ** 24
    shine[0] = 0.0
    color = MATERIALS[:, None, None, :] * light[None, :, None, None] + 0.18 * shine[None, None, :, None]
    return np.clip(color * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(-1, 3)


_PALETTE = _palette()


def _head_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit right (subject's left), up and forward of the head, from the neck, head and eye joints."""
    right = joints[EYE_JOINTS[0]] - joints[EYE_JOINTS[1]]
    right = right / max(np.linalg.norm(right), 1e-9)
    up = joints[HEAD_JOINT] - joints[NECK_JOINT]
    up = up - (up @ right) * right
    up = up / max(np.linalg.norm(up), 1e-9)
    return right, up, np.cross(right, up)


def capsules_of(joints: np.ndarray, jaw_opening: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World capsules (K, 8: a xyz, b xyz, ra, rb) and materials (K,) for one frame of joints (55, 3)."""
    ends = [(joints[a], joints[b], ra, rb, m) for a, b, ra, rb, m in CAPSULES]
    for tip in _TIPS:
        ends.append((joints[tip], joints[tip] + 0.8 * (joints[tip] - joints[tip - 1]), 0.0085, 0.0075, SKIN))
    right, up, forward = _head_frame(joints)
    base = joints[HEAD_JOINT]
    ends.append((base - 0.005 * up + 0.02 * forward, base + 0.09 * up, 0.075, 0.088, SKIN))  # chin to crown
    for side in (1.0, -1.0):
        eye = base + 0.065 * up + 0.08 * forward + side * 0.032 * right
        ends.append((eye, eye, 0.013, 0.013, EYE))
    opening = float(np.clip(jaw_opening / JAW_FULL_OPEN, 0.0, 1.0))
    radius = 0.004 + 0.018 * opening
    mouth = base - (0.008 + 0.5 * radius) * up + (0.101 - radius) * forward  # just through the chin's surface
    ends.append((mouth - 0.02 * right, mouth + 0.02 * right, radius, radius, MOUTH))
    caps = np.array([[*a, *b, ra, rb] for a, b, ra, rb, _ in ends], dtype=np.float64)
    return caps, np.array([m for *_, m in ends], dtype=np.int64)


class MannequinRenderer(JointRenderer):
    """Shaded capsule body with a floor, readable hands and a jaw-driven mouth; same interface as the skeleton."""

    def __init__(
        self, width: int = 512, height: int = 512, *, background: tuple[int, int, int] = (236, 236, 232)
    ) -> None:
        self.width, self.height = width, height
        self.background = background
        self._font = ImageFont.load_default(size=max(12, height // 28))
        self._backdrops: dict[Framing, np.ndarray] = {}

    def _backdrop(self, framing: Framing) -> np.ndarray:
        """Wall and floor with the horizon a little above the ground line (uint8 H, W, 3), cached per framing."""
        if framing not in self._backdrops:
            rows = np.arange(self.height, dtype=np.float32)[:, None]
            horizon = (framing.y_center - framing.ground_y) * framing.scale + self.height / 2 - 0.12 * framing.scale
            wall = np.array(self.background, np.float32) * (1.0 - 0.06 * rows / self.height)
            depth = np.clip((rows - horizon) / max(self.height - horizon, 1.0), 0.0, 1.0)
            floor = np.array([204.0, 199.0, 189.0], np.float32) * (0.92 + 0.1 * depth)
            image = np.where(rows[..., None] < horizon, wall[:, None], floor[:, None])
            image = np.broadcast_to(np.clip(image + 0.5, 0, 255), (self.height, self.width, 3))
            self._backdrops[framing] = image.astype(np.uint8)
        return self._backdrops[framing]

    def _shadow(self, image: np.ndarray, joints: np.ndarray, framing: Framing) -> None:
        """Soft contact shadow on the floor under the feet, in place."""
        feet = framing.project(joints[[7, 8, 10, 11]])
        ground_v = (framing.y_center - framing.ground_y) * framing.scale + self.height / 2
        cx = float(feet[:, 0].mean())
        half_w = float(np.ptp(feet[:, 0])) / 2 + 0.14 * framing.scale
        half_h = 0.035 * framing.scale
        lift = float(np.clip((framing.project(joints[[7, 8]])[:, 1].max() - ground_v) / framing.scale + 0.1, 0, 1))
        x0, x1 = int(max(cx - 1.6 * half_w, 0)), int(min(cx + 1.6 * half_w, self.width))
        y0, y1 = int(max(ground_v - 2 * half_h, 0)), int(min(ground_v + 2 * half_h, self.height))
        if x1 <= x0 or y1 <= y0:
            return
        u = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / half_w
        v = (np.arange(y0, y1, dtype=np.float32) + 0.5 - ground_v) / half_h
        dark = 0.35 * (0.5 + 0.5 * lift) * np.exp(-(u[None, :] ** 2 + v[:, None] ** 2) * 1.5)
        region = image[y0:y1, x0:x1]
        region[:] = region * (1.0 - dark[..., None]) + 0.5

    def render_frame(
        self,
        joints: np.ndarray,
        framing: Framing,
        jaw: np.ndarray | None = None,
        expression: np.ndarray | None = None,
        title: str | None = None,
    ) -> np.ndarray:
        """One frame: joints (55,3), jaw axis-angle (3,) -> uint8 (H, W, 3); `expression` is accepted and unused."""
        width, height, scale = self.width, self.height, framing.scale
        caps, materials = capsules_of(joints, 0.0 if jaw is None else float(jaw[0]))
        geometry = np.concatenate(
            [framing.project(caps[:, :3]), caps[:, 2:3] * scale, framing.project(caps[:, 3:6]), caps[:, 5:6] * scale,
             caps[:, 6:8] * scale], axis=1).astype(np.float32)  # (K, 8): a (u, v, depth), b (u, v, depth), ra, rb
        reach = geometry[:, 6:8].max(axis=1, keepdims=True)
        lo = np.floor(np.minimum(geometry[:, 0:2], geometry[:, 3:5]) - reach).astype(np.int64)
        hi = np.ceil(np.maximum(geometry[:, 0:2], geometry[:, 3:5]) + reach).astype(np.int64) + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, [width, height])
        drawn = np.nonzero((hi > lo).all(axis=1))[0]
        image = self._backdrop(framing).copy()
        self._shadow(image, joints, framing)
        if len(drawn):
            (bx0, by0), (bx1, by1) = lo[drawn].min(axis=0).tolist(), hi[drawn].max(axis=0).tolist()
            buffers = np.empty((5, by1 - by0, bx1 - bx0), dtype=np.float32)  # depth, normal u, v, z, material
            buffers[0], buffers[1:] = -np.inf, 0.0
            for k in drawn.tolist():
                self._cast(buffers, geometry[k].tolist(), float(materials[k]), lo[k] - (bx0, by0), hi[k] - (bx0, by0),
                           (bx0, by0))
            self._shade(image[by0:by1, bx0:bx1], buffers, joints[0, 2] * scale, scale)
        if title:
            picture = Image.fromarray(image)
            ImageDraw.Draw(picture).text((8, 6), title, fill=(30, 30, 30), font=self._font)
            image = np.asarray(picture)
        return image

    @staticmethod
    def _cast(
        buffers: np.ndarray, capsule: list[float], material: float, lo: np.ndarray, hi: np.ndarray,
        origin: tuple[int, int],
    ) -> None:
        """Z-buffer one tapered capsule (pixel units) into `buffers` over its box [lo, hi) of the buffer."""
        (x0, y0), (x1, y1) = lo.tolist(), hi.tolist()
        au, av, az, bu, bv, bz, ra, rb = capsule
        au, av = au - origin[0], av - origin[1]
        du, dv = bu - origin[0] - au, bv - origin[1] - av
        length2 = du * du + dv * dv
        px = np.arange(x0 + 0.5 - au, x1 + 0.5 - au - 0.25, dtype=np.float32)[None, :]
        py = np.arange(y0 + 0.5 - av, y1 + 0.5 - av - 0.25, dtype=np.float32)[:, None]
        if length2 > 1e-6:
            t = np.minimum(np.maximum(px * (du / length2) + py * (dv / length2), 0.0), 1.0)
            ex, ey = px - t * du, py - t * dv
            radius = ra + t * (rb - ra)
            slack = radius * radius - ex * ex - ey * ey
            ez = np.sqrt(np.maximum(slack, 0.0))
            z = az + t * (bz - az) + ez
            inverse = 1.0 / radius
        else:
            ex, ey = np.broadcast_arrays(px, py)
            slack = ra * ra - ex * ex - ey * ey
            ez = np.sqrt(np.maximum(slack, 0.0))
            z = az + ez
            inverse = 1.0 / ra
        window = buffers[:, y0:y1, x0:x1]
        hit = (slack > 0) & (z > window[0])
        np.copyto(window[0], z, where=hit)
        np.copyto(window[1], ex * inverse, where=hit)
        np.copyto(window[2], ey * inverse, where=hit)
        np.copyto(window[3], ez * inverse, where=hit)
        window[4][hit] = material

    @staticmethod
    def _shade(image: np.ndarray, buffers: np.ndarray, pelvis_depth: float, scale: float) -> None:
        """Lambert + specular + depth cue + outlines where the z-buffer is set, into the uint8 `image`, in place."""
        depth = buffers[0]
        covered = depth > -np.inf
        finite = np.where(covered, depth, np.float32(-1e6))
        jump = 0.07 * scale
        edge = np.zeros_like(covered)
        edge[:, 1:] |= np.abs(finite[:, 1:] - finite[:, :-1]) > jump
        edge[1:, :] |= np.abs(finite[1:, :] - finite[:-1, :]) > jump
        flat = np.flatnonzero(covered)
        z, nu, nv, nz, material = buffers.reshape(5, -1)[:, flat]
        diffuse = np.maximum(nu * _LIGHT[0] + nv * _LIGHT[1] + nz * _LIGHT[2], 0.0)
        behind = np.minimum(np.maximum((pelvis_depth - z) * (1.0 / (0.35 * scale)), -1.0), 1.0)
        light = (0.38 + 0.62 * diffuse) * (1.0 - 0.16 * behind)
        light *= np.where(edge.ravel()[flat], np.float32(0.45), np.float32(1.0))
        level = np.minimum(light * (_LEVELS / _MAX_LIGHT), _LEVELS - 1).astype(np.int32)
        shine = (nu * _HALF[0] + nv * _HALF[1] + nz * _HALF[2] - _SHINE_FROM) * (_SHINES / (1.0 - _SHINE_FROM))
        shine = np.minimum(np.maximum(shine, 0.0), _SHINES - 1).astype(np.int32)
        rows, cols = np.divmod(flat, covered.shape[1])
        image[rows, cols] = _PALETTE[(material.astype(np.int32) * _LEVELS + level) * _SHINES + shine]
        outline = edge & ~covered
        image[outline] = image[outline] // 2
