"""MLflow per stage: a run named after the stage, with flattened params, numeric metrics and artifacts."""

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
