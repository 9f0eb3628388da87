"""Simulated calls, signed as Twilio signs: one call on the hotline, the agent line or the admin line
(the operator's test phone), or every key path (`--all-paths`)."""
from __future__ import annotations

from pathlib import Path

import click

from ivr.ops.cli.context import pass_cli
from ivr.store.db import Database

LINES = {"caller": "/voice/incoming", "agent": "/voice/agent", "admin": "/voice/admin"}


def _presses(text: str) -> list[str]:
    """"1,9,0" -> ["1", "9", "0"]; "-" stays silent at that prompt."""
    return ["" if k == "-" else k for k in (k.strip() for k in text.replace(" ", ",").split(",")) if k]


# -- simulate ----------------------------------------------------------------------------------------------
@click.command()
@click.option("--keys", default="", help="Keys pressed in order at each prompt, e.g. 1,9,0 ('-': stay silent at one).")
@click.option("--from", "caller", default="+12025550123", show_default=True,
              help="The caller's number (on --line agent or admin: the staff member's registered phone).")
@click.option("--lang", default=None, help="Switch to this language through the menu first (e.g. es).")
@click.option("--line", type=click.Choice(sorted(LINES)), default="caller", show_default=True,
              help="Which line to dial. agent and admin read the PIN from stdin (never from the command line).")
@click.option("--hold-keys", default="", help="Keys pressed on hold, one at each prompt of the hold loop "
                                              "(e.g. 1: a call back; '-,1': silent on the first pass).")
@click.option("--hold-passes", default=2, show_default=True, type=click.IntRange(0, 50),
              help="How many times the caller hears the hold loop (Twilio's requests of the waitUrl).")
@click.option("--hold-seconds", default=None, type=click.FloatRange(0, 3600),
              help="Or stop once this much time (estimated) has passed on hold.")
@click.option("--steps", default=60, show_default=True, type=click.IntRange(1, 500),
              help="At most this many requests to the hotline; then the caller hangs up (e.g. 4 on the agent "
                   "line, which otherwise waits about ten minutes for a caller).")
@click.option("--url", default=None, help="A running hotline (e.g. http://127.0.0.1:5000); default: in-process.")
@click.option("--media/--no-media", default=False, help="Also fetch the audio the call plays.")
@click.option("--all-paths", is_flag=True, help="Walk every key path in both modes and every language, report "
                                                "dead ends, endless loops and missing prompts, and measure the "
                                                "time to facts of the announcements published.")
@click.option("--depth", default=3, show_default=True, help="How many key presses deep --all-paths goes.")
@pass_cli
def simulate(cli, keys, caller, lang, line, hold_keys, hold_passes, hold_seconds, steps, url, media, all_paths,
             depth):
    """Place a simulated call, signed as Twilio signs, and print what the caller hears.

    On hold the caller hears the hold loop --hold-passes times (or for --hold-seconds), pressing --hold-keys,
    then hangs up, as a waiting caller would.
    """
    if all_paths:
        _all_paths(cli, depth, url)
        return
    from ivr.tools.simulate import HoldPlan, Secret, SimulatedCall

    cfg = cli.config
    if not cfg.twilio_auth_token:
        raise click.ClickException("no Twilio auth token to sign with: set TWILIO_AUTH_TOKEN to the server's token")
    if lang and line != "caller":
        raise click.ClickException("--lang is for the caller line; on the staff lines choose with --keys")
    presses = _presses(keys)
    if line != "caller":
        presses.insert(0, Secret(_read_pin(line)))
    lang_by_ear = None
    if url:
        # The running server's rules are the ones in force, not the file here (which may be broken or
        # differ): the caller chooses their language by ear, as a caller would.
        lang_by_ear = lang
        _warn_if_local_rules_broken(cfg.rules_path)
        transport, public = _http(url), cfg.public_url or url
    else:
        presses = _local_language_keys(cfg.rules_path, lang) + presses
        from ivr.app import create_app
        from ivr.tools.simulate import FlaskTransport

        # In-process: the simulated call alone; background jobs stay with the real server or `ivr jobs run`.
        app = create_app(cfg.with_overrides(jobs_in_app=False))
        transport, public = FlaskTransport(app), cfg.public_url or None
    plan = HoldPlan(passes=hold_passes, seconds=hold_seconds, keys=_presses(hold_keys))
    call = SimulatedCall(transport, cfg.twilio_auth_token, keys=presses, caller=caller, public_url=public,
                         fetch_media=media, hold=plan, lang_by_ear=lang_by_ear, max_requests=steps)
    shown = " ".join("the PIN" if isinstance(k, Secret) else (k or "(silence)") for k in presses)
    click.echo(f"Calling the {line} line from {caller} (CallSid {call.params['CallSid']}), pressing: "
               f"{shown or 'nothing'}" + (f", choosing {lang} by ear" if lang_by_ear else ""))
    result = call.run(LINES[line])
    call.hang_up_on_hold()  # still waiting when the hold bound ran out: the caller hangs up
    if not url:
        app.extensions["ivr"].close()  # flushes the call's records before we read the routing back
    click.echo(result.transcript())
    if call.lang_by_ear:
        click.echo(f"  Note: no prompt offered {lang} in its own voice; the call stayed in the language it began in.")
    for routed in _routing_of(cli.db, result.call_sid):
        click.echo(f"  routing: {routed}")
    if result.ended.startswith("http-"):
        raise SystemExit(1)


def _read_pin(line: str) -> str:
    """The staff PIN from stdin: typed unseen at a terminal, else the first line piped in. Never an argument."""
    import getpass

    stdin = click.get_text_stream("stdin")
    pin = getpass.getpass(f"{line} line PIN (not shown): ") if stdin.isatty() else stdin.readline().strip()
    if not pin.isdigit():
        raise click.ClickException(f"the {line} line needs its PIN on stdin (digits only), e.g. from a password "
                                   f"manager: ... | ivr simulate --line {line}")
    return pin


def _http(url: str):
    from ivr.tools.simulate import HttpTransport

    return HttpTransport(url)


def _warn_if_local_rules_broken(rules_path: Path) -> None:
    from ivr.core import rules as rules_mod

    try:
        rules_mod.load(rules_path)
    except rules_mod.RulesInvalid as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid"
        click.echo(f"Note: the rules file here ({rules_path}) is broken ({first}); the call goes to the server, "
                   f"whose rules in force decide.", err=True)


def _local_language_keys(rules_path: Path, lang: str | None) -> list[str]:
    from ivr.core import rules as rules_mod
    from ivr.tools.simulate import keys_for_language

    try:
        return keys_for_language(rules_mod.load(rules_path), lang)
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(f"{exc}\nAn in-process call runs these rules; to try the rules a running server "
                                   f"has in force, call it with --url.") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


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
def _all_paths(cli, depth: int, url: str | None) -> None:
    """`ivr simulate --all-paths`: the walk on a throwaway database, so nothing real is booked, queued or
    texted; the time to facts on the announcements actually published (the server's with --url, else the
    configured database's, served in-process)."""
    import tempfile

    from ivr.core import rules as rules_mod
    from ivr.app import create_app
    from ivr.config import Config
    from ivr.store.migrate import upgrade
    from ivr.store.seed import ensure_default_content
    from ivr.tools.simulate import explore
    from ivr.tools.time_to_facts import TARGET_S

    rules_path = cli.settings.rules_path
    try:
        rules = rules_mod.load(rules_path)
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/paths.db"
        database = Database(db_url)
        upgrade(database)
        ensure_default_content(database)
        database.dispose()
        app = create_app(Config(env="development", instance_path=Path(tmp), database_url=db_url,
                                twilio_auth_token="all-paths", rules_path=rules_path, secret_key="all-paths",
                                jobs_in_app=False, media_cache_dir=Path(tmp) / "media"))
        try:
            walked, problems = explore(app, "all-paths", rules, depth=depth)
        finally:
            app.extensions["ivr"].close()
    timings = _times_to_facts(cli, rules, url)
    for problem in problems:
        click.echo(problem)
    for timing, published in timings:
        click.echo(f"time to facts, {timing}; measured: {published}")
    slow = [t for t, _ in timings if t.seconds is None or t.seconds > TARGET_S]
    click.echo(f"{walked} paths walked ({len(rules.languages)} languages, both modes, depth {depth}): "
               f"{len(problems) + len(slow)} problem(s)")
    if problems or slow:
        raise SystemExit(1)


def _times_to_facts(cli, rules, url: str | None) -> list:
    """For each language: how long until a caller has heard the main announcement published in it, and
    which one that is. Which is published is read from the configured database; the call goes to the
    server (--url) or to an in-process app on that database whose records go to a throwaway spool, so the
    measuring calls never reach the call records."""
    import tempfile

    from ivr.app import create_app
    from ivr.tools.simulate import FlaskTransport
    from ivr.tools.time_to_facts import Durations, announcement_matcher, measure

    cfg = cli.config
    token = cfg.twilio_auth_token if url else "time-to-facts"
    if not token:
        raise click.ClickException("no Twilio auth token to sign with: set TWILIO_AUTH_TOKEN to the server's token")
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(cfg.with_overrides(database_url=cfg.db_url, instance_path=Path(tmp), public_url="",
                                            twilio_auth_token=token, event_writer="process", jobs_in_app=False))
        try:
            snapshot = app.extensions["ivr"].state.current()
            if not snapshot.fresh:
                raise click.ClickException("cannot read the published announcements from the database: is it "
                                           "reachable and set up (ivr setup)?")
            transport = _http(url) if url else FlaskTransport(app)
            durations = Durations(transport, transport.base)
            return [(measure(transport, token, rules, lang, announcement_matcher(snapshot, lang), durations),
                     _published(snapshot, lang, url)) for lang in rules.languages]
        finally:
            app.extensions["ivr"].close()


def _published(snapshot, lang: str, url: str | None) -> str:
    """Which announcement a time to facts is about: its version, incident and form."""
    where = f"on {url}" if url else "in-process on the configured database"
    spoken = snapshot.content.spoken.get(f"{lang}/main")
    if spoken is None:
        return f"no main announcement published in {lang} ({where})"
    form = "audio" if spoken.media else "text"
    return (f"the {lang} main announcement version {spoken.version} of incident {snapshot.content.incident_id} "
            f"({form}), {where}")
