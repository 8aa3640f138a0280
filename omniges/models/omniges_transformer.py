"""Omniges generator: time-aligned text, audio and gesture token streams through one generalized MMDiT."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from hyper_connections.mHCv2 import ManifoldConstrainedHyperConnections
from mmdit.mmdit_generalized_pytorch import AdaptiveLayerNorm, MMDiT, MMDiTBlock
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from omniges.data.body import PART_NAMES
from omniges.helpers import default, exists
from omniges.models.fused_block import fused_block_forward, supported

STREAMS = ("text", "audio", "gesture")
GESTURE_PARTS = PART_NAMES


@dataclass(kw_only=True)
class OmnigesConfig:
    """Plain-data hyperparameters of the generator; `full()` and `demo()` are the two presets."""

    text_feature_dim: int = 1024  # per-latent-frame text encoder features (T5 1024, MiniLM 384)
    text_dim: int = 1024  # text stream width
    audio_dim: int = 512  # audio stream width (EnhancedAudioFusion output)
    gesture_dim: int = 512  # gesture stream width
    wavlm_dim: int = 768
    mfcc_dim: int = 128
    gesture_parts: tuple[str, ...] = GESTURE_PARTS
    latent_dim: int = 128  # RVQVAE latent channels per part
    num_codes: int = 1024
    num_code_layers: int = 1  # code logits for the first residual quantizer layers
    vocab_size: int = 32128  # text tokenizer vocabulary (T5 32128, MiniLM/BERT 30522)
    motion_fps: float = 30.0
    frames_per_token: int = 4  # motion frames per gesture latent (RVQVAE down-sampling)
    depth: int = 12
    heads: int = 8
    dim_head: int = 64
    ff_mult: float = 4.0
    num_residual_streams: int = 4
    sinkhorn_iters: int = 20  # mHC residual-mix projection iterations (mHC's 20; demo 5, ~1% off doubly stochastic)
    time_embed_dim: int = 256  # per-modality timestep embedding width
    dim_cond: int = 512  # width of the single time_cond vector every MMDiT block receives
    audio_fusion_layers: int = 2
    audio_fusion_heads: int = 8
    learned_stream_embed: bool = True
    aligned_conditioning: bool = True  # add each condition's same-instant token to the generated stream
    shortcut: bool = True  # step-size input d for shortcut-model few-step sampling
    flash_attn: bool = True  # torch scaled_dot_product_attention inside MMDiT
    gradient_checkpointing: bool = False
    num_speakers: int = 0  # learned speaker embeddings (+ one "unknown speaker" row) in time_cond; 0 = none
    # conditioning MFCC minus its mean over the window's valid frames (cepstral mean normalisation: a constant
    # channel or level offset of the speech no longer reaches the model); the generated MFCC of G2A is untouched
    mfcc_cmn: bool = False

    def __post_init__(self) -> None:
        self.gesture_parts = tuple(self.gesture_parts)

    @property
    def gesture_latent_dim(self) -> int:
        """Width of the concatenated per-part latents (4 parts x 128 = 512 at full size)."""
        return len(self.gesture_parts) * self.latent_dim

    @property
    def tokens_per_second(self) -> float:
        """Token rate shared by all three streams (7.5 for 30 fps and 4 frames per token)."""
        return self.motion_fps / self.frames_per_token

    @classmethod
    def full(cls, **overrides: Any) -> OmnigesConfig:
        """Paper-size model: text 1024, audio 512, gesture 4x128, depth 12, 4 residual streams."""
        return cls(**overrides)

    @classmethod
    def demo(cls, **overrides: Any) -> OmnigesConfig:
        """Small model that trains on two CPU cores in minutes (MiniLM text features)."""
        small = dict(
            text_feature_dim=384, text_dim=128, audio_dim=128, gesture_dim=128, vocab_size=30522,
            depth=4, heads=4, dim_head=32, ff_mult=2.0, num_residual_streams=2, sinkhorn_iters=5, time_embed_dim=64,
            dim_cond=128, audio_fusion_layers=1, audio_fusion_heads=4,
        )
        return cls(**{**small, **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OmnigesConfig:
        """Build from a params section; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown OmnigesConfig keys: {unknown}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and MLflow params)."""
        return {**asdict(self), "gesture_parts": list(self.gesture_parts)}


def sinusoidal_embedding(x: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """Standard transformer sinusoid of a scalar per row: (n,) -> (n, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = rearrange(x.float(), "n -> n 1") * rearrange(freqs, "f -> 1 f")
    return F.pad(torch.cat((angles.sin(), angles.cos()), dim=-1), (0, dim % 2))


def seconds_positional_encoding(
    seconds: Tensor, dim: int, *, min_period: float = 0.25, max_period: float = 1000.0
) -> Tensor:
    """Sinusoid of time in seconds with periods from min_period to max_period: (n,) -> (n, dim)."""
    half = dim // 2
    periods = torch.logspace(math.log10(min_period), math.log10(max_period), half, device=seconds.device)
    angles = rearrange(seconds.float(), "n -> n 1") * rearrange(2 * math.pi / periods, "f -> 1 f")
    return F.pad(torch.cat((angles.sin(), angles.cos()), dim=-1), (0, dim % 2))


class TimestepEmbedding(nn.Module):
    """t in [0, 1] -> sinusoid of 1000 t -> MLP."""

    def __init__(self, dim: int, *, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        """(b,) -> (b, dim)."""
        return self.mlp(sinusoidal_embedding(t * 1000.0, self.freq_dim).to(self.mlp[0].weight.dtype))


def sinkhorn(log_alpha: Tensor, iters: int = 20) -> Tensor:
    """mHC's Sinkhorn-Knopp projection (rows and columns sum to 1) with plain sums: same result, fewer CPU ops."""
    log_alpha = log_alpha.float()
    alpha = (log_alpha - log_alpha.amax(dim=-2, keepdim=True).detach()).exp()
    for _ in range(iters):
        alpha = alpha / alpha.sum(dim=-2, keepdim=True)
        alpha = alpha / alpha.sum(dim=-1, keepdim=True)
    return alpha


def cepstral_mean_normalize(mfcc: Tensor, mask: Tensor | None = None) -> Tensor:
    """(b, t, c) MFCC minus each sequence's mean over its valid frames (mask (b, t), True = valid); padded frames
    become 0, so nothing of the offset is left in a partly padded token either."""
    if mask is None:
        return mfcc - mfcc.mean(dim=1, keepdim=True)
    weight = rearrange(mask, "b t -> b t 1").to(mfcc.dtype)
    mean = (mfcc * weight).sum(dim=1, keepdim=True) / weight.sum(dim=1, keepdim=True).clamp_min(1.0)
    return (mfcc - mean) * weight


class MemoizedCondition(nn.Sequential):
    """An MMDiT time-conditioning projection (SiLU + Linear of time_cond) memoized per input value in inference.

    time_cond depends only on the timesteps, and a few-step sampler visits the same few timesteps for every
    clip and window, so at batch 1 on CPU re-reading these (dim_cond x 2 dim) weights per call costs ~15% of a
    full-size step. Inference only (no grad, not training, CPU); the key includes the weights' version counters,
    so training or loading new weights invalidates it. Swapped in by class, so state_dict keys are unchanged.
    """

    max_entries = 64

    @classmethod
    def install(cls, module: nn.Sequential) -> None:
        module.__class__ = cls
        module._memo = {}

    def forward(self, cond: Tensor) -> Tensor:
        if self.training or torch.is_grad_enabled() or cond.device.type != "cpu":
            return super().forward(cond)
        params = tuple(self.parameters())
        key = (tuple(cond.shape), cond.dtype, cond.detach().float().numpy().tobytes(),
               tuple((p.data_ptr(), p._version) for p in params))
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= self.max_entries:
                self._memo.clear()
            hit = self._memo[key] = super().forward(cond)
        return hit


def as_batch_tensor(value: float | Tensor, batch: int, device: torch.device) -> Tensor:
    """A float or (b,) tensor of per-sample timesteps as a float (b,) tensor."""
    value = torch.as_tensor(value, dtype=torch.float32, device=device)
    return value.expand(batch) if value.ndim == 0 else value


class OmnigesTransformerModel(nn.Module):
    """Any-to-any MMDiT over text, audio and gesture streams at the gesture latent rate (7.5 tokens/s).

    Timestep convention (every stream): t = 1 clean data, t = 0 pure noise; x_t = t x1 + (1 - t) x0 and the
    predicted velocity is x1 - x0. Conditioning streams enter clean (t = 1), the generated stream noised. An
    absent stream costs nothing: it enters with zero tokens and t = 0, so its weights are never touched; a
    sample whose stream mask is all False (per-sample condition dropout) has every token of that stream masked
    out of attention, which is the same function (attention over no keys of that stream, t = 0).
    """

    def __init__(self, config: OmnigesConfig):
        super().__init__()
        from omniges.models.audio_fusion import EnhancedAudioFusion

        self.config = c = config
        self.stream_dims = {"text": c.text_dim, "audio": c.audio_dim, "gesture": c.gesture_dim}

        self.text_in = nn.Linear(c.text_feature_dim, c.text_dim)
        self.text_query = nn.Parameter(torch.randn(c.text_dim) * 0.02)  # per-frame input when text is generated
        self.audio_fusion = EnhancedAudioFusion(
            dim=c.audio_dim, wavlm_dim=c.wavlm_dim, mfcc_dim=c.mfcc_dim, num_layers=c.audio_fusion_layers,
            heads=c.audio_fusion_heads, frames_per_token=c.frames_per_token,
        )
        self.gesture_in = nn.Linear(c.gesture_latent_dim, c.gesture_dim)
        self.gesture_known_embed = nn.Parameter(torch.randn(c.gesture_dim) * 0.02)  # marks inpainted frames

        self.stream_embeds = nn.ParameterDict(
            {s: nn.Parameter(torch.randn(d) * 0.02) for s, d in self.stream_dims.items()}
        ) if c.learned_stream_embed else None

        time_inputs = (*STREAMS, "step") if c.shortcut else STREAMS
        self.time_embeds = nn.ModuleDict({name: TimestepEmbedding(c.time_embed_dim) for name in time_inputs})
        self.to_time_cond = nn.Linear(len(time_inputs) * c.time_embed_dim, c.dim_cond)
        # speaker i < num_speakers, or row num_speakers: the unknown (CFG-dropped) speaker; summed into time_cond
        self.speaker_embed = nn.Embedding(c.num_speakers + 1, c.dim_cond) if c.num_speakers else None
        if exists(self.speaker_embed):
            nn.init.normal_(self.speaker_embed.weight, std=0.02)

        self.mmdit = MMDiT(
            depth=c.depth, dim_modalities=(c.text_dim, c.audio_dim, c.gesture_dim),
            num_residual_streams=c.num_residual_streams, dim_cond=c.dim_cond, heads=c.heads,
            dim_head=c.dim_head, flash_attn=c.flash_attn, ff_kwargs=dict(mult=c.ff_mult),
        )
        for module in self.mmdit.modules():  # mmdit gives no way to pass the constraint (sinkhorn_iters) in
            if isinstance(module, ManifoldConstrainedHyperConnections):
                module.residual_mix_constraint_fn = partial(sinkhorn, iters=c.sinkhorn_iters)
            elif isinstance(module, AdaptiveLayerNorm) and module.has_cond:
                MemoizedCondition.install(module.to_cond)
            elif isinstance(module, MMDiTBlock) and module.has_cond:
                MemoizedCondition.install(module.to_post_branch_gammas)
        # inference (no grad) runs the blocks through fused_block_forward: same function, fewer CPU operations
        self.fused_inference = all(supported(block) for block in self.mmdit.blocks)

        # Time-aligned conditioning: every stream runs at the same token rate, so token i of a condition is
        # added (through a zero-initialised projection) to token i of the generated stream. Attention still sees
        # all of it; this gives each generated token its own instant's evidence from the first training step.
        self.aligned = nn.ModuleDict({
            f"{src}_to_{dst}": nn.Linear(self.stream_dims[src], self.stream_dims[dst])
            for src in STREAMS for dst in STREAMS if src != dst
        }) if c.aligned_conditioning else None
        if exists(self.aligned):
            for layer in self.aligned.values():
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

        self.to_gesture_velocity = nn.Linear(c.gesture_dim, c.gesture_latent_dim)
        self.to_code_logits = nn.ModuleDict(
            {part: nn.Linear(c.gesture_dim, c.num_code_layers * c.num_codes) for part in c.gesture_parts}
        )
        self.to_text_logits = nn.Linear(c.text_dim, c.vocab_size)
        self.to_mfcc_velocity = nn.Linear(c.audio_dim, c.frames_per_token * c.mfcc_dim)

    # stream tokens

    def token_seconds(self, num_tokens: int, device: torch.device) -> Tensor:
        """Time in seconds of each token (window-relative), shared by all streams."""
        return torch.arange(num_tokens, device=device) / self.config.tokens_per_second

    def _decorate(self, stream: str, tokens: Tensor) -> Tensor:
        """Add the time-aligned positional encoding and the learned stream embedding."""
        n, d = tokens.shape[-2:]
        tokens = tokens + seconds_positional_encoding(self.token_seconds(n, tokens.device), d).to(tokens.dtype)
        return tokens + self.stream_embeds[stream] if exists(self.stream_embeds) else tokens

    def _empty_sequence(self, stream: str, batch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """An absent stream: zero tokens, so no block spends work on it."""
        tokens = torch.zeros(batch, 0, self.stream_dims[stream], device=device)
        mask = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        return tokens, mask, mask

    def _finish(self, stream: str, tokens: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Decorated tokens, their attention mask and the mask of real tokens (the same mask)."""
        b, n, _ = tokens.shape
        mask = default(mask, torch.ones(b, n, dtype=torch.bool, device=tokens.device))
        return self._decorate(stream, tokens), mask, mask

    def _audio_tokens(self, wavlm: Tensor | None, mfcc: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """30 fps WavLM + MFCC -> audio stream tokens at the latent rate, and their validity mask."""
        fpt = self.config.frames_per_token
        b, frames, _ = mfcc.shape
        mask = default(mask, torch.ones(b, frames, dtype=torch.bool, device=mfcc.device))
        pad = -frames % fpt
        if pad:
            mfcc, mask = F.pad(mfcc, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)
            wavlm = F.pad(wavlm, (0, 0, 0, pad)) if exists(wavlm) else None
        tokens = self.audio_fusion(wavlm, mfcc, key_padding_mask=mask)
        token_mask = reduce(mask, "b (n f) -> b n", "max", f=fpt)
        return tokens, token_mask

    def _stream_inputs(
        self, stream: str, generate: set[str], batch: int, inputs: dict[str, Any], cache: dict | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Tokens, key mask and real-token mask of one stream: generated, clean condition (cached) or absent."""
        if exists(cache) and stream not in generate and stream in cache:
            return cache[stream]
        tokens, mask = None, None
        if stream == "text":
            if "text" in generate:
                mask = inputs["text_mask"]
                n = mask.shape[1] if exists(mask) else inputs["gesture"].shape[1]
                tokens = repeat(self.text_query, "d -> b n d", b=batch, n=n)
            elif exists(inputs["text"]):
                tokens, mask = self.text_in(inputs["text"]), inputs["text_mask"]
        elif stream == "audio":
            if exists(inputs["mfcc"]):
                mfcc, condition = inputs["mfcc"], "audio" not in generate  # G2A generates the MFCC stream
                if condition and self.config.mfcc_cmn:
                    mfcc = cepstral_mean_normalize(mfcc, inputs["audio_mask"])
                tokens, mask = self._audio_tokens(inputs["wavlm"] if condition else None, mfcc, inputs["audio_mask"])
        elif exists(inputs["gesture"]):
            tokens, mask = self.gesture_in(inputs["gesture"]), inputs["gesture_mask"]
            known = inputs["gesture_known"]
            if exists(known):
                tokens = tokens + rearrange(known, "b n -> b n 1").to(tokens.dtype) * self.gesture_known_embed
        assert stream not in generate or exists(tokens), f"generated stream '{stream}' needs its noised input"
        if exists(tokens):
            result = self._finish(stream, tokens, mask)
        else:
            result = self._empty_sequence(stream, batch, self.gesture_known_embed.device)
        if exists(cache) and stream not in generate:
            cache[stream] = result
        return result

    def _add_aligned(self, tokens: list[Tensor], real: tuple[Tensor, ...], generate: set[str]) -> tuple[Tensor, ...]:
        """Generated stream token i += sum over present conditions of proj(condition token i), real tokens only."""
        if not exists(self.aligned):
            return tuple(tokens)
        for dst in generate:
            d = STREAMS.index(dst)
            added = tokens[d]
            for src in STREAMS:
                s = STREAMS.index(src)
                if src in generate or tokens[s].shape[1] != tokens[d].shape[1]:
                    continue
                weight = rearrange(real[s], "b n -> b n 1").to(tokens[d].dtype)
                added = added + self.aligned[f"{src}_to_{dst}"](tokens[s]) * weight
            tokens[d] = added
        return tuple(tokens)

    def time_condition(
        self, t_text: Tensor, t_audio: Tensor, t_gesture: Tensor, step_size: Tensor | None
    ) -> Tensor:
        """Per-modality timestep embeddings (+ step size d) concatenated and projected to time_cond."""
        times = dict(text=t_text, audio=t_audio, gesture=t_gesture)
        if self.config.shortcut:
            times["step"] = default(step_size, torch.zeros_like(t_gesture))
        embeds = [self.time_embeds[name](t) for name, t in times.items()]
        return self.to_time_cond(torch.cat(embeds, dim=-1))

    def speaker_condition(self, speaker: Tensor | None, batch: int, device: torch.device) -> Tensor | None:
        """(b,) speaker indices (< 0 or None: unknown speaker) -> (b, dim_cond) embeddings; None without speakers."""
        if not exists(self.speaker_embed):
            if exists(speaker) and bool((speaker >= 0).any()):
                raise ValueError("this generator was trained without speaker conditioning (num_speakers = 0)")
            return None
        unknown = self.config.num_speakers
        index = torch.full((batch,), unknown, dtype=torch.long, device=device) if speaker is None else speaker
        index = torch.where(index < 0, unknown, index.to(device=device, dtype=torch.long))
        if bool((index > unknown).any()):
            raise ValueError(f"speaker index out of range: {index.max().item()} >= {unknown}")
        return self.speaker_embed(index)

    def backbone(self, tokens: tuple[Tensor, ...], masks: tuple[Tensor, ...], time_cond: Tensor) -> tuple[Tensor, ...]:
        """MMDiT blocks (the package's loop, unrolled here so each block can be checkpointed)."""
        mm = self.mmdit
        streams = [mm.expand_streams(t) for t in tokens]
        use_checkpoint = self.config.gradient_checkpointing and self.training and torch.is_grad_enabled()
        if self.fused_inference and not torch.is_grad_enabled():
            for block in mm.blocks:
                streams = fused_block_forward(block, tuple(streams), masks, time_cond)
            return tuple(norm(mm.reduce_streams(s)) for s, norm in zip(streams, mm.norms, strict=True))
        for block in mm.blocks:

            def run(*xs: Tensor, block: nn.Module = block) -> tuple[Tensor, ...]:
                return tuple(block(modality_tokens=xs, modality_masks=masks, time_cond=time_cond))

            streams = checkpoint(run, *streams, use_reentrant=False) if use_checkpoint else run(*streams)
        return tuple(norm(mm.reduce_streams(s)) for s, norm in zip(streams, mm.norms, strict=True))

    def forward(
        self,
        *,
        text: Tensor | None = None,
        text_mask: Tensor | None = None,
        wavlm: Tensor | None = None,
        mfcc: Tensor | None = None,
        audio_mask: Tensor | None = None,
        gesture: Tensor | None = None,
        gesture_mask: Tensor | None = None,
        gesture_known: Tensor | None = None,
        t_text: float | Tensor,
        t_audio: float | Tensor,
        t_gesture: float | Tensor,
        step_size: float | Tensor | None = None,
        speaker: Tensor | None = None,
        generate: set[str],
        with_code_logits: bool = True,
        cache: dict | None = None,
    ) -> dict[str, Any]:
        """One network evaluation; returns only the heads of the generated streams.

        Shapes: text (b, n, text_feature_dim), text_mask (b, n); wavlm (b, 4n, 768), mfcc (b, 4n, 128),
        audio_mask (b, 4n) at 30 fps; gesture (b, n, parts * latent_dim), gesture_mask / gesture_known (b, n).
        Masks are True where valid; speaker (b,) indices into the checkpoint's speaker list, < 0 or None for the
        unknown speaker. Outputs: gesture_velocity (b, n, parts * latent_dim), code_logits
        {part: (b, n, num_code_layers, num_codes)}, text_logits (b, n, vocab), mfcc_velocity (b, 4n, 128).
        """
        generate = set(generate)
        dtype = self.gesture_in.weight.dtype  # inputs follow the weights (model.to(torch.bfloat16) for inference)
        text, wavlm, mfcc, gesture = (v.to(dtype) if exists(v) else None for v in (text, wavlm, mfcc, gesture))
        assert generate <= set(STREAMS), f"unknown streams in generate: {generate - set(STREAMS)}"
        inputs = dict(
            text=text, text_mask=text_mask, wavlm=wavlm, mfcc=mfcc, audio_mask=audio_mask,
            gesture=gesture, gesture_mask=gesture_mask, gesture_known=gesture_known,
        )
        present = [v for v in (text, text_mask, mfcc, gesture) if exists(v)]
        assert present, "at least one stream must be given"
        batch, device = present[0].shape[0], present[0].device

        streams = [self._stream_inputs(s, generate, batch, inputs, cache) for s in STREAMS]
        tokens, masks, real = zip(*streams, strict=True)
        tokens = self._add_aligned(list(tokens), real, generate)
        step = as_batch_tensor(step_size, batch, device) if exists(step_size) else None
        times = (as_batch_tensor(t, batch, device) for t in (t_text, t_audio, t_gesture))
        time_cond = self.time_condition(*times, step)
        speaker_cond = self.speaker_condition(speaker, batch, device)
        time_cond = time_cond + speaker_cond.to(time_cond.dtype) if exists(speaker_cond) else time_cond
        # bf16 weights: mHC mixes residual streams in float32, autocast keeps every matmul in the weights' dtype.
        # float32 weights leave the caller's autocast (mixed-precision training) in force rather than disabling it.
        precision = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
        with precision:
            text_out, audio_out, gesture_out = self.backbone(tokens, masks, time_cond)

        out: dict[str, Any] = {}  # heads returned in float32 whatever the weights' dtype
        if "gesture" in generate:
            out["gesture_velocity"] = self.to_gesture_velocity(gesture_out).float()
            if with_code_logits:
                out["code_logits"] = {
                    part: rearrange(head(gesture_out).float(), "b n (l c) -> b n l c", l=self.config.num_code_layers)
                    for part, head in self.to_code_logits.items()
                }
        if "text" in generate:
            out["text_logits"] = self.to_text_logits(text_out).float()
        if "audio" in generate:
            velocity = self.to_mfcc_velocity(audio_out).float()
            velocity = rearrange(velocity, "b n (f c) -> b (n f) c", f=self.config.frames_per_token)
            out["mfcc_velocity"] = velocity[:, : mfcc.shape[1]]
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
