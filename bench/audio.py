"""Announcement audio benchmark: text to published audio, the TTS cache, bytes per second, media serving.

    .venv/bin/python bench/audio.py [--quick] [--no-results]

Offline engine (espeak-ng) and the real pydub/ffmpeg pipeline, on SQLite in a temporary folder; the media
route is measured under the real app (gunicorn, 2 sync workers) with bench/loadgen.py (16 requests in flight),
with and without If-None-Match. Prints the figures, says which targets were met (the exit status stays 0: a
target is a figure to read, not a failure), and puts them in this machine's "Audio" section of
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import pickle
import time
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhooks import (app_env, cpus, git_commit, loadgen, machine, record_section, start_app)  # noqa: E402

from ivr.store import announcements  # noqa: E402
from ivr.config import Config  # noqa: E402
from ivr.store.db import Database  # noqa: E402
from ivr.store.migrate import upgrade  # noqa: E402
from ivr.store.seed import ensure_default_content  # noqa: E402

# About 160 words: a minute of speech, the length of a real breach announcement.
TEXT = (
    "On the twelfth of November we discovered that an unauthorised person had accessed one of our customer "
    "databases. We closed the access the same day, and we are working with outside security experts and the "
    "police. The information involved includes names, email addresses, phone numbers and postal addresses. "
    "For some customers it also includes the last four digits of a payment card and the card's expiry date. "
    "Full card numbers were not taken, and neither were passwords for online banking. If you received a "
    "letter or an email from us about this incident, your information was involved. Here is what you should "
    "do now. Watch your card statements and report any payment you do not recognise to your bank. If you "
    "used the same password on our website and anywhere else, change it in both places today. Be careful "
    "with emails, text messages and calls that claim to be from us. We will never ask you for your password "
    "or your full card number. We are sorry this happened, and we will keep this line up to date."
)


def time_it(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def synthesis(work: Path) -> dict:
    """Text to published audio with the offline engine, then the same text again (a cache hit)."""
    url = f"sqlite:///{work / 'bench.db'}"
    db = Database(url)
    upgrade(db)
    ensure_default_content(db)
    cfg = Config(env="development", instance_path=work, database_url=url, twilio_auth_token="x",
                 secret_key="x", tts_engines=("espeak",), media_cache_dir=work / "media")
    langs = {"en": None}
    first, t_first = time_it(lambda: announcements.create_from_text(
        db, cfg, langs, lang="en", topic="main", text=TEXT, actor="bench", publish=True))
    hit, t_hit = time_it(lambda: announcements.create_from_text(
        db, cfg, langs, lang="en", topic="main", text=TEXT, actor="bench", publish=True))
    assert hit["media_sha256"] == first["media_sha256"]
    size = len(announcements.media_bytes(db, first["media_sha256"]))
    db.dispose()
    return {"seconds_audio": first["duration_ms"] / 1000, "t_first": t_first, "t_hit": t_hit, "bytes": size}


def get_load(srv, work: Path, path: str, seconds: float, header: str | None) -> dict:
    """GET `path` for `seconds`, 16 requests in flight, one connection each (sync workers close it anyway)."""
    extra = f"{header}\r\n" if header else ""
    jobs = work / "media-get.pickle"
    jobs.write_bytes(pickle.dumps([[f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n"
                                     f"{extra}\r\n".encode()]]))
    out = loadgen(srv, jobs, concurrency=16, seconds=seconds, twiml=False)
    out["rps"] = out["answered"] / out["elapsed_s"]
    return out


def serving(work: Path, seconds: int) -> dict:
    """Media requests/s under the real app, with and without If-None-Match."""
    import requests

    env = app_env(work / "serve", "bench-token", None)
    env["IVR_MEDIA_CACHE"] = str(work / "serve" / "media")
    servers: list = []
    try:
        srv = start_app(env, servers)
        db = Database(f"sqlite:///{work / 'serve' / 'hotline.db'}")
        sha = announcements.list_versions(db, lang="en", topic="main")[0]["media_sha256"]
        db.dispose()
        if not sha:
            raise RuntimeError("the default announcement has no audio (no TTS engine?)")
        path = f"/media/{sha}.wav"
        requests.get(srv.url(path), timeout=10).raise_for_status()  # warm the local file cache
        full = get_load(srv, work, path, seconds, None)
        cached = get_load(srv, work, path, seconds, f'If-None-Match: "{sha}"')
    finally:
        for s in servers:
            s.stop()
    return {"full": full, "not_modified": cached}


def report(syn: dict, srv: dict) -> tuple[str, bool]:
    bps = syn["bytes"] / syn["seconds_audio"]
    ratio = syn["t_hit"] / syn["t_first"]
    targets = [
        ("cache hit under 5% of the first synthesis", f"{ratio * 100:.2f}%", ratio < 0.05),
        ("at most 8 KB of audio served per second of speech", f"{bps:,.0f} B/s", bps <= 8192),
        ("0 errors serving media", f"{srv['full']['errors'] + srv['not_modified']['errors']}",
         srv["full"]["errors"] + srv["not_modified"]["errors"] == 0),
    ]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"## Audio: {cpus()}", "", f"`bench/audio.py`, {date}, commit {git_commit()}, {machine()}. Offline "
             "engine espeak-ng, pydub/ffmpeg pipeline, SQLite; media served by `ivr serve` (gunicorn, 2 sync "
             "workers) to bench/loadgen.py, 16 requests in flight", "",
             "| | figure |", "|---|---:|",
             f"| text to published audio, {syn['seconds_audio']:.1f} s of speech | {syn['t_first'] * 1000:.0f} ms |",
             f"| the same text again (cache hit) | {syn['t_hit'] * 1000:.1f} ms ({ratio * 100:.2f}%) |",
             f"| bytes per second of audio (8 kHz μ-law WAV) | {bps:,.0f} |",
             f"| media GET, full body ({syn['bytes'] / 1000:.0f} KB) | {srv['full']['rps']:,.0f} req/s, "
             f"p99 {srv['full']['p99_ms']:.1f} ms |",
             f"| media GET with If-None-Match (304) | {srv['not_modified']['rps']:,.0f} req/s, "
             f"p99 {srv['not_modified']['p99_ms']:.1f} ms |", ""]
    lines += [f"- {'MET    ' if met else 'NOT MET'} {name}: {value}" for name, value, met in targets]
    return "\n".join(lines) + "\n", all(met for _, _, met in targets)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s load runs")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ivr-audio-bench-") as tmp:
        work = Path(tmp)
        syn = synthesis(work)
        srv = serving(work, 2 if args.quick else 8)
    block, _ = report(syn, srv)
    print(block)
    if not args.no_results:
        record_section(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
