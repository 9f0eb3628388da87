"""Spool lines from templates (ivr/spool/lines.py) are the very bytes the recorder's encoder makes."""
from __future__ import annotations

import json

from ivr.spool.lines import LineTemplates, Var
from ivr.spool.segments import encode


def record(sid, at, caller_hash, detail="message"):
    return {"call_sid": sid, "step": "incoming#0", "n": 0, "kind": "call_started", "detail": detail,
            "digits": None, "caller_hash": caller_hash, "caller_masked": "***0123", "language": "es",
            "incident_id": 1, "call_info": True, "type": "event", "at": at}


def test_a_line_from_a_template_is_what_encode_makes_of_the_record():
    lines = LineTemplates()
    shape = lambda: record(Var(0), Var(1), Var(2))  # noqa: E731
    for sid, at, caller_hash in [("CA" + "1" * 32, 1765055206.123456, "ab" * 32), ("CA\u00e9\"\\", 1e-7, None),
                                 ("CA" + "3" * 32, 1765055208.5, 12345), ("CA" + "4" * 32, 1.0, True),
                                 ("CA" + "2" * 32, 1765055207.0, "x\u2028y")]:
        line = lines.line("incoming", shape, (sid, at, caller_hash))
        assert line == (encode(record(sid, at, caller_hash)) + "\n").encode()
        assert json.loads(line) == record(sid, at, caller_hash)


def test_a_field_that_holds_a_placeholders_text_is_encoded_plainly():
    lines = LineTemplates()
    shape = lambda: record(Var(0), Var(1), Var(2), detail="\x000\x00")  # noqa: E731
    line = lines.line("odd", shape, ("CA1", 2.5, "h"))
    assert json.loads(line) == record("CA1", 2.5, "h", detail="\x000\x00")
