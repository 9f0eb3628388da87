"""`ivr serve`: two gunicorn pools under one process that holds the instance folder.

- The caller pool (`--port`) serves what Twilio calls (/voice, /media) and the probes; the staff pool
  (`--staff-port`) the console, the API, /metrics and the probes. Each is its own gunicorn master with its
  own workers and timeouts (ivr/worker/gunicorn_conf.py), so a staff request, slow or malicious, can never
  hold a worker a caller is waiting for (a bulkhead).
- The instance folder is locked (fcntl.flock on `serve.lock`) before anything in it changes: a second
  `ivr serve` on a live folder is refused and changes nothing. The lock goes to the pools too, so it holds
  while any process of this server lives, even if this one is killed.
- The staff pool runs at a lower CPU priority (STAFF_NICE): the two pools share the host's cores, and a
  staff burst (password hashes, a report) must not slow a caller's answer.
- SIGTERM stops both pools gracefully (each finishes its requests in flight); SIGINT (Ctrl-C) and SIGQUIT
  stop them quickly, as gunicorn does; HUP is passed on.
  A pool that dies after running a while is restarted; one that dies at start (a port in use, a bad
  setting) stops the server with an error.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ivr.serve")
LOCK_FILE = "serve.lock"
STAFF_NICE = 10  # CPU weight about a tenth of the callers' when both want it (CFS: 1.25x per step)
RESTART_AFTER_S = 30.0  # a pool that ran at least this long before dying is restarted; sooner: a setting


def _prepare_pool_master(nice: int) -> None:
    """In a pool's master before exec: its CPU priority (inherited by its workers), and a SIGTERM (a
    graceful stop) when this process dies, even by kill -9, so no pool outlives the server that holds its
    ports (Linux's PR_SET_PDEATHSIG; elsewhere nothing)."""
    if nice:
        os.nice(nice)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class InstanceInUse(RuntimeError):
    """The instance folder belongs to a running server."""


@dataclass(frozen=True)
class Pool:
    name: str  # "callers" or "staff": ivr/worker/gunicorn_conf.py sizes its timeouts by it
    app: str  # the WSGI entry point (ivr/wsgi.py)
    host: str
    port: int
    workers: int
    nice: int = 0  # how far below the caller pool it runs: callers win the CPU when both pools are busy

    def argv(self, extra: tuple[str, ...]) -> list[str]:
        exe = Path(sys.executable).with_name("gunicorn")
        return [str(exe) if exe.exists() else "gunicorn", "--bind", f"{self.host}:{self.port}", "--workers",
                str(self.workers), "--config", "python:ivr.worker.gunicorn_conf", *extra, self.app]


def hold_instance(folder: Path) -> int:
    """Lock the instance folder for this server's life; InstanceInUse (nothing changed) if it is held."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise InstanceInUse(f"{folder} is in use by a running server (pid {holder}); nothing was changed. "
                            f"Stop it first, or give this server its own IVR_INSTANCE_PATH.") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Supervisor:
    """Start the pools, pass signals on, restart a pool that dies, stop them all together."""

    def __init__(self, pools: list[Pool], extra_args: tuple[str, ...], lock_fd: int):
        self.pools, self.extra_args, self.lock_fd = pools, extra_args, lock_fd
        self.running: dict[int, tuple[subprocess.Popen, Pool, float]] = {}  # pid -> (process, pool, started at)
        self.stopping = False
        self.exit_code = 0

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, lambda *_: self._signal_all(signal.SIGHUP))
        for pool in self.pools:  # callers first: the next pool's imports would only slow theirs down
            if not self.stopping:
                self._start(pool)
                self._wait_until_listening(pool)
        while self.running:
            pid, status = os.wait()  # a signal's handler runs, then the wait goes on (PEP 475)
            if pid in self.running:
                self._exited(pid, os.waitstatus_to_exitcode(status))
        return self.exit_code

    def _exited(self, pid: int, code: int) -> None:
        proc, pool, started = self.running.pop(pid)
        proc.returncode = code  # reaped here: subprocess must not wait for it again
        if self.stopping:
            return
        if time.monotonic() - started < RESTART_AFTER_S:
            log.error("the %s pool (port %d) stopped at start (exit %s): stopping the server", pool.name,
                      pool.port, code)
            self.exit_code = code or 1
            self._on_stop(signal.SIGTERM, None)
        else:
            log.error("the %s pool (port %d) died (exit %s): starting it again", pool.name, pool.port, code)
            time.sleep(1.0)
            self._start(pool)

    def _start(self, pool: Pool) -> None:
        env = {**os.environ, "IVR_POOL": pool.name}
        proc = subprocess.Popen(pool.argv(self.extra_args), env=env, pass_fds=(self.lock_fd,),
                                preexec_fn=lambda: _prepare_pool_master(pool.nice))
        self.running[proc.pid] = (proc, pool, time.monotonic())
        if self.stopping:  # the stop came while it was being started: it would have missed the signal
            proc.terminate()

    def _wait_until_listening(self, pool: Pool, timeout: float = 60.0) -> None:
        """Until the pool accepts connections (it binds once its app is loaded), exits, or we stop."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(pool.host, pool.host)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid in self.running:
                self._exited(pid, os.waitstatus_to_exitcode(status))
                return
            try:
                socket.create_connection((host, pool.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)

    def _on_stop(self, sig, _frame) -> None:
        # Both pools at once: each closes its socket, lets its workers finish what they hold, then exits.
        self.stopping = True
        self._signal_all(signal.SIGTERM if sig == signal.SIGTERM else signal.SIGINT)

    def _signal_all(self, sig) -> None:
        for pid in list(self.running):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
