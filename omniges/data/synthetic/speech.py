"""Speech audio from a script: glottal pulses through vowel formants, consonant noise, silent pauses."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, iirpeak, lfilter, sosfilt

from omniges.data.synthetic.script import CONSONANTS, SR, VOWELS, Script, smooth_noise
from omniges.data.synthetic.speakers import SpeakerStyle

_FORMANTS = {  # (F1, F2, F3) Hz of an adult male voice
    "a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (300, 2250, 3000), "o": (570, 840, 2410),
    "u": (320, 900, 2240), "@": (500, 1500, 2500),
}
_FORMANT_GAIN_BW = ((1.0, 80.0), (0.5, 100.0), (0.25, 150.0))
_NOISE_BANDS = {"s": (3800.0, 7500.0, 0.22), "f": (1500.0, 6500.0, 0.12), "t": (2000.0, 6000.0, 0.35),
                "k": (1200.0, 3500.0, 0.3), "h": (500.0, 3000.0, 0.1)}


def _raised_cosine(length: int, attack: int, release: int) -> np.ndarray:
    shape = np.ones(length)
    attack, release = min(attack, length // 2), min(release, length // 2)
    if attack:
        shape[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release:
        shape[length - release:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(release) + 1) / release)
    return shape


def envelopes(script: Script, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-vowel voiced envelopes (6, n) and per-consonant-class envelopes (7, n) on the sample grid."""
    voiced, noise = np.zeros((len(VOWELS), n_samples)), np.zeros((len(CONSONANTS), n_samples))
    for start, onset, end, vowel, consonant, _, loud in script.syllables:
        length = max(end - onset - int(0.025 * SR), int(0.02 * SR))  # eSpeak vowels can be under 45 ms
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


def render_audio(script: Script, style: SpeakerStyle, voiced: np.ndarray, noise_env: np.ndarray,
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
    contour *= 1.0 + 0.015 * smooth_noise(rng, (len(t_ctrl), 1), 4.0)[:, 0]  # slow jitter
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
    return to_pcm16(0.7 * out / max(np.abs(out).max(), 1e-9), rng)


def to_pcm16(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Float wave -> int16 with the corpus's noise floor (both voices)."""
    out = wave + 0.0008 * rng.standard_normal(len(wave))
    return np.round(np.clip(out, -1.0, 1.0) * 32767).astype(np.int16)
