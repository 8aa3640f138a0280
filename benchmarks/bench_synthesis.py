"""Benchmark the embedded corpus generator: wall seconds per minute of corpus, plus its calibration numbers.

    python benchmarks/bench_synthesis.py [OUT.json] [--speakers 4 --clips 8 --seconds 20 --seed 0]

OUT defaults to results/benchmarks/synthesis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from omniges.data import synthetic as syn
from omniges.data.kinematics import mean_joint_speeds
from omniges.data.store import write_json_atomic


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _coupling(clip: syn.SyntheticClip, lag_s: float = 2.0) -> tuple[float, float]:
    """Onset strength vs arm speed correlation at lag 0, and the larger one with the audio shifted +-lag_s."""
    import librosa
    from scipy.ndimage import gaussian_filter1d

    audio = clip.audio.astype(np.float32) / 32768
    onset = librosa.onset.onset_strength(y=audio, sr=syn.SR, hop_length=160)
    frames = np.arange(len(clip.poses)) / syn.FPS
    env = gaussian_filter1d(np.interp(frames, np.arange(len(onset)) / 100, onset), 6)
    arm = np.gradient(clip.poses[:, 48:66].astype(np.float64), axis=0)
    speed = gaussian_filter1d(np.linalg.norm(arm, axis=1), 6)
    lag = int(lag_s * syn.FPS)
    middle = speed[lag:-lag]
    return _corr(env[lag:-lag], middle), max(_corr(env[: -2 * lag], middle), _corr(env[2 * lag :], middle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/synthesis.json")
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "beat"
        start = time.perf_counter()
        summary = syn.synthesize_corpus(
            root, speakers=args.speakers, clips_per_speaker=args.clips, clip_seconds=args.seconds,
            seed=args.seed,
        )
        wall = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20

    ratios, couplings = [], []
    for style in syn.speaker_styles(args.speakers):
        clip = syn.synthesize_clip(style, seconds=args.seconds, seed=args.seed)
        ratios.append(mean_joint_speeds(clip.poses, clip.trans) / syn.BEAT2_MEAN_VEL)
        couplings.append(_coupling(clip))
    ratio, coupling = np.array(ratios), np.array(couplings)
    result = {
        "corpus_minutes": summary["minutes"],
        "clips": summary["clips"],
        "wall_seconds": wall,
        "seconds_per_corpus_minute": wall / summary["minutes"],
        "corpus_mb": size_mb,
        "speed_ratio_to_beat2_mean_vel": {
            "min": float(ratio.min()), "median": float(np.median(ratio)), "max": float(ratio.max()),
        },
        "onset_arm_speed_corr": {
            "lag0": float(coupling[:, 0].mean()), "shift_2s": float(coupling[:, 1].mean()),
        },
        "machine": {
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS", ""),
        },
        "params": {k: v for k, v in vars(args).items() if k != "out"},
    }
    out = Path(args.out)
    write_json_atomic(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
