"""The console's smaller promises: what an expired session keeps, who a stale tab blames, one vocabulary for
agent states, languages and outcomes, and no server paths shown to a viewer."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from ivr.store import queues
from ivr.store.models import ConsoleSession, utcnow
from test_console import PASSWORD, as_role, page, users  # noqa: F401  (fixtures)


def test_a_mark_done_sent_after_the_session_expired_is_not_made_and_its_reason_comes_back(as_role, hotline):
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+12025550111", language="en",
                            queue="general", priority=10, reason="callback offered")
    cb = queues.callbacks(hotline.db)[0]["id"]
    ops = as_role("ops")
    with hotline.db.write() as conn:
        conn.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = ops.post(f"/console/callbacks/{cb}/done", {"note": "spoke to her, card cancelled",
                                                      "reason": "called back at 10:05"})
    assert resp.status_code == 303 and "was not done: nothing was changed" in page(ops.get(resp.headers["Location"]))
    assert [c["id"] for c in queues.callbacks(hotline.db, "waiting")] == [cb]
    resp = ops.client.post("/console/login", data={"name": "otto", "password": PASSWORD, "csrf_token": ops.token(),
                                                   "next": "/console/callbacks"})
    assert resp.status_code == 303
    body = page(ops.get(resp.headers["Location"]))
    assert f"Callback {cb} was not marked done: your session had expired" in body
    assert 'value="spoke to her, card cancelled"' in body and 'value="called back at 10:05"' in body
    assert [c["id"] for c in queues.callbacks(hotline.db, "waiting")] == [cb]  # still not done: they decide
    again = page(ops.get("/console/callbacks"))
    assert "was not marked done" not in again and "called back at 10:05" not in again  # offered once


# -- nothing of the server's file system is shown to a viewer ----------------------------------------------
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|work|var|srv|opt|usr|etc|run|data|app)/[\w./-]*")


def _viewer_pages(app):
    from test_console import ROLES_NEEDED

    for rule in app.url_map.iter_rules():
        if (rule.endpoint.startswith("console.") and "GET" in rule.methods and not rule.arguments
                and ROLES_NEEDED.get(rule.endpoint) == "viewer"):
            yield rule.rule
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and "GET" in rule.methods and not rule.arguments:
            yield rule.rule
    yield "/healthz"


def test_no_page_or_answer_a_viewer_gets_shows_a_server_path(as_role, app, hotline, config, rules_file, tmp_path):
    from ivr.store.users import create_token

    viewer = as_role("viewer")
    token = {"Authorization": "Bearer " + create_token(hotline.db, "vera", actor="test")}
    # The rules file broken (its error names where it went wrong) and the data key gone: the problems a
    # viewer is told about are the ones most likely to carry a path.
    rules_file.write_text(rules_file.read_text().replace("max_attempts: 3", "max_attempts: 0"))
    (config.instance_path / "data.key").unlink(missing_ok=True)
    shown, seen = {}, 0
    for url in _viewer_pages(app):
        resp = viewer.client.get(url, headers=token) if url.startswith(("/api/", "/healthz")) else viewer.get(url)
        body = resp.get_data(as_text=True)
        seen += 1
        found = [where for where in (str(config.instance_path), str(rules_file.parent), str(tmp_path)) if where in body]
        found += SERVER_PATH.findall(body)
        if found:
            shown[url] = found
    assert shown == {} and seen >= 15


# -- one vocabulary --------------------------------------------------------------------------------------------
def test_agent_states_languages_and_outcomes_read_the_same_everywhere(as_role, app, hotline, place_call):
    from ivr.core import words
    from ivr.store import agents, desk
    from ivr.store.users import create_token

    agents.add_agent(hotline.db, hotline.config.secret_key, "alex", "+12025550500", "2468", actor="test")
    place_call(keys=["3", "9"])  # in Spanish
    place_call(keys=["9"])
    admin = as_role("admin")
    token = {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}
    api = admin.client.get("/api/agents", headers=token).get_json()["agents"]
    assert api == [{"name": "alex", "state": words.SIGNED_OUT, "since": api[0]["since"]}]
    assert f'agent-status status-signed-out">{words.SIGNED_OUT}</span>' in page(admin.get("/console/agents"))
    desk.link_user(hotline.db, "alex", "ada", actor="test")
    buttons = re.findall(r'name="status" value="(\w+)" class="secondary">([^<]+)<', page(admin.get("/console/desk")))
    assert buttons == [("available", "Available"), ("break", "On a break"), ("signed_out", "Signed out")]
    calls = page(admin.get("/console/calls"))
    assert '<td data-label="Language">Español</td>' in calls and '<td data-label="Language">English</td>' in calls
    reports = page(admin.get("/console/reports"))
    assert "<td>English</td>" in reports and "<td>Español</td>" in reports and "<td>en</td>" not in reports
    assert words.outcome("ended-no-choice") in reports or words.outcome("ended-by-caller") in reports
    assert "ended-no-choice" not in reports and "ended-by-caller" not in reports  # words, not codes


def test_outcomes_and_languages_are_said_in_words_even_ones_the_tables_do_not_know():
    from ivr.core import words

    assert words.outcome("agent") == "spoke to an agent"
    assert words.outcome("a-code-added-later") == "a code added later"  # readable, not a code
    assert words.outcome(None) == "" and words.outcome("") == ""
    languages = {"es": type("Language", (), {"name": "Español"})()}
    assert [words.language(languages, c) for c in ("es", "fr", None)] == ["Español", "fr", "unknown"]


def test_a_stale_tab_is_told_the_switch_was_its_own_users_in_another_tab(as_role, hotline):
    from ivr.store.state import set_mode

    set_mode(hotline.db, "live", reason="from the other tab", actor="otto")
    live = page(as_role("ops").get("/console/live"))  # otto's own stale tab, refreshing its live part
    assert 'data-mode="live" data-target="message" data-by="you, in another tab or window"' in live
    assert 'data-by="otto"' in page(as_role("viewer").get("/console/live"))  # anyone else hears the name
