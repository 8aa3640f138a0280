"""Bad input to the CLI ends in one line naming the file and the problem (no traceback); silence gives idle motion."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from omniges.cli import main


def one_line_error(result, *needles: str) -> str:
    """The failed command's stderr: exactly one 'Error: ...' line containing every needle, no traceback."""
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture()
def speech(tmp_path: Path, real_clip_paths) -> Path:
    wave, sr = sf.read(real_clip_paths["wav"], dtype="float32")
    path = tmp_path / "speech.wav"
    sf.write(path, wave[: sr], sr)
    return path


def test_audio_shorter_than_one_gesture_token_is_refused(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, 1600).astype(np.float32), 16000)  # 0.1 s
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"never loaded: the audio is refused first")
    result = CliRunner().invoke(main, ["generate", "--audio", str(short), "--out", str(tmp_path / "x.mp4"),
                                       "--checkpoint", str(checkpoint)])
    one_line_error(result, "short.wav", "too short", "0.13 s")
    assert not (tmp_path / "x.mp4").exists()


def test_truncated_checkpoint_is_named_as_corrupt(tmp_path, tiny_checkpoint, speech):
    broken = tmp_path / "model.pt"
    data = tiny_checkpoint.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(main, ["generate", "--audio", str(speech), "--out", str(tmp_path / "x.mp4"),
                                       "--checkpoint", str(broken)])
    one_line_error(result, str(broken), "corrupt or truncated")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    result = CliRunner().invoke(main, ["transcribe", "--motion", str(speech), "--checkpoint",
                                       str(tmp_path / "junk.pt")])
    one_line_error(result, "junk.pt", "corrupt or truncated")


def test_truncated_checkpoint_in_a_real_process_prints_no_traceback(tmp_path, tiny_checkpoint, speech):
    broken = tmp_path / "model.pt"
    broken.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    exe = str(Path(sys.executable).parent / "omniges")  # the installed command, as a user runs it
    done = subprocess.run([exe, "generate", "--audio", str(speech), "--out",
                           str(tmp_path / "x.mp4"), "--checkpoint", str(broken)], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"Error: {broken}: corrupt or truncated checkpoint")


@pytest.mark.parametrize("command, out, suffix", [
    (["generate", "--audio", "A"], "x.txt", ".mp4"),
    (["generate", "--audio", "A", "--out", "ok.mp4", "--npz"], "motion.json", ".npz"),
    (["voice", "--motion", "A"], "speech.mp3", ".wav"),
    (["render", "A"], "clip.avi", ".mp4"),
])
def test_an_output_name_with_another_format_is_refused(tmp_path, speech, command, out, suffix):
    args = [str(speech) if a == "A" else a for a in command]
    args = [*args, str(tmp_path / out)] if args[-1] == "--npz" else [*args, "--out", str(tmp_path / out)]
    result = CliRunner().invoke(main, args)
    one_line_error(result, out, f"ending in {suffix}")
    assert not (tmp_path / out).exists()


def test_silent_audio_generates_idle_motion_with_a_note(tmp_path, tiny_checkpoint, monkeypatch, caplog):
    from omniges.data.beat2 import read_motion
    from omniges.render.video import probe_media

    root = tiny_checkpoint.parents[3]
    work = tmp_path / "work"
    shutil.copytree(root, work)
    monkeypatch.chdir(work)
    sf.write("silence.wav", np.zeros(44100, np.float32), 44100)  # 1 s at another rate
    with caplog.at_level(logging.INFO, logger="omniges"):
        result = CliRunner().invoke(main, ["generate", "--audio", "silence.wav", "--out", "idle.mp4",
                                           "--npz", "idle.npz", "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert any("silence.wav" in r.message and "idle" in r.message for r in caplog.records)
    motion = read_motion("idle.npz")
    assert motion["poses"].shape == (30, 165) and np.isfinite(motion["poses"]).all()
    media = probe_media("idle.mp4")
    assert media["has_audio"] and abs(media["duration_video"] - 1.0) < 0.1


def test_serve_refuses_a_missing_checkpoint_or_one_without_a2g(tmp_path):
    from conftest import write_tiny_checkpoint

    missing = CliRunner().invoke(main, ["serve", "--checkpoint", str(tmp_path / "none.pt")])
    one_line_error(missing, "none.pt", "no trained model")
    g2t = write_tiny_checkpoint(tmp_path / "g2t", experiment="g2t", tasks=("g2t",))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(g2t.parents[3])  # the checkpoint's tokenizer and vocabulary are found from here
        result = CliRunner().invoke(main, ["serve", "--checkpoint", "results/models/g2t/model.pt"])
    one_line_error(result, "results/models/g2t/model.pt", "not a2g")


def test_a_stage_given_a_bad_parameter_says_which_without_a_traceback(tmp_path):
    root = Path(__file__).parents[1]
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    done = subprocess.run([sys.executable, str(root / "stages" / "train.py"), "--experiment", "a2g",
                           "compute.device=tpu"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "compute.device" in done.stderr and "tpu" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_input_fails_in_one_line_before_torch_is_imported(tmp_path):
    """A real process, as a user runs it: the error comes before the heavy imports (torch alone takes seconds)."""
    import time

    exe = str(Path(sys.executable).parent / "omniges")
    for args, needle in ((["generate", "--audio", "missing.wav", "--out", "x.mp4"], "--audio missing.wav"),
                         (["transcribe", "--motion", "missing.npz"], "--motion missing.npz"),
                         (["render", "missing.npz", "--out", "x.mp4"], "MOTION missing.npz")):
        start = time.perf_counter()
        done = subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        assert done.returncode == 1 and done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
        assert done.stderr.startswith(f"Error: {needle}") and "not found" in done.stderr
        assert seconds < 2.0, (args, seconds)


def test_a_textgrid_of_another_recording_names_both_files_and_durations(tmp_path, speech):
    from test_text_features import write_textgrid

    grid = write_textgrid(tmp_path / "other.TextGrid", {"words": [(0.0, 30.0, "hello"), (30.0, 63.5, "world")]},
                          xmax=63.5)
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"never loaded: the TextGrid is refused first")
    result = CliRunner().invoke(main, ["generate", "--audio", str(speech), "--textgrid", str(grid), "--out",
                                       str(tmp_path / "x.mp4"), "--checkpoint", str(checkpoint)])
    one_line_error(result, "other.TextGrid", "63.50 s", "speech.wav", "1.00 s")
    missing = CliRunner().invoke(main, ["generate", "--audio", str(speech), "--textgrid", "none.TextGrid",
                                        "--out", str(tmp_path / "x.mp4")])
    one_line_error(missing, "--textgrid none.TextGrid", "not found")
