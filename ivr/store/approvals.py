"""Two-person publishing: a statement callers have never heard is published only when a second person approves
it, or when an admin overrides the rule in an emergency, saying why (flagged on the dashboard).

Asking (ivr/store/announcements.py `ask_approval`) marks the draft; approving publishes it in the same
transaction as the check that the approver is neither who made it nor who asked for it. Both names are kept on
the version and in the audit log. Who may approve or override is ivr/ops/roles.py's; the surfaces check it.
"""
from __future__ import annotations

from sqlalchemy import Connection, select, update

from ivr.store import scheduled
from ivr.store.announcements import (ROW_COLUMNS, AnnouncementConflict, AnnouncementError, as_version,
                                     audit_subject, publish_and_audit, version_row, with_warnings)
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import Announcement, utcnow

RECENT_OVERRIDES = 5  # how many the dashboard lists


class SelfApproval(AnnouncementConflict):
    """The approver made the draft or asked for it to be published: a second person must approve it."""


def approve(db: Database, announcement_id: int, *, actor: str, reason: str = "") -> dict:
    """A second person approves a draft awaiting approval: it is published at once, or, when a publish of it is
    planned (ivr/store/scheduled.py), at that time. Audited with both names."""
    with db.write() as conn:
        row = _awaiting(conn, announcement_id)
        if actor in (row["created_by"], row["requested_by"]):
            raise SelfApproval(f"{actor} made or asked for announcement {announcement_id} (version "
                               f"{row['version']}): a second person must approve it")
        _mark(conn, announcement_id, actor, None)
        how = f"asked for by {row['requested_by']}, approved by {actor}"
        planned = scheduled.pending_publish(conn, announcement_id)
        if planned is None:
            publish_and_audit(conn, announcement_id, actor, reason, action="announcement.approve", how=how)
        else:
            audit(conn, actor=actor, action="announcement.approve",
                  subject=audit_subject(row["incident_id"], row["language"], row["topic"], row["version"]),
                  to_value=f"approved ({how}): published at {planned:%Y-%m-%d %H:%M} UTC, as planned",
                  reason=reason)
        return with_warnings(conn, version_row(conn, announcement_id))


def override(db: Database, announcement_id: int, *, actor: str, reason: str) -> dict:
    """An admin publishes a draft alone in an emergency; the reason is required, audited and shown on the
    dashboard. The role check is the surface's (ivr/ops/roles.py "override two-person publishing")."""
    reason = (reason or "").strip()
    if not reason:
        raise AnnouncementError("an override of two-person publishing needs a reason: it is audited and shown "
                                "on the dashboard")
    with db.write() as conn:
        row = version_row(conn, announcement_id)
        if row["status"] != "draft":
            raise AnnouncementConflict(f"announcement {announcement_id} (version {row['version']}) is "
                                       f"{row['status']}: only a draft is published by an override")
        _mark(conn, announcement_id, actor, reason)
        asked = f"asked for by {row['requested_by']}, " if row["requested_by"] else ""
        publish_and_audit(conn, announcement_id, actor, reason, action="announcement.override",
                 how=f"{asked}published by {actor} alone: two-person publishing overridden")
        return with_warnings(conn, version_row(conn, announcement_id))


def awaiting(db: Database) -> list[dict]:
    """Drafts asked to be published and not yet approved, oldest first: what callers do not hear yet."""
    with db.read() as conn:
        rows = conn.execute(select(*ROW_COLUMNS).where(Announcement.status == "draft",
                                                       Announcement.requested_by.is_not(None))
                            .order_by(Announcement.requested_at, Announcement.id)).all()
    return [as_version(r) for r in rows]


def recent_overrides(db: Database, limit: int = RECENT_OVERRIDES) -> list[dict]:
    """The latest versions an admin published alone, newest first (the dashboard flags them)."""
    with db.read() as conn:
        rows = conn.execute(select(*ROW_COLUMNS).where(Announcement.override_reason.is_not(None))
                            .order_by(Announcement.approved_at.desc()).limit(limit)).all()
    return [as_version(r) for r in rows]


def awaiting_sentence(row: dict) -> str:
    """One draft awaiting approval, in words: `ivr status`, `ivr preflight`, the dashboard."""
    return (f"{row['language']}/{row['topic']} version {row['version']} (announcement {row['id']}, asked for by "
            f"{row['requested_by']}) awaits a second person's approval: callers do not hear it until then "
            f"(ivr announce approve {row['id']})")


def _awaiting(conn: Connection, announcement_id: int) -> dict:
    row = version_row(conn, announcement_id)
    if row["status"] != "draft":
        raise AnnouncementConflict(f"announcement {announcement_id} (version {row['version']}) is "
                                   f"{row['status']}: only a draft awaiting approval can be approved")
    if row["requested_by"] is None:
        raise AnnouncementConflict(f"nobody has asked to publish announcement {announcement_id} (version "
                                   f"{row['version']}) yet: publish it first, then a second person approves it")
    return row


def _mark(conn: Connection, announcement_id: int, actor: str, override_reason: str | None) -> None:
    conn.execute(update(Announcement).where(Announcement.id == announcement_id).values(
        approved_by=actor, approved_at=utcnow(), override_reason=override_reason))
