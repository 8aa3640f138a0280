"""Stage `evaluate_<experiment>`: every task the checkpoint does, on one split's whole clips, with reference rows."""

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
from omniges.evaluation.iconic import iconic_hit_ci, iconic_hit_rate
from omniges.evaluation.metrics import bootstrap_ci
from omniges.features.audio import SAMPLE_RATE, mfcc, mfcc_to_logmel
from omniges.inference import Omniges

log = logging.getLogger("omniges.evaluate")
JOINTS_NOTE = ("joint positions from the built-in approximate SMPL-X skeleton (no SMPL-X model file): "
               "BC / L1div / FGD are this pipeline's, not paper-comparable numbers")
SEEDED_NOTE = ("generated_seeded: the first seed_frames of the real motion, encoded by the tokenizer, are the known "
               "prefix of the first window (GestureLSM's protocol); as in EMAGE / GestureLSM the scored motion "
               "includes those frames (decoded from the seed's latents)")


def test_motions(clips: LmdbReader, split: str = "test") -> dict[str, report.Motion]:
    """Ground-truth clips of a split (whole sequences, as EMAGE evaluates)."""
    keys = sorted(k for k, v in clips.meta["index"].items() if v["split"] == split)
    out = {}
    for key in keys:
        record = clips[key]
        out[key] = report.Motion(
            record["poses"], record["expressions"], record["trans"], record["audio"].astype(np.float32) / 32767.0,
            record["sr"], list(record["words"]))
    return out


def train_motion_pool(clips: LmdbReader, size: int = 64, seed: int = 0) -> list[report.Motion]:
    """Up to `size` train clips' motion drawn with a fixed seed: the random-clip baseline's source."""
    keys = sorted(k for k, v in clips.meta["index"].items() if v["split"] in ("train", "additional"))
    chosen = np.random.default_rng(seed).permutation(len(keys))[:size]
    return [report.Motion(clips[keys[i]]["poses"], clips[keys[i]]["expressions"]) for i in sorted(chosen)]


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


def _seed(motion: report.Motion, frames: int) -> dict[str, np.ndarray]:
    return {"poses": motion.poses[:frames], "trans": motion.trans[:frames], "expressions": motion.expressions[:frames]}


def _gesture_task(model: Omniges, task: str, refs: list[report.Motion], seed_frames: int, progress: bool,
                  kwargs: dict[str, Any]) -> tuple[dict[str, list[report.Motion]], dict[str, report.GestureStats]]:
    """A2G / T2G motion for every clip, unseeded and (seed_frames > 0) seeded, with their per-clip metric stats."""
    variants = {"generated": None, **({"generated_seeded": seed_frames} if seed_frames else {})}
    motions: dict[str, list[report.Motion]] = {}
    for row, frames in variants.items():
        motions[row] = []
        for motion in tqdm(refs, desc=f"evaluate {task} ({row})", disable=not progress):
            seed = _seed(motion, frames) if frames else None
            out = (model.a2g(motion.audio, seed_motion=seed) if task == "a2g"
                   else model.t2g(motion.words, seconds=len(motion.poses) / 30, seed_motion=seed))
            motions[row].append(report.Motion(out["poses"], out["expressions"]))
    return motions, {row: report.gesture_stats(refs, m, **kwargs) for row, m in motions.items()}


def _g2t_task(model: Omniges, refs: list[report.Motion], progress: bool, boot: dict[str, int]) -> tuple[dict, dict]:
    with_text = [m for m in refs if m.words]
    if not with_text:
        return {}, {}
    motions = [{"poses": m.poses, "trans": m.trans, "expressions": m.expressions} for m in with_text]
    log_probs = [model.g2t_log_probs(m) for m in tqdm(motions, desc="evaluate g2t", disable=not progress)]
    hyps = [" ".join(model.transcript(lp)) for lp in log_probs]
    truth = [" ".join(w for w, _, _ in m.words) for m in with_text]
    other = [(i + 1) % len(with_text) for i in range(len(with_text))]  # another clip (a derangement)
    common_id = len(model.vocab.SPECIALS) if len(model.vocab) > len(model.vocab.SPECIALS) else 0
    common = model.vocab.tokens[common_id] if common_id else ""  # vocabularies are most-frequent first

    def generated(index: np.ndarray) -> dict[str, float]:
        return {**report.text_metrics([hyps[i] for i in index], [truth[i] for i in index]),
                "word_accuracy": _mean_accuracy([log_probs[i] for i in index], [with_text[i] for i in index],
                                                model.vocab)}

    rows = {"generated": generated(np.arange(len(with_text)))}
    # random clip: another clip's transcript; its word accuracy is the model reading another clip's motion
    rows["random_clip"] = {**report.text_metrics([truth[j] for j in other], truth),
                           "word_accuracy": _mean_accuracy([log_probs[j] for j in other], with_text, model.vocab)}
    always = np.full((1, len(model.vocab)), -np.inf)
    always[0, common_id] = 0.0
    rows["most_frequent_word"] = {
        **report.text_metrics([" ".join([common] * len(m.words)) for m in with_text], truth),
        "word_accuracy": _mean_accuracy([np.repeat(always, len(lp), 0) for lp in log_probs], with_text, model.vocab)}
    return rows, {"generated": bootstrap_ci(generated, len(with_text), **boot)}


def _g2a_task(model: Omniges, refs: list[report.Motion], progress: bool, boot: dict[str, int]) -> tuple[dict, dict]:
    n_mfcc = model.config.mfcc_dim
    real, gen = [], []
    for m in tqdm(refs, desc="evaluate g2a", disable=not progress):
        coeffs = model.g2a({"poses": m.poses, "trans": m.trans, "expressions": m.expressions}, waveform=False)
        real.append(_logmel_of_wave(m.audio, len(coeffs), n_mfcc))
        gen.append(mfcc_to_logmel(coeffs))
    shuffled = [np.resize(real[(i + 1) % len(real)], real[i].shape) for i in range(len(real))]
    mean_frame = np.concatenate(real).mean(0)
    # per clip (DTW once per clip): the clip means of these are the generated row, and any resample's
    per_clip = [{**report.audio_metrics([r], [g]), **{f"{k}_vs_other_clip": v for k, v in report.audio_metrics(
                 [o], [g]).items() if k in ("mcd_dtw", "envelope_corr")}} for r, g, o in zip(real, gen, shuffled,
                                                                                             strict=True)]

    def generated(index: np.ndarray) -> dict[str, float]:
        return {k: float(np.mean([per_clip[i][k] for i in index])) for k in per_clip[0]}

    rows = {"generated": generated(np.arange(len(real))), "random_clip": report.audio_metrics(real, shuffled),
            "mean_audio": report.audio_metrics(real, [np.repeat(mean_frame[None], len(r), 0) for r in real])}
    return rows, {"generated": bootstrap_ci(generated, len(real), **boot)}


def evaluate_experiment(
    model: Omniges, *, cache_dir: str | Path, evaluator_path: str | Path, out_json: str | Path,
    mean_vel: np.ndarray | None = None, max_clips: int | None = None, progress: bool = True, split: str = "test",
    seed_frames: int = 16, bootstrap: int = 1000, bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """Metrics JSON + markdown table + bar chart for each task of the checkpoint on one split's clips, next to
    reference rows; generated rows carry 95% bootstrap CIs over the clips (`ci`)."""
    cache_dir, out_json = Path(cache_dir), Path(out_json)
    clips = LmdbReader(cache_dir / "clips.lmdb")
    reference = test_motions(clips, split)
    if max_clips:
        reference = dict(list(reference.items())[:max_clips])
    if not reference:
        raise ValueError(f"{cache_dir}: no {split} clips to evaluate")
    refs = list(reference.values())
    evaluator = load_evaluator(evaluator_path)
    mean_vel = train_mean_velocity(clips) if mean_vel is None else mean_vel
    mean_poses, mean_expressions = train_mean_pose(clips)
    pool = train_motion_pool(clips, seed=bootstrap_seed)
    boot = {"resamples": bootstrap, "seed": bootstrap_seed}
    results: dict[str, Any] = {"split": split, "clips": list(reference), "seed_frames": seed_frames, "notes": {
        "joints": JOINTS_NOTE, "face": "face MSE / LVD on FLAME expressions (no SMPL-X vertices): a proxy",
        "seeded": SEEDED_NOTE, "ci": f"95% percentile bootstrap over the {len(refs)} clips, {bootstrap} resamples, "
        f"seed {bootstrap_seed}", "wavlm_random_init": bool(model.payload["features"]["wavlm_random_init"])},
        "device": str(model.device), "tasks": {}, "ci": {}}
    gesture_rows: dict[str, dict[str, float]] = {}
    for task in sorted(model.tasks):
        rows: dict[str, dict[str, float]] = {}
        ci: dict[str, dict[str, list[float]]] = {}
        if task in ("a2g", "t2g"):
            kwargs = {"evaluator": evaluator, "mean_vel": mean_vel}
            generated, stats = _gesture_task(model, task, refs, seed_frames, progress, kwargs)
            random_clip = report.random_clip_baseline(refs, pool, seed=bootstrap_seed)
            for row, row_stats in stats.items():
                rows[row] = row_stats.score()
                ci[row] = bootstrap_ci(row_stats.score, len(refs), **boot) if bootstrap else {}
            if not gesture_rows:
                gesture_rows = {
                    "ground_truth": report.gesture_metrics(refs, refs, **kwargs),
                    "random_clip": report.gesture_metrics(refs, random_clip, **kwargs),
                    "mean_pose": report.gesture_metrics(
                        refs, report.mean_pose_baseline(refs, mean_poses, mean_expressions), **kwargs),
                }
            rows.update({name: dict(values) for name, values in gesture_rows.items()})
            if task == "t2g":
                ids, words = list(reference), [m.words for m in refs]
                for name, motions in (*generated.items(), ("ground_truth", refs), ("random_clip", random_clip)):
                    poses = [m.poses for m in motions]
                    rate = iconic_hit_rate(ids, poses, words)
                    if rate is not None:
                        rows[name]["iconic_hit_rate"] = rate
                        if name in generated and bootstrap:
                            ci[name]["iconic_hit_rate"] = iconic_hit_ci(ids, poses, words, **boot)
        elif task == "g2t":
            rows, ci = _g2t_task(model, refs, progress, boot)
            if not rows:
                continue
        elif task == "g2a":
            rows, ci = _g2a_task(model, refs, progress, boot)
        ci = {row: bounds for row, bounds in ci.items() if bounds}
        results["tasks"][task], results["ci"][task] = rows, ci
        stem = out_json.with_suffix("")
        Path(f"{stem}_{task}.md").write_text(report.markdown_table(rows, ci))
        report.bar_chart(rows, f"{stem}_{task}.png", f"{out_json.stem}: {task}")
        log.info("%s %s:\n%s", out_json.stem, task, report.markdown_table(rows, ci))
    write_json_atomic(out_json, results)
    return results
