"""What the code says a deployment must provide: services, TAPWIRE_* variables, ports, routes, metrics."""

from __future__ import annotations

import importlib
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings
from starlette.routing import Route

from tapwire_core.settings import Settings
from tests.deploy.manifests import ROOT

_ENV_LITERAL = re.compile(r"""["'](TAPWIRE_[A-Z0-9_]+)["']""")
_METRIC_NAME = re.compile(r"""\(\s*["'](tapwire_[a-z0-9_]+)["']""")


def source_roots() -> list[Path]:
    """``src`` of every workspace member, as listed in the root pyproject."""
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    return [ROOT / member / "src" for member in workspace["members"]]


def _sources() -> list[Path]:
    return sorted(path for root in source_roots() for path in root.rglob("*.py"))


def _module_name(path: Path) -> str:
    for root in source_roots():
        if path.is_relative_to(root):
            return ".".join(path.relative_to(root).with_suffix("").parts)
    raise ValueError(path)


def _settings_classes() -> list[type[BaseSettings]]:
    """Settings and every other pydantic-settings class reading the TAPWIRE_ prefix."""
    classes: list[type[BaseSettings]] = [Settings]
    for path in _sources():
        if 'env_prefix="TAPWIRE_"' not in path.read_text():
            continue
        module = importlib.import_module(_module_name(path))
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.model_config.get("env_prefix") == "TAPWIRE_"
                and value not in classes
            ):
                classes.append(value)
    return classes


@cache
def env_vars() -> frozenset[str]:
    """Every TAPWIRE_* variable the code reads: settings fields and literal environment lookups."""
    names = {
        f"TAPWIRE_{field.upper()}" for settings in _settings_classes() for field in settings.model_fields
    }
    for path in _sources():
        names.update(_ENV_LITERAL.findall(path.read_text()))
    return frozenset(names)


@cache
def metric_names() -> frozenset[str]:
    """Names of the Prometheus metrics the code defines (first argument of Counter/Gauge/Histogram...)."""
    names: set[str] = set()
    for path in _sources():
        text = path.read_text()
        if "prometheus_client" in text:
            names.update(_METRIC_NAME.findall(text))
    return frozenset(names)


def service_routes() -> dict[str, list[str]]:
    """Path templates each distributed service serves, for the services available in this build."""
    from tapwire_services.assembly import SERVICE_SPECS

    return {
        service: [path for router in spec.routers for path in _paths(router)]
        for service, spec in SERVICE_SPECS.items()
    }


def _paths(router: Any, prefix: str = "") -> list[str]:
    """Every path of ``router`` (FastAPI routes and the plain Starlette routes of the client SDK paths),
    descending into included routers (which FastAPI keeps as wrappers)."""
    found: list[str] = []
    for route in router.routes:
        if isinstance(route, Route):
            found.append(prefix + route.path)
        elif hasattr(route, "original_router"):
            found += _paths(route.original_router, prefix + route.include_context.prefix)
    return found


def makefile_uv_sync_flags() -> set[str]:
    """The flags of the Makefile's ``uv sync`` (the install the image must mirror)."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if " sync " in line and "$(UV)" in line:
            return {word for word in line.split() if word.startswith("--") and word != "--quiet"}
    raise AssertionError("the Makefile has no uv sync line")
