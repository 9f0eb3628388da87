"""Background jobs: how many wait, run and failed for good, and the dead letters (jobs failed for good)
with their last error; ops put one back in the queue with a reason (audited). Payloads are not shown:
they hold callers' numbers."""
from __future__ import annotations

from flask import render_template, request

from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, reason, refused
from ivr.store import jobs


def _page(status: int = 200, error: str | None = None, form_id: int | None = None):
    db = hotline().db
    return render_template("console/jobs.html", counts=jobs.counts(db), rows=jobs.dead_letters(db), dead=jobs.DEAD,
                           error=error, form_id=form_id, form=request.form), status


@bp.get("/jobs")
@needs("see the hotline")
def jobs_page():
    return _page()


@bp.post("/jobs/<int:job_id>/retry")
@needs("retry a job")
def job_retry(job_id: int):
    try:
        jobs.retry_dead(hotline().db, job_id, actor=actor(), reason=reason(request.form))
    except (FormError, jobs.NotRetriable) as exc:
        return refused(_page, exc, job_id)
    hotline().jobs.poke()
    return done("console.jobs_page", f"Job {job_id} is back in the queue.")
