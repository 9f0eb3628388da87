"""Where a webhook's microseconds go, in-process: the caller app and bare Flask called as WSGI apps, no server.

    .venv/bin/python bench/inprocess.py [--requests N] [--path /voice/incoming]

Sets up a scratch instance (`ivr setup`, SQLite, IVR_ENV=production), builds the caller pool's app as gunicorn
does (`ivr.wsgi:callers`, a worker's spool opened), and calls it with a signed, Twilio-shaped POST environ,
each a new call; the same for bench/bare_app.py. Prints µs per request for both (median of 5 interleaved
runs), then a cProfile of the hotline's requests, its own time grouped by where the code lives (form parsing,
signature, snapshot, reply, render, spool, metrics, Flask and Werkzeug), scaled to the unprofiled time
(cProfile's overhead falls on every function call alike, so shares are approximate; small functions count
a little more than they should). Built-ins and generic helpers (typing, inspect, functools) count for the code
that called them. docs/performance.md quotes it.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness import BIN, ROOT, app_env, signed_requests  # noqa: E402
import bare_app  # noqa: E402

# bench/ goes off the path again: its webhooks.py would shadow the hotline's `webhooks` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH]

# Where the code lives -> what it does. First match wins; anything else is "other".
GROUPS = [
    ("form parsing", ("webhooks/params.py", "urllib/parse.py")),
    ("signature (HMAC)", ("webhooks/security.py", "twilio/request_validator.py", "hmac.py", "hashlib", "base64",
                          "compare_digest")),
    ("snapshot (state read)", ("ivr/store/state.py", "ivr/store/reads.py", "ivr/store/rules_file.py",
                               "sqlalchemy/", "sqlite3", "posix.stat")),
    ("TwiML render", ("webhooks/twiml.py", "xml/", "twilio/twiml")),
    ("reply (call flow)", ("ivr/core/", "webhooks/voice.py", "webhooks/twilio_view.py")),
    ("spool append", ("ivr/spool/", "json/", "_json", "os.write", "posix.write")),
    ("metrics", ("ivr/ops/metrics.py", "prometheus_client/")),
    ("Flask and Werkzeug", ("flask/", "werkzeug/", "jinja2/", "itsdangerous/", "click/", "blinker/")),
]


def environ(path: str, host: str, sig: str, body: bytes) -> dict:
    """A WSGI environ as gunicorn builds it for Twilio's POST."""
    return {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path.split("?")[0],
            "QUERY_STRING": path.partition("?")[2], "SERVER_NAME": "127.0.0.1", "SERVER_PORT": host.split(":")[1],
            "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": host, "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)), "HTTP_X_TWILIO_SIGNATURE": sig, "HTTP_USER_AGENT": "TwilioProxy/1.1",
            "HTTP_CONNECTION": "close", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}


def call(app, env: dict) -> bytes:
    status = []
    out = b"".join(app(env, lambda s, h, exc=None: status.append(s)))
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"{env['PATH_INFO']} answered {status}: {out[:200]!r}")
    return out


def timed(app, envs: list[dict]) -> float:
    """µs per request over the environs (each used once: a new call each)."""
    t0 = time.perf_counter()
    for env in envs:
        call(app, env)
    return (time.perf_counter() - t0) / len(envs) * 1e6


def group_of(filename: str, func: str) -> str:
    where = f"{filename}:{func}"
    return next((name for name, marks in GROUPS if any(m in where for m in marks)), "other")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000, help="requests per run (default 3000)")
    p.add_argument("--path", default="/voice/incoming")
    p.add_argument("--others", type=int, default=0, help="list the N costliest functions counted as 'other'")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ivr-inprocess-"))
    token, host = "bench-" + secrets.token_hex(16), "127.0.0.1:8001"
    env = app_env(work / "instance", token, None)
    setup = subprocess.run([str(BIN / "ivr"), "setup"], env=env, capture_output=True, text=True, timeout=120)
    if setup.returncode:
        raise SystemExit(setup.stdout + setup.stderr)
    for key in [k for k in os.environ if k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))]:
        del os.environ[key]
    os.environ.update(env)
    from ivr import wsgi
    hotline = wsgi.callers
    open_spool = getattr(hotline.extensions["ivr"].recorder, "open_spool", None)
    if open_spool:
        open_spool()  # as gunicorn's post_fork does in each worker

    def envs(n: int) -> list[dict]:
        return [environ(args.path, host, sig, body.encode())
                for sig, body in signed_requests(f"http://{host}{args.path}", token, n)]

    timed(hotline, envs(500)), timed(bare_app.app, envs(500))  # warm both
    runs = {"hotline": [], "bare": []}
    for i in range(5):
        for name in (["bare", "hotline"] if i % 2 == 0 else ["hotline", "bare"]):
            runs[name].append(timed(hotline if name == "hotline" else bare_app.app, envs(args.requests)))
    hot, bare = statistics.median(runs["hotline"]), statistics.median(runs["bare"])
    print(f"{args.path}: hotline {hot:.0f} µs per request ({min(runs['hotline']):.0f}-{max(runs['hotline']):.0f}),"
          f" bare Flask {bare:.0f} µs ({min(runs['bare']):.0f}-{max(runs['bare']):.0f}); median of 5 runs of "
          f"{args.requests}")

    batch = envs(args.requests)
    prof = cProfile.Profile()
    prof.enable()
    for e in batch:
        call(hotline, e)
    prof.disable()
    stats = pstats.Stats(prof)
    totals: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, callers) in stats.stats.items():
        group = group_of(filename, func)
        if group == "other" and callers:  # a built-in or a generic helper: its time goes to whoever called it
            for (c_file, _c_line, c_func), c_stats in callers.items():
                totals[group_of(c_file, c_func)] = totals.get(group_of(c_file, c_func), 0.0) + c_stats[2]
        else:
            totals[group] = totals.get(group, 0.0) + tottime
    scale = hot / sum(totals.values())
    print(f"\n| where (cProfile own time, scaled to {hot:.0f} µs) | µs per request |\n|---|---:|")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {seconds * scale:.1f} |")
    others = sorted(((tottime, f"{Path(f).name}:{func}") for (f, _l, func), (_c, _n, tottime, _t, _r)
                     in stats.stats.items() if group_of(f, func) == "other"), reverse=True)[:args.others]
    for seconds, where in others:
        print(f"  other: {where} {seconds * scale:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
