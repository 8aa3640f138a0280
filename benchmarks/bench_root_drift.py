"""Root drift over a long A2G generation: horizontal offset of the root from its start, as generated (velocities
integrated) and re-centred by `generation.root_horizon_s`, next to the embedded speaker's own path.

Usage: python benchmarks/bench_root_drift.py --workdir DIR [results/benchmarks/root_drift.json] [--minutes 10]
DIR holds a trained run (results/models/a2g/model.pt, results/rvqvae/, data/cache/): `make demo` or any pipeline.
The speech is embedded-corpus audio of speaker 2 from a seed the corpus does not use.
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

from omniges.data import synthetic
from omniges.data.body import bound_root_drift
from omniges.data.store import write_json_atomic
from omniges.inference import GenerationSettings, Omniges

HORIZONS_S = (0.0, 10.0, 30.0)


def drift(trans: np.ndarray, fps: int = 30) -> dict[str, float]:
    """Horizontal (x, z) distance of the root from its first frame: at 1, 5, 10 min, the end and the maximum."""
    offset = np.linalg.norm(trans[:, [0, 2]] - trans[0, [0, 2]], axis=1)
    out = {f"offset_m_at_{m}_min": float(offset[min(m * 60 * fps, len(offset) - 1)]) for m in (1, 5, 10)}
    steps = np.linalg.norm(np.diff(trans[:, [0, 2]], axis=0), axis=1)
    return out | {"offset_m_end": float(offset[-1]), "offset_m_max": float(offset.max()),
                  "horizontal_speed_m_per_s": float(steps.mean() * fps)}


def main() -> None:
    """Generate once with plain integration, re-centre with each horizon, write one JSON record."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", nargs="?", default="results/benchmarks/root_drift.json")
    parser.add_argument("--workdir", default=".", help="Folder with results/ and data/cache of a trained run.")
    parser.add_argument("--experiment", default="a2g")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = Path(args.output).resolve()
    os.chdir(args.workdir)

    clip = synthetic.synthesize_clip(synthetic.speaker_styles(1)[0], seconds=args.minutes * 60, seed=7, index=99)
    wave = clip.audio.astype(np.float32) / 32767.0
    settings = GenerationSettings.from_params("params.yaml")
    settings.root_horizon_s = 0.0
    model = Omniges.load(Path("results/models") / args.experiment / "model.pt", cache_dir="data/cache",
                         rvqvae_dir="results/rvqvae", settings=settings)
    start = time.perf_counter()
    motion = model.a2g(wave)
    seconds = time.perf_counter() - start
    record = {
        "benchmark": "root_drift",
        "experiment": args.experiment,
        "audio_s": len(wave) / synthetic.SR,
        "generation_s": seconds,
        "threads": args.threads,
        "platform": platform.platform(),
        "embedded_speaker_ground_truth": drift(clip.trans),
        **{f"generated_root_horizon_{h:g}s": drift(bound_root_drift(motion["trans"], h * 30)) for h in HORIZONS_S},
    }
    write_json_atomic(output, record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
