"""Announcement audio under immutable URLs: /media/<sha256>.wav never changes, so caches can keep it forever.

Twilio caches media across a fleet of proxies by these headers; a new version gets a new URL, so nobody
hears a stale message and nothing fresh is fetched twice. The database holds the bytes; the local file
cache under audio/ makes serving fast and is rebuilt from the database when a file is missing.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_file

from ivr.store.announcements import media_bytes
from ivr.store.files import cached_media, write_atomically

log = logging.getLogger(__name__)
bp = Blueprint("media", __name__)
_SHA = re.compile(r"[0-9a-f]{64}")
CACHE_FOREVER = "public, max-age=31536000, immutable"


def cached_file(hotline, sha256: str) -> Path | None:
    """The local file for this audio, written from the database first if it is missing."""
    path = cached_media(hotline.config.media_cache_dir, sha256)
    if path.exists():
        return path
    data = media_bytes(hotline.db, sha256)
    if data is None:
        return None
    write_atomically(path, data)
    log.info("media %s rebuilt in the local cache from the database", sha256[:12])
    return path


@bp.route("/media/<sha256>.wav", methods=["GET", "HEAD"])
def media(sha256: str):
    if not _SHA.fullmatch(sha256):  # match() with $ lets a trailing newline through (and into a header)
        abort(404)
    etag = f'"{sha256}"'
    if etag in request.headers.get("If-None-Match", "") or request.headers.get("If-None-Match") == "*":
        # Content-addressed: a matching tag means the client has exactly these bytes. No disk, no database.
        return Response(status=304, headers={"ETag": etag, "Cache-Control": CACHE_FOREVER})
    try:
        path = cached_file(current_app.extensions["ivr"], sha256)
    except Exception:
        log.exception("media %s could not be read", sha256[:12])
        return Response("audio temporarily unavailable\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": "5"})
    if path is None:
        abort(404)
    resp = send_file(path, mimetype="audio/wav", conditional=False, etag=False, max_age=None)
    resp.headers["ETag"] = etag
    resp.headers["Cache-Control"] = CACHE_FOREVER
    return resp
