"""RVQVAE tokenizer: GestureLSM parity (fixtures, key manifest), checkpoints, validation, training, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from omniges.tokenizer.rvqvae import RVQVAE, CheckpointMismatchError
from omniges.tokenizer.stage import column_weights
from omniges.tokenizer.training import reconstruction_report, train_rvqvae, warmup_cosine, weighted_smooth_l1

FIXTURES = Path(__file__).parent / "fixtures" / "gesturelsm_rvqvae"
SMALL_PARTS = ("upper", "lower_trans")



def small_model(part: str) -> RVQVAE:
    """The fixture's small config (width 64, code_dim 32) with its weights, in eval mode."""
    ctor = json.loads((FIXTURES / f"small_{part}_args.json").read_text())["rvqvae_ctor"]
    model = RVQVAE(input_width=ctor["input_width"], code_dim=ctor["code_dim"], width=ctor["width"])
    model.load_checkpoint(FIXTURES / f"small_{part}.pth")
    return model.eval()


def tiny_model(input_width: int = 12, **kwargs: int) -> RVQVAE:
    """A fast model for behaviour tests."""
    config = dict(width=32, code_dim=16, nb_code=64, depth=2) | kwargs
    return RVQVAE(input_width=input_width, **config)


@pytest.mark.parametrize("part", SMALL_PARTS)
def test_reproduces_gesturelsm_fixture(part: str) -> None:
    model = small_model(part)
    io = np.load(FIXTURES / f"small_{part}_io.npz")
    x = torch.from_numpy(io["x"])
    with torch.no_grad():
        latent = model.map2latent(x)
        latent_before = latent.clone()
        codes, all_codes = model.encode(x)
        rec, commit, perplexity = model.latent2origin(latent)
        got = dict(
            map2latent=latent,
            encode_code_idx=codes,
            encode_all_codes=all_codes,
            forward_decoder=model.forward_decoder(codes),
            latent2origin=rec,
            latent2origin_commit_loss=commit,
            latent2origin_perplexity=perplexity,
            latent2origin_code_idx=model.quantize(latent)[1],
            forward_rec_pose=model(x)["rec_pose"],
        )
    assert sorted(got) == sorted(k for k in io.files if k != "x")
    for key, value in got.items():
        expected = io[key]
        assert value.shape == expected.shape, key
        if expected.dtype == np.int64:
            assert value.dtype == torch.long and np.array_equal(value.numpy(), expected), key
        else:
            np.testing.assert_allclose(value.numpy(), expected, atol=1e-5, rtol=0, err_msg=key)
    assert torch.equal(latent, latent_before), "latent2origin must not modify its input"


@pytest.mark.parametrize("part", SMALL_PARTS)
def test_decode_codes_uses_projected_codebook(part: str) -> None:
    model = small_model(part)
    x = torch.from_numpy(np.load(FIXTURES / f"small_{part}_io.npz")["x"])
    with torch.no_grad():
        codes, _ = model.encode(x)
        projected = model.decode_codes(codes)
        continuous = model.latent2origin(model.map2latent(x))[0]
        raw = model.forward_decoder(codes)
    torch.testing.assert_close(projected, continuous, atol=1e-5, rtol=0)
    assert (raw - projected).abs().max() > 1e-3


@pytest.mark.parametrize("part", ["upper", "hands", "lower_trans", "face"])
def test_full_size_matches_gesturelsm_manifest(part: str) -> None:
    spec = json.loads((FIXTURES / "manifest.json").read_text())["parts"][part]
    state = RVQVAE(input_width=spec["input_width"]).state_dict()
    assert list(state) == list(spec["keys"])
    assert {k: list(v.shape) for k, v in state.items()} == {k: v["shape"] for k, v in spec["keys"].items()}
    assert sum(v.numel() for v in state.values()) == spec["num_elements"]


def test_checkpoint_round_trip_is_strict_and_atomic(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "sub" / "part.pth"
    model.save_checkpoint(path)
    assert [p.name for p in path.parent.iterdir()] == ["part.pth"]
    payload = torch.load(path, weights_only=True)
    assert list(payload) == ["net"]
    other = tiny_model()
    other.load_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[key])


def write_state(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "broken_net.pth"
    torch.save({"net": state}, path)
    return path


def test_load_reports_missing_keys(tmp_path: Path) -> None:
    state = tiny_model().state_dict()
    del state["quantizer.layers.3.codebook"]
    path = write_state(tmp_path, state)
    with pytest.raises(
        CheckpointMismatchError, match=r"broken_net\.pth.*missing.*quantizer\.layers\.3\.codebook"
    ):
        tiny_model().load_checkpoint(path)
    assert tiny_model().load_checkpoint(path, strict=False)["missing"] == ["quantizer.layers.3.codebook"]


def test_load_reports_unexpected_keys(tmp_path: Path) -> None:
    state = tiny_model().state_dict() | {"quantizer.layers.6.codebook": torch.zeros(64, 16)}
    with pytest.raises(CheckpointMismatchError, match=r"broken_net\.pth.*unexpected.*layers\.6\.codebook"):
        tiny_model().load_checkpoint(write_state(tmp_path, state))


def test_load_reports_shape_mismatch_even_when_not_strict(tmp_path: Path) -> None:
    path = write_state(tmp_path, tiny_model(input_width=13).state_dict())
    pattern = r"broken_net\.pth.*shape mismatch.*encoder\.model\.0\.weight: "
    pattern += r"checkpoint \(32, 13, 3\) vs model \(32, 12, 3\)"
    with pytest.raises(CheckpointMismatchError, match=pattern):
        tiny_model().load_checkpoint(path, strict=False)


def test_input_validation() -> None:
    model = tiny_model().eval()
    with pytest.raises(ValueError, match=r"\(B, T, 12\).*\(1, 8, 11\)"):
        model(torch.zeros(1, 8, 11))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((1, 8, 12), float("nan")))
    with pytest.raises(ValueError, match="at least 4 frames, got 3"):
        model.encode(torch.zeros(1, 3, 12))
    with pytest.raises(ValueError, match=r"latent of shape \(B, N, 16\)"):
        model.latent2origin(torch.zeros(1, 4, 15))
    with pytest.raises(ValueError, match="codes must be integers"):
        model.decode_codes(torch.full((1, 4, 6), 64))


def test_lengths_not_multiple_of_four_are_edge_padded_and_cropped() -> None:
    model = tiny_model().eval()
    x = torch.randn(2, 66, 12)
    padded = torch.cat([x, x[:, -1:].expand(2, 2, 12)], dim=1)
    with torch.no_grad():
        assert model(x)["rec_pose"].shape == (2, 66, 12)
        torch.testing.assert_close(model.map2latent(x), model.map2latent(padded))
        codes, _ = model.encode(x)
        assert codes.shape == (2, 17, 6)
        assert model.decode_codes(codes).shape == (2, 68, 12)
        assert model.decode_codes(codes, num_frames=66).shape == (2, 66, 12)


def test_training_mode_drops_tail_quantizers_and_codes_with_minus_one_decode() -> None:
    model = tiny_model(quantize_dropout_prob=1.0).train()
    torch.manual_seed(0)
    latent = model.map2latent(torch.randn(2, 16, 12))
    dropped = [(model.quantize(latent)[1] == -1).any().item() for _ in range(20)]
    assert any(dropped) and not all(dropped)
    codes = model.eval().encode(torch.randn(1, 16, 12))[0]
    partial = codes.clone()
    partial[..., 2:] = -1
    with torch.no_grad():
        torch.testing.assert_close(model.decode_codes(partial), model.decode_codes(codes[..., :2]))


def test_encode_never_updates_codebook() -> None:
    model = tiny_model().train()
    before = model.quantizer.layers[0].codebook.clone()
    model.encode(torch.randn(2, 16, 12))
    assert torch.equal(model.quantizer.layers[0].codebook, before)
    model(torch.randn(2, 16, 12))
    assert not torch.equal(model.quantizer.layers[0].codebook, before)


def synthetic_windows(count: int, *, frames: int = 16, dim: int = 12, seed: int = 0) -> np.ndarray:
    """Three random sinusoids per window seen through one fixed mixing matrix: a simple, learnable signal."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(42).normal(size=(3, dim)) / np.sqrt(1.5)
    t = np.arange(frames)[None, :, None] / 30
    freq, phase = rng.uniform(0.5, 2.0, (count, 1, 3)), rng.uniform(0, 2 * np.pi, (count, 1, 3))
    return (np.sin(2 * np.pi * freq * t + phase) @ mixing).astype(np.float32)


def test_training_halves_reconstruction_error_and_is_deterministic() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    kwargs = dict(
        steps=150,
        batch_size=16,
        lr=2e-3,
        warmup_steps=10,
        commit_weight=0.02,
        velocity_weight=0.1,
        seed=3,
        progress=False,
        log_every=50,
    )
    logged: list[dict[str, float]] = []
    metrics = train_rvqvae(
        model, synthetic_windows(256), synthetic_windows(32, seed=1), log_fn=logged.append, **kwargs
    )
    assert metrics["val_l1"] < 0.5 * metrics["val_l1_initial"]
    assert [r["step"] for r in logged] == [50, 100, 150] and logged[-1]["rec"] < logged[0]["rec"]
    assert not model.training
    torch.manual_seed(0)
    again = tiny_model()
    train_rvqvae(again, synthetic_windows(256), None, **kwargs | dict(steps=5))
    torch.manual_seed(0)
    twin = tiny_model()
    train_rvqvae(twin, synthetic_windows(256), None, **kwargs | dict(steps=5))
    for key, value in again.state_dict().items():
        assert torch.equal(value, twin.state_dict()[key]), key


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine(0, steps=100, warmup_steps=9) == pytest.approx(0.1)
    assert warmup_cosine(9, steps=100, warmup_steps=9) == pytest.approx(1.0)
    assert warmup_cosine(100, steps=100, warmup_steps=9) == pytest.approx(0.1)


class FixedOutput(RVQVAE):
    """An RVQVAE whose reconstruction is a given tensor, to check the report's arithmetic."""

    def set_output(self, output: torch.Tensor) -> None:
        self.output = output

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(rec_pose=self.output[: len(x)], commit_loss=torch.zeros(()), perplexity=torch.zeros(()))


def test_report_measures_degrees_and_translation_after_denormalising() -> None:
    joints, frames = 2, 8
    rng = np.random.default_rng(0)
    gt_rot = Rotation.random(4 * frames * joints, random_state=0).as_matrix()
    turn = Rotation.from_rotvec(np.radians(10.0) * np.array([0.0, 0.6, 0.8])).as_matrix()
    rec_rot = gt_rot @ turn
    to6d = lambda m: m[:, :2, :].reshape(4, frames, joints * 6)  # noqa: E731
    gt_trans = rng.normal(size=(4, frames, 3))
    raw_gt = np.concatenate([to6d(gt_rot), gt_trans], axis=-1)
    raw_rec = np.concatenate([to6d(rec_rot), gt_trans + [0.3, 0.0, 0.4]], axis=-1)
    mean, std = rng.normal(size=15), rng.uniform(0.5, 2.0, size=15)
    model = FixedOutput(input_width=15, width=16, code_dim=8, nb_code=16, depth=1)
    model.set_output(torch.as_tensor((raw_rec - mean) / std, dtype=torch.float32))
    report = reconstruction_report(
        model,
        ((raw_gt - mean) / std).astype(np.float32),
        rot6d_joints=joints,
        has_translation=True,
        mean=mean,
        std=std,
        batch_size=64,
    )
    assert report["joint_angle_error_deg"] == pytest.approx(10.0, abs=1e-3)
    assert report["joint_angle_error_deg_per_joint"] == pytest.approx([10.0, 10.0], abs=1e-3)
    assert report["translation_l2"] == pytest.approx(0.5, abs=1e-5)
    assert "other_l1" not in report
    assert len(report["perplexity"]) == 6 and all(0.99 <= p <= 16 for p in report["perplexity"])
    assert all(u + d == 16 for u, d in zip(report["codes_used"], report["dead_codes"], strict=True))


def test_report_on_face_layout_with_jaw_at_the_end() -> None:
    model = FixedOutput(input_width=106, width=16, code_dim=8, nb_code=16, depth=1)
    identity = np.tile(np.eye(3)[:2].reshape(6), (2, 8, 1))
    gt = np.concatenate([np.zeros((2, 8, 100)), identity], axis=-1).astype(np.float32)
    rec = gt.copy()
    rec[..., :100] += 0.5
    model.set_output(torch.from_numpy(rec))
    report = reconstruction_report(model, gt, rot6d_joints=1, rot6d_offset=100, has_translation=False)
    assert report["joint_angle_error_deg"] == pytest.approx(0.0, abs=1e-4)
    assert report["other_l1"] == pytest.approx(0.5)


def test_report_correlates_the_reconstructed_jaw_angle_with_the_true_one() -> None:
    model = FixedOutput(input_width=106, width=16, code_dim=8, nb_code=16, depth=1)
    angle = 0.02 + 0.01 * np.sin(np.linspace(0, 6, 16)).reshape(2, 8)
    six = np.stack([np.ones_like(angle), 0 * angle, 0 * angle, 0 * angle, np.cos(angle), np.sin(angle)], -1)
    gt = np.concatenate([np.zeros((2, 8, 100)), six], axis=-1).astype(np.float32)
    model.set_output(torch.from_numpy(gt.copy()))
    faithful = reconstruction_report(model, gt, rot6d_joints=1, rot6d_offset=100, has_translation=False)
    flat = gt.copy()
    flat[..., 104:] = [np.cos(0.02), np.sin(0.02)]
    flat[0, 0, 105] += 1e-4  # a flat jaw with a speck of noise: no correlation
    model.set_output(torch.from_numpy(flat))
    flattened = reconstruction_report(model, gt, rot6d_joints=1, rot6d_offset=100, has_translation=False)
    assert faithful["jaw_r"] == pytest.approx(1.0, abs=1e-3)
    assert abs(flattened["jaw_r"]) < 0.5


def test_weighted_reconstruction_loss() -> None:
    rng = torch.Generator().manual_seed(0)
    rec, target = torch.randn(2, 5, 4, generator=rng), torch.randn(2, 5, 4, generator=rng)
    plain = torch.nn.functional.smooth_l1_loss(rec, target)
    assert weighted_smooth_l1(rec, target, None) == plain
    assert torch.allclose(weighted_smooth_l1(rec, target, torch.ones(4)), plain)
    only_last = weighted_smooth_l1(rec, target, torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert torch.allclose(only_last, torch.nn.functional.smooth_l1_loss(rec[..., 3], target[..., 3]))
    with pytest.raises(ValueError, match="column_weights must be 12"):
        train_rvqvae(tiny_model(), synthetic_windows(8), None, steps=1, progress=False, column_weights=np.ones(3))


def test_jaw_weight_applies_to_the_face_jaw_columns_only() -> None:
    weights = column_weights("face", face_jaw=True, jaw_weight=10.0)
    assert weights.shape == (106,) and (weights[:100] == 1).all() and (weights[100:] == 10).all()
    assert column_weights("face", face_jaw=False, jaw_weight=10.0) is None
    assert column_weights("upper", face_jaw=True, jaw_weight=10.0) is None
    assert column_weights("face", face_jaw=True, jaw_weight=1.0) is None


def test_mouth_weight_applies_to_the_leading_expressions_with_or_without_the_jaw() -> None:
    weights = column_weights("face", face_jaw=True, jaw_weight=2.0, mouth_weight=3.0, mouth_expressions=10)
    assert (weights[:10] == 3).all() and (weights[10:100] == 1).all() and (weights[100:] == 2).all()
    flame_only = column_weights("face", face_jaw=False, jaw_weight=2.0, mouth_weight=3.0, mouth_expressions=4)
    assert flame_only.shape == (100,) and (flame_only[:4] == 3).all() and (flame_only[4:] == 1).all()
    assert column_weights("hands", face_jaw=True, jaw_weight=2.0, mouth_weight=3.0, mouth_expressions=10) is None


def test_a_weighted_column_is_reconstructed_better_than_unweighted() -> None:
    """Eleven columns of unlearnable noise beside one small learnable one: weighting that column lets the
    tokenizer spend its capacity there, as the face's jaw needs beside 100 expression coefficients."""
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((256, 16, 12)).astype(np.float32)
    windows[..., -1] = synthetic_windows(256, dim=12, seed=2)[..., 0]
    val = windows[:32].copy()
    errors = {}
    for weight in (1.0, 20.0):
        torch.manual_seed(0)
        model = tiny_model(code_dim=8, nb_code=16)
        weights = np.ones(12, np.float32)
        weights[-1] = weight
        train_rvqvae(model, windows, None, steps=120, batch_size=16, lr=2e-3, warmup_steps=10, seed=0,
                     progress=False, column_weights=weights)
        with torch.no_grad():
            rec = model(torch.from_numpy(val))["rec_pose"].numpy()
        errors[weight] = float(np.abs(rec[..., -1] - val[..., -1]).mean())
    assert errors[20.0] < 0.7 * errors[1.0]


def test_bfloat16_decoder_returns_float32_motion_close_to_float32():
    model = RVQVAE(input_width=12, width=32, code_dim=8, nb_code=16, num_quantizers=2).eval()
    latent = torch.randn(1, 6, 8)
    with torch.no_grad():
        reference = model.decode_latent(latent)
        model.decoder.to(torch.bfloat16)
        motion = model.decode_latent(latent)
    assert motion.dtype == torch.float32 and motion.shape == reference.shape
    assert (motion - reference).norm() / reference.norm() < 0.03
