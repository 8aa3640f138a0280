"""Feature extraction speed (seconds of audio per wall second) and cache size (bytes per hour, fp16) -> JSON.

Usage: python benchmarks/bench_features.py [results/benchmarks/features.json] [--seconds 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from omniges.constants import FPS
from omniges.data.store import write_json_atomic
from omniges.features.audio import SAMPLE_RATE, WavLMFeatures, mfcc, n_motion_frames

WAVLM_DIM, MFCC_DIM, MINILM_DIM = 768, 128, 384


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic noise, so no stage can take a silent-input shortcut: (n,) float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.1 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def rate(fn, seconds_audio: float, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` wall time of fn() and the resulting seconds of audio per wall second."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    best = min(walls)
    return {"audio_seconds": seconds_audio, "wall_seconds_best": best, "wall_seconds_all": walls,
            "audio_seconds_per_wall_second": seconds_audio / best}


def bytes_per_hour(dims: int, fps: int = FPS, bytes_per_value: int = 2) -> int:
    """Cache bytes for one hour of per-frame features of width `dims` (fp16 by default)."""
    return dims * bytes_per_value * fps * 3600


def main() -> None:
    """Run both speed benchmarks and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default="results/benchmarks/features.json")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio length for the WavLM timing")
    parser.add_argument("--mfcc-seconds", type=float, default=300.0, help="audio length for the MFCC timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    wave = speech_like(args.seconds)
    wavlm = WavLMFeatures.random_init(0, "base", device=args.device)
    wavlm.extract(wave[: 2 * SAMPLE_RATE], 60)  # warm-up (allocator, kernels)
    n_frames = n_motion_frames(wave.size)
    wavlm_speed = rate(lambda: wavlm.extract(wave, n_frames, FPS), args.seconds, args.repeats)

    long_wave = speech_like(args.mfcc_seconds, seed=1)
    mfcc(long_wave[:SAMPLE_RATE])  # warm-up (librosa filterbank import)
    mfcc_speed = rate(lambda: mfcc(long_wave, fps=FPS), args.mfcc_seconds, args.repeats)

    report = {
        "wavlm_base_random_init": {**wavlm_speed, "threads": args.threads, "device": args.device,
                                   "chunk_frames_50hz": wavlm.chunk_frames,
                                   "params_millions": sum(p.numel() for p in wavlm.model.parameters()) / 1e6},
        "mfcc_128": {**mfcc_speed, "threads": "numpy/scipy default"},
        "cache_bytes_per_hour_fp16": {
            "wavlm_768": bytes_per_hour(WAVLM_DIM), "mfcc_128": bytes_per_hour(MFCC_DIM),
            "audio_total_896": bytes_per_hour(WAVLM_DIM + MFCC_DIM),
            "audio_total_896_mib": bytes_per_hour(WAVLM_DIM + MFCC_DIM) / 2**20,
            "with_minilm_text_1280": bytes_per_hour(WAVLM_DIM + MFCC_DIM + MINILM_DIM),
        },
        "fps": FPS,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_average_1min": os.getloadavg()[0]},
    }
    path = Path(args.path)
    write_json_atomic(path, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
