"""A2G generation speed: real-time factor (seconds of motion per wall second), batch 1, features precomputed.

Random weights; WavLM / MFCC (and text) features are given, so the timing is the generator alone (audio fusion
+ MMDiT steps), without feature extraction or RVQVAE decoding. Writes JSON (default
results/benchmarks/generation.json). Reference: GestureLSM's MeanFlow sampler runs about 47x real time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from omniges.models.flow import RectifiedFlow
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel, count_parameters

GESTURE_LSM_MEANFLOW_RTF = 47.0


def a2g_conditions(config: OmnigesConfig, seconds: float, *, with_text: bool) -> dict[str, torch.Tensor]:
    """Random precomputed features for one clip: WavLM + MFCC at 30 fps, per-latent-frame text features."""
    frames = round(seconds * config.motion_fps)
    tokens = frames // config.frames_per_token
    cond = dict(wavlm=torch.randn(1, frames, config.wavlm_dim), mfcc=torch.randn(1, frames, config.mfcc_dim))
    if with_text:
        cond["text"] = torch.randn(1, tokens, config.text_feature_dim)
    return cond


def time_sampling(
    model: OmnigesTransformerModel, cond: dict[str, torch.Tensor], *, steps: int, guidance: float, repeats: int
) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of `repeats` A2G samples after one warm-up."""
    flow = RectifiedFlow()
    run = lambda: flow.sample(model, "a2g", cond, steps=steps, guidance=guidance,  # noqa: E731
                              generator=torch.Generator().manual_seed(0))
    run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def benchmark(sizes: list[str], *, seconds: float, repeats: int, steps_list: list[int]) -> list[dict[str, Any]]:
    """One row per (size, text present, steps, guidance)."""
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        config = getattr(OmnigesConfig, size)()
        model = OmnigesTransformerModel(config).eval()
        cases = [(text, steps, 1.0) for text in (False, True) for steps in steps_list] + [(False, 1, 2.0)]
        for with_text, steps, guidance in cases:
            cond = a2g_conditions(config, seconds, with_text=with_text)
            with torch.inference_mode():
                wall, cpu = time_sampling(model, cond, steps=steps, guidance=guidance, repeats=repeats)
            median = statistics.median(wall)
            rows.append(dict(
                size=size, parameters=count_parameters(model), transcript=with_text, steps=steps,
                guidance=guidance, gesture_tokens=round(seconds * config.tokens_per_second),
                seconds_of_motion=seconds, wall_seconds_median=median, wall_seconds_all=wall,
                cpu_seconds_median=statistics.median(cpu), real_time_factor=seconds / median,
                real_time_factor_best=seconds / min(wall),
            ))
            print(f"{size:5s} text={with_text!s:5s} steps={steps} cfg={guidance}: {median * 1000:8.1f} ms "
                  f"-> {seconds / median:7.1f}x real time", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, write JSON atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/generation.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=["demo", "full"], choices=["demo", "full"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4])
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = benchmark(args.sizes, seconds=args.seconds, repeats=args.repeats, steps_list=args.steps)
    result = dict(
        task="a2g", batch=1, threads=args.threads, torch=torch.__version__, machine=platform.machine(),
        processor=platform.processor() or platform.platform(), cpu_count=os.cpu_count(),
        load_average_before=load_before, load_average_after=os.getloadavg(),
        reference_real_time_factor=dict(gesture_lsm_meanflow=GESTURE_LSM_MEANFLOW_RTF),
        note="generator only: features precomputed, RVQVAE decoding not included; random weights",
        results=rows,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
