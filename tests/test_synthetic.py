"""The embedded corpus: exact BEAT2 layout, determinism, text/audio/motion agreement, calibration to real
BEAT2 motion, speech-gesture beat coupling and word-specific iconic gestures."""

from __future__ import annotations

import csv
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import textgrid
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from omniges.data import synthetic as syn
from omniges.data.kinematics import mean_joint_speeds
from omniges.data.synthetic import corpus as corpus_module

NPZ_KEYS = {"poses", "trans", "betas", "expressions", "model", "gender", "mocap_frame_rate"}


@pytest.fixture(scope="module", params=("espeak", "formant"))
def corpus(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
           ) -> tuple[Path, dict[str, float]]:
    root = tmp_path_factory.mktemp("syn") / "beat"
    return root, syn.synthesize_corpus(root, speakers=2, clips_per_speaker=2, clip_seconds=6.0, seed=3,
                                       speech=request.param)


SPEECH = ("espeak", "formant")


@pytest.fixture(scope="module", params=SPEECH)
def clips(request: pytest.FixtureRequest) -> list[syn.SyntheticClip]:
    """Two 20 s clips of each of the four designed speakers, in memory, with each speech synthesiser."""
    return [syn.synthesize_clip(style, seconds=20.0, seed=1, index=k, speech=request.param)
            for style in syn.speaker_styles(4) for k in range(2)]


def _ids(root: Path) -> list[tuple[str, str]]:
    with (root / "train_test_split.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["id", "type"]
        return [(row["id"], row["type"]) for row in reader]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_layout_keys_dtypes_and_shapes_are_beat2(corpus: tuple[Path, dict[str, float]]) -> None:
    root, summary = corpus
    rows = _ids(root)
    names = sorted(p.name for p in root.iterdir())
    assert names == ["smplxflame_30", "textgrid", "train_test_split.csv", "wave16k"]
    assert [t for _, t in rows] == ["train", "test", "train", "test"]
    assert {int(i.split("_")[0]) for i, _ in rows} == {2, 4} and rows[0][0] == "2_scott_0_1_1"
    assert summary["clips"] == 4 and summary["clips_train"] == 2 and summary["clips_test"] == 2
    assert summary["seconds"] == pytest.approx(24.0) and all(isinstance(v, float) for v in summary.values())
    for clip_id, _ in rows:
        with np.load(root / "smplxflame_30" / f"{clip_id}.npz", allow_pickle=False) as data:
            assert set(data.files) == NPZ_KEYS
            length = len(data["poses"])
            assert length == 180
            assert data["poses"].dtype == np.float32 and data["poses"].shape == (length, 165)
            assert data["trans"].dtype == np.float64 and data["trans"].shape == (length, 3)
            assert data["betas"].dtype == np.float32 and data["betas"].shape == (300,)
            assert data["expressions"].dtype == np.float64 and data["expressions"].shape == (length, 100)
            assert str(data["model"]) == "smplx2020" and str(data["gender"]) == "neutral"
            assert int(data["mocap_frame_rate"]) == 30 and data["mocap_frame_rate"].dtype.kind == "i"
            assert np.isfinite(data["poses"]).all() and np.isfinite(data["expressions"]).all()
        info = sf.info(str(root / "wave16k" / f"{clip_id}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.frames / 16000 - length / 30) <= 1 / 30
        assert (root / "textgrid" / f"{clip_id}.TextGrid").is_file()


def test_project_reader_accepts_the_corpus(corpus: tuple[Path, dict[str, float]]) -> None:
    from omniges.data.beat2 import read_clip, read_split_csv

    root, _ = corpus
    for entry in read_split_csv(root):
        record = read_clip(root, entry)
        assert record["n_frames"] == 180 and len(record["audio"]) == 96000 and len(record["words"]) >= 5


@pytest.mark.parametrize("speech", ("espeak", "formant"))
def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path, speech: str) -> None:
    a, b, c = (syn.synthesize_corpus(tmp_path / name, speakers=2, clips_per_speaker=1, clip_seconds=4.0,
                                     seed=seed, speech=speech) for name, seed in (("a", 5), ("b", 5), ("c", 6)))
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 7
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / files[-1]).read_bytes() != (tmp_path / "c" / files[-1]).read_bytes()
    with np.load(tmp_path / "a" / "smplxflame_30" / "2_scott_0_1_1.npz") as x, \
            np.load(tmp_path / "c" / "smplxflame_30" / "2_scott_0_1_1.npz") as y:
        assert not np.array_equal(x["poses"], y["poses"])


def test_textgrid_words_are_vocabulary_with_exact_times(corpus: tuple[Path, dict[str, float]]) -> None:
    from praatio import textgrid as praat

    root, _ = corpus
    for clip_id, _ in _ids(root):
        path = root / "textgrid" / f"{clip_id}.TextGrid"
        grid = textgrid.TextGrid.fromFile(str(path))
        tier = grid.getFirst("words")
        assert isinstance(tier, textgrid.IntervalTier)
        duration = sf.info(str(root / "wave16k" / f"{clip_id}.wav")).duration
        marks = [iv.mark for iv in tier]
        words = [m for m in marks if m]
        assert len(words) >= 5 and set(words) <= set(syn.VOCABULARY) and "" in marks  # pauses are empty
        assert tier[0].minTime == 0 and tier[len(tier) - 1].maxTime == pytest.approx(duration)
        for prev, cur in zip(tier.intervals, tier.intervals[1:], strict=False):
            assert cur.minTime == prev.maxTime and cur.maxTime > cur.minTime  # contiguous, no overlap
        samples = np.array([iv.minTime for iv in tier]) * 16000
        assert np.allclose(samples, np.round(samples), atol=1e-6)  # on the audio sample grid
        entries = praat.openTextgrid(str(path), includeEmptyIntervals=False).getTier("words").entries
        assert [e.label for e in entries] == words


@pytest.mark.parametrize("speech", SPEECH)
def test_words_match_what_was_synthesised(speech: str) -> None:
    clip = syn.synthesize_clip(syn.speaker_styles(1)[0], seconds=8.0, seed=2, speech=speech)
    audio = clip.audio.astype(np.float64) / 32768
    for _, start, end in clip.words:  # speech inside words, silence in the gaps between phrases
        assert np.abs(audio[int(start * 16000):int(end * 16000)]).max() > 0.05
    gaps = [(a[2], b[1]) for a, b in zip(clip.words, clip.words[1:], strict=False) if b[1] > a[2]]
    assert gaps, "phrases must be separated by pauses"
    for start, end in gaps:
        assert np.abs(audio[int(start * 16000) + 240:int(end * 16000)]).max() < 0.01
    assert np.abs(audio[:int(clip.words[0][1] * 16000)]).max() < 0.01


def _fastest_frame_change(poses: np.ndarray) -> float:
    """The largest change of any pose column between two frames (rad)."""
    return float(np.abs(np.diff(poses, axis=0)).max())


def _assert_no_faster_frame(clip: syn.SyntheticClip, real_jump: float) -> None:
    jump = _fastest_frame_change(clip.poses)
    assert jump <= real_jump, f"{clip.clip_id}: {jump:.3f} rad in one frame (real: {real_jump:.3f})"


def test_motion_is_calibrated_to_real_beat2(
    clips: list[syn.SyntheticClip], real_clip_paths: dict[str, Path]
) -> None:
    """Per-joint mean speeds (m/s, omniges.data.kinematics FK) within 2x of BEAT2 mean_vel, angles inside the real
    clip's range, no faster per-frame change than the real clip has."""
    mean_vel = np.load(real_clip_paths["mean_std"] / "mean_vel_smplxflame_30.npy")
    assert np.allclose(mean_vel, syn.BEAT2_MEAN_VEL, atol=1e-4)
    with np.load(real_clip_paths["npz"]) as real:
        real_poses, real_trans = real["poses"], real["trans"]
    real_ratio = mean_joint_speeds(real_poses, real_trans) / mean_vel
    assert 1.5 < np.median(real_ratio) < 2.5  # units check: the real clip (an active speaker) is ~2x the mean
    low, high = real_poses.min(axis=0) - 0.05, real_poses.max(axis=0) + 0.05
    real_jump = _fastest_frame_change(real_poses)
    for clip in clips:
        ratio = mean_joint_speeds(clip.poses, clip.trans) / mean_vel
        assert ratio.min() > 0.5 and ratio.max() < 2.0, (clip.clip_id, ratio.round(2))
        assert ((clip.poses >= low) & (clip.poses <= high)).all(), clip.clip_id
        _assert_no_faster_frame(clip, real_jump)
        assert np.linalg.norm(np.diff(clip.trans, axis=0), axis=1).max() < 0.02


@pytest.mark.parametrize("speech", SPEECH)
def test_no_frame_moves_faster_than_real_motion(real_clip_paths: dict[str, Path], speech: str) -> None:
    """Over the demo corpus's first 6 clips per speaker (seed 0, not only the fixture's seed): no pose column
    changes faster in one frame than the real clip's fastest change."""
    with np.load(real_clip_paths["npz"]) as real:
        real_jump = _fastest_frame_change(real["poses"])
    for style in syn.speaker_styles(4):
        for k in range(6):
            clip = syn.synthesize_clip(style, seconds=20.0, seed=0, index=k, speech=speech)
            _assert_no_faster_frame(clip, real_jump)


def test_arm_speed_follows_audio_onsets(clips: list[syn.SyntheticClip]) -> None:
    """Onset strength and arm speed correlate at lag 0, much less with the audio shifted by 2 s; arm speed
    minima sit on the stressed onsets (stroke apexes)."""
    lag, envelopes, speeds, distances = 60, [], [], []
    for clip in clips:
        audio = clip.audio.astype(np.float32) / 32768
        onset = librosa.onset.onset_strength(y=audio, sr=16000, hop_length=160)
        frames = np.arange(len(clip.poses)) / 30
        envelopes.append(gaussian_filter1d(np.interp(frames, np.arange(len(onset)) / 100, onset), 6))
        arm = np.linalg.norm(np.gradient(clip.poses[:, 48:66].astype(np.float64), axis=0), axis=1)
        speeds.append(gaussian_filter1d(arm, 6))
        minima = argrelextrema(arm, np.less, order=2)[0] / 30
        distances.extend(np.abs(clip.beats[:, None] - minima[None, :]).min(axis=1))
    env, speed = np.concatenate(envelopes), np.concatenate(speeds)
    at_zero = _corr(env[lag:-lag], speed[lag:-lag])
    shifted = max(_corr(env[:-2 * lag], speed[lag:-lag]), _corr(env[2 * lag:], speed[lag:-lag]))
    assert at_zero > 0.25 and at_zero > shifted + 0.15, (at_zero, shifted)
    assert np.median(distances) < 0.1


def test_iconic_gestures_show_in_their_words(clips: list[syn.SyntheticClip]) -> None:
    assert len(syn.ICONIC_GESTURES) >= 8 and set(syn.ICONIC_WORDS) <= set(syn.VOCABULARY)
    offsets: dict[str, list[float]] = {}
    for clip in clips:
        for word, start, end in clip.words:
            if word not in syn.ICONIC_WORDS:
                continue
            gesture = syn.ICONIC_GESTURES[syn.ICONIC_WORDS[word]]
            column, sign = gesture.signature(clip.style.dominant)
            a = int(np.ceil(start * 30))
            b = max(int(np.ceil(end * 30)), a + 1)
            x = clip.poses[:, column].astype(np.float64)
            if sign == 0:  # oscillation (head shake / nod): faster inside the word than typical
                speed = np.abs(np.diff(x))
                offsets.setdefault(gesture.name, []).append(speed[a:b].mean() - 1.5 * np.median(speed))
            else:
                offsets.setdefault(gesture.name, []).append((x[a:b].mean() - np.median(x)) * sign)
    assert len(offsets) >= 7, sorted(offsets)
    every = np.concatenate([np.array(v) for v in offsets.values()])
    assert (every > 0).mean() >= 0.85
    for name, values in offsets.items():
        assert np.mean(values) > 0, name


def test_face_follows_the_voice(clips: list[syn.SyntheticClip]) -> None:
    clip = clips[0]
    audio = clip.audio.astype(np.float64) / 32768
    edges = np.arange(len(clip.poses) + 1) * len(audio) // len(clip.poses)
    rms = np.sqrt(np.add.reduceat(audio**2, edges[:-1]) / np.diff(edges))
    jaw = clip.poses[:, 66].astype(np.float64)
    assert _corr(gaussian_filter1d(rms, 2), jaw) > 0.5
    assert _corr(gaussian_filter1d(rms, 2), clip.expressions[:, syn.MOUTH_EXPRESSIONS[0]]) > 0.3
    blink = clip.expressions[:, syn.BLINK_EXPRESSION]
    assert (blink > np.median(blink) + 0.4).sum() >= 3  # a few blinks in 20 s


def test_speakers_have_distinct_styles(clips: list[syn.SyntheticClip]) -> None:
    styles = syn.speaker_styles(4)
    assert len({s.speaker_id for s in styles}) == 4 and {s.dominant for s in styles} == {"left", "right"}
    for clip in clips:
        speeds = mean_joint_speeds(clip.poses, clip.trans)
        left, right = speeds[20], speeds[21]
        assert (left > right) == (clip.style.dominant == "left"), clip.clip_id
    rate = {c.style.name: len(c.words) / c.words[-1][2] for c in clips}
    assert rate["carla"] > rate["lawrence"]  # fast vs slow talker
    assert not np.allclose(clips[0].betas, clips[2].betas)


def test_vocabulary_and_options(tmp_path: Path) -> None:
    assert len(syn.VOCABULARY) >= 50 and len(set(syn.VOCABULARY)) == len(syn.VOCABULARY)
    for word in syn.VOCABULARY:  # every polysyllable has a stressed syllable
        assert any(stress for _, _, stress in syn.LEXICON[word]) or len(syn.LEXICON[word]) == 1, word
    root = tmp_path / "v"
    syn.synthesize_corpus(root, speakers=1, clips_per_speaker=1, clip_seconds=6.0, vocabulary_size=20)
    grid = textgrid.TextGrid.fromFile(str(root / "textgrid" / "2_scott_0_1_1.TextGrid"))
    words = [iv.mark for iv in grid.getFirst("words") if iv.mark]
    assert set(words) <= set(syn.VOCABULARY[:20])
    with pytest.raises(ValueError, match="vocabulary_size"):
        syn.synthesize_corpus(tmp_path / "w", vocabulary_size=2)
    with pytest.raises(ValueError, match="speakers"):
        syn.speaker_styles(31)


def test_interrupted_run_leaves_previous_corpus_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    root = tmp_path / "beat"
    syn.synthesize_corpus(root, speakers=1, clips_per_speaker=1, clip_seconds=3.0)
    before = sorted(p.name for p in root.rglob("*"))
    calls = []

    def failing(target: Path, clip: syn.SyntheticClip) -> None:
        calls.append(clip.clip_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(target, clip)

    original = syn.write_clip
    monkeypatch.setattr(corpus_module, "write_clip", failing)
    with pytest.raises(KeyboardInterrupt):
        syn.synthesize_corpus(root, speakers=2, clips_per_speaker=2, clip_seconds=3.0)
    assert sorted(p.name for p in root.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beat"]  # no temp directory left behind
    monkeypatch.undo()
    syn.synthesize_corpus(root, speakers=2, clips_per_speaker=1, clip_seconds=3.0)
    assert len(_ids(root)) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["beat"]


def test_espeak_syllables_are_read_off_the_voice() -> None:
    """eSpeak NG speech: every word's syllables lie inside it in time order, its stressed vowel is louder than
    the phrase's unstressed ones on the audio, beats are the stressed vowel onsets, and the voices differ."""
    from omniges.data.synthetic.espeak import utterance, voice_of

    styles = syn.speaker_styles(4)
    clip = syn.synthesize_clip(styles[0], seconds=12.0, seed=4, speech="espeak")
    script_words = [w for w, _, _ in clip.words]
    assert len(script_words) >= 8 and set(script_words) <= set(syn.VOCABULARY)
    starts = np.array([s for _, s, _ in clip.words])
    assert (np.diff(starts) > 0).all() and all(e > s for _, s, e in clip.words)
    audio = clip.audio.astype(np.float64) / 32768
    assert len(clip.beats) >= 8 and (np.diff(clip.beats) > 0).all()
    for beat in clip.beats:  # voiced at every stressed vowel onset
        assert np.sqrt(np.mean(audio[int(beat * 16000):int(beat * 16000) + 800] ** 2)) > 0.01
    again = [syn.synthesize_clip(s, seconds=12.0, seed=4, speech="espeak") for s in (styles[3], styles[0])][1]
    assert np.array_equal(again.audio, clip.audio)  # the same whichever clips were spoken before it
    voices = {voice_of(s)["voice"] for s in styles}
    assert len(voices) >= 3
    wave, phonemes = utterance("never stop", voice_of(styles[0]))
    names = [p.name for p in phonemes]
    assert sum(n.startswith("'") for n in names) == 2 and [p.word for p in phonemes] == sorted(p.word for p in phonemes)
    assert 0.3 < len(wave) / 16000 < 2.0 and np.abs(wave).max() > 0.1
    with pytest.raises(ValueError, match="speech"):
        syn.synthesize_clip(styles[0], seconds=4.0, speech="robot")


def test_split_gives_each_speaker_its_val_and_test_clips_and_keeps_small_corpora_trainable():
    from omniges.data.synthetic.corpus import _split

    splits = [_split(k, 30, 6, 6) for k in range(30)]
    assert splits.count("val") == 6 and splits.count("test") == 6 and splits.count("additional") == 1
    assert splits[:17] == ["train"] * 17  # the first clips (same seeds) stay train whatever the tail
    assert [_split(k, 20) for k in range(20)][-4:] == ["train", "val", "test", "additional"]
    assert [_split(k, 2, 6, 6) for k in range(2)] == ["train", "test"]
    assert [_split(k, 4, 6, 6) for k in range(4)] == ["train", "val", "test", "additional"]
