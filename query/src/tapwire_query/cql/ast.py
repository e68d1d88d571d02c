"""The query AST: frozen pydantic models for CQL and tapwire's native extensions.

Validation happens here, once: operators belong to a closed set, numeric operators get numbers, every date
is a calendar date, every list is bounded. A model that validated compiles; the compiler never re-checks
user input. JSON booleans are accepted where CQL expects the strings ``"True"`` / ``"False"``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from tapwire_query.dates import QueryDate

MAX_NAME_CHARS = 512
MAX_VALUES = 100
MAX_CONDITIONS = 50

StringOperator = Literal["equals", "not_equals", "contains", "does_not_contain", "exists", "does_not_exist"]
NumericOperator = Literal["greater_than", "greater_than_equals", "less_than", "less_than_equals"]
Operator = StringOperator | NumericOperator
CountOperator = Literal["equals", "greater_than", "greater_than_equals", "less_than", "less_than_equals"]

NUMERIC_OPERATORS: frozenset[str] = frozenset(
    {"greater_than", "greater_than_equals", "less_than", "less_than_equals"}
)
VALUELESS_OPERATORS: frozenset[str] = frozenset({"exists", "does_not_exist"})
TEXT_OPERATORS: frozenset[str] = frozenset({"contains", "does_not_contain"})

Scalar = str | float
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class StrictModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _scalar(value: Any) -> Scalar:
    # bool before int: CQL spells booleans as the strings "True"/"False".
    if type(value) is bool:
        return "True" if value else "False"
    if type(value) is str:
        return value
    if type(value) in (int, float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("numbers must be finite")
        return number
    raise ValueError("must be a string, a number, a boolean or a list of them")


class PropertyFilter(StrictModel):
    """``{"name": …, "operator": …, "value": …}``; a list value means any of them (OR)."""

    name: Name
    operator: Operator = "equals"
    values: tuple[Scalar, ...] = Field(default=(), alias="value")

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        # A third-party client spells the pair property_name/property_value.
        if isinstance(data, dict) and ("property_name" in data or "property_value" in data):
            data = dict(data)
            if "property_name" in data:
                data.setdefault("name", data.pop("property_name"))
            if "property_value" in data:
                data.setdefault("value", data.pop("property_value"))
        return data

    @field_validator("values", mode="before")
    @classmethod
    def _values(cls, value: Any) -> tuple[Scalar, ...]:
        items = value if isinstance(value, list | tuple) else [value]
        if len(items) > MAX_VALUES:
            raise ValueError(f"at most {MAX_VALUES} values")
        return tuple(_scalar(item) for item in items)

    @model_validator(mode="after")
    def _fits_operator(self) -> PropertyFilter:
        if self.operator in VALUELESS_OPERATORS:
            return self
        if not self.values:
            raise ValueError(f"operator {self.operator} needs a value")
        if self.operator in NUMERIC_OPERATORS and not all(isinstance(v, float) for v in self.values):
            raise ValueError(f"operator {self.operator} needs numeric values")
        if self.operator in TEXT_OPERATORS and not all(isinstance(v, str) for v in self.values):
            raise ValueError(f"operator {self.operator} needs string values")
        return self


class CountThreshold(StrictModel):
    """How many matching events a user must have: ``{"operator": "greater_than_equals", "value": 3}``."""

    operator: CountOperator = "greater_than_equals"
    value: int = Field(default=1, ge=0, le=1_000_000_000)

    def holds(self, count: int) -> bool:
        """The threshold applied to ``count`` (used to decide whether users without events qualify)."""
        return {
            "equals": count == self.value,
            "greater_than": count > self.value,
            "greater_than_equals": count >= self.value,
            "less_than": count < self.value,
            "less_than_equals": count <= self.value,
        }[self.operator]


def _props_as_event_properties(data: Any) -> Any:
    """The official Node client's README spells ``event_properties`` as ``props``: accept both."""
    if isinstance(data, dict) and "props" in data:
        data = dict(data)
        props = data.pop("props")
        data.setdefault("event_properties", props)
    return data


def _check_from_to(from_: QueryDate | None, to: QueryDate | None) -> None:
    """A date window names both ends or neither, in order."""
    if (from_ is None) != (to is None):
        raise ValueError("give both from and to, or neither")
    if from_ is not None and to is not None and from_ > to:
        raise ValueError("from must not be after to")


class EventFilter(StrictModel):
    """Events of one name in a date window, narrowed by event and session property filters."""

    event_name: Name
    from_: QueryDate | None = Field(default=None, alias="from")
    to: QueryDate | None = None
    last_days: int | None = Field(default=None, ge=1, le=3660)
    event_properties: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    session_properties: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)

    @model_validator(mode="before")
    @classmethod
    def _props_alias(cls, data: Any) -> Any:
        return _props_as_event_properties(data)

    @model_validator(mode="after")
    def _window(self) -> EventFilter:
        _check_from_to(self.from_, self.to)
        if self.last_days is not None and self.from_ is not None:
            raise ValueError("give either from/to or last_days")
        return self

    def window(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """The inclusive UTC date range; without one, the 365 days ending ``today`` (CleverTap's default)."""
        if self.from_ is not None and self.to is not None:
            return self.from_, self.to
        days = self.last_days or 365
        return today - dt.timedelta(days=days - 1), today


class CountedEvent(EventFilter):
    """An event filter with an optional count threshold (``operator``/``value``, default: at least once)."""

    operator: CountOperator = "greater_than_equals"
    value: int = Field(default=1, ge=0, le=1_000_000_000)

    @property
    def threshold(self) -> CountThreshold:
        return CountThreshold(operator=self.operator, value=self.value)


class DidAny(StrictModel):
    any_events: tuple[CountedEvent, ...] = Field(min_length=1, max_length=MAX_CONDITIONS)
    operator: CountOperator | None = None
    value: int | None = Field(default=None, ge=0, le=1_000_000_000)

    @model_validator(mode="after")
    def _pair(self) -> DidAny:
        if (self.operator is None) != (self.value is None):
            raise ValueError("give both operator and value, or neither")
        return self


class AdvancedQuery(StrictModel):
    did_all: tuple[CountedEvent, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    did_any: DidAny | None = None
    did_none: tuple[CountedEvent, ...] = Field(default=(), max_length=MAX_CONDITIONS)


class CommonProfileProperties(StrictModel):
    """Profile conditions. ``geo_fields`` paths match the profile's Country, Region and City in order."""

    profile_fields: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    geo_fields: tuple[tuple[Name, ...], ...] = Field(default=(), max_length=MAX_VALUES)
    demographics: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    technographics: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)

    @field_validator("geo_fields")
    @classmethod
    def _geo_depth(cls, value: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if any(not 1 <= len(path) <= 3 for path in value):
            raise ValueError("each geo path has 1 to 3 parts: [country, region, city]")
        return value


# Native extensions: a condition is a one-key object naming its kind.


class DateRange(StrictModel):
    from_: QueryDate = Field(alias="from")
    to: QueryDate

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self


class AggregateSpec(EventFilter):
    """A user's ``function`` of numeric event property ``property`` over matching events, compared to ``value``."""

    property: Name
    function: Literal["sum", "avg", "min", "max"] = "sum"
    operator: Literal["equals", "greater_than", "greater_than_equals", "less_than", "less_than_equals"]
    value: float

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: Any) -> float:
        if type(value) not in (int, float):
            raise ValueError("must be a number")
        return float(value)


class FunnelStep(StrictModel):
    event_name: Name
    event_properties: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)


class FunnelSpec(StrictModel):
    """Users who did ``steps`` in order (strictly increasing times), the last within ``within_seconds`` of
    the first, with every step inside the date window."""

    steps: tuple[FunnelStep, ...] = Field(min_length=2, max_length=10)
    within_seconds: int = Field(ge=1, le=90 * 86_400)
    from_: QueryDate = Field(alias="from")
    to: QueryDate

    @model_validator(mode="after")
    def _ordered(self) -> FunnelSpec:
        if self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self


class RetentionSpec(StrictModel):
    """Users who did ``first`` in its window and then every event of ``returned`` in each one's window."""

    first: EventFilter
    returned: tuple[EventFilter, ...] = Field(min_length=1, max_length=30)


class AllOf(StrictModel):
    all: tuple[Condition, ...] = Field(min_length=1, max_length=MAX_CONDITIONS)


class AnyOf(StrictModel):
    any: tuple[Condition, ...] = Field(min_length=1, max_length=MAX_CONDITIONS)


class NotOf(StrictModel):
    not_: Condition = Field(alias="not")


class Did(StrictModel):
    did: CountedEvent


class DidNot(StrictModel):
    did_not: EventFilter


class Aggregate(StrictModel):
    aggregate: AggregateSpec


class Profile(StrictModel):
    profile: PropertyFilter


class FirstSeen(StrictModel):
    first_seen: DateRange


class LastSeen(StrictModel):
    last_seen: DateRange


class Funnel(StrictModel):
    funnel: FunnelSpec


class Retention(StrictModel):
    retention: RetentionSpec


_KINDS = (
    "all",
    "any",
    "not",
    "did",
    "did_not",
    "aggregate",
    "profile",
    "first_seen",
    "last_seen",
    "funnel",
    "retention",
)


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if len(value) == 1:
            (key,) = value
            return str(key)
        return None
    return _TAG_OF.get(type(value))


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[Did, Tag("did")]
    | Annotated[DidNot, Tag("did_not")]
    | Annotated[Aggregate, Tag("aggregate")]
    | Annotated[Profile, Tag("profile")]
    | Annotated[FirstSeen, Tag("first_seen")]
    | Annotated[LastSeen, Tag("last_seen")]
    | Annotated[Funnel, Tag("funnel")]
    | Annotated[Retention, Tag("retention")],
    Discriminator(
        _kind,
        custom_error_type="condition_kind",
        custom_error_message=f"a condition is an object with exactly one key, one of {', '.join(_KINDS)}",
    ),
]


class CqlQuery(StrictModel):
    """A whole query: CQL's base event, property filters and advanced filters, plus native ``conditions``.

    Every part is optional; all given parts must hold (AND). A query with no part at all matches every
    known user of the account.
    """

    event_name: Name | None = None
    from_: QueryDate | None = Field(default=None, alias="from")
    to: QueryDate | None = None
    event_properties: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    session_properties: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    common_profile_properties: CommonProfileProperties | None = None
    advanced_query: AdvancedQuery | None = None
    conditions: tuple[Condition, ...] = Field(default=(), max_length=MAX_CONDITIONS)

    @model_validator(mode="before")
    @classmethod
    def _props_alias(cls, data: Any) -> Any:
        return _props_as_event_properties(data)

    @model_validator(mode="after")
    def _base(self) -> CqlQuery:
        _check_from_to(self.from_, self.to)
        if self.event_name is None and (self.event_properties or self.session_properties):
            raise ValueError("event_properties and session_properties need an event_name")
        return self

    def base_event(self) -> EventFilter | None:
        """The base query as an event filter, or None when the query names no event."""
        if self.event_name is None:
            return None
        # Already validated as part of this query: constructing skips re-parsing the dates.
        return EventFilter.model_construct(
            event_name=self.event_name,
            from_=self.from_,
            to=self.to,
            last_days=None,
            event_properties=self.event_properties,
            session_properties=self.session_properties,
        )


_TAG_OF: dict[type, str] = {
    AllOf: "all",
    AnyOf: "any",
    NotOf: "not",
    Did: "did",
    DidNot: "did_not",
    Aggregate: "aggregate",
    Profile: "profile",
    FirstSeen: "first_seen",
    LastSeen: "last_seen",
    Funnel: "funnel",
    Retention: "retention",
}

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
CqlQuery.model_rebuild()
