"""GestureProcessor: SMPL-X <-> normalised parts <-> latents / codes, any length, on the real clip."""

import numpy as np
import pytest
import torch

from omniges.data.body import PART_NAMES, part_dim, split_parts
from omniges.tokenizer.processor import GestureProcessor
from omniges.tokenizer.rvqvae import RVQVAE


@pytest.fixture(scope="module")
def processor(real_clip_paths):
    torch.manual_seed(0)
    with np.load(real_clip_paths["npz"]) as data:
        real = {k: data[k][:200] for k in ("poses", "trans", "expressions")}
    parts = split_parts(real["poses"], real["trans"], real["expressions"])
    stats = {p: (v.mean(0), np.maximum(v.std(0), 1e-3)) for p, v in parts.items()}
    models = {p: RVQVAE(input_width=part_dim(p), width=32, code_dim=16, nb_code=64, depth=1) for p in PART_NAMES}
    return GestureProcessor(models, stats=stats, latent_scale=dict.fromkeys(PART_NAMES, 2.0)), real


def test_smplx_round_trip_without_the_model(processor):
    proc, real = processor
    parts = proc.from_smplx(real["poses"], real["trans"], real["expressions"])
    assert {p: tuple(v.shape) for p, v in parts.items()} == {
        "upper": (1, 200, 78), "hands": (1, 200, 180), "lower_trans": (1, 200, 57), "face": (1, 200, 106)}
    poses, trans, expressions = proc.to_smplx(parts, trans_init=real["trans"][0])
    np.testing.assert_allclose(trans, real["trans"], atol=1e-4)
    np.testing.assert_allclose(expressions, real["expressions"], atol=1e-4)
    assert poses.shape == (200, 165)


def test_encode_decode_shapes_any_length_and_frozen(processor):
    proc, real = processor
    parts = proc.from_smplx(real["poses"][:198], real["trans"][:198], real["expressions"][:198])  # 198 % 4 != 0
    latents, codes = proc.encode(parts)
    assert latents.shape == (1, 50, 4 * 16) and codes.shape == (1, 50, 4, 6)
    decoded = proc.decode_from_latents(latents, num_frames=198)
    assert all(decoded[p].shape == parts[p].shape for p in PART_NAMES)
    from_codes = proc.decode_from_codes(codes, num_frames=198)
    quantized = proc.decode_from_latents(latents, num_frames=198, quantize=True)
    for p in PART_NAMES:  # codes and quantised latents decode through the same projected codebook
        torch.testing.assert_close(from_codes[p], quantized[p], atol=1e-5, rtol=1e-4)
    scaled = proc.split_latents(latents)
    torch.testing.assert_close(scaled["upper"], proc.parts["upper"].map2latent(parts["upper"]), atol=1e-5, rtol=1e-4)
    proc.train()
    assert not proc.training and not any(p.requires_grad for p in proc.parameters())


def test_missing_part_is_an_error(processor):
    proc, _ = processor
    with pytest.raises(ValueError, match="missing"):
        GestureProcessor({"upper": proc.parts["upper"]}, stats={}, latent_scale={})


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "bias"),
                         [(3, 1, 1, 1, True), (3, 1, 9, 9, True), (1, 1, 0, 1, True), (4, 2, 1, 1, False)])
def test_int8_convolution_is_the_convolution_within_int8_error(kernel, stride, padding, dilation, bias):
    from omniges.models.quantize import Int8Conv1d

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(24, 20, kernel, stride, padding, dilation=dilation, bias=bias)
    x = torch.randn(2, 24, 37)
    with torch.no_grad():
        want, got = conv(x), Int8Conv1d(conv)(x.bfloat16())  # any float dtype in, float32 out
    assert got.dtype == torch.float32 and got.shape == want.shape
    error = ((got - want).abs().mean() / want.abs().mean()).item()
    assert 0 < error < 0.05, error  # really int8, and close
    with pytest.raises(ValueError, match="one-group"):
        Int8Conv1d(torch.nn.Conv1d(24, 24, 3, groups=4))


def test_int8_decoders_decode_close_to_float32(processor):
    import copy

    from omniges.models.quantize import Int8Conv1d

    proc, real = processor
    int8 = copy.deepcopy(proc)
    int8.quantize_decoders()
    decoders = [m for p in int8.parts.values() for m in p.decoder.modules()]
    assert any(isinstance(m, Int8Conv1d) for m in decoders)
    assert not any(isinstance(m, torch.nn.Conv1d) for m in decoders)
    parts = proc.from_smplx(real["poses"], real["trans"], real["expressions"])
    latents, _ = proc.encode(parts)
    with torch.no_grad():
        want, got = proc.decode_from_latents(latents, num_frames=200), int8.decode_from_latents(latents, num_frames=200)
    for p in PART_NAMES:
        assert got[p].shape == want[p].shape and got[p].dtype == torch.float32
        error = ((got[p] - want[p]).abs().mean() / want[p].abs().mean()).item()
        assert error < 0.1, (p, error)
