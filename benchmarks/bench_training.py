"""Benchmark a generator training step: samples/s, achieved FLOP/s as a fraction of a measured matmul peak,
and peak memory with and without gradient checkpointing (each case in its own process).

    python benchmarks/bench_training.py [OUT.json] [--threads 2 --steps 3]

OUT defaults to results/benchmarks/training.json. Random weights and random batches (speed does not depend
on them); a2g task, 10 s windows (75 gesture tokens, 300 audio frames).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from omniges.data.store import write_json_atomic

CASES = [("demo", False, 16), ("full", False, 2), ("full", True, 2), ("full", False, 4), ("full", True, 4)]


def run_case(size: str, checkpointing: bool, batch: int, steps: int, threads: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from omniges.models.flow_loss import FlowLoss
    from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = getattr(OmnigesConfig, size)(gradient_checkpointing=checkpointing)
    model = OmnigesTransformerModel(config)
    flow = FlowLoss()
    n = 75
    batch_data = {
        "gesture": torch.randn(batch, n, config.gesture_latent_dim), "gesture_mask": torch.ones(batch, n, dtype=bool),
        "wavlm": torch.randn(batch, 4 * n, 768), "mfcc": torch.randn(batch, 4 * n, 128),
        "audio_mask": torch.ones(batch, 4 * n, dtype=bool),
        "text": torch.randn(batch, n, config.text_feature_dim), "text_mask": torch.ones(batch, n, dtype=bool),
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        losses = flow.training_step(model, batch_data, "a2g", generator=torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()

    step()  # warm-up
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    a @ b
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    peak = 20 * 2 * 1024**3 / (time.perf_counter() - start)
    return {
        "size": size, "gradient_checkpointing": checkpointing, "batch": batch, "threads": threads,
        "seconds_per_step": seconds, "samples_per_second": batch / seconds, "flops_per_step": flops,
        "achieved_flops": flops / seconds, "matmul_peak_flops": peak, "fraction_of_peak": flops / seconds / peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/training.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        size, ckpt, batch = args.case.split(":")
        print(json.dumps(run_case(size, ckpt == "1", int(batch), args.steps, args.threads)))
        return
    rows = []
    for size, ckpt, batch in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", f"{size}:{int(ckpt)}:{batch}", "--steps",
                              str(args.steps), "--threads", str(args.threads)], capture_output=True, text=True,
                             check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1])
    result = {"rows": rows, "load_average": os.getloadavg()[0], "device": "cpu"}
    path = Path(args.out)
    write_json_atomic(path, result)


if __name__ == "__main__":
    main()
