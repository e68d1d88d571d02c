"""A journey's definition: a directed acyclic graph of named steps, validated into frozen pydantic models.

```
{"entry": {"trigger": {…}} | {"segment_id": "…"} | {"where": {…}},
 "start": "welcome",
 "goal": {"event": "Charged", "filters": [...]},
 "steps": {
   "welcome": {"type": "send", "channel": "email", "content": {…}, "next": "pause"},
   "pause":   {"type": "wait", "duration_s": 86400, "next": "opened?"},
   "opened?": {"type": "condition", "did": {"event": "App Launched", "within_s": 86400}, "yes": "end", "no": "ab"},
   "ab":      {"type": "split", "branches": [{"weight": 1, "next": "nudge"}, {"weight": 1, "next": "end"}]},
   "nudge":   {"type": "wait", "until": "09:00", "timezone": "Europe/Paris", "next": "remind"},
   "remind":  {"type": "send", "channel": "push", "content": {…}},
   "end":     {"type": "exit"}}}
```

A step without ``next`` ends the journey there. Every name a step points to must exist and the graph must have
no cycle, so a position visits each step at most once (the history's (position, step, action) key relies on it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from tapwire_messaging.request_models import StrictModel, describe_errors, segment_audience
from tapwire_messaging.triggers.spec import MAX_DELAY_S, TriggerSpec
from tapwire_query.cql.ast import MAX_CONDITIONS, Name, PropertyFilter

MAX_STEPS = 50
StepName = Annotated[str, Field(min_length=1, max_length=64)]


class Entry(StrictModel):
    """How users enter: each event of a trigger, or every member of a segment when the version starts."""

    trigger: TriggerSpec | None = None
    segment_id: str | None = Field(default=None, min_length=1, max_length=64)
    where: dict[str, Any] | None = None
    campaign_id: int | None = None
    """Set by the store for a trigger entry: the campaign whose firings enter users (not given by the client)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Entry:
        if sum(x is not None for x in (self.trigger, self.segment_id, self.where)) != 1:
            raise ValueError("give exactly one of trigger, segment_id or where")
        return self

    def segment(self) -> dict[str, Any] | None:
        """The segment whose members enter when the version starts, or None for a trigger entry."""
        return segment_audience(self.segment_id, self.where)


class Goal(StrictModel):
    """A user who does ``event`` (matching ``filters``) leaves the journey as converted, wherever they are."""

    event: Name
    filters: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)


class SendStep(StrictModel):
    type: Literal["send"]
    channel: Literal["email", "push", "sms", "webhook", "inapp", "inbox"]
    content: dict[str, Any] | None = None
    variants: list[dict[str, Any]] | None = None
    webhook: dict[str, Any] | None = None
    throttle_per_s: float | None = Field(default=None, gt=0)
    next: StepName | None = None
    campaign_id: int | None = None
    """Set by the store: the campaign whose outbox rows this step writes (not given by the client)."""

    def campaign_request(self, name: str) -> dict[str, Any]:
        """The step as a campaign request body, for the campaign parser's content and channel checks."""
        body: dict[str, Any] = {"name": name, "channel": self.channel, "where": {}}
        for key in ("content", "variants", "webhook", "throttle_per_s"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body


class WaitStep(StrictModel):
    """Wait ``duration_s`` seconds, or until the next ``until`` (HH:MM) in the user's time zone (profile
    ``Timezone``, else ``timezone``, else UTC)."""

    type: Literal["wait"]
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DELAY_S)
    until: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str | None = Field(default=None, max_length=64)
    next: StepName | None = None

    @model_validator(mode="after")
    def _one(self) -> WaitStep:
        if (self.duration_s is None) == (self.until is None):
            raise ValueError("give exactly one of duration_s or until")
        return self


class DidEvent(StrictModel):
    """The user did ``event`` (matching ``filters``) within the last ``within_s`` seconds."""

    event: Name
    within_s: float = Field(gt=0, le=366 * 86400)
    filters: tuple[PropertyFilter, ...] = Field(default=(), max_length=MAX_CONDITIONS)


class ConditionStep(StrictModel):
    """Branch on exactly one of: an event done recently, a profile property, membership of a segment."""

    type: Literal["condition"]
    did: DidEvent | None = None
    profile: PropertyFilter | None = None
    segment_id: str | None = Field(default=None, min_length=1, max_length=64)
    where: dict[str, Any] | None = None
    yes: StepName | None = None
    no: StepName | None = None

    @model_validator(mode="after")
    def _one(self) -> ConditionStep:
        if sum(x is not None for x in (self.did, self.profile, self.segment_id, self.where)) != 1:
            raise ValueError("give exactly one of did, profile, segment_id or where")
        return self


class Branch(StrictModel):
    weight: float = Field(gt=0)
    next: StepName | None = None


class SplitStep(StrictModel):
    """An A/B split: each user takes one branch, by weight, stably per journey and user."""

    type: Literal["split"]
    branches: tuple[Branch, ...] = Field(min_length=2, max_length=10)


class ExitStep(StrictModel):
    type: Literal["exit"]


Step = Annotated[SendStep | WaitStep | ConditionStep | SplitStep | ExitStep, Field(discriminator="type")]


def successors(step: SendStep | WaitStep | ConditionStep | SplitStep | ExitStep) -> list[str]:
    if isinstance(step, SendStep | WaitStep):
        return [step.next] if step.next else []
    if isinstance(step, ConditionStep):
        return [name for name in (step.yes, step.no) if name]
    if isinstance(step, SplitStep):
        return [b.next for b in step.branches if b.next]
    return []


class JourneyDefinition(StrictModel):
    entry: Entry
    start: StepName
    steps: dict[StepName, Step] = Field(min_length=1, max_length=MAX_STEPS)
    goal: Goal | None = None

    @model_validator(mode="after")
    def _graph(self) -> JourneyDefinition:
        if self.start not in self.steps:
            raise ValueError(f"start names no step: {self.start!r}")
        for name, step in self.steps.items():
            for target in successors(step):
                if target not in self.steps:
                    raise ValueError(f"steps.{name} leads to no step: {target!r}")
        # Depth-first, iteratively: grey nodes are on the current path, so reaching one again is a cycle.
        state: dict[str, int] = {}
        for root in self.steps:
            if root in state:
                continue
            stack: list[tuple[str, list[str]]] = [(root, successors(self.steps[root]))]
            state[root] = 1
            while stack:
                node, pending = stack[-1]
                if not pending:
                    state[node] = 2
                    stack.pop()
                    continue
                target = pending.pop()
                if state.get(target) == 1:
                    raise ValueError(f"steps form a cycle through {target!r}; a journey only moves forward")
                if target not in state:
                    state[target] = 1
                    stack.append((target, successors(self.steps[target])))
        return self


# The union tags of the step types, left out of the refusal's field paths.
_STEP_TAGS = frozenset({"send", "wait", "condition", "split", "exit"})


class JourneyRefused(ValueError):
    """A journey definition that does not validate; the message names each bad field."""


def parse_definition(raw: Any) -> JourneyDefinition:
    """A client's definition. Raises :class:`JourneyRefused` naming the bad fields."""
    if not isinstance(raw, dict):
        raise JourneyRefused("definition must be an object with entry, start and steps")
    try:
        definition = JourneyDefinition.model_validate(raw)
    except ValidationError as exc:
        raise JourneyRefused(describe_errors(exc, root="definition", tags=_STEP_TAGS)) from exc
    # Campaign ids are the store's to set: one given by the client could name another tenant's campaign.
    if definition.entry.campaign_id is not None:
        raise JourneyRefused("definition.entry.campaign_id is set by the server")
    for name, step in definition.steps.items():
        if isinstance(step, SendStep) and step.campaign_id is not None:
            raise JourneyRefused(f"definition.steps.{name}.campaign_id is set by the server")
    return definition
