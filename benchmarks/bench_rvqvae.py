"""CPU speed of the full-size RVQVAE per part: encode (motion -> codes) and decode (codes -> motion)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from omniges.data.body import PART_NAMES, part_dim
from omniges.data.store import write_json_atomic
from omniges.tokenizer.rvqvae import RVQVAE


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of `fn` over `repeats` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.inference_mode()
def bench_part(part: str, *, batch_sizes: list[int], frames: int, repeats: int) -> dict[str, dict]:
    """Encode/decode frames per second of one full-size part model at each batch size."""
    torch.manual_seed(0)
    model = RVQVAE(input_width=part_dim(part)).eval()
    results = {}
    for batch in batch_sizes:
        motion = torch.randn(batch, frames, model.input_width)
        latents = frames // model.frames_per_latent
        codes = torch.randint(0, model.nb_code, (batch, latents, model.num_quantizers))
        encode = median_seconds(lambda m=motion: model.encode(m), repeats)
        decode = median_seconds(lambda c=codes: model.decode_codes(c), repeats)
        results[f"batch_{batch}"] = dict(
            encode_frames_per_s=batch * frames / encode,
            decode_frames_per_s=batch * frames / decode,
            encode_ms=1000 * encode,
            decode_ms=1000 * decode,
        )
    return results


def main() -> None:
    """Parse arguments, benchmark every part, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", nargs="?", default="results/benchmarks/rvqvae.json", type=Path)
    parser.add_argument("--parts", nargs="+", default=list(PART_NAMES), choices=PART_NAMES)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        part: bench_part(part, batch_sizes=args.batch_sizes, frames=args.frames, repeats=args.repeats)
        for part in args.parts
    }
    payload = dict(
        benchmark="rvqvae_full_size_cpu",
        device="cpu",
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        load_average_1min=os.getloadavg()[0],
        torch=torch.__version__,
        threads=args.threads,
        frames=args.frames,
        repeats=args.repeats,
        results=results,
    )
    write_json_atomic(args.output, payload)
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
