"""Local files the hotline rewrites while others read them: the rules, the last-good snapshot, cached audio."""
from __future__ import annotations

import os
from pathlib import Path


def cached_media(cache_dir: Path, sha256: str) -> Path:
    """Where this server keeps the phone-ready audio with this checksum, served as /media/<sha256>.wav."""
    return cache_dir / f"{sha256}.wav"


def write_atomically(path: Path, data: bytes | str, *, durable: bool = False) -> None:
    """Write aside, then rename over: a reader meanwhile sees the old file or the new one, whole.

    The new file keeps the old one's permissions. `durable`: on disk before the rename (what an admin saved).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777)
    except OSError:
        pass
    os.replace(tmp, path)
