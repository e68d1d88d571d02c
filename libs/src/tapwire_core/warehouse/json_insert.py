"""Rows the warehouse computes from JSON: ``INSERT INTO t (columns) SELECT expressions FROM <JSON rows>``.

The loader's hot path hands event envelopes to ClickHouse as the JSON they travel the bus in. ClickHouse parses
it and computes the columns in C++, outside this process's GIL; building the same rows in Python and
serialising them to Native format cost more CPU than everything else the loader does per event.

Only the data travels as data: the statement is built from constants in code (table, columns, expressions and
the rows' structure), never from values. How the rows reach the engine is the engine's business: a file that
``file()`` reads for chDB, the request body that ``input()`` reads for a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from tapwire_core.warehouse.base import WarehouseError

FORMAT: Final = "JSONEachRow"

# Fixed rather than left to the engine's defaults, which changed between ClickHouse releases: a nested object
# is read as its JSON text, a named tuple from a JSON object whose missing keys are NULL, and fields the
# statement does not read are skipped (a newer writer may add some).
INPUT_SETTINGS: Final[Mapping[str, int]] = {
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_named_tuples_as_objects": 1,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 1,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 1,
    "input_format_skip_unknown_fields": 1,
    "input_format_null_as_default": 1,
}


@dataclass(frozen=True, slots=True)
class JsonInsert:
    """One ``INSERT … SELECT`` over JSON rows of ``structure`` (``name Type, …``): ``expressions[i]`` computes
    ``columns[i]`` from the rows' fields."""

    table: str
    columns: tuple[str, ...]
    expressions: tuple[str, ...]
    structure: str

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.expressions):
            raise WarehouseError(
                f"{self.table}: {len(self.expressions)} expressions for {len(self.columns)} columns"
            )
        if "'" in self.structure or "\\" in self.structure:
            raise WarehouseError("a JSON row structure is a list of names and types, without quotes")

    def statement(self, source: str) -> str:
        """The statement reading its rows from ``source``, a table function over the JSON rows."""
        settings = ", ".join(f"{name} = {value}" for name, value in INPUT_SETTINGS.items())
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) SETTINGS {settings} "
            f"SELECT {', '.join(self.expressions)} FROM {source}"
        )
