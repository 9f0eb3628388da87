"""Prometheus metrics at /metrics: webhook latency per route (every worker, via prometheus-client's
multiprocess mode under gunicorn), and the hotline's state read from the database at scrape time (calls by
outcome, queue sizes, callbacks waiting, mode), so every server reports the same shared picture."""
from __future__ import annotations

import os
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ivr.store import reads
from ivr.store.models import MODES, utcnow

WEBHOOK_SECONDS = Histogram(
    "ivr_webhook_seconds", "Time to answer a Twilio webhook, by route", ["route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PIN_LOCKS = Counter("ivr_pin_locks", "Staff phone lines locked against PIN guessing, by line and by the limit "
                    "reached (caller: one caller ID; line: every caller)", ["line", "limit"])


class HotlineCollector:
    """Gauges computed from the database when Prometheus scrapes."""

    def __init__(self, hotline):
        self.hotline = hotline

    def collect(self):
        from ivr.store import queues

        db = self.hotline.db
        snap = self.hotline.state.current()
        mode = GaugeMetricFamily("ivr_mode", "1 for the hotline's current mode", labels=["mode"])
        for m in MODES:
            mode.add_metric([m], 1.0 if snap.mode == m else 0.0)
        yield mode
        up = GaugeMetricFamily("ivr_database_up", "1 if the database answered the last state read")
        up.add_metric([], 1.0 if snap.fresh else 0.0)
        yield up
        yield from background_metrics(self.hotline)
        if not snap.fresh:
            return
        since = utcnow() - timedelta(hours=1)
        with db.read() as conn:
            outcomes = reads.outcomes_since(conn, since)
            waiting = reads.callbacks_waiting(conn)
            agents_now = reads.agents_now(conn)
        calls = GaugeMetricFamily("ivr_calls_last_hour", "Calls started in the last hour, by outcome",
                                  labels=["outcome"])
        for outcome, n in outcomes.items():
            calls.add_metric([outcome], n)
        yield calls
        size = GaugeMetricFamily("ivr_queue_waiting", "Callers waiting, by queue", labels=["queue"])
        longest = GaugeMetricFamily("ivr_queue_longest_wait_seconds", "Longest current wait, by queue",
                                    labels=["queue"])
        stats = queues.queue_stats(db, cached=False)
        for name in self.hotline.rules.rules.queues:
            s = stats.get(name)
            size.add_metric([name], s.waiting if s else 0)
            longest.add_metric([name], s.longest_wait_s if s else 0)
        yield size
        yield longest
        healed = CounterMetricFamily("ivr_queue_entries_healed", "Queue entries closed without the Enqueue "
                                     "action: by the call's final status (ended) or the reconciler (expired)",
                                     labels=["how"])
        for how, n in queues.closed_without_queue_result(db).items():
            healed.add_metric([how], n)
        yield healed
        cb = GaugeMetricFamily("ivr_callbacks_waiting", "Callbacks not yet done")
        cb.add_metric([], waiting)
        yield cb
        yield from _jobs_gauge(db)
        yield agents_gauge(agents_now)


def _jobs_gauge(db):
    """Background jobs by status; "failed" are the dead letters an operator should look at (console: Jobs)."""
    from ivr.store import jobs

    gauge = GaugeMetricFamily("ivr_jobs", "Background jobs by status (failed: dead letters)", labels=["status"])
    for status, n in jobs.counts(db).items():
        gauge.add_metric([status], n)
    yield gauge


def agents_gauge(agents_now) -> GaugeMetricFamily:
    """Active agents by state (reads.agents_now): only "on the line" can take a caller now."""
    gauge = GaugeMetricFamily("ivr_agents", "Active agents by state: on the line (free), on a call, wrap-up, "
                              "desk only (no agent-line call up), on a break, signed out", labels=["state"])
    for state in reads.AGENT_STATES:
        gauge.add_metric([state], sum(1 for a in agents_now if a.state == state))
    return gauge


def background_metrics(hotline):
    """This server's `ivr background` as its supervisor recorded it (ivr/worker/supervisor.py)."""
    from ivr.worker.supervisor import read_record

    record = read_record(hotline.config.instance_path) if hotline.config.event_writer == "process" else None
    if record is None:
        return
    restarts = CounterMetricFamily("ivr_background_restarts", "Times `ivr serve` restarted its spool writer "
                                   "(ivr background) because it exited or hung")
    restarts.add_metric([], record.get("restarts", 0))
    yield restarts


def exposition(hotline) -> tuple[bytes, str]:
    """The /metrics body: this process's (or, under gunicorn, every worker's) metrics plus the shared state."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):
            if collector is not None:
                registry.register(collector)
    registry.register(HotlineCollector(hotline))
    return generate_latest(registry), CONTENT_TYPE_LATEST
