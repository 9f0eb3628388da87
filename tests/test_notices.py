"""Notice campaigns in-process: planning from a list, sending once each, Twilio's refusals, quiet hours,
delivery reports and STOP/START/HELP (through ivr serve: tests/test_notices_served.py)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from helpers import parse_twiml, signed_post, wait_for
from ivr.core.errors import Refused
from ivr.store.models import NoticeCampaign, NoticeOptOut, NoticeRecipient
from ivr.store.notice_plan import CampaignSpec, plan_campaign
from ivr.store.notices import campaign_figures, change_state
from ivr.worker.notices import NoticeSender
from notices_helpers import ACCOUNT, SENDER, codes_sent, list_file, numbers
from stubs import TwilioMessages


@pytest.fixture
def stub():
    s = TwilioMessages(ACCOUNT)
    yield s
    s.close()


@pytest.fixture
def make_notice_app(config, stub):
    """An app whose sender texts through the stand-in; `settle`: how long a campaign waits for reports."""
    from ivr.app import create_app

    apps = []

    def make(settle: float = 0):
        cfg = config.with_overrides(twilio_account_sid=ACCOUNT, twilio_api_url=stub.origin, sms_from=SENDER,
                                    public_url="http://localhost", notice_settle_seconds=settle,
                                    job_lease_seconds=2, notice_threads=4, hotline_number="+12025550199",
                                    notice_url="https://example.com/notice")
        apps.append(create_app(cfg))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["ivr"].close()


@pytest.fixture
def notice_app(make_notice_app):
    return make_notice_app()


def spec(**kw) -> CampaignSpec:
    values = dict(name="card data", statements={"en": "We lost your card data. Call {hotline}.",
                                                "es": "Perdimos los datos de su tarjeta."},
                  default_language="en", rate_per_second=1000, sender=SENDER, hotline_number="+12025550199",
                  notice_url="https://example.com/notice", exposed_codes=("card",))
    values.update(kw)
    return CampaignSpec(**values)


def plan(hotline, path, **kw):
    return plan_campaign(hotline.db, path, spec(**kw), secret_key=hotline.config.secret_key, actor="test")


def recipients(db, campaign_id):
    with db.read() as conn:
        return conn.execute(select(NoticeRecipient).where(NoticeRecipient.campaign_id == campaign_id)).all()


def run_sender(hotline, until, timeout=60.0):
    """Run a notice sender (as `ivr background` does) until `until()` or the timeout."""
    stop = threading.Event()
    thread = threading.Thread(target=NoticeSender(hotline, stop).run, daemon=True)
    thread.start()
    try:
        return wait_for(until, timeout, 0.1)
    finally:
        stop.set()
        thread.join(30)


def state_of(db, cid):
    return campaign_figures(db, cid)["state"]


# -- planning ----------------------------------------------------------------------------------------------
def test_a_bad_list_plans_nothing_and_names_each_bad_line(notice_app, tmp_path):
    hotline = notice_app.extensions["ivr"]
    good = numbers(3)
    path = list_file(tmp_path, [f"{good[0]},en,", "+1555123,en,", f"{good[1]},fr,", f"{good[2]},es,password",
                                f"{good[0]},es,card"])
    report = plan(hotline, path)
    assert report.campaign_id is None and report.bad_rows == 3
    assert [line.split(":")[0] for line in report.bad_samples] == ["line 3", "line 4", "line 5"]
    assert "fr" in report.bad_samples[1] and "password" in report.bad_samples[2]
    with hotline.db.read() as conn:
        assert conn.execute(select(NoticeCampaign)).first() is None
        assert conn.execute(select(NoticeRecipient)).first() is None


def test_a_good_list_plans_one_recipient_per_number_with_numbers_sealed(notice_app, tmp_path):
    hotline = notice_app.extensions["ivr"]
    nums = numbers(5)
    path = list_file(tmp_path, [nums[0], f"{nums[1]},es,card", nums[2], nums[3], nums[4], nums[0]], header=None)
    report = plan(hotline, path)
    assert report.campaign_id and report.recipients == 5 and report.duplicates == 1 and not report.bad_rows
    rows = recipients(hotline.db, report.campaign_id)
    assert {r.language for r in rows} == {"en", "es"} and {r.exposed for r in rows} == {None, "card"}
    assert all(r.number_sealed and nums[0] not in r.number_sealed for r in rows)
    assert all(r.time_zones == "America/New_York" for r in rows)
    assert state_of(hotline.db, report.campaign_id) == "planned"


def test_a_wrong_campaign_is_refused_before_the_file_is_read(notice_app, tmp_path):
    hotline = notice_app.extensions["ivr"]
    with pytest.raises(Refused, match="rate.*quiet hours"):
        plan(hotline, tmp_path / "missing.csv", rate_per_second=0, quiet_hours="25:00-08:00")
    with pytest.raises(Refused, match="unknown placeholders name"):
        plan(hotline, tmp_path / "missing.csv", statements={"en": "Dear {name}"})


# -- sending ------------------------------------------------------------------------------------------------
def test_each_recipient_is_texted_once_with_their_own_reference_and_the_numbers_go_at_the_end(
        notice_app, stub, tmp_path):
    hotline = notice_app.extensions["ivr"]
    nums = numbers(300)
    report = plan(hotline, list_file(tmp_path, [f"{n},{'es' if i % 3 == 0 else 'en'}," for i, n in enumerate(nums)]))
    change_state(hotline.db, report.campaign_id, "send", actor="test", reason="disclosure day")
    assert run_sender(hotline, lambda: state_of(hotline.db, report.campaign_id) == "finished")
    assert sorted(m["to"] for m in stub.created) == sorted(nums)  # once each
    rows = {r.id: r for r in recipients(hotline.db, report.campaign_id)}
    sent = codes_sent(stub, hotline.config.secret_key)
    assert all(len(codes) == 1 for codes in sent.values())
    assert {r.reference_hash for r in rows.values()} == {codes[0] for codes in sent.values()}
    assert all(r.state == "sent" and r.message_sid and r.number_sealed is None for r in rows.values())
    spanish = [m for m in stub.created if m["to"] == nums[0]][0]
    assert spanish["body"].startswith("Perdimos") and "https://example.com/notice" in spanish["body"]
    assert "Call +12025550199." in [m for m in stub.created if m["to"] == nums[1]][0]["body"]
    assert all(m["from"] == SENDER and m["status_callback"].startswith("http://localhost/sms/status?r=")
               for m in stub.created)


def test_twilio_refusals_retry_only_where_twilio_says_it_may_help(notice_app, stub, tmp_path):
    hotline = notice_app.extensions["ivr"]
    nums = numbers(4)
    stub.refuse = {nums[0]: (400, 21211), nums[1]: (400, 21610), nums[2]: (429, 20429)}
    report = plan(hotline, list_file(tmp_path, nums, header=None))
    change_state(hotline.db, report.campaign_id, "send", actor="test")
    by_number = {}

    def settled():
        rows = recipients(hotline.db, report.campaign_id)
        return all(r.state not in ("queued", "sending") or r.next_attempt_at for r in rows) and rows

    run_sender(hotline, settled)
    for row in recipients(hotline.db, report.campaign_id):
        by_number[row.error_code] = row
    assert by_number[21211].state == "failed" and by_number[21211].attempts == 1
    assert by_number[21610].state == "opted_out"
    assert by_number[20429].state == "queued" and by_number[20429].next_attempt_at > datetime.now(timezone.utc)
    assert [m["to"] for m in stub.created] == [nums[3]]
    with hotline.db.read() as conn:
        assert conn.execute(select(NoticeOptOut.number_hash)).scalars().all() == [by_number[21610].number_hash]
    figures = campaign_figures(hotline.db, report.campaign_id)
    assert figures["failed_by_code"] == {"21211": 1} and figures["counts"]["opted_out"] == 1


def test_a_recipient_left_sending_is_adopted_if_twilio_has_the_text_and_sent_once_if_not(notice_app, stub, tmp_path):
    """What a sender killed between its two records leaves behind, resolved without a second text."""
    from ivr.store import notice_sends

    hotline = notice_app.extensions["ivr"]
    nums = numbers(2)
    report = plan(hotline, list_file(tmp_path, nums, header=None))
    change_state(hotline.db, report.campaign_id, "send", actor="test")
    claimed = notice_sends.claim(hotline.db, report.campaign_id, "dead-sender", 10, [], hotline.config.secret_key)
    assert len(claimed) == 2
    # The dead sender got its first text to Twilio, never its answer; the second never left.
    from ivr.worker.sms import rest_client
    from ivr.core.notices import message_text

    rest_client(hotline.config).messages.create(to=claimed[0].number, from_=SENDER, body=message_text(
        "We lost data.", hotline="", url="", reference=claimed[0].code))
    with hotline.db.write() as conn:  # its claim is older than a lease and a REST timeout
        conn.execute(NoticeRecipient.__table__.update().values(updated_at=datetime.now(timezone.utc)
                                                               - timedelta(minutes=5)))
    assert run_sender(hotline, lambda: state_of(hotline.db, report.campaign_id) == "finished")
    assert sorted(m["to"] for m in stub.created) == sorted(nums)
    first = [r for r in recipients(hotline.db, report.campaign_id) if r.message_sid == stub.created[0]["sid"]]
    assert len(first) == 1 and first[0].attempts == 1  # adopted: the message it had sent


def test_quiet_hours_hold_back_only_the_recipients_whose_local_time_is_quiet(notice_app, stub, tmp_path):
    hotline = notice_app.extensions["ivr"]
    new_york = datetime.now(ZoneInfo("America/New_York"))
    quiet = f"{(new_york - timedelta(hours=1)):%H:%M}-{(new_york + timedelta(hours=1)):%H:%M}"
    london = ["+447911123456", "+447911123457"]
    report = plan(hotline, list_file(tmp_path, numbers(3) + london, header=None), quiet_hours=quiet)
    change_state(hotline.db, report.campaign_id, "send", actor="test")
    run_sender(hotline, lambda: len(stub.created) >= 2, timeout=20)
    time.sleep(1.5)  # rounds enough to have sent the New York numbers had they been due
    assert sorted(m["to"] for m in stub.created) == london
    assert campaign_figures(hotline.db, report.campaign_id)["counts"]["queued"] == 3


def test_a_paused_campaign_sends_nothing_until_resumed_and_cancel_ends_it(notice_app, stub, tmp_path):
    hotline = notice_app.extensions["ivr"]
    report = plan(hotline, list_file(tmp_path, numbers(20), header=None))
    cid = report.campaign_id
    with pytest.raises(Refused, match="planned: pause applies only to sending"):
        change_state(hotline.db, cid, "pause", actor="test")
    change_state(hotline.db, cid, "send", actor="test")
    change_state(hotline.db, cid, "pause", actor="test", reason="statement wording")
    run_sender(hotline, lambda: False, timeout=2)
    assert stub.created == []
    change_state(hotline.db, cid, "resume", actor="test")
    change_state(hotline.db, cid, "cancel", actor="test", reason="wrong list")
    run_sender(hotline, lambda: False, timeout=2)
    assert stub.created == []
    rows = recipients(hotline.db, cid)
    assert {r.state for r in rows} == {"skipped"} and all(r.number_sealed is None for r in rows)
    from ivr.store.models import AuditEntry

    with hotline.db.read() as conn:
        actions = conn.execute(select(AuditEntry.action, AuditEntry.reason).where(
            AuditEntry.action.like("notice.%")).order_by(AuditEntry.id)).all()
    assert [a for a, _ in actions] == ["notice.plan", "notice.send", "notice.pause", "notice.resume", "notice.cancel"]
    assert ("notice.cancel", "wrong list") in actions


# -- Twilio's reports and replies ---------------------------------------------------------------------------
def status_params(sid, status, **extra):
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status, "AccountSid": ACCOUNT,
            "From": SENDER, "To": "+12022010000", "ApiVersion": "2010-04-01", **extra}


def test_delivery_reports_update_each_recipient_and_transient_failures_are_retried(make_notice_app, stub,
                                                                                   tmp_path):
    notice_app = make_notice_app(settle=3600)  # the campaign stays open for the reports
    hotline = notice_app.extensions["ivr"]
    client = notice_app.test_client()
    report = plan(hotline, list_file(tmp_path, numbers(3), header=None), rate_per_second=1000)
    change_state(hotline.db, report.campaign_id, "send", actor="test")
    run_sender(hotline, lambda: len(stub.created) == 3)
    rid = {m["to"]: int(m["status_callback"].rsplit("=", 1)[1]) for m in stub.created}
    sid = {m["to"]: m["sid"] for m in stub.created}
    a, b, c = sorted(rid)
    for number, status, extra in ((a, "sent", {}), (a, "delivered", {}), (a, "sent", {}),  # late: ignored
                                  (b, "undelivered", {"ErrorCode": "30003"}),
                                  (c, "undelivered", {"ErrorCode": "30006"})):
        path = f"/sms/status?r={rid[number]}"
        parse_twiml(signed_post(client, path, status_params(sid[number], status, **extra)))
    assert client.post(f"/sms/status?r={rid[a]}", data=status_params(sid[a], "failed")).status_code == 403
    hotline.recorder.flush()
    rows = {r.id: r for r in recipients(hotline.db, report.campaign_id)}
    assert rows[rid[a]].state == "delivered" and rows[rid[a]].delivered_at
    assert rows[rid[b]].state == "queued" and rows[rid[b]].error_code == 30003  # handset off: later
    assert rows[rid[c]].state == "failed" and rows[rid[c]].error_code == 30006  # a landline: never again


def test_stop_takes_a_number_out_of_every_campaign_start_puts_it_back_and_help_says_where_to_call(
        notice_app, stub, tmp_path):
    hotline = notice_app.extensions["ivr"]
    client = notice_app.test_client()
    nums = numbers(3)
    inbound = {"MessageSid": "SM" + "1" * 32, "AccountSid": ACCOUNT, "To": SENDER, "NumMedia": "0",
               "ApiVersion": "2010-04-01"}
    doc = parse_twiml(signed_post(client, "/sms/inbound", {**inbound, "From": nums[0], "Body": " stop "}))
    assert list(doc) == []  # Twilio itself confirms a STOP: no second message
    hotline.recorder.flush()
    report = plan(hotline, list_file(tmp_path, nums, header=None))
    assert report.opted_out == 1
    change_state(hotline.db, report.campaign_id, "send", actor="test")
    parse_twiml(signed_post(client, "/sms/inbound", {**inbound, "From": nums[1], "Body": "UNSUBSCRIBE"}))
    hotline.recorder.flush()
    assert run_sender(hotline, lambda: state_of(hotline.db, report.campaign_id) == "finished")
    assert [m["to"] for m in stub.created] == [nums[2]]
    parse_twiml(signed_post(client, "/sms/inbound", {**inbound, "From": nums[0], "Body": "START"}))
    hotline.recorder.flush()
    with hotline.db.read() as conn:
        assert len(conn.execute(select(NoticeOptOut.number_hash)).all()) == 1  # nums[1] only
    doc = parse_twiml(signed_post(client, "/sms/inbound", {**inbound, "From": nums[2], "Body": "help"}))
    assert "+12025550199" in doc.find("Message").text and "https://example.com/notice" in doc.find("Message").text
    assert client.post("/sms/inbound", data={**inbound, "From": nums[2], "Body": "STOP"}).status_code == 403


# -- the API: the same figures and actions, each with its role ----------------------------------------------
def test_the_api_shows_the_figures_and_pauses_resumes_and_cancels_by_role(notice_app, tmp_path):
    from ivr.store.users import add_user, create_token

    hotline = notice_app.extensions["ivr"]
    client = notice_app.test_client()
    auth = {}
    for name, role in (("vera", "viewer"), ("otto", "ops"), ("ada", "admin")):
        add_user(hotline.db, name, role, actor="test")
        auth[role] = {"Authorization": "Bearer " + create_token(hotline.db, name, actor="test")}
    cid = plan(hotline, list_file(tmp_path, numbers(4), header=None)).campaign_id
    listed = client.get("/api/notices", headers=auth["viewer"]).get_json()["campaigns"]
    assert listed == [campaign_figures(hotline.db, cid)] and listed[0]["counts"]["queued"] == 4
    why = {"reason": "disclosure day"}
    assert client.post(f"/api/notices/{cid}/send", json=why, headers=auth["ops"]).status_code == 403
    assert client.post(f"/api/notices/{cid}/send", json=why, headers=auth["admin"]).get_json()["state"] == "sending"
    assert client.post(f"/api/notices/{cid}/pause", json=why, headers=auth["viewer"]).status_code == 403
    assert client.post(f"/api/notices/{cid}/pause", json={}, headers=auth["ops"]).status_code == 400
    assert client.post(f"/api/notices/{cid}/pause", json=why, headers=auth["ops"]).get_json()["state"] == "paused"
    assert client.post(f"/api/notices/{cid}/pause", json=why, headers=auth["ops"]).status_code == 409
    assert client.post(f"/api/notices/{cid}/resume", json=why, headers=auth["ops"]).get_json()["state"] == "sending"
    assert client.post(f"/api/notices/{cid}/cancel", json=why, headers=auth["ops"]).status_code == 403
    assert client.post(f"/api/notices/{cid}/cancel", json=why, headers=auth["admin"]).get_json()["state"] == "cancelled"
    assert client.get(f"/api/notices/{cid + 1}", headers=auth["viewer"]).status_code == 404
    assert client.get(f"/api/notices/{cid}", headers=auth["viewer"]).get_json()["counts"]["skipped"] == 4
