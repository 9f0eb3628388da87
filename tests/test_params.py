"""Twilio's form and our query strings are read as Werkzeug (and the standard library) read them: every
name and value, repeated names, blank values, `+`, and percent-escapes that are not UTF-8 kept as written."""
from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.params import ERRORS, parse_urlencoded

ESCAPES = st.sampled_from(["%2B", "%20", "%C3%A9", "%C3", "%A9", "%E2%82", "%E2%82%AC", "%FF", "%F0%9F%98",
                           "%%", "%2", "%zz", "%26", "%3D", "+", "&", "=", "é", "€", "\U0001F600", "\x00"])
ENCODED = st.lists(st.one_of(ESCAPES, st.text(max_size=4)), max_size=12).map("".join)


def expected(text: str) -> dict:
    out: dict = {}
    for name, value in parse_qsl(text, keep_blank_values=True, errors=ERRORS):
        out.setdefault(name, []).append(value)
    return out


@settings(max_examples=2000, deadline=None)
@given(ENCODED)
def test_any_text_is_read_as_the_standard_library_reads_it(text):
    assert parse_urlencoded(text) == expected(text)


def test_twilios_form_and_the_hard_cases():
    text = ("From=%2B15555550100&Caller=+1555&Digits=&Digits=2&x&Name=Jos%C3%A9&Bad=%C3%28&Half=%E2%82"
            "&Raw=caf\u00e9%C3&Emoji=%F0%9F%98%80")
    assert parse_urlencoded(text) == {
        "From": ["+15555550100"], "Caller": [" 1555"], "Digits": ["", "2"], "x": [""], "Name": ["Jos\u00e9"],
        "Bad": ["%C3("], "Half": ["%E2%82"], "Raw": ["caf\u00e9%C3"], "Emoji": ["\U0001F600"]}
    assert parse_urlencoded(text) == expected(text)
