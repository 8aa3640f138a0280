"""Shared test fixtures: paths to the bundled real BEAT2 clip, a small BEAT2-layout corpus built from it."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMNIGES_TRACKING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
REAL_ROOT = FIXTURES / "beat2_real"
REAL_ID = "2_scott_0_1_1"


@pytest.fixture(autouse=True)
def single_thread():
    """Tests use tiny models: one torch thread is fastest and steadiest (two threads on a busy 2-core machine stall)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real_clip_paths() -> dict[str, Path]:
    return {
        "npz": REAL_ROOT / "smplxflame_30" / f"{REAL_ID}.npz",
        "wav": REAL_ROOT / "wave16k" / f"{REAL_ID}.wav",
        "mean_std": REAL_ROOT / "mean_std",
    }


def make_corpus(root: Path, clips: dict[str, tuple[str, int]]) -> Path:
    """BEAT2-layout corpus whose clips are slices of the real clip: {id: (split, start_frame)}; 8 s each."""
    for sub in ("smplxflame_30", "wave16k", "textgrid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    with np.load(REAL_ROOT / "smplxflame_30" / f"{REAL_ID}.npz") as data:
        real = {key: data[key] for key in data.files}
    wav = REAL_ROOT / "wave16k" / f"{REAL_ID}.wav"
    import soundfile as sf

    wave, sr = sf.read(wav, dtype="float32")
    with (root / "train_test_split.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "type"])
        for clip_id, (split, start) in clips.items():
            writer.writerow([clip_id, split])
            sl = slice(start, start + 240)
            np.savez(
                root / "smplxflame_30" / f"{clip_id}.npz", poses=real["poses"][sl], trans=real["trans"][sl],
                expressions=real["expressions"][sl], betas=real["betas"], model=real["model"],
                gender=real["gender"], mocap_frame_rate=real["mocap_frame_rate"],
            )
            a = start * sr // 30
            sf.write(root / "wave16k" / f"{clip_id}.wav", wave[a : a + 8 * sr + 800], sr, subtype="PCM_16")
    return root


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    clips = {"2_scott_0_1_1": ("train", 0), "2_scott_0_2_2": ("train", 300), "2_scott_0_3_3": ("val", 600),
             "4_lawrence_0_1_1": ("test", 900), "4_lawrence_0_2_2": ("additional", 1200)}
    return make_corpus(tmp_path / "beat", clips)


@pytest.fixture()
def copy_real(tmp_path: Path) -> Path:
    """A writable copy of the real clip fixture."""
    dst = tmp_path / "real"
    shutil.copytree(REAL_ROOT, dst)
    return dst
