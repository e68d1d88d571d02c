"""CleverTap's login rules on the identity graph (``docs/identity.md`` has them with examples).

A browser or phone is one device id (``o:<id>``). Records before a login belong to the device's profile. A
profile record naming ``Identity``/``Email``/``Phone`` (``onUserLogin``, ``profile.push``) links the device to
them: on an anonymous device the device's profile becomes the person's, its history with it; the same identity on
another device joins that device to the same person. A *different* identity on a device that already belongs to
an identified person is the one link the graph refuses (two identities never merge implicitly), and then the
server issues a new device id, linked to the new identity, and answers the SDK with it (``resume``), so the
browser starts a new profile, as CleverTap's SDKs and servers do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from tapwire_core.envelope import Envelope, Identities
from tapwire_core.http.errors import ApiError
from tapwire_core.identity import AliasRow, IdentityGraph, alias_envelopes
from tapwire_core.identity.keys import key_for, keys_of
from tapwire_ingest.clevertap_sdk.sessions import new_device_id
from tapwire_ingest.clevertap_sdk.web_request import WebRequest

log = logging.getLogger(__name__)
REASON = "clevertap-sdk"


@dataclass(slots=True)
class LoginOutcome:
    device_id: str
    """The device id the records and the answer use: the request's, or a new one."""
    new_device: bool = False
    envelopes: list[Envelope] = field(default_factory=list)
    """``user_aliases`` rows to publish with the records."""
    _made: list[tuple[str, ...]] = field(default_factory=list)

    def confirm(self, graph: IdentityGraph, account_id: str) -> None:
        """Remember the links once their rows are durable, so repeats skip the database."""
        for keys in self._made:
            graph.remember_linked(account_id, keys)


async def link_login(
    graph: IdentityGraph,
    account_id: str,
    *,
    device_id: str,
    login: Identities,
    received_ms: int,
    retry_after_s: int,
    new_device_on_refusal: bool = True,
) -> LoginOutcome:
    """Link ``device_id`` to the identifiers of ``login`` (see the module's rules). Raises ApiError 503 when
    the control store is unreachable.

    ``new_device_on_refusal`` is for the Web SDK, which takes a device id from the answer. The mobile SDKs make
    their own (a new one when another person logs in), so for them a refused link leaves the device as it is.
    """
    person = person_keys(login)
    keys = (key_for("object_id", device_id), *person)
    outcome = LoginOutcome(device_id)
    if graph.recently_linked(account_id, keys):
        return outcome
    try:
        linked = await graph.link(account_id, keys, reason=REASON)
        if linked.refused is not None and new_device_on_refusal:
            outcome.device_id = new_device_id()
            outcome.new_device = True
            keys = (key_for("object_id", outcome.device_id), *person)
            linked = await graph.link(account_id, keys, reason=REASON)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("identity graph unavailable", extra={"error": str(exc)})
        raise ApiError(
            503, "Identity resolution is temporarily unavailable; retry later", retry_after=retry_after_s
        ) from exc
    if linked.refused is None:
        rows: dict[tuple[str, int], AliasRow] = {(r.alias_key, r.version): r for r in linked.rows}
        outcome.envelopes = alias_envelopes(account_id, rows.values(), received_ms=received_ms)
        outcome._made.append(keys)
    else:
        # E.g. an email already used by another identified person: the new device stays on its own.
        log.info("client SDK login not linked", extra={"account_id": account_id, "reason": linked.refused})
    return outcome


def login_keys(request: WebRequest) -> list[str]:
    """The person keys a Web SDK profile push names (Identity, Email, Phone), without validating it; empty for
    any other request. For finding what waits for the person, never for storing."""
    if request.type != "push" or request.payload.get("type") != "profile":
        return []
    profile = request.payload.get("profile")
    if type(profile) is not dict:
        return []
    values = {name: profile.get(name) for name in ("Identity", "Email", "Phone")}
    found = {
        name: str(value) if type(value) is int else value
        for name, value in values.items()
        if type(value) in (str, int) and value != ""
    }
    login = Identities(identity=found.get("Identity"), email=found.get("Email"), phone=found.get("Phone"))
    return person_keys(login) if found else []


def person_keys(login: Identities) -> list[str]:
    """The login's identifiers of the person (Identity, Email, Phone), as user keys; not the device."""
    return [key for key in keys_of(login) if not key.startswith("o:")]
