"""The `ivr` command: set up, serve, switch modes, check rules and simulate calls."""
from __future__ import annotations

import atexit
import getpass
import logging
import os
import shutil
import sys
from pathlib import Path

import click

from ivr.config import ConfigError, finalize, from_env
from ivr.store.db import Database


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
    from ivr.store.migrate import upgrade

    database = _db()
    upgrade(database)
    click.echo(f"database is up to date ({_safe_url(database.url)})")


def _default_speaker(cfg, database):
    """TTS for the default announcement; if no engine works, the text is published alone (and we say so)."""
    from ivr.store.announcements import speak
    from ivr.media.audio import AudioRejected
    from ivr.media.tts import TTSError

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

    from ivr.store.migrate import upgrade
    from ivr.store.seed import ensure_default_content

    cfg = _config()
    database = _database(cfg.db_url)
    upgrade(database)
    speak = _default_speaker(cfg, database) if audio else None
    logging.getLogger("ivr.media.tts").setLevel(logging.ERROR)  # "Google is unreachable" is expected offline
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
    # Metrics from every worker: prometheus-client's multiprocess mode, in a folder emptied at each start.
    metrics_dir = cfg.instance_path / f"prometheus-{port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # The workers only answer webhooks: spooled records and background jobs go to one `ivr background`
    # process, started (and restarted) by gunicorn's master (ivr/gunicorn_conf.py).
    os.environ.setdefault("IVR_EVENT_WRITER", "process")
    if os.environ["IVR_EVENT_WRITER"] == "process":
        os.environ.setdefault("IVR_JOBS_IN_APP", "0")
        from ivr.spool.writer import SpoolWriter

        # /healthz must not take a heartbeat left by an earlier run for this run's writer.
        (cfg.spool_dir / SpoolWriter.HEARTBEAT).unlink(missing_ok=True)
    args = ["gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers), "--access-logfile", "-",
            "--timeout", "30", "--config", "python:ivr.worker.gunicorn_conf", "ivr.wsgi:app"]
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
    from ivr.store.state import get_mode

    current, at, by = get_mode(_db())
    click.echo(f"{current} (since {at:%Y-%m-%d %H:%M:%S} UTC, set by {by})")


@mode.command("set")
@click.argument("new_mode", type=click.Choice(["message", "live"]))
@click.option("--reason", required=True, help="Why: it goes into the audit log.")
@click.option("--by", "actor", default=None, help="Who is making the change (default: your login).")
def mode_set(new_mode, reason, actor):
    """Switch the hotline to message-only or live agents (takes effect on the next call)."""
    from ivr.store.state import set_mode

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
    from ivr.core import rules as rules_mod

    path = path or str(from_env().rules_path)
    try:
        loaded = rules_mod.load(path)
    except rules_mod.RulesInvalid as exc:
        for err in exc.errors:
            click.echo(f"{path}: {err}", err=True)
        raise SystemExit(1)
    click.echo(f"{path}: OK ({len(loaded.languages)} languages, {len(loaded.menu.options)} menu options)")


@rules.command("reload")
@click.option("--by", "actor", default=None, help="Who is reloading (default: your login).")
def rules_reload(actor):
    """Check the rules file and tell every running worker to load it now (audited); refused if invalid."""
    from ivr.core import rules as rules_mod
    from ivr.store.audit import audit

    cfg = from_env()
    path = cfg.rules_path
    try:
        loaded = rules_mod.load(path)
    except rules_mod.RulesInvalid as exc:
        for err in exc.errors:
            click.echo(f"{path}: {err}", err=True)
        with _db().write() as conn:
            audit(conn, actor=actor or _whoami(), action="rules.reload_refused", subject=str(path.name),
                  to_value=str(exc)[:2000], reason="ivr rules reload")
        click.echo("not reloaded: the running hotline keeps its last good rules", err=True)
        raise SystemExit(1)
    os.utime(path)  # workers compare the file's stamp on every request: this is the signal
    with _db().write() as conn:
        audit(conn, actor=actor or _whoami(), action="rules.reload", subject=str(path.name),
              to_value=f"{len(loaded.routing)} routing rules, {len(loaded.queues)} queues", reason="ivr rules reload")
    click.echo(f"{path}: OK; running workers load it on their next request")


# -- announcements ---------------------------------------------------------------------------------------
def _rules_languages(cfg):
    from ivr.core import rules as rules_mod

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


def _clear_errors(fn):
    """Turn the hotline's "cannot do that" errors into CLI errors (exit 1, a clear message, nothing changed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ivr.core.errors import Refused

        try:
            return fn(*args, **kwargs)
        except Refused as exc:
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
@_clear_errors
def announce_tts(lang, topic, text_file, text, publish, reason, actor):
    """Synthesise an announcement from text (gTTS, or espeak-ng offline) and store it phone-ready."""
    from ivr.store.announcements import create_from_text

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
@_clear_errors
def announce_upload(file, lang, topic, text, publish, reason, actor):
    """Upload a recording (WAV, MP3, OGG, M4A); it is refused whole if unusable."""
    from ivr.store.announcements import create_from_audio

    cfg = _config()
    row = create_from_audio(_database(cfg.db_url), cfg, _rules_languages(cfg), data=Path(file).read_bytes(),
                            lang=lang, topic=topic, text=text, actor=actor or _whoami(), publish=publish,
                            reason=reason)
    click.echo(_announcement_line(row))


@announce.command("list")
@click.option("--lang", default=None)
@click.option("--topic", default=None)
@_clear_errors
def announce_list(lang, topic):
    """List the active incident's announcement versions."""
    from ivr.store.announcements import list_versions

    for row in list_versions(_db(), lang=lang, topic=topic):
        click.echo(_announcement_line(row))


@announce.command("publish")
@click.argument("announcement_id", type=int)
@_reason
@_by
@_clear_errors
def announce_publish(announcement_id, reason, actor):
    """Publish a version: callers hear it from their next step on."""
    from ivr.store.announcements import publish

    click.echo(_announcement_line(publish(_db(), announcement_id, actor=actor or _whoami(), reason=reason)))


@announce.command("rollback")
@_lang
@_topic
@click.option("--to", "to_version", type=int, default=None, help="Version to publish again (default: the previous one).")
@_reason
@_by
@_clear_errors
def announce_rollback(lang, topic, to_version, reason, actor):
    """Publish an earlier version again, in one step."""
    from ivr.store.announcements import rollback

    row = rollback(_db(), lang=lang, topic=topic, to_version=to_version, actor=actor or _whoami(), reason=reason)
    click.echo(_announcement_line(row))


@announce.command("export")
@click.argument("announcement_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True, help="Where to write the WAV.")
@_clear_errors
def announce_export(announcement_id, out):
    """Write a version's phone-ready audio (8 kHz mono μ-law WAV) to a file."""
    from ivr.store.announcements import get, media_bytes

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
    from ivr.store.users import UserError, add_user

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
    from ivr.store.users import UserError, set_phone_pin

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
    from ivr.store.users import UserError, create_token

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

    from ivr.hotline import Hotline

    hotline = Hotline.build(_config())
    done = 0
    while True:
        while hotline.jobs.run_one():
            done += 1
        if once:
            break
        time.sleep(1.0)
    click.echo(f"{done} job(s) run")


@jobs.command("kinds")
def jobs_kinds():
    """The kinds of job this install can work (the same in every process that works jobs)."""
    from ivr.worker.handlers import job_handlers

    for kind in sorted(job_handlers()):
        click.echo(kind)


@main.command()
def background():
    """Write the web workers' spooled call records to the database and work background jobs.

    `ivr serve` runs one of these per server and restarts it if it dies; run it yourself only when you run
    gunicorn yourself with IVR_EVENT_WRITER=process. Stops on SIGTERM/SIGINT after writing what is left."""
    import signal
    import threading

    from ivr.spool.writer import SpoolWriter
    from ivr.hotline import Hotline

    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("ivr.background")
    cfg = _config()
    # Below the web workers: on a busy server a webhook waiting for a CPU behind this batch writer would
    # be a caller waiting; the writer only needs to keep up over seconds (the spool holds the rest).
    # Where the kernel groups sessions for scheduling (autogroup), this counts only within our own
    # session: see "What runs on each server" in the README.
    nice = int(os.environ.get("IVR_BACKGROUND_NICE", "10") or 0)
    try:
        os.nice(nice)
    except OSError:
        pass
    hotline = Hotline.build(cfg)
    stop = threading.Event()
    parent = os.getppid()

    def _stop(*_):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _watch_parent():  # the server that started us is gone (even by kill -9): drain and leave
        while not stop.wait(1.0):
            if parent != 1 and os.getppid() != parent:
                log.warning("the server that started this writer is gone: stopping")
                stop.set()

    threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()
    if cfg.event_writer == "process" and not cfg.jobs_in_app:
        hotline.jobs.ensure_started()
    writer = SpoolWriter(hotline.db, cfg.spool_dir, cfg.event_flush_interval, nice=nice)
    log.info("spool writer started on %s (pid %d)", cfg.spool_dir, os.getpid())
    writer.run(stop)
    hotline.jobs.stop()
    log.info("spool writer stopped: %d records written", writer.written)
    hotline.close()


# -- incidents ---------------------------------------------------------------------------------------------
def _severities(cfg) -> list[str]:
    from ivr.core import rules as rules_mod

    try:
        return rules_mod.load(cfg.rules_path).severities
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def incident():
    """Incidents: what the hotline talks about, and how severe it is."""


@incident.command("list")
def incident_list():
    from ivr.store.incidents import list_incidents

    for row in list_incidents(_db()):
        click.echo(f"#{row['id']:<4} {row['status']:<7} {row['severity']:<9} {row['title']}  "
                   f"(exposed: {row['exposed'] or 'unknown'})")


@incident.command("create")
@click.option("--title", required=True)
@click.option("--severity", required=True, help="One of the severities in routing_rules.yaml.")
@click.option("--exposed", default="", help="What data was exposed, e.g. 'names, emails, card numbers'.")
@click.option("--activate", is_flag=True, help="Make it the active incident at once.")
@_reason
@_by
@_clear_errors
def incident_create(title, severity, exposed, activate, reason, actor):
    """Create an incident (a draft unless --activate)."""
    from ivr.store.incidents import create

    cfg = _config()
    new_id = create(_db(), title=title, severity=severity, exposed=exposed, severities=_severities(cfg),
                    actor=actor or _whoami(), activate=activate, reason=reason)
    click.echo(f"incident {new_id} created" + (" and activated" if activate else " (draft)"))


@incident.command("update")
@click.argument("incident_id", type=int)
@click.option("--title", default=None)
@click.option("--severity", default=None)
@click.option("--exposed", default=None)
@_reason
@_by
@_clear_errors
def incident_update(incident_id, title, severity, exposed, reason, actor):
    """Change an incident's title, severity or exposed data (takes effect on the next call)."""
    from ivr.store.incidents import update_incident

    update_incident(_db(), incident_id, severities=_severities(_config()), actor=actor or _whoami(), reason=reason,
                    title=title, severity=severity, exposed=exposed)
    click.echo(f"incident {incident_id} updated")


@incident.command("activate")
@click.argument("incident_id", type=int)
@_reason
@_by
@_clear_errors
def incident_activate(incident_id, reason, actor):
    """Make an incident the active one (its announcements and severity apply from the next call)."""
    from ivr.store.incidents import activate_incident

    activate_incident(_db(), incident_id, actor=actor or _whoami(), reason=reason)
    click.echo(f"incident {incident_id} is now active")


# -- agents and callbacks ----------------------------------------------------------------------------------
@main.group()
def agents():
    """People who take calls on the agent line."""


@agents.command("add")
@click.argument("name")
@click.option("--phone", required=True, help="The number the agent calls from (caller ID), E.164.")
@click.option("--pin", required=True, help="4 to 12 digits.")
@_by
@_clear_errors
def agents_add(name, phone, pin, actor):
    """Add an agent (their number and PIN are stored only hashed)."""
    from ivr.store.agents import add_agent

    add_agent(_db(), _config().secret_key, name, phone, pin, actor=actor or _whoami())
    click.echo(f"agent {name} added")


@agents.command("list")
def agents_list():
    from ivr.store.agents import agents as list_agents

    for row in list_agents(_db()):
        click.echo(f"{row['name']:<20} {row['phone_masked']:<10} {'active' if row['active'] else 'inactive'}")


@main.group()
def callbacks():
    """Callers waiting to be called back: the agents' worklist."""


@callbacks.command("list")
@click.option("--done", is_flag=True, help="Show finished callbacks instead.")
def callbacks_list(done):
    """The worklist, highest priority first, then in the order callers called."""
    from ivr.store.queues import callbacks as list_callbacks

    rows = list_callbacks(_db(), "done" if done else "waiting")
    for row in rows:
        vm = f" voicemail {row['voicemail_url']}" if row["voicemail_url"] else ""
        click.echo(f"#{row['id']:<5} p{row['priority']:<3} {row['requested_at']:%Y-%m-%d %H:%M} {row['number']:<16} "
                   f"{row['language']} {row['queue'] or '-'}: {row['reason']}{vm}")
    if not rows:
        click.echo("no callbacks waiting" if not done else "no finished callbacks")


@callbacks.command("done")
@click.argument("callback_id", type=int)
@click.option("--note", default="", help="What happened (kept with the callback).")
@_by
@_clear_errors
def callbacks_done(callback_id, note, actor):
    """Mark a callback as done."""
    from ivr.store.queues import callback_done

    callback_done(_db(), callback_id, actor=actor or _whoami(), note=note)
    click.echo(f"callback {callback_id} done")


# -- affected-customer list --------------------------------------------------------------------------------
@main.group()
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
@_by
def affected_import(file, region, batch_size, actor):
    """Add the phone numbers of a CSV file to the list; run it again to resume an interrupted import.

    The number is taken from a column named phone, phone_number, msisdn or number if the file has a header,
    else from the first column. Only keyed hashes are stored. Exits 1 only if the file cannot be read.
    """
    import time

    from ivr.store.affected_import import import_file, progress_line, report_lines

    cfg = _config()
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
        report = import_file(_database(cfg.db_url), file, secret_key=cfg.secret_key, actor=actor or _whoami(),
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


@affected.command("check")
@click.argument("number")
@click.option("--region", default="US", show_default=True,
              help="Country for a number written without +country code.")
def affected_check(number, region):
    """Say whether a number is on the list (the number is shown masked)."""
    from ivr.core.phone_numbers import InvalidNumber, normalize
    from ivr.store.affected import is_affected

    cfg = _config()
    _affected_key_note(cfg)
    try:
        e164 = normalize(number, region)
    except InvalidNumber as exc:
        raise click.ClickException(f"not a valid number: {exc.reason}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    masked = "***" + e164[-4:]  # as the hotline masks callers
    on_list = is_affected(_database(cfg.db_url), cfg.secret_key, e164)
    click.echo(f"{masked}: {'on the affected list' if on_list else 'not on the affected list'}")


# -- simulate ----------------------------------------------------------------------------------------------
@main.command()
@click.option("--keys", default="", help="Keys the caller presses in order, e.g. 1,9,0")
@click.option("--from", "caller", default="+15555550123", show_default=True, help="The caller's number.")
@click.option("--lang", default=None, help="Switch to this language through the menu first (e.g. es).")
@click.option("--url", default=None, help="A running hotline (e.g. http://127.0.0.1:5000); default: in-process.")
@click.option("--media/--no-media", default=False, help="Also fetch the audio the call plays.")
@click.option("--all-paths", is_flag=True, help="Walk every key path in both modes and every language, and "
                                                "report dead ends, endless loops and missing prompts.")
@click.option("--depth", default=3, show_default=True, help="How many key presses deep --all-paths goes.")
def simulate(keys, caller, lang, url, media, all_paths, depth):
    """Place a simulated call, signed as Twilio signs, and print what the caller hears."""
    if all_paths:
        _all_paths(depth)
        return
    from ivr.core import rules as rules_mod
    from ivr.tools.simulate import FlaskTransport, HttpTransport, SimulatedCall, keys_for_language

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

        # In-process: the simulated call alone; background jobs stay with the real server or `ivr jobs run`.
        app = create_app(cfg.with_overrides(jobs_in_app=False))
        transport = FlaskTransport(app)
        public = cfg.public_url or None
    call = SimulatedCall(transport, cfg.twilio_auth_token, keys=presses, caller=caller, public_url=public,
                         fetch_media=media)
    click.echo(f"Calling the hotline from {caller} (CallSid {call.params['CallSid']}), pressing: "
               f"{' '.join(presses) or 'nothing'}")
    result = call.run()
    if not url:
        app.extensions["ivr"].close()  # flushes the call's records before we read the routing back
    click.echo(result.transcript())
    for line in _routing_of(cfg, result.call_sid):
        click.echo(f"  routing: {line}")
    if result.ended.startswith("http-"):
        raise SystemExit(1)


def _routing_of(cfg, call_sid: str) -> list[str]:
    """The routing decisions recorded for a call (the hotline records them asynchronously)."""
    import time

    from sqlalchemy import select

    from ivr.store.models import CallEvent

    deadline = time.monotonic() + 2.0
    while True:
        try:
            with _db().read() as conn:
                rows = conn.execute(select(CallEvent.detail).where(CallEvent.call_sid == call_sid,
                                                                   CallEvent.kind == "route")).scalars().all()
        except Exception:
            return []
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _all_paths(depth: int) -> None:
    """`ivr simulate --all-paths`: on a throwaway database, so nothing real is booked, queued or texted."""
    import tempfile

    from ivr.core import rules as rules_mod
    from ivr.app import create_app
    from ivr.config import Config
    from ivr.store.migrate import upgrade
    from ivr.store.seed import ensure_default_content
    from ivr.tools.simulate import explore

    cfg = from_env()
    try:
        rules = rules_mod.load(cfg.rules_path)
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/paths.db"
        database = Database(url)
        upgrade(database)
        ensure_default_content(database)
        database.dispose()
        app = create_app(Config(env="development", instance_path=Path(tmp), database_url=url,
                                twilio_auth_token="all-paths", rules_path=cfg.rules_path, secret_key="all-paths",
                                jobs_in_app=False, media_cache_dir=Path(tmp) / "media"))
        try:
            walked, problems = explore(app, "all-paths", rules, depth=depth)
        finally:
            app.extensions["ivr"].close()
    for problem in problems:
        click.echo(problem)
    click.echo(f"{walked} paths walked ({len(rules.languages)} languages, both modes, depth {depth}): "
               f"{len(problems)} problem(s)")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
