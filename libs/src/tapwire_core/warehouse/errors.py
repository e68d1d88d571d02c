"""Which ClickHouse failures mean "try again later" rather than "this statement or its data is wrong".

The difference decides what happens to ingested records: the loader retries a batch that failed for a transient
reason, and looks for bad records (by halves, down to single ones, which it dead-letters) only otherwise. A
transient code missing here turns a short outage into dead-lettered healthy records; a code wrongly here keeps
one bad batch retrying, which shows as loader lag and loses nothing. So a code whose meaning is "the server or
its cluster cannot do it now", whatever the statement, belongs here.

Codes and names follow ClickHouse's ``src/Common/ErrorCodes.cpp`` (a test checks them against the engine's
``errorCodeToName``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class TransientKind:
    """A family of failures that pass by themselves (or by an operator's hand), with no record at fault."""

    name: str
    reason: str
    codes: Mapping[int, str]
    """ClickHouse error code → its symbolic name."""


TRANSIENT_KINDS: Final[tuple[TransientKind, ...]] = (
    TransientKind(
        "timeout",
        "the statement ran out of time waiting for the server, a lock or a slot; it may finish when the "
        "server is less busy",
        {
            159: "TIMEOUT_EXCEEDED",
            209: "SOCKET_TIMEOUT",
            473: "DEADLOCK_AVOIDED",
            1017: "ASYNC_INSERT_FLUSH_TIMEOUT",
            1019: "QUERY_SLOT_ACQUISITION_TIMEOUT",
            1020: "MEMORY_RESERVATION_ACQUISITION_TIMEOUT",
        },
    ),
    TransientKind(
        "overload",
        "the server refuses new work until running work finishes: too many queries, connections, parts "
        "waiting for merges, mutations or pending bytes; a quota interval used up",
        {
            201: "QUOTA_EXCEEDED",
            202: "TOO_MANY_SIMULTANEOUS_QUERIES",
            203: "NO_FREE_CONNECTION",
            252: "TOO_MANY_PARTS",
            364: "RECEIVED_ERROR_TOO_MANY_REQUESTS",
            384: "PART_IS_TEMPORARILY_LOCKED",
            574: "DISTRIBUTED_TOO_MANY_PENDING_BYTES",
            692: "TOO_MANY_MUTATIONS",
            738: "PART_IS_LOCKED",
            745: "SERVER_OVERLOADED",
            749: "TCP_CONNECTION_LIMIT_REACHED",
            762: "HTTP_CONNECTION_LIMIT_REACHED",
        },
    ),
    TransientKind(
        "memory",
        "the server (or the query's share of it) was out of memory at that moment; other queries free it",
        {
            173: "CANNOT_ALLOCATE_MEMORY",
            241: "MEMORY_LIMIT_EXCEEDED",
            777: "MEMORY_RESERVATION_KILLED",
            778: "MEMORY_RESERVATION_FAILED",
        },
    ),
    TransientKind(
        "network",
        "the server could not reach another node (shard, replica, peer) or lost the connection to it",
        {
            95: "CANNOT_READ_FROM_SOCKET",
            96: "CANNOT_WRITE_TO_SOCKET",
            198: "DNS_ERROR",
            210: "NETWORK_ERROR",
            265: "NO_AVAILABLE_REPLICA",
            279: "ALL_CONNECTION_TRIES_FAILED",
            297: "SHARD_HAS_NO_CONNECTIONS",
            410: "EXTERNAL_SERVER_IS_NOT_RESPONDING",
            519: "NO_REMOTE_SHARD_AVAILABLE",
            904: "TOO_MANY_UNAVAILABLE_SHARDS",
            1018: "EXCHANGE_PEER_DISCONNECTED",
        },
    ),
    TransientKind(
        "replication",
        "replicas or (Zoo)Keeper cannot agree right now: a lost coordination session, a read-only replica, "
        "too few live replicas for the quorum, a table being restarted",
        {
            225: "NO_ZOOKEEPER",
            242: "TABLE_IS_READ_ONLY",
            244: "UNEXPECTED_ZOOKEEPER_ERROR",
            254: "NO_ACTIVE_REPLICAS",
            285: "TOO_FEW_LIVE_REPLICAS",
            286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
            289: "REPLICA_IS_NOT_IN_QUORUM",
            369: "ALL_REPLICAS_ARE_STALE",
            415: "ALL_REPLICAS_LOST",
            416: "REPLICA_STATUS_CHANGED",
            529: "NOT_A_LEADER",
            568: "RAFT_ERROR",
            571: "DATABASE_REPLICATION_FAILED",
            733: "TABLE_IS_BEING_RESTARTED",
            999: "KEEPER_EXCEPTION",
        },
    ),
    TransientKind(
        "interrupted",
        "the statement was stopped before it completed (server shutting down, query cancelled, insert whose "
        "outcome is unknown); repeating it with the same deduplication token is safe",
        {
            236: "ABORTED",
            319: "UNKNOWN_STATUS_OF_INSERT",
            394: "QUERY_WAS_CANCELLED",
            677: "THREAD_WAS_CANCELED",
            735: "QUERY_WAS_CANCELLED_BY_CLIENT",
        },
    ),
    TransientKind(
        "resources",
        "the host is short of a system resource (disk space, file descriptors, threads) until an operator or "
        "other work frees it",
        {
            243: "NOT_ENOUGH_SPACE",
            425: "SYSTEM_ERROR",
            439: "CANNOT_SCHEDULE_TASK",
        },
    ),
    TransientKind(
        "access",
        "the server refuses this user or its grants (a deployment fault, not any record's): records wait for "
        "an operator instead of being dead-lettered one by one",
        {
            164: "READONLY",
            192: "UNKNOWN_USER",
            193: "WRONG_PASSWORD",
            194: "REQUIRED_PASSWORD",
            195: "IP_ADDRESS_NOT_ALLOWED",
            291: "DATABASE_ACCESS_DENIED",
            497: "ACCESS_DENIED",
            516: "AUTHENTICATION_FAILED",
        },
    ),
)

RETRYABLE_CODES: Final[frozenset[int]] = frozenset(code for kind in TRANSIENT_KINDS for code in kind.codes)

# HTTP statuses a proxy or load balancer in front of ClickHouse answers when it cannot reach the server; they
# carry no ClickHouse code. (429, 503 and 504 are retried by clickhouse-connect and arrive as OperationalError.)
PROXY_STATUSES: Final[frozenset[int]] = frozenset({502, 503, 504})
_HTTP_STATUS: Final = re.compile(r"\bHTTP status (\d{3})\b")

PROXY = TransientKind(
    "proxy",
    "a proxy in front of ClickHouse answered that it could not reach the server",
    {},
)


def transient_kind(code: int | None, message: str = "") -> TransientKind | None:
    """The kind of transient failure ClickHouse's ``code`` (or, without one, the HTTP status named in
    ``message``) is, or None when the statement or its data is at fault."""
    if code is not None:
        return next((kind for kind in TRANSIENT_KINDS if code in kind.codes), None)
    status = _HTTP_STATUS.search(message)
    if status is not None and int(status.group(1)) in PROXY_STATUSES:
        return PROXY
    return None
