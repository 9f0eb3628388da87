"""Fetching an admin's phone recording from Twilio, only from allowed origins.

Twilio hands us a RecordingUrl; fetching whatever URL a request names would let anyone who can reach a
webhook make our server fetch internal addresses (server-side request forgery). So the URL's origin
(scheme, host, port) must be on the allow-list, redirects are checked the same way, the account's
credentials go only to an allowed origin, and the download is size-capped.
"""
from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import requests

MAX_REDIRECTS = 3


class RecordingRefused(ValueError):
    """The recording cannot be fetched, and trying again will not change that (a refused host, a size)."""


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
                raise RecordingRefused(f"the recording host answered HTTP {resp.status_code}")
            data = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise RecordingRefused(f"the recording is larger than {max_bytes} bytes")
            return bytes(data)
    raise RecordingRefused("too many redirects")
