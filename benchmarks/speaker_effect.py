"""Does speaker conditioning do something? A speaker classifier trained on real motion, applied to generated motion.

    python benchmarks/speaker_effect.py [--checkpoint results/models/a2g/model.pt] [OUT.json]

A logistic regression on per-window motion statistics (forward kinematics of the 22 body joints without the
root translation: mean position = rest pose, position std = amplitude, mean joint speed = tempo, left/right wrist
speed = handedness) is fitted on the real train clips of the corpus, then scores A2G motion generated for the
held-out clips' speech (`--splits`, default val and test):
- `real`: the held-out real motion (what the classifier can do at best);
- `with_true_id`: generated with the clip's own speaker id; `with_any_id`: generated once per listed speaker id
  for every clip, scored against the id given (speech and id disagree for all but one of them);
- `without_id`: generated with the unknown speaker, scored against the clip's true speaker.
Chance is 1 / speakers. Intervals are 95% Wilson intervals over windows. Writes JSON (default
results/benchmarks/speaker_effect.json).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from omniges.data.kinematics import forward_kinematics, joint_speeds
from omniges.data.store import LmdbReader, write_json_atomic
from omniges.inference import Omniges

BODY_JOINTS = 22  # SMPL-X pelvis .. right wrist
LEFT_WRIST, RIGHT_WRIST = 20, 21
WINDOW = 120  # frames per classified window (4 s at 30 fps)


def window_features(poses: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """(T, 165) SMPL-X axis-angle poses -> (windows, features) rest-pose / amplitude / tempo / handedness stats."""
    joints = forward_kinematics(poses)[:, :BODY_JOINTS]
    speeds = joint_speeds(joints)
    rows = []
    for start in range(0, len(poses) - window + 1, window):
        pos, speed = joints[start : start + window], speeds[start : start + window]
        hands = math.log((speed[:, LEFT_WRIST].mean() + 1e-3) / (speed[:, RIGHT_WRIST].mean() + 1e-3))
        rows.append(np.concatenate([pos.mean(0).ravel(), pos.std(0).ravel(), speed.mean(0), [hands]]))
    return np.asarray(rows, np.float64).reshape(-1, 3 * BODY_JOINTS * 2 + BODY_JOINTS + 1)


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if not total:
        return (float("nan"), float("nan"))
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (centre - half, centre + half)


def score(classifier: Any, motions: list[tuple[np.ndarray, int]]) -> dict[str, Any]:
    """Accuracy of the classifier on the windows of (poses, target speaker) motions."""
    hits = total = 0
    for poses, target in motions:
        feats = window_features(poses)
        if len(feats):
            hits += int((classifier.predict(feats) == target).sum())
            total += len(feats)
    low, high = wilson(hits, total)
    return {"accuracy": hits / total if total else float("nan"), "ci95": [low, high], "windows": total}


def fit_classifier(clips: LmdbReader, keys: list[str]) -> Any:
    """Logistic regression on the windows of the real clips `keys`, labelled with their speaker."""
    feats, labels = [], []
    for key in keys:
        record = clips[key]
        f = window_features(np.asarray(record["poses"]))
        feats.append(f)
        labels += [record["speaker"]] * len(f)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.1))
    return classifier.fit(np.concatenate(feats), np.asarray(labels))


def measure(model: Omniges, clips: LmdbReader, *, splits: tuple[str, ...] = ("val", "test"), max_clips: int = 0,
            steps: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The four accuracies (see the module docstring) of one speaker-conditioned checkpoint on a clip cache."""
    if not model.speakers:
        raise ValueError("the checkpoint lists no speakers: it was trained without speaker conditioning")
    index = clips.meta["index"]
    train = sorted(k for k, v in index.items() if v["split"] in ("train", "additional"))
    held_out = sorted(k for k, v in index.items() if v["split"] in splits)
    held_out = held_out[:max_clips] if max_clips else held_out
    classifier = fit_classifier(clips, train)
    real, true_id, any_id, no_id = [], [], [], []
    start = time.perf_counter()
    for key in held_out:
        record = clips[key]
        wave = np.asarray(record["audio"], np.float32) / 32767
        speaker = record["speaker"]
        real.append((np.asarray(record["poses"]), speaker))
        for given in (*model.speakers, None):
            poses = model.a2g(wave, record.get("words") or None, speaker=given, seed=seed, steps=steps)["poses"]
            if given is None:
                no_id.append((poses, speaker))
            else:
                any_id.append((poses, given))
                if given == speaker:
                    true_id.append((poses, speaker))
    return {
        "speakers": model.speakers, "chance": 1 / len(model.speakers), "clips": held_out,
        "train_clips": len(train), "window_frames": WINDOW,
        "real": score(classifier, real), "with_true_id": score(classifier, true_id),
        "with_any_id": score(classifier, any_id), "without_id": score(classifier, no_id),
        "generation_seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/benchmarks/speaker_effect.json")
    parser.add_argument("--checkpoint", default="results/models/a2g/model.pt")
    parser.add_argument("--cache-dir", default="data/cache")
    parser.add_argument("--rvqvae-dir", default="results/rvqvae")
    parser.add_argument("--splits", default="val,test", help="held-out clips whose speech is generated for")
    parser.add_argument("--max-clips", type=int, default=0, help="at most this many held-out clips (0: all)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: generation.steps)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = Omniges.load(args.checkpoint, cache_dir=args.cache_dir, rvqvae_dir=args.rvqvae_dir, device=args.device)
    clips = LmdbReader(Path(args.cache_dir) / "clips.lmdb")
    result = measure(model, clips, splits=tuple(args.splits.split(",")), max_clips=args.max_clips, steps=args.steps)
    result |= {"checkpoint": args.checkpoint, "machine": platform.machine(), "device": args.device}
    write_json_atomic(args.out, result)
    for case in ("real", "with_true_id", "with_any_id", "without_id"):
        r = result[case]
        print(f"{case:13s} accuracy {r['accuracy']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] "
              f"over {r['windows']} windows (chance {result['chance']:.3f})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
