"""Every kind of background job and what runs it: the one registry every job-working process builds."""
from __future__ import annotations

from ivr.core.effects import PHONE_RECORDING_JOB, RECORDING_DELETE_JOB, SMS_JOB
from ivr.worker import phone_recording, recording_delete, sms
from ivr.worker.jobs import JobHandler


def job_handlers() -> dict[str, JobHandler]:
    """The handlers for web workers (jobs in-app), `ivr background` and `ivr jobs run` alike."""
    return {
        SMS_JOB: JobHandler(sms.send_sms, scrub=sms.scrub),
        PHONE_RECORDING_JOB: JobHandler(phone_recording.publish, on_failure=phone_recording.failed),
        RECORDING_DELETE_JOB: JobHandler(recording_delete.delete, on_failure=recording_delete.failed),
    }
