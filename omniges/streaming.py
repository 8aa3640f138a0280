"""Live A2G: speech pushed in chunks of any size, SMPL-X frames out as soon as they are decided.

A stream runs on a schedule of hops in the speech's own time, never in the caller's chunking: hop n decides the
gesture tokens [D, K) with K = n * hop once the speech up to K + lookahead has arrived. Each hop

- extracts WavLM + MFCC once per frame, for the speech that arrived since the last hop only, over a span that
  starts `feature_context` (1 s) before it, on a 0.4 s grid: every other frame of the window keeps the features
  it got when its speech arrived, so a hop's cost does not grow with the stream, the window or the lookahead;
- samples one window of at most `window_tokens` gesture tokens ending at the newest speech, its first tokens
  clamped to the motion already emitted (inpainting, as `FlowSampler.generate_long` joins offline windows);
- decodes the new tokens with a few decided tokens of left context and the not-yet-decided lookahead tokens as
  right context, integrates the root from the last emitted frame, and bounds its drift with the same leaky
  integrator as offline generation (`bound_root_drift`), carried as a state.

Memory is the window's tokens, the span's samples and a few scalars: flat over an hour. The same speech with the
same seed gives the same motion whatever the chunk sizes (one noise generator, drawn in hop order).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from omniges.constants import FPS, SAMPLE_RATE
from omniges.data.body import drift_leak, leaky_sum, velocity_to_trans
from omniges.data.dataset import FRAMES_PER_TOKEN
from omniges.device import to_device

if TYPE_CHECKING:
    from omniges.inference import Omniges

TOKEN_SECONDS = FRAMES_PER_TOKEN / FPS  # 0.1333 s
GRID_TOKENS = 3  # 3 tokens = 12 frames = 0.4 s = 6400 samples: feature spans start on this grid
GRID_SAMPLES = GRID_TOKENS * FRAMES_PER_TOKEN * SAMPLE_RATE // FPS
BLEND_FRAMES = 4  # frames over which a hop's start is faded from where the emitted motion was heading


def token_sample(token: int) -> int:
    """The first 16 kHz sample of gesture token `token`."""
    return math.ceil(token * GRID_SAMPLES / GRID_TOKENS)


@dataclass(frozen=True)
class StreamSettings:
    """How a stream trades latency for context. Seconds are rounded to whole gesture tokens (133 ms).

    lookahead: future speech a frame may see before it is decided (0: causal);
    hop: how often the stream generates (each hop decides this much motion);
    window_tokens: the gesture tokens one hop samples (emitted prefix + new + lookahead): its cost per hop;
    decode_context_tokens: decided tokens the tokenizer's decoder sees left of the new ones (and at most as many
    lookahead tokens right of them);
    feature_context: speech left of the newly arrived frames that their WavLM features see (offline's chunks see
    1 s; WavLM's positional convolution spans 1.28 s each side), rounded to whole tokens;
    steps: sampler steps per hop (None: generation.steps, 2; 1 is one generator call per hop, what keeps the
    full size live on 2 CPU threads, at a cost in speech coupling: docs/design-notes.md, "Live A2G")."""

    lookahead: float = 0.5
    hop: float = 2 * TOKEN_SECONDS
    window_tokens: int = 32
    decode_context_tokens: int = 4
    feature_context: float = 1.0
    steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("lookahead", "hop", "feature_context"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.hop_tokens < 1:
            raise ValueError(f"hop must be at least one gesture token ({TOKEN_SECONDS:.3f} s), got {self.hop}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be an integer >= 1 (or None: generation.steps), got {self.steps!r}")
        if self.decode_context_tokens < 0:
            raise ValueError(f"decode_context_tokens must be >= 0, got {self.decode_context_tokens}")
        if self.window_tokens < self.hop_tokens + self.lookahead_tokens + 1:
            raise ValueError(f"window_tokens ({self.window_tokens}) must exceed hop + lookahead "
                             f"({self.hop_tokens} + {self.lookahead_tokens} tokens): a hop needs one emitted token "
                             "of context")

    @property
    def lookahead_tokens(self) -> int:
        return round(self.lookahead / TOKEN_SECONDS)

    @property
    def lookahead_s(self) -> float:
        """The lookahead a stream uses: whole tokens."""
        return self.lookahead_tokens * TOKEN_SECONDS

    @property
    def hop_s(self) -> float:
        """The hop a stream uses: whole tokens."""
        return self.hop_tokens * TOKEN_SECONDS

    @property
    def feature_context_tokens(self) -> int:
        return round(self.feature_context / TOKEN_SECONDS)

    @property
    def hop_tokens(self) -> int:
        return round(self.hop / TOKEN_SECONDS)


class A2GStream:
    """One live A2G stream: `push(pcm)` returns the frames decided by the speech so far, `finish()` the rest.

    Each result is a dict: 'poses' (n, 165), 'trans' (n, 3), 'expressions' (n, 100) at 30 fps, 'start_frame'
    (index of its first frame in the stream), 'speech_seconds' (speech the hop had heard) and 'compute_seconds'
    (the hop's wall time); n may be 0."""

    def __init__(self, model: Omniges, settings: StreamSettings | None = None, *, sample_rate: int = SAMPLE_RATE,
                 seed: int | None = None, speaker: int | None = None, steps: int | None = None,
                 guidance: float | None = None) -> None:
        model._require("a2g")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        self.model, self.settings = model, settings or StreamSettings()
        self.speaker = model.speaker_index(speaker)
        self.steps = steps or self.settings.steps or model.settings.steps
        self.guidance = model.guidance_for("a2g") if guidance is None else guidance
        self.generator = model._generator(seed)
        self.resampler = None
        if sample_rate != SAMPLE_RATE:
            import soxr

            self.resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
        self.audio = np.zeros(0, np.float32)  # the latest speech; its first sample is `audio_offset`
        self.audio_offset = 0
        self.received = 0  # 16 kHz samples so far
        width = model.config.gesture_latent_dim
        self.latents = torch.zeros(1, 0, width, device=model.device)  # decided tokens [latent_offset, decided)
        self.latent_offset = 0
        self.decided = 0  # gesture tokens emitted
        self.features: dict[str, torch.Tensor] = {}  # conditioning frames [feature_offset, extracted * 4)
        self.feature_offset = 0
        self.extracted = 0  # gesture tokens whose features exist
        self.last_frame: dict[str, np.ndarray] | None = None  # un-drifted root of the last frame
        self.tail: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # each part's last two emitted frames
        self.drift = np.zeros(2)  # the leaky integrator's state (x, z), see bound_root_drift
        self.origin = np.zeros(3)
        self.leak = drift_leak(model.settings.root_horizon_s * FPS)
        self.finished = False

    # ---------------------------------------------------------------- input

    def push(self, pcm: np.ndarray) -> list[dict[str, Any]]:
        """Append mono PCM (float in [-1, 1] or int16) at the stream's rate; the frames this speech decides."""
        if self.finished:
            raise RuntimeError("push after finish(): start a new stream")
        samples = self._as_float(pcm)
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples)
        self._append(samples)
        out = []
        while self.received >= token_sample(self.decided + self.settings.hop_tokens + self.settings.lookahead_tokens):
            out.append(self._hop(self.decided + self.settings.hop_tokens, self.settings.lookahead_tokens))
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The speech ended: decide every remaining frame (the last hop sees the speech there is)."""
        if self.finished:
            return []
        if self.resampler is not None:
            self._append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self.finished = True
        total = math.ceil(self._frames() / FRAMES_PER_TOKEN)
        out = []
        while self.decided < total:
            end = min(self.decided + self.settings.hop_tokens, total)
            out.append(self._hop(end, min(self.settings.lookahead_tokens, total - end)))
        return out

    @staticmethod
    def _as_float(pcm: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm)
        if pcm.ndim == 2 and 1 in pcm.shape:
            pcm = pcm.reshape(-1)
        if pcm.ndim != 1:
            raise ValueError(f"push takes mono PCM (n,), got shape {pcm.shape}")
        if pcm.dtype == np.int16:
            return pcm.astype(np.float32) / 32768.0
        if not np.issubdtype(pcm.dtype, np.floating):
            raise ValueError(f"push takes float or int16 PCM, got {pcm.dtype}")
        pcm = pcm.astype(np.float32)
        if not np.all(np.isfinite(pcm)):
            raise ValueError("push: the PCM holds NaN or infinite samples")
        return pcm

    def _append(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, samples])
        self.received += len(samples)

    def _frames(self) -> int:
        return self.received * FPS // SAMPLE_RATE

    # ---------------------------------------------------------------- one hop

    def _hop(self, new_end: int, lookahead: int) -> dict[str, Any]:
        """Decide tokens [decided, new_end) from a window ending at new_end + lookahead."""
        began = time.perf_counter()
        s, model = self.settings, self.model
        end = new_end + lookahead
        start = max(0, end - s.window_tokens)
        cond = self._audio_condition(start, end)
        if model.speakers:
            cond["speaker"] = torch.tensor([self.speaker])
        cond = to_device(cond, model.device)
        known = torch.zeros(1, end - start, self.latents.shape[-1], device=model.device)
        num_known = self.decided - start
        if num_known:
            known[:, :num_known] = self.latents[:, start - self.latent_offset:]
        mask = (torch.arange(end - start, device=model.device) < num_known)[None]
        with torch.inference_mode():
            x = model.flow.sample(model.model, "a2g", cond, steps=self.steps, guidance=self.guidance,
                                  generator=self.generator, known=known, known_mask=mask if num_known else None,
                                  **model.settings.sampler_kwargs(model.device))
            frames = self._decode(x, start, new_end)
        self.latents = torch.cat([self.latents, x[:, num_known:new_end - start].to(self.latents)], dim=1)
        first = self.decided * FRAMES_PER_TOKEN
        self.decided = new_end
        keep = max(s.window_tokens, s.decode_context_tokens)
        if self.latents.shape[1] > keep:
            drop = self.latents.shape[1] - keep
            self.latents, self.latent_offset = self.latents[:, drop:], self.latent_offset + drop
        self._trim_audio()
        return {**frames, "start_frame": first, "speech_seconds": self.received / SAMPLE_RATE,
                "compute_seconds": time.perf_counter() - began}

    def _audio_condition(self, start: int, end: int) -> dict[str, torch.Tensor]:
        """Normalised WavLM + MFCC of tokens [start, end): the tokens an earlier hop extracted from the cache,
        the newly arrived ones extracted now; then the cache keeps what the next windows can reach."""
        if end > self.extracted:
            fresh = self._extract(self.extracted, end)
            self.features = ({k: torch.cat([self.features[k], v], dim=1) for k, v in fresh.items()}
                             if self.features else fresh)
            self.extracted = end
        lo = start * FRAMES_PER_TOKEN - self.feature_offset
        cond = {k: v[:, lo:lo + (end - start) * FRAMES_PER_TOKEN] for k, v in self.features.items()}
        oldest = max(0, end - self.settings.window_tokens) * FRAMES_PER_TOKEN  # no later window starts before it
        if oldest > self.feature_offset:
            self.features = {k: v[:, oldest - self.feature_offset:] for k, v in self.features.items()}
            self.feature_offset = oldest
        return cond

    def _extract(self, start: int, end: int) -> dict[str, torch.Tensor]:
        """Normalised WavLM + MFCC of tokens [start, end), extracted over a grid-aligned span that starts
        `feature_context` before them (the same span for the same hop, whatever the chunking)."""
        span = self._span_start(start)
        first = token_sample(span) - self.audio_offset
        wave = self.audio[first:token_sample(end) - self.audio_offset]
        frames = min(self._frames(), end * FRAMES_PER_TOKEN) - span * FRAMES_PER_TOKEN
        cond = self.model._extract_audio(wave, frames)  # padded to whole tokens; audio_mask marks real frames
        skip = (start - span) * FRAMES_PER_TOKEN
        length = (end - start) * FRAMES_PER_TOKEN
        out = {}
        for key, value in cond.items():
            value = value[:, skip:skip + length]
            if value.shape[1] < length:  # the last token of a stream that ends inside it
                pad = torch.zeros(value.shape[0], length - value.shape[1], *value.shape[2:], dtype=value.dtype)
                value = torch.cat([value, pad], dim=1)
            out[key] = value
        return out

    def _span_start(self, token: int) -> int:
        """The first token of the feature span of frames from `token` on: feature_context before, on the grid."""
        return max(0, (token - self.settings.feature_context_tokens) // GRID_TOKENS * GRID_TOKENS)

    def _trim_audio(self) -> None:
        """Keep only the speech a later hop's span can start at."""
        earliest = self._span_start(self.extracted)
        cut = token_sample(earliest) - self.audio_offset
        if cut > 0:
            self.audio, self.audio_offset = self.audio[cut:], self.audio_offset + cut

    def _decode(self, x: torch.Tensor, start: int, new_end: int) -> dict[str, np.ndarray]:
        """SMPL-X frames of tokens [decided, new_end): decoded with decided left context and up to as many of the
        window's lookahead tokens as right context; the root continues from the last emitted frame."""
        processor = self.model.processor
        context = min(self.settings.decode_context_tokens, self.decided - self.latent_offset)
        left = self.latents[:, self.latents.shape[1] - context:] if context else self.latents[:, :0]
        right = new_end - start + self.settings.decode_context_tokens  # as much right context as left, at most
        fresh = x[:, self.decided - start:right].to(left)
        latents = torch.cat([left, fresh], dim=1)
        parts = processor.decode_from_latents(latents, num_frames=latents.shape[1] * FRAMES_PER_TOKEN)
        lo, hi = context * FRAMES_PER_TOKEN, (context + new_end - self.decided) * FRAMES_PER_TOKEN
        stop = min(hi, self._frames() - (self.decided - context) * FRAMES_PER_TOKEN) if self.finished else hi
        raw = {p: processor.denormalize(p, v)[0, lo:max(lo, stop)].detach().float().cpu().numpy()
               for p, v in parts.items()}
        return self._to_smplx(self._join(raw))

    def _join(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inertialization at the hop's first frame: the new frames start where the emitted motion was heading
        (its last frame plus its last step), with its step, and both offsets fade over BLEND_FRAMES. The decoder
        saw other right context for the last emitted frames than for these (the lookahead tokens then, decided
        tokens now), so without it each hop would start with a jump."""
        n = len(raw["upper"])
        if n and self.tail is not None:
            frames = np.arange(n)[:, None]
            t = np.clip(frames / BLEND_FRAMES, 0, 1)
            fade = 1 - 3 * t**2 + 2 * t**3  # 1 -> 0 with zero slope at both ends
            for part, values in raw.items():
                last, before = self.tail[part]
                step = values[1] - values[0] if n > 1 else last - before
                position = 2 * last - before - values[0]  # to where the emitted motion was heading
                velocity = (last - before) - step  # to the step it was taking
                raw[part] = values + (position + velocity * frames) * fade
        if n:
            previous = {p: v[0] for p, v in self.tail.items()} if self.tail else {p: v[0] for p, v in raw.items()}
            self.tail = {p: (v[-1], v[-2] if n > 1 else previous[p]) for p, v in raw.items()}
        return raw

    def _to_smplx(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from omniges.data.body import merge_parts

        n = len(raw["upper"])
        if n == 0:
            return {"poses": np.zeros((0, 165), np.float32), "trans": np.zeros((0, 3)),
                    "expressions": np.zeros((0, 100))}
        poses, _, expressions = merge_parts(raw, face_jaw=self.model.processor.face_jaw)
        velocity = raw["lower_trans"][:, -3:]
        if self.last_frame is None:  # the stream's first frame: at the origin, as offline
            root = velocity_to_trans(velocity)
            steps = np.diff(root[:, [0, 2]], axis=0, prepend=root[:1, [0, 2]])
            self.origin = root[0].copy()
        else:
            previous = self.last_frame["root"]
            root = velocity_to_trans(np.concatenate([previous[None], velocity]), previous)[1:]
            steps = np.diff(np.concatenate([previous[None, [0, 2]], root[:, [0, 2]]]), axis=0)
        trans = root.copy()
        drift, self.drift = leaky_sum(steps, self.leak, self.drift)  # bound_root_drift's, continued hop by hop
        trans[:, [0, 2]] = self.origin[[0, 2]] + drift
        self.last_frame = {"root": root[-1].copy()}
        return {"poses": poses, "trans": trans, "expressions": expressions}


def stream_a2g(model: Omniges, chunks: Iterable[np.ndarray], settings: StreamSettings | None = None,
               **kwargs: Any) -> Iterator[dict[str, Any]]:
    """For each PCM chunk (then the end of the speech), the frames it decided (see A2GStream)."""
    stream = A2GStream(model, settings, **kwargs)
    for chunk in chunks:
        yield from stream.push(chunk)
    yield from stream.finish()


def concatenate(results: Iterable[dict[str, Any]]) -> dict[str, np.ndarray]:
    """One motion dict (poses, trans, expressions, betas) from a stream's results, in order."""
    results = list(results)
    keys = ("poses", "trans", "expressions")
    widths = {"poses": 165, "trans": 3, "expressions": 100}
    out = {k: np.concatenate([r[k] for r in results]) if results else np.zeros((0, widths[k])) for k in keys}
    out["betas"] = np.zeros(300, np.float32)
    return out


def emission_times(results: list[dict[str, Any]]) -> list[float]:
    """When each hop's frames leave, in seconds from the start of the speech, for speech arriving in real time
    on this machine: a hop starts when its speech has arrived and the hop before it is done (a hop slower than
    the speech delays the next), and takes its measured compute time."""
    out, free = [], 0.0
    for r in results:
        free = max(r["speech_seconds"], free) + r["compute_seconds"]
        out.append(free)
    return out


def latency_report(results: list[dict[str, Any]], *, emitted: list[float] | None = None) -> dict[str, float]:
    """Speech-to-motion latency of a stream: for each frame, the time from its speech sample's arrival (the
    frame's own time) to its emission; median, p95, the first frame's, and the compute per second of speech
    (below 1: the stream keeps up, with margin 1 / that). `emitted`: measured emission times (a paced run);
    default: `emission_times`."""
    times = emission_times(results) if emitted is None else emitted
    pairs = [(r, e) for r, e in zip(results, times, strict=True) if len(r["poses"])]
    if not pairs:
        return {"frames": 0}
    compute = sum(r["compute_seconds"] for r in results)
    hops = np.array([r["compute_seconds"] for r in results])
    results, emitted = [r for r, _ in pairs], [e for _, e in pairs]
    latencies = np.concatenate([e - (r["start_frame"] + np.arange(len(r["poses"]))) / FPS
                                for r, e in zip(results, emitted, strict=True)])
    speech = (results[-1]["start_frame"] + len(results[-1]["poses"])) / FPS
    return {"frames": int(len(latencies)), "speech_seconds": speech, "latency_median_s": float(np.median(latencies)),
            "latency_p95_s": float(np.percentile(latencies, 95)), "latency_max_s": float(latencies.max()),
            "first_frame_s": float(emitted[0]), "compute_per_speech_second": compute / max(speech, 1e-9),
            "realtime_margin": speech / max(compute, 1e-9), "hop_compute_median_s": float(np.median(hops)),
            "hop_compute_p95_s": float(np.percentile(hops, 95))}
