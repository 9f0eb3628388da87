"""The call flow: what a caller hears next, as a pure function of where the call is, the rules and the state.

Nothing here touches Flask, Twilio or the database. A step's input is the route Twilio requested (`Step`),
the digits pressed, the rules and the snapshot of the hotline's state; its output is a `Reply`: the verbs to
answer with and the events to record. webhooks/ parses requests (twilio_view.py) and renders replies as
TwiML (twiml.py).

Call position travels in the action URLs we hand Twilio (signed by Twilio on the way back, so a caller
cannot forge it): `l` the language, `a` failed attempts in a row, `s` the step number, and `v` once the caller
has proved a reference on the breach list (ivr/core/verification.py). The step number makes every request of
a call distinct, so a request Twilio retries is recognised and recorded once.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from ivr.core import opening_hours, verification
from ivr.core.effects import BookCallback, EnterQueue, LeaveQueue, SendSms
from ivr.core.routing import Decision, Situation, decide
from ivr.core.rules import Rules
from ivr.core.snapshot import Snapshot
from ivr.core.verbs import (Context, Dial, Enqueue, Event, Gather, Hangup, Leave, Link, Pause, Play, Position,
                            Record, Redirect, Reply, Say)

# -- pieces -----------------------------------------------------------------------------------------------


def _say(rules: Rules, lang: str, name: str, **values) -> Say:
    text = rules.prompt(lang, name)
    return Say(text.format(**values) if values else text, lang)


def _spoken(rules: Rules, snap: Snapshot, lang: str, topic: str, missing_prompt: str) -> list:
    """The published announcement on a topic: its audio, else its text. A topic not published yet falls
    back to the main announcement (never "no details" right after the details); with nothing at all
    published, the prompt for 'nothing yet'."""
    found = snap.content.find(lang, topic, rules.default_language)
    if found is None and topic != "main":
        found = snap.content.find(lang, "main", rules.default_language)
    if found is None:
        return [_say(rules, lang, missing_prompt)]
    spoken, code = found
    # With the database unreachable the audio may not be servable; the text needs nothing from us.
    if spoken.media and (snap.fresh or not spoken.text):
        return [Play(spoken.media)]
    return [Say(spoken.text, code)]


def menu(rules: Rules, pos: Position, lead: list, short: bool = False, after: str | None = None) -> list:
    """The menu in a Gather (the lead prompts first, all interruptible), then the no-input path.

    `short`: after an action or an error the caller has heard the full menu once; they hear how to get it
    again (and a person) instead of all of it. `after`: what the keys mean here besides the menu ("sms": 9
    repeats the reference).
    """
    link = pos.link("/voice/menu")
    if after:
        link = Link(link.route, link.params + (("x", after),))
    options = (_say(rules, pos.lang, "menu_short"),) if short else _full_menu(rules, pos.lang)
    return [
        Gather(link, tuple(lead) + options, rules.menu.timeout_seconds),
        Redirect(link),  # Twilio posts no Digits here: that is "no input"
    ]


def _full_menu(rules: Rules, lang: str) -> tuple:
    """The menu in the caller's language, then the other languages offering themselves in their own voices."""
    return (_say(rules, lang, "menu"),) + _offers(rules, lang, _language_key(rules))


def _language_key(rules: Rules) -> str | None:
    return next((k for k, action in rules.menu.options.items() if action == "language"), None)


def _offers(rules: Rules, lang: str | None, key: str | None) -> tuple:
    """"Para español, oprima 3" in each language but `lang`, spoken by that language's voice. The key:
    `key` (the menu's language option: none, no offers), or with `lang` None (the language menu) each
    language's own."""
    if lang is not None and key is None:
        return ()
    return tuple(_say(rules, code, "language_offer", key=key or language.key)
                 for code, language in rules.languages.items() if code != lang)


def goodbye(rules: Rules, lang: str, lead: list | None = None) -> list:
    return list(lead or []) + [_say(rules, lang, "goodbye"), Hangup()]


# -- the steps --------------------------------------------------------------------------------------------


def incoming(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    """A new call: the greeting, the other languages offering themselves in their own voices (the menu's
    language key switches at once, so nobody waits through an announcement they cannot follow), then the
    announcement and the menu, all interruptible."""
    lead = [_say(rules, pos.lang, "greeting"), *_offers(rules, pos.lang, _language_key(rules)),
            *_spoken(rules, snap, pos.lang, "main", "no_announcement")]
    return Reply(menu(rules, pos, lead), [Event("call_started", snap.mode)], outcome="listening")


def menu_choice(rules: Rules, snap: Snapshot, pos: Position, digits: str | None, ctx: Context | None = None,
                after: str | None = None) -> Reply:
    """The caller pressed a key in the menu, or pressed nothing."""
    if pos.step > rules.menu.max_steps:
        return Reply(goodbye(rules, pos.lang), [Event("goodbye", "max steps")], outcome="ended-max-steps")
    if after == "sms" and (not digits or rules.menu.options.get(digits) == "repeat"):
        if not digits:  # they listened to the reference: the full menu, not an error
            return Reply(menu(rules, pos, []))
        ref = reference((ctx or Context(_utcnow())).call_sid)
        lead = [_say(rules, pos.lang, "sms_reference", reference=ref), _say(rules, pos.lang, "sms_repeat_hint")]
        return Reply(_sms_menu(rules, pos, lead), [Event("menu_choice", "sms reference again", digits)])
    if not digits:
        return _retry(rules, pos, "no_input", Event("no_input"))
    action = rules.menu.options.get(digits)
    if action is None:
        return _retry(rules, pos, "invalid_choice", Event("invalid", digits=digits[:32]))
    reply = _ACTIONS[action](rules, snap, pos.again(), ctx or Context(_utcnow()))
    reply.events.insert(0, Event("menu_choice", action, digits))
    return reply


def _retry(rules: Rules, pos: Position, prompt: str, event: Event) -> Reply:
    attempts = pos.attempts + 1
    if attempts >= rules.menu.max_attempts:
        verbs = goodbye(rules, pos.lang, [_say(rules, pos.lang, prompt), _say(rules, pos.lang, "too_many_attempts")])
        return Reply(verbs, [event, Event("goodbye", "max attempts")], outcome="ended-no-choice")
    # A caller who said nothing may not have caught the options: all of them again; a wrong key: the short menu.
    short = prompt != "no_input"
    return Reply(menu(rules, pos.again(attempts), [_say(rules, pos.lang, prompt)], short), [event])


_NOTHING_ON = {"main": "no_announcement", "details": "details_missing", "advice": "advice_missing"}


def on_topic(rules: Rules, snap: Snapshot, lang: str, topic: str) -> list:
    """What a caller in `lang` hears on a topic (ivr/core/caller_now.py shows staff the same)."""
    return _spoken(rules, snap, lang, topic, _NOTHING_ON[topic])


def _repeat(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
    return Reply(menu(rules, pos, on_topic(rules, snap, pos.lang, "main")))


def _details(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
    return Reply(menu(rules, pos, on_topic(rules, snap, pos.lang, "details"), short=True))


def _advice(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
    return Reply(menu(rules, pos, on_topic(rules, snap, pos.lang, "advice"), short=True))


def _language_menu(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
    """With one other language, the key switches at once; with more, each offers itself with its own key."""
    others = [lang.key for code, lang in rules.languages.items() if code != pos.lang]
    if len(others) == 1:
        return language_choice(rules, snap, pos, others[0], ctx, direct=True)
    link = pos.link("/voice/language")
    return Reply([Gather(link, _offers(rules, None, None), rules.menu.timeout_seconds), Redirect(link)])


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _routed(menu_action: str):
    def action(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
        return route(rules, snap, pos, ctx, menu_action)

    return action


def situation(snap: Snapshot, ctx: Context, menu_action: str) -> Situation:
    """What routing looks at for this caller now (ivr/core/caller_now.py asks the same)."""
    return Situation(mode=snap.mode, menu=menu_action, severity=snap.content.severity, affected=ctx.affected(),
                     now=ctx.now, queues=ctx.queue_stats(), verified=ctx.verified)


def route(rules: Rules, snap: Snapshot, pos: Position, ctx: Context, menu_action: str) -> Reply:
    """A caller asked for a person (or reported fraud): the routing rules decide what happens."""
    decision = decide(rules, situation(snap, ctx, menu_action))
    reply = _DECISIONS[decision.action](rules, snap, pos, ctx, decision)
    reply.events.insert(0, Event("route", decision.describe()[:400]))
    return reply


def _overflow_lead(rules: Rules, lang: str, decision: Decision, mode: str, ctx: Context) -> list:
    """Why the caller is not being put through: closed (and when it is open), or nobody available (message
    mode, full, too slow)."""
    if decision.overflow == "closed":
        hours = opening_hours.spoken_hours(rules, decision.queue or "", lang, ctx.now)
        return [_say(rules, lang, "queue_closed")] + [Say(text, code) for text, code in hours]
    if decision.overflow or mode != "live":
        return [_say(rules, lang, "agents_unavailable")]
    return []


def _enqueue(rules, snap, pos, ctx, d: Decision) -> Reply:
    params = dict(l=pos.lang, q=d.queue, p=d.priority, v=pos.ref or None)
    # The action carries the next step number: a call's outcome only moves forward in its steps, so without
    # it how the caller left the queue (agent, abandoned, callback) would never replace "queued".
    left = Link.to("/voice/queue-result", **params, s=pos.step + 1)
    verbs = [_say(rules, pos.lang, "connecting_agent"), Enqueue(d.twilio_queue, Link.to("/voice/hold", **params), left)]
    enter = EnterQueue(d.queue, d.priority, pos.lang, d.rule, snap.content.severity, ctx.affected(), ctx.verified)
    return Reply(verbs, outcome="queued", effects=[enter])


def _offer_callback(rules, snap, pos, ctx, d: Decision) -> Reply:
    """Nobody to put them through to: a callback (the caller is in no line, so none to keep a place in)."""
    lead = _overflow_lead(rules, pos.lang, d, snap.mode, ctx)
    if not ctx.caller_known:  # no number to call back: a voicemail, which asks for one
        return _voicemail(rules, snap, pos, ctx, d, lead + [_say(rules, pos.lang, "callback_unavailable")])
    gather = Gather(Link.to("/voice/callback", l=pos.lang, q=d.queue, p=d.priority, s=pos.step + 1, v=pos.ref or None),
                    tuple(lead) + (_say(rules, pos.lang, "callback_offer_later"),), rules.menu.timeout_seconds)
    return Reply([gather] + menu(rules, pos, [], short=True), outcome="callback-offered")


def _voicemail(rules, snap, pos, ctx, d: Decision, lead: list | None = None) -> Reply:
    lead = _overflow_lead(rules, pos.lang, d, snap.mode, ctx) if lead is None else lead
    link = Link.to("/voice/voicemail", l=pos.lang, q=d.queue, p=d.priority, s=pos.step + 1, v=pos.ref or None)
    verbs = lead + [_say(rules, pos.lang, "voicemail_prompt"), Record(link, 120)] + menu(rules, pos, [])
    return Reply(verbs, outcome="voicemail-offered")


def _message(rules, snap, pos, ctx, d: Decision) -> Reply:
    # A rule's message has its prompt; a queue's overflow "message" has none: why nobody is there says it.
    lead = _overflow_lead(rules, pos.lang, d, snap.mode, ctx) + ([_say(rules, pos.lang, d.prompt)] if d.prompt else [])
    return Reply(menu(rules, pos, lead, short=True), outcome="agents-unavailable")


def _dial(rules, snap, pos, ctx, d: Decision) -> Reply:
    verbs = [_say(rules, pos.lang, "connecting_agent"), Dial(d.number, pos.link("/voice/queue-result"))]
    return Reply(verbs, outcome="dialled-overflow")


def _route_goodbye(rules, snap, pos, ctx, d: Decision) -> Reply:
    lead = _overflow_lead(rules, pos.lang, d, snap.mode, ctx)
    return Reply(goodbye(rules, pos.lang, lead), outcome="agents-unavailable")


_DECISIONS = {"enqueue": _enqueue, "callback": _offer_callback, "voicemail": _voicemail, "message": _message,
              "dial": _dial, "goodbye": _route_goodbye}


def reference(call_sid: str) -> str:
    """A short reference a caller can quote (derived from the CallSid, so retries give the same one)."""
    digest = hashlib.sha256(call_sid.encode()).hexdigest().upper()
    return f"HL-{digest[:4]}-{digest[4:8]}"


def _sms(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
    if not ctx.caller_known:
        return Reply(menu(rules, pos, [_say(rules, pos.lang, "sms_unavailable")], short=True),
                     [Event("sms", "withheld")])
    # The webhook layer adds the number; the job sends the text after the call has moved on.
    ref = reference(ctx.call_sid)
    lead = [_say(rules, pos.lang, "sms_sent", reference=ref), _say(rules, pos.lang, "sms_repeat_hint")]
    return Reply(_sms_menu(rules, pos, lead), [Event("sms", ref)], effects=[SendSms(pos.lang, ref)])


def _sms_menu(rules: Rules, pos: Position, lead: list) -> list:
    """After the SMS: 9 says the reference again, every other key is the menu's, silence the full menu."""
    gather, redirect = menu(rules, pos, [], after="sms")
    return [Gather(gather.action, tuple(lead), gather.timeout), redirect]


def _goodbye(rules: Rules, snap: Snapshot, pos: Position, ctx: Context) -> Reply:
    return Reply(goodbye(rules, pos.lang), [Event("goodbye", "caller chose")], outcome="ended-by-caller")


_ACTIONS = {
    "details": _details,
    "advice": _advice,
    "language": _language_menu,
    "repeat": _repeat,
    "agent": _routed("agent"),
    "fraud": _routed("fraud"),
    "sms": _sms,
    "goodbye": _goodbye,
    "verify": lambda rules, snap, pos, ctx: verification.ask(rules, pos),  # the reference on the notice
}


def language_choice(rules: Rules, snap: Snapshot, pos: Position, digits: str | None, ctx: Context | None = None,
                    direct: bool = False) -> Reply:
    """A key in the language menu: a language key switches for the rest of the call; any other key means
    what it means in the menu (0: a person). `direct`: the menu's language key with only one other language."""
    chosen = next((code for code, lang in rules.languages.items() if digits and lang.key == digits), None)
    if chosen is None:
        if digits:
            return menu_choice(rules, snap, pos, digits, ctx)
        # No choice: back to the menu in the language they had, nothing lost.
        return Reply(menu(rules, pos, []), [Event("no_input", "language menu")])
    new = pos.again(lang=chosen)
    # Switched with one key: the announcement in their language says it all, at once.
    lead = [] if direct else [_say(rules, chosen, "language_set")]
    lead += _spoken(rules, snap, chosen, "main", "no_announcement")
    return Reply(menu(rules, new, lead), [Event("language", chosen, None if direct else digits)], language=chosen)


def hold(rules: Rules, snap: Snapshot, pos: Position, ctx: Context, queue: str, priority: int,
         position: int | None) -> Reply:
    """The waitUrl loop: only verbs Twilio allows there (Say, Play, Pause, Gather, Redirect, Leave, Hangup).

    Position, an honest wait figure (what recent callers in this queue actually waited), the key facts,
    and the offer of a callback that keeps the caller's place. When the document runs out, Twilio
    requests it again: that is the hold loop.
    """
    lang = pos.lang
    prompts = [_say(rules, lang, "hold")]
    if position:
        prompts.append(_say(rules, lang, "queue_position", position=position))
    minutes = ctx.recent_wait_minutes(queue) if queue in rules.queues else None
    if minutes is None:
        prompts.append(_say(rules, lang, "queue_no_estimate"))
    else:
        prompts.append(_say(rules, lang, "queue_estimate_one") if minutes == 1
                       else _say(rules, lang, "queue_estimate", minutes=minutes))
    if rules.hold.repeat_facts:
        prompts += _spoken(rules, snap, lang, "advice", "advice_missing")
    if ctx.caller_known:
        prompts.append(_say(rules, lang, "callback_offer"))
    choice = Link.to("/voice/hold-choice", l=lang, q=queue, p=priority, v=pos.ref or None)
    if not ctx.hold_tone:  # no tone to play (it could not be made): silence rather than nothing
        return Reply([Gather(choice, tuple(prompts), 5), Pause(rules.hold.pause_seconds)])
    # The tone inside the Gather: no dead air, and a key still works while it plays.
    tone_s, sha = ctx.hold_tone
    music = Play(sha, loop=max(1, round(rules.hold.pause_seconds / tone_s)))
    return Reply([Gather(choice, tuple(prompts) + (music,), 1)])


def hold_choice(rules: Rules, snap: Snapshot, pos: Position, ctx: Context, queue: str, priority: int,
                digits: str | None) -> Reply:
    """A key pressed while on hold: 1 is a callback that keeps the caller's place in line."""
    back = Redirect(Link.to("/voice/hold", l=pos.lang, q=queue, p=priority, v=pos.ref or None))
    if digits != "1":
        return Reply([back])
    if not ctx.caller_known:
        return Reply([_say(rules, pos.lang, "callback_unavailable"), back])
    return Reply([_callback_booked(rules, pos, ctx), Leave()], [Event("callback", f"from queue {queue}")],
                 outcome="callback", effects=[BookCallback(queue, priority, "asked while on hold", keep_place=True, reference=pos.ref)])


def _callback_booked(rules: Rules, pos: Position, ctx: Context):
    """What a caller who asked for a callback is told: one number has one callback owed, so a second request
    refreshes the first (ivr/store/queues.py request_callback), and the caller hears that it did."""
    return _say(rules, pos.lang, "callback_refreshed" if ctx.open_callback() else "callback_confirmed")


def callback_choice(rules: Rules, snap: Snapshot, pos: Position, ctx: Context, queue: str | None,
                    priority: int, digits: str | None) -> Reply:
    """The answer to a callback offer: 1 books it; any other key is a menu choice."""
    if digits != "1":
        return menu_choice(rules, snap, pos, digits, ctx)
    if not ctx.caller_known:
        return Reply(menu(rules, pos, [_say(rules, pos.lang, "callback_unavailable")]))
    return Reply([_callback_booked(rules, pos, ctx), Hangup()], [Event("callback", "offered and accepted")],
                 outcome="callback", effects=[BookCallback(queue or "", priority, "callback offered", reference=pos.ref)])


def voicemail_left(rules: Rules, snap: Snapshot, pos: Position, queue: str | None, priority: int,
                   recording_url: str | None) -> Reply:
    if not recording_url:
        return Reply(menu(rules, pos, []))
    return Reply([_say(rules, pos.lang, "voicemail_thanks"), Hangup()], [Event("voicemail")], outcome="voicemail",
                 effects=[BookCallback(queue or "", priority, "voicemail", voicemail_url=recording_url, reference=pos.ref)])


def queue_result(rules: Rules, snap: Snapshot, pos: Position, result: str, wait_s: int | None = None) -> Reply:
    """The Enqueue action: the caller left the queue. Bridged, hung up or off to a callback: nothing more to say."""
    leave = LeaveQueue(result or "unknown", wait_s)
    if result in ("bridged", "bridging-in-process", "hangup", "redirected", "redirected-from-bridged", "leave"):
        outcome = {"leave": "callback", "hangup": "abandoned"}.get(result, "agent" if "bridg" in result else "redirected")
        return Reply([Hangup()] if result != "redirected" else [], [Event("queue", result)], outcome=outcome,
                     effects=[leave])
    # queue-full, error, system-error, or a Dial that failed: say so and keep the caller served with the menu.
    lead = [_say(rules, pos.lang, "queue_failed"), _say(rules, pos.lang, "agents_unavailable")]
    return Reply(menu(rules, pos.again(), lead, short=True), [Event("queue", result or "unknown")],
                 outcome=f"queue-{result or 'unknown'}", effects=[leave])


def safe_reply(rules: Rules, snap: Snapshot, pos: Position) -> Reply:
    """What a caller hears when something failed inside a step: the latest information, then the menu.

    The attempt counter grows with each failure, so a persistent fault ends politely instead of looping.
    """
    lead = [_say(rules, pos.lang, "technical_difficulty"), *_spoken(rules, snap, pos.lang, "main", "no_announcement")]
    if pos.attempts + 1 >= rules.menu.max_attempts:
        return Reply(goodbye(rules, pos.lang, lead), [Event("error", "gave up")], outcome="ended-error")
    return Reply(menu(rules, pos.again(pos.attempts + 1), lead), [Event("error")])


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
        general = rules.routing[-1].then.queue or next(iter(rules.queues))
        verbs = lead + [_say(rules, pos.lang, "connecting_agent"), Enqueue(rules.twilio_queue(general), None, None)]
        return Reply(verbs, [Event("fallback", "enqueue")], outcome="fallback-queued")
    return Reply(goodbye(rules, pos.lang, lead), [Event("fallback", "goodbye")], outcome="fallback")
