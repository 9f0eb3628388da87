"""Callbacks owed: the work list in the order agents should call (priority, then the caller's place in line),
marked done with a reason. Full numbers only for the roles that call back; viewers see them masked."""
from __future__ import annotations

from flask import g, render_template, request, session

from ivr.ops.console import auth
from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, reason, refused
from ivr.store import queues, sealed
from ivr.store.users import role_at_least

NOTE_MAX = 1000


def _page(status: int = 200, error: str | None = None, form_id: int | None = None):
    db = hotline().db
    form = request.form
    pending = session.pop(auth.PENDING_CALLBACK_DONE, None) if request.method == "GET" else None
    if pending and error is None:  # sent with an expired session (auth.to_login kept it): offer it again
        form_id, form = pending["id"], pending
        error = (f"Callback {form_id} was not marked done: your session had expired before you sent it. What you "
                 "wrote is filled in below: press Mark done again if it still stands.")
    full = role_at_least(g.user.role, "agent")  # the roles that call back
    rows = [dict(r, shown_number=sealed.shown(db, r["number"], r["number_masked"]) if full else r["number_masked"])
            for r in queues.callbacks(db, "waiting")]
    return render_template("console/callbacks.html", rows=rows, full_numbers=full, error=error, form_id=form_id,
                           form=form), status


@bp.get("/callbacks")
@needs("see the hotline")
def callbacks_page():
    return _page()


@bp.post("/callbacks/<int:callback_id>/done")
@needs("close a callback")
def callback_done(callback_id: int):
    form = request.form
    try:
        why = reason(form)
        note = (form.get("note") or "").strip()
        if len(note) > NOTE_MAX:
            raise FormError(f"the note is longer than {NOTE_MAX} characters")
        queues.callback_done(hotline().db, callback_id, actor=actor(), note=note, reason=why)
    except (FormError, queues.QueueError) as exc:
        return refused(_page, exc, callback_id)
    return done("console.callbacks_page", f"Callback {callback_id} is marked done.")
