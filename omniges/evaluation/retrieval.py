"""Ceilings of what motion carries: nearest-neighbour retrieval from real motion into the train corpus.

G2A: for every frame of a clip's ground-truth motion the train frame with the most similar motion around it (pose
and face, +-3 frames, standardised and PCA-reduced) is found and its speech frame taken. G2T: every word of the clip,
told its timing, is read as the majority word of the train words whose motion over their interval is closest.
What retrieval gets right is carried by the motion; where it is at chance too, no model can be expected to do
better.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

CONTEXT = 3  # frames either side in a frame's motion descriptor
COMPONENTS = 32
MAX_TRAIN_FRAMES = 60000  # train frames kept (evenly strided) for the search


def _frames(poses: np.ndarray, expressions: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(poses, np.float32), np.asarray(expressions, np.float32)], axis=1)


class MotionToSpeechRetrieval:
    """Fit on train (motion, log-mel) pairs at the same frame rate; `predict` a log-mel for new motion."""

    def __init__(self, motions: list[tuple[np.ndarray, np.ndarray]], logmels: list[np.ndarray]):
        frames = [_frames(p, e) for p, e in motions]
        stacked = np.concatenate(frames)
        self.mean, self.std = stacked.mean(0), stacked.std(0) + 1e-6
        _, _, vt = np.linalg.svd((stacked[:: max(1, len(stacked) // 20000)] - self.mean) / self.std,
                                 full_matrices=False)
        self.basis = vt[:COMPONENTS].T
        keys = np.concatenate([self._describe(f) for f in frames])
        values = np.concatenate([np.asarray(m[: len(f)], np.float32) for f, m in zip(frames, logmels, strict=True)])
        step = max(1, len(keys) // MAX_TRAIN_FRAMES)
        self.keys, self.values = keys[::step], values[::step]
        self.key_norms = (self.keys**2).sum(1)

    def _describe(self, frames: np.ndarray) -> np.ndarray:
        reduced = ((frames - self.mean) / self.std) @ self.basis
        padded = np.pad(reduced, ((CONTEXT, CONTEXT), (0, 0)), mode="edge")
        return np.concatenate([padded[k : k + len(frames)] for k in range(2 * CONTEXT + 1)], axis=1)

    def predict(self, poses: np.ndarray, expressions: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """(T, n_mels) log-mel: each frame's nearest train frame's speech."""
        query = self._describe(_frames(poses, expressions))
        out = []
        for a in range(0, len(query), chunk):
            q = query[a : a + chunk]
            distance = self.key_norms[None] - 2 * q @ self.keys.T
            out.append(self.values[distance.argmin(1)])
        return np.concatenate(out)


WORD_SAMPLES = 8  # frames a word's motion is resampled to
NEIGHBOURS = 5


class WordRetrieval:
    """Fit on train clips' (poses, expressions, timed words); `predict` a word for each timed word of new motion."""

    def __init__(self, clips: list[tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]], fps: int = 30):
        self.fps = fps
        frames = [_frames(p, e) for p, e, _ in clips]
        stacked = np.concatenate(frames)
        self.mean, self.std = stacked.mean(0), stacked.std(0) + 1e-6
        _, _, vt = np.linalg.svd((stacked[:: max(1, len(stacked) // 20000)] - self.mean) / self.std,
                                 full_matrices=False)
        self.basis = vt[:COMPONENTS].T
        keys, self.labels = [], []
        for f, (_, _, words) in zip(frames, clips, strict=True):
            for word, start, end in words:
                keys.append(self._describe(f, start, end))
                self.labels.append(word.lower())
        self.keys = np.stack(keys) if keys else np.zeros((0, WORD_SAMPLES * COMPONENTS), np.float32)
        self.key_norms = (self.keys**2).sum(1)

    def _describe(self, frames: np.ndarray, start: float, end: float) -> np.ndarray:
        a = min(int(start * self.fps), len(frames) - 1)
        b = min(max(a + 1, int(np.ceil(end * self.fps))), len(frames))
        at = np.linspace(a, b - 1, WORD_SAMPLES).round().astype(int)
        return (((frames[at] - self.mean) / self.std) @ self.basis).reshape(-1).astype(np.float32)

    def predict(self, poses: np.ndarray, expressions: np.ndarray, words: list[tuple[str, float, float]]
                ) -> list[str]:
        """The retrieved word of each timed word (majority of the nearest train words, ties to the nearest)."""
        if not len(self.keys):
            return []
        frames = _frames(poses, expressions)
        out = []
        for _, start, end in words:
            query = self._describe(frames, start, end)
            order = np.argsort(self.key_norms - 2 * self.keys @ query)[:NEIGHBOURS]
            votes = Counter(self.labels[i] for i in order)
            top = max(votes.values())
            out.append(next(self.labels[i] for i in order if votes[self.labels[i]] == top))
        return out
