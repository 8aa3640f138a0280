"""params.yaml validation and the one-command switch to real BEAT2."""

import re
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


def _leaves(tree: dict, prefix: str = ""):
    """(dotted key, value) of every leaf of a YAML mapping (an inline mapping is one leaf)."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and not dotted.endswith(("overrides", "guidance", "experiments")):
            yield from _leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def test_params_yaml_is_the_schema_defaults():
    """The models' defaults are params.yaml's values: one set of defaults, wherever it is read from."""
    import yaml

    from omniges.config import Params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    defaults = dict(_leaves(Params().model_dump(by_alias=True)))
    differ = {key: (value, defaults.get(key)) for key, value in _leaves(raw) if value != defaults.get(key)
              and not (isinstance(value, list) and tuple(value) == defaults.get(key))}
    assert not differ, f"params.yaml value vs the schema's default: {differ}"
    assert load_params(ROOT / "params.yaml") == Params()
    assert set(raw) == set(Params.model_fields), "a params.yaml section without a model, or a model without one"


def test_every_leaf_of_params_yaml_is_typed_and_a_typo_next_to_it_is_refused():
    """Each leaf passes through a field of the schema: a wrong type and a misspelt sibling are one-line errors."""
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    leaves = list(_leaves(raw))
    assert len(leaves) > 100
    for key, value in leaves:
        assert load_params(ROOT / "params.yaml", {key: value}) == load_params(ROOT / "params.yaml")
        with pytest.raises(ParamsError, match=rf"^\S+: {re.escape(key)}(\.[^:]+)?: [^\n]*$"):
            load_params(ROOT / "params.yaml", {key: {"not a": "value"}})
        typo = key.rpartition(".")[0] + ".zz_typo" if "." in key else "zz_typo"
        with pytest.raises(ParamsError, match=rf"^\S+: {re.escape(typo)}: Extra inputs are not permitted"):
            load_params(ROOT / "params.yaml", {typo: 1})


@pytest.mark.parametrize(("assignment", "key"), [("flow.cfg_dropout=abc", "flow.cfg_dropout"),
                                                 ("training.common.lerning_rate=1", "training.common.lerning_rate"),
                                                 ("model.overrides={deep: 2}", "model.overrides"),
                                                 ("generation.solver=rk4", "generation.solver")])
def test_params_set_refuses_a_bad_key_or_value_in_one_line(tmp_path, assignment, key):
    from click.testing import CliRunner

    from omniges.cli import main

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = path.read_text()
    result = CliRunner().invoke(main, ["params", "set", assignment, "--file", str(path)])
    assert result.exit_code != 0 and key in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert path.read_text() == before


def test_a_bad_params_file_is_one_line_in_the_cli(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf
    from click.testing import CliRunner

    from omniges.cli import main

    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", "params.yaml")
    Path("params.yaml").write_text(Path("params.yaml").read_text().replace("  cfg_dropout: 0.1", "  cfg_dropout: abc"))
    sf.write("speech.wav", np.zeros(16000, np.float32), 16000)
    Path("model.pt").write_bytes(b"")
    result = CliRunner().invoke(main, ["generate", "--audio", "speech.wav", "--checkpoint", "model.pt",
                                       "--out", "out.mp4"])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "Error: params.yaml: flow.cfg_dropout: Input should be a valid number, unable to parse string as a number "
        "(got 'abc')"]


def test_library_defaults_are_params_yaml_values():
    """The dataclasses the stages fill (trainer, loss weights, generation settings) default to params.yaml's values,
    so code run without a params file behaves as the pipeline does. (The flow's dataclass keeps its own defaults:
    they read checkpoints written before a key existed.)"""
    import dataclasses

    from omniges.inference import GenerationSettings
    from omniges.training.losses import LossWeights
    from omniges.training.trainer import TrainConfig

    params = load_params(ROOT / "params.yaml")
    a2g = params.training.experiment("a2g")
    pairs = [(TrainConfig(), {**a2g, "steps": TrainConfig().steps, "tasks": a2g["tasks"]}),
             (LossWeights(), params.training.loss.model_dump()),
             (GenerationSettings(), params.generation.model_dump())]
    for instance, values in pairs:
        for field in dataclasses.fields(instance):
            default, value = getattr(instance, field.name), values[field.name]
            assert default == value or (isinstance(value, tuple) and tuple(default) == value), \
                f"{type(instance).__name__}.{field.name}: default {default!r}, params.yaml {value!r}"
        assert {f.name for f in dataclasses.fields(instance)} == set(values)


def test_tokenizer_training_defaults_are_params_yaml_values():
    import inspect

    from omniges.tokenizer.training import train_rvqvae

    train = load_params(ROOT / "params.yaml").rvqvae.train.model_dump()
    signature = inspect.signature(train_rvqvae).parameters
    shared = set(signature) & set(train)
    assert shared >= {"batch_size", "lr", "warmup_steps", "commit_weight", "velocity_weight", "mixed_precision"}
    for name in shared - {"steps"}:
        assert signature[name].default == train[name], f"train_rvqvae({name}=...) vs rvqvae.train.{name}"
