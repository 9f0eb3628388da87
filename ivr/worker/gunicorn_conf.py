"""gunicorn settings used by `ivr serve`.

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
from ivr.worker.supervisor import Background

_background = None

logger_class = "ivr.ops.logs.GunicornLogger"
accesslog = "-"
timeout = 30
control_socket = str(from_env().instance_path / "gunicorn.ctl")
# A Unix socket path holds at most 107 bytes: a deeper instance folder gets none (said at start).
_socket_path_too_long = len(os.fsencode(control_socket)) > 107
control_socket_disable = _socket_path_too_long


def when_ready(server):
    global _background
    if _socket_path_too_long:
        server.log.warning("no control socket: %s is longer than a Unix socket path may be", control_socket)
    if os.environ.get("IVR_EVENT_WRITER") == "process":
        _background = Background(server.log)
        _background.start()


def on_exit(server):
    if _background is not None:
        _background.stop()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        from ivr.ops.metrics import count_held_as_lost

        lost = count_held_as_lost(worker.pid)  # a worker killed with records held in memory (a full spool disk)
        if lost:
            server.log.error("worker %s died holding %d call records the spool's disk refused: LOST", worker.pid, lost)
        multiprocess.mark_process_dead(worker.pid)
