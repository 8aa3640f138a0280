"""EMAGE metrics with known answers (incl. each reproduced quirk), text/speech metrics, and the sync measure."""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest

from omniges.evaluation import metrics
from omniges.evaluation.metrics import (
    UPPER_BODY_JOINTS,
    audio_onsets,
    beat_consistency,
    bleu,
    face_metrics,
    fgd,
    frechet_distance,
    gahr,
    l1_diversity,
    log_mel,
    log_mel_distance,
    lvd,
    mcd_dtw,
    mcd_dtw_waves,
    motion_beats,
    rouge_l,
    velocity_consistency,
    weighted_mean,
)
from omniges.evaluation.sync import speech_motion_sync

REAL = Path(__file__).parent / "fixtures" / "beat2_real"
SR, FPS = 16000, 30


# ---------------------------------------------------------------- FGD


def test_fgd_of_a_set_with_itself_is_zero_and_a_mean_shift_adds_its_square():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    assert abs(fgd(real, real)) < 1e-6
    assert fgd(real, real + 0.5) == pytest.approx(16 * 0.25, rel=1e-6)  # same covariance: ||delta||^2
    assert fgd(real, real + 1.0) > fgd(real, real + 0.5)


def test_frechet_distance_hand_example():
    # 1-D: (0 - 1)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    assert frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([1.0]), np.array([[4.0]])) == pytest.approx(2)


def test_fgd_quirk_complex_sqrtm_returns_1e10(monkeypatch):
    monkeypatch.setattr(metrics.linalg, "sqrtm", lambda m: np.eye(len(m)) * (1 + 1j))
    assert fgd(np.random.default_rng(0).normal(size=(50, 3)), np.random.default_rng(1).normal(size=(50, 3))) == 1e10


# ---------------------------------------------------------------- BC


def test_gahr_hand_example_and_empty_motion_beats():
    expected = (math.exp(-0.01 / 0.18) + math.exp(-1.0 / 0.18)) / 2  # onsets 1.1 (d=0.1) and 3.0 (d=1.0)
    assert gahr(np.array([1.0, 2.0]), np.array([1.1, 3.0]), 0.3) == pytest.approx(expected)
    assert gahr(np.array([]), np.array([1.0])) == 0.0
    with pytest.raises(ValueError):
        gahr(np.array([1.0]), np.array([]))


def test_motion_beats_quirk_threshold_checked_at_relative_index():
    speed = np.array([0.0, 0.0, 0.0, 1.0, 0.5, 0.1, 0.5, 1.0, 1.0, 1.0])
    # minimum of speed[3:10] at relative index 2 (absolute 5, speed 0.1 < threshold) but EMAGE tests speed[2] = 0.0
    assert motion_beats(speed, 3, 10, order=2, threshold=-1.0).tolist() == [2]
    assert motion_beats(speed, 3, 10, order=2, threshold=0.05).tolist() == []
    speed[2] = 0.9  # now the relative index passes although the minimum itself (0.1) would not
    assert motion_beats(speed, 3, 10, order=2, threshold=0.3).tolist() == [2]


def test_audio_onsets_quirk_end_trim_counts_from_full_audio_end():
    full = librosa.clicks(times=[9.0], sr=SR, length=12 * SR)  # audio 12 s, motion 10 s
    onsets = audio_onsets(full, SR, n_frames=10 * FPS, fps=FPS)
    assert onsets.size >= 1 and np.all(np.abs(onsets - 7.0) < 0.1)  # kept span 2..10 s, not 2..8 s
    assert audio_onsets(full[: 10 * SR], SR, n_frames=10 * FPS, fps=FPS).size == 0


def _beat_scene(click_offset_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper-body joints whose speed is zero every 0.8 s from 0.5 s; clicks at those times + offset."""
    t = np.arange(20 * FPS) / FPS
    joints = np.zeros((len(t), 55, 3))
    joints[:, list(UPPER_BODY_JOINTS), 0] = 0.1 * np.cos(np.pi * (t[:, None] - 0.5) / 0.8)
    clicks = np.arange(0.5, 20, 0.8) + click_offset_s
    return librosa.clicks(times=clicks[clicks < 20], sr=SR, length=20 * SR), joints


def test_bc_high_when_speed_minima_sit_on_onsets_and_low_when_shifted():
    mean_vel = np.full(55, 0.2)
    audio, joints = _beat_scene(0.0)
    aligned = beat_consistency(audio, SR, joints, FPS, mean_vel=mean_vel)
    audio, joints = _beat_scene(0.4)
    shifted = beat_consistency(audio, SR, joints, FPS, mean_vel=mean_vel)
    assert aligned > 0.95
    assert shifted == pytest.approx(math.exp(-0.16 / 0.18), abs=0.05)


def test_weighted_mean_pools_like_emage():
    assert weighted_mean([0.5, 1.0], [100, 300]) == pytest.approx(0.875)


# ---------------------------------------------------------------- diversity, face, dynamics


def test_l1div_constant_is_zero_and_hand_example_sums_over_coordinates():
    assert l1_diversity(np.ones((50, 55, 3))) == 0.0
    # mean (1, 2); |dev| sum = 1 + 2 + 1 + 2 = 6 over 2 frames -> 3 (sum over coordinates, not mean)
    assert l1_diversity(np.array([[0.0, 0.0], [2.0, 4.0]])) == pytest.approx(3.0)
    assert l1_diversity([np.array([[0.0, 0.0], [2.0, 4.0]]), np.zeros((2, 2))]) == pytest.approx(1.5)


def test_lvd_quirk_uses_pred_minus_previous_target():
    target = np.zeros((4, 2))
    pred = np.ones((4, 2))  # a constant offset: true velocities agree, EMAGE's LVD still sees 1
    assert lvd(pred, target) == pytest.approx(1.0)
    assert lvd(target, target) == 0.0
    out = face_metrics(pred, target, space="vertices")
    assert out == {"face_mse_vertices": pytest.approx(1.0), "lvd_vertices": pytest.approx(1.0)}
    with pytest.raises(ValueError):
        face_metrics(pred, target, space="mesh")


def test_velocity_consistency():
    t = np.linspace(0, 1, 31)[:, None, None] * np.ones((1, 3, 3))
    same = velocity_consistency(t, t, 30)
    assert same["vel_l1"] == 0.0 and same["acc_l1"] == 0.0 and same["speed_ratio"] == pytest.approx(1.0)
    assert velocity_consistency(2 * t, t, 30)["speed_ratio"] == pytest.approx(2.0)


# ---------------------------------------------------------------- text


def test_bleu_and_rouge_identical_and_different():
    refs = ["the quick brown fox jumps over the lazy dog", "speech drives the hands"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert rouge_l(refs, refs) == pytest.approx(1.0)
    hyps = ["a slow red fox sits under a lazy cat", "speech moves the hands"]
    assert bleu(hyps, refs) < 50 and 0 < rouge_l(hyps, refs) < 1


# ---------------------------------------------------------------- speech


def test_mcd_hand_example_identical_and_time_warp():
    ref, gen = np.array([[5.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 0.0]])
    assert mcd_dtw(ref, gen) == pytest.approx(10 / math.log(10) * math.sqrt(2))  # c0 excluded
    frames = np.random.default_rng(0).normal(size=(20, 13))
    assert mcd_dtw(frames, frames) == 0.0
    assert mcd_dtw(frames, np.repeat(frames, 2, axis=0)) == 0.0  # DTW absorbs a slower tempo


def test_mcd_and_log_mel_on_waves():
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 0.3, SR).astype(np.float32)
    assert mcd_dtw_waves(tone, tone, SR) == 0.0
    assert mcd_dtw_waves(tone, noise, SR) > 1.0
    assert log_mel_distance(log_mel(tone, SR), log_mel(tone, SR)) == 0.0
    assert log_mel_distance(log_mel(tone, SR), log_mel(noise, SR)) > 0.5


# ---------------------------------------------------------------- sync


@pytest.fixture(scope="module")
def real_clip() -> tuple[np.ndarray, np.ndarray]:
    poses = np.load(REAL / "smplxflame_30" / "2_scott_0_1_1.npz")["poses"]
    audio, sr = librosa.load(REAL / "wave16k" / "2_scott_0_1_1.wav", sr=None)
    assert sr == SR
    return audio[: round(len(poses) / FPS * SR)], poses


def test_sync_separates_true_pairing_from_shifted_audio_on_real_clip(real_clip):
    audio, poses = real_clip
    true = speech_motion_sync(audio, SR, poses, FPS)
    assert true["sync_z"] > 3 and true["jaw"]["z"] > 3 and true["body"]["z"] > 2
    assert abs(true["jaw"]["peak_lag_s"]) <= 0.1
    for shift_s in (2, 4, 8):
        shifted = speech_motion_sync(np.roll(audio, shift_s * SR), SR, poses, FPS)
        assert shifted["sync_z"] < 1 and shifted["sync_z"] < true["sync_z"] - 2.5


def test_sync_synthetic_jaw_following_energy():
    rng = np.random.default_rng(0)
    n = 40 * FPS
    gate = np.repeat(rng.random(n // 6) > 0.5, 6)[:n].astype(float)  # 0.2-s syllables on/off
    n_samples = n * SR // FPS
    envelope = 0.05 + gate[np.arange(n_samples) * FPS // SR]
    audio = (rng.normal(size=n_samples) * envelope).astype(np.float32)
    poses = np.zeros((n, 165))
    poses[:, 66] = 0.3 * gate
    poses[:, 3 * 16: 3 * 16 + 3] = rng.normal(0, 0.01, (n, 3))
    result = speech_motion_sync(audio, SR, poses, FPS)
    assert result["jaw"]["peak"] > 0.8 and result["jaw"]["z"] > 5


def test_word_accuracy_reads_each_word_over_its_tokens_and_skips_specials():
    from omniges.evaluation.report import word_accuracy
    from omniges.features.text import Vocabulary

    vocab = Vocabulary([*Vocabulary.SPECIALS, "hello", "world", "big"])
    log_probs = np.full((15, len(vocab)), -5.0)  # 2 s at 7.5 tokens/s
    log_probs[:, Vocabulary.SIL] = 0.0  # silence dominates every token, yet words are read among real words
    log_probs[0:7, vocab.index["hello"]] = -1.0  # tokens 0..6 cover 0.0-0.93 s
    log_probs[7:15, vocab.index["world"]] = -1.0
    words = [("hello", 0.0, 0.9), ("world", 1.0, 1.9), ("Big", 1.2, 1.21), ("zzz", 0.1, 0.2)]
    # "Big" (a word shorter than a token) is read at its midpoint token, where "world" wins; "zzz" is not scored
    assert word_accuracy(log_probs, words, vocab) == pytest.approx(2 / 3)
    log_probs[9, vocab.index["big"]] = 0.5  # frame 36 (1.2 s) lies in token 9
    assert word_accuracy(log_probs, words, vocab) == pytest.approx(1.0)
    assert word_accuracy(log_probs, [("zzz", 0.0, 1.0)], vocab) is None


def test_envelope_correlation_follows_timing_not_level():
    from omniges.evaluation.report import envelope_correlation

    rng = np.random.default_rng(0)
    loud = np.repeat(rng.random(40) > 0.5, 5).astype(float)
    ref = loud[:, None] * 4 + rng.normal(0, 0.1, (200, 16))
    assert envelope_correlation([ref], [ref * 0.5 - 3]) == pytest.approx(1.0, abs=1e-9)
    assert envelope_correlation([ref], [np.roll(ref, 50, axis=0)]) < 0.3
    assert envelope_correlation([ref], [np.zeros_like(ref)]) == 0.0  # a flat candidate has no defined correlation
