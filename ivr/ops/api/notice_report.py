"""The report for regulators on the breach notices sent (ivr/store/notice_report.py): the same rows as the
console's Notices report and `ivr notice-report`."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.store.notice_report import regulator_report


@bp.get("/notices/report")
@requires("see the hotline")
def notice_report_get():
    """Who was told when, by which channel, with what text."""
    campaign = g.query.get("campaign")
    return jsonify({"groups": regulator_report(hotline().db, int(campaign) if campaign else None)})
