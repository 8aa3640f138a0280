"""Bootstrap CIs over clips, per-clip gesture stats and the train-clip random baseline (omniges.evaluation.report)."""

import numpy as np
import pytest
import torch

from omniges.evaluation import report
from omniges.evaluation.evaluator import VAESKConv
from omniges.evaluation.metrics import bootstrap_ci


def test_bootstrap_ci_of_a_mean_matches_the_normal_interval_and_is_seeded():
    values = np.random.default_rng(1).normal(3.0, 2.0, 200)
    score = lambda index: {"mean": float(values[index].mean())}  # noqa: E731
    (lo, hi), = bootstrap_ci(score, len(values), resamples=1000, seed=0).values()
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert lo < values.mean() < hi and abs((hi - lo) / 2 - half) < 0.15 * half
    assert bootstrap_ci(score, len(values), resamples=50, seed=3) == bootstrap_ci(score, len(values), resamples=50,
                                                                                  seed=3)
    assert bootstrap_ci(score, len(values), resamples=0) == {}


def _clip(rng, frames: int) -> report.Motion:
    poses = rng.normal(0, 0.2, (frames, 165)).cumsum(0) * 0.05
    return report.Motion(poses, rng.normal(0, 1, (frames, 100)), None, rng.normal(0, 0.1, frames * 16000 // 30))


def test_gesture_stats_score_all_clips_as_gesture_metrics_did_and_resamples_differ():
    rng = np.random.default_rng(0)
    refs, cands = [_clip(rng, 240) for _ in range(3)], [_clip(rng, 240) for _ in range(3)]
    torch.manual_seed(0)
    kwargs = {"evaluator": VAESKConv().eval(), "mean_vel": np.ones(55)}
    stats = report.gesture_stats(refs, cands, **kwargs)
    whole = stats.score()
    assert {"fgd", "l1div", "bc", "sync_z", "face_mse_expressions", "acc_l1"} <= set(whole)
    from omniges.evaluation import metrics

    joints = [report.fk_no_translation(m.poses) for m in cands]
    assert whole["l1div"] == pytest.approx(metrics.l1_diversity(joints))
    assert stats.score(np.array([0, 0, 1]))["l1div"] != whole["l1div"]
    assert stats.score(np.arange(3))["fgd"] == pytest.approx(whole["fgd"], rel=1e-4)  # fgd_eig = EMAGE's fgd
    ci = bootstrap_ci(stats.score, len(stats), resamples=30)
    assert all(lo - 1e-4 * abs(lo) <= whole[k] <= hi + 1e-4 * abs(hi) for k, (lo, hi) in ci.items())


def test_random_clip_baseline_draws_from_the_pool_cut_to_length():
    rng = np.random.default_rng(0)
    refs = [_clip(rng, 100), _clip(rng, 50)]
    pool = [_clip(rng, 70)]
    out = report.random_clip_baseline(refs, pool)
    assert [len(m.poses) for m in out] == [100, 50]
    np.testing.assert_array_equal(out[1].poses, pool[0].poses[:50])
    np.testing.assert_array_equal(out[0].poses[70:], pool[0].poses[:30])


def test_fgd_interval_brackets_its_point_estimate_and_the_truth_on_gaussian_sets():
    """Two Gaussian latent sets whose Frechet distance is known (|mu|^2 = 1, equal covariances): the clip bootstrap
    of FGD is bias-corrected, so the point estimate sits inside its interval, away from both edges (the plain
    percentile interval had the point at its lower edge), and the interval covers the true distance."""
    from omniges.evaluation import metrics

    rng = np.random.default_rng(0)
    shift = np.zeros(8)
    shift[0] = 1.0
    real = [rng.normal(0, 1, (20, 8)) for _ in range(24)]
    gen = [rng.normal(0, 1, (20, 8)) + shift for _ in range(24)]

    def score(index):
        return {"fgd": metrics.fgd_eig(np.concatenate([real[i] for i in index]),
                                       np.concatenate([gen[i] for i in index]))}

    point = score(np.arange(24))["fgd"]
    (lo, hi), = bootstrap_ci(score, 24, resamples=400, seed=0).values()
    assert lo + 0.25 * (hi - lo) < point < hi - 0.25 * (hi - lo)
    assert lo < 1.0 < hi
    (plain_lo, _), = bootstrap_ci(score, 24, resamples=400, seed=0, set_metrics=()).values()
    assert plain_lo > lo  # without the correction the interval sits above (the bias it removes)
