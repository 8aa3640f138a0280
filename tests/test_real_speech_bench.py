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


def test_without_a_trained_model_it_says_so_in_one_line(bench, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"real_speech: .*model\.pt"):
        bench.main([str(tmp_path / "out.json"), "--checkpoint", str(tmp_path / "model.pt")])
    assert not (tmp_path / "out.json").exists()
