"""The supervisor's view of the hotline right now: each queue (open or closed and until when, callers
waiting, the longest wait against the queue's maximum, what its key does now, today's service level,
average speed of answer and abandonment), each agent's state and time in it, the mode, and the go-live
check. The one reading the dashboard's first screen and GET /api/supervisor both show.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

from ivr.core.rules import Rules
from ivr.ops import caller_view
from ivr.store import reads
from ivr.store.queues import UNKNOWN_QUEUE_MAX_WAIT_MINUTES, queue_stats
from ivr.store.state import get_mode
from ivr.store.supervisor import ANSWERED_WITHIN_S, Service, service_since

NEAR_MAX = 0.5  # a longest wait past half the queue's maximum is shown as a warning; past the maximum, over

# What a routing decision does to the caller, in a few words; the overflow says why it is not a queue.
DOES = {"enqueue": "waits for an agent", "callback": "is offered a callback", "voicemail": "leaves a voicemail",
        "message": "hears a message", "goodbye": "hears goodbye"}
WHY = {"closed": "queue closed", "full": "queue full", "wait": "wait too long", "message-mode": "message mode"}


@dataclass(frozen=True)
class KeyDoes:
    lang: str
    key: str
    action: str  # the menu action: agent, fraud
    does: str  # what a caller pressing it gets now, in a few words
    breach_list_only: bool = False  # only a caller on the breach list is sent here


@dataclass(frozen=True)
class QueueNow:
    name: str
    open: bool
    until: datetime | None  # open: when it closes; closed: when it opens (None: never changes)
    described: str  # "open until Mon 20:00 America/New_York", as every surface says it
    waiting: int
    longest_wait_s: int
    max_wait_s: int
    keys: tuple[KeyDoes, ...]  # the keys the routing rules send to this queue now
    today_since: datetime  # midnight in the queue's own time zone (UTC without opening hours)
    today: Service

    @property
    def wait_level(self) -> str:
        """ok, near (past half the maximum) or over (past the maximum): the colour of the longest wait."""
        if not self.waiting or self.longest_wait_s < self.max_wait_s * NEAR_MAX:
            return "ok"
        return "near" if self.longest_wait_s < self.max_wait_s else "over"


@dataclass(frozen=True)
class AgentNow:
    name: str
    state: str  # one of reads.AGENT_STATES
    since: datetime | None
    seconds_in_state: int | None


@dataclass(frozen=True)
class Supervisor:
    at: datetime
    mode: tuple  # (mode, since, by)
    queues: tuple[QueueNow, ...]
    agents: tuple[AgentNow, ...]
    problems: list  # the go-live check's problems (ivr/core/go_live.py), for a switch to live
    caller_view: caller_view.View

    def agents_in(self, state: str) -> list[AgentNow]:
        return [a for a in self.agents if a.state == state]


def _midnight(rules: Rules, queue: str, now: datetime) -> datetime:
    hours = rules.queues[queue].hours if queue in rules.queues else None
    zone = ZoneInfo(hours.timezone) if hours else timezone.utc
    return datetime.combine(now.astimezone(zone).date(), time(), zone).astimezone(timezone.utc)


def _does(decision) -> str:
    words = f"is put through to {decision.number}" if decision.action == "dial" else DOES[decision.action]
    return f"{words} ({WHY.get(decision.overflow, decision.overflow)})" if decision.overflow else words


def _keys_to(queue: str, keys) -> tuple[KeyDoes, ...]:
    """The keys the routing rules send to `queue` now (ivr/core/caller_now.py asks routing itself): for
    every caller, or only for one on the breach list."""
    out = []
    for lang, k in keys:
        if k.decision.queue == queue:
            out.append(KeyDoes(lang, k.key, k.action, _does(k.decision)))
        elif k.affected_decision is not None and k.affected_decision.queue == queue:
            out.append(KeyDoes(lang, k.key, k.action, _does(k.affected_decision), breach_list_only=True))
    return tuple(out)


def build(hotline, view: caller_view.View | None = None, now: datetime | None = None) -> Supervisor:
    """The supervisor's view now; `view` (what callers get, and the go-live check) if the caller has it."""
    db, rules = hotline.db, hotline.rules.rules
    view = view or caller_view.of_hotline(hotline)
    now = now or datetime.now(timezone.utc)
    stats = queue_stats(db, cached=False)
    # Every queue in the rules, then any other someone still waits in (taken out of the rules meanwhile).
    names = list(rules.queues) + sorted(set(stats) - set(rules.queues))
    since = {name: _midnight(rules, name, now) for name in names}
    within = {name: getattr(rules.queues.get(name), "answer_within_seconds", None) or ANSWERED_WITHIN_S
              for name in names}
    with db.read() as conn:
        today = service_since(conn, since, within)
        agents = reads.agents_now(conn)
    hours = {q.name: q for q in view.now.queues} if view.now else {}
    # The default language's keys: routing rules have no language condition, so every language's are the same.
    keys = [(language.lang, k) for language in (view.now.languages[:1] if view.now else ()) for k in language.keys
            if k.decision is not None]
    queues = []
    for name in names:
        when, waiting, queue = hours.get(name), stats.get(name), rules.queues.get(name)
        queues.append(QueueNow(
            name, when.open if when else queue is not None,
            (when.closes if when.open else when.opens) if when else None,
            when.described if when else ("not in the rules" if queue is None else
                                         "not known: the rules cannot be read"),
            waiting.waiting if waiting else 0, waiting.longest_wait_s if waiting else 0,
            (queue.max_wait_minutes if queue else UNKNOWN_QUEUE_MAX_WAIT_MINUTES) * 60,
            _keys_to(name, keys), since[name], today[name]))
    return Supervisor(now, get_mode(db), tuple(queues),
                      tuple(AgentNow(a.name, a.state, a.since, int((now - a.since).total_seconds()) if a.since
                                     else None) for a in agents),
                      view.problems, view)


def _stamp(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def as_json(s: Supervisor) -> dict:
    """GET /api/supervisor: the same figures the dashboard shows."""
    mode, since, by = s.mode
    return {
        "at": _stamp(s.at),
        "mode": {"mode": mode, "since": _stamp(since), "by": by},
        "queues": [{"name": q.name, "open": q.open, "until": _stamp(q.until), "described": q.described,
                    "waiting": q.waiting, "longest_wait_s": q.longest_wait_s, "max_wait_s": q.max_wait_s,
                    "wait_level": q.wait_level,
                    "keys": [{"lang": k.lang, "key": k.key, "action": k.action, "does": k.does,
                              "breach_list_only": k.breach_list_only} for k in q.keys],
                    "today": {"since": _stamp(q.today_since), "answered_within_s": q.today.answered_within_s,
                              "answered": q.today.answered, "within": q.today.within,
                              "service_level": q.today.service_level,
                              "average_answer_s": q.today.average_answer_s, "ended": q.today.ended,
                              "abandoned": q.today.abandoned, "abandonment": q.today.abandonment}}
                   for q in s.queues],
        "agents": {"by_state": {state: len(s.agents_in(state)) for state in reads.AGENT_STATES},
                   "agents": [{"name": a.name, "state": a.state, "since": _stamp(a.since),
                               "seconds_in_state": a.seconds_in_state} for a in s.agents]},
        "problems": [{"kind": p.kind, "what": p.what, "fix": p.fix} for p in s.problems],
    }
