"""Snakemake and DVC agree: after `omniges demo`, `dvc status` is clean and DVC's metrics / experiments work.

A tiny project with the repository's layout conventions (a foreach stage, metrics under results/, the real
.gitignore) stands in for the pipeline, so this runs in seconds; the slow end-to-end tests run the real DAG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from omniges.cli import dvc_stage, main

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent

SNAKEFILE = """
configfile: "params.yaml"
ITEMS = ["a", "b"]

rule all:
    default_target: True
    input: expand("results/metrics/{item}.json", item=ITEMS)

rule prepare:
    input: "prepare.py"
    output: "data/cache/prepared.json"
    params: scale=config["scale"]
    shell: "python prepare.py"

rule score:
    input: "score.py", "data/cache/prepared.json"
    output: "results/metrics/{item}.json"
    params: offset=config["offset"]
    shell: "python score.py {wildcards.item}"

for _item in ITEMS:
    rule:
        name: f"score_{_item}"
        input: f"results/metrics/{_item}.json"
"""
DVC_YAML = {"stages": {
    "prepare": {"cmd": "python prepare.py", "deps": ["prepare.py"], "params": ["scale"],
                "outs": [{"data/cache/prepared.json": {"cache": False}}]},
    "score": {"foreach": ["a", "b"], "do": {
        "cmd": "python score.py ${item}", "deps": ["score.py", "data/cache/prepared.json"], "params": ["offset"],
        "metrics": [{"results/metrics/${item}.json": {"cache": False}}]}},
}}
PREPARE = """import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
pathlib.Path("data/cache").mkdir(parents=True, exist_ok=True)
json.dump({"scale": p["scale"]}, open("data/cache/prepared.json", "w"))
"""
SCORE = """import json, pathlib, sys, yaml
p, prepared = yaml.safe_load(open("params.yaml")), json.load(open("data/cache/prepared.json"))
pathlib.Path("results/metrics").mkdir(parents=True, exist_ok=True)
value = prepared["scale"] * 10 + p["offset"] + (sys.argv[1] == "b")
json.dump({"value": value}, open(f"results/metrics/{sys.argv[1]}.json", "w"))
"""


def run(*command: str, cwd: Path) -> str:
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def project(tmp_path: Path, monkeypatch) -> Path:
    """A git + DVC project with a Snakefile and dvc.yaml of the same DAG, and this repository's .gitignore."""
    work = tmp_path / "project"
    (work / "workflow/profiles/local").mkdir(parents=True)
    (work / "workflow/profiles/local/config.yaml").write_text("cores: 1\n")
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (work / "params.yaml").write_text("scale: 2\noffset: 1\n")
    (work / "prepare.py").write_text(PREPARE)
    (work / "score.py").write_text(SCORE)
    shutil.copy(ROOT / ".gitignore", work / ".gitignore")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")  # the stages' `python`
    for key, value in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                       "GIT_COMMITTER_EMAIL": "t@t"}.items():
        monkeypatch.setenv(key, value)
    run("git", "init", "-q", cwd=work)
    run(str(BIN / "dvc"), "init", "-q", cwd=work)
    run("git", "add", "-A", cwd=work)
    run("git", "commit", "-qm", "project", cwd=work)
    monkeypatch.chdir(work)
    return work


def dvc(*args: str, cwd: Path) -> dict:
    return json.loads(run(str(BIN / "dvc"), *args, "--json", cwd=cwd) or "{}")


def test_demo_records_what_snakemake_built_so_dvc_status_is_clean(project):
    partial = CliRunner().invoke(main, ["demo", "--target", "score_a", "--jobs", "1"])
    assert partial.exit_code == 0, partial.output
    assert "recorded in dvc.lock (score@a)" in partial.output
    assert set(dvc("status", cwd=project)) == {"score@b"}  # built and recorded: prepare and score@a only

    done = CliRunner().invoke(main, ["demo", "--jobs", "1"])
    assert done.exit_code == 0, done.output
    assert dvc("status", cwd=project) == {}
    shown = dvc("metrics", "show", cwd=project)[""]["data"]
    assert {path: m["data"]["value"] for path, m in shown.items()} == {"results/metrics/a.json": 21,
                                                                      "results/metrics/b.json": 22}

    run("git", "add", "-A", cwd=project)  # the metrics files are not git-ignored: they are committed with dvc.lock
    assert "results/metrics/a.json" in run("git", "diff", "--cached", "--name-only", cwd=project)
    run("git", "commit", "-qm", "demo run", cwd=project)
    run(str(BIN / "dvc"), "exp", "run", "-q", "-S", "offset=5", cwd=project)
    diff = dvc("metrics", "diff", cwd=project)
    assert diff["results/metrics/a.json"]["value"] == {"old": 21, "new": 25, "diff": 4}
    experiments = dvc("exp", "show", cwd=project)
    swept = [exp for row in experiments for exp in (row.get("experiments") or [])]
    assert any(e["revs"][0]["data"]["params"]["params.yaml"]["data"]["offset"] == 5 for e in swept)


def test_snakemake_targets_map_to_dvc_stages(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert dvc_stage("all") is None
    assert dvc_stage("train_multitask") == "train@multitask" and dvc_stage("render_multitask") == "render@multitask"
    assert dvc_stage("train_a2g") == ""  # defined, but not in training.run: dvc.yaml has no stage for it
    assert dvc_stage("features") == "features" and dvc_stage("train_evaluator") == "train_evaluator"


def test_the_metrics_dvc_declares_are_committed_and_the_rest_of_results_is_not():
    """`dvc metrics diff` and `dvc exp show` read metrics from git: .gitignore must let exactly those through."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    metrics, outs = [], []
    for stage in stages.values():
        items = stage.get("foreach", [None])
        if isinstance(items, str):  # ${training.run}
            items = yaml.safe_load((ROOT / "params.yaml").read_text())["training"]["run"]
        bodies = [(item, stage["do"]) for item in items] if "foreach" in stage else [(None, stage)]
        for item, body in bodies:
            for key, bucket in (("metrics", metrics), ("outs", outs)):
                for entry in body.get(key, []):
                    path = next(iter(entry)) if isinstance(entry, dict) else entry
                    bucket.append(path.replace("${item}", str(item)))
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *metrics, *outs], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert not set(metrics) & set(ignored), set(metrics) & set(ignored)
    assert {"results/models/multitask/model.pt", "data/cache/clips.lmdb", "results/videos/multitask"} <= set(ignored)
