"""The agent line (POST /voice/agent): the HTTP shell around ivr/core/agent_line.py.

Each route reads Twilio's parameters and our own (the session key), looks up what the step needs (the agent
for this caller ID and whether the PIN matches; the next caller, or else the next owed callback, claimed for
this agent in one transaction) and writes the step's audit lines and the agent's status before answering.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from ivr.core import agent_callbacks as callback_steps
from ivr.core.call_status import TERMINAL
from ivr.core import agent_line as steps
from ivr.store import agents, callbacks, desk, pin_guard, queues
from ivr.store.models import utcnow
from ivr.store.pin_guard import PinLimits
from ivr.store.pins import pin_matches
from webhooks import twiml
from webhooks.twilio_view import _digits, _int, _values, staff_call, twilio_route, write_staff_effects

bp = Blueprint("agent_line", __name__, url_prefix="/voice")
voice_route = twilio_route(bp)
LINE = "agent-line"


def _signed_in(call) -> str | None:
    """The agent this URL signs in, while still an active agent: deactivating them ends the shift at once."""
    name = call.signed_in(request.args.get("u", ""), request.args.get("k", ""))
    return name if name and agents.is_active_agent(current_app.extensions["ivr"].db, name) else None


@voice_route("/agent")
def agent(hotline, rules, snap, pos):
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    found = agents.agent_for_phone(hotline.db, caller_hash)
    locked = bool(found) and pin_guard.locked(hotline.db, "agent", caller_hash)
    return write_staff_effects(hotline, steps.start(staff_call(hotline, LINE), found and found[0], masked, locked))


@voice_route("/agent/pin")
def agent_pin(hotline, rules, snap, pos):
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    found = agents.agent_for_phone(hotline.db, caller_hash)
    name, pin_hash = found or (None, None)
    call = staff_call(hotline, LINE)
    if name and pin_guard.locked(hotline.db, "agent", caller_hash):
        return steps.start(call, name, masked, locked=True)  # not even the right PIN is checked
    pin_ok = pin_matches(pin_hash, _digits() or "")
    if name and pin_ok:
        pin_guard.succeeded(hotline.db, "agent", caller_hash)
        desk.set_status(hotline.db, name, "available", line_call_sid=call.call_sid)
    locked = bool(name) and not pin_ok and pin_guard.failed(hotline.db, "agent", caller_hash, masked,
                                                            PinLimits.from_config(hotline.config), registered=True)
    reply = steps.pin_entered(call, name, pin_ok, _int(request.args.get("t"), 0, steps.MAX_PIN_TRIES), masked, locked)
    return write_staff_effects(hotline, reply)


@voice_route("/agent/next")
def agent_next(hotline, rules, snap, pos):
    """Connect the agent to the next caller; with nobody waiting, offer the next owed callback."""
    call = staff_call(hotline, LINE)
    name = _signed_in(call)
    polls = _int(request.args.get("a"), 0, steps.MAX_IDLE_POLLS)
    dial_status = (_values().get("DialCallStatus") or "").strip()[:20]
    if name and dial_status:  # this is the action of the agent's <Dial><Queue>: whom did Twilio connect?
        connected = queues.dial_ended(hotline.db, name, dial_status, (_values().get("DialCallSid") or "")[:64],
                                      _int(_values().get("DialCallDuration"), 0, 10**6))
        desk.dial_over(hotline.db, name, connected)
        if (_values().get("CallStatus") or "") in TERMINAL:  # the agent hung up: claim nobody for a dead call
            return twiml.EMPTY
    serves = agents.serves(hotline.db, name) if name else ()
    taken = queues.take_next(hotline.db, name, serves) if name else None
    if taken is not None:
        desk.set_status(hotline.db, name, "on_call", call_sid=taken["call_sid"])
    elif name:
        owed = callbacks.claim_next(hotline.db, name, serves)
        if owed is not None:
            return callback_steps.offer(call, rules, name, owed, utcnow())
        if polls >= steps.MAX_IDLE_POLLS:
            desk.set_status(hotline.db, name, "signed_out")
    return steps.next_caller(call, rules, name, taken, polls)


@voice_route("/queue-connect")
def queue_connect(hotline, rules, snap, pos):
    """Twilio's <Queue url> document, run on the QUEUED CALLER's leg (twilio.com/docs/voice/twiml/queue): it
    says nothing about them. Its DequeingCallSid bridges the caller (spooled: this is the caller's webhook
    path); the agent's Dial action (DialCallSid, queues.dial_ended) and the caller's Enqueue action
    (QueueResult bridged) say so again afterwards, and whichever comes first counts."""
    dequeuing = (_values().get("DequeingCallSid") or "").strip()[:64] or None
    return steps.queue_connect(rules, pos.lang, dequeuing, _int(_values().get("QueueTime"), None, 10**6))
