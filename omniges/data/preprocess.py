"""Stage `preprocess`: BEAT2-layout corpus -> clips.lmdb (one record per clip) + train-only part stats."""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from omniges.data.beat2 import Beat2Error, ClipEntry, read_clip, read_split_csv, select_clips
from omniges.data.store import LmdbWriter, write_json_atomic

log = logging.getLogger("omniges.preprocess")
STD_FLOOR = 1e-3


@dataclass
class PartStats:
    """Running per-dimension mean/std over frames (float64 sums)."""

    total: dict[str, np.ndarray] = field(default_factory=dict)
    squares: dict[str, np.ndarray] = field(default_factory=dict)
    frames: int = 0

    def add(self, parts: dict[str, np.ndarray]) -> None:
        for name, value in parts.items():
            value = value.astype(np.float64)
            self.total[name] = self.total.get(name, 0.0) + value.sum(0)
            self.squares[name] = self.squares.get(name, 0.0) + (value**2).sum(0)
        self.frames += len(next(iter(parts.values())))

    def finish(self) -> dict[str, np.ndarray]:
        if self.frames == 0:
            raise ValueError("no training frames: cannot compute normalisation statistics")
        out = {}
        for name in self.total:
            mean = self.total[name] / self.frames
            var = np.maximum(self.squares[name] / self.frames - mean**2, 0.0)
            out[f"{name}_mean"] = mean.astype(np.float32)
            out[f"{name}_std"] = np.maximum(np.sqrt(var), STD_FLOOR).astype(np.float32)
        return out


def _read(args: tuple[str, ClipEntry, dict[str, Any]]) -> tuple[ClipEntry, dict[str, Any] | None, str]:
    root, entry, options = args
    try:
        return entry, read_clip(root, entry, **options), ""
    except Beat2Error as error:
        return entry, None, str(error)


def preprocess_corpus(
    root: str | Path, out_dir: str | Path, *, speakers: list[int], splits: list[str], fps: int = 30,
    sr: int = 16000, tolerance_s: float = 1.0, face_jaw: bool = True, workers: int = 2, progress: bool = True,
) -> dict[str, Any]:
    """Read every selected clip, write `clips.lmdb` + `stats.npz` + `preprocess_report.json` under out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    start = time.perf_counter()
    entries = select_clips(read_split_csv(root), speakers=speakers, splits=splits)
    if not entries:
        raise Beat2Error(root, f"no clips for speakers={speakers or 'all'} splits={splits}")
    options = {"fps": fps, "sr": sr, "tolerance_s": tolerance_s, "face_jaw": face_jaw}
    jobs = [(str(root), entry, options) for entry in entries]
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = LmdbWriter(out_dir / "clips.lmdb", resume=False)
    stats, skipped, split_counts, index = PartStats(), [], Counter(), {}
    seconds = 0.0
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_read, jobs, chunksize=1) if workers > 1 else map(_read, jobs)
            for entry, record, problem in tqdm(results, total=len(jobs), desc="preprocess", disable=not progress):
                if record is None:
                    log.warning("skipped %s: %s", entry.clip_id, problem)
                    skipped.append({"id": entry.clip_id, "reason": problem})
                    continue
                writer.put(entry.clip_id, record)
                index[entry.clip_id] = {k: record[k] for k in ("split", "speaker", "n_frames")}
                split_counts[record["split"]] += 1
                seconds += record["n_frames"] / fps
                if record["split"] in ("train", "additional"):
                    stats.add(record["parts"])
        part_stats = stats.finish()
    except BaseException:
        writer.abort()
        raise
    report = {
        "root": str(root),
        "clips_selected": len(entries),
        "clips_written": sum(split_counts.values()),
        "clips_skipped": len(skipped),
        "skipped": skipped,
        "splits": dict(split_counts),
        "hours": seconds / 3600.0,
        "train_frames": stats.frames,
        "seconds": time.perf_counter() - start,
    }
    stats_path = out_dir / "stats.npz"
    tmp = out_dir / "stats.tmp.npz"
    np.savez(tmp, **part_stats)
    tmp.replace(stats_path)
    writer.seal({"index": index, "stage": "preprocess", "fps": fps, "sr": sr, "face_jaw": face_jaw, "root": str(root)})
    write_json_atomic(out_dir / "preprocess_report.json", report)
    log.info("preprocess: %d clips written, %d skipped", report["clips_written"], report["clips_skipped"])
    return report
