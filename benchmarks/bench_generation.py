"""A2G generation speed: real-time factor (seconds of motion per wall second), batch 1, features precomputed.

Random weights (speed does not depend on them); WavLM / MFCC (and text) features are given. Two paths are timed:
- `end_to_end` (the number to compare): what `Omniges.a2g` runs after feature extraction: long generation in
  windows of `--window-tokens` (32: a model trained on 128-frame windows, the demo; 96: trained with
  `training.window: 384`, the full-size recommendation) overlapping by `generation.overlap_tokens`, decoding of
  all four parts by RVQVAEs of the same size class (GestureLSM's width 512 for `full`), and conversion to SMPL-X
  axis-angle arrays;
- `generator_only`: one `FlowSampler.sample` over the whole clip, no decoding.
Weights in `generation.dtype` as `Omniges` loads them (auto: bfloat16 on a CPU with native bf16), or `--dtype`.
Writes JSON (default results/benchmarks/generation.json). References measured on this machine kind with the
published architectures: GestureLSM MeanFlow 1 step ~47x, shortcut 2 steps ~27x, DDIM 20 steps ~4x, EMAGE ~14x.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from omniges.data.body import PART_NAMES, part_dim
from omniges.data.store import write_json_atomic
from omniges.inference import GenerationSettings, resolve_dtype
from omniges.models.flow_sampler import FlowSampler
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel, count_parameters
from omniges.tokenizer.processor import GestureProcessor
from omniges.tokenizer.rvqvae import RVQVAE

RVQVAE_SIZES = {"full": {}, "demo": dict(width=128, nb_code=256)}  # full: GestureLSM's; demo: params.yaml rvqvae

REFERENCE_RTF = dict(gesture_lsm_meanflow_1_step=47.0, gesture_lsm_shortcut_2_steps=27.0,
                     gesture_lsm_ddim_20_steps=4.0, emage=14.0)


def a2g_conditions(config: OmnigesConfig, seconds: float, *, with_text: bool) -> dict[str, torch.Tensor]:
    """Random precomputed features for one clip: WavLM + MFCC at 30 fps, per-latent-frame text features."""
    frames = round(seconds * config.motion_fps)
    tokens = frames // config.frames_per_token
    cond = dict(wavlm=torch.randn(1, frames, config.wavlm_dim), mfcc=torch.randn(1, frames, config.mfcc_dim))
    if with_text:
        cond["text"] = torch.randn(1, tokens, config.text_feature_dim)
    return cond


def random_processor(size: str, dtype: torch.dtype) -> GestureProcessor:
    """Four random RVQVAEs of the size class, identity normalisation, decoders in `dtype` (as `Omniges` has them)."""
    parts = {p: RVQVAE(input_width=part_dim(p), **RVQVAE_SIZES[size]).eval() for p in PART_NAMES}
    identity = {p: (0.0, 1.0) for p in PART_NAMES}
    processor = GestureProcessor(parts, stats=identity, latent_scale=dict.fromkeys(PART_NAMES, 1.0))
    processor.decoders_to(dtype)
    return processor


def a2g(model: OmnigesTransformerModel, processor: GestureProcessor, cond: dict[str, torch.Tensor], *, path: str,
        steps: int, guidance: float, frames: int, settings: GenerationSettings) -> Any:
    """One batch-1 A2G generation along `path` (generator_only or end_to_end)."""
    flow, generator = FlowSampler(), torch.Generator().manual_seed(0)
    if path == "generator_only":
        return flow.sample(model, "a2g", cond, steps=steps, guidance=guidance, generator=generator)
    latents = flow.generate_long(model, "a2g", cond, window=settings.window_tokens, overlap=settings.overlap_tokens,
                                 steps=steps, guidance=guidance, generator=generator)
    return processor.to_smplx(processor.decode_from_latents(latents, num_frames=frames))


def timed(run: Any, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of `repeats` calls after one warm-up."""
    run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def benchmark(sizes: list[str], *, seconds_list: list[float], windows: list[int], repeats: int,
              steps_list: list[int], settings: GenerationSettings) -> list[dict[str, Any]]:
    """One row per (size, clip length, window, path, text present, steps, guidance)."""
    rows = []
    dtype = resolve_dtype(settings.dtype)
    default = (settings.steps, settings.guidance)
    for size, seconds, window in ((a, b, c) for a in sizes for b in seconds_list for c in windows):
        settings = dataclasses.replace(settings, window_tokens=window)
        torch.manual_seed(0)
        config = getattr(OmnigesConfig, size)()
        model = OmnigesTransformerModel(config).eval().to(dtype)
        processor = random_processor(size, dtype)
        frames = round(seconds * config.motion_fps)
        cases = [("end_to_end", text, steps, 1.0) for text in (False, True) for steps in steps_list]
        cases += [("end_to_end", False, *default)] if default not in [(s, 1.0) for s in steps_list] else []
        cases += [("generator_only", False, steps, 1.0) for steps in steps_list] if window == windows[0] else []
        for path, with_text, steps, guidance in cases:
            cond = a2g_conditions(config, seconds, with_text=with_text)

            run = partial(a2g, model, processor, cond, path=path, steps=steps, guidance=guidance, frames=frames,
                          settings=settings)
            with torch.inference_mode():
                wall, cpu = timed(run, repeats)
            median = statistics.median(wall)
            rows.append(dict(
                size=size, path=path, window_tokens=window if path == "end_to_end" else None,
                parameters=count_parameters(model), dtype=str(dtype).removeprefix("torch."),
                transcript=with_text, steps=steps, guidance=guidance, default_settings=(steps, guidance) == default,
                gesture_tokens=round(seconds * config.tokens_per_second),
                seconds_of_motion=seconds, wall_seconds_median=median, wall_seconds_all=wall,
                cpu_seconds_median=statistics.median(cpu), real_time_factor=seconds / median,
                real_time_factor_best=seconds / min(wall),
            ))
            print(f"{size:5s} {seconds:4.0f} s w{window:<3d} {path:14s} text={with_text!s:5s} steps={steps} "
                  f"cfg={guidance}: "
                  f"{median * 1000:8.1f} ms "
                  f"-> {seconds / median:7.1f}x real time", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, write JSON atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/generation.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0], help="clip lengths")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=["demo", "full"], choices=["demo", "full"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--window-tokens", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], help="default: generation.dtype")
    args = parser.parse_args(argv)
    settings = GenerationSettings.from_params()  # what `omniges generate` uses
    if args.dtype:
        settings.dtype = args.dtype

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = benchmark(args.sizes, seconds_list=args.seconds, windows=args.window_tokens, repeats=args.repeats,
                     steps_list=args.steps, settings=settings)
    result = dict(
        task="a2g", batch=1, threads=args.threads, torch=torch.__version__, machine=platform.machine(),
        processor=platform.processor() or platform.platform(), cpu_count=os.cpu_count(),
        load_average_before=load_before, load_average_after=os.getloadavg(),
        reference_real_time_factor=REFERENCE_RTF, settings=vars(settings),
        note="features precomputed; end_to_end = windowed generation + RVQVAE decoding + SMPL-X; random weights",
        results=rows,
    )
    out = Path(args.out)
    write_json_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
