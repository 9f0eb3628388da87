"""Fetching an admin's phone recording from Twilio, only from allowed origins.

Twilio hands us a RecordingUrl; fetching whatever URL a request names would let anyone who can reach a
webhook make our server fetch internal addresses (server-side request forgery). So the URL's origin
(scheme, host, port) must be on the allow-list, redirects are checked the same way, the account's
credentials go only to an allowed origin, and the download is size-capped.

A URL is parsed once, by the parser requests itself uses (urllib3's parse_url), and the request goes to
a URL rebuilt from the parts that were checked: two parsers that disagree about a URL's host (urlsplit
reads `https://evil\\@api.twilio.com/` as api.twilio.com, urllib3 as evil) would let credentials leave for
the wrong host. Backslashes, user info, whitespace and control characters are refused outright.

The account's credentials travel only over https: plain http is refused for any host but this machine's
loopback addresses, which only the local stand-in for Twilio in the tests uses (nothing leaves the machine).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

MAX_REDIRECTS = 3
_UNSAFE = re.compile(r"[\\\x00-\x20\x7f]")  # backslash, space and every control character
DEFAULT_PORTS = {"http": 80, "https": 443}


class RecordingRefused(ValueError):
    """The recording cannot be fetched, and trying again will not change that (a refused host, a size)."""


@dataclass(frozen=True)
class CheckedUrl:
    origin: str  # scheme://host[:port], the port only when it is not the scheme's default
    url: str  # rebuilt from the checked parts alone: what is requested


def checked(url: str) -> CheckedUrl:
    """Parse a URL the way requests will, refusing anything two parsers could read differently."""
    if not isinstance(url, str) or _UNSAFE.search(url):
        raise RecordingRefused(f"the URL has a backslash, a space or a control character: {url[:200]!r}")
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise RecordingRefused(f"not a URL: {url[:200]!r}") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not parts.host:
        raise RecordingRefused(f"not an http(s) URL: {url[:200]!r}")
    if parts.auth is not None:
        raise RecordingRefused(f"the URL carries user info: {url.split('@')[-1][:200]!r}")
    port = parts.port or DEFAULT_PORTS[scheme]
    origin = f"{scheme}://{parts.host.lower()}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CheckedUrl(origin, origin + target)


def is_loopback(host: str) -> bool:
    """Whether a host is this machine's loopback (127.0.0.0/8, ::1, localhost): plain http never leaves it."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin(url: str) -> str:
    return checked(url).origin


def fetch(url: str, *, origins: tuple[str, ...], auth: tuple[str, str] | None, max_bytes: int,
          timeout: float = 15.0) -> bytes:
    """Download a recording from an allowed origin (following only allowed redirects), at most max_bytes."""
    allow = {origin(o) for o in origins}
    first = checked(url).origin
    for _ in range(MAX_REDIRECTS + 1):
        target = checked(url)
        if target.origin not in allow:
            raise RecordingRefused(f"recording host {target.origin} is not on the allow-list ({', '.join(origins)})")
        if target.origin.startswith("http://") and not is_loopback(parse_url(target.url).host or ""):
            raise RecordingRefused(f"recording host {target.origin} is plain http: the Twilio credentials are sent "
                                   "only over https (http only to this machine's loopback, for a local stand-in)")
        # Credentials only for the origin Twilio named, never for wherever a redirect points.
        send_auth = auth if target.origin == first else None
        with requests.get(target.url, auth=send_auth, timeout=timeout, stream=True, allow_redirects=False) as resp:
            if resp.is_redirect:
                url = urljoin(target.url, resp.headers.get("Location", ""))
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
