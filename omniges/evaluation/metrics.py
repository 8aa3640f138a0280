"""Gesture, face, text and speech metrics with EMAGE's definitions (CVPR 2024 `emage_trainer.test()`, `metric.py`).

Pure functions on numpy arrays. Where EMAGE has a quirk (an index mix-up, an odd normaliser), it is reproduced on
purpose so numbers on BEAT2 stay comparable with the paper, and the docstring names it. Per-clip values are pooled
over a test set the way EMAGE pools them: see `weighted_mean` and each docstring.

Differences from the later `emage_evaltools` package (PantoMatrix 2025) are noted where they matter: it uses a BC
motion threshold of 0.1 instead of 0.3, trims the audio end at the motion end, counts joints without motion beats as 0,
adds eps to both covariances before sqrtm, and computes LVD from pred[1:] - pred[:-1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import librosa
import numpy as np
from einops import rearrange
from scipy import linalg
from scipy.fft import dct
from scipy.signal import argrelextrema

from omniges.constants import SAMPLE_RATE

UPPER_BODY_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
BC_SIGMA = 0.3
BC_ORDER = 7
BC_THRESHOLD = 0.3
BC_TRIM_FRAMES = 60  # EMAGE `align_mask`: 2 s at 30 fps ignored at each end
BC_AUDIO_SR = SAMPLE_RATE
BC_HOP = 512
FGD_FAILED = 1e10


def weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    """Pool per-clip values like EMAGE: sum(v * w) / sum(w) (BC uses w = frames - 120, face MSE/LVD w = frames)."""
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    return float((values * weights).sum() / weights.sum())


# ---------------------------------------------------------------- FGD


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """pytorch-fid Frechet distance as EMAGE's `FIDCalculator.calculate_frechet_distance`: eps is added to the
    diagonals only if sqrtm is not finite; a significant imaginary part raises ValueError."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fgd(real_latents: np.ndarray, gen_latents: np.ndarray) -> float:
    """FGD between (N, 240) latent sets, as EMAGE's `FIDCalculator.frechet_distance`: np.cov (N-1), scipy sqrtm;
    quirk: a ValueError (complex sqrtm) returns 1e10 instead of raising."""
    real, gen = np.asarray(real_latents, np.float64), np.asarray(gen_latents, np.float64)
    try:
        return frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), real.mean(0), np.cov(real, rowvar=False))
    except ValueError:
        return FGD_FAILED


def fgd_eig(real_latents: np.ndarray, gen_latents: np.ndarray) -> float:
    """FGD with tr sqrt(S1 S2) from the eigenvalues of S1 S2 (real, >= 0 for covariances): the same distance as
    `fgd` without scipy's sqrtm, which takes seconds on the rank-deficient covariances of a few clips (bootstrap)."""
    real, gen = np.asarray(real_latents, np.float64), np.asarray(gen_latents, np.float64)
    a, b = (gen - gen.mean(0)) / math.sqrt(len(gen) - 1), (real - real.mean(0)) / math.sqrt(len(real) - 1)
    diff = gen.mean(0) - real.mean(0)
    if len(a) <= a.shape[1]:  # S1 S2 = A'A B'B has the nonzero eigenvalues of the small symmetric (AB')(AB')'
        products = a @ b.T
        eigen = np.linalg.eigvalsh(products @ products.T)
    else:  # S1 S2 has the eigenvalues of the symmetric L' S2 L, S1 = L L' (Cholesky, a negligible jitter)
        s1 = a.T @ a
        jitter = 1e-12 * max(float(np.trace(s1)), 1e-300) / len(s1)
        lower = np.linalg.cholesky(s1 + jitter * np.eye(len(s1)))
        eigen = np.linalg.eigvalsh(lower.T @ (b.T @ b) @ lower)
    root = np.sqrt(np.clip(eigen, 0, None)).sum()
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * root)


# ---------------------------------------------------------------- BC (beat consistency)


def joint_speed(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 3) -> (T, J) speed: forward diff at the first frame, central inside, backward at the last (EMAGE)."""
    joints = np.asarray(joints, dtype=np.float64)
    dt = 1.0 / fps
    vel = np.concatenate([(joints[1:2] - joints[:1]) / dt, (joints[2:] - joints[:-2]) / (2 * dt),
                          (joints[-1:] - joints[-2:-1]) / dt])
    return np.linalg.norm(vel, axis=-1)


def motion_beats(speed: np.ndarray, start: int, end: int, *, order: int = BC_ORDER,
                 threshold: float = BC_THRESHOLD) -> np.ndarray:
    """Frame indices (relative to `start`) of strict local speed minima in speed[start:end] whose speed passes
    `threshold`; quirk kept from EMAGE `load_pose`: the threshold is tested at the RELATIVE index, i.e. speed[j],
    not speed[start + j]."""
    minima = argrelextrema(speed[start:end], np.less, order=order)[0]
    return minima[speed[minima] > threshold]


def audio_onsets(audio: np.ndarray, sr: int, n_frames: int, fps: float, *, trim_frames: int = BC_TRIM_FRAMES,
                 audio_sr: int = BC_AUDIO_SR) -> np.ndarray:
    """Onset times (s, from the start of the kept span) of the clip's speech, as EMAGE's test(): resample to 16 kHz,
    cut at the motion length, drop 2 s at the start and, quirk, at len(FULL audio) - 2 s, so the end trim is
    measured from the end of the audio, not of the motion; librosa onset_detect with hop 512."""
    audio = np.asarray(audio, dtype=np.float32)
    if sr != audio_sr:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=audio_sr)
    offset = int(trim_frames * (audio_sr / fps))
    cut = audio[: int(audio_sr / fps * n_frames)]
    kept = cut[offset: len(audio) - offset]
    return librosa.onset.onset_detect(y=kept, sr=audio_sr, hop_length=BC_HOP, units="time")


def gahr(motion_times: np.ndarray, onset_times: np.ndarray, sigma: float = BC_SIGMA) -> float:
    """EMAGE's GAHR: mean over audio onsets of exp(-d^2 / (2 sigma^2)), d = distance to the nearest motion beat
    (0 when there is no motion beat)."""
    if len(onset_times) == 0:
        raise ValueError("no audio onsets: BC is undefined (EMAGE divides by zero here)")
    if len(motion_times) == 0:
        return 0.0
    nearest = np.abs(np.asarray(onset_times)[:, None] - np.asarray(motion_times)[None, :]).min(axis=1)
    return float(np.exp(-(nearest**2) / (2 * sigma**2)).mean())


def beat_consistency(audio: np.ndarray, sr: int, joints: np.ndarray, fps: float = 30, *, mean_vel: np.ndarray,
                     sigma: float = BC_SIGMA, order: int = BC_ORDER, threshold: float = BC_THRESHOLD,
                     trim_frames: int = BC_TRIM_FRAMES, upper_body: Sequence[int] = UPPER_BODY_JOINTS) -> float:
    """EMAGE BC of one clip: `audio` is the clip's FULL wave, `joints` (T, 55, 3) SMPL-X joints posed without
    translation; speed is normalised per joint by `mean_vel` (mean_vel_smplxflame_30.npy); the mean GAHR over the 13
    upper-body joints. Pool clips with `weighted_mean(values, frames - 2 * trim_frames)`."""
    joints = np.asarray(joints)
    n = joints.shape[0]
    onsets = audio_onsets(audio, sr, n, fps, trim_frames=trim_frames)
    speed = joint_speed(joints, fps) / np.asarray(mean_vel)[: joints.shape[1]]
    scores = [gahr(motion_beats(speed[:, j], trim_frames, n - trim_frames, order=order, threshold=threshold) / fps,
                   onsets, sigma) for j in upper_body]
    return float(np.mean(scores))


# ---------------------------------------------------------------- diversity, face, dynamics


def l1_diversity(joints: np.ndarray | Sequence[np.ndarray]) -> float:
    """EMAGE L1div: per clip, sum over frames and all 165 coordinates of |x - clip mean over time|; the total over
    clips divided by the total number of frames (a sum over coordinates, not a mean). Joints without translation."""
    clips = [joints] if isinstance(joints, np.ndarray) else list(joints)
    total, frames = 0.0, 0
    for clip in clips:
        flat = rearrange(np.asarray(clip, dtype=np.float64), "t ... -> t (...)")
        total += np.abs(flat - flat.mean(0)).sum()
        frames += flat.shape[0]
    return total / frames


def face_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """EMAGE face MSE (nn.MSELoss, mean over all elements) of one clip. Paper-comparable only on SMPL-X vertices of the
    face-only posed mesh (expression + jaw, body at rest, all 10475 vertices); on expressions it is a proxy.
    Pool clips with `weighted_mean(values, frames)`."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    return float(np.mean((pred - target) ** 2))


def lvd(pred: np.ndarray, target: np.ndarray) -> float:
    """EMAGE LVD (face vertex velocity difference) of one clip: L1 mean; quirk kept: the predicted velocity is
    pred[1:] - target[:-1] (EMAGE's test()), not pred[1:] - pred[:-1]. Pool with `weighted_mean(values, frames)`."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    return float(np.mean(np.abs((pred[1:] - target[:-1]) - (target[1:] - target[:-1]))))


def face_metrics(pred: np.ndarray, target: np.ndarray, *, space: str) -> dict[str, float]:
    """Face MSE and LVD labelled by the space they were computed in ('vertices' is EMAGE's; 'expressions' a proxy)."""
    if space not in ("vertices", "expressions"):
        raise ValueError(f"space must be 'vertices' or 'expressions', got {space!r}")
    return {f"face_mse_{space}": face_mse(pred, target), f"lvd_{space}": lvd(pred, target)}


def velocity_consistency(pred: np.ndarray, target: np.ndarray, fps: float = 30) -> dict[str, float]:
    """Joint velocity and acceleration agreement (EMAGE trains with these as L1 losses): mean L1 of the per-frame
    velocity / acceleration vectors (units/s, units/s^2) and the ratio of mean speeds pred/target."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    vel_p, vel_t = np.diff(pred, axis=0) * fps, np.diff(target, axis=0) * fps
    acc_p, acc_t = np.diff(vel_p, axis=0) * fps, np.diff(vel_t, axis=0) * fps
    speed_t = np.linalg.norm(vel_t, axis=-1).mean()
    return {"vel_l1": float(np.abs(vel_p - vel_t).mean()), "acc_l1": float(np.abs(acc_p - acc_t).mean()),
            "speed_ratio": float(np.linalg.norm(vel_p, axis=-1).mean() / max(speed_t, 1e-12))}


# ---------------------------------------------------------------- text


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, 4-grams, exp smoothing), 0..100, one reference per hyp."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)


def rouge_l_scores(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """ROUGE-L F1 of each hypothesis against its reference (rouge-score, with Porter stemming), 0..1 each."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hyps, refs, strict=True)]


def rouge_l(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (rouge-score, with Porter stemming), 0..1."""
    scores = rouge_l_scores(hyps, refs)
    return float(np.mean(scores)) if scores else 0.0


def word_f1(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Order-free word F1 pooled over the corpus: clipped bag-of-words matches per hypothesis (a word counts as often
    as both its transcript and the reference hold it), precision over all hypothesis words, recall over all
    reference words; 0 when either side is empty."""
    from collections import Counter

    matched = hyp_total = ref_total = 0
    for hyp, ref in zip(hyps, refs, strict=True):
        h, r = Counter(hyp.split()), Counter(ref.split())
        matched += sum((h & r).values())
        hyp_total += sum(h.values())
        ref_total += sum(r.values())
    if not matched:
        return 0.0
    precision, recall = matched / hyp_total, matched / ref_total
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------- speech


def log_mel(wave: np.ndarray, sr: int, *, n_mels: int = 80, n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """(T, n_mels) natural log of the mel power spectrogram, floored at 1e-10."""
    mel = librosa.feature.melspectrogram(y=np.asarray(wave, np.float32), sr=sr, n_fft=n_fft, hop_length=hop_length,
                                         n_mels=n_mels)
    return np.log(np.maximum(mel, 1e-10)).T


def mel_cepstrum(log_mel_power: np.ndarray, n_ceps: int = 25) -> np.ndarray:
    """(T, n_mels) natural-log mel POWER -> (T, n_ceps) cepstra of the log AMPLITUDE (orthonormal DCT-II, x 0.5),
    the scale the 10/ln10 * sqrt(2 sum) MCD formula assumes. Mel-cepstra by DCT, not SPTK mcep: an approximation."""
    return 0.5 * dct(np.asarray(log_mel_power, np.float64), type=2, norm="ortho", axis=-1)[:, :n_ceps]


def mcd_dtw(mcep_ref: np.ndarray, mcep_gen: np.ndarray) -> float:
    """Mel-cepstral distortion (dB) after DTW: c0 excluded, per aligned frame 10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2),
    averaged over the warping path; DTW cost is the same per-frame distortion."""
    ref, gen = np.asarray(mcep_ref, np.float64)[:, 1:], np.asarray(mcep_gen, np.float64)[:, 1:]
    cost = (10 / math.log(10)) * np.sqrt(2 * ((ref[:, None, :] - gen[None, :, :]) ** 2).sum(-1))
    _, path = librosa.sequence.dtw(C=cost)
    return float(cost[path[:, 0], path[:, 1]].mean())


def mcd_dtw_waves(wave_ref: np.ndarray, wave_gen: np.ndarray, sr: int, *, n_ceps: int = 25) -> float:
    """MCD-DTW between two waveforms via `log_mel` -> `mel_cepstrum`."""
    return mcd_dtw(mel_cepstrum(log_mel(wave_ref, sr), n_ceps), mel_cepstrum(log_mel(wave_gen, sr), n_ceps))


def log_mel_distance(log_mel_ref: np.ndarray, log_mel_gen: np.ndarray) -> float:
    """Mean absolute difference of two (T, n_mels) log-mel spectrograms over their common first min(T) frames."""
    n = min(len(log_mel_ref), len(log_mel_gen))
    return float(np.mean(np.abs(np.asarray(log_mel_ref[:n], np.float64) - np.asarray(log_mel_gen[:n], np.float64))))


# ---------------------------------------------------------------- confidence intervals


def bootstrap_ci(score: Callable[[np.ndarray], dict[str, float]], n: int, *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, set_metrics: tuple[str, ...] = ("fgd",)) -> dict[str, list[float]]:
    """Percentile bootstrap intervals: `score(index)` on `resamples` draws of n of the n units with replacement
    (fixed seed); {metric: [lo, hi]} for the metrics every draw defines.

    `set_metrics` are distances between two sets (FGD): a resample repeats units, which moves their estimate the
    same way every time (up, for FGD), so their draws are first re-centred by the bootstrap's estimate of that bias
    (the draws' mean minus the full-sample value); the interval then brackets the point estimate."""
    rng = np.random.default_rng(seed)
    draws = [score(rng.integers(0, n, n)) for _ in range(resamples)]
    keys = set.intersection(*(set(d) for d in draws)) if draws else set()
    full = score(np.arange(n)) if keys & set(set_metrics) else {}
    tail = 50 * (1 - level)
    out = {}
    for key in sorted(keys):
        values = np.array([d[key] for d in draws], dtype=np.float64)
        if key in set_metrics and key in full:
            values = values - (values.mean() - full[key])
        out[key] = [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
    return out
