"""The gesture programme: SMPL-X poses, translation and expressions driven by a clip's script and voice.

Beat strokes of the arms put their apex (a speed minimum) on each stressed vowel onset with an amplitude that
follows loudness; iconic words blend into their gesture; head nods on stress, jaw and mouth expressions follow
the voice envelope and vowel, with blinks, weight shifts and drift. Amplitudes are tuned so per-joint mean
speeds (omniges.data.kinematics) match BEAT2's `mean_vel_smplxflame_30.npy`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from omniges.constants import FPS
from omniges.data.body import EXPRESSION_DIM, POSE_DIM
from omniges.data.synthetic.iconic import ICONIC_GESTURES, ICONIC_WORDS, hand_items, pose_vector, side_items
from omniges.data.synthetic.pose_space import (
    EXPRESSION_MEAN,
    EXPRESSION_STD,
    PER_RADIAN,
    col,
    soft_clip,
    to_radians,
)
from omniges.data.synthetic.script import SR, VOWEL_OPENNESS, VOWELS, Script, smooth_noise
from omniges.data.synthetic.speakers import SpeakerStyle

MOUTH_EXPRESSIONS = tuple(range(10))  # expression dims driven by the voice envelope and vowel
BLINK_EXPRESSION = 12  # expression dim that spikes on blinks
BEAT_GAIN = 1.4
_LEG_M = 0.85
_PLANT = 0.7  # fraction of the pelvis sway the legs absorb


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
_MOUTH_LOADING[:, 0] = 1.5 * VOWEL_OPENNESS  # the first mouth dim opens with the jaw


def _speaker_posture(style: SpeakerStyle) -> np.ndarray:
    """Constant per-speaker offset from the rest posture (normalised units); jaw and eyes stay at rest."""
    posture = np.random.default_rng([style.speaker_id, 17]).normal(0.0, 0.12, POSE_DIM)
    posture[col(22, 0):col(25, 0)] = 0.0
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


def _gesture_space(script: Script, style: SpeakerStyle, t: np.ndarray, rng: np.random.Generator
                   ) -> np.ndarray:
    """Arms come up into gesture space while a phrase is spoken and rest in the pauses."""
    speaking = np.zeros(len(t))
    for start, end in script.phrases:
        speaking[(t >= start / SR - 0.2) & (t < end / SR + 0.3)] = rng.uniform(0.6, 1.2)
    speaking = gaussian_filter1d(speaking, 0.25 * FPS)
    other = "left" if style.dominant == "right" else "right"
    space = pose_vector(side_items(_SPACE, style.dominant))[0] + 0.75 * pose_vector(side_items(_SPACE, other))[0]
    return style.gesture_scale * speaking[:, None] * space


def _strokes(script: Script, style: SpeakerStyle, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Beat strokes (arms, open hand, head nod), apex on each stressed vowel onset, sized by loudness."""
    stressed = script.column(5) == 1
    if not stressed.any():
        return np.zeros((len(t), POSE_DIM))
    beats, loud = script.column(1)[stressed] / SR, script.column(6)[stressed]
    strength = BEAT_GAIN * style.gesture_scale * loud * rng.uniform(0.8, 1.2, len(beats))
    shapes = rng.integers(0, len(_BEATS), len(beats))
    both = rng.random(len(beats)) < style.both_hands
    other = "left" if style.dominant == "right" else "right"
    common = 0.3 * pose_vector(side_items(hand_items("open"), style.dominant))[0] + pose_vector(_NOD)[0]
    vectors = np.stack([
        pose_vector(side_items(_BEATS[s], style.dominant))[0]
        + (0.9 if b else 0.5) * pose_vector(side_items(_BEATS[s], other))[0]
        for s, b in zip(shapes, both, strict=True)
    ]) + common
    return _beat_kernel(t[:, None] - beats[None, :]) @ (strength[:, None] * vectors)


def _apply_iconic(f: np.ndarray, script: Script, style: SpeakerStyle, t: np.ndarray) -> None:
    """Blend toward each iconic word's pose: in over 0.5 s up to its stressed vowel, out 0.6 s after it."""
    other = "left" if style.dominant == "right" else "right"
    for word, _, end, apex in script.words:
        if word not in ICONIC_WORDS:
            continue
        gesture = ICONIC_GESTURES[ICONIC_WORDS[word]]
        ws, we = apex / SR, max(end / SR, apex / SR + 0.3)
        weight = np.minimum(_smoothstep((t - ws + 0.5) / 0.5), 1.0 - _smoothstep((t - we) / 0.6))
        sides = [style.dominant, other] if gesture.both_hands else [style.dominant]
        items = [item for s in sides for item in side_items(list(gesture.arm) + hand_items(gesture.hand), s)]
        target, mask = pose_vector(items + list(gesture.head))
        f += (weight[:, None] * mask) * (target - f)
        for joint, axis, value in gesture.shake:
            f[:, col(joint, axis)] += weight * value * np.sin(2 * np.pi * gesture.shake_hz * (t - ws))


def _translation(style: SpeakerStyle, side: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drift around a speaker spot (about BEAT2's pelvis speed), sideways with the weight shifts."""
    n_frames = len(side)
    spot = np.random.default_rng([style.speaker_id, 23]).uniform([-0.2, 1.27, -0.4], [0.2, 1.31, 0.1])
    drift = smooth_noise(rng, (n_frames, 3), 1.0 * FPS) * np.array([0.07, 0.004, 0.09])
    drift += smooth_noise(rng, (n_frames, 3), 0.3 * FPS) * np.array([0.012, 0.002, 0.012])
    return spot + drift + np.outer(side, [0.03, 0.0, 0.0]) - np.outer(np.abs(side), [0.0, 0.008, 0.0])


def _plant_feet(f: np.ndarray, trans: np.ndarray) -> None:
    """Lean the legs against the faster part of the pelvis sway, so the feet move less than the pelvis."""
    lean = (trans - gaussian_filter1d(trans, 3.0 * FPS, axis=0, mode="nearest")) / _LEG_M * _PLANT
    for hip, ankle in ((1, 7), (2, 8)):
        for axis, delta in ((0, lean[:, 2]), (2, -lean[:, 0])):
            f[:, col(hip, axis)] += delta * PER_RADIAN[col(hip, axis)]
            f[:, col(ankle, axis)] -= delta * PER_RADIAN[col(ankle, axis)]


def _expressions(style: SpeakerStyle, voiced: np.ndarray, t: np.ndarray, rng: np.random.Generator
                 ) -> np.ndarray:
    """Speaker face + slow variation + mouth dims following the vowels + blinks, (T, 100) float64."""
    n_frames = len(t)
    face = np.random.default_rng([style.speaker_id, 29]).standard_normal(EXPRESSION_DIM)
    expressions = EXPRESSION_MEAN + 0.3 * EXPRESSION_STD * face
    expressions = expressions + 0.35 * EXPRESSION_STD * smooth_noise(rng, (n_frames, EXPRESSION_DIM), FPS)
    mouth = list(MOUTH_EXPRESSIONS)
    per_vowel = _frame_means(voiced, n_frames).T
    expressions[:, mouth] += 1.5 * EXPRESSION_STD[mouth] * (per_vowel @ _MOUTH_LOADING)
    blinks = np.cumsum(rng.uniform(2.0, 5.0, size=int(t[-1] / 2) + 1))
    blink = np.exp(-0.5 * ((t[:, None] - blinks[None, :]) / 0.06) ** 2).sum(axis=1)
    expressions[:, BLINK_EXPRESSION] += 2.5 * EXPRESSION_STD[BLINK_EXPRESSION] * blink
    return gaussian_filter1d(expressions, 0.8, axis=0)


def render_motion(script: Script, style: SpeakerStyle, voiced: np.ndarray, n_frames: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Poses, translation and expressions driven by the script (beats, iconic words, phrases, voice)."""
    t = np.arange(n_frames) / FPS
    f = np.broadcast_to(_speaker_posture(style), (n_frames, POSE_DIM)).copy()
    amp = _amplitudes()
    f += smooth_noise(rng, f.shape, 1.2 * FPS) * amp + smooth_noise(rng, f.shape, 0.2 * FPS) * (0.35 * amp)
    side = _weight_side(t, rng)
    f += side[:, None] * pose_vector(_WEIGHT)[0]
    f += _gesture_space(script, style, t, rng)
    strokes = _strokes(script, style, t, rng)
    _apply_iconic(f, script, style, t)
    trans = _translation(style, side, rng)
    _plant_feet(f, trans)
    f += strokes  # beats ride on top of iconic holds too
    opening = _frame_means((VOWEL_OPENNESS[:, None] * voiced).sum(axis=0), n_frames)
    f[:, col(22, 0)] = -0.7 + 1.6 * np.clip(opening, 0.0, 1.0)  # jaw opens with the voice, by vowel
    f[:, col(22, 1):col(22, 2) + 1] = 0.0
    poses = to_radians(soft_clip(gaussian_filter1d(f, 1.0, axis=0))).astype(np.float32)
    return {"poses": poses, "trans": trans, "expressions": _expressions(style, voiced, t, rng)}
