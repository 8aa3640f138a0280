"""Side-by-side comparison videos with speech: panel composition, word subtitles, H.264 + AAC mp4.

Frames stream straight into ffmpeg (imageio-ffmpeg's bundled binary), so a long clip never sits in
memory; audio is trimmed or zero-padded to exactly the video length before it is muxed. Every file is
written to a temporary name next to its target and renamed only when complete.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import soundfile
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from omniges.data.kinematics import forward_kinematics
from omniges.render.skeleton import SkeletonRenderer

Word = tuple[str, float, float]  # (word, start seconds, end seconds)

_BACKGROUND = (255, 255, 255)
_TITLE_HEIGHT = 34
_SUBTITLE_HEIGHT = 52


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """Validate one frame as uint8 (H, W, 3), matching `shape` when given."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    if shape is not None and frame.shape != shape:
        raise ValueError(f"frame shape changed from {shape} to {frame.shape}")
    return frame


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad a frame with white to even width and height (yuv420p needs both)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
    return np.ascontiguousarray(frame)


def _temp_path(target: Path, suffix: str) -> Path:
    """A fresh hidden temporary file beside `target`, so the final rename is atomic."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(handle)
    os.chmod(name, 0o644)
    return Path(name)


def _encode_frames(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode frames as H.264 yuv420p video without audio; returns the number of frames written."""
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no frames to write")
    shape = _check_frame(first, None).shape
    writer = None
    count = 0
    try:
        for frame in _chain(first, iterator):
            frame = _pad_even(_check_frame(frame, shape))
            if writer is None:
                writer = imageio_ffmpeg.write_frames(
                    str(path),
                    (frame.shape[1], frame.shape[0]),
                    fps=Fraction(fps).limit_denominator(1001),
                    codec="libx264",
                    quality=None,
                    macro_block_size=1,
                    ffmpeg_log_level="error",
                    output_params=["-crf", "20", "-preset", "veryfast", "-f", "mp4"],
                )
                writer.send(None)
            writer.send(frame)
            count += 1
    finally:
        if writer is not None:
            writer.close()
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The first frame, then the rest."""
    yield first
    yield from rest


def _run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess:
    """Run the bundled ffmpeg with `args`, raising with its stderr on failure."""
    result = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 30.0,
    audio: np.ndarray | None = None,
    sr: int = 16000,
) -> Path:
    """Write uint8 (T,H,W,3) frames (array or iterable) as H.264 mp4, with mono float audio as AAC, atomically.

    Audio is trimmed or zero-padded to T / fps seconds so both streams end together (no `-shortest`: under
    load its cut depends on packet interleaving, which made the audio end up to 0.2 s early now and then).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frames, np.ndarray) and (frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8):
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    video = _temp_path(target, ".video.mp4")
    temps = [video]
    try:
        count = _encode_frames(video, frames, fps)
        if audio is None:
            os.replace(video, target)
            return target
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        length = int(round(count / fps * sr))
        samples = np.pad(samples[:length], (0, max(0, length - len(samples))))
        wav = _temp_path(target, ".audio.wav")
        muxed = _temp_path(target, ".mux.mp4")
        temps += [wav, muxed]
        soundfile.write(wav, np.clip(samples, -1.0, 1.0), sr, subtype="PCM_16")
        _run_ffmpeg(
            [
                "-y",
                "-i",
                str(video),
                "-i",
                str(wav),
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-c:v",
                "copy",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-ar",
                "48000",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(muxed),
            ]
        )
        os.replace(muxed, target)
        return target
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def probe_media(path: str | Path) -> dict:
    """Decode a media file with ffmpeg: {duration_video, duration_audio, has_audio, width, height, fps}."""
    info = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    video_line = next((line for line in info.splitlines() if "Stream #" in line and "Video:" in line), None)
    has_audio = any("Stream #" in line and "Audio:" in line for line in info.splitlines())
    result: dict = {
        "has_audio": has_audio,
        "width": None,
        "height": None,
        "fps": None,
        "duration_video": None,
        "duration_audio": None,
    }
    if video_line is not None:
        size = re.search(r"\b(\d{2,5})x(\d{2,5})\b", video_line)
        rate = re.search(r"([\d.]+) fps", video_line) or re.search(r"([\d.]+) tbr", video_line)
        result["width"], result["height"] = (int(size[1]), int(size[2])) if size else (None, None)
        result["fps"] = float(rate[1]) if rate else None
        decoded = _run_ffmpeg(["-i", str(path), "-map", "0:v:0", "-f", "null", "-"]).stderr
        frames = re.findall(r"frame=\s*(\d+)", decoded)
        if frames and result["fps"]:
            result["duration_video"] = int(frames[-1]) / result["fps"]
    if has_audio:
        pcm = subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-v",
                "error",
                "-i",
                str(path),
                "-map",
                "0:a:0",
                "-f",
                "s16le",
                "-ac",
                "1",
                "-ar",
                "48000",
                "-",
            ],
            capture_output=True,
        ).stdout
        result["duration_audio"] = len(pcm) / 2 / 48000
    return result


class Subtitles:
    """Transcript words laid out in lines that fit `width`; draws the line being spoken, current word lit."""

    def __init__(self, words: Sequence[Word], width: int, font_size: int = 22) -> None:
        self.font = ImageFont.load_default(size=font_size)
        self.words = [(str(w), float(s), float(e)) for w, s, e in words]
        self.width = width
        self.space = self.font.getlength(" ")
        self.lines: list[list[int]] = []
        line: list[int] = []
        used = 0.0
        for index, (word, _, _) in enumerate(self.words):
            length = self.font.getlength(word)
            if line and used + self.space + length > width - 24:
                self.lines.append(line)
                line, used = [], 0.0
            used += length + (self.space if line else 0.0)
            line.append(index)
        if line:
            self.lines.append(line)
        self._starts = np.array([s for _, s, _ in self.words]) if self.words else np.zeros(0)

    def draw(self, draw: ImageDraw.ImageDraw, top: int, time_s: float) -> None:
        """Draw the current line centred at `top`, the word being spoken highlighted."""
        if not self.lines:
            return
        current = int(np.searchsorted(self._starts, time_s, side="right")) - 1
        anchor = max(current, 0)
        line = next(line for line in self.lines if line[-1] >= anchor)
        lengths = [self.font.getlength(self.words[i][0]) for i in line]
        x = (self.width - (sum(lengths) + self.space * (len(line) - 1))) / 2
        for index, length in zip(line, lengths, strict=True):
            word, start, end = self.words[index]
            if start <= time_s < end:
                draw.rounded_rectangle(
                    [x - 4, top + 4, x + length + 4, top + _SUBTITLE_HEIGHT - 12], radius=6, fill=(255, 214, 64)
                )
                color = (0, 0, 0)
            else:
                color = (40, 40, 40) if index <= current else (150, 150, 150)
            draw.text((x, top + 10), word, fill=color, font=self.font)
            x += length + self.space


def compose_frame(
    panels: Sequence[tuple[str, np.ndarray]],
    subtitles: Subtitles | None = None,
    time_s: float = 0.0,
    font: ImageFont.FreeTypeFont | None = None,
) -> np.ndarray:
    """Panels (title, (H, W_i, 3)) side by side with a title band above and a subtitle band below."""
    height = max(frame.shape[0] for _, frame in panels)
    width = sum(frame.shape[1] for _, frame in panels)
    bottom = _SUBTITLE_HEIGHT if subtitles is not None else 0
    canvas = np.full((_TITLE_HEIGHT + height + bottom, width, 3), 255, dtype=np.uint8)
    x = 0
    for _, frame in panels:
        canvas[_TITLE_HEIGHT : _TITLE_HEIGHT + frame.shape[0], x : x + frame.shape[1]] = frame
        x += frame.shape[1]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = font or ImageFont.load_default(size=20)
    x = 0
    for title, frame in panels:
        draw.text((x + frame.shape[1] / 2, _TITLE_HEIGHT / 2), title, fill=(20, 20, 20), font=font, anchor="mm")
        x += frame.shape[1]
        if x < width:
            draw.line([(x, 0), (x, canvas.shape[0])], fill=(210, 210, 210), width=1)
    if subtitles is not None:
        subtitles.draw(draw, _TITLE_HEIGHT + height, time_s)
    return np.asarray(image)


def compose_panels(
    panels: Sequence[tuple[str, np.ndarray]], words: Sequence[Word] | None = None, fps: float = 30.0
) -> np.ndarray:
    """Panels [(title, (T, H, W_i, 3))] -> composed frames (min T, H', sum W_i, 3) with titles and subtitles."""
    length = min(len(frames) for _, frames in panels)
    width = sum(frames.shape[2] for _, frames in panels)
    subtitles = Subtitles(words, width) if words else None
    font = ImageFont.load_default(size=20)
    return np.stack(
        [
            compose_frame([(title, frames[t]) for title, frames in panels], subtitles, t / fps, font)
            for t in range(length)
        ]
    )


STYLES = ("mannequin", "skeleton")  # skinned wooden mannequin (rasterised) | stick figure (debugging)


def _panel_frames(
    panels: dict[str, dict], size: int, model_path: str | Path | None, style: str = "mannequin"
) -> tuple[int, Iterator]:
    """Per-panel frame generators with one shared camera: the SMPL-X mesh with a model, else `style`."""
    if model_path is None and style not in STYLES:
        raise ValueError(f"unknown render style {style!r}; expected one of {sorted(STYLES)}")
    length = min(len(np.asarray(p["poses"])) for p in panels.values())
    poses = {name: np.asarray(p["poses"], dtype=np.float64)[:length] for name, p in panels.items()}
    trans = {name: None if p.get("trans") is None else np.asarray(p["trans"])[:length] for name, p in panels.items()}
    expr = {
        name: None if p.get("expressions") is None else np.asarray(p["expressions"])[:length]
        for name, p in panels.items()
    }
    if model_path is None and style == "skeleton":
        renderer = SkeletonRenderer(size, size)
        joints = {name: forward_kinematics(poses[name], trans[name]) for name in panels}
        framing = renderer.framing(list(joints.values()))

        def frames() -> Iterator[list[np.ndarray]]:
            for t in range(length):
                yield [
                    renderer.render_frame(
                        joints[n][t], framing, poses[n][t, 66:69], None if expr[n] is None else expr[n][t]
                    )
                    for n in panels
                ]

        return length, frames()
    from omniges.render.figure import MannequinFigure, SmplxFigure, z_center

    figure = MannequinFigure(size, size) if model_path is None else SmplxFigure(model_path, size, size)
    clips = {n: figure.prepare(poses[n], trans[n], expr[n], panels[n].get("betas")) for n in panels}
    framing = figure.framing(list(clips.values()))
    depth = z_center(list(clips.values()))

    def drawn() -> Iterator[list[np.ndarray]]:
        for t in range(length):
            yield [figure.render_frame(clips[n], t, framing, depth) for n in panels]

    return length, drawn()


def render_comparison(
    path: str | Path,
    panels: dict[str, dict],
    audio: np.ndarray | None = None,
    sr: int = 16000,
    words: Sequence[Word] | None = None,
    fps: float = 30.0,
    *,
    size: int = 512,
    model_path: str | Path | None = None,
    style: str = "mannequin",
    progress: bool = True,
) -> Path:
    """Render {title: dict(poses, trans, expressions[, betas])} side by side with audio and subtitles to mp4."""
    if not panels:
        raise ValueError("render_comparison needs at least one panel")
    length, panel_frames = _panel_frames(panels, size, model_path, style)
    titles = list(panels)
    subtitles = Subtitles(words, size * len(titles)) if words else None
    font = ImageFont.load_default(size=20)

    def composed() -> Iterator[np.ndarray]:
        for t, frames in enumerate(
            tqdm(panel_frames, total=length, desc=f"render {Path(path).name}", disable=not progress, leave=False)
        ):
            yield compose_frame(list(zip(titles, frames, strict=True)), subtitles, t / fps, font)

    return write_video(path, composed(), fps, audio, sr)
