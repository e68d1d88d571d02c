"""Who may do what: the console's roles, the capabilities they grant, and the capability each API route needs.

This table is enforced by the API for every request made with a console session (``Authorization: Bearer``);
hiding a button in the console is never the protection. A request made with the account's passcode has every
capability. A route missing from ``ROUTE_CAPABILITIES`` needs ``unlisted``, which only ``admin`` holds, so a
route added without a decision here is closed to every other role.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["admin", "marketer", "analyst", "privacy"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

Capability = Literal[
    "self",
    "data.read",
    "segments.write",
    "campaigns.read",
    "campaigns.write",
    "privacy.read",
    "privacy.write",
    "ingest",
    "settings.read",
    "settings.write",
    "credentials.manage",
    "users.manage",
    "audit.read",
    "unlisted",
]
CAPABILITIES: Final[tuple[Capability, ...]] = get_args(Capability)

ROLE_CAPABILITIES: Final[dict[Role, frozenset[Capability]]] = {
    "admin": frozenset(CAPABILITIES),
    "marketer": frozenset({"self", "data.read", "segments.write", "campaigns.read", "campaigns.write"}),
    "analyst": frozenset({"self", "data.read", "segments.write", "campaigns.read"}),
    "privacy": frozenset({"self", "data.read", "privacy.read", "privacy.write", "audit.read"}),
}

# Capabilities whose requests change something: the audit log records every such request.
CHANGES: Final[frozenset[Capability]] = frozenset(
    {
        "segments.write",
        "campaigns.write",
        "privacy.write",
        "ingest",
        "settings.write",
        "credentials.manage",
        "users.manage",
        "unlisted",
    }
)

_READ_QUERY = ("GET", "POST")
ROUTE_CAPABILITIES: Final[dict[tuple[str, str], Capability]] = {
    # Ingestion and identity maintenance: the passcode's business, or an admin's.
    ("POST", "/1/upload"): "ingest",
    ("POST", "/1/demerge/profiles.json"): "ingest",
    ("POST", "/1/disassociate"): "ingest",
    ("POST", "/1/disassociate/"): "ingest",
    # Reading data: every role (privacy officers look people up).
    ("GET", "/1/profile.json"): "data.read",
    **{(m, "/1/events.json"): "data.read" for m in _READ_QUERY},
    **{(m, "/1/profiles.json"): "data.read" for m in _READ_QUERY},
    **{(m, "/1/counts/events.json"): "data.read" for m in _READ_QUERY},
    **{(m, "/1/counts/profiles.json"): "data.read" for m in _READ_QUERY},
    **{(m, "/1/counts/top.json"): "data.read" for m in _READ_QUERY},
    **{(m, "/1/counts/trends.json"): "data.read" for m in _READ_QUERY},
    ("POST", "/1/now.json"): "data.read",
    ("GET", "/query/v1/activity"): "data.read",
    ("GET", "/query/v1/schema"): "data.read",
    ("GET", "/query/v1/events/latest"): "data.read",
    ("GET", "/query/v1/profiles/{user_key}/timeline"): "data.read",
    ("GET", "/query/v1/profiles/find"): "data.read",
    ("POST", "/query/v1/funnel"): "data.read",
    ("POST", "/query/v1/retention"): "data.read",
    ("GET", "/segments"): "data.read",
    ("GET", "/segments/{segment_id}"): "data.read",
    ("POST", "/segments/{segment_id}/count"): "data.read",
    ("GET", "/segments/{segment_id}/members"): "data.read",
    ("POST", "/segments"): "segments.write",
    # Campaigns.
    ("POST", "/1/targets/estimate.json"): "campaigns.read",
    ("GET", "/1/targets/list.json"): "campaigns.read",
    ("POST", "/1/targets/list.json"): "campaigns.read",
    ("POST", "/1/targets/result.json"): "campaigns.read",
    ("POST", "/1/message/report.json"): "campaigns.read",
    ("GET", "/messaging/v1/campaigns"): "campaigns.read",
    ("GET", "/messaging/v1/campaigns/{campaign_id}"): "campaigns.read",
    ("POST", "/messaging/v1/preview"): "campaigns.read",
    ("GET", "/messaging/v1/consent"): "data.read",
    ("GET", "/query/v1/profiles/{user_key}/identity"): "data.read",
    ("POST", "/1/targets/create.json"): "campaigns.write",
    ("POST", "/1/targets/stop.json"): "campaigns.write",
    ("POST", "/1/send/{channel}.json"): "campaigns.write",
    ("POST", "/1/subscribe"): "campaigns.write",
    ("POST", "/1/subscribe/"): "campaigns.write",
    ("POST", "/messaging/v1/campaigns"): "campaigns.write",
    ("POST", "/messaging/v1/sends"): "campaigns.write",
    ("POST", "/messaging/v1/campaigns/{campaign_id}/stop"): "campaigns.write",
    # Privacy requests.
    ("GET", "/privacy/v1/requests"): "privacy.read",
    ("GET", "/privacy/v1/requests/{request_id}"): "privacy.read",
    ("GET", "/privacy/v1/inventory"): "privacy.read",
    ("POST", "/privacy/v1/requests"): "privacy.write",
    ("POST", "/privacy/v1/requests/{request_id}/confirm"): "privacy.write",
    ("POST", "/privacy/v1/requests/{request_id}/deny"): "privacy.write",
    ("POST", "/privacy/v1/requests/{request_id}/extend"): "privacy.write",
    ("POST", "/privacy/v1/requests/{request_id}/retry"): "privacy.write",
    ("POST", "/1/delete/profiles.json"): "privacy.write",
    # The account's own administration.
    ("GET", "/account/v1/settings"): "settings.read",
    ("GET", "/account/v1/settings/campaign-defaults"): "campaigns.read",
    ("PATCH", "/account/v1/settings"): "settings.write",
    ("GET", "/account/v1/credentials"): "credentials.manage",
    ("POST", "/account/v1/credentials"): "credentials.manage",
    ("DELETE", "/account/v1/credentials/{credential_id}"): "credentials.manage",
    ("GET", "/account/v1/users"): "users.manage",
    ("POST", "/account/v1/users"): "users.manage",
    ("PATCH", "/account/v1/users/{user_id}"): "users.manage",
    ("DELETE", "/account/v1/users/{user_id}"): "users.manage",
    ("POST", "/account/v1/users/{user_id}/reset"): "users.manage",
    ("GET", "/account/v1/audit"): "audit.read",
    ("GET", "/account/v1/ingestion"): "data.read",
    # Each signed-in person's own data and session.
    ("GET", "/account/v1/me"): "self",
    ("PATCH", "/account/v1/me"): "self",
    ("DELETE", "/account/v1/me"): "self",
    ("GET", "/account/v1/me/export"): "self",
    ("POST", "/account/v1/me/password"): "self",
    ("DELETE", "/account/v1/sessions/current"): "self",
}


def capability_for(method: str, path_template: str) -> Capability:
    """The capability a request to this route needs (``HEAD`` reads as ``GET``); ``unlisted`` when unknown."""
    verb = "GET" if method == "HEAD" else method
    return ROUTE_CAPABILITIES.get((verb, path_template), "unlisted")


def allows(role: Role, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES[role]


def is_role(value: object) -> bool:
    return value in ROLES
