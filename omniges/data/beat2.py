"""Reader for the BEAT2 release layout (`beat_english_v2.0.0/`), strict about what it accepts.

Every problem with a file raises `Beat2Error` naming the file; `preprocess` turns those into
counted skips. Text is optional (the GestureLSM demo clip ships without a TextGrid).
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from omniges.data.body import EXPRESSION_DIM, POSE_DIM, split_parts

SPLIT_TYPES = ("train", "val", "test", "additional")
MOTION_DIR, AUDIO_DIR, TEXT_DIR, SPLIT_CSV = "smplxflame_30", "wave16k", "textgrid", "train_test_split.csv"


class Beat2Error(ValueError):
    """A BEAT2 file that cannot be used as it is."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


@dataclass(frozen=True)
class ClipEntry:
    clip_id: str
    split: str

    @property
    def speaker(self) -> int:
        return speaker_of(self.clip_id)


def speaker_of(clip_id: str) -> int:
    """BEAT2 ids are `<speaker>_<name>_<...>`: speaker = int(first field)."""
    head = clip_id.split("_", 1)[0]
    if not head.isdigit():
        raise Beat2Error(clip_id, "clip id does not start with a speaker number")
    return int(head)


def read_split_csv(root: str | Path) -> list[ClipEntry]:
    """`train_test_split.csv` rows (columns id, type)."""
    path = Path(root) / SPLIT_CSV
    if not path.is_file():
        raise Beat2Error(path, "split file not found (is this a beat_english_v2.0.0 directory?)")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"id", "type"} <= set(reader.fieldnames):
            raise Beat2Error(path, f"expected columns id,type; found {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if row["type"] not in SPLIT_TYPES:
                raise Beat2Error(path, f"line {line}: unknown split type {row['type']!r}")
            rows.append(ClipEntry(row["id"].strip(), row["type"]))
    return rows


def select_clips(entries: list[ClipEntry], *, speakers: list[int], splits: list[str]) -> list[ClipEntry]:
    """EMAGE/GestureLSM selection: listed speakers (all when empty) and split types."""
    return [
        e for e in entries if e.split in splits and (not speakers or speaker_of(e.clip_id) in speakers)
    ]


def read_motion(path: str | Path, *, fps: int = 30) -> dict[str, np.ndarray]:
    """One `smplxflame_30/<id>.npz`: poses (T,165), trans (T,3), expressions (T,100), betas (300,)."""
    path = Path(path)
    if not path.is_file():
        raise Beat2Error(path, "motion file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise Beat2Error(path, f"corrupt or truncated npz ({error})") from None
    missing = [key for key in ("poses", "trans", "expressions", "betas", "mocap_frame_rate") if key not in raw]
    if missing:
        raise Beat2Error(path, f"missing keys {missing}")
    poses, trans, expressions = raw["poses"], raw["trans"], raw["expressions"]
    length = len(poses)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM:
        raise Beat2Error(path, f"poses must be (T, {POSE_DIM}), got {poses.shape}")
    if trans.shape != (length, 3):
        raise Beat2Error(path, f"trans must be ({length}, 3), got {trans.shape}")
    if expressions.shape != (length, EXPRESSION_DIM):
        raise Beat2Error(path, f"expressions must be ({length}, {EXPRESSION_DIM}), got {expressions.shape}")
    if length < 8:
        raise Beat2Error(path, f"only {length} frames")
    rate = float(np.asarray(raw["mocap_frame_rate"]).reshape(-1)[0])
    if round(rate) != fps:
        raise Beat2Error(path, f"mocap_frame_rate is {rate:g}, expected {fps}")
    for key in ("poses", "trans", "expressions"):
        if not np.isfinite(raw[key]).all():
            raise Beat2Error(path, f"{key} contains NaN or inf")
    return {
        "poses": poses.astype(np.float32),
        "trans": trans.astype(np.float64),
        "expressions": expressions.astype(np.float64),
        "betas": np.asarray(raw["betas"], dtype=np.float32).reshape(-1),
    }


def read_wave(path: str | Path, *, sr: int = 16000, dtype: str = "float32") -> np.ndarray:
    """One `wave16k/<id>.wav`: must be `sr` Hz mono; float32 in [-1, 1], or the int16 samples (`dtype='int16'`:
    exactly the file's for BEAT2's 16-bit PCM, and no float round trip)."""
    path = Path(path)
    if not path.is_file():
        raise Beat2Error(path, "audio file not found")
    try:
        with sf.SoundFile(str(path)) as handle:
            file_sr, channels = handle.samplerate, handle.channels
            if file_sr != sr:
                raise Beat2Error(path, f"sample rate {file_sr} Hz, expected {sr} Hz (BEAT2 wave16k)")
            if channels != 1:
                raise Beat2Error(path, f"{channels} channels, expected mono")
            floating = handle.subtype in ("FLOAT", "DOUBLE")
            wave = handle.read(dtype="float32" if floating else dtype)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise Beat2Error(path, f"unreadable audio ({error})") from None
    if len(wave) == 0:
        raise Beat2Error(path, "empty audio")
    if floating and not np.isfinite(wave).all():
        raise Beat2Error(path, "audio contains NaN or inf")
    if floating and dtype == "int16":
        return np.round(np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16)
    return wave


def read_words(path: str | Path) -> list[tuple[str, float, float]]:
    """Word intervals of a TextGrid, or [] when the clip has no TextGrid (text is optional)."""
    path = Path(path)
    if not path.exists():
        return []
    from omniges.data.transcript import read_textgrid

    try:
        return [(str(w), float(s), float(e)) for w, s, e in read_textgrid(path)]
    except Beat2Error:
        raise
    except (ValueError, OSError, IndexError) as error:
        raise Beat2Error(path, f"malformed TextGrid ({error})") from None


def read_clip(
    root: str | Path, entry: ClipEntry, *, fps: int = 30, sr: int = 16000, tolerance_s: float = 1.0,
    face_jaw: bool = True,
) -> dict[str, Any]:
    """One clip as a preprocess record: motion, parts, audio cropped to the motion, words, speaker, split."""
    root = Path(root)
    motion = read_motion(root / MOTION_DIR / f"{entry.clip_id}.npz", fps=fps)
    wav_path = root / AUDIO_DIR / f"{entry.clip_id}.wav"
    wave = read_wave(wav_path, sr=sr, dtype="int16")
    length = len(motion["poses"])
    need = int(round(length * sr / fps))
    shortfall = (need - len(wave)) / sr
    if shortfall > tolerance_s:
        raise Beat2Error(
            wav_path, f"audio is {len(wave) / sr:.2f} s but motion is {length / fps:.2f} s "
            f"(shorter by {shortfall:.2f} s > tolerance {tolerance_s} s)"
        )
    wave = np.pad(wave[:need], (0, max(0, need - len(wave))))
    words = read_words(root / TEXT_DIR / f"{entry.clip_id}.TextGrid")
    duration = length / fps
    words = [(w, s, min(e, duration)) for w, s, e in words if s < duration]
    parts = split_parts(motion["poses"], motion["trans"], motion["expressions"], face_jaw=face_jaw)
    return {
        "id": entry.clip_id,
        "speaker": entry.speaker,
        "split": entry.split,
        "fps": fps,
        "sr": sr,
        "n_frames": length,
        "poses": motion["poses"],
        "trans": motion["trans"].astype(np.float32),
        "expressions": motion["expressions"].astype(np.float32),
        "betas": motion["betas"],
        "trans_init": motion["trans"][0].astype(np.float64),
        "parts": parts,
        "audio": wave,
        "words": words,
    }
