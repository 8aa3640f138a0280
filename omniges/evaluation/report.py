"""Metric tables with reference rows: every generated result next to ground truth and baselines on the same clips.

Rows: `generated` (and `generated_seeded`, started from the real motion's first frames), `ground_truth` (where a
metric is defined on GT alone: BC, L1div, sync), `random_clip` (gesture: a train clip's motion cut or tiled to
length; text / audio: another evaluated clip's) and `mean_pose` / `mean_audio`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omniges.data.kinematics import forward_kinematics
from omniges.evaluation import metrics
from omniges.evaluation.evaluator import VAESKConv, latents, poses_to_rot6d
from omniges.evaluation.sync import speech_motion_sync

BC_MIN_FRAMES = 150  # BC trims 2 s at each end: shorter clips have no beats to score


@dataclass
class Motion:
    """One clip's SMPL-X motion (and its speech, for audio-aligned metrics)."""

    poses: np.ndarray
    expressions: np.ndarray
    trans: np.ndarray | None = None
    audio: np.ndarray | None = None
    sr: int = 16000
    words: list[tuple[str, float, float]] = field(default_factory=list)  # timed transcript

    def cut(self, frames: int) -> Motion:
        """The first `frames` frames, tiling the clip when it is shorter."""
        reps = -(-frames // len(self.poses))
        tile = lambda x: np.concatenate([x] * reps)[:frames]  # noqa: E731
        return Motion(tile(self.poses), tile(self.expressions), None, self.audio, self.sr, self.words)


def fk_no_translation(poses: np.ndarray) -> np.ndarray:
    """Joint positions for BC/L1div, posed without translation as EMAGE does."""
    return forward_kinematics(np.asarray(poses), None)


@dataclass
class GestureStats:
    """Per-clip ingredients of the gesture metrics: any subset of the clips (a bootstrap resample) is scored from
    them without running the evaluator or forward kinematics again."""

    real_latents: list[np.ndarray]
    gen_latents: list[np.ndarray]
    frames: np.ndarray
    l1_total: np.ndarray  # per clip: L1div's sum of |x - mean| over frames and coordinates
    bc: np.ndarray  # per clip; NaN where the clip is too short for BC
    sync_z: np.ndarray
    per_frame: dict[str, np.ndarray]  # face and velocity metrics, pooled weighted by frames

    def __len__(self) -> int:
        return len(self.frames)

    def score(self, index: np.ndarray | None = None) -> dict[str, float]:
        """The metrics of the clips `index` (with repeats, for a resample, FGD by `fgd_eig`; default all)."""
        distance = metrics.fgd if index is None else metrics.fgd_eig
        index = np.arange(len(self)) if index is None else np.asarray(index)
        frames = self.frames[index]
        out = {"fgd": distance(np.concatenate([self.real_latents[i] for i in index]),
                                  np.concatenate([self.gen_latents[i] for i in index])),
               "l1div": float(self.l1_total[index].sum() / frames.sum())}
        scored = index[~np.isnan(self.bc[index])]
        if len(scored):
            out["bc"] = metrics.weighted_mean(self.bc[scored], self.frames[scored] - 120)
            out["sync_z"] = float(self.sync_z[scored].mean())
        out.update({key: metrics.weighted_mean(values[index], frames) for key, values in self.per_frame.items()})
        return out


def gesture_stats(
    reference: list[Motion], candidate: list[Motion], *, evaluator: VAESKConv, mean_vel: np.ndarray, fps: int = 30,
) -> GestureStats:
    """Per-clip FGD latents, L1div sums, BC, sync_z, face and velocity metrics of `candidate` vs `reference`."""
    joints = [fk_no_translation(m.poses) for m in candidate]
    ref_joints = [fk_no_translation(m.poses) for m in reference]
    bc, sync = np.full(len(candidate), np.nan), np.full(len(candidate), np.nan)
    for i, (m, j, ref) in enumerate(zip(candidate, joints, reference, strict=True)):
        if ref.audio is not None and len(m.poses) >= BC_MIN_FRAMES:
            bc[i] = metrics.beat_consistency(ref.audio, ref.sr, j, fps, mean_vel=mean_vel)
            sync[i] = speech_motion_sync(ref.audio, ref.sr, m.poses, fps)["sync_z"]
    clip_metrics = [{**metrics.face_metrics(m.expressions, r.expressions[: len(m.expressions)], space="expressions"),
                     **metrics.velocity_consistency(j, rj[: len(j)], fps)}
                    for m, r, j, rj in zip(candidate, reference, joints, ref_joints, strict=True)]
    return GestureStats(
        real_latents=[latents(evaluator, poses_to_rot6d(m.poses)) for m in reference],
        gen_latents=[latents(evaluator, poses_to_rot6d(m.poses)) for m in candidate],
        frames=np.array([len(m.poses) for m in candidate]),
        l1_total=np.array([metrics.l1_diversity(j) * len(j) for j in joints]), bc=bc, sync_z=sync,
        per_frame={key: np.array([c[key] for c in clip_metrics]) for key in clip_metrics[0]},
    )


def gesture_metrics(
    reference: list[Motion], candidate: list[Motion], *, evaluator: VAESKConv, mean_vel: np.ndarray, fps: int = 30,
) -> dict[str, float]:
    """FGD, BC, L1div, sync_z, face MSE/LVD (expression space), velocity consistency of `candidate` vs `reference`."""
    return gesture_stats(reference, candidate, evaluator=evaluator, mean_vel=mean_vel, fps=fps).score()


def random_clip_baseline(reference: list[Motion], pool: list[Motion], seed: int = 0) -> list[Motion]:
    """Each clip's motion replaced by a clip drawn from `pool` (train clips: not the reference by construction),
    cut or tiled to length."""
    picks = np.random.default_rng(seed).integers(0, len(pool), len(reference))
    return [pool[int(j)].cut(len(m.poses)) for m, j in zip(reference, picks, strict=True)]


def mean_pose_baseline(reference: list[Motion], mean_poses: np.ndarray, mean_expressions: np.ndarray) -> list[Motion]:
    """The train-set mean pose held still for each clip's length."""
    return [Motion(np.repeat(mean_poses[None], len(m.poses), 0), np.repeat(mean_expressions[None], len(m.poses), 0))
            for m in reference]


def text_metrics(hyps: list[str], refs: list[str]) -> dict[str, float]:
    return {"bleu": metrics.bleu(hyps, refs), "rouge_l": metrics.rouge_l(hyps, refs)}


def word_accuracy(log_probs: np.ndarray, words: list[tuple[str, float, float]], vocab: Any, *,
                  fps: int = 30, frames_per_token: int = 4) -> float | None:
    """G2T with the true word timing: each in-vocabulary word is read as the non-special word with the highest
    summed log-probability over the gesture tokens spoken during it (token k is scored at frame 4k + 1).
    Fraction correct, or None when no word could be scored."""
    special = list(range(len(vocab.SPECIALS)))
    correct, total = 0, 0
    for word, start, end in words:
        target = vocab.index.get(vocab.normalize(word))
        first = max(0, math.ceil((start * fps - 1) / frames_per_token))
        last = min(len(log_probs), math.ceil((end * fps - 1) / frames_per_token))
        if last <= first:  # a word shorter than a token: the token holding its midpoint
            first = min(len(log_probs) - 1, int((start + end) / 2 * fps) // frames_per_token)
            last = first + 1
        if target is None or first < 0 or first >= len(log_probs):
            continue
        scores = log_probs[first:last].sum(0)
        scores[special] = -np.inf
        correct += int(np.argmax(scores) == target)
        total += 1
    return correct / total if total else None


def envelope_correlation(ref_logmel: list[np.ndarray], gen_logmel: list[np.ndarray]) -> float:
    """Mean over clips of the Pearson correlation of frame loudness (mean log-mel) between the two, no alignment:
    speech/pause timing and stress, which is what a gesture can tell about its speech."""
    values = []
    for r, g in zip(ref_logmel, gen_logmel, strict=True):
        n = min(len(r), len(g))
        a, b = r[:n].mean(-1), g[:n].mean(-1)
        a, b = a - a.mean(), b - b.mean()
        scale = math.sqrt(float(a @ a) * float(b @ b))
        if n > 2 and scale > 1e-9 * n:  # a flat envelope has no defined correlation
            values.append(float(a @ b) / scale)
    return float(np.mean(values)) if values else 0.0


def audio_metrics(ref_logmel: list[np.ndarray], gen_logmel: list[np.ndarray], *, n_ceps: int = 25) -> dict[str, float]:
    """MCD-DTW on mel-cepstra (c0 excluded) and log-mel L1, averaged over clips; inputs (T, n_mels) natural-log mel."""
    mcd = [metrics.mcd_dtw(metrics.mel_cepstrum(2 * r, n_ceps), metrics.mel_cepstrum(2 * g, n_ceps))
           for r, g in zip(ref_logmel, gen_logmel, strict=True)]
    dist = [metrics.log_mel_distance(r, g) for r, g in zip(ref_logmel, gen_logmel, strict=True)]
    return {"mcd_dtw": float(np.mean(mcd)), "log_mel_l1": float(np.mean(dist)),
            "envelope_corr": envelope_correlation(ref_logmel, gen_logmel)}


def markdown_table(rows: dict[str, dict[str, Any]], ci: dict[str, dict[str, list[float]]] | None = None) -> str:
    """Rows x metrics as a markdown table (blank where a metric is undefined for a row), `value [lo, hi]` where a
    confidence interval is given ({row: {metric: [lo, hi]}})."""
    keys = sorted({k for row in rows.values() for k, v in row.items() if isinstance(v, int | float)})
    lines = ["| row | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in rows.items():
        bounds = (ci or {}).get(name, {})
        cells = [(f"{row[k]:.4g}" + (" [{:.4g}, {:.4g}]".format(*bounds[k]) if k in bounds else ""))
                 if isinstance(row.get(k), int | float) else "" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(rows: dict[str, dict[str, Any]], path: str | Path, title: str) -> Path:
    """One small bar panel per metric, rows side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in rows.values() for k, v in row.items() if isinstance(v, int | float)})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(2.6 * max(1, len(keys)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        names = [n for n in rows if isinstance(rows[n].get(key), int | float)]
        ax.bar(range(len(names)), [rows[n][key] for n in names], color=["C0", "C2", "C1", "C7", "C4"][: len(names)])
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(key, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
