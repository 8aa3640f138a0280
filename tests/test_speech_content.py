"""G2A content measures (voicing, vowel openness, syllable rate) and the motion-to-speech retrieval ceiling."""

import numpy as np
import pytest

from omniges.evaluation.retrieval import MotionToSpeechRetrieval
from omniges.evaluation.speech_content import content_metrics, contours, syllable_rate
from omniges.features.audio import logmel


def _speech(seed: int, seconds: float = 8.0, sr: int = 16000) -> np.ndarray:
    """Syllables of random length alternating voiced vowels (harmonics around a random first formant) and
    fricative noise, separated by pauses: content that varies, at a known rate."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.0
    while t < seconds:
        n = int(rng.uniform(0.08, 0.2) * sr)
        k = np.arange(n) / sr
        formant = rng.uniform(300, 900)
        vowel = sum(np.sin(2 * np.pi * h * 120 * k) / (1 + ((h * 120 - formant) / 150) ** 2) for h in range(1, 30))
        fricative = 0.3 * np.diff(rng.normal(0, 1, n + 1))
        pause = np.zeros(int(rng.uniform(0.03, 0.15) * sr))
        out += [vowel, fricative, pause]
        t += (2 * n + len(pause)) / sr
    return np.concatenate(out)[: int(seconds * sr)].astype(np.float32)


def test_same_speech_agrees_fully_and_other_speech_sits_near_chance():
    a, b = logmel(_speech(0), fps=30, n_mels=128), logmel(_speech(1), fps=30, n_mels=128)
    same = content_metrics(a, a)
    assert same["voicing_agreement"] == 1.0 and same["tilt_corr"] == pytest.approx(1.0)
    assert same["openness_corr"] == pytest.approx(1.0) and same["syllable_rate_corr"] == pytest.approx(1.0)
    other = content_metrics(a, b)
    assert 0.3 < other["voicing_agreement"] < 0.7 and abs(other["tilt_corr"]) < 0.3
    louder = content_metrics(a, a + 2.0)  # a level change is no content change
    assert louder["voicing_agreement"] == 1.0 and louder["tilt_corr"] == pytest.approx(1.0)


def test_contours_read_the_first_formant_and_syllables():
    sr, k = 16000, np.arange(16000) / 16000
    low = sum(np.sin(2 * np.pi * h * 100 * k) / (1 + ((h * 100 - 300) / 100) ** 2) for h in range(1, 40))
    high = sum(np.sin(2 * np.pi * h * 100 * k) / (1 + ((h * 100 - 800) / 100) ** 2) for h in range(1, 40))
    f_low = contours(logmel(low.astype(np.float32), sr, fps=30, n_mels=128))["openness"][5:-5].mean()
    f_high = contours(logmel(high.astype(np.float32), sr, fps=30, n_mels=128))["openness"][5:-5].mean()
    assert 250 < f_low < 450 < 650 < f_high < 900
    loudness = np.tile(np.r_[np.zeros(5), np.ones(5)], 30)  # 3 syllables per second for 10 s
    assert syllable_rate(loudness, 30).tolist() == [3.0] * 10


def test_retrieval_finds_the_train_frames_of_train_motion():
    rng = np.random.default_rng(0)
    motions = [(rng.normal(0, 1, (120, 165)).cumsum(0), rng.normal(0, 1, (120, 100))) for _ in range(3)]
    speech = [rng.normal(0, 1, (120, 16)) for _ in range(3)]
    retrieval = MotionToSpeechRetrieval(motions, speech)
    np.testing.assert_allclose(retrieval.predict(*motions[1]), speech[1], atol=1e-5)


def test_word_retrieval_reads_train_words_back_from_their_motion():
    from omniges.evaluation.retrieval import WordRetrieval

    rng = np.random.default_rng(0)
    shapes = {"big": rng.normal(0, 1, 265), "you": rng.normal(0, 1, 265), "the": rng.normal(0, 1, 265)}
    clips = []
    for _ in range(4):
        words, frames, t = [], [], 0.0
        for word in rng.choice(list(shapes), 12):
            frames.append(np.repeat(shapes[word][None], 9, 0) + rng.normal(0, 0.05, (9, 265)))
            words.append((str(word), t, t + 0.3))
            t += 0.3
        motion = np.concatenate(frames)
        clips.append((motion[:, :165], motion[:, 165:], words))
    retrieval = WordRetrieval(clips[:3])
    poses, expressions, words = clips[3]
    assert retrieval.predict(poses, expressions, words) == [w for w, _, _ in words]
