"""What docs/operations.md documents, read the way an operator reads it."""

from __future__ import annotations

import re
from functools import cache

from tests.deploy.manifests import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"
_VARIABLE = re.compile(r"`(TAPWIRE_[A-Z0-9_]+)`")


@cache
def text() -> str:
    return OPERATIONS.read_text()


def section(heading: str) -> str:
    """The body under the markdown heading ``heading`` (any level), up to the next heading of that level or higher."""
    lines = text().splitlines()
    for index, line in enumerate(lines):
        stripped = line.lstrip("#")
        level = len(line) - len(stripped)
        if level and stripped.strip() == heading:
            body: list[str] = []
            for following in lines[index + 1 :]:
                following_level = len(following) - len(following.lstrip("#"))
                if following_level and following_level <= level:
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"docs/operations.md has no section {heading!r}")


def documented_variables(heading: str) -> set[str]:
    return set(_VARIABLE.findall(section(heading)))


def anchors() -> set[str]:
    """GitHub-style anchors of every heading."""
    found = set()
    for line in text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found
