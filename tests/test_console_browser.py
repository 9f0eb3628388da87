"""The console in a real browser: Debian's headless Chromium driven by Playwright, against gunicorn (`ivr serve`)."""
from __future__ import annotations

import pytest

from conftest import AUTH_TOKEN
from helpers import wait_for
from ivr.config import PROJECT_ROOT
from ivr.store.db import Database
from ivr.tools.simulate import HttpTransport, SimulatedCall
from ivr.store.users import add_user

pytestmark = pytest.mark.slow

SCREENSHOTS = PROJECT_ROOT / "build" / "screenshots"
PASSWORD = "a long browser password"
TEXT = "We have reset every customer's password. Sign in with the link we emailed you."
# The browser fixtures (chromium, browser, page) are in conftest.py: the agent desk's tests use them too.

PLAY_METADATA = """audio => new Promise(resolve => {
    const done = () => resolve({state: audio.readyState, duration: audio.duration, error: null});
    const failed = () => resolve({state: audio.readyState, duration: 0,
                                  error: audio.error ? audio.error.code + ' ' + audio.error.message : 'error'});
    if (audio.error) return failed();
    if (audio.readyState >= 1) return done();
    audio.addEventListener('loadedmetadata', done, {once: true});
    audio.addEventListener('error', failed, {once: true});
    audio.load();
})"""

PLAY_A_MOMENT = """async audio => {
    audio.muted = true;
    await audio.play();
    await new Promise(resolve => setTimeout(resolve, 400));
    audio.pause();
    return audio.currentTime;
}"""


def test_sign_in_flip_the_mode_and_publish_an_announcement_in_a_real_browser(config, server, page, browser):
    srv = server(workers=2, IVR_TTS_ENGINES="espeak")
    db = Database(config.db_url)
    add_user(db, "ada", "admin", actor="test", password=PASSWORD)
    add_user(db, "otto", "ops", actor="test", password=PASSWORD)  # the second person who approves
    db.dispose()

    def call(keys):
        return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys).run()

    # Anonymous: sent to sign in; then back to the dashboard.
    page.goto(srv.staff_url + "/console/")
    assert "/console/login" in page.url
    assert page.evaluate("document.activeElement.id") == "name"  # the keyboard starts in the form
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(srv.staff_url + "/console/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # The mode: callers are not queued, then ops flip the switch with a reason, and the next call is.
    assert call(["0"]).ended == "hangup"
    page.get_by_label("Reason").fill("agents on shift from 08:00")
    page.get_by_label("Override the go-live check").fill("a test: the queue is enough")
    page.get_by_label("I confirm").check()
    page.get_by_role("button", name="Switch to live mode").click()
    page.wait_for_url(srv.staff_url + "/console/")
    assert "The hotline is now in live mode." in page.get_by_role("status").first.inner_text()
    assert call(["0"]).ended == "queued"

    # The live figures refresh in place and count the calls just made.
    def refreshed_count():
        assert page.evaluate("window.ivrConsole.refresh()") is True
        return page.locator("#calls-last-hour").inner_text() == "2"

    assert wait_for(refreshed_count, timeout=15, interval=0.3)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    page.set_viewport_size({"width": 1280, "height": 900})

    # An announcement from text, asked to be published: it awaits a second person, and callers do not hear it.
    page.goto(srv.staff_url + "/console/announcements")
    form = page.locator("#tts-form")
    form.get_by_label("Language").select_option("en")
    form.get_by_label("Topic").select_option("main")
    form.get_by_label("Text to speak").fill(TEXT)
    form.get_by_label("Ask for approval to publish").check()
    form.get_by_label("Reason").fill("passwords reset")
    form.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/announcements#en-main")
    assert "awaits a second person's approval" in page.get_by_role("status").first.inner_text()
    draft_src = page.locator("#en-main tr.status-draft audio").get_attribute("src")
    assert not any(h.url.endswith(draft_src) for h in call(["9"]).heard if h.kind == "play")
    # The second person hears the exact file in the approval view, then approves it.
    second = browser.new_context(viewport={"width": 1280, "height": 900})
    otto = second.new_page()
    otto.goto(srv.staff_url + "/console/login")
    otto.get_by_label("User name").fill("otto")
    otto.get_by_label("Password").fill(PASSWORD)
    otto.get_by_role("button", name="Sign in").click()
    otto.wait_for_url(srv.staff_url + "/console/")
    otto.locator("#statement-approvals a").first.click()
    heard = otto.locator("audio")
    assert heard.get_attribute("src") == draft_src and TEXT in otto.locator("main").inner_text()
    assert heard.evaluate(PLAY_A_MOMENT) > 0
    otto.get_by_label("Reason").fill("heard it; legal signed")
    otto.get_by_role("button", name="approve and publish").click()
    otto.wait_for_url("**/console/announcements#en-main")
    assert "callers hear it now" in otto.get_by_role("status").first.inner_text()
    second.close()
    # Published: its player loads and plays; the next caller hears it.
    page.goto(srv.staff_url + "/console/announcements")
    player = page.locator("#en-main tr.status-published audio")
    assert TEXT in page.locator("#en-main tr.status-published").inner_text()
    loaded = player.evaluate(PLAY_METADATA)
    assert loaded["error"] is None and loaded["state"] >= 1 and loaded["duration"] > 1, loaded
    assert player.evaluate(PLAY_A_MOMENT) > 0
    src = player.get_attribute("src")
    assert any(h.url.endswith(src) for h in call(["9"]).heard if h.kind == "play")

    # Every other page opens without a script error.
    for path in ("/console/briefing", "/console/calls", "/console/audit", "/console/rules"):
        page.goto(srv.staff_url + path)
        assert page.locator("h1").count() == 1
    page.goto(srv.staff_url + "/console/audit")
    assert "agents on shift from 08:00" in page.locator("table.audit").inner_text()


# -- every page: the breach-day jobs, accessibility (axe-core) and screenshots at desktop and phone size -------

AXE = PROJECT_ROOT / "build" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP, PHONE = {"width": 1366, "height": 768}, {"width": 390, "height": 844}
# Every rule axe-core runs by default (WCAG 2.0-2.2 A and AA, and best practices), at any impact: minor and
# moderate findings fail a page as serious ones do.
AXE_RUN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(
    v => v.impact + ' ' + v.id + ': ' + v.help + ' -> ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"""


def look(tab, name: str) -> None:
    """Screenshots at both sizes, axe-core finds nothing at either, and a phone never scrolls sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        tab.set_viewport_size(size)
        tab.screenshot(path=str(SCREENSHOTS / f"{name}-{suffix}.png"), full_page=True)
        assert tab.evaluate(AXE_RUN) == [], (name, suffix)
        if size is PHONE:
            assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    tab.set_viewport_size(DESKTOP)


def axe_tab(browser):
    """(context, tab, problems): a desktop-sized tab with axe-core, and the JavaScript errors it meets."""
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(path=str(AXE))  # injected by the browser itself: the pages' CSP stays as deployed
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    return context, tab, problems


def sign_in(tab, url: str) -> None:
    tab.get_by_label("User name").fill("ada")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(url + "/console/")


def test_breach_day_pages_work_pass_axe_and_fit_a_phone_in_a_real_browser(config, server, browser):
    from datetime import timedelta

    from sqlalchemy import update

    from ivr.store import queues
    from ivr.store.models import ConsoleSession, utcnow
    from ivr.store.state import get_mode, set_mode

    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: `make axe` installs axe-core from npm")
    srv = server(workers=1)
    db = Database(config.db_url)
    add_user(db, "ada", "admin", actor="test", password=PASSWORD)
    queues.request_callback(db, call_sid="CA" + "b" * 32, number="+15550104321", language="es", queue="fraud",
                            priority=10, reason="fraud")
    context, tab, problems = axe_tab(browser)
    try:
        tab.goto(srv.staff_url + "/console/login")
        look(tab, "login")
        sign_in(tab, srv.staff_url)

        # Incidents: a new one, refused while Spanish would be silent, then activated carrying Spanish over.
        tab.goto(srv.staff_url + "/console/incidents")
        form = tab.locator("#incident-create")
        form.get_by_label("Title").fill("Card numbers exposed")
        form.get_by_label("Severity").select_option("critical")
        form.get_by_label("What was exposed").fill("Card numbers and expiry dates of 12,000 customers")
        form.get_by_label("Reason").fill("disclosure at 09:00")
        form.get_by_role("button", name="Create as a draft").click()
        card = tab.locator(".incident-card.status-draft")
        assert "Nothing is published for this incident in en, es" in card.inner_text()
        card.get_by_label("Carry the announcements").check()
        card.locator(".activate-form").get_by_label("Reason").fill("disclosure day")
        card.get_by_role("button", name="Activate").click()
        assert "carried over" in tab.get_by_role("status").first.inner_text()
        assert "active: callers hear it" in tab.locator(".incident-card.status-active").inner_text()
        look(tab, "incidents")

        # Callbacks: the full number for an admin; marked done with a reason.
        tab.goto(srv.staff_url + "/console/callbacks")
        assert "+15550104321" in tab.locator("table.callbacks").inner_text()
        look(tab, "callbacks")
        tab.get_by_label("Reason").first.fill("called back, card blocked")
        tab.get_by_role("button", name="Mark done").first.click()
        assert "No callbacks are owed." in tab.locator("table.callbacks").inner_text()

        # Agents: added, then deactivated.
        tab.goto(srv.staff_url + "/console/agents")
        add = tab.locator("#agent-add")
        add.get_by_label("Name").fill("amy")
        add.get_by_label("Their phone number").fill("+15551230001")
        add.get_by_label("PIN for the agent line").fill("4321")
        add.get_by_label("Reason").fill("new agent")
        add.get_by_role("button", name="Add the agent").click()
        assert "signed out" in tab.locator("table.agents").inner_text()
        look(tab, "agents")
        tab.locator("table.agents").get_by_label("Reason").fill("left the team")
        tab.get_by_role("button", name="Deactivate amy").click()
        assert "deactivated" in tab.locator("table.agents").inner_text()

        # Users: a new viewer with a token, revoked in a click.
        tab.goto(srv.staff_url + "/console/users")
        add = tab.locator("#user-add")
        add.get_by_label("User name").fill("vera")
        add.get_by_label("Password (at least 10 characters)").fill("vera's long password")
        add.get_by_label("Reason").fill("new hire")
        add.get_by_role("button", name="Add the user").click()
        vera = tab.locator("details.user", has_text="vera")
        vera.locator("summary").click()
        vera.get_by_label("New API token").fill("wallboard")
        vera.get_by_role("button", name="Make a token").click()
        assert tab.locator("#new-token").inner_text().startswith("ivr_")
        look(tab, "users-new-token")
        tab.goto(srv.staff_url + "/console/users")
        tab.get_by_label("Reason for revoking").fill("wallboard retired")
        tab.get_by_role("button", name="Revoke token").first.click()
        assert "is revoked" in tab.get_by_role("status").first.inner_text()
        look(tab, "users")

        for keys in (["1"], ["2", "9"], ["1", "2"]):  # a few calls, so the charts have bars to show
            SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys).run()

        # The dashboard: live mode switched elsewhere with no agent on the line: the card turns with the
        # figures, the switch offers message mode with its tick cleared, and the banner says nobody is free.
        tab.goto(srv.staff_url + "/console/")
        tab.get_by_label("Reason").fill("agents arriving")
        tab.get_by_label("I confirm").check()
        set_mode(db, "live", reason="from the phone", actor="otto")
        assert tab.evaluate("window.ivrConsole.refresh()") is True
        assert "The hotline is in live mode." in tab.locator("#mode-card").inner_text()
        assert tab.get_by_role("button", name="Switch to message mode").is_visible()
        assert not tab.get_by_label("I confirm").is_checked()
        assert "switched to live mode by otto meanwhile" in tab.locator("#mode-changed").inner_text()
        assert tab.get_by_label("Reason").input_value() == "agents arriving"
        assert "Live mode is on but no agent is free" in tab.locator(".banner").inner_text()
        look(tab, "dashboard-live-no-agent")

        # A switch typed while the session expires is not made, says so, and keeps its reason.
        tab.get_by_label("Reason").fill("back to message: no agents")
        tab.get_by_label("I confirm").check()
        with db.write() as conn:
            conn.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        tab.get_by_role("button", name="Switch to message mode").click()
        tab.wait_for_url("**/console/login**")
        assert "nothing was changed" in tab.get_by_role("alert").first.inner_text()
        assert get_mode(db)[0] == "live"
        sign_in(tab, srv.staff_url)
        assert "Your switch to message mode was not made" in tab.locator("#mode-changed").inner_text()
        assert tab.get_by_label("Reason").input_value() == "back to message: no agents"
        assert get_mode(db)[0] == "live"
        set_mode(db, "message", reason="test done", actor="test")

        for name in ("dashboard", "announcements", "briefing", "calls", "audit", "jobs", "rules", "reports", "desk",
                     "no-such-page"):
            resp = tab.goto(srv.staff_url + "/console/" + ("" if name == "dashboard" else name))
            assert tab.locator("h1").count() == 1
            look(tab, name)
        assert resp.status == 404 and tab.locator("h1").inner_text() == "Page not found"
        problems.remove("Failed to load resource: the server responded with a status of 404 (NOT FOUND)")
    finally:
        context.close()
        db.dispose()
    assert problems == [], problems
