"""Clips and the corpus writer: BEAT2 npz, 16 kHz wav, word TextGrid and the split csv, written atomically."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import wave
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omniges.constants import FPS
from omniges.data.synthetic.iconic import ICONIC_WORDS
from omniges.data.synthetic.motion import render_motion
from omniges.data.synthetic.script import SR, VOCABULARY, plan_script
from omniges.data.synthetic.speakers import SpeakerStyle, speaker_styles
from omniges.data.synthetic.speech import envelopes, render_audio


@dataclass(frozen=True)
class SyntheticClip:
    """One clip in memory: BEAT2 npz arrays, int16 audio, word intervals (s) and beat times (s)."""

    clip_id: str
    style: SpeakerStyle
    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    expressions: np.ndarray
    audio: np.ndarray
    words: list[tuple[str, float, float]]
    beats: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.poses) / FPS


def _betas(style: SpeakerStyle) -> np.ndarray:
    betas = np.zeros(300, np.float32)
    betas[:10] = np.random.default_rng([style.speaker_id, 31]).normal(0.0, 0.8, 10)
    return betas


def synthesize_clip(style: SpeakerStyle, *, seconds: float, seed: int = 0, index: int = 0,
                    vocabulary: Sequence[str] = VOCABULARY, speech: str = "formant") -> SyntheticClip:
    """One deterministic clip of `seconds` (rounded to 0.1 s so audio and motion lengths agree exactly).

    `speech`: "formant" renders the script with the built-in source-filter voice; "espeak" speaks each phrase
    with the speaker's eSpeak NG voice and reads the syllable timing, stress and loudness off it."""
    n_frames = 3 * max(1, int(round(seconds * 10)))
    n_samples = n_frames * SR // FPS
    rng = np.random.default_rng([seed, style.speaker_id, index])
    if speech == "espeak":
        from omniges.data.synthetic.espeak import plan_script_espeak

        script, audio = plan_script_espeak(style, n_samples, vocabulary, rng)
        voiced, _ = envelopes(script, n_samples)
    elif speech == "formant":
        script = plan_script(style, n_samples, vocabulary, rng)
        voiced, noise = envelopes(script, n_samples)
        audio = render_audio(script, style, voiced, noise, rng)
    else:
        raise ValueError(f"speech must be 'formant' or 'espeak', got {speech!r}")
    motion = render_motion(script, style, voiced, n_frames, rng)
    stressed = script.column(5) == 1
    return SyntheticClip(
        clip_id=f"{style.speaker_id}_{style.name}_0_{index + 1}_{index + 1}", style=style,
        poses=motion["poses"], trans=motion["trans"], betas=_betas(style), expressions=motion["expressions"],
        audio=audio, words=[(w, s / SR, e / SR) for w, s, e, _ in script.words],
        beats=script.column(1)[stressed] / SR if script.syllables else np.zeros(0),
    )


# ------------------------------------------------------------------------------------------------ writers

def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but byte-identical across runs (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue())


def _write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SR)
        handle.writeframes(audio.astype("<i2").tobytes())


def _time(value: float) -> str:
    return np.format_float_positional(value, trim="0") if value else "0"


def _write_textgrid(path: Path, words: Sequence[tuple[str, float, float]], duration: float) -> None:
    """Praat long-format TextGrid with one interval tier "words"; pauses are empty intervals."""
    intervals, cursor = [], 0.0
    for word, start, end in words:
        if start > cursor:
            intervals.append(("", cursor, start))
        intervals.append((word, start, end))
        cursor = end
    if duration > cursor:
        intervals.append(("", cursor, duration))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ",
             f"xmax = {_time(duration)} ", "tiers? <exists> ", "size = 1 ", "item []: ", "    item [1]:",
             '        class = "IntervalTier" ', '        name = "words" ', "        xmin = 0 ",
             f"        xmax = {_time(duration)} ", f"        intervals: size = {len(intervals)} "]
    for k, (text, start, end) in enumerate(intervals, start=1):
        lines += [f"        intervals [{k}]:", f"            xmin = {_time(start)} ",
                  f"            xmax = {_time(end)} ", f'            text = "{text}" ']
    path.write_text("\n".join(lines) + "\n")


def _split(index: int, count: int, val: int = 1, test: int = 1) -> str:
    """Per speaker the last clips are `val` val, `test` test and one additional, the rest train; val and test take
    at most a third of a speaker's clips each (small corpora keep their train clips)."""
    cap = max(1, (count - 1) // 3)
    test = min(test, cap, count - 1)
    val = min(val, cap, count - 1 - test)
    additional = 1 if count - val - test >= 2 else 0
    tail = ["val"] * val + ["test"] * test + ["additional"] * additional
    position = index - (count - len(tail))
    return tail[position] if position >= 0 else "train"


def write_clip(root: Path, clip: SyntheticClip) -> None:
    """A clip's BEAT2 files under `root`: smplxflame_30/<id>.npz, wave16k/<id>.wav, textgrid/<id>.TextGrid."""
    for sub in ("smplxflame_30", "wave16k", "textgrid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _write_npz(root / "smplxflame_30" / f"{clip.clip_id}.npz", {
        "betas": clip.betas, "poses": clip.poses, "expressions": clip.expressions, "trans": clip.trans,
        "model": np.array("smplx2020"), "gender": np.array("neutral"),
        "mocap_frame_rate": np.array(FPS, dtype=np.int32),
    })
    _write_wav(root / "wave16k" / f"{clip.clip_id}.wav", clip.audio)
    _write_textgrid(root / "textgrid" / f"{clip.clip_id}.TextGrid", clip.words, clip.seconds)


def _replace_dir(tmp: Path, root: Path) -> None:
    """Move the finished `tmp` onto `root`; an old `root` is swapped out first and removed after."""
    if not root.exists():
        tmp.rename(root)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
    root.rename(old / root.name)
    tmp.rename(root)
    shutil.rmtree(old)


def synthesize_corpus(
    root: Path, *, speakers: int = 4, clips_per_speaker: int = 8, clip_seconds: float = 20.0, seed: int = 0,
    vocabulary_size: int = len(VOCABULARY), progress: bool = False, speech: str = "formant",
    val_per_speaker: int = 1, test_per_speaker: int = 1,
) -> dict[str, float]:
    """Write the corpus under `root` atomically (temp sibling, then rename); flat summary."""
    if not 5 <= vocabulary_size <= len(VOCABULARY):
        raise ValueError(f"vocabulary_size must be in 5..{len(VOCABULARY)}, got {vocabulary_size}")
    if clips_per_speaker < 1 or clip_seconds < 2.0:
        raise ValueError(f"need clips_per_speaker >= 1 and clip_seconds >= 2, got {clips_per_speaker}, "
                         f"{clip_seconds}")
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    vocabulary = VOCABULARY[:vocabulary_size]
    jobs = [(style, k) for style in speaker_styles(speakers) for k in range(clips_per_speaker)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="synthesize", unit="clip")
    summary = dict.fromkeys(("clips", "seconds", "words", "iconic_words"), 0.0)
    summary.update(dict.fromkeys(("clips_train", "clips_val", "clips_test", "clips_additional"), 0.0))
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        tmp.chmod(0o755)
        rows = []
        for style, k in jobs:
            clip = synthesize_clip(style, seconds=clip_seconds, seed=seed, index=k, vocabulary=vocabulary,
                                   speech=speech)
            write_clip(tmp, clip)
            rows.append((clip.clip_id, _split(k, clips_per_speaker, val_per_speaker, test_per_speaker)))
            summary["clips"] += 1
            summary[f"clips_{rows[-1][1]}"] += 1
            summary["seconds"] += clip.seconds
            summary["words"] += len(clip.words)
            summary["iconic_words"] += sum(w in ICONIC_WORDS for w, _, _ in clip.words)
        with (tmp / "train_test_split.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["id", "type"])
            writer.writerows(rows)
        _replace_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.update(minutes=summary["seconds"] / 60, speakers=float(speakers))
    summary["vocabulary_size"] = float(vocabulary_size)
    return summary
