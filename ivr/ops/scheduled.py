"""Carrying out the changes planned ahead (ivr/store/scheduled.py), in `ivr background` on every server: each
due change is claimed by one server, run through the same functions a person's switch, publish or
activation goes through, and its outcome recorded and audited.

At its time a switch to live or a publish first runs the go-live check, as it will stand after the change;
with problems it is refused (recorded, audited, logged, counted on /metrics, shown on the dashboard) unless
the person who scheduled it gave an override with a reason, as `ivr mode set live --override` does.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace

from ivr.core.errors import Refused
from ivr.core.snapshot import Snapshot, Spoken
from ivr.ops import caller_view
from ivr.ops.preflight import PreflightFailed, switch_mode
from ivr.store import announcements, incidents
from ivr.store import scheduled as table
from ivr.store.audit import audit
from ivr.store.models import utcnow
from ivr.store.state import get_mode, load_content

log = logging.getLogger("ivr.schedule")
EVERY_S = 1.0  # how often each server looks for a change that is due


def problems_after_publish(hotline, announcement_id: int) -> list:
    """The go-live check, for the mode the hotline is in, as callers would have it with this version published."""
    row = announcements.get(hotline.db, announcement_id)
    mode = get_mode(hotline.db)[0]
    with hotline.db.read() as conn:
        content = load_content(conn, 0)
    if row["incident_id"] == content.incident_id:
        spoken = Spoken(row["text"], row["media_sha256"], row["version"], row["source"], utcnow().timestamp(),
                        row.get("duration_ms"))
        content = replace(content, spoken={**content.spoken, f"{row['language']}/{row['topic']}": spoken})
    error = hotline.rules.last_error
    return caller_view.build(hotline.db, hotline.config, hotline.rules.rules, Snapshot(mode, content),
                             f"{error} (the last good rules are in force)" if error else None, mode).problems


def _actor(row: dict) -> str:
    """Who the change's own audit lines name: the person who scheduled it, and that it was planned."""
    return f"{row['created_by']} (scheduled change {row['id']})"[:120]


def _override_audit(hotline, row: dict, subject: str, problems: list) -> None:
    with hotline.db.write() as conn:
        audit(conn, actor=_actor(row), action="preflight.override", subject=subject,
              to_value="; ".join(p.what for p in problems)[:2000], reason=row["override"])


def _overridden(problems: list) -> str:
    return f"; go-live check overridden ({len(problems)} problem(s))" if problems else ""


def carry_out(hotline, row: dict) -> tuple[str, str]:
    """Make the change now: (status, what happened). Refusals are outcomes, not exceptions."""
    db, why, actor = hotline.db, row["reason"], _actor(row)
    how = "it was scheduled without an override"
    try:
        if row["kind"] == "mode":
            before, after, overridden = switch_mode(
                db, row["target"], reason=why, actor=actor, override=row["override"], how_to_override=how,
                problems_for_live=lambda: caller_view.of_hotline(hotline).problems)
            said = f"mode {before} -> {after}" if before != after else f"already in {after} mode: nothing changed"
            return table.DONE, said + _overridden(overridden)
        if row["kind"] == "publish":
            announcement_id = int(row["target"])
            two_person = hotline.config.two_person_publishing
            version = announcements.get(db, announcement_id)
            if two_person and announcements.needs_approval(version):  # no one person's plan reaches callers
                return table.REFUSED, (f"version {version['version']} of {version['language']}/{version['topic']} "
                                       "was not approved by a second person in time: callers do not hear it "
                                       f"(ivr announce approve {announcement_id}, then publish it)")
            problems = problems_after_publish(hotline, announcement_id)
            if problems and not row["override"]:
                raise PreflightFailed(problems, how)
            published = announcements.publish(db, announcement_id, actor=actor, reason=why, two_person=two_person)
            if problems:
                _override_audit(hotline, row, f"announcement {announcement_id}", problems)
            return table.DONE, (f"published version {published['version']} of {published['language']}/"
                                f"{published['topic']}" + _overridden(problems))
        copied = incidents.activate_incident(db, int(row["target"]), actor=actor, reason=why,
                                             languages=list(hotline.rules.rules.languages),
                                             carry_over=row["carry_over"])
        return table.DONE, f"incident {row['target']} is active" + (
            f"; carried over: {', '.join(copied)}" if copied else "")
    except PreflightFailed as exc:
        return table.REFUSED, str(exc)
    except (Refused, ValueError) as exc:
        return table.FAILED, f"not carried out: {exc}"


def run_due(hotline) -> list[tuple[int, str, str]]:
    """Carry out every change that is due and that no other server took: [(id, status, outcome)]."""
    for row in table.abandon_stale(hotline.db):
        _alert(row["id"], row["what"], table.FAILED, "interrupted before its outcome was recorded")
    out = []
    while (claimed := table.claim_due(hotline.db)) is not None:
        row, token = claimed
        try:
            status, outcome = carry_out(hotline, row)
        except Exception as exc:  # the database went away mid-way: recorded if it can be, else found stale
            log.exception("scheduled change %s (%s) failed", row["id"], row["what"])
            status, outcome = table.FAILED, f"not carried out: {type(exc).__name__}: {exc}"
        if table.finish(hotline.db, row["id"], token, status, outcome):
            out.append((row["id"], status, outcome))
            if status in table.ALERTS:
                _alert(row["id"], row["what"], status, outcome)
            else:
                log.info("scheduled change %s carried out: %s: %s", row["id"], row["what"], outcome)
    return out


def _alert(change_id: int, what: str, status: str, outcome: str) -> None:
    """A refused or failed change: logged as an error here; /metrics counts it and the dashboard shows it
    (both read the table: ivr/store/scheduled.py counts and alerts)."""
    log.error("scheduled change %s %s: %s: %s", change_id, status, what, outcome)


def start(hotline, stop: threading.Event, every: float = EVERY_S) -> threading.Thread:
    """Look for due changes every `every` seconds until `stop` is set (a thread of `ivr background`)."""

    def loop():
        while not stop.wait(every):
            try:
                run_due(hotline)
            except Exception:  # the database may be down: try again next time
                log.exception("scheduled changes: could not look for due ones")

    thread = threading.Thread(target=loop, name="scheduled-changes", daemon=True)
    thread.start()
    return thread
