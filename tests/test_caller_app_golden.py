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
