"""Proving you are on the breach list: the reference printed on the company's notice, keyed in on the phone.

A caller ID proves nothing (anyone can fake one), so until a caller is verified the list changes only their
place in line (ivr/core/routing.py). A caller who keys in a reference that is on the list gets its benefits:
a rule with `verified: true` may give them a queue of their own. Failed attempts are limited per caller ID
and for the whole line over a window; past a limit the reference is not even looked up, and the caller hears
exactly what a wrong one gets, as does an unknown one: nothing they hear tells a guess from a refusal.
A reference is either imported with the list (ivr/store/verification.py) or printed on a notice the hotline
sent (ivr/store/notices.py); both are looked up for every reference keyed in, so the work, and the time it
takes, is the same whichever answers. Once proved, the reference's key rides in the call's links
(Position.ref): the rest of the call is a verified caller's, and a callback they ask for is kept under it.
Pure: the shell supplies the counts of recent failures and the lookup (ivr/store/reference_lookup.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr.core.verbs import Event, Gather, Position, Redirect, Reply, Say

# The prompts a rules file needs when its menu offers verification (a menu option `verify`).
PROMPTS = ("verify_prompt", "verify_confirmed", "verify_next", "verify_failed")
OK, WRONG, REFUSED = "ok", "wrong", "refused"  # REFUSED: over a limit; the reference was not looked up


class Verification(BaseModel):
    """routing_rules.yaml `verification:`: how references look and how many wrong ones are allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_digits: int = Field(default=6, ge=4, le=32, description="shorter input is wrong without a lookup")
    max_digits: int = Field(default=16, ge=4, le=32)
    attempts_per_caller: int = Field(default=5, ge=1, le=100, description="wrong references per caller ID per window")
    attempts_per_line: int = Field(default=300, ge=1, le=100_000,
                                   description="wrong references on the whole line per window (spoofed IDs)")
    window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # What the company's list may say was exposed for a person (the import's `exposed` column): each code
    # has a prompt `exposed_<code>` in every language, which a caller verified with that reference hears.
    exposed: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("exposed")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        for code in v:
            if not re.fullmatch(r"[a-z0-9_]{1,40}", code):
                raise ValueError(f"exposed code {code!r}: use lower-case letters, digits and _ (at most 40)")
        return v

    def prompts(self) -> list[str]:
        return [*PROMPTS, *(f"exposed_{code}" for code in self.exposed)]


@dataclass(frozen=True)
class VerifyAttempt:
    """A reference keyed in, and whether it was on the list: spooled (no database write in the caller's
    path), it counts towards the limits once the spool writer has written it."""

    ok: bool
    step: int  # the call's step number: a request Twilio retries counts once


@dataclass(frozen=True)
class Listed:
    """A reference on the list: what it says was exposed for the person ("" nothing), and its key (the
    keyed hash, hex) that the rest of the call carries."""

    exposed: str
    key: str


@dataclass(frozen=True)
class Failures:
    """Wrong references in the window: from this caller ID, and on the whole line."""

    caller: int
    line: int


_KEY = re.compile(r"[0-9a-f]{32}")


def carried(value: str | None) -> str:
    """The reference key a link carries (`v`), as Position.ref: a key as we make them, else none."""
    return value if value and _KEY.fullmatch(value) else ""


def ask(rules, pos: Position) -> Reply:
    """Key 8 (the menu's `verify`): the reference, ended by #. Nothing keyed in: Twilio goes on to the
    Redirect (a Gather without input falls through to the next verb: twilio.com/docs/voice/twiml/gather),
    which comes back here without Digits, and that is the menu again."""
    link = pos.link("/voice/verify")
    prompt = Say(rules.prompt(pos.lang, "verify_prompt"), pos.lang)
    gather = Gather(link, (prompt,), max(rules.menu.timeout_seconds, 10), num_digits=None, finish_on_key="#")
    return Reply([gather, Redirect(link)], outcome="verifying")


def outcome(rules, digits: str, failures: Callable[[], Failures],
            on_list: Callable[[str], Listed | None]) -> tuple[str, Listed | None]:
    """OK, WRONG or REFUSED, and with OK the reference as listed. The limits are checked first: past one,
    nothing is looked up."""
    limits = rules.verification
    seen = failures()
    if seen.caller >= limits.attempts_per_caller or seen.line >= limits.attempts_per_line:
        return REFUSED, None
    if not (digits.isdigit() and limits.min_digits <= len(digits) <= limits.max_digits):
        return WRONG, None
    listed = on_list(digits)
    return (WRONG, None) if listed is None else (OK, listed)


def checked(rules, pos: Position, digits: str | None, failures: Callable[[], Failures],
            on_list: Callable[[str], Listed | None]) -> Reply:
    """The reference keyed in. Confirmed: the caller hears so, and what the list says was exposed for them,
    and may press 0 for a person as a verified caller (/voice/verified), as they are for the rest of the
    call. Wrong, unknown or over a limit: one and the same answer, then the menu. `on_list`: the reference
    as listed, else None."""
    from ivr.core.flow import menu  # flow offers this step in its menu: imported here, not at the top
    digits = (digits or "").strip("#")  # a lone # may come as Digits=# (nothing keyed in: no attempt)
    if not digits:
        return Reply(menu(rules, pos, []), [Event("verify", "nothing keyed in")])
    result, listed = outcome(rules, digits, failures, on_list)
    event = Event("verify", result)  # never the digits: a reference is as personal as a number
    if result != OK:
        lead = [Say(rules.prompt(pos.lang, "verify_failed"), pos.lang)]
        return Reply(menu(rules, pos, lead, short=True), [event], outcome="verify-failed",
                     effects=[VerifyAttempt(False, pos.step)])
    names = ["verify_confirmed"] + ([f"exposed_{listed.exposed}"] if listed.exposed in rules.verification.exposed
                                    else [])
    prompts = tuple(Say(rules.prompt(pos.lang, name), pos.lang) for name in names + ["verify_next"])
    proved = replace(pos, ref=listed.key)
    gather = Gather(proved.link("/voice/verified"), prompts, rules.menu.timeout_seconds)
    return Reply([gather, Redirect(proved.link("/voice/menu"))], [event], outcome="verified",
                 effects=[VerifyAttempt(True, pos.step)])


def problems(rules) -> list[tuple[tuple, str]]:
    """Cross-field checks of the verification settings."""
    v = rules.verification
    if v.min_digits > v.max_digits:
        return [(("verification", "min_digits"), f"min_digits {v.min_digits} is more than max_digits {v.max_digits}")]
    return []
