"""Generator losses beyond the flow objective: gesture reconstruction in pose space through the frozen decoders.

The flow's one-step clean estimate of the gesture latents is decoded by the frozen RVQVAE decoders and
compared with the normalised ground-truth parts (L1), plus velocity and acceleration consistency (L1 of
first / second time differences). Weights come from params (`training.loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from omniges.data.body import PART_NAMES
from omniges.models.flow_loss import masked_mse
from omniges.tokenizer.processor import GestureProcessor


@dataclass(kw_only=True)
class LossWeights:
    """Weights of the loss terms beside the flow MSE (which weighs 1): `training.loss`."""

    code: float = 0.1
    text: float = 1.0
    shortcut: float = 1.0
    reconstruction: float = 0.5
    velocity: float = 0.5
    acceleration: float = 0.25
    latent_velocity: float = 0.3


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean |pred - target| over valid (b, t) steps: pred/target (b, t, d), mask (b, t) bool."""
    weight = mask[..., None].to(pred.dtype)
    return ((pred - target).abs() * weight).sum() / (weight.sum() * pred.shape[-1]).clamp(min=1)


def pose_space_losses(
    processor: GestureProcessor, x1_pred: Tensor, batch: dict[str, Any], rows: Tensor, weights: LossWeights
) -> dict[str, Tensor]:
    """Decode predicted latents (b, n, 4C) and compare with the batch's normalised parts at 30 fps."""
    frames = x1_pred.shape[1] * 4
    decoded = processor.decode_from_latents(x1_pred, num_frames=frames)
    mask = batch["frame_mask"][rows][:, :frames]
    rec = vel = acc = x1_pred.new_zeros(())
    for part in PART_NAMES:
        pred, target = decoded[part], batch[f"part_{part}"][rows][:, :frames]
        rec = rec + masked_l1(pred, target, mask)
        vel = vel + masked_l1(pred.diff(dim=1), target.diff(dim=1), mask[:, 1:] & mask[:, :-1])
        acc = acc + masked_l1(pred.diff(n=2, dim=1), target.diff(n=2, dim=1), mask[:, 2:] & mask[:, :-2])
    n = len(PART_NAMES)
    return {
        "pose_rec": weights.reconstruction * rec / n,
        "pose_vel": weights.velocity * vel / n,
        "pose_acc": weights.acceleration * acc / n,
    }


def latent_velocity_loss(x1_pred: Tensor, batch: dict[str, Any], rows: Tensor, weight: float) -> dict[str, Tensor]:
    """MSE of token-to-token latent changes: the clean estimate must move between tokens as the data does.

    The flow loss scores each token on its own; an estimate whose per-token errors are independent decodes to
    jittery motion even when every token is close."""
    target, mask = batch["gesture"][rows], batch["gesture_mask"][rows]
    return {"latent_vel": weight * masked_mse(x1_pred.diff(dim=1), target.diff(dim=1), mask[:, 1:] & mask[:, :-1])}


def mfcc_l1(x1_pred: Tensor, batch: dict[str, Any], rows: Tensor, weight: float) -> dict[str, Tensor]:
    """G2A: L1 of the clean MFCC estimate (normalised) against the paired audio's."""
    return {"audio_l1": weight * masked_l1(x1_pred, batch["mfcc"][rows], batch["frame_mask"][rows])}


def guard_finite(losses: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fail loudly on a NaN/inf loss rather than training on it."""
    bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
    if bad:
        raise FloatingPointError(f"non-finite loss terms: {bad}")
    return losses

