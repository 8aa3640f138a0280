"""params.yaml validation and the one-command switch to real BEAT2."""

import shutil
from pathlib import Path

import pytest
import yaml

from omniges.config import ParamsError, load_params, update_params_file

ROOT = Path(__file__).parents[1]


def test_repo_params_validate():
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "synthetic" and params.data.fps == 30


@pytest.mark.parametrize(
    ("override", "key"),
    [({"data.source": "kinect"}, "data.source"), ({"data.fps": 25}, "data.fps"),
     ({"data.synthetic.speakers": 0}, "data.synthetic.speakers"), ({"data.splits": ["val"]}, "data.splits"),
     ({"data.synthetic.speech": "robot"}, "data.synthetic.speech"),
     ({"data.typo_key": 1}, "data.typo_key"), ({"render.style": "cartoon"}, "render.style"),
     ({"render.typo": 1}, "render.typo")],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        load_params(ROOT / "params.yaml", override)


def test_switch_to_beat2_edits_file_and_validates(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    params = update_params_file(path, {"data.source": "beat2", "data.beat2_root": "/data/beat_english_v2.0.0"})
    assert params.data.root == Path("/data/beat_english_v2.0.0")
    reread = load_params(path)
    assert reread.data.source == "beat2" and "# synthetic (embedded" in path.read_text()
    with pytest.raises(ParamsError, match="data.source"):
        update_params_file(path, {"data.source": "nope"})
    assert load_params(path).data.source == "beat2"  # a rejected change leaves the file as it was


def test_evaluation_section_is_validated():
    params = load_params(ROOT / "params.yaml")
    evaluation = params.section("evaluation")
    assert evaluation["split"] == "test" and evaluation["seed_frames"] == 16 and evaluation["bootstrap"] == 1000
    assert evaluation["evaluator"]["import"] == ""  # the YAML key, not the Python field name
    for key, value in (("evaluation.split", "train"), ("evaluation.seed_frames", 6), ("evaluation.bogus", 1)):
        with pytest.raises(ParamsError, match=key.split(".")[-1]):
            load_params(ROOT / "params.yaml", {key: value})


def test_params_set_reaches_inline_mappings_and_lists_and_keeps_the_rest(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = path.read_text().splitlines()
    update_params_file(path, {"training.experiments.a2g.steps": "100", "data.speakers": "[2]",
                              "generation.guidance_interval.1": "0.5", "model.overrides.depth": "2"})
    reread = yaml.safe_load(path.read_text())
    assert reread["training"]["experiments"]["a2g"] == {"steps": 100, "tasks": {"a2g": 1.0}}
    assert reread["data"]["speakers"] == [2] and reread["generation"]["guidance_interval"] == [0.0, 0.5]
    assert reread["model"]["overrides"]["depth"] == 2
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 4  # one line each, comments kept, every other line byte-identical
    for old, new in changed:
        assert old.partition("#")[2] == new.partition("#")[2]
        assert "{" not in old or "{" in new  # inline stays inline
    for key, message in (("training.experiments.a3g.steps", "not found"), ("data.splits.9", "not an index"),
                         ("seed.x", "not a section")):
        with pytest.raises(ParamsError, match=message):
            update_params_file(path, {key: "1"})
    assert path.read_text().splitlines() == after  # a rejected change leaves the file as it was


def test_params_set_on_the_command_line(tmp_path):
    from click.testing import CliRunner

    from omniges.cli import main

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    result = CliRunner().invoke(main, ["params", "set", "--file", str(path), "training.experiments.a2g.steps=100"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(path.read_text())["training"]["experiments"]["a2g"]["steps"] == 100
    bad = CliRunner().invoke(main, ["params", "set", "--file", str(path), "training.experiments.a2g.steps=-3"])
    assert bad.exit_code != 0 and "steps" in bad.output
