"""Inference API used by evaluation, rendering and the CLI: one trained checkpoint, four tasks.

    model = Omniges.load("results/models/multitask/model.pt")
    motion = model.a2g(wave_16k, words=None, steps=2)        # {'poses', 'trans', 'expressions', 'betas'}
    words = model.g2t(motion)                                 # ['hello', ...]
    wave = model.g2a(motion)                                  # float32 16 kHz
    motion = model.t2g(words_with_times, seconds=12.0)

Inputs of any length are generated in overlapping windows (`generation.window_tokens` / `overlap_tokens`), by
default as long as the windows the checkpoint was trained on.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omniges.constants import FPS
from omniges.data.body import PART_NAMES, bound_root_drift, split_parts
from omniges.data.dataset import FRAMES_PER_TOKEN, pool_tokens
from omniges.decoding import TimedWord, decode_words
from omniges.device import native_bfloat16, resolve_device, to_device
from omniges.export import write_bvh, write_fbx, write_glb, write_npz
from omniges.features.audio import (
    SAMPLE_RATE,
    AudioError,
    WavLMFeatures,
    load_audio,
    logmel_to_wave,
    mfcc,
    mfcc_to_logmel,
)
from omniges.features.text import TextEncoder, Vocabulary, frame_text_features, words_to_frames
from omniges.models.flow import TASK_GENERATES
from omniges.models.flow_sampler import FlowSampler
from omniges.models.omniges_transformer import OmnigesConfig, OmnigesTransformerModel
from omniges.models.quantize import quantize_linears
from omniges.tokenizer.processor import GestureProcessor

SILENCE_PEAK = 1e-4  # a wave whose peak is below this is silence: A2G then generates idle motion
Words = list[tuple[str, float, float]]
log = logging.getLogger("omniges")


class ModelNotTrainedError(FileNotFoundError):
    """No trained checkpoint where one was expected."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (corrupt, truncated, not an Omniges model, another corpus)."""


def speech_frames(n_samples: int) -> int:
    """Motion frames A2G generates for `n_samples` of 16 kHz speech (30 fps, whole frames)."""
    return int(n_samples * FPS // SAMPLE_RATE)


def check_speech(wave: np.ndarray, name: str = "audio") -> np.ndarray:
    """Refuse (AudioError naming `name`) speech too short for one gesture token; log a note for silence."""
    if speech_frames(len(wave)) < FRAMES_PER_TOKEN:
        raise AudioError(f"{name}: audio too short ({len(wave) / SAMPLE_RATE:.2f} s); generating motion needs at "
                         f"least {FRAMES_PER_TOKEN / FPS:.2f} s")
    if float(np.max(np.abs(wave))) < SILENCE_PEAK:
        log.info("%s: the audio is silent: generating idle (rest) motion", name)
    return wave


def load_speech(path: str | Path) -> np.ndarray:
    """A speech file for A2G (any format, rate, channels) as 16 kHz mono float32; AudioError names the file."""
    return check_speech(load_audio(path, SAMPLE_RATE, require_nonsilent=False), str(path))


@dataclass
class GenerationSettings:
    dtype: str = "auto"  # generator weights: auto (bfloat16 where computed natively) | float32 | bfloat16
    quantize: str = "auto"  # generator linear layers: int8 (CPU) | none | auto (int8 on a CPU)
    steps: int = 2
    guidance: float = 1.5
    task_guidance: dict[str, float] = field(default_factory=lambda: {"t2g": 6.0})  # per-task overrides of guidance
    solver: str = "euler"
    guidance_interval: tuple[float, float] = (0.0, 1.0)  # CFG only at steps starting at lo <= t < hi
    cfg_batch: str = "auto"  # both CFG branches in one batched call: auto (on a GPU) | true | false
    window_tokens: int = 0  # gesture tokens per generation window; 0 = the checkpoint's training window
    overlap_tokens: int = 4
    seed: int = 0
    root_horizon_s: float = 10.0  # root x/z drift re-centred over this horizon (0 = plain integration)
    speaker: int | None = None  # default speaker id of A2G / T2G (one the checkpoint lists); None = unknown speaker
    g2t_word_bonus: float = 0.0  # G2T decoding: log-probability added per word (> 0: more, shorter words)

    def __post_init__(self) -> None:
        if self.quantize not in ("auto", "int8", "none"):
            raise ValueError(f"generation.quantize must be auto, int8 or none, got {self.quantize!r}")
        if self.root_horizon_s < 0:
            raise ValueError(f"generation.root_horizon_s must be >= 0, got {self.root_horizon_s}")
        self.guidance_interval = tuple(float(v) for v in self.guidance_interval)
        if len(self.guidance_interval) != 2 or not 0 <= self.guidance_interval[0] < self.guidance_interval[1]:
            raise ValueError(f"generation.guidance_interval must be [lo, hi] with 0 <= lo < hi, got "
                             f"{list(self.guidance_interval)}")
        if str(self.cfg_batch).lower() not in ("auto", "true", "false"):
            raise ValueError(f"generation.cfg_batch must be auto, true or false, got {self.cfg_batch!r}")
        guided = sorted(task for task, stream in TASK_GENERATES.items() if stream != "text")
        unknown = sorted(set(self.task_guidance) - set(guided))
        if unknown:
            raise ValueError(f"generation.task_guidance: {unknown} are not guided tasks ({', '.join(guided)})")

    @classmethod
    def from_params(cls, path: str | Path = "params.yaml") -> GenerationSettings:
        """The validated `generation` section of a params file, or the defaults where there is none."""
        from omniges.config import load_params

        return cls(**load_params(path).section("generation")) if Path(path).is_file() else cls()

    def guidance_for(self, task: str) -> float:
        """The classifier-free guidance scale of one task."""
        return self.task_guidance.get(task, self.guidance)

    def sampler_kwargs(self, device: torch.device) -> dict[str, Any]:
        """Solver, guidance interval and CFG batching for `FlowSampler.sample` on `device`.

        auto batches the two CFG branches on a GPU only: on a CPU at batch 1 a call is bound by compute, and the
        batched call (whose unconditional rows carry the masked-out condition tokens) was slower than two."""
        batch = str(self.cfg_batch).lower()
        return dict(solver=self.solver, guidance_interval=self.guidance_interval,
                    batch_cfg=batch == "true" or (batch == "auto" and device.type == "cuda"))


def resolve_dtype(name: str, device: torch.device | str = "cpu") -> torch.dtype:
    """`generation.dtype` -> torch dtype ('auto': bfloat16 where `device` computes it natively, else float32)."""
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if name == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    if name not in choices:
        raise ValueError(f"generation.dtype must be auto, float32 or bfloat16, got {name!r}")
    return choices[name]


def resolve_quantize(name: str, device: torch.device | str = "cpu") -> bool:
    """`generation.quantize` -> whether the generator's linear layers run int8 ('auto': on a CPU, where a
    batch-1 call is bound by reading the weights; design notes, "Live A2G (streaming)")."""
    device = torch.device(device)
    if name == "int8" and device.type != "cpu":
        raise ValueError(f"generation.quantize=int8 runs on a CPU only, not on {device}; use none (or auto)")
    return name == "int8" or (name == "auto" and device.type == "cpu")


def _random_init_args(source: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"random-init:(\w+):seed=(\d+)", source)
    return (match.group(1), int(match.group(2))) if match else None


class Omniges:
    """A trained Omniges generator with its tokenizer and feature extractors."""

    audio_cache_size = 4  # audio conditions kept (by sample hash) for repeated generation from the same speech

    def __init__(self, payload: dict[str, Any], *, processor: GestureProcessor, vocab: Vocabulary,
                 features: dict[str, Any], settings: GenerationSettings | None = None, device: str = "auto"):
        self.payload = payload
        self.config = OmnigesConfig.from_dict(payload["config"])
        self.model = OmnigesTransformerModel(self.config)
        try:
            self.model.load_state_dict(payload["state_dict"])
        except RuntimeError as error:
            raise ValueError(f"checkpoint of experiment {payload.get('experiment', '?')!r} does not fit this version "
                             f"of the generator; retrain it (`snakemake -j2 train_multitask`): {error}") from error
        self.settings = settings or GenerationSettings()
        self.device = resolve_device(device)
        dtype = resolve_dtype(self.settings.dtype, self.device)
        self.quantized = resolve_quantize(self.settings.quantize, self.device)
        # int8: the MMDiT's and the audio fusion's linear layers (nearly all weights), quantised from the float32
        # weights; the rest stays float32 around them
        self.model.eval().to(self.device, torch.float32 if self.quantized else dtype)
        if self.quantized:
            quantize_linears(self.model.mmdit)
            quantize_linears(self.model.audio_fusion)
        # checkpoints from before flow.prediction existed were velocity-parameterised
        self.flow = FlowSampler(**{"prediction": "velocity", **payload["flow"]})
        self.processor, self.vocab, self.features_params = processor, vocab, features
        if processor is not None:
            # decoding follows the generator: int8 (from the float32 weights) or its dtype; encoding stays float32
            processor.to(self.device)
            if self.quantized:
                processor.quantize_decoders()
            else:
                processor.decoders_to(dtype)
        self.tasks = set(payload["tasks"])
        # a model trained on windows of W frames (crops up to W with training.min_window) generates W / 4 tokens
        # per window: longer windows are faster, but a model trained on short ones degrades on longer ones
        self.window_tokens = self.settings.window_tokens or payload.get("window", 128) // FRAMES_PER_TOKEN
        if self.window_tokens <= self.settings.overlap_tokens:
            raise ValueError(f"generation.window_tokens ({self.window_tokens}) must exceed overlap_tokens "
                             f"({self.settings.overlap_tokens})")
        self.stats = {k: np.asarray(v, np.float32) for k, v in payload["audio_stats"].items()}
        self.speakers: list[int] = list(payload.get("speakers", []))  # older checkpoints list none
        self._wavlm: WavLMFeatures | None = None
        self._audio_cache: OrderedDict[tuple[str, int], dict[str, torch.Tensor]] = OrderedDict()
        self._text: TextEncoder | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, *, cache_dir: str | Path = "data/cache", rvqvae_dir: str | Path =
             "results/rvqvae", settings: GenerationSettings | None = None, device: str = "auto") -> Omniges:
        """Load `model.pt` plus the tokenizer and vocabulary it was trained with, onto `device` (compute.device)."""
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise ModelNotTrainedError(
                f"{checkpoint}: no trained model. Train one with `snakemake -j2 train_multitask` "
                "(or `make demo`), or pass --checkpoint")
        try:
            payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{checkpoint}: corrupt or truncated checkpoint file ({reason}); copy it again "
                                  "or retrain it") from None
        required = {"config", "state_dict", "tasks", "latent_scale", "audio_stats", "flow"}
        missing = required - set(payload) if isinstance(payload, dict) else required
        if missing:
            raise CheckpointError(f"{checkpoint}: not an Omniges model checkpoint (missing {sorted(missing)})")
        processor = GestureProcessor.load(rvqvae_dir, Path(cache_dir) / "stats.npz",
                                          latent_scale=payload["latent_scale"], face_jaw=payload["face_jaw"])
        vocab = Vocabulary.load(Path(cache_dir) / "vocab.json")
        if len(vocab) != payload["config"]["vocab_size"]:
            raise CheckpointError(f"{checkpoint}: trained with a {payload['config']['vocab_size']}-word vocabulary, "
                             f"{cache_dir}/vocab.json has {len(vocab)}: the checkpoint is from another corpus")
        return cls(payload, processor=processor, vocab=vocab, features=payload.get("features_params", {}),
                   settings=settings, device=device)

    # ------------------------------------------------------------------ features

    def _require(self, task: str) -> None:
        if task not in self.tasks:
            raise ValueError(f"this checkpoint was trained for {sorted(self.tasks)}, not {task}; "
                             "use the multitask model (results/models/multitask/model.pt)")

    @property
    def wavlm(self) -> WavLMFeatures:
        if self._wavlm is None:
            source = self.payload["features"]["wavlm"]
            cfg = self.features_params.get("wavlm", {})
            random_init = _random_init_args(source)
            # WavLM runs in the generator's dtype (bf16 where native; design notes, "Inference speed")
            dtype = resolve_dtype(self.settings.dtype, self.device)
            kwargs = dict(layer=cfg.get("layer", "mean"), dtype=dtype, device=self.device,
                          quantize_ff=self.quantized and dtype == torch.float32)
            if random_init:
                self._wavlm = WavLMFeatures.random_init(random_init[1], random_init[0], **kwargs)
            else:
                self._wavlm = WavLMFeatures.from_pretrained(source, **kwargs)
        return self._wavlm

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text is None:
            path = self.features_params.get("text", {}).get("path") or None
            self._text = TextEncoder.from_params(path=path, device=self.device)
        return self._text

    def _norm(self, values: np.ndarray, name: str) -> torch.Tensor:
        out = (values.astype(np.float32) - self.stats[f"{name}_mean"]) / self.stats[f"{name}_std"]
        return torch.from_numpy(out)[None]

    def audio_condition(self, wave: np.ndarray, n_frames: int) -> dict[str, torch.Tensor]:
        """16 kHz wave -> normalised WavLM + MFCC at 30 fps, padded to a multiple of 4 frames.

        The last few results are cached by a hash of the samples: generating again from the same audio (other
        seeds, steps, guidance or transcript) skips feature extraction, most of the end-to-end cost."""
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        key = (hashlib.blake2b(wave.tobytes(), digest_size=16).hexdigest(), n_frames)
        if key in self._audio_cache:
            self._audio_cache.move_to_end(key)
            return dict(self._audio_cache[key])
        cond = self._extract_audio(wave, n_frames)
        self._audio_cache[key] = cond
        while len(self._audio_cache) > self.audio_cache_size:
            self._audio_cache.popitem(last=False)
        return dict(cond)

    def _extract_audio(self, wave: np.ndarray, n_frames: int) -> dict[str, torch.Tensor]:
        padded = n_frames + (-n_frames) % FRAMES_PER_TOKEN
        wave = np.pad(wave, (0, max(0, round(padded * SAMPLE_RATE / FPS) - len(wave))))
        n_mfcc = self.config.mfcc_dim
        return {
            "wavlm": self._norm(self.wavlm.extract(wave, padded, FPS), "wavlm"),
            "mfcc": self._norm(mfcc(wave, SAMPLE_RATE, fps=FPS, n_frames=padded, n_mfcc=n_mfcc, n_mels=n_mfcc), "mfcc"),
            "audio_mask": (torch.arange(padded) < n_frames)[None],
        }

    def text_condition(self, words: Words, n_frames: int) -> dict[str, torch.Tensor]:
        """Timed words -> per-token text features (1, n, D) and mask."""
        padded = n_frames + (-n_frames) % FRAMES_PER_TOKEN
        index = words_to_frames(words, padded, FPS)
        states = self.text_encoder.encode_words([w for w, _, _ in words])
        tokens = pool_tokens(frame_text_features(states, index).astype(np.float32))
        return {"text": torch.from_numpy(tokens)[None],
                "text_mask": torch.ones(1, padded // FRAMES_PER_TOKEN, dtype=torch.bool)}

    def gesture_condition(self, motion: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """SMPL-X motion -> scaled generator latents (1, n, 4C)."""
        poses = np.asarray(motion["poses"])
        usable = len(poses) - len(poses) % FRAMES_PER_TOKEN
        if usable < FRAMES_PER_TOKEN:
            raise ValueError(f"motion has {len(poses)} frames; at least {FRAMES_PER_TOKEN} are needed")
        parts = split_parts(poses[:usable], np.asarray(motion["trans"])[:usable],
                            np.asarray(motion["expressions"])[:usable], face_jaw=self.processor.face_jaw)
        tensors = {p: self.processor.normalize(p, torch.from_numpy(parts[p]).to(self.device))[None] for p in PART_NAMES}
        latents, _ = self.processor.encode(tensors)
        return {"gesture": latents, "gesture_mask": torch.ones(latents.shape[:2], dtype=torch.bool, device=self.device)}

    # ------------------------------------------------------------------ tasks

    def _generator(self, seed: int | None) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(self.settings.seed if seed is None else seed)

    def speaker_index(self, speaker: int | None) -> int:
        """A speaker id's index in the checkpoint's speaker list; -1 (the unknown speaker) for None."""
        speaker = self.settings.speaker if speaker is None else speaker
        if speaker is None:
            return -1
        if speaker not in self.speakers:
            known = ", ".join(map(str, self.speakers)) or "none: it was trained without speaker conditioning"
            raise ValueError(f"unknown speaker {speaker}; this checkpoint's speakers: {known}")
        return self.speakers.index(speaker)

    def seed_latents(self, seed_motion: dict[str, np.ndarray]) -> torch.Tensor:
        """Seed poses (SMPL-X motion, whole gesture tokens used) -> the generator's known prefix latents (1, p, D)."""
        latents = self.gesture_condition(seed_motion)["gesture"]
        if latents.shape[1] >= self.window_tokens:
            raise ValueError(f"seed_motion: {len(seed_motion['poses'])} frames; seed poses must be shorter than one "
                             f"generation window ({self.window_tokens * FRAMES_PER_TOKEN} frames)")
        return latents

    def guidance_for(self, task: str) -> float:
        """The CFG scale a task samples with: 1 (one call per step) where the model learned its guidance in
        training (`flow.model_guidance`), else `generation.guidance` / `task_guidance`."""
        return 1.0 if task in self.flow.model_guidance else self.settings.guidance_for(task)

    def _gesture(self, task: str, cond: dict[str, torch.Tensor], n_frames: int, seed: int | None,
                 steps: int | None, guidance: float | None, speaker: int | None = None,
                 seed_motion: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        s = self.settings
        index = self.speaker_index(speaker)
        if self.speakers:
            cond = {**cond, "speaker": torch.tensor([index])}
        cond = to_device(cond, self.device)
        with torch.inference_mode():
            prefix = self.seed_latents(seed_motion) if seed_motion is not None else None
            latents = self.flow.generate_long(
                self.model, task, cond, window=self.window_tokens, overlap=s.overlap_tokens,
                steps=steps or s.steps, guidance=self.guidance_for(task) if guidance is None else guidance,
                generator=self._generator(seed), prefix=prefix, **s.sampler_kwargs(self.device))
            parts = self.processor.decode_from_latents(latents, num_frames=latents.shape[1] * FRAMES_PER_TOKEN)
        parts = {p: v[:, :n_frames] for p, v in parts.items()}
        poses, trans, expressions = self.processor.to_smplx(parts)
        trans = bound_root_drift(trans, s.root_horizon_s * FPS)
        return {"poses": poses, "trans": trans, "expressions": expressions, "betas": np.zeros(300, np.float32)}

    def a2g(self, wave: np.ndarray, words: Words | None = None, *, seed: int | None = None, steps: int | None = None,
            guidance: float | None = None, speaker: int | None = None,
            seed_motion: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Speech (16 kHz mono float) [+ timed transcript] -> SMPL-X motion at 30 fps, as long as the speech,
        in the style of `speaker` (an id of `self.speakers`; None: generation.speaker, else the unknown speaker).

        `seed_motion` ({'poses', 'trans', 'expressions'} of the first frames): seed poses the motion starts from
        (GestureLSM's protocol: 16 frames = 4 tokens); its tokens are encoded and kept as the known prefix."""
        self._require("a2g")
        self.speaker_index(speaker)  # an unknown id fails before any feature work
        check_speech(wave)
        n_frames = speech_frames(len(wave))
        cond = self.audio_condition(wave, n_frames)
        if words:
            cond.update(self.text_condition(words, n_frames))
        return self._gesture("a2g", cond, n_frames, seed, steps, guidance, speaker, seed_motion)

    def t2g(self, words: Words, *, seconds: float | None = None, seed: int | None = None,
            steps: int | None = None, guidance: float | None = None, speaker: int | None = None,
            seed_motion: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Timed transcript -> SMPL-X motion lasting `seconds` (default: to the last word's end), as `speaker`;
        seed_motion as A2G."""
        self._require("t2g")
        if not words:
            raise ValueError("t2g needs at least one timed word")
        self.speaker_index(speaker)
        n_frames = int(round((seconds or max(e for _, _, e in words)) * FPS))
        return self._gesture("t2g", self.text_condition(words, n_frames), n_frames, seed, steps, guidance, speaker,
                             seed_motion)

    def g2t_log_probs(self, motion: dict[str, np.ndarray]) -> np.ndarray:
        """SMPL-X motion -> per-gesture-token log-probabilities over the vocabulary (n_tokens, vocab), 7.5 per s.

        Token k covers motion frames [4k, 4k + 4); its training target was the word spoken at frame 4k + 1."""
        self._require("g2t")
        with torch.inference_mode():
            logits = self.flow.generate_overlapped(self.model, "g2t", self.gesture_condition(motion),
                                                   window=self.window_tokens, overlap=self.settings.overlap_tokens,
                                                   steps=1)[0]
        return torch.log_softmax(logits, dim=-1).cpu().numpy()

    def g2t(self, motion: dict[str, np.ndarray]) -> list[str]:
        """SMPL-X motion -> the words it most likely accompanied, free-running (no word timing given)."""
        return [w.word for w in self.g2t_words(motion)]

    def g2t_words(self, motion: dict[str, np.ndarray]) -> list[TimedWord]:
        """SMPL-X motion -> timed words (start and end in seconds), free-running."""
        return self.timed_transcript(self.g2t_log_probs(motion))

    def timed_transcript(self, log_probs: np.ndarray) -> list[TimedWord]:
        """Per-token log-probabilities (from `g2t_log_probs`) -> timed words by segmental Viterbi decoding."""
        return decode_words(log_probs, self.vocab.tokens, sil_id=self.vocab.SIL,
                            first_word_id=len(self.vocab.SPECIALS), word_bonus=self.settings.g2t_word_bonus,
                            seconds_per_token=self.config.frames_per_token / FPS)

    def transcript(self, log_probs: np.ndarray) -> list[str]:
        """Per-token log-probabilities (from `g2t_log_probs`) -> words."""
        return [w.word for w in self.timed_transcript(log_probs)]

    def g2a(self, motion: dict[str, np.ndarray], *, seed: int | None = None, steps: int | None = None,
            guidance: float | None = None, waveform: bool = True) -> np.ndarray:
        """SMPL-X motion -> speech: 16 kHz wave by Griffin-Lim from the generated MFCC (or the MFCC itself)."""
        self._require("g2a")
        s = self.settings
        with torch.inference_mode():  # fresh noise per window from one generator, windows share context
            mfcc_norm = self.flow.generate_overlapped(
                self.model, "g2a", self.gesture_condition(motion), window=self.window_tokens,
                overlap=s.overlap_tokens, steps=steps or s.steps, generator=self._generator(seed),
                guidance=self.guidance_for("g2a") if guidance is None else guidance, **s.sampler_kwargs(self.device))[0]
        coeffs = mfcc_norm.cpu().numpy() * self.stats["mfcc_std"] + self.stats["mfcc_mean"]
        if not waveform:
            return coeffs
        return logmel_to_wave(mfcc_to_logmel(coeffs), SAMPLE_RATE, fps=FPS).astype(np.float32)

    def stream(self, chunks: Iterable[np.ndarray], *, sample_rate: int = SAMPLE_RATE, lookahead: float = 0.5,
               hop: float | None = None, window_tokens: int | None = None, seed: int | None = None,
               speaker: int | None = None, steps: int | None = None,
               guidance: float | None = None) -> Iterator[dict[str, Any]]:
        """Live A2G: for each PCM chunk (any size, mono, at `sample_rate`), then the end of the speech, the
        SMPL-X frames it decided: {'poses' (n, 165), 'trans', 'expressions', 'start_frame', 'speech_seconds',
        'compute_seconds'}. `lookahead`: seconds of future speech a frame may see (0: causal); `hop`: how often
        it generates. Same speech and seed, same motion, whatever the chunk sizes (omniges.streaming)."""
        from omniges.streaming import StreamSettings, stream_a2g

        options = {k: v for k, v in (("hop", hop), ("window_tokens", window_tokens)) if v is not None}
        settings = StreamSettings(lookahead=lookahead, **options)
        return stream_a2g(self, chunks, settings, sample_rate=sample_rate, seed=seed, speaker=speaker, steps=steps,
                          guidance=guidance)

    def generate(self, task: str, **kwargs: Any) -> Any:
        """`generate('a2g', wave=...)`, `('t2g', words=...)`, `('g2t', motion=...)`, `('g2a', motion=...)`."""
        if task not in TASK_GENERATES:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_GENERATES)}")
        return getattr(self, task)(**kwargs)


# motion file formats `omniges generate` and `omniges serve` write, by extension: one line per format
MOTION_WRITERS: dict[str, Callable[[Path, dict[str, np.ndarray]], Any]] = {
    ".npz": write_npz,
    ".bvh": lambda path, motion: write_bvh(path, motion["poses"], motion["trans"]),
    ".glb": lambda path, motion: write_glb(path, motion["poses"], motion["trans"]),
    ".fbx": lambda path, motion: write_fbx(path, motion["poses"], motion["trans"]),  # needs Blender
}


def a2g_to_files(model: Omniges, wave: np.ndarray, words: Words | None, video: str | Path,
                 motion_files: dict[str, str | Path], *, progress: Callable[[float, str], Any] | None = None,
                 motion: dict[str, np.ndarray] | None = None, **generation: Any) -> dict[str, np.ndarray]:
    """A2G on 16 kHz speech (or the given `motion`, e.g. a stream's), then its motion files ({'.npz': path, ...})
    and its video with the speech as sound."""
    from omniges.render.video import render_comparison

    report = progress or (lambda fraction, desc: None)
    report(0.05, "generating motion")
    motion = model.a2g(wave, words, **generation) if motion is None else motion
    report(0.5, "writing the motion files")
    for suffix, path in motion_files.items():
        MOTION_WRITERS[suffix](Path(path), motion)
    report(0.55, "rendering the video")
    render_comparison(video, {"Omniges A2G": motion}, audio=wave, sr=SAMPLE_RATE, words=words, fps=FPS)
    return motion


def generate(task: str, checkpoint: str | Path = "results/models/multitask/model.pt", **kwargs: Any) -> Any:
    """One-call convenience: load a checkpoint and run one task."""
    return Omniges.load(checkpoint).generate(task, **kwargs)
