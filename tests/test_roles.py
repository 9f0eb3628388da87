"""One role matrix for the console and the API (ivr/ops/roles.py): every route of both says which action it
does, and needs exactly the least role the table gives that action; the same act needs the same role
through either door (closing a callback was ops in the API, agent in the console)."""
from __future__ import annotations

from test_console import as_role, users  # noqa: F401  (fixtures)

from ivr.ops.roles import LEAST_ROLE
from ivr.store import queues
from ivr.store.users import add_user, create_token

OPEN_TO_ALL = {"console.login", "console.not_found"}  # the sign-in page, and the console's own 404


def staff_routes(app) -> dict[str, tuple[str | None, str | None]]:
    """endpoint -> (action declared, role enforced) for every console and API route."""
    out = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint.startswith("console.") and rule.endpoint != "console.static":
            out[rule.endpoint] = (getattr(view, "console_action", "?"), getattr(view, "console_role", "?"))
        elif rule.endpoint.startswith("api.") and hasattr(view, "api_action"):
            out[rule.endpoint] = (view.api_action, view.api_role)
    return out


def test_every_console_and_api_route_needs_the_role_the_table_gives_its_action(app):
    routes = staff_routes(app)
    assert sum(e.startswith("api.") for e in routes) >= 15 and sum(e.startswith("console.") for e in routes) >= 40
    for endpoint, (action, role) in routes.items():
        if endpoint in OPEN_TO_ALL:
            assert (action, role) == (None, None), endpoint
            continue
        assert action in LEAST_ROLE, f"{endpoint} names {action!r}, not an action of ivr/ops/roles.py"
        assert role == LEAST_ROLE[action], endpoint
    # Every action of the table is done somewhere, and the acts both doors offer need one role.
    used = {action for action, _ in routes.values()}
    assert set(LEAST_ROLE) <= used, set(LEAST_ROLE) - used
    for shared in ("close a callback", "switch the mode", "change the incidents", "change the announcements"):
        doors = {e.split(".")[0] for e, (a, _) in routes.items() if a == shared}
        assert doors == {"console", "api"}, shared


def test_api_routes_without_an_action_are_only_the_document(app):
    """A new API route must go through `requires(action)`; only the OpenAPI document is public."""
    bare = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
            and not hasattr(app.view_functions[rule.endpoint], "api_action")}
    assert bare <= {"api.openapi"}, bare


def test_an_agent_closes_a_callback_through_either_door_and_a_viewer_through_neither(app, hotline, as_role):
    for n in (1, 2):
        queues.request_callback(hotline.db, call_sid="CA" + str(n) * 32, number=f"+1555555011{n}", language="en",
                                queue="general", priority=10, reason="callback offered")
    bearer = {}
    for role in ("viewer", "agent"):
        add_user(hotline.db, f"api-{role}", role, actor="test")
        bearer[role] = {"Authorization": "Bearer " + create_token(hotline.db, f"api-{role}", actor="test")}
    api = app.test_client()
    ids = [c["id"] for c in api.get("/api/callbacks", headers=bearer["viewer"]).get_json()["callbacks"]]
    done = {"reason": "called back", "note": "spoke to them"}
    assert api.post(f"/api/callbacks/{ids[0]}/done", json=done, headers=bearer["viewer"]).status_code == 403
    assert as_role("viewer").post(f"/console/callbacks/{ids[1]}/done", done).status_code == 403
    assert api.post(f"/api/callbacks/{ids[0]}/done", json=done, headers=bearer["agent"]).status_code == 200
    assert as_role("agent").post(f"/console/callbacks/{ids[1]}/done", done).status_code == 303
