"""ResidentWindows: a training split held on the training device, batches gathered there (no loader in the loop).

At full size a training sample is ~1.4 MB (WavLM 768 and MFCC 128 per frame, the four parts, text per token):
a GPU consumes ~1000 samples/s, which a CPU loader reading windows from the caches cannot deliver 20 times over.
A split is much smaller than a GPU's memory (BEAT2 speaker 2: ~1 GB; all 60 h: ~26 GB), so it is read once,
each array of every clip concatenated into one tensor per key on the device, and a batch is one gather per key:
`table[offset[clip] + start + arange(frames)]`. The batch equals `collate([dataset[i] for i in ids])` bit for
bit (the same raw values, the same zero padding and masks), so resume and step-for-step equality with the
streamed DataLoader path hold. `training.common.data_on_device` chooses it (auto: on a GPU, when the split
fits in `resident_max_fraction` of its memory).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch

from omniges.data.dataset import FRAMES_PER_TOKEN, OmnigesDataset

log = logging.getLogger(__name__)

TOKEN_RATE = ("text", "word_ids", "gesture", "codes")


def resident_bytes(dataset: OmnigesDataset) -> int:
    """Bytes the split's tables will take on the device, from the cache's array shapes (nothing is read)."""
    clip = next(iter(dataset.lengths))
    sample = dataset.read(clip, 0, FRAMES_PER_TOKEN)
    per_frame = sum(v.nbytes // max(1, len(v)) for k, v in sample.items() if k not in TOKEN_RATE)
    per_token = sum(v.nbytes // max(1, len(v)) for k, v in sample.items() if k in TOKEN_RATE)
    frames = sum(n - n % FRAMES_PER_TOKEN for n in dataset.lengths.values())
    return frames * per_frame + frames // FRAMES_PER_TOKEN * per_token


def data_on_device_setting(value: str | bool) -> str:
    """`training.common.data_on_device` as 'auto', 'true' or 'false' (YAML may give a bool); anything else is an error."""
    setting = str(value).lower()
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"training.data_on_device must be auto, true or false, got {value!r}")
    return setting


def use_resident(setting: str | bool, dataset: OmnigesDataset, device: torch.device, max_fraction: float) -> bool:
    """`data_on_device`: true / false, or auto = on a CUDA device when the split fits in `max_fraction` of it."""
    setting = data_on_device_setting(setting)
    if setting != "auto":
        return setting == "true"
    if device.type != "cuda":
        return False  # on a CPU the split would be held in RAM: stream it (memory stays O(batch))
    need, total = resident_bytes(dataset), torch.cuda.get_device_properties(device).total_memory
    if need > max_fraction * total:
        log.info("data_on_device auto: the split needs %.1f GB, over %.0f%% of the GPU's %.1f GB: streaming it",
                 need / 1e9, 100 * max_fraction, total / 1e9)
        return False
    return True


class ResidentWindows:
    """The windows of `dataset` (its clips, its window plan) with every array on `device`; `batch(ids)` gathers."""

    def __init__(self, dataset: OmnigesDataset, device: torch.device | str = "cpu"):
        self.dataset, self.device = dataset, torch.device(device)
        clips = sorted(dataset.lengths)
        row = {clip: i for i, clip in enumerate(clips)}
        tables: dict[str, list[np.ndarray]] = {}
        frame_offsets, token_offsets, frames_at, tokens_at = [], [], 0, 0
        for clip in clips:  # each clip read once, whole
            usable = dataset.lengths[clip] - dataset.lengths[clip] % FRAMES_PER_TOKEN
            arrays = dataset.read(clip, 0, usable)
            frame_offsets.append(frames_at)
            token_offsets.append(tokens_at)
            for key, value in arrays.items():
                expected = usable // FRAMES_PER_TOKEN if key in TOKEN_RATE else usable
                if len(value) < expected:
                    raise ValueError(f"{dataset.clips.path}: clip {clip!r} has {len(value)} rows of {key!r}, "
                                     f"fewer than its {expected}")
                tables.setdefault(key, []).append(value[:expected])
            frames_at, tokens_at = frames_at + usable, tokens_at + usable // FRAMES_PER_TOKEN
        self.tables = {key: torch.from_numpy(np.concatenate(values)).to(self.device)
                       for key, values in tables.items()}
        windows = dataset.windows
        self.clip_ids = [w.clip_id for w in windows]
        self.starts = torch.tensor([w.start for w in windows], dtype=torch.int64)
        frames = torch.tensor([w.frames for w in windows], dtype=torch.int64, device=self.device)
        clip_rows = torch.tensor([row[w.clip_id] for w in windows], dtype=torch.int64)
        self.frames = frames
        self.frame_base = (torch.tensor(frame_offsets)[clip_rows] + self.starts).to(self.device)
        self.token_base = (torch.tensor(token_offsets)[clip_rows] + self.starts // FRAMES_PER_TOKEN).to(self.device)
        self.has_text = torch.tensor([bool(dataset.has_text[w.clip_id]) for w in windows], device=self.device)
        self.speaker = None if dataset.speaker_index is None else torch.tensor(
            [dataset.speaker_index[w.clip_id] for w in windows], dtype=torch.int64, device=self.device)
        self.normalize = None if dataset.raw else dataset.normalizer()

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tables.values())

    def batch(self, indices: Iterable[int]) -> dict[str, torch.Tensor | list]:
        """What `collate([dataset[i] for i in indices])` gives, gathered on the device."""
        ids = torch.as_tensor(list(indices), dtype=torch.int64)
        on = ids.to(self.device)
        lengths = self.frames[on]
        frames = int(lengths.max())
        tokens = frames // FRAMES_PER_TOKEN
        frame_mask = torch.arange(frames, device=self.device)[None] < lengths[:, None]
        token_mask = torch.arange(tokens, device=self.device)[None] < (lengths // FRAMES_PER_TOKEN)[:, None]
        frame_rows = self.frame_base[on, None] + torch.arange(frames, device=self.device)
        token_rows = self.token_base[on, None] + torch.arange(tokens, device=self.device)
        padded = not bool(frame_mask.all())  # only a clip shorter than the window pads
        if padded:  # padded steps gather row 0 and are zeroed, as collate's zero padding
            frame_rows, token_rows = frame_rows.where(frame_mask, 0), token_rows.where(token_mask, 0)
        batch: dict[str, torch.Tensor | list] = {"clip_id": [self.clip_ids[i] for i in ids.tolist()],
                                                 "start": self.starts[ids]}
        for key, table in self.tables.items():
            token = key in TOKEN_RATE
            values = table[token_rows if token else frame_rows]
            if padded:
                mask = (token_mask if token else frame_mask).view(*values.shape[:2], *[1] * (values.ndim - 2))
                values = values.where(mask, torch.zeros((), dtype=values.dtype, device=self.device))
            batch[key] = values
        batch["has_text"] = self.has_text[on]
        if self.speaker is not None:
            batch["speaker"] = self.speaker[on]
        batch["frame_mask"], batch["token_mask"] = frame_mask, token_mask
        return self.normalize(batch) if self.normalize else batch
