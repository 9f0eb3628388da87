"""Changes planned ahead (ivr/store/scheduled.py, ivr/ops/scheduled.py): scheduled, listed, cancelled and
carried out once, each step audited; refused at their time when the go-live check fails, unless overridden."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from ivr.ops import scheduled as carrying
from ivr.store import announcements, approvals, incidents, scheduled
from ivr.store.db import Database
from ivr.store.models import Announcement, AuditEntry, ScheduledChange, utcnow
from ivr.store.state import get_mode

SOON = timedelta(minutes=10)


def audit_rows(db, action: str) -> list:
    with db.read() as conn:
        return conn.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()


def make_due(db, change_id: int) -> None:
    """The clock moved on: the change's time has come."""
    with db.write() as conn:
        conn.execute(update(ScheduledChange).where(ScheduledChange.id == change_id)
                     .values(run_at=utcnow() - timedelta(seconds=1)))


def draft(db, text="An update: cards were not affected.", lang="en", topic="main") -> dict:
    """A draft version of the active incident's announcement (text only: no audio made)."""
    return announcements.create_version(db, lang=lang, topic=topic, text=text, source="text", audio_=None,
                                        actor="ada", reason="update ready")


# -- times -------------------------------------------------------------------------------------------------
NOW = datetime(2026, 12, 6, 21, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, zone, expected", [
    ("2026-12-07T08:00+01:00", "UTC", datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)),
    ("2026-12-07T08:00Z", "America/New_York", datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)),
    ("2026-12-07T08:00", "America/New_York", datetime(2026, 12, 7, 13, 0, tzinfo=timezone.utc)),  # EST: -5
    ("2026-12-07 08:00:30", "Europe/Paris", datetime(2026, 12, 7, 7, 0, 30, tzinfo=timezone.utc)),
])
def test_a_time_with_an_offset_is_that_moment_and_one_without_is_in_the_hotlines_zone(text, zone, expected):
    assert scheduled.parse_at(text, zone, now=NOW) == expected


@pytest.mark.parametrize("text, says", [
    ("2026-12-06T20:59", "is in the past"),
    ("2026-12-06T22:30+02:00", "is in the past"),  # 20:30 UTC
    ("tomorrow at eight", "is not a time: give ISO 8601"),
    ("2026-02-30T08:00", "is not a time"),
    ("", "is not a time"),
])
def test_a_past_or_unreadable_time_is_refused_with_a_clear_error(text, says):
    with pytest.raises(scheduled.UnusableTime, match=says):
        scheduled.parse_at(text, "UTC", now=NOW)


def test_the_time_is_shown_in_utc_and_in_the_hotlines_zone():
    at = datetime(2026, 12, 7, 13, 0, tzinfo=timezone.utc)
    assert scheduled.when_text(at, "America/New_York") == "2026-12-07 13:00:00 UTC (2026-12-07 08:00 EST America/New_York)"
    assert scheduled.when_text(at, "UTC") == "2026-12-07 13:00:00 UTC"


# -- the store -----------------------------------------------------------------------------------------------
def test_a_change_is_scheduled_listed_and_cancelled_each_audited(hotline):
    db = hotline.db
    row = scheduled.add(db, kind="mode", target="live", at=utcnow() + SOON, reason="shift starts", actor="olga",
                        override="agents confirmed by phone")
    assert (row["status"], row["what"], row["created_by"]) == ("pending", "switch to live mode", "olga")
    (added,) = audit_rows(db, "schedule.add")
    assert added.actor == "olga" and added.reason == "shift starts" and "switch to live mode at" in added.to_value
    assert "overridden: agents confirmed by phone" in added.to_value
    assert [r["id"] for r in scheduled.list_changes(db, include_past=False)] == [row["id"]]
    assert scheduled.counts(db)["pending"] == 1
    cancelled = scheduled.cancel(db, row["id"], actor="pat", reason="shift moved")
    assert (cancelled["status"], cancelled["cancelled_by"]) == ("cancelled", "pat")
    (gone,) = audit_rows(db, "schedule.cancel")
    assert (gone.actor, gone.reason, gone.from_value) == ("pat", "shift moved", "switch to live mode")
    assert scheduled.list_changes(db, include_past=False) == []
    with pytest.raises(scheduled.ScheduleConflict, match="is cancelled: only a pending one"):
        scheduled.cancel(db, row["id"], actor="pat", reason="again")
    assert len(audit_rows(db, "schedule.cancel")) == 1


@pytest.mark.parametrize("kind, target, extra, error, says", [
    ("mode", "party", {}, scheduled.ScheduleRefused, "mode: must be one of message, live"),
    ("publish", "999999", {}, scheduled.ScheduledChangeNotFound, "there is no announcement 999999"),
    ("activate", "999999", {}, scheduled.ScheduledChangeNotFound, "there is no incident 999999"),
    ("publish", "x", {}, scheduled.ScheduleRefused, "'x' is not an id"),
    ("mode", "live", {"reason": "  "}, scheduled.ScheduleRefused, "a reason is required"),
    ("mode", "live", {"carry_over": True}, scheduled.ScheduleRefused, "only an incident activation"),
    ("mode", "live", {"at": timedelta(seconds=-1)}, scheduled.UnusableTime, "is in the past"),
])
def test_what_cannot_be_scheduled_is_refused_and_nothing_is_stored(hotline, kind, target, extra, error, says):
    extra = {"reason": "why", **extra}  # a copy: the parameters serve every backend
    args = dict(kind=kind, target=target, at=utcnow() + extra.pop("at", SOON), actor="olga", **extra)
    with pytest.raises(error, match=says):
        scheduled.add(hotline.db, **args)
    assert scheduled.list_changes(hotline.db) == [] and audit_rows(hotline.db, "schedule.add") == []


def test_a_published_version_cannot_be_scheduled_for_publishing(hotline):
    published = announcements.list_versions(hotline.db, lang="en", topic="main")[0]
    with pytest.raises(scheduled.ScheduleConflict, match="is published already"):
        scheduled.add(hotline.db, kind="publish", target=str(published["id"]), at=utcnow() + SOON, reason="x",
                      actor="ada")


def test_of_two_servers_claiming_at_once_exactly_one_gets_a_due_change(hotline, config):
    row = scheduled.add(hotline.db, kind="mode", target="message", at=utcnow() + SOON, reason="x", actor="olga")
    make_due(hotline.db, row["id"])
    servers = [Database(config.db_url) for _ in range(4)]
    start, got = threading.Barrier(len(servers)), []

    def claim(db):
        start.wait()
        got.append(scheduled.claim_due(db))

    threads = [threading.Thread(target=claim, args=(db,)) for db in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for db in servers:
        db.dispose()
    claimed = [c for c in got if c is not None]
    assert len(got) == 4 and len(claimed) == 1 and claimed[0][0]["id"] == row["id"]
    assert scheduled.claim_due(hotline.db) is None  # carrying out: nobody else takes it


# -- carrying out ----------------------------------------------------------------------------------------------
def test_a_switch_to_live_is_refused_at_its_time_when_the_go_live_check_fails_and_says_so(hotline, app):
    db = hotline.db
    row = scheduled.add(db, kind="mode", target="live", at=utcnow() + SOON, reason="shift starts", actor="olga")
    assert carrying.run_due(hotline) == []  # not yet due
    make_due(db, row["id"])
    ((change_id, status, outcome),) = carrying.run_due(hotline)
    assert (change_id, status) == (row["id"], "refused") and "nobody is on the agent line" in outcome
    assert get_mode(db)[0] == "message" and audit_rows(db, "mode.set") == []
    (refused,) = audit_rows(db, "schedule.refused")
    assert refused.subject == f"scheduled change {row['id']}" and "go-live check found" in refused.to_value
    assert [a["id"] for a in scheduled.alerts(db)] == [row["id"]]
    assert carrying.run_due(hotline) == []  # refused once, not tried again
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'ivr_scheduled_changes{status="refused"} 1.0' in metrics


def test_a_switch_scheduled_with_an_override_is_made_once_in_the_schedulers_name(hotline):
    db = hotline.db
    row = scheduled.add(db, kind="mode", target="live", at=utcnow() + SOON, reason="shift starts", actor="olga",
                        override="agents are on the bridge line")
    make_due(db, row["id"])
    ((_, status, outcome),) = carrying.run_due(hotline)
    assert status == "done" and outcome.startswith("mode message -> live; go-live check overridden")
    assert get_mode(db)[0] == "live" and carrying.run_due(hotline) == []
    (switched,) = audit_rows(db, "mode.set")
    assert switched.actor == f"olga (scheduled change {row['id']})" and switched.reason == "shift starts"
    (overridden,) = audit_rows(db, "preflight.override")
    assert overridden.reason == "agents are on the bridge line" and overridden.actor == switched.actor
    (done,) = audit_rows(db, "schedule.done")
    assert done.to_value == outcome and done.reason == "scheduled by olga"
    assert scheduled.get(db, row["id"])["status"] == "done" and scheduled.alerts(db) == []


def test_a_publish_is_checked_as_callers_would_hear_it_after_and_made_once(hotline):
    db = hotline.db
    version = draft(db, "Details: names and card numbers were taken on the first of December.", topic="details")
    now_problems = [p.what for p in carrying.caller_view.of_hotline(hotline, for_mode="message").problems]
    after = [p.what for p in carrying.problems_after_publish(hotline, version["id"])]
    assert any(p.startswith("en/details") for p in now_problems)
    assert not any(p.startswith("en/details") for p in after) and len(after) == len(now_problems) - 1
    row = scheduled.add(db, kind="publish", target=str(version["id"]), at=utcnow() + SOON, reason="legal signed",
                        actor="ada", override="the Spanish follows at ten")
    # Two-person publishing: planning it asked for a second person's approval; approving it ahead keeps it
    # from callers until its time.
    assert announcements.get(db, version["id"])["requested_by"] == "ada"
    approvals.approve(db, version["id"], actor="bea", reason="read it")
    assert announcements.get(db, version["id"])["status"] == "draft"
    (approved,) = audit_rows(db, "announcement.approve")
    assert approved.actor == "bea" and "as planned" in approved.to_value
    make_due(db, row["id"])
    ((_, status, outcome),) = carrying.run_due(hotline)
    assert status == "done" and outcome.startswith("published version 2 of en/details")
    assert announcements.get(db, version["id"])["status"] == "published"
    (published,) = audit_rows(db, "announcement.publish")
    assert published.actor == f"ada (scheduled change {row['id']})"
    assert len(audit_rows(db, "preflight.override")) == 1 and carrying.run_due(hotline) == []


def test_a_planned_publish_nobody_else_approved_is_refused_at_its_time_and_callers_never_hear_it(hotline):
    db = hotline.db
    version = draft(db, "Details: names and card numbers were taken on the first of December.", topic="details")
    row = scheduled.add(db, kind="publish", target=str(version["id"]), at=utcnow() + SOON, reason="legal signed",
                        actor="ada", override="the Spanish follows at ten")
    make_due(db, row["id"])
    ((_, status, outcome),) = carrying.run_due(hotline)
    assert status == "refused" and "not approved by a second person" in outcome
    assert announcements.get(db, version["id"])["status"] == "draft"
    assert audit_rows(db, "announcement.publish") == []
    assert [a["id"] for a in scheduled.alerts(db)] == [row["id"]]


def test_a_publish_without_an_override_is_refused_while_the_check_finds_problems(hotline):
    db = hotline.db
    version = draft(db)
    row = scheduled.add(db, kind="publish", target=str(version["id"]), at=utcnow() + SOON, reason="x", actor="ada")
    approvals.approve(db, version["id"], actor="bea", reason="read it")
    make_due(db, row["id"])
    ((_, status, outcome),) = carrying.run_due(hotline)
    assert status == "refused" and "it was scheduled without an override" in outcome
    with db.read() as conn:
        assert conn.execute(select(Announcement.status).where(Announcement.id == version["id"])).scalar() == "draft"
    assert audit_rows(db, "announcement.publish") == []


def test_an_activation_is_made_at_its_time_and_one_that_cannot_be_made_fails_with_an_alert(hotline):
    db = hotline.db
    langs = list(hotline.rules.rules.languages)
    new_id = incidents.create(db, title="Second breach", severity="high", exposed="emails", severities=["low", "high"],
                              actor="ada", reason="found")
    bare = scheduled.add(db, kind="activate", target=str(new_id), at=utcnow() + SOON, reason="x", actor="ada")
    carried = scheduled.add(db, kind="activate", target=str(new_id), at=utcnow() + SOON, reason="go", actor="ada",
                            carry_over=True)
    make_due(db, bare["id"])
    ((_, status, outcome),) = carrying.run_due(hotline)
    assert status == "failed"
    assert outcome.startswith(f"not carried out: callers in en, es would hear nothing about incident {new_id}")
    assert [a["id"] for a in scheduled.alerts(db)] == [bare["id"]] and audit_rows(db, "schedule.failed")
    make_due(db, carried["id"])
    ((_, status, outcome),) = carrying.run_due(hotline)
    assert status == "done" and f"incident {new_id} is active; carried over" in outcome
    with db.read() as conn:
        assert incidents.languages_without_announcement(conn, new_id, langs) == []


def test_a_claim_whose_server_died_is_never_carried_out_again_but_failed_with_an_alert(hotline):
    db = hotline.db
    row = scheduled.add(db, kind="mode", target="live", at=utcnow() + SOON, reason="x", actor="olga",
                        override="ok")
    make_due(db, row["id"])
    assert scheduled.claim_due(db) is not None  # a server took it, then died before recording the outcome
    assert carrying.run_due(hotline) == [] and scheduled.get(db, row["id"])["status"] == "carrying-out"
    with db.write() as conn:
        conn.execute(update(ScheduledChange).values(claimed_at=utcnow() - scheduled.STALE - timedelta(seconds=1)))
    assert carrying.run_due(hotline) == []
    gone = scheduled.get(db, row["id"])
    assert gone["status"] == "failed" and gone["outcome"].startswith("interrupted")
    assert get_mode(db)[0] == "message" and [a["id"] for a in scheduled.alerts(db)] == [row["id"]]
