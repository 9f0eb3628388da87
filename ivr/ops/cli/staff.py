"""The people: users (console, API, admin line), agents (agent line) and their callback worklist."""
from __future__ import annotations

import click

from ivr.ops.cli.context import _by, _clear_errors, _config, _db, _whoami


# -- users and tokens --------------------------------------------------------------------------------------
@click.group()
def users():
    """People who run the hotline (viewer, ops, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "ops", "admin"]), required=True)
@click.option("--password", default=None, help="Console password (prompted if --ask-password).")
@click.option("--ask-password", is_flag=True, help="Prompt for the password without echo.")
@click.option("--phone-pin", default=None, help="PIN for the admin phone line (admins only).")
@_by
def users_add(name, role, password, ask_password, phone_pin, actor):
    """Add a user."""
    from ivr.store.users import UserError, add_user

    if ask_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(_db(), name, role, actor=actor or _whoami(), password=password, phone_pin=phone_pin)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name} added as {role}")


@users.command("set-pin")
@click.argument("name")
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True)
@_by
def users_set_pin(name, pin, actor):
    """Set a user's PIN for the admin phone line."""
    from ivr.store.users import UserError, set_phone_pin

    try:
        set_phone_pin(_db(), name, pin, actor=actor or _whoami())
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"phone PIN set for {name}")


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
@_by
def users_token(name, label, actor):
    """Create an API token for a user (shown once; only its hash is stored)."""
    from ivr.store.users import UserError, create_token

    try:
        token = create_token(_db(), name, actor=actor or _whoami(), label=label)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


# -- agents and callbacks ----------------------------------------------------------------------------------
@click.group()
def agents():
    """People who take calls on the agent line."""


@agents.command("add")
@click.argument("name")
@click.option("--phone", required=True, help="The number the agent calls from (caller ID), E.164.")
@click.option("--pin", required=True, help="4 to 12 digits.")
@_by
@_clear_errors
def agents_add(name, phone, pin, actor):
    """Add an agent (their number and PIN are stored only hashed)."""
    from ivr.store.agents import add_agent

    add_agent(_db(), _config().secret_key, name, phone, pin, actor=actor or _whoami())
    click.echo(f"agent {name} added")


@agents.command("list")
def agents_list():
    from ivr.store.agents import agents as list_agents

    for row in list_agents(_db()):
        click.echo(f"{row['name']:<20} {row['phone_masked']:<10} {'active' if row['active'] else 'inactive'}")


@click.group()
def callbacks():
    """Callers waiting to be called back: the agents' worklist."""


@callbacks.command("list")
@click.option("--done", is_flag=True, help="Show finished callbacks instead.")
def callbacks_list(done):
    """The worklist, highest priority first, then in the order callers called."""
    from ivr.store.queues import callbacks as list_callbacks

    rows = list_callbacks(_db(), "done" if done else "waiting")
    for row in rows:
        vm = f" voicemail {row['voicemail_url']}" if row["voicemail_url"] else ""
        click.echo(f"#{row['id']:<5} p{row['priority']:<3} {row['requested_at']:%Y-%m-%d %H:%M} {row['number']:<16} "
                   f"{row['language']} {row['queue'] or '-'}: {row['reason']}{vm}")
    if not rows:
        click.echo("no callbacks waiting" if not done else "no finished callbacks")


@callbacks.command("done")
@click.argument("callback_id", type=int)
@click.option("--note", default="", help="What happened (kept with the callback).")
@_by
@_clear_errors
def callbacks_done(callback_id, note, actor):
    """Mark a callback as done."""
    from ivr.store.queues import callback_done

    callback_done(_db(), callback_id, actor=actor or _whoami(), note=note)
    click.echo(f"callback {callback_id} done")

