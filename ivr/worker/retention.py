"""Housekeeping `ivr background` runs: personal data kept no longer than the hotline promises.

Every `IVR_HOUSEKEEPING_SECONDS` it applies `IVR_CALLBACK_RETENTION_DAYS` (default 7) to callbacks: open
ones that old close as expired, and closed ones lose what is left of the caller (voicemail link, note).
A closed callback's full number is already gone (ivr/store/callbacks.py deletes it when it closes).
"""
from __future__ import annotations

import logging
import threading

from ivr.store import callbacks
from ivr.store.audit import audit

log = logging.getLogger(__name__)


def run_once(hotline) -> dict:
    days = hotline.config.callback_retention_days
    done = callbacks.apply_retention(hotline.db, days)
    if done["scrubbed"]:
        with hotline.db.write() as conn:
            audit(conn, actor="retention", action="callback.scrub", subject="callbacks",
                  to_value=f"{done['scrubbed']} closed callbacks older than {days} days: voicemail links and notes deleted")
    if done["expired"] or done["scrubbed"]:
        log.info("callback retention (%d days): %d expired, %d scrubbed", days, done["expired"], done["scrubbed"])
    return done


def start(hotline, stop: threading.Event) -> threading.Thread:
    """Run the housekeeping now and then every interval, until `stop` is set."""

    def loop():
        while True:
            try:
                run_once(hotline)
            except Exception as exc:  # a database outage must not end housekeeping for good
                log.warning("housekeeping: %s", exc)
            if stop.wait(hotline.config.housekeeping_seconds):
                return

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread
