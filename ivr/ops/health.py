"""Probes: /livez (the process answers), /readyz (this server can serve callers), /healthz (the full report).

A load balancer uses /readyz. It never touches the database: while the database is away callers are
served from the last good snapshot, so a probe that failed with it would pull every server at once
(measured before these probes: 503 from every server through a 12 s PostgreSQL outage).
"""
from __future__ import annotations

import time

from flask import Flask, jsonify

from ivr.hotline import Hotline

# `ivr background` beats once per pass; with the database down it backs off up to 5 s between passes and
# a pass may wait 3 s for a connection (ivr/spool/writer.py, ivr/store/db.py): older than this, it is gone.
WRITER_STALE_S = 10.0
DRAIN_FILE = "draining"  # in the instance folder: /readyz says 503 so a load balancer moves callers away


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


def readiness_problems(hotline: Hotline) -> list[str]:
    """What keeps this server from serving callers, read from memory and local files only."""
    problems = []
    if (hotline.config.instance_path / DRAIN_FILE).exists():
        problems.append(f"draining ({hotline.config.instance_path / DRAIN_FILE} exists)")
    if not hotline.state.last_good().content.spoken:
        problems.append("no snapshot of the published content (no announcement read yet)")
    if hotline.config.event_writer == "process" and not _writer_alive(hotline):
        problems.append("spool writer (ivr background) not running")
    return problems


def health_report(hotline: Hotline):
    """Database reachable, rules valid, an announcement published, the writer alive: 200 "ok"; anything
    else: 503 "degraded" with the reasons (callers may well still be served: see /readyz)."""
    problems = []
    snap = hotline.state.current()
    if not snap.fresh:
        problems.append("database unreachable (callers are served from the last good snapshot)")
    if not snap.content.spoken:
        problems.append("no announcement published")
    if hotline.rules.last_error is not None:
        problems.append("routing rules file invalid (last good rules in use)")
    if hotline.config.event_writer == "process" and not _writer_alive(hotline):
        problems.append("spool writer (ivr background) not running: call records wait in the spool")
    if (key := data_key_problem(hotline)) is not None:
        problems.append(key)
    body = {"ok": not problems, "status": "ok" if not problems else "degraded", "problems": problems,
            "ready": not readiness_problems(hotline), "mode": snap.mode, "content_version": snap.content.version,
            "missing_topics": missing_topics(hotline, snap)}
    return jsonify(body), (200 if not problems else 503)


def data_key_problem(hotline: Hotline) -> str | None:
    """The data key check: numbers at rest can be sealed and opened (ivr/store/sealed.py)."""
    from ivr.store.sealed import key_problem

    return key_problem(hotline.db)


def missing_topics(hotline: Hotline, snap) -> list[str]:
    """"lang/topic" for each topic not published in a language. Not a reason for 503: callers hear the
    main announcement instead (ivr/core/flow.py), but ops should know what they are missing."""
    from ivr.core.snapshot import TOPICS

    return [f"{lang}/{topic}" for lang in hotline.rules.rules.languages for topic in TOPICS
            if not snap.content.find(lang, topic, lang)]


def _writer_alive(hotline: Hotline) -> bool:
    from ivr.spool.writer import SpoolWriter

    try:
        age = time.time() - (hotline.config.spool_dir / SpoolWriter.HEARTBEAT).stat().st_mtime
    except OSError:
        return False
    return age <= WRITER_STALE_S
