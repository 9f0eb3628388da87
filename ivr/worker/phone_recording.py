"""The phone-recording job: fetch an admin's recording from Twilio, make it phone-ready, publish it (with
two-person publishing: a draft awaiting a second person's approval, ivr/store/approvals.py), then have
Twilio's copy deleted (ivr/worker/recording_delete.py)."""
from __future__ import annotations

from ivr.media.recordings import fetch
from ivr.store import announcements, jobs
from ivr.store.audit import audit
from ivr.worker.jobs import PermanentError


def publish(hotline, payload: dict, job=None) -> dict:
    """Fetch the recording (allow-listed origins only) and publish it as a new announcement version (or ask
    for approval, as the configuration says)."""
    cfg = hotline.config
    auth = (cfg.twilio_account_sid, cfg.twilio_auth_token) if cfg.twilio_account_sid else None
    try:
        data = fetch(payload["recording_url"], origins=cfg.recording_origins, auth=auth,
                     max_bytes=cfg.upload_max_bytes)
        row = announcements.create_from_audio(
            hotline.db, cfg, hotline.rules.rules.languages, data=data, lang=payload["lang"],
            topic=payload["topic"], actor=payload["actor"], source="phone", publish=True,
            reason="recorded on the admin phone line")
    except (announcements.AnnouncementError, ValueError) as exc:  # RecordingRefused, AudioRejected
        raise PermanentError(str(exc)) from exc
    # Ours now, as announcement version N: Twilio's copy is deleted now rather than when planned (ivr/core/
    # admin_line.py `recorded`). A job that failed leaves it to that plan, to be retried until then.
    with hotline.db.write() as conn:
        jobs.delete_recording_at_twilio(conn, payload["recording_url"], payload["actor"],
                                        f"{payload['lang']}/{payload['topic']}: kept as announcement version "
                                        f"{row['version']}")
    return {"announcement_id": row["id"], "version": row["version"], "media": row["media_sha256"]}


def failed(hotline, payload: dict, error: str) -> None:
    """Tell the audit log the admin's recording was not published, and why."""
    with hotline.db.write() as conn:
        audit(conn, actor=payload.get("actor", "unknown"), action="announcement.phone_failed",
              subject=f"{payload.get('lang')}/{payload.get('topic')}", to_value=error[:500],
              reason="phone recording could not be published")
