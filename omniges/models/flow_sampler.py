"""Sampling a rectified flow: Euler / Heun with the shortcut step size, classifier-free guidance (two calls or one
batched call, in a guidance interval), inpainting of known tokens, and windowed generation of any length."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import Tensor, nn

from omniges.helpers import default, exists
from omniges.models.flow import (
    TASK_CONDITIONS,
    TASK_GENERATES,
    VELOCITY_KEY,
    RectifiedFlow,
    Task,
    condition_inputs,
    generated_inputs,
    randn,
    stream_mask,
    time_kwargs,
)


class FlowSampler(RectifiedFlow):
    """Generates a task's stream from its conditions with a trained network (`RectifiedFlow`'s fields)."""

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
            return self._text_logits(model, cond, inputs, times, guidance)

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

        return paste(self._integrate(x, velocity, steps, solver))

    @staticmethod
    def _integrate(x: Tensor, velocity, steps: int, solver: str) -> Tensor:
        """x at t = 1 from x at t = 0: `steps` equal Euler or Heun steps of dx/dt = velocity(x, t)."""
        grid = torch.linspace(0, 1, steps + 1).tolist()
        for t, t_next in zip(grid[:-1], grid[1:], strict=True):
            dt = t_next - t
            v = velocity(x, t)
            if solver == "heun" and t_next < 1:  # the last step is Euler: no velocity is defined at t = 1
                v = (v + velocity(x + dt * v, t_next)) / 2
            x = x + dt * v
        return x

    @staticmethod
    def _text_logits(model: nn.Module, cond: dict[str, Any], inputs: dict[str, Any], times: dict[str, Tensor],
                     guidance: float) -> Tensor:
        """G2T: vocabulary logits of the text stream (a mask embedding at t = 0 over the gesture frames)."""
        mask = stream_mask(cond, "gesture")

        def logits(conditional: bool) -> Tensor:
            given, given_times = (inputs, times) if conditional else ({}, {})
            out = model(**given, text_mask=mask, **time_kwargs({**given_times, "text": 0.0}), generate={"text"})
            return out["text_logits"]

        cond_logits = logits(True)
        return cond_logits if guidance == 1.0 else torch.lerp(logits(False), cond_logits, guidance)

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
