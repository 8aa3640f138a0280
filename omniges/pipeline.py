"""One function per pipeline stage: read params, call the library, log to MLflow. Stage CLIs call these."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from omniges.config import Params
from omniges.tracking import stage_run

log = logging.getLogger("omniges")
CACHE = Path("data/cache")


def _run(stage: str, params: Params, sections: tuple[str, ...]):
    logged = {name: params.section(name) for name in sections}
    return stage_run(stage, params=logged, experiment=params.tracking.experiment, uri=params.tracking.uri)


def synthesize(params: Params) -> dict[str, Any]:
    """Write the embedded BEAT2-format corpus (a marker directory only when data.source = beat2)."""
    from omniges.data.synthetic import synthesize_corpus

    data = params.data
    out = Path(data.synthetic_root)
    with _run("synthesize", params, ("data",)) as run:
        if data.source != "synthetic":
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            (out / "UNUSED.txt").write_text("data.source is beat2: the embedded corpus is not generated.\n")
            return {"clips": 0}
        summary = synthesize_corpus(out, **data.synthetic.model_dump())
        run.log_metrics(summary)
    return summary


def preprocess(params: Params) -> dict[str, Any]:
    """BEAT2-layout corpus -> data/cache/clips.lmdb + stats.npz + preprocess_report.json."""
    from omniges.data.preprocess import preprocess_corpus

    data = params.data
    with _run("preprocess", params, ("data",)) as run:
        report = preprocess_corpus(
            data.root, CACHE, speakers=data.speakers, splits=data.splits, fps=data.fps, sr=data.audio_sr,
            tolerance_s=data.length_tolerance_s, face_jaw=data.face_jaw, workers=data.workers,
        )
        run.log_metrics({k: v for k, v in report.items() if k != "splits"})
        run.log_metrics({f"clips_{split}": count for split, count in report["splits"].items()})
        run.log_artifact(CACHE / "preprocess_report.json")
        if report["clips_skipped"]:
            log.warning("skipped clips:\n%s", json.dumps(report["skipped"], indent=1))
    return report
