"""Every kind of background job and what runs it: the one registry every job-working process builds."""
from __future__ import annotations

from ivr.store import jobs as jobs_table
from ivr.worker import phone_recording, sms
from ivr.worker.jobs import JobHandler


def job_handlers() -> dict[str, JobHandler]:
    """The handlers for web workers (jobs in-app), `ivr background` and `ivr jobs run` alike."""
    return {
        jobs_table.SMS: JobHandler(sms.send_sms, scrub=sms.scrub),
        jobs_table.PHONE_RECORDING: JobHandler(phone_recording.publish, on_failure=phone_recording.failed),
    }
