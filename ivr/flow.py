"""The call flow: what a caller hears next, as a pure function of where the call is, the rules and the state.

Nothing here touches Flask, Twilio or the database. A step's input is the route Twilio requested (`Step`),
the digits pressed, the rules and the snapshot of the hotline's state; its output is a `Reply`: the verbs to
answer with and the events to record. webhooks/voice.py parses requests and renders replies as TwiML.

Call position travels in the action URLs we hand Twilio (signed by Twilio on the way back, so a caller
cannot forge it): `l` the language, `a` failed attempts in a row, `s` the step number. The step number makes
every request of a call distinct, so a request Twilio retries is recognised and recorded once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ivr.rules import Rules
from ivr.state import Snapshot

# -- the verbs a reply is made of -------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str
    lang: str


@dataclass(frozen=True)
class Play:
    media: str  # sha256 of the phone-ready audio


@dataclass(frozen=True)
class Pause:
    seconds: int


@dataclass(frozen=True)
class Gather:
    """Collect one key; the prompts inside are interruptible. No key: the verbs after the Gather run."""

    action: "Link"
    prompts: tuple = ()
    timeout: int = 6
    num_digits: int | None = 1  # None: until finish_on_key (a PIN)
    finish_on_key: str = "#"


@dataclass(frozen=True)
class Record:
    """Record the caller (the admin line); Twilio posts RecordingUrl and RecordingDuration to the action."""

    action: "Link"
    max_seconds: int = 300


@dataclass(frozen=True)
class PlayUrl:
    """Play audio Twilio hosts (an admin's recording played back to them)."""

    url: str


@dataclass(frozen=True)
class Redirect:
    to: "Link"


@dataclass(frozen=True)
class Enqueue:
    queue: str
    wait: "Link | None"  # None: Twilio's default hold music, no callbacks to us
    action: "Link | None"


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Link:
    """A URL of ours: a route and the call position to carry in its query string."""

    route: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def to(cls, route: str, **params) -> "Link":
        return cls(route, tuple((k, str(v)) for k, v in params.items() if v is not None))


@dataclass(frozen=True)
class Event:
    kind: str  # call_started, menu_choice, invalid, no_input, language, route, goodbye, queue, error
    detail: str = ""
    digits: str | None = None


@dataclass
class Reply:
    verbs: list = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    outcome: str | None = None  # how the call stands after this step (recorded on the call)
    language: str | None = None  # set when the caller chose a language


@dataclass(frozen=True)
class Position:
    """Where a call is: its language, failed attempts in a row, and the step number."""

    lang: str
    attempts: int = 0
    step: int = 0

    def link(self, route: str, **changes) -> Link:
        nxt = Position(changes.get("lang", self.lang), changes.get("attempts", self.attempts), self.step + 1)
        return Link(route, (("l", nxt.lang), ("a", str(nxt.attempts)), ("s", str(nxt.step))))


# -- pieces -----------------------------------------------------------------------------------------------


def _say(rules: Rules, lang: str, name: str) -> Say:
    return Say(rules.prompt(lang, name), lang)


def _spoken(rules: Rules, snap: Snapshot, lang: str, topic: str, missing_prompt: str) -> list:
    """The published announcement on a topic: its audio, else its text, else the prompt for 'nothing yet'."""
    found = snap.content.find(lang, topic, rules.default_language)
    if found is None:
        return [_say(rules, lang, missing_prompt)]
    spoken, code = found
    # With the database unreachable the audio may not be servable; the text needs nothing from us.
    if spoken.media and (snap.fresh or not spoken.text):
        return [Play(spoken.media)]
    return [Say(spoken.text, code)]


def menu(rules: Rules, pos: Position, lead: list) -> list:
    """The menu in a Gather (the lead prompts first, all interruptible), then the no-input path."""
    return [
        Gather(pos.link("/voice/menu"), tuple(lead) + (_say(rules, pos.lang, "menu"),), rules.menu.timeout_seconds),
        Redirect(pos.link("/voice/menu")),  # Twilio posts no Digits here: that is "no input"
    ]


def goodbye(rules: Rules, lang: str, lead: list | None = None) -> list:
    return list(lead or []) + [_say(rules, lang, "goodbye"), Hangup()]


# -- the steps --------------------------------------------------------------------------------------------


def incoming(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    """A new call: greeting, the announcement, then the menu, all interruptible."""
    lead = [_say(rules, pos.lang, "greeting"), *_spoken(rules, snap, pos.lang, "main", "no_announcement")]
    return Reply(menu(rules, pos, lead), [Event("call_started", snap.mode)], outcome="listening")


def menu_choice(rules: Rules, snap: Snapshot, pos: Position, digits: str | None) -> Reply:
    """The caller pressed a key in the menu, or pressed nothing."""
    if pos.step > rules.menu.max_steps:
        return Reply(goodbye(rules, pos.lang), [Event("goodbye", "max steps")], outcome="ended-max-steps")
    if not digits:
        return _retry(rules, pos, "no_input", Event("no_input"))
    action = rules.menu.options.get(digits)
    if action is None:
        return _retry(rules, pos, "invalid_choice", Event("invalid", digits=digits[:32]))
    reply = _ACTIONS[action](rules, snap, Position(pos.lang, 0, pos.step))
    reply.events.insert(0, Event("menu_choice", action, digits))
    return reply


def _retry(rules: Rules, pos: Position, prompt: str, event: Event) -> Reply:
    attempts = pos.attempts + 1
    if attempts >= rules.menu.max_attempts:
        verbs = goodbye(rules, pos.lang, [_say(rules, pos.lang, prompt), _say(rules, pos.lang, "too_many_attempts")])
        return Reply(verbs, [event, Event("goodbye", "max attempts")], outcome="ended-no-choice")
    return Reply(menu(rules, Position(pos.lang, attempts, pos.step), [_say(rules, pos.lang, prompt)]), [event])


def _repeat(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    return Reply(menu(rules, pos, _spoken(rules, snap, pos.lang, "main", "no_announcement")))


def _details(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    return Reply(menu(rules, pos, _spoken(rules, snap, pos.lang, "details", "details_missing")))


def _advice(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    return Reply(menu(rules, pos, _spoken(rules, snap, pos.lang, "advice", "advice_missing")))


def _language_menu(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    # Each language's own words, so every caller understands the choice.
    prompts = tuple(_say(rules, code, "language_menu") for code in _languages_once(rules))
    return Reply([
        Gather(pos.link("/voice/language"), prompts, rules.menu.timeout_seconds),
        Redirect(pos.link("/voice/language")),
    ])


def _languages_once(rules: Rules) -> list[str]:
    """One language per distinct language-menu prompt (they are usually all the same bilingual sentence)."""
    seen, codes = set(), []
    for code in rules.languages:
        text = rules.prompt(code, "language_menu")
        if text not in seen:
            seen.add(text)
            codes.append(code)
    return codes


def _agent(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    if snap.mode != "live":
        lead = [_say(rules, pos.lang, "agents_unavailable")]
        if rules.agents.in_message_mode == "goodbye":
            return Reply(goodbye(rules, pos.lang, lead), [Event("route", "agents unavailable")],
                         outcome="agents-unavailable")
        return Reply(menu(rules, pos, lead), [Event("route", "agents unavailable")], outcome="agents-unavailable")
    verbs = [
        _say(rules, pos.lang, "connecting_agent"),
        Enqueue(rules.agents.queue, pos.link("/voice/hold"), pos.link("/voice/queue-result")),
    ]
    return Reply(verbs, [Event("route", f"enqueue {rules.agents.queue}")], outcome="queued")


def _goodbye(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    return Reply(goodbye(rules, pos.lang), [Event("goodbye", "caller chose")], outcome="ended-by-caller")


_ACTIONS = {
    "details": _details,
    "advice": _advice,
    "language": _language_menu,
    "repeat": _repeat,
    "agent": _agent,
    "goodbye": _goodbye,
}


def language_choice(rules: Rules, snap: Snapshot, pos: Position, digits: str | None) -> Reply:
    """The caller answered the language menu; the choice holds for the rest of the call."""
    chosen = next((code for code, lang in rules.languages.items() if digits and lang.key == digits), None)
    if chosen is None:
        # No choice or a wrong key: back to the menu in the language they had, nothing lost.
        event = Event("invalid", "language menu", digits[:32]) if digits else Event("no_input", "language menu")
        lead = [_say(rules, pos.lang, "invalid_choice")] if digits else []
        return Reply(menu(rules, pos, lead), [event])
    new = Position(chosen, 0, pos.step)
    lead = [_say(rules, chosen, "language_set"), *_spoken(rules, snap, chosen, "main", "no_announcement")]
    return Reply(menu(rules, new, lead), [Event("language", chosen, digits)], language=chosen)


def hold(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    """The waitUrl loop: only verbs Twilio allows there (Say, Play, Pause, Gather, Redirect, Leave, Hangup).

    When this document runs out, Twilio requests it again: that is the hold loop.
    """
    return Reply([_say(rules, pos.lang, "hold"), Pause(rules.agents.hold_pause_seconds)])


def queue_result(rules: Rules, snap: Snapshot, pos: Position, result: str) -> Reply:
    """The Enqueue action: the caller left the queue. Bridged or hung up: nothing more to say."""
    if result in ("bridged", "bridging-in-process", "hangup", "redirected", "redirected-from-bridged"):
        return Reply([Hangup()] if result != "redirected" else [], [Event("queue", result)],
                     outcome="agent" if "bridg" in result else f"queue-{result}")
    # queue-full, error, system-error, leave: say so and keep the caller served with the menu.
    lead = [_say(rules, pos.lang, "queue_failed"), _say(rules, pos.lang, "agents_unavailable")]
    return Reply(menu(rules, Position(pos.lang, 0, pos.step), lead), [Event("queue", result or "unknown")],
                 outcome=f"queue-{result or 'unknown'}")


def safe_reply(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    """What a caller hears when something failed inside a step: the latest information, then the menu.

    The attempt counter grows with each failure, so a persistent fault ends politely instead of looping.
    """
    lead = [_say(rules, pos.lang, "technical_difficulty"), *_spoken(rules, snap, pos.lang, "main", "no_announcement")]
    if pos.attempts + 1 >= rules.menu.max_attempts:
        return Reply(goodbye(rules, pos.lang, lead), [Event("error", "gave up")], outcome="ended-error")
    return Reply(menu(rules, Position(pos.lang, pos.attempts + 1, pos.step), lead), [Event("error")])


def fallback(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    """Twilio's Fallback URL: our main answer failed. The last good announcement, then what needs none of us:
    in live mode Twilio's own queue (its default hold music), else a polite goodbye."""
    lead = [_say(rules, pos.lang, "technical_difficulty")]
    found = snap.content.find(pos.lang, "main", rules.default_language)
    if found is None:
        lead.append(_say(rules, pos.lang, "no_announcement"))
    else:
        spoken, code = found
        # Text first: a Say needs no media fetch from a server that may be the thing that failed.
        lead.append(Say(spoken.text, code) if spoken.text else Play(spoken.media))
    if snap.mode == "live":
        verbs = lead + [_say(rules, pos.lang, "connecting_agent"), Enqueue(rules.agents.queue, None, None)]
        return Reply(verbs, [Event("fallback", "enqueue")], outcome="fallback-queued")
    return Reply(goodbye(rules, pos.lang, lead), [Event("fallback", "goodbye")], outcome="fallback")
