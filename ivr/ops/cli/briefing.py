"""`ivr briefing`: what agents tell callers about the active incident, shown and edited as the console does
(ivr/store/briefings.py; every change audited with --by and --reason)."""
from __future__ import annotations

import click

from ivr.ops.cli.context import change, pass_cli
from ivr.store.briefings import FIELDS, LABELS


@click.group()
def briefing():
    """The agent briefing: show it, list its versions, write a new version, publish one."""


def _echo(row: dict) -> None:
    when = f"published {row['published_at']:%Y-%m-%d %H:%M} UTC" if row["published_at"] else \
        f"written {row['created_at']:%Y-%m-%d %H:%M} UTC"
    click.echo(f"Version {row['version']} (#{row['id']}, {row['status']}), by {row['created_by']}, {when}")
    for field in FIELDS:
        if row[field]:
            click.echo(f"\n{LABELS[field]}\n{row[field]}")


@briefing.command("show")
@click.option("--version", type=int, default=None, help="This version (default: the published one).")
@pass_cli
def briefing_show(cli, version):
    """What agents are told now (or a given version), under the console's headings."""
    from ivr.store.briefings import for_active_incident

    incident, published, versions = for_active_incident(cli.db)
    if incident is None:
        raise click.ClickException("no incident is active: there is nothing to brief agents about")
    click.echo(f"Incident: {incident.title} (severity: {incident.severity})")
    row = published if version is None else next((v for v in versions if v["version"] == version), None)
    if row is None:
        raise click.ClickException("no briefing is published yet (ivr briefing edit --publish)" if version is None
                                   else f"the incident's briefing has no version {version}")
    _echo(row)


@briefing.command("list")
@pass_cli
def briefing_list(cli):
    """Every version of the active incident's briefing, newest first."""
    from ivr.store.briefings import for_active_incident

    for v in for_active_incident(cli.db)[2]:
        click.echo(f"#{v['id']:<5} v{v['version']:<3} {v['status']:<9} {v['created_by']} "
                   f"{v['created_at']:%Y-%m-%d %H:%M}")


def _field_options(fn):
    for field in reversed(FIELDS):
        flag = field.replace("_", "-")
        fn = click.option(f"--{flag}-file", f"{field}_file", type=click.File("r", encoding="utf-8"), default=None,
                          help=f"{LABELS[field]}, from a file ('-' for stdin).")(fn)
        fn = click.option(f"--{flag}", field, default=None,
                          help=f"{LABELS[field]} (default: the latest version's; '' empties it).")(fn)
    return fn


@briefing.command("edit")
@_field_options
@click.option("--publish", is_flag=True, help="Publish at once (else it is a draft).")
@change()
def briefing_edit(cli, publish, reason, **given):
    """Write a new version, as the console's editor does: it starts from the latest version and changes the
    fields given."""
    from ivr.store.briefings import create, for_active_incident

    versions = for_active_incident(cli.db)[2]
    fields = {f: versions[0][f] if versions else "" for f in FIELDS}
    for field in FIELDS:
        if given[f"{field}_file"] is not None and given[field] is not None:
            raise click.UsageError(f"give --{field.replace('_', '-')} or its -file, not both")
        if given[f"{field}_file"] is not None:
            fields[field] = given[f"{field}_file"].read()
        elif given[field] is not None:
            fields[field] = given[field]
    row = create(cli.db, fields, actor=cli.actor, reason=reason, publish=publish)
    click.echo(f"briefing version {row['version']} saved"
               + (" and published: agents see it now" if row["status"] == "published" else " as a draft"))


@briefing.command("publish")
@click.argument("version", type=int)
@change()
def briefing_publish(cli, version, reason):
    """Publish a version of the active incident's briefing: agents see it at once."""
    from ivr.store.briefings import BriefingError, for_active_incident, publish

    found = next((v for v in for_active_incident(cli.db)[2] if v["version"] == version), None)
    if found is None:
        raise BriefingError(f"the active incident's briefing has no version {version}")
    row = publish(cli.db, found["id"], actor=cli.actor, reason=reason)
    click.echo(f"briefing version {row['version']} is published: agents see it now")
