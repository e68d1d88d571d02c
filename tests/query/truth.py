"""Ground truth for CQL: the query semantics of docs/query.md evaluated in plain Python over the records.

Nothing here touches ClickHouse or the compiler's SQL: it reads the generated upload records (deduplicated
the way event ids deduplicate them), applies identity aliases, and walks the AST.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tapwire_query.cql import ast

UTC = dt.UTC


@dataclass(frozen=True)
class Event:
    user: str
    name: str
    ts_ms: int
    props: dict[str, Any]
    key: bytes

    @property
    def day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.ts_ms / 1000, UTC).date()


@dataclass
class Truth:
    """Users, events, profile values and first/last seen of one account, after identity merges."""

    aliases: dict[str, str]
    today: dt.date
    events: list[Event] = field(default_factory=list)
    profile_sets: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    profile_ops: list[tuple[str, str, int, float]] = field(default_factory=list)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls, records: Iterable[dict[str, Any]], *, aliases: dict[str, str], today: dt.date
    ) -> Truth:
        truth = cls(aliases=aliases, today=today)
        keys: set[bytes] = set()
        for record in records:
            user = "i:" + record["identity"]
            ts_ms = record["ts"] * 1000
            first, last = truth.seen.get(user, (ts_ms, ts_ms))
            truth.seen[user] = (min(first, ts_ms), max(last, ts_ms))
            if record["type"] == "profile":
                for key, value in record["profileData"].items():
                    if (
                        isinstance(value, dict)
                        and len(value) == 1
                        and next(iter(value)) in ("$incr", "$decr")
                    ):
                        ((op, amount),) = value.items()
                        truth.profile_ops.append((user, key, ts_ms, amount if op == "$incr" else -amount))
                        continue
                    old = truth.profile_sets.get((user, key))
                    if old is None or old[0] <= ts_ms:
                        truth.profile_sets[(user, key)] = (ts_ms, value)
                continue
            key = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
            if key in keys:
                continue
            keys.add(key)
            truth.events.append(Event(user, record["evtName"], ts_ms, record["evtData"], key))
        return truth

    def canon(self, user: str) -> str:
        return self.aliases.get(user, user)

    def everyone(self) -> set[str]:
        return {self.canon(user) for user in self.seen}

    # Values.

    def profile_value(self, user: str, key: str) -> tuple[bool, Any]:
        """Latest set across the user's keys, then every numeric operator at or after it added on."""
        raws = [raw for raw in self.seen if self.canon(raw) == user]
        best: tuple[int, Any] | None = None
        for raw in raws:
            found = self.profile_sets.get((raw, key))
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        since = best[0] if best is not None else None
        deltas = [
            d
            for (raw, k, ts, d) in self.profile_ops
            if k == key and raw in raws and (since is None or ts >= since)
        ]
        value: Any = best[1] if best is not None else None
        if deltas:
            start = value if type(value) in (int, float) else 0
            value = start + sum(deltas)
        if value is None:
            return False, None
        return True, value

    # Queries.

    def users(self, query: ast.CqlQuery) -> set[str]:
        result = self.everyone()
        base = query.base_event()
        if base is not None:
            result &= self.did([base], ast.CountThreshold())
        if query.common_profile_properties is not None:
            result &= self.common_profile(query.common_profile_properties)
        if query.advanced_query is not None:
            result &= self.advanced(query.advanced_query)
        for condition in query.conditions:
            result &= self.condition(condition)
        return result

    def common_profile(self, common: ast.CommonProfileProperties) -> set[str]:
        result = self.everyone()
        for flt in (*common.profile_fields, *common.demographics, *common.technographics):
            result &= self.profile(flt)
        if common.geo_fields:
            union: set[str] = set()
            for path in common.geo_fields:
                union |= self.geo(path)
            result &= union
        return result

    def advanced(self, advanced: ast.AdvancedQuery) -> set[str]:
        result = self.everyone()
        for sub in advanced.did_all:
            result &= self.did([sub], sub.threshold)
        if advanced.did_any is not None:
            any_ = advanced.did_any
            if any_.operator is None or any_.value is None:
                union: set[str] = set()
                for sub in any_.any_events:
                    union |= self.did([sub], sub.threshold)
                result &= union
            else:
                threshold = ast.CountThreshold(operator=any_.operator, value=any_.value)
                result &= self.did(any_.any_events, threshold)
        for sub in advanced.did_none:
            result -= self.did([sub], sub.threshold)
        return result

    def event_rows(self, query: ast.CqlQuery) -> list[Event]:
        base = query.base_event()
        assert base is not None
        rest = query.model_copy(
            update={"event_name": None, "from_": None, "to": None, "event_properties": ()}
        )
        allowed = self.users(rest)
        return [e for e in self.events if self.event_matches(e, base) and self.canon(e.user) in allowed]

    def condition(self, node: ast.Condition) -> set[str]:
        if isinstance(node, ast.AllOf | ast.AnyOf | ast.NotOf):
            return self.combined(node)
        if isinstance(node, ast.Did):
            return self.did([node.did], node.did.threshold)
        if isinstance(node, ast.DidNot):
            return self.everyone() - self.did([node.did_not], ast.CountThreshold())
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node.aggregate)
        if isinstance(node, ast.Profile):
            return self.profile(node.profile)
        if isinstance(node, ast.FirstSeen | ast.LastSeen):
            return self.seen_within(node)
        if isinstance(node, ast.Funnel):
            return self.funnel(node.funnel)
        return self.retention(node.retention)

    def combined(self, node: ast.AllOf | ast.AnyOf | ast.NotOf) -> set[str]:
        if isinstance(node, ast.AllOf):
            result = self.everyone()
            for part in node.all:
                result &= self.condition(part)
            return result
        if isinstance(node, ast.AnyOf):
            union: set[str] = set()
            for part in node.any:
                union |= self.condition(part)
            return union
        return self.everyone() - self.condition(node.not_)

    def seen_within(self, node: ast.FirstSeen | ast.LastSeen) -> set[str]:
        """Users first (or last) seen within the node's window, across the keys merged into them."""
        window = node.first_seen if isinstance(node, ast.FirstSeen) else node.last_seen
        index = 0 if isinstance(node, ast.FirstSeen) else 1
        spans: dict[str, list[int]] = {}
        for raw, (first, last) in self.seen.items():
            span = spans.setdefault(self.canon(raw), [first, last])
            span[0], span[1] = min(span[0], first), max(span[1], last)
        return {
            user
            for user, span in spans.items()
            if window.from_ <= dt.datetime.fromtimestamp(span[index] / 1000, UTC).date() <= window.to
        }

    def did(self, events: Sequence[ast.EventFilter], threshold: ast.CountThreshold) -> set[str]:
        counts: dict[str, int] = defaultdict(int)
        for event in self.events:
            if any(self.event_matches(event, spec) for spec in events):
                counts[self.canon(event.user)] += 1
        return {user for user in self.everyone() if threshold.holds(counts.get(user, 0))}

    def aggregate(self, spec: ast.AggregateSpec) -> set[str]:
        values: dict[str, list[float]] = defaultdict(list)
        for event in self.events:
            if not self.event_matches(event, spec):
                continue
            number = as_number(event.props.get(spec.property))
            if number is not None:
                values[self.canon(event.user)].append(number)
        result = set()
        for user, xs in values.items():
            total = {"sum": sum(xs), "avg": sum(xs) / len(xs), "min": min(xs), "max": max(xs)}[spec.function]
            if compare(spec.operator, total, spec.value):
                result.add(user)
        return result

    def profile(self, flt: ast.PropertyFilter) -> set[str]:
        if flt.operator == "does_not_exist":
            return self.everyone() - self.profile(flt.model_copy(update={"operator": "exists"}))
        result = set()
        for user in self.everyone():
            present, value = self.profile_value(user, flt.name)
            if present and value_matches(flt, True, value):
                result.add(user)
        return result

    def geo(self, path: Sequence[str]) -> set[str]:
        result = self.everyone()
        for key, part in zip(("Country", "Region", "City"), path, strict=False):
            result &= self.profile(ast.PropertyFilter.model_validate({"name": key, "value": part}))
        return result

    def funnel(self, spec: ast.FunnelSpec) -> set[str]:
        per_user: dict[str, list[Event]] = defaultdict(list)
        for event in self.events:
            if spec.from_ <= event.day <= spec.to:
                per_user[self.canon(event.user)].append(event)
        window_ms = spec.within_seconds * 1000
        result = set()
        for user, evs in per_user.items():
            evs.sort(key=lambda e: e.ts_ms)
            for start in evs:
                if not step_matches(start, spec.steps[0]):
                    continue
                at, level = start.ts_ms, 1
                for event in evs:
                    if level == len(spec.steps):
                        break
                    if at < event.ts_ms <= start.ts_ms + window_ms and step_matches(event, spec.steps[level]):
                        at, level = event.ts_ms, level + 1
                if level == len(spec.steps):
                    result.add(user)
                    break
        return result

    def retention(self, spec: ast.RetentionSpec) -> set[str]:
        result = self.did([spec.first], ast.CountThreshold())
        for returned in spec.returned:
            result &= self.did([returned], ast.CountThreshold())
        return result

    def event_matches(self, event: Event, spec: ast.EventFilter) -> bool:
        first, last = spec.window(self.today)
        if event.name != spec.event_name or not first <= event.day <= last:
            return False
        if not all(property_matches(flt, event.props) for flt in spec.event_properties):
            return False
        return all(self.session_matches(flt, event) for flt in spec.session_properties)

    @staticmethod
    def session_matches(flt: ast.PropertyFilter, event: Event) -> bool:
        assert flt.name == "time_of_day", "generated events carry no session context"
        moment = dt.datetime.fromtimestamp(event.ts_ms / 1000, UTC)
        minute = moment.hour * 60 + moment.minute

        def parse(text: str | float) -> int:
            hours, minutes = str(text).split(":")
            return int(hours) * 60 + int(minutes)

        return parse(flt.values[0]) <= minute <= parse(flt.values[1])


def step_matches(event: Event, step: ast.FunnelStep) -> bool:
    return event.name == step.event_name and all(
        property_matches(f, event.props) for f in step.event_properties
    )


def as_text(value: Any) -> str | None:
    if type(value) is bool:
        return "True" if value else "False"
    return value if type(value) is str else None


def as_number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def compare(operator: str, left: float, right: float) -> bool:
    return {
        "equals": left == right,
        "greater_than": left > right,
        "greater_than_equals": left >= right,
        "less_than": left < right,
        "less_than_equals": left <= right,
    }[operator]


def property_matches(flt: ast.PropertyFilter, props: dict[str, Any]) -> bool:
    if flt.name.startswith("Items.") and len(flt.name) > len("Items.") and flt.name not in props:
        items = props.get("Items")
        if not isinstance(items, list):
            return False
        key = flt.name[len("Items.") :]
        return any(
            value_matches(flt, isinstance(item, dict) and item.get(key) is not None, _get(item, key))
            for item in items
        )
    value = props.get(flt.name)
    return value_matches(flt, value is not None, value)


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else None


def value_matches(flt: ast.PropertyFilter, present: bool, value: Any) -> bool:
    op = flt.operator
    if op == "exists":
        return present
    if op == "does_not_exist":
        return not present
    text, number = as_text(value), as_number(value)
    if op in ("equals", "not_equals"):
        hit = any(
            (isinstance(v, str) and text == v) or (isinstance(v, float) and number == v) for v in flt.values
        )
        return hit if op == "equals" else present and not hit
    if op in ("contains", "does_not_contain"):
        hit = type(value) is str and any(str(v) in value for v in flt.values)
        return hit if op == "contains" else present and not hit
    return number is not None and any(compare(op, number, float(v)) for v in flt.values)
