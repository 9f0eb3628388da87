"""Spool segments on local disk: one file per worker process, named for its pid; whose they are, what they hold."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("ivr.spool")

# One encoder for every record: json.dumps with non-default separators builds a new one per call.
encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def now() -> float:
    """When a record was made: Unix time (cheaper in the webhook's path than an ISO string)."""
    return round(time.time(), 6)


def parse_lines(data: bytes, name: str) -> list[dict]:
    """The records in a piece of a spool segment; a line cut short by a kill is skipped, with a warning."""
    records = []
    for raw in data.splitlines():
        try:
            records.append(json.loads(raw))
        except ValueError:
            log.warning("skipping a torn line in %s", name)
    return records


def segment_pid(base: str) -> int:
    try:
        return int(base.split("-")[1])
    except (IndexError, ValueError):
        return 0


def replayable(path: Path) -> bool:
    """Kept segments (.pending) are anyone's to replay; open or half-replayed ones only once their writer died."""
    if path.suffix == ".pending":
        return True
    try:
        pid = int(path.name.split("-")[1]) if path.suffix == ".open" else int(path.suffix.removeprefix(".replay"))
    except (IndexError, ValueError):
        return False
    return not alive(pid)


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
