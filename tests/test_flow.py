"""Rectified flow: noise / t sampling, exact solvers on known fields, CFG, training losses, long generation seams."""

from __future__ import annotations

import math
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from omniges.models.flow_loss import FlowLoss
from omniges.models.flow_sampler import FlowSampler
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel, exists


class RectifiedFlow(FlowLoss, FlowSampler):
    """Both halves of the flow, for tests that train a toy model and then sample it."""


TINY = dict(
    text_feature_dim=16, text_dim=32, audio_dim=32, gesture_dim=32, wavlm_dim=24, mfcc_dim=12, latent_dim=8,
    num_codes=16, num_code_layers=2, vocab_size=50, depth=2, heads=2, dim_head=16, time_embed_dim=16, dim_cond=32,
    audio_fusion_layers=1, audio_fusion_heads=2,
)
FLOW = RectifiedFlow(prediction="velocity")  # the closed-form toy fields below are velocities
FLOW_X = RectifiedFlow()  # the default: heads predict clean data


def tiny_model(seed: int = 0, **overrides) -> OmnigesTransformerModel:
    """Tiny demo-shaped model with all parameters perturbed (so time modulation is not zero)."""
    torch.manual_seed(seed)
    random.seed(seed)
    model = OmnigesTransformerModel(OmnigesConfig.demo(**{**TINY, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def tiny_batch(config: OmnigesConfig, b: int = 4, n: int = 6, seed: int = 1) -> dict:
    """A training batch for every task (codes and text ids included)."""
    g = torch.Generator().manual_seed(seed)
    f = config.frames_per_token
    return dict(
        text=torch.randn(b, n, config.text_feature_dim, generator=g),
        text_mask=torch.ones(b, n, dtype=torch.bool),
        text_ids=torch.randint(0, config.vocab_size, (b, n), generator=g),
        wavlm=torch.randn(b, f * n, config.wavlm_dim, generator=g),
        mfcc=torch.randn(b, f * n, config.mfcc_dim, generator=g),
        audio_mask=torch.ones(b, f * n, dtype=torch.bool),
        gesture=torch.randn(b, n, config.gesture_latent_dim, generator=g),
        gesture_mask=torch.ones(b, n, dtype=torch.bool),
        codes={p: torch.randint(0, config.num_codes, (b, n, 6), generator=g) for p in config.gesture_parts},
    )


class ToyModel(nn.Module):
    """Closed-form velocity field with the generator's call signature."""

    def __init__(self, velocity, *, width: int = 3):
        super().__init__()
        self.velocity = velocity
        self.config = SimpleNamespace(gesture_latent_dim=width, mfcc_dim=width, frames_per_token=4, shortcut=True)
        self.calls = 0

    def forward(self, *, gesture=None, gesture_known=None, mfcc=None, t_gesture, generate, **cond):
        self.calls += 1
        v = self.velocity(x=gesture, t=t_gesture, known=gesture_known, cond=dict(cond, mfcc=mfcc))
        return {"gesture_velocity": v}


def audio_cond(b: int = 2, n: int = 5) -> dict:
    """A2G conditions for n gesture tokens."""
    return dict(mfcc=torch.randn(b, 4 * n, 3), audio_mask=torch.ones(b, 4 * n, dtype=torch.bool))


def first_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The x0 the sampler draws first from a generator seeded with `seed`."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_sample_t_is_logit_normal_in_unit_interval_and_seeded():
    t = FLOW.sample_t(4000, torch.Generator().manual_seed(0))
    assert t.shape == (4000,) and 0 < t.min() and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.03
    shifted = FLOW.sample_t(4000, torch.Generator().manual_seed(0), logit_normal_mean=1.0)
    assert shifted.median() > 0.65
    torch.testing.assert_close(t, FLOW.sample_t(4000, torch.Generator().manual_seed(0)))


def test_noise_is_straight_interpolation_with_velocity_target():
    x1 = torch.randn(3, 5, 2)
    t = torch.tensor([0.0, 0.3, 1.0])
    x_t, v = FLOW.noise(x1, t, torch.Generator().manual_seed(0))
    x0 = first_noise((3, 5, 2), 0)
    torch.testing.assert_close(v, x1 - x0)
    torch.testing.assert_close(x_t, t.view(3, 1, 1) * x1 + (1 - t.view(3, 1, 1)) * x0)
    torch.testing.assert_close(x_t[2], x1[2])  # t = 1 is clean data
    torch.testing.assert_close(x_t[0], x0[0])  # t = 0 is pure noise


ORACLE_STEPS = [1, 2, 3, 4, 8, 32, 64]


@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("prediction", ["x", "velocity"])
@pytest.mark.parametrize("steps", ORACLE_STEPS)
def test_an_oracle_model_recovers_the_data_exactly(solver, prediction, steps):
    """For point data the exact field is known: x-prediction's head is x1, velocity's (x1 - x_t) / (1 - t)."""
    target = torch.linspace(-2, 2, 5 * 3).view(1, 5, 3).expand(2, 5, 3)
    flow = RectifiedFlow(prediction=prediction)
    head = (lambda x, **_: target.clone()) if prediction == "x" else (lambda x, t, **_: (target - x) / (1 - t))
    model = ToyModel(head)
    rounded = 2 ** round(math.log2(steps))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = flow.sample(model, "a2g", audio_cond(), steps=steps, solver=solver,
                          generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target, atol=1e-5, rtol=1e-5)
    assert [str(w.message).split(" sampling")[0] for w in caught] == ([str(steps)] if rounded != steps else [])
    assert model.calls == (rounded if solver == "euler" else 2 * rounded - 1)  # Heun's last step is Euler


def test_step_counts_follow_the_trained_shortcut_step_sizes():
    model = ToyModel(lambda x, **_: x)
    assert FLOW.sampling_steps(model, 2) == (2, 0.5)
    with pytest.warns(UserWarning, match="6 sampling steps"):
        assert FLOW.sampling_steps(model, 6) == (8, 0.125)
    assert FLOW.sampling_steps(model, 128) == (128, 0.0)  # below the smallest trained step: the flow velocity
    assert FLOW.sampling_steps(model, 200) == (200, 0.0)
    model.config.shortcut = False
    assert FLOW.sampling_steps(model, 6) == (6, None)
    with pytest.raises(ValueError, match="at least one step"):
        FLOW.sampling_steps(model, 0)


def test_x_prediction_velocity_and_clean_estimate_invert_each_other():
    x1, x_t = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    t = torch.tensor([0.0, 0.5, 0.99])
    v = FLOW_X.velocity(x1, x_t, t)
    torch.testing.assert_close(v[:2], ((x1 - x_t) / (1 - t.view(3, 1, 1)))[:2])
    torch.testing.assert_close(v[2], (x1 - x_t)[2] / FLOW_X.t_eps)  # 1 - t clipped near the data end
    torch.testing.assert_close(FLOW_X.clean_estimate(x1, x_t, t), x1)
    torch.testing.assert_close(FLOW.clean_estimate(v, x_t, t[:2].mean()), x_t + 0.75 * v)
    with pytest.raises(ValueError, match="prediction"):
        RectifiedFlow(prediction="eps")


def test_x_prediction_training_loss_is_zero_for_the_true_clean_point():
    batch = dict(gesture=torch.randn(3, 5, 4), mfcc=torch.randn(3, 20, 4),
                 audio_mask=torch.ones(3, 20, dtype=torch.bool))
    model = ToyModel(lambda x, **_: batch["gesture"], width=4)
    flow = RectifiedFlow(shortcut_fraction=0.0, prefix_prob=0.0, cfg_dropout=0.0)
    losses = flow.training_step(model, batch, "a2g", generator=torch.Generator().manual_seed(0))
    assert losses["flow"].item() < 1e-10


def test_heun_is_more_accurate_than_euler_on_a_curved_field():
    model = ToyModel(lambda x, t, **_: x * (1 + t))  # dx/dt = (1 + t) x  ->  x(1) = x0 exp(1.5)
    exact = first_noise((2, 5, 3), 0) * torch.exp(torch.tensor(1.5))
    errors = {}
    for solver in ("euler", "heun"):  # Heun's last step is Euler (no velocity at t = 1): still second order
        generator = torch.Generator().manual_seed(0)
        out = FLOW.sample(model, "a2g", audio_cond(), steps=8, solver=solver, generator=generator)
        errors[solver] = (out - exact).abs().max().item()
    assert errors["heun"] < errors["euler"] / 4


def test_guidance_mixes_conditional_and_unconditional_velocity():
    model = ToyModel(lambda x, cond, **_: torch.ones_like(x) if cond["mfcc"] is not None else torch.zeros_like(x))
    x0 = first_noise((2, 5, 3), 0)
    for guidance in (1.0, 3.0):
        out = FLOW.sample(model, "a2g", audio_cond(), steps=2, guidance=guidance,
                          generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, x0 + guidance)


def test_guidance_one_equals_plain_conditional_euler_on_the_real_model():
    model = tiny_model().eval()
    cond = {k: v[:2] for k, v in tiny_batch(model.config).items() if k in ("wavlm", "mfcc", "audio_mask", "text")}
    out = FLOW.sample(model, "a2g", cond, steps=4, guidance=1.0, generator=torch.Generator().manual_seed(5))
    x = first_noise((2, 6, model.config.gesture_latent_dim), 5)
    with torch.no_grad():
        for i in range(4):
            times = dict(t_text=1.0, t_audio=1.0, t_gesture=i / 4, step_size=1 / 4)
            v = model(**cond, gesture=x, **times, generate={"gesture"})
            x = x + v["gesture_velocity"] / 4
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


def test_sampling_is_deterministic_by_generator_seed():
    model = tiny_model().eval()
    cond = tiny_batch(model.config, b=1)
    runs = [FLOW.sample(model, "a2g", cond, steps=2, guidance=2.0, generator=torch.Generator().manual_seed(s))
            for s in (7, 7, 8)]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_sample_shapes_for_every_task():
    model = tiny_model().eval()
    c = model.config
    batch = tiny_batch(c, b=2)
    shapes = {"a2g": (2, 6, c.gesture_latent_dim), "t2g": (2, 6, c.gesture_latent_dim),
              "g2a": (2, 24, c.mfcc_dim), "g2t": (2, 6, c.vocab_size)}
    for task, shape in shapes.items():
        out = FLOW.sample(model, task, batch, steps=1, guidance=1.5, solver="heun",
                          generator=torch.Generator().manual_seed(0))
        assert out.shape == shape, task
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("task", ["a2g", "t2g", "g2t", "g2a"])
def test_training_step_losses_backpropagate_and_are_seeded(task):
    model = tiny_model().train()
    batch = tiny_batch(model.config)
    losses = FLOW.training_step(model, batch, task, generator=torch.Generator().manual_seed(0))
    expected = {"g2t": {"text_ce", "loss"}, "g2a": {"flow", "shortcut", "loss"}}.get(
        task, {"flow", "shortcut", "code_ce", "loss"}
    )
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    head = {"g2t": model.to_text_logits, "g2a": model.to_mfcc_velocity}.get(task, model.to_gesture_velocity)
    assert head.weight.grad.abs().sum() > 0
    again = FLOW.training_step(model, batch, task, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again["loss"], losses["loss"])


def test_training_step_ignores_padded_frames():
    model = tiny_model().train()
    batch = tiny_batch(model.config, b=2)
    batch["gesture_mask"][:, 4:] = False
    scrambled = dict(batch, gesture=batch["gesture"].clone())
    scrambled["gesture"][:, 4:] = 100.0
    a = FLOW.training_step(model, batch, "t2g", generator=torch.Generator().manual_seed(0))
    b = FLOW.training_step(model, scrambled, "t2g", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a["loss"], b["loss"])


def test_a_few_optimizer_steps_reduce_the_flow_loss():
    model = tiny_model().train()
    batch = tiny_batch(model.config, b=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    flow = RectifiedFlow(shortcut_fraction=0.0, cfg_dropout=0.0, prefix_prob=0.0)
    losses = []
    for _ in range(25):
        loss = flow.training_step(model, batch, "a2g", generator=torch.Generator().manual_seed(0))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_shortcut_target_is_exact_for_straight_paths():
    target = torch.randn(2, 5, 3)
    model = ToyModel(lambda x, t, **_: (target - x) / (1 - torch.as_tensor(t).view(-1, 1, 1)))
    x_t, t, d = torch.randn(2, 5, 3), torch.tensor([0.0, 0.25]), torch.tensor([0.25, 0.125])
    sub = dict(inputs={}, times={}, x1=target, x_t=x_t, mask=torch.ones(2, 5, dtype=torch.bool), known=None, t=t)
    bootstrap = FLOW._shortcut_target(model, "gesture", sub, d)
    torch.testing.assert_close(bootstrap, (target - x_t) / (1 - t.view(2, 1, 1)))


def test_inpainting_returns_known_frames_exactly():
    model = tiny_model().eval()
    cond = tiny_batch(model.config, b=2)
    known = torch.randn(2, 6, model.config.gesture_latent_dim)
    known_mask = torch.zeros(2, 6, dtype=torch.bool)
    known_mask[:, :2] = True
    out = FLOW.sample(model, "a2g", cond, steps=2, known=known, known_mask=known_mask,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, :2], known[:, :2])
    assert not torch.allclose(out[:, 2:], known[:, 2:])


def test_generate_long_with_one_window_equals_sample():
    model = tiny_model().eval()
    cond = {k: v for k, v in tiny_batch(model.config, b=1).items() if k in ("wavlm", "mfcc", "audio_mask")}
    whole = FLOW.sample(model, "a2g", cond, steps=2, generator=torch.Generator().manual_seed(3))
    long = FLOW.generate_long(model, "a2g", cond, window=8, overlap=2, steps=2,
                              generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(whole, long)


RAMP = 0.05  # the toy motion's frame-to-frame step


def continuation_velocity(x, t, known, **_):
    """Toy field: a ramp of slope RAMP continuing the last known frame, or at a random offset without one."""
    n = x.shape[1]
    ramp = RAMP * torch.arange(n, dtype=x.dtype).view(1, n, 1)
    if known is not None and known.any():
        last = known.sum(dim=1) - 1  # known frames are a prefix
        anchor = x[torch.arange(x.shape[0]), last].unsqueeze(1) - RAMP * last.view(-1, 1, 1)
    else:
        anchor = 3 * x.mean(dim=1, keepdim=True)
    return (anchor + ramp - x) / (1 - t)


@pytest.mark.parametrize("overlap", [0, 3])
def test_generate_long_windows_join_without_seams(overlap):
    model = ToyModel(continuation_velocity)
    cond = audio_cond(b=2, n=40)
    out = FLOW.generate_long(model, "a2g", cond, window=10, overlap=overlap, steps=1,
                             generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 40, 3)
    jumps = (out[:, 1:] - out[:, :-1]).abs()
    if overlap:
        assert jumps.max() <= 1.5 * RAMP  # no boundary moves more than a typical frame
        torch.testing.assert_close(out[:, -1] - out[:, 0], torch.full((2, 3), 39 * RAMP))
    else:
        assert jumps.max() > 5 * RAMP  # the control: independent windows do jump


class CaptureText(nn.Module):
    """Records what the G2T step feeds the model; returns zero text logits."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(shortcut=False)
        self.seen = []

    def forward(self, *, gesture, t_gesture, text_mask, generate, **_):
        self.seen.append((gesture.clone(), torch.as_tensor(t_gesture).clone()))
        return {"text_logits": torch.zeros(*text_mask.shape, 7, requires_grad=True)}


def test_g2t_condition_noise_only_in_training_and_reported_through_its_timestep():
    batch = dict(gesture=torch.randn(4, 5, 3), gesture_mask=torch.ones(4, 5, dtype=torch.bool),
                 text_ids=torch.randint(0, 7, (4, 5)))
    flow, model = RectifiedFlow(g2t_condition_noise=0.5), CaptureText()
    flow.training_step(model, batch, "g2t", generator=torch.Generator().manual_seed(0))
    noised, t = model.seen[-1]
    assert ((t >= 0.5) & (t <= 1.0)).all() and (t < 1).any()
    assert not torch.allclose(noised, batch["gesture"])
    model.eval()
    flow.training_step(model, batch, "g2t", generator=torch.Generator().manual_seed(0))
    clean, t = model.seen[-1]
    torch.testing.assert_close(clean, batch["gesture"])
    assert (t == 1).all()


class ZeroAudioVelocity(nn.Module):
    """G2A toy: zero velocity, so each window's output is exactly the noise it drew."""

    def __init__(self, width: int = 3):
        super().__init__()
        self.config = SimpleNamespace(gesture_latent_dim=width, mfcc_dim=width, frames_per_token=4, shortcut=False)

    def forward(self, *, mfcc, generate, **_):
        return {"mfcc_velocity": torch.zeros_like(mfcc)}


def test_g2a_windows_draw_fresh_noise_and_cross_fade_their_shared_context():
    model, window, overlap = ZeroAudioVelocity(), 6, 2
    cond = dict(gesture=torch.randn(1, 10, 3), gesture_mask=torch.ones(1, 10, dtype=torch.bool))
    out = FLOW.generate_overlapped(model, "g2a", cond, window=window, overlap=overlap, steps=2,
                                   generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    first, second = torch.randn(1, 24, 3, generator=g), torch.randn(1, 24, 3, generator=g)  # windows [0, 6), [4, 10)
    assert out.shape == (1, 40, 3)
    torch.testing.assert_close(out[:, :16], first[:, :16])
    torch.testing.assert_close(out[:, 24:], second[:, 8:])  # fresh noise, not the first window's again
    ramp = (torch.arange(1, 9) / 9).view(1, 8, 1)
    torch.testing.assert_close(out[:, 16:24], torch.lerp(first[:, 16:24], second[:, :8], ramp))


@pytest.mark.parametrize("task", ["g2t", "g2a"])
def test_overlapped_generation_with_one_window_equals_sample(task):
    model = tiny_model().eval()
    cond = {k: v[:1] for k, v in tiny_batch(model.config).items() if k in ("gesture", "gesture_mask")}
    whole = FLOW.sample(model, task, cond, steps=2, generator=torch.Generator().manual_seed(3))
    overlapped = FLOW.generate_overlapped(model, task, cond, window=8, overlap=2, steps=2,
                                          generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(overlapped, whole)
    windowed = FLOW.generate_overlapped(model, task, cond, window=4, overlap=1, steps=2,
                                        generator=torch.Generator().manual_seed(3))
    assert windowed.shape == whole.shape and torch.isfinite(windowed).all()


def test_batched_cfg_equals_two_calls_on_the_real_model():
    model = tiny_model().eval()
    cond = {k: v[:2] for k, v in tiny_batch(model.config).items() if k in ("wavlm", "mfcc", "audio_mask", "text",
                                                                         "text_mask")}
    cond["audio_mask"][0, -4:] = False
    runs = [FLOW_X.sample(model, "a2g", cond, steps=2, guidance=2.5, batch_cfg=batch,
                          generator=torch.Generator().manual_seed(4)) for batch in (False, True)]
    torch.testing.assert_close(runs[1], runs[0], atol=1e-5, rtol=1e-5)
    speaking = tiny_model(num_speakers=3).eval()  # the unconditional rows drop the speaker id too
    cond["speaker"] = torch.tensor([0, 2])
    runs = [FLOW_X.sample(speaking, "a2g", cond, steps=2, guidance=2.5, batch_cfg=batch,
                          generator=torch.Generator().manual_seed(4)) for batch in (False, True)]
    torch.testing.assert_close(runs[1], runs[0], atol=1e-5, rtol=1e-5)


def test_guidance_interval_guides_only_the_steps_inside_it():
    calls = []
    model = ToyModel(lambda x, t, cond, **_: calls.append(t) or torch.full_like(x, float(exists(cond.get("mfcc")))))
    x0 = first_noise((2, 5, 3), 0)
    for interval, expected in (((0.0, 1.0), 2.0), ((0.0, 0.5), 1.5), ((0.5, 1.0), 1.5)):
        calls.clear()
        out = FLOW.sample(model, "a2g", audio_cond(), steps=2, guidance=2.0, guidance_interval=interval,
                          generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, x0 + expected)  # v_cond = 1, v_uncond = 0: guided steps move 2x
        assert len(calls) == (4 if interval == (0.0, 1.0) else 3)


def test_model_guidance_shifts_the_target_of_conditioned_flow_rows_only():
    model = tiny_model().eval()  # no dropout: the same call twice gives the same output
    batch = tiny_batch(model.config)
    kwargs = dict(shortcut_fraction=0.25, prefix_prob=0.0, cfg_dropout=0.0)
    plain = RectifiedFlow(**kwargs).training_step(model, batch, "a2g", generator=torch.Generator().manual_seed(0))
    same = RectifiedFlow(**kwargs, model_guidance={"a2g": 1.0}).training_step(
        model, batch, "a2g", generator=torch.Generator().manual_seed(0))
    assert same.keys() == plain.keys() and all(torch.equal(same[k], plain[k]) for k in plain)  # w = 1: no change
    guided = RectifiedFlow(**kwargs, model_guidance={"a2g": 3.0})
    assert RectifiedFlow(**kwargs, model_guidance={"t2g": 3.0}).training_step(
        model, batch, "a2g", generator=torch.Generator().manual_seed(0))["flow"] == plain["flow"]  # other task
    out = guided.training_step(model, batch, "a2g", generator=torch.Generator().manual_seed(0))
    assert out["flow"] != plain["flow"] and torch.equal(out["shortcut"], plain["shortcut"])

    from omniges.models.flow import condition_inputs, generated_inputs, time_kwargs

    b, n = batch["gesture"].shape[:2]
    drop = {"audio": torch.tensor([False, True, False, False]), "text": torch.tensor([False, True, True, False])}
    inputs, times = condition_inputs("a2g", batch, drop)  # row 1 unconditioned, row 2 audio only
    x_t, t, step = torch.randn(b, n, model.config.gesture_latent_dim), torch.full((b,), 0.4), torch.zeros(b)
    mask, flow_rows = batch["gesture_mask"], torch.tensor([True, True, True, False])  # row 3 a shortcut row

    def head(given, given_times):
        return model(**given, **generated_inputs("gesture", x_t, mask), **time_kwargs({**given_times, "gesture": t}),
                     step_size=step, generate={"gesture"})["gesture_velocity"]

    cond = head(inputs, times)
    null = dict.fromkeys(("audio", "text", "speaker"), torch.ones(b, dtype=torch.bool))
    uncond = head(*condition_inputs("a2g", batch, null))
    noised = dict(x_t=x_t, mask=mask, known=None, t=t, step=step)
    delta = guided._model_guidance(model, "a2g", batch, "gesture", times, cond, noised, flow_rows=flow_rows)
    torch.testing.assert_close(delta[[0, 2]], 2.0 * (cond - uncond)[[0, 2]])
    assert not delta[[1, 3]].any() and (cond - uncond)[[0, 2]].abs().sum() > 0


def test_a_checkpoint_trained_with_model_guidance_samples_its_task_at_guidance_one(tmp_path, monkeypatch):
    from conftest import write_tiny_checkpoint

    from omniges.inference import GenerationSettings, Omniges

    path = write_tiny_checkpoint(tmp_path, tasks=("a2g", "t2g"), flow={"model_guidance": {"a2g": 1.5}})
    model = Omniges.load(path, cache_dir=tmp_path / "data/cache", rvqvae_dir=tmp_path / "results/rvqvae",
                         settings=GenerationSettings(guidance=2.0, task_guidance={"t2g": 4.0}))
    assert model.guidance_for("a2g") == 1.0 and model.guidance_for("t2g") == 4.0
    seen = []
    monkeypatch.setattr(type(model.flow), "generate_long", lambda self, *a, guidance, **k: seen.append(guidance) or
                        torch.zeros(1, 4, model.model.config.gesture_latent_dim))
    speech = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    model.a2g(speech, seed=0)
    model.a2g(speech, seed=0, guidance=3.0)  # an explicit guidance still applies
    assert seen[0] == 1.0 and seen[-1] == 3.0


def test_stream_prefixes_leave_only_the_last_tokens_to_generate():
    """flow.stream_prefix_prob: a share of the prefixed rows know all but their last 1..max_prefix_tokens tokens
    (a live stream's windows); at 0 the draws are those of a run without the option."""
    x1, x_t = torch.ones(64, 32, 4), torch.zeros(64, 32, 4)
    plain = FlowLoss(prefix_prob=1.0, max_prefix_tokens=8)
    _, known = plain._known_prefix("gesture", x1, x_t, torch.Generator().manual_seed(0))
    assert known.sum(1).max() <= 8
    _, again = FlowLoss(prefix_prob=1.0, max_prefix_tokens=8, stream_prefix_prob=0.0)._known_prefix(
        "gesture", x1, x_t, torch.Generator().manual_seed(0))
    assert torch.equal(known, again)
    live = FlowLoss(prefix_prob=1.0, max_prefix_tokens=8, stream_prefix_prob=0.5)
    mixed, known = live._known_prefix("gesture", x1, x_t, torch.Generator().manual_seed(0))
    lengths = known.sum(1)
    long_rows = lengths >= 24
    assert 10 < long_rows.sum() < 54 and bool((lengths[~long_rows] <= 8).all())
    assert bool(((32 - lengths[long_rows]) <= 8).all())  # 1..8 tokens left to generate
    assert torch.equal(mixed[known], x1[known]) and not mixed[~known].any()
