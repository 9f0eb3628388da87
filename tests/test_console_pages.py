"""The console pages that run breach day: incidents, callbacks, agents and users (through the Flask app)."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, update

from ivr.store import agents, announcements, incidents, queues
from ivr.store import users as users_store
from ivr.store.models import Announcement, AuditEntry, Call, ConsoleSession, HotlineState, Incident, utcnow
from ivr.store.state import bump_content, get_mode, set_mode
from helpers import approved
from test_console import PASSWORD, as_role, audit_rows, page, users  # noqa: F401  (fixtures)


def _published(hotline, incident_id: int) -> set[tuple[str, str]]:
    with hotline.db.read() as conn:
        return {tuple(r) for r in conn.execute(select(Announcement.language, Announcement.topic).where(
            Announcement.incident_id == incident_id, Announcement.status == "published"))}


def _active(hotline) -> int:
    with hotline.db.read() as conn:
        return conn.execute(select(Incident.id).where(Incident.status == "active")).scalar_one()


# -- incidents ---------------------------------------------------------------------------------------------


def test_an_incident_is_created_changed_and_activated_without_leaving_a_language_silent(as_role, hotline):
    admin, first = as_role("admin"), _active(hotline)
    assert admin.post("/console/incidents", {"title": "Card data", "severity": "high"}).status_code == 400  # no reason
    resp = admin.post("/console/incidents", {"title": "Card data", "severity": "high", "exposed": "card numbers",
                                             "reason": "disclosure"})
    assert resp.status_code == 303
    new = max(r["id"] for r in incidents.list_incidents(hotline.db))
    body = page(admin.get("/console/incidents"))
    assert "Card data" in body and "Nothing is published for this incident in en, es" in body

    # Severity up, with a reason: audited from and to.
    resp = admin.post(f"/console/incidents/{new}", {"title": "Card data", "severity": "critical",
                                                    "exposed": "card numbers", "reason": "forensics"})
    assert resp.status_code == 303
    entry = audit_rows(hotline, "incident.update")[-1]
    assert "'high'" in entry.from_value and "'critical'" in entry.to_value and entry.reason == "forensics"

    # Activating with nothing published for it is refused, saying which languages, and changes nothing.
    resp = admin.post(f"/console/incidents/{new}/activate", {"reason": "go"})
    body = page(resp)
    assert resp.status_code == 400 and "Callers in en, es would hear nothing" in body and "Nothing was changed" in body
    assert _active(hotline) == first

    # English published for it, Spanish carried over from the incident callers hear now.
    approved(hotline.db, announcements.create_version(hotline.db, lang="en", topic="main", source="text",
                                                      text="Card numbers were taken.", audio_=None, actor="test",
                                                      publish=True, incident_id=new))
    resp = admin.post(f"/console/incidents/{new}/activate", {"reason": "go", "carry_over": "yes"})
    assert resp.status_code == 303
    assert _active(hotline) == new
    told = html.unescape(page(admin.get(resp.headers["Location"])))  # the go-live check ran after it
    assert "The go-live check found" in told and "es/main: carried over from the incident before" in told
    assert {lang for lang, _ in _published(hotline, new)} == {"en", "es"}
    assert ("en", "details") in _published(hotline, new)  # topics it lacked came over too
    with hotline.db.read() as conn:
        en_main = conn.execute(select(Announcement.text).where(
            Announcement.incident_id == new, Announcement.language == "en", Announcement.topic == "main",
            Announcement.status == "published")).scalar_one()
    assert en_main == "Card numbers were taken."  # its own announcement is never replaced by the old one
    assert [r.reason for r in audit_rows(hotline, "announcement.carry_over")] and \
        audit_rows(hotline, "incident.activate")[-1].reason == "go"
    assert hotline.state.current().content.spoken  # /healthz's check: something is published


def test_viewers_see_incidents_but_no_forms(as_role):
    body = page(as_role("viewer").get("/console/incidents"))
    assert "Security incident" in body and "<form method=\"post\" action=\"/console/incidents" not in body


# -- callbacks ---------------------------------------------------------------------------------------------


def _callback(hotline, sid: str, number: str, priority: int) -> None:
    queues.request_callback(hotline.db, call_sid=sid, number=number, language="en", queue="general",
                            priority=priority, reason="callback")


def test_callbacks_are_listed_by_priority_masked_for_viewers_and_marked_done_with_a_reason(as_role, hotline):
    _callback(hotline, "CA1", "+15550001111", 1)
    _callback(hotline, "CA2", "+15550002222", 5)
    viewer = page(as_role("viewer").get("/console/callbacks"))
    assert "***2222" in viewer and "+15550002222" not in viewer and "Mark done" not in viewer
    ops = as_role("ops")
    body = page(ops.get("/console/callbacks"))
    assert body.index("+15550002222") < body.index("+15550001111")  # higher priority first
    first = queues.callbacks(hotline.db)[0]["id"]
    assert ops.post(f"/console/callbacks/{first}/done", {"note": "reached"}).status_code == 400  # no reason
    resp = ops.post(f"/console/callbacks/{first}/done", {"note": "reached", "reason": "called back"})
    assert resp.status_code == 303
    assert "+15550002222" not in page(ops.get("/console/callbacks"))
    entry = audit_rows(hotline, "callback.done")[-1]
    assert (entry.actor, entry.reason, entry.to_value) == ("otto", "called back", "reached")
    again = ops.post(f"/console/callbacks/{first}/done", {"reason": "twice"})
    assert again.status_code == 400 and "There is no open callback" in page(again)


# -- real time ---------------------------------------------------------------------------------------------


def _agent_on_line(hotline, name: str, phone: str, *, bridged_to: str | None = None) -> None:
    """An agent signed in on the agent line (free), or put through to a caller (on a call)."""
    from ivr.store import desk

    agents.add_agent(hotline.db, hotline.config.secret_key, name, phone, "2468", actor="test")
    desk.set_status(hotline.db, name, "on_call" if bridged_to else "available", call_sid=bridged_to,
                    line_call_sid="CA" + name.encode().hex().ljust(32, "0"))


def _waiting(hotline, sid: str, queue: str, seconds_ago: int) -> None:
    from ivr.store.models import QueueEntry

    with hotline.db.write() as conn:
        conn.execute(insert(QueueEntry).values(call_sid=sid, queue=queue, priority=1, language="en", status="waiting",
                                               enqueued_at=utcnow() - timedelta(seconds=seconds_ago)))


def test_live_mode_with_no_free_agent_is_a_banner_and_queues_show_their_waits(as_role, hotline):
    from ivr.store import desk

    set_mode(hotline.db, "live", reason="shift", actor="otto")
    _waiting(hotline, "CAw1", "fraud", 125)
    _waiting(hotline, "CAw2", "fraud", 5)
    viewer = as_role("viewer")
    body = page(viewer.get("/console/live"))
    assert "Live mode is on but no agent is free" in body
    row = re.search(r'<tr data-queue="fraud">(.*?)</tr>', body, re.S).group(1)
    assert ">2<" in row and re.search(r"2 min 0[5-9] s", row)  # the page takes a moment to build

    _agent_on_line(hotline, "amy", "+15555550601", bridged_to="CAcaller1")
    body = page(viewer.get("/console/live"))
    assert "no agent is free on the agent line (1 on a call)" in body and 'id="agents-on-call">1<' in body
    # The desk says available, but no agent-line call is up: nobody a caller can reach.
    agents.add_agent(hotline.db, hotline.config.secret_key, "cid", "+15555550603", "2468", actor="test")
    desk.set_status(hotline.db, "cid", "available")
    body = page(viewer.get("/console/live"))
    assert "no agent is free on the agent line (1 on a call, 1 available on the desk only)" in body
    assert 'id="agents-free">0<' in body and "<strong>Desk only (no agent-line call up, so no caller reaches them):</strong> cid (" in body
    _agent_on_line(hotline, "bob", "+15555550602")
    body = page(viewer.get("/console/live"))
    assert "no agent is free" not in body and 'id="agents-free">1<' in body
    assert "<strong>On the line, free:</strong> bob (0 s)." in body  # with their time in that state
    desk.set_status(hotline.db, "bob", "break")  # bob takes a break: nobody is free again
    assert "no agent is free" in page(viewer.get("/console/live"))


def test_a_language_or_topic_with_nothing_published_is_a_banner(as_role, hotline):
    with hotline.db.write() as conn:  # as any publish does, so every worker reloads what callers hear
        conn.execute(update(Announcement).where(Announcement.language == "es").values(status="archived"))
        conn.execute(update(Announcement).where(Announcement.language == "en", Announcement.topic == "advice")
                     .values(status="archived"))
        bump_content(conn)
    body = page(as_role("viewer").get("/console/"))
    assert "Nothing is published in Español: those callers hear only the prompts." in body
    assert "Nothing is published in English for advice" in body
    assert "Nothing is published, so callers hear only" not in body  # English still has something
    with hotline.db.write() as conn:
        conn.execute(update(Announcement).values(status="archived"))
        bump_content(conn)
    body = page(as_role("viewer").get("/console/live"))
    assert "Nothing is published, so callers hear only the greeting and the menu" in body


def test_the_live_refresh_carries_the_mode_card_with_the_figures(as_role, hotline):
    viewer = as_role("viewer")
    assert 'data-live-part="mode" data-mode="message"' in page(viewer.get("/console/live"))
    set_mode(hotline.db, "live", reason="shift", actor="otto")
    body = page(viewer.get("/console/live"))
    assert 'data-live-part="mode" data-mode="live" data-target="message" data-by="otto"' in body
    assert "The hotline is in <strong>live</strong> mode." in body and "<form" not in body
    dashboard = page(viewer.get("/console/"))
    # Screen readers hear problems (an alert), not "figures updated" every 15 seconds.
    assert '<p class="muted" id="live-status">' in dashboard and 'id="live-problem" role="alert" hidden' in dashboard


def test_a_switch_sent_after_the_session_expired_is_not_made_and_the_dashboard_says_so(as_role, hotline):
    ops = as_role("ops")
    with hotline.db.write() as conn:
        conn.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = ops.post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes",
                                      "reason": "agents arrived at 08:00"})
    assert resp.status_code == 303
    assert "was not done: nothing was changed" in page(ops.get(resp.headers["Location"]))
    assert get_mode(hotline.db)[0] == "message"
    resp = ops.client.post("/console/login", data={"name": "otto", "password": PASSWORD, "csrf_token": ops.token(),
                                                   "next": "/console/"})
    assert resp.status_code == 303
    body = page(ops.get("/console/"))
    assert "Your switch to live mode was not made: your session had expired before you sent it." in body
    assert 'value="agents arrived at 08:00"' in body  # the typed reason is kept, the tick is not
    assert get_mode(hotline.db)[0] == "message"
    assert "Your switch to live mode was not made" not in page(ops.get("/console/"))  # said once


def test_sessions_slide_with_activity_but_not_with_the_dashboard_refresh(as_role, hotline):
    viewer = as_role("viewer")
    soon = utcnow() + timedelta(minutes=10)
    with hotline.db.write() as conn:
        conn.execute(update(ConsoleSession).values(expires_at=soon))

    def expires():
        with hotline.db.read() as conn:
            value = conn.execute(select(ConsoleSession.expires_at)).scalar_one()
        return value if value.tzinfo else value.replace(tzinfo=soon.tzinfo)

    assert viewer.get("/console/live").status_code == 200
    assert abs((expires() - soon).total_seconds()) < 1
    assert viewer.get("/console/calls").status_code == 200
    assert expires() - utcnow() > timedelta(hours=7, minutes=59)


# -- agents ------------------------------------------------------------------------------------------------


def test_agents_are_added_shown_with_their_status_and_deactivated(as_role, hotline):
    from ivr.store import desk

    admin = as_role("admin")
    form = {"name": "amy", "phone": "+1 555 123 0001", "pin": "1234"}
    assert admin.post("/console/agents", form).status_code == 400  # no reason
    assert admin.post("/console/agents", {**form, "reason": "new agent"}).status_code == 303
    bad = admin.post("/console/agents", {"name": "bob", "phone": "not a number", "pin": "1234", "reason": "x"})
    assert bad.status_code == 400 and "is not a phone number" in page(bad)
    assert agents.agent_for_phone(hotline.db, hotline.caller_identity("+15551230001")[0])[0] == "amy"
    body = page(as_role("ops").get("/console/agents"))
    assert "***0001" in body and "+15551230001" not in body and "signed out" in body
    assert "Deactivate amy" not in body  # ops see, admins change

    desk.set_status(hotline.db, "amy", "available")  # on the desk only: no caller reaches her
    assert '<span class="badge agent-status status-desk-only">desk only</span>' in page(admin.get("/console/agents"))
    desk.set_status(hotline.db, "amy", "available", line_call_sid="CA" + "1" * 32)  # she calls the agent line
    assert '<span class="badge agent-status status-on-the-line">on the line</span>' in page(admin.get("/console/agents"))

    assert admin.post("/console/agents/deactivate", {"name": "amy", "reason": "left the team"}).status_code == 303
    assert agents.agent_for_phone(hotline.db, hotline.caller_identity("+15551230001")[0]) is None
    assert "deactivated" in page(admin.get("/console/agents"))
    entry = audit_rows(hotline, "agent.deactivate")[-1]
    assert (entry.actor, entry.reason) == ("ada", "left the team")
    assert audit_rows(hotline, "agent.add")[-1].reason == "new agent"


# -- users -------------------------------------------------------------------------------------------------


def _user_id(name: str, hotline) -> int:
    return next(u["id"] for u in users_store.list_users(hotline.db) if u["name"] == name)


def test_an_admin_adds_users_changes_roles_resets_secrets_and_deactivates(app, as_role, hotline):
    from test_console import Console

    admin = as_role("admin")
    new = {"name": "nina", "role": "viewer", "password": "nina's own password"}
    assert admin.post("/console/users", new).status_code == 400  # no reason
    assert admin.post("/console/users", {**new, "reason": "new hire"}).status_code == 303
    nina = Console(app)
    assert nina.login("nina", "nina's own password").status_code == 303
    assert nina.get("/console/users").status_code == 403  # a viewer never sees the users
    uid = _user_id("nina", hotline)

    # A new role ends her session, so it holds from her next page.
    assert admin.post(f"/console/users/{uid}/role", {"role": "ops", "reason": "shift lead"}).status_code == 303
    assert nina.get("/console/").status_code == 303
    entry = audit_rows(hotline, "user.role")[-1]
    assert (entry.from_value, entry.to_value, entry.reason) == ("viewer", "ops", "shift lead")

    # A reset password: the old one no longer works, the new one does.
    resp = admin.post(f"/console/users/{uid}/password", {"password": "short", "reason": "forgot"})
    assert resp.status_code == 400 and "at least 10 characters" in page(resp)
    assert admin.post(f"/console/users/{uid}/password", {"password": "a new long password",
                                                         "reason": "forgot"}).status_code == 303
    assert nina.login("nina", "nina's own password").status_code == 401
    assert nina.login("nina", "a new long password").status_code == 303
    assert admin.post(f"/console/users/{uid}/pin", {"pin": "12", "reason": "x"}).status_code == 400
    assert admin.post(f"/console/users/{uid}/pin", {"pin": "24681357", "reason": "phone line"}).status_code == 303

    # Deactivated: signed out at once, cannot sign in; an admin cannot deactivate herself.
    assert admin.post(f"/console/users/{uid}/active", {"active": "no", "reason": "left"}).status_code == 303
    assert nina.get("/console/").status_code == 303
    assert nina.login("nina", "a new long password").status_code == 401
    own = admin.post(f"/console/users/{_user_id('ada', hotline)}/active", {"active": "no", "reason": "oops"})
    assert own.status_code == 400 and "cannot deactivate yourself" in page(own)
    assert "deactivated" in page(admin.get("/console/users"))
    assert admin.post(f"/console/users/{uid}/active", {"active": "yes", "reason": "back"}).status_code == 303
    assert nina.login("nina", "a new long password").status_code == 303


def test_api_tokens_are_shown_once_listed_with_use_and_expiry_and_revoked_in_a_click(app, as_role, hotline):
    admin = as_role("admin")
    uid = _user_id("otto", hotline)
    resp = admin.post(f"/console/users/{uid}/tokens", {"label": "monitoring", "expires": "7"})
    body = page(resp)
    token = re.search(r'<code class="token" id="new-token">(ivr_[^<]+)</code>', body).group(1)
    assert "ivr_" not in page(admin.get("/console/users"))  # shown that once only
    client = app.test_client()
    assert client.get("/api/mode", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    row = re.search(r'<tr id="token-(\d+)">(.*?)</tr>', page(admin.get("/console/users")), re.S)
    assert "monitoring" in row.group(2) and "never" not in row.group(2) and "<strong>live</strong>" in row.group(2)
    expires = users_store.list_tokens(hotline.db, "otto")[0]["expires_at"]
    assert timedelta(days=6, hours=23) < expires - utcnow() <= timedelta(days=7)

    assert admin.post("/console/tokens/revoke", {"token_id": row.group(1)}).status_code == 400  # no reason
    assert admin.post("/console/tokens/revoke", {"token_id": row.group(1), "reason": "leaked"}).status_code == 303
    assert client.get("/api/mode", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert "revoked" in page(admin.get("/console/users"))
    assert audit_rows(hotline, "token.revoke")[-1].reason == "leaked"


# -- the smaller things ------------------------------------------------------------------------------------


def test_the_audit_log_pages_past_the_newest_500_and_filters_take_times(as_role, hotline):
    from ivr.store.audit import audit

    base = utcnow().replace(microsecond=0) - timedelta(hours=3)
    with hotline.db.write() as conn:
        for i in range(1203):
            audit(conn, actor="bulk", action="test.entry", subject=f"entry {i}", reason="paging")
        conn.execute(update(AuditEntry).where(AuditEntry.action == "test.entry").values(at=base))
    viewer = as_role("viewer")
    seen, url, pages = [], "/console/audit?actor=bulk", 0
    while url:
        body = page(viewer.get(url))
        seen += re.findall(r"<td data-label=\"Subject\">entry (\d+)</td>", body)
        older = re.search(r'<a href="([^"]+)" rel="next">Older entries</a>', body)
        url = older.group(1).replace("&amp;", "&") if older else None
        pages += 1
    assert pages == 3 and len(seen) == 1203 and len(set(seen)) == 1203 and seen[0] == "1202" and seen[-1] == "0"
    assert "Newest entries" in body

    # A time, not only a day: entries from 10:00 to 10:30 of one day.
    with hotline.db.write() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.subject == "entry 5")
                     .values(at=datetime(2026, 3, 1, 10, 15, tzinfo=timezone.utc)))
        conn.execute(update(AuditEntry).where(AuditEntry.subject == "entry 6")
                     .values(at=datetime(2026, 3, 1, 10, 45, tzinfo=timezone.utc)))
    body = page(viewer.get("/console/audit", query_string={"from": "2026-03-01 10:00", "to": "2026-03-01T10:30"}))
    assert ">entry 5<" in body and ">entry 6<" not in body
    body = page(viewer.get("/console/audit", query_string={"from": "2026-03-01", "to": "2026-03-01"}))
    assert ">entry 5<" in body and ">entry 6<" in body
    bad = viewer.get("/console/audit", query_string={"from": "10:00"})
    assert bad.status_code == 400 and "YYYY-MM-DD HH:MM" in page(bad)


def test_a_one_line_rules_change_shows_as_a_short_diff_across_the_row(as_role, hotline):
    import hashlib

    admin = as_role("admin")
    text = hotline.rules.path.read_text()
    resp = admin.post("/console/rules/save", {"text": text.replace("max_attempts: 3", "max_attempts: 4"),
                                              "reason": "kinder",
                                              "base_sha": hashlib.sha256(text.encode()).hexdigest()})
    assert resp.status_code == 303
    body = page(admin.get("/console/audit", query_string={"action": "rules.save"}))
    diff = re.search(r'<tr class="diff-row"><td colspan="7">(.*?)</td></tr>', body, re.S).group(1)
    assert "The change to the rules (2 lines)" in diff
    assert '<span class="del">-  max_attempts: 3' in diff and '<span class="add">+  max_attempts: 4' in diff
    assert diff.count("<span") <= 9  # headers, the two lines and two of context each side: not the whole file


def test_the_rules_editor_numbers_its_lines(as_role, hotline):
    body = page(as_role("viewer").get("/console/rules"))
    gutter = re.search(r'<pre class="gutter code" id="rules-gutter" aria-hidden="true">(.*?)</pre>', body, re.S)
    lines = hotline.rules.path.read_text().count("\n") + 1
    assert gutter.group(1).split() == [str(i) for i in range(1, lines + 1)]


def test_calls_say_how_they_ended_in_plain_words(as_role, hotline):
    with hotline.db.write() as conn:
        conn.execute(insert(Call).values(call_sid="CAplain", started_at=utcnow(), outcome="ended-no-choice",
                                         status="completed"))
    body = page(as_role("viewer").get("/console/calls"))
    assert "ended: no key pressed, or keys not recognised" in body and "ended-no-choice" not in body
    with hotline.db.write() as conn:
        conn.execute(update(HotlineState).values(updated_by="migration"))  # as a fresh database says
    assert "set by the hotline&#39;s first start." in page(as_role("viewer").get("/console/"))


def test_an_agent_who_signs_in_on_the_agent_line_is_free_on_the_console(app, as_role, hotline):
    from helpers import parse_twiml, signed_post, twilio_params

    agents.add_agent(hotline.db, hotline.config.secret_key, "alex", "+15555550500", "2468", actor="test")
    set_mode(hotline.db, "live", reason="shift", actor="test")
    ops = as_role("ops")
    assert "Live mode is on but no agent is free" in page(ops.get("/console/live"))
    sid, client = "CA" + "a" * 32, app.test_client()

    def twilio(path: str, **extra):  # signed as Twilio signs, for the agent's own call
        return signed_post(client, path, twilio_params(sid, From="+15555550500", **extra),
                           sign_url="http://localhost" + path)

    gather = parse_twiml(twilio("/voice/agent")).find("Gather")
    twilio(gather.get("action").replace("&amp;", "&"), Digits="2468").close()  # the PIN: signed in
    hotline.recorder.flush()
    assert '<span class="badge agent-status status-on-the-line">on the line</span>' in page(ops.get("/console/agents"))
    live = page(ops.get("/console/live"))
    assert "no agent is free" not in live and "<strong>On the line, free:</strong> alex (" in live
    # The agent hangs up: the number's status callback signs them out, not the line's idle timeout.
    twilio("/voice/status", CallStatus="completed", CallDuration="40", CallbackSource="call-progress-events",
           SequenceNumber="0").close()
    hotline.recorder.flush()
    assert '<span class="badge agent-status status-signed-out">signed out</span>' in page(ops.get("/console/agents"))
    assert "Live mode is on but no agent is free" in page(ops.get("/console/live"))
