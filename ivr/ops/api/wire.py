"""How values go on the wire: every timestamp is RFC 3339 with its zone, whatever the database hands back."""
from __future__ import annotations

from datetime import datetime, timezone


def timestamp(value: datetime | None) -> str | None:
    """`2026-12-01T15:48:32.213787+00:00`. The store writes UTC; SQLite returns it without a zone, so a
    naive value is UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def jsonable(row: dict) -> dict:
    """A database row for JSON: its datetimes as timestamps, the rest as they are."""
    return {k: timestamp(v) if isinstance(v, datetime) else v for k, v in row.items()}


# Incidents, announcements, versions and callbacks are numbered in `integer` columns (32-bit in PostgreSQL):
# a larger number in a path names nothing (404), and in a body is refused (400), never an overflow (500).
MAX_ID = 2**31 - 1
ID = f"int(min=1,max={MAX_ID})"
