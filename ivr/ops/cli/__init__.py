"""The `ivr` command: set up, serve, switch modes, check rules and simulate calls.

Every group and command is added here, by name: importing a module registers nothing.
"""
from __future__ import annotations

import click

from ivr.ops.cli import (affected, approvals, briefing, content, jobs, keys, notice_report, notify, routing, schedule,
                         server, simulate, staff, status)
from ivr.ops.cli.context import CliContext, HotlineGroup
from ivr.store.private_files import private_umask


@click.group(cls=HotlineGroup)
@click.pass_context
def main(ctx: click.Context):
    """The breach hotline: Twilio voice webhooks, announcements and routing."""
    ctx.ensure_object(CliContext)  # one per command: config, database and actor are resolved on first use
    private_umask()  # what any command creates (database, keys, spool, gunicorn's workers' files) is 0600


main.add_command(server.setup)
main.add_command(server.serve)
main.add_command(server.db)
main.add_command(server.background)
main.add_command(server.jobs)
server.jobs.add_command(jobs.jobs_dead)
server.jobs.add_command(jobs.jobs_retry)
main.add_command(routing.mode)
main.add_command(routing.rules)
main.add_command(schedule.schedule)
main.add_command(content.announce)
for command in (approvals.announce_awaiting, approvals.announce_approve, approvals.announce_override):
    content.announce.add_command(command)
main.add_command(content.incident)
main.add_command(briefing.briefing)
main.add_command(staff.users)
main.add_command(staff.pins)
main.add_command(staff.agents)
main.add_command(staff.callbacks)
main.add_command(staff.report)
main.add_command(notice_report.notice_report)
main.add_command(affected.affected)
main.add_command(notify.notify)
main.add_command(simulate.simulate)
main.add_command(status.status)
main.add_command(status.preflight)
main.add_command(keys.keys)
