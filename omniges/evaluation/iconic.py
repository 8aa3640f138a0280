"""T2G check on the embedded corpus: do word-specific iconic gestures appear during their words?

For each iconic word of a test clip, the gesture's signature pose column (from `omniges.data.synthetic`) must
move in its sign inside the word's interval relative to the rest of the clip. Ground truth scores about 0.95,
chance 0.5. Defined only for clips of the embedded corpus (real BEAT2 has no such annotation): None otherwise.
"""

from __future__ import annotations

import numpy as np

from omniges.constants import FPS
from omniges.data import synthetic

MIN_OFFSET_RAD = 1e-3  # an offset smaller than this (0.06 degrees) is no gesture


def _dominant_hand(clip_id: str, speakers: int = 30) -> str | None:
    for style in synthetic.speaker_styles(speakers):
        if clip_id.startswith(f"{style.speaker_id}_{style.name}_"):
            return style.dominant
    return None


def clip_hits(clip_id: str, poses: np.ndarray, words: list[tuple[str, float, float]]) -> list[bool]:
    """One clip's iconic-word occurrences: whether each one's signature joint moves the designed way ([] for a
    clip outside the embedded corpus or without iconic words)."""
    dominant = _dominant_hand(clip_id)
    if dominant is None:
        return []
    hits = []
    for word, start, end in words:
        gesture = synthetic.ICONIC_WORDS.get(word.lower())
        if gesture is None:
            continue
        column, sign = synthetic.ICONIC_GESTURES[gesture].signature(dominant)
        a, b = int(start * FPS), min(len(poses), int(end * FPS) + 1)
        if sign == 0 or b - a < 2 or b - a >= len(poses):
            continue
        inside = poses[a:b, column].mean()
        outside = np.delete(poses[:, column], np.s_[a:b]).mean()
        hits.append(bool((inside - outside) * sign > MIN_OFFSET_RAD))
    return hits


def iconic_hit_rate(clip_ids: list[str], poses: list[np.ndarray], words: list[list[tuple[str, float, float]]]
                    ) -> float | None:
    """Share of iconic-word occurrences whose signature joint moves the designed way (None if there are none)."""
    hits = [h for c, p, w in zip(clip_ids, poses, words, strict=True) for h in clip_hits(c, p, w)]
    return float(np.mean(hits)) if hits else None


def iconic_hit_ci(clip_ids: list[str], poses: list[np.ndarray], words: list[list[tuple[str, float, float]]], *,
                  resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the hit rate over clips (the unit: a clip's occurrences share its motion),
    each draw the pooled rate of its clips; draws whose clips have no occurrence are redrawn. None when no clip
    has one."""
    per_clip = [clip_hits(c, p, w) for c, p, w in zip(clip_ids, poses, words, strict=True)]
    hits = np.array([sum(h) for h in per_clip], dtype=np.float64)
    counts = np.array([len(h) for h in per_clip], dtype=np.float64)
    if counts.sum() == 0:
        return None
    rng, rates = np.random.default_rng(seed), []
    while len(rates) < resamples:
        index = rng.integers(0, len(per_clip), len(per_clip))
        if counts[index].sum() > 0:
            rates.append(hits[index].sum() / counts[index].sum())
    tail = 50 * (1 - level)
    return [float(np.percentile(rates, tail)), float(np.percentile(rates, 100 - tail))]


def iconic_word_recall(clip_ids: list[str], hyps: list[list[tuple[str, float, float]]],
                       refs: list[list[tuple[str, float, float]]], tolerance_s: float = 0.25) -> float | None:
    """G2T: share of the iconic-word occurrences of embedded-corpus clips whose gesture the transcript names: a
    hypothesis word of the same iconic gesture (e.g. "huge" for "big": one gesture shows both) overlapping the
    word's interval widened by `tolerance_s`. None when no clip has an iconic word."""
    found = total = 0
    for clip_id, hyp, ref in zip(clip_ids, hyps, refs, strict=True):
        if _dominant_hand(clip_id) is None:
            continue
        for word, start, end in ref:
            gesture = synthetic.ICONIC_WORDS.get(word.lower())
            if gesture is None:
                continue
            total += 1
            found += any(synthetic.ICONIC_WORDS.get(w.lower()) == gesture and s < end + tolerance_s
                         and e > start - tolerance_s for w, s, e in hyp)
    return found / total if total else None
