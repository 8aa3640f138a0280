"""End-to-end A2G speed from a wav file: real-time factor (seconds of speech per wall second), batch 1.

What `omniges generate --audio` runs, timed from the file: load + resample, WavLM (base size, 12 layers: what a
wavlm-base-plus user runs; random init costs the same as real weights) + MFCC, windowed generation, decoding of
all four parts and conversion to SMPL-X. Full-size generator, GestureLSM-width RVQVAEs, random weights, 96-token
windows (`training.window: 384`, the full-size recommendation), the generation settings of params.yaml
(default 2 steps, CFG 1.5). `--variants` time configurations side by side, repeats interleaved (round robin) so
that load from other processes hits every variant alike; medians are reported. Writes JSON (default
results/benchmarks/end_to_end.json) with the reference figures below and each variant's ratio to GestureLSM
MeanFlow's 23.1x end to end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from benchmarks.bench_generation import random_processor
from omniges.data.body import PART_NAMES
from omniges.data.store import write_json_atomic
from omniges.features.audio import SAMPLE_RATE, WAVLM_DIM, WAVLM_HOP, default_batch_chunks, load_audio
from omniges.features.text import Vocabulary
from omniges.inference import GenerationSettings, Omniges, resolve_dtype
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel, count_parameters

# measured side by side on this machine kind (2 threads, batch 1, 60 s clip, random weights)
REFERENCE = dict(
    gesture_lsm_end_to_end_meanflow=23.1,
    omniges_end_to_end_default_before=4.0,
    omniges_end_to_end_1_step_before=4.6,
    features_precomputed=dict(gesture_lsm_meanflow_1_step=34.8, gesture_lsm_shortcut_2_steps_cfg2=20.1,
                              omniges_full_w96_1_step_bf16=51.9, omniges_full_w96_default=19.6,
                              omniges_full_w32_default=9.3, omniges_full_w96_1_step_fp32=32.2),
    wavlm_base_plus_mfcc_seconds_per_60s=12.0, gesture_lsm_onset_amplitude_seconds_per_60s=0.9,
)
TARGET = REFERENCE["gesture_lsm_end_to_end_meanflow"]

# `before`: the unoptimised inference path (WavLM float32, 30 s chunks, the mmdit package's block forward)
VARIANTS: dict[str, dict[str, Any]] = {
    "before": dict(wavlm_dtype="float32", chunk_s=30.0, fused=False),
    "wavlm_bf16": dict(chunk_s=30.0, fused=False),
    "wavlm_bf16_chunk10": dict(fused=False),
    "after": dict(),
    "after_layer6": dict(layer=6),
    "after_layer4": dict(layer=4),
    "after_repeat": dict(repeat=True),  # the same audio generated again: features come from the cache
    "after_cfg_batched": dict(settings=dict(cfg_batch="true")),
    "after_guide_first_step": dict(settings=dict(guidance_interval=(0.0, 0.5))),
    "after_layer4_guide_first_step": dict(layer=4, settings=dict(guidance_interval=(0.0, 0.5))),
    "after_1_step": dict(steps=1),
    # a model trained with flow.model_guidance samples at guidance 1: one call per step, no unconditional branch
    "after_model_guidance": dict(model_guidance=True),
    "after_model_guidance_layer6": dict(model_guidance=True, layer=6),
    "after_model_guidance_layer4": dict(model_guidance=True, layer=4),
    "after_model_guidance_repeat": dict(model_guidance=True, repeat=True),
    # WavLM chunks batched 8 per call, the CPU default until the one-chunk-per-call lever
    "after_model_guidance_batched_chunks": dict(model_guidance=True, batch_chunks=8),
    # what params.yaml gives today: WavLM layer auto (6 of base), a model-guided checkpoint, generation.steps,
    # generation.quantize (auto: int8 linear layers on a CPU); `_float32`: the stand-in for CPUs without bf16
    "defaults": dict(layer="auto", model_guidance=True, quantize="params"),
    "defaults_float32": dict(layer="auto", model_guidance=True, quantize="params", dtype="float32"),
    "defaults_1_step": dict(layer="auto", model_guidance=True, quantize="params", steps=1),
    "defaults_1_step_float32": dict(layer="auto", model_guidance=True, quantize="params", steps=1, dtype="float32"),
    "defaults_unquantized": dict(layer="auto", model_guidance=True),
    "defaults_unquantized_float32": dict(layer="auto", model_guidance=True, dtype="float32"),
}
DEFAULTS = dict(wavlm_dtype=None, chunk_s=10.0, layer="mean", fused=True, repeat=False, steps=None, guidance=None,
                settings={}, model_guidance=False, batch_chunks=None, quantize="none", dtype=None)


def build(settings: GenerationSettings, *, layer: int | str, window_frames: int = 384) -> Omniges:
    """A full-size Omniges with random weights, as `Omniges.load` builds it (random-init base WavLM)."""
    torch.manual_seed(0)
    config = OmnigesConfig.full()
    model = OmnigesTransformerModel(config)
    stats = {f"{name}_{kind}": np.full(dim, value, np.float32) for name, dim in (("wavlm", WAVLM_DIM),
             ("mfcc", config.mfcc_dim)) for kind, value in (("mean", 0.0), ("std", 1.0))}
    payload = dict(config=config.to_dict(), state_dict=model.state_dict(), tasks=["a2g"], flow={},
                   latent_scale=dict.fromkeys(PART_NAMES, 1.0), audio_stats=stats, window=window_frames,
                   features=dict(wavlm="random-init:base:seed=0", wavlm_random_init=True),
                   features_params=dict(wavlm=dict(layer=layer)))
    processor = random_processor("full", torch.float32)  # Omniges casts the decoders to the generation dtype
    return Omniges(payload, processor=processor, vocab=Vocabulary(Vocabulary.SPECIALS), features={"wavlm": {
        "layer": layer}}, settings=settings)


def variant_settings(options: dict[str, Any], settings: GenerationSettings) -> GenerationSettings:
    """The generation settings a variant's model is built with: its dtype and quantisation ('params': as given)."""
    quantize = settings.quantize if options["quantize"] == "params" else options["quantize"]
    return dataclasses.replace(settings, quantize=quantize, dtype=options["dtype"] or settings.dtype)


def configure(omniges: Omniges, options: dict[str, Any], settings: GenerationSettings) -> None:
    """Apply a variant's generation settings, WavLM dtype / chunking and the generator's block path to a model."""
    omniges.settings = dataclasses.replace(variant_settings(options, settings), **options["settings"])
    wavlm = omniges.wavlm
    dtype = resolve_dtype(options["wavlm_dtype"] or omniges.settings.dtype)
    if not omniges.quantized or dtype != torch.float32:  # int8 feed-forward layers stay as they are
        wavlm.model.to(dtype)
    wavlm.chunk_frames = round(options["chunk_s"] * SAMPLE_RATE / WAVLM_HOP)
    wavlm.batch_chunks = options["batch_chunks"] or default_batch_chunks(omniges.device)
    omniges.model.fused_inference = options["fused"]
    omniges.flow.model_guidance = {"a2g": settings.guidance} if options["model_guidance"] else {}


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic noise at 16 kHz (the content does not change the cost)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / SAMPLE_RATE) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.1 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def run_once(omniges: Omniges, path: Path, options: dict[str, Any]) -> dict[str, float]:
    """wav file -> SMPL-X once; seconds spent in loading, features and generation + decoding."""
    if not options["repeat"]:
        omniges._audio_cache.clear()
    start, start_cpu = time.perf_counter(), time.process_time()
    wave = load_audio(path)
    loaded = time.perf_counter()
    n_frames = int(len(wave) * 30 // SAMPLE_RATE)
    omniges.audio_condition(wave, n_frames)  # what a2g computes first (and caches)
    featured = time.perf_counter()
    motion = omniges.a2g(wave, steps=options["steps"], guidance=options["guidance"])
    done = time.perf_counter()
    assert motion["poses"].shape == (n_frames, 165), motion["poses"].shape
    return dict(total=done - start, load=loaded - start, features=featured - loaded, generation=done - featured,
                cpu_total=time.process_time() - start_cpu)


def benchmark(variants: list[str], seconds_list: list[float], repeats: int,
              settings: GenerationSettings) -> list[dict[str, Any]]:
    """One row per (clip length, variant): medians of `repeats` interleaved runs after one warm-up each."""
    options = {name: {**DEFAULTS, **VARIANTS[name]} for name in variants}
    models: dict[Any, Omniges] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in seconds_list:
            path = Path(tmp) / f"speech_{seconds:g}s.wav"
            sf.write(path, speech_like(seconds), SAMPLE_RATE)
            times: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
            for round_ in range(repeats + 1):
                for name in variants:
                    opts = options[name]
                    built = variant_settings(opts, settings)
                    key = (opts["layer"], built.quantize, built.dtype)
                    model = models.get(key) or models.setdefault(key, build(built, layer=opts["layer"]))
                    configure(model, opts, settings)
                    with torch.inference_mode():
                        if opts["repeat"]:
                            run_once(model, path, {**opts, "repeat": False})  # fill the cache
                        result = run_once(model, path, opts)
                    if round_:  # round 0 warms up
                        times[name].append(result)
            for name in variants:
                median = {key: statistics.median(r[key] for r in times[name]) for key in times[name][0]}
                rtf = seconds / median["total"]
                built = variant_settings(options[name], settings)
                model = models[(options[name]["layer"], built.quantize, built.dtype)]
                rows.append(dict(
                    variant=name, options=options[name], seconds_of_speech=seconds,
                    wall_seconds_median=median, wall_seconds_total_all=[r["total"] for r in times[name]],
                    real_time_factor=rtf, real_time_factor_best=seconds / min(r["total"] for r in times[name]),
                    # the same from process CPU time / threads: less sensitive to other processes' load
                    real_time_factor_from_cpu_time=seconds * torch.get_num_threads() / median["cpu_total"],
                    ratio_to_gesture_lsm=rtf / TARGET, faster_than_gesture_lsm=rtf > TARGET,
                    generator_parameters=count_parameters(model.model),
                    generation_dtype=str(resolve_dtype(built.dtype)).removeprefix("torch."),
                    quantized=model.quantized,
                ))
                print(f"{seconds:4.0f} s {name:30s} total {median['total']:6.2f} s (features {median['features']:5.2f}"
                      f", generation+decoding {median['generation']:5.2f}) -> {rtf:5.1f}x real time "
                      f"({rows[-1]['real_time_factor_from_cpu_time']:5.1f}x from CPU time), "
                      f"{rtf / TARGET:4.2f}x GestureLSM's {TARGET}x", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, write JSON atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/end_to_end.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0], help="clip lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["before", "after"], choices=sorted(VARIANTS))
    parser.add_argument("--window-tokens", type=int, default=96)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(GenerationSettings.from_params(), window_tokens=args.window_tokens)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = benchmark(args.variants, args.seconds, args.repeats, settings)
    result = dict(
        task="a2g", path="wav file -> load -> WavLM base + MFCC -> generation -> RVQVAE decoding -> SMPL-X",
        batch=1, threads=args.threads, torch=torch.__version__, machine=platform.machine(),
        processor=platform.processor() or platform.platform(), cpu_count=os.cpu_count(),
        load_average_before=load_before, load_average_after=os.getloadavg(),
        settings=vars(settings), reference_real_time_factor=REFERENCE, target_real_time_factor=TARGET,
        variants={name: {**DEFAULTS, **VARIANTS[name]} for name in args.variants}, results=rows,
    )
    out = Path(args.out)
    write_json_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
