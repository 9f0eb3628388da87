"""Fetching an admin's phone recording from Twilio, only from allowed origins, then publishing it.

Twilio hands us a RecordingUrl; fetching whatever URL a request names would let anyone who can reach a
webhook make our server fetch internal addresses (server-side request forgery). So the URL's origin
(scheme, host, port) must be on the allow-list, redirects are checked the same way, the account's
credentials go only to an allowed origin, and the download is size-capped.
"""
from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

import requests

from ivr.store import announcements, jobs
from ivr.store.audit import audit

log = logging.getLogger(__name__)
MAX_REDIRECTS = 3


class RecordingRefused(jobs.PermanentError):
    """The recording URL is not one we may fetch."""


def origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RecordingRefused(f"not an http(s) URL: {url[:200]!r}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    return f"{parts.scheme}://{parts.hostname.lower()}" + ("" if port == default else f":{port}")


def allowed(url: str, origins: tuple[str, ...]) -> bool:
    try:
        return origin(url) in {origin(o) for o in origins}
    except RecordingRefused:
        return False


def fetch(url: str, *, origins: tuple[str, ...], auth: tuple[str, str] | None, max_bytes: int,
          timeout: float = 15.0) -> bytes:
    """Download a recording from an allowed origin (following only allowed redirects), at most max_bytes."""
    first = origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        if not allowed(url, origins):
            raise RecordingRefused(f"recording host {origin(url)} is not on the allow-list ({', '.join(origins)})")
        # Credentials only for the origin Twilio named, never for wherever a redirect points.
        send_auth = auth if origin(url) == first else None
        with requests.get(url, auth=send_auth, timeout=timeout, stream=True, allow_redirects=False) as resp:
            if resp.is_redirect:
                url = urljoin(url, resp.headers.get("Location", ""))
                continue
            if resp.status_code == 404:
                raise RuntimeError("the recording is not available yet (404)")  # Twilio: retry shortly
            if resp.status_code >= 400:
                raise jobs.PermanentError(f"the recording host answered HTTP {resp.status_code}")
            data = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise jobs.PermanentError(f"the recording is larger than {max_bytes} bytes")
            return bytes(data)
    raise RecordingRefused("too many redirects")


@jobs.handler("phone_recording")
def publish_recording(hotline, payload: dict) -> dict:
    """Job: fetch an admin's recording, make it phone-ready and publish it as a new version."""
    cfg = hotline.config
    auth = (cfg.twilio_account_sid, cfg.twilio_auth_token) if cfg.twilio_account_sid else None
    data = fetch(payload["recording_url"], origins=cfg.recording_origins, auth=auth, max_bytes=cfg.upload_max_bytes)
    try:
        row = announcements.create_from_audio(
            hotline.db, cfg, hotline.rules.rules.languages, data=data, lang=payload["lang"],
            topic=payload["topic"], actor=payload["actor"], source="phone", publish=True,
            reason="recorded on the admin phone line")
    except (announcements.AnnouncementError, ValueError) as exc:  # AudioRejected is a ValueError
        raise jobs.PermanentError(str(exc)) from exc
    return {"announcement_id": row["id"], "version": row["version"], "media": row["media_sha256"]}


def _recording_failed(hotline, payload: dict, error: str) -> None:
    with hotline.db.write() as conn:
        audit(conn, actor=payload.get("actor", "unknown"), action="announcement.phone_failed",
              subject=f"{payload.get('lang')}/{payload.get('topic')}", to_value=error[:500],
              reason="phone recording could not be published")


publish_recording.on_failure = _recording_failed
