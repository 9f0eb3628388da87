"""What callers hear: announcements and the incident they are about."""
from __future__ import annotations

from pathlib import Path

import click

from ivr.ops.cli.context import change, lang_option, pass_cli, refusals_as_errors, topic_option


# -- announcements ---------------------------------------------------------------------------------------
def rules_languages(cfg):
    from ivr.core import rules as rules_mod

    try:
        return rules_mod.load(cfg.rules_path).languages
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None


def echo_announcement(row: dict) -> None:
    click.echo(_announcement_line(row))
    for warning in row.get("warnings", ()):
        click.echo(f"warning: {warning}", err=True)


def _announcement_line(row: dict) -> str:
    what = (f"audio {row['media_sha256'][:12]} {row['duration_ms'] / 1000:.1f} s"
            if row["media_sha256"] else "text only")
    engine = f" by {row['engine']}" if row["engine"] else ""
    status = "awaiting approval" if row.get("awaiting_approval") else row["status"]
    return (f"#{row['id']:<5} {row['language']}/{row['topic']:<8} v{row['version']:<3} {status:<9} "
            f"{row['source']}{engine}, {what}, {row['created_by']} {row['created_at']:%Y-%m-%d %H:%M}"
            f"{_approval(row)}")


def _approval(row: dict) -> str:
    """Who let callers hear it besides its author: the second person, or the admin who overrode."""
    if row.get("override_reason"):
        return f", published by {row['approved_by']} alone: {row['override_reason']}"
    return f", approved by {row['approved_by']}" if row.get("approved_by") else ""


_incident_option = click.option(
    "--incident", "incident_id", type=int, default=None,
    help="For this incident, e.g. a draft to have its statements ready before it is activated (default: the "
         "active one).")


@click.group()
def announce():
    """Announcements: create from text or audio, list, publish, roll back, export."""


@announce.command("tts")
@lang_option
@topic_option
@click.option("--text-file", type=click.File("r", encoding="utf-8"), required=False, help="Text to speak ('-' for stdin).")
@click.option("--text", default=None, help="Text to speak (instead of --text-file).")
@click.option("--publish", is_flag=True, help="Publish at once (else it is a draft); with two-person publishing "
              "it then awaits a second person's approval (ivr announce approve).")
@_incident_option
@change()
def announce_tts(cli, lang, topic, text_file, text, publish, incident_id, reason):
    """Synthesise an announcement from text (gTTS, or espeak-ng offline) and store it phone-ready."""
    from ivr.store.announcements import create_from_text

    if text is None and text_file is None:
        raise click.ClickException("give the text with --text-file FILE or --text TEXT")
    body = text if text is not None else text_file.read()
    if not body.strip():
        given = f"--text-file {text_file.name}" if text is None else "--text"
        raise click.ClickException(f"the text given with {given} is empty: nothing was created")
    cfg = cli.config
    row = create_from_text(cli.db, cfg, rules_languages(cfg), lang=lang, topic=topic, text=body,
                           actor=cli.actor, publish=publish, reason=reason, incident_id=incident_id)
    echo_announcement(row)


@announce.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@lang_option
@topic_option
@click.option("--text", default=None, help="What the recording says (shown to admins, spoken if audio fails).")
@click.option("--publish", is_flag=True, help="Publish at once (else it is a draft); with two-person publishing "
              "it then awaits a second person's approval (ivr announce approve).")
@_incident_option
@change()
def announce_upload(cli, file, lang, topic, text, publish, incident_id, reason):
    """Upload a recording (WAV, MP3, OGG, M4A); it is refused whole if unusable."""
    from ivr.store.announcements import create_from_audio

    cfg = cli.config
    row = create_from_audio(cli.db, cfg, rules_languages(cfg), data=Path(file).read_bytes(),
                            lang=lang, topic=topic, text=text, actor=cli.actor, publish=publish,
                            reason=reason, incident_id=incident_id)
    echo_announcement(row)


@announce.command("list")
@click.option("--lang", default=None)
@click.option("--topic", default=None)
@_incident_option
@refusals_as_errors
@pass_cli
def announce_list(cli, lang, topic, incident_id):
    """List an incident's announcement versions (the active one's unless --incident)."""
    from ivr.store.announcements import list_versions

    for row in list_versions(cli.db, lang=lang, topic=topic, incident_id=incident_id):
        click.echo(_announcement_line(row))


@announce.command("publish")
@click.argument("announcement_id", type=int)
@change()
def announce_publish(cli, announcement_id, reason):
    """Publish a version: callers hear it from their next step on. With two-person publishing a version
    callers never heard awaits a second person's approval instead (`ivr announce approve`)."""
    from ivr.store.announcements import publish

    echo_announcement(publish(cli.db, announcement_id, actor=cli.actor, reason=reason,
                               two_person=cli.config.two_person_publishing))


@announce.command("rollback")
@lang_option
@topic_option
@click.option("--to", "to_version", type=int, default=None, help="Version to publish again (default: the previous one).")
@_incident_option
@change()
def announce_rollback(cli, lang, topic, to_version, incident_id, reason):
    """Publish an earlier version again, in one step."""
    from ivr.store.announcements import rollback

    row = rollback(cli.db, lang=lang, topic=topic, to_version=to_version, actor=cli.actor, reason=reason,
                   incident_id=incident_id, two_person=cli.config.two_person_publishing)
    click.echo(_announcement_line(row))


@announce.command("export")
@click.argument("announcement_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True, help="Where to write the WAV.")
@refusals_as_errors
@pass_cli
def announce_export(cli, announcement_id, out):
    """Write a version's phone-ready audio (8 kHz mono μ-law WAV) to a file."""
    from ivr.store.announcements import get, media_bytes

    database = cli.db
    row = get(database, announcement_id)
    if not row["media_sha256"]:
        raise click.ClickException(f"announcement {announcement_id} is text only: it has no audio")
    Path(out).write_bytes(media_bytes(database, row["media_sha256"]))
    click.echo(f"wrote {out} ({row['duration_ms'] / 1000:.1f} s)")


# -- incidents ---------------------------------------------------------------------------------------------
def _severities(cfg) -> list[str]:
    from ivr.core import rules as rules_mod

    try:
        return rules_mod.load(cfg.rules_path).severities
    except rules_mod.RulesInvalid as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def incident():
    """Incidents: what the hotline talks about, and how severe it is."""


@incident.command("list")
@pass_cli
def incident_list(cli):
    from ivr.store.incidents import list_incidents

    for row in list_incidents(cli.db):
        click.echo(f"#{row['id']:<4} {row['status']:<7} {row['severity']:<9} {row['title']}  "
                   f"(exposed: {row['exposed'] or 'unknown'})")


_carry_over_option = click.option(
    "--carry-over", is_flag=True,
    help="Publish for it a copy of what callers hear now, in each language and topic it has nothing for.")


@incident.command("create")
@click.option("--title", required=True)
@click.option("--severity", required=True, help="One of the severities in routing_rules.yaml.")
@click.option("--exposed", default="", help="What data was exposed, e.g. 'names, emails, card numbers'.")
@click.option("--activate", is_flag=True, help="Make it the active incident at once (with --carry-over: a new "
              "incident has nothing published yet).")
@_carry_over_option
@change()
def incident_create(cli, title, severity, exposed, activate, carry_over, reason):
    """Create an incident (a draft unless --activate)."""
    from ivr.store.incidents import create

    cfg = cli.config
    new_id = create(cli.db, title=title, severity=severity, exposed=exposed, severities=_severities(cfg),
                    actor=cli.actor, activate=activate, reason=reason, languages=rules_languages(cfg),
                    carry_over=carry_over)
    done = " and activated" + (", what callers heard carried over" if carry_over else "") if activate else " (draft)"
    click.echo(f"incident {new_id} created{done}")
    if activate:
        _after_activation(cli)


@incident.command("update")
@click.argument("incident_id", type=int)
@click.option("--title", default=None)
@click.option("--severity", default=None)
@click.option("--exposed", default=None)
@change()
def incident_update(cli, incident_id, title, severity, exposed, reason):
    """Change an incident's title, severity or exposed data (takes effect on the next call)."""
    from ivr.store.incidents import update_incident

    update_incident(cli.db, incident_id, severities=_severities(cli.config), actor=cli.actor, reason=reason,
                    title=title, severity=severity, exposed=exposed)
    click.echo(f"incident {incident_id} updated")


@incident.command("activate")
@click.argument("incident_id", type=int)
@_carry_over_option
@change()
def incident_activate(cli, incident_id, carry_over, reason):
    """Make an incident the active one (its announcements and severity apply from the next call). Refused
    while a language would have nothing published for it, unless --carry-over."""
    from ivr.store.incidents import activate_incident

    copied = activate_incident(cli.db, incident_id, actor=cli.actor, reason=reason,
                               languages=rules_languages(cli.config), carry_over=carry_over)
    click.echo(f"incident {incident_id} is now active"
               + (f"; carried over from the one before: {', '.join(copied)}" if copied else ""))
    _after_activation(cli)


def _after_activation(cli) -> None:
    """The go-live check after every activation, for the mode the hotline is in: what callers now hear
    that is not yet this incident's own word."""
    from ivr.ops import caller_view
    from ivr.ops.cli.status import echo_problems
    from ivr.store.state import get_mode

    echo_problems(caller_view.of_install(cli.db, cli.config, for_mode=get_mode(cli.db)[0]).problems,
                  "go-live check")

