"""`ivr simulate` as the operator's test phone, against a running `ivr serve`: the hold loop with a key
pressed on hold, the agent line with its PIN on stdin, and a call placed while the local rules file is broken."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import server_env
from helpers import wait_for
from ivr.ops.cli import main
from ivr.store import agents, queues, sealed
from ivr.store.db import Database
from ivr.store.state import set_mode

CALLER, AGENT_PHONE, PIN = "+12125550199", "+15555550500", "2468"


def simulate(config, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["simulate", *args], env=server_env(config), input=stdin,
                              catch_exceptions=False)


@pytest.mark.slow
def test_on_hold_the_caller_hears_each_pass_of_the_hold_loop_and_presses_1_for_a_callback(server, config):
    db = Database(config.db_url)
    set_mode(db, "live", reason="agents on shift", actor="test")
    srv = server(workers=1)
    result = simulate(config, "--url", srv.url, "--from", CALLER, "--keys", "0", "--hold-keys", "-,1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    passes = [i for i, line in enumerate(lines) if line.startswith("  [hold] pass ")]
    assert len(passes) == 2, result.output  # silent through the first pass, Twilio asks for the waitUrl again
    holding = "  hears (en-US): Thank you for holding. A member of our team will be with you as soon as possible."
    assert lines[passes[0] + 1] == holding and lines[passes[1] + 1] == holding
    # The offer is inside the hold loop's <Gather>: the caller hears it, and presses 1 in the second pass.
    offer = "  hears (en-US): To get a call back instead, keeping your place in line, press 1."
    assert offer in lines[passes[0]:passes[1]] and "  presses 1 on hold" in lines[passes[1]:]
    after = lines[lines.index("  presses 1 on hold"):]
    assert after[1].startswith("  hears (en-US): Thank you. We will call you back")
    assert "  [leave] leaves the queue" in after
    assert "  [queue] Twilio requests the Enqueue action: QueueResult=leave" in after
    assert "  => call ended: hangup" in after
    # The spool writer stores the callback a moment after the caller heard it promised.
    booked = wait_for(lambda: [c for c in queues.callbacks(db) if sealed.open_number(db, c["number"]) == CALLER])
    assert [c["reason"] for c in booked] == ["asked while on hold"]
    db.dispose()


@pytest.mark.slow
def test_the_agent_line_takes_the_pin_from_stdin_and_never_shows_it(server, config):
    db = Database(config.db_url)
    agents.add_agent(db, config.secret_key, "alex", AGENT_PHONE, PIN, actor="test")
    srv = server(workers=1)
    result = simulate(config, "--url", srv.url, "--line", "agent", "--from", AGENT_PHONE, "--steps", "4",
                      stdin=PIN + "\n")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Calling the agent line from") and "pressing: the PIN" in lines[0]
    assert "  hears (en-US): Agent line. Enter your PIN, then press the pound key." in lines
    assert "  presses the PIN (not shown)" in lines
    assert "  hears (en-US): Nobody is waiting right now." in lines  # signed in: the line waits for a caller
    assert lines.count("  hears (en-US): Nobody is waiting right now.") == 2  # --steps 4: then the agent hangs up
    assert lines[-1] == "  => call ended: step-limit" and PIN not in result.output
    # Without a PIN on stdin, no call is placed.
    refused = simulate(config, "--url", srv.url, "--line", "agent", "--from", AGENT_PHONE, stdin="")
    assert refused.exit_code == 1 and "needs its PIN on stdin" in refused.output
    assert "--pin" not in main.commands["simulate"].params.__repr__()  # never an argument
    db.dispose()


@pytest.mark.slow
def test_with_url_the_call_is_placed_while_the_local_rules_file_is_broken(server, config, rules_file):
    srv = server(workers=1)
    rules_file.write_text(rules_file.read_text().replace("languages:", "languages: [", 1))  # a bad save
    result = simulate(config, "--url", srv.url, "--lang", "es", "--keys", "2")
    assert result.exit_code == 0, result.output
    assert "the call goes to the server, whose rules in force decide" in result.output
    lines = result.output.splitlines()
    # The caller chose Spanish by ear (the offer in its own voice), then pressed 2 in the Spanish menu.
    assert "  presses 3 (the offer heard in that language's own voice)" in lines
    assert "  presses 2" in lines
    assert any(line.startswith("  hears (es-US): ") for line in lines[lines.index("  presses 2"):])
    assert "  => call ended: hangup" in lines


def _twiml_app(documents: dict[str, str]):
    """A tiny app answering fixed TwiML per path: the follower's model of Twilio, checked on its own."""
    from flask import Flask, Response

    app = Flask(__name__)
    for path, body in documents.items():
        app.add_url_rule(path, path, lambda body=body: Response(f"<Response>{body}</Response>", mimetype="text/xml"),
                         methods=["POST"])
    return app


def test_leave_without_an_action_goes_on_after_the_enqueue_and_a_seconds_bound_stops_the_loop():
    from ivr.tools.simulate import FlaskTransport, HoldPlan, SimulatedCall

    app = _twiml_app({
        "/voice/incoming": '<Enqueue waitUrl="/wait">q</Enqueue><Say>After the queue.</Say><Hangup/>',
        "/wait": '<Gather action="/pressed"><Say>Press 1 to leave.</Say></Gather><Pause length="30"/>',
        "/pressed": "<Say>Leaving.</Say><Leave/>",
        "/voice/status": "",
    })
    # Twilio runs the verb after the <Enqueue> once <Leave> takes the caller out (twilio.com/docs/voice/twiml/leave).
    left = SimulatedCall(FlaskTransport(app), "token", hold=HoldPlan(passes=3, keys=["", "1"])).run()
    assert left.said() == ["Press 1 to leave.", "Press 1 to leave.", "Leaving.", "After the queue."]
    assert left.hold_passes == 2 and left.ended == "hangup"
    # 35 s a pass (the Gather's 5 s timeout, the 30 s pause): a 60 s bound allows two passes, not three.
    waiting = SimulatedCall(FlaskTransport(app), "token", hold=HoldPlan(passes=10, seconds=60)).run()
    assert waiting.hold_passes == 2 and waiting.ended == "queued"


def test_a_gather_without_an_action_posts_back_to_its_own_document():
    from ivr.tools.simulate import FlaskTransport, SimulatedCall

    app = _twiml_app({"/voice/incoming": '<Redirect>/menu?step=1</Redirect>',
                      "/menu": '<Gather><Say>Press 5.</Say></Gather><Hangup/>', "/voice/status": ""})
    result = SimulatedCall(FlaskTransport(app), "token", keys=["5", ""]).run()
    assert [url for url, _ in result.requests][:3] == ["http://localhost/voice/incoming",
                                                       "http://localhost/menu?step=1", "http://localhost/menu?step=1"]
    assert result.requests[2][1]["Digits"] == "5" and result.ended == "hangup"


@pytest.mark.slow
def test_the_simulator_imports_nothing_of_the_web_or_the_database_layers():
    # docs/architecture.md: it reaches the app over HTTP or a Flask test client, so it tests what Twilio sees.
    import subprocess
    import sys

    code = ("import sys, ivr.tools.simulate; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'sqlalchemy', 'werkzeug', 'webhooks', 'psycopg') or m.startswith(('ivr.store', 'ivr.hotline', "
            "'ivr.app', 'ivr.ops', 'ivr.spool', 'ivr.worker'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
