"""Drift between the code and the manifests: services, variables, ports, routes, topics, metrics.

The lists come from the code (``SERVICES``, the settings classes, the routers each service mounts), so these
tests keep holding, or fail with the exact gap, as services and settings are added.
"""

from __future__ import annotations

import argparse
import re

import pytest

from tapwire_core.settings import Settings
from tapwire_services.assembly import SERVICES
from tapwire_services.cli import parser
from tests.deploy import code_facts, docs
from tests.deploy.manifests import (
    OVERLAYS,
    PROD_OVERLAYS,
    REGION_OF,
    Overlay,
    containers,
    rendered,
    service_of,
)

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)

OPTIONAL_HEADING = "Optional settings"
SET_HEADING = "Settings the manifests set"


def _manifest_variables(o: Overlay) -> set[str]:
    names = {name for name in o.config() if name.startswith("TAPWIRE_")}
    for _, template in o.pod_templates():
        for container in containers(template):
            names.update(
                item["name"] for item in container.get("env", []) if item["name"].startswith("TAPWIRE_")
            )
    return names


def test_every_service_in_the_code_has_a_deployment_and_a_service(overlay: str) -> None:
    o = rendered(overlay)
    served = {service_of(d): d for d in o.tapwire_deployments()}
    assert set(served) == set(SERVICES), (
        "Deployments must run exactly the services of tapwire_services.SERVICES"
    )
    for service, deployment in served.items():
        assert deployment["metadata"]["name"] == f"tapwire-{service}"
        svc = o.get("Service", f"tapwire-{service}")
        assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def _serve_choices() -> set[str]:
    for action in parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve: argparse.ArgumentParser = action.choices["serve"]
            for argument in serve._actions:
                if argument.dest == "service":
                    return set(argument.choices or ())
    raise AssertionError("tapwire serve takes no service argument")


def test_the_cli_offers_the_same_services(overlay: str) -> None:
    assert _serve_choices() == set(SERVICES)


def test_every_variable_the_code_reads_is_set_or_documented_as_optional(overlay: str) -> None:
    set_here = _manifest_variables(rendered(overlay))
    optional = docs.documented_variables(OPTIONAL_HEADING)
    missing = sorted(code_facts.env_vars() - set_here - optional)
    assert not missing, f"set these in the manifests or document them under '{OPTIONAL_HEADING}': {missing}"


def test_every_variable_the_manifests_set_is_documented(overlay: str) -> None:
    documented = docs.documented_variables(SET_HEADING)
    undocumented = sorted(_manifest_variables(rendered(overlay)) - documented)
    assert not undocumented, f"document under '{SET_HEADING}' in docs/operations.md: {undocumented}"


def test_ports_match_between_code_config_containers_and_services(overlay: str) -> None:
    o = rendered(overlay)
    port = int(o.config()["TAPWIRE_PORT"])
    assert Settings.model_fields["port"].default == port
    for deployment in o.tapwire_deployments():
        main = deployment["spec"]["template"]["spec"]["containers"][0]
        (http,) = [p for p in main["ports"] if p["name"] == "http"]
        assert http["containerPort"] == port
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"]["port"] in ("http", port)
        service = o.get("Service", deployment["metadata"]["name"])
        (service_port,) = service["spec"]["ports"]
        assert service_port["targetPort"] in ("http", port)
        assert service_port["name"] == "http"
    monitor = o.get("ServiceMonitor", "tapwire")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert o.config()["TAPWIRE_HOST"] == "0.0.0.0", "the default 127.0.0.1 is unreachable from other pods"


def test_every_route_of_a_service_reaches_that_service_through_the_ingress(overlay: str) -> None:
    o = rendered(overlay)
    (ingress,) = o.of_kind("Ingress")
    rules = [
        (p["path"], p["pathType"], p["backend"]["service"]["name"])
        for r in ingress["spec"]["rules"]
        for p in r["http"]["paths"]
    ]
    for _, _, backend in rules:
        assert o.has("Service", backend), f"the Ingress routes to a missing Service {backend}"

    def route(path: str) -> str | None:
        matches = [
            (len(prefix), backend)
            for prefix, kind, backend in rules
            if path == prefix or (kind == "Prefix" and path.startswith(prefix.rstrip("/") + "/"))
        ]
        return max(matches)[1] if matches else None

    for service, paths in code_facts.service_routes().items():
        for path in paths:
            assert route(path) == f"tapwire-{service}", f"{path} is served by {service}"


def test_health_and_metrics_are_not_public(overlay: str) -> None:
    (ingress,) = rendered(overlay).of_kind("Ingress")
    paths = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert all(p not in ("/", "/healthz", "/readyz", "/metrics") for p in paths)


def test_topics_consumer_group_and_cluster_names_agree(overlay: str) -> None:
    o = rendered(overlay)
    config = o.config()
    topics = {t["spec"]["topicName"]: t for t in o.of_kind("KafkaTopic")}
    assert set(topics) == {config["TAPWIRE_EVENTS_TOPIC"], config["TAPWIRE_DEAD_LETTER_TOPIC"]}
    partitions = int(config["TAPWIRE_TOPIC_PARTITIONS"])
    assert {t["spec"]["partitions"] for t in topics.values()} == {partitions}

    (kafka,) = o.of_kind("Kafka")
    (listener,) = [item for item in kafka["spec"]["kafka"]["listeners"] if item["name"] == "plain"]
    assert (
        config["TAPWIRE_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    )

    (scaled,) = o.of_kind("ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["bootstrapServers"] == config["TAPWIRE_KAFKA_BOOTSTRAP"]
    assert trigger["metadata"]["consumerGroup"] == config["TAPWIRE_LOADER_GROUP"]
    assert trigger["metadata"]["topic"] == config["TAPWIRE_EVENTS_TOPIC"]
    # A consumer group never has more active members than partitions.
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    # The lag is in bus messages, each packing the records of concurrent uploads (50 or more under load): the
    # threshold is at least one micro-batch at that packing, and no more messages than a batch has records.
    threshold = int(trigger["metadata"]["lagThreshold"])
    batch_rows = Settings.model_fields["loader_batch_rows"].default
    assert threshold * 50 >= batch_rows
    assert threshold <= batch_rows

    (chi,) = o.of_kind("ClickHouseInstallation")
    assert [c["name"] for c in chi["spec"]["configuration"]["clusters"]] == [
        config["TAPWIRE_CLICKHOUSE_CLUSTER"]
    ]


def test_connection_secrets_point_at_the_state_clusters(overlay: str) -> None:
    o = rendered(overlay)
    (pg,) = o.of_kind("Cluster")
    (chi,) = o.of_kind("ClickHouseInstallation")
    url_template = o.get("ExternalSecret", "tapwire-clickhouse")["spec"]["target"]["template"]["data"]["url"]
    assert re.fullmatch(rf"http://tapwire:.*@clickhouse-{chi['metadata']['name']}:8123/tapwire", url_template)
    assert "tapwire/k8s_secret_password" in chi["spec"]["configuration"]["users"]
    for _, template in o.pod_templates():
        for container in containers(template):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if item["name"] == "TAPWIRE_DATABASE_URL":
                    assert ref == {"name": f"{pg['metadata']['name']}-app", "key": "uri"}
                if item["name"] == "TAPWIRE_CLICKHOUSE_URL":
                    # A ClickHouse user and Secret per service, the schema owner's for the migration Job
                    # (test_clickhouse_users.py says who uses which).
                    assert ref["key"] == "url" and re.fullmatch(r"tapwire-clickhouse(-[a-z]+)?", ref["name"])
                    url = o.get("ExternalSecret", ref["name"])["spec"]["target"]["template"]["data"]["url"]
                    host = f"clickhouse-{chi['metadata']['name']}:8123"
                    assert re.fullmatch(rf"http://tapwire(_[a-z]+)?:.*@{host}/tapwire", url)


def test_each_region_deploys_its_own_region_only(overlay: str) -> None:
    o = rendered(overlay)
    region = REGION_OF[overlay]
    assert o.config()["TAPWIRE_REGION"] == region
    if overlay in PROD_OVERLAYS:
        assert region in o.config()["TAPWIRE_PUBLIC_URL"]
        text = repr(o.objects)
        for other in set(REGION_OF.values()) - {region}:
            assert other not in text, f"{overlay} mentions region {other}"
        store = o.get("ObjectStore", "tapwire-pg-backups")["spec"]["configuration"]["destinationPath"]
        assert region in store


def test_alerts_use_metrics_the_code_exports_and_have_runbooks(overlay: str) -> None:
    o = rendered(overlay)
    defined = code_facts.metric_names()
    # Metrics of services still being built; their alerts are ready for them (docs/operations.md lists them).
    awaited = docs.section("Metrics the alerts expect")
    anchors = docs.anchors()
    (rules,) = o.of_kind("PrometheusRule")
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            for metric in re.findall(r"\btapwire_[a-z0-9_]+", rule["expr"]):
                base = re.sub(r"_(bucket|sum|count|created)$", "", metric)
                assert base in defined or f"`{base}`" in awaited, (
                    f"{rule['alert']} uses unknown metric {metric}"
                )
            anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
            assert anchor in anchors, f"no runbook section for {rule['alert']}"
