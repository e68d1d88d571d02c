"""Services import ``libs/`` (tapwire_core) and never each other, except the crossings listed here."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "tapwire_core": ROOT / "libs/src/tapwire_core",
    "tapwire_ingest": ROOT / "ingest/src/tapwire_ingest",
    "tapwire_query": ROOT / "query/src/tapwire_query",
    "tapwire_messaging": ROOT / "messaging/src/tapwire_messaging",
    "tapwire_privacy": ROOT / "privacy-worker/src/tapwire_privacy",
    "tapwire_console": ROOT / "console/src/tapwire_console",
    "tapwire_services": ROOT / "services/src/tapwire_services",
}
# Which other packages each package may import, whole.
ALLOWED: dict[str, set[str]] = {
    "tapwire_core": set(),
    "tapwire_ingest": {"tapwire_core"},
    "tapwire_query": {"tapwire_core"},
    "tapwire_messaging": {"tapwire_core", "tapwire_query"},  # audiences compile through the query language
    "tapwire_privacy": {"tapwire_core"},
    "tapwire_console": {"tapwire_core"},  # its pages reach the other services through their JSON APIs
    "tapwire_services": set(PACKAGES),  # the assembly: it wires every service
}
# Single modules one package may still import from another, each to be moved into libs/ and its entry deleted.
KNOWN_CROSSINGS: set[tuple[str, str]] = set()

# The same crossing in the packages' declared dependencies.
KNOWN_DEPENDENCIES: set[tuple[str, str]] = set()


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def crossings(package: str) -> list[str]:
    wrong = []
    for path in sorted(PACKAGES[package].rglob("*.py")):
        for module in imported_modules(path):
            top = module.partition(".")[0]
            if top not in PACKAGES or top == package or top in ALLOWED[package]:
                continue
            if (package, module) not in KNOWN_CROSSINGS:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    return wrong


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_services_import_only_libs_and_allowed_packages(package: str) -> None:
    assert crossings(package) == []


def test_the_check_sees_a_crossing(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("def late():\n    from tapwire_ingest.http import upload\n")
    assert imported_modules(source) == {"tapwire_ingest.http"}


def test_known_crossings_still_exist() -> None:
    """A crossing that is gone must leave the list, so it cannot come back unnoticed."""
    used = {
        (package, module)
        for package, root in PACKAGES.items()
        for path in root.rglob("*.py")
        for module in imported_modules(path)
    }
    assert used >= KNOWN_CROSSINGS, sorted(KNOWN_CROSSINGS - used)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_declared_dependencies_follow_the_same_direction(package: str) -> None:
    project = tomllib.loads((PACKAGES[package].parents[1] / "pyproject.toml").read_text())["project"]
    declared = {
        name.replace("-", "_")
        for spec in project.get("dependencies", [])
        if (name := spec.split(">")[0].split("=")[0].split("[")[0].strip()).startswith("tapwire-")
    }
    extra = {d for d in declared - ALLOWED[package] - {package} if (package, d) not in KNOWN_DEPENDENCIES}
    assert extra == set()
