"""The go-live check in front of every switch to live (CLI, console, API): with problems, the switch is
refused unless someone overrides it with a reason, which the audit log keeps beside the problems.
"""
from __future__ import annotations

from typing import Callable

from ivr.core.errors import Conflict
from ivr.core.go_live import Problem
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.state import check_mode_change, get_mode, set_mode


class PreflightFailed(Conflict):
    """Live mode refused: the go-live check found problems, and nobody overrode it with a reason."""

    def __init__(self, problems: list[Problem], how_to_override: str):
        self.problems = problems
        listed = "; ".join(p.what for p in problems)
        super().__init__(f"not switched to live: the go-live check found {len(problems)} problem(s): {listed}. "
                         f"Fix them (`ivr preflight` says how), or {how_to_override}")


def switch_mode(db: Database, mode: str, *, reason: str, actor: str, problems_for_live: Callable[[], list],
                override: str | None = None, how_to_override: str = "give an override with a reason"):
    """Set the mode; a switch to live first runs the go-live check. Returns (before, after, overridden
    problems)."""
    check_mode_change(mode, reason)  # a blank reason is refused as such, not after the go-live check
    problems: list[Problem] = []
    if mode == "live" and get_mode(db)[0] != "live":
        problems = problems_for_live()
        if problems and not (override or "").strip():
            raise PreflightFailed(problems, how_to_override)
    before, after = set_mode(db, mode, reason=reason, actor=actor)
    if problems and before != after:
        with db.write() as conn:
            audit(conn, actor=actor, action="preflight.override", subject="mode live",
                  to_value="; ".join(p.what for p in problems)[:2000], reason=override.strip()[:500])
    return before, after, problems
