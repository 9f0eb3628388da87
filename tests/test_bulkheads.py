"""Callers first, through `ivr serve`: the caller pool answers while every staff worker is held by slow and
malicious requests; a second server cannot take a live instance folder; nothing is accepted before a worker
can answer it."""
from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import threading
import time

import pytest
import requests
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN, IVR, PROJECT_ROOT, free_port, server_env
from helpers import twilio_params, wait_for
from ivr.spool.writer import SpoolWriter
from ivr.store.db import Database
from ivr.store.users import add_user

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery staple"


def incoming_seconds(srv, n: int) -> list[float]:
    """n signed /voice/incoming, one at a time as calls arrive; each one's time to a 200, sorted."""
    url = srv.url + "/voice/incoming"
    took = []
    for _ in range(n):
        params = twilio_params("CA" + os.urandom(16).hex(), From=f"+1555{random.randrange(10**7):07d}")
        headers = {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params)}
        started = time.perf_counter()
        resp = requests.post(url, data=params, headers=headers, timeout=15)
        took.append(time.perf_counter() - started)
        assert resp.status_code == 200 and b"<Response>" in resp.content
    return sorted(took)


def p99(sorted_seconds: list[float]) -> float:
    return sorted_seconds[min(len(sorted_seconds) - 1, int(len(sorted_seconds) * 0.99))]


def console_session(base: str, name: str | None = None, password: str = "") -> tuple[requests.Session, str]:
    """A browser's session on the console (its Secure cookie sent over the test's plain HTTP) and its CSRF
    token; signed in when a name is given."""
    http = requests.Session()

    def plain():
        for cookie in http.cookies:
            cookie.secure = False

    page = http.get(base + "/console/login", timeout=30).text
    plain()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    if name:
        resp = http.post(base + "/console/login", data={"name": name, "password": password, "csrf_token": csrf},
                         allow_redirects=False, timeout=30)
        assert resp.status_code == 303, resp.text[-300:]
        plain()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', http.get(base + "/console/rules", timeout=30).text
                         ).group(1)
    return http, csrf


@contextlib.contextmanager
def staff_under_attack(srv, holders: int, viewer, strangers):
    """Every staff worker busy: `holders` connections that send half a request and wait (slow clients, each
    holding a worker), and threads posting the nested-YAML bomb and made-up sign-ins as fast as the rest of
    the pool takes them, so there is always a queue."""
    stop, answers, slow = threading.Event(), [], []
    viewer, viewer_csrf = viewer
    strangers = list(strangers)  # one per sign_ins thread

    def bombs():
        bomb = "[" * 24_990 + "]" * 24_990
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                answers.append(viewer.post(srv.staff_url + "/console/rules/validate",
                                           data={"text": bomb, "csrf_token": viewer_csrf}, timeout=30).status_code)

    def sign_ins():
        stranger, csrf = strangers.pop()
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                answers.append(stranger.post(srv.staff_url + "/console/login", timeout=30, data={
                    "name": f"nobody{random.randrange(10**9)}", "password": "guess", "csrf_token": csrf}).status_code)

    threads = [threading.Thread(target=fn, daemon=True) for fn in (bombs,) * 4 + (sign_ins,) * 2]
    try:
        for _ in range(holders):
            slow.append(socket.create_connection(("127.0.0.1", srv.staff_port), timeout=5))
            slow[-1].sendall(b"POST /console/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                             b"Content-Type: application/x-www-form-urlencoded\r\n\r\nname=")  # the rest never comes
        for t in threads:
            t.start()
        yield answers
    finally:
        stop.set()
        for sock in slow:
            sock.close()
        for t in threads:
            if t.is_alive():
                t.join(40)


def staff_answers(srv) -> bool:
    try:
        return requests.get(srv.staff_url + "/livez", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def staff_wait(srv) -> float:
    """Seconds a staff probe waits for its answer (at most 30)."""
    started = time.perf_counter()
    with contextlib.suppress(requests.RequestException):
        requests.get(srv.staff_url + "/livez", timeout=30)
    return time.perf_counter() - started


def test_callers_are_answered_as_usual_while_every_staff_worker_is_held(config, server):
    srv = server(workers=2, staff_workers=2)
    db = Database(config.db_url)
    add_user(db, "vera", "viewer", actor="test", password=PASSWORD)
    db.dispose()
    incoming_seconds(srv, 10)  # both caller workers warm
    # Rounds interleaved, so that a load swing on this shared machine falls on both sides alike.
    before, during, answers, staff_waits = [], [], [], []
    # Signed in before the flood: from the flooding address, sign-ins are refused for a while after.
    viewer, strangers = console_session(srv.staff_url, "vera", PASSWORD), [console_session(srv.staff_url)] * 2
    for _ in range(4):
        before += incoming_seconds(srv, 50)
        with staff_under_attack(srv, 1, viewer, strangers) as seen:
            time.sleep(0.5)
            staff_waits.append(staff_wait(srv))
            during += incoming_seconds(srv, 50)
            staff_waits.append(staff_wait(srv))
        answers += seen
        assert wait_for_staff(srv), "the staff pool serves again once the attack is over"
    before.sort()
    during.sort()
    print(f"signed /voice/incoming, {len(before)} before / {len(during)} during: p50 {before[len(before) // 2]:.4f}"
          f" / {during[len(during) // 2]:.4f} s, p99 {p99(before):.4f} / {p99(during):.4f} s; staff probe waited"
          f" {min(staff_waits):.2f}-{max(staff_waits):.2f} s")
    # The staff pool was under attack (its probe queued behind the attack's requests, at least once five times
    # the callers' p99; seconds on a busy machine), the caller pool was not.
    assert max(staff_waits) > 5 * p99(during), (staff_waits, p99(during))
    # Within their normal p99: the slack (3 times, plus 0.2 s for one stall of a shared, noisy machine among
    # 200 samples) is far below queueing behind staff work: with one pool for both, the slow clients alone
    # held callers for seconds.
    assert p99(during) <= 3 * p99(before) + 0.2, (p99(before), p99(during))
    # The typical caller: the pools are separate, the two cores are not. During the attack the staff workers
    # and this test's six attack threads want the CPU too, so a caller's request sometimes waits for a core
    # (CI once saw the median go from 1.8 to 3.1 ms, above the quiet p99 of 2.8); queueing behind staff work
    # costs seconds (one pool for both: the slow clients alone held callers that long).
    assert during[len(during) // 2] <= 3 * before[len(before) // 2], (before[len(before) // 2],
                                                                       during[len(during) // 2])
    assert 500 not in answers and 429 in answers  # the bombs refused, the made-up sign-ins cut short


def wait_for_staff(srv, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if staff_answers(srv):
            return True
        time.sleep(0.2)
    return False


def test_a_second_serve_on_a_live_instance_folder_is_refused_and_changes_nothing(config, server):
    srv = server(workers=1)
    folder = config.instance_path
    incoming_seconds(srv, 1)  # a worker's figures are in the metrics folder
    heartbeat = config.spool_dir / SpoolWriter.HEARTBEAT
    assert wait_for(heartbeat.exists), "the live server's writer beats"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and "prometheus" in str(p)}
    assert before, "the live server's metrics files are there"
    env = server_env(config)
    second = subprocess.run([str(IVR), "serve", "--port", str(free_port()), "--staff-port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert second.returncode != 0 and "is in use by a running server" in second.stderr, second.stderr
    assert f"pid {srv.proc.pid}" in second.stderr and "nothing was changed" in second.stderr
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and "prometheus" in str(p)}
    assert set(before) <= set(after) and heartbeat.exists()
    assert requests.get(srv.url + "/readyz", timeout=5).status_code == 200  # the live server serves on


def test_nothing_is_accepted_before_a_worker_can_answer_it(config, tmp_path):
    """From `ivr serve` starting to the first answer: the first connection the caller port accepts is
    answered at once (the app is loaded before the socket is bound), not after the workers' imports."""
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(IVR), "serve", "--port", str(port), "--staff-port", str(free_port()),
                             "--workers", "2"], env=server_env(config), stdout=log, stderr=subprocess.STDOUT,
                            cwd=PROJECT_ROOT)
    try:
        started = time.monotonic()
        while True:
            assert proc.poll() is None and time.monotonic() - started < 60, (tmp_path / "serve.log").read_text()
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                break
            except OSError:
                time.sleep(0.02)
        accepted = time.monotonic()
        sock.settimeout(30)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(100)
        answered = time.monotonic()
        sock.close()
        assert first.startswith(b"HTTP/1.1 200")
        # Loading the app takes seconds; serving a loaded one milliseconds: the wait happened before accept.
        assert answered - accepted < (accepted - started) / 2, (accepted - started, answered - accepted)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_sigterm_answers_the_request_in_flight_and_the_one_queued_behind_it(config, server):
    """One caller worker, busy with a request whose body is still arriving; a second request waits in the
    socket's queue. SIGTERM: both are answered with TwiML (the queued one used to be reset, a 502 nginx
    does not retry for a POST), then the server exits and the port refuses."""
    srv = server(workers=1)
    url = srv.url + "/voice/incoming"

    def request_bytes() -> bytes:
        params = twilio_params("CA" + os.urandom(16).hex())
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        body = "&".join(f"{k}={requests.utils.quote(v)}" for k, v in params.items()).encode()
        return (f"POST /voice/incoming HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-Twilio-Signature: {signature}"
                f"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n").encode() + body

    in_flight, queued = request_bytes(), request_bytes()
    first = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    first.sendall(in_flight[:-10])  # the worker has it, waiting for the rest of the body
    time.sleep(0.5)
    second = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    second.sendall(queued)  # accepted by the kernel, behind the busy worker
    time.sleep(0.3)
    srv.proc.terminate()
    time.sleep(1.0)
    first.sendall(in_flight[-10:])
    answers = [read_all(sock) for sock in (first, second)]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200") and b"<Response>" in answer, answer[:300]
    assert srv.proc.wait(30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    sock.close()
    return b"".join(chunks)
