"""One function per pipeline stage: read params, call the library, log to MLflow. Stage CLIs call these."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from omniges.config import Params
from omniges.tracking import StageRun, stage_run

log = logging.getLogger("omniges")
CACHE = Path("data/cache")


def _run(stage: str, params: Params, sections: tuple[str, ...], device: str | None = None):
    """The stage's MLflow run (rank 0 only); computing stages pass the device they run on, logged as a param."""
    logged = {name: params.section(name) for name in sections}
    if device is not None:
        logged["device"] = device
    return stage_run(stage, params=logged, experiment=params.tracking.experiment, uri=params.tracking.uri)


def _device(params: Params) -> str:
    """compute.device resolved on this machine (e.g. 'cuda:0'); a one-line DeviceError when it cannot be had."""
    from omniges.device import resolve_device

    return str(resolve_device(params.compute.device))


def synthesize(params: Params) -> dict[str, Any]:
    """Write the embedded BEAT2-format corpus (a marker directory only when data.source = beat2)."""
    from omniges.data.synthetic import synthesize_corpus

    data = params.data
    out = Path(data.synthetic_root)
    with _run("synthesize", params, ("data",)) as run:
        if data.source != "synthetic":
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            (out / "UNUSED.txt").write_text("data.source is beat2: the embedded corpus is not generated.\n")
            return {"clips": 0}
        summary = synthesize_corpus(out, **data.synthetic.model_dump())
        run.log_metrics(summary)
    return summary


def preprocess(params: Params) -> dict[str, Any]:
    """BEAT2-layout corpus -> data/cache/clips.lmdb + stats.npz + preprocess_report.json."""
    from omniges.data.preprocess import preprocess_corpus

    data = params.data
    with _run("preprocess", params, ("data",)) as run:
        report = preprocess_corpus(
            data.root, CACHE, speakers=data.speakers, splits=data.splits, fps=data.fps, sr=data.audio_sr,
            tolerance_s=data.length_tolerance_s, face_jaw=data.face_jaw, workers=data.workers,
        )
        run.log_metrics({k: v for k, v in report.items() if k != "splits"})
        run.log_metrics({f"clips_{split}": count for split, count in report["splits"].items()})
        run.log_artifact(CACHE / "preprocess_report.json")
        if report["clips_skipped"]:
            log.warning("skipped clips:\n%s", json.dumps(report["skipped"], indent=1))
    return report


def features(params: Params) -> dict[str, Any]:
    """clips.lmdb -> features.lmdb + vocab.json (WavLM, MFCC, text states, word ids per motion frame)."""
    from omniges.features.audio import WavLMFeatures
    from omniges.features.extract import extract_features
    from omniges.features.text import TextEncoder

    cfg = params.features
    device = _device(params)
    with _run("features", params, ("features",), device) as run:
        wavlm = WavLMFeatures.from_params(**cfg.wavlm.model_dump(), device=device)
        if wavlm.random_init:
            run.set_tag("wavlm", "RANDOM INIT (no pretrained weights); set features.wavlm.path for real features")
        text = TextEncoder.from_params(path=cfg.text.path or None, device=device)
        report = extract_features(CACHE, wavlm=wavlm, text=text, n_mfcc=cfg.n_mfcc,
                                  vocab_min_count=cfg.vocab_min_count)
        report["device"] = device
        run.log_metrics(report)
        run.log_artifact(CACHE / "vocab.json")
    return report


def rvqvae(params: Params, part: str) -> dict[str, Any]:
    """Train (or import) the RVQVAE of one body part -> results/rvqvae/<part>.pth + <part>.json."""
    from omniges.tokenizer.stage import build_tokenizer

    cfg = params.rvqvae
    out = Path("results/rvqvae")
    device = _device(params)
    with _run(f"rvqvae_{part}", params, ("rvqvae",), device) as run:
        metrics = build_tokenizer(
            CACHE, out, part, model=cfg.model.model_dump(), train=cfg.train.model_dump(), window=cfg.window,
            stride=cfg.stride, face_jaw=params.data.face_jaw, import_path=getattr(cfg.import_, part),
            normalization=cfg.import_.normalization.model_dump(), device=params.compute.device,
            log_fn=lambda record: run.log_metrics(record, step=int(record["step"])),
        )
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        for key in ("perplexity", "codes_used", "code_usage", "dead_codes"):
            for layer, value in enumerate(metrics.get(f"val_report_{key}") or []):
                scalars[f"{key}_q{layer}"] = value
        run.log_metrics(scalars)
        run.log_artifact(out / f"{part}.json")
    angle = metrics.get("val_report_joint_angle_error_deg")
    log.info("rvqvae_%s: val joint-angle error %s deg", part, f"{angle:.2f}" if angle is not None else "n/a")
    return metrics


def cache_latents(params: Params) -> dict[str, Any]:
    """Encode every clip with the four part RVQVAEs -> data/cache/latents.lmdb (latents + codes)."""
    from omniges.tokenizer.stage import cache_latents as encode_all

    device = _device(params)
    with _run("cache_latents", params, ("rvqvae",), device) as run:
        summary = encode_all(CACHE, "results/rvqvae", face_jaw=params.data.face_jaw, device=device)
        scales = {f"latent_scale_{k}": v for k, v in summary["latent_scale"].items()}
        run.log_metrics({"clips": summary["clips"], **scales})
    return summary


def train_evaluator(params: Params) -> dict[str, Any]:
    """FGD feature extractor: train EMAGE's VAESKConv on the corpus, or import AESKConv_240_100.bin strictly."""
    import torch

    from omniges.data.dataset import WindowSource
    from omniges.data.store import LmdbReader
    from omniges.evaluation.evaluator import VAESKConv, load_evaluator, poses_to_rot6d, save_evaluator, train_evaluator

    cfg = params.evaluation.evaluator
    out = Path("results/evaluator.pth")
    device = _device(params)
    with _run("train_evaluator", params, ("evaluation",), device) as run:
        if cfg.import_:
            model = load_evaluator(cfg.import_, kintree_path=cfg.kintree or None)
            save_evaluator(model, out)
            summary: dict[str, Any] = {"imported": cfg.import_}
        else:
            windows = WindowSource(  # read on demand: memory does not grow with the corpus
                LmdbReader(CACHE / "clips.lmdb"), splits=("train", "additional"), length=cfg.window,
                stride=cfg.stride, path="poses", transform=poses_to_rot6d,
            )
            torch.manual_seed(cfg.seed)
            model = VAESKConv()
            result = train_evaluator(model, windows, steps=cfg.steps,
                                     batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=device)
            every = max(1, cfg.steps // 50)
            for step, loss in enumerate(result["loss_history"][::every]):
                run.log_metrics({"loss": loss}, step=step * every)
            summary = {"windows": len(windows), "device": device,
                       **{f"final_{k}": v for k, v in result["final"].items()}}
            save_evaluator(model, out)
        run.log_metrics(summary)
    return summary


def train(params: Params, experiment: str) -> dict[str, Any]:
    """Train the generator for one experiment -> results/models/<experiment>/model.pt + train_metrics.json."""
    from omniges.training.generator import train_generator

    cfg = params.training
    settings = cfg.experiment(experiment)  # a one-line error for an experiment params.yaml does not define
    out = Path("results/models") / experiment
    with _run(f"train_{experiment}", params, ("model", "flow", "training"), _device(params)) as run:
        summary = train_generator(
            experiment, cache_dir=CACHE, rvqvae_dir="results/rvqvae", out_dir=out, model=params.section("model"),
            training=settings, flow=params.section("flow"), loss=cfg.loss.model_dump(), window=cfg.window,
            stride=cfg.stride, min_window=cfg.min_window, batch_tokens=cfg.batch_tokens,
            face_jaw=params.data.face_jaw, features_params=params.section("features"), log_metrics=run.log_metrics,
            device=params.compute.device,
        )
        run.log_metrics(summary)
        run.log_artifact(out / "train_metrics.json")
        register_generator(run, experiment, out / "model.pt")
    return summary


def register_generator(run: StageRun, experiment: str, checkpoint: Path, *, cache_dir: Path = CACHE,
                       rvqvae_dir: Path = Path("results/rvqvae")) -> str | None:
    """Log a generator with what loading it needs (tokenizer, stats, vocabulary) as model `omniges-<experiment>`.

    A version downloaded to D loads with `Omniges.load(D / 'model.pt', cache_dir=D / 'cache', rvqvae_dir=D / 'rvqvae')`.
    """
    run.log_artifact(checkpoint, "model")
    for path in (cache_dir / "stats.npz", cache_dir / "vocab.json"):
        run.log_artifact(path, "model/cache")
    run.log_artifact(rvqvae_dir, "model/rvqvae")
    return run.register_model(f"omniges-{experiment}", "model",
                              description=f"Omniges generator of experiment {experiment} (results/models/{experiment})")


def _load_model(params: Params, experiment: str):
    from omniges.inference import GenerationSettings, Omniges

    return Omniges.load(Path("results/models") / experiment / "model.pt", cache_dir=CACHE,
                        rvqvae_dir="results/rvqvae", settings=GenerationSettings(**params.section("generation")),
                        device=params.compute.device)


def evaluate(params: Params, experiment: str) -> dict[str, Any]:
    """Metrics of one experiment on the `evaluation.split` clips, reference rows, CIs -> results/metrics/<exp>.json."""
    import numpy as np

    from omniges.evaluation.evaluate import evaluate_experiment

    cfg = params.evaluation
    out = Path("results/metrics") / f"{experiment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    device = _device(params)
    with _run(f"evaluate_{experiment}", params, ("evaluation", "generation"), device) as run:
        results = evaluate_experiment(
            _load_model(params, experiment), cache_dir=CACHE, evaluator_path="results/evaluator.pth", out_json=out,
            mean_vel=np.load(cfg.mean_vel) if cfg.mean_vel else None, max_clips=cfg.max_clips or None,
            split=cfg.split, seed_frames=cfg.seed_frames, bootstrap=cfg.bootstrap, bootstrap_seed=cfg.bootstrap_seed,
        )
        for task, rows in results["tasks"].items():
            for row, values in rows.items():
                run.log_metrics({f"{task}/{row}/{k}": v for k, v in values.items()})
                bounds = results["ci"][task].get(row, {})
                run.log_metrics({f"{task}/{row}/{k}_ci_{end}": b[i] for k, b in bounds.items()
                                 for i, end in enumerate(("lo", "hi"))})
        for path in out.parent.glob(f"{experiment}_*"):
            run.log_artifact(path, "report")
        run.log_artifact(out)
    return results


def render(params: Params, experiment: str) -> list[Path]:
    """Side-by-side comparison videos with sound for a few test clips -> results/videos/<experiment>/."""
    from omniges.render.compare import render_experiment

    cfg = params.section("render")
    out = Path("results/videos") / experiment
    with _run(f"render_{experiment}", params, ("render", "generation"), _device(params)) as run:
        videos = render_experiment(_load_model(params, experiment), cache_dir=CACHE, out_dir=out, **cfg)
        run.log_metrics({"videos": len(videos)})
        run.log_artifact(out, "videos")
    log.info("videos: %s", ", ".join(str(v) for v in videos))
    return videos
