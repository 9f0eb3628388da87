"""Issue 23's smaller holes that an app in a test client shows: invisible characters before a formula in a
CSV export, and the Twilio credentials never sent over plain http."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import insert, select

from conftest import AUTH_TOKEN
from test_admin_line import ACCOUNT, REC_PATH, admin_call, audits
from test_console import as_role, page, users  # noqa: F401  (fixtures)

from ivr.media.recordings import RecordingRefused, fetch
from ivr.store.models import AuditEntry, Job, utcnow
from ivr.store.users import add_user

# Each hides a formula behind something a reader does not see or an importer strips.
HIDDEN = ["\u200b=HYPERLINK(\"http://evil\")", "\ufeff=1+2", "\"=1+2", "'=1+2", "\u200b+1+2", "\ufeff-2+3",
          "\"@SUM(A1)", "\u2060\t=1", "\u200e\r=1", "\u00ad=1", "fine;\u200b=1+2", "\u201c=1+2"]


def test_csv_exports_neutralise_a_formula_behind_invisible_characters_or_a_quote(as_role, hotline):
    with hotline.db.write() as conn:
        for n, trick in enumerate(HIDDEN):
            conn.execute(insert(AuditEntry).values(at=utcnow(), actor="otto", action=f"hidden.{n}", subject="x",
                                                   reason=trick))
        conn.execute(insert(AuditEntry).values(at=utcnow(), actor="otto", action="hidden.plain", subject="x",
                                               reason="\u200bzero-width, then words - and \"quotes\""))
    raw = page(as_role("viewer").get("/console/audit.csv", query_string={"action": "hidden."}))
    rows = {r[2]: r[6] for r in csv.reader(io.StringIO(raw))}
    for n, trick in enumerate(HIDDEN):
        assert rows[f"hidden.{n}"] == "'" + trick, repr(trick)
    assert rows["hidden.plain"] == "\u200bzero-width, then words - and \"quotes\""  # text is left alone


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
        status, error = conn.execute(select(Job.status, Job.last_error)).one()
    assert status == "failed" and "plain http" in error and "only over https" in error
    assert "only over https" in audits(hotline, "announcement.phone_failed")[0].to_value


@pytest.mark.parametrize("url", ["http://10.0.0.8/r", "http://api.twilio.com.evil.test/r", "http://[fe80::1]/r"])
def test_plain_http_is_refused_for_every_host_but_loopback(url):
    with pytest.raises(RecordingRefused, match="only over https"):
        fetch(url, origins=(url.rsplit("/", 1)[0],), auth=(ACCOUNT, AUTH_TOKEN), max_bytes=10)
