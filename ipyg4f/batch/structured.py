"""Structured answers for batches: ask for one JSON object, parse it, validate it against a schema.

A schema is a JSON-schema ``dict`` or a pydantic model class (anything with
``model_validate``).  A dict is checked with ``jsonschema`` when it is
installed, else with the subset below (``type``, ``required``, ``properties``,
``additionalProperties: false``, ``items``, ``enum``, ``const``, ``minimum``,
``maximum``); a pydantic model validates itself and the item's value is the
model instance.  Every failure is an :class:`InvalidAnswer` whose message says
what was wrong, in one line.
"""

from __future__ import annotations

import json
import re
from typing import Any


def _jsonschema() -> Any:
    """The full JSON-schema validator when installed (it comes with nbformat), else None.

    Imported only when a schema is used: ``import jsonschema`` costs seconds
    where bytecode is not cached (its URI grammar is built at import).
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return jsonschema

__all__ = ["InvalidAnswer", "instruction", "schema_of", "check_schema", "parse", "validate"]

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.S)


class InvalidAnswer(ValueError):
    """The answer is not the JSON asked for (or does not match the schema)."""


def schema_of(schema: Any) -> dict | None:
    """The JSON schema as a dict (a pydantic model's own), or None."""
    if schema is None or isinstance(schema, dict):
        return schema
    for method in ("model_json_schema", "schema"):  # pydantic 2, pydantic 1
        if callable(getattr(schema, method, None)):
            return getattr(schema, method)()
    raise TypeError(f"a schema is a JSON-schema dict or a pydantic model class, not {type(schema).__name__}")


def check_schema(schema: Any) -> None:
    """Raise ``ValueError`` for a schema that cannot be used (before anything is sent)."""
    as_dict = schema_of(schema)
    jsonschema = _jsonschema() if as_dict is not None and isinstance(schema, dict) else None
    if jsonschema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None


def instruction(schema: Any = None) -> str:
    """What the system prompt says when a JSON object is wanted."""
    text = "Answer with one JSON object and nothing else: no prose, no code fence."
    as_dict = schema_of(schema)
    if as_dict is not None:
        text += " The object must match this JSON schema: " + json.dumps(as_dict, ensure_ascii=False)
    return text


def parse(text: str) -> Any:
    """The JSON value in an answer; tolerates a ```json fence and prose around one object."""
    body = text.strip()
    if match := _FENCE.match(body):
        body = match.group(1).strip()
    try:
        return json.loads(body)
    except ValueError as first:
        start, end = body.find("{"), body.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(body[start:end + 1])
            except ValueError:
                pass
        excerpt = " ".join(body.split())[:60] or "an empty answer"
        raise InvalidAnswer(f"not JSON ({first.msg} at {first.pos}): {excerpt}") from None


def validate(value: Any, schema: Any) -> Any:
    """``value`` checked against ``schema``: itself, or the pydantic model instance."""
    if schema is None:
        return value
    if not isinstance(schema, dict):
        validator = getattr(schema, "model_validate", None) or getattr(schema, "parse_obj", None)
        try:
            return validator(value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidAnswer(_one_line(exc)) from None
    jsonschema = _jsonschema()
    if jsonschema is not None:
        error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema)
                                                 .iter_errors(value))
        if error is not None:
            raise InvalidAnswer(f"{_path(error.absolute_path)}: {error.message}")
        return value
    problem = _check(value, schema, [])
    if problem:
        raise InvalidAnswer(problem)
    return value


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:4])[:300]


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "number": (int, float), "integer": int,
}


def _is(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, object))


def _check(value: Any, schema: dict, path: list) -> str:
    """The first problem of ``value`` under the subset of JSON schema we check ourselves ("" if none)."""
    where = _path(path)
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, n) for n in names):
            return f"{where}: {json.dumps(value)[:60]} is not of type {' or '.join(names)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {json.dumps(value)[:60]} is not one of {json.dumps(schema['enum'])[:120]}"
    if "const" in schema and value != schema["const"]:
        return f"{where}: {json.dumps(value)[:60]} is not {json.dumps(schema['const'])[:60]}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: {value} is less than the minimum of {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: {value} is greater than the maximum of {schema['maximum']}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}: '{name}' is a required property"
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                if problem := _check(item, properties[name], [*path, name]):
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where}: additional property '{name}' is not allowed"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            if problem := _check(item, schema["items"], [*path, i]):
                return problem
    return ""
