"""End to end: every stage of the pipeline on a tiny embedded corpus, then the CLI on its outputs.

The fast test calls the stage functions in-process with tiny settings (about a minute on 2 cores); the slow
one runs the real Snakemake DAG (`-m slow`).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from omniges import pipeline
from omniges.cli import main
from omniges.config import load_params
from omniges.data.body import PART_NAMES

ROOT = Path(__file__).parents[1]
TINY = {
    "data.synthetic.speakers": 2, "data.synthetic.clips_per_speaker": 4, "data.synthetic.clip_seconds": 8.0,
    "features.wavlm.config": "tiny", "rvqvae.train.steps": 4, "rvqvae.train.batch_size": 8,
    "rvqvae.model.width": 32, "evaluation.evaluator.steps": 2, "model.overrides": {"depth": 1},
    "training.common.batch_size": 4, "training.common.val_every": 3, "training.common.checkpoint_every": 3,
    "render.clips": 1, "render.seconds": 2.0, "render.size": 96, "generation.steps": 1, "evaluation.bootstrap": 50,
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline")
    shutil.copy(ROOT / "params.yaml", path / "params.yaml")
    return path


def test_every_stage_runs_and_the_cli_uses_its_outputs(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    params = load_params("params.yaml", TINY)
    assert pipeline.synthesize(params)["clips"] == 8
    assert pipeline.preprocess(params)["clips_written"] == 8
    features = pipeline.features(params)
    assert features["wavlm_random_init"] is True and features["device"] == "cpu"
    for part in PART_NAMES:
        assert np.isfinite(pipeline.rvqvae(params, part)["val_report_l1"])
    face = json.loads(Path("results/rvqvae/face.json").read_text())["metrics"]
    assert -1.0 <= face["val_report_jaw_r"] <= 1.0  # the jaw's reconstruction is reported
    assert json.loads(Path("results/rvqvae/upper.json").read_text())["metrics"]["device"] == "cpu"
    latents = pipeline.cache_latents(params)
    assert set(latents["latent_scale"]) == set(PART_NAMES) and latents["device"] == "cpu"
    assert pipeline.train_evaluator(params)["device"] == "cpu"
    experiment = {"steps": 3, "tasks": {"a2g": 0.4, "t2g": 0.2, "g2t": 0.2, "g2a": 0.2}}
    params = load_params("params.yaml", {**TINY, "training.experiments": {"multitask": experiment}})
    summary = pipeline.train(params, "multitask")
    assert summary["steps"] == 3 and Path("results/models/multitask/model.pt").is_file()
    assert json.loads(Path("results/models/multitask/train_metrics.json").read_text())["summary"]["device"] == "cpu"
    results = pipeline.evaluate(params, "multitask")
    assert set(results["tasks"]) == {"a2g", "t2g", "g2t", "g2a"}
    a2g = results["tasks"]["a2g"]
    assert {"generated", "generated_seeded", "ground_truth", "random_clip", "mean_pose"} <= set(a2g)
    assert a2g["ground_truth"]["l1div"] > 1.0 > 1e-9 > a2g["mean_pose"]["l1div"]
    # chance is a real level: train clips against the test clips, not the test clips reordered (FGD 0 by construction)
    assert a2g["random_clip"]["fgd"] > 1e-3 > a2g["ground_truth"]["fgd"]
    assert a2g["generated_seeded"]["fgd"] != a2g["generated"]["fgd"]
    # a tiny model beats chance where a few steps can: the face close to the speaker's, not another clip's
    for row in ("generated", "generated_seeded"):
        assert a2g[row]["face_mse_expressions"] < a2g["random_clip"]["face_mse_expressions"]
    metrics = json.loads(Path("results/metrics/multitask.json").read_text())
    assert metrics["device"] == "cpu" and metrics["split"] == "test" and metrics["seed_frames"] == 16
    for task, rows in metrics["tasks"].items():
        intervals = metrics["ci"][task]["generated"]
        assert set(intervals) == set(rows["generated"]), task  # every generated metric has its interval
        for key, (lo, hi) in intervals.items():
            assert lo - 1e-4 * abs(lo) <= rows["generated"][key] <= hi + 1e-4 * abs(hi), (task, key)
    assert set(metrics["ci"]["a2g"]["generated_seeded"]) == set(metrics["ci"]["a2g"]["generated"])
    g2t = metrics["tasks"]["g2t"]
    assert {"generated", "mismatched_motion", "random_clip", "frequent_words", "unigram_sample"} <= set(g2t)
    assert 0 <= g2t["generated"]["word_accuracy"] <= 1 and 0 <= g2t["generated"]["word_f1"] <= 1
    g2a = metrics["tasks"]["g2a"]
    assert {"generated", "mismatched_motion", "nn_retrieval", "random_clip", "mean_audio"} <= set(g2a)
    assert {"voicing_agreement", "openness_corr", "envelope_corr"} <= set(g2a["nn_retrieval"])
    assert "[" in Path("results/metrics/multitask_a2g.md").read_text()  # the table shows the intervals
    videos = pipeline.render(params, "multitask")
    assert len(videos) == 4 and all(v.stat().st_size > 0 for v in videos)
    assert {v["device"] for v in json.loads(Path("results/videos/multitask/index.json").read_text())} == {"cpu"}

    runner = CliRunner()
    wav = next(Path("data/synthetic/wave16k").glob("*.wav"))
    result = runner.invoke(main, ["generate", "--audio", str(wav), "--out", "talk.mp4", "--npz", "talk.npz",
                                  "--bvh", "talk.bvh", "--steps", "1"])
    assert result.exit_code == 0, result.output
    from omniges.data.beat2 import read_motion
    from omniges.render.video import probe_media

    motion = read_motion("talk.npz")
    media = probe_media("talk.mp4")
    bvh = Path("talk.bvh").read_text()
    assert bvh.startswith("HIERARCHY") and f"Frames: {len(motion['poses'])}" in bvh
    assert media["has_audio"] and abs(media["duration_video"] - len(motion["poses"]) / 30) < 0.1
    assert runner.invoke(main, ["transcribe", "--motion", "talk.npz"]).exit_code == 0
    assert runner.invoke(main, ["voice", "--motion", "talk.npz", "--out", "v.wav"]).exit_code == 0
    bad = runner.invoke(main, ["generate", "--audio", str(wav), "--out", "missing/dir/x.mp4"])
    assert bad.exit_code != 0 and "does not exist" in bad.output and not Path("missing").exists()
    untrained = runner.invoke(main, ["generate", "--audio", str(wav), "--out", "y.mp4", "--checkpoint", "none.pt"])
    assert untrained.exit_code != 0 and "snakemake" in untrained.output and not Path("y.mp4").exists()
    other = runner.invoke(main, ["transcribe", "--motion", str(wav)])
    assert other.exit_code != 0 and "corrupt or truncated npz" in other.output


def tiny_clone(tmp_path: Path) -> Path:
    """A git clone of this repository with the tiny settings written into its params.yaml."""
    work = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for key, value in TINY.items():
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    for experiment in params["training"]["experiments"].values():
        experiment["steps"] = 2
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work


def venv_env() -> dict[str, str]:
    """The stages' shell commands call `python`: it must be this environment's."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


@pytest.mark.slow
def test_omniges_demo_runs_the_whole_dag_and_both_runners_agree_after(tmp_path):
    """`omniges demo` (Snakemake) in a clone of the repo: then Snakemake has nothing to do and `dvc status` is clean."""
    work = tiny_clone(tmp_path)
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "omniges"), "demo"], cwd=work, check=True, capture_output=True, env=venv_env())
    dry = subprocess.run([str(bin_dir / "snakemake"), "-n", "-c2", "all"], cwd=work, check=True, capture_output=True,
                         text=True, env=venv_env()).stdout
    assert "Nothing to be done" in dry
    status = subprocess.run([str(bin_dir / "dvc"), "status"], cwd=work, check=True, capture_output=True, text=True,
                            env=venv_env()).stdout
    assert "up to date" in status.lower(), status
    metrics = subprocess.run([str(bin_dir / "dvc"), "metrics", "show", "--json"], cwd=work, check=True,
                             capture_output=True, text=True, env=venv_env()).stdout
    assert "results/metrics/multitask.json" in json.loads(metrics)[""]["data"]
    results = json.loads((work / "results/metrics/multitask.json").read_text())
    a2g = results["tasks"]["a2g"]
    assert a2g["random_clip"]["fgd"] > 0 and {"generated", "generated_seeded"} <= set(results["ci"]["a2g"])


@pytest.mark.slow
def test_dvc_repro_runs_the_same_dag_and_status_is_clean_after(tmp_path):
    """`dvc repro` in a clone of the repo, then `dvc status` reports nothing changed."""
    work = tiny_clone(tmp_path)
    exe = str(Path(sys.executable).parent / "dvc")
    subprocess.run([exe, "repro"], cwd=work, check=True, capture_output=True, env=venv_env())
    status = subprocess.run([exe, "status"], cwd=work, check=True, capture_output=True, text=True,
                            env=venv_env()).stdout
    assert "up to date" in status.lower()
    assert (work / "results/metrics/multitask.json").is_file()
