"""LMDB caches: arrays as their own values, read by slice without decoding the clip (O(window) reads)."""

import pickle
import tracemalloc

import lmdb
import numpy as np
import pytest
import torch

from omniges.data.body import PART_NAMES
from omniges.data.dataset import OmnigesDataset, WindowSource, collate, window_starts
from omniges.data.store import CacheError, LmdbReader, LmdbWriter
from omniges.tokenizer.rvqvae import RVQVAE
from omniges.tokenizer.training import train_rvqvae


def record(frames: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"n_frames": frames, "fps": 30, "words": [("hi", 0.0, 0.5)], "flag": np.bool_(True),
            "parts": {"upper": rng.normal(size=(frames, 78)).astype(np.float32),
                      "codes": rng.integers(0, 255, (frames // 4, 6)).astype(np.int16)},
            "audio": rng.integers(-30000, 30000, frames * 533).astype(np.int16), "empty": np.zeros((0, 3))}


def test_records_round_trip_and_rows_equal_slices_of_the_whole(tmp_path):
    writer = LmdbWriter(tmp_path / "c.lmdb")
    writer.put("a", record(240))
    writer.put("b", record(99, seed=1))
    assert writer.keys() == {"a", "b"}  # array values are not records
    writer.seal({"stage": "test"})
    reader = LmdbReader(tmp_path / "c.lmdb")
    whole = reader["a"]
    assert whole["words"] == [("hi", 0.0, 0.5)] and whole["flag"] and whole["empty"].shape == (0, 3)
    expected = record(240)
    np.testing.assert_array_equal(whole["parts"]["upper"], expected["parts"]["upper"])
    for path, (start, stop) in {"parts/upper": (16, 80), "parts/codes": (4, 20), "audio": (1000, 5000)}.items():
        node = whole
        for name in path.split("/"):
            node = node[name]
        np.testing.assert_array_equal(reader.rows("a", path, start, stop), node[start:stop])
    assert reader.rows("b", "parts/upper", 90, 120).shape == (9, 78)  # clipped at the end, like a slice
    assert reader.rows("b", "parts/upper", 120, 130).shape == (0, 78)
    assert reader.field("a", "n_frames") == 240 and reader.field("a", "parts/upper").shape == (240, 78)


def test_a_window_read_allocates_the_window_not_the_clip(tmp_path):
    writer = LmdbWriter(tmp_path / "c.lmdb")
    long_clip = np.arange(200_000 * 64, dtype=np.float32).reshape(200_000, 64)  # 51 MB: a long clip
    writer.put("long", {"wavlm": long_clip})
    writer.seal({})
    reader = LmdbReader(tmp_path / "c.lmdb")
    reader.field("long", "wavlm")  # the skeleton is read (and kept) once per clip
    tracemalloc.start()
    window = reader.rows("long", "wavlm", 150_000, 150_128)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(window, long_clip[150_000:150_128])
    assert peak < 4 * window.nbytes < long_clip.nbytes / 100


def test_a_record_with_a_missing_array_is_an_error_not_a_partial_record(tmp_path):
    writer = LmdbWriter(tmp_path / "c.lmdb")
    writer.put("a", {"x": np.ones((4, 2))})
    writer.seal({})
    env = lmdb.open(str(tmp_path / "c.lmdb"), subdir=True)
    with env.begin(write=True) as txn:
        txn.delete(b"a\x1fx")
    env.close()
    with pytest.raises(CacheError, match="array 'x' is missing"):
        LmdbReader(tmp_path / "c.lmdb")["a"]
    with pytest.raises(ValueError, match="separator"):
        LmdbWriter(tmp_path / "d.lmdb").put("bad\x1fkey", {})


def test_caches_written_before_array_values_still_read(tmp_path):
    path = tmp_path / "old.lmdb"
    env = lmdb.open(str(path), subdir=True, map_size=1 << 24)
    values = np.arange(40).reshape(20, 2)
    with env.begin(write=True) as txn:
        txn.put(b"a", pickle.dumps({"v": values}))
        txn.put(b"__meta__", pickle.dumps({"keys": ["a"], "count": 1}))
    env.close()
    reader = LmdbReader(path)
    np.testing.assert_array_equal(reader["a"]["v"], values)
    np.testing.assert_array_equal(reader.rows("a", "v", 3, 7), values[3:7])


def fake_cache(root, clips: dict[str, int]):
    """clips/features/latents caches of random arrays with the stages' layouts; returns the full records."""
    rng = np.random.default_rng(0)
    full = {}
    writers = {name: LmdbWriter(root / f"{name}.lmdb") for name in ("clips", "features", "latents")}
    for key, frames in clips.items():
        tokens = frames // 4
        full[key] = {
            "clips": {"n_frames": frames, "parts": {p: rng.normal(size=(frames, 6)).astype(np.float32)
                                                    for p in PART_NAMES}},
            "features": {"wavlm": rng.normal(size=(frames, 8)).astype(np.float16),
                         "mfcc": rng.normal(size=(frames, 4)).astype(np.float16),
                         "text": rng.normal(size=(tokens, 5)).astype(np.float16),
                         "word_ids": rng.integers(0, 9, tokens).astype(np.int32), "has_text": key != "c"},
            "latents": {"latents": {p: rng.normal(size=(tokens, 3)).astype(np.float32) for p in PART_NAMES},
                        "codes": {p: rng.integers(0, 9, (tokens, 2)).astype(np.int16) for p in PART_NAMES}},
        }
        for name, writer in writers.items():
            writer.put(key, full[key][name])
    index = {key: {"split": "train", "n_frames": frames} for key, frames in clips.items()}
    stats = {f"{n}_{s}": np.full(d, v, np.float32) for n, d in (("wavlm", 8), ("mfcc", 4))
             for s, v in (("mean", 0.5), ("std", 2.0))}
    writers["clips"].seal({"index": index})
    writers["features"].seal({"layout": "text-per-token", "stats": stats})
    writers["latents"].seal({"latent_scale": dict.fromkeys(PART_NAMES, 2.0)})
    np.savez(root / "stats.npz", **{f"{p}_{s}": np.full(6, v, np.float32) for p in PART_NAMES
                                    for s, v in (("mean", 1.0), ("std", 3.0))})
    return full


def test_dataset_items_are_the_windows_of_the_whole_records(tmp_path):
    full = fake_cache(tmp_path, {"a": 400, "b": 130, "c": 64})
    dataset = OmnigesDataset(tmp_path, split="train", length=64, stride=32)
    for index in (0, 5, len(dataset) - 1):
        item, window = dataset[index], dataset.windows[index]
        a, b, rec = window.start, window.start + window.frames, full[window.clip_id]
        ta, tb = a // 4, b // 4
        np.testing.assert_allclose(item["wavlm"], (rec["features"]["wavlm"][a:b].astype(np.float32) - 0.5) / 2)
        np.testing.assert_array_equal(item["text"], rec["features"]["text"][ta:tb].astype(np.float32))
        np.testing.assert_array_equal(item["word_ids"], rec["features"]["word_ids"][ta:tb])
        np.testing.assert_allclose(item["gesture"][:, :3], rec["latents"]["latents"]["upper"][ta:tb] / 2)
        np.testing.assert_array_equal(item["codes"][:, 3], rec["latents"]["codes"]["face"][ta:tb])
        np.testing.assert_allclose(item["part_hands"], (rec["clips"]["parts"]["hands"][a:b] - 1) / 3)
        assert bool(item["has_text"]) == (window.clip_id != "c")


def test_dataset_refuses_a_per_frame_text_cache(tmp_path):
    fake_cache(tmp_path, {"a": 64})
    reader = LmdbReader(tmp_path / "features.lmdb")
    meta = {**reader.meta, "layout": None}
    reader.close()
    env = lmdb.open(str(tmp_path / "features.lmdb"), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"__meta__", pickle.dumps(meta))
    env.close()
    with pytest.raises(CacheError, match="rerun the features stage"):
        OmnigesDataset(tmp_path, split="train", length=64, stride=32)


def test_window_source_reads_the_windows_a_stacked_array_would_hold(tmp_path):
    full = fake_cache(tmp_path, {"a": 400, "b": 130, "c": 64, "d": 40})
    clips = LmdbReader(tmp_path / "clips.lmdb")
    mean, std = np.full(6, 0.5, np.float32), np.full(6, 2.0, np.float32)
    source = WindowSource(clips, splits=("train",), length=64, stride=16, path="parts/upper", mean=mean, std=std)
    stacked = np.stack([full[k]["clips"]["parts"]["upper"][s : s + 64] for k in ("a", "b", "c")
                        for s in window_starts(full[k]["clips"]["n_frames"], length=64, stride=16)])
    assert len(source) == len(stacked) == 22 + 5 + 1  # "d" is shorter than a window
    ids = np.array([0, 7, 21, 22, 27])
    np.testing.assert_allclose(source[ids].numpy(), (stacked[ids] - 0.5) / 2, rtol=1e-6)
    subset = source.subset(10)
    assert subset.shape == (10, 64, 6)
    np.testing.assert_allclose(subset[-1], (stacked[-1] - 0.5) / 2, rtol=1e-6)  # evenly spaced, ends included
    assert source.subset(1000).shape[0] == len(source)
    with pytest.raises(ValueError, match="no 512-frame windows"):
        WindowSource(clips, splits=("train",), length=512, stride=16, path="parts/upper")


def test_rvqvae_training_streamed_equals_training_on_the_stacked_windows(tmp_path):
    fake_cache(tmp_path, {"a": 400, "b": 200})
    source = WindowSource(LmdbReader(tmp_path / "clips.lmdb"), splits=("train",), length=32, stride=4,
                          path="parts/hands")
    stacked = source[np.arange(len(source))].numpy()
    results = []
    for windows in (source, stacked):
        torch.manual_seed(0)
        model = RVQVAE(input_width=6, width=16, code_dim=8, depth=1, nb_code=32, num_quantizers=2)
        out = train_rvqvae(model, windows, stacked[:8], steps=5, batch_size=4, warmup_steps=1, seed=3,
                           progress=False, device="cpu")
        results.append((out["history"], [p.detach().clone() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_raw_batches_normalised_on_the_device_equal_normalised_items(tmp_path):
    fake_cache(tmp_path, {"a": 400, "b": 130, "c": 40})
    plain = OmnigesDataset(tmp_path, split="train", length=64, stride=32)
    raw = OmnigesDataset(tmp_path, split="train", length=64, stride=32, raw=True)
    assert raw[0]["wavlm"].dtype == np.float16 and raw[0]["part_face"].dtype == np.float32
    ids = [0, 3, len(raw) - 1]  # the last window is the short clip "c": padded frames
    expected = collate([plain[i] for i in ids])
    got = raw.normalizer()(collate([raw[i] for i in ids]))
    assert not expected["frame_mask"].all()
    for key in ("wavlm", "mfcc", "text", "part_upper", "part_lower_trans"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_resident_batches_equal_the_collated_items_and_train_the_same_steps(tmp_path):
    from omniges.data.resident import ResidentWindows, resident_bytes, use_resident

    fake_cache(tmp_path, {"a": 400, "b": 130, "c": 40, "d": 203})
    raw = OmnigesDataset(tmp_path, split="train", length=64, stride=16, raw=True)
    resident = ResidentWindows(raw)
    assert len(resident) == len(raw) and resident.nbytes == resident_bytes(raw)
    short = next(i for i, w in enumerate(raw.windows) if w.frames < 64)  # clip "c": padded frames
    for ids in ([0, 3, short, len(raw) - 1], [short], list(range(len(raw)))):
        expected, got = collate([raw[i] for i in ids]), resident.batch(ids)
        assert got.keys() == expected.keys() and got["clip_id"] == expected["clip_id"]
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert got[key].dtype == value.dtype, key
                torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    plain = OmnigesDataset(tmp_path, split="train", length=64, stride=16)  # normalised items: normalised batch
    torch.testing.assert_close(ResidentWindows(plain).batch([0, short])["part_hands"],
                               collate([plain[0], plain[short]])["part_hands"], rtol=0, atol=0)
    assert not use_resident("auto", raw, torch.device("cpu"), 0.25)  # a CPU streams: RSS stays O(batch)
    assert use_resident(True, raw, torch.device("cpu"), 0.25)
    with pytest.raises(ValueError, match="data_on_device"):
        use_resident("sometimes", raw, torch.device("cpu"), 0.25)

    from omniges.training.trainer import TrainConfig, Trainer

    def loss_fn(model, batch, task, generator):  # audio frames -> gesture tokens, masked
        pred = model(batch["wavlm"].float().reshape(len(batch["clip_id"]), -1, 32))
        err = (pred - batch["gesture"]).square().mean(-1) * batch["token_mask"]
        return {"loss": err.sum() / batch["token_mask"].sum()}

    weights = []
    for on_device in (False, True):
        torch.manual_seed(0)
        config = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup_steps=1, checkpoint_every=3, val_every=6,
                             log_every=2)
        trainer = Trainer(torch.nn.Linear(32, 12), train_set=raw, val_set=raw, collate=collate, loss_fn=loss_fn,
                          config=config, out_dir=tmp_path / f"run{on_device}", device="cpu")
        trainer.resident = resident if on_device else None
        trainer.fit(progress=False)
        weights.append(trainer.state()["model"])
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)
