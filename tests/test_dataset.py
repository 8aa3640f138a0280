"""Collate padding/masks and the random-length training crop."""

from __future__ import annotations

import numpy as np
import torch

from omniges.data.dataset import collate, crop_batch
from omniges.training.generator import random_crop


def item(frames: int, start: int = 0) -> dict:
    """A dataset item of `frames` 30 fps frames (frames / 4 tokens); values encode their own frame index."""
    t = np.arange(frames, dtype=np.float32)
    tokens = frames // 4
    return {
        "clip_id": f"c{frames}", "start": start,
        "wavlm": np.repeat(t[:, None], 3, 1), "mfcc": np.repeat(t[:, None], 2, 1),
        "text": np.repeat(np.arange(tokens, dtype=np.float32)[:, None], 5, 1),
        "word_ids": np.arange(tokens), "has_text": np.bool_(True),
        "gesture": np.repeat(np.arange(tokens, dtype=np.float32)[:, None], 8, 1),
        "codes": np.zeros((tokens, 4, 2), np.int64), "part_upper": np.repeat(t[:, None], 6, 1),
    }


def test_collate_pads_to_the_longest_item_and_masks_both_rates():
    batch = collate([item(32), item(16)])
    assert batch["mfcc"].shape == (2, 32, 2) and batch["gesture"].shape == (2, 8, 8)
    assert batch["frame_mask"].sum(1).tolist() == [32, 16] and batch["token_mask"].sum(1).tolist() == [8, 4]
    assert batch["mfcc"][1, 16:].abs().sum() == 0 and batch["has_text"].tolist() == [True, True]


def test_crop_keeps_frames_and_tokens_aligned():
    batch = crop_batch(collate([item(64, start=100), item(64)]), start=3, num_tokens=5)
    assert batch["gesture"].shape == (2, 5, 8) and batch["mfcc"].shape == (2, 20, 2)
    assert batch["codes"].shape == (2, 5, 4, 2) and batch["part_upper"].shape == (2, 20, 6)
    assert batch["token_mask"].shape == (2, 5) and batch["frame_mask"].shape == (2, 20)
    assert batch["gesture"][0, :, 0].tolist() == [3, 4, 5, 6, 7]
    assert batch["mfcc"][0, :, 0].tolist() == list(range(12, 32))  # token k <-> frames 4k .. 4k + 3
    assert batch["start"].tolist() == [112, 12] and batch["has_text"].shape == (2,)


def test_random_crop_lengths_cover_the_range_and_are_seeded():
    batch = collate([item(96), item(96)])
    lengths = set()
    for seed in range(60):
        a = random_crop(batch, 4, torch.Generator().manual_seed(seed))
        b = random_crop(batch, 4, torch.Generator().manual_seed(seed))
        assert torch.equal(a["gesture"], b["gesture"]) and torch.equal(a["wavlm"], b["wavlm"])
        n = a["gesture"].shape[1]
        assert 4 <= n <= 24 and a["wavlm"].shape[1] == 4 * n
        assert a["wavlm"][0, 0, 0] == 4 * a["gesture"][0, 0, 0]  # same instant
        lengths.add(n)
    assert min(lengths) <= 6 and max(lengths) >= 22
    assert random_crop(batch, 24, torch.Generator())["gesture"].shape[1] == 24  # min = window: unchanged


def test_random_crop_with_a_token_budget_keeps_fewer_samples_of_longer_crops():
    batch = collate([item(96) for _ in range(8)])
    for seed in range(30):
        out = random_crop(batch, 4, torch.Generator().manual_seed(seed), batch_tokens=48)
        n = out["gesture"].shape[1]
        assert out["gesture"].shape[0] == out["mfcc"].shape[0] == len(out["clip_id"]) == min(8, max(1, 48 // n))
