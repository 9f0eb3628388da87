"""The supervisor's figures (ivr/ops/supervisor.py): one reading, and the dashboard, GET /api/supervisor and the
reports say the same when a figure changes."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import insert, update

from ivr.ops import reports
from ivr.store import agents, desk
from ivr.store.models import Agent, QueueEntry, utcnow
from ivr.store.state import set_mode
from ivr.store.users import add_user, create_token
from test_console import PASSWORD, as_role, page, users  # noqa: F401  (fixtures)


def _entry(hotline, sid: str, queue: str, status: str, *, ago_s: int, wait_s: int | None = None) -> None:
    """A queue entry as the spool writer leaves it (ivr/spool/batch.py): waiting, or ended and how."""
    with hotline.db.write() as conn:
        conn.execute(insert(QueueEntry).values(call_sid=sid, queue=queue, priority=1, language="en", status=status,
                                               enqueued_at=utcnow() - timedelta(seconds=ago_s), wait_s=wait_s))


def _api(app, hotline) -> dict:
    add_user(hotline.db, "wall", "viewer", actor="test")
    token = create_token(hotline.db, "wall", actor="test")
    resp = app.test_client().get("/api/supervisor", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    return resp.get_json()


def _row(body: str, queue: str) -> str:
    return re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', body, re.S).group(1)


def _cell(row: str, name: str) -> str:
    text = re.search(rf'<td class="{name}[^"]*"[^>]*>(.*?)</td>', row, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def test_a_waiting_caller_and_todays_service_show_the_same_on_the_dashboard_the_api_and_the_report(
        app, hotline, as_role):
    viewer = as_role("viewer")
    assert _cell(_row(page(viewer.get("/console/live?part=now")), "fraud"), "queue-waiting") == "0"

    _entry(hotline, "CAwait", "fraud", "waiting", ago_s=500)  # fraud's maximum wait is 15 min: past half of it
    for sid, status, wait in (("CAa1", "bridged", 30), ("CAa2", "bridged", 90), ("CAa3", "hangup", None)):
        _entry(hotline, sid, "fraud", status, ago_s=60, wait_s=wait)
    body = page(viewer.get("/console/live?part=now"))
    api = next(q for q in _api(app, hotline)["queues"] if q["name"] == "fraud")
    row = _row(body, "fraud")

    assert api["waiting"] == 1 and _cell(row, "queue-waiting") == "1"
    assert 500 <= api["longest_wait_s"] <= 510 and api["wait_level"] == "near" and api["max_wait_s"] == 900
    assert _cell(row, "queue-longest").startswith("8 min ") and 'class="queue-longest wait-near"' in row
    today = api["today"]
    assert (today["answered"], today["within"], today["service_level"]) == (2, 1, 0.5)
    assert today["average_answer_s"] == 60 and (today["abandoned"], today["ended"]) == (1, 3)
    assert _cell(row, "queue-service") == "50% (1 of 2, 60 s)"
    assert _cell(row, "queue-asa") == "1 min 00 s"
    assert _cell(row, "queue-abandoned") == "33% (1 of 3)"
    # The report for the same window counts them the same way (ivr/store/supervisor.py).
    report = reports.build(hotline.db, since=utcnow() - timedelta(hours=1))
    assert report["service_level"]["share"] == today["service_level"]
    assert report["abandonment"]["share"] == today["abandonment"]


def test_agents_show_their_state_and_time_in_it_on_the_dashboard_and_the_api(app, hotline, as_role):
    agents.add_agent(hotline.db, hotline.config.secret_key, "amy", "+12025550601", "2468", actor="test")
    agents.add_agent(hotline.db, hotline.config.secret_key, "cid", "+12025550603", "2468", actor="test")
    desk.set_status(hotline.db, "amy", "available", line_call_sid="CA" + "a" * 32)
    desk.set_status(hotline.db, "cid", "wrap_up")
    with hotline.db.write() as conn:
        conn.execute(update(Agent).where(Agent.name == "amy").values(status_at=utcnow() - timedelta(seconds=125)))
    body = page(as_role("viewer").get("/console/live?part=now"))
    api = _api(app, hotline)["agents"]
    amy = next(a for a in api["agents"] if a["name"] == "amy")
    assert amy["state"] == "on the line" and 125 <= amy["seconds_in_state"] <= 130
    assert api["by_state"]["on the line"] == 1 and api["by_state"]["wrap-up"] == 1
    assert 'id="agents-free">1<' in body and 'id="agents-wrap-up">1<' in body
    assert "<strong>On the line, free:</strong> amy (2 min 0" in body and "<strong>Wrap-up:</strong> cid (" in body


def test_the_first_screen_says_what_each_queues_key_does_as_routing_decides(app, hotline, as_role):
    viewer = as_role("viewer")
    assert _cell(_row(page(viewer.get("/console/live?part=now")), "general"), "queue-keys") == \
        "0: is offered a callback"  # message mode: the shipped rules offer a callback
    set_mode(hotline.db, "live", reason="shift", actor="otto")
    assert _cell(_row(page(viewer.get("/console/live?part=now")), "general"), "queue-keys") == "0: waits for an agent"
    general = next(q for q in _api(app, hotline)["queues"] if q["name"] == "general")
    assert general["keys"] == [{"lang": "en", "key": "0", "action": "agent", "does": "waits for an agent",
                                "breach_list_only": False}]
    assert viewer.get("/console/live?part=everything").status_code == 400



def test_a_caller_still_waiting_in_a_queue_taken_out_of_the_rules_is_still_shown(app, hotline, as_role):
    _entry(hotline, "CAold", "retired", "waiting", ago_s=30)
    row = _row(page(as_role("viewer").get("/console/live?part=now")), "retired")
    assert _cell(row, "queue-hours") == "not in the rules" and _cell(row, "queue-waiting") == "1"
    retired = next(q for q in _api(app, hotline)["queues"] if q["name"] == "retired")
    assert (retired["open"], retired["waiting"], retired["keys"]) == (False, 1, [])
