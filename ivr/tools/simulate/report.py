"""What a simulated call heard and did, in order, and how it ended: the transcript `ivr simulate` prints."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class Secret(str):
    """A key press that must never be shown (a PIN): the transcript says that it was pressed, not what."""

    def __repr__(self) -> str:
        return "Secret('****')"


@dataclass
class Heard:
    """One thing that happened on the call, in order."""

    kind: str  # say, play, pause, press, silence, enqueue, hold, leave, dial, connected, hangup, error, ...
    text: str = ""
    lang: str = ""
    url: str = ""

    def __str__(self) -> str:
        if self.kind == "say":
            return f"  hears ({self.lang}): {self.text}"
        if self.kind == "play":
            return f"  hears audio: {self.url}" + (f" ({self.text})" if self.text else "")
        if self.kind == "press":
            return f"  presses {self.text}"
        return f"  [{self.kind}] {self.text or self.url}".rstrip()


def pressed(key: str, why: str = "") -> Heard:
    """The Heard line for a key press; a Secret key (a PIN) is not written down."""
    shown = "the PIN (not shown)" if isinstance(key, Secret) else key
    return Heard("press", f"{shown} {why}".strip())


@dataclass
class CallResult:
    call_sid: str
    heard: list[Heard] = field(default_factory=list)
    requests: list[tuple[str, dict]] = field(default_factory=list)
    documents: list[ET.Element] = field(default_factory=list)
    # How the call ended: hangup, end-of-document, queued (still waiting when the hold loop's bound ran out),
    # bridged, step-limit, http-<status>
    ended: str = ""
    dialled: list[tuple[str, str]] = field(default_factory=list)  # (number, caller ID) of each <Dial><Number>
    hold_passes: int = 0  # how many times Twilio requested the Enqueue's waitUrl
    hold_seconds: float = 0.0  # the estimated time spent in the queue (QueueTime)

    def said(self) -> list[str]:
        return [h.text for h in self.heard if h.kind == "say"]

    def transcript(self) -> str:
        return "\n".join(str(h) for h in self.heard) + f"\n  => call ended: {self.ended}"
