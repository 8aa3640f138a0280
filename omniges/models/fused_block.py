"""Inference forward of one generalized MMDiT block with mHC residual streams, in fewer operations.

The same function as `MMDiTBlock.forward` (mmdit) with `ManifoldConstrainedHyperConnections` (hyper-connections),
restricted to what Omniges builds (one fraction, one input view, one alpha proposal, no stream pre-mixing), but:
- absent streams (zero tokens) are skipped, instead of running every op of their block on empty tensors;
- each stream's two mHC projections (alpha, beta) are one matmul, and the Sinkhorn projection of all present
  streams runs once on their concatenated matrices (20 iterations x 4 small ops each, per call, not per stream);
- joint attention runs SDPA without a mask when every key is valid;
- the residual mixing runs in the weights' dtype (autocast casts the package's float32 einsums to it anyway), so
  the float32 copies of every residual stream go.
At batch 1 on a CPU those small ops (a few microseconds each, ~2500 per call) were ~20% of a full-size call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from hyper_connections.mHCv2 import ManifoldConstrainedHyperConnections
from mmdit.mmdit_generalized_pytorch import MMDiTBlock
from torch import Tensor


def supported(block: MMDiTBlock) -> bool:
    """True when every residual function of the block is an mHC this forward reproduces exactly."""
    fns = [*block.attn_residual_fns, *block.ff_residual_fns]
    return block.has_cond and all(
        isinstance(f, ManifoldConstrainedHyperConnections) and f.num_fracs == 1 and f.num_input_views == 1
        and not f.has_dynamic_alpha_proposals and f.maybe_mix_streams is None and f.add_branch_out_to_residual
        and isinstance(f.residual_transform, torch.nn.Identity) and f.dropout.p == 0 for f in fns)


def _static_terms(hc: ManifoldConstrainedHyperConnections, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """The parameter-only terms of `_width` (the fused projection in `dtype`, the float32 scales and biases), kept
    on the module while its weights stay the same (keyed by their storage and version counters)."""
    params = (hc.dynamic_alpha_fn[0], hc.dynamic_beta_fn, hc.pre_branch_scale, hc.residual_scale, hc.static_alpha,
              hc.h_post_scale, hc.static_beta)
    key = (dtype, *((p.data_ptr(), p._version) for p in params))
    memo = hc.__dict__.get("_fused_terms")
    if memo is None or memo[0] != key:
        s = hc.num_residual_streams
        memo = key, (torch.cat((hc.dynamic_alpha_fn[0], hc.dynamic_beta_fn), dim=-1).to(dtype),
                     torch.cat((hc.pre_branch_scale, hc.residual_scale.expand(s))).float(),
                     hc.static_alpha.float(), hc.h_post_scale.float(), hc.static_beta.float()[:, 0])
        hc.__dict__["_fused_terms"] = memo
    return memo[1]


def _width(hcs: list[ManifoldConstrainedHyperConnections], xs: list[Tensor],
           constraint: Callable[[Tensor], Tensor]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """mHC width connections of several streams: (branch input, mixed residuals, beta) each."""
    logits, betas = [], []
    for hc, x in zip(hcs, xs, strict=True):
        s = hc.num_residual_streams
        weight, scale, static_alpha, h_post_scale, static_beta = _static_terms(hc, x.dtype)
        proj = (hc.norm(x) @ weight).float()  # (b, n, s, 1 + s + 1); matmuls in the weights' dtype, as autocast
        logits.append(proj[..., : 1 + s] * scale + static_alpha)
        beta = proj[..., -1:] * h_post_scale + static_beta
        betas.append(beta.sigmoid() * 2)  # (b, n, s, 1)
    sizes = [a.shape[1] for a in logits]
    residual_mix = constraint(torch.cat([a[..., 1:] for a in logits], dim=1)).split(sizes, dim=1)
    out = []
    for x, alpha, mix, beta in zip(xs, logits, residual_mix, betas, strict=True):
        weights = torch.cat((alpha[..., :1].sigmoid(), mix), dim=-1).to(x.dtype)  # (b, n, s, 1 + s)
        mixed = weights.transpose(-1, -2) @ x  # (b, n, 1 + s, d)
        out.append((mixed[..., 0, :], mixed[..., 1:, :], beta.to(x.dtype)))
    return out


def _depth(branch_out: Tensor, residuals: Tensor, beta: Tensor) -> Tensor:
    """mHC depth connection: the branch output spread over the streams by beta, added to the mixed residuals."""
    return rearrange(branch_out.to(residuals.dtype), "b n d -> b n 1 d") * beta + residuals


def _joint_attention(block: MMDiTBlock, idx: list[int], inputs: list[Tensor], masks: list[Tensor]) -> list[Tensor]:
    """JointAttention over the present streams only (absent ones have no keys and no queries)."""
    attn = block.joint_attn
    qkvs = [attn.split_heads(attn.to_qkv[i](x)) for i, x in zip(idx, inputs, strict=True)]
    q, k, v = torch.cat(qkvs, dim=-2)
    mask = torch.cat(masks, dim=-1)
    if bool(mask.all()):
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=rearrange(mask, "b j -> b 1 1 j"))
        out = out.masked_fill(rearrange(~mask.any(-1), "b -> b 1 1 1"), 0.0)
    outs = attn.merge_heads(out).split([x.shape[1] for x in inputs], dim=1)
    return [attn.to_out[i](o) for i, o in zip(idx, outs, strict=True)]


def fused_block_forward(block: MMDiTBlock, tokens: tuple[Tensor, ...], masks: tuple[Tensor, ...],
                        time_cond: Tensor) -> tuple[Tensor, ...]:
    """`block(modality_tokens=tokens, modality_masks=masks, time_cond=time_cond)`, in fewer operations."""
    idx = [i for i, t in enumerate(tokens) if t.shape[1] > 0]
    constraint = block.attn_residual_fns[0].residual_mix_constraint_fn
    dims = block.dim_modalities
    attn_gammas, ff_gammas = (g.split(dims, dim=-1) for g in block.to_post_branch_gammas(time_cond).chunk(2, dim=-1))
    out = list(tokens)
    xs = [tokens[i] for i in idx]

    width = _width([block.attn_residual_fns[i] for i in idx], xs, constraint)
    normed = [block.attn_layernorms[i](w[0], cond=time_cond) for i, w in zip(idx, width, strict=True)]
    attended = _joint_attention(block, idx, normed, [masks[i] for i in idx])
    xs = [_depth(a * attn_gammas[i], w[1], w[2]) for i, a, w in zip(idx, attended, width, strict=True)]

    width = _width([block.ff_residual_fns[i] for i in idx], xs, constraint)
    for i, w in zip(idx, width, strict=True):
        branch = block.feedforwards[i](block.ff_layernorms[i](w[0], cond=time_cond)) * ff_gammas[i]
        out[i] = _depth(branch, w[1], w[2])
    return tuple(out)
