"""An alias bomb (a few hundred characters of nested YAML aliases) is refused, naming its line, in milliseconds:
in the console, by `ivr rules check` and by the hot reload, which all share one parser."""
from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from helpers import console_sign_in
from ivr.core.rules import RulesInvalid, parse
from ivr.ops.cli import main
from ivr.store.rules_file import RulesStore
from ivr.store.users import add_user

PASSWORD = "correct horse battery staple"


def alias_bomb(levels: int = 7) -> str:
    """Ten of each level below at every level: 10**levels strings once expanded. Seven levels is ten million;
    on the parser before this check six levels took 1.4 s, seven about 15 s and 3 GB."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_the_console_refuses_an_alias_bomb_in_under_a_second(app, hotline):
    add_user(hotline.db, "vera", "viewer", actor="test", password=PASSWORD)
    client = app.test_client()
    assert console_sign_in(client, "vera", PASSWORD).status_code == 303
    with client.session_transaction() as sess:
        token = sess["csrf"]
    started = time.perf_counter()
    resp = client.post("/console/rules/validate", data={"text": alias_bomb(), "csrf_token": token})
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200 and elapsed < 1.0, elapsed
    body = resp.get_data(as_text=True)
    assert '<td data-label="Line">1</td>' in body and "anchors (&amp;) and aliases (*) are not allowed" in body


def test_rules_check_and_reload_refuse_anchors_naming_the_line(rules_file, tmp_path, monkeypatch):
    text = rules_file.read_text()
    with pytest.raises(RulesInvalid) as refused:
        parse(text + "extra: &x {a: 1}\nmore: *x\n")
    assert refused.value.errors[0].line == len(text.splitlines()) + 1
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    monkeypatch.setenv("IVR_ENV", "development")
    monkeypatch.setenv("IVR_INSTANCE_PATH", str(tmp_path / "instance"))
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["rules", "check", str(bomb)])
    assert result.exit_code == 1 and time.perf_counter() - started < 1.0
    assert "line 1" in result.output and "aliases (*) are not allowed" in result.output
    store = RulesStore(rules_file)
    good = store.rules
    rules_file.write_text(alias_bomb())
    error = store.reload()
    assert error is not None and "aliases" in str(error) and store.rules is good  # the last good rules stay
