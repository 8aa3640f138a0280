"""BEAT2 reader on the real clip, and a clear error for every kind of bad file."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from omniges.data.beat2 import (
    Beat2Error,
    ClipEntry,
    read_clip,
    read_motion,
    read_split_csv,
    read_wave,
    select_clips,
    speaker_of,
)

REAL_ID = "2_scott_0_1_1"


def test_real_clip_reads_and_reconciles_lengths(copy_real):
    record = read_clip(copy_real, ClipEntry(REAL_ID, "train"))
    assert record["n_frames"] == 1906 and record["speaker"] == 2
    assert len(record["audio"]) == 1906 * 16000 // 30  # audio (64.1 s) cropped to the motion (63.5 s)
    assert record["words"] == []  # no TextGrid ships with this clip: text is optional
    assert record["parts"]["lower_trans"].shape == (1906, 57)


def test_speaker_and_selection():
    entries = [ClipEntry("2_scott_0_1_1", "train"), ClipEntry("4_lawrence_0_1_1", "test"),
               ClipEntry("2_scott_0_2_2", "additional")]
    assert speaker_of("12_x_0_1_1") == 12
    assert select_clips(entries, speakers=[2], splits=["train", "test"]) == entries[:1]
    assert select_clips(entries, speakers=[], splits=["test"]) == entries[1:2]


def _npz(path, **override):
    base = {"poses": np.zeros((30, 165), np.float32), "trans": np.zeros((30, 3)),
            "expressions": np.zeros((30, 100)), "betas": np.zeros(300, np.float32), "mocap_frame_rate": 30}
    base.update(override)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"poses": None}, "missing keys"),
        ({"poses": np.full((30, 165), np.nan, np.float32)}, "NaN or inf"),
        ({"trans": np.full((30, 3), np.inf)}, "NaN or inf"),
        ({"mocap_frame_rate": 60}, "mocap_frame_rate is 60"),
        ({"poses": np.zeros((30, 156), np.float32)}, "poses must be"),
        ({"expressions": np.zeros((29, 100))}, "expressions must be"),
    ],
)
def test_bad_motion_names_file_and_problem(tmp_path, override, message):
    path = _npz(tmp_path / "clip.npz", **override)
    with pytest.raises(Beat2Error, match=message) as info:
        read_motion(path)
    assert str(path) in str(info.value)


def test_truncated_npz(tmp_path):
    good = _npz(tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(Beat2Error, match="corrupt or truncated"):
        read_motion(bad)


@pytest.mark.parametrize(
    ("rate", "channels", "message"),
    [(44100, 1, "sample rate 44100"), (16000, 2, "2 channels"), (8000, 2, "sample rate 8000")],
)
def test_bad_wave(tmp_path, rate, channels, message):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((rate, channels), np.float32) + 0.1, rate)
    with pytest.raises(Beat2Error, match=message):
        read_wave(path)


def test_missing_and_empty_wave(tmp_path):
    with pytest.raises(Beat2Error, match="audio file not found"):
        read_wave(tmp_path / "none.wav")
    (tmp_path / "empty.wav").write_bytes(b"RIFF")
    with pytest.raises(Beat2Error, match="unreadable audio"):
        read_wave(tmp_path / "empty.wav")


def test_audio_much_shorter_than_motion(copy_real):
    wav = copy_real / "wave16k" / f"{REAL_ID}.wav"
    wave, sr = sf.read(wav)
    sf.write(wav, wave[: 30 * sr], sr)
    with pytest.raises(Beat2Error, match="shorter by"):
        read_clip(copy_real, ClipEntry(REAL_ID, "train"))


def test_split_csv_errors(tmp_path):
    with pytest.raises(Beat2Error, match="split file not found"):
        read_split_csv(tmp_path)
    (tmp_path / "train_test_split.csv").write_text("id,type\n2_a_0_1_1,holdout\n")
    with pytest.raises(Beat2Error, match="unknown split type 'holdout'"):
        read_split_csv(tmp_path)
    (tmp_path / "train_test_split.csv").write_text("name,kind\n")
    with pytest.raises(Beat2Error, match="expected columns id,type"):
        read_split_csv(tmp_path)


def test_empty_and_malformed_textgrid(copy_real):
    grid = copy_real / "textgrid" / f"{REAL_ID}.TextGrid"
    grid.parent.mkdir()
    grid.write_text("")
    with pytest.raises(Beat2Error) as info:
        read_clip(copy_real, ClipEntry(REAL_ID, "train"))
    assert str(grid) in str(info.value)
    shutil.copy(copy_real / "mean_std" / "beatx_2_trans_mean.npy", grid)
    with pytest.raises(Beat2Error):
        read_clip(copy_real, ClipEntry(REAL_ID, "train"))


def test_int16_reading_keeps_the_file_samples_and_still_refuses_nan_float_audio(tmp_path):
    samples = (np.arange(-8000, 8000, dtype=np.int16) * 3)
    sf.write(tmp_path / "pcm.wav", samples, 16000, subtype="PCM_16")
    np.testing.assert_array_equal(read_wave(tmp_path / "pcm.wav", dtype="int16"), samples)
    np.testing.assert_allclose(read_wave(tmp_path / "pcm.wav"), samples / 32768.0, atol=1e-7)
    bad = np.zeros(1600, np.float32)
    bad[10] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(Beat2Error, match="NaN or inf"):
        read_wave(tmp_path / "nan.wav", dtype="int16")
