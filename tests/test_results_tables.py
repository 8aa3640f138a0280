"""The README's and docs/results.md's tables are the JSON they report, whatever rows and metrics it holds."""

from __future__ import annotations

import json
import re
from pathlib import Path

from omniges import results_tables as tables

ROOT = Path(__file__).parents[1]


def _sources() -> tuple[dict, dict | None]:
    bench = ROOT / tables.SPEED_JSON
    return tables.load_published(ROOT / tables.PUBLISHED), json.loads(bench.read_text()) if bench.is_file() else None


def test_readme_numbers_are_the_published_json():
    readme = (ROOT / "README.md").read_text()
    block = tables.readme_block(*_sources())
    assert block in readme, "README's results block differs from the JSON: run `omniges report --no-publish`"


def test_results_page_is_the_published_json():
    assert (ROOT / tables.RESULTS_PAGE).read_text() == tables.results_page(*_sources()), \
        "docs/results.md differs from the JSON: run `omniges report --no-publish`"


def test_readme_reads_like_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert not re.search(r"\bissue \d+|\bbefore issue|previous default", readme, re.IGNORECASE)


def test_new_rows_and_metrics_appear_without_code_changes(tmp_path):
    metrics = {"split": "test", "clips": ["a", "b"],
               "tasks": {"g2t": {"generated": {"word_accuracy": 0.1234, "new_metric": 12.345},
                                 "random_clip": {"word_accuracy": 0.02},
                                 "shuffled_words": {"word_accuracy": 0.03, "new_metric": -0.00001}}},
               "ci": {"g2t": {"generated": {"word_accuracy": [0.1, 0.2]}}}}
    page = tables.results_page({"g2t": metrics}, None)
    assert "| | word_accuracy ↑ | new_metric |" in page
    assert "| Omniges | 0.123 [0.100, 0.200] | 12.3 |" in page
    assert "| another clip's (chance) | 0.020 | — |" in page  # text's random clip is a mismatched condition
    assert "| shuffled words | 0.030 | 0.000 |" in page
    block = tables.readme_block({"g2t": metrics}, None)
    assert "0.123 |" in block and "[0.100" not in block  # intervals live in docs/results.md


def test_report_publishes_and_rewrites_only_the_block(tmp_path):
    (tmp_path / "results/metrics").mkdir(parents=True)
    a2g = {"split": "test", "clips": ["c"], "tasks": {"a2g": {"generated": {"fgd": 0.5}, "random_clip": {"fgd": 0.4},
                                                               "mean_pose": {"fgd": 0.9}}}}
    (tmp_path / "results/metrics/a2g.json").write_text(json.dumps(a2g))
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(f"head\n{tables.BEGIN}\nstale 1.0\n{tables.END}\ntail\n")
    tables.write_report(root=tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("head\n") and readme.endswith("tail\n") and "stale" not in readme
    assert "| random train clip (floor) | 0.400 |" in readme and "| mean pose (chance) | 0.900 |" in readme
    assert json.loads((tmp_path / "docs/results/metrics/a2g.json").read_text()) == a2g


def test_four_tasks_table_sets_single_against_multitask_beside_the_reference_rows():
    single = {"split": "test", "clips": ["a"], "tasks": {"g2t": {"generated": {"iconic_recall": 0.8}}},
              "ci": {"g2t": {"generated": {"iconic_recall": [0.7, 0.9]}}}}
    multi = {"split": "test", "clips": ["a"],
             "tasks": {"g2t": {"generated": {"iconic_recall": 0.6, "word_f1": 0.3},
                               "mismatched_motion": {"iconic_recall": 0.05, "word_f1": 0.25},
                               "frequent_words": {"word_f1": 0.4}}},
             "ci": {"g2t": {"generated": {"iconic_recall": [0.5, 0.7]}}}}
    lines = tables.four_tasks_table({"g2t": single, "multitask": multi})
    recall = next(line for line in lines if "iconic_recall" in line)
    assert "| 0.800 [0.700, 0.900] | 0.600 [0.500, 0.700] |" in recall
    assert "mismatched motion (chance) 0.050" in recall
    f1 = next(line for line in lines if "word_f1" in line)
    assert "| — | 0.300 |" in f1 and "frequent words 0.400" in f1
    assert tables.four_tasks_table({"g2t": single}) == []
