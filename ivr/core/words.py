"""One vocabulary for what people read about the hotline, in the console, the CLI and the API alike: agent
states, the choices on the agent desk, how calls ended, and languages by name. Codes stay where machines read
them (the database, CSV cells, the API's code fields, metric labels); every surface a person reads turns a code
into words here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Mapping

# What an agent is doing now, from the agent line (a live call of theirs to it) and the desk together.
ON_THE_LINE = "on the line"  # their agent-line call is up and they are free: the line gives them the next caller
ON_A_CALL = "on a call"  # with a caller (or dialling one) through the line or a callback
WRAP_UP = "wrap-up"  # their call is over and its wrap-up not yet recorded
DESK_ONLY = "desk only"  # the desk says available but no agent-line call is up: no caller can reach them
ON_A_BREAK = "on a break"
SIGNED_OUT = "signed out"
AGENT_STATES = (ON_THE_LINE, ON_A_CALL, WRAP_UP, DESK_ONLY, ON_A_BREAK, SIGNED_OUT)

# What an agent may choose on the desk (ivr/store/desk.py CHOSEN), in the words of the states it leads to.
DESK_CHOICES = {"available": "available", "break": ON_A_BREAK, "signed_out": SIGNED_OUT}

# How calls ended, in plain words (the codes stay in the CSV, where a regulator's spreadsheet sorts them).
OUTCOMES = {
    "listening": "hung up while listening", "queued": "waited for an agent", "agent": "spoke to an agent",
    "abandoned": "hung up while waiting for an agent", "callback": "asked to be called back",
    "callback-offered": "was offered a callback", "voicemail": "left a voicemail",
    "voicemail-offered": "was offered voicemail", "agents-unavailable": "no agent could take the call",
    "dialled-overflow": "put through to the overflow number", "ended-by-caller": "chose to end the call",
    "ended-error": "ended after a fault", "ended-max-steps": "ended after the most steps a call may take",
    "ended-no-choice": "ended: no key pressed, or keys not recognised", "fallback": "served by the fallback",
    "fallback-queued": "queued by the fallback", "redirected": "moved on from the queue",
    "unknown": "not known yet",
}


def outcome(code: str | None) -> str:
    return OUTCOMES.get(code or "", (code or "").replace("-", " "))


def language(languages: Mapping, code: str | None) -> str:
    """A language by the name the routing rules give it in its own words ("English", "Español"); a code the
    rules no longer have stays as it is."""
    if not code:
        return "unknown"
    found = languages.get(code)
    return found.name if found is not None else code
