"""The trigger of a behaviour-triggered campaign: which event starts it, and what must hold before it sends.

A request's ``trigger`` object is validated into a frozen :class:`TriggerSpec` (pydantic, unknown keys
refused), stored as the campaign's audience (``{"trigger": …}``) and read back with
:meth:`TriggerSpec.from_stored`. Property filters take the CQL filter shape (``{name, operator, value}``), so a
trigger filter means what the same filter means in a segment.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from tapwire_messaging.request_models import StrictModel, describe_errors, segment_audience
from tapwire_query.cql.ast import MAX_CONDITIONS, Name, PropertyFilter

MAX_DELAY_S = 90 * 86400
"""The longest wait a trigger may ask for (delay or abandonment window): 90 days."""


class NotDone(StrictModel):
    """Abandonment: send only when the user did not do ``event`` (matching ``filters``) within ``within_s``
    seconds after the triggering event."""

    event: Name
    within_s: float = Field(gt=0, le=MAX_DELAY_S)
    filters: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)


class Once(StrictModel):
    mode: Literal["once"]


class EveryTime(StrictModel):
    mode: Literal["every_time"]


class PerWindow(StrictModel):
    """At most ``limit`` messages of this campaign per user in any rolling ``window_s`` seconds."""

    mode: Literal["window"]
    limit: int = Field(ge=1, le=1000)
    window_s: float = Field(gt=0, le=366 * 86400)


Frequency = Annotated[Once | EveryTime | PerWindow, Field(discriminator="mode")]


class TriggerSpec(StrictModel):
    """``event`` with ``filters`` starts a firing; the message leaves ``delay_s`` later (plus ``not_done``'s
    window, at whose end the abandonment is checked), if the user was in ``segment_id`` / ``where`` when the
    event arrived and the campaign's ``frequency`` allows it."""

    event: Name
    filters: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)
    not_done: NotDone | None = None
    segment_id: str | None = Field(default=None, min_length=1, max_length=64)
    where: dict[str, Any] | None = None
    delay_s: float = Field(default=0, ge=0, le=MAX_DELAY_S)
    frequency: Frequency = Field(default_factory=lambda: Once(mode="once"))

    @model_validator(mode="after")
    def _one_segment(self) -> TriggerSpec:
        if self.segment_id is not None and self.where is not None:
            raise ValueError("give segment_id or where (the segment the user must be in), not both")
        return self

    @property
    def wait_ms(self) -> int:
        """From the triggering event to the message (and to the abandonment check)."""
        window = self.not_done.within_s if self.not_done is not None else 0.0
        return int((self.delay_s + window) * 1000)

    @property
    def repeats(self) -> bool:
        """Whether a user may get this campaign's message more than once."""
        return not isinstance(self.frequency, Once)

    def segment(self) -> dict[str, Any] | None:
        """The audience the user must be in at trigger time, in the audience resolver's shape, or None."""
        return segment_audience(self.segment_id, self.where)


class TriggerRefused(ValueError):
    """A ``trigger`` object that does not validate; the message names each bad field."""


def parse_trigger(raw: Any) -> TriggerSpec:
    """The trigger of a campaign request. Raises :class:`TriggerRefused` naming the bad fields."""
    if not isinstance(raw, dict):
        raise TriggerRefused("trigger must be an object with at least an event")
    try:
        return TriggerSpec.model_validate(raw)
    except ValidationError as exc:
        raise TriggerRefused(describe_errors(exc, root="trigger", tags=_FREQUENCY_TAGS)) from exc


# The union tags of the frequency rules, left out of the refusal's field paths.
_FREQUENCY_TAGS = frozenset({"once", "every_time", "window"})
