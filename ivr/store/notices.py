"""Notice campaigns in the database: who is on one, what they were sent, who opted out.

Numbers are sealed (ivr/store/sealed.py) and hashed as the breach list hashes them (ivr/store/affected.py);
references only as keyed hashes (ivr/core/reference_codes.py `code_hash` under `reference_key`).
Planning from a file: ivr/store/notice_plan.py; sending: ivr/worker/notices.py.
"""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import bindparam, func, select, update

from ivr.core.errors import Conflict, NotFound, Refused
from ivr.core.reference_codes import code_hash
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import NoticeCampaign, NoticeRecipient, utcnow
from ivr.store.models.notices import RECIPIENT_STATES
from ivr.store.sealed import after_removal
from ivr.store.verification import reference_key

R = NoticeRecipient.__table__
C = NoticeCampaign.__table__


def reference_hash_of(secret_key: str, code: str) -> str:
    """The stored form of a notice's code (already normalized: ivr.core.reference_codes.normalize)."""
    return code_hash(reference_key(secret_key), code)


def recipient_by_reference(db: Database, reference_hash: str) -> dict | None:
    """The recipient whose notice carried this reference: {campaign_id, language, exposed, number_hash
    (bytes, as affected_numbers)}; None if no notice did. One indexed lookup."""
    with db.read() as conn:
        row = conn.execute(_BY_REFERENCE, {"h": reference_hash}).first()
    return None if row is None else dict(row._mapping)


_BY_REFERENCE = select(NoticeRecipient.campaign_id, NoticeRecipient.language, NoticeRecipient.exposed,
                       NoticeRecipient.number_hash).where(NoticeRecipient.reference_hash == bindparam("h"))


# -- a campaign's figures: the one place every surface (CLI, API, console) reads them ----------------------------
RATE_WINDOW_S = 60


def campaign_figures(db: Database, campaign_id: int) -> dict | None:
    """What a campaign is and how far it got: counts per recipient state, failures by Twilio's error code,
    the rate over the last minute and the time left at that rate (or the configured one)."""
    now = utcnow()
    with db.read() as conn:
        c = conn.execute(select(C).where(C.c.id == campaign_id)).first()
        if c is None:
            return None
        counts = {state: 0 for state in RECIPIENT_STATES}
        counts.update({s: n for s, n in conn.execute(select(R.c.state, func.count()).where(
            R.c.campaign_id == campaign_id).group_by(R.c.state))})
        failed = {str(code or "unknown"): n for code, n in conn.execute(select(R.c.error_code, func.count()).where(
            R.c.campaign_id == campaign_id, R.c.state == "failed").group_by(R.c.error_code))}
        recent = conn.execute(select(func.count()).select_from(R).where(
            R.c.campaign_id == campaign_id, R.c.sent_at >= now - timedelta(seconds=RATE_WINDOW_S))).scalar_one()
    since = c.started_at and (now - c.started_at).total_seconds()
    rate = recent / min(RATE_WINDOW_S, max(since or RATE_WINDOW_S, 1.0))
    left = counts["queued"] + counts["sending"]
    pace = rate if rate > 0 else (c.rate_per_second if c.state == "sending" else 0)
    return {
        "id": c.id, "name": c.name, "state": c.state, "channels": c.channels.split(","),
        "rate_per_second": c.rate_per_second, "quiet_hours": c.quiet_hours, "sender": c.sender,
        "source": c.source, "created_by": c.created_by, "created_at": _iso(c.created_at),
        "started_at": _iso(c.started_at), "finished_at": _iso(c.finished_at),
        "languages": sorted(json.loads(c.statements)), "total": sum(counts.values()), "counts": counts,
        "failed_by_code": failed, "rate_now": round(rate, 2),
        "eta_s": round(left / pace) if left and pace else (0 if not left else None),
    }


def campaign_ids(db: Database) -> list[int]:
    with db.read() as conn:
        return list(conn.execute(select(C.c.id).order_by(C.c.id.desc())).scalars())


def _iso(value) -> str | None:
    return value.isoformat() if value else None


# -- pause, resume, cancel, finish: audited ---------------------------------------------------------------------------
# action -> (states it applies to, the state it leads to)
TRANSITIONS = {
    "send": (("planned",), "sending"),
    "pause": (("sending",), "paused"),
    "resume": (("paused",), "sending"),
    "cancel": (("planning", "planned", "sending", "paused"), "cancelled"),
}


def change_state(db: Database, campaign_id: int, action: str, *, actor: str, reason: str = "") -> dict:
    """Apply `action` to a campaign; Refused (nothing changes) if it does not apply to its state. Cancelling
    ends it: what was not sent never will be, and every number it held is deleted."""
    if action not in TRANSITIONS:
        raise Refused(f"no action {action!r} (use {', '.join(TRANSITIONS)})")
    allowed, to = TRANSITIONS[action]
    now = utcnow()
    with db.write() as conn:
        state = conn.execute(select(C.c.state).where(C.c.id == campaign_id)).scalar()
        if state is None:
            raise NotFound(f"no campaign {campaign_id}")
        if state not in allowed:
            raise Conflict(f"campaign {campaign_id} is {state}: {action} applies only to {' or '.join(allowed)}")
        values = {"state": to, "updated_at": now}
        if to == "sending":
            values["started_at"] = func.coalesce(C.c.started_at, now)
        conn.execute(update(C).where(C.c.id == campaign_id).values(**values))
        if to == "cancelled":
            _end(conn, campaign_id, now)
        audit(conn, actor=actor, action=f"notice.{action}", subject=f"campaign {campaign_id}", from_value=state,
              to_value=to, reason=reason)
    return campaign_figures(db, campaign_id)


def finish(db: Database, campaign_id: int) -> bool:
    """A sending campaign with nothing left to do is finished and its numbers deleted; False if it was not
    sending any more (paused or cancelled meanwhile)."""
    now = utcnow()
    with db.write() as conn:
        if not conn.execute(update(C).where(C.c.id == campaign_id, C.c.state == "sending").values(
                state="finished", updated_at=now)).rowcount:
            return False
        _end(conn, campaign_id, now)
        audit(conn, actor="notice sender", action="notice.finish", subject=f"campaign {campaign_id}",
              from_value="sending", to_value="finished", reason="every recipient sent, refused or opted out")
    return True


def _end(conn, campaign_id: int, now) -> None:
    """What was not sent is skipped; every number of the campaign is deleted (the hashes stay, for STOP and
    the reference's caller); the WAL is truncated once this commits (ivr/store/sealed.py)."""
    conn.execute(update(R).where(R.c.campaign_id == campaign_id, R.c.state == "queued").values(
        state="skipped", updated_at=now))
    conn.execute(update(R).where(R.c.campaign_id == campaign_id, R.c.number_sealed.is_not(None)).values(
        number_sealed=None))
    conn.execute(update(C).where(C.c.id == campaign_id)
                 .values(finished_at=now, sender_token=None, sender_until=None))
    after_removal(conn)
