"""Stage `evaluate_<experiment>`: every task the checkpoint does, on the whole test clips, with reference rows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from omniges.data.kinematics import mean_velocity
from omniges.data.store import LmdbReader, write_json_atomic
from omniges.evaluation import report
from omniges.evaluation.evaluator import load_evaluator
from omniges.evaluation.iconic import iconic_hit_rate
from omniges.features.audio import SAMPLE_RATE, mfcc, mfcc_to_logmel
from omniges.inference import Omniges

log = logging.getLogger("omniges.evaluate")
JOINTS_NOTE = ("joint positions from the built-in approximate SMPL-X skeleton (no SMPL-X model file): "
               "BC / L1div / FGD are this pipeline's, not paper-comparable numbers")


def test_motions(clips: LmdbReader, split: str = "test") -> dict[str, report.Motion]:
    """Ground-truth test clips (whole sequences, as EMAGE evaluates)."""
    keys = sorted(k for k, v in clips.meta["index"].items() if v["split"] == split)
    out = {}
    for key in keys:
        record = clips[key]
        out[key] = report.Motion(
            record["poses"], record["expressions"], record["trans"], record["audio"].astype(np.float32) / 32767.0,
            record["sr"], list(record["words"]))
    return out


def train_mean_velocity(clips: LmdbReader, fps: int = 30) -> np.ndarray:
    """Per-joint mean speed (m/s) over the train clips: what BEAT2's mean_vel_smplxflame_30.npy holds for BEAT2."""
    records = (clips[key] for key, info in clips.meta["index"].items() if info["split"] in ("train", "additional"))
    return mean_velocity(((record["poses"], record["trans"]) for record in records), fps)


def train_mean_pose(clips: LmdbReader) -> tuple[np.ndarray, np.ndarray]:
    poses, expressions = [], []
    for key, info in clips.meta["index"].items():
        if info["split"] in ("train", "additional"):
            record = clips[key]
            poses.append(record["poses"].mean(0))
            expressions.append(record["expressions"].mean(0))
    return np.mean(poses, 0), np.mean(expressions, 0)


def _logmel_of_wave(wave: np.ndarray, n_frames: int, n_mfcc: int) -> np.ndarray:
    return mfcc_to_logmel(mfcc(wave, SAMPLE_RATE, n_frames=n_frames, n_mfcc=n_mfcc, n_mels=n_mfcc))


def _mean_accuracy(log_probs: list[np.ndarray], clips: list[report.Motion], vocab: Any) -> float:
    """Word accuracy pooled over clips (each clip weighted by its scored words)."""
    scored = [(report.word_accuracy(lp, m.words, vocab), len(m.words)) for lp, m in zip(log_probs, clips, strict=True)]
    scored = [(a, n) for a, n in scored if a is not None]
    return float(np.average([a for a, _ in scored], weights=[n for _, n in scored])) if scored else 0.0


def evaluate_experiment(
    model: Omniges, *, cache_dir: str | Path, evaluator_path: str | Path, out_json: str | Path,
    mean_vel: np.ndarray | None = None, max_clips: int | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Metrics JSON + markdown table + bar chart for each task of the checkpoint, next to reference rows."""
    cache_dir, out_json = Path(cache_dir), Path(out_json)
    clips = LmdbReader(cache_dir / "clips.lmdb")
    reference = test_motions(clips)
    if max_clips:
        reference = dict(list(reference.items())[:max_clips])
    if not reference:
        raise ValueError(f"{cache_dir}: no test clips to evaluate")
    refs = list(reference.values())
    evaluator = load_evaluator(evaluator_path)
    mean_vel = train_mean_velocity(clips) if mean_vel is None else mean_vel
    mean_poses, mean_expressions = train_mean_pose(clips)
    results: dict[str, Any] = {"clips": list(reference), "notes": {"joints": JOINTS_NOTE,
               "face": "face MSE / LVD on FLAME expressions (no SMPL-X vertices): a proxy",
               "wavlm_random_init": bool(model.payload["features"]["wavlm_random_init"])},
               "device": str(model.device), "tasks": {}}
    gesture_rows = {}
    for task in sorted(model.tasks):
        rows: dict[str, dict[str, float]] = {}
        if task in ("a2g", "t2g"):
            generated = []
            for motion in tqdm(refs, desc=f"evaluate {task}", disable=not progress):
                out = (model.a2g(motion.audio) if task == "a2g"
                       else model.t2g(motion.words, seconds=len(motion.poses) / 30))
                generated.append(report.Motion(out["poses"], out["expressions"]))
            kwargs = {"evaluator": evaluator, "mean_vel": mean_vel}
            rows["generated"] = report.gesture_metrics(refs, generated, **kwargs)
            if not gesture_rows:
                gesture_rows = {
                    "ground_truth": report.gesture_metrics(refs, refs, **kwargs),
                    "random_clip": report.gesture_metrics(refs, report.random_clip_baseline(refs), **kwargs),
                    "mean_pose": report.gesture_metrics(
                        refs, report.mean_pose_baseline(refs, mean_poses, mean_expressions), **kwargs),
                }
            rows.update({name: dict(values) for name, values in gesture_rows.items()})
            if task == "t2g":
                ids, words = list(reference), [m.words for m in refs]
                for name, motions in (("generated", generated), ("ground_truth", refs),
                                      ("random_clip", report.random_clip_baseline(refs))):
                    rate = iconic_hit_rate(ids, [m.poses for m in motions], words)
                    if rate is not None:
                        rows[name]["iconic_hit_rate"] = rate
        elif task == "g2t":
            with_text = [m for m in refs if m.words]
            if not with_text:
                continue
            motions = [{"poses": m.poses, "trans": m.trans, "expressions": m.expressions} for m in with_text]
            log_probs = [model.g2t_log_probs(m) for m in tqdm(motions, desc="evaluate g2t", disable=not progress)]
            hyps = [" ".join(model.transcript(lp)) for lp in log_probs]
            truth = [" ".join(w for w, _, _ in m.words) for m in with_text]
            other = [(i + 1) % len(with_text) for i in range(len(with_text))]  # another clip (a derangement)
            common_id = len(model.vocab.SPECIALS) if len(model.vocab) > len(model.vocab.SPECIALS) else 0
            common = model.vocab.tokens[common_id] if common_id else ""  # vocabularies are most-frequent first
            rows["generated"] = {**report.text_metrics(hyps, truth),
                                 "word_accuracy": _mean_accuracy(log_probs, with_text, model.vocab)}
            # random clip: another clip's transcript; its word accuracy is the model reading another clip's motion
            rows["random_clip"] = {**report.text_metrics([truth[j] for j in other], truth),
                                   "word_accuracy": _mean_accuracy([log_probs[j] for j in other], with_text,
                                                                   model.vocab)}
            always = np.full((1, len(model.vocab)), -np.inf)
            always[0, common_id] = 0.0
            rows["most_frequent_word"] = {
                **report.text_metrics([" ".join([common] * len(m.words)) for m in with_text], truth),
                "word_accuracy": _mean_accuracy([np.repeat(always, len(lp), 0) for lp in log_probs], with_text,
                                                model.vocab)}
        elif task == "g2a":
            n_mfcc = model.config.mfcc_dim
            real, gen = [], []
            for m in tqdm(refs, desc="evaluate g2a", disable=not progress):
                coeffs = model.g2a({"poses": m.poses, "trans": m.trans, "expressions": m.expressions},
                                   waveform=False)
                n = len(coeffs)
                real.append(_logmel_of_wave(m.audio, n, n_mfcc))
                gen.append(mfcc_to_logmel(coeffs))
            shuffled = [np.resize(real[(i + 1) % len(real)], real[i].shape) for i in range(len(real))]
            mean_frame = np.concatenate(real).mean(0)
            mismatched = report.audio_metrics(shuffled, gen)  # generated vs another clip's real audio
            rows["generated"] = {**report.audio_metrics(real, gen), "mcd_dtw_vs_other_clip": mismatched["mcd_dtw"],
                                 "envelope_corr_vs_other_clip": mismatched["envelope_corr"]}
            rows["random_clip"] = report.audio_metrics(real, shuffled)
            rows["mean_audio"] = report.audio_metrics(real, [np.repeat(mean_frame[None], len(r), 0) for r in real])
        results["tasks"][task] = rows
        stem = out_json.with_suffix("")
        Path(f"{stem}_{task}.md").write_text(report.markdown_table(rows))
        report.bar_chart(rows, f"{stem}_{task}.png", f"{out_json.stem}: {task}")
        log.info("%s %s:\n%s", out_json.stem, task, report.markdown_table(rows))
    write_json_atomic(out_json, results)
    return results
