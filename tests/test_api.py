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
    ("get", "/api/announcements/1/audio"), ("get", "/api/callbacks"), ("post", "/api/callbacks/1/done"),
])
def test_every_api_route_refuses_anonymous_and_forged_tokens(app, method, path):
    client = app.test_client()
    assert getattr(client, method)(path).status_code == 401
    resp = getattr(client, method)(path, headers={"Authorization": "Bearer ivr_forged"})
    assert resp.status_code == 401 and "authentication required" in resp.get_json()["error"]


@pytest.mark.parametrize("role,path,body", [
    ("viewer", "/api/mode", {"mode": "live", "reason": "x"}),
    ("ops", "/api/announcements/tts", {"lang": "en", "text": "x"}),
    ("ops", "/api/announcements/rollback", {"lang": "en"}),
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
    assert resp.get_json() == {"mode": "live", "previous": "message", "changed": True}
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
    row = resp.get_json()
    assert (row["language"], row["topic"], row["status"], row["created_by"]) == ("es", "advice", "published", "ada")
    audio_resp = client.get(row["audio_url"])
    assert audio_resp.status_code == 200 and audio_resp.mimetype == "audio/wav"
    audio_resp.close()
    listed = client.get("/api/announcements?lang=es&topic=advice", headers=tokens["viewer"]).get_json()
    assert [a["status"] for a in listed["announcements"]] == ["published", "archived"]
    back = client.post("/api/announcements/rollback", json={"lang": "es", "topic": "advice"},
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
                             "publish": "true", "text": "Uploaded through the API."})
    assert resp.status_code == 201 and resp.get_json()["source"] == "upload"
    before = n_announcements(hotline)
    bad = client.post("/api/announcements/upload", headers=tokens["admin"], content_type="multipart/form-data",
                      data={"file": (io.BytesIO(b"<html>not audio</html>"), "x.wav"), "lang": "en"})
    assert bad.status_code == 400 and "undecodable" in bad.get_json()["error"]
    assert "nothing was changed" in bad.get_json()["error"]
    missing = client.post("/api/announcements/upload", headers=tokens["admin"], data={"lang": "en"})
    assert missing.status_code == 400
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
    done = client.post(f"/api/callbacks/{ops_view[0]['id']}/done", json={"note": "done"}, headers=tokens["ops"])
    assert done.get_json() == {"id": ops_view[0]["id"], "status": "done"}
    again = client.post(f"/api/callbacks/{ops_view[0]['id']}/done", headers=tokens["ops"])
    assert again.status_code == 404
