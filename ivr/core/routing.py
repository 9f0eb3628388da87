"""Who goes where: the routing rules applied to one caller's situation. Pure: no database, no clock.

The first rule whose conditions all hold decides. An enqueue into a queue that is closed, full or too
slow, or any enqueue while the hotline is in message mode, gets that queue's overflow instead.

No list oracle: until a caller proves who they are (a reference keyed in, ivr/core/verification.py), what
they hear must not depend on whether their caller ID is on the breach list, since anyone can spoof one.
So an unverified caller on the list gets exactly what a caller not on it gets, and the list may only move
them ahead in line (the priority of the rule they would have matched). `list_audible` finds the rules that
would have said more, for `ivr rules check` to warn about.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ivr.core.rules import Route, Rules


@dataclass(frozen=True)
class QueueStats:
    waiting: int = 0
    longest_wait_s: int = 0


@dataclass(frozen=True)
class Situation:
    mode: str
    menu: str  # the menu action that asked for routing: agent or fraud
    severity: str
    affected: bool  # on the breach list: by caller ID (unproven) or by a verified reference
    now: dt.datetime
    queues: dict[str, QueueStats] = field(default_factory=dict)
    verified: bool = False  # proved to be on the list by a reference keyed in during this call

    def stats(self, queue: str) -> QueueStats:
        return self.queues.get(queue, QueueStats())


@dataclass(frozen=True)
class Decision:
    rule: str
    action: str  # enqueue | message | callback | voicemail | dial | goodbye
    queue: str | None = None
    priority: int | None = None
    twilio_queue: str | None = None
    prompt: str | None = None
    number: str | None = None
    overflow: str | None = None  # why the queue's overflow applied: closed | full | wait | message-mode

    def describe(self) -> str:
        where = f" {self.twilio_queue} (priority {self.priority})" if self.action == "enqueue" else ""
        why = f" [overflow: {self.overflow} of {self.queue}]" if self.overflow else ""
        extra = f" {self.prompt or self.number}" if (self.prompt or self.number) else ""
        return f"{self.action}{where}{extra}{why} by rule {self.rule!r}"


def is_open(rules: Rules, queue: str, now: dt.datetime) -> bool:
    hours = rules.queues[queue].hours
    return hours is None or hours.is_open(now)


def matches(rules: Rules, route: Route, s: Situation) -> bool:
    w = route.when
    if w.mode is not None and w.mode != s.mode:
        return False
    if w.menu is not None and s.menu not in w.menu:
        return False
    if w.severity_at_least is not None and rules.severity_rank(s.severity) < rules.severity_rank(w.severity_at_least):
        return False
    if w.affected is not None and w.affected != s.affected:
        return False
    if w.verified is not None and w.verified != s.verified:
        return False
    if w.queue is not None:
        stats = s.stats(w.queue)
        if w.queue_open is not None and w.queue_open != is_open(rules, w.queue, s.now):
            return False
        if w.queue_size_at_least is not None and stats.waiting < w.queue_size_at_least:
            return False
        if w.longest_wait_at_least_minutes is not None and stats.longest_wait_s < w.longest_wait_at_least_minutes * 60:
            return False
    return True


def decide(rules: Rules, s: Situation) -> Decision:
    """The routing decision for this caller now: an unverified caller on the list gets what everyone gets,
    at most with the priority the list would give (their place in line, nothing they can hear)."""
    if s.verified or not s.affected:
        return _decide(rules, dataclasses.replace(s, affected=s.affected or s.verified))
    public = _decide(rules, dataclasses.replace(s, affected=False))
    return _with_priority(rules, public, _decide(rules, s))


def _with_priority(rules: Rules, public: Decision, listed: Decision) -> Decision:
    """`public`, ahead in line if the list's rule gives a higher priority (named by that rule, for the agent)."""
    priority = listed.priority
    if public.priority is None or priority is None or priority <= public.priority:
        return public
    twilio_queue = rules.twilio_queue(public.queue, priority) if public.action == "enqueue" else None
    return dataclasses.replace(public, rule=listed.rule, priority=priority, twilio_queue=twilio_queue)


def _decide(rules: Rules, s: Situation) -> Decision:
    route = next(r for r in rules.routing if matches(rules, r, s))  # the last rule always matches
    then = route.then
    if then.action != "enqueue":
        queue, priority = _callback_place(rules, route, s) if then.action in ("callback", "voicemail") else (None, None)
        return Decision(route.name, then.action, queue, priority, prompt=then.prompt, number=then.number)
    queue = rules.queues[then.queue]
    reason = _overflow_reason(rules, then.queue, s)
    if reason:
        return Decision(route.name, queue.overflow, queue=then.queue, priority=then.priority or queue.priority,
                        number=queue.overflow_number, overflow=reason)
    priority = then.priority or queue.priority
    return Decision(route.name, "enqueue", then.queue, priority, rules.twilio_queue(then.queue, priority))


def _callback_place(rules: Rules, route: Route, s: Situation) -> tuple[str | None, int | None]:
    """The queue and priority a callback or voicemail keeps: the rule's own, else those the caller would
    have had in live mode (a fraud report stays ahead of everyone else's callbacks)."""
    then = route.then
    if then.queue is None:
        live = dataclasses.replace(s, mode="live")
        natural = next((r.then for r in rules.routing if r.then.action == "enqueue" and matches(rules, r, live)), None)
        if natural is None:
            return None, then.priority
        then = natural.model_copy(update={"priority": then.priority or natural.priority})
    return then.queue, then.priority or rules.queues[then.queue].priority


def _overflow_reason(rules: Rules, queue: str, s: Situation) -> str | None:
    q, stats = rules.queues[queue], s.stats(queue)
    if s.mode != "live":
        return "message-mode"
    if not is_open(rules, queue, s.now):
        return "closed"
    if stats.waiting >= q.max_size:
        return "full"
    if stats.longest_wait_s >= q.max_wait_minutes * 60:
        return "wait"
    return None


# -- what `ivr rules check` warns about ------------------------------------------------------------------
def list_audible(rules: Rules) -> list[tuple[tuple, str]]:
    """Rules that would make the breach list audible: where a caller on the list by caller ID alone would
    get another action, queue, message or number than everyone else. `decide` gives them everyone's (only
    the priority applies), so these rules do less than they say: each is named with its line and field."""
    found: dict[int, tuple[tuple, str]] = {}
    for s in _situations(rules):
        on_list = dataclasses.replace(s, affected=True)
        public, listed = _decide(rules, s), _decide(rules, on_list)
        # A rule's own callback keeps the queue of the live-mode rule, which is checked in live mode.
        own_callback = public.action in ("callback", "voicemail") and not public.overflow
        field = next((f for f in ("queue", "overflow", "action", "prompt", "number")
                      if getattr(public, f) != getattr(listed, f) and not (own_callback and f == "queue")), None)
        if field is None:
            continue
        index = min(_first_match(rules, s), _first_match(rules, on_list))
        loc = ("routing", index, "then", "queue" if field == "overflow" else field)
        found.setdefault(index, (loc, f"the breach list would be audible: on it by caller ID, {listed.describe()}; "
                               f"everyone else, {public.describe()}. Anyone can fake a caller ID, so until "
                               "verified they get everyone's, with only this rule's priority (a queue, message "
                               "or hours of their own: `verified: true`)"))
    return [found[index] for index in sorted(found)]


def _first_match(rules: Rules, s: Situation) -> int:
    return next(i for i, r in enumerate(rules.routing) if matches(rules, r, s))


def _situations(rules: Rules):
    """Every case the rules can tell apart, for a caller not on the list: mode, menu, severity, each queue's
    hours either side of opening and closing (and holidays), and each queue size and wait the rules name."""
    loads = _loads(rules)
    for now in _instants(rules):
        for mode in ("live", "message"):
            for menu in ("agent", "fraud"):
                for severity in [*rules.severities, ""]:
                    for queues in loads:
                        yield Situation(mode, menu, severity, False, now, queues)


def _loads(rules: Rules) -> list[dict[str, QueueStats]]:
    """Every size with every wait at which a rule or a queue's limit changes the answer, and none at all:
    each threshold is "at least", so a load at it stands for every load up to the next one."""
    conditions = [r.when for r in rules.routing]
    sizes = {0, *(w.queue_size_at_least for w in conditions if w.queue_size_at_least is not None),
             *(q.max_size for q in rules.queues.values())}
    minutes = {0, *(w.longest_wait_at_least_minutes for w in conditions
                    if w.longest_wait_at_least_minutes is not None),
               *(q.max_wait_minutes for q in rules.queues.values())}
    return [{name: QueueStats(n, m * 60) for name in rules.queues} for n in sorted(sizes) for m in sorted(minutes)]


# Any week will do (hours repeat weekly): its Monday to Sunday, and its Monday noon UTC as the one instant
# of rules with no hours. A week with no daylight-saving change, so each local opening and closing exists once.
_WEEK_START = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc)
_WEEK = [_WEEK_START.date() + dt.timedelta(days=day) for day in range(7)]


def _instants(rules: Rules) -> list[dt.datetime]:
    """One instant of each combination of open and closed queues. A queue's state changes only at its opening
    and closing times (each weekday, in its own zone): each is sampled at that instant and just before it, and
    each holiday at the time the queue would have opened."""
    out = {_WEEK_START}
    for queue in rules.queues.values():
        hours = queue.hours
        if hours is None:
            continue
        zone = ZoneInfo(hours.timezone)
        for date in _WEEK:
            for at in (hours.open, hours.close):
                local = dt.datetime.combine(date, at, zone)
                out |= {local, local - dt.timedelta.resolution}
        out |= {dt.datetime.combine(day, hours.open, zone) for day in hours.holidays}
    # Routing sees the clock only through which queues are open: one instant of each combination will do.
    distinct = {tuple(is_open(rules, name, now) for name in rules.queues): now for now in sorted(out)}
    return list(distinct.values())
