"""Embedded mini-corpus in the exact BEAT2 layout: speech-like audio, word TextGrids and SMPL-X motion driven by it.

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

import numpy as np

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
    0.039 0.202 0.251 -0.040 -0.076 0.085 0.055 -0.228 -0.923 0.106 0.191 0.933 0.346 -0.313
    0.002 0.189 0.311 0.027 -0.109 -0.071 0.026 0.002 -0.015 -0.012 0.021 -0.002 0.000 -0.002
    0.039 -0.012 0.028 -0.050 0.007 0.009 0.273 -0.147 0.031 -0.190 -0.458 0.138 -0.078 -0.150
    -0.032 -0.060 -0.611 0.076 0.005 -0.218 -0.074 -0.095 -0.067 -0.171 -0.540 -0.314 -0.053
    0.103 -0.411 -0.392 0.167 0.031 0.101 -0.286 -0.389 -0.291 -0.104 -0.433 -0.164 -0.056
    -0.122 0.237 0.326 0.191 -0.339 0.102 -0.256 0.510 0.239 0.213 0.100 -0.348 0.487 0.015
    0.220 0.252 0.102 -0.018 0.001 -0.020 0.040 0.707 0.099 -0.022 0.034 -0.055 0.208 0.201
    -0.002 0.631 0.324 -0.382 -0.205 0.265 -0.286 -0.091 0.013 -0.002 0.213 0.590 -0.174 0.001
    0.234 -0.162 0.091 0.111 0.397 -0.335 -0.129 -0.239 -0.189 0.180 0.464 -0.122 -0.009
    """
)
