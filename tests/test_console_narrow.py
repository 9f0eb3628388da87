"""The agent desk and Reports on a 320 px wide screen, in Debian's Chromium against `ivr serve`: no sideways
scrolling, and the Reports "Since" field looks like every other text field."""
from __future__ import annotations

import pytest

from conftest import AUTH_TOKEN
from ivr.store import agents, desk, queues
from ivr.store.db import Database
from ivr.store.state import set_mode
from ivr.store.users import add_user
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow

PASSWORD = "a long narrow-screen password"
NARROW = {"width": 320, "height": 640}
FIELD_LOOK = """el => { const s = getComputedStyle(el);
    return [s.fontSize, s.paddingTop, s.paddingLeft, s.borderTopWidth, s.borderTopStyle, s.borderTopColor,
            s.borderRadius, s.backgroundColor]; }"""


def test_the_desk_and_reports_fit_a_320_px_screen_and_since_is_styled_like_other_fields(config, server, page):
    srv = server()
    db = Database(config.db_url)
    try:
        add_user(db, "otto", "ops", actor="test", password=PASSWORD)  # ops: the desk shows every agent too
        agents.add_agent(db, config.secret_key, "alexandra-longname", "+12025550500", "2468", actor="test")
        agents.add_agent(db, config.secret_key, "bo", "+12025550501", "2468", actor="test")
        desk.link_user(db, "alexandra-longname", "otto", actor="test")
        for i, reason in enumerate(("callback offered while the fraud queue was full at the end of the day",
                                    "voicemail left after hours")):
            queues.request_callback(db, call_sid=f"CA{i:032d}", number=f"+1202555011{i}", language="es",
                                    queue="fraud", priority=10, reason=reason)
        set_mode(db, "live", reason="agents on shift", actor="test")
    finally:
        db.dispose()
    for keys in (["1", "2", "9"], ["3", "1"], ["4"]):
        SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys).run()

    page.set_viewport_size(NARROW)
    page.goto(srv.staff_url + "/console/desk")
    page.get_by_label("Name").fill("otto")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(srv.staff_url + "/console/desk")
    assert page.get_by_text("alexandra-longname").first.is_visible()
    for path in ("/console/desk", "/console/reports?since=1h"):
        page.goto(srv.staff_url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= NARROW["width"], (path, width)
    since = page.get_by_label("Since (ISO date, or 24h / 7d)")
    assert since.evaluate(FIELD_LOOK) == page.get_by_label("Per", exact=True).evaluate(FIELD_LOOK)
    box = since.bounding_box()
    assert box["height"] >= 36 and box["width"] >= 0.5 * NARROW["width"]  # a field a thumb can use, not a sliver
