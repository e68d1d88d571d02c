"""The body of an aggregate request: a CQL query (the population) and an optional grouping.

``{"event_name": "Charged", "from": 20261101, "to": 20261130, "group_by": {"profile_property": "Country"}}``;
``group_by`` takes exactly one of ``profile_property`` (a profile property's current value), ``event_property``
(a property of the base event) or ``period`` (``day``, ``week``, ``month`` of the base event).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from tapwire_query.cql import CqlQuery, Grouping
from tapwire_query.cql.ast import Name, StrictModel
from tapwire_query.cql.parse import parse_as


class GroupBy(StrictModel):
    profile_property: Name | None = None
    event_property: Name | None = None
    period: Literal["day", "week", "month"] | None = None

    @model_validator(mode="after")
    def _one(self) -> GroupBy:
        given = [v for v in (self.profile_property, self.event_property, self.period) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of profile_property, event_property or period")
        return self

    def grouping(self) -> Grouping:
        if self.profile_property is not None:
            return Grouping("profile_property", self.profile_property)
        if self.event_property is not None:
            return Grouping("event_property", self.event_property)
        assert self.period is not None
        return Grouping("period", self.period)


class AggregateRequest(CqlQuery):
    group_by: GroupBy | None = None

    def grouping(self) -> Grouping | None:
        return self.group_by.grouping() if self.group_by is not None else None


def parse_request(body: Any) -> AggregateRequest:
    """``body`` validated; raises ``CqlError`` naming the bad field."""
    return parse_as(AggregateRequest, body)
