"""The supervisor's dashboard in a real browser (Debian's Chromium through Playwright, against `ivr serve`): its
first screen holds the queues, the agents, the mode switch and what needs attention at desktop and phone size;
a switch made from the command line and a caller who starts waiting show on the open page within 5 s without a
reload, a change planned elsewhere at the next refresh below the first screen; the page says when its figures
are stale; and it agrees with GET /api/supervisor.
"""
from __future__ import annotations

import re
import subprocess
import time
from datetime import timedelta

import pytest
import requests

from sqlalchemy import insert

from conftest import AUTH_TOKEN, IVR, server_env
from helpers import wait_for
from ivr.config import PROJECT_ROOT
from ivr.store import agents, desk, scheduled
from ivr.store.db import Database
from ivr.store.models import QueueEntry, utcnow
from ivr.store.users import add_user, create_token
from test_console_browser import AXE, AXE_RUN
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow

SCREENSHOTS = PROJECT_ROOT / "build" / "screenshots"
PASSWORD = "a long dashboard password"
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}
FIRST_SCREEN = ("#queue-strip", "#agents-strip", "#mode-switch", "#attention")
SOON_S = 5  # the bound from a change to the screen


def _sign_in(tab, url: str) -> None:
    tab.goto(url + "/console/login")
    tab.get_by_label("User name").fill("sam")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(url + "/console/")


def _inside_first_screen(tab, size: dict) -> dict:
    """Each part's box, asserted whole inside the viewport with the page scrolled to the top, what needs
    attention (the go-live check's problems) too: its count and its first problem are visible, the rest scroll
    inside the card."""
    tab.set_viewport_size(size)
    tab.evaluate("window.scrollTo(0, 0)")
    boxes = {}
    for selector in FIRST_SCREEN:
        box = tab.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0 and box["y"] >= 0, (selector, box, size)
        assert box["x"] + box["width"] <= size["width"], (selector, box, size)
        assert box["y"] + box["height"] <= size["height"], (selector, box, size)
        boxes[selector] = box
    print(size, {k: f"y {b['y']:.0f}-{b['y'] + b['height']:.0f}" for k, b in boxes.items()})
    # The count of every problem, and the first one starts inside the card's visible list (the rest scroll).
    shown = tab.locator("#attention-list li")
    count = re.fullmatch(r"Needs attention: (\d+) problems?", tab.locator("#attention-heading").inner_text())
    assert count and int(count[1]) == shown.count() > 0, (size, count)
    first, visible = shown.first.bounding_box(), tab.locator("#attention-list").bounding_box()
    assert visible["y"] <= first["y"] < visible["y"] + visible["height"] - 12, (size, first, visible)
    assert tab.evaluate("document.documentElement.scrollWidth") <= size["width"]  # no sideways scrolling
    return boxes


def _soon(check) -> float:
    """Seconds until `check()` holds on the page, which refreshes itself (nobody calls refresh() here)."""
    start = time.monotonic()
    assert wait_for(check, timeout=SOON_S, interval=0.1), f"not on the screen within {SOON_S} s"
    return time.monotonic() - start


@pytest.fixture
def page(browser):
    """A tab whose script errors fail the test, but for the refreshes the test itself cuts off."""
    context = browser.new_context(viewport=DESKTOP)
    if AXE.exists():  # injected by the browser itself: the page's CSP stays as deployed
        context.add_init_script(path=str(AXE))
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    yield tab
    context.close()
    assert [p for p in problems if "net::ERR_FAILED" not in p] == [], problems


def test_the_first_screen_holds_queues_agents_and_the_switch_and_follows_changes_live(config, server, page):
    srv = server(workers=2)
    db = Database(config.db_url)
    try:
        add_user(db, "sam", "ops", actor="test", password=PASSWORD)
        token = create_token(db, "sam", actor="test")
        # Agents in three states, and a fraud caller waiting past the queue's 15-minute maximum.
        for name, phone in (("amy", "+12025550601"), ("bob", "+12025550602"), ("cid", "+12025550603")):
            agents.add_agent(db, config.secret_key, name, phone, "2468", actor="test")
        desk.set_status(db, "amy", "available", line_call_sid="CA" + "a" * 32)
        desk.set_status(db, "bob", "available")
        with db.write() as conn:
            conn.execute(insert(QueueEntry).values(call_sid="CA" + "f" * 32, queue="fraud", priority=1, language="en",
                                                   status="waiting", enqueued_at=utcnow() - timedelta(minutes=16)))
        # A change planned ahead, to be cancelled: the reason being typed for it must outlive the refreshes.
        planned = scheduled.add(db, kind="mode", target="message", at=utcnow() + timedelta(days=1),
                                reason="night shift", actor="test")
    finally:
        db.dispose()
    _sign_in(page, srv.staff_url)
    cancel_reason = page.locator(f"#change-{planned['id']}").get_by_label("Why cancel it")
    cancel_reason.fill("the night shift was called off")

    # A change planned elsewhere (here: the store) while the dashboard is open: it shows at the next refresh of
    # the part below the first screen, at most CONSOLE_REFRESH_SECONDS later (checked at the end of the test).
    db = Database(config.db_url)
    try:
        elsewhere = scheduled.add(db, kind="mode", target="live", at=utcnow() + timedelta(days=2),
                                  reason="agents on shift", actor="ops-lead", override="a test")
    finally:
        db.dispose()
    planned_at = time.monotonic()
    assert page.locator(f"#change-{elsewhere['id']}").count() == 0
    fraud = page.locator('#queue-strip tr[data-queue="fraud"] .queue-longest')
    assert fraud.inner_text().startswith("16 min") and "/ 15 min, over" in fraud.inner_text()
    assert "wait-over" in fraud.get_attribute("class")
    assert "amy (" in page.locator("#agents-now").inner_text()

    # Desktop and phone: the queue strip, the agents strip and the mode switch need no scrolling.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-first-screen-{name}.png"))
        _inside_first_screen(page, size)
        if AXE.exists():
            assert page.evaluate(AXE_RUN) == [], name
    page.set_viewport_size(DESKTOP)
    assert page.get_by_role("button", name="Switch to live mode").is_visible()

    # A switch from the command line: the card, the switch and the strip follow without a reload.
    switched = subprocess.run([str(IVR), "mode", "set", "live", "--reason", "agents on shift",
                               "--override", "a test: nobody need answer"],
                              env=server_env(config), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert switched.returncode == 0, switched.stderr
    took = _soon(lambda: page.get_by_role("button", name="Switch to message mode").is_visible())
    assert "The hotline is in live mode." in page.locator("#mode-card").inner_text()
    print(f"mode switch from the CLI on the screen after {took:.1f} s")

    # A caller presses 0 and waits: the queue strip counts them, and key 0 now queues callers.
    caller = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0"])
    assert caller.run().ended == "queued"
    general = page.locator('#queue-strip tr[data-queue="general"]')
    took = _soon(lambda: general.locator(".queue-waiting").inner_text() == "1")
    print(f"waiting caller on the screen after {took:.1f} s")
    assert "0: waits for an agent" in general.locator(".queue-keys").inner_text()

    # The dashboard and the API say the same about that queue.
    api = requests.get(srv.staff_url + "/api/supervisor", headers={"Authorization": f"Bearer {token}"},
                       timeout=10).json()
    queue = next(q for q in api["queues"] if q["name"] == "general")
    assert queue["waiting"] == 1 and queue["described"] == general.locator(".queue-hours").inner_text()
    assert [k["does"] for k in queue["keys"] if k["key"] == "0"] == ["waits for an agent"]
    assert api["mode"]["mode"] == "live"

    # Several problems: live mode and nobody free on the agent line, on top of the go-live check's. The card
    # counts them all and still fits the first screen at both sizes, its list scrolling inside.
    before = page.locator("#attention-heading").inner_text()
    db = Database(config.db_url)
    try:
        desk.set_status(db, "amy", "signed_out", actor="test")
    finally:
        db.dispose()
    _soon(lambda: page.locator("#attention-heading").inner_text() != before)
    assert "no agent is free on the agent line" in page.locator("#attention-list").inner_text()

    # The change planned elsewhere is on the page, with who planned it, and nobody reloaded it; the cancel
    # reason being typed survived every refresh.
    assert wait_for(lambda: page.locator(f"#change-{elsewhere['id']}").count() == 1,
                    timeout=max(0.0, 15 + SOON_S - (time.monotonic() - planned_at)), interval=0.2)
    assert "Scheduled by ops-lead" in page.locator(f"#change-{elsewhere['id']}").inner_text()
    assert cancel_reason.input_value() == "the night shift was called off"
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"  # never reloaded

    # Reloaded (the note that the mode was switched meanwhile gone), the card with every problem still fits.
    page.reload()
    for size, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-first-screen-{name}-problems.png"))
        _inside_first_screen(page, size)

    # The server stops answering: the page says since when its figures are stale.
    page.route("**/console/live**", lambda route: route.abort())
    problem = page.locator("#live-problem")
    _soon(problem.is_visible)
    assert re.fullmatch(r"Data is stale since \d\d:\d\d:\d\d UTC: .+", problem.inner_text()), problem.inner_text()
    page.unroute("**/console/live**")
    _soon(lambda: not problem.is_visible())
    if AXE.exists():  # live mode, a caller waiting: the strips' colours still pass
        for size in (DESKTOP, PHONE):
            page.set_viewport_size(size)
            assert page.evaluate(AXE_RUN) == [], size
    caller.hang_up_on_hold()
