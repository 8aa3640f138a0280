"""Audio features aligned to motion frames: loading, log-mel / MFCC (invertible), WavLM hidden states.

Time convention everywhere: feature frame t describes the instant t / fps, the same instant as motion
frame t, so a clip of n_frames motion frames gets exactly n_frames feature rows.
"""

from __future__ import annotations

import logging
import math
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.fft

from omniges.constants import SAMPLE_RATE

if TYPE_CHECKING:
    import torch
    from transformers import WavLMConfig, WavLMModel

log = logging.getLogger(__name__)

WAVLM_HOP = 320  # samples between WavLM frames at 16 kHz (50 Hz)
WAVLM_WINDOW = 400  # receptive field of WavLM's convolutional front end, in samples
WAVLM_DIM = 768
RANDOM_INIT_MESSAGE = (
    "WavLM: RANDOM INIT (no pretrained weights) — set features.wavlm.path to a local "
    "microsoft/wavlm-base-plus directory for real features"
)


class AudioError(ValueError):
    """Audio that cannot be used: missing, unreadable, empty, too short, non-finite or silent."""


# ----------------------------------------------------------------------------------------------- loading


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read any audio file as (samples, channels) float32; soundfile first, librosa/audioread for the rest."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(sr)
    except Exception as sf_error:  # fall back to librosa/audioread (m4a, ...)
        import warnings

        import librosa

        try:
            with warnings.catch_warnings():  # librosa warns that it fell back to audioread: we know
                warnings.simplefilter("ignore")
                data, sr = librosa.load(str(path), sr=None, mono=False)
        except Exception as lr_error:
            raise AudioError(f"{path}: unreadable audio ({sf_error}; {lr_error})") from lr_error
        data = np.atleast_2d(np.asarray(data, dtype=np.float32))  # librosa: (channels, samples)
        return data.T, int(sr)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr HQ via librosa); a no-op when the rates match."""
    if orig_sr == target_sr:
        return np.asarray(wave, dtype=np.float32)
    import librosa

    return librosa.resample(np.asarray(wave, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr,
                            res_type="soxr_hq").astype(np.float32)


def check_wave(wave: np.ndarray, sr: int, *, name: str = "audio", min_duration_s: float = 0.1,
               require_nonsilent: bool = True, silence_threshold: float = 1e-4) -> None:
    """Raise AudioError (naming `name`) for empty, too short, non-finite or (optionally) silent audio."""
    if wave.size == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{name}: audio contains NaN or inf samples")
    duration = wave.shape[-1] / sr
    if duration < min_duration_s:
        raise AudioError(f"{name}: audio too short ({duration:.3f} s < {min_duration_s} s)")
    if require_nonsilent and float(np.max(np.abs(wave))) < silence_threshold:
        raise AudioError(f"{name}: audio is silent (peak |x| < {silence_threshold})")


def load_audio(path: str | Path, target_sr: int = SAMPLE_RATE, *, min_duration_s: float = 0.1,
               require_nonsilent: bool = True, silence_threshold: float = 1e-4) -> np.ndarray:
    """Load any audio file as mono float32 at target_sr: (n_samples,); AudioError names the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty audio file (0 bytes)")
    data, sr = _read(path)
    wave = data.mean(axis=1) if data.ndim == 2 else data
    check_wave(wave, sr, name=str(path), min_duration_s=min_duration_s, require_nonsilent=False)
    wave = resample(wave, sr, target_sr)
    check_wave(wave, target_sr, name=str(path), min_duration_s=min_duration_s,
               require_nonsilent=require_nonsilent, silence_threshold=silence_threshold)
    return np.ascontiguousarray(wave, dtype=np.float32)


def align_audio_to_motion(wave: np.ndarray, sr: int, n_frames: int, fps: float, *, tolerance_s: float = 1.0,
                          name: str = "audio") -> np.ndarray:
    """Crop or zero-pad audio to exactly n_frames / fps seconds; AudioError if it is short by > tolerance_s."""
    target = int(round(n_frames * sr / fps))
    if wave.shape[-1] >= target:
        return wave[..., :target]
    missing_s = (target - wave.shape[-1]) / sr
    if missing_s > tolerance_s:
        raise AudioError(
            f"{name}: audio ({wave.shape[-1] / sr:.3f} s) is {missing_s:.3f} s shorter than the motion "
            f"({n_frames} frames at {fps} fps = {n_frames / fps:.3f} s); tolerance is {tolerance_s} s"
        )
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, target - wave.shape[-1])]
    return np.pad(wave, pad)


# ---------------------------------------------------------------------------------------- log-mel / MFCC


def n_motion_frames(n_samples: int, sr: int = SAMPLE_RATE, fps: float = 30) -> int:
    """Frames at fps whose instants t / fps fall inside n_samples of audio (audio of T / fps s -> T frames)."""
    return max(0, int(math.ceil((n_samples - 0.5) * fps / sr - 1e-9)))


def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Slaney mel filterbank (n_mels, n_fft // 2 + 1), the one librosa's inverse uses too."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def logmel(wave: np.ndarray, sr: int = SAMPLE_RATE, *, fps: float = 30, n_frames: int | None = None,
           n_mels: int = 128, n_fft: int = 1024, fmin: float = 0.0, fmax: float | None = None,
           eps: float = 1e-5, block: int = 2048) -> np.ndarray:
    """Log mel magnitude spectrogram (n_frames, n_mels); frame t is a Hann window centred on t / fps."""
    wave = np.asarray(wave, dtype=np.float32)
    n_frames = n_motion_frames(wave.shape[-1], sr, fps) if n_frames is None else n_frames
    centres = np.round(np.arange(n_frames) * (sr / fps)).astype(np.int64)
    half = n_fft // 2
    needed = (int(centres[-1]) if n_frames else 0) + n_fft
    padded = np.zeros(max(needed, wave.shape[-1] + 2 * half), dtype=np.float32)
    padded[half:half + wave.shape[-1]] = wave
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa's stft
    # the projection runs in torch's thread pool: numpy's OpenBLAS threads keep spinning after a call and slowed
    # the next generator call by ~70 ms (a live stream's every hop; docs/design-notes.md, "Live A2G")
    import torch

    basis = torch.from_numpy(np.ascontiguousarray(_mel_basis(sr, n_fft, n_mels, fmin, fmax).T, dtype=np.float32))
    out = np.empty((n_frames, n_mels), dtype=np.float32)
    offsets = np.arange(n_fft)
    for start in range(0, n_frames, block):
        frames = padded[centres[start:start + block, None] + offsets] * window
        magnitude = torch.from_numpy(np.abs(scipy.fft.rfft(frames, axis=-1)).astype(np.float32))
        out[start:start + block] = np.log(np.maximum((magnitude @ basis).numpy(), eps))
    return out


def logmel_to_mfcc(logmel_frames: np.ndarray, n_mfcc: int | None = None) -> np.ndarray:
    """Orthonormal DCT-II over mel bins: (..., n_mels) -> (..., n_mfcc); invertible when n_mfcc = n_mels."""
    coeffs = scipy.fft.dct(np.asarray(logmel_frames, dtype=np.float64), type=2, norm="ortho", axis=-1)
    return coeffs[..., :n_mfcc].astype(np.float32)


def mfcc_to_logmel(mfcc_frames: np.ndarray, n_mels: int | None = None) -> np.ndarray:
    """Inverse of logmel_to_mfcc: (..., n_mfcc) -> (..., n_mels); exact when n_mfcc = n_mels, else smoothed."""
    n_mels = mfcc_frames.shape[-1] if n_mels is None else n_mels
    return scipy.fft.idct(np.asarray(mfcc_frames, dtype=np.float64), type=2, norm="ortho", n=n_mels,
                          axis=-1).astype(np.float32)


def mfcc(wave: np.ndarray, sr: int = SAMPLE_RATE, *, fps: float = 30, n_frames: int | None = None,
         n_mfcc: int = 128, n_mels: int = 128, n_fft: int = 1024, fmin: float = 0.0, fmax: float | None = None,
         eps: float = 1e-5) -> np.ndarray:
    """MFCC (n_frames, n_mfcc) at the motion rate: DCT-ortho of `logmel`, so n_mfcc = n_mels inverts exactly."""
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc ({n_mfcc}) must be <= n_mels ({n_mels})")
    frames = logmel(wave, sr, fps=fps, n_frames=n_frames, n_mels=n_mels, n_fft=n_fft, fmin=fmin, fmax=fmax,
                    eps=eps)
    return logmel_to_mfcc(frames, n_mfcc)


def logmel_to_wave(logmel_frames: np.ndarray, sr: int = SAMPLE_RATE, *, fps: float = 30, n_fft: int = 1024,
                   fmin: float = 0.0, fmax: float | None = None, hop_length: int = 160, n_iter: int = 32,
                   seed: int = 0) -> np.ndarray:
    """Griffin-Lim waveform (round(T * sr / fps),) from a `logmel` (T, n_mels), resampled to an integer hop."""
    import librosa

    logmel_frames = np.asarray(logmel_frames, dtype=np.float64)
    n_frames = logmel_frames.shape[0]
    length = int(round(n_frames * sr / fps))
    n_out = 1 + length // hop_length
    position = np.clip(np.arange(n_out) * hop_length / sr * fps, 0, max(n_frames - 1, 0))
    lo = np.floor(position).astype(np.int64)
    hi = np.minimum(lo + 1, n_frames - 1)
    w = (position - lo)[:, None]
    fine = (1 - w) * logmel_frames[lo] + w * logmel_frames[hi]  # (n_out, n_mels), interpolated in log domain
    stft_mag = librosa.feature.inverse.mel_to_stft(np.exp(fine).T, sr=sr, n_fft=n_fft, power=1.0, fmin=fmin,
                                                   fmax=fmax)
    wave = librosa.griffinlim(stft_mag, n_iter=n_iter, hop_length=hop_length, win_length=n_fft, n_fft=n_fft,
                              length=length, random_state=seed)
    return wave.astype(np.float32)


# ------------------------------------------------------------------------------------------------ WavLM


def n_wavlm_frames(n_samples: int) -> int:
    """WavLM output frames for n_samples at 16 kHz: floor((N - 400) / 320) + 1 (at least 1, input padded)."""
    return max(n_samples - WAVLM_WINDOW, 0) // WAVLM_HOP + 1


def wavlm_to_motion_rate(states: np.ndarray, n_frames: int, fps: float = 30,
                         sr: int = SAMPLE_RATE) -> np.ndarray:
    """Linear interpolation of 50 Hz states (F, D) onto motion instants t / fps: (n_frames, D)."""
    n_states = states.shape[0]
    centre_s = (np.arange(n_frames) / fps * sr - WAVLM_WINDOW / 2) / WAVLM_HOP  # WavLM frame i centres at 320i+200
    position = np.clip(centre_s, 0, n_states - 1)
    lo = np.floor(position).astype(np.int64)
    hi = np.minimum(lo + 1, n_states - 1)
    w = (position - lo)[:, None].astype(np.float32)
    return ((1 - w) * states[lo] + w * states[hi]).astype(np.float32)


def default_batch_chunks(device: str | torch.device) -> int:
    """Equal-length WavLM chunks per call: 1 on a CPU (a batch of them is slower there), 8 on an accelerator."""
    import torch

    return 1 if torch.device(device).type == "cpu" else 8


WavLMSize = Literal["base", "tiny"]


def wavlm_config(size: WavLMSize = "base") -> WavLMConfig:
    """WavLM configuration: 'base' = microsoft/wavlm-base-plus shape; 'tiny' = same hop and 768-d output, 2 layers."""
    from transformers import WavLMConfig

    common = dict(apply_spec_augment=False, mask_time_prob=0.0, layerdrop=0.0)
    if size == "base":
        return WavLMConfig(**common)
    if size == "tiny":
        return WavLMConfig(conv_dim=(32,) * 7, hidden_size=WAVLM_DIM, num_hidden_layers=2, num_attention_heads=12,
                           intermediate_size=512, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16,
                           **common)
    raise ValueError(f"unknown WavLM size {size!r}; expected 'base' or 'tiny'")


def projected_self_attention(attention, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                             gated_position_bias: torch.Tensor) -> tuple[torch.Tensor, None]:
    """`WavLMAttention.torch_multi_head_self_attention` through its projection modules, which transformers skips
    (it hands their weights to `F.multi_head_attention_forward`), so int8 projections run: the same function, no
    attention weights returned. Bound to an attention module."""
    import torch.nn.functional as F
    from einops import rearrange

    heads = attention.num_heads
    q, k, v = (rearrange(proj(hidden_states), "b t (h d) -> b h t d", h=heads)
               for proj in (attention.q_proj, attention.k_proj, attention.v_proj))
    bias = rearrange(gated_position_bias, "(b h) i j -> b h i j", h=heads).to(q.dtype)
    if attention_mask is not None:  # transformers' key padding mask: 1 = a real frame
        bias = bias.masked_fill(rearrange(attention_mask.ne(1), "b j -> b 1 1 j"), float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return attention.out_proj(rearrange(out, "b h t d -> b t (h d)")), None


class WavLMFeatures:
    """WavLM hidden states (one layer, or the mean of all layers) resampled to the motion frame rate.

    With an int `layer` only the encoder layers up to it run (layer 6 of 12 costs about half); `auto` takes the
    middle layer of a WavLM of 12 layers or more (base size: 6, the full-size recipe) and the mean of all layers
    of a smaller one (the demo's 2-layer `tiny`); `dtype` bfloat16
    runs the model in bf16 (on a CPU with native bf16 much faster, features close to float32's). Long audio runs in
    `chunk_s` chunks with `overlap_s` context each side: attention is quadratic in the chunk length.
    `quantize_ff`: the encoder layers' feed-forward blocks and attention projections run int8 (CPU, float32 only: on
    a CPU with native bf16, bf16 was faster).
    `batch_chunks` equal-length chunks go through the model per call; the default batches 8 on an accelerator and
    runs one at a time on a CPU, where a batch of chunks is slower than the same chunks one by one (base size,
    2 threads, bf16, 60 s: 2.1-2.3 s one at a time, 2.9 s batched 8; most likely the batch's activations leave
    the cache).
    """

    def __init__(self, model: WavLMModel, *, layer: int | Literal["mean", "auto"] = "auto", normalize: bool = False,
                 source: str = "", random_init: bool = False, chunk_s: float = 10.0, overlap_s: float = 1.0,
                 device: str | torch.device = "cpu", dtype: torch.dtype | None = None, batch_chunks: int | None = None,
                 quantize_ff: bool = False):
        n_layers = model.config.num_hidden_layers
        if layer == "auto":  # the full-size recipe: a middle layer of a base-size (12-layer) or larger WavLM
            layer = n_layers // 2 if n_layers >= 12 else "mean"
        if layer != "mean" and not (isinstance(layer, int) and -(n_layers + 1) <= layer <= n_layers):
            raise ValueError(f"layer must be 'auto', 'mean' or an int in [-{n_layers + 1}, {n_layers}], got {layer!r}")
        if chunk_s <= 0 or overlap_s < 0:
            raise ValueError(f"chunk_s must be > 0 and overlap_s >= 0, got {chunk_s}, {overlap_s}")
        self.model = model.to(device).eval()
        if dtype is not None:
            self.model.to(dtype)
        if quantize_ff:
            import torch

            from omniges.models.quantize import int8_linear, quantize_linears

            if next(self.model.parameters()).dtype != torch.float32:
                raise ValueError("quantize_ff needs a float32 WavLM")
            for encoder_layer in self.model.encoder.layers:
                quantize_linears(encoder_layer.feed_forward)
                attention = encoder_layer.attention
                for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    setattr(attention, name, int8_linear(getattr(attention, name)))
                attention.torch_multi_head_self_attention = types.MethodType(projected_self_attention, attention)
        self.layer = layer
        # hidden_states[k] is layer k's output; with an int layer only layers 1..k run (one more where the last
        # layer's output is normalised, i.e. stable-layer-norm WavLM, so that hidden_states[k] is unchanged)
        index = layer if layer == "mean" else layer % (n_layers + 1)
        stable = bool(getattr(model.config, "do_stable_layer_norm", False))
        self._run_layers = n_layers if layer == "mean" or index == n_layers else index + int(stable)
        self._index = index
        self.normalize = normalize
        self.source = source
        self.random_init = random_init
        self.device = device
        # equal-length chunks run this many at a time (one call each)
        self.batch_chunks = max(1, default_batch_chunks(device) if batch_chunks is None else batch_chunks)
        self.chunk_frames = max(1, round(chunk_s * SAMPLE_RATE / WAVLM_HOP))
        self.overlap_frames = round(overlap_s * SAMPLE_RATE / WAVLM_HOP)

    @property
    def dim(self) -> int:
        """Feature width (768 for base-size WavLM)."""
        return int(self.model.config.hidden_size)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, layer: int | Literal["mean", "auto"] = "auto",
                        normalize: bool | None = None, **kwargs) -> WavLMFeatures:
        """Load a local WavLM directory (config.json + weights); never downloads, never falls back to random."""
        import json

        from transformers import WavLMModel

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"WavLM weights not found: {path} (expected a local directory with config.json, "
                                    "e.g. a copy of microsoft/wavlm-base-plus)")
        if normalize is None:  # follow the checkpoint's feature extractor (wavlm-base-plus: do_normalize false)
            pre = path / "preprocessor_config.json"
            normalize = bool(json.loads(pre.read_text()).get("do_normalize", False)) if pre.is_file() else False
        model = WavLMModel.from_pretrained(str(path), local_files_only=True)
        log.info("WavLM: pretrained weights from %s", path)
        return cls(model, layer=layer, normalize=normalize, source=str(path), **kwargs)

    @classmethod
    def random_init(cls, seed: int = 0, config: WavLMSize = "base", *, layer: int | Literal["mean", "auto"] = "auto",
                    **kwargs) -> WavLMFeatures:
        """A seeded, randomly initialised WavLMModel of the given size (same class and output shapes)."""
        import torch
        from transformers import WavLMModel

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = WavLMModel(wavlm_config(config))
        log.warning(RANDOM_INIT_MESSAGE)
        return cls(model, layer=layer, source=f"random-init:{config}:seed={seed}", random_init=True, **kwargs)

    @classmethod
    def from_params(cls, *, path: str | Path | None = None, seed: int = 0, config: WavLMSize = "base",
                    layer: int | Literal["mean", "auto"] = "auto", **kwargs) -> WavLMFeatures:
        """`features.wavlm` params: a local path when given (must exist), else the seeded random init."""
        if path:
            return cls.from_pretrained(path, layer=layer, **kwargs)
        return cls.random_init(seed, config, layer=layer, **kwargs)

    def _states(self, x: torch.Tensor) -> torch.Tensor:
        """One layer's states, or the mean over the transformer layers' outputs: (1, F, D)."""
        import torch

        if self.layer != "mean" and self._index == self._run_layers:  # the last layer run (0: the embeddings)
            return self.model(x).last_hidden_state
        hidden_states = self.model(x, output_hidden_states=True).hidden_states
        if self.layer == "mean":
            return torch.stack(hidden_states[1:]).float().mean(0)
        return hidden_states[self._index]

    @contextmanager
    def _truncated(self) -> Iterator[None]:
        """Run only the encoder layers the selected layer needs (restored afterwards: the model may be shared)."""
        encoder = self.model.encoder
        layers = encoder.layers
        encoder.layers = layers[:self._run_layers]
        try:
            yield
        finally:
            encoder.layers = layers

    def hidden_states(self, wave_16k: np.ndarray) -> np.ndarray:
        """WavLM states at 50 Hz, (floor((N - 400) / 320) + 1, dim), computed in overlapping chunks."""
        import torch

        wave = np.asarray(wave_16k, dtype=np.float32).reshape(-1)
        if wave.size < WAVLM_WINDOW:
            wave = np.pad(wave, (0, WAVLM_WINDOW - wave.size))
        if self.normalize:
            wave = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
        n_states = n_wavlm_frames(wave.size)
        out = np.empty((n_states, self.dim), dtype=np.float32)
        dtype = next(self.model.parameters()).dtype
        chunks: dict[int, list[tuple[int, int, int]]] = {}  # segment length -> (f0, f1, g0): equal lengths batch
        for f0 in range(0, n_states, self.chunk_frames):
            f1 = min(f0 + self.chunk_frames, n_states)
            g0, g1 = max(0, f0 - self.overlap_frames), min(n_states, f1 + self.overlap_frames)
            chunks.setdefault(g1 - g0, []).append((f0, f1, g0))
        with torch.inference_mode(), self._truncated():
            for frames, group in chunks.items():
                samples = (frames - 1) * WAVLM_HOP + WAVLM_WINDOW
                for b in range(0, len(group), self.batch_chunks):
                    batch = group[b:b + self.batch_chunks]
                    x = torch.from_numpy(np.stack([wave[g0 * WAVLM_HOP:g0 * WAVLM_HOP + samples]
                                                   for _, _, g0 in batch])).to(self.device, dtype)
                    states = self._states(x).float().cpu().numpy()
                    for (f0, f1, g0), chunk in zip(batch, states, strict=True):
                        out[f0:f1] = chunk[f0 - g0:f1 - g0]
        return out

    def extract(self, wave_16k: np.ndarray, n_frames: int, fps: float = 30) -> np.ndarray:
        """WavLM features at the motion rate: (n_frames, dim), frame t at instant t / fps."""
        return wavlm_to_motion_rate(self.hidden_states(wave_16k), n_frames, fps)
