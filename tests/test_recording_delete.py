"""Recordings deleted at Twilio once the hotline is done with them: the job against a stand-in for Twilio's
Recording resource (204, 404, a server error, refused credentials, no account configured), and which URLs
name a recording Twilio made for us."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from ivr.core.effects import RECORDING_DELETE_JOB, delete_recording, recording_sids
from ivr.store import jobs
from ivr.store.models import AuditEntry, Job, utcnow
from stubs import TwilioRecordings

ACCOUNT = "AC" + "d" * 32
SID, OTHER = "RE" + "1" * 32, "RE" + "2" * 32


@pytest.fixture
def twilio():
    stand_in = TwilioRecordings(ACCOUNT, AUTH_TOKEN, {SID: b"RIFF voicemail", OTHER: b"RIFF another"})
    yield stand_in
    stand_in.close()


@pytest.fixture
def hotline_at(config, twilio):
    """hotline_at(**overrides): an app whose REST calls go to the stand-in, with the account's credentials."""
    from ivr.app import create_app

    made = []

    def make(**overrides):
        app = create_app(config.with_overrides(**{"twilio_account_sid": ACCOUNT, "twilio_api_url": twilio.origin,
                                                  **overrides}))
        made.append(app)
        return app.extensions["ivr"]

    yield make
    for app in made:
        app.extensions["ivr"].close()


def queue_deletion(hotline, url: str) -> None:
    job = delete_recording(url, "retention", "voicemail kept 7 days")
    with hotline.db.write() as conn:
        jobs.enqueue(conn, job.kind, job.payload, job.dedupe_key)


def the_job(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(Job.status, Job.attempts, Job.result, Job.last_error)).one()


def audit_lines(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject, AuditEntry.to_value,
                                   AuditEntry.reason).where(AuditEntry.action.like("recording.%"))).all()


def test_the_recording_is_deleted_at_twilio_and_the_audit_log_says_who_and_why(hotline_at, twilio):
    hotline = hotline_at()
    queue_deletion(hotline, twilio.url(SID))
    assert hotline.jobs.run_one()
    assert twilio.requests == [("DELETE", f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}.json")]
    assert set(twilio.recordings) == {OTHER}  # that one, and only that one
    status, attempts, result, _ = the_job(hotline)
    assert (status, attempts, json.loads(result)) == ("done", 1, {"deleted": SID})
    assert audit_lines(hotline) == [("retention", "recording.deleted", f"recording {SID}", "deleted at Twilio",
                                     "voicemail kept 7 days")]


def test_a_recording_twilio_no_longer_has_counts_as_deleted(hotline_at, twilio):
    hotline = hotline_at()
    del twilio.recordings[SID]
    queue_deletion(hotline, twilio.url(SID) + ".mp3")
    assert hotline.jobs.run_one()
    assert the_job(hotline)[:2] == ("done", 1)
    assert audit_lines(hotline)[0][3] == "no longer at Twilio"


def test_a_server_error_is_tried_again_and_then_the_recording_goes(hotline_at, twilio):
    hotline = hotline_at()
    twilio.fail_next = [503]
    queue_deletion(hotline, twilio.url(SID))
    assert hotline.jobs.run_one()
    status, attempts, _, error = the_job(hotline)
    assert (status, attempts) == ("pending", 1) and "503" in error and SID in twilio.recordings
    assert audit_lines(hotline) == []  # nothing deleted yet, nothing said
    with hotline.db.write() as conn:  # time passes: the back-off is over
        conn.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
    assert hotline.jobs.run_one()
    assert the_job(hotline)[:2] == ("done", 2) and SID not in twilio.recordings


def test_refused_credentials_leave_a_dead_letter_and_say_the_recording_is_still_there(hotline_at, twilio, config):
    hotline = hotline_at(twilio_auth_token="not-the-token")
    queue_deletion(hotline, twilio.url(SID))
    assert hotline.jobs.run_one()
    status, attempts, _, error = the_job(hotline)
    assert (status, attempts) == (jobs.DEAD, 1) and "credentials (401)" in error
    assert SID in twilio.recordings
    (line,) = audit_lines(hotline)
    assert line[1:3] == ("recording.delete_failed", f"recording {SID}") and "still there" in line[3]


def test_without_an_account_nothing_is_asked_of_twilio_and_the_reason_is_kept(hotline_at, twilio):
    hotline = hotline_at(twilio_account_sid="")
    queue_deletion(hotline, twilio.url(SID))
    assert hotline.jobs.run_one()
    status, _, _, error = the_job(hotline)
    assert status == jobs.DEAD and "set TWILIO_ACCOUNT_SID" in error and twilio.requests == []


def test_one_job_per_recording_however_often_it_is_asked_for(hotline_at, twilio):
    hotline = hotline_at()
    queue_deletion(hotline, twilio.url(SID))
    queue_deletion(hotline, twilio.url(SID) + ".wav")
    with hotline.db.read() as conn:
        assert conn.execute(select(Job.kind)).scalars().all() == [RECORDING_DELETE_JOB]


@pytest.mark.parametrize("url, sids", [
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}", (ACCOUNT, SID)),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}.mp3", (ACCOUNT, SID)),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}.json?x=1", (ACCOUNT, SID)),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}?x=1?y=2", (ACCOUNT, SID)),
    (f"https://example.com/a?next=/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}", None),  # in the query
    (f"http://127.0.0.1:8080/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}", (ACCOUNT, SID)),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}/Transcriptions", None),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}1", None),  # 33 digits
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'1' * 31}", None),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/CA{'1' * 32}", None),
    (f"https://api.twilio.com/2010-04-01/Accounts/AC{'d' * 31}/Recordings/{SID}", None),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'A' * 32}", None),  # SIDs are lower-case
    ("https://example.com/voicemail/RE1", None),
    ("", None),
    (None, None),
])
def test_which_urls_name_a_recording_twilio_made(url, sids):
    assert recording_sids(url) == sids
    job = delete_recording(url, "dana", "discarded on the admin line")
    if sids is None:
        assert job is None
    else:
        assert (job.kind, job.dedupe_key, job.after_s) == (RECORDING_DELETE_JOB, f"recording_delete:{SID}", 0)
        assert job.payload == {"account_sid": ACCOUNT, "recording_sid": SID, "actor": "dana",
                               "why": "discarded on the admin line"}
