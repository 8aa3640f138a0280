"""Importing GestureLSM tokenizers: inputs normalised with GestureLSM's statistics, its 100-d face, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omniges.config import ParamsError, load_params
from omniges.data import preprocess as pre
from omniges.data.body import NUM_JOINTS, PART_JOINTS, PART_NAMES, split_parts
from omniges.data.normalization import gesturelsm_part_stats
from omniges.data.store import LmdbReader
from omniges.tokenizer.processor import GestureProcessor
from omniges.tokenizer.rvqvae import RVQVAE
from omniges.tokenizer.stage import build_tokenizer, cache_latents

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
REAL_ROOT = FIXTURES / "beat2_real"
MEAN_STD = REAL_ROOT / "mean_std"
STATS = {"pose_mean": str(MEAN_STD / "beatx_2_330_mean.npy"), "pose_std": str(MEAN_STD / "beatx_2_330_std.npy"),
         "trans_mean": str(MEAN_STD / "beatx_2_trans_mean.npy"), "trans_std": str(MEAN_STD / "beatx_2_trans_std.npy")}
SMALL = {"width": 64, "code_dim": 32, "depth": 3, "dilation_growth_rate": 3, "down_t": 2, "num_quantizers": 6,
         "nb_code": 1024}
TRAIN = {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "seed": 0}


def test_part_stats_are_the_part_slices_of_the_330_vector_and_the_translation():
    pose_mean, trans_std = np.load(STATS["pose_mean"]), np.load(STATS["trans_std"])
    mean, std = gesturelsm_part_stats("upper", STATS, face_jaw=True)
    # joint j's rot6d is channels 6j..6j+5 (rvq_beatx_train.py's masks)
    np.testing.assert_array_equal(mean[:6], pose_mean[6 * 3 : 6 * 3 + 6])
    np.testing.assert_array_equal(mean[-6:], pose_mean[6 * 21 : 6 * 22])
    assert mean.shape == std.shape == (78,)
    mean, std = gesturelsm_part_stats("lower_trans", STATS, face_jaw=True)
    assert mean.shape == (57,)
    np.testing.assert_allclose(std[-3:], trans_std, rtol=1e-6)  # float32, as every part array
    np.testing.assert_array_equal(mean[:54], pose_mean.reshape(NUM_JOINTS, 6)[list(PART_JOINTS["lower_trans"])].ravel())
    mean, std = gesturelsm_part_stats("face", STATS, face_jaw=False)
    assert mean.shape == (100,) and not mean.any() and (std == 1).all()


def test_bad_statistics_are_one_line_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="face_jaw=false"):
        gesturelsm_part_stats("face", STATS, face_jaw=True)
    with pytest.raises(ValueError, match="trans_mean, trans_std"):
        gesturelsm_part_stats("lower_trans", {**STATS, "trans_mean": "", "trans_std": ""}, face_jaw=True)
    short = tmp_path / "short.npy"
    np.save(short, np.ones(165, np.float32))
    with pytest.raises(ValueError, match=r"short\.npy: pose_std must have shape \(330,\)"):
        gesturelsm_part_stats("hands", {**STATS, "pose_std": str(short)}, face_jaw=True)
    with pytest.raises(FileNotFoundError, match="nowhere.npy"):
        gesturelsm_part_stats("hands", {**STATS, "pose_mean": str(tmp_path / "nowhere.npy")}, face_jaw=True)
    zero = tmp_path / "zero.npy"
    np.save(zero, np.zeros(330, np.float32))
    with pytest.raises(ValueError, match="non-positive"):
        gesturelsm_part_stats("upper", {**STATS, "pose_std": str(zero)}, face_jaw=True)


def test_params_refuse_unusable_imports_before_anything_runs():
    with pytest.raises(ParamsError, match=r"normalization\.\{pose_mean,pose_std\}"):
        load_params(ROOT / "params.yaml", {"rvqvae.import.upper": "net_300000_upper.pth"})
    with pytest.raises(ParamsError, match="set data.face_jaw=false"):
        load_params(ROOT / "params.yaml", {"rvqvae.import.face": "net_300000_face.pth"})
    corpus = {"rvqvae.import.upper": "u.pth", "rvqvae.import.normalization.source": "corpus"}
    params = load_params(ROOT / "params.yaml", corpus)
    assert params.rvqvae.import_.normalization.source == "corpus"


@pytest.fixture()
def cache(small_corpus, tmp_path):
    out = tmp_path / "cache"
    pre.preprocess_corpus(small_corpus, out, speakers=[], splits=["train", "val", "test"], workers=1, progress=False)
    return out


def test_imported_gesturelsm_parts_see_gesturelsm_normalised_inputs_end_to_end(cache, tmp_path):
    out = tmp_path / "rvqvae"
    for part in PART_NAMES:
        source = {"upper": "small_upper.pth", "lower_trans": "small_lower_trans.pth"}.get(part, "")
        build_tokenizer(cache, out, part, model=SMALL, train=TRAIN, window=32, stride=16, face_jaw=True,
                        import_path=str(FIXTURES / "gesturelsm_rvqvae" / source) if source else "",
                        normalization=STATS, progress=False)
    recorded = {p: json.loads((out / f"{p}.json").read_text())["normalization"] for p in PART_NAMES}
    assert [recorded[p]["source"] for p in PART_NAMES] == ["gesturelsm", "corpus", "gesturelsm", "corpus"]
    cache_latents(cache, out, face_jaw=True, progress=False)

    # the cached latents are GestureLSM's map2latent of GestureLSM-normalised inputs, computed here independently
    key = "2_scott_0_2_2"
    parts = LmdbReader(cache / "clips.lmdb")[key]["parts"]
    reference = RVQVAE(input_width=57, **SMALL).eval()
    reference.load_checkpoint(FIXTURES / "gesturelsm_rvqvae" / "small_lower_trans.pth")
    mean, std = gesturelsm_part_stats("lower_trans", STATS, face_jaw=True)
    with torch.no_grad():
        expected = reference.map2latent(torch.from_numpy((parts["lower_trans"] - mean) / std)[None])[0].numpy()
        corpus = np.load(cache / "stats.npz")
        other = reference.map2latent(torch.from_numpy(
            (parts["lower_trans"] - corpus["lower_trans_mean"]) / corpus["lower_trans_std"])[None])[0].numpy()
    cached = LmdbReader(cache / "latents.lmdb")[key]["latents"]["lower_trans"]
    np.testing.assert_allclose(cached, expected, atol=1e-5)
    assert np.abs(cached - other).max() > 1e-2  # the corpus statistics would have given other latents

    # the processor loaded for training and inference uses the same statistics, and round-trips to SMPL-X
    processor = GestureProcessor.load(out, cache / "stats.npz", latent_scale=dict.fromkeys(PART_NAMES, 1.0))
    np.testing.assert_allclose(processor.part_stats()["upper"][1], gesturelsm_part_stats("upper", STATS,
                                                                                         face_jaw=True)[1])
    with np.load(REAL_ROOT / "smplxflame_30" / "2_scott_0_1_1.npz") as data:
        poses, trans, expressions = data["poses"][:64], data["trans"][:64], data["expressions"][:64]
    tensors = processor.from_smplx(poses, trans, expressions)
    raw = split_parts(poses, trans, expressions)
    np.testing.assert_allclose(tensors["upper"][0].numpy(), (raw["upper"] - processor.part_stats()["upper"][0])
                               / processor.part_stats()["upper"][1], rtol=1e-5, atol=1e-4)


def test_gesturelsm_face_model_needs_its_100d_layout(small_corpus, cache, tmp_path):
    face = RVQVAE(input_width=100, **SMALL)
    face.save_checkpoint(tmp_path / "face.pth")
    common = dict(model=SMALL, train=TRAIN, window=32, stride=16, import_path=str(tmp_path / "face.pth"),
                  normalization=STATS, progress=False)
    with pytest.raises(ValueError, match="face_jaw=false"):
        build_tokenizer(cache, tmp_path / "r", "face", face_jaw=True, **common)
    no_jaw = tmp_path / "cache100"
    pre.preprocess_corpus(small_corpus, no_jaw, speakers=[], splits=["train", "val"], face_jaw=False, workers=1,
                          progress=False)
    build_tokenizer(no_jaw, tmp_path / "r", "face", face_jaw=False, **common)
    recorded = json.loads((tmp_path / "r" / "face.json").read_text())
    assert recorded["model"]["input_width"] == 100 and recorded["normalization"]["source"] == "gesturelsm"
    assert recorded["normalization"]["std"] == [1.0] * 100  # GestureLSM's face model reads raw expressions
