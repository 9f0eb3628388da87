"""`ivr background`: one per server, started, restarted and stopped last by gunicorn's master (gunicorn_conf.py).

It writes the web workers' spooled call records to the database in batches (ivr/spool/writer.py), works
the background jobs (ivr/worker/jobs.py), heals the queue state (ivr/store/queues.py reconcile), applies
the callback retention (ivr/worker/retention.py), carries out the changes planned ahead when they are due
(ivr/ops/scheduled.py: each by one server only) and sends notice campaigns (ivr/worker/notices.py), below
the web workers' CPU priority; it drains and stops on SIGTERM, SIGINT, or when the server that started it
is gone. Of several servers' backgrounds, only the one holding the housekeeping lock heals queues and
applies retention (ivr/worker/housekeeping_lock.py).
"""
from __future__ import annotations

import logging
import os
import signal
import threading

from ivr.config import Config
from ivr.hotline import Hotline
from ivr.ops import scheduled
from ivr.ops.logs import configure
from ivr.ops.metrics import SpoolMetrics
from ivr.spool.writer import SpoolWriter
from ivr.worker import notices, retention
from ivr.worker.housekeeping_lock import HousekeepingLock

log = logging.getLogger("ivr.background")


def run_background(cfg: Config) -> None:
    """Run until told to stop, then write what is left and return."""
    configure(cfg.log_format, "background")
    # Below the web workers: on a busy server a webhook waiting for a CPU behind this batch writer would
    # be a caller waiting; the writer only needs to keep up over seconds (the spool holds the rest).
    # Where the kernel groups sessions for scheduling (autogroup), this counts only within our own
    # session: see "What runs on each server" in docs/operations.md.
    nice = cfg.background_nice
    try:
        os.nice(nice)
    except OSError:
        pass
    hotline = Hotline.build(cfg, background=True)
    stop = threading.Event()
    parent = os.getppid()

    def _stop(*_):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _watch_parent():  # the server that started us is gone (even by kill -9): drain and leave
        while not stop.wait(1.0):
            if parent != 1 and os.getppid() != parent:
                log.warning("the server that started this writer is gone: stopping")
                stop.set()

    threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()
    # The writer first: on PostgreSQL it adds a "connect" listener to the engine, and adding one while
    # another thread makes the first connection (iterating the listeners) raised "deque mutated during
    # iteration" in that thread (housekeeping, 2 of 7 starts). Threads that connect start after it.
    writer = SpoolWriter(hotline.db, cfg.spool_dir, cfg.event_flush_interval, nice=nice)
    writer.observer = SpoolMetrics()  # the backlog and records lost, for /metrics and /healthz
    turn = HousekeepingLock(hotline.db)
    retention.start(hotline, stop, turn)  # callbacks' personal data kept no longer than promised
    if cfg.event_writer == "process" and not cfg.jobs_in_app:
        hotline.jobs.ensure_started()
    scheduled.start(hotline, stop)  # mode switches, publishes, activations planned for a time
    sender = notices.start(hotline, stop)  # breach-notice campaigns (docs/notify.md)
    threading.Thread(target=_reconcile_queues, args=(hotline, stop, cfg.queue_reconcile_s, turn),
                     name="queue-reconcile", daemon=True).start()
    log.info("spool writer started on %s (pid %d)", cfg.spool_dir, os.getpid())
    writer.run(stop)
    sender.join(notices.REST_TIMEOUT_S + 5)  # its texts in flight recorded as sent, not left to be resolved
    hotline.jobs.stop()
    turn.release()
    log.info("spool writer stopped: %d records written", writer.written)
    hotline.close()


def _reconcile_queues(hotline: Hotline, stop: threading.Event, every: float, turn: HousekeepingLock) -> None:
    """Every so often, close queue entries whose call must have ended long ago (ivr/store/queues.py)."""
    from ivr.store import queues

    while not stop.wait(every):
        try:
            if not turn.mine():
                continue
            limits = {name: q.max_wait_minutes for name, q in hotline.rules.rules.queues.items()}
            for entry in queues.reconcile(hotline.db, limits):
                log.warning("queue entry of call %s in %s closed after %d s waiting: no Enqueue action or final "
                            "status arrived", entry["call_sid"][:64], entry["queue"], entry["waited_s"])
        except Exception:  # the database may be down: try again next time
            log.exception("queue reconciliation failed")
