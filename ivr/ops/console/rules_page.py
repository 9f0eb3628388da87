"""routing_rules.yaml in the console: the file in force, the last reload's result, checking and saving an edit."""
from __future__ import annotations

import difflib
import hashlib

from flask import flash, redirect, render_template, request, url_for

from ivr.store.audit import audit
from ivr.store.files import write_atomically
from ivr.ops.console.base import FormError, actor, bp, hotline, log, needs, reason
from ivr.core.rules import RulesInvalid, parse, warnings

TEXT_MAX = 200_000
DIFF_MAX = 20_000


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _current() -> tuple[str, str | None]:
    """The file's text, or why it cannot be read."""
    try:
        return hotline().rules.path.read_text(encoding="utf-8"), None
    except (OSError, UnicodeDecodeError) as exc:
        return "", f"cannot read the file: {exc}"


def _candidate(form) -> str:
    text = (form.get("text") or "").replace("\r\n", "\n")
    if len(text) > TEXT_MAX:
        raise FormError(f"the rules are longer than {TEXT_MAX} characters")
    return text


def _check(text: str) -> list:
    """Every problem in the text, with its line and field; empty if the rules are valid."""
    try:
        parse(text)
    except RulesInvalid as exc:
        return exc.errors
    return []


def _warnings(text: str) -> list:
    """What valid rules do less than they say (`ivr rules check` prints the same); empty if invalid."""
    try:
        return warnings(text, parse(text))
    except RulesInvalid:
        return []


def _page(status: int = 200, *, candidate: str | None = None, problems: list | None = None, error: str | None = None,
          warned: list | None = None):
    store = hotline().rules
    store.rules  # noqa: B018  (picks up a changed file, so last_error is this file's)
    current, unreadable = _current()
    return render_template("console/rules.html", path=store.path.name, current=current, unreadable=unreadable,
                           current_sha=_sha(current), last_error=store.last_error,
                           candidate=current if candidate is None else candidate, problems=problems,
                           error=error, form=request.form, warnings=warned or []), status


@bp.get("/rules")
@needs("see the hotline")
def rules():
    return _page()


@bp.post("/rules/validate")
@needs("see the hotline")
def rules_validate():
    """Check an edited version; changes nothing."""
    try:
        text = _candidate(request.form)
    except FormError as exc:
        return _page(400, candidate="", error=f"{exc}. Nothing was checked.")
    problems = _check(text)
    return _page(candidate=text, problems=problems, warned=[] if problems else _warnings(text))


@bp.post("/rules/save")
@needs("change the rules")
def rules_save():
    """Save an edited version: valid, unchanged on disk since it was opened, audited, written atomically."""
    form, h = request.form, hotline()
    text = form.get("text") or ""
    try:
        why = reason(form)
        text = _candidate(form)
        problems = _check(text)
        if problems:
            raise FormError("the rules are not valid (see the problems below)")
        old, unreadable = _current()
        if unreadable:
            raise FormError(unreadable)
        if _sha(old) != form.get("base_sha"):
            raise FormError("the rules file changed since you opened this page; reload it and edit again")
        if old == text:
            raise FormError("the edited rules are the same as the file in force")
        diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), "before", "after", n=2))
        with h.db.write() as conn:  # the file is replaced inside the transaction: no audit entry without it
            audit(conn, actor=actor(), action="rules.save", subject=h.rules.path.name,
                  from_value=f"sha256 {_sha(old)[:12]}", to_value=f"sha256 {_sha(text)[:12]}\n{diff[:DIFF_MAX]}",
                  reason=why)
            write_atomically(h.rules.path, text, durable=True)
    except (FormError, OSError) as exc:
        log.warning("console: %s: rules save refused: %s", actor(), exc)
        return _page(400, candidate=text, problems=_check(text), error=f"{exc}. Nothing was changed.")
    h.rules.reload()
    log.info("console: %s saved %s", actor(), h.rules.path)
    flash("The routing rules were saved; every worker uses them from its next call.", "ok")
    return redirect(url_for("console.rules"), 303)
