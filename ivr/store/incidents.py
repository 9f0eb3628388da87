"""Incidents: the breach the hotline talks about. Exactly one is active; its severity feeds the routing rules."""
from __future__ import annotations

from sqlalchemy import select, update

from ivr.core.errors import NotFound, Refused
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import Incident, utcnow
from ivr.store.state import bump_content


class IncidentError(Refused):
    """A request about incidents that cannot be carried out; nothing was changed."""


class IncidentNotFound(IncidentError, NotFound):
    """No such incident."""


def _check_severity(severity: str, severities: list[str]) -> None:
    if severity not in severities:
        raise IncidentError(f"severity must be one of {', '.join(severities)} (routing_rules.yaml), not {severity!r}")


def create(db: Database, *, title: str, severity: str, exposed: str, severities: list[str], actor: str,
           activate: bool = False, reason: str = "") -> int:
    title = (title or "").strip()
    if not title:
        raise IncidentError("an incident needs a title")
    _check_severity(severity, severities)
    with db.write() as conn:
        now = utcnow()
        incident_id = conn.execute(Incident.__table__.insert().values(
            title=title[:200], severity=severity, exposed=(exposed or "").strip(), status="draft", created_at=now,
            updated_at=now)).inserted_primary_key[0]
        audit(conn, actor=actor, action="incident.create", subject=f"incident {incident_id}",
              to_value=f"{title!r} severity={severity} exposed={exposed!r}", reason=reason)
    if activate:
        activate_incident(db, incident_id, actor=actor, reason=reason)
    return incident_id


def update_incident(db: Database, incident_id: int, *, severities: list[str], actor: str, reason: str = "",
                    title: str | None = None, severity: str | None = None, exposed: str | None = None) -> None:
    values = {k: v for k, v in (("title", title), ("severity", severity), ("exposed", exposed)) if v is not None}
    if not values:
        raise IncidentError("nothing to change: give --title, --severity or --exposed")
    if severity is not None:
        _check_severity(severity, severities)
    with db.write() as conn:
        row = conn.execute(select(Incident.title, Incident.severity, Incident.exposed)
                           .where(Incident.id == incident_id)).first()
        if row is None:
            raise IncidentNotFound(f"there is no incident {incident_id}")
        before = {k: getattr(row, k) for k in values}
        conn.execute(update(Incident).where(Incident.id == incident_id).values(updated_at=utcnow(), **values))
        audit(conn, actor=actor, action="incident.update", subject=f"incident {incident_id}",
              from_value=repr(before), to_value=repr(values), reason=reason)
        bump_content(conn)


def activate_incident(db: Database, incident_id: int, *, actor: str, reason: str = "") -> None:
    """Make this the incident callers hear about; the previously active one is closed."""
    with db.write() as conn:
        if conn.execute(select(Incident.id).where(Incident.id == incident_id)).first() is None:
            raise IncidentNotFound(f"there is no incident {incident_id}")
        previous = conn.execute(select(Incident.id).where(Incident.status == "active")).scalars().all()
        conn.execute(update(Incident).where(Incident.status == "active", Incident.id != incident_id)
                     .values(status="closed", updated_at=utcnow()))
        conn.execute(update(Incident).where(Incident.id == incident_id).values(status="active", updated_at=utcnow()))
        audit(conn, actor=actor, action="incident.activate", subject=f"incident {incident_id}",
              from_value=", ".join(f"incident {p}" for p in previous) or None, to_value=f"incident {incident_id}",
              reason=reason)
        bump_content(conn)


def list_incidents(db: Database) -> list[dict]:
    with db.read() as conn:
        rows = conn.execute(select(Incident.id, Incident.title, Incident.severity, Incident.status,
                                   Incident.exposed, Incident.updated_at).order_by(Incident.id.desc())).all()
    return [dict(r._mapping) for r in rows]
