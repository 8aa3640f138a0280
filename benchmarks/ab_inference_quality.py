"""Quality cost of the inference-speed levers: one trained A2G checkpoint, generated under each setting, paired.

Every arm generates the same (clip, seed) units: the test and val clips of the corpus x `--seeds` seeds, from the
wav as `Omniges.a2g` does. Per arm: FGD (generated vs real, over all units), sync_z (mean over units) and L1
diversity, each with a 95% bootstrap CI over units, and the paired bootstrap CI of its difference from the first
arm (the same resampled units in both arms). Writes JSON (default results/benchmarks/inference_quality_ab.json).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omniges.data.store import LmdbReader, write_json_atomic
from omniges.evaluation import metrics
from omniges.evaluation.evaluate import test_motions
from omniges.evaluation.evaluator import latents, load_evaluator, poses_to_rot6d
from omniges.evaluation.report import fk_no_translation
from omniges.evaluation.sync import speech_motion_sync
from omniges.features.audio import SAMPLE_RATE, WAVLM_HOP
from omniges.inference import GenerationSettings, Omniges, resolve_dtype

# today: WavLM float32 in 30 s chunks, the mmdit package's block forward, CFG at every step
ARMS: dict[str, dict[str, Any]] = {
    "today": dict(wavlm_dtype=torch.float32, chunk_s=30.0, fused=False),
    "fast": dict(),
    "fast_guide_first_step": dict(settings=dict(guidance_interval=(0.0, 0.5))),
    "fast_guide_second_step": dict(settings=dict(guidance_interval=(0.5, 1.0))),
    "fast_1_step": dict(steps=1),
    # `--checkpoint-b`: a model trained with flow.model_guidance, at its own guidance (1: one call per step)
    "b": dict(model="b"),
    "b_1_step": dict(model="b", steps=1),
}


def configure(model: Omniges, arm: dict[str, Any], settings: GenerationSettings) -> None:
    """Set one arm's generation settings, WavLM dtype / chunking and block path."""
    model.settings = dataclasses.replace(settings, **arm.get("settings", {}))
    model.wavlm.model.to(arm.get("wavlm_dtype", resolve_dtype(model.settings.dtype)))
    model.wavlm.chunk_frames = round(arm.get("chunk_s", 10.0) * SAMPLE_RATE / WAVLM_HOP)
    model.model.fused_inference = arm.get("fused", True)
    model._audio_cache.clear()


def generate_arm(model: Omniges, units: list[tuple[str, Any, int]], arm: dict[str, Any]) -> list[np.ndarray]:
    """SMPL-X poses of every (clip, motion, seed) unit under one arm."""
    return [model.a2g(motion.audio, seed=seed, steps=arm.get("steps"))["poses"] for _, motion, seed in units]


def unit_scores(poses: list[np.ndarray], units: list[tuple[str, Any, int]], evaluator: Any) -> dict[str, Any]:
    """Per-unit FGD latents, sync_z and joints (what the bootstrap resamples)."""
    return dict(
        latents=[latents(evaluator, poses_to_rot6d(p)) for p in poses],
        sync_z=np.array([speech_motion_sync(m.audio, m.sr, p, 30)["sync_z"] for p, (_, m, _) in zip(
            poses, units, strict=True)]),
        joints=[fk_no_translation(p) for p in poses],
    )


def summary(scores: dict[str, Any], real: np.ndarray, index: np.ndarray) -> dict[str, float]:
    """FGD, sync_z and L1div of the units picked by `index`."""
    gen = np.concatenate([scores["latents"][i] for i in index])
    return dict(fgd=metrics.fgd(real, gen), sync_z=float(scores["sync_z"][index].mean()),
                l1div=metrics.l1_diversity([scores["joints"][i] for i in index]))


def main(argv: list[str] | None = None) -> None:
    """Generate every arm, bootstrap, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/inference_quality_ab.json")
    parser.add_argument("--checkpoint", default="results/models/a2g/model.pt")
    parser.add_argument("--checkpoint-b", default="", help="a second checkpoint, for the arms b and b_1_step")
    parser.add_argument("--rvqvae-b", default="results/rvqvae",
                        help="the tokenizer directory of --checkpoint-b (when it was trained on other tokenizers)")
    parser.add_argument("--splits", nargs="+", default=["test", "val"], choices=["test", "val"],
                        help="the clips generated (tune on val; report on test)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args(argv)
    settings = GenerationSettings.from_params()
    models = {"a": Omniges.load(args.checkpoint, settings=settings)}
    if args.checkpoint_b:
        models["b"] = Omniges.load(args.checkpoint_b, settings=settings, rvqvae_dir=args.rvqvae_b)
    clips = LmdbReader(Path("data/cache/clips.lmdb"))
    motions = {key: motion for split in args.splits for key, motion in test_motions(clips, split).items()}
    units = [(key, motion, seed) for key, motion in motions.items() for seed in range(args.seeds)]
    evaluator = load_evaluator("results/evaluator.pth")
    real = np.concatenate([latents(evaluator, poses_to_rot6d(m.poses)) for m in motions.values()])
    scores = {}
    with torch.inference_mode():
        for name in args.arms:
            model = models[ARMS[name].get("model", "a")]
            configure(model, ARMS[name], settings)
            scores[name] = unit_scores(generate_arm(model, units, ARMS[name]), units, evaluator)
            print(name, summary(scores[name], real, np.arange(len(units))), flush=True)
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(units), len(units)) for _ in range(args.bootstrap)]
    base = args.arms[0]
    boot = {name: [summary(scores[name], real, d) for d in draws] for name in args.arms}
    rows = {}
    for name in args.arms:
        point = summary(scores[name], real, np.arange(len(units)))
        rows[name] = {"settings": {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in ARMS[name].items()}}
        for key, value in point.items():
            values = np.array([b[key] for b in boot[name]])
            diffs = values - np.array([b[key] for b in boot[base]])
            rows[name][key] = dict(value=value, ci95=np.percentile(values, [2.5, 97.5]).tolist(),
                                   diff_vs_today_ci95=np.percentile(diffs, [2.5, 97.5]).tolist())
        print(name, {k: (round(v["value"], 3), [round(x, 3) for x in v["ci95"]],
                         [round(x, 3) for x in v["diff_vs_today_ci95"]]) for k, v in rows[name].items()
                     if k != "settings"}, flush=True)
    write_json_atomic(Path(args.out), dict(checkpoint=args.checkpoint, checkpoint_b=args.checkpoint_b,
                                           rvqvae_b=args.rvqvae_b,
                                           splits=args.splits, clips=list(motions), seeds=args.seeds,
                                           units=len(units), bootstrap=args.bootstrap, baseline=base,
                                           generation=vars(settings), arms=rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
