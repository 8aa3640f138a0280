"""Embedded mini-corpus in the exact BEAT2 layout: speech-like audio, word TextGrids, SMPL-X motion.

Every clip is a script of phrases of words (fixed vocabulary, each word a list of syllables with a consonant
class, a vowel and a stress mark). The script drives both streams, so a model can learn their coupling:

- audio: band-limited glottal pulses at a speaker-specific f0 (phrase declination, pitch accents on stress)
  shaped by per-vowel formant resonators, consonant noise bursts, silent pauses between phrases;
- motion: beat strokes of the arms whose apex (a speed minimum) sits on each stressed vowel onset with an
  amplitude that follows loudness, iconic gestures for a set of words (`ICONIC_GESTURES`), head nods on
  stress, jaw and mouth expressions following the voice envelope and vowel, blinks, weight shifts and drift.

Poses are built in a normalised space per pose column (0 = rest, +1 / -1 = the 99.5 / 0.5 percentile of the
real BEAT2 clip 2_scott_0_1_1), so every angle stays inside the range of real motion; amplitudes are tuned
so per-joint mean speeds match BEAT2's `mean_vel_smplxflame_30.npy` (joint-position speed in m/s from SMPL-X
forward kinematics, translation included: the vector EMAGE's BC metric divides by).
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import wave
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import butter, iirpeak, lfilter, sosfilt
from scipy.spatial.transform import Rotation

from omniges.data.body import SMPLX_PARENTS

FPS = 30
SR = 16000
NUM_JOINTS = 55
POSE_DIM = 3 * NUM_JOINTS
EXPRESSION_DIM = 100
MOUTH_EXPRESSIONS = tuple(range(10))  # expression dims driven by the voice envelope and vowel
BLINK_EXPRESSION = 12  # expression dim that spikes on blinks


def _table(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=np.float64)


# Calibration from the real BEAT2 clip 2_scott_0_1_1 (poses in axis-angle, 165 columns): rest posture (mean of
# the 200 frames with the lowest hands), 0.5 and 99.5 percentiles; expression mean/std; BEAT2 mean_vel (m/s).
_REST = _table(
    """
    -0.236 0.053 -0.069 0.250 0.224 0.164 0.181 -0.199 -0.126 0.239 0.035 -0.005 -0.069 -0.105
    -0.119 0.108 -0.068 0.050 0.098 -0.038 -0.004 0.012 0.192 -0.142 -0.002 -0.201 0.133 0.103
    -0.017 0.063 -0.142 0.115 0.099 -0.144 0.013 -0.073 0.136 -0.045 -0.014 0.077 -0.146 -0.302
    0.039 0.202 0.251 -0.040 -0.076 0.085 0.055 -0.228 -0.923 0.106 0.191 0.933 0.346 -0.313 0.002
    0.189 0.311 0.027 -0.109 -0.071 0.026 0.002 -0.015 -0.012 0.021 -0.002 0.000 -0.002 0.039 -0.012
    0.028 -0.050 0.007 0.009 0.273 -0.147 0.031 -0.190 -0.458 0.138 -0.078 -0.150 -0.032 -0.060
    -0.611 0.076 0.005 -0.218 -0.074 -0.095 -0.067 -0.171 -0.540 -0.314 -0.053 0.103 -0.411 -0.392
    0.167 0.031 0.101 -0.286 -0.389 -0.291 -0.104 -0.433 -0.164 -0.056 -0.122 0.237 0.326 0.191
    -0.339 0.102 -0.256 0.510 0.239 0.213 0.100 -0.348 0.487 0.015 0.220 0.252 0.102 -0.018 0.001
    -0.020 0.040 0.707 0.099 -0.022 0.034 -0.055 0.208 0.201 -0.002 0.631 0.324 -0.382 -0.205 0.265
    -0.286 -0.091 0.013 -0.002 0.213 0.590 -0.174 0.001 0.234 -0.162 0.091 0.111 0.397 -0.335 -0.129
    -0.239 -0.189 0.180 0.464 -0.122 -0.009
    """
)
_LO = _table(
    """
    -0.582 -0.343 -0.180 -0.166 0.083 0.014 -0.714 -0.288 -0.421 0.065 -0.055 -0.078 -0.200 -0.324
    -0.191 -0.112 -0.262 -0.092 -0.061 -0.109 -0.076 -0.344 0.021 -0.357 -0.244 -0.407 -0.098 0.016
    -0.047 0.006 -0.328 0.024 -0.053 -0.336 -0.170 -0.263 -0.067 -0.279 -0.097 -0.196 -0.478 -0.378
    -0.237 -0.007 -0.293 -0.151 -0.237 -0.020 -0.438 -0.706 -1.078 -0.308 -0.065 0.435 -0.481 -1.784
    -0.091 -0.765 0.124 -0.998 -1.128 -0.236 -0.335 -1.170 -0.176 -0.599 -0.012 -0.008 -0.003 -0.030
    -0.007 -0.058 0.005 -0.087 -0.015 -0.100 0.047 -0.580 -0.104 -0.252 -0.654 -0.055 -0.194 -0.456
    -0.109 -0.146 -0.974 -0.053 -0.164 -0.629 -0.224 -0.284 -0.511 -0.535 -0.692 -0.685 -0.418
    -0.094 -0.579 -0.857 -0.132 -0.083 -0.083 -0.373 -0.873 -0.351 -0.216 -0.734 -0.354 -0.239
    -0.475 0.025 0.050 0.095 -0.522 -0.123 -0.378 0.180 -0.029 -0.136 -0.038 -0.648 -0.111 -0.291
    -0.018 0.000 -0.088 -0.178 -0.006 -0.342 -0.396 -0.230 -0.193 -0.104 -0.005 -0.222 -0.069 -0.001
    -0.677 0.001 -0.321 -0.947 -0.951 -0.109 -0.476 -0.223 -0.025 -0.392 -0.202 -0.235 -0.300 -0.101
    -0.001 -0.307 -0.025 -0.002 -0.050 -0.500 -0.479 -0.536 -0.461 -0.020 0.027 -0.463 -0.319
    """
)
_HI = _table(
    """
    0.005 0.520 0.064 0.515 0.302 0.586 0.585 -0.080 0.031 0.531 0.123 0.110 1.115 0.137 -0.003
    1.234 0.084 0.233 0.259 0.032 0.063 0.370 0.333 0.054 0.315 -0.044 0.287 0.161 0.028 0.093
    -0.079 0.418 0.379 -0.005 0.085 0.146 0.334 0.095 0.144 0.169 0.076 0.220 0.130 0.496 0.322
    0.067 0.068 0.199 0.281 0.072 -0.327 0.310 0.575 1.228 0.621 -0.126 0.836 0.437 2.266 0.136
    0.168 0.148 0.409 0.422 0.202 0.269 0.053 0.003 0.005 0.037 0.063 0.051 0.045 -0.019 0.022 0.131
    0.375 0.258 0.188 -0.041 0.004 0.204 0.007 0.005 0.261 0.254 0.106 0.187 0.136 0.006 -0.013
    0.089 0.005 0.316 0.291 0.025 0.545 0.448 0.045 0.351 0.323 0.108 0.402 0.103 0.176 0.070 0.220
    0.001 -0.074 0.120 0.012 0.581 0.427 0.304 -0.171 0.312 -0.154 0.650 0.425 0.472 0.229 -0.192
    0.814 0.093 0.368 0.733 0.259 0.153 0.259 0.248 0.139 1.945 0.190 0.252 0.749 0.050 0.304 0.443
    0.570 0.981 1.655 -0.047 0.240 0.625 0.379 0.237 0.559 0.327 0.296 1.952 0.014 0.160 0.921 0.021
    0.255 0.335 0.662 -0.013 0.065 -0.086 0.033 0.380 0.630 0.139 0.316
    """
)
_EXPRESSION_MEAN = _table(
    """
    0.22 0.54 -0.03 -0.33 0.94 0.57 0.31 -0.07 -0.53 0.55 -1.05 -0.13 0.63 -1.35 0.06 0.22 -0.16
    0.05 0.97 -0.08 -0.19 -0.72 0.36 -0.65 -1.33 -0.07 0.16 1.26 -0.89 -0.11 -0.09 1.75 -0.45 -1.53
    -1.20 -1.51 -1.02 0.69 -0.50 -0.92 -1.47 0.09 0.57 -0.49 -2.09 1.17 -0.72 -0.49 -0.74 1.94 -0.83
    -0.38 -0.20 -0.22 -0.60 0.65 1.56 -1.00 -0.25 0.11 -0.19 0.03 2.92 1.09 -1.17 0.64 1.08 0.82
    1.13 -0.35 0.32 0.04 -0.53 -1.66 0.12 0.35 -0.27 1.30 0.58 -0.26 1.59 0.73 -0.48 -0.30 -0.68
    2.32 0.73 1.56 -0.52 -1.66 -0.95 0.58 1.46 -0.35 -1.75 -3.15 -0.38 0.10 0.37 0.45
    """
)
_EXPRESSION_STD = _table(
    """
    0.28 0.17 0.15 0.39 0.19 0.32 0.19 0.35 0.23 0.34 0.27 0.66 0.40 0.48 0.25 0.39 0.44 0.23 0.33
    0.42 0.27 0.23 0.39 0.38 0.30 0.28 0.30 0.37 0.40 0.55 0.19 0.37 0.23 0.32 0.43 0.65 0.26 0.43
    0.29 0.63 0.53 0.35 0.42 0.21 0.43 0.39 0.22 0.49 0.40 0.51 0.39 0.32 0.88 0.29 0.45 0.39 0.60
    0.34 0.43 0.72 0.42 0.28 1.08 0.44 0.60 0.47 0.55 0.77 0.38 0.37 0.52 0.18 0.53 0.76 0.70 0.39
    0.69 0.37 0.59 0.55 0.54 0.64 0.52 0.62 0.75 0.71 1.07 0.38 0.59 0.67 0.42 0.45 0.39 0.67 0.62
    0.95 0.43 0.45 0.54 0.44
    """
)
BEAT2_MEAN_VEL = _table(
    """
    0.0833 0.0842 0.0848 0.0850 0.0803 0.0803 0.0874 0.0492 0.0523 0.0883 0.0471 0.0517 0.0961
    0.0920 0.0924 0.1033 0.1050 0.1037 0.1571 0.1603 0.2509 0.2696 0.1032 0.1085 0.1087 0.3372
    0.3695 0.3697 0.3435 0.3680 0.3615 0.3251 0.3356 0.3327 0.3342 0.3540 0.3469 0.2836 0.3058
    0.3303 0.3653 0.4016 0.4023 0.3720 0.3969 0.3900 0.3511 0.3645 0.3608 0.3614 0.3822 0.3750
    0.3057 0.3309 0.3577
    """
)

# ---------------------------------------------------------------------------------------------- skeleton

PARENTS = np.array(SMPLX_PARENTS)
_MIRROR_PAIRS = [(1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (23, 24)]


def _mirror_joints() -> np.ndarray:
    mirror = np.arange(NUM_JOINTS)
    for a, b in _MIRROR_PAIRS + [(25 + k, 40 + k) for k in range(15)]:
        mirror[a], mirror[b] = b, a
    return mirror


MIRROR_JOINT = _mirror_joints()  # left <-> right joint index
FINGERS = {  # joint offsets inside a hand (25.. left, 40.. right), SMPL-X order
    "index": (0, 1, 2), "middle": (3, 4, 5), "pinky": (6, 7, 8), "ring": (9, 10, 11), "thumb": (12, 13, 14),
}


def _symmetric_bounds(lo: np.ndarray, hi: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left/right ranges intersected with their mirror images, so both arms move alike (and stay real)."""
    lo3, hi3, rest3 = lo.reshape(-1, 3), hi.reshape(-1, 3), rest.reshape(-1, 3)
    keep = np.array([1.0, -1.0, -1.0]) > 0
    mirrored_lo = np.where(keep, lo3[MIRROR_JOINT], -hi3[MIRROR_JOINT])
    mirrored_hi = np.where(keep, hi3[MIRROR_JOINT], -lo3[MIRROR_JOINT])
    paired = (MIRROR_JOINT != np.arange(NUM_JOINTS))[:, None]
    new_lo = np.where(paired, np.maximum(lo3, mirrored_lo), lo3)
    new_hi = np.where(paired, np.minimum(hi3, mirrored_hi), hi3)
    margin = 0.05 * (hi3 - lo3)
    new_lo = np.maximum(np.minimum(new_lo, rest3 - margin), lo3)
    new_hi = np.minimum(np.maximum(new_hi, rest3 + margin), hi3)
    return new_lo.ravel(), new_hi.ravel()


_LO, _HI = _symmetric_bounds(_LO, _HI, _REST)


def _rest_offsets() -> np.ndarray:
    """Approximate SMPL-X neutral joint offsets from each parent (metres, y up, z forward, +x = body left)."""
    offsets = np.zeros((NUM_JOINTS, 3))
    left = {  # left side and spine; the right side mirrors x
        1: (0.06, -0.09, -0.01), 3: (0.0, 0.11, -0.03), 4: (0.04, -0.38, 0.0), 6: (0.0, 0.14, 0.03),
        7: (-0.01, -0.43, -0.04), 9: (0.0, 0.056, 0.003), 10: (0.04, -0.06, 0.12), 12: (0.0, 0.21, -0.03),
        13: (0.07, 0.12, -0.02), 15: (0.01, 0.09, 0.05), 16: (0.12, 0.045, -0.01), 18: (0.255, -0.015, -0.02),
        20: (0.265, 0.01, -0.007), 22: (0.0, -0.02, 0.03), 23: (0.03, 0.06, 0.08),
    }
    base = {"index": (0.09, -0.005, 0.025), "middle": (0.095, 0.0, 0.005), "pinky": (0.075, -0.01, -0.04),
            "ring": (0.085, -0.005, -0.02)}
    for finger, (j0, j1, j2) in FINGERS.items():
        if finger == "thumb":
            left[25 + j0], left[25 + j1] = (0.025, -0.015, 0.025), (0.025, -0.005, 0.02)
            left[25 + j2] = (0.025, 0.0, 0.015)
        else:
            left[25 + j0], left[25 + j1], left[25 + j2] = base[finger], (0.033, 0.0, 0.0), (0.024, 0.0, 0.0)
    for joint, offset in left.items():
        offsets[joint] = offset
        if MIRROR_JOINT[joint] != joint:
            offsets[MIRROR_JOINT[joint]] = (-offset[0], offset[1], offset[2])
    return offsets


def _joint_positions(poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T,165) axis-angle + (T,3) translation -> (T,55,3) joints by approximate SMPL-X FK (betas = 0)."""
    length = len(poses)
    local = Rotation.from_rotvec(np.asarray(poses, np.float64).reshape(-1, 3)).as_matrix()
    local = local.reshape(length, NUM_JOINTS, 3, 3)
    offsets = _rest_offsets()
    world = np.empty_like(local)
    positions = np.empty((length, NUM_JOINTS, 3))
    world[:, 0], positions[:, 0] = local[:, 0], trans
    for joint in range(1, NUM_JOINTS):
        parent = PARENTS[joint]
        world[:, joint] = world[:, parent] @ local[:, joint]
        positions[:, joint] = positions[:, parent] + world[:, parent] @ offsets[joint]
    return positions


def mean_joint_speeds(poses: np.ndarray, trans: np.ndarray, fps: int = FPS) -> np.ndarray:
    """Per-joint mean position speed (55,) in m/s, computed like BEAT2's mean_vel (central differences)."""
    positions = _joint_positions(poses, trans)
    velocity = np.gradient(positions, 1.0 / fps, axis=0)
    return np.linalg.norm(velocity, axis=-1).mean(axis=0)


# -------------------------------------------------------------------------------------------- vocabulary

# word: syllables as <consonant class><vowel><stress>; consonant classes - s f t k n h, vowels a e i o u @.
_LEXICON = """
big:ti1 huge:hu1 small:sa1 little:ti1.t@0 i:-a1 me:ni1 my:na1 you:-u1 up:-@1 down:ta1 no:no1 never:ne1.f@0
yes:-e1 stop:so1 everyone:-e1.f@0.-i0.n@0 all:-o1 together:t@0.ke1.f@0
the:-@0 a:-@0 and:-a0 to:tu0 of:-@0 it:-i0 is:-i0 was:-o0 we:-i1 they:-e1 this:si1 that:ta1 here:hi1
there:-e1 think:ti1 know:no1 really:ni1.-i0 very:fe1.-i0 people:ti1.t@0 time:ta1 way:-e1 good:ku1 great:ke1
make:ne1 go:ko1 come:ka1 see:si1 want:-o1 because:ti0.ko1 something:sa1.fi0 thing:fi1 always:-o1.-e0
maybe:ne1.ti0 today:t@0.te1 tomorrow:t@0.no1.-o0 important:-i0.to1.t@0 beautiful:ti1.tu0.f@0
amazing:-@0.ne1.si0 story:so1.-i0 music:ni1.si0 family:fa1.n@0.-i0 friend:fe1 work:-o1 life:-a1 world:-o1
idea:-a0.ti1.-@0 question:ke1.s@0 answer:-a1.s@0 problem:to1.t@0 feel:fi1 love:-a1 happy:ha1.ti0 day:te1
start:sa1 change:se1 move:nu1 help:he1 try:ta1 talk:to1 hard:ha1 easy:-i1.si0 first:f@1 last:-a1 next:ne1
home:ho1 place:te1
"""
LEXICON: dict[str, tuple[tuple[str, str, int], ...]] = {
    word: tuple((s[0], s[1], int(s[2])) for s in spec.split("."))
    for word, spec in (item.split(":") for item in _LEXICON.split())
}
VOCABULARY: list[str] = list(LEXICON)
_FUNCTION_WORDS = ("the", "a", "and", "to", "of", "it", "is", "we", "this", "that")

VOWELS = "aeiou@"
CONSONANTS = "-sftknh"
_FORMANTS = {  # (F1, F2, F3) Hz of an adult male voice
    "a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (300, 2250, 3000), "o": (570, 840, 2410),
    "u": (320, 900, 2240), "@": (500, 1500, 2500),
}
_FORMANT_GAIN_BW = ((1.0, 80.0), (0.5, 100.0), (0.25, 150.0))
_OPENNESS = np.array([1.0, 0.6, 0.3, 0.7, 0.35, 0.5])  # jaw opening per vowel, order VOWELS
_CONSONANT_S = {"-": 0.0, "s": 0.085, "f": 0.07, "t": 0.05, "k": 0.055, "n": 0.06, "h": 0.06}
_NOISE_BANDS = {"s": (3800.0, 7500.0, 0.22), "f": (1500.0, 6500.0, 0.12), "t": (2000.0, 6000.0, 0.35),
                "k": (1200.0, 3500.0, 0.3), "h": (500.0, 3000.0, 0.1)}


# ---------------------------------------------------------------------------------------------- gestures

def _c(joint: int, axis: int) -> int:
    return 3 * joint + axis


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
            return _c(joint, axis), 0.0
        joint, axis, value = max(self.arm, key=lambda item: (item[:2] == self.key, abs(item[2])))
        if dominant == "right":
            joint, value = int(MIRROR_JOINT[joint]), (value if axis == 0 else -value)
        return _c(joint, axis), float(np.sign(value))


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


def _hand_items(shape: str) -> list[tuple[int, int, float]]:
    return [(25 + j, 2, v * (1.0 if k == 0 else 0.8)) for f, v in HAND_SHAPES[shape].items()
            for k, j in enumerate(FINGERS[f])]


def _side(items: Sequence[tuple[int, int, float]], side: str) -> list[tuple[int, int, float]]:
    """Left-convention items on `side`: the right side mirrors the joint and flips the y and z axes."""
    if side == "left":
        return list(items)
    return [(int(MIRROR_JOINT[j]), a, v if a == 0 else -v) for j, a, v in items]


def _vector(items: Sequence[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Items -> (values (165,), mask (165,) bool)."""
    values, mask = np.zeros(POSE_DIM), np.zeros(POSE_DIM, bool)
    for joint, axis, value in items:
        values[_c(joint, axis)], mask[_c(joint, axis)] = value, True
    return values, mask


# ---------------------------------------------------------------------------------------------- speakers

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


# ------------------------------------------------------------------------------------------------ script

@dataclass
class _Script:
    """Phrases of words of syllables on the sample grid: the single source of the audio, text and motion."""

    words: list[tuple[str, int, int, int]] = field(default_factory=list)  # word, start, end, stressed onset
    phrases: list[tuple[int, int]] = field(default_factory=list)
    syllables: list[tuple[int, int, int, int, int, int, float]] = field(default_factory=list)
    # (start, vowel onset, end, vowel index, consonant index, stressed, loudness)

    def column(self, index: int) -> np.ndarray:
        return np.array([s[index] for s in self.syllables])


def _samples(seconds: float) -> int:
    """Seconds -> samples on a 0.5 ms grid: TextGrid times are exact in seconds and in samples."""
    return 8 * int(round(seconds * SR / 8))


def _word_sampler(vocabulary: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word probabilities (iconic words 20 % together, function words 3x the others) and the iconic mask."""
    iconic = np.array([w in ICONIC_WORDS for w in vocabulary])
    weight = np.where(np.isin(vocabulary, _FUNCTION_WORDS), 3.0, 1.0)
    if iconic.any() and not iconic.all():
        weight = np.where(iconic, 0.2 * weight / weight[iconic].sum(), 0.8 * weight / weight[~iconic].sum())
    return weight / weight.sum(), iconic


def _phrase(style: SpeakerStyle, start: int, vocabulary: Sequence[str], rng: np.random.Generator
            ) -> list[tuple[str, list[tuple[int, int, int, int, int, int, float]]]]:
    """3-7 words (never two iconic ones in a row) laid out as syllables from sample `start`."""
    prob, iconic = _word_sampler(vocabulary)
    indices: list[int] = []
    for _ in range(int(rng.integers(3, 8))):
        choice = int(rng.choice(len(vocabulary), p=prob))
        while indices and iconic[indices[-1]] and iconic[choice] and not iconic.all():
            choice = int(rng.choice(len(vocabulary), p=prob))
        indices.append(choice)
    gain, tempo, cursor = rng.uniform(0.75, 1.0), style.syllable_s / 0.2, start
    words = []
    for position, index in enumerate(indices):
        word, syllables = vocabulary[index], []
        for k, (consonant, vowel, stress) in enumerate(LEXICON[word]):
            final = position == len(indices) - 1 and k == len(LEXICON[word]) - 1
            duration = style.syllable_s * (1.3 if stress else 0.8) * rng.uniform(0.85, 1.15)
            duration *= 1.35 if final else 1.0
            onset = cursor + _samples(_CONSONANT_S[consonant] * tempo)
            end = max(cursor + _samples(duration), onset + _samples(0.09))
            loud = gain * (1.0 if stress else 0.45) * rng.lognormal(0.0, 0.12)
            loud *= 1.15 if iconic[index] else 1.0  # iconic words are emphasised
            kinds = VOWELS.index(vowel), CONSONANTS.index(consonant)
            syllables.append((cursor, onset, end, *kinds, stress, loud))
            cursor = end
        words.append((word, syllables))
    return words


def _script(style: SpeakerStyle, n_samples: int, vocabulary: Sequence[str], rng: np.random.Generator
            ) -> _Script:
    """Phrases separated by pauses, filling the clip up to a trailing silence of at least 0.4 s."""
    script = _Script()
    cursor, limit = _samples(rng.uniform(0.4, 0.8)), n_samples - _samples(0.4)
    while True:
        planned = _phrase(style, cursor, vocabulary, rng)
        complete = len(planned)
        while planned and planned[-1][1][-1][2] > limit:
            planned.pop()
        if not planned:
            return script
        for word, syllables in planned:
            apex = next((syl[1] for syl in syllables if syl[5]), syllables[0][1])
            script.words.append((word, syllables[0][0], syllables[-1][2], apex))
            script.syllables.extend(syllables)
        script.phrases.append((planned[0][1][0][0], planned[-1][1][-1][2]))
        if len(planned) < complete:
            return script
        cursor = script.phrases[-1][1] + _samples(style.pause_s * rng.uniform(0.6, 1.6))


# ------------------------------------------------------------------------------------------------- audio

def _raised_cosine(length: int, attack: int, release: int) -> np.ndarray:
    shape = np.ones(length)
    attack, release = min(attack, length // 2), min(release, length // 2)
    if attack:
        shape[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release:
        shape[length - release:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(release) + 1) / release)
    return shape


def _envelopes(script: _Script, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-vowel voiced envelopes (6, n) and per-consonant-class envelopes (7, n) on the sample grid."""
    voiced, noise = np.zeros((len(VOWELS), n_samples)), np.zeros((len(CONSONANTS), n_samples))
    for start, onset, end, vowel, consonant, _, loud in script.syllables:
        length = end - onset - int(0.025 * SR)
        decay = 1.0 - 0.5 * np.linspace(0.0, 1.0, length)
        shape = _raised_cosine(length, int(0.012 * SR), int(0.05 * SR))
        voiced[vowel, onset:onset + length] += loud * decay * shape
        if onset > start:
            span = onset - start
            if CONSONANTS[consonant] in "tk":  # closure then a short burst
                burst = min(span, int(0.02 * SR))
                noise[consonant, onset - burst:onset] += loud * _raised_cosine(burst, 2, burst // 2)
            else:
                noise[consonant, start:onset] += loud * _raised_cosine(span, span // 3, span // 4)
    return voiced, noise


def _render_audio(script: _Script, style: SpeakerStyle, voiced: np.ndarray, noise_env: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Source-filter speech: band-limited glottal pulses through vowel formants, noise consonants; int16."""
    n_samples = voiced.shape[1]
    rate = 200
    t_ctrl = np.arange(n_samples * rate // SR + 2) / rate
    contour = np.full(len(t_ctrl), 0.92)
    for start, end in script.phrases:
        inside = (t_ctrl >= start / SR) & (t_ctrl < end / SR)
        contour[inside] = np.linspace(1.08, 0.92, int(inside.sum()))
    stressed = script.column(5) == 1
    if stressed.any():
        mid = (script.column(1)[stressed] + script.column(2)[stressed]) / (2 * SR)
        accent = 0.2 * script.column(6)[stressed] * np.exp(-0.5 * ((t_ctrl[:, None] - mid) / 0.07) ** 2)
        contour = contour * (1.0 + accent.sum(axis=1))
    contour *= 1.0 + 0.015 * _smooth_noise(rng, (len(t_ctrl), 1), 4.0)[:, 0]  # slow jitter
    f0 = style.f0_hz * np.interp(np.arange(n_samples) / SR, t_ctrl, contour)
    phase = np.mod(2 * np.pi * np.cumsum(f0) / SR, 2 * np.pi)
    harmonics = int(3800 / (style.f0_hz * 1.4))
    half = np.sin(phase / 2)
    safe = np.where(np.abs(half) > 1e-6, half, 1.0)
    pulses = np.where(np.abs(half) > 1e-6, np.sin((harmonics + 0.5) * phase) / (2 * safe) - 0.5, harmonics)
    source = lfilter([1.0], [1.0, -0.7], pulses / harmonics)

    out = np.zeros(n_samples)
    for v, vowel in enumerate(VOWELS):
        if not voiced[v].any():
            continue
        excitation = source * voiced[v]
        for formant, (gain, bandwidth) in zip(_FORMANTS[vowel], _FORMANT_GAIN_BW, strict=True):
            hz = formant * style.formant_scale
            b, a = iirpeak(hz, hz / (bandwidth * style.formant_scale), fs=SR)
            out += gain * lfilter(b, a, excitation)
    hiss = rng.standard_normal(n_samples)
    for c, consonant in enumerate(CONSONANTS):
        if not noise_env[c].any():
            continue
        if consonant == "n":  # nasal murmur: low-passed voicing
            out += 0.6 * sosfilt(butter(2, 400.0, fs=SR, output="sos"), source * noise_env[c])
        elif consonant in _NOISE_BANDS:
            low, high, gain = _NOISE_BANDS[consonant]
            band = butter(2, [low, high], btype="bandpass", fs=SR, output="sos")
            out += gain * sosfilt(band, hiss * noise_env[c])
    out = 0.7 * out / max(np.abs(out).max(), 1e-9) + 0.0008 * rng.standard_normal(n_samples)
    return np.round(np.clip(out, -1.0, 1.0) * 32767).astype(np.int16)


# ------------------------------------------------------------------------------------------------ motion

_SOFT = 0.97
BEAT_GAIN = 1.4
_LEG_M = 0.85
_PER_RADIAN = 2.0 / (_HI - _LO)
_PLANT = 0.7  # fraction of the pelvis sway the legs absorb


def _soft_clip(f: np.ndarray) -> np.ndarray:
    """Smooth saturation of normalised poses at +-0.97 (nearly linear below 0.7)."""
    return f / (1.0 + (np.abs(f) / _SOFT) ** 8) ** (1 / 8)


def _to_radians(f: np.ndarray) -> np.ndarray:
    return _REST + np.where(f >= 0, f * (_HI - _REST), f * (_REST - _LO))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, sigma in frames."""
    pad = int(4 * sigma) + 1
    white = rng.standard_normal((shape[0] + 2 * pad, shape[1]))
    return gaussian_filter1d(white, sigma, axis=0)[pad:-pad] * np.sqrt(2 * np.sqrt(np.pi) * sigma)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _beat_kernel(tau: np.ndarray) -> np.ndarray:
    """Stroke displacement around a beat at tau = 0 s: fast rise, apex (zero speed) on it, slow return."""
    rise = _smoothstep((tau + 0.24) / 0.24)
    fall = 1.0 - _smoothstep(tau / 0.55)
    return np.where(tau < 0, rise, fall)


def _amplitudes() -> np.ndarray:
    """Idle-motion amplitude per pose column (normalised units)."""
    amp = np.zeros(POSE_DIM)
    groups = {
        (0,): 0.08, (1, 2, 4, 5, 7, 8, 10, 11): 0.04, (3, 6, 9): 0.25, (12, 15): 0.3, (13, 14): 0.25,
        (16, 17): 0.1, (18, 19): 0.06, (20, 21): 0.1, (23, 24): 0.35, tuple(range(25, 55)): 0.28,
    }
    for joints, value in groups.items():
        for joint in joints:
            amp[3 * joint:3 * joint + 3] = value
    return amp


_SPACE = ((16, 1, -0.35), (16, 2, 0.2), (18, 1, -0.55), (20, 0, -0.2), (13, 2, 0.2))  # gesture space, left
_BEATS = (  # beat stroke shapes (left arm): chop down, push forward, open outward
    ((18, 1, 0.3), (20, 2, 0.25), (16, 2, -0.3)),
    ((16, 1, -0.5), (18, 1, -0.2), (20, 0, -0.2)),
    ((16, 2, 0.35), (20, 0, 0.35), (18, 0, 0.3)),
)
_NOD = ((15, 0, 0.35), (12, 0, 0.15), (9, 0, 0.08))
_WEIGHT = ((0, 2, 0.3), (1, 2, -0.12), (2, 2, -0.12), (5, 0, 0.12), (4, 0, -0.05), (3, 2, -0.15),
           (6, 2, -0.1), (8, 0, 0.1), (7, 0, -0.05))


_MOUTH_LOADING = np.random.default_rng(12345).uniform(-1.0, 1.0, (len(VOWELS), len(MOUTH_EXPRESSIONS)))
_MOUTH_LOADING[:, 0] = 1.5 * _OPENNESS  # the first mouth dim opens with the jaw


def _speaker_posture(style: SpeakerStyle) -> np.ndarray:
    """Constant per-speaker offset from the rest posture (normalised units); jaw and eyes stay at rest."""
    posture = np.random.default_rng([style.speaker_id, 17]).normal(0.0, 0.12, POSE_DIM)
    posture[_c(22, 0):_c(25, 0)] = 0.0
    return posture


def _frame_means(signal: np.ndarray, n_frames: int) -> np.ndarray:
    """Mean of a (..., n_samples) signal over each motion frame."""
    edges = (np.arange(n_frames + 1) * signal.shape[-1]) // n_frames
    return np.add.reduceat(signal, edges[:-1], axis=-1) / np.diff(edges)


def _weight_side(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which leg carries the weight (-1 right .. +1 left), switching every 3-8 s with a smooth transfer."""
    switches = np.cumsum(rng.uniform(3.0, 8.0, size=int(t[-1] / 3) + 2))
    side = rng.choice([-1.0, 1.0]) * (-1.0) ** np.searchsorted(switches, t) * rng.uniform(0.5, 1.0)
    return gaussian_filter1d(side, 0.5 * FPS, mode="nearest")


def _gesture_space(script: _Script, style: SpeakerStyle, t: np.ndarray, rng: np.random.Generator
                   ) -> np.ndarray:
    """Arms come up into gesture space while a phrase is spoken and rest in the pauses."""
    speaking = np.zeros(len(t))
    for start, end in script.phrases:
        speaking[(t >= start / SR - 0.2) & (t < end / SR + 0.3)] = rng.uniform(0.6, 1.2)
    speaking = gaussian_filter1d(speaking, 0.25 * FPS)
    other = "left" if style.dominant == "right" else "right"
    space = _vector(_side(_SPACE, style.dominant))[0] + 0.75 * _vector(_side(_SPACE, other))[0]
    return style.gesture_scale * speaking[:, None] * space


def _strokes(script: _Script, style: SpeakerStyle, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Beat strokes (arms, open hand, head nod), apex on each stressed vowel onset, sized by loudness."""
    stressed = script.column(5) == 1
    if not stressed.any():
        return np.zeros((len(t), POSE_DIM))
    beats, loud = script.column(1)[stressed] / SR, script.column(6)[stressed]
    strength = BEAT_GAIN * style.gesture_scale * loud * rng.uniform(0.8, 1.2, len(beats))
    shapes = rng.integers(0, len(_BEATS), len(beats))
    both = rng.random(len(beats)) < style.both_hands
    other = "left" if style.dominant == "right" else "right"
    common = 0.3 * _vector(_side(_hand_items("open"), style.dominant))[0] + _vector(_NOD)[0]
    vectors = np.stack([
        _vector(_side(_BEATS[s], style.dominant))[0]
        + (0.9 if b else 0.5) * _vector(_side(_BEATS[s], other))[0]
        for s, b in zip(shapes, both, strict=True)
    ]) + common
    return _beat_kernel(t[:, None] - beats[None, :]) @ (strength[:, None] * vectors)


def _apply_iconic(f: np.ndarray, script: _Script, style: SpeakerStyle, t: np.ndarray) -> None:
    """Blend toward each iconic word's pose: in over 0.5 s up to its stressed vowel, out 0.6 s after it."""
    other = "left" if style.dominant == "right" else "right"
    for word, _, end, apex in script.words:
        if word not in ICONIC_WORDS:
            continue
        gesture = ICONIC_GESTURES[ICONIC_WORDS[word]]
        ws, we = apex / SR, max(end / SR, apex / SR + 0.3)
        weight = np.minimum(_smoothstep((t - ws + 0.5) / 0.5), 1.0 - _smoothstep((t - we) / 0.6))
        sides = [style.dominant, other] if gesture.both_hands else [style.dominant]
        items = [item for s in sides for item in _side(list(gesture.arm) + _hand_items(gesture.hand), s)]
        target, mask = _vector(items + list(gesture.head))
        f += (weight[:, None] * mask) * (target - f)
        for joint, axis, value in gesture.shake:
            f[:, _c(joint, axis)] += weight * value * np.sin(2 * np.pi * gesture.shake_hz * (t - ws))


def _translation(style: SpeakerStyle, side: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drift around a speaker spot (about BEAT2's pelvis speed), sideways with the weight shifts."""
    n_frames = len(side)
    spot = np.random.default_rng([style.speaker_id, 23]).uniform([-0.2, 1.27, -0.4], [0.2, 1.31, 0.1])
    drift = _smooth_noise(rng, (n_frames, 3), 1.0 * FPS) * np.array([0.07, 0.004, 0.09])
    drift += _smooth_noise(rng, (n_frames, 3), 0.3 * FPS) * np.array([0.012, 0.002, 0.012])
    return spot + drift + np.outer(side, [0.03, 0.0, 0.0]) - np.outer(np.abs(side), [0.0, 0.008, 0.0])


def _plant_feet(f: np.ndarray, trans: np.ndarray) -> None:
    """Lean the legs against the faster part of the pelvis sway, so the feet move less than the pelvis."""
    lean = (trans - gaussian_filter1d(trans, 3.0 * FPS, axis=0, mode="nearest")) / _LEG_M * _PLANT
    for hip, ankle in ((1, 7), (2, 8)):
        for axis, delta in ((0, lean[:, 2]), (2, -lean[:, 0])):
            f[:, _c(hip, axis)] += delta * _PER_RADIAN[_c(hip, axis)]
            f[:, _c(ankle, axis)] -= delta * _PER_RADIAN[_c(ankle, axis)]


def _expressions(style: SpeakerStyle, voiced: np.ndarray, t: np.ndarray, rng: np.random.Generator
                 ) -> np.ndarray:
    """Speaker face + slow variation + mouth dims following the vowels + blinks, (T, 100) float64."""
    n_frames = len(t)
    face = np.random.default_rng([style.speaker_id, 29]).standard_normal(EXPRESSION_DIM)
    expressions = _EXPRESSION_MEAN + 0.3 * _EXPRESSION_STD * face
    expressions = expressions + 0.35 * _EXPRESSION_STD * _smooth_noise(rng, (n_frames, EXPRESSION_DIM), FPS)
    mouth = list(MOUTH_EXPRESSIONS)
    per_vowel = _frame_means(voiced, n_frames).T
    expressions[:, mouth] += 1.5 * _EXPRESSION_STD[mouth] * (per_vowel @ _MOUTH_LOADING)
    blinks = np.cumsum(rng.uniform(2.0, 5.0, size=int(t[-1] / 2) + 1))
    blink = np.exp(-0.5 * ((t[:, None] - blinks[None, :]) / 0.06) ** 2).sum(axis=1)
    expressions[:, BLINK_EXPRESSION] += 2.5 * _EXPRESSION_STD[BLINK_EXPRESSION] * blink
    return gaussian_filter1d(expressions, 0.8, axis=0)


def _render_motion(script: _Script, style: SpeakerStyle, voiced: np.ndarray, n_frames: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Poses, translation and expressions driven by the script (beats, iconic words, phrases, voice)."""
    t = np.arange(n_frames) / FPS
    f = np.broadcast_to(_speaker_posture(style), (n_frames, POSE_DIM)).copy()
    amp = _amplitudes()
    f += _smooth_noise(rng, f.shape, 1.2 * FPS) * amp + _smooth_noise(rng, f.shape, 0.2 * FPS) * (0.35 * amp)
    side = _weight_side(t, rng)
    f += side[:, None] * _vector(_WEIGHT)[0]
    f += _gesture_space(script, style, t, rng)
    strokes = _strokes(script, style, t, rng)
    _apply_iconic(f, script, style, t)
    trans = _translation(style, side, rng)
    _plant_feet(f, trans)
    f += strokes  # beats ride on top of iconic holds too
    opening = _frame_means((_OPENNESS[:, None] * voiced).sum(axis=0), n_frames)
    f[:, _c(22, 0)] = -0.7 + 1.6 * np.clip(opening, 0.0, 1.0)  # jaw opens with the voice, by vowel
    f[:, _c(22, 1):_c(22, 2) + 1] = 0.0
    poses = _to_radians(_soft_clip(gaussian_filter1d(f, 1.0, axis=0))).astype(np.float32)
    return {"poses": poses, "trans": trans, "expressions": _expressions(style, voiced, t, rng)}


# -------------------------------------------------------------------------------------------------- clips

@dataclass(frozen=True)
class SyntheticClip:
    """One clip in memory: BEAT2 npz arrays, int16 audio, word intervals (s) and beat times (s)."""

    clip_id: str
    style: SpeakerStyle
    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    expressions: np.ndarray
    audio: np.ndarray
    words: list[tuple[str, float, float]]
    beats: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.poses) / FPS


def _betas(style: SpeakerStyle) -> np.ndarray:
    betas = np.zeros(300, np.float32)
    betas[:10] = np.random.default_rng([style.speaker_id, 31]).normal(0.0, 0.8, 10)
    return betas


def synthesize_clip(style: SpeakerStyle, *, seconds: float, seed: int = 0, index: int = 0,
                    vocabulary: Sequence[str] = VOCABULARY) -> SyntheticClip:
    """One deterministic clip of `seconds` (rounded to 0.1 s so audio and motion lengths agree exactly)."""
    n_frames = 3 * max(1, int(round(seconds * 10)))
    n_samples = n_frames * SR // FPS
    rng = np.random.default_rng([seed, style.speaker_id, index])
    script = _script(style, n_samples, vocabulary, rng)
    voiced, noise = _envelopes(script, n_samples)
    audio = _render_audio(script, style, voiced, noise, rng)
    motion = _render_motion(script, style, voiced, n_frames, rng)
    stressed = script.column(5) == 1
    return SyntheticClip(
        clip_id=f"{style.speaker_id}_{style.name}_0_{index + 1}_{index + 1}", style=style,
        poses=motion["poses"], trans=motion["trans"], betas=_betas(style), expressions=motion["expressions"],
        audio=audio, words=[(w, s / SR, e / SR) for w, s, e, _ in script.words],
        beats=script.column(1)[stressed] / SR if script.syllables else np.zeros(0),
    )


# ------------------------------------------------------------------------------------------------ writers

def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but byte-identical across runs (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue())


def _write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SR)
        handle.writeframes(audio.astype("<i2").tobytes())


def _time(value: float) -> str:
    return np.format_float_positional(value, trim="0") if value else "0"


def _write_textgrid(path: Path, words: Sequence[tuple[str, float, float]], duration: float) -> None:
    """Praat long-format TextGrid with one interval tier "words"; pauses are empty intervals."""
    intervals, cursor = [], 0.0
    for word, start, end in words:
        if start > cursor:
            intervals.append(("", cursor, start))
        intervals.append((word, start, end))
        cursor = end
    if duration > cursor:
        intervals.append(("", cursor, duration))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ",
             f"xmax = {_time(duration)} ", "tiers? <exists> ", "size = 1 ", "item []: ", "    item [1]:",
             '        class = "IntervalTier" ', '        name = "words" ', "        xmin = 0 ",
             f"        xmax = {_time(duration)} ", f"        intervals: size = {len(intervals)} "]
    for k, (text, start, end) in enumerate(intervals, start=1):
        lines += [f"        intervals [{k}]:", f"            xmin = {_time(start)} ",
                  f"            xmax = {_time(end)} ", f'            text = "{text}" ']
    path.write_text("\n".join(lines) + "\n")


def _split(index: int, count: int) -> str:
    """Per speaker the last clips are val, test and additional (as many as `count` allows), the rest train."""
    tail = {1: [], 2: ["test"], 3: ["val", "test"]}.get(count, ["val", "test", "additional"])
    position = index - (count - len(tail))
    return tail[position] if position >= 0 else "train"


def write_clip(root: Path, clip: SyntheticClip) -> None:
    """A clip's BEAT2 files under `root`: smplxflame_30/<id>.npz, wave16k/<id>.wav, textgrid/<id>.TextGrid."""
    for sub in ("smplxflame_30", "wave16k", "textgrid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _write_npz(root / "smplxflame_30" / f"{clip.clip_id}.npz", {
        "betas": clip.betas, "poses": clip.poses, "expressions": clip.expressions, "trans": clip.trans,
        "model": np.array("smplx2020"), "gender": np.array("neutral"),
        "mocap_frame_rate": np.array(FPS, dtype=np.int32),
    })
    _write_wav(root / "wave16k" / f"{clip.clip_id}.wav", clip.audio)
    _write_textgrid(root / "textgrid" / f"{clip.clip_id}.TextGrid", clip.words, clip.seconds)


def _replace_dir(tmp: Path, root: Path) -> None:
    """Move the finished `tmp` onto `root`; an old `root` is swapped out first and removed after."""
    if not root.exists():
        tmp.rename(root)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
    root.rename(old / root.name)
    tmp.rename(root)
    shutil.rmtree(old)


def synthesize_corpus(
    root: Path, *, speakers: int = 4, clips_per_speaker: int = 8, clip_seconds: float = 20.0, seed: int = 0,
    vocabulary_size: int = len(VOCABULARY), progress: bool = False,
) -> dict[str, float]:
    """Write the corpus under `root` atomically (temp sibling, then rename); flat summary."""
    if not 5 <= vocabulary_size <= len(VOCABULARY):
        raise ValueError(f"vocabulary_size must be in 5..{len(VOCABULARY)}, got {vocabulary_size}")
    if clips_per_speaker < 1 or clip_seconds < 2.0:
        raise ValueError(f"need clips_per_speaker >= 1 and clip_seconds >= 2, got {clips_per_speaker}, "
                         f"{clip_seconds}")
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    vocabulary = VOCABULARY[:vocabulary_size]
    jobs = [(style, k) for style in speaker_styles(speakers) for k in range(clips_per_speaker)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="synthesize", unit="clip")
    summary = dict.fromkeys(("clips", "seconds", "words", "iconic_words"), 0.0)
    summary.update(dict.fromkeys(("clips_train", "clips_val", "clips_test", "clips_additional"), 0.0))
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        tmp.chmod(0o755)
        rows = []
        for style, k in jobs:
            clip = synthesize_clip(style, seconds=clip_seconds, seed=seed, index=k, vocabulary=vocabulary)
            write_clip(tmp, clip)
            rows.append((clip.clip_id, _split(k, clips_per_speaker)))
            summary["clips"] += 1
            summary[f"clips_{rows[-1][1]}"] += 1
            summary["seconds"] += clip.seconds
            summary["words"] += len(clip.words)
            summary["iconic_words"] += sum(w in ICONIC_WORDS for w, _, _ in clip.words)
        with (tmp / "train_test_split.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["id", "type"])
            writer.writerows(rows)
        _replace_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.update(minutes=summary["seconds"] / 60, speakers=float(speakers))
    summary["vocabulary_size"] = float(vocabulary_size)
    return summary
