"""When parts fail, callers are still served: dead database, a bug in a step, missing rules changes."""
from __future__ import annotations

import glob
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from helpers import parse_twiml, signed_post, twilio_params
from ivr.store.db import Database
from ivr.store.models import CallEvent
from ivr.store.seed import DEFAULT_TEXTS

DEAD_URL = "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=1"


def kill_database(hotline):
    """Point the running app at a database server that is not there (connection refused)."""
    dead = Database(DEAD_URL)
    alive = (hotline.db, hotline.state.db, hotline.recorder.db)
    hotline.db = hotline.state.db = hotline.recorder.db = dead
    return alive


def revive_database(hotline, alive):
    hotline.db, hotline.state.db, hotline.recorder.db = alive
    hotline.state._retry_at = 0.0


@contextmanager
def database_down(hotline):
    """The database away for the block, and back after it (so the app closes its real handles at the end)."""
    alive = kill_database(hotline)
    try:
        yield
    finally:
        revive_database(hotline, alive)


def test_with_the_database_down_callers_hear_the_last_good_announcement(app, hotline, place_call):
    place_call(keys=["9"])  # the worker has read the state once
    alive = kill_database(hotline)
    result = place_call(keys=["1", "0"])
    assert not result.ended.startswith("http-")
    said = result.said()
    assert DEFAULT_TEXTS["en"]["main"] in said and DEFAULT_TEXTS["en"]["details"] in said
    # Its events wait in the spool...
    assert glob.glob(str(hotline.config.spool_dir / "events-*.pending"))
    # ...and reach the database, once, when it is back.
    revive_database(hotline, alive)
    hotline.recorder._next_orphan_scan = 0
    hotline.recorder.flush()
    with hotline.db.read() as conn:
        kinds = conn.execute(select(CallEvent.kind).where(CallEvent.call_sid == result.call_sid)
                             .order_by(CallEvent.id)).scalars().all()
    assert kinds[:3] == ["call_started", "menu_choice", "menu_choice"]
    assert not glob.glob(str(hotline.config.spool_dir / "events-*.pending"))
    hotline.recorder._next_orphan_scan = 0
    hotline.recorder.flush()  # replaying again adds nothing
    with hotline.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(CallEvent)
                            .where(CallEvent.call_sid == result.call_sid)).scalar() == len(kinds)


def test_with_the_database_down_a_caller_asking_for_a_person_is_still_queued(app, hotline, place_call):
    """Routing reads how many wait in each queue; unreadable, it routes on the last figures it had (here
    none: nobody known to be waiting) instead of failing the call."""
    from ivr.store import queues
    from ivr.store.state import set_mode

    set_mode(hotline.db, "live", reason="agents on shift", actor="ops")
    place_call(keys=["9"])  # the worker has read the state once
    with database_down(hotline):
        queues._stats_cache._at.clear()  # no figures kept from before the outage
        result = place_call(keys=["0"])
    assert result.ended == "queued", result.transcript()
    assert "technical difficulties" not in " ".join(result.said())


def test_a_fresh_worker_with_no_database_uses_the_snapshot_file(app, config, place_call):
    from ivr.app import create_app

    place_call(keys=[])  # writes the last-good snapshot file
    fresh = create_app(config.with_overrides(database_url=DEAD_URL))
    try:
        doc = parse_twiml(signed_post(fresh.test_client(), "/voice/incoming", twilio_params()))
        assert DEFAULT_TEXTS["en"]["main"] in [el.text for el in doc.iter("Say")]
    finally:
        fresh.extensions["ivr"].close()


def test_with_no_database_and_no_snapshot_callers_still_hear_something_useful(config):
    from ivr.app import create_app

    fresh = create_app(config.with_overrides(database_url=DEAD_URL))
    try:
        doc = parse_twiml(signed_post(fresh.test_client(), "/voice/incoming", twilio_params()))
        says = [el.text for el in doc.iter("Say")]
        assert any("investigating a security incident" in s for s in says)
        assert doc.find("Gather") is not None
    finally:
        fresh.extensions["ivr"].close()


def test_a_worker_started_while_the_database_is_away_plays_the_hold_tone_from_its_cache(config):
    from ivr.app import create_app
    from ivr.media import audio

    fresh = create_app(config.with_overrides(database_url=DEAD_URL))
    try:
        seconds, sha = fresh.extensions["ivr"].hold_tone  # not None: hold music, not a pause
        with fresh.test_client().get(f"/media/{sha}.wav") as resp:
            assert resp.status_code == 200 and resp.mimetype == "audio/wav"
            tone = audio.decode(resp.data)
        assert abs(len(tone) / 1000 - seconds) < 0.1 and tone.dBFS > -40  # the tone itself, not silence
    finally:
        fresh.extensions["ivr"].close()


def test_a_bug_inside_a_step_is_answered_with_the_safe_reply(app, monkeypatch):
    import ivr.core.flow

    def broken(*a, **kw):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ivr.core.flow, "menu_choice", broken)
    client = app.test_client()
    url = "/voice/menu?l=es&a=0&s=3"
    doc = parse_twiml(signed_post(client, url, twilio_params(Digits="1"), sign_url="http://localhost" + url))
    says = [el.text for el in doc.iter("Say")]
    assert says[0].startswith("Tenemos dificultades técnicas") and DEFAULT_TEXTS["es"]["main"] in says
    assert "a=1" in doc.find("Gather").get("action")
    # A fault that persists ends the call politely rather than looping forever.
    url = "/voice/menu?l=es&a=2&s=5"
    doc = parse_twiml(signed_post(client, url, twilio_params(Digits="1"), sign_url="http://localhost" + url))
    assert doc[-1].tag == "Hangup"


def test_the_fallback_url_answers_without_the_database(app, hotline, place_call):
    from ivr.store.state import set_mode

    set_mode(hotline.db, "live", reason="test", actor="test")
    place_call(keys=[])
    with database_down(hotline):
        doc = parse_twiml(signed_post(app.test_client(), "/voice/fallback",
                                      twilio_params(ErrorCode="11200", ErrorUrl="http://localhost/voice/menu")))
    says = [el.text for el in doc.iter("Say")]
    assert DEFAULT_TEXTS["en"]["main"] in says
    # Live mode: Twilio's own queue still works when we do not.
    assert doc.find("Enqueue").text == "breach-general" and doc.find("Enqueue").get("waitUrl") is None


def test_a_broken_rules_file_keeps_the_last_good_rules(app, hotline, rules_file, place_call):
    text = rules_file.read_text()
    rules_file.write_text(text.replace("timeout_seconds: 6", "timeout_seconds: [oops"))
    result = place_call(keys=["9"])
    assert not result.ended.startswith("http-")
    assert result.documents[0].find("Gather").get("timeout") == "6"
    assert hotline.rules.last_error is not None and "line" in str(hotline.rules.last_error)
    # A good change is picked up on the next call.
    rules_file.write_text(text.replace("timeout_seconds: 6", "timeout_seconds: 8"))
    result = place_call(keys=[])
    assert result.documents[0].find("Gather").get("timeout") == "8"
    assert hotline.rules.last_error is None


@pytest.mark.parametrize("route,digits,expected", [
    ("/voice/incoming", None, "We are investigating a security incident"),
    ("/voice/menu", "9", "We are investigating a security incident"),
    ("/voice/menu", "1", "We do not have more details yet"),
    ("/voice/menu", "2", "As a precaution"),
])
def test_with_nothing_published_callers_hear_the_holding_prompts(app, hotline, route, digits, expected):
    from sqlalchemy import update

    from ivr.store.models import Announcement
    from ivr.store.state import bump_content

    with hotline.db.write() as conn:
        conn.execute(update(Announcement).values(status="archived"))
        bump_content(conn)
    params = twilio_params(Digits=digits) if digits else twilio_params()
    doc = parse_twiml(signed_post(app.test_client(), route, params))
    says = [el.text for el in doc.iter("Say")]
    assert any(s.startswith(expected) for s in says), says
    assert doc.find("Gather") is not None
