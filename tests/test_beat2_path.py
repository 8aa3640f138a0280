"""The BEAT2 user's path: a BEAT2-layout root of real clips, switched to with `omniges params set`, run end to end.

The root is cut from the bundled real clip (speaker 2): seven 8 s clips over train / val / test, one corrupt npz and
one clip whose wav is missing. The fast test runs preprocess and features in-process; the slow one runs Snakemake
with the local profile through evaluate and render, as the README tells a BEAT2 user to.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_corpus

from omniges import pipeline
from omniges.cli import main
from omniges.config import load_params

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
CLIPS = {"2_scott_0_1_1": ("train", 0), "2_scott_0_2_2": ("train", 240), "2_scott_0_3_3": ("train", 480),
         "2_scott_0_4_4": ("additional", 720), "2_scott_0_5_5": ("val", 960), "2_scott_0_6_6": ("test", 1200),
         "2_scott_0_7_7": ("test", 1440)}
TINY = {  # tiny step counts and sizes (as tests/test_pipeline_e2e.py), set the way a user would
    "features.wavlm.config": "tiny", "rvqvae.train.steps": "4", "rvqvae.train.batch_size": "8",
    "rvqvae.model.width": "32", "evaluation.evaluator.steps": "2", "model.overrides.depth": "1",
    "training.common.batch_size": "4", "training.common.val_every": "3", "training.common.checkpoint_every": "3",
    "render.clips": "1", "render.seconds": "2.0", "render.size": "96", "generation.steps": "1",
    "evaluation.bootstrap": "50", "training.experiments.a2g.steps": "2", "data.workers": "1",
}
STAGES = {"synthesize", "preprocess", "features", "rvqvae_upper", "rvqvae_hands", "rvqvae_lower_trans", "rvqvae_face",
          "cache_latents", "train_evaluator", "train_a2g", "evaluate_a2g", "render_a2g"}


def beat2_root(path: Path) -> Path:
    """Seven real clips in BEAT2's layout, plus a corrupt npz and a clip without its wav (both listed in the csv)."""
    root = make_corpus(path, {**CLIPS, "2_scott_0_8_8": ("train", 0), "2_scott_0_9_9": ("train", 0)})
    (root / "smplxflame_30" / "2_scott_0_8_8.npz").write_bytes(b"PK\x03\x04 not a zip: cut off mid-copy")
    (root / "wave16k" / "2_scott_0_9_9.wav").unlink()
    shutil.rmtree(root / "textgrid")  # the bundled clip has no transcript: text is optional
    return root


def switch_to_beat2(params: Path, root: Path, tiny: bool = True) -> None:
    """`omniges params set data.source=beat2 data.beat2_root=... data.speakers=[2]`, as the README says."""
    assignments = {"data.source": "beat2", "data.beat2_root": str(root), "data.speakers": "[2]",
                   **(TINY if tiny else {})}
    result = CliRunner().invoke(main, ["params", "set", "--file", str(params),
                                       *(f"{k}={v}" for k, v in assignments.items())])
    assert result.exit_code == 0, result.output


def assert_counted_skips(report: dict, root: Path) -> None:
    assert report["clips_selected"] == 9 and report["clips_written"] == 7 and report["clips_skipped"] == 2
    reasons = {item["id"]: item["reason"] for item in report["skipped"]}
    assert reasons["2_scott_0_8_8"].startswith(f"{root / 'smplxflame_30' / '2_scott_0_8_8.npz'}: corrupt")
    assert reasons["2_scott_0_9_9"] == f"{root / 'wave16k' / '2_scott_0_9_9.wav'}: audio file not found"
    assert all("\n" not in reason for reason in reasons.values())
    assert report["splits"] == {"train": 3, "additional": 1, "val": 1, "test": 2}


def test_preprocess_and_features_read_a_beat2_root_of_real_clips(tmp_path, monkeypatch):
    """The fast twin of the Snakemake run below: the same root and switch, the first two stages in-process."""
    from omniges.data.store import LmdbReader

    root = beat2_root(tmp_path / "beat_english_v2.0.0")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    switch_to_beat2(work / "params.yaml", root)
    monkeypatch.chdir(work)
    params = load_params("params.yaml")
    assert params.data.source == "beat2" and params.data.speakers == [2]
    report = pipeline.preprocess(params)
    assert_counted_skips(report, root)
    assert json.loads(Path("data/cache/preprocess_report.json").read_text()) == report
    assert 55 < report["hours"] * 3600 < 57  # seven 8 s clips of real motion
    features = pipeline.features(params)
    assert features["device"] == "cpu"
    index = LmdbReader("data/cache/clips.lmdb").meta["index"]
    feats = LmdbReader("data/cache/features.lmdb")
    assert sorted(index) == sorted(CLIPS) and sorted(feats.keys) == sorted(CLIPS)
    for clip in CLIPS:
        assert index[clip]["n_frames"] == 240 and feats.rows(clip, "wavlm", 0, 240).shape == (240, 768)


def venv_env(**extra: str) -> dict[str, str]:
    """The stages' shell commands call `python`: this environment's; MLflow on, as for a user."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMNIGES_TRACKING": "1", **extra}


@pytest.mark.slow
def test_a_beat2_user_runs_evaluate_and_render_of_a2g_with_the_local_profile(tmp_path):
    """README's BEAT2 path on real clips: 7 clips written, 2 counted skips, a2g alone trained, metrics, a video."""
    import mlflow

    from omniges.render.video import probe_media

    root = beat2_root(tmp_path / "beat_english_v2.0.0")
    work = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")  # this tree's schema and params, not the last commit's
    switch_to_beat2(work / "params.yaml", root)
    done = subprocess.run([str(BIN / "snakemake"), "--profile", "workflow/profiles/local", "-j1", "evaluate_a2g",
                           "render_a2g"], cwd=work, capture_output=True, text=True, env=venv_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_counted_skips(json.loads((work / "data/cache/preprocess_report.json").read_text()), root)
    assert sorted(p.name for p in (work / "results/models").iterdir()) == ["a2g"]  # only what was asked
    metrics = json.loads((work / "results/metrics/a2g.json").read_text())
    a2g = metrics["tasks"]["a2g"]
    assert {"generated", "ground_truth", "random_clip", "mean_pose"} <= set(a2g)
    assert a2g["ground_truth"]["l1div"] > 0 and a2g["random_clip"]["fgd"] > a2g["ground_truth"]["fgd"]
    videos = sorted((work / "results/videos/a2g").glob("*.mp4"))
    assert videos and probe_media(videos[0])["has_audio"]
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["omniges"], output_format="list")
    names = sorted(run.info.run_name for run in runs)
    assert sorted(STAGES) == names, names  # one run per stage, none for an experiment nobody asked for
