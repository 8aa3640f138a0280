"""The results and speed tables of README.md and docs/results.md, generated from the JSON they report.

`omniges report` copies the demo's `results/metrics/<experiment>.json` into `docs/results/metrics/` (the published
run) and writes the tables from there and from `results/benchmarks/end_to_end.json`. Rows and metrics are whatever
each JSON holds: a new metric key or reference row appears without a code change; the labels below only name the
known ones. tests/test_results_tables.py fails when the README's numbers differ from the JSON.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

PUBLISHED = Path("docs/results/metrics")
SPEED_JSON = Path("results/benchmarks/end_to_end.json")
README = Path("README.md")
RESULTS_PAGE = Path("docs/results.md")
BEGIN, END = "<!-- results:begin (omniges report) -->", "<!-- results:end -->"
TASKS = ("a2g", "t2g", "g2t", "g2a")
EXPERIMENTS = ("a2g", "t2g", "g2t", "g2a", "multitask")
GESTURE_TASKS = ("a2g", "t2g")

ROW_LABELS = {
    "generated": "Omniges",
    "generated_seeded": "Omniges, seeded (first real frames given)",
    "ground_truth": "ground truth",
    "mean_pose": "mean pose (chance)",
    "mean_audio": "mean spectrum (chance)",
    "most_frequent_word": "most frequent word (chance)",
    "mismatched_motion": "the model reading another clip's motion (chance)",
    "frequent_words": "frequent words, told the word count (chance)",
    "unigram_sample": "unigram sample, told the word count (chance)",
    "nn_retrieval": "retrieval from the real motion (ceiling)",
}
# each task's headline metrics: what the task is for (the four-tasks table compares models on these)
HEADLINE = {"a2g": ("sync_z", "fgd", "l1div"), "t2g": ("iconic_hit_rate", "fgd", "l1div"),
            "g2t": ("iconic_recall", "word_f1", "bleu", "word_accuracy"),
            "g2a": ("openness_corr", "tilt_corr", "syllable_rate_corr", "envelope_corr", "mcd_dtw")}
SHORT_LABELS = {"ground_truth": "GT", "mismatched_motion": "mismatched motion (chance)",
                "frequent_words": "frequent words", "unigram_sample": "unigram", "nn_retrieval": "ceiling"}
# the rows each headline metric is read against: floors and ceilings for gesture, chance and ceiling otherwise
REFERENCE_ROWS = {"a2g": ("ground_truth", "random_clip"), "t2g": ("ground_truth", "random_clip"),
                  "g2t": ("mismatched_motion", "random_clip", "frequent_words", "unigram_sample", "nn_retrieval"),
                  "g2a": ("mismatched_motion", "random_clip", "nn_retrieval")}
# the gesture tasks' random clip is real motion from the corpus: a floor a perfect model reaches in expectation;
# for text and audio it is another clip's transcript or sound: a mismatched condition, i.e. chance
RANDOM_CLIP = {"gesture": "random train clip (floor)", "other": "another clip's (chance)"}
ARROWS = {"fgd": "↓", "sync_z": "↑", "acc_l1": "↓", "vel_l1": "↓", "face_mse_expressions": "↓",
          "lvd_expressions": "↓", "iconic_hit_rate": "↑", "word_accuracy": "↑", "bleu": "↑", "rouge_l": "↑",
          "mcd_dtw": "↓", "log_mel_l1": "↓", "envelope_corr": "↑", "word_f1": "↑", "iconic_recall": "↑",
          "voicing_agreement": "↑", "tilt_corr": "↑", "openness_corr": "↑", "syllable_rate_corr": "↑"}
SPEED_LABELS = {
    "after_model_guidance": "full size, WavLM mean of 12 layers",
    "after_model_guidance_layer6": "full size, WavLM layer 6 (the full-size recipe)",
    "after_model_guidance_layer4": "full size, WavLM layer 4",
    "after_model_guidance_repeat": "full size, same speech again (cached features)",
}


def number(value: Any) -> str:
    """A metric value as the tables print it (three decimals below 1, two below 10, one above)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    magnitude = abs(value)
    text = f"{value:.3f}" if magnitude < 1 else f"{value:.2f}" if magnitude < 10 else f"{value:.1f}"
    return "0.000" if re.fullmatch(r"-0\.0+", text) else text


def row_label(task: str, row: str) -> str:
    if row == "random_clip":
        return RANDOM_CLIP["gesture" if task in GESTURE_TASKS else "other"]
    return ROW_LABELS.get(row, row.replace("_", " "))


def task_table(task: str, metrics: dict[str, Any], *, intervals: bool) -> list[str]:
    """One markdown table: a row per result row of the task, a column per metric any row has."""
    rows = metrics["tasks"][task]
    columns: list[str] = []
    for values in rows.values():
        columns += [key for key in values if key not in columns]
    ci = metrics.get("ci", {}).get(task, {})
    lines = ["| | " + " | ".join(f"{key} {ARROWS.get(key, '')}".strip() for key in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for row, values in rows.items():
        cells = []
        for key in columns:
            cell = number(values.get(key))
            bounds = ci.get(row, {}).get(key)
            if intervals and bounds:
                cell += f" [{number(bounds[0])}, {number(bounds[1])}]"
            cells.append(cell)
        lines.append(f"| {row_label(task, row)} | " + " | ".join(cells) + " |")
    return lines


def caption(task: str, experiment: str, metrics: dict[str, Any]) -> str:
    clips = metrics.get("clips")
    count = f", {len(clips)} clips" if isinstance(clips, list) else ""
    return f"**{task.upper()}**, model `{experiment}` ({metrics.get('split', 'test')} split{count})"


def speed_table(bench: dict[str, Any]) -> list[str]:
    """Real-time factor from a wav file (end to end), one row per benchmarked configuration."""
    by_variant: dict[str, dict[float, dict[str, Any]]] = {}
    for result in bench.get("results", []):
        if result["variant"] in SPEED_LABELS:
            by_variant.setdefault(result["variant"], {})[result["seconds_of_speech"]] = result
    lengths = sorted({s for runs in by_variant.values() for s in runs})
    lines = ["| end to end from a wav file | " + " | ".join(f"{s:g} s clip" for s in lengths)
             + " | features / generation, s (longest) |", "|---" * (len(lengths) + 2) + "|"]
    for variant, runs in by_variant.items():
        longest = runs[max(runs)]["wall_seconds_median"]
        cells = [f"{runs[s]['real_time_factor']:.1f}×" if s in runs else "—" for s in lengths]
        lines.append(f"| {SPEED_LABELS[variant]} | " + " | ".join(cells)
                     + f" | {longest['features']:.2f} / {longest['generation']:.2f} |")
    reference = bench.get("reference_real_time_factor", {}).get("gesture_lsm_end_to_end_meanflow")
    if reference is not None:
        lines.append("| GestureLSM MeanFlow (reference) | " + " | ".join([f"{reference:.1f}×"] * len(lengths))
                     + " | |")
    threads, batch = bench.get("threads", "?"), bench.get("batch", "?")
    return [f"Real-time factor (× faster than real time), {threads} CPU threads, batch {batch}, "
            f"`python benchmarks/bench_end_to_end.py`:", "", *lines]


def load_published(folder: Path = PUBLISHED) -> dict[str, dict[str, Any]]:
    """The published metrics JSON of each experiment present, in EXPERIMENTS order."""
    found = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    return {name: found[name] for name in (*EXPERIMENTS, *sorted(set(found) - set(EXPERIMENTS))) if name in found}


def short_label(task: str, row: str, key: str) -> str:
    """A reference row's name in the four-tasks table: a random train clip is the floor of a distribution distance
    (FGD) and chance for what pairs motion with its condition (sync, iconic gestures); another clip's transcript or
    speech is chance."""
    if row == "random_clip":
        return ("floor" if key == "fgd" else "random clip (chance)") if task in GESTURE_TASKS else "another clip"
    return SHORT_LABELS[row]


def four_tasks_table(published: dict[str, dict[str, Any]]) -> list[str]:
    """Each task's headline metrics from its single-task model and from the multitask model (95% intervals),
    beside the task's floor / chance / ceiling rows; empty without a multitask run."""
    multitask = published.get("multitask", {}).get("tasks", {})
    if not multitask:
        return []
    lines = ["| task · metric | single-task model | multitask model | reference rows |", "|---|---|---|---|"]
    for task in TASKS:
        single = published.get(task, {})
        if task not in multitask:
            continue
        for key in HEADLINE[task]:
            cells = []
            for metrics in (single, published["multitask"]):
                row = metrics.get("tasks", {}).get(task, {}).get("generated", {})
                bounds = metrics.get("ci", {}).get(task, {}).get("generated", {}).get(key)
                cells.append(number(row.get(key)) + (f" [{number(bounds[0])}, {number(bounds[1])}]" if bounds
                                                     else "") if key in row else "—")
            rows = multitask[task]
            refs = "; ".join(f"{short_label(task, r, key)} {number(rows[r][key])}" for r in REFERENCE_ROWS[task]
                             if key in rows.get(r, {}))
            lines.append(f"| {task.upper()} · {key} {ARROWS.get(key, '')} | {cells[0]} | {cells[1]} | {refs} |")
    return lines


def readme_block(published: dict[str, dict[str, Any]], bench: dict[str, Any] | None) -> str:
    """The README's tables: each task's headline metrics from its single-task model and the multitask model beside
    its reference rows (or, without a multitask run, each task's own table); every metric with its interval is in
    docs/results.md."""
    lines = [BEGIN]
    if not any(task in metrics.get("tasks", {}) for metrics in published.values() for task in TASKS):
        lines += ["", "No published run yet: `make demo`, then `omniges report` puts its metrics here."]
    four = four_tasks_table(published)
    if four:
        split = published["multitask"].get("split", "test")
        clips = published["multitask"].get("clips")
        count = f", {len(clips)} clips" if isinstance(clips, list) else ""
        lines += ["", f"What each task is for ({split} split{count}; 95% intervals): the single-task models and the "
                  "multitask model, each trained at its budget in `training.experiments` (the multitask model's "
                  "steps are shared by the four tasks).", "", *four]
    else:
        for task in TASKS:
            metrics = published.get(task)
            if metrics is None or task not in metrics.get("tasks", {}):
                continue
            lines += ["", caption(task, task, metrics), "", *task_table(task, metrics, intervals=False)]
    if bench:
        lines += ["", *speed_table(bench)]
    return "\n".join([*lines, "", END])


def results_page(published: dict[str, dict[str, Any]], bench: dict[str, Any] | None) -> str:
    """docs/results.md: every task of every experiment with its 95% intervals, then speed."""
    lines = ["# Results", "", "Generated by `omniges report` from `docs/results/metrics/<experiment>.json` (the "
             "published demo run) and `results/benchmarks/end_to_end.json`; do not edit by hand. Each cell is the "
             "value and its 95% bootstrap interval over the evaluated clips. The random train clip is real motion "
             "from the corpus: a floor that a perfect model reaches in expectation, not chance; chance rows are "
             "the mean pose, the mean spectrum, the model reading another clip's motion, frequent words and another "
             "clip's transcript or audio; the ceiling rows retrieve words or speech from the real motion."]
    for experiment, metrics in published.items():
        lines += ["", f"## {experiment}"]
        for task in metrics.get("tasks", {}):
            lines += ["", caption(task, experiment, metrics), "", *task_table(task, metrics, intervals=True)]
        notes = metrics.get("notes", {})
        if notes:
            lines += ["", *(f"- {key}: {value}" for key, value in notes.items())]
    if bench:
        lines += ["", "## Speed", "", *speed_table(bench)]
    return "\n".join(lines) + "\n"


def with_block(readme: str, block: str) -> str:
    """The README text with its marked table block replaced by `block`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    return readme[:start] + block + readme[end + len(END):]


def write_report(*, metrics_dir: Path | None = Path("results/metrics"), root: Path = Path(".")) -> list[Path]:
    """Publish `metrics_dir`'s experiment JSON (when given and present) and regenerate both pages."""
    published_dir = root / PUBLISHED
    if metrics_dir is not None:
        published_dir.mkdir(parents=True, exist_ok=True)
        for name in EXPERIMENTS:
            source = root / metrics_dir / f"{name}.json"
            if source.is_file():
                shutil.copyfile(source, published_dir / source.name)
    published = load_published(published_dir)
    bench_path = root / SPEED_JSON
    bench = json.loads(bench_path.read_text()) if bench_path.is_file() else None
    (root / RESULTS_PAGE).write_text(results_page(published, bench))
    readme = root / README
    readme.write_text(with_block(readme.read_text(), readme_block(published, bench)))
    return [root / RESULTS_PAGE, readme]
