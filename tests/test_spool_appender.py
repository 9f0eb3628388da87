"""A web worker's spool segment on a full disk (as root: a tmpfs of 1 MB, filled): the reserve takes records,
then memory up to its bound, then records are counted lost; when space returns the held ones follow, in
order, and no line is torn."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from helpers import wait_for
from ivr.spool.appender import SegmentAppender, SpoolObserver


class Counted(SpoolObserver):
    """What the appender reports, kept for the test to read."""

    def __init__(self):
        self.lost_records, self.held_now = 0, {}

    def lost(self, records, reason, record_type):
        self.lost_records += records

    def held(self, records, nbytes, oldest_at):
        self.held_now = dict(records)


@pytest.fixture
def full_disk(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full filesystem needs root to mount a small tmpfs")
    folder = tmp_path / "spool"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_reserve_then_memory_then_counted_loss_and_the_held_records_follow_in_order(full_disk):
    lock, seen = threading.Lock(), Counted()
    appender = SegmentAppender(full_disk, lock, reserve_bytes=8192, memory_bytes=4000, observer=seen)
    appender.DRAIN_EVERY_S = 0.05
    appender.open()  # reserves its 8 KB before the disk fills
    subprocess.run(["dd", "if=/dev/zero", f"of={full_disk / 'filler'}", "bs=4k"], capture_output=True)
    assert shutil.disk_usage(full_disk).free < 4096
    lines = [(json.dumps({"type": "event", "i": f"{i:04d}", "pad": "x" * 60}) + "\n").encode() for i in range(300)]
    with lock:
        for line in lines:
            appender.append(line, time.time(), "event")
    [segment] = list(full_disk.glob("events-*.open"))
    on_disk = segment.read_bytes().splitlines()
    held = seen.held_now["event"]
    assert len(on_disk) >= 8192 // len(lines[0]) - 1, "the reserve must take records on a full disk"
    assert held == 4000 // len(lines[0]), "then memory, up to its bound"
    assert seen.lost_records == len(lines) - len(on_disk) - held > 0, "every other record counted lost"
    (full_disk / "filler").unlink()  # space returns
    assert wait_for(lambda: seen.held_now["event"] == 0, timeout=5)
    kept = segment.read_bytes().splitlines()
    assert [int(json.loads(raw)["i"]) for raw in kept] == list(range(len(on_disk) + held)), "in order, none torn"
    appender.close()
