"""The data inventory: per store and table, which columns hold which categories of personal data, and for how
long. Tables and columns come from the schemas (``schemas``), so the inventory cannot drift from what exists;
only the *classification* is declared here, and a column without one shows as ``unclassified`` (which the
inventory test refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tapwire_core.settings import Settings
from tapwire_privacy.registry import CONTROL_COVERAGE, WAREHOUSE_COVERAGE, Exempt
from tapwire_privacy.schemas import control_tables, warehouse_projections, warehouse_tables

IDENTIFIER: Final = "identifier"
CONTACT: Final = "contact"
ONLINE_ID: Final = "online identifier"
BEHAVIOUR: Final = "behaviour"
PROFILE: Final = "profile attributes"
DEVICE: Final = "device and technical"
PSEUDONYM: Final = "pseudonymised identifier (salted hash)"
NONE: Final = "none"
UNCLASSIFIED: Final = "unclassified"

_SUBJECT_COLUMNS: Final = {
    "user_key": IDENTIFIER,
    "identity": IDENTIFIER,
    "object_id": ONLINE_ID,
    "email": CONTACT,
    "phone": CONTACT,
    "anonymous_id": ONLINE_ID,
}

_LEDGER: Final = {
    "account_id": NONE,
    "key_hash": PSEUDONYM,
    "request_id": NONE,
    "erased_at": NONE,
}

WAREHOUSE_CATEGORIES: Final[dict[str, dict[str, str]]] = {
    "privacy_erasure_ledger": _LEDGER,
    "events": {
        **_SUBJECT_COLUMNS,
        "account_id": NONE,
        "event_id": NONE,
        "name": BEHAVIOUR,
        "ts": BEHAVIOUR,
        "received_at": BEHAVIOUR,
        "source": NONE,
        "properties": f"{BEHAVIOUR} (free-form: may hold any category the customer sends)",
        "context": DEVICE,
        "prop_strings": f"{BEHAVIOUR} (typed copy of properties: may hold any category the customer sends)",
        "prop_numbers": f"{BEHAVIOUR} (typed copy of properties)",
    },
    "profiles": {**_SUBJECT_COLUMNS, "account_id": NONE, "first_seen": BEHAVIOUR, "last_seen": BEHAVIOUR},
    "profile_props": {
        "account_id": NONE,
        "user_key": IDENTIFIER,
        "key": NONE,
        "value": f"{PROFILE} (free-form: may hold any category the customer sends)",
        "ts": BEHAVIOUR,
        "deleted": NONE,
    },
    "profile_ops": {
        "account_id": NONE,
        "user_key": IDENTIFIER,
        "key": NONE,
        "op": NONE,
        "operand": PROFILE,
        "ts": BEHAVIOUR,
        "event_id": NONE,
    },
    "user_aliases": {
        "account_id": NONE,
        "alias_key": IDENTIFIER,
        "canonical_key": IDENTIFIER,
        "merged_at": BEHAVIOUR,
        "version": NONE,
        "active": NONE,
    },
}

CONTROL_CATEGORIES: Final[dict[str, dict[str, str]]] = {
    "privacy_erasure_ledger": _LEDGER,
    "privacy_request_subjects": {
        "request_id": NONE,
        "identifiers": IDENTIFIER,
        "closure": IDENTIFIER,
        "payload": PROFILE,
    },
    "privacy_suppressions": {
        "account_id": NONE,
        "key_hash": PSEUDONYM,
        "request_id": NONE,
        "created_at": NONE,
        "expires_at": NONE,
    },
    "marketing_objections": {
        "account_id": NONE,
        "key_hash": PSEUDONYM,
        "request_id": NONE,
        "created_at": NONE,
    },
    "tracking_opt_outs": {
        "account_id": NONE,
        "key_hash": PSEUDONYM,
        "created_at": NONE,
        "changed_at": NONE,
        "lifted_at": NONE,
    },
    "privacy_requests": {
        "subject_hash": PSEUDONYM,
        "progress": f"{PSEUDONYM}: an export's subject keys, until its archive is erased",
        "extension_reason": "free text from the customer (should name no person)",
    },
    "privacy_notices": {
        "payload": "free text from the customer in extension reasons (should name no person)"
    },
    "identity_nodes": {
        **dict.fromkeys(("id", "account_id", "profile_id", "version"), NONE),
        "key": IDENTIFIER,
        "canonical_key": IDENTIFIER,
        "created_at": BEHAVIOUR,
    },
    "identity_edges": {
        **dict.fromkeys(("id", "account_id", "reason"), NONE),
        "a_key": IDENTIFIER,
        "b_key": IDENTIFIER,
        "created_at": BEHAVIOUR,
        "removed_at": BEHAVIOUR,
    },
    "outbox": {
        **dict.fromkeys(
            (
                "id",
                "campaign_id",
                "account_id",
                "variant",
                "channel",
                "priority",
                "status",
                "lease_until_ms",
                "claimed_by",
                "attempts",
            ),
            NONE,
        ),
        "user_key": IDENTIFIER,
        "address": f"{CONTACT} (email address, phone number, push token or webhook URL)",
        "platform": DEVICE,
        "device": f"{ONLINE_ID} (hash of a push token; salted when the subject is erased)",
        "context": f"{PROFILE} (the profile snapshot the message was personalised with)",
        "provider_id": ONLINE_ID,
        "detail": "provider's answer (may echo the address)",
        "due_ms": BEHAVIOUR,
        "sent_ms": BEHAVIOUR,
    },
    "message_consent": {
        **dict.fromkeys(("account_id", "subject_kind", "channel", "source"), NONE),
        "subject": f"{IDENTIFIER} or {CONTACT} (user key, email address, phone number or push token); after "
        f"an erasure, {PSEUDONYM} (opt-outs kept under a keyed hash)",
        "state": "communication preference",
        "updated_ms": BEHAVIOUR,
    },
    "message_interactions": {
        **dict.fromkeys(("id", "campaign_id", "variant"), NONE),
        "user_key": IDENTIFIER,
        "kind": BEHAVIOUR,
        "ts_ms": BEHAVIOUR,
    },
    "campaigns": {
        **dict.fromkeys(
            (
                "id",
                "account_id",
                "name",
                "kind",
                "channel",
                "status",
                "priority",
                "variants",
                "rules",
                "scheduled_ms",
                "cutoff_ms",
                "filled",
                "audience_size",
                "expired",
                "created_at",
                "started_ms",
                "finished_ms",
            ),
            NONE,
        ),
        "audience": f"{IDENTIFIER} (an explicit-identities audience names users; a CQL audience names none)",
    },
    "segments": {"definition": "CQL written by the customer (may name a profile value the customer chose)"},
    "aggregate_releases": {
        **dict.fromkeys(("id", "account_id", "anchor", "released_at"), NONE),
        "definition": "CQL written by the customer or the operator (may name a profile value, even one "
        "person's: what the differencing check compares against)",
        "released": "the released groups' labels (values shared by at least k users) and whether an "
        '"other" row was released',
    },
    "query_jobs": {
        "value": f"aggregates of {BEHAVIOUR} and {PROFILE} (a most frequent value may be one user's property value)"
    },
    "email_feedback": {
        **dict.fromkeys(
            ("id", "account_id", "notice_id", "campaign_id", "source", "category", "status"), NONE
        ),
        "address_hash": PSEUDONYM,
        "user_key": IDENTIFIER,
        "kind": BEHAVIOUR,
        "detail": "the receiving server's diagnostic, addresses removed",
        "ts_ms": BEHAVIOUR,
    },
    "email_suppressions": {
        **dict.fromkeys(("account_id", "source"), NONE),
        "address_hash": PSEUDONYM,
        "reason": "communication preference (a complaint) or deliverability (a bounce)",
        "created_ms": BEHAVIOUR,
    },
    "trigger_timers": {
        **dict.fromkeys(
            ("id", "campaign_id", "account_id", "firing", "status", "lease_until_ms", "claimed_by", "detail"),
            NONE,
        ),
        "user_key": IDENTIFIER,
        "event": f"{BEHAVIOUR} (the triggering event as uploaded: every category the customer sends)",
        **dict.fromkeys(("trigger_ms", "due_ms", "finished_ms"), BEHAVIOUR),
    },
    "sdk_messages": {
        **dict.fromkeys(
            (
                "id",
                "account_id",
                "campaign_id",
                "variant",
                "channel",
                "kind",
                "message_key",
                "delivered_request",
            ),
            NONE,
        ),
        "user_key": IDENTIFIER,
        "content": "the message as rendered for the user (a template may put profile values into it)",
        **dict.fromkeys(("created_ms", "expires_ms", "delivered_ms"), BEHAVIOUR),
    },
    "sdk_message_keys": {
        **dict.fromkeys(("message_id", "account_id"), NONE),
        "key": f"{IDENTIFIER} (a key of the person when the message was queued, device ids among them)",
    },
    "journeys": dict.fromkeys(
        ("id", "account_id", "name", "status", "version", "enrolled_version", "created_ms", "updated_ms"),
        NONE,
    ),
    "journey_versions": {
        **dict.fromkeys(("journey_id", "version", "created_ms"), NONE),
        "definition": "step graph written by the customer (may name a profile value the customer chose)",
    },
    "journey_positions": {
        **dict.fromkeys(
            ("id", "journey_id", "version", "account_id", "status", "lease_until_ms", "claimed_by", "detail"),
            NONE,
        ),
        "user_key": IDENTIFIER,
        **dict.fromkeys(("entry", "step", "due_ms", "entered_ms", "updated_ms"), BEHAVIOUR),
    },
    "journey_history": {
        **dict.fromkeys(("id", "position_id", "journey_id", "detail"), NONE),
        **dict.fromkeys(("step", "action", "ts_ms"), BEHAVIOUR),
    },
}


@dataclass(frozen=True)
class TopicEntry:
    """A bus topic (by the setting that names it): how long the broker keeps it, what it holds, and how an
    erasure reaches the copies in it."""

    retention_setting: str
    """The setting that says the topic's ``retention.ms`` on Kafka, in hours (the manifests set both; the
    inventory test holds them equal)."""
    holds: str
    handler: str
    erasure: str


TOPICS: Final[dict[str, TopicEntry]] = {
    "events_topic": TopicEntry(
        "events_topic_retention_hours",
        "every record ingested (envelope JSON: every category the customer sends)",
        "bus.suppression_list",
        "records naming a suppressed (erased) identifier are dropped by the loader when read; the copies stay "
        "until the topic's retention removes them",
    ),
    "dead_letter_topic": TopicEntry(
        "dead_letter_topic_retention_hours",
        "records the loader could not store, with the reason (envelope JSON: every category the customer sends)",
        "bus.suppression_list",
        "a replayed dead letter naming a suppressed (erased) identifier is dropped like any record; the copies "
        "stay until the topic's retention removes them",
    ),
}
"""Every topic a ``*_topic`` setting names; ``tests/privacy/test_inventory.py`` fails for one missing here."""


@dataclass(frozen=True)
class BackupEntry:
    """Backups of a store: the manifests' resources that take them, how long they are kept, what a restore does
    to an erasure."""

    store: str
    resources: tuple[str, ...]
    """``Kind/name`` of the manifests' objects that take or keep these backups."""
    retention: str
    erasure: str


BACKUPS: Final[tuple[BackupEntry, ...]] = (
    BackupEntry(
        "postgresql",
        ("ScheduledBackup/tapwire-pg-nightly", "ObjectStore/tapwire-pg-backups"),
        "30 days (the object store's retentionPolicy; base backups and WAL)",
        "a backup taken before an erasure still holds the subject's control-plane rows until it expires; a "
        "restore brings them back (re-run the erasures recorded since the backup)",
    ),
    BackupEntry(
        "clickhouse",
        ("CronJob/tapwire-clickhouse-backup",),
        "until deleted from the bucket (set a lifecycle rule of 30 days or less)",
        "a backup taken before an erasure still holds the subject's warehouse rows until it is deleted; a restore "
        "brings them back (re-run the erasures recorded since the backup)",
    ),
)
"""Every backup the manifests take; ``tests/privacy/test_inventory.py`` fails for one missing here."""


def _retention(settings: Settings) -> dict[str, str]:
    records = f"{settings.privacy_record_retention_days} days (24 months), then purged by the privacy worker"
    return {
        "warehouse": "until erased by a privacy request or the account's erasure; no time-based expiry",
        "privacy_requests": records,
        "privacy_audit": records,
        "privacy_notices": records,
        "privacy_request_subjects": "while the request is open; deleted when it completes",
        "privacy_suppressions": f"{settings.privacy_suppression_days} days after the erasure",
        "privacy_erasure_ledger": "for the deployment's lifetime (salted hashes only): a restore may come from any "
        "backup still kept",
        "marketing_objections": "until the customer lifts the objection",
        "tracking_opt_outs": "until the person opts back in through the client SDK (then a day as a lifted "
        "mark, so that every gateway learns of the lift)",
        "accounts": "while the account exists",
        "credentials": "while the account exists",
        "privacy_keys": "for the deployment's lifetime",
        "identity_nodes": "until erased by a privacy request or the account's erasure",
        "identity_edges": "until erased by a privacy request or the account's erasure",
        "outbox": "until erased (then pseudonymised: status and times kept for the campaign's counts)",
        "message_consent": "subscriptions until erased; opt-outs until the subject resubscribes (kept through "
        "an erasure, as keyed hashes, so messaging cannot resume)",
        "message_interactions": "until erased by a privacy request or the account's erasure",
        "campaigns": "while the account keeps the campaign; explicit recipients are removed on erasure",
        "segments": "while the account keeps the segment",
        "aggregate_releases": f"{settings.aggregate_window_days} days (TAPWIRE_AGGREGATE_WINDOW_DAYS), then deleted "
        "by the next aggregate request; deleted on erasure when the definition names the subject",
        "console_users": "while the person keeps console access (they or an admin can delete it)",
        "console_sessions": "until sign-out, a password change, or expiry (idle or session lifetime); expired "
        "sessions are purged at the account's next sign-in",
        "console_sign_in_throttle": "15 minutes after the last failure or lockout; purged at the next failure",
        "audit_log": "while the account exists; a deleted console user's entries lose their email",
        "query_jobs": "10 minutes after the count finishes (while it runs, a 30-second lease its replica renews)",
        "email_feedback": "until erased by a privacy request or the account's erasure",
        "email_suppressions": "until the customer lifts the suppression (kept through an erasure, hashed, so "
        "the address is not mailed again)",
        "trigger_timers": "until the timer fires or is cancelled, then until erased or the campaign is deleted",
        "sdk_message_keys": "with its message",
        "sdk_messages": "until the message expires (the campaign's message_ttl_s, at most 90 days) and a day "
        "more, or until erased, an objection (waiting promotional messages), or the campaign is deleted",
        "journeys": "while the account keeps the journey",
        "journey_versions": "while the account keeps the journey",
        "journey_positions": "until erased, an objection, or the journey is deleted",
        "journey_history": "with its position",
        "export_archives": f"{settings.privacy_export_retention_days:g} days, then erased by the privacy worker "
        "(an export request's archive from its completion, an account offboarding's from when it was written)",
    }


def _projection_entries(retention: dict[str, str]) -> list[dict[str, Any]]:
    """A projection's copy of its table's columns, listed as a store of its own: erased and kept with its table."""
    tables = warehouse_tables()
    entries = []
    for name, (table, copied) in warehouse_projections().items():
        kinds = dict(tables[table])
        categories = WAREHOUSE_CATEGORIES.get(table, {})
        coverage = WAREHOUSE_COVERAGE.get(table)
        entries.append(
            {
                "store": "warehouse",
                "table": name,
                "copy_of": table,
                "handler": coverage if isinstance(coverage, str) else None,
                "retention": f"with its rows in {table}: " + retention.get(table, retention["warehouse"]),
                "columns": [
                    {"name": column, "type": kinds[column], "category": categories.get(column, UNCLASSIFIED)}
                    for column in copied
                ],
            }
        )
    return entries


def build_inventory(settings: Settings) -> dict[str, Any]:
    """The inventory as the API returns it."""
    retention = _retention(settings)
    stores: list[dict[str, Any]] = []
    for table, columns in warehouse_tables().items():
        categories = WAREHOUSE_CATEGORIES.get(table, {})
        coverage = WAREHOUSE_COVERAGE.get(table)
        stores.append(
            {
                "store": "warehouse",
                "table": table,
                "handler": coverage if isinstance(coverage, str) else None,
                "retention": retention.get(table, retention["warehouse"]),
                "columns": [
                    {"name": name, "type": kind, "category": categories.get(name, UNCLASSIFIED)}
                    for name, kind in columns
                ],
            }
        )
    stores.extend(_projection_entries(retention))
    for table, columns in control_tables().items():
        coverage = CONTROL_COVERAGE.get(table)
        categories = CONTROL_CATEGORIES.get(table, {})
        default = NONE if isinstance(coverage, Exempt) else UNCLASSIFIED
        stores.append(
            {
                "store": "control",
                "table": table,
                "handler": coverage if isinstance(coverage, str) else None,
                "exempt_because": coverage.reason if isinstance(coverage, Exempt) else None,
                "retention": retention.get(table, UNCLASSIFIED),
                "columns": [
                    {"name": name, "type": kind, "category": categories.get(name, default)}
                    for name, kind in columns
                ],
            }
        )
    stores.append(
        {
            "store": "files",
            "table": "export_archives",
            "handler": "files.export_archives",
            "retention": retention["export_archives"],
            "columns": [{"name": "archive", "type": "zip of JSON", "category": "every category held"}],
        }
    )
    embedded = f"{settings.embedded_log_retention_hours:g} hours in embedded mode (TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS)"
    segment = f"{settings.topic_segment_hours:g} hours"
    for setting, topic in TOPICS.items():
        days = getattr(settings, topic.retention_setting) / 24
        stores.append(
            {
                "store": "bus",
                "table": getattr(settings, setting),
                "handler": topic.handler,
                "erasure": topic.erasure,
                "retention": f"{days:g} days on Kafka (retention.ms; plus up to {segment} until its segment "
                f"closes), {embedded}, whether or not it was read; deleted records are overwritten on disk. An "
                "erasure's completion record lists when the last copy of the subject's records is gone, and the "
                "erasure completes only then",
                "columns": [{"name": "value", "type": "envelope JSON", "category": topic.holds}],
            }
        )
    for backup in BACKUPS:
        stores.append(
            {
                "store": "backups",
                "table": backup.store,
                "handler": None,
                "erasure": backup.erasure,
                "retention": backup.retention,
                "columns": [
                    {"name": "backup", "type": ", ".join(backup.resources), "category": "every category held"}
                ],
            }
        )
    return {"status": "success", "stores": stores}
