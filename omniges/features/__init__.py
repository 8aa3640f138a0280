"""Feature extraction: audio (load, MFCC / log-mel, WavLM) and text (word alignment, vocabulary, encoder)."""

from omniges.features.audio import (
    AudioError,
    WavLMFeatures,
    align_audio_to_motion,
    load_audio,
    logmel,
    logmel_to_mfcc,
    logmel_to_wave,
    mfcc,
    mfcc_to_logmel,
    n_motion_frames,
    n_wavlm_frames,
)
from omniges.features.text import (
    TextEncoder,
    Vocabulary,
    frame_text_features,
    frame_token_ids,
    words_to_frames,
)

__all__ = [
    "AudioError", "TextEncoder", "Vocabulary", "WavLMFeatures", "align_audio_to_motion",
    "frame_text_features", "frame_token_ids", "load_audio", "logmel", "logmel_to_mfcc", "logmel_to_wave", "mfcc",
    "mfcc_to_logmel", "n_motion_frames", "n_wavlm_frames", "words_to_frames",
]
