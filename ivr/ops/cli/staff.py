"""The people: users (console, API, admin line), agents (agent line) and their callback worklist."""
from __future__ import annotations

import sys
from datetime import timedelta

import click

from ivr.ops.cli.context import change, pass_cli, refusals_as_errors
from ivr.store.agents import deactivate_agent
from ivr.store.users import ROLES, deactivate_user, reactivate_user, revoke_tokens


# -- users and tokens --------------------------------------------------------------------------------------
@click.group()
def users():
    """People who run the hotline (viewer, agent, ops, admin)."""


def _secret(what: str) -> str:
    """A password or PIN: asked twice without echo on a terminal, else one line of standard input. Never a
    command-line value, which would land in shell history and in every `ps` listing."""
    if sys.stdin.isatty():
        return click.prompt(what, hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.ClickException(f"no {what.lower()} on standard input (nothing was changed)")
    return line


def _duration(value: str | None) -> timedelta | None:
    """'30d', '12h', '90m' or '2w' as a timedelta (None stays None: no expiry)."""
    if value is None:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = value[:-1], value[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) < 1:
        raise click.BadParameter(f"{value!r}: write a whole number and m, h, d or w, e.g. 30d", param_hint="--expires")
    return timedelta(**{units[unit]: int(number)})


def _reasoned(group: click.Group, verb: str, run, told: str, doc: str) -> None:
    """Add `GROUP VERB NAME --reason WHY`: `run(db, name, actor=, reason=)`, then `told` is said (with what
    `run` returned as {done})."""

    @group.command(verb, help=doc)
    @click.argument("name")
    @change(reason="required")
    def command(cli, name, reason):
        done = run(cli.db, name, actor=cli.actor, reason=reason)
        click.echo(told.format(name=name, done=done))


_reasoned(users, "deactivate", deactivate_user, "user {name} deactivated: sessions ended, tokens revoked, phone PIN "
          "refused", "Lock a user out now: sessions ended, API tokens revoked, phone PIN refused.")
_reasoned(users, "reactivate", reactivate_user, "user {name} reactivated",
          "Let a deactivated user back in (old tokens stay revoked).")


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--ask-password", is_flag=True, help="Set a console password: prompted, or a line of stdin.")
@click.option("--ask-pin", is_flag=True, help="Set an admin phone line PIN (6-12 digits): prompted, or the "
              "next line of stdin.")
@change(reason=None)
def users_add(cli, name, role, ask_password, ask_pin):
    """Add a user."""
    from ivr.store.users import add_user

    password = _secret("Password") if ask_password else None
    pin = _secret("Phone PIN") if ask_pin else None
    add_user(cli.db, name, role, actor=cli.actor, password=password, phone_pin=pin)
    click.echo(f"user {name} added as {role}")


@users.command("set-pin")
@click.argument("name")
@change(reason=None)
def users_set_pin(cli, name):
    """Set a user's PIN for the admin phone line (prompted, or a line of stdin)."""
    from ivr.store.users import set_phone_pin

    set_phone_pin(cli.db, name, _secret("Phone PIN"), actor=cli.actor)
    click.echo(f"phone PIN set for {name}")


@users.command("set-phone")
@click.argument("name")
@click.argument("phone")
@change(reason=None)
def users_set_phone(cli, name, phone):
    """Record the caller ID an admin calls the admin line from (see IVR_ADMIN_LINE_OWN_NUMBERS)."""
    from ivr.store.users import set_phone

    set_phone(cli.db, cli.config.secret_key, name, phone, actor=cli.actor)
    click.echo(f"phone number set for {name}")


@users.command("unlock")
@click.argument("name")
@change(reason="required")
def users_unlock(cli, name, reason):
    """Give NAME a one-time code that signs her in past any sign-in back-off (with her password), for 30 min.

    Shown once, kept only as a hash; wrong guesses from other addresses do not spend it."""
    from ivr.store.sign_in_passes import CODE_LIFETIME, create_unlock_code

    code = create_unlock_code(cli.db, name, actor=cli.actor, reason=reason)
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    click.echo(f"unlock code for {name}: {code}\n(shown once; valid {minutes} min, one sign-in: she types it under "
               "'I have an unlock code' on the sign-in page, with her password)")


@click.group()
def pins():
    """The PIN guard of the staff phone lines (admin line, agent line)."""


@pins.command("unlock")
@click.option("--line", type=click.Choice(["admin", "agent"]), required=True)
@click.option("--phone", help="the caller ID to let try again (E.164); without it, every caller ID on the line")
@change(reason="required")
def pins_unlock(cli, line, phone, reason):
    """Lift PIN locks on a staff line, so it takes a PIN at once (after an attack, for a staff member's phone)."""
    from ivr.core.identity import caller_identity
    from ivr.store.pin_guard import unlock

    caller_hash, masked = (None, "every caller ID") if phone is None else caller_identity(cli.config.secret_key, phone)
    if phone is not None and caller_hash is None:
        raise click.BadParameter(f"{phone!r} is not a phone number (use E.164, e.g. +12025550123)",
                                 param_hint="--phone")
    n = unlock(cli.db, line, caller_hash, masked, actor=cli.actor, reason=reason)
    click.echo(f"{line} line: {n} PIN lock(s) lifted for {masked}; their wrong PINs forgotten")


class _CreateByDefault(click.Group):
    """`ivr users token NAME` creates a token; `ivr users token revoke|list ...` does the rest."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


@users.group("token", cls=_CreateByDefault)
def users_token():
    """API tokens: `token NAME [--expires 30d]` creates one; `token revoke NAME`, `token list [NAME]`."""


@users_token.command("create")
@click.argument("name")
@click.option("--expires", default=None, help="Lifetime, e.g. 30d, 12h, 2w (default: until revoked).")
@click.option("--label", default="", help="What the token is for.")
@change(reason=None)
def users_token_create(cli, name, expires, label):
    """Create an API token for a user (shown once; only its hash is stored)."""
    from ivr.store.users import create_token

    click.echo(create_token(cli.db, name, actor=cli.actor, expires=_duration(expires), label=label))


_reasoned(users_token, "revoke", revoke_tokens, "{done} token(s) of {name} revoked",
          "Revoke every API token of a user, at once.")


@users_token.command("list")
@click.argument("name", required=False)
@pass_cli
def users_token_list(cli, name):
    """API tokens (never the tokens themselves): created, last used, expiry, revocation."""
    from ivr.store.users import list_tokens

    def when(ts):
        return f"{ts:%Y-%m-%d %H:%M}" if ts else "-"

    for t in list_tokens(cli.db, name):
        state = "revoked" if t["revoked_at"] else "live"
        click.echo(f"#{t['id']:<4} {t['user']:<16} {state:<8} created {when(t['created_at'])} "
                   f"used {when(t['last_used_at'])} expires {when(t['expires_at'])} {t['label']}")


# -- agents and callbacks ----------------------------------------------------------------------------------
@click.group()
def agents():
    """People who take calls on the agent line."""


@agents.command("add")
@click.argument("name")
@click.option("--phone", required=True, help="The number the agent calls from (caller ID), E.164.")
@click.option("--queue", "queue_names", multiple=True, help="A queue they serve (repeat it); none: every queue.")
@change(reason=None)
def agents_add(cli, name, phone, queue_names):
    """Add an agent; their PIN (4 to 12 digits) is prompted or a line of stdin. The agent line knows them by
    their number's hash and the PIN's hash; the number itself is kept so the desk's "call now" can ring them."""
    from ivr.core import rules as rules_mod
    from ivr.store.agents import add_agent

    known = rules_mod.load(cli.settings.rules_path).queues
    unknown = [q for q in queue_names if q not in known]
    if unknown:
        raise click.ClickException(f"unknown queue {unknown[0]!r} (queues: {', '.join(known)}); nothing was changed")
    add_agent(cli.db, cli.config.secret_key, name, phone, _secret("Agent PIN"), actor=cli.actor,
              queues=tuple(queue_names))
    click.echo(f"agent {name} added")


_reasoned(agents, "deactivate", deactivate_agent, "agent {name} deactivated",
          "Take an agent off the agent line now (their number and PIN stop working, even mid-call).")


@agents.command("link")
@click.argument("name")
@click.option("--user", "user_name", required=True, help="Their console login (role agent or above): the desk.")
@change(reason=None)
def agents_link(cli, name, user_name):
    """Link an agent (their phone) to a console login, for the agent desk."""
    from ivr.store.desk import link_user

    link_user(cli.db, name, user_name, actor=cli.actor)
    click.echo(f"agent {name} uses the desk as {user_name}")


@agents.command("list")
@pass_cli
def agents_list(cli):
    from ivr.store.agents import agents as list_agents
    from ivr.store.reads import agents_now

    with cli.db.read() as conn:
        now = {a.name: a for a in agents_now(conn)}  # the states the console and the API show
    for row in list_agents(cli.db):
        state = now[row["name"]].state if row["name"] in now else "deactivated"
        since = f" since {now[row['name']].since:%Y-%m-%d %H:%M}" if row["name"] in now and now[row["name"]].since else ""
        click.echo(f"{row['name']:<20} {row['phone_masked']:<10} {state}{since}")


@click.group()
def callbacks():
    """Callers waiting to be called back: the agents' worklist."""


@callbacks.command("list")
@click.option("--done", is_flag=True, help="Show finished callbacks instead.")
@pass_cli
def callbacks_list(cli, done):
    """The worklist, highest priority first, then in the order callers called."""
    from ivr.store.queues import callbacks as list_callbacks
    from ivr.store.sealed import shown

    from ivr.core.words import language
    from ivr.ops.cli.content import rules_languages

    languages = rules_languages(cli.config)
    rows = list_callbacks(cli.db, "done" if done else "waiting")
    for row in rows:
        vm = f" voicemail {row['voicemail_url']}" if row["voicemail_url"] else ""
        number = shown(cli.db, row["number"], row["number_masked"])  # a closed callback's full number is gone
        click.echo(f"#{row['id']:<5} p{row['priority']:<3} {row['requested_at']:%Y-%m-%d %H:%M} {number:<16} "
                   f"{language(languages, row['language'])} ({row['language']}) {row['queue'] or '-'}: {row['reason']}{vm}")
    if not rows:
        click.echo("no callbacks waiting" if not done else "no finished callbacks")


@callbacks.command("done")
@click.argument("callback_id", type=int)
@click.option("--note", default="", help="What happened (kept with the callback).")
@change(reason=None)
def callbacks_done(cli, callback_id, note):
    """Mark a callback as done."""
    from ivr.store.queues import callback_done

    callback_done(cli.db, callback_id, actor=cli.actor, note=note)
    click.echo(f"callback {callback_id} done")



@click.command()
@click.option("--since", default="24h", show_default=True,
              help="A span back from now (24h, 7d), a date (2026-12-01) or a time with its offset "
                   "(2026-12-01T08:00:00Z).")
@click.option("--per", "bucket", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@refusals_as_errors
@pass_cli
def report(cli, since, bucket, fmt):
    """Calls and callbacks by outcome, wrap-up code, language and queue; service level, abandonment and
    callbacks kept within the promised time (the same figures as the console's Reports and GET /api/reports)."""
    import json

    from ivr.core import rules as rules_mod
    from ivr.ops import reports

    promised = rules_mod.load(cli.settings.rules_path).agents.callbacks.promised_hours
    figures = reports.build(cli.db, since=reports.parse_since(since), bucket=bucket, promised_hours=promised)
    click.echo(reports.to_csv(figures) if fmt == "csv" else json.dumps(figures, indent=2), nl=fmt == "json")
