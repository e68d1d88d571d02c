"""Profile property semantics: plain sets (latest ``ts`` wins) and CleverTap's value operators.

Operators are stored as their own rows (``profile_ops``) and folded onto the latest set when a profile is
read. Storing the operation rather than its result keeps replays harmless — a redelivered ``$incr`` has the
same event id and deduplicates — where a read-modify-write at load time would count it twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

Operator = Literal["$add", "$remove", "$incr", "$decr"]
OPERATORS: Final[frozenset[str]] = frozenset({"$add", "$remove", "$incr", "$decr"})
DELETE: Final = "$delete"
MAX_MULTI_VALUES: Final = 100


@dataclass(frozen=True, slots=True)
class ProfileOp:
    op: Operator
    operand: Any
    ts_ms: int
    event_id: str


def classify(value: Any) -> Literal["set", "delete", "op"]:
    """How a ``profileData`` value is stored."""
    if type(value) is dict and len(value) == 1:
        (key,) = value
        if key == DELETE:
            return "delete"
        if key in OPERATORS:
            return "op"
    return "set"


def fold(base: Any, base_ts_ms: int | None, ops: Iterable[ProfileOp]) -> Any:
    """The property's value: ``base`` (None when deleted or never set) with every later operator applied.

    ``ops`` must be ordered by (ts, event_id). An operator at the same ``ts`` as the set applies after it.
    """
    value = base
    for op in ops:
        if base_ts_ms is not None and op.ts_ms < base_ts_ms:
            continue
        value = apply(value, op.op, op.operand)
    return value


def apply(value: Any, op: Operator, operand: Any) -> Any:
    if op in ("$incr", "$decr"):
        current = value if type(value) in (int, float) else 0
        return current + operand if op == "$incr" else current - operand
    items = operand if type(operand) is list else [operand]
    current_list = _as_list(value)
    if op == "$add":
        for item in items:
            if item in current_list:
                current_list.remove(item)
            current_list.append(item)
        # The oldest values go first when the list outgrows its cap.
        return current_list[-MAX_MULTI_VALUES:]
    return [item for item in current_list if item not in items]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if type(value) is list:
        return list(value)
    return [value]
