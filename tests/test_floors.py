"""The library's floors run one way: data/ below features/models/training/evaluation/render, nothing on stages/.

Imports are read from the module sources (AST, lazy imports inside functions included), so a floor broken by a
single import anywhere in a module fails here; the negative cases prove the checks can fail.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "features", "models", "tokenizer", "training", "evaluation", "render", "export")
ABOVE_DATA = ("features", "models", "tokenizer", "training", "evaluation", "render", "export", "inference",
              "pipeline", "cli")


def module_name(path: Path) -> str:
    """omniges/data/body.py -> omniges.data.body; a package's __init__ is the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str) -> set[str]:
    """Every module an import statement of `source` names (relative imports resolved against `module`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def library_sources() -> dict[str, str]:
    return {module_name(path): path.read_text() for path in sorted((ROOT / "omniges").rglob("*.py"))}


def floor_violations(sources: dict[str, str]) -> list[str]:
    """'module -> import' for each import that runs against a floor."""
    out = []
    for module, source in sources.items():
        for target in sorted(imported_modules(source, module)):
            top = target.split(".")[0]
            if top == "stages" or top == "common":
                out.append(f"{module} -> {target} (library importing stages/)")
            if module.startswith("omniges.data") and any(
                target == f"omniges.{p}" or target.startswith(f"omniges.{p}.") for p in ABOVE_DATA
            ):
                out.append(f"{module} -> {target} (data/ importing a floor above it)")
    return out


def import_cycles(sources: dict[str, str], package: str) -> list[list[str]]:
    """Cycles among the modules of `package` (module-level and lazy imports)."""
    modules = {m for m in sources if m.startswith(package + ".")}
    graph = {m: {t for t in imported_modules(sources[m], m) if t in modules and t != m} for m in modules}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(modules):
        if start not in state:
            visit(start, [start])
    return cycles


@pytest.mark.parametrize("package", ["omniges", *(f"omniges.{p}" for p in PACKAGES)])
def test_top_level_packages_import(package: str) -> None:
    assert importlib.import_module(package).__name__ == package


def test_library_floors_hold() -> None:
    sources = library_sources()
    assert "omniges.data.kinematics" in sources and "omniges.render.framing" in sources
    assert floor_violations(sources) == []


def test_floor_check_catches_a_broken_floor() -> None:
    bad = {
        "omniges.data.bad": "def f():\n    from omniges.render.skeleton import SkeletonRenderer\n",
        "omniges.data.relative": "from ..features import text\n",
        "omniges.models.worse": "import stages.common\n",
        "omniges.features.fine": "from omniges.data.kinematics import forward_kinematics\n",
    }
    assert floor_violations(bad) == [
        "omniges.data.bad -> omniges.render.skeleton (data/ importing a floor above it)",
        "omniges.data.bad -> omniges.render.skeleton.SkeletonRenderer (data/ importing a floor above it)",
        "omniges.data.relative -> omniges.features (data/ importing a floor above it)",
        "omniges.data.relative -> omniges.features.text (data/ importing a floor above it)",
        "omniges.models.worse -> stages.common (library importing stages/)",
    ]


@pytest.mark.parametrize("package", [f"omniges.{p}" for p in PACKAGES])
def test_no_import_cycle_inside_a_package(package: str) -> None:
    assert import_cycles(library_sources(), package) == []


def test_cycle_check_catches_a_cycle() -> None:
    sources = {"omniges.render.a": "from omniges.render.b import x\n", "omniges.render.b": "import omniges.render.a\n"}
    assert import_cycles(sources, "omniges.render") == [["omniges.render.a", "omniges.render.b", "omniges.render.a"]]
