"""The fault soak, shortened to 45 s of traffic (``make soak`` runs the five-minute one).

Kafka is killed and restarted, ClickHouse is down for eight seconds, PostgreSQL restarts, a loader and a gateway
are SIGKILLed, in turn, under steady uploads through two gateways to two loaders: every acknowledged record is
stored once, none is dead-lettered, no answer is a 5xx other than 503 or goes unanswered, every 503/429 says
when to retry, and every service is ready at the end without a restart by hand.
"""

from __future__ import annotations

import pytest

from tests.soak.run import SoakPlan, held, run_soak

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_a_short_soak_with_faults_keeps_every_promise() -> None:
    figures = run_soak(SoakPlan(seconds=45.0, clickhouse_down_s=8.0))
    assert held(figures) == [], figures
    by_fault = figures["soak_by_fault"]
    # Each fault's effect on clients is the documented one.
    assert by_fault["kafka_killed"].get("503", 0) > 0, by_fault  # the gateways cannot make records durable
    assert set(by_fault["clickhouse_down"]) == {"200"}, by_fault  # uploads do not touch ClickHouse
    assert set(by_fault["loader_killed"]) == {"200"}, by_fault
    assert set(by_fault.get("postgres_restart", {})) <= {"200", "503"}, by_fault
    # A client whose credential no gateway has cached, while the control store is down: 503, not 500.
    assert by_fault["postgres_restart_first_request"] == {"503": 2}, by_fault
    gateway_down = by_fault["gateway_killed"]
    assert gateway_down.get("200", 0) > 0, by_fault  # the other gateway serves
    assert set(gateway_down) <= {"200"} | {
        status for status in gateway_down if status.startswith("connection:")
    }
    assert figures["soak_stored"] == figures["soak_acked"] > 0
