"""Rectified flow for Omniges: per-stream timesteps, CFG training, Euler/Heun sampling, windowed long generation.

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
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import Tensor, nn

from omniges.models.omniges_transformer import default, exists

Task = Literal["a2g", "t2g", "g2t", "g2a"]
AuxLoss = Callable[[str, Tensor, Tensor], dict[str, Tensor]]
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


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the valid (b, n) positions."""
    per_token = reduce((pred - target) ** 2, "b n d -> b n", "mean")
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def select(inputs: dict[str, Any], index: Tensor) -> dict[str, Any]:
    """Index every tensor of a (nested) batch dict along the batch axis."""
    picked = {}
    for key, value in inputs.items():
        if isinstance(value, dict):
            picked[key] = select(value, index)
        else:
            picked[key] = value[index] if isinstance(value, Tensor) else value
    return picked


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
    """Rectified-flow training and sampling hyperparameters, with the step / sampler / long-generation helpers."""

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

    def sampling_velocity(self, head: Tensor, x_t: Tensor, t: float) -> Tensor:
        """The velocity an ODE step at t < 1 follows: for x-prediction (x_hat - x_t) / (1 - t), unclipped.

        The t_eps clip is a loss weight in training (the head still learns x1); clipping it in sampling made
        Euler with more than 1 / t_eps steps stop short of the data, as a fraction of the last gap was never
        closed."""
        if self.prediction == "velocity":
            return head
        return (head - x_t) / (1 - t)

    def sampling_steps(self, model: nn.Module, steps: int) -> tuple[int, float | None]:
        """Steps to run and the step size d the shortcut network is told (None: it takes no step size).

        Shortcut training sees d in {1, 1/2, ..., 2 / max_shortcut_steps} and d = 0 (the flow velocity), so a step
        count below max_shortcut_steps that is not a power of two is rounded to the nearest one (with a warning),
        and from max_shortcut_steps on the network is told d = 0."""
        if steps < 1:
            raise ValueError(f"sampling needs at least one step, got {steps}")
        if not getattr(model.config, "shortcut", False):
            return steps, None
        if steps >= self.max_shortcut_steps:
            return steps, 0.0
        rounded = 2 ** round(math.log2(steps))
        if rounded != steps:
            warnings.warn(f"{steps} sampling steps use a step size the shortcut model was never trained on; "
                          f"running {rounded} (powers of two below {self.max_shortcut_steps} are trained)",
                          stacklevel=4)
        return rounded, 1.0 / rounded

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

    # training

    def sample_t(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        *,
        logit_normal_mean: float | None = None,
        std: float | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Training timesteps t = sigmoid(N(mean, std)) in (0, 1), shape (batch,)."""
        mean, std = default(logit_normal_mean, self.logit_normal_mean), default(std, self.logit_normal_std)
        return torch.sigmoid(mean + std * randn((batch,), generator, torch.device(device)))

    def noise(self, x1: Tensor, t: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """x_t = t x1 + (1 - t) x0 with x0 ~ N(0, I), and the velocity target x1 - x0."""
        x0 = randn(tuple(x1.shape), generator, x1.device)
        t = rearrange(t, "b -> b 1 1")
        return t * x1 + (1 - t) * x0, x1 - x0

    def condition_drop(
        self, task: Task, batch: int, p: float, generator: torch.Generator | None, device: torch.device,
        *, speaker: bool = False,
    ) -> dict[str, Tensor]:
        """Per-sample classifier-free-guidance drops of the conditioning streams (and of the speaker id)."""
        streams = TASK_CONDITIONS[task]
        drop_all = rand((batch,), generator, device) < p
        alone = {stream: p for stream in streams}
        if task == "a2g" and p > 0:
            alone["text"] = max(p, self.a2g_text_dropout)
        drops = {streams[0]: drop_all} if len(streams) == 1 else {
            stream: drop_all | (rand((batch,), generator, device) < alone[stream]) for stream in streams}
        if speaker:  # drawn last, so runs without speakers draw the same numbers as before
            drops["speaker"] = drop_all | (rand((batch,), generator, device) < self.speaker_dropout)
        return drops

    def training_step(
        self,
        model: nn.Module,
        batch: dict[str, Any],
        task: Task,
        *,
        cfg_dropout: float | None = None,
        generator: torch.Generator | None = None,
        aux_loss: AuxLoss | None = None,
    ) -> dict[str, Tensor]:
        """Losses of one batch for one task; 'loss' is the weighted sum to back-propagate.

        `aux_loss(stream, x1_pred, rows)` adds weighted terms computed on the one-step clean estimate
        x1_pred = x_t + (1 - t) v of the flow (not shortcut) rows, e.g. pose-space losses through the decoders.
        Flow rows regress (x1 - x_t) / (1 - t), which is x1 - x0 (t clipped at 1 - t_eps for x-prediction).

        Batch keys (masks True = valid): gesture (b, n, parts * latent), gesture_mask; wavlm (b, 4n, 768), mfcc
        (b, 4n, 128), audio_mask; text (b, n, text_feature_dim), text_mask, text_ids (b, n) per-frame G2T targets;
        codes {part: (b, n, layers)} optional for the code cross-entropy.
        """
        stream = TASK_GENERATES[task]
        reference = batch["gesture"] if stream == "text" else batch[DATA_KEY[stream]]
        b, device = reference.shape[0], reference.device
        p = 0.0 if task == "g2t" else default(cfg_dropout, self.cfg_dropout)
        drop = self.condition_drop(task, b, p, generator, device, speaker=exists(batch.get("speaker")))
        inputs, times = condition_inputs(task, batch, drop)
        if stream == "text":
            return self._text_step(model, batch, inputs, times, generator)
        return self._flow_step(model, batch, stream, inputs, times, generator, aux_loss, task=task)

    def _text_step(
        self, model: nn.Module, batch: dict[str, Any], inputs: dict[str, Any], times: dict[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """G2T: the text stream is a per-frame mask embedding at t = 0 over every gesture frame; vocabulary CE.

        Frames without a word should carry a blank id (e.g. the tokenizer's pad id) so silence is learned; ids < 0
        are ignored. The stream spans the gesture frames, as at inference, where no transcript mask exists.
        With `g2t_condition_noise` = s > 0 the gesture condition is itself noised to a per-sample t in [1 - s, 1]
        (and told so through its timestep): an augmentation against memorising the small corpus; inference
        reads clean gesture at t = 1.
        """
        mask = stream_mask(batch, "gesture")
        if self.g2t_condition_noise > 0 and model.training:
            gesture = inputs["gesture"]
            t_c = 1 - self.g2t_condition_noise * rand((gesture.shape[0],), generator, gesture.device)
            inputs = {**inputs, "gesture": self.noise(gesture, t_c, generator)[0]}
            times = {**times, "gesture": t_c}
        out = model(**inputs, text_mask=mask, **time_kwargs({**times, "text": 0.0}), generate={"text"})
        ids = batch["text_ids"]
        valid = mask & (ids >= 0)
        ce = F.cross_entropy(rearrange(out["text_logits"], "b n v -> b v n"), ids.clamp(min=0), reduction="none")
        text_ce = (ce * valid).sum() / valid.sum().clamp(min=1)
        return dict(text_ce=text_ce, loss=self.text_weight * text_ce)

    def _flow_step(
        self,
        model: nn.Module,
        batch: dict[str, Any],
        stream: str,
        inputs: dict[str, Any],
        times: dict[str, Tensor],
        generator: torch.Generator | None,
        aux_loss: AuxLoss | None = None,
        *,
        task: Task | None = None,
    ) -> dict[str, Tensor]:
        """Flow (and shortcut) velocity MSE on the generated stream, plus code CE when codes are given."""
        x1 = batch[DATA_KEY[stream]]
        mask = stream_mask(batch, stream)
        b, n, _ = x1.shape
        device = x1.device

        t = self.sample_t(b, generator, device=device)
        step = torch.zeros(b, device=device)
        shortcut = torch.zeros(b, dtype=torch.bool, device=device)
        num_shortcut = math.floor(b * self.shortcut_fraction + 0.5) if unwrap(model).config.shortcut else 0
        if num_shortcut:
            shortcut[:num_shortcut] = True
            levels = int(math.log2(self.max_shortcut_steps))
            exponent = torch.randint(
                1, levels + 1, (num_shortcut,), generator=generator, device=_gen_device(generator)
            )
            d = (2.0 ** -exponent.float()).to(device)
            start = torch.floor(rand((num_shortcut,), generator, device) * (1 / d - 1))
            t = torch.cat((start * d, t[num_shortcut:]))
            step = torch.cat((2 * d, step[num_shortcut:]))

        x_t, target = self.noise(x1, t, generator)
        if self.prediction == "x":  # x1 - x0, with 1 - t clipped exactly as a perfect prediction's velocity is
            target = self.velocity(x1, x_t, t)
        known = None
        if stream == "gesture" and self.prefix_prob > 0:
            has_prefix = rand((b,), generator, device) < self.prefix_prob
            length = torch.randint(
                1, self.max_prefix_tokens + 1, (b,), generator=generator, device=_gen_device(generator)
            )
            known = torch.arange(n, device=device) < rearrange(length.to(device) * has_prefix, "b -> b 1")
            x_t = torch.where(rearrange(known, "b n -> b n 1"), x1, x_t)
        loss_mask = mask & ~known if exists(known) else mask

        if num_shortcut:
            index = torch.arange(num_shortcut, device=device)
            sub = select(dict(inputs=inputs, times=times, x1=x1, x_t=x_t, mask=mask, known=known, t=t), index)
            bootstrap = self._shortcut_target(model, stream, sub, d)
            target = torch.cat((bootstrap, target[num_shortcut:]))

        with_codes = stream == "gesture" and "codes" in batch
        out = model(
            **inputs, **generated_inputs(stream, x_t, mask, known), **time_kwargs({**times, stream: t}),
            step_size=step, generate={stream}, with_code_logits=with_codes,
        )
        head = out[VELOCITY_KEY[stream]]
        pred = self.velocity(head, x_t, t)
        guide_delta = self._model_guidance(model, task, batch, stream, times, head, x_t, mask, known, t, step,
                                           ~shortcut)
        if exists(guide_delta):  # in velocity space: x-prediction's head is divided by the same 1 - t as the target
            target = target + (guide_delta if self.prediction == "velocity" else
                               guide_delta / self._remaining(t, x_t))
            head = head - guide_delta  # the aux losses score the unguided estimate, which is what the data is
        losses: dict[str, Tensor] = {}
        losses["flow"] = masked_mse(pred[~shortcut], target[~shortcut], loss_mask[~shortcut])
        loss = losses["flow"]
        if num_shortcut:
            losses["shortcut"] = masked_mse(pred[shortcut], target[shortcut], loss_mask[shortcut])
            loss = loss + self.shortcut_weight * losses["shortcut"]
        if with_codes:
            losses["code_ce"] = self._code_ce(out["code_logits"], batch["codes"], loss_mask)
            loss = loss + self.code_weight * losses["code_ce"]
        if exists(aux_loss) and bool((~shortcut).any()):
            rows = ~shortcut
            x1_pred = self.clean_estimate(head[rows], x_t[rows], t[rows])
            for name, value in aux_loss(stream, x1_pred, rows).items():
                losses[name] = value
                loss = loss + value
        losses["loss"] = loss
        return losses

    @torch.no_grad()
    def _model_guidance(
        self, model: nn.Module, task: Task | None, batch: dict[str, Any], stream: str, times: dict[str, Tensor],
        head: Tensor, x_t: Tensor, mask: Tensor, known: Tensor | None, t: Tensor, step: Tensor, flow_rows: Tensor,
    ) -> Tensor | None:
        """(w - 1) sg(head_cond - head_uncond) on the conditioned flow rows (zero elsewhere), or None without model
        guidance for `task`. One more forward pass (no gradient), every condition dropped as CFG training drops
        them."""
        scale = self.model_guidance.get(task) if exists(task) else None
        if not exists(scale) or scale == 1.0 or not times:
            return None
        conditioned = torch.stack(list(times.values())).amax(0) > 0
        rows = conditioned & flow_rows
        if not bool(rows.any()):
            return None
        b = x_t.shape[0]
        null = dict.fromkeys((*TASK_CONDITIONS[task], "speaker"), torch.ones(b, dtype=torch.bool, device=x_t.device))
        inputs, null_times = condition_inputs(task, batch, null)
        uncond = model(
            **inputs, **generated_inputs(stream, x_t, mask, known), **time_kwargs({**null_times, stream: t}),
            step_size=step, generate={stream}, with_code_logits=False,
        )[VELOCITY_KEY[stream]]
        delta = (scale - 1.0) * (head.detach() - uncond)
        return delta * rearrange(rows, "b -> b 1 1").to(delta.dtype)

    @torch.no_grad()
    def _shortcut_target(self, model: nn.Module, stream: str, sub: dict[str, Any], d: Tensor) -> Tensor:
        """Self-consistency target for step 2d: the mean of two chained d-steps of the current network.

        The smallest d is queried as d = 0 (the flow velocity), which grounds the chain of step sizes.
        """
        queried = torch.where(d <= 1 / self.max_shortcut_steps, torch.zeros_like(d), d)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            out = model(
                **sub["inputs"], **generated_inputs(stream, x, sub["mask"], sub["known"]),
                **time_kwargs({**sub["times"], stream: t}), step_size=queried, generate={stream},
                with_code_logits=False,
            )
            return self.velocity(out[VELOCITY_KEY[stream]], x, t)

        dd = rearrange(d, "b -> b 1 1")
        first = velocity(sub["x_t"], sub["t"])
        x_mid = sub["x_t"] + dd * first
        if exists(sub["known"]):
            x_mid = torch.where(rearrange(sub["known"], "b n -> b n 1"), sub["x1"], x_mid)
        second = velocity(x_mid, sub["t"] + d)
        return (first + second) / 2

    @staticmethod
    def _code_ce(logits: dict[str, Tensor], codes: dict[str, Tensor], mask: Tensor) -> Tensor:
        """Cross-entropy of the first quantizer layers' code logits, averaged over parts and valid frames."""
        total = 0.0
        for part, part_logits in logits.items():
            layers = part_logits.shape[2]
            ce = F.cross_entropy(
                rearrange(part_logits, "b n l c -> b c n l"), codes[part][..., :layers].long(), reduction="none"
            )
            total = total + (ce * rearrange(mask, "b n -> b n 1")).sum() / (mask.sum() * layers).clamp(min=1)
        return total / len(logits)

    # sampling

    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        task: Task,
        cond: dict[str, Any],
        *,
        steps: int = 4,
        guidance: float = 1.0,
        solver: Literal["euler", "heun"] = "euler",
        generator: torch.Generator | None = None,
        known: Tensor | None = None,
        known_mask: Tensor | None = None,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        batch_cfg: bool = False,
    ) -> Tensor:
        """Generate the task's stream: gesture latents (b, n, parts * latent), MFCC (b, 4n, 128) or text logits.

        guidance g mixes v = v_uncond + g (v_cond - v_uncond) (g = 1: conditional only, one evaluation per step)
        at the steps starting at lo <= t < hi of `guidance_interval` (Kynkaanniemi et al. 2024: guidance in a limited
        interval); `batch_cfg` evaluates both branches as one batch of 2b (the unconditional rows with their
        conditions masked out, as in CFG training; the same function as two calls, faster where a call is not bound
        by compute, e.g. a GPU). `known` / `known_mask` (b, n) clamp gesture frames to given clean values
        (inpainting, see generate_long).
        """
        assert solver in ("euler", "heun"), f"unknown solver {solver}"
        stream = TASK_GENERATES[task]
        inputs, times = condition_inputs(task, cond)
        caches: tuple[dict, dict, dict] = ({}, {}, {})

        if stream == "text":
            mask = stream_mask(cond, "gesture")

            def logits(conditional: bool) -> Tensor:
                given, given_times = (inputs, times) if conditional else ({}, {})
                out = model(**given, text_mask=mask, **time_kwargs({**given_times, "text": 0.0}), generate={"text"})
                return out["text_logits"]

            cond_logits = logits(True)
            return cond_logits if guidance == 1.0 else torch.lerp(logits(False), cond_logits, guidance)

        mask = self._generated_mask(model, task, cond)
        b, n = mask.shape
        width = model.config.gesture_latent_dim if stream == "gesture" else model.config.mfcc_dim
        x = randn((b, n, width), generator, mask.device)
        clamp = rearrange(known_mask, "b n -> b n 1") if exists(known_mask) else None
        steps, step_size = self.sampling_steps(model, steps)
        if batch_cfg and guidance != 1.0:  # rows b.. 2b: every condition dropped, the CFG training's null input
            doubled = {k: torch.cat([v, v]) if isinstance(v, Tensor) else v for k, v in cond.items()}
            dropped = torch.arange(2 * b, device=mask.device) >= b
            batched = condition_inputs(task, doubled, dict.fromkeys((*TASK_CONDITIONS[task], "speaker"), dropped))

        def paste(x: Tensor) -> Tensor:
            return torch.where(clamp, known, x) if exists(clamp) else x

        def evaluate(x: Tensor, t: float, given: dict[str, Any], given_times: dict[str, Tensor], cache: dict,
                     rows: int = 1) -> Tensor:
            def twice(v: Tensor | None) -> Tensor | None:
                return v if rows == 1 or not exists(v) else torch.cat([v] * rows)

            out = model(
                **given, **generated_inputs(stream, twice(x), twice(mask), twice(known_mask)),
                **time_kwargs({**given_times, stream: t}), step_size=step_size, generate={stream},
                with_code_logits=False, cache=cache,
            )
            return self.sampling_velocity(out[VELOCITY_KEY[stream]], twice(x), t)

        def velocity(x: Tensor, t: float) -> Tensor:
            x = paste(x)
            if guidance == 1.0 or not guidance_interval[0] <= t < guidance_interval[1]:
                return evaluate(x, t, inputs, times, caches[0])
            if batch_cfg:
                v_cond, v_uncond = evaluate(x, t, *batched, caches[2], rows=2).chunk(2)
            else:
                v_cond, v_uncond = evaluate(x, t, inputs, times, caches[0]), evaluate(x, t, {}, {}, caches[1])
            return torch.lerp(v_uncond, v_cond, guidance)

        grid = torch.linspace(0, 1, steps + 1).tolist()
        for t, t_next in zip(grid[:-1], grid[1:], strict=True):
            dt = t_next - t
            v = velocity(x, t)
            if solver == "heun" and t_next < 1:  # the last step is Euler: no velocity is defined at t = 1
                v = (v + velocity(x + dt * v, t_next)) / 2
            x = x + dt * v
        return paste(x)

    @staticmethod
    def _generated_mask(model: nn.Module, task: Task, cond: dict[str, Any]) -> Tensor:
        """Validity mask (b, n) of the stream to generate, from the conditions' lengths and masks."""
        fpt = model.config.frames_per_token
        if task == "g2a":
            gesture_mask = stream_mask(cond, "gesture")
            return default(cond.get("audio_mask"), repeat(gesture_mask, "b n -> b (n f)", f=fpt)).bool()
        if exists(cond.get("gesture_mask")):
            return cond["gesture_mask"].bool()
        if task == "t2g":
            text = cond["text"]
            return torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        audio_mask = stream_mask(cond, "audio")
        audio_mask = F.pad(audio_mask, (0, -audio_mask.shape[1] % fpt), value=False)
        return reduce(audio_mask, "b (n f) -> b n", "max", f=fpt)

    @torch.no_grad()
    def generate_long(
        self,
        model: nn.Module,
        task: Task,
        cond_full_length: dict[str, Any],
        *,
        window: int,
        overlap: int,
        steps: int = 4,
        guidance: float = 1.0,
        solver: Literal["euler", "heun"] = "euler",
        generator: torch.Generator | None = None,
        prefix: Tensor | None = None,
        **sample_kwargs: Any,
    ) -> Tensor:
        """Gesture latents for conditions of any length: windows of `window` tokens overlapping by `overlap`.

        Each window after the first is inpainted: its first `overlap` tokens are clamped to the previous window's
        last tokens (given clean, flagged as known), so the seam is continuous and memory stays bounded.
        `prefix` (b, p, D), p < window: known latents of the first p tokens (seed poses), clamped the same way.
        """
        assert task in ("a2g", "t2g"), "long generation produces gesture (a2g, t2g)"
        assert 0 <= overlap < window, "need 0 <= overlap < window"
        fpt = model.config.frames_per_token
        total = self._generated_mask(model, task, cond_full_length).shape[1]
        reference = cond_full_length["mfcc" if task == "a2g" else "text"]
        b, device = reference.shape[0], reference.device
        out = torch.zeros(b, total, model.config.gesture_latent_dim, device=device)
        done, start = 0, 0
        if exists(prefix):
            assert prefix.shape[1] < window, "the seed prefix must be shorter than a window"
            done = min(prefix.shape[1], total)
            out[:, :done] = prefix[:, :done].to(out)
        while done < total:
            end = min(start + window, total)
            cond = self._window(cond_full_length, start, end, fpt)
            num_known = done - start
            known_mask = repeat(torch.arange(end - start, device=device) < num_known, "n -> b n", b=b)
            x = self.sample(
                model, task, cond, steps=steps, guidance=guidance, solver=solver, generator=generator,
                known=out[:, start:end], known_mask=known_mask if num_known else None, **sample_kwargs,
            )
            out[:, done:end] = x[:, num_known:]
            done, start = end, end - overlap
        return out

    @torch.no_grad()
    def generate_overlapped(
        self, model: nn.Module, task: Task, cond: dict[str, Any], *, window: int, overlap: int, **kwargs: Any
    ) -> Tensor:
        """G2T logits (b, n, vocab) / G2A MFCC (b, 4n, 128) for gesture of any length, in overlapping windows.

        Windows of `window` gesture tokens start every `window - overlap` tokens, so each but the first also sees
        the previous window's last `overlap` tokens of motion as context; the outputs are cross-faded linearly
        over the shared span. Each window draws fresh noise from the one `generator` in `kwargs`.
        """
        assert task in ("g2t", "g2a"), "overlapped generation reads gesture (g2t, g2a)"
        assert 0 <= overlap < window, "need 0 <= overlap < window"
        rate = 1 if task == "g2t" else model.config.frames_per_token
        total = cond["gesture"].shape[1]
        out: Tensor | None = None
        start = 0
        while True:
            end = min(start + window, total)
            part = {k: v[:, start:end] if isinstance(v, Tensor) else v for k, v in cond.items()}
            y = self.sample(model, task, part, **kwargs)
            if out is None:
                out = y.new_zeros(y.shape[0], total * rate, y.shape[-1])
            shared = min(overlap, end - start) * rate if start else 0
            if shared:
                ramp = torch.arange(1, shared + 1, device=y.device, dtype=y.dtype) / (shared + 1)
                seam = slice(start * rate, start * rate + shared)
                out[:, seam] = torch.lerp(out[:, seam], y[:, :shared], rearrange(ramp, "n -> 1 n 1"))
            out[:, start * rate + shared : end * rate] = y[:, shared:]
            if end == total:
                return out
            start = end - overlap

    @staticmethod
    def _window(cond: dict[str, Any], start: int, end: int, frames_per_token: int) -> dict[str, Any]:
        """Slice conditions to tokens [start, end): token-rate keys directly, 30 fps audio keys by frames."""
        sliced = {}
        for key, value in cond.items():
            if not isinstance(value, Tensor) or value.ndim < 2:  # per-sample values (speaker) are not sliced
                sliced[key] = value
            elif key in ("wavlm", "mfcc", "audio_mask"):
                sliced[key] = value[:, start * frames_per_token : end * frames_per_token]
            else:
                sliced[key] = value[:, start:end]
        return sliced


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (training under a multi-process launch)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _gen_device(generator: torch.Generator | None) -> torch.device | None:
    """Device a generator draws on (None: default)."""
    return generator.device if exists(generator) else None
