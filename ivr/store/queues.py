"""Queue state shared by every worker and server (it lives in the database), and the callbacks owed."""
from __future__ import annotations

import logging
import statistics
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from ivr.core.errors import NotFound, Refused
from ivr.core.identity import caller_identity
from ivr.core.phone_numbers import callable_number
from ivr.store import jobs, sealed
from ivr.store.db import Database, dialect_insert
from ivr.store.models import Callback, QueueEntry, utcnow
from ivr.core.routing import QueueStats

log = logging.getLogger(__name__)


class QueueError(Refused):
    """A request about queues or callbacks that cannot be carried out; nothing was changed."""


class CallbackNotFound(QueueError, NotFound):
    """No such callback waiting."""


class _TTLCache:
    """A value recomputed at most every `ttl` seconds per process: queue state for routing and hold loops.

    These are read in callers' webhooks, so a database that cannot be read must not fail the call: the last
    value (or `default`) is served until the next try, a ttl later, which also keeps a dead database to one
    failed connect per process per ttl rather than one per webhook."""

    def __init__(self, ttl: float):
        self.ttl, self._at, self._value, self._lock = ttl, {}, {}, threading.Lock()

    def get(self, key, compute, default):
        now = time.monotonic()
        if key in self._at and now - self._at[key] < self.ttl:
            return self._value[key]
        try:
            value = compute()
        except SQLAlchemyError as exc:
            value = self._value.get(key, default)
            log.warning("queue state unreadable, routing on the last known (%r) until the next try: %s",
                        value, exc)
        with self._lock:
            self._at[key], self._value[key] = now, value
        return value


_stats_cache = _TTLCache(1.0)
_wait_cache = _TTLCache(10.0)


# An agent's <Dial><Queue> is on its way to this caller: still on hold until Twilio says they were connected.
CONNECTING = "connecting"
ON_HOLD = ("waiting", CONNECTING)


def queue_stats(db: Database, cached: bool = True) -> dict[str, QueueStats]:
    """Callers waiting per queue, and how long the longest has waited."""

    def compute():
        with db.read() as conn:
            rows = conn.execute(select(QueueEntry.queue, func.count(), func.min(QueueEntry.enqueued_at))
                                .where(QueueEntry.status.in_(ON_HOLD)).group_by(QueueEntry.queue)).all()
        now = datetime.now(timezone.utc)
        return {q: QueueStats(n, int((now - oldest).total_seconds())) for q, n, oldest in rows}

    return _stats_cache.get(("stats", db.url), compute, {}) if cached else compute()


def recent_wait_minutes(db: Database, queue: str) -> int | None:
    """What callers answered in the last hour in this queue actually waited (median, rounded up), if at
    least three were answered: a measured figure, not a promise. Only entries Twilio reported connected are
    "bridged" (dial_ended below, and the Enqueue action's QueueResult), so no claimed-but-gone caller counts."""

    def compute():
        since = utcnow() - timedelta(hours=1)
        with db.read() as conn:
            waits = conn.execute(select(QueueEntry.wait_s).where(
                QueueEntry.queue == queue, QueueEntry.status == "bridged", QueueEntry.ended_at >= since,
                QueueEntry.wait_s.is_not(None))).scalars().all()
        return max(1, -(-int(statistics.median(waits)) // 60)) if len(waits) >= 3 else None

    return _wait_cache.get(("wait", db.url, queue), compute, None)


RECONCILE_MARGIN_MINUTES = 10  # beyond a queue's max_wait_minutes, a "waiting" entry is a lost request
UNKNOWN_QUEUE_MAX_WAIT_MINUTES = 60  # an entry of a queue no longer in the rules


def reconcile(db: Database, max_wait_minutes: dict[str, int], now: datetime | None = None) -> list[dict]:
    """Close entries still "waiting" long past their queue's maximum wait ("expired"): their call ended
    and both the Enqueue action and the final status were lost. Otherwise routing, which reads the longest
    wait, would send every new caller to the overflow for ever. Returns the entries closed."""
    now = now or datetime.now(timezone.utc)
    with db.write() as conn:
        rows = conn.execute(select(QueueEntry.id, QueueEntry.call_sid, QueueEntry.queue, QueueEntry.enqueued_at)
                            .where(QueueEntry.status.in_(ON_HOLD))).all()
        stale = [r for r in rows if now - r.enqueued_at > timedelta(minutes=max_wait_minutes.get(
            r.queue, UNKNOWN_QUEUE_MAX_WAIT_MINUTES) + RECONCILE_MARGIN_MINUTES)]
        if stale:
            conn.execute(update(QueueEntry).where(QueueEntry.id.in_([r.id for r in stale]),
                                                  QueueEntry.status.in_(ON_HOLD))
                         .values(status="expired", ended_at=now))
    return [{"call_sid": r.call_sid, "queue": r.queue, "waited_s": int((now - r.enqueued_at).total_seconds())}
            for r in stale]


def closed_without_queue_result(db: Database) -> dict[str, int]:
    """How many entries were closed by a call's final status ("ended") or by reconcile() ("expired")."""
    with db.read() as conn:
        rows = conn.execute(select(QueueEntry.status, func.count()).where(QueueEntry.status.in_(("ended", "expired")))
                            .group_by(QueueEntry.status)).all()
    return {"ended": 0, "expired": 0, **{status: n for status, n in rows}}


def next_waiting(db: Database) -> dict | None:
    """The caller an agent should take: the longest-waiting one in the highest-priority queue."""
    with db.read() as conn:
        row = conn.execute(select(QueueEntry.call_sid, QueueEntry.queue, QueueEntry.priority)
                           .where(QueueEntry.status == "waiting")
                           .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at, QueueEntry.id).limit(1)).first()
    return dict(row._mapping) if row else None


def take_next(db: Database, agent: str, serves: tuple[str, ...] = ()) -> dict | None:
    """Claim the caller an agent should take (as next_waiting, from the queues they serve; none: all) for
    `agent`, in one transaction, so two agents dialling at once are told about two different callers.

    Claimed is not connected: the entry is "connecting" until the agent's <Dial><Queue> says whom Twilio
    connected (dial_ended), since Twilio hands the agent whoever is at the front of its queue, and a caller
    whose call ended unnoticed is not there at all."""
    now = utcnow()
    waiting = QueueEntry.status == "waiting"
    if serves:
        waiting = waiting & QueueEntry.queue.in_(serves)
    with db.write() as conn:
        row = conn.execute(select(QueueEntry.__table__).where(waiting)
                           .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at, QueueEntry.id).limit(1)
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        waited = max(0, int((now - row.enqueued_at).total_seconds()))
        conn.execute(update(QueueEntry).where(QueueEntry.id == row.id).values(status=CONNECTING, agent=agent))
    return {**row._mapping, "wait_s": waited}


CONNECTED = ("completed", "answered")  # DialCallStatus when the agent and the dequeued caller talked
NOBODY_THERE = ("no-answer", "failed")  # an empty queue until the Dial's timeout; a queue that does not exist


def dial_ended(db: Database, agent: str, status: str, connected_sid: str | None, talk_s: int | None) -> str | None:
    """The agent's <Dial><Queue> ended; its action carries DialCallStatus, DialCallSid (the dequeued caller)
    and DialCallDuration (twilio.com/docs/voice/twiml/dial#action). Twilio connects the agent to the front
    of its queue, and "if the queue is empty, Dial will wait until the next person joins the queue or until
    the <Dial> timeout duration is reached" (twilio.com/docs/voice/twiml/queue). So:

    - connected: the caller named by DialCallSid is bridged to this agent (whichever entry was claimed), with
      the wait up to the moment they were connected;
    - no-answer or failed: Twilio's queue held nobody, so the claimed caller's call had ended: "ended";
    - anything else (busy, canceled): the claimed caller goes back to waiting.
    The caller claimed for this agent (take_next), if not the one connected, goes back to waiting too.
    Returns the connected CallSid."""
    now = utcnow()
    connected = connected_sid if status in CONNECTED and connected_sid else None
    with db.write() as conn:
        if connected:
            row = conn.execute(select(QueueEntry.id, QueueEntry.status, QueueEntry.enqueued_at)
                               .where(QueueEntry.call_sid == connected)).first()
            if row is not None and row.status in (*ON_HOLD, "ended"):
                met = now - timedelta(seconds=talk_s or 0)
                conn.execute(update(QueueEntry).where(QueueEntry.id == row.id).values(
                    status="bridged", agent=agent, ended_at=now,
                    wait_s=max(0, int((met - row.enqueued_at).total_seconds()))))
            elif row is not None and row.status == "bridged":  # the Enqueue action said so first
                conn.execute(update(QueueEntry).where(QueueEntry.id == row.id, QueueEntry.agent.is_(None))
                             .values(agent=agent))
        gone = not connected and status in NOBODY_THERE
        conn.execute(update(QueueEntry).where(QueueEntry.status == CONNECTING, QueueEntry.agent == agent)
                     .values(**({"status": "ended", "ended_at": now} if gone else {"status": "waiting", "agent": None})))
    return connected


def entry(db: Database, call_sid: str) -> dict | None:
    with db.read() as conn:
        row = conn.execute(select(QueueEntry.__table__).where(QueueEntry.call_sid == call_sid)).first()
    return dict(row._mapping) if row else None


def open_callback_query(number_hash: str):
    """The open callback owed to the caller with this keyed hash (hotline.caller_identity(number)[0]), oldest
    first: a select to run in the caller's transaction. By the hash, not the number: numbers are stored
    sealed, and a token never repeats (ivr/store/sealed.py)."""
    from ivr.store.callbacks import OPEN

    return (select(Callback.__table__).where(Callback.status.in_(OPEN), Callback.number_hash == number_hash)
            .order_by(Callback.requested_at, Callback.id).limit(1))


def callback_owner(number_hash: str | None, reference: str = "") -> str | None:
    """Who a callback is owed to, as stored in callbacks.number_hash: the reference the caller proved on the
    hotline (ivr/core/verification.py; a person calling from several phones is owed one callback, kept under
    the notice that told them), else the caller's number. "ref:" keeps the two kinds of key apart."""
    return f"ref:{reference}" if reference else number_hash


def open_callback_for(db: Database, number_hash: str | None) -> dict | None:
    """The callback still owed to the caller with this keyed hash, if any (None for no hash: withheld)."""
    if not number_hash:
        return None
    with db.read() as conn:
        row = conn.execute(open_callback_query(number_hash)).first()
    return dict(row._mapping) if row else None


def request_callback(db: Database, *, call_sid: str, number: str, language: str, queue: str, priority: int,
                     reason: str, keep_place: bool = False, voicemail_url: str | None = None,
                     number_hash: str | None = None, number_masked: str | None = None,
                     requested_at: datetime | None = None, reference: str = "") -> None:
    """Store a callback (idempotent per call). Keeping the place means the time they joined the queue;
    `requested_at`: when the caller asked (a callback spooled while the database was away), else now.
    The number is stored sealed (a token the webhook sealed is kept as it is; ivr/store/sealed.py), with
    `number_hash` (the caller's keyed hash), which is what finds it again (open_callback_for); a caller who
    proved a reference in the call has it kept under that instead (callback_owner)."""
    number_hash = callback_owner(number_hash, reference)
    with db.write() as conn:
        requested = requested_at or utcnow()
        if keep_place:
            joined = conn.execute(select(QueueEntry.enqueued_at).where(QueueEntry.call_sid == call_sid)).scalar()
            requested = joined or requested
            conn.execute(update(QueueEntry).where(QueueEntry.call_sid == call_sid, QueueEntry.status.in_(ON_HOLD))
                         .values(status="callback", ended_at=utcnow()))
        # One number has one callback owed: asking again while one is open refreshes it (the earlier place in
        # line, the higher priority and its queue, the newer language, a voicemail kept) rather than adding
        # another for agents to call twice. Here, so that it holds however the request arrives (at once, or
        # spooled while the database was away).
        number = callable_number(number) or number
        if _refreshed(conn, call_sid, number_hash, requested, language=language, queue=queue, priority=priority,
                      reason=reason, voicemail_url=voicemail_url):
            return
        conn.execute(dialect_insert(conn, Callback.__table__).values(
            call_sid=call_sid, number=sealed.seal(db, number),
            number_masked=number_masked or caller_identity("", number)[1] or "",
            number_hash=number_hash,
            language=language, queue=queue, priority=priority, reason=reason,
            requested_at=requested, voicemail_url=voicemail_url, status="waiting",
        ).on_conflict_do_nothing(index_elements=["call_sid"]))


def _refreshed(conn, call_sid: str, number_hash: str | None, requested: datetime, *, language: str, queue: str,
               priority: int, reason: str, voicemail_url: str | None) -> bool:
    """Refresh the callback still owed to this number (found by its keyed hash), if there is one (True:
    nothing more to store)."""
    if not number_hash:  # withheld or unknown: nothing to know the caller by
        return False
    if conn.dialect.name == "postgresql":  # two workers booking for one number at once: one at a time
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"callback {number_hash}"})
    owed = conn.execute(open_callback_query(number_hash)).first()  # (SQLite: BEGIN IMMEDIATE serialises)
    if owed is None:
        return False
    if owed.call_sid != call_sid:  # else a replay of this very request: stored already
        if voicemail_url and owed.voicemail_url and voicemail_url != owed.voicemail_url:  # agents hear the newer
            jobs.delete_recording_at_twilio(conn, owed.voicemail_url, "hotline",
                                            "replaced by a newer voicemail from the same caller")
        better = priority > owed.priority
        conn.execute(update(Callback).where(Callback.id == owed.id).values(
            requested_at=min(owed.requested_at, requested), language=language,
            priority=priority if better else owed.priority, queue=queue if better else owed.queue,
            reason=reason if better else owed.reason, voicemail_url=voicemail_url or owed.voicemail_url,
            next_try_at=None))  # they asked again: they can be reached now, not at the next retry
    return True


def callbacks(db: Database, status: str = "waiting") -> list[dict]:
    """The agents' worklist: highest priority first, then in the order callers originally called."""
    with db.read() as conn:
        rows = conn.execute(select(Callback.__table__).where(Callback.status == status)
                            .order_by(Callback.priority.desc(), Callback.requested_at, Callback.id)).all()
    return [dict(r._mapping) for r in rows]


def callback_done(db: Database, callback_id: int, *, actor: str, note: str = "", reason: str = "") -> None:
    from ivr.store.callbacks import close_by_hand

    if not close_by_hand(db, callback_id, actor=actor, note=note, reason=reason):
        raise CallbackNotFound(f"there is no open callback {callback_id}")

