"""int8 dynamic quantisation of a module's linear layers: the generator's fast path on a CPU (with bfloat16 or not).

At batch 1 a generator call multiplies a few dozen tokens by every weight matrix once, so it is bound by reading
the weights: int8 weights are a quarter of float32's bytes. Weights are quantised per output channel once;
activations per call (fbgemm / x86 kernels, AVX2 or better). Measured speed and quality cost:
docs/design-notes.md, "Live A2G (streaming)".

`torch.ao.quantization.quantize_dynamic` is marked deprecated but ships in the pinned torch; it is used here only,
behind this one function, so a move to its successor touches nothing else.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_linears(module: nn.Module) -> nn.Module:
    """Replace every `nn.Linear` under `module` by an int8 dynamically quantised one (CPU, float32 in and out).

    In place; returns `module`. Inference only: the quantised layers have no gradients."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("x86", "fbgemm") if e in engines), None)
    if engine is None:
        raise RuntimeError(f"int8 generation needs the x86 or fbgemm quantised engine; this torch has {engines}")
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        quantize_dynamic(module.float(), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    return module
