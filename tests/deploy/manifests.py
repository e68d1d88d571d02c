"""The rendered Kubernetes overlays as Python data, and the lookups the deployment tests share.

``rendered(overlay)`` runs ``deploy/k8s/check.sh render`` once per test session (it installs kustomize into
the tool cache when missing), so the tests always judge the manifests as they are in the working tree.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod-eu", "prod-us")
PROD_OVERLAYS = ("prod-eu", "prod-us")
REGION_OF = {"dev": "eu1", "prod-eu": "eu1", "prod-us": "us1"}

Obj = dict[str, Any]


@cache
def _render_all() -> None:
    subprocess.run(["bash", str(K8S / "check.sh"), "render"], cwd=ROOT, check=True, capture_output=True)


@dataclass(frozen=True)
class Overlay:
    name: str
    objects: tuple[Obj, ...]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name!r}, found {len(found)}"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["metadata"]["name"] == name for o in self.of_kind(kind))

    def config(self) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", "tapwire-config")["data"]
        return data

    def pod_templates(self) -> Iterator[tuple[Obj, Obj]]:
        """(workload, pod template) for every Deployment, Job and CronJob."""
        for obj in self.objects:
            if obj["kind"] in ("Deployment", "Job"):
                yield obj, obj["spec"]["template"]
            elif obj["kind"] == "CronJob":
                yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]

    def tapwire_deployments(self) -> list[Obj]:
        return [
            d
            for d in self.of_kind("Deployment")
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "tapwire"
        ]


@cache
def rendered(name: str) -> Overlay:
    _render_all()
    text = (K8S / "rendered" / f"{name}.yaml").read_text()
    return Overlay(name, tuple(doc for doc in yaml.safe_load_all(text) if doc))


def containers(pod_template: Obj, *, init: bool = True) -> list[Obj]:
    spec = pod_template["spec"]
    found: list[Obj] = list(spec.get("containers", []))
    if init:
        found.extend(spec.get("initContainers", []))
    return found


def service_of(deployment: Obj) -> str:
    """The ``tapwire serve`` argument a Deployment runs."""
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    args = main.get("args", [])
    assert len(args) == 2 and args[0] == "serve", (
        f"{deployment['metadata']['name']} does not run tapwire serve"
    )
    service: str = args[1]
    return service


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions, or a plain map) matches ``labels``."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def env_names(container: Obj) -> set[str]:
    return {item["name"] for item in container.get("env", [])}


def config_env(o: Overlay, container: Obj) -> dict[str, str]:
    """The environment a container gets from the overlay's ConfigMaps (``envFrom`` and ``configMapKeyRef``)
    and literal ``value``s, as the kubelet would build it; variables from Secrets are left out."""
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in o.of_kind("ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item.get("valueFrom", {}).get("configMapKeyRef")
        if ref is None:
            continue
        data = maps.get(ref["name"], {})
        if ref["key"] in data:
            env[item["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional"), f"{item['name']}: ConfigMap {ref['name']} has no key {ref['key']}"
    return env
