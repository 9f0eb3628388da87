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


def test_sign_in_flip_the_mode_and_publish_an_announcement_in_a_real_browser(config, server, page):
    srv = server(workers=2, IVR_TTS_ENGINES="espeak")
    db = Database(config.db_url)
    add_user(db, "ada", "admin", actor="test", password=PASSWORD)
    db.dispose()

    def call(keys):
        return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys).run()

    # Anonymous: sent to sign in; then back to the dashboard.
    page.goto(srv.url + "/console/")
    assert "/console/login" in page.url
    assert page.evaluate("document.activeElement.id") == "name"  # the keyboard starts in the form
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(srv.url + "/console/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # The mode: callers are not queued, then ops flip the switch with a reason, and the next call is.
    assert call(["0"]).ended == "hangup"
    page.get_by_label("Reason").fill("agents on shift from 08:00")
    page.get_by_label("I confirm").check()
    page.get_by_role("button", name="Switch to live mode").click()
    page.wait_for_url(srv.url + "/console/")
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

    # An announcement from text, published; its player loads and plays; the next caller hears it.
    page.goto(srv.url + "/console/announcements")
    form = page.locator("#tts-form")
    form.get_by_label("Language").select_option("en")
    form.get_by_label("Topic").select_option("main")
    form.get_by_label("Text to speak").fill(TEXT)
    form.get_by_label("Publish at once").check()
    form.get_by_label("Reason").fill("passwords reset")
    form.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/announcements#en-main")
    assert "callers hear it now" in page.get_by_role("status").first.inner_text()
    player = page.locator("#en-main tr.status-published audio")
    assert TEXT in page.locator("#en-main tr.status-published").inner_text()
    loaded = player.evaluate(PLAY_METADATA)
    assert loaded["error"] is None and loaded["state"] >= 1 and loaded["duration"] > 1, loaded
    assert player.evaluate(PLAY_A_MOMENT) > 0
    src = player.get_attribute("src")
    assert any(h.url.endswith(src) for h in call(["9"]).heard if h.kind == "play")

    # Every other page opens without a script error.
    for path in ("/console/briefing", "/console/calls", "/console/audit", "/console/rules"):
        page.goto(srv.url + path)
        assert page.locator("h1").count() == 1
    page.goto(srv.url + "/console/audit")
    assert "agents on shift from 08:00" in page.locator("table.audit").inner_text()
