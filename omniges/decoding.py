"""Free-running G2T decoding: per-gesture-token word log-probabilities -> timed words, no word timing given.

The G2T head tags every gesture token with the word spoken during it (or <sil>). Reading its per-token argmax and
collapsing repeats splits a word whose tokens disagree into several words, so the transcript is mostly insertions.
Instead the tokens are segmented jointly: a segment is one silence token or one word spanning 1..`max_tokens`
tokens, scored by the summed log-probability of its label over its tokens (a semi-Markov Viterbi path), plus
`word_bonus` per word (the one knob: > 0 more, shorter words; < 0 fewer). The word of a segment is the one that
explains all its tokens best, which is what the per-word accuracy with true timing measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimedWord:
    word: str
    start: float
    end: float


def segment(log_probs: np.ndarray, *, sil_id: int, first_word_id: int, word_bonus: float = 0.0,
            max_tokens: int = 10) -> list[tuple[int, int, int]]:
    """Best segmentation of (n, vocab) per-token log-probabilities: [(first token, end token, vocab id)] for the
    word segments in order (silence left out); ids < `first_word_id` other than silence are never emitted."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    n = len(log_probs)
    if n == 0:
        return []
    words = log_probs[:, first_word_id:]
    cum = np.vstack([np.zeros((1, words.shape[1])), np.cumsum(words, axis=0)])
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    back: list[tuple[int, int]] = [(0, -1)] * (n + 1)  # (segment start, vocab id or -1 for silence)
    for end in range(1, n + 1):
        best[end], back[end] = best[end - 1] + log_probs[end - 1, sil_id], (end - 1, -1)
        starts = np.arange(max(0, end - max_tokens), end)
        spans = cum[end] - cum[starts]  # (d, words): each label's summed log-probability over the span
        label = spans.argmax(1)
        scores = best[starts] + spans[np.arange(len(starts)), label] + word_bonus
        k = int(scores.argmax())
        if scores[k] > best[end]:
            best[end], back[end] = scores[k], (int(starts[k]), int(label[k]) + first_word_id)
    out, end = [], n
    while end > 0:
        start, vocab_id = back[end]
        if vocab_id >= 0:
            out.append((start, end, vocab_id))
        end = start
    return out[::-1]


def decode_words(log_probs: np.ndarray, tokens: list[str], *, sil_id: int, first_word_id: int,
                 seconds_per_token: float, word_bonus: float = 0.0, max_tokens: int = 10) -> list[TimedWord]:
    """Timed words of the best segmentation; token k spans [k, k + 1) * seconds_per_token."""
    return [TimedWord(tokens[v], a * seconds_per_token, b * seconds_per_token)
            for a, b, v in segment(log_probs, sil_id=sil_id, first_word_id=first_word_id, word_bonus=word_bonus,
                                   max_tokens=max_tokens)]
