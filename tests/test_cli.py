"""The `ivr` command as ops and admins use it: rules check, announcements, users."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from click.testing import CliRunner

from ivr.media import audio
from ivr.ops.cli import main


@pytest.fixture
def ivr(config):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key, "IVR_TTS_ENGINES": "espeak", "IVR_MEDIA_CACHE": str(
               config.media_cache_dir)}
    runner = CliRunner()

    def run(*args, ok=True, input=None):
        result = runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_rules_check_accepts_the_shipped_rules(ivr):
    out = ivr("rules", "check").output
    assert "OK (2 languages, 8 menu options)" in out


def test_rules_check_names_the_line_and_field_of_every_error(ivr, tmp_path, rules_file):
    bad = tmp_path / "bad.yaml"
    text = rules_file.read_text().replace("max_attempts: 3", "max_attempts: 0")
    text = text.replace('    goodbye: "Puede', '    goodby: "Puede')
    bad.write_text(text)
    result = ivr("rules", "check", str(bad), ok=False)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    line_no = next(i for i, l in enumerate(text.splitlines(), 1) if "max_attempts: 0" in l)
    assert any(f"line {line_no}: menu.max_attempts:" in l for l in lines)
    es_line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("  es:") and i > 60)
    assert len(lines) == 1  # field errors first; the missing Spanish prompt is reported once they are fixed
    bad.write_text(text.replace("max_attempts: 0", "max_attempts: 3"))
    result = ivr("rules", "check", str(bad), ok=False)
    assert f"line {es_line}: prompts.es: the 'es' prompt 'goodbye' is missing" in result.output
    assert "unknown prompt 'goodby'" in result.output


def test_rules_check_reports_broken_yaml_with_its_line(ivr, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("version: 1\nmenu:\n  options: {\"1\": details\n")
    result = ivr("rules", "check", str(bad), ok=False)
    assert result.exit_code == 1 and "not valid YAML" in result.output and "line " in result.output


def test_announcements_from_the_command_line(ivr, tmp_path):
    text = tmp_path / "statement.txt"
    text.write_text("We have reset every customer password. Choose a new one when you next sign in.")
    created = ivr("announce", "tts", "--lang", "en", "--text-file", str(text), "--by", "dana").output
    assert "draft" in created and "espeak-ng" in created
    ann_id = created.split()[0].lstrip("#")
    asked = ivr("announce", "publish", ann_id, "--reason", "legal signed", "--by", "dana").output
    assert "awaiting approval" in asked and "v2" in asked
    ivr("users", "add", "lee", "--role", "ops")  # the second person
    published = ivr("announce", "approve", ann_id, "--reason", "heard it", "--by", "lee").output
    assert "published" in published and "v2" in published and "approved by lee" in published
    out = tmp_path / "out.wav"
    ivr("announce", "export", ann_id, "--out", str(out))
    heard = audio.load_phone_wav(out.read_bytes())
    assert heard.frame_rate == 8000 and len(heard) > 2_000
    listing = ivr("announce", "list", "--lang", "en", "--topic", "main").output.splitlines()
    assert "published" in listing[0] and "archived" in listing[1]
    back = ivr("announce", "rollback", "--lang", "en", "--reason", "legal asked", "--by", "dana").output
    assert "v1" in back and "published" in back
    upload = ivr("announce", "upload", str(out), "--lang", "es", "--topic", "advice", "--publish").output
    assert "es/advice" in upload and "upload" in upload and "awaiting approval" in upload
    approved = ivr("announce", "approve", upload.split()[0].lstrip("#"), "--by", "lee").output
    assert "es/advice" in approved and "published" in approved


def test_bad_announcement_input_is_a_clear_error(ivr, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3 but not really an mp3" * 50)
    result = ivr("announce", "upload", str(junk), ok=False)
    assert result.exit_code == 1 and "undecodable" in result.output and "nothing was changed" in result.output
    result = ivr("announce", "tts", "--lang", "fr", "--text", "Bonjour", ok=False)
    assert result.exit_code == 1 and "'fr' is not configured" in result.output
    result = ivr("announce", "rollback", "--lang", "es", "--topic", "details", ok=False)
    assert "no earlier published es/details version" in result.output


def test_users_and_tokens(ivr):
    # Secrets come from a prompt or standard input, never from the command line (shell history, `ps`).
    out = ivr("users", "add", "dana", "--role", "admin", "--ask-password", "--ask-pin",
              input="a long enough password\n482916\n").output
    assert "added as admin" in out and "482916" not in out
    token = ivr("users", "token", "dana").output.strip()
    assert token.startswith("ivr_") and len(token) > 40
    result = ivr("users", "add", "dana", "--role", "ops", ok=False)
    assert "already a user called 'dana'" in result.output
    result = ivr("users", "add", "sam", "--role", "ops", "--ask-password", input="short\n", ok=False)
    assert "at least 10 characters" in result.output
    result = ivr("users", "add", "sam", "--role", "admin", "--ask-pin", input="2468\n", ok=False)
    assert "6 to 12 digits" in result.output
    assert ivr("users", "add", "sam", "--role", "ops", "--password", "x" * 12, ok=False).exit_code == 2


def test_users_and_tokens_are_revoked_from_the_command_line(ivr, hotline):
    from ivr.store.users import list_tokens, user_for_token

    ivr("users", "add", "dana", "--role", "admin")
    month = ivr("users", "token", "dana", "--expires", "30d", "--label", "ci").output.strip()
    (ci,) = list_tokens(hotline.db, "dana")
    assert timedelta(days=29) < ci["expires_at"] - ci["created_at"] <= timedelta(days=30)
    assert "--expires" in ivr("users", "token", "dana", "--expires", "soon", ok=False).output
    assert "#" in ivr("users", "token", "list").output and month not in ivr("users", "token", "list").output
    assert "reason" in ivr("users", "token", "revoke", "dana", ok=False).output  # --reason is required
    assert "1 token(s) of dana revoked" in ivr("users", "token", "revoke", "dana", "--reason", "rotation").output
    assert user_for_token(hotline.db, month) is None
    fresh = ivr("users", "token", "dana").output.strip()
    assert user_for_token(hotline.db, fresh) == ("dana", "admin")
    assert "deactivated" in ivr("users", "deactivate", "dana", "--reason", "left", "--by", "ciso").output
    assert user_for_token(hotline.db, fresh) is None
    assert "already deactivated" in ivr("users", "deactivate", "dana", "--reason", "again", ok=False).output
    assert "reactivated" in ivr("users", "reactivate", "dana", "--reason", "came back").output
    assert "no user called 'nobody'" in ivr("users", "deactivate", "nobody", "--reason", "x", ok=False).output
    assert "unlock code for dana: " in ivr("users", "unlock", "dana", "--reason", "checked").output


def test_incidents_from_the_command_line_feed_routing(ivr, config, hotline):
    before = ivr("incident", "list").output
    create = ("incident", "create", "--title", "Card data theft", "--severity", "critical",
              "--exposed", "names, card numbers", "--activate", "--reason", "disclosure day", "--by", "ciso")
    silent = ivr(*create, ok=False)  # a new incident has nothing published: callers would hear nothing
    assert "callers in en, es would hear nothing" in silent.output and "nothing was changed" in silent.output
    assert ivr("incident", "list").output == before  # not even a draft was left behind
    # It names no incident (none was created) and the option that makes it work.
    assert "about the new incident, so it was not created: add --carry-over" in silent.output
    assert not re.search(r"incident\s+\d", silent.output)
    out = ivr(*create, "--carry-over").output
    assert "created and activated" in out
    new_id = out.split()[1]
    listing = ivr("incident", "list").output.splitlines()
    assert listing[0].startswith(f"#{new_id}") and "active" in listing[0] and "critical" in listing[0]
    assert "closed" in listing[1]  # the previously active incident
    assert hotline.state.current().content.severity == "critical"
    ivr("incident", "update", new_id, "--severity", "medium", "--reason", "contained")
    assert hotline.state.current().content.severity == "medium"
    bad = ivr("incident", "update", new_id, "--severity", "apocalyptic", ok=False)
    assert bad.exit_code == 1 and "severity must be one of low, medium, high, critical" in bad.output


def test_activating_an_incident_from_the_command_line_never_leaves_a_language_silent(ivr, hotline):
    heard = hotline.state.current().content.incident_id
    draft = ivr("incident", "create", "--title", "Second breach", "--severity", "high", "--reason", "new").output
    new_id = draft.split()[1]
    # Its English statement is made ready while it is a draft: callers still hear the active incident.
    ready = ivr("announce", "tts", "--incident", new_id, "--lang", "en", "--text", "What happened.", "--publish",
                "--reason", "statement ready").output
    ivr("users", "add", "lee", "--role", "ops")
    ivr("announce", "approve", ready.split()[0].lstrip("#"), "--by", "lee")  # the second person
    assert hotline.state.current().content.incident_id == heard
    assert "What happened." not in hotline.state.current().content.spoken["en/main"].text
    wrong = ivr("announce", "tts", "--incident", new_id, "--lang", "en", "--text", "A wrong draft.", "--publish",
                "--reason", "second thoughts").output
    ivr("announce", "approve", wrong.split()[0].lstrip("#"), "--by", "lee")
    assert "v1   published" in ivr("announce", "rollback", "--incident", new_id, "--lang", "en",
                                  "--reason", "back to the first").output
    listed = ivr("announce", "list", "--incident", new_id).output
    assert "en/main" in listed and "es/" not in listed
    assert "there is no incident 999" in ivr("announce", "tts", "--incident", "999", "--lang", "en", "--text", "x",
                                             "--reason", "x", ok=False).output
    refused = ivr("incident", "activate", new_id, "--reason", "go", ok=False)
    assert "callers in es would hear nothing" in refused.output  # English has its own, Spanish nothing
    assert f"publish an announcement for it first (ivr announce tts --incident {new_id} ... --publish), or " \
           f"activate it with --carry-over" in " ".join(refused.output.split())
    assert hotline.state.current().content.incident_id == heard
    out = ivr("incident", "activate", new_id, "--carry-over", "--reason", "go").output
    assert f"incident {new_id} is now active; carried over from the one before: " in out
    assert "es/main" in out and "en/main" not in out  # English keeps its own statement
    assert hotline.state.current().content.incident_id == int(new_id)
    assert hotline.state.current().content.spoken["en/main"].text == "What happened."


def test_agents_and_callbacks_from_the_command_line(ivr, hotline):
    from ivr.store import queues

    assert "agent alex added" in ivr("agents", "add", "alex", "--phone", "+15555550500", input="2468\n").output
    listing = ivr("agents", "list").output
    assert "alex" in listing and "***0500" in listing and "+15555550500" not in listing
    assert "signed out" in listing  # the console's and the API's word for it (ivr/core/words.py)
    assert "not a phone number" in ivr("agents", "add", "bo", "--phone", "12", input="2468\n", ok=False).output
    assert "agent alex deactivated" in ivr("agents", "deactivate", "alex", "--reason", "left").output
    assert "deactivated" in ivr("agents", "list").output
    assert "unknown queue 'fruad'" in ivr("agents", "add", "bo", "--phone", "+15555550501", "--queue", "fruad",
                                          input="2468\n", ok=False).output
    assert "agent bo added" in ivr("agents", "add", "bo", "--phone", "+15555550501", "--queue", "fraud",
                                   "--queue", "affected", input="2468\n").output
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+15555550111", language="es",
                            queue="general", priority=10, reason="callback offered")
    queues.request_callback(hotline.db, call_sid="CA" + "2" * 32, number="+15555550222", language="en",
                            queue="fraud", priority=30, reason="asked while on hold")
    lines = ivr("callbacks", "list").output.splitlines()
    assert "+15555550222" in lines[0] and "+15555550111" in lines[1]  # priority first
    assert "English (en)" in lines[0] and "Español (es)" in lines[1]
    cb_id = lines[0].split()[0].lstrip("#")
    assert "done" in ivr("callbacks", "done", cb_id, "--note", "card blocked", "--by", "alex").output
    assert "+15555550222" not in ivr("callbacks", "list").output
    assert "no open callback" in ivr("callbacks", "done", cb_id, ok=False).output


def test_rules_reload_is_audited_and_refuses_a_bad_file(ivr, hotline, rules_file):
    from sqlalchemy import select

    from ivr.store.models import AuditEntry

    assert "running workers load it" in ivr("rules", "reload", "--by", "ops").output
    good = rules_file.read_text()
    rules_file.write_text(good.replace("max_attempts: 3", "max_attempts: nope"))
    bad = ivr("rules", "reload", ok=False)
    assert bad.exit_code == 1 and "menu.max_attempts" in bad.output and "keeps its last good rules" in bad.output
    # The running hotline noticed too: it keeps its rules and audits the refusal once.
    for _ in range(3):
        hotline.rules.rules
    with hotline.db.read() as conn:
        actions = conn.execute(select(AuditEntry.action).where(AuditEntry.action.like("rules.%"))
                               .order_by(AuditEntry.id)).scalars().all()
    assert actions == ["rules.reload", "rules.reload_refused", "rules.reload_refused"]
    assert hotline.rules.rules.menu.max_attempts == 3


def test_simulate_shows_the_routing_decision_and_queue(ivr):
    ivr("mode", "set", "live", "--reason", "test", "--override", "a test: nobody needs to answer")
    out = ivr("simulate", "--keys", "7").output
    assert "[enqueue] waits in queue fraud" in out
    assert "routing: enqueue fraud (priority 30) by rule 'Fraud reports go first'" in out


def test_an_empty_text_is_called_empty_not_missing(ivr, tmp_path, hotline):
    empty = tmp_path / "statement.txt"
    empty.write_text("\n  \n")
    before = ivr("announce", "list").output
    refused = ivr("announce", "tts", "--lang", "en", "--text-file", str(empty), "--reason", "x", ok=False)
    assert refused.exit_code == 1
    assert f"the text given with --text-file {empty} is empty: nothing was created" in refused.output
    assert "give the text with" not in refused.output
    refused = ivr("announce", "tts", "--lang", "en", "--text", " ", "--reason", "x", ok=False)
    assert "the text given with --text is empty" in refused.output
    assert "give the text with --text-file FILE or --text TEXT" in ivr("announce", "tts", "--lang", "en",
                                                                        ok=False).output
    assert ivr("announce", "list").output == before


def test_the_briefing_is_shown_edited_and_published_from_the_command_line_and_audited(ivr, tmp_path, hotline):
    from sqlalchemy import select

    from ivr.store.models import AuditEntry

    assert "no briefing is published yet" in ivr("briefing", "show", ok=False).output
    answers = tmp_path / "answers.txt"
    answers.write_text("Q: Was my card taken?\nA: No card numbers were taken.\n")
    saved = ivr("briefing", "edit", "--facts", "Names and emails were copied on 1 December.",
                "--answers-file", str(answers), "--reason", "first briefing", "--by", "dana").output
    assert "version 1 saved as a draft" in saved
    assert "no briefing is published yet" in ivr("briefing", "show", ok=False).output
    ivr("briefing", "publish", "1", "--reason", "legal approved", "--by", "lee")
    shown = ivr("briefing", "show").output
    assert "What happened (the facts)\nNames and emails were copied on 1 December." in shown
    assert "Approved answers to common questions\nQ: Was my card taken?" in shown and "published" in shown
    # Edit starts from the latest version, as the console's editor does: only --exposed changes.
    ivr("briefing", "edit", "--exposed", "names, emails", "--publish", "--reason", "exposure known", "--by", "dana")
    shown = ivr("briefing", "show").output
    assert "Version 2" in shown and "What was exposed\nnames, emails" in shown and "Names and emails were" in shown
    assert "Version 1" in ivr("briefing", "show", "--version", "1").output
    listing = ivr("briefing", "list").output.splitlines()
    assert "v2" in listing[0] and "published" in listing[0] and "archived" in listing[1]
    refused = ivr("briefing", "publish", "9", "--reason", "x", ok=False)
    assert refused.exit_code == 1 and "no version 9" in refused.output and "nothing was changed" in refused.output
    with hotline.db.read() as conn:
        trail = conn.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.reason)
                             .where(AuditEntry.action.like("briefing.%")).order_by(AuditEntry.id)).all()
    assert [tuple(t) for t in trail] == [("dana", "briefing.create", "first briefing"),
                                         ("lee", "briefing.publish", "legal approved"),
                                         ("dana", "briefing.create", "exposure known"),
                                         ("dana", "briefing.publish", "exposure known")]
