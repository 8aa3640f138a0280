"""Training a rectified flow: per-stream timesteps, condition drops (CFG), shortcut self-consistency targets,
clean known prefixes, model guidance, and the losses of one batch (flow MSE, shortcut, code and text CE)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor, nn

from omniges.helpers import default, exists
from omniges.models.flow import (
    DATA_KEY,
    TASK_CONDITIONS,
    TASK_GENERATES,
    VELOCITY_KEY,
    RectifiedFlow,
    Task,
    condition_inputs,
    generated_inputs,
    rand,
    randn,
    stream_mask,
    time_kwargs,
)

AuxLoss = Callable[[str, Tensor, Tensor], dict[str, Tensor]]


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


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (training under a multi-process launch)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _gen_device(generator: torch.Generator | None) -> torch.device | None:
    """Device a generator draws on (None: default)."""
    return generator.device if exists(generator) else None


class FlowLoss(RectifiedFlow):
    """The training losses of one batch for one task (`RectifiedFlow`'s fields set the draws and weights)."""

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
        if speaker:  # drawn last: the condition drops draw the same numbers with or without speakers
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
        b, device = x1.shape[0], x1.device
        t, step, d = self._draw_times(model, b, generator, device)
        num_shortcut = 0 if d is None else len(d)
        shortcut = torch.arange(b, device=device) < num_shortcut

        x_t, target = self.noise(x1, t, generator)
        if self.prediction == "x":  # x1 - x0, with 1 - t clipped exactly as a perfect prediction's velocity is
            target = self.velocity(x1, x_t, t)
        x_t, known = self._known_prefix(stream, x1, x_t, generator)
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
        noised = dict(x_t=x_t, mask=mask, known=known, t=t, step=step)
        guide_delta = self._model_guidance(model, task, batch, stream, times, head, noised, flow_rows=~shortcut)
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

    def _draw_times(self, model: nn.Module, b: int, generator: torch.Generator | None,
                    device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-sample t and the step size the network is told. The first `shortcut_fraction` of the batch are
        shortcut rows: d from {1/2, ..., 2 / max_shortcut_steps}, t on d's grid, told 2d; the rest are flow rows
        (told 0). Returns (t, step, d), d None when there are no shortcut rows."""
        t = self.sample_t(b, generator, device=device)
        step = torch.zeros(b, device=device)
        num_shortcut = math.floor(b * self.shortcut_fraction + 0.5) if unwrap(model).config.shortcut else 0
        if not num_shortcut:
            return t, step, None
        levels = int(math.log2(self.max_shortcut_steps))
        exponent = torch.randint(1, levels + 1, (num_shortcut,), generator=generator, device=_gen_device(generator))
        d = (2.0 ** -exponent.float()).to(device)
        start = torch.floor(rand((num_shortcut,), generator, device) * (1 / d - 1))
        return torch.cat((start * d, t[num_shortcut:])), torch.cat((2 * d, step[num_shortcut:])), d

    def _known_prefix(self, stream: str, x1: Tensor, x_t: Tensor,
                      generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """Gesture rows that get a clean known prefix (`prefix_prob`, 1..max_prefix_tokens tokens; with
        `stream_prefix_prob`, all but the last 1..max_prefix_tokens): x_t with those tokens set to x1, and the (b, n)
        known mask (None for other streams or prefix_prob 0)."""
        if stream != "gesture" or self.prefix_prob <= 0:
            return x_t, None
        (b, n, _), device = x1.shape, x1.device
        has_prefix = rand((b,), generator, device) < self.prefix_prob
        length = torch.randint(1, self.max_prefix_tokens + 1, (b,), generator=generator, device=_gen_device(generator))
        if self.stream_prefix_prob > 0:  # drawn only when on: the draws above stay those of runs without it
            live = (rand((b,), generator, device) < self.stream_prefix_prob).to(length.device)
            length = torch.where(live, (n - length).clamp(min=1), length)
        known = torch.arange(n, device=device) < rearrange(length.to(device) * has_prefix, "b -> b 1")
        return torch.where(rearrange(known, "b n -> b n 1"), x1, x_t), known

    @torch.no_grad()
    def _model_guidance(
        self, model: nn.Module, task: Task | None, batch: dict[str, Any], stream: str, times: dict[str, Tensor],
        head: Tensor, noised: dict[str, Any], *, flow_rows: Tensor,
    ) -> Tensor | None:
        """(w - 1) sg(head_cond - head_uncond) on the conditioned flow rows (zero elsewhere), or None without model
        guidance for `task`. One more forward pass (no gradient) on the same noised stream (`noised`: x_t, mask,
        known, t, step), every condition dropped as CFG training drops them."""
        x_t, mask, known, t, step = (noised[key] for key in ("x_t", "mask", "known", "t", "step"))
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
