"""`ivr simulate --all-paths`: every key path in both modes and every language ends properly."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import AUTH_TOKEN
from ivr.core import flow, verbs
from ivr.ops.cli import main
from ivr.tools.simulate import explore


@pytest.mark.slow
def test_the_shipped_rules_have_no_dead_end_loop_or_missing_prompt(tmp_path):
    result = CliRunner().invoke(main, ["simulate", "--all-paths", "--depth", "2"],
                                env={"IVR_INSTANCE_PATH": str(tmp_path)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "324 paths walked (2 languages, both modes, depth 2): 0 problem(s)" in result.output


def test_a_dead_end_is_found(app, hotline, monkeypatch):
    # A bug that ends the call after "details" without a goodbye.
    monkeypatch.setitem(flow._ACTIONS, "details", lambda rules, snap, pos, ctx: verbs.Reply([verbs.Say("Bye", "en")]))
    walked, problems = explore(app, AUTH_TOKEN, hotline.rules.rules, depth=1, modes=("message",))
    assert walked == 2 * 9
    assert {(p.lang, p.keys, p.problem) for p in problems} == {
        ("en", ("1",), "dead end: the call drops without a goodbye"),
        ("es", ("1",), "dead end: the call drops without a goodbye")}


def test_an_endless_loop_is_found(app, hotline, monkeypatch):
    # A bug where silence sends the caller round the menu for ever.
    def never_give_up(rules, pos, prompt, event):
        return verbs.Reply(flow.menu(rules, pos, []), [event])

    monkeypatch.setattr(flow, "_retry", never_give_up)
    walked, problems = explore(app, AUTH_TOKEN, hotline.rules.rules, depth=1, modes=("live",))
    assert problems and all("endless loop" in p.problem for p in problems)
    assert ("en", ("",)) in {(p.lang, p.keys) for p in problems}
