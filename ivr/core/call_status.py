"""Twilio's call statuses in the order a call moves through them (a late or repeated callback cannot go back)."""
from __future__ import annotations

TERMINAL = ("completed", "busy", "failed", "no-answer", "canceled")
_STATUS_RANK = {"queued": 0, "initiated": 0, "ringing": 1, "in-progress": 2, **{s: 3 for s in TERMINAL}}


def status_order(status: str, sequence: int | None) -> int:
    """A number that only grows as a call progresses: terminal states beat all others, then Twilio's sequence."""
    return _STATUS_RANK.get(status, 0) * 100_000 + min(max(sequence or 0, 0), 99_999)
