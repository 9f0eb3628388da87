"""Agents: who may take callers on the agent line (known by caller ID and a PIN)."""
from __future__ import annotations

from sqlalchemy import select, update

from ivr.core.errors import Refused
from ivr.core.identity import caller_identity
from ivr.store import sealed
from ivr.store.audit import audit, required_reason
from ivr.store.db import Database
from ivr.store.models import Agent, utcnow
from ivr.store.pins import hash_pin


class AgentError(Refused):
    """A request about agents that cannot be carried out; nothing was changed."""


def add_agent(db: Database, secret_key: str, name: str, phone: str, pin: str, *, actor: str,
              queues: tuple[str, ...] = (), reason: str = "") -> None:
    """An agent for the agent line; `queues`: the ones they serve (none given: every queue)."""
    phone_hash, masked = caller_identity(secret_key, phone)
    if phone_hash is None:
        raise AgentError(f"{phone!r} is not a phone number (use E.164, e.g. +12025550123)")
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise AgentError("an agent PIN is 4 to 12 digits")
    with db.write() as conn:
        if conn.execute(select(Agent.id).where(Agent.name == name)).first():
            raise AgentError(f"there is already an agent called {name!r}")
        # The agent line knows an agent by caller ID alone before the PIN: two on one number would be one.
        holder = conn.execute(select(Agent.name).where(Agent.phone_hash == phone_hash,
                                                       Agent.active.is_(True))).scalar()
        if holder is not None:
            raise AgentError(f"the caller ID {masked} is agent {holder}'s already: one agent per caller ID "
                             f"(deactivate {holder} first, or give {name} their own number)")
        conn.execute(Agent.__table__.insert().values(name=name, phone_hash=phone_hash, phone_masked=masked,
                                                     phone=sealed.seal(db, phone.strip()), pin_hash=hash_pin(pin),
                                                     active=True,
                                                     queues=",".join(queues), created_at=utcnow()))
        audit(conn, actor=actor, action="agent.add", subject=f"agent {name}",
              to_value=f"phone {masked}; serves {', '.join(queues) or 'every queue'}", reason=reason)


def serves(db: Database, name: str) -> tuple[str, ...]:
    """The queues this agent takes callers and callbacks from; empty: all of them."""
    with db.read() as conn:
        listed = conn.execute(select(Agent.queues).where(Agent.name == name)).scalar() or ""
    return tuple(q for q in listed.split(",") if q)


def agents(db: Database) -> list[dict]:
    with db.read() as conn:
        rows = conn.execute(select(Agent.name, Agent.phone_masked, Agent.active, Agent.created_at, Agent.status,
                                   Agent.status_at).order_by(Agent.name)).all()
    return [dict(r._mapping) for r in rows]


def agent_for_phone(db: Database, phone_hash: str | None) -> tuple[str, str] | None:
    """(name, pin_hash) of the active agent calling from this number."""
    if not phone_hash:
        return None
    with db.read() as conn:
        row = conn.execute(select(Agent.name, Agent.pin_hash).where(Agent.phone_hash == phone_hash,
                                                                    Agent.active.is_(True))).first()
    return (row.name, row.pin_hash) if row else None


def deactivate_agent(db: Database, name: str, *, actor: str, reason: str) -> None:
    """Take an agent off the line at once: their number and PIN no longer open it, even mid-call. Their
    full number goes (the desk's "call now" rang it); the hash and the masked form stay for the records."""
    reason = required_reason(reason, AgentError)
    with db.write() as conn:
        done = conn.execute(update(Agent).where(Agent.name == name, Agent.active.is_(True))
                            .values(active=False, phone=None)).rowcount
        if not done:
            raise AgentError(f"there is no active agent called {name!r}")
        sealed.after_removal(conn)
        audit(conn, actor=actor, action="agent.deactivate", subject=f"agent {name}", from_value="active",
              to_value="inactive", reason=reason)


def is_active_agent(db: Database, name: str) -> bool:
    with db.read() as conn:
        return conn.execute(select(Agent.id).where(Agent.name == name, Agent.active.is_(True))).first() is not None
