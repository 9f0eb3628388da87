"""Deleting a recording at Twilio once the hotline is done with it (ivr/core/effects.py `delete_recording`).

Twilio keeps every recording a <Record> made until someone deletes it: a caller's voicemail when the
retention drops our link to it (IVR_CALLBACK_RETENTION_DAYS) or a newer one replaces it, and an admin's
announcement once it was fetched and published, discarded or recorded again, and at the latest
IVR_CALLBACK_RETENTION_DAYS after it was made (ivr/core/admin_line.py `recorded`). The job asks Twilio's Recording
resource to delete it (DELETE .../Accounts/{AccountSid}/Recordings/{Sid}.json, answered 204 No Content:
https://www.twilio.com/docs/voice/api/recording#delete-a-recording-resource), with the account's
credentials, at api.twilio.com or the stand-in at IVR_TWILIO_API_URL: never at the host a request named.
A recording Twilio no longer has (404, error 20404) is as good as deleted. Credentials refused (401, 403)
will not change by trying again; anything else (a timeout, 429, a 5xx) is tried again with the job queue's
back-off, and a job that fails for good stays on the Jobs page as a dead letter, saying why.
"""
from __future__ import annotations

from twilio.base.exceptions import TwilioRestException

from ivr.store.audit import audit
from ivr.worker.jobs import PermanentError
from ivr.worker.sms import rest_client


def delete(hotline, payload: dict, job=None) -> dict:
    cfg = hotline.config
    sid = payload["recording_sid"]
    if not (cfg.twilio_account_sid and cfg.twilio_auth_token):
        raise PermanentError(f"recording {sid} cannot be deleted at Twilio: set TWILIO_ACCOUNT_SID and "
                             "TWILIO_AUTH_TOKEN")
    try:
        rest_client(cfg).api.v2010.accounts(payload["account_sid"]).recordings(sid).delete()
        result = {"deleted": sid}
    except TwilioRestException as exc:
        if exc.status in (401, 403):
            raise PermanentError(f"Twilio refused the account's credentials ({exc.status}): recording {sid} "
                                 "is still there") from exc
        if exc.status != 404:
            raise
        result = {"deleted": sid, "already_gone": True}
    with hotline.db.write() as conn:
        audit(conn, actor=payload.get("actor") or "hotline", action="recording.deleted", subject=f"recording {sid}",
              to_value="no longer at Twilio" if result.get("already_gone") else "deleted at Twilio",
              reason=payload.get("why") or "")
    return result


def failed(hotline, payload: dict, error: str) -> None:
    """A recording the hotline could not delete stays at Twilio: the audit log says so, and why."""
    with hotline.db.write() as conn:
        audit(conn, actor=payload.get("actor") or "hotline", action="recording.delete_failed",
              subject=f"recording {payload.get('recording_sid')}", to_value=error[:500],
              reason=payload.get("why") or "")
