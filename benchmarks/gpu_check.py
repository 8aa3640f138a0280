"""GPU check: the numbers a GPU user needs, in one command (under 8 minutes on one GPU) -> JSON.

    python benchmarks/gpu_check.py [results/benchmarks/gpu_check.json] [--device cuda] [--smoke]

Measures, with random weights and inputs (speed does not depend on them):
- a bf16 matmul peak (FLOP/s), measured in the same run as the training it is compared with;
- full-size generator training in bf16 autocast (A2G, 96-token windows): samples/s and achieved FLOP/s
  (counted by torch's FlopCounterMode) as a fraction of that peak;
- peak memory of that training step with and without gradient checkpointing at batch 8 and 32;
- RVQVAE training steps/s at batch 256 (GestureLSM's full-size tokenizer, the real `train_rvqvae` loop);
- A2G real-time factor end to end from features (generator in windows, four RVQVAE decoders, SMPL-X arrays) at
  batch 1 and 16, at the default settings (params.yaml `generation`) and at 1 step;
- WavLM base-size feature extraction speed (seconds of audio per wall second).
`--smoke` runs every path at toy sizes (demo model, tiny WavLM) so the script is tested on a CPU.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_generation import random_processor
from torch.utils.flop_counter import FlopCounterMode

from omniges.data.body import part_dim
from omniges.data.store import write_json_atomic
from omniges.device import autocast, native_bfloat16, resolve_device
from omniges.features.audio import SAMPLE_RATE, WavLMFeatures
from omniges.inference import GenerationSettings
from omniges.models.flow_loss import FlowLoss
from omniges.models.flow_sampler import FlowSampler
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel, count_parameters
from omniges.tokenizer.rvqvae import RVQVAE
from omniges.tokenizer.training import train_rvqvae

FULL = dict(size="full", tokens=96, train_batch=16, memory_batches=(8, 32), train_steps=10, rvq_batch=256,
            rvq_width=512, rvq_steps=40, clip_seconds=60.0, a2g_batches=(1, 16), wavlm="base", wavlm_seconds=60.0,
            matmul=8192, repeats=3)
SMOKE = dict(size="demo", tokens=8, train_batch=2, memory_batches=(1, 2), train_steps=1, rvq_batch=8, rvq_width=32,
             rvq_steps=2, clip_seconds=4.0, a2g_batches=(1, 2), wavlm="tiny", wavlm_seconds=2.0, matmul=128,
             repeats=1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Best wall seconds of `repeats` calls of fn after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated GPU memory since the last reset (None on the CPU, where torch keeps no such counter)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> dict[str, Any]:
    """FLOP/s of an n x n x n matmul in `dtype` (the reference for the training's fraction of peak)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    calls = 10
    seconds = timed(lambda: [a @ b for _ in range(calls)], device, repeats)
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "flops": calls * 2 * n**3 / seconds}


def a2g_batch(config: OmnigesConfig, batch: int, tokens: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random normalised A2G training inputs (gesture latents, WavLM, MFCC, text) of `tokens` gesture tokens."""
    frames = tokens * config.frames_per_token
    ones = torch.ones(batch, tokens, dtype=torch.bool, device=device)
    return {
        "gesture": torch.randn(batch, tokens, config.gesture_latent_dim, device=device), "gesture_mask": ones,
        "wavlm": torch.randn(batch, frames, config.wavlm_dim, device=device),
        "mfcc": torch.randn(batch, frames, config.mfcc_dim, device=device),
        "audio_mask": torch.ones(batch, frames, dtype=torch.bool, device=device),
        "text": torch.randn(batch, tokens, config.text_feature_dim, device=device), "text_mask": ones,
    }


def training(device: torch.device, dtype: torch.dtype, *, size: str, batch: int, tokens: int, steps: int,
             checkpointing: bool, repeats: int) -> dict[str, Any]:
    """One generator training step (flow + shortcut losses, AdamW) under autocast: speed, FLOPs, peak memory."""
    torch.manual_seed(0)
    config = getattr(OmnigesConfig, size)(gradient_checkpointing=checkpointing)
    model = OmnigesTransformerModel(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    flow, data = FlowLoss(), a2g_batch(config, batch, tokens, device)
    generator = torch.Generator(device).manual_seed(0)

    def step() -> None:
        with autocast(device, dtype):
            losses = flow.training_step(model, data, "a2g", generator=generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()

    step()
    reset_peak(device)
    with FlopCounterMode(display=False) as counter:
        step()
    memory = peak_memory_mb(device)
    seconds = timed(lambda: [step() for _ in range(steps)], device, repeats) / steps
    return {"size": size, "parameters": count_parameters(model), "batch": batch, "gesture_tokens": tokens,
            "gradient_checkpointing": checkpointing, "seconds_per_step": seconds, "samples_per_second": batch / seconds,
            "flops_per_step": counter.get_total_flops(), "achieved_flops": counter.get_total_flops() / seconds,
            "peak_memory_mb": memory}


def rvqvae_speed(device: torch.device, *, batch: int, width: int, steps: int, mixed_precision: str) -> dict[str, Any]:
    """Steps/s of the real RVQVAE training loop (upper body, 64-frame windows) at `batch`."""
    torch.manual_seed(0)
    model = RVQVAE(input_width=part_dim("upper"), width=width)
    windows = np.random.default_rng(0).standard_normal((max(4 * batch, 64), 64, part_dim("upper")), np.float32)
    metrics = train_rvqvae(model, windows, None, steps=steps, batch_size=batch, warmup_steps=1, progress=False,
                           log_every=steps, device=str(device), mixed_precision=mixed_precision)
    return {"batch": batch, "width": width, "steps": steps, "mixed_precision": mixed_precision,
            "steps_per_second": metrics["steps_per_second"], "windows_per_second": metrics["steps_per_second"] * batch}


def a2g_speed(device: torch.device, dtype: torch.dtype, *, size: str, batch: int, seconds: float, steps: int,
              guidance: float, settings: GenerationSettings, tokens: int, repeats: int) -> dict[str, Any]:
    """Real-time factor (seconds of motion per wall second, all clips of the batch) of A2G from features."""
    torch.manual_seed(0)
    config = getattr(OmnigesConfig, size)()
    model = OmnigesTransformerModel(config).eval().to(device, dtype)
    processor = random_processor(size, dtype).to(device)
    frames = round(seconds * config.motion_fps)
    cond = {k: v for k, v in a2g_batch(config, batch, frames // config.frames_per_token, device).items()
            if k in ("wavlm", "mfcc", "audio_mask")}
    flow = FlowSampler()

    def generate() -> None:
        with torch.inference_mode():
            latents = flow.generate_long(model, "a2g", cond, window=tokens, overlap=settings.overlap_tokens,
                                         steps=steps, guidance=guidance, generator=torch.Generator(device))
            parts = processor.decode_from_latents(latents, num_frames=frames)
            for clip in range(batch):
                processor.to_smplx({p: v[clip : clip + 1] for p, v in parts.items()})

    wall = timed(generate, device, repeats)
    return {"size": size, "batch": batch, "steps": steps, "guidance": guidance, "window_tokens": tokens,
            "seconds_per_clip": seconds, "dtype": str(dtype).removeprefix("torch."), "wall_seconds": wall,
            "real_time_factor": batch * seconds / wall}


def wavlm_speed(device: torch.device, *, config: str, seconds: float, repeats: int) -> dict[str, Any]:
    """WavLM (random init, `config` size) hidden states at the motion rate, seconds of audio per wall second."""
    wavlm = WavLMFeatures.random_init(0, config, device=device)
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    frames = int(seconds * 30)
    wall = timed(lambda: wavlm.extract(wave, frames), device, repeats)
    return {"config": config, "audio_seconds": seconds, "wall_seconds": wall, "audio_seconds_per_wall_second":
            seconds / wall, "params_millions": sum(p.numel() for p in wavlm.model.parameters()) / 1e6}


def run(device: torch.device, sizes: dict[str, Any], settings: GenerationSettings) -> dict[str, Any]:
    """Every measurement, printed as it completes."""
    dtype = torch.bfloat16 if native_bfloat16(device) else torch.float32
    report: dict[str, Any] = {"device": str(device), "autocast_dtype": str(dtype).removeprefix("torch.")}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    report["matmul_peak"] = matmul_peak(device, dtype, sizes["matmul"], sizes["repeats"])
    train = training(device, dtype, size=sizes["size"], batch=sizes["train_batch"], tokens=sizes["tokens"],
                     steps=sizes["train_steps"], checkpointing=False, repeats=sizes["repeats"])
    train["fraction_of_matmul_peak"] = train["achieved_flops"] / report["matmul_peak"]["flops"]
    report["training"] = train
    print(f"training: {train['samples_per_second']:.1f} samples/s, {train['fraction_of_matmul_peak']:.1%} of peak")
    report["training_memory"] = [
        {k: v for k, v in training(device, dtype, size=sizes["size"], batch=batch, tokens=sizes["tokens"], steps=1,
                                   checkpointing=checkpointing, repeats=1).items()
         if k in ("batch", "gradient_checkpointing", "peak_memory_mb", "samples_per_second")}
        for batch in sizes["memory_batches"] for checkpointing in (False, True)]
    print("memory (batch, checkpointing, MB):",
          [(m["batch"], m["gradient_checkpointing"], m["peak_memory_mb"]) for m in report["training_memory"]])
    precision = "bf16" if dtype == torch.bfloat16 else "no"
    report["rvqvae_training"] = rvqvae_speed(device, batch=sizes["rvq_batch"], width=sizes["rvq_width"],
                                             steps=sizes["rvq_steps"], mixed_precision=precision)
    print(f"rvqvae: {report['rvqvae_training']['steps_per_second']:.1f} steps/s")
    report["a2g"] = [
        a2g_speed(device, dtype, size=sizes["size"], batch=batch, seconds=sizes["clip_seconds"], steps=steps,
                  guidance=guidance, settings=settings, tokens=sizes["tokens"], repeats=sizes["repeats"])
        for batch in sizes["a2g_batches"] for steps, guidance in ((settings.steps, settings.guidance), (1, 1.0))]
    print("a2g real-time factor:", [(r["batch"], r["steps"], round(r["real_time_factor"], 1)) for r in report["a2g"]])
    report["wavlm"] = wavlm_speed(device, config=sizes["wavlm"], seconds=sizes["wavlm_seconds"],
                                  repeats=sizes["repeats"])
    print(f"wavlm: {report['wavlm']['audio_seconds_per_wall_second']:.1f}x real time")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/gpu_check.json")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: every code path, in seconds, on a CPU")
    parser.add_argument("--params", default="params.yaml", help="generation defaults (steps, guidance)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    start = time.perf_counter()
    report = run(device, SMOKE if args.smoke else FULL, GenerationSettings.from_params(args.params))
    report.update(smoke=args.smoke, seconds=time.perf_counter() - start, torch=torch.__version__,
                  machine=platform.machine())
    write_json_atomic(Path(args.out), report)
    print(f"wrote {args.out} in {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
