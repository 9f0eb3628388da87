"""Benchmark: the real /voice/incoming webhook against a bare Flask app, both under gunicorn as in production.

    .venv/bin/python bench/webhooks.py [--db sqlite|postgresql|both] [--duration S] [--quick] [--keep]

For each database: start `ivr setup` + `ivr serve --workers 2` (IVR_ENV=production) and a bare Flask app with the
same gunicorn settings; load both with wrk (-t2 -c32, --latency) using pre-signed, Twilio-shaped requests, each
with its own CallSid; then load /voice/incoming again paced at half its measured throughput; stop the server
with SIGTERM and check that every answered call was recorded in `calls`. Results are printed and appended to
bench/RESULTS.md. Everything runs on 127.0.0.1; every process started here is stopped on exit.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import re
import secrets
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
POOL_RATE = 3000  # req/s the pool of distinct CallSids is sized for; above it CallSids repeat (reported)
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-qAtc"]
TARGET_RATIO, TARGET_P99_MS = 0.5, 20.0
# The bare app gets the flags `ivr serve` gives gunicorn (ivr/cli.py); both command lines are printed.
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

    def __init__(self, name: str, port: int, argv: list[str], env: dict, log_path: Path):
        self.name, self.port, self.log_path = name, port, log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)

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

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cmdline(self) -> str:
        """The master's command line (`ivr serve` execs gunicorn, so this is gunicorn's)."""
        try:
            return Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            return " ".join(self.proc.args)

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


# -- requests and wrk --------------------------------------------------------------------------------------
def twilio_params(i: int) -> dict:
    """The parameters Twilio sends with the first request of an inbound call (distinct CallSid and caller)."""
    caller = f"+1{secrets.choice('23456789')}{secrets.randbelow(10**9):09d}"
    return {"CallSid": "CA" + secrets.token_hex(16), "AccountSid": "AC" + "5" * 32, "From": caller,
            "To": "+15555550100", "Caller": caller, "Called": "+15555550100", "CallStatus": "ringing",
            "Direction": "inbound", "ApiVersion": "2010-04-01"}


def write_pool(path: Path, url: str, token: str, n: int) -> None:
    """Write n signed requests for `url`, one `signature<TAB>body` per line."""
    validator = RequestValidator(token)
    with open(path, "w") as fh:
        for i in range(n):
            params = twilio_params(i)
            fh.write(f"{validator.compute_signature(url, params)}\t{urlencode(params)}\n")


LUA = r"""-- Generated by bench/webhooks.py: each thread cycles through its share of the pre-signed requests.
local POOL, THREADS, PATH, DELAY_MS = "%(pool)s", %(threads)d, "%(path)s", %(delay_ms)f
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

if DELAY_MS > 0 then
  function delay()  -- uniform jitter around the mean keeps connections from moving in lockstep
    return math.floor(math.random() * 2 * DELAY_MS + 0.5)
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do counts[#counts + 1] = tostring(t:get("sent")) end
  io.write("BENCH_SENT " .. table.concat(counts, ",") .. "\n")
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    completed: int
    http_errors: int  # wrk's "Non-2xx or 3xx responses" (it counts status >= 400)
    socket_errors: int
    sent: list[int] = field(default_factory=list)  # request() calls per thread (incl. wrk's one check call)

    @property
    def errors(self) -> int:
        return self.http_errors + self.socket_errors


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * _UNITS_MS[unit]


def _percentile(out: str, pct: int) -> float:
    """A latency percentile in ms from wrk's "Latency Distribution" (NaN if absent)."""
    m = re.search(rf"^\s+{pct}%\s+(\S+)$", out, re.M)
    return _ms(m.group(1)) if m else math.nan


def parse_wrk(out: str) -> WrkResult:
    """Requests/s, p50, p99, completed requests, errors and per-thread sent counts from `wrk --latency` output."""
    def num(pattern: str, default="0") -> str:
        m = re.search(pattern, out)
        return m.group(1) if m else default

    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(num(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_percentile(out, 50),
        p99_ms=_percentile(out, 99),
        completed=int(num(r"(\d+) requests in")),
        http_errors=int(num(r"Non-2xx or 3xx responses: (\d+)")),
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
        sent=[int(x) for x in num(r"BENCH_SENT ([\d,]+)", "").split(",") if x],
    )


def run_wrk(lua: Path, url: str, seconds: float, start: list[int] | None = None) -> tuple[WrkResult, str]:
    """Run wrk -t2 -c32 --latency with the generated script; return the parsed result and the raw output."""
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", str(lua), url, "--", "start=" + ",".join(map(str, start or [0] * THREADS))]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout), proc.stdout


def write_lua(path: Path, pool: Path, delay_ms: float = 0.0) -> Path:
    """Write the wrk script; delay_ms > 0 paces each connection to about one request per delay_ms."""
    path.write_text(LUA % {"pool": pool, "threads": THREADS, "path": PATH, "delay_ms": delay_ms})
    return path


# -- databases ---------------------------------------------------------------------------------------------
def pg_available() -> str | None:
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
    bare: WrkResult
    incoming: WrkResult
    paced: WrkResult
    target_rate: float
    delay_ms: float
    records_running: int
    records_final: int
    answered: int  # distinct CallSids answered below 400 (the records that must exist)
    sent: int  # distinct CallSids handed to wrk (the most records that can exist)
    repeats: bool
    commands: dict[str, str]
    log_path: Path
    log_lines: int

    @property
    def ratio(self) -> float:
        return self.incoming.rps / self.bare.rps if self.bare.rps else math.nan

    def targets(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) for each target."""
        errors = self.incoming.errors + self.paced.errors
        return [
            (f"incoming throughput >= {TARGET_RATIO:.0%} of bare", f"{self.ratio:.2f}", self.ratio >= TARGET_RATIO),
            (f"p99 < {TARGET_P99_MS:.0f} ms at half rate", f"{self.paced.p99_ms:.1f} ms",
             self.paced.p99_ms < TARGET_P99_MS),
            ("0 errors on /voice/incoming", str(errors), errors == 0),
            ("every answered call recorded", f"{self.records_final} of {self.answered}"
             + (f" (<= {self.sent} sent)" if self.sent != self.answered else ""),
             self.answered <= self.records_final <= self.sent),
        ]


def base_env(instance: Path, token: str, db_url: str | None) -> dict:
    """Production settings for `ivr`, with nothing inherited that would change them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}
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
    port = free_port()
    srv = Server("hotline", port, [str(BIN / "ivr"), "serve", "--port", str(port), "--workers", str(WORKERS)], env,
                 Path(env["IVR_INSTANCE_PATH"]) / "server.log")
    servers.append(srv)
    health = srv.wait_ready("GET", "/healthz")
    if health.status_code != 200:
        raise RuntimeError(f"/healthz answered {health.status_code}: {health.text}")
    return srv


def start_bare(work: Path, kind: str, servers: list) -> Server:
    """The bare Flask app under the same gunicorn settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}
    port = free_port()
    srv = Server("bare", port, [a.format(port=port) for a in BARE_ARGV], env, work / f"bare-{kind}.log")
    servers.append(srv)
    srv.wait_ready("POST", PATH, data={"CallSid": "CA" + "0" * 32})
    return srv


def check_signed_request(srv: Server, token: str) -> None:
    """One signed request must be answered 200 with TwiML, or the load test would only measure 403s."""
    params = twilio_params(0)
    params["CallSid"] = "CA" + "f" * 32
    sig = RequestValidator(token).compute_signature(srv.url(PATH), params)
    resp = requests.post(srv.url(PATH), data=params, headers={"X-Twilio-Signature": sig}, timeout=10)
    if resp.status_code != 200 or "<Response>" not in resp.text:
        raise RuntimeError(f"signed request answered {resp.status_code}: {resp.text[:300]}")


def fmt_row(r: WrkResult) -> str:
    return (f"{r.rps:8.0f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
            f"errors {r.errors} (http {r.http_errors}, socket {r.socket_errors})")


class CallSidCursor:
    """Where each wrk thread's share of the pool resumes, so no CallSid is sent twice until the pool runs out."""

    def __init__(self, pool_size: int):
        self.shares = [len(range(t, pool_size, THREADS)) for t in range(THREADS)]
        self.used = [0] * THREADS

    def advance(self, result: WrkResult) -> None:
        self.used = [u + s for u, s in zip(self.used, result.sent)]

    @property
    def distinct_sent(self) -> int:
        return sum(min(u, n) for u, n in zip(self.used, self.shares))

    @property
    def repeated(self) -> bool:
        return any(u > n for u, n in zip(self.used, self.shares))


def load_incoming(srv: Server, work: Path, pool: Path, cursor: CallSidCursor, seconds: float
                  ) -> tuple[WrkResult, WrkResult, float, float, int]:
    """Warm-up, full load, then load paced at half the measured rate; returns results and answered count."""
    lua = write_lua(work / "incoming.lua", pool)
    answered = 0
    results = []
    for phase, secs in (("warm-up", WARMUP_S), ("incoming", seconds)):
        r, _ = run_wrk(lua, srv.url(PATH), secs, cursor.used)
        cursor.advance(r)
        answered += r.completed - r.http_errors
        results.append(r)
    full = results[-1]
    print(f"  {'/voice/incoming':<22} {fmt_row(full)}")
    target = full.rps / 2
    delay_ms = CONNECTIONS * 1000.0 / target if target else 1000.0
    paced_lua = write_lua(work / "incoming-paced.lua", pool, delay_ms)
    paced, _ = run_wrk(paced_lua, srv.url(PATH), seconds, cursor.used)
    cursor.advance(paced)
    answered += paced.completed - paced.http_errors
    print(f"  {'/voice/incoming @50%':<22} {fmt_row(paced)}  (target {target:.0f} req/s, "
          f"mean delay {delay_ms:.1f} ms per connection)")
    return full, paced, target, delay_ms, answered


def bench_database(kind: str, db_url: str | None, work: Path, seconds: float, servers: list) -> Outcome:
    """Bare app and /voice/incoming on one database, the paced phase, then the record check."""
    token = "bench-" + secrets.token_hex(16)
    instance = work / f"instance-{kind}"
    env = base_env(instance, token, db_url)
    db_url = db_url or f"sqlite:///{instance / 'hotline.db'}"

    bare = start_bare(work, kind, servers)
    app = start_app(env, servers)
    check_signed_request(app, token)
    commands = {"bare": bare.cmdline(), "hotline": app.cmdline()}
    pool = work / f"pool-{kind}.txt"
    pool_size = max(5000, int(POOL_RATE * (WARMUP_S + 2 * seconds)))
    t0 = time.monotonic()
    write_pool(pool, app.url(PATH), token, pool_size)
    print(f"  {pool_size} signed requests with distinct CallSids written in {time.monotonic() - t0:.1f} s")

    lua = write_lua(work / "bare.lua", pool)
    run_wrk(lua, bare.url(PATH), WARMUP_S)
    bare_result, _ = run_wrk(lua, bare.url(PATH), seconds)
    print(f"  {'bare (constant TwiML)':<22} {fmt_row(bare_result)}")
    stop(bare, servers)

    cursor = CallSidCursor(pool_size)
    full, paced, target, delay_ms, answered = load_incoming(app, work, pool, cursor, seconds)
    answered += 1  # check_signed_request's call
    time.sleep(3)
    running = count_calls(db_url)
    stop(app, servers)
    final = count_calls(db_url)
    sent = cursor.distinct_sent + 1
    if cursor.repeated:  # CallSids were reused: only the distinct ones can be recorded
        answered = min(answered, sent)
    print(f"  records written vs expected: {running} after 3 s while running, {final} after SIGTERM; "
          f"expected {answered} (distinct CallSids answered 2xx) .. {sent} (distinct CallSids sent; the "
          f"difference was in flight when wrk stopped){'; CallSids repeated: pool too small' if cursor.repeated else ''}")
    log_lines = sum(1 for _ in open(app.log_path, "rb"))
    return Outcome(kind, bare_result, full, paced, target, delay_ms, running, final, answered, sent,
                   cursor.repeated, commands, app.log_path, log_lines)


def stop(srv: Server, servers: list) -> None:
    """Stop a server and forget it."""
    srv.stop()
    servers.remove(srv)


# -- report ------------------------------------------------------------------------------------------------
def machine() -> str:
    """nproc, CPU model, Python version."""
    model = "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
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
    lines = [f"## {date}", "",
             f"- machine: {machine()}; load average {load_at_start} at start, {load_average()} at end",
             f"- commit: {git_commit()} (working tree may hold uncommitted edits)",
             f"- load: `wrk -t{THREADS} -c{CONNECTIONS} -d{round(seconds)}s --latency`, {WARMUP_S} s warm-up each, "
             f"loopback; POST {PATH} with Twilio's parameters, a distinct CallSid and a valid X-Twilio-Signature "
             f"per request; half-rate phase paced by wrk `delay()` (jittered) on the same {CONNECTIONS} connections",
             f"- servers: gunicorn, {WORKERS} sync workers, `--access-logfile -` redirected to a file in the "
             f"instance folder (one line per request); the hotline with IVR_ENV=production via `ivr setup` + "
             f"`ivr serve`", ""]
    for o in outcomes:
        lines += [f"### {o.db}", "",
                  "| | req/s | p50 ms | p99 ms | errors (http/socket) |", "|---|---:|---:|---:|---|"]
        for label, r in (("bare Flask, constant TwiML", o.bare), ("/voice/incoming", o.incoming),
                         (f"/voice/incoming at half rate (target {o.target_rate:.0f})", o.paced)):
            lines.append(f"| {label} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                         f"{r.errors} ({r.http_errors}/{r.socket_errors}) |")
        lines += ["", f"ratio incoming/bare: **{o.ratio:.2f}**; records in `calls`: {o.records_running} after 3 s "
                  f"while running, {o.records_final} after SIGTERM, expected {o.answered}"
                  + (f"..{o.sent}" if o.sent != o.answered else "")
                  + (" (CallSids repeated)" if o.repeats else ""), ""]
        lines += [f"- {'MET    ' if met else 'NOT MET'} {name}: {value}" for name, value, met in o.targets()]
        lines.append("")
    lines += [f"- skipped: {s}" for s in skipped]
    return "\n".join(lines).rstrip() + "\n"


def append_results(block: str) -> None:
    """Append to bench/RESULTS.md, creating it with a header if missing."""
    if not RESULTS.exists():
        RESULTS.write_text("# Webhook benchmark results\n\nAppended by `make bench` (bench/webhooks.py): the "
                           "hotline's /voice/incoming against a bare Flask app under the same gunicorn settings.\n\n")
    with open(RESULTS, "a") as fh:
        fh.write("\n" + block)


# -- main --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (default 10)")
    p.add_argument("--quick", action="store_true", help="3 s runs, for a smoke test")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, pools, databases)")
    p.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    return args


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk (make bench does it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    load_at_start = load_average()
    if os.getloadavg()[0] > 0.5:
        print(f"note: load average {load_at_start} before starting: something else is running; numbers will be low")
    work = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    servers: list[Server] = []
    outcomes, skipped, pg_dbs = [], [], []
    try:
        for kind in kinds:
            print(f"\n== {kind} ==")
            db_url = None
            if kind == "postgresql":
                why = pg_available()
                if why:
                    msg = f"PostgreSQL skipped: not reachable on 127.0.0.1:5432 as postgres ({why})"
                    print("  " + msg)
                    skipped.append(msg)
                    continue
                name = f"ivr_bench_{secrets.token_hex(5)}"
                pg_admin(f'CREATE DATABASE "{name}"')
                pg_dbs.append(name)
                db_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
            outcomes.append(bench_database(kind, db_url, work, args.duration, servers))
        block = report(outcomes, args.duration, skipped, load_at_start)
        print("\n" + block)
        for o in outcomes:
            print(f"{o.db}: server output incl. access log ({o.log_lines} lines): {o.log_path}"
                  + ("" if args.keep else " (removed; --keep keeps it)"))
        for o in outcomes:
            for name, cmd in o.commands.items():
                print(f"{o.db} {name}: {cmd}")
        if outcomes and not args.no_results:
            append_results(block)
            print(f"appended to {RESULTS.relative_to(ROOT)}")
        return 0 if outcomes and all(met for o in outcomes for *_x, met in o.targets()) else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        for srv in list(servers):
            srv.stop(timeout=10)
        for name in pg_dbs:
            try:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # report, never mask the real outcome
                print(f"could not drop PostgreSQL database {name}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
