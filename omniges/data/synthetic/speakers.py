"""Speaker styles: voice, tempo, gesture amplitude and handedness of each synthetic speaker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeakerStyle:
    """What makes a speaker recognisable: voice, tempo, gesture amplitude and handedness."""

    speaker_id: int
    name: str
    f0_hz: float
    formant_scale: float
    syllable_s: float
    pause_s: float
    gesture_scale: float
    dominant: str
    both_hands: float


_SPEAKER_NAMES = [
    (2, "scott"), (4, "lawrence"), (6, "carla"), (8, "lu"), (1, "wayne"), (3, "solomon"), (5, "stewart"),
    (7, "sophie"), (9, "miranda"), (10, "kieks"), (11, "nidal"), (12, "zhao"), (13, "zhang"), (14, "carlos"),
    (15, "jorge"), (16, "itoi"), (17, "daiki"), (18, "jaime"), (19, "li"), (20, "ayana"), (21, "luqi"),
    (22, "hailing"), (23, "kexin"), (24, "goto"), (25, "reamey"), (26, "yingqing"), (27, "tiffnay"),
    (28, "hanieh"), (29, "katya"), (30, "nina"),
]
_FEMALE = {"carla", "lu", "sophie", "miranda", "ayana", "luqi", "hailing", "kexin", "yingqing", "tiffnay",
           "hanieh", "katya", "nina", "zhao"}
_DESIGNED = {  # f0, formant scale, syllable s, pause s, gesture scale, dominant hand, both-hands beats
    2: (105.0, 1.0, 0.20, 0.55, 1.0, "right", 0.3),
    4: (95.0, 0.97, 0.23, 0.70, 0.8, "left", 0.2),
    6: (205.0, 1.15, 0.17, 0.45, 1.1, "right", 0.5),
    8: (225.0, 1.18, 0.19, 0.60, 0.9, "left", 0.35),
}


def speaker_styles(count: int) -> list[SpeakerStyle]:
    """The first `count` speakers (at most 30): four designed ones, then styles drawn from the speaker id."""
    if not 1 <= count <= len(_SPEAKER_NAMES):
        raise ValueError(f"speakers must be in 1..{len(_SPEAKER_NAMES)}, got {count}")
    styles = []
    for speaker_id, name in _SPEAKER_NAMES[:count]:
        if speaker_id in _DESIGNED:
            styles.append(SpeakerStyle(speaker_id, name, *_DESIGNED[speaker_id]))
            continue
        rng = np.random.default_rng([speaker_id, 101])
        female = name in _FEMALE
        styles.append(SpeakerStyle(
            speaker_id, name, f0_hz=float(rng.uniform(190, 235) if female else rng.uniform(90, 125)),
            formant_scale=float(rng.uniform(1.12, 1.2) if female else rng.uniform(0.95, 1.03)),
            syllable_s=float(rng.uniform(0.17, 0.23)), pause_s=float(rng.uniform(0.45, 0.7)),
            gesture_scale=float(rng.uniform(0.8, 1.15)), dominant="left" if rng.random() < 0.3 else "right",
            both_hands=float(rng.uniform(0.2, 0.5)),
        ))
    return styles

