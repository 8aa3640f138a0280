"""Live A2G (omniges.streaming): chunk-size invariance, bounded state, seams, settings, bad input, the end of a
stream, against a tiny random checkpoint."""

import numpy as np
import pytest

from omniges.streaming import A2GStream, StreamSettings, concatenate


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from omniges.inference import Omniges
    from tests.conftest import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("stream")
    path = write_tiny_checkpoint(root)
    return Omniges.load(path, cache_dir=root / "data/cache", rvqvae_dir=root / "results/rvqvae")


def _speech(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # syllable-like loudness
    return (0.1 * envelope * rng.normal(size=len(t))).astype(np.float32)


def _run(model, wave, chunk, **kwargs):
    chunks = [wave[i:i + chunk] for i in range(0, len(wave), chunk)]
    return list(model.stream(chunks, seed=3, steps=1, **kwargs))


@pytest.mark.parametrize("lookahead", [0.0, 0.5])
def test_the_same_motion_whatever_the_chunk_size(model, lookahead):
    wave = _speech(3.3)
    small = concatenate(_run(model, wave, 160, lookahead=lookahead))  # 10 ms chunks
    large = concatenate(_run(model, wave, 16000, lookahead=lookahead))  # 1 s chunks
    assert len(small["poses"]) == len(large["poses"]) == int(3.3 * 30)
    for key in ("poses", "trans", "expressions"):
        np.testing.assert_array_equal(small[key], large[key])


def test_frames_are_emitted_in_order_as_the_speech_arrives(model):
    wave = _speech(4.0)
    stream = A2GStream(model, StreamSettings(lookahead=0.0), seed=0, steps=1)
    first = stream.push(wave[:4267])  # 0.267 s: one hop of 2 tokens
    assert [r["start_frame"] for r in first] == [0] and len(first[0]["poses"]) == 8
    assert stream.push(wave[4267:4300]) == []  # not a whole hop yet
    later = stream.push(wave[4300:])
    ends = [r["start_frame"] + len(r["poses"]) for r in first + later]
    assert ends == sorted(ends) and all(r["start_frame"] == e for r, e in zip(later, ends, strict=False))
    rest = stream.finish()
    assert sum(len(r["poses"]) for r in first + later + rest) == 120
    assert stream.finish() == []
    with pytest.raises(RuntimeError, match="after finish"):
        stream.push(wave[:10])


def test_lookahead_delays_the_decision(model):
    wave = _speech(2.0)
    stream = A2GStream(model, StreamSettings(lookahead=0.5), seed=0, steps=1)  # 4 tokens = 0.533 s
    assert stream.push(wave[:int(0.7 * 16000)]) == []  # hop 0.267 + lookahead 0.533 = 0.8 s needed
    assert len(stream.push(wave[int(0.7 * 16000):int(0.81 * 16000)])) == 1


def test_state_stays_bounded_over_a_long_stream(model):
    stream = A2GStream(model, StreamSettings(lookahead=0.25), seed=0, steps=1)
    wave = _speech(1.0)
    sizes = []
    for _ in range(40):  # 40 s of speech
        stream.push(wave)
        sizes.append((len(stream.audio), stream.latents.shape[1]))
    assert max(sizes[10:]) <= max(sizes[:10])  # buffers stop growing after the first window
    assert stream.latents.shape[1] <= stream.settings.window_tokens


@pytest.mark.parametrize("lookahead", [0.0, 1.0])
def test_features_are_extracted_once_per_frame_over_a_bounded_span(model, monkeypatch, lookahead):
    spans = []  # (samples, frames) of each extraction
    extract = model._extract_audio
    monkeypatch.setattr(model, "_extract_audio", lambda wave, frames: spans.append((len(wave), frames))
                        or extract(wave, frames))
    settings = StreamSettings(lookahead=lookahead, feature_context=1.0)
    stream = A2GStream(model, settings, seed=0, steps=1)
    hops = [r for _ in range(8) for r in stream.push(_speech(1.0))]
    hop = settings.hop_tokens * 4 / 30
    assert len(spans) == len(hops) > 20  # one extraction per hop
    # after the first: context (1 s) + up to one grid step (0.4 s) + the new speech (one hop), whatever the lookahead
    assert max(samples for samples, _ in spans[1:]) <= (1.0 + 0.4 + hop) * 16000 + 1
    assert spans[0][0] >= (hop + settings.lookahead_s) * 16000  # the first hop extracts its lookahead too


def test_no_seam_at_hop_boundaries(model):
    """Acceleration at the frames where one hop's motion meets the next is within the range elsewhere."""
    motion = concatenate(_run(model, _speech(8.0), 1600, lookahead=0.25))
    poses = motion["poses"]
    accel = np.linalg.norm(poses[2:] - 2 * poses[1:-1] + poses[:-2], axis=1)  # accel[i] is at frame i + 1
    boundary = np.zeros(len(poses), bool)
    boundary[8::8] = True  # hops of 2 tokens = 8 frames
    at_seams, elsewhere = accel[boundary[1:-1]], accel[~boundary[1:-1]]
    assert np.median(at_seams) <= 2.0 * np.median(elsewhere)


def test_other_sample_rates_and_int16(model):
    wave = _speech(2.0, rate=44100)
    chunks = [(wave[i:i + 4410] * 32767).astype(np.int16) for i in range(0, len(wave), 4410)]
    motion = concatenate(model.stream(chunks, sample_rate=44100, seed=0, steps=1))
    assert abs(len(motion["poses"]) - 60) <= 1 and np.all(np.isfinite(motion["poses"]))


def test_silence_and_an_empty_stream_end_cleanly(model):
    silence = concatenate(model.stream([np.zeros(16000, np.float32)] * 3, seed=0, steps=1))
    assert len(silence["poses"]) == 90 and np.all(np.isfinite(silence["poses"]))
    assert len(concatenate(model.stream([], seed=0, steps=1))["poses"]) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"lookahead": -1.0}, "lookahead"), ({"hop": 0.01}, "hop must be at least"), ({"lookahead": float("nan")},
                                                                                  "lookahead"),
    ({"window_tokens": 4, "lookahead": 1.0}, "window_tokens"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StreamSettings(**kwargs)


def test_bad_pcm_is_named(model):
    stream = A2GStream(model, seed=0)
    with pytest.raises(ValueError, match="mono"):
        stream.push(np.zeros((100, 2), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        stream.push(np.full(100, np.nan, np.float32))
    with pytest.raises(ValueError, match="float or int16"):
        stream.push(np.zeros(100, np.int64))


def test_cli_generate_stream_writes_the_files_and_a_latency_report(tiny_checkpoint, tmp_path, monkeypatch):
    import json

    import soundfile as sf
    from click.testing import CliRunner

    from omniges.cli import main

    monkeypatch.chdir(tiny_checkpoint.parents[3])  # data/cache and results/rvqvae beside the checkpoint
    speech = tmp_path / "talk.wav"
    sf.write(speech, _speech(2.0), 16000)
    out, npz, report = tmp_path / "talk.mp4", tmp_path / "talk.npz", tmp_path / "latency.json"
    result = CliRunner().invoke(main, ["generate", "--audio", str(speech), "--out", str(out), "--npz", str(npz),
                                       "--checkpoint", str(tiny_checkpoint), "--stream", "--lookahead", "0.25",
                                       "--latency-report", str(report), "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "latency  median" in result.output
    assert np.load(npz)["poses"].shape == (60, 165)
    latency = json.loads(report.read_text())
    assert latency["frames"] == 60 and latency["lookahead_s"] == pytest.approx(0.2667, abs=1e-3)
    assert latency["latency_p95_s"] >= latency["latency_median_s"] >= latency["lookahead_s"]
    bad = CliRunner().invoke(main, ["generate", "--audio", str(speech), "--out", str(out), "--realtime",
                                    "--checkpoint", str(tiny_checkpoint)])
    assert bad.exit_code != 0 and "go with --stream" in bad.output
