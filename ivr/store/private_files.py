"""The instance folder is private: the database and its -wal/-shm, the data key, the development token, the
secret key, snapshots, the spool and the sign-in limits are for the hotline's own user alone.

Every `ivr` command and every gunicorn worker runs with umask 077, so whatever they create (including what
SQLite and libraries create for us) is 0600, a folder 0700; `ivr setup` and `ivr serve` also take away what
an older version or another umask left readable by others in the folder.
"""
from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077  # group and others get nothing
FILE_MODE, FOLDER_MODE = 0o600, 0o700


def private_umask() -> None:
    """From here on this process creates files 0600 and folders 0700."""
    os.umask(PRIVATE_UMASK)


def make_private(instance_path: Path) -> list[Path]:
    """The instance folder 0700 and everything in it 0600 (folders 0700); returns what was tightened."""
    instance_path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    tightened = []
    for path in (instance_path, *instance_path.rglob("*")):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # removed meanwhile (a spool segment, a temporary file)
        if path.is_symlink() or st.st_uid != os.geteuid():
            continue  # not ours to change: a link's target lives elsewhere
        want = FOLDER_MODE if path.is_dir() else FILE_MODE
        if st.st_mode & 0o777 & ~want:
            os.chmod(path, st.st_mode & want)
            tightened.append(path)
    return tightened


def create_private(path: Path) -> None:
    """Make an empty file 0600 if there is none (SQLite then makes its -wal and -shm with the same mode).

    An existing file is never opened: closing any descriptor of a file drops every POSIX lock this process
    holds on it, so opening a database file that this process's SQLite connections use would silently
    release their locks (seen: "disk I/O error" and a damaged database after a killed writer)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
