"""MLflow per stage: a run named after the stage, with flattened params, numeric metrics and artifacts."""

from pathlib import Path

import pytest

from omniges.tracking import stage_run


def test_stage_run_logs_to_the_configured_store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("OMNIGES_TRACKING", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    report = tmp_path / "report.json"
    report.write_text("{}")
    with stage_run("preprocess", params={"data": {"fps": 30, "synthetic": {"speakers": 4}}}, experiment="t") as run:
        run.log_metrics({"clips_written": 32, "splits": {"train": 20}, "root": "not numeric"})
        run.log_artifact(report)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["t"])
    assert list(runs["tags.mlflow.runName"]) == ["preprocess"]
    row = runs.iloc[0]
    assert row["params.data.fps"] == "30" and row["params.data.synthetic.speakers"] == "4"
    assert row["metrics.clips_written"] == 32 and row["metrics.splits.train"] == 20
    assert row["metrics.wall_seconds"] > 0 and row["status"] == "FINISHED"
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(row["run_id"])] == ["report.json"]


def test_failed_stage_is_marked_failed(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("OMNIGES_TRACKING", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(RuntimeError), stage_run("features", experiment="t"):
        raise RuntimeError("boom")
    mlflow.set_tracking_uri(uri)
    assert list(mlflow.search_runs(experiment_names=["t"])["status"]) == ["FAILED"]


def test_tracking_off_is_a_no_op(monkeypatch):
    monkeypatch.setenv("OMNIGES_TRACKING", "0")
    with stage_run("x") as run:
        run.log_metrics({"a": 1})
        assert not run.enabled


def test_a_trained_generator_is_a_registered_model_version_that_loads(tmp_path, monkeypatch, tiny_checkpoint):
    import mlflow

    from omniges.inference import Omniges
    from omniges.pipeline import register_generator

    monkeypatch.setenv("OMNIGES_TRACKING", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the local artifact store (./mlruns) goes here
    root = tiny_checkpoint.parents[3]
    run_ids = []
    for _ in range(2):  # two trainings of one experiment: one registered model, two versions
        with stage_run("train_multitask", experiment="t") as run:
            version = register_generator(run, "multitask", tiny_checkpoint, cache_dir=root / "data/cache",
                                         rvqvae_dir=root / "results/rvqvae")
            run_ids.append(mlflow.active_run().info.run_id)
    assert version == "2"
    client = mlflow.MlflowClient(uri)
    assert [m.name for m in client.search_registered_models()] == ["omniges-multitask"]
    versions = {str(v.version): v.run_id for v in client.search_model_versions("name='omniges-multitask'")}
    assert versions == {"1": run_ids[0], "2": run_ids[1]}
    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts("models:/omniges-multitask/2", dst_path=str(tmp_path / "dl")))
    model = Omniges.load(local / "model.pt", cache_dir=local / "cache", rvqvae_dir=local / "rvqvae")
    assert model.tasks == {"a2g"} and model.config.depth == 1
