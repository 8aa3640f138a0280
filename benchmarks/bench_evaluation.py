"""Evaluation speed on CPU (2 threads) and the real-clip true-vs-shifted check of BC and the sync measure.

FGD evaluator throughput (frames/s through `latents`, whole-clip encoding as EMAGE does), FGD computation time,
BC and sync seconds per minute of motion, and BC / sync_z on the real BEAT2 clip with audio shifted by 0, 2, 4, 8 s.
Usage: python benchmarks/bench_evaluation.py [results/benchmarks/evaluation.json] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from omniges.constants import FPS
from omniges.data.kinematics import forward_kinematics
from omniges.data.store import write_json_atomic
from omniges.evaluation import beat_consistency, fgd, latents, load_evaluator, poses_to_rot6d, speech_motion_sync

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CLIP = FIXTURES / "beat2_real" / "smplxflame_30" / "2_scott_0_1_1.npz"
WAV = FIXTURES / "beat2_real" / "wave16k" / "2_scott_0_1_1.wav"
MEAN_VEL = FIXTURES / "beat2_real" / "mean_std" / "mean_vel_smplxflame_30.npy"
EVALUATOR = FIXTURES / "emage_evaluator" / "AESKConv_fixture.bin.xz"
SHIFTS_S = (0, 2, 4, 8)


def _best_time(function, repeats: int) -> float:
    """Fastest wall time of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Run the benchmarks and write one JSON record."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", nargs="?", default="results/benchmarks/evaluation.json")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)

    poses = np.load(CLIP)["poses"]
    minutes = len(poses) / FPS / 60
    audio, sr = librosa.load(WAV, sr=None)
    joints = forward_kinematics(poses)  # approximate rest skeleton, no translation (as EMAGE poses BC joints)
    mean_vel = np.load(MEAN_VEL)
    evaluator = load_evaluator(EVALUATOR)
    motion = poses_to_rot6d(poses)
    usable = len(motion) - len(motion) % 32

    encode_s = _best_time(lambda: latents(evaluator, motion), args.repeats)
    rng = np.random.default_rng(0)
    real, gen = rng.normal(size=(4000, 240)), rng.normal(0.1, 1.0, size=(4000, 240))
    fgd_s = _best_time(lambda: fgd(real, gen), args.repeats)
    bc_s = _best_time(lambda: beat_consistency(audio, sr, joints, FPS, mean_vel=mean_vel), args.repeats)
    motion_audio = audio[: round(len(poses) / FPS * sr)]
    sync_s = _best_time(lambda: speech_motion_sync(motion_audio, sr, poses, FPS), args.repeats)

    real_clip = {}
    for shift in SHIFTS_S:
        bc = beat_consistency(np.roll(audio, shift * sr), sr, joints, FPS, mean_vel=mean_vel)
        sync = speech_motion_sync(np.roll(motion_audio, shift * sr), sr, poses, FPS)
        real_clip[f"shift_{shift}s"] = {"bc": bc, "sync_z": sync["sync_z"], "sync_jaw_z": sync["jaw"]["z"],
                                        "sync_body_z": sync["body"]["z"], "sync_jaw_peak": sync["jaw"]["peak"],
                                        "sync_body_peak": sync["body"]["peak"]}

    record = {
        "device": f"cpu ({platform.processor() or platform.machine()}), torch threads 2",
        "fgd_encoder_frames_per_s": usable / encode_s,
        "fgd_encoder_clip_frames": usable,
        "fgd_4000x240_s": fgd_s,
        "bc_s_per_motion_minute": bc_s / minutes,
        "sync_s_per_motion_minute": sync_s / minutes,
        "real_clip_2_scott_0_1_1": real_clip,
    }
    output = Path(args.output)
    write_json_atomic(output, record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
