"""Planned changes in a real browser under `ivr serve`: planned on the console's page, shown on the dashboard
with who planned it, cancelled there; both pages pass axe-core and fit a phone."""
from __future__ import annotations

import pytest

from test_console_browser import AXE, PASSWORD, axe_tab, look, sign_in
from ivr.store import scheduled
from ivr.store.db import Database
from ivr.store.users import add_user


@pytest.mark.slow
def test_a_switch_is_planned_seen_on_the_dashboard_and_cancelled_in_a_real_browser(config, server, browser):
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: `make axe` installs axe-core from npm")
    srv = server(workers=1, IVR_TIMEZONE="America/New_York")
    db = Database(config.db_url)
    add_user(db, "ada", "admin", actor="test", password=PASSWORD)
    context, tab, problems = axe_tab(browser)
    try:
        tab.goto(srv.staff_url + "/console/login")
        sign_in(tab, srv.staff_url)
        tab.goto(srv.staff_url + "/console/schedule")
        form = tab.locator("#schedule-mode")
        form.get_by_label("Switch to").select_option("live")
        form.get_by_label("When").fill("2099-12-07T08:00")
        form.get_by_label("Reason").fill("agents on shift from 08:00")
        form.get_by_label("Override the go-live check").fill("agents confirmed on the bridge line")
        form.get_by_role("button", name="Schedule the switch").click()
        told = tab.get_by_role("status").first.inner_text()
        assert "Scheduled: switch to live mode at 2099-12-07 13:00:00 UTC (2099-12-07 08:00 EST America/New_York)" in told
        look(tab, "schedule")
        tab.goto(srv.staff_url + "/console/")
        planned = tab.locator("#scheduled-changes").inner_text()
        assert "switch to live mode" in planned and "Scheduled by ada" in planned
        look(tab, "dashboard-planned")
        tab.locator("#scheduled-changes").get_by_label("Why cancel it").fill("shift moved")
        tab.get_by_role("button", name="Cancel this change").click()
        assert "Cancelled: switch to live mode will not be carried out." in tab.get_by_role("status").first.inner_text()
        assert [r["status"] for r in scheduled.list_changes(db)] == ["cancelled"]
        assert problems == []  # no JavaScript error on either page
    finally:
        context.close()
        db.dispose()
