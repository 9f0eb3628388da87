"""Live mode end to end: queues in the database, the hold loop, callbacks that keep their place, agents
taking callers in priority order with a whisper, and the SMS follow-up through a stand-in Twilio API."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from helpers import at_once, parse_twiml, signed_post, twilio_params
from ivr.store import affected, agents, queues, sealed
from ivr.store.models import AffectedNumber, AuditEntry, Job, QueueEntry, utcnow
from ivr.tools.simulate import FlaskTransport, SimulatedCall, TwilioQueues
from ivr.store.state import set_mode
from stubs import StubHost, basic_auth


@pytest.fixture
def live(hotline):
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    return hotline


def call(app, keys, caller="+12025550123"):
    result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=keys, caller=caller).run()
    app.extensions["ivr"].recorder.flush()
    return result


def post(app, url, sid, **params):
    return parse_twiml(signed_post(app.test_client(), url, twilio_params(sid, **params),
                                   sign_url="http://localhost" + url))


def mark_affected(hotline, number):
    with hotline.db.write() as conn:
        conn.execute(AffectedNumber.__table__.insert().values(
            number_hash=affected.number_hash(hotline.config.secret_key, number)))


def entries(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(QueueEntry.call_sid, QueueEntry.queue, QueueEntry.priority, QueueEntry.status,
                                   QueueEntry.affected).order_by(QueueEntry.id)).all()


def test_affected_and_unaffected_callers_wait_in_the_right_queues(app, live):
    mark_affected(live, "+12125550777")
    plain = call(app, ["0"])
    hit = call(app, ["0"], caller="+12125550777")
    fraud = call(app, ["7"])
    queued = [d.find("Enqueue").text for r in (plain, hit, fraud) for d in r.documents if d.find("Enqueue") is not None]
    # Severity is high: a caller ID on the list goes where everyone goes, ahead in line (priority 20).
    assert queued == ["breach-general", "breach-general-p20", "fraud"]
    rows = {r.call_sid: r for r in entries(live)}
    assert (rows[plain.call_sid].queue, rows[plain.call_sid].priority, rows[plain.call_sid].affected) == ("general", 10, False)
    assert (rows[hit.call_sid].queue, rows[hit.call_sid].priority, rows[hit.call_sid].affected) == ("general", 20, True)
    assert rows[fraud.call_sid].queue == "fraud" and all(r.status == "waiting" for r in rows.values())


def test_agents_take_the_highest_priority_then_the_longest_waiting(app, live):
    first_general = call(app, ["0"]).call_sid
    second_general = call(app, ["0"]).call_sid
    fraud = call(app, ["7"]).call_sid
    assert queues.next_waiting(live.db)["call_sid"] == fraud
    post(app, "/voice/queue-result?l=en&q=fraud&p=30", fraud, QueueResult="bridged", QueueTime="40")
    live.recorder.flush()
    assert queues.next_waiting(live.db)["call_sid"] == first_general
    post(app, "/voice/queue-result?l=en&q=general&p=10", first_general, QueueResult="hangup", QueueTime="300")
    live.recorder.flush()
    assert queues.next_waiting(live.db)["call_sid"] == second_general
    statuses = {r.call_sid: r.status for r in entries(live)}
    assert statuses[fraud] == "bridged" and statuses[first_general] == "hangup"


def test_a_callback_from_the_hold_loop_keeps_the_callers_place(app, live):
    early = call(app, ["0"], caller="+12025550001").call_sid
    late = call(app, ["0"], caller="+12025550002").call_sid
    with live.db.write() as conn:  # the early caller joined ten minutes ago
        conn.execute(update(QueueEntry).where(QueueEntry.call_sid == early)
                     .values(enqueued_at=utcnow() - timedelta(minutes=10)))
    for sid, number in ((late, "+12025550002"), (early, "+12025550001")):
        doc = post(app, "/voice/hold-choice?l=en&q=general&p=10", sid, Digits="1", From=number)
        assert [el.tag for el in doc] == ["Say", "Leave"] and doc.find("Say").text.startswith("Thank you. We will call")
        doc = post(app, "/voice/queue-result?l=en&q=general&p=10", sid, QueueResult="leave", From=number)
        assert doc[-1].tag == "Hangup"
    live.recorder.flush()  # callbacks are spooled like the call's events
    worklist = queues.callbacks(live.db)
    numbers = [sealed.open_number(live.db, c["number"]) for c in worklist]
    assert numbers == ["+12025550001", "+12025550002"]  # the original order holds
    assert worklist[0]["requested_at"] < worklist[1]["requested_at"]
    live.recorder.flush()
    assert {r.status for r in entries(live)} == {"callback"}


def test_message_mode_offers_a_callback_and_keeps_the_number_only_there(app, hotline):
    result = call(app, ["0", "1"], caller="+12025550999")
    assert result.said()[-1].startswith("Thank you. We will call you back")
    (cb,) = queues.callbacks(hotline.db)
    assert sealed.open_number(hotline.db, cb["number"]) == "+12025550999" and cb["reason"] == "callback offered"
    # Ops mark it done; the audit log says who.
    queues.callback_done(hotline.db, cb["id"], actor="otto", note="called back, card blocked")
    assert queues.callbacks(hotline.db) == []
    with hotline.db.read() as conn:
        assert conn.execute(select(AuditEntry.actor).where(AuditEntry.action == "callback.done")).scalar() == "otto"


def test_a_withheld_number_is_told_a_callback_is_impossible(app, hotline):
    result = call(app, ["0"], caller="anonymous")
    assert any(s.startswith("We cannot call you back: your number is withheld or cannot be called") for s in result.said())
    assert queues.callbacks(hotline.db) == []


def test_out_of_hours_callers_get_the_queue_overflow(config, rules_file, live):
    """General opens only on a weekday that is not today: whatever the clock says, it is closed now."""
    from datetime import datetime, timezone

    from ivr.app import create_app
    from ivr.core.rules import DAYS

    today = datetime.now(timezone.utc).weekday()
    other = DAYS[(today + 3) % 7]
    text = rules_file.read_text().replace(
        "    overflow: voicemail",
        f"    hours: {{timezone: UTC, open: '00:00', close: '23:59', days: [{other}]}}\n    overflow: voicemail")
    rules_file.write_text(text)
    app = create_app(config)
    try:
        result = call(app, ["0", "9"])
        said = result.said()
        assert "Our team is not available right now." in said
        assert any(s.startswith("Please leave your name") for s in said)  # general's overflow: voicemail
        assert result.documents[1].find("Record") is not None
        assert all(d.find("Enqueue") is None for d in result.documents)
    finally:
        app.extensions["ivr"].close()


def test_a_voicemail_lands_in_the_worklist(app, hotline):
    sid = "CA" + "7" * 32
    doc = post(app, "/voice/voicemail?l=es&q=general&p=10&s=3", sid, From="+15555550321",
               RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1")
    assert doc.find("Say").text.startswith("Gracias.") and doc[-1].tag == "Hangup"
    hotline.recorder.flush()
    (cb,) = queues.callbacks(hotline.db)
    assert (cb["language"], cb["reason"], cb["voicemail_url"].endswith("RE1")) == ("es", "voicemail", True)


def test_a_callback_request_twilio_sends_twice_is_stored_once_at_the_time_asked(app, hotline):
    sid = "CA" + "8" * 32
    for _ in range(2):  # Twilio retried the step: the same promise, spooled twice
        doc = post(app, "/voice/voicemail?l=en&q=general&p=10&s=3", sid, From="+15555550322",
                   RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE2")
        assert doc[-1].tag == "Hangup" and "technical difficulties" not in ET.tostring(doc, encoding="unicode")
    asked = utcnow()
    hotline.recorder.flush()
    (cb,) = queues.callbacks(hotline.db)
    assert cb["call_sid"] == sid and cb["requested_at"].replace(tzinfo=None) <= asked.replace(tzinfo=None)


def test_the_hold_loop_says_an_honest_wait_from_measured_waits(app, live):
    for i, wait in enumerate((120, 300, 400)):
        sid = f"CA{i:032d}"
        post(app, "/voice/menu?l=en&a=0&s=1", sid, Digits="0")
        live.recorder.flush()
        post(app, "/voice/queue-result?l=en&q=general&p=10", sid, QueueResult="bridged", QueueTime=str(wait))
    live.recorder.flush()
    queues._wait_cache._at.clear()
    doc = post(app, "/voice/hold?l=en&q=general&p=10", "CA" + "9" * 32, QueuePosition="4")
    said = [el.text for el in doc.iter("Say")]
    assert "You are number 4 in line." in said
    assert "Recently, callers have waited about 5 minutes." in said  # the median, 300 s


# -- the agent line ----------------------------------------------------------------------------------------
@pytest.fixture
def agent(live):
    agents.add_agent(live.db, live.config.secret_key, "alex", "+15555550500", "2468", actor="test")
    return "+15555550500"


def test_the_agent_hears_the_callers_context_and_the_caller_hears_only_that_someone_is_coming(app, live, agent):
    """Twilio runs <Queue url> on the queued caller's leg (TwilioQueues in ivr/tools/simulate.py follows
    twilio.com/docs/voice/twiml/queue), so the whisper must be said on the agent's own call."""
    mark_affected(live, "+12125550777")
    twilio = TwilioQueues()
    plain = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], queues=twilio)
    plain.run()
    priority = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], caller="+12125550777", queues=twilio)
    priority.run()
    live.recorder.flush()
    with live.db.write() as conn:  # the affected caller has waited 95 seconds
        conn.execute(update(QueueEntry).where(QueueEntry.call_sid == priority.result.call_sid)
                     .values(enqueued_at=utcnow() - timedelta(seconds=95)))
    result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["2468"], caller=agent, queues=twilio,
                           max_requests=6).run("/voice/agent")
    dial_doc = next(d for d in result.documents if d.find("Dial") is not None)
    assert dial_doc.find("Dial/Queue").text == "breach-general-p20"  # the higher priority first
    whisper = next(s for s in result.said() if s.startswith("Next caller"))
    assert "in English" in whisper and "caller ID on the affected customers list, not verified: do not confirm it " \
        "to them" in whisper  # anyone can fake a caller ID: the agent must not tell them they are on it
    assert "waited 1 minute 3" in whisper and "severity high" in whisper  # 95 s and a moment
    assert [el.tag for el in dial_doc] == ["Say", "Dial"]  # said before the Dial, on the agent's leg
    # The queued caller's leg ran the <Queue url> document: a notice, nothing about them.
    caller_heard = priority.result.said()
    connect_notice = caller_heard[caller_heard.index("Please hold. We are connecting you to a member of our team.",
                                                     1):]
    assert connect_notice and not any("English" in s or "affected" in s or "waited" in s for s in caller_heard)
    assert priority.result.ended == "bridged" and plain.result.ended == "bridged"  # the agent took both in turn
    assert not any(s.startswith("Next caller") for s in caller_heard + plain.result.said())
    live.recorder.flush()
    rows = {r.call_sid: r.status for r in entries(live)}
    assert rows[priority.result.call_sid] == "bridged" and rows[plain.result.call_sid] == "bridged"


def test_agent_line_refuses_strangers_and_three_wrong_pins(app, live, agent):
    stranger = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, caller="+15555550666").run("/voice/agent")
    assert stranger.said() == ["This line is for our staff. Goodbye."]
    wrong = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["1111", "2222", "3333", "2468"],
                          caller=agent).run("/voice/agent")
    assert wrong.said()[-1] == "That PIN is not right. Goodbye." and wrong.ended == "hangup"
    with live.db.read() as conn:
        actions = conn.execute(select(AuditEntry.action).where(AuditEntry.action.like("agent_line.%"))
                               .order_by(AuditEntry.id)).scalars().all()
    assert actions == ["agent_line.unknown_caller"] + ["agent_line.pin_failed"] * 3 + ["agent_line.locked_out"]


def test_with_nobody_waiting_the_agent_hears_so_and_the_line_checks_again(app, live, agent):
    result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["2468"], caller=agent, max_requests=5).run(
        "/voice/agent")
    assert result.said().count("Nobody is waiting right now.") >= 2


# -- SMS follow-up -----------------------------------------------------------------------------------------
ACCOUNT = "AC" + "c" * 32


@pytest.fixture
def twilio_api():
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    body = json.dumps({"sid": "SM" + "1" * 32, "status": "queued", "to": "+12025550123"}).encode()
    host = StubHost({path: (201, {"Content-Type": "application/json"}, body)})
    yield host, path
    host.close()


def test_press_4_texts_the_notice_through_a_background_job(config, twilio_api):

    from ivr.app import create_app

    host, path = twilio_api
    app = create_app(config.with_overrides(twilio_account_sid=ACCOUNT, sms_from="+15555550100",
                                           notice_url="https://example.com/notice", twilio_api_url=host.origin))
    hotline = app.extensions["ivr"]
    try:
        result = call(app, ["4"])
        sms_said = next(s for s in result.said() if s.startswith("We will send this information"))
        reference = sms_said.rsplit(" ", 1)[-1].rstrip(".")
        assert host.requests == []  # nothing sent during the call
        assert hotline.jobs.run_one()
        (method, got_path, auth), = [(m, p, a) for m, p, a in host.requests]
        assert (method, got_path, auth) == ("POST", path, basic_auth(ACCOUNT, AUTH_TOKEN))
        with hotline.db.read() as conn:
            status, payload, result_json = conn.execute(select(Job.status, Job.payload, Job.result)).one()
        assert status == "done" and json.loads(result_json)["sid"].startswith("SM")
        assert "+12025550123" not in payload and json.loads(payload)["to"] == "***0123"  # scrubbed once sent
        assert reference.startswith("HL-")
        assert not hotline.jobs.run_one()  # sent once
    finally:
        hotline.close()


def test_sms_retries_when_twilio_fails_then_records_the_failure(config):
    from ivr.app import create_app

    host = StubHost({})  # every request: 404 from a stand-in that knows no messages endpoint
    app = create_app(config.with_overrides(twilio_account_sid=ACCOUNT, sms_from="+15555550100",
                                           twilio_api_url=host.origin))
    hotline = app.extensions["ivr"]
    try:
        call(app, ["4"])
        assert hotline.jobs.run_one()
        with hotline.db.read() as conn:
            status, error = conn.execute(select(Job.status, Job.last_error)).one()
        assert status == "failed" and "refused" in error  # a 4xx is not worth retrying
    finally:
        hotline.close()
        host.close()


def test_two_agents_asking_at_once_are_never_told_about_the_same_caller(app, live):
    for keys in (["0"], ["0"], ["7"]):
        call(app, keys)
    got = at_once(lambda name: queues.take_next(live.db, name), 5)
    taken = [t for t in got if t is not None]
    assert len(taken) == 3 and len({t["call_sid"] for t in taken}) == 3  # three callers, five agents
    assert all(r.status == "connecting" for r in entries(live))  # claimed; bridged only when Twilio connects
