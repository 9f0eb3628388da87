"""Benchmark: the hotline's caller webhooks against a bare Flask app, both under the same gunicorn, interleaved.

    .venv/bin/python bench/webhooks.py [--db sqlite|postgresql|both] [--rounds N] [--window S] [--quick]

For each database: `ivr setup` + `ivr serve --workers 2` (IVR_ENV=production), a bare Flask app answering
constant TwiML without reading the request (bench/bare_app.py: the target's baseline), the same app writing its
access line as `ivr serve` does (ivr/ops/logs.py: the like-for-like floor, since that saving is the server's,
not the hotline's own work) and the same app reading Twilio's form as any webhook that uses its parameters must
(bench/sample_app.py), all under the same gunicorn settings (2 sync workers, access log on, preloaded). Then N
rounds (at least 5), the apps in alternating order (bare, bare with ivr's log, sample, hotline; then the other
way round; ...), each round:

- a webhook window: POST /voice/incoming for `--window` seconds after a 1 s warm-up, 32 requests in flight,
  each a new call (new CallSid, valid X-Twilio-Signature); requests per second and server CPU per request;
- complete calls: 240 calls, 16 at a time, each call's webhooks back to back as Twilio sends them
  (incoming, the menu key that plays the facts, the status callback as the caller hangs up); server CPU per
  call, calls per second per core (1000 / CPU ms per call) and the webhooks' p99.

"Server CPU" is every process below the server started, read from /proc: the gunicorn masters and workers and,
for the hotline, `ivr background` writing the spool, counted until the tree is idle again after the load (the
writer's work for a window is in that window). The load comes from bench/loadgen.py in a process of its own,
the same requests and settings for both apps; its own CPU per request is reported. A figure is the median over
the rounds, with the range beside it; ratios are hotline/bare and hotline/sample (by CPU the other way round,
so higher is better).
Adjacent windows share the machine's load of the moment, and alternating the order cancels a drift: on a
shared machine that is what keeps a swing in other work out of the ratio.

After the rounds the hotline is stopped with SIGTERM and every call it answered must be in `calls`. Targets
print as MET or NOT MET; the exit status is 0 whenever the bench ran, so `make bench` goes on to its other
benches. The table replaces this machine's section of bench/RESULTS.md (`--no-results`: print only).
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import *  # noqa: E402,F401,F403  (bench/surge.py and bench/audio.py reach these through here)
from harness import (PATH, WORKERS, Server, app_env, check_signed_request, clean_up,  # noqa: E402,F401
                     count_calls, cpus, git_commit, load_average, machine, pg_admin, pg_unavailable, record_section,
                     signed_requests, start_app, start_bare, stop, _open_loop, _terminate)

LOADGEN = Path(__file__).with_name("loadgen.py")
DB_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
ROUNDS, WINDOW_S, WARMUP_S, CONNECTIONS = 5, 4.0, 1.0, 32
CALLS, CALL_CONCURRENCY = 240, 16
# req/s the pool of distinct CallSids is sized for; above it CallSids repeat (reported), and a repeated call
# costs the writer less (nothing new to insert), which flatters the hotline. 2,500 was too few on a 2-core
# EPYC that answers 3,500 a second; 6,000 costs a 130 MB pool file for 7 rounds.
POOL_RATE = 6000
TARGET_RATIO, TARGET_CALL_P99_MS = 0.80, 50.0
# bare: constant TwiML, the request never read (the target's baseline); sample: bare Flask that reads Twilio's
# form, the least any webhook that uses its parameters costs (bench/sample_app.py); hotline: `ivr serve`.
# bare_ivr_log: bare Flask writing its access line the way `ivr serve` does (ivr/ops/logs.py, the same line for
# a seventh of gunicorn's cost): the like-for-like floor. The hotline's ratio to it is what the hotline's own
# work costs, with none of the server's savings counted as the app's; reported beside the target, not as it.
APPS = ("bare", "bare_ivr_log", "sample", "hotline")
IVR_LOGGER = ["--logger-class", "ivr.ops.logs.GunicornLogger"]
# A complete call's server CPU before issue 25 (bench/RESULTS.md, "Baseline"), on the machine it was measured
# on: the goal is at most half. Elsewhere the line is left out (another machine's CPU ms do not compare).
BASELINE_CALL_CPU_MS = {"sqlite": 8.21, "postgresql": 10.08}
BASELINE_MACHINE = "2 CPUs (Intel(R) Xeon(R) Processor)"


# -- load --------------------------------------------------------------------------------------------------
@dataclass
class Window:
    """One run of the load generator against one server: what it got and what the server spent."""

    answered: int
    errors: int
    jobs: int
    rps: float
    p99_ms: float
    server_cpu_ms: float  # per request (or per call, for complete calls)
    loadgen_cpu_ms: float  # per request

    @property
    def calls_per_core_s(self) -> float:
        return 1000 / self.server_cpu_ms if self.server_cpu_ms else math.nan


def settle(srv: Server, quiet_cpu_s: float = 0.01, step: float = 0.25, limit: float = 10.0) -> float:
    """The tree's CPU seconds once it is idle again (less than `quiet_cpu_s` in `step`), at most `limit` s on."""
    last, deadline = srv.workers_cpu_s(), time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(step)
        now = srv.workers_cpu_s()
        if now - last < quiet_cpu_s:
            return now
        last = now
    return last


def loadgen(srv: Server, jobs: Path, *, concurrency: int, seconds: float | None = None, start: int = 0,
            count: int | None = None, twiml: bool = True) -> dict:
    """Run bench/loadgen.py against the server (its JSON output)."""
    argv = [sys.executable, str(LOADGEN), "--port", str(srv.port), "--jobs", str(jobs), "--concurrency",
            str(concurrency), "--start", str(start)] + (["--twiml"] if twiml else [])
    argv += ["--seconds", str(seconds)] if seconds else []
    argv += ["--count", str(count)] if count else []
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=(seconds or 60) + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def measure(srv: Server, jobs: Path, per_call: bool = False, **kw) -> Window:
    """One load generator run; the server's CPU from just before it until the tree is idle again."""
    before = srv.workers_cpu_s()
    out = loadgen(srv, jobs, **kw)
    spent_ms = (settle(srv) - before) * 1000
    unit = out["jobs_done"] if per_call else out["answered"]
    return Window(out["answered"], out["errors"], out["jobs_started"], out["answered"] / out["elapsed_s"],
                  out["p99_ms"], spent_ms / unit if unit else math.nan,
                  out["cpu_s"] * 1000 / out["answered"] if out["answered"] else math.nan)


# -- requests ----------------------------------------------------------------------------------------------
def raw(port: int, path: str, signature: str, body: str) -> bytes:
    """A request as Twilio sends it (one connection per request)."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: TwilioProxy/1.1\r\n"
            "Connection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


def incoming_pool(path: Path, srv: Server, token: str, n: int) -> Path:
    """n jobs of one /voice/incoming request each, every one a new call, signed for the hotline."""
    jobs = [[raw(srv.port, PATH, sig, body)] for sig, body in signed_requests(srv.url(PATH), token, n)]
    path.write_bytes(pickle.dumps(jobs))
    return path


def call_template(srv: Server, token: str) -> list[tuple[str, str]]:
    """The complete call's webhooks, followed through the TwiML once: incoming, key 1 (the facts), status."""
    import surge  # its call walker and Twilio's parameters for each step
    import requests
    from twilio.request_validator import RequestValidator

    spec, validator = surge.plan_calls(1, 0, 1, seed=1)[0], RequestValidator(token)

    def fetch(_step, path, kind):
        params = spec.params(kind)
        resp = requests.post(srv.url(path), data=params, timeout=10, headers={
            "X-Twilio-Signature": validator.compute_signature(srv.url(path), params)})
        return resp.status_code, resp.headers.get("Content-Type", "").split(";")[0], resp.content

    steps = surge.walk(fetch, keys=("1",), hold_cycles=0)
    if [k for _, k in steps[:2]] != ["incoming", "key:1"]:
        raise RuntimeError(f"the probe call went {steps}")
    return steps[:2] + [("/voice/status", "status")]  # the caller hangs up after the facts


def calls_pool(path: Path, srv: Server, token: str, template, n: int) -> Path:
    import surge
    calls = surge.plan_calls(n, 0, 1, seed=secrets.randbelow(2**32))[:n]
    path.write_bytes(pickle.dumps(surge.build_requests(calls, template, srv.port, token)))
    return path


# -- one database ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    db: str
    template: list[str]
    windows: dict[str, list[Window]] = field(default_factory=lambda: {app: [] for app in APPS})
    calls: dict[str, list[Window]] = field(default_factory=lambda: {app: [] for app in APPS})
    records: tuple[int, int, int] = (0, 0, 0)  # rows in calls, distinct calls answered, distinct calls sent
    repeats: bool = False
    commands: dict[str, str] = field(default_factory=dict)

    def median(self, table: str, app: str, attr: str) -> float:
        return statistics.median(getattr(w, attr) for w in getattr(self, table)[app])

    def spread(self, table: str, app: str, attr: str) -> tuple[float, float]:
        values = [getattr(w, attr) for w in getattr(self, table)[app]]
        return min(values), max(values)

    def ratio(self, attr: str, app: str = "hotline", to: str = "bare") -> float:
        """`app` against `to` (by CPU: `to`'s CPU over `app`'s, so higher is better either way)."""
        base, other = self.median("windows", to, attr), self.median("windows", app, attr)
        return other / base if attr == "rps" else base / other

    def round_ratios(self, attr: str, app: str = "hotline", to: str = "bare") -> tuple[float, float]:
        pairs = zip(self.windows[to], self.windows[app])
        r = [h.rps / b.rps if attr == "rps" else b.server_cpu_ms / h.server_cpu_ms for b, h in pairs]
        return min(r), max(r)

    def targets(self) -> list[tuple[str, str, bool]]:
        errors = sum(w.errors for ws in (*self.windows.values(), *self.calls.values()) for w in ws)
        rows, answered, sent = self.records
        call_p99 = self.median("calls", "hotline", "p99_ms")
        call_cpu = self.median("calls", "hotline", "server_cpu_ms")
        out = [(f"/voice/incoming >= {TARGET_RATIO:.2f} of bare Flask by median req/s",
                f"{self.ratio('rps'):.2f}", self.ratio("rps") >= TARGET_RATIO),
               (f"/voice/incoming >= {TARGET_RATIO:.2f} of bare Flask by server CPU per request",
                f"{self.ratio('server_cpu_ms'):.2f}", self.ratio("server_cpu_ms") >= TARGET_RATIO),
               (f"{CALLS} complete calls {CALL_CONCURRENCY} at a time keep p99 under {TARGET_CALL_P99_MS:.0f} ms",
                f"{call_p99:.1f} ms (median of the rounds; worst {self.spread('calls', 'hotline', 'p99_ms')[1]:.1f})",
                call_p99 < TARGET_CALL_P99_MS)]
        if cpus() == BASELINE_MACHINE:
            base = BASELINE_CALL_CPU_MS[self.db]
            out.append((f"a complete call costs at most half of the baseline ({base} CPU ms)", f"{call_cpu:.2f} ms",
                        call_cpu <= base / 2))
        out += [("0 errors", str(errors), errors == 0),
                ("every answered call recorded", f"{rows} rows for {answered} answered, {sent} sent",
                 answered <= rows <= sent)]
        return out


def bench_database(kind: str, db_url: str | None, work: Path, args, servers: list) -> Outcome:
    token = "bench-" + secrets.token_hex(16)
    env = app_env(work / f"instance-{kind}", token, db_url)
    db_url = db_url or f"sqlite:///{work / f'instance-{kind}' / 'hotline.db'}"
    hot = start_app(env, servers)
    check_signed_request(hot, token)
    template = call_template(hot, token)
    bare = start_bare(work / f"bare-{kind}.log", servers)
    bare_ivr_log = start_bare(work / f"bare-ivr-log-{kind}.log", servers, extra=IVR_LOGGER)
    sample = start_bare(work / f"sample-{kind}.log", servers, app="sample_app:app")
    apps = {"bare": bare, "bare_ivr_log": bare_ivr_log, "sample": sample, "hotline": hot}
    outcome = Outcome(kind, [p for p, _ in template], commands={k: s.cmdline() for k, s in apps.items()})
    per_window = int(POOL_RATE * (WARMUP_S + args.window))
    incoming = incoming_pool(work / f"incoming-{kind}.pickle", hot, token, per_window * args.rounds)
    calls = calls_pool(work / f"calls-{kind}.pickle", hot, token, template, CALLS * args.rounds)
    cursor = {app: 0 for app in APPS}  # where each app's next window resumes in the incoming pool
    sent_sids = 2 + CALLS * args.rounds  # the probes' calls, then every complete call
    for i in range(args.rounds):
        order = list(APPS) if i % 2 == 0 else list(reversed(APPS))
        for name in order:
            srv = apps[name]
            warm = loadgen(srv, incoming, concurrency=CONNECTIONS, seconds=WARMUP_S, start=cursor[name])
            w = measure(srv, incoming, concurrency=CONNECTIONS, seconds=args.window,
                        start=cursor[name] + warm["jobs_started"])
            cursor[name] += warm["jobs_started"] + w.jobs
            outcome.windows[name].append(w)
        for name in order:
            outcome.calls[name].append(measure(apps[name], calls, per_call=True, concurrency=CALL_CONCURRENCY,
                                               start=i * CALLS, count=CALLS))
        b, h = outcome.windows["bare"][-1], outcome.windows["hotline"][-1]
        c = outcome.calls["hotline"][-1]
        t, lb = outcome.windows["sample"][-1], outcome.windows["bare_ivr_log"][-1]
        print(f"  round {i + 1} ({', '.join(order)}): incoming {h.rps:.0f} req/s vs bare {b.rps:.0f} "
              f"({h.rps / b.rps:.2f}), CPU {h.server_cpu_ms:.3f} vs {b.server_cpu_ms:.3f} ms/req "
              f"({b.server_cpu_ms / h.server_cpu_ms:.2f}; bare with ivr's access line {lb.server_cpu_ms:.3f}, "
              f"{lb.server_cpu_ms / h.server_cpu_ms:.2f}; sample app {t.server_cpu_ms:.3f}); complete call "
              f"{c.server_cpu_ms:.2f} CPU ms, p99 {c.p99_ms:.1f} ms", flush=True)
    pool = per_window * args.rounds
    outcome.repeats = cursor["hotline"] > pool
    answered = 2 + min(cursor["hotline"], pool) - sum(w.errors for w in outcome.windows["hotline"])
    answered += sum(w.jobs for w in outcome.calls["hotline"]) - sum(w.errors for w in outcome.calls["hotline"])
    stop(bare, servers)
    stop(bare_ivr_log, servers)
    stop(sample, servers)
    stop(hot, servers)  # SIGTERM: the workers close their spool segments and the writer writes the rest
    outcome.records = (count_calls(db_url), answered, min(cursor["hotline"], pool) + sent_sids)
    return outcome


# -- report ------------------------------------------------------------------------------------------------
def _cell(o: Outcome, table: str, app: str, attr: str, fmt: str) -> str:
    lo, hi = o.spread(table, app, attr)
    return f"{o.median(table, app, attr):{fmt}} ({lo:{fmt}}-{hi:{fmt}})"


def _ratios(o: Outcome, attr: str, to: str) -> str:
    lo, hi = o.round_ratios(attr, to=to)
    return f"**{o.ratio(attr, to=to):.2f}** ({lo:.2f}-{hi:.2f})"


def section(o: Outcome, args, load_at_start: str) -> str:
    """One database's results: the section "## Webhooks on <db>: <machine>" of bench/RESULTS.md."""
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    def row(label: str, table: str, attr: str, fmt: str, ratios: bool = False) -> str:
        cells = " | ".join(_cell(o, table, app, attr, fmt) for app in APPS)
        tail = (" | ".join(_ratios(o, attr, to) for to in ("bare", "bare_ivr_log", "sample")) if ratios
                else " | |")
        return f"| {label} | {cells} | {tail} |"

    lines = [f"## Webhooks on {DB_NAMES[o.db]}: {cpus()}", "",
             f"`make bench` (bench/webhooks.py), {date}, commit {git_commit()}, {machine()}; load average "
             f"{load_at_start} at start, {load_average()} at end. {args.rounds} rounds, the apps in alternating "
             f"order; each round a {args.window:.0f} s window of POST /voice/incoming ({CONNECTIONS} in flight, a "
             f"new signed call each) and {CALLS} complete calls {CALL_CONCURRENCY} at a time. Every app under "
             f"gunicorn, {WORKERS} sync workers, access log on; \"bare, ivr's log\" is bare Flask writing its access "
             "line as `ivr serve` does (the like-for-like floor), the sample app bare Flask reading Twilio's form "
             "(bench/sample_app.py). Median (min-max) over the rounds; server CPU = gunicorn masters and workers "
             "and `ivr background`, from /proc.", "",
             "| | bare Flask | bare, ivr's log | Twilio sample app | hotline | hotline/bare (rounds) "
             "| hotline/bare, ivr's log (rounds) | hotline/sample (rounds) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             row("/voice/incoming req/s", "windows", "rps", ".0f", ratios=True),
             row("/voice/incoming server CPU ms per request", "windows", "server_cpu_ms", ".3f", ratios=True),
             row(f"/voice/incoming p99 ms ({CONNECTIONS} in flight)", "windows", "p99_ms", ".1f"),
             row(f"complete call ({len(o.template)} webhooks): server CPU ms", "calls", "server_cpu_ms", ".2f"),
             row("complete calls per second per core", "calls", "calls_per_core_s", ".0f"),
             row(f"complete calls: webhook p99 ms ({CALL_CONCURRENCY} calls at a time)", "calls", "p99_ms", ".1f"),
             row("load generator CPU ms per request", "windows", "loadgen_cpu_ms", ".3f"), ""]
    lines += [f"- {'MET    ' if met else 'NOT MET'} {name}: {value}" for name, value, met in o.targets()]
    lines.append(f"- the floor: the sample app, which only reads the form, is at {o.ratio('rps', 'sample'):.2f} of "
                 f"bare Flask by req/s and {o.ratio('server_cpu_ms', 'sample'):.2f} by CPU; the hotline is at "
                 f"{o.ratio('rps', to='sample'):.2f} / {o.ratio('server_cpu_ms', to='sample'):.2f} of the sample app")
    like = {attr: o.ratio(attr, to="bare_ivr_log") for attr in ("rps", "server_cpu_ms")}
    lines.append(f"- like for like: against bare Flask writing its access line as `ivr serve` does, the hotline is "
                 f"at {like['rps']:.2f} by req/s and {like['server_cpu_ms']:.2f} by CPU (what its own work costs; "
                 "the target is against bare Flask as gunicorn serves it)")
    lines.append(f"- the complete call: {' → '.join(o.template)}"
                 + ("; CallSids repeated: the incoming pool was too small" if o.repeats else ""))
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"interleaved rounds, at least 5 (default {ROUNDS})")
    p.add_argument("--window", type=float, default=WINDOW_S, help=f"seconds per webhook window ({WINDOW_S:.0f})")
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 s: a smoke test, not a measurement")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, pools, SQLite files)")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.window = 2, 2.0
    elif args.rounds < 5:
        p.error("--rounds: at least 5 (--quick for a smoke test)")
    return args


def run(args, work: Path, servers: list, pg_dbs: list) -> int:
    load_at_start = load_average()
    outcomes, skipped = [], []
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print(f"\n== {kind} ==", flush=True)
        db_url = None
        if kind == "postgresql":
            if why := pg_unavailable():
                skipped.append(f"PostgreSQL: not reachable on 127.0.0.1:5432 as postgres ({why})")
                print("  skipped: " + skipped[-1])
                continue
            pg_dbs.append(f"ivr_bench_{secrets.token_hex(5)}")
            pg_admin(f'CREATE DATABASE "{pg_dbs[-1]}"')
            db_url = f"postgresql://postgres@127.0.0.1:5432/{pg_dbs[-1]}"
        outcomes.append(bench_database(kind, db_url, work, args, servers))
    for o in outcomes:
        block = section(o, args, load_at_start)
        print("\n" + block)
        for name, cmd in o.commands.items():
            print(f"{o.db} {name}: {cmd}")
        if not args.no_results and not args.quick:
            record_section(block)
    for s in skipped:
        print(f"skipped: {s}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    servers: list[Server] = []
    pg_dbs: list[str] = []
    try:
        return run(args, work, servers, pg_dbs)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:  # a server that would not start...
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        clean_up(servers, pg_dbs, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
