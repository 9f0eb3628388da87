"""The agent desk's data: each agent's status and current caller, and the wrap-ups they record."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from ivr.core.errors import Refused
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import utcnow
from ivr.store.models import Agent, Callback, QueueEntry, WrapUp

STATUSES = ("available", "on_call", "wrap_up", "break", "signed_out")
CHOSEN = ("available", "break", "signed_out")  # what an agent may set on the desk (on_call, wrap_up: the line's)
LINE = "agent line"  # the actor of the status changes the agent line's own calls make


class DeskError(Refused):
    """A desk request that cannot be carried out; nothing was changed."""


def set_status(db: Database, agent: str, status: str, *, call_sid: str | None = None,
               callback_id: int | None = None, actor: str | None = None, line_call_sid: str | None = None) -> None:
    """Record an agent's status; going on a call (or into its wrap-up) also records whom they are with (kept
    until the next call). `line_call_sid`: their own call to the agent line, signing in on it."""
    if status not in STATUSES:
        raise DeskError(f"status must be one of {', '.join(STATUSES)}")
    values = dict(status=status, status_at=utcnow())
    if status in ("on_call", "wrap_up"):
        values.update(call_sid=call_sid, callback_id=callback_id)
    if line_call_sid:
        values.update(line_call_sid=line_call_sid)
    with db.write() as conn:
        before = conn.execute(select(Agent.status).where(Agent.name == agent)).scalar()
        if before is None:
            raise DeskError(f"there is no agent called {agent!r}")
        conn.execute(update(Agent).where(Agent.name == agent).values(**values))
        if before != status:
            audit(conn, actor=actor or agent, action="agent.status", subject=f"agent {agent}",
                  from_value=before, to_value=status + (f" ({call_sid})" if call_sid else ""))


def agent_for_user(db: Database, user_name: str) -> dict | None:
    """The desk's agent, with their `state` as every surface shows it (reads.agent_state)."""
    from ivr.store.reads import agent_state

    with db.read() as conn:
        row = conn.execute(select(Agent.name, Agent.status, Agent.status_at, Agent.call_sid, Agent.callback_id,
                                  Agent.phone, Agent.phone_masked, Agent.line_call_sid)
                           .where(Agent.user_name == user_name, Agent.active.is_(True))).first()
    if row is None:
        return None
    return {**row._mapping, "state": agent_state(row.status, row.line_call_sid is not None)}


def link_user(db: Database, agent: str, user_name: str | None, *, actor: str) -> None:
    """Link an agent (their phone) to a console login, for the desk."""
    from ivr.store.models import User

    with db.write() as conn:
        if user_name and not conn.execute(select(User.id).where(User.name == user_name)).first():
            raise DeskError(f"there is no user called {user_name!r}")
        if not conn.execute(update(Agent).where(Agent.name == agent).values(user_name=user_name)).rowcount:
            raise DeskError(f"there is no agent called {agent!r}")
        audit(conn, actor=actor, action="agent.link_user", subject=f"agent {agent}", to_value=user_name or "none")


def statuses(db: Database) -> list[dict]:
    """Every active agent's state (ivr/store/reads.py agents_now: the agent line and the desk together)."""
    from ivr.store.reads import agents_now

    with db.read() as conn:
        return [vars(a) for a in agents_now(conn)]


def current_caller(db: Database, agent: dict) -> dict | None:
    """The caller this agent is (or was last) with, as the desk shows them; None once wrapped up."""
    sid = agent.get("call_sid")
    if not sid:
        return None
    with db.read() as conn:
        if conn.execute(select(WrapUp.id).where(WrapUp.call_sid == sid)).first():
            return None
        entry = conn.execute(select(QueueEntry.__table__).where(QueueEntry.call_sid == sid)).first()
        callback = conn.execute(select(Callback.__table__).where(Callback.call_sid == sid)).first()
    found = dict((entry or callback)._mapping) if (entry or callback) else {"call_sid": sid}
    if callback is not None:
        found.update(callback_id=callback.id, number_masked=callback.number_masked, callback_reason=callback.reason,
                     attempts=callback.attempts)
    return found


def wrap_up(db: Database, *, agent: str, call_sid: str, code: str, note: str, codes: dict[str, str]) -> int:
    """Record the outcome of a call (once per call); the agent is available again."""
    if code not in codes:
        raise DeskError(f"unknown wrap-up code {code!r} (codes: {', '.join(codes)})")
    if len(note) > 2000:
        raise DeskError("a note is at most 2000 characters")
    with db.write() as conn:
        if conn.execute(select(WrapUp.id).where(WrapUp.call_sid == call_sid)).first():
            raise DeskError("this call already has a wrap-up")
        entry = conn.execute(select(QueueEntry.queue, QueueEntry.language).where(QueueEntry.call_sid == call_sid)).first()
        callback = conn.execute(select(Callback.id, Callback.queue, Callback.language)
                                .where(Callback.call_sid == call_sid)).first()
        source = entry or callback
        wrap_id = conn.execute(WrapUp.__table__.insert().values(
            call_sid=call_sid, callback_id=callback.id if callback else None, agent=agent, code=code, note=note,
            queue=source.queue if source else "", language=source.language if source else "",
            created_at=utcnow())).inserted_primary_key[0]
        conn.execute(update(Agent).where(Agent.name == agent, Agent.status.in_(("on_call", "wrap_up")))
                     .values(status="available", status_at=utcnow()))
        audit(conn, actor=agent, action="call.wrap_up", subject=f"call {call_sid}", to_value=code)
    return wrap_id


def dial_over(db: Database, agent: str, connected_sid: str | None) -> None:
    """The agent line's <Dial><Queue> ended: after a caller was connected the agent is in wrap-up for that
    call; with nobody connected they are free again, and the caller claimed for them is not theirs."""
    if connected_sid:
        set_status(db, agent, "wrap_up", call_sid=connected_sid, actor=LINE)
        return
    with db.write() as conn:
        conn.execute(update(Agent).where(Agent.name == agent, Agent.status == "on_call").values(call_sid=None))
    set_status(db, agent, "available", actor=LINE)


def sign_out_ended_lines(conn: Connection, ended: dict[str, datetime]) -> None:
    """Agents whose agent-line call ended (its final status, `ended`: CallSid -> when) are off the line at
    once, rather than looking free until the line's idle timeout. The agent number's status callback
    (/voice/status) is spooled, so this runs in the spool writer, in `ivr background`. Free: signed out;
    mid-call: in wrap-up (the call is over for them too); on a break or in wrap-up: as they were. A caller
    still claimed for them (queues.take_next) goes back to waiting."""
    if not ended:
        return
    # The few agents on the line, matched here: a batch may end thousands of callers' calls, too many for IN.
    on_line = conn.execute(select(Agent.name, Agent.status, Agent.line_call_sid)
                           .where(Agent.line_call_sid.is_not(None))).all()
    for row in (r for r in on_line if r.line_call_sid in ended):
        after = {"available": "signed_out", "on_call": "wrap_up"}.get(row.status, row.status)
        conn.execute(update(Agent).where(Agent.name == row.name, Agent.line_call_sid == row.line_call_sid)
                     .values(line_call_sid=None, status=after, status_at=ended[row.line_call_sid]))
        audit(conn, actor=LINE, action="agent.status", subject=f"agent {row.name}", from_value=row.status,
              to_value=after, reason="their call to the agent line ended")
        # A caller claimed for them whose Dial never reported back waits for the next agent again.
        conn.execute(update(QueueEntry).where(QueueEntry.agent == row.name, QueueEntry.status == "connecting")
                     .values(status="waiting", agent=None))
