"""Announcements: versions of what callers hear, made from text (TTS), an upload or a phone recording.

Every source goes through one pipeline (decode, mono, trim, normalise, 8 kHz μ-law) and is stored once by
checksum in the database, which is the source of truth for the bytes. Publishing is one transaction: the
new version becomes the only published one for its incident, language and topic, the old one is archived,
the change is audited, and every worker reloads the content on its next request.

With two-person publishing (Config.two_person_publishing, on by default) asking to publish a version callers
have never heard only marks it as awaiting approval; a second person approves it (ivr/store/approvals.py).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, select, update

from ivr.config import Config
from ivr.core.errors import Conflict, NotFound, Refused
from ivr.media import audio, hold_tone, tts
from ivr.store.audit import audit
from ivr.store.db import Database, dialect_insert
from ivr.store.files import cached_media, write_atomically
from ivr.store.models import TOPICS, Announcement, Incident, Media, TTSCacheEntry, utcnow
from ivr.store.reads import active_incident
from ivr.store.state import bump_content
from ivr.store.versions import next_version, publish_version

log = logging.getLogger(__name__)

ROW_COLUMNS = (Announcement.id, Announcement.incident_id, Announcement.language, Announcement.topic,
               Announcement.version, Announcement.status, Announcement.text, Announcement.source,
               Announcement.engine, Announcement.media_sha256, Announcement.duration_ms, Announcement.created_by,
               Announcement.created_at, Announcement.published_at, Announcement.requested_by,
               Announcement.requested_at, Announcement.approved_by, Announcement.approved_at,
               Announcement.override_reason)


class AnnouncementError(Refused):
    """A request about announcements that cannot be carried out; nothing was changed."""


class AnnouncementNotFound(AnnouncementError, NotFound):
    """No such announcement, version or incident."""


class AnnouncementConflict(AnnouncementError, Conflict):
    """Not now: e.g. already published, nothing to roll back to, no active incident."""


@dataclass(frozen=True)
class Audio:
    """Phone-ready audio stored in the database."""

    sha256: str
    duration_ms: int
    engine: str | None = None
    cached: bool = False


# -- making audio ------------------------------------------------------------------------------------------


def store_media(conn: Connection, phone: audio.PhoneAudio) -> None:
    """Keep phone-ready audio by its checksum: identical audio is stored once."""
    conn.execute(dialect_insert(conn, Media.__table__).on_conflict_do_nothing().values(
        sha256=phone.sha256, content_type=phone.content_type, data=phone.wav, size=len(phone.wav),
        duration_ms=phone.duration_ms, created_at=utcnow()))


def ensure_hold_tone(db: Database, cache_dir: Path) -> tuple[float, str] | None:
    """Make the hold tone and put it in this server's media cache, which /media serves it from, so that a
    worker started while the database is away has it too; then store it in the database (once), for servers
    whose cache lacks it. (seconds, sha256), or None if it could not be made (hold falls back to a pause)."""
    try:
        tone = hold_tone.phone_ready()
        path = cached_media(cache_dir, tone.sha256)
        if not path.exists():
            write_atomically(path, tone.wav)
    except Exception as exc:  # a missing ffmpeg or an unwritable cache must not stop the hotline
        log.error("no hold tone (callers on hold hear a pause instead): %s", exc)
        return None
    try:
        with db.write() as conn:
            store_media(conn, tone)
    except Exception as exc:  # the database is away: this server serves the tone from its cache meanwhile
        log.warning("hold tone not stored in the database yet (served from this server's cache): %s", exc)
    return tone.duration_ms / 1000, tone.sha256


def process_audio(data: bytes, cfg: Config) -> audio.PhoneAudio:
    """Decode and make phone-ready, within the configured limits; raise audio.AudioRejected otherwise."""
    seg = audio.decode(data, max_bytes=cfg.upload_max_bytes, max_decoded_seconds=cfg.audio_max_seconds * 4)
    return audio.make_phone_ready(seg, max_seconds=cfg.audio_max_seconds)


def tts_key(text: str, lang: str, voice: str | None) -> str:
    return hashlib.sha256(f"{lang}\x00{voice or ''}\x00{text.strip()}".encode()).hexdigest()


def speak(db: Database, cfg: Config, text: str, lang: str, voice: str | None = None) -> Audio:
    """Phone-ready speech for a text: from the cache if these words were spoken before, else synthesised."""
    key = tts_key(text, lang, voice)
    with db.read() as conn:
        hit = conn.execute(select(TTSCacheEntry.media_sha256, TTSCacheEntry.engine, Media.duration_ms)
                           .join(Media, Media.sha256 == TTSCacheEntry.media_sha256)
                           .where(TTSCacheEntry.key == key)).first()
    if hit:
        return Audio(hit.media_sha256, hit.duration_ms, hit.engine, cached=True)
    speech = tts.synthesize(text, lang, engines=cfg.tts_engines, gtts_timeout=cfg.gtts_timeout, voice=voice)
    phone = process_audio(speech.data, cfg)
    with db.write() as conn:
        store_media(conn, phone)
        conn.execute(dialect_insert(conn, TTSCacheEntry.__table__).on_conflict_do_nothing().values(
            key=key, media_sha256=phone.sha256, engine=speech.engine, created_at=utcnow()))
    return Audio(phone.sha256, phone.duration_ms, speech.engine)


def store_upload(db: Database, cfg: Config, data: bytes) -> Audio:
    """An uploaded or recorded file, refused whole (AudioRejected) or stored phone-ready."""
    phone = process_audio(data, cfg)
    with db.write() as conn:
        store_media(conn, phone)
    return Audio(phone.sha256, phone.duration_ms)


# -- versions ----------------------------------------------------------------------------------------------


def _incident_id(conn: Connection, incident_id: int | None) -> int:
    if incident_id is not None:
        if conn.execute(select(Incident.id).where(Incident.id == incident_id)).first() is None:
            raise AnnouncementNotFound(f"there is no incident {incident_id}")
        return incident_id
    found = active_incident(conn)
    if found is None:
        raise AnnouncementConflict("there is no active incident; create or activate one first")
    return found.id


def check_target(languages, lang: str, topic: str) -> None:
    if lang not in languages:
        raise AnnouncementError(f"language {lang!r} is not configured (routing_rules.yaml has: "
                                f"{', '.join(languages)})")
    if topic not in TOPICS:
        raise AnnouncementError(f"topic must be one of {', '.join(TOPICS)}, not {topic!r}")


def create_version(db: Database, *, lang: str, topic: str, text: str | None, source: str, audio_: Audio | None,
                   actor: str, publish: bool = False, reason: str = "", incident_id: int | None = None,
                   two_person: bool = True) -> dict:
    """Add a new version (a draft, or published at once: with `two_person`, a draft awaiting a second person's
    approval); returns it as a dict."""
    if not text and audio_ is None:
        raise AnnouncementError("an announcement needs text or audio")
    with db.write() as conn:
        inc = _incident_id(conn, incident_id)
        version = next_version(conn, Announcement, Announcement.incident_id == inc, Announcement.language == lang,
                               Announcement.topic == topic)
        new_id = conn.execute(insert(Announcement).values(
            incident_id=inc, language=lang, topic=topic, version=version, status="draft",
            text=text, source=source, engine=audio_.engine if audio_ else None,
            media_sha256=audio_.sha256 if audio_ else None, duration_ms=audio_.duration_ms if audio_ else None,
            created_by=actor, created_at=utcnow(),
        )).inserted_primary_key[0]
        audit(conn, actor=actor, action="announcement.create",
              subject=audit_subject(inc, lang, topic, version),
              to_value=_describe(source, text, audio_), reason=reason)
        if publish:
            _publish_or_ask(conn, new_id, actor, reason, two_person)
        return with_warnings(conn, version_row(conn, new_id))


def publish(db: Database, announcement_id: int, *, actor: str, reason: str = "", two_person: bool = True) -> dict:
    """Make a version the one callers hear; the previously published one is archived. Atomic and audited.
    With `two_person`, a version callers have never heard only awaits a second person's approval."""
    with db.write() as conn:
        _publish_or_ask(conn, announcement_id, actor, reason, two_person)
        return with_warnings(conn, version_row(conn, announcement_id))


def _publish_or_ask(conn: Connection, announcement_id: int, actor: str, reason: str, two_person: bool) -> None:
    row = version_row(conn, announcement_id)
    if two_person and needs_approval(row):
        ask_approval(conn, row, actor, reason)
    else:
        publish_and_audit(conn, announcement_id, actor, reason)


def needs_approval(row: dict) -> bool:
    """Callers have never heard this version and no second person has approved it (approved ahead of a
    scheduled publish, it is published at that time without asking again)."""
    return row["published_at"] is None and row["approved_by"] is None


def ask_approval_once(conn: Connection, announcement_id: int, actor: str, reason: str) -> None:
    """Ask for a second person's approval unless it was asked for or given already (a publish scheduled ahead:
    the draft shows as awaiting approval from the moment it is planned)."""
    row = version_row(conn, announcement_id)
    if row["status"] == "draft" and needs_approval(row) and row["requested_by"] is None:
        ask_approval(conn, row, actor, reason)


def ask_approval(conn: Connection, row: dict, actor: str, reason: str) -> None:
    """Mark a draft as awaiting a second person's approval (callers do not hear it meanwhile); audited."""
    if row["status"] != "draft":
        raise AnnouncementConflict(f"announcement {row['id']} (version {row['version']}) is already {row['status']}")
    if row["requested_by"] is not None:
        raise AnnouncementConflict(f"announcement {row['id']} (version {row['version']}) already awaits approval "
                                   f"(asked for by {row['requested_by']})")
    conn.execute(update(Announcement).where(Announcement.id == row["id"]).values(requested_by=actor,
                                                                                  requested_at=utcnow()))
    audit(conn, actor=actor, action="announcement.publish_requested",
          subject=audit_subject(row["incident_id"], row["language"], row["topic"], row["version"]),
          to_value=f"version {row['version']} awaits a second person's approval", reason=reason)


SUPPORTING_TOPICS = {"details": "1", "advice": "2"}  # the topics callers reach from the main announcement


def with_warnings(conn: Connection, row: dict) -> dict:
    """The row, with `warnings`: a main announcement published (or awaiting approval) while its incident has no
    details or advice in that language (callers pressing 1 or 2 then hear the main announcement again)."""
    warnings = []
    if (row["status"] == "published" or row["awaiting_approval"]) and row["topic"] == "main":
        published = set(conn.execute(select(Announcement.topic).where(
            Announcement.incident_id == row["incident_id"], Announcement.language == row["language"],
            Announcement.status == "published")).scalars())
        for topic, key in SUPPORTING_TOPICS.items():
            if topic not in published:
                warnings.append(f"no {topic} announcement is published in {row['language']} for this incident: "
                                f"callers who press {key} hear the main announcement again until one is")
    return {**row, "warnings": warnings}


def publish_and_audit(conn: Connection, announcement_id: int, actor: str, reason: str,
                      action: str = "announcement.publish", how: str = "") -> None:
    """Publish a version inside the caller's transaction, and audit it (`action`, and `how` it came to be published: who asked, who approved)."""
    row, previous = publish_version(conn, Announcement, ROW_COLUMNS, announcement_id,
                                    ("incident_id", "language", "topic"), AnnouncementError, "announcement",
                                    missing=AnnouncementNotFound, published=AnnouncementConflict)
    audit(conn, actor=actor, action=action,
          subject=audit_subject(row.incident_id, row.language, row.topic, row.version),
          from_value=f"version {previous.version}" if previous else None,
          to_value=f"version {row.version}" + (f" ({how})" if how else ""), reason=reason)
    bump_content(conn)


def rollback(db: Database, *, lang: str, topic: str = "main", to_version: int | None = None, actor: str,
             reason: str = "", incident_id: int | None = None, two_person: bool = True) -> dict:
    """Publish an earlier version again: `to_version`, or the one published before the current one. A version
    callers have heard before needs no new approval; with `two_person`, one they never heard is refused."""
    with db.write() as conn:
        inc = _incident_id(conn, incident_id)
        where = (Announcement.incident_id == inc, Announcement.language == lang, Announcement.topic == topic)
        current = conn.execute(select(Announcement.id, Announcement.version)
                               .where(*where, Announcement.status == "published")).first()
        if to_version is None:
            query = select(Announcement.id).where(*where, Announcement.status == "archived",
                                                  Announcement.published_at.is_not(None))
            if current:
                query = query.where(Announcement.version < current.version)
            target = conn.execute(query.order_by(Announcement.version.desc()).limit(1)).scalar()
            if target is None:
                raise AnnouncementConflict(f"no earlier published {lang}/{topic} version to roll back to")
        else:
            target = conn.execute(select(Announcement.id).where(*where, Announcement.version == to_version)).scalar()
            if target is None:
                raise AnnouncementNotFound(f"there is no {lang}/{topic} version {to_version}")
            if two_person and version_row(conn, target)["published_at"] is None:
                raise AnnouncementConflict(f"{lang}/{topic} version {to_version} was never published, so it is no "
                                           f"rollback: publish it (ivr announce publish {target}) and have a second "
                                           "person approve it")
        publish_and_audit(conn, target, actor, reason or "rollback")
        return version_row(conn, target)


def list_versions(db: Database, *, lang: str | None = None, topic: str | None = None,
                  incident_id: int | None = None) -> list[dict]:
    with db.read() as conn:
        inc = _incident_id(conn, incident_id)
        query = select(*ROW_COLUMNS).where(Announcement.incident_id == inc)
        if lang:
            query = query.where(Announcement.language == lang)
        if topic:
            query = query.where(Announcement.topic == topic)
        rows = conn.execute(query.order_by(Announcement.language, Announcement.topic,
                                           Announcement.version.desc())).all()
    return [as_version(r) for r in rows]


def get(db: Database, announcement_id: int) -> dict:
    with db.read() as conn:
        return version_row(conn, announcement_id)


def media_bytes(db: Database, sha256: str) -> bytes | None:
    with db.read() as conn:
        return conn.execute(select(Media.data).where(Media.sha256 == sha256)).scalar()


def version_row(conn: Connection, announcement_id: int) -> dict:
    """One version as every surface shows it (as_version), read inside the caller's transaction."""
    row = conn.execute(select(*ROW_COLUMNS).where(Announcement.id == announcement_id)).first()
    if row is None:
        raise AnnouncementNotFound(f"there is no announcement {announcement_id}")
    return as_version(row)


def as_version(row) -> dict:
    """A version as every surface shows it; `awaiting_approval`: asked to be published, not yet approved."""
    out = dict(row._mapping)
    out["awaiting_approval"] = out["status"] == "draft" and out["requested_by"] is not None
    return out


def audit_subject(incident_id: int, lang: str, topic: str, version: int) -> str:
    return f"incident {incident_id} {lang}/{topic} v{version}"


def _describe(source: str, text: str | None, audio_: Audio | None) -> str:
    parts = [f"source={source}"]
    if audio_:
        parts.append(f"audio={audio_.sha256[:12]} ({audio_.duration_ms / 1000:.1f} s, {audio_.engine or source})")
    if text:
        parts.append(f"text={text[:200]!r}")
    return " ".join(parts)


# -- the three sources, end to end -------------------------------------------------------------------------


def create_from_text(db: Database, cfg: Config, languages, *, lang: str, topic: str, text: str, actor: str,
                     publish: bool = False, reason: str = "", voice: str | None = None,
                     incident_id: int | None = None) -> dict:
    """Text to speech to a new version. Synthesis happens here, in the admin's call, never in a webhook."""
    check_target(languages, lang, topic)
    text = (text or "").strip()
    if not text:
        raise AnnouncementError("the text is empty")
    spoken = speak(db, cfg, text, lang, voice)
    return create_version(db, lang=lang, topic=topic, text=text, source="tts", audio_=spoken, actor=actor,
                          publish=publish, reason=reason, incident_id=incident_id,
                          two_person=cfg.two_person_publishing)


def create_from_audio(db: Database, cfg: Config, languages, *, data: bytes, lang: str, topic: str, actor: str,
                      source: str = "upload", text: str | None = None, publish: bool = False,
                      reason: str = "", incident_id: int | None = None) -> dict:
    """An uploaded file or a phone recording to a new version; refused whole if it is not usable."""
    check_target(languages, lang, topic)
    stored = store_upload(db, cfg, data)
    return create_version(db, lang=lang, topic=topic, text=(text or "").strip() or None, source=source,
                          audio_=stored, actor=actor, publish=publish, reason=reason, incident_id=incident_id,
                          two_person=cfg.two_person_publishing)
