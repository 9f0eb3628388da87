"""The JSON API: bearer tokens with roles, announcements and mode, clear errors that change nothing."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from ivr.media import tts
from ivr.store.models import Announcement, AuditEntry
from ivr.store.users import add_user, create_token


@pytest.fixture
def tokens(hotline):
    out = {}
    for name, role in (("vera", "viewer"), ("otto", "ops"), ("ada", "admin")):
        add_user(hotline.db, name, role, actor="test")
        out[role] = {"Authorization": "Bearer " + create_token(hotline.db, name, actor="test")}
    return out


def n_announcements(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(func.count()).select_from(Announcement)).scalar()


@pytest.mark.parametrize("method,path", [
    ("get", "/api/mode"), ("post", "/api/mode"), ("get", "/api/announcements"),
    ("post", "/api/announcements/tts"), ("post", "/api/announcements/upload"),
    ("post", "/api/announcements/1/publish"), ("post", "/api/announcements/rollback"),
    ("post", "/api/announcements/1/approve"), ("post", "/api/announcements/1/override"),
    ("get", "/api/announcements/1"), ("get", "/api/announcements/awaiting"),
    ("get", "/api/announcements/1/audio"), ("get", "/api/callbacks"), ("post", "/api/callbacks/1/done"),
    ("get", "/api/incidents"), ("post", "/api/incidents"), ("patch", "/api/incidents/1"),
    ("post", "/api/incidents/1/activate"), ("get", "/api/calls"), ("get", "/api/stats"), ("get", "/api/agents"),
    ("get", "/api/supervisor"),
])
def test_every_api_route_refuses_anonymous_and_forged_tokens(app, method, path):
    client = app.test_client()
    assert getattr(client, method)(path).status_code == 401
    resp = getattr(client, method)(path, headers={"Authorization": "Bearer ivr_forged"})
    assert resp.status_code == 401 and "authentication required" in resp.get_json()["error"]


@pytest.mark.parametrize("role,path,body", [
    ("viewer", "/api/mode", {"mode": "live", "reason": "x"}),
    ("ops", "/api/announcements/tts", {"lang": "en", "text": "x", "reason": "x"}),
    ("ops", "/api/announcements/rollback", {"lang": "en", "reason": "x"}),
])
def test_roles_are_enforced(app, hotline, tokens, role, path, body):
    before = n_announcements(hotline)
    resp = app.test_client().post(path, json=body, headers=tokens[role])
    assert resp.status_code == 403 and "role" in resp.get_json()["error"]
    assert n_announcements(hotline) == before


def test_ops_flip_the_mode_with_a_reason_and_it_is_audited(app, hotline, tokens, place_call):
    client = app.test_client()
    resp = client.post("/api/mode", json={"mode": "live"}, headers=tokens["ops"])
    assert resp.status_code == 400 and "reason" in resp.get_json()["error"]
    resp = client.post("/api/mode", json={"mode": "live", "reason": "agents arrived"}, headers=tokens["ops"])
    # The go-live check refuses it (the setup wording still stands in, nobody is on the agent line)...
    assert resp.status_code == 409 and "go-live check found" in resp.get_json()["error"]
    assert "nobody is on the agent line" in resp.get_json()["error"]
    problems = client.get("/api/preflight", headers=tokens["viewer"]).get_json()
    assert problems["ok"] is False and {"no-agents", "stand-in"} <= {p["kind"] for p in problems["problems"]}
    # ...until an override says why it is fine.
    resp = client.post("/api/mode", json={"mode": "live", "reason": "agents arrived", "override": "queue is enough"},
                       headers=tokens["ops"])
    body = resp.get_json()
    assert (body["mode"], body["previous"], body["changed"]) == ("live", "message", True)
    assert [p["what"] for p in body["overridden"]] == [p["what"] for p in problems["problems"]]
    assert place_call(keys=["0"]).ended == "queued"
    assert client.get("/api/mode", headers=tokens["viewer"]).get_json()["by"] == "otto"
    with hotline.db.read() as conn:
        row = conn.execute(select(AuditEntry.actor, AuditEntry.from_value, AuditEntry.to_value, AuditEntry.reason)
                           .where(AuditEntry.action == "mode.set")).one()
    assert tuple(row) == ("otto", "message", "live", "agents arrived")


def test_admins_create_publish_and_roll_back_announcements(app, hotline, tokens, place_call):
    client = app.test_client()
    resp = client.post("/api/announcements/tts", json={"lang": "es", "topic": "advice", "publish": True,
                                                        "text": "Cambie su contraseña hoy.", "reason": "update"},
                       headers=tokens["admin"])
    assert resp.status_code == 201
    asked = resp.get_json()
    assert (asked["status"], asked["awaiting_approval"], asked["requested_by"]) == ("draft", True, "ada")
    row = client.post(f"/api/announcements/{asked['id']}/approve", json={"reason": "heard it"},
                      headers=tokens["ops"]).get_json()  # the second person
    assert (row["language"], row["topic"], row["status"], row["created_by"]) == ("es", "advice", "published", "ada")
    assert (row["approved_by"], row["awaiting_approval"]) == ("otto", False)
    audio_resp = client.get(row["audio_url"])
    assert audio_resp.status_code == 200 and audio_resp.mimetype == "audio/wav"
    audio_resp.close()
    listed = client.get("/api/announcements?lang=es&topic=advice", headers=tokens["viewer"]).get_json()
    assert [a["status"] for a in listed["announcements"]] == ["published", "archived"]
    back = client.post("/api/announcements/rollback", json={"lang": "es", "topic": "advice", "reason": "typo"},
                       headers=tokens["admin"]).get_json()
    assert back["version"] == 1 and back["status"] == "published"
    again = client.post(f"/api/announcements/{row['id']}/publish", json={"reason": "redo"}, headers=tokens["admin"])
    assert again.get_json()["status"] == "published"
    exported = client.get(f"/api/announcements/{row['id']}/audio", headers=tokens["viewer"])
    assert exported.data[:4] == b"RIFF" and "attachment" in exported.headers["Content-Disposition"]


def test_uploads_through_the_api_and_bad_ones_are_refused_whole(app, hotline, tokens):
    client = app.test_client()
    wav = tts.synthesize("Uploaded through the API.", "en", engines=("espeak",)).data
    resp = client.post("/api/announcements/upload", headers=tokens["admin"], content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav), "statement.wav"), "lang": "en", "topic": "details",
                             "publish": "true", "text": "Uploaded through the API.", "reason": "statement"})
    assert resp.status_code == 201 and resp.get_json()["source"] == "upload"
    active = resp.get_json()["incident_id"]
    draft = client.post("/api/incidents", json={"title": "Second breach", "severity": "high", "reason": "new"},
                        headers=tokens["admin"]).get_json()["id"]
    for_draft = client.post("/api/announcements/upload", headers=tokens["admin"],
                            content_type="multipart/form-data",
                            data={"file": (io.BytesIO(wav), "statement.wav"), "lang": "en", "incident_id": str(draft),
                                  "reason": "ready for the next incident"})
    assert for_draft.status_code == 201 and for_draft.get_json()["incident_id"] == draft != active
    before = n_announcements(hotline)
    bad = client.post("/api/announcements/upload", headers=tokens["admin"], content_type="multipart/form-data",
                      data={"file": (io.BytesIO(b"<html>not audio</html>"), "x.wav"), "lang": "en",
                            "reason": "statement"})
    assert bad.status_code == 422 and "undecodable" in bad.get_json()["error"]
    assert "nothing was changed" in bad.get_json()["error"]
    missing = client.post("/api/announcements/upload", headers=tokens["admin"], content_type="multipart/form-data",
                          data={"lang": "en", "reason": "statement"})
    assert missing.status_code == 400 and "'file' is a required property" in missing.get_json()["error"]
    not_a_form = client.post("/api/announcements/upload", headers=tokens["admin"], data={"lang": "en"})
    assert not_a_form.status_code == 415
    assert n_announcements(hotline) == before


def test_an_oversized_upload_is_refused_with_413(config, tokens):
    from ivr.app import create_app

    app = create_app(config.with_overrides(upload_max_bytes=10_000))
    try:
        body = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n"
        body += b"\0" * 2_000_000 + b"\r\n--x--\r\n"
        resp = app.test_client().post("/api/announcements/upload", headers=tokens["admin"], data=body,
                                      content_type="multipart/form-data; boundary=x")
        assert resp.status_code == 413 and "larger than" in resp.get_json()["error"]
    finally:
        app.extensions["ivr"].close()


def test_the_callback_worklist_through_the_api(app, hotline, tokens):
    from ivr.store import queues

    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+15555550111", language="es",
                            queue="general", priority=10, reason="callback offered")
    queues.request_callback(hotline.db, call_sid="CA" + "2" * 32, number="+15555550222", language="en",
                            queue="fraud", priority=30, reason="asked while on hold")
    client = app.test_client()
    ops_view = client.get("/api/callbacks", headers=tokens["ops"]).get_json()["callbacks"]
    assert [c["number"] for c in ops_view] == ["+15555550222", "+15555550111"]
    viewer_view = client.get("/api/callbacks", headers=tokens["viewer"]).get_json()["callbacks"]
    assert [c["number"] for c in viewer_view] == ["***0222", "***0111"]  # personal data, masked below ops
    assert client.post(f"/api/callbacks/{ops_view[0]['id']}/done", headers=tokens["viewer"]).status_code == 403
    done = client.post(f"/api/callbacks/{ops_view[0]['id']}/done", json={"note": "left a voicemail",
                                                                          "reason": "called back"},
                       headers=tokens["ops"])
    assert done.get_json() == {"id": ops_view[0]["id"], "status": "done"}
    again = client.post(f"/api/callbacks/{ops_view[0]['id']}/done", json={"reason": "again"}, headers=tokens["ops"])
    assert again.status_code == 404
    with hotline.db.read() as conn:
        row = conn.execute(select(AuditEntry.actor, AuditEntry.to_value, AuditEntry.reason)
                           .where(AuditEntry.action == "callback.done")).one()
    assert tuple(row) == ("otto", "left a voicemail", "called back")


def n_audit(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEntry)).scalar()


CHANGES = [  # every change the API makes, with a body that lacks only its reason
    ("post", "/api/mode", {"mode": "live"}),
    ("post", "/api/incidents", {"title": "Second breach", "severity": "high"}),
    ("patch", "/api/incidents/1", {"severity": "critical"}),
    ("post", "/api/incidents/1/activate", {}),
    ("post", "/api/announcements/tts", {"lang": "en", "text": "An update."}),
    ("post", "/api/announcements/1/publish", {}),
    ("post", "/api/announcements/1/approve", {}),
    ("post", "/api/announcements/1/override", {}),
    ("post", "/api/announcements/rollback", {"lang": "en"}),
    ("post", "/api/callbacks/1/done", {"note": "called"}),
]


@pytest.mark.parametrize("method,path,body", CHANGES, ids=[f"{m} {p}" for m, p, _ in CHANGES])
def test_every_change_needs_a_reason_in_words_and_a_refused_one_changes_nothing(app, hotline, tokens, method,
                                                                                 path, body):
    client = app.test_client()
    before = n_audit(hotline), n_announcements(hotline), client.get("/api/mode", headers=tokens["admin"]).get_json()
    for reason in ({}, [], "", "   \n", 5, None, "why\x00"):
        resp = getattr(client, method)(path, json={**body, "reason": reason}, headers=tokens["admin"])
        assert resp.status_code == 400 and resp.get_json()["error"].startswith("reason: "), (reason, resp.data)
    resp = getattr(client, method)(path, json=body, headers=tokens["admin"])
    assert resp.status_code == 400 and "'reason' is a required property" in resp.get_json()["error"]
    assert (n_audit(hotline), n_announcements(hotline),
            client.get("/api/mode", headers=tokens["admin"]).get_json()) == before


def test_an_upload_needs_a_reason_too(app, hotline, tokens):
    wav = tts.synthesize("Uploaded through the API.", "en", engines=("espeak",)).data
    before = n_announcements(hotline)
    for form in ({}, {"reason": " "}):
        resp = app.test_client().post("/api/announcements/upload", headers=tokens["admin"],
                                      content_type="multipart/form-data",
                                      data={"file": (io.BytesIO(wav), "statement.wav"), "lang": "en", **form})
        assert resp.status_code == 400 and "reason" in resp.get_json()["error"]
    assert n_announcements(hotline) == before


def test_activating_an_incident_through_the_api_never_leaves_a_language_silent(app, hotline, tokens):
    client, admin = app.test_client(), tokens["admin"]
    heard = hotline.state.current().content.incident_id
    body = {"title": "Second breach", "severity": "high", "activate": True, "reason": "disclosure"}
    before = client.get("/api/incidents", headers=admin).get_json()
    resp = client.post("/api/incidents", json=body, headers=admin)
    assert resp.status_code == 409 and "callers in en, es would hear nothing" in resp.get_json()["error"]
    assert client.get("/api/incidents", headers=admin).get_json() == before  # no draft left behind
    assert hotline.state.current().content.incident_id == heard
    resp = client.post("/api/incidents", json={**body, "carry_over": True}, headers=admin)
    assert resp.status_code == 201 and resp.get_json()["status"] == "active"
    assert hotline.state.current().content.incident_id == resp.get_json()["id"]
    bad = client.post(f"/api/incidents/{heard}/activate", json={"reason": "x", "carry_over": "yes"}, headers=admin)
    assert bad.status_code == 400 and "carry_over" in bad.get_json()["error"]


def test_a_draft_incident_gets_its_statement_through_the_api_before_it_is_activated(app, hotline, tokens):
    client, admin = app.test_client(), tokens["admin"]
    heard = hotline.state.current().content.incident_id
    draft = client.post("/api/incidents", json={"title": "Second breach", "severity": "high", "reason": "new"},
                        headers=admin).get_json()["id"]
    made = client.post("/api/announcements/tts", json={"lang": "en", "text": "What happened.", "publish": True,
                                                       "incident_id": draft, "reason": "ready"}, headers=admin)
    assert made.status_code == 201 and made.get_json()["incident_id"] == draft
    assert client.post(f"/api/announcements/{made.get_json()['id']}/approve", json={"reason": "heard it"},
                       headers=tokens["ops"]).get_json()["status"] == "published"
    assert hotline.state.current().content.incident_id == heard  # callers still hear the active one
    missing = client.post("/api/announcements/tts", json={"lang": "en", "text": "x", "incident_id": 99999,
                                                          "reason": "x"}, headers=admin)
    assert missing.status_code == 404 and "there is no incident 99999" in missing.get_json()["error"]
    refused = client.post(f"/api/incidents/{draft}/activate", json={"reason": "go"}, headers=admin)
    assert refused.status_code == 409 and "callers in es would hear nothing" in refused.get_json()["error"]
    done = client.post(f"/api/incidents/{draft}/activate", json={"reason": "go", "carry_over": True},
                       headers=admin).get_json()
    assert "es/main" in done["carried_over"] and "en/main" not in done["carried_over"]
    # The go-live check ran after the activation: Spanish callers hear the incident before's words.
    assert {"kind": "stand-in", "what": "es/main: carried over from the incident before (every es caller hears "
            "es/main v1)", "fix": 'ivr announce tts --lang es --topic main --text-file main.txt --publish '
            '--reason "..."'} in done["preflight"]
    assert hotline.state.current().content.spoken["en/main"].text == "What happened."


def test_requests_outside_the_document_get_a_json_4xx(app, tokens):
    client = app.test_client()
    admin = tokens["admin"]

    def refused(resp, status, words):
        assert resp.status_code == status and resp.mimetype == "application/json", resp.data
        assert words in resp.get_json()["error"], resp.get_json()

    for big in (2**31, 2**63, 10**30):  # beyond the database's 32-bit ids: nothing there, not a crash
        refused(client.get(f"/api/announcements/{big}/audio", headers=admin), 404, "not found")
        refused(client.post(f"/api/incidents/{big}/activate", json={"reason": "x"}, headers=admin), 404, "not found")
    refused(client.get(f"/api/announcements/{2**31 - 1}/audio", headers=admin), 404, "there is no announcement")
    refused(client.post(f"/api/callbacks/{2**31 - 1}/done", json={"reason": "x"}, headers=admin), 404,
            "no open callback")
    refused(client.get("/api/announcements/abc/audio", headers=admin), 404, "not found")
    refused(client.post("/api/announcements/rollback", json={"lang": "en", "to_version": "abc", "reason": "x"},
                        headers=admin), 400, "to_version: 'abc' is not of type 'integer'")
    refused(client.post("/api/announcements/rollback", json={"lang": "en", "to_version": 2**31, "reason": "x"},
                        headers=admin), 400, "to_version")
    refused(client.post("/api/announcements/rollback", json={"lang": "xx", "reason": "x"}, headers=admin), 400,
            "lang: 'xx' is not one of ['en', 'es']")
    for limit in ("abc", "0", "1001", ""):
        refused(client.get(f"/api/calls?limit={limit}", headers=admin), 400, "query parameter 'limit'")
    refused(client.get("/api/callbacks?status=true", headers=admin), 400, "query parameter 'status'")
    refused(client.patch("/api/incidents/1", json={"reason": "x"}, headers=admin), 400,
            "give at least one of title, severity, exposed")
    refused(client.post("/api/mode", data="mode=live", content_type="text/plain", headers=admin), 415,
            "application/json")
    refused(client.post("/api/mode", data="{mode", content_type="application/json", headers=admin), 400,
            "not valid JSON")
    refused(client.post("/api/mode", json=["live"], headers=admin), 400, "is not of type 'object'")
    refused(client.get("/api/nowhere", headers=admin), 404, "not found")
    refused(client.get("/api/nowhere"), 404, "not found")
    resp = client.delete("/api/mode", headers=admin)
    refused(resp, 405, "not allowed")
    assert set(resp.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert client.get("/console/nowhere").mimetype != "application/json"  # the rest of the site keeps its pages


def test_a_failure_inside_the_api_is_a_json_500(app, hotline, tokens):
    from sqlalchemy import text

    with hotline.db.write() as conn:  # a real failure: the table the route reads is gone
        conn.execute(text("ALTER TABLE callbacks RENAME TO callbacks_away"))
    try:
        resp = app.test_client().get("/api/callbacks", headers=tokens["viewer"])
    finally:
        with hotline.db.write() as conn:
            conn.execute(text("ALTER TABLE callbacks_away RENAME TO callbacks"))
    assert resp.status_code == 500 and resp.mimetype == "application/json"
    assert "internal error" in resp.get_json()["error"] and "callbacks" not in resp.get_json()["error"]


def _timestamps(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _timestamps(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _timestamps(v, key)
    elif key in ("since", "updated_at", "created_at", "published_at", "requested_at", "done_at", "started_at"):
        yield value


def test_every_timestamp_carries_its_zone(app, hotline, tokens, place_call):
    from datetime import timedelta, datetime as dt

    from ivr.store import queues

    place_call(keys=["1"])
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+15555550111", language="en",
                            queue="general", priority=10, reason="callback offered")
    client = app.test_client()
    cb = client.get("/api/callbacks", headers=tokens["ops"]).get_json()["callbacks"][0]
    client.post(f"/api/callbacks/{cb['id']}/done", json={"reason": "called back"}, headers=tokens["ops"])
    seen = []
    for path in ("/api/mode", "/api/incidents", "/api/announcements", "/api/callbacks?status=done", "/api/calls"):
        seen += list(_timestamps(client.get(path, headers=tokens["admin"]).get_json()))
    assert len(seen) >= 6 and None not in seen[:1]
    for value in filter(None, seen):
        assert dt.fromisoformat(value).utcoffset() == timedelta(0), value


def test_a_calls_steps_are_listed_in_the_order_they_happened(app, hotline, tokens):
    from datetime import datetime as dt, timedelta, timezone

    from ivr.store.models import Call, CallEvent

    t0 = dt.now(timezone.utc)
    sid = "CA" + "7" * 32
    with hotline.db.write() as conn:  # the writer stores batches as they come, not in step order
        conn.execute(Call.__table__.insert().values(call_sid=sid, started_at=t0))
        for step, kind, seconds in (("3", "hangup", 9), ("1", "call_started", 0), ("2", "menu_choice", 4)):
            conn.execute(CallEvent.__table__.insert().values(call_sid=sid, step=step, kind=kind,
                                                             at=t0 + timedelta(seconds=seconds)))
    calls = app.test_client().get("/api/calls?limit=1", headers=tokens["viewer"]).get_json()["calls"]
    assert [s["kind"] for s in calls[0]["path"]] == ["call_started", "menu_choice", "hangup"]
