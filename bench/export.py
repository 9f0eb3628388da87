"""Benchmark: exporting a day of 100,000 calls through the JSON API, as a client would against `ivr serve`.

    .venv/bin/python bench/export.py [--calls N] [--db sqlite|postgresql|both] [--no-results] [--keep]

For each database: `ivr setup` + `ivr serve` (IVR_ENV=production), then N calls (default 100,000) spread over
one day, each with the steps a call records (start, three menu choices, a text for one call in four, the
end: 5.25 a call), written straight into the database, plus calls either side of the day. Then, over HTTP on
127.0.0.1, with a viewer's token:

- `GET /api/calls/export?from=DAY&to=DAY+1` read to the end (NDJSON, streamed);
- `GET /api/calls?from=..&to=..&limit=1000` paged by `next_cursor` to the last page.

Each is timed (rows/s) and checked (every call of the day exactly once). The staff pool's worker memory is
its peak RSS (VmHWM, /proc) after an export of a tenth of the day and after the whole day: constant memory
means the whole day adds next to nothing to what a tenth took. Target: the day in under 60 s, each way.
Prints the figures and writes them to bench/RESULTS.md under "## Export" (replacing an earlier one).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from sqlalchemy import create_engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webhooks import (RESULTS, app_env, git_commit, load_average, machine, pg_admin, pg_unavailable,  # noqa: E402
                      start_app, stop)

from ivr.store.db import Database  # noqa: E402
from ivr.store.models import Call, CallEvent  # noqa: E402
from ivr.store.users import add_user, create_token  # noqa: E402

DAY = datetime(2026, 11, 30, tzinfo=timezone.utc)
TARGET_S = 60.0
CHUNK = 5000


def seed(db_url: str, calls: int) -> None:
    """`calls` calls over DAY (and two outside it), with their steps, in chunks of CHUNK."""
    engine = create_engine(db_url)
    step = timedelta(days=1) / calls
    with engine.begin() as conn:
        conn.execute(insert(Call), [{"call_sid": f"CAOUT{i:029d}", "started_at": at, "caller_masked": "***0000"}
                                    for i, at in enumerate((DAY - timedelta(seconds=1), DAY + timedelta(days=1)))])
    for first in range(0, calls, CHUNK):
        rows, events = [], []
        for i in range(first, min(first + CHUNK, calls)):
            sid, at = f"CA{i:032d}", DAY + step * i
            rows.append({"call_sid": sid, "started_at": at, "caller_masked": f"***{i % 10000:04d}",
                         "language": "en" if i % 3 else "es", "mode": "message", "outcome": "ended-by-caller",
                         "status": "completed", "duration_s": 40 + i % 200, "ended_at": at + timedelta(seconds=40)})
            kinds = [("call_started", None, "message"), ("menu_choice", "1", "details"),
                     ("menu_choice", "2", "advice"), ("menu_choice", "9", "repeat")]
            if i % 4 == 0:
                kinds.append(("sms", "4", f"HL-{i % 10000:04d}-BENC"))
            kinds.append(("status", None, "completed"))
            events += [{"call_sid": sid, "step": str(n), "kind": kind, "digits": digits, "detail": detail,
                        "at": at + timedelta(seconds=n)} for n, (kind, digits, detail) in enumerate(kinds)]
        with engine.begin() as conn:
            conn.execute(insert(Call), rows)
            conn.execute(insert(CallEvent), events)
    engine.dispose()


def staff_workers_hwm_mb(serve_pid: int) -> float:
    """The peak RSS (VmHWM) of the staff pool's worker (the largest, were there several): the gunicorn
    processes running ivr.wsgi:staff whose parent runs it too (the pool's master)."""
    def cmd(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""

    peak = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        pid, ppid = int(status.parent.name), int(re.search(r"PPid:\s+(\d+)", text)[1])
        if "ivr.wsgi:staff" in cmd(pid) and "ivr.wsgi:staff" in cmd(ppid):
            hwm = re.search(r"VmHWM:\s+(\d+) kB", text)
            peak = max(peak, int(hwm[1]) / 1024 if hwm else 0.0)
    return peak


def wait_for(url: str, auth: dict, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, headers=auth, timeout=30).raise_for_status()
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def export(base: str, auth: dict, start: datetime, end: datetime) -> tuple[float, list[str]]:
    """(seconds, call sids) of one NDJSON export, read line by line as it streams."""
    t0 = time.perf_counter()
    with requests.get(f"{base}/api/calls/export", params={"from": start.isoformat(), "to": end.isoformat()},
                      headers=auth, stream=True, timeout=300) as resp:
        resp.raise_for_status()
        sids = [json.loads(line)["call_sid"] for line in resp.iter_lines() if line]
    return time.perf_counter() - t0, sids


def paged(base: str, auth: dict, start: datetime, end: datetime) -> tuple[float, list[str], int]:
    """(seconds, call sids, pages) of paging the range 1,000 calls at a time."""
    t0, sids, cursor, pages = time.perf_counter(), [], None, 0
    while True:
        params = {"from": start.isoformat(), "to": end.isoformat(), "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        resp = requests.get(f"{base}/api/calls", params=params, headers=auth, timeout=120)
        resp.raise_for_status()
        body, pages = resp.json(), pages + 1
        sids += [c["call_sid"] for c in body["calls"]]
        cursor = body["next_cursor"]
        if not cursor:
            return time.perf_counter() - t0, sids, pages


def run(db: str, calls: int, keep: bool) -> dict:
    instance = Path(tempfile.mkdtemp(prefix=f"bench-export-{db}-"))
    pg_name = None
    if db == "sqlite":
        db_url = f"sqlite:///{instance}/hotline.db"
    else:
        pg_name = f"bench_export_{uuid.uuid4().hex[:8]}"
        pg_admin(f"CREATE DATABASE {pg_name}")
        db_url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
    servers: list = []
    try:
        env = app_env(instance, "bench-token", db_url)
        env["IVR_STAFF_WORKERS"] = "1"  # every export in one process: its peak RSS is the figure
        srv = start_app(env, servers)
        t0 = time.perf_counter()
        seed(db_url, calls)
        seeded_s = time.perf_counter() - t0
        hotline_db = Database(db_url)
        add_user(hotline_db, "bench", "viewer", actor="bench")
        auth = {"Authorization": "Bearer " + create_token(hotline_db, "bench", actor="bench")}
        hotline_db.engine.dispose()
        base = f"http://127.0.0.1:{srv.staff_port}"
        wait_for(f"{base}/api/calls?limit=1", auth)  # the staff pool starts once the caller pool answers
        before_mb = staff_workers_hwm_mb(srv.proc.pid)
        tenth_s, tenth = export(base, auth, DAY, DAY + timedelta(hours=2.4))
        tenth_mb = staff_workers_hwm_mb(srv.proc.pid)
        day_s, exported = export(base, auth, DAY, DAY + timedelta(days=1))
        day_mb = staff_workers_hwm_mb(srv.proc.pid)
        paged_s, paged_sids, pages = paged(base, auth, DAY, DAY + timedelta(days=1))
        paged_mb = staff_workers_hwm_mb(srv.proc.pid)
        expected = {f"CA{i:032d}" for i in range(calls)}
        return {"db": db, "calls": calls, "seeded_s": seeded_s, "tenth": len(tenth), "tenth_s": tenth_s,
                "day_s": day_s, "exported_ok": len(exported) == calls and set(exported) == expected,
                "paged_s": paged_s, "pages": pages,
                "paged_ok": len(paged_sids) == calls and set(paged_sids) == expected and paged_sids == exported,
                "before_mb": before_mb, "tenth_mb": tenth_mb, "day_mb": day_mb, "paged_mb": paged_mb}
    finally:
        for srv in list(servers):
            stop(srv, servers)
        if pg_name:
            pg_admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
        if not keep:
            subprocess.run(["rm", "-rf", str(instance)], check=False)


def section(results: list[dict], skipped: list[str], load_at_start: str) -> str:
    date = datetime.now(timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    lines = ["## Export", "",
             f"`bench/export.py` ({date}, commit {git_commit()}; {machine()}; load average {load_at_start} at "
             f"start): a day of calls (5.25 steps a call) exported over HTTP from `ivr serve` "
             f"(IVR_ENV=production, one staff worker) with a viewer's token, on 127.0.0.1. The staff worker's "
             "memory is its peak RSS (VmHWM) after each step: constant memory means the whole day adds next to "
             "nothing to what a tenth of it took.", "",
             "| database | calls | NDJSON export s | rows/s | paged (1,000 a page) s | rows/s | "
             "worker peak MB: before / tenth / day / paged | every call once |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r['db']} | {r['calls']:,} | {r['day_s']:.1f} | {r['calls'] / r['day_s']:,.0f} | "
                     f"{r['paged_s']:.1f} | {r['calls'] / r['paged_s']:,.0f} | {r['before_mb']:.0f} / "
                     f"{r['tenth_mb']:.0f} / {r['day_mb']:.0f} / {r['paged_mb']:.0f} | "
                     f"{'yes' if r['exported_ok'] and r['paged_ok'] else 'NO'} |")
    lines.append("")
    for r in results:
        met = r["day_s"] < TARGET_S and r["paged_s"] < TARGET_S
        lines.append(f"- {'MET    ' if met else 'NOT MET'} {r['db']}: the day in under {TARGET_S:.0f} s each way "
                     f"(export {r['day_s']:.1f} s, paged {r['paged_s']:.1f} s)")
    lines += [f"- skipped: {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace the "## Export" section of RESULTS.md (up to the next "## " heading), or add it at the end."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    found = re.search(r"^## Export\n.*?(?=^## |\Z)", old, flags=re.S | re.M)
    new = old[:found.start()] + text + "\n" + old[found.end():] if found else old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the instance folders")
    args = parser.parse_args()
    load_at_start = load_average()
    results, skipped = [], []
    for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        if db == "postgresql" and (why := pg_unavailable()):
            skipped.append(f"postgresql: {why}")
            continue
        print(f"{db}: seeding {args.calls:,} calls, then exporting ...", flush=True)
        results.append(run(db, args.calls, args.keep))
        print(json.dumps(results[-1], indent=1), flush=True)
    text = section(results, skipped, load_at_start)
    print(text)
    if not args.no_results:
        write_section(text)
        print(f"written to {RESULTS.relative_to(Path(__file__).resolve().parent.parent)}")


if __name__ == "__main__":
    main()
