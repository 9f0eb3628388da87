"""Shared fixtures: a migrated database on SQLite and, when DATABASE_URL names one, PostgreSQL; an app; calls."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ivr.config import PROJECT_ROOT, Config
from ivr.store.db import Database, normalize_url
from ivr.store.migrate import upgrade
from ivr.store.models import Base
from ivr.store import sealed
from ivr.store.sealed import ensure_key_file
from ivr.store.seed import ensure_default_content

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PG_URL = os.environ.get("DATABASE_URL", "") if os.environ.get("DATABASE_URL", "").startswith("postgres") else ""
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
IVR = Path(sys.executable).with_name("ivr")
# ivr/core's caches that are plain dicts; every functools cache there is found by itself.
CORE_DICT_CACHES = {"ivr.core.phone_numbers": ["_COUNTRIES"]}


@pytest.fixture(autouse=True, scope="session")
def core_caches_start_empty():
    """Every test session starts with ivr/core's caches empty, as a fresh interpreter has them. For `make
    mutate`: mutmut runs each mutant's tests in a process forked from one that has just run the whole suite,
    so a cache there is full, and a mutant behind a cache hit (the country tables of phone_numbers, the
    normalizer of each region) would run only for inputs no earlier test had used (docs/testing.md)."""
    import importlib
    import pkgutil

    import ivr.core

    for info in pkgutil.iter_modules(ivr.core.__path__):
        module = importlib.import_module(f"ivr.core.{info.name}")
        for value in list(vars(module).values()):
            if getattr(value, "__module__", None) == module.__name__ and callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
        for name in CORE_DICT_CACHES.get(module.__name__, []):
            getattr(module, name).clear()


def _pg_database(admin_url: str):
    """A fresh PostgreSQL database for this test run on the server DATABASE_URL names; dropped afterwards."""
    admin = make_url(normalize_url(admin_url))
    name = f"ivr_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False), lambda: _drop_pg(admin, name)


def _drop_pg(admin, name):
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request, tmp_path_factory):
    """A migrated database URL, once per backend for the whole run."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hotline.db'}"
        cleanup = None
    else:
        url, cleanup = _pg_database(PG_URL)
    db = Database(url)
    upgrade(db)
    db.dispose()
    yield url
    if cleanup:
        cleanup()


def reset_database(url: str) -> None:
    """Empty every table, put the hotline back in message mode, publish the default announcement."""
    db = Database(url)
    with db.write() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "hotline_state":
                conn.execute(table.delete())
        conn.execute(text("UPDATE hotline_state SET mode = 'message', content_version = content_version + 1"))
    ensure_default_content(db)
    db.dispose()


def always_open(text: str) -> str:
    """The shipped rules with every queue open around the clock: call tests must not depend on the clock."""
    return re.sub(r"\n    hours:\n(?:      .*\n)+", "\n", text)


@pytest.fixture
def rules_file(tmp_path) -> Path:
    """A private copy of the shipped rules (queues always open), so a test may change it."""
    path = tmp_path / "routing_rules.yaml"
    path.write_text(always_open((PROJECT_ROOT / "routing_rules.yaml").read_text()))
    return path


@pytest.fixture
def config(db_url, tmp_path, rules_file) -> Config:
    from ivr.store import queues

    reset_database(db_url)
    for cache in (queues._stats_cache, queues._wait_cache):  # per-process caches keyed by the database URL
        cache._at.clear()
    ensure_key_file(tmp_path / "instance")  # the data key `ivr setup` makes (ivr/store/sealed.py), and this
    sealed.use(db_url, tmp_path / "instance")  # process's store calls on its own Database(db_url) use it
    return Config(env="test", instance_path=tmp_path / "instance", database_url=db_url,
                  twilio_auth_token=AUTH_TOKEN, rules_path=rules_file, secret_key="test-secret",
                  event_flush_interval=0.02, media_cache_dir=tmp_path / "media-cache", jobs_in_app=False,
                  tts_engines=("espeak",))


@pytest.fixture
def app(config):
    from ivr.app import create_app

    app = create_app(config)
    yield app
    app.extensions["ivr"].close()


@pytest.fixture
def hotline(app):
    return app.extensions["ivr"]


@pytest.fixture
def place_call(app):
    """Place a simulated call in-process: place_call(keys=[...]) -> CallResult (events flushed)."""
    from ivr.tools.simulate import FlaskTransport, SimulatedCall

    def _place(keys=(), **kw):
        result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=list(keys), **kw).run()
        app.extensions["ivr"].recorder.flush()
        return result

    return _place


# -- real servers ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `ivr serve` on free ports: `url` is the caller pool (/voice, /media, probes), `staff_url` the
    staff pool (console, API, /metrics, probes)."""

    def __init__(self, env: dict, workers: int = 2, port: int | None = None, gunicorn_args=(),
                 staff_port: int | None = None, staff_workers: int = 1):
        self.port = port or free_port()
        self.staff_port = staff_port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.staff_url = f"http://127.0.0.1:{self.staff_port}"
        self.log_path = Path(env["IVR_INSTANCE_PATH"]) / f"server-{self.port}.log"
        self.log = open(self.log_path, "ab")  # a restart on the same port adds to it
        # `ivr serve` is what `make run` runs: it prints the banner, then starts both pools.
        self.proc = subprocess.Popen(
            [str(IVR), "serve", "--port", str(self.port), "--staff-port", str(self.staff_port), "--workers",
             str(workers), "--staff-workers", str(staff_workers), "--", *gunicorn_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        )
        try:
            self._wait()
        except Exception:
            self.stop()
            raise

    def _wait(self, timeout: float = 30.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        for url in (self.url, self.staff_url):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
                try:
                    if requests.get(url + "/healthz", timeout=5).status_code in (200, 503):
                        break
                except requests.RequestException:
                    time.sleep(0.1)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ivr serve did not start: {self.log_path.read_text()[-2000:]}")

    def caller_master(self) -> int:
        """The caller pool's gunicorn master (its workers and `ivr background` are its children)."""
        pgrep = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        for pid in map(int, pgrep.stdout.split()):
            try:
                if b"ivr.wsgi:callers" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        raise RuntimeError("ivr serve runs no caller pool")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def server_env(config: Config, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}
    env.update(IVR_ENV="production", TWILIO_AUTH_TOKEN=config.twilio_auth_token, DATABASE_URL=config.db_url,
               IVR_INSTANCE_PATH=str(config.instance_path), IVR_RULES=str(config.rules_path),
               IVR_SECRET_KEY=config.secret_key)
    env.update(extra)
    Path(env["IVR_INSTANCE_PATH"]).mkdir(parents=True, exist_ok=True)
    return env


@pytest.fixture
def server(config):
    """Start gunicorn servers for this test: server() -> Server; all stopped at the end."""
    started = []

    def _start(workers: int = 2, gunicorn_args=(), staff_workers: int = 1, **extra) -> Server:
        srv = Server(server_env(config, **extra), workers, gunicorn_args=gunicorn_args, staff_workers=staff_workers)
        started.append(srv)
        return srv

    yield _start
    for srv in started:
        srv.stop()


# -- a real browser (Debian's Chromium through Playwright), for every test that drives the console ------------
CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest stop it reaching for hosts it cannot reach (FACTS.md).
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed if it is missing and we may (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM) and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, capture_output=True,
                       timeout=900)
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing and could not be installed (apt-get install chromium needs root)")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser tab; any JavaScript console error or page error fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield tab
    context.close()
    assert problems == [], problems
