"""Reports: the figures a regulator asks for, from what the database holds, as JSON, CSV and `ivr report`."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import insert

from ivr.ops import reports
from ivr.store.models import Call, Callback, QueueEntry, WrapUp, utcnow


def seed(db):
    now = utcnow()
    with db.write() as conn:
        conn.execute(insert(Call), [dict(call_sid=f"CA{i:032d}", started_at=now - timedelta(minutes=10 + i),
                                         language="es" if i == 0 else "en", outcome="agent" if i < 3 else "abandoned")
                                    for i in range(4)])
        conn.execute(insert(QueueEntry), [
            dict(call_sid="CA" + "1" * 32, queue="fraud", priority=30, language="en", status="bridged", wait_s=30,
                 enqueued_at=now - timedelta(minutes=9)),
            dict(call_sid="CA" + "2" * 32, queue="general", priority=10, language="en", status="bridged", wait_s=300,
                 enqueued_at=now - timedelta(minutes=9)),
            dict(call_sid="CA" + "3" * 32, queue="general", priority=10, language="es", status="hangup", wait_s=200,
                 enqueued_at=now - timedelta(minutes=9))])
        conn.execute(insert(WrapUp), [dict(call_sid="CA" + "1" * 32, agent="alex", code="fraud_reported", note="",
                                           queue="fraud", language="en", created_at=now)])
        conn.execute(insert(Callback), [
            dict(call_sid="CA" + "4" * 32, number=None, language="en", queue="general", priority=10, status="done",
                 requested_at=now - timedelta(hours=30), done_at=now - timedelta(hours=2)),  # late: 28 h
            dict(call_sid="CA" + "5" * 32, number=None, language="en", queue="general", priority=10, status="done",
                 requested_at=now - timedelta(hours=3), done_at=now - timedelta(hours=1)),  # kept
            dict(call_sid="CA" + "6" * 32, number="+15555550106", language="en", queue="general", priority=10,
                 status="waiting", requested_at=now - timedelta(hours=1), done_at=None)])  # not due yet


def test_the_report_counts_service_level_abandonment_and_callbacks_kept(hotline):
    seed(hotline.db)
    report = reports.build(hotline.db, since=reports.parse_since("2d"), bucket="day", answered_within_s=60)
    assert report["calls"]["total"] == 4 and report["calls"]["by_language"] == {"es": 1, "en": 3}
    assert report["service_level"] == {"answered_within_s": 60, "answered": 2, "within": 1, "share": 0.5}
    assert report["abandonment"] == {"ended": 3, "abandoned": 1, "share": 0.3333}
    assert report["queues"]["by_queue"] == {"fraud": {"bridged": 1}, "general": {"bridged": 1, "hangup": 1}}
    assert report["wrap_ups"]["by_code"] == {"fraud_reported": 1}
    assert (report["callbacks"]["due"], report["callbacks"]["kept"]) == (2, 1)
    assert sum(s["calls"] for s in report["series"]) == 4


def test_a_bad_since_is_refused_clearly(hotline):
    import pytest

    with pytest.raises(reports.ReportError, match="since must be an ISO date"):
        reports.parse_since("last tuesday")


def test_ivr_report_writes_csv_and_json(config, hotline):
    from ivr.ops.cli import main

    seed(hotline.db)
    env = {"DATABASE_URL": config.db_url, "IVR_RULES": str(config.rules_path), "IVR_INSTANCE_PATH": str(config.instance_path),
           "IVR_SECRET_KEY": config.secret_key}
    runner = CliRunner()
    out = runner.invoke(main, ["report", "--since", "2d", "--format", "csv"], env=env)
    assert out.exit_code == 0, out.output
    rows = list(csv.reader(io.StringIO(out.output)))
    assert rows[0] == ["section", "name", "value"] and ["wrap_ups.by_code", "fraud_reported", "1"] in rows
    figures = json.loads(runner.invoke(main, ["report", "--since", "2d", "--format", "json"], env=env).output)
    assert figures["service_level"]["share"] == 0.5
    bad = runner.invoke(main, ["report", "--since", "soon"], env=env)
    assert bad.exit_code == 1 and "since must be" in bad.output
