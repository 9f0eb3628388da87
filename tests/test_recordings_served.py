"""Under `ivr serve` (gunicorn, `ivr background`, the real database) with a stand-in for Twilio's Recording
resource: a caller's voicemail, recorded by Twilio, is deleted there when the retention lets it go, and
nothing is deleted while the hotline still needs it."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from helpers import wait_for
from ivr.store.db import Database
from ivr.store.models import AuditEntry, Callback, Job, utcnow
from ivr.tools.simulate import HttpTransport, SimulatedCall
from stubs import TwilioRecordings

pytestmark = pytest.mark.slow

ACCOUNT = "AC" + "d" * 32
VOICEMAIL = "RE" + "5" * 32
NO_CALLBACK_NUMBER = "+15555550123"  # the form of a number, but none exists: offered a voicemail instead


def test_a_voicemail_is_deleted_at_twilio_when_the_retention_lets_it_go(config, server):
    twilio = TwilioRecordings(ACCOUNT, AUTH_TOKEN, {VOICEMAIL: b"RIFF a caller's voice"})
    db = Database(config.db_url)
    try:
        srv = server(TWILIO_ACCOUNT_SID=ACCOUNT, IVR_TWILIO_API_URL=twilio.origin, IVR_HOUSEKEEPING_SECONDS="0.5")
        # A caller nobody could call back asks for a person and leaves a voicemail; Twilio keeps the recording.
        call = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0", "1"], caller=NO_CALLBACK_NUMBER,
                             recording_url=twilio.url(VOICEMAIL)).run()
        assert [h.kind for h in call.heard].count("record") == 1

        def callback():
            with db.read() as conn:
                return conn.execute(select(Callback.id, Callback.status, Callback.voicemail_url)
                                    .where(Callback.call_sid == call.call_sid)).first()

        owed = wait_for(callback, timeout=30)
        assert owed is not None and owed.voicemail_url == twilio.url(VOICEMAIL)
        time.sleep(2)  # four housekeeping passes: an owed callback's voicemail is needed, and stays
        assert VOICEMAIL in twilio.recordings and ("DELETE" not in {m for m, _ in twilio.requests})

        # Done a week ago and more: the retention drops the link, and the job has Twilio delete the recording.
        with db.write() as conn:
            conn.execute(update(Callback).where(Callback.id == owed.id).values(
                status="done", done_at=utcnow() - timedelta(days=8)))
        assert wait_for(lambda: VOICEMAIL not in twilio.recordings, timeout=30)
        assert callback().voicemail_url is None
        assert twilio.requests == [("DELETE", f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{VOICEMAIL}.json")]
        def finished():
            with db.read() as conn:
                return conn.execute(select(Job.result).where(Job.kind == "recording_delete", Job.status == "done")
                                    ).first()

        job = wait_for(finished, timeout=30)  # the job's outcome is recorded just after Twilio's answer
        assert job is not None
        with db.read() as conn:
            said = conn.execute(select(AuditEntry.actor, AuditEntry.to_value, AuditEntry.reason)
                                .where(AuditEntry.action == "recording.deleted")).all()
        assert json.loads(job.result) == {"deleted": VOICEMAIL}
        assert said == [("retention", "deleted at Twilio", "voicemail kept 7 days")]
    finally:
        twilio.close()
        db.dispose()
