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
    seen = figures["soak_by_fault"]

    def answers(fault: str) -> set[str]:
        """What clients got while ``fault`` was in force and until the next one."""
        return set(seen.get(fault, {})) | set(seen.get(f"after_{fault}", {}))

    lost_connections = {status for status in figures["soak_statuses"] if status.startswith("connection:")}
    # Each fault's effect on clients is the documented one.
    assert seen["kafka_killed"].get("503", 0) > 0, seen  # the gateways cannot make records durable
    assert answers("kafka_killed") <= {"200", "503"}, seen
    assert answers("clickhouse_down") == {"200"}, seen  # uploads do not touch ClickHouse
    assert answers("postgres_restart") <= {"200", "503"}, seen
    # A client whose credential no gateway has cached, while the control store is down: 503, not 500.
    assert seen["postgres_restart_first_request"] == {"503": 2}, seen
    assert answers("loader_killed") <= {"200"}, seen
    # The killed gateway's clients lose their connection and go to the other one.
    assert "200" in answers("gateway_killed") and answers("gateway_killed") <= {"200"} | lost_connections, (
        seen
    )
    assert figures["soak_stored"] == figures["soak_acked"] > 0
