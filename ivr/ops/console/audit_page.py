"""The audit log: who changed what, when, from what, to what and why; filtered, and exported as CSV."""
from __future__ import annotations

from collections.abc import Iterator

from flask import render_template, request
from sqlalchemy import select

from ivr.ops.console.base import FormError, bp, hotline, needs
from ivr.ops.console.export import date_range, filtered_csv
from ivr.store.db import Database
from ivr.store.models import AuditEntry

SHOWN = 500
COLUMNS = (AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.subject,
           AuditEntry.from_value, AuditEntry.to_value, AuditEntry.reason)


def _filtered(args):
    """The audit entries the filters in `args` ask for, newest first (raises FormError for a bad date)."""
    query = select(*COLUMNS)
    action, who = (args.get("action") or "").strip(), (args.get("actor") or "").strip()
    start, end = date_range(args)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    if who:
        query = query.where(AuditEntry.actor == who)
    if start:
        query = query.where(AuditEntry.at >= start)
    if end:
        query = query.where(AuditEntry.at < end)
    return query.order_by(AuditEntry.id.desc())


def _all_rows(db: Database, query) -> Iterator[tuple]:
    """Every matching entry, read a batch at a time so a long export holds no connection while it is sent."""
    last = None
    while True:
        with db.read() as conn:
            batch = conn.execute((query.where(AuditEntry.id < last) if last else query).limit(1000)).all()
        yield from (tuple(r)[1:] for r in batch)
        if len(batch) < 1000:
            return
        last = batch[-1].id


@bp.get("/audit")
@needs("see the hotline")
def audit_log():
    db, args = hotline().db, request.args
    error, rows = None, []
    try:
        query = _filtered(args)
        before = (args.get("before") or "").strip()
        if before and not (before.isdigit() and len(before) <= 18):
            raise FormError("the page to show is given by an entry number")
    except FormError as exc:
        error = f"{exc}."
    else:
        if before:  # keyset paging: the entries older than the last one on the previous page
            query = query.where(AuditEntry.id < int(before))
        with db.read() as conn:
            rows = conn.execute(query.limit(SHOWN + 1)).all()
    with db.read() as conn:
        actions = conn.execute(select(AuditEntry.action).distinct().order_by(AuditEntry.action)).scalars().all()
    filters = {k: v for k, v in args.items() if k != "before" and v}
    older = dict(filters, before=rows[SHOWN - 1].id) if len(rows) > SHOWN else None
    return render_template("console/audit.html", rows=[_shown(r) for r in rows[:SHOWN]], older=older,
                           paged=bool(args.get("before")), filters=filters, shown=SHOWN, actions=actions, args=args,
                           error=error), (400 if error else 200)


def _shown(row) -> dict:
    """An entry as the page shows it: a saved rules file's diff apart, as lines marked added or removed."""
    entry = dict(row._mapping)
    entry["diff"] = None
    if row.action == "rules.save" and row.to_value and "\n" in row.to_value:
        entry["to_value"], diff = row.to_value.split("\n", 1)
        entry["diff"] = [("add" if line.startswith("+") and not line.startswith("+++") else
                          "del" if line.startswith("-") and not line.startswith("---") else
                          "hunk" if line.startswith("@@") else "", line) for line in diff.splitlines()]
    return entry


@bp.get("/audit.csv")
@needs("see the hotline")
def audit_csv():
    return filtered_csv("audit-log.csv", ["at", "actor", "action", "subject", "from", "to", "reason"],
                        lambda args: _all_rows(hotline().db, _filtered(args)))
