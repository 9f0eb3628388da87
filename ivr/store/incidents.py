"""Incidents: the breach the hotline talks about. Exactly one is active; its severity feeds the routing rules."""
from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from ivr.core.errors import Conflict, NotFound, Refused
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import TOPICS, Announcement, Incident, utcnow
from ivr.store.reads import unpublished
from ivr.store.state import bump_content


CARRIED_OVER = "carry-over"  # Announcement.source of a copy from the incident before: a stand-in, not news


class IncidentError(Refused):
    """A request about incidents that cannot be carried out; nothing was changed."""


class IncidentNotFound(IncidentError, NotFound):
    """No such incident."""


class IncidentUncovered(IncidentError, Conflict):
    """Activating it would leave callers in some language with nothing published to hear."""


def _check_severity(severity: str, severities: list[str]) -> None:
    if severity not in severities:
        raise IncidentError(f"severity must be one of {', '.join(severities)} (routing_rules.yaml), not {severity!r}")


def create(db: Database, *, title: str, severity: str, exposed: str, severities: list[str], actor: str,
           activate: bool = False, reason: str = "", languages=None, carry_over: bool = False) -> int:
    """A new incident, a draft; with `activate`, made active in the same transaction (see activate_incident
    for `languages` and `carry_over`), so a refused activation leaves no draft behind."""
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
            _activate(conn, incident_id, actor=actor, reason=reason, languages=languages, carry_over=carry_over)
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


def languages_without_announcement(conn: Connection, incident_id: int, languages) -> list[str]:
    """The languages (in the rules' order) with nothing published for this incident: callers of those hear
    only the prompts."""
    missing = set(unpublished(conn, incident_id, languages))
    return [lang for lang in languages if all((lang, topic) in missing for topic in TOPICS)]


def _carry_over(conn: Connection, source_id: int, target_id: int, *, actor: str, reason: str) -> list[str]:
    """Publish, for the target incident, a copy of each announcement the source incident has published in a
    language and topic the target has nothing published for. Returns what was copied ("en/main", ...)."""
    have = set(tuple(r) for r in conn.execute(select(Announcement.language, Announcement.topic).where(
        Announcement.incident_id == target_id, Announcement.status == "published")).all())
    copied = []
    for row in conn.execute(select(Announcement.__table__).where(Announcement.incident_id == source_id,
                                                                 Announcement.status == "published")).all():
        if (row.language, row.topic) in have:
            continue
        where = (Announcement.incident_id == target_id, Announcement.language == row.language,
                 Announcement.topic == row.topic)
        conn.execute(update(Announcement).where(*where, Announcement.status == "published").values(status="archived"))
        version = max(conn.execute(select(Announcement.version).where(*where)).scalars(), default=0) + 1
        conn.execute(insert(Announcement).values(
            incident_id=target_id, language=row.language, topic=row.topic, version=version, status="published",
            text=row.text, source=CARRIED_OVER, engine=row.engine, media_sha256=row.media_sha256,
            duration_ms=row.duration_ms, created_by=actor, created_at=utcnow(), published_at=utcnow()))
        audit(conn, actor=actor, action="announcement.carry_over",
              subject=f"incident {target_id} {row.language}/{row.topic} v{version}",
              from_value=f"incident {source_id} {row.language}/{row.topic} v{row.version}",
              to_value=f"version {version}", reason=reason)
        copied.append(f"{row.language}/{row.topic}")
    return copied


def activate_incident(db: Database, incident_id: int, *, actor: str, reason: str = "", languages=None,
                      carry_over: bool = False) -> list[str]:
    """Make this the incident callers hear about; the previously active one is closed.

    With `languages`, refuse (changing nothing) if any of them would have nothing published, unless
    `carry_over` copies the previous incident's published announcements first. Returns what was carried over.
    """
    with db.write() as conn:
        if conn.execute(select(Incident.id).where(Incident.id == incident_id)).first() is None:
            raise IncidentNotFound(f"there is no incident {incident_id}")
        return _activate(conn, incident_id, actor=actor, reason=reason, languages=languages, carry_over=carry_over)


def _activate(conn: Connection, incident_id: int, *, actor: str, reason: str, languages,
              carry_over: bool) -> list[str]:
    previous = conn.execute(select(Incident.id).where(Incident.status == "active")).scalars().all()
    copied = []
    if carry_over:
        for source in previous:
            if source != incident_id:
                copied += _carry_over(conn, source, incident_id, actor=actor, reason=reason)
    if languages is not None:
        missing = languages_without_announcement(conn, incident_id, languages)
        if missing:
            raise IncidentUncovered(f"callers in {', '.join(missing)} would hear nothing about incident "
                                    f"{incident_id}: publish an announcement for it first, or carry the current "
                                    "announcements over")
    conn.execute(update(Incident).where(Incident.status == "active", Incident.id != incident_id)
                 .values(status="closed", updated_at=utcnow()))
    conn.execute(update(Incident).where(Incident.id == incident_id).values(status="active", updated_at=utcnow()))
    audit(conn, actor=actor, action="incident.activate", subject=f"incident {incident_id}",
          from_value=", ".join(f"incident {p}" for p in previous) or None, to_value=f"incident {incident_id}",
          reason=reason)
    bump_content(conn)
    return copied


def list_incidents(db: Database) -> list[dict]:
    with db.read() as conn:
        rows = conn.execute(select(Incident.id, Incident.title, Incident.severity, Incident.status,
                                   Incident.exposed, Incident.updated_at).order_by(Incident.id.desc())).all()
    return [dict(r._mapping) for r in rows]
