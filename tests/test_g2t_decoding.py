"""Free-running G2T: segmental decoding of per-token word log-probabilities, word F1 and iconic-word recall."""

import numpy as np
import pytest

from omniges.decoding import decode_words, segment
from omniges.evaluation.iconic import iconic_word_recall
from omniges.evaluation.metrics import word_f1

TOKENS = ["<pad>", "<unk>", "<sil>", "big", "the", "you"]


def _log_probs(labels: list[int], confidence: float = 0.6) -> np.ndarray:
    probs = np.full((len(labels), len(TOKENS)), (1 - confidence) / (len(TOKENS) - 1))
    probs[np.arange(len(labels)), labels] = confidence
    return np.log(probs)


def test_a_word_whose_tokens_disagree_is_one_word_not_three():
    # sil, big, the, big, big, sil, sil, you, you, sil: argmax with repeats collapsed reads "big the big you";
    # a word penalty (the tuned knob) makes the decoder pay for each extra word
    lp = _log_probs([2, 3, 4, 3, 3, 2, 2, 5, 5, 2])
    assert segment(lp, sil_id=2, first_word_id=3, word_bonus=-3.0) == [(1, 5, 3), (7, 9, 5)]
    words = decode_words(lp, TOKENS, sil_id=2, first_word_id=3, seconds_per_token=4 / 30, word_bonus=-3.0)
    assert [w.word for w in words] == ["big", "you"]
    assert words[0].start == pytest.approx(4 / 30) and words[1].end == pytest.approx(36 / 30)


def test_word_bonus_trades_fewer_for_more_words_and_specials_are_never_emitted():
    lp = _log_probs([3, 3, 4, 4, 3, 3])  # three words back to back, or one long one
    few = segment(lp, sil_id=2, first_word_id=3, word_bonus=-5.0)
    many = segment(lp, sil_id=2, first_word_id=3, word_bonus=5.0)
    assert len(few) == 1 and len(many) >= 3
    unknown = _log_probs([1, 1, 1], confidence=0.9)  # <unk> dominant: a word from the vocabulary or silence
    assert all(v >= 3 for _, _, v in segment(unknown, sil_id=2, first_word_id=3, word_bonus=1.0))
    assert segment(np.zeros((0, len(TOKENS))), sil_id=2, first_word_id=3) == []
    long = _log_probs([3] * 25)
    assert all(b - a <= 10 for a, b, _ in segment(long, sil_id=2, first_word_id=3, max_tokens=10))


def test_word_f1_is_order_free_and_clipped():
    assert word_f1(["a b c"], ["c b a"]) == 1.0
    assert word_f1(["a a a a"], ["a b"]) == pytest.approx(2 * (1 / 4) * (1 / 2) / (1 / 4 + 1 / 2))
    assert word_f1(["x"], ["a"]) == 0.0 and word_f1([""], ["a"]) == 0.0


def test_iconic_recall_counts_the_gesture_named_near_its_word_on_embedded_clips_only():
    ref = [("the", 0.0, 0.3), ("big", 0.3, 0.7), ("you", 1.0, 1.3)]
    hyp = [("huge", 0.35, 0.6), ("you", 2.5, 2.8)]  # "huge" shares big's gesture; "you" is too late
    assert iconic_word_recall(["2_scott_0_1_1"], [hyp], [ref]) == 0.5
    assert iconic_word_recall(["2_scott_0_1_1"], [[]], [ref]) == 0.0
    assert iconic_word_recall(["99_nobody_0_1_1"], [hyp], [ref]) is None
