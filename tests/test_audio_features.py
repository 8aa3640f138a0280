"""Audio features: loading/validation, motion-aligned log-mel/MFCC (invertible), WavLM frame alignment."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from omniges.features.audio import (
    RANDOM_INIT_MESSAGE,
    AudioError,
    WavLMFeatures,
    align_audio_to_motion,
    default_batch_chunks,
    load_audio,
    logmel,
    logmel_to_mfcc,
    logmel_to_wave,
    mfcc,
    mfcc_to_logmel,
    n_motion_frames,
    n_wavlm_frames,
    wavlm_to_motion_rate,
)

REAL_WAV = Path("tests/fixtures/beat2_real/wave16k/2_scott_0_1_1.wav")
REAL_MOTION_FRAMES = 1906  # smplxflame_30/2_scott_0_1_1.npz: 63.53 s at 30 fps; its audio is 64.10 s


def sine(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    """A pure tone (n,) float32."""
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(wave: np.ndarray, sr: int) -> float:
    """Frequency of the largest spectral peak."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * sr / len(wave))


@pytest.fixture(scope="module")
def real_wave() -> np.ndarray:
    return load_audio(REAL_WAV)


@pytest.fixture(scope="module")
def tiny_wavlm() -> WavLMFeatures:
    return WavLMFeatures.random_init(0, "tiny")


# ------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize(("sr", "channels"), [(44100, 2), (8000, 1), (16000, 1)])
def test_load_audio_any_rate_and_channels_gives_16k_mono(tmp_path: Path, sr: int, channels: int) -> None:
    tone = sine(440.0, 1.5, sr)
    data = np.stack([tone, 0.5 * tone], axis=1) if channels == 2 else tone
    path = tmp_path / f"tone_{sr}_{channels}.wav"
    sf.write(path, data, sr, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 1.5 * 16000) <= 1
    assert abs(peak_hz(wave, 16000) - 440.0) < 2.0
    expected_peak = 0.75 * 0.5 if channels == 2 else 0.5  # stereo: mean of the two channels
    assert abs(np.max(np.abs(wave[1000:-1000])) - expected_peak) < 0.02


def test_load_audio_flac(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.flac", sine(200.0, 0.5, 22050), 22050)
    assert len(load_audio(tmp_path / "x.flac")) == 8000


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_load_audio_mp3(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.mp3", sine(440.0, 1.0, 22050, amplitude=0.3), 22050, format="MP3")
    wave = load_audio(tmp_path / "x.mp3")
    assert abs(len(wave) - 16000) < 1200 and abs(peak_hz(wave, 16000) - 440.0) < 2.0  # codec delay/padding


def write_float_wav(path: Path, wave: np.ndarray, sr: int = 16000) -> Path:
    sf.write(path, wave, sr, subtype="FLOAT")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.wav", "not found"),
        (lambda p: write_bytes(p / "zero.wav", b""), "empty"),
        (lambda p: write_bytes(p / "junk.wav", b"not audio at all" * 10), "unreadable"),
        (lambda p: write_float_wav(p / "none.wav", np.zeros(0, np.float32)), "empty"),
        (lambda p: write_float_wav(p / "nan.wav", np.where(np.arange(16000) == 5, np.nan, 0.1).astype(np.float32)),
         "NaN"),
        (lambda p: write_float_wav(p / "inf.wav", np.where(np.arange(16000) == 5, np.inf, 0.1).astype(np.float32)),
         "NaN or inf"),
        (lambda p: write_float_wav(p / "short.wav", sine(440, 0.05, 16000)), "too short"),
        (lambda p: write_float_wav(p / "silent.wav", np.zeros(16000, np.float32)), "silent"),
    ],
    ids=["missing", "zero-bytes", "unreadable", "no-samples", "nan", "inf", "too-short", "silent"],
)
def test_load_audio_errors_name_the_file(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_silence_check_is_optional(tmp_path: Path) -> None:
    path = write_float_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32))
    assert np.all(load_audio(path, require_nonsilent=False) == 0)


def test_align_crops_pads_and_rejects_short_audio() -> None:
    wave = np.ones(16000 * 2, np.float32)
    assert len(align_audio_to_motion(wave, 16000, 45, 30)) == 24000  # longer audio: cropped to 1.5 s
    padded = align_audio_to_motion(wave, 16000, 66, 30, tolerance_s=0.5)  # 2.2 s: 0.2 s of zeros appended
    assert len(padded) == 35200 and np.all(padded[32000:] == 0) and np.all(padded[:32000] == 1)
    with pytest.raises(AudioError, match=r"clip7.*shorter than the motion"):
        align_audio_to_motion(wave, 16000, 90, 30, tolerance_s=0.5, name="clip7")  # 3 s of motion, 2 s of audio


def test_real_clip_audio_is_longer_than_motion_and_aligns(real_wave: np.ndarray) -> None:
    assert len(real_wave) / 16000 == pytest.approx(64.1, abs=0.01)
    aligned = align_audio_to_motion(real_wave, 16000, REAL_MOTION_FRAMES, 30)
    assert len(aligned) == round(REAL_MOTION_FRAMES * 16000 / 30)
    assert n_motion_frames(len(aligned)) == REAL_MOTION_FRAMES


# ---------------------------------------------------------------------------------------- log-mel / MFCC


@pytest.mark.parametrize("n_frames", [1, 29, 30, 1906, 108000])
@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100])
def test_motion_frame_count_of_exact_duration(n_frames: int, sr: int) -> None:
    assert n_motion_frames(round(n_frames * sr / 30), sr, 30) == n_frames


def test_mfcc_inverts_to_logmel_exactly(real_wave: np.ndarray) -> None:
    wave = real_wave[: 16000 * 5]
    coeffs = mfcc(wave)
    assert coeffs.shape == (150, 128) and coeffs.dtype == np.float32
    mel = logmel(wave)
    assert np.max(np.abs(mfcc_to_logmel(coeffs) - mel)) < 1e-4
    assert np.max(np.abs(logmel_to_mfcc(mfcc_to_logmel(coeffs)) - coeffs)) < 1e-4
    assert mel.std() > 1.0  # real speech, not a floor of eps


def test_logmel_frame_t_is_centred_on_t_over_fps(real_wave: np.ndarray) -> None:
    import librosa

    wave = real_wave[: 16000 * 4]
    ours = logmel(wave)  # centres at t * 533.33 samples; every 3rd frame lands on a multiple of 400
    ref = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=1024, hop_length=400, power=1.0,
                                         pad_mode="constant", n_mels=128)
    ref = np.log(np.maximum(ref, 1e-5)).T
    np.testing.assert_allclose(ours[::3], ref[::4][: len(ours[::3])], atol=2e-3)


def test_real_clip_features_have_motion_length(real_wave: np.ndarray, tiny_wavlm: WavLMFeatures) -> None:
    aligned = align_audio_to_motion(real_wave, 16000, REAL_MOTION_FRAMES, 30)
    assert mfcc(aligned).shape == (REAL_MOTION_FRAMES, 128)
    assert mfcc(real_wave, n_frames=REAL_MOTION_FRAMES).shape == (REAL_MOTION_FRAMES, 128)
    feats = tiny_wavlm.extract(aligned, REAL_MOTION_FRAMES, fps=30)
    assert feats.shape == (REAL_MOTION_FRAMES, 768) and np.all(np.isfinite(feats))


def test_logmel_to_wave_keeps_pitch_and_length() -> None:
    tone = sine(440.0, 0.5, 16000)
    mel = logmel(tone)
    wave = logmel_to_wave(mel, n_iter=16)
    assert wave.shape == (8000,)
    assert abs(peak_hz(wave, 16000) - 440.0) < 10.0
    assert np.abs(logmel(wave)[3:-3] - mel[3:-3]).mean() < 0.5


# ------------------------------------------------------------------------------------------------ WavLM


def test_wavlm_frames_follow_the_hop_formula(tiny_wavlm: WavLMFeatures) -> None:
    for n in (400, 719, 720, 8000 + 123):
        assert tiny_wavlm.hidden_states(np.zeros(n, np.float32)).shape == (n_wavlm_frames(n), 768)
        assert n_wavlm_frames(n) == (n - 400) // 320 + 1
    assert tiny_wavlm.hidden_states(np.zeros(100, np.float32)).shape == (1, 768)  # padded to one window


def test_wavlm_extract_shape_and_seed_determinism() -> None:
    wave = sine(220.0, 1.0, 16000) + 0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    a = WavLMFeatures.random_init(3, "tiny").extract(wave, 30, fps=30)
    b = WavLMFeatures.random_init(3, "tiny").extract(wave, 30, fps=30)
    c = WavLMFeatures.random_init(4, "tiny").extract(wave, 30, fps=30)
    assert a.shape == (30, 768) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_wavlm_chunks_stitch_to_the_unchunked_result(tiny_wavlm: WavLMFeatures) -> None:
    wave = np.random.default_rng(1).standard_normal(16000 * 3 // 2).astype(np.float32) * 0.1
    whole = tiny_wavlm.hidden_states(wave)
    chunked = WavLMFeatures(tiny_wavlm.model, chunk_s=0.5, overlap_s=2.0).hidden_states(wave)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)  # each chunk sees all context: same numbers
    local = WavLMFeatures(tiny_wavlm.model, chunk_s=0.5, overlap_s=0.2).hidden_states(wave)
    assert local.shape == whole.shape and np.all(np.isfinite(local))
    one_at_a_time = WavLMFeatures(tiny_wavlm.model, chunk_s=0.5, overlap_s=0.2, batch_chunks=1).hidden_states(wave)
    np.testing.assert_allclose(local, one_at_a_time, atol=1e-5)  # equal-length chunks batched: same numbers
    # on a CPU chunks run one per call by default (a batch of them is slower there); a given count is kept
    assert WavLMFeatures(tiny_wavlm.model).batch_chunks == 1
    assert WavLMFeatures(tiny_wavlm.model, batch_chunks=4).batch_chunks == 4
    assert default_batch_chunks("cuda:0") == 8  # on an accelerator a batch of chunks pays


def test_wavlm_to_motion_rate_interpolates_at_frame_instants() -> None:
    states = np.arange(50, dtype=np.float32)[:, None]  # value = WavLM frame index, centred at 0.02 i + 0.0125 s
    out = wavlm_to_motion_rate(states, 30, fps=30)[:, 0]
    expected = np.clip((np.arange(30) / 30 - 0.0125) / 0.02, 0, 49)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_wavlm_layer_selection(tiny_wavlm: WavLMFeatures) -> None:
    wave = np.random.default_rng(2).standard_normal(8000).astype(np.float32) * 0.1
    mean = WavLMFeatures(tiny_wavlm.model, layer="mean").hidden_states(wave)
    first = WavLMFeatures(tiny_wavlm.model, layer=1).hidden_states(wave)
    last = WavLMFeatures(tiny_wavlm.model, layer=-1).hidden_states(wave)
    np.testing.assert_allclose(mean, (first + last) / 2, atol=1e-5)  # tiny has 2 layers
    assert not np.allclose(first, last)
    with pytest.raises(ValueError, match="layer"):
        WavLMFeatures(tiny_wavlm.model, layer=7)


def test_wavlm_int_layer_runs_only_the_layers_it_needs(tiny_wavlm: WavLMFeatures) -> None:
    import torch

    wave = np.random.default_rng(3).standard_normal(400 + 320 * 24).astype(np.float32) * 0.1  # whole hops
    with torch.inference_mode():
        reference = tiny_wavlm.model(torch.from_numpy(wave)[None], output_hidden_states=True).hidden_states
    calls = []
    hook = tiny_wavlm.model.encoder.layers[1].register_forward_hook(lambda *_: calls.append(1))
    for layer in (0, 1):
        states = WavLMFeatures(tiny_wavlm.model, layer=layer).hidden_states(wave)
        np.testing.assert_allclose(states, reference[layer][0].numpy(), atol=1e-5)
    assert calls == []  # layer 2 never ran
    WavLMFeatures(tiny_wavlm.model, layer=2).hidden_states(wave)
    hook.remove()
    assert calls == [1] and len(tiny_wavlm.model.encoder.layers) == 2  # the shared model is left whole


def test_wavlm_bfloat16_features_are_close_to_float32() -> None:
    import torch

    wave = np.random.default_rng(4).standard_normal(16000).astype(np.float32) * 0.1
    full = WavLMFeatures.random_init(0, "tiny").hidden_states(wave)
    half = WavLMFeatures.random_init(0, "tiny", dtype=torch.bfloat16)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    states = half.hidden_states(wave)
    assert states.dtype == np.float32 and states.shape == full.shape
    relative = np.linalg.norm(states - full) / np.linalg.norm(full)
    assert 0 < relative < 0.05, relative


def test_missing_wavlm_path_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_wavlm"
    with pytest.raises(FileNotFoundError, match="no_such_wavlm"):
        WavLMFeatures.from_pretrained(missing)
    with pytest.raises(FileNotFoundError, match="no_such_wavlm"):
        WavLMFeatures.from_params(path=missing)


def test_wavlm_saved_and_reloaded_from_a_local_directory(tmp_path: Path, tiny_wavlm: WavLMFeatures) -> None:
    tiny_wavlm.model.save_pretrained(tmp_path / "wavlm")
    loaded = WavLMFeatures.from_pretrained(tmp_path / "wavlm")
    assert not loaded.random_init and loaded.source == str(tmp_path / "wavlm")
    wave = np.random.default_rng(3).standard_normal(400 + 320 * 24).astype(np.float32) * 0.1  # whole hops
    np.testing.assert_allclose(loaded.extract(wave, 15), tiny_wavlm.extract(wave, 15), atol=1e-5)


def test_random_init_says_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="omniges.features.audio"):
        features = WavLMFeatures.from_params(path=None, seed=0, config="tiny")
    assert features.random_init
    assert RANDOM_INIT_MESSAGE in caplog.text and "RANDOM INIT" in caplog.text


def test_wavlm_auto_layer_is_the_middle_of_a_base_size_model_and_the_mean_of_tiny(tiny_wavlm: WavLMFeatures) -> None:
    from transformers import WavLMConfig, WavLMModel

    assert WavLMFeatures(tiny_wavlm.model, layer="auto").layer == "mean"  # 2 layers: the demo's
    narrow = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
                  num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    twelve = WavLMModel(WavLMConfig(num_hidden_layers=12, **narrow))
    features = WavLMFeatures(twelve, layer="auto")
    assert features.layer == 6 and features._run_layers == 6  # base size: the full-size recipe, half the layers run


def test_wavlm_int8_feed_forward_is_close_to_float32() -> None:
    import torch

    wave = np.random.default_rng(5).standard_normal(16000).astype(np.float32) * 0.1
    full = WavLMFeatures.random_init(0, "tiny").hidden_states(wave)
    int8 = WavLMFeatures.random_init(0, "tiny", quantize_ff=True)
    layer = int8.model.encoder.layers[0]
    assert "quantized" in type(layer.feed_forward.intermediate_dense).__module__
    assert all("quantized" in type(getattr(layer.attention, name)).__module__ for name in ("q_proj", "out_proj"))
    relative = np.linalg.norm(int8.hidden_states(wave) - full) / np.linalg.norm(full)
    assert 0 < relative < 0.05, relative
    with pytest.raises(ValueError, match="float32"):
        WavLMFeatures.random_init(0, "tiny", dtype=torch.bfloat16, quantize_ff=True)


def test_wavlm_attention_through_its_projection_modules_is_transformers_attention() -> None:
    """The attention forward that lets int8 projections run is transformers' function, with a padding mask too."""
    import types

    import torch

    from omniges.features.audio import projected_self_attention

    plain, ours = WavLMFeatures.random_init(0, "tiny"), WavLMFeatures.random_init(0, "tiny")
    for layer in ours.model.encoder.layers:
        layer.attention.torch_multi_head_self_attention = types.MethodType(projected_self_attention, layer.attention)
    wave = torch.from_numpy(np.random.default_rng(6).standard_normal((2, 8000)).astype(np.float32) * 0.1)
    mask = torch.ones(2, 8000, dtype=torch.long)
    mask[1, 6000:] = 0
    with torch.inference_mode():
        want, got = (f.model(wave, attention_mask=mask, output_hidden_states=True).hidden_states for f in (plain, ours))
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)
