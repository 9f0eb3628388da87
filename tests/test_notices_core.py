"""The pure rules of notices (ivr/core/notices.py): the text, quiet hours, time zones, replies, Twilio's errors."""
from __future__ import annotations

import random
from datetime import datetime, timezone

import phonenumbers
import pytest
from phonenumbers import timezone as phonenumbers_tz

from ivr.core import notices
from ivr.core.errors import Refused


def test_every_notice_carries_the_hotline_the_url_and_the_reference_placed_or_appended():
    placed = notices.message_text("Call {hotline} with {reference}.", hotline="+12025550199",
                                  url="https://x.example/n", reference="1234567897")
    assert placed == "Call +12025550199 with 12345 67897.\nhttps://x.example/n"
    appended = notices.message_text("We lost data.", hotline="+12025550199", url="https://x.example/n",
                                    reference="1234567897")
    assert appended == "We lost data.\nTel +12025550199 | https://x.example/n | Ref 12345 67897"
    assert notices.references_in(appended) == ["1234567897"]
    assert notices.statement_problem("Dear {name}") == "has unknown placeholders name (use hotline, url, reference)"
    assert notices.statement_problem("   ") == "is empty"


def test_a_statement_keeps_its_own_layout_and_a_url_placed_or_absent_is_not_appended():
    values = dict(hotline="+12025550199", url="https://x.example/n", reference="1234567897")
    assert notices.message_text("  We lost data.\n\n", **values) == (
        "  We lost data.\nTel +12025550199 | https://x.example/n | Ref 12345 67897")
    assert notices.message_text("See {url}.", **values) == "See https://x.example/n.\nTel +12025550199 | Ref 12345 67897"
    assert notices.message_text("We lost data.", **{**values, "url": ""}) == (
        "We lost data.\nTel +12025550199 | Ref 12345 67897")


def test_a_statement_may_be_as_long_as_the_limit_and_every_unknown_placeholder_is_named():
    assert notices.statement_problem("x" * notices.MAX_STATEMENT) is None
    assert notices.statement_problem("x" * (notices.MAX_STATEMENT + 1)) == (
        f"is {notices.MAX_STATEMENT + 1} characters long (at most {notices.MAX_STATEMENT})")
    assert notices.statement_problem("Dear {name} of {town}") == (
        "has unknown placeholders name, town (use hotline, url, reference)")


@pytest.mark.parametrize("quiet,local,expected", [
    ("21:00-08:00", "22:30", True), ("21:00-08:00", "07:59", True), ("21:00-08:00", "08:00", False),
    ("21:00-08:00", "12:00", False), ("12:00-13:00", "12:30", True), ("12:00-13:00", "13:00", False)])
def test_quiet_hours_may_span_midnight(quiet, local, expected):
    hours, minutes = map(int, local.split(":"))
    assert notices.parse_quiet_hours(quiet).covers(datetime(2026, 1, 1, hours, minutes).time()) is expected


@pytest.mark.parametrize("text", ["21-08", "25:00-08:00", "21:00-21:00", "9pm-8am", "24:00-08:00", "21:00-24:00",
                                  "21:60-08:00", "21:00-08:60", "21:00-23:60"])
def test_wrong_quiet_hours_are_refused_saying_how_to_write_them(text):
    with pytest.raises(Refused) as refused:
        notices.parse_quiet_hours(text)
    assert str(refused.value) == (f"quiet hours {text!r}: start and end are the same" if text == "21:00-21:00" else
                                  f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 21:00-08:00")


def test_quiet_hours_keep_their_minutes_and_may_run_to_a_minute_before_midnight():
    quiet = notices.parse_quiet_hours(" 21:30 - 07:45 ")
    assert (quiet.start, quiet.end) == (datetime(2026, 1, 1, 21, 30).time(), datetime(2026, 1, 1, 7, 45).time())
    assert notices.parse_quiet_hours("23:00-23:59").end == datetime(2026, 1, 1, 23, 59).time()
    assert notices.parse_quiet_hours("21:59-08:00").start == datetime(2026, 1, 1, 21, 59).time()


def test_quiet_is_judged_in_each_of_the_recipients_zones():
    quiet = notices.parse_quiet_hours("21:00-08:00")
    noon_utc = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # 08:00 in New York, 13:00 in London
    assert not notices.is_quiet(quiet, "America/New_York", noon_utc)
    assert notices.is_quiet(quiet, "America/Los_Angeles", noon_utc)  # 05:00
    assert notices.is_quiet(quiet, "America/New_York,America/Los_Angeles", noon_utc)
    assert notices.quiet_groups(quiet, ["Europe/London", "America/Los_Angeles"], noon_utc) == ["America/Los_Angeles"]


def test_time_zones_agree_with_phonenumbers_for_valid_numbers_of_every_region():
    rng = random.Random(7)
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for _ in range(5):
            candidate = e164[:-3] + f"{rng.randrange(1000):03d}"
            number = phonenumbers.parse(candidate)
            if not phonenumbers.is_valid_number(number):
                continue
            expected = phonenumbers_tz.time_zones_for_geographical_number(number)
            got = notices.time_zones(candidate)
            assert got == (notices.UNKNOWN_ZONE if expected == ("Etc/Unknown",) else
                           notices._joined(tuple(expected))), candidate
            checked += 1
    assert checked > 500


@pytest.mark.parametrize("body,kind", [("STOP", notices.OPT_OUT), (" stop ", notices.OPT_OUT),
                                       ("Unsubscribe", notices.OPT_OUT), ("start", notices.OPT_IN),
                                       ("UNSTOP", notices.OPT_IN), ("help", notices.HELP), ("INFO", notices.HELP),
                                       ("Stop.", notices.OPT_OUT), ("stop!", notices.OPT_OUT),
                                       ("STOPX", notices.OTHER), (None, notices.OTHER),
                                       ("stop texting me please", notices.OTHER), ("", notices.OTHER)])
def test_replies_are_twilios_standard_keywords_as_the_whole_message(body, kind):
    assert notices.reply_kind(body) == kind


@pytest.mark.parametrize("status,code,verdict", [
    (400, 21211, notices.GIVE_UP), (400, 21610, notices.OPTED_OUT), (429, 20429, notices.RETRY),
    (None, 30003, notices.RETRY), (None, 30006, notices.GIVE_UP), (None, 30007, notices.GIVE_UP),
    (None, 30005, notices.GIVE_UP), (503, None, notices.RETRY), (400, None, notices.GIVE_UP),
    (429, None, notices.RETRY), (430, None, notices.GIVE_UP), (499, None, notices.GIVE_UP), (500, None, notices.RETRY)])
def test_only_errors_twilio_calls_transient_are_retried(status, code, verdict):
    assert notices.after_error(status, code) == verdict


def test_back_off_doubles_from_a_minute_to_an_hour():
    assert [notices.backoff_seconds(n) for n in (1, 2, 3, 8)] == [60, 120, 240, 3600]
