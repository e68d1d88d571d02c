"""Kubernetes JSON schemas for kubeconform, offline, from the ones the kubernetes-validate package ships.

    python deploy/k8s/schemas.py KUBERNETES_VERSION DEST

kubernetes-validate's schemas carry ``$id``s under https://kubernetes.io/api/ and refer to their shared
definitions as ``/api/_definitions.json``: a validator resolving those would go to the network. This copies one
version's strict schemas into ``DEST/v<version>-local-strict/`` with the ids dropped and the references made
relative to the file, which kubeconform resolves from disk. Idempotent: a stamp names the package version
the copy came from.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]

SHARED_DEFINITIONS = "/api/_definitions.json"


def localise(node: object) -> object:
    """``node`` without ``$id`` keys, its ``$ref``s to the shared definitions relative to the schema's folder."""
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            if key == "$id":
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(SHARED_DEFINITIONS):
                out[key] = "_definitions.json" + value[len(SHARED_DEFINITIONS) :]
            else:
                out[key] = localise(value)
        return out
    if isinstance(node, list):
        return [localise(item) for item in node]
    return node


def install(kubernetes_version: str, dest: Path) -> Path:
    """The folder of localised schemas for ``kubernetes_version`` (e.g. ``1.31.0``), created when missing."""
    name = f"v{kubernetes_version}-local-strict"
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / name
    if not source.is_dir():
        raise SystemExit(f"kubernetes-validate ships no schemas for Kubernetes {kubernetes_version}")
    target = dest / name
    stamp = target / ".source"
    origin = f"kubernetes-validate {metadata.version('kubernetes-validate')}"
    if stamp.is_file() and stamp.read_text() == origin:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    # A private staging folder renamed into place: several checkouts may share the cache and run at once.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest))
    try:
        for schema in source.glob("*.json"):
            document = json.loads(schema.read_text())
            (staging / schema.name).write_text(json.dumps(localise(document)))
        (staging / ".source").write_text(origin)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError:
        if not (stamp.is_file() and stamp.read_text() == origin):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: schemas.py KUBERNETES_VERSION DEST")
    print(install(sys.argv[1], Path(sys.argv[2])))
