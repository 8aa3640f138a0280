"""MLflow helpers: one run per stage, named after it, in one experiment.

The store is local by default (`sqlite:///mlflow.db` next to params.yaml); `MLFLOW_TRACKING_URI`
or `tracking.uri` in params.yaml point it elsewhere. `OMNIGES_TRACKING=0` turns logging off; in a multi-process
(DDP) launch only rank 0 logs. Trained generators are registered models (one name per experiment), so `mlflow ui`
lists them under Models.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("omniges")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class StageRun:
    """What a stage logs: params, metrics, artifacts. A no-op when tracking is off."""

    def __init__(self, mlflow_module: Any | None):
        self._mlflow = mlflow_module

    @property
    def enabled(self) -> bool:
        return self._mlflow is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._mlflow:
            flat = {k: str(v)[:6000] for k, v in _flatten(params).items()}
            self._mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        numeric = {k: float(v) for k, v in _flatten(metrics).items() if isinstance(v, int | float)}
        if self._mlflow and numeric:
            self._mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if not self._mlflow or not path.exists():
            return
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path)
        else:
            self._mlflow.log_artifact(str(path), artifact_path)

    def set_tag(self, key: str, value: str) -> None:
        if self._mlflow:
            self._mlflow.set_tag(key, value)

    def register_model(self, name: str, artifact_path: str, description: str = "") -> str | None:
        """Register this run's artifacts under `artifact_path` as a new version of model `name`; its version."""
        if not self._mlflow:
            return None
        client = self._mlflow.MlflowClient()
        try:
            client.get_registered_model(name)
        except self._mlflow.exceptions.MlflowException:
            client.create_registered_model(name, description=description)
        run_id = self._mlflow.active_run().info.run_id
        version = client.create_model_version(name, source=self._mlflow.get_artifact_uri(artifact_path),
                                              run_id=run_id, description=description)
        log.info("registered model %s version %s (run %s)", name, version.version, run_id)
        return str(version.version)


def tracking_uri(configured: str = "", root: str | Path = ".") -> str:
    """Environment first, then params, then the local sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


@contextmanager
def stage_run(
    stage: str, *, params: Mapping[str, Any] | None = None, experiment: str = "omniges", uri: str = ""
) -> Iterator[StageRun]:
    """Open an MLflow run named `stage`, log params and wall time, close it (FAILED on error).

    Under a multi-process launch only rank 0 opens the run; the other processes get a no-op StageRun.
    """
    if os.environ.get("OMNIGES_TRACKING", "1") == "0" or int(os.environ.get("RANK", "0")) != 0:
        yield StageRun(None)
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline: no usage reports
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(uri))
    mlflow.set_experiment(experiment)
    start = time.perf_counter()
    with mlflow.start_run(run_name=stage) as run:
        mlflow.set_tag("stage", stage)
        tracked = StageRun(mlflow)
        if params:
            tracked.log_params(params)
        log.info("MLflow run %s (%s) in %s", run.info.run_id, stage, mlflow.get_tracking_uri())
        yield tracked
        tracked.log_metrics({"wall_seconds": time.perf_counter() - start})
