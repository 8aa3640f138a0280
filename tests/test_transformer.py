"""OmnigesTransformerModel: shapes per task, masks, per-modality time conditioning, absent streams, configs."""

from __future__ import annotations

import random

import pytest
import torch

from omniges.models.omniges_transformer import (
    MemoizedCondition,
    OmnigesConfig,
    OmnigesTransformerModel,
    count_parameters,
    seconds_positional_encoding,
    sinkhorn,
)

TINY = dict(
    text_feature_dim=16, text_dim=32, audio_dim=32, gesture_dim=32, wavlm_dim=24, mfcc_dim=12, latent_dim=8,
    num_codes=16, num_code_layers=2, vocab_size=50, depth=2, heads=2, dim_head=16, time_embed_dim=16, dim_cond=32,
    audio_fusion_layers=1, audio_fusion_heads=2,
)


def tiny_model(seed: int = 0, **overrides) -> OmnigesTransformerModel:
    """A tiny demo-shaped model with every parameter perturbed (MMDiT zero-inits its time modulation)."""
    torch.manual_seed(seed)
    random.seed(seed)  # mHC hyper-connections pick their initial stream with Python's random
    model = OmnigesTransformerModel(OmnigesConfig.demo(**{**TINY, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def tiny_inputs(config: OmnigesConfig, b: int = 2, n: int = 6, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random inputs for all three streams, n gesture tokens (4n audio frames)."""
    g = torch.Generator().manual_seed(seed)
    f = config.frames_per_token
    return dict(
        text=torch.randn(b, n, config.text_feature_dim, generator=g),
        text_mask=torch.ones(b, n, dtype=torch.bool),
        wavlm=torch.randn(b, f * n, config.wavlm_dim, generator=g),
        mfcc=torch.randn(b, f * n, config.mfcc_dim, generator=g),
        audio_mask=torch.ones(b, f * n, dtype=torch.bool),
        gesture=torch.randn(b, n, config.gesture_latent_dim, generator=g),
        gesture_mask=torch.ones(b, n, dtype=torch.bool),
    )



TIMES = dict(t_text=1.0, t_audio=1.0, t_gesture=0.4)


def test_configs_presets_round_trip_and_reject_unknown_keys():
    full, demo = OmnigesConfig.full(), OmnigesConfig.demo()
    assert (full.text_dim, full.audio_dim, full.gesture_latent_dim, full.depth, full.num_residual_streams) == (
        1024, 512, 512, 12, 4,
    )
    assert full.tokens_per_second == 7.5
    assert demo.num_residual_streams == 2 and demo.depth == 4 and demo.text_feature_dim == 384
    assert OmnigesConfig.from_dict(demo.to_dict()) == demo
    with pytest.raises(ValueError, match="depht"):
        OmnigesConfig.from_dict({"depht": 3})


def test_full_size_parameter_count_on_meta_device():
    with torch.device("meta"):
        full = count_parameters(OmnigesTransformerModel(OmnigesConfig.full()))
        demo = count_parameters(OmnigesTransformerModel(OmnigesConfig.demo()))
    assert 300e6 < full < 360e6
    assert 5e6 < demo < 12e6


@pytest.mark.parametrize(
    ("generate", "drop"),
    [({"gesture"}, ()), ({"gesture"}, ("wavlm", "mfcc", "audio_mask")), ({"text"}, ("text",)), ({"audio"}, ("wavlm",))],
)
def test_output_shapes_per_task(generate, drop):
    model = tiny_model()
    c = model.config
    inputs = {k: v for k, v in tiny_inputs(c).items() if k not in drop}
    with torch.no_grad():
        out = model(**inputs, **TIMES, generate=generate)
    assert set(out) == {
        "gesture": {"gesture_velocity", "code_logits"}, "text": {"text_logits"}, "audio": {"mfcc_velocity"}
    }[next(iter(generate))]
    if "gesture" in generate:
        assert out["gesture_velocity"].shape == (2, 6, c.gesture_latent_dim)
        assert set(out["code_logits"]) == set(c.gesture_parts)
        assert all(v.shape == (2, 6, 2, 16) for v in out["code_logits"].values())
    if "text" in generate:
        assert out["text_logits"].shape == (2, 6, c.vocab_size)
    if "audio" in generate:
        assert out["mfcc_velocity"].shape == (2, 24, c.mfcc_dim)


def test_audio_frames_not_multiple_of_token_are_padded_and_cropped():
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    inputs = {**inputs, "wavlm": None, "mfcc": inputs["mfcc"][:, :22], "audio_mask": inputs["audio_mask"][:, :22]}
    with torch.no_grad():
        out = model(**inputs, **TIMES, generate={"audio"})
    assert out["mfcc_velocity"].shape == (2, 22, model.config.mfcc_dim)


def test_padding_positions_never_change_valid_outputs():
    model = tiny_model()
    inputs = tiny_inputs(model.config, n=6)
    masks = dict(
        text_mask=torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool),
        gesture_mask=torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool),
    )
    masks["audio_mask"] = masks["gesture_mask"].repeat_interleave(4, dim=1)
    inputs.update(masks)
    scrambled = dict(inputs)
    for key, mask_key in (("text", "text_mask"), ("gesture", "gesture_mask"), ("wavlm", "audio_mask"),
                          ("mfcc", "audio_mask")):
        pad = ~inputs[mask_key].unsqueeze(-1)
        scrambled[key] = torch.where(pad, torch.randn_like(inputs[key]) * 10, inputs[key])
    with torch.no_grad():
        a = model(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"]
        b = model(**scrambled, **TIMES, generate={"gesture"})["gesture_velocity"]
    valid = masks["gesture_mask"]
    torch.testing.assert_close(a[valid], b[valid], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[~valid], b[~valid])  # the scrambled padding did reach the padded outputs


def test_absent_stream_equals_fully_masked_stream():
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    masked = {**inputs, "text_mask": torch.zeros_like(inputs["text_mask"])}
    absent = {**inputs, "text": None, "text_mask": None}
    with torch.no_grad():
        a = model(**masked, **{**TIMES, "t_text": 0.0}, generate={"gesture"})["gesture_velocity"]
        b = model(**absent, **{**TIMES, "t_text": 0.0}, generate={"gesture"})["gesture_velocity"]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_absent_stream_does_no_work():
    """An absent stream enters the blocks with zero tokens: none of its block weights take part."""
    model = tiny_model()
    inputs = {**tiny_inputs(model.config), "text": None, "text_mask": None}
    seen = []
    hook = model.mmdit.blocks[0].feedforwards[0].register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    with torch.no_grad():
        model(**inputs, **{**TIMES, "t_text": 0.0}, generate={"gesture"})  # fused inference: not even called
        assert seen == []
        model.fused_inference = False  # the mmdit package's block: called on zero tokens
        model(**inputs, **{**TIMES, "t_text": 0.0}, generate={"gesture"})
    hook.remove()
    assert seen and seen[0][1] == 0


@pytest.mark.parametrize("generate", ["gesture", "audio", "text"])
def test_fused_inference_blocks_equal_the_package_blocks(generate):
    """fused_block_forward is the same function as mmdit's MMDiTBlock with mHC, padding and dropped rows included."""
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    inputs["audio_mask"][1] = False  # a dropped condition (CFG row)
    inputs["audio_mask"][0, -3:] = False
    if generate == "gesture":
        inputs.update(text=None, text_mask=None)  # an absent stream
    with torch.no_grad():
        fused = model(**inputs, **TIMES, generate={generate})
        model.fused_inference = False
        package = model(**inputs, **TIMES, generate={generate})
    assert fused.keys() == package.keys()
    for key in fused:
        if key != "code_logits":
            torch.testing.assert_close(fused[key], package[key], atol=1e-5, rtol=1e-5)
    model.fused_inference = True  # with autograd on, the package's blocks run (and train)
    out = model(**inputs, **TIMES, generate={generate})
    next(v for v in out.values() if isinstance(v, torch.Tensor)).sum().backward()
    assert model.mmdit.blocks[0].ff_residual_fns[-1].dynamic_alpha_fn.grad is not None


def test_memoized_time_conditioning_is_exact_and_follows_weight_updates():
    model = tiny_model()
    memos = [m for m in model.modules() if isinstance(m, MemoizedCondition)]
    assert len(memos) == model.config.depth * 7  # per block: 2 layernorms x 3 streams + post-branch gammas
    assert "mmdit.blocks.0.to_post_branch_gammas.2.weight" in model.state_dict()  # keys unchanged
    inputs = tiny_inputs(model.config)
    run = lambda: model(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"]  # noqa: E731
    with torch.no_grad():
        first, again = run(), run()
    assert sum(len(m._memo) for m in memos) > 0
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    model.train()
    with torch.enable_grad():
        reference = run()  # training path: no memo
    torch.testing.assert_close(first, reference.detach(), rtol=1e-6, atol=1e-6)
    model.eval()
    with torch.no_grad():
        for m in memos:
            m[-1].weight.add_(0.1)  # in-place update (as an optimizer step): the memo must not serve stale values
        changed = run()
    fresh = tiny_model()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(changed, fresh(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"])
    assert not torch.allclose(changed, first)


def test_per_sample_absence_matches_absence_in_its_own_batch():
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    text_mask = inputs["text_mask"].clone()
    text_mask[1] = False
    t_text = torch.tensor([1.0, 0.0])
    with torch.no_grad():
        mixed = model(**{**inputs, "text_mask": text_mask}, **{**TIMES, "t_text": t_text}, generate={"gesture"})
        alone = model(
            **{k: (v[1:] if v is not None else None) for k, v in {**inputs, "text": None, "text_mask": None}.items()},
            **{**TIMES, "t_text": 0.0}, generate={"gesture"},
        )
    torch.testing.assert_close(mixed["gesture_velocity"][1:], alone["gesture_velocity"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("changed", ["t_text", "t_audio", "t_gesture", "step_size"])
def test_each_modality_time_enters_time_cond(changed):
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    base = {**TIMES, "step_size": 0.0}
    with torch.no_grad():
        a = model(**inputs, **base, generate={"gesture"})["gesture_velocity"]
        b = model(**inputs, **{**base, changed: 0.5 if base[changed] != 0.5 else 0.9}, generate={"gesture"})
    assert (a - b["gesture_velocity"]).abs().max() > 1e-3


def test_condition_cache_gives_identical_outputs():
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    cache: dict = {}
    with torch.no_grad():
        plain = model(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"]
        model(**inputs, **TIMES, generate={"gesture"}, cache=cache)
        cached = model(**inputs, **TIMES, generate={"gesture"}, cache=cache)["gesture_velocity"]
    assert set(cache) == {"text", "audio"}
    torch.testing.assert_close(plain, cached)


def test_gradient_checkpointing_gives_same_gradients():
    grads = []
    for flag in (False, True):
        model = tiny_model(gradient_checkpointing=flag).train()
        out = model(**tiny_inputs(model.config), **TIMES, generate={"gesture"})
        out["gesture_velocity"].square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_seconds_positional_encoding_aligns_streams_by_time():
    seconds = torch.tensor([0.0, 4 / 30, 8 / 30])
    pe = seconds_positional_encoding(seconds, 16)
    assert pe.shape == (3, 16)
    torch.testing.assert_close(pe[0], torch.cat((torch.zeros(8), torch.ones(8))))
    assert not torch.allclose(pe[1], pe[2])


@pytest.mark.slow
def test_full_size_forward_backward():
    torch.manual_seed(0)
    model = OmnigesTransformerModel(OmnigesConfig.full(gradient_checkpointing=True)).train()
    inputs = tiny_inputs(model.config, b=1, n=4)
    out = model(**inputs, **TIMES, generate={"gesture"})
    assert out["gesture_velocity"].shape == (1, 4, 512)
    out["gesture_velocity"].square().mean().backward()
    assert model.gesture_in.weight.grad.abs().sum() > 0


def test_fast_sinkhorn_matches_the_package():
    from hyper_connections.mHCv2 import sinkhorn_knopps

    log_alpha = torch.randn(2, 7, 4, 4) * 3
    torch.testing.assert_close(sinkhorn(log_alpha), sinkhorn_knopps(log_alpha))
    modules = tiny_model().modules()
    constraints = [m.residual_mix_constraint_fn for m in modules if hasattr(m, "residual_mix_constraint_fn")]
    assert constraints and all(fn.func is sinkhorn for fn in constraints)


def test_inference_refuses_a_checkpoint_from_another_generator_version():
    from omniges.inference import Omniges

    model = tiny_model()
    state = {**model.state_dict(), "null_tokens.text": torch.zeros(32)}  # what the null-token version saved
    payload = dict(config=model.config.to_dict(), state_dict=state, flow={}, tasks=["a2g"], audio_stats={},
                   experiment="a2g")
    with pytest.raises(ValueError, match="retrain"):
        Omniges(payload, processor=None, vocab=None, features={})
    payload["state_dict"] = model.state_dict()
    assert Omniges(payload, processor=None, vocab=None, features={}).flow.prediction == "velocity"  # pre-x-pred


def test_bfloat16_weights_give_float32_heads_close_to_float32():
    model = tiny_model()
    inputs = tiny_inputs(model.config)
    with torch.no_grad():
        reference = model(**inputs, **TIMES, generate={"gesture", "audio"})
        model.to(torch.bfloat16)
        out = model(**inputs, **TIMES, generate={"gesture", "audio"})
    for key in ("gesture_velocity", "mfcc_velocity"):
        assert out[key].dtype == torch.float32
        error = (out[key] - reference[key]).norm() / reference[key].norm()
        assert 0 < error < 0.05, (key, error)  # really computed in bf16, and close


def test_generation_dtype_setting():
    from omniges.inference import native_bfloat16, resolve_dtype

    assert resolve_dtype("float32") == torch.float32 and resolve_dtype("bfloat16") == torch.bfloat16
    assert resolve_dtype("auto") == (torch.bfloat16 if native_bfloat16() else torch.float32)
    with pytest.raises(ValueError, match="generation.dtype"):
        resolve_dtype("float16")


def test_int8_generation_is_close_to_float32_and_named_where_it_cannot_run():
    from omniges.inference import GenerationSettings, Omniges, resolve_quantize

    model = tiny_model()
    payload = dict(config=model.config.to_dict(), state_dict=model.state_dict(), flow={}, tasks=["a2g"],
                   audio_stats={}, experiment="a2g", window=384)
    plain, int8 = (Omniges(payload, processor=None, vocab=None, features={},
                           settings=GenerationSettings(dtype="float32", quantize=q)) for q in ("none", "int8"))
    assert not plain.quantized and int8.quantized
    kinds = {type(m).__module__.split(".")[1] for m in int8.model.mmdit.modules() if "Linear" in type(m).__name__}
    assert kinds == {"ao"}  # every linear layer of the MMDiT is a quantised one
    inputs = tiny_inputs(model.config)
    with torch.inference_mode():
        reference = plain.model(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"]
        out = int8.model(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"]
    error = (out - reference).norm() / reference.norm()
    assert 0 < error < 0.05, error  # really int8, and close
    assert resolve_quantize("auto", "cpu") and not resolve_quantize("auto", "cuda") and not resolve_quantize("none")
    with pytest.raises(ValueError, match="CPU only"):
        resolve_quantize("int8", "cuda")
    with pytest.raises(ValueError, match="generation.quantize"):
        GenerationSettings(quantize="int4")


def test_generation_window_defaults_to_the_training_window():
    from omniges.inference import GenerationSettings, Omniges

    model = tiny_model()
    payload = dict(config=model.config.to_dict(), state_dict=model.state_dict(), flow={}, tasks=["a2g"],
                   audio_stats={}, experiment="a2g", window=384)
    assert Omniges(payload, processor=None, vocab=None, features={}).window_tokens == 96
    settings = GenerationSettings(window_tokens=40, dtype="bfloat16", quantize="none")
    loaded = Omniges(payload, processor=None, vocab=None, features={}, settings=settings)
    assert loaded.window_tokens == 40 and loaded.model.gesture_in.weight.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="overlap_tokens"):
        Omniges(payload, processor=None, vocab=None, features={}, settings=GenerationSettings(window_tokens=4))


def test_per_task_guidance_overrides_the_shared_scale():
    from omniges.inference import GenerationSettings

    settings = GenerationSettings(guidance=1.5, task_guidance={"t2g": 4.0})
    assert settings.guidance_for("t2g") == 4.0 and settings.guidance_for("a2g") == 1.5
    with pytest.raises(ValueError, match="g2t"):
        GenerationSettings(task_guidance={"g2t": 2.0})


def test_root_horizon_setting_is_validated():
    from omniges.inference import GenerationSettings

    assert GenerationSettings().root_horizon_s == 10.0 and GenerationSettings(root_horizon_s=0).root_horizon_s == 0
    with pytest.raises(ValueError, match="root_horizon_s"):
        GenerationSettings(root_horizon_s=-1.0)


def test_sampler_settings_validate_and_batch_cfg_only_on_a_gpu_by_default():
    from omniges.inference import GenerationSettings

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    settings = GenerationSettings(guidance_interval=[0.0, 0.5])
    assert settings.sampler_kwargs(cpu) == dict(solver="euler", guidance_interval=(0.0, 0.5), batch_cfg=False)
    assert settings.sampler_kwargs(gpu)["batch_cfg"] is True
    assert GenerationSettings(cfg_batch=True).sampler_kwargs(cpu)["batch_cfg"] is True
    assert GenerationSettings(cfg_batch="false").sampler_kwargs(gpu)["batch_cfg"] is False
    with pytest.raises(ValueError, match="guidance_interval"):
        GenerationSettings(guidance_interval=[0.5, 0.5])
    with pytest.raises(ValueError, match="cfg_batch"):
        GenerationSettings(cfg_batch="sometimes")


def test_audio_condition_is_cached_by_the_samples():
    import numpy as np

    from omniges.inference import Omniges

    model = tiny_model()
    c = model.config
    stats = {f"{name}_{kind}": np.full(dim, float(kind == "std"), np.float32)
             for name, dim in (("wavlm", c.wavlm_dim), ("mfcc", c.mfcc_dim)) for kind in ("mean", "std")}
    payload = dict(config=c.to_dict(), state_dict=model.state_dict(), flow={}, tasks=["a2g"], audio_stats=stats)
    omniges = Omniges(payload, processor=None, vocab=None, features={})
    calls = []

    class CountingWavLM:
        def extract(self, wave, n_frames, fps):
            calls.append(len(wave))
            return np.random.default_rng(len(calls)).standard_normal((n_frames, c.wavlm_dim)).astype(np.float32)

    omniges._wavlm = CountingWavLM()
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    first = omniges.audio_condition(wave, 30)
    again = omniges.audio_condition(wave.copy(), 30)
    assert len(calls) == 1 and all(torch.equal(first[k], again[k]) for k in first)
    omniges.audio_condition(wave * 0.5, 30)  # other samples: extracted
    assert len(calls) == 2
    for k in range(1, omniges.audio_cache_size + 2):  # bounded: the oldest entries go
        omniges.audio_condition(wave + k, 30)
    assert len(calls) == 2 + omniges.audio_cache_size + 1
    omniges.audio_condition(wave, 30)
    assert len(calls) == 2 + omniges.audio_cache_size + 2


def test_cepstral_mean_normalisation_removes_a_constant_offset_of_the_conditioning_mfcc():
    inputs = tiny_inputs(tiny_model().config)
    inputs["audio_mask"][1, -5:] = False  # a padded tail: its frames do not enter the mean
    offset = torch.randn(1, 1, inputs["mfcc"].shape[-1])  # a channel / level change of the speech
    shifted = {**inputs, "mfcc": inputs["mfcc"] + offset}
    for cmn in (True, False):
        model = tiny_model(mfcc_cmn=cmn)
        with torch.no_grad():
            a = model(**inputs, **TIMES, generate={"gesture"})["gesture_velocity"]
            b = model(**shifted, **TIMES, generate={"gesture"})["gesture_velocity"]
        assert torch.allclose(a, b, atol=1e-5) == cmn
    model = tiny_model(mfcc_cmn=True)  # G2A generates the MFCC stream: its noised input is not normalised
    g2a_times = dict(t_text=1.0, t_audio=0.4, t_gesture=1.0)
    with torch.no_grad():
        a = model(**inputs, **g2a_times, generate={"audio"})["mfcc_velocity"]
        b = model(**shifted, **g2a_times, generate={"audio"})["mfcc_velocity"]
    assert not torch.allclose(a, b, atol=1e-5)
