"""Where in a query a part sits, for error messages (``conditions.0.all.1.did.session_properties.0``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldPath:
    """A dotted path built one step at a time and written out only when an error names it: each step costs
    the same however deep the query nests (a string per step would copy the whole path every time)."""

    parent: FieldPath | None = None
    part: str | int = ""

    def child(self, *parts: str | int) -> FieldPath:
        path = self
        for part in parts:
            path = FieldPath(path, part)
        return path

    def __str__(self) -> str:
        parts: list[str] = []
        node: FieldPath | None = self
        while node is not None:
            if node.part != "":
                parts.append(str(node.part))
            node = node.parent
        return ".".join(reversed(parts))


ROOT = FieldPath()
