"""Live A2G (omniges.streaming): latency, compute and quality against offline generation, per lookahead.

For each lookahead (default 0, 0.25, 0.5, 1 s) at the default hop, batch 1, on `--threads` CPU threads:

- speed, at demo size (the trained checkpoint) and full size (random weights, base-size random-init WavLM, whose
  cost equals wavlm-base-plus's): 60 s of speech pushed in 20 ms chunks; per frame, the time from its speech
  sample's arrival to its emission (median, p95), the first frame's, and the compute per second of speech
  (below 1 keeps up; margin = 1 / it). Emission times are simulated from each hop's measured compute, with a
  hop waiting for its speech and for the hop before it (`omniges.streaming.emission_times`);
- quality, demo size, on the corpus's test split: sync_z, FGD, L1div with 95% bootstrap intervals for offline
  generation and each lookahead, beside ground truth and the random-train-clip floor, and the seam ratio (mean
  acceleration at the frames where hops meet over the mean elsewhere; 1 = no seam);
- a long stream (`--long-minutes`, demo size): per-hop compute and resident memory per minute, and their change
  from the second minute to the last (flat when nothing grows with the stream's length).

Steps per hop follow `StreamSettings` (generation.steps, 2) unless `--steps`: the full size on 2 CPU threads
keeps up at `--steps 1` (results/benchmarks/streaming_full*.json: `--sizes full --steps 1 --repeats 3`).
`--dtype float32` forces float32 generation: the stand-in for CPUs without native bfloat16 (say so beside the
numbers). Writes JSON and a PNG (default results/benchmarks/streaming.{json,png}).

    python benchmarks/bench_streaming.py [--checkpoint results/models/multitask/model.pt] [--clips 24]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.bench_end_to_end import build, speech_like
from omniges.constants import SAMPLE_RATE
from omniges.data.dataset import FRAMES_PER_TOKEN
from omniges.data.store import LmdbReader, write_json_atomic
from omniges.inference import GenerationSettings, Omniges
from omniges.streaming import StreamSettings, concatenate, latency_report, stream_a2g

CHUNK = SAMPLE_RATE // 50  # 20 ms pushes


def cpu_flags() -> list[str]:
    """The CPU's SIMD flags that decide the speed (AVX2, AVX-512, bf16 / AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))


def chunks(wave: np.ndarray) -> list[np.ndarray]:
    return [wave[i:i + CHUNK] for i in range(0, len(wave), CHUNK)]


def settings_for(lookahead: float, options: dict[str, Any]) -> StreamSettings:
    """The stream settings of one run: the lookahead, and the options given on the command line."""
    return StreamSettings(lookahead=lookahead, **{k: v for k, v in options.items() if v is not None})


def speed(model: Omniges, lookahead: float, seconds: float, options: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Latency report of one stream of `seconds` of speech-like audio."""
    results = list(stream_a2g(model, chunks(speech_like(seconds, seed)), settings_for(lookahead, options), seed=seed))
    return latency_report(results)


def seam_ratio(poses: np.ndarray, hop_frames: int) -> float:
    """Mean joint-angle acceleration at the frames where hops meet over the mean elsewhere."""
    accel = np.linalg.norm(poses[2:] - 2 * poses[1:-1] + poses[:-2], axis=1)  # accel[i] at frame i + 1
    frames = np.arange(1, len(poses) - 1)
    seam = (frames % hop_frames == 0) | (frames % hop_frames == hop_frames - 1)
    return float(accel[seam].mean() / max(accel[~seam].mean(), 1e-12))


def quality(model: Omniges, cache: Path, evaluator_path: Path, lookaheads: list[float], clips: int,
            resamples: int, options: dict[str, Any], split: str = "test") -> dict[str, Any]:
    """Offline and streamed A2G on one split (choices on val, reports on test), scored as evaluate scores A2G."""
    from omniges.evaluation import report
    from omniges.evaluation.evaluate import test_motions, train_mean_velocity, train_motion_pool
    from omniges.evaluation.evaluator import load_evaluator
    from omniges.evaluation.metrics import bootstrap_ci

    reader = LmdbReader(cache / "clips.lmdb")
    refs = list(test_motions(reader, split).values())[:clips or None]
    kwargs = {"evaluator": load_evaluator(evaluator_path), "mean_vel": train_mean_velocity(reader)}
    keys = ("sync_z", "fgd", "l1div")
    rows: dict[str, Any] = {}
    hop_frames = StreamSettings().hop_tokens * FRAMES_PER_TOKEN

    def scored(name: str, motions: list[report.Motion], seams: list[float] | None = None) -> None:
        stats = report.gesture_stats(refs, motions, **kwargs)
        row = {k: v for k, v in stats.score().items() if k in keys}
        ci = bootstrap_ci(stats.score, len(refs), resamples=resamples) if resamples else {}
        rows[name] = {**row, "ci": {k: v for k, v in ci.items() if k in keys},
                      **({"seam_ratio": float(np.mean(seams))} if seams else {})}

    offline = [model.a2g(m.audio) for m in refs]
    scored("offline", [report.Motion(o["poses"], o["expressions"]) for o in offline],
           [seam_ratio(o["poses"], hop_frames) for o in offline])  # offline has no hops: the ratio's noise level
    for lookahead in lookaheads:
        streamed = [concatenate(stream_a2g(model, chunks(m.audio), settings_for(lookahead, options))) for m in refs]
        scored(f"stream_{lookahead:g}s", [report.Motion(s["poses"], s["expressions"]) for s in streamed],
               [seam_ratio(s["poses"], hop_frames) for s in streamed])
    scored("ground_truth", refs)
    scored("random_clip", report.random_clip_baseline(refs, train_motion_pool(reader)))
    return {"split": split, "clips": len(refs), "rows": rows}


def rss_mb() -> float:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_stream(model: Omniges, minutes: float, options: dict[str, Any], lookahead: float = 0.5) -> dict[str, Any]:
    """Per-minute hop compute (median) and resident memory over a stream of `minutes` of speech."""
    from omniges.streaming import A2GStream

    stream = A2GStream(model, settings_for(lookahead, options), seed=0)
    minute = speech_like(60.0)
    per_minute = []
    for _ in range(max(1, round(minutes))):
        hops = [r["compute_seconds"] for piece in chunks(minute) for r in stream.push(piece)]
        per_minute.append({"hop_compute_median_s": float(np.median(hops)), "rss_mb": rss_mb(),
                           "audio_buffer_samples": len(stream.audio), "latent_tokens": stream.latents.shape[1]})
    stream.finish()
    first = per_minute[min(1, len(per_minute) - 1)]
    last = per_minute[-1]
    return {"minutes": len(per_minute), "per_minute": per_minute,
            "rss_change_mb": last["rss_mb"] - first["rss_mb"],
            "hop_compute_change": last["hop_compute_median_s"] / max(first["hop_compute_median_s"], 1e-9)}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for size, runs in result["speed"].items():
        la = [r["lookahead_s"] for r in runs]
        axes[0].plot(la, [r["latency_median_s"] for r in runs], "o-", label=f"{size}: median")
        axes[0].plot(la, [r["latency_p95_s"] for r in runs], "s--", label=f"{size}: p95")
    axes[0].plot([0, 1], [0.5, 1.5], ":", color="grey", label="target: lookahead + 0.5 s")
    axes[0].set(xlabel="lookahead (s)", ylabel="speech-to-motion latency (s)", title="latency")
    axes[0].legend(fontsize=8)
    rows = result.get("quality", {}).get("rows", {})
    streamed = sorted((float(k.split("_")[1].rstrip("s")), v) for k, v in rows.items() if k.startswith("stream_"))
    if streamed:
        x = [s for s, _ in streamed]
        y = [v["sync_z"] for _, v in streamed]
        err = np.array([[v["sync_z"] - v["ci"]["sync_z"][0], v["ci"]["sync_z"][1] - v["sync_z"]]
                        for _, v in streamed]).T if all("sync_z" in v["ci"] for _, v in streamed) else None
        axes[1].errorbar(x, y, yerr=err, fmt="o-", label="stream")
        for name, style in (("offline", "-"), ("ground_truth", "--"), ("random_clip", ":")):
            if name in rows:
                axes[1].axhline(rows[name]["sync_z"], linestyle=style, color="grey", label=name)
        axes[1].set(xlabel="lookahead (s)", ylabel="sync_z", title="speech-motion sync (test split)")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("results/models/multitask/model.pt"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--rvqvae", type=Path, default=Path("results/rvqvae"))
    parser.add_argument("--evaluator", type=Path, default=Path("results/evaluator.pth"))
    parser.add_argument("--lookaheads", default="0,0.25,0.5,1")
    parser.add_argument("--quality-lookaheads", default=None, help="lookaheads scored on --split "
                        "(default: --lookaheads)")
    parser.add_argument("--sizes", default="demo,full")
    parser.add_argument("--seconds", type=float, default=60.0, help="speech per speed run")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs per lookahead (the median is kept)")
    parser.add_argument("--clips", type=int, default=0, help="test clips for quality (0: all; -1: skip quality)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--long-minutes", type=float, default=30.0, help="long stream at demo size (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--quantize", default=None, choices=("auto", "int8", "none"),
                        help="generator linear layers (default: params)")
    parser.add_argument("--feature-context", type=float, default=None, help="StreamSettings.feature_context (s)")
    parser.add_argument("--split", default="test", choices=("val", "test"), help="quality split (tune on val)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps per hop (default: params)")
    parser.add_argument("--window", type=int, default=None, help="window_tokens per hop (default: StreamSettings)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/streaming"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lookaheads = [float(v) for v in args.lookaheads.split(",")]
    settings = dataclasses.replace(GenerationSettings.from_params(), dtype=args.dtype)
    if args.quantize:
        settings = dataclasses.replace(settings, quantize=args.quantize)
    options = {"steps": args.steps, "window_tokens": args.window, "feature_context": args.feature_context}
    used = settings_for(0.0, options)
    result: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "flags": cpu_flags(),
                    "threads": args.threads, "dtype": args.dtype, "quantize": settings.quantize,
                    "torch": torch.__version__},
        "hop_s": used.hop_s, "speed": {},
        "stream_options": {"steps": used.steps or settings.steps, "window_tokens": used.window_tokens,
                           "feature_context": used.feature_context}}
    models: dict[str, Omniges] = {}
    for size in args.sizes.split(","):
        if size == "demo":
            models[size] = Omniges.load(args.checkpoint, cache_dir=args.cache, rvqvae_dir=args.rvqvae,
                                        settings=settings)
        else:
            models[size] = build(settings, layer="auto")  # base-size WavLM: layer 6
        speed(models[size], 0.0, 2.0, options)  # warm-up: lazy WavLM, first-call allocations
        rounds: dict[float, list[dict[str, Any]]] = {lookahead: [] for lookahead in lookaheads}
        for _ in range(args.repeats):  # round robin, so a slow spell of the machine hits every lookahead alike
            for lookahead in lookaheads:
                began = time.perf_counter()
                rounds[lookahead].append({"lookahead_s": StreamSettings(lookahead=lookahead).lookahead_s,
                                          **speed(models[size], lookahead, args.seconds, options),
                                          "wall_s": time.perf_counter() - began})
                print(size, rounds[lookahead][-1])
        runs = []
        for reps in rounds.values():  # the repeat with the median compute, and the spread of all
            reps = sorted(reps, key=lambda r: r["compute_per_speech_second"])
            runs.append({**reps[len(reps) // 2], "repeats": len(reps),
                         "compute_per_speech_second_all": [r["compute_per_speech_second"] for r in reps]})
        result["speed"][size] = runs
    if "demo" in models and args.clips >= 0:
        scored = [float(v) for v in args.quality_lookaheads.split(",")] if args.quality_lookaheads else lookaheads
        result["quality"] = quality(models["demo"], args.cache, args.evaluator, scored, args.clips,
                                    args.resamples, options, args.split)
        print(result["quality"])
    if "demo" in models and args.long_minutes > 0:
        result["long_stream"] = long_stream(models["demo"], args.long_minutes, options)
        print({k: v for k, v in result["long_stream"].items() if k != "per_minute"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out.with_suffix(".json"), result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out.with_suffix('.json')} and .png")


if __name__ == "__main__":
    main()
