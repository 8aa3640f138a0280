"""The T2G iconic-gesture check scores the embedded corpus's own motion high, still motion zero; its interval is a
bootstrap over clips."""

import numpy as np

from omniges.data import synthetic
from omniges.evaluation.iconic import iconic_hit_ci, iconic_hit_rate


def test_iconic_hit_rate_on_synthetic_clips():
    style = synthetic.speaker_styles(4)[0]
    clip_id = f"{style.speaker_id}_{style.name}_0_1_1"
    clips = [synthetic.synthesize_clip(style, seconds=20.0, seed=s) for s in range(3)]
    ids, poses, words = [clip_id] * 3, [c.poses for c in clips], [c.words for c in clips]
    assert iconic_hit_rate(ids, poses, words) > 0.8
    still = [np.repeat(p[:1], len(p), 0) for p in poses]
    assert iconic_hit_rate(ids, still, words) == 0.0
    assert iconic_hit_rate(["9_nobody_0_1_1"], poses[:1], words[:1]) is None  # not an embedded-corpus clip


def test_iconic_hit_interval_is_a_bootstrap_over_clips():
    style = synthetic.speaker_styles(4)[0]
    clip_id = f"{style.speaker_id}_{style.name}_0_1_1"
    clips = [synthetic.synthesize_clip(style, seconds=20.0, seed=s) for s in range(4)]
    ids, words = [clip_id] * 4, [c.words for c in clips]
    # two clips with their own motion, two held still: the pooled rate sits inside a wide interval
    poses = [c.poses if i < 2 else np.repeat(c.poses[:1], len(c.poses), 0) for i, c in enumerate(clips)]
    rate = iconic_hit_rate(ids, poses, words)
    lo, hi = iconic_hit_ci(ids, poses, words, resamples=500)
    assert 0.0 <= lo < rate < hi <= 1.0 and hi - lo > 0.3
    assert iconic_hit_ci(ids, poses, words, resamples=500) == [lo, hi]  # seeded
    still = [np.repeat(p[:1], len(p), 0) for p in poses]
    assert iconic_hit_ci(ids, still, words, resamples=200) == [0.0, 0.0]
    assert iconic_hit_ci(["9_nobody_0_1_1"], poses[:1], words[:1]) is None
