"""`omniges preflight`: one-line verdicts, a non-zero exit on what would fail, and a prediction from timed stages."""

import json
import shutil
from pathlib import Path

from click.testing import CliRunner
from test_beat2_path import beat2_root

from omniges.cli import main
from omniges.preflight import Cost, schedule

ROOT = Path(__file__).parents[1]
TINY_DEMO = {  # the embedded corpus, tiny: 2 speakers x 4 clips of 8 s, tiny models
    "data.synthetic.speakers": "2", "data.synthetic.clips_per_speaker": "4", "data.synthetic.val_per_speaker": "1",
    "data.synthetic.test_per_speaker": "1", "data.synthetic.clip_seconds": "8.0", "features.wavlm.config": "tiny",
    "rvqvae.train.steps": "4", "rvqvae.train.batch_size": "8", "rvqvae.model.width": "32",
    "evaluation.evaluator.steps": "2", "model.overrides.depth": "1", "training.common.batch_size": "4",
    "render.clips": "1", "render.seconds": "2.0", "render.size": "96", "generation.steps": "1",
    "evaluation.bootstrap": "20", "training.experiments.a2g.steps": "50",
}


def params_in(folder: Path, **assignments: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    (folder / "workflow/profiles/slurm").mkdir(parents=True)
    shutil.copy(ROOT / "workflow/profiles/slurm/config.yaml", folder / "workflow/profiles/slurm/config.yaml")
    result = CliRunner().invoke(main, ["params", "set", "--file", str(folder / "params.yaml"),
                                       *(f"{k}={v}" for k, v in assignments.items())])
    assert result.exit_code == 0, result.output
    return folder / "params.yaml"


def verdicts(output: str) -> list[tuple[str, str, str]]:
    lines = [line.split(None, 2) for line in output.splitlines() if line.split(None, 1)[:1] in (["ok"], ["warn"],
                                                                                                 ["FAIL"])]
    return [(status, name, detail) for status, name, detail in lines]


def test_preflight_times_every_stage_of_the_tiny_demo_and_predicts_the_run(tmp_path, monkeypatch):
    params_in(tmp_path, **TINY_DEMO)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["preflight", "--experiments", "a2g", "--steps", "1,3"])
    assert result.exit_code == 0, result.output
    found = verdicts(result.output)
    assert {name for _, name, _ in found} >= {"params", "device", "data", "stages", "disk", "memory", "slurm",
                                               "preflight"}
    assert all(status != "FAIL" for status, _, _ in found)
    assert "Traceback" not in result.output and "rvqvae:" not in result.output  # stage output kept out
    prediction = json.loads(Path("results/preflight.json").read_text())
    stages = {s["name"]: s for s in prediction["stages"]}
    assert set(stages) == {"synthesize", "preprocess", "features", "rvqvae_upper", "rvqvae_hands",
                           "rvqvae_lower_trans", "rvqvae_face", "cache_latents", "train_evaluator", "train_a2g",
                           "evaluate_a2g", "render_a2g"}
    assert all(s["seconds"] >= 0 and s["peak_mb"] > 0 for s in stages.values())
    assert stages["train_a2g"]["how"].split(" + ")[1].startswith("50 steps x")  # scaled to the params' steps
    assert abs(prediction["audio_hours"] * 3600 - 8 * 8.0) < 1e-6
    longest = max(s["seconds"] for s in stages.values())
    assert longest < prediction["wall_seconds"] <= prediction["work_seconds"] + 1e-6
    assert not Path("data").exists()  # the timing run stays in its scratch folder


def test_preflight_fails_in_one_line_on_a_missing_path_and_warns_on_clips_it_will_skip(tmp_path, monkeypatch):
    root = beat2_root(tmp_path / "beat_english_v2.0.0")
    params_in(tmp_path / "run", **{"data.source": "beat2", "data.beat2_root": str(root),
                                   "features.text.path": str(tmp_path / "no-t5")})
    monkeypatch.chdir(tmp_path / "run")
    result = CliRunner().invoke(main, ["preflight", "--checks-only", "--all"])
    assert result.exit_code == 1
    found = verdicts(result.output)
    assert ("FAIL", "paths", f"features.text.path: {tmp_path / 'no-t5'}: no such directory") in found
    data = [detail for status, name, detail in found if name == "data"]
    assert data[0].startswith(f"{root}: 9 clips selected") and "7 readable" in data[0]
    assert any(status == "warn" and "2 clip(s) will be skipped" in detail for status, name, detail in found)
    assert found[-1][0] == "FAIL" and found[-1][1] == "preflight"
    broken = CliRunner().invoke(main, ["preflight", "--params", "nope.yaml"])
    assert broken.exit_code == 1 and broken.output.strip() == "Error: --params nope.yaml: parameter file not found"


def test_schedule_runs_the_dag_on_its_cores_longest_priority_first():
    costs = [Cost("a", 10), Cost("b", 30, after=("a",)), Cost("c", 20, after=("a",), priority=1),
             Cost("d", 5, after=("b", "c")), Cost("e", 4, threads=2, after=("a",))]
    # a (0-10); c first (priority), b beside it (10-30 / 10-40); e needs both cores (40-44); d after b, c (44-49)
    # e waits for two free cores: c ends at 30 but b holds one until 40
    assert schedule(costs, cores=2, overhead_s=0) == 49
    assert schedule(costs, cores=1, overhead_s=1) == sum(c.seconds for c in costs) + 5
