"""`ivr schedule`: mode switches, publishes and incident activations planned for a time, listed and cancelled.

`ivr background` carries each out at its time, on one server only (ivr/ops/scheduled.py).
"""
from __future__ import annotations

import click

from ivr.ops.cli.context import change, pass_cli
from ivr.store.models import MODES

at_option = click.option("--at", "at_text", required=True, metavar="TIME",
                         help="When: ISO 8601, e.g. 2026-12-07T08:00+01:00; without an offset, in IVR_TIMEZONE.")
override_option = click.option("--override", default=None, metavar="WHY",
                               help="Carry it out even if the go-live check then fails; why it is fine is audited.")


@click.group()
def schedule():
    """Changes planned ahead: carried out at their time by `ivr background`, audited, cancellable."""


def _add(cli, kind: str, target, at_text: str, reason: str, override=None, carry_over=False) -> None:
    from ivr.store import scheduled

    zone = cli.config.timezone
    row = scheduled.add(cli.db, kind=kind, target=str(target), at=scheduled.parse_at(at_text, zone),
                        reason=reason, actor=cli.actor, override=override, carry_over=carry_over,
                        two_person=cli.config.two_person_publishing)
    click.echo(f"scheduled change {row['id']}: {row['what']} at {scheduled.when_text(row['run_at'], zone)}, "
               f"by {row['created_by']} (audited; cancel with `ivr schedule cancel {row['id']} --reason ...`)")
    if kind != "activate" and not override:
        click.echo("At its time it runs the go-live check and is refused if that finds problems "
                   "(--override says why to go ahead anyway).")


@schedule.command("mode")
@click.argument("new_mode", type=click.Choice(MODES))
@at_option
@override_option
@change(reason="required")
def schedule_mode(cli, new_mode, at_text, override, reason):
    """Switch the hotline to message-only or live at a time."""
    _add(cli, "mode", new_mode, at_text, reason, override=override)


@schedule.command("publish")
@click.argument("announcement_id", type=int)
@at_option
@override_option
@change(reason="required")
def schedule_publish(cli, announcement_id, at_text, override, reason):
    """Publish an announcement version (`ivr announce list` gives its id) at a time."""
    _add(cli, "publish", announcement_id, at_text, reason, override=override)


@schedule.command("activate")
@click.argument("incident_id", type=int)
@at_option
@click.option("--carry-over", is_flag=True, help="Copy what callers hear now for what the incident lacks.")
@change(reason="required")
def schedule_activate(cli, incident_id, at_text, carry_over, reason):
    """Make an incident the active one at a time."""
    _add(cli, "activate", incident_id, at_text, reason, carry_over=carry_over)


@schedule.command("list")
@click.option("--all", "everything", is_flag=True, help="Also the changes carried out, refused or cancelled.")
@pass_cli
def schedule_list(cli, everything):
    """The changes still to come (soonest first), who scheduled each and when it runs."""
    from ivr.store import scheduled

    zone, counts = cli.config.timezone, scheduled.counts(cli.db)
    click.echo(f"{counts[scheduled.PENDING]} pending; {counts[scheduled.DONE]} done, "
               f"{counts[scheduled.REFUSED]} refused, {counts[scheduled.FAILED]} failed, "
               f"{counts[scheduled.CANCELLED]} cancelled")
    for row in scheduled.list_changes(cli.db, include_past=everything):
        override = f"; go-live check overridden: {row['override']}" if row["override"] else ""
        click.echo(f"{row['id']:>5}  {row['status']:<12} {scheduled.when_text(row['run_at'], zone)}  {row['what']}  "
                   f"by {row['created_by']}: {row['reason']}{override}")
        if row["outcome"]:
            click.echo(f"       {row['outcome']}")


@schedule.command("cancel")
@click.argument("change_id", type=int)
@change(reason="required")
def schedule_cancel(cli, change_id, reason):
    """Cancel a change that has not run yet (audited)."""
    from ivr.store import scheduled

    row = scheduled.cancel(cli.db, change_id, actor=cli.actor, reason=reason)
    click.echo(f"scheduled change {change_id} cancelled: {row['what']} will not be carried out")
