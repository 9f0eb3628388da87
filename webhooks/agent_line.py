"""The agent line (POST /voice/agent): agents take the next caller, highest priority and longest wait first.

Agents are known by caller ID and a PIN (three tries, then goodbye, audited). Each connection is a
<Dial><Queue> to the Twilio queue of the caller who should be served next, with a whisper to the agent of
that caller's context first. When the call ends, the agent is offered the next caller.
"""
from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, request

from ivr.store import agents, queues
from ivr.store.pins import pin_matches
from ivr.store.audit import audit
from ivr.core.verbs import DialQueue, Event, Gather, Hangup, Link, Pause, Redirect, Reply, Say
from webhooks.twilio_view import _call_sid, _digits, _int, _values, twilio_route

MAX_PIN_TRIES = 3
MAX_IDLE_POLLS = 30  # about ten minutes of "nobody is waiting" before the line lets the agent go
LANG = "en"

bp = Blueprint("agent_line", __name__, url_prefix="/voice")
voice_route = twilio_route(bp)


def _say(text: str) -> Say:
    return Say(text, LANG)


def _key(hotline, name: str) -> str:
    msg = f"agent-line:{_call_sid()}:{name}".encode()
    return hmac.new(hotline.config.secret_key.encode(), msg, hashlib.sha256).hexdigest()[:24]


def _session(hotline) -> str | None:
    name, key = request.args.get("u", ""), request.args.get("k", "")
    return name if name and hmac.compare_digest(key, _key(hotline, name)) else None


def _audit(hotline, actor: str, action: str, to_value: str) -> None:
    with hotline.db.write() as conn:
        audit(conn, actor=actor, action=action, subject="agent line", to_value=to_value)


def _expired() -> Reply:
    return Reply([_say("This session has expired. Goodbye."), Hangup()], [Event("agent_line", "bad session")])


@voice_route("/agent")
def agent(hotline, rules, snap, pos):
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    if agents.agent_for_phone(hotline.db, caller_hash) is None:
        _audit(hotline, f"phone {masked}", "agent_line.unknown_caller", "not an agent's number; call ended")
        return Reply([_say("This line is for our staff. Goodbye."), Hangup()], [Event("agent_line", "unknown")])
    return Reply(_pin_prompt(0), [Event("agent_line", "pin asked")])


def _pin_prompt(tries: int, lead: tuple = ()) -> list:
    prompt = _say("Agent line. Enter your PIN, then press the pound key.")
    return [Gather(Link.to("/voice/agent/pin", t=tries), lead + (prompt,), 10, num_digits=None),
            _say("We did not get a PIN. Goodbye."), Hangup()]


@voice_route("/agent/pin")
def agent_pin(hotline, rules, snap, pos):
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    found = agents.agent_for_phone(hotline.db, caller_hash)
    tries = _int(request.args.get("t"), 0, MAX_PIN_TRIES)
    if found is None:
        return Reply([_say("This line is for our staff. Goodbye."), Hangup()])
    name, pin_hash = found
    if not pin_matches(pin_hash, _digits() or ""):
        tries += 1
        _audit(hotline, name, "agent_line.pin_failed", f"try {tries} of {MAX_PIN_TRIES} from {masked}")
        if tries >= MAX_PIN_TRIES:
            _audit(hotline, name, "agent_line.locked_out", "too many wrong PINs; call ended")
            return Reply([_say("That PIN is not right. Goodbye."), Hangup()], [Event("agent_line", "locked out")])
        return Reply(_pin_prompt(tries, (_say("That PIN is not right."),)), [Event("agent_line", "wrong pin")])
    _audit(hotline, name, "agent_line.login", f"from {masked}")
    return Reply([Redirect(Link.to("/voice/agent/next", u=name, k=_key(hotline, name), a=0))],
                 [Event("agent_line", f"login {name}")])


@voice_route("/agent/next")
def agent_next(hotline, rules, snap, pos):
    """Connect the agent to the next caller, or wait a little and look again."""
    name = _session(hotline)
    if name is None:
        return _expired()
    session = dict(u=name, k=_key(hotline, name))
    nxt = queues.next_waiting(hotline.db)
    if nxt is None:
        polls = _int(request.args.get("a"), 0, MAX_IDLE_POLLS)
        if polls >= MAX_IDLE_POLLS:
            return Reply([_say("Nobody has been waiting for a while. Goodbye."), Hangup()])
        return Reply([_say("Nobody is waiting right now."), Pause(20),
                      Redirect(Link.to("/voice/agent/next", a=polls + 1, **session))])
    twilio_queue = rules.twilio_queue(nxt["queue"], nxt["priority"]) if nxt["queue"] in rules.queues else nxt["queue"]
    whisper = Link.to("/voice/whisper", u=name)
    return Reply([_say("Connecting you to the next caller."),
                  DialQueue(twilio_queue, whisper, Link.to("/voice/agent/next", a=0, **session))],
                 [Event("agent_line", f"dequeue {twilio_queue}")])


@voice_route("/whisper")
def whisper(hotline, rules, snap, pos):
    """Said to the agent before the caller is connected: who this caller is and why they called."""
    entry = queues.entry(hotline.db, _call_sid())
    wait = _int(_values().get("QueueTime"), 0, 10**6)
    hotline.recorder.record("queue_exit", call_sid=_call_sid(), status="bridged", wait_s=wait,
                            agent=request.args.get("u", "")[:120] or None)
    if entry is None:
        return Reply([_say(f"Connecting a caller who waited {wait // 60} minutes. We have no details for this call.")])
    lang = rules.languages[entry["language"]].name if entry["language"] in rules.languages else entry["language"]
    facts = [f"Caller in {lang}", f"waited {wait // 60} minutes {wait % 60} seconds",
             f"reason: {entry['reason']}", f"incident severity {entry['severity'] or 'unknown'}"]
    if entry["affected"]:
        facts.insert(1, "on the affected customers list")
    return Reply([_say(". ".join(facts) + ".")])
