"""How calls are routed: the hotline's mode and routing_rules.yaml."""
from __future__ import annotations

import os

import click

from ivr.ops.cli.context import by_option, pass_cli, required_reason_option
from ivr.store.models import MODES


# -- mode --------------------------------------------------------------------------------------------------
@click.group()
def mode():
    """Message-only or live agents: the whole hotline's mode."""


@mode.command("show")
@pass_cli
def mode_show(cli):
    """Print the current mode, when it was set and by whom."""
    from ivr.store.state import get_mode

    current, at, by = get_mode(cli.db)
    click.echo(f"{current} (since {at:%Y-%m-%d %H:%M:%S} UTC, set by {by})")


@mode.command("set")
@click.argument("new_mode", type=click.Choice(MODES))
@required_reason_option
@click.option("--override", default=None, metavar="WHY",
              help="Switch to live despite the go-live check's problems; why it is fine goes into the audit log.")
@by_option
@pass_cli
def mode_set(cli, new_mode, reason, override):
    """Switch the hotline to message-only or live agents (takes effect on the next call). A switch to live
    runs the go-live check (`ivr preflight`) first and is refused on problems unless --override says why."""
    from ivr.ops import caller_view
    from ivr.ops.cli.status import echo_problems
    from ivr.ops.preflight import PreflightFailed, switch_mode

    try:
        before, after, overridden = switch_mode(
            cli.db, new_mode, reason=reason, actor=cli.actor, override=override,
            problems_for_live=lambda: caller_view.of_install(cli.db, cli.config).problems,
            how_to_override='run again with --override "why it is fine"')
    except PreflightFailed as exc:
        echo_problems(exc.problems, "not switched to live: the go-live check found")
        click.echo('Nothing changed. Fix them, or run again with --override "why it is fine" (audited).')
        raise SystemExit(1)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if before == after:
        click.echo(f"already in {after} mode: nothing changed")
    else:
        click.echo(f"mode changed: {before} -> {after} (audited)")
        echo_problems(overridden, "go-live check overridden (audited)")


# -- rules -------------------------------------------------------------------------------------------------
@click.group()
def rules():
    """routing_rules.yaml."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@pass_cli
def rules_check(cli, path):
    """Validate a rules file; print every error with its line and field."""
    from ivr.core import rules as rules_mod

    path = path or str(cli.settings.rules_path)
    try:
        loaded = rules_mod.load(path)
    except rules_mod.RulesInvalid as exc:
        for err in exc.errors:
            click.echo(f"{path}: {err}", err=True)
        raise SystemExit(1)
    click.echo(f"{path}: OK ({len(loaded.languages)} languages, {len(loaded.menu.options)} menu options)")


@rules.command("reload")
@by_option
@pass_cli
def rules_reload(cli):
    """Check the rules file and tell every running worker to load it now (audited); refused if invalid."""
    from ivr.core import rules as rules_mod
    from ivr.store.audit import audit

    cfg = cli.settings
    path = cfg.rules_path
    try:
        loaded = rules_mod.load(path)
    except rules_mod.RulesInvalid as exc:
        for err in exc.errors:
            click.echo(f"{path}: {err}", err=True)
        with cli.db.write() as conn:
            audit(conn, actor=cli.actor, action="rules.reload_refused", subject=str(path.name),
                  to_value=str(exc)[:2000], reason="ivr rules reload")
        click.echo("not reloaded: the running hotline keeps its last good rules", err=True)
        raise SystemExit(1)
    os.utime(path)  # workers compare the file's stamp on every request: this is the signal
    with cli.db.write() as conn:
        audit(conn, actor=cli.actor, action="rules.reload", subject=str(path.name),
              to_value=f"{len(loaded.routing)} routing rules, {len(loaded.queues)} queues", reason="ivr rules reload")
    click.echo(f"{path}: OK; running workers load it on their next request")

