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


def write_tiny_checkpoint(root: Path, *, experiment: str = "multitask", tasks: tuple[str, ...] = ("a2g",),
                          speakers: tuple[int, ...] = (), **payload_extra) -> Path:
    """A seeded random tiny generator + part RVQVAEs + stats + vocabulary, laid out as the pipeline writes them.

    Omniges.load(path, cache_dir=root / 'data/cache', rvqvae_dir=root / 'results/rvqvae') loads it; the WavLM is
    the tiny random init and text features are the packaged MiniLM (384-d), as in the demo pipeline.
    """
    import json
    import random

    import torch

    from omniges.data.body import PART_NAMES, part_dim
    from omniges.features.text import Vocabulary
    from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel
    from omniges.tokenizer.rvqvae import RVQVAE
    from omniges.training.trainer import save_checkpoint

    torch.manual_seed(0)
    random.seed(0)
    rvqvae_dir, cache = root / "results/rvqvae", root / "data/cache"
    cache.mkdir(parents=True, exist_ok=True)
    stats = {}
    for part in PART_NAMES:
        width = part_dim(part)
        model = RVQVAE(input_width=width, nb_code=16, code_dim=8, width=16, depth=1, num_quantizers=2)
        model.save_checkpoint(rvqvae_dir / f"{part}.pth")
        (rvqvae_dir / f"{part}.json").write_text(json.dumps({"part": part, "model": model.config, "metrics": {}}))
        stats[f"{part}_mean"], stats[f"{part}_std"] = np.zeros(width, np.float32), np.ones(width, np.float32)
    np.savez(cache / "stats.npz", **stats)
    vocab = Vocabulary([*Vocabulary.SPECIALS, "hello", "world"])
    vocab.save(cache / "vocab.json")
    config = OmnigesConfig.demo(
        text_feature_dim=384, text_dim=32, audio_dim=32, gesture_dim=32, wavlm_dim=768, mfcc_dim=16, latent_dim=8,
        num_codes=16, num_code_layers=1, vocab_size=len(vocab), depth=1, heads=2, dim_head=16, time_embed_dim=16,
        dim_cond=32, audio_fusion_layers=1, audio_fusion_heads=2, num_speakers=len(speakers))
    net = OmnigesTransformerModel(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # MMDiT zero-inits its modulation: make every path count
    audio_stats = {"wavlm_mean": np.zeros(768), "wavlm_std": np.ones(768), "mfcc_mean": np.zeros(16),
                   "mfcc_std": np.ones(16)}
    payload = {
        "experiment": experiment, "config": config.to_dict(), "state_dict": net.state_dict(), "tasks": list(tasks),
        "latent_scale": dict.fromkeys(PART_NAMES, 1.0), "audio_stats": audio_stats, "flow": {}, "window": 32,
        "min_window": 32, "face_jaw": True,
        "features": {"wavlm": "random-init:tiny:seed=0", "wavlm_random_init": True, "text": "minilm", "n_mfcc": 16},
        "features_params": {"wavlm": {"layer": "mean"}, "text": {"path": ""}},
        **({"speakers": list(speakers)} if speakers else {}), **payload_extra,
    }
    path = root / "results/models" / experiment / "model.pt"
    save_checkpoint(path, payload)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random A2G checkpoint (results/models/multitask/model.pt) in a folder laid out like the repository."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_model"))
