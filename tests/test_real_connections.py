"""Figures from what happened: a queue entry is `bridged` only when Twilio reports the caller connected.

Twilio's <Dial><Queue> connects the agent to whoever is at the front of the Twilio queue, and "if the queue
is empty, Dial will wait until the next person joins the queue or until the <Dial> timeout duration is
reached" (twilio.com/docs/voice/twiml/queue): its action then gets DialCallStatus no-answer, and on a
connection DialCallSid names the dequeued caller. ivr/tools/simulate.py's TwilioQueues plays that part.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from helpers import wait_for
from ivr.ops import reports
from ivr.store import affected, agents, queues, reads
from ivr.store.db import Database
from ivr.store.models import AffectedNumber, AuditEntry, QueueEntry, utcnow
from ivr.store.state import set_mode
from ivr.tools.simulate import FlaskTransport, HttpTransport, SimulatedCall, TwilioQueues

AGENT_PHONE = "+15555550500"


def entries_in(db) -> dict[str, tuple]:
    """Each queue entry's (status, agent, wait_s), by CallSid."""
    with db.read() as conn:
        rows = conn.execute(select(QueueEntry.call_sid, QueueEntry.status, QueueEntry.agent, QueueEntry.wait_s)).all()
    return {r.call_sid: (r.status, r.agent, r.wait_s) for r in rows}


@pytest.fixture
def live(hotline):
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    agents.add_agent(hotline.db, hotline.config.secret_key, "alex", AGENT_PHONE, "2468", actor="test")
    return hotline


def stale_callers_and_one_real(app, hotline, twilio: TwilioQueues, stale: int = 5):
    """`stale` callers whose calls ended while queued with no word from Twilio (their entries still say
    waiting, Twilio's queue no longer holds them), then one caller really waiting."""
    gone = []
    for i in range(stale):
        call = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], caller=f"+1555555020{i}")
        call.run()  # never joins `twilio`: as far as Twilio's queue is concerned, they are gone
        gone.append(call.result.call_sid)
        hotline.recorder.flush()
    real = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], caller="+15555550299", queues=twilio)
    real.run()
    hotline.recorder.flush()
    return gone, real


def test_only_the_caller_twilio_connected_is_bridged_and_the_stale_entries_close_as_ended(app, live):
    twilio = TwilioQueues()
    gone, real = stale_callers_and_one_real(app, live, twilio)
    agent = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["2468"], caller=AGENT_PHONE, queues=twilio,
                          max_requests=12).run("/voice/agent")
    live.recorder.flush()
    dials = [h.text for h in agent.heard if h.kind == "dial"]
    assert dials[0].startswith("connected") and dials[1:6] == ["dials queue breach-general: nobody there"] * 5
    rows = entries_in(live.db)
    assert rows[real.result.call_sid][:2] == ("bridged", "alex")
    assert [rows[sid][0] for sid in gone] == ["ended"] * 5  # their calls had ended; nobody was connected
    report = reports.build(live.db, since=utcnow() - timedelta(hours=1))
    assert report["service_level"]["answered"] == 1
    queues._wait_cache._at.clear()
    assert queues.recent_wait_minutes(live.db, "general") is None  # one real wait is not yet a figure


def test_the_whisper_says_the_full_reason_and_one_minute_as_people_say_it(app, live):
    number = "+12125550777"
    with live.db.write() as conn:
        conn.execute(AffectedNumber.__table__.insert().values(
            number_hash=affected.number_hash(live.config.secret_key, number)))
    twilio = TwilioQueues()
    caller = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], caller=number, queues=twilio)
    caller.run()
    live.recorder.flush()
    with live.db.write() as conn:
        conn.execute(update(QueueEntry).values(enqueued_at=utcnow() - timedelta(seconds=61)))
    agent = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["2468"], caller=AGENT_PHONE, queues=twilio,
                          max_requests=4).run("/voice/agent")
    whisper = next(s for s in agent.said() if s.startswith("Next caller"))
    assert "reason: Affected customers during a high or critical incident." in whisper  # the rule's whole name
    assert "waited 1 minute 1 second." in whisper or "waited 1 minute 2 seconds." in whisper


def test_the_api_and_metrics_show_the_agents_states_from_the_agent_line_and_the_desk(app, live):
    from ivr.store import desk
    from ivr.store.users import add_user, create_token

    agents.add_agent(live.db, live.config.secret_key, "bea", "+15555550501", "2468", actor="test")
    desk.set_status(live.db, "alex", "available", line_call_sid="CA" + "a" * 32)  # called the agent line
    desk.set_status(live.db, "bea", "available")  # only the desk says so
    add_user(live.db, "vera", "viewer", actor="test")
    token = {"Authorization": "Bearer " + create_token(live.db, "vera", actor="test")}
    body = app.test_client().get("/api/agents", headers=token).get_json()
    assert {a["name"]: a["state"] for a in body["agents"]} == {"alex": "on the line", "bea": "desk only"}
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'ivr_agents{state="on the line"} 1.0' in metrics and 'ivr_agents{state="desk only"} 1.0' in metrics


@pytest.mark.slow
def test_under_ivr_serve_only_the_connected_caller_is_bridged_and_a_hung_up_agent_is_signed_out(server, config):
    """Every request signed as Twilio signs it, over HTTP to `ivr serve`; the callers' and the agent's final
    status callbacks go through the spool to `ivr background`, which closes what they end."""
    db = Database(config.db_url)
    set_mode(db, "live", reason="agents on shift", actor="test")
    agents.add_agent(db, config.secret_key, "alex", AGENT_PHONE, "2468", actor="test")
    srv = server(workers=2)
    twilio = TwilioQueues()
    gone = []
    for i in range(2):  # their calls ended while queued, and Twilio's word of it was lost
        call = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0"], caller=f"+1555555020{i}")
        gone.append(call.run().call_sid)
        assert wait_for(lambda: len(entries_in(db)) == i + 1, 15)
    real = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0"], caller="+15555550299", queues=twilio)
    real.run()
    assert wait_for(lambda: len(entries_in(db)) == 3, 15)

    agent = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["2468"], caller=AGENT_PHONE, queues=twilio,
                          max_requests=6)
    agent.run("/voice/agent")  # connected once, then two dials that find nobody, then the agent hangs up
    dials = [h.text for h in agent.result.heard if h.kind == "dial"]
    assert dials[0].startswith("connected") and dials[1:] == ["dials queue breach-general: nobody there"] * 2
    assert wait_for(lambda: entries_in(db).get(real.result.call_sid, ("",))[:2] == ("bridged", "alex"), 15)
    assert [entries_in(db)[sid][0] for sid in gone] == ["ended", "ended"]
    assert reports.build(db, since=utcnow() - timedelta(hours=1))["service_level"]["answered"] == 1

    def signed_out():
        with db.read() as conn:
            return [a.state for a in reads.agents_now(conn)] == ["signed out"]

    assert wait_for(signed_out, 15)  # by the agent line's own final status, not the idle timeout
    with db.read() as conn:
        why = conn.execute(select(AuditEntry.reason).where(AuditEntry.action == "agent.status",
                                                           AuditEntry.actor == "agent line")
                           .order_by(AuditEntry.id.desc())).scalars().first()
    assert why == "their call to the agent line ended"
    db.dispose()


def test_a_caller_twilio_is_connecting_is_bridged_at_once_and_no_longer_counts_as_waiting(app, live):
    """The <Queue url> request runs on the caller's leg as Twilio connects them, with DequeingCallSid (the
    agent's call) and QueueTime: during the conversation the caller is not "waiting" for routing and the
    dashboard, long before the Enqueue and Dial actions come at its end."""
    from helpers import signed_post, twilio_params
    from ivr.store import desk

    line_sid = "CA" + "a" * 32
    desk.set_status(live.db, "alex", "available", line_call_sid=line_sid)  # alex is on the agent line
    twilio = TwilioQueues()
    caller = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], queues=twilio)
    caller.run()
    live.recorder.flush()
    assert queues.queue_stats(live.db, cached=False)["general"].waiting == 1
    path = "/voice/queue-connect?l=en"
    signed_post(app.test_client(), path, twilio_params(caller.result.call_sid, QueueSid="QU" + "0" * 32,
                                                       QueueTime="42", DequeingCallSid=line_sid),
                sign_url="http://localhost" + path).close()
    live.recorder.flush()
    assert entries_in(live.db)[caller.result.call_sid] == ("bridged", "alex", 42)
    assert "general" not in queues.queue_stats(live.db, cached=False)


def test_an_agent_who_hangs_up_claims_nobody_and_a_caller_left_claimed_waits_for_the_next_agent(app, live):
    """Twilio still requests the Dial action when the agent's own call ends (CallStatus completed): no caller
    may be claimed for a dead call; and a claim whose Dial never reported back is released with the line."""
    from helpers import parse_twiml, signed_post, twilio_params
    from ivr.spool.batch import write_records

    line_sid = "CA" + "b" * 32
    twilio = TwilioQueues()
    first, second = (SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"], caller=f"+1555555031{i}",
                                   queues=twilio) for i in range(2))
    first.run()
    second.run()
    live.recorder.flush()
    def agent_line(url: str, **extra):  # the agent's own call, signed as Twilio signs it
        path = url.replace("http://localhost", "").replace("&amp;", "&")
        return parse_twiml(signed_post(app.test_client(), path, twilio_params(line_sid, From=AGENT_PHONE, **extra),
                                       sign_url="http://localhost" + path))

    pin = agent_line("/voice/agent").find("Gather").get("action")
    dial = agent_line(agent_line(pin, Digits="2468").find("Redirect").text).find("Dial")
    assert entries_in(live.db)[first.result.call_sid][:2] == ("connecting", "alex")  # claimed, not connected
    agent_line(dial.get("action"), CallStatus="completed", DialCallStatus="completed",
               DialCallSid=first.result.call_sid, DialCallDuration="30")
    rows = entries_in(live.db)
    assert rows[first.result.call_sid][:2] == ("bridged", "alex") and rows[second.result.call_sid][0] == "waiting"

    assert queues.take_next(live.db, "alex")["call_sid"] == second.result.call_sid  # a claim, then silence
    with live.db.write() as conn:  # the agent line's final status, as the spool writer applies it
        write_records(conn, [{"type": "status", "call_sid": line_sid, "status": "completed", "sequence": 3}])
    assert entries_in(live.db)[second.result.call_sid][:2] == ("waiting", None)
