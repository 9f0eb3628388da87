"""Two-person publishing from the command line: list what awaits approval, approve as the second person,
override as an admin in an emergency. The approver is named by --by and must be an active user whose role
may approve (ivr/ops/roles.py), so the two names in the audit log are two of the hotline's people."""
from __future__ import annotations

import click

from ivr.ops.cli.content import echo_announcement
from ivr.ops.cli.context import change, pass_cli


def _user_may(cli, action: str) -> None:
    """Refuse unless --by (or the login) names an active user whose role may do `action`."""
    from ivr.ops.roles import least_role
    from ivr.store.users import active_role, role_at_least

    role, needed = active_role(cli.db, cli.actor), least_role(action)
    if role is None:
        raise click.ClickException(f"{cli.actor!r} is not an active user of the hotline: say who you are with "
                                   f"--by NAME (a user whose role is {needed} or above); nothing was changed")
    if not role_at_least(role, needed):
        raise click.ClickException(f"{cli.actor} is {role}: to {action} takes {needed} or above; nothing was "
                                   "changed")


@click.command("awaiting")
@pass_cli
def announce_awaiting(cli):
    """Drafts asked to be published that await a second person's approval, with how to hear each first."""
    from ivr.store.approvals import awaiting, awaiting_sentence

    rows = awaiting(cli.db)
    for row in rows:
        click.echo(awaiting_sentence(row))
        if row["text"]:
            click.echo(f"    text: {row['text']}")
        if row["media_sha256"]:
            click.echo(f"    audio: sha256 {row['media_sha256']} ({row['duration_ms'] / 1000:.1f} s); hear it with "
                       f"ivr announce export {row['id']} --out v{row['version']}.wav")
    if not rows:
        click.echo("nothing awaits approval")


@click.command("approve")
@click.argument("announcement_id", type=int)
@change()
def announce_approve(cli, announcement_id, reason):
    """Approve a draft someone else asked to publish (hear it first: `ivr announce export`); callers hear it
    from their next step. Refused to whoever made it or asked for it."""
    from ivr.store.approvals import approve

    _user_may(cli, "approve a statement")
    echo_announcement(approve(cli.db, announcement_id, actor=cli.actor, reason=reason))


@click.command("override")
@click.argument("announcement_id", type=int)
@change(reason="required")
def announce_override(cli, announcement_id, reason):
    """Emergency: publish a draft without a second person (admins only; the reason is audited and the
    dashboard flags it)."""
    from ivr.store.approvals import override

    _user_may(cli, "override two-person publishing")
    echo_announcement(override(cli.db, announcement_id, actor=cli.actor, reason=reason))
