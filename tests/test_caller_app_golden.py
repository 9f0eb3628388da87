"""The caller app answers and spools exactly what the reference code did, for every route and key path:
the TwiML bytes, status and content type of each answer, and the spool lines of each step
(tests/golden/caller_app.json, written by tests/golden/make_caller_golden.py from the code before the
caller app was made lean; tests/caller_golden.py says what runs and what is normalised)."""
from __future__ import annotations

import json

import pytest

import caller_golden
from ivr.app import create_app


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(caller_golden.GOLDEN.read_text())


@pytest.fixture(scope="module")
def now_answered(tmp_path_factory) -> dict:
    """What the caller pool's app (`ivr.wsgi:callers` is create_app(part="callers")) answers now."""
    return caller_golden.normalised(caller_golden.scenarios(lambda cfg: create_app(cfg, part="callers"),
                                                            tmp_path_factory.mktemp("golden")))


@pytest.mark.parametrize("group", ["message", "live", "unsigned", "errors", "bug", "media", "dead_database"])
def test_every_answer_and_record_is_the_same_bytes_as_before(golden, now_answered, group):
    before, after = golden[group], now_answered[group]
    assert len(after) == len(before)
    for was, now in zip(before, after):
        assert now == was, f"{group}: {was.get('request')}"


def test_later_callers_get_the_same_bytes_as_the_first(golden, tmp_path):
    """Replies and lines are kept after the first caller (webhooks/prepared.py, ivr/spool/lines.py): the
    same requests again, from the same calls, must answer and spool exactly what the reference did."""
    app = create_app(caller_golden.build_config(tmp_path), part="callers")
    try:
        for _ in range(2):
            again = caller_golden.normalised(caller_golden.run(app, caller_golden.caller_requests(), 0x1000))
            assert again == golden["message"]
    finally:
        app.extensions["ivr"].close()


@pytest.mark.slow
def test_ivr_serve_answers_with_the_same_bytes(golden, server, config):
    """As deployed: the caller pool of `ivr serve` (gunicorn, `ivr.wsgi:callers`, several workers) answers
    every request of the message-mode walk with the reference's status, content type and TwiML."""
    import requests
    from twilio.request_validator import RequestValidator

    from conftest import AUTH_TOKEN

    srv = server(workers=2)
    signer = RequestValidator(AUTH_TOKEN)
    for n, (request, was) in enumerate(zip(caller_golden.caller_requests(), golden["message"])):
        # A number of its own per request: here `ivr background` writes each step's records as it goes, and a
        # callback booked earlier in the walk would be found for the same number (in-process, nothing was).
        params = {"CallSid": f"CA{0x1000 + n:032x}", "AccountSid": "AC" + "0" * 32, "From": f"+1202555{1000 + n}",
                  "To": "+12025550100", "CallStatus": "in-progress", "ApiVersion": "2010-04-01",
                  "Direction": "inbound", **request["params"]}
        url = srv.url + request["path"]
        resp = requests.post(url, data=params, headers={"X-Twilio-Signature": signer.compute_signature(url, params)},
                             timeout=10)
        assert (resp.status_code, resp.headers["Content-Type"], resp.text) == (
            was["status"], was["content_type"], was["body"]), request
