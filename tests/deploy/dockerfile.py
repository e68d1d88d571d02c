"""The service Dockerfile as a list of instructions, grouped by build stage."""

from __future__ import annotations

import re

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The variables the ENV instructions of ``stage`` set (values without spaces, as this Dockerfile writes them)."""
    found: dict[str, str] = {}
    for instruction, rest in stage:
        if instruction == "ENV":
            for pair in rest.split():
                name, _, value = pair.partition("=")
                found[name] = value
    return found
