"""The affected-customer list: import it, check a number."""
from __future__ import annotations

import os
import sys

import click

from ivr.ops.cli.context import by_option, pass_cli


# -- affected-customer list --------------------------------------------------------------------------------
@click.group()
def affected():
    """The affected-customer list ("was my data in the breach?"): import it, check a number."""


def _affected_key_note(cfg) -> None:
    if not os.environ.get("IVR_SECRET_KEY"):  # hashes made under another key would never match a caller
        click.echo(f"note: IVR_SECRET_KEY is not set: numbers are keyed with the secret kept in "
                   f"{cfg.instance_path / 'secret_key'}; the hotline must use the same one", err=True)


@affected.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--region", default="US", show_default=True,
              help="Country for numbers written without +country code (two letters).")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=None,
              help="Rows per committed batch (default: 500000 on SQLite, 200000 on PostgreSQL).")
@by_option
@pass_cli
def affected_import(cli, file, region, batch_size):
    """Add the phone numbers of a CSV file to the list; run it again to resume an interrupted import.

    The number is taken from a column named phone, phone_number, msisdn or number if the file has a header,
    else from the first column. Only keyed hashes are stored. Exits 1 when the file cannot be read, holds no
    rows, or any row was rejected (the valid rows are kept either way).
    """
    import time

    from ivr.store.affected_import import import_file, progress_line, report_lines

    cfg = cli.config
    _affected_key_note(cfg)
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(p):
        if tty:
            click.echo("\r" + progress_line(p), nl=False, err=True)
        elif time.monotonic() - last[0] >= 10:  # logs: one line every 10 s
            last[0] = time.monotonic()
            click.echo(progress_line(p), err=True)

    try:
        report = import_file(cli.db, file, secret_key=cfg.secret_key, actor=cli.actor,
                             default_region=region, batch_size=batch_size, progress=show)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the batches committed so far are kept; run the same command again to "
                   "resume", err=True)
        raise SystemExit(130)
    finally:
        if tty:
            click.echo("", err=True)
    for line in report_lines(report):
        click.echo(line)
    if not report.rows_read:
        raise click.ClickException(f"{file} holds no rows: nothing was imported")
    if report.bad_rows:
        kept = "nothing was imported" if report.bad_rows == report.rows_read else "the other rows are on the list"
        raise click.ClickException(f"{report.bad_rows:,} of {report.rows_read:,} rows were rejected ({kept}): "
                                   f"correct them and import the corrected file")


@affected.command("check")
@click.argument("number")
@click.option("--region", default="US", show_default=True,
              help="Country for a number written without +country code.")
@pass_cli
def affected_check(cli, number, region):
    """Say whether a number is on the list (the number is shown masked)."""
    from ivr.core.phone_numbers import InvalidNumber, normalize
    from ivr.store.affected import is_affected

    cfg = cli.config
    _affected_key_note(cfg)
    try:
        e164 = normalize(number, region)
    except InvalidNumber as exc:
        raise click.ClickException(f"not a valid number: {exc.reason}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    masked = "***" + e164[-4:]  # as the hotline masks callers
    on_list = is_affected(cli.db, cfg.secret_key, e164)
    click.echo(f"{masked}: {'on the affected list' if on_list else 'not on the affected list'}")



@affected.command("references")
@click.argument("file", type=click.Path(dir_okay=False))
@by_option
@pass_cli
def affected_references(cli, file):
    """Add the references printed on the notices (key 8 on the phone proves a caller is on the list).

    Taken from a column named reference, notice_reference or ref (the same file as `import` will do), else
    from a file of one column without a header. Kept as digits, only as keyed hashes; the digit counts
    allowed are the rules file's `verification:`. Running it again adds nothing twice.
    """
    from ivr.core.rules import RulesInvalid, load
    from ivr.store.verification import import_references

    cfg = cli.config
    _affected_key_note(cfg)
    try:
        limits = load(cfg.rules_path).verification
        report = import_references(cli.db, file, secret_key=cfg.secret_key, actor=cli.actor, limits=limits)
    except RulesInvalid as exc:
        raise click.ClickException(f"the rules file is invalid, so the reference lengths are unknown: {exc}")
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: references from {report.column}: rows read {report.rows_read:,}, added "
               f"{report.added:,}, bad {report.bad_rows:,} (audited)")
    for bad in report.bad_samples:
        click.echo(f"  {bad}")
