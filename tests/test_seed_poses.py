"""Seed-pose conditioning: the first window starts from known latents of real motion (GestureLSM's protocol)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from omniges.inference import Omniges


@pytest.fixture(scope="module")
def model_and_clip(tiny_checkpoint, real_clip_paths):
    root = tiny_checkpoint.parents[3]
    model = Omniges.load(tiny_checkpoint, cache_dir=root / "data/cache", rvqvae_dir=root / "results/rvqvae",
                         device="cpu")
    wave, sr = sf.read(real_clip_paths["wav"], dtype="float32")
    with np.load(real_clip_paths["npz"]) as data:
        motion = {k: data[k][:180] for k in ("poses", "trans", "expressions")}
    return model, wave[: 6 * sr], motion


def test_generate_long_keeps_the_prefix_and_continues_after_it(model_and_clip):
    model, wave, motion = model_and_clip
    cond = model.audio_condition(wave, 180)
    prefix = model.seed_latents({k: v[:16] for k, v in motion.items()})
    assert prefix.shape[:2] == (1, 4)
    kwargs = {"window": 32, "overlap": 4, "steps": 2, "guidance": 1.5}
    seeded = model.flow.generate_long(model.model, "a2g", cond, generator=torch.Generator().manual_seed(0),
                                      prefix=prefix, **kwargs)
    free = model.flow.generate_long(model.model, "a2g", cond, generator=torch.Generator().manual_seed(0), **kwargs)
    assert seeded.shape == free.shape == (1, 45, prefix.shape[-1])
    torch.testing.assert_close(seeded[:, :4], prefix)
    assert (free[:, :4] - prefix).abs().mean() > 0.1
    assert (seeded[:, 4:] - free[:, 4:]).abs().mean() > 1e-3  # the rest of the window follows the seed


def test_seeded_a2g_starts_at_the_seed_and_differs_from_unseeded(model_and_clip):
    model, wave, motion = model_and_clip
    seed = {k: v[:16] for k, v in motion.items()}
    seeded = model.generate("a2g", wave=wave, seed_motion=seed)
    free = model.a2g(wave)
    assert seeded["poses"].shape == free["poses"].shape == (180, 165)
    # the seed frames are the tokenizer's decoding of the seed: what decoding the seed latents alone gives
    alone = model.processor.decode_from_latents(model.seed_latents(seed), num_frames=16)
    reconstruction = model.processor.to_smplx(alone)[0]
    near = np.abs(seeded["poses"][:12] - reconstruction[:12]).mean()
    assert near < 0.5 * np.abs(free["poses"][:12] - reconstruction[:12]).mean()
    assert np.abs(seeded["poses"] - free["poses"]).mean() > 1e-3


def test_seed_longer_than_a_window_is_refused(model_and_clip):
    model, wave, motion = model_and_clip
    with pytest.raises(ValueError, match="shorter than one generation window"):
        model.a2g(wave, seed_motion={k: v[:128] for k, v in motion.items()})
