"""Every `ivr` command the README and docs/ show, run as written (in the order the pages give them) against a
fresh instance and database, offline: each must succeed. Commands that need what this test has not (a
running server, a PostgreSQL host) are listed with the reason, so a new example is run unless it says why."""
from __future__ import annotations

import re
import shlex
import subprocess
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.config import PROJECT_ROOT
from ivr.media import audio, tts
from ivr.ops.cli import main
from ivr.store.db import Database
from ivr.store.models import Announcement, Callback, ScheduledChange
from ivr.store import queues

PAGES = ["README.md", "docs/operations.md", "docs/announcements.md", "docs/console.md", "docs/api.md",
         "docs/deploy.md", "docs/security.md", "docs/configuration.md", "docs/failure-modes.md"]
NOT_HERE = {  # why it is not run here, and where it is tested instead
    "--url": "a running hotline (tests/test_server.py simulates calls against ivr serve)",
    "serve": "it serves until stopped (tests/conftest.py starts ivr serve for the server tests)",
    "rules reload": "running workers to signal (tests/test_server.py)",
    "--all-paths": "nothing, but it walks for a minute: tests/test_all_paths.py runs it with a smaller --depth",
    "notify": "a Twilio sender and `ivr background` sending (tests/test_notices_served.py runs plan, send, pause, "
              "resume, status and cancel through ivr serve)",
}
# The go-live check refuses these on a fresh instance, as the docs say, naming each problem with its fix.
REFUSED_UNTIL_READY = ("preflight", "mode set live")
PASSWORD, PIN = "correct horse battery staple", "24681357"


def documented_commands(page: str) -> list[str]:
    """Each `.venv/bin/ivr ...` in the page's shell blocks, in order, continuation lines joined."""
    found = []
    text = (PROJECT_ROOT / page).read_text(encoding="utf-8")
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            at = line.find(".venv/bin/ivr ")
            if at >= 0:
                found.append(line[at:].split(")")[0] if "$(" in line[:at] else line[at:])
    return found


def _args(command: str) -> list[str]:
    return [a for a in shlex.split(command, comments=True)][1:]


def _stdin(args: list[str]) -> str:
    lines = [PASSWORD] if "--ask-password" in args else []
    lines += [PIN] if "--ask-pin" in args or args[:2] == ["agents", "add"] else []
    return "".join(line + "\n" for line in lines)


@pytest.fixture
def fresh(tmp_path, monkeypatch, rules_file):
    """An instance folder and SQLite database of their own, set up as `make run` does, in a scratch folder
    holding the files the docs name (statement.txt, ceo.m4a, breach-list.csv, notices.csv, answers.txt)."""
    monkeypatch.chdir(tmp_path)
    speech = tts.synthesize("We are sorry. Here is what happened, and what to do now.", "en", engines=("espeak",))
    (tmp_path / "statement.txt").write_text("We are sorry. Card numbers were taken. Block your card today.\n")
    wav = tmp_path / "speech.wav"
    wav.write_bytes(speech.data)
    subprocess.run([audio.ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac", "ceo.m4a"], check=True)
    (tmp_path / "breach-list.csv").write_text("phone\n+12025550123\n(202) 555-0142\n")
    (tmp_path / "notices.csv").write_text("reference\n4827105539\n9913064728\n")
    (tmp_path / "answers.txt").write_text("Q: Were card numbers taken?\nA: No.\n")
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": "docs-test-token", "DATABASE_URL": url,
           "IVR_INSTANCE_PATH": str(tmp_path / "instance"), "IVR_RULES": str(rules_file),
           "IVR_SECRET_KEY": "docs-secret", "IVR_TTS_ENGINES": "espeak", "IVR_MEDIA_CACHE": str(tmp_path / "media")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert CliRunner().invoke(main, ["setup", "--no-audio"], catch_exceptions=False).exit_code == 0
    db = Database(url)
    yield db
    db.dispose()


def _examples(db: Database, args: list[str]) -> list[str]:
    """An id in the docs is an example ("publish 12"): use the one a reader would look up first (the newest
    draft to publish, the newest version to export, an open callback to close)."""
    def newest(query):
        with db.read() as conn:
            return str(conn.execute(query).scalar())

    draft = select(Announcement.id).where(Announcement.status == "draft").order_by(Announcement.id.desc())
    ids = {("announce", "publish"): draft, ("schedule", "publish"): draft,
           ("announce", "export"): select(Announcement.id).order_by(Announcement.id.desc()),
           # the newest draft someone asked to publish (the login: the docs' approver is another user)
           ("announce", "approve"): select(Announcement.id).where(Announcement.status == "draft",
                                                                  Announcement.requested_by.is_not(None))
                                                           .order_by(Announcement.id.desc()),
           ("announce", "override"): draft,
           ("callbacks", "done"): select(Callback.id).where(Callback.status == "waiting"),
           ("schedule", "cancel"): select(ScheduledChange.id).where(ScheduledChange.status == "pending")
                                                             .order_by(ScheduledChange.id.desc())}
    if "--at" in args:  # a planned time in the docs is an example too: the same hour, tomorrow
        at = args.index("--at") + 1
        args = args[:at] + [(date.today() + timedelta(days=1)).isoformat() + args[at][10:]] + args[at + 1:]
    if tuple(args[:2]) in ids and len(args) > 2 and args[2].isdigit():
        return args[:2] + [newest(ids[tuple(args[:2])].limit(1))] + args[3:]
    return args


def test_the_docs_show_ivr_commands():
    assert sum(len(documented_commands(page)) for page in PAGES) >= 35


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if documented_commands(p)])
def test_every_documented_ivr_command_runs_as_written(fresh, db_url, page):
    """Each page on an instance of its own: each is read on its own (console.md and api.md both add the
    first admin)."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the commands run on a database of their own; once is enough")
    runner = CliRunner()
    ran, failed = 0, []
    # What the docs assume exists before their id examples: a draft to publish, a callback owed.
    runner.invoke(main, ["announce", "tts", "--lang", "en", "--text", "A draft for legal.", "--reason", "draft"])
    queues.request_callback(fresh, call_sid="CA" + "d" * 32, number="+12025550199", language="en",
                            queue="general", priority=10, reason="callback offered")
    for command in documented_commands(page):
        args = _args(command)
        why_not = next((why for key, why in NOT_HERE.items() if key in " ".join(args)), None)
        if why_not:
            continue
        if args[:2] == ["announce", "publish"]:
            runner.invoke(main, ["announce", "tts", "--lang", "en", "--text", "Legal's version.", "--reason", "x"])
        result = runner.invoke(main, _examples(fresh, args), input=_stdin(args))
        ran += 1
        refused_as_documented = (result.exit_code == 1 and "fix:" in result.output
                                 and " ".join(args).startswith(REFUSED_UNTIL_READY))
        if result.exit_code != 0 and not refused_as_documented:
            failed.append(f"{page}: {command}\n    -> exit {result.exit_code}: {result.output.strip()[-300:]}"
                          f"{result.exception if result.exit_code != 1 else ''}")
    assert not failed, "\n".join(failed)
    assert ran
