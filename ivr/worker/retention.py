"""Housekeeping `ivr background` runs: personal data kept no longer than the hotline promises.

Every `IVR_HOUSEKEEPING_SECONDS` it applies `IVR_CALLBACK_RETENTION_DAYS` (default 7) to callbacks: open
ones that old close as expired, and closed ones lose what is left of the caller (voicemail, note): the
voicemail's link here, and the recording itself at Twilio (a job: ivr/worker/recording_delete.py).
A closed callback's full number is already gone (ivr/store/callbacks.py deletes it when it closes).
Dead letters (jobs failed for good) keep their payload so ops can retry them, for as long: then what they
hold of a caller goes too, and they can no longer be retried. References keyed in on the phone (key 8) are
kept only while they count towards the limits (the rules' verification.window_minutes).
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from ivr.store import callbacks, jobs, sealed, verification
from ivr.store.audit import audit
from ivr.store.models import utcnow
from ivr.worker.jobs import scrub_personal

log = logging.getLogger(__name__)


def run_once(hotline) -> dict:
    days = hotline.config.callback_retention_days
    done = callbacks.apply_retention(hotline.db, days)
    if done["scrubbed"]:
        with hotline.db.write() as conn:
            audit(conn, actor="retention", action="callback.scrub", subject="callbacks",
                  to_value=f"{done['scrubbed']} closed callbacks older than {days} days: voicemail links and notes "
                           f"deleted; {done['recordings']} voicemail recordings to be deleted at Twilio")
    done["dead_letters_scrubbed"] = dead = scrub_dead_letters(hotline, days)
    if dead:
        with hotline.db.write() as conn:
            audit(conn, actor="retention", action="job.scrub", subject="dead letters",
                  to_value=f"{dead} jobs failed for good more than {days} days ago: callers' numbers deleted")
    verification.forget_old_attempts(hotline.db, hotline.rules.rules.verification)
    if done["expired"] or done["scrubbed"] or dead:
        log.info("retention (%d days): %d callbacks expired, %d scrubbed; %d dead letters scrubbed", days,
                 done["expired"], done["scrubbed"], dead)
    return done


def scrub_dead_letters(hotline, days: int) -> int:
    """Dead letters older than `days` keep only what their handler keeps of a finished job."""
    stale = jobs.dead_to_scrub(hotline.db, utcnow() - timedelta(days=days))
    for job_id, kind, payload in stale:
        handler = hotline.jobs.handlers.get(kind)
        scrub = handler.scrub if handler and handler.scrub else scrub_personal
        jobs.scrub_dead(hotline.db, job_id, scrub(sealed.opened_for_scrub(hotline.db, payload)), days)
    return len(stale)


def start(hotline, stop: threading.Event, turn=None) -> threading.Thread:
    """Run the housekeeping now and then every interval, until `stop` is set; with `turn` (a
    HousekeepingLock), only while this server holds it."""

    def loop():
        while True:
            try:
                if turn is None or turn.mine():
                    run_once(hotline)
            except Exception as exc:  # a database outage must not end housekeeping for good
                log.warning("housekeeping: %s", exc)
            if stop.wait(hotline.config.housekeeping_seconds):
                return

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread
