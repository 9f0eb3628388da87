"""gunicorn settings used by `ivr serve`.

- `ivr serve` runs two pools with this file (IVR_POOL, ivr/ops/serving.py): "callers" and "staff", each with
  timeouts sized for its users, and only the caller pool's master starts `ivr background` (one per server).
  Started by hand, gunicorn serves one pool "all" with the old settings.
- The app is loaded in the master before the socket is bound (preload_app): no connection is accepted before
  a worker can answer it, and a worker starts in milliseconds instead of importing the app for seconds.
- The master starts one `ivr background` process (the spool writer and job runner, see ivr/spool/writer.py) when
  the server is ready, restarts it if it dies, and stops it last at exit, after the workers, so it writes
  everything they spooled. It runs in its own session: a Ctrl-C or a signal to the server's process group
  reaches the master, which then stops it in order.
- prometheus-client is told when a worker is gone.
- Logs as IVR_LOG_FORMAT says (ivr/ops/logs.py); the control socket (`gunicornc`) in the instance folder,
  so that two servers on one host never take each other's (gunicorn's default is one per user).

Settings here are defaults: GUNICORN_CMD_ARGS and what follows `--` on `ivr serve`'s command line win.
"""
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ivr.config import from_env

_background = None

POOL = os.environ.get("IVR_POOL", "all")
# Callers: Twilio waits 15 s for an answer, connecting included, and a webhook answers in milliseconds;
# a worker stuck for 10 s is killed and replaced, and one still answering at a stop gets 10 s to finish.
# Staff: an upload is converted before the answer (nginx gives the console 120 s).
_TIMEOUTS = {"callers": (10, 10), "staff": (120, 30), "all": (30, 30)}  # (timeout, graceful_timeout) in s

logger_class = "ivr.ops.logs.GunicornLogger"
worker_class = "ivr.worker.draining.DrainingSyncWorker"
accesslog = "-"
timeout, graceful_timeout = _TIMEOUTS.get(POOL, _TIMEOUTS["all"])
preload_app = True
proc_name = f"ivr-{POOL}"
control_socket = str(from_env().instance_path / ("gunicorn.ctl" if POOL == "all" else f"gunicorn-{POOL}.ctl"))
# A Unix socket path holds at most 107 bytes: a deeper instance folder gets none (said at start).
_socket_path_too_long = len(os.fsencode(control_socket)) > 107
control_socket_disable = _socket_path_too_long


class Background:
    """Keep one `ivr background` running beside the server (a thread of the master that waits on it).

    Started with posix_spawn, not subprocess.Popen: the master forks workers at any moment, and a worker
    forked while Popen waits for its child's exec inherits Popen's error pipe and holds Popen blocked for
    the worker's whole life (seen in tests: no restart until the server stopped). posix_spawn uses no pipe.
    """

    RESTART_PAUSE_S = 1.0

    def __init__(self, log):
        self.log = log
        self.pid = None
        self.stopping = False
        self.starts = 0
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
            code = _wait(self.pid)
            if self.stopping:
                return
            self.log.error("ivr background (pid %s) exited (%s); restarting it; the spool keeps every event",
                           self.pid, code)
            time.sleep(self.RESTART_PAUSE_S)

    def stop(self, timeout=20.0):
        self.stopping = True
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)  # it writes what is left, then exits
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive() or _gone(pid):
                return
            time.sleep(0.05)
        self.log.error("ivr background did not stop in %.0f s: killed (the spool keeps the events)", timeout)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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


def _wait(pid: int):
    """Wait for our child; the arbiter's SIGCHLD handler may reap it first (then its status is unknown)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "reaped by the master"
    return os.waitstatus_to_exitcode(status)


def _gone(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # reaped already (by the supervising thread or the arbiter)
    return done == pid


def when_ready(server):
    global _background
    if _socket_path_too_long:
        server.log.warning("no control socket: %s is longer than a Unix socket path may be", control_socket)
    if os.environ.get("IVR_EVENT_WRITER") == "process" and POOL != "staff":  # one per server
        _background = Background(server.log)
        _background.start()


def on_exit(server):
    if _background is not None:
        _background.stop()


def post_fork(server, worker):
    """A preloaded app's database connections belong to the master: the worker opens its own (SQLAlchemy:
    dispose(close=False) leaves the parent's in place for it)."""
    app = getattr(server.app, "callable", None)
    hotline = getattr(app, "extensions", {}).get("ivr")
    if hotline is not None:
        hotline.db.engine.dispose(close=False)
        open_spool = getattr(hotline.recorder, "open_spool", None)  # this worker's segment, its disk reserved
        if open_spool is not None:
            open_spool()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
