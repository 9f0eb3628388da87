"""Simulated calls, signed as Twilio signs: one call, or every key path (`--all-paths`)."""
from __future__ import annotations

from pathlib import Path

import click

from ivr.ops.cli.context import pass_cli
from ivr.store.db import Database


# -- simulate ----------------------------------------------------------------------------------------------
@click.command()
@click.option("--keys", default="", help="Keys the caller presses in order, e.g. 1,9,0")
@click.option("--from", "caller", default="+12025550123", show_default=True, help="The caller's number.")
@click.option("--lang", default=None, help="Switch to this language through the menu first (e.g. es).")
@click.option("--url", default=None, help="A running hotline (e.g. http://127.0.0.1:5000); default: in-process.")
@click.option("--media/--no-media", default=False, help="Also fetch the audio the call plays.")
@click.option("--all-paths", is_flag=True, help="Walk every key path in both modes and every language, and "
                                                "report dead ends, endless loops and missing prompts.")
@click.option("--depth", default=3, show_default=True, help="How many key presses deep --all-paths goes.")
@pass_cli
def simulate(cli, keys, caller, lang, url, media, all_paths, depth):
    """Place a simulated call, signed as Twilio signs, and print what the caller hears."""
    if all_paths:
        _all_paths(cli.settings.rules_path, depth)
        return
    from ivr.core import rules as rules_mod
    from ivr.tools.simulate import FlaskTransport, HttpTransport, SimulatedCall, keys_for_language

    cfg = cli.config
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
    for line in _routing_of(cli.db, result.call_sid):
        click.echo(f"  routing: {line}")
    if result.ended.startswith("http-"):
        raise SystemExit(1)


def _routing_of(database: Database, call_sid: str) -> list[str]:
    """The routing decisions recorded for a call (the hotline records them asynchronously)."""
    import time

    from sqlalchemy import select

    from ivr.store.models import CallEvent

    deadline = time.monotonic() + 2.0
    while True:
        try:
            with database.read() as conn:
                rows = conn.execute(select(CallEvent.detail).where(CallEvent.call_sid == call_sid,
                                                                   CallEvent.kind == "route")).scalars().all()
        except Exception:
            return []
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _all_paths(rules_path: Path, depth: int) -> None:
    """`ivr simulate --all-paths`: on a throwaway database, so nothing real is booked, queued or texted."""
    import tempfile

    from ivr.core import rules as rules_mod
    from ivr.app import create_app
    from ivr.config import Config
    from ivr.store.migrate import upgrade
    from ivr.store.seed import ensure_default_content
    from ivr.tools.simulate import explore
    from ivr.tools.time_to_facts import TARGET_S

    try:
        rules = rules_mod.load(rules_path)
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/paths.db"
        database = Database(url)
        upgrade(database)
        ensure_default_content(database)
        database.dispose()
        app = create_app(Config(env="development", instance_path=Path(tmp), database_url=url,
                                twilio_auth_token="all-paths", rules_path=rules_path, secret_key="all-paths",
                                jobs_in_app=False, media_cache_dir=Path(tmp) / "media"))
        try:
            walked, problems = explore(app, "all-paths", rules, depth=depth)
            timings = _times_to_facts(app, rules)
        finally:
            app.extensions["ivr"].close()
    for problem in problems:
        click.echo(problem)
    for timing in timings:
        click.echo(f"time to facts, {timing}")
    slow = [t for t in timings if t.seconds is None or t.seconds > TARGET_S]
    click.echo(f"{walked} paths walked ({len(rules.languages)} languages, both modes, depth {depth}): "
               f"{len(problems) + len(slow)} problem(s)")
    problems += slow
    if problems:
        raise SystemExit(1)


def _times_to_facts(app, rules) -> list:
    """For each language: how long until a caller has heard the published announcement in it."""
    from ivr.tools.simulate import FlaskTransport
    from ivr.tools.time_to_facts import Durations, announcement_matcher, measure

    transport = FlaskTransport(app)
    durations = Durations(transport, transport.base)
    snapshot = app.extensions["ivr"].state.current()
    return [measure(transport, "all-paths", rules, lang, announcement_matcher(snapshot, lang), durations)
            for lang in rules.languages]
