"""The `ivr` command: set up, serve, switch modes, check rules and simulate calls."""
from __future__ import annotations

import atexit
import getpass
import os
import sys
from pathlib import Path

import click

from ivr.config import ConfigError, finalize, from_env
from ivr.db import Database


def _config(serving: bool = False):
    """The configuration; only serving (and so simulating in-process) needs the Twilio token."""
    try:
        return finalize(from_env(), serving=serving)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


_DATABASES: dict[str, Database] = {}


def _database(url: str) -> Database:
    """One Database (and connection pool) per URL for this process, released at exit."""
    if url not in _DATABASES:
        if not _DATABASES:
            atexit.register(lambda: [d.dispose() for d in _DATABASES.values()])
        _DATABASES[url] = Database(url)
    return _DATABASES[url]


def _db() -> Database:
    return _database(_config().db_url)


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


def _default_speaker(cfg, database):
    """TTS for the default announcement; if no engine works, the text is published alone (and we say so)."""
    from ivr.announcements import speak
    from ivr.audio import AudioRejected
    from ivr.tts import TTSError

    def _speak(text, lang):
        try:
            return speak(database, cfg, text, lang)
        except (TTSError, AudioRejected) as exc:
            click.echo(f"  no audio for the {lang} default text ({exc}); callers will hear it through <Say>")
            return None

    return _speak


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@click.option("--audio/--no-audio", default=True, show_default=True,
              help="Speak the default announcement with TTS (else callers hear it through Twilio's <Say>).")
def setup(audio):
    """Migrate the database and make sure a default announcement is published."""
    import logging

    from ivr.migrate import upgrade
    from ivr.seed import ensure_default_content

    cfg = _config()
    database = _database(cfg.db_url)
    upgrade(database)
    speak = _default_speaker(cfg, database) if audio else None
    logging.getLogger("ivr.tts").setLevel(logging.ERROR)  # "Google is unreachable" is expected offline
    created = ensure_default_content(database, speak=speak)
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
    cfg = _config(serving=True)
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


# -- announcements ---------------------------------------------------------------------------------------
def _rules_languages(cfg):
    from ivr import rules as rules_mod

    try:
        return rules_mod.load(cfg.rules_path).languages
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None


def _announcement_line(row: dict) -> str:
    what = (f"audio {row['media_sha256'][:12]} {row['duration_ms'] / 1000:.1f} s"
            if row["media_sha256"] else "text only")
    engine = f" by {row['engine']}" if row["engine"] else ""
    return (f"#{row['id']:<5} {row['language']}/{row['topic']:<8} v{row['version']:<3} {row['status']:<9} "
            f"{row['source']}{engine}, {what}, {row['created_by']} {row['created_at']:%Y-%m-%d %H:%M}")


def _announce_errors(fn):
    """Turn the clear errors of the announcement pipeline into CLI errors (exit 1, nothing changed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ivr.announcements import AnnouncementError
        from ivr.audio import AudioRejected
        from ivr.tts import TTSError

        try:
            return fn(*args, **kwargs)
        except (AnnouncementError, AudioRejected, TTSError) as exc:
            raise click.ClickException(f"{exc} (nothing was changed)") from None

    return wrapper


_by = click.option("--by", "actor", default=None, help="Who is making the change (default: your login).")
_reason = click.option("--reason", default="", help="Why: it goes into the audit log.")
_lang = click.option("--lang", default="en", show_default=True, help="Language code from routing_rules.yaml.")
_topic = click.option("--topic", default="main", show_default=True,
                      type=click.Choice(["main", "details", "advice"]), help="What it answers: the main message, "
                      "details (menu 1) or what to do (menu 2).")


@main.group()
def announce():
    """Announcements: create from text or audio, list, publish, roll back, export."""


@announce.command("tts")
@_lang
@_topic
@click.option("--text-file", type=click.File("r", encoding="utf-8"), required=False, help="Text to speak ('-' for stdin).")
@click.option("--text", default=None, help="Text to speak (instead of --text-file).")
@click.option("--publish", is_flag=True, help="Publish at once (else it is a draft).")
@_reason
@_by
@_announce_errors
def announce_tts(lang, topic, text_file, text, publish, reason, actor):
    """Synthesise an announcement from text (gTTS, or espeak-ng offline) and store it phone-ready."""
    from ivr.announcements import create_from_text

    body = text if text is not None else (text_file.read() if text_file else None)
    if not body:
        raise click.ClickException("give the text with --text-file FILE or --text TEXT")
    cfg = _config()
    row = create_from_text(_database(cfg.db_url), cfg, _rules_languages(cfg), lang=lang, topic=topic, text=body,
                           actor=actor or _whoami(), publish=publish, reason=reason)
    click.echo(_announcement_line(row))


@announce.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_lang
@_topic
@click.option("--text", default=None, help="What the recording says (shown to admins, spoken if audio fails).")
@click.option("--publish", is_flag=True, help="Publish at once (else it is a draft).")
@_reason
@_by
@_announce_errors
def announce_upload(file, lang, topic, text, publish, reason, actor):
    """Upload a recording (WAV, MP3, OGG, M4A); it is refused whole if unusable."""
    from ivr.announcements import create_from_audio

    cfg = _config()
    row = create_from_audio(_database(cfg.db_url), cfg, _rules_languages(cfg), data=Path(file).read_bytes(),
                            lang=lang, topic=topic, text=text, actor=actor or _whoami(), publish=publish,
                            reason=reason)
    click.echo(_announcement_line(row))


@announce.command("list")
@click.option("--lang", default=None)
@click.option("--topic", default=None)
@_announce_errors
def announce_list(lang, topic):
    """List the active incident's announcement versions."""
    from ivr.announcements import list_versions

    for row in list_versions(_db(), lang=lang, topic=topic):
        click.echo(_announcement_line(row))


@announce.command("publish")
@click.argument("announcement_id", type=int)
@_reason
@_by
@_announce_errors
def announce_publish(announcement_id, reason, actor):
    """Publish a version: callers hear it from their next step on."""
    from ivr.announcements import publish

    click.echo(_announcement_line(publish(_db(), announcement_id, actor=actor or _whoami(), reason=reason)))


@announce.command("rollback")
@_lang
@_topic
@click.option("--to", "to_version", type=int, default=None, help="Version to publish again (default: the previous one).")
@_reason
@_by
@_announce_errors
def announce_rollback(lang, topic, to_version, reason, actor):
    """Publish an earlier version again, in one step."""
    from ivr.announcements import rollback

    row = rollback(_db(), lang=lang, topic=topic, to_version=to_version, actor=actor or _whoami(), reason=reason)
    click.echo(_announcement_line(row))


@announce.command("export")
@click.argument("announcement_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True, help="Where to write the WAV.")
@_announce_errors
def announce_export(announcement_id, out):
    """Write a version's phone-ready audio (8 kHz mono μ-law WAV) to a file."""
    from ivr.announcements import get, media_bytes

    database = _db()
    row = get(database, announcement_id)
    if not row["media_sha256"]:
        raise click.ClickException(f"announcement {announcement_id} is text only: it has no audio")
    Path(out).write_bytes(media_bytes(database, row["media_sha256"]))
    click.echo(f"wrote {out} ({row['duration_ms'] / 1000:.1f} s)")


# -- users and tokens --------------------------------------------------------------------------------------
@main.group()
def users():
    """People who run the hotline (viewer, ops, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "ops", "admin"]), required=True)
@click.option("--password", default=None, help="Console password (prompted if --ask-password).")
@click.option("--ask-password", is_flag=True, help="Prompt for the password without echo.")
@click.option("--phone-pin", default=None, help="PIN for the admin phone line (admins only).")
@_by
def users_add(name, role, password, ask_password, phone_pin, actor):
    """Add a user."""
    from ivr.users import UserError, add_user

    if ask_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(_db(), name, role, actor=actor or _whoami(), password=password, phone_pin=phone_pin)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name} added as {role}")


@users.command("set-pin")
@click.argument("name")
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True)
@_by
def users_set_pin(name, pin, actor):
    """Set a user's PIN for the admin phone line."""
    from ivr.users import UserError, set_phone_pin

    try:
        set_phone_pin(_db(), name, pin, actor=actor or _whoami())
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"phone PIN set for {name}")


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
@_by
def users_token(name, label, actor):
    """Create an API token for a user (shown once; only its hash is stored)."""
    from ivr.users import UserError, create_token

    try:
        token = create_token(_db(), name, actor=actor or _whoami(), label=label)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


# -- jobs --------------------------------------------------------------------------------------------------
@main.group()
def jobs():
    """Background jobs (phone recordings to publish, ...)."""


@jobs.command("run")
@click.option("--once", is_flag=True, help="Run the jobs that are ready now, then exit.")
def jobs_run(once):
    """Work background jobs (instead of, or beside, the web workers' own job threads)."""
    import time

    import ivr.recordings  # noqa: F401  (registers job handlers)
    from ivr import jobs as jobs_mod
    from ivr.hotline import Hotline

    hotline = Hotline.build(_config())
    done = 0
    while True:
        while jobs_mod.run_one(hotline):
            done += 1
        if once:
            break
        time.sleep(1.0)
    click.echo(f"{done} job(s) run")


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
    if not cfg.twilio_auth_token:
        raise click.ClickException("no Twilio auth token to sign with: set TWILIO_AUTH_TOKEN to the server's token")
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
