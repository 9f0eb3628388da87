"""Whether strangers are attacking the staff doors now: a console account guessed at from many addresses
(ivr/ops/console/auth.py), a staff phone line taking many wrong PINs (ivr/store/pin_guard.py).

Computed from the database, once, for every surface: the dashboard's banner and /metrics' ivr_under_attack.
When an attack starts, `started` writes the log line (error level) and counts ivr_attacks_started.
"""
from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily

from ivr.ops.metrics import ATTACKS_STARTED

log = logging.getLogger(__name__)
LINES = ("admin", "agent")


def started(target: str, what: str) -> None:
    log.error("under attack: %s", what)
    ATTACKS_STARTED.labels(target).inc()


def now(hotline) -> dict[str, list[str]]:
    """{"accounts": names guessed at from many addresses, "lines": staff lines under PIN guessing}."""
    from ivr.ops.console.auth import accounts_under_attack
    from ivr.store.pin_guard import PinLimits, lines_under_attack

    return {"accounts": accounts_under_attack(hotline.db),
            "lines": lines_under_attack(hotline.db, PinLimits.from_config(hotline.config))}


def sentences(attacks: dict[str, list[str]]) -> list[str]:
    """What the dashboard's banner says, one sentence per attack."""
    said = [f"The {line} phone line is taking many wrong PINs: caller IDs that are not staff phones get one try "
            "each for now (ivr pins unlock lifts a lock)." for line in attacks["lines"]]
    said += [f"Sign-in guesses at {name!r} from many addresses: new addresses are slowed; she signs in from an "
             "address she used before, or with a code from ivr users unlock." for name in attacks["accounts"]]
    return said


def gauge(hotline) -> GaugeMetricFamily:
    attacks = now(hotline)
    family = GaugeMetricFamily("ivr_under_attack", "What strangers are attacking now: console accounts guessed at "
                               "from many addresses (how many), staff phone lines taking many wrong PINs (1 or 0)",
                               labels=["target"])
    family.add_metric(["console accounts"], len(attacks["accounts"]))
    for line in LINES:
        family.add_metric([f"{line} line"], 1.0 if line in attacks["lines"] else 0.0)
    return family
