"""Breach notices by text message: what a notice says, when a recipient may get one (quiet hours in their
own time), what a reply means (STOP, START, HELP) and which of Twilio's errors are worth another try.
Pure: the store plans and records (ivr/store/notices.py), the worker sends (ivr/worker/notices.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phonenumbers.timezone import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from ivr.core.errors import Refused
from ivr.core.reference_codes import printed

# -- the text ---------------------------------------------------------------------------------------------
PLACES = ("hotline", "url", "reference")  # what a statement may place itself; the rest is added after it
MAX_STATEMENT = 1000


def message_text(statement: str, *, hotline: str, url: str, reference: str) -> str:
    """The notice one person gets: the published statement, the hotline's number, the notice URL and their
    own reference. A statement may place them with {hotline}, {url} and {reference}; those it leaves out
    follow it on one line, so every notice carries all three."""
    values = {"hotline": hotline, "url": url, "reference": printed(reference)}
    used = {name for name in PLACES if "{" + name + "}" in statement}
    text = statement
    for name in used:
        text = text.replace("{" + name + "}", values[name])
    tail = [f"Tel {values['hotline']}" if "hotline" not in used and hotline else "",
            values["url"] if "url" not in used and url else "",
            f"Ref {values['reference']}" if "reference" not in used else ""]
    tail = " | ".join(part for part in tail if part)
    return f"{text.rstrip()}\n{tail}" if tail else text


def statement_problem(statement: str) -> str | None:
    """Why a statement cannot be sent (None: it can)."""
    if not statement.strip():
        return "is empty"
    if len(statement) > MAX_STATEMENT:
        return f"is {len(statement)} characters long (at most {MAX_STATEMENT})"
    unknown = set(re.findall(r"\{([^{}]*)\}", statement)) - set(PLACES)
    if unknown:
        return f"has unknown placeholders {', '.join(sorted(unknown))} (use {', '.join(PLACES)})"
    return None


REFERENCE_IN_TEXT = re.compile(r"\b(\d{5}) (\d{5})\b")  # `printed`: how a sent message is recognised again


def references_in(body: str) -> list[str]:
    """The reference codes a sent message carries (to adopt a message a crashed sender sent)."""
    return [a + b for a, b in REFERENCE_IN_TEXT.findall(body or "")]


# -- quiet hours ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuietHours:
    """No notice between `start` and `end` in the recipient's local time (may span midnight)."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def covers(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def parse_quiet_hours(text: str | None) -> QuietHours | None:
    """"21:00-08:00" as QuietHours; "" or None: none. Raises Refused with what is wrong."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
        raise Refused(f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 21:00-08:00")
    quiet = QuietHours(time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4])))
    if quiet.start == quiet.end:
        raise Refused(f"quiet hours {text!r}: start and end are the same")
    return quiet


UNKNOWN_ZONE = "Etc/Unknown"  # phonenumbers' answer when it knows no zone: then quiet hours apply in UTC
FALLBACK_ZONE = "UTC"


def time_zones(e164: str) -> str:
    """The number's time zones from phonenumbers' data, comma-separated: the same longest-prefix lookup
    phonenumbers' `time_zones_for_geographical_number` does, on the E.164 digits (no parse: 1 µs, not 30).
    Only the first digits any prefix of the number's country can reach decide it, so they are cached."""
    digits = e164.lstrip("+")
    return _zones_of_prefix(digits[:_REACH.get(digits[:3], TIMEZONE_LONGEST_PREFIX)])


# The longest prefix in phonenumbers' time-zone data under each three first digits (a country code and more).
_REACH = {}
for _prefix in TIMEZONE_DATA:
    _REACH[_prefix[:3]] = max(_REACH.get(_prefix[:3], 0), len(_prefix))


@lru_cache(maxsize=1 << 16)
def _zones_of_prefix(digits: str) -> str:
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return _joined(zones)
    return UNKNOWN_ZONE


@lru_cache(maxsize=4096)
def _joined(zones: tuple[str, ...]) -> str:
    text = ",".join(zones)
    return text if len(text) <= 120 else UNKNOWN_ZONE  # +1 lists 42 zones: quiet in any is quiet in UTC


@lru_cache(maxsize=512)
def _zone(name: str):
    try:
        return ZoneInfo(FALLBACK_ZONE if name == UNKNOWN_ZONE else name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def is_quiet(quiet: QuietHours | None, zones: str, now: datetime) -> bool:
    """Is it quiet time for a recipient in `zones` (any of them) at the moment `now` (aware)?"""
    if quiet is None:
        return False
    return any(quiet.covers(now.astimezone(_zone(z)).time()) for z in (zones or UNKNOWN_ZONE).split(","))


def quiet_groups(quiet: QuietHours | None, groups: list[str], now: datetime) -> list[str]:
    """Of a campaign's distinct `time_zones` values, those in quiet hours now: the sender skips them."""
    return [g for g in groups if is_quiet(quiet, g, now)]


# -- replies ----------------------------------------------------------------------------------------------
# Twilio's standard keywords, handled by Twilio itself for long codes and by us in every campaign:
# https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out (STOP, UNSUBSCRIBE, END, QUIT, STOPALL,
# REVOKE, OPTOUT, CANCEL) and https://help.twilio.com/articles/223134027 (START, YES, UNSTOP; HELP, INFO).
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
OPT_OUT, OPT_IN, HELP, OTHER = "opt_out", "opt_in", "help", "other"


def reply_kind(body: str | None) -> str:
    """What an inbound text means: Twilio matches the whole message, one word, case-insensitively."""
    word = (body or "").strip().strip(".!").upper()
    if word in OPT_OUT_WORDS:
        return OPT_OUT
    if word in OPT_IN_WORDS:
        return OPT_IN
    if word in HELP_WORDS:
        return HELP
    return OTHER


# -- Twilio's errors --------------------------------------------------------------------------------------
# https://www.twilio.com/docs/api/errors/<code>. Only where Twilio says another try may help:
#   20429 too many requests; 30001 queue overflow; 30003 unreachable handset ("retry ... a one-time
#   downstream issue can cause a transient delivery failure"); 30008 unknown error; 30009 missing segment.
# Never again: 21211 invalid 'To', 21614 not a mobile number, 21612/21408 cannot route or region not
# enabled, 30005 unknown handset, 30006 landline ("do not retry the same SMS"), 30007 filtered, 30004 blocked.
# 21610 (the number replied STOP to our sender) is an opt-out.
TRANSIENT_CODES = frozenset({20429, 30001, 30003, 30008, 30009})
OPTED_OUT_CODES = frozenset({21610})
RETRY, OPTED_OUT, GIVE_UP = "retry", "opted_out", "give_up"
MAX_ATTEMPTS = 4
BACKOFF_FIRST_S, BACKOFF_MAX_S = 60, 3600


def after_error(http_status: int | None, code: int | None) -> str:
    """RETRY, OPTED_OUT or GIVE_UP for a send Twilio refused (REST) or could not deliver (status callback)."""
    if code in OPTED_OUT_CODES:
        return OPTED_OUT
    overloaded = http_status is not None and (http_status == 429 or http_status >= 500)
    if code in TRANSIENT_CODES or (code is None and overloaded):
        return RETRY
    return GIVE_UP


def backoff_seconds(attempts: int) -> int:
    """Wait before attempt `attempts + 1`: a minute, doubling, at most an hour."""
    return min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)


# Twilio's message statuses (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values)
# as a recipient's state; callbacks can come out of order, so a state only moves forward.
STATUS_TO_STATE = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
                   "delivered": "delivered", "read": "delivered", "undelivered": "failed", "failed": "failed",
                   "canceled": "failed"}
