"""`ivr notify`: breach-notice campaigns by text message (docs/notify.md): plan one from a list file, send,
pause, resume, cancel, and watch it."""
from __future__ import annotations

import sys
import time

import click

from ivr.ops.cli.context import change, pass_cli


@click.group()
def notify():
    """Breach notices by text message: plan a campaign from a list, send it, watch it (docs/notify.md)."""


def _statements(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        lang, sep, path = pair.partition("=")
        if not sep or not lang.strip():
            raise click.UsageError(f"--statement {pair!r}: write it as LANG=FILE, e.g. en=statement_en.txt")
        try:
            with open(path, encoding="utf-8") as fh:
                out[lang.strip().lower()] = fh.read().strip()
        except OSError as exc:
            raise click.UsageError(f"--statement {pair!r}: cannot read {path} ({exc.strerror or exc})") from None
    return out


@notify.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="What staff call this campaign.")
@click.option("--statement", "statements", multiple=True, required=True, metavar="LANG=FILE",
              help="The published short statement in a language (repeat per language); it may place "
                   "{hotline}, {url} and {reference}.")
@click.option("--rate", type=float, default=1.0, show_default=True,
              help="Texts per second from our sender, never exceeded (below 1: per minute).")
@click.option("--quiet-hours", default="21:00-08:00", show_default=True,
              help="No text in the recipient's local time between these (HH:MM-HH:MM; '' for none).")
@click.option("--region", default="US", show_default=True, help="Country for numbers without +country code.")
@change(reason=None)
def plan(cli, file, name, statements, rate, quiet_hours, region):
    """Plan a campaign from a CSV list: number, then optionally language and the exposed-data name (with or
    without a header). Any bad row plans nothing; each is reported with its line. Sends nothing: `ivr notify
    send ID` does."""
    from ivr.core.rules import load
    from ivr.store.notice_plan import CampaignSpec, plan_campaign

    cfg = cli.config
    rules = load(cfg.rules_path)
    spec = CampaignSpec(name=name, statements=_statements(statements), default_language=rules.default_language,
                        rate_per_second=rate, quiet_hours=quiet_hours or None, hotline_number=cfg.hotline_number,
                        notice_url=cfg.notice_url, sender=cfg.messaging_service_sid or cfg.sms_from,
                        exposed_codes=tuple(rules.verification.exposed))
    tty = sys.stderr.isatty()

    def show(p):
        if tty:
            pct = 100.0 * p.bytes_done / p.total_bytes if p.total_bytes else 100.0
            click.echo(f"\r{p.rows_done:>12,} rows  {pct:5.1f}%  {p.rows_done / max(p.elapsed_s, 1e-9):>9,.0f} rows/s",
                       nl=False, err=True)

    try:
        report = plan_campaign(cli.db, file, spec, secret_key=cfg.secret_key, actor=cli.actor,
                               default_region=region, progress=show)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        if tty:
            click.echo("", err=True)
    for line in report.lines():
        click.echo(line)
    if report.campaign_id is None:
        raise click.ClickException(f"{report.bad_rows:,} bad rows: correct them and plan again (nothing was changed)")
    if not report.recipients:
        click.echo("note: nobody to send to", err=True)


def _action(action: str, doc: str):
    @notify.command(action, help=doc)
    @click.argument("campaign", type=int)
    @change(reason="optional")
    def command(cli, campaign, reason):
        from ivr.store.notices import change_state

        figures = change_state(cli.db, campaign, action, actor=cli.actor, reason=reason)
        click.echo(f"campaign {campaign} is {figures['state']}")

    return command


send = _action("send", "Start sending a planned campaign (the sender in `ivr background` does it).")
pause = _action("pause", "Pause a campaign that is sending (within a second's worth of texts).")
resume = _action("resume", "Go on sending a paused campaign.")
cancel = _action("cancel", "End a campaign: what was not sent never will be; every number it held is deleted.")


def bar(figures: dict, width: int = 30) -> str:
    """One line: a bar of done/total, the counts, the rate and the time left."""
    c, total = figures["counts"], figures["total"] or 1
    done = total - c["queued"] - c["sending"]
    filled = int(width * done / total)
    eta = figures["eta_s"]
    left = "--" if eta is None else (f"{eta // 3600}h{eta % 3600 // 60:02d}m" if eta >= 3600 else
                                     f"{eta // 60}m{eta % 60:02d}s")
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{figures['total']:,}  "
            f"{figures['rate_now']:.1f}/s  left {left}  {figures['state']}  "
            f"sent {c['sent']:,} delivered {c['delivered']:,} failed {c['failed']:,} "
            f"opted out {c['opted_out']:,} skipped {c['skipped']:,}")


@notify.command("status")
@click.argument("campaign", type=int, required=False)
@click.option("--watch", is_flag=True, help="Redraw the progress bar every second until the campaign ends.")
@pass_cli
def status(cli, campaign, watch):
    """Campaigns and their progress: counts per state, failures by Twilio's error code, rate and time left."""
    from ivr.store.notices import campaign_figures, campaign_ids

    ids = [campaign] if campaign is not None else campaign_ids(cli.db)
    if not ids:
        click.echo("no campaigns")
        return
    for cid in ids:
        figures = campaign_figures(cli.db, cid)
        if figures is None:
            raise click.ClickException(f"no campaign {cid}")
        click.echo(f"campaign {cid} {figures['name']!r}: {figures['state']}, rate {figures['rate_per_second']:g}/s, "
                   f"quiet hours {figures['quiet_hours'] or 'none'}, languages {', '.join(figures['languages'])}")
        click.echo("  " + bar(figures))
        if figures["failed_by_code"]:
            failed = sorted(figures["failed_by_code"].items())
            click.echo("  failed by Twilio error: " + ", ".join(f"{code}: {n:,}" for code, n in failed))
    if watch and campaign is not None:
        tty = sys.stdout.isatty()
        while figures["state"] in ("planned", "sending", "paused"):
            time.sleep(1.0)
            figures = campaign_figures(cli.db, campaign)
            click.echo(("\r" if tty else "") + bar(figures), nl=not tty)
        click.echo("")
