"""The code each pipeline stage runs, derived from imports: the source files that dvc.yaml and the Snakefile list
as a stage's code dependencies, so an edit re-runs exactly the stages whose code it touches.

A stage runs `stages/<stage>.py`, which calls one function of `omniges/pipeline.py`. Its code is that script, the
modules it imports, pipeline.py with the imports of that function (and of the pipeline functions it calls), and
every omniges module those import, lazily or not, with the packages' `__init__.py` files on the way. The Snakefile
calls `code_deps` while it is parsed; dvc.yaml is static, so `python -m omniges.dag` rewrites its lists, and
tests/test_dag.py fails when they differ.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synthesize", "preprocess", "features", "rvqvae", "cache_latents", "train_evaluator", "train", "evaluate",
          "render")


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of an omniges (or stages) module, or None for a third-party one."""
    parts = name.split(".")
    if parts[0] not in ("omniges", "common"):
        return None
    base = root.joinpath("stages", "common") if parts == ["common"] else root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(nodes: list[ast.AST]) -> set[str]:
    """Module names imported anywhere inside `nodes`; `from a import b` names both a and a.b (b may be a module)."""
    names: set[str] = set()
    for node in (inner for outer in nodes for inner in ast.walk(outer)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def _files(names: set[str], root: Path) -> set[Path]:
    """The source files of the named modules and of the packages above them."""
    found = set()
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:depth]), root)
            if path is not None:
                found.add(path)
    return found


def _closure(files: set[Path], root: Path) -> set[Path]:
    """`files` and every omniges source they import, transitively."""
    seen: set[Path] = set()
    todo = list(files)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.name == "pipeline.py" and path.parent.name == "omniges":
            continue  # the stage's own pipeline function is followed by _pipeline_imports, not the whole module
        todo += _files(_imports([ast.parse(path.read_text())]), root) - seen
    return seen


def _pipeline_imports(function: str, root: Path) -> set[str]:
    """Modules pipeline.py imports at module level and inside `function` and the pipeline functions it calls."""
    tree = ast.parse((root / "omniges" / "pipeline.py").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    module_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    used, todo = set(), [function]
    while todo:
        name = todo.pop()
        if name in used or name not in functions:
            continue
        used.add(name)
        todo += [node.id for node in ast.walk(functions[name]) if isinstance(node, ast.Name)]
    return _imports([*module_level, *(functions[name] for name in used)])


def _code_deps(stage: str, root: Path) -> tuple[str, ...]:
    script = root / "stages" / f"{stage}.py"
    tree = ast.parse(script.read_text())
    called = {node.attr for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "pipeline"}
    if len(called) != 1:
        raise ValueError(f"{script}: calls {sorted(called) or 'no'} pipeline functions; a stage calls exactly one")
    names = (_imports([tree]) - {"omniges.pipeline"}) | _pipeline_imports(called.pop(), root)
    files = _closure({script, root / "omniges" / "pipeline.py", *_files(names, root)}, root)
    others = sorted(str(path.relative_to(root)) for path in files if path != script)
    return (str(script.relative_to(root)), *others)


def code_deps(stage: str, root: Path = ROOT) -> list[str]:
    """The repository-relative source files stage `stage` runs, its script first."""
    return list(_code_deps(stage, Path(root)))


def _is_code(path: str) -> bool:
    return path.endswith(".py") and path.startswith(("omniges/", "stages/"))


def rewrite_dvc_yaml(text: str, root: Path = ROOT) -> str:
    """dvc.yaml with each stage's code deps replaced by the derived ones (data deps and everything else kept)."""
    lines, out, stage, i = text.splitlines(), [], None, 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"^  (\w+):\s*$", line)
        if match:
            stage = match.group(1)
        out.append(line)
        i += 1
        if stage in STAGES and re.match(r"^\s+deps:\s*$", line):
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            items = []
            while i < len(lines) and lines[i].startswith(f"{indent}- "):
                items.append(lines[i][len(indent) + 2:].strip())
                i += 1
            out += [f"{indent}- {path}" for path in code_deps(stage, root)]
            out += [f"{indent}- {path}" for path in items if not _is_code(path)]
    return "\n".join(out) + "\n"


def main() -> None:
    """`python -m omniges.dag`: rewrite dvc.yaml's code deps (`--check`: exit 1 when they are not the derived ones)."""
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    derived = rewrite_dvc_yaml(text)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if derived == text else "dvc.yaml's code deps are not the derived ones: run python -m omniges.dag")
    path.write_text(derived)


if __name__ == "__main__":
    main()
