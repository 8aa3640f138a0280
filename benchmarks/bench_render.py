"""Rendering speed on the real BEAT2 clip: skinned mannequin (GL) and skeleton frames/s at 512x512, encode, comparison.

Usage: python benchmarks/bench_render.py [results/benchmarks/render.json] [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import torch

from omniges.data.kinematics import forward_kinematics
from omniges.data.store import write_json_atomic
from omniges.render.figure import MannequinFigure, z_center
from omniges.render.skeleton import SkeletonRenderer
from omniges.render.video import render_comparison, write_video

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "fixtures" / "beat2_real" / "smplxflame_30" / "2_scott_0_1_1.npz"
WAV = ROOT / "tests" / "fixtures" / "beat2_real" / "wave16k" / "2_scott_0_1_1.wav"


def _timed(function) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmarks and write one JSON record."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", nargs="?", default="results/benchmarks/render.json")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = np.load(CLIP)
    frames = min(args.frames, len(data["poses"]))
    poses, trans, expressions = data["poses"][:frames], data["trans"][:frames], data["expressions"][:frames]
    audio, sr = soundfile.read(WAV, dtype="float32")

    fk_seconds = _timed(lambda: forward_kinematics(data["poses"], data["trans"]))
    joints = forward_kinematics(poses, trans)
    renderer = SkeletonRenderer(512, 512)
    framing = renderer.framing(joints)

    def draw(t: int) -> np.ndarray:
        return renderer.render_frame(joints[t], framing, poses[t, 66:69], expressions[t])

    renderer.render_sequence(joints[:5], poses[:5, 66:69], expressions[:5], framing=framing)  # warm-up
    single = _timed(lambda: [draw(t) for t in range(frames)])
    with ThreadPoolExecutor(args.threads) as pool:
        pooled = _timed(lambda: list(pool.map(draw, range(frames))))
    figure = MannequinFigure(512, 512)  # llvmpipe rasterises on LP_NUM_THREADS threads (default: every core)
    prepare = _timed(lambda: figure.prepare(poses, trans))
    clip = figure.prepare(poses, trans)
    body_framing, depth = figure.framing([clip]), z_center([clip])
    figure.render_frame(clip, 0, body_framing, depth)  # warm-up: shader compile, buffers
    shaded = _timed(lambda: [figure.render_frame(clip, t, body_framing, depth) for t in range(frames)])
    images = renderer.render_sequence(joints, poses[:, 66:69], expressions, framing=framing)

    with tempfile.TemporaryDirectory() as tmp:
        encode = _timed(lambda: write_video(Path(tmp) / "encode.mp4", images, 30))
        clip = {"poses": poses, "trans": trans, "expressions": expressions}
        other = {key: value[::-1].copy() for key, value in clip.items()}
        compare = _timed(
            lambda: render_comparison(
                Path(tmp) / "compare.mp4",
                {"ground truth": clip, "other": other},
                audio[: int(frames / 30 * sr)],
                sr,
                size=512,
                progress=False,
            )
        )

    record = {
        "benchmark": "render",
        "frames": frames,
        "size": [512, 512],
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "platform": platform.platform(),
        "fk_frames_per_s": len(data["poses"]) / fk_seconds,
        "skeleton_frames_per_s": frames / single,
        "skeleton_frames_per_s_thread_pool": frames / pooled,
        "mannequin_frames_per_s": frames / shaded,
        "mannequin_prepare_frames_per_s": frames / prepare,
        "mannequin_renderer": f"mannequin-x wooden mesh decimated to {len(figure.body.faces)} triangles, OpenGL "
                              "via moderngl on EGL",
        "gl_renderer": figure.gl.ctx.info["GL_RENDERER"],
        "llvmpipe_threads": os.environ.get("LP_NUM_THREADS", f"{os.cpu_count()} (default)"),
        "encode_h264_frames_per_s": frames / encode,
        "comparison_2x512_with_audio_frames_per_s": frames / compare,
        "comparison_style": "mannequin",
    }
    output = Path(args.output)
    write_json_atomic(output, record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
