"""Versioned content (announcements, agent briefings): numbering versions and publishing one atomically.

Within its scope (an incident's language and topic, or an incident's briefing) at most one version is
published; publishing archives the one before. The caller audits and raises its own Refused.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, func, select, update

from ivr.store.models import utcnow


def next_version(conn: Connection, model, *scope) -> int:
    """The number the next version in this scope gets (1 for the first)."""
    return (conn.execute(select(func.max(model.version)).where(*scope)).scalar() or 0) + 1


def publish_version(conn: Connection, model, columns: tuple, row_id: int, scope: tuple[str, ...],
                    refused: Callable[[str], Exception], what: str, *,
                    missing: Callable[[str], Exception] | None = None,
                    published: Callable[[str], Exception] | None = None):
    """Publish version `row_id` (a draft or archived one) and archive its scope's published one.

    Returns (the version, the one it replaced or None); refused(message) when there is nothing to publish,
    or `missing` (no such version) and `published` (published already) where the caller tells them apart.
    """
    row = conn.execute(select(*columns).where(model.id == row_id)).first()
    if row is None:
        raise (missing or refused)(f"there is no {what} {row_id}")
    if row.status == "published":
        raise (published or refused)(f"{what} {row_id} (version {row.version}) is already published")
    where = [getattr(model, name) == getattr(row, name) for name in scope]
    previous = conn.execute(select(model.id, model.version).where(*where, model.status == "published")).first()
    if previous:
        conn.execute(update(model).where(model.id == previous.id).values(status="archived"))
    conn.execute(update(model).where(model.id == row.id).values(status="published", published_at=utcnow()))
    return row, previous
