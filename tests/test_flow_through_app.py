"""The flow's language and outcomes through the in-process app, as Twilio follows a call and as the calls table
records it (the pure steps are pinned in test_flow_menu.py and test_flow_queues.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from helpers import parse_twiml, signed_post, twilio_params
from ivr.store.models import Call
from ivr.store.state import set_mode


@pytest.fixture
def live(hotline):
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    return hotline


def outcome_of(hotline, call_sid: str) -> str | None:
    hotline.recorder.flush()
    with hotline.db.read() as conn:
        return conn.execute(select(Call.outcome).where(Call.call_sid == call_sid)).scalar_one()


def test_a_caller_who_switched_to_spanish_waits_on_hold_in_spanish(place_call, live):
    rules = live.rules.rules
    result = place_call(keys=["3", "0"])
    hold = next(d for d in result.documents if (d.find("Gather") is not None
                                                and d.find("Gather").get("action").startswith("/voice/hold-choice")))
    said = [(el.get("language"), el.text) for el in hold.iter("Say")]
    assert said[0] == ("es-US", rules.prompt("es", "hold"))
    assert ("es-US", rules.prompt("es", "callback_offer")) in said
    assert {lang for lang, _ in said} == {"es-US"}, said
    assert hold.find("Gather").get("action") == "/voice/hold-choice?l=es&q=general&p=10"


@pytest.mark.parametrize("queue_result, outcome", [
    ("bridging-in-process", "agent"), ("hangup", "abandoned"), ("leave", "callback"),
    ("queue-full", "queue-queue-full"),
])
def test_how_a_caller_left_the_queue_is_the_outcome_the_calls_table_records(app, place_call, live, queue_result,
                                                                            outcome):
    call = place_call(keys=["0"])
    assert outcome_of(live, call.call_sid) == "queued"
    url = next(d.find("Enqueue") for d in call.documents if d.find("Enqueue") is not None).get("action")
    doc = parse_twiml(signed_post(app.test_client(), url, twilio_params(call.call_sid, QueueResult=queue_result,
                                                                          QueueTime="42"),
                                  sign_url="http://localhost" + url))
    assert outcome_of(live, call.call_sid) == outcome
    assert (doc.find("Gather") is not None) == (outcome == "queue-queue-full")  # a failed queue: the menu again
