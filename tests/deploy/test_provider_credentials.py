"""Provider credentials reach the pods from Secrets, never from ConfigMaps, and where the code looks for them."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tapwire_services.assembly import SERVICE_SPECS
from tests.deploy.manifests import OVERLAYS, REGION_OF, config_env, containers, rendered, service_of

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)

# Variables whose value is a credential or carries one (user-info in a URL).
CREDENTIALS = {
    "TAPWIRE_SMTP_URL",
    "TAPWIRE_SMS_URL",
    "TAPWIRE_MESSAGING_SECRET",
    "TAPWIRE_CLICKHOUSE_URL",
    "TAPWIRE_CREDENTIAL_SECRET",
}
KEY_FILES = {
    "TAPWIRE_FCM_CREDENTIALS_FILE": "fcm-service-account.json",
    "TAPWIRE_APNS_KEY_FILE": "apns-key.p8",
}


def test_no_configmap_value_carries_a_credential(overlay: str) -> None:
    for config_map in rendered(overlay).of_kind("ConfigMap"):
        for key, value in (config_map.get("data") or {}).items():
            for word in str(value).split():
                parts = urlsplit(word)
                assert not (parts.scheme and parts.netloc and parts.password), (
                    f"ConfigMap {config_map['metadata']['name']} key {key} holds a URL with a password"
                )


def test_credential_variables_come_from_secrets(overlay: str) -> None:
    o = rendered(overlay)
    for workload, template in o.pod_templates():
        for container in containers(template):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert not CREDENTIALS & set(config_env(o, container)), (
                f"{where} gets a credential from a ConfigMap"
            )
            for item in container.get("env", []):
                if item["name"] in CREDENTIALS:
                    assert "secretKeyRef" in item.get("valueFrom", {}), f"{where}: {item['name']}"


def test_push_keys_are_files_mounted_from_the_providers_secret(overlay: str) -> None:
    o = rendered(overlay)
    deployment = o.get("Deployment", "tapwire-messaging")
    pod = deployment["spec"]["template"]["spec"]
    (main,) = [c for c in pod["containers"] if c["name"] == "tapwire"]
    env = {item["name"]: item.get("value") for item in main["env"]}
    (volume,) = [
        v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "tapwire-messaging-providers"
    ]
    assert volume["secret"]["optional"] is True, "a deployment without push must still start"
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    mounted = {item["key"]: item["path"] for item in volume["secret"]["items"]}
    for variable, key in KEY_FILES.items():
        assert env[variable] == f"{mount['mountPath']}/{mounted[key]}", variable
    providers = o.get("ExternalSecret", "tapwire-messaging-providers")
    assert providers["spec"]["target"]["name"] == "tapwire-messaging-providers"
    (source,) = providers["spec"]["dataFrom"]
    assert source["extract"]["key"] == f"tapwire/{REGION_OF[overlay]}/messaging-providers"
    # The privacy worker deletes texts at the SMS provider with the same credentials, from the same Secret.
    privacy = o.get("Deployment", "tapwire-privacy-worker")["spec"]["template"]["spec"]["containers"][0]
    (sms,) = [item for item in privacy["env"] if item["name"] == "TAPWIRE_SMS_URL"]
    assert sms["valueFrom"]["secretKeyRef"]["name"] == "tapwire-messaging-providers"


def test_the_credential_secret_reaches_exactly_the_services_that_check_credentials(overlay: str) -> None:
    """Every service whose spec checks passcodes or write keys refuses to start without
    ``TAPWIRE_CREDENTIAL_SECRET``, so its Deployment must give it the region's one value; the loader checks none
    and is not given it (one Deployment fewer that can read it)."""
    o = rendered(overlay)
    source = o.get("ExternalSecret", "tapwire-credentials")
    assert source["spec"]["target"]["name"] == "tapwire-credentials"
    (data,) = source["spec"]["data"]
    assert data["secretKey"] == "credential-secret"
    assert data["remoteRef"]["key"] == f"tapwire/{REGION_OF[overlay]}/credentials"
    given: dict[str, list[object]] = {}
    for deployment in o.tapwire_deployments():
        main = deployment["spec"]["template"]["spec"]["containers"][0]
        refs = [item for item in main.get("env", []) if item["name"] == "TAPWIRE_CREDENTIAL_SECRET"]
        given[service_of(deployment)] = [item["valueFrom"]["secretKeyRef"] for item in refs]
    for service, spec in SERVICE_SPECS.items():
        expected = [{"name": "tapwire-credentials", "key": "credential-secret"}] if spec.credentials else []
        assert given[service] == expected, f"{overlay}: tapwire-{service} and TAPWIRE_CREDENTIAL_SECRET"
    assert SERVICE_SPECS["console"].credentials and not SERVICE_SPECS["loader"].credentials
