"""int8 dynamic quantisation of a module's linear layers (and, as linear layers over unfolded frames, its 1-d
convolutions): the generator's and the motion decoders' fast path on a CPU (with bfloat16 or not).

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
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


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


def int8_linear(linear: nn.Linear) -> nn.Module:
    """One `nn.Linear` as its int8 dynamically quantised counterpart (`quantize_linears` swaps children only)."""
    return quantize_linears(nn.Sequential(linear))[0]


def unfoldable(conv: nn.Conv1d) -> bool:
    """Whether `Int8Conv1d` reproduces the convolution: one group, numeric zero padding."""
    return conv.groups == 1 and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


class Int8Conv1d(nn.Module):
    """An `nn.Conv1d` (one group, zero padding) run as an int8 linear layer over its unfolded input frames.

    A decoder's convolutions at batch 1 over a few dozen frames are bound by reading their weights, like the
    generator's linear layers. `torch.ao`'s own dynamic Conv1d is about twice as far from float32 (its activations
    are quantised to 7 bits). Takes any float dtype, returns float32."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        if not unfoldable(conv):
            raise ValueError(f"Int8Conv1d takes one-group zero-padded convolutions, got {conv}")
        (self.kernel,), (self.stride,), (self.padding,), (self.dilation,) = (
            conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        linear = nn.Linear(conv.in_channels * self.kernel, conv.out_channels, bias=conv.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.detach().float().reshape(conv.out_channels, -1))  # (out, in * k)
            if conv.bias is not None:
                linear.bias.copy_(conv.bias.detach().float())
        self.linear = int8_linear(linear)

    def forward(self, x: Tensor) -> Tensor:
        """(b, in, t) -> (b, out, t') float32, as the convolution."""
        x = F.pad(x.float(), (self.padding, self.padding))
        frames = (x.shape[-1] - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
        span = (frames - 1) * self.stride + 1
        taps = [x[..., i * self.dilation:i * self.dilation + span:self.stride] for i in range(self.kernel)]
        columns = rearrange(torch.stack(taps, dim=-1), "b c t k -> b t (c k)")  # the weight's (in, k) order
        return rearrange(self.linear(columns), "b t o -> b o t")


def quantize_convs(module: nn.Module) -> nn.Module:
    """Replace every `nn.Conv1d` under `module` that `Int8Conv1d` reproduces by one (in place; returns `module`)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv1d) and unfoldable(child):
            setattr(module, name, Int8Conv1d(child))
        else:
            quantize_convs(child)
    return module
