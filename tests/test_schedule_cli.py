"""`ivr schedule`: plan a switch, a publish or an activation, list the plan, cancel; a past or unreadable time
is refused with a clear error and nothing is stored."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from test_scheduled_changes import audit_rows, draft
from ivr.ops.cli import main
from ivr.store import incidents, scheduled


@pytest.fixture
def ivr(config):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key, "IVR_TIMEZONE": "America/New_York"}

    def run(*args, ok=True):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_a_switch_is_planned_in_the_hotlines_zone_listed_and_cancelled(ivr, hotline):
    out = ivr("schedule", "mode", "live", "--at", "2099-12-07T08:00", "--reason", "shift starts", "--by", "olga").output
    (row,) = scheduled.list_changes(hotline.db)
    assert out.startswith(f"scheduled change {row['id']}: switch to live mode at 2099-12-07 13:00:00 UTC "
                          "(2099-12-07 08:00 EST America/New_York), by olga")
    assert "refused if that finds problems" in out
    listed = ivr("schedule", "list").output.splitlines()
    assert listed[0].startswith("1 pending; 0 done, 0 refused")
    assert "2099-12-07 13:00:00 UTC" in listed[1] and "switch to live mode  by olga: shift starts" in listed[1]
    cancelled = ivr("schedule", "cancel", str(row["id"]), "--reason", "shift moved", "--by", "pat").output
    assert "cancelled: switch to live mode will not be carried out" in cancelled
    assert ivr("schedule", "list").output.splitlines()[1:] == []
    everything = ivr("schedule", "list", "--all").output
    assert "cancelled" in everything and "cancelled: shift moved" in everything
    assert [r.actor for r in audit_rows(hotline.db, "schedule.cancel")] == ["pat"]


def test_a_publish_and_an_activation_are_planned_with_their_options(ivr, hotline):
    version = draft(hotline.db)
    out = ivr("schedule", "publish", str(version["id"]), "--at", "2099-12-07T09:00+00:00", "--reason", "legal signed",
              "--override", "the Spanish follows").output
    assert f"publish announcement {version['id']}" in out and "09:00:00 UTC" in out
    incident = incidents.list_incidents(hotline.db)[0]["id"]  # PostgreSQL's ids go on across tests
    ivr("schedule", "activate", str(incident), "--at", "2099-12-08T09:00Z", "--carry-over", "--reason", "next phase")
    rows = scheduled.list_changes(hotline.db)
    assert [(r["kind"], r["override"], r["carry_over"]) for r in rows] == [
        ("publish", "the Spanish follows", False), ("activate", None, True)]
    assert "go-live check overridden: the Spanish follows" in ivr("schedule", "list").output


@pytest.mark.parametrize("args, says", [
    (("mode", "live", "--at", "2020-01-01T08:00", "--reason", "x"), "is in the past"),
    (("mode", "live", "--at", "tomorrow 8am", "--reason", "x"), "is not a time: give ISO 8601"),
    (("publish", "424242", "--at", "2099-01-01T08:00", "--reason", "x"), "there is no announcement 424242"),
    (("mode", "live", "--at", "2099-01-01T08:00", "--reason", " "), "a reason is required"),
])
def test_what_cannot_be_planned_is_refused_with_a_clear_error(ivr, hotline, args, says):
    result = ivr("schedule", *args, ok=False)
    assert result.exit_code == 1 and says in result.output and "(nothing was changed)" in result.output
    assert scheduled.list_changes(hotline.db) == []


def test_cancelling_a_change_that_is_not_there_says_so(ivr):
    result = ivr("schedule", "cancel", "4242", "--reason", "x", ok=False)
    assert result.exit_code == 1 and "there is no scheduled change 4242" in result.output
