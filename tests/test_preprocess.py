"""Stage `preprocess`: records, train-only statistics, counted skips, never a half-written cache."""

import json

import numpy as np
import pytest

from omniges.data import preprocess as pre
from omniges.data.store import CacheError, LmdbReader, LmdbWriter


def test_preprocess_writes_records_stats_and_report(small_corpus, tmp_path):
    out = tmp_path / "cache"
    report = pre.preprocess_corpus(small_corpus, out, speakers=[], splits=["train", "val", "test"], workers=2,
                                   progress=False)
    assert report["clips_written"] == 4 and report["clips_skipped"] == 0
    assert report["splits"] == {"train": 2, "val": 1, "test": 1}
    reader = LmdbReader(out / "clips.lmdb")
    assert sorted(reader.keys) == sorted(["2_scott_0_1_1", "2_scott_0_2_2", "2_scott_0_3_3", "4_lawrence_0_1_1"])
    record = reader["2_scott_0_2_2"]
    assert record["n_frames"] == 240 and record["audio"].dtype == np.int16 and len(record["audio"]) == 128000
    stats = np.load(out / "stats.npz")
    train = np.concatenate([reader[k]["parts"]["upper"] for k in ("2_scott_0_1_1", "2_scott_0_2_2")])
    np.testing.assert_allclose(stats["upper_mean"], train.mean(0), atol=1e-5)
    assert stats["hands_std"].shape == (180,) and (stats["hands_std"] >= pre.STD_FLOOR).all()
    assert json.loads((out / "preprocess_report.json").read_text())["clips_written"] == 4


def test_speaker_selection_and_additional(small_corpus, tmp_path):
    report = pre.preprocess_corpus(small_corpus, tmp_path / "c", speakers=[4], splits=["train", "test", "additional"],
                                   workers=1, progress=False)
    assert report["splits"] == {"test": 1, "additional": 1}


def test_bad_clips_are_counted_skips(small_corpus, tmp_path):
    bad = small_corpus / "smplxflame_30" / "2_scott_0_3_3.npz"
    bad.write_bytes(bad.read_bytes()[:100])
    (small_corpus / "wave16k" / "4_lawrence_0_1_1.wav").unlink()
    with (small_corpus / "train_test_split.csv").open("a") as handle:
        handle.write("6_carla_0_1_1,train\n")  # listed in the csv, no files
    report = pre.preprocess_corpus(small_corpus, tmp_path / "c", speakers=[], splits=["train", "val", "test"],
                                   workers=1, progress=False)
    assert report["clips_written"] == 2 and report["clips_skipped"] == 3
    reasons = {item["id"]: item["reason"] for item in report["skipped"]}
    assert "corrupt or truncated" in reasons["2_scott_0_3_3"]
    assert "audio file not found" in reasons["4_lawrence_0_1_1"]
    assert "motion file not found" in reasons["6_carla_0_1_1"]


def test_interrupted_write_is_never_read_as_complete(tmp_path, monkeypatch, small_corpus):
    path = tmp_path / "x.lmdb"
    writer = LmdbWriter(path)
    writer.put("a", {"v": 1})
    writer.abort()
    with pytest.raises(CacheError, match="not found"):
        LmdbReader(path)
    partial = path.with_name("x.lmdb.partial")
    with pytest.raises(CacheError, match="incomplete cache"):
        LmdbReader(partial)
    resumed = LmdbWriter(path)
    assert resumed.keys() == {"a"}
    resumed.put("b", {"v": 2})
    resumed.seal({"stage": "test"})
    reader = LmdbReader(path)
    assert reader.keys == ["a", "b"] and reader["b"] == {"v": 2} and not partial.exists()

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(pre.PartStats, "finish", boom)
    with pytest.raises(RuntimeError, match="killed"):
        pre.preprocess_corpus(small_corpus, tmp_path / "c", speakers=[], splits=["train"], workers=1, progress=False)
    assert not (tmp_path / "c" / "clips.lmdb").exists()
