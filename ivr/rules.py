"""routing_rules.yaml: its schema, loading with errors that name the line and field, and hot reload.

A bad file never replaces good rules: `RulesStore` keeps serving the last good version and says why.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

# Every language must have every one of these prompts: a caller in any language hears every step.
REQUIRED_PROMPTS = (
    "greeting",
    "menu",
    "invalid_choice",
    "no_input",
    "too_many_attempts",
    "goodbye",
    "agents_unavailable",
    "connecting_agent",
    "hold",
    "queue_failed",
    "language_menu",
    "language_set",
    "no_announcement",
    "details_missing",
    "advice_missing",
    "technical_difficulty",
)

MenuAction = Literal["details", "advice", "language", "repeat", "agent", "goodbye"]
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


class Agents(_Strict):
    queue: str = Field(default="breach-general", max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    hold_pause_seconds: int = Field(default=20, ge=5, le=120)
    in_message_mode: Literal["menu", "goodbye"] = "menu"


class Rules(_Strict):
    version: Literal[1] = 1
    default_language: str
    languages: dict[str, Language]
    menu: Menu
    agents: Agents = Agents()
    prompts: dict[str, dict[str, str]]

    def prompt(self, lang: str, name: str) -> str:
        return self.prompts.get(lang, {}).get(name) or self.prompts[self.default_language][name]

    def language(self, lang: str | None) -> str:
        """The caller's language if configured, else the default."""
        return lang if lang in self.languages else self.default_language


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
    for code in rules.languages:
        given = rules.prompts.get(code) or {}
        for name in REQUIRED_PROMPTS:
            if not (given.get(name) or "").strip():
                problems.append((("prompts", code), f"the {code!r} prompt {name!r} is missing"))
        for name in given:
            if name not in REQUIRED_PROMPTS:
                problems.append((("prompts", code, name), f"unknown prompt {name!r} (a typo?)"))
    for code in rules.prompts:
        if code not in rules.languages:
            problems.append((("prompts", code), f"prompts for {code!r}, which is not one of the languages"))
    return problems


@dataclass(frozen=True)
class RuleError:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.field or '(top)'}: {self.message}"


class RulesInvalid(ValueError):
    """The rules file cannot be used; `errors` name each problem's line and field."""

    def __init__(self, path: str, errors: list[RuleError]):
        self.path = path
        self.errors = errors
        super().__init__(f"{path}: " + "; ".join(str(e) for e in errors))


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path in the YAML document to the (1-based) line it is written on."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def parse(text: str, source: str = "routing_rules.yaml") -> Rules:
    """Parse and validate rules text; raise RulesInvalid naming the line and field of every error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise RulesInvalid(source, [RuleError(line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")])
    if not isinstance(data, dict):
        raise RulesInvalid(source, [RuleError(1, "", "the file must be a mapping of settings")])
    lines = _line_map(node)
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


def load(path: Path | str) -> Rules:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesInvalid(str(path), [RuleError(None, "", f"cannot read the file: {exc}")]) from None
    return parse(text, str(path))


class RulesStore:
    """The rules in force: reloaded when the file changes, the last good version kept when it is bad."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self.last_error: RulesInvalid | None = None
        self._rules = load(self.path)  # a bad file at start-up is fatal: there is nothing good to keep
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @property
    def rules(self) -> Rules:
        """The current rules, after picking up a changed file (a stat call: cheap enough for every request)."""
        stamp = self._file_stamp()
        if stamp != self._stamp and stamp is not None:
            self.reload(stamp)
        return self._rules

    def reload(self, stamp: tuple | None = None) -> RulesInvalid | None:
        with self._lock:
            stamp = stamp or self._file_stamp()
            try:
                rules = load(self.path)
            except RulesInvalid as exc:
                if self.last_error is None or str(exc) != str(self.last_error):
                    log.error("routing rules NOT reloaded, keeping the last good rules: %s", exc)
                self.last_error = exc
                self._stamp = stamp
                return exc
            self._rules, self._stamp, self.last_error = rules, stamp, None
            log.info("routing rules reloaded from %s", self.path)
            return None
