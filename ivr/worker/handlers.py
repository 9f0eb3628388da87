"""Every kind of background job and what runs it: the one registry every job-working process builds."""
from __future__ import annotations

from ivr.core.effects import PHONE_RECORDING_JOB, SMS_JOB
from ivr.worker import phone_recording, sms
from ivr.worker.jobs import JobHandler


def job_handlers() -> dict[str, JobHandler]:
    """The handlers for web workers (jobs in-app), `ivr background` and `ivr jobs run` alike."""
    return {
        SMS_JOB: JobHandler(sms.send_sms, scrub=sms.scrub),
        PHONE_RECORDING_JOB: JobHandler(phone_recording.publish, on_failure=phone_recording.failed),
    }
