"""The loader: bus → ClickHouse, at-least-once delivery made exactly-once in effect by event-id dedup."""
