"""`ivr notice-report`: the report for regulators on the breach notices sent (ivr/store/notice_report.py),
the same rows as the console's Notices report and GET /api/notices/report."""
from __future__ import annotations

import click

from ivr.ops.cli.context import pass_cli, refusals_as_errors


@click.command("notice-report")
@click.option("--campaign", type=click.IntRange(min=1), help="One campaign (default: every campaign).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@refusals_as_errors
@pass_cli
def notice_report(cli, campaign, fmt):
    """Who was told when, by which channel, with what text: per campaign, language and exposed-data group."""
    import csv
    import io
    import json

    from ivr.ops.console.export import cell
    from ivr.store.notice_report import REPORT_COLUMNS, regulator_report

    rows = regulator_report(cli.db, campaign)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(REPORT_COLUMNS)
    writer.writerows([cell(row[c]) for c in REPORT_COLUMNS] for row in rows)
    click.echo(out.getvalue(), nl=False)
