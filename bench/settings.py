"""Which server settings give the most complete calls per second per core behind the shipped nginx site?

    .venv/bin/python bench/settings.py [--rounds N] [--calls N] [--db sqlite|postgresql]

Starts one `ivr serve` per setting (SQLite by default), each behind its own nginx running deploy/nginx/
ivr-hotline.conf as shipped but for addresses, ports, paths and TLS (the load generator speaks plain HTTP;
TLS costs nginx the same whatever runs behind it), plus one `ivr serve` reached directly, for what nginx
itself costs. Then, round after round with the settings in a rotating order, sends each `--calls` complete
calls (bench/webhooks.py's: incoming, key 1, status), 16 at a time, through bench/loadgen.py. CPU per call
counts the server's process tree and its nginx's (master and worker), read from /proc; calls per second per
core is 1000 / that. Prints a table (median and range over the rounds); docs/performance.md holds the
conclusions. Not part of `make bench` (about 4 minutes).
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (ROOT, Server, _terminate, app_env, clean_up, cpus, free_port, git_commit,  # noqa: E402
                     load_average, machine, pg_admin, start_app)
from webhooks import CALL_CONCURRENCY, call_template, calls_pool, measure  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "ivr-hotline.conf"
# (name, gunicorn flags after `--`, behind nginx, nginx keeps its connections to the upstream open)
SETTINGS = [
    ("direct, sync, 2 workers", [], False, False),
    ("sync, 2 workers (1 per core: shipped)", [], True, False),
    ("sync, 4 workers (2 per core)", ["--workers", "4"], True, False),
    ("gthread, 2 workers x 4 threads", ["--worker-class", "gthread", "--threads", "4"], True, False),
    ("gthread, 2 x 4, upstream keepalive 16", ["--worker-class", "gthread", "--threads", "4"], True, True),
    ("gthread, 4 workers x 2 threads, keepalive", ["--workers", "4", "--worker-class", "gthread", "--threads", "2"],
     True, True),
]


class Nginx:
    """nginx in the foreground, unprivileged, with the shipped site pointed at one server on `port` (tests/test_
    deploy_nginx.py runs it the same way, with TLS)."""

    def __init__(self, work: Path, port: int, callers: int, staff: int, keepalive: bool):
        work.mkdir(parents=True)
        site = SITE.read_text()
        subs = {"server 127.0.0.1:8001 max_fails=1 fail_timeout=10s;":
                f"server 127.0.0.1:{callers} max_fails=1 fail_timeout=10s;" + (" keepalive 16;" if keepalive else ""),
                "server 127.0.0.1:8003 max_fails=1 fail_timeout=10s;": "",
                "server 127.0.0.1:8002 max_fails=1 fail_timeout=10s;": f"server 127.0.0.1:{staff};",
                "server 127.0.0.1:8004 max_fails=1 fail_timeout=10s;": "",
                "listen 443 ssl;": f"listen 127.0.0.1:{port};",
                "listen 80;": f"listen 127.0.0.1:{free_port()};",
                "/var/log/nginx/ivr-hotline.access.log": str(work / "access.log")}
        for old, new in subs.items():
            if old not in site:
                raise RuntimeError(f"deploy/nginx/ivr-hotline.conf no longer has {old!r}: update bench/settings.py")
            site = site.replace(old, new)
        (work / "site.conf").write_text(re.sub(r"(?m)^\s*ssl_.*$", "", site))  # plain HTTP: see the docstring
        temp = " ".join(f"{k}_temp_path {work / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;" if os.geteuid() == 0 else ""
        (work / "nginx.conf").write_text(
            f"{user}\nworker_processes 1;\npid {work / 'nginx.pid'};\nerror_log {work / 'error.log'} warn;\n"
            f"events {{ worker_connections 1024; }}\nhttp {{ {temp} include {work / 'site.conf'}; }}\n")
        self.srv = Server("nginx", port, [NGINX, "-p", str(work), "-e", str(work / "error.log"), "-c",
                                          str(work / "nginx.conf"), "-g", "daemon off;"],
                          dict(os.environ), work / "stdout.log")

    def cpu_s(self) -> float:
        """nginx's master and worker CPU seconds (the master is the process started: count it too)."""
        stat = Path(f"/proc/{self.srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return self.srv.workers_cpu_s() + (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


class Behind(Server):
    """A hotline as Twilio reaches it, through its nginx or directly: requests go to that port, and its CPU is
    the server's process tree and nginx's."""

    def __init__(self, name: str, hotline: Server, nginx: Nginx | None, token: str):
        self.name, self.hotline, self.nginx, self.token = name, hotline, nginx, token
        self.port = nginx.srv.port if nginx else hotline.port

    def workers_cpu_s(self) -> float:
        return self.hotline.workers_cpu_s() + (self.nginx.cpu_s() if self.nginx else 0.0)


def start(work: Path, i: int, setting, db_url: str | None, servers: list) -> Behind:
    """One `ivr serve` with the setting's gunicorn flags, behind its own nginx if the setting says so."""
    name, extra, behind, keepalive = setting
    token = "bench-" + secrets.token_hex(16)
    env = app_env(work / f"instance-{i}", token, db_url)
    port = free_port()
    if behind:  # Twilio signs the URL it calls: nginx's
        env.update(IVR_PUBLIC_URL=f"http://127.0.0.1:{port}", IVR_TRUSTED_PROXIES="1")
    hot = start_app(env, servers, extra, healthy_within=90)  # six servers starting on a busy machine
    nginx = None
    if behind:
        nginx = Nginx(work / f"nginx-{i}", port, hot.port, hot.staff_port, keepalive)
        servers.append(nginx.srv)
        nginx.srv.wait_ready("GET", "/livez")
    return Behind(name, hot, nginx, token)


def cell(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def run(args, work: Path, servers: list, pg_dbs: list) -> str:
    load_at_start, db_url = load_average(), None
    if args.db == "postgresql":
        pg_dbs.append(f"ivr_bench_{secrets.token_hex(5)}")
        pg_admin(f'CREATE DATABASE "{pg_dbs[-1]}"')
        db_url = f"postgresql://postgres@127.0.0.1:5432/{pg_dbs[-1]}"
    targets, pools = [], []
    for i, setting in enumerate(SETTINGS):
        t = start(work, i, setting, db_url, servers)
        template = call_template(t, t.token)
        pools.append(calls_pool(work / f"calls-{i}.pickle", t, t.token, template, args.calls * args.rounds))
        targets.append(t)
        print(f"  started: {t.name}", flush=True)
    cpu, rate, p99 = ([[] for _ in SETTINGS] for _ in range(3))
    for r in range(args.rounds):
        order = list(range(len(SETTINGS)))
        order = order[r % len(order):] + order[:r % len(order)]  # each setting first once in a while
        for i in order:
            w = measure(targets[i], pools[i], per_call=True, concurrency=CALL_CONCURRENCY, start=r * args.calls,
                        count=args.calls)
            if w.errors:
                print(f"  {targets[i].name}: {w.errors} errors", flush=True)
            cpu[i].append(w.server_cpu_ms)
            rate[i].append(w.jobs / (w.answered / w.rps) if w.rps else 0.0)
            p99[i].append(w.p99_ms)
        print(f"  round {r + 1}: " + ", ".join(f"{targets[i].name.split(' (')[0]} {cpu[i][-1]:.2f} ms"
                                                for i in range(len(SETTINGS))), flush=True)
    lines = [f"## Server settings: {cpus()}", "",
             f"bench/settings.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {git_commit()}, "
             f"{machine()}; load average {load_at_start} at start, {load_average()} at end; {args.db}; "
             f"{args.rounds} rounds of {args.calls} complete calls, {CALL_CONCURRENCY} at a time, per setting. "
             "CPU: the server's processes and its nginx's. Median (min-max) over the rounds.", "",
             "| setting | CPU ms per call | calls/s per core | calls/s (2 cores, shared) | webhook p99 ms |",
             "|---|---:|---:|---:|---:|"]
    for i, (name, *_rest) in enumerate(SETTINGS):
        lines.append(f"| {name} | {cell(cpu[i], '.2f')} | {cell([1000 / c for c in cpu[i]], '.0f')} | "
                     f"{cell(rate[i], '.0f')} | {cell(p99[i], '.1f')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=240)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="ivr-settings-"))
    servers: list[Server] = []
    pg_dbs: list[str] = []
    try:
        print(run(args, work, servers, pg_dbs))
        return 0
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        clean_up(servers, pg_dbs, work, False)


if __name__ == "__main__":
    sys.exit(main())
