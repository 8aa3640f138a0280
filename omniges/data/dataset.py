"""OmnigesDataset: fixed-length windows over the clip, feature and latent caches, with a padding collate.

A window of `length` motion frames (30 fps) gives `length / 4` gesture/text tokens (7.5 per second),
so every stream of one item covers the same seconds. Clips shorter than a window give one padded item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from omniges.data.body import PART_NAMES
from omniges.data.store import CacheError, LmdbReader

FRAMES_PER_TOKEN = 4


@dataclass(frozen=True)
class Window:
    clip_id: str
    start: int
    frames: int  # valid frames (< length only for a clip shorter than one window)


def window_starts(total: int, *, length: int, stride: int) -> np.ndarray:
    """Start frames of a clip's full windows; the last one is aligned to the clip's (token-cut) end."""
    usable = total - total % FRAMES_PER_TOKEN
    if usable < length:
        return np.zeros(0, np.int64)
    starts = np.arange(0, usable - length + 1, stride)
    last = (usable - length) // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN
    return starts if starts[-1] == last else np.append(starts, last)


def plan_windows(lengths: dict[str, int], *, length: int, stride: int) -> list[Window]:
    """Every window; a clip shorter than `length` gives one short window, so no frame is lost."""
    if length % FRAMES_PER_TOKEN:
        raise ValueError(f"window length {length} must be a multiple of {FRAMES_PER_TOKEN}")
    windows = []
    for clip_id, total in sorted(lengths.items()):
        usable = total - total % FRAMES_PER_TOKEN
        if FRAMES_PER_TOKEN <= usable <= length:
            windows.append(Window(clip_id, 0, usable))
        else:
            windows += [Window(clip_id, int(s), length) for s in window_starts(total, length=length, stride=stride)]
    return windows


class WindowSource:
    """Full windows of one array of a clip cache (e.g. 'parts/hands'), read on demand rather than materialised.

    `source[ids]` gives (len(ids), length, D) float32 windows, each read by slice from the cache: memory stays
    O(batch) whatever the corpus size (60 h of BEAT2 is ~1.6 M stride-4 windows). Window ids enumerate the
    windows of the clips of `splits` in clip order, as a stacked array of them would.
    """

    def __init__(
        self, clips: LmdbReader, *, splits: tuple[str, ...], length: int, stride: int, path: str,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        mean: np.ndarray | None = None, std: np.ndarray | None = None,
    ):
        index = clips.meta["index"]
        keys = sorted(k for k, v in index.items() if v["split"] in splits)
        starts = [window_starts(index[k]["n_frames"], length=length, stride=stride) for k in keys]
        self.clips, self.path, self.length, self.keys = clips, path, length, keys
        self.clip_of = np.repeat(np.arange(len(keys), dtype=np.int32), [len(s) for s in starts])
        self.start_of = np.concatenate(starts or [np.zeros(0, np.int64)]).astype(np.int64)
        if not len(self.start_of):
            raise ValueError(f"{clips.path}: no {length}-frame windows in splits {splits}")
        self.transform, self.mean, self.std = transform, mean, std

    def __len__(self) -> int:
        return len(self.start_of)

    def window(self, i: int) -> np.ndarray:
        clip, start = self.keys[self.clip_of[i]], int(self.start_of[i])
        values = self.clips.rows(clip, self.path, start, start + self.length)
        values = self.transform(values) if self.transform else values
        if self.mean is not None:
            values = (values - self.mean) / self.std
        return values.astype(np.float32)

    def __getitem__(self, ids) -> torch.Tensor:
        ids = np.asarray(ids).reshape(-1)
        return torch.from_numpy(np.stack([self.window(int(i)) for i in ids]))

    @property
    def width(self) -> int:
        return self.window(0).shape[-1]

    def subset(self, limit: int) -> np.ndarray:
        """At most `limit` windows, evenly spaced over the corpus (a bounded, fixed validation set)."""
        ids = np.unique(np.linspace(0, len(self) - 1, min(limit, len(self))).round().astype(np.int64))
        return self[ids].numpy()


def pool_tokens(frames: np.ndarray) -> np.ndarray:
    """(T, D) per-frame values -> (T/4, D) means over each 4-frame group."""
    return frames.reshape(-1, FRAMES_PER_TOKEN, frames.shape[-1]).mean(1)


def token_words(word_ids: np.ndarray) -> np.ndarray:
    """(T,) per-frame vocabulary ids -> (T/4,) the id at each group's second frame (its centre, rounded down)."""
    return word_ids.reshape(-1, FRAMES_PER_TOKEN)[:, FRAMES_PER_TOKEN // 2 - 1]


class BatchNormalizer:
    """Standardises a collated batch where it is (on the training device): float16 audio features and raw part
    targets become float32 `(x - mean) / std`, zero on padded frames, exactly what normalising each item would give."""

    def __init__(self, stats: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.stats = {key: (torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32))
                      for key, (mean, std) in stats.items()}
        self._on: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        valid = batch["frame_mask"][..., None].to(torch.float32)
        for key, (mean, std) in self.stats.items():
            if key not in batch:
                continue
            value = batch[key]
            if (key, value.device) not in self._on:
                self._on[key, value.device] = (mean.to(value.device), std.to(value.device))
            mean, std = self._on[key, value.device]
            out[key] = (value.to(torch.float32) - mean) / std * valid
        if "text" in batch:
            out["text"] = batch["text"].to(torch.float32)
        return out


class OmnigesDataset(Dataset):
    """Windows of one split: audio features, text features and word ids, gesture latents, codes and parts.

    With `raw=True` items keep the cache's float16 audio features and un-normalised part targets (half the bytes,
    no float work in loader workers); `normalizer()` then standardises each collated batch on the device."""

    def __init__(
        self, cache_dir: str | Path, *, split: str | list[str], length: int, stride: int,
        part_stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, with_parts: bool = True,
        raw: bool = False, speakers: list[int] | None = None,
    ):
        """`part_stats` normalise the part targets as the tokenizer does (default: the corpus's stats.npz).

        With `speakers` (the model's speaker list) items carry `speaker`, the index of the clip's speaker in it
        (-1, the unknown speaker, for one not in the list)."""
        self.raw = raw
        cache_dir = Path(cache_dir)
        splits = [split] if isinstance(split, str) else list(split)
        self.clips = LmdbReader(cache_dir / "clips.lmdb")
        self.features = LmdbReader(cache_dir / "features.lmdb")
        self.latents = LmdbReader(cache_dir / "latents.lmdb")
        self.with_parts = with_parts
        self.latent_scale = self.latents.meta["latent_scale"]
        if self.features.meta.get("layout") != "text-per-token":
            raise CacheError(f"{self.features.path}: written by an older Omniges (text per motion frame); "
                             "rerun the features stage")
        feature_stats = self.features.meta["stats"]
        self.audio_stats = {k: feature_stats[k] for k in ("wavlm_mean", "wavlm_std", "mfcc_mean", "mfcc_std")}
        if part_stats is None:
            stats = np.load(cache_dir / "stats.npz")
            part_stats = {name: (stats[f"{name}_mean"], stats[f"{name}_std"]) for name in PART_NAMES}
        self.stats = part_stats
        # (mean, std) of each standardised item key: in items (raw=False) or on the device (`normalizer`)
        self.item_stats = {name: (self.audio_stats[f"{name}_mean"], self.audio_stats[f"{name}_std"])
                           for name in ("wavlm", "mfcc")} | {f"part_{p}": part_stats[p] for p in PART_NAMES}
        index = self.clips.meta["index"]
        lengths = {
            key: info["n_frames"] for key, info in index.items()
            if info["split"] in splits and key in self.features and key in self.latents
        }
        self.has_text = {key: bool(self.features.field(key, "has_text")) for key in lengths}
        position = {speaker: i for i, speaker in enumerate(speakers or [])}
        self.speaker_index = {key: position.get(index[key].get("speaker"), -1) for key in lengths} \
            if speakers is not None else None
        self.length, self.lengths = length, lengths
        self.windows = plan_windows(lengths, length=length, stride=stride)
        if not self.windows:
            raise ValueError(f"{cache_dir}: no windows for split {splits}")

    def __len__(self) -> int:
        return len(self.windows)

    def read(self, clip: str, a: int, b: int) -> dict[str, np.ndarray]:
        """The raw arrays of frames [a, b) of `clip` (tokens [a/4, b/4)), each read by slice: O(window)."""
        ta, tb = a // FRAMES_PER_TOKEN, b // FRAMES_PER_TOKEN
        feats, lat = self.features, self.latents
        arrays = {
            "wavlm": feats.rows(clip, "wavlm", a, b),
            "mfcc": feats.rows(clip, "mfcc", a, b),
            "text": feats.rows(clip, "text", ta, tb),
            "word_ids": feats.rows(clip, "word_ids", ta, tb).astype(np.int64),
            "gesture": np.concatenate(
                [lat.rows(clip, f"latents/{p}", ta, tb) / self.latent_scale[p] for p in PART_NAMES], -1
            ).astype(np.float32),
            "codes": np.stack([lat.rows(clip, f"codes/{p}", ta, tb) for p in PART_NAMES], 1).astype(np.int64),
        }
        if self.with_parts:
            for part in PART_NAMES:
                arrays[f"part_{part}"] = self.clips.rows(clip, f"parts/{part}", a, b)
        return arrays

    def __getitem__(self, index: int) -> dict[str, np.ndarray | str | int]:
        window = self.windows[index]
        clip = window.clip_id
        item: dict[str, np.ndarray | str | int] = {
            "clip_id": clip, "start": window.start, **self.read(clip, window.start, window.start + window.frames),
            "has_text": np.bool_(self.has_text[clip]),
        }
        if self.speaker_index is not None:
            item["speaker"] = np.int64(self.speaker_index[clip])
        if not self.raw:
            for key, (mean, std) in self.item_stats.items():
                if key in item:
                    item[key] = ((item[key].astype(np.float32) - mean) / std).astype(np.float32)
            item["text"] = item["text"].astype(np.float32)
        return item

    def normalizer(self) -> BatchNormalizer:
        """What standardises this dataset's raw batches on the device (the item statistics, as tensors)."""
        return BatchNormalizer(self.item_stats)


def corpus_speakers(clips: LmdbReader, splits: list[str]) -> list[int]:
    """The sorted speaker ids of a clip cache's clips in `splits` (preprocess records each clip's speaker)."""
    index = clips.meta["index"]
    return sorted({info["speaker"] for info in index.values() if info["split"] in splits and "speaker" in info})


TOKEN_KEYS = ("text", "word_ids", "gesture", "codes", "token_mask")  # 7.5 per second; everything else is 30 fps


def crop_batch(batch: dict[str, Any], start: int, num_tokens: int) -> dict[str, Any]:
    """Every time axis of a collated batch cut to tokens [start, start + num_tokens) (frames 4x that)."""
    a, b = start * FRAMES_PER_TOKEN, (start + num_tokens) * FRAMES_PER_TOKEN
    out = dict(batch, start=batch["start"] + a)
    for key, value in batch.items():
        if key in ("clip_id", "start") or not isinstance(value, torch.Tensor) or value.ndim < 2:
            continue
        out[key] = value[:, start : start + num_tokens] if key in TOKEN_KEYS else value[:, a:b]
    return out


def collate(items: list[dict]) -> dict[str, torch.Tensor | list]:
    """Pad every time axis to the longest item; `frame_mask` (30 fps) and `token_mask` (7.5 fps) mark valid steps."""
    frames = max(len(item["mfcc"]) for item in items)
    tokens = frames // FRAMES_PER_TOKEN
    batch: dict[str, torch.Tensor | list] = {
        "clip_id": [item["clip_id"] for item in items],
        "start": torch.tensor([item["start"] for item in items]),
    }
    for key in items[0]:
        if key in ("clip_id", "start"):
            continue
        values = [np.asarray(item[key]) for item in items]
        if values[0].ndim == 0:
            batch[key] = torch.from_numpy(np.stack(values))
            continue
        target = tokens if key in ("text", "word_ids", "gesture", "codes") else frames
        padded = np.zeros((len(values), target, *values[0].shape[1:]), dtype=values[0].dtype)
        for i, value in enumerate(values):
            padded[i, : len(value)] = value
        batch[key] = torch.from_numpy(padded)
    lengths = torch.tensor([len(item["mfcc"]) for item in items])
    batch["frame_mask"] = torch.arange(frames)[None] < lengths[:, None]
    batch["token_mask"] = torch.arange(tokens)[None] < (lengths // FRAMES_PER_TOKEN)[:, None]
    return batch
