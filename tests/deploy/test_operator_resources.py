"""The operators' custom resources carry the fields their operators require, and the sizes production needs.

No JSON schema of these kinds is available offline, so the required fields are checked here, from the
operators' CRD reference (Strimzi, Altinity clickhouse-operator, CloudNativePG + Barman Cloud plugin,
External Secrets, KEDA, Prometheus Operator).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import OVERLAYS, PROD_OVERLAYS, Obj, rendered, selects

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)

API_VERSIONS = {
    "Kafka": "kafka.strimzi.io/v1beta2",
    "KafkaNodePool": "kafka.strimzi.io/v1beta2",
    "KafkaTopic": "kafka.strimzi.io/v1beta2",
    "ClickHouseInstallation": "clickhouse.altinity.com/v1",
    "ClickHouseKeeperInstallation": "clickhouse-keeper.altinity.com/v1",
    "Cluster": "postgresql.cnpg.io/v1",
    "ScheduledBackup": "postgresql.cnpg.io/v1",
    "ObjectStore": "barmancloud.cnpg.io/v1",
    "ExternalSecret": "external-secrets.io/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}
MAX_BUS_RETENTION_MS = (
    30 * 24 * 3600 * 1000
)  # the erasure deadline: erased data must not outlive it on the bus


def _at(obj: Obj, path: str) -> Any:
    node: Any = obj
    for key in path.split("."):
        assert isinstance(node, dict) and key in node, (
            f"{obj['kind']} {obj['metadata']['name']}: missing {path}"
        )
        node = node[key]
    return node


def test_operator_kinds_use_the_served_api_versions(overlay: str) -> None:
    o = rendered(overlay)
    for kind, api_version in API_VERSIONS.items():
        assert o.of_kind(kind), f"{overlay} has no {kind}"
        for obj in o.of_kind(kind):
            assert obj["apiVersion"] == api_version, f"{kind} {obj['metadata']['name']}"


def test_kafka_is_kraft_with_node_pools_and_replicated_topics(overlay: str) -> None:
    o = rendered(overlay)
    (kafka,) = o.of_kind("Kafka")
    name = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    assert _at(kafka, "spec.kafka.version") and _at(kafka, "spec.kafka.metadataVersion")
    assert _at(kafka, "spec.kafka.listeners")
    assert "topicOperator" in _at(kafka, "spec.entityOperator")
    config = _at(kafka, "spec.kafka.config")
    assert config["auto.create.topics.enable"] is False

    pools = o.of_kind("KafkaNodePool")
    roles: dict[str, int] = {}
    for pool in pools:
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == name
        assert _at(pool, "spec.storage.type") and _at(pool, "spec.resources")
        for role in _at(pool, "spec.roles"):
            roles[role] = roles.get(role, 0) + pool["spec"]["replicas"]
    assert set(roles) == {"controller", "broker"}

    prod = overlay in PROD_OVERLAYS
    replication = 3 if prod else 1
    min_isr = 2 if prod else 1
    if prod:
        assert roles["controller"] == 3 and roles["broker"] >= 3
        assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
        assert config["unclean.leader.election.enable"] is False
    for topic in o.of_kind("KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == name
        assert topic["spec"]["replicas"] == replication
        assert topic["spec"]["config"]["min.insync.replicas"] == min_isr
        assert 0 < topic["spec"]["config"]["retention.ms"] <= MAX_BUS_RETENTION_MS
        assert topic["spec"]["config"]["cleanup.policy"] == "delete"


def test_clickhouse_is_sharded_and_replicated_through_keeper(overlay: str) -> None:
    o = rendered(overlay)
    (chi,) = o.of_kind("ClickHouseInstallation")
    (chk,) = o.of_kind("ClickHouseKeeperInstallation")
    (cluster,) = _at(chi, "spec.configuration.clusters")
    layout = cluster["layout"]
    if overlay in PROD_OVERLAYS:
        assert (layout["shardsCount"], layout["replicasCount"]) == (2, 2)
        assert _at(chk, "spec.configuration.clusters")[0]["layout"]["replicasCount"] == 3
    (keeper_node,) = _at(chi, "spec.configuration.zookeeper.nodes")
    assert keeper_node == {"host": f"keeper-{chk['metadata']['name']}", "port": 2181}
    for install in (chi, chk):
        defaults = _at(install, "spec.defaults.templates")
        pod_templates = {t["name"] for t in _at(install, "spec.templates.podTemplates")}
        volume_templates = {t["name"] for t in _at(install, "spec.templates.volumeClaimTemplates")}
        assert defaults["podTemplate"] in pod_templates
        assert defaults["dataVolumeClaimTemplate"] in volume_templates
        for template in _at(install, "spec.templates.podTemplates"):
            for container in template["spec"]["containers"]:
                image = container["image"]
                assert ":" in image and not image.endswith(":latest"), image
                assert (
                    container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]
                )


def test_postgres_has_three_instances_and_backups(overlay: str) -> None:
    o = rendered(overlay)
    (pg,) = o.of_kind("Cluster")
    if overlay in PROD_OVERLAYS:
        assert pg["spec"]["instances"] == 3
        assert pg["spec"]["postgresql"]["synchronous"]["number"] >= 1
    assert _at(pg, "spec.storage.size") and _at(pg, "spec.bootstrap.initdb.database") == "tapwire"
    (plugin,) = _at(pg, "spec.plugins")
    assert plugin["name"] == "barman-cloud.cloudnative-pg.io" and plugin["isWALArchiver"] is True
    store = o.get("ObjectStore", plugin["parameters"]["barmanObjectName"])
    assert _at(store, "spec.configuration.destinationPath").startswith("s3://")
    assert _at(store, "spec.retentionPolicy")
    credentials = _at(store, "spec.configuration.s3Credentials")
    produced = {e["spec"]["target"]["name"] for e in o.of_kind("ExternalSecret")}
    assert {credentials["accessKeyId"]["name"], credentials["secretAccessKey"]["name"]} <= produced
    (backup,) = o.of_kind("ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == pg["metadata"]["name"]
    assert backup["spec"]["method"] == "plugin"
    assert len(backup["spec"]["schedule"].split()) == 6, "CloudNativePG schedules have a seconds field"


def test_autoscalers_target_existing_deployments(overlay: str) -> None:
    o = rendered(overlay)
    for scaler in o.of_kind("ScaledObject") + o.of_kind("HorizontalPodAutoscaler"):
        target = scaler["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and o.has("Deployment", target["name"])
        assert "replicas" not in o.get("Deployment", target["name"])["spec"], "the autoscaler owns replicas"
    assert {s["spec"]["scaleTargetRef"]["name"] for s in o.of_kind("ScaledObject")} == {"tapwire-loader"}
    assert {h["spec"]["scaleTargetRef"]["name"] for h in o.of_kind("HorizontalPodAutoscaler")} == {
        "tapwire-gateway"
    }


def test_external_secrets_name_a_store_and_a_target(overlay: str) -> None:
    for secret in rendered(overlay).of_kind("ExternalSecret"):
        assert _at(secret, "spec.secretStoreRef.kind") == "ClusterSecretStore"
        assert _at(secret, "spec.secretStoreRef.name")
        assert _at(secret, "spec.target.name")
        spec = secret["spec"]
        assert spec.get("data") or spec.get("dataFrom"), f"{secret['metadata']['name']} fetches nothing"
        for item in spec.get("data", []):
            assert item["secretKey"] and item["remoteRef"]["key"]
        for source in spec.get("dataFrom", []):
            assert source["extract"]["key"]


def test_monitoring_selects_every_service_and_alerts_are_complete(overlay: str) -> None:
    o = rendered(overlay)
    (monitor,) = o.of_kind("ServiceMonitor")
    services = [s for s in o.of_kind("Service") if s["metadata"]["name"].startswith("tapwire-")]
    assert services and all(selects(monitor["spec"]["selector"], s["metadata"]["labels"]) for s in services)
    (rules,) = o.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rules["spec"]["groups"] for r in g["rules"]}
    for rule in alerts.values():
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook_url"]
    covered = " ".join(r["expr"] for r in alerts.values())
    for signal in (
        "tapwire_loader_lag_records",
        "tapwire_dead_letters_total",
        'status=~"5.."',
        "histogram_quantile(0.99",
        "tapwire_privacy_requests_near_due",
        "tapwire_privacy_requests_overdue",
        "tapwire_messaging_deliveries_total",
    ):
        assert signal in covered, f"no alert on {signal}"
