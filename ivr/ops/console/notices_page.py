"""Notice campaigns in the console: each campaign's counts and a chart of its deliveries, refreshed in place
while it sends; pause, resume and cancel (with a reason, audited); and the report for regulators (who was
told when, by which channel, with what text), on the page and as a CSV download.

The counts are ivr/store/notices.py `campaign_figures` (the CLI and the API read the same); the chart and
the report are ivr/store/notice_report.py. No number or reference is ever shown.
"""
from __future__ import annotations

from datetime import timedelta

from flask import render_template, request

from ivr.core.errors import Refused
from ivr.ops.console import charts
from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, not_found, reason, refused
from ivr.ops.console.export import csv_download
from ivr.store import notice_report, notices

ACTIONS = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}  # the buttons, and what each did
# Which buttons a campaign in each state offers, and the least role for each (ivr/ops/roles.py's actions
# "pause a notice campaign" and "send a notice campaign").
BUTTONS = {"sending": ("pause", "cancel"), "paused": ("resume", "cancel"), "planned": ("cancel",),
           "planning": ("cancel",)}
BUTTON_ROLE = {"pause": "ops", "resume": "ops", "cancel": "admin"}
FAILED_LABEL = {"unknown": "no error code"}


def campaigns_now() -> list[dict]:
    """Every campaign's figures (newest first) with its deliveries chart: the live part of the page."""
    db = hotline().db
    out = []
    for campaign_id in notices.campaign_ids(db):
        figures = notices.campaign_figures(db, campaign_id)
        if figures is not None:
            out.append({**figures, "chart": _chart(campaign_id, figures),
                        "channel_names": [notice_report.CHANNEL_NAMES.get(ch, ch) for ch in figures["channels"]],
                        "failed_reasons": [(FAILED_LABEL.get(code, f"Twilio error {code}"), n)
                                           for code, n in sorted(figures["failed_by_code"].items())]})
    return out


def _chart(campaign_id: int, figures: dict):
    series = notice_report.deliveries(hotline().db, campaign_id)
    if series is None or not figures.get("started_at"):
        return None  # never started: nothing delivered to draw
    per = notice_report.slot_label(series["slot_s"])
    counts = series["counts"]
    tick = timedelta(seconds=series["slot_s"] * max(1, len(counts) // 6))
    return charts.timeline(f"Notices delivered per {per} (UTC)", counts, series["start"],
                           timedelta(seconds=series["slot_s"]), series["now"], tick_every=tick,
                           summary=f"{sum(counts)} delivered since {series['start']:%Y-%m-%d %H:%M} UTC; "
                                   f"the most in one {per}: {max(counts, default=0)}.")


def _page(status: int = 200, error: str | None = None, form_id: str | None = None):
    return render_template("console/notices.html", campaigns=campaigns_now(), buttons=BUTTONS,
                           button_role=BUTTON_ROLE, action_endpoint=ACTION_ENDPOINT, error=error,
                           form_id=form_id, form=request.form), status


@bp.get("/notices")
@needs("see the hotline")
def notices_page():
    return _page()


@bp.get("/notices/live")
@needs("see the hotline")
def notices_live():
    """The campaigns' figures alone, fetched by console.js every few seconds (no form in it)."""
    return render_template("console/_notices_live.html", campaigns=campaigns_now(), parts=True)


@bp.post("/notices/<int:campaign_id>/<action>")
@needs("pause a notice campaign")
def notice_pause(campaign_id: int, action: str):
    """Pause or resume: ops may (the safe way out of a mistake)."""
    if action not in ("pause", "resume"):
        return not_found(f"notices/{campaign_id}/{action}")
    return _steer(campaign_id, action)


@bp.post("/notices/<int:campaign_id>/cancel")
@needs("send a notice campaign")
def notice_cancel(campaign_id: int):
    """Cancel for good: what was not sent never will be, and the numbers are deleted (admins, as sending)."""
    return _steer(campaign_id, "cancel")


def _steer(campaign_id: int, action: str):
    try:
        notices.change_state(hotline().db, campaign_id, action, actor=actor(), reason=reason(request.form))
    except (FormError, Refused) as exc:
        return refused(_page, exc, f"{action}-{campaign_id}")
    return done("console.notices_page", f"Campaign {campaign_id} {ACTIONS[action]}.", f"#campaign-{campaign_id}")


ACTION_ENDPOINT = {"pause": "console.notice_pause", "resume": "console.notice_pause",
                   "cancel": "console.notice_cancel"}


def _report_rows() -> list[dict]:
    campaign = request.args.get("campaign", "")
    return notice_report.regulator_report(hotline().db, int(campaign) if campaign.isdigit() else None)


@bp.get("/notices/report")
@needs("see the hotline")
def notices_report():
    return render_template("console/notices_report.html", rows=_report_rows(),
                           campaign=request.args.get("campaign", ""))


@bp.get("/notices/report.csv")
@needs("see the hotline")
def notices_report_csv():
    rows = _report_rows()
    return csv_download("notice-report.csv", list(notice_report.REPORT_COLUMNS),
                        ([row[c] for c in notice_report.REPORT_COLUMNS] for row in rows))
