"""gunicorn settings used by `ivr serve`.

- `ivr serve` runs two pools with this file (IVR_POOL, ivr/ops/serving.py): "callers" and "staff", each with
  timeouts sized for its users, and only the caller pool's master starts `ivr background` (one per server).
  Started by hand, gunicorn serves one pool "all" with the old settings.
- The app is loaded in the master before the socket is bound (preload_app): no connection is accepted before
  a worker can answer it, and a worker starts in milliseconds instead of importing the app for seconds.
- The master starts one `ivr background` process (the spool writer and job runner, see ivr/spool/writer.py) when
  the server is ready, restarts it if it dies or hangs (ivr/worker/supervisor.py), and stops it last at exit,
  after the workers, so it writes everything they spooled. It runs in its own session: a Ctrl-C or a signal
  to the server's process group reaches the master, which then stops it in order.
- prometheus-client is told when a worker is gone.
- Logs as IVR_LOG_FORMAT says (ivr/ops/logs.py); the control socket (`gunicornc`) in the instance folder,
  so that two servers on one host never take each other's (gunicorn's default is one per user).

Settings here are defaults: GUNICORN_CMD_ARGS and what follows `--` on `ivr serve`'s command line win.
"""
import os

from ivr.config import from_env
from ivr.store.private_files import PRIVATE_UMASK
from ivr.worker.supervisor import Background

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
# gunicorn switches the process's umask to this (default 0) while it makes a worker's temporary file or its
# control socket; the umask is the whole process's, so a thread of the master writing meanwhile (the
# supervisor's background.json) made a file anyone could read: 0666 in a CI run. Private, like the rest.
umask = PRIVATE_UMASK
proc_name = f"ivr-{POOL}"
control_socket = str(from_env().instance_path / ("gunicorn.ctl" if POOL == "all" else f"gunicorn-{POOL}.ctl"))
# A Unix socket path holds at most 107 bytes: a deeper instance folder gets none (said at start).
_socket_path_too_long = len(os.fsencode(control_socket)) > 107
control_socket_disable = _socket_path_too_long


def when_ready(server):
    global _background
    if _socket_path_too_long:
        server.log.warning("no control socket: %s is longer than a Unix socket path may be", control_socket)
    _close_masters_segment(server)
    if os.environ.get("IVR_EVENT_WRITER") == "process" and POOL != "staff":  # one per server
        _background = Background(server.log)
        _background.start()


def _close_masters_segment(server):
    """The preloaded app opened a spool segment in the master, which answers no request: close it now, so
    the writer finishes and removes it, rather than the master closing it at exit after the writer is gone
    (a segment left in the spool). Each worker opens its own (post_fork)."""
    hotline = getattr(getattr(server.app, "callable", None), "extensions", {}).get("ivr")
    if hotline is not None:
        hotline.recorder.close()


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

        from ivr.ops.metrics import count_held_as_lost

        lost = count_held_as_lost(worker.pid)  # a worker killed with records held in memory (a full spool disk)
        if lost:
            server.log.error("worker %s died holding %d call records the spool's disk refused: LOST", worker.pid, lost)
        multiprocess.mark_process_dead(worker.pid)
