"""CleverTap's ``YYYYMMDD`` query dates (integers, or strings in some clients)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator


def parse_yyyymmdd(value: Any) -> dt.date:
    text = str(value) if type(value) is int or type(value) is str else ""
    if len(text) != 8 or not text.isdigit():
        raise ValueError("must be a date as YYYYMMDD")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise ValueError(f"{text} is not a calendar date") from exc


QueryDate = Annotated[dt.date, BeforeValidator(parse_yyyymmdd)]
