"""Scale benchmark: the pipeline on embedded corpora of increasing size, per stage time, peak RSS and disk per hour.

    python benchmarks/bench_scale.py [OUT.json] [--hours 0.1 0.5 1 2] [--steps 200] [--repo .]

Each size is synthesised (4 speakers, 60 s clips) in a temp folder and run through preprocess -> features ->
rvqvae (hands, the widest part) -> cache_latents -> train_evaluator -> train a2g, each stage as its own process so
its peak RSS is its own. Training stages run a fixed number of steps: their time and memory must not grow with
the corpus. Then the loader: samples/s of the training dataset at the full-size window (384 frames) and batch 32,
and of the device-resident path (`training.common.data_on_device`, gathered on this CPU; on an A100 derived from
the bytes a sample moves), against what a full-size bf16 training step consumes (FLOPs counted on the real model
and loss, at 40 % of an A100's 312 TFLOP/s bf16 peak when no GPU is measured). Time is linear when the marginal
per-hour cost of each data stage ((t - t_smallest) / (h - h_smallest), start-up taken out) agrees across sizes;
memory is flat when the peak anonymous RSS of the training stages is. Writes JSON and a PNG (time and memory
against hours) next to it, plus the extrapolation to 60 h. `--repo` runs another checkout's stages (before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import chdir
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omniges.data.store import write_json_atomic  # noqa: E402

A100_BF16_FLOPS = 312e12
A100_HBM_BYTES_PER_S = 2.0e12
UTILISATION = 0.4
SPEAKERS = 4
DATA_STAGES = ("synthesize", "preprocess", "features", "cache_latents")
TRAIN_STAGES = ("rvqvae", "train_evaluator", "train")
FULL_WINDOW, FULL_BATCH = 384, 32


def _memory_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident MB of a live process; its LMDB pages are file-backed (page cache)."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0)


def run_stage(repo: Path, workdir: Path, stage: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    """One stage CLI as a child process: wall and CPU seconds, its peak RSS (MB) and, polled every 50 ms, its peak
    anonymous RSS: its own memory, without the memory-mapped cache pages it touched (shared, reclaimable page
    cache that peak RSS counts: random windows of a larger corpus touch more of them)."""
    start = time.perf_counter()
    anon_peak = file_peak = 0.0
    with open(workdir / f"{stage}.log", "w") as log:
        child = subprocess.Popen([sys.executable, str(repo / "stages" / f"{stage}.py"), *args], cwd=workdir,
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            anon, file = _memory_mb(child.pid)
            anon_peak, file_peak = max(anon_peak, anon), max(file_peak, file)
            time.sleep(0.05)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (workdir / f"{stage}.log").read_text()[-3000:]
        raise SystemExit(f"{stage} failed (exit {os.waitstatus_to_exitcode(status)}):\n{tail}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_anon_rss_mb": anon_peak, "peak_file_rss_mb": file_peak}


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def run_size(repo: Path, workdir: Path, hours: float, steps: int, clip_seconds: float, env: dict[str, str]) -> dict:
    clips = max(4, round(hours * 3600 / clip_seconds / SPEAKERS))
    shutil.copy(repo / "params.yaml", workdir / "params.yaml")
    common = [f"data.synthetic.speakers={SPEAKERS}", f"data.synthetic.clips_per_speaker={clips}",
              f"data.synthetic.clip_seconds={clip_seconds}", f"rvqvae.train.steps={steps}",
              f"evaluation.evaluator.steps={steps}",
              f"training.experiments={{a2g: {{steps: {steps}, tasks: {{a2g: 1.0}}}}}}", "training.run=[a2g]",
              f"training.common.val_every={steps}", f"training.common.checkpoint_every={steps}"]
    stages = {}
    for stage, extra in (("synthesize", []), ("preprocess", []), ("features", [])):
        stages[stage] = run_stage(repo, workdir, stage, common + extra, env)
    stages["rvqvae"] = run_stage(repo, workdir, "rvqvae", ["--part", "hands", *common], env)
    for part in ("upper", "lower_trans", "face"):  # cache_latents needs all four; these are not timed
        run_stage(repo, workdir, "rvqvae", ["--part", part, *common, "rvqvae.train.steps=1"], env)
    stages["cache_latents"] = run_stage(repo, workdir, "cache_latents", common, env)
    stages["train_evaluator"] = run_stage(repo, workdir, "train_evaluator", common, env)
    stages["train"] = run_stage(repo, workdir, "train", ["--experiment", "a2g", *common], env)
    report = json.loads((workdir / "data/cache/preprocess_report.json").read_text())
    real_hours = report["hours"]
    disk = {name: disk_mb(workdir / "data/cache" / name) for name in ("clips.lmdb", "features.lmdb", "latents.lmdb")}
    for stage in DATA_STAGES:
        stages[stage]["seconds_per_hour"] = stages[stage]["seconds"] / real_hours
    return {"hours": real_hours, "clips": report["clips_written"], "stages": stages,
            "disk_mb": disk, "disk_mb_per_hour": {k: v / real_hours for k, v in disk.items()}}


def full_size_train_set(*, raw: bool = True):
    """The training split of the working folder's caches at the full-size window (raw: as the trainer reads it,
    normalised on the device)."""
    from omniges.data.dataset import OmnigesDataset

    return OmnigesDataset("data/cache", split=["train", "additional"], length=FULL_WINDOW, stride=32, raw=raw)


def full_size_shards(size: int, steps: int):
    """One process's batch indices of `steps` training steps at the full-size batch, as the trainer draws them."""
    from omniges.training.trainer import StepShards

    return StepShards(start=0, stop=steps, size=size, batch_size=FULL_BATCH, seed=0, process=0, processes=1,
                      micro_steps=1)


def loader_rate(workdir: Path, workers: int, batches: int = 12) -> float:
    """Training-dataset samples/s at the full-size window through the trainer's DataLoader path."""
    import torch

    from omniges.data.dataset import collate

    with chdir(workdir):
        dataset = full_size_train_set()
        shards = full_size_shards(len(dataset), batches + 2)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=shards, collate_fn=collate, num_workers=workers,
                                             prefetch_factor=2 if workers else None)
        it = iter(loader)
        next(it), next(it)  # workers started, first batches ready
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        return batches * FULL_BATCH / (time.perf_counter() - start)


def resident_rate(workdir: Path, batches: int = 24) -> dict[str, float]:
    """Samples/s of the device-resident path (`training.common.data_on_device`), here on the CPU, and its bytes."""
    import torch

    from omniges.data.resident import ResidentWindows

    with chdir(workdir):
        dataset = full_size_train_set()
        start = time.perf_counter()
        resident = ResidentWindows(dataset)
        load_s = time.perf_counter() - start
        shards = list(full_size_shards(len(dataset), batches + 2))
        batch = resident.batch(shards[0])
        sample_bytes = sum(v.numel() * v.element_size() for v in batch.values()
                           if isinstance(v, torch.Tensor)) / FULL_BATCH
        start = time.perf_counter()
        for ids in shards[2:]:
            resident.batch(ids)
        rate = batches * FULL_BATCH / (time.perf_counter() - start)
        hours = sum(dataset.lengths.values()) / 30 / 3600
    return {"samples_per_second_cpu": rate, "bytes_per_sample": sample_bytes, "load_seconds": load_s,
            "resident_mb_per_hour": resident.nbytes / 2**20 / hours,
            # a gather reads and writes each byte once; at 40 % of an A100 80 GB's 2.0 TB/s HBM bandwidth
            "samples_per_second_a100_derived": UTILISATION * A100_HBM_BYTES_PER_S / (2 * sample_bytes)}


def full_size_step_flops(workdir: Path) -> float:
    """FLOPs of one full-size training step (generator forward + backward through the real loss) per sample."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from omniges.config import load_params
    from omniges.data.dataset import collate
    from omniges.features.text import Vocabulary
    from omniges.models.flow_loss import FlowLoss
    from omniges.models.omniges_transformer import OmnigesTransformerModel
    from omniges.tokenizer.processor import GestureProcessor
    from omniges.training.generator import make_loss_fn, model_config
    from omniges.training.losses import LossWeights

    with chdir(workdir):
        params = load_params("params.yaml")
        dataset = full_size_train_set(raw=False)
        vocab = Vocabulary.load("data/cache/vocab.json")
        config = model_config("full", {}, text_dim=dataset.features.meta["text_dim"], vocab_size=len(vocab))
        model = OmnigesTransformerModel(config)
        processor = GestureProcessor.load("results/rvqvae", "data/cache/stats.npz", latent_scale=dataset.latent_scale,
                                          face_jaw=params.data.face_jaw)
        weights = LossWeights(**params.section("training")["loss"])
        flow = FlowLoss(**params.section("flow"), code_weight=weights.code, text_weight=weights.text,
                             shortcut_weight=weights.shortcut)
        loss_fn = make_loss_fn(flow, processor, weights)
        batch = collate([dataset[0]])
        counter = FlopCounterMode(display=False)
        with counter:
            loss_fn(model, batch, "a2g", torch.Generator().manual_seed(0))["loss"].backward()
        return float(counter.get_total_flops()), sum(p.numel() for p in model.parameters())


def plot(sizes: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [s["hours"] for s in sizes]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
    for stage in DATA_STAGES + TRAIN_STAGES:
        ax_t.plot(hours, [s["stages"][stage]["seconds"] for s in sizes], "o-", label=stage)
        line, = ax_m.plot(hours, [s["stages"][stage]["peak_anon_rss_mb"] for s in sizes], "o-", label=stage)
        if stage in TRAIN_STAGES:  # dashed: peak RSS with the memory-mapped cache pages touched
            ax_m.plot(hours, [s["stages"][stage]["peak_rss_mb"] for s in sizes], "--", color=line.get_color())
    ax_t.set(xlabel="corpus hours", ylabel="wall seconds", title="time per stage (training: fixed steps)")
    ax_m.set(xlabel="corpus hours", ylabel="peak anonymous RSS (MB)",
             title="peak memory per stage (dashed: with mapped cache pages)")
    for ax in (ax_t, ax_m):
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    ax_m.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summarise(sizes: list[dict], loader: dict[str, float], resident: dict[str, float], flops: float,
              params_count: int) -> dict:
    """Goals. Time: per-hour cost of each data stage, raw (seconds / hours) and marginal (the smallest size is the
    base: (t - t_base) / (h - h_base), which takes out the fixed start-up cost: imports, model loads)."""
    base, large = sizes[0], sizes[-1]
    per_hour = {stage: [s["stages"][stage]["seconds_per_hour"] for s in sizes] for stage in DATA_STAGES}
    raw_spread = {stage: max(v) / min(v) for stage, v in per_hour.items()}

    def marginal_of(key: str) -> dict[str, list[float]]:
        return {stage: [(s["stages"][stage][key] - base["stages"][stage][key]) / (s["hours"] - base["hours"])
                        for s in sizes[1:]] for stage in DATA_STAGES}

    def growth(key: str) -> dict[str, float]:
        return {stage: large["stages"][stage][key] / base["stages"][stage][key] for stage in TRAIN_STAGES}

    marginal, cpu_marginal = marginal_of("seconds"), marginal_of("cpu_seconds")
    marginal_spread = {stage: max(v) / min(v) if min(v) > 0 else float("inf") for stage, v in marginal.items()}
    startup = {stage: base["stages"][stage]["seconds"] - marginal[stage][-1] * base["hours"] for stage in DATA_STAGES}
    train_time, rss_growth, anon_growth = growth("seconds"), growth("peak_rss_mb"), growth("peak_anon_rss_mb")
    step_seconds = flops * FULL_BATCH / (UTILISATION * A100_BF16_FLOPS)
    consumed = FULL_BATCH / step_seconds
    measured = {**loader, "resident_cpu": resident["samples_per_second_cpu"]}
    best = max(measured, key=measured.get)
    disk_per_hour = {k: float(np.mean([s["disk_mb_per_hour"][k] for s in sizes])) for k in large["disk_mb_per_hour"]}
    return {
        "data_stage_seconds_per_hour_spread": raw_spread,
        "data_stage_marginal_seconds_per_hour": marginal,
        "data_stage_marginal_spread": marginal_spread,
        "data_stage_marginal_cpu_seconds_per_hour": cpu_marginal,
        "data_stage_startup_seconds": startup,
        "goal_time_linear": {"max_spread": 1.3, "measure": "marginal per-hour cost (start-up taken out)",
                             "met": all(v <= 1.3 for v in marginal_spread.values()),
                             "met_raw": all(v <= 1.3 for v in raw_spread.values())},
        "training_stage_time_ratio_largest_to_smallest": train_time,
        "training_stage_peak_rss_ratio_largest_to_smallest": rss_growth,
        "training_stage_peak_anon_rss_ratio_largest_to_smallest": anon_growth,
        "goal_rss_flat": {"max_ratio": 1.5, "measure": "peak anonymous RSS (the process's own memory)",
                          "met": all(v <= 1.5 for v in anon_growth.values()),
                          "met_incl_mapped_cache_pages": all(v <= 1.5 for v in rss_growth.values())},
        "full_size_step": {"flops_per_sample": flops, "parameters": params_count, "batch": FULL_BATCH,
                           "assumed_throughput_flops": UTILISATION * A100_BF16_FLOPS,
                           "assumption": "40% of an A100's 312 TFLOP/s bf16 peak (no GPU measured)",
                           "step_seconds": step_seconds, "samples_per_second_consumed": consumed},
        "loader_samples_per_second": measured,
        "resident": resident,
        "goal_loader": {"min_ratio": 20.0, "best_measured": best, "ratio": measured[best] / consumed,
                        "met": measured[best] / consumed >= 20,
                        "ratio_streamed": max(loader.values()) / consumed,
                        "ratio_resident_cpu": resident["samples_per_second_cpu"] / consumed,
                        "ratio_resident_a100_derived": resident["samples_per_second_a100_derived"] / consumed},
        "extrapolation_60h": {
            "data_stage_hours": {stage: (startup[stage] + marginal[stage][-1] * 60) / 3600 for stage in DATA_STAGES},
            "disk_gb": {k: v * 60 / 1024 for k, v in disk_per_hour.items()},
            "resident_gb": resident["resident_mb_per_hour"] * 60 / 1024,
            "training_stage_peak_rss_mb": {stage: large["stages"][stage]["peak_rss_mb"] for stage in TRAIN_STAGES},
            "training_stage_peak_anon_rss_mb": {stage: large["stages"][stage]["peak_anon_rss_mb"]
                                                for stage in TRAIN_STAGES},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/scale.json")
    parser.add_argument("--hours", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0],
                        help="corpus sizes; the smallest is the base of the marginal per-hour cost")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first run of the smallest size")
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--repo", default=str(ROOT), help="checkout whose stages run (default: this one)")
    parser.add_argument("--keep", default="", help="keep the largest corpus's work folder here")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    env = {**os.environ, "OMNIGES_TRACKING": "0", "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    sizes, tmp = [], Path(tempfile.mkdtemp(prefix="omniges-scale-"))
    try:
        if not args.no_warmup:  # the first size otherwise pays cold imports and page cache, inflating its times
            (tmp / "warmup").mkdir()
            run_size(repo, tmp / "warmup", min(args.hours), args.steps, args.clip_seconds, env)
            shutil.rmtree(tmp / "warmup")
        for hours in sorted(args.hours):
            workdir = tmp / f"{hours:g}h"
            workdir.mkdir()
            sizes.append(run_size(repo, workdir, hours, args.steps, args.clip_seconds, env))
            print(json.dumps({"hours": sizes[-1]["hours"], **{k: round(v["seconds"], 1)
                                                              for k, v in sizes[-1]["stages"].items()}}), flush=True)
        largest = tmp / f"{max(args.hours):g}h"
        loader = {f"workers_{w}": loader_rate(largest, w) for w in (0, 2)}
        resident = resident_rate(largest)
        flops, params_count = full_size_step_flops(largest)
        if args.keep:
            shutil.copytree(largest, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"repo": str(repo), "steps": args.steps, "speakers": SPEAKERS, "clip_seconds": args.clip_seconds,
              "cpu_threads": os.environ.get("OMP_NUM_THREADS", ""), "load_average": os.getloadavg()[0],
              "sizes": sizes, **summarise(sizes, loader, resident, flops, params_count)}
    out = Path(args.out)
    write_json_atomic(out, result)
    plot(sizes, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result.items() if k != "sizes"}, indent=2))


if __name__ == "__main__":
    main()
