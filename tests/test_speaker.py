"""Speaker conditioning: the embedding changes the output, a dropped speaker is the unknown speaker, old checkpoints
load, datasets carry speaker indices, and `--speaker` picks a listed speaker or names the known ones."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import lmdb
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import write_tiny_checkpoint
from test_flow import RectifiedFlow, tiny_batch, tiny_model
from test_store import fake_cache

from omniges.cli import main
from omniges.config import update_params_file
from omniges.data.dataset import OmnigesDataset, collate, corpus_speakers
from omniges.data.store import LmdbReader
from omniges.inference import Omniges
from omniges.models.flow import condition_inputs
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel
from omniges.training.generator import flow_batch, model_speakers

ROOT = Path(__file__).parents[1]


def a2g_velocity(model: OmnigesTransformerModel, batch: dict, speaker: torch.Tensor | None) -> torch.Tensor:
    """One A2G network evaluation at t = 0.5 for the given speakers."""
    out = model(mfcc=batch["mfcc"], wavlm=batch["wavlm"], audio_mask=batch["audio_mask"], gesture=batch["gesture"],
                gesture_mask=batch["gesture_mask"], t_text=0.0, t_audio=1.0, t_gesture=0.5, speaker=speaker,
                generate={"gesture"}, with_code_logits=False)
    return out["gesture_velocity"]


def test_the_embedding_changes_the_output_and_unknown_is_the_extra_row():
    model = tiny_model(num_speakers=3).eval()
    batch = tiny_batch(model.config, b=2)
    with torch.no_grad():
        first, second = (a2g_velocity(model, batch, torch.tensor([s, s])) for s in (0, 1))
        unknown = a2g_velocity(model, batch, None)
        minus_one = a2g_velocity(model, batch, torch.tensor([-1, -1]))
        last_row = a2g_velocity(model, batch, torch.tensor([3, 3]))
        mixed = a2g_velocity(model, batch, torch.tensor([0, -1]))
    assert (first - second).abs().mean() > 1e-3 and (first - unknown).abs().mean() > 1e-3
    torch.testing.assert_close(unknown, minus_one, rtol=0, atol=0)
    torch.testing.assert_close(unknown, last_row, rtol=0, atol=0)
    torch.testing.assert_close(mixed[0], first[0], rtol=0, atol=0)  # per sample: row 0 speaker 0, row 1 unknown
    torch.testing.assert_close(mixed[1], unknown[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="out of range"):
        a2g_velocity(model, batch, torch.tensor([4, 0]))


def test_a_model_without_speakers_loads_old_checkpoints_and_refuses_a_speaker():
    old = tiny_model()
    config = old.config.to_dict()
    del config["num_speakers"]  # a checkpoint written before speaker conditioning existed
    restored = OmnigesTransformerModel(OmnigesConfig.from_dict(config))
    restored.load_state_dict(old.state_dict())  # strict: no speaker weights expected
    assert restored.speaker_embed is None
    batch = tiny_batch(old.config, b=2)
    with torch.no_grad():
        torch.testing.assert_close(a2g_velocity(restored.eval(), batch, None), a2g_velocity(old.eval(), batch, None))
        a2g_velocity(restored, batch, torch.tensor([-1, -1]))  # unknown speakers are fine
    with pytest.raises(ValueError, match="without speaker conditioning"):
        a2g_velocity(restored, batch, torch.tensor([0, -1]))


def test_dropped_speakers_train_exactly_as_the_unknown_speaker():
    model = tiny_model(num_speakers=3)
    batch = {**tiny_batch(model.config, b=4), "speaker": torch.tensor([0, 1, 2, 0])}
    unknown = {**batch, "speaker": torch.full((4,), -1)}

    def loss(flow: RectifiedFlow, data: dict, cfg_dropout: float | None = None) -> float:
        generator = torch.Generator().manual_seed(5)
        return flow.training_step(model, data, "a2g", generator=generator, cfg_dropout=cfg_dropout)["loss"].item()

    keep, drop = RectifiedFlow(speaker_dropout=0.0), RectifiedFlow(speaker_dropout=1.0)
    assert loss(drop, batch) == loss(keep, unknown)  # independent speaker dropout
    assert loss(keep, batch, cfg_dropout=1.0) == loss(keep, unknown, cfg_dropout=1.0)  # dropped with every condition
    assert loss(keep, batch) != loss(keep, unknown)
    inputs, _ = condition_inputs("a2g", batch, {"speaker": torch.tensor([True, False, True, False])})
    assert inputs["speaker"].tolist() == [-1, 1, -1, 0]


def test_sampling_without_a_speaker_is_the_unknown_speaker():
    model = tiny_model(num_speakers=2).eval()
    batch = tiny_batch(model.config, b=2)
    cond = {k: batch[k] for k in ("mfcc", "wavlm", "audio_mask")}
    flow = RectifiedFlow()

    def sample(extra: dict, guidance: float = 1.0) -> torch.Tensor:
        return flow.sample(model, "a2g", {**cond, **extra}, steps=2, guidance=guidance,
                           generator=torch.Generator().manual_seed(0))

    none = sample({})
    torch.testing.assert_close(sample({"speaker": torch.tensor([-1, -1])}), none, rtol=0, atol=0)
    assert (sample({"speaker": torch.tensor([0, 0])}) - none).abs().mean() > 1e-3
    long = flow.generate_long(model, "a2g", {**cond, "speaker": torch.tensor([1, 1])}, window=4, overlap=1, steps=1,
                              generator=torch.Generator().manual_seed(0))  # windows keep the per-sample speaker
    assert long.shape == (2, 6, model.config.gesture_latent_dim) and torch.isfinite(long).all()


def set_speakers(root, speakers: dict[str, int]) -> None:
    """Record a speaker per clip in a fake clips.lmdb's index, as preprocess does."""
    reader = LmdbReader(root / "clips.lmdb")
    meta = reader.meta
    reader.close()
    for key, speaker in speakers.items():
        meta["index"][key]["speaker"] = speaker
    env = lmdb.open(str(root / "clips.lmdb"), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"__meta__", pickle.dumps(meta))
    env.close()


def test_dataset_items_carry_the_speaker_index(tmp_path):
    fake_cache(tmp_path, {"a": 128, "b": 128, "c": 64})
    set_speakers(tmp_path, {"a": 7, "b": 3, "c": 9})
    speakers = corpus_speakers(LmdbReader(tmp_path / "clips.lmdb"), ["train"])
    assert speakers == [3, 7, 9]
    dataset = OmnigesDataset(tmp_path, split="train", length=64, stride=64, speakers=[3, 7])
    by_clip = {dataset.windows[i].clip_id: int(dataset[i]["speaker"]) for i in range(len(dataset))}
    assert by_clip == {"a": 1, "b": 0, "c": -1}  # c's speaker is not in the model's list: unknown
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert flow_batch(batch)["speaker"].tolist() == [dataset[i]["speaker"] for i in range(len(dataset))]
    assert "speaker" not in OmnigesDataset(tmp_path, split="train", length=64, stride=64)[0]
    assert model_speakers(speakers, {}) == speakers and model_speakers(speakers, {"num_speakers": 0}) == []
    with pytest.raises(ValueError, match="num_speakers"):
        model_speakers(speakers, {"num_speakers": 2})


@pytest.fixture(scope="module")
def speaker_checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("speakers"), speakers=(2, 5))


def load(checkpoint) -> Omniges:
    root = checkpoint.parents[3]
    return Omniges.load(checkpoint, cache_dir=root / "data/cache", rvqvae_dir=root / "results/rvqvae", device="cpu")


def test_a2g_generates_per_speaker_and_names_the_known_ones(speaker_checkpoint, tiny_checkpoint):
    model = load(speaker_checkpoint)
    assert model.speakers == [2, 5]
    wave = np.random.default_rng(0).normal(scale=0.1, size=16000 * 5).astype(np.float32)  # 2 windows
    motions = {s: model.a2g(wave, steps=1, speaker=s)["poses"] for s in (2, 5, None)}
    assert motions[2].shape == (150, 165)
    assert np.abs(motions[2] - motions[5]).mean() > 1e-4 and np.abs(motions[2] - motions[None]).mean() > 1e-4
    model.settings.speaker = 5  # generation.speaker is the default
    np.testing.assert_array_equal(model.a2g(wave, steps=1)["poses"], motions[5])
    with pytest.raises(ValueError, match=r"unknown speaker 7; this checkpoint's speakers: 2, 5"):
        model.a2g(wave, speaker=7)
    with pytest.raises(ValueError, match="trained without speaker conditioning"):
        load(tiny_checkpoint).a2g(wave, speaker=2)


def test_generate_refuses_an_unknown_speaker_in_one_line(speaker_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sf.write("speech.wav", np.zeros(16000, np.float32), 16000)
    root = speaker_checkpoint.parents[3]
    (tmp_path / "data").symlink_to(root / "data")
    (tmp_path / "results").symlink_to(root / "results")
    result = CliRunner().invoke(main, ["generate", "--audio", "speech.wav", "--out", "x.mp4", "--speaker", "4",
                                       "--checkpoint", str(speaker_checkpoint), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: --speaker: unknown speaker 4; this checkpoint's speakers: 2, 5"
    shutil.copy(ROOT / "params.yaml", "params.yaml")
    update_params_file("params.yaml", {"generation.speaker": "3", "compute.device": "cpu"})
    result = CliRunner().invoke(main, ["generate", "--audio", "speech.wav", "--out", "x.mp4",
                                       "--checkpoint", str(speaker_checkpoint)])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: generation.speaker (params.yaml): unknown speaker 3; this checkpoint's "
                                     "speakers: 2, 5")


def test_serve_offers_the_checkpoint_speakers(speaker_checkpoint, tiny_checkpoint, tmp_path):
    import gradio as gr

    from omniges.serve import build_app

    def dropdowns(checkpoint) -> list:
        app = build_app(load(checkpoint), tmp_path)
        return [block for block in app.blocks.values() if isinstance(block, gr.Dropdown)]

    (speaker,) = dropdowns(speaker_checkpoint)
    assert [choice[0] for choice in speaker.choices] == ["unknown", "2", "5"] and speaker.value == "unknown"
    assert dropdowns(tiny_checkpoint) == []



def load_benchmark():
    """benchmarks/speaker_effect.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    path = ROOT / "benchmarks/speaker_effect.py"
    spec = importlib.util.spec_from_file_location("speaker_effect", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speaker_effect_benchmark_scores_real_and_generated_motion(speaker_checkpoint, tmp_path):
    from omniges.data.store import LmdbWriter

    bench = load_benchmark()
    rng = np.random.default_rng(0)
    writer, index = LmdbWriter(tmp_path / "clips.lmdb"), {}
    for speaker, shoulder in ((2, 0.6), (5, -0.6)):  # two speakers: left or right upper arm raised
        for k, (split, seconds) in enumerate((("train", 8), ("train", 8), ("test", 4))):
            frames = 30 * seconds
            poses = rng.normal(scale=0.05, size=(frames, 165)).astype(np.float32)
            poses[:, 16 * 3 + 2] += shoulder
            key = f"{speaker}_c{k}"
            writer.put(key, {"poses": poses, "speaker": speaker, "split": split, "n_frames": frames, "words": [],
                             "audio": (rng.normal(scale=0.1, size=16000 * seconds) * 32767).astype(np.int16)})
            index[key] = {"split": split, "speaker": speaker, "n_frames": frames}
    writer.seal({"index": index})
    result = bench.measure(load(speaker_checkpoint), LmdbReader(tmp_path / "clips.lmdb"), splits=("test",), steps=1)
    assert result["speakers"] == [2, 5] and result["chance"] == 0.5 and result["train_clips"] == 4
    assert result["real"] == {"accuracy": 1.0, "ci95": list(bench.wilson(2, 2)), "windows": 2}
    assert [result[c]["windows"] for c in ("with_true_id", "with_any_id", "without_id")] == [2, 4, 2]
    for case in ("with_true_id", "with_any_id", "without_id"):
        low, high = result[case]["ci95"]
        assert 0 <= low <= result[case]["accuracy"] <= high <= 1
    assert bench.window_features(np.zeros((239, 165))).shape == (1, 155)
    low, high = bench.wilson(50, 100)
    assert abs(low - 0.404) < 1e-3 and abs(high - 0.596) < 1e-3
