"""The image's install steps, run for real: the Dockerfile's build-stage `uv sync` commands on a copy of its
build context, then every available service assembled from that environment alone (no source tree, no chDB)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tapwire_services.assembly import SERVICES
from tests.deploy.dockerfile import env as image_env
from tests.deploy.dockerfile import instructions, stages
from tests.deploy.manifests import ROOT

pytestmark = pytest.mark.integration

ASSEMBLE = """
import sys
from tapwire_core.settings import Settings
from tapwire_services.assembly import SERVICE_SPECS, service_app
settings = Settings(
    database_url="postgresql://u:p@db:5432/tapwire",
    kafka_bootstrap="kafka:9092",
    clickhouse_url="http://u:p@clickhouse:8123/tapwire",
)
for service in SERVICE_SPECS:
    service_app(settings, service)
import importlib.util
assert importlib.util.find_spec("chdb") is None, "chDB is not part of the service image"
print(",".join(SERVICE_SPECS))
"""


def _build_context(dest: Path) -> None:
    """The files the build stage COPYs (workspace manifests, lockfile, member sources)."""
    for instruction, rest in stages()[0]:
        if instruction != "COPY":
            continue
        *sources, target = rest.split()
        for source in sources:
            origin = ROOT / source
            destination = dest / (target if not target.endswith("/") and target != "./" else source)
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    destination,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination)


def test_the_build_stage_installs_a_runnable_service_environment(tmp_path: Path) -> None:
    context = tmp_path / "app"
    context.mkdir()
    _build_context(context)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "TAPWIRE_"))}
    env.update(image_env(stages()[0]))
    # The image has no uv cache on purpose; here the machine's cache saves the downloads, same packages.
    env.pop("UV_NO_CACHE", None)
    syncs = [rest for instruction, rest in stages()[0] if instruction == "RUN" and " uv sync " in f" {rest} "]
    for sync in syncs:
        # The image runs `python -m uv sync ...`; here the uv running this session (`uv run` exports it as
        # $UV) or the one on PATH, with the Dockerfile's arguments unchanged.
        uv = os.environ.get("UV") or shutil.which("uv")
        assert uv, "uv not found"
        assert sync.split()[:3] == ["python", "-m", "uv"]
        command = [uv, *sync.split()[3:]]
        result = subprocess.run(
            command, cwd=context, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]

    # The final stage keeps only the virtual environment: run it from elsewhere, with the sources gone.
    for member in ("libs", "ingest", "query", "messaging", "privacy-worker", "console", "services"):
        shutil.rmtree(context / member)
    python = context / ".venv" / "bin" / "python"
    # Secrets the manifests provide to every pod of a service (messaging's link-signing key, the console's
    # cookie-signing key, the key of credential lookups).
    secrets = {
        "TAPWIRE_MESSAGING_SECRET": "image-test-link-secret-0123456789",
        "TAPWIRE_CONSOLE_SECRET": "image-test-cookie-secret-0123456789",
        "TAPWIRE_CREDENTIAL_SECRET": "image-test-credential-secret-0123456789",
    }
    assembled = subprocess.run(
        [str(python), "-c", ASSEMBLE],
        cwd=tmp_path,
        env=env | secrets,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert assembled.returncode == 0, assembled.stderr[-3000:]
    assert set(assembled.stdout.strip().split(",")) <= set(SERVICES)
    assert (context / ".venv" / "bin" / "tapwire").exists()
    migrate = subprocess.run(
        [str(python), str(ROOT / "deploy" / "docker" / "migrate.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert [rest for i, rest in instructions() if i == "ENTRYPOINT"] == ['["tapwire"]']
