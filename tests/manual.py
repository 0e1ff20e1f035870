"""The manual's pages as the tests read them: the README (the front page) and the pages of ``docs/``, in the
order of the manual's navigation (``mkdocs.yml``), so that text moved between pages keeps being checked."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pages() -> list[Path]:
    """README.md, then every page of mkdocs.yml's nav in its order."""
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    return [ROOT / "README.md", *(ROOT / "docs" / p for p in nav)]


def page(name: str) -> str:
    """The text of one page: ``"README.md"`` or a path under ``docs/`` (``"tour.md"``)."""
    return (ROOT / name if name == "README.md" else ROOT / "docs" / name).read_text()


def section(name: str, heading: str) -> str:
    """From ``heading`` (a line's beginning) to the next level-2 heading of the page, or to its end."""
    text = page(name)
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def blocks(lang: str, names: list[Path] | None = None) -> list[str]:
    """Every fenced ``lang`` block of the pages (default: all of them, README first), in reading order."""
    return [b for p in (names or pages()) for b in re.findall(rf"```{lang}\n(.*?)```", p.read_text(), flags=re.S)]
