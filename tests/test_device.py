"""One device policy: compute.device resolution, clear errors for a missing GPU, bf16 decided by the device used."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from omniges.cli import main
from omniges.config import ParamsError, load_params
from omniges.device import DeviceError, cpu_has_bf16, native_bfloat16, resolve_device
from omniges.inference import resolve_dtype

ROOT = Path(__file__).parents[1]
WAV = ROOT / "tests/fixtures/beat2_real/wave16k/2_scott_0_1_1.wav"


@pytest.fixture()
def fake_gpus(monkeypatch):
    """torch reports two CUDA GPUs (resolution only: nothing is computed on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


def test_resolution_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError, match=rf"compute.device is '{name}' but .* sees no CUDA GPU") as error:
            resolve_device(name)
        assert "\n" not in str(error.value)
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


def test_resolution_with_gpus_and_under_a_launcher(fake_gpus, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="only 2 CUDA GPU"):
        resolve_device("cuda:2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="2-process launch"):
        resolve_device("cuda:0")
    assert resolve_device("cpu") == torch.device("cpu")


def test_bf16_is_decided_by_the_device_used(fake_gpus):
    """A CUDA GPU on the machine no longer makes CPU-resident weights bf16."""
    assert native_bfloat16("cuda:0") is True
    assert native_bfloat16("cpu") is cpu_has_bf16()
    assert resolve_dtype("auto", "cpu") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.bfloat16
    assert resolve_dtype("float32", "cuda") == torch.float32


def test_params_validate_compute(tmp_path):
    params = load_params(ROOT / "params.yaml")
    assert params.compute.device == "auto" and params.compute.slurm.gpus_per_node >= 1
    assert load_params(ROOT / "params.yaml", {"compute.device": "cuda:3"}).compute.device == "cuda:3"
    with pytest.raises(ParamsError, match="compute.device"):
        load_params(ROOT / "params.yaml", {"compute.device": "gpu"})
    with pytest.raises(ParamsError, match="compute.slurm.nodes"):
        load_params(ROOT / "params.yaml", {"compute.slurm.nodes": 0})
    with pytest.raises(ParamsError, match="rvqvae.train.mixed_precision"):
        load_params(ROOT / "params.yaml", {"rvqvae.train.mixed_precision": "fp8"})


def test_cuda_without_a_gpu_is_one_line_in_the_cli_and_the_stages(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["generate", "--audio", str(WAV), "--out", "x.mp4", "--device", "cuda"])
    assert result.exit_code != 0 and "sees no CUDA GPU" in result.output and "Traceback" not in result.output
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    stage = subprocess.run([sys.executable, "stages/train.py", "--experiment", "a2g", "compute.device=cuda"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = stage.stderr.strip().splitlines()
    assert stage.returncode == 2 and len(lines) == 1 and "params.yaml: compute.device is 'cuda'" in lines[0]


def test_fp16_needs_a_gpu():
    from omniges.training.trainer import make_accelerator

    with pytest.raises(DeviceError, match="fp16 needs a CUDA GPU"):
        make_accelerator("cpu", mixed_precision="fp16")
    accelerator = make_accelerator("cpu", mixed_precision="bf16", gradient_accumulation_steps=3)
    assert accelerator.device == torch.device("cpu") and accelerator.mixed_precision == "bf16"
    assert accelerator.gradient_accumulation_steps == 3
    assert make_accelerator("cpu").mixed_precision == "no"  # a second Accelerator in one process may differ
