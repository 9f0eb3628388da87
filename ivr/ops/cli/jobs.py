"""`ivr jobs dead` and `ivr jobs retry`: the dead letters (jobs failed for good) and putting one back.

The `jobs` group itself (run, kinds) is in server.py, beside `ivr background`, which works the jobs.
"""
from __future__ import annotations

import click

from ivr.ops.cli.context import change, pass_cli


@click.command("dead")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True, help="Show at most this many.")
@pass_cli
def jobs_dead(cli, limit):
    """List the jobs that failed for good (newest first): what, when, how often tried, the last error."""
    from ivr.store import jobs

    rows = jobs.dead_letters(cli.db, limit=limit)
    counts = jobs.counts(cli.db)
    click.echo(f"{counts[jobs.DEAD]} dead letter(s); {counts['pending']} pending, {counts['running']} running")
    for row in rows:
        error = (row["last_error"] or "").strip().split("\n")[0][:200]
        click.echo(f"{row['id']:>6}  {row['updated_at']:%Y-%m-%d %H:%M} UTC  {row['kind']:<16} "
                   f"{row['attempts']} attempt(s)  {error}")
    if rows:
        click.echo("Retry one with: ivr jobs retry ID --reason '...'")


@click.command("retry")
@click.argument("job_id", type=int)
@change(reason="required")
def jobs_retry(cli, job_id, reason):
    """Put a dead letter back in the queue to run now (audited): after fixing what made it fail."""
    from ivr.store import jobs

    done = jobs.retry_dead(cli.db, job_id, actor=cli.actor, reason=reason)
    click.echo(f"job {done['id']} ({done['kind']}) is pending again; a job runner takes it within seconds")
