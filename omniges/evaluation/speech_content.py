"""G2A beyond rhythm: speech content read off log-mel frames, compared between real and generated speech.

Each measure is a contour over the reference's speech frames (its loudest frames, pauses left out) compared without
alignment, so a generated voice of another timbre or level can still score: what matters is whether it rises and
falls with the real one. Per clip, then averaged:
- `voicing_agreement`: voiced (low band louder than the high band, relative to the clip's median) vs unvoiced,
  frame by frame; chance 0.5.
- `tilt_corr`: correlation of that low-minus-high balance (vowel vs fricative).
- `openness_corr`: correlation of the spectral centroid in the first-formant band (200-1000 Hz): vowel openness.
- `syllable_rate_corr`: correlation of loudness peaks per 1 s window (syllable rate) across the clip's windows.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from omniges.constants import FPS, SAMPLE_RATE

SPEECH_QUANTILE = 0.5  # frames louder than the reference's median loudness count as speech
LOW_BAND_HZ, HIGH_BAND_HZ, FORMANT_BAND_HZ = (100.0, 1000.0), (2500.0, 8000.0), (200.0, 1000.0)


def _mel_centres(n_mels: int, sr: int) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sr / 2)[1:-1]


def _band(freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    return (freqs >= band[0]) & (freqs < band[1])


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / scale if len(a) > 2 and scale > 1e-9 else None


def contours(logmel: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Per-frame loudness, low-minus-high band balance and first-formant centroid (Hz) of a (T, n_mels) log-mel."""
    logmel = np.asarray(logmel, dtype=np.float64)
    freqs = _mel_centres(logmel.shape[1], sr)
    power = np.exp(logmel - logmel.max(axis=1, keepdims=True))
    formant = _band(freqs, FORMANT_BAND_HZ)
    return {
        "loudness": logmel.mean(1),
        "tilt": logmel[:, _band(freqs, LOW_BAND_HZ)].mean(1) - logmel[:, _band(freqs, HIGH_BAND_HZ)].mean(1),
        "openness": (power[:, formant] @ freqs[formant]) / np.maximum(power[:, formant].sum(1), 1e-12),
    }


def syllable_rate(loudness: np.ndarray, fps: float = FPS, window_s: float = 1.0) -> np.ndarray:
    """Loudness peaks (syllable nuclei: prominence over a quarter of the envelope's spread) per window."""
    envelope = np.convolve(loudness, np.ones(3) / 3, mode="same")
    peaks, _ = find_peaks(envelope, prominence=0.25 * envelope.std(), distance=max(1, int(0.1 * fps)))
    width = int(window_s * fps)
    edges = np.arange(0, len(loudness) - width + 1, width)
    return np.array([np.sum((peaks >= a) & (peaks < a + width)) for a in edges], dtype=np.float64)


def content_metrics(ref_logmel: np.ndarray, gen_logmel: np.ndarray, *, sr: int = SAMPLE_RATE, fps: float = FPS
                    ) -> dict[str, float]:
    """One clip's content agreement (module docstring); a measure undefined on the clip (flat contour) is left out."""
    n = min(len(ref_logmel), len(gen_logmel))
    ref, gen = contours(ref_logmel[:n], sr), contours(gen_logmel[:n], sr)
    speech = ref["loudness"] > np.quantile(ref["loudness"], SPEECH_QUANTILE)
    out: dict[str, float] = {}
    if speech.sum() > 2:
        voiced_ref = ref["tilt"][speech] > np.median(ref["tilt"][speech])
        voiced_gen = gen["tilt"][speech] > np.median(gen["tilt"][speech])
        out["voicing_agreement"] = float(np.mean(voiced_ref == voiced_gen))
        for key, name in (("tilt", "tilt_corr"), ("openness", "openness_corr")):
            value = _corr(ref[key][speech], gen[key][speech])
            if value is not None:
                out[name] = value
    rate = _corr(syllable_rate(ref["loudness"], fps), syllable_rate(gen["loudness"], fps))
    if rate is not None:
        out["syllable_rate_corr"] = rate
    return out
