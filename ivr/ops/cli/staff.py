"""The people: users (console, API, admin line), agents (agent line) and their callback worklist."""
from __future__ import annotations

import click

from ivr.ops.cli.context import by_option, pass_cli, refusals_as_errors
from ivr.store.users import ROLES


# -- users and tokens --------------------------------------------------------------------------------------
@click.group()
def users():
    """People who run the hotline (viewer, ops, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password", default=None, help="Console password (prompted if --ask-password).")
@click.option("--ask-password", is_flag=True, help="Prompt for the password without echo.")
@click.option("--phone-pin", default=None, help="PIN for the admin phone line (admins only).")
@by_option
@refusals_as_errors
@pass_cli
def users_add(cli, name, role, password, ask_password, phone_pin):
    """Add a user."""
    from ivr.store.users import add_user

    if ask_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    add_user(cli.db, name, role, actor=cli.actor, password=password, phone_pin=phone_pin)
    click.echo(f"user {name} added as {role}")


@users.command("set-pin")
@click.argument("name")
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True)
@by_option
@refusals_as_errors
@pass_cli
def users_set_pin(cli, name, pin):
    """Set a user's PIN for the admin phone line."""
    from ivr.store.users import set_phone_pin

    set_phone_pin(cli.db, name, pin, actor=cli.actor)
    click.echo(f"phone PIN set for {name}")


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
@by_option
@refusals_as_errors
@pass_cli
def users_token(cli, name, label):
    """Create an API token for a user (shown once; only its hash is stored)."""
    from ivr.store.users import create_token

    click.echo(create_token(cli.db, name, actor=cli.actor, label=label))


# -- agents and callbacks ----------------------------------------------------------------------------------
@click.group()
def agents():
    """People who take calls on the agent line."""


@agents.command("add")
@click.argument("name")
@click.option("--phone", required=True, help="The number the agent calls from (caller ID), E.164.")
@click.option("--pin", required=True, help="4 to 12 digits.")
@by_option
@refusals_as_errors
@pass_cli
def agents_add(cli, name, phone, pin):
    """Add an agent (their number and PIN are stored only hashed)."""
    from ivr.store.agents import add_agent

    add_agent(cli.db, cli.config.secret_key, name, phone, pin, actor=cli.actor)
    click.echo(f"agent {name} added")


@agents.command("list")
@pass_cli
def agents_list(cli):
    from ivr.store.agents import agents as list_agents

    for row in list_agents(cli.db):
        click.echo(f"{row['name']:<20} {row['phone_masked']:<10} {'active' if row['active'] else 'inactive'}")


@click.group()
def callbacks():
    """Callers waiting to be called back: the agents' worklist."""


@callbacks.command("list")
@click.option("--done", is_flag=True, help="Show finished callbacks instead.")
@pass_cli
def callbacks_list(cli, done):
    """The worklist, highest priority first, then in the order callers called."""
    from ivr.store.queues import callbacks as list_callbacks

    rows = list_callbacks(cli.db, "done" if done else "waiting")
    for row in rows:
        vm = f" voicemail {row['voicemail_url']}" if row["voicemail_url"] else ""
        click.echo(f"#{row['id']:<5} p{row['priority']:<3} {row['requested_at']:%Y-%m-%d %H:%M} {row['number']:<16} "
                   f"{row['language']} {row['queue'] or '-'}: {row['reason']}{vm}")
    if not rows:
        click.echo("no callbacks waiting" if not done else "no finished callbacks")


@callbacks.command("done")
@click.argument("callback_id", type=int)
@click.option("--note", default="", help="What happened (kept with the callback).")
@by_option
@refusals_as_errors
@pass_cli
def callbacks_done(cli, callback_id, note):
    """Mark a callback as done."""
    from ivr.store.queues import callback_done

    callback_done(cli.db, callback_id, actor=cli.actor, note=note)
    click.echo(f"callback {callback_id} done")

