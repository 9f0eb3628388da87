"""The /voice/* webhooks Twilio calls. Each one: check the signature, parse, ask the flow, answer TwiML, record.

Whatever happens inside, a signed request gets 200 and TwiML that keeps the caller served; only forgeries
get a 403. No network call and no database write happens in the request path (events are spooled).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from datetime import datetime, timezone
from functools import wraps

from flask import Blueprint, Response, current_app, request

from ivr.core import flow, verbs
from ivr.core.effects import BookCallback, CallStarted, EnterQueue, LeaveQueue, SendSms
from ivr.hotline import Hotline
from ivr.ops.metrics import WEBHOOK_SECONDS
from ivr.core.call_status import TERMINAL
from ivr.store import jobs, queues
from webhooks import twiml
from webhooks.params import raw_query, twilio_params
from webhooks.security import is_signed_by_twilio

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")

# The answer of last resort, needing nothing at all: used only if even the safe reply cannot be built.
LAST_RESORT = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-US">We are having technical difficulties. '
    "Please call again in a few minutes, or visit our website for the latest information.</Say><Hangup/></Response>"
)


def _twiml(body: str) -> Response:
    return Response(body, status=200, mimetype="text/xml")


def _hotline() -> Hotline:
    return current_app.extensions["ivr"]


def _int(value, default: int, hi: int) -> int:
    try:
        return min(max(int(value), 0), hi)
    except (TypeError, ValueError):
        return default


def _values():
    """This request's parameters (Twilio's form, then our query string), parsed once."""
    return twilio_params(request)


def _position(rules, p=None) -> verbs.Position:
    """The call position from our own query string (junk falls back to a fresh start)."""
    p = p or _values()
    return verbs.Position(rules.language(p.arg("l")), _int(p.arg("a"), 0, 50), _int(p.arg("s"), 0, 10_000))


def _digits() -> str | None:
    p = _values()
    digits = (p.form_get("Digits") or p.arg("Digits") or "").strip()
    return digits[:64] or None


def _call_sid(p=None) -> str:
    sid = ((p or _values()).get("CallSid") or "").strip()
    return sid[:64] if sid else "unknown"


def voice_route(path: str, methods=("POST", "GET"), needs_state: bool = True):
    """Register a Twilio webhook: signature check, then the handler, with every failure answered in TwiML.

    `needs_state=False`: the handler gets the last good snapshot and never touches the database.
    """

    def decorate(handler):
        @bp.route(path, methods=list(methods), endpoint=handler.__name__)
        @wraps(handler)
        def view():
            hotline = _hotline()
            started = time.perf_counter()
            req = request._get_current_object()  # the object itself: every lookup through the proxy costs
            req.max_content_length = hotline.config.max_body_bytes  # Twilio's requests are small
            if hotline.config.validate_signatures and not is_signed_by_twilio(
                req, hotline.validator, hotline.config.public_url
            ):
                log.warning("refused unsigned or forged request to %s from %s", req.path, req.remote_addr)
                return Response("Forbidden: not signed by Twilio\n", status=403, mimetype="text/plain")
            try:
                body = _answer(hotline, handler, needs_state, req)
            except Exception:  # pragma: no cover - _answer already catches; this is the very last net
                log.exception("voice route %s failed beyond recovery", req.path)
                body = LAST_RESORT
            WEBHOOK_SECONDS.labels(path).observe(time.perf_counter() - started)
            return _twiml(body)

        return view

    return decorate


def _answer(hotline: Hotline, handler, needs_state: bool, req) -> str:
    rules = hotline.rules.rules
    base = hotline.config.public_url
    params = twilio_params(req)
    try:
        snap = hotline.state.current() if needs_state else hotline.state.last_good()
        pos = _position(rules, params)
        reply = handler(hotline, rules, snap, pos)
    except Exception:
        log.exception("voice route %s failed; answering with the safe reply", req.path)
        snap = hotline.state.last_good()
        pos = _position(rules, params)
        reply = flow.safe_reply(rules, snap, pos)
    body = twiml.render(reply, rules, base) if isinstance(reply, verbs.Reply) else reply
    _record(hotline, reply, pos, req, params)
    return body


def _record(hotline: Hotline, reply, pos: verbs.Position, req, params) -> None:
    """Spool what this step did; a failure here is logged and never reaches the caller."""
    if not isinstance(reply, verbs.Reply):
        return
    try:
        sid = _call_sid(params)
        # The URL Twilio requested names the step exactly (our URLs carry a step counter): a retry of the
        # same request gets the same key and is recorded once; different steps never collide.
        query = raw_query(req)
        step = req.path.removeprefix("/voice/") + (f"?{query}" if query else "")
        if len(step) > 140:  # the column holds 160: keep it unique rather than cut it
            step = step[:100] + "~" + hashlib.sha256(step.encode()).hexdigest()[:24]
        call_info = apply(hotline, reply.effects, sid, params)
        for i, event in enumerate(reply.events):
            extra = dict(call_info) if i == 0 else {}
            if i == len(reply.events) - 1:
                extra.update(outcome=reply.outcome, language=reply.language or pos.lang)
            hotline.recorder.record("event", call_sid=sid, step=f"{step}#{i}", n=pos.step, kind=event.kind,
                                    detail=event.detail or None, digits=event.digits, **extra)
    except Exception:
        log.exception("could not record the events of %s", req.path)


def apply(hotline: Hotline, effects: list, sid: str, params) -> dict:
    """Carry out a step's effects (spooled); returns the call's details for the step's first event to carry."""
    call_info = {}
    for effect in effects:
        if isinstance(effect, CallStarted):  # rides on the step's first event: one spool write instead of two
            call_info = {**dataclasses.asdict(effect), "call_info": True}
        elif isinstance(effect, EnterQueue):
            hotline.recorder.record("queue_enter", call_sid=sid, **dataclasses.asdict(effect))
        elif isinstance(effect, LeaveQueue):
            hotline.recorder.record("queue_exit", call_sid=sid, **dataclasses.asdict(effect))
        elif isinstance(effect, SendSms):  # the number it goes to is kept only until it is sent
            payload = {"to": params.get("From", ""), "lang": effect.lang, "reference": effect.reference,
                       "call_sid": sid}
            hotline.recorder.record("job", call_sid=sid, kind=jobs.SMS, dedupe_key=f"{jobs.SMS}:{sid}", payload=payload)
        elif not isinstance(effect, BookCallback):  # callbacks are stored before answering (_book_callback)
            raise TypeError(f"not an effect: {effect!r}")
    return call_info


@voice_route("/incoming")
def incoming(hotline: Hotline, rules, snap, pos):
    """The number's Voice URL: a new call."""
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    reply = flow.incoming(rules, snap, pos)
    reply.effects.append(CallStarted(caller_hash, masked, pos.lang, snap.mode, snap.content.incident_id))
    return reply


def _context(hotline: Hotline) -> verbs.Context:
    """Routing context; each lookup runs only if the flow asks for it (a caller asking for a person)."""
    number = _values().get("From")
    known = hotline.caller_identity(number)[0] is not None
    return verbs.Context(
        now=datetime.now(timezone.utc),
        call_sid=_call_sid(),
        caller_known=known,
        affected=lambda: known and _affected(hotline, number),
        queue_stats=lambda: queues.queue_stats(hotline.db),
        recent_wait_minutes=lambda queue: queues.recent_wait_minutes(hotline.db, queue),
    )


def _affected(hotline: Hotline, number: str) -> bool:
    """On the breach list? If the list cannot be read, route the caller as not affected rather than fail."""
    try:
        return hotline.is_affected(number)
    except Exception as exc:
        log.error("affected-list lookup failed, routing as not affected: %s", exc)
        return False


def _queue_params(rules) -> tuple[str, int]:
    queue = _values().arg("q", "")
    default = rules.queues[queue].priority if queue in rules.queues else 1
    return queue, _int(_values().arg("p"), default, 100)


def _book_callback(hotline: Hotline, reply: verbs.Reply, pos: verbs.Position) -> verbs.Reply:
    """Store the callback a reply promises before the caller hears the promise (a failure: the safe reply)."""
    for cb in reply.effects:
        if isinstance(cb, BookCallback):
            queues.request_callback(hotline.db, call_sid=_call_sid(), number=_values().get("From", "")[:32],
                                    language=pos.lang, queue=cb.queue, priority=cb.priority, reason=cb.reason,
                                    keep_place=cb.keep_place, voicemail_url=cb.voicemail_url)
    return reply


@voice_route("/menu")
def menu(hotline: Hotline, rules, snap, pos):
    return flow.menu_choice(rules, snap, pos, _digits(), _context(hotline))


@voice_route("/language")
def language(hotline: Hotline, rules, snap, pos):
    return flow.language_choice(rules, snap, pos, _digits())


@voice_route("/hold")
def hold(hotline: Hotline, rules, snap, pos):
    """The Enqueue waitUrl, requested again and again while the caller waits."""
    queue, priority = _queue_params(rules)
    position = _int(_values().get("QueuePosition"), 0, 100_000) or None
    return flow.hold(rules, snap, pos, _context(hotline), queue, priority, position)


@voice_route("/hold-choice")
def hold_choice(hotline: Hotline, rules, snap, pos):
    queue, priority = _queue_params(rules)
    reply = flow.hold_choice(rules, snap, pos, _context(hotline), queue, priority, _digits())
    return _book_callback(hotline, reply, pos)


@voice_route("/callback")
def callback(hotline: Hotline, rules, snap, pos):
    """The answer to a callback offer (agents busy, closed, or message mode)."""
    queue, priority = _queue_params(rules)
    reply = flow.callback_choice(rules, snap, pos, _context(hotline), queue, priority, _digits())
    return _book_callback(hotline, reply, pos)


@voice_route("/voicemail")
def voicemail(hotline: Hotline, rules, snap, pos):
    queue, priority = _queue_params(rules)
    url = (_values().get("RecordingUrl") or "").strip()[:500] or None
    return _book_callback(hotline, flow.voicemail_left(rules, snap, pos, queue, priority, url), pos)


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
        hotline.recorder.record("status", call_sid=_call_sid(), status=status, sequence=sequence,
                                duration=duration)
    return twiml.EMPTY


@voice_route("/fallback", needs_state=False)
def fallback(hotline: Hotline, rules, snap, pos):
    """The number's Fallback URL: Twilio could not use our answer. Needs no database: the last good snapshot."""
    log.error("fallback URL called: ErrorCode=%s ErrorUrl=%s", _values().get("ErrorCode"),
              _values().get("ErrorUrl"))
    return flow.fallback(rules, snap, pos)
