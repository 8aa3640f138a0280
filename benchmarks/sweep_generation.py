"""Tune one generation setting of a trained experiment on the val split: the task's metrics at each value, with CIs.

    python benchmarks/sweep_generation.py --experiment g2t --task g2t --setting g2t_word_bonus --values -4 -2 0 2
    python benchmarks/sweep_generation.py --experiment t2g --task t2g --setting task_guidance.t2g --values 1.5 4

Writes results/benchmarks/sweep_<experiment>_<task>_<setting>.json (rows and CIs per value); choose on val, then
set the value in params.yaml and report the test split from the evaluate stage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from omniges.evaluation.evaluate import evaluate_experiment
from omniges.inference import Omniges


def apply(model: Omniges, setting: str, value: float) -> None:
    """Set `name` or `task_guidance.<task>` on the model's generation settings."""
    if setting.startswith("task_guidance."):
        model.settings.task_guidance = {**model.settings.task_guidance, setting.split(".", 1)[1]: value}
    elif hasattr(model.settings, setting):
        setattr(model.settings, setting, type(getattr(model.settings, setting))(value))
    else:
        raise SystemExit(f"unknown generation setting {setting!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--setting", required=True)
    parser.add_argument("--values", type=float, nargs="+", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rvqvae", default="results/rvqvae", help="tokenizer folder the model was trained with")
    parser.add_argument("--cache", default="data/cache")
    args = parser.parse_args()
    model = Omniges.load(f"results/models/{args.experiment}/model.pt", cache_dir=args.cache, rvqvae_dir=args.rvqvae)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for value in args.values:
            apply(model, args.setting, value)
            result = evaluate_experiment(model, cache_dir=args.cache, evaluator_path="results/evaluator.pth",
                                         out_json=Path(tmp) / "m.json", split=args.split, seed_frames=0,
                                         bootstrap=args.bootstrap, tasks=[args.task], progress=False)
            runs[str(value)] = {"rows": result["tasks"][args.task], "ci": result["ci"][args.task]}
            print(value, json.dumps({k: round(v, 4) for k, v in result["tasks"][args.task]["generated"].items()}),
                  flush=True)
    out = args.out or Path(f"results/benchmarks/sweep_{args.experiment}_{args.task}_{args.setting}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"experiment": args.experiment, "task": args.task, "setting": args.setting,
                               "split": args.split, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
