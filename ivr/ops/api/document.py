"""The API's OpenAPI document, and the check of every request against it.

The document is the one place that says what a request may hold: `ivr/ops/openapi.yaml`, with the languages
and severities of the routing rules in use filled in. A request it does not allow gets a 400 naming the
field before a route sees it, so routes only ever get what the document promises.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import yaml
from flask import current_app, jsonify, request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ivr.ops.api.errors import ApiError

DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.yaml"
PREFIX = "/api"
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,30})(?:\.[0-9]{1,30})?(?:[eE][+-]?[0-9]{1,3})?")


@functools.cache
def _shipped() -> dict:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def load_openapi(languages=None, severities=None) -> dict:
    """The document, with the configured languages and severities (routing_rules.yaml) as their enums."""
    doc = copy.deepcopy(_shipped())
    schemas = doc["components"]["schemas"]
    if languages is not None:
        schemas["Language"]["enum"] = list(languages)
    if severities is not None:
        schemas["Severity"]["enum"] = list(severities)
    return doc


class Operation:
    """One documented operation's parameters and body, ready to check a request."""

    def __init__(self, doc: dict, spec: dict):
        self.components = doc["components"]
        params = [self._resolve(p) for p in spec.get("parameters", [])]
        self.query = {p["name"]: (p, self._validator(p["schema"])) for p in params if p["in"] == "query"}
        body = self._resolve(spec.get("requestBody") or {})
        self.body_required = bool(body.get("required"))
        self.media_type, media = next(iter(body.get("content", {}).items()), (None, {}))
        self.body = self._validator(media["schema"]) if "schema" in media else None
        self.body_schema = self._resolve(media.get("schema", {}))

    def _validator(self, schema: dict) -> Draft202012Validator:
        return Draft202012Validator({**schema, "components": self.components})

    def _resolve(self, obj: dict) -> dict:
        while "$ref" in obj:  # "#/components/<kind>/<name>"
            _, _, kind, name = obj["$ref"].split("/")
            obj = self.components[kind][name]
        return obj

    def _coerce(self, value: str, schema: dict):
        """A query or form value is text: read it as the number or flag the schema asks for, if it is one."""
        kinds = self._resolve(schema).get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if "integer" in kinds and re.fullmatch(r"[+-]?[0-9]+", value):
            return int(value)
        if "integer" in kinds and _JSON_NUMBER.fullmatch(value):
            number = json.loads(value)  # as the same request in JSON would read it: 2, 2.0 and 2e0 are all 2
            if isinstance(number, int) or number.is_integer():
                return int(number)
        if "boolean" in kinds and value in ("true", "false"):
            return value == "true"
        return value

    def check_query(self) -> dict:
        out = {}
        for name, (param, validator) in self.query.items():
            if name not in request.args:
                if param.get("required"):
                    raise ApiError(400, f"the query parameter {name!r} is required")
                continue
            value = self._coerce(request.args[name], param["schema"])
            _raise_first(validator, value, f"query parameter {name!r}")
            out[name] = value
        return out

    def check_body(self) -> dict:
        if self.body is None:
            return {}
        if self.media_type == "multipart/form-data":
            data = self._form()
        elif not request.content_length and not request.data:
            if self.body_required:
                raise ApiError(400, f"this request needs a {self.media_type} body")
            return {}
        elif request.mimetype != self.media_type:
            raise ApiError(415, f"send the body as {self.media_type}, not {request.mimetype or 'untyped'}")
        else:
            data = _json_body()
        _raise_first(self.body, data, "the body")
        return data

    def _form(self) -> dict:
        if request.mimetype != "multipart/form-data":
            raise ApiError(415, "send this as multipart/form-data (the audio in a field named 'file')")
        props = self.body_schema.get("properties", {})
        data = {name: self._coerce(value, props.get(name, {})) for name, value in request.form.items()}
        data.update({name: "" for name in request.files})  # present: the route reads the bytes itself
        return data


MAX_JSON_DEPTH = 32  # the deepest document in openapi.yaml nests 3 levels


def _json_body():
    """The JSON body, refused (400) when it is not JSON or nests deeper than MAX_JSON_DEPTH: Python's parser
    and the schema validator both recurse once per level, and a RecursionError would be a 500."""
    too_deep = ApiError(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise too_deep from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise too_deep
    if data is None and request.data.strip() != b"null":
        raise ApiError(400, "the body is not valid JSON")
    return data


def _depth(value) -> int:
    """How deep lists and objects nest in a parsed JSON value (without recursing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _raise_first(validator: Draft202012Validator, value, what: str) -> None:
    err = best_match(validator.iter_errors(value))
    if err is None:
        return
    where = ".".join(str(p) for p in err.absolute_path) or what
    if err.validator in ("pattern", "not") and "x-message" in err.schema:
        message = err.schema["x-message"]
    elif err.validator == "anyOf" and all(set(sub) == {"required"} for sub in err.validator_value):
        message = "give at least one of " + ", ".join(name for sub in err.validator_value for name in sub["required"])
    else:
        message = err.message if len(err.message) <= 300 else err.message[:300] + "..."
    raise ApiError(400, f"{where}: {message}")


@functools.lru_cache(maxsize=4)
def _operations(languages: tuple[str, ...], severities: tuple[str, ...]) -> dict:
    doc = load_openapi(languages, severities)
    return {(path, method): Operation(doc, spec) for path, ops in doc["paths"].items()
            for method, spec in ops.items()}


def document_path(rule: str) -> str:
    """`/api/announcements/<int:announcement_id>/publish` -> `/announcements/{id}/publish`."""
    return re.sub(r"<(?:[^>]*:)?\w+>", "{id}", rule[len(PREFIX):])


def check_request(rules) -> tuple[dict, dict]:
    """(query, body) of the current request, as the document allows them; ApiError(400/415) otherwise."""
    method = "get" if request.method == "HEAD" else request.method.lower()
    operation = _operations(tuple(rules.languages), tuple(rules.severities))[
        (document_path(request.url_rule.rule), method)]
    return operation.check_query(), operation.check_body()


def register(bp) -> None:
    @bp.get("/openapi.json")
    def openapi():
        """This document (public: it describes, it reveals nothing), with the rules' languages and severities."""
        rules = current_app.extensions["ivr"].rules.rules
        return jsonify(load_openapi(rules.languages, rules.severities))
