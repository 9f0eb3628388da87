"""What a caller gets right now: for each language and menu key, what pressing it leads to (a message, a
queue that is open or closed and until when, a voicemail, a callback, a text message, goodbye), which
topics still hold a stand-in instead of this incident's own statement, and which new statements callers do
not hear yet because they await a second person's approval (ivr/store/approvals.py).

The one answer every staff surface shows (dashboard, `ivr status`, /healthz, `ivr preflight`). Pure: the
snapshot, the rules and the clock in. It asks the call flow itself (ivr/core/flow.py, which asks
ivr/core/routing.py), so it cannot disagree with what a caller pressing the key gets.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from ivr.core import flow, opening_hours
from ivr.core.routing import Decision, QueueStats, decide
from ivr.core.rules import ROUTED, Rules
from ivr.core.snapshot import TOPICS, Snapshot, Spoken
from ivr.core.verbs import Context, Play, Say

# Announcement sources that are not this incident's own words (ivr/store/incidents.py, ivr/store/seed.py).
STAND_INS = {"carry-over": "carried over from the incident before", "default": "the default wording from setup"}
TOPIC_KEYS = {"details": "1", "advice": "2"}  # what the shipped menu calls them; the menu below is the truth


@dataclass(frozen=True)
class QueueNow:
    name: str
    open: bool
    closes: dt.datetime | None  # open: when it closes (None: always open)
    opens: dt.datetime | None  # closed: when it opens again
    described: str  # "open until Mon 20:00 America/New_York", for staff


@dataclass(frozen=True)
class TopicNow:
    lang: str
    topic: str
    spoken: Spoken | None  # what is published on it in this language (None: nothing)
    heard: str  # what a caller asking for it hears, in words
    stand_in: str | None  # why it is not this incident's own current word on the topic (None: it is)

    @property
    def name(self) -> str:
        return f"{self.lang}/{self.topic}"


@dataclass(frozen=True)
class KeyNow:
    key: str
    action: str  # the menu action: details, advice, agent, fraud, sms, ...
    gets: str  # what a caller pressing it gets now, in words
    decision: Decision | None = None  # for keys the routing rules decide
    queue: QueueNow | None = None  # the queue that decision is about
    affected_gets: str | None = None  # a caller on the breach list gets something else: this
    affected_decision: Decision | None = None  # ... by this routing decision


@dataclass(frozen=True)
class LanguageNow:
    lang: str
    name: str
    keys: tuple[KeyNow, ...]
    topics: tuple[TopicNow, ...]

    def key(self, key: str) -> KeyNow | None:
        return next((k for k in self.keys if k.key == key), None)


@dataclass(frozen=True)
class CallerNow:
    at: dt.datetime
    mode: str
    incident_id: int | None
    incident_title: str
    fresh: bool  # False: from the last good snapshot (the database could not be read)
    languages: tuple[LanguageNow, ...]
    queues: tuple[QueueNow, ...]
    awaiting: tuple[str, ...] = ()  # drafts awaiting approval, in words: callers do not hear them

    def language(self, lang: str) -> LanguageNow:
        return next(language for language in self.languages if language.lang == lang)

    def stand_ins(self) -> list[TopicNow]:
        """Topics whose callers hear something other than this incident's own current statement."""
        return [t for language in self.languages for t in language.topics if t.stand_in]


def caller_now(rules: Rules, snap: Snapshot, now: dt.datetime, queue_stats: dict[str, QueueStats] | None = None,
               sms_ready: bool = True, awaiting: tuple[str, ...] = ()) -> CallerNow:
    """What a caller (number shown, not on the breach list unless said) gets now, per language and key;
    `awaiting`: the statements that await approval, which the snapshot (what callers hear) never holds."""
    queues = {name: queue_now(rules, name, now) for name in rules.queues}
    languages = tuple(_language(rules, snap, now, code, queues, queue_stats or {}, sms_ready)
                      for code in rules.languages)
    return CallerNow(now, snap.mode, snap.content.incident_id, snap.content.incident_title, snap.fresh, languages,
                     tuple(queues.values()), tuple(awaiting))


def queue_now(rules: Rules, name: str, now: dt.datetime) -> QueueNow:
    hours = rules.queues[name].hours
    return QueueNow(name, opening_hours.is_open(hours, now), opening_hours.closes_next(hours, now),
                    opening_hours.opens_next(hours, now), opening_hours.describe(hours, now))


def _language(rules: Rules, snap: Snapshot, now: dt.datetime, lang: str, queues: dict, stats: dict,
              sms_ready: bool) -> LanguageNow:
    topics = {topic: _topic(rules, snap, lang, topic) for topic in TOPICS}
    keys = tuple(_key(rules, snap, now, lang, key, action, topics, queues, stats, sms_ready)
                 for key, action in rules.menu.options.items())
    return LanguageNow(lang, rules.languages[lang].name, keys, tuple(topics.values()))


def _topic(rules: Rules, snap: Snapshot, lang: str, topic: str) -> TopicNow:
    """What the flow plays a caller on this topic, named by the published announcement it is."""
    content, default = snap.content, rules.default_language
    own = content.spoken.get(f"{lang}/{topic}")
    own = own if own and (own.text or own.media) else None
    verbs = flow.on_topic(rules, snap, lang, topic)
    heard = next((f"{name} v{spoken.version}" for name in dict.fromkeys(
        (f"{lang}/{topic}", f"{default}/{topic}", f"{lang}/main", f"{default}/main"))
        if (spoken := content.spoken.get(name)) and _plays(verbs, spoken, name.split("/")[0])), None)
    if heard is None:
        return TopicNow(lang, topic, None, "only the prompt saying nothing is known yet", "nothing published")
    if own is None:
        return TopicNow(lang, topic, None, heard, f"nothing published: callers hear {heard} instead")
    return TopicNow(lang, topic, own, heard, _stand_in(content.spoken.get(f"{lang}/main"), own))


def _plays(verbs: list, spoken: Spoken, lang: str) -> bool:
    return (spoken.media is not None and Play(spoken.media) in verbs) or Say(spoken.text or "", lang) in verbs


def _stand_in(main: Spoken | None, spoken: Spoken) -> str | None:
    """Why `spoken` is not this incident's own current word (None: it is). `main` is the same language's main
    statement: one published after it may have changed the story (the main statement itself never is)."""
    if spoken.source in STAND_INS:
        return STAND_INS[spoken.source]
    if (main is not None and main.source not in STAND_INS and spoken.published_at is not None
            and main.published_at is not None and spoken.published_at < main.published_at):
        return f"published before the main statement (v{main.version}): it may no longer agree with it"
    return None


def _key(rules: Rules, snap: Snapshot, now: dt.datetime, lang: str, key: str, action: str, topics: dict,
         queues: dict, stats: dict, sms_ready: bool) -> KeyNow:
    if action in ROUTED:
        return _routed(rules, snap, now, key, action, queues, stats)
    if action in topics:
        topic = topics[action]
        gets = (f"hears {topic.heard}: nothing is published on {action} in {lang}" if topic.spoken is None else
                f"hears {topic.heard}" + (f" ({topic.stand_in})" if topic.stand_in else ""))
    else:
        gets = {"repeat": f"hears {topics['main'].heard} again", "goodbye": "hears goodbye; the call ends",
                "language": _switches(rules, lang), "verify": "is asked for the reference on our notice",
                "sms": "is promised a text message" + ("" if sms_ready else
                                                       ", but SMS is not configured: no text is sent")}[action]
    return KeyNow(key, action, gets)


def _switches(rules: Rules, lang: str) -> str:
    others = [language.name for code, language in rules.languages.items() if code != lang]
    return f"switches to {others[0]}" if len(others) == 1 else f"chooses among {', '.join(others)}"


def _context(now: dt.datetime, stats: dict, affected: bool) -> Context:
    """What routing reads of a call (`flow.situation`): the time, whether the caller is on the list, the queues."""
    return Context(now, affected=lambda: affected, queue_stats=lambda: stats)


def _routed(rules: Rules, snap: Snapshot, now: dt.datetime, key: str, action: str, queues: dict,
            stats: dict) -> KeyNow:
    """A key the routing rules decide: routing's decision for the situation the call flow gives it
    (`flow.situation`, as a caller pressing the key would be in), for a caller off and on the breach list."""
    said = []
    for affected in (False, True):
        decision = decide(rules, flow.situation(snap, _context(now, stats, affected), action))
        said.append((decision, _decision_words(decision, queues)))
    (decision, gets), (affected, affected_gets) = said
    other = affected_gets != gets
    return KeyNow(key, action, gets, decision, queues.get(decision.queue or ""),
                  affected_gets if other else None, affected if other else None)


def _decision_words(d: Decision, queues: dict) -> str:
    queue = queues.get(d.queue or "")
    if d.action == "enqueue":
        return f"waits in queue {d.queue} for an agent (it is {queue.described})"
    gets = {"callback": "is offered a callback", "voicemail": "is asked to leave a voicemail",
            "message": f"hears the {d.prompt!r} message", "dial": f"is put through to {d.number}",
            "goodbye": "hears goodbye; the call ends"}[d.action]
    if d.overflow == "message-mode":
        return f"{gets}: the hotline is in message mode"
    if d.overflow:
        state = queue.described if d.overflow == "closed" else {"full": "full", "wait": "waiting too long"}[d.overflow]
        return f"{gets}: queue {d.queue} is {state}"
    return f"{gets} (rule {d.rule!r})"


def in_mode(snap: Snapshot, mode: str) -> Snapshot:
    """The same snapshot in another mode: what callers would get after a switch."""
    return dataclasses.replace(snap, mode=mode)
