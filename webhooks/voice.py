"""Where calls come in: the caller-facing /voice/* webhooks Twilio calls. Each one asks the flow what the
caller hears next (ivr/core/flow.py); webhooks/twilio_view.py checks the signature, renders the TwiML and
spools the step's effects. No network call and no database write happens in the request path.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import partial

from flask import Blueprint

from ivr.core import flow, phone_numbers, verbs, verification
from ivr.core.call_status import TERMINAL
from ivr.core.effects import CallStarted
from ivr.hotline import Hotline
from ivr.store import queues, reference_lookup
from ivr.store import verification as references
from webhooks import twiml
from webhooks.prepared import prepared
from webhooks.twilio_view import _call_sid, _digits, _int, _values, status_line, twilio_route

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")

voice_route = twilio_route(bp, direct=True)  # answered without Flask (webhooks/direct.py)


@voice_route("/incoming")
def incoming(hotline: Hotline, rules, snap, pos):
    """The number's Voice URL: a new call."""
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    reply = prepared(hotline.config.public_url, flow.incoming, rules, snap, pos)
    reply.effects.append(CallStarted(caller_hash, masked, pos.lang, snap.mode, snap.content.incident_id))
    return reply


def _context(hotline: Hotline, pos: verbs.Position) -> verbs.Context:
    """Routing context; each lookup runs only if the flow asks for it (a caller asking for a person).
    Verified: the caller keyed in a reference on the list in this call (its key rides in pos.ref)."""
    number = _values().get("From")
    reachable = phone_numbers.callable_number(number)
    known = reachable is not None
    verified = bool(pos.ref)
    return verbs.Context(
        now=datetime.now(timezone.utc),
        call_sid=_call_sid(),
        caller_known=known,
        verified=verified,
        open_callback=lambda: known and _open_callback(hotline, number, pos.ref),
        affected=lambda: verified or (known and _affected(hotline, number)),
        queue_stats=lambda: queues.queue_stats(hotline.db),
        recent_wait_minutes=lambda queue: queues.recent_wait_minutes(hotline.db, queue),
        hold_tone=hotline.hold_tone,
    )


def _affected(hotline: Hotline, number: str) -> bool:
    """On the breach list? If the list cannot be read, route the caller as not affected rather than fail."""
    try:
        return hotline.is_affected(number)
    except Exception as exc:
        log.error("affected-list lookup failed, routing as not affected: %s", exc)
        return False


def _open_callback(hotline: Hotline, number: str, reference: str) -> bool:
    """Is a callback already owed to this number (or to the reference the caller proved), from another call
    (Twilio retrying this request is not asking again)? Unknown (database away): no, and the booking,
    whenever it is written, still refreshes the open one rather than adding a second."""
    try:
        owner = queues.callback_owner(hotline.caller_identity(number)[0], reference)
        owed = queues.open_callback_for(hotline.db, owner)
        return owed is not None and owed["call_sid"] != _call_sid()
    except Exception as exc:
        log.warning("open-callback lookup failed, telling the caller it is booked: %s", exc)
        return False


def _queue_params(rules) -> tuple[str, int]:
    queue = _values().arg("q", "")
    default = rules.queues[queue].priority if queue in rules.queues else 1
    return queue, _int(_values().arg("p"), default, 100)


@voice_route("/menu")
def menu(hotline: Hotline, rules, snap, pos):
    after = _values().arg("x") or None
    return prepared(hotline.config.public_url, flow.menu_choice, rules, snap, pos, _digits(),
                    context=partial(_context, hotline, pos), after=after if after == "sms" else None)


@voice_route("/verify")
def verify(hotline: Hotline, rules, snap, pos):
    """Key 8: the reference on the company's notice, keyed in. Reads only: the attempt is spooled."""
    caller_hash = hotline.caller_identity(_values().get("From"))[0]
    return verification.checked(
        rules, pos, _digits(),
        failures=lambda: references.recent_failures(hotline.db, caller_hash, rules.verification),
        on_list=lambda digits: reference_lookup.listed(hotline.db, hotline.config.secret_key, digits))


@voice_route("/verified")
def verified(hotline: Hotline, rules, snap, pos):
    """The menu after a confirmed reference: 0 (or 7) is routed as a verified caller (the reference's key
    rides in the link); only our own TwiML leads here, and Twilio signs what it requests."""
    return flow.menu_choice(rules, snap, pos, _digits(), _context(hotline, pos))


@voice_route("/language")
def language(hotline: Hotline, rules, snap, pos):
    return prepared(hotline.config.public_url, flow.language_choice, rules, snap, pos, _digits(),
                    context=partial(_context, hotline, pos))


@voice_route("/hold")
def hold(hotline: Hotline, rules, snap, pos):
    """The Enqueue waitUrl, requested again and again while the caller waits."""
    queue, priority = _queue_params(rules)
    position = _int(_values().get("QueuePosition"), 0, 100_000) or None
    return flow.hold(rules, snap, pos, _context(hotline, pos), queue, priority, position)


@voice_route("/hold-choice")
def hold_choice(hotline: Hotline, rules, snap, pos):
    queue, priority = _queue_params(rules)
    return flow.hold_choice(rules, snap, pos, _context(hotline, pos), queue, priority, _digits())


@voice_route("/callback")
def callback(hotline: Hotline, rules, snap, pos):
    """The answer to a callback offer (agents busy, closed, or message mode)."""
    queue, priority = _queue_params(rules)
    return flow.callback_choice(rules, snap, pos, _context(hotline, pos), queue, priority, _digits())


@voice_route("/voicemail")
def voicemail(hotline: Hotline, rules, snap, pos):
    queue, priority = _queue_params(rules)
    url = (_values().get("RecordingUrl") or "").strip()[:500] or None
    return flow.voicemail_left(rules, snap, pos, queue, priority, url)


@voice_route("/queue-result")
def queue_result(hotline: Hotline, rules, snap, pos):
    """The Enqueue action (the caller left the queue), or the Dial action of an overflow number."""
    result = (_values().get("QueueResult") or "")[:40]
    if not result and _values().get("DialCallStatus"):
        dial = _values().get("DialCallStatus")[:40]
        result = "bridged" if dial in ("completed", "answered") else f"dial-{dial}"
    return flow.queue_result(rules, snap, pos, result, _int(_values().get("QueueTime"), None, 10**6))


@voice_route("/status", needs_state=False)
def status(hotline: Hotline, rules, snap, pos):
    """The call's status callback: how it ended. Duplicates and late arrivals cannot move it backwards."""
    status = (_values().get("CallStatus") or "").strip()[:20]
    if status:
        duration = _int(_values().get("CallDuration"), None, 10**7) if status in TERMINAL else None
        sequence = _int(_values().get("SequenceNumber"), 0, 10**6)
        hotline.recorder.append_lines([status_line(_call_sid(), status, sequence, duration)])
    return twiml.EMPTY


@voice_route("/fallback", needs_state=False)
def fallback(hotline: Hotline, rules, snap, pos):
    """The number's Fallback URL: Twilio could not use our answer. Needs no database: the last good snapshot."""
    log.error("fallback URL called: ErrorCode=%s ErrorUrl=%s", _values().get("ErrorCode"),
              _values().get("ErrorUrl"))
    return flow.fallback(rules, snap, pos)
