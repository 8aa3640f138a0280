"""Word-triggered iconic gestures and hand shapes, written as targets in the normalised pose space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from omniges.data.body import POSE_DIM
from omniges.data.synthetic.pose_space import FINGERS, MIRROR_JOINT, col


@dataclass(frozen=True)
class IconicGesture:
    """A word-triggered gesture in normalised pose space (+1 = toward the real 99.5 percentile, -1 = 0.5).

    `arm` targets use the LEFT-arm convention (joint, axis, value) and act on the dominant arm (both arms when
    `both_hands`), mirrored for the right arm; `head` targets and `shake` oscillations are not mirrored.
    """

    name: str
    words: tuple[str, ...]
    arm: tuple[tuple[int, int, float], ...] = ()
    hand: str = "relaxed"
    both_hands: bool = False
    head: tuple[tuple[int, int, float], ...] = ()
    shake: tuple[tuple[int, int, float], ...] = ()
    shake_hz: float = 0.0
    key: tuple[int, int] | None = None  # (joint, axis) of `arm` that identifies the gesture; default: largest

    def signature(self, dominant: str) -> tuple[int, float]:
        """(pose column, sign): where the gesture shows; sign of its offset in radians, 0 = oscillation."""
        if self.shake:
            joint, axis, _ = max(self.shake, key=lambda item: abs(item[2]))
            return col(joint, axis), 0.0
        joint, axis, value = max(self.arm, key=lambda item: (item[:2] == self.key, abs(item[2])))
        if dominant == "right":
            joint, value = int(MIRROR_JOINT[joint]), (value if axis == 0 else -value)
        return col(joint, axis), float(np.sign(value))


ICONIC_GESTURES: dict[str, IconicGesture] = {
    g.name: g
    for g in (
        IconicGesture("wide", ("big", "huge"), arm=((16, 2, 0.9), (16, 1, -0.2), (18, 1, 0.7), (20, 0, 0.3)),
                      hand="open", both_hands=True),
        IconicGesture("narrow", ("small", "little"),
                      arm=((13, 1, -0.6), (16, 1, -0.6), (16, 0, 0.7), (18, 1, -0.85)), hand="pinch",
                      both_hands=True, key=(13, 1)),
        IconicGesture("self", ("i", "me", "my"),  # hand to the chest
                      arm=((13, 1, -0.9), (16, 1, -0.7), (16, 0, 0.9), (18, 1, -0.95)), hand="open",
                      key=(13, 1)),
        IconicGesture("point", ("you",), arm=((16, 1, -0.95), (16, 2, 0.5), (18, 1, 0.8)), hand="point"),
        IconicGesture("raise", ("up",), arm=((16, 2, 0.95), (16, 1, -0.6), (18, 1, -0.9)), hand="point",
                      head=((15, 0, -0.6), (12, 0, -0.4))),
        IconicGesture("lower", ("down",), arm=((16, 1, -0.5), (18, 1, 0.5), (20, 0, -0.8)), hand="open",
                      head=((15, 0, 0.6), (12, 0, 0.4))),
        IconicGesture("shake", ("no", "never"), arm=((20, 0, 0.5),), hand="open",
                      shake=((15, 1, 0.85), (12, 1, 0.5)), shake_hz=3.0),
        IconicGesture("nod", ("yes",), shake=((15, 0, 0.85), (12, 0, 0.4)), shake_hz=2.5),
        IconicGesture("halt", ("stop",), arm=((16, 1, -0.85), (16, 2, 0.35), (18, 1, -0.3), (20, 0, -0.9)),
                      hand="open"),
        IconicGesture("offer", ("everyone", "all", "together"),
                      arm=((16, 1, -0.7), (16, 2, 0.4), (18, 1, -0.4), (20, 0, 0.9)), hand="open",
                      both_hands=True),
    )
}
ICONIC_WORDS: dict[str, str] = {word: g.name for g in ICONIC_GESTURES.values() for word in g.words}
HAND_SHAPES: dict[str, dict[str, float]] = {  # finger flexion (z) per finger, left-hand convention
    "relaxed": {},
    "open": {"index": 0.85, "middle": 0.85, "ring": 0.85, "pinky": 0.85, "thumb": 0.3},
    "point": {"index": 0.9, "middle": -0.9, "ring": -0.9, "pinky": -0.9, "thumb": -0.6},
    "pinch": {"index": -0.6, "middle": -0.2, "ring": -0.2, "pinky": -0.2, "thumb": -0.7},
}


def hand_items(shape: str) -> list[tuple[int, int, float]]:
    return [(25 + j, 2, v * (1.0 if k == 0 else 0.8)) for f, v in HAND_SHAPES[shape].items()
            for k, j in enumerate(FINGERS[f])]


def side_items(items: Sequence[tuple[int, int, float]], side: str) -> list[tuple[int, int, float]]:
    """Left-convention items on `side`: the right side mirrors the joint and flips the y and z axes."""
    if side == "left":
        return list(items)
    return [(int(MIRROR_JOINT[j]), a, v if a == 0 else -v) for j, a, v in items]


def pose_vector(items: Sequence[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Items -> (values (165,), mask (165,) bool)."""
    values, mask = np.zeros(POSE_DIM), np.zeros(POSE_DIM, bool)
    for joint, axis, value in items:
        values[col(joint, axis)], mask[col(joint, axis)] = value, True
    return values, mask

