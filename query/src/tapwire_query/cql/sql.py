"""Bound parameters and compiled statements: the only way a value reaches a query is ``Binder.bind``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ParamType = Literal["String", "Float64", "Int64", "UInt64", "Date", "Array(String)"]


@dataclass(frozen=True)
class Compiled:
    """SQL text with ``{pN:Type}`` placeholders and the values for them (sent server-side)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


class Binder:
    """Hands out placeholder names for one statement and collects their values."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, kind: ParamType) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{kind}}}"

    def string(self, value: str) -> str:
        return self.bind(value, "String")

    def number(self, value: float) -> str:
        return self.bind(float(value), "Float64")

    def finish(self, sql: str) -> Compiled:
        return Compiled(sql, dict(self.params))
