"""Agent-first callbacks: an agent with nobody waiting is offered the next owed callback, the line dials the
customer from the hotline's number, and the Dial's result closes the callback or counts an attempt. The
simulated agent's call follows Twilio's <Dial> (ivr/tools/simulate.py, twilio.com/docs/voice/twiml/dial)."""
from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from helpers import at_once
from ivr.store import agents, callbacks, queues, sealed
from ivr.store.models import AuditEntry, Callback, Job, utcnow
from ivr.tools.simulate import FlaskTransport, SimulatedCall
from stubs import StubHost

AGENT_PHONE, PIN, HOTLINE = "+15555550500", "2468", "+15555550100"


@pytest.fixture
def agent(hotline):
    agents.add_agent(hotline.db, hotline.config.secret_key, "alex", AGENT_PHONE, PIN, actor="test")
    return "alex"


def owe(hotline, sid_digit: str, number: str, minutes_ago: int, priority: int = 10) -> str:
    sid = "CA" + sid_digit * 32
    queues.request_callback(hotline.db, call_sid=sid, number=number, language="en", queue="general",
                            priority=priority, reason="callback offered")
    with hotline.db.write() as conn:
        conn.execute(update(Callback).where(Callback.call_sid == sid)
                     .values(requested_at=utcnow() - timedelta(minutes=minutes_ago)))
    return sid


def agent_call(app, *, answer="completed", keys=(PIN, "1"), max_requests=5):
    return SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=list(keys), caller=AGENT_PHONE, to=HOTLINE,
                         answer=answer, max_requests=max_requests).run("/voice/agent")


def row(hotline, sid):
    with hotline.db.read() as conn:
        return conn.execute(select(Callback.__table__).where(Callback.call_sid == sid)).one()


def opened(hotline, callback) -> str:
    """The number a callback row holds (stored sealed under the data key)."""
    return sealed.open_number(hotline.db, callback.number)


def test_an_agent_with_nobody_waiting_is_offered_the_oldest_callback_and_the_line_dials_the_customer(
        app, hotline, agent):
    newer = owe(hotline, "2", "+15555550202", minutes_ago=5)
    older = owe(hotline, "1", "+15555550101", minutes_ago=30)
    result = agent_call(app)
    offer = next(s for s in result.said() if s.startswith("A callback is owed"))
    assert "in English" in offer and "asked 30 minutes" in offer and "attempt 1 of 3" in offer
    assert result.dialled == [("+15555550101", HOTLINE)]  # the oldest, from the hotline's number
    done = row(hotline, older)
    assert (done.status, done.attempts, done.number, done.number_masked) == ("done", 0, None, "***0101")
    assert row(hotline, newer).status == "waiting" and opened(hotline, row(hotline, newer)) == "+15555550202"
    with hotline.db.read() as conn:
        actions = conn.execute(select(AuditEntry.action).where(AuditEntry.subject == f"callback {done.id}")
                               .order_by(AuditEntry.id)).scalars().all()
    assert actions == ["callback.dial", "callback.done"]


def test_a_higher_priority_callback_goes_first(app, hotline, agent):
    owe(hotline, "1", "+15555550101", minutes_ago=30)
    owe(hotline, "3", "+15555550303", minutes_ago=1, priority=30)
    assert agent_call(app).dialled == [("+15555550303", HOTLINE)]


def test_an_unanswered_callback_stays_owed_with_its_attempt_counted_and_is_offered_again_after_the_delay(
        app, hotline, agent):
    sid = owe(hotline, "1", "+15555550101", minutes_ago=30)
    first = agent_call(app, answer="no-answer")
    assert first.dialled == [("+15555550101", HOTLINE)]
    assert "They did not answer. We will try again in 15 minutes." in first.said()
    owed = row(hotline, sid)
    assert (owed.status, owed.attempts, opened(hotline, owed)) == ("waiting", 1, "+15555550101")
    assert timedelta(minutes=14) < owed.next_try_at - utcnow() <= timedelta(minutes=15)
    too_soon = agent_call(app, max_requests=3)
    assert too_soon.dialled == [] and "Nobody is waiting right now." in too_soon.said()
    with hotline.db.write() as conn:  # fifteen minutes later
        conn.execute(update(Callback).where(Callback.call_sid == sid).values(next_try_at=utcnow()))
    again = agent_call(app, answer="busy")
    assert any("attempt 2 of 3" in s for s in again.said()) and again.dialled == [("+15555550101", HOTLINE)]
    assert row(hotline, sid).attempts == 2


def test_a_repeated_dial_result_is_counted_once(app, hotline, agent):
    sid = owe(hotline, "1", "+15555550101", minutes_ago=3)
    result = agent_call(app, answer="no-answer")
    url, params = next((u, p) for u, p in result.requests if "callback-result" in u)
    replay = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, caller=AGENT_PHONE)
    replay.params.update(params)
    replay.request(url[len("http://localhost"):], {})
    assert row(hotline, sid).attempts == 1


def test_the_last_unanswered_attempt_closes_it_as_unreachable_and_texts_them(config):
    from ivr.app import create_app

    account = "AC" + "c" * 32
    path = f"/2010-04-01/Accounts/{account}/Messages.json"
    host = StubHost({path: (201, {"Content-Type": "application/json"},
                            json.dumps({"sid": "SM" + "1" * 32, "status": "queued"}).encode())})
    app = create_app(config.with_overrides(twilio_account_sid=account, sms_from="+15555550199",
                                           notice_url="https://example.com/notice", twilio_api_url=host.origin))
    hotline = app.extensions["ivr"]
    try:
        agents.add_agent(hotline.db, hotline.config.secret_key, "alex", AGENT_PHONE, PIN, actor="test")
        sid = owe(hotline, "1", "+15555550101", minutes_ago=60)
        with hotline.db.write() as conn:
            conn.execute(update(Callback).where(Callback.call_sid == sid).values(attempts=2))
        result = agent_call(app, answer="failed")
        assert "They did not answer. That was the last attempt: the callback is closed." in result.said()
        closed = row(hotline, sid)
        assert (closed.status, closed.attempts, closed.number) == ("unreachable", 3, None)
        assert hotline.jobs.run_one()
        sent = parse_qs(host.bodies[-1].decode())
        assert sent["To"] == ["+15555550101"] and sent["From"] == ["+15555550199"]
        assert sent["Body"][0].startswith("We tried to call you back") and "https://example.com/notice" in sent["Body"][0]
        with hotline.db.read() as conn:
            payload = conn.execute(select(Job.payload)).scalar()
        assert "+15555550101" not in payload  # scrubbed once sent: no full number is left anywhere
    finally:
        hotline.close()
        host.close()


def test_two_agents_never_get_the_same_callback(hotline):
    for digit in "123":
        owe(hotline, digit, f"+1555555010{digit}", minutes_ago=int(digit))
    got = at_once(lambda name: callbacks.claim_next(hotline.db, name), 6)
    claimed = [c for c in got if c is not None]
    assert len(got) == 6 and len(claimed) == 3  # three callbacks, six agents asking at the same moment
    assert len({c["id"] for c in claimed}) == 3
    with hotline.db.read() as conn:
        owners = dict(conn.execute(select(Callback.id, Callback.claimed_by)).all())
    assert {c["id"]: c["claimed_by"] for c in claimed} == owners


def test_an_offer_the_agent_passes_on_stays_owed_without_an_attempt(app, hotline, agent):
    sid = owe(hotline, "1", "+15555550101", minutes_ago=3)
    result = agent_call(app, keys=(PIN, "2"), max_requests=4)
    assert "Left for later." in result.said() and result.dialled == []
    owed = row(hotline, sid)
    assert (owed.status, owed.attempts, owed.claimed_by) == ("waiting", 0, None)


def voicemail(digit: str) -> str:
    """A RecordingUrl as Twilio hands it over."""
    return f"https://api.twilio.com/2010-04-01/Accounts/AC{'a' * 32}/Recordings/RE{digit * 32}"


def recordings_to_delete(hotline) -> list[tuple[str, str, str]]:
    with hotline.db.read() as conn:
        payloads = conn.execute(select(Job.payload).where(Job.kind == "recording_delete")).scalars().all()
    return [(p["recording_sid"], p["actor"], p["why"]) for p in map(json.loads, payloads)]


def test_retention_closes_callbacks_owed_too_long_and_deletes_what_is_left_of_closed_ones(hotline):
    from ivr.worker import retention

    old_open = owe(hotline, "1", "+15555550101", minutes_ago=8 * 24 * 60)
    old_done, recent_done = owe(hotline, "2", "+15555550202", 9 * 24 * 60), owe(hotline, "3", "+15555550303", 60)
    for sid, days_ago in ((old_done, 8), (recent_done, 0)):
        with hotline.db.write() as conn:
            conn.execute(update(Callback).where(Callback.call_sid == sid).values(voicemail_url=voicemail(sid[2])))
        queues.callback_done(hotline.db, row(hotline, sid).id, actor="otto", note="spoke to Mrs Smith")
        with hotline.db.write() as conn:
            conn.execute(update(Callback).where(Callback.call_sid == sid)
                         .values(done_at=utcnow() - timedelta(days=days_ago)))
    assert row(hotline, old_done).number is None  # closing deleted the number at once
    assert retention.run_once(hotline) == {"expired": 1, "scrubbed": 1, "recordings": 1, "dead_letters_scrubbed": 0}
    expired = row(hotline, old_open)
    assert (expired.status, expired.number) == ("expired", None)
    scrubbed = row(hotline, old_done)
    assert (scrubbed.voicemail_url, scrubbed.note, scrubbed.queue) == (None, None, "general")  # reports keep the rest
    # The voicemail itself goes at Twilio (tests/test_recording_delete.py: the job), the recent one stays.
    assert recordings_to_delete(hotline) == [("RE" + "2" * 32, "retention", "voicemail kept 7 days")]
    assert (row(hotline, recent_done).note, row(hotline, recent_done).voicemail_url) == ("spoke to Mrs Smith",
                                                                                         voicemail("3"))
    with hotline.db.read() as conn:
        said = conn.execute(select(AuditEntry.to_value).where(AuditEntry.action == "callback.scrub")).scalar()
    assert said == ("1 closed callbacks older than 7 days: voicemail links and notes deleted; 1 voicemail "
                    "recordings to be deleted at Twilio")
    assert retention.run_once(hotline) == {"expired": 0, "scrubbed": 0, "recordings": 0, "dead_letters_scrubbed": 0}
    assert len(recordings_to_delete(hotline)) == 1


def test_a_newer_voicemail_from_the_same_caller_replaces_the_older_one_which_goes_at_twilio(hotline):
    number = "+15555550404"
    for digit, url in (("4", voicemail("4")), ("5", None), ("6", voicemail("6")), ("6", voicemail("6"))):
        queues.request_callback(hotline.db, call_sid="CA" + digit * 32, number=number, language="en",
                                queue="general", priority=10, reason="voicemail", voicemail_url=url,
                                number_hash=hotline.caller_identity(number)[0])
    # One callback owed; the second call left no voicemail (the first is kept), the third a newer one; the
    # fourth record is the third's again (the spool writer retrying a batch), which deletes nothing more.
    (owed,) = queues.callbacks(hotline.db)
    assert owed["voicemail_url"] == voicemail("6")
    assert recordings_to_delete(hotline) == [("RE" + "4" * 32, "hotline",
                                              "replaced by a newer voicemail from the same caller")]


def test_an_agent_takes_callers_and_callbacks_only_from_the_queues_they_serve(app, hotline):
    from ivr.store.state import set_mode

    agents.add_agent(hotline.db, hotline.config.secret_key, "fran", AGENT_PHONE, PIN, actor="test", queues=("fraud",))
    assert agents.serves(hotline.db, "fran") == ("fraud",)
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    general = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], caller="+15555550111").run()
    hotline.recorder.flush()
    owe(hotline, "1", "+15555550101", minutes_ago=30)  # a general callback: not fran's
    sid = "CA" + "8" * 32
    queues.request_callback(hotline.db, call_sid=sid, number="+15555550808", language="en", queue="fraud",
                            priority=30, reason="fraud")
    result = agent_call(app)
    assert not any(s.startswith("Next caller") for s in result.said())  # the general caller is not fran's
    assert result.dialled == [("+15555550808", HOTLINE)]  # nobody waiting in fraud: the fraud callback
    assert queues.next_waiting(hotline.db)["call_sid"] == general.call_sid  # still waiting for a general agent
