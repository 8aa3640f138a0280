"""GestureProcessor: the four part RVQVAEs as one tokenizer between SMPL-X arrays and generator latents.

Latents given to the generator are each part's encoder output divided by that part's latent scale
(GestureLSM divides by 5; Omniges measures the train-set std per part in `cache_latents`), concatenated
in PART_NAMES order: (B, T/4, 4 * code_dim).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from omniges.data.body import PART_NAMES, merge_parts, split_parts
from omniges.tokenizer.rvqvae import RVQVAE


def load_part_model(path: str | Path) -> RVQVAE:
    """An RVQVAE checkpoint written by the rvqvae stage (`<part>.pth` + its `<part>.json` ctor config)."""
    path = Path(path)
    config_path = path.with_suffix(".json")
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: RVQVAE config not found next to {path.name}")
    config = json.loads(config_path.read_text())["model"]
    model = RVQVAE(**config)
    model.load_checkpoint(path, strict=True)
    return model.eval()


def tokenizer_stats(rvqvae_dir: str | Path, stats_path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{part: (mean, std)}: the normalisation in each `<part>.json`, else the corpus statistics in `stats_path`.

    The rvqvae stage records the statistics a part was trained or imported with (GestureLSM's for its checkpoints);
    tokenizers written before it did were always trained on the corpus statistics.
    """
    out, corpus = {}, None
    for part in PART_NAMES:
        config_path = Path(rvqvae_dir) / f"{part}.json"
        recorded = json.loads(config_path.read_text()).get("normalization") if config_path.is_file() else None
        if recorded:
            out[part] = (np.asarray(recorded["mean"], np.float32), np.asarray(recorded["std"], np.float32))
            continue
        corpus = np.load(stats_path) if corpus is None else corpus
        out[part] = (corpus[f"{part}_mean"], corpus[f"{part}_std"])
    return out


class GestureProcessor(nn.Module):
    """encode / decode between normalised part arrays (B, T, D) and scaled latents (B, T/4, C) or codes."""

    def __init__(
        self, parts: dict[str, RVQVAE], *, stats: dict[str, tuple[np.ndarray, np.ndarray]],
        latent_scale: dict[str, float], face_jaw: bool = True,
    ):
        super().__init__()
        missing = [p for p in PART_NAMES if p not in parts]
        if missing:
            raise ValueError(f"GestureProcessor needs all parts {PART_NAMES}; missing {missing}")
        self.parts = nn.ModuleDict({p: parts[p] for p in PART_NAMES})
        self.face_jaw = face_jaw
        for name in PART_NAMES:
            mean, std = stats[name]
            self.register_buffer(f"{name}_mean", torch.as_tensor(mean, dtype=torch.float32), persistent=False)
            self.register_buffer(f"{name}_std", torch.as_tensor(std, dtype=torch.float32), persistent=False)
        self.latent_scale = {p: float(latent_scale[p]) for p in PART_NAMES}
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> GestureProcessor:
        """Always eval: the tokenizer is frozen (no quantizer EMA updates, no dropout) inside the generator."""
        return super().train(False)

    @classmethod
    def load(
        cls, rvqvae_dir: str | Path, stats_path: str | Path, *, latent_scale: dict[str, float], face_jaw: bool = True
    ) -> GestureProcessor:
        """The four part models of `rvqvae_dir`, each with the normalisation it was trained (or imported) with."""
        rvqvae_dir = Path(rvqvae_dir)
        return cls(
            {p: load_part_model(rvqvae_dir / f"{p}.pth") for p in PART_NAMES},
            stats=tokenizer_stats(rvqvae_dir, stats_path), latent_scale=latent_scale, face_jaw=face_jaw,
        )

    def part_stats(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{part: (mean, std)} this tokenizer normalises with (what a dataset must normalise targets with)."""
        return {p: (getattr(self, f"{p}_mean").cpu().numpy(), getattr(self, f"{p}_std").cpu().numpy())
                for p in PART_NAMES}

    @property
    def code_dim(self) -> int:
        return self.parts[PART_NAMES[0]].code_dim

    def normalize(self, part: str, x: Tensor) -> Tensor:
        return (x - getattr(self, f"{part}_mean")) / getattr(self, f"{part}_std")

    def denormalize(self, part: str, x: Tensor) -> Tensor:
        return x * getattr(self, f"{part}_std") + getattr(self, f"{part}_mean")

    @torch.no_grad()
    def encode(self, parts: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Normalised parts -> scaled latents (B, T/4, 4C) and codes (B, T/4, 4, num_quantizers)."""
        latents, codes = [], []
        for name in PART_NAMES:
            model = self.parts[name]
            latent = model.map2latent(parts[name])
            latents.append(latent / self.latent_scale[name])
            codes.append(model.quantize(latent)[1])
        return torch.cat(latents, -1), torch.stack(codes, 2)

    def split_latents(self, latents: Tensor) -> dict[str, Tensor]:
        """(B, N, 4C) -> {part: (B, N, C)} unscaled."""
        chunks = rearrange(latents, "b n (p c) -> p b n c", p=len(PART_NAMES))
        return {name: chunks[i] * self.latent_scale[name] for i, name in enumerate(PART_NAMES)}

    def decoders_to(self, dtype: torch.dtype) -> None:
        """Cast the part decoders' weights (bf16 inference); they return float32 motion whatever the dtype."""
        for part in self.parts.values():
            part.decoder.to(dtype)

    def quantize_decoders(self) -> None:
        """Run the part decoders' convolutions int8 (CPU; `generation.quantize`): float32 around them."""
        from omniges.models.quantize import quantize_convs

        for part in self.parts.values():
            quantize_convs(part.decoder.float())

    def decode_from_latents(self, latents: Tensor, *, num_frames: int | None = None,
                            quantize: bool = False) -> dict[str, Tensor]:
        """Scaled latents (B, N, 4C) -> normalised parts (B, T, D); differentiable when `quantize` is False."""
        out = {}
        for name, latent in self.split_latents(latents).items():
            model = self.parts[name]
            if quantize:
                out[name] = model.latent2origin(latent, num_frames=num_frames)[0]
            else:
                out[name] = model.decode_latent(latent, num_frames=num_frames)
        return out

    @torch.no_grad()
    def decode_from_codes(self, codes: Tensor, *, num_frames: int | None = None) -> dict[str, Tensor]:
        """Codes (B, N, 4, Q) -> normalised parts (B, T, D) through the projected codebooks."""
        return {name: self.parts[name].decode_codes(codes[:, :, i], num_frames=num_frames)
                for i, name in enumerate(PART_NAMES)}

    def from_smplx(self, poses: np.ndarray, trans: np.ndarray, expressions: np.ndarray) -> dict[str, Tensor]:
        """SMPL-X arrays of one clip -> normalised part tensors (1, T, D)."""
        parts = split_parts(poses, trans, expressions, face_jaw=self.face_jaw)
        device = getattr(self, f"{PART_NAMES[0]}_mean").device
        return {p: self.normalize(p, torch.as_tensor(v, device=device))[None] for p, v in parts.items()}

    def to_smplx(self, parts: dict[str, Tensor], *, trans_init: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised parts of one clip (1, T, D) -> poses (T,165), trans (T,3) integrated, expressions (T,100)."""
        raw = {p: self.denormalize(p, v)[0].detach().cpu().numpy() for p, v in parts.items()}
        return merge_parts(raw, trans_init=trans_init, face_jaw=self.face_jaw)
