"""Who may do what: each action staff can take and the least role it needs, in one table that the console
(ivr/ops/console/base.py `needs`) and the API (ivr/ops/api/auth.py `requires`) both read, so the same act
needs the same role whichever door it comes through (tests/test_roles.py walks every route of both).

Roles are ranked: viewer < agent < ops < admin (ivr/store/users.py ROLES); each has what those below have.
"""
from __future__ import annotations

from ivr.store.users import ROLES

LEAST_ROLE = {
    "see the hotline": "viewer",  # the dashboard, calls, reports, audit, rules, announcements, incidents, queues
    "sign out": "viewer",
    "work the desk": "agent",  # say one is available, take and wrap up calls, call a caller back
    "close a callback": "agent",  # the agent who rang the caller back says it is done
    "see the agents": "ops",  # the agents page: their phone numbers (their states are on the dashboard)
    "switch the mode": "ops",
    # Plan a change for later, or cancel one: what a change may be is then the change's own action (SCHEDULED)
    "schedule a change": "ops",
    "retry a job": "ops",
    "approve a statement": "ops",  # the second person of two-person publishing (never who asked for it)
    "pause a notice campaign": "ops",  # pause and resume: the safe way out of a mistake
    "send a notice campaign": "admin",  # plan, send and cancel texts to everyone on a list
    "change the agents": "admin",
    "change the announcements": "admin",
    "override two-person publishing": "admin",  # publish a statement alone, in an emergency, with a reason
    "change the rules": "admin",
    "change the incidents": "admin",
    "change the briefing": "admin",
    "manage users": "admin",  # users, roles, passwords, PINs, API tokens
}
assert set(LEAST_ROLE.values()) <= set(ROLES)

# A change planned for later needs the role the change itself needs, to schedule it and to cancel it.
SCHEDULED = {"mode": "switch the mode", "publish": "change the announcements", "activate": "change the incidents"}


def least_role(action: str | None) -> str | None:
    """The least role for an action of the table (None: anyone, the sign-in page). A bare role name is
    taken as it is, so a route added elsewhere still works; tests/test_roles.py asks for an action."""
    if action is None or action in ROLES:
        return action
    try:
        return LEAST_ROLE[action]
    except KeyError:
        raise KeyError(f"{action!r} is not an action of ivr/ops/roles.py: add it there with its least role") from None
