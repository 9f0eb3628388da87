"""The agent line as pure steps: agents take the next caller, highest priority and longest wait first.

Agents are known by caller ID and a PIN (three tries a call, then goodbye, audited; across calls,
ivr/store/pin_guard.py). Each connection is a
<Dial><Queue> to the Twilio queue of the caller who should be served next, with a whisper of that
caller's context first. When the call ends, the agent is offered the next caller. webhooks/agent_line.py
looks up the agent, the queues and the caller's entry, and calls these.
"""
from __future__ import annotations

from ivr.core.effects import Audit, LeaveQueue
from ivr.core.rules import Rules
from ivr.core.staff_call import StaffCall, bye, pin_locked, say
from ivr.core.verbs import DialQueue, Event, Gather, Hangup, Link, Pause, Redirect, Reply

MAX_PIN_TRIES = 3
MAX_IDLE_POLLS = 30  # about ten minutes of "nobody is waiting" before the line lets the agent go
STRANGER = "This line is for our staff. Goodbye."


def _audit(actor: str, action: str, to_value: str) -> Audit:
    return Audit(actor, action, "agent line", to_value)


def _pin_prompt(tries: int, lead: tuple = ()) -> list:
    prompt = say("Agent line. Enter your PIN, then press the pound key.")
    return [Gather(Link.to("/voice/agent/pin", t=tries), lead + (prompt,), 10, num_digits=None),
            say("We did not get a PIN. Goodbye."), Hangup()]


def start(call: StaffCall, agent: str | None, masked: str | None, locked: bool = False) -> Reply:
    """A call to the agent line: only an agent's own number is asked for a PIN, unless the line takes no PIN
    from it now (`locked`, ivr/store/pin_guard.py)."""
    if agent is None:
        return bye(STRANGER, Event("agent_line", "unknown"),
                   [_audit(f"phone {masked}", "agent_line.unknown_caller", "not an agent's number; call ended")])
    if locked:
        return pin_locked("agent_line")
    return Reply(_pin_prompt(0), [Event("agent_line", "pin asked")])


def pin_entered(call: StaffCall, agent: str | None, pin_ok: bool, tries: int, masked: str | None,
                locked: bool = False) -> Reply:
    """`locked`: this wrong PIN was one too many (ivr/store/pin_guard.py): no more from this caller ID for now."""
    if agent is None:
        return bye(STRANGER)
    if not pin_ok:
        tries += 1
        effects = [_audit(agent, "agent_line.pin_failed", f"try {tries} of {MAX_PIN_TRIES} from {masked}")]
        if locked:
            return pin_locked("agent_line", effects)
        if tries >= MAX_PIN_TRIES:
            effects.append(_audit(agent, "agent_line.locked_out", "too many wrong PINs; call ended"))
            return bye("That PIN is not right. Goodbye.", Event("agent_line", "locked out"), effects)
        return Reply(_pin_prompt(tries, (say("That PIN is not right."),)), [Event("agent_line", "wrong pin")],
                     effects=effects)
    return Reply([Redirect(call.link("/voice/agent/next", agent, a=0))], [Event("agent_line", f"login {agent}")],
                 effects=[_audit(agent, "agent_line.login", f"from {masked}")])


def next_caller(call: StaffCall, rules: Rules, agent: str | None, waiting: dict | None, polls: int) -> Reply:
    """Connect the agent to the caller who should be served next (`waiting`), or wait and look again."""
    if agent is None:
        return bye("This session has expired. Goodbye.", Event("agent_line", "bad session"))
    if waiting is None:
        if polls >= MAX_IDLE_POLLS:
            return bye("Nobody has been waiting for a while. Goodbye.")
        return Reply([say("Nobody is waiting right now."), Pause(20),
                      Redirect(call.link("/voice/agent/next", agent, a=polls + 1))])
    queue, priority = waiting["queue"], waiting["priority"]
    twilio_queue = rules.twilio_queue(queue, priority) if queue in rules.queues else queue
    return Reply([say("Connecting you to the next caller."),
                  DialQueue(twilio_queue, Link.to("/voice/whisper", u=agent),
                            call.link("/voice/agent/next", agent, a=0))],
                 [Event("agent_line", f"dequeue {twilio_queue}")])


def whisper(rules: Rules, entry: dict | None, wait: int, agent: str | None) -> Reply:
    """Who this caller is and why they called, said before the two are connected."""
    leave = LeaveQueue("bridged", wait, agent)
    if entry is None:
        return Reply([say(f"Connecting a caller who waited {wait // 60} minutes. We have no details for this call.")],
                     effects=[leave])
    lang = rules.languages[entry["language"]].name if entry["language"] in rules.languages else entry["language"]
    facts = [f"Caller in {lang}", f"waited {wait // 60} minutes {wait % 60} seconds",
             f"reason: {entry['reason']}", f"incident severity {entry['severity'] or 'unknown'}"]
    if entry["affected"]:
        facts.insert(1, "on the affected customers list")
    return Reply([say(". ".join(facts) + ".")], effects=[leave])
