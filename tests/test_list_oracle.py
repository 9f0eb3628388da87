"""No breached-list oracle (issue 23 item 2): until a caller proves who they are, nothing they hear depends
on whether their caller ID is on the breach list; the list moves them ahead in line and nothing more."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from ivr.config import PROJECT_ROOT
from ivr.core import flow
from ivr.core.rules import load
from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.core.verbs import Context, Position
from webhooks import twiml

RULES_PATH = PROJECT_ROOT / "routing_rules.yaml"
CONTENT = Content(version=3, incident_id=7, incident_title="Card data theft", severity="high",
                  spoken={"en/main": Spoken("We were breached.", None, 1)})
MONDAY = datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)  # 00:00 in New York
# Every hour of a week in New York (weekdays, weekend, nights) and Christmas Day.
INSTANTS = [MONDAY + timedelta(hours=h) for h in range(7 * 24)] + [datetime(2026, 12, 25, 15, tzinfo=timezone.utc)]


def heard(rules, lang: str, key: str, now: datetime, on_list: bool, mode: str = "live") -> str:
    """The TwiML a caller gets for a key, with the only list-dependent parts a caller cannot hear taken
    out: the priority in our URLs (`p=`) and the Twilio queue name's priority suffix (`-p20`)."""
    ctx = Context(now=now, call_sid="CA" + "1" * 32, affected=lambda: on_list)
    reply = flow.menu_choice(rules, Snapshot(mode, CONTENT), Position(lang, 0, 1), key, ctx)
    root = ET.fromstring(twiml.render(reply, rules))
    for element in root.iter():
        for name, value in element.attrib.items():
            element.set(name, re.sub(r"([?&])p=\d+", r"\1p=", value))
        if element.tag == "Enqueue":
            element.text = re.sub(r"-p\d+$", "", element.text)
    return ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_number_on_the_list_hears_what_a_number_not_on_it_hears(lang):
    """The issue's probe: pressing 0 with the shipped rules and a high-severity incident, at any hour."""
    rules = load(RULES_PATH)
    for key in ("0", "7"):
        for mode in ("live", "message"):
            for now in INSTANTS:
                listed, unlisted = (heard(rules, lang, key, now, on, mode) for on in (True, False))
                assert listed == unlisted, (key, mode, now)
