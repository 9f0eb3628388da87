"""What callers get right now (`ivr status`) and the go-live check (`ivr preflight`): the one answer
ivr/ops/caller_view.py gives every surface."""
from __future__ import annotations

import click

from ivr.ops.cli.context import pass_cli


def echo_problems(problems, heading: str) -> None:
    """Each problem and the command that fixes it (also after an activation or an override)."""
    if problems:
        click.echo(f"{heading}: {len(problems)} problem(s)")
    for problem in problems:
        click.echo(f"- {problem}")


@click.command()
@pass_cli
def status(cli):
    """What a caller gets now, per language and key; which topics hold a stand-in; queues open or closed."""
    from ivr.ops import caller_view

    view = caller_view.of_install(cli.db, cli.config)
    for line in caller_view.lines(view):
        click.echo(line)
    click.echo(f"go-live check: {len(view.problems)} problem(s) (`ivr preflight` names them)" if view.problems
               else "go-live check: nothing stands in the way of live mode")


@click.command()
@pass_cli
def preflight(cli):
    """The go-live check: exit 1 naming each problem and the command that fixes it; exit 0 when clean.
    `ivr mode set live` runs it too, and refuses on problems unless --override gives a reason."""
    from ivr.ops import caller_view

    view = caller_view.of_install(cli.db, cli.config)
    for sentence in view.now.awaiting if view.now else ():  # not a problem for live mode, but worth knowing
        click.echo(f"note: {sentence}")
    if not view.problems:
        click.echo("preflight: OK, nothing stands in the way of live mode")
        return
    echo_problems(view.problems, "preflight")
    raise SystemExit(1)
