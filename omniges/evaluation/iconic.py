"""T2G check on the embedded corpus: do word-specific iconic gestures appear during their words?

For each iconic word of a test clip, the gesture's signature pose column (from `omniges.data.synthetic`) must
move in its sign inside the word's interval relative to the rest of the clip. Ground truth scores about 0.95,
chance 0.5. Defined only for clips of the embedded corpus (real BEAT2 has no such annotation): None otherwise.
"""

from __future__ import annotations

import numpy as np

from omniges.data import synthetic

FPS = 30
MIN_OFFSET_RAD = 1e-3  # an offset smaller than this (0.06 degrees) is no gesture


def _dominant_hand(clip_id: str, speakers: int = 30) -> str | None:
    for style in synthetic.speaker_styles(speakers):
        if clip_id.startswith(f"{style.speaker_id}_{style.name}_"):
            return style.dominant
    return None


def iconic_hit_rate(clip_ids: list[str], poses: list[np.ndarray], words: list[list[tuple[str, float, float]]]
                    ) -> float | None:
    """Share of iconic-word occurrences whose signature joint moves the designed way (None if there are none)."""
    hits = []
    for clip_id, clip_poses, clip_words in zip(clip_ids, poses, words, strict=True):
        dominant = _dominant_hand(clip_id)
        if dominant is None:
            continue
        for word, start, end in clip_words:
            gesture = synthetic.ICONIC_WORDS.get(word.lower())
            if gesture is None:
                continue
            column, sign = synthetic.ICONIC_GESTURES[gesture].signature(dominant)
            a, b = int(start * FPS), min(len(clip_poses), int(end * FPS) + 1)
            if sign == 0 or b - a < 2 or b - a >= len(clip_poses):
                continue
            inside = clip_poses[a:b, column].mean()
            outside = np.delete(clip_poses[:, column], np.s_[a:b]).mean()
            hits.append((inside - outside) * sign > MIN_OFFSET_RAD)
    return float(np.mean(hits)) if hits else None
