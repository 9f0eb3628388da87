"""Agent briefings: what agents tell callers about the active incident, versioned and published like announcements.

A briefing has the facts, what was exposed, what callers should do and approved answers to common questions.
Publishing makes a version the only published one for its incident and archives the previous one, audited.
"""
from __future__ import annotations

from sqlalchemy import Connection, insert, select

from ivr.core.errors import Refused
from ivr.store.audit import audit
from ivr.store.reads import active_incident
from ivr.store.db import Database
from ivr.store.models import BriefingVersion, utcnow
from ivr.store.versions import next_version, publish_version

# The fields and what they are called wherever a briefing is shown (console, `ivr briefing`).
LABELS = {"facts": "What happened (the facts)", "exposed": "What was exposed",
          "caller_actions": "What callers should do", "answers": "Approved answers to common questions"}
FIELDS = tuple(LABELS)
FIELD_MAX = 20_000
COLUMNS = (BriefingVersion.id, BriefingVersion.incident_id, BriefingVersion.version, BriefingVersion.status,
           *(getattr(BriefingVersion, f) for f in FIELDS), BriefingVersion.created_by, BriefingVersion.created_at,
           BriefingVersion.published_at)


class BriefingError(Refused):
    """A request about briefings that cannot be carried out; nothing was changed."""


def _incident(conn: Connection) -> int:
    incident = active_incident(conn)
    if incident is None:
        raise BriefingError("there is no active incident to brief agents about")
    return incident.id


def _subject(incident_id: int, version: int) -> str:
    return f"incident {incident_id} briefing v{version}"


def create(db: Database, fields: dict, *, actor: str, reason: str, publish: bool = False) -> dict:
    """A new version for the active incident: a draft, or published at once."""
    values = {f: (fields.get(f) or "").replace("\r\n", "\n").strip() for f in FIELDS}
    if not any(values.values()):
        raise BriefingError("the briefing is empty")
    too_long = [f for f, v in values.items() if len(v) > FIELD_MAX]
    if too_long:
        raise BriefingError(f"{', '.join(too_long)} is longer than {FIELD_MAX} characters")
    with db.write() as conn:
        incident_id = _incident(conn)
        version = next_version(conn, BriefingVersion, BriefingVersion.incident_id == incident_id)
        new_id = conn.execute(insert(BriefingVersion).values(
            incident_id=incident_id, version=version, status="draft", created_by=actor, created_at=utcnow(), **values,
        )).inserted_primary_key[0]
        audit(conn, actor=actor, action="briefing.create", subject=_subject(incident_id, version),
              to_value="\n\n".join(f"{f}: {v}" for f, v in values.items() if v)[:4000], reason=reason)
        if publish:
            _publish(conn, new_id, actor, reason)
        return _row(conn, new_id)


def publish(db: Database, briefing_id: int, *, actor: str, reason: str) -> dict:
    with db.write() as conn:
        _publish(conn, briefing_id, actor, reason)
        return _row(conn, briefing_id)


def _publish(conn: Connection, briefing_id: int, actor: str, reason: str) -> None:
    row, previous = publish_version(conn, BriefingVersion, COLUMNS, briefing_id, ("incident_id",), BriefingError,
                                    "briefing")
    audit(conn, actor=actor, action="briefing.publish", subject=_subject(row.incident_id, row.version),
          from_value=f"version {previous.version}" if previous else None, to_value=f"version {row.version}",
          reason=reason)


def _row(conn: Connection, briefing_id: int) -> dict:
    return dict(conn.execute(select(*COLUMNS).where(BriefingVersion.id == briefing_id)).one()._mapping)


def for_active_incident(db: Database) -> tuple[object, dict | None, list[dict]]:
    """(the active incident or None, its published briefing or None, every version newest first)."""
    with db.read() as conn:
        incident = active_incident(conn)
        if incident is None:
            return None, None, []
        rows = [dict(r._mapping) for r in conn.execute(select(*COLUMNS).where(
            BriefingVersion.incident_id == incident.id).order_by(BriefingVersion.version.desc()))]
    return incident, next((r for r in rows if r["status"] == "published"), None), rows
