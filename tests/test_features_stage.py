"""Stage `features`: per-frame arrays aligned to the motion, vocabulary from train only, resumable."""

import numpy as np
import pytest

from omniges.data.preprocess import preprocess_corpus
from omniges.data.store import LmdbReader
from omniges.features import extract
from omniges.features.audio import WavLMFeatures
from omniges.features.text import TextEncoder

GRID = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 8
tiers? <exists>
size = 1
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 8
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 1.0
            text = "{a}"
        intervals [2]:
            xmin = 1.0
            xmax = 2.0
            text = ""
        intervals [3]:
            xmin = 2.0
            xmax = 3.5
            text = "{b}"
"""


@pytest.fixture()
def cache(small_corpus, tmp_path):
    words = {"2_scott_0_1_1": ("hello", "world"), "2_scott_0_2_2": ("hello", "there"),
             "2_scott_0_3_3": ("unseen", "world")}
    for clip_id, (a, b) in words.items():
        (small_corpus / "textgrid" / f"{clip_id}.TextGrid").write_text(GRID.format(a=a, b=b))
    out = tmp_path / "cache"
    preprocess_corpus(small_corpus, out, speakers=[], splits=["train", "val", "test"], workers=1, progress=False)
    return out


def test_features_align_and_resume(cache, monkeypatch):
    wavlm = WavLMFeatures.random_init(0, "tiny")
    text = TextEncoder.tiny_random(0, ["hello", "world", "there", "unseen"])
    calls, crash = [], [True]
    original = extract.clip_features

    def counting(record, **kwargs):
        if crash[0] and len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(record["id"])
        return original(record, **kwargs)

    monkeypatch.setattr(extract, "clip_features", counting)
    with pytest.raises(KeyboardInterrupt):
        extract.extract_features(cache, wavlm=wavlm, text=text, progress=False)
    assert not (cache / "features.lmdb").exists()  # an interrupted run leaves only the .partial
    crash[0] = False
    report = extract.extract_features(cache, wavlm=wavlm, text=text, progress=False)
    assert report["clips_resumed"] == 2 and len(calls) == 4  # two before the crash, two after: none twice
    assert report["wavlm_random_init"] is True

    features = LmdbReader(cache / "features.lmdb")
    record = features["2_scott_0_1_1"]
    assert record["wavlm"].shape == (240, 768) and record["mfcc"].shape == (240, 128)
    # text at the gesture-token rate (one row per 4 frames): hello 0-1 s, silence 1-2 s, world 2-3.5 s
    assert record["text"].shape == (60, text.dim) and record["word_ids"].shape == (60,)
    assert record["wavlm"].dtype == np.float16 and features.meta["layout"] == "text-per-token"
    vocab = extract.Vocabulary.load(cache / "vocab.json")
    ids = record["word_ids"]
    assert vocab.decode([ids[0]]) == ["hello"] and ids[11] == vocab.SIL and vocab.decode([ids[17]]) == ["world"]
    assert (record["text"][11] == 0).all() and not (record["text"][0] == 0).all()
    assert "unseen" not in vocab  # val transcripts never enter the vocabulary
    assert vocab.decode([features["2_scott_0_3_3"]["word_ids"][0]]) == ["<unk>"]
    assert features["4_lawrence_0_1_1"]["has_text"] is False
