"""The benches' load generator: a closed loop of pre-built HTTP requests, run in a process of its own.

    python bench/loadgen.py --port P --jobs FILE --concurrency C [--seconds S] [--start K] [--twiml]

FILE is a pickle of jobs, each a list of raw HTTP/1.1 requests (bytes, `Connection: close`) sent one after the
other: one request for a webhook window, all the webhooks of a call for a complete call. C jobs are in flight
at a time; each request goes on a new connection in the same turn of the loop as its connect (as Twilio sends
its request, and as gunicorn's sync workers want it: they close every connection after one answer), and the
next request of a job starts as soon as the answer to the last one is complete. With --seconds, new jobs start
until S seconds have passed and the jobs in flight finish; without it, every job from K on runs once.

It prints one JSON object: requests answered, errors, latency percentiles, elapsed time, and the CPU this
process used, so that a bench can say what the load itself cost. Why not wrk: it is not installed here, and one
generator for both apps, whose own cost is measured, is what a fair comparison needs; a standard-library loop
does 10-20 thousand requests per second per core, several times what the servers under test answer.
"""
from __future__ import annotations

import argparse
import errno
import json
import pickle
import resource
import selectors
import socket
import sys
import time


class _Job:
    """One job in flight: its requests, which one is on the wire, what came back for it."""

    __slots__ = ("requests", "step", "started", "out", "got")

    def __init__(self, requests: list[bytes]):
        self.requests, self.step, self.started, self.out, self.got = requests, 0, 0.0, b"", b""


def _connect(sel: selectors.BaseSelector, port: int, job: _Job) -> bool:
    """Open a non-blocking connection for the job's current request and send what the socket takes now."""
    sock = socket.socket()
    sock.setblocking(False)
    if sock.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
        sock.close()
        return False
    job.started, job.got, job.out = time.perf_counter(), b"", job.requests[job.step]
    try:  # on loopback the connection is up at once: send in this turn, not the next
        job.out = job.out[sock.send(job.out):]
    except BlockingIOError:
        pass
    except OSError:
        sock.close()
        return False
    sel.register(sock, selectors.EVENT_WRITE if job.out else selectors.EVENT_READ, job)
    return True


def _answer_ok(got: bytes, twiml: bool) -> bool:
    """A 2xx/3xx answer (with --twiml: a 200 whose body is an XML document)."""
    if not got.startswith(b"HTTP/1.") or not got[9:12].isdigit():
        return False
    status = int(got[9:12])
    if twiml:
        _head, _, body = got.partition(b"\r\n\r\n")
        return status == 200 and body.startswith(b"<?xml")
    return 200 <= status < 400


def run(port: int, jobs: list[list[bytes]], concurrency: int, seconds: float | None, twiml: bool,
        timeout: float = 15.0) -> dict:
    """Run the jobs (see the module's docstring); the figures as a dict."""
    sel, latencies, errors, jobs_done, next_job = selectors.DefaultSelector(), [], 0, 0, 0
    cpu0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    end = start + seconds if seconds else None

    def take_job() -> _Job | None:
        """The next job to start, or None when the run is over."""
        nonlocal next_job
        if end is None and next_job >= len(jobs) or end is not None and time.perf_counter() >= end:
            return None
        next_job += 1
        return _Job(jobs[(next_job - 1) % len(jobs)])

    def advance(job: _Job) -> bool:
        """Move to the job's next request; False when the job is done."""
        nonlocal jobs_done
        job.step += 1
        if job.step < len(job.requests):
            return True
        jobs_done += 1
        return False

    def launch(job: _Job | None) -> None:
        """Put the job's current request on the wire; past requests that cannot connect (each an error), and
        on to the next job when this one is done, so that the slot stays busy while there is work."""
        nonlocal errors
        while job is not None:
            if _connect(sel, port, job):
                return
            errors += 1
            if not advance(job):
                job = take_job()

    for _ in range(concurrency):
        launch(take_job())
    while sel.get_map():
        for key, events in sel.select(1.0):
            sock, job = key.fileobj, key.data
            finished = False
            try:
                if events & selectors.EVENT_WRITE:
                    job.out = job.out[sock.send(job.out):]
                    if not job.out:
                        sel.modify(sock, selectors.EVENT_READ, job)
                    continue
                chunk = sock.recv(65536)
                if chunk:
                    job.got += chunk
                    continue
                finished = True
            except OSError:
                pass
            sel.unregister(sock)
            sock.close()
            if finished and _answer_ok(job.got, twiml):
                latencies.append((time.perf_counter() - job.started) * 1000)
            else:
                errors += 1
            launch(job if advance(job) else take_job())
        now = time.perf_counter()
        for key in [k for k in sel.get_map().values() if now - k.data.started > timeout]:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            errors += 1
            launch(key.data if advance(key.data) else take_job())
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    return {"answered": len(latencies), "errors": errors, "jobs_started": next_job, "jobs_done": jobs_done,
            "elapsed_s": elapsed, "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": latencies[-1] if latencies else 0,
            "cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jobs", required=True, help="pickle of a list of jobs, each a list of raw requests")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, help="start new jobs for this long (default: run every job once)")
    p.add_argument("--start", type=int, default=0, help="the first job to run")
    p.add_argument("--count", type=int, help="run at most this many jobs")
    p.add_argument("--twiml", action="store_true", help="count only 200 answers with an XML body as answered")
    args = p.parse_args(argv)
    with open(args.jobs, "rb") as fh:
        jobs = pickle.load(fh)
    jobs = jobs[args.start:] + jobs[:args.start]  # a run resumes where the last one stopped
    if args.count:
        jobs = jobs[:args.count]
    json.dump(run(args.port, jobs, args.concurrency, args.seconds, args.twiml), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
