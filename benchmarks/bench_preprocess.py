"""Benchmark `preprocess` against merely reading every raw file of the corpus (goal: at most 2x).

    python benchmarks/bench_preprocess.py [OUT.json] [--clips 8 --seconds 20 --workers 2]

Builds the default-size embedded corpus in a temp folder. OUT defaults to results/benchmarks/preprocess.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from omniges.data.store import write_json_atomic


def read_everything(root: Path) -> int:
    """Read each npz array, wav and TextGrid once: the floor any preprocessing must pay."""
    from omniges.data.transcript import read_textgrid

    count = 0
    for npz in sorted((root / "smplxflame_30").glob("*.npz")):
        with np.load(npz) as data:
            count += sum(data[k].size for k in data.files)
        sf.read(root / "wave16k" / f"{npz.stem}.wav")
        read_textgrid(root / "textgrid" / f"{npz.stem}.TextGrid")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/preprocess.json")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from omniges.data.preprocess import preprocess_corpus
    from omniges.data.synthetic import synthesize_corpus

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        summary = synthesize_corpus(root, clips_per_speaker=args.clips, clip_seconds=args.seconds)
        read_everything(root)  # warm the page cache so both timings read from memory
        start = time.perf_counter()
        read_everything(root)
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        splits = ["train", "val", "test", "additional"]
        report = preprocess_corpus(root, Path(tmp) / "cache", speakers=[], splits=splits, workers=args.workers,
                                   progress=False)
        preprocess_s = time.perf_counter() - start
    result = {
        "corpus_minutes": summary["minutes"], "clips": report["clips_written"], "workers": args.workers,
        "read_raw_seconds": read_s, "preprocess_seconds": preprocess_s, "ratio": preprocess_s / read_s,
        "goal_ratio": 2.0, "load_average": os.getloadavg()[0],
    }
    out = Path(args.out)
    write_json_atomic(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
