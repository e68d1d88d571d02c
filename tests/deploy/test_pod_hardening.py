"""Every pod tapwire declares runs hardened, probed, bounded and spread; disruptions and traffic are governed."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import OVERLAYS, PROD_OVERLAYS, Obj, containers, rendered, selects

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def test_every_container_is_non_root_read_only_without_capabilities(overlay: str) -> None:
    for workload, template in rendered(overlay).pod_templates():
        name = workload["metadata"]["name"]
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod.get("automountServiceAccountToken") is False, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), name
        for container in containers(template):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] > 10000, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for workload, template in rendered(overlay).pod_templates():
        for container in containers(template):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory", "ephemeral-storage"):
                    assert resource in resources[bound], f"{workload['metadata']['name']}: {bound}.{resource}"


def test_services_are_probed_on_their_health_endpoints(overlay: str) -> None:
    for deployment in rendered(overlay).tapwire_deployments():
        main = deployment["spec"]["template"]["spec"]["containers"][0]
        assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # Startup (connect + migrate) may take minutes; liveness must not kill a pod that is still starting.
        startup = main["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_rollouts_never_drop_capacity_and_wait_for_the_migration(overlay: str) -> None:
    for deployment in rendered(overlay).tapwire_deployments():
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["command"][:3] == ["python", "/app/migrate.py", "wait"]
        main = deployment["spec"]["template"]["spec"]["containers"][0]
        assert init["image"] == main["image"], "the init container must wait for its own release's schema"
        # uvicorn drains for up to 30 s, the loader for 30 s: the grace period covers it and the preStop pause.
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 35


def test_pods_spread_across_zones(overlay: str) -> None:
    for deployment in rendered(overlay).tapwire_deployments():
        pod = deployment["spec"]["template"]
        (zone,) = [
            c
            for c in pod["spec"]["topologySpreadConstraints"]
            if c["topologyKey"] == "topology.kubernetes.io/zone"
        ]
        assert selects(zone["labelSelector"], pod["metadata"]["labels"])
        expected = "DoNotSchedule" if overlay in PROD_OVERLAYS else "ScheduleAnyway"
        assert zone["whenUnsatisfiable"] == expected


def test_every_deployment_has_a_disruption_budget(overlay: str) -> None:
    o = rendered(overlay)
    budgets = o.of_kind("PodDisruptionBudget")
    for deployment in o.tapwire_deployments():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]


def _policies_for(o_policies: list[Obj], labels: dict[str, str], kind: str) -> list[Obj]:
    return [
        p
        for p in o_policies
        if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
    ]


def test_network_is_default_deny_with_only_the_needed_flows(overlay: str) -> None:
    o = rendered(overlay)
    policies = o.of_kind("NetworkPolicy")
    deny = o.get("NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {} and set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    public = {"gateway", "query", "messaging", "privacy-worker", "console"}
    for deployment in o.tapwire_deployments():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        component = labels["app.kubernetes.io/component"]
        ingress_sources = [
            peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            for p in _policies_for(policies, labels, "Ingress")
            for rule in p["spec"].get("ingress", [])
            for peer in rule.get("from", [])
        ]
        assert ("ingress-nginx" in ingress_sources) == (component in public), component
        assert "monitoring" in ingress_sources, component
        egress = _policies_for(policies, labels, "Egress")
        open_internet = [
            p["metadata"]["name"]
            for p in egress
            for rule in p["spec"].get("egress", [])
            for peer in rule.get("to", [])
            if "ipBlock" in peer
        ]
        # Only the services that call out: messaging (providers), the privacy worker (customers' webhooks,
        # recipients' erasure APIs) and the console (invitations through the SMTP relay).
        calls_out = component in ("messaging", "privacy-worker", "console")
        assert bool(open_internet) == calls_out, f"{component} egress beyond the cluster"


def test_no_secret_values_are_committed(overlay: str) -> None:
    assert rendered(overlay).of_kind("Secret") == []


def test_every_referenced_secret_has_a_source(overlay: str) -> None:
    """Each Secret a pod reads comes from an ExternalSecret or an operator, or is optional (created by hand)."""
    o = rendered(overlay)
    produced = {e["spec"]["target"]["name"] for e in o.of_kind("ExternalSecret")}
    produced |= {f"{c['metadata']['name']}-app" for c in o.of_kind("Cluster")}
    for workload, template in o.pod_templates():
        for container in containers(template):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["name"] in produced, (
                        f"{workload['metadata']['name']} reads Secret {ref['name']}"
                    )
