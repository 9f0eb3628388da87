"""Benchmark: the real /voice/incoming webhook against a bare Flask app, both under gunicorn as in production.

    .venv/bin/python bench/webhooks.py [--db sqlite|postgresql|both] [--duration S] [--quick] [--keep]

For each database: start `ivr setup` + `ivr serve --workers 2` (IVR_ENV=production) and a bare Flask app
(bench/bare_app.py) with the same gunicorn settings; load both with wrk (-t2 -c32 --latency) using pre-signed,
Twilio-shaped requests, each with its own CallSid; then send /voice/incoming an open-loop load at half its
measured throughput (and the bare app at that same rate: this machine's floor); stop the server with SIGTERM
and check that every answered call is in `calls`. Worker CPU per request (from /proc) is reported beside
req/s: it stays steadier when other work shares the machine. Results are printed and appended to
bench/RESULTS.md. Everything runs on 127.0.0.1; every process started here is stopped on exit, Ctrl-C included.

Why the half-rate phase is not paced by wrk's Lua `delay()`: gunicorn's sync workers close the connection
after every answer, and wrk reconnects at once and only then waits out the delay, so a worker that accepts
the idle connection sits blocked in recv() for the whole delay: latency measured that way is mostly wrk's own
pacing. Twilio sends its request as soon as it connects; so does the pacer here (a selectors loop, Poisson
arrivals), in the same turn of its loop as the connect: sent on a later turn, a request left the worker that
had accepted the connection waiting in recv() whenever the pacer, which shares the two cores, was late
getting there (traced per request: queueing in front of idle workers, not time in the app).
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import platform
import random
import re
import secrets
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "RESULTS.md"
PATH = "/voice/incoming"
THREADS, CONNECTIONS, WORKERS = 2, 32, 2
WARMUP_S = 2
POOL_RATE = 6000  # req/s the wrk pool of distinct CallSids is sized for; above it CallSids repeat (reported)
RECORD_WAIT_S = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-qAtc"]
TARGET_RATIO, TARGET_P99_MS = 0.5, 20.0
# The bare app gets the flags `ivr serve` gives gunicorn (ivr/ops/cli/server.py); both command lines are printed.
BARE_ARGV = [str(BIN / "gunicorn"), "--bind", "127.0.0.1:{port}", "--workers", str(WORKERS),
             "--access-logfile", "-", "--timeout", "30", "--chdir", str(ROOT / "bench"), "bare_app:app"]


# -- processes ---------------------------------------------------------------------------------------------
def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gunicorn started by this script, in its own process group; stopped with SIGTERM, killed if it hangs."""

    def __init__(self, name: str, port: int, argv: list[str], env: dict, log_path: Path, staff_port: int = 0):
        self.name, self.port, self.log_path = name, port, log_path
        self.staff_port = staff_port or port  # `ivr serve`'s /metrics is on its staff pool
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def staff_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.staff_port}{path}"

    def wait_ready(self, method: str, path: str, timeout: float = 30.0, **kw) -> requests.Response:
        """Poll until `method path` answers (any HTTP status); return that answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                return requests.request(method, self.url(path), timeout=5, **kw)
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s:\n{self.log_tail()}")

    def cmdline(self) -> str:
        """The command line this script started (`ivr serve` starts a gunicorn per pool below it)."""
        try:
            return Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            return " ".join(self.proc.args)

    def workers_cpu_s(self) -> float:
        """CPU seconds used so far by every process below the one started: the gunicorn workers and, under
        `ivr serve`, its pools' masters and the `ivr background` process writing their spool (so "worker CPU"
        includes the database writes)."""
        parent, cpu = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)  # fields: state, ppid, ..., utime (11), stime (12)
            parent[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK

        def below(pid: int) -> bool:
            while pid in parent and parent[pid] > 1:
                pid = parent[pid]
                if pid == self.proc.pid:
                    return True
            return False

        return sum(seconds for pid, seconds in cpu.items() if below(pid))

    def measure(self, load, *args) -> "LoadResult":
        """Run load(*args) and add the workers' CPU per completed request to its result."""
        before = self.workers_cpu_s()
        result = load(*args)
        result.cpu_ms = (self.workers_cpu_s() - before) * 1000 / result.completed if result.completed else math.nan
        return result

    def log_tail(self, n: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (gunicorn's graceful stop: workers finish, flush and exit); SIGKILL the group if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.name}: no exit {timeout:.0f} s after SIGTERM, killing its process group")
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftover workers, if any; the group is ours alone
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.log.close()


# -- requests ----------------------------------------------------------------------------------------------
def twilio_params() -> dict:
    """The parameters Twilio sends with the first request of an inbound call (a new CallSid and caller)."""
    caller = f"+1{secrets.choice('23456789')}{secrets.randbelow(10**9):09d}"
    return {"CallSid": "CA" + secrets.token_hex(16), "AccountSid": "AC" + "5" * 32, "From": caller,
            "To": "+15555550100", "Caller": caller, "Called": "+15555550100", "CallStatus": "ringing",
            "Direction": "inbound", "ApiVersion": "2010-04-01"}


def signed_requests(url: str, token: str, n: int):
    """n (signature, urlencoded body) pairs for `url`, each a new call."""
    validator = RequestValidator(token)
    for _ in range(n):
        params = twilio_params()
        yield validator.compute_signature(url, params), urlencode(params)


def write_pool(path: Path, url: str, token: str, n: int) -> None:
    """Write n signed requests for wrk, one `signature<TAB>body` per line."""
    with open(path, "w") as fh:
        fh.writelines(f"{sig}\t{body}\n" for sig, body in signed_requests(url, token, n))


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    completed: int
    http_errors: int  # answers >= 400 (wrk's "Non-2xx or 3xx responses" counts exactly these)
    socket_errors: int  # connect/read/write errors and timeouts
    sent: list[int] = field(default_factory=list)  # new CallSids handed out, per wrk thread or pacer
    cpu_ms: float = math.nan  # CPU the gunicorn workers used per completed request (steadier than req/s)
    pacer_lag_p99_ms: float = math.nan  # open loop only: how late the pacer started requests

    @property
    def errors(self) -> int:
        return self.http_errors + self.socket_errors

    @property
    def answered(self) -> int:
        return self.completed - self.http_errors


def fmt_row(r: LoadResult) -> str:
    return (f"{r.rps:8.0f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
            f"errors {r.errors} (http {r.http_errors}, socket {r.socket_errors})  worker CPU {r.cpu_ms:.2f} ms/req")


# -- wrk ---------------------------------------------------------------------------------------------------
LUA = r"""-- Generated by bench/webhooks.py: each thread cycles through its share of the pre-signed requests.
local POOL, THREADS, PATH = "%(pool)s", %(threads)d, "%(path)s"
local threads, next_id = {}, 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  sent, sigs, bodies = 0, {}, {}
  local i = 0
  for line in io.lines(POOL) do
    if i %% THREADS == tid - 1 then
      local tab = line:find("\t", 1, true)
      sigs[#sigs + 1], bodies[#bodies + 1] = line:sub(1, tab - 1), line:sub(tab + 1)
    end
    i = i + 1
  end
  local start = 0
  for _, a in pairs(args) do  -- "start=<thread 1>,<thread 2>,...": where each thread's share resumes
    if a:sub(1, 6) == "start=" then
      local k = 0
      for v in a:sub(7):gmatch("%%d+") do k = k + 1; if k == tid then start = tonumber(v) end end
    end
  end
  pos = start %% #bodies
  headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
end

function request()
  pos = pos %% #bodies + 1
  sent = sent + 1
  headers["X-Twilio-Signature"] = sigs[pos]
  return wrk.format("POST", PATH, headers, bodies[pos])
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do counts[#counts + 1] = tostring(t:get("sent")) end
  io.write("BENCH_SENT " .. table.concat(counts, ",") .. "\n")
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _percentile(out: str, pct: int) -> float:
    """A latency percentile in ms from wrk's "Latency Distribution" (NaN if absent)."""
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)$", out, re.M)
    return float(m.group(1)) * _UNITS_MS[m.group(2)] if m else math.nan


def parse_wrk(out: str) -> LoadResult:
    """Requests/s, p50, p99, completed requests, errors and per-thread sent counts from `wrk --latency` output."""
    def num(pattern: str, default: str = "0") -> str:
        m = re.search(pattern, out)
        return m.group(1) if m else default

    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return LoadResult(
        rps=float(num(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_percentile(out, 50),
        p99_ms=_percentile(out, 99),
        completed=int(num(r"(\d+) requests in")),
        http_errors=int(num(r"Non-2xx or 3xx responses: (\d+)")),
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
        # wrk calls request() once more than it sends, to check the script: an upper bound
        sent=[int(x) for x in num(r"BENCH_SENT ([\d,]+)", "").split(",") if x],
    )


def write_lua(path: Path, pool: Path) -> Path:
    """Write the wrk script that cycles through the pool."""
    path.write_text(LUA % {"pool": pool, "threads": THREADS, "path": PATH})
    return path


def run_wrk(lua: Path, url: str, seconds: float, start: list[int] | None = None) -> LoadResult:
    """wrk -t2 -c32 --latency with the generated script, each thread resuming its share at `start`."""
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", str(lua), url, "--", "start=" + ",".join(map(str, start or [0] * THREADS))]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0 or "Requests/sec" not in proc.stdout:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


class CallSidCursor:
    """Where each wrk thread's share of the pool resumes, so no CallSid is sent twice until the pool runs out."""

    def __init__(self, pool_size: int):
        self.shares = [len(range(t, pool_size, THREADS)) for t in range(THREADS)]
        self.used = [0] * THREADS

    def advance(self, result: LoadResult) -> None:
        self.used = [u + s for u, s in zip(self.used, result.sent)]

    @property
    def distinct_sent(self) -> int:
        return sum(min(u, n) for u, n in zip(self.used, self.shares))

    @property
    def repeated(self) -> bool:
        return any(u > n for u, n in zip(self.used, self.shares))


# -- the open-loop pacer -----------------------------------------------------------------------------------
class _Pending:
    """One request in flight: when it started, what is left to send, what came back."""

    __slots__ = ("started", "out", "got")

    def __init__(self, started: float, out: bytes):
        self.started, self.out, self.got = started, out, b""


def _launch(sel: selectors.BaseSelector, port: int, raw: bytes, now: float) -> bool:
    """Open a non-blocking connection for one request; False if the connect failed at once."""
    sock = socket.socket()
    sock.setblocking(False)
    if sock.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
        sock.close()
        return False
    req = _Pending(now, raw)
    req.out = send_with_connect(sock, raw)
    sel.register(sock, selectors.EVENT_WRITE if req.out else selectors.EVENT_READ, req)
    return True


def send_with_connect(sock: socket.socket, data: bytes) -> bytes:
    """Send what a just-connected non-blocking socket takes now (on loopback the connection is up at once:
    the request goes with it, as Twilio's does); what is left waits for the selector, which also reports a
    refused connection."""
    try:
        return data[sock.send(data):]
    except OSError:
        return data


def _progress(sel: selectors.BaseSelector, sock: socket.socket, req: _Pending, events: int) -> int | None:
    """Send or receive what the socket allows; the status (0: failed) once the server has closed."""
    try:
        if events & selectors.EVENT_WRITE:
            req.out = req.out[sock.send(req.out):]
            if not req.out:
                sel.modify(sock, selectors.EVENT_READ, req)
            return None
        chunk = sock.recv(65536)
        if chunk:
            req.got += chunk
            return None
        return int(req.got[9:12]) if req.got.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError):
        return 0


def _open_loop(port: int, raws: list[bytes], rate: float, seconds: float, timeout: float = 10.0
               ) -> tuple[list[tuple[float, int]], list[float]]:
    """Start requests at Poisson arrival times averaging `rate`/s for `seconds`, never waiting for answers.

    Returns (latency ms, status or 0) per request, from connect to the server's close, and how late each
    request was started (ms): a pacer that falls behind would understate the load.
    """
    sel, rng, raws = selectors.DefaultSelector(), random.Random(7), iter(raws)
    results, lags = [], []
    start = time.perf_counter()
    end, due = start + seconds, start + rng.expovariate(rate)
    while due < end or sel.get_map():
        now = time.perf_counter()
        while due <= now and due < end:
            lags.append((now - due) * 1000)
            if not _launch(sel, port, next(raws), now):
                results.append((0.0, 0))
            due += rng.expovariate(rate)
        for key, events in sel.select(max(0.0, min(due - time.perf_counter(), 0.05))):
            status = _progress(sel, key.fileobj, key.data, events)
            if status is not None:
                results.append(((time.perf_counter() - key.data.started) * 1000, status))
                sel.unregister(key.fileobj)
                key.fileobj.close()
        for key in [k for k in sel.get_map().values() if now - k.data.started > timeout]:
            results.append((timeout * 1000, 0))
            sel.unregister(key.fileobj)
            key.fileobj.close()
    sel.close()
    return results, lags


def _pct(values: list[float], p: float) -> float:
    """The p-th percentile of sorted values (NaN if empty)."""
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else math.nan


def run_paced(srv: Server, token: str, rate: float, seconds: float) -> LoadResult:
    """Open-loop load at `rate`/s, each request a new signed call on a new connection, as Twilio sends them."""
    head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n")
    n = int(rate * seconds * 1.2) + 100
    raws = [(head + f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
            for sig, body in signed_requests(srv.url(PATH), token, n)]
    results, lags = _open_loop(srv.port, raws, rate, seconds)
    latencies = sorted(ms for ms, status in results if status)
    return LoadResult(rps=sum(1 for _, st in results if 200 <= st < 400) / seconds, p50_ms=_pct(latencies, 50),
                      p99_ms=_pct(latencies, 99), completed=len(latencies),
                      http_errors=sum(1 for _, st in results if st >= 400),
                      socket_errors=sum(1 for _, st in results if not st), sent=[len(results)],
                      pacer_lag_p99_ms=_pct(sorted(lags), 99))


# -- databases ---------------------------------------------------------------------------------------------
def pg_unavailable() -> str | None:
    """None if the PostgreSQL server on 127.0.0.1:5432 answers psql; else why not."""
    if not shutil.which("psql"):
        return "psql is not installed"
    try:
        proc = subprocess.run(PG_ADMIN + ["SELECT 1"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "psql timed out"
    return None if proc.returncode == 0 else (proc.stderr.strip() or "psql failed")


def pg_admin(sql: str) -> None:
    """Run one statement as postgres on the admin database."""
    subprocess.run(PG_ADMIN + [sql], check=True, capture_output=True, text=True, timeout=60)


def count_calls(db_url: str) -> int:
    """Rows in `calls` (read-only)."""
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(f"file:{db_url[len('sqlite:///'):]}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    out = subprocess.run(["psql", db_url, "-qAtc", "SELECT count(*) FROM calls"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return int(out.strip())


# -- one database ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    db: str
    bare: LoadResult
    incoming: LoadResult
    paced: LoadResult
    bare_paced: LoadResult
    target_rate: float
    records_running: int
    waited_s: float
    records_final: int
    answered: int  # distinct CallSids answered below 400: the records that must exist
    sent: int  # distinct CallSids sent: the most records that can exist (the rest were in flight at a stop)
    repeats: bool
    commands: dict[str, str]
    log_path: Path
    log_lines: int
    catch_up_s: float = 0.0  # the spool writer's lag behind the saturation phase

    @property
    def ratio(self) -> float:
        return self.incoming.rps / self.bare.rps if self.bare.rps else math.nan

    def targets(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) for each target."""
        errors = self.incoming.errors + self.paced.errors
        return [
            (f"incoming throughput >= {TARGET_RATIO:.0%} of bare", f"{self.ratio:.2f}", self.ratio >= TARGET_RATIO),
            (f"p99 < {TARGET_P99_MS:.0f} ms at half rate", f"{self.paced.p99_ms:.1f} ms "
             f"(at {self.paced.rps:.0f} req/s)", self.paced.p99_ms < TARGET_P99_MS),
            ("0 errors on /voice/incoming", str(errors), errors == 0),
            ("every answered call recorded", f"{self.records_final} rows for {self.answered} answered"
             + (f", {self.sent} sent" if self.sent != self.answered else ""),
             self.answered <= self.records_final <= self.sent),
        ]


def clean_env() -> dict:
    """This environment without any hotline settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}


def app_env(instance: Path, token: str, db_url: str | None) -> dict:
    """Production settings for `ivr`; no DATABASE_URL means the default SQLite file in the instance folder."""
    env = clean_env()
    env.update(IVR_ENV="production", TWILIO_AUTH_TOKEN=token, IVR_SECRET_KEY=secrets.token_hex(16),
               IVR_INSTANCE_PATH=str(instance))
    if db_url:
        env["DATABASE_URL"] = db_url
    instance.mkdir(parents=True, exist_ok=True)
    return env


def start_app(env: dict, servers: list) -> Server:
    """`ivr setup`, then `ivr serve --workers 2` on a free port, as production runs it."""
    setup = subprocess.run([str(BIN / "ivr"), "setup"], env=env, capture_output=True, text=True, timeout=120)
    if setup.returncode != 0:
        raise RuntimeError(f"ivr setup failed:\n{setup.stdout}{setup.stderr}")
    port, staff_port = free_port(), free_port()
    srv = Server("hotline", port, [str(BIN / "ivr"), "serve", "--port", str(port), "--staff-port", str(staff_port),
                                   "--workers", str(WORKERS)], env, Path(env["IVR_INSTANCE_PATH"]) / "server.log",
                 staff_port=staff_port)
    servers.append(srv)
    # The first answer can come before `ivr background` (started beside the workers) has said it is alive:
    # give the server a few seconds to become healthy before calling it broken.
    deadline = time.monotonic() + 15
    health = srv.wait_ready("GET", "/healthz")
    while health.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        health = srv.wait_ready("GET", "/healthz")
    if health.status_code != 200:
        raise RuntimeError(f"/healthz answered {health.status_code}: {health.text}")
    return srv


def start_bare(log_path: Path, servers: list) -> Server:
    """The bare Flask app under the same gunicorn settings."""
    port = free_port()
    srv = Server("bare", port, [a.format(port=port) for a in BARE_ARGV], clean_env(), log_path)
    servers.append(srv)
    srv.wait_ready("POST", PATH)
    return srv


def check_signed_request(srv: Server, token: str) -> None:
    """One signed request must get 200 and TwiML, or the load test would only measure refusals."""
    sig, body = next(signed_requests(srv.url(PATH), token, 1))
    resp = requests.post(srv.url(PATH), data=body, timeout=10, headers={
        "X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"})
    if resp.status_code != 200 or "<Response>" not in resp.text:
        raise RuntimeError(f"a signed request got {resp.status_code}: {resp.text[:300]}")


def stop(srv: Server, servers: list) -> None:
    """Stop a server and forget it."""
    srv.stop()
    servers.remove(srv)


def saturate(srv: Server, lua: Path, seconds: float, cursor: CallSidCursor | None = None
             ) -> tuple[LoadResult, int]:
    """A warm-up, then the measured wrk run; with a cursor, new CallSids each time. (result, calls answered)."""
    answered, result = 0, None
    for secs in (WARMUP_S, seconds):
        result = srv.measure(run_wrk, lua, srv.url(PATH), secs, cursor.used if cursor else None)
        answered += result.answered
        if cursor:
            cursor.advance(result)
    return result, answered


def wait_for_records(db_url: str, expected: int, timeout: float = 120.0) -> float:
    """Seconds until `calls` holds `expected` rows (the writer caught up), or the timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout and count_calls(db_url) < expected:
        time.sleep(0.2)
    return time.monotonic() - started


def records(db_url: str, app: Server, servers: list, since: float) -> tuple[int, float, int]:
    """Rows in `calls` at least RECORD_WAIT_S after the load, then again after a graceful stop."""
    time.sleep(max(0.0, RECORD_WAIT_S - (time.monotonic() - since)))
    waited, running = time.monotonic() - since, count_calls(db_url)
    stop(app, servers)  # SIGTERM: each worker flushes what it still holds as it exits
    return running, waited, count_calls(db_url)


def bench_database(kind: str, db_url: str | None, work: Path, seconds: float, servers: list) -> Outcome:
    """Bare app and /voice/incoming on one database, the half-rate phase, then the record check."""
    token = "bench-" + secrets.token_hex(16)
    env = app_env(work / f"instance-{kind}", token, db_url)
    db_url = db_url or f"sqlite:///{work / f'instance-{kind}' / 'hotline.db'}"
    app = start_app(env, servers)
    check_signed_request(app, token)
    pool, pool_size = work / f"pool-{kind}.txt", max(5000, int(POOL_RATE * (WARMUP_S + seconds)))
    write_pool(pool, app.url(PATH), token, pool_size)
    lua = write_lua(work / f"{kind}.lua", pool)
    bare = start_bare(work / f"bare-{kind}.log", servers)
    commands = {"bare": bare.cmdline(), "hotline": app.cmdline()}

    bare_full, _ = saturate(bare, lua, seconds)
    print(f"  {'bare (constant TwiML)':<24}{fmt_row(bare_full)}")
    cursor = CallSidCursor(pool_size)
    full, answered = saturate(app, lua, seconds, cursor)
    print(f"  {'/voice/incoming':<24}{fmt_row(full)}")
    # The half-rate phase measures a steady state: it starts once the spool writer (`ivr background`) has
    # written what the saturation left, and the time that took is reported.
    # Each CallSid is sent once unless the pool ran out; then "answered" counts repeats, and the distinct
    # CallSids sent stand in for it, less what each stopped wrk run may have cut off unanswered (one request
    # per connection; the warm-up's are not sent again).
    distinct = cursor.distinct_sent - (2 * CONNECTIONS if cursor.repeated else 0)
    catch_up = wait_for_records(db_url, min(answered, distinct))
    print(f"  spool writer caught up {catch_up:.1f} s after the saturation ended")
    target = full.rps / 2
    paced = app.measure(run_paced, app, token, target, seconds)
    print(f"  {'/voice/incoming, paced':<24}{fmt_row(paced)}  (open loop, target {target:.0f} req/s, "
          f"pacer lag p99 {paced.pacer_lag_p99_ms:.1f} ms)")
    load_ended = time.monotonic()  # the floor at the same rate, while the hotline idles and flushes its events
    bare_paced = bare.measure(run_paced, bare, token, target, seconds)
    print(f"  {'bare, paced':<24}{fmt_row(bare_paced)}  (pacer lag p99 {bare_paced.pacer_lag_p99_ms:.1f} ms)")
    stop(bare, servers)

    running, waited, final = records(db_url, app, servers, load_ended)
    answered = min(answered, distinct) + paced.answered + 1  # +1: check_signed_request's call
    sent = cursor.distinct_sent + paced.sent[0] + 1
    print(f"  records written vs expected: {running} {waited:.0f} s after the load, {final} after SIGTERM; "
          f"expected {answered} (distinct CallSids answered) to {sent} (distinct CallSids sent, some in flight "
          f"when wrk stopped)" + ("; CallSids repeated: the pool was too small" if cursor.repeated else ""))
    with open(app.log_path, "rb") as fh:
        log_lines = sum(1 for _ in fh)
    return Outcome(kind, bare_full, full, paced, bare_paced, target, running, waited, final, answered, sent,
                   cursor.repeated, commands, app.log_path, log_lines, catch_up)


# -- report ------------------------------------------------------------------------------------------------
def machine() -> str:
    """nproc, CPU model, Python version."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every number here."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def git_commit() -> str:
    """The checked-out commit (read-only)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def report(outcomes: list[Outcome], seconds: float, skipped: list[str], load_at_start: str) -> str:
    """The markdown results block: settings, one table per database, the targets."""
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    lags = ", ".join(f"{o.db} {o.paced.pacer_lag_p99_ms:.1f} ms" for o in outcomes) or "n/a"
    lines = [f"## {date}", "",
             f"- machine: {machine()}; load average {load_at_start} at start, {load_average()} at end",
             f"- commit: {git_commit()} (the working tree may hold uncommitted edits)",
             f"- load: `wrk -t{THREADS} -c{CONNECTIONS} -d{round(seconds)}s --latency` after a {WARMUP_S} s warm-up, "
             f"loopback; POST {PATH} with Twilio's parameters, a new CallSid and a valid X-Twilio-Signature per "
             f"request (the bare app gets the same requests). Half rate: open loop, Poisson arrivals at half the "
             f"measured /voice/incoming rate for {round(seconds)} s, one new connection per request, from a "
             f"selectors loop in this process (pacer lag p99: incoming {lags})",
             f"- servers: gunicorn, {WORKERS} sync workers, `--access-logfile -` redirected to a file (one line per "
             f"request); the hotline with IVR_ENV=production through `ivr setup` + `ivr serve`", ""]
    for o in outcomes:
        lines += [f"### {o.db}", "",
                  "| | req/s | p50 ms | p99 ms | errors (http/socket) | worker CPU ms/req |",
                  "|---|---:|---:|---:|---|---:|"]
        for label, r in (("bare Flask, constant TwiML", o.bare), ("/voice/incoming", o.incoming),
                         (f"/voice/incoming at half rate (target {o.target_rate:.0f}/s)", o.paced),
                         ("bare at that rate (the floor here)", o.bare_paced)):
            lines.append(f"| {label} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                         f"{r.errors} ({r.http_errors}/{r.socket_errors}) | {r.cpu_ms:.2f} |")
        lines += ["", f"ratio incoming/bare: **{o.ratio:.2f}** (by worker CPU per request: "
                  f"{o.bare.cpu_ms / o.incoming.cpu_ms:.2f}); rows in `calls`: {o.records_running} "
                  f"{o.waited_s:.0f} s after the load, {o.records_final} after SIGTERM; "
                  f"expected {o.answered} to {o.sent}"
                  + (" (CallSids repeated)" if o.repeats else "")
                  + f"; the spool writer finished writing the saturation phase {o.catch_up_s:.1f} s after it "
                    "ended (the half-rate phase starts then)", ""]
        lines += [f"- {'MET    ' if met else 'NOT MET'} {name}: {value}" for name, value, met in o.targets()]
        lines.append("")
    lines += [f"- skipped: {s}" for s in skipped]
    return "\n".join(lines).rstrip() + "\n"


def append_results(block: str) -> None:
    """Append to bench/RESULTS.md, creating it with a header if missing."""
    if not RESULTS.exists():
        RESULTS.write_text("# Webhook benchmark results\n\nAppended by `make bench` (bench/webhooks.py): the "
                           "hotline's /voice/incoming against a bare Flask app under the same gunicorn settings.\n")
    with open(RESULTS, "a") as fh:
        fh.write("\n" + block)


# -- main --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (default 10)")
    p.add_argument("--quick", action="store_true", help="3 s runs, for a smoke test")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, pools, SQLite files)")
    p.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    return args


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(args, work: Path, servers: list, pg_dbs: list) -> int:
    """Benchmark each database asked for; print and record the report."""
    load_at_start = load_average()
    if os.getloadavg()[0] > 0.5:
        print(f"note: load average {load_at_start} before starting: something else is running, numbers will be low")
    outcomes, skipped = [], []
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print(f"\n== {kind} ==")
        db_url = None
        if kind == "postgresql":
            if why := pg_unavailable():
                skipped.append(f"PostgreSQL: not reachable on 127.0.0.1:5432 as postgres ({why})")
                print("  skipped: " + skipped[-1])
                continue
            pg_dbs.append(f"ivr_bench_{secrets.token_hex(5)}")
            pg_admin(f'CREATE DATABASE "{pg_dbs[-1]}"')
            db_url = f"postgresql://postgres@127.0.0.1:5432/{pg_dbs[-1]}"
        outcomes.append(bench_database(kind, db_url, work, args.duration, servers))
    block = report(outcomes, args.duration, skipped, load_at_start)
    print("\n" + block)
    for o in outcomes:
        print(f"{o.db}: server output, access log included ({o.log_lines} lines): {o.log_path}"
              + ("" if args.keep else " (removed at exit; --keep keeps it)"))
        for name, cmd in o.commands.items():
            print(f"{o.db} {name}: {cmd}")
    if outcomes and not args.no_results:
        append_results(block)
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0 if outcomes and all(met for o in outcomes for *_rest, met in o.targets()) else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk (make bench does it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    servers: list[Server] = []
    pg_dbs: list[str] = []
    try:
        return run(args, work, servers, pg_dbs)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:  # a server that would not start, wrk...
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        clean_up(servers, pg_dbs, work, args.keep)


def clean_up(servers: list, pg_dbs: list, work: Path, keep: bool) -> None:
    """Stop every server, drop every scratch database, remove the work folder (unless kept)."""
    for srv in list(servers):
        srv.stop(timeout=10)
    for name in pg_dbs:
        try:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # report it, never mask the real outcome
            print(f"could not drop PostgreSQL database {name}: {exc}", file=sys.stderr)
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
