"""Prometheus metrics at /metrics: webhook latency per route (every worker, via prometheus-client's
multiprocess mode under gunicorn), and the hotline's state read from the database at scrape time (calls by
outcome, queue sizes, callbacks waiting, mode), so every server reports the same shared picture."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ivr.spool.appender import SpoolObserver
from ivr.store import reads
from ivr.store.models import MODES, utcnow

WEBHOOK_SECONDS = Histogram(
    "ivr_webhook_seconds", "Time to answer a Twilio webhook, by route", ["route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PIN_LOCKS = Counter("ivr_pin_locks", "Staff phone lines locked against PIN guessing, by line and by the limit "
                    "reached (caller: one caller ID; line: every caller, before lines slowed down instead)",
                    ["line", "limit"])
# Raised by ivr/ops/under_attack.py and ivr/store/pin_guard.py when an attack starts; ivr_under_attack says
# what is under attack now (computed from the database at each scrape).
ATTACKS_STARTED = Counter("ivr_attacks_started", "Attacks detected: PIN guessing on a staff line, or sign-in "
                          "guessing at one console account from many addresses", ["target"])


# The spool (ivr/spool/appender.py, ivr/spool/writer.py): web workers count what they hold and lose, the
# spool writer (`ivr background`) what waits after each pass. Read back by spool_state() for every surface.
SPOOL_LOST = Counter("ivr_spool_records_lost", "Call records dropped for good: the spool's disk full and the "
                     "worker's memory bound reached (memory-full), still held at exit (exit), or refused by the "
                     "database with nowhere to set them aside (refused); by record type", ["reason", "record"])
SPOOL_HELD = Gauge("ivr_spool_held_records", "Records web workers hold in memory: the spool's disk refused them; "
                   "by record type", ["record"], multiprocess_mode="livesum")
SPOOL_HELD_BYTES = Gauge("ivr_spool_held_bytes", "Bytes of the records web workers hold in memory",
                         multiprocess_mode="livesum")
SPOOL_HELD_SINCE = Gauge("ivr_spool_held_oldest_timestamp_seconds", "When the oldest record a worker holds in "
                         "memory was made (0: none)", multiprocess_mode="liveall")
SPOOL_BACKLOG = Gauge("ivr_spool_backlog_records", "Records the spool writer read and could not write yet",
                      multiprocess_mode="mostrecent")
SPOOL_BACKLOG_BYTES = Gauge("ivr_spool_backlog_bytes", "Bytes in the spool not yet written to the database",
                            multiprocess_mode="mostrecent")
SPOOL_BACKLOG_SINCE = Gauge("ivr_spool_backlog_oldest_timestamp_seconds", "When the oldest record the writer "
                            "could not write yet was made (0: none)", multiprocess_mode="mostrecent")


class SpoolMetrics(SpoolObserver):
    """What the spool reports, as Prometheus metrics (every process of a server: multiprocess mode)."""

    def lost(self, records: int, reason: str, record_type: str) -> None:
        SPOOL_LOST.labels(reason, record_type).inc(records)

    def held(self, records: dict[str, int], nbytes: int, oldest_at: float | None) -> None:
        for record_type, n in records.items():
            SPOOL_HELD.labels(record_type).set(n)
        SPOOL_HELD_BYTES.set(nbytes)
        SPOOL_HELD_SINCE.set(oldest_at or 0)

    def backlog(self, records: int, nbytes: int, oldest_at: float | None) -> None:
        SPOOL_BACKLOG.set(records)
        SPOOL_BACKLOG_BYTES.set(nbytes)
        SPOOL_BACKLOG_SINCE.set(oldest_at or 0)


@dataclass(frozen=True)
class SpoolState:
    """The spool of this server as every surface shows it (/metrics, /healthz, the console)."""

    lost: int  # since the server started
    records: int  # waiting: read by the writer and not written, or held in a worker's memory
    nbytes: int
    oldest_age_s: float | None  # how long the oldest waiting record has waited


def spool_state(now: float | None = None) -> SpoolState:
    """Read the spool's metrics back: from every process's files under gunicorn, else from this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        families = multiprocess.MultiProcessCollector(None).collect()
    else:
        families = [f for m in (SPOOL_LOST, SPOOL_HELD, SPOOL_HELD_BYTES, SPOOL_HELD_SINCE, SPOOL_BACKLOG,
                                SPOOL_BACKLOG_BYTES, SPOOL_BACKLOG_SINCE) for f in m.collect()]
    sums: dict[str, float] = {}
    oldest: list[float] = []
    for family in families:
        for sample in family.samples:
            if sample.name.endswith("_timestamp_seconds"):
                if sample.value > 0:
                    oldest.append(sample.value)
            elif sample.name.startswith("ivr_spool_") and not sample.name.endswith("_created"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    now = time.time() if now is None else now
    return SpoolState(lost=int(sums.get("ivr_spool_records_lost_total", 0)),
                      records=int(sums.get("ivr_spool_held_records", 0) + sums.get("ivr_spool_backlog_records", 0)),
                      nbytes=int(sums.get("ivr_spool_held_bytes", 0) + sums.get("ivr_spool_backlog_bytes", 0)),
                      oldest_age_s=max(0.0, now - min(oldest)) if oldest else None)


def count_held_as_lost(pid: int) -> int:
    """A web worker died holding records in memory (killed: it could not count them itself): count them
    lost, from its own figures (the master calls this before prometheus-client forgets the worker)."""
    from prometheus_client.mmap_dict import MmapedDict

    path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"gauge_livesum_{pid}.db")
    if not os.path.exists(path):
        return 0
    total = 0
    for key, value, _, _ in MmapedDict.read_all_values_from_file(path):
        name, _, labels, _ = json.loads(key)
        if name == "ivr_spool_held_records" and value > 0:
            SPOOL_LOST.labels("worker-died", labels.get("record", "")).inc(value)
            total += int(value)
    return total


class SpoolCollector:
    """The age of the oldest waiting record, computed when Prometheus scrapes (a stored age would go stale)."""

    def collect(self):
        state = spool_state()
        age = GaugeMetricFamily("ivr_spool_oldest_unwritten_age_seconds", "How long the oldest call record not "
                                "yet in the database has waited (0: none waits)")
        age.add_metric([], state.oldest_age_s or 0.0)
        yield age


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
        yield _scheduled_gauge(db)
        yield agents_gauge(agents_now)
        from ivr.ops.under_attack import gauge as attack_gauge

        yield attack_gauge(self.hotline)


def _by_status(name: str, what: str, counts: dict[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, what, labels=["status"])
    for status, n in counts.items():
        gauge.add_metric([status], n)
    return gauge


def _jobs_gauge(db):
    """Background jobs by status; "failed" are the dead letters an operator should look at (console: Jobs)."""
    from ivr.store import jobs

    yield _by_status("ivr_jobs", "Background jobs by status (failed: dead letters)", jobs.counts(db))


def _scheduled_gauge(db) -> GaugeMetricFamily:
    """Changes planned ahead by status: a rise in "refused" (the go-live check failed at their time) or "failed"
    is the alert (ivr/ops/scheduled.py); the dashboard shows the same rows."""
    from ivr.store import scheduled

    return _by_status("ivr_scheduled_changes", "Changes planned ahead, by status (refused: the go-live check "
                      "failed at their time; failed: the change itself could not be made)", scheduled.counts(db))


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
    registry.register(SpoolCollector())
    registry.register(HotlineCollector(hotline))
    return generate_latest(registry), CONTENT_TYPE_LATEST
