"""deploy/ as shipped: Debian's nginx terminating TLS in front of two `ivr serve` on PostgreSQL.

The nginx site is used as it is in deploy/nginx/, with only addresses, ports and paths substituted. The
servers reach PostgreSQL through a TCP relay of this test's own, so the database can go away for them
alone: stopping the machine's PostgreSQL would break the other tests running beside this one.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select as sql_select, text

from conftest import AUTH_TOKEN, PG_URL, PROJECT_ROOT, Server, _pg_database, always_open, free_port
from helpers import json_log, wait_for
from ivr.store.db import Database
from ivr.store.migrate import upgrade
from ivr.store.models import Call
from ivr.store.seed import ensure_default_content
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
PG_ADMIN = PG_URL or "postgresql://postgres@127.0.0.1:5432/test"
SITE = PROJECT_ROOT / "deploy" / "nginx" / "ivr-hotline.conf"


def _postgres_reachable() -> bool:
    try:
        engine = create_engine(Database(PG_ADMIN).url, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


class Relay:
    """A TCP relay to PostgreSQL that can refuse the servers for a while (`away()`) and let them back."""

    def __init__(self, target=("127.0.0.1", 5432)):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_away = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_away:
                client.close()  # as a database that is down: the connection ends at once
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def away(self):
        self.is_away = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def back(self):
        self.is_away = False

    def close(self):
        self.away()
        self.listener.close()


class Nginx:
    """Debian's nginx in the foreground, with the shipped site (paths and ports substituted)."""

    def __init__(self, tmp: Path, backends: list[int], staff: list[int]):
        self.tmp, self.backends, self.staff = tmp, backends, staff
        self.https_port, self.http_port = free_port(), free_port()
        self.cert, self.key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True, timeout=60)
        self.site = tmp / "site.conf"
        self.write_site()
        user = "user root;" if os.geteuid() == 0 else ""  # the workers read the temp paths of this test
        temp = " ".join(f"{kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                      "uwsgi", "scgi"))
        (tmp / "nginx.conf").write_text(
            f"{user}\nworker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'} warn;\n"
            f"events {{ worker_connections 256; }}\nhttp {{ {temp} include {self.site}; }}\n")
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.proc = None

    def start(self) -> None:
        """After the servers: a server nginx finds down is left alone for fail_timeout (10 s)."""
        tmp = self.tmp
        self.proc = subprocess.Popen([NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c",
                                      str(tmp / "nginx.conf"), "-g", "daemon off;"])
        wait_for(lambda: self._answers(), timeout=10) or pytest.fail(self.errors())

    def write_site(self, down: int | None = None) -> None:
        """The shipped site; `down`: that server (its caller port) marked down (drained), as the deploy docs say."""
        site = SITE.read_text()
        marks = [" down" if port == down else "" for port in self.backends]
        lines = [f"server 127.0.0.1:{port} max_fails=1 fail_timeout=10s{mark};"
                 for ports in (self.backends, self.staff) for port, mark in zip(ports, marks)]
        subs = {"server 127.0.0.1:8001 max_fails=1 fail_timeout=10s;": lines[0],
                "server 127.0.0.1:8003 max_fails=1 fail_timeout=10s;": lines[1],
                "server 127.0.0.1:8002 max_fails=1 fail_timeout=10s;": lines[2],
                "server 127.0.0.1:8004 max_fails=1 fail_timeout=10s;": lines[3],
                "listen 443 ssl;": f"listen 127.0.0.1:{self.https_port} ssl;",
                "listen 80;": f"listen 127.0.0.1:{self.http_port};",
                "/etc/ssl/certs/hotline.example.com.pem": str(self.cert),
                "/etc/ssl/private/hotline.example.com.key": str(self.key),
                "/var/log/nginx/ivr-hotline.access.log": str(self.tmp / "access.log")}
        for old, new in subs.items():
            assert old in site, f"deploy/nginx/ivr-hotline.conf no longer has {old!r}: update this test"
            site = site.replace(old, new)
        self.site.write_text(site)

    def reload(self, down: int | None = None) -> None:
        """Write the site, reload, and wait until no worker of the old configuration is left (drained)."""
        old = self.workers()
        self.write_site(down)
        os.kill(self.proc.pid, signal.SIGHUP)
        assert wait_for(lambda: (now := self.workers()) and not (now & old), timeout=15), self.errors()

    def workers(self) -> set[int]:
        kids = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                    kids.add(int(entry))
        return kids

    def _answers(self) -> bool:
        try:
            return requests.get(self.url + "/livez", verify=str(self.cert), timeout=2).status_code > 0
        except requests.RequestException:
            return False

    def errors(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text()[-3000:] if path.exists() else "(no nginx error log)"

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _get_from(source: str, nginx: Nginx, path: str, form: str | None = None) -> http.client.HTTPResponse:
    """GET (or POST `form`) through nginx from a loopback address (127.0.0.2 is not on the staff list)."""
    ctx = ssl.create_default_context(cafile=str(nginx.cert))
    conn = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=ctx, timeout=10,
                                       source_address=(source, 0))
    conn.request("GET" if form is None else "POST", path, body=form,
                 headers={} if form is None else {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.body = resp.read()
    conn.close()
    return resp


@pytest.fixture
def stack(tmp_path):
    if NGINX is None:
        pytest.skip("nginx is not installed (`make test` installs Debian's nginx when run as root)")
    if not _postgres_reachable():
        pytest.skip(f"PostgreSQL is unreachable at {PG_ADMIN}")
    with contextlib.ExitStack() as cleanup:
        url, drop = _pg_database(PG_ADMIN)
        cleanup.callback(drop)
        db = Database(url)
        cleanup.callback(db.dispose)
        upgrade(db)
        ensure_default_content(db)
        relay = Relay(("127.0.0.1", db.engine.url.port or 5432))
        cleanup.callback(relay.close)
        rules = tmp_path / "routing_rules.yaml"
        rules.write_text(always_open((PROJECT_ROOT / "routing_rules.yaml").read_text()))
        ports, staff_ports = [free_port(), free_port()], [free_port(), free_port()]
        (tmp_path / "nginx").mkdir()
        nginx = Nginx(tmp_path / "nginx", ports, staff_ports)
        cleanup.callback(nginx.stop)
        through_relay = db.engine.url.set(port=relay.port).render_as_string(hide_password=False)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}
        envs = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            envs.append({**base, "IVR_ENV": "production", "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                         "DATABASE_URL": through_relay, "IVR_INSTANCE_PATH": str(tmp_path / name),
                         "IVR_RULES": str(rules), "IVR_SECRET_KEY": "deploy-test-secret",
                         "IVR_MEDIA_CACHE": str(tmp_path / name / "media"), "IVR_TTS_ENGINES": "espeak",
                         "IVR_PUBLIC_URL": nginx.url, "IVR_TRUSTED_PROXIES": "1", "IVR_LOG_FORMAT": "json"})
        st = type("Stack", (), dict(db=db, relay=relay, nginx=nginx, servers=[], envs=envs, ports=ports,
                                    staff_ports=staff_ports))
        cleanup.callback(lambda: [srv.stop() for srv in st.servers])
        for env, port, staff_port in zip(envs, ports, staff_ports):
            st.servers.append(Server(env, workers=1, port=port, staff_port=staff_port))
        for srv in st.servers:
            assert wait_for(lambda: _ready(srv), timeout=15), srv.log_path.read_text()[-2000:]
        nginx.start()
        yield st


def _ready(srv: Server) -> bool:
    try:
        return requests.get(srv.url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class _Twilio(HttpTransport):
    """Twilio's side of the calls, keeping what went wrong (the call result says only the status).

    One connection per webhook: Twilio's docs promise nothing about keep-alive, and a reload of nginx (a
    drain here, a certificate renewal anywhere) closes its idle keep-alive connections, so a request sent
    on one at that moment is lost by any client that does not retry it (seen here: SSLEOFError). That is
    the client's business, not something a drain can prevent (see docs/deploy.md).
    """

    def __init__(self, nginx: Nginx):
        super().__init__(nginx.url)
        self.session.verify = str(nginx.cert)
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE, where set, wins over the session's verify
        self.session.headers["Connection"] = "close"
        self.failures = []

    def post(self, url, params, headers):
        status, ctype, body = super().post(url, params, headers)
        if status != 200:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {url}: {status} {body[:300]!r}")
        return status, ctype, body


def _call(nginx: Nginx, keys=("0",)):
    transport = _Twilio(nginx)
    result = SimulatedCall(transport, AUTH_TOKEN, keys=list(keys)).run()
    result.failures = transport.failures
    return result


def _recorded(db: Database, sids: list[str]) -> int:
    """How many of these calls are in the database (-1 while it cannot say: other tests restart the
    machine's PostgreSQL, and this test's own connection goes with it)."""
    try:
        with db.read() as conn:
            return conn.execute(sql_select(func.count()).select_from(Call)
                                .where(Call.call_sid.in_(sids))).scalar()
    except Exception:
        db.engine.dispose()
        return -1


def test_two_servers_behind_the_shipped_nginx_site(stack):
    nginx, servers, db = stack.nginx, stack.servers, stack.db
    # Calls through https, signed for IVR_PUBLIC_URL, complete.
    first = [_call(nginx) for _ in range(4)]
    assert [r.ended for r in first] == ["hangup"] * 4, first[0].transcript()
    # A request signed for a backend's own URL is refused: only the public URL counts.
    direct = SimulatedCall(HttpTransport(servers[0].url), AUTH_TOKEN, keys=["0"]).run()
    assert direct.ended == "http-403"
    # Over nginx's body limit: TwiML if signed (the app's rule), 403 if not; never an HTML 413.
    big = {"url": nginx.url + "/voice/incoming", "data": {"Junk": "x" * 100_000}, "verify": str(nginx.cert)}
    signed = requests.post(**big, headers={"X-Twilio-Signature": "unread"}, timeout=10)
    assert signed.status_code == 200 and signed.text.startswith("<?xml") and "<Redirect" in signed.text
    assert requests.post(**big, timeout=10).status_code == 403

    # /metrics never through the proxy (each server is scraped on its own address); the console only
    # from the staff networks; the voice webhooks from anywhere.
    assert requests.get(nginx.url + "/metrics", verify=str(nginx.cert), timeout=5).status_code == 403
    assert "ivr_webhook_seconds" in requests.get(servers[0].staff_url + "/metrics", timeout=5).text
    assert _get_from("127.0.0.2", nginx, "/console/").status == 403
    assert _get_from("127.0.0.2", nginx, "/api/stats").status == 403
    staff = requests.get(nginx.url + "/console/", verify=str(nginx.cert), timeout=5, allow_redirects=False)
    # To the sign-in page, on the public https URL (X-Forwarded-Proto and Host believed), not the backend's.
    assert staff.status_code == 303 and staff.headers["Location"].startswith((nginx.url + "/", "/console/"))
    # The servers log the client nginx saw (IVR_TRUSTED_PROXIES=1), under nginx's request id.
    probe = _get_from("127.0.0.2", nginx, "/readyz")
    assert probe.status == 200
    rid = probe.getheader("X-Request-Id")

    def access_line():
        for srv in servers:
            for entry in json_log(srv.log_path):
                if entry.get("request_id") == rid and entry["logger"] == "gunicorn.access":
                    return entry
    entry = wait_for(access_line, timeout=5)
    assert entry and entry["client"] == "127.0.0.2" and entry["route"] == "/readyz" and entry["status"] == 200

    # A rolling restart while calls go on: the first server drained in nginx first (docs/deploy.md), the
    # second simply stopped (SIGTERM), as a crash-looping unit or an impatient operator would: its requests
    # in flight are answered, and those arriving after are refused and retried by nginx on the other server.
    results, stop = [], threading.Event()

    def keep_calling():
        while not stop.wait(0.05):  # a steady trickle, not a benchmark on a shared machine
            results.append(_call(nginx))

    callers = [threading.Thread(target=keep_calling) for _ in range(2)]
    for t in callers:
        t.start()
    try:
        for i, port in enumerate(stack.ports):
            if i == 0:
                nginx.reload(down=port)  # drained: nginx sends it nothing more, what it had is answered
            servers[i].stop()
            servers[i] = Server(stack.envs[i], workers=1, port=port, staff_port=stack.staff_ports[i])
            assert wait_for(lambda: _ready(servers[i]), timeout=15), servers[i].log_path.read_text()[-2000:]
            if i == 0:
                nginx.reload(down=None)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in callers:
            t.join(30)
    assert len(results) >= 8, "calls must have gone on during the restarts"
    failed = [(r.ended, r.failures) for r in results if r.ended != "hangup"]
    assert not failed, (failed[:3], nginx.errors())
    sids = [r.call_sid for r in first + results]
    assert wait_for(lambda: _recorded(db, sids) == len(sids), timeout=15), (_recorded(db, sids), len(sids))

    # The database goes away for both servers: they stay ready (callers are served from the snapshot),
    # /healthz says what is wrong, and the calls of the outage are recorded once it is back.
    stack.relay.away()
    during = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert [requests.get(s.url + "/readyz", timeout=5).status_code for s in servers] == [200, 200]
        during.append(_call(nginx))
    assert [r.ended for r in during] == ["hangup"] * len(during)
    health = requests.get(servers[0].url + "/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert any("database unreachable" in p for p in health.json()["problems"]) and health.json()["ready"]
    stack.relay.back()
    sids = [r.call_sid for r in during]
    assert wait_for(lambda: _recorded(db, sids) == len(sids), timeout=20), (_recorded(db, sids), len(sids))

    # A flood of sign-ins from one address is cut short by nginx's limit_req (after a burst of 10) before
    # it takes a worker: fewer reach the servers than were sent, and the rest get 429.
    sign_ins = [_get_from("127.0.0.1", nginx, "/console/login", f"name=flood{n}&password=x").status for n in range(25)]
    reached = [e for srv in servers for e in json_log(srv.log_path)
               if e["logger"] == "gunicorn.access" and e.get("route") == "/console/login"]
    assert sign_ins.count(429) >= 13 and len(reached) <= 12, (sign_ins, len(reached))

    # Every line both servers wrote, through restarts and the outage, is one JSON object.
    for srv in servers:
        entries = json_log(srv.log_path)
        assert {"master", "worker", "background", "serve"} <= {e["process"] for e in entries}
        assert any(e.get("call_sid", "").startswith("CA") and e.get("route") == "/voice/incoming" for e in entries)
