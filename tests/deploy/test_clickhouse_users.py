"""Least privilege in ClickHouse: each service connects as its own user, from its own Secret, allowed what it
does and nothing more; the readers are read-only and bounded per statement.

The grants are judged as text (the ClickHouseInstallation's ``users`` section passes them to ClickHouse's
users.xml as they are); no ClickHouse server runs here to check them against.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tapwire_core.settings import Settings
from tests.deploy.manifests import OVERLAYS, Obj, Overlay, containers, rendered, service_of

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)

# tapwire serve <service> -> the ClickHouse user it connects as.
USER_OF = {"loader": "loader", "query": "query", "messaging": "messaging", "privacy-worker": "privacy"}
ADMIN = "tapwire"
READERS = ("query", "messaging")
# What each user may be granted, privilege by privilege (any other is a failure).
ALLOWED = {
    "loader": {("SELECT", "tapwire.*"), ("INSERT", "tapwire.*"), ("CREATE TEMPORARY TABLE", "*.*")},
    "query": {("SELECT", "tapwire.*")},
    "messaging": {("SELECT", "tapwire.*")},
    "privacy": {
        ("SELECT", "tapwire.*"),
        ("INSERT", "tapwire.*"),
        ("ALTER UPDATE", "tapwire.*"),
        ("ALTER DELETE", "tapwire.*"),
        ("SELECT", "system.mutations"),
        ("CLUSTER", "*.*"),
        ("REMOTE", "*.*"),
        ("CREATE TEMPORARY TABLE", "*.*"),
    },
}
_GRANT = re.compile(r"^GRANT (?P<privileges>.+) ON (?P<target>\S+)$")


def _chi(o: Overlay) -> Obj:
    (chi,) = o.of_kind("ClickHouseInstallation")
    return chi


def _users(o: Overlay) -> dict[str, Any]:
    users: dict[str, Any] = _chi(o)["spec"]["configuration"]["users"]
    return users


def _clickhouse_secret(template: Obj) -> str | None:
    """The Secret a pod template's containers take TAPWIRE_CLICKHOUSE_URL from (one for all of them)."""
    names = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for container in containers(template)
        for item in container.get("env", [])
        if item["name"] == "TAPWIRE_CLICKHOUSE_URL"
    }
    assert len(names) <= 1, f"containers of one pod read ClickHouse from different Secrets: {names}"
    return next(iter(names), None)


def _granted(grants: list[str]) -> set[tuple[str, str]]:
    found = set()
    for grant in grants:
        match = _GRANT.match(grant.strip())
        assert match, f"not a plain GRANT: {grant!r}"
        for privilege in match["privileges"].split(","):
            found.add((privilege.strip().upper(), match["target"]))
    return found


def test_each_service_connects_as_its_own_user_from_its_own_secret(overlay: str) -> None:
    o = rendered(overlay)
    users = _users(o)
    seen: dict[str, str] = {}
    for deployment in o.tapwire_deployments():
        secret = _clickhouse_secret(deployment["spec"]["template"])
        service = service_of(deployment)
        if secret is None:
            assert service not in USER_OF, f"{service} needs ClickHouse"
            continue
        user = USER_OF[service]
        assert secret == f"tapwire-clickhouse-{user}", f"{service} reads ClickHouse from {secret}"
        assert secret not in seen, f"{service} and {seen.get(secret)} share {secret}"
        seen[secret] = service
        url = o.get("ExternalSecret", secret)["spec"]["target"]["template"]["data"]["url"]
        assert re.fullmatch(
            rf"http://tapwire_{user}:.*@clickhouse-{_chi(o)['metadata']['name']}:8123/tapwire", url
        )
        assert users[f"tapwire_{user}/k8s_secret_password"] == f"{secret}/password"
    assert set(seen.values()) == set(USER_OF)


def test_only_the_migration_job_and_the_backup_use_the_schema_owner(overlay: str) -> None:
    o = rendered(overlay)
    owners = []
    for workload, template in o.pod_templates():
        if "'tapwire-clickhouse'" in str(template):  # the Secret by name, in any env entry
            owners.append((workload["kind"], workload["metadata"]["name"]))
    assert sorted(owners) == [("CronJob", "tapwire-clickhouse-backup"), ("Job", "tapwire-migrate")]
    assert _users(o)[f"{ADMIN}/k8s_secret_password"] == "tapwire-clickhouse/password"


def test_service_users_are_granted_what_they_do_and_nothing_more(overlay: str) -> None:
    users = _users(rendered(overlay))
    for user, allowed in ALLOWED.items():
        grants = users.get(f"tapwire_{user}/grants/query")
        assert grants, f"tapwire_{user} has no explicit grants (it would get every privilege)"
        granted = _granted(grants)
        assert granted <= allowed, (
            f"tapwire_{user} is granted more than it needs: {sorted(granted - allowed)}"
        )
        assert f"tapwire_{user}/access_management" not in users
    # Only the privacy worker changes stored rows; only the loader and it insert.
    assert {u for u, a in ALLOWED.items() if any(p.startswith("ALTER") for p, _ in a)} == {"privacy"}


def test_readers_are_read_only_and_bounded_per_statement(overlay: str) -> None:
    configuration = _chi(rendered(overlay))["spec"]["configuration"]
    users, profiles = configuration["users"], configuration["profiles"]
    settings = Settings()
    for user in READERS:
        profile = users[f"tapwire_{user}/profile"]
        assert str(profiles[f"{profile}/readonly"]) == "2"
        for setting in ("max_execution_time", "max_memory_usage", "max_rows_to_read"):
            assert int(profiles[f"{profile}/{setting}"]) > 0, f"{profile} does not bound {setting}"
        # What the query service sends with each statement must fit under the profile's ceilings.
        for setting, value in (
            ("max_execution_time", settings.query_max_execution_s),
            ("max_memory_usage", settings.query_max_memory_bytes),
            ("max_rows_to_read", settings.query_max_rows_to_read),
        ):
            assert value <= int(profiles[f"{profile}/constraints/{setting}/max"])
