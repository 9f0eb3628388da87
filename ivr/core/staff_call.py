"""What a staff-line step (the admin line, the agent line) knows about its call, and how a sign-in is bound
to it: after the PIN, each URL carries a key that is an HMAC of the line, this CallSid and the name, so a
URL copied into another call, or edited to another name, signs nobody in."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ivr.core.verbs import Event, Hangup, Link, Reply, Say

STAFF_LANG = "en"  # the staff lines speak to staff in the default staff language
# Said when a line takes no PIN from this caller (ivr/store/pin_guard.py): the same words whichever limit
# was reached, so a guesser learns nothing about the other.
PIN_LOCKED = "This line cannot take a PIN right now. Please try again later. Goodbye."


@dataclass(frozen=True)
class StaffCall:
    line: str  # "admin-line" or "agent-line"
    call_sid: str
    secret_key: str
    caller: str = "phone (unknown)"  # how the audit log names the phone: "phone ***0123"

    def key(self, name: str) -> str:
        msg = f"{self.line}:{self.call_sid}:{name}".encode()
        return hmac.new(self.secret_key.encode(), msg, hashlib.sha256).hexdigest()[:24]

    def signed_in(self, name: str, key: str) -> str | None:
        """The name a URL's (u, k) pair signs in, if its key was made for this call."""
        return name if name and hmac.compare_digest(key, self.key(name)) else None

    def link(self, route: str, name: str, **params) -> Link:
        return Link.to(route, u=name, k=self.key(name), **params)


def say(text: str) -> Say:
    return Say(text, STAFF_LANG)


def bye(text: str, event: Event | None = None, effects: list | None = None) -> Reply:
    return Reply([say(text), Hangup()], [event] if event else [], effects=list(effects or []))


def pin_locked(line: str, effects: list | None = None) -> Reply:
    """Goodbye to a caller the line takes no PIN from now (not even the right one)."""
    return bye(PIN_LOCKED, Event(line, "pin locked"), effects)
