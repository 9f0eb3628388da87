"""What staff read about the hotline (console, API, metrics): the active incident, calls and their paths
through the menu, and chart figures.

Time windows go through calls.started_at (indexed), and events are reached through their call, so the
dashboard stays cheap while a surge fills call_events.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Connection, Integer, String, any_, case, cast, func, inspect, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError

from ivr.store.db import Database
from ivr.core.call_status import TERMINAL
from ivr.core.words import (AGENT_STATES, DESK_ONLY, ON_A_BREAK, ON_A_CALL, ON_THE_LINE,  # noqa: F401
                             SIGNED_OUT, WRAP_UP)
from ivr.store.models import TOPICS, Agent, Announcement, Call, Callback, CallEvent, Incident

IN_PROGRESS_WINDOW = timedelta(hours=2)  # a call with no final status older than this was lost, not live
ABANDONED_OUTCOMES = ("listening", "queued")  # the caller hung up while listening or waiting for an agent


def active_incident(conn: Connection):
    """The incident the hotline talks about (id, title, severity, exposed), or None."""
    return conn.execute(select(Incident.id, Incident.title, Incident.severity, Incident.exposed)
                        .where(Incident.status == "active").order_by(Incident.updated_at.desc()).limit(1)).first()


def published_announcements(conn: Connection, incident_id: int) -> list:
    return conn.execute(select(Announcement.id, Announcement.language, Announcement.topic, Announcement.version,
                               Announcement.text, Announcement.media_sha256, Announcement.duration_ms,
                               Announcement.published_at)
                        .where(Announcement.incident_id == incident_id, Announcement.status == "published")
                        .order_by(Announcement.language, Announcement.topic)).all()


def call_counts(conn: Connection, now: datetime) -> tuple[int, int]:
    """(calls in progress, calls started in the last hour)."""
    live = select(func.count()).select_from(Call).where(
        Call.started_at >= now - IN_PROGRESS_WINDOW, Call.status.is_(None) | Call.status.not_in(TERMINAL))
    last_hour = select(func.count()).select_from(Call).where(Call.started_at >= now - timedelta(hours=1))
    return conn.execute(live).scalar_one(), conn.execute(last_hour).scalar_one()


def outcomes_since(conn: Connection, since: datetime) -> dict[str, int]:
    """How the calls started since `since` stand (or ended), counted by outcome."""
    rows = conn.execute(select(func.coalesce(Call.outcome, "unknown"), func.count())
                        .where(Call.started_at >= since).group_by(Call.outcome)).all()
    return {outcome: n for outcome, n in rows}


def callbacks_waiting(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(Callback).where(Callback.status == "waiting")).scalar_one()


def call_steps(conn: Connection, sids: list[str]) -> dict[str, list]:
    """Each call's steps (kind, digits, detail) in the order they happened; rows are written in batches, not
    in step order."""
    steps: dict[str, list] = {sid: [] for sid in sids}
    if sids:
        for row in conn.execute(select(CallEvent.call_sid, CallEvent.kind, CallEvent.digits, CallEvent.detail)
                                .where(_among(conn, CallEvent.call_sid, sids))
                                .order_by(CallEvent.call_sid, CallEvent.at, CallEvent.id)).all():
            steps[row.call_sid].append(row)  # .all(): one fetch, not one driver call per row
    return steps


def _among(conn: Connection, column, values: list[str]):
    """`column IN values`; on PostgreSQL one array parameter (= ANY): an export page of 1,000 calls otherwise
    spent longer building the statement's 1,000 parameters than the database spent answering it."""
    if conn.dialect.name == "postgresql":
        return column == any_(literal(list(values), ARRAY(String)))
    return column.in_(values)


def _epoch(conn: Connection, column):
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def slot_of(conn: Connection, column, since: datetime, seconds: int):
    """The index of the `seconds`-long slot since `since` that `column`'s moment falls in (SQL)."""
    return (_epoch(conn, column) - int(since.timestamp())) // seconds


def _bucket(conn: Connection, since: datetime, seconds: int):
    """The index of the `seconds`-long slot since `since` a call started in."""
    return slot_of(conn, Call.started_at, since, seconds)


def calls_per_slot(conn: Connection, since: datetime, seconds: int, slots: int) -> list[int]:
    """How many calls started in each slot from `since` on."""
    bucket = _bucket(conn, since, seconds).label("slot")
    counts = [0] * slots
    for slot, n in conn.execute(select(bucket, func.count()).where(Call.started_at >= since).group_by(bucket)):
        if 0 <= slot < slots:
            counts[slot] = n
    return counts


def abandoned_per_slot(conn: Connection, since: datetime, seconds: int, slots: int) -> tuple[list[int], list[int]]:
    """(calls, abandoned calls) per slot: abandoned means it ended while listening or queued."""
    bucket = _bucket(conn, since, seconds).label("slot")
    abandoned = func.sum(case((Call.outcome.in_(ABANDONED_OUTCOMES) & (Call.status == "completed"), 1), else_=0))
    total, lost = [0] * slots, [0] * slots
    for slot, n, a in conn.execute(select(bucket, func.count(), abandoned).where(Call.started_at >= since)
                                   .group_by(bucket)):
        if 0 <= slot < slots:
            total[slot], lost[slot] = n, int(a or 0)
    return total, lost


def menu_choices(conn: Connection, since: datetime) -> list[tuple[str, int]]:
    """What callers chose in the menu (the action), most chosen first, for calls since `since`."""
    rows = conn.execute(select(CallEvent.detail, func.count()).join(Call, Call.call_sid == CallEvent.call_sid)
                        .where(Call.started_at >= since, CallEvent.kind == "menu_choice")
                        .group_by(CallEvent.detail).order_by(func.count().desc(), CallEvent.detail))
    return [(detail or "(none)", n) for detail, n in rows]


def call_paths(conn: Connection, sids: list[str]) -> dict[str, list[str]]:
    """Each call's path through the menu, step by step in plain words, in the order it happened."""
    return {sid: [describe_step(s.kind, s.detail, s.digits) for s in steps]
            for sid, steps in call_steps(conn, sids).items()}


def describe_step(kind: str, detail: str | None, digits: str | None) -> str:
    if kind == "menu_choice":
        return f"{digits} {detail}" if digits else (detail or kind)
    if kind == "call_started":
        return f"start ({detail})" if detail else "start"
    return f"{kind}: {detail}" if detail else kind


def queue_summary(db: Database) -> list[tuple[str, str]]:
    """Callers waiting for an agent and callbacks owed; 'not configured' until those tables exist."""
    found = set(inspect(db.engine).get_table_names())
    out = []
    for table, label in (("queue_entries", "Callers waiting for an agent"), ("callbacks", "Callbacks owed")):
        if table not in found:
            out.append((label, "not configured"))
            continue
        try:
            with db.read() as conn:
                n = conn.execute(text(f"SELECT count(*) FROM {table} WHERE status = 'waiting'")).scalar_one()
        except SQLAlchemyError:  # their schema is still settling: show the gap, never break the dashboard
            out.append((label, "unavailable"))
        else:
            out.append((label, str(n)))
    return out


# -- right now: who is on the agent line, what callers would hear nothing about -------------------------------


# The states' words are the one vocabulary's (ivr/core/words.py).


def agent_state(status: str | None, line_up: bool) -> str:
    """One agent's state from the status the line and the desk keep, and whether their line call is up."""
    if status == "available":
        return ON_THE_LINE if line_up else DESK_ONLY
    return {"on_call": ON_A_CALL, "wrap_up": WRAP_UP, "break": ON_A_BREAK}.get(status or "", SIGNED_OUT)


@dataclass(frozen=True)
class AgentNow:
    name: str
    state: str  # one of AGENT_STATES
    since: datetime | None  # when the line or the desk last changed it
    user_name: str | None  # their console login, for the desk


def agents_now(conn: Connection) -> list[AgentNow]:
    """Every active agent's state: the one reading the dashboard, the agents page, the desk, the metrics and
    the API show."""
    rows = conn.execute(select(Agent.name, Agent.status, Agent.status_at, Agent.line_call_sid, Agent.user_name)
                        .where(Agent.active.is_(True)).order_by(Agent.name)).all()
    return [AgentNow(r.name, agent_state(r.status, r.line_call_sid is not None), r.status_at, r.user_name)
            for r in rows]


@dataclass(frozen=True)
class Presence:
    available: tuple[str, ...]  # on the line and free: a caller who presses 0 reaches one of them
    on_call: tuple[str, ...]
    wrap_up: tuple[str, ...] = ()
    desk_only: tuple[str, ...] = ()  # "available" on the desk with no agent-line call: not free


def presence(conn: Connection) -> Presence:
    """The active agents by what they can do for a caller now (agents_now, grouped)."""
    now = agents_now(conn)

    def named(state: str) -> tuple[str, ...]:
        return tuple(a.name for a in now if a.state == state)

    return Presence(named(ON_THE_LINE), named(ON_A_CALL), named(WRAP_UP), named(DESK_ONLY))


def unpublished(conn: Connection, incident_id: int | None, languages) -> list[tuple[str, str]]:
    """(language, topic) pairs of the rules' languages with nothing published for the active incident."""
    have = set()
    if incident_id is not None:
        have = {tuple(r) for r in conn.execute(select(Announcement.language, Announcement.topic).where(
            Announcement.incident_id == incident_id, Announcement.status == "published"))}
    return [(lang, topic) for lang in languages for topic in TOPICS if (lang, topic) not in have]
