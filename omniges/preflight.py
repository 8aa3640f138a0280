"""`omniges preflight`: check what a run needs, then run a few steps of every stage on a few clips and predict the run.

Checks: params, device, every path params name (WavLM, text encoder, imports), the corpus (a sample of clips read,
or all), disk space, the SLURM profile's resources. Prediction: each stage of the DAG is run in a scratch folder on
a sample of the corpus with a few steps, timed twice where a fixed cost (model building, loading) must be told apart
from the per-step or per-second cost; then scaled to the corpus and the params' step counts, and the DAG scheduled on
`--jobs` cores as Snakemake would (rule threads, train priorities). Every verdict is one line; FAIL means the run
would fail, and makes the exit code non-zero.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniges.config import Params, ParamsError, load_params
from omniges.data.body import PART_NAMES

RESIDENT_MB_PER_HOUR = 430  # training split held on a GPU (design.md §4, data_on_device)


@dataclass
class Verdict:
    status: str  # ok | warn | FAIL
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:4s}  {self.name:10s} {self.detail}"


@dataclass
class Corpus:
    """What the full run will read: clips per split with their seconds, and clips that will be skipped."""

    seconds: dict[str, float] = field(default_factory=dict)  # split -> audio seconds
    clips: dict[str, int] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)  # clip id -> why preprocess will skip it

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


@dataclass
class Cost:
    """One job of the DAG at full scale: seconds, threads, peak memory (MB), disk written (MB)."""

    name: str
    seconds: float
    threads: int = 1
    peak_mb: float = 0.0
    disk_mb: float = 0.0
    after: tuple[str, ...] = ()
    priority: int = 0
    how: str = ""


# ------------------------------------------------------------------------------------------------- checks


def check_params(path: Path) -> tuple[Params | None, Verdict]:
    try:
        return load_params(path), Verdict("ok", "params", f"{path} is valid")
    except ParamsError as error:
        return None, Verdict("FAIL", "params", " ".join(str(error).split()))


def check_device(params: Params) -> tuple[str, Verdict]:
    import torch

    from omniges.device import DeviceError, resolve_device

    try:
        device = resolve_device(params.compute.device)
    except DeviceError as error:
        return "cpu", Verdict("FAIL", "device", str(error))
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return str(device), Verdict("ok", "device", f"{device}: {props.name}, {props.total_memory / 2**30:.0f} GiB")
    return "cpu", Verdict("ok", "device", f"cpu ({os.cpu_count()} cores, torch {torch.get_num_threads()} threads)")


def named_paths(params: Params) -> dict[str, tuple[str, str]]:
    """Every path params.yaml names: key -> (path, 'file' | 'dir'); empty ones are left out."""
    imported = params.rvqvae.import_
    norm = imported.normalization
    paths = {
        "features.wavlm.path": (params.features.wavlm.path, "dir"),
        "features.text.path": (params.features.text.path, "dir"),
        **{f"rvqvae.import.{p}": (getattr(imported, p), "file") for p in PART_NAMES},
        **{f"rvqvae.import.normalization.{k}": (getattr(norm, k), "file")
           for k in ("pose_mean", "pose_std", "trans_mean", "trans_std")},
        "evaluation.evaluator.import": (params.evaluation.evaluator.import_, "file"),
        "evaluation.evaluator.kintree": (params.evaluation.evaluator.kintree, "file"),
        "evaluation.mean_vel": (params.evaluation.mean_vel, "file"),
        "render.smplx_model": (params.render.smplx_model, "file"),
    }
    if params.data.source == "beat2":
        paths["data.beat2_root"] = (params.data.beat2_root, "dir")
    return {key: value for key, value in paths.items() if value[0]}


def check_paths(params: Params) -> list[Verdict]:
    verdicts = []
    for key, (path, kind) in named_paths(params).items():
        found = Path(path).is_dir() if kind == "dir" else Path(path).is_file()
        verdicts.append(Verdict("ok" if found else "FAIL", "paths", f"{key}: {path}"
                                + ("" if found else f": no such {'directory' if kind == 'dir' else 'file'}")))
    if not params.features.wavlm.path:
        level = "warn" if params.data.source == "beat2" else "ok"
        verdicts.append(Verdict(level, "paths", "features.wavlm.path empty: seeded random-init WavLM "
                                "(no pretrained speech features; fine for the demo, not for BEAT2 results)"))
    if not params.features.text.path:
        verdicts.append(Verdict("ok", "paths", "features.text.path empty: the packaged all-MiniLM-L6-v2"))
    return verdicts


def survey_corpus(params: Params, *, read_all: bool, sample: int) -> tuple[Corpus, list[str], list[Verdict]]:
    """The full corpus from headers (every wav) plus `sample` clips (or all) read as preprocess reads them."""
    data = params.data
    if data.source == "synthetic":
        syn = data.synthetic
        per_speaker = {"val": syn.val_per_speaker, "test": syn.test_per_speaker, "additional": 1}
        per_speaker["train"] = syn.clips_per_speaker - sum(per_speaker.values())
        corpus = Corpus({s: syn.speakers * n * syn.clip_seconds for s, n in per_speaker.items() if s in data.splits},
                        {s: syn.speakers * n for s, n in per_speaker.items() if s in data.splits})
        detail = (f"synthetic: {sum(corpus.clips.values())} clips x {syn.clip_seconds:g} s = "
                  f"{corpus.total_seconds / 3600:.2f} h (written by the synthesize stage)")
        return corpus, [], [Verdict("ok", "data", detail)]
    import soundfile as sf

    from omniges.data.beat2 import AUDIO_DIR, Beat2Error, read_clip, read_split_csv, select_clips

    root = Path(data.beat2_root)
    try:
        entries = select_clips(read_split_csv(root), speakers=data.speakers, splits=data.splits)
    except Beat2Error as error:
        return Corpus(), [], [Verdict("FAIL", "data", str(error))]
    if not entries:
        return Corpus(), [], [Verdict("FAIL", "data", f"{root}: no clips for speakers={data.speakers or 'all'} "
                                                        f"splits={data.splits}")]
    corpus, durations = Corpus(), {}
    for entry in entries:
        try:
            durations[entry.clip_id] = sf.info(str(root / AUDIO_DIR / f"{entry.clip_id}.wav")).duration
        except (sf.LibsndfileError, RuntimeError):
            corpus.skips[entry.clip_id] = f"{root / AUDIO_DIR / entry.clip_id}.wav: missing or unreadable"
    by_split: dict[str, list] = {}
    for entry in entries:
        if entry.clip_id in durations:
            by_split.setdefault(entry.split, []).append(entry)
    chosen = entries if read_all else _sample(by_split, sample)
    readable, options = [], {"fps": data.fps, "sr": data.audio_sr, "tolerance_s": data.length_tolerance_s,
                             "face_jaw": data.face_jaw}
    start = time.perf_counter()
    for entry in chosen:
        try:
            record = read_clip(root, entry, **options)
            durations[entry.clip_id] = record["n_frames"] / data.fps
            readable.append(entry.clip_id)
        except Beat2Error as error:
            durations.pop(entry.clip_id, None)
            corpus.skips[entry.clip_id] = str(error)
    for entry in entries:
        if entry.clip_id in durations:
            corpus.seconds[entry.split] = corpus.seconds.get(entry.split, 0.0) + durations[entry.clip_id]
            corpus.clips[entry.split] = corpus.clips.get(entry.split, 0) + 1
    read = f"all {len(chosen)}" if read_all else f"a sample of {len(chosen)}"
    verdicts = [Verdict("ok", "data", f"{root}: {len(entries)} clips selected, {corpus.total_seconds / 3600:.2f} h; "
                                      f"{read} read in {time.perf_counter() - start:.1f} s, "
                                      f"{len(readable)} readable")]
    if corpus.skips:
        example = next(iter(corpus.skips.values()))
        verdicts.append(Verdict("warn", "data", f"{len(corpus.skips)} clip(s) will be skipped, e.g. {example}"))
    if not corpus.seconds.get("train") and not corpus.seconds.get("additional"):
        verdicts.append(Verdict("FAIL", "data", "no readable train clip: preprocess has nothing to learn from"))
    if not corpus.seconds.get(params.evaluation.split):
        verdicts.append(Verdict("FAIL", "data", f"no readable {params.evaluation.split} clip: evaluate and render "
                                                f"need one (evaluation.split)"))
    good = {split: [e for e in group if e.clip_id in readable] for split, group in by_split.items()}
    return corpus, [e.clip_id for e in _sample(good, sample)], verdicts  # the timing sample, whatever was read


def _sample(by_split: dict[str, list], size: int) -> list:
    """A few clips per split for the timing run: two test and one val clip at least, the rest train."""
    want = {"test": 2, "val": 1}
    picked = [e for split, n in want.items() for e in by_split.get(split, [])[:n]]
    train = by_split.get("train", []) + by_split.get("additional", [])
    return picked + train[: max(2, size - len(picked))]


# ------------------------------------------------------------------------------------------------ measuring


@contextlib.contextmanager
def scratch(folder: Path) -> Iterator[None]:
    """Run stages in `folder` (their relative data/ and results/), MLflow off, and come back."""
    here, tracking = Path.cwd(), os.environ.get("OMNIGES_TRACKING")
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    os.environ["OMNIGES_TRACKING"] = "0"
    try:
        yield
    finally:
        os.chdir(here)
        if tracking is None:
            os.environ.pop("OMNIGES_TRACKING", None)
        else:
            os.environ["OMNIGES_TRACKING"] = tracking


@contextlib.contextmanager
def quiet(log_path: Path) -> Iterator[None]:
    """The stages' progress bars, tables and log lines go to `log_path`, not between the verdicts."""
    root = logging.getLogger()  # every library's records (omniges, absl, mlflow, ...) reach the root's handlers
    handlers, handler = root.handlers[:], logging.FileHandler(log_path)
    root.handlers = [handler]
    try:
        with open(log_path, "a") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        root.handlers = handlers
        handler.close()


def timed(fn: Callable[[], Any], threads: int, device: str) -> tuple[float, float, Any]:
    """(seconds, peak memory in MB, result) of fn() on `threads` torch threads; peak RSS, or CUDA's peak."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM) on Linux
    start = time.perf_counter()
    try:
        with quiet(Path("stages.log")):
            result = fn()
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - start
    return seconds, _peak_mb(device), result


def two_point(run: Callable[[float], Any], x1: float, x2: float, threads: int,
              device: str) -> tuple[float, float, float, list[float]]:
    """(fixed s, s per unit, peak MB, times) of a stage run at sizes x1 (cold, then warm) and x2 (warm).

    The cold run pays what a fresh process pays once (imports, first calls); the warm pair gives the slope.
    """
    cold, _, _ = timed(lambda: run(x1), threads, device)
    warm, _, _ = timed(lambda: run(x1), threads, device)
    large, peak, _ = timed(lambda: run(x2), threads, device)
    if x2 <= x1:  # one size only (a single clip): all of it per unit, an upper bound
        return 0.0, large / x2, peak, [cold, warm, large]
    if large > warm:
        per = (large - warm) / (x2 - x1)
    else:  # noise swallowed the difference: the larger run, split evenly between fixed and per unit
        per = large / x2 / 2
    return max(cold - per * x1, 0.0), per, peak, [cold, warm, large]


def _peak_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def size_mb(path: str | Path) -> float:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def sample_root(params: Params, clips: list[str], folder: Path) -> Path:
    """A BEAT2-layout root of the sampled clips (symbolic links) with its own split csv."""
    from omniges.data.beat2 import AUDIO_DIR, MOTION_DIR, SPLIT_CSV, TEXT_DIR, read_split_csv

    root = Path(params.data.beat2_root).resolve()
    splits = {e.clip_id: e.split for e in read_split_csv(root)}
    for sub, suffix in ((MOTION_DIR, ".npz"), (AUDIO_DIR, ".wav"), (TEXT_DIR, ".TextGrid")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for clip in clips:
            if (root / sub / f"{clip}{suffix}").exists():
                (folder / sub / f"{clip}{suffix}").symlink_to(root / sub / f"{clip}{suffix}")
    rows = "".join(f"{clip},{splits[clip]}\n" for clip in clips)
    (folder / SPLIT_CSV).write_text("id,type\n" + rows)
    return folder


def _measure_tokenizers(p: Params, full: Params, k2: int, sample_s: float, total_s: float, device: str,
                        echo: Callable[[str], None]) -> list[Cost]:
    """The four part tokenizers at `k2` steps and the latent cache, scaled to the full run."""
    from omniges import pipeline

    costs: list[Cost] = []
    for part in PART_NAMES:
        t, peak, metrics = timed(lambda part=part: pipeline.rvqvae(p, part), 1, device)
        per = metrics["seconds"] / k2
        fixed = max(t - metrics["seconds"], 0.0)
        steps_full = full.rvqvae.train.steps
        costs.append(Cost(f"rvqvae_{part}", fixed + per * steps_full, 1, peak,
                          size_mb(f"results/rvqvae/{part}.pth"), ("preprocess",),
                          how=f"{fixed:.0f} s + {steps_full} steps x {per:.3f} s"))
        echo(f"  measured rvqvae_{part:11s}{t:6.1f} s ({k2} steps)")
    times = []
    for _ in range(2):  # cold (what a fresh process pays once), then warm: all of it per audio second
        shutil.rmtree("data/cache/latents.lmdb", ignore_errors=True)  # else the writer resumes
        t, peak, _ = timed(lambda: pipeline.cache_latents(p), 2, device)
        times.append(t)
    per = times[1] / sample_s
    costs.append(Cost("cache_latents", times[0] - times[1] + per * total_s, 2, peak,
                      size_mb("data/cache/latents.lmdb") / sample_s * total_s,
                      tuple(f"rvqvae_{q}" for q in PART_NAMES),
                      how=f"{times[0] - times[1]:.0f} s + {per * 3600:.0f} s per audio hour"))
    echo(f"  measured cache_latents    {_times(times)} (cold / warm)")
    return costs


def measure(params_path: Path, params: Params, corpus: Corpus, clips: list[str], *, device: str,
            experiments: list[str], steps: tuple[int, int], work: Path, echo: Callable[[str], None],
            train_threads: int = 1) -> list[Cost]:
    """Run every stage on the sample in `work`, timed, and scale each to the full run (a training on
    `train_threads` threads, as the Snakefile gives a training: cores // trainings)."""
    from omniges import pipeline

    k1, k2 = steps
    full, data = params, params.data
    overrides: dict[str, Any] = {"data.workers": 1, "tracking.uri": "", "compute.device": device}
    if data.source == "beat2":
        overrides["data.beat2_root"] = str(sample_root(params, clips, work / "sample_root"))
    else:
        overrides.update({"data.synthetic_root": "data/synthetic", "data.synthetic.clips_per_speaker": 4,
                          "data.synthetic.speakers": min(2, data.synthetic.speakers),
                          "data.synthetic.val_per_speaker": 1, "data.synthetic.test_per_speaker": 1})
    params_file = (work / "params.yaml").resolve()
    shutil.copy(params_path, params_file)

    def at(**extra: Any) -> Params:
        return load_params(params_file, {**overrides, **{k.replace("__", "."): v for k, v in extra.items()}})

    costs: list[Cost] = []
    hours = corpus.total_seconds / 3600
    workers = data.workers
    with scratch(work):
        p = at()
        t, peak, summary = timed(lambda: pipeline.synthesize(p), 1, device)
        if data.source == "synthetic":
            syn = p.data.synthetic
            written = syn.speakers * syn.clips_per_speaker * syn.clip_seconds
            per = t / written
            costs.append(Cost("synthesize", per * corpus.total_seconds, 1, peak,
                              size_mb("data/synthetic") / written * corpus.total_seconds,
                              how=f"{per * 3600:.0f} s per audio hour"))
        else:
            costs.append(Cost("synthesize", 0.0, how="marker folder only (data.source=beat2)"))
        echo(f"  measured synthesize       {t:6.1f} s")
        t, peak, report = timed(lambda: pipeline.preprocess(p), 1, device)
        sample_s = report["hours"] * 3600
        per = t / max(sample_s, 1e-9)
        costs.append(Cost("preprocess", per * corpus.total_seconds / min(workers, os.cpu_count() or 1), workers, peak,
                          size_mb("data/cache/clips.lmdb") / sample_s * corpus.total_seconds, ("synthesize",),
                          how=f"{per * 3600:.0f} s per audio hour on one worker, {workers} workers"))
        echo(f"  measured preprocess       {t:6.1f} s on {sample_s:.0f} s of audio")
        t, peak, report = timed(lambda: pipeline.features(p), 2, device)
        per = 1 / max(report["realtime_factor"], 1e-9)
        fixed = max(t - per * report["audio_seconds_extracted"], 0.0)
        costs.append(Cost("features", fixed + per * corpus.total_seconds, 2, peak,
                          size_mb("data/cache/features.lmdb") / sample_s * corpus.total_seconds, ("preprocess",),
                          how=f"{fixed:.0f} s models + {per * 3600:.0f} s per audio hour"))
        echo(f"  measured features         {t:6.1f} s")
        p = at(rvqvae__train__steps=k2)
        costs += _measure_tokenizers(p, full, k2, sample_s, corpus.total_seconds, device, echo)
        fixed, per, peak, times = two_point(
            lambda k: pipeline.train_evaluator(at(evaluation__evaluator__steps=int(k))), k1, k2, 1, device)
        costs.append(Cost("train_evaluator", fixed + per * full.evaluation.evaluator.steps, 1, peak,
                          size_mb("results/evaluator.pth"), ("preprocess",),
                          how=f"{fixed:.0f} s + {full.evaluation.evaluator.steps} steps x {per:.3f} s"))
        echo(f"  measured train_evaluator  {_times(times)} ({k1} / {k1} / {k2} steps)")
        priority = {"multitask": 2, "a2g": 1}
        split = full.evaluation.split
        test_s = corpus.seconds.get(split, 0.0)
        if full.evaluation.max_clips:
            test_s = min(test_s, full.evaluation.max_clips * test_s / max(corpus.clips.get(split, 1), 1))
        for experiment in experiments:
            costs += _measure_experiment(at, full, experiment, (k1, k2), device, hours, test_s,
                                         priority.get(experiment, 0), echo, train_threads)
    return costs


def _measure_experiment(at: Callable[..., Params], full: Params, experiment: str, steps: tuple[int, int],
                        device: str, hours: float, test_s: float, priority: int,
                        echo: Callable[[str], None], threads: int = 1) -> list[Cost]:
    from omniges import pipeline
    from omniges.data.store import LmdbReader

    k1, k2 = steps
    out = Path("results/models") / experiment

    def train(k: float) -> None:
        shutil.rmtree(out, ignore_errors=True)  # a checkpoint of the run before would be resumed
        k = int(k)
        pipeline.train(at(**{f"training__experiments__{experiment}__steps": k, "training__common__val_every": k,
                             "training__common__checkpoint_every": k}), experiment)

    fixed, per, peak, times = two_point(train, k1, k2, threads, device)
    total = full.training.experiments[experiment].steps
    resident = full.training.common.data_on_device
    if device.startswith("cuda") and resident != "false":
        peak += RESIDENT_MB_PER_HOUR * hours  # auto holds it only when it fits: an upper bound
    costs = [Cost(f"train_{experiment}", fixed + per * total, threads, peak, size_mb(out), (
        "features", "cache_latents"), priority, f"{fixed:.0f} s + {total} steps x {per:.3f} s")]
    echo(f"  measured train_{experiment:10s}{_times(times)} ({k1} / {k1} / {k2} steps)")
    split = full.evaluation.split
    index = LmdbReader("data/cache/clips.lmdb").meta["index"]
    clip_s = sorted(v["n_frames"] / 30 for v in index.values() if v["split"] == split)
    seconds = {clip_s[0]: 1, sum(clip_s[:2]): 2}  # audio seconds of the first n clips -> n
    fixed, per, peak, times = two_point(
        lambda s: pipeline.evaluate(at(evaluation__max_clips=seconds[s]), experiment), clip_s[0], sum(clip_s[:2]), 1,
        device)
    costs.append(Cost(f"evaluate_{experiment}", fixed + per * test_s, 1, peak, 0.0,
                      (f"train_{experiment}", "train_evaluator"),
                      how=f"{fixed:.0f} s + {test_s:.0f} s of {split} audio x {per:.2f} s/s"))
    echo(f"  measured evaluate_{experiment:9s}{_times(times)} (1 / 1 / 2 clips)")
    fixed, per, peak, times = two_point(
        lambda s: pipeline.render(at(render__clips=1, render__seconds=s), experiment), 1.0, 3.0, 1, device)
    video_s = full.render.clips * full.render.seconds
    video_mb = size_mb(Path("results/videos") / experiment) / 3.0 * video_s
    costs.append(Cost(f"render_{experiment}", fixed + per * video_s, 1, peak, video_mb,
                      (f"train_{experiment}",), how=f"{fixed:.0f} s + {video_s:g} s of video x {per:.2f} s/s"))
    echo(f"  measured render_{experiment:11s}{_times(times)} (1 / 1 / 3 s of video)")
    return costs


# -------------------------------------------------------------------------------------------------- predicting


def schedule(costs: list[Cost], cores: int, overhead_s: float) -> float:
    """Wall-clock seconds of the DAG on `cores`, greedy by priority then length, as Snakemake's scheduler orders."""
    pending = {c.name: c for c in costs}
    names = set(pending)
    done: dict[str, float] = {}
    running: list[tuple[float, Cost]] = []
    now, free = 0.0, cores
    while pending or running:
        ready = sorted((c for c in pending.values() if all(d in done or d not in names for d in c.after)),
                       key=lambda c: (-c.priority, -c.seconds))
        for job in ready:
            need = min(job.threads, cores)
            if need <= free:
                free -= need
                running.append((now + job.seconds + overhead_s, job))
                del pending[job.name]
        if not running:
            break
        running.sort(key=lambda item: item[0])
        now, job = running.pop(0)
        done[job.name] = now
        free += min(job.threads, cores)
    return now


STARTUP_PROBE = """
import torch, transformers, omniges.pipeline
from omniges.tracking import stage_run
with stage_run("preflight_probe", params={"probe": 1}, experiment="preflight", uri="sqlite:///probe.db") as run:
    run.log_metrics({"probe": 1.0})
"""
CPU_PROBE = """
import time, torch
torch.set_num_threads(1)
a = torch.randn(384, 384)
start = time.perf_counter()
for _ in range(1500):
    a @ a
print(time.perf_counter() - start)
"""


def _concurrently(code: str, copies: int, cwd: Path) -> list[tuple[float, str]]:
    """(wall seconds, stdout) of `copies` Python processes running `code` at the same time."""
    start = time.perf_counter()
    env = {**os.environ, "OMNIGES_TRACKING": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(copies)]
    outs = [proc.communicate()[0] for proc in procs]
    wall = time.perf_counter() - start
    return [(wall, out) for out in outs]


def process_overhead(jobs: int, work: Path) -> tuple[float, float]:
    """(seconds a stage process pays before it works, slowdown of `jobs` jobs computing side by side).

    A job's start: imports and an MLflow run in a sqlite store, `jobs` of them starting at once, as Snakemake starts
    them. The slowdown: a one-thread matrix loop run alone, then `jobs` copies at once (the DAG keeps `jobs` jobs
    running; other load on the machine counts too).
    """
    work.mkdir(parents=True, exist_ok=True)
    copies = max(1, min(jobs, os.cpu_count() or 1))
    _concurrently(STARTUP_PROBE, 1, work)  # creates the store: a run pays that once
    start = _concurrently(STARTUP_PROBE, copies, work)[0][0]
    alone = float(_concurrently(CPU_PROBE, 1, work)[0][1])
    side_by_side = max(float(out) for _, out in _concurrently(CPU_PROBE, copies, work))
    return start, max(1.0, side_by_side / alone)


def slurm_verdicts(costs: list[Cost], params: Params, profile: Path) -> list[Verdict]:
    """Does what the SLURM profile asks for cover the predicted time and memory of each job (on this device)?"""
    import yaml

    if not profile.is_file():
        return [Verdict("warn", "slurm", f"{profile}: no SLURM profile to check")]
    config = yaml.safe_load(profile.read_text()) or {}
    default, per_rule = config.get("default-resources", {}), config.get("set-resources", {})
    slurm = params.compute.slurm
    verdicts = []
    for cost in costs:
        rule = cost.name
        if not rule.startswith(("cache_", "train_evaluator")):
            rule = rule.split("_")[0]
        if rule in ("train", "rvqvae"):
            runtime, mem = slurm.runtime, slurm.mem_mb
        else:
            asked = {**default, **per_rule.get(rule, {})}
            runtime, mem = asked.get("runtime", 0), asked.get("mem_mb", 0)
        minutes = cost.seconds / 60
        if runtime and minutes > runtime:
            verdicts.append(Verdict("warn", "slurm", f"{cost.name}: predicted {minutes:.0f} min here > runtime "
                                                     f"{runtime} min asked"))
        if mem and cost.peak_mb > mem:
            verdicts.append(Verdict("warn", "slurm", f"{cost.name}: predicted peak {cost.peak_mb:.0f} MB > mem_mb "
                                                     f"{mem}"))
    if not verdicts:
        verdicts.append(Verdict("ok", "slurm", f"{profile}: every job's runtime and mem_mb cover the prediction "
                                               "(timed on this device; a cluster GPU differs)"))
    return verdicts


def run_preflight(params_path: str | Path = "params.yaml", *, read_all: bool = False, sample: int = 6,
                  jobs: int = 2, steps: tuple[int, int] = (2, 10), experiments: list[str] | None = None,
                  measure_stages: bool = True, echo: Callable[[str], None] = print) -> int:
    """Print the checks and the prediction; 1 if anything would fail, else 0."""
    params_path = Path(params_path)
    params, verdict = check_params(params_path)
    echo(verdict.line())
    if params is None:
        return 1
    device, verdict = check_device(params)
    verdicts = [verdict, *check_paths(params)]
    for v in verdicts:
        echo(v.line())
    corpus, readable, data_verdicts = survey_corpus(params, read_all=read_all, sample=sample)
    for v in data_verdicts:
        echo(v.line())
    verdicts += data_verdicts
    names = experiments or list(params.training.run)
    unknown = sorted(set(names) - set(params.training.experiments))
    if unknown:
        verdicts.append(Verdict("FAIL", "params", f"--experiments {','.join(unknown)}: not in training.experiments"))
        echo(verdicts[-1].line())
    if any(v.status == "FAIL" for v in verdicts) or not measure_stages:
        return _finish(verdicts, echo)
    echo(f"timing every stage on a sample ({', '.join(readable) or 'a small synthetic corpus'}); steps {steps[0]} "
         f"and {steps[1]}:")
    work = Path(tempfile.mkdtemp(prefix="omniges-preflight-"))
    try:
        costs = measure(params_path, params, corpus, readable, device=device, experiments=names, steps=steps,
                        work=work, echo=echo, train_threads=max(1, jobs // len(names)))
    except Exception as error:  # a stage that fails here fails in the run: say which, in one line
        verdicts.append(Verdict("FAIL", "stages", f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"))
        echo(verdicts[-1].line())
        return _finish(verdicts, echo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    probes = Path(tempfile.mkdtemp(prefix="omniges-preflight-probe-"))
    try:
        overhead, slowdown = process_overhead(jobs, probes)
    finally:
        shutil.rmtree(probes, ignore_errors=True)
    for cost in costs:
        cost.seconds *= slowdown
    verdicts.append(Verdict("ok", "stages", f"every stage ran on the sample on {device}"))
    echo(verdicts[-1].line())
    verdicts += _report(costs, params, corpus, jobs=jobs, overhead=overhead, slowdown=slowdown, device=device,
                        echo=echo)
    return _finish(verdicts, echo)


def _report(costs: list[Cost], params: Params, corpus: Corpus, *, jobs: int, overhead: float, slowdown: float,
            device: str, echo: Callable[[str], None]) -> list[Verdict]:
    echo(f"prediction for the whole run ({corpus.total_seconds / 3600:.2f} h of audio, {sum(corpus.clips.values())} "
         f"clips, {jobs} cores, on {device}):")
    echo(f"  {'stage':22s}{'time':>10s}{'peak MB':>10s}{'disk MB':>10s}  how")
    for cost in costs:
        echo(f"  {cost.name:22s}{_clock(cost.seconds):>10s}{cost.peak_mb:10.0f}{cost.disk_mb:10.1f}  {cost.how}")
    wall = schedule(costs, jobs, overhead)
    serial = sum(c.seconds for c in costs) + overhead * len(costs)
    disk = sum(c.disk_mb for c in costs)
    mlflow_mb = sum(c.disk_mb for c in costs if c.name.startswith(("train_", "rvqvae_", "render_")))
    echo(f"  total: {_clock(wall)} wall on {jobs} cores ({_clock(serial)} of work); disk {disk + mlflow_mb:.0f} MB "
         f"(caches and results {disk:.0f} MB + MLflow's artifact copies {mlflow_mb:.0f} MB)")
    echo("  assumptions: per-step and per-second costs as timed on the sample here (other load on this machine "
         "inflates them); fixed costs (building models, one validation and checkpoint) do not grow with the corpus; "
         f"each job also pays {overhead:.1f} s of process start (imports, MLflow run; {jobs} starting at once); "
         f"jobs side by side compute {slowdown:.2f}x slower than alone (times above include it); caches grow with "
         "audio seconds; peak memory is the sample's (training memory is O(batch)"
         + (", plus the training split held on the GPU" if device.startswith("cuda") else "") + ")")
    verdicts = []
    free = shutil.disk_usage(Path.cwd()).free / 2**20
    level = "ok" if free > 1.2 * (disk + mlflow_mb) else "FAIL"
    verdicts.append(Verdict(level, "disk", f"{free / 1024:.1f} GiB free here, {(disk + mlflow_mb) / 1024:.2f} GiB "
                                           "needed"))
    peak = max(costs, key=lambda c: c.peak_mb)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    where = f"{device} memory" if device.startswith("cuda") else f"RAM ({ram / 1024:.0f} GiB)"
    level = "FAIL" if not device.startswith("cuda") and peak.peak_mb * min(jobs, 2) > ram else "ok"
    verdicts.append(Verdict(level, "memory", f"peak {peak.peak_mb:.0f} MB ({peak.name}) per job; {where}"))
    verdicts += slurm_verdicts(costs, params, Path("workflow/profiles/slurm/config.yaml"))
    for v in verdicts:
        echo(v.line())
    Path("results").mkdir(exist_ok=True)
    prediction = {"wall_seconds": wall, "work_seconds": serial, "jobs": jobs, "device": device,
                  "process_overhead_s": overhead, "parallel_slowdown": slowdown,
                  "audio_hours": corpus.total_seconds / 3600,
                  "stages": [c.__dict__ for c in costs]}
    Path("results/preflight.json").write_text(json.dumps(prediction, indent=1, default=list))
    return verdicts


def _times(times: list[float]) -> str:
    return " / ".join(f"{t:.1f}" for t in times) + " s"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _finish(verdicts: list[Verdict], echo: Callable[[str], None]) -> int:
    failed = [v for v in verdicts if v.status == "FAIL"]
    warned = [v for v in verdicts if v.status == "warn"]
    if failed:
        echo(f"FAIL  preflight  {len(failed)} check(s) would fail the run (see FAIL above)")
        return 1
    echo("ok    preflight  ready to run" + (f" ({len(warned)} warning(s))" if warned else ""))
    return 0
