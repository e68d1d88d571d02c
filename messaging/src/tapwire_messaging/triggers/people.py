"""The person behind an event's user key, as the identity graph in the control store knows them now.

A trigger fires for the person, not for the one key an event came with: a timer is written under the key's
canonical key (the one segments and profiles name the person by), and an abandonment or goal event ends what
any of the person's keys started (a cart filled before login, paid for after it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.identity.models import IdentityNodeRow


@dataclass(frozen=True, slots=True)
class Person:
    canonical: str
    keys: tuple[str, ...]
    """Every key of the person (the key asked about included), sorted."""


async def people(engine: AsyncEngine, account_id: str, keys: Iterable[str]) -> Mapping[str, Person]:
    """key → the person it belongs to; a key the graph does not know is a person of its own. Two queries."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    async with engine.connect() as connection:
        nodes = (
            await connection.execute(
                select(IdentityNodeRow.key, IdentityNodeRow.profile_id, IdentityNodeRow.canonical_key).where(
                    IdentityNodeRow.account_id == account_id, IdentityNodeRow.key.in_(wanted)
                )
            )
        ).all()
        profiles = {int(profile) for _, profile, _ in nodes}
        members: dict[int, list[str]] = {}
        if profiles:
            rows = await connection.execute(
                select(IdentityNodeRow.profile_id, IdentityNodeRow.key).where(
                    IdentityNodeRow.account_id == account_id, IdentityNodeRow.profile_id.in_(sorted(profiles))
                )
            )
            for profile, key in rows.all():
                members.setdefault(int(profile), []).append(str(key))
    found = {
        str(key): Person(str(canonical), tuple(sorted({str(key), *members.get(int(profile), [])})))
        for key, profile, canonical in nodes
    }
    return {key: found.get(key) or Person(key, (key,)) for key in wanted}
