"""Probes: /livez (the process answers), /readyz (this server can answer callers now), /healthz (the full report).

A load balancer uses /readyz. It never touches the database and does not ask about the writer: while the
database is away or locked callers are served from the last good snapshot and their records wait in the
spool, so a probe that failed with either would pull every server at once (measured before these probes:
503 from every server through a 12 s PostgreSQL outage, and through a 25 s table lock).

Every answer is read from one place that every worker sees alike: the database (through the snapshot),
the rules file on disk, and files in the instance folder that one process writes (`ivr background`'s
heartbeat and state, the master's supervisor record). Nothing is a worker's own memory, so every worker of
every pool says the same. Each check is a small function registered with @health_check or
@readiness_check: add one there, nothing else changes.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from flask import Flask, jsonify

from ivr.hotline import Hotline
from ivr.ops import caller_view

# `ivr background` touches its heartbeat every second from a thread that nothing else holds up (a pass
# waiting for a lock included; ivr/spool/writer_status.py). Silent longer than this, it is stopped or hung.
WRITER_STALE_S = 5.0
WRITES_SLOW_S = 5.0  # a pass waiting this long for the database: "writes delayed"
DRAIN_FILE = "draining"  # in the instance folder: /readyz says 503 so a load balancer moves callers away

Check = Callable[[Hotline, object], Iterable[str]]  # (hotline, snapshot) -> problems, one sentence each
HEALTH_CHECKS: list[Check] = []
READINESS_CHECKS: list[Check] = []


def health_check(fn: Check) -> Check:
    """Register a /healthz check: problems it yields make /healthz 503 "degraded" (callers may well still
    be served: see /readyz)."""
    HEALTH_CHECKS.append(fn)
    return fn


def readiness_check(fn: Check) -> Check:
    """Register a /readyz check: only what keeps this server from answering callers now."""
    READINESS_CHECKS.append(fn)
    return fn


def register_health(app: Flask) -> None:
    """Add the three probes, and give this worker a snapshot of the content before its first caller."""
    hotline: Hotline = app.extensions["ivr"]
    hotline.state.current()  # a database that is away now is answered from the file another run left

    @app.get("/livez")
    def livez():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        problems = readiness_problems(hotline)
        return jsonify(status="ready" if not problems else "not ready", problems=problems), \
            (200 if not problems else 503)

    @app.get("/healthz")
    def healthz():
        return health_report(hotline)


def _run(checks: list[Check], hotline: Hotline, snap) -> list[str]:
    return [problem for check in checks for problem in check(hotline, snap)]


def readiness_problems(hotline: Hotline) -> list[str]:
    """What keeps this server from answering callers, read from memory and local files only."""
    return _run(READINESS_CHECKS, hotline, hotline.state.last_good())


def health_report(hotline: Hotline):
    """Every check passes: 200 "ok"; else 503 "degraded" with one sentence per problem."""
    snap = hotline.state.current()
    problems = _run(HEALTH_CHECKS, hotline, snap)
    body = {"ok": not problems, "status": "ok" if not problems else "degraded", "problems": problems,
            "ready": not readiness_problems(hotline), "mode": snap.mode, "content_version": snap.content.version,
            "background": background_report(hotline), **caller_view.health(hotline, snap)}
    return jsonify(body), (200 if not problems else 503)


# -- readiness ------------------------------------------------------------------------------------------------
@readiness_check
def not_draining(hotline: Hotline, snap) -> Iterable[str]:
    if (hotline.config.instance_path / DRAIN_FILE).exists():
        yield f"draining ({DRAIN_FILE} exists in the instance folder)"


@readiness_check
def has_content_snapshot(hotline: Hotline, snap) -> Iterable[str]:
    if not snap.content.spoken:
        yield "no snapshot of the published content (no announcement read yet)"


# -- health -------------------------------------------------------------------------------------------------
@health_check
def database_reachable(hotline: Hotline, snap) -> Iterable[str]:
    if not snap.fresh:
        yield "database unreachable (callers are served from the last good snapshot)"


@health_check
def announcement_published(hotline: Hotline, snap) -> Iterable[str]:
    if not snap.content.spoken:
        yield "no announcement published"


@health_check
def rules_file_valid(hotline: Hotline, snap) -> Iterable[str]:
    # Asking for the rules reloads a changed file first: the answer is the file on disk's, the same in every
    # worker, not what this worker happened to notice (before: 200 and 503 from two workers of one server).
    hotline.rules.rules
    if hotline.rules.last_error is not None:
        yield "routing rules file invalid (last good rules in use)"


@health_check
def call_records_written(hotline: Hotline, snap) -> Iterable[str]:
    """`ivr background` runs and its writes reach the database (process mode: `ivr serve`)."""
    if hotline.config.event_writer != "process":
        return
    from ivr.spool.writer_status import heartbeat_age, read_state

    now = time.time()
    age = heartbeat_age(hotline.config.spool_dir, now)
    if age is None or age > WRITER_STALE_S:
        since = "never started" if age is None else f"no sign of life for {age:.0f} s"
        yield f"spool writer (ivr background) not running or hung ({since}): call records wait in the spool"
        return
    state = read_state(hotline.config.spool_dir)
    if state is None:
        return
    if state.failing_since is not None and not state.waiting:
        yield (f"call records cannot be written for {now - state.failing_since:.0f} s: {state.error} "
               f"(they wait in the spool)")
    elif state.failing_since is not None:
        yield (f"call records delayed {now - state.failing_since:.0f} s: the database is busy or its connection "
               f"was lost (writes retried): {state.error}")
    elif state.busy_since is not None and now - state.busy_since > WRITES_SLOW_S:
        yield f"call records delayed {now - state.busy_since:.0f} s: a write is waiting for the database"


def background_report(hotline: Hotline) -> dict | None:
    """What the master's supervisor recorded about `ivr background` (starts, restarts, why), if anything."""
    if hotline.config.event_writer != "process":
        return None
    from ivr.worker.supervisor import read_record

    return read_record(hotline.config.instance_path)


@health_check
def spool_problems(hotline: Hotline, snap=None) -> list[str]:
    """Call records lost (since this server started: someone must look), or waiting longer than
    IVR_SPOOL_BACKLOG_ALERT_S to reach the database. Read from the spool's metrics (ivr/ops/metrics.py)."""
    from ivr.ops.metrics import spool_state

    state, problems = spool_state(), []
    if state.lost:
        problems.append(f"{state.lost} call records lost since this server started (the spool's disk was full "
                        "and the workers' memory bound reached): see the log")
    if state.oldest_age_s is not None and state.oldest_age_s > hotline.config.spool_backlog_alert_s:
        problems.append(f"{state.records} call records waiting to reach the database, the oldest for "
                        f"{state.oldest_age_s:.0f} s")
    return problems


@health_check
def data_key_usable(hotline: Hotline, snap) -> Iterable[str]:
    """Numbers at rest can be sealed and the latest stored one opened (ivr/store/sealed.py). Callers are
    served either way; without it texts, callback dials and "call now" wait."""
    from ivr.store.sealed import key_problem

    if (problem := key_problem(hotline.db)) is not None:
        yield problem
