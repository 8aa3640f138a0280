"""The motion-to-speech ceiling: nearest-neighbour retrieval from real motion to the train corpus's speech.

For every frame of a clip's ground-truth motion the train frame with the most similar motion around it (pose and
face, +-3 frames, standardised and PCA-reduced) is found and its speech frame taken. What this retrieval gets right
about speech is carried by the motion; where it is at chance too, no G2A model can be expected to do better.
"""

from __future__ import annotations

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
