"""The benches' own machinery (bench/): the load generator counts what it got, RESULTS.md keeps one section per
bench and machine. No timings here: the figures themselves live in bench/RESULTS.md."""
from __future__ import annotations

import http.server
import importlib.util
import threading
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _bench_module(name: str):
    """A module of bench/, loaded by path: bench/ on sys.path would shadow the `webhooks` package."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loadgen = _bench_module("loadgen")
record_section = _bench_module("harness").record_section

TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


class _Twimlish(http.server.BaseHTTPRequestHandler):
    """200 TwiML on /voice/*, 404 elsewhere; one answer per connection, as gunicorn's sync workers do."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.path.startswith("/voice/")
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(TWIML if ok else b"not found")

    def log_message(self, *args):
        pass


@pytest.fixture
def port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Twimlish)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _post(port: int, path: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1").encode()


def test_the_load_generator_runs_every_request_of_every_job_and_counts_refusals(port):
    call = [_post(port, "/voice/incoming"), _post(port, "/voice/menu"), _post(port, "/voice/status")]
    out = loadgen.run(port, [call] * 5 + [[_post(port, "/elsewhere")]], concurrency=2, seconds=None, twiml=True)
    assert out["jobs_started"] == out["jobs_done"] == 6
    assert out["answered"] == 15 and out["errors"] == 1
    assert out["cpu_s"] > 0 and out["p99_ms"] >= out["p50_ms"] > 0


def test_the_load_generator_counts_a_refused_connection_as_an_error():
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    out = loadgen.run(dead, [[_post(dead, "/voice/incoming")]] * 3, concurrency=2, seconds=None, twiml=True)
    assert out["answered"] == 0 and out["errors"] == 3 and out["jobs_done"] == 3


def test_a_bench_replaces_its_own_section_and_leaves_the_others(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n\n## History\n\n| a |\n\n## Webhooks on SQLite: 2 CPUs (X)\n\nold\n\n"
                       "## Export\n\nkept\n\n## Notices\n\nalso kept\n")
    record_section("## Webhooks on SQLite: 2 CPUs (X)\n\nnew figures\n", results)
    record_section("## Audio: 2 CPUs (X)\n\naudio figures\n", results)
    text = results.read_text()
    assert "old" not in text and text.count("## Webhooks on SQLite") == 1
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## History", "## Webhooks on SQLite: 2 CPUs (X)", "## Export", "## Notices", "## Audio: 2 CPUs (X)"]
    assert "new figures" in text and "kept" in text and "also kept" in text and "| a |" in text
