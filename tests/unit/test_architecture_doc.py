"""docs/architecture.md names real modules: a rename or a removal that leaves the page behind fails here."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/architecture.md"
_CODE = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"tapwire_[a-z]+(?:\.[A-Za-z_]\w*)*")
_REPO_PATH = re.compile(r"(?:[\w.-]+/)+[\w.-]*")
_LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")


def _module(dotted: str) -> tuple[ModuleType, list[str]]:
    """The longest importable prefix of ``dotted`` and the attribute names after it."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            return importlib.import_module(name), parts[end:]
    raise LookupError(f"no module {dotted!r}")


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module, or an attribute (chain) of one."""
    try:
        target: object
        target, attributes = _module(dotted)
    except LookupError:
        return False
    for attribute in attributes:
        if not hasattr(target, attribute):
            return False
        target = getattr(target, attribute)
    return True


def code_spans(text: str) -> list[str]:
    return _CODE.findall(text)


def test_every_module_named_exists() -> None:
    dotted = sorted({span for span in code_spans(DOC.read_text()) if _DOTTED.fullmatch(span)})
    assert len(dotted) > 50, "the page names the modules of every walk"
    assert [name for name in dotted if not resolves(name)] == []


def test_every_path_named_exists() -> None:
    """Files from the repository's root; folders from the root or, like ``loader/``, inside a package."""
    spans = code_spans(DOC.read_text())
    files = {span for span in spans if _REPO_PATH.fullmatch(span) and not span.endswith("/")}
    folders = {span.rstrip("/") for span in spans if _REPO_PATH.fullmatch(span) and span.endswith("/")}
    packages = [ROOT, *(path.parent for path in ROOT.glob("*/src/tapwire_*/__init__.py"))]
    assert len(packages) == 8
    missing = [p for p in sorted(files) if not (ROOT / p).exists()]
    missing += [p for p in sorted(folders) if not any((base / p).is_dir() for base in packages)]
    assert missing == []


def test_every_linked_page_exists() -> None:
    links = [link for link in _LINK.findall(DOC.read_text()) if "://" not in link]
    assert links, "the walks link the detailed docs"
    assert [link for link in links if not (DOC.parent / link).exists()] == []


def concept_rows() -> list[tuple[list[str], str]]:
    """(names, module) of each row of the concept table: the names the row gives and the first module it cites."""
    section = DOC.read_text().split("## Where each concept lives", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("concept", "---"):
            continue
        modules = [span for span in code_spans(cells[2]) if _DOTTED.fullmatch(span)]
        rows.append((code_spans(cells[1]), modules[0]))
    return rows


def test_each_concept_is_named_where_the_table_says() -> None:
    rows = concept_rows()
    assert len(rows) > 15
    misplaced = [
        f"{module}.{name}" for names, module in rows for name in names if not resolves(f"{module}.{name}")
    ]
    assert misplaced == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tapwire_core.bus.base.partition_for", True),
        ("tapwire_core.bus.base.no_such_function", False),
        ("tapwire_core.no_such_module", False),
        ("tapwire_query.cql", True),
    ],
)
def test_the_check_tells_real_names_from_stale_ones(name: str, expected: bool) -> None:
    assert resolves(name) is expected
