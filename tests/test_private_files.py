"""The instance folder is the hotline user's alone, as `make run` leaves it: `ivr setup` and `ivr serve`
started from a shell whose umask lets others read (022), the folder 0700 and every file in it 0600."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import AUTH_TOKEN, IVR, server_env
from helpers import wait_for
from ivr.store.private_files import create_private, make_private
from ivr.tools.simulate import HttpTransport, SimulatedCall


def readable_by_others(folder: Path) -> list[str]:
    """Every path in the folder (and the folder) whose mode gives group or others anything."""
    return [f"{p.relative_to(folder.parent)} {stat.S_IMODE(p.stat().st_mode):o}" for p in (folder, *folder.rglob("*"))
            if not p.is_symlink() and p.stat().st_mode & 0o077]


@pytest.fixture
def shell_umask():
    """The umask of a usual login shell, as `make run` inherits it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_make_private_tightens_what_an_older_version_left_readable(tmp_path, shell_umask):
    instance = tmp_path / "instance"
    (instance / "spool").mkdir(parents=True)
    (instance / "spool" / "segment").write_text("+12025550123")
    (instance / "hotline.db").write_text("")
    assert len(readable_by_others(instance)) == 4
    assert len(make_private(instance)) == 4
    assert readable_by_others(instance) == []
    create_private(tmp_path / "fresh.db")  # 0600 even under umask 022
    assert stat.S_IMODE((tmp_path / "fresh.db").stat().st_mode) == 0o600


@pytest.mark.slow
def test_ivr_setup_and_ivr_serve_keep_every_instance_file_private(config, server, shell_umask):
    if not config.db_url.startswith("sqlite"):
        pytest.skip("the database file is the point: this test brings its own SQLite file")
    instance = config.instance_path
    instance.chmod(0o755)  # as an older version or `mkdir` left it
    (instance / "last_good_snapshot.json").write_text("{}")
    database = f"sqlite:///{instance / 'hotline.db'}"
    env = server_env(config, DATABASE_URL=database, IVR_TTS_ENGINES="espeak",
                     IVR_MEDIA_CACHE=str(config.media_cache_dir))
    setup = subprocess.run([str(IVR), "setup", "--no-audio"], env=env, capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    assert "instance folder made private" in setup.stdout
    assert readable_by_others(instance) == []

    srv = server(DATABASE_URL=database)
    call = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["1", "9"]).run()
    assert call.said()
    # The call's records went through the spool into the database: its WAL, shm and spool files exist now.
    wait_for(lambda: (instance / "hotline.db-wal").exists() and (instance / "hotline.db-shm").exists())
    made = {p.name for p in instance.rglob("*")}
    assert {"hotline.db", "hotline.db-wal", "hotline.db-shm", "spool", "last_good_snapshot.json"} <= made, made
    assert readable_by_others(instance) == []
