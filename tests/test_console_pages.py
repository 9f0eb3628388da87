"""The console pages that run breach day: incidents, callbacks, agents and users (through the Flask app)."""
from __future__ import annotations

from sqlalchemy import select

from ivr.store import announcements, incidents, queues
from ivr.store.models import Announcement, Incident
from test_console import as_role, audit_rows, page, users  # noqa: F401  (fixtures)


def _published(hotline, incident_id: int) -> set[tuple[str, str]]:
    with hotline.db.read() as conn:
        return {tuple(r) for r in conn.execute(select(Announcement.language, Announcement.topic).where(
            Announcement.incident_id == incident_id, Announcement.status == "published"))}


def _active(hotline) -> int:
    with hotline.db.read() as conn:
        return conn.execute(select(Incident.id).where(Incident.status == "active")).scalar_one()


# -- incidents ---------------------------------------------------------------------------------------------


def test_an_incident_is_created_changed_and_activated_without_leaving_a_language_silent(as_role, hotline):
    admin, first = as_role("admin"), _active(hotline)
    assert admin.post("/console/incidents", {"title": "Card data", "severity": "high"}).status_code == 400  # no reason
    resp = admin.post("/console/incidents", {"title": "Card data", "severity": "high", "exposed": "card numbers",
                                             "reason": "disclosure"})
    assert resp.status_code == 303
    new = max(r["id"] for r in incidents.list_incidents(hotline.db))
    body = page(admin.get("/console/incidents"))
    assert "Card data" in body and "Nothing is published for this incident in en, es" in body

    # Severity up, with a reason: audited from and to.
    resp = admin.post(f"/console/incidents/{new}", {"title": "Card data", "severity": "critical",
                                                    "exposed": "card numbers", "reason": "forensics"})
    assert resp.status_code == 303
    entry = audit_rows(hotline, "incident.update")[-1]
    assert "'high'" in entry.from_value and "'critical'" in entry.to_value and entry.reason == "forensics"

    # Activating with nothing published for it is refused, saying which languages, and changes nothing.
    resp = admin.post(f"/console/incidents/{new}/activate", {"reason": "go"})
    body = page(resp)
    assert resp.status_code == 400 and "Callers in en, es would hear nothing" in body and "Nothing was changed" in body
    assert _active(hotline) == first

    # English published for it, Spanish carried over from the incident callers hear now.
    announcements.create_version(hotline.db, lang="en", topic="main", text="Card numbers were taken.", source="text",
                                 audio_=None, actor="test", publish=True, incident_id=new)
    resp = admin.post(f"/console/incidents/{new}/activate", {"reason": "go", "carry_over": "yes"})
    assert resp.status_code == 303
    assert _active(hotline) == new
    assert {lang for lang, _ in _published(hotline, new)} == {"en", "es"}
    assert ("en", "details") in _published(hotline, new)  # topics it lacked came over too
    with hotline.db.read() as conn:
        en_main = conn.execute(select(Announcement.text).where(
            Announcement.incident_id == new, Announcement.language == "en", Announcement.topic == "main",
            Announcement.status == "published")).scalar_one()
    assert en_main == "Card numbers were taken."  # its own announcement is never replaced by the old one
    assert [r.reason for r in audit_rows(hotline, "announcement.carry_over")] and \
        audit_rows(hotline, "incident.activate")[-1].reason == "go"
    assert hotline.state.current().content.spoken  # /healthz's check: something is published


def test_viewers_see_incidents_but_no_forms(as_role):
    body = page(as_role("viewer").get("/console/incidents"))
    assert "Security incident" in body and "<form method=\"post\" action=\"/console/incidents" not in body


# -- callbacks ---------------------------------------------------------------------------------------------


def _callback(hotline, sid: str, number: str, priority: int) -> None:
    queues.request_callback(hotline.db, call_sid=sid, number=number, language="en", queue="general",
                            priority=priority, reason="callback")


def test_callbacks_are_listed_by_priority_masked_for_viewers_and_marked_done_with_a_reason(as_role, hotline):
    _callback(hotline, "CA1", "+15550001111", 1)
    _callback(hotline, "CA2", "+15550002222", 5)
    viewer = page(as_role("viewer").get("/console/callbacks"))
    assert "***2222" in viewer and "+15550002222" not in viewer and "Mark done" not in viewer
    ops = as_role("ops")
    body = page(ops.get("/console/callbacks"))
    assert body.index("+15550002222") < body.index("+15550001111")  # higher priority first
    first = queues.callbacks(hotline.db)[0]["id"]
    assert ops.post(f"/console/callbacks/{first}/done", {"note": "reached"}).status_code == 400  # no reason
    resp = ops.post(f"/console/callbacks/{first}/done", {"note": "reached", "reason": "called back"})
    assert resp.status_code == 303
    assert "+15550002222" not in page(ops.get("/console/callbacks"))
    entry = audit_rows(hotline, "callback.done")[-1]
    assert (entry.actor, entry.reason, entry.to_value) == ("otto", "called back", "reached")
    again = ops.post(f"/console/callbacks/{first}/done", {"reason": "twice"})
    assert again.status_code == 400 and "no waiting callback" in page(again)
