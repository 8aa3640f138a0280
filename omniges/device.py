"""One device policy for every computing stage: `compute.device` (auto | cpu | cuda | cuda:N) -> a torch device.

`auto` is the first CUDA GPU when torch sees one, else the CPU. Under a multi-process launch (torchrun,
`accelerate launch`) each process's GPU is its local rank, so there only auto / cuda / cpu make sense.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import torch

from omniges.config import DEVICE_PATTERN


class DeviceError(ValueError):
    """A requested device this machine (or this launch) cannot give."""


def world_size() -> int:
    """Processes of the current launch (torchrun / accelerate launch set WORLD_SIZE; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the process that logs and writes files: rank 0 of a launch, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def resolve_device(name: str = "auto") -> torch.device:
    """`compute.device` -> torch.device; DeviceError (one line) when CUDA is asked for and absent."""
    if not re.fullmatch(DEVICE_PATTERN, name):
        raise DeviceError(f"compute.device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"compute.device is {name!r} but torch {torch.__version__} sees no CUDA GPU "
                          "(a CPU build of torch, or no driver): use compute.device=cpu or install a CUDA wheel")
    if world_size() > 1:
        if name.startswith("cuda:"):
            raise DeviceError(f"compute.device={name} names one GPU, but this is a {world_size()}-process launch "
                              "(each process takes the GPU of its local rank): use auto or cuda")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    index = int(name.partition(":")[2] or torch.cuda.current_device())
    if index >= torch.cuda.device_count():
        raise DeviceError(f"compute.device={name} but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    return torch.device("cuda", index)


def cpu_has_bf16() -> bool:
    """True on a CPU with bf16 arithmetic (AVX512-BF16 / AMX), where bf16 halves the time of a matmul."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bfloat16(device: torch.device | str = "cpu") -> bool:
    """True where `device` computes bf16 natively: a CUDA GPU with bf16 support, or a bf16-capable CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast on `device` in `dtype` (None or float32: no autocast)."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_device(batch: dict, device: torch.device) -> dict:
    """Every tensor of a (nested) batch dict moved to `device`."""
    return {k: to_device(v, device) if isinstance(v, dict) else v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}
