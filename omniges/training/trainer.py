"""The accelerate training loop: warm-up + cosine, clipping, EMA, mixed precision, DDP, accumulation, exact resume.

Every source of randomness is a function of (seed, step, shard): the task (MultiTaskSampler), the batch (a
per-epoch permutation) and the noise/dropout (torch seeded per step and shard). A step's global batch is
`batch_size x processes x gradient_accumulation_steps` samples cut into shards of `batch_size`; shard
`process x accumulation + micro-step` is the same data with the same noise whichever way the shards are spread,
so 2 processes x 1 micro-step and 1 process x 2 micro-steps take the same steps (up to float reduction order).
A run killed after a checkpoint and resumed takes exactly the steps the uninterrupted run takes.
"""

from __future__ import annotations

import copy
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState
from tqdm import tqdm

from omniges.data.resident import data_on_device_setting
from omniges.data.sampler import MultiTaskSampler
from omniges.device import DeviceError, resolve_device, to_device, world_size

log = logging.getLogger("omniges.train")
LossFn = Callable[[torch.nn.Module, dict[str, Any], str, torch.Generator], dict[str, torch.Tensor]]


@dataclass
class TrainConfig:
    """Plain data: the `training` section of params.yaml for one experiment (common settings, steps, tasks).

    The defaults are params.yaml's (tests/test_config.py checks they agree)."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    checkpoint_every: int = 200
    val_every: int = 100
    log_every: int = 20
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_accumulation_steps: int = 1
    seed: int = 0
    num_workers: int = 0  # DataLoader workers building batches ahead of the step (0: in the training process)
    prefetch_factor: int = 2  # batches each worker keeps ready
    data_on_device: str = "auto"  # hold the training split on the device (auto: on a GPU it fits in; see resident)
    resident_max_fraction: float = 0.25  # auto holds a split of at most this fraction of the GPU's memory
    tasks: dict[str, float] = field(default_factory=lambda: {"a2g": 1.0})
    task_mode: str = "probability"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"training: unknown keys {sorted(unknown)}")
        config = cls(**values)
        if config.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"training.mixed_precision must be no, bf16 or fp16, got {config.mixed_precision!r}")
        if config.gradient_accumulation_steps < 1:
            raise ValueError("training.gradient_accumulation_steps must be >= 1")
        config.data_on_device = data_on_device_setting(config.data_on_device)
        return config


def make_accelerator(
    device: str = "auto", *, mixed_precision: str = "no", gradient_accumulation_steps: int = 1,
    find_unused_parameters: bool = False,
) -> Accelerator:
    """An Accelerator on `compute.device` (DDP when launched with several processes).

    `find_unused_parameters` lets DDP reduce gradients when a step leaves some parameters out (multitask heads).
    In a single process the accelerate state is reset first, so stages run one after another in one process may
    use different devices and precisions.
    """
    target = resolve_device(device)
    if mixed_precision == "fp16" and target.type != "cuda":
        raise DeviceError("mixed_precision fp16 needs a CUDA GPU; use bf16 (or no) on the CPU")
    if world_size() == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        if target.type == "cuda":
            torch.cuda.set_device(target)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    return Accelerator(cpu=target.type == "cpu", mixed_precision=mixed_precision, kwargs_handlers=handlers,
                       gradient_accumulation_steps=gradient_accumulation_steps)


def effective_batch(batch_size: int, accelerator: Accelerator) -> int:
    """Samples per optimizer step: per-device batch x processes x accumulation steps."""
    return batch_size * accelerator.num_processes * accelerator.gradient_accumulation_steps


def lr_lambda(step: int, *, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 10 % of the peak."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(step: int, *, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """This process's slice of the global batch at `step` (a fresh permutation each epoch)."""
    global_batch = batch_size * world
    per_epoch = max(1, size // global_batch)
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(size)
    if size < global_batch:
        order = np.resize(order, global_batch)
    start = offset * global_batch + rank * batch_size
    return order[start : start + batch_size].tolist()


class StepShards(torch.utils.data.Sampler):
    """This process's batch indices for steps [start, stop), `micro_steps` shards a step, as `train_step` takes
    them: a DataLoader over it builds the same batches in workers, ahead of use (each rank reads its own shards)."""

    def __init__(self, *, start: int, stop: int, size: int, batch_size: int, seed: int, process: int, processes: int,
                 micro_steps: int):
        self.start, self.stop, self.size, self.batch_size, self.seed = start, stop, size, batch_size, seed
        self.process, self.processes, self.micro_steps = process, processes, micro_steps

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.micro_steps

    def __iter__(self):
        for step in range(self.start, self.stop):
            for micro in range(self.micro_steps):
                yield batch_indices(step, size=self.size, batch_size=self.batch_size, seed=self.seed,
                                    rank=self.process * self.micro_steps + micro,
                                    world=self.processes * self.micro_steps)


class ResidentLoader:
    """The batches of `shards` gathered from device-resident windows, in the order a DataLoader would give them."""

    def __init__(self, resident, shards: StepShards):
        self.resident, self.batch_sampler = resident, shards

    def __iter__(self):
        return (self.resident.batch(ids) for ids in self.batch_sampler)


class EMA:
    """EMA of the weights used for evaluation; decay warms up as min(decay, (1+n)/(10+n)) for short runs."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].lerp_(value.detach(), 1.0 - decay)
            else:
                self.shadow[key].copy_(value)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic torch.save."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


class Trainer:
    """Trains `model` with `loss_fn(model, batch, task, generator) -> {name: loss, 'loss': total}`."""

    def __init__(
        self, model: torch.nn.Module, *, train_set, val_set, collate: Callable, loss_fn: LossFn, config: TrainConfig,
        out_dir: str | Path, log_metrics: Callable[[dict[str, float], int], None] | None = None,
        accelerator: Accelerator | None = None, device: str = "auto",
    ):
        self.config, self.out_dir = config, Path(out_dir)
        self.accelerator = accelerator or make_accelerator(
            device, mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps, find_unused_parameters=True)
        self.train_set, self.val_set, self.collate, self.loss_fn = train_set, val_set, collate, loss_fn
        self.log_metrics = log_metrics or (lambda metrics, step: None)
        self.sampler = MultiTaskSampler(config.tasks, mode=config.task_mode, seed=config.seed)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_lambda(s, warmup=config.warmup_steps, total=config.steps)
        )
        # the scheduler is stepped here once per optimizer step (accelerate's wrapper steps it once per process)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = scheduler
        self.ema = EMA(self.accelerator.unwrap_model(self.model), config.ema_decay)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.resident = None  # a ResidentWindows of train_set: batches gathered on the device instead of loaded

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "ema": self.ema.shadow,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler else None,
            "config": asdict(self.config),
            "history": self.history,
        }

    def resume(self) -> bool:
        """Continue from `checkpoints/last.pt` when it exists."""
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.ema.shadow = state["ema"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.accelerator.scaler and state.get("scaler"):
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.step, self.history = state["step"], state["history"]
        log.info("resumed from %s at step %d", self.checkpoint_path, self.step)
        return True

    def _batch(self, dataset, indices: list[int]) -> dict[str, Any]:
        if self.resident is not None and dataset is self.train_set:
            return self.resident.batch(indices)
        return to_device(self.collate([dataset[i] for i in indices]), self.accelerator.device)

    def _generator(self, step: int, shard: int = 0) -> torch.Generator:
        seed = self.config.seed * 1_000_003 + step * 101 + shard
        torch.manual_seed(seed)
        return torch.Generator(device=self.accelerator.device).manual_seed(seed)

    @property
    def effective_batch(self) -> int:
        return effective_batch(self.config.batch_size, self.accelerator)

    def loader(self, stop: int) -> torch.utils.data.DataLoader:
        """Batches of this process from the current step to `stop`, built by `num_workers` workers (pinned for a
        GPU, prefetched): the same batches, in the same order, as building them in the training loop."""
        cfg, acc = self.config, self.accelerator
        shards = StepShards(start=self.step, stop=stop, size=len(self.train_set), batch_size=cfg.batch_size,
                            seed=cfg.seed, process=acc.process_index, processes=acc.num_processes,
                            micro_steps=acc.gradient_accumulation_steps)
        if self.resident is not None:
            return ResidentLoader(self.resident, shards)
        workers = cfg.num_workers
        return torch.utils.data.DataLoader(
            self.train_set, batch_sampler=shards, collate_fn=self.collate, num_workers=workers,
            pin_memory=acc.device.type == "cuda", prefetch_factor=cfg.prefetch_factor if workers else None,
            persistent_workers=False,
        )

    def train_step(self, batches=None) -> dict[str, float]:
        """One optimizer step over the global batch; losses are means over every process and micro-step.

        `batches` (an iterator over `loader`) supplies this step's shards; without it they are built here."""
        return self._reduce(self._step(batches))

    def _reduce(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Means over the processes (a collective: every process calls it at the same steps)."""
        names = sorted(losses)
        means = self.accelerator.reduce(torch.stack([losses[k] for k in names]), reduction="mean").tolist()
        return dict(zip(names, means, strict=True))

    def _step(self, batches=None) -> dict[str, torch.Tensor]:
        """One optimizer step; this process's losses (means over its micro-steps), left on the device."""
        cfg, acc = self.config, self.accelerator
        task = self.sampler.task_at(self.step)
        micro_steps = acc.gradient_accumulation_steps
        self.model.train()
        totals: dict[str, torch.Tensor] = {}
        for micro in range(micro_steps):
            shard = acc.process_index * micro_steps + micro
            if batches is None:
                indices = batch_indices(self.step, size=len(self.train_set), batch_size=cfg.batch_size,
                                        seed=cfg.seed, rank=shard, world=acc.num_processes * micro_steps)
                batch = self._batch(self.train_set, indices)
            else:
                batch = to_device(next(batches), acc.device)
            generator = self._generator(self.step, shard)
            with acc.accumulate(self.model):
                with acc.autocast():
                    losses = self.loss_fn(self.model, batch, task, generator)
                acc.backward(losses["loss"])
                if acc.sync_gradients and cfg.grad_clip > 0:
                    acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float() / micro_steps
        self.scheduler.step()
        self.ema.update(acc.unwrap_model(self.model), self.step)
        self.step += 1
        return {f"train/{task}/{k}": v for k, v in totals.items()}

    @torch.no_grad()
    def validate(self, max_batches: int = 8) -> dict[str, float]:
        """Mean loss per task on the validation windows, with EMA weights and fixed noise."""
        model = self.accelerator.unwrap_model(self.model)
        backup = copy.deepcopy(model.state_dict())
        model.load_state_dict(self.ema.shadow)
        model.eval()
        out: dict[str, float] = {}
        size = len(self.val_set)
        for task in self.sampler.tasks:
            totals = []
            for b in range(min(max_batches, math.ceil(size / self.config.batch_size))):
                indices = list(range(b * self.config.batch_size, min(size, (b + 1) * self.config.batch_size)))
                generator = torch.Generator(device=self.accelerator.device).manual_seed(1000 + b)
                losses = self.loss_fn(model, self._batch(self.val_set, indices), task, generator)
                totals.append(float(losses["loss"]))
            out[f"val/{task}/loss"] = float(np.mean(totals))
        model.load_state_dict(backup)
        return out

    def fit(self, *, stop_after: int | None = None, progress: bool = True) -> dict[str, float]:
        """Train to `config.steps` (or stop after `stop_after` more steps, as a kill would); returns last metrics."""
        cfg = self.config
        target = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        quiet = not progress or not self.accelerator.is_main_process
        bar = tqdm(total=target, initial=self.step, desc="train", disable=quiet)
        window_start, window_samples, metrics = time.perf_counter(), 0, {}
        batches = iter(self.loader(target))
        while self.step < target:
            losses = self._step(batches)  # reduced (a device sync) only on the steps that log
            window_samples += self.effective_batch
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == target:
                metrics = self._reduce(losses)
                elapsed = time.perf_counter() - window_start
                metrics.update({
                    "lr": self.scheduler.get_last_lr()[0],
                    "samples_per_second": window_samples / max(elapsed, 1e-9),
                    "peak_memory_mb": peak_memory_mb(self.accelerator.device),
                    "effective_batch": self.effective_batch,
                })
                self.log_metrics(metrics, self.step)
                bar.set_postfix(loss=f"{next(v for k, v in metrics.items() if k.endswith('/loss')):.4f}")
                window_start, window_samples = time.perf_counter(), 0
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                val = self.validate()
                self.history.append({"step": self.step, **val})
                self.log_metrics(val, self.step)
                metrics.update(val)
            if self.accelerator.is_main_process and (self.step % cfg.checkpoint_every == 0 or self.step == target):
                save_checkpoint(self.checkpoint_path, self.state())
        bar.close()
        return metrics

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.ema.shadow.items()}
