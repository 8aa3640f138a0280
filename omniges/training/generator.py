"""Stage `train_<experiment>`: the Omniges generator trained on one task (a2g, t2g, g2t, g2a) or all of them.

The written `model.pt` holds everything inference needs: the model config and EMA weights, the tasks,
the latent scales, audio-feature statistics and the feature/tokenizer provenance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omniges.data.body import PART_NAMES
from omniges.data.dataset import (
    FRAMES_PER_TOKEN,
    BatchNormalizer,
    OmnigesDataset,
    collate,
    corpus_speakers,
    crop_batch,
)
from omniges.data.resident import ResidentWindows, use_resident
from omniges.data.store import LmdbReader, write_json_atomic
from omniges.features.text import Vocabulary
from omniges.models.flow_loss import FlowLoss
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel, count_parameters
from omniges.tokenizer.processor import GestureProcessor
from omniges.training.losses import (
    LossWeights,
    guard_finite,
    latent_velocity_loss,
    mfcc_l1,
    pose_space_losses,
)
from omniges.training.trainer import TrainConfig, Trainer, save_checkpoint

log = logging.getLogger("omniges.generator")


def flow_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Dataset batch -> the keys FlowLoss expects (masks True = valid)."""
    token_mask = batch["token_mask"]
    has_text = batch["has_text"][:, None]
    ids = batch["word_ids"].clone()
    ids[~(token_mask & has_text)] = -1  # no transcript or padding: ignored by the text cross-entropy
    return {
        "gesture": batch["gesture"], "gesture_mask": token_mask,
        "wavlm": batch["wavlm"], "mfcc": batch["mfcc"], "audio_mask": batch["frame_mask"],
        "text": batch["text"], "text_mask": token_mask & has_text, "text_ids": ids,
        "codes": {part: batch["codes"][:, :, i] for i, part in enumerate(PART_NAMES)},
    } | ({"speaker": batch["speaker"]} if "speaker" in batch else {})


def model_config(size: str, overrides: dict[str, Any], *, text_dim: int, vocab_size: int) -> OmnigesConfig:
    """The `model` params: a named size plus overrides; text width and vocabulary come from the features stage."""
    base = {"demo": OmnigesConfig.demo, "full": OmnigesConfig.full}
    if size not in base:
        raise ValueError(f"model.size must be one of {sorted(base)}, got {size!r}")
    return base[size](**{"text_feature_dim": text_dim, "vocab_size": vocab_size, **overrides})


def model_speakers(corpus: list[int], overrides: dict[str, Any]) -> list[int]:
    """The speakers the generator is conditioned on: the corpus's, or none with `model.overrides.num_speakers: 0`."""
    wanted = overrides.get("num_speakers", len(corpus))
    if wanted not in (0, len(corpus)):
        raise ValueError(f"model.overrides.num_speakers must be 0 (no speaker conditioning) or the corpus's "
                         f"{len(corpus)} training speakers, got {wanted}")
    return corpus if wanted else []


def random_crop(batch: dict[str, Any], min_tokens: int, generator: torch.Generator, *,
                batch_tokens: int = 0) -> dict[str, Any]:
    """The whole batch cut to one random length in [min_tokens, window] at one random offset, drawn from
    `generator` (so a resumed run crops identically). Training on every length up to the window lets inference
    use windows that long (fewer, larger windows: faster) and handle a short last window. With `batch_tokens`,
    a batch of length L keeps its first max(1, batch_tokens // L) samples: every step costs about the same."""
    total = batch["gesture"].shape[1]
    if min_tokens >= total:
        return batch
    draw = torch.randint(0, 2**31 - 1, (2,), generator=generator, device=generator.device).tolist()
    length = min_tokens + draw[0] % (total - min_tokens + 1)
    batch = crop_batch(batch, draw[1] % (total - length + 1), length)
    if batch_tokens:
        keep = max(1, batch_tokens // length)
        batch = {k: v[:keep] for k, v in batch.items()}
    return batch


def make_loss_fn(flow: FlowLoss, processor: GestureProcessor, weights: LossWeights, *, min_tokens: int = 0,
                 batch_tokens: int = 0, normalize: BatchNormalizer | None = None):
    """loss_fn(model, batch, task, generator) for the Trainer; training batches are cut to random lengths of at
    least `min_tokens` tokens (validation sees whole windows). `normalize` standardises raw batches first."""

    def loss_fn(model, batch, task, generator):
        if normalize is not None:
            batch = normalize(batch)
        if model.training and min_tokens:
            batch = random_crop(batch, min_tokens, generator, batch_tokens=batch_tokens)
        inputs = flow_batch(batch)

        def aux(stream, x1_pred, rows):
            if stream == "gesture":
                losses = pose_space_losses(processor, x1_pred, batch, rows, weights)
                if weights.latent_velocity:
                    losses |= latent_velocity_loss(x1_pred, inputs, rows, weights.latent_velocity)
                return losses
            return mfcc_l1(x1_pred, batch, rows, weights.reconstruction)

        return guard_finite(flow.training_step(model, inputs, task, generator=generator, aux_loss=aux))

    return loss_fn


def config_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def inputs_fingerprint(cache_dir: Path, rvqvae_dir: Path) -> str:
    """A digest of what the generator trains on: the caches' metadata (clips, features, latents), the pose
    statistics and vocabulary, and the tokenizer checkpoints. A checkpoint trained on other inputs (a new corpus,
    retrained tokenizers) is never resumed."""
    digest = hashlib.sha256()
    for name in ("clips.lmdb", "features.lmdb", "latents.lmdb"):
        digest.update(json.dumps(LmdbReader(cache_dir / name).meta, sort_keys=True, default=str).encode())
    for path in [cache_dir / "stats.npz", cache_dir / "vocab.json", *sorted(Path(rvqvae_dir).glob("*.pth"))]:
        with path.open("rb") as handle:
            digest.update(path.name.encode())
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _datasets(cache_dir: Path, part_stats: dict[str, Any], overrides: dict[str, Any], *, window: int,
              stride: int) -> tuple[OmnigesDataset, OmnigesDataset, list[int]]:
    """Training and validation windows and the speakers the model is conditioned on.

    Items are raw (float16 audio features, un-normalised parts): loader workers move half the bytes, and the
    standardisation runs on the training device inside the loss. The speakers are the training clips' (data.speakers
    selected them at preprocess): one embedding each plus the unknown speaker; the list is stored in model.pt, so
    `--speaker ID` names a speaker, not an index."""
    train_splits = ["train", "additional"]
    speakers = model_speakers(corpus_speakers(LmdbReader(cache_dir / "clips.lmdb"), train_splits), overrides)
    train_set = OmnigesDataset(cache_dir, split=train_splits, length=window, stride=stride,
                               part_stats=part_stats, raw=True, speakers=speakers or None)
    val_set = OmnigesDataset(cache_dir, split="val", length=window, stride=window, part_stats=part_stats, raw=True,
                             speakers=speakers or None)
    return train_set, val_set, speakers


def _resume_if_same(trainer: Trainer, marker: Path, digest: str, experiment: str) -> None:
    """Resume from the last checkpoint when it was trained with the same settings and inputs (`digest`), else
    start from step 0 (rank 0 removes the stale checkpoint and records the new digest)."""
    acc = trainer.accelerator
    same_settings = marker.exists() and json.loads(marker.read_text()).get("hash") == digest
    acc.wait_for_everyone()  # every process has decided before rank 0 changes the folder
    if same_settings:
        trainer.resume()
    elif trainer.checkpoint_path.exists() and acc.is_main_process:
        log.info("train_%s: %s was trained with other settings or inputs (corpus, features, tokenizers): "
                 "training from step 0", experiment, trainer.checkpoint_path)
    if not same_settings and acc.is_main_process:
        marker.parent.mkdir(parents=True, exist_ok=True)
        trainer.checkpoint_path.unlink(missing_ok=True)
        write_json_atomic(marker, {"hash": digest})
    acc.wait_for_everyone()


def train_generator(
    experiment: str, *, cache_dir: str | Path, rvqvae_dir: str | Path, out_dir: str | Path, model: dict[str, Any],
    training: dict[str, Any], flow: dict[str, Any], loss: dict[str, Any], window: int, stride: int, face_jaw: bool,
    min_window: int | None = None, batch_tokens: int = 0, features_params: dict[str, Any] | None = None,
    log_metrics=None, progress: bool = True, device: str = "auto",
) -> dict[str, Any]:
    """Train one experiment; resume from its last checkpoint when the same settings were interrupted.

    Windows are `window` frames; with `min_window` each training batch is cut to a random length between the two
    (and, with `batch_tokens`, to about that many gesture tokens). Under a multi-process launch every process
    trains its shard of the batch (DDP) and only rank 0 writes checkpoints and the model.
    """
    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    min_window = window if min_window is None else min_window
    if min_window % FRAMES_PER_TOKEN or not FRAMES_PER_TOKEN <= min_window <= window:
        raise ValueError(f"training.min_window ({min_window}) must be a multiple of {FRAMES_PER_TOKEN} in "
                         f"[{FRAMES_PER_TOKEN}, training.window = {window}]")
    train_cfg = TrainConfig.from_dict(training)
    random.seed(train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    latent_scale = LmdbReader(cache_dir / "latents.lmdb").meta["latent_scale"]
    processor = GestureProcessor.load(rvqvae_dir, cache_dir / "stats.npz", latent_scale=latent_scale,
                                      face_jaw=face_jaw)
    train_set, val_set, speakers = _datasets(cache_dir, processor.part_stats(), model.get("overrides", {}),
                                             window=window, stride=stride)
    vocab = Vocabulary.load(cache_dir / "vocab.json")
    text_dim = train_set.features.meta["text_dim"]
    config = model_config(model["size"], {**model.get("overrides", {}), "num_speakers": len(speakers)},
                          text_dim=text_dim, vocab_size=len(vocab))
    net = OmnigesTransformerModel(config)
    weights = LossWeights(**loss)
    rectified = FlowLoss(**flow, code_weight=weights.code, text_weight=weights.text, shortcut_weight=weights.shortcut)
    settings = {"experiment": experiment, "model": config.to_dict(), "training": training, "flow": flow, "loss": loss,
                "window": window, "stride": stride, "min_window": min_window, "batch_tokens": batch_tokens,
                "inputs": inputs_fingerprint(cache_dir, Path(rvqvae_dir))}
    digest = config_hash(settings)
    trainer = Trainer(net, train_set=train_set, val_set=val_set, collate=collate,
                      loss_fn=make_loss_fn(rectified, processor, weights, min_tokens=min_window // FRAMES_PER_TOKEN,
                                           batch_tokens=batch_tokens, normalize=train_set.normalizer()),
                      config=train_cfg, out_dir=out_dir, log_metrics=log_metrics, device=device)
    acc = trainer.accelerator
    if use_resident(train_cfg.data_on_device, train_set, acc.device, train_cfg.resident_max_fraction):
        trainer.resident = ResidentWindows(train_set, acc.device)
        log.info("train_%s: the training split is held on %s (%.2f GB): batches are gathered there", experiment,
                 acc.device, trainer.resident.nbytes / 1e9)
    processor.to(acc.device)  # the frozen tokenizer's decoders give the pose-space losses, next to the model
    _resume_if_same(trainer, out_dir / "checkpoints" / "settings.json", digest, experiment)
    log.info("train_%s: %d parameters, %d train / %d val windows, tasks %s, on %s x %d process(es), effective batch "
             "%d (%d per device x %d processes x %d accumulation steps)", experiment, count_parameters(net),
             len(train_set), len(val_set), train_cfg.tasks, acc.device, acc.num_processes, trainer.effective_batch,
             train_cfg.batch_size, acc.num_processes, acc.gradient_accumulation_steps)
    final = trainer.fit(progress=progress)
    payload = {
        "experiment": experiment, "config": config.to_dict(), "state_dict": trainer.ema_state_dict(),
        "tasks": sorted(train_cfg.tasks), "latent_scale": train_set.latent_scale,
        "audio_stats": {k: np.asarray(v) for k, v in train_set.audio_stats.items()}, "flow": flow,
        "window": window, "min_window": min_window, "face_jaw": face_jaw,
        "features": {k: train_set.features.meta[k] for k in ("wavlm", "wavlm_random_init", "text", "n_mfcc")},
        "features_params": features_params or {}, "settings_hash": digest,
        "speakers": speakers,
    }
    summary = {"parameters": count_parameters(net), "train_windows": len(train_set), "steps": train_cfg.steps,
               "device": str(acc.device), "processes": acc.num_processes,
               "mixed_precision": train_cfg.mixed_precision, "effective_batch": trainer.effective_batch,
               **{k: v for k, v in final.items() if k.startswith(("val/", "train/"))}}
    if acc.is_main_process:  # under `accelerate launch` every process gets here
        save_checkpoint(out_dir / "model.pt", payload)
        write_json_atomic(out_dir / "train_metrics.json", {"summary": summary, "history": trainer.history})
    acc.wait_for_everyone()
    return summary
