"""What a notice campaign did, for the people watching it and for regulators: deliveries over time (the
console's chart) and, per group of recipients, when they were told, by which channel and with what text.

The campaign's counts (queued, sent, delivered, failed by reason, opted out) are not here: they are
ivr/store/notices.py `campaign_figures`, the one function the console, the CLI and the API all read.
Reads only; no number or reference is ever read here (a group is a language and what was exposed).
"""
from __future__ import annotations

import json
import math
from datetime import datetime

from sqlalchemy import case, func, select

from ivr.core.notices import message_text
from ivr.store.db import Database
from ivr.store.models import NoticeCampaign, NoticeRecipient, utcnow
from ivr.store.reads import slot_of

R = NoticeRecipient.__table__
C = NoticeCampaign.__table__
SLOTS = 60  # bars in the deliveries chart, whatever the campaign's length
SLOT_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)  # round slot lengths, seconds
CHANNEL_NAMES = {"sms": "text message", "voice": "voice call"}
REFERENCE_SHOWN = "XXXXXXXXXX"  # each person's own reference, masked in the text a report shows
TOLD = ("sent", "delivered")  # a notice handed to Twilio; "delivered" once the carrier confirmed it


def deliveries(db: Database, campaign_id: int, now: datetime | None = None) -> dict | None:
    """Notices delivered per slot, from the campaign's start to now (or its end): {start, slot_s, counts, now}.
    None for no such campaign. The slot is a round length that fits the span in at most SLOTS bars."""
    now = now or utcnow()
    with db.read() as conn:
        c = conn.execute(select(C.c.created_at, C.c.started_at, C.c.finished_at).where(C.c.id == campaign_id)).first()
        if c is None:
            return None
        end = min(c.finished_at or now, now)
        start = c.started_at or c.created_at or end
        span = max((end - start).total_seconds(), 1)
        slot_s = next((s for s in SLOT_STEPS if span / s <= SLOTS), SLOT_STEPS[-1])
        start = datetime.fromtimestamp(math.floor(start.timestamp() / slot_s) * slot_s, start.tzinfo)
        n = min(SLOTS, int((end - start).total_seconds() // slot_s) + 1)
        counts = [0] * n
        slot = slot_of(conn, R.c.delivered_at, start, slot_s).label("slot")
        for i, count in conn.execute(select(slot, func.count()).where(
                R.c.campaign_id == campaign_id, R.c.delivered_at >= start).group_by(slot)):
            if 0 <= i < n:
                counts[i] = count
    return {"start": start, "slot_s": slot_s, "counts": counts, "now": end}


def regulator_report(db: Database, campaign_id: int | None = None) -> list[dict]:
    """One row per campaign, language and exposed-data group and channel: how many were on the list, when
    the first and the last of them were told (sent; delivered as the carrier confirmed), how many were told,
    could not be, or opted out, and the text they got (their own reference masked). Every campaign if
    `campaign_id` is None, newest first."""
    told = case((R.c.state.in_(TOLD), 1), else_=0)
    where = [] if campaign_id is None else [R.c.campaign_id == campaign_id]
    groups = (select(R.c.campaign_id, R.c.language, R.c.exposed, func.count().label("listed"),
                     func.sum(told).label("told"),
                     func.sum(case((R.c.state == "delivered", 1), else_=0)).label("delivered"),
                     func.sum(case((R.c.state == "failed", 1), else_=0)).label("failed"),
                     func.sum(case((R.c.state == "opted_out", 1), else_=0)).label("opted_out"),
                     func.min(R.c.sent_at).label("first_sent"), func.max(R.c.sent_at).label("last_sent"),
                     func.min(R.c.delivered_at).label("first_delivered"),
                     func.max(R.c.delivered_at).label("last_delivered"))
              .where(*where).group_by(R.c.campaign_id, R.c.language, R.c.exposed))
    with db.read() as conn:
        rows = conn.execute(groups).all()
        ids = sorted({r.campaign_id for r in rows} | ({campaign_id} if campaign_id else set()), reverse=True)
        campaigns = {c.id: c for c in conn.execute(select(C).where(C.c.id.in_(ids)))} if ids else {}
    out = []
    for r in sorted(rows, key=lambda r: (-r.campaign_id, r.language, r.exposed or "")):
        c = campaigns[r.campaign_id]
        statement = json.loads(c.statements).get(r.language, "")
        text = message_text(statement, hotline=c.hotline_number, url=c.notice_url, reference=REFERENCE_SHOWN)
        for channel in c.channels.split(","):
            out.append({
                "campaign_id": c.id, "campaign": c.name, "state": c.state, "language": r.language,
                "exposed": r.exposed or "", "channel": CHANNEL_NAMES.get(channel, channel),
                "listed": r.listed, "told": int(r.told or 0), "delivered": int(r.delivered or 0),
                "failed": int(r.failed or 0), "opted_out": int(r.opted_out or 0),
                "first_sent": _iso(r.first_sent), "last_sent": _iso(r.last_sent),
                "first_delivered": _iso(r.first_delivered), "last_delivered": _iso(r.last_delivered),
                "text": text,
            })
    return out


REPORT_COLUMNS = ("campaign_id", "campaign", "state", "language", "exposed", "channel", "listed", "told",
                  "delivered", "failed", "opted_out", "first_sent", "last_sent", "first_delivered",
                  "last_delivered", "text")


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def slot_label(slot_s: int) -> str:
    """A slot's length as the chart's title says it: "minute", "5 minutes", "hour", "6 hours", "day"."""
    if slot_s % 86400 == 0:
        return "day" if slot_s == 86400 else f"{slot_s // 86400} days"
    if slot_s % 3600 == 0:
        return "hour" if slot_s == 3600 else f"{slot_s // 3600} hours"
    return "minute" if slot_s == 60 else f"{slot_s // 60} minutes"
