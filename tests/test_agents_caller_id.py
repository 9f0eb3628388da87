"""One agent per caller ID: the agent line knows an agent by the number they call from before the PIN, so a
second agent on the same number is refused (CLI and console; the API has no agent routes), nothing changed."""
from __future__ import annotations

from click.testing import CliRunner

from ivr.ops.cli import main
from ivr.store import agents
from test_console import as_role, page, users  # noqa: F401  (fixtures)


def test_a_second_agent_on_one_caller_id_is_refused_on_the_command_line(config, hotline):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key}
    runner = CliRunner()
    add = ["agents", "add", "alex", "--phone", "+12025550123"]
    assert runner.invoke(main, add, env=env, input="2468\n").exit_code == 0
    second = runner.invoke(main, ["agents", "add", "bo", "--phone", "+1 (202) 555-0123"], env=env, input="1357\n")
    assert second.exit_code == 1
    assert "the caller ID ***0123 is agent alex's already: one agent per caller ID" in second.output
    assert [a["name"] for a in agents.agents(hotline.db)] == ["alex"]
    assert agents.agent_for_phone(hotline.db, hotline.caller_identity("+12025550123")[0])[0] == "alex"
    # Once alex is off the line, the number is free for someone else.
    agents.deactivate_agent(hotline.db, "alex", actor="test", reason="left")
    assert runner.invoke(main, ["agents", "add", "bo", "--phone", "+12025550123"], env=env,
                         input="1357\n").exit_code == 0
    assert agents.agent_for_phone(hotline.db, hotline.caller_identity("+12025550123")[0])[0] == "bo"


def test_a_second_agent_on_one_caller_id_is_refused_in_the_console(as_role, hotline):
    admin = as_role("admin")
    form = {"name": "amy", "phone": "+12025550188", "pin": "1234", "reason": "new agent"}
    assert admin.post("/console/agents", form).status_code == 303
    refused = admin.post("/console/agents", {**form, "name": "ben"})
    assert refused.status_code == 400 and "one agent per caller ID" in page(refused)
    assert [a["name"] for a in agents.agents(hotline.db)] == ["amy"]
