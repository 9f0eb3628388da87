"""Local HTTP servers standing in for hosts this machine cannot reach (Twilio's API)."""
from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubHost:
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

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.origin = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
