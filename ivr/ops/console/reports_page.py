"""Reports in the console: the figures of ivr/ops/reports.py as charts and tables, and as a CSV download."""
from __future__ import annotations

from flask import Response, render_template, request

from ivr.core import words
from ivr.core.errors import Refused
from ivr.ops import reports
from ivr.ops.console import charts
from ivr.ops.console.base import bp, hotline, needs


def _report() -> dict:
    rules = hotline().rules.rules
    return reports.build(hotline().db, since=reports.parse_since(request.args.get("since") or None),
                         bucket=request.args.get("bucket", "hour"),
                         promised_hours=rules.agents.callbacks.promised_hours)


def _charts(report: dict) -> list:
    series = report["series"]
    labels = [s["start"][5:16].replace("T", " ") for s in series]
    tick = max(1, len(series) // 6)
    found = [
        charts.columns(f"Calls and abandoned queue calls per {report['bucket']} (UTC)", [s["calls"] for s in series],
                       labels, tick_every=tick, overlay=[s["abandoned"] for s in series], overlay_name="abandoned",
                       summary=f"{report['calls']['total']} calls; {report['abandonment']['abandoned']} abandoned "
                               f"in a queue."),
    ]
    for title, counts, named in (("Calls by outcome", report["calls"]["by_outcome"], words.outcome),
                                 ("Wrap-ups by code", report["wrap_ups"]["by_code"], str),
                                 ("Callbacks by status", report["callbacks"]["by_status"], str)):
        items = sorted(((named(k), n) for k, n in counts.items()), key=lambda kv: -kv[1])
        if not items:  # the tables and figures above say "none"; an empty chart would say nothing
            continue
        found.append(charts.rows(title, items, summary="; ".join(f"{k}: {n}" for k, n in items) or "None yet."))
    return found


@bp.get("/reports")
@needs("see the hotline")
def reports_view():
    try:
        report = _report()
    except Refused as exc:
        return render_template("console/reports.html", report=None, charts=[], error=f"{exc}.",
                               args=request.args), 400
    return render_template("console/reports.html", report=report, charts=_charts(report), args=request.args)


@bp.get("/reports.csv")
@needs("see the hotline")
def reports_csv():
    try:
        body = reports.to_csv(_report())
    except Refused as exc:
        return Response(f"{exc}\n", status=400, mimetype="text/plain")
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=report.csv"})
