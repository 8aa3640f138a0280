"""EnhancedAudioFusion: WavLM (768) + MFCC (128) frames -> one audio token stream for the MMDiT.

Both inputs are projected to `dim`, exchange information through bidirectional cross-attention (WavLM tokens
attend to MFCC tokens and MFCC tokens to WavLM tokens) and are merged by a learned sigmoid gate. When audio
is the generated stream (G2A) only the noised MFCC exists: a learned null embedding stands in for WavLM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from omniges.helpers import default, exists


def sinusoidal_positions(n: int, dim: int, device: torch.device) -> Tensor:
    """Fixed sinusoidal position table (n, dim), so cross-attention can align token t with token t."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=device) / max(half, 1))
    angles = rearrange(torch.arange(n, device=device).float(), "n -> n 1") * freqs
    table = torch.cat((angles.sin(), angles.cos()), dim=-1)
    return F.pad(table, (0, dim - table.shape[-1]))


class FeedForward(nn.Module):
    """Pre-norm GELU MLP: (B, N, dim) -> (B, N, dim)."""

    def __init__(self, *, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        return self.net(x)


class CrossAttention(nn.Module):
    """Pre-norm multi-head attention of x (queries) over context (keys/values): (B, N, dim) -> (B, N, dim)."""

    def __init__(self, *, dim: int, heads: int = 8, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.dropout = dropout
        self.norm_x = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, dim * 2, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, N, dim), context (B, N, dim), mask (B, N) bool True = valid key -> (B, N, dim)."""
        q = self.to_q(self.norm_x(x))
        k, v = self.to_kv(self.norm_context(context)).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        attn_mask = rearrange(mask, "b j -> b 1 1 j") if exists(mask) else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class BidirectionalCrossAttentionBlock(nn.Module):
    """WavLM tokens attend to MFCC tokens and MFCC tokens to WavLM tokens, then a feed-forward per stream."""

    def __init__(self, *, dim: int, heads: int = 8, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.wavlm_to_mfcc = CrossAttention(dim=dim, heads=heads, dropout=dropout)
        self.mfcc_to_wavlm = CrossAttention(dim=dim, heads=heads, dropout=dropout)
        self.wavlm_ff = FeedForward(dim=dim, mult=ff_mult, dropout=dropout)
        self.mfcc_ff = FeedForward(dim=dim, mult=ff_mult, dropout=dropout)

    def forward(self, wavlm: Tensor, mfcc: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """wavlm, mfcc (B, N, dim), mask (B, N) True = valid -> updated (wavlm, mfcc), each (B, N, dim)."""
        wavlm, mfcc = wavlm + self.wavlm_to_mfcc(wavlm, mfcc, mask), mfcc + self.mfcc_to_wavlm(mfcc, wavlm, mask)
        return wavlm + self.wavlm_ff(wavlm), mfcc + self.mfcc_ff(mfcc)


class EnhancedAudioFusion(nn.Module):
    """WavLM + MFCC frames (B, T, 768) / (B, T, 128) -> audio tokens (B, T / frames_per_token, dim).

    `key_padding_mask` is (B, T) bool with True = valid frame (the MMDiT convention); padded frames are zeroed
    before use, so their content never changes valid outputs, and padded tokens come out as zeros. A token is
    valid when any of its frames is. `wavlm=None` (G2A, audio generated) uses the learned null WavLM token.
    """

    def __init__(self, *, dim: int = 512, wavlm_dim: int = 768, mfcc_dim: int = 128, num_layers: int = 2,
                 heads: int = 8, ff_mult: int = 4, dropout: float = 0.0, frames_per_token: int = 1):
        super().__init__()
        if frames_per_token < 1:
            raise ValueError(f"frames_per_token must be >= 1, got {frames_per_token}")
        self.dim = dim
        self.frames_per_token = frames_per_token
        self.wavlm_in = nn.Linear(wavlm_dim * frames_per_token, dim)
        self.mfcc_in = nn.Linear(mfcc_dim * frames_per_token, dim)
        self.null_wavlm = nn.Parameter(torch.randn(dim) * 0.02)
        self.layers = nn.ModuleList(
            [BidirectionalCrossAttentionBlock(dim=dim, heads=heads, ff_mult=ff_mult, dropout=dropout)
             for _ in range(num_layers)]
        )
        self.gate = nn.Linear(dim * 2, dim)
        self.norm_out = nn.LayerNorm(dim)

    def _tokens(self, frames: Tensor, frame_mask: Tensor, proj: nn.Linear) -> Tensor:
        """Zero padded frames, fold k frames per token, project: (B, T, c) -> (B, T / k, dim)."""
        frames = frames.masked_fill(~rearrange(frame_mask, "b t -> b t 1"), 0.0)
        return proj(rearrange(frames, "b (n k) c -> b n (k c)", k=self.frames_per_token))

    def token_mask(self, key_padding_mask: Tensor) -> Tensor:
        """Frame validity (B, T) -> token validity (B, T / frames_per_token): any valid frame."""
        return rearrange(key_padding_mask, "b (n k) -> b n k", k=self.frames_per_token).any(dim=-1)

    def forward(self, wavlm: Tensor | None, mfcc: Tensor, *, key_padding_mask: Tensor | None = None) -> Tensor:
        """wavlm (B, T, 768) or None, mfcc (B, T, 128), key_padding_mask (B, T) True = valid -> (B, N, dim).

        T must be a multiple of frames_per_token; N = T / frames_per_token.
        """
        b, t, _ = mfcc.shape
        k = self.frames_per_token
        if t % k:
            raise ValueError(f"{t} frames is not a multiple of frames_per_token={k}; pad (and mask) to a multiple")
        if exists(wavlm) and wavlm.shape[:2] != mfcc.shape[:2]:
            raise ValueError(f"wavlm {tuple(wavlm.shape)} and mfcc {tuple(mfcc.shape)} differ in (B, T)")
        frame_mask = default(key_padding_mask, torch.ones(b, t, dtype=torch.bool, device=mfcc.device)).bool()
        mask = self.token_mask(frame_mask)

        m = self._tokens(mfcc, frame_mask, self.mfcc_in)
        w = self._tokens(wavlm, frame_mask, self.wavlm_in) if exists(wavlm) else self.null_wavlm.expand_as(m)
        positions = sinusoidal_positions(m.shape[1], self.dim, m.device).to(m.dtype)
        w, m = w + positions, m + positions

        attn_mask = mask | ~mask.any(dim=-1, keepdim=True)  # a fully padded sample attends to all (no NaN)
        for layer in self.layers:
            w, m = layer(w, m, attn_mask)

        gate = torch.sigmoid(self.gate(torch.cat((w, m), dim=-1)))
        fused = self.norm_out(m + gate * (w - m))  # gated residual merge: gate 1 -> WavLM, 0 -> MFCC
        return fused.masked_fill(~rearrange(mask, "b n -> b n 1"), 0.0)
