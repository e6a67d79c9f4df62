"""Graph timestamps: the one parser and formatter (no Airflow, no HTTP).

Graph writes ISO 8601 in UTC with up to seven fractional digits (``2024-01-02T03:04:05.1234567Z``), which
``datetime.fromisoformat`` refuses beyond six; everything that reads a Graph time, or a user's date-time, goes
through :func:`parse_timestamp`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["format_timestamp", "parse_timestamp"]

_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(value: str | None) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text (naive text is taken as UTC); None when absent or unparsable."""
    if not value or not isinstance(value, str):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_timestamp(moment: datetime | float) -> str:
    """A Graph timestamp with millisecond precision from a datetime or a POSIX time."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
