"""The agent line as pure steps: agents take the next caller, highest priority and longest wait first.

Agents are known by caller ID and a PIN (three tries a call, then goodbye, audited; across calls,
ivr/store/pin_guard.py). Each connection is a <Dial><Queue> to the Twilio queue of the caller who should be
served next. The agent hears that caller's context on their own call first: Twilio runs the <Queue url>
document on the QUEUED CALLER's leg, "executed on the queued caller's end before the two parties are
connected" (twilio.com/docs/voice/twiml/queue), so that document only tells the caller a person is coming.
With nobody waiting, the agent is offered the next owed callback (ivr/core/agent_callbacks.py). When a call
ends, the agent is offered the next one. webhooks/agent_line.py claims the caller (or callback) in the
database and calls these.
"""
from __future__ import annotations

from ivr.core.effects import Audit, LeaveQueue
from ivr.core.rules import Rules
from ivr.core.staff_call import StaffCall, bye, pin_locked, say
from ivr.core.verbs import DialQueue, Event, Gather, Hangup, Link, Pause, Redirect, Reply, Say

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


def expired() -> Reply:
    return bye("This session has expired. Goodbye.", Event("agent_line", "bad session"))


def idle(call: StaffCall, agent: str, polls: int, lead: tuple = ("Nobody is waiting right now.",)) -> Reply:
    """Wait a little and look again; after a long while with nobody to serve, let the agent go."""
    if polls >= MAX_IDLE_POLLS:
        return bye("Nobody has been waiting for a while. Goodbye.")
    return Reply([say(text) for text in lead] + [Pause(20),
                                                 Redirect(call.link("/voice/agent/next", agent, a=polls + 1))])


def next_caller(call: StaffCall, rules: Rules, agent: str | None, taken: dict | None, polls: int) -> Reply:
    """Connect the agent to the caller claimed for them (`taken`, their queue entry), or wait and look again."""
    if agent is None:
        return expired()
    if taken is None:
        return idle(call, agent, polls)
    queue, priority = taken["queue"], taken["priority"]
    twilio_queue = rules.twilio_queue(queue, priority) if queue in rules.queues else queue
    notice = Link.to("/voice/queue-connect", l=rules.language(taken["language"]))
    return Reply([say(whisper(rules, taken)),
                  DialQueue(twilio_queue, notice, call.link("/voice/agent/next", agent, a=0))],
                 [Event("agent_line", f"dequeue {twilio_queue}")])


def language_name(rules: Rules, code: str) -> str:
    return rules.languages[code].name if code in rules.languages else (code or "an unknown language")


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def minutes_seconds(seconds: int) -> str:
    """A duration as it is said: "1 minute 5 seconds", "2 minutes", "40 seconds"."""
    minutes, seconds = divmod(max(0, int(seconds)), 60)
    said = [_count(minutes, "minute")] if minutes else []
    if seconds or not minutes:
        said.append(_count(seconds, "second"))
    return " ".join(said)


def whisper(rules: Rules, entry: dict) -> str:
    """Said on the agent's own call before they are connected: who the next caller is and why they called
    (the routing rule that sent them, by its full name: it is written to be heard)."""
    facts = [f"Next caller in {language_name(rules, entry['language'])}", f"waited {minutes_seconds(entry['wait_s'])}",
             f"reason: {entry['reason'] or 'not known'}", f"incident severity {entry['severity'] or 'unknown'}"]
    if entry["affected"]:
        facts.insert(1, "on the affected customers list")
    return ". ".join(facts) + ". Connecting you now."


def queue_connect(rules: Rules, lang: str, dequeuing_sid: str | None = None, queue_time: int | None = None) -> Reply:
    """The <Queue url> document, on the caller's leg: only that a person is coming, in their language.

    Twilio requests it as it connects the caller to the agent's <Dial><Queue>, with DequeingCallSid (that
    agent's call) and QueueTime (twilio.com/docs/voice/twiml/queue#attributes-url-parameters): Twilio's own
    word that this caller is bridged, and after how long a wait."""
    said = [Say(rules.prompt(lang, "connecting_agent"), lang)]
    if not dequeuing_sid:
        return Reply(said)
    return Reply(said, [Event("queue", "bridged")], outcome="agent",
                 effects=[LeaveQueue("bridged", queue_time, dequeued_by=dequeuing_sid)])
