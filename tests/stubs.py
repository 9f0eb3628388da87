"""Local HTTP servers standing in for hosts this machine cannot reach (Twilio's API)."""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """An HTTP server on a free port of 127.0.0.1, in a thread, until close()."""

    def _serve(self, handler) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True  # an answer held back (TwilioMessages.hold_answer) must not hold close()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.origin = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class StubHost(LocalServer):
    """Serves fixed responses by path on 127.0.0.1 and remembers every request (path, Authorization)."""

    def __init__(self, routes: dict[str, tuple[int, dict, bytes]]):
        self.routes = routes
        self.requests: list[tuple[str, str, str | None]] = []
        self.bodies: list[bytes] = []  # the body of each request, in the same order
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                stub.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                stub.requests.append((self.command, self.path, self.headers.get("Authorization")))
                status, headers, body = stub.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self._serve(Handler)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TwilioMessages(LocalServer):
    """A stand-in for Twilio's Messages resource that remembers what it was asked to send: POST creates a
    message (201), GET lists them newest first with the To/From filters, as Twilio's list resource does
    (https://www.twilio.com/docs/messaging/api/message-resource). `hold_answer` makes it create the message
    and then keep the HTTP answer back for that many seconds (a runner killed while waiting for it);
    `fail_next` answers the next POSTs with that status, creating nothing, or, with `create_anyway`,
    creating the message and losing the answer (Twilio sent it, we never heard). `refuse` maps a To number to
    the (HTTP status, Twilio error code) its POST is refused with, creating nothing, as Twilio answers an
    invalid or unsubscribed number (https://www.twilio.com/docs/api/errors/21211, .../21610). A message sent
    through a Messaging Service (MessagingServiceSid, no From) keeps it; `when` is each creation's time.monotonic()."""

    def __init__(self, account: str):
        from urllib.parse import parse_qs, urlsplit

        self.path = f"/2010-04-01/Accounts/{account}/Messages.json"
        self.created: list[dict] = []
        self.hold_answer = 0.0
        self.fail_next: list[int] = []
        self.create_anyway = False
        self.refuse: dict[str, tuple[int, int]] = {}
        self.when: list[float] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as api.twilio.com: a connection per text would be the limit
            disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart (delayed ACK)

            def _answer(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0))
                                                      .decode()).items()}
                if form.get("To") in stub.refuse:
                    status, code = stub.refuse[form["To"]]
                    return self._answer(status, {"code": code, "message": "refused by the stand-in",
                                                 "more_info": f"https://www.twilio.com/docs/errors/{code}",
                                                 "status": status})
                failing = stub.fail_next.pop(0) if stub.fail_next else None
                if failing is None or stub.create_anyway:
                    message = {"sid": "SM" + uuid.uuid4().hex, "to": form.get("To"), "from": form.get("From"),
                               "body": form.get("Body"), "status": "queued",
                               "messaging_service_sid": form.get("MessagingServiceSid"),
                               "status_callback": form.get("StatusCallback"),
                               "date_created": formatdate(time.time(), usegmt=True)}
                    stub.created.append(message)
                    stub.when.append(time.monotonic())
                if failing is not None:
                    return self._answer(failing, {"code": 20500, "message": "stand-in failure", "status": failing})
                time.sleep(stub.hold_answer)
                self._answer(201, message)

            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path != stub.path:
                    return self._answer(404, {"code": 20404, "message": "not found", "status": 404})
                found = [m for m in reversed(stub.created)
                         if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])]
                self._answer(200, {"messages": found, "next_page_uri": None, "page": 0,
                                   "page_size": len(found), "uri": self.path})

            def log_message(self, *args):
                pass

        self._serve(Handler)


class TwilioRecordings(LocalServer):
    """A stand-in for Twilio's Recording resource (https://www.twilio.com/docs/voice/api/recording): GET of
    `/2010-04-01/Accounts/{AC}/Recordings/{RE}` (any extension) serves a recording's media, DELETE of
    `.../Recordings/{RE}.json` deletes it, 204 with no body, and both answer 404 with Twilio's error 20404
    for one it does not have (https://www.twilio.com/docs/api/errors/20404). Only `account`'s credentials
    are taken (401, error 20003, otherwise). `fail_next`: the next DELETEs answer these statuses and delete
    nothing. `requests`: (method, path) of each request, in order."""

    def __init__(self, account: str, token: str, recordings: dict[str, bytes] | None = None):
        import re

        self.account, self.recordings = account, dict(recordings or {})
        self.fail_next: list[int] = []
        self.requests: list[tuple[str, str]] = []
        self.url = lambda sid: f"{self.origin}/2010-04-01/Accounts/{account}/Recordings/{sid}"
        path = re.compile(rf"^/2010-04-01/Accounts/{account}/Recordings/(RE[0-9a-f]{{32}})(\.[a-z0-9]+)?$")
        auth = basic_auth(account, token)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: int) -> None:
                self._answer(status, json.dumps({"code": code, "message": "from the stand-in", "status": status,
                                                 "more_info": f"https://www.twilio.com/docs/errors/{code}"}).encode())

            def _serve(self, delete: bool):
                stub.requests.append((self.command, self.path))
                found = path.match(self.path)
                if self.headers.get("Authorization") != auth:
                    return self._error(401, 20003)
                if found is None or found[1] not in stub.recordings or (delete and found[2] != ".json"):
                    return self._error(404, 20404)
                if not delete:
                    return self._answer(200, stub.recordings[found[1]], "audio/x-wav")
                if stub.fail_next:
                    return self._error(stub.fail_next.pop(0), 20500)
                del stub.recordings[found[1]]
                self._answer(204)

            def do_GET(self):
                self._serve(delete=False)

            def do_DELETE(self):
                self._serve(delete=True)

            def log_message(self, *args):
                pass

        self._serve(Handler)
