"""Agent-first callbacks on the agent line, as pure steps (as Amazon Connect's queued callbacks work): an
agent with nobody waiting hears the next owed callback's context, presses 1, and the line dials the customer
from the hotline's number. The <Dial> action's DialCallStatus (completed, answered, busy, no-answer, failed,
canceled: twilio.com/docs/voice/twiml/dial) decides: answered, done; otherwise tried again later, then closed
as unreachable. webhooks/agent_callbacks.py claims, dials and records in the database and calls these.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from ivr.core.agent_line import idle, language_name, minutes_seconds
from ivr.core.rules import Rules
from ivr.core.staff_call import StaffCall, say
from ivr.core.verbs import Dial, Event, Gather, Redirect, Reply

CALL_KEY = "1"


def context(rules: Rules, owed: dict, now: datetime) -> str:
    waited = max(0, int((now - owed["requested_at"]).total_seconds()))
    facts = [f"A callback is owed to a caller in {language_name(rules, owed['language'])}",
             f"queue {owed['queue']}", f"reason: {owed['reason'] or 'not known'}",
             f"asked {minutes_seconds(waited)} ago",
             f"attempt {owed['attempts'] + 1} of {rules.agents.callbacks.attempts}"]
    if owed.get("voicemail_url"):
        facts.append("they left a voicemail, on your desk")
    return ". ".join(facts) + "."


def offer(call: StaffCall, rules: Rules, agent: str, owed: dict, now: datetime) -> Reply:
    """Offer a callback claimed for the agent; no key (or any other key) passes it back."""
    choice = call.link("/voice/agent/callback", agent, c=owed["id"])
    prompt = say(f"To call them now, press {CALL_KEY}. To leave it for later, press 2.")
    return Reply([Gather(choice, (say(context(rules, owed, now)), prompt), 10), Redirect(choice)],
                 [Event("agent_line", f"callback {owed['id']} offered")])


def passed(call: StaffCall, agent: str) -> Reply:
    return idle(call, agent, 1, ("Left for later.",))


def cannot_open(call: StaffCall, agent: str, callback_id: int) -> Reply:
    """The number cannot be opened (the data key is missing or wrong): the callback stays owed."""
    return Reply(idle(call, agent, 1, ("This callback cannot be dialled now: the hotline's data key is missing "
                                       "or wrong. It stays owed. Please tell the operations team.",)).verbs,
                 [Event("agent_line", f"callback {callback_id} not dialled: no data key")])


def not_theirs(call: StaffCall, agent: str) -> Reply:
    return idle(call, agent, 1, ("That callback is no longer yours to make.",))


def dialling(call: StaffCall, agent: str, owed: dict, caller_id: str | None, lead: tuple = ()) -> Reply:
    """Dial the customer, showing the hotline's number (`caller_id`); the result comes to the action."""
    result = call.link("/voice/agent/callback-result", agent, c=owed["id"])
    return Reply([*lead, say("Calling them now."), Dial(owed["number"], result, caller_id=caller_id)],
                 [Event("agent_line", f"callback {owed['id']} dialled")])


def dial_ended(call: StaffCall, agent: str, callback_id: int, outcome: str | None, dial_status: str,
               retry_minutes: int) -> Reply:
    """What the agent hears once the dial is over: `outcome` is done, retry, unreachable, or None when this
    result was already recorded (a repeated request)."""
    events = [Event("agent_line", f"callback {callback_id} {outcome or 'already recorded'} ({dial_status})")]
    if outcome == "done":
        return Reply([say("The call has ended. Please record its outcome on your desk."),
                      Redirect(call.link("/voice/agent/next", agent, a=0))], events)
    said = {"retry": f"They did not answer. We will try again in {retry_minutes} minutes.",
            "unreachable": "They did not answer. That was the last attempt: the callback is closed."}
    return Reply(idle(call, agent, 0, (said.get(outcome, "Looking for the next caller."),)).verbs, events)


def call_now_token(secret_key: str, agent: str, callback_id: int) -> str:
    """Ties a "call now" URL (the one Twilio requests when the agent answers) to this agent and callback."""
    msg = f"call-now:{agent}:{callback_id}".encode()
    return hmac.new(secret_key.encode(), msg, hashlib.sha256).hexdigest()[:24]


def call_now_ok(secret_key: str, agent: str, callback_id: int, token: str) -> bool:
    return bool(agent) and hmac.compare_digest(token, call_now_token(secret_key, agent, callback_id))
