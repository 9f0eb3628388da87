"""The verbs a call-flow reply is made of, and the values a step works on: pure data, rendered by webhooks/twiml.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

# -- the verbs a reply is made of -------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str
    lang: str


@dataclass(frozen=True)
class Play:
    media: str  # sha256 of the phone-ready audio
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    seconds: int


@dataclass(frozen=True)
class Gather:
    """Collect one key; the prompts inside are interruptible. No key: the verbs after the Gather run."""

    action: "Link"
    prompts: tuple = ()
    timeout: int = 6
    num_digits: int | None = 1  # None: until finish_on_key (a PIN)
    finish_on_key: str = "#"


@dataclass(frozen=True)
class Record:
    """Record the caller (the admin line); Twilio posts RecordingUrl and RecordingDuration to the action."""

    action: "Link"
    max_seconds: int = 300


@dataclass(frozen=True)
class PlayUrl:
    """Play audio Twilio hosts (an admin's recording played back to them)."""

    url: str


@dataclass(frozen=True)
class Redirect:
    to: "Link"


@dataclass(frozen=True)
class Enqueue:
    queue: str
    wait: "Link | None"  # None: Twilio's default hold music, no callbacks to us
    action: "Link | None"


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Leave:
    """Leave the Twilio queue (from the hold loop): the Enqueue's action URL is requested next."""


@dataclass(frozen=True)
class Dial:
    number: str
    action: "Link"
    caller_id: str | None = None  # None: the caller's own number (Twilio's default)


@dataclass(frozen=True)
class DialQueue:
    """Connect an agent to the caller at the front of a Twilio queue.

    `notice` is the document Twilio runs on the QUEUED CALLER's leg just before connecting them (Twilio's
    <Queue url>): a notice for the caller, never the agent's whisper, which the agent line says beforehand.
    """

    queue: str
    notice: "Link"
    action: "Link"


@dataclass(frozen=True)
class Context:
    """What routing needs beyond the call position, supplied by the webhook layer (lazily: only
    a caller who asks for a person costs a lookup)."""

    now: datetime
    call_sid: str = ""
    caller_known: bool = True  # False when the number is withheld or not valid: no callback or SMS possible
    open_callback: Callable[[], bool] = lambda: False  # this number has a callback still owed
    affected: Callable[[], bool] = lambda: False
    verified: bool = False  # the caller keyed in a reference on the breach list during this call
    queue_stats: Callable[[], dict] = dict
    recent_wait_minutes: Callable[[str], int | None] = lambda queue: None
    hold_tone: tuple[float, str] | None = None  # (seconds, sha256) of the tone between hold messages


@dataclass(frozen=True)
class Link:
    """A URL of ours: a route and the call position to carry in its query string."""

    route: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def to(cls, route: str, **params) -> "Link":
        return cls(route, tuple((k, str(v)) for k, v in params.items() if v is not None))


@dataclass(frozen=True)
class Event:
    kind: str  # call_started, menu_choice, invalid, no_input, language, route, goodbye, queue, error
    detail: str = ""
    digits: str | None = None


@dataclass
class Reply:
    verbs: list = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    outcome: str | None = None  # how the call stands after this step (recorded on the call)
    language: str | None = None  # set when the caller chose a language
    effects: list = field(default_factory=list)  # what the shell must do besides answering (ivr/core/effects.py)


@dataclass(frozen=True)
class Position:
    """Where a call is: its language, failed attempts in a row, the step number, and `ref`: the key of the
    reference the caller proved in this call (ivr/core/verification.py), "" until they do. It travels in
    every link from then on (`v`), so the rest of the call is a verified caller's: their priority in line
    and a callback kept under the reference. Twilio signs the URLs it requests, so nobody can forge it."""

    lang: str
    attempts: int = 0
    step: int = 0
    ref: str = ""

    def link(self, route: str, **changes) -> Link:
        nxt = Position(changes.get("lang", self.lang), changes.get("attempts", self.attempts), self.step + 1)
        return Link(route, (("l", nxt.lang), ("a", str(nxt.attempts)), ("s", str(nxt.step))) + self.carried())

    def carried(self) -> tuple[tuple[str, str], ...]:
        """What every link of the call carries besides its own parameters: the proved reference, if any."""
        return (("v", self.ref),) if self.ref else ()

    def again(self, attempts: int = 0, lang: str | None = None) -> "Position":
        """The same call at the same step, with `attempts` failed attempts in a row (and maybe a new language)."""
        return Position(lang or self.lang, attempts, self.step, self.ref)
