"""`ivr simulate --all-paths`: every key path in both modes and every language ends properly."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import AUTH_TOKEN, server_env
from helpers import approved
from ivr.config import PROJECT_ROOT
from ivr.core import flow, verbs
from ivr.ops.cli import main
from ivr.tools.simulate import explore


@pytest.mark.slow
def test_the_shipped_rules_have_no_dead_end_loop_or_missing_prompt(config):
    env = server_env(config, IVR_RULES=str(PROJECT_ROOT / "routing_rules.yaml"))
    result = CliRunner().invoke(main, ["simulate", "--all-paths", "--depth", "2"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "400 paths walked (2 languages, both modes, depth 2): 0 problem(s)" in result.output


def test_a_dead_end_is_found(app, hotline, monkeypatch):
    # A bug that ends the call after "details" without a goodbye.
    monkeypatch.setitem(flow._ACTIONS, "details", lambda rules, snap, pos, ctx: verbs.Reply([verbs.Say("Bye", "en")]))
    walked, problems = explore(app, AUTH_TOKEN, hotline.rules.rules, depth=1, modes=("message",))
    assert walked == 2 * 10
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


def test_the_walk_reports_time_to_facts_and_every_sentence_is_in_the_voice_of_its_language(app, hotline):
    walked, problems = explore(app, AUTH_TOKEN, hotline.rules.rules, depth=1)
    assert problems == []
    # The oracle here is independent of the check: the offers are in their own voices, and nowhere else.
    from ivr.tools.simulate import FlaskTransport, SimulatedCall

    for keys in (["9"], ["3", "1", "5"]):
        heard = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=keys).run().heard
        says = [(h.text, h.lang) for h in heard if h.kind == "say"]
        assert all(lang == "es-US" for text, lang in says if "español" in text)
        assert all(lang == "en-US" for text, lang in says if "For English" in text)
        assert ("Para español, oprima 3.", "es-US") in says


def test_a_sentence_in_the_voice_of_another_language_is_found(app, hotline, monkeypatch):
    # A bug that reads the Spanish "no choice heard" with the English voice.
    def wrong_voice(rules, pos, prompt, event):
        return flow.Reply(flow.goodbye(rules, pos.lang, [flow.Say(rules.prompt("es", prompt), "en")]), [event])

    monkeypatch.setattr(flow, "_retry", wrong_voice)
    walked, problems = explore(app, AUTH_TOKEN, hotline.rules.rules, depth=1, modes=("message",))
    assert ("en", ("",), "a sentence of the es prompts in a en-US voice: 'No escuchamos ninguna opción.'") in {
        (p.lang, p.keys, p.problem) for p in problems}


def test_the_rules_refuse_another_languages_offer_inside_a_prompt(rules_file):
    from ivr.core.rules import RulesInvalid, parse

    text = rules_file.read_text().replace("      To hear what you should do now, press 2.\n",
                                          "      To hear what you should do now, press 2.\n      Para español, oprima 3.\n")
    with pytest.raises(RulesInvalid) as err:
        parse(text)
    assert "'Para español, oprima 3.' is another language's offer" in str(err.value)
    assert "prompts.en.menu" in str(err.value)


def test_ivr_simulate_all_paths_reports_time_to_facts_per_language(config):
    result = CliRunner().invoke(main, ["simulate", "--all-paths", "--depth", "1"], env=server_env(config),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for lang in ("en", "es"):
        assert f"time to facts, {lang}: " in result.output and "s to the end of the announcement (ok)" in result.output


def test_all_paths_measures_the_announcement_published_and_reports_a_long_one_over_target(config, hotline):
    from ivr.store import announcements
    from ivr.tools.time_to_facts import TARGET_S

    # What an operator pasted on the day: the statement three times over, about two minutes of speech.
    sentence = ("On November 28 we found that someone without permission had accessed a system that stores "
                "customer account information, including names, email addresses and phone numbers. ")
    row = approved(hotline.db, announcements.create_from_text(
        hotline.db, hotline.config, hotline.rules.rules.languages, lang="en", topic="main", text=sentence * 12,
        actor="test", publish=True, reason="the day"))
    assert row["duration_ms"] > 100_000
    result = CliRunner().invoke(main, ["simulate", "--all-paths", "--depth", "1"], env=server_env(config),
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    en = next(line for line in result.output.splitlines() if line.startswith("time to facts, en: "))
    seconds = float(en.split(": ")[1].split(" s ")[0])
    assert seconds > 100 and f"(over the {TARGET_S:g} s target)" in en, en
    assert f"the en main announcement version {row['version']} of incident {row['incident_id']} (audio)" in en
    es = next(line for line in result.output.splitlines() if line.startswith("time to facts, es: "))
    assert "(ok)" in es and "the es main announcement version 1" in es  # the default one, still published
