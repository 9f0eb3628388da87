"""gunicorn's sync worker, which on a graceful stop first answers the connections already waiting for it.

At a SIGTERM gunicorn's master closes its copy of the listening socket and tells the workers to stop; a
sync worker finishes the request it holds and exits. Connections the kernel had already accepted into the
socket's queue, requests nginx has sent and counts as delivered, were then reset with the last worker's
copy of the socket: a 502 that nginx does not retry for a POST (measured: one per graceful restart). This
worker drains that queue before it exits, so every connection is either answered or refused outright
(refused: nginx retries it on the next server, a POST too, since it never reached one).
"""
from __future__ import annotations

import errno
import time

from gunicorn.workers.sync import SyncWorker

DRAIN_S = 2.0  # at most this long: a steady stream must not keep a stopping worker alive


class DrainingSyncWorker(SyncWorker):
    def run(self):
        super().run()
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and self._answer_one_waiting():
            self.notify()

    def _answer_one_waiting(self) -> bool:
        for listener in self.sockets:
            try:
                self.accept(listener)  # non-blocking: the queue is empty when it raises EAGAIN
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    return False
        return False
