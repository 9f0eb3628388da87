"""Benchmark: a breach-day surge of COMPLETE calls against the real hotline, on SQLite and on PostgreSQL.

    .venv/bin/python bench/surge.py [--db sqlite|postgresql|both] [--rate CALLS/S] [--duration S] [--quick]
                                    [--no-prefill] [--prefill-calls N] [--workers N] [--keep] [--no-results]

`make surge` runs the defaults (100 calls/s held 60 s, both databases, 1,000,000 prefilled calls): about 10
minutes. `--quick` (20 calls/s for 10 s, 100,000 prefilled calls) takes about 3 minutes. Targets (issue 6),
printed as MET / NOT MET per database: 100 complete calls/s sustained for 60 s with 0 errors, 0 lost records
and webhook p99 under 50 ms; /voice/incoming with 1,000,000 calls in the database at most 20% slower (p50).

For each database: `ivr setup` + `ivr serve --workers 2` (IVR_ENV=production, as bench/webhooks.py starts it),
`ivr mode set live --reason bench --override ...` (nobody is on the agent line in a benchmark), and a copy of routing_rules.yaml (IVR_RULES) with every queue's `hours:`
removed and `max_size` raised to Twilio's maximum (5000), so every caller who asks for a person is queued
whatever the time of day and however long the line. One probe call is followed over HTTP by parsing its TwiML
(incoming -> key 1 -> key 0 -> Enqueue -> hold x2 -> queue-result -> status); its URLs are the template for
every call of the surge, and the events it left in the database are what each call must leave.

The surge: new calls arrive open loop (a Poisson process, whatever the server does), the rate ramping linearly
from 0 to --rate over --ramp seconds and then held for --duration seconds. Each call is replayed like a real
caller: its next request goes out a think time after the previous answer (the TwiML is what Twilio waits for):

    incoming  --U(1,3) s-->  menu Digits=1  --U(1,3) s-->  menu Digits=0 (Enqueue)  --U(0.5,1.5) s-->  hold #1
    hold #1  --U(3,5) s-->  hold #2  --U(2,4) s-->  queue-result (QueueResult bridged 80% / hangup 20%)
    queue-result  --U(0.1,0.5) s-->  status (CallStatus=completed, CallDuration, SequenceNumber, Timestamp)

A call whose request fails (non-200, not TwiML, no answer in 15 s, the TwiML Twilio would not have continued
with) stops there, as Twilio would turn to the fallback URL, but its status callback is still sent. Every
request is a new connection (as Twilio's are), carries Twilio's parameters and is signed as Twilio signs it
(RequestValidator.compute_signature over the full URL and the POST parameters); all are built and signed
before the load starts, each call with its own CallSid and From. One call in --sample-every keeps its answers,
and after the run each of those calls is walked again through its own TwiML: every URL it requested must be
the one its previous answer led to. Every answer is checked for 200, text/xml, an XML prolog and the verb that
step must hold (Gather, Enqueue, Hangup...).

The server's own view comes from its /metrics (the webhook histogram summed over the workers): requests
handled, time inside the view, and so worker CPU per handled request. Then the records, after a graceful stop
(SIGTERM): rows in `calls` with status completed, `call_events` and `queue_entries` (how many, still `waiting`,
bridged/hangup) against what the answered requests must have produced (a range when some requests timed out:
the server may still have served them), and call by call: every answered status callback's completed row,
every answered step's events, every queued caller's entry and how it ended.

The bare Flask app (bench/bare_app.py, the gunicorn flags `ivr serve` uses) gets the very same schedule of
requests (all to its one endpoint), once per run, for the ratio of p99s and of worker CPU per request. Finally
/voice/incoming is paced at --prefill-rate against two fresh instances side by side, one empty and one
prefilled with --prefill-calls calls (and 3 call_events each) by one SQL statement per table through the
migrated schema; the two are measured in alternating chunks (ABBA) so the machine's noise hits both.

The load generator is a selectors loop in this process (no threads); how late it started requests (lag) and
the CPU it used are printed, beside the CPU of the gunicorn workers and of every postgres process, the busy
share of the machine's CPUs (and the hypervisor's steal), over the whole run and over its steady state.
Results are printed and appended to bench/RESULTS.md. Everything runs on 127.0.0.1; every process started
here is stopped on exit, Ctrl-C included; every phase has a time bound.
"""
from __future__ import annotations

import argparse
import email.utils
import errno
import heapq
import importlib.util
import math
import os
import random
import re
import secrets
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
import yaml
from twilio.request_validator import RequestValidator

_spec = importlib.util.spec_from_file_location("bench_webhooks", Path(__file__).with_name("webhooks.py"))
wh = sys.modules["bench_webhooks"] = importlib.util.module_from_spec(_spec)  # bench/webhooks.py's pieces
_spec.loader.exec_module(wh)

ROOT, BIN, CLK_TCK = wh.ROOT, wh.BIN, wh.CLK_TCK
KEYS = ("1", "0")  # details, then a person
HOLD_CYCLES = 2
EXPECTED_KINDS = ["incoming", "key:1", "key:0", "hold:0", "hold:1", "queue-result", "status"]
# Think time before each step (seconds, uniform), by the step it leads to: what a caller (and Twilio) take.
THINK = {"key:1": (1.0, 3.0), "key:0": (1.0, 3.0), "hold:0": (0.5, 1.5), "hold:1": (3.0, 5.0),
         "queue-result": (2.0, 4.0), "status": (0.1, 0.5)}
MARKERS = {"incoming": b"<Gather", "key:1": b"<Gather", "key:0": b"<Enqueue", "hold:0": b"<Gather",
           "hold:1": b"<Gather", "queue-result": b"<Hangup", "status": b"<Response"}
BRIDGED_SHARE = 0.8
REQUEST_TIMEOUT_S = 15.0  # Twilio waits at most 15 s for an answer
MAX_QUEUE = 5000  # Twilio's maximum maxQueueSize
TO = "+15555550100"
ACCOUNT = "AC" + "5" * 32
QUEUE_SID = "QU" + "7" * 32
HOLD_ALLOWED = {"Play", "Say", "Pause", "Gather", "Redirect", "Leave", "Hangup"}
TARGET_P99_MS, TARGET_PREFILL_RATIO, PREFILL_EVENTS_PER_CALL = 50.0, 1.20, 3
BUCKET_S = 10


# -- the rules copy and the servers ------------------------------------------------------------------------
def rules_copy(path: Path) -> list[str]:
    """routing_rules.yaml without business hours and with the largest queues Twilio allows; what changed."""
    data = yaml.safe_load((ROOT / "routing_rules.yaml").read_text())
    changes = []
    for name, queue in (data.get("queues") or {}).items():
        if queue.pop("hours", None) is not None:
            changes.append(f"{name}: hours removed")
        if int(queue.get("max_size", MAX_QUEUE)) < MAX_QUEUE:
            changes.append(f"{name}: max_size {queue['max_size']} -> {MAX_QUEUE}")
            queue["max_size"] = MAX_QUEUE
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    check = subprocess.run([str(BIN / "ivr"), "rules", "check", str(path)], capture_output=True, text=True,
                           timeout=60, env=wh.clean_env())
    if check.returncode != 0:
        raise RuntimeError(f"the rules copy does not check:\n{check.stdout}{check.stderr}")
    return changes


def hotline_env(instance: Path, token: str, db_url: str | None, rules: Path) -> dict:
    env = wh.app_env(instance, token, db_url)
    env["IVR_RULES"] = str(rules)
    return env


def ivr(env: dict, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run([str(BIN / "ivr"), *args], check=False, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ivr {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def start_hotline(env: dict, servers: list) -> wh.Server:
    """`ivr setup`, `ivr serve --workers 2`, then live mode (it takes effect on the very next webhook)."""
    srv = wh.start_app(env, servers)
    ivr(env, "mode", "set", "live", "--reason", "bench", "--override", "a benchmark: no agents, the queue is enough")
    return srv


def sqlite_url(env: dict) -> str:
    return f"sqlite:///{Path(env['IVR_INSTANCE_PATH']) / 'hotline.db'}"


# -- calls: what each one sends ----------------------------------------------------------------------------
@dataclass
class CallSpec:
    """One simulated call: who, when it starts (seconds into the load), think times, how its wait ends."""

    sid: str
    caller: str
    arrival: float
    think: dict[str, float]
    bridged: bool
    positions: tuple[int, int]
    wall0: float = 0.0  # wall-clock time of the load's start, for Timestamp

    def params(self, kind: str) -> dict:
        """Twilio's parameters for one step of this call (see /work/shared/TWILIO.md)."""
        p = {"CallSid": self.sid, "AccountSid": ACCOUNT, "From": self.caller, "To": TO, "Caller": self.caller,
             "Called": TO, "CallStatus": "ringing" if kind == "incoming" else "in-progress",
             "Direction": "inbound", "ApiVersion": "2010-04-01", "FromCountry": "US", "FromState": "NY",
             "FromCity": "NEW YORK", "FromZip": "10001", "ToCountry": "US", "ToState": "CA",
             "ToCity": "SAN FRANCISCO", "ToZip": "94105"}
        queued = sum(self.think.get(k, 0) for k in ("hold:1", "queue-result"))
        if kind.startswith("key:"):
            p.update(Digits=kind[4:], FinishedOnKey="", msg="Gather End")
        elif kind.startswith("hold:"):
            cycle = int(kind[5:])
            waited = self.think.get("hold:0", 0) + (self.think.get("hold:1", 0) if cycle else 0)
            p.update(QueuePosition=str(self.positions[cycle]), QueueSid=QUEUE_SID, QueueTime=str(round(waited)),
                     AvgQueueTime="6", CurrentQueueSize=str(max(self.positions) + 40), MaxQueueSize=str(MAX_QUEUE))
        elif kind == "queue-result":
            p.update(QueueResult="bridged" if self.bridged else "hangup", QueueSid=QUEUE_SID,
                     QueueTime=str(round(queued)))
        elif kind == "status":
            p.update(CallStatus="completed", CallDuration=str(math.ceil(sum(self.think.values()))),
                     CallbackSource="call-progress-events", SequenceNumber="0",
                     Timestamp=email.utils.formatdate(self.wall0 + self.arrival + sum(self.think.values())))
        return p


def arrivals(rate: float, ramp: float, duration: float, rng: random.Random) -> list[float]:
    """Arrival times of a Poisson process whose rate grows linearly to `rate` over `ramp` s, then holds.

    The counts are fixed (rate*ramp/2 in the ramp, rate*duration after it) and the times random given the
    counts, which is a Poisson process conditioned on its count: the offered load is exactly the target.
    """
    ramp_n, hold_n = round(rate * ramp / 2), round(rate * duration)
    times = [ramp * math.sqrt(rng.random()) for _ in range(ramp_n)]  # density growing linearly
    times += [ramp + duration * rng.random() for _ in range(hold_n)]
    return sorted(times)


def plan_calls(rate: float, ramp: float, duration: float, seed: int) -> list[CallSpec]:
    """Every call of the surge (same seed: the same calls, think times and outcomes)."""
    rng = random.Random(seed)
    run = secrets.token_hex(4)  # every CallSid of this run starts with CA<run>: easy to count in the database
    calls, wall0 = [], time.time() + 5  # Timestamp only needs to be plausible: about when the load starts
    for i, t in enumerate(arrivals(rate, ramp, duration, rng)):
        think = {k: rng.uniform(lo, hi) for k, (lo, hi) in THINK.items()}
        pos = rng.randint(1, 400)
        caller = f"+1{rng.randint(2, 9)}{rng.randrange(10**9):09d}"
        calls.append(CallSpec(f"CA{run}{i:08x}{rng.getrandbits(64):016x}", caller,
                              t, think, rng.random() < BRIDGED_SHARE, (pos, max(1, pos - rng.randint(0, 30))), wall0))
    return calls


def raw_request(port: int, path: str, signature: str, body: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: TwilioProxy/1.1\r\n"
            "Connection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


def build_requests(calls: list[CallSpec], template: list[tuple[str, str]], port: int, token: str,
                   path_override: str | None = None) -> list[list[bytes]]:
    """Every request of every call, signed over the full URL (scheme, 127.0.0.1:port, path, query) + params."""
    validator, base = RequestValidator(token), f"http://127.0.0.1:{port}"
    out = []
    for call in calls:
        reqs = []
        for path, kind in template:
            params = call.params(kind)
            path = path_override or path
            reqs.append(raw_request(port, path, validator.compute_signature(base + path, params), urlencode(params)))
        out.append(reqs)
    return out


# -- following a call through its TwiML --------------------------------------------------------------------
class WalkError(Exception):
    pass


def _check_answer(kind: str, status: int, ctype: str, body: bytes) -> ET.Element:
    if status != 200:
        raise WalkError(f"{kind}: HTTP {status}")
    if ctype not in ("text/xml", "application/xml") or not body.startswith(b"<?xml"):
        raise WalkError(f"{kind}: not TwiML ({ctype!r}, {body[:60]!r})")
    doc = ET.fromstring(body)
    if doc.tag != "Response":
        raise WalkError(f"{kind}: root <{doc.tag}>")
    return doc


def walk(fetch, keys=KEYS, hold_cycles=HOLD_CYCLES) -> list[tuple[str, str]]:
    """Follow a call the way Twilio does; fetch(step, path, kind) -> (status, content type, body).

    Gather: the next key (none left: the caller stays silent and the document continues); Redirect; Enqueue:
    the waitUrl `hold_cycles` times (each hold document may hold only the verbs Twilio allows there and must
    run out, so that Twilio requests it again), then the action as the caller leaves the queue; Hangup or the
    end of the document: the call is over and the status callback follows. Returns [(path, kind)].
    """
    steps: list[tuple[str, str]] = []
    keys = list(keys)

    def get(path: str, kind: str) -> ET.Element:
        steps.append((path, kind))
        return _check_answer(kind, *fetch(len(steps) - 1, path, kind))

    def resolve(current: str, link: str | None) -> str:
        if not link:
            raise WalkError(f"a verb without a URL after {current}")
        parts = urlsplit(urljoin("http://h" + current, link))
        return parts.path + (f"?{parts.query}" if parts.query else "")

    path, kind = "/voice/incoming", "incoming"
    while len(steps) < 20:
        doc, nxt = get(path, kind), None
        for verb in doc:
            if verb.tag == "Gather" and keys:
                nxt = resolve(path, verb.get("action") or path), "key:" + keys.pop(0)
            elif verb.tag == "Redirect":
                nxt = resolve(path, (verb.text or "").strip()), "redirect"
            elif verb.tag == "Enqueue":
                wait, action = resolve(path, verb.get("waitUrl")), resolve(path, verb.get("action"))
                for cycle in range(hold_cycles):
                    hold = get(wait, f"hold:{cycle}")
                    verbs = [v.tag for v in hold]
                    if not set(verbs) <= HOLD_ALLOWED or set(verbs) & {"Redirect", "Leave", "Hangup"}:
                        raise WalkError(f"hold document with {verbs}: the hold loop would not continue")
                nxt = action, "queue-result"
            elif verb.tag == "Hangup":
                break
            if nxt:
                break
        if nxt is None:
            break
        path, kind = nxt
    else:
        raise WalkError("the call did not end within 20 requests")
    get("/voice/status", "status")
    return steps


def probe_call(srv: wh.Server, token: str, spec: CallSpec) -> list[tuple[str, str]]:
    """Follow one call over HTTP, signed as Twilio signs; its (path, kind) steps are the surge's template."""
    validator, session = RequestValidator(token), requests.Session()

    def fetch(_step, path, kind):
        params = spec.params(kind)
        resp = session.post(srv.url(path), data=params, timeout=REQUEST_TIMEOUT_S, headers={
            "X-Twilio-Signature": validator.compute_signature(srv.url(path), params)})
        return resp.status_code, resp.headers.get("Content-Type", "").split(";")[0], resp.content

    template = walk(fetch)
    kinds = [k for _, k in template]
    if kinds != EXPECTED_KINDS:
        raise RuntimeError(f"the probe call went {kinds}, not {EXPECTED_KINDS}: was the caller queued?")
    return template


def verify_sampled(calls: list[CallSpec], template, bodies: dict[int, dict]) -> tuple[int, list[str]]:
    """Walk each sampled call again through the answers it got: each URL sent must be where the TwiML led."""
    problems, checked = [], 0
    for idx, answers in bodies.items():
        if len(answers) != len(template) or any(a[0] != 200 for a in answers.values()):
            continue  # a failed call: its errors are counted already
        sent = [p for p, _ in template]

        def fetch(step, path, kind, answers=answers, sent=sent):
            if step >= len(sent) or path != sent[step]:
                raise WalkError(f"step {step}: the TwiML led to {path}, the call sent "
                                f"{sent[step] if step < len(sent) else 'nothing'}")
            return answers[step]

        try:
            walk(fetch)
            checked += 1
        except (WalkError, ET.ParseError) as exc:
            problems.append(f"{calls[idx].sid}: {exc}")
    return checked, problems


# -- the open-loop surge -----------------------------------------------------------------------------------
class _Flight:
    __slots__ = ("call", "step", "due", "started", "out", "got", "done", "sock")

    def __init__(self, call: int, step: int, due: float, started: float, out: bytes, sock: socket.socket):
        self.call, self.step, self.due, self.started, self.out = call, step, due, started, out
        self.got, self.done, self.sock = b"", False, sock


@dataclass
class Sent:
    """One request of the surge: when it was due and sent (s into the load), latency, and what came back."""

    call: int
    step: int
    due: float
    sent: float
    latency_ms: float
    status: int  # 0: no answer (connect/read failure or timeout)
    ok: bool  # 200, text/xml, XML prolog, and the verb the step must hold
    why: str = ""


def _answer(raw: bytes) -> tuple[int, str, bytes]:
    """(status, content type, body) of a raw HTTP/1.1 answer read to the server's close."""
    if not raw.startswith(b"HTTP/1."):
        return 0, "", b""
    head, _, body = raw.partition(b"\r\n\r\n")
    ctype = ""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            ctype = value.decode("latin-1").split(";")[0].strip()
    try:
        status = int(head[9:12])
    except ValueError:
        status = 0
    return status, ctype, body


def _judge(kind: str, status: int, ctype: str, body: bytes, bare: bool) -> str:
    if status != 200:
        return f"http {status}" if status else "no answer"
    if ctype not in ("text/xml", "application/xml") or not body.startswith(b"<?xml"):
        return "not xml"
    if (b"<Response" if bare else MARKERS[kind]) not in body:
        return "unexpected twiml"
    return ""


@dataclass
class Surge:
    calls: list[CallSpec]
    template: list[tuple[str, str]]
    results: list[Sent]
    ramp: float
    duration: float
    wall_s: float
    gen_cpu_s: float
    worker_cpu_s: float
    pg_cpu_s: float
    box_busy: float  # share of all CPUs busy during the load (everything on the machine)
    bodies: dict[int, dict] = field(default_factory=dict)
    aborted: bool = False
    rate_target: float = 0.0
    steady: dict = field(default_factory=dict)  # CPU shares and req/s while the load was steady

    # derived
    def window(self, t: float) -> bool:
        return self.ramp <= t < self.ramp + self.duration

    @property
    def kinds(self) -> list[str]:
        return [k for _, k in self.template]

    def call_states(self) -> dict[int, list[Sent]]:
        per = defaultdict(list)
        for r in self.results:
            per[r.call].append(r)
        return per

    def summary(self) -> dict:
        per = self.call_states()
        nsteps = len(self.template)
        complete = {c for c, rs in per.items() if len(rs) == nsteps and all(r.ok for r in rs)}
        in_window = [i for i, c in enumerate(self.calls) if self.window(c.arrival)]
        started_w = sum(1 for r in self.results if r.step == 0 and self.window(r.sent))
        reqs_w = [r for r in self.results if self.window(r.sent)]
        lats = sorted(r.latency_ms for r in self.results)  # failures too, at the time they failed
        lags = sorted(max(0.0, (r.sent - r.due) * 1000) for r in self.results)
        errors = Counter(r.why for r in self.results if not r.ok)
        return {
            "offered_cps": len(in_window) / self.duration,
            "started_cps": started_w / self.duration,
            "completed_cps": sum(1 for i in in_window if i in complete) / self.duration,
            "window_calls": len(in_window),
            "window_complete": sum(1 for i in in_window if i in complete),
            "calls": len(self.calls), "complete": len(complete),
            "rps": len(reqs_w) / self.duration,
            "ok_rps": sum(1 for r in reqs_w if r.ok) / self.duration,
            "requests": len(self.results), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "p50": _pct(lats, 50), "p95": _pct(lats, 95), "p99": _pct(lats, 99), "max": lats[-1] if lats else math.nan,
            "lag_p50": _pct(lags, 50), "lag_p99": _pct(lags, 99), "lag_max": lags[-1] if lags else math.nan,
            "gen_cpu_pct": 100 * self.gen_cpu_s / self.wall_s,
            "gen_us_req": 1e6 * self.gen_cpu_s / max(1, len(self.results)),
            "worker_cpu_pct": 100 * self.worker_cpu_s / self.wall_s,
            "worker_ms_req": 1000 * self.worker_cpu_s / max(1, sum(1 for r in self.results if r.status)),
            "pg_cpu_pct": 100 * self.pg_cpu_s / self.wall_s, "box_busy_pct": 100 * self.box_busy,
            "other_cpu_pct": max(0.0, 100 * self.box_busy * (os.cpu_count() or 1)
                                 - 100 * (self.gen_cpu_s + self.worker_cpu_s + self.pg_cpu_s) / self.wall_s),
            "wall_s": self.wall_s,
        }

    def per_route(self) -> dict[str, dict]:
        routes = defaultdict(list)
        for r in self.results:
            routes[self.template[r.step][0].split("?")[0]].append(r)
        out = {}
        for route, rs in routes.items():
            lats = sorted(r.latency_ms for r in rs)
            out[route] = {"n": len(rs), "errors": sum(1 for r in rs if not r.ok), "p50": _pct(lats, 50),
                          "p95": _pct(lats, 95), "p99": _pct(lats, 99), "max": lats[-1] if lats else math.nan}
        return out

    def buckets(self) -> list[tuple[int, int, int, int, float]]:
        """Per BUCKET_S seconds: calls started, calls completed (their status answered), requests, p99."""
        last = len(self.template) - 1
        per = self.call_states()
        complete = {c for c, rs in per.items() if len(rs) == len(self.template) and all(r.ok for r in rs)}
        b = defaultdict(lambda: [0, 0, 0, []])
        for r in self.results:
            k = int(r.sent // BUCKET_S)
            b[k][2] += 1
            b[k][3].append(r.latency_ms)
            if r.step == 0:
                b[k][0] += 1
            if r.step == last and r.call in complete:
                b[int((r.sent + r.latency_ms / 1000) // BUCKET_S)][1] += 1
        return [(k * BUCKET_S, v[0], v[1], v[2], _pct(sorted(v[3]), 99)) for k, v in sorted(b.items())]


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.0f}ms"


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else math.nan


def _pg_cpu() -> dict[int, float]:
    """CPU seconds used so far by each postgres process (this benchmark's backends and anyone else's)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        name, rest = raw[raw.find("(") + 1:raw.rfind(")")], raw.rsplit(")", 1)[1].split()
        if name.startswith("postgres"):
            out[int(stat.parent.name)] = (int(rest[11]) + int(rest[12])) / CLK_TCK
    return out


def _pg_cpu_since(before: dict[int, float]) -> float:
    """postgres CPU seconds since `before` (processes that exited meanwhile are not counted)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in _pg_cpu().items())


def _cpu_times() -> tuple[float, float, float]:
    """(busy, total, steal) jiffies of all CPUs from /proc/stat (steal: time the hypervisor took)."""
    fields = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]))
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields), (fields[7] if len(fields) > 7 else 0)


def _snapshot(srv: wh.Server) -> dict:
    return {"t": time.perf_counter(), "gen": time.process_time(), "workers": srv.workers_cpu_s(), "pg": _pg_cpu(),
            "box": _cpu_times()}


def _steady(a: dict, b: dict, results: list, start: float) -> dict:
    """CPU shares (in % of one CPU) and request rate between two snapshots taken while the load was steady."""
    dt, ncpu = b["t"] - a["t"], os.cpu_count() or 1
    jiffies = max(1, b["box"][1] - a["box"][1])
    box = (b["box"][0] - a["box"][0]) / jiffies
    out = {"seconds": dt, "from": a["t"] - start, "box_busy_pct": 100 * box,
           "steal_pct": 100 * (b["box"][2] - a["box"][2]) / jiffies,
           "worker_cpu_pct": 100 * (b["workers"] - a["workers"]) / dt, "gen_cpu_pct": 100 * (b["gen"] - a["gen"]) / dt,
           "pg_cpu_pct": 100 * sum(cpu - a["pg"].get(pid, 0.0) for pid, cpu in b["pg"].items()) / dt,
           "rps": sum(1 for r in results if a["t"] - start <= r.sent < b["t"] - start) / dt}
    out["other_cpu_pct"] = max(0.0, 100 * box * ncpu - out["worker_cpu_pct"] - out["gen_cpu_pct"] - out["pg_cpu_pct"])
    return out


def run_surge(srv: wh.Server, calls: list[CallSpec], template, raws: list[list[bytes]], ramp: float,
              duration: float, sample_every: int, bare: bool = False) -> Surge:
    """Replay every call open loop: each call starts at its arrival time, each next step a think time after
    the previous answer. A failed step skips the call to its status callback (Twilio's fallback path)."""
    kinds = [k for _, k in template]
    last = len(template) - 1
    sel = selectors.DefaultSelector()
    heap: list[tuple[float, int, int]] = [(c.arrival, i, 0) for i, c in enumerate(calls)]
    heapq.heapify(heap)
    inflight: deque[_Flight] = deque()
    results: list[Sent] = []
    bodies: dict[int, dict] = {}
    port = srv.port
    gen0, wk0, pg0, box0 = time.process_time(), srv.workers_cpu_s(), _pg_cpu(), _cpu_times()
    start = time.perf_counter()
    hard_end = start + ramp + duration + len(template) * (REQUEST_TIMEOUT_S + 6) + 30
    next_timeout_scan, aborted = 0.0, False
    # The steady state: calls last about 13 s, so from 15 s after the ramp (or half the hold) to its end.
    marks, snaps = [ramp + min(15.0, duration / 2), ramp + duration], []

    def finish(fl: _Flight, status: int, ctype: str, body: bytes, now: float) -> None:
        fl.done = True
        kind = kinds[fl.step]
        why = _judge(kind, status, ctype, body, bare)
        t = now - start
        results.append(Sent(fl.call, fl.step, fl.due, fl.started - start, (now - fl.started) * 1000, status,
                            not why, why))
        if fl.call % sample_every == 0 and not bare:
            bodies.setdefault(fl.call, {})[fl.step] = (status, ctype, body)
        if fl.step < last:
            nxt = fl.step + 1 if not why else last
            think = calls[fl.call].think.get(kinds[nxt], 0.2) if not why else 0.2
            heapq.heappush(heap, (t + think, fl.call, nxt))

    while heap or inflight:
        now = time.perf_counter()
        if now > hard_end:
            aborted = True
            break
        t = now - start
        if marks and t >= marks[0]:
            marks.pop(0)
            snaps.append(_snapshot(srv))
        while heap and heap[0][0] <= t:
            due, ci, step = heapq.heappop(heap)
            sock = socket.socket()
            sock.setblocking(False)
            fl = _Flight(ci, step, due, now, raws[ci][step], sock)
            err = sock.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                finish(fl, 0, "", b"", now)
                continue
            fl.out = wh.send_with_connect(sock, fl.out)
            sel.register(sock, selectors.EVENT_WRITE if fl.out else selectors.EVENT_READ, fl)
            inflight.append(fl)
        wait = 0.05 if not heap else max(0.0, min(0.05, heap[0][0] - (time.perf_counter() - start)))
        for key, events in sel.select(wait):
            fl, sock = key.data, key.fileobj
            status = None
            try:
                if events & selectors.EVENT_WRITE:
                    fl.out = fl.out[sock.send(fl.out):]
                    if not fl.out:
                        sel.modify(sock, selectors.EVENT_READ, fl)
                else:
                    chunk = sock.recv(65536)
                    if chunk:
                        fl.got += chunk
                    else:
                        status = _answer(fl.got)
            except OSError:
                status = (0, "", b"")
            if status is not None:
                sel.unregister(sock)
                sock.close()
                finish(fl, *status, time.perf_counter())
        now = time.perf_counter()
        if now >= next_timeout_scan:
            next_timeout_scan = now + 0.1
            while inflight and (inflight[0].done or now - inflight[0].started > REQUEST_TIMEOUT_S):
                fl = inflight.popleft()
                if not fl.done:
                    sel.unregister(fl.sock)
                    fl.sock.close()
                    finish(fl, 0, "", b"", now)
    wall = time.perf_counter() - start
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    box1 = _cpu_times()
    box_busy = (box1[0] - box0[0]) / max(1, box1[1] - box0[1])
    return Surge(calls, template, results, ramp, duration, wall, time.process_time() - gen0,
                 srv.workers_cpu_s() - wk0, _pg_cpu_since(pg0), box_busy, bodies, aborted,
                 rate_target=len([c for c in calls if ramp <= c.arrival]) / duration,
                 steady=_steady(snaps[0], snaps[1], results, start) if len(snaps) == 2 else {})


# -- the server's own view: /metrics ----------------------------------------------------------------------
_METRIC = re.compile(r'^ivr_webhook_seconds_(count|sum|bucket)\{([^}]*)\} ([0-9.eE+-]+)$')


def scrape(srv: wh.Server) -> dict[str, dict[str, float]]:
    """Per route: webhooks answered, seconds spent in the handler, and how many within 50 ms (the app's
    histogram, summed over its workers by prometheus-client's multiprocess mode)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0.0, "sum": 0.0, "le50": 0.0})
    for line in requests.get(srv.staff_url("/metrics"), timeout=30).text.splitlines():
        m = _METRIC.match(line)
        if not m:
            continue
        kind, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))
        route = labels.get("route", "?")
        if kind == "bucket":
            if labels.get("le") == "0.05":
                out[route]["le50"] += value
        else:
            out[route][kind] += value
    return dict(out)


@dataclass
class ServerSide:
    routes: dict[str, dict[str, float]]  # route -> count, sum (s), le50 during the surge
    cpu_s: float  # worker CPU from just before the surge until the server had answered its backlog
    wall_s: float

    @property
    def handled(self) -> float:
        return sum(r["count"] for r in self.routes.values())

    @property
    def mean_ms(self) -> float:
        return 1000 * sum(r["sum"] for r in self.routes.values()) / self.handled if self.handled else math.nan

    @property
    def within_50(self) -> float:
        return sum(r["le50"] for r in self.routes.values()) / self.handled if self.handled else math.nan

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.handled if self.handled else math.nan

    @property
    def busy(self) -> float:
        """Share of the workers' time spent inside a webhook handler (1.0: never waiting for a request)."""
        return sum(r["sum"] for r in self.routes.values()) / (wh.WORKERS * self.wall_s)

    def line(self) -> str:
        per = ", ".join(f"{route} {1000 * r['sum'] / r['count']:.1f}" for route, r in sorted(self.routes.items())
                        if r["count"])
        return (f"{self.handled:.0f} webhooks handled; time inside the view (signature check to TwiML, wall): mean "
                f"{self.mean_ms:.1f} ms ({per}), {self.within_50:.1%} within 50 ms; worker CPU {self.cpu_ms:.2f} ms "
                f"per handled request (the master's children: gunicorn workers, and `ivr background` writing "
                "the spool)")


def server_side(srv: wh.Server, before: dict, cpu0: float, t0: float, timeout: float = 60.0) -> ServerSide:
    """Wait until the server has answered its backlog (the handled count stops moving), then diff /metrics."""
    deadline, last = time.monotonic() + timeout, -1.0
    while True:
        after = scrape(srv)
        count = sum(r["count"] for r in after.values())
        if count == last or time.monotonic() > deadline:
            break
        last = count
        time.sleep(1.0)
    routes = {}
    for route, r in after.items():
        b = before.get(route, {"count": 0.0, "sum": 0.0, "le50": 0.0})
        d = {k: r[k] - b[k] for k in r}
        if d["count"]:
            routes[route] = d
    return ServerSide(routes, srv.workers_cpu_s() - cpu0, time.monotonic() - t0)


# -- the records -------------------------------------------------------------------------------------------
def db_rows(db_url: str, sql: str, args: tuple = ()) -> list[tuple]:
    """Run one read-only query (SQLite file or PostgreSQL); `?` placeholders."""
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(f"file:{db_url[len('sqlite:///'):]}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql, args).fetchall()
    import psycopg

    with psycopg.connect(db_url, connect_timeout=10) as conn:
        return conn.execute(sql.replace("?", "%s"), args).fetchall()


def _event_key(step: str) -> str:
    """A call_events.step without its event index: '<route>#<s>.<i>' (older) or '<route>?<query>#<i>'."""
    return step.rsplit(".", 1)[0] if re.search(r"#\d+\.\d+$", step) else step.rsplit("#", 1)[0]


def _request_keys(path: str) -> tuple[str, ...]:
    """The keys the hotline may file a request's events under (both formats it has used)."""
    parts = urlsplit(path)
    return (path.removeprefix("/voice/"),
            f"{parts.path.rsplit('/', 1)[-1]}#{parse_qs(parts.query).get('s', ['0'])[0]}")


def probe_events(db_url: str, sid: str, timeout: float = 10.0) -> dict[str, int]:
    """Events the probe call left, per step prefix, once its status has landed (the writer is asynchronous)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        done = db_rows(db_url, "SELECT count(*) FROM calls WHERE call_sid = ? AND status = 'completed'", (sid,))
        steps = sorted(r[0] for r in db_rows(db_url, "SELECT step FROM call_events WHERE call_sid = ?", (sid,)))
        if done[0][0] and steps == last:
            return Counter(_event_key(s) for s in steps)
        last = steps
        time.sleep(0.5)
    raise RuntimeError(f"the probe call's records did not land within {timeout:.0f} s")


RECORD_KEYS = ("calls rows", "calls completed", "call_events", "queue_entries", "queue bridged", "queue hangup",
               "queue waiting")


@dataclass
class Records:
    must: dict[str, int]  # what the answered requests (200) must have left
    may: dict[str, int]  # the most the sent requests can have left (a request we gave up on may still be served)
    running: dict[str, int]  # a few seconds after the load, server still up
    final: dict[str, int]  # after SIGTERM
    lost: dict[str, int]  # per kind: records an answered request should have left and did not

    def expect(self, key: str) -> str:
        """The count the answered requests imply; a range when requests we gave up on may have been served."""
        lo, hi = sorted((self.must[key], self.may[key]))
        return str(lo) if lo == hi else f"{lo}-{hi}"

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())


def _expect(s: Surge, per_prefix: dict[str, int], answered_only: bool) -> tuple[dict[str, int], dict[str, dict]]:
    """Counts, and per CallSid what must be there: (completed?, events per prefix, queue entry status)."""
    keys = [next((k for k in _request_keys(p) if k in per_prefix), None) for p, _ in s.template]
    kinds = s.kinds
    i_status, i_enqueue, i_result = kinds.index("status"), kinds.index("key:0"), kinds.index("queue-result")
    exp, per_call = Counter({k: 0 for k in RECORD_KEYS}), {}
    for ci, rs in s.call_states().items():
        steps = {r.step for r in rs if r.status == 200 or not answered_only}
        queued = any(r.step == i_enqueue and (r.ok or not answered_only) for r in rs)
        call = s.calls[ci]
        want = {"completed": i_status in steps, "events": Counter(), "queue": None}
        for key in {keys[i] for i in steps} - {None}:
            want["events"][key] = per_prefix[key]
        if queued:
            want["queue"] = ("bridged" if call.bridged else "hangup") if i_result in steps else "waiting"
        exp["calls rows"] += bool(steps)
        exp["calls completed"] += want["completed"]
        exp["call_events"] += sum(want["events"].values())
        if want["queue"]:
            exp["queue_entries"] += 1
            exp[f"queue {want['queue']}"] += 1
        per_call[call.sid] = want
    return dict(exp), per_call


def count_records(db_url: str, run_prefix: str) -> dict[str, int]:
    like = run_prefix + "%"
    got = {
        "calls rows": db_rows(db_url, "SELECT count(*) FROM calls WHERE call_sid LIKE ?", (like,))[0][0],
        "calls completed": db_rows(db_url, "SELECT count(*) FROM calls WHERE call_sid LIKE ? AND status = 'completed'",
                                   (like,))[0][0],
        "call_events": db_rows(db_url, "SELECT count(*) FROM call_events WHERE call_sid LIKE ?", (like,))[0][0],
        "queue_entries": db_rows(db_url, "SELECT count(*) FROM queue_entries WHERE call_sid LIKE ?", (like,))[0][0],
    }
    for status, n in db_rows(db_url, "SELECT status, count(*) FROM queue_entries WHERE call_sid LIKE ? "
                                     "GROUP BY status", (like,)):
        got[f"queue {status}"] = n
    return got


def lost_records(db_url: str, run_prefix: str, per_call: dict[str, dict]) -> dict[str, int]:
    """Call by call: a completed status, each answered step's events, the queue entry and how it ended."""
    like = run_prefix + "%"
    completed = {r[0] for r in db_rows(db_url, "SELECT call_sid FROM calls WHERE call_sid LIKE ? AND "
                                               "status = 'completed'", (like,))}
    events = Counter()
    for sid, step in db_rows(db_url, "SELECT call_sid, step FROM call_events WHERE call_sid LIKE ?", (like,)):
        events[(sid, _event_key(step))] += 1
    queue = dict(db_rows(db_url, "SELECT call_sid, status FROM queue_entries WHERE call_sid LIKE ?", (like,)))
    lost = Counter({"calls completed": 0, "call_events": 0, "queue_entries": 0, "queue ended": 0})
    for sid, want in per_call.items():
        lost["calls completed"] += want["completed"] and sid not in completed
        lost["call_events"] += sum(max(0, n - events[(sid, p)]) for p, n in want["events"].items())
        if want["queue"]:
            if sid not in queue:
                lost["queue_entries"] += 1
            elif want["queue"] != "waiting" and queue[sid] != want["queue"]:
                lost["queue ended"] += 1  # still waiting, or another ending: the queue-result was lost
    return dict(lost)


# -- 1,000,000 calls already in the database ---------------------------------------------------------------
_EVENTS = [("incoming#0", "call_started", None, "live"), ("menu?l=en&a=0&s=1#0", "menu_choice", "1", "details"),
           ("menu?l=en&a=0&s=2#0", "menu_choice", "0", "agent")][:PREFILL_EVENTS_PER_CALL]


def prefill_sqlite(path: Path, n: int) -> None:
    """n calls and 3 events each through the migrated schema: recursive CTEs, one transaction, big cache."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=MEMORY")  # the app puts WAL back on its first connection
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")
        conn.execute("BEGIN")
        seq = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
        conn.execute(seq + """INSERT INTO calls (call_sid, started_at, caller_hash, caller_masked, language, mode,
            incident_id, outcome, outcome_step, status, status_sequence, duration_s, ended_at)
            SELECT printf('CAf%031x', n), datetime('now', printf('-%d seconds', n)),
                   printf('%016x%016x%016x%016x', n * 2654435761 % 4294967311, n, n * 40503 % 65521, n * 7),
                   '***' || printf('%04d', n % 10000), 'en', 'live', 1, 'agent', 2, 'completed', 300000, 60,
                   datetime('now', printf('-%d seconds', n - 60)) FROM s""", (n,))
        for step, kind, digits, detail in _EVENTS:
            conn.execute(seq + """INSERT INTO call_events (call_sid, step, at, kind, digits, detail)
                SELECT printf('CAf%031x', n), ?, datetime('now', printf('-%d seconds', n)), ?, ?, ? FROM s""",
                         (n, step, kind, digits, detail))
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def prefill_postgresql(db_url: str, n: int) -> None:
    """n calls and 3 events each: generate_series, then VACUUM ANALYZE (as autovacuum would, given time)."""
    values = ", ".join(f"('{s}', '{k}', {('NULL' if d is None else repr(d))}, '{t}')" for s, k, d, t in _EVENTS)
    sql = f"""
    INSERT INTO calls (call_sid, started_at, caller_hash, caller_masked, language, mode, incident_id, outcome,
                       outcome_step, status, status_sequence, duration_s, ended_at)
    SELECT 'CAf' || lpad(to_hex(n), 31, '0'), now() - n * interval '1 second', md5(n::text) || md5((-n)::text),
           '***' || lpad((n % 10000)::text, 4, '0'), 'en', 'live', 1, 'agent', 2, 'completed', 300000, 60,
           now() - (n - 60) * interval '1 second' FROM generate_series(1, {int(n)}) n;
    INSERT INTO call_events (call_sid, step, at, kind, digits, detail)
    SELECT 'CAf' || lpad(to_hex(n), 31, '0'), e.step, now() - n * interval '1 second', e.kind, e.digits, e.detail
    FROM generate_series(1, {int(n)}) n CROSS JOIN (VALUES {values}) AS e(step, kind, digits, detail);
    """
    subprocess.run(["psql", db_url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True,
                   text=True, timeout=900)
    subprocess.run(["psql", db_url, "-qc", "VACUUM ANALYZE calls", "-c", "VACUUM ANALYZE call_events"], check=True,
                   capture_output=True, text=True, timeout=600)


@dataclass
class PrefillResult:
    n_calls: int
    rows_calls: int
    rows_events: int
    fill_s: float
    rate: float
    seconds: float
    sides: dict[str, dict]  # "empty"/"full" -> n, errors, p50, p95, p99, cpu_ms, lag_p99

    def ratio(self, key: str) -> float:
        return self.sides["full"][key] / self.sides["empty"][key] if self.sides["empty"][key] else math.nan


def prefill_test(kind: str, new_db, work: Path, token: str, rules: Path, servers: list, n_calls: int,
                 rate: float, seconds: float, chunks: int = 4) -> PrefillResult:
    """/voice/incoming on an empty and on a prefilled database, both up, alternately (ABBA) in short chunks."""
    envs = {side: hotline_env(work / f"instance-{kind}-{side}", token, new_db(), rules) for side in ("empty", "full")}
    full_env = envs["full"]
    ivr(full_env, "setup")  # as start_app runs it: the same announcement (and audio) as the empty side
    full_url = full_env.get("DATABASE_URL") or sqlite_url(full_env)
    t0 = time.monotonic()
    if kind == "sqlite":
        prefill_sqlite(Path(full_env["IVR_INSTANCE_PATH"]) / "hotline.db", n_calls)
    else:
        prefill_postgresql(full_url, n_calls)
    fill_s = time.monotonic() - t0
    print(f"  prefilled {n_calls:,} calls and {n_calls * PREFILL_EVENTS_PER_CALL:,} call_events in {fill_s:.0f} s")
    srvs = {side: start_hotline(env, servers) for side, env in envs.items()}
    acc = {side: {"lat": [], "errors": 0, "n": 0, "cpu": 0.0, "lags": []} for side in srvs}
    chunk_s = seconds / chunks
    order = [("empty", "full"), ("full", "empty")] * ((chunks + 1) // 2)
    for pair in order[:chunks]:
        for side in pair:
            srv = srvs[side]
            head = (f"POST {wh.PATH} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n")
            raws = [(head + f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
                    for sig, body in wh.signed_requests(srv.url(wh.PATH), token, int(rate * chunk_s * 1.5) + 50)]
            cpu0 = srv.workers_cpu_s()
            results, lags = wh._open_loop(srv.port, raws, rate, chunk_s, timeout=REQUEST_TIMEOUT_S)
            a = acc[side]
            a["cpu"] += srv.workers_cpu_s() - cpu0
            a["lat"] += [ms for ms, st in results if st]
            a["errors"] += sum(1 for _, st in results if st != 200)
            a["n"] += len(results)
            a["lags"] += lags
    sides = {}
    for side, a in acc.items():
        lat, lags = sorted(a["lat"]), sorted(a["lags"])
        sides[side] = {"n": a["n"], "errors": a["errors"], "p50": _pct(lat, 50), "p95": _pct(lat, 95),
                       "p99": _pct(lat, 99), "cpu_ms": 1000 * a["cpu"] / max(1, len(lat)), "lag_p99": _pct(lags, 99)}
    for srv in srvs.values():
        wh.stop(srv, servers)
    rows_calls = db_rows(full_url, "SELECT count(*) FROM calls")[0][0]
    rows_events = db_rows(full_url, "SELECT count(*) FROM call_events")[0][0]
    return PrefillResult(n_calls, rows_calls, rows_events, fill_s, rate, seconds, sides)


# -- one database ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    db: str
    surge: Surge
    summary: dict
    routes: dict
    records: Records
    sampled: int
    sample_problems: list[str]
    prefill: PrefillResult | None
    sign_s: float
    command: str
    server: ServerSide

    def targets(self, rate: float, duration: float, bare: Surge | None) -> list[tuple[str, str, bool]]:
        s, full_size = self.summary, rate >= 100 and duration >= 60
        rows = [
            (f"{rate:g} complete calls/s sustained for {duration:g} s"
             + ("" if full_size else " (smaller than the issue's 100/s for 60 s: cannot meet it)"),
             f"{s['completed_cps']:.1f} calls/s completed ({s['window_complete']} of {s['window_calls']} calls "
             f"started in the window)", full_size and s["window_complete"] == s["window_calls"]
             and s["completed_cps"] >= rate * 0.999),
            ("0 errors", f"{s['errors']} of {s['requests']} requests"
             + (f" ({', '.join(f'{k}: {v}' for k, v in s['error_kinds'].items())})" if s["errors"] else ""),
             s["errors"] == 0 and not self.sample_problems),
            ("0 lost records", f"{self.records.lost_total} lost, checked call by call after SIGTERM "
             f"({', '.join(f'{k} {v}' for k, v in self.records.lost.items())})", self.records.lost_total == 0),
            (f"webhook p99 < {TARGET_P99_MS:.0f} ms", f"{s['p99']:.1f} ms", s["p99"] < TARGET_P99_MS),
        ]
        if self.prefill:
            r = self.prefill.ratio("p50")
            rows.append((f"/voice/incoming p50 with {self.prefill.n_calls:,} calls at most "
                         f"{TARGET_PREFILL_RATIO - 1:.0%} above an empty database",
                         f"{r:.2f}x (p99 {self.prefill.ratio('p99'):.2f}x, CPU/req {self.prefill.ratio('cpu_ms'):.2f}x)"
                         + ("" if self.prefill.n_calls >= 1_000_000 else "; fewer than 1,000,000 calls"),
                         r <= TARGET_PREFILL_RATIO and self.prefill.n_calls >= 1_000_000))
        return rows


def bench_database(kind: str, new_db, work: Path, args, servers: list, state: dict) -> Outcome:
    token = "bench-" + secrets.token_hex(16)
    rules = work / "rules.yaml"
    env = hotline_env(work / f"instance-{kind}", token, new_db(), rules)
    db_url = env.get("DATABASE_URL") or sqlite_url(env)
    app = start_hotline(env, servers)
    probe = CallSpec("CA" + secrets.token_hex(16), "+15555550123", 0.0,
                     {k: (lo + hi) / 2 for k, (lo, hi) in THINK.items()}, True, (3, 1), time.time())
    template = probe_call(app, token, probe)
    per_prefix = probe_events(db_url, probe.sid)
    print(f"  probe call: {' -> '.join(p for p, _ in template)}")
    print(f"  events per call (from the probe): {sum(per_prefix.values())} ({dict(per_prefix)})")

    calls = plan_calls(args.rate, args.ramp, args.duration, args.seed)
    t0 = time.perf_counter()
    raws = build_requests(calls, template, app.port, token)
    sign_s = time.perf_counter() - t0
    print(f"  {len(calls)} calls, {len(calls) * len(template)} requests built and signed in {sign_s:.1f} s")
    metrics0, cpu0, t0 = scrape(app), app.workers_cpu_s(), time.monotonic()
    surge = run_surge(app, calls, template, raws, args.ramp, args.duration, args.sample_every)
    del raws
    summary, routes = surge.summary(), surge.per_route()
    print_surge(kind, surge, summary, routes)
    server = server_side(app, metrics0, cpu0, t0)
    print(f"  server side (/metrics): {server.line()}")
    sampled, problems = verify_sampled(calls, template, surge.bodies)
    print(f"  sampled calls walked again through their TwiML: {sampled} consistent"
          + (f", {len(problems)} not: {problems[:3]}" if problems else ""))

    must, per_call = _expect(surge, per_prefix, answered_only=True)
    may, _ = _expect(surge, per_prefix, answered_only=False)
    time.sleep(3)
    run_prefix = calls[0].sid[:10]
    running = count_records(db_url, run_prefix)
    command = app.cmdline()
    wh.stop(app, servers)  # SIGTERM: the workers exit, then `ivr background` writes what they spooled
    records = Records(must, may, running, count_records(db_url, run_prefix),
                      lost_records(db_url, run_prefix, per_call))
    print_records(records)

    if "bare" not in state:  # once per run, the same schedule of requests, with the app stopped
        bare = wh.start_bare(work / "bare.log", servers)
        bare_raws = build_requests(calls, template, bare.port, token, path_override=wh.PATH)
        state["bare"] = run_surge(bare, calls, template, bare_raws, args.ramp, args.duration, args.sample_every,
                                  bare=True)
        state["bare_command"] = bare.cmdline()
        wh.stop(bare, servers)
        del bare_raws
        b = state["bare"].summary()
        print(f"  bare Flask, same schedule: {b['rps']:.0f} req/s  p50 {b['p50']:.2f}  p99 {b['p99']:.2f} ms  "
              f"errors {b['errors']}  worker CPU {b['worker_ms_req']:.2f} ms/req  (lag p99 {b['lag_p99']:.1f} ms)")

    prefill = None
    if not args.no_prefill:
        prefill = prefill_test(kind, new_db, work, token, rules, servers, args.prefill_calls, args.prefill_rate,
                               args.prefill_seconds)
        for side, v in prefill.sides.items():
            print(f"  /voice/incoming, {side:<5} database: p50 {v['p50']:.2f}  p95 {v['p95']:.2f}  "
                  f"p99 {v['p99']:.2f} ms"
                  f"  errors {v['errors']}  worker CPU {v['cpu_ms']:.2f} ms/req  ({v['n']} requests)")
        print(f"  full/empty: p50 {prefill.ratio('p50'):.2f}x  p99 {prefill.ratio('p99'):.2f}x  "
              f"CPU/req {prefill.ratio('cpu_ms'):.2f}x")
    return Outcome(kind, surge, summary, routes, records, sampled, problems, prefill, sign_s, command, server)


# -- printing and the report -------------------------------------------------------------------------------
def print_surge(kind: str, surge: Surge, s: dict, routes: dict) -> None:
    print(f"  calls/s: offered {s['offered_cps']:.1f}, started {s['started_cps']:.1f}, completed "
          f"{s['completed_cps']:.1f} (window {surge.ramp:g}-{surge.ramp + surge.duration:g} s); all calls: "
          f"{s['complete']} of {s['calls']} complete")
    print(f"  requests/s in the window: {s['rps']:.0f} sent, {s['ok_rps']:.0f} answered well; "
          f"latency p50 {s['p50']:.2f}  p95 {s['p95']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.0f} ms; "
          f"errors {s['errors']} {s['error_kinds'] or ''}")
    for route, r in sorted(routes.items()):
        print(f"    {route:<20} {r['n']:>7} req  p50 {r['p50']:7.2f}  p95 {r['p95']:7.2f}  p99 {r['p99']:8.2f} ms"
              f"  errors {r['errors']}")
    print(f"  generator: lag p50 {s['lag_p50']:.1f} / p99 {s['lag_p99']:.1f} / max {s['lag_max']:.0f} ms, "
          f"CPU {s['gen_cpu_pct']:.0f}% of a core ({s['gen_us_req']:.0f} µs/request); gunicorn workers "
          f"{s['worker_cpu_pct']:.0f}% of a core; postgres processes "
          f"{s['pg_cpu_pct']:.0f}%, everything else {s['other_cpu_pct']:.0f}%; machine busy {s['box_busy_pct']:.0f}% "
          f"of {os.cpu_count()} CPUs"
          + ("; ABORTED at the time bound" if surge.aborted else ""))
    if surge.steady:
        print(f"  steady state {_shares(surge.steady)}")
    print("  per 10 s: " + "; ".join(f"{t}s {st}/{co}/{n}/{_ms(p99)}" for t, st, co, n, p99 in surge.buckets())
          + "  (calls started / completed / requests / p99)")


def print_records(r: Records) -> None:
    for k in RECORD_KEYS:
        print(f"    {k:<16} expected {r.expect(k):>13}  written {r.running.get(k, 0):>7} (server up)  "
              f"{r.final.get(k, 0):>7} (after SIGTERM)")
    extra = {k: v for k, v in r.final.items() if k not in RECORD_KEYS}
    if extra:
        print(f"    also: {extra}")
    print(f"    lost, call by call: {r.lost_total} ({', '.join(f'{k} {v}' for k, v in r.lost.items())})")


def _shares(st: dict) -> str:
    return (f"{st['from']:.0f}-{st['from'] + st['seconds']:.0f} s, {st['rps']:.0f} req/s: machine "
            f"{st['box_busy_pct']:.0f}% busy (steal {st['steal_pct']:.0f}%); in % of one CPU: gunicorn workers "
            f"{st['worker_cpu_pct']:.0f}, postgres {st['pg_cpu_pct']:.0f}, generator {st['gen_cpu_pct']:.0f}, other "
            f"processes {st['other_cpu_pct']:.0f}")


def bottleneck(o: Outcome) -> str:
    """Where the time went: the generator (if it started requests late), else the server's CPU, and whose."""
    s, v, st, ncpu = o.summary, o.server, o.surge.steady, os.cpu_count() or 1
    if s["lag_p99"] > 50:
        return f"the load generator (it started requests {s['lag_p99']:.0f} ms late at p99)"
    if s["errors"] == 0 and s["p99"] < TARGET_P99_MS:
        return "none, the server kept up" + (f" (steady state {_shares(st)})" if st else "")
    if not st:
        return f"unknown (no steady-state sample); worker CPU {v.cpu_ms:.1f} ms per request"
    used = st["worker_cpu_pct"] + st["pg_cpu_pct"] + st["gen_cpu_pct"] + st["other_cpu_pct"]
    return (f"the server's CPU: {v.cpu_ms:.1f} ms of worker CPU per request x {st['rps']:.0f} req/s; in the steady "
            f"state the machine was {used / ncpu:.0f}% busy"
            + (" (near saturation: requests queue behind bursts)" if used > 70 * ncpu else "")
            + (", a large share taken by other processes" if st["other_cpu_pct"] > 25 else "")
            + f" ({_shares(st)}; generator lag p99 {s['lag_p99']:.1f} ms)")


def report(outcomes: list[Outcome], args, skipped: list[str], load_start: str, state: dict, rules_changes) -> str:
    date = subprocess.run(["date", "-u"], check=False, capture_output=True, text=True).stdout.strip()
    think = ", ".join(f"{k} {lo:g}-{hi:g} s" for k, (lo, hi) in THINK.items())
    lines = [f"## Surge: {wh.cpus()}", "", f"`make surge` (bench/surge.py), {date}", "",
             f"- machine: {wh.machine()}; load average {load_start} at start, {wh.load_average()} at end",
             f"- commit: {wh.git_commit()} (the working tree may hold uncommitted edits)",
             f"- load: {args.rate:g} new calls/s (Poisson, open loop) after a {args.ramp:g} s linear ramp, held "
             f"{args.duration:g} s; complete calls incoming -> menu 1 -> menu 0 (Enqueue) -> hold x{HOLD_CYCLES} -> "
             f"queue-result ({BRIDGED_SHARE:.0%} bridged, else hangup) -> status completed; think times before each "
             f"step: {think}; signed Twilio-shaped requests, one new connection each, from one selectors loop; "
             f"seed {args.seed}",
             f"- hotline: `ivr setup` + `ivr serve --workers {wh.WORKERS}`, IVR_ENV=production, live mode, IVR_RULES = "
             f"a copy of routing_rules.yaml ({'; '.join(rules_changes)})",
             "- p50/p95/p99: every request of the run (ramp and tail included), from connect to the server's close; "
             f"a request with no answer counts at the time it failed ({REQUEST_TIMEOUT_S:g} s for a timeout)", ""]
    bare = state.get("bare")
    b = bare.summary() if bare else None
    if b:
        lines += [f"bare Flask (bench/bare_app.py, same gunicorn flags), same schedule, every request to "
                  f"/voice/incoming: {b['rps']:.0f} req/s, p50 {b['p50']:.2f} ms, p99 {b['p99']:.2f} ms, "
                  f"errors {b['errors']}, worker CPU {b['worker_ms_req']:.2f} ms/request", ""]
    for o in outcomes:
        s = o.summary
        lines += [f"### {o.db}", "",
                  "| calls/s offered | started | completed | req/s sent | answered well | p50 ms | p95 ms | p99 ms | "
                  "errors | worker CPU ms/req |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {s['offered_cps']:.1f} | {s['started_cps']:.1f} | {s['completed_cps']:.1f} | {s['rps']:.0f} | "
                  f"{s['ok_rps']:.0f} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {s['errors']} | "
                  f"{o.server.cpu_ms:.2f} |", "",
                  "| route | requests | p50 ms | p95 ms | p99 ms | max ms | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {route} | {r['n']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['max']:.0f} | "
                  f"{r['errors']} |" for route, r in sorted(o.routes.items())]
        r = o.records
        lines += ["", "| records | expected (a range: requests that timed out may still have been served) | "
                  "written, server up | written after SIGTERM |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {r.expect(k)} | {r.running.get(k, 0)} | {r.final.get(k, 0)} |" for k in RECORD_KEYS]
        lines += ["", f"lost, checked call by call after SIGTERM (an answered request's records missing): "
                  f"{r.lost_total} ({', '.join(f'{k} {v}' for k, v in r.lost.items())})"]
        if s["errors"]:
            lines += ["", "errors: " + ", ".join(f"{k}: {v}" for k, v in s["error_kinds"].items())]
        lines += ["", "per 10 s (calls started / completed / requests / p99 ms): "
                  + "; ".join(f"{t}s {st}/{co}/{n}/{_ms(p99)}" for t, st, co, n, p99 in o.surge.buckets()), ""]
        if b:
            lines.append(f"vs bare: p99 {s['p99'] / b['p99']:.1f}x ({s['p99']:.1f} / {b['p99']:.1f} ms), worker CPU "
                         f"per request {o.server.cpu_ms / b['worker_ms_req']:.1f}x ({o.server.cpu_ms:.2f} / "
                         f"{b['worker_ms_req']:.2f} ms)")
        lines.append(f"server side (/metrics): {o.server.line()}")
        lines.append(f"generator: lag p50 {s['lag_p50']:.1f} / p99 {s['lag_p99']:.1f} / max {s['lag_max']:.0f} ms, "
                     f"CPU {s['gen_cpu_pct']:.0f}% of one CPU ({s['gen_us_req']:.0f} µs/request)")
        lines.append(f"bottleneck: {bottleneck(o)}")
        lines.append(f"sampled calls re-walked through their TwiML: {o.sampled} consistent"
                     + (f", {len(o.sample_problems)} not" if o.sample_problems else ""))
        if o.prefill:
            p = o.prefill
            lines += ["", f"/voice/incoming at {p.rate:g} req/s, {p.seconds:g} s per side in alternating chunks; full: "
                      f"{p.rows_calls:,} calls and {p.rows_events:,} call_events (prefilled in {p.fill_s:.0f} s)", "",
                      "| database | requests | p50 ms | p95 ms | p99 ms | errors | worker CPU ms/req |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {side} | {v['n']} | {v['p50']:.2f} | {v['p95']:.2f} | {v['p99']:.2f} | {v['errors']} | "
                      f"{v['cpu_ms']:.2f} |" for side, v in p.sides.items()]
        lines.append("")
        lines += [f"- {'MET    ' if met else 'NOT MET'} {name}: {value}"
                  for name, value, met in o.targets(args.rate, args.duration, bare)]
        lines.append("")
    lines += [f"- skipped: {x}" for x in skipped]
    return "\n".join(lines).rstrip() + "\n"


# -- main --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--rate", type=float, help="new calls per second once ramped up (default 100; --quick: 20)")
    p.add_argument("--ramp", type=float, help="seconds to ramp up to --rate (default 10; --quick: 2)")
    p.add_argument("--duration", type=float, help="seconds to hold --rate (default 60; --quick: 10)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 10 s at 20 calls/s, 100,000 prefilled calls")
    p.add_argument("--no-prefill", action="store_true", help="skip the empty vs prefilled database measurement")
    p.add_argument("--prefill-calls", type=int, help="calls in the prefilled database (default 1,000,000)")
    p.add_argument("--prefill-rate", type=float, default=50.0, help="req/s for that measurement (default 50)")
    p.add_argument("--prefill-seconds", type=float, help="seconds per side (default 20; --quick: 8)")
    p.add_argument("--sample-every", type=int, default=50, help="re-walk one call in N through its TwiML")
    p.add_argument("--workers", type=int, default=wh.WORKERS,
                   help=f"gunicorn workers for the hotline and the bare app (default {wh.WORKERS}, as `ivr serve`)")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, SQLite files)")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    a = p.parse_args(argv)
    quick = a.quick
    a.rate = a.rate or (20.0 if quick else 100.0)
    a.ramp = a.ramp if a.ramp is not None else (2.0 if quick else 10.0)
    a.duration = a.duration or (10.0 if quick else 60.0)
    a.prefill_calls = a.prefill_calls or (100_000 if quick else 1_000_000)
    a.prefill_seconds = a.prefill_seconds or (8.0 if quick else 20.0)
    return a


def run(args, work: Path, servers: list, pg_dbs: list) -> int:
    if args.workers != wh.WORKERS:  # bench/webhooks.py's start_app and BARE_ARGV read these
        wh.BARE_ARGV[wh.BARE_ARGV.index("--workers") + 1] = str(args.workers)
        wh.WORKERS = args.workers
    load_start = wh.load_average()
    print(f"load average {load_start} at start ({os.cpu_count()} CPUs)")
    rules_changes = rules_copy(work / "rules.yaml")
    print(f"rules copy: {'; '.join(rules_changes)}")
    outcomes, skipped, state = [], [], {}
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print(f"\n== {kind} ==")
        if kind == "postgresql":
            if why := wh.pg_unavailable():
                skipped.append(f"PostgreSQL: not reachable on 127.0.0.1:5432 as postgres ({why})")
                print("  skipped: " + skipped[-1])
                continue

            def new_db():
                pg_dbs.append(f"ivr_surge_{secrets.token_hex(5)}")
                wh.pg_admin(f'CREATE DATABASE "{pg_dbs[-1]}"')
                return f"postgresql://postgres@127.0.0.1:5432/{pg_dbs[-1]}"
        else:
            def new_db():
                return None
        outcomes.append(bench_database(kind, new_db, work, args, servers, state))
    block = report(outcomes, args, skipped, load_start, state, rules_changes)
    print("\n" + block)
    for o in outcomes:
        print(f"{o.db} hotline: {o.command}")
    if "bare_command" in state:
        print(f"bare: {state['bare_command']}")
    if outcomes and not args.no_results:
        wh.record_section(block)
    return 0 if outcomes and all(met for o in outcomes
                                 for *_r, met in o.targets(args.rate, args.duration, state.get("bare"))) else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, wh._terminate)
    work = Path(tempfile.mkdtemp(prefix="ivr-surge-"))
    servers: list[wh.Server] = []
    pg_dbs: list[str] = []
    try:
        return run(args, work, servers, pg_dbs)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, WalkError, subprocess.SubprocessError, OSError) as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        wh.clean_up(servers, pg_dbs, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
