"""What the caller app answers and spools for every route and key path, as comparable data.

`tests/golden/make_caller_golden.py` runs these requests against the app and writes what came back (status,
content type, body; the spool lines each request appended) to `tests/golden/caller_app.json`, once, from
the code before a change; `tests/test_caller_app_golden.py` runs them again and asserts the same bytes.

Only what is not the app's to decide is normalised: the time a record was made, and Fernet tokens (a
sealed number differs at every sealing: random IV, timestamp). Everything else must match byte for byte.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN, always_open
from ivr.config import PROJECT_ROOT, Config

GOLDEN = Path(__file__).parent / "golden" / "caller_app.json"
BASE = "http://localhost"
FROM = "+12025550123"
DEAD_URL = "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=1"
LANGS = ("en", "es")
MENU_KEYS = ("", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "12", "x")


def build_config(folder: Path, database_url: str | None = None) -> Config:
    """A fresh, migrated SQLite database with the default announcement (unless `database_url`), the shipped
    rules with every queue open, and the settings of the tests' `config` fixture; spooling only
    ("process"), so that the spool holds every record and nothing else reads it."""
    from ivr.store import sealed
    from ivr.store.db import Database
    from ivr.store.migrate import upgrade
    from ivr.store.sealed import ensure_key_file
    from ivr.store.seed import ensure_default_content

    folder.mkdir(parents=True, exist_ok=True)
    rules = folder / "routing_rules.yaml"
    rules.write_text(always_open((PROJECT_ROOT / "routing_rules.yaml").read_text()))
    url = database_url or f"sqlite:///{folder / 'hotline.db'}"
    if database_url is None:
        db = Database(url)
        upgrade(db)
        ensure_default_content(db)
        db.dispose()
    ensure_key_file(folder / "instance")
    sealed.use(url, folder / "instance")
    return Config(env="test", instance_path=folder / "instance", database_url=url, twilio_auth_token=AUTH_TOKEN,
                  rules_path=rules, secret_key="test-secret", event_writer="process",
                  media_cache_dir=folder / "media-cache", jobs_in_app=False, tts_engines=("espeak",))


# -- the requests ----------------------------------------------------------------------------------------
def _sid(n: int) -> str:
    return f"CA{n:032x}"


def _pos(lang: str, attempts: int = 0, step: int = 1, **more) -> str:
    return urlencode({"l": lang, "a": attempts, "s": step, **more})


def caller_requests() -> list[dict]:
    """Every caller route, each key of each menu, in each language, at the edges of the call position."""
    out = []

    def add(path, **params):
        out.append({"path": path, "params": params})

    for lang in LANGS:
        add("/voice/incoming" + ("" if lang == "en" else f"?l={lang}"), CallStatus="ringing")
        for key in MENU_KEYS:
            add(f"/voice/menu?{_pos(lang)}", Digits=key)
        add(f"/voice/menu?{_pos(lang, attempts=2)}", Digits="")  # the last attempt
        add(f"/voice/menu?{_pos(lang, attempts=2)}", Digits="x")
        add(f"/voice/menu?{_pos(lang, step=999)}", Digits="1")  # past the step limit
        for key in ("", "9", "5"):
            add(f"/voice/menu?{_pos(lang, x='sms')}", Digits=key)
        for key in ("", "1", "2", "9"):
            add(f"/voice/language?{_pos(lang)}", Digits=key)
            add(f"/voice/verified?{_pos(lang)}", Digits=key)
        for key in ("", "123", "12345678", "99999999"):
            add(f"/voice/verify?{_pos(lang)}", Digits=key)
        for position in ("", "1", "4"):
            add(f"/voice/hold?{_pos(lang, q='general', p=10)}", QueuePosition=position, QueueTime="30")
        for key in ("", "1", "2", "9"):
            add(f"/voice/hold-choice?{_pos(lang, q='general', p=10)}", Digits=key)
            add(f"/voice/callback?{_pos(lang, q='general', p=10)}", Digits=key)
        add(f"/voice/voicemail?{_pos(lang, q='general', p=10)}", RecordingUrl="https://api.twilio.com/rec/RE1",
            RecordingDuration="12")
        for result in ("bridged", "hangup", "leave", "queue-full", "error", ""):
            add(f"/voice/queue-result?{_pos(lang, q='general')}", QueueResult=result, QueueTime="42")
        add(f"/voice/queue-result?{_pos(lang, q='general')}", DialCallStatus="busy")
        add(f"/voice/queue-connect?{_pos(lang)}", DequeingCallSid="CA" + "e" * 32, QueueTime="7")
        add(f"/voice/fallback?l={lang}", ErrorCode="11200", ErrorUrl="https://example.com/voice/incoming")
    for status, extra in (("ringing", {}), ("in-progress", {"SequenceNumber": "1"}),
                          ("completed", {"CallDuration": "93", "SequenceNumber": "3"}), ("busy", {})):
        add("/voice/status", CallStatus=status, **extra)
    add("/voice/admin")
    add("/voice/admin/pin", Digits="0000")
    add("/voice/agent")
    add("/voice/agent/pin", Digits="1234")
    return out


# -- running them --------------------------------------------------------------------------------------
_FERNET = re.compile(r"gAAAAA[A-Za-z0-9_\-]+=*")
_AT = re.compile(r'"at":[0-9.e+\-]+')


def _normalise(line: str) -> str:
    return _FERNET.sub("<sealed>", _AT.sub('"at":0', line))


class SpoolReader:
    """The lines appended to the spool folder since the last call (the app spools only: "process")."""

    def __init__(self, spool_dir: Path):
        self.spool_dir, self.seen = spool_dir, {}
        self.new_lines()  # from now on

    def new_lines(self) -> list[str]:
        lines = []
        for path in sorted(glob.glob(str(self.spool_dir / "events-*"))):
            data = Path(path).read_bytes()
            start = self.seen.get(path, 0)
            self.seen[path] = len(data)
            lines += [_normalise(x) for x in data[start:].decode().splitlines()]
        return lines


def answer(client, request: dict, *, signed: bool = True, method: str = "POST", headers=None) -> dict:
    params, path = request.get("params", {}), request["path"]
    heads = dict(headers or {})
    if signed:
        heads["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(
            BASE + path, params if method == "POST" else {})
    if method == "POST":
        resp = client.post(path, data=params, headers=heads)
    else:
        resp = client.open(path, method=method, headers=heads)
    body = resp.get_data()
    resp.close()  # a file response keeps its file open until then
    shown = body.decode() if resp.mimetype != "audio/wav" else "sha256:" + hashlib.sha256(body).hexdigest()
    return {"status": resp.status_code, "content_type": resp.headers.get("Content-Type"), "body": shown}


def run(app, requests: list[dict], first_sid: int, **kw) -> list[dict]:
    """Each request with its own CallSid and the caller's number; what came back and what it spooled."""
    client, spool = app.test_client(), SpoolReader(app.extensions["ivr"].config.spool_dir)
    results = []
    for n, request in enumerate(requests):
        params = {"CallSid": _sid(first_sid + n), "AccountSid": "AC" + "0" * 32, "From": FROM,
                  "To": "+12025550100", "CallStatus": "in-progress", "ApiVersion": "2010-04-01",
                  "Direction": "inbound", **request["params"]}
        got = answer(client, {**request, "params": params}, **kw)
        results.append({"request": request, **got, "spooled": spool.new_lines()})
    return results


@contextlib.contextmanager
def patched(target, name: str, value):
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


def _boom(*args, **kwargs):
    raise RuntimeError("a bug in a step")


def scenarios(make_app, folder: Path) -> dict:
    """Every group of requests against a fresh app: `make_app(config)` builds the app under test."""
    from ivr.core import flow
    from ivr.store.state import set_mode

    out = {}
    cfg = build_config(folder / "main")
    app = make_app(cfg)
    try:
        hotline = app.extensions["ivr"]
        out["message"] = run(app, caller_requests(), 0x1000)
        set_mode(hotline.db, "live", reason="agents on shift", actor="golden")
        out["live"] = run(app, caller_requests(), 0x2000)
        client = app.test_client()
        incoming = {"path": "/voice/incoming", "params": {"CallSid": _sid(0x3000), "From": FROM}}
        out["unsigned"] = [answer(client, incoming, signed=False),
                           answer(client, {"path": "/voice/menu?l=en&a=0&s=1", "params": {"Digits": "1"}},
                                  signed=False),
                           answer(client, {**incoming, "params": {**incoming["params"], "Digits": "1"}},
                                  signed=False, headers={"X-Twilio-Signature": "forged"})]
        out["errors"] = [answer(client, {"path": "/voice/nowhere?l=es", "params": {"CallSid": _sid(0x3001)}}),
                         answer(client, {"path": "/voice/incoming"}, method="PUT"),
                         answer(client, {"path": "/voice/incoming",
                                         "params": {"CallSid": _sid(0x3002), "Padding": "x" * 200_000}}),
                         answer(client, {"path": "/livez"}, signed=False, method="GET"),
                         answer(client, {"path": "/readyz"}, signed=False, method="GET")]
        with patched(flow, "incoming", _boom), patched(flow, "menu_choice", _boom):
            out["bug"] = run(app, [{"path": "/voice/incoming", "params": {}},
                                   {"path": f"/voice/menu?{_pos('es')}", "params": {"Digits": "1"}}], 0x4000)
        if hotline.hold_tone:
            tone = f"/media/{hotline.hold_tone[1]}.wav"
            out["media"] = [answer(client, {"path": tone}, signed=False, method="GET"),
                            answer(client, {"path": tone}, signed=False, method="GET",
                                   headers={"If-None-Match": f'"{hotline.hold_tone[1]}"'}),
                            answer(client, {"path": "/media/" + "0" * 64 + ".wav"}, signed=False, method="GET")]
    finally:
        app.extensions["ivr"].close()
    # The database away from the start, and no last-good snapshot file: the safe default.
    dead = make_app(build_config(folder / "dead", DEAD_URL))
    try:
        out["dead_database"] = run(dead, [{"path": "/voice/incoming", "params": {}},
                                          {"path": f"/voice/menu?{_pos('en')}", "params": {"Digits": "1"}},
                                          {"path": f"/voice/menu?{_pos('en')}", "params": {"Digits": "0"}},
                                          {"path": "/voice/status", "params": {"CallStatus": "completed",
                                                                              "CallDuration": "5"}}], 0x5000)
    finally:
        dead.extensions["ivr"].close()
    return out


def normalised(results: dict) -> dict:
    """JSON round trip: what is compared is what the golden file can hold."""
    return json.loads(json.dumps(results))
