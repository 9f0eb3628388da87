"""The go-live check (`ivr preflight`): what would make callers hear something untrue or be let down, each
problem named with the command that fixes it. Pure: what callers get now (ivr/core/caller_now.py) and the
facts the shell measured (agents on the line, SMS settings, the rules file, time to facts) in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ivr.core import flow
from ivr.core.caller_now import CallerNow
from ivr.core.rules import Rules
from ivr.core.snapshot import Snapshot
from ivr.core.verbs import Gather, Pause, Play, Position, Say

PUBLISH = 'ivr announce tts --lang {lang} --topic {topic} --text-file {topic}.txt --publish --reason "..."'


@dataclass(frozen=True)
class Problem:
    kind: str  # stand-in | out-of-step | time-to-facts | queue-closed | no-agents | sms | rules-file
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}\n    fix: {self.fix}"


@dataclass(frozen=True)
class Facts:
    """What the shell found out beyond the snapshot and rules."""

    mode: str  # the mode the check is for (before a switch to live: live)
    agents_on_line: int  # agents who can take a call now
    sms_ready: bool  # the settings key 4's text message needs are all there
    rules_file_problem: str | None  # the rules file on disk is not the rules in force: why
    seconds_to_facts: dict  # language -> seconds until a new caller has heard the main statement (None: never)
    target_s: float  # the time to facts a caller should not wait beyond


def problems(now: CallerNow, rules: Rules, facts: Facts) -> list[Problem]:
    """Everything that should stop a switch to live, most urgent first."""
    out = [_rules_file(facts)] if facts.rules_file_problem else []
    out += _stand_ins(now)
    out += _out_of_step(now)
    out += _slow(facts)
    if facts.mode == "live":
        out += _closed_queues(now)
        if facts.agents_on_line <= 0:
            out.append(Problem("no-agents", "live mode: nobody is on the agent line, so callers who press 0 wait "
                               "with nobody to answer",
                               "agents call the agent line (the number pointed at /voice/agent) or sign in "
                               "on the console's desk page; `ivr agents list` shows who can"))
    if not facts.sms_ready and "sms" in rules.menu.options.values():
        key = next(k for k, action in rules.menu.options.items() if action == "sms")
        out.append(Problem("sms", f"key {key} promises a text message, but SMS is not configured: no text is sent",
                           "set TWILIO_ACCOUNT_SID, TWILIO_SMS_FROM and IVR_NOTICE_URL (docs/configuration.md), "
                           f"or take key {key} out of routing_rules.yaml and run `ivr rules reload`"))
    return out


def _rules_file(facts: Facts) -> Problem:
    return Problem("rules-file", f"the rules file on disk is not the rules in force: {facts.rules_file_problem}",
                   "`ivr rules check` names each error; fix the file, then `ivr rules reload`")


def _stand_ins(now: CallerNow) -> list[Problem]:
    out = []
    for topic in now.stand_ins():
        keys = [k.key for k in now.language(topic.lang).keys if k.action == topic.topic]
        who = f"callers pressing {' or '.join(keys)} in {topic.lang} hear" if keys else f"every {topic.lang} caller hears"
        out.append(Problem("stand-in", f"{topic.name}: {topic.stand_in} ({who} {topic.heard})",
                           PUBLISH.format(lang=topic.lang, topic=topic.topic)))
    return out


def _out_of_step(now: CallerNow) -> list[Problem]:
    """The main statement differs between languages: one still carried over, or other version numbers."""
    mains = {lang.lang: lang.topics[0].spoken for lang in now.languages if lang.topics[0].spoken}
    stands = {(s.source == "carry-over", s.version) for s in mains.values()}
    if len(stands) <= 1:
        return []
    told = ", ".join(f"{lang} main v{s.version}" + (" (carried over)" if s.source == "carry-over" else "")
                     for lang, s in mains.items())
    return [Problem("out-of-step", f"languages out of step: {told}; callers in each hear a different story",
                    "publish the same statement in every language (" + PUBLISH.format(lang="LANG", topic="main")
                    + "), or `ivr announce rollback --lang LANG --to VERSION` to match")]


def _slow(facts: Facts) -> list[Problem]:
    out = []
    for lang, seconds in facts.seconds_to_facts.items():
        if seconds is None:
            out.append(Problem("time-to-facts", f"{lang}: a new caller never hears the main statement",
                               PUBLISH.format(lang=lang, topic="main")))
        elif seconds > facts.target_s:
            out.append(Problem("time-to-facts", f"{lang}: {seconds:.0f} s until a new caller has heard the main "
                               f"statement (target {facts.target_s:.0f} s)",
                               "publish a shorter statement: " + PUBLISH.format(lang=lang, topic="main")))
    return out


def _closed_queues(now: CallerNow) -> list[Problem]:
    out = []
    for queue in now.queues:
        if queue.open:
            continue
        # Every key that sends callers here, once (not once per language) -> what they get instead: the
        # queue's own overflow, so the same for every key.
        sent = {k.key: k.decision.action for lang in now.languages for k in lang.keys
                if k.decision is not None and k.decision.queue == queue.name and k.decision.overflow == "closed"}
        who = f"; callers pressing {' or '.join(sent)} get {next(iter(sent.values()))} instead" if sent else ""
        out.append(Problem("queue-closed", f"queue {queue.name} is {queue.described}{who}",
                           "wait until it opens, or change its hours in routing_rules.yaml and run "
                           "`ivr rules reload`"))
    return out


def time_to_facts(rules: Rules, snap: Snapshot, lang: str, seconds_of: Callable) -> float | None:
    """Seconds until a new caller in `lang` has heard the main statement, following the flow itself: they
    listen from the first word, and press their language's key as soon as it is offered in their language.
    `seconds_of(verb)` says how long a Say or Play lasts (the shell measures the published audio)."""
    statement = flow.on_topic(rules, snap, lang, "main")
    menu_key = next((k for k, action in rules.menu.options.items() if action == "language"), None)
    offers = {rules.prompt(lang, "language_offer").format(key=k): k
              for k in (rules.languages[lang].key, menu_key) if k}
    steps = {"/voice/menu": flow.menu_choice, "/voice/language": flow.language_choice}
    pos = Position(rules.default_language, 0, 0)
    reply, clock = flow.incoming(rules, snap, pos), 0.0
    for _ in range(3):  # the greeting, the language menu (with three or more languages), the statement
        pressed = None
        for top in reply.verbs:
            for verb in (top.prompts if isinstance(top, Gather) else (top,)):
                if not isinstance(verb, (Say, Play, Pause)):
                    return None
                clock += verb.seconds if isinstance(verb, Pause) else seconds_of(verb)
                if verb in statement:
                    return round(clock, 1)
                if isinstance(top, Gather) and isinstance(verb, Say) and verb.lang == lang and verb.text in offers:
                    pressed = (steps.get(top.action.route), offers[verb.text])
                    break
            if pressed:
                break
        if pressed is None or pressed[0] is None:
            return None
        pos = Position(pos.lang, 0, pos.step + 1)
        reply = pressed[0](rules, snap, pos, pressed[1])
    return None
