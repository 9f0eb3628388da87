"""Benchmark: importing a large affected-customer list, and looking numbers up in it.

    .venv/bin/python bench/affected.py [--rows N] [--db sqlite|postgresql|both] [--batch N] [--keep]

Generates a CSV of N distinct valid US numbers (default 10,000,000; header `customer_id,phone`, numbers
written like `+1 212-555-0123`), imports it into a fresh, migrated database with `ivr.store.affected.import_file`
in a subprocess (wall time and peak RSS, VmHWM, of that process alone), then times `is_affected` lookups
against that list and against a 1,000-row list. Prints targets as MET / NOT MET and puts the figures in this
machine's section of bench/RESULTS.md. PostgreSQL is the server on 127.0.0.1:5432 (user postgres); a scratch
database is created and dropped. Generated files are deleted unless --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import cpus, record_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret"
TARGET_S, TARGET_RSS_MB, TARGET_LOOKUP_RATIO = 300.0, 200.0, 1.5
LOOKUPS, SMALL = 10_000, 1_000


# -- the list ----------------------------------------------------------------------------------------------
def number_blocks(count: int) -> list[tuple[int, int]]:
    """(area code, exchange) pairs whose 10,000 lines are all valid US numbers, over many area codes."""
    import phonenumbers

    def valid(area, exchange, line):
        return phonenumbers.is_valid_number(phonenumbers.parse(f"+1{area}{exchange}{line:04d}"))

    areas = [a for a in range(201, 990) if a % 100 != 11 and valid(a, 555, 100)]
    blocks, exchanges = [], range(201, 1000)
    for exchange in exchanges:
        if exchange % 100 == 11:
            continue
        for area in areas:
            if all(valid(area, exchange, line) for line in (0, 1234, 5678, 9999)):
                blocks.append((area, exchange))
                if len(blocks) == count:
                    return blocks
    raise RuntimeError("not enough valid number blocks")


def generate(path: Path, rows: int) -> list[str]:
    """Write the CSV; return the blocks' E.164 prefixes (for picking listed and unlisted numbers)."""
    blocks = number_blocks(-(-rows // 10_000) + 2)  # the last two blocks stay unlisted: numbers not listed
    with open(path, "w", buffering=1 << 20) as fh:
        fh.write("customer_id,phone\n")
        done = 0
        for area, exchange in blocks[:-2]:
            n = min(10_000, rows - done)
            if n <= 0:
                break
            head = f"+1 {area}-{exchange}-"
            fh.write("".join([f"{done + i},{head}{i:04d}\n" for i in range(n)]))
            done += n
    return [f"+1{a}{e}" for a, e in blocks]


# -- a database --------------------------------------------------------------------------------------------
class Scratch:
    """A fresh, migrated database of one kind; dropped (or deleted) on close."""

    def __init__(self, kind: str, workdir: Path, label: str):
        from sqlalchemy import create_engine, text

        from ivr.store.db import Database, normalize_url
        from ivr.store.migrate import upgrade

        self.kind = kind
        if kind == "sqlite":
            self.path = workdir / f"{label}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"ivr_bench_affected_{label}_{uuid.uuid4().hex[:8]}"
            self.admin = create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
        db = Database(self.url)
        upgrade(db)
        db.dispose()

    def size_mb(self) -> float:
        from sqlalchemy import text

        if self.kind == "sqlite":
            return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")) / 1e6
        with self.admin.connect() as conn:
            return conn.execute(text("SELECT pg_database_size(:n)"), {"n": self.name}).scalar_one() / 1e6

    def close(self) -> None:
        from sqlalchemy import text

        if self.kind == "sqlite":
            for p in self.path.parent.glob(self.path.name + "*"):
                p.unlink()
        else:
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


def child_import(url: str, path: str, batch: int | None) -> None:
    """Run in a subprocess: import, then print the report and this process's peak RSS as JSON."""
    from ivr.store.affected_import import import_file
    from ivr.store.db import Database

    db = Database(url)
    t0 = time.monotonic()
    last = [t0]
    samples = []

    def progress(p):
        if time.monotonic() - last[0] >= 15:
            last[0] = time.monotonic()
            samples.append((round(p.elapsed_s), p.rows_done, round(p.rate)))
            print(f"    {p.rows_done:>11,} rows  {p.rate:>8,.0f} rows/s  "
                  f"ETA {p.eta_s or 0:5.0f} s", file=sys.stderr, flush=True)

    report = import_file(db, path, secret_key=SECRET, actor="bench", batch_size=batch, progress=progress)
    elapsed = time.monotonic() - t0
    db.dispose()
    hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"elapsed_s": elapsed, "rows_read": report.rows_read, "rows_added": report.rows_added,
                      "bad_rows": report.bad_rows, "longest_write_s": report.longest_write_s,
                      "vmhwm_mb": hwm_kb / 1024,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "samples": samples}))


class WriterProbe:
    """Another writer during the import: a tiny write transaction every 0.25 s through ivr.store.db, as the hotline
    writes (on SQLite: BEGIN IMMEDIATE, 5 s busy timeout). Records how long each waited, and failures."""

    def __init__(self, url: str):
        import threading

        from sqlalchemy import text

        from ivr.store.db import Database

        self.db, self.text = Database(url), text
        with self.db.write() as conn:
            conn.execute(text("CREATE TABLE bench_probe (at double precision)"))
        self.waits: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            t0 = time.monotonic()
            try:
                with self.db.write() as conn:
                    conn.execute(self.text("INSERT INTO bench_probe (at) VALUES (:t)"), {"t": time.time()})
                self.waits.append(time.monotonic() - t0)
            except Exception:
                self.errors += 1

    def close(self) -> dict:
        self.stop.set()
        self.thread.join()
        self.db.dispose()
        waits = sorted(self.waits) or [0.0]
        return {"probe_writes": len(self.waits), "probe_errors": self.errors, "probe_max_s": waits[-1],
                "probe_p99_s": waits[int(len(waits) * 0.99)]}


def run_import(url: str, path: Path, batch: int | None) -> dict:
    argv = [sys.executable, __file__, "--child-import", url, str(path)]
    argv += ["--batch", str(batch)] if batch else []
    t0 = time.monotonic()
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.monotonic() - t0
    return result


# -- lookups -----------------------------------------------------------------------------------------------
def lookup_numbers(prefixes: list[str], rows: int, small: bool, rng: random.Random) -> list[str]:
    """Half listed, half not: listed ones from the first `rows` numbers, unlisted from the spare blocks."""
    listed = SMALL if small else rows
    numbers = []
    for i in range(LOOKUPS):
        if i % 2:
            k = rng.randrange(listed)
            numbers.append(f"{prefixes[k // 10_000]}{k % 10_000:04d}")
        else:
            numbers.append(f"{rng.choice(prefixes[-2:])}{rng.randrange(10_000):04d}")
    return numbers


def time_lookups(dbs: dict, numbers: dict, rounds: int = 5) -> dict:
    """Median µs per is_affected call for each database, rounds interleaved so load affects both alike."""
    from ivr.store.affected import is_affected

    per = {name: [] for name in dbs}
    for name, db in dbs.items():  # warm up: connections, caches
        for n in numbers[name][:1000]:
            is_affected(db, SECRET, n)
    chunk = LOOKUPS // rounds
    found = {name: 0 for name in dbs}
    for r in range(rounds):
        for name, db in dbs.items():
            batch = numbers[name][r * chunk:(r + 1) * chunk]
            t0 = time.perf_counter()
            found[name] += sum(is_affected(db, SECRET, n) for n in batch)
            per[name].append((time.perf_counter() - t0) / len(batch) * 1e6)
    return {name: (statistics.median(v), found[name]) for name, v in per.items()}


def pk_probe_us(db, keys: list[bytes]) -> float:
    """The primary-key probe alone, through the driver (no normalising, hashing or SQLAlchemy)."""
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        sql = ("SELECT 1 FROM affected_numbers WHERE number_hash = ?" if db.is_sqlite
               else "SELECT 1 FROM affected_numbers WHERE number_hash = %s")
        cur = raw.cursor()
        for k in keys[:500]:
            cur.execute(sql, (k,)).fetchall()
        t0 = time.perf_counter()
        for k in keys:
            cur.execute(sql, (k,)).fetchall()
        elapsed = time.perf_counter() - t0
        cur.close()
        conn.rollback()
    return elapsed / len(keys) * 1e6


# -- main --------------------------------------------------------------------------------------------------
def bench_one(kind: str, csv_path: Path, small_path: Path, rows: int, prefixes: list[str], batch: int | None,
              workdir: Path) -> dict:
    from ivr.core.phone_numbers import normalize
    from ivr.store.affected import number_hash
    from ivr.store.db import Database

    print(f"\n[{kind}] importing {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in a subprocess ...",
          flush=True)
    big, small = Scratch(kind, workdir, "big"), Scratch(kind, workdir, "small")
    try:
        probe = WriterProbe(big.url)
        try:
            result = run_import(big.url, csv_path, batch)
        finally:
            result_probe = probe.close()
        result.update(result_probe)
        result["db_mb"] = big.size_mb()
        print(f"[{kind}] import: {result['wall_s']:.1f} s wall ({result['elapsed_s']:.1f} s in import_file), "
              f"{result['rows_read'] / result['elapsed_s']:,.0f} rows/s, peak RSS {result['vmhwm_mb']:.0f} "
              f"MB, added {result['rows_added']:,}, bad {result['bad_rows']}; another writer meanwhile: "
              f"longest wait "
              f"{result['probe_max_s']:.2f} s, {result['probe_errors']} failed of "
              f"{result['probe_writes'] + result['probe_errors']}", flush=True)
        small_result = run_import(small.url, small_path, batch)
        assert small_result["rows_added"] == SMALL, small_result
        rng = random.Random(7)
        numbers = {"big": lookup_numbers(prefixes, rows, False, rng),
                   "small": lookup_numbers(prefixes, rows, True, rng)}
        dbs = {"big": Database(big.url), "small": Database(small.url)}
        try:
            timed = time_lookups(dbs, numbers)
            keys = [number_hash(SECRET, normalize(n)) for n in numbers["big"]]
            probe = {name: pk_probe_us(db, keys) for name, db in dbs.items()}
        finally:
            for db in dbs.values():
                db.dispose()
        result.update(lookup_big_us=timed["big"][0], lookup_small_us=timed["small"][0],
                      found_big=timed["big"][1], found_small=timed["small"][1],
                      probe_big_us=probe["big"], probe_small_us=probe["small"])
        result["lookup_ratio"] = result["lookup_big_us"] / result["lookup_small_us"]
        print(f"[{kind}] is_affected: {result['lookup_big_us']:.1f} µs at {rows:,} rows vs "
              f"{result['lookup_small_us']:.1f} µs at {SMALL:,} (ratio {result['lookup_ratio']:.2f}); "
              f"PK probe alone {probe['big']:.1f} vs {probe['small']:.1f} µs", flush=True)
        return result
    finally:
        big.close()
        small.close()


def targets(kind: str, rows: int, r: dict) -> list[str]:
    def line(ok, text):
        return f"- {'MET    ' if ok else 'NOT MET'} {text}"

    return [
        line(r["elapsed_s"] < TARGET_S, f"{rows:,} rows imported in under {TARGET_S / 60:.0f} min: "
                                         f"{r['elapsed_s']:.0f} s"),
        line(r["vmhwm_mb"] < TARGET_RSS_MB, f"importer peak RSS under {TARGET_RSS_MB:.0f} MB: "
                                             f"{r['vmhwm_mb']:.0f} MB"),
        line(r["lookup_ratio"] <= TARGET_LOOKUP_RATIO,
             f"lookup at {rows:,} rows within {TARGET_LOOKUP_RATIO}x of at {SMALL:,}: "
             f"{r['lookup_ratio']:.2f}x"),
        line(r["rows_added"] == rows and r["bad_rows"] == 0,
             f"every row added once: {r['rows_added']:,} added, {r['bad_rows']} bad"),
        line(r["found_big"] == r["found_small"] == LOOKUPS // 2,
             f"lookups right: {r['found_big']:,} and {r['found_small']:,} of {LOOKUPS:,} found "
             "(half are listed)"),
    ]


def section(args, results: dict, csv_mb: float, gen_s: float, sha_s: float, load: tuple) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    lines = [
        f"## Breach-list import: {cpus()}",
        "",
        f"`bench/affected.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, Linux {platform.release()}; "
        f"load average {load[0]} at start, {load[1]} at end (the machine is shared: expect ±30%)",
        f"- commit: {commit} (the working tree may hold uncommitted edits)",
        f"- list: {args.rows:,} distinct valid US numbers, CSV `customer_id,phone` as `+1 212-555-0123`, "
        f"{csv_mb:.0f} MB (generated in {gen_s:.0f} s; its sha256, which keys resuming, takes {sha_s:.1f} s)",
        "- import: `ivr.store.affected.import_file` in its own process (peak RSS = its VmHWM), while another "
        "thread writes a row every 0.25 s through `ivr.store.db` as the hotline does (SQLite: 5 s busy timeout); "
        "lookups: "
        f"{LOOKUPS:,} `is_affected` calls, half listed, half not, median of 5 interleaved rounds; "
        "'PK probe' is the SELECT alone through the driver",
        "",
        "| database | rows | import s | rows/s | peak RSS MB | longest write txn s | other writer: max wait "
        f"s, failed | DB MB | is_affected µs (at {SMALL:,}) | ratio | PK probe µs (at {SMALL:,}) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        rate = r["rows_read"] / r["elapsed_s"]
        lines.append(f"| {kind} | {args.rows:,} | {r['elapsed_s']:.0f} | {rate:,.0f} | "
                     f"{r['vmhwm_mb']:.0f} | {r['longest_write_s']:.1f} | {r['probe_max_s']:.2f}, "
                     f"{r['probe_errors']}/{r['probe_writes'] + r['probe_errors']} | {r['db_mb']:.0f} | "
                     f"{r['lookup_big_us']:.0f} ({r['lookup_small_us']:.0f}) | {r['lookup_ratio']:.2f} | "
                     f"{r['probe_big_us']:.1f} ({r['probe_small_us']:.1f}) |")
    for kind, r in results.items():
        lines += ["", f"{kind}:"] + targets(kind, args.rows, r)
    return "\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--batch", type=int, default=None, help="rows per batch (default: import_file's)")
    parser.add_argument("--keep", action="store_true", help="keep the generated CSV")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--child-import", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        return child_import(*args.child_import, args.batch)
    if args.rows < SMALL:
        parser.error(f"--rows must be at least {SMALL}")

    from ivr.store.affected_import import file_sha256

    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="ivr-bench-affected-"))
    try:
        csv_path, small_path = workdir / "affected.csv", workdir / "small.csv"
        t0 = time.monotonic()
        prefixes = generate(csv_path, args.rows)
        gen_s = time.monotonic() - t0
        with open(csv_path) as src, open(small_path, "w") as dst:
            dst.writelines(line for _, line in zip(range(SMALL + 1), src))
        t0 = time.monotonic()
        file_sha256(csv_path)
        sha_s = time.monotonic() - t0
        csv_mb = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows, {csv_mb:.0f} MB in {gen_s:.1f} s; sha256 {sha_s:.1f} s",
              flush=True)
        kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
        results = {kind: bench_one(kind, csv_path, small_path, args.rows, prefixes, args.batch, workdir)
                   for kind in kinds}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = section(args, results, csv_mb, gen_s, sha_s, (load_start, load_end))
    print("\n" + text)
    if not args.no_results:
        record_section(text)


if __name__ == "__main__":
    main()
