"""The Twilio credentials are never sent over plain http (issue 23's smaller holes; the CSV cells' hidden
formulas are in tests/test_console.py's TRICKS)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import AUTH_TOKEN
from test_admin_line import ACCOUNT, REC_PATH, admin_call, audits

from ivr.media.recordings import RecordingRefused, fetch
from ivr.store.models import Job
from ivr.store.users import add_user


@pytest.fixture
def plain_http_app(config):
    """An admin line whose allow-list names a recording host over plain http, not on this machine."""
    from ivr.app import create_app

    cfg = config.with_overrides(twilio_account_sid=ACCOUNT, recording_origins=("http://recordings.example.com",))
    app = create_app(cfg)
    add_user(app.extensions["ivr"].db, "dana", "admin", actor="test", phone_pin="482916")
    yield app
    app.extensions["ivr"].close()


def test_twilio_credentials_are_never_sent_over_plain_http_the_job_fails_and_says_why(plain_http_app):
    hotline = plain_http_app.extensions["ivr"]
    admin_call(plain_http_app, ["482916", "1", "1", "1"], recording_url="http://recordings.example.com" + REC_PATH)
    assert hotline.jobs.run_one()
    with hotline.db.read() as conn:
        status, error = conn.execute(select(Job.status, Job.last_error).where(Job.kind == "phone_recording")).one()
    assert status == "failed" and "plain http" in error and "only over https" in error
    assert "only over https" in audits(hotline, "announcement.phone_failed")[0].to_value


@pytest.mark.parametrize("url", ["http://10.0.0.8/r", "http://api.twilio.com.evil.test/r", "http://[fe80::1]/r"])
def test_plain_http_is_refused_for_every_host_but_loopback(url):
    with pytest.raises(RecordingRefused, match="only over https"):
        fetch(url, origins=(url.rsplit("/", 1)[0],), auth=(ACCOUNT, AUTH_TOKEN), max_bytes=10)
