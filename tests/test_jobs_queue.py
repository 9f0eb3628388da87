"""The job queue: two runners never run one job twice, a lapsed lease cannot finish a job another runner
took, a long job keeps its lease by renewing it, failures back off, and a text is sent once per request
even when the attempt that sent it never heard back (SQLite, and PostgreSQL when DATABASE_URL names one)."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ivr.core.effects import SMS_JOB
from ivr.store import jobs
from ivr.store.models import Job, utcnow
from ivr.worker.handlers import job_handlers
from ivr.worker.jobs import JobHandler, JobWorker, retry_delay
from stubs import TwilioMessages

ACCOUNT = "AC" + "e" * 32
CALLER = "+15555550188"
TICK = "test_tick"  # a kind only these tests' runners handle


def _enqueue(hotline, n: int, kind: str = TICK) -> list[int]:
    with hotline.db.write() as conn:
        for i in range(n):
            jobs.enqueue(conn, kind, {"n": i})
    with hotline.db.read() as conn:
        return conn.execute(select(Job.id).order_by(Job.id)).scalars().all()


def _statuses(hotline) -> dict[int, str]:
    with hotline.db.read() as conn:
        return dict(conn.execute(select(Job.id, Job.status)).all())


def test_two_runners_racing_on_the_same_jobs_never_run_one_twice(hotline):
    ids = _enqueue(hotline, 24)
    ran: list[int] = []

    def tick(_hotline, payload, job):
        ran.append(job.claim.id)
        time.sleep(0.005)  # long enough for the other runner to look for work meanwhile
        return {}

    runners = [JobWorker(hotline, {TICK: JobHandler(tick)}) for _ in range(2)]

    def work(runner):
        while runner.run_one():
            pass

    threads = [threading.Thread(target=work, args=(r,)) for r in runners for _ in range(2)]  # 4 threads, 2 runners
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(ran) == ids and Counter(ran).most_common(1)[0][1] == 1
    assert set(_statuses(hotline).values()) == {"done"}


def test_a_runner_whose_lease_lapsed_cannot_finish_the_job_another_runner_took(hotline):
    (job_id,) = _enqueue(hotline, 1)
    first = jobs.claim(hotline.db, lease=timedelta(milliseconds=50))
    time.sleep(0.1)  # the first runner stalls (paused, cut off from the database) past its lease
    second = jobs.claim(hotline.db, lease=timedelta(seconds=60))
    assert second is not None and second.id == job_id and second.attempt == 2
    with pytest.raises(jobs.LeaseLost):
        jobs.record_progress(hotline.db, job_id, first.token, {"late": True})
    assert not jobs.renew(hotline.db, job_id, first.token, timedelta(seconds=60))
    assert not jobs.finish(hotline.db, job_id, first.token, {"status": "failed", "last_error": "late"})
    assert jobs.finish(hotline.db, job_id, second.token, {"status": "done", "result": json.dumps({"by": "second"})})
    with hotline.db.read() as conn:
        status, result, error = conn.execute(select(Job.status, Job.result, Job.last_error)).one()
    assert (status, json.loads(result), error) == ("done", {"by": "second"}, None)


def test_a_job_that_runs_past_its_first_lease_keeps_it_by_renewing(hotline):
    (job_id,) = _enqueue(hotline, 1)
    lease = timedelta(seconds=0.6)
    started, runs = threading.Event(), []

    def slow(_hotline, payload, job):
        runs.append(job.claim.token)
        started.set()
        time.sleep(2.0)  # more than three leases
        return {"slept": 2.0}

    owner = JobWorker(hotline, {TICK: JobHandler(slow)}, lease=lease)
    rival = JobWorker(hotline, {TICK: JobHandler(slow)}, lease=lease)
    thread = threading.Thread(target=owner.run_one)
    thread.start()
    assert started.wait(10)
    rival_took = []
    while thread.is_alive():
        rival_took.append(rival.run_one())  # all through the job, a rival finds nothing to take
        time.sleep(0.1)
    thread.join()
    assert len(runs) == 1 and not any(rival_took) and len(rival_took) > 10
    assert _statuses(hotline) == {job_id: "done"}


def test_retries_back_off_exponentially_with_jitter_and_a_cap():
    assert [retry_delay(a, lambda: 0.0) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [retry_delay(a, lambda: 1.0) for a in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay(30, lambda: 1.0) == retry_delay(9, lambda: 1.0) == 300.0


def test_a_failed_attempt_comes_back_later_and_the_last_one_becomes_a_dead_letter(hotline):
    (job_id,) = _enqueue(hotline, 1)

    def broken(_hotline, payload, job):
        raise ConnectionError("Twilio unreachable")

    runner = JobWorker(hotline, {TICK: JobHandler(broken)})
    before = utcnow()
    assert runner.run_one()
    with hotline.db.read() as conn:
        status, run_after, attempts = conn.execute(select(Job.status, Job.run_after, Job.attempts)).one()
    assert status == "pending" and attempts == 1 and timedelta(seconds=1) <= run_after - before <= timedelta(seconds=3)
    assert not runner.run_one()  # not before its time
    for _ in range(4):
        _due_now(hotline)
        assert runner.run_one()
    assert _statuses(hotline) == {job_id: jobs.DEAD}
    assert [d["id"] for d in jobs.dead_letters(hotline.db)] == [job_id]


def _due_now(hotline) -> None:
    """Time passes: every pending job is due."""
    with hotline.db.write() as conn:
        conn.execute(update(Job).where(Job.status == "pending").values(run_after=utcnow() - timedelta(seconds=1)))


def test_a_job_asked_for_again_is_due_at_the_sooner_time_and_never_postponed(hotline):
    def ask(after: timedelta, payload: dict | None = None):
        with hotline.db.write() as conn:
            jobs.enqueue(conn, TICK, payload or {"n": 1}, dedupe_key="tick-1", after=after)
        with hotline.db.read() as conn:
            return conn.execute(select(Job.run_after, Job.payload)).one()

    week, started = timedelta(days=7), utcnow()
    planned = ask(week)
    assert abs(planned.run_after.replace(tzinfo=started.tzinfo) - started - week) < timedelta(minutes=1)
    assert ask(timedelta(days=30), {"n": 2}) == planned  # later: the plan stands, its payload too
    sooner = ask(timedelta(0), {"n": 3})
    assert sooner.run_after.replace(tzinfo=started.tzinfo) - started < timedelta(minutes=1)
    assert json.loads(sooner.payload) == {"n": 1}
    with hotline.db.write() as conn:  # once it ran, asking again changes nothing
        conn.execute(update(Job).values(status="done", run_after=utcnow() + week))
    done = ask(timedelta(0))
    assert done.run_after.replace(tzinfo=started.tzinfo) - started > timedelta(days=6)


# -- one text per request ----------------------------------------------------------------------------------
@pytest.fixture
def texting_app(config):
    """An app that texts through a stand-in for Twilio's Messages resource (app.twilio)."""
    from ivr.app import create_app

    twilio = TwilioMessages(ACCOUNT)
    app = create_app(config.with_overrides(twilio_account_sid=ACCOUNT, sms_from="+15555550100",
                                           notice_url="https://example.com/notice", twilio_api_url=twilio.origin))
    app.twilio = twilio
    yield app
    app.extensions["ivr"].close()
    twilio.close()


@pytest.fixture
def texting(texting_app):
    return texting_app.extensions["ivr"], texting_app.twilio


def _enqueue_sms(hotline) -> None:
    with hotline.db.write() as conn:
        jobs.enqueue(conn, SMS_JOB, {"to": CALLER, "reference": "HL-7Q2", "lang": "en"}, dedupe_key="sms-CA1")


def _sms_job(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(Job.status, Job.result, Job.attempts)).one()


def test_a_text_twilio_sent_but_whose_answer_was_lost_is_not_sent_again(texting):
    hotline, twilio = texting
    twilio.fail_next, twilio.create_anyway = [502], True  # Twilio created it; the answer never reached us
    _enqueue_sms(hotline)
    assert hotline.jobs.run_one()
    assert _sms_job(hotline).status == "pending" and len(twilio.created) == 1
    _due_now(hotline)
    assert hotline.jobs.run_one()
    status, result, attempts = _sms_job(hotline)
    assert (status, attempts) == ("done", 2) and len(twilio.created) == 1
    assert json.loads(result)["sid"] == twilio.created[0]["sid"]


def test_a_text_twilio_never_created_is_sent_on_the_next_attempt(texting):
    hotline, twilio = texting
    twilio.fail_next = [503]  # refused before anything was created
    _enqueue_sms(hotline)
    assert hotline.jobs.run_one()
    assert twilio.created == []
    _due_now(hotline)
    assert hotline.jobs.run_one()
    assert _sms_job(hotline).status == "done" and len(twilio.created) == 1
    assert "HL-7Q2" in twilio.created[0]["body"] and twilio.created[0]["to"] == CALLER


def test_a_runner_that_lost_its_lease_sends_nothing(texting):
    hotline, twilio = texting
    _enqueue_sms(hotline)
    stalled = jobs.claim(hotline.db, lease=timedelta(milliseconds=50))
    time.sleep(0.1)
    assert hotline.jobs.run_one()  # the job taken over and sent
    from ivr.worker.jobs import RunningJob

    late = RunningJob(hotline.db, stalled, timedelta(seconds=60))
    with pytest.raises(jobs.LeaseLost):
        job_handlers()[SMS_JOB].run(hotline, stalled.payload, late)
    assert len(twilio.created) == 1


# -- dead letters ------------------------------------------------------------------------------------------
def _dead_sms(texting) -> int:
    """A text Twilio refused for good (a 400 is not worth retrying): a dead letter."""
    hotline, twilio = texting
    twilio.fail_next = [400]
    _enqueue_sms(hotline)
    assert hotline.jobs.run_one()
    (dead,) = jobs.dead_letters(hotline.db)
    return dead["id"]


def test_dead_letters_are_listed_and_retried_from_the_cli_with_a_reason(texting, config):
    from click.testing import CliRunner

    from ivr.ops.cli import main

    hotline, twilio = texting
    job_id = _dead_sms(texting)
    env = {"DATABASE_URL": config.db_url, "IVR_INSTANCE_PATH": str(config.instance_path)}
    listed = CliRunner().invoke(main, ["jobs", "dead"], env=env)
    assert listed.exit_code == 0 and "1 dead letter(s)" in listed.output
    assert f"{job_id}" in listed.output and "sms" in listed.output and "Twilio refused the message: 400" in listed.output
    assert CALLER not in listed.output
    no_reason = CliRunner().invoke(main, ["jobs", "retry", str(job_id)], env=env)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    retried = CliRunner().invoke(main, ["jobs", "retry", str(job_id), "--reason", "number fixed", "--by", "otto"], env=env)
    assert retried.exit_code == 0, retried.output
    assert _sms_job(hotline).status == "pending"
    again = CliRunner().invoke(main, ["jobs", "retry", str(job_id), "--reason", "twice"], env=env)
    assert again.exit_code == 1 and "is not a dead letter (it is pending)" in again.output and "nothing was changed" in again.output
    assert hotline.jobs.run_one() and _sms_job(hotline).status == "done" and len(twilio.created) == 1
    (entry,) = _audit(hotline, "job.retry")
    assert (entry.actor, entry.reason, entry.to_value) == ("otto", "number fixed", "pending")
    assert "Twilio refused the message: 400" in entry.from_value


def test_dead_letters_show_in_the_console_and_ops_retry_one(texting, texting_app):
    from helpers import console_sign_in
    from ivr.store.users import add_user

    hotline, _twilio = texting
    job_id = _dead_sms(texting)
    app = texting_app
    for name, role in (("vera", "viewer"), ("otto", "ops")):
        add_user(hotline.db, name, role, actor="test", password="a long enough password")
    viewer, ops = app.test_client(), app.test_client()
    console_sign_in(viewer, "vera", "a long enough password")
    console_sign_in(ops, "otto", "a long enough password")
    page = viewer.get("/console/jobs").get_data(as_text=True)
    assert f'id="job-{job_id}"' in page and "Twilio refused the message: 400" in page and "1 failed for good" in page
    assert "Retry now" not in page and CALLER not in page and CALLER[-4:] not in page
    assert viewer.post(f"/console/jobs/{job_id}/retry", data={"reason": "x"}).status_code in (400, 403)
    with ops.session_transaction() as sess:
        token = sess["csrf"]
    refused = ops.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": token, "reason": ""})
    assert refused.status_code == 400 and "a reason is required" in refused.get_data(as_text=True).lower()
    assert ops.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": token, "reason": "Twilio fixed"}).status_code == 303
    assert _sms_job(hotline).status == "pending" and [e.actor for e in _audit(hotline, "job.retry")] == ["otto"]
    assert "No job has failed for good." in ops.get("/console/jobs").get_data(as_text=True)


def test_metrics_count_the_dead_letters(texting, texting_app):
    _dead_sms(texting)
    body = texting_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'ivr_jobs{status="failed"} 1.0' in body and 'ivr_jobs{status="pending"} 0.0' in body


def _audit(hotline, action: str) -> list:
    from ivr.store.models import AuditEntry

    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()


def test_a_dead_letter_keeps_the_number_only_for_the_retention_period(texting):
    from ivr.worker import retention

    hotline, _twilio = texting
    job_id = _dead_sms(texting)
    assert CALLER in jobs.payload_of(hotline.db, job_id)["to"]  # kept, so it can be retried
    retention.run_once(hotline)
    assert CALLER in jobs.payload_of(hotline.db, job_id)["to"]  # not old enough yet
    with hotline.db.write() as conn:
        conn.execute(update(Job).values(updated_at=utcnow() - timedelta(days=hotline.config.callback_retention_days + 1)))
    assert retention.run_once(hotline)["dead_letters_scrubbed"] == 1
    assert jobs.payload_of(hotline.db, job_id)["to"] == "***" + CALLER[-4:]
    with pytest.raises(jobs.NotRetriable, match="retention period"):
        jobs.retry_dead(hotline.db, job_id, actor="otto", reason="too late")
    assert retention.run_once(hotline)["dead_letters_scrubbed"] == 0  # once
    assert [e.action for e in _audit(hotline, "job.scrub")] == ["job.scrub"]


@pytest.mark.slow
def test_a_text_is_sent_once_when_its_runner_is_killed_after_the_rest_call(config):
    """`ivr jobs run` killed -9 while Twilio holds back its answer to the create (the message exists, the
    runner never learns its SID); the next runner, once the lease lapses, adopts that message."""
    import subprocess

    from conftest import IVR, PROJECT_ROOT, server_env
    from helpers import wait_for
    from ivr.store.db import Database

    twilio = TwilioMessages(ACCOUNT)
    twilio.hold_answer = 30
    db = Database(config.db_url)
    try:
        with db.write() as conn:
            jobs.enqueue(conn, SMS_JOB, {"to": CALLER, "reference": "HL-9KX", "lang": "en"}, dedupe_key="sms-CA9")
        env = server_env(config, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_SMS_FROM="+15555550100",
                         IVR_TWILIO_API_URL=twilio.origin, IVR_JOB_LEASE_SECONDS="1")
        runner = subprocess.Popen([str(IVR), "jobs", "run"], env=env, cwd=PROJECT_ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: twilio.created, timeout=60)
        finally:
            runner.kill()
            runner.wait(10)
        with db.read() as conn:
            status, result = conn.execute(select(Job.status, Job.result)).one()
        assert status == "running" and "sending_at" in json.loads(result)["sms"] and "sid" not in json.loads(result)["sms"]
        time.sleep(1.2)  # the killed runner's lease lapses
        again = subprocess.run([str(IVR), "jobs", "run", "--once"], env=env, cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=120)
        assert "1 job(s) run" in again.stdout, again.stderr
        with db.read() as conn:
            status, result, attempts = conn.execute(select(Job.status, Job.result, Job.attempts)).one()
        assert (status, attempts) == ("done", 2) and len(twilio.created) == 1
        assert json.loads(result)["sid"] == twilio.created[0]["sid"]
    finally:
        db.dispose()
        twilio.close()


def test_call_now_pressed_twice_rings_the_agent_once(config):
    """Outbound calls are made once per claim of a callback: a second press (another tab, a double click)
    finds it taken, and Twilio's Calls API is not asked again."""
    from helpers import console_sign_in
    from ivr.app import create_app
    from ivr.store import agents, desk, queues
    from ivr.store.users import add_user
    from stubs import StubHost

    calls = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    twilio = StubHost({calls: (201, {"Content-Type": "application/json"}, b'{"sid": "CA%s", "status": "queued"}' % (b"a" * 32))})
    app = create_app(config.with_overrides(twilio_account_sid=ACCOUNT, hotline_number="+15555550100",
                                           twilio_api_url=twilio.origin))
    hotline = app.extensions["ivr"]
    try:
        add_user(hotline.db, "aggie", "agent", actor="test", password="a long enough password")
        agents.add_agent(hotline.db, config.secret_key, "alex", "+15555550142", "2468", actor="test")
        desk.link_user(hotline.db, "alex", "aggie", actor="test")
        queues.request_callback(hotline.db, call_sid="CA" + "7" * 32, number=CALLER, language="en", queue="general",
                                priority=10, reason="voicemail")
        callback_id = queues.callbacks(hotline.db)[0]["id"]
        tabs = [app.test_client(), app.test_client()]
        for tab in tabs:
            console_sign_in(tab, "aggie", "a long enough password")
        answers = []
        for tab in tabs:
            with tab.session_transaction() as sess:
                token = sess["csrf"]
            answers.append(tab.post(f"/console/desk/callbacks/{callback_id}/call", data={"csrf_token": token}))
        assert [a.status_code for a in answers] == [303, 400]
        assert "is not free to call now" in answers[1].get_data(as_text=True)
        assert [path for _method, path, _auth in twilio.requests] == [calls]
    finally:
        hotline.close()
        twilio.close()
