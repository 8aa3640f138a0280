"""The repository stands alone: README and docs/ never send a reader outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_no_page_points_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        for needle in ("../shared", "shared/DESIGN"):
            assert needle not in text, f"{page.relative_to(ROOT)} refers to {needle}"


def test_relative_links_and_images_resolve_inside_the_repository():
    links = 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.relative_to(ROOT)}: {target}"
            links += 1
    assert links >= 3  # README -> docs/design.md, design-notes.md, the web app screenshot
