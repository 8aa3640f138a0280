"""Stages `rvqvae_<part>` and `cache_latents`: train (or import) one RVQVAE per part, then cache latents + codes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from omniges.data.body import EXPRESSION_DIM, PART_JOINTS, PART_NAMES, part_dim
from omniges.data.dataset import WindowSource
from omniges.data.normalization import gesturelsm_part_stats
from omniges.data.store import LmdbReader, LmdbWriter, write_json_atomic
from omniges.device import is_main_process
from omniges.tokenizer.processor import GestureProcessor
from omniges.tokenizer.rvqvae import RVQVAE
from omniges.tokenizer.training import reconstruction_report, train_rvqvae

log = logging.getLogger("omniges.tokenizer")


VAL_WINDOWS = 1024  # validation uses at most this many windows, evenly spaced and fixed


def part_windows(
    clips: LmdbReader, part: str, *, splits: tuple[str, ...], length: int, stride: int, mean: np.ndarray,
    std: np.ndarray,
) -> WindowSource:
    """Normalised (length, D) windows of one part over the clips of `splits`, read from the cache on demand."""
    return WindowSource(clips, splits=splits, length=length, stride=stride, path=f"parts/{part}", mean=mean, std=std)


def report_layout(part: str, face_jaw: bool) -> dict[str, Any]:
    """Which dims of a part are rot6d joints / translation, for the degree-error report."""
    if part == "face":
        return {"rot6d_joints": 1 if face_jaw else None, "has_translation": False, "rot6d_offset": EXPRESSION_DIM}
    return {"rot6d_joints": len(PART_JOINTS[part]), "has_translation": part == "lower_trans", "rot6d_offset": 0}


def part_normalization(
    part: str, corpus_stats: Path, *, imported: bool, normalization: dict[str, str] | None, face_jaw: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    """(mean, std, source) the part's RVQVAE sees its input with: the corpus's, or GestureLSM's for its checkpoints."""
    settings = {"source": "gesturelsm", **(normalization or {})}
    if imported and settings["source"] == "gesturelsm":
        return (*gesturelsm_part_stats(part, settings, face_jaw=face_jaw), "gesturelsm")
    stats = np.load(corpus_stats)
    return stats[f"{part}_mean"], stats[f"{part}_std"], "corpus"


def column_weights(part: str, *, face_jaw: bool, jaw_weight: float, mouth_weight: float = 1.0,
                   mouth_expressions: int = 0) -> np.ndarray | None:
    """Reconstruction-loss weight per input column of the face: the jaw's 6 columns count `jaw_weight` times an
    expression's, the first `mouth_expressions` FLAME coefficients `mouth_weight` times; None (plain mean) for every
    other part or all weights 1. Standardised, the slow upper-face coefficients outnumber the few that move with
    the syllables: unweighted, a small tokenizer spends its capacity on them and smooths the mouth away, and what
    the tokenizer drops no generator can read (G2T, G2A) or write (A2G's mouth)."""
    if part != "face":
        return None
    weights = np.ones(part_dim(part, face_jaw=face_jaw), np.float32)
    weights[:mouth_expressions] = mouth_weight
    if face_jaw:
        weights[EXPRESSION_DIM:EXPRESSION_DIM + 6] = jaw_weight
    return None if np.all(weights == 1.0) else weights


def build_tokenizer(
    cache_dir: str | Path, out_dir: str | Path, part: str, *, model: dict[str, Any], train: dict[str, Any],
    window: int, stride: int, face_jaw: bool, import_path: str = "", normalization: dict[str, str] | None = None,
    log_fn=None, progress: bool = True, device: str = "auto",
) -> dict[str, Any]:
    """Train (or strictly import) the part's RVQVAE on `device`; write `<part>.pth` + `<part>.json` (config,
    normalisation, metrics). An imported GestureLSM checkpoint is fed inputs normalised with GestureLSM's statistics.
    Under a multi-process launch every process trains (DDP) and rank 0 reports and writes."""
    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    clips = LmdbReader(cache_dir / "clips.lmdb")
    mean, std, source = part_normalization(part, cache_dir / "stats.npz", imported=bool(import_path),
                                           normalization=normalization, face_jaw=face_jaw)
    config = {"input_width": part_dim(part, face_jaw=face_jaw), **model}
    torch.manual_seed(train.get("seed", 0))
    net = RVQVAE(**config)
    windows = {split: part_windows(clips, part, splits=splits, length=window, stride=stride, mean=mean, std=std)
               for split, splits in (("train", ("train", "additional")), ("val", ("val",)))}
    windows["val"] = windows["val"].subset(VAL_WINDOWS)
    if import_path:
        net.load_checkpoint(import_path, strict=True)
        metrics: dict[str, Any] = {"imported": import_path}
        log.info("rvqvae_%s: imported %s", part, import_path)
    else:
        settings = dict(train)
        weights = column_weights(part, face_jaw=face_jaw, jaw_weight=float(settings.pop("jaw_weight", 1.0)),
                                 mouth_weight=float(settings.pop("mouth_weight", 1.0)),
                                 mouth_expressions=int(settings.pop("mouth_expressions", 0)))
        metrics = train_rvqvae(net, windows["train"], windows["val"], log_fn=log_fn, progress=progress,
                               device=device, column_weights=weights, **settings)
    if not is_main_process():
        return metrics
    layout = report_layout(part, face_jaw)
    report = reconstruction_report(net.eval(), windows["val"], mean=mean, std=std, **layout)
    metrics.update({f"val_report_{k}": v for k, v in report.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    net.save_checkpoint(out_dir / f"{part}.pth")
    write_json_atomic(out_dir / f"{part}.json", {
        "part": part, "model": config, "metrics": metrics,
        "normalization": {"source": source, "mean": mean.tolist(), "std": std.tolist()},
    })
    return metrics


def cache_latents(
    cache_dir: str | Path, rvqvae_dir: str | Path, *, face_jaw: bool, progress: bool = True, device: str = "cpu",
) -> dict[str, Any]:
    """Encode every clip with every part model on `device`: latents.lmdb of unscaled latents (T/4, C) and codes
    (T/4, Q). The per-part latent scale (train-set std of the latents) is stored in the cache's meta.
    """
    cache_dir = Path(cache_dir)
    clips = LmdbReader(cache_dir / "clips.lmdb")
    processor = GestureProcessor.load(rvqvae_dir, cache_dir / "stats.npz", latent_scale=dict.fromkeys(PART_NAMES, 1.0),
                                      face_jaw=face_jaw).to(device)
    writer = LmdbWriter(cache_dir / "latents.lmdb", resume=True)
    done = writer.keys()
    sums = {p: [0.0, 0.0, 0] for p in PART_NAMES}
    index = clips.meta["index"]
    try:
        for key in tqdm(clips.keys, desc="cache_latents", disable=not progress):
            if key in done and index[key]["split"] not in ("train", "additional"):
                continue
            record = clips[key]
            usable = record["n_frames"] - record["n_frames"] % 4
            parts = {p: processor.normalize(p, torch.from_numpy(record["parts"][p][:usable]).to(device))[None]
                     for p in PART_NAMES}
            latents, codes = processor.encode(parts)
            per_part = processor.split_latents(latents)
            entry = {"latents": {p: per_part[p][0].cpu().numpy() for p in PART_NAMES},
                     "codes": {p: codes[0, :, i].cpu().numpy().astype(np.int16) for i, p in enumerate(PART_NAMES)}}
            if index[key]["split"] in ("train", "additional"):
                for p in PART_NAMES:
                    value = entry["latents"][p].astype(np.float64)
                    sums[p][0] += value.sum()
                    sums[p][1] += (value**2).sum()
                    sums[p][2] += value.size
            if key not in done:
                writer.put(key, entry)
    except BaseException:
        writer.abort()
        raise
    scale = {p: float(np.sqrt(max(s2 / n - (s1 / n) ** 2, 1e-8))) for p, (s1, s2, n) in sums.items()}
    writer.seal({"stage": "cache_latents", "latent_scale": scale, "code_dim": processor.code_dim})
    summary = {"clips": len(clips), "latent_scale": scale, "device": str(device)}
    write_json_atomic(Path(rvqvae_dir) / "latent_scale.json", scale)
    return summary
