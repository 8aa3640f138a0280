"""Evaluation: EMAGE's FGD autoencoder and metrics (paper-comparable on BEAT2) plus Omniges' speech-motion sync."""

from omniges.evaluation.evaluator import (
    VAESKConv,
    latents,
    load_evaluator,
    poses_to_rot6d,
    save_evaluator,
    train_evaluator,
)
from omniges.evaluation.metrics import (
    beat_consistency,
    bleu,
    face_metrics,
    face_mse,
    fgd,
    l1_diversity,
    log_mel,
    log_mel_distance,
    lvd,
    mcd_dtw,
    mcd_dtw_waves,
    mel_cepstrum,
    rouge_l,
    velocity_consistency,
    weighted_mean,
)
from omniges.evaluation.sync import speech_motion_sync, sync_summary

__all__ = [
    "VAESKConv", "latents", "load_evaluator", "poses_to_rot6d", "save_evaluator", "train_evaluator",
    "beat_consistency", "bleu", "face_metrics", "face_mse", "fgd", "l1_diversity", "log_mel", "log_mel_distance",
    "lvd", "mcd_dtw", "mcd_dtw_waves", "mel_cepstrum", "rouge_l", "velocity_consistency", "weighted_mean",
    "speech_motion_sync", "sync_summary",
]
