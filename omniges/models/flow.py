"""Rectified flow for Omniges: the conventions, streams and parameterisation that training and sampling share.

Convention (every stream): t = 1 is clean data, t = 0 pure noise; x_t = t x1 + (1 - t) x0, velocity v = x1 - x0,
and sampling integrates dx/dt = v from t = 0 to 1. Few-step method: a shortcut model (Frans et al., 2024,
"One Step Diffusion via Shortcut Models"). The network also takes the step size d; d = 0 is the ordinary flow
velocity, and for d > 0 it is trained on the self-consistency target s(x_t, t, 2d) = (s(x_t, t, d) +
s(x_t + d s(x_t, t, d), t + d, d)) / 2, so sampling with N steps passes d = 1/N and 1-2 steps stay usable.

Parameterisation (`prediction`): with "x" (default) the network's head outputs the clean data x1 (or, for a
shortcut step, the point the step aims at) and the velocity is (x_hat - x_t) / (1 - t), 1 - t clipped at
`t_eps` (Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise"). A generated token carries
4 frames x 128 values but the demo streams are 128 wide: a velocity head must reproduce the input noise through
that bottleneck to cancel it and leaves it as jitter; a clean-data head never has to. The losses are the same
velocity MSE either way. "velocity" makes the head output v directly.

Training (loss targets, shortcut self-consistency, model guidance) is `flow_loss.FlowLoss`; sampling (Euler / Heun,
CFG, windowed long generation) is `flow_sampler.FlowSampler`. Both are this dataclass with its fields, so a
checkpoint's `flow` settings build either, and the train stages do not depend on the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor

from omniges.helpers import exists

Task = Literal["a2g", "t2g", "g2t", "g2a"]
TASK_GENERATES = {"a2g": "gesture", "t2g": "gesture", "g2t": "text", "g2a": "audio"}
TASK_CONDITIONS = {"a2g": ("audio", "text"), "t2g": ("text",), "g2t": ("gesture",), "g2a": ("gesture",)}
STREAM_KEYS = {
    "text": ("text", "text_mask"),
    "audio": ("wavlm", "mfcc", "audio_mask"),
    "gesture": ("gesture", "gesture_mask"),
}
DATA_KEY = {"text": "text", "audio": "mfcc", "gesture": "gesture"}
MASK_KEY = {"text": "text_mask", "audio": "audio_mask", "gesture": "gesture_mask"}
VELOCITY_KEY = {"gesture": "gesture_velocity", "audio": "mfcc_velocity"}


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Gaussian noise drawn from `generator` (on its own device), moved to `device`."""
    gen_device = generator.device if exists(generator) else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) noise drawn from `generator`, moved to `device`."""
    gen_device = generator.device if exists(generator) else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def stream_mask(inputs: dict[str, Any], stream: str) -> Tensor:
    """The (b, n) validity mask of a stream, all True when not given."""
    mask = inputs.get(MASK_KEY[stream])
    if exists(mask):
        return mask.bool()
    data = inputs[DATA_KEY[stream]]
    return torch.ones(data.shape[:2], dtype=torch.bool, device=data.device)



def condition_inputs(
    task: Task, cond: dict[str, Any], drop: dict[str, Tensor] | None = None
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Model inputs of the task's conditioning streams and their t (1 present, 0 absent or dropped per sample)."""
    inputs, times = {}, {}
    for stream in TASK_CONDITIONS[task]:
        if not exists(cond.get(DATA_KEY[stream])):
            continue
        mask = stream_mask(cond, stream)
        if exists(drop) and stream in drop:
            mask = mask & ~rearrange(drop[stream], "b -> b 1")
        inputs.update({key: cond.get(key) for key in STREAM_KEYS[stream]})
        inputs[MASK_KEY[stream]] = mask
        times[stream] = mask.any(dim=-1).float()
    speaker = cond.get("speaker")
    if exists(speaker):  # (b,) indices; a dropped one becomes -1, the unknown speaker
        dropped = drop.get("speaker") if exists(drop) else None
        inputs["speaker"] = torch.where(dropped, -1, speaker) if exists(dropped) else speaker
    return inputs, times


def time_kwargs(times: dict[str, Tensor | float]) -> dict[str, Tensor | float]:
    """t_text / t_audio / t_gesture keyword arguments; absent streams get t = 0."""
    return {f"t_{stream}": times.get(stream, 0.0) for stream in ("text", "audio", "gesture")}


def generated_inputs(stream: str, x: Tensor, mask: Tensor, known: Tensor | None = None) -> dict[str, Any]:
    """Model inputs carrying the noised generated stream (audio: MFCC only, WavLM replaced by the null)."""
    if stream == "audio":
        return dict(mfcc=x, audio_mask=mask, wavlm=None)
    return dict(gesture=x, gesture_mask=mask, gesture_known=known)


@dataclass(kw_only=True)
class RectifiedFlow:
    """Rectified-flow hyperparameters and parameterisation (what the heads output, and the velocity from it)."""

    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    cfg_dropout: float = 0.1  # drop all conditions with p, and each one independently with p
    # A2G's optional transcript is dropped alone this often, so the model also works from speech alone
    # (`omniges generate --audio` without a transcript) instead of leaning on the text.
    a2g_text_dropout: float = 0.5
    # the speaker id is dropped with every condition (CFG) and alone this often, so unknown speakers work too
    speaker_dropout: float = 0.1
    shortcut_fraction: float = 0.25  # share of a batch trained on the shortcut self-consistency target
    max_shortcut_steps: int = 128  # smallest trained shortcut step is 1 / max_shortcut_steps
    prefix_prob: float = 0.25  # share of gesture samples with a clean known prefix (windowed inpainting)
    max_prefix_tokens: int = 8
    # share of the prefixed rows whose prefix is all but the last 1..max_prefix_tokens tokens, as the windows of a
    # live stream are (omniges.streaming: emitted motion, then a hop and its lookahead to generate); 0 = off
    stream_prefix_prob: float = 0.0
    shortcut_weight: float = 1.0
    code_weight: float = 1.0
    text_weight: float = 1.0
    g2t_condition_noise: float = 0.0  # G2T: noise the gesture condition to t in [1 - this, 1] while training
    prediction: Literal["x", "velocity"] = "x"  # what the velocity heads output: clean data, or v itself
    t_eps: float = 0.05  # x-prediction: 1 - t is clipped at this in (x_hat - x_t) / (1 - t)
    # model guidance (Tang et al. 2025, "Diffusion models without classifier-free guidance"): per task, the scale w
    # of a guidance learned in training. Conditioned rows regress v + (w - 1) sg(v_cond - v_uncond), the current
    # network's own guidance direction, so sampling at guidance 1 (one call per step) gives what CFG at w gave
    model_guidance: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prediction not in ("x", "velocity"):
            raise ValueError(f"flow.prediction must be 'x' or 'velocity', got {self.prediction!r}")

    def velocity(self, head: Tensor, x_t: Tensor, t: Tensor | float) -> Tensor:
        """The flow velocity from a velocity head's output at (x_t, t); t a float or per-sample (b,)."""
        if self.prediction == "velocity":
            return head
        return (head - x_t) / self._remaining(t, x_t)

    def clean_estimate(self, head: Tensor, x_t: Tensor, t: Tensor | float) -> Tensor:
        """The one-step clean estimate x1_hat = x_t + (1 - t) v."""
        if self.prediction == "x":
            return head
        return x_t + self._remaining(t, x_t, clip=False) * head

    def _remaining(self, t: Tensor | float, like: Tensor, *, clip: bool = True) -> Tensor:
        """1 - t as a (b, 1, 1) tensor (clipped at t_eps for x-prediction)."""
        remaining = 1 - torch.as_tensor(t, dtype=like.dtype, device=like.device)
        remaining = remaining.clamp(min=self.t_eps) if clip else remaining
        return rearrange(remaining, "b -> b 1 1") if remaining.ndim == 1 else remaining
