"""GestureLSM-compatible residual VQ-VAE: the motion tokenizer, one per body part.

Layout, state_dict keys and forward math follow GestureLSM `models/vq/` (model, encdec, resnet, residual_vq,
quantizer), so its `net_300000_<part>.pth` checkpoints load strictly. Motion is (B, T, dim); latents are
channel-last (B, T/4, code_dim); codes are (B, T/4, num_quantizers) with -1 for a dropped quantizer.

Decode path: Omniges decodes codes with the PROJECTED codebook `embedding_proj(codebook)` (`decode_codes`;
`latent2origin` for continuous latents): it is what the quantizer matched by distance and what the decoder got
at each training step. The raw codebook (`forward_decoder`, kept for GestureLSM parity) is input it never saw.

Lengths that are not a multiple of 4 are padded by repeating the last frame; `forward` crops back to T and the
decode methods crop when given `num_frames`.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from omniges.helpers import exists

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def perplexity_of(indices: Tensor, nb_code: int) -> Tensor:
    """exp(entropy) of the code histogram: how many codes are effectively used."""
    counts = torch.bincount(indices.flatten(), minlength=nb_code).float()
    prob = counts / counts.sum()
    return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(x: Tensor) -> Tensor:
    """x summed over the processes of a DDP run (x itself in one process)."""
    if _distributed():
        dist.all_reduce(x)
    return x


def from_rank0(x: Tensor) -> Tensor:
    """Rank 0's x on every process of a DDP run (random codebook rows must agree across processes)."""
    if _distributed():
        dist.broadcast(x, 0)
    return x


def gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel noise with the shape of `like` (-log of an Exp(1) draw)."""
    return -torch.empty_like(like).exponential_().log()


class ResBlock1d(nn.Module):
    """Pre-activation residual block: act, dilated conv k3, act, conv k1, dropout, plus the input."""

    def __init__(self, *, dim: int, dilation: int, activation: str, dropout: float):
        super().__init__()
        self.act = ACTIVATIONS[activation]()
        self.conv1 = nn.Conv1d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.dropout(self.conv2(self.act(self.conv1(self.act(x)))))


class Resnet1D(nn.Module):
    """Stack of residual blocks with dilations growth**k in reverse order (largest first), as GestureLSM."""

    def __init__(self, *, dim: int, depth: int, dilation_growth_rate: int, activation: str, dropout: float):
        super().__init__()
        dilations = [dilation_growth_rate**k for k in reversed(range(depth))]
        self.model = nn.Sequential(
            *[ResBlock1d(dim=dim, dilation=d, activation=activation, dropout=dropout) for d in dilations]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """(B, input_width, T) -> (B, code_dim, T / 2**down_t): conv, down_t × (stride-2 conv, Resnet1D), conv."""

    def __init__(self, *, input_width: int, code_dim: int, width: int, down_t: int, **resnet: object):
        super().__init__()
        downs = [
            nn.Sequential(nn.Conv1d(width, width, 4, 2, 1), Resnet1D(dim=width, **resnet))
            for _ in range(down_t)
        ]
        self.model = nn.Sequential(
            nn.Conv1d(input_width, width, 3, 1, 1), nn.ReLU(), *downs, nn.Conv1d(width, code_dim, 3, 1, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, code_dim, T/4) -> (B, input_width, T): conv, down_t × (Resnet1D, ×2 upsample, conv), conv, conv."""

    def __init__(self, *, input_width: int, code_dim: int, width: int, down_t: int, **resnet: object):
        super().__init__()
        ups = [
            nn.Sequential(
                Resnet1D(dim=width, **resnet),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(width, width, 3, 1, 1),
            )
            for _ in range(down_t)
        ]
        self.model = nn.Sequential(
            nn.Conv1d(code_dim, width, 3, 1, 1),
            nn.ReLU(),
            *ups,
            nn.Conv1d(width, width, 3, 1, 1),
            nn.ReLU(),
            nn.Conv1d(width, input_width, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class QuantizeEMAReset(nn.Module):
    """One codebook. Distances use `embedding_proj(codebook)`; training moves codes by EMA, resets dead ones.

    `codebook` is the only persistent buffer (GestureLSM layout). A fresh (all-zero) codebook is initialised
    from the first training batch; a loaded one is kept and its EMA statistics restart from it (count 1 each).
    `embedding_proj` starts as the identity (GestureLSM: random) so fresh EMA centres are the distance
    centres; this speeds up training from scratch and does not matter for loaded checkpoints.
    """

    def __init__(self, *, nb_code: int, code_dim: int, mu: float):
        super().__init__()
        self.nb_code, self.code_dim, self.mu = nb_code, code_dim, mu
        self.embedding_proj = nn.Linear(code_dim, code_dim)
        nn.init.eye_(self.embedding_proj.weight)
        nn.init.zeros_(self.embedding_proj.bias)
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)
        self.ema_ready = False

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.ema_ready = False

    def projected_codebook(self) -> Tensor:
        """(nb_code, code_dim) vectors the quantizer compares against and outputs."""
        return self.embedding_proj(self.codebook)

    @torch.no_grad()
    def nearest(self, x: Tensor, temperature: float = 0.0) -> Tensor:
        """(n, d) -> (n,) code index: Gumbel-perturbed in training when temperature > 0, else argmin."""
        codes = self.projected_codebook()
        distance = x.pow(2).sum(-1, keepdim=True) - 2 * x @ codes.t() + codes.pow(2).sum(-1)
        logits = -distance
        if self.training and temperature > 0:
            logits = logits / temperature + gumbel_noise(logits)
        return logits.argmax(-1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Code indices -> projected code vectors."""
        return F.embedding(indices, self.projected_codebook())

    def _random_rows(self, x: Tensor) -> Tensor:
        """nb_code rows drawn from x (tiled with small noise when x has fewer rows), for init and reset."""
        if x.shape[0] < self.nb_code:
            x = x.repeat(math.ceil(self.nb_code / x.shape[0]), 1)
            x = x + torch.randn_like(x) * (0.01 / math.sqrt(self.code_dim))
        return x[torch.randperm(x.shape[0], device=x.device)[: self.nb_code]]

    @torch.no_grad()
    def _prepare_ema(self, x: Tensor) -> None:
        if self.ema_ready:
            return
        if not self.codebook.any():
            self.codebook = from_rank0(self._random_rows(x))
        self.code_sum = self.codebook.clone()
        self.code_count = torch.ones_like(self.code_count)
        self.ema_ready = True

    @torch.no_grad()
    def _update_codebook(self, x: Tensor, indices: Tensor) -> None:
        batch_sum = torch.zeros_like(self.code_sum).index_add_(0, indices, x)
        batch_count = torch.bincount(indices, minlength=self.nb_code).type_as(x)
        batch_sum, batch_count = all_sum(batch_sum), all_sum(batch_count)  # DDP: EMA of the global batch
        self.code_sum = self.mu * self.code_sum + (1 - self.mu) * batch_sum
        self.code_count = self.mu * self.code_count + (1 - self.mu) * batch_count
        alive = rearrange(self.code_count >= 1.0, "c -> c 1")
        centres = self.code_sum / rearrange(self.code_count, "c -> c 1")
        self.codebook = centres if alive.all() else torch.where(alive, centres, from_rank0(self._random_rows(x)))

    def forward(self, x: Tensor, *, temperature: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(n, d) -> (straight-through quantized (n, d), indices (n,), commitment loss, perplexity); float32 always
        (nearest-code search and EMA statistics are not safe in bf16/fp16 mixed-precision training)."""
        with torch.autocast(x.device.type, enabled=False):
            return self._quantize(x.float(), temperature)

    def _quantize(self, x: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.training:
            self._prepare_ema(x)
        indices = self.nearest(x, temperature)
        quantized = self.lookup(indices)
        if self.training:
            self._update_codebook(x.detach(), indices)
        commit = F.mse_loss(x, quantized.detach()) + F.mse_loss(x.detach(), quantized)
        return x + (quantized - x).detach(), indices, commit, perplexity_of(indices, self.nb_code)


class ResidualVQ(nn.Module):
    """Residual quantization over `num_quantizers` codebooks; training drops a random tail of layers."""

    def __init__(
        self,
        *,
        num_quantizers: int,
        nb_code: int,
        code_dim: int,
        mu: float,
        quantize_dropout_prob: float,
        quantize_dropout_cutoff_index: int,
        sample_codebook_temp: float,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [QuantizeEMAReset(nb_code=nb_code, code_dim=code_dim, mu=mu) for _ in range(num_quantizers)]
        )
        self.num_quantizers, self.nb_code = num_quantizers, nb_code
        self.quantize_dropout_prob = quantize_dropout_prob
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.sample_codebook_temp = sample_codebook_temp

    def _num_active_layers(self) -> int:
        if self.training and torch.rand(()).item() < self.quantize_dropout_prob:
            return int(torch.randint(self.quantize_dropout_cutoff_index, self.num_quantizers, ()).item()) + 1
        return self.num_quantizers

    def forward(self, latent: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(b, n, d) -> (quantized (b, n, d), codes (b, n, q), mean commitment loss, mean perplexity)."""
        residual = rearrange(latent, "b n d -> (b n) d")
        num_active = self._num_active_layers()
        quantized_out, indices, losses, perplexities = 0.0, [], [], []
        for layer in self.layers[:num_active]:
            quantized, idx, loss, perplexity = layer(residual, temperature=self.sample_codebook_temp)
            residual = residual - quantized.detach()
            quantized_out = quantized_out + quantized
            indices.append(idx)
            losses.append(loss)
            perplexities.append(perplexity)
        indices += [torch.full_like(indices[0], -1)] * (self.num_quantizers - num_active)
        codes = rearrange(torch.stack(indices, -1), "(b n) q -> b n q", b=latent.shape[0])
        quantized_out = rearrange(quantized_out, "(b n) d -> b n d", b=latent.shape[0])
        return quantized_out, codes, torch.stack(losses).mean(), torch.stack(perplexities).mean()

    @torch.no_grad()
    def encode(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """Deterministic codes (b, n, q) and per-layer projected vectors (q, b, n, d); never updates EMA."""
        residual = rearrange(latent, "b n d -> (b n) d")
        indices, vectors = [], []
        for layer in self.layers:
            idx = layer.nearest(residual)
            vector = layer.lookup(idx)
            residual = residual - vector
            indices.append(idx)
            vectors.append(vector)
        codes = rearrange(torch.stack(indices, -1), "(b n) q -> b n q", b=latent.shape[0])
        return codes, rearrange(torch.stack(vectors), "q (b n) d -> q b n d", b=latent.shape[0])

    def codes_to_latent(self, codes: Tensor, *, projected: bool) -> Tensor:
        """(b, n, q' <= q) codes, -1 = dropped layer -> summed code vectors (b, n, d)."""
        if codes.shape[-1] < self.num_quantizers:
            codes = F.pad(codes, (0, self.num_quantizers - codes.shape[-1]), value=-1)
        books = [layer.projected_codebook() if projected else layer.codebook for layer in self.layers]
        latent = 0.0
        for book, idx in zip(books, rearrange(codes, "b n q -> q b n"), strict=True):
            vectors = F.embedding(idx.clamp(min=0), book)
            latent = latent + vectors * rearrange(idx >= 0, "b n -> b n 1")
        return latent


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model."""


class RVQVAE(nn.Module):
    """GestureLSM RVQVAE for one part: conv encoder (time ÷ 4), residual VQ, conv decoder; defaults: full."""

    def __init__(
        self,
        *,
        input_width: int,
        nb_code: int = 1024,
        code_dim: int = 128,
        width: int = 512,
        depth: int = 3,
        dilation_growth_rate: int = 3,
        down_t: int = 2,
        activation: str = "relu",
        num_quantizers: int = 6,
        quantize_dropout_prob: float = 0.2,
        quantize_dropout_cutoff_index: int = 0,
        mu: float = 0.99,
        sample_codebook_temp: float = 0.5,
        resblock_dropout: float = 0.2,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.input_width, self.code_dim, self.nb_code = input_width, code_dim, nb_code
        self.num_quantizers, self.frames_per_latent = num_quantizers, 2**down_t
        self.config = dict(
            input_width=input_width,
            nb_code=nb_code,
            code_dim=code_dim,
            width=width,
            depth=depth,
            dilation_growth_rate=dilation_growth_rate,
            down_t=down_t,
            num_quantizers=num_quantizers,
        )
        resnet = dict(
            depth=depth,
            dilation_growth_rate=dilation_growth_rate,
            activation=activation,
            dropout=resblock_dropout,
        )
        self.encoder = Encoder(
            input_width=input_width, code_dim=code_dim, width=width, down_t=down_t, **resnet
        )
        self.decoder = Decoder(
            input_width=input_width, code_dim=code_dim, width=width, down_t=down_t, **resnet
        )
        self.quantizer = ResidualVQ(
            num_quantizers=num_quantizers,
            nb_code=nb_code,
            code_dim=code_dim,
            mu=mu,
            quantize_dropout_prob=quantize_dropout_prob,
            quantize_dropout_cutoff_index=quantize_dropout_cutoff_index,
            sample_codebook_temp=sample_codebook_temp,
        )

    def _check_motion(self, x: Tensor) -> Tensor:
        """Validate (B, T, input_width) motion and return it channel-first, edge-padded to a multiple of 4."""
        if x.ndim != 3 or x.shape[-1] != self.input_width:
            raise ValueError(f"expected motion of shape (B, T, {self.input_width}), got {tuple(x.shape)}")
        if x.shape[1] < self.frames_per_latent:
            raise ValueError(f"need at least {self.frames_per_latent} frames, got {x.shape[1]}")
        if not torch.isfinite(x).all():
            raise ValueError("motion contains NaN or inf")
        x = rearrange(x.to(self.encoder.model[0].weight.dtype), "b t c -> b c t")
        pad = -x.shape[-1] % self.frames_per_latent
        return F.pad(x, (0, pad), mode="replicate") if pad else x

    def _check_latent(self, latent: Tensor) -> None:
        if latent.ndim != 3 or latent.shape[-1] != self.code_dim:
            raise ValueError(f"expected latent of shape (B, N, {self.code_dim}), got {tuple(latent.shape)}")
        if not torch.isfinite(latent).all():
            raise ValueError("latent contains NaN or inf")

    def _check_codes(self, codes: Tensor) -> None:
        if codes.ndim != 3 or not 1 <= codes.shape[-1] <= self.num_quantizers:
            raise ValueError(
                f"expected codes of shape (B, N, <= {self.num_quantizers}), got {tuple(codes.shape)}"
            )
        if codes.dtype.is_floating_point or codes.min() < -1 or codes.max() >= self.nb_code:
            raise ValueError(f"codes must be integers in [-1, {self.nb_code}), -1 = dropped layer")

    def _decode(self, latent: Tensor, num_frames: int | None) -> Tensor:
        """Latent (B, N, code_dim) -> motion (B, T, dim) in float32, in whatever dtype the decoder's weights are."""
        # the weights' dtype; a decoder without float weights (int8, models/quantize.py) takes float32
        latent = latent.to(next((p.dtype for p in self.decoder.parameters()), torch.float32))
        motion = rearrange(self.decoder(rearrange(latent, "b n d -> b d n")).float(), "b c t -> b t c")
        return motion[:, :num_frames] if exists(num_frames) else motion

    def map2latent(self, x: Tensor) -> Tensor:
        """Motion (B, T, dim) -> continuous encoder latent (B, ceil(T/4), code_dim)."""
        return rearrange(self.encoder(self._check_motion(x)), "b d n -> b n d")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Motion -> (codes (B, T/4, q) long, per-layer projected codes (q, B, code_dim, T/4))."""
        codes, vectors = self.quantizer.encode(self.map2latent(x))
        return codes, rearrange(vectors, "q b n d -> q b d n")

    def quantize(self, latent: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Latent -> (quantized latent, codes, commitment, perplexity); stochastic + EMA update in train."""
        self._check_latent(latent)
        return self.quantizer(latent)

    def latent2origin(
        self, latent: Tensor, *, num_frames: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Quantize a continuous latent and decode it: (motion, commitment, perplexity); input unchanged.

        GestureLSM's version subtracts in place from its input; this one does not, so no clone is needed.
        """
        quantized, _, commit, perplexity = self.quantize(latent)
        return self._decode(quantized, num_frames), commit, perplexity

    def decode_latent(self, latent: Tensor, *, num_frames: int | None = None) -> Tensor:
        """Decode a continuous latent directly, without quantizing it."""
        self._check_latent(latent)
        return self._decode(latent, num_frames)

    def decode_codes(self, codes: Tensor, *, num_frames: int | None = None) -> Tensor:
        """Codes (B, N, q) -> motion via the projected codebook (the path Omniges uses)."""
        self._check_codes(codes)
        return self._decode(self.quantizer.codes_to_latent(codes, projected=True), num_frames)

    def forward_decoder(self, codes: Tensor, *, num_frames: int | None = None) -> Tensor:
        """Codes -> motion via the RAW codebook, exactly as GestureLSM's `forward_decoder` (parity only)."""
        self._check_codes(codes)
        return self._decode(self.quantizer.codes_to_latent(codes, projected=False), num_frames)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruct motion: dict(rec_pose (B, T, dim), commit_loss, perplexity)."""
        rec, commit, perplexity = self.latent2origin(self.map2latent(x), num_frames=x.shape[1])
        return dict(rec_pose=rec, commit_loss=commit, perplexity=perplexity)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write `{'net': state_dict}` atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save({"net": self.state_dict()}, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path: str | os.PathLike, *, strict: bool = True) -> dict[str, list[str]]:
        """Load a GestureLSM/Omniges `{'net': state_dict}` file; CheckpointMismatchError names every problem.

        Shape mismatches always raise; missing/unexpected keys raise when strict. Returns those keys.
        """
        path = Path(path)
        payload = torch.load(path, map_location="cpu", weights_only=True)
        state = payload.get("net", payload) if isinstance(payload, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise CheckpointMismatchError(f"{path}: expected {{'net': state_dict}} or a state_dict")
        problems = state_dict_mismatch(self.state_dict(), state)
        if problems["shape_mismatch"] or (strict and (problems["missing"] or problems["unexpected"])):
            raise CheckpointMismatchError(f"{path} does not fit RVQVAE({self.config}): " + describe(problems))
        self.load_state_dict(state, strict=strict)
        return dict(missing=problems["missing"], unexpected=problems["unexpected"])


def state_dict_mismatch(expected: dict[str, Tensor], found: dict[str, Tensor]) -> dict[str, list[str]]:
    """Keys missing from `found`, unexpected in it, and 'key: checkpoint (..) vs model (..)' mismatches."""
    shapes = [
        f"{k}: checkpoint {tuple(found[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    return dict(
        missing=[k for k in expected if k not in found],
        unexpected=[k for k in found if k not in expected],
        shape_mismatch=shapes,
    )


def describe(problems: dict[str, list[str]], limit: int = 8) -> str:
    """Human-readable summary of `state_dict_mismatch`, at most `limit` items per kind."""
    parts = []
    for kind, items in problems.items():
        if items:
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{len(items)} {kind.replace('_', ' ')}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)
