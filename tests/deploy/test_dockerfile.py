"""The service image: the rules hadolint does not know, and its install mirroring `make deps`."""

from __future__ import annotations

import re
import subprocess
import tomllib

from tests.deploy import code_facts
from tests.deploy.dockerfile import DOCKERFILE, instructions, stages
from tests.deploy.dockerfile import env as image_env
from tests.deploy.manifests import ROOT, rendered


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_slim_and_pinned_to_a_patch_release() -> None:
    (arg,) = [rest for instruction, rest in instructions() if instruction == "ARG" and "PYTHON_IMAGE" in rest]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", image), image
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(part) for part in python.removeprefix(">=").split("."))
    assert tuple(int(p) for p in image.split(":")[1].split("-")[0].split(".")[:2]) >= minimum


def test_multi_stage_final_stage_runs_unprivileged_without_build_tools_or_healthcheck() -> None:
    built = stages()
    assert len(built) >= 2
    final = built[-1]
    instructions = [i for i, _ in final]
    assert "HEALTHCHECK" not in [i for stage in built for i, _ in stage], "Kubernetes probes decide health"
    (user,) = [rest for i, rest in final if i == "USER"]
    uid, _, gid = user.partition(":")
    assert int(uid) > 10000 and int(gid) > 10000, "numeric non-root user (runAsNonRoot can verify it)"
    assert instructions.index("USER") > max(idx for idx, i in enumerate(instructions) if i in ("RUN", "COPY"))
    final_runs = " ".join(rest for i, rest in final if i == "RUN")
    for tool in ("pip install", "uv sync", "apt-get install", "gcc", "build-essential"):
        assert tool not in final_runs, f"{tool} in the final stage"
    copies = [rest for i, rest in final if i == "COPY"]
    assert any(c.startswith("--from=build /app/.venv") for c in copies)
    (entrypoint,) = [rest for i, rest in final if i == "ENTRYPOINT"]
    assert entrypoint == '["tapwire"]'


def test_install_mirrors_the_makefile_and_copies_every_workspace_member() -> None:
    build = stages()[0]
    syncs = [rest for i, rest in build if i == "RUN" and " uv sync " in f" {rest} "]
    assert syncs
    for sync in syncs:
        assert sync.startswith("python -m uv sync"), (
            "uv is run the way the Makefile runs it ($(PYTHON) -m uv)"
        )
        assert code_facts.makefile_uv_sync_flags() <= set(sync.split()), sync
        assert "--no-dev" in sync.split()
    pins = [rest for i, rest in build if i == "RUN" and "pip install" in rest]
    assert len(pins) == 1 and re.search(r"\buv==\d+\.\d+\.\d+\b", pins[0])
    copied = " ".join(rest for i, rest in build if i == "COPY")
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    for member in workspace:
        assert f"{member}/pyproject.toml" in copied and f"COPY {member} {member}" in DOCKERFILE.read_text()
        assert f"!{member}/" in dockerignore, f"{member} is excluded from the build context"
    assert "uv.lock" in copied


def test_the_manifests_run_the_image_the_way_it_is_built() -> None:
    env = image_env(stages()[-1])
    config = rendered("prod-eu").config()
    assert env["TAPWIRE_PORT"] == config["TAPWIRE_PORT"]
    assert env["TAPWIRE_HOST"] == config["TAPWIRE_HOST"]
    (expose,) = [rest for i, rest in instructions() if i == "EXPOSE"]
    assert expose == config["TAPWIRE_PORT"]
    migrate = [rest for i, rest in instructions() if i == "COPY" and "migrate.py" in rest]
    assert migrate == ["deploy/docker/migrate.py /app/migrate.py"]
    assert "!deploy/docker/migrate.py" in (ROOT / ".dockerignore").read_text().split()
