"""The master's keeper of `ivr background`: starts it when the server is ready, restarts it when it exits or
hangs, stops it last at exit. Used by gunicorn's master (ivr/worker/gunicorn_conf.py).

"Hangs" is read from the writer's heartbeat (ivr/spool/writer_status.py), which a thread of its own touches
every second: a process stopped (SIGSTOP), frozen or starved for longer than HUNG_AFTER_S is killed and
started again. A writer waiting for a database lock keeps beating, so it is left alone: its batches are
idempotent and it retries them itself. Each start and restart, and why, is kept in `background.json` in the
instance folder: /healthz and /metrics (`ivr_background_restarts_total`) read it from there.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from ivr.spool.writer_status import heartbeat_age
from ivr.store.files import write_atomically

RECORD = "background.json"
HUNG_AFTER_S = 10.0  # no heartbeat for this long: stopped or hung (a healthy writer beats every second)
START_GRACE_S = 60.0  # a new process must beat within this (imports take 5-20 s on a busy 2-core machine)
WATCH_EVERY_S = 0.5


class Background:
    """Keep one `ivr background` running beside the server (a thread of the master that watches it).

    Started with posix_spawn, not subprocess.Popen: the master forks workers at any moment, and a worker
    forked while Popen waits for its child's exec inherits Popen's error pipe and holds Popen blocked for
    the worker's whole life (seen in tests: no restart until the server stopped). posix_spawn uses no pipe.
    """

    RESTART_PAUSE_S = 1.0

    def __init__(self, log, instance_path: Path | None = None, spool_dir: Path | None = None):
        if instance_path is None or spool_dir is None:
            from ivr.config import from_env

            cfg = from_env()
            instance_path, spool_dir = instance_path or cfg.instance_path, spool_dir or cfg.spool_dir
        self.log = log
        self.instance_path, self.spool_dir = Path(instance_path), Path(spool_dir)
        self.pid = None
        self.stopping = False
        self.starts = 0
        self.restarts = 0
        self.last_restart: dict | None = None
        self.thread = threading.Thread(target=self._supervise, name="ivr-background", daemon=True)

    def start(self):
        self.thread.start()

    def _spawn(self) -> int:
        exe = Path(sys.executable).with_name("ivr")
        argv = [str(exe), "background"] if exe.exists() else [sys.executable, "-m", "ivr.ops.cli", "background"]
        # Only stdin/stdout/stderr go across: not the listening socket or anything else of the master's.
        close = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _open_fds() if fd > 2 and _inheritable(fd)]
        return os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=close, setsid=True,
                              setsigdef=(signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                         signal.SIGCHLD))

    def _supervise(self):
        while not self.stopping:
            try:
                self.pid = self._spawn()
                self.starts += 1
            except OSError as exc:
                self.log.error("cannot start ivr background: %s", exc)
                time.sleep(self.RESTART_PAUSE_S * 5)
                continue
            self.log.info("ivr background started (pid %s)", self.pid)
            self._save()
            why = self._watch(self.pid, time.time())
            if self.stopping:
                return
            self.restarts += 1
            self.last_restart = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "pid": self.pid,
                                 "reason": why}
            self.log.error("ivr background (pid %s) %s; restarting it (restart %d); the spool keeps every event",
                           self.pid, why, self.restarts)
            self._save()
            time.sleep(self.RESTART_PAUSE_S)

    def _watch(self, pid: int, started: float) -> str:
        """Until the process exits or hangs; returns what happened, in words."""
        while True:
            code = _exited(pid)
            if code is not None:
                return f"exited ({code})"
            if self.stopping:  # it drains the spool, beating no more: wait for its exit (stop() bounds it)
                time.sleep(WATCH_EVERY_S / 10)
                continue
            age = heartbeat_age(self.spool_dir)
            beat_since_start = age is not None and time.time() - age >= started
            silent = age if beat_since_start else time.time() - started
            limit = HUNG_AFTER_S if beat_since_start else START_GRACE_S
            if silent > limit:
                _kill(pid)
                return (f"gave no sign of life for {silent:.0f} s (stopped or hung): killed"
                        if beat_since_start else f"did not start within {silent:.0f} s: killed")
            time.sleep(WATCH_EVERY_S)

    def _save(self) -> None:
        record = {"pid": self.pid, "starts": self.starts, "restarts": self.restarts,
                  "last_restart": self.last_restart}
        try:
            write_atomically(self.instance_path / RECORD, json.dumps(record))
        except OSError as exc:
            self.log.warning("could not record the background's restarts in %s: %s", RECORD, exc)

    def stop(self, timeout=20.0):
        self.stopping = True
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)  # it writes what is left, then exits
            os.kill(pid, signal.SIGCONT)  # ...also if it was stopped
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive() or _gone(pid):
                return
            time.sleep(0.05)
        self.log.error("ivr background did not stop in %.0f s: killed (the spool keeps the events)", timeout)
        _kill(pid, wait=False)


def read_record(instance_path: Path) -> dict | None:
    """What the supervisor last recorded (for /healthz and /metrics), or None before its first start."""
    try:
        return json.loads((Path(instance_path) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def _open_fds():
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return []


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:
        return False


def _exited(pid: int):
    """The exit code of our child if it has ended, else None (the arbiter's SIGCHLD handler may reap it
    first: then its status is unknown)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "reaped by the master"
    return os.waitstatus_to_exitcode(status) if done == pid else None


def _kill(pid: int, wait: bool = True) -> None:
    try:
        os.kill(pid, signal.SIGKILL)  # also ends a stopped process
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10.0
    while wait and time.monotonic() < deadline and _exited(pid) is None:
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    return _exited(pid) is not None
