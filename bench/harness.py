"""What the benches share: the servers they start and stop, Twilio-shaped requests, the open-loop pacer,
the scratch databases, the machine they ran on, and bench/RESULTS.md's sections.

bench/webhooks.py, bench/surge.py and bench/audio.py import it; nothing here measures anything by itself.
Everything runs on 127.0.0.1; every process started here is stopped by `clean_up`, Ctrl-C included.

Why the pacer (`_open_loop`) sends each request in the same turn of its loop as the connect: Twilio sends its
request as soon as it connects; sent on a later turn, a request left the worker that had accepted the
connection waiting in recv() whenever the pacer, which shares the two cores, was late getting there (traced per
request: queueing in front of idle workers, not time in the app).
"""
from __future__ import annotations

import errno
import math
import os
import platform
import re
import random
import secrets
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "RESULTS.md"
PATH = "/voice/incoming"
WORKERS = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-qAtc"]

# The bare app gets the settings `ivr serve` gives its caller pool's gunicorn (ivr/worker/gunicorn_conf.py): sync
# workers (the hotline's drain on SIGTERM and nothing else), the access log on, the app preloaded.
BARE_ARGV = [str(BIN / "gunicorn"), "--bind", "127.0.0.1:{port}", "--workers", str(WORKERS), "--worker-class",
             "sync", "--access-logfile", "-", "--timeout", "10", "--preload", "--chdir", str(ROOT / "bench"),
             "bare_app:app"]



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


def start_app(env: dict, servers: list, extra: list[str] = (), healthy_within: float = 15.0) -> Server:
    """`ivr setup`, then `ivr serve --workers 2` on a free port, as production runs it (`extra`: gunicorn flags
    after `--`, which win over ivr's own)."""
    setup = subprocess.run([str(BIN / "ivr"), "setup"], env=env, capture_output=True, text=True, timeout=120)
    if setup.returncode != 0:
        raise RuntimeError(f"ivr setup failed:\n{setup.stdout}{setup.stderr}")
    port, staff_port = free_port(), free_port()
    srv = Server("hotline", port, [str(BIN / "ivr"), "serve", "--port", str(port), "--staff-port", str(staff_port),
                                   "--workers", str(WORKERS), *(["--", *extra] if extra else [])], env,
                 Path(env["IVR_INSTANCE_PATH"]) / "server.log", staff_port=staff_port)
    servers.append(srv)
    # The first answer can come before `ivr background` (started beside the workers) has said it is alive:
    # give the server a few seconds to become healthy before calling it broken.
    deadline = time.monotonic() + healthy_within
    health = srv.wait_ready("GET", "/healthz")
    while health.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        health = srv.wait_ready("GET", "/healthz")
    if health.status_code != 200:
        raise RuntimeError(f"/healthz answered {health.status_code}: {health.text}")
    return srv


def start_bare(log_path: Path, servers: list, extra: list[str] = (), app: str = "bare_app:app") -> Server:
    """The bare Flask app under the same gunicorn settings (`extra`: more gunicorn flags, which win); `app`:
    another module of bench/ in its place (bench/sample_app.py)."""
    port = free_port()
    argv = [a.format(port=port) if a != "bare_app:app" else app for a in BARE_ARGV] + list(extra)
    srv = Server("bare" if app == "bare_app:app" else app.split(":")[0], port, argv, clean_env(), log_path)
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

# -- report ------------------------------------------------------------------------------------------------
def cpus() -> str:
    """nproc and the CPU model: the machine a results section of bench/RESULTS.md belongs to."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({model})"


def machine() -> str:
    """nproc, CPU model, Python version, kernel."""
    return f"{cpus()}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


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


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


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


# -- bench/RESULTS.md --------------------------------------------------------------------------------------
def record_section(block: str, results: Path = RESULTS) -> None:
    """Put a bench's results in bench/RESULTS.md: the block replaces the section with the same heading (its
    first line, "## <bench>: <machine>"), so the file holds the current figures per bench and machine, not a
    log. A new section goes at the end; every other section ("History", "Export", "Notices"...) is left alone."""
    heading, text = block.splitlines()[0], results.read_text() if results.exists() else "# Benchmark results\n"
    sections = re.split(r"(?m)^(?=## )", text)
    for i, section in enumerate(sections):
        if section.splitlines()[0] == heading:
            sections[i] = block.rstrip() + "\n\n"
            break
    else:
        sections[-1] = sections[-1].rstrip() + "\n\n"
        sections.append(block.rstrip() + "\n")
    results.write_text("".join(sections).rstrip() + "\n")
    print(f"{results.name}: section \"{heading[3:]}\" written")
