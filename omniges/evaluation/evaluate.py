"""Stage `evaluate_<experiment>`: every task the checkpoint does, on one split's whole clips, with reference rows."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from omniges.data.kinematics import mean_velocity
from omniges.data.store import LmdbReader, write_json_atomic
from omniges.evaluation import report
from omniges.evaluation.evaluator import load_evaluator
from omniges.evaluation.iconic import iconic_hit_ci, iconic_hit_rate, iconic_word_recall
from omniges.evaluation.metrics import bleu, bootstrap_ci, rouge_l_scores, word_f1
from omniges.evaluation.retrieval import MotionToSpeechRetrieval, WordRetrieval
from omniges.evaluation.speech_content import content_metrics
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


def _drawn_train_records(clips: LmdbReader, size: int, seed: int) -> list[dict[str, Any]]:
    """Up to `size` train (and additional) clip records, drawn with a fixed seed, in key order."""
    keys = sorted(k for k, v in clips.meta["index"].items() if v["split"] in ("train", "additional"))
    chosen = sorted(np.random.default_rng(seed).permutation(len(keys))[:size])
    return [clips[keys[i]] for i in chosen]


def train_motion_pool(clips: LmdbReader, size: int = 64, seed: int = 0) -> list[report.Motion]:
    """Up to `size` train clips' motion drawn with a fixed seed: the random-clip baseline's source."""
    return [report.Motion(r["poses"], r["expressions"]) for r in _drawn_train_records(clips, size, seed)]


def train_speech_pool(clips: LmdbReader, size: int = 256, seed: int = 0) -> list[report.Motion]:
    """Up to `size` train clips with speech and words, drawn with a fixed seed: the retrieval baselines' corpus and
    the unigram language model of the G2T chance rows."""
    return [report.Motion(r["poses"], r["expressions"], None, r["audio"].astype(np.float32) / 32767.0, r["sr"],
                          list(r["words"])) for r in _drawn_train_records(clips, size, seed)]


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


def _frequent_bag(counts: Counter, n: int) -> list[str]:
    """n words in the train corpus's proportions, most frequent first (the expected bag of an n-word transcript)."""
    total = sum(counts.values())
    share = [(w, n * c / total) for w, c in counts.most_common()]
    bag = {w: int(x) for w, x in share}
    for w, _ in sorted(share, key=lambda item: -(item[1] - int(item[1])))[: n - sum(bag.values())]:
        bag[w] += 1
    return [w for w, _ in share for _ in range(bag[w])]


def _at_times(words: list[str], timing: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    return [(w, s, e) for w, (_, s, e) in zip(words, timing, strict=False)]


def _text_rows(hyps: list[list[tuple[str, float, float]]], truth: list[list[tuple[str, float, float]]],
               ids: list[str]) -> dict[str, float]:
    """Free-running transcript metrics of timed hypotheses against timed references."""
    text = [" ".join(w for w, _, _ in h) for h in hyps]
    ref = [" ".join(w for w, _, _ in t) for t in truth]
    out = {**report.text_metrics(text, ref), "word_f1": word_f1(text, ref)}
    recall = iconic_word_recall(ids, hyps, truth)
    return out if recall is None else {**out, "iconic_recall": recall}


def _g2t_task(model: Omniges, ids: list[str], refs: list[report.Motion], train: list[report.Motion], progress: bool,
              boot: dict[str, int]) -> tuple[dict, dict]:
    """Free-running transcripts (no timing given) next to chance transcripts told the word count; the per-word
    accuracy with the true timing stays as a diagnostic of the head. `nn_retrieval` reads each word from the train
    words of the closest motion, told the timing: the ceiling of what the motion says about the words."""
    counts = Counter(w.lower() for m in train for w, _, _ in m.words)
    keep = [i for i, m in enumerate(refs) if m.words]
    if not keep:
        return {}, {}
    ids, with_text = [ids[i] for i in keep], [refs[i] for i in keep]
    truth = [[(w.lower(), s, e) for w, s, e in m.words] for m in with_text]
    log_probs = [model.g2t_log_probs({"poses": m.poses, "trans": m.trans, "expressions": m.expressions})
                 for m in tqdm(with_text, desc="evaluate g2t", disable=not progress)]
    hyps = [[(w.word, w.start, w.end) for w in model.timed_transcript(lp)] for lp in log_probs]
    other = [(i + 1) % len(with_text) for i in range(len(with_text))]  # another clip (a derangement)
    rng = np.random.default_rng(boot["seed"])
    vocab_words, freq = zip(*counts.items(), strict=True) if counts else ((), ())
    sample = [_at_times(list(rng.choice(vocab_words, len(t), p=np.array(freq) / sum(freq))) if counts else [], t)
              for t in truth]

    # per-clip parts computed once: a bootstrap draw pools them (stemming ROUGE-L over a draw took ~70 ms)
    texts = [" ".join(w for w, _, _ in h) for h in hyps]
    ref_texts = [" ".join(w for w, _, _ in t) for t in truth]
    rouge = np.array(rouge_l_scores(texts, ref_texts))
    scored = [(report.word_accuracy(lp, m.words, model.vocab), len(m.words)) for lp, m in zip(log_probs, with_text,
                                                                                            strict=True)]

    def generated(index: np.ndarray) -> dict[str, float]:
        h, r = [texts[i] for i in index], [ref_texts[i] for i in index]
        out = {"bleu": bleu(h, r), "rouge_l": float(rouge[index].mean()), "word_f1": word_f1(h, r)}
        recall = iconic_word_recall([ids[i] for i in index], [hyps[i] for i in index], [truth[i] for i in index])
        pooled = [scored[i] for i in index if scored[i][0] is not None]
        accuracy = float(np.average([a for a, _ in pooled], weights=[n for _, n in pooled])) if pooled else 0.0
        return {**out, **({} if recall is None else {"iconic_recall": recall}), "word_accuracy": accuracy}

    rows = {"generated": generated(np.arange(len(with_text))),
            # the model reading another clip's motion: what the transcript owes to the motion (condition ablation)
            "mismatched_motion": {**_text_rows([hyps[j] for j in other], truth, ids),
                                  "word_accuracy": _mean_accuracy([log_probs[j] for j in other], with_text,
                                                                  model.vocab)},
            "random_clip": _text_rows([truth[j] for j in other], truth, ids),
            "frequent_words": _text_rows([_at_times(_frequent_bag(counts, len(t)), t) for t in truth], truth, ids),
            "unigram_sample": _text_rows(sample, truth, ids)}
    retrieval = WordRetrieval([(m.poses, m.expressions, m.words) for m in train])
    retrieved = [_at_times(retrieval.predict(m.poses, m.expressions, t), t) for m, t in zip(with_text, truth,
                                                                                          strict=True)]
    hits = [w == r for ret, t in zip(retrieved, truth, strict=True) for (w, _, _), (r, _, _) in zip(ret, t,
                                                                                                  strict=True)]
    rows["nn_retrieval"] = {**_text_rows(retrieved, truth, ids), "word_accuracy": float(np.mean(hits))}
    return rows, {"generated": bootstrap_ci(generated, len(with_text), **boot)}


def _g2a_task(model: Omniges, refs: list[report.Motion], train: list[report.Motion], progress: bool,
              boot: dict[str, int]) -> tuple[dict, dict]:
    """Generated speech against the clip's real speech: spectral distance, loudness envelope (rhythm) and content
    (voicing, vowel openness, syllable rate); beside another clip's speech, the model reading another clip's motion
    (mismatched) and the nearest-neighbour retrieval from the real motion (the ceiling of what motion carries)."""
    n_mfcc = model.config.mfcc_dim
    real, gen = [], []
    for m in tqdm(refs, desc="evaluate g2a", disable=not progress):
        coeffs = model.g2a({"poses": m.poses, "trans": m.trans, "expressions": m.expressions}, waveform=False)
        real.append(_logmel_of_wave(m.audio, len(coeffs), n_mfcc))
        gen.append(mfcc_to_logmel(coeffs))
    other = [(i + 1) % len(real) for i in range(len(real))]
    shuffled = [np.resize(real[j], real[i].shape) for i, j in enumerate(other)]
    mismatched = [np.resize(gen[j], real[i].shape) for i, j in enumerate(other)]
    mean_frame = np.concatenate(real).mean(0)
    retrieval = MotionToSpeechRetrieval([(m.poses, m.expressions) for m in train],
                                        [_logmel_of_wave(m.audio, len(m.poses), n_mfcc) for m in train])
    retrieved = [retrieval.predict(m.poses, m.expressions)[: len(r)] for m, r in zip(refs, real, strict=True)]

    def scored(candidates: list[np.ndarray]) -> list[dict[str, float]]:
        return [{**report.audio_metrics([r], [g]), **content_metrics(r, g)}
                for r, g in zip(real, candidates, strict=True)]

    per_clip = scored(gen)  # per clip (DTW once per clip): the means of any resample of clips

    def mean_of(clips: list[dict[str, float]], index: np.ndarray) -> dict[str, float]:
        keys = sorted({k for i in index for k in clips[i]})
        return {k: float(np.mean([clips[i][k] for i in index if k in clips[i]])) for k in keys}

    everything = np.arange(len(real))
    rows = {"generated": mean_of(per_clip, everything),
            "mismatched_motion": mean_of(scored(mismatched), everything),
            "nn_retrieval": mean_of(scored(retrieved), everything),
            "random_clip": mean_of(scored(shuffled), everything),
            "mean_audio": report.audio_metrics(real, [np.repeat(mean_frame[None], len(r), 0) for r in real])}
    return rows, {"generated": bootstrap_ci(lambda index: mean_of(per_clip, index), len(real), **boot)}


def evaluate_experiment(
    model: Omniges, *, cache_dir: str | Path, evaluator_path: str | Path, out_json: str | Path,
    mean_vel: np.ndarray | None = None, max_clips: int | None = None, progress: bool = True, split: str = "test",
    seed_frames: int = 16, bootstrap: int = 1000, bootstrap_seed: int = 0, tasks: list[str] | None = None,
) -> dict[str, Any]:
    """Metrics JSON + markdown table + bar chart for each task of the checkpoint on one split's clips, next to
    reference rows; generated rows carry 95% bootstrap CIs over the clips (`ci`). `tasks`: a subset (sweeps)."""
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
    speech_pool: list[report.Motion] = []  # train clips with speech, read when a text or audio task needs them
    for task in sorted(set(model.tasks) & set(tasks or model.tasks)):
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
            speech_pool = speech_pool or train_speech_pool(clips, seed=bootstrap_seed)
            rows, ci = _g2t_task(model, list(reference), refs, speech_pool, progress, boot)
            if not rows:
                continue
        elif task == "g2a":
            speech_pool = speech_pool or train_speech_pool(clips, seed=bootstrap_seed)
            rows, ci = _g2a_task(model, refs, speech_pool, progress, boot)
        ci = {row: bounds for row, bounds in ci.items() if bounds}
        results["tasks"][task], results["ci"][task] = rows, ci
        stem = out_json.with_suffix("")
        Path(f"{stem}_{task}.md").write_text(report.markdown_table(rows, ci))
        report.bar_chart(rows, f"{stem}_{task}.png", f"{out_json.stem}: {task}")
        log.info("%s %s:\n%s", out_json.stem, task, report.markdown_table(rows, ci))
    write_json_atomic(out_json, results)
    return results
