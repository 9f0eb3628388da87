"""A fault day (issue 22, "Done means"): two `ivr serve` on one PostgreSQL take simulated calls the whole time
while, one after another, the spool's filesystem fills, a migration holds call_events for 25 s, the database
goes away, `ivr background` is stopped and then killed, the staff pool is flooded, one server is stopped and
the other killed outright. Every call is answered with TwiML, every call's records reach the database once,
every text asked for is sent once, and the probes say what is true at each moment.

How a call that meets a dead server is counted: when Twilio cannot retrieve TwiML from a number's URL it
requests the number's Fallback URL at once
(https://www.twilio.com/docs/usage/security/availability-reliability), and a balancer in front of two
servers sends a refused connection to the other one. So a webhook request answered 5xx or not at all is sent
once more, signed for the other live server, with the same CallSid and parameters (`FallbackTransport`;
Twilio would add ErrorCode and ErrorUrl, which the hotline does not read). Each such request is counted as a
fallback; a call counts as failed only if a request fails on every live server."""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN, PG_URL
from helpers import small_filesystem, wait_for
from stubs import TwilioMessages
from test_bulkheads import console_session, staff_under_attack
from test_probes import _plain_pg, _problems, _writer_pids
from test_spool_full_disk import _fill as fill_up
from ivr.store.db import Database
from ivr.store.models import Call, CallEvent
from ivr.store.users import add_user
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow
ACCOUNT = "AC" + "f" * 32
TEXT_ME, LISTEN = ("4",), ("1", "9")  # a text asked for; the details heard, then the menu again
VIEWER_PASSWORD = "a long viewer password"
PAUSE_S = 0.3  # each caller between calls: a steady few calls a second, not a benchmark
PHASE_TIMEOUT_S = 45.0  # generous: a loaded 2-core machine; no assertion here is about speed


class Balancer:
    """The servers calls are sent to (in turn); a server is taken out once it is known to be gone."""

    def __init__(self, servers):
        self.live, self.lock, self.turn = list(servers), threading.Lock(), 0

    def next(self):
        with self.lock:
            self.turn += 1
            return self.live[self.turn % len(self.live)]

    def others(self, base: str) -> list:
        with self.lock:
            return [s for s in self.live if s.url != base]

    def add(self, srv) -> None:
        with self.lock:
            self.live.append(srv)

    def replace(self, old, new=None) -> None:
        with self.lock:
            self.live.remove(old)
            if new is not None:
                self.live.append(new)


class FallbackTransport(HttpTransport):
    """HTTP to one server; a request it answers 5xx, or not at all, goes to another live server (Twilio's
    fallback URL, or the balancer), signed for that server's URL."""

    def __init__(self, balancer: Balancer, fallbacks: list):
        super().__init__(balancer.next().url)
        self.balancer, self.fallbacks = balancer, fallbacks

    def post(self, url, params, headers):
        status, ctype, body = super().post(url, params, headers)
        for other in self.balancer.others(self.base) if status >= 500 else ():
            again = other.url + url[len(self.base):]
            self.fallbacks.append((params["CallSid"], url, status))
            signature = RequestValidator(AUTH_TOKEN).compute_signature(again, params)
            status, ctype, body = super().post(again, params, {"X-Twilio-Signature": signature})
            if status < 500:
                break
        return status, ctype, body


@contextmanager
def calls_all_along(balancer: Balancer, callers: int = 3):
    """`callers` simulated callers calling again and again until the block ends; yields the calls' results
    (each with `keys`) and the fallbacks they needed."""
    done, fallbacks, stop, numbers = [], [], threading.Event(), iter(range(10**6))

    def caller():
        while not stop.is_set():
            n = next(numbers)
            keys = TEXT_ME if n % 4 == 0 else LISTEN
            try:
                result = SimulatedCall(FallbackTransport(balancer, fallbacks), AUTH_TOKEN, keys=list(keys),
                                       caller=f"+1303555{n:04d}").run()
            except Exception as exc:  # not TwiML at all: counted, and the test fails on it
                result = SimpleResult(f"invalid: {exc!r}")
            result.keys = keys
            done.append(result)
            stop.wait(PAUSE_S)

    with ThreadPoolExecutor(callers) as pool:
        running = [pool.submit(caller) for _ in range(callers)]
        try:
            yield done, fallbacks
        finally:
            stop.set()
            for future in running:
                future.result()


class SimpleResult:
    def __init__(self, ended: str):
        self.ended, self.call_sid, self.requests = ended, "", []


def events_per_call(db, sids) -> dict[str, int]:
    with db.read() as conn:
        return dict(conn.execute(select(CallEvent.call_sid, func.count()).where(CallEvent.call_sid.in_(sids))
                                 .group_by(CallEvent.call_sid)).all())


def settled_events(db, calls) -> int:
    """How many records one call of this path leaves, once the writers have written the warm-up calls."""
    sids = {c.call_sid for c in calls}
    before = None
    while (now := events_per_call(db, sids)) != before or len(now) < len(sids):
        before = now
        time.sleep(1.0)
    assert len(set(now.values())) == 1, now
    return next(iter(now.values()))


def healthy(*servers) -> bool:
    return all(_problems(s.url) == (200, []) for s in servers)


def seconds_until(predicate, timeout: float = PHASE_TIMEOUT_S, every=None) -> float | None:
    """Seconds until predicate() holds (None if it never did); `every()` runs between polls."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return round(time.monotonic() - started, 1)
        if every:
            every()
        time.sleep(0.25)
    return None


def names(srv, *words: str) -> bool:
    """/healthz of `srv` names the fault: one of its problems says one of `words`."""
    return any(w in p for p in _problems(srv.url)[1] for w in words)


class Probes:
    """/readyz of every live server sampled during a phase: every answer it gave."""

    def __init__(self, balancer):
        self.balancer, self.ready = balancer, []

    def sample(self) -> None:
        for srv in list(self.balancer.live):
            try:
                self.ready.append(requests.get(srv.url + "/readyz", timeout=10).status_code)
            except requests.RequestException as exc:
                self.ready.append(repr(exc))


def test_a_fault_day_loses_no_call_no_record_and_no_text(config, server, db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("the fault day runs two servers on PostgreSQL: set DATABASE_URL" if not PG_URL
                    else "runs once, on the PostgreSQL backend")
    twilio = TwilioMessages(ACCOUNT)
    db = Database(config.db_url)
    add_user(db, "vera", "viewer", actor="test", password=VIEWER_PASSWORD)
    measured: dict[str, dict] = {}
    # Both servers text through the stand-in, and seal and open numbers with one data key (docs/security.md).
    common = dict(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_SMS_FROM="+15555550100",
                  IVR_TWILIO_API_URL=twilio.origin, IVR_NOTICE_URL="https://example.com/notice",
                  IVR_SPOOL_BACKLOG_ALERT_S="3")
    (tmp_path / "b").mkdir()
    shutil.copy2(config.instance_path / "data.key", tmp_path / "b" / "data.key")
    # Server A's spool on a 4 MB filesystem of its own, with almost no space reserved in advance, so that
    # a full disk takes it past the reserve (records held in memory) within the phase.
    with small_filesystem(config.instance_path / "spool") as spool_disk:
        a = server(workers=2, IVR_SPOOL_RESERVE_BYTES="4096", **common)
        b = server(workers=2, IVR_INSTANCE_PATH=str(tmp_path / "b"), **common)
        balancer, probes = Balancer([a, b]), None
        # The staff flood's sessions, opened as a browser would before the day goes wrong.
        viewer = console_session(a.staff_url, "vera", VIEWER_PASSWORD)
        strangers = [console_session(a.staff_url)] * 2
        warm = {keys: [SimulatedCall(HttpTransport(s.url), AUTH_TOKEN, keys=list(keys),
                                     caller=f"+1720555{i:04d}").run() for i, s in enumerate((a, b, a, b))]
                for keys in (TEXT_ME, LISTEN)}
        per_call = {keys: settled_events(db, calls) for keys, calls in warm.items()}
        assert wait_for(lambda: len(twilio.created) == len(warm[TEXT_ME]), timeout=60), len(twilio.created)
        assert wait_for(lambda: healthy(a, b), timeout=PHASE_TIMEOUT_S), (_problems(a.url), _problems(b.url))
        started = time.monotonic()
        with calls_all_along(balancer) as (done, fallbacks):
            assert wait_for(lambda: len(done) >= 6, timeout=60), "the calls never got going"

            def phase(name, words: tuple, on, start, end, lasts=0.0):
                """Start the fault; /healthz on `on` names it (`words`); end it; /healthz ok again."""
                nonlocal probes
                probes = Probes(balancer)
                calls_before, t0 = len(done), time.monotonic()
                start()
                try:
                    detected = seconds_until(lambda: names(on, *words), every=probes.sample)
                    while time.monotonic() - t0 < lasts:  # the fault lasts its full time; readiness sampled
                        probes.sample()
                        time.sleep(0.5)
                finally:
                    end()
                recovered = seconds_until(lambda: healthy(*balancer.live))
                measured[name] = dict(detected=detected, recovered=recovered, calls=len(done) - calls_before,
                                      ready=sorted(set(map(str, probes.ready))))
                assert detected is not None, f"{name}: /healthz never named it: {_problems(on.url)}"
                assert recovered is not None, f"{name}: not ok: {[_problems(s.url) for s in balancer.live]}"
                assert set(probes.ready) == {200}, f"{name}: /readyz said {probes.ready}"

            # 1. The spool's disk fills (root only: a tmpfs of its own).
            if spool_disk:
                phase("spool disk full", ("waiting to reach the database",), a,
                      lambda: fill_up(spool_disk), lambda: (spool_disk / "filler").unlink())

            # 2. A migration holds call_events for 25 s: slow, not dead; every server stays ready.
            locker = psycopg.connect(_plain_pg(config.db_url))
            phase("table lock", ("call records delayed",), a,
                  lambda: locker.execute("LOCK TABLE call_events IN ACCESS EXCLUSIVE MODE"),
                  lambda: (locker.rollback(), locker.close()), lasts=25.0)

            # 3. This test's database refuses connections, its sessions ended (the shared server runs on).
            admin = psycopg.connect(_plain_pg(PG_URL), autocommit=True)
            phase("database away", ("database unreachable", "cannot be written", "connection was lost"), a,
                  lambda: connections(admin, db_url, allowed=False),
                  lambda: connections(admin, db_url, allowed=True), lasts=12.0)
            admin.close()
            db.dispose()  # this process's own connections were ended too

            # 4. ivr background stopped (the master kills and restarts it), then killed (restarted again).
            [stopped] = _writer_pids(a)
            phase("background stopped", ("not running or hung",), a, lambda: os.kill(stopped, signal.SIGSTOP),
                  lambda: wait_for(lambda: [p for p in _writer_pids(a) if p != stopped], timeout=60))
            t0 = time.monotonic()
            [running] = wait_for(lambda: _writer_pids(a), timeout=30)
            os.kill(running, signal.SIGKILL)
            assert wait_for(lambda: [p for p in _writer_pids(a) if p != running], timeout=60)
            measured["background killed"] = dict(detected=None, calls=None, ready=[],
                                                  recovered=round(time.monotonic() - t0, 1))

            # 5. The staff pool flooded: nested YAML bombs, slow clients and made-up sign-ins.
            calls_before, t0 = len(done), time.monotonic()
            with staff_under_attack(a, 1, viewer, strangers) as staff_answers:
                wait_for(lambda: len(done) >= calls_before + 12, timeout=60)
            measured["staff flood"] = dict(detected=None, recovered=None, calls=len(done) - calls_before,
                                           ready=[], staff=sorted(set(staff_answers)))
            assert 500 not in staff_answers and staff_answers, staff_answers

            # 6. Server A stopped (SIGTERM: drains) and started again; then server B killed outright.
            calls_before, t0 = len(done), time.monotonic()
            a.proc.terminate()
            assert a.proc.wait(60) == 0
            a_again = server(workers=2, IVR_SPOOL_RESERVE_BYTES="4096", **common)
            balancer.replace(a, a_again)
            measured["server SIGTERM"] = dict(detected=None, recovered=round(time.monotonic() - t0, 1),
                                              calls=len(done) - calls_before, ready=[])
            calls_before, t0 = len(done), time.monotonic()
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.wait(10)
            wait_for(lambda: len(done) >= calls_before + 6, timeout=60)  # some meet the dead server
            balancer.replace(b)  # the balancer's health check takes it out
            # Its service manager starts it again on its instance folder: its writer replays what the killed
            # server's workers spooled after its writer had gone.
            b_again = server(workers=2, IVR_INSTANCE_PATH=str(tmp_path / "b"), **common)
            balancer.add(b_again)
            measured["server killed"] = dict(detected=None, recovered=round(time.monotonic() - t0, 1),
                                             calls=len(done) - calls_before, ready=[])
            wait_for(lambda: len(done) >= calls_before + 12, timeout=60)
        wall = time.monotonic() - started
        # Still inside: A's writer writes its last calls' records from the spool filesystem, until unmounted.
        # Every call answered with TwiML (on its server, or on the other through the fallback).
        failed = [c.ended for c in done if c.ended != "hangup"]
        sids = {c.call_sid for c in done}

        # Every call's records in the database, once: each call has exactly the records of its path.
        def recorded_calls() -> int:
            got = events_per_call(db, sids)
            return sum(got.get(c.call_sid) == per_call[c.keys] for c in done)

        wait_for(lambda: recorded_calls() == len(done), timeout=90, interval=1.0)
        complete = recorded_calls()
        with db.read() as conn:
            call_rows = conn.execute(select(func.count()).select_from(Call).where(Call.call_sid.in_(sids))
                                     ).scalar()
            doubled = conn.execute(select(func.count()).select_from(
                select(CallEvent.call_sid).where(CallEvent.call_sid.in_(sids))
                .group_by(CallEvent.call_sid, CallEvent.step).having(func.count() > 1).subquery())).scalar()
        # One text for every call that asked for one, none for the others.
        asked = [c.requests[0][1]["From"] for c in done if c.keys == TEXT_ME and c.requests]
        wait_for(lambda: {m["to"] for m in twilio.created} >= set(asked), timeout=90)
        texts = [m["to"] for m in twilio.created if m["to"].startswith("+1303555")]
        twilio.close()
        db.dispose()
        rerouted = len({sid for sid, _, _ in fallbacks})
        print(f"\nfault day: {len(done)} calls in {wall:.0f} s, {len(failed)} failed, {len(fallbacks)} "
              f"requests of {rerouted} calls sent to the other server, {complete}/{len(done)} calls with all "
              f"their records, {call_rows} call rows, {doubled} doubled records, {len(texts)} texts for "
              f"{len(asked)} asked")
        for name, m in measured.items():
            print(f"  {name}: {m}")
        assert failed == [], failed
        assert complete == call_rows == len(done) and doubled == 0, (complete, call_rows, len(done), doubled)
        assert sorted(texts) == sorted(asked), (len(texts), len(asked))


def connections(admin, db_url: str, allowed: bool) -> None:
    """This test's own database refuses connections and its sessions are ended, or accepts them again (the
    shared PostgreSQL server, which other tests use, is never stopped)."""
    name = make_url(db_url).database
    admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
