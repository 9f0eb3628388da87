"""The sender's side of a notice campaign in the database: leases, claims, and what became of each text.

One text per person per campaign, across crashes, restarts and several servers: a recipient is claimed
("sending", with the hash of the code about to be texted and the claiming sender's token) in a committed
transaction before the REST call, and marked "sent" with Twilio's message SID after it. A recipient left
"sending" (a sender killed mid-call, an answer lost) is resolved by reading Twilio's messages to that
number (ivr/worker/notices.py): found, it is adopted; not found, it is queued again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ivr.core import notices as rules
from ivr.core.reference_codes import code_hash, new_code
from ivr.store.db import Database, dialect_insert
from ivr.store.models import NoticeCampaign, NoticeOptOut, NoticeRecipient, utcnow
from ivr.store.sealed import open_number
from ivr.store.verification import reference_key

R = NoticeRecipient.__table__
C = NoticeCampaign.__table__


def unsent_reference(recipient_id: int) -> str:
    """The reference column once a code was not texted after all: unique and never a code's hash (hex)."""
    return f"u{recipient_id:031d}"


# -- leases: one sender process per campaign, and per Twilio sender -------------------------------------------
def take_lease(db: Database, campaign_id: int, sender: str, token: str, seconds: float) -> bool:
    """Hold (or keep holding) a campaign that is sending, unless another process holds it, or holds another
    sending campaign with the same Twilio sender (its rate is one budget). False: not ours this time."""
    now = utcnow()
    other = C.alias("other")
    busy_sender = exists().where(other.c.id != C.c.id, other.c.sender == sender, other.c.state == "sending",
                                 other.c.sender_token != token, other.c.sender_until > now)
    with db.write() as conn:
        return conn.execute(update(C).where(
            C.c.id == campaign_id, C.c.state == "sending",
            or_(C.c.sender_token.is_(None), C.c.sender_token == token, C.c.sender_until < now),
            ~busy_sender).values(sender_token=token, sender_until=now + timedelta(seconds=seconds))).rowcount == 1


def release_lease(db: Database, campaign_id: int, token: str) -> None:
    with db.write() as conn:
        conn.execute(update(C).where(C.c.id == campaign_id, C.c.sender_token == token).values(
            sender_token=None, sender_until=None))


def sending_campaigns(db: Database) -> list[dict]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(
            C.c.id, C.c.sender, C.c.rate_per_second, C.c.quiet_hours, C.c.statements, C.c.hotline_number,
            C.c.notice_url).where(C.c.state == "sending").order_by(C.c.id))]


def campaign_state(db: Database, campaign_id: int) -> str | None:
    with db.read() as conn:
        return conn.execute(select(C.c.state).where(C.c.id == campaign_id)).scalar()


def zone_groups(db: Database, campaign_id: int) -> list[str]:
    """The distinct time-zone lists of a campaign's recipients still to send (quiet hours apply per group)."""
    with db.read() as conn:
        return list(conn.execute(select(R.c.time_zones).where(R.c.campaign_id == campaign_id,
                                                              R.c.state == "queued").distinct()).scalars())


# -- claiming: recorded before the REST call ---------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    id: int
    number: str
    language: str
    code: str  # exists only in this process's memory until the text carrying it is sent


def claim(db: Database, campaign_id: int, token: str, limit: int, quiet: list[str], secret_key: str,
          now: datetime | None = None) -> list[Claimed]:
    """Up to `limit` due recipients (not in a quiet group, not opted out), each given a fresh code and
    marked "sending" by this sender, committed before anything is sent."""
    now = now or utcnow()
    key = reference_key(secret_key)
    due = select(R.c.id, R.c.number_sealed, R.c.language).where(
        R.c.campaign_id == campaign_id, R.c.state == "queued",
        or_(R.c.next_attempt_at.is_(None), R.c.next_attempt_at <= now),
        ~exists().where(NoticeOptOut.number_hash == R.c.number_hash))
    if quiet:
        due = due.where(R.c.time_zones.not_in(quiet))
    due = due.limit(limit).with_for_update(skip_locked=True)
    for _ in range(5):  # a fresh code may, rarely, be another recipient's: then all get new ones
        try:
            with db.write() as conn:
                rows = conn.execute(due).all()
                claimed = [Claimed(r.id, open_number(db, r.number_sealed) or "", r.language, new_code())
                           for r in rows]
                if claimed:
                    conn.execute(_CLAIM, [{"rid": c.id, "h": code_hash(key, c.code), "token": token, "now": now}
                                          for c in claimed])
                return [c for c in claimed if c.number]
        except IntegrityError:
            continue
    return []


_CLAIM = update(R).where(R.c.id == bindparam("rid"), R.c.state == "queued").values(
    state="sending", reference_hash=bindparam("h"), locked_by=bindparam("token"), attempts=R.c.attempts + 1,
    updated_at=bindparam("now"))


# -- after the REST call ---------------------------------------------------------------------------------------
def record_sent(db: Database, token: str, sent: list[tuple[int, str]]) -> None:
    """Twilio accepted these (recipient id, message SID): "sent", unless a delivery report got there first."""
    if not sent:
        return
    now = utcnow()
    with db.write() as conn:
        conn.execute(_SENT, [{"rid": rid, "sid": sid, "token": token, "now": now} for rid, sid in sent])


_SENT = update(R).where(R.c.id == bindparam("rid"), R.c.state == "sending", R.c.locked_by == bindparam("token")
                        ).values(state="sent", message_sid=bindparam("sid"), sent_at=bindparam("now"),
                                 updated_at=bindparam("now"), locked_by=None)


def record_refused(db: Database, token: str, refused: list[tuple[int, int | None, int | None]]) -> None:
    """Twilio refused these (recipient id, HTTP status, error code): nothing was sent. Retried later where
    Twilio says it may help, an opt-out where the number unsubscribed, else failed for good."""
    if not refused:
        return
    with db.write() as conn:
        for rid, status, code in refused:
            row = conn.execute(select(R.c.attempts, R.c.number_hash).where(
                R.c.id == rid, R.c.state == "sending", R.c.locked_by == token)).first()
            if row is not None:
                _after_failure(conn, rid, row.attempts, row.number_hash, rules.after_error(status, code), code)


def _after_failure(conn, rid: int, attempts: int, number_hash: bytes, verdict: str, code: int | None) -> None:
    now = utcnow()
    if verdict == rules.RETRY and attempts < rules.MAX_ATTEMPTS:
        values = dict(state="queued", next_attempt_at=now + timedelta(seconds=rules.backoff_seconds(attempts)))
    elif verdict == rules.OPTED_OUT:
        _opt_out(conn, number_hash, now)
        values = dict(state="opted_out")
    else:
        values = dict(state="failed")
    if values["state"] == "queued":  # the next attempt gets a new code and a new message
        values["message_sid"] = None
    conn.execute(update(R).where(R.c.id == rid).values(
        error_code=code, locked_by=None, updated_at=now, reference_hash=unsent_reference(rid), **values))


# -- resolving recipients left "sending" ------------------------------------------------------------------------
def stale_sending(db: Database, campaign_id: int, token: str, older_than_s: float, limit: int = 200) -> list[dict]:
    """Recipients left "sending" longer than a lease and a REST timeout (their sender died or lost the answer),
    taken over by this sender for resolving: {id, number, reference_hash}."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    now = utcnow()
    with db.write() as conn:
        rows = conn.execute(select(R.c.id, R.c.number_sealed, R.c.reference_hash, R.c.updated_at).where(
            R.c.campaign_id == campaign_id, R.c.state == "sending", R.c.updated_at < cutoff)
            .limit(limit).with_for_update(skip_locked=True)).all()
        taken = []
        for r in rows:
            if conn.execute(update(R).where(R.c.id == r.id, R.c.state == "sending", R.c.updated_at == r.updated_at)
                            .values(locked_by=token, updated_at=now)).rowcount:
                taken.append({"id": r.id, "number": r.number_sealed, "reference_hash": r.reference_hash})
    for t in taken:
        t["number"] = open_number(db, t["number"])
    return taken


def requeue(db: Database, token: str, recipient_ids: list[int]) -> None:
    """Nothing was sent to these after all: queued again, their unsent code forgotten."""
    with db.write() as conn:
        for rid in recipient_ids:
            conn.execute(update(R).where(R.c.id == rid, R.c.state == "sending", R.c.locked_by == token).values(
                state="queued", locked_by=None, reference_hash=unsent_reference(rid), updated_at=utcnow()))


# -- finishing ----------------------------------------------------------------------------------------------------
def settled(db: Database, campaign_id: int, settle_seconds: float) -> bool:
    """Nothing left to send or retry, and no report expected: nothing updated for `settle_seconds` or every
    text's outcome known."""
    with db.read() as conn:
        pending = conn.execute(select(func.count()).select_from(R).where(
            R.c.campaign_id == campaign_id, R.c.state.in_(("queued", "sending")))).scalar_one()
        if pending:
            return False
        last = conn.execute(select(func.max(R.c.updated_at)).where(R.c.campaign_id == campaign_id)).scalar()
        waiting = conn.execute(select(func.count()).select_from(R).where(
            R.c.campaign_id == campaign_id, R.c.state == "sent")).scalar_one()
    return not waiting or last is None or last < utcnow() - timedelta(seconds=settle_seconds)


# -- what Twilio tells us: delivery reports and replies (written by the spool writer) -----------------------
RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "opted_out": 3, "skipped": 3}


def write_spooled(conn, records: list[dict]) -> None:
    """Delivery reports (`notice_status`) and replies (`notice_reply`) spooled by webhooks/sms.py; a replayed
    record changes nothing, a late or out-of-order one never moves a recipient backwards."""
    for r in records:
        if r.get("type") == "notice_status" and r.get("recipient"):
            _status(conn, r)
        elif r.get("type") == "notice_reply" and r.get("number_hash"):
            number_hash = bytes.fromhex(r["number_hash"])
            if r.get("kind") == rules.OPT_OUT:
                _opt_out(conn, number_hash, utcnow())
            elif r.get("kind") == rules.OPT_IN:
                conn.execute(delete(NoticeOptOut).where(NoticeOptOut.number_hash == number_hash))


def _status(conn, r: dict) -> None:
    new = rules.STATUS_TO_STATE.get(str(r.get("status")))
    sid = str(r.get("sid") or "")[:64]
    if new is None or not sid:
        return
    row = conn.execute(select(R.c.state, R.c.message_sid, R.c.attempts, R.c.number_hash, R.c.number_sealed)
                       .where(R.c.id == int(r["recipient"]))).first()
    if row is None or (row.message_sid not in (None, sid)) or RANK[row.state] >= RANK[new] or row.state == "queued":
        return
    now = utcnow()
    if new == "failed":
        code = _int(r.get("error_code"))
        conn.execute(update(R).where(R.c.id == int(r["recipient"])).values(message_sid=sid))
        verdict = rules.after_error(None, code) if row.number_sealed else rules.GIVE_UP
        _after_failure(conn, int(r["recipient"]), row.attempts, row.number_hash, verdict, code)
        return
    values = dict(state=new, message_sid=sid, updated_at=now, sent_at=func.coalesce(R.c.sent_at, now))
    if new == "delivered":
        values["delivered_at"] = now
    conn.execute(update(R).where(R.c.id == int(r["recipient"])).values(**values))


def _opt_out(conn, number_hash: bytes, now: datetime) -> None:
    """The number is out of every campaign from now on: kept as its hash, its queued notices skipped."""
    conn.execute(dialect_insert(conn, NoticeOptOut.__table__).on_conflict_do_nothing(
        index_elements=["number_hash"]), [{"number_hash": number_hash, "since": now}])
    conn.execute(update(R).where(R.c.number_hash == number_hash, R.c.state == "queued").values(
        state="opted_out", updated_at=now))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
