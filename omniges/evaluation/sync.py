"""Lag-resolved speech-motion coupling with a shifted-audio control (Omniges' own measure; EMAGE has none).

BC scores motion beats against audio onsets but barely tells the true pairing from audio shifted by seconds. Here,
two channels are cross-correlated with a speech envelope at 30 fps over lags -1..+1 s:

- jaw: jaw opening angle (|axis-angle| of joint 22) vs log RMS energy: talking opens the jaw;
- body: mean angular speed of the 13 upper-body joints (local rotations) vs onset strength (spectral flux).

Both need only axis-angle poses, no skeleton. The correlation is circular (one FFT), so the same curve also gives
every shifted pairing: the score of a channel is the peak within +-`peak_window_s` of lag 0, and the control
(null) is the same peak around each circular shift of at least `min_control_shift_s`. A channel's `z` is
(peak - null mean) / null std; `sync_z` averages the channel z's. True pairings score high z, shifted ones ~0.
"""

from __future__ import annotations

import librosa
import numpy as np
from einops import rearrange
from scipy.ndimage import maximum_filter1d

from omniges.data.body import axis_angle_to_matrix

UPPER_BODY_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
JAW_SLICE = slice(66, 69)
ENVELOPE_HOP_S = 0.01
RMS_WINDOW_S = 0.05


def speech_envelopes(audio: np.ndarray, sr: int, n_frames: int, fps: float) -> dict[str, np.ndarray]:
    """Log RMS energy and onset strength of the speech, computed at 100 Hz and sampled at the motion frame times."""
    audio = np.asarray(audio, dtype=np.float32)
    hop = max(1, round(sr * ENVELOPE_HOP_S))
    rms = librosa.feature.rms(y=audio, frame_length=round(sr * RMS_WINDOW_S), hop_length=hop)[0]
    onset = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=hop)
    motion_times = np.arange(n_frames) / fps

    def at_motion(env: np.ndarray) -> np.ndarray:
        return np.interp(motion_times, np.arange(len(env)) * hop / sr, env)

    return {"energy": at_motion(np.log(rms + 1e-4)), "onset": at_motion(onset)}


def jaw_opening(poses: np.ndarray) -> np.ndarray:
    """(T, 165) axis-angle -> (T,) jaw rotation angle in radians."""
    return np.linalg.norm(np.asarray(poses)[:, JAW_SLICE], axis=-1)


def upper_body_speed(poses: np.ndarray, fps: float) -> np.ndarray:
    """(T, 165) axis-angle -> (T,) mean angular speed (rad/s) of the upper-body joints' local rotations."""
    rot = axis_angle_to_matrix(rearrange(np.asarray(poses), "t (j c) -> t j c", c=3)[:, list(UPPER_BODY_JOINTS)])
    rel = np.einsum("tjab,tjcb->tjac", rot[1:], rot[:-1])
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1) / 2
    speed = np.arccos(np.clip(cos, -1.0, 1.0)).mean(-1) * fps
    return np.concatenate([speed[:1], speed])


def circular_ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """c[k] = mean_t za[t] * zb[(t + k) mod T] for all k (z-scored signals): b lagging a by k frames."""
    za = (a - a.mean()) / max(a.std(), 1e-12)
    zb = (b - b.mean()) / max(b.std(), 1e-12)
    return np.fft.irfft(np.conj(np.fft.rfft(za)) * np.fft.rfft(zb), n=len(a)) / len(a)


def coupling(speech: np.ndarray, motion: np.ndarray, fps: float, *, max_lag_s: float = 1.0,
             peak_window_s: float = 0.2, min_control_shift_s: float = 3.0) -> dict:
    """One channel: lag curve over +-max_lag_s, peak near lag 0 and its z against circularly shifted controls."""
    n = len(speech)
    corr = circular_ncc(speech, motion)
    max_lag, window = round(max_lag_s * fps), round(peak_window_s * fps)
    lags = np.arange(-max_lag, max_lag + 1)
    peaks = maximum_filter1d(corr, size=2 * window + 1, mode="wrap")  # peaks[s]: best lag within window of shift s
    min_shift = round(min_control_shift_s * fps)
    if n - 2 * min_shift < 1:
        raise ValueError(f"clip of {n / fps:.1f} s too short for controls shifted by >= {min_control_shift_s} s")
    null, peak = peaks[min_shift: n - min_shift + 1], peaks[0]
    near = corr[np.arange(-window, window + 1) % n]
    return {"lags_s": lags / fps, "ncc": corr[lags % n], "peak": float(peak),
            "peak_lag_s": float((np.argmax(near) - window) / fps), "null_mean": float(null.mean()),
            "null_std": float(null.std()), "z": float((peak - null.mean()) / max(null.std(), 1e-12))}


def speech_motion_sync(audio: np.ndarray, sr: int, poses: np.ndarray, fps: float = 30, **kwargs) -> dict:
    """Sync of one clip: `audio` is cut (or zero-padded) to the motion length; returns per-channel results + sync_z."""
    poses = np.asarray(poses)
    n = poses.shape[0]
    n_samples = round(n / fps * sr)
    audio = np.asarray(audio, dtype=np.float32)[:n_samples]
    audio = np.pad(audio, (0, n_samples - len(audio)))
    env = speech_envelopes(audio, sr, n, fps)
    channels = {"jaw": coupling(env["energy"], jaw_opening(poses), fps, **kwargs),
                "body": coupling(env["onset"], upper_body_speed(poses, fps), fps, **kwargs)}
    return {**channels, "sync_z": float(np.mean([c["z"] for c in channels.values()]))}


def sync_summary(result: dict) -> dict[str, float]:
    """Flat scalars of `speech_motion_sync` for a metrics JSON."""
    flat = {"sync_z": result["sync_z"]}
    for name in ("jaw", "body"):
        flat |= {f"sync_{name}_{k}": result[name][k] for k in ("peak", "peak_lag_s", "null_mean", "z")}
    return flat
