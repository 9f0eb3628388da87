"""routing_rules.yaml: its schema, and parsing with errors that name the line and field.

Which rules are in force in a running process (hot reload, the last good kept): ivr/store/rules_file.py.
"""
from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr.core import verification, yaml_text
from ivr.core.agent_rules import Agents
from ivr.core.errors import Refused
from ivr.core.prompts import PLACEHOLDERS, REQUIRED_PROMPTS
from ivr.core.verification import Verification


MenuAction = Literal["details", "advice", "language", "repeat", "agent", "fraud", "sms", "goodbye", "verify"]
ROUTED = ("agent", "fraud")  # menu actions decided by the routing rules
SEVERITY_DEFAULT = ["low", "medium", "high", "critical"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DIGITS = "0123456789*#"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Language(_Strict):
    name: str
    key: str = Field(description="the key that picks this language in the language menu")
    say_language: str = Field(description="Twilio <Say language=...>, e.g. en-US")
    voice: str | None = Field(default=None, description="Twilio <Say voice=...>, e.g. Polly.Joanna")

    @field_validator("key")
    @classmethod
    def _one_key(cls, v: str) -> str:
        if len(v) != 1 or v not in DIGITS:
            raise ValueError("must be one phone key: 0-9, * or #")
        return v


class Menu(_Strict):
    timeout_seconds: int = Field(default=6, ge=2, le=30)
    max_attempts: int = Field(default=3, ge=1, le=10)
    max_steps: int = Field(default=60, ge=5, le=500, description="a call ends politely after this many steps")
    options: dict[str, MenuAction]

    @field_validator("options")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if len(key) != 1 or key not in DIGITS:
                raise ValueError(f"menu key {key!r} must be one phone key: 0-9, * or #")
        if "repeat" not in v.values():
            raise ValueError("the menu needs a 'repeat' option: callers must be able to hear the message again")
        return v


class Hours(_Strict):
    """When a queue is staffed, in its own time zone; holidays are closed all day."""

    timezone: str
    open: dt.time
    close: dt.time
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = list(DAYS)
    holidays: list[dt.date] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use a name like America/New_York)") from None
        return v

    def is_open(self, now: dt.datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.holidays or DAYS[local.weekday()] not in self.days:
            return False
        t = local.time()
        return self.open <= t < self.close if self.open < self.close else (t >= self.open or t < self.close)


Overflow = Literal["callback", "voicemail", "message", "goodbye", "dial"]
E164 = r"^\+[1-9][0-9]{6,14}$"


class Queue(_Strict):
    """A line of callers waiting for agents. Higher priority queues are served first."""

    twilio_name: str | None = Field(default=None, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    priority: int = Field(default=1, ge=1, le=100)
    max_size: int = Field(default=100, ge=1, le=5000)
    max_wait_minutes: int = Field(default=30, ge=1, le=600)
    answer_within_seconds: int | None = Field(default=None, ge=1, le=3600)  # the service level's N (none: 60)
    hours: Hours | None = None  # none: always open
    overflow: Overflow = "callback"  # what callers get when it is closed, full or too slow
    overflow_number: str | None = Field(default=None, pattern=E164)


class When(_Strict):
    """Conditions of a routing rule; all that are given must hold. None at all: always (the default rule)."""

    mode: Literal["message", "live"] | None = None
    menu: list[Literal["agent", "fraud"]] | None = None
    severity_at_least: str | None = None
    affected: bool | None = None  # on the breach list; unless verified, only a rule's priority applies
    verified: bool | None = None  # proved to be on the list by a reference keyed in (ivr/core/verification.py)
    queue: str | None = None  # the queue the three conditions below look at
    queue_open: bool | None = None
    queue_size_at_least: int | None = Field(default=None, ge=0)
    longest_wait_at_least_minutes: int | None = Field(default=None, ge=0)

    def given(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Then(_Strict):
    action: Literal["enqueue", "message", "callback", "voicemail", "dial", "goodbye"]
    queue: str | None = None
    priority: int | None = Field(default=None, ge=1, le=100)
    prompt: str | None = None  # for "message": a prompt name
    number: str | None = Field(default=None, pattern=E164)  # for "dial"


class Route(_Strict):
    name: str
    when: When = When()
    then: Then


class Hold(_Strict):
    pause_seconds: int = Field(default=20, ge=5, le=120)
    repeat_facts: bool = True  # the "what to do now" announcement in every hold cycle


class Rules(_Strict):
    version: Literal[1] = 1
    default_language: str
    languages: dict[str, Language]
    menu: Menu
    severities: list[str] = Field(default_factory=lambda: list(SEVERITY_DEFAULT), min_length=1)
    queues: dict[str, Queue]
    routing: list[Route] = Field(min_length=1)
    hold: Hold = Hold()
    agents: Agents = Agents()
    verification: Verification = Verification()  # key 8: the reference on the company's notice
    prompts: dict[str, dict[str, str]]

    def prompt(self, lang: str, name: str) -> str:
        return self.prompts.get(lang, {}).get(name) or self.prompts[self.default_language][name]

    def language(self, lang: str | None) -> str:
        """The caller's language if configured, else the default."""
        return lang if lang in self.languages else self.default_language

    def severity_rank(self, severity: str | None) -> int:
        return self.severities.index(severity) if severity in self.severities else -1

    def twilio_queue(self, queue: str, priority: int | None = None) -> str:
        """Twilio's queue name: one Twilio queue per (queue, priority), so agents can take priorities in order."""
        base = self.queues[queue].twilio_name or queue
        return base if priority in (None, self.queues[queue].priority) else f"{base}-p{priority}"


def cross_check(rules: Rules) -> list[tuple[tuple, str]]:
    """Problems that span fields, each with the key path it belongs to."""
    problems: list[tuple[tuple, str]] = []
    if rules.default_language not in rules.languages:
        problems.append((("default_language",), f"{rules.default_language!r} is not one of the languages"))
    seen: dict[str, str] = {}
    for code, lang in rules.languages.items():
        if lang.key in seen:
            problems.append((("languages", code, "key"), f"key {lang.key!r} is already used by {seen[lang.key]!r}"))
        seen[lang.key] = code
    wanted = list(REQUIRED_PROMPTS) + [r.then.prompt for r in rules.routing if r.then.prompt]
    if "verify" in rules.menu.options.values():
        wanted += rules.verification.prompts()
    problems += verification.problems(rules)
    for code in rules.languages:
        given = rules.prompts.get(code) or {}
        for name in dict.fromkeys(wanted):
            if not (given.get(name) or "").strip():
                problems.append((("prompts", code), f"the {code!r} prompt {name!r} is missing"))
        for name, text in given.items():
            if name not in wanted:
                problems.append((("prompts", code, name), f"unknown prompt {name!r} (a typo?)"))
            elif not _placeholders_ok(name, text or ""):
                allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS.get(name, ()))) or "none"
                problems.append((("prompts", code, name), f"prompt {name!r} uses an unknown placeholder "
                                                          f"(allowed: {allowed})"))
    problems += _foreign_offers(rules)
    problems += _routing_problems(rules)
    for code in rules.prompts:
        if code not in rules.languages:
            problems.append((("prompts", code), f"prompts for {code!r}, which is not one of the languages"))
    return problems


def _foreign_offers(rules: Rules) -> list[tuple[tuple, str]]:
    """A language's offer ("Para español, oprima 3") written into another language's prompt would be read
    by that language's voice: the flow speaks each offer in its own voice, so it has no place there."""
    from ivr.core.prompts import SentenceLanguages, sentences

    problems: list[tuple[tuple, str]] = []
    for code, prompts in rules.prompts.items():
        offers = SentenceLanguages({c: {"language_offer": p.get("language_offer") or ""}
                                    for c, p in rules.prompts.items() if c != code})
        for name, text in prompts.items():
            for sentence in sentences(text or ""):
                if offers.of(sentence):
                    problems.append((("prompts", code, name), f"{sentence!r} is another language's offer: "
                                     "each language offers itself, in its own voice (language_offer)"))
    return problems


def _placeholders_ok(name: str, text: str) -> bool:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError:
        return False
    return fields <= PLACEHOLDERS.get(name, set())


def _routing_problems(rules: Rules) -> list[tuple[tuple, str]]:
    """Unknown queues and severities, actions missing what they need, rules that can never match."""
    problems: list[tuple[tuple, str]] = []
    for name, queue in rules.queues.items():
        if queue.overflow == "dial" and not queue.overflow_number:
            problems.append((("queues", name, "overflow"), "overflow 'dial' needs an overflow_number"))
    for i, route in enumerate(rules.routing):
        where = ("routing", i)
        when, then = route.when, route.then
        for field, queue in (("when", when.queue), ("then", then.queue)):
            if queue is not None and queue not in rules.queues:
                problems.append((where + (field, "queue"), f"unknown queue {queue!r} (queues: "
                                                          f"{', '.join(rules.queues)})"))
        if when.severity_at_least is not None and when.severity_at_least not in rules.severities:
            problems.append((where + ("when", "severity_at_least"),
                             f"unknown severity {when.severity_at_least!r} (severities: {', '.join(rules.severities)})"))
        needs_queue = any(v is not None for v in (when.queue_open, when.queue_size_at_least,
                                                  when.longest_wait_at_least_minutes))
        if needs_queue and when.queue is None:
            problems.append((where + ("when",), "queue conditions need 'queue:' to say which queue"))
        if then.action == "enqueue" and then.queue is None:
            problems.append((where + ("then",), "action 'enqueue' needs a queue"))
        if then.action == "message" and not then.prompt:
            problems.append((where + ("then",), "action 'message' needs a prompt"))
        if then.action == "dial" and not then.number:
            problems.append((where + ("then",), "action 'dial' needs a number"))
        for j, earlier in enumerate(rules.routing[:i]):
            if earlier.when.given().items() <= when.given().items():
                problems.append((where, f"rule {route.name!r} can never match: rule {j + 1} "
                                        f"({earlier.name!r}) matches every call it would"))
                break
    if rules.routing[-1].when.given():
        problems.append((("routing", len(rules.routing) - 1), "the last rule must have no conditions: "
                                                              "it is the default for every other call"))
    return problems


@dataclass(frozen=True)
class RuleError:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        """'line 22: menu.timeout_seconds: <problem>'; a part not known is left out, not filled in (a file
        that cannot be read has no line, a YAML syntax error no field)."""
        return ": ".join(part for part in (f"line {self.line}" if self.line else "", self.field, self.message)
                         if part)


class RulesInvalid(Refused):
    """The rules file cannot be used; `errors` name each problem's line and field. The message names the file
    by its name alone: it reaches the console, the API and the audit log, which never show where on the
    server a file is (the server's own log says, ivr/store/rules_file.py)."""

    def __init__(self, path: str, errors: list[RuleError]):
        self.errors = errors
        super().__init__(f"{Path(path).name}: " + "; ".join(str(e) for e in errors))


def parse(text: str, source: str = "routing_rules.yaml") -> Rules:
    """Parse and validate rules text; raise RulesInvalid naming the line and field of every error."""
    try:
        data, lines = yaml_text.read(text)  # refuses anchors and aliases before anything expands them
    except yaml_text.YamlRefused as exc:
        raise RulesInvalid(source, [RuleError(exc.line, "", exc.message)]) from None
    if not isinstance(data, dict):
        raise RulesInvalid(source, [RuleError(1, "", "the file must be a mapping of settings")])
    try:
        rules = Rules.model_validate(data)
    except ValidationError as exc:
        problems = [(tuple(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
    else:
        problems = cross_check(rules)
    if problems:
        raise RulesInvalid(source, [_located(lines, loc, msg) for loc, msg in problems])
    return rules


def _located(lines: dict[tuple, int], loc: tuple, msg: str) -> RuleError:
    loc = tuple(p if isinstance(p, int) else str(p) for p in loc)
    prefix = loc
    while prefix and prefix not in lines:
        prefix = prefix[:-1]
    return RuleError(lines.get(prefix), ".".join(str(p) for p in loc), msg)


def warnings(text: str, rules: Rules) -> list[RuleError]:
    """What valid rules do that their author may not expect (the breach list made audible), with the line
    and field of each: `ivr rules check` prints them; the rules still load."""
    from ivr.core.routing import list_audible

    lines = yaml_text.read(text)[1]
    return [_located(lines, loc, msg) for loc, msg in list_audible(rules)]


def load_checked(path: Path | str) -> tuple[Rules, list[RuleError]]:
    """The rules in a file and their warnings; RulesInvalid as `load`."""
    rules = load(path)
    return rules, warnings(Path(path).read_text(encoding="utf-8"), rules)


def load(path: Path | str) -> Rules:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesInvalid(str(path), [RuleError(None, "", f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse(text, str(path))
