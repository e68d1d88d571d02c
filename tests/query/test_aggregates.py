"""Anonymised aggregates through the HTTP API on both warehouse paths: small groups suppressed or pooled into
"other", a differencing pair refused (on totals and on single cells), distant and disjoint aggregates answered,
industry aggregates only with an operator credential and enough accounts, and no account's users in another's
aggregate."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from tapwire_core.control.aggregate_release_models import AggregateReleaseRow
from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_query.aggregates.service import DIFFERENCING_CODE
from tapwire_query.routes import router as query_router
from tapwire_services import generate
from tapwire_services.accounts import directory_for
from tests.credentials import LOOKUP_DIGESTS

pytestmark = pytest.mark.integration

PASSCODE = "aggregate-passcode-123"
JAN_5 = int(dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC).timestamp())
DAY = 86_400
RECEIVED_MS = 1_770_000_000_000
# 38 people. Country: FR 15, DE 12, IT 4, NL 4, BE 3. Plan: gold 20, silver 12, bronze 3, unset 3.
COUNTRIES = ["FR"] * 15 + ["DE"] * 12 + ["IT"] * 4 + ["NL"] * 4 + ["BE"] * 3
PLANS: list[str | None] = ["gold"] * 20 + ["silver"] * 12 + ["bronze"] * 3 + [None] * 3


def _people(prefix: str, countries: list[str], plans: list[str | None] | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i, country in enumerate(countries):
        who = f"{prefix}{i:02d}"
        profile: dict[str, Any] = {"Country": country, "Email": f"{who}@example.com"}
        plan = plans[i] if plans else None
        if plan is not None:
            profile["Plan"] = plan
        records.append({"type": "profile", "identity": who, "ts": JAN_5, "profileData": profile})
        # Everyone buys on Jan 5 (channel web for the first 20, app for the next 15, kiosk for the rest); every
        # third person again on Jan 6, in the shop.
        channel = "web" if i < 20 else "app" if i < 35 else "kiosk"
        records.append(
            {
                "type": "event",
                "identity": who,
                "ts": JAN_5,
                "evtName": "Charged",
                "evtData": {"channel": channel},
            }
        )
        if i % 3 == 0:
            records.append(
                {
                    "type": "event",
                    "identity": who,
                    "ts": JAN_5 + DAY,
                    "evtName": "Charged",
                    "evtData": {"channel": "shop"},
                }
            )
    return records


async def _ready() -> dict[str, bool]:
    return {"test": True}


async def _app(
    warehouse: Warehouse, path: Path, accounts: list[str], settings: Settings
) -> tuple[FastAPI, ControlStore]:
    store = ControlStore(f"sqlite+aiosqlite:///{path}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    for index, account in enumerate(accounts):
        await store.upsert_account(
            account, passcode=PASSCODE, write_key=f"agg-wk-{index:04d}-123456", region="eu1"
        )
    context = ServiceContext(
        settings=settings,
        authenticator=directory_for(store),
        readiness=_ready,
        warehouse_=warehouse,
        store_=store,
    )
    return create_app(context, [query_router]), store


def _client(app: FastAPI, account: str) -> httpx.AsyncClient:
    headers = {"X-CleverTap-Account-Id": account, "X-CleverTap-Passcode": PASSCODE}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://query", headers=headers, timeout=120
    )


@pytest.fixture(scope="module")
async def account_app(loaded: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    # Each test gets its own account (the releases of one test would be compared with another's), all with the
    # same people; a noise account holds the same identities and 38 more people.
    for account in ("AGG-SUPPRESS", "AGG-PLAN", "AGG-EVENT", "AGG-DIFF", "AGG-CELL", "AGG-FAR"):
        await generate.load(
            loaded, _people("u", COUNTRIES, PLANS), account_id=account, received_ms=RECEIVED_MS
        )
    await generate.load(
        loaded, _people("u", COUNTRIES * 2, PLANS * 2), account_id="AGG-NOISE", received_ms=RECEIVED_MS
    )
    path = tmp_path_factory.mktemp("aggregates") / "control.db"
    accounts = ["AGG-SUPPRESS", "AGG-PLAN", "AGG-EVENT", "AGG-DIFF", "AGG-CELL", "AGG-FAR", "AGG-NOISE"]
    app, store = await _app(loaded, path, accounts, Settings())
    app.state.test_store = store
    yield app
    await store.close()


async def _aggregate(app: FastAPI, account: str, body: dict[str, Any]) -> httpx.Response:
    async with _client(app, account) as client:
        return await client.post("/query/v1/aggregates", json=body)


def _country(*values: str) -> dict[str, Any]:
    return {"name": "Country", "operator": "equals", "value": list(values)}


def _not_email(address: str) -> dict[str, Any]:
    return {"name": "Email", "operator": "not_equals", "value": address}


async def test_small_groups_are_suppressed_and_pooled_into_other(account_app: FastAPI) -> None:
    by_country = await _aggregate(account_app, "AGG-SUPPRESS", {"group_by": {"profile_property": "Country"}})
    assert by_country.status_code == 200, by_country.text
    body = by_country.json()
    # IT 4 + NL 4 + BE 3 = 11 people: enough for "other"; no account but this one's people are counted.
    assert body["total"] == {"users": 38}
    assert body["groups"] == [{"value": "FR", "users": 15}, {"value": "DE", "users": 12}]
    assert body["other"] == {"users": 11}
    assert body["suppressed_groups"] == 3
    assert body["k"] == 10 and body["scope"] == "account" and body["release_id"]

    # bronze 3 + unset 3 = 6 is too few for "other" on its own, and dropping it would leave 38 - 20 - 12 = 6 to
    # subtract: silver is suppressed as well, and "other" holds 18. (In another account: beside the countries,
    # Plan's "other" minus Country's would be 7 people, and the differencing rule refuses it.)
    by_plan = (await _aggregate(account_app, "AGG-PLAN", {"group_by": {"profile_property": "Plan"}})).json()
    assert by_plan["groups"] == [{"value": "gold", "users": 20}]
    assert by_plan["other"] == {"users": 18}
    assert by_plan["suppressed_groups"] == 3
    assert "bronze" not in str(by_plan) and "silver" not in str(by_plan)

    # Too few people in all: nothing is released, nor recorded.
    few = await _aggregate(
        account_app, "AGG-SUPPRESS", {"common_profile_properties": {"profile_fields": [_country("BE", "IT")]}}
    )
    assert few.json() == {
        "status": "success",
        "scope": "account",
        "k": 10,
        "total": None,
        "groups": [],
        "other": None,
        "suppressed_groups": 0,
        "release_id": None,
    }

    # By day of the base event: 38 people on Jan 5, 13 again on Jan 6.
    by_day = (
        await _aggregate(
            account_app,
            "AGG-SUPPRESS",
            {"event_name": "Charged", "from": 20260101, "to": 20260131, "group_by": {"period": "day"}},
        )
    ).json()
    assert by_day["groups"] == [{"value": "20260105", "users": 38}, {"value": "20260106", "users": 13}]
    assert by_day["other"] is None and by_day["suppressed_groups"] == 0

    # By a property of the base event, where a person falls in every group they have an event in: kiosk (3) is
    # too small, and with it "other" would be 3, so shop (13, the smallest released) joins it. "other" counts
    # people once: u36 bought in the kiosk and in the shop, so it holds 15, not 16.
    by_channel = (
        await _aggregate(
            account_app,
            "AGG-EVENT",
            {
                "event_name": "Charged",
                "from": 20260101,
                "to": 20260131,
                "group_by": {"event_property": "channel"},
            },
        )
    ).json()
    assert by_channel["groups"] == [{"value": "web", "users": 20}, {"value": "app", "users": 15}]
    assert by_channel["other"] == {"users": 15} and by_channel["suppressed_groups"] == 2


async def test_a_differencing_pair_is_refused(account_app: FastAPI) -> None:
    everyone = await _aggregate(account_app, "AGG-DIFF", {})
    assert everyone.json()["total"] == {"users": 38}
    # Everyone but one person: the difference would be that person.
    but_one = {"common_profile_properties": {"profile_fields": [_not_email("u07@example.com")]}}
    refused = await _aggregate(account_app, "AGG-DIFF", but_one)
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["status"] == "fail" and error["code"] == DIFFERENCING_CODE
    assert "fewer than 10 users" in error["message"]
    # Refused answers are not recorded: asking again is refused again, and the first aggregate is still answered.
    assert (await _aggregate(account_app, "AGG-DIFF", but_one)).status_code == 422
    assert (await _aggregate(account_app, "AGG-DIFF", {})).json()["total"] == {"users": 38}
    # Once the earlier releases are older than the comparison window (90 days), the narrower one is answered.
    store: ControlStore = account_app.state.test_store
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=91)
    async with store.engine.begin() as connection:
        await connection.execute(
            update(AggregateReleaseRow)
            .where(AggregateReleaseRow.account_id == "AGG-DIFF")
            .values(released_at=long_ago)
        )
    answered = await _aggregate(account_app, "AGG-DIFF", but_one)
    assert answered.status_code == 200 and answered.json()["total"] == {"users": 37}
    async with store.engine.connect() as connection:
        kept = (
            await connection.execute(
                select(AggregateReleaseRow.id).where(AggregateReleaseRow.account_id == "AGG-DIFF")
            )
        ).all()
    assert [row.id for row in kept] == [answered.json()["release_id"]]  # the old ones were purged


async def test_a_single_cell_too_close_to_an_earlier_one_is_refused(account_app: FastAPI) -> None:
    grouped = {"group_by": {"profile_property": "Country"}}
    first = (await _aggregate(account_app, "AGG-CELL", grouped)).json()
    assert first["groups"] == [{"value": "FR", "users": 15}, {"value": "DE", "users": 12}]
    # FR and DE without u00: 26 people against 38 (totals 12 apart), but FR 14 against FR 15.
    narrower = {
        **grouped,
        "common_profile_properties": {
            "profile_fields": [_country("FR", "DE"), _not_email("u00@example.com")]
        },
    }
    refused = await _aggregate(account_app, "AGG-CELL", narrower)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == DIFFERENCING_CODE
    assert "group 'FR'" in refused.json()["message"]
    # The same population without the grouping releases only its total, 12 away from the earlier one's.
    assert (await _aggregate(account_app, "AGG-CELL", {**narrower, "group_by": None})).status_code == 200


async def test_distant_and_disjoint_aggregates_are_answered(account_app: FastAPI) -> None:
    answers = [
        await _aggregate(account_app, "AGG-FAR", body)
        for body in (
            {},  # 38
            {"common_profile_properties": {"profile_fields": [_country("FR")]}},  # 15: disjoint from DE
            {"common_profile_properties": {"profile_fields": [_country("DE")]}},  # 12
            {
                "common_profile_properties": {"profile_fields": [_country("FR", "DE")]}
            },  # 27: 11 / 12 / 15 away
            {},  # the same figure again: 0 away
        )
    ]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert [a.json()["total"]["users"] for a in answers] == [38, 15, 12, 27, 38]


async def test_an_aggregate_counts_only_its_own_accounts_people(account_app: FastAPI) -> None:
    # AGG-NOISE holds the same identities (u00…u37) and 38 more people: they never show in the other accounts'
    # figures (38 above), nor theirs in its own.
    noise = (await _aggregate(account_app, "AGG-NOISE", {"group_by": {"profile_property": "Country"}})).json()
    assert noise["total"] == {"users": 76}
    assert noise["groups"] == [{"value": "FR", "users": 30}, {"value": "DE", "users": 24}]
    assert noise["other"] == {"users": 22} and noise["suppressed_groups"] == 3


async def test_bad_bodies_and_credentials(account_app: FastAPI) -> None:
    bad = await _aggregate(account_app, "AGG-FAR", {"group_by": {"period": "day"}})
    assert bad.status_code == 422 and "event_name" in bad.json()["error"]
    both = await _aggregate(
        account_app, "AGG-FAR", {"group_by": {"period": "day", "profile_property": "Plan"}}
    )
    assert both.status_code == 422 and "exactly one" in both.json()["error"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=account_app), base_url="http://q") as anon:
        assert (await anon.post("/query/v1/aggregates", json={})).status_code == 401
    async with _client(account_app, "AGG-FAR") as client:
        # Not an operator: no industry aggregate.
        assert (await client.post("/query/v1/aggregates/industry", json={})).status_code == 403


# Industry: five accounts. FR: 3 people in each of IND-1…IND-4 (12 people, 4 accounts: too few accounts); DE: 2 in
# each of the five (10 people, 5 accounts); US: 12 people, all in IND-5 (one account).
INDUSTRY = ("IND-1", "IND-2", "IND-3", "IND-4", "IND-5")


def _industry_people(account: str) -> list[str]:
    countries = ["DE"] * 2
    countries += ["US"] * 12 if account == "IND-5" else ["FR"] * 3
    return countries


@pytest.fixture(scope="module")
async def industry_app(
    loaded: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FastAPI, ControlStore]]:
    for account in INDUSTRY:
        await generate.load(
            loaded, _people("p", _industry_people(account)), account_id=account, received_ms=RECEIVED_MS
        )
    path = tmp_path_factory.mktemp("industry") / "control.db"
    app, store = await _app(loaded, path, [*INDUSTRY, "OPS"], Settings(operator_accounts="OPS"))
    yield app, store
    await store.close()


async def test_industry_aggregates_need_an_operator_and_enough_accounts(
    industry_app: tuple[FastAPI, ControlStore],
) -> None:
    app, store = industry_app
    grouped = {"group_by": {"profile_property": "Country"}}
    async with _client(app, "IND-1") as customer:
        refused = await customer.post("/query/v1/aggregates/industry", json=grouped)
        assert refused.status_code == 403 and "operator" in refused.json()["error"]
        # Its own aggregate: its 5 people, too few to release anything; nobody else's.
        own = (await customer.post("/query/v1/aggregates", json={})).json()
        assert own["total"] is None and own["release_id"] is None
    async with _client(app, "OPS") as operator:
        assert (await operator.post("/query/v1/aggregates", json={})).status_code == 403
        answer = await operator.post("/query/v1/aggregates/industry", json=grouped)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["scope"] == "industry" and body["accounts"] == 5 and body["min_accounts"] == 5
        assert body["total"] == {"users": 34}
        # FR (12 people, 4 accounts) and US (12 people, 1 account) fail the accounts rule; together they are 24
        # people of 5 accounts.
        assert body["groups"] == [{"value": "DE", "users": 10}]
        assert body["other"] == {"users": 24}
        assert body["suppressed_groups"] == 2

        # The operator is held to differencing too.
        but_one = {"common_profile_properties": {"profile_fields": [_not_email("p02@example.com")]}}
        assert (await operator.post("/query/v1/aggregates/industry", json={})).status_code == 200
        close = await operator.post("/query/v1/aggregates/industry", json=but_one)
        assert close.status_code == 422 and close.json()["code"] == DIFFERENCING_CODE

        # An account that opts out leaves four: too few for any industry aggregate.
        await store.update_settings("IND-5", {"industry_benchmarks": False})
        few = await operator.post("/query/v1/aggregates/industry", json=grouped)
        assert few.status_code == 422 and "at least 5 participating accounts" in few.json()["error"]

    async with store.engine.connect() as connection:
        scopes = (await connection.execute(select(AggregateReleaseRow.account_id))).scalars().all()
    # Two industry releases (the grouped one and everyone), none for the account that released nothing.
    assert sorted(scopes, key=str) == [None, None]


async def test_the_window_holds_a_bounded_number_of_releases(
    loaded: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> None:
    await generate.load(loaded, _people("u", COUNTRIES), account_id="AGG-BUDGET", received_ms=RECEIVED_MS)
    path = tmp_path_factory.mktemp("budget") / "control.db"
    app, store = await _app(loaded, path, ["AGG-BUDGET"], Settings(aggregate_max_releases=2))
    try:
        assert (await _aggregate(app, "AGG-BUDGET", {})).status_code == 200
        fr = {"common_profile_properties": {"profile_fields": [_country("FR")]}}
        assert (await _aggregate(app, "AGG-BUDGET", fr)).status_code == 200
        # A third release would be compared with two; the window holds two: 429 until the oldest leaves it.
        full = await _aggregate(
            app, "AGG-BUDGET", {"common_profile_properties": {"profile_fields": [_country("DE")]}}
        )
        assert full.status_code == 429, full.text
        assert 89 * DAY < int(full.headers["Retry-After"]) <= 90 * DAY + 2
        # An answer that releases nothing is not a release: it is answered whatever the window holds.
        few = await _aggregate(
            app, "AGG-BUDGET", {"common_profile_properties": {"profile_fields": [_country("BE")]}}
        )
        assert few.status_code == 200 and few.json()["total"] is None
        # A definition too large to be compared later is refused before anything runs.
        many = [{"name": f"P{i}", "operator": "equals", "value": "x"} for i in range(50)]
        huge = {
            "common_profile_properties": {
                "profile_fields": many,
                "demographics": many,
                "technographics": many,
            }
        }
        refused = await _aggregate(app, "AGG-BUDGET", huge)
        assert refused.status_code == 422 and "too large for an aggregate" in refused.json()["error"]
    finally:
        await store.close()
