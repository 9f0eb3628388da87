"""Running the hotline: setup, serve (and its banner), the database schema, the background process, jobs."""
from __future__ import annotations

import os
import shutil
import sys

import click

from ivr.ops.cli.context import pass_cli, refusals_as_errors


# -- database ----------------------------------------------------------------------------------------------
@click.group()
def db():
    """The database schema."""


@db.command("upgrade")
@pass_cli
@refusals_as_errors
def db_upgrade(cli):
    """Create or migrate the database schema to the latest version."""
    from ivr.store.migrate import upgrade

    database = cli.db
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


@click.command()
@click.option("--audio/--no-audio", default=True, show_default=True,
              help="Speak the default announcement with TTS (else callers hear it through Twilio's <Say>).")
@pass_cli
@refusals_as_errors
def setup(cli, audio):
    """Migrate the database and make sure a default announcement is published."""
    import logging

    from ivr.store.migrate import upgrade
    from ivr.store.private_files import make_private
    from ivr.store.sealed import ensure_key_file, key_file, keyring_for
    from ivr.store.seed import ensure_default_content

    cfg = cli.config
    if tightened := make_private(cfg.instance_path):  # before the database is opened: its -wal/-shm follow it
        click.echo(f"instance folder made private: {len(tightened)} file(s) or folder(s) no longer readable by others")
    database = cli.db
    upgrade(database)
    if ensure_key_file(cfg.instance_path, cfg.data_keys):
        click.echo(f"data key made: {key_file(cfg.instance_path)} (mode 0600; keep a copy apart from the backups)")
    if not (ring := keyring_for(database)).usable:
        click.echo(f"warning: {ring.problem}: texts, callback dials and \"call now\" will wait for a data key",
                   err=True)
    speak = _default_speaker(cfg, database) if audio else None
    tts_log = logging.getLogger("ivr.media.tts")
    level = tts_log.level
    tts_log.setLevel(logging.ERROR)  # "Google is unreachable" is expected offline, here only
    try:
        created = ensure_default_content(database, speak=speak)
    finally:
        tts_log.setLevel(level)  # a process that runs more than this command keeps its warnings
    click.echo(f"database ready: {_safe_url(database.url)}")
    click.echo("default announcement published (edit it before going live)" if created
               else "announcements: existing ones kept")
    if cfg.token_source == "development-file":
        click.echo(f"no TWILIO_AUTH_TOKEN set: using a local development token kept in "
                   f"{cfg.instance_path / 'dev_twilio_auth_token'} (real Twilio calls will be refused)")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PORT", 5000)), type=int, show_default="5000",
              help="The caller pool: what Twilio calls (/voice, /media) and the probes.")
@click.option("--staff-port", type=int, default=None, show_default="port + 1",
              help="The staff pool: the console, the API, /metrics and the probes.")
@click.option("--workers", default=lambda: int(os.environ.get("WEB_CONCURRENCY", 2)), type=int, show_default="2",
              help="Workers of the caller pool.")
@click.option("--staff-workers", default=lambda: int(os.environ.get("IVR_STAFF_WORKERS", 2)), type=int,
              show_default="2", help="Workers of the staff pool.")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def serve(cli, host, port, staff_port, workers, staff_workers, gunicorn_args):
    """Serve the hotline: callers and staff in two gunicorn pools (prints the Twilio URLs first).

    Anything after `--` goes to both pools' gunicorn as it is, after ivr's own settings, so it wins (as
    GUNICORN_CMD_ARGS does over ivr/worker/gunicorn_conf.py): `ivr serve --port 8001 -- --max-requests 10000`.
    """
    from ivr.ops.logs import banner, configure
    from ivr.ops.serving import STAFF_NICE, InstanceInUse, Pool, Supervisor, hold_instance
    from ivr.store.private_files import make_private

    cfg = cli.serving_config
    staff_port = staff_port or port + 1
    if staff_port == port:
        raise click.UsageError("--staff-port must differ from --port")
    try:
        lock_fd = hold_instance(cfg.instance_path)  # before anything in the folder changes
    except InstanceInUse as exc:
        raise click.ClickException(str(exc)) from None
    make_private(cfg.instance_path)  # an instance folder left readable by an older version or another umask
    base = cfg.public_url or f"http://{host}:{port}"
    banner(cfg.log_format, _banner(cfg, base, host, port, staff_port))
    configure(cfg.log_format, "serve")
    # Metrics from every worker of both pools: prometheus-client's multiprocess mode, in a folder emptied at
    # each start; the staff pool's /metrics reads the caller pool's figures there too.
    metrics_dir = cfg.instance_path / f"prometheus-{port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # The workers only answer requests: spooled records and background jobs go to one `ivr background`
    # process, started (and restarted) by the caller pool's master (ivr/worker/gunicorn_conf.py).
    os.environ.setdefault("IVR_EVENT_WRITER", "process")
    if os.environ["IVR_EVENT_WRITER"] == "process":
        os.environ.setdefault("IVR_JOBS_IN_APP", "0")
        from ivr.spool.writer import SpoolWriter

        # /healthz must not take a heartbeat left by an earlier run for this run's writer.
        (cfg.spool_dir / SpoolWriter.HEARTBEAT).unlink(missing_ok=True)
    pools = [Pool("callers", "ivr.wsgi:callers", host, port, workers),
             Pool("staff", "ivr.wsgi:staff", host, staff_port, staff_workers, nice=STAFF_NICE)]
    sys.exit(Supervisor(pools, tuple(gunicorn_args), lock_fd).run())


def _banner(cfg, base: str, host: str, port: int, staff_port: int) -> str:
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
        f"Console and API (staff, a port of their own): http://{host}:{staff_port}/console/",
        "",
        "Try a call without a phone (in another terminal):",
        f"  .venv/bin/ivr simulate --url http://{host}:{port} --keys 1,9,0",
        "",
    ]
    return "\n".join(lines)


# -- jobs --------------------------------------------------------------------------------------------------
@click.group()
def jobs():
    """Background jobs (phone recordings to publish, ...)."""


@jobs.command("run")
@click.option("--once", is_flag=True, help="Run the jobs that are ready now, then exit.")
@pass_cli
def jobs_run(cli, once):
    """Work background jobs (instead of, or beside, the web workers' own job threads)."""
    import time

    from ivr.hotline import Hotline

    hotline = Hotline.build(cli.config)
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


@click.command()
@pass_cli
def background(cli):
    """Write the web workers' spooled call records to the database and work background jobs.

    `ivr serve` runs one of these per server and restarts it if it dies; run it yourself only when you run
    gunicorn yourself with IVR_EVENT_WRITER=process. Stops on SIGTERM/SIGINT after writing what is left."""
    from ivr.worker.background import run_background

    run_background(cli.config)
