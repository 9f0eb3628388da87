"""Issue 26 part 3: watching a notice campaign. The console's Notices page shows each campaign's counts
(from ivr/store/notices.py campaign_figures, which the CLI and API read too) and a chart of deliveries,
refreshed in place; ops pause, resume and cancel it with a reason (CSRF, audited); the report for
regulators (who was told when, by which channel, with what text) is the same on every surface."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from ivr.store.affected import hasher
from ivr.store.models import NoticeCampaign, NoticeRecipient, utcnow
from ivr.store.users import create_token
from test_console import as_role, audit_rows, page, users  # noqa: F401  (fixtures)

STATEMENTS = {"en": "We were breached on 1 December. Call {hotline} or see {url}.",
              "es": "Sufrimos una brecha el 1 de diciembre. Llame al {hotline}."}


def campaign(hotline, states: dict[str, list[str]], *, state="sending", minutes_ago=30) -> int:
    """A campaign with recipients in the given states per language, sent over the last `minutes_ago`."""
    now, secret = utcnow(), hotline.config.secret_key
    with hotline.db.write() as conn:
        cid = conn.execute(insert(NoticeCampaign).values(
            name="December notice", state=state, statements=json.dumps(STATEMENTS), hotline_number="+12025550100",
            notice_url="https://example.com/notice", sender="MG" + "0" * 32, rate_per_second=10,
            started_at=now - timedelta(minutes=minutes_ago), created_at=now - timedelta(minutes=minutes_ago + 5))
            .returning(NoticeCampaign.id)).scalar_one()
        n = 0
        for lang, recipient_states in states.items():
            for s in recipient_states:
                n += 1
                at = now - timedelta(minutes=minutes_ago - n)
                conn.execute(insert(NoticeRecipient).values(
                    campaign_id=cid, number_hash=hasher(secret)(f"+120255501{n:02d}"), language=lang,
                    exposed="card" if n % 2 else None, reference_hash=f"{cid:04d}{n:028d}", state=s,
                    error_code=21610 if s == "failed" else None,
                    sent_at=at if s in ("sent", "delivered", "failed") else None,
                    delivered_at=at + timedelta(seconds=5) if s == "delivered" else None))
    return cid


def cli_env(hotline) -> dict:
    return {"DATABASE_URL": hotline.config.db_url, "IVR_SECRET_KEY": hotline.config.secret_key,
            "IVR_INSTANCE_PATH": str(hotline.config.instance_path), "IVR_RULES": str(hotline.config.rules_path)}


def test_the_page_shows_each_campaigns_counts_and_chart_and_every_surface_follows_a_change(app, as_role, hotline):
    """The counts are one function's (campaign_figures): the console, `ivr notify status` and the API
    all move together when a notice is delivered."""
    from ivr.ops.cli import main

    cid = campaign(hotline, {"en": ["delivered", "delivered", "sent", "failed", "queued"], "es": ["opted_out"]})
    viewer = as_role("viewer")
    html = page(viewer.get("/console/notices"))
    assert "December notice" in html and 'data-live-part="campaign-%d"' % cid in html
    assert 'data-count="delivered">2<' in html and 'data-count="failed">1<' in html
    assert 'data-count="opted_out">1<' in html and 'data-count="queued">1<' in html
    assert "Twilio error 21610" in html  # failed, by reason
    assert "Notices delivered per minute (UTC)" in html and "2 delivered since" in html
    assert "Pause campaign" not in html  # a viewer watches; the buttons are ops'
    with hotline.db.write() as conn:  # the fact changes: one more delivered
        conn.execute(update(NoticeRecipient).where(NoticeRecipient.campaign_id == cid,
                                                   NoticeRecipient.state == "sent")
                     .values(state="delivered", delivered_at=utcnow()))
    live = page(viewer.get("/console/notices/live"))
    assert 'data-count="delivered">3<' in live and "<form" not in live and "3 delivered since" in live
    token = {"Authorization": "Bearer " + create_token(hotline.db, "vera", actor="test")}
    api = app.test_client().get(f"/api/notices/{cid}", headers=token).get_json()
    assert (api["counts"]["delivered"], api["counts"]["failed"], api["failed_by_code"]) == (3, 1, {"21610": 1})
    out = CliRunner().invoke(main, ["notify", "status", str(cid)], env=cli_env(hotline))
    assert out.exit_code == 0 and "delivered 3 failed 1" in out.output, out.output


def test_ops_pause_resume_and_cancel_with_a_reason_and_each_is_audited(as_role, hotline):
    cid = campaign(hotline, {"en": ["delivered", "queued", "queued"]})
    assert as_role("viewer").post(f"/console/notices/{cid}/pause", {"reason": "x"}).status_code == 403
    ops = as_role("ops")
    assert f"Pause campaign {cid}" in page(ops.get("/console/notices"))
    no_reason = ops.post(f"/console/notices/{cid}/pause", {"reason": ""})
    assert no_reason.status_code == 400 and "reason is required" in page(no_reason)
    no_csrf = ops.post(f"/console/notices/{cid}/pause", {"reason": "legal asked"}, csrf=False)
    assert no_csrf.status_code in (400, 403)
    assert _state(hotline, cid) == "sending"
    assert ops.post(f"/console/notices/{cid}/pause", {"reason": "legal asked us to hold"}).status_code == 303
    assert _state(hotline, cid) == "paused" and f"Resume campaign {cid}" in page(ops.get("/console/notices"))
    wrong = ops.post(f"/console/notices/{cid}/pause", {"reason": "again"})  # paused already: refused
    assert wrong.status_code == 400 and "Nothing was changed" in page(wrong)
    assert ops.post(f"/console/notices/{cid}/resume", {"reason": "wording approved"}).status_code == 303
    assert f"Cancel campaign {cid}" not in page(ops.get("/console/notices"))  # cancelling is an admin's
    assert ops.post(f"/console/notices/{cid}/cancel", {"reason": "sent by post instead"}).status_code == 403
    admin = as_role("admin")
    assert admin.post(f"/console/notices/{cid}/cancel", {"reason": "sent by post instead"}).status_code == 303
    assert _state(hotline, cid) == "cancelled"
    audited = [(a.actor, a.action, a.from_value, a.to_value, a.reason) for a in audit_rows(hotline, "notice.")]
    assert audited == [("otto", "notice.pause", "sending", "paused", "legal asked us to hold"),
                       ("otto", "notice.resume", "paused", "sending", "wording approved"),
                       ("ada", "notice.cancel", "sending", "cancelled", "sent by post instead")]
    assert ops.post(f"/console/notices/{cid}/explode", {"reason": "x"}).status_code == 404


def _state(hotline, cid):
    with hotline.db.read() as conn:
        return conn.execute(select(NoticeCampaign.state).where(NoticeCampaign.id == cid)).scalar()


def test_the_regulator_report_is_the_same_in_the_console_csv_cli_and_api(app, as_role, hotline):
    from ivr.ops.cli import main

    cid = campaign(hotline, {"en": ["delivered", "delivered", "failed"], "es": ["delivered", "opted_out"]})
    viewer = as_role("viewer")
    html = page(viewer.get("/console/notices/report"))
    assert "We were breached on 1 December. Call +12025550100 or see https://example.com/notice." in html
    assert "XXXXX XXXXX" in html  # each person's reference masked
    rows = list(csv.DictReader(io.StringIO(page(viewer.get(f"/console/notices/report.csv?campaign={cid}")))))
    token = {"Authorization": "Bearer " + create_token(hotline.db, "vera", actor="test")}
    api = app.test_client().get(f"/api/notices/report?campaign={cid}", headers=token).get_json()["groups"]
    out = CliRunner().invoke(main, ["notice-report", "--campaign", str(cid), "--format", "json"],
                             env=cli_env(hotline))
    assert out.exit_code == 0, out.output
    cli = json.loads(out.output)
    assert cli == api
    assert [(r["language"], r["exposed"], r["listed"], r["told"], r["delivered"], r["failed"], r["opted_out"])
            for r in api] == [("en", "", 1, 1, 1, 0, 0), ("en", "card", 2, 1, 1, 1, 0),
                              ("es", "", 1, 1, 1, 0, 0), ("es", "card", 1, 0, 0, 0, 1)]
    assert [(r["language"], r["exposed"], r["told"], r["first_sent"]) for r in rows] == \
        [(r["language"], r["exposed"], str(r["told"]), r["first_sent"] or "") for r in api]
    assert all(r["channel"] == "text message" for r in api)
    assert api[2]["text"].startswith("Sufrimos una brecha el 1 de diciembre. Llame al +12025550100.")
    assert app.test_client().get("/api/notices/report?campaign=x", headers=token).status_code == 400


@pytest.mark.slow
def test_the_notices_pages_under_ivr_serve_refresh_pause_and_pass_axe(config, server, browser, hotline):
    """Through gunicorn in Chromium: the page's figures refresh in place when a notice is delivered, ops
    pause the campaign with its button, and axe-core finds nothing on the page or the report at any size."""
    from test_console_browser import AXE, PASSWORD, axe_tab, look, sign_in

    from ivr.store.users import add_user

    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: `make axe` installs axe-core from npm")
    cid = campaign(hotline, {"en": ["delivered", "sent", "failed", "queued"], "es": ["opted_out"]})
    add_user(hotline.db, "ada", "admin", actor="test", password=PASSWORD)
    srv = server(workers=1)
    context, tab, problems = axe_tab(browser)
    try:
        tab.goto(srv.staff_url + "/console/login")
        sign_in(tab, srv.staff_url)
        tab.goto(srv.staff_url + "/console/notices")
        delivered = tab.locator(f'[data-live-part="campaign-{cid}"] [data-count="delivered"]')
        assert delivered.inner_text() == "1"
        look(tab, "notices")
        with hotline.db.write() as conn:
            conn.execute(update(NoticeRecipient).where(NoticeRecipient.campaign_id == cid,
                                                       NoticeRecipient.state == "sent")
                         .values(state="delivered", delivered_at=utcnow()))
        assert tab.evaluate("window.ivrConsole.refresh()") is True
        assert delivered.inner_text() == "2"
        form = tab.locator(f"#pause-{cid}")
        form.get_by_label(f"Reason to pause campaign {cid}").fill("legal asked us to hold")
        form.get_by_role("button", name=f"Pause campaign {cid}").click()
        tab.wait_for_url(srv.staff_url + f"/console/notices#campaign-{cid}")
        assert f"Campaign {cid} paused." in tab.get_by_role("status").first.inner_text()
        assert _state(hotline, cid) == "paused"
        tab.goto(srv.staff_url + "/console/notices/report")
        assert "Sufrimos una brecha" in tab.locator("table.notice-report").inner_text()
        look(tab, "notices-report")
        assert problems == []
    finally:
        context.close()
