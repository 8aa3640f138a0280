"""Train one RVQVAE part on normalised motion windows, and measure how well it reconstructs them.

Loss as GestureLSM `rvq_beatx_train.py`: SmoothL1 reconstruction + commit_weight × commitment (+ optional
SmoothL1 on frame velocities); AdamW(betas 0.9, 0.99), linear warmup then cosine decay to 10 % of lr.
Optional per-column weights scale both SmoothL1 terms (the face part's jaw columns: see `column_weights`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from tqdm.auto import tqdm

from omniges.data.body import joint_angle_error_deg, rot6d_to_axis_angle
from omniges.data.dataset import WindowSource
from omniges.tokenizer.rvqvae import RVQVAE, perplexity_of


def warmup_cosine(step: int, *, steps: int, warmup_steps: int, min_ratio: float = 0.1) -> float:
    """Learning-rate factor: linear warmup to 1, then cosine decay to `min_ratio` at `steps`."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def velocity(x: Tensor) -> Tensor:
    """Frame-to-frame differences along time: (B, T, D) -> (B, T-1, D)."""
    return x[:, 1:] - x[:, :-1]


def weighted_smooth_l1(rec: Tensor, target: Tensor, weights: Tensor | None) -> Tensor:
    """SmoothL1 over (B, T, D); with per-column `weights` (D,) each column counts by its weight / the mean weight,
    so all-ones weights give the plain mean."""
    if weights is None:
        return F.smooth_l1_loss(rec, target)
    per_column = F.smooth_l1_loss(rec, target, reduction="none").mean(dim=(0, 1))
    return (per_column * weights).sum() / weights.sum()


def check_windows(windows: np.ndarray | WindowSource, model: RVQVAE, name: str) -> Tensor | WindowSource:
    """Validate (N, T, input_width) finite windows and return them as a float32 tensor (a WindowSource, which
    reads its windows on demand, is checked for width only)."""
    if isinstance(windows, WindowSource):
        if windows.width != model.input_width:
            raise ValueError(f"{name}: windows of {windows.path} are {windows.width}-d, the model takes "
                             f"{model.input_width}")
        return windows
    windows = np.asarray(windows)
    if windows.ndim != 3 or windows.shape[-1] != model.input_width or len(windows) == 0:
        raise ValueError(f"{name} must be (N, T, {model.input_width}) with N > 0, got {windows.shape}")
    if not np.isfinite(windows).all():
        raise ValueError(f"{name} contains NaN or inf")
    return torch.as_tensor(windows, dtype=torch.float32)


@torch.no_grad()
def reconstruct(model: RVQVAE, windows: Tensor, *, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Eval-mode reconstruction and codes of every window: (rec (N, T, D), codes (N, T/4, q))."""
    model.eval()
    device = next(model.parameters()).device
    recs, codes = [], []
    for batch in windows.split(batch_size):
        batch = batch.to(device)
        recs.append(model(batch)["rec_pose"].cpu())
        codes.append(model.encode(batch)[0].cpu())
    return torch.cat(recs), torch.cat(codes)


def validation_errors(model: RVQVAE, windows: Tensor, *, batch_size: int = 64) -> dict[str, float]:
    """L1 / MSE / SmoothL1 of eval-mode reconstructions in normalised space."""
    rec, _ = reconstruct(model, windows, batch_size=batch_size)
    return dict(
        l1=F.l1_loss(rec, windows).item(),
        mse=F.mse_loss(rec, windows).item(),
        smooth_l1=F.smooth_l1_loss(rec, windows).item(),
    )


def train_rvqvae(
    model: RVQVAE,
    train_windows: np.ndarray | WindowSource,
    val_windows: np.ndarray | None,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    warmup_steps: int = 50,
    commit_weight: float = 0.02,
    velocity_weight: float = 0.1,
    seed: int = 0,
    grad_clip: float | None = 1.0,
    log_every: int = 50,
    log_fn: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
    device: str = "auto",
    mixed_precision: str = "no",
    gradient_accumulation_steps: int = 1,
    column_weights: np.ndarray | None = None,
) -> dict:
    """Train `model` in place on random windows ((N, T, dim), or read on demand from a WindowSource); returns
    metrics and history; ends in eval mode.

    Runs through accelerate on `device`, with mixed precision, and as DDP under a multi-process launch: each step
    draws one global batch of `batch_size x processes x gradient_accumulation_steps` windows and every process
    trains its shards of it; the codebook EMA sums the statistics of all processes. Deterministic for a seed on
    one device and thread count (torch and numpy RNGs are seeded here).
    """
    from omniges.training.trainer import effective_batch, make_accelerator

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = check_windows(train_windows, model, "train_windows")
    val = check_windows(val_windows, model, "val_windows") if val_windows is not None else None
    acc = make_accelerator(device, mixed_precision=mixed_precision,
                           gradient_accumulation_steps=gradient_accumulation_steps, find_unused_parameters=True)
    model.to(acc.device)
    weights = _column_weights(column_weights, model.input_width, acc.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, steps=steps, warmup_steps=warmup_steps)
    )
    val_initial = validation_errors(model, val) if val is not None else {}
    wrapped, optimizer = acc.prepare(model, optimizer)
    shards = acc.num_processes * gradient_accumulation_steps
    history: list[dict[str, float]] = []
    totals: dict[str, Tensor] = {}  # summed on the device over the log window, reduced when logged
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc="rvqvae", disable=not progress or not acc.is_main_process)
    for step in bar:
        indices = rng.integers(0, len(train), batch_size * shards)  # the same global batch on every process
        first = acc.process_index * gradient_accumulation_steps  # this process's first shard of the global batch
        micro_batches = [train[indices[(first + micro) * batch_size : (first + micro + 1) * batch_size]]
                         for micro in range(gradient_accumulation_steps)]
        terms = _accumulated_step(acc, wrapped, optimizer, micro_batches, seed=seed * 1_000_003 + step * 101,
                                  weights=weights, commit_weight=commit_weight, velocity_weight=velocity_weight,
                                  grad_clip=grad_clip)
        schedule.step()
        for key, value in terms.items():
            totals[key] = totals.get(key, 0.0) + value
        if (step + 1) % log_every == 0 or step + 1 == steps:
            count = (step % log_every) + 1
            means = acc.reduce(torch.stack(list(totals.values())), reduction="mean").tolist()
            averages = {k: v / count for k, v in zip(totals, means, strict=True)}
            record = dict(step=step + 1, lr=schedule.get_last_lr()[0], **averages)
            history.append(record)
            totals = {}
            bar.set_postfix(rec=f"{record['rec']:.4f}", ppl=f"{record['perplexity']:.1f}")
            if log_fn is not None and acc.is_main_process:
                log_fn(record)
    model.eval()
    elapsed = time.perf_counter() - start
    metrics = dict(steps=steps, seconds=elapsed, steps_per_second=steps / max(elapsed, 1e-9),
                   device=str(acc.device), processes=acc.num_processes, mixed_precision=mixed_precision,
                   effective_batch=effective_batch(batch_size, acc), history=history)
    return metrics | _final_errors(model, history, val, val_initial)


def _accumulated_step(acc, wrapped: torch.nn.Module, optimizer: torch.optim.Optimizer, micro_batches: list[Tensor],
                      *, seed: int, weights: Tensor | None, commit_weight: float, velocity_weight: float,
                      grad_clip: float | None) -> dict[str, Tensor]:
    """One optimizer step over this process's micro-batches (gradient accumulation); the mean loss terms.

    Each micro-batch reseeds torch with `seed + micro`, so the quantizer dropout agrees across processes."""
    terms: dict[str, Tensor] = {}
    for micro, batch in enumerate(micro_batches):
        x = batch.to(acc.device)
        torch.manual_seed(seed + micro)
        with acc.accumulate(wrapped):
            with acc.autocast():
                out = wrapped(x)
                loss, rec_loss, vel_loss = _losses(out, x, weights, commit_weight, velocity_weight)
            acc.backward(loss)
            if acc.sync_gradients and grad_clip is not None:
                acc.clip_grad_norm_(wrapped.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        micro_terms = dict(loss=loss, rec=rec_loss, commit=out["commit_loss"], velocity=vel_loss,
                           perplexity=out["perplexity"])
        for key, value in micro_terms.items():
            terms[key] = terms.get(key, 0.0) + value.detach().float() / len(micro_batches)
    return terms


def _column_weights(column_weights: np.ndarray | None, width: int, device: torch.device) -> Tensor | None:
    """The per-column reconstruction weights as a tensor on `device` (None: all columns weigh 1)."""
    if column_weights is None:
        return None
    weights = torch.as_tensor(np.asarray(column_weights, dtype=np.float32), device=device)
    if weights.shape != (width,) or not bool((weights >= 0).all()) or float(weights.sum()) <= 0:
        raise ValueError(f"column_weights must be {width} non-negative numbers, not all 0")
    return weights


def _losses(out: dict[str, Tensor], x: Tensor, weights: Tensor | None, commit_weight: float,
            velocity_weight: float) -> tuple[Tensor, Tensor, Tensor]:
    """(total, reconstruction, velocity) losses of one batch: weighted SmoothL1 + commitment + velocity."""
    rec = out["rec_pose"].float()
    rec_loss = weighted_smooth_l1(rec, x, weights)
    vel_loss = weighted_smooth_l1(velocity(rec), velocity(x), weights) if velocity_weight > 0 else rec.new_zeros(())
    return rec_loss + commit_weight * out["commit_loss"] + velocity_weight * vel_loss, rec_loss, vel_loss


def _final_errors(model: RVQVAE, history: list[dict[str, float]], val: Tensor | None,
                  val_initial: dict[str, float]) -> dict[str, float]:
    """The last logged training terms and the validation errors before and after training."""
    metrics = {f"train_{k}": v for k, v in history[-1].items() if k not in ("step", "lr")} if history else {}
    if val is not None:
        metrics.update({f"val_{k}_initial": v for k, v in val_initial.items()})
        metrics.update({f"val_{k}": v for k, v in validation_errors(model, val).items()})
    return metrics


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-18))


def code_statistics(codes: Tensor, nb_code: int) -> dict[str, list[float]]:
    """Per quantizer layer: distinct codes used, fraction of the codebook used, dead codes, perplexity."""
    layers = rearrange(codes, "n t q -> q (n t)")
    used = [int(torch.unique(layer).numel()) for layer in layers]
    return dict(
        codes_used=used,
        code_usage=[u / nb_code for u in used],
        dead_codes=[nb_code - u for u in used],
        perplexity=[float(perplexity_of(layer, nb_code)) for layer in layers],
    )


def reconstruction_report(
    model: RVQVAE,
    windows: np.ndarray,
    *,
    rot6d_joints: int | None,
    has_translation: bool,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    rot6d_offset: int = 0,
    batch_size: int = 64,
) -> dict:
    """Reconstruction quality of normalised windows, measured after denormalising with mean/std.

    Layout: `rot6d_joints` × 6 rot6d dims from `rot6d_offset` (face with jaw: offset 100, 1 joint),
    translation in the last 3 dims when `has_translation`; the rest (e.g. expressions) is `other_*`.
    """
    gt = check_windows(windows, model, "windows")
    rec, codes = reconstruct(model, gt, batch_size=batch_size)
    report: dict = dict(l1=F.l1_loss(rec, gt).item(), mse=F.mse_loss(rec, gt).item())
    scale = np.ones(model.input_width) if std is None else np.asarray(std, dtype=np.float64)
    shift = np.zeros(model.input_width) if mean is None else np.asarray(mean, dtype=np.float64)
    gt_raw = gt.double().numpy() * scale + shift
    rec_raw = rec.double().numpy() * scale + shift
    other = np.ones(model.input_width, dtype=bool)
    if rot6d_joints:
        dims = slice(rot6d_offset, rot6d_offset + 6 * rot6d_joints)
        other[dims] = False
        gt6 = rearrange(gt_raw[..., dims], "n t (j six) -> n t j six", six=6)
        rec6 = rearrange(rec_raw[..., dims], "n t (j six) -> n t j six", six=6)
        angles = joint_angle_error_deg(gt6, rec6)
        report.update(
            rot6d_l1=float(np.abs(gt6 - rec6).mean()),
            rot6d_mse=float(((gt6 - rec6) ** 2).mean()),
            joint_angle_error_deg=float(angles.mean()),
            joint_angle_error_deg_per_joint=angles.mean(axis=(0, 1)).tolist(),
        )
        if rot6d_joints == 1 and rot6d_offset > 0:  # the face's jaw: does its motion survive the tokenizer?
            angle = [np.linalg.norm(rot6d_to_axis_angle(v[..., 0, :]), axis=-1) for v in (gt6, rec6)]
            report["jaw_r"] = _pearson(*angle)
    if has_translation:
        other[-3:] = False
        diff = gt_raw[..., -3:] - rec_raw[..., -3:]
        report.update(
            translation_l1=float(np.abs(diff).mean()),
            translation_l2=float(np.linalg.norm(diff, axis=-1).mean()),
        )
    if other.any():
        diff = gt_raw[..., other] - rec_raw[..., other]
        report.update(other_l1=float(np.abs(diff).mean()), other_mse=float((diff**2).mean()))
    report.update(code_statistics(codes, model.nb_code))
    return report
