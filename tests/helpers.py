"""Helpers for tests: signing requests as Twilio does, reading TwiML, waiting for records."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN

BASE = "http://localhost"


def twilio_params(call_sid: str = "CA" + "1" * 32, **extra) -> dict:
    params = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": "+12025550123", "To": "+12025550100",
              "CallStatus": "in-progress", "ApiVersion": "2010-04-01", "Direction": "inbound"}
    params.update(extra)
    return params


def signed_post(client, path: str, params: dict, *, token: str = AUTH_TOKEN, sign_url: str | None = None, **kw):
    """POST as Twilio would, signing `sign_url` (default: the URL the test client requests)."""
    signature = RequestValidator(token).compute_signature(sign_url or BASE + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature}, **kw)


def parse_twiml(resp) -> ET.Element:
    """The TwiML document of a response, asserting it is what Twilio accepts."""
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype in ("text/xml", "application/xml")
    body = resp.get_data()
    assert body.startswith(b"<?xml"), body[:80]
    doc = ET.fromstring(body)
    assert doc.tag == "Response"
    return doc


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until predicate() is truthy (records land asynchronously); return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def json_log(path) -> list[dict]:
    """The lines of a server's log (IVR_LOG_FORMAT=json), each of which must be one JSON object."""
    entries = []
    for line in Path(path).read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{Path(path).name}: not one JSON object: {line!r}") from None
    return entries


def console_sign_in(client, name: str, password: str, unlock_code: str = "", **kw):
    """Sign in to the console as a browser would: fetch the form (for its CSRF token), then post it."""
    client.get("/console/login", **kw).close()
    with client.session_transaction() as sess:
        token = sess["csrf"]
    form = {"name": name, "password": password, "csrf_token": token}
    if unlock_code:
        form["unlock_code"] = unlock_code
    return client.post("/console/login", data=form, **kw)


def at_once(fn, agents: int) -> list:
    """fn(name) for `agents` agents released at the same moment, each in its own thread; what each got."""
    barrier, got = threading.Barrier(agents), []

    def one(name):
        barrier.wait()
        got.append(fn(name))

    threads = [threading.Thread(target=one, args=(f"agent{i}",)) for i in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def twiml_of(reply, rules) -> ET.Element:
    """A flow Reply as the TwiML document Twilio would get (rendered by webhooks/twiml.py), parsed."""
    from webhooks import twiml

    return ET.fromstring(twiml.render(reply, rules))


def heard(reply, rules) -> list[tuple[str, str]]:
    """What a caller hears from a flow Reply, in order: (Say's language, text) per Say, ("play", URL) per Play."""
    return [(el.get("language"), el.text) if el.tag == "Say" else ("play", el.text)
            for el in twiml_of(reply, rules).iter() if el.tag in ("Say", "Play")]


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str = "4m"):
    """`folder` on a tmpfs of its own, small enough to fill (unmounted afterwards); None without root."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def file_bytes(path) -> bytes:
    """A file's bytes, read by a child process. A database file must never be opened and closed by the test
    process: closing any descriptor of a file drops every POSIX lock the process holds on it, so its SQLite
    connections would lose their locks on the database (and on the -shm, the WAL's), and a server writing
    meanwhile could reset the WAL under them: "disk I/O error" in every later test."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


SECOND_PERSON = "second-approver"  # who approves what a test published as setup (two-person publishing is on)


def approved(db, row: dict, by: str = SECOND_PERSON) -> dict:
    """A version a test asked to publish, approved by a second person so callers hear it (as on the day).
    A version that needs no approval (published already) is returned as it is."""
    from ivr.store import approvals

    return approvals.approve(db, row["id"], actor=by, reason="heard it") if row.get("awaiting_approval") else row
