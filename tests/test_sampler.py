"""MultiTaskSampler ratios, determinism and windows planning."""

from collections import Counter

import pytest

from omniges.data.dataset import plan_windows
from omniges.data.sampler import MultiTaskSampler

RATIOS = {"t2g": 0.3, "a2g": 0.3, "g2t": 0.2, "g2a": 0.2}


def test_probability_mode_matches_ratios_and_is_deterministic():
    sampler = MultiTaskSampler(RATIOS, mode="probability", seed=3)
    counts = Counter(sampler.task_at(step) for step in range(20000))
    for task, ratio in RATIOS.items():
        assert abs(counts[task] / 20000 - ratio) < 0.015
    again = MultiTaskSampler(RATIOS, mode="probability", seed=3)
    assert [sampler.task_at(s) for s in range(100)] == [again.task_at(s) for s in range(100)]
    other = MultiTaskSampler(RATIOS, mode="probability", seed=4)
    assert [sampler.task_at(s) for s in range(100)] != [other.task_at(s) for s in range(100)]


def test_round_robin_is_exact_per_cycle():
    sampler = MultiTaskSampler(RATIOS, mode="round_robin")
    assert len(sampler.cycle) == 10
    assert Counter(sampler.task_at(s) for s in range(10)) == {"t2g": 3, "a2g": 3, "g2t": 2, "g2a": 2}
    assert sampler.task_at(0) != sampler.task_at(1)  # interleaved, not blocks


def test_single_task_and_errors():
    assert {MultiTaskSampler({"a2g": 1.0}).task_at(s) for s in range(50)} == {"a2g"}
    with pytest.raises(ValueError, match="unknown tasks"):
        MultiTaskSampler({"x2y": 1.0})
    with pytest.raises(ValueError, match="positive"):
        MultiTaskSampler({"a2g": 0.0})


def test_windows_cover_clip_end_and_short_clips():
    windows = plan_windows({"a": 300, "b": 50, "c": 2}, length=128, stride=64)
    starts = [w.start for w in windows if w.clip_id == "a"]
    assert starts == [0, 64, 128, 172] and all(w.frames == 128 for w in windows if w.clip_id == "a")
    assert [(w.start, w.frames) for w in windows if w.clip_id == "b"] == [(0, 48)]
    assert not [w for w in windows if w.clip_id == "c"]
    with pytest.raises(ValueError, match="multiple of 4"):
        plan_windows({"a": 100}, length=30, stride=10)
