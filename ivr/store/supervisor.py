"""Service figures for callers who waited for an agent: the service level (answered within N seconds), the
average speed of answer and abandonment. One definition, read by the supervisor's dashboard and
GET /api/supervisor (today, per queue) and by the reports (any window, all queues: ivr/ops/reports.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ivr.store.models import QueueEntry

# The service level's N when the rules name none: 60 s is a common contact-centre target for urgent lines
# (80% within 60 s, for example); a queue sets its own with `answer_within_seconds` in routing_rules.yaml.
ANSWERED_WITHIN_S = 60
ANSWERED, ABANDONED = "bridged", "hangup"  # Twilio connected them to an agent / they hung up while waiting


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class Service:
    answered_within_s: int
    answered: int  # connected to an agent
    within: int  # ... after waiting at most answered_within_s
    ended: int  # answered or abandoned: the waits that are over and said how
    abandoned: int  # hung up while waiting
    waited_s: int  # the answered callers' waits, added up

    @property
    def service_level(self) -> float | None:
        """The share of answered callers answered within answered_within_s (None: nobody answered yet)."""
        return _share(self.within, self.answered)

    @property
    def average_answer_s(self) -> int | None:
        """The average speed of answer: how long an answered caller waited, on average."""
        return round(self.waited_s / self.answered) if self.answered else None

    @property
    def abandonment(self) -> float | None:
        return _share(self.abandoned, self.ended)


def service(entries, answered_within_s: int = ANSWERED_WITHIN_S) -> Service:
    """The figures of queue entries (anything with .status and .wait_s)."""
    answered = [e.wait_s or 0 for e in entries if e.status == ANSWERED]
    abandoned = sum(1 for e in entries if e.status == ABANDONED)
    return Service(answered_within_s, len(answered), sum(1 for w in answered if w <= answered_within_s),
                   len(answered) + abandoned, abandoned, sum(answered))


def service_since(conn: Connection, since: dict[str, datetime], answered_within_s: dict[str, int]) -> dict:
    """Per queue, the figures of the callers it enqueued since its own start (its local midnight, for today)."""
    if not since:
        return {}
    rows = conn.execute(select(QueueEntry.queue, QueueEntry.enqueued_at, QueueEntry.status, QueueEntry.wait_s)
                        .where(QueueEntry.enqueued_at >= min(since.values()),
                               QueueEntry.queue.in_(list(since)))).all()
    return {name: service([r for r in rows if r.queue == name and r.enqueued_at >= start],
                          answered_within_s[name]) for name, start in since.items()}
