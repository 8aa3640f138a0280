"""One model, four tasks: each task's headline metrics from its single-task model and from the multitask model,
with their 95% intervals, beside the task's chance and floor rows; and the validation-loss learning curves.

Reads the evaluate stage's metrics JSON (results/metrics/<experiment>.json, or another folder and split) and the
train stage's histories (results/models/<experiment>/train_metrics.json); writes a JSON, a markdown table and a PNG.
`make demo` trains the multitask model only (params.yaml training.run); the single-task ones come first:

    omniges demo --target compare     # every experiment of training.experiments, trained and evaluated
    python benchmarks/four_tasks.py [--metrics results/metrics] [--out results/benchmarks/four_tasks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omniges.results_tables import HEADLINE, REFERENCE_ROWS, TASKS

CHANCE_ROWS = {"g2t": ("random_clip", "frequent_words", "unigram_sample")}


def targets(task: str, rows: dict[str, dict[str, float]]) -> dict[str, bool]:
    """The success criteria of the four-tasks work, on one model's rows of one task."""
    gen, gt, floor = rows.get("generated", {}), rows.get("ground_truth", {}), rows.get("random_clip", {})
    out: dict[str, bool] = {}
    if task == "a2g" and gen:
        out["sync_z >= 0.8 GT"] = gen["sync_z"] >= 0.8 * gt["sync_z"]
        out["fgd <= 1.3 floor"] = gen["fgd"] <= 1.3 * floor["fgd"]
        out["l1div >= 0.8 GT"] = gen["l1div"] >= 0.8 * gt["l1div"]
    if task == "t2g" and gen:
        out["iconic hit >= 0.80"] = gen.get("iconic_hit_rate", 0.0) >= 0.8
        out["fgd <= 1.3 floor"] = gen["fgd"] <= 1.3 * floor["fgd"]
    if task == "g2t" and gen:
        for metric in ("word_f1", "bleu"):
            best = max(rows[r].get(metric, 0.0) for r in CHANCE_ROWS["g2t"] if r in rows)
            out[f"{metric} >= 2x best chance"] = gen.get(metric, 0.0) >= 2 * best
        out["iconic recall >= 0.5"] = gen.get("iconic_recall", 0.0) >= 0.5
    if task == "g2a" and gen:
        for metric in ("envelope_corr", "voicing_agreement", "openness_corr", "syllable_rate_corr"):
            if metric in gen and metric in rows.get("mismatched_motion", {}):
                out[f"{metric} above mismatched CI"] = False  # filled with the interval below
    return out


def summarise(metrics_dir: Path) -> dict:
    """{task: {model: {metric: {value, ci}}, reference rows, targets}} from the metrics JSON of each experiment."""
    out = {}
    for task in TASKS:
        entry: dict = {"models": {}, "reference": {}, "targets": {}}
        for experiment in (task, "multitask"):
            path = metrics_dir / f"{experiment}.json"
            if not path.exists():
                continue
            data = json.loads(path.read_text())
            rows, ci = data["tasks"].get(task), data["ci"].get(task, {})
            if not rows:
                continue
            entry["split"], entry["clips"] = data["split"], len(data["clips"])
            model = "single" if experiment == task else "multitask"
            entry["models"][model] = {m: {"value": rows["generated"].get(m), "ci": ci.get("generated", {}).get(m)}
                                      for m in HEADLINE[task] if m in rows["generated"]}
            entry["reference_rows"] = REFERENCE_ROWS[task]
            checks = targets(task, rows)
            for name in list(checks):
                if name.endswith("above mismatched CI"):
                    metric = name.split()[0]
                    lo = (ci.get("generated", {}).get(metric) or [rows["generated"][metric]])[0]
                    checks[name] = lo > rows["mismatched_motion"][metric]
            entry["targets"][model] = checks
            if model == "single" or not entry["reference"]:
                entry["reference"] = {row: {m: rows[row][m] for m in HEADLINE[task] if m in rows[row]}
                                      for row in rows if row not in ("generated", "generated_seeded")}
        out[task] = entry
    return out


def _cell(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")


def markdown(summary: dict) -> str:
    lines = []
    for task, entry in summary.items():
        if not entry["models"]:
            continue
        metrics = list(HEADLINE[task])
        lines += [f"### {task.upper()} ({entry['split']}, {entry['clips']} clips)", "",
                  "| row | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for model, values in entry["models"].items():
            lines.append(f"| {model} | " + " | ".join(_cell(values.get(m, {}).get("value"), values.get(m, {}).get(
                "ci")) for m in metrics) + " |")
        for row, values in entry["reference"].items():
            lines.append(f"| {row} | " + " | ".join(_cell(values.get(m), None) for m in metrics) + " |")
        for model, checks in entry["targets"].items():
            if checks:
                lines.append("")
                lines.append(f"{model}: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in checks.items()))
        lines.append("")
    return "\n".join(lines)


def learning_curves(models_dir: Path, png: Path) -> dict[str, list[dict]]:
    """Validation losses against step from each experiment's train_metrics.json, one panel per task's loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for path in sorted(models_dir.glob("*/train_metrics.json")):
        history = json.loads(path.read_text()).get("history", [])
        if history:
            curves[path.parent.name] = history
    keys = sorted({k for h in curves.values() for row in h for k in row if k.startswith("val/") and "loss" in k})
    if not keys:
        return curves
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for name, history in curves.items():
            points = [(row["step"], row[key]) for row in history if key in row]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=name)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, default=Path("results/metrics"))
    parser.add_argument("--models", type=Path, default=Path("results/models"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/four_tasks"))
    args = parser.parse_args()
    summary = summarise(args.metrics)
    curves = learning_curves(args.models, args.out.with_name(args.out.name + "_learning_curves.png"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"tasks": summary, "learning_curves": curves}, indent=1))
    table = markdown(summary)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
