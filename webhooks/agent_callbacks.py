"""The agent line's callbacks: the HTTP shell around ivr/core/agent_callbacks.py. It claims, dials and
records in the database (ivr/store/callbacks.py); the desk's "call now" enters at /voice/agent/call-now."""
from __future__ import annotations

import logging

from flask import Blueprint, request

from ivr.core import agent_callbacks as steps
from ivr.core.agent_line import expired
from ivr.core.flow import reference
from ivr.core.staff_call import say
from ivr.store import callbacks, desk
from ivr.store.models import utcnow
from ivr.store.sealed import DataKeyError
from webhooks.agent_line import LINE, _signed_in
from webhooks.twilio_view import _digits, _int, _values, staff_call, twilio_route

log = logging.getLogger(__name__)
bp = Blueprint("agent_callbacks", __name__, url_prefix="/voice")
voice_route = twilio_route(bp)


def _callback_id() -> int:
    return _int(request.args.get("c"), 0, 2**31)


def _session(hotline):
    """This call, the agent its URL signs in (None: expired or forged), and the callback it is about."""
    call = staff_call(hotline, LINE)
    return call, _signed_in(call), _callback_id()


@voice_route("/agent/callback")
def agent_callback(hotline, rules, snap, pos):
    """The agent's answer to an offer: 1 dials the customer; anything else leaves it owed as before."""
    call, name, callback_id = _session(hotline)
    if name is None:
        return expired()
    if _digits() != steps.CALL_KEY:
        callbacks.release(hotline.db, callback_id, name)
        return steps.passed(call, name)
    return _dial(hotline, call, name, callback_id, _values().get("To"))


def _dial(hotline, call, name: str, callback_id: int, number_called: str | None, lead: tuple = ()):
    try:
        owed = callbacks.start_dial(hotline.db, callback_id, name)
    except DataKeyError as exc:
        log.error("callback %s not dialled by %s: %s", callback_id, name, exc)
        callbacks.release(hotline.db, callback_id, name)
        return steps.cannot_open(call, name, callback_id)
    if owed is None:
        return steps.not_theirs(call, name)
    desk.set_status(hotline.db, name, "on_call", call_sid=owed["call_sid"], callback_id=callback_id)
    # The hotline's own number as caller ID: the customer sees who is calling them back.
    return steps.dialling(call, name, owed, hotline.config.hotline_number or number_called or None, lead)


@voice_route("/agent/call-now")
def agent_call_now(hotline, rules, snap, pos):
    """The desk's "call now": Twilio rang the agent's phone (REST calls.create) and they answered; tell
    them who it is, then dial the customer. The token ties the URL to this agent and callback."""
    call = staff_call(hotline, LINE)
    name, callback_id = request.args.get("u", ""), _callback_id()
    if not steps.call_now_ok(hotline.config.secret_key, name, callback_id, request.args.get("t", "")):
        return expired()
    owed = callbacks.get(hotline.db, callback_id)
    lead = (say(steps.context(rules, owed, utcnow())),) if owed else ()
    return _dial(hotline, call, name, callback_id, _values().get("From"), lead)


@voice_route("/agent/callback-result")
def agent_callback_result(hotline, rules, snap, pos):
    """The Dial's action: answered, the callback is done; otherwise counted, and retried or closed."""
    call, name, callback_id = _session(hotline)
    if name is None:
        return expired()
    status = (_values().get("DialCallStatus") or "").strip()[:20]
    policy, cfg = rules.agents.callbacks, hotline.config
    owed = callbacks.get(hotline.db, callback_id)
    sms = None
    if owed and cfg.twilio_account_sid and cfg.sms_from:
        sms = {"lang": owed["language"], "prompt": "callback_unreachable_sms", "reference": reference(owed["call_sid"])}
    outcome = callbacks.dial_result(hotline.db, callback_id, name, status, max_attempts=policy.attempts,
                                    retry_minutes=policy.retry_minutes, sms_job=sms)
    if outcome in ("retry", "unreachable"):
        desk.set_status(hotline.db, name, "available")
    return steps.dial_ended(call, name, callback_id, outcome, status, policy.retry_minutes)
