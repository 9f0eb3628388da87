"""Announcements: every version per language and topic, played in the page; create, upload, publish, roll back."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from ivr.core.errors import Refused
from ivr.core.limits import upload_limit
from ivr.store import announcements
from ivr.ops.console.base import FormError, actor, bp, hotline, log, needs, reason, refused
from ivr.store.models import TOPICS

TEXT_MAX = 5000  # a few minutes of speech; longer belongs in several topics


def _languages() -> dict:
    return hotline().rules.rules.languages


def _groups() -> tuple[list[tuple[str, str, list[dict]]], str | None]:
    """Versions grouped by (language, topic) in the rules' language order; or why there are none."""
    try:
        rows = announcements.list_versions(hotline().db)
    except announcements.AnnouncementError as exc:
        return [], str(exc)
    order = list(_languages())

    def place(key: tuple[str, str]) -> tuple:
        lang, topic = key
        return (order.index(lang) if lang in order else len(order), lang,
                TOPICS.index(topic) if topic in TOPICS else len(TOPICS))

    keys = sorted({(r["language"], r["topic"]) for r in rows}, key=place)
    return [(lang, topic, [r for r in rows if (r["language"], r["topic"]) == (lang, topic)])
            for lang, topic in keys], None


def _page(status: int = 200, error: str | None = None, form_name: str | None = None):
    groups, missing = _groups()
    return render_template("console/announcements.html", groups=groups, missing=missing, languages=_languages(),
                           topics=TOPICS, error=error, form_name=form_name, form=request.form,
                           upload_limit=upload_limit(hotline().config.upload_max_bytes),
                           two_person=hotline().config.two_person_publishing), status


def _text(form) -> str:
    text = (form.get("text") or "").strip()
    if len(text) > TEXT_MAX:
        raise FormError(f"the text is longer than {TEXT_MAX} characters")
    return text


def _done(row: dict, what: str):
    log.info("console: %s: announcement %s (%s/%s v%s) %s", actor(), row["id"], row["language"], row["topic"],
             row["version"], what)
    state = ("callers hear it now" if row["status"] == "published" else
             "it awaits a second person's approval; callers do not hear it until then"
             if row.get("awaiting_approval") else "saved as a draft")
    flash(f"{row['language']}/{row['topic']} version {row['version']} {what}: {state}.", "ok")
    for warning in row.get("warnings", ()):
        flash(f"Warning: {warning}.", "warning")
    return redirect(url_for("console.announcements_page") + f"#{row['language']}-{row['topic']}", 303)


def _refused(exc: Exception, form_name: str):
    return refused(_page, exc, form_name)


@bp.get("/announcements")
@needs("see the hotline")
def announcements_page():
    return _page()


@bp.post("/announcements/tts")
@needs("change the announcements")
def announcement_tts():
    """A new version spoken from text (synthesised here, in the admin's request, never in a caller's)."""
    form, h = request.form, hotline()
    try:
        row = announcements.create_from_text(
            h.db, h.config, _languages(), lang=form.get("lang", ""), topic=form.get("topic", ""), text=_text(form),
            actor=actor(), publish=form.get("publish") == "yes", reason=reason(form))
    except Refused as exc:
        return _refused(exc, "tts")
    return _done(row, "created from text")


@bp.post("/announcements/upload")
@needs("change the announcements")
def announcement_upload():
    """A new version from an uploaded recording; anything unusable is refused whole, saying why."""
    form, h = request.form, hotline()
    upload = request.files.get("file")
    try:
        why = reason(form)
        if upload is None or not upload.filename:
            raise FormError("choose an audio file to upload")
        row = announcements.create_from_audio(
            h.db, h.config, _languages(), data=upload.read(), lang=form.get("lang", ""), topic=form.get("topic", ""),
            text=_text(form) or None, actor=actor(), publish=form.get("publish") == "yes", reason=why)
    except Refused as exc:
        return _refused(exc, "upload")
    return _done(row, "uploaded")


@bp.post("/announcements/<int:announcement_id>/publish")
@needs("change the announcements")
def announcement_publish(announcement_id: int):
    try:
        row = announcements.publish(hotline().db, announcement_id, actor=actor(), reason=reason(request.form),
                                    two_person=hotline().config.two_person_publishing)
    except Refused as exc:
        return _refused(exc, f"publish-{announcement_id}")
    return _done(row, "awaits approval" if row.get("awaiting_approval") else "published")


@bp.post("/announcements/rollback")
@needs("change the announcements")
def announcement_rollback():
    """Publish the version published before the current one again (or a chosen version)."""
    form = request.form
    try:
        to = (form.get("to_version") or "").strip()
        if to and not to.isdigit():
            raise FormError("the version to roll back to is a number")
        row = announcements.rollback(hotline().db, lang=form.get("lang", ""), topic=form.get("topic", ""),
                                     to_version=int(to) if to else None, actor=actor(), reason=reason(form),
                                     two_person=hotline().config.two_person_publishing)
    except Refused as exc:
        return _refused(exc, f"rollback-{form.get('lang', '')}-{form.get('topic', '')}")
    return _done(row, "published again (rollback)")
