"""One DAG: the Snakefile and dvc.yaml must declare the same stages with the same data inputs and outputs."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def _norm(path: str) -> str:
    return path.rstrip("/")


def _foreach(items: list[str] | str) -> list[str]:
    """A foreach list, or the params.yaml list a `${section.key}` names (DVC reads params.yaml as its vars)."""
    if isinstance(items, list):
        return items
    value = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key in items.removeprefix("${").removesuffix("}").split("."):
        value = value[key]
    return value


def dvc_stages() -> dict[str, dict[str, set[str]]]:
    """dvc.yaml stages; a `foreach` stage is the union over its items (Snakemake: one rule, many jobs)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out: dict[str, dict[str, set[str]]] = {}
    for name, stage in stages.items():
        items = [(item, stage["do"]) for item in _foreach(stage["foreach"])] if "foreach" in stage else [(None, stage)]
        merged = out.setdefault(name, {"deps": set(), "outs": set()})
        for item, body in items:
            fill = (lambda p, item=item: _norm(p.replace("${item}", str(item)))) if item else _norm
            for key in ("outs", "metrics", "plots"):
                for entry in body.get(key, []):
                    merged["outs"].add(fill(next(iter(entry)) if isinstance(entry, dict) else entry))
            merged["deps"] |= {fill(d) for d in body.get("deps", [])}
    return out


def snakemake_stages() -> dict[str, dict[str, set[str]]]:
    """Rules with the union of their jobs' inputs/outputs, read from a forced dry run of `all`."""
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    text = subprocess.run(
        [exe, "-n", "--forceall", "-c1", "all"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    out: dict[str, dict[str, set[str]]] = {}
    rule = None
    for line in text.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            if rule != "all":
                out.setdefault(rule, {"deps": set(), "outs": set()})
        elif rule in out and line.strip().startswith(("input:", "output:")):
            key, _, files = line.strip().partition(": ")
            out[rule]["deps" if key == "input" else "outs"] |= {_norm(f) for f in files.split(", ") if f}
    return {name: stage for name, stage in out.items() if stage["outs"]}  # aliases like train_a2g have no outputs


def test_experiments_match_params():
    """DVC builds the experiments params.yaml's training.run names, as Snakemake's `all` does."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "evaluate", "render"):
        assert stages[name]["foreach"] == "${training.run}"
    assert set(params["training"]["run"]) <= set(params["training"]["experiments"])


def test_snakefile_and_dvc_declare_the_same_dag():
    snake, dvc = snakemake_stages(), dvc_stages()
    assert sorted(snake) == sorted(dvc)
    for name in dvc:
        assert snake[name]["outs"] == dvc[name]["outs"], name
        assert snake[name]["deps"] == dvc[name]["deps"], name


def train_jobs(*args: str) -> dict[str, int]:
    """experiment -> priority of each `train` job in a forced dry run of the given target."""
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    text = subprocess.run([exe, "-n", "--forceall", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    jobs = {}
    for block in text.split("\n\n"):
        if "rule train:" in block:
            fields = dict(line.strip().split(": ", 1) for line in block.splitlines() if ": " in line)
            jobs[fields["wildcards"].removeprefix("experiment=")] = int(fields.get("priority", 0))
    return jobs


def test_the_local_profile_trains_only_the_requested_experiment():
    """`prioritize:` in a profile adds its files to every DAG; rule priorities only order the jobs a target needs."""
    assert list(train_jobs("--profile", "workflow/profiles/local", "train_a2g")) == ["a2g"]
    assert list(train_jobs("--profile", "workflow/profiles/local", "all")) == ["multitask"]  # params' training.run
    priorities = train_jobs("--profile", "workflow/profiles/local", "compare")
    assert priorities["multitask"] > priorities["a2g"] > priorities["g2t"] == 0


def test_dvc_yaml_code_deps_are_the_derived_ones():
    """dvc.yaml lists exactly the sources each stage imports (`python -m omniges.dag` writes them)."""
    from omniges.dag import rewrite_dvc_yaml

    text = (ROOT / "dvc.yaml").read_text()
    assert rewrite_dvc_yaml(text) == text, "dvc.yaml's code deps are stale: run python -m omniges.dag"


def test_a_stage_depends_on_every_source_it_imports():
    """The deps follow lazy imports and the one pipeline function a stage calls, and no more."""
    from omniges.dag import STAGES, code_deps

    cache_latents, train, evaluate = code_deps("cache_latents"), code_deps("train"), code_deps("evaluate")
    assert "omniges/tokenizer/stage.py" in cache_latents  # where the stage's code lives (a lazy import)
    assert {"omniges/models/flow.py", "omniges/models/flow_loss.py"} <= set(train)
    assert "omniges/models/flow_sampler.py" not in train  # a sampler change does not retrain the generators
    assert "omniges/models/flow_sampler.py" in evaluate
    for stage in STAGES:
        deps = code_deps(stage)
        assert deps[0] == f"stages/{stage}.py" and all((ROOT / path).is_file() for path in deps)
        assert {"stages/common.py", "omniges/pipeline.py", "omniges/config.py"} <= set(deps)


def test_code_deps_follow_an_import_added_to_a_module(tmp_path):
    from omniges.dag import code_deps

    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    shutil.copytree(ROOT / "omniges", tmp_path / "omniges", ignore=shutil.ignore_patterns("__pycache__"))
    before = code_deps("preprocess", tmp_path)
    (tmp_path / "omniges/extra_helper.py").write_text("X = 1\n")
    preprocess = tmp_path / "omniges/data/preprocess.py"
    preprocess.write_text(preprocess.read_text() + "\n\ndef _late():\n    from omniges.extra_helper import X\n")
    assert set(code_deps("preprocess", tmp_path)) - set(before) == {"omniges/extra_helper.py"}
