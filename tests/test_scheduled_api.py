"""Planned changes through the JSON API and the console: who may plan what, bad input refused as JSON 4xx
naming the field, cancelling, and the partial the dashboard includes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from test_console import as_role, users  # noqa: F401  (fixtures)
from test_openapi import check
from test_schedule_cli import ivr  # noqa: F401  (fixture)
from test_scheduled_changes import draft, make_due
from ivr.ops import scheduled as carrying
from ivr.store import scheduled
from ivr.store.models import AuditEntry, utcnow
from ivr.store.users import add_user, create_token

LATER = "2099-01-01T08:00"


@pytest.fixture
def bearer(hotline):
    """An Authorization header per role."""
    out = {}
    for role in ("viewer", "ops", "admin"):
        add_user(hotline.db, f"api-{role}", role, actor="test")
        out[role] = {"Authorization": "Bearer " + create_token(hotline.db, f"api-{role}", actor="test")}
    return out


def _stored(hotline) -> list:
    return scheduled.list_changes(hotline.db)


def test_ops_schedule_a_switch_see_it_listed_and_cancel_it(app, hotline, bearer):
    api = app.test_client()
    made = check(api.post("/api/schedule", headers=bearer["ops"], json={
        "kind": "mode", "mode": "live", "at": "2099-01-01T08:00+01:00", "reason": "shift starts",
        "override": "agents on the bridge"}), "/schedule", "post")
    assert made.status_code == 201
    change = made.get_json()
    assert (change["what"], change["created_by"], change["status"]) == ("switch to live mode", "api-ops", "pending")
    assert change["run_at"] == "2099-01-01T07:00:00+00:00" and change["override"] == "agents on the bridge"
    listed = check(api.get("/api/schedule", headers=bearer["viewer"]), "/schedule", "get").get_json()
    assert [c["id"] for c in listed["changes"]] == [change["id"]] and listed["counts"]["pending"] == 1
    cancelled = check(api.post(f"/api/schedule/{change['id']}/cancel", headers=bearer["ops"],
                               json={"reason": "shift moved"}), "/schedule/{id}/cancel", "post").get_json()
    assert (cancelled["status"], cancelled["cancelled_by"]) == ("cancelled", "api-ops")
    again = check(api.post(f"/api/schedule/{change['id']}/cancel", headers=bearer["ops"], json={"reason": "x"}),
                  "/schedule/{id}/cancel", "post")
    assert again.status_code == 409 and "only a pending one can be cancelled" in again.get_json()["error"]
    with hotline.db.read() as conn:
        actions = conn.execute(select(AuditEntry.action, AuditEntry.actor).where(
            AuditEntry.action.startswith("schedule.")).order_by(AuditEntry.id)).all()
    assert [tuple(a) for a in actions] == [("schedule.add", "api-ops"), ("schedule.cancel", "api-ops")]


def test_a_change_needs_the_role_the_change_itself_needs(app, hotline, bearer):
    api = app.test_client()
    version = draft(hotline.db)
    publish = {"kind": "publish", "announcement_id": version["id"], "at": LATER, "reason": "legal signed"}
    refused = check(api.post("/api/schedule", headers=bearer["ops"], json=publish), "/schedule", "post")
    assert refused.status_code == 403 and "needs the admin role; you are ops" in refused.get_json()["error"]
    viewer = check(api.post("/api/schedule", headers=bearer["viewer"], json={
        "kind": "mode", "mode": "live", "at": LATER, "reason": "x"}), "/schedule", "post")
    assert viewer.status_code == 403 and _stored(hotline) == []
    made = check(api.post("/api/schedule", headers=bearer["admin"], json=publish), "/schedule", "post").get_json()
    assert made["what"].startswith(f"publish announcement {version['id']} (incident ")
    no_cancel = check(api.post(f"/api/schedule/{made['id']}/cancel", headers=bearer["ops"], json={"reason": "x"}),
                      "/schedule/{id}/cancel", "post")
    assert no_cancel.status_code == 403 and scheduled.get(hotline.db, made["id"])["status"] == "pending"


@pytest.mark.parametrize("body, status, says", [
    ({"kind": "mode", "mode": "live", "at": "2020-01-01T08:00", "reason": "x"}, 422, "is in the past"),
    ({"kind": "mode", "mode": "live", "at": "2099-02-30T08:00", "reason": "x"}, 422, "is not a time"),
    ({"kind": "mode", "mode": "live", "at": "2099-01-01T08:00+25:00", "reason": "x"}, 422, "is not a time"),
    ({"kind": "mode", "mode": "live", "at": "next tuesday", "reason": "x"}, 400, "must be a time in ISO 8601"),
    ({"kind": "mode", "mode": "party", "at": LATER, "reason": "x"}, 400, "mode"),
    ({"kind": "mode", "mode": "live", "at": LATER, "reason": "  "}, 400, "must say why"),
    ({"kind": "mode", "mode": "live", "at": LATER}, 400, "reason"),
    ({"kind": "nap", "at": LATER, "reason": "x"}, 400, "kind: 'nap' is not one of"),
    ({"kind": "publish", "at": LATER, "reason": "x"}, 400, "'announcement_id' is a required property"),
    ({"kind": "mode", "mode": "live", "incident_id": 3, "at": LATER, "reason": "x"}, 400,
     "incident_id: is not used with this kind of change"),
    ({"kind": "publish", "announcement_id": 2**31, "at": LATER, "reason": "x"}, 400, "announcement_id"),
    ({"kind": "publish", "announcement_id": 99999, "at": LATER, "reason": "x"}, 404, "no announcement 99999"),
    ({"kind": "activate", "incident_id": 99999, "at": LATER, "reason": "x"}, 404, "no incident 99999"),
    ({"kind": "mode", "mode": "live", "at": LATER, "reason": "x", "carry_over": True}, 400,
     "carry_over: is not used with this kind of change"),
    ({"kind": "mode", "mode": "live", "at": LATER, "reason": "x", "when": "soon"}, 400, "'when' was unexpected"),
])
def test_bad_input_is_a_json_4xx_that_names_the_field_and_stores_nothing(app, hotline, bearer, body, status, says):
    resp = check(app.test_client().post("/api/schedule", headers=bearer["admin"], json=body), "/schedule", "post")
    assert resp.status_code == status and says in resp.get_json()["error"], resp.get_json()
    assert _stored(hotline) == []


def test_cancelling_what_does_not_exist_or_without_a_reason_is_refused(app, bearer):
    api = app.test_client()
    missing = check(api.post("/api/schedule/4242/cancel", headers=bearer["ops"], json={"reason": "x"}),
                    "/schedule/{id}/cancel", "post")
    assert missing.status_code == 404 and "no scheduled change 4242" in missing.get_json()["error"]
    blank = check(api.post("/api/schedule/4242/cancel", headers=bearer["ops"], json={}), "/schedule/{id}/cancel",
                  "post")
    assert blank.status_code == 400 and "reason" in blank.get_json()["error"]


# -- the console -------------------------------------------------------------------------------------------------
def test_the_console_plans_a_change_shows_it_on_the_dashboard_and_cancels_it(as_role, hotline):
    ops = as_role("ops")
    done = ops.post("/console/schedule", {"kind": "mode", "target": "live", "at": LATER, "reason": "shift starts"})
    assert done.status_code == 303
    (change,) = _stored(hotline)
    assert (change["what"], change["created_by"]) == ("switch to live mode", "otto")
    dashboard = ops.get("/console/").get_data(as_text=True)
    assert 'id="scheduled-changes"' in dashboard and f'id="change-{change["id"]}"' in dashboard
    assert "2099-01-01 08:00:00 UTC" in dashboard and "Scheduled by otto" in dashboard
    assert "Cancel this change" in dashboard  # ops may cancel a mode switch
    viewer = as_role("viewer").get("/console/").get_data(as_text=True)
    assert f'id="change-{change["id"]}"' in viewer and "Cancel this change" not in viewer
    cancelled = ops.post(f"/console/schedule/{change['id']}/cancel", {"reason": "shift moved"})
    assert cancelled.status_code == 303 and scheduled.get(hotline.db, change["id"])["status"] == "cancelled"
    assert "No change is planned." in ops.get("/console/").get_data(as_text=True)


def test_the_console_refuses_a_past_time_or_a_kind_beyond_the_role_and_keeps_what_was_typed(as_role, hotline):
    ops = as_role("ops")
    past = ops.post("/console/schedule", {"kind": "mode", "target": "live", "at": "2020-01-01T08:00",
                                          "reason": "shift starts"})
    body = past.get_data(as_text=True)
    assert past.status_code == 400 and "is in the past" in body and "Nothing was changed" in body
    assert 'value="shift starts"' in body
    version = draft(hotline.db)
    beyond = ops.post("/console/schedule", {"kind": "publish", "target": str(version["id"]), "at": LATER,
                                            "reason": "x"})
    assert beyond.status_code == 400 and "needs the admin role" in beyond.get_data(as_text=True)
    assert _stored(hotline) == []


def test_a_refusal_at_its_time_is_told_alike_on_every_surface(app, hotline, bearer, as_role, ivr):
    """One count (scheduled.counts) and one list of alerts (scheduled.alerts) behind the API, the CLI, /metrics
    and the dashboard: each refusal moves them all."""
    viewer = as_role("viewer")
    for n in (1, 2):
        row = scheduled.add(hotline.db, kind="mode", target="live", at=utcnow() + timedelta(minutes=5),
                            reason="shift starts", actor="olga")
        make_due(hotline.db, row["id"])
        carrying.run_due(hotline)
        counts = app.test_client().get("/api/schedule", headers=bearer["viewer"]).get_json()["counts"]
        assert (counts["refused"], counts["pending"]) == (n, 0)
        assert ivr("schedule", "list").output.startswith(f"0 pending; 0 done, {n} refused, 0 failed")
        metrics = app.test_client().get("/metrics").get_data(as_text=True)
        assert f'ivr_scheduled_changes{{status="refused"}} {n}.0' in metrics
        dashboard = viewer.get("/console/").get_data(as_text=True)
        assert dashboard.count('class="flash flash-error scheduled-alert"') == n
        alert = dashboard.split(f'id="scheduled-alert-{row["id"]}"')[1].split("</p>")[0]
        assert "switch to live mode (scheduled by olga), refused: not switched to live: the go-live check found" in alert
