"""Stage `render_<experiment>`: per test clip, one mp4 per task the checkpoint does.

Gesture tasks (A2G, T2G): ground truth | generated | random-clip baseline, with the clip's speech and its
transcript as subtitles. G2T: the ground-truth motion with the generated words as subtitles (spread over
the clip; G2T words carry no times). G2A: the ground-truth motion with the generated speech as the track.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from omniges.constants import FPS
from omniges.data.store import LmdbReader
from omniges.render.video import render_comparison


def spread_words(words: list[str], seconds: float) -> list[tuple[str, float, float]]:
    """Untimed words laid evenly over `seconds` (for showing G2T output as subtitles)."""
    if not words:
        return []
    step = seconds / len(words)
    return [(w, i * step, (i + 1) * step) for i, w in enumerate(words)]


def render_experiment(
    model, *, cache_dir: str | Path, out_dir: str | Path, clips: int = 2, seconds: float = 12.0, size: int = 320,
    smplx_model: str = "", style: str = "mannequin", progress: bool = True,
) -> list[Path]:
    """Render `clips` test clips (first `seconds` of each); returns the written videos."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = LmdbReader(Path(cache_dir) / "clips.lmdb")
    keys = sorted(k for k, v in store.meta["index"].items() if v["split"] == "test")[:clips]
    if not keys:
        raise ValueError(f"{cache_dir}: no test clips to render")
    frames = int(seconds * FPS)
    videos: list[Path] = []
    index: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        record = store[key]
        other = store[keys[(i + 1) % len(keys)]] if len(keys) > 1 else record
        n = min(frames, record["n_frames"])
        gt = {"poses": record["poses"][:n], "trans": record["trans"][:n], "expressions": record["expressions"][:n]}
        audio = record["audio"][: round(n * record["sr"] / FPS)].astype(np.float32) / 32767.0
        words = [(w, s, e) for w, s, e in record["words"] if s < n / FPS]
        reps = -(-n // other["n_frames"])
        baseline = {k: np.concatenate([other[k]] * reps)[:n] for k in ("poses", "trans", "expressions")}
        common = {"size": size, "model_path": smplx_model or None, "style": style, "progress": progress}
        for task in sorted(model.tasks):
            path = out_dir / f"{key}_{task}.mp4"
            if task in ("a2g", "t2g"):
                generated = model.a2g(audio) if task == "a2g" else model.t2g(words, seconds=n / FPS)
                panels = {"ground truth": gt, f"Omniges {task.upper()}": generated, "random clip": baseline}
                render_comparison(path, panels, audio=audio, sr=record["sr"], words=words, fps=FPS, **common)
                note = "speech + transcript; panels: ground truth | generated | random clip"
            elif task == "g2t":
                text = model.g2t(gt)
                render_comparison(path, {"motion (input)": gt}, audio=audio, sr=record["sr"],
                                  words=spread_words(text, n / FPS), fps=FPS, **common)
                note = "subtitles: generated words: " + " ".join(text)
            else:
                voice = model.g2a(gt)
                render_comparison(path, {"motion (input)": gt}, audio=voice, sr=record["sr"], words=None, fps=FPS,
                                  **common)
                note = "audio track: generated speech (Griffin-Lim from predicted MFCC)"
            videos.append(path)
            index.append({"video": path.name, "clip": key, "task": task, "note": note, "device": str(model.device)})
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return videos
