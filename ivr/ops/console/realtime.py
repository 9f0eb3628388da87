"""What is happening right now: callers waiting per queue, which agents are free or on a call, and the
warnings an ops lead must not miss (live mode with nobody to answer, a language or topic with nothing
published)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ivr.core.call_status import TERMINAL
from ivr.store.reads import IN_PROGRESS_WINDOW
from ivr.store.models import TOPICS, Agent, Announcement, Call, CallEvent, QueueEntry

LOGIN_PREFIX = "login "  # the agent line's event when an agent's PIN is accepted (webhooks/agent_line.py)


@dataclass(frozen=True)
class QueueNow:
    name: str
    waiting: int
    longest_wait_s: int


@dataclass(frozen=True)
class Presence:
    available: tuple[str, ...]  # signed in on the agent line, not on a call
    on_call: tuple[str, ...]


def _call_open(now: datetime):
    """A call that has not ended (and is recent enough to be really live, not a lost status)."""
    return (Call.started_at >= now - IN_PROGRESS_WINDOW) & (Call.status.is_(None) | Call.status.not_in(TERMINAL))


def presence(conn: Connection, now: datetime) -> Presence:
    """Agents on the agent line now: a call that signed in and has not ended; on a call if a caller they were
    bridged to is still connected."""
    active = set(conn.execute(select(Agent.name).where(Agent.active.is_(True))).scalars())
    signed_in = {detail[len(LOGIN_PREFIX):] for detail in conn.execute(
        select(CallEvent.detail).join(Call, Call.call_sid == CallEvent.call_sid)
        .where(CallEvent.kind == "agent_line", CallEvent.detail.startswith(LOGIN_PREFIX), _call_open(now))).scalars()}
    on_call = set(conn.execute(select(QueueEntry.agent).join(Call, Call.call_sid == QueueEntry.call_sid)
                               .where(QueueEntry.status == "bridged", QueueEntry.agent.is_not(None),
                                      _call_open(now))).scalars())
    on_call &= active
    return Presence(tuple(sorted((signed_in & active) - on_call)), tuple(sorted(on_call)))


def queues_now(stats: dict, queue_names) -> list[QueueNow]:
    """Every queue in the rules (waiting or not), then any other queue someone is still waiting in."""
    names = list(queue_names) + sorted(set(stats) - set(queue_names))
    return [QueueNow(q, stats[q].waiting if q in stats else 0, stats[q].longest_wait_s if q in stats else 0)
            for q in names]


def unpublished(conn: Connection, incident_id: int | None, languages) -> list[tuple[str, str]]:
    """(language, topic) pairs of the rules' languages with nothing published for the active incident."""
    have = set()
    if incident_id is not None:
        have = {tuple(r) for r in conn.execute(select(Announcement.language, Announcement.topic).where(
            Announcement.incident_id == incident_id, Announcement.status == "published"))}
    return [(lang, topic) for lang in languages for topic in TOPICS if (lang, topic) not in have]


def warnings(mode: str, people: Presence, missing: list[tuple[str, str]], language_names: dict) -> list[str]:
    """Plain sentences for the dashboard's banner, most urgent first."""
    out = []
    if mode == "live" and not people.available:
        busy = f" ({len(people.on_call)} on a call)" if people.on_call else ""
        out.append(f"Live mode is on but no agent is free{busy}: callers who press 0 wait with nobody to answer. "
                   "Get agents onto the agent line, or switch to message mode.")
    by_lang: dict[str, list[str]] = {}
    for lang, topic in missing:
        by_lang.setdefault(lang, []).append(topic)
    for lang, topics in by_lang.items():
        name = language_names.get(lang, lang)
        if len(topics) == len(TOPICS):
            out.append(f"Nothing is published in {name}: those callers hear only the prompts.")
        else:
            out.append(f"Nothing is published in {name} for {' or '.join(topics)}: callers who ask for it hear "
                       "only the prompts.")
    return out


def wait_text(seconds: int) -> str:
    """A wait as people say it: 45 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
