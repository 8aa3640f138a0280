"""benchmarks/real_speech.py: its measures on the real BEAT2 clip's own motion, and a one-line error without a
trained model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_speech_bench", ROOT / "benchmarks/real_speech.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_motion_answers_its_own_speech(bench, real_clip_paths) -> None:
    """The real clip's jaw follows its own speech's loudness and not shifted speech; BC and L1div are EMAGE's."""
    from omniges.data.beat2 import read_motion
    from omniges.features.audio import load_audio

    motion = read_motion(real_clip_paths["npz"])
    wave = load_audio(real_clip_paths["wav"])
    n = min(len(motion["poses"]), int(len(wave) / bench.SR * bench.FPS))
    mean_vel = np.load(real_clip_paths["mean_std"] / "mean_vel_smplxflame_30.npy")
    out = bench.scores(motion["poses"][:n], wave[: int(n * bench.SR / bench.FPS)], mean_vel)
    assert out["jaw_r"] > 0.2 and abs(out["jaw_r_mismatched"]) < 0.1, out
    assert out["jaw_r_margin"] == pytest.approx(out["jaw_r"] - out["jaw_r_mismatched"])
    assert 0.5 < out["bc"] < 1.0 and out["bc_margin"] == pytest.approx(out["bc"] - out["bc_mismatched"])
    assert out["l1div"] > 5.0 and 1.0 < out["upper_speed"] < 3.0  # an active speaker: ~1.1x BEAT2's mean speed
    # BC's chance distribution over alignments: this clip's own motion is not beyond it (z ~1.1), which is why
    # the bench reports whether its clips can resolve BC coupling at all
    assert 0.0 <= out["bc_null_pct"] <= 1.0 and -3.0 < out["bc_null_z"] < 3.0


def test_bc_null_z_finds_motion_whose_beats_sit_on_the_onsets(bench, real_clip_paths) -> None:
    """Upper-body joints whose speed dips on every onset of the real speech are far above BC's chance
    distribution; the same motion against time-reversed speech is not."""
    import librosa

    from omniges.evaluation import metrics
    from omniges.evaluation.report import fk_no_translation
    from omniges.features.audio import load_audio

    wave = load_audio(real_clip_paths["wav"])[: 40 * bench.SR]
    mean_vel = np.load(real_clip_paths["mean_std"] / "mean_vel_smplxflame_30.npy")
    n = 40 * bench.FPS
    onsets = librosa.onset.onset_detect(y=wave, sr=bench.SR, hop_length=metrics.BC_HOP, units="time")
    t = np.arange(n) / bench.FPS
    gap = np.abs(t[:, None] - onsets[None, :]).min(axis=1)
    speed = 0.6 + 1.4 * (1.0 - np.exp(-(gap**2) / (2 * 0.05**2)))  # x mean_vel: dips to 0.6 on each onset
    joints = np.repeat(fk_no_translation(np.zeros((1, 165), np.float32)), n, axis=0)
    for j in metrics.UPPER_BODY_JOINTS:
        joints[:, j, 0] += np.cumsum(speed * mean_vel[j] / bench.FPS)
    assert bench.bc_null(wave, joints, mean_vel)["bc_null_z"] > 3.0
    assert bench.bc_null(wave[::-1].copy(), joints, mean_vel)["bc_null_z"] < 2.0  # the same beats, other speech


def test_without_a_trained_model_it_says_so_in_one_line(bench, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"real_speech: .*model\.pt"):
        bench.main([str(tmp_path / "out.json"), "--checkpoint", str(tmp_path / "model.pt")])
    assert not (tmp_path / "out.json").exists()


def test_clips_too_short_or_without_speech_are_skipped_and_counted(bench, real_clip_paths, tmp_path, capsys) -> None:
    """A clip whose wav is missing and one shorter than MIN_SECONDS are skipped, each with one line naming it;
    the good clip is cut to the length motion and speech share."""
    import soundfile as sf

    from omniges.data.beat2 import read_motion
    from omniges.features.audio import load_audio

    motion = read_motion(real_clip_paths["npz"])
    wave = load_audio(real_clip_paths["wav"])
    (tmp_path / "wave16k").mkdir()
    sf.write(tmp_path / "wave16k" / "good.wav", wave[: 20 * bench.SR], bench.SR)
    sf.write(tmp_path / "wave16k" / "short.wav", wave[: 5 * bench.SR], bench.SR)
    motions = {"good": motion, "short": motion, "nowav": motion}
    pairs, skipped = bench.real_pairs(tmp_path, motions)
    assert [stem for stem, _, _ in pairs] == ["good"] and sorted(skipped) == ["nowav", "short"]
    _, poses, speech = pairs[0]
    assert len(poses) == 20 * bench.FPS and len(speech) == 20 * bench.SR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and any("nowav.wav" in line for line in err) and any("short: 5.0 s" in line for line in err)
