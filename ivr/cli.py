"""The `ivr` command: set up, serve, switch modes, check rules and simulate calls."""
from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from ivr.config import ConfigError, finalize, from_env
from ivr.db import Database


def _config():
    try:
        return finalize(from_env())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _db() -> Database:
    return Database(_config().db_url)


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@click.group()
def main():
    """The breach hotline: Twilio voice webhooks, announcements and routing."""


# -- database ----------------------------------------------------------------------------------------------
@main.group()
def db():
    """The database schema."""


@db.command("upgrade")
def db_upgrade():
    """Create or migrate the database schema to the latest version."""
    from ivr.migrate import upgrade

    database = _db()
    upgrade(database)
    click.echo(f"database is up to date ({_safe_url(database.url)})")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
def setup():
    """Migrate the database and make sure a default announcement is published."""
    from ivr.migrate import upgrade
    from ivr.seed import ensure_default_content

    cfg = _config()
    database = Database(cfg.db_url)
    upgrade(database)
    created = ensure_default_content(database)
    click.echo(f"database ready: {_safe_url(database.url)}")
    click.echo("default announcement published (edit it before going live)" if created
               else "announcements: existing ones kept")
    if cfg.token_source == "development-file":
        click.echo(f"no TWILIO_AUTH_TOKEN set: using a local development token kept in "
                   f"{cfg.instance_path / 'dev_twilio_auth_token'} (real Twilio calls will be refused)")


@main.command()
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PORT", 5000)), type=int, show_default="5000")
@click.option("--workers", default=lambda: int(os.environ.get("WEB_CONCURRENCY", 2)), type=int, show_default="2")
def serve(host, port, workers):
    """Serve the hotline with gunicorn (prints the Twilio URLs first)."""
    cfg = _config()
    base = cfg.public_url or f"http://{host}:{port}"
    click.echo(_banner(cfg, base, host, port))
    args = ["gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers), "--access-logfile", "-",
            "--timeout", "30", "ivr.wsgi:app"]
    exe = Path(sys.executable).with_name("gunicorn")
    os.execv(str(exe) if exe.exists() else args[0], args)


def _banner(cfg, base: str, host: str, port: int) -> str:
    lines = [
        "",
        "Breach hotline starting. In the Twilio console, set on your phone number (Voice):",
        f"  A call comes in  (POST):  {base}/voice/incoming",
        f"  Primary handler fails:    {base}/voice/fallback",
        f"  Call status changes:      {base}/voice/status",
    ]
    if not cfg.public_url:
        lines.append("  (Twilio cannot reach 127.0.0.1: expose the port over HTTPS and set IVR_PUBLIC_URL to it.)")
    if cfg.token_source == "development-file":
        lines.append("No TWILIO_AUTH_TOKEN: a local development token is in use, so only simulated calls work.")
    lines += [
        "",
        "Try a call without a phone (in another terminal):",
        f"  .venv/bin/ivr simulate --url http://{host}:{port} --keys 1,9,0",
        "",
    ]
    return "\n".join(lines)


# -- mode --------------------------------------------------------------------------------------------------
@main.group()
def mode():
    """Message-only or live agents: the whole hotline's mode."""


@mode.command("show")
def mode_show():
    """Print the current mode, when it was set and by whom."""
    from ivr.state import get_mode

    current, at, by = get_mode(_db())
    click.echo(f"{current} (since {at:%Y-%m-%d %H:%M:%S} UTC, set by {by})")


@mode.command("set")
@click.argument("new_mode", type=click.Choice(["message", "live"]))
@click.option("--reason", required=True, help="Why: it goes into the audit log.")
@click.option("--by", "actor", default=None, help="Who is making the change (default: your login).")
def mode_set(new_mode, reason, actor):
    """Switch the hotline to message-only or live agents (takes effect on the next call)."""
    from ivr.state import set_mode

    try:
        before, after = set_mode(_db(), new_mode, reason=reason, actor=actor or _whoami())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if before == after:
        click.echo(f"already in {after} mode: nothing changed")
    else:
        click.echo(f"mode changed: {before} -> {after} (audited)")


# -- rules -------------------------------------------------------------------------------------------------
@main.group()
def rules():
    """routing_rules.yaml."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def rules_check(path):
    """Validate a rules file; print every error with its line and field."""
    from ivr import rules as rules_mod

    path = path or str(from_env().rules_path)
    try:
        loaded = rules_mod.load(path)
    except rules_mod.RulesInvalid as exc:
        for err in exc.errors:
            click.echo(f"{path}: {err}", err=True)
        raise SystemExit(1)
    click.echo(f"{path}: OK ({len(loaded.languages)} languages, {len(loaded.menu.options)} menu options)")


# -- simulate ----------------------------------------------------------------------------------------------
@main.command()
@click.option("--keys", default="", help="Keys the caller presses in order, e.g. 1,9,0")
@click.option("--from", "caller", default="+15555550123", show_default=True, help="The caller's number.")
@click.option("--lang", default=None, help="Switch to this language through the menu first (e.g. es).")
@click.option("--url", default=None, help="A running hotline (e.g. http://127.0.0.1:5000); default: in-process.")
@click.option("--media/--no-media", default=False, help="Also fetch the audio the call plays.")
def simulate(keys, caller, lang, url, media):
    """Place a simulated call, signed as Twilio signs, and print what the caller hears."""
    from ivr import rules as rules_mod
    from ivr.simulate import FlaskTransport, HttpTransport, SimulatedCall, keys_for_language

    cfg = _config()
    presses = [k.strip() for k in keys.replace(" ", ",").split(",") if k.strip()]
    try:
        presses = keys_for_language(rules_mod.load(cfg.rules_path), lang) + presses
    except (ValueError, rules_mod.RulesInvalid) as exc:
        raise click.ClickException(str(exc)) from None
    if url:
        transport = HttpTransport(url)
        public = cfg.public_url or url
    else:
        from ivr.app import create_app

        transport = FlaskTransport(create_app(cfg))
        public = cfg.public_url or None
    call = SimulatedCall(transport, cfg.twilio_auth_token, keys=presses, caller=caller, public_url=public,
                         fetch_media=media)
    click.echo(f"Calling the hotline from {caller} (CallSid {call.params['CallSid']}), pressing: "
               f"{' '.join(presses) or 'nothing'}")
    result = call.run()
    click.echo(result.transcript())
    if result.ended.startswith("http-"):
        raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
