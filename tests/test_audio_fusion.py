"""EnhancedAudioFusion: shapes, padding invariance, gradient flow to both inputs, the G2A null-WavLM path."""

from __future__ import annotations

import pytest
import torch

from omniges.models.audio_fusion import EnhancedAudioFusion


def make(frames_per_token: int = 1, seed: int = 0) -> EnhancedAudioFusion:
    torch.manual_seed(seed)
    return EnhancedAudioFusion(dim=32, wavlm_dim=24, mfcc_dim=8, num_layers=2, heads=4,
                               frames_per_token=frames_per_token).eval()


def inputs(b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 24, generator=g), torch.randn(b, t, 8, generator=g)


@pytest.mark.parametrize(("frames_per_token", "tokens"), [(1, 16), (4, 4)])
def test_output_shape(frames_per_token: int, tokens: int) -> None:
    wavlm, mfcc = inputs(2, 16)
    out = make(frames_per_token)(wavlm, mfcc)
    assert out.shape == (2, tokens, 32) and torch.isfinite(out).all()


def test_default_size_matches_the_design() -> None:
    fusion = EnhancedAudioFusion(frames_per_token=4)
    out = fusion(torch.randn(1, 8, 768), torch.randn(1, 8, 128))
    assert out.shape == (1, 2, 512)


@pytest.mark.parametrize("frames_per_token", [1, 4])
def test_padding_never_changes_valid_outputs(frames_per_token: int) -> None:
    fusion = make(frames_per_token)
    wavlm, mfcc = inputs(1, 12)
    alone = fusion(wavlm, mfcc)  # 12 valid frames, no padding
    garbage_w, garbage_m = inputs(1, 8, seed=5)
    padded_w = torch.cat((wavlm, 1e3 * garbage_w), dim=1)
    padded_m = torch.cat((mfcc, -1e3 * garbage_m), dim=1)
    other_w, other_m = inputs(1, 20, seed=9)  # a second, fully valid sample in the same batch
    mask = torch.tensor([[True] * 12 + [False] * 8, [True] * 20])
    out = fusion(torch.cat((padded_w, other_w)), torch.cat((padded_m, other_m)), key_padding_mask=mask)
    n = 12 // frames_per_token
    torch.testing.assert_close(out[0, :n], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.all(out[0, n:] == 0)  # padded tokens are zeros
    torch.testing.assert_close(out[1], fusion(other_w, other_m)[0], atol=1e-5, rtol=1e-5)


def test_fully_padded_sample_is_finite() -> None:
    wavlm, mfcc = inputs(2, 8)
    mask = torch.tensor([[False] * 8, [True] * 8])
    out = make()(wavlm, mfcc, key_padding_mask=mask)
    assert torch.isfinite(out).all() and torch.all(out[0] == 0)


def test_gradients_reach_both_inputs_and_every_parameter() -> None:
    fusion = make(4).train()
    wavlm, mfcc = inputs(2, 16)
    wavlm.requires_grad_(True)
    mfcc.requires_grad_(True)
    fusion(wavlm, mfcc).pow(2).mean().backward()
    assert wavlm.grad.abs().sum() > 0 and mfcc.grad.abs().sum() > 0
    unused = {"null_wavlm"}  # only on the G2A path
    for name, p in fusion.named_parameters():
        if name not in unused:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_both_inputs_change_the_output() -> None:
    fusion = make()
    wavlm, mfcc = inputs(1, 10)
    base = fusion(wavlm, mfcc)
    assert not torch.allclose(fusion(wavlm + 1.0, mfcc), base, atol=1e-4)
    assert not torch.allclose(fusion(wavlm, mfcc + 1.0), base, atol=1e-4)


def test_null_wavlm_path_for_g2a() -> None:
    fusion = make(4).train()
    _, mfcc = inputs(2, 16)
    mfcc.requires_grad_(True)
    out = fusion(None, mfcc)
    assert out.shape == (2, 4, 32)
    out.pow(2).mean().backward()
    assert fusion.null_wavlm.grad.abs().sum() > 0 and mfcc.grad.abs().sum() > 0
    assert fusion.wavlm_in.weight.grad is None  # the WavLM projection is not used


def test_time_must_be_a_multiple_of_frames_per_token() -> None:
    wavlm, mfcc = inputs(1, 10)
    with pytest.raises(ValueError, match="multiple of frames_per_token=4"):
        make(4)(wavlm, mfcc)
    with pytest.raises(ValueError, match="differ"):
        make()(wavlm[:, :9], mfcc)
