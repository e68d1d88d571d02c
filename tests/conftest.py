"""Test-suite wiring: each piece of real infrastructure lives in its own plugin module under tests/infra."""

pytest_plugins = [
    "tests.infra.kafka",
    "tests.infra.postgres",
    "tests.infra.clickhouse",
    "tests.infra.control_store",
]
