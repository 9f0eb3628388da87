"""What callers hear: announcements and the incident they are about."""
from __future__ import annotations

from pathlib import Path

import click

from ivr.ops.cli.context import _by, _clear_errors, _config, _database, _db, _lang, _reason, _topic, _whoami


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


@click.group()
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

