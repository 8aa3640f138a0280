"""Ceilings of what motion carries: nearest-neighbour retrieval from real motion into the train corpus.

G2A: for every frame of a clip's ground-truth motion, the train frame whose mouth (jaw and leading FLAME expression
coefficients, +-3 frames) moves most alike is found and its speech frame taken. G2T: every word of the clip, told
its timing, is read as the majority word of the train words whose mouth and arms moved most alike over their
interval (12 samples and the word's duration). What retrieval gets right is carried by the motion; where it is at
chance too, no model can be expected to do better. The descriptors are the strongest of those measured on val
(docs/design-notes.md, "Four tasks"): the whole body, PCA-reduced, drowns the mouth and reads half as much.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from omniges.constants import FPS

JAW = slice(66, 69)  # SMPL-X joint 22's axis-angle in the 165 pose columns
ARMS = slice(39, 66)  # joints 13-21: collars, shoulders, elbows, wrists
MOUTH_EXPRESSIONS = 10  # leading FLAME expression coefficients: the ones that move with the syllables
CONTEXT = 3  # frames either side in a frame's descriptor
MAX_TRAIN_FRAMES = 60000  # train frames kept (evenly strided) for the search
WORD_SAMPLES = 12  # frames a word's motion is resampled to
NEIGHBOURS = 15


def mouth(poses: np.ndarray, expressions: np.ndarray) -> np.ndarray:
    """(T, 13): jaw rotation and the leading expression coefficients."""
    return np.concatenate([np.asarray(poses, np.float32)[:, JAW],
                           np.asarray(expressions, np.float32)[:, :MOUTH_EXPRESSIONS]], axis=1)


def mouth_and_arms(poses: np.ndarray, expressions: np.ndarray) -> np.ndarray:
    """(T, 40): the mouth and the arms (where iconic gestures show)."""
    return np.concatenate([mouth(poses, expressions), np.asarray(poses, np.float32)[:, ARMS]], axis=1)


def _nearest(keys: np.ndarray, key_norms: np.ndarray, queries: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each query row, the index of the closest key (squared Euclidean distance)."""
    return np.concatenate([(key_norms[None] - 2 * queries[a : a + chunk] @ keys.T).argmin(1)
                           for a in range(0, len(queries), chunk)])


class MotionToSpeechRetrieval:
    """Fit on train (motion, log-mel) pairs at the same frame rate; `predict` a log-mel for new motion."""

    def __init__(self, motions: list[tuple[np.ndarray, np.ndarray]], logmels: list[np.ndarray]):
        frames = [mouth(p, e) for p, e in motions]
        stacked = np.concatenate(frames)
        self.mean, self.std = stacked.mean(0), stacked.std(0) + 1e-6
        keys = np.concatenate([self._describe(f) for f in frames])
        values = np.concatenate([np.asarray(m[: len(f)], np.float32) for f, m in zip(frames, logmels, strict=True)])
        step = max(1, len(keys) // MAX_TRAIN_FRAMES)
        self.keys, self.values = keys[::step], values[::step]
        self.key_norms = (self.keys**2).sum(1)

    def _describe(self, frames: np.ndarray) -> np.ndarray:
        standard = (frames - self.mean) / self.std
        padded = np.pad(standard, ((CONTEXT, CONTEXT), (0, 0)), mode="edge")
        return np.concatenate([padded[k : k + len(frames)] for k in range(2 * CONTEXT + 1)], axis=1)

    def predict(self, poses: np.ndarray, expressions: np.ndarray) -> np.ndarray:
        """(T, n_mels) log-mel: each frame's nearest train frame's speech."""
        query = self._describe(mouth(poses, expressions))
        return self.values[_nearest(self.keys, self.key_norms, query)]


class WordRetrieval:
    """Fit on train clips' (poses, expressions, timed words); `predict` a word for each timed word of new motion."""

    def __init__(self, clips: list[tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]], fps: int = FPS):
        self.fps = fps
        keys, self.labels = [], []
        for poses, expressions, words in clips:
            frames = mouth_and_arms(poses, expressions)
            for word, start, end in words:
                keys.append(self._describe(frames, start, end))
                self.labels.append(word.lower())
        keys = np.stack(keys) if keys else np.zeros((0, 1), np.float32)  # no words: `predict` reads nothing
        self.mean, self.std = (keys.mean(0), keys.std(0) + 1e-6) if len(keys) else (0.0, 1.0)
        self.keys = (keys - self.mean) / self.std
        self.key_norms = (self.keys**2).sum(1)

    def _describe(self, frames: np.ndarray, start: float, end: float) -> np.ndarray:
        a = min(int(start * self.fps), len(frames) - 1)
        b = min(max(a + 2, int(np.ceil(end * self.fps))), len(frames))
        at = np.linspace(a, b - 1, WORD_SAMPLES).round().astype(int)
        return np.concatenate([frames[at].reshape(-1), [end - start]]).astype(np.float32)

    def predict(self, poses: np.ndarray, expressions: np.ndarray, words: list[tuple[str, float, float]]
                ) -> list[str]:
        """The retrieved word of each timed word (majority of the nearest train words, ties to the nearest)."""
        if not len(self.keys):
            return []
        frames = mouth_and_arms(poses, expressions)
        out = []
        for _, start, end in words:
            query = (self._describe(frames, start, end) - self.mean) / self.std
            order = np.argsort(self.key_norms - 2 * self.keys @ query)[:NEIGHBOURS]
            votes = Counter(self.labels[i] for i in order)
            top = max(votes.values())
            out.append(next(self.labels[i] for i in order if votes[self.labels[i]] == top))
        return out
