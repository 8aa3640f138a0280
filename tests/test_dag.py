"""One DAG: the Snakefile and dvc.yaml must declare the same stages with the same data inputs and outputs."""

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def _norm(path: str) -> str:
    return path.rstrip("/")


def dvc_stages() -> dict[str, dict[str, set[str]]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        outs = set()
        for key in ("outs", "metrics", "plots"):
            for item in stage.get(key, []):
                outs.add(_norm(next(iter(item)) if isinstance(item, dict) else item))
        out[name] = {"deps": {_norm(d) for d in stage.get("deps", [])}, "outs": outs}
    return out


def snakemake_stages() -> dict[str, dict[str, set[str]]]:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    summary = subprocess.run(
        [exe, "--detailed-summary", "-c1", "--forceall", "all"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout
    rows = csv.DictReader(io.StringIO(summary[summary.index("output_file") :]), delimiter="\t")
    out: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        stage = out.setdefault(row["rule"], {"deps": set(), "outs": set()})
        stage["outs"].add(_norm(row["output_file"]))
        stage["deps"] |= {_norm(p) for p in row["input-file(s)"].split(",") if p and p != "-"}
    return out


def test_snakefile_and_dvc_declare_the_same_dag():
    snake, dvc = snakemake_stages(), dvc_stages()
    assert sorted(snake) == sorted(dvc)
    for name in dvc:
        assert snake[name]["outs"] == dvc[name]["outs"], name
        assert snake[name]["deps"] == dvc[name]["deps"], name
