"""benchmarks/gpu_check.py in --smoke mode: every measurement path runs (on the CPU here) and lands in the JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_gpu_check_smoke_writes_every_measurement(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "benchmarks/gpu_check.py", str(out), "--smoke", "--device", "cpu"], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["device"] == "cpu"
    assert report["matmul_peak"]["flops"] > 0
    train = report["training"]
    assert train["samples_per_second"] > 0 and train["flops_per_step"] > 0
    assert 0 < train["fraction_of_matmul_peak"] < 1.5
    memory = {(m["batch"], m["gradient_checkpointing"]) for m in report["training_memory"]}
    assert memory == {(1, False), (1, True), (2, False), (2, True)}
    assert report["rvqvae_training"]["steps_per_second"] > 0
    a2g = {(r["batch"], r["steps"]): r["real_time_factor"] for r in report["a2g"]}
    assert set(a2g) == {(1, 2), (1, 1), (2, 2), (2, 1)} and all(v > 0 for v in a2g.values())
    assert report["wavlm"]["audio_seconds_per_wall_second"] > 0
