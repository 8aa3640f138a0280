"""Stage `features`: clips.lmdb -> features.lmdb (WavLM and MFCC per motion frame, text per token) + vocab.

Frame t of the audio arrays is the instant t / fps, exactly the clip's motion frames. Text is stored at the
gesture-token rate the model reads (one row per 4 frames: the mean text state and the centre frame's word id).
Stored as fp16 (ids as int32). Resumable: finished clips are kept in `features.lmdb.partial` and not recomputed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from omniges.data.dataset import FRAMES_PER_TOKEN, pool_tokens, token_words
from omniges.data.store import LmdbReader, LmdbWriter
from omniges.features.audio import WavLMFeatures, mfcc
from omniges.features.text import TextEncoder, Vocabulary, frame_text_features, frame_token_ids, words_to_frames

log = logging.getLogger("omniges.features")
FEATURES_LAYOUT = "text-per-token"  # what readers check before slicing the text arrays by token


def build_vocabulary(clips: LmdbReader, *, min_count: int = 1) -> Vocabulary:
    """G2T vocabulary from the train (and additional) transcripts only."""
    index = clips.meta["index"]
    train = [key for key, info in index.items() if info["split"] in ("train", "additional")]
    return Vocabulary.build(([w for w, _, _ in clips[key]["words"]] for key in train), min_count=min_count)


def clip_features(
    record: dict[str, Any], *, wavlm: WavLMFeatures, text: TextEncoder, vocab: Vocabulary, n_mfcc: int,
) -> dict[str, Any]:
    """All features of one preprocessed clip: audio per frame, text per gesture token."""
    n_frames, fps, sr = record["n_frames"], record["fps"], record["sr"]
    wave = record["audio"].astype(np.float32) / 32767.0
    words = record["words"]
    frame_word = words_to_frames(words, n_frames, fps)
    usable = n_frames - n_frames % FRAMES_PER_TOKEN
    if words:
        states = text.encode_words([w for w, _, _ in words])
        text_frames = frame_text_features(states, frame_word)
        word_ids = frame_token_ids(frame_word, vocab.encode([w for w, _, _ in words]))
    else:
        text_frames = np.zeros((n_frames, text.dim), np.float32)
        word_ids = np.full(n_frames, Vocabulary.PAD, np.int64)
    return {
        "wavlm": wavlm.extract(wave, n_frames, fps).astype(np.float16),
        "mfcc": mfcc(wave, sr, fps=fps, n_frames=n_frames, n_mfcc=n_mfcc, n_mels=n_mfcc).astype(np.float16),
        "text": pool_tokens(text_frames.astype(np.float16)[:usable].astype(np.float32)).astype(np.float16),
        "word_ids": token_words(word_ids[:usable]).astype(np.int32),
        "has_text": bool(words),
    }


def feature_stats(writer: LmdbWriter, train_keys: list[str]) -> dict[str, np.ndarray]:
    """Per-dimension train mean/std of WavLM and MFCC (the generator normalises its audio inputs with them)."""

    sums: dict[str, list] = {}
    for key in train_keys:
        record = writer.get(key)
        if record is None:
            continue
        for name in ("wavlm", "mfcc"):
            value = record[name].astype(np.float64)
            total = sums.setdefault(name, [0.0, 0.0, 0])
            total[0] += value.sum(0)
            total[1] += (value**2).sum(0)
            total[2] += len(value)
    if not sums:
        raise ValueError("no training clips with features: cannot compute feature statistics")
    out = {}
    for name, (s1, s2, n) in sums.items():
        mean = s1 / n
        out[f"{name}_mean"] = mean.astype(np.float32)
        out[f"{name}_std"] = np.sqrt(np.maximum(s2 / n - mean**2, 1e-8)).astype(np.float32)
    return out


def extract_features(
    cache_dir: str | Path, *, wavlm: WavLMFeatures, text: TextEncoder, n_mfcc: int = 128, vocab_min_count: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Write `features.lmdb` and `vocab.json` next to clips.lmdb; returns counts and extraction speed."""
    cache_dir = Path(cache_dir)
    clips = LmdbReader(cache_dir / "clips.lmdb")
    vocab = build_vocabulary(clips, min_count=vocab_min_count)
    vocab.save(cache_dir / "vocab.json")
    writer = LmdbWriter(cache_dir / "features.lmdb", resume=True)
    done = writer.keys()
    if done:
        log.info("features: resuming, %d of %d clips already extracted", len(done), len(clips))
    seconds_audio, wall = 0.0, 0.0
    try:
        for key in tqdm(clips.keys, desc="features", disable=not progress):
            if key in done:
                continue
            record = clips[key]
            start = time.perf_counter()
            writer.put(key, clip_features(record, wavlm=wavlm, text=text, vocab=vocab, n_mfcc=n_mfcc))
            wall += time.perf_counter() - start
            seconds_audio += record["n_frames"] / record["fps"]
    except BaseException:
        writer.abort()
        raise
    stats = feature_stats(writer, [k for k, v in clips.meta["index"].items() if v["split"] in ("train", "additional")])
    report = {
        "clips": len(clips),
        "clips_resumed": len(done),
        "vocab_size": len(vocab),
        "oov_rate": vocab.oov_rate,
        "audio_seconds_extracted": seconds_audio,
        "realtime_factor": seconds_audio / max(wall, 1e-9),
        "wavlm_random_init": wavlm.random_init,
    }
    writer.seal({
        "stage": "features", "layout": FEATURES_LAYOUT, "wavlm": wavlm.source, "wavlm_random_init": wavlm.random_init,
        "text": text.source, "text_dim": text.dim, "wavlm_dim": wavlm.dim, "n_mfcc": n_mfcc, "vocab_size": len(vocab),
        "stats": stats,
    })
    return report
