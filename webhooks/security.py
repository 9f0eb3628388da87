"""X-Twilio-Signature: every /voice/* request must be signed by Twilio with our account's auth token."""
from __future__ import annotations

import hmac

from flask import Request
from twilio.request_validator import RequestValidator

from webhooks.params import raw_query, twilio_params


def signed_url(request: Request, public_url: str = "") -> str:
    """The URL Twilio requested: the configured public base (behind an HTTPS proxy) or what the request says.

    Built from the raw query string: Twilio signs the URL exactly as we handed it out.
    """
    query = raw_query(request)
    base = public_url or f"{request.scheme}://{request.host}{request.root_path}"
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def is_signed_by_twilio(request: Request, validator: RequestValidator, public_url: str = "") -> bool:
    """`request`: the request object itself (cheaper than Flask's proxy), or the proxy."""
    env = request.environ
    signature = env.get("HTTP_X_TWILIO_SIGNATURE", "")
    if not signature:
        return False
    params = twilio_params(request).form if env.get("REQUEST_METHOD") == "POST" else {}
    url = signed_url(request, public_url)
    # Fast path: the URL exactly as requested is one of the two forms validate() accepts (with and without
    # the port), so a match here is a match there, with one HMAC instead of two.
    if hmac.compare_digest(validator.compute_signature(url, params), signature):
        return True
    return validator.validate(url, params, signature)
