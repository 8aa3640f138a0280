"""Does a trained A2G model answer real speech? Jaw, beat and movement measures on real BEAT2 clips.

    python benchmarks/real_speech.py [OUT.json] [--checkpoint results/models/a2g/model.pt] [--clips DIR] [--seeds 4]

For each real clip (`DIR/smplxflame_30/*.npz` with `DIR/wave16k/*.wav`; default: the bundled BEAT2 clip, whose
speech no demo model was trained on), A2G motion is generated from the wav with `--seeds` seeds and scored:
- jaw-loudness correlation at lag 0: Pearson r of the jaw opening angle and the frame RMS of the speech (30 fps),
  for the true pairing and for mismatched speech (the same motion against the clip's speech circularly shifted
  by 5 s or more: other speech, same statistics); the real motion with its own speech is the reference row;
- BC (EMAGE beat consistency) of the true and the mismatched pairing, with the clip's own mean_vel when given,
  and `bc_null_z`: BC against its chance distribution, the same motion against the clip's speech circularly
  shifted by every whole second from 3 s to the end minus 3 s ((BC - null mean) / null sd; `bc_null_pct` the
  fraction of shifts below it). The real motion's own `bc_null_z` says whether a clip can resolve BC coupling
  at all (`targets.bc_resolvable_on_these_clips`: the real motion's z >= 1.96);
- L1 diversity of the generated motion against the real motion's;
- upper-body speed: the mean over the 13 BC joints of joint speed / mean_vel (how energetic the body is; the
  demo corpus is calibrated to BEAT2's mean_vel, so on its own clips a model moves at about 1).
Targets: jaw r >= 0.15 and >= 3x the mismatched r; BC above the mismatched BC; L1div within 30% of the real one.
Means over seeds with a 95% bootstrap CI over (clip, seed) units; `bc_margin` is the paired BC difference (true
minus mismatched speech, same motion), so its CI says whether BC is above mismatched beyond noise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import librosa
import numpy as np

from omniges.constants import FPS
from omniges.constants import SAMPLE_RATE as SR

ROOT = Path(__file__).resolve().parents[1]
SHIFTS_S = (5.0, 9.0, 13.0, 17.0)
MIN_SECONDS = 12.0  # shorter clips are skipped (counted): the shifted-speech rows need 5 s + 7 s of other speech
NULL_EDGE_S = 3.0  # the null distribution's shifts: every whole second in [3 s, duration - 3 s]


def frame_rms(wave: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of the speech in a 50 ms window centred on each motion frame."""
    hop = SR / FPS
    rms = librosa.feature.rms(y=wave, frame_length=800, hop_length=int(round(hop)), center=True)[0]
    rms = np.pad(rms, (0, max(0, n_frames - len(rms))), mode="edge")
    return rms[:n_frames]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def scores(poses: np.ndarray, wave: np.ndarray, mean_vel: np.ndarray) -> dict[str, float]:
    from omniges.evaluation import metrics
    from omniges.evaluation.report import fk_no_translation
    from omniges.evaluation.sync import jaw_opening

    n = len(poses)
    jaw, rms = jaw_opening(poses), frame_rms(wave, n)
    shifts = [int(s * SR) for s in SHIFTS_S if s * SR < len(wave) - 5 * SR]
    joints = fk_no_translation(poses)
    out = {"jaw_r": pearson(jaw, rms),
           "jaw_r_mismatched": float(np.mean([pearson(jaw, frame_rms(np.roll(wave, k), n)) for k in shifts])),
           "bc": metrics.beat_consistency(wave, SR, joints, FPS, mean_vel=mean_vel),
           "bc_mismatched": float(np.mean([metrics.beat_consistency(np.roll(wave, k), SR, joints, FPS,
                                                                    mean_vel=mean_vel) for k in shifts])),
           "l1div": metrics.l1_diversity(joints),
           "upper_speed": float((metrics.joint_speed(joints, FPS) / np.asarray(mean_vel)[: joints.shape[1]])[
               :, list(metrics.UPPER_BODY_JOINTS)].mean())}
    out["bc_margin"] = out["bc"] - out["bc_mismatched"]  # paired: the same motion against true and other speech
    out.update(bc_null(wave, joints, mean_vel, out["bc"]))
    out["jaw_r_margin"] = out["jaw_r"] - out["jaw_r_mismatched"]
    return out


def bc_null(wave: np.ndarray, joints: np.ndarray, mean_vel: np.ndarray, bc: float | None = None
            ) -> dict[str, float]:
    """BC of the motion against its chance distribution over alignments: the speech circularly shifted by every
    whole second in [NULL_EDGE_S, duration - NULL_EDGE_S]. z = (BC - null mean) / null sd; pct = the fraction of
    shifts with a lower BC."""
    from omniges.evaluation import metrics

    if bc is None:
        bc = metrics.beat_consistency(wave, SR, joints, FPS, mean_vel=mean_vel)
    null = np.array([metrics.beat_consistency(np.roll(wave, int(s * SR)), SR, joints, FPS, mean_vel=mean_vel)
                     for s in np.arange(NULL_EDGE_S, len(wave) / SR - NULL_EDGE_S + 1e-9, 1.0)])
    if len(null) < 2:
        raise ValueError(f"speech of {len(wave) / SR:.1f} s: BC's null distribution needs more than "
                         f"{2 * NULL_EDGE_S + 1:.0f} s")
    return {"bc_null_z": float((bc - null.mean()) / max(null.std(), 1e-9)), "bc_null_pct": float((null < bc).mean())}


def bootstrap(values: np.ndarray, draws: int = 1000) -> list[float]:
    rng = np.random.default_rng(0)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(draws)]
    return np.percentile(means, [2.5, 97.5]).tolist()


def real_pairs(clips: Path, motions: dict[str, dict[str, np.ndarray]]
               ) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[str]]:
    """(stem, poses, speech) of every clip, cut to their common length; clips without readable speech or shorter
    than MIN_SECONDS are skipped, each with a line on stderr, and listed."""
    from omniges.features.audio import AudioError, load_audio

    pairs, skipped = [], []
    for stem, motion in motions.items():
        try:
            wave = load_audio(clips / "wave16k" / f"{stem}.wav")
        except AudioError as error:  # a clip without readable speech: counted and skipped, like preprocess
            skipped.append(stem)
            print(f"real_speech: {error}: skipped", file=sys.stderr)
            continue
        n = min(len(motion["poses"]), int(len(wave) / SR * FPS))
        if n / FPS < MIN_SECONDS:
            skipped.append(stem)
            print(f"real_speech: {stem}: {n / FPS:.1f} s of motion with speech, under {MIN_SECONDS:.0f} s: skipped",
                  file=sys.stderr)
            continue
        pairs.append((stem, motion["poses"][:n], wave[: int(n * SR / FPS)]))
    return pairs, skipped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/real_speech.json")
    parser.add_argument("--checkpoint", default="results/models/a2g/model.pt")
    parser.add_argument("--clips", default=str(ROOT / "tests/fixtures/beat2_real"))
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    import torch

    from omniges.data.beat2 import read_motion
    from omniges.data.kinematics import mean_velocity
    from omniges.data.store import write_json_atomic
    from omniges.inference import GenerationSettings, Omniges

    clips = Path(args.clips)
    try:
        model = Omniges.load(args.checkpoint, settings=GenerationSettings.from_params())
    except (FileNotFoundError, ValueError) as error:  # no trained model, a bad checkpoint, a missing tokenizer
        raise SystemExit(f"real_speech: {error}") from None
    motions = {npz.stem: read_motion(npz) for npz in sorted((clips / "smplxflame_30").glob("*.npz"))}
    if not motions:
        raise SystemExit(f"{clips / 'smplxflame_30'}: no .npz motion files")
    mean_vel_path = clips / "mean_std" / "mean_vel_smplxflame_30.npy"
    # BC's per-joint speed normaliser: BEAT2's file when the folder has it, else these clips' own mean speed
    mean_vel = np.load(mean_vel_path) if mean_vel_path.exists() else mean_velocity(
        (m["poses"], m["trans"]) for m in motions.values())
    rows: dict[str, list[dict[str, float]]] = {"generated": [], "real": []}
    pairs, skipped = real_pairs(clips, motions)
    for stem, poses_real, wave in pairs:
        n = len(poses_real)
        rows["real"].append({"clip": stem, **scores(poses_real, wave, mean_vel)})
        with torch.inference_mode():
            for seed in range(args.seeds):
                poses = model.a2g(wave, seed=seed)["poses"][:n]
                rows["generated"].append({"clip": stem, "seed": seed, **scores(poses, wave, mean_vel)})
    if not rows["real"]:
        raise SystemExit(f"real_speech: {clips}: no clip of at least {MIN_SECONDS:.0f} s ({len(skipped)} skipped)")
    summary = {}
    for name, units in rows.items():
        summary[name] = {}
        for key in ("jaw_r", "jaw_r_mismatched", "jaw_r_margin", "bc", "bc_mismatched", "bc_margin", "bc_null_z",
                    "bc_null_pct", "l1div", "upper_speed"):
            values = np.array([u[key] for u in units])
            summary[name][key] = {"mean": float(values.mean()), "ci95": bootstrap(values)}
    gen, real = summary["generated"], summary["real"]
    targets = {
        "jaw_r_at_least_0.15": gen["jaw_r"]["mean"] >= 0.15,
        "jaw_r_at_least_3x_mismatched": gen["jaw_r"]["mean"] >= 3 * max(gen["jaw_r_mismatched"]["mean"], 1e-9),
        "bc_above_mismatched": gen["bc"]["mean"] > gen["bc_mismatched"]["mean"],
        "bc_above_mismatched_beyond_noise": gen["bc_margin"]["ci95"][0] > 0,
        "bc_above_chance_alignment": gen["bc_null_z"]["mean"] >= 1.96,
        "bc_resolvable_on_these_clips": real["bc_null_z"]["mean"] >= 1.96,
        "l1div_within_30pct_of_real": abs(gen["l1div"]["mean"] / real["l1div"]["mean"] - 1) <= 0.3,
    }
    result = {"checkpoint": args.checkpoint, "clips": str(clips), "seeds": args.seeds, "skipped": skipped,
              "summary": summary,
              "targets": targets, "units": rows}
    write_json_atomic(Path(args.out), result)
    print(json.dumps({"summary": summary, "targets": targets}, indent=1))


if __name__ == "__main__":
    main()
