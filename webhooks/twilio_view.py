"""What every Twilio webhook shares: the signature check, Twilio's parameters, the call position, the answer
in TwiML whatever happens, and carrying out the step's effects: a caller's are spooled (no database write
in a caller's path); a staff line's audit lines and jobs are written before it answers.

Whatever happens inside, a signed request gets 200 and TwiML that keeps the caller served; only forgeries
get a 403.
"""
from __future__ import annotations

import hashlib
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial, wraps

from flask import Blueprint, Response, current_app, request

from ivr.core import flow, verbs, verification
from ivr.core.effects import SMS_JOB, Audit, BookCallback, CallStarted, EnqueueJob, EnterQueue, LeaveQueue, SendSms
from ivr.core.staff_call import StaffCall
from ivr.core.verification import VerifyAttempt
from ivr.hotline import Hotline
from ivr.ops.metrics import WEBHOOK_SECONDS
from ivr.spool.lines import LineTemplates, Var
from ivr.spool.segments import encode, now
from ivr.store import jobs, sealed
from ivr.store.audit import audit
from webhooks import twiml
from webhooks.params import TwilioParams, raw_query, twilio_params
from webhooks.prepared import PreparedReply
from webhooks.security import is_signed, request_path

log = logging.getLogger("webhooks.voice")  # the name operators' log filters know

# The answer of last resort, needing nothing at all: used only if even the safe reply cannot be built.
LAST_RESORT = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-US">We are having technical difficulties. '
    "Please call again in a few minutes, or visit our website for the latest information.</Say><Hangup/></Response>"
)


FORBIDDEN = "Forbidden: not signed by Twilio\n"
# The request being answered's parameters, for the handlers (set by TwilioRoute.answer, under Flask or not)
_PARAMS: ContextVar[TwilioParams] = ContextVar("twilio_params")


def _int(value, default: int, hi: int) -> int:
    try:
        return min(max(int(value), 0), hi)
    except (TypeError, ValueError):
        return default


def _values() -> TwilioParams:
    """This request's parameters (Twilio's form, then our query string), parsed once."""
    return _PARAMS.get()


def _position(rules, p=None) -> verbs.Position:
    """The call position from our own query string (junk falls back to a fresh start)."""
    p = p or _values()
    return verbs.Position(rules.language(p.arg("l")), _int(p.arg("a"), 0, 50), _int(p.arg("s"), 0, 10_000),
                          verification.carried(p.arg("v")))


def _digits() -> str | None:
    p = _values()
    digits = (p.form_get("Digits") or p.arg("Digits") or "").strip()
    return digits[:64] or None


def _call_sid(p=None) -> str:
    sid = ((p or _values()).get("CallSid") or "").strip()
    return sid[:64] if sid else "unknown"


def twilio_route(bp: Blueprint, direct: bool = False):
    """The decorator that registers a Twilio webhook on `bp`: signature check, then the handler, with every
    failure answered in TwiML. `needs_state=False`: the handler gets the last good snapshot and never
    touches the database. `direct=True`: its handlers use nothing of Flask's (no `request`, no
    `current_app`), so webhooks/direct.py answers them straight from the WSGI environ."""

    def voice_route(path: str, methods=("POST", "GET"), needs_state: bool = True):
        return partial(_register, bp, path, methods, needs_state, direct)

    return voice_route


def _register(bp: Blueprint, path: str, methods, needs_state: bool, direct: bool, handler):
    route = TwilioRoute(handler, path, needs_state, frozenset(methods))

    @bp.route(path, methods=list(methods), endpoint=handler.__name__)
    @wraps(handler)
    def view():
        hotline = current_app.extensions["ivr"]
        req = request._get_current_object()  # the object itself: every lookup through the proxy costs
        req.max_content_length = hotline.config.max_body_bytes  # Twilio's requests are small
        status, body = route.answer(hotline, req.environ, lambda: twilio_params(req))
        return Response(body, status=status, mimetype="text/xml" if status == 200 else "text/plain")

    if direct:
        view.twilio_route = route  # how webhooks/direct.py finds it in the URL map
    return view


class TwilioRoute:
    """One Twilio webhook, answered from its WSGI environ: under Flask (the view above) or without it
    (webhooks/direct.py), with the same code and so the same bytes."""

    def __init__(self, handler, path: str, needs_state: bool, methods: frozenset):
        self.handler, self.path, self.needs_state, self.methods = handler, path, needs_state, methods
        self.seconds = None  # its latency histogram, looked up once (its labels cost more than observing)

    def answer(self, hotline: Hotline, env: dict, params) -> tuple[int, str]:
        """(status, body): 200 and TwiML for a signed request whatever happens inside, 403 for a forgery.
        `params()`: the request's parameters (may raise RequestEntityTooLarge, for Flask to answer)."""
        started = time.perf_counter()
        path = request_path(env)
        if hotline.config.validate_signatures:
            form = params().form if env.get("REQUEST_METHOD") == "POST" else {}
            if not is_signed(env, form, hotline.validator, hotline.config.public_url):
                log.warning("refused unsigned or forged request to %s from %s", path, env.get("REMOTE_ADDR"))
                return 403, FORBIDDEN
        try:
            body = _answer(hotline, self.handler, self.needs_state, env, params())
        except Exception:  # pragma: no cover - _answer already catches; this is the very last net
            log.exception("voice route %s failed beyond recovery", path)
            body = LAST_RESORT
        if self.seconds is None:  # at the first request, not at import: a route never called shows no series
            self.seconds = WEBHOOK_SECONDS.labels(self.path)
        self.seconds.observe(time.perf_counter() - started)
        return 200, body


def _answer(hotline: Hotline, handler, needs_state: bool, env: dict, params: TwilioParams) -> str:
    rules = hotline.rules.rules
    base = hotline.config.public_url
    token = _PARAMS.set(params)
    try:
        return _reply(hotline, handler, needs_state, env, params, rules, base)
    finally:
        _PARAMS.reset(token)


def _reply(hotline: Hotline, handler, needs_state: bool, env: dict, params: TwilioParams, rules, base) -> str:
    try:
        snap = hotline.state.current() if needs_state else hotline.state.last_good()
        pos = _position(rules, params)
        reply = handler(hotline, rules, snap, pos)
        reply = with_sealed_callbacks(hotline, reply, params)
    except Exception:
        log.exception("voice route %s failed; answering with the safe reply", request_path(env))
        snap = hotline.state.last_good()
        pos = _position(rules, params)
        reply = flow.safe_reply(rules, snap, pos)
    if isinstance(reply, PreparedReply):  # rendered when it was made (webhooks/prepared.py)
        body = reply.twiml
    else:
        body = twiml.render(reply, rules, base) if isinstance(reply, verbs.Reply) else reply
    _record(hotline, reply, pos, env, params)
    return body


@dataclass(frozen=True)
class SealedCallback(BookCallback):
    """A callback with the caller's number as it is stored: sealed (ivr/store/sealed.py), its keyed hash
    (what finds the number's open callback) and its masked tail. The shell adds these; the flow stays pure."""

    number: str = ""
    number_hash: str | None = None
    number_masked: str = ""


def callback_number(hotline: Hotline, params) -> dict:
    """The caller's number for a callback record: sealed, hashed and masked (DataKeyError: no usable key)."""
    number = (params.get("From") or "")[:32]
    number_hash, masked = hotline.caller_identity(number)
    return {"number": sealed.seal(hotline.db, number), "number_hash": number_hash, "number_masked": masked or ""}


def with_sealed_callbacks(hotline: Hotline, reply, params):
    """A reply promising a callback, with the caller's number sealed before the caller hears the promise:
    with no usable data key this raises, so the caller gets the safe reply instead of a promise that could
    not be kept, and the spool never holds the number in clear."""
    if not isinstance(reply, verbs.Reply) or not any(isinstance(e, BookCallback) for e in reply.effects):
        return reply
    number = callback_number(hotline, params)
    return replace(reply, effects=[SealedCallback(**vars(e), **number) if isinstance(e, BookCallback) else e
                                   for e in reply.effects])


def _record(hotline: Hotline, reply, pos: verbs.Position, env: dict, params) -> None:
    """Spool what this step did, in one write; a failure here is logged and never reaches the caller."""
    if not isinstance(reply, verbs.Reply):
        return
    try:
        sid = _call_sid(params)
        # The URL Twilio requested names the step exactly (our URLs carry a step counter): a retry of the
        # same request gets the same key and is recorded once; different steps never collide.
        query = raw_query(env)
        step = request_path(env).removeprefix("/voice/") + (f"?{query}" if query else "")
        if len(step) > 140:  # the column holds 160: keep it unique rather than cut it
            step = step[:100] + "~" + hashlib.sha256(step.encode()).hexdigest()[:24]
        lines: list = []
        call_info = apply(hotline, reply.effects, sid, params, pos.lang, lines)
        last = len(reply.events) - 1
        for i, event in enumerate(reply.events):
            ending = (("outcome", reply.outcome), ("language", reply.language or pos.lang)) if i == last else ()
            lines.append(_event_line(sid, f"{step}#{i}", pos.step, event, call_info if i == 0 else {}, ending))
        hotline.recorder.append_lines(lines)
    except Exception:
        log.exception("could not record the events of %s", request_path(env))


_LINES = LineTemplates()
_SID, _AT, _HASH, _MASKED = Var(0), Var(1), Var(2), Var(3)  # what differs between callers taking one step
_CALLER = {"caller_hash": _HASH, "caller_masked": _MASKED}


def _event_line(sid: str, step: str, n: int, event, call_info: dict, ending: tuple) -> tuple[bytes, float, str]:
    """A step's event as a spool line: the record `recorder.record("event", ...)` would write, from a
    template per step and event (ivr/spool/lines.py)."""
    at = now()
    shared = tuple((k, v) for k, v in call_info.items() if k not in _CALLER)

    def fields() -> dict:
        extra = {k: _CALLER.get(k, v) for k, v in call_info.items()}
        extra.update(ending)
        return {"call_sid": _SID, "step": step, "n": n, "kind": event.kind, "detail": event.detail or None,
                "digits": event.digits, **extra, "type": "event", "at": _AT}

    values = (sid, at, call_info.get("caller_hash"), call_info.get("caller_masked"))
    return _LINES.line(("event", step, n, event, shared, ending), fields, values), at, "event"


def status_line(sid: str, status: str, sequence: int, duration: int | None) -> tuple[bytes, float, str]:
    """A status callback's record as a spool line (what `recorder.record("status", ...)` would write)."""
    at = now()
    fields = lambda: {"call_sid": _SID, "status": status, "sequence": Var(2), "duration": Var(3),  # noqa: E731
                      "type": "status", "at": _AT}
    return _LINES.line(("status", status), fields, (sid, at, sequence, duration)), at, "status"


def _line(rtype: str, **data) -> tuple[bytes, float, str]:
    """Any other record as a spool line, encoded as `recorder.record(rtype, ...)` would."""
    data["type"] = rtype
    data["at"] = at = now()
    return (encode(data) + "\n").encode(), at, rtype


def apply(hotline: Hotline, effects: list, sid: str, params, language: str, lines: list) -> dict:
    """Carry out a step's effects: their records go to `lines`, to be spooled with the step's events.
    Returns the call's details for the step's first event to carry. A callback is spooled too: the spool
    writer stores it through the store's own function (ivr/spool/batch.py), once per call however often
    Twilio retries the step."""
    call_info = {}
    for effect in effects:
        if isinstance(effect, CallStarted):  # rides on the step's first event: one record instead of two
            call_info = {**vars(effect), "call_info": True}
        elif isinstance(effect, VerifyAttempt):  # counted by the limits once written (ivr/core/verification.py)
            lines.append(_line("verify_attempt", call_sid=sid, step=f"verify#{effect.step}", ok=effect.ok,
                               caller_hash=hotline.caller_identity(params.get("From"))[0]))
        elif isinstance(effect, EnterQueue):
            lines.append(_line("queue_enter", call_sid=sid, **vars(effect)))
        elif isinstance(effect, LeaveQueue):
            lines.append(_line("queue_exit", call_sid=sid, **vars(effect)))
        elif isinstance(effect, BookCallback):  # spooled like the rest: promised even with the database away
            fields = vars(effect) if isinstance(effect, SealedCallback) else {**vars(effect),
                                                                             **callback_number(hotline, params)}
            lines.append(_line("callback", call_sid=sid, language=language, **fields))
        elif isinstance(effect, SendSms):  # the number it goes to is kept only until it is sent
            payload = {"to": params.get("From", ""), "lang": effect.lang, "reference": effect.reference,
                       "call_sid": sid}
            # Sealed before it is spooled: the spool folder never holds the number in clear either.
            lines.append(_line("job", call_sid=sid, kind=SMS_JOB, dedupe_key=f"{SMS_JOB}:{sid}",
                               **sealed.stored_job(hotline.db, payload)))
        elif not isinstance(effect, (Audit, EnqueueJob)):  # staff lines': written before answering
            raise TypeError(f"not an effect: {effect!r}")
    return call_info


def write_staff_effects(hotline: Hotline, reply: verbs.Reply) -> verbs.Reply:
    """A staff line's audit lines and jobs, in one transaction before the answer: staff never hear of a
    publish that was not queued (a failure here is the safe reply instead)."""
    staff = [e for e in reply.effects if isinstance(e, (Audit, EnqueueJob))]
    if staff:
        with hotline.db.write() as conn:
            for effect in staff:
                if isinstance(effect, Audit):
                    audit(conn, actor=effect.actor, action=effect.action, subject=effect.subject,
                          to_value=effect.to_value, reason=effect.reason)
                else:
                    jobs.enqueue(conn, effect.kind, effect.payload, dedupe_key=effect.dedupe_key,
                                 after=timedelta(seconds=effect.after_s))
        if any(isinstance(e, EnqueueJob) for e in staff):
            hotline.jobs.poke()
    return reply


def staff_call(hotline: Hotline, line: str) -> StaffCall:
    """The staff-line view of this call: its CallSid, the key for sign-ins, and the masked phone."""
    number = _values().get("From") or ""
    caller = f"phone ***{number[-4:]}" if len(number) >= 4 else "phone (unknown)"
    return StaffCall(line, _call_sid(), hotline.config.secret_key, caller)
