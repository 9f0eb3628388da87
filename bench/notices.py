"""Benchmark: planning a notice campaign of a million recipients, and the sender's speed and rate.

    .venv/bin/python bench/notices.py [--rows N] [--db sqlite|postgresql] [--send N] [--hold-seconds S]
                                      [--skip-plan] [--skip-send] [--no-results]

1. Planning: a CSV of N distinct valid US numbers (default 1,000,000; number,language), planned into a fresh
   migrated database by `ivr.store.notice_plan.plan_campaign` in a subprocess: wall time and peak RSS (VmHWM)
   of that process alone. Targets: under 60 s and 300 MB.
2. Sending at full speed: `--send` recipients (default 20,000) at the highest configured rate (1,000/s)
   through a `NoticeSender` (as `ivr background` runs it) against the local stand-in for Twilio's Messages
   API (tests/stubs.py) in another process. Target: at least 500 texts per second.
3. Holding a rate: 10/s for `--hold-seconds` (default 15; the issue asks for a minute: --hold-seconds 60),
   counted where the texts arrive (the stand-in). Target: within 5 % of 10/s.
Appends the figures to bench/RESULTS.md under "Notices".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
from affected import Scratch, number_blocks  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
SECRET = "bench-secret"
ACCOUNT = "AC" + "0" * 32
SENDER = "+12025550100"
PLAN_TARGET_S, PLAN_TARGET_MB, SEND_TARGET, HOLD_RATE, HOLD_TOLERANCE = 60.0, 300.0, 500.0, 10, 0.05


def generate(path: Path, rows: int) -> None:
    blocks = number_blocks(-(-rows // 10_000))
    with open(path, "w", buffering=1 << 20) as fh:
        fh.write("number,language\n")
        done = 0
        for area, exchange in blocks:
            n = min(10_000, rows - done)
            if n <= 0:
                break
            fh.write("".join([f"+1{area}{exchange}{i:04d},{'es' if i % 5 == 0 else ''}\n" for i in range(n)]))
            done += n


def spec(rate: float, quiet=None):
    from ivr.store.notice_plan import CampaignSpec

    return CampaignSpec(name="bench", statements={"en": "We lost some of your data. Call {hotline}.",
                                                  "es": "Perdimos algunos de sus datos."},
                        default_language="en", rate_per_second=rate, quiet_hours=quiet, sender=SENDER,
                        hotline_number="+12025550199", notice_url="https://example.com/notice")


def child_plan(url: str, path: str, instance: str) -> None:
    """In a subprocess: plan, then print the report and this process's peak RSS as JSON."""
    from ivr.store import sealed
    from ivr.store.db import Database
    from ivr.store.notice_plan import plan_campaign

    sealed.ensure_key_file(Path(instance))
    sealed.use(url, Path(instance))
    db = Database(url)
    t0 = time.monotonic()
    report = plan_campaign(db, path, spec(10), secret_key=SECRET, actor="bench")
    elapsed = time.monotonic() - t0
    hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"elapsed_s": elapsed, "recipients": report.recipients, "bad_rows": report.bad_rows,
                      "peak_rss_mb": hwm_kb / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}))


def child_stub() -> None:
    """In a subprocess: the Twilio stand-in; prints its origin, then on each line read answers the count
    and arrival times (monotonic) of the messages created so far."""
    from stubs import TwilioMessages

    stub = TwilioMessages(ACCOUNT)
    print(stub.origin, flush=True)
    for _ in sys.stdin:
        print(json.dumps({"count": len(stub.created), "when": stub.when[-200_000:]}), flush=True)


class Stub:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--child-stub"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.origin = self.proc.stdout.readline().strip()

    def state(self) -> dict:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.kill()
        self.proc.wait()


def plan_bench(kind: str, rows: int, workdir: Path) -> dict:
    csv_path = workdir / "list.csv"
    t0 = time.monotonic()
    generate(csv_path, rows)
    print(f"  generated {rows:,} rows in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    scratch = Scratch(kind, workdir, "notices")
    try:
        out = subprocess.run([sys.executable, __file__, "--child-plan", scratch.url, str(csv_path), str(workdir)],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["db_mb"] = scratch.size_mb()
    finally:
        scratch.close()
        csv_path.unlink()
    return result


def send_bench(kind: str, recipients: int, rate: float, workdir: Path, hold_seconds: float | None) -> dict:
    """Plan `recipients`, send at `rate` through a NoticeSender against the stand-in; sends per second, and
    the arrival times at the stand-in."""
    from ivr.config import Config
    from ivr.hotline import Hotline
    from ivr.store import sealed
    from ivr.store.notice_plan import plan_campaign
    from ivr.store.notices import campaign_figures, change_state
    from ivr.worker.notices import NoticeSender

    stub = Stub()
    scratch = Scratch(kind, workdir, f"send{int(rate)}")
    instance = workdir / f"instance{int(rate)}"
    instance.mkdir(exist_ok=True)
    sealed.ensure_key_file(instance)
    cfg = Config(env="test", instance_path=instance, database_url=scratch.url, twilio_auth_token="t" * 32,
                 twilio_account_sid=ACCOUNT, twilio_api_url=stub.origin, sms_from=SENDER,
                 public_url="http://127.0.0.1:9", secret_key=SECRET, notice_settle_seconds=0, jobs_in_app=False,
                 notice_threads=16)
    hotline = Hotline.build(cfg, background=True)
    csv_path = workdir / "send.csv"
    generate(csv_path, recipients)
    cid = plan_campaign(hotline.db, csv_path, spec(rate), secret_key=SECRET, actor="bench").campaign_id
    stop = threading.Event()
    sender = threading.Thread(target=NoticeSender(hotline, stop).run, daemon=True)
    try:
        change_state(hotline.db, cid, "send", actor="bench")
        t0 = time.monotonic()
        sender.start()
        target = recipients if hold_seconds is None else None
        while True:
            time.sleep(0.5)
            state = stub.state()
            if target is not None and state["count"] >= target:
                break
            if hold_seconds is not None and state["when"] and state["when"][-1] - state["when"][0] >= hold_seconds:
                break
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"only {state['count']} sent in 600 s")
        elapsed = time.monotonic() - t0
        when = state["when"]
        result = {"recipients": recipients, "sent": state["count"], "elapsed_s": elapsed,
                  "rate_configured": rate, "figures": campaign_figures(hotline.db, cid)["counts"]}
        if when:
            span = when[-1] - when[0]
            result["arrival_rate"] = (len(when) - 1) / span if span else 0.0
            if hold_seconds is not None:
                first = when[0]
                in_window = sum(1 for t in when if first <= t < first + hold_seconds)
                result["hold_seconds"] = hold_seconds
                result["hold_rate"] = in_window / hold_seconds
                result["busiest_second"] = max(sum(1 for t in when[i:i + 3 * int(rate)] if t - when[i] < 1.0)
                                               for i in range(len(when)))
    finally:
        stop.set()
        sender.join(30)
        hotline.close()
        scratch.close()
        stub.close()
        csv_path.unlink(missing_ok=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--send", type=int, default=20_000)
    ap.add_argument("--hold-seconds", type=float, default=15.0)
    ap.add_argument("--skip-plan", action="store_true")
    ap.add_argument("--skip-send", action="store_true")
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    lines = [f"## Notices (bench/notices.py) {time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}", "",
             f"{platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start, "
             f"{args.db}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_plan:
            plan = plan_bench(args.db, args.rows, workdir)
            met = plan["elapsed_s"] < PLAN_TARGET_S and plan["peak_rss_mb"] < PLAN_TARGET_MB
            lines.append(f"- planning {plan['recipients']:,} recipients: {plan['elapsed_s']:.1f} s "
                         f"({plan['recipients'] / plan['elapsed_s']:,.0f} rows/s; CPU {plan['cpu_s']:.1f} s), peak RSS "
                         f"{plan['peak_rss_mb']:.0f} MB, database {plan['db_mb']:.0f} MB "
                         f"(targets < {PLAN_TARGET_S:.0f} s, < {PLAN_TARGET_MB:.0f} MB): {'MET' if met else 'NOT MET'}")
        if not args.skip_send:
            fast = send_bench(args.db, args.send, 1000, workdir, None)
            rate = fast["sent"] / fast["elapsed_s"]
            lines.append(f"- sending {fast['sent']:,} at a configured 1,000/s: {rate:,.0f} texts/s from `send` to "
                         f"the last one at the stand-in ({fast['arrival_rate']:,.0f}/s between the first and "
                         f"the last) (target >= {SEND_TARGET:.0f}/s): {'MET' if rate >= SEND_TARGET else 'NOT MET'}")
            hold = send_bench(args.db, int(HOLD_RATE * (args.hold_seconds + 10)), HOLD_RATE, workdir,
                              args.hold_seconds)
            off = abs(hold["hold_rate"] - HOLD_RATE) / HOLD_RATE
            lines.append(f"- holding {HOLD_RATE}/s over {args.hold_seconds:.0f} s: {hold['hold_rate']:.2f}/s "
                         f"({off:.1%} off; the busiest second held {hold['busiest_second']}) "
                         f"(target within {HOLD_TOLERANCE:.0%}): {'MET' if off <= HOLD_TOLERANCE else 'NOT MET'}")
    print("\n".join(lines))
    if not args.no_results:
        with open(RESULTS, "a") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-plan":
        child_plan(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-stub":
        child_stub()
    else:
        main()
